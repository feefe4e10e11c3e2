# chat-tokend container image: a build stage with the -dev packages, and a
# runtime stage FROM scratch holding only the two binaries, the shared
# libraries they load, CA certificates and the passwd/group lines of the
# non-root user. No shell, no package manager.
#
#   docker build -t chat-tokend:0.1.0 .
#   docker run --rm -p 50051:50051 -p 50052:50052 -p 8090:8090 --stop-timeout 30 \
#     -e CHAT_TOKEN_APP_ID=... -v "$PWD/secrets:/run/secrets/chat-tokend:ro" chat-tokend:0.1.0
#
# Without a registry (debian:bookworm made locally from Debian's packages):
# see the README, "The container image".
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
# CT_BUILD_TESTS=OFF: configuring the tests needs test-only tools (cmocka,
# python3) that the build stage does not install.
RUN cmake -S . -B build -DCMAKE_BUILD_TYPE=Release -DCT_BUILD_TESTS=OFF \
 && cmake --build build --target chat-tokend chat-token -j "$(nproc)"

# The runtime root filesystem, assembled here because the runtime stage has
# no shell: the stripped binaries, every shared library they load as ldd
# resolves it now (the dynamic loader included), the CA bundle (the user
# directory calls the Agora Chat REST API over https), and the passwd/group
# lines of UID/GID 65532.
RUN set -eu; \
    root=/rootfs; \
    mkdir -p "$root/usr/local/bin" "$root/etc/ssl/certs" "$root/etc/chat-tokend"; \
    install -m 0755 -s build/bin/chat-tokend build/bin/chat-token "$root/usr/local/bin/"; \
    ldd build/bin/chat-tokend build/bin/chat-token \
      | awk '$2 == "=>" && $3 ~ /^\// { print $3 } $1 ~ /^\// { print $1 }' | sort -u \
      | while read -r lib; do cp -L --parents "$lib" "$root/"; done; \
    cp -L /etc/ssl/certs/ca-certificates.crt "$root/etc/ssl/certs/"; \
    printf 'root:x:0:0:root:/root:/sbin/nologin\nnonroot:x:65532:65532:chat-tokend:/nonexistent:/sbin/nologin\n' \
      > "$root/etc/passwd"; \
    printf 'root:x:0:\nnonroot:x:65532:\n' > "$root/etc/group"; \
    test -x "$root/usr/local/bin/chat-tokend"

# ---- runtime ----------------------------------------------------------------
FROM scratch AS runtime

ARG VERSION=0.1.0

LABEL org.opencontainers.image.title="chat-tokend" \
      org.opencontainers.image.description="gRPC service that issues Agora Chat tokens (AccessToken2) for app backends, sidecars and meshes" \
      org.opencontainers.image.source="https://github.com/chat-tokend/chat-tokend" \
      org.opencontainers.image.licenses="Apache-2.0" \
      org.opencontainers.image.version="${VERSION}"

COPY --from=build /rootfs/ /
# The default config is the Kubernetes base config: gRPC on 50051, plaintext
# health on 50052, HTTP side port on 8090, secrets read from files under
# /run/secrets/chat-tokend. Mount another file over it, or pass --config.
COPY deploy/k8s/base/config.yaml /etc/chat-tokend/config.yaml

# FROM scratch has no PATH: exec probes and `podman exec` run `chat-tokend probe`.
ENV PATH=/usr/local/bin

# Numeric, so Kubernetes' runAsNonRoot can verify it without /etc/passwd.
USER 65532:65532

# 50051 gRPC (TokenService, health, reflection); 50052 plaintext gRPC health
# only (Kubernetes probes); 8090 HTTP side port (/healthz, /readyz, /metrics).
EXPOSE 50051 50052 8090

# Exec form: chat-tokend is PID 1 and receives SIGTERM itself. Health from
# inside the container: `chat-tokend probe --addr 127.0.0.1:50052` (exit 0
# when SERVING), for exec probes or a HEALTHCHECK.
STOPSIGNAL SIGTERM
ENTRYPOINT ["chat-tokend"]
CMD ["--config", "/etc/chat-tokend/config.yaml"]
