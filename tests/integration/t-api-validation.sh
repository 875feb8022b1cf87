#!/bin/sh
# PUT/PATCH body validation (spec/api.md §2.2, §2.5).
. "$(dirname "$0")/lib.sh"

start_std
new_account || finish
put_tunnel val-tunnel '{}'
[ "$STATUS" = 200 ] || fail "setup: create val-tunnel" "status $STATUS body $BODY"
TU=$API/v1/tunnel/val-tunnel
CT='Content-Type: application/json'

# bad BODY_JSON NAME FIELD [curl args]: PUT with a JSON body -> 400 BAD_INPUT, field
bad() {
	_body=$1
	_name=$2
	_field=$3
	shift 3
	check_json "$_name" PUT "$TU" 400 '[j.get("error"), j.get("field")]' \
		"[\"BAD_INPUT\",$(printf '%s' "$_field" | $PY -c 'import json,sys; print(json.dumps(sys.stdin.read()))')]" \
		-H "$AUTH" -H "$CT" --data-binary "$_body" "$@"
}
# bad400 BODY NAME: 400 BAD_INPUT, any field text
bad400() {
	check_json "$2" PUT "$TU" 400 'j.get("error")' BAD_INPUT -H "$AUTH" -H "$CT" --data-binary "$1"
}
good() {
	check "$2" PUT "$TU" 200 -H "$AUTH" -H "$CT" --data-binary "$1"
}

# ---- body framing (§2.2) ----
check_json "no Content-Type: content-type: expected json" PUT "$TU" 400 'j' \
	'{"error":"BAD_INPUT","field":"content-type: expected json"}' -H "$AUTH" -H 'Content-Type:' --data-binary '{}'
check_json "form Content-Type rejected" PUT "$TU" 400 'j["field"]' 'content-type: expected json' \
	-H "$AUTH" -d '{}'
check_json "text/plain rejected" PUT "$TU" 400 'j["field"]' 'content-type: expected json' \
	-H "$AUTH" -H 'Content-Type: text/plain' --data-binary '{}'
check_json "application/vnd.api+json rejected" PUT "$TU" 400 'j["field"]' 'content-type: expected json' \
	-H "$AUTH" -H 'Content-Type: application/vnd.api+json' --data-binary '{}'
check "application/json; charset=utf-8 accepted" PUT "$TU" 200 \
	-H "$AUTH" -H 'Content-Type: application/json; charset=utf-8' --data-binary '{}'
check "application/json;charset=UTF-8 accepted" PATCH "$TU" 200 \
	-H "$AUTH" -H 'Content-Type: application/json;charset=UTF-8' --data-binary '{}'
check_json "JSON Content-Type without any body: content-type: expected json" PUT "$TU" 400 'j["field"]' \
	'content-type: expected json' -H "$AUTH" -H "$CT"
check "Content-Length: 0 body counts as {}" PUT "$TU" 200 -H "$AUTH" -H "$CT" -d ''
check "PATCH with Content-Length: 0 body 200" PATCH "$TU" 200 -H "$AUTH" -H "$CT" -d ''
check_json "PATCH without Content-Type 400" PATCH "$TU" 400 'j["field"]' 'content-type: expected json' \
	-H "$AUTH" -H 'Content-Type:' --data-binary '{}'
req PUT "$TU" -H "$AUTH" -H "$CT" --data-binary '{bad'
expect_true "malformed JSON: 400 with a content-type: parser message" \
	'j["error"] == "BAD_INPUT" and j["field"].startswith("content-type: ") and j["field"] != "content-type: expected json"'
bad400 '{"a":1' "truncated JSON 400"
bad400 '{"target":{"url":"x"}} x' "trailing garbage after JSON 400"
for v in null '"x"' 1 true; do
	bad "$v" "top-level $v: only object and array" 'content-type: invalid JSON, only supports object and array'
done
bad '[]' 'top-level array: "value" must be of type object' '"value" must be of type object'
bad '[{"target":{}}]' 'top-level array of objects rejected' '"value" must be of type object'
deep=$($PY -c 'print("[" * 5000 + "]" * 5000)')
bad400 "$deep" "5000-deep nested arrays rejected 400"
deep=$($PY -c 'print("{\"a\":" * 3000 + "1" + "}" * 3000)')
bad400 "$deep" "3000-deep nested objects rejected 400"

# ---- unknown keys at every level (§2.5) ----
bad '{"foo":1}' 'unknown top-level key' '"foo" is not allowed'
bad '{"ingress":{"foo":{}}}' 'unknown key in ingress' '"ingress.foo" is not allowed'
bad '{"ingress":{"http":{"foo":true}}}' 'unknown key in ingress.http' '"ingress.http.foo" is not allowed'
bad '{"ingress":{"sni":{"url":"x"}}}' 'unknown key in ingress.sni' '"ingress.sni.url" is not allowed'
bad '{"target":{"host":"x"}}' 'unknown key in target' '"target.host" is not allowed'
bad '{"transport":{"tcp":{}}}' 'unknown key in transport' '"transport.tcp" is not allowed'
bad '{"transport":{"ws":{"url":"x"}}}' 'unknown key in transport.ws' '"transport.ws.url" is not allowed'
bad '{"transport":{"ssh":{"enabled":true,"port":22}}}' 'unknown key in transport.ssh' '"transport.ssh.port" is not allowed'
bad '{"id":"val-tunnel"}' 'read-only key id is not allowed' '"id" is not allowed'
bad400 '{"ingress":1}' 'ingress not an object 400'
bad400 '{"ingress":{"http":[]}}' 'ingress.http an array 400'
bad400 '{"target":"http://x"}' 'target a string 400'
bad400 '{"transport":null}' 'transport null 400'
check_json "failed validation changed nothing" GET "$TU" 200 'j["target"]' '{}' -H "$AUTH"

# ---- booleans ----
good '{"ingress":{"http":{"enabled":true}}}' 'boolean true accepted'
good '{"ingress":{"http":{"enabled":"TRUE"}}}' 'boolean string "TRUE" accepted'
check_json 'boolean string "False" accepted and applied' PUT "$TU" 200 'j["transport"]["ws"]["enabled"]' false \
	-H "$AUTH" -H "$CT" --data-binary '{"transport":{"ws":{"enabled":"False"}}}'
bad '{"ingress":{"http":{"enabled":1}}}' 'boolean 1 rejected' '"ingress.http.enabled" must be a boolean'
bad '{"transport":{"ws":{"enabled":"yes"}}}' 'boolean "yes" rejected' '"transport.ws.enabled" must be a boolean'
bad '{"transport":{"ssh":{"enabled":null}}}' 'boolean null rejected' '"transport.ssh.enabled" must be a boolean'
bad '{"ingress":{"sni":{"enabled":0}}}' 'sni.enabled 0 rejected' '"ingress.sni.enabled" must be a boolean'

# ---- target.url ----
bad '{"target":{"url":""}}' 'target.url "" rejected' '"target.url" is not allowed to be empty'
bad '{"target":{"url":"has space"}}' 'target.url with a space rejected' '"target.url" must be a valid uri'
bad '{"target":{"url":"http://a b/"}}' 'target.url http://a b/ rejected' '"target.url" must be a valid uri'
bad '{"target":{"url":"noscheme"}}' 'target.url without a scheme rejected' '"target.url" must be a valid uri'
bad '{"target":{"url":"1http://x"}}' 'target.url scheme starting with a digit rejected' '"target.url" must be a valid uri'
bad400 '{"target":{"url":42}}' 'target.url a number rejected'
long=$($PY -c 'print("http://x/" + "a" * 9000)')
bad400 "{\"target\":{\"url\":\"$long\"}}" 'target.url of 9000 chars rejected'
check_json 'target.url localhost:80 valid (scheme "localhost")' PUT "$TU" 200 'j["target"]["url"]' localhost:80 \
	-H "$AUTH" -H "$CT" --data-binary '{"target":{"url":"localhost:80"}}'
check_json 'target.url tcp://h:22 valid' PUT "$TU" 200 'j["target"]["url"]' tcp://h:22 \
	-H "$AUTH" -H "$CT" --data-binary '{"target":{"url":"tcp://h:22"}}'
check_json 'target.url stored verbatim' PUT "$TU" 200 'j["target"]["url"]' 'HTTP://Example.COM:80/a%20b?q=1#f' \
	-H "$AUTH" -H "$CT" --data-binary '{"target":{"url":"HTTP://Example.COM:80/a%20b?q=1#f"}}'
check_json 'target.url with JSON escapes decoded' PUT "$TU" 200 'j["target"]["url"]' 'http://x/a' \
	-H "$AUTH" -H "$CT" --data-binary '{"target":{"url":"http:\/\/x\/\u0061"}}'

check_json 'repeated key: the last one wins (JSON.parse)' PUT "$TU" 200 'j["target"]["url"]' http://b \
	-H "$AUTH" -H "$CT" --data-binary '{"target":{"url":"http://a"},"target":{"url":"http://b"}}'
check_json 'repeated key: a later null unsets' PUT "$TU" 200 'j["target"]' '{}' \
	-H "$AUTH" -H "$CT" --data-binary '{"target":{"url":"http://a"},"target":{"url":null}}'
bad '{"target":{"url":"http://a\u0000b"}}' 'target.url with an escaped NUL rejected (not truncated)' '"target.url" must be a valid uri'

# ---- alt_names (validation only; CNAME checks in t-api-altnames) ----
check 'repeated alt_names key: the last list wins' PUT "$TU" 200 -H "$AUTH" -H "$CT" \
	--data-binary '{"ingress":{"http":{"alt_names":["x.example.invalid"],"alt_names":[]}}}'
bad '{"ingress":{"http":{"alt_names":["ok.example.com\u0000x"]}}}' 'alt name with an escaped NUL rejected' \
	'"ingress.http.alt_names[0]" must contain a valid domain name'

eleven='["a1.example.com","a2.example.com","a3.example.com","a4.example.com","a5.example.com","a6.example.com","a7.example.com","a8.example.com","a9.example.com","a10.example.com","a11.example.com"]'
bad "{\"ingress\":{\"http\":{\"alt_names\":$eleven}}}" 'alt_names with 11 items rejected' \
	'"ingress.http.alt_names" must contain less than or equal to 10 items'
bad400 '{"ingress":{"http":{"alt_names":"a.example.com"}}}' 'alt_names a string rejected'
bad400 '{"ingress":{"http":{"alt_names":[1]}}}' 'alt_names item a number rejected'
for name in 1.2.3.4 -a.com a-.com a_b.com a.com. localhost a..com .a.com 'a b.com' 'bücher.de' a.1com \
	"$($PY -c 'print("a" * 64 + ".com")')" "$($PY -c 'print(".".join(["abcdefgh"] * 29) + ".com")')"; do
	bad "{\"ingress\":{\"http\":{\"alt_names\":[\"$name\"]}}}" "alt name '$name' invalid" \
		'"ingress.http.alt_names[0]" must contain a valid domain name'
done
bad '{"ingress":{"http":{"alt_names":["ok.example.com","bad_name.com"]}}}' 'second invalid alt name reported by index' \
	'"ingress.http.alt_names[1]" must contain a valid domain name'

# ---- order: body type, path, schema ----
check_json "bad tunnel id + non-JSON body: the content-type message" PUT "$API/v1/tunnel/AB" 400 'j["field"]' \
	'content-type: expected json' -H "$AUTH" -H 'Content-Type: text/plain' --data-binary 'x'
req PUT "$API/v1/tunnel/AB" -H "$AUTH" -H "$CT" --data-binary '{"foo":1}'
expect_true "bad tunnel id + unknown key: the tunnel_id message" 'j["error"] == "BAD_INPUT" and "tunnel_id" in j["field"]'
check_json "no token + unknown key: 400 before 401" PUT "$TU" 400 'j["field"]' '"foo" is not allowed' \
	-H "$CT" --data-binary '{"foo":1}'

# ---- size limit ----
big=$T/big.json
$PY -c 'import sys; sys.stdout.write("{\"target\":{\"url\":\"http://x/" + "a" * 70000 + "\"}}")' >"$big"
req PUT "$TU" -H "$AUTH" -H "$CT" --data-binary "@$big"
result "body over 64 KiB rejected (413 or 400)" "$(case $STATUS in 413 | 400) echo 0 ;; *) echo 1 ;; esac)" "status $STATUS"
$PY -c 'import sys; sys.stdout.write("{\"target\":{\"url\":\"http://x/\"}}" + " " * 60000)' >"$big"
check "body just under 64 KiB (trailing spaces) accepted" PUT "$TU" 200 -H "$AUTH" -H "$CT" --data-binary "@$big"
check "server still serves after the size limit" GET "$TU" 200 -H "$AUTH"
finish
