# syntax=docker/dockerfile:1
#
# One image with the three Quiver binaries (quiver-tenant-server, quiver-router,
# quiver-operator); the Helm chart picks one per container with `command`.
#
#   docker build -t quiver:0.1.0 .
#
# The first build compiles RocksDB (about 25 min on 2 cores); the cache mounts keep the
# registry and target/ between builds.

FROM rust:1-bookworm AS build
# RocksDB's bindings are generated with bindgen, which needs libclang.
RUN apt-get update \
 && apt-get install -y --no-install-recommends libclang-dev \
 && rm -rf /var/lib/apt/lists/*
WORKDIR /src
COPY . .
RUN --mount=type=cache,target=/usr/local/cargo/registry \
    --mount=type=cache,target=/src/target \
    cargo build --release --locked --bins \
      -p quiver-tenant-server -p quiver-router -p quiver-operator \
 && mkdir -p /out \
 && cp target/release/quiver-tenant-server target/release/quiver-router \
       target/release/quiver-operator /out/

FROM debian:bookworm-slim AS runtime
# CA certificates for OTLP exporters and the Kubernetes API over TLS; nothing else.
RUN apt-get update \
 && apt-get install -y --no-install-recommends ca-certificates \
 && rm -rf /var/lib/apt/lists/* \
 && groupadd --system --gid 65532 quiver \
 && useradd --system --uid 65532 --gid 65532 --home-dir /data --no-create-home \
      --shell /usr/sbin/nologin quiver \
 && mkdir -p /data \
 && chown 65532:65532 /data
COPY --from=build /out/quiver-tenant-server /out/quiver-router /out/quiver-operator /usr/local/bin/
ENV WORKSPACE_DIR=/data
WORKDIR /data
USER 65532:65532
EXPOSE 7100
# A tenant server on its defaults; the router and the operator are picked by `command`.
CMD ["quiver-tenant-server"]
