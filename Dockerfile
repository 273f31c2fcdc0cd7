# syntax=docker/dockerfile:1
# A fully static spiffe-helper FROM scratch: no shell, no libc, no CA store
# or time zone data (the helper needs none), no passwd file (the uid is
# numeric), just the binary. ENTRYPOINT matches the Go helper's image, so
# manifests passing `args: ["-config", "/path/helper.conf"]` keep working.
# To package a static binary built already (.ci/static-build), without this
# Rust stage: .ci/Containerfile, as .ci/image does.

FROM docker.io/library/rust:1.88-slim-bookworm AS build
SHELL ["/bin/bash", "-o", "pipefail", "-c"]
WORKDIR /src
COPY Cargo.toml Cargo.lock ./
COPY src ./src
COPY tests ./tests
COPY examples ./examples
COPY .cargo ./.cargo
# The musl target gives the same static-pie binary as the release assets
# (.cargo/config.toml adds the compact relocation format and the linker
# that places the executed code first, using this image's nm).
RUN target="$(uname -m)-unknown-linux-musl" \
 && rustup target add "$target" \
 && cargo build --release --locked --bin spiffe-helper --target "$target" \
 && cp "target/$target/release/spiffe-helper" /spiffe-helper

FROM scratch
LABEL org.opencontainers.image.title="spiffe-helper" \
      org.opencontainers.image.description="Keeps a workload's SPIFFE X.509 and JWT SVIDs on disk, rotated" \
      org.opencontainers.image.licenses="Apache-2.0" \
      org.opencontainers.image.source="https://github.com/spiffe/spiffe-helper-rs"
COPY --from=build /spiffe-helper /spiffe-helper
# Runs as uid 65532 by default (the Go helper's image runs as root): set
# runAsUser to the uid your SPIRE registration entries select, and give
# cert_dir a volume that user can write (an emptyDir is).
USER 65532:65532
ENTRYPOINT ["/spiffe-helper"]
CMD ["-config", "helper.conf"]
