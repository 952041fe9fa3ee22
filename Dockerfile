# Build stage: the same install script and test command as the README; the image is only
# produced when every test passes.
FROM debian:bookworm-slim AS build
WORKDIR /src
COPY scripts/install-deps.sh scripts/
RUN scripts/install-deps.sh
COPY . .
RUN scripts/test.sh && strip build/cgpu-guard

# Runtime stage: the binary and the shared libraries it loads, nothing else.
FROM debian:bookworm-slim
COPY scripts/install-deps.sh /tmp/install-deps.sh
RUN /tmp/install-deps.sh --runtime && rm -rf /var/lib/apt/lists/* /tmp/install-deps.sh
COPY --from=build /src/build/cgpu-guard /usr/local/bin/cgpu-guard
USER 65532:65532
EXPOSE 8443 9090
ENTRYPOINT ["cgpu-guard", "serve"]
