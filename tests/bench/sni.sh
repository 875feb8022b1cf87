#!/bin/bash
# tests/bench/sni.sh - SNI ingress benchmark: exposrd terminating TLS
# (BearSSL, one thread) beside haproxy terminating TLS with the same
# certificate (OpenSSL, nbthread 1), in the same run.  Loopback only,
# about 1 minute; not part of the test suite.
#
#   1. full handshakes per second, ECDSA P-256 and RSA-2048 certificates:
#      hsbench (below, an OpenSSL client: BENCH_HS_CONNS parallel
#      connections, TLS 1.2, no session cache, no tickets; connect,
#      handshake with SNI, close_notify, close, again).
#        exposrd: a tunnel with SNI enabled and no transport (the ingress
#                 looks the tunnel up, completes the handshake, sends
#                 close_notify and closes)
#        haproxy: "tcp-request session reject" (handshake, then close)
#      and the server CPU time per handshake.
#   2. 1 MiB throughput: wrk -t1 -cBENCH_TP_CONNS https://localhost:PORT/1m
#      (SNI "localhost": the tunnel is called "localhost", so no name
#      resolution trick is needed), keep-alive.
#        exposrd: SNI ingress -> WebSocket tunnel (tests/bench/tunnel-client.c,
#                 2 connections; tests/peer/ws-peer.js when it is missing)
#                 -> nginx
#        haproxy: TLS termination, mode tcp -> nginx
#      and the server CPU time per GiB.  The exposrd path has one hop more
#      (the tunnel client) on the same CPUs.
#   3. the issue's targets (handshakes >= 80 % of haproxy's with ECDSA
#      P-256, >= 50 % with RSA-2048; 1 MiB throughput >= 80 %) as
#      PASS/FAIL lines; the exit status does not depend on them.
#
# Both servers offer the same parameters: TLS 1.2 only, ECDHE with
# AES-128-GCM first (ChaCha20-Poly1305, AES-256-GCM after), no tickets.
# Every process shares the machine's CPUs (nothing pinned).
#
# Each comparison runs BENCH_ROUNDS times alternating haproxy and exposrd;
# the medians are reported (the machine may be busy with other work).
#
# Environment: EXPOSRD (default ./exposrd), BENCH_DURATION (5 s a run),
# BENCH_ROUNDS (3),
# BENCH_HS_CONNS (16), BENCH_TP_CONNS (8), BENCH_RESULTS (copy the table
# there).  wrk, nginx, haproxy and libssl-dev are installed with apt-get
# when missing (root only).
#
# Invoked as "sh tests/bench/sni.sh": re-exec under bash.
if [ -z "${BASH_VERSION:-}" ]; then
	exec bash "$0" "$@"
fi
set -u

HERE=$(cd "$(dirname "$0")" && pwd)
TOP=$(cd "$HERE/../.." && pwd)
EXPOSRD=${EXPOSRD:-$TOP/exposrd}
DURATION=${BENCH_DURATION:-5}
ROUNDS=${BENCH_ROUNDS:-3}
HS_CONNS=${BENCH_HS_CONNS:-16}
TP_CONNS=${BENCH_TP_CONNS:-8}
RESULTS=${BENCH_RESULTS:-}

TMP=$(mktemp -d "${TMPDIR:-/tmp}/exposrd-snibench.XXXXXX") || exit 1
PIDS=()
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
	for _ in $(seq 1 30); do
		alive "$p" || break
		sleep 0.1
	done
	kill -KILL "$p" 2>/dev/null
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
fail() {
	say "sni bench: $*"
	exit 1
}
calc() { awk "BEGIN { $1 }"; }
median() { printf '%s\n' "$@" | sort -g | awk '{ v[NR] = $1 } END { print v[int((NR + 1) / 2)] }'; }
: >"$TMP/table"
: >"$TMP/targets"
row() { printf '%-44s %14s %14s %8s\n' "$1" "$2" "$3" "$4" >>"$TMP/table"; }
target() {
	local verdict=FAIL
	[ "$3" = 1 ] && verdict=PASS
	printf '%-4s %-44s %-10s %s\n' "$verdict" "$1" "$2" "$4" >>"$TMP/targets"
}

# ---------------------------------------------------------------- tools
[ -x "$EXPOSRD" ] || fail "$EXPOSRD not found (run make)"
"$EXPOSRD" --version 2>/dev/null | grep -q '^features:.* tls' || fail "$EXPOSRD is built without TLS (WITH_TLS=0)"
cp "$EXPOSRD" "$TMP/exposrd" || exit 1

try_install() {
	[ -e "$2" ] || command -v "$2" >/dev/null 2>&1 && return 0
	[ -x "/usr/sbin/$2" ] && return 0
	if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then
		say "sni bench: installing $1 ..."
		timeout 120 apt-get install -y -q "$1" >"$TMP/apt-$1.log" 2>&1 ||
			{ timeout 60 apt-get update -q >/dev/null 2>&1 &&
				timeout 120 apt-get install -y -q "$1" >"$TMP/apt-$1.log" 2>&1; }
	fi
	[ -e "$2" ] || command -v "$2" >/dev/null 2>&1 || [ -x "/usr/sbin/$2" ]
}
try_install wrk wrk || fail "wrk is not installed and could not be installed"
try_install nginx nginx || fail "nginx is not installed and could not be installed"
try_install haproxy haproxy || fail "haproxy is not installed and could not be installed"
try_install libssl-dev /usr/include/openssl/ssl.h || fail "libssl-dev is needed for the handshake client"
NGINX=$(command -v nginx 2>/dev/null || echo /usr/sbin/nginx)
HAPROXY=$(command -v haproxy 2>/dev/null || echo /usr/sbin/haproxy)
command -v openssl >/dev/null 2>&1 || fail "openssl is needed for the test certificates"

cat >"$TMP/hsbench.c" <<'CEOF'
/* hsbench PORT SNI CONNS SECONDS [CIPHERS]: full TLS 1.2 handshakes per
 * second against 127.0.0.1:PORT; prints "<ok> <failed> <per second>". */
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <openssl/ssl.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

struct slot { int fd; SSL *ssl; };
static SSL_CTX *ctx;
static struct sockaddr_in addr;
static const char *sni;

static double now(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return ts.tv_sec + ts.tv_nsec / 1e9;
}

static void slot_end(struct slot *s)
{
	if (s->ssl)
		SSL_free(s->ssl);
	if (s->fd >= 0)
		close(s->fd);
	s->ssl = NULL;
	s->fd = -1;
}

static void slot_start(struct slot *s)
{
	int one = 1;
	s->fd = socket(AF_INET, SOCK_STREAM, 0);
	if (s->fd < 0)
		return;
	fcntl(s->fd, F_SETFL, O_NONBLOCK);
	setsockopt(s->fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
	if (connect(s->fd, (struct sockaddr *)&addr, sizeof(addr)) != 0 && errno != EINPROGRESS) {
		slot_end(s);
		return;
	}
	s->ssl = SSL_new(ctx);
	SSL_set_fd(s->ssl, s->fd);
	SSL_set_tlsext_host_name(s->ssl, sni);
	SSL_set_connect_state(s->ssl);
}

int main(int argc, char **argv)
{
	if (argc < 5)
		return 2;
	int n = atoi(argv[3]);
	double secs = atof(argv[4]);
	sni = argv[2];
	memset(&addr, 0, sizeof(addr));
	addr.sin_family = AF_INET;
	addr.sin_port = htons((unsigned short)atoi(argv[1]));
	addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	ctx = SSL_CTX_new(TLS_client_method());
	SSL_CTX_set_min_proto_version(ctx, TLS1_2_VERSION);
	SSL_CTX_set_max_proto_version(ctx, TLS1_2_VERSION);
	SSL_CTX_set_session_cache_mode(ctx, SSL_SESS_CACHE_OFF);
	SSL_CTX_set_options(ctx, SSL_OP_NO_TICKET);
	SSL_CTX_set_verify(ctx, SSL_VERIFY_NONE, NULL);
	if (argc > 5 && !SSL_CTX_set_cipher_list(ctx, argv[5]))
		return 2;
	struct slot *sl = calloc((size_t)n, sizeof(*sl));
	struct pollfd *pf = calloc((size_t)n, sizeof(*pf));
	for (int i = 0; i < n; i++) {
		sl[i].fd = -1;
		slot_start(&sl[i]);
		pf[i].events = POLLOUT;
	}
	long ok = 0, bad = 0;
	double t0 = now(), end = t0 + secs;
	while (now() < end) {
		for (int i = 0; i < n; i++)
			pf[i].fd = sl[i].fd;
		if (poll(pf, (nfds_t)n, 100) < 0 && errno != EINTR)
			break;
		for (int i = 0; i < n; i++) {
			struct slot *s = &sl[i];
			if (s->fd >= 0 && !pf[i].revents)
				continue;
			if (s->fd < 0) {
				slot_start(s);
				pf[i].events = POLLOUT;
				continue;
			}
			int r = SSL_do_handshake(s->ssl);
			if (r == 1) {
				ok++;
				SSL_shutdown(s->ssl);
				slot_end(s);
				slot_start(s);
				pf[i].events = POLLOUT;
				continue;
			}
			int e = SSL_get_error(s->ssl, r);
			if (e == SSL_ERROR_WANT_READ) {
				pf[i].events = POLLIN;
			} else if (e == SSL_ERROR_WANT_WRITE) {
				pf[i].events = POLLOUT;
			} else {
				bad++;
				slot_end(s);
				slot_start(s);
				pf[i].events = POLLOUT;
			}
		}
	}
	printf("%ld %ld %.0f\n", ok, bad, ok / (now() - t0));
	return 0;
}
CEOF
cc -O2 -std=c99 -D_POSIX_C_SOURCE=200809L -Wall -o "$TMP/hsbench" "$TMP/hsbench.c" -lssl -lcrypto ||
	fail "cannot compile the handshake client (hsbench)"

# The tunnel client: tests/bench/tunnel-client.c when it is there (built
# like tests/bench/tunnel.sh does), else the Node peer.
TC=
if [ -f "$HERE/tunnel-client.c" ]; then
	if [ ! -f "$TOP/build/libexposrd.a" ]; then
		make -s -C "$TOP" build/libexposrd.a >&2 || fail "cannot build build/libexposrd.a"
	fi
	MKVARS=$(make -s --no-print-directory -C "$TOP" \
		--eval '__bench_vars: ; @: $(info $(ALL_CFLAGS)) $(info $(LIBS))' __bench_vars 2>/dev/null)
	TC_CFLAGS=$(printf '%s\n' "$MKVARS" | sed -n 1p)
	TC_LIBS=$(printf '%s\n' "$MKVARS" | sed -n 2p)
	TC=$TMP/tunnel-client
	(cd "$TOP" && eval "cc $TC_CFLAGS -O2 -o \"\$TC\" tests/bench/tunnel-client.c build/libexposrd.a $TC_LIBS") ||
		TC=
fi
if [ -z "$TC" ]; then
	command -v node >/dev/null 2>&1 && [ -d "$TOP/tests/peer/node_modules" ] ||
		fail "neither tests/bench/tunnel-client.c nor the Node peer (tests/peer) is usable"
	say "sni bench: tunnel-client.c unavailable: using tests/peer/ws-peer.js (slower)"
fi

freeport() {
	python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'
}
HZ=$(getconf CLK_TCK)
cpu_ticks() {
	sed 's/^.*) //' "/proc/$1/stat" 2>/dev/null | awk '{ print $12 + $13 }'
}
wait_port() {
	for _ in $(seq 1 100); do
		(exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null && return 0
		sleep 0.05
	done
	return 1
}

# ---------------------------------------------------------------- certificates, origin, haproxy
sh "$TOP/tests/data/mkcerts.sh" "$TMP/certs" >/dev/null 2>&1 || fail "tests/data/mkcerts.sh failed"
C=$TMP/certs
cat "$C/ec.pem" "$C/ec.key" >"$C/ec.combined"
cat "$C/rsa.pem" "$C/rsa.key" >"$C/rsa.combined"
CIPHERS=ECDHE-ECDSA-AES128-GCM-SHA256:ECDHE-RSA-AES128-GCM-SHA256:ECDHE-ECDSA-CHACHA20-POLY1305:ECDHE-RSA-CHACHA20-POLY1305:ECDHE-ECDSA-AES256-GCM-SHA384:ECDHE-RSA-AES256-GCM-SHA384

NPORT=$(freeport)
NG=$TMP/nginx
mkdir -p "$NG/www" "$NG/tmp"
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
PIDS+=($!)
wait_port "$NPORT" || fail "nginx did not start: $(tail -3 "$NG/error.log" 2>/dev/null)"

H_EC=$(freeport)
H_RSA=$(freeport)
H_TP=$(freeport)
cat >"$TMP/haproxy.cfg" <<EOF
global
    nbthread 1
    maxconn 4096
    ssl-default-bind-options ssl-min-ver TLSv1.2 ssl-max-ver TLSv1.2 no-tls-tickets
    ssl-default-bind-ciphers $CIPHERS
defaults
    mode tcp
    timeout connect 5s
    timeout client 60s
    timeout server 60s
frontend hs_ec
    bind 127.0.0.1:$H_EC ssl crt $C/ec.combined
    tcp-request session reject
frontend hs_rsa
    bind 127.0.0.1:$H_RSA ssl crt $C/rsa.combined
    tcp-request session reject
frontend tp
    bind 127.0.0.1:$H_TP ssl crt $C/ec.combined
    default_backend origin
backend origin
    server nginx 127.0.0.1:$NPORT
EOF
"$HAPROXY" -db -f "$TMP/haproxy.cfg" >"$TMP/haproxy.log" 2>&1 &
HAP_PID=$!
PIDS+=("$HAP_PID")
wait_port "$H_TP" || fail "haproxy did not start: $(tail -3 "$TMP/haproxy.log")"

# ---------------------------------------------------------------- exposrd
API=$(freeport)
SNI=$(freeport)
SRV_PID=
# start_exposrd CERT KEY: the server, an account, tunnel "hsbench" with
# SNI and no transport, tunnel "localhost" with SNI through the tunnel client
start_exposrd() {
	"$TMP/exposrd" --api-port "$API" --ingress-http-port "$API" --ingress http,sni \
		--ingress-http-url "http://localhost:$API" --ingress-sni-port "$SNI" --ingress-sni-cert "$1" \
		--ingress-sni-key "$2" --allow-registration --log-level warn >>"$TMP/exposrd.log" 2>&1 &
	SRV_PID=$!
	PIDS+=("$SRV_PID")
	wait_port "$SNI" || fail "exposrd did not start: $(tail -3 "$TMP/exposrd.log")"
	ACC=$(curl -s -X POST "http://127.0.0.1:$API/v1/account" | python3 -c 'import json,sys; print(json.load(sys.stdin)["account_id"])')
	TOKEN=$(curl -s "http://127.0.0.1:$API/v1/account/$ACC/token" | python3 -c 'import json,sys; print(json.load(sys.stdin)["token"])')
	[ -n "$TOKEN" ] || fail "no account token"
	AUTH="Authorization: Bearer $TOKEN"
	curl -s -o /dev/null -X PUT -H "$AUTH" -H 'Content-Type: application/json' --data '{}' \
		"http://127.0.0.1:$API/v1/tunnel/hsbench"
	curl -s -o /dev/null -X PATCH -H "$AUTH" -H 'Content-Type: application/json' \
		--data '{"ingress":{"sni":{"enabled":true}}}' "http://127.0.0.1:$API/v1/tunnel/hsbench"
}
start_tunnel() {
	if [ -n "$TC" ]; then
		"$TC" --api "http://127.0.0.1:$API" --account "$ACC" --tunnel localhost --target "127.0.0.1:$NPORT" \
			--connections 2 >"$TMP/tc.out" 2>"$TMP/tc.err" &
	else
		node "$TOP/tests/peer/ws-peer.js" --api "http://127.0.0.1:$API" --account "$ACC" --tunnel localhost \
			--target "http://127.0.0.1:$NPORT" --connections 2 >"$TMP/tc.out" 2>"$TMP/tc.err" &
	fi
	TC_PID=$!
	PIDS+=("$TC_PID")
	for _ in $(seq 1 100); do
		grep -q '^READY' "$TMP/tc.out" && break
		sleep 0.1
	done
	grep -q '^READY' "$TMP/tc.out" || fail "tunnel client not ready: $(tail -3 "$TMP/tc.err")"
	curl -s -o /dev/null -X PATCH -H "$AUTH" -H 'Content-Type: application/json' \
		--data '{"ingress":{"sni":{"enabled":true}}}' "http://127.0.0.1:$API/v1/tunnel/localhost"
}

# hs LABEL PORT PID: one handshake run; sets HS_RATE and HS_US (server CPU µs each)
hs() {
	local c0 c1 out ok
	"$TMP/hsbench" "$2" hsbench.example.com 4 1 "$CIPHERS" >/dev/null # warm-up
	c0=$(cpu_ticks "$3")
	out=$("$TMP/hsbench" "$2" hsbench.example.com "$HS_CONNS" "$DURATION" "$CIPHERS")
	c1=$(cpu_ticks "$3")
	ok=$(echo "$out" | cut -d' ' -f1)
	HS_RATE=$(echo "$out" | cut -d' ' -f3)
	HS_US=$(calc "printf \"%.0f\", ($c1 - $c0) * 1000000 / $HZ / ($ok > 0 ? $ok : 1)")
	say "  $1: $out (handshakes failures per-second), server CPU ${HS_US} us/handshake"
	[ "$(echo "$out" | cut -d' ' -f2)" = 0 ] || say "  ANOMALY: $1: failed handshakes"
}

# tp LABEL URL PID: one wrk run; sets TP_MIB (MiB/s) and TP_CPU (server CPU s per GiB)
tp() {
	local c0 c1 rps
	wrk -t1 -c4 -d1s "$2" >/dev/null 2>&1 # warm-up
	c0=$(cpu_ticks "$3")
	wrk -t1 -c"$TP_CONNS" -d"${DURATION}s" "$2" >"$TMP/wrk.out" 2>&1
	c1=$(cpu_ticks "$3")
	rps=$(awk '/^Requests\/sec:/ { print $2 }' "$TMP/wrk.out")
	grep -q 'Non-2xx\|Socket errors' "$TMP/wrk.out" && say "  ANOMALY: $1: $(grep 'Non-2xx\|Socket errors' "$TMP/wrk.out")"
	TP_MIB=$(calc "printf \"%.0f\", ${rps:-0}")
	TP_CPU=$(calc "printf \"%.2f\", ($c1 - $c0) / $HZ / ((${rps:-0} * $DURATION) / 1024 + 0.000001)")
	say "  $1: ${rps:-?} x 1 MiB/s, server CPU ${TP_CPU} s/GiB"
}

say "SNI bench: $(nproc) CPUs shared by the client, the TLS server, nginx (and the tunnel client); ${DURATION}s a run"

# hs_pair PORT_HAPROXY: ROUNDS alternating runs; medians in HS_H HS_E, HS_HUS HS_EUS
hs_pair() {
	local hr=() er=() hu=() eu=() i
	for ((i = 1; i <= ROUNDS; i++)); do
		hs "haproxy, round $i" "$1" "$HAP_PID"
		hr+=("$HS_RATE")
		hu+=("$HS_US")
		hs "exposrd, round $i" "$SNI" "$SRV_PID"
		er+=("$HS_RATE")
		eu+=("$HS_US")
	done
	HS_H=$(median "${hr[@]}") HS_E=$(median "${er[@]}") HS_HUS=$(median "${hu[@]}") HS_EUS=$(median "${eu[@]}")
}

# ---- ECDSA P-256 ----
start_exposrd "$C/ec.pem" "$C/ec.key"
start_tunnel
curl -s --max-time 5 -k -o /dev/null -w '%{http_code}' --resolve "localhost:$SNI:127.0.0.1" \
	"https://localhost:$SNI/1m" | grep -q 200 || fail "no 1 MiB answer through the SNI ingress"
say "handshakes, ECDSA P-256:"
hs_pair "$H_EC"
HAP_EC=$HS_H HAP_EC_US=$HS_HUS EXP_EC=$HS_E EXP_EC_US=$HS_EUS
say "1 MiB throughput (ECDSA certificate):"
HT=() HC=() ET=() EC=()
for ((i = 1; i <= ROUNDS; i++)); do
	tp "haproxy, round $i" "https://localhost:$H_TP/1m" "$HAP_PID"
	HT+=("$TP_MIB")
	HC+=("$TP_CPU")
	tp "exposrd, round $i" "https://localhost:$SNI/1m" "$SRV_PID"
	ET+=("$TP_MIB")
	EC+=("$TP_CPU")
done
HAP_TP=$(median "${HT[@]}") HAP_TP_CPU=$(median "${HC[@]}") EXP_TP=$(median "${ET[@]}") EXP_TP_CPU=$(median "${EC[@]}")
stop_pid "$TC_PID"
stop_pid "$SRV_PID"

# ---- RSA-2048 ----
start_exposrd "$C/rsa.pem" "$C/rsa.key"
say "handshakes, RSA-2048:"
hs_pair "$H_RSA"
HAP_RSA=$HS_H HAP_RSA_US=$HS_HUS EXP_RSA=$HS_E EXP_RSA_US=$HS_EUS
stop_pid "$SRV_PID"

# ---------------------------------------------------------------- report
ratio() { calc "printf \"%.2f\", $1 / ($2 > 0 ? $2 : 1)"; }
R_EC=$(ratio "$EXP_EC" "$HAP_EC")
R_RSA=$(ratio "$EXP_RSA" "$HAP_RSA")
R_TP=$(ratio "$EXP_TP" "$HAP_TP")
row "SNI ingress vs haproxy TLS termination" "exposrd" "haproxy" "ratio"
row "full handshakes/s, ECDSA P-256" "$EXP_EC" "$HAP_EC" "$R_EC"
row "  server CPU us per handshake" "$EXP_EC_US" "$HAP_EC_US" ""
row "full handshakes/s, RSA-2048" "$EXP_RSA" "$HAP_RSA" "$R_RSA"
row "  server CPU us per handshake" "$EXP_RSA_US" "$HAP_RSA_US" ""
row "1 MiB responses, MiB/s (wrk -c$TP_CONNS)" "$EXP_TP" "$HAP_TP" "$R_TP"
row "  server CPU s per GiB" "$EXP_TP_CPU" "$HAP_TP_CPU" ""
target "handshakes ECDSA P-256 >= 80 % of haproxy" "$R_EC" "$(calc "print ($R_EC >= 0.8)")" ""
target "handshakes RSA-2048 >= 50 % of haproxy" "$R_RSA" "$(calc "print ($R_RSA >= 0.5)")" ""
target "1 MiB throughput >= 80 % of haproxy" "$R_TP" "$(calc "print ($R_TP >= 0.8)")" ""
{
	echo "SNI ingress (tests/bench/sni.sh, $(date -u +%Y-%m-%dT%H:%MZ), $(nproc) CPUs, medians of $ROUNDS ${DURATION}s runs;"
	echo "handshakes: OpenSSL client, $HS_CONNS connections, TLS 1.2, no resumption; throughput: wrk -t1 -c$TP_CONNS;"
	echo "exposrd --log-level warn, tunnel via $([ -n "$TC" ] && echo tunnel-client.c || echo ws-peer.js); haproxy nbthread 1)"
	cat "$TMP/table"
	echo
	cat "$TMP/targets"
} >"$TMP/report"
cat "$TMP/report"
[ -n "$RESULTS" ] && cp "$TMP/report" "$RESULTS"
exit 0
