#!/bin/sh
# Admin interface and admin API (spec/api.md §3, §4.1, §4.2).
. "$(dirname "$0")/lib.sh"

ISO='r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z"'
CT='Content-Type: application/json'

# ---- one shared admin port (the default layout), key "secretkey" ----
start_std
AA=$ADMIN/v1/admin
check_json "GET /ping 200 OK" GET "$ADMIN/ping" 200 'src' OK
check "GET /health 200" GET "$ADMIN/health" 200
check "HEAD /ping 200" HEAD "$ADMIN/ping" 200
check "POST /ping 404" POST "$ADMIN/ping" 404
check "unknown admin-port path 404" GET "$ADMIN/metrics" 404
check "/ping/ with trailing path 404" GET "$ADMIN/ping/x" 404
check "admin API served on the same port as /ping" GET "$AA/cluster" 200 -H "$ADMIN_AUTH"
check "/ping is not served on the API port" GET "$API/ping" 404
check "/v1/admin is not served on the API port" GET "$API/v1/admin/cluster" 404 -H "$ADMIN_AUTH"

# ---- auth ----
check "no Authorization 403" GET "$AA/cluster" 403
[ "$BODY" = Forbidden ]
result "403 has the plain text body Forbidden" $? "body '$BODY'"
check "wrong key 403" GET "$AA/cluster" 403 -H "Authorization: Bearer $(printf wrongkey | base64)"
check "key not base64-encoded 403" GET "$AA/cluster" 403 -H "Authorization: Bearer $ADMIN_KEY"
check "key prefix 403" GET "$AA/cluster" 403 -H "Authorization: Bearer $(printf secretke | base64)"
check "key with extra char 403" GET "$AA/cluster" 403 -H "Authorization: Bearer $(printf secretkeyX | base64)"
check "header without scheme word 403" GET "$AA/cluster" 403 -H "Authorization: $(printf %s "$ADMIN_KEY" | base64)"
check "Bearer base64(key) 200" GET "$AA/cluster" 200 -H "$ADMIN_AUTH"
check "any scheme word (Basic) 200" GET "$AA/cluster" 200 -H "Authorization: Basic $(printf %s "$ADMIN_KEY" | base64)"
check "auth before validation: bad count without key 403" GET "$AA/tunnel?count=abc" 403
check "auth before validation: bad account id without key 403" GET "$AA/account/xyz" 403

# ---- cluster ----
check "GET cluster 200" GET "$AA/cluster" 200 -H "$ADMIN_AUTH"
expect_true "cluster: one node with the §4.2 keys" \
	'len(j["nodes"]) == 1 and sorted(j["nodes"][0]) == ["alive_age", "alive_at", "host", "ip", "is_stale", "node_id"]'
expect_true "cluster: node_id is 40 hex chars" '__import__("re").fullmatch(r"[0-9a-f]{40}", j["nodes"][0]["node_id"])'
expect_true "cluster: host is <pid>@<hostname>" 'j["nodes"][0]["host"].startswith("'"$SRV_PID"'@")'
expect_true "cluster: alive_at ISO, alive_age int, is_stale false" \
	'__import__("re").fullmatch('"$ISO"', j["nodes"][0]["alive_at"]) and type(j["nodes"][0]["alive_age"]) is int and j["nodes"][0]["is_stale"] is False'
check "PUT cluster 404" PUT "$AA/cluster" 404 -H "$ADMIN_AUTH"

# ---- accounts ----
check "POST account 201" POST "$AA/account" 201 -H "$ADMIN_AUTH"
expect_true "account-full keys" \
	'sorted(j) == ["account_id", "account_id_hr", "created_at", "status", "tunnels", "updated_at"]'
expect_true "new account: tunnels [], status {disabled:false}" 'j["tunnels"] == [] and j["status"] == {"disabled": False}'
expect_true "new account: created_at ISO" '__import__("re").fullmatch('"$ISO"', j["created_at"])'
ACC=$(jv 'j["account_id"]')
ACC_HR=$(jv 'j["account_id_hr"]')
AUTH="Authorization: Bearer $(printf %s "$ACC" | base64)"
check_json "GET account by id 200" GET "$AA/account/$ACC" 200 'j["account_id_hr"]' "$ACC_HR" -H "$ADMIN_AUTH"
check_json "GET account by hr id 200" GET "$AA/account/$ACC_HR" 200 'j["account_id"]' "$ACC" -H "$ADMIN_AUTH"
lower=$(printf %s "$ACC_HR" | tr 'A-Z' 'a-z')
check_json "GET account by lowercase id 200" GET "$AA/account/$lower" 200 'j["account_id"]' "$ACC" -H "$ADMIN_AUTH"
check_json "GET missing account 404 {}" GET "$AA/account/CDEFHJKMNPRTVWXY" 404 'j' '{}' -H "$ADMIN_AUTH"
check_json "GET invalid account id 404 {}" GET "$AA/account/not-an-id" 404 'j' '{}' -H "$ADMIN_AUTH"

put_tunnel adm-tun1 '{"target":{"url":"http://example.com"},"transport":{"ws":{"enabled":true}}}'
[ "$STATUS" = 200 ] || fail "setup: PUT adm-tun1" "status $STATUS body $BODY"
put_tunnel adm-tun2 '{}'
check_json "account lists its tunnels in order" GET "$AA/account/$ACC" 200 'j["tunnels"]' '["adm-tun1","adm-tun2"]' -H "$ADMIN_AUTH"
UPDATED=$(jv 'j["updated_at"]')

# disable / enable
sleep 0.01
check "disable with reason 200" PUT "$AA/account/$ACC/disable" 200 -H "$ADMIN_AUTH" -H "$CT" \
	-d '{"disable":true,"reason":"abuse"}'
expect_true "disabled: status has disabled, disabled_at, disabled_reason" \
	'j["status"]["disabled"] is True and j["status"]["disabled_reason"] == "abuse" and __import__("re").fullmatch('"$ISO"', j["status"]["disabled_at"])'
expect_true "disable bumps updated_at" 'j["updated_at"] > "'"$UPDATED"'"'
check_json "GET shows the disabled status" GET "$AA/account/$ACC" 200 'j["status"]["disabled_reason"]' abuse -H "$ADMIN_AUTH"
check "disabled account still passes API auth" GET "$API/v1/tunnel/adm-tun1" 200 -H "$AUTH"
check_json "enable 200 clears disabled_at and disabled_reason" PUT "$AA/account/$lower/disable" 200 'j["status"]' \
	'{"disabled":false}' -H "$ADMIN_AUTH" -H "$CT" -d '{"disable":false}'
check_json "disable without reason has no disabled_reason" PUT "$AA/account/$ACC/disable" 200 \
	'sorted(j["status"])' '["disabled","disabled_at"]' -H "$ADMIN_AUTH" -H "$CT" -d '{"disable":true}'
check_json "disable with string boolean rejected 400" PUT "$AA/account/$ACC/disable" 400 'j["error"]' BAD_INPUT \
	-H "$ADMIN_AUTH" -H "$CT" -d '{"disable":"yes"}'
check_json "disable without disable key 400" PUT "$AA/account/$ACC/disable" 400 'j["error"]' BAD_INPUT \
	-H "$ADMIN_AUTH" -H "$CT" -d '{"reason":"x"}'
check_json "disable with unknown key 400" PUT "$AA/account/$ACC/disable" 400 'j["error"]' BAD_INPUT \
	-H "$ADMIN_AUTH" -H "$CT" -d '{"disable":true,"foo":1}'
check_json "disable without body 400" PUT "$AA/account/$ACC/disable" 400 'j["error"]' BAD_INPUT \
	-H "$ADMIN_AUTH" -H "$CT"
check_json "disable with a non-JSON body 400" PUT "$AA/account/$ACC/disable" 400 'j["error"]' BAD_INPUT \
	-H "$ADMIN_AUTH" -H 'Content-Type: text/plain' -d '{"disable":true}'
check_json "disable with malformed JSON 400" PUT "$AA/account/$ACC/disable" 400 'j["error"]' BAD_INPUT \
	-H "$ADMIN_AUTH" -H "$CT" -d '{"disable":'
check_json "disable with an array body 400" PUT "$AA/account/$ACC/disable" 400 'j["error"]' BAD_INPUT \
	-H "$ADMIN_AUTH" -H "$CT" -d '[true]'
r257=$($PY -c 'print("r" * 257)')
r256=$($PY -c 'print("r" * 256)')
check_json "reason of 257 chars 400" PUT "$AA/account/$ACC/disable" 400 'j["error"]' BAD_INPUT \
	-H "$ADMIN_AUTH" -H "$CT" -d "{\"disable\":true,\"reason\":\"$r257\"}"
check_json "reason of 256 chars 200" PUT "$AA/account/$ACC/disable" 200 'len(j["status"]["disabled_reason"])' 256 \
	-H "$ADMIN_AUTH" -H "$CT" -d "{\"disable\":true,\"reason\":\"$r256\"}"
e256=$($PY -c 'print("\u00e9" * 256)')
check_json "reason of 256 non-ASCII chars (512 UTF-8 bytes) 200" PUT "$AA/account/$ACC/disable" 200 \
	'len(j["status"]["disabled_reason"])' 256 -H "$ADMIN_AUTH" -H "$CT" -d "{\"disable\":true,\"reason\":\"$e256\"}"
check_json "reason of 257 non-ASCII chars 400" PUT "$AA/account/$ACC/disable" 400 'j["error"]' BAD_INPUT \
	-H "$ADMIN_AUTH" -H "$CT" -d "{\"disable\":true,\"reason\":\"${e256}x\"}"
check_json "reason with an escaped NUL 400 (not truncated)" PUT "$AA/account/$ACC/disable" 400 'j["error"]' BAD_INPUT \
	-H "$ADMIN_AUTH" -H "$CT" -d '{"disable":true,"reason":"a\u0000b"}'
check_json "reason with a non-string value 400" PUT "$AA/account/$ACC/disable" 400 'j["error"]' BAD_INPUT \
	-H "$ADMIN_AUTH" -H "$CT" -d '{"disable":true,"reason":5}'
check "disable missing account 404" PUT "$AA/account/CDEFHJKMNPRTVWXY/disable" 404 \
	-H "$ADMIN_AUTH" -H "$CT" -d '{"disable":true}'
check "GET on the disable route 404" GET "$AA/account/$ACC/disable" 404 -H "$ADMIN_AUTH"

# ---- tunnels ----
check "GET admin tunnel 200" GET "$AA/tunnel/adm-tun1" 200 -H "$ADMIN_AUTH"
expect_true "tunnel-admin keys" \
	'sorted(j) == ["account_id", "connection", "connections", "created_at", "ingress", "target", "transport", "tunnel_id", "updated_at"]'
expect_true "tunnel-admin tunnel_id and account_id" 'j["tunnel_id"] == "adm-tun1" and j["account_id"] == "'"$ACC"'"'
expect_true "tunnel-admin connection {connected:false}, connections []" 'j["connection"] == {"connected": False} and j["connections"] == []'
expect_true "tunnel-admin transport: token, global max_connections, ws" \
	'sorted(j["transport"]) == ["max_connections", "token", "ws"] and j["transport"]["max_connections"] == 2 and __import__("re").fullmatch(r"[A-Za-z0-9_-]{86}", j["transport"]["token"])'
expect_true "tunnel-admin ws url uses the admin request host and the token" \
	'j["transport"]["ws"] == {"enabled": True, "url": "ws://127.0.0.1:'"$ADMIN_PORT"'/v1/tunnel/adm-tun1/ws-endpoint?t=" + j["transport"]["token"]}'
expect_json "tunnel-admin full ingress blocks even when disabled" 'j["ingress"]' \
	'{"http":{"enabled":false,"urls":[],"alt_names":[]},"sni":{"enabled":false,"urls":[]}}'
expect_json "tunnel-admin target" 'j["target"]' '{"url":"http://example.com"}'
expect_true "tunnel-admin created_at/updated_at ISO" \
	'__import__("re").fullmatch('"$ISO"', j["created_at"]) and __import__("re").fullmatch('"$ISO"', j["updated_at"]) and j["updated_at"] >= j["created_at"]'
ADMTOKEN=$(jv 'j["transport"]["token"]')
check_json "admin token equals the public ws url token" GET "$API/v1/tunnel/adm-tun1" 200 \
	'j["transport"]["ws"]["url"].split("t=")[1]' "$ADMTOKEN" -H "$AUTH"
check_json "GET admin tunnel missing 404 TUNNEL_NOT_FOUND" GET "$AA/tunnel/nosuch-tun" 404 'j' '{"error":"TUNNEL_NOT_FOUND"}' -H "$ADMIN_AUTH"
check_json "disconnect 200 {\"result\":true}" POST "$AA/tunnel/adm-tun1/disconnect" 200 'j' '{"result":true}' -H "$ADMIN_AUTH"
check_json "disconnect missing 404 TUNNEL_NOT_FOUND" POST "$AA/tunnel/nosuch-tun/disconnect" 404 'j["error"]' TUNNEL_NOT_FOUND -H "$ADMIN_AUTH"
check "DELETE admin tunnel 204" DELETE "$AA/tunnel/adm-tun2" 204 -H "$ADMIN_AUTH"
check_json "deleted tunnel gone from the public API" GET "$API/v1/tunnel/adm-tun2" 404 'j["error"]' TUNNEL_NOT_FOUND -H "$AUTH"
check_json "deleted tunnel gone from the account" GET "$AA/account/$ACC" 200 'j["tunnels"]' '["adm-tun1"]' -H "$ADMIN_AUTH"
check_json "DELETE missing tunnel 404 TUNNEL_NOT_FOUND" DELETE "$AA/tunnel/adm-tun2" 404 'j' '{"error":"TUNNEL_NOT_FOUND"}' -H "$ADMIN_AUTH"

# ---- account delete (by lowercase hr id: normalized, Q11) ----
put_tunnel adm-tun3 '{}'
check "DELETE account by lowercase hr id 204" DELETE "$AA/account/$lower" 204 -H "$ADMIN_AUTH"
check_json "account gone: GET 404 {}" GET "$AA/account/$ACC" 404 'j' '{}' -H "$ADMIN_AUTH"
check_json "its tunnel adm-tun1 is deleted" GET "$AA/tunnel/adm-tun1" 404 'j["error"]' TUNNEL_NOT_FOUND -H "$ADMIN_AUTH"
check_json "its tunnel adm-tun3 is deleted" GET "$AA/tunnel/adm-tun3" 404 'j["error"]' TUNNEL_NOT_FOUND -H "$ADMIN_AUTH"
check_json "token route of the deleted account 403" GET "$API/v1/account/$ACC/token" 403 'j["error"]' PERMISSION_DENIED
check_json "API auth of the deleted account 401" GET "$API/v1/tunnel/adm-tun1" 401 'j["error"]' PERMISSION_DENIED -H "$AUTH"
check "DELETE missing account 404" DELETE "$AA/account/$ACC" 404 -H "$ADMIN_AUTH"
new_account
put_tunnel adm-tun1 '{}'
result "a deleted account's tunnel id is free again" "$([ "$STATUS" = 200 ]; echo $?)" "status $STATUS body $BODY"
stop_server

# ---- no key, no allow flag: the admin API is off (404 everywhere) ----
start_server --api-port @API@ --ingress-http-port @API@ --admin-enable --admin-api-enable --admin-port @ADMIN@ --admin-api-port @ADMIN@ \
	--ingress-http-url "http://localhost:@API@"
check "no key: GET cluster 404" GET "$ADMIN/v1/admin/cluster" 404
check "no key: GET cluster with a Bearer header 404" GET "$ADMIN/v1/admin/cluster" 404 -H "$ADMIN_AUTH"
check "no key: POST account 404" POST "$ADMIN/v1/admin/account" 404
check "no key: tunnel list 404" GET "$ADMIN/v1/admin/tunnel" 404
check "no key: /ping still 200" GET "$ADMIN/ping" 200
grep -q 'Admin API resource disabled - no API key given' "$SRV_LOG"
result "no key: startup warns 'Admin API resource disabled - no API key given'" $?
stop_server

# ---- --admin-api-allow-access-without-key, separate ports, no registration ----
start_server --api-port @API@ --ingress-http-port @API@ --admin-api-enable --admin-api-port @ADMIN@ --admin-api-allow-access-without-key \
	--admin-enable --admin-port @P3@ --ingress-http-url "http://localhost:@API@"
check "allow-without-key: GET cluster 200 without Authorization" GET "$ADMIN/v1/admin/cluster" 200
check "allow-without-key: POST account 201 without --allow-registration" POST "$ADMIN/v1/admin/account" 201
expect_true "allow-without-key: account-full answer" 'sorted(j) == ["account_id", "account_id_hr", "created_at", "status", "tunnels", "updated_at"]'
check "registration is still off on the public API" POST "$API/v1/account" 404
check "separate ports: /ping on --admin-port 200" GET "http://127.0.0.1:$P3_PORT/ping" 200
check "separate ports: /health on --admin-port 200" GET "http://127.0.0.1:$P3_PORT/health" 200
check "separate ports: no admin API on --admin-port" GET "http://127.0.0.1:$P3_PORT/v1/admin/cluster" 404
check "separate ports: no /ping on --admin-api-port" GET "$ADMIN/ping" 404
grep -q 'Admin API resource enabled without authentication' "$SRV_LOG"
result "allow-without-key: startup warns 'enabled without authentication'" $?
stop_server

# ---- key wins over allow-without-key; admin interface off ----
start_server --api-port @API@ --ingress-http-port @API@ --admin-api-enable --admin-api-port @ADMIN@ --admin-api-allow-access-without-key \
	--admin-api-key "$ADMIN_KEY" --ingress-http-url "http://localhost:@API@"
check "key + allow flag: no Authorization 403" GET "$ADMIN/v1/admin/cluster" 403
check "key + allow flag: key 200" GET "$ADMIN/v1/admin/cluster" 200 -H "$ADMIN_AUTH"
check "admin interface disabled: /ping 404 on the admin API port" GET "$ADMIN/ping" 404
check "admin interface disabled: /health 404" GET "$ADMIN/health" 404
finish
