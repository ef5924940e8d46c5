# syntax=docker/dockerfile:1
# bpfman node image: the daemon/CLI and the stats example object.
#   docker build -t bpfman:dev .        (or `make image`)
# The image runs `bpfman serve`; the DaemonSet in manifests/ adds the CSI
# flags, and `kubectl exec ... -- bpfman <command>` uses the same binary as a
# client of the running daemon.

FROM rust:1.95-bookworm AS build
WORKDIR /src
COPY . .
# Cache mounts keep the registry and target dir between builds; the binary is
# copied out of the cached target dir in the same step. rusqlite's bundled
# SQLite needs the C compiler the rust image already has; the protobuf
# definitions are compiled in Rust (protox), so no protoc is needed.
RUN --mount=type=cache,target=/usr/local/cargo/registry \
    --mount=type=cache,target=/src/target \
    cargo build --release --locked -p bpfman \
    && install -D -m 0755 target/release/bpfman /out/bpfman

FROM debian:bookworm-slim
LABEL org.opencontainers.image.title="bpfman" \
      org.opencontainers.image.description="BPF program manager with a CSI node plugin" \
      org.opencontainers.image.licenses="Apache-2.0"
# ca-certificates: for loading programs from OCI images over TLS. Nothing
# else is needed at run time: bpf(2), mounts and netlink are syscalls.
# Not version-pinned (DL3008): bookworm replaces the package on every
# security update, and a pin would then break the build.
# hadolint ignore=DL3008
RUN apt-get update \
    && apt-get install -y --no-install-recommends ca-certificates \
    && rm -rf /var/lib/apt/lists/*
COPY --from=build /out/bpfman /usr/local/bin/bpfman
# The stats example, for the README's walk-through:
#   bpfman load file -m bpfman.io/application=stats /opt/bpf/stats.o count_sched_switch
COPY examples/stats/stats.bpf.o /opt/bpf/stats.o
ENTRYPOINT ["/usr/local/bin/bpfman"]
CMD ["serve"]
