# ssh-lib.sh - helpers for the SSH transport scenarios (t-ssh-*.sh), on top
# of lib.sh (source that first).  Uses the stock OpenSSH client, sshpass
# for the password form, and the Node test target (tests/peer/target.js).
#
#   ssh_prereqs              skip the whole scenario (exit 0, one "ok # skip"
#                            line) when ssh, node or the SSH build is missing
#   start_ssh_std [ARGS...]  start_std with --transport ws,ssh on port @P3@;
#                            SSH_PORT is the SSH port
#   ssh_target               need_peer + start_target (lib.sh); TPORT is its port
#   ssh_url ID               transport.ssh.url of tunnel ID (fresh token)
#   ssh_field ID FIELD       another transport.ssh field (password, fingerprint)
#   ssh_bg NAME ARGS...      ssh $SSH_OPTS ARGS in the background with stdin
#                            held open (close it with ssh_eof NAME); output
#                            in $T/NAME.out and $T/NAME.err, pid in SSH_PID
#                            and $T/NAME.pid.  SSH_BG_OPTS replaces $SSH_OPTS.
#   wait_connections ID N    until the tunnel has N connections (8 s)
#   wait_file_has FILE TEXT  until FILE contains TEXT (8 s)
#   via_tunnel HOST PATH [curl args]  GET through the HTTP ingress as HOST

SSH_OPTS="-F /dev/null -o StrictHostKeyChecking=no -o UserKnownHostsFile=/dev/null -o ConnectTimeout=5"

ssh_prereqs() {
	if ! command -v ssh >/dev/null 2>&1 || ! command -v node >/dev/null 2>&1; then
		echo "ok - $TNAME: skipped (ssh or node missing) # skip"
		exit 0
	fi
	if ! "$EXPOSRD" --version 2>/dev/null | grep -q '^features:.* ssh'; then
		echo "ok - $TNAME: skipped (built without WITH_SSH) # skip"
		exit 0
	fi
}

start_ssh_std() {
	start_std --transport ws,ssh --transport-ssh-port @P3@ "$@"
	SSH_PORT=$P3_PORT
}

ssh_target() {
	need_peer
	start_target
	TPORT=$TARGET_PORT
}

ssh_field() {
	req GET "$API/v1/tunnel/$1" -H "$AUTH"
	jv "j[\"transport\"][\"ssh\"][\"$2\"]"
}

ssh_url() {
	ssh_field "$1" url
}

ssh_bg() {
	_name=$1
	shift
	rm -f "$T/$_name.in"
	mkfifo "$T/$_name.in"
	# shellcheck disable=SC2086
	ssh ${SSH_BG_OPTS-$SSH_OPTS} "$@" <"$T/$_name.in" >"$T/$_name.out" 2>"$T/$_name.err" &
	SSH_PID=$!
	echo "$SSH_PID" >"$T/$_name.pid"
	ALL_PIDS="$ALL_PIDS $SSH_PID"
	# Hold the write end open in a helper so ssh sees no EOF.
	sleep 3600 >"$T/$_name.in" &
	echo $! >"$T/$_name.holder"
	ALL_PIDS="$ALL_PIDS $!"
}

# ssh_eof NAME: end ssh's stdin.
ssh_eof() {
	kill "$(cat "$T/$1.holder")" 2>/dev/null
}

wait_connections() {
	_n=160
	while [ $_n -gt 0 ]; do
		req GET "$API/v1/tunnel/$1" -H "$AUTH"
		[ "$(jv 'j["connection"]["connections"]')" = "$2" ] && return 0
		sleep 0.05
		_n=$((_n - 1))
	done
	return 1
}

wait_file_has() {
	_n=160
	while [ $_n -gt 0 ]; do
		grep -qF -- "$2" "$1" 2>/dev/null && return 0
		sleep 0.05
		_n=$((_n - 1))
	done
	return 1
}

via_tunnel() {
	_h=$1
	_p=$2
	shift 2
	req GET "$API$_p" -H "Host: $_h" "$@"
}
