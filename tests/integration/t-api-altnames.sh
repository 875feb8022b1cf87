#!/bin/sh
# Alt names (spec/api.md §2.5, Q7): without a matching DNS CNAME a new alt
# name is refused with 400 TUNNEL_INGRESS_BAD_ALT_NAMES listing the names.
# Names use the reserved .invalid TLD so that no resolver can ever find a
# CNAME for them.
# Not covered: HTTP ingress disabled server-wide (needs --ingress sni,
# which needs a TLS build).
. "$(dirname "$0")/lib.sh"

start_std
new_account || finish
CT='Content-Type: application/json'
TU=$API/v1/tunnel/alt-tun
WAIT='--max-time 20' # a real resolver may take its time

put_tunnel alt-tun '{"ingress":{"http":{"enabled":true}}}'
[ "$STATUS" = 200 ] || fail "setup: create alt-tun" "status $STATUS body $BODY"

check_json "new alt name without CNAME: 400 TUNNEL_INGRESS_BAD_ALT_NAMES" PATCH "$TU" 400 'j' \
	'{"error":"TUNNEL_INGRESS_BAD_ALT_NAMES","details":"app.example.invalid"}' \
	-H "$AUTH" -H "$CT" -d '{"ingress":{"http":{"alt_names":["app.example.invalid"]}}}' $WAIT
check_json "two bad names listed comma-separated" PATCH "$TU" 400 'j["details"]' 'a.example.invalid, b.example.invalid' \
	-H "$AUTH" -H "$CT" -d '{"ingress":{"http":{"alt_names":["a.example.invalid","b.example.invalid"]}}}' $WAIT
check_json "alt names are lowercased before the check" PATCH "$TU" 400 'j["details"]' 'app.example.invalid' \
	-H "$AUTH" -H "$CT" -d '{"ingress":{"http":{"alt_names":["App.Example.INVALID"]}}}' $WAIT
check_json "syntactically valid unknown TLD passes validation, fails the CNAME check" PUT "$TU" 400 'j["error"]' \
	TUNNEL_INGRESS_BAD_ALT_NAMES -H "$AUTH" -H "$CT" -d '{"ingress":{"http":{"alt_names":["foo.invalidtld"]}}}' $WAIT
check_json "rejected update changed nothing" GET "$TU" 200 'j["ingress"]["http"]["alt_names"]' '[]' -H "$AUTH"
check_json "rejected update kept the other settings" GET "$TU" 200 'j["ingress"]["http"]["enabled"]' true -H "$AUTH"
check_json "rejected update is atomic (target in the same body not applied)" PATCH "$TU" 400 'j["error"]' \
	TUNNEL_INGRESS_BAD_ALT_NAMES -H "$AUTH" -H "$CT" \
	-d '{"target":{"url":"http://x"},"ingress":{"http":{"alt_names":["c.example.invalid"]}}}' $WAIT
check_json "... target still unset" GET "$TU" 200 'j["target"]' '{}' -H "$AUTH"
check_json "alt name check also runs with ingress.http disabled on the tunnel" PATCH "$TU" 400 'j["error"]' \
	TUNNEL_INGRESS_BAD_ALT_NAMES -H "$AUTH" -H "$CT" \
	-d '{"ingress":{"http":{"enabled":false,"alt_names":["d.example.invalid"]}}}' $WAIT
check_json "alt_names null clears (to [])" PATCH "$TU" 200 'j["ingress"]["http"]["alt_names"]' '[]' \
	-H "$AUTH" -H "$CT" -d '{"ingress":{"http":{"alt_names":null}}}'
check_json "alt_names [] unchanged: no CNAME check, 200" PATCH "$TU" 200 'j["ingress"]["http"]["urls"]' \
	"[\"http://alt-tun.localhost:$API_PORT/\"]" -H "$AUTH" -H "$CT" -d '{"ingress":{"http":{"alt_names":[]}}}'
check_json "admin view: alt_names [] stored" GET "$ADMIN/v1/admin/tunnel/alt-tun" 200 'j["ingress"]["http"]["alt_names"]' '[]' \
	-H "$ADMIN_AUTH"

# PUT that creates the tunnel and then fails the alt-name step
check_json "PUT new tunnel with a bad alt name: 400" PUT "$API/v1/tunnel/alt-new" 400 'j["error"]' \
	TUNNEL_INGRESS_BAD_ALT_NAMES -H "$AUTH" -H "$CT" -d '{"ingress":{"http":{"alt_names":["e.example.invalid"]}}}' $WAIT
check_json "... the tunnel stays created (§2.5 failure side effects)" GET "$API/v1/tunnel/alt-new" 200 'j["id"]' alt-new -H "$AUTH"
finish
