#!/bin/sh
# The static binary (make static) with nothing around it: an empty root
# directory holding only the binary and /etc/hosts (no /dev, /proc, /tmp,
# /etc/passwd, no libc), entered with chroot (as root) or `unshare -r
# chroot`.  It must start, serve /ping and the API with SQLite storage
# inside the root, and carry an HTTP request through a tunnel
# (tests/peer/ws-peer.js and target.js outside, over loopback: the network
# namespace is shared).  Also: the binary is static, and the x86_64 small
# flavour is within the 2 MiB budget.
#
#   STATIC_BIN=build-static-aarch64/exposrd STATIC_QEMU=qemu-aarch64-static
# runs the same under qemu-user (the static qemu is copied into the root).
# Skips only when the binary is missing; ci/static-check.sh builds it.
. "$(dirname "$0")/lib.sh"

BIN=${STATIC_BIN:-$TOPDIR/build-static/exposrd}
case $BIN in /*) ;; *) BIN=$TOPDIR/$BIN ;; esac
QEMU=${STATIC_QEMU:-}
BUDGET=2097152
[ -n "$QEMU" ] && TNAME="$TNAME($(basename "$QEMU" | sed 's/^qemu-//; s/-static$//'))"

if [ ! -f "$BIN" ]; then
	echo "ok - $TNAME: skipped: no static binary (run make static)"
	exit 0
fi

# ---- the file itself ----
if command -v readelf >/dev/null 2>&1; then
	! readelf -l "$BIN" 2>/dev/null | grep -q INTERP && readelf -h "$BIN" >/dev/null 2>&1
	result "binary has no ELF interpreter (fully static)" $? "$(readelf -l "$BIN" 2>&1 | grep -A1 INTERP)"
	if readelf -d "$BIN" 2>/dev/null | grep -q NEEDED; then
		fail "binary needs no shared libraries" "$(readelf -d "$BIN" | grep NEEDED)"
	else
		ok "binary needs no shared libraries"
	fi
fi
SIZE=$(wc -c <"$BIN")
diag "$BIN: $SIZE bytes"
if [ -z "$QEMU" ] && [ "$BIN" = "$TOPDIR/build-static/exposrd" ]; then
	[ "$SIZE" -le "$BUDGET" ]
	result "x86_64 small flavour: $SIZE bytes stripped <= 2 MiB" $?
fi

# ---- the empty root ----
ROOT=$T/root
mkdir -p "$ROOT/etc"
cp "$BIN" "$ROOT/exposrd"
printf '127.0.0.1 localhost\n::1 localhost ip6-localhost\n' >"$ROOT/etc/hosts"
QARG=
if [ -n "$QEMU" ]; then
	QPATH=$(command -v "$QEMU") || {
		fail "$QEMU is installed (apt-get install qemu-user-static)"
		finish
	}
	cp "$QPATH" "$ROOT/qemu"
	QARG=/qemu
fi
if [ "$(id -u)" -eq 0 ]; then
	ENTER="chroot"
else
	ENTER="unshare -r chroot"
fi
# the server PID is the binary's: unshare and chroot exec
cat >"$T/run-static" <<EOF
#!/bin/sh
exec $ENTER "$ROOT" $QARG /exposrd "\$@"
EOF
chmod +x "$T/run-static"
EXPOSRD=$T/run-static
diag "root: $(cd "$ROOT" && find . -mindepth 1 | sort | tr '\n' ' ')"

OUT=$("$EXPOSRD" --version 2>&1)
printf '%s\n' "$OUT" | grep -q '^features:'
result "--version in the empty root" $? "$OUT"
diag "$(printf '%s\n' "$OUT" | grep '^features:')"

# read by start_server (lib.sh)
# shellcheck disable=SC2034
[ -n "$QEMU" ] && SRV_WAIT_SECONDS=40
SSH_ARGS=
if printf '%s\n' "$OUT" | grep -q '^features:.* ssh'; then
	# the host key is generated at startup: libssh's RNG without /dev
	SSH_ARGS="--transport ws,ssh --transport-ssh-port @P3@"
fi
# shellcheck disable=SC2086
start_std --storage-url sqlite:///exposrd.db $SSH_ARGS
if [ -n "$SSH_ARGS" ] && command -v ssh-keyscan >/dev/null 2>&1; then
	KEYS=$(ssh-keyscan -T 20 -p "$P3_PORT" 127.0.0.1 2>/dev/null)
	printf '%s\n' "$KEYS" | grep -q 'ssh-ed25519\|ecdsa-sha2\|ssh-rsa'
	result "SSH transport: key exchange with the generated host key" $? "ssh-keyscan: $KEYS"
fi
check "GET /ping (admin)" GET "$ADMIN/ping" 200
new_account && ok "account created (admin API)"
put_tunnel st-one
if [ "$STATUS" = 201 ] || [ "$STATUS" = 200 ]; then
	ok "tunnel st-one created"
else
	fail "tunnel st-one created" "status $STATUS body $BODY"
fi
check "GET the tunnel back" GET "$API/v1/tunnel/st-one" 200 -H "$AUTH"

need_peer
start_target
start_peer p1 --account "$ACC" --tunnel st-one --target "$TARGET"
if [ $? -ne 0 ]; then
	fail "ws-peer connects (READY)" "$(peer_diag p1)"
	finish
fi
ok "ws-peer connected over the WebSocket transport"
HOSTP=st-one.localhost:$API_PORT
req GET "http://$HOSTP/hello" --resolve "$HOSTP:127.0.0.1"
[ "$STATUS" = 200 ] && [ "$BODY" = hello ]
result "GET /hello through the tunnel -> 200 hello" $? "status $STATUS body $(printf %s "$BODY" | head -c 200)"
OUT=$(printf 'static-echo' | curl -s --max-time 10 --resolve "$HOSTP:127.0.0.1" --data-binary @- "http://$HOSTP/echo")
[ "$OUT" = static-echo ]
result "POST /echo through the tunnel" $? "got: $OUT"

stop_pid "$PEER_PID"
stop_server
[ -s "$ROOT/exposrd.db" ]
result "SQLite database written inside the root" $?
finish
