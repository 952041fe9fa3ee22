# Build stage: the same install script and test command as the README (scripts/install-deps.sh,
# then scripts/test.sh); the image is only produced when every test passes.
FROM debian:bookworm-slim AS build
WORKDIR /src
# The install script alone first, so its layer is reused while only the sources change. Besides
# the Debian packages it fetches helm and kubectl and runs npm ci for the chart tests, hence the
# npm manifests of tests/deploy/.
COPY scripts/install-deps.sh scripts/
COPY tests/deploy/package.json tests/deploy/package-lock.json tests/deploy/
RUN scripts/install-deps.sh
COPY . .
RUN scripts/test.sh && strip build/cgpu-guard

# Runtime stage: the binary and the shared libraries it loads, nothing else.
FROM debian:bookworm-slim
COPY scripts/install-deps.sh /tmp/install-deps.sh
RUN /tmp/install-deps.sh --runtime && rm -rf /var/lib/apt/lists/* /tmp/install-deps.sh
COPY --from=build /src/build/cgpu-guard /usr/local/bin/cgpu-guard
# The chart runs it as this user too (podSecurityContext.runAsUser).
USER 65532:65532
EXPOSE 8443 9090
ENTRYPOINT ["cgpu-guard", "serve"]
