#!/bin/sh
# Configuration surface (spec/config.md §1, §2, §5, §7 step 10): options,
# environment, precedence, help/version, usage errors, bind failures.
. "$(dirname "$0")/lib.sh"

# usage_error NAME EXPECTED-TEXT ARGS...: exits 255 (bounded) and prints
# EXPECTED-TEXT (stdout or stderr).
usage_error() {
	_name=$1
	_text=$2
	shift 2
	timeout 10 "$EXPOSRD" "$@" >"$T/out" 2>&1
	_rc=$?
	if [ $_rc -eq 255 ] && grep -qF -- "$_text" "$T/out"; then
		ok "$_name"
	else
		fail "$_name" "exposrd $*: expected exit 255 and '$_text'; got exit $_rc" "$(tail -5 "$T/out")"
	fi
}

PORTS=$(free_ports)
FP=${PORTS%% *}
URL="http://localhost:$FP"

# ---- help / version ----
timeout 10 "$EXPOSRD" --help >"$T/out" 2>&1
_rc=$?
[ $_rc -eq 0 ] && grep -q -- '--api-port' "$T/out" && grep -q -- '--ingress-http-url' "$T/out"
result "--help exits 0 and lists the options" $? "exit $_rc: $(head -3 "$T/out")"
timeout 10 "$EXPOSRD" --help --show-hidden >"$T/out" 2>&1
result "--help --show-hidden exits 0" $?
timeout 10 "$EXPOSRD" --version >"$T/out" 2>&1
_rc=$?
[ $_rc -eq 0 ] && head -1 "$T/out" | grep -Eq '^version: [^ ]+ \(pkg [^ ]+\)$'
result "--version exits 0 and prints 'version: <v> (pkg <v>)'" $? "exit $_rc: $(head -3 "$T/out")"

# ---- usage errors (exit 255 with the message line) ----
usage_error "--api-port abc" "api-port" --api-port abc --ingress-http-url "$URL"
usage_error "--api-port 70000" "api-port" --api-port 70000 --ingress-http-url "$URL"
usage_error "--api-port 0" "api-port" --api-port 0 --ingress-http-url "$URL"
usage_error "-p 1.5" "api-port" -p 1.5 --ingress-http-url "$URL"
usage_error "--admin-port -1" "admin-port" --api-port "$FP" --admin-port -1 --ingress-http-url "$URL"
usage_error "--transport-max-connections 0" "transport-max-connections" --api-port "$FP" \
	--transport-max-connections 0 --ingress-http-url "$URL"
usage_error "--transport-max-connections abc" "transport-max-connections" --api-port "$FP" \
	--transport-max-connections abc --ingress-http-url "$URL"
usage_error "--ingress foo" 'Argument: ingress, Given: "foo"' --api-port "$FP" --ingress foo --ingress-http-url "$URL"
usage_error "--ingress http,foo (comma list element)" 'Given: "foo"' --api-port "$FP" --ingress http,foo --ingress-http-url "$URL"
usage_error "--transport foo" 'Argument: transport, Given: "foo"' --api-port "$FP" --transport foo --ingress-http-url "$URL"
usage_error "--log-level loud" 'Argument: log-level' --api-port "$FP" --log-level loud --ingress-http-url "$URL"
usage_error "--cluster foo" 'Argument: cluster' --api-port "$FP" --cluster foo --ingress-http-url "$URL"
usage_error "--storage-url foo://x" 'Unsupported storage type foo:. Valid options are redis, postgres or sqlite' \
	--api-port "$FP" --storage-url foo://x --ingress-http-url "$URL"
usage_error "--storage-url sqlite with --cluster udp" 'SQlite storage can only be used in single-node mode' \
	--api-port "$FP" --storage-url "sqlite://$T/x.sqlite" --cluster udp --ingress-http-url "$URL"
usage_error "missing --ingress-http-url" 'Missing required argument: ingress-http-url' --api-port "$FP"
usage_error "--ingress-http-url notaurl" 'Invalid URL' --api-port "$FP" --ingress-http-url notaurl
usage_error "--api-url notaurl" 'Invalid URL' --api-port "$FP" --ingress-http-url "$URL" --api-url notaurl
usage_error "--cluster redis without a redis url" 'Missing required argument: cluster-redis-url' \
	--api-port "$FP" --cluster redis --ingress-http-url "$URL"
env EXPOSR_API_PORT=abc timeout 10 "$EXPOSRD" --ingress-http-url "$URL" >"$T/out" 2>&1
_rc=$?
[ $_rc -eq 255 ] && grep -q 'api-port' "$T/out"
result "EXPOSR_API_PORT=abc from the environment: exit 255" $? "exit $_rc: $(tail -3 "$T/out")"
env EXPOSR_INGRESS=foo timeout 10 "$EXPOSRD" --api-port "$FP" --ingress-http-url "$URL" >"$T/out" 2>&1
_rc=$?
[ $_rc -eq 255 ] && grep -q 'Given: "foo"' "$T/out"
result "EXPOSR_INGRESS=foo from the environment: exit 255" $? "exit $_rc: $(tail -3 "$T/out")"

# ---- environment configuration ----
SRV_ENV="EXPOSR_API_PORT=@API@ EXPOSR_INGRESS_HTTP_PORT=@API@ EXPOSR_ALLOW_REGISTRATION=true EXPOSR_INGRESS_HTTP_URL=http://env.example:@API@ EXPOSR_TRANSPORT_MAX_CONNECTIONS=5"
start_server
check "env EXPOSR_API_PORT: the API answers on that port" GET "$API/v1/account/CDEFHJKMNPRTVWXY/token" 403
check "env EXPOSR_ALLOW_REGISTRATION=true: POST /v1/account 201" POST "$API/v1/account" 201
ACC=$(jv 'j["account_id"]')
AUTH="Authorization: Bearer $(printf %s "$ACC" | base64)"
check_json "env EXPOSR_INGRESS_HTTP_URL: tunnel ingress url" PUT "$API/v1/tunnel/env-tun" 200 'j["ingress"]["http"]["url"]' \
	"http://env-tun.env.example:$API_PORT/" -H "$AUTH" -H 'Content-Type: application/json' -d '{"ingress":{"http":{"enabled":true}}}'
expect_json "env EXPOSR_TRANSPORT_MAX_CONNECTIONS=5" 'j["transport"]["max_connections"]' 5
stop_server "env-configured server exits 0"

# ---- the command line beats the environment ----
SRV_ENV="EXPOSR_API_PORT=@P3@ EXPOSR_INGRESS_HTTP_PORT=@P3@ EXPOSR_ALLOW_REGISTRATION=true EXPOSR_INGRESS_HTTP_URL=http://env.example EXPOSR_TRANSPORT_MAX_CONNECTIONS=5"
start_server --api-port=@API@ --ingress-http-port=@API@ --no-allow-registration --ingress-http-url "http://cli.example:@API@" \
	--transport-max-connections=3 --admin-api-enable --admin-api-port @ADMIN@ --admin-api-allow-access-without-key
SRV_ENV=
check "--api-port=N beats EXPOSR_API_PORT" GET "$API/v1/account/CDEFHJKMNPRTVWXY/token" 403
code=$(curl -s -o /dev/null -w '%{http_code}' --max-time 2 "http://127.0.0.1:$P3_PORT/" 2>/dev/null)
result "nothing listens on the EXPOSR_API_PORT port" "$([ "$code" = 000 ]; echo $?)" "got HTTP $code"
check "--no-allow-registration beats EXPOSR_ALLOW_REGISTRATION=true" POST "$API/v1/account" 404
req POST "$ADMIN/v1/admin/account"
AUTH="Authorization: Bearer $(jv 'j["account_id"]' | tr -d '\n' | base64)"
check_json "--ingress-http-url beats EXPOSR_INGRESS_HTTP_URL" PUT "$API/v1/tunnel/cli-tun" 200 'j["ingress"]["http"]["url"]' \
	"http://cli-tun.cli.example:$API_PORT/" -H "$AUTH" -H 'Content-Type: application/json' -d '{"ingress":{"http":{"enabled":true}}}'
expect_json "--transport-max-connections=3 beats the environment" 'j["transport"]["max_connections"]' 3
stop_server "cli-configured server exits 0"

# ---- option syntax ----
start_server -p @API@ --ingress-http-port @P3@ --allow-registration true --ingress-http-url=http://localhost:@API@ --ingress http --transport ws \
	--log-level warn --no-such-option value --cluster single-node
check "-p N, --flag true, --name=value, unknown options ignored: server runs" POST "$API/v1/account" 201
code=$(curl -s -o /dev/null -w '%{http_code}' --max-time 2 "http://127.0.0.1:$P3_PORT/" 2>/dev/null)
result "--ingress-http-port N (not the API port) opens its own listener" "$([ "$code" != 000 ]; echo $?)" "got HTTP $code"
check "the API is not served on the separate ingress port" POST "http://127.0.0.1:$P3_PORT/v1/account" 404
if grep -q '"level":"INFO"' "$SRV_LOG"; then
	fail "--log-level warn suppresses INFO lines"
else
	ok "--log-level warn suppresses INFO lines"
fi
stop_server "syntax-variant server exits 0"
start_server --api-port @API@ --ingress-http-port @API@ --allow-registration false --ingress-http-url http://localhost:@API@ --log-level off
check "--allow-registration false: POST /v1/account 404" POST "$API/v1/account" 404
[ ! -s "$SRV_LOG" ]
result "--log-level off prints nothing" $? "$(head -3 "$SRV_LOG")"

# ---- bind failures ----
HELD=$API_PORT
timeout 10 "$EXPOSRD" --api-port "$HELD" --ingress-http-port "$HELD" --ingress-http-url "$URL" >"$T/out" 2>&1
_rc=$?
[ $_rc -eq 255 ] && grep -q 'Failed to start up' "$T/out"
result "API port already in use: exit 255 with 'Failed to start up'" $? "exit $_rc: $(tail -3 "$T/out")"
timeout 10 "$EXPOSRD" --api-port "$FP" --ingress-http-port "$FP" --admin-enable --admin-port "$HELD" --ingress-http-url "$URL" >"$T/out" 2>&1
_rc=$?
[ $_rc -eq 255 ] && grep -q 'Failed to start up' "$T/out"
result "admin port already in use: exit 255 with 'Failed to start up'" $? "exit $_rc: $(tail -3 "$T/out")"
check "the server holding the port is unaffected" POST "$API/v1/account" 404
finish
