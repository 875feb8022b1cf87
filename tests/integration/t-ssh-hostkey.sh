#!/bin/sh
# SSH transport: the host key (spec/transports.md §4.1, config.md
# --transport-ssh-key): generated at start, or given as a path, as PEM text
# (environment) or as base64 of it; RSA keys offer rsa-sha2-512/256; the
# fingerprint in the API and the log is the one OpenSSH computes.
. "$(dirname "$0")/lib.sh"
. "$(dirname "$0")/ssh-lib.sh"
ssh_prereqs
if ! command -v ssh-keygen >/dev/null 2>&1; then
	echo "ok - $TNAME: skipped (no ssh-keygen) # skip"
	exit 0
fi

ssh-keygen -b 2048 -t rsa -f "$T/rsakey" -q -N "" -C test-rsa || fail "ssh-keygen rsa"
ssh-keygen -t ed25519 -f "$T/edkey" -q -N "" -C test-ed || fail "ssh-keygen ed25519"
RSA_FP=$(ssh-keygen -lf "$T/rsakey.pub" | awk '{print $2}')
ED_FP=$(ssh-keygen -lf "$T/edkey.pub" | awk '{print $2}')

# served_fp TYPE: fingerprint of the key the server presents.
served_fp() {
	ssh-keyscan -t "$1" -p "$SSH_PORT" 127.0.0.1 2>/dev/null | ssh-keygen -lf - 2>/dev/null | awk '{print $2}'
}
api_fp() {
	put_tunnel hostkey-test '{"transport":{"ssh":{"enabled":true}}}'
	ssh_field hostkey-test fingerprint
}

# check_key NAME TYPE WANT_FP: the running server uses the expected key.
check_key() {
	grep -q "SSH transport endpoint listening on port $SSH_PORT (host key fingerprint $3)" "$SRV_LOG"
	result "$1: the log shows the key's fingerprint" $? "want $3" "$(grep 'SSH transport' "$SRV_LOG")"
	_fp=$(served_fp "$2")
	result "$1: the server presents the key" "$([ "$_fp" = "$3" ]; echo $?)" "served '$_fp' want $3"
	new_account || return
	_fp=$(api_fp)
	result "$1: the API shows its fingerprint" "$([ "$_fp" = "$3" ]; echo $?)" "api '$_fp' want $3"
}

# ---- generated ----
start_ssh_std
GEN1=$(served_fp ed25519)
echo "$GEN1" | grep -Eq '^SHA256:'
result "no key given: a generated Ed25519 host key" $? "'$GEN1'"
check_key "generated" ed25519 "$GEN1"
stop_server "generated: server exits 0"
start_ssh_std
GEN2=$(served_fp ed25519)
result "a new key at every start" "$([ -n "$GEN2" ] && [ "$GEN1" != "$GEN2" ]; echo $?)" "$GEN1 / $GEN2"
stop_server "generated (2): server exits 0"

# ---- a path ----
start_ssh_std --transport-ssh-key "$T/rsakey"
check_key "RSA key as a path" rsa "$RSA_FP"
# OpenSSH >= 8.8 refuses ssh-rsa (SHA-1): rsa-sha2-* must be offered.
for alg in rsa-sha2-512 rsa-sha2-256; do
	# shellcheck disable=SC2086
	timeout 10 ssh $SSH_OPTS -o BatchMode=yes -o HostKeyAlgorithms=$alg -p "$SSH_PORT" nobody@127.0.0.1 true \
		</dev/null >"$T/alg.out" 2>&1
	grep -q 'Permission denied' "$T/alg.out"
	result "RSA host key: $alg accepted by OpenSSH" $? "$(cat "$T/alg.out")"
done
stop_server "RSA path: server exits 0"

# ---- PEM text in the environment ----
EXPOSR_TRANSPORT_SSH_KEY=$(cat "$T/edkey")
export EXPOSR_TRANSPORT_SSH_KEY
start_ssh_std
unset EXPOSR_TRANSPORT_SSH_KEY
check_key "Ed25519 key as PEM text (EXPOSR_TRANSPORT_SSH_KEY)" ed25519 "$ED_FP"
stop_server "PEM env: server exits 0"

# ---- base64 of the PEM text ----
start_ssh_std --transport-ssh-key "$(base64 -w0 "$T/rsakey")"
check_key "RSA key as base64 of the PEM text" rsa "$RSA_FP"
# A tunnel works with a given key.
ssh_target
put_tunnel key-tunnel '{"transport":{"ssh":{"enabled":true}},"ingress":{"http":{"enabled":true}},"target":{"url":"http://127.0.0.1"}}'
ssh_bg tun -N -R "0:127.0.0.1:$TPORT" "$(ssh_url key-tunnel)"
wait_connections key-tunnel 1
via_tunnel "key-tunnel.localhost:$API_PORT" /hello
result "tunnel over the given RSA key" "$([ "$STATUS" = 200 ] && [ "$BODY" = hello ]; echo $?)" "$STATUS $BODY"
stop_server "base64: server exits 0"

# ---- not a key ----
echo "not a key" >"$T/bad"
"$EXPOSRD" --transport ssh --transport-ssh-key "$T/bad" --ingress-http-url http://localhost:1 >"$T/bad.out" 2>&1
RC=$?
grep -q 'transport-ssh-key requires either path to key or key content' "$T/bad.out"
result "a file that is no key: startup error, exit 255" "$([ $RC = 255 ] && grep -q . "$T/bad.out"; echo $?)" \
	"rc $RC: $(cat "$T/bad.out")"
printf -- '-----BEGIN OPENSSH PRIVATE KEY-----\nAAAA\n-----END OPENSSH PRIVATE KEY-----\n' >"$T/corrupt"
"$EXPOSRD" --transport ssh --transport-ssh-key "$T/corrupt" --ingress-http-url http://localhost:1 \
	--api-port "$(free_ports | cut -d' ' -f1)" >"$T/corrupt.out" 2>&1
RC=$?
grep -q 'cannot read the SSH host key' "$T/corrupt.out"
result "a corrupt OpenSSH key: startup error, exit 255" "$([ $RC = 255 ] && grep -q "cannot read the SSH host key" "$T/corrupt.out"; echo $?)" "rc $RC: $(tail -2 "$T/corrupt.out")"
finish
