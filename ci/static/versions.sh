# versions.sh - the exact Debian 12 (bookworm, incl. bookworm-security)
# source packages the static builds use.  Sourced by build-deps.sh.
# Bump a version here (after `apt-cache showsrc PKG`) to take a security
# update; the dependency cache is keyed by these strings, so the next
# `make static` rebuilds just that library.
# libssh, postgresql-15 and openssl have newer bookworm-security uploads
# (0.10.6-0+deb12u3, 15.20-0+deb12u1, 3.0.22-1~deb12u2) whose source files
# this workplace's mirror does not serve (404): the pins below are the
# newest bookworm (point release) versions.  Where the security archive
# is reachable, pin those instead.
SQLITE3_VERSION=3.40.1-2+deb12u2
BEARSSL_VERSION=0.6+dfsg.1-3
HIREDIS_VERSION=0.14.1-3
MBEDTLS_VERSION=2.28.3-1
LIBSSH_VERSION=0.10.6-0+deb12u2
POSTGRESQL_VERSION=15.18-0+deb12u1
OPENSSL_VERSION=3.0.20-1~deb12u2
