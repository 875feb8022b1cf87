/* storage-sqlite.c - SQLite storage (sqlite://path), spec/storage.md §7.1.
 *
 * One table per namespace in exactly the reference layout, so a file
 * written by a reference node opens here and the other way round:
 *
 *   <table>(key TEXT PRIMARY KEY, value BLOB, modified_at INTEGER,
 *           expires_at INTEGER NULL)
 *   idx_<table>_modified_at, idx_<table>_expires_at
 *
 * Values are bound as TEXT (the declared BLOB type has no affinity, so
 * they stay text and reference nodes read them as strings).  "now" is
 * bound from C (no unixepoch(), which needs SQLite >= 3.38).
 *
 * SQLite is synchronous: every operation runs immediately on the loop
 * thread (at most busy_timeout on a locked file) and its result is handed
 * to storage_complete_*, which calls back later on the loop.  Locked
 * read-modify-write uses storage.c's in-process lock (single process,
 * single node: sqlite requires --cluster single-node).
 */
#include "storage.h"
#include "err.h"
#include "log.h"
#include "loop.h"

#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <sqlite3.h>

#define SQLITE_BUSY_TIMEOUT_MS 5000
#define SQLITE_CLEANUP_MS (5u * 60u * 1000u) /* expiry cleanup interval */
#define SQLITE_MAX_PATH 4096
#define SQLITE_MAX_SQL 1024

static const char log_name[] = "sqlite-storage";

/* Table = namespace with '-' -> '_', lower case ("t_" prefix only for a
 * leading digit, which none of ours has). */
static const char *const table_names[NS_COUNT] = {
	[NS_ACCOUNT] = "account",
	[NS_TUNNEL] = "tunnel",
	[NS_ALTNAME] = "ingress_altnames",
};

enum sq_stmt {
	SQ_CREATE = 0, /* exclusive insert; an expired or empty row counts as absent */
	SQ_PUT,        /* upsert */
	SQ_GET,
	SQ_DEL,
	SQ_LIST,
	SQ_CLEANUP,
	SQ_COUNT,
};

/* Each template takes the table name for every %s.  Parameters: ?1 key,
 * ?2 value, ?3 now, ?4 expires_at (NULL = never), ?5 list limit. */
static const char *const sql_templates[SQ_COUNT] = {
	[SQ_CREATE] =
		("INSERT INTO %s (key, value, modified_at, expires_at) VALUES (?1, ?2, ?3, ?4)"
		 " ON CONFLICT(key) DO UPDATE SET value = excluded.value,"
		 " modified_at = excluded.modified_at, expires_at = excluded.expires_at"
		 " WHERE (%s.expires_at IS NOT NULL AND %s.expires_at <= ?3)"
		 " OR %s.value IS NULL OR length(%s.value) = 0"),
	[SQ_PUT] =
		("INSERT INTO %s (key, value, modified_at, expires_at) VALUES (?1, ?2, ?3, ?4)"
		 " ON CONFLICT(key) DO UPDATE SET value = excluded.value,"
		 " modified_at = excluded.modified_at, expires_at = excluded.expires_at"),
	[SQ_GET] =
		"SELECT value FROM %s WHERE key = ?1 AND (expires_at > ?3 OR expires_at IS NULL)",
	[SQ_DEL] =
		"DELETE FROM %s WHERE key = ?1",
	[SQ_LIST] =
		("SELECT key FROM %s WHERE key > ?1 AND (expires_at > ?3 OR expires_at IS NULL)"
		 " ORDER BY key LIMIT ?5"),
	[SQ_CLEANUP] =
		"DELETE FROM %s WHERE expires_at < ?3 AND expires_at IS NOT NULL",
};

static const char *const schema_templates[] = {
	("CREATE TABLE IF NOT EXISTS %s (key TEXT PRIMARY KEY, value BLOB,"
	 " modified_at INTEGER, expires_at INTEGER NULL)"),
	"CREATE INDEX IF NOT EXISTS idx_%s_modified_at ON %s (modified_at)",
	"CREATE INDEX IF NOT EXISTS idx_%s_expires_at ON %s (expires_at)",
};

struct sqlite_store {
	sqlite3 *db;
	struct loop *loop;
	struct loop_timer *cleanup_timer;
	char path[SQLITE_MAX_PATH];
	sqlite3_stmt *st[NS_COUNT][SQ_COUNT];
};

static struct sqlite_store *store_of(struct storage *s)
{
	return storage_backend(s);
}

static int fail(struct sqlite_store *q, const char *what, enum storage_ns ns, const char *key)
{
	log_warn(log_name, "%s %s%s%s: %s", what, table_names[ns], key ? " key " : "", key ? key : "",
		 sqlite3_errmsg(q->db));
	return E_BACKEND;
}

/* Fill a template: every %s becomes table (templates have at most 5). */
static int format_sql(char *out, size_t cap, const char *tmpl, const char *table)
{
	int n = snprintf(out, cap, tmpl, table, table, table, table, table);
	return n < 0 || (size_t)n >= cap ? E_LIMIT : 0;
}

/* Reset and unbind so no bound pointer outlives the call. */
static void stmt_done(sqlite3_stmt *st)
{
	(void)sqlite3_reset(st);
	(void)sqlite3_clear_bindings(st);
}

/* Bind the parameters a statement uses (absent ones are skipped). */
static int bind_params(sqlite3_stmt *st, const char *key, const char *value, size_t len, long long now,
		       long long expires_at, long long limit)
{
	int rc = SQLITE_OK;
	int np = sqlite3_bind_parameter_count(st);
	for (int i = 1; i <= np && rc == SQLITE_OK; i++) {
		switch (i) {
		case 1: rc = sqlite3_bind_text(st, 1, key ? key : "", -1, SQLITE_STATIC); break;
		case 2: rc = sqlite3_bind_text(st, 2, value ? value : "", (int)len, SQLITE_STATIC); break;
		case 3: rc = sqlite3_bind_int64(st, 3, now); break;
		case 4:
			rc = expires_at ? sqlite3_bind_int64(st, 4, expires_at) : sqlite3_bind_null(st, 4);
			break;
		case 5: rc = sqlite3_bind_int64(st, 5, limit); break;
		}
	}
	return rc;
}

/* ---- open / close / cleanup ---- */

static int run_cleanup(struct sqlite_store *q)
{
	int ret = 0;
	long long now = storage_now_s();
	for (int ns = 0; ns < NS_COUNT; ns++) {
		sqlite3_stmt *st = q->st[ns][SQ_CLEANUP];
		if (bind_params(st, NULL, NULL, 0, now, 0, 0) != SQLITE_OK || sqlite3_step(st) != SQLITE_DONE)
			ret = fail(q, "expiry cleanup", (enum storage_ns)ns, NULL);
		stmt_done(st);
	}
	return ret;
}

static void cleanup_timer_cb(struct loop *loop, void *arg)
{
	struct sqlite_store *q = arg;
	(void)run_cleanup(q);
	q->cleanup_timer = loop_timer_add(loop, SQLITE_CLEANUP_MS, cleanup_timer_cb, q);
	if (!q->cleanup_timer)
		log_warn(log_name, "cannot rearm the expiry cleanup timer: out of memory");
}

/* Path from sqlite://<path>, sqlite:///abs, sqlite:<path>; "?query" dropped. */
static int parse_url(const char *url, char *out, size_t cap)
{
	const char *p = url;
	if (strncmp(p, "sqlite:", 7) != 0)
		return E_INVAL;
	p += 7;
	if (strncmp(p, "//", 2) == 0)
		p += 2;
	size_t n = strcspn(p, "?");
	if (n == 0 || n >= cap)
		return E_INVAL;
	memcpy(out, p, n);
	out[n] = '\0';
	return 0;
}

static void sqlite_close(void *backend)
{
	struct sqlite_store *q = backend;
	if (!q)
		return;
	if (q->cleanup_timer)
		loop_timer_cancel(q->loop, q->cleanup_timer);
	for (int ns = 0; ns < NS_COUNT; ns++)
		for (int i = 0; i < SQ_COUNT; i++)
			(void)sqlite3_finalize(q->st[ns][i]);
	if (q->db && sqlite3_close(q->db) != SQLITE_OK)
		log_warn(log_name, "close %s: %s", q->path, sqlite3_errmsg(q->db));
	free(q);
}

static int exec_sql(struct sqlite_store *q, const char *sql)
{
	char *msg = NULL;
	if (sqlite3_exec(q->db, sql, NULL, NULL, &msg) != SQLITE_OK) {
		log_warn(log_name, "%s: %s: %s", q->path, sql, msg ? msg : sqlite3_errmsg(q->db));
		sqlite3_free(msg);
		return E_BACKEND;
	}
	return 0;
}

static int open_db(struct sqlite_store *q)
{
	int rc = sqlite3_open_v2(q->path, &q->db, SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE, NULL);
	if (rc != SQLITE_OK) {
		log_warn(log_name, "cannot open %s: %s", q->path,
			 q->db ? sqlite3_errmsg(q->db) : sqlite3_errstr(rc));
		return E_BACKEND;
	}
	(void)sqlite3_extended_result_codes(q->db, 1);
	if (sqlite3_busy_timeout(q->db, SQLITE_BUSY_TIMEOUT_MS) != SQLITE_OK) {
		log_warn(log_name, "%s: busy_timeout: %s", q->path, sqlite3_errmsg(q->db));
		return E_BACKEND;
	}
	/* synchronous stays at the SQLite default (FULL), as in the reference. */
	sqlite3_stmt *st = NULL;
	if (sqlite3_prepare_v2(q->db, "PRAGMA journal_mode = WAL", -1, &st, NULL) != SQLITE_OK) {
		log_warn(log_name, "%s: journal_mode: %s", q->path, sqlite3_errmsg(q->db));
		return E_BACKEND;
	}
	rc = sqlite3_step(st);
	if (rc != SQLITE_ROW) {
		log_warn(log_name, "%s: journal_mode: %s", q->path, sqlite3_errmsg(q->db));
		(void)sqlite3_finalize(st);
		return E_BACKEND;
	}
	const unsigned char *mode = sqlite3_column_text(st, 0);
	if (!mode || strcmp((const char *)mode, "wal") != 0)
		log_warn(log_name, "%s: journal_mode is %s, not wal", q->path, mode ? (const char *)mode : "?");
	(void)sqlite3_finalize(st);

	char sql[SQLITE_MAX_SQL];
	for (int ns = 0; ns < NS_COUNT; ns++) {
		for (size_t i = 0; i < sizeof(schema_templates) / sizeof(schema_templates[0]); i++) {
			if (format_sql(sql, sizeof(sql), schema_templates[i], table_names[ns]) != 0)
				return E_BACKEND;
			if (exec_sql(q, sql) != 0)
				return E_BACKEND;
		}
		for (int i = 0; i < SQ_COUNT; i++) {
			if (format_sql(sql, sizeof(sql), sql_templates[i], table_names[ns]) != 0)
				return E_BACKEND;
			if (sqlite3_prepare_v3(q->db, sql, -1, SQLITE_PREPARE_PERSISTENT, &q->st[ns][i], NULL)
			    != SQLITE_OK) {
				log_warn(log_name, "%s: prepare %s: %s", q->path, sql, sqlite3_errmsg(q->db));
				return E_BACKEND;
			}
		}
	}
	return 0;
}

static int sqlite_open(struct storage *s, const char *url, void **backend)
{
	struct sqlite_store *q = calloc(1, sizeof(*q));
	if (!q)
		return E_NOMEM;
	if (parse_url(url, q->path, sizeof(q->path)) != 0) {
		log_warn(log_name, "invalid sqlite url %s: expected sqlite://<path>", url);
		free(q);
		return E_INVAL;
	}
	q->loop = storage_loop(s);
	int rc = open_db(q);
	if (rc != 0) {
		sqlite_close(q);
		return rc;
	}
	(void)run_cleanup(q); /* failures are logged; the data is still usable */
	if (q->loop) {
		q->cleanup_timer = loop_timer_add(q->loop, SQLITE_CLEANUP_MS, cleanup_timer_cb, q);
		if (!q->cleanup_timer) {
			sqlite_close(q);
			return E_NOMEM;
		}
	}
	log_info(log_name, "SQLite storage initialized: %s", q->path);
	*backend = q;
	return 0;
}

/* ---- operations ---- */

/* Step the get statement for key.  On 0, *val and *len point into the
 * statement's row (valid until stmt_done).  Empty or NULL value and
 * expired rows are E_NOTFOUND. */
static int get_row(struct sqlite_store *q, enum storage_ns ns, const char *key, long long now,
		   const char **val, size_t *len)
{
	sqlite3_stmt *st = q->st[ns][SQ_GET];
	if (bind_params(st, key, NULL, 0, now, 0, 0) != SQLITE_OK)
		return fail(q, "get", ns, key);
	int rc = sqlite3_step(st);
	if (rc == SQLITE_DONE)
		return E_NOTFOUND;
	if (rc != SQLITE_ROW)
		return fail(q, "get", ns, key);
	const unsigned char *v = sqlite3_column_text(st, 0);
	int n = sqlite3_column_bytes(st, 0);
	if (!v) /* NULL value, or out of memory converting it */
		return sqlite3_errcode(q->db) == SQLITE_NOMEM ? fail(q, "get", ns, key) : E_NOTFOUND;
	if (n <= 0)
		return E_NOTFOUND;
	*val = (const char *)v;
	*len = (size_t)n;
	return 0;
}

static void sqlite_get(struct storage *s, enum storage_ns ns, const char *key, storage_get_cb cb, void *arg)
{
	struct sqlite_store *q = store_of(s);
	const char *val = NULL;
	size_t len = 0;
	int rc = get_row(q, ns, key, storage_now_s(), &val, &len);
	storage_complete_get(s, cb, arg, rc, val, len); /* copies before the reset */
	stmt_done(q->st[ns][SQ_GET]);
}

static void sqlite_get_multi(struct storage *s, enum storage_ns ns, const char *const *keys, size_t n,
			     storage_multi_cb cb, void *arg)
{
	struct sqlite_store *q = store_of(s);
	if (n == 0) {
		storage_complete_multi(s, cb, arg, 0, NULL, 0);
		return;
	}
	char **values = calloc(n, sizeof(*values));
	if (!values) {
		storage_complete_multi(s, cb, arg, E_BACKEND, NULL, 0);
		return;
	}
	long long now = storage_now_s();
	int status = 0;
	for (size_t i = 0; i < n && status == 0; i++) {
		const char *val = NULL;
		size_t len = 0;
		int rc = get_row(q, ns, keys[i], now, &val, &len);
		if (rc == 0) {
			if ((values[i] = malloc(len + 1))) {
				memcpy(values[i], val, len);
				values[i][len] = '\0';
			} else {
				status = E_BACKEND;
			}
		} else if (rc != E_NOTFOUND) {
			status = rc;
		}
		stmt_done(q->st[ns][SQ_GET]);
	}
	if (status != 0) {
		for (size_t i = 0; i < n; i++)
			free(values[i]);
		free(values);
		storage_complete_multi(s, cb, arg, status, NULL, 0);
		return;
	}
	storage_complete_multi(s, cb, arg, 0, values, n);
}

static void sqlite_set(struct storage *s, enum storage_ns ns, const char *key, const char *value, size_t len,
		       int exclusive, long ttl, storage_done_cb cb, void *arg)
{
	struct sqlite_store *q = store_of(s);
	if (len > INT_MAX) {
		storage_complete_done(s, cb, arg, E_INVAL);
		return;
	}
	sqlite3_stmt *st = q->st[ns][exclusive ? SQ_CREATE : SQ_PUT];
	long long now = storage_now_s();
	long long expires_at = ttl > 0 ? now + ttl : 0;
	int status;
	if (bind_params(st, key, value, len, now, expires_at, 0) != SQLITE_OK ||
	    sqlite3_step(st) != SQLITE_DONE)
		status = fail(q, exclusive ? "create" : "put", ns, key);
	else if (sqlite3_changes(q->db) == 1)
		status = 0;
	else if (exclusive)
		status = E_EXISTS;
	else
		status = fail(q, "put (no row changed)", ns, key);
	stmt_done(st);
	storage_complete_done(s, cb, arg, status);
}

static void sqlite_del(struct storage *s, enum storage_ns ns, const char *key, storage_done_cb cb, void *arg)
{
	struct sqlite_store *q = store_of(s);
	sqlite3_stmt *st = q->st[ns][SQ_DEL];
	int status;
	if (bind_params(st, key, NULL, 0, 0, 0, 0) != SQLITE_OK || sqlite3_step(st) != SQLITE_DONE)
		status = fail(q, "delete", ns, key);
	else
		status = sqlite3_changes(q->db) > 0 ? 0 : E_NOTFOUND;
	stmt_done(st);
	storage_complete_done(s, cb, arg, status);
}

static void sqlite_list(struct storage *s, enum storage_ns ns, const char *cursor, size_t count,
			storage_list_cb cb, void *arg)
{
	struct sqlite_store *q = store_of(s);
	sqlite3_stmt *st = q->st[ns][SQ_LIST];
	char **keys = calloc(count ? count : 1, sizeof(*keys));
	if (!keys) {
		storage_complete_list(s, cb, arg, E_BACKEND, NULL, 0, NULL);
		return;
	}
	size_t n = 0;
	int status = 0;
	if (bind_params(st, cursor ? cursor : "", NULL, 0, storage_now_s(), 0, (long long)count) != SQLITE_OK) {
		status = fail(q, "list", ns, NULL);
	} else {
		int rc = SQLITE_DONE;
		while (n < count && (rc = sqlite3_step(st)) == SQLITE_ROW) {
			const unsigned char *k = sqlite3_column_text(st, 0);
			if (!k || !(keys[n] = strdup((const char *)k))) {
				status = k ? E_BACKEND : fail(q, "list", ns, NULL);
				break;
			}
			n++;
		}
		if (status == 0 && n < count && rc != SQLITE_DONE)
			status = fail(q, "list", ns, NULL);
	}
	stmt_done(st);
	char *next = NULL;
	if (status == 0 && n > 0 && !(next = strdup(keys[n - 1])))
		status = E_BACKEND;
	if (status != 0) {
		for (size_t i = 0; i < n; i++)
			free(keys[i]);
		free(keys);
		storage_complete_list(s, cb, arg, status, NULL, 0, NULL);
		return;
	}
	storage_complete_list(s, cb, arg, 0, keys, n, next);
}

const struct storage_ops storage_sqlite_ops = {
	.name = "sqlite",
	.open = sqlite_open,
	.close = sqlite_close,
	.get = sqlite_get,
	.get_multi = sqlite_get_multi,
	.set = sqlite_set,
	.del = sqlite_del,
	.list = sqlite_list,
};
