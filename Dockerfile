# reflex container image: a release build on the official Rust image (the project's rust-version), run as a
# non-root user on distroless (glibc and CA certificates, no shell, no package manager).
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
COPY reflex.example.toml ./
RUN cargo build --release --locked \
    && mkdir -p /out/var/lib/reflex \
    && cp target/release/reflex /out/reflex

FROM gcr.io/distroless/cc-debian12:nonroot
COPY --from=build /out/reflex /usr/local/bin/reflex
COPY --from=build --chown=65532:65532 /out/var/lib/reflex /var/lib/reflex
COPY reflex.example.toml /etc/reflex/reflex.example.toml
USER 65532:65532
WORKDIR /var/lib/reflex
VOLUME ["/var/lib/reflex"]
ENV REFLEX_CONFIG=/etc/reflex/reflex.toml \
    REFLEX_SERVER_LISTEN=0.0.0.0:8080 \
    REFLEX_AUDIT_URL=sqlite:///var/lib/reflex/audit.db
EXPOSE 8080
# No shell or curl in the image: reflex probes itself (exit 0 when /healthz answers 2xx). With HTTPS on, use
# --url https://127.0.0.1:8080/healthz --insecure.
HEALTHCHECK --interval=30s --timeout=5s --start-period=5s --retries=3 \
    CMD ["/usr/local/bin/reflex", "healthcheck", "--url", "http://127.0.0.1:8080/healthz"]
ENTRYPOINT ["/usr/local/bin/reflex"]
CMD ["serve"]
