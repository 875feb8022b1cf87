#!/bin/sh
# SNI ingress over the SSH transport (spec/ingress.md §3.5): curl (TLS) ->
# exposrd SNI ingress -> `ssh -R` channel -> target.js (plain HTTP).
# HTTPS GET, 10 MiB down and up with checksums, a slow reader, and the
# refusal of an unknown name while the tunnel works.
. "$(dirname "$0")/lib.sh"
. "$(dirname "$0")/ssh-lib.sh"
ssh_prereqs
if ! "$EXPOSRD" --version 2>/dev/null | grep -q '^features:.* tls' || ! command -v openssl >/dev/null 2>&1; then
	echo "ok - $TNAME: skipped (built without WITH_TLS, or no openssl) # skip"
	exit 0
fi

CERTS=$T/certs
if ! sh "$TOPDIR/tests/data/mkcerts.sh" "$CERTS" >"$T/mkcerts.log" 2>&1; then
	fail "test certificates made with openssl" "$(tail -5 "$T/mkcerts.log")"
	finish
fi
SNI_PORT=$($PY -c 'import socket; s=socket.socket(); s.bind(("", 0)); print(s.getsockname()[1])')
start_ssh_std --ingress http,sni --ingress-sni-port "$SNI_PORT" --ingress-sni-cert "$CERTS/rsa.pem" \
	--ingress-sni-key "$CERTS/rsa.key"
ssh_target
new_account || finish
put_tunnel ssh-sni '{"transport":{"ssh":{"enabled":true}},"ingress":{"sni":{"enabled":true}},"target":{"url":"http://127.0.0.1"}}'
expect_json "PUT with ingress.sni.enabled: url" 'j["ingress"]["sni"]["url"]' "tcps://ssh-sni.example.com:$SNI_PORT"
ssh_bg tun -N -R "0:127.0.0.1:$TPORT" "$(ssh_url ssh-sni)"
wait_connections ssh-sni 1
result "ssh -N -R connects" $? "$(cat "$T/tun.err")"

R="--resolve ssh-sni.example.com:$SNI_PORT:127.0.0.1 --cacert $CERTS/ca.pem"
PUB=https://ssh-sni.example.com:$SNI_PORT
OUT=$(curl -sS --max-time 10 $R "$PUB/hello" 2>&1)
[ "$OUT" = hello ]
result "HTTPS through the SSH tunnel (RSA certificate) -> hello" $? "got: $OUT"

N=10485760
WANT=$(curl -s --max-time 10 "$TARGET/bytes-sha256?n=$N&seed=21")
GOT=$(curl -s --max-time 60 $R "$PUB/bytes?n=$N&seed=21" | sha_of -)
[ "$WANT" = "$GOT $N" ]
result "10 MiB download over TLS and SSH intact" $? "want $WANT got $GOT"
head -c "$N" /dev/urandom >"$T/up.bin"
OUT=$(curl -s --max-time 60 $R -T "$T/up.bin" "$PUB/sha256")
[ "$OUT" = "$(sha_of "$T/up.bin") $N" ]
result "10 MiB upload over TLS and SSH intact" $? "got $OUT"
GOT=$(curl -s --max-time 60 $R --limit-rate 2M "$PUB/bytes?n=4000000&seed=22" | sha_of -)
WANT=$(curl -s --max-time 10 "$TARGET/bytes-sha256?n=4000000&seed=22")
[ "$WANT" = "$GOT 4000000" ]
result "4 MB to a 2 MB/s reader intact" $? "want $WANT got $GOT"

OUT=$(curl -sS --max-time 10 --resolve "no-such-tunnel.example.com:$SNI_PORT:127.0.0.1" --cacert "$CERTS/ca.pem" \
	"https://no-such-tunnel.example.com:$SNI_PORT/hello" 2>&1)
printf %s "$OUT" | grep -q 'unrecognized name'
result "unknown name refused" $? "$OUT"
OUT=$(curl -sS --max-time 10 $R "$PUB/hello" 2>&1)
[ "$OUT" = hello ]
result "the tunnel still works afterwards" $? "got: $OUT"

ssh_eof tun
stop_server
finish
