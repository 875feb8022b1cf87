#!/bin/bash
# tests/bench/api.sh - exposrd API benchmark (run by run.sh). Loopback only, about 40 s.
#
#   1. startup: wall time from exec until the admin /ping answers 200
#      (BENCH_STARTS runs, median and max), measured by benchtool.c
#   2. memory: VmRSS of an idle server, and after BENCH_TUNNELS tunnels
#      were created through the public API
#   3. API throughput: wrk (BENCH_THREADS threads, BENCH_CONNS connections,
#      BENCH_DURATION s) against GET /v1/tunnel/<id> with a bearer token of
#      a fresh account owning that one tunnel: req/s, p99 latency, server CPU
#      time per 10,000 requests; the same again for a tunnel of the account
#      that owns the BENCH_TUNNELS tunnels of step 2; the same wrk
#      run against nginx serving a static 500-byte JSON file as a same-machine
#      baseline, and the ratio exposrd/nginx
#   4. a summary table, also written to $BENCH_RESULTS when set (run.sh
#      collects it into tests/bench/results-latest.txt)
#
# Environment: EXPOSRD (binary, default ./exposrd), BENCH_STARTS (10),
# BENCH_TUNNELS (1000), BENCH_DURATION (10), BENCH_CONNS (50), BENCH_THREADS (2).
# wrk and nginx are installed with apt-get when missing and possible; without
# nginx the baseline is skipped, without wrk the throughput part is skipped.
#
# Invoked as "sh tests/bench/api.sh": re-exec under bash.
if [ -z "${BASH_VERSION:-}" ]; then
	exec bash "$0" "$@"
fi
set -u

HERE=$(cd "$(dirname "$0")" && pwd)
TOP=$(cd "$HERE/../.." && pwd)
EXPOSRD=${EXPOSRD:-$TOP/exposrd}
STARTS=${BENCH_STARTS:-10}
TUNNELS=${BENCH_TUNNELS:-1000}
DURATION=${BENCH_DURATION:-10}
CONNS=${BENCH_CONNS:-50}
THREADS=${BENCH_THREADS:-2}
RESULTS=${BENCH_RESULTS:-}
T_BEGIN=$(date +%s)

TMP=$(mktemp -d "${TMPDIR:-/tmp}/exposrd-bench.XXXXXX") || exit 1
SRV_PID=
NGX_PID=
cleanup() {
	if [ -n "$SRV_PID" ] && kill -0 "$SRV_PID" 2>/dev/null; then
		kill -TERM "$SRV_PID" 2>/dev/null
		for _ in 1 2 3 4 5 6 7 8 9 10; do
			kill -0 "$SRV_PID" 2>/dev/null || break
			sleep 0.2
		done
		kill -KILL "$SRV_PID" 2>/dev/null
		wait "$SRV_PID" 2>/dev/null
	fi
	if [ -n "$NGX_PID" ] && kill -0 "$NGX_PID" 2>/dev/null; then
		kill -TERM "$NGX_PID" 2>/dev/null # master stops its workers
		for _ in 1 2 3 4 5 6 7 8 9 10; do
			kill -0 "$NGX_PID" 2>/dev/null || break
			sleep 0.2
		done
		kill -KILL "$NGX_PID" 2>/dev/null
		wait "$NGX_PID" 2>/dev/null
	fi
	rm -rf "$TMP"
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

say() { printf '%s\n' "$*" >&2; }
# summary LABEL VALUE: one line of the final table
summary() { printf '%-46s %s\n' "$1" "$2" >>"$TMP/summary"; }
anomaly() {
	say "  ANOMALY: $*"
	printf '%s\n' "$*" >>"$TMP/anomalies"
}
: >"$TMP/summary"
: >"$TMP/anomalies"

# ---------------------------------------------------------------- tools
if [ ! -x "$EXPOSRD" ]; then
	say "bench: $EXPOSRD not found (run make)"
	exit 1
fi
BT=$TMP/benchtool
if ! cc -O2 -std=c99 -D_POSIX_C_SOURCE=200809L -Wall -o "$BT" "$HERE/benchtool.c"; then
	say "bench: cannot compile benchtool.c"
	exit 1
fi

# try_install PKG CMD: apt-get install PKG when CMD is missing (root only)
try_install() {
	command -v "$2" >/dev/null 2>&1 && return 0
	[ -x "/usr/sbin/$2" ] && return 0
	if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then
		say "bench: installing $1 ..."
		timeout 90 apt-get install -y -q "$1" >"$TMP/apt-$1.log" 2>&1 ||
			{ timeout 60 apt-get update -q >/dev/null 2>&1 &&
				timeout 90 apt-get install -y -q "$1" >"$TMP/apt-$1.log" 2>&1; }
	fi
	command -v "$2" >/dev/null 2>&1 || [ -x "/usr/sbin/$2" ]
}
HAVE_WRK=0
HAVE_NGINX=0
try_install wrk wrk && HAVE_WRK=1
NGINX=$(command -v nginx 2>/dev/null || echo /usr/sbin/nginx)
try_install nginx nginx && HAVE_NGINX=1

freeport() { "$BT" freeport; }
# two distinct free ports into P and A
two_ports() {
	P=$(freeport)
	A=$(freeport)
	while [ "$A" = "$P" ]; do A=$(freeport); done
}
# cpu_ticks PID...: utime+stime (clock ticks) summed over the processes
cpu_ticks() {
	local t=0 p v
	for p in "$@"; do
		# fields after "(comm) ": state is $1, utime $12, stime $13
		v=$(sed 's/^.*) //' "/proc/$p/stat" 2>/dev/null | awk '{ print $12 + $13 }')
		t=$((t + ${v:-0}))
	done
	echo "$t"
}
HZ=$(getconf CLK_TCK)
rss_kib() { awk '/^VmRSS:/ { print $2 }' "/proc/$1/status"; }

say "exposrd bench: $EXPOSRD ($(nproc) CPUs, $(uname -sr))"

# ---------------------------------------------------------------- 1. startup
say "[1] startup to first /ping 200, $STARTS runs"
: >"$TMP/startup.ms"
for i in $(seq 1 "$STARTS"); do
	two_ports
	if ms=$("$BT" startup "$A" 10000 "$EXPOSRD" --admin-enable \
		--ingress-http-url "http://localhost:$P" -p "$P" --ingress-http-port "$P" \
		--admin-port "$A" --log-level warn 2>>"$TMP/startup.log"); then
		echo "$ms" >>"$TMP/startup.ms"
		say "  run $i: $ms ms"
	else
		anomaly "startup run $i failed: $(tail -3 "$TMP/startup.log" | tr '\n' ' ')"
	fi
done
if [ -s "$TMP/startup.ms" ]; then
	read -r S_MED S_MAX S_N < <(sort -n "$TMP/startup.ms" | awk '
		{ v[NR] = $1 }
		END { m = (NR % 2) ? v[(NR + 1) / 2] : (v[NR / 2] + v[NR / 2 + 1]) / 2
		      printf "%.2f %.2f %d\n", m, v[NR], NR }')
	summary "startup to /ping 200, median ($S_N runs)" "$S_MED ms"
	summary "startup to /ping 200, max" "$S_MAX ms"
else
	summary "startup to /ping 200" "FAILED"
fi

# ---------------------------------------------------------------- 2. memory
say "[2] RSS idle and after $TUNNELS tunnels"
two_ports
API_PORT=$P
"$EXPOSRD" --admin-enable --ingress-http-url "http://localhost:$P" -p "$P" \
	--ingress-http-port "$P" --admin-port "$A" --log-level warn --allow-registration \
	>"$TMP/server.log" 2>&1 &
SRV_PID=$!
if ! "$BT" waitping "$A" 10000 >/dev/null; then
	anomaly "server did not come up: $(tail -3 "$TMP/server.log" | tr '\n' ' ')"
	exit 1
fi
sleep 0.5
RSS_IDLE=$(rss_kib "$SRV_PID")
THREADS_SRV=$(awk '/^Threads:/ { print $2 }' "/proc/$SRV_PID/status")
summary "RSS idle after start" "$RSS_IDLE KiB"
say "  idle VmRSS $RSS_IDLE KiB ($THREADS_SRV threads)"

BASE=http://127.0.0.1:$API_PORT
# new_account: prints "ACCOUNT_ID TOKEN"
new_account() {
	local acct token
	acct=$(curl -s -X POST "$BASE/v1/account" | sed -n 's/.*"account_id":"\([^"]*\)".*/\1/p')
	[ -n "$acct" ] && token=$(curl -s "$BASE/v1/account/$acct/token" | sed -n 's/.*"token":"\([^"]*\)".*/\1/p')
	if [ -z "$acct" ] || [ -z "${token:-}" ]; then
		anomaly "could not create an account and token (account '$acct')"
		exit 1
	fi
	echo "$acct $token"
}
# The 1,000 tunnels belong to one account ("big"); the throughput figures
# use a fresh account with a single tunnel, plus a second run on "big".
read -r BIG_ACCT BIG_TOKEN < <(new_account)
[ -n "${BIG_TOKEN:-}" ] || exit 1

if read -r MK_OK MK_MS < <("$BT" mktunnels "$API_PORT" "$BIG_TOKEN" "$TUNNELS" bench 2>>"$TMP/mktunnels.log"); then
	:
fi
MK_OK=${MK_OK:-0}
[ "$MK_OK" = "$TUNNELS" ] || anomaly "only ${MK_OK}/$TUNNELS tunnels created: $(head -3 "$TMP/mktunnels.log" | tr '\n' ' ')"
sleep 0.2
RSS_TUN=$(rss_kib "$SRV_PID")
summary "RSS after $MK_OK tunnels" "$RSS_TUN KiB ($(((RSS_TUN - RSS_IDLE) * 1024 / (MK_OK > 0 ? MK_OK : 1))) B/tunnel)"
summary "time to create $MK_OK tunnels (1 conn, serial)" "${MK_MS:-?} ms"
say "  after $MK_OK tunnels: VmRSS $RSS_TUN KiB (PUTs took ${MK_MS:-?} ms)"

# ---------------------------------------------------------------- 3. throughput
# run_wrk NAME URL [wrk args...]: sets W_RPS W_P50 W_P99 W_REQ W_ERR
run_wrk() {
	local name=$1 url=$2 line
	shift 2
	timeout $((DURATION + 30)) wrk -t"$THREADS" -c"$CONNS" -d"${DURATION}s" --latency \
		-s "$HERE/report.lua" "$@" "$url" >"$TMP/wrk-$name.txt" 2>&1
	sed '/^BENCHRESULT/d; s/^/    /' "$TMP/wrk-$name.txt" >&2
	line=$(grep '^BENCHRESULT' "$TMP/wrk-$name.txt")
	if [ -z "$line" ]; then
		W_REQ=0
		return 1
	fi
	W_REQ=$(printf '%s\n' "$line" | sed 's/.* requests=\([0-9]*\).*/\1/')
	local dur p50 p99
	dur=$(printf '%s\n' "$line" | sed 's/.* duration_us=\([0-9]*\).*/\1/')
	p50=$(printf '%s\n' "$line" | sed 's/.* p50_us=\([0-9]*\).*/\1/')
	p99=$(printf '%s\n' "$line" | sed 's/.* p99_us=\([0-9]*\).*/\1/')
	W_RPS=$(awk -v r="$W_REQ" -v d="$dur" 'BEGIN { printf "%.0f", r / (d / 1e6) }')
	W_P50=$(awk -v u="$p50" 'BEGIN { printf "%.2f", u / 1000 }')
	W_P99=$(awk -v u="$p99" 'BEGIN { printf "%.2f", u / 1000 }')
	W_ERR=$(printf '%s\n' "$line" | sed 's/.*err_connect=\([0-9]*\) err_read=\([0-9]*\) err_write=\([0-9]*\) err_status=\([0-9]*\) err_timeout=\([0-9]*\).*/connect \1, read \2, write \3, status \4, timeout \5/')
	case $W_ERR in
	"connect 0, read 0, write 0, status 0, timeout 0") ;;
	*) anomaly "$name wrk errors: $W_ERR" ;;
	esac
	return 0
}
# per10k TICKS REQUESTS: CPU ms per 10,000 requests
per10k() { awk -v t="$1" -v r="$2" -v hz="$HZ" 'BEGIN { if (r > 0) printf "%.1f", t * 1000 / hz * 10000 / r; else print "?" }'; }

E_RPS=
N_RPS=
if [ "$HAVE_WRK" = 1 ]; then
	read -r ACCT TOKEN < <(new_account)
	[ -n "${TOKEN:-}" ] || exit 1
	TUN=bench-api
	code=$(curl -s -o "$TMP/put.json" -w '%{http_code}' -X PUT "$BASE/v1/tunnel/$TUN" \
		-H "Authorization: Bearer $TOKEN" -H 'Content-Type: application/json' \
		-d '{"target":{"url":"http://127.0.0.1:9"},"ingress":{"http":{"enabled":true}},"transport":{"ws":{"enabled":true}}}')
	[ "$code" = 200 ] || anomaly "PUT /v1/tunnel/$TUN gave $code: $(cat "$TMP/put.json")"

	say "[3] wrk -t$THREADS -c$CONNS -d${DURATION}s GET /v1/tunnel/$TUN (exposrd, account with 1 tunnel)"
	URL=$BASE/v1/tunnel/$TUN
	code=$(curl -s -o "$TMP/get.json" -w '%{http_code}' "$URL" -H "Authorization: Bearer $TOKEN")
	[ "$code" = 200 ] || anomaly "GET $URL gave $code"
	say "    response body: $(wc -c <"$TMP/get.json") bytes"
	c0=$(cpu_ticks "$SRV_PID")
	if run_wrk exposrd "$URL" -H "Authorization: Bearer $TOKEN"; then
		c1=$(cpu_ticks "$SRV_PID")
		E_RPS=$W_RPS
		E_P99=$W_P99
		E_CPU=$(per10k $((c1 - c0)) "$W_REQ")
		summary "exposrd GET /v1/tunnel/<id> throughput" "$E_RPS req/s"
		summary "exposrd GET /v1/tunnel/<id> latency p50/p99" "$W_P50 / $E_P99 ms"
		summary "exposrd server CPU per 10,000 requests" "$E_CPU ms"
		[ "$E_RPS" -lt 20000 ] && anomaly "exposrd throughput $E_RPS req/s is below 20,000 req/s"
	else
		anomaly "wrk against exposrd produced no result"
		summary "exposrd GET /v1/tunnel/<id> throughput" "FAILED"
	fi

	if [ "$MK_OK" -gt 0 ]; then
		say "[3a] the same against bench-1, owned by the account holding $MK_OK tunnels"
		URL=$BASE/v1/tunnel/bench-1
		code=$(curl -s -o /dev/null -w '%{http_code}' "$URL" -H "Authorization: Bearer $BIG_TOKEN")
		[ "$code" = 200 ] || anomaly "GET $URL gave $code"
		c0=$(cpu_ticks "$SRV_PID")
		if run_wrk exposrd-big "$URL" -H "Authorization: Bearer $BIG_TOKEN"; then
			c1=$(cpu_ticks "$SRV_PID")
			summary "  same, account owning $MK_OK tunnels" "$W_RPS req/s, p99 $W_P99 ms, CPU/10k $(per10k $((c1 - c0)) "$W_REQ") ms"
			[ "$W_RPS" -lt 20000 ] && anomaly "exposrd throughput with $MK_OK tunnels on the account is $W_RPS req/s (below 20,000 req/s)"
		else
			anomaly "wrk against exposrd (big account) produced no result"
		fi
	fi
	kill -0 "$SRV_PID" 2>/dev/null || anomaly "exposrd died during the benchmark"

	if [ "$HAVE_NGINX" = 1 ]; then
		say "[3b] same wrk run against nginx (static 500-byte JSON, 1 worker)"
		NG=$TMP/nginx
		mkdir -p "$NG/www" "$NG/tmp"
		# 500 bytes exactly: a JSON object padded with a filler string
		awk 'BEGIN { s = "{\"id\":\"bench-api\",\"connection\":{\"connected\":false,\"connections\":0},\"filler\":\"";
			     e = "\"}\n"; f = ""; while (length(s f e) < 500) f = f "x"; printf "%s%s%s", s, f, e }' \
			>"$NG/www/tunnel.json"
		NPORT=$(freeport)
		cat >"$NG/nginx.conf" <<EOF
worker_processes 1;
daemon off;
pid $NG/nginx.pid;
error_log $NG/error.log warn;
events { worker_connections 1024; }
http {
    access_log off;
    keepalive_requests 1000000;
    client_body_temp_path $NG/tmp/body;
    proxy_temp_path $NG/tmp/proxy;
    fastcgi_temp_path $NG/tmp/fastcgi;
    uwsgi_temp_path $NG/tmp/uwsgi;
    scgi_temp_path $NG/tmp/scgi;
    server {
        listen 127.0.0.1:$NPORT;
        location / {
            root $NG/www;
            default_type application/json;
        }
    }
}
EOF
		chmod -R a+rX "$TMP"
		"$NGINX" -p "$NG" -c "$NG/nginx.conf" -e "$NG/error.log" >"$NG/stdout.log" 2>&1 &
		NGX_PID=$!
		NURL=http://127.0.0.1:$NPORT/tunnel.json
		ok=0
		for _ in $(seq 1 50); do
			if [ "$(curl -s -o /dev/null -w '%{http_code}' "$NURL")" = 200 ]; then
				ok=1
				break
			fi
			sleep 0.1
		done
		if [ "$ok" = 1 ]; then
			NPIDS="$NGX_PID $(pgrep -P "$NGX_PID" | tr '\n' ' ')"
			say "    response body: $(curl -s "$NURL" | wc -c) bytes"
			c0=$(cpu_ticks $NPIDS)
			if run_wrk nginx "$NURL" -H "Authorization: Bearer $TOKEN"; then
				c1=$(cpu_ticks $NPIDS)
				N_RPS=$W_RPS
				N_P99=$W_P99
				N_CPU=$(per10k $((c1 - c0)) "$W_REQ")
				summary "nginx static 500 B JSON throughput" "$N_RPS req/s"
				summary "nginx latency p50/p99" "$W_P50 / $N_P99 ms"
				summary "nginx CPU per 10,000 requests" "$N_CPU ms"
			else
				anomaly "wrk against nginx produced no result"
			fi
		else
			anomaly "nginx did not start: $(tail -3 "$NG/error.log" "$NG/stdout.log" 2>/dev/null | tr '\n' ' ')"
		fi
	else
		say "[3b] nginx is not installed and could not be installed: no baseline"
		summary "nginx baseline" "skipped (nginx not available)"
	fi
	if [ -n "$E_RPS" ] && [ -n "$N_RPS" ]; then
		summary "ratio exposrd/nginx req/s" "$(awk -v a="$E_RPS" -v b="$N_RPS" 'BEGIN { printf "%.2f", a / b }')"
		summary "ratio exposrd/nginx p99 latency" "$(awk -v a="$E_P99" -v b="$N_P99" 'BEGIN { printf "%.2f", (b > 0) ? a / b : 0 }')"
		summary "ratio exposrd/nginx CPU per request" "$(awk -v a="$E_CPU" -v b="$N_CPU" 'BEGIN { printf "%.2f", (b > 0) ? a / b : 0 }')"
	fi
else
	say "[3] wrk is not installed and could not be installed: no throughput figures"
	summary "API throughput" "skipped (wrk not available)"
fi

# ---------------------------------------------------------------- 4. summary
{
	rev=$(git -C "$TOP" rev-parse --short HEAD 2>/dev/null || echo unknown)
	[ -n "$(git -C "$TOP" status --porcelain --untracked-files=no 2>/dev/null)" ] && rev="$rev+dirty"
	echo "exposrd API bench $(date -u +%Y-%m-%dT%H:%M:%SZ) rev $rev, $(nproc) CPUs, $(uname -sr), loopback"
	echo "wrk -t$THREADS -c$CONNS -d${DURATION}s; server --log-level warn; wrk shares the CPUs with the server"
	cat "$TMP/summary"
	if [ -s "$TMP/anomalies" ]; then
		echo "anomalies:"
		sed 's/^/  - /' "$TMP/anomalies"
	fi
	echo "total bench time: $(($(date +%s) - T_BEGIN)) s"
} >"$TMP/table"
echo
cat "$TMP/table"
if [ -n "$RESULTS" ]; then cp "$TMP/table" "$RESULTS"; fi
