#!/bin/sh
# HTTP ingress (spec/ingress.md §1-§2) end to end: curl -> exposrd ingress ->
# WebSocket transport -> ws-peer.js (tests/peer) -> target.js.  Large bodies
# both ways with checksums, chunked framing, parallel requests, keep-alive
# connections mixing tunnel and API requests, HEAD/204/304, the forwarded
# header rules, the error answers of §2.3 and a truncated upstream.
. "$(dirname "$0")/lib.sh"

need_peer
start_target
start_std
new_account || finish
start_peer p1 --account "$ACC" --tunnel ing-one --target "$TARGET"
if [ $? -ne 0 ]; then
	fail "ws-peer connects (READY)" "$(peer_diag p1)"
	finish
fi
HOSTP=ing-one.localhost:$API_PORT
H="Host: $HOSTP"
RES="--resolve $HOSTP:127.0.0.1"
PUB=http://$HOSTP
MIB10=10485760

# ---- basic and bulk transfers ----
req GET "$PUB/hello" $RES
[ "$STATUS" = 200 ] && [ "$BODY" = hello ]
result "GET http://ing-one.localhost:PORT/hello -> 200 hello" $? "status $STATUS body $(printf %s "$BODY" | head -c 200)"

WANT=$(curl -s --max-time 10 "$TARGET/bytes-sha256?n=$MIB10&seed=3")
GOT=$(curl -s --max-time 30 $RES "$PUB/bytes?n=$MIB10&seed=3" | sha_of -)
[ "$WANT" = "$GOT $MIB10" ]
result "10 MiB download intact (sha256)" $? "target says: $WANT" "received: $GOT"

rm -f "$T/headers"
GOT=$(curl -s --max-time 30 -D "$T/headers" $RES "$PUB/bytes-chunked?n=$MIB10&seed=3" | sha_of -)
[ "$WANT" = "$GOT $MIB10" ] && [ "$(header transfer-encoding)" = chunked ]
result "10 MiB chunked response intact and still chunked" $? "target says: $WANT" "received: $GOT" \
	"transfer-encoding: $(header transfer-encoding)"

head -c $MIB10 /dev/urandom >"$T/up.bin"
UPSUM=$(sha_of "$T/up.bin")
OUT=$(curl -s --max-time 30 $RES -T "$T/up.bin" "$PUB/sha256")
[ "$OUT" = "$UPSUM $MIB10" ]
result "10 MiB upload (PUT /sha256) intact" $? "want $UPSUM $MIB10" "got $OUT"

head -c 1000000 "$T/up.bin" >"$T/up1.bin"
UP1=$(sha_of "$T/up1.bin")
rm -f "$T/headers"
GOT=$(curl -s --max-time 20 $RES -D "$T/headers" -H 'Transfer-Encoding: chunked' --data-binary @"$T/up1.bin" "$PUB/echo" | sha_of -)
[ "$GOT" = "$UP1" ] && [ "$(header transfer-encoding)" = chunked ]
result "POST /echo with a chunked request body: echoed intact (chunked)" $? "want $UP1 got $GOT"
rm -f "$T/headers"
GOT=$(curl -s --max-time 20 $RES -D "$T/headers" --data-binary @"$T/up1.bin" "$PUB/echo" | sha_of -)
[ "$GOT" = "$UP1" ] && [ "$(header content-length)" = 1000000 ]
result "POST /echo with Content-Length: echoed intact with Content-Length" $? "want $UP1 got $GOT" \
	"content-length: $(header content-length)"

# ---- 50 parallel requests ----
OUT=$($PY - "$API_PORT" "$HOSTP" "$TARGET_PORT" <<'PYEOF'
import hashlib, http.client, sys, threading
port, host, tport = int(sys.argv[1]), sys.argv[2], int(sys.argv[3])
res = {}
def one(i):
    try:
        c = http.client.HTTPConnection("127.0.0.1", port, timeout=20)
        c.request("GET", "/bytes?n=%d&seed=%d" % (100000 + i * 1000, i), headers={"Host": host})
        r = c.getresponse()
        body = r.read()
        c.close()
        c = http.client.HTTPConnection("127.0.0.1", tport, timeout=20)
        c.request("GET", "/bytes-sha256?n=%d&seed=%d" % (100000 + i * 1000, i))
        want = c.getresponse().read().decode().split()[0]
        c.close()
        res[i] = "ok" if r.status == 200 and hashlib.sha256(body).hexdigest() == want else "status %d len %d" % (r.status, len(body))
    except Exception as e:
        res[i] = repr(e)
ts = [threading.Thread(target=one, args=(i,)) for i in range(50)]
for t in ts: t.start()
for t in ts: t.join(30)
bad = ["%d: %s" % (i, res.get(i, "no answer")) for i in range(50) if res.get(i) != "ok"]
print("ok" if not bad else "; ".join(bad[:5]) + " (%d bad)" % len(bad))
PYEOF
)
[ "$OUT" = ok ]
result "50 parallel requests: all 200 with intact bodies" $? "$OUT"

# ---- keep-alive: tunnel, API and other hosts on one connection ----
cat >"$T/ka.py" <<'PYEOF'
import socket, sys
port, auth = int(sys.argv[1]), sys.argv[2]
tun = "ing-one.localhost:%d" % port
s = socket.create_connection(("127.0.0.1", port), timeout=5)
f = s.makefile("rb")
def rq(method, host, path, extra=""):
    s.sendall(("%s %s HTTP/1.1\r\nHost: %s\r\n%s\r\n" % (method, path, host, extra)).encode())
    status = f.readline().decode().split(" ")[1]
    h = {}
    while True:
        l = f.readline().decode()
        if l in ("\r\n", ""):
            break
        k, v = l.split(":", 1)
        h[k.strip().lower()] = v.strip()
    body = b""
    if method != "HEAD" and status not in ("204", "304"):
        if "content-length" in h:
            body = f.read(int(h["content-length"]))
        elif h.get("transfer-encoding") == "chunked":
            while True:
                n = int(f.readline().strip(), 16)
                if n == 0:
                    f.readline()
                    break
                body += f.read(n)
                f.readline()
    return "%s:%d" % (status, len(body))
out = []
try:
    out.append(rq("GET", tun, "/hello"))
    out.append(rq("GET", "localhost:%d" % port, "/v1/tunnel/ing-one", auth + "\r\n"))
    out.append(rq("GET", tun, "/hello"))
    out.append(rq("HEAD", tun, "/hello"))
    out.append(rq("GET", tun, "/status?code=204"))
    out.append(rq("GET", tun, "/status?code=304"))
    out.append(rq("GET", "nope-tun.localhost:%d" % port, "/hello"))
    out.append(rq("GET", tun, "/bytes-chunked?n=70000&seed=1"))
    out.append(rq("GET", tun, "/status?code=200"))
    out.append(rq("GET", tun, "/hello"))
except Exception as e:
    out.append("error:%r" % e)
print(" ".join(out))
PYEOF
OUT=$($PY "$T/ka.py" "$API_PORT" "$AUTH")
case $OUT in "200:5 200:"*" 200:5 "*) true ;; *) false ;; esac
result "keep-alive: tunnel, API and tunnel requests on one connection" $? "got: $OUT"
case $OUT in *" 200:5 200:0 204:0 304:0 "*) true ;; *) false ;; esac
result "keep-alive: HEAD, 204 and 304 answers end without a body and the connection goes on" $? "got: $OUT"
case $OUT in *" 304:0 404:28 200:70000 200:0 200:5") true ;; *) false ;; esac
result "keep-alive: an ingress error answer (404) keeps the connection usable" $? "got: $OUT"

# ---- HEAD / 204 / 304 with curl ----
req HEAD "$PUB/hello" $RES
[ "$STATUS" = 200 ] && [ "$(header content-length)" = 5 ]
result "HEAD /hello (curl -I) -> 200 with Content-Length 5" $? "status $STATUS content-length $(header content-length)"
check "GET /status?code=204 -> 204" GET "$PUB/status?code=204" 204 $RES
check "GET /status?code=304 -> 304" GET "$PUB/status?code=304" 304 $RES
check "GET /status?code=418 -> 418 (status relayed)" GET "$PUB/status?code=418" 418 $RES

# ---- forwarded request headers (§2.5, §2.6) ----
req GET "$PUB/echo-headers" $RES -H "Origin: http://$HOSTP" -H "Referer: http://$HOSTP/page?x=1" \
	-H 'Connection: X-Drop-Me' -H 'X-Custom: abc' -H 'Cookie: a=1; b=2' -H 'Authorization: Basic Zm9vOmJhcg=='
NODE=$(jv 'j["exposr-via"]')
expect_json "X-Forwarded-For = client IP" 'j["x-forwarded-for"]' 127.0.0.1
expect_json "X-Real-IP = client IP" 'j["x-real-ip"]' 127.0.0.1
expect_true "Exposr-Via = node id (40 lowercase hex)" '__import__("re").fullmatch(r"[0-9a-f]{40}", j["exposr-via"])'
expect_json "X-Forwarded-Host = <tunnel>.localhost:PORT" 'j["x-forwarded-host"]' "$HOSTP"
expect_json "X-Forwarded-Proto = http" 'j["x-forwarded-proto"]' http
expect_json "X-Forwarded-Port = PORT" 'j["x-forwarded-port"]' "$API_PORT"
expect_json "Forwarded has the exact format" 'j["forwarded"]' "by=_exposr;for=127.0.0.1;host=$HOSTP;proto=http"
expect_json "Host rewritten to the target's host:port" 'j["host"]' "127.0.0.1:$TARGET_PORT"
expect_json "Origin naming the public host rewritten to the target (no path)" 'j["origin"]' "http://127.0.0.1:$TARGET_PORT"
expect_json "Referer naming the public host rewritten, path and query kept" 'j["referer"]' \
	"http://127.0.0.1:$TARGET_PORT/page?x=1"
expect_json "client Connection header replaced by keep-alive" 'j["connection"]' keep-alive
expect_true "X-Custom, Cookie and Authorization passed through" \
	'j["x-custom"] == "abc" and j["cookie"] == "a=1; b=2" and j["authorization"] == "Basic Zm9vOmJhcg=="'
expect_true "no stray X-Drop-Me header" '"x-drop-me" not in j'

req GET "$PUB/echo-headers" $RES -H 'X-Forwarded-For: 127.0.0.3, 10.1.2.3' -H 'X-Forwarded-Proto: https' \
	-H 'Origin: http://other.example' -H 'Exposr-Via: abc'
expect_json "incoming X-Forwarded-For first entry honoured (chain dropped)" 'j["x-forwarded-for"]' 127.0.0.3
expect_json "X-Real-IP follows X-Forwarded-For" 'j["x-real-ip"]' 127.0.0.3
expect_json "incoming X-Forwarded-Proto https honoured" 'j["x-forwarded-proto"]' https
expect_json "Forwarded with the incoming client and proto" 'j["forwarded"]' \
	"by=_exposr;for=127.0.0.3;host=$HOSTP;proto=https"
expect_json "Origin naming another host unchanged" 'j["origin"]' http://other.example
expect_json "Exposr-Via: node id prepended to the incoming value" 'j["exposr-via"]' "$NODE,abc"

req GET "$API/echo-headers" -H "Host: ing-one.localhost"
expect_true "Host without port: X-Forwarded-Host has no port, no X-Forwarded-Port" \
	'j["x-forwarded-host"] == "ing-one.localhost" and "x-forwarded-port" not in j'

req GET "$ADMIN/v1/admin/tunnel/ing-one" -H "$ADMIN_AUTH"
expect_json "Exposr-Via node id is the node_id of the tunnel's connections" 'j["connections"][0]["node_id"]' "$NODE"

# ---- errors (§2.3) ----
req GET "$API/hello" -H "Host: nope-tun.localhost:$API_PORT"
[ "$STATUS" = 404 ] && [ "$BODY" = '{"error":"TUNNEL_NOT_FOUND"}' ] && [ "$(header content-type)" = application/json ]
result "unknown tunnel -> 404 {\"error\":\"TUNNEL_NOT_FOUND\"} (application/json)" $? "status $STATUS body $BODY"

put_tunnel ing-idle '{}'
req GET "$API/hello" -H "Host: ing-idle.localhost:$API_PORT"
[ "$STATUS" = 503 ] && [ "$BODY" = '{"error":"TUNNEL_NOT_CONNECTED"}' ]
result "tunnel not connected -> 503 {\"error\":\"TUNNEL_NOT_CONNECTED\"}" $? "status $STATUS body $BODY"

req_json PATCH "$API/v1/tunnel/ing-one" '{"ingress":{"http":{"enabled":false}}}' -H "$AUTH"
req GET "$PUB/hello" $RES
[ "$STATUS" = 403 ] && [ "$BODY" = '{"error":"TUNNEL_HTTP_INGRESS_DISABLED"}' ]
result "http ingress disabled while connected -> 403 TUNNEL_HTTP_INGRESS_DISABLED" $? "status $STATUS body $BODY"
req_json PATCH "$API/v1/tunnel/ing-one" '{"ingress":{"http":{"enabled":true}}}' -H "$AUTH"
check "http ingress enabled again -> 200" GET "$PUB/hello" 200 $RES

req GET "$PUB/hello" $RES -H "Exposr-Via: 0123456789abcdef0123456789abcdef01234567,$NODE"
[ "$STATUS" = 508 ] && [ "$BODY" = '{"error":"HTTP_INGRESS_REQUEST_LOOP"}' ]
result "own node id in Exposr-Via -> 508 HTTP_INGRESS_REQUEST_LOOP" $? "status $STATUS body $BODY"

# A tunnel whose target port is closed ($P3_PORT: free, nobody listens).
start_peer p2 --account "$ACC" --tunnel ing-dead --target "http://127.0.0.1:$P3_PORT" --connections 1
result "peer for a tunnel with a closed target port READY" $? "$(peer_diag p2)"
req GET "$API/hello" -H "Host: ing-dead.localhost:$API_PORT"
[ "$STATUS" = 502 ] && [ "$BODY" = '{"error":"TUNNEL_TARGET_CON_RESET"}' ]
result "target refusing connections -> 502 TUNNEL_TARGET_CON_RESET" $? "status $STATUS body $BODY"

req GET "$PUB/close" $RES
[ "$STATUS" = 502 ] && [ "$BODY" = '{"error":"TUNNEL_TARGET_CON_RESET"}' ]
result "target closing without an answer -> 502 TUNNEL_TARGET_CON_RESET" $? "status $STATUS body $BODY"

curl -s -o "$T/trunc" --max-time 10 $RES "$PUB/truncate?n=100000"
RC=$?
[ $RC -eq 18 ] && [ "$(wc -c <"$T/trunc")" -eq 100000 ]
result "truncated upstream -> curl sees a partial transfer (exit 18), not a complete one" $? \
	"curl exit $RC, $(wc -c <"$T/trunc") bytes"
check "the tunnel still answers after the truncation" GET "$PUB/hello" 200 $RES

# ---- the bare ingress domain is the API ----
check_json "Host: localhost:PORT (bare ingress domain) reaches the API" GET "$API/v1/tunnel/ing-one" 200 \
	'j["id"]' ing-one -H "Host: localhost:$API_PORT" -H "$AUTH"
req GET "$PUB/v1/tunnel/ing-one" $RES -H "$AUTH"
[ "$STATUS" = 404 ] && [ "$BODY" = "not found" ]
result "an API path on a tunnel host goes to the tunnel's target, not the API" $? "status $STATUS body $BODY"

stop_server
stop_pid "$PEER_PID"
finish
