# Thin wrapper over CMake: `make run` and `make test` are the README's quick start.
# Each one installs what is missing, builds, then runs.
BUILD ?= build
JOBS ?= $(shell nproc)
CMAKE_FLAGS ?= -DCT_WERROR=ON

.PHONY: all deps build run test format format-check clean

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

format:
	@clang-format -i $$(git ls-files '*.c' '*.h')

format-check:
	@bash scripts/check-format

clean:
	rm -rf $(BUILD)
