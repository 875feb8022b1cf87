#!/bin/sh
# Admin listing and pagination (spec/api.md §4.3, §5) on memory storage.
. "$(dirname "$0")/lib.sh"

start_std
AA=$ADMIN/v1/admin
for i in 1 2 3 4 5 6 7; do
	new_account || finish
	eval "ACC$i=\$ACC"
done
for i in 1 2 3 4 5 6 7; do
	put_tunnel "pt-tun$i" '{}'
	[ "$STATUS" = 200 ] || fail "setup: PUT pt-tun$i" "status $STATUS body $BODY"
done

# walk NS COUNT [EXTRA-QUERY]: follow the cursor from the start until null.
# Leaves the ids of all pages (one per line) in $T/walk, the page count in
# PAGES, and WALK_ERR non-empty on a protocol error.
walk() {
	_ns=$1
	_count=$2
	_extra=${3:-}
	: >"$T/walk"
	PAGES=0
	WALK_ERR=
	_cur=
	while [ $PAGES -lt 20 ]; do
		_q="count=$_count$_extra"
		[ -n "$_cur" ] && _q="$_q&cursor=$_cur"
		req GET "$AA/$_ns?$_q" -H "$ADMIN_AUTH"
		if [ "$STATUS" != 200 ]; then
			WALK_ERR="page $PAGES ($_q): status $STATUS body $BODY"
			return
		fi
		PAGES=$((PAGES + 1))
		_ids=$(jv '"\n".join((x if isinstance(x, str) else (x.get("tunnel_id") or x.get("account_id") or x.get("id"))) for x in j["'"$_ns"'s"])')
		_n=$(jv 'len(j["'"$_ns"'s"])')
		if [ "$_n" -gt "$_count" ]; then
			WALK_ERR="page $PAGES has $_n > $_count items"
			return
		fi
		[ -n "$_ids" ] && printf '%s\n' "$_ids" >>"$T/walk"
		_cur=$(jv 'j["cursor"] if j["cursor"] is not None else ""')
		_isnull=$(jv 'j["cursor"] is None')
		[ "$_isnull" = true ] && return
		if [ -z "$_cur" ]; then
			WALK_ERR="cursor neither null nor a non-empty string: $BODY"
			return
		fi
	done
	WALK_ERR="cursor never became null"
}

# each_once FILE WANT...: every wanted id exactly once and nothing else.
each_once() {
	_f=$1
	shift
	printf '%s\n' "$@" | sort >"$T/want"
	sort "$_f" >"$T/got"
	cmp -s "$T/want" "$T/got"
}

walk tunnel 2
result "tunnels count=2: walk ends with cursor null" "$([ -z "$WALK_ERR" ]; echo $?)" "$WALK_ERR"
result "tunnels count=2: 4 or more pages" "$([ "$PAGES" -ge 4 ]; echo $?)" "pages: $PAGES"
each_once "$T/walk" pt-tun1 pt-tun2 pt-tun3 pt-tun4 pt-tun5 pt-tun6 pt-tun7
result "tunnels count=2: each id exactly once" $? "$(tr '\n' ' ' <"$T/walk")"

walk tunnel 3 '&verbose=true'
result "tunnels count=3 verbose: walk ends" "$([ -z "$WALK_ERR" ]; echo $?)" "$WALK_ERR"
each_once "$T/walk" pt-tun1 pt-tun2 pt-tun3 pt-tun4 pt-tun5 pt-tun6 pt-tun7
result "tunnels count=3 verbose: each id exactly once" $? "$(tr '\n' ' ' <"$T/walk")"

walk account 2
result "accounts count=2: walk ends with cursor null" "$([ -z "$WALK_ERR" ]; echo $?)" "$WALK_ERR"
result "accounts count=2: 4 or more pages" "$([ "$PAGES" -ge 4 ]; echo $?)" "pages: $PAGES"
each_once "$T/walk" "$ACC1" "$ACC2" "$ACC3" "$ACC4" "$ACC5" "$ACC6" "$ACC7"
result "accounts count=2: each id exactly once" $? "$(tr '\n' ' ' <"$T/walk")"

walk account 1 '&verbose=true'
result "accounts count=1 verbose: walk ends" "$([ -z "$WALK_ERR" ]; echo $?)" "$WALK_ERR"
each_once "$T/walk" "$ACC1" "$ACC2" "$ACC3" "$ACC4" "$ACC5" "$ACC6" "$ACC7"
result "accounts count=1 verbose: each id exactly once" $? "$(tr '\n' ' ' <"$T/walk")"

# ---- page shapes ----
check_json "§5 example: count=2 on memory storage gives cursor \"Mg\"" GET "$AA/tunnel?count=2" 200 'j["cursor"]' Mg -H "$ADMIN_AUTH"
expect_true "page keys are cursor and tunnels; ids are strings" \
	'sorted(j) == ["cursor", "tunnels"] and len(j["tunnels"]) == 2 and all(isinstance(x, str) for x in j["tunnels"])'
FIRST=$(jv 'j["tunnels"]')
check_json "count=2&cursor=Mg continues after the first page" GET "$AA/tunnel?count=2&cursor=Mg" 200 \
	"not set(j['tunnels']) & set($FIRST) and len(j['tunnels']) == 2" true -H "$ADMIN_AUTH"
check_json "default count (25) returns all 7 with cursor null" GET "$AA/tunnel" 200 '[len(j["tunnels"]), j["cursor"]]' '[7,null]' -H "$ADMIN_AUTH"
check_json "cursor=0 means the start" GET "$AA/tunnel?count=2&cursor=0" 200 'j["tunnels"]' "$FIRST" -H "$ADMIN_AUTH"
check_json "empty cursor means the start" GET "$AA/tunnel?count=2&cursor=" 200 'j["tunnels"]' "$FIRST" -H "$ADMIN_AUTH"
check_json "count=100 accepted" GET "$AA/tunnel?count=100" 200 'len(j["tunnels"])' 7 -H "$ADMIN_AUTH"
check_json "count=1 gives one item" GET "$AA/tunnel?count=1" 200 'len(j["tunnels"])' 1 -H "$ADMIN_AUTH"
check_json "verbose=false gives ids" GET "$AA/tunnel?count=1&verbose=false" 200 'isinstance(j["tunnels"][0], str)' true -H "$ADMIN_AUTH"
check "verbose=true tunnel page 200" GET "$AA/tunnel?count=1&verbose=true" 200 -H "$ADMIN_AUTH"
expect_true "verbose=true gives tunnel-admin objects" \
	'sorted(j["tunnels"][0]) == ["account_id", "connection", "connections", "created_at", "ingress", "target", "transport", "tunnel_id", "updated_at"]'
expect_json "verbose=true count=1 cursor \"MQ\"" 'j["cursor"]' MQ
check "non-verbose account page 200" GET "$AA/account?count=1" 200 -H "$ADMIN_AUTH"
expect_true "non-verbose account items: reference placeholder shape" \
	'j["accounts"][0] == {"accountId": j["accounts"][0]["id"], "id": j["accounts"][0]["id"], "tunnels": [], "status": {"disabled": False}}'
check "verbose account page 200" GET "$AA/account?count=7&verbose=true" 200 -H "$ADMIN_AUTH"
expect_true "verbose account items: stored record {accountId,id,created_at,updated_at,tunnels,status}" \
	'all(sorted(a) == sorted(["accountId", "id", "created_at", "updated_at", "tunnels", "status"]) and a["accountId"] == a["id"] for a in j["accounts"]) and any(a["tunnels"] == ["pt-tun1","pt-tun2","pt-tun3","pt-tun4","pt-tun5","pt-tun6","pt-tun7"] for a in j["accounts"])'

# ---- query validation ----
bad() {
	check_json "$1" GET "$AA/$2" 400 'j["error"]' BAD_INPUT -H "$ADMIN_AUTH"
}
check_json "count=0 400" GET "$AA/tunnel?count=0" 400 'j' \
	'{"error":"BAD_INPUT","field":"\"count\" must be greater than or equal to 1"}' -H "$ADMIN_AUTH"
check_json "count=101 400" GET "$AA/tunnel?count=101" 400 'j["field"]' '"count" must be less than or equal to 100' -H "$ADMIN_AUTH"
bad "count=abc 400" "tunnel?count=abc"
bad "count=-1 400" "account?count=-1"
bad "count=2x 400" "tunnel?count=2x"
check_json "unknown query key 400" GET "$AA/tunnel?foo=1" 400 'j["field"]' '"foo" is not allowed' -H "$ADMIN_AUTH"
bad "unknown query key on accounts 400" "account?count=2&bar"
bad "verbose=maybe 400" "tunnel?verbose=maybe"
bad "verbose=1 400" "account?verbose=1"
check_json "cursor \"%%%\" (percent-encoded) 400 \"cursor\" is invalid" GET "$AA/tunnel?cursor=%25%25%25" 400 'j["field"]' \
	'"cursor" is invalid' -H "$ADMIN_AUTH"
check_json "cursor with bad percent-encoding 400" GET "$AA/tunnel?cursor=%%%" 400 'j["field"]' '"cursor" is invalid' -H "$ADMIN_AUTH"
check_json "cursor \"!!\" 400" GET "$AA/account?cursor=!!" 400 'j["field"]' '"cursor" is invalid' -H "$ADMIN_AUTH"
abc=$(printf abc | base64 | tr -d '=')
check_json "well-formed cursor the memory backend cannot use (\"abc\") 400" GET "$AA/tunnel?cursor=$abc" 400 \
	'j["field"]' '"cursor" is invalid' -H "$ADMIN_AUTH"
check "server still lists after bad cursors" GET "$AA/tunnel?count=2" 200 -H "$ADMIN_AUTH"

# ---- listing follows deletes ----
check "DELETE pt-tun4" DELETE "$AA/tunnel/pt-tun4" 204 -H "$ADMIN_AUTH"
walk tunnel 2
[ -z "$WALK_ERR" ] && each_once "$T/walk" pt-tun1 pt-tun2 pt-tun3 pt-tun5 pt-tun6 pt-tun7
result "after a delete the walk lists the 6 others exactly once" $? "$WALK_ERR $(tr '\n' ' ' <"$T/walk")"
finish
