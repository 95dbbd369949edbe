# redveil container image: a release build on Debian bookworm, run as a non-root user.
#   docker build -t redveil .
#   docker run -p 5439:5439 -v ./proxy.toml:/etc/redveil/proxy.toml:ro redveil

FROM rust:1-bookworm AS builder
WORKDIR /src
# The whole context (see .dockerignore): the manifest may name targets outside src/.
COPY . .
# Only the binary is needed; benches, tests and examples stay out of the image.
RUN cargo build --release --locked --bin redveil \
    && install -m 755 target/release/redveil /usr/local/bin/redveil

FROM debian:bookworm-slim
RUN apt-get update \
    && apt-get install -y --no-install-recommends ca-certificates \
    && rm -rf /var/lib/apt/lists/* \
    && groupadd --system redveil \
    && useradd --system --gid redveil --home-dir /nonexistent --shell /usr/sbin/nologin redveil \
    && mkdir -p /etc/redveil
COPY --from=builder /usr/local/bin/redveil /usr/local/bin/redveil
USER redveil
EXPOSE 5439
ENTRYPOINT ["redveil"]
CMD ["--config", "/etc/redveil/proxy.toml"]
