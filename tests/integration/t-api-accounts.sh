#!/bin/sh
# Public API accounts (spec/api.md §1.1, §2.1, §2.3): registration switch,
# account creation with and without body, the token route.
. "$(dirname "$0")/lib.sh"

# --- registration off ---
start_server --api-port @API@ --ingress-http-port @API@ --ingress-http-url "http://localhost:@API@"
check "registration off: POST /v1/account 404" POST "$API/v1/account" 404
check "registration off: POST with JSON body 404" POST "$API/v1/account" 404 \
	-H 'Content-Type: application/json' -d '{}'
check_json "registration off: token route still 403 for unknown account" \
	GET "$API/v1/account/CDEFHJKMNPRTVWXY/token" 403 'j["error"]' PERMISSION_DENIED
stop_server "registration off: server exits 0"

# --- registration on ---
start_server --api-port @API@ --ingress-http-port @API@ --ingress-http-url "http://localhost:@API@" --allow-registration
check "POST /v1/account without body 201" POST "$API/v1/account" 201
expect_true "account-short has exactly account_id and account_id_hr" \
	'sorted(j.keys()) == ["account_id", "account_id_hr"]'
expect_true "account_id is 16 chars of the id alphabet" \
	'__import__("re").fullmatch(r"[CDEFHJKMNPRTVWXY2345689]{16}", j["account_id"]) is not None'
expect_true "account_id_hr is 4 groups joined by -" \
	'j["account_id_hr"] == "-".join(j["account_id"][i:i+4] for i in range(0, 16, 4))'
ct=$(header content-type)
[ "$ct" = "application/json; charset=utf-8" ]
result "account response Content-Type application/json; charset=utf-8" $? "got '$ct'"
A1=$(jv 'j["account_id"]')
A1HR=$(jv 'j["account_id_hr"]')

check "POST /v1/account with JSON body {} 201" POST "$API/v1/account" 201 \
	-H 'Content-Type: application/json' -d '{}'
A2=$(jv 'j["account_id"]')
[ -n "$A2" ] && [ "$A2" != "$A1" ]
result "second account has a different id" $? "$A1 vs $A2"
check "POST /v1/account with a non-JSON body 201 (body ignored)" POST "$API/v1/account" 201 \
	-H 'Content-Type: text/plain' -d 'hello'
check "POST /v1/account with malformed JSON body 201 (body ignored)" POST "$API/v1/account" 201 \
	-H 'Content-Type: application/json' -d '{bad'
check "GET /v1/account 404 (no listing)" GET "$API/v1/account" 404

# --- token route ---
want=$(printf %s "$A1" | base64)
check_json "token by normalized id: 201 with base64(id)" GET "$API/v1/account/$A1/token" 201 'j["token"]' "$want"
expect_true "token is 24 chars ending in ==" 'len(j["token"]) == 24 and j["token"].endswith("==")'
check_json "token by hr form" GET "$API/v1/account/$A1HR/token" 201 'j["token"]' "$want"
lower=$(printf %s "$A1HR" | tr 'A-Z' 'a-z')
check_json "token by lowercase hr form" GET "$API/v1/account/$lower/token" 201 'j["token"]' "$want"
spaced=$(printf %s "$A1HR" | sed 's/-/%20/g')
check_json "token by id with spaces (%20)" GET "$API/v1/account/$spaced/token" 201 'j["token"]' "$want"
mixed=$(printf %s "$A1" | cut -c1-8)-$(printf %s "$A1" | cut -c9-16 | tr 'A-Z' 'a-z')
check_json "token by mixed case with one dash" GET "$API/v1/account/$mixed/token" 201 'j["token"]' "$want"
check_json "token for invalid id (bad alphabet) 403" GET "$API/v1/account/AAAAAAAAAAAAAAAA/token" 403 'j["error"]' PERMISSION_DENIED
check_json "token for too short id 403" GET "$API/v1/account/CDEF/token" 403 'j["error"]' PERMISSION_DENIED
check_json "token for 17-char id 403" GET "$API/v1/account/${A1}C/token" 403 'j["error"]' PERMISSION_DENIED
check_json "token for unknown well-formed id 403" GET "$API/v1/account/CDEFHJKMNPRTVWXY/token" 403 'j["error"]' PERMISSION_DENIED
check "token route with POST 404" POST "$API/v1/account/$A1/token" 404
check_json "token works as bearer: GET missing tunnel 404 TUNNEL_NOT_FOUND" \
	GET "$API/v1/tunnel/nosuchtunnel" 404 'j["error"]' TUNNEL_NOT_FOUND -H "Authorization: Bearer $want"
unpadded=$(printf %s "$want" | tr -d '=')
check "unpadded bearer token accepted" GET "$API/v1/tunnel/nosuchtunnel" 404 -H "Authorization: Bearer $unpadded"
hrtok=$(printf %s "$A1HR" | base64)
check "bearer of base64(hr form) accepted (normalized)" GET "$API/v1/tunnel/nosuchtunnel" 404 -H "Authorization: Bearer $hrtok"
finish
