# Thin wrapper over CMake: `make run` and `make test` are the README's quick start.
# Each one installs what is missing, builds, then runs.
BUILD ?= build
JOBS ?= $(shell nproc)
CMAKE_FLAGS ?= -DCT_WERROR=ON

.PHONY: all deps build run test fuzz bench format format-check clean

all: build

deps:
	@bash scripts/install-deps
	@bash scripts/install-node-deps

$(BUILD)/CMakeCache.txt:
	@cmake -S . -B $(BUILD) $(CMAKE_FLAGS) >/dev/null

build: deps $(BUILD)/CMakeCache.txt
	@cmake --build $(BUILD) -j $(JOBS)

run: build
	@bash scripts/demo

test: build
	@cd $(BUILD) && ctest --output-on-failure -j $(JOBS)

# Longer fuzzing than CI's 15 s per target: FUZZ_SECONDS per target.
FUZZ_SECONDS ?= 600
fuzz: deps
	@bash tests/fuzz/run-fuzzer all $(FUZZ_SECONDS) $(BUILD)/fuzz-build

# The benchmarks behind docs/PERFORMANCE.md (minutes; not part of the tests).
bench: build
	@$(BUILD)/bin/token_bench
	@$(BUILD)/bin/cache_bench
	@bash bench/grpc_load/run $(BUILD)/bin/chat-tokend

format:
	@clang-format -i $$(git ls-files '*.c' '*.h')

format-check:
	@bash scripts/check-format

clean:
	rm -rf $(BUILD)
