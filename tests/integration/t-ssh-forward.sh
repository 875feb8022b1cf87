#!/bin/sh
# SSH transport: tcpip-forward decisions (spec/transports.md §4.5 DECISION),
# forwarded-tcpip channels carrying the client's bind pair (§4.7), refused
# channel types and requests, and a closed forwarded channel that leaves
# the session up.
. "$(dirname "$0")/lib.sh"
. "$(dirname "$0")/ssh-lib.sh"
ssh_prereqs

start_ssh_std
ssh_target
new_account || finish
H=localhost:$API_PORT

# tunnel_with ID TARGET-JSON: PUT a tunnel with ssh + http ingress.
tunnel_with() {
	put_tunnel "$1" "{\"transport\":{\"ssh\":{\"enabled\":true}},\"ingress\":{\"http\":{\"enabled\":true}},\"target\":$2}"
	[ "$STATUS" = 200 ] || fail "PUT tunnel $1" "$STATUS $BODY"
}
target_of() {
	req GET "$API/v1/tunnel/$1" -H "$AUTH"
	jv 'j["target"].get("url", "")'
}

# -R 0:host:port on a tunnel without a target: nothing to answer with.
tunnel_with t-none '{}'
# shellcheck disable=SC2086
timeout 10 ssh -N $SSH_OPTS -o ExitOnForwardFailure=yes -R "0:127.0.0.1:$TPORT" "$(ssh_url t-none)" \
	</dev/null >"$T/none.out" 2>&1
RC=$?
grep -q 'remote port forwarding failed' "$T/none.out"
result "-R 0:... without a target: forwarding refused" $? "rc $RC: $(cat "$T/none.out")"

# -R 0:host:port with a configured target keeps it; reply = its port.
tunnel_with t-zero '{"url":"http://example.com"}'
ssh_bg zero -N -R "0:127.0.0.1:$TPORT" "$(ssh_url t-zero)"
wait_file_has "$T/zero.err" "Allocated port 80 for remote forward"
result "-R 0:... with target http://example.com: allocated port 80" $? "$(cat "$T/zero.err")"
wait_connections t-zero 1
via_tunnel "t-zero.$H" /hello
result "-R 0:...: traffic reaches the target (bind pair localhost:80)" \
	"$([ "$STATUS" = 200 ] && [ "$BODY" = hello ]; echo $?)" "$STATUS $BODY"
result "-R 0:...: the target is kept" "$([ "$(target_of t-zero)" = http://example.com ]; echo $?)" \
	"$(target_of t-zero)"

# A forwarded channel that the target closes ends only that channel.
via_tunnel "t-zero.$H" /close
result "target closes a channel without answering: 502" "$([ "$STATUS" = 502 ]; echo $?)" "$STATUS $BODY"
via_tunnel "t-zero.$H" /hello
result "the session survives a closed channel" "$([ "$STATUS" = 200 ] && [ "$BODY" = hello ]; echo $?)" \
	"$STATUS $BODY"
kill -0 "$SSH_PID" 2>/dev/null
result "ssh is still running" $?
kill "$SSH_PID"

# Bind address + port set host and port, keeping the scheme.
tunnel_with t-keep '{"url":"https://old.example"}'
ssh_bg keep -N -R "new.example:8443:127.0.0.1:$TPORT" "$(ssh_url t-keep)"
wait_connections t-keep 1
sleep 0.2
result "-R new.example:8443:... on an https target: https://new.example:8443" \
	"$([ "$(target_of t-keep)" = https://new.example:8443 ]; echo $?)" "$(target_of t-keep)"
kill "$SSH_PID"

# No target before: http for 80, tcp otherwise (port omitted when default).
tunnel_with tun-tcp '{}'
ssh_bg tcp -N -R "9000:127.0.0.1:$TPORT" "$(ssh_url tun-tcp)"
wait_connections tun-tcp 1
via_tunnel "tun-tcp.$H" /hello
result "-R 9000:... (bind localhost): traffic with bind pair localhost:9000" \
	"$([ "$STATUS" = 200 ] && [ "$BODY" = hello ]; echo $?)" "$STATUS $BODY"
result "-R 9000:... without a target: tcp://localhost:9000" \
	"$([ "$(target_of tun-tcp)" = tcp://localhost:9000 ]; echo $?)" "$(target_of tun-tcp)"
kill "$SSH_PID"

# Several forwards: the last one wins.
tunnel_with tun-two '{}'
ssh_bg two -N -R "a.example:80:127.0.0.1:$TPORT" -R "b.example:80:127.0.0.1:$TPORT" "$(ssh_url tun-two)"
wait_connections tun-two 1
sleep 0.3
result "two -R: the last one sets the target" "$([ "$(target_of tun-two)" = http://b.example ]; echo $?)" \
	"$(target_of tun-two)"
via_tunnel "tun-two.$H" /hello
result "two -R: traffic uses the last bind pair" "$([ "$STATUS" = 200 ] && [ "$BODY" = hello ]; echo $?)" \
	"$STATUS $BODY"

# Channels the client opens (-L) are refused; the session stays up.
LPORT=$(free_ports | cut -d' ' -f1)
kill "$SSH_PID"
ssh_bg local -N -L "$LPORT:127.0.0.1:$TPORT" -R "b.example:80:127.0.0.1:$TPORT" "$(ssh_url tun-two)"
wait_connections tun-two 1
curl -s -m 3 "http://127.0.0.1:$LPORT/hello" >"$T/l.body" 2>&1
wait_file_has "$T/local.err" "administratively prohibited"
result "-L (directun-tcpip): administratively prohibited" $? "$(cat "$T/local.err")"
via_tunnel "tun-two.$H" /hello
result "-L refused: the session still carries traffic" "$([ "$STATUS" = 200 ]; echo $?)" "$STATUS"
kill "$SSH_PID"

# exec/subsystem requests fail.
# shellcheck disable=SC2086
timeout 10 ssh $SSH_OPTS -R "b.example:80:127.0.0.1:$TPORT" "$(ssh_url tun-two)" somecommand \
	</dev/null >"$T/exec.out" 2>&1
RC=$?
grep -q 'exec request failed' "$T/exec.out"
result "ssh host somecommand: exec request failed" $? "rc $RC: $(cat "$T/exec.out")"
# shellcheck disable=SC2086
timeout 10 ssh $SSH_OPTS -s "$(ssh_url tun-two)" sftp </dev/null >"$T/sub.out" 2>&1
grep -q 'subsystem request failed' "$T/sub.out"
result "ssh -s host sftp: subsystem request failed" $? "$(cat "$T/sub.out")"

check "server still answers" GET "$ADMIN/ping" 200
stop_server
finish
