#!/bin/sh
# Public API tunnel routes (spec/api.md §0.2, §1.2, §2.1, §2.3-§2.8):
# every endpoint and status, the tunnel-id pattern, the §2.4 object shape
# and the request base URL of the ws transport URL.
. "$(dirname "$0")/lib.sh"

start_std --transport-max-connections 3
new_account || finish
AUTH_A=$AUTH
ACC_A=$ACC
new_account || finish
AUTH_B=$AUTH
AUTH=$AUTH_A
TU=$API/v1/tunnel
FULL='{"target":{"url":"http://example.com"},"ingress":{"http":{"enabled":true}},"transport":{"ws":{"enabled":true}}}'

# ---- PUT ----
put_tunnel my-tunnel "$FULL"
result "PUT create 200" "$([ "$STATUS" = 200 ]; echo $?)" "status $STATUS body $BODY"
expect_json "PUT answer id" 'j["id"]' my-tunnel
expect_true "§2.4 top-level keys" \
	'sorted(j) == ["connection", "created_at", "id", "ingress", "target", "transport"]'
expect_json "§2.4 connection of a never-connected tunnel" 'j["connection"]' '{"connected":false,"connections":0}'
expect_json "§2.4 transport.max_connections = --transport-max-connections" 'j["transport"]["max_connections"]' 3
expect_true "§2.4 transport has ws only (no ssh transport running)" 'sorted(j["transport"]) == ["max_connections", "ws"]'
expect_json "§2.4 transport.ws.enabled" 'j["transport"]["ws"]["enabled"]' true
expect_true "§2.4 transport.ws.url ws://<host:port>/v1/tunnel/<id>/ws-endpoint?t=<86-char token>" \
	'__import__("re").fullmatch(r"ws://127\.0\.0\.1:'"$API_PORT"'/v1/tunnel/my-tunnel/ws-endpoint\?t=[A-Za-z0-9_-]{86}", j["transport"]["ws"]["url"])'
expect_json "§2.4 ingress.http for --ingress-http-url http://localhost:PORT" 'j["ingress"]["http"]' \
	"{\"enabled\":true,\"url\":\"http://my-tunnel.localhost:$API_PORT/\",\"urls\":[\"http://my-tunnel.localhost:$API_PORT/\"],\"alt_names\":[]}"
expect_json "§2.4 ingress.sni is {}" 'j["ingress"]["sni"]' '{}'
expect_json "§2.4 target" 'j["target"]' '{"url":"http://example.com"}'
expect_true "§2.4 created_at is ISO-8601 UTC with ms" \
	'__import__("re").fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z", j["created_at"])'
ct=$(header content-type)
[ "$ct" = "application/json; charset=utf-8" ]
result "tunnel answer Content-Type application/json; charset=utf-8" $? "got '$ct'"
CREATED=$(jv 'j["created_at"]')
TOK1=$(jv 'j["transport"]["ws"]["url"].split("t=")[1]')

put_tunnel my-tunnel '{}'
result "PUT existing (idempotent) 200" "$([ "$STATUS" = 200 ]; echo $?)" "status $STATUS body $BODY"
expect_json "PUT existing keeps created_at" 'j["created_at"]' "$CREATED"
expect_json "PUT {} keeps the configuration" 'j["target"]["url"]' http://example.com
expect_json "PUT existing keeps the token" 'j["transport"]["ws"]["url"].split("t=")[1]' "$TOK1"
check_json "account lists the tunnel once after two PUTs" GET "$ADMIN/v1/admin/account/$ACC_A" 200 \
	'j["tunnels"]' '["my-tunnel"]' -H "$ADMIN_AUTH"
AUTH=$AUTH_B
put_tunnel my-tunnel '{}'
result "PUT foreign tunnel 403" "$([ "$STATUS" = 403 ]; echo $?)" "status $STATUS body $BODY"
expect_json "PUT foreign tunnel error PERMISSION_DENIED" 'j' '{"error":"PERMISSION_DENIED"}'
AUTH=$AUTH_A

# ---- GET ----
check_json "GET own 200" GET "$TU/my-tunnel" 200 'j["id"]' my-tunnel -H "$AUTH_A"
expect_true "GET has the same shape as PUT" \
	'sorted(j) == ["connection", "created_at", "id", "ingress", "target", "transport"]'
check_json "GET by another account 404 TUNNEL_NOT_FOUND" GET "$TU/my-tunnel" 404 'j' '{"error":"TUNNEL_NOT_FOUND"}' -H "$AUTH_B"
check_json "GET missing 404 TUNNEL_NOT_FOUND" GET "$TU/nosuch-tunnel" 404 'j["error"]' TUNNEL_NOT_FOUND -H "$AUTH_A"
check "HEAD on the GET route 200" HEAD "$TU/my-tunnel" 200 -H "$AUTH_A"

# ---- auth ----
check_json "no Authorization 401 AUTH_NO_TOKEN" GET "$TU/my-tunnel" 401 'j' '{"error":"AUTH_NO_TOKEN"}'
check_json "'Bearer' without token 401 AUTH_NO_TOKEN" GET "$TU/my-tunnel" 401 'j["error"]' AUTH_NO_TOKEN -H 'Authorization: Bearer'
check_json "token decoding to nothing 401 AUTH_NO_TOKEN" GET "$TU/my-tunnel" 401 'j["error"]' AUTH_NO_TOKEN -H 'Authorization: Bearer ===='
bad=$(printf %s CDEFHJKMNPRTVWXY | base64)
check_json "token of unknown account 401 PERMISSION_DENIED" GET "$TU/my-tunnel" 401 'j' '{"error":"PERMISSION_DENIED"}' -H "Authorization: Bearer $bad"
check_json "garbage token 401 PERMISSION_DENIED" GET "$TU/my-tunnel" 401 'j["error"]' PERMISSION_DENIED -H 'Authorization: Bearer xyz!!'
check_json "no auth on PUT 401 AUTH_NO_TOKEN" PUT "$TU/my-tunnel" 401 'j["error"]' AUTH_NO_TOKEN -H 'Content-Type: application/json' -d '{}'
check_json "no auth on DELETE 401 AUTH_NO_TOKEN" DELETE "$TU/my-tunnel" 401 'j["error"]' AUTH_NO_TOKEN
check_json "no auth on disconnect 401 AUTH_NO_TOKEN" POST "$TU/my-tunnel/disconnect" 401 'j["error"]' AUTH_NO_TOKEN
check "scheme word is not checked (Token <token>)" GET "$TU/my-tunnel" 200 -H "Authorization: Token ${AUTH_A#*Bearer }"
check_json "bad tunnel id without token: 400 before auth" GET "$TU/AB" 400 'j["error"]' BAD_INPUT
expect_true "bad tunnel id field names tunnel_id" '"tunnel_id" in j["field"]'
check_json "bad tunnel id with a bad token: 400" DELETE "$TU/AB" 400 'j["error"]' BAD_INPUT -H "Authorization: Bearer $bad"
check_json "bad tunnel id on disconnect: 400" POST "$TU/AB/disconnect" 400 'j["error"]' BAD_INPUT

# ---- tunnel-id pattern (§1.2) ----
id_ok() {
	put_tunnel "$1" '{}'
	result "tunnel id $2 accepted" "$([ "$STATUS" = 200 ]; echo $?)" "id '$1': status $STATUS body $BODY"
}
id_bad() {
	put_tunnel "$1" '{}'
	result "tunnel id $2 rejected 400" "$([ "$STATUS" = 400 ] && [ "$(jv 'j["error"]')" = BAD_INPUT ]; echo $?)" "id '$1': status $STATUS body $BODY"
}
a62=$(printf 'b%.0s' $(seq 62))
id_ok abcd "of 4 chars"
id_ok 0123456789abcdef0123456789abcdef01234567 "of 40 hex chars (leading digit)"
id_ok "a${a62}b" "of 64 chars without dash"
id_ok "a${a62}-c" "of 65 chars with a dash"
id_ok "ab-cde" "of 6 chars with a dash"
id_bad abc "of 3 chars"
id_bad "ab-cd" "of 5 chars with a dash"
id_bad "a${a62}bcd" "of 65 chars without dash"
id_bad "a${a62}-cd" "of 66 chars"
id_bad Abcd "with uppercase"
id_bad -abcde "with a leading dash"
id_bad abcde- "with a trailing dash"
id_bad ab_cd "with an underscore"
id_bad ab.cd "with a dot"

# ---- PATCH ----
check_json "PATCH target 200" PATCH "$TU/my-tunnel" 200 'j["target"]["url"]' http://other.example:81/x \
	-H "$AUTH_A" -H 'Content-Type: application/json' -d '{"target":{"url":"http://other.example:81/x"}}'
check_json "GET after PATCH shows the new target" GET "$TU/my-tunnel" 200 'j["target"]["url"]' http://other.example:81/x -H "$AUTH_A"
check_json "PATCH {} 200 (client 'configure unset')" PATCH "$TU/my-tunnel" 200 'j["target"]["url"]' http://other.example:81/x \
	-H "$AUTH_A" -H 'Content-Type: application/json' -d '{}'
check_json "PATCH target null unsets it" PATCH "$TU/my-tunnel" 200 'j["target"]' '{}' \
	-H "$AUTH_A" -H 'Content-Type: application/json' -d '{"target":{"url":null}}'
check_json "PATCH ingress.http.enabled false gives ingress.http {}" PATCH "$TU/my-tunnel" 200 'j["ingress"]' '{"http":{},"sni":{}}' \
	-H "$AUTH_A" -H 'Content-Type: application/json' -d '{"ingress":{"http":{"enabled":"FALSE"}}}'
check_json "PATCH transport.ws.enabled false" PATCH "$TU/my-tunnel" 200 'j["transport"]["ws"]["enabled"]' false \
	-H "$AUTH_A" -H 'Content-Type: application/json' -d '{"transport":{"ws":{"enabled":false}}}'
check_json "PATCH ssh.enabled accepted (stored, not shown without ssh transport)" PATCH "$TU/my-tunnel" 200 \
	'"ssh" in j["transport"]' false \
	-H "$AUTH_A" -H 'Content-Type: application/json' -d '{"transport":{"ssh":{"enabled":true}}}'
check_json "PATCH missing tunnel 404 TUNNEL_NOT_FOUND" PATCH "$TU/nosuch-tunnel" 404 'j' '{"error":"TUNNEL_NOT_FOUND"}' \
	-H "$AUTH_A" -H 'Content-Type: application/json' -d '{}'
check_json "PATCH foreign tunnel 403 PERMISSION_DENIED" PATCH "$TU/my-tunnel" 403 'j["error"]' PERMISSION_DENIED \
	-H "$AUTH_B" -H 'Content-Type: application/json' -d '{"target":{"url":"http://evil"}}'
check_json "foreign PATCH changed nothing" GET "$TU/my-tunnel" 200 'j["target"]' '{}' -H "$AUTH_A"

# ---- disconnect ----
check_json "disconnect 200 {\"result\":true}" POST "$TU/my-tunnel/disconnect" 200 'j' '{"result":true}' \
	-H "$AUTH_A" -H 'Content-Type: application/json' -d '{}'
check_json "disconnect without body 200" POST "$TU/my-tunnel/disconnect" 200 'j["result"]' true -H "$AUTH_A"
check_json "disconnect missing 404 TUNNEL_NOT_FOUND" POST "$TU/nosuch-tunnel/disconnect" 404 'j["error"]' TUNNEL_NOT_FOUND -H "$AUTH_A"
check_json "disconnect foreign 404 TUNNEL_NOT_FOUND" POST "$TU/my-tunnel/disconnect" 404 'j["error"]' TUNNEL_NOT_FOUND -H "$AUTH_B"
check "GET on disconnect route 404" GET "$TU/my-tunnel/disconnect" 404 -H "$AUTH_A"

# ---- base URL of the ws url (§0.2) ----
wsurl() {
	req GET "$TU/my-tunnel" -H "$AUTH_A" "$@"
	jv 'j["transport"]["ws"]["url"].split("?")[0]'
}
suffix=/v1/tunnel/my-tunnel/ws-endpoint
got=$(wsurl -H 'Host: api.example.com')
result "ws url host from Host without port" "$([ "$got" = "ws://api.example.com$suffix" ]; echo $?)" "got $got"
got=$(wsurl -H 'Host: API.Example.COM:8080')
result "ws url host lowercased, port kept" "$([ "$got" = "ws://api.example.com:8080$suffix" ]; echo $?)" "got $got"
got=$(wsurl -H 'Host: api.example.com:80')
result "ws url drops the default port 80" "$([ "$got" = "ws://api.example.com$suffix" ]; echo $?)" "got $got"
got=$(wsurl -H 'Host: api.example.com' -H 'X-Forwarded-Proto: https')
result "X-Forwarded-Proto https gives wss://" "$([ "$got" = "wss://api.example.com$suffix" ]; echo $?)" "got $got"
got=$(wsurl -H 'Host: api.example.com:443' -H 'X-Forwarded-Proto: https')
result "wss drops the default port 443" "$([ "$got" = "wss://api.example.com$suffix" ]; echo $?)" "got $got"
got=$(wsurl -H 'Host: api.example.com' -H 'X-Scheme: https')
result "X-Scheme https gives wss://" "$([ "$got" = "wss://api.example.com$suffix" ]; echo $?)" "got $got"
got=$(wsurl -H 'Host: api.example.com' -H 'X-Forwarded-Port: 8443')
result "X-Forwarded-Port sets the port" "$([ "$got" = "ws://api.example.com:8443$suffix" ]; echo $?)" "got $got"
got=$(wsurl -H 'Host: api.example.com:9000' -H 'X-Forwarded-Proto: https' -H 'X-Forwarded-Port: 443')
result "X-Forwarded-Port 443 with https replaces the Host port" "$([ "$got" = "wss://api.example.com$suffix" ]; echo $?)" "got $got"
got=$(wsurl -H 'Host: internal:8080' -H 'Forwarded: for=1.2.3.4;proto=https;host=pub.example.com:8443')
result "Forwarded proto= and host= with port" "$([ "$got" = "wss://pub.example.com:8443$suffix" ]; echo $?)" "got $got"
got=$(wsurl -H 'Host: internal:8080' -H 'Forwarded: host="Pub.Example.com";proto=https, host=second.example;proto=http')
result "Forwarded: first element only, quotes stripped, lowercased" "$([ "$got" = "wss://pub.example.com$suffix" ]; echo $?)" "got $got"
got=$(wsurl -H 'Host: internal:8080' -H 'Forwarded: proto=https' -H 'X-Forwarded-Proto: http')
result "Forwarded proto= beats X-Forwarded-Proto" "$([ "$got" = "wss://internal:8080$suffix" ]; echo $?)" "got $got"
got=$(wsurl -H 'Host: internal:8080' -H 'Forwarded: host=pub.example.com' -H 'X-Forwarded-Port: 9443')
result "Forwarded host= without port takes X-Forwarded-Port" "$([ "$got" = "ws://pub.example.com:9443$suffix" ]; echo $?)" "got $got"
got=$(wsurl -H 'Host: api.example.com' -H 'X-Forwarded-Host: other.example.com')
result "X-Forwarded-Host is not part of the base URL (§0.2: Forwarded host= else Host)" \
	"$([ "$got" = "ws://api.example.com$suffix" ]; echo $?)" "got $got"
check "HTTP/1.1 request without Host 400" GET "$TU/my-tunnel" 400 -H "$AUTH_A" -H 'Host:'
req GET "$TU/my-tunnel" -H "$AUTH_A" -H 'Host:' --http1.0
result "HTTP/1.0 API request without Host 400 with empty body" "$([ "$STATUS" = 400 ] && [ -z "$BODY" ]; echo $?)" "status $STATUS body '$BODY'"
got=$(wsurl -H 'Host: [::1]:8080')
result "IPv6 Host keeps its brackets" "$([ "$got" = "ws://[::1]:8080$suffix" ]; echo $?)" "got $got"
req GET "$TU/my-tunnel" -H "$AUTH_A" -H 'Host: api.example.com' -H 'X-Forwarded-Port: abc'
result "invalid X-Forwarded-Port 400" "$([ "$STATUS" = 400 ]; echo $?)" "status $STATUS body '$BODY'"

# ---- DELETE ----
check_json "DELETE foreign 404 TUNNEL_NOT_FOUND" DELETE "$TU/my-tunnel" 404 'j["error"]' TUNNEL_NOT_FOUND -H "$AUTH_B"
check "foreign DELETE left the tunnel" GET "$TU/my-tunnel" 200 -H "$AUTH_A"
check "DELETE 204" DELETE "$TU/my-tunnel" 204 -H "$AUTH_A"
[ ! -s "$T/body" ]
result "DELETE 204 has an empty body" $?
check_json "GET after DELETE 404 TUNNEL_NOT_FOUND" GET "$TU/my-tunnel" 404 'j["error"]' TUNNEL_NOT_FOUND -H "$AUTH_A"
check_json "DELETE again 404 TUNNEL_NOT_FOUND" DELETE "$TU/my-tunnel" 404 'j["error"]' TUNNEL_NOT_FOUND -H "$AUTH_A"
check_json "DELETE removed the id from the account" GET "$ADMIN/v1/admin/account/$ACC_A" 200 \
	'"my-tunnel" in j["tunnels"]' false -H "$ADMIN_AUTH"
AUTH=$AUTH_B
put_tunnel my-tunnel '{}'
result "another account can take a deleted tunnel id" "$([ "$STATUS" = 200 ]; echo $?)" "status $STATUS body $BODY"
check "unsupported method POST on tunnel 404" POST "$TU/my-tunnel" 404 -H "$AUTH_B"

# ---- concurrent updates (locked read-modify-write of the account) ----
ACC_B=$(printf %s "${AUTH_B#*Bearer }" | base64 -d)
pids=
i=1
while [ $i -le 30 ]; do
	curl -s -o /dev/null --max-time 10 -X PUT -H "$AUTH_A" -H 'Content-Type: application/json' -d '{}' "$TU/par-tun-$i" &
	pids="$pids $!"
	i=$((i + 1))
done
wait $pids
check_json "30 parallel PUTs: all 30 ids in the account (no lost update)" GET "$ADMIN/v1/admin/account/$ACC_A" 200 \
	'sorted(t for t in j["tunnels"] if t.startswith("par-tun-")) == sorted("par-tun-%d" % i for i in range(1, 31))' true -H "$ADMIN_AUTH"
pids=
: >"$T/codes"
i=1
while [ $i -le 10 ]; do
	for a in "$AUTH_A" "$AUTH_B"; do
		curl -s -o /dev/null -w '%{http_code}\n' --max-time 10 -X PUT -H "$a" -H 'Content-Type: application/json' -d '{}' \
			"$TU/race-$i" >>"$T/codes" &
		pids="$pids $!"
	done
	i=$((i + 1))
done
wait $pids
codes=$(sort "$T/codes" | uniq -c | tr -s ' ' | tr '\n' ';')
result "two accounts racing for 10 ids: 10x 200 and 10x 403" "$([ "$codes" = " 10 200; 10 403;" ]; echo $?)" "got: $codes"
req GET "$ADMIN/v1/admin/account/$ACC_A" -H "$ADMIN_AUTH"
RA=$(jv '[t for t in j["tunnels"] if t.startswith("race-")]')
req GET "$ADMIN/v1/admin/account/$ACC_B" -H "$ADMIN_AUTH"
expect_true "each raced id is listed by exactly one account" \
	'sorted(set(t for t in j["tunnels"] if t.startswith("race-")) | set('"$RA"')) == sorted("race-%d" % i for i in range(1, 11)) and not set(j["tunnels"]) & set('"$RA"')'
pids=
i=1
while [ $i -le 30 ]; do
	curl -s -o /dev/null --max-time 10 -X DELETE -H "$AUTH_A" "$TU/par-tun-$i" &
	pids="$pids $!"
	i=$((i + 1))
done
wait $pids
check_json "30 parallel DELETEs: none left in the account" GET "$ADMIN/v1/admin/account/$ACC_A" 200 \
	'[t for t in j["tunnels"] if t.startswith("par-tun-")]' '[]' -H "$ADMIN_AUTH"
finish
