# Multi-stage build: dependencies are compiled in a layer of their own, cached until Cargo.toml
# or Cargo.lock change; the runtime image holds only the binary and runs as a non-root user.

FROM rust:1.95-slim-bookworm AS build
WORKDIR /src
COPY Cargo.toml Cargo.lock ./
# Stub sources with the manifest's targets (every [[bench]] and [[test]] it names), to build (and
# cache) the dependencies alone. The test stubs stay: cargo wants every named target's file, and
# the image builds only the binary.
RUN mkdir -p src benches tests \
 && echo 'fn main() {}' > src/main.rs && touch src/lib.rs \
 && for b in $(grep -A1 '^\[\[bench\]\]' Cargo.toml | sed -n 's/^name = "\(.*\)"/\1/p'); do \
        echo 'fn main() {}' > "benches/$b.rs"; done \
 && for t in $(grep -A1 '^\[\[test\]\]' Cargo.toml | sed -n 's/^name = "\(.*\)"/\1/p'); do \
        echo 'fn main() {}' > "tests/$t.rs"; done \
 && cargo build --release --locked --bin gossipchain \
 && rm -rf src benches
COPY src src
COPY benches benches
RUN touch src/main.rs src/lib.rs && cargo build --release --locked --bin gossipchain

FROM debian:bookworm-slim
RUN useradd --create-home --uid 10001 gossip && mkdir /data && chown gossip:gossip /data
COPY --from=build /src/target/release/gossipchain /usr/local/bin/gossipchain
USER gossip
ENV GOSSIPCHAIN_DATA_DIR=/data
VOLUME /data
EXPOSE 4001
ENTRYPOINT ["gossipchain"]
CMD ["node", "--listen", "/ip4/0.0.0.0/tcp/4001"]
