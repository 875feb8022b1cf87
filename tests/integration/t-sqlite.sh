#!/bin/sh
# SQLite storage (spec/storage.md §2.1, §5, §7.1; config.md §2 Storage):
# data survives a restart, the file has the reference layout with TEXT JSON
# values, and a file written the reference way opens in the server.
. "$(dirname "$0")/lib.sh"

if ! "$EXPOSRD" --version 2>/dev/null | grep -qi sqlite; then
	echo "ok - sqlite: # SKIP build without SQLite (WITH_SQLITE=0)"
	exit 0
fi
DB=$T/db.sqlite
CT='Content-Type: application/json'
start_std --storage-url "sqlite://$DB"
grep -q "SQlite storage initialized: $DB" "$SRV_LOG"
result "startup logs 'SQlite storage initialized: <file>'" $?
new_account || finish
put_tunnel sq-tun '{"target":{"url":"http://example.com"},"ingress":{"http":{"enabled":true}},"transport":{"ws":{"enabled":true}}}'
[ "$STATUS" = 200 ] || fail "setup: PUT sq-tun" "status $STATUS body $BODY"
CREATED=$(jv 'j["created_at"]')
TOKEN_WS=$(jv 'j["transport"]["ws"]["url"].split("t=")[1]')
URLS=$(jv 'j["ingress"]["http"]["urls"]')
ACC1=$ACC
put_tunnel sq-tun2 '{}'
check "disable the account (persisted status)" PUT "$ADMIN/v1/admin/account/$ACC/disable" 200 \
	-H "$ADMIN_AUTH" -H "$CT" -d '{"disable":true,"reason":"persist me"}'
check "DELETE sq-tun2 before the restart" DELETE "$API/v1/tunnel/sq-tun2" 204 -H "$AUTH"
stop_server "first run exits 0"
[ -s "$DB" ]
result "database file exists" $?

# ---- restart on the same file ----
start_std --storage-url "sqlite://$DB"
check_json "after restart: token route 201 with base64(id)" GET "$API/v1/account/$ACC_HR/token" 201 'j["token"]' "$TOKEN"
check_json "after restart: GET tunnel 200" GET "$API/v1/tunnel/sq-tun" 200 'j["target"]["url"]' http://example.com -H "$AUTH"
expect_json "after restart: created_at kept" 'j["created_at"]' "$CREATED"
expect_json "after restart: transport token kept" 'j["transport"]["ws"]["url"].split("t=")[1]' "$TOKEN_WS"
expect_json "after restart: stored ingress urls kept (recomputed only on update)" 'j["ingress"]["http"]["urls"]' "$URLS"
check_json "after restart: deleted tunnel stays deleted" GET "$API/v1/tunnel/sq-tun2" 404 'j["error"]' TUNNEL_NOT_FOUND -H "$AUTH"
check_json "after restart: account status kept" GET "$ADMIN/v1/admin/account/$ACC" 200 'j["status"]["disabled_reason"]' \
	"persist me" -H "$ADMIN_AUTH"
expect_json "after restart: account tunnels kept" 'j["tunnels"]' '["sq-tun"]'
check_json "after restart: admin tunnel list" GET "$ADMIN/v1/admin/tunnel" 200 'j' '{"cursor":null,"tunnels":["sq-tun"]}' -H "$ADMIN_AUTH"
check_json "after restart: PATCH works" PATCH "$API/v1/tunnel/sq-tun" 200 'j["target"]' '{}' -H "$AUTH" -H "$CT" \
	-d '{"target":{"url":null}}'
# Keyset cursor (§4.3: SQL last key): page 1 of accounts with count=1
new_account
check "sqlite: account page of 1" GET "$ADMIN/v1/admin/account?count=1" 200 -H "$ADMIN_AUTH"
FIRST=$(jv 'j["accounts"][0]["id"]')
expect_true "sqlite: the cursor is base64url of the last key" \
	'j["cursor"] is None or __import__("base64").urlsafe_b64decode(j["cursor"] + "=" * (-len(j["cursor"]) % 4)).decode() == j["accounts"][0]["id"]'
CUR=$(jv 'j["cursor"]')
check_json "sqlite: cursor continues with the other account" GET "$ADMIN/v1/admin/account?count=5&cursor=$CUR" 200 \
	'[a["id"] for a in j["accounts"]] != ["'"$FIRST"'"] and len(j["accounts"]) == 1' true -H "$ADMIN_AUTH"
stop_server "second run exits 0"

# ---- file layout ----
$PY - "$DB" "$ACC1" >"$T/layout" 2>&1 <<'PYEOF'
import json, sqlite3, sys
db, acc = sys.argv[1], sys.argv[2]
c = sqlite3.connect(db)
out = []
tables = sorted(r[0] for r in c.execute("select name from sqlite_master where type='table'"))
out.append("tables " + " ".join(tables))
for t in ("account", "tunnel"):
    cols = [(r[1], r[2].upper(), r[5]) for r in c.execute("pragma table_info(%s)" % t)]
    out.append("%s columns %s" % (t, " ".join("%s:%s:%d" % x for x in cols)))
    types = sorted(set(r[0] for r in c.execute("select typeof(value) from %s" % t)))
    out.append("%s value types %s" % (t, ",".join(types)))
    mt = sorted(set(r[0] for r in c.execute("select typeof(modified_at) || '/' || typeof(expires_at) from %s" % t)))
    out.append("%s times %s" % (t, ",".join(mt)))
a = json.loads(c.execute("select value from account where key=?", (acc,)).fetchone()[0])
out.append("account json keys " + ",".join(sorted(a)))
out.append("account ids %s %s" % (a["accountId"] == acc, a["id"] == acc))
tn = json.loads(c.execute("select value from tunnel where key='sq-tun'").fetchone()[0])
out.append("tunnel json keys " + ",".join(sorted(tn)))
out.append("tunnel account %s" % (tn["account"] == acc))
out.append("tunnel transport " + ",".join(sorted(tn["transport"])))
out.append("tunnel ingress http " + ",".join(sorted(tn["ingress"]["http"])))
idx = sorted(r[0] for r in c.execute("select name from sqlite_master where type='index' and (name like 'idx_account_%' or name like 'idx_tunnel_%')"))
out.append("indexes " + " ".join(idx))
print("\n".join(out))
PYEOF
layout_has() {
	grep -qxF "$2" "$T/layout"
	result "$1" $? "wanted line: $2" "$(cat "$T/layout")"
}
grep -q '^tables .*account.*tunnel' "$T/layout"
result "tables account and tunnel exist" $? "$(head -1 "$T/layout")"
layout_has "account columns key TEXT PK, value, modified_at INTEGER, expires_at INTEGER" \
	"account columns key:TEXT:1 value:BLOB:0 modified_at:INTEGER:0 expires_at:INTEGER:0"
layout_has "tunnel columns key TEXT PK, value, modified_at INTEGER, expires_at INTEGER" \
	"tunnel columns key:TEXT:1 value:BLOB:0 modified_at:INTEGER:0 expires_at:INTEGER:0"
layout_has "account values stored as TEXT" "account value types text"
layout_has "tunnel values stored as TEXT" "tunnel value types text"
layout_has "account modified_at integer, expires_at NULL" "account times integer/null"
layout_has "tunnel modified_at integer, expires_at NULL" "tunnel times integer/null"
layout_has "account JSON members (§5.2)" "account json keys accountId,created_at,id,status,tunnels,updated_at"
layout_has "account JSON accountId = id = key" "account ids True True"
layout_has "tunnel JSON members (§5.3)" "tunnel json keys account,created_at,id,ingress,target,transport,updated_at"
layout_has "tunnel JSON account = owner" "tunnel account True"
layout_has "tunnel JSON transport members" "tunnel transport max_connections,ssh,token,ws"
layout_has "tunnel JSON ingress.http members" "tunnel ingress http alt_names,enabled,url,urls"
layout_has "indexes idx_<table>_modified_at / _expires_at" \
	"indexes idx_account_expires_at idx_account_modified_at idx_tunnel_expires_at idx_tunnel_modified_at"

# ---- a file written the reference way (§7.1, §5.3 example without created_at) ----
REF=$T/ref.sqlite
RACC=MNF4P6Y6M2MRRVCT
$PY - "$REF" "$RACC" <<'PYEOF'
import sqlite3, sys, time
db, acc = sys.argv[1], sys.argv[2]
c = sqlite3.connect(db)
c.execute("PRAGMA journal_mode = WAL")
for t in ("account", "tunnel", "ingress_altnames"):
    c.execute("CREATE TABLE IF NOT EXISTS %s (key TEXT PRIMARY KEY, value BLOB, modified_at INTEGER, expires_at INTEGER NULL)" % t)
    c.execute("CREATE INDEX IF NOT EXISTS idx_%s_modified_at ON %s (modified_at)" % (t, t))
    c.execute("CREATE INDEX IF NOT EXISTS idx_%s_expires_at ON %s (expires_at)" % (t, t))
now = int(time.time())
a = '{"accountId":"%s","id":"%s","created_at":"2024-01-02T03:04:05.678Z","updated_at":"2024-01-02T03:10:00.000Z","tunnels":["my-tunnel","my-tunnel"],"status":{"disabled":false}}' % (acc, acc)
t = '{"transport":{"token":"%s","max_connections":1,"ws":{"enabled":true},"ssh":{"enabled":false}},"ingress":{"http":{"enabled":true,"url":"http://my-tunnel.example.com/","urls":["http://my-tunnel.example.com/"],"alt_names":[]},"sni":{"enabled":false,"urls":[]}},"target":{"url":"http://localhost:3000"},"id":"my-tunnel","account":"%s","updated_at":"2024-01-02T03:10:00.000Z"}' % ("A" * 86, acc)
c.execute("INSERT INTO account VALUES (?, ?, ?, NULL)", (acc, a, now))
c.execute("INSERT INTO tunnel VALUES (?, ?, ?, NULL)", ("my-tunnel", t, now))
c.execute("INSERT INTO tunnel VALUES (?, ?, ?, ?)", ("expired-tun", t.replace("my-tunnel", "expired-tun"), now - 100, now - 50))
c.commit()
PYEOF
start_std --storage-url "sqlite://$REF"
RAUTH="Authorization: Bearer $(printf %s "$RACC" | base64)"
check "reference file: token route 201" GET "$API/v1/account/$RACC/token" 201
check_json "reference file: GET tunnel 200" GET "$API/v1/tunnel/my-tunnel" 200 'j["target"]["url"]' http://localhost:3000 -H "$RAUTH"
expect_true "reference file: missing created_at is omitted" '"created_at" not in j'
expect_json "reference file: stored token in the ws url" 'j["transport"]["ws"]["url"].split("t=")[1]' "$(printf 'A%.0s' $(seq 86))"
check_json "reference file: expired row is invisible" GET "$ADMIN/v1/admin/tunnel/expired-tun" 404 'j["error"]' TUNNEL_NOT_FOUND -H "$ADMIN_AUTH"
check "reference file: PATCH rewrites the record" PATCH "$API/v1/tunnel/my-tunnel" 200 -H "$RAUTH" -H "$CT" -d '{"target":{"url":"http://x"}}'
check "reference file: account with duplicate tunnel ids reads fine" GET "$ADMIN/v1/admin/account/$RACC" 200 -H "$ADMIN_AUTH"
check "reference file: DELETE tunnel 204" DELETE "$API/v1/tunnel/my-tunnel" 204 -H "$RAUTH"
check_json "reference file: DELETE removed every copy of the id" GET "$ADMIN/v1/admin/account/$RACC" 200 'j["tunnels"]' '[]' -H "$ADMIN_AUTH"
finish
