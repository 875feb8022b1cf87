#!/bin/sh
# SNI ingress (spec/ingress.md §3) end to end: curl/openssl s_client (TLS)
# -> exposrd SNI ingress (BearSSL) -> WebSocket transport -> ws-peer.js
# (tests/peer) -> target.js (plain HTTP).  The ingress URL of the tunnel
# object, HTTPS with 10 MiB both ways and checksums, the TLS parameters,
# refused handshakes (unknown name, SNI disabled, no SNI, not TLS) while
# other connections keep working, an SNI-enabled tunnel without a
# transport (handshake, then close_notify), session resumption, startup
# errors, and certificate rotation (mismatched and half-written pairs keep
# the old certificate; an open connection survives the swap).
# Certificates come from tests/data/mkcerts.sh (openssl, private test CA).
. "$(dirname "$0")/lib.sh"

if ! "$EXPOSRD" --version 2>/dev/null | grep -q '^features:.* tls'; then
	echo "ok - $TNAME: skipped (built without WITH_TLS) # skip"
	exit 0
fi
if ! command -v openssl >/dev/null 2>&1; then
	echo "ok - $TNAME: skipped (no openssl command) # skip"
	exit 0
fi
need_peer

CERTS=$T/certs
if ! sh "$TOPDIR/tests/data/mkcerts.sh" "$CERTS" >"$T/mkcerts.log" 2>&1; then
	fail "test certificates made with openssl" "$(tail -5 "$T/mkcerts.log")"
	finish
fi
# The served pair: copies, rotated later in this scenario.
cp "$CERTS/ec.pem" "$T/cert.pem"
cp "$CERTS/ec.key" "$T/key.pem"

serial_of() {
	openssl x509 -in "$1" -noout -serial | sed 's/^serial=//'
}
# served_serial NAME: serial of the certificate served for SNI NAME
served_serial() {
	openssl s_client -connect "127.0.0.1:$SNI_PORT" -servername "$1" </dev/null 2>/dev/null |
		openssl x509 -noout -serial 2>/dev/null | sed 's/^serial=//'
}
# s_client ARGS...: openssl s_client to the SNI port, output in $T/sc.out
s_client() {
	timeout 10 openssl s_client -connect "127.0.0.1:$SNI_PORT" "$@" >"$T/sc.out" 2>&1 </dev/null
}
# wait_log ERE [SECONDS]: until the server log has a matching line
wait_log() {
	_wl=$((${2:-6} * 20))
	while [ $_wl -gt 0 ]; do
		grep -Eq -- "$1" "$SRV_LOG" && return 0
		sleep 0.05
		_wl=$((_wl - 1))
	done
	return 1
}

# ---- startup errors (spec §3.2.6: a load failure is fatal) ----
# startup_refused NAME EXPECTED-TEXT CERT KEY [ARGS...]
startup_refused() {
	_n=$1
	_want=$2
	_c=$3
	_k=$4
	shift 4
	_ports=$(free_ports)
	_p1=${_ports%% *}
	_rest=${_ports#* }
	_p2=${_rest%% *}
	timeout 10 "$EXPOSRD" --api-port "$_p1" --ingress-http-port "$_p1" --ingress http,sni \
		--ingress-http-url "http://localhost:$_p1" --ingress-sni-port "$_p2" \
		--ingress-sni-cert "$_c" --ingress-sni-key "$_k" --log-format text "$@" >"$T/refused.log" 2>&1
	_rc=$?
	[ $_rc -eq 255 ] && grep -q -- "$_want" "$T/refused.log"
	result "startup refused: $_n (exit 255, \"$_want\")" $? "exit $_rc" "$(tail -3 "$T/refused.log")"
}
startup_refused "certificate without a wildcard" "no wildcard subjects" "$CERTS/nowild.pem" "$CERTS/nowild.key"
startup_refused "key does not match" "does not match" "$CERTS/ec.pem" "$CERTS/rot.key"
startup_refused "unreadable certificate" "cannot read $T/missing.pem" "$T/missing.pem" "$CERTS/ec.key"
startup_refused "no wildcard for --ingress-sni-host" "no wildcard subject \*.other.net" \
	"$CERTS/san.pem" "$CERTS/san.key" --ingress-sni-host other.net

# ---- a server with HTTP and SNI ingress ----
start_target
start_std --ingress http,sni --ingress-sni-port @P3@ --ingress-sni-cert "$T/cert.pem" \
	--ingress-sni-key "$T/key.pem" --log-level debug
SNI_PORT=$P3_PORT
grep -q "SNI ingress listening on port $SNI_PORT" "$SRV_LOG" &&
	grep -q 'Loaded certificate .* for \*.example.com' "$SRV_LOG"
result "startup logs 'SNI ingress listening on port $SNI_PORT' and the certificate" $? "$(grep -i sni "$SRV_LOG" | head -3)"
new_account || finish
start_peer p1 --account "$ACC" --tunnel sni-one --target "$TARGET"
if [ $? -ne 0 ]; then
	fail "ws-peer connects (READY)" "$(peer_diag p1)"
	finish
fi

# ---- the tunnel object (api.md §1.3) ----
req GET "$API/v1/tunnel/sni-one" -H "$AUTH"
expect_json "SNI not enabled yet: ingress.sni is {}" 'j["ingress"]["sni"]' '{}'
req_json PATCH "$API/v1/tunnel/sni-one" '{"ingress":{"sni":{"enabled":true}}}' -H "$AUTH"
expect_json "PATCH ingress.sni.enabled=true: ingress.sni.url" 'j["ingress"]["sni"]["url"]' \
	"tcps://sni-one.example.com:$SNI_PORT"
expect_json "ingress.sni.urls" 'j["ingress"]["sni"]["urls"]' "[\"tcps://sni-one.example.com:$SNI_PORT\"]"
req GET "$API/v1/tunnel/sni-one" -H "$AUTH"
expect_json "GET shows ingress.sni.enabled true" 'j["ingress"]["sni"]["enabled"]' true

SNAME=sni-one.example.com
HOSTP=$SNAME:$SNI_PORT
R="--resolve $HOSTP:127.0.0.1 --cacert $CERTS/ca.pem"
PUB=https://$HOSTP
MIB10=10485760

# ---- HTTPS through the tunnel ----
OUT=$(curl -sS --max-time 10 $R "$PUB/hello" 2>&1)
[ "$OUT" = hello ]
result "curl https://sni-one.example.com:PORT/hello (verified by the test CA) -> hello" $? "got: $OUT"

WANT=$(curl -s --max-time 10 "$TARGET/bytes-sha256?n=$MIB10&seed=5")
GOT=$(curl -s --max-time 30 $R "$PUB/bytes?n=$MIB10&seed=5" | sha_of -)
[ "$WANT" = "$GOT $MIB10" ]
result "10 MiB download through TLS intact (sha256)" $? "target says: $WANT" "received: $GOT"

head -c $MIB10 /dev/urandom >"$T/up.bin"
UPSUM=$(sha_of "$T/up.bin")
OUT=$(curl -s --max-time 30 $R -T "$T/up.bin" "$PUB/sha256")
[ "$OUT" = "$UPSUM $MIB10" ]
result "10 MiB upload through TLS intact (sha256)" $? "want $UPSUM $MIB10" "got $OUT"

head -c 3000000 "$T/up.bin" >"$T/up3.bin"
GOT=$(curl -s --max-time 30 $R --data-binary @"$T/up3.bin" "$PUB/echo" | sha_of -)
[ "$GOT" = "$(sha_of "$T/up3.bin")" ]
result "3 MB echoed both ways at once intact" $? "got $GOT"

# a slow reader: the target's bytes wait in the tunnel, nothing is lost
GOT=$(curl -s --max-time 30 $R --limit-rate 2M "$PUB/bytes?n=4194304&seed=9" | sha_of -)
WANT=$(curl -s --max-time 10 "$TARGET/bytes-sha256?n=4194304&seed=9")
[ "$WANT" = "$GOT 4194304" ]
result "4 MiB to a client reading at 2 MB/s intact (backpressure)" $? "want $WANT got $GOT"

# the first label picks the tunnel, whatever follows (spec §3.4 DECISION)
OUT=$(curl -sS -k --max-time 10 --resolve "sni-one.other.net:$SNI_PORT:127.0.0.1" "https://sni-one.other.net:$SNI_PORT/hello" 2>&1)
[ "$OUT" = hello ]
result "SNI sni-one.other.net also reaches tunnel sni-one" $? "got: $OUT"

# ---- TLS parameters ----
s_client -servername "$SNAME" -CAfile "$CERTS/ca.pem" -alpn h2,http/1.1
grep -q 'Protocol *: TLSv1.2' "$T/sc.out" && grep -q 'Cipher is ECDHE-ECDSA-AES128-GCM-SHA256' "$T/sc.out" &&
	grep -q 'No ALPN negotiated' "$T/sc.out" && grep -q 'Verify return code: 0 (ok)' "$T/sc.out"
result "TLS 1.2, ECDHE-ECDSA-AES128-GCM-SHA256, no ALPN although h2 offered, chain verifies" $? \
	"$(grep -E 'Protocol|Cipher is|ALPN|Verify return' "$T/sc.out" | head -5)"
timeout 10 openssl s_client -connect "127.0.0.1:$SNI_PORT" -servername "$SNAME" -tls1_2 \
	-cipher ECDHE-ECDSA-CHACHA20-POLY1305 </dev/null >"$T/sc.out" 2>&1
grep -q 'Cipher is ECDHE-ECDSA-CHACHA20-POLY1305' "$T/sc.out"
result "ChaCha20-Poly1305 when the client offers only that" $? "$(grep -E 'Cipher is|alert' "$T/sc.out" | head -3)"
timeout 10 openssl s_client -connect "127.0.0.1:$SNI_PORT" -servername "$SNAME" -tls1_2 \
	-cipher AES128-SHA256 </dev/null >"$T/sc.out" 2>&1
grep -q 'alert handshake failure\|Cipher is (NONE)' "$T/sc.out"
result "a client offering no forward-secret AEAD suite is refused" $? "$(grep -E 'Cipher is|alert' "$T/sc.out" | head -3)"
timeout 10 openssl s_client -connect "127.0.0.1:$SNI_PORT" -servername "$SNAME" -sess_out "$T/sess" \
	</dev/null >"$T/sc1.out" 2>&1
timeout 10 openssl s_client -connect "127.0.0.1:$SNI_PORT" -servername "$SNAME" -sess_in "$T/sess" \
	</dev/null >"$T/sc.out" 2>&1
grep -q '^Reused, TLSv1.2' "$T/sc.out"
result "session resumption (session id): second connection says Reused" $? "$(grep -E '^(New|Reused)' "$T/sc.out")"

# ---- refused handshakes while another connection keeps working ----
curl -s --max-time 30 $R "$PUB/slow?n=3145728&seed=11&delay=40" -o "$T/slow.bin" &
SLOW=$!
ALL_PIDS="$ALL_PIDS $SLOW"
sleep 0.3

OUT=$(curl -sS --max-time 10 --resolve "nope-tunnel.example.com:$SNI_PORT:127.0.0.1" --cacert "$CERTS/ca.pem" \
	"https://nope-tunnel.example.com:$SNI_PORT/hello" 2>&1)
RC=$?
[ $RC -eq 35 ] && printf %s "$OUT" | grep -q 'unrecognized name'
result "unknown tunnel: handshake aborted (unrecognized_name alert)" $? "curl exit $RC: $OUT"
s_client -noservername
grep -q 'alert handshake failure\|alert number 40' "$T/sc.out" && ! grep -q 'BEGIN CERTIFICATE' "$T/sc.out"
result "no SNI (s_client -noservername): handshake_failure alert, no certificate sent" $? "$(grep -i alert "$T/sc.out" | head -2)"
put_tunnel sni-off '{}'
s_client -servername "sni-off.example.com"
grep -q 'alert number 112' "$T/sc.out"
result "tunnel with SNI ingress disabled: handshake aborted" $? "$(grep -i alert "$T/sc.out" | head -2)"
s_client -servername "bad_name!.example.com"
grep -q 'alert' "$T/sc.out"
result "SNI that is no tunnel id: handshake aborted" $? "$(tail -3 "$T/sc.out")"
OUT=$($PY - "$SNI_PORT" <<'PYEOF'
import socket, sys
port = int(sys.argv[1])
res = []
for payload in (b"GET / HTTP/1.1\r\nHost: x\r\n\r\n", b"\x16\x03\x01\x00\x05\x01\x00\x00\x01\x00", b"\x80" * 3000):
    s = socket.create_connection(("127.0.0.1", port), timeout=5)
    s.sendall(payload)
    try:
        data = s.recv(100)
    except Exception as e:
        data = repr(e).encode()
    res.append(data[:1].hex() if data else "eof")
    s.close()
print(" ".join(res))
PYEOF
)
[ "$OUT" = "15 15 15" ]
result "not TLS / truncated hello / garbage: fatal alert, then closed" $? "got: $OUT"

wait "$SLOW"
SRC=$?
WANT=$(curl -s --max-time 10 "$TARGET/bytes-sha256?n=3145728&seed=11")
[ $SRC -eq 0 ] && [ "$WANT" = "$(sha_of "$T/slow.bin") 3145728" ]
result "a slow download running meanwhile finished intact" $? "curl exit $SRC; want $WANT got $(sha_of "$T/slow.bin")"
OUT=$(curl -sS --max-time 10 $R "$PUB/hello" 2>&1)
[ "$OUT" = hello ]
result "and new connections still work" $? "got: $OUT"

# ---- SNI enabled, no transport connected: handshake, then close_notify ----
put_tunnel sni-idle '{}'
req_json PATCH "$API/v1/tunnel/sni-idle" '{"ingress":{"sni":{"enabled":true}}}' -H "$AUTH"
OUT=$(curl -sS --max-time 10 --resolve "sni-idle.example.com:$SNI_PORT:127.0.0.1" --cacert "$CERTS/ca.pem" \
	"https://sni-idle.example.com:$SNI_PORT/hello" 2>&1)
RC=$?
[ $RC -eq 52 ]
result "unconnected tunnel: handshake completes, empty reply (curl exit 52)" $? "curl exit $RC: $OUT"
# stdin held open: the server, not the end of input, ends the session
(sleep 2) | timeout 10 openssl s_client -connect "127.0.0.1:$SNI_PORT" -servername sni-idle.example.com \
	-CAfile "$CERTS/ca.pem" >"$T/sc.out" 2>&1
grep -q 'Verify return code: 0 (ok)' "$T/sc.out" && grep -q 'Cipher is ECDHE' "$T/sc.out" && grep -q '^closed' "$T/sc.out"
result "unconnected tunnel (s_client): verified handshake, then a clean close" $? "$(tail -4 "$T/sc.out")"
grep -q 'tunnel sni-idle: connection from .* closed: tunnel not connected' "$SRV_LOG"
result "server logs 'tunnel not connected' and keeps running" $? "$(grep sni-idle "$SRV_LOG" | tail -2)"

# ---- certificate rotation (spec §3.3) ----
OLD=$(serial_of "$CERTS/ec.pem")
ROT=$(serial_of "$CERTS/rot.pem")
[ "$(served_serial "$SNAME")" = "$OLD" ]
result "serves the first certificate (serial $OLD)" $? "served $(served_serial "$SNAME")"

# an open connection across the whole rotation
curl -s --max-time 40 $R "$PUB/slow?n=4194304&seed=12&delay=40" -o "$T/slow2.bin" &
SLOW=$!
ALL_PIDS="$ALL_PIDS $SLOW"
sleep 0.3

cp "$CERTS/rot.pem" "$T/cert.pem" # certificate first: it no longer matches the key
wait_log 'Certificate reload failed, still serving the previous certificate: .*does not match'
result "new certificate with the old key: reload refused with a warning" $? "$(grep -i reload "$SRV_LOG" | tail -2)"
[ "$(served_serial "$SNAME")" = "$OLD" ]
result "still serving the old certificate" $? "served $(served_serial "$SNAME")"
cp "$CERTS/rot.key" "$T/key.pem"
wait_log "Reloaded certificate .* serial $(printf %s "$ROT" | tr 'A-F' 'a-f')"
result "new key too: the new pair is loaded" $? "$(grep -i reload "$SRV_LOG" | tail -2)"
[ "$(served_serial "$SNAME")" = "$ROT" ]
result "new connections see the new certificate (serial $ROT)" $? "served $(served_serial "$SNAME")"
OUT=$(curl -sS --max-time 10 $R "$PUB/hello" 2>&1)
[ "$OUT" = hello ]
result "HTTPS works with the new certificate" $? "got: $OUT"

# half-written files keep the current pair
head -c 300 "$CERTS/ec.pem" >"$T/cert.pem"
wait_log 'Certificate reload failed.*(unterminated|malformed|no certificate)'
result "half-written certificate: warning, previous pair kept" $? "$(grep -i reload "$SRV_LOG" | tail -2)"
[ "$(served_serial "$SNAME")" = "$ROT" ]
result "still serving serial $ROT" $? "served $(served_serial "$SNAME")"

# replace both by rename (as tools that write atomically do), to RSA
cp "$CERTS/rsarot.key" "$T/key.new" && mv "$T/key.new" "$T/key.pem"
cp "$CERTS/rsarot.pem" "$T/cert.new" && mv "$T/cert.new" "$T/cert.pem"
RSAROT=$(serial_of "$CERTS/rsarot.pem")
wait_log "Reloaded certificate .* serial $(printf %s "$RSAROT" | tr 'A-F' 'a-f').*RSA 2048"
result "files replaced by rename with an RSA pair: reloaded" $? "$(grep -i reload "$SRV_LOG" | tail -2)"
s_client -servername "$SNAME" -CAfile "$CERTS/ca.pem"
grep -q 'Cipher is ECDHE-RSA-AES128-GCM-SHA256' "$T/sc.out" && grep -q 'Verify return code: 0 (ok)' "$T/sc.out"
result "RSA certificate served: ECDHE-RSA-AES128-GCM-SHA256, verified" $? "$(grep -E 'Cipher is|Verify' "$T/sc.out" | head -2)"

wait "$SLOW"
SRC=$?
WANT=$(curl -s --max-time 10 "$TARGET/bytes-sha256?n=4194304&seed=12")
[ $SRC -eq 0 ] && [ "$WANT" = "$(sha_of "$T/slow2.bin") 4194304" ]
result "a connection open during the rotations finished intact" $? "curl exit $SRC; want $WANT got $(sha_of "$T/slow2.bin")"

stop_pid "$PEER_PID"
stop_server
finish
