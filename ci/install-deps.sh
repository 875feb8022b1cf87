#!/bin/sh
# install-deps.sh - install what building and testing exposrd needs on
# Debian 12 (bookworm).  Safe to run again; uses sudo when not root.
set -eu
SUDO=
if [ "$(id -u)" -ne 0 ]; then
	SUDO=sudo
fi
PACKAGES="gcc make pkg-config libc6-dev libsqlite3-dev libpq-dev libhiredis-dev postgresql redis-server curl python3 ca-certificates libssh-dev openssh-client sshpass libbearssl-dev libssl-dev openssl"
missing=
for p in $PACKAGES; do
	dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'install ok installed' || missing="$missing $p"
done
# Node.js for the test peer: Debian's packages unless a node/npm is present.
command -v node >/dev/null 2>&1 || missing="$missing nodejs"
command -v npm >/dev/null 2>&1 || missing="$missing npm"
if [ -n "$missing" ]; then
	echo "installing:$missing"
	$SUDO apt-get update -q
	DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -q --no-install-recommends $missing
fi

# Test-only Node packages (the ws-multiplex peer), from the npm registry.
TOP=$(cd "$(dirname "$0")/.." && pwd)
if [ ! -d "$TOP/tests/peer/node_modules/@exposr/ws-multiplex" ]; then
	(cd "$TOP/tests/peer" && npm ci --ignore-scripts --no-audit --no-fund)
fi
