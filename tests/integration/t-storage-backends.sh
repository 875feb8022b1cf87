#!/bin/sh
# PostgreSQL and Redis storage through the real binary (spec/storage.md §3,
# §5, §7.2, §7.3, §8.2, §9, §12; issue 5):
#   - the API flow (account, token, tunnel PUT/PATCH/GET/DELETE, admin
#     listing across pages) and the record layout in the database;
#   - two server processes sharing one database: reads across nodes, a
#     cursor from one node continued on the other, concurrent PATCHes and
#     concurrent tunnel creations for one account (no lost update), a lock
#     held from outside (row lock / lock:<key>) is waited for;
#   - persistence across a restart;
#   - outages on a private PostgreSQL / redis-server: API calls answer 503
#     with a JSON body within 6 s, the process survives, and service comes
#     back by itself when the backend returns (recovery time printed);
#   - startup with the backend down exits non-zero with a clear message.
#
# Needs EXPOSRD_TEST_PGSQL_URL and EXPOSRD_TEST_REDIS_URL
# (eval "$(sh ci/services.sh start)"); missing ones fail.  The shared
# servers are used through a database of their own (PostgreSQL database
# exposrd_it, Redis db 3), reset at the start; concurrent runs of this file
# take turns through a lock directory.  The fault tests run their own
# PostgreSQL (initdb in a temporary directory) and redis-server on free
# ports.  EXPOSRD_IT_BACKENDS="pgsql" or "redis" runs only one part.
. "$(dirname "$0")/lib.sh"

FEATURES=$("$EXPOSRD" --version 2>/dev/null | sed -n 's/^features: //p')
BACKENDS=${EXPOSRD_IT_BACKENDS:-pgsql redis}
CT='Content-Type: application/json'
PG_IT_DB=exposrd_it
REDIS_IT_DB=3
LOCKDIR=${TMPDIR:-/tmp}/exposrd-it-storage-backends.lock
HAVE_LOCK=
PRIV_PG_DIR=
PRIV_PG_UP=
PG_STOPPED=

now_ms() {
	date +%s%3N
}

# ---- cleanup: our private PostgreSQL, the lock (servers: lib_cleanup) ----

it_cleanup() {
	[ -n "$PG_STOPPED" ] && kill -CONT $PG_STOPPED 2>/dev/null
	if [ -n "$PRIV_PG_DIR" ]; then
		[ -n "$PRIV_PG_UP" ] && as_pg "$PG_BIN/pg_ctl -D $PRIV_PG_DIR/data -m immediate -w -t 10 stop" >/dev/null 2>&1
		rm -rf "$PRIV_PG_DIR"
	fi
	[ -n "$HAVE_LOCK" ] && rm -rf "$LOCKDIR"
}
trap 'it_cleanup; lib_cleanup' EXIT

# take_lock: one run of this file at a time uses exposrd_it / db 3.
take_lock() {
	_lt=0
	while ! mkdir "$LOCKDIR" 2>/dev/null; do
		_owner=$(cat "$LOCKDIR/pid" 2>/dev/null)
		if [ -n "$_owner" ] && ! kill -0 "$_owner" 2>/dev/null; then
			rm -rf "$LOCKDIR" # owner is gone
			continue
		fi
		if [ -z "$_owner" ] && [ $_lt -ge 100 ]; then
			rm -rf "$LOCKDIR" # no owner written in 5 s: stale
			continue
		fi
		_lt=$((_lt + 1))
		[ $_lt -ge 2400 ] && return 1 # 120 s
		sleep 0.05
	done
	echo $$ >"$LOCKDIR/pid"
	HAVE_LOCK=1
	[ $_lt -ge 20 ] && diag "waited $((_lt / 20)) s for another run of this test"
	return 0
}

# ---- two servers at once ----

# save_srv NAME / use_srv NAME: keep and restore the lib's current-server
# variables (SRV_PID, SRV_LOG, API, ADMIN).
save_srv() {
	eval "${1}_PID=\$SRV_PID ${1}_LOG=\$SRV_LOG ${1}_API=\$API ${1}_ADMIN=\$ADMIN"
}
use_srv() {
	eval "SRV_PID=\$${1}_PID SRV_LOG=\$${1}_LOG API=\$${1}_API ADMIN=\$${1}_ADMIN"
}

# ---- requests ----

# timed_req METHOD URL [curl args]: req with a 15 s bound; DT in ms.
timed_req() {
	_t0=$(now_ms)
	req "$@" --max-time 15
	DT=$(($(now_ms) - _t0))
}

# codes_ok FILE N: FILE holds exactly N lines, all "200" (or $3).
codes_ok() {
	[ "$(grep -c "^${3:-200}\$" "$1")" -eq "$2" ] && [ "$(wc -l <"$1")" -eq "$2" ]
}
codes_summary() {
	sort "$1" | uniq -c | tr -s ' ' | tr '\n' ';'
}

# walk NS COUNT STRICT BASE...: follow the admin cursor from the start
# until null, the pages alternating over the admin bases BASE...  Ids in
# $T/walk; WALK_ERR non-empty on a protocol error.  STRICT=1: pages of at
# most COUNT items (SQL); Redis pages may be larger (§4.4).
walk() {
	_ns=$1
	_count=$2
	_strict=$3
	shift 3
	: >"$T/walk"
	PAGES=0
	WALK_ERR=
	_cur=
	while [ $PAGES -lt 60 ]; do
		_base=$1
		shift
		set -- "$@" "$_base"
		_q="count=$_count"
		[ -n "$_cur" ] && _q="$_q&cursor=$_cur"
		req GET "$_base/v1/admin/$_ns?$_q" -H "$ADMIN_AUTH"
		if [ "$STATUS" != 200 ]; then
			WALK_ERR="page $PAGES ($_base $_q): status $STATUS body $BODY"
			return
		fi
		PAGES=$((PAGES + 1))
		_ids=$(jv '"\n".join((x if isinstance(x, str) else (x.get("tunnel_id") or x.get("account_id") or x.get("id"))) for x in j["'"$_ns"'s"])')
		_n=$(jv 'len(j["'"$_ns"'s"])')
		if [ "$_strict" = 1 ] && [ "$_n" -gt "$_count" ]; then
			WALK_ERR="page $PAGES has $_n > $_count items"
			return
		fi
		[ -n "$_ids" ] && printf '%s\n' "$_ids" >>"$T/walk"
		_cur=$(jv 'j["cursor"] if j["cursor"] is not None else ""')
		[ "$(jv 'j["cursor"] is None')" = true ] && return
		if [ -z "$_cur" ]; then
			WALK_ERR="cursor neither null nor a non-empty string: $BODY"
			return
		fi
	done
	WALK_ERR="cursor never became null"
}

# walk_has STRICT WANT...: the walk found exactly the ids WANT (STRICT=1:
# each exactly once; else duplicates allowed, as Redis SCAN may give).
walk_has() {
	_st=$1
	shift
	printf '%s\n' "$@" | sort >"$T/want"
	if [ "$_st" = 1 ]; then sort "$T/walk"; else sort -u "$T/walk"; fi >"$T/got"
	cmp -s "$T/want" "$T/got"
}

# ---- record layout (§5.2, §5.3), shared by both backends ----

# json_layout ACCOUNT-JSON-FILE TUNNEL-JSON-FILE ACC TUNNEL-ID TARGET INGRESS-URL
json_layout() {
	$PY - "$@" >"$T/layout" 2>&1 <<'PYEOF'
import json, re, sys
af, tf, acc, tid, target, iurl = sys.argv[1:7]
def load(f):
    try:
        return json.loads(open(f).read())
    except Exception as e:
        return "unparsable (%s): %r" % (e, open(f).read()[:300])
iso = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z$")
out = []
def chk(name, cond, detail):
    out.append(("PASS %s" % name) if cond else ("FAIL %s: %s" % (name, detail)))
a = load(af)
t = load(tf)
chk("account value is a JSON object", isinstance(a, dict), a)
chk("tunnel value is a JSON object", isinstance(t, dict), t)
if not isinstance(a, dict) or not isinstance(t, dict):
    print("\n".join(out)); sys.exit(0)
chk("account members accountId,created_at,id,status,tunnels,updated_at (§5.2)",
    sorted(a) == ["accountId", "created_at", "id", "status", "tunnels", "updated_at"], sorted(a))
chk("account accountId = id = key", a.get("accountId") == acc and a.get("id") == acc, a)
chk("account tunnels lists the tunnel", a.get("tunnels") == [tid], a.get("tunnels"))
chk("account status {disabled:false}", a.get("status") == {"disabled": False}, a.get("status"))
chk("account timestamps in ISO ms form",
    all(isinstance(a.get(k), str) and iso.match(a[k]) for k in ("created_at", "updated_at")), a)
chk("tunnel members account,created_at,id,ingress,target,transport,updated_at (§5.3)",
    sorted(t) == ["account", "created_at", "id", "ingress", "target", "transport", "updated_at"], sorted(t))
chk("tunnel id = key, account = owner", t.get("id") == tid and t.get("account") == acc, t)
tr = t.get("transport") or {}
chk("tunnel transport members max_connections,ssh,token,ws",
    sorted(tr) == ["max_connections", "ssh", "token", "ws"], sorted(tr))
tok = tr.get("token")
chk("tunnel transport.token 86 chars base64url",
    isinstance(tok, str) and re.match(r"^[A-Za-z0-9_-]{86}$", tok) is not None, tok)
chk("tunnel transport ws/ssh/max_connections values",
    tr.get("ws") == {"enabled": True} and tr.get("ssh") == {"enabled": False} and tr.get("max_connections") == 1, tr)
ih = (t.get("ingress") or {}).get("http") or {}
chk("tunnel ingress.http members alt_names,enabled,url,urls",
    sorted(ih) == ["alt_names", "enabled", "url", "urls"], sorted(ih))
chk("tunnel ingress.http values", ih.get("enabled") is True and ih.get("url") == iurl and
    ih.get("urls") == [iurl] and ih.get("alt_names") == [], ih)
isn = (t.get("ingress") or {}).get("sni")
chk("tunnel ingress.sni {enabled:false,urls:[]}", isn == {"enabled": False, "urls": []}, isn)
chk("tunnel target.url", t.get("target") == {"url": target}, t.get("target"))
chk("tunnel timestamps in ISO ms form",
    all(isinstance(t.get(k), str) and iso.match(t[k]) for k in ("created_at", "updated_at")), t)
print("\n".join(out))
PYEOF
	while IFS= read -r _line; do
		case $_line in
		"PASS "*) ok "$PFX: record ${_line#PASS }" ;;
		"FAIL "*)
			_l=${_line#FAIL }
			fail "$PFX: record ${_l%%: *}" "${_l#*: }"
			;;
		*) fail "$PFX: record check script" "$_line" ;;
		esac
	done <"$T/layout"
}

# ---- the shared part: API flow, layout, two nodes, concurrency, restart ----

# shared_flow: $PFX, $SURL (storage URL), layout_<be> called for records.
shared_flow() {
	_tf0=$(now_ms)
	start_std --storage-url "$SURL"
	save_srv A
	req POST "$API/v1/account"
	if [ "$STATUS" != 201 ]; then
		fail "$PFX: POST /v1/account (registration) 201" "status $STATUS body $BODY"
		stop_server "$PFX: node A exits 0"
		return
	fi
	ok "$PFX: POST /v1/account (registration) 201"
	ACC=$(jv 'j["account_id"]')
	ACC_HR=$(jv 'j["account_id_hr"]')
	TOKEN=$(printf %s "$ACC" | base64)
	AUTH="Authorization: Bearer $TOKEN"
	check_json "$PFX: GET token of the new account 201" GET "$API/v1/account/$ACC_HR/token" 201 'j["token"]' "$TOKEN"
	put_tunnel st-one '{"target":{"url":"http://example.com:3000"},"ingress":{"http":{"enabled":true}},"transport":{"ws":{"enabled":true}}}'
	result "$PFX: PUT st-one 200" "$([ "$STATUS" = 200 ]; echo $?)" "status $STATUS body $BODY"
	CREATED=$(jv 'j["created_at"]')
	TOKEN_WS=$(jv 'j["transport"]["ws"]["url"].split("t=")[1]')
	check_json "$PFX: GET st-one 200" GET "$API/v1/tunnel/st-one" 200 'j["target"]["url"]' http://example.com:3000 -H "$AUTH"
	check_json "$PFX: PATCH st-one target 200" PATCH "$API/v1/tunnel/st-one" 200 'j["target"]["url"]' http://patched.example:81/x \
		-H "$AUTH" -H "$CT" -d '{"target":{"url":"http://patched.example:81/x"}}'
	check_json "$PFX: GET after PATCH shows it" GET "$API/v1/tunnel/st-one" 200 'j["target"]["url"]' http://patched.example:81/x -H "$AUTH"
	put_tunnel st-gone '{}'
	result "$PFX: PUT st-gone 200" "$([ "$STATUS" = 200 ]; echo $?)" "status $STATUS body $BODY"
	check "$PFX: DELETE st-gone 204" DELETE "$API/v1/tunnel/st-gone" 204 -H "$AUTH"
	check_json "$PFX: GET after DELETE 404" GET "$API/v1/tunnel/st-gone" 404 'j["error"]' TUNNEL_NOT_FOUND -H "$AUTH"
	check_json "$PFX: DELETE removed the id from the account" GET "$ADMIN/v1/admin/account/$ACC" 200 'j["tunnels"]' '["st-one"]' -H "$ADMIN_AUTH"
	ACC1_JSON=$BODY

	# records written by the first requests, before anything else
	layout_$BE

	# ---- admin listing across pages (plus a second account) ----
	for _i in 1 2 3 4; do
		put_tunnel "st-page-$_i" '{}'
		[ "$STATUS" = 200 ] || fail "$PFX: setup PUT st-page-$_i" "status $STATUS body $BODY"
	done
	_acc_main=$ACC
	_auth_main=$AUTH
	_token_main=$TOKEN
	_hr_main=$ACC_HR
	new_account
	ACC2=$ACC
	ACC=$_acc_main
	AUTH=$_auth_main
	TOKEN=$_token_main
	ACC_HR=$_hr_main
	walk tunnel 2 "$STRICT" "$ADMIN"
	result "$PFX: admin tunnel list count=2 ends with cursor null" "$([ -z "$WALK_ERR" ]; echo $?)" "$WALK_ERR"
	walk_has "$STRICT" st-one st-page-1 st-page-2 st-page-3 st-page-4
	result "$PFX: admin tunnel list pages hold every tunnel" $? "got: $(tr '\n' ' ' <"$T/walk")"
	[ "$STRICT" = 1 ] && { [ "$PAGES" -ge 3 ]; result "$PFX: admin tunnel list took 3 or more pages" $? "pages: $PAGES"; }
	walk account 1 "$STRICT" "$ADMIN"
	result "$PFX: admin account list count=1 ends with cursor null" "$([ -z "$WALK_ERR" ]; echo $?)" "$WALK_ERR"
	walk_has "$STRICT" "$ACC" "$ACC2"
	result "$PFX: admin account list pages hold both accounts" $? "got: $(tr '\n' ' ' <"$T/walk")"

	# ---- a second process on the same database ----
	start_std --storage-url "$SURL"
	save_srv B
	check_json "$PFX: node B reads the tunnel written by A" GET "$B_API/v1/tunnel/st-one" 200 'j["target"]["url"]' http://patched.example:81/x -H "$AUTH"
	expect_json "$PFX: node B shows A's created_at" 'j["created_at"]' "$CREATED"
	check_json "$PFX: node B issues the token of an account made on A" GET "$B_API/v1/account/$ACC_HR/token" 201 'j["token"]' "$TOKEN"
	put_tunnel st-from-b '{"target":{"url":"http://from-b.example"}}' # $API is B now
	result "$PFX: PUT st-from-b through node B 200" "$([ "$STATUS" = 200 ]; echo $?)" "status $STATUS body $BODY"
	check_json "$PFX: node A reads the tunnel written by B" GET "$A_API/v1/tunnel/st-from-b" 200 'j["target"]["url"]' http://from-b.example -H "$AUTH"
	check "$PFX: DELETE through A of the tunnel made on B 204" DELETE "$A_API/v1/tunnel/st-from-b" 204 -H "$AUTH"
	check "$PFX: node B sees the DELETE" GET "$B_API/v1/tunnel/st-from-b" 404 -H "$AUTH"
	walk tunnel 2 "$STRICT" "$A_ADMIN" "$B_ADMIN"
	result "$PFX: tunnel list with pages alternating A/B ends" "$([ -z "$WALK_ERR" ]; echo $?)" "$WALK_ERR"
	walk_has "$STRICT" st-one st-page-1 st-page-2 st-page-3 st-page-4
	result "$PFX: a cursor from one node continues on the other" $? "got: $(tr '\n' ' ' <"$T/walk")"

	# ---- concurrent PATCHes of one tunnel from both processes ----
	_tc0=$(now_ms)
	: >"$T/pcodes"
	_pids=
	_i=1
	while [ $_i -le 20 ]; do
		for _n in a b; do
			if [ $_n = a ]; then _u=$A_API; else _u=$B_API; fi
			curl -s -o /dev/null -w '%{http_code}\n' --max-time 20 -X PATCH -H "$AUTH" -H "$CT" \
				-d "{\"target\":{\"url\":\"http://par-$_n-$_i.example\"}}" "$_u/v1/tunnel/st-one" >>"$T/pcodes" &
			_pids="$_pids $!"
		done
		_i=$((_i + 1))
	done
	wait $_pids
	codes_ok "$T/pcodes" 40
	result "$PFX: 40 parallel PATCHes (20 per node): all 200" $? "codes: $(codes_summary "$T/pcodes")"
	req GET "$A_API/v1/tunnel/st-one" -H "$AUTH"
	_fa=$(jv 'j["target"]["url"]')
	req GET "$B_API/v1/tunnel/st-one" -H "$AUTH"
	_fb=$(jv 'j["target"]["url"]')
	printf '%s\n' "$_fa" | grep -Eq '^http://par-[ab]-([1-9]|1[0-9]|20)\.example$' && [ "$_fa" = "$_fb" ]
	result "$PFX: after the PATCH race both nodes show one of the written values" $? "A: $_fa B: $_fb"

	# sequential writers on each node, different fields: a lost update
	# would leave A's last target or B's last ws flag overwritten.
	: >"$T/seqa"
	: >"$T/seqb"
	(
		_i=1
		while [ $_i -le 20 ]; do
			curl -s -o /dev/null -w '%{http_code}\n' --max-time 20 -X PATCH -H "$AUTH" -H "$CT" \
				-d "{\"target\":{\"url\":\"http://seq-a-$_i.example\"}}" "$A_API/v1/tunnel/st-one" >>"$T/seqa"
			_i=$((_i + 1))
		done
	) &
	_pa=$!
	(
		_i=1
		while [ $_i -le 20 ]; do
			if [ $((_i % 2)) = 0 ]; then _v=true; else _v=false; fi
			curl -s -o /dev/null -w '%{http_code}\n' --max-time 20 -X PATCH -H "$AUTH" -H "$CT" \
				-d "{\"transport\":{\"ws\":{\"enabled\":$_v}}}" "$B_API/v1/tunnel/st-one" >>"$T/seqb"
			_i=$((_i + 1))
		done
	) &
	_pb=$!
	wait $_pa $_pb
	codes_ok "$T/seqa" 20 && codes_ok "$T/seqb" 20
	result "$PFX: 2x20 interleaved PATCHes of different fields: all 200" $? \
		"A: $(codes_summary "$T/seqa") B: $(codes_summary "$T/seqb")"
	check_json "$PFX: no lost update: A's last target and B's last ws flag both kept" GET "$B_API/v1/tunnel/st-one" 200 \
		'[j["target"]["url"], j["transport"]["ws"]["enabled"]]' '["http://seq-a-20.example",true]' -H "$AUTH"

	# ---- concurrent tunnel creation for one account from both processes ----
	: >"$T/ccodes"
	_pids=
	_i=1
	while [ $_i -le 20 ]; do
		for _n in a b; do
			if [ $_n = a ]; then _u=$A_API; else _u=$B_API; fi
			curl -s -o /dev/null -w '%{http_code}\n' --max-time 20 -X PUT -H "$AUTH" -H "$CT" -d '{}' \
				"$_u/v1/tunnel/cr-$_n-$_i" >>"$T/ccodes" &
			_pids="$_pids $!"
		done
		_i=$((_i + 1))
	done
	wait $_pids
	codes_ok "$T/ccodes" 40
	result "$PFX: 40 parallel tunnel PUTs (20 per node, one account): all 200" $? "codes: $(codes_summary "$T/ccodes")"
	_wantset='sorted(["st-one"] + ["st-page-%d" % i for i in range(1, 5)] + ["cr-%s-%d" % (n, i) for n in "ab" for i in range(1, 21)])'
	check_json "$PFX: the account lists all 40 new tunnels (locked RMW across processes)" GET "$A_ADMIN/v1/admin/account/$ACC" 200 \
		"sorted(set(j['tunnels'])) == $_wantset and len(j['tunnels']) == 45" true -H "$ADMIN_AUTH"
	[ "$(jv "sorted(set(j['tunnels'])) == $_wantset")" = true ] ||
		diag "missing: $(jv "sorted(set($_wantset) - set(j['tunnels']))")"
	check_json "$PFX: node B shows the same account" GET "$B_ADMIN/v1/admin/account/$ACC" 200 \
		"sorted(j['tunnels']) == $_wantset" true -H "$ADMIN_AUTH"

	# ---- parallel DELETEs of those 40 from both processes ----
	: >"$T/dcodes"
	_pids=
	_i=1
	while [ $_i -le 20 ]; do
		for _n in a b; do
			# each tunnel is deleted through the other node than made it
			if [ $_n = a ]; then _u=$B_API; else _u=$A_API; fi
			curl -s -o /dev/null -w '%{http_code}\n' --max-time 20 -X DELETE -H "$AUTH" "$_u/v1/tunnel/cr-$_n-$_i" >>"$T/dcodes" &
			_pids="$_pids $!"
		done
		_i=$((_i + 1))
	done
	wait $_pids
	codes_ok "$T/dcodes" 40 204
	result "$PFX: 40 parallel DELETEs (20 per node): all 204" $? "codes: $(codes_summary "$T/dcodes")"
	check_json "$PFX: after the parallel DELETEs the account lists none of them" GET "$B_ADMIN/v1/admin/account/$ACC" 200 \
		"sorted(j['tunnels'])" '["st-one","st-page-1","st-page-2","st-page-3","st-page-4"]' -H "$ADMIN_AUTH"

	# ---- two accounts race for the same new ids through different nodes ----
	AUTH2="Authorization: Bearer $(printf %s "$ACC2" | base64)"
	: >"$T/rcodes"
	_pids=
	_i=1
	while [ $_i -le 10 ]; do
		curl -s -o /dev/null -w '%{http_code}\n' --max-time 20 -X PUT -H "$AUTH" -H "$CT" -d '{}' "$A_API/v1/tunnel/race-$_i" >>"$T/rcodes" &
		_pids="$_pids $!"
		curl -s -o /dev/null -w '%{http_code}\n' --max-time 20 -X PUT -H "$AUTH2" -H "$CT" -d '{}' "$B_API/v1/tunnel/race-$_i" >>"$T/rcodes" &
		_pids="$_pids $!"
		_i=$((_i + 1))
	done
	wait $_pids
	_codes=$(codes_summary "$T/rcodes")
	result "$PFX: two accounts on two nodes racing for 10 new ids: 10x 200 and 10x 403" "$([ "$_codes" = " 10 200; 10 403;" ]; echo $?)" "got: $_codes"
	req GET "$A_ADMIN/v1/admin/account/$ACC" -H "$ADMIN_AUTH"
	_ra=$(jv '[t for t in j["tunnels"] if t.startswith("race-")]')
	req GET "$B_ADMIN/v1/admin/account/$ACC2" -H "$ADMIN_AUTH"
	expect_true "$PFX: each raced id is listed by exactly one account" \
		'sorted(set(t for t in j["tunnels"] if t.startswith("race-")) | set('"$_ra"')) == sorted("race-%d" % i for i in range(1, 11)) and not set(j["tunnels"]) & set('"$_ra"')'
	: >"$T/rdcodes"
	_pids=
	_i=1
	while [ $_i -le 10 ]; do
		curl -s -o /dev/null -w '%{http_code}\n' --max-time 20 -X DELETE -H "$AUTH" "$B_API/v1/tunnel/race-$_i" >>"$T/rdcodes" &
		_pids="$_pids $!"
		curl -s -o /dev/null -w '%{http_code}\n' --max-time 20 -X DELETE -H "$AUTH2" "$A_API/v1/tunnel/race-$_i" >>"$T/rdcodes" &
		_pids="$_pids $!"
		_i=$((_i + 1))
	done
	wait $_pids
	_codes=$(codes_summary "$T/rdcodes")
	result "$PFX: both owners DELETE the raced ids crosswise: 10x 204 and 10x 404" "$([ "$_codes" = " 10 204; 10 404;" ]; echo $?)" "got: $_codes"
	check_json "$PFX: the second account owns nothing afterwards" GET "$A_ADMIN/v1/admin/account/$ACC2" 200 'j["tunnels"]' '[]' -H "$ADMIN_AUTH"
	diag "$PFX: concurrency section took $(($(now_ms) - _tc0)) ms"

	# ---- an update waits for a lock held from outside (reference node) ----
	hold_lock_$BE st-one 1500
	if [ -n "$HOLD_ERR" ]; then
		fail "$PFX: hold the st-one lock from outside" "$HOLD_ERR"
	else
		timed_req PATCH "$A_API/v1/tunnel/st-one" -H "$AUTH" -H "$CT" -d '{"target":{"url":"http://after-lock.example"}}'
		[ "$STATUS" = 200 ] && [ "$DT" -ge 900 ]
		result "$PFX: PATCH waits for the outside lock (1.5 s) and then succeeds" $? "status $STATUS after $DT ms body $BODY"
		diag "$PFX: PATCH under an outside lock answered after $DT ms"
		wait_holder_$BE
		check_json "$PFX: the write after the lock is stored" GET "$B_API/v1/tunnel/st-one" 200 'j["target"]["url"]' \
			http://after-lock.example -H "$AUTH"
	fi
	extra_checks_$BE

	# ---- restart: both processes stop, a new one reads everything ----
	use_srv B
	stop_server "$PFX: node B exits 0"
	use_srv A
	stop_server "$PFX: node A exits 0"
	start_std --storage-url "$SURL"
	check_json "$PFX: after restart: token route 201" GET "$API/v1/account/$ACC_HR/token" 201 'j["token"]' "$TOKEN"
	check_json "$PFX: after restart: GET st-one keeps the last write" GET "$API/v1/tunnel/st-one" 200 'j["target"]["url"]' \
		http://after-lock.example -H "$AUTH"
	expect_json "$PFX: after restart: created_at kept" 'j["created_at"]' "$CREATED"
	check_json "$PFX: after restart: deleted tunnel stays deleted" GET "$API/v1/tunnel/st-gone" 404 'j["error"]' TUNNEL_NOT_FOUND -H "$AUTH"
	check_json "$PFX: after restart: account lists its 5 tunnels" GET "$ADMIN/v1/admin/account/$ACC" 200 'sorted(j["tunnels"])' \
		'["st-one","st-page-1","st-page-2","st-page-3","st-page-4"]' -H "$ADMIN_AUTH"
	check "$PFX: after restart: PATCH works" PATCH "$API/v1/tunnel/st-page-1" 200 -H "$AUTH" -H "$CT" -d '{"target":{"url":"http://restarted.example"}}'
	check "$PFX: after restart: DELETE works" DELETE "$API/v1/tunnel/st-page-2" 204 -H "$AUTH"
	stop_server "$PFX: restarted node exits 0"
	diag "$PFX: shared-database part took $(($(now_ms) - _tf0)) ms"
}

# ---- outages on a private backend ----

# outage_req NAME METHOD URL [curl args]: 503 with a JSON "error" in <= 6 s.
outage_req() {
	_on=$1
	shift
	timed_req "$@"
	_err=$(jv 'j.get("error") if isinstance(j, dict) else None')
	[ "$STATUS" = 503 ] && [ -n "$_err" ] && [ "$_err" != None ] && [ "$DT" -le 6000 ]
	result "$PFX: outage: $_on -> 503 JSON within 6 s" $? "status $STATUS after $DT ms body '$BODY'"
	OUT_TIMES="$OUT_TIMES $DT"
}

# outage_checks: the backend is down; FAPI/FADMIN/FAUTH from fault_flow.
outage_checks() {
	OUT_TIMES=
	outage_req "GET tunnel" GET "$API/v1/tunnel/fault-one" -H "$AUTH"
	outage_req "PUT new tunnel" PUT "$API/v1/tunnel/fault-two" -H "$AUTH" -H "$CT" -d '{}'
	outage_req "PATCH tunnel" PATCH "$API/v1/tunnel/fault-one" -H "$AUTH" -H "$CT" -d '{"target":{"url":"http://lost.example"}}'
	outage_req "DELETE tunnel" DELETE "$API/v1/tunnel/fault-one" -H "$AUTH"
	outage_req "POST /v1/account" POST "$API/v1/account"
	outage_req "admin tunnel list" GET "$ADMIN/v1/admin/tunnel" -H "$ADMIN_AUTH"
	outage_req "GET tunnel again" GET "$API/v1/tunnel/fault-one" -H "$AUTH"
	diag "$PFX: outage answer times (ms):$OUT_TIMES"
	kill -0 "$SRV_PID" 2>/dev/null
	result "$PFX: outage: the process is still running" $?
	check "$PFX: outage: admin /ping still answers" GET "$ADMIN/ping" 200
}

# recover NAME: poll GET fault-one until 200 (15 s at most); REC_MS from T_UP.
recover() {
	_rdl=$(($(now_ms) + 15000))
	_rs=
	while [ "$(now_ms)" -lt $_rdl ]; do
		req GET "$API/v1/tunnel/fault-one" -H "$AUTH" --max-time 7
		_rs="$_rs $STATUS"
		[ "$STATUS" = 200 ] && break
		sleep 0.05
	done
	REC_MS=$(($(now_ms) - T_UP))
	_rs=$(printf '%s\n' $_rs | uniq -c | tr -s ' ' | tr '\n' ';')
	if [ "$STATUS" = 200 ]; then
		diag "$PFX: $1: first successful API call $REC_MS ms after the backend was back (statuses: $_rs)"
	fi
	[ "$STATUS" = 200 ] && [ "$REC_MS" -le 5000 ]
	result "$PFX: $1: service resumes without a restart within 5 s" $? "status $STATUS after $REC_MS ms; statuses $_rs"
	RECOVERY="$RECOVERY $BE/$1=${REC_MS}ms"
}

# after_recovery: nothing acknowledged was lost, writes work again.
after_recovery() {
	check_json "$PFX: $1: the tunnel from before the outage is intact" GET "$API/v1/tunnel/fault-one" 200 'j["target"]["url"]' \
		http://before.example -H "$AUTH"
	put_tunnel "fault-new-$2" '{}'
	result "$PFX: $1: PUT works again" "$([ "$STATUS" = 200 ]; echo $?)" "status $STATUS body $BODY"
	check "$PFX: $1: POST /v1/account works again" POST "$API/v1/account" 201
}

# fault_flow: $FURL (private backend), backend_stop_<be>/backend_start_<be>.
fault_flow() {
	_tf0=$(now_ms)
	start_std --storage-url "$FURL"
	new_account || { stop_server "$PFX: fault node exits 0"; return; }
	put_tunnel fault-one '{"target":{"url":"http://before.example"}}'
	result "$PFX: fault setup: PUT fault-one 200" "$([ "$STATUS" = 200 ]; echo $?)" "status $STATUS body $BODY"

	# connections dropped under a running server (backend restart, proxy)
	drop_conns_$BE
	_dl=$(($(now_ms) + 3000))
	_codes=
	while :; do
		req GET "$API/v1/tunnel/fault-one" -H "$AUTH" --max-time 7
		_codes="$_codes $STATUS"
		[ "$STATUS" = 200 ] && break
		[ "$(now_ms)" -ge $_dl ] && break
		sleep 0.05
	done
	[ "$STATUS" = 200 ]
	result "$PFX: connections killed by the server: API works again within 3 s" $? "statuses:$_codes"
	diag "$PFX: statuses after the backend dropped our connections:$_codes"

	# the backend stops
	backend_stop_$BE
	if [ -n "$BK_ERR" ]; then
		fail "$PFX: stop the private backend" "$BK_ERR"
	else
		outage_checks
	fi
	backend_start_$BE
	if [ -n "$BK_ERR" ]; then
		fail "$PFX: start the private backend again" "$BK_ERR"
	else
		recover "restart of the backend"
		after_recovery "after the backend restart" 1
	fi
	blackhole_$BE
	stop_server "$PFX: fault node exits 0 after the outages"
	diag "$PFX: fault part took $(($(now_ms) - _tf0)) ms"
}

# startup_down URL ENVNAME WORD: backend not reachable at startup (@PORT@
# in URL: a free port nothing listens on).
startup_down() {
	_ports=$(free_ports)
	_p=${_ports%% *}
	_ap=${_ports#* }
	_ap=${_ap%% *}
	_url=$(printf %s "$1" | sed "s/@PORT@/$_p/")
	_log=$T/startup-down-$BE.log
	_t0=$(now_ms)
	env "$2=1500" timeout 30 "$EXPOSRD" --storage-url "$_url" --api-port "$_ap" \
		--ingress-http-port "$_ap" --ingress-http-url "http://localhost:$_ap" >"$_log" 2>&1
	_sdrc=$?
	_dt=$(($(now_ms) - _t0))
	[ $_sdrc -ne 0 ] && [ $_sdrc -ne 124 ] && [ $_dt -le 8000 ]
	result "$PFX: startup with the backend down exits non-zero after the bounded retry" $? "exit status $_sdrc after $_dt ms" "$(tail -5 "$_log" | cut -c1-400)"
	diag "$PFX: startup with the backend down: exit status $_sdrc after $_dt ms"
	grep -q 'Failed to start up' "$_log" && grep -qi "$3" "$_log" && grep -q "127.0.0.1:$_p" "$_log"
	result "$PFX: startup failure message names the backend and its address" $? "$(tail -4 "$_log" | cut -c1-400)"
	if grep -q 'Sanitizer\|runtime error:' "$_log"; then
		fail "$PFX: startup failure without sanitizer reports" "$(grep -A20 'Sanitizer\|runtime error:' "$_log" | head -40)"
	fi
}

# ---------------------------------------------------------------------------
# PostgreSQL
# ---------------------------------------------------------------------------

as_pg() {
	if [ "$(id -u)" -eq 0 ]; then
		su postgres -s /bin/sh -c "$*"
	else
		sh -c "$*"
	fi
}

# pg_url_db URL DB: the URL with another database.
pg_url_db() {
	$PY -c 'import sys, urllib.parse as u
p = u.urlsplit(sys.argv[1])
print(u.urlunsplit((p.scheme, p.netloc, "/" + sys.argv[2], p.query, "")))' "$1" "$2"
}

psql_q() { # psql_q URL SQL: one value, unaligned
	"$PG_BIN/psql" "$1" -X -A -t -q -v ON_ERROR_STOP=1 -c "$2" 2>&1
}

layout_pgsql() {
	_u=$SURL
	# columns, keys, indexes (§7.2)
	_tables=$(psql_q "$_u" "SELECT string_agg(table_name, ' ' ORDER BY table_name) FROM information_schema.tables WHERE table_schema = current_schema()")
	result "$PFX: tables account, ingress_altnames, tunnel" "$([ "$_tables" = "account ingress_altnames tunnel" ]; echo $?)" "got: $_tables"
	for _tb in account tunnel ingress_altnames; do
		_cols=$(psql_q "$_u" "SELECT string_agg(column_name || ':' || data_type || ':' || is_nullable, ' ' ORDER BY ordinal_position) FROM information_schema.columns WHERE table_schema = current_schema() AND table_name = '$_tb'")
		result "$PFX: $_tb columns key text, value jsonb NOT NULL, modified_at timestamp NOT NULL, expires_at timestamp NULL" \
			"$([ "$_cols" = "key:text:NO value:jsonb:NO modified_at:timestamp without time zone:NO expires_at:timestamp without time zone:YES" ]; echo $?)" "got: $_cols"
		_pk=$(psql_q "$_u" "SELECT string_agg(a.attname, ',') FROM pg_index i JOIN pg_attribute a ON a.attrelid = i.indrelid AND a.attnum = ANY(i.indkey) WHERE i.indrelid = '$_tb'::regclass AND i.indisprimary")
		_idx=$(psql_q "$_u" "SELECT string_agg(indexname || '(' || substring(indexdef from '\\((.*)\\)') || ')', ' ' ORDER BY indexname) FROM pg_indexes WHERE schemaname = current_schema() AND tablename = '$_tb' AND indexname LIKE 'idx_%'")
		result "$PFX: $_tb primary key (key), indexes idx_${_tb}_expires_at/_modified_at" \
			"$([ "$_pk" = key ] && [ "$_idx" = "idx_${_tb}_expires_at(expires_at) idx_${_tb}_modified_at(modified_at)" ]; echo $?)" "pk: $_pk indexes: $_idx"
	done
	_rows=$(psql_q "$_u" "SELECT (SELECT count(*) FROM account) || ' ' || (SELECT count(*) FROM tunnel) || ' ' || (SELECT count(*) FROM ingress_altnames)")
	result "$PFX: rows: 1 account, 1 tunnel (the deleted one is gone), 0 alt names" "$([ "$_rows" = "1 1 0" ]; echo $?)" "got: $_rows"
	_times=$(psql_q "$_u" "SELECT string_agg(DISTINCT (jsonb_typeof(value) || ',' || (expires_at IS NULL) || ',' || (modified_at BETWEEN NOW()::timestamp - interval '120 s' AND NOW()::timestamp + interval '5 s')), ' ') FROM (SELECT value, modified_at, expires_at FROM account UNION ALL SELECT value, modified_at, expires_at FROM tunnel) r")
	result "$PFX: values are JSONB objects, expires_at NULL, modified_at = NOW() in the session time zone" \
		"$([ "$_times" = "object,true,true" ]; echo $?)" "got: $_times"
	_idok=$(psql_q "$_u" "SELECT (SELECT value->>'accountId' = key AND value->>'id' = key AND value->'tunnels' = '[\"st-one\"]'::jsonb FROM account WHERE key = '$ACC') || ',' || (SELECT value->>'id' = key AND value->>'account' = '$ACC' FROM tunnel WHERE key = 'st-one')")
	result "$PFX: SQL view of the JSONB: account accountId/id/tunnels, tunnel id/account" "$([ "$_idok" = "true,true" ]; echo $?)" "got: $_idok"
	psql_q "$_u" "SELECT value::text FROM account WHERE key = '$ACC'" >"$T/acc.json"
	psql_q "$_u" "SELECT value::text FROM tunnel WHERE key = 'st-one'" >"$T/tun.json"
	json_layout "$T/acc.json" "$T/tun.json" "$ACC" st-one http://patched.example:81/x "http://st-one.localhost:$API_PORT/"
}

# hold_lock_pgsql KEY MS: a row lock (SELECT ... FOR UPDATE) held MS ms by
# another session, like a reference node in an update.
hold_lock_pgsql() {
	HOLD_ERR=
	rm -f "$T/pg-locked"
	_s=$(awk "BEGIN { printf \"%.3f\", $2 / 1000 }")
	cat >"$T/hold.sql" <<EOF
BEGIN;
SELECT 1 FROM tunnel WHERE key = '$1' FOR UPDATE;
\\! touch $T/pg-locked
SELECT pg_sleep($_s);
COMMIT;
EOF
	"$PG_BIN/psql" "$SURL" -X -q -v ON_ERROR_STOP=1 -f "$T/hold.sql" >"$T/hold.out" 2>&1 &
	HOLD_PID=$!
	ALL_PIDS="$ALL_PIDS $HOLD_PID"
	_w=0
	while [ ! -f "$T/pg-locked" ] && [ $_w -lt 200 ]; do
		sleep 0.05
		_w=$((_w + 1))
	done
	[ -f "$T/pg-locked" ] || HOLD_ERR="psql did not take the row lock in 10 s: $(cat "$T/hold.out")"
}
wait_holder_pgsql() {
	wait_rc "$HOLD_PID" 10
	[ "$WAIT_RC" = 0 ] || diag "lock holder psql: $WAIT_RC $(cat "$T/hold.out")"
}

extra_checks_pgsql() {
	# no transaction left open by the server after all of this (§11 item 4)
	_idle=$(psql_q "$SURL" "SELECT count(*) FROM pg_stat_activity WHERE datname = current_database() AND state LIKE 'idle in transaction%'")
	result "$PFX: no connection left idle in a transaction" "$([ "$_idle" = 0 ]; echo $?)" "got: $_idle"
	_n=$(psql_q "$SURL" "SELECT count(*) FROM tunnel")
	result "$PFX: 5 tunnel rows left (the deleted ones are gone)" "$([ "$_n" = 5 ]; echo $?)" "got: $_n"
	_nconn=$(psql_q "$SURL" "SELECT count(*) FROM pg_stat_activity WHERE datname = current_database() AND pid <> pg_backend_pid()")
	result "$PFX: two nodes use at most 2 x 10 connections (pool size)" "$([ "$_nconn" -le 20 ] 2>/dev/null; echo $?)" "got: $_nconn"
	diag "$PFX: connections of both nodes after the load: $_nconn"
}

drop_conns_pgsql() {
	_k=$(psql_q "$FURL" "SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity WHERE datname = current_database() AND pid <> pg_backend_pid() AND backend_type = 'client backend'")
	diag "$PFX: terminated $_k server connection(s)"
}

priv_pg_ctl() { # start|stop
	if [ "$1" = start ]; then
		as_pg "$PG_BIN/pg_ctl -D $PRIV_PG_DIR/data -l $PRIV_PG_DIR/pg.log -w -t 30 -o '-p $PRIV_PG_PORT -k $PRIV_PG_DIR -c listen_addresses=127.0.0.1 -c fsync=off' start" >/dev/null 2>&1
	else
		as_pg "$PG_BIN/pg_ctl -D $PRIV_PG_DIR/data -m fast -w -t 30 stop" >/dev/null 2>&1
	fi
}

backend_stop_pgsql() {
	BK_ERR=
	if priv_pg_ctl stop; then PRIV_PG_UP=; else BK_ERR="pg_ctl stop failed: $(tail -5 "$PRIV_PG_DIR/pg.log")"; fi
}
backend_start_pgsql() {
	BK_ERR=
	if priv_pg_ctl start; then
		PRIV_PG_UP=1
		T_UP=$(now_ms)
	else
		BK_ERR="pg_ctl start failed: $(tail -5 "$PRIV_PG_DIR/pg.log")"
	fi
}
# The private PostgreSQL's processes by PID: the postmaster (first line of
# postmaster.pid) and its children (parent PID from /proc).
priv_pg_pids() {
	_pm=$(head -1 "$PRIV_PG_DIR/data/postmaster.pid" 2>/dev/null)
	[ -n "$_pm" ] || return
	echo "$_pm"
	for _st in /proc/[0-9]*/stat; do
		# field 4 is the parent PID (the name in field 2 has no blanks here)
		awk -v pm="$_pm" '$4 == pm { print $1 }' "$_st" 2>/dev/null
	done
}

# A black-holed database: SIGSTOP every process of the private PostgreSQL
# (the postmaster first, so it starts no new ones), so nothing answers.
blackhole_pgsql() {
	PG_STOPPED=$(priv_pg_pids | tr '\n' ' ')
	if [ -z "$PG_STOPPED" ]; then
		fail "$PFX: black hole: PIDs of the private PostgreSQL found"
		return
	fi
	kill -STOP $PG_STOPPED
	OUT_TIMES=
	outage_req "PostgreSQL stopped (SIGSTOP): GET tunnel" GET "$API/v1/tunnel/fault-one" -H "$AUTH"
	outage_req "PostgreSQL stopped (SIGSTOP): PUT new tunnel" PUT "$API/v1/tunnel/fault-three" -H "$AUTH" -H "$CT" -d '{}'
	diag "$PFX: answer times with a black-holed PostgreSQL (ms):$OUT_TIMES"
	kill -0 "$SRV_PID" 2>/dev/null
	result "$PFX: black hole: the process is still running" $?
	kill -CONT $PG_STOPPED
	PG_STOPPED=
	T_UP=$(now_ms)
	recover "after SIGCONT"
	after_recovery "after SIGCONT" 2
}

pgsql_part() {
	BE=pgsql
	PFX=pgsql
	STRICT=1
	case " $FEATURES " in
	*" pgsql "*) ;;
	*)
		echo "ok - $TNAME: pgsql # SKIP build without PostgreSQL (WITH_PGSQL=0)"
		return
		;;
	esac
	PG_BIN=${EXPOSRD_PG_BIN:-}
	if [ -z "$PG_BIN" ]; then
		for _d in /usr/lib/postgresql/*/bin; do
			[ -x "$_d/pg_ctl" ] && PG_BIN=$_d
		done
	fi
	if [ -z "$PG_BIN" ] || [ ! -x "$PG_BIN/psql" ]; then
		fail "pgsql: PostgreSQL client programs found (EXPOSRD_PG_BIN or /usr/lib/postgresql/*/bin)"
		return
	fi
	if [ -z "${EXPOSRD_TEST_PGSQL_URL:-}" ]; then
		fail "pgsql: EXPOSRD_TEST_PGSQL_URL is set" \
			"run the storage tests with the test servers: eval \"\$(sh ci/services.sh start)\"" \
			"(tests/check.sh does this; the tests do not skip without a database)"
	else
		SURL=$(pg_url_db "$EXPOSRD_TEST_PGSQL_URL" "$PG_IT_DB")
		_maint=$(pg_url_db "$EXPOSRD_TEST_PGSQL_URL" postgres)
		_r=$("$PG_BIN/psql" "$_maint" -X -q -v ON_ERROR_STOP=1 -c "DROP DATABASE IF EXISTS $PG_IT_DB WITH (FORCE)" \
			-c "CREATE DATABASE $PG_IT_DB" 2>&1)
		if [ $? -ne 0 ]; then
			fail "pgsql: (re)create database $PG_IT_DB on the test server" "$_r" "EXPOSRD_TEST_PGSQL_URL=$EXPOSRD_TEST_PGSQL_URL"
		else
			ok "pgsql: fresh database $PG_IT_DB on the test server"
			shared_flow
		fi
	fi

	# ---- outages on a private PostgreSQL ----
	_tp0=$(now_ms)
	PRIV_PG_DIR=$(mktemp -d "${TMPDIR:-/tmp}/exposrd-it-pg.XXXXXX")
	[ "$(id -u)" -eq 0 ] && chown postgres "$PRIV_PG_DIR"
	PRIV_PG_PORT=$(free_ports | cut -d' ' -f1)
	if ! as_pg "$PG_BIN/initdb -D $PRIV_PG_DIR/data -A trust -U postgres -N" >"$T/initdb.log" 2>&1; then
		fail "pgsql: initdb of a private PostgreSQL" "$(tail -10 "$T/initdb.log")"
	else
		backend_start_pgsql
		if [ -n "$BK_ERR" ]; then
			fail "pgsql: start a private PostgreSQL" "$BK_ERR"
		else
			diag "pgsql: private PostgreSQL on port $PRIV_PG_PORT ready after $(($(now_ms) - _tp0)) ms"
			FURL=postgres://postgres@127.0.0.1:$PRIV_PG_PORT/postgres
			fault_flow
		fi
	fi
	startup_down "postgres://postgres@127.0.0.1:@PORT@/exposrd_it" EXPOSRD_PGSQL_STARTUP_TIMEOUT_MS postgres
}

# ---------------------------------------------------------------------------
# Redis
# ---------------------------------------------------------------------------

# redis_url_db URL DB: the URL with another db number.
redis_url_db() {
	$PY -c 'import sys, urllib.parse as u
p = u.urlsplit(sys.argv[1])
print(u.urlunsplit((p.scheme, p.netloc, "/" + sys.argv[2], "", "")))' "$1" "$2"
}

rcli() { # rcli ARGS...: redis-cli on the test db, raw replies
	redis-cli -u "$SURL" --raw "$@" 2>/dev/null
}

layout_redis() {
	_keys=$(rcli KEYS '*' | sort | tr '\n' ' ')
	result "$PFX: keys are exactly account:<id> and tunnel:<id> (§7.3)" \
		"$([ "$_keys" = "account:$ACC tunnel:st-one " ]; echo $?)" "got: $_keys"
	_ty=$(rcli TYPE "account:$ACC")/$(rcli TYPE tunnel:st-one)
	_ttl=$(rcli TTL "account:$ACC")/$(rcli TTL tunnel:st-one)
	result "$PFX: records are STRINGs without expiry" "$([ "$_ty/$_ttl" = "string/string/-1/-1" ]; echo $?)" "types $_ty ttl $_ttl"
	rcli GET "account:$ACC" >"$T/acc.json"
	rcli GET tunnel:st-one >"$T/tun.json"
	# compact JSON text like JSON.stringify (no blanks outside strings)
	$PY -c 'import json, sys
for f in sys.argv[1:]:
    s = open(f).read().rstrip("\n")
    assert json.dumps(json.loads(s), separators=(",", ":")) == s, s[:200]' "$T/acc.json" "$T/tun.json" 2>"$T/compact.err"
	result "$PFX: values are compact JSON text" $? "$(tail -2 "$T/compact.err")"
	json_layout "$T/acc.json" "$T/tun.json" "$ACC" st-one http://patched.example:81/x "http://st-one.localhost:$API_PORT/"
}

# hold_lock_redis KEY MS: lock:<key> taken the reference way (SET NX PX).
hold_lock_redis() {
	HOLD_ERR=
	_r=$(rcli SET "lock:$1" it-test-holder-token NX PX "$2")
	[ "$_r" = OK ] || HOLD_ERR="SET lock:$1 NX PX $2 answered '$_r'"
}
wait_holder_redis() {
	:
}

extra_checks_redis() {
	# every lease released (compare-and-delete), none left to expire
	_dl=$(($(now_ms) + 500))
	while :; do
		_locks=$(rcli KEYS 'lock:*' | sed '/^$/d' | tr '\n' ' ')
		[ -z "$_locks" ] && break
		[ "$(now_ms)" -ge $_dl ] && break
		sleep 0.05
	done
	result "$PFX: no lock:* keys left after the updates (released, not left to expire)" "$([ -z "$_locks" ]; echo $?)" "got: $_locks"
	_other=$(rcli KEYS '*' | sed '/^$/d' | grep -Ev '^(account|tunnel):' | tr '\n' ' ')
	result "$PFX: only account:* and tunnel:* keys in the db" "$([ -z "$_other" ]; echo $?)" "others: $_other"
	_n=$(rcli KEYS 'tunnel:*' | wc -l)
	result "$PFX: 5 tunnel:* keys left (the deleted ones are gone)" "$([ "$_n" -eq 5 ]; echo $?)" "got: $_n"
}

priv_redis_start() {
	redis-server --port "$PRIV_REDIS_PORT" --bind 127.0.0.1 --save '' --appendonly no \
		--dir "$PRIV_REDIS_DIR" --dbfilename dump.rdb >"$PRIV_REDIS_DIR/redis-$1.log" 2>&1 &
	PRIV_REDIS_PID=$!
	ALL_PIDS="$ALL_PIDS $PRIV_REDIS_PID"
}
priv_redis_ready() {
	_w=0
	while [ $_w -lt 200 ]; do
		[ "$(redis-cli -p "$PRIV_REDIS_PORT" ping 2>/dev/null)" = PONG ] && return 0
		kill -0 "$PRIV_REDIS_PID" 2>/dev/null || return 1
		sleep 0.05
		_w=$((_w + 1))
	done
	return 1
}

drop_conns_redis() {
	_k=$(redis-cli -p "$PRIV_REDIS_PORT" CLIENT KILL TYPE normal SKIPME yes 2>&1)
	diag "$PFX: CLIENT KILL: $_k"
}

# stop: SHUTDOWN SAVE (the data comes back with the restart, so the test
# can tell that nothing acknowledged was lost), then wait for the PID.
backend_stop_redis() {
	BK_ERR=
	redis-cli -p "$PRIV_REDIS_PORT" SHUTDOWN SAVE >/dev/null 2>&1
	wait_rc "$PRIV_REDIS_PID" 10
	[ "$WAIT_RC" = timeout ] && BK_ERR="redis-server $PRIV_REDIS_PID did not stop"
}
backend_start_redis() {
	BK_ERR=
	priv_redis_start again
	if priv_redis_ready; then T_UP=$(now_ms); else BK_ERR="redis-server did not come back: $(tail -5 "$PRIV_REDIS_DIR/redis-again.log")"; fi
}

# A black-holed backend: SIGSTOP redis-server, so requests get no answer.
blackhole_redis() {
	kill -STOP "$PRIV_REDIS_PID"
	OUT_TIMES=
	outage_req "redis-server stopped (SIGSTOP): GET tunnel" GET "$API/v1/tunnel/fault-one" -H "$AUTH"
	outage_req "redis-server stopped (SIGSTOP): PATCH tunnel" PATCH "$API/v1/tunnel/fault-one" -H "$AUTH" -H "$CT" -d '{"target":{"url":"http://lost.example"}}'
	diag "$PFX: answer times with a black-holed redis (ms):$OUT_TIMES"
	kill -0 "$SRV_PID" 2>/dev/null
	result "$PFX: black hole: the process is still running" $?
	kill -CONT "$PRIV_REDIS_PID"
	T_UP=$(now_ms)
	recover "after SIGCONT"
	after_recovery "after SIGCONT" 2
}

redis_part() {
	BE=redis
	PFX=redis
	STRICT=0
	case " $FEATURES " in
	*" redis "*) ;;
	*)
		echo "ok - $TNAME: redis # SKIP build without Redis (WITH_REDIS=0)"
		return
		;;
	esac
	if ! command -v redis-server >/dev/null 2>&1 || ! command -v redis-cli >/dev/null 2>&1; then
		fail "redis: redis-server and redis-cli installed"
		return
	fi
	if [ -z "${EXPOSRD_TEST_REDIS_URL:-}" ]; then
		fail "redis: EXPOSRD_TEST_REDIS_URL is set" \
			"run the storage tests with the test servers: eval \"\$(sh ci/services.sh start)\"" \
			"(tests/check.sh does this; the tests do not skip without a database)"
	else
		SURL=$(redis_url_db "$EXPOSRD_TEST_REDIS_URL" "$REDIS_IT_DB")
		_r=$(redis-cli -u "$SURL" FLUSHDB 2>&1)
		if [ "$_r" != OK ]; then
			fail "redis: FLUSHDB of db $REDIS_IT_DB on the test server" "$_r" "EXPOSRD_TEST_REDIS_URL=$EXPOSRD_TEST_REDIS_URL"
		else
			ok "redis: empty db $REDIS_IT_DB on the test server"
			shared_flow
		fi
	fi

	# ---- outages on a private redis-server ----
	PRIV_REDIS_DIR=$T/redis
	mkdir -p "$PRIV_REDIS_DIR"
	PRIV_REDIS_PORT=$(free_ports | cut -d' ' -f1)
	priv_redis_start first
	if ! priv_redis_ready; then
		fail "redis: start a private redis-server" "$(tail -5 "$PRIV_REDIS_DIR/redis-first.log")"
	else
		FURL=redis://127.0.0.1:$PRIV_REDIS_PORT/0
		fault_flow
		kill "$PRIV_REDIS_PID" 2>/dev/null
		wait_rc "$PRIV_REDIS_PID" 5
	fi
	startup_down "redis://127.0.0.1:@PORT@/3" EXPOSRD_REDIS_STARTUP_TIMEOUT_MS redis

	# the backend comes up during the startup retry window
	PRIV_REDIS_PORT=$(free_ports | cut -d' ' -f1)
	(
		sleep 0.7
		exec redis-server --port "$PRIV_REDIS_PORT" --bind 127.0.0.1 --save '' --appendonly no \
			--dir "$PRIV_REDIS_DIR" >"$PRIV_REDIS_DIR/redis-late.log" 2>&1
	) &
	PRIV_REDIS_PID=$!
	ALL_PIDS="$ALL_PIDS $PRIV_REDIS_PID"
	_t0=$(now_ms)
	SRV_ENV="EXPOSRD_REDIS_STARTUP_TIMEOUT_MS=10000"
	start_std --storage-url "redis://127.0.0.1:$PRIV_REDIS_PORT/0"
	SRV_ENV=
	_dt=$(($(now_ms) - _t0))
	grep -q 'waiting for redis\|retry' "$SRV_LOG"
	result "redis: a backend that comes up during the startup retries is used (up after $_dt ms)" $? "$(tail -4 "$SRV_LOG" | cut -c1-300)"
	check "redis: late backend: POST /v1/account 201" POST "$API/v1/account" 201
	stop_server "redis: late-backend node exits 0"
	kill "$PRIV_REDIS_PID" 2>/dev/null
	wait_rc "$PRIV_REDIS_PID" 5
}

# ---------------------------------------------------------------------------

T_ALL=$(now_ms)
RECOVERY=
if ! take_lock; then
	fail "lock $LOCKDIR taken within 120 s (another run of this test holds it)"
	finish
fi
for _be in $BACKENDS; do
	case $_be in
	pgsql) pgsql_part ;;
	redis) redis_part ;;
	*) fail "unknown backend '$_be' in EXPOSRD_IT_BACKENDS" ;;
	esac
done
diag "recovery times:$RECOVERY" "total $(($(now_ms) - T_ALL)) ms"
finish
