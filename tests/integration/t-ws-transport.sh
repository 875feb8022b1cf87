#!/bin/sh
# WebSocket transport (spec/transports.md §3, §5; api.md §2.8) driven by the
# Node test peer (tests/peer/ws-peer.js, built on @exposr/ws-multiplex 1.4.0
# like the exposr client): registration, connection state in the user and
# admin APIs, single-use token, bad tokens, the connection cap (1008),
# API disconnect / tunnel delete / account disable (1008 "tunnel
# disconnected"), a refused reconnect while disabled, and shutdown (1001).
. "$(dirname "$0")/lib.sh"

need_peer
start_target
start_std
new_account || finish
ACC1=$ACC
AUTH1=$AUTH

# ---- connect ----
start_peer p1 --account "$ACC1" --tunnel ws-one --target "$TARGET" --reuse-token
result "ws-peer connects: READY with the ingress URL" $? "$(peer_diag p1)"
grep -q "^READY ws-one http://ws-one.localhost:$API_PORT/\$" "$T/p1.out"
result "READY line names http://ws-one.localhost:$API_PORT/" $? "$(peer_diag p1)"
[ "$(grep -c '^CONNECTED [12]/2$' "$T/p1.out")" -eq 2 ]
result "two WebSocket connections (transport.max_connections 2)" $? "$(peer_diag p1)"
wait_line p1 '^REUSE-TOKEN ' 5
grep -q '^REUSE-TOKEN 401 {"error":"PERMISSION_DENIED"}$' "$T/p1.out"
result "token is single use: a second upgrade with it gets 401 PERMISSION_DENIED" $? "$(peer_diag p1)"

req GET "$API/v1/tunnel/ws-one" -H "$AUTH1"
expect_json "GET tunnel: connection.connected true" 'j["connection"]["connected"]' true
expect_json "GET tunnel: connection.connections 2" 'j["connection"]["connections"]' 2
expect_true "GET tunnel: connected_at and alive_at are epoch-ms numbers" \
	'all(type(j["connection"][k]) is int and j["connection"][k] > 1600000000000 for k in ("connected_at", "alive_at"))'
expect_true "GET tunnel: transport.ws.url is ws://127.0.0.1:PORT/v1/tunnel/ws-one/ws-endpoint?t=<86-char token>" \
	"__import__('re').fullmatch(r'ws://127\.0\.0\.1:$API_PORT/v1/tunnel/ws-one/ws-endpoint\?t=[A-Za-z0-9_-]{86}', j['transport']['ws']['url'])"
WS_URL=$(jv 'j["transport"]["ws"]["url"]')

req GET "$ADMIN/v1/admin/tunnel/ws-one" -H "$ADMIN_AUTH"
expect_json "admin tunnel: two connections[]" 'len(j["connections"])' 2
expect_true "admin tunnel: every connection has peer 127.0.0.1, connected true" \
	'all(c["peer"] == "127.0.0.1" and c["connected"] is True for c in j["connections"])'
expect_true "admin tunnel: connection_id is <40-hex node_id>:<uuid>" \
	'all(__import__("re").fullmatch(r"[0-9a-f]{40}", c["node_id"]) and c["connection_id"].startswith(c["node_id"] + ":") for c in j["connections"])'
expect_true "admin tunnel: connected_at/alive_at are ISO strings" \
	'isinstance(j["connection"]["connected_at"], str) and all(isinstance(c["connected_at"], str) and c["connected_at"].endswith("Z") for c in j["connections"])'

# ---- bad tokens ----
# the URL fetched after both connections opened holds the current token;
# replace it (same length, then one character longer), drop it, and use it
# for another tunnel.
wsup() {
	node "$PEER_DIR/wsclient.js" --url "$1" --count 1 --no-first --timeout 5000 2>&1 | tail -1
}
FAKE=$(printf '%086d' 0 | tr 0 A)
OUT=$(wsup "ws://127.0.0.1:$API_PORT/v1/tunnel/ws-one/ws-endpoint?t=$FAKE")
[ "$OUT" = 'UPGRADE-ERROR 401 {"error":"PERMISSION_DENIED"}' ]
result "upgrade with a wrong 86-char token -> 401 {\"error\":\"PERMISSION_DENIED\"}" $? "got: $OUT"
OUT=$(wsup "$(printf '%s' "$WS_URL" | sed 's/t=/t=X/')")
[ "$OUT" = 'UPGRADE-ERROR 401 {"error":"PERMISSION_DENIED"}' ]
result "upgrade with the current token plus one character -> 401" $? "got: $OUT"
OUT=$(wsup "ws://127.0.0.1:$API_PORT/v1/tunnel/ws-one/ws-endpoint")
case $OUT in "UPGRADE-ERROR 401 "*) true ;; *) false ;; esac
result "upgrade without a token -> 401" $? "got: $OUT"
OUT=$(wsup "$(printf '%s' "$WS_URL" | sed 's#/tunnel/ws-one/#/tunnel/ws-nope/#')")
case $OUT in "UPGRADE-ERROR 401 "*) true ;; *) false ;; esac
result "upgrade for an unknown tunnel -> 401" $? "got: $OUT"

# ---- the connection cap ----
spawn p2 node "$PEER_DIR/ws-peer.js" --api "$API" --account "$ACC1" --tunnel ws-one --target "$TARGET" \
	--connections 1 --no-reconnect
P2=$SPAWN_PID
wait_rc "$P2" 20
[ "$WAIT_RC" = 3 ]
result "third connection over --transport-max-connections 2: peer exits 3" $? "exit status $WAIT_RC" "$(peer_diag p2)"
grep -q '^CLOSED 1008 unable to establish tunnel$' "$T/p2.out"
result "third connection closed with 1008 'unable to establish tunnel'" $? "$(peer_diag p2)"
kill -0 "$PEER_PID" 2>/dev/null && ! grep -q '^CLOSED' "$T/p1.out"
result "the first peer keeps both connections" $? "$(peer_diag p1)"
check_json "tunnel still has 2 connections after the refusal" GET "$API/v1/tunnel/ws-one" 200 \
	'j["connection"]["connections"]' 2 -H "$AUTH1"
req GET "$API/hello" -H "Host: ws-one.localhost:$API_PORT"
[ "$STATUS" = 200 ] && [ "$BODY" = hello ]
result "traffic flows through the tunnel" $? "status $STATUS body $BODY"

# ---- API disconnect ----
P1=$PEER_PID
check_json "POST /v1/tunnel/ws-one/disconnect -> {\"result\":true}" POST "$API/v1/tunnel/ws-one/disconnect" 200 \
	'j' '{"result":true}' -H "$AUTH1" -H 'Content-Type: application/json' --data-binary '{}'
wait_rc "$P1" 10
[ "$(grep -c '^CLOSED 1008 tunnel disconnected$' "$T/p1.out")" -eq 2 ]
result "disconnect: both connections see close 1008 'tunnel disconnected'" $? "$(peer_diag p1)"
[ "$WAIT_RC" = 3 ]
result "disconnect: the peer gives up (exit 3)" $? "exit status $WAIT_RC"
req GET "$API/v1/tunnel/ws-one" -H "$AUTH1"
expect_true "disconnect: tunnel reads connected false, connections 0, disconnected_at set" \
	'j["connection"]["connected"] is False and j["connection"]["connections"] == 0 and type(j["connection"]["disconnected_at"]) is int'
check_json "disconnect: ingress answers 503 TUNNEL_NOT_CONNECTED" GET "$API/hello" 503 'j["error"]' \
	TUNNEL_NOT_CONNECTED -H "Host: ws-one.localhost:$API_PORT"

# ---- tunnel delete ----
start_peer p3 --account "$ACC1" --tunnel ws-del --target "$TARGET"
result "peer for ws-del READY" $? "$(peer_diag p3)"
P3=$PEER_PID
check "DELETE /v1/tunnel/ws-del -> 204" DELETE "$API/v1/tunnel/ws-del" 204 -H "$AUTH1"
wait_rc "$P3" 10
[ "$WAIT_RC" = 3 ] && [ "$(grep -c '^CLOSED 1008 tunnel disconnected$' "$T/p3.out")" -eq 2 ]
result "DELETE closes both transports with 1008 (peer exits 3)" $? "exit status $WAIT_RC" "$(peer_diag p3)"
req GET "$ADMIN/v1/admin/tunnel/ws-del" -H "$ADMIN_AUTH"
[ "$STATUS" = 404 ]
result "deleted tunnel is gone from the admin API" $? "status $STATUS"

# ---- account disable ----
new_account || finish
ACC2=$ACC
AUTH2=$AUTH
start_peer p4 --account "$ACC2" --tunnel ws-dis --target "$TARGET"
result "peer for ws-dis READY" $? "$(peer_diag p4)"
P4=$PEER_PID
check "admin API: disable the account -> 200" PUT "$ADMIN/v1/admin/account/$ACC2/disable" 200 -H "$ADMIN_AUTH" \
	-H 'Content-Type: application/json' --data-binary '{"disable":true,"reason":"test"}'
wait_rc "$P4" 10
[ "$WAIT_RC" = 3 ] && [ "$(grep -c '^CLOSED 1008 tunnel disconnected$' "$T/p4.out")" -eq 2 ]
result "account disable closes both transports with 1008 (peer exits 3)" $? "exit status $WAIT_RC" "$(peer_diag p4)"
check_json "disabled account: tunnel not connected" GET "$API/v1/tunnel/ws-dis" 200 'j["connection"]["connected"]' \
	false -H "$AUTH2"
spawn p5 node "$PEER_DIR/ws-peer.js" --api "$API" --account "$ACC2" --tunnel ws-dis --target "$TARGET" \
	--connections 1 --no-reconnect
wait_rc "$SPAWN_PID" 15
grep -q '^UPGRADE-ERROR 401 {"error":"PERMISSION_DENIED"}$' "$T/p5.out" && [ "$WAIT_RC" = 4 ]
result "disabled account: a reconnect is refused with 401 PERMISSION_DENIED" $? "exit status $WAIT_RC" "$(peer_diag p5)"
check "admin API: enable the account again -> 200" PUT "$ADMIN/v1/admin/account/$ACC2/disable" 200 \
	-H "$ADMIN_AUTH" -H 'Content-Type: application/json' --data-binary '{"disable":false}'
start_peer p6 --account "$ACC2" --tunnel ws-dis --target "$TARGET"
result "re-enabled account: the peer connects again" $? "$(peer_diag p6)"
P6=$PEER_PID

# ---- shutdown ----
stop_server "SIGTERM with a connected peer: exposrd exits 0"
wait_count p6 '^CLOSED ' 2 5
[ "$(grep -c '^CLOSED 1001 Server shutting down$' "$T/p6.out")" -eq 2 ]
result "SIGTERM: both connections see close 1001 'Server shutting down'" $? "$(peer_diag p6)"
stop_pid "$P6"
stop_pid "$TARGET_PID"
finish
