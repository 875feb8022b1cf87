#!/bin/sh
# HTTP/1.1 server robustness on the API port (lib/httpd.c, lib/http.c):
# bad requests, limits, 100-continue, keep-alive, pipelining, chunked
# bodies, many connections, HEAD.  The header timeout (10 s) is too long
# to wait for here; only "other clients are served meanwhile" is checked.
. "$(dirname "$0")/lib.sh"

cat >"$T/raw.py" <<'PYEOF'
import socket, sys, time

def recv_all(s, timeout):
    out = b""
    end = time.time() + timeout
    s.settimeout(0.2)
    while time.time() < end:
        try:
            b = s.recv(65536)
        except socket.timeout:
            continue
        except ConnectionResetError:
            break
        if not b:
            break
        out += b
    return out

def statuses(data):
    return [l.split(b" ")[1].decode() for l in data.split(b"\r\n") if l.startswith(b"HTTP/1.")]

mode, port = sys.argv[1], int(sys.argv[2])
addr = ("127.0.0.1", port)
if mode == "send":
    # stdin -> one write; print everything read until EOF (bounded)
    data = sys.stdin.buffer.read()
    s = socket.create_connection(addr, timeout=5)
    try:
        s.sendall(data)
    except (BrokenPipeError, ConnectionResetError):
        pass
    sys.stdout.buffer.write(recv_all(s, 3))
elif mode == "expect100":
    body = b'{"target":{"url":"http://continue"}}'
    auth = sys.argv[3]
    s = socket.create_connection(addr, timeout=5)
    s.sendall(b"PUT /v1/tunnel/rb-tun HTTP/1.1\r\nHost: x\r\n" + auth.encode() + b"\r\n"
              b"Content-Type: application/json\r\nExpect: 100-continue\r\nConnection: close\r\n"
              b"Content-Length: %d\r\n\r\n" % len(body))
    s.settimeout(3)
    first = b""
    while b"\r\n\r\n" not in first:
        b = s.recv(4096)
        if not b:
            break
        first += b
    print("interim", statuses(first)[:1])
    s.sendall(body)
    rest = first.split(b"\r\n\r\n", 1)[1] + recv_all(s, 3)
    print("final", statuses(rest)[:1], b"http://continue" in rest)
elif mode == "split":
    # head in one write, the body later in pieces
    auth, size, pieces = sys.argv[3], int(sys.argv[4]), int(sys.argv[5])
    url = b"http://split-%d/" % size
    body = b'{"target":{"url":"' + url + b'"}}'
    body += b" " * max(0, size - len(body))
    s = socket.create_connection(addr, timeout=5)
    s.sendall(b"PUT /v1/tunnel/rb-tun HTTP/1.1\r\nHost: x\r\n" + auth.encode() + b"\r\n"
              b"Content-Type: application/json\r\nConnection: close\r\nContent-Length: %d\r\n\r\n" % len(body))
    step = (len(body) + pieces - 1) // pieces
    for i in range(0, len(body), step):
        time.sleep(0.2 if i == 0 else 0.02)
        s.sendall(body[i:i + step])
    out = recv_all(s, 3)
    print("split", statuses(out)[:1], url in out)
elif mode == "many":
    # N connections: first all idle (half a request), then a normal request
    # on a fresh connection, then a full request on each of the N.
    n = int(sys.argv[3])
    socks = []
    for _ in range(n):
        c = socket.create_connection(addr, timeout=5)
        c.sendall(b"GET /v1/account/CDEFHJKMNPRTVWXY/token HTTP/1.1\r\nHost: x\r\n")
        socks.append(c)
    s = socket.create_connection(addr, timeout=5)
    s.sendall(b"GET /nowhere HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
    print("fresh", statuses(recv_all(s, 3))[:1])
    for c in socks:
        c.sendall(b"Connection: close\r\n\r\n")
    ok = 0
    for c in socks:
        if statuses(recv_all(c, 3))[:1] == ["403"]:
            ok += 1
        c.close()
    print("answered", ok)
elif mode == "slow":
    # half a header on one connection; another client is served meanwhile
    c = socket.create_connection(addr, timeout=5)
    c.sendall(b"GET /v1/account/CDEFHJKMNPRTVWXY/tok")
    t0 = time.time()
    s = socket.create_connection(addr, timeout=5)
    s.sendall(b"GET /nowhere HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
    st = statuses(recv_all(s, 3))[:1]
    print("other", st, time.time() - t0 < 2)
    c.sendall(b"en HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
    print("slow", statuses(recv_all(c, 3))[:1])
PYEOF

raw() {
	$PY "$T/raw.py" "$@"
}
# send_raw NAME: stdin is the request; leaves the answer in $T/raw
send_raw() {
	raw send "$API_PORT" >"$T/raw"
}
first_status() {
	head -1 "$T/raw" | tr -d '\r' | cut -d' ' -f2
}
all_statuses() {
	$PY -c 'import re, sys; print(" ".join(m.decode() for m in re.findall(rb"HTTP/1\.[01] (\d{3}) ", open(sys.argv[1], "rb").read())))' "$T/raw"
}
alive() {
	check "server still serves after: $1" GET "$API/v1/account/CDEFHJKMNPRTVWXY/token" 403
}

start_std
new_account || finish
CT='Content-Type: application/json'

check "unknown path 404" GET "$API/nowhere" 404
[ "$BODY" = "Not Found" ] && [ "$(header content-type)" = "text/plain; charset=utf-8" ]
result "404 body is text/plain 'Not Found'" $? "body '$BODY' ct '$(header content-type)'"
check "unknown /v1 path 404" GET "$API/v1/nothing/here" 404
check "DELETE on the account route 404" DELETE "$API/v1/account" 404

# ---- malformed input ----
printf 'GARBAGE\r\n\r\n' | send_raw
result "malformed request line -> 400" "$([ "$(first_status)" = 400 ]; echo $?)" "got: $(head -c 200 "$T/raw")"
alive "a malformed request line"
printf 'GET / HTTP/9.9\r\nHost: x\r\n\r\n' | send_raw
result "unknown HTTP version -> 400 or 505" "$(case $(first_status) in 400 | 505) echo 0 ;; *) echo 1 ;; esac)" "got: $(head -c 200 "$T/raw")"
printf 'GET / HTTP/1.1\r\nHost: x\r\nBad Header: y\r\n\r\n' | send_raw
result "space in a header name -> 400" "$([ "$(first_status)" = 400 ]; echo $?)" "got: $(head -c 200 "$T/raw")"
printf 'PUT /v1/tunnel/rb-tun HTTP/1.1\r\nHost: x\r\nContent-Length: abc\r\n\r\n' | send_raw
result "invalid Content-Length -> 400" "$([ "$(first_status)" = 400 ]; echo $?)" "got: $(head -c 200 "$T/raw")"
printf 'PUT /v1/tunnel/rb-tun HTTP/1.1\r\nHost: x\r\nContent-Length: 2\r\nContent-Length: 3\r\n\r\n{}' | send_raw
result "conflicting Content-Length headers -> 400" "$([ "$(first_status)" = 400 ]; echo $?)" "got: $(head -c 200 "$T/raw")"
printf 'PUT /v1/tunnel/rb-tun HTTP/1.1\r\nHost: x\r\nContent-Length: 2\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n' | send_raw
result "Content-Length with Transfer-Encoding -> 400" "$([ "$(first_status)" = 400 ]; echo $?)" "got: $(head -c 200 "$T/raw")"
printf 'PUT /v1/tunnel/rb-tun HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\nContent-Type: application/json\r\n\r\nzz\r\n{}\r\n0\r\n\r\n' | send_raw
result "bad chunk size -> 400" "$([ "$(first_status)" = 400 ]; echo $?)" "got: $(head -c 200 "$T/raw")"
alive "bad framing"

# ---- limits ----
big=$($PY -c 'print("a" * 17000)')
check "header over 16 KiB -> 431" GET "$API/v1/account/CDEFHJKMNPRTVWXY/token" 431 -H "X-Big: $big"
set --
i=0
while [ $i -lt 100 ]; do
	set -- "$@" -H "X-H$i: v"
	i=$((i + 1))
done
check "100 header fields -> 431" GET "$API/v1/account/CDEFHJKMNPRTVWXY/token" 431 "$@"
set --
longurl=$($PY -c 'print("/v1/" + "x" * 17000)')
req GET "$API$longurl"
result "request target over 16 KiB -> 414/431" "$(case $STATUS in 414 | 431) echo 0 ;; *) echo 1 ;; esac)" "status $STATUS"
alive "oversized requests"

# ---- 100-continue ----
raw expect100 "$API_PORT" "$AUTH" >"$T/raw"
grep -qx "interim \['100'\]" "$T/raw"
result "Expect: 100-continue gets 100 Continue before the body" $? "$(cat "$T/raw")"
grep -qx "final \['200'\] True" "$T/raw"
result "... then 200 for the PUT with the body applied" $? "$(cat "$T/raw")"
req_json PUT "$API/v1/tunnel/rb-tun" '{"target":{"url":"http://curl-continue"}}' -H "$AUTH" -H 'Expect: 100-continue'
result "curl with Expect: 100-continue: 100 then 200" \
	"$([ "$STATUS" = 200 ] && grep -q '^HTTP/1.1 100' "$T/headers" && [ "$(jv 'j["target"]["url"]')" = http://curl-continue ]; echo $?)" \
	"status $STATUS body $BODY headers $(tr -d '\r' <"$T/headers" | head -3)"

# ---- bodies arriving after the head (separate TCP segments) ----
raw split "$API_PORT" "$AUTH" 40 1 >"$T/raw"
grep -qx "split \['200'\] True" "$T/raw"
result "body sent 200 ms after the head (no Expect) -> 200, body applied" $? "$(cat "$T/raw")"
raw split "$API_PORT" "$AUTH" 60000 8 >"$T/raw"
grep -qx "split \['200'\] True" "$T/raw"
result "60 KB body in 8 delayed pieces -> 200, body applied" $? "$(cat "$T/raw")"

# ---- keep-alive and pipelining ----
conns=$(curl -s --max-time 5 -o /dev/null -o /dev/null -o /dev/null -w '%{num_connects} ' \
	"$API/v1/account/CDEFHJKMNPRTVWXY/token" "$API/nowhere" "$API/v1/account/$ACC/token")
result "keep-alive: three requests on one connection" "$([ "$conns" = "1 0 0 " ]; echo $?)" "num_connects: '$conns'"
printf 'GET /v1/account/CDEFHJKMNPRTVWXY/token HTTP/1.1\r\nHost: x\r\n\r\nGET /v1/account/%s/token HTTP/1.1\r\nHost: x\r\n\r\nGET /nowhere HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n' "$ACC" | send_raw
result "pipelining: three requests in one write answered in order" "$([ "$(all_statuses)" = "403 201 404" ]; echo $?)" \
	"statuses: '$(all_statuses)'"
printf 'PUT /v1/tunnel/rb-pipe HTTP/1.1\r\nHost: x\r\n%s\r\nContent-Type: application/json\r\nContent-Length: 2\r\n\r\n{}GET /v1/tunnel/rb-pipe HTTP/1.1\r\nHost: x\r\n%s\r\nConnection: close\r\n\r\n' "$AUTH" "$AUTH" | send_raw
result "pipelining: a body then the next request in the same write" "$([ "$(all_statuses)" = "200 200" ]; echo $?)" \
	"statuses: '$(all_statuses)'"
printf 'GET /nowhere HTTP/1.0\r\nHost: x\r\n\r\nGET /nowhere HTTP/1.0\r\nHost: x\r\n\r\n' | send_raw
result "HTTP/1.0 without keep-alive: one answer, then close" "$([ "$(all_statuses)" = 404 ]; echo $?)" "statuses: '$(all_statuses)'"
printf 'GET /nowhere HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\nGET /nowhere HTTP/1.1\r\nHost: x\r\n\r\n' | send_raw
result "Connection: close: one answer, then close" "$([ "$(all_statuses)" = 404 ]; echo $?)" "statuses: '$(all_statuses)'"

# ---- chunked request bodies ----
check_json "chunked PUT body accepted (curl)" PUT "$API/v1/tunnel/rb-tun" 200 'j["target"]["url"]' http://chunked \
	-H "$AUTH" -H "$CT" -H 'Transfer-Encoding: chunked' --data-binary '{"target":{"url":"http://chunked"}}'
printf 'PATCH /v1/tunnel/rb-tun HTTP/1.1\r\nHost: x\r\n%s\r\nContent-Type: application/json\r\nTransfer-Encoding: chunked\r\nConnection: close\r\n\r\n5;ext=1\r\n{"tar\r\n1a\r\nget":{"url":"http://split"\r\n2\r\n}}\r\n0\r\nX-Trailer: t\r\n\r\n' "$AUTH" | send_raw
result "chunked body in 3 chunks with an extension and a trailer" "$([ "$(first_status)" = 200 ] && grep -q 'http://split' "$T/raw"; echo $?)" \
	"got: $(head -c 300 "$T/raw")"
printf 'PUT /v1/tunnel/rb-tun HTTP/1.1\r\nHost: x\r\n%s\r\nContent-Type: application/json\r\nTransfer-Encoding: chunked\r\nConnection: close\r\n\r\n0\r\n\r\n' "$AUTH" | send_raw
result "empty chunked body counts as {}" "$([ "$(first_status)" = 200 ]; echo $?)" "got: $(head -c 300 "$T/raw")"

# ---- HEAD ----
printf 'HEAD /v1/tunnel/rb-tun HTTP/1.1\r\nHost: x\r\n%s\r\nConnection: close\r\n\r\n' "$AUTH" | send_raw
$PY - "$T/raw" <<'PYEOF' >"$T/head"
import sys
d = open(sys.argv[1], "rb").read()
head, _, body = d.partition(b"\r\n\r\n")
cl = [l.split(b":", 1)[1].strip() for l in head.split(b"\r\n") if l.lower().startswith(b"content-length:")]
print(head.split(b"\r\n")[0].decode(), int(cl[0]) if cl else -1, len(body))
PYEOF
read -r hv hs hm hl hb <"$T/head"
result "HEAD on a GET route: 200, Content-Length of the GET body, no body bytes" \
	"$([ "$hs" = 200 ] && [ "$hl" -gt 0 ] && [ "$hb" = 0 ]; echo $?)" "$(cat "$T/head")"

# ---- many connections, slow clients ----
raw slow "$API_PORT" >"$T/raw"
grep -qx "other \['404'\] True" "$T/raw"
result "a client with half a header does not block others" $? "$(cat "$T/raw")"
grep -qx "slow \['403'\]" "$T/raw"
result "... and is answered when it completes the header" $? "$(cat "$T/raw")"
raw many "$API_PORT" 200 >"$T/raw"
grep -qx "fresh \['404'\]" "$T/raw"
result "200 open connections: a new request is still served" $? "$(cat "$T/raw")"
grep -qx "answered 200" "$T/raw"
result "200 concurrent connections all answered" $? "$(cat "$T/raw")"
$PY - "$API_PORT" <<'PYEOF'
import socket, sys
for i in range(50):  # connect and drop at once, some mid-request
    s = socket.create_connection(("127.0.0.1", int(sys.argv[1])), timeout=5)
    if i % 2:
        s.sendall(b"PUT /v1/tunnel/x HTTP/1.1\r\nHost: x\r\nContent-Length: 100\r\n\r\n{")
    s.close()
PYEOF
alive "50 clients dropping their connections"
finish
