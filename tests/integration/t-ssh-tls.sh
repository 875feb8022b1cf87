#!/bin/sh
# SSH transport: https targets (spec/transports.md §4.7): the server runs
# a TLS client over the forwarded channel (SNI = target host), verifying
# the certificate against the system CAs unless
# --transport-ssh-allow-insecure-target; a TLS failure is a failed
# upstream connect (502 TUNNEL_TARGET_CON_FAILED).
. "$(dirname "$0")/lib.sh"
. "$(dirname "$0")/ssh-lib.sh"
ssh_prereqs
if ! "$EXPOSRD" --version 2>/dev/null | grep -q '^features:.* tls'; then
	echo "ok - $TNAME: skipped (built without WITH_TLS) # skip"
	exit 0
fi
if ! command -v openssl >/dev/null 2>&1; then
	echo "ok - $TNAME: skipped (no openssl) # skip"
	exit 0
fi

openssl req -x509 -newkey rsa:2048 -nodes -keyout "$T/key.pem" -out "$T/cert.pem" -days 2 \
	-subj /CN=localhost -addext subjectAltName=DNS:localhost >"$T/openssl.log" 2>&1 ||
	fail "openssl: self-signed certificate" "$(cat "$T/openssl.log")"
need_peer
start_target --tls-cert "$T/cert.pem" --tls-key "$T/key.pem"
TPORT=$TARGET_PORT

# setup ID: tunnel with target https://localhost, connected with -R 0:...
setup() {
	put_tunnel "$1" '{"transport":{"ssh":{"enabled":true}},"ingress":{"http":{"enabled":true}},"target":{"url":"https://localhost"}}'
	ssh_bg "$1" -N -R "0:127.0.0.1:$TPORT" "$(ssh_url "$1")"
	wait_connections "$1" 1
	result "$1: connected (-R 0:... answered with port 443)" $? "$(cat "$T/$1.err")"
}

# ---- insecure: the self-signed target is accepted ----
start_ssh_std --transport-ssh-allow-insecure-target
new_account || finish
setup tls-insecure
H=tls-insecure.localhost:$API_PORT
via_tunnel "$H" /hello
result "https target, insecure allowed: GET through TLS over the channel" \
	"$([ "$STATUS" = 200 ] && [ "$BODY" = hello ]; echo $?)" "$STATUS $BODY"
via_tunnel "$H" /echo-request
expect_json "the target saw a TLS request with the ingress headers" 'j["method"], j["url"]' '["GET","/echo-request"]'
N=3000000
curl -s -m 30 -H "Host: $H" "$API/bytes?n=$N&seed=5" | sha256sum | cut -d' ' -f1 >"$T/down.sum"
req GET "$API/bytes-sha256?n=$N&seed=5" -H "Host: $H"
result "3 MB download over TLS: checksum matches" "$([ "$(cat "$T/down.sum")" = "${BODY%% *}" ]; echo $?)"
head -c "$N" /dev/urandom >"$T/up.bin"
WANT="$(sha256sum "$T/up.bin" | cut -d' ' -f1) $N"
GOT=$(curl -s -m 30 -T "$T/up.bin" -H "Host: $H" "$API/sha256")
result "3 MB upload over TLS: checksum matches" "$([ "$GOT" = "$WANT" ]; echo $?)" "got $GOT want $WANT"
i=0
PIDS=
while [ $i -lt 20 ]; do
	(curl -s -m 20 -o /dev/null -w '%{http_code}\n' -H "Host: $H" "$API/bytes?n=50000&seed=$i" >"$T/p.$i") &
	PIDS="$PIDS $!"
	i=$((i + 1))
done
for p in $PIDS; do wait "$p"; done
result "20 parallel requests over TLS" "$([ "$(cat "$T"/p.* | grep -c '^200$')" = 20 ]; echo $?)" \
	"$(cat "$T"/p.* | sort | uniq -c)"
node "$TOPDIR/tests/peer/wsclient.js" --url "ws://127.0.0.1:$API_PORT/ws" --host "$H" --count 5 >"$T/ws.out" 2>&1
tail -1 "$T/ws.out" | grep -q '^OK 5$'
result "WebSocket echo to a wss-capable target over TLS" $? "$(cat "$T/ws.out")"
stop_server "insecure: server exits 0"

# ---- verified: a self-signed certificate fails the handshake ----
start_ssh_std
new_account || finish
setup tls-verify
via_tunnel "tls-verify.localhost:$API_PORT" /hello
result "https target with an untrusted certificate: 502" "$([ "$STATUS" = 502 ]; echo $?)" "$STATUS $BODY"
expect_json "... TUNNEL_TARGET_CON_FAILED" 'j["error"]' TUNNEL_TARGET_CON_FAILED
grep -q 'TLS to target localhost failed' "$SRV_LOG"
result "the TLS failure is logged" $? "$(grep -i tls "$SRV_LOG" | tail -3)"
kill -0 "$SSH_PID" 2>/dev/null
result "the session stays up" $?
stop_server "verified: server exits 0"
finish
