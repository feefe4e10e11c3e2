# chat-tokend container image: a build stage with the -dev packages, and a
# small runtime stage with only the shared libraries the binaries link.
#
#   docker build -t chat-tokend:0.1.0 .
#   docker run --rm -p 50051:50051 -p 50052:50052 --stop-timeout 30 \
#     -e CHAT_TOKEN_APP_ID=... -v "$PWD/secrets:/run/secrets/chat-tokend:ro" chat-tokend:0.1.0
#
# Secrets (App Certificate, API keys) are never part of the image: they are
# mounted at run time (/run/secrets/chat-tokend) or given in the environment.
# --stop-timeout: on SIGTERM the server drains (shutdown.drain_seconds) and
# then shuts down gracefully (shutdown.grace_seconds); Docker's default 10 s
# would cut that short.

# ---- build ------------------------------------------------------------------
FROM debian:bookworm AS build

# The same script CI runs, so the image and CI install the same packages.
# Copied on its own first so this layer is cached across source changes.
COPY scripts/install-deps /src/scripts/install-deps
RUN bash /src/scripts/install-deps --build-only

COPY . /src
WORKDIR /src
RUN cmake -S . -B build -DCMAKE_BUILD_TYPE=Release \
 && cmake --build build --target chat-tokend chat-token -j "$(nproc)"

# ---- runtime ----------------------------------------------------------------
FROM debian:bookworm-slim AS runtime

ARG VERSION=0.1.0

LABEL org.opencontainers.image.title="chat-tokend" \
      org.opencontainers.image.description="gRPC service that issues Agora Chat tokens (AccessToken2) for app backends, sidecars and meshes" \
      org.opencontainers.image.source="https://github.com/chat-tokend/chat-tokend" \
      org.opencontainers.image.licenses="Apache-2.0" \
      org.opencontainers.image.version="${VERSION}" \
      org.opencontainers.image.base.name="docker.io/library/debian:bookworm-slim"

# Runtime libraries only (no -dev package, no compiler). ca-certificates:
# the user directory calls the Agora Chat REST API over https.
RUN apt-get update \
 && DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends \
      libgrpc29 libprotobuf-c1 libssl3 zlib1g libcurl4 libyaml-0-2 \
      libjansson4 libmicrohttpd12 ca-certificates \
 && rm -rf /var/lib/apt/lists/*

COPY --from=build /src/build/bin/chat-tokend /src/build/bin/chat-token /usr/local/bin/
# The default config is the Kubernetes base config: gRPC on 50051, plaintext
# health on 50052, HTTP side port on 8090, secrets read from files under
# /run/secrets/chat-tokend. Mount another file over it, or pass --config.
COPY deploy/k8s/base/config.yaml /etc/chat-tokend/config.yaml

# Numeric, so Kubernetes' runAsNonRoot can verify it without /etc/passwd.
USER 65532:65532

# 50051 gRPC (TokenService, health, reflection); 50052 plaintext gRPC health
# only (Kubernetes probes); 8090 HTTP side port (/healthz, /readyz, /metrics).
EXPOSE 50051 50052 8090

# Exec form: chat-tokend is PID 1 and receives SIGTERM itself; no shell is
# involved at run time. No HEALTHCHECK: the image holds no shell or gRPC
# client to run one; Kubernetes uses its native gRPC probes on port 50052.
STOPSIGNAL SIGTERM
ENTRYPOINT ["chat-tokend"]
CMD ["--config", "/etc/chat-tokend/config.yaml"]
