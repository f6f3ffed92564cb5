# reflex container image: a release build on the official Rust image, run as a non-root user on Debian slim.
# Build: docker build -t reflex .   Run: docker run -v ./reflex.toml:/etc/reflex/reflex.toml:ro -v reflex-data:/var/lib/reflex reflex

FROM rust:1.88-slim-bookworm AS build
WORKDIR /src
# Dependencies first, in a layer of their own: it is rebuilt only when Cargo.toml or Cargo.lock change.
COPY Cargo.toml Cargo.lock ./
RUN mkdir src && echo 'fn main() {}' > src/main.rs && touch src/lib.rs \
    && cargo build --release --locked \
    && rm -rf src target/release/.fingerprint/reflex-*
COPY src ./src
COPY reflex.example.toml ./
RUN cargo build --release --locked

FROM debian:bookworm-slim
RUN apt-get update \
    && apt-get install -y --no-install-recommends ca-certificates \
    && rm -rf /var/lib/apt/lists/* \
    && useradd --system --uid 10001 --home-dir /var/lib/reflex --create-home reflex
COPY --from=build /src/target/release/reflex /usr/local/bin/reflex
COPY reflex.example.toml /etc/reflex/reflex.example.toml
USER 10001
WORKDIR /var/lib/reflex
VOLUME ["/var/lib/reflex"]
ENV REFLEX_CONFIG=/etc/reflex/reflex.toml \
    REFLEX_SERVER_LISTEN=0.0.0.0:8080 \
    REFLEX_AUDIT_URL=sqlite:///var/lib/reflex/audit.db
EXPOSE 8080
ENTRYPOINT ["/usr/local/bin/reflex"]
CMD ["serve"]
