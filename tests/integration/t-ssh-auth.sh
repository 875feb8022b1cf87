#!/bin/sh
# SSH transport: authentication and registration (spec/transports.md §4.3,
# §4.4, §3.3): "<id>:<token>" with method none, "<id>" with the token as
# password (sshpass), wrong, reused and missing tokens, a disabled account,
# the connection cap, and disconnect/delete through the API ending ssh.
. "$(dirname "$0")/lib.sh"
. "$(dirname "$0")/ssh-lib.sh"
ssh_prereqs

start_ssh_std
ssh_target
new_account || finish
H=ssh-auth.localhost:$API_PORT
put_tunnel ssh-auth '{"transport":{"ssh":{"enabled":true}},"ingress":{"http":{"enabled":true}},"target":{"url":"http://127.0.0.1"}}'
FWD="0:127.0.0.1:$TPORT"

# run_ssh NAME ARGS...: ssh in the foreground (bounded), output in $T/NAME.
run_ssh() {
	_rn=$1
	shift
	# shellcheck disable=SC2086
	timeout 15 ssh -N $SSH_OPTS -o BatchMode=yes "$@" </dev/null >"$T/$_rn" 2>&1
	RC=$?
}

# Wrong token: failure, then SSH_MSG_DISCONNECT.
run_ssh wrong -R "$FWD" "ssh://ssh-auth:$(printf 'x%.0s' $(seq 86))@127.0.0.1:$SSH_PORT"
grep -q 'Received disconnect from .*: authentication failed' "$T/wrong"
result "wrong token: disconnected with 'authentication failed'" $? "rc $RC: $(cat "$T/wrong")"
run_ssh unknown -R "$FWD" "ssh://no-such-tunnel:abc@127.0.0.1:$SSH_PORT"
grep -q 'authentication failed' "$T/unknown"
result "unknown tunnel: disconnected" $? "rc $RC: $(cat "$T/unknown")"

# "<id>" without a password: method none fails listing "password".
run_ssh nopw -p "$SSH_PORT" -R "$FWD" ssh-auth@127.0.0.1
grep -q 'Permission denied (password)' "$T/nopw"
result "user <id> with method none: Permission denied (password)" $? "rc $RC: $(cat "$T/nopw")"

# "<id>" with the token as password (OpenSSH's password prompt, via sshpass).
if command -v sshpass >/dev/null 2>&1; then
	PW=$(ssh_field ssh-auth password)
	# shellcheck disable=SC2086
	sshpass -p "$PW" ssh -N $SSH_OPTS -p "$SSH_PORT" -R "$FWD" ssh-auth@127.0.0.1 </dev/null \
		>"$T/pw.out" 2>"$T/pw.err" &
	PWPID=$!
	ALL_PIDS="$ALL_PIDS $PWPID"
	wait_connections ssh-auth 1
	result "user <id> + token as password (sshpass): connected" $? "$(cat "$T/pw.err")"
	via_tunnel "$H" /hello
	result "password form carries traffic" "$([ "$STATUS" = 200 ] && [ "$BODY" = hello ]; echo $?)" "$STATUS $BODY"
	# The same password again: it was rotated away.
	# shellcheck disable=SC2086
	timeout 15 sshpass -p "$PW" ssh -N $SSH_OPTS -p "$SSH_PORT" -R "$FWD" ssh-auth@127.0.0.1 </dev/null \
		>"$T/pw2" 2>&1
	RC=$?
	grep -q 'authentication failed' "$T/pw2"
	result "a used password is refused" $? "rc $RC: $(cat "$T/pw2")"
	kill "$PWPID"
	wait_exit "$PWPID" 5
	wait_connections ssh-auth 0
else
	echo "ok - $TNAME: password form skipped (no sshpass) # skip"
fi

# A reused token (the URL of a connection that was accepted).
URL=$(ssh_url ssh-auth)
ssh_bg first -R "$FWD" "$URL"
FIRST=$SSH_PID
wait_connections ssh-auth 1
result "first connection with a fresh token" $? "$(cat "$T/first.err")"
run_ssh reuse -R "$FWD" "$URL"
grep -q 'authentication failed' "$T/reuse"
result "the same token again: refused" $? "rc $RC: $(cat "$T/reuse")"

# Up to --transport-max-connections (2), then "unable to establish tunnel".
ssh_bg second -R "$FWD" "$(ssh_url ssh-auth)"
SECOND=$SSH_PID
wait_connections ssh-auth 2
result "second session: 2 connections" $? "$(cat "$T/second.err")"
i=0
OKS=0
while [ $i -lt 6 ]; do
	via_tunnel "$H" /hello -H 'Connection: close'
	[ "$STATUS" = 200 ] && OKS=$((OKS + 1))
	i=$((i + 1))
done
result "traffic over two sessions" "$([ $OKS -eq 6 ]; echo $?)" "$OKS of 6"
run_ssh third -R "$FWD" "$(ssh_url ssh-auth)"
grep -q 'Received disconnect from .*: unable to establish tunnel' "$T/third"
result "third session over the cap: 'unable to establish tunnel'" $? "rc $RC: $(cat "$T/third")"
wait_connections ssh-auth 2
result "still 2 connections" $?

# Disconnect through the API ends both ssh processes.
req POST "$API/v1/tunnel/ssh-auth/disconnect" -H "$AUTH"
result "POST /disconnect" "$([ "$STATUS" = 200 ]; echo $?)" "$STATUS $BODY"
wait_exit "$FIRST" 5 && wait_exit "$SECOND" 5
result "API disconnect: ssh exits" $?
grep -q 'Received disconnect from .*: tunnel disconnected' "$T/first.err"
result "API disconnect: 'tunnel disconnected'" $? "$(cat "$T/first.err")"
wait_connections ssh-auth 0
result "API disconnect: 0 connections" $?

# Deleting the tunnel ends the session too.
ssh_bg del -R "$FWD" "$(ssh_url ssh-auth)"
DEL=$SSH_PID
wait_connections ssh-auth 1
req DELETE "$API/v1/tunnel/ssh-auth" -H "$AUTH"
wait_exit "$DEL" 5
result "tunnel delete: ssh exits" $? "$(cat "$T/del.err")"

# A disabled account cannot connect.
put_tunnel ssh-auth2 '{"transport":{"ssh":{"enabled":true}},"target":{"url":"http://127.0.0.1"}}'
URL=$(ssh_url ssh-auth2)
check "disable the account" PUT "$ADMIN/v1/admin/account/$ACC/disable" 200 -H "$ADMIN_AUTH" \
	-H 'Content-Type: application/json' -d '{"disable":true,"reason":"test"}'
run_ssh disabled -R "$FWD" "$URL"
grep -q 'authentication failed' "$T/disabled"
result "disabled account: refused" $? "rc $RC: $(cat "$T/disabled")"

check "server still answers" GET "$ADMIN/ping" 200
stop_server
finish
