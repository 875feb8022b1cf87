# A container holding nothing but the static binary (issue 7).
#
#   make static                     # build-static/exposrd (musl, stripped)
#   docker build -t exposrd .
#   docker run --rm -p 8080:8080 -p 8081:8081 exposrd \
#       --ingress-http-url http://example.test:8080 --allow-registration
#
# For another architecture: make static ARCH=aarch64, then
#   docker build --build-arg BIN=build-static-aarch64/exposrd --platform linux/arm64 .
# No NSS, no dlopen, no /etc/passwd: the random source is getrandom(2);
# the runtime mounts /etc/hosts and /etc/resolv.conf.  Persistent SQLite
# storage: mount a volume and pass --storage-url sqlite:///data/exposrd.db.
# PostgreSQL URLs need user= (there is no local user to default to).
# (Not built by CI: tests/integration/t-static.sh runs the same binary in an
# empty root directory instead.)
FROM scratch
ARG BIN=build-static/exposrd
COPY ${BIN} /exposrd
USER 65534:65534
EXPOSE 8080 8081
ENTRYPOINT ["/exposrd"]
