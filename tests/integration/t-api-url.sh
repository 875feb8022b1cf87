#!/bin/sh
# --api-url (spec/api.md §0.1 step 3, §0.2, Q8; config.md §2 API): the
# public API answers only requests whose base host[:port] equals the
# host of --api-url; anything else gets 404.
. "$(dirname "$0")/lib.sh"

# The token route of an unknown account: 403 PERMISSION_DENIED when the API
# answers, 404 when it does not.
PROBE=/v1/account/CDEFHJKMNPRTVWXY/token
answered() {
	_name=$1
	shift
	check_json "$_name: API answers" GET "$API$PROBE" 403 'j["error"]' PERMISSION_DENIED "$@"
}
ignored() {
	_name=$1
	shift
	check "$_name: 404" GET "$API$PROBE" 404 "$@"
}

start_std --api-url "http://api.example.com:@API@"
H="api.example.com:$API_PORT"
answered "Host api.example.com:<port>" -H "Host: $H"
answered "Host in uppercase" -H "Host: API.EXAMPLE.COM:$API_PORT"
check "POST /v1/account with the API host 201" POST "$API/v1/account" 201 -H "Host: $H"
ignored "Host 127.0.0.1:port (does not match)"
[ "$BODY" = "Not Found" ]
result "mismatch answer is the plain text 404 (Q8), not 500" $? "body '$BODY'"
ignored "Host api.example.com without the port" -H "Host: api.example.com"
ignored "Host api.example.com with another port" -H "Host: api.example.com:1"
ignored "Host other.example.com:port" -H "Host: other.example.com:$API_PORT"
check "POST /v1/account with another host 404" POST "$API/v1/account" 404
answered "Forwarded host= matching, Host not" -H 'Host: internal:1' -H "Forwarded: host=$H"
answered "Forwarded host= quoted" -H 'Host: internal:1' -H "Forwarded: for=1.2.3.4;host=\"$H\";proto=http"
ignored "Forwarded host= not matching, Host matching" -H "Host: $H" -H 'Forwarded: host=other.example.com'
answered "X-Forwarded-Port supplies the port" -H 'Host: api.example.com' -H "X-Forwarded-Port: $API_PORT"
ignored "X-Forwarded-Port overrides a matching Host port" -H "Host: $H" -H 'X-Forwarded-Port: 1'
# spec/api.md §0.2: the host comes from Forwarded host= or Host only.
ignored "X-Forwarded-Host is not part of the base host" -H 'Host: internal:1' -H "X-Forwarded-Host: $H"
check "admin API (own listener) is not restricted by --api-url" GET "$ADMIN/v1/admin/cluster" 200 -H "$ADMIN_AUTH"
check "admin interface is not restricted by --api-url" GET "$ADMIN/ping" 200
stop_server

start_std --api-url "https://API.example.com"
answered "https api-url: Host api.example.com" -H 'Host: api.example.com'
answered "https api-url: X-Forwarded-Proto https and port 443 dropped" -H 'Host: api.example.com:443' -H 'X-Forwarded-Proto: https'
ignored "https api-url: plain http with :443 keeps the port" -H 'Host: api.example.com:443'
answered "https api-url: Forwarded proto=https;host=api.example.com:443" -H 'Host: x' \
	-H 'Forwarded: proto=https;host=api.example.com:443'
ignored "https api-url: Host 127.0.0.1"
finish
