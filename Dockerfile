# reflex container image: a release build on the official Rust image (the project's rust-version), run as a
# non-root user on Debian slim with nothing installed but the binary and the CA bundle.
#   docker build -t reflex .
#   docker run -p 8080:8080 -v ./reflex.toml:/etc/reflex/reflex.toml:ro -v reflex-audit:/var/lib/reflex reflex
# The config's [server] listen must be 0.0.0.0:8080 in a container (REFLEX_SERVER_LISTEN below sets it).

FROM rust:1.88-slim-bookworm AS build
WORKDIR /src
# Dependencies first, in a layer of their own: rebuilt only when Cargo.toml or Cargo.lock change.
COPY Cargo.toml Cargo.lock ./
RUN mkdir src \
    && echo 'fn main() {}' > src/main.rs \
    && touch src/lib.rs \
    && cargo build --release --locked \
    && rm -rf src target/release/.fingerprint/reflex-* target/release/deps/reflex-* target/release/deps/libreflex-*
COPY src ./src
COPY migrations ./migrations
COPY reflex.example.toml ./
RUN cargo build --release --locked

FROM debian:bookworm-slim
RUN useradd --system --uid 10001 --user-group --home-dir /var/lib/reflex --create-home --shell /usr/sbin/nologin reflex
# The CA bundle of the build image (same Debian release): AWS and the SNS certificate host are reached over TLS.
COPY --from=build /etc/ssl/certs/ca-certificates.crt /etc/ssl/certs/ca-certificates.crt
COPY --from=build /src/target/release/reflex /usr/local/bin/reflex
COPY reflex.example.toml /etc/reflex/reflex.example.toml
USER 10001:10001
WORKDIR /var/lib/reflex
VOLUME ["/var/lib/reflex"]
ENV REFLEX_CONFIG=/etc/reflex/reflex.toml \
    REFLEX_SERVER_LISTEN=0.0.0.0:8080 \
    REFLEX_AUDIT_URL=sqlite:///var/lib/reflex/audit.db
EXPOSE 8080
# No curl in the image: reflex probes itself (exit 0 when /healthz answers 2xx). With HTTPS on, use
# --url https://127.0.0.1:8080/healthz --insecure.
HEALTHCHECK --interval=30s --timeout=5s --start-period=5s --retries=3 \
    CMD ["/usr/local/bin/reflex", "healthcheck", "--url", "http://127.0.0.1:8080/healthz"]
ENTRYPOINT ["/usr/local/bin/reflex"]
CMD ["serve"]
