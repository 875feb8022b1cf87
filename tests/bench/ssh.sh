#!/bin/bash
# tests/bench/ssh.sh - the SSH transport beside the WebSocket one (run by
# run.sh: `sh tests/bench/run.sh ssh`).  Loopback only, about 60 s.
#
#   origin   nginx, 1 worker, a 1 KiB file
#   direct   wrk straight to nginx
#   ws       exposrd + tunnel-client.c (ws-multiplex) with 2 WebSocket
#            connections, target nginx
#   ssh      exposrd + the stock OpenSSH client: `ssh -N -R 0:127.0.0.1:<nginx>`
#            (BENCH_SSH_SESSIONS sessions, default 1), target http://127.0.0.1
#
#   1. wrk -t2 -c50 -d10s --latency (report.lua) for each row: req/s, p99,
#      CPU seconds per 10,000 requests of exposrd and of the tunnel client
#      (tunnel-client.c or ssh); ratios ssh/direct and ssh/ws
#   2. exposrd VmRSS per idle SSH tunnel: BENCH_SSH_IDLE (50) sessions of
#      `ssh -N -R` on one tunnel, (RSS_with - RSS_before) / N
#   3. the issue's targets (CPU <= 0.5 s per 10,000 requests, p99 <= 10 ms,
#      <= 64 KiB per idle SSH tunnel) with PASS/FAIL; the exit status is 1
#      only when the benchmark itself could not run
#
# Environment: EXPOSRD (default ./exposrd, built WITH_SSH), BENCH_DURATION
# (10), BENCH_CONNS (50), BENCH_THREADS (2), BENCH_SSH_SESSIONS (1),
# BENCH_SSH_IDLE (50), BENCH_RESULTS (copy the table there).
# wrk and nginx are installed with apt-get when missing.
if [ -z "${BASH_VERSION:-}" ]; then
	exec bash "$0" "$@"
fi
set -u

HERE=$(cd "$(dirname "$0")" && pwd)
TOP=$(cd "$HERE/../.." && pwd)
EXPOSRD=${EXPOSRD:-$TOP/exposrd}
DURATION=${BENCH_DURATION:-10}
CONNS=${BENCH_CONNS:-50}
THREADS=${BENCH_THREADS:-2}
SSH_SESSIONS=${BENCH_SSH_SESSIONS:-1}
SSH_IDLE=${BENCH_SSH_IDLE:-50}
RESULTS=${BENCH_RESULTS:-}
T_BEGIN=$(date +%s)
TMP=$(mktemp -d "${TMPDIR:-/tmp}/exposrd-sshbench.XXXXXX") || exit 1
PIDS=()

alive() {
	local s
	s=$(sed 's/^.*) //' "/proc/$1/stat" 2>/dev/null | cut -c1)
	[ -n "$s" ] && [ "$s" != Z ]
}
stop_pid() {
	[ -n "$1" ] || return 0
	alive "$1" || { wait "$1" 2>/dev/null; return 0; }
	kill -TERM "$1" 2>/dev/null
	for _ in $(seq 1 20); do
		alive "$1" || break
		sleep 0.1
	done
	kill -KILL "$1" 2>/dev/null
	wait "$1" 2>/dev/null
	return 0
}
cleanup() {
	local i
	for ((i = ${#PIDS[@]} - 1; i >= 0; i--)); do
		stop_pid "${PIDS[$i]}"
	done
	rm -rf "$TMP"
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

say() { printf '%s\n' "$*" >&2; }
summary() { printf '%-52s %s\n' "$1" "$2" >>"$TMP/summary"; }
target() {
	local verdict=FAIL
	[ "$3" = 1 ] && verdict=PASS
	printf '%-4s %-46s %-12s %s\n' "$verdict" "$1" "$2" "$4" >>"$TMP/targets"
}
anomaly() {
	say "  ANOMALY: $*"
	printf '%s\n' "$*" >>"$TMP/anomalies"
}
fail() {
	anomaly "$*"
	say "ssh bench: $*"
	exit 1
}
calc() { awk "BEGIN { $1 }"; }
: >"$TMP/summary"
: >"$TMP/targets"
: >"$TMP/anomalies"

# ---------------------------------------------------------------- tools
[ -x "$EXPOSRD" ] || fail "$EXPOSRD not found (run make)"
"$EXPOSRD" --version | grep -q '^features:.* ssh' || fail "$EXPOSRD was built without WITH_SSH"
cp "$EXPOSRD" "$TMP/exposrd" || exit 1
command -v ssh >/dev/null 2>&1 || fail "ssh (openssh-client) is not installed"
BT=$TMP/benchtool
cc -O2 -std=c99 -D_POSIX_C_SOURCE=200809L -Wall -o "$BT" "$HERE/benchtool.c" || fail "cannot compile benchtool.c"
if [ ! -f "$TOP/build/libexposrd.a" ]; then
	make -s -C "$TOP" build/libexposrd.a >&2 || fail "cannot build build/libexposrd.a"
fi
MKVARS=$(make -s --no-print-directory -C "$TOP" \
	--eval '__bench_vars: ; @: $(info $(ALL_CFLAGS)) $(info $(LIBS))' __bench_vars 2>/dev/null)
TC_CFLAGS=$(printf '%s\n' "$MKVARS" | sed -n 1p)
TC_LIBS=$(printf '%s\n' "$MKVARS" | sed -n 2p)
TC=$TMP/tunnel-client
if ! (cd "$TOP" && eval "cc $TC_CFLAGS -O2 -o \"\$TC\" tests/bench/tunnel-client.c build/libexposrd.a $TC_LIBS"); then
	fail "cannot compile tunnel-client.c"
fi
try_install() {
	command -v "$2" >/dev/null 2>&1 && return 0
	[ -x "/usr/sbin/$2" ] && return 0
	if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then
		say "ssh bench: installing $1 ..."
		timeout 90 apt-get install -y -q "$1" >"$TMP/apt-$1.log" 2>&1 ||
			{ timeout 60 apt-get update -q >/dev/null 2>&1 &&
				timeout 90 apt-get install -y -q "$1" >"$TMP/apt-$1.log" 2>&1; }
	fi
	command -v "$2" >/dev/null 2>&1 || [ -x "/usr/sbin/$2" ]
}
try_install wrk wrk || fail "wrk is not installed and could not be installed"
try_install nginx nginx || fail "nginx is not installed and could not be installed"
NGINX=$(command -v nginx 2>/dev/null || echo /usr/sbin/nginx)
freeport() { "$BT" freeport; }
USED_PORTS=" "
newport() {
	local p
	for _ in 1 2 3 4 5 6 7 8 9 10; do
		p=$(freeport)
		case $USED_PORTS in *" $p "*) continue ;; esac
		USED_PORTS="$USED_PORTS$p "
		echo "$p"
		return 0
	done
	return 1
}
cpu_ticks() {
	local t=0 p v
	for p in "$@"; do
		v=$(sed 's/^.*) //' "/proc/$p/stat" 2>/dev/null | awk '{ print $12 + $13 }')
		t=$((t + ${v:-0}))
	done
	echo "$t"
}
HZ=$(getconf CLK_TCK)
status_kib() { awk -v k="$2:" '$1 == k { print $2 }' "/proc/$1/status"; }
http_code() {
	local url=$1
	shift
	curl -s -m 5 -o "$TMP/curl.out" -w '%{http_code}' "$@" "$url"
}
wait_http() {
	for _ in $(seq 1 50); do
		[ "$(curl -s -m 1 -o /dev/null -w '%{http_code}' "$@")" != 000 ] && return 0
		sleep 0.1
	done
	return 1
}
LOAD_START=$(cut -d' ' -f1-3 /proc/loadavg)
say "exposrd SSH transport bench: $EXPOSRD ($(nproc) CPUs shared by everything; load average $LOAD_START)"

# ---------------------------------------------------------------- origin
NPORT=$(newport)
NG=$TMP/nginx
mkdir -p "$NG/www" "$NG/tmp"
head -c 1024 /dev/urandom | od -An -tx1 | tr -d ' \n' | head -c 1024 >"$NG/www/1k"
cat >"$NG/nginx.conf" <<EOF
worker_processes 1;
daemon off;
pid $NG/nginx.pid;
error_log $NG/error.log warn;
events { worker_connections 4096; }
http {
    access_log off;
    keepalive_requests 1000000;
    keepalive_timeout 75s;
    client_body_temp_path $NG/tmp/body;
    proxy_temp_path $NG/tmp/proxy;
    fastcgi_temp_path $NG/tmp/fastcgi;
    uwsgi_temp_path $NG/tmp/uwsgi;
    scgi_temp_path $NG/tmp/scgi;
    server {
        listen 127.0.0.1:$NPORT;
        location / { root $NG/www; default_type application/octet-stream; }
    }
}
EOF
chmod -R a+rX "$TMP"
"$NGINX" -p "$NG" -c "$NG/nginx.conf" -e "$NG/error.log" >"$NG/stdout.log" 2>&1 &
PIDS+=("$!")
wait_http "http://127.0.0.1:$NPORT/1k" || fail "nginx did not start: $(tail -3 "$NG/error.log" | tr '\n' ' ')"

# ---------------------------------------------------------------- exposrd helpers
# start_server NAME PORT SSHPORT MAXCONN: sets SRV_PID
start_server() {
	"$TMP/exposrd" --allow-registration --ingress-http-url "http://localhost:$2" -p "$2" \
		--ingress-http-port "$2" --log-level warn --transport ws,ssh --transport-ssh-port "$3" \
		--transport-max-connections "$4" >"$TMP/$1.log" 2>&1 &
	SRV_PID=$!
	PIDS+=("$SRV_PID")
	wait_http "http://127.0.0.1:$2/v1/tunnel/x" || fail "exposrd ($1) did not come up: $(tail -3 "$TMP/$1.log" | tr '\n' ' ')"
}
# make_tunnel PORT ID: account + tunnel (ssh, http ingress, target); sets TOKEN
make_tunnel() {
	local acct
	acct=$(curl -s -m 5 -X POST "http://127.0.0.1:$1/v1/account" | sed -n 's/.*"account_id":"\([^"]*\)".*/\1/p')
	[ -n "$acct" ] || fail "cannot create an account"
	ACCOUNT=$acct
	TOKEN=$(printf %s "$acct" | base64)
	curl -s -m 5 -o /dev/null -X PUT -H "Authorization: Bearer $TOKEN" -H 'Content-Type: application/json' \
		-d '{"transport":{"ssh":{"enabled":true}},"ingress":{"http":{"enabled":true}},"target":{"url":"http://127.0.0.1"}}' \
		"http://127.0.0.1:$1/v1/tunnel/$2"
}
tunnel_json() { curl -s -m 5 -H "Authorization: Bearer $TOKEN" "http://127.0.0.1:$1/v1/tunnel/$2"; }
ssh_url() { tunnel_json "$1" "$2" | sed -n 's/.*"url":"\(ssh:[^"]*\)".*/\1/p'; }
connections() { tunnel_json "$1" "$2" | sed -n 's/.*"connections":\([0-9]*\).*/\1/p'; }
# start_ssh PORT ID NAME: one `ssh -N -R` session; appends its pid to SSH_PIDS
SSH_PIDS=()
start_ssh() {
	local url want
	url=$(ssh_url "$1" "$2")
	want=$(($(connections "$1" "$2") + 1))
	ssh -F /dev/null -o StrictHostKeyChecking=no -o UserKnownHostsFile=/dev/null -o LogLevel=ERROR -N \
		-R "0:127.0.0.1:$NPORT" "$url" </dev/null >"$TMP/$3.out" 2>"$TMP/$3.err" &
	SSH_PIDS+=("$!")
	PIDS+=("$!")
	for _ in $(seq 1 100); do
		[ "$(connections "$1" "$2")" = "$want" ] && return 0
		sleep 0.05
	done
	fail "ssh session $3 did not connect: $(tail -3 "$TMP/$3.err" | tr '\n' ' ')"
}

# ---------------------------------------------------------------- 1. load
run_wrk() {
	local name=$1 url=$2 line dur
	shift 2
	timeout $((DURATION + 30)) wrk -t"$THREADS" -c"$CONNS" -d"${DURATION}s" --latency \
		-s "$HERE/report.lua" "$@" "$url" >"$TMP/wrk-$name.txt" 2>&1
	line=$(grep '^BENCHRESULT' "$TMP/wrk-$name.txt")
	W_REQ=0 W_RPS=0 W_P99=0
	[ -n "$line" ] || { anomaly "$name: wrk produced no result"; return 1; }
	field() { printf '%s\n' "$line" | sed "s/.* $1=\([0-9]*\).*/\1/"; }
	W_REQ=$(field requests)
	dur=$(field duration_us)
	W_RPS=$(calc "printf \"%.0f\", $W_REQ / ($dur / 1e6)")
	W_P99=$(calc "printf \"%.2f\", $(field p99_us) / 1000")
	local err="connect $(field err_connect), read $(field err_read), write $(field err_write), status $(field err_status), timeout $(field err_timeout)"
	[ "$err" = "connect 0, read 0, write 0, status 0, timeout 0" ] || anomaly "$name: wrk errors: $err"
}
per10k() { calc "if ($2 > 0) printf \"%.3f\", $1 / $HZ * 10000 / $2; else print \"?\""; }

SPORT=$(newport)
SSHPORT=$(newport)
start_server load "$SPORT" "$SSHPORT" $((SSH_SESSIONS > 2 ? SSH_SESSIONS : 2))
LOAD_PID=$SRV_PID
make_tunnel "$SPORT" sshbench
for i in $(seq 1 "$SSH_SESSIONS"); do
	start_ssh "$SPORT" sshbench "load-$i"
done
"$TC" --api "http://127.0.0.1:$SPORT" --account "$ACCOUNT" --tunnel wsbench --target "127.0.0.1:$NPORT" \
	--connections 2 >"$TMP/tc.out" 2>"$TMP/tc.err" </dev/null &
TC_PID=$!
PIDS+=("$TC_PID")
for _ in $(seq 1 100); do
	grep -q '^READY' "$TMP/tc.out" 2>/dev/null && break
	sleep 0.1
done
grep -q '^READY' "$TMP/tc.out" || fail "tunnel client not ready: $(tail -3 "$TMP/tc.err" | tr '\n' ' ')"
for h in sshbench wsbench; do
	code=$(http_code "http://127.0.0.1:$SPORT/1k" -H "Host: $h.localhost:$SPORT")
	[ "$code" = 200 ] && cmp -s "$TMP/curl.out" "$NG/www/1k" || fail "GET /1k through $h: $code"
done

declare -A RPS P99 CPU_SRV CPU_CL
for via in direct ws ssh; do
	case $via in
	direct) url=http://127.0.0.1:$NPORT/1k args=() cl=() ;;
	ws) url=http://127.0.0.1:$SPORT/1k args=(-H "Host: wsbench.localhost:$SPORT") cl=("$TC_PID") ;;
	ssh) url=http://127.0.0.1:$SPORT/1k args=(-H "Host: sshbench.localhost:$SPORT") cl=("${SSH_PIDS[@]}") ;;
	esac
	say "[1] 1k $via: wrk -t$THREADS -c$CONNS -d${DURATION}s $url"
	s0=$(cpu_ticks "$LOAD_PID")
	c0=$(cpu_ticks "${cl[@]}")
	run_wrk "$via" "$url" "${args[@]}"
	s1=$(cpu_ticks "$LOAD_PID")
	c1=$(cpu_ticks "${cl[@]}")
	RPS[$via]=$W_RPS
	P99[$via]=$W_P99
	CPU_SRV[$via]=$(per10k $((s1 - s0)) "$W_REQ")
	CPU_CL[$via]=$(per10k $((c1 - c0)) "$W_REQ")
	say "    => ${W_RPS} req/s, p99 ${W_P99} ms, exposrd ${CPU_SRV[$via]} CPU-s/10k"
done
alive "$LOAD_PID" || fail "exposrd died during the load: $(tail -3 "$TMP/load.log" | tr '\n' ' ')"
for p in "${SSH_PIDS[@]}"; do
	alive "$p" || anomaly "an ssh session ended during the load"
done
HWM=$(status_kib "$LOAD_PID" VmHWM)
stop_pid "$TC_PID"
for p in "${SSH_PIDS[@]}"; do stop_pid "$p"; done
SSH_PIDS=()
stop_pid "$LOAD_PID"

# ---------------------------------------------------------------- 2. idle memory
say "[2] exposrd RSS per idle SSH tunnel ($SSH_IDLE sessions of ssh -N -R)"
MPORT=$(newport)
MSSH=$(newport)
start_server mem "$MPORT" "$MSSH" $((SSH_IDLE + 1))
MEM_PID=$SRV_PID
make_tunnel "$MPORT" idle
start_ssh "$MPORT" idle warm # first session: one-time allocations
sleep 0.5
RSS0=$(status_kib "$MEM_PID" VmRSS)
for i in $(seq 1 "$SSH_IDLE"); do
	start_ssh "$MPORT" idle "idle-$i"
done
sleep 1
RSS1=$(status_kib "$MEM_PID" VmRSS)
PER_SSH=$(calc "printf \"%.1f\", ($RSS1 - $RSS0) / $SSH_IDLE")
say "    => $RSS0 KiB with 1 session, $RSS1 KiB with $((SSH_IDLE + 1)): $PER_SSH KiB per session"
for p in "${SSH_PIDS[@]}"; do stop_pid "$p"; done
stop_pid "$MEM_PID"

# ---------------------------------------------------------------- 3. table
ratio() { calc "if ($2 > 0) printf \"%.2f\", $1 / $2; else print \"?\""; }
summary "1k direct" "${RPS[direct]} req/s, p99 ${P99[direct]} ms"
summary "1k ws tunnel (tunnel-client.c, 2 WebSockets)" "${RPS[ws]} req/s, p99 ${P99[ws]} ms"
summary "1k ssh tunnel (OpenSSH -R, $SSH_SESSIONS session(s))" "${RPS[ssh]} req/s, p99 ${P99[ssh]} ms"
summary "1k ratio ssh/direct, ssh/ws (req/s)" "$(ratio "${RPS[ssh]}" "${RPS[direct]}"), $(ratio "${RPS[ssh]}" "${RPS[ws]}")"
summary "1k ratio ssh/direct, ssh/ws (p99)" "$(ratio "${P99[ssh]}" "${P99[direct]}"), $(ratio "${P99[ssh]}" "${P99[ws]}")"
summary "1k CPU s/10k req exposrd: ws, ssh" "${CPU_SRV[ws]}, ${CPU_SRV[ssh]} (ratio ssh/ws $(ratio "${CPU_SRV[ssh]}" "${CPU_SRV[ws]}"))"
summary "1k CPU s/10k req tunnel client: tunnel-client, ssh" "${CPU_CL[ws]}, ${CPU_CL[ssh]}"
summary "exposrd peak RSS during the load (VmHWM)" "$HWM KiB"
summary "exposrd RSS per idle SSH tunnel ($SSH_IDLE sessions)" "$PER_SSH KiB ($RSS0 -> $RSS1 KiB)"
le() { calc "print ($1 <= $2) ? 1 : 0"; }
target "exposrd CPU per 10,000 requests over SSH (1 KiB)" "${CPU_SRV[ssh]} s" "$(le "${CPU_SRV[ssh]}" 0.5)" "<= 0.5 s"
target "1 KiB p99 through the SSH tunnel" "${P99[ssh]} ms" "$(le "${P99[ssh]}" 10)" "<= 10 ms"
target "exposrd memory per idle SSH tunnel" "$PER_SSH KiB" "$(le "$PER_SSH" 64)" "<= 64 KiB"
{
	rev=$(git -C "$TOP" rev-parse --short HEAD 2>/dev/null || echo unknown)
	[ -n "$(git -C "$TOP" status --porcelain --untracked-files=no 2>/dev/null)" ] && rev="$rev+dirty"
	echo "exposrd SSH transport bench $(date -u +%Y-%m-%dT%H:%M:%SZ) rev $rev, $(nproc) CPUs, $(uname -sr), loopback"
	echo "wrk -t$THREADS -c$CONNS -d${DURATION}s --latency; nginx 1 worker; $(ssh -V 2>&1 | cut -d, -f1) as the SSH tunnel client;"
	echo "all processes share the $(nproc) CPUs (nothing pinned); load average before $LOAD_START, after $(cut -d' ' -f1-3 /proc/loadavg)"
	cat "$TMP/summary"
	echo "issue targets:"
	sed 's/^/  /' "$TMP/targets"
	if [ -s "$TMP/anomalies" ]; then
		echo "anomalies:"
		sed 's/^/  - /' "$TMP/anomalies"
	fi
	echo "total ssh bench time: $(($(date +%s) - T_BEGIN)) s"
} >"$TMP/table"
echo
cat "$TMP/table"
[ -n "$RESULTS" ] && cp "$TMP/table" "$RESULTS"
exit 0
