#!/bin/bash
# tests/bench/tunnel.sh - exposrd tunnel benchmark (run by run.sh).
# Loopback only, about 90 s.
#
#   origin   nginx, 1 worker, keepalive_requests 1000000, serving a 1 KiB
#            and a 1 MiB file
#   proxy    haproxy, one hop, http mode, nbthread 1, http-reuse always,
#            keep-alive to nginx (the baseline a tunnel is compared with)
#   tunnel   exposrd --transport-max-connections 2 plus tunnel-client.c
#            (a ws-multiplex client built from build/libexposrd.a) with 2
#            WebSocket connections, target nginx; wrk talks to exposrd's
#            HTTP ingress with Host: bench.localhost:PORT
#
#   1. memory: exposrd VmRSS idle after start, then with BENCH_IDLE_TUNNELS
#      (1000) idle tunnels, each its own WebSocket connection
#      (tunnel-client --tunnels N --connections 1), per idle tunnel =
#      (RSS_with - RSS_idle) / N
#   2. wrk -t2 -c50 -d10s --latency (report.lua) for the 1 KiB and the 1 MiB
#      file: direct to nginx, through haproxy, through the exposrd tunnel:
#      req/s, p99, MiB/s, ratios tunnel/direct and tunnel/haproxy, CPU s per
#      10,000 requests of exposrd (and of haproxy and the tunnel client)
#   3. exposrd peak RSS (VmHWM) of the server that carried the load
#   4. the issue's targets with PASS/FAIL (the exit status does not depend
#      on them; it is 1 only when the benchmark itself could not run)
#
# Every process shares the machine's CPUs (nothing is pinned): on a 2-CPU
# machine wrk, nginx, haproxy, the tunnel client and exposrd compete.
#
# Environment: EXPOSRD (binary, default ./exposrd), BENCH_DURATION (10),
# BENCH_CONNS (50), BENCH_THREADS (2), BENCH_IDLE_TUNNELS (1000),
# BENCH_RESULTS (copy the table there), BENCH_PERF=1 (perf record -g the
# server during the tunnel runs and print its top symbols).
# wrk, nginx and haproxy are installed with apt-get when missing.
#
# Invoked as "sh tests/bench/tunnel.sh": re-exec under bash.
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
IDLE_TUNNELS=${BENCH_IDLE_TUNNELS:-1000}
RESULTS=${BENCH_RESULTS:-}
PERF=${BENCH_PERF:-0}
TUNNEL_CONNS=2
T_BEGIN=$(date +%s)

TMP=$(mktemp -d "${TMPDIR:-/tmp}/exposrd-tbench.XXXXXX") || exit 1
PIDS=() # every process started here, stopped in reverse order
# alive PID: running and not a zombie waiting to be reaped
alive() {
	local s
	s=$(sed 's/^.*) //' "/proc/$1/stat" 2>/dev/null | cut -c1)
	[ -n "$s" ] && [ "$s" != Z ]
}
stop_pid() {
	local p=$1
	[ -n "$p" ] || return 0
	alive "$p" || { wait "$p" 2>/dev/null; return 0; }
	kill -TERM "$p" 2>/dev/null
	for _ in $(seq 1 20); do
		alive "$p" || break
		sleep 0.1
	done
	kill -KILL "$p" 2>/dev/null # a server stuck in a busy loop ignores TERM
	wait "$p" 2>/dev/null
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
# target LABEL VALUE OK(1/0) GOAL: one line of the targets table
target() {
	local verdict=FAIL
	[ "$3" = 1 ] && verdict=PASS
	[ "$3" = "" ] && verdict=N/A
	printf '%-4s %-46s %-12s %s\n' "$verdict" "$1" "$2" "$4" >>"$TMP/targets"
}
anomaly() {
	say "  ANOMALY: $*"
	printf '%s\n' "$*" >>"$TMP/anomalies"
}
fail() {
	anomaly "$*"
	say "tunnel bench: $*"
	exit 1
}
: >"$TMP/summary"
: >"$TMP/targets"
: >"$TMP/anomalies"
calc() { awk "BEGIN { $1 }"; }

# ---------------------------------------------------------------- tools
[ -x "$EXPOSRD" ] || fail "$EXPOSRD not found (run make)"
# A private copy: a concurrent rebuild must not change the binary mid-run.
cp "$EXPOSRD" "$TMP/exposrd" || exit 1
BT=$TMP/benchtool
cc -O2 -std=c99 -D_POSIX_C_SOURCE=200809L -Wall -o "$BT" "$HERE/benchtool.c" ||
	fail "cannot compile benchtool.c"

# tunnel-client: the Makefile's ALL_CFLAGS (and LIBS), -O2
if [ ! -f "$TOP/build/libexposrd.a" ]; then
	make -s -C "$TOP" build/libexposrd.a >&2 || fail "cannot build build/libexposrd.a"
fi
MKVARS=$(make -s --no-print-directory -C "$TOP" \
	--eval '__bench_vars: ; @: $(info $(ALL_CFLAGS)) $(info $(LIBS))' __bench_vars 2>/dev/null)
TC_CFLAGS=$(printf '%s\n' "$MKVARS" | sed -n 1p)
TC_LIBS=$(printf '%s\n' "$MKVARS" | sed -n 2p)
[ -n "$TC_CFLAGS" ] || fail "cannot read ALL_CFLAGS from the Makefile"
TC=$TMP/tunnel-client
# eval: ALL_CFLAGS holds shell quoting (-DEXPOSRD_VERSION='"x"')
if ! (cd "$TOP" && eval "cc $TC_CFLAGS -O2 -o \"\$TC\" tests/bench/tunnel-client.c build/libexposrd.a $TC_LIBS"); then
	fail "cannot compile tunnel-client.c"
fi

# try_install PKG CMD: apt-get install PKG when CMD is missing (root only)
try_install() {
	command -v "$2" >/dev/null 2>&1 && return 0
	[ -x "/usr/sbin/$2" ] && return 0
	if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then
		say "tunnel bench: installing $1 ..."
		timeout 90 apt-get install -y -q "$1" >"$TMP/apt-$1.log" 2>&1 ||
			{ timeout 60 apt-get update -q >/dev/null 2>&1 &&
				timeout 90 apt-get install -y -q "$1" >"$TMP/apt-$1.log" 2>&1; }
	fi
	command -v "$2" >/dev/null 2>&1 || [ -x "/usr/sbin/$2" ]
}
try_install wrk wrk || fail "wrk is not installed and could not be installed"
try_install nginx nginx || fail "nginx is not installed and could not be installed"
try_install haproxy haproxy || fail "haproxy is not installed and could not be installed"
NGINX=$(command -v nginx 2>/dev/null || echo /usr/sbin/nginx)
HAPROXY=$(command -v haproxy 2>/dev/null || echo /usr/sbin/haproxy)

# 1,000 WebSocket connections on each side plus wrk's
if [ "$(ulimit -n)" != unlimited ] && [ "$(ulimit -n)" -lt $((2 * IDLE_TUNNELS + 1024)) ]; then
	ulimit -n $((2 * IDLE_TUNNELS + 1024)) 2>/dev/null || say "tunnel bench: cannot raise the fd limit ($(ulimit -n))"
fi

freeport() { "$BT" freeport; }
USED_PORTS=" "
newport() { # a free port not handed out before in this run
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
# http_code URL [curl args]: status code, 000 when nothing answered
http_code() {
	local url=$1
	shift
	curl -s -m 5 -o "$TMP/curl.out" -w '%{http_code}' "$@" "$url"
}
# wait_http URL [curl args]: until anything answers (5 s)
wait_http() {
	for _ in $(seq 1 50); do
		[ "$(curl -s -m 1 -o /dev/null -w '%{http_code}' "$@")" != 000 ] && return 0
		sleep 0.1
	done
	return 1
}

LOAD_START=$(cut -d' ' -f1-3 /proc/loadavg)
say "exposrd tunnel bench: $EXPOSRD ($(nproc) CPUs shared by wrk, nginx, haproxy, the tunnel client and exposrd; nothing pinned; load average $LOAD_START)"

# ---------------------------------------------------------------- origin and proxy
NPORT=$(newport)
HPORT=$(newport)
NG=$TMP/nginx
mkdir -p "$NG/www" "$NG/tmp"
head -c 1024 /dev/urandom | od -An -tx1 | tr -d ' \n' | head -c 1024 >"$NG/www/1k"
head -c 1048576 /dev/urandom >"$NG/www/1m"
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
    sendfile on;
    tcp_nopush on;
    client_body_temp_path $NG/tmp/body;
    proxy_temp_path $NG/tmp/proxy;
    fastcgi_temp_path $NG/tmp/fastcgi;
    uwsgi_temp_path $NG/tmp/uwsgi;
    scgi_temp_path $NG/tmp/scgi;
    server {
        listen 127.0.0.1:$NPORT;
        location / {
            root $NG/www;
            default_type application/octet-stream;
        }
    }
}
EOF
chmod -R a+rX "$TMP"
"$NGINX" -p "$NG" -c "$NG/nginx.conf" -e "$NG/error.log" >"$NG/stdout.log" 2>&1 &
NGX_PID=$!
PIDS+=("$NGX_PID")
wait_http "http://127.0.0.1:$NPORT/1k" ||
	fail "nginx did not start: $(tail -3 "$NG/error.log" "$NG/stdout.log" 2>/dev/null | tr '\n' ' ')"
NGX_PIDS="$NGX_PID $(pgrep -P "$NGX_PID" | tr '\n' ' ')"

cat >"$TMP/haproxy.cfg" <<EOF
global
    nbthread 1
    maxconn 4096
defaults
    mode http
    option http-keep-alive
    http-reuse always
    timeout connect 5s
    timeout client 60s
    timeout server 60s
    timeout http-keep-alive 60s
frontend fe
    bind 127.0.0.1:$HPORT
    default_backend be
backend be
    server nginx 127.0.0.1:$NPORT
EOF
"$HAPROXY" -db -f "$TMP/haproxy.cfg" >"$TMP/haproxy.log" 2>&1 &
HAP_PID=$!
PIDS+=("$HAP_PID")
wait_http "http://127.0.0.1:$HPORT/1k" || fail "haproxy did not start: $(tail -3 "$TMP/haproxy.log" | tr '\n' ' ')"

for u in "http://127.0.0.1:$NPORT" "http://127.0.0.1:$HPORT"; do
	for f in 1k 1m; do
		code=$(http_code "$u/$f")
		[ "$code" = 200 ] && cmp -s "$TMP/curl.out" "$NG/www/$f" || fail "GET $u/$f: $code or wrong body"
	done
done

# ---------------------------------------------------------------- exposrd helpers
# start_server NAME PORT: exposrd in the background, sets SRV_PID
start_server() {
	"$TMP/exposrd" --allow-registration --ingress-http-url "http://localhost:$2" -p "$2" \
		--ingress-http-port "$2" --log-level warn --transport-max-connections "$TUNNEL_CONNS" \
		>"$TMP/$1.log" 2>&1 &
	SRV_PID=$!
	PIDS+=("$SRV_PID")
	wait_http "http://127.0.0.1:$2/v1/tunnel/x" || fail "exposrd ($1) did not come up: $(tail -3 "$TMP/$1.log" | tr '\n' ' ')"
}
# new_account PORT: prints the account id
new_account() {
	curl -s -m 5 -X POST "http://127.0.0.1:$1/v1/account" | sed -n 's/.*"account_id":"\([^"]*\)".*/\1/p'
}
# start_client NAME PORT ACCOUNT TUNNEL TIMEOUT_S [args]: tunnel-client in the
# background until it prints READY; sets TC_PID
start_client() {
	local name=$1 port=$2 acct=$3 tun=$4 tmo=$5
	shift 5
	"$TC" --api "http://127.0.0.1:$port" --account "$acct" --tunnel "$tun" \
		--target "127.0.0.1:$NPORT" "$@" >"$TMP/$name.out" 2>"$TMP/$name.err" </dev/null &
	TC_PID=$!
	PIDS+=("$TC_PID")
	local i
	for ((i = 0; i < tmo * 10; i++)); do
		grep -q '^READY' "$TMP/$name.out" 2>/dev/null && return 0
		alive "$TC_PID" || break
		sleep 0.1
	done
	fail "tunnel client ($name) not ready: $(tail -3 "$TMP/$name.err" | tr '\n' ' ')"
}
# stop_client PID NAME: SIGTERM; CL_STATS gets its counters line
stop_client() {
	stop_pid "$1"
	CL_STATS=$(grep '^tunnel-client: channels' "$TMP/$2.err" | sed 's/^tunnel-client: //')
	while read -r l; do
		anomaly "tunnel client ($2): $l"
	done < <(grep -v '^tunnel-client: channels' "$TMP/$2.err" | head -3)
}

# ---------------------------------------------------------------- 1. memory
say "[1] exposrd RSS idle, then with $IDLE_TUNNELS idle tunnels (one WebSocket connection each)"
MPORT=$(newport)
start_server mem "$MPORT"
MEM_PID=$SRV_PID
sleep 0.5
RSS_IDLE=$(status_kib "$MEM_PID" VmRSS)
RSS_IDLE_SPLIT="RssAnon $(status_kib "$MEM_PID" RssAnon) KiB, RssFile $(status_kib "$MEM_PID" RssFile) KiB"
say "  idle VmRSS $RSS_IDLE KiB ($RSS_IDLE_SPLIT)"
MACCT=$(new_account "$MPORT")
[ -n "$MACCT" ] || fail "cannot create an account"
t0=$(date +%s.%N)
start_client idle "$MPORT" "$MACCT" idle 90 --tunnels "$IDLE_TUNNELS" --connections 1
IDLE_TC=$TC_PID
t1=$(date +%s.%N)
sleep 1
RSS_WITH=$(status_kib "$MEM_PID" VmRSS)
ANON_WITH=$(status_kib "$MEM_PID" RssAnon)
code=$(http_code "http://127.0.0.1:$MPORT/v1/tunnel/idle-$IDLE_TUNNELS" -H "Authorization: Bearer $(curl -s "http://127.0.0.1:$MPORT/v1/account/$MACCT/token" | sed -n 's/.*"token":"\([^"]*\)".*/\1/p')")
grep -q '"connected":true' "$TMP/curl.out" || anomaly "tunnel idle-$IDLE_TUNNELS is not connected ($code): $(head -c 300 "$TMP/curl.out")"
PER_TUN=$(calc "printf \"%.1f\", ($RSS_WITH - $RSS_IDLE) / $IDLE_TUNNELS")
say "  with $IDLE_TUNNELS idle tunnels: VmRSS $RSS_WITH KiB, $PER_TUN KiB per tunnel (setup $(calc "printf \"%.1f\", $t1 - $t0") s)"
summary "exposrd RSS idle after start" "$RSS_IDLE KiB ($RSS_IDLE_SPLIT)"
summary "exposrd RSS with $IDLE_TUNNELS idle tunnels (1 WS conn each)" "$RSS_WITH KiB (RssAnon $ANON_WITH KiB)"
summary "  per idle tunnel (tunnel record + WS connection)" "$PER_TUN KiB"
summary "  setup: account, PUT + 3 PATCH + GET + upgrade each" "$(calc "printf \"%.1f\", $t1 - $t0") s"
stop_client "$IDLE_TC" idle
stop_pid "$MEM_PID"

# ---------------------------------------------------------------- 2. load
SPORT=$(newport)
start_server load "$SPORT"
SRV_PID_LOAD=$SRV_PID
sleep 0.3
RSS_IDLE2=$(status_kib "$SRV_PID_LOAD" VmRSS)
ACCT=$(new_account "$SPORT")
[ -n "$ACCT" ] || fail "cannot create an account"
start_client load "$SPORT" "$ACCT" bench 30 --connections "$TUNNEL_CONNS"
LOAD_TC=$TC_PID
THOST="bench.localhost:$SPORT"
for f in 1k 1m; do
	code=$(http_code "http://127.0.0.1:$SPORT/$f" -H "Host: $THOST")
	[ "$code" = 200 ] && cmp -s "$TMP/curl.out" "$NG/www/$f" ||
		fail "GET /$f through the tunnel: $code, $(wc -c <"$TMP/curl.out") bytes: $(head -c 200 "$TMP/curl.out")"
done

# run_wrk NAME URL [wrk args...]: sets W_REQ W_RPS W_P50 W_P99 W_MAX W_MIBS
run_wrk() {
	local name=$1 url=$2 line dur bytes
	shift 2
	timeout $((DURATION + 30)) wrk -t"$THREADS" -c"$CONNS" -d"${DURATION}s" --latency \
		-s "$HERE/report.lua" "$@" "$url" >"$TMP/wrk-$name.txt" 2>&1
	sed '/^BENCHRESULT/d; s/^/    /' "$TMP/wrk-$name.txt" | grep -E 'Latency  |Req/Sec|99%|requests in|Non-2xx|Socket errors|Transfer' >&2
	line=$(grep '^BENCHRESULT' "$TMP/wrk-$name.txt")
	W_REQ=0 W_RPS=0 W_P50=0 W_P99=0 W_MAX=0 W_MIBS=0
	if [ -z "$line" ]; then
		anomaly "$name: wrk produced no result: $(tail -2 "$TMP/wrk-$name.txt" | tr '\n' ' ')"
		return 1
	fi
	field() { printf '%s\n' "$line" | sed "s/.* $1=\([0-9]*\).*/\1/"; }
	W_REQ=$(field requests)
	dur=$(field duration_us)
	bytes=$(field bytes)
	W_RPS=$(calc "printf \"%.0f\", $W_REQ / ($dur / 1e6)")
	W_P50=$(calc "printf \"%.2f\", $(field p50_us) / 1000")
	W_P99=$(calc "printf \"%.2f\", $(field p99_us) / 1000")
	W_MAX=$(calc "printf \"%.1f\", $(field max_us) / 1000")
	W_MIBS=$(calc "printf \"%.1f\", $bytes / ($dur / 1e6) / 1048576")
	local err
	err="connect $(field err_connect), read $(field err_read), write $(field err_write), status $(field err_status), timeout $(field err_timeout)"
	case $err in
	"connect 0, read 0, write 0, status 0, timeout 0") ;;
	*) anomaly "$name: wrk errors: $err" ;;
	esac
	[ "$W_REQ" -gt 0 ] || anomaly "$name: no request completed"
	return 0
}
# per10k TICKS REQUESTS: CPU seconds per 10,000 requests
per10k() { calc "if ($2 > 0) printf \"%.3f\", $1 / $HZ * 10000 / $2; else print \"?\""; }

declare -A RPS P99 MIBS CPU_SRV CPU_HAP CPU_TC MAXL
for f in 1k 1m; do
	for via in direct haproxy tunnel; do
		case $via in
		direct) url=http://127.0.0.1:$NPORT/$f args=() ;;
		haproxy) url=http://127.0.0.1:$HPORT/$f args=() ;;
		tunnel) url=http://127.0.0.1:$SPORT/$f args=(-H "Host: $THOST") ;;
		esac
		say "[2] $f $via: wrk -t$THREADS -c$CONNS -d${DURATION}s $url"
		PERF_PID=
		if [ "$via" = tunnel ] && [ "$PERF" = 1 ] && command -v perf >/dev/null 2>&1; then
			perf record -q -g -p "$SRV_PID_LOAD" -o "$TMP/perf-$f.data" -- sleep "$DURATION" \
				>/dev/null 2>"$TMP/perf-$f.log" &
			PERF_PID=$!
		fi
		s0=$(cpu_ticks "$SRV_PID_LOAD")
		h0=$(cpu_ticks "$HAP_PID")
		c0=$(cpu_ticks "$LOAD_TC")
		run_wrk "$f-$via" "$url" "${args[@]}"
		s1=$(cpu_ticks "$SRV_PID_LOAD")
		h1=$(cpu_ticks "$HAP_PID")
		c1=$(cpu_ticks "$LOAD_TC")
		RPS[$f-$via]=$W_RPS
		P99[$f-$via]=$W_P99
		MIBS[$f-$via]=$W_MIBS
		MAXL[$f-$via]=$W_MAX
		[ "$via" = haproxy ] && CPU_HAP[$f]=$(per10k $((h1 - h0)) "$W_REQ")
		if [ "$via" = tunnel ]; then
			CPU_SRV[$f]=$(per10k $((s1 - s0)) "$W_REQ")
			CPU_TC[$f]=$(per10k $((c1 - c0)) "$W_REQ")
			alive "$SRV_PID_LOAD" || fail "exposrd died during the $f tunnel run: $(tail -3 "$TMP/load.log" | tr '\n' ' ')"
			alive "$LOAD_TC" || fail "the tunnel client died during the $f run: $(tail -3 "$TMP/load.err" | tr '\n' ' ')"
			if [ -n "$PERF_PID" ]; then
				wait "$PERF_PID" 2>/dev/null
				perf report -q --stdio --no-children -i "$TMP/perf-$f.data" --sort symbol -g none \
					2>/dev/null | grep -v '^$' | head -25 >"$TMP/perf-$f.txt"
				say "    perf top symbols (exposrd, $f tunnel run):"
				sed 's/^/      /' "$TMP/perf-$f.txt" >&2
			fi
		fi
		say "    => ${W_RPS} req/s, p99 ${W_P99} ms, max ${W_MAX} ms, ${W_MIBS} MiB/s"
	done
done
HWM=$(status_kib "$SRV_PID_LOAD" VmHWM)
RSS_AFTER=$(status_kib "$SRV_PID_LOAD" VmRSS)
ANON_AFTER=$(status_kib "$SRV_PID_LOAD" RssAnon)
# the tunnel still works after the load
code=$(http_code "http://127.0.0.1:$SPORT/1k" -H "Host: $THOST")
[ "$code" = 200 ] || anomaly "GET /1k through the tunnel after the load: $code"
stop_client "$LOAD_TC" load
LOAD_STATS=$CL_STATS
case $LOAD_STATS in
*"lockstep mismatches 0,"*) ;;
*) anomaly "tunnel client: channel numbers out of lockstep: $LOAD_STATS" ;;
esac
while read -r l; do
	anomaly "exposrd log: $l"
done < <(grep -hE '"level":"(ERROR|FATAL)"' "$TMP/load.log" "$TMP/mem.log" | head -3)

# ---------------------------------------------------------------- 3. summary
ratio() { calc "if ($2 > 0) printf \"%.2f\", $1 / $2; else print \"?\""; }
for f in 1k 1m; do
	for via in direct haproxy tunnel; do
		v="${RPS[$f-$via]} req/s, p99 ${P99[$f-$via]} ms"
		[ "$f" = 1m ] && v="$v, ${MIBS[$f-$via]} MiB/s"
		summary "$f $via" "$v"
	done
	summary "$f ratio tunnel/direct, tunnel/haproxy (req/s)" \
		"$(ratio "${RPS[$f-tunnel]}" "${RPS[$f-direct]}"), $(ratio "${RPS[$f-tunnel]}" "${RPS[$f-haproxy]}")"
	summary "$f CPU s/10k req: exposrd, tunnel client, haproxy" "${CPU_SRV[$f]}, ${CPU_TC[$f]}, ${CPU_HAP[$f]}"
done
summary "exposrd RSS idle (load server), after the load" "$RSS_IDLE2 KiB, $RSS_AFTER KiB (RssAnon $ANON_AFTER KiB)"
summary "exposrd peak RSS during the load (VmHWM)" "$HWM KiB"
summary "tunnel client counters (load)" "$LOAD_STATS"

ge() { calc "print ($1 >= $2) ? 1 : 0"; }
le() { calc "print ($1 <= $2) ? 1 : 0"; }
r=$(ratio "${RPS[1k-tunnel]}" "${RPS[1k-haproxy]}")
target "1 KiB req/s tunnel/haproxy" "$r" "$(ge "$r" 0.60)" ">= 0.60"
target "1 KiB p99 through the tunnel" "${P99[1k-tunnel]} ms" "$(le "${P99[1k-tunnel]}" 5)" "<= 5 ms"
target "exposrd CPU per 10,000 requests (1 KiB)" "${CPU_SRV[1k]} s" "$(le "${CPU_SRV[1k]}" 0.25)" "<= 0.25 s"
r=$(ratio "${MIBS[1m-tunnel]}" "${MIBS[1m-haproxy]}")
target "1 MiB throughput tunnel/haproxy" "$r" "$(ge "$r" 0.80)" ">= 0.80"
target "exposrd RSS idle (VmRSS)" "$RSS_IDLE KiB" "$(le "$RSS_IDLE" 2048)" "<= 2048 KiB (shared libraries included)"
target "exposrd RSS per idle tunnel" "$PER_TUN KiB" "$(le "$PER_TUN" 16)" "<= 16 KiB"
target "exposrd peak RSS during the load (VmHWM)" "$HWM KiB" "$(le "$HWM" 20480)" "<= 20480 KiB"

{
	rev=$(git -C "$TOP" rev-parse --short HEAD 2>/dev/null || echo unknown)
	[ -n "$(git -C "$TOP" status --porcelain --untracked-files=no 2>/dev/null)" ] && rev="$rev+dirty"
	echo "exposrd tunnel bench $(date -u +%Y-%m-%dT%H:%M:%SZ) rev $rev, $(nproc) CPUs, $(uname -sr), loopback"
	echo "wrk -t$THREADS -c$CONNS -d${DURATION}s --latency; nginx 1 worker; haproxy nbthread 1, http-reuse always;"
	echo "exposrd --transport-max-connections $TUNNEL_CONNS --log-level warn ($("$TMP/exposrd" --version 2>/dev/null | sed -n 's/^features: */features: /p'; true)), tunnel-client.c with $TUNNEL_CONNS WebSocket connections;"
	echo "all processes share the $(nproc) CPUs (nothing pinned); load average before $LOAD_START, after $(cut -d' ' -f1-3 /proc/loadavg)"
	echo "(a load average well above 0 before the run means other work shared the machine: figures are noisy)"
	cat "$TMP/summary"
	echo "issue targets:"
	sed 's/^/  /' "$TMP/targets"
	if [ -s "$TMP/anomalies" ]; then
		echo "anomalies:"
		sed 's/^/  - /' "$TMP/anomalies"
	fi
	echo "total tunnel bench time: $(($(date +%s) - T_BEGIN)) s"
} >"$TMP/table"
echo
cat "$TMP/table"
if [ -n "$RESULTS" ]; then cp "$TMP/table" "$RESULTS"; fi
exit 0
