/* storage-pgsql.c - PostgreSQL storage (postgres://, postgresql://),
 * spec/storage.md §7.2.
 *
 * Layout (MUST, shared with reference nodes), one table per namespace:
 *
 *   <table>(key TEXT PRIMARY KEY, value JSONB NOT NULL,
 *           modified_at TIMESTAMP NOT NULL, expires_at TIMESTAMP NULL)
 *   idx_<table>_modified_at, idx_<table>_expires_at
 *
 * Times are written only with NOW() / TO_TIMESTAMP(<unix seconds>) and
 * the session TimeZone is never changed (§7.2 time-zone rule).  Values are
 * sent as text cast to ::jsonb and read back as value::text; JSONB's
 * re-formatted text is compacted (insignificant blanks dropped) before it
 * reaches the caller.
 *
 * Design:
 * - open() is the only blocking part: connect with retries and backoff,
 *   SELECT NOW(), CREATE TABLE/INDEX IF NOT EXISTS, expiry cleanup.  That
 *   connection becomes the first pooled one.
 * - A pool of at most pool_max libpq connections in non-blocking mode on
 *   the loop, opened lazily (PQconnectStartParams/PQconnectPoll).  One
 *   statement at a time per connection (PQsendQueryParams, PQflush,
 *   PQconsumeInput/PQisBusy/PQgetResult).  Operations wait in a bounded
 *   FIFO while every connection is busy.
 * - Every operation has a deadline (queue wait included).  When it passes
 *   the connection running it is closed and the caller gets E_BACKEND.
 *   Broken connections are discarded; idempotent operations (reads, upsert,
 *   lock acquisition) are retried once on another connection.  Success is
 *   reported only after the server answered.
 * - When a connection attempt fails and no working connection is left the
 *   store is "down": requests fail at once (unless an attempt is in
 *   flight) and a timer retries with backoff capped at 1 s, so service
 *   resumes within about a second of the database coming back.
 * - Locked read-modify-write (lock_get/lock_release): a pooled connection
 *   is held in BEGIN; SELECT ... FOR UPDATE until the release writes
 *   (UPDATE, COMMIT) or rolls back.  Every failure path rolls back or
 *   closes the connection (spec §11 item 4).  Lockers of the same key in
 *   this process queue in-process (FIFO) so they do not each pin a pooled
 *   connection waiting on the row lock.
 *
 * Known limits: libpq resolves host names synchronously inside
 * PQconnectPoll (use an IP address or a fast local resolver); a timed-out
 * statement is abandoned by closing its connection (libpq 15 has no
 * non-blocking cancel), the server finishes or aborts it on its own.
 */
#include "storage.h"
#include "storage-pgsql.h"
#include "err.h"
#include "log.h"
#include "loop.h"

#include <errno.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <libpq-fe.h>

#define PG_MAX_QUEUE 10000            /* operations waiting for a connection */
#define PG_OP_TIMEOUT_MS 5000         /* default bound on one operation */
#define PG_CONNECT_TIMEOUT_S 5        /* default connect_timeout */
#define PG_STARTUP_TIMEOUT_MS 30000   /* default retry window of open() */
#define PG_LOCK_HOLD_MS 30000         /* longest a caller may hold a row lock */
#define PG_BACKOFF_MIN_MS 50          /* reconnect backoff after a failure */
#define PG_BACKOFF_MAX_MS 1000
#define PG_CLEANUP_MS (5u * 60u * 1000u) /* expiry cleanup interval */
#define PG_MAX_SQL 512                /* longest statement from a template */
#define PG_MAX_URL 4096
#define PG_MAX_MULTI STORAGE_MAX_LIST /* keys per get_multi */
/* sslmode=no-verify: require TLS but never load a root certificate
 * (libpq verifies under "require" only if the root cert file exists). */
#define PG_NO_VERIFY_ROOTCERT "/nonexistent/exposrd-sslmode-no-verify/root.crt"

static const char log_name[] = "pgsql-storage";
static int pool_size_setting = STORAGE_PGSQL_DEFAULT_POOL;

void storage_pgsql_set_pool_size(int n)
{
	if (n <= 0)
		n = STORAGE_PGSQL_DEFAULT_POOL;
	if (n > STORAGE_PGSQL_MAX_POOL)
		n = STORAGE_PGSQL_MAX_POOL;
	pool_size_setting = n;
}

/* Table = namespace with '-' -> '_' (spec §7.1 naming, shared by §7.2). */
static const char *const table_names[NS_COUNT] = {
	[NS_ACCOUNT] = "account",
	[NS_TUNNEL] = "tunnel",
	[NS_ALTNAME] = "ingress_altnames",
};

enum pg_q {
	Q_CREATE = 0, /* $1 key, $2 json, $3 expires|NULL, $4 now */
	Q_PUT,        /* $1 key, $2 json, $3 expires|NULL */
	Q_GET,        /* $1 key, $2 now */
	Q_DEL,        /* $1 key */
	Q_LIST,       /* $1 cursor, $2 count, $3 now (reference order) */
	Q_LOCK,       /* $1 key, $2 now */
	Q_UPDATE,     /* $1 json, $2 key */
	Q_CLEANUP,    /* $1 now */
	Q_COUNT,
};

/* Every %s is the table name. */
static const char *const sql_templates[Q_COUNT] = {
	/* BETTER (§4.3): an expired row still in the table counts as absent. */
	[Q_CREATE] =
		"INSERT INTO %s (key, value, modified_at, expires_at)"
		" VALUES ($1, $2::jsonb, NOW(), TO_TIMESTAMP($3))"
		" ON CONFLICT (key) DO UPDATE SET value = EXCLUDED.value,"
		" modified_at = EXCLUDED.modified_at, expires_at = EXCLUDED.expires_at"
		" WHERE %s.expires_at IS NOT NULL AND %s.expires_at <= TO_TIMESTAMP($4)",
	[Q_PUT] =
		"INSERT INTO %s (key, value, modified_at, expires_at)"
		" VALUES ($1, $2::jsonb, NOW(), TO_TIMESTAMP($3))"
		" ON CONFLICT (key) DO UPDATE SET value = EXCLUDED.value,"
		" modified_at = EXCLUDED.modified_at, expires_at = EXCLUDED.expires_at",
	[Q_GET] =
		"SELECT value::text FROM %s WHERE key = $1"
		" AND (expires_at > TO_TIMESTAMP($2) OR expires_at IS NULL)",
	[Q_DEL] = "DELETE FROM %s WHERE key = $1",
	[Q_LIST] =
		"SELECT key FROM %s WHERE (expires_at > TO_TIMESTAMP($3) OR expires_at IS NULL)"
		" AND key > $1 ORDER BY key LIMIT $2",
	[Q_LOCK] =
		"SELECT value::text FROM %s WHERE key = $1"
		" AND (expires_at > TO_TIMESTAMP($2) OR expires_at IS NULL) FOR UPDATE",
	[Q_UPDATE] = "UPDATE %s SET value = $1::jsonb, modified_at = NOW() WHERE key = $2",
	[Q_CLEANUP] = "DELETE FROM %s WHERE expires_at < TO_TIMESTAMP($1) AND expires_at IS NOT NULL",
};

static const char *const schema_templates[] = {
	("CREATE TABLE IF NOT EXISTS %s (key TEXT PRIMARY KEY, value JSONB NOT NULL,"
	 " modified_at TIMESTAMP NOT NULL, expires_at TIMESTAMP NULL)"),
	"CREATE INDEX IF NOT EXISTS idx_%s_modified_at ON %s (modified_at)",
	"CREATE INDEX IF NOT EXISTS idx_%s_expires_at ON %s (expires_at)",
};

enum conn_state { C_CONNECTING, C_IDLE, C_BUSY, C_HELD };

struct pg_conn {
	struct pg_conn *next;
	struct pg_store *st;
	PGconn *pg;
	int fd;                      /* socket watched on the loop, -1 none */
	int events;                  /* LOOP_* mask of the watcher */
	enum conn_state state;
	struct pg_op *op;            /* C_BUSY: the operation running */
	struct pg_lock *lock;        /* C_HELD, and while its lock/release runs */
	struct loop_timer *connect_timer;
	PGresult *res;               /* result of the statement in flight */
	unsigned char prepared[NS_COUNT][Q_COUNT]; /* named statements made here */
};

enum op_kind { OP_GET, OP_MULTI, OP_SET, OP_DEL, OP_LIST, OP_LOCK, OP_RELEASE, OP_CLEANUP };
enum op_where { W_NEW, W_PARKED, W_QUEUED, W_RUNNING };
/* Statements of the multi-statement operations (op->step). */
enum { S_MAIN = 0, S_BEGIN, S_SELECT, S_UPDATE, S_COMMIT, S_ROLLBACK };

struct pg_op {
	struct pg_op *next;          /* queue link */
	struct pg_store *st;
	enum op_kind kind;
	enum op_where where;
	enum storage_ns ns;
	int exclusive;               /* OP_SET */
	int step;                    /* S_* */
	int status;                  /* result to report after S_ROLLBACK */
	int retried;
	int q;                       /* template of the statement in flight, -1 none */
	int preparing;               /* 1 while its PQsendPrepare runs */
	int reprepared;
	struct pg_conn *conn;        /* W_RUNNING */
	struct pg_lock *lock;        /* OP_LOCK, OP_RELEASE */
	struct loop_timer *timer;    /* deadline */
	void *cb;
	void *arg;
	char *key;                   /* owned */
	char *value;                 /* owned, NUL-terminated (OP_SET, OP_RELEASE) */
	char expires[24];            /* OP_SET: unix seconds, "" = never */
	char count[24];              /* OP_LIST: limit */
	char now[24];                /* set when sent */
	char **keys;                 /* OP_MULTI, owned */
	size_t nkeys;
};

enum lock_state { L_PARKED, L_ACQUIRING, L_HELD, L_RELEASING, L_LOST };

struct pg_lock {
	struct pg_lock *next;        /* st->locks, arrival order */
	struct pg_store *st;
	struct storage_lock *sl;
	enum storage_ns ns;
	enum lock_state state;
	struct pg_conn *conn;        /* L_HELD */
	struct pg_op *op;            /* acquire op (parked/acquiring) or release op */
	struct loop_timer *hold_timer;
	char key[];
};

struct pg_store {
	struct storage *s;
	struct loop *loop;
	char **kw, **val;            /* libpq connection parameters, NULL-terminated */
	size_t nkw;                  /* slots allocated in kw/val */
	char target[256];            /* "host:port/db" for log lines (no password) */
	int pool_max;
	int op_timeout_ms;
	int connect_timeout_ms;
	struct pg_conn *conns;
	int nconns;
	struct pg_op *qhead, *qtail;
	int qlen;
	struct pg_lock *locks;
	int down;                    /* last attempt failed and nothing works */
	unsigned backoff_ms;
	uint64_t connect_after;      /* loop_now() before which no new attempt */
	struct loop_timer *retry_timer;
	struct loop_timer *cleanup_timer;
	int pumping, pump_again;
	int closing;
	int queue_full_logged;
	char sql[NS_COUNT][Q_COUNT][PG_MAX_SQL];
};

static void pump(struct pg_store *st);
static void op_send(struct pg_op *op);
static void op_result(struct pg_op *op, PGresult *res);
static void op_fail(struct pg_op *op, int status);
static void conn_free(struct pg_conn *c);
static void conn_broken(struct pg_conn *c, const char *why);
static void submit(struct pg_store *st, struct pg_op *op, int front);

/* ---- small helpers ---- */

/* libpq messages span lines ("...failed: X\n\tIs the server running...")
 * and end with a newline: make them one log-friendly line, in place. */
static void trim_msg(char *s)
{
	size_t k = 0;
	int blank = 0;
	for (size_t i = 0; s[i]; i++) {
		char ch = s[i];
		if (ch == '\n' || ch == '\r' || ch == '\t' || ch == ' ') {
			blank = 1;
			continue;
		}
		if (blank && k > 0)
			s[k++] = ' ';
		blank = 0;
		s[k++] = ch;
	}
	s[k] = '\0';
}

static void copy_msg(char *out, size_t cap, const char *msg)
{
	snprintf(out, cap, "%s", msg ? msg : "");
	trim_msg(out);
}

static void notice_cb(void *arg, const char *msg)
{
	char line[512];
	(void)arg;
	copy_msg(line, sizeof(line), msg);
	log_debug(log_name, "server notice: %s", line);
}

/* JSONB's text form has ", " and ": " separators: drop blanks outside
 * strings.  Returns a malloc'd copy (NULL on allocation failure). */
static char *dup_compact(const char *s, size_t n, size_t *outlen)
{
	char *o = malloc(n + 1);
	if (!o)
		return NULL;
	size_t k = 0;
	int in_str = 0, esc = 0;
	for (size_t i = 0; i < n; i++) {
		char ch = s[i];
		if (in_str) {
			o[k++] = ch;
			if (esc)
				esc = 0;
			else if (ch == '\\')
				esc = 1;
			else if (ch == '"')
				in_str = 0;
		} else if (ch == ' ' || ch == '\t' || ch == '\n' || ch == '\r') {
			continue;
		} else {
			if (ch == '"')
				in_str = 1;
			o[k++] = ch;
		}
	}
	o[k] = '\0';
	*outlen = k;
	return o;
}

static int env_ms(const char *name, int def)
{
	const char *v = getenv(name);
	if (!v || !*v)
		return def;
	char *end;
	long n = strtol(v, &end, 10);
	if (*end || n <= 0 || n > 24L * 3600 * 1000) {
		log_warn(log_name, "ignoring %s=%s (expected milliseconds)", name, v);
		return def;
	}
	return (int)n;
}

static const char *op_name(const struct pg_op *op)
{
	switch (op->kind) {
	case OP_GET: return "get";
	case OP_MULTI: return "get_multi";
	case OP_SET: return op->exclusive ? "create" : "put";
	case OP_DEL: return "delete";
	case OP_LIST: return "list";
	case OP_LOCK: return "lock";
	case OP_RELEASE: return "update";
	case OP_CLEANUP: return "expiry cleanup";
	}
	return "?";
}

/* ---- libpq <-> loop adapter (STYLE §8.8) ----
 * A connection's socket is watched with the mask libpq asks for; libpq
 * may replace the socket while connecting, so the fd is re-read each time. */

static void conn_io(struct loop *loop, int fd, int events, void *arg);

static int conn_watch(struct pg_conn *c, int events)
{
	struct loop *loop = c->st->loop;
	int fd = PQsocket(c->pg);
	if (fd != c->fd) {
		if (c->fd >= 0)
			loop_del(loop, c->fd);
		c->fd = -1;
		if (fd < 0)
			return E_IO;
		if (loop_add(loop, fd, events, conn_io, c) != 0)
			return E_NOMEM;
		c->fd = fd;
		c->events = events;
		return 0;
	}
	if (fd < 0)
		return E_IO;
	if (events != c->events) {
		loop_set_events(loop, fd, events);
		c->events = events;
	}
	return 0;
}

static void conn_unwatch(struct pg_conn *c)
{
	if (c->fd >= 0)
		loop_del(c->st->loop, c->fd);
	c->fd = -1;
}

/* Push buffered output; keep watching for write while some is left.
 * libpq wants reads served while it flushes, so READ is always on. */
static int conn_flush(struct pg_conn *c)
{
	int r = PQflush(c->pg);
	if (r < 0)
		return E_BACKEND;
	return conn_watch(c, LOOP_READ | (r ? LOOP_WRITE : 0));
}

/* Send one statement: with parameters (extended protocol, one statement)
 * or, for nparams < 0, as a simple query (may hold several statements). */
static int conn_send(struct pg_conn *c, const char *sql, int nparams, const char *const *params)
{
	int ok = nparams >= 0 ? PQsendQueryParams(c->pg, sql, nparams, NULL, params, NULL, NULL, 0)
			      : PQsendQuery(c->pg, sql);
	if (!ok)
		return E_BACKEND;
	return conn_flush(c);
}

/* ---- connections ---- */

static int has_state(const struct pg_store *st, int healthy)
{
	for (const struct pg_conn *c = st->conns; c; c = c->next)
		if (healthy ? c->state != C_CONNECTING : c->state == C_CONNECTING)
			return 1;
	return 0;
}

static int n_connecting(const struct pg_store *st)
{
	int n = 0;
	for (const struct pg_conn *c = st->conns; c; c = c->next)
		n += c->state == C_CONNECTING;
	return n;
}

static struct pg_conn *conn_new(struct pg_store *st, PGconn *pg, enum conn_state state)
{
	struct pg_conn *c = calloc(1, sizeof(*c));
	if (!c)
		return NULL;
	c->st = st;
	c->pg = pg;
	c->fd = -1;
	c->state = state;
	PQsetNoticeProcessor(pg, notice_cb, NULL);
	c->next = st->conns;
	st->conns = c;
	st->nconns++;
	return c;
}

/* Unlink, stop watching, close.  The caller deals with c->op / c->lock. */
static void conn_free(struct pg_conn *c)
{
	struct pg_store *st = c->st;
	struct pg_conn **pp = &st->conns;
	while (*pp && *pp != c)
		pp = &(*pp)->next;
	if (*pp) {
		*pp = c->next;
		st->nconns--;
	}
	conn_unwatch(c);
	if (c->connect_timer)
		loop_timer_cancel(st->loop, c->connect_timer);
	PQclear(c->res);
	PQfinish(c->pg);
	free(c);
}

static void retry_cb(struct loop *loop, void *arg);

static void arm_retry(struct pg_store *st)
{
	if (st->retry_timer || st->closing)
		return;
	uint64_t now = loop_now(st->loop);
	uint64_t ms = st->connect_after > now ? st->connect_after - now : 0;
	st->retry_timer = loop_timer_add(st->loop, ms, retry_cb, st);
}

static void conn_connect_step(struct pg_conn *c);
static void connect_timeout_cb(struct loop *loop, void *arg);

/* Start one non-blocking connection attempt. */
static void conn_start(struct pg_store *st)
{
	PGconn *pg = PQconnectStartParams((const char *const *)st->kw, (const char *const *)st->val, 0);
	if (!pg) {
		log_warn(log_name, "%s: out of memory starting a connection", st->target);
		return;
	}
	struct pg_conn *c = conn_new(st, pg, C_CONNECTING);
	if (!c) {
		PQfinish(pg);
		return;
	}
	log_debug(log_name, "%s: connecting (%d of at most %d connections)", st->target, st->nconns, st->pool_max);
	c->connect_timer = loop_timer_add(st->loop, (uint64_t)st->connect_timeout_ms, connect_timeout_cb, c);
	if (!c->connect_timer || PQstatus(pg) == CONNECTION_BAD) {
		conn_broken(c, PQstatus(pg) == CONNECTION_BAD ? PQerrorMessage(pg) : "out of memory");
		return;
	}
	/* libpq: start as if PQconnectPoll had returned PGRES_POLLING_WRITING. */
	if (conn_watch(c, LOOP_WRITE) != 0)
		conn_broken(c, "cannot watch the socket");
}

static void connect_ok(struct pg_conn *c)
{
	struct pg_store *st = c->st;
	loop_timer_cancel(st->loop, c->connect_timer);
	c->connect_timer = NULL;
	if (PQsetnonblocking(c->pg, 1) != 0) {
		conn_broken(c, PQerrorMessage(c->pg));
		return;
	}
	c->state = C_IDLE;
	if (conn_watch(c, LOOP_READ) != 0) {
		conn_broken(c, "cannot watch the socket");
		return;
	}
	st->backoff_ms = 0;
	st->connect_after = 0;
	if (st->down) {
		st->down = 0;
		log_info(log_name, "connection to PostgreSQL %s restored", st->target);
	}
	pump(st);
}

static void conn_connect_step(struct pg_conn *c)
{
	switch (PQconnectPoll(c->pg)) {
	case PGRES_POLLING_READING:
		if (conn_watch(c, LOOP_READ) != 0)
			conn_broken(c, "cannot watch the socket");
		return;
	case PGRES_POLLING_WRITING:
		if (conn_watch(c, LOOP_WRITE) != 0)
			conn_broken(c, "cannot watch the socket");
		return;
	case PGRES_POLLING_OK:
		connect_ok(c);
		return;
	default:
		conn_broken(c, PQerrorMessage(c->pg));
		return;
	}
}

static void connect_timeout_cb(struct loop *loop, void *arg)
{
	struct pg_conn *c = arg;
	(void)loop;
	c->connect_timer = NULL;
	char why[64];
	snprintf(why, sizeof(why), "connection attempt timed out after %d ms", c->st->connect_timeout_ms);
	conn_broken(c, why);
}

/* A connection attempt failed: back off; with nothing working left the
 * store is down and waiting operations fail now instead of at their
 * deadline. */
static void connect_failed(struct pg_store *st, const char *why)
{
	char msg[512];
	copy_msg(msg, sizeof(msg), why);
	st->backoff_ms = st->backoff_ms ? st->backoff_ms * 2 : PG_BACKOFF_MIN_MS;
	if (st->backoff_ms > PG_BACKOFF_MAX_MS)
		st->backoff_ms = PG_BACKOFF_MAX_MS;
	st->connect_after = loop_now(st->loop) + st->backoff_ms;
	if (has_state(st, 1)) {
		log_warn(log_name, "cannot open another connection to %s: %s", st->target, msg);
	} else {
		if (!st->down)
			log_error(log_name, "PostgreSQL %s unavailable: %s; failing requests and reconnecting",
				  st->target, msg);
		else
			log_debug(log_name, "%s still unavailable: %s", st->target, msg);
		st->down = 1;
		if (!has_state(st, 0)) {
			while (st->qhead) {
				struct pg_op *op = st->qhead;
				st->qhead = op->next;
				if (!st->qhead)
					st->qtail = NULL;
				st->qlen--;
				op->next = NULL;
				op->where = W_NEW;
				op_fail(op, E_BACKEND);
			}
		}
	}
	arm_retry(st);
}

static void lock_lost(struct pg_lock *lk);

/* Close a connection that failed or was abandoned: its operation is
 * retried or fails, a lock held on it is lost. */
static void conn_broken(struct pg_conn *c, const char *why)
{
	struct pg_store *st = c->st;
	struct pg_op *op = c->op;
	struct pg_lock *lk = c->lock;
	int was_connecting = c->state == C_CONNECTING;
	char msg[512];
	copy_msg(msg, sizeof(msg), why);
	c->op = NULL;
	c->lock = NULL;
	conn_free(c);
	if (was_connecting) {
		connect_failed(st, msg);
	} else {
		log_warn(log_name, "connection to %s lost: %s", st->target, msg);
	}
	if (op) {
		op->conn = NULL;
		op->where = W_NEW;
		if (lk)
			lk->conn = NULL;
		int retry = !op->retried && (op->kind == OP_GET || op->kind == OP_MULTI || op->kind == OP_LIST ||
					     op->kind == OP_CLEANUP || (op->kind == OP_SET && !op->exclusive) ||
					     (op->kind == OP_LOCK && op->step != S_ROLLBACK));
		if (retry) {
			op->retried = 1;
			submit(st, op, 1);
		} else {
			/* After a ROLLBACK was sent the outcome is already known
			 * (closing rolls back too); otherwise it is unknown. */
			op_fail(op, op->step == S_ROLLBACK ? op->status : E_BACKEND);
		}
	} else if (lk) {
		lock_lost(lk);
	}
	pump(st);
}

/* Back to the pool after an operation. */
static void conn_idle(struct pg_conn *c)
{
	c->op = NULL;
	c->lock = NULL;
	if (PQtransactionStatus(c->pg) != PQTRANS_IDLE) {
		conn_broken(c, "unexpected transaction state");
		return;
	}
	c->state = C_IDLE;
	if (conn_watch(c, LOOP_READ) != 0) {
		conn_broken(c, "cannot watch the socket");
		return;
	}
	pump(c->st);
}

/* An idle (or lock-holding) connection became readable: usually the
 * server closing it (restart, pg_terminate_backend). */
static void conn_idle_io(struct pg_conn *c)
{
	if (!PQconsumeInput(c->pg) || PQstatus(c->pg) != CONNECTION_OK) {
		conn_broken(c, PQerrorMessage(c->pg));
		return;
	}
	PGnotify *n;
	while ((n = PQnotifies(c->pg)))
		PQfreemem(n);
}

static void conn_busy_io(struct pg_conn *c, int events)
{
	if (c->events & LOOP_WRITE) {
		if (conn_flush(c) != 0) {
			conn_broken(c, PQerrorMessage(c->pg));
			return;
		}
	}
	if (events & (LOOP_READ | LOOP_ERROR)) {
		if (!PQconsumeInput(c->pg)) {
			conn_broken(c, PQerrorMessage(c->pg));
			return;
		}
	}
	while (!PQisBusy(c->pg)) {
		PGresult *r = PQgetResult(c->pg);
		if (!r) {
			/* Statement complete. */
			PGresult *res = c->res;
			c->res = NULL;
			if (PQstatus(c->pg) != CONNECTION_OK) {
				PQclear(res);
				conn_broken(c, PQerrorMessage(c->pg));
				return;
			}
			op_result(c->op, res);
			return;
		}
		/* Keep the first error, else the last result. */
		ExecStatusType prev = c->res ? PQresultStatus(c->res) : PGRES_EMPTY_QUERY;
		if (c->res && (prev == PGRES_FATAL_ERROR || prev == PGRES_BAD_RESPONSE)) {
			PQclear(r);
		} else {
			PQclear(c->res);
			c->res = r;
		}
	}
	if (PQstatus(c->pg) != CONNECTION_OK)
		conn_broken(c, PQerrorMessage(c->pg));
}

static void conn_io(struct loop *loop, int fd, int events, void *arg)
{
	struct pg_conn *c = arg;
	(void)loop;
	(void)fd;
	switch (c->state) {
	case C_CONNECTING: conn_connect_step(c); break;
	case C_BUSY: conn_busy_io(c, events); break;
	case C_IDLE:
	case C_HELD: conn_idle_io(c); break;
	}
}

/* First idle connection still alive (a server that went away while it
 * was idle is noticed here at the latest). */
static struct pg_conn *idle_conn(struct pg_store *st)
{
again:
	for (struct pg_conn *c = st->conns; c; c = c->next) {
		if (c->state != C_IDLE)
			continue;
		if (!PQconsumeInput(c->pg) || PQstatus(c->pg) != CONNECTION_OK ||
		    PQtransactionStatus(c->pg) != PQTRANS_IDLE) {
			conn_broken(c, PQerrorMessage(c->pg));
			goto again;
		}
		return c;
	}
	return NULL;
}

static void conn_run(struct pg_conn *c, struct pg_op *op)
{
	c->state = C_BUSY;
	c->op = op;
	op->conn = c;
	op->where = W_RUNNING;
	if (op->kind == OP_LOCK) {
		c->lock = op->lock;
		op->step = S_BEGIN;
	} else {
		op->step = S_MAIN;
	}
	op_send(op);
}

/* Hand queued operations to idle connections; open connections (up to
 * the pool size) while operations wait.  Not re-entered. */
static void pump(struct pg_store *st)
{
	if (st->pumping) {
		st->pump_again = 1;
		return;
	}
	st->pumping = 1;
	do {
		st->pump_again = 0;
		while (st->qhead && !st->closing) {
			struct pg_conn *c = idle_conn(st);
			if (c) {
				struct pg_op *op = st->qhead;
				st->qhead = op->next;
				if (!st->qhead)
					st->qtail = NULL;
				st->qlen--;
				op->next = NULL;
				conn_run(c, op);
				continue;
			}
			if (st->down || st->nconns >= st->pool_max || n_connecting(st) >= st->qlen)
				break;
			if (loop_now(st->loop) < st->connect_after) {
				arm_retry(st);
				break;
			}
			int before = st->nconns;
			conn_start(st);
			if (st->nconns <= before && !st->pump_again)
				break; /* could not even start one */
		}
	} while (st->pump_again && !st->closing);
	st->pumping = 0;
}

static void retry_cb(struct loop *loop, void *arg)
{
	struct pg_store *st = arg;
	(void)loop;
	st->retry_timer = NULL;
	if (st->down) {
		if (!has_state(st, 0) && st->nconns < st->pool_max)
			conn_start(st);
	} else {
		pump(st);
	}
}

/* ---- operations ---- */

static void op_timeout_cb(struct loop *loop, void *arg);

static struct pg_op *op_new(struct pg_store *st, enum op_kind kind, enum storage_ns ns, void *cb, void *arg,
			    const char *key)
{
	struct pg_op *op = calloc(1, sizeof(*op));
	if (!op)
		return NULL;
	op->st = st;
	op->kind = kind;
	op->ns = ns;
	op->cb = cb;
	op->arg = arg;
	if (key && !(op->key = strdup(key))) {
		free(op);
		return NULL;
	}
	return op;
}

static void op_free(struct pg_op *op)
{
	if (op->timer)
		loop_timer_cancel(op->st->loop, op->timer);
	free(op->key);
	free(op->value);
	for (size_t i = 0; i < op->nkeys; i++)
		free(op->keys[i]);
	free(op->keys);
	free(op);
}

static int arm_deadline(struct pg_op *op)
{
	if (!op->timer)
		op->timer = loop_timer_add(op->st->loop, (uint64_t)op->st->op_timeout_ms, op_timeout_cb, op);
	return op->timer ? 0 : E_NOMEM;
}

/* ---- lock completions (always later on the loop) ---- */

struct lock_done {
	struct storage_lock *sl;
	int status;
	int release;
	void *handle;
	size_t len;
	char value[];
};

static void run_lock_done(void *p)
{
	struct lock_done *d = p;
	if (d->release)
		storage_backend_released(d->sl, d->status);
	else
		storage_backend_locked(d->sl, d->status, d->status == 0 ? d->value : NULL, d->len, d->handle);
	free(d);
}

static void lock_complete(struct pg_store *st, struct storage_lock *sl, int release, int status, const char *value,
			  size_t len, void *handle)
{
	if (status != 0 || !value)
		len = 0;
	struct lock_done *d = malloc(sizeof(*d) + len + 1);
	if (!d) {
		/* Deliver now rather than never. */
		if (release)
			storage_backend_released(sl, E_BACKEND);
		else
			storage_backend_locked(sl, E_BACKEND, NULL, 0, NULL);
		return;
	}
	d->sl = sl;
	d->status = status;
	d->release = release;
	d->handle = handle;
	d->len = len;
	if (len)
		memcpy(d->value, value, len);
	d->value[len] = '\0';
	if (loop_defer(st->loop, run_lock_done, d) != 0)
		run_lock_done(d);
}

static int lock_active(const struct pg_lock *lk)
{
	return lk->state != L_PARKED && lk->state != L_LOST;
}

/* The first parked locker of lk's key (after lk is out of the way) goes. */
static void lock_wake_next(struct pg_store *st, enum storage_ns ns, const char *key)
{
	if (st->closing)
		return;
	for (struct pg_lock *l = st->locks; l; l = l->next) {
		if (l->ns != ns || strcmp(l->key, key) != 0)
			continue;
		if (lock_active(l))
			return; /* someone already has it or is getting it */
		if (l->state == L_PARKED) {
			l->state = L_ACQUIRING;
			l->op->where = W_NEW;
			submit(st, l->op, 0);
			return;
		}
	}
}

static void lock_unlink(struct pg_lock *lk)
{
	struct pg_lock **pp = &lk->st->locks;
	while (*pp && *pp != lk)
		pp = &(*pp)->next;
	if (*pp)
		*pp = lk->next;
	if (lk->hold_timer)
		loop_timer_cancel(lk->st->loop, lk->hold_timer);
	lk->hold_timer = NULL;
}

/* lk is done (released, failed, or its lost state reported): free it and
 * let the next local locker of the key go. */
static void lock_finish(struct pg_lock *lk)
{
	struct pg_store *st = lk->st;
	int wake = lock_active(lk);
	lock_unlink(lk);
	if (wake)
		lock_wake_next(st, lk->ns, lk->key);
	free(lk);
}

/* The row lock is gone (connection closed): the holder learns it at
 * release; the next local locker may go now. */
static void lock_lost(struct pg_lock *lk)
{
	struct pg_store *st = lk->st;
	log_warn(log_name, "lock on %s key %s lost", table_names[lk->ns], lk->key);
	if (lk->hold_timer)
		loop_timer_cancel(st->loop, lk->hold_timer);
	lk->hold_timer = NULL;
	lk->conn = NULL;
	lk->state = L_LOST;
	lock_wake_next(st, lk->ns, lk->key);
}

static void lock_hold_timeout_cb(struct loop *loop, void *arg)
{
	struct pg_lock *lk = arg;
	(void)loop;
	lk->hold_timer = NULL;
	log_warn(log_name, "lock on %s key %s held longer than %d ms: rolling back", table_names[lk->ns], lk->key,
		 PG_LOCK_HOLD_MS);
	struct pg_conn *c = lk->conn;
	if (c) {
		c->lock = NULL;
		c->op = NULL;
		struct pg_store *st = c->st;
		conn_free(c); /* closing the session rolls back */
		lock_lost(lk);
		pump(st);
	}
}

/* Complete op with a failure (or a result without data) and free it. */
static void op_fail(struct pg_op *op, int status)
{
	struct storage *s = op->st->s;
	switch (op->kind) {
	case OP_GET:
		storage_complete_get(s, (storage_get_cb)op->cb, op->arg, status, NULL, 0);
		break;
	case OP_MULTI:
		storage_complete_multi(s, (storage_multi_cb)op->cb, op->arg, status, NULL, 0);
		break;
	case OP_SET:
	case OP_DEL:
		storage_complete_done(s, (storage_done_cb)op->cb, op->arg, status);
		break;
	case OP_LIST:
		storage_complete_list(s, (storage_list_cb)op->cb, op->arg, status, NULL, 0, NULL);
		break;
	case OP_CLEANUP:
		break;
	case OP_LOCK:
	case OP_RELEASE: {
		struct pg_lock *lk = op->lock;
		struct storage_lock *sl = lk->sl;
		lk->op = NULL;
		lock_finish(lk);
		lock_complete(op->st, sl, op->kind == OP_RELEASE, status, NULL, 0, NULL);
		break;
	}
	}
	op_free(op);
}

static void op_timeout_cb(struct loop *loop, void *arg)
{
	struct pg_op *op = arg;
	struct pg_store *st = op->st;
	(void)loop;
	op->timer = NULL;
	log_warn(log_name, "%s %s%s%s: no answer from %s within %d ms", op_name(op), table_names[op->ns],
		 op->key ? " key " : "", op->key ? op->key : "", st->target, st->op_timeout_ms);
	switch (op->where) {
	case W_QUEUED: {
		struct pg_op **pp = &st->qhead, *prev = NULL;
		while (*pp && *pp != op) {
			prev = *pp;
			pp = &(*pp)->next;
		}
		if (*pp) {
			*pp = op->next;
			if (st->qtail == op)
				st->qtail = prev;
			st->qlen--;
		}
		op->next = NULL;
		op_fail(op, E_BACKEND);
		break;
	}
	case W_PARKED:
		op_fail(op, E_BUSY); /* another local locker kept the key */
		break;
	case W_RUNNING: {
		struct pg_conn *c = op->conn;
		c->op = NULL;
		c->lock = NULL;
		op->conn = NULL;
		if (op->lock)
			op->lock->conn = NULL;
		conn_free(c); /* abandon the statement; the session rolls back */
		op_fail(op, op->step == S_ROLLBACK ? op->status : E_BACKEND);
		pump(st);
		break;
	}
	case W_NEW:
		op_fail(op, E_BACKEND);
		break;
	}
}

/* Queue op for a connection (front: a retry keeps its place). */
static void submit(struct pg_store *st, struct pg_op *op, int front)
{
	if (st->closing) {
		op_fail(op, E_BACKEND);
		return;
	}
	if (st->down && !has_state(st, 0)) {
		op_fail(op, E_BACKEND); /* fail fast; the retry timer reconnects */
		return;
	}
	if (st->qlen >= PG_MAX_QUEUE) {
		if (!st->queue_full_logged)
			log_warn(log_name, "%s: %d operations waiting for a connection; refusing more", st->target,
				 st->qlen);
		st->queue_full_logged = 1;
		op_fail(op, E_BACKEND);
		return;
	}
	if (arm_deadline(op) != 0) {
		op_fail(op, E_BACKEND);
		return;
	}
	if (st->qlen < PG_MAX_QUEUE / 2)
		st->queue_full_logged = 0;
	op->where = W_QUEUED;
	op->next = NULL;
	if (front) {
		op->next = st->qhead;
		st->qhead = op;
		if (!st->qtail)
			st->qtail = op;
	} else {
		if (st->qtail)
			st->qtail->next = op;
		else
			st->qhead = op;
		st->qtail = op;
	}
	st->qlen++;
	pump(st);
}

/* Build and send the current statement of op on op->conn. */
static void op_send(struct pg_op *op)
{
	struct pg_store *st = op->st;
	struct pg_conn *c = op->conn;
	const char *p[4];
	const char *sql = NULL;
	int n = 0, rc, q = -1;
	snprintf(op->now, sizeof(op->now), "%lld", storage_now_s());

	if (op->kind == OP_MULTI) {
		/* key IN ($2, $3, ...), $1 = now; not prepared (varies) */
		op->q = -1;
		size_t cap = 256 + op->nkeys * 10;
		char *text = malloc(cap);
		const char **pv = malloc((op->nkeys + 1) * sizeof(*pv));
		if (!text || !pv) {
			free(text);
			free(pv);
			conn_broken(c, "out of memory");
			return;
		}
		size_t len = (size_t)snprintf(text, cap,
					      "SELECT key, value::text FROM %s WHERE"
					      " (expires_at > TO_TIMESTAMP($1) OR expires_at IS NULL) AND key IN (",
					      table_names[op->ns]);
		for (size_t i = 0; i < op->nkeys && len < cap; i++)
			len += (size_t)snprintf(text + len, cap - len, "%s$%zu", i ? ", " : "", i + 2);
		if (len < cap)
			len += (size_t)snprintf(text + len, cap - len, ")");
		pv[0] = op->now;
		for (size_t i = 0; i < op->nkeys; i++)
			pv[i + 1] = op->keys[i];
		rc = len < cap ? conn_send(c, text, (int)op->nkeys + 1, pv) : E_LIMIT;
		free(text);
		free(pv);
		if (rc != 0)
			conn_broken(c, PQerrorMessage(c->pg));
		return;
	}

	switch (op->kind) {
	case OP_GET:
		q = Q_GET;
		p[0] = op->key;
		p[1] = op->now;
		n = 2;
		break;
	case OP_SET:
		q = op->exclusive ? Q_CREATE : Q_PUT;
		p[0] = op->key;
		p[1] = op->value;
		p[2] = op->expires[0] ? op->expires : NULL;
		p[3] = op->now;
		n = op->exclusive ? 4 : 3;
		break;
	case OP_DEL:
		q = Q_DEL;
		p[0] = op->key;
		n = 1;
		break;
	case OP_LIST:
		q = Q_LIST;
		p[0] = op->key ? op->key : "";
		p[1] = op->count;
		p[2] = op->now;
		n = 3;
		break;
	case OP_CLEANUP:
		q = Q_CLEANUP;
		p[0] = op->now;
		n = 1;
		break;
	case OP_LOCK:
	case OP_RELEASE:
		switch (op->step) {
		case S_BEGIN: {
			/* Wait for another node's row lock for most of what is
			 * left of our deadline; then E_BUSY, not a dead session. */
			static char begin[96];
			long ms = st->op_timeout_ms * 4L / 5;
			snprintf(begin, sizeof(begin), "BEGIN; SET LOCAL lock_timeout = %ld", ms > 0 ? ms : 1);
			sql = begin;
			n = -1;
			break;
		}
		case S_SELECT:
			q = Q_LOCK;
			p[0] = op->lock->key;
			p[1] = op->now;
			n = 2;
			break;
		case S_UPDATE:
			q = Q_UPDATE;
			p[0] = op->value;
			p[1] = op->lock->key;
			n = 2;
			break;
		case S_COMMIT:
			sql = "COMMIT";
			break;
		default:
			sql = "ROLLBACK";
			break;
		}
		break;
	case OP_MULTI:
		break;
	}
	op->q = q;
	if (q >= 0) {
		/* Named statements, prepared once per connection: half the
		 * server's work per operation compared to parsing each time. */
		char name[32];
		snprintf(name, sizeof(name), "exposrd_%d_%d", (int)op->ns, q);
		op->preparing = !c->prepared[op->ns][q];
		int ok = op->preparing ? PQsendPrepare(c->pg, name, st->sql[op->ns][q], n, NULL)
				       : PQsendQueryPrepared(c->pg, name, n, p, NULL, NULL, 0);
		rc = ok ? conn_flush(c) : E_BACKEND;
	} else {
		rc = conn_send(c, sql, n, p);
	}
	if (rc != 0)
		conn_broken(c, PQerrorMessage(c->pg));
}

static int res_ok(const PGresult *res)
{
	ExecStatusType t = res ? PQresultStatus(res) : PGRES_FATAL_ERROR;
	return t == PGRES_COMMAND_OK || t == PGRES_TUPLES_OK;
}

static void log_sql_error(const struct pg_op *op, const PGresult *res)
{
	char msg[512];
	copy_msg(msg, sizeof(msg), res ? PQresultErrorMessage(res) : "no result");
	const char *key = op->lock ? op->lock->key : op->key;
	log_warn(log_name, "%s %s%s%s: %s", op_name(op), table_names[op->ns], key ? " key " : "", key ? key : "",
		 msg);
}

static long affected(const PGresult *res)
{
	const char *t = PQcmdTuples((PGresult *)res);
	return t && *t ? strtol(t, NULL, 10) : 0;
}

/* Next statement of a lock/release operation on the same connection. */
static void op_next(struct pg_op *op, int step, int status)
{
	op->step = step;
	op->status = status;
	op_send(op);
}

/* The statement in flight finished with res (owned). */
static void op_result(struct pg_op *op, PGresult *res)
{
	struct pg_store *st = op->st;
	struct pg_conn *c = op->conn;
	struct storage *s = st->s;
	int ok = res_ok(res);
	if (op->preparing) {
		/* A failed prepare counts as a failure of the statement. */
		op->preparing = 0;
		if (ok) {
			c->prepared[op->ns][op->q] = 1;
			PQclear(res);
			op_send(op);
			return;
		}
	} else if (!ok && op->q >= 0 && op->step == S_MAIN && !op->reprepared) {
		/* Statement gone (DISCARD ALL, a transaction-mode pooler):
		 * prepare again, once. */
		const char *state = PQresultErrorField(res, PG_DIAG_SQLSTATE);
		if (state && strcmp(state, "26000") == 0) {
			memset(c->prepared, 0, sizeof(c->prepared));
			op->reprepared = 1;
			PQclear(res);
			op_send(op);
			return;
		}
	}
	if (!ok && !(op->kind == OP_LOCK && op->step == S_SELECT))
		log_sql_error(op, res);

	switch (op->kind) {
	case OP_GET: {
		int status = !ok ? E_BACKEND : PQntuples(res) == 0 ? E_NOTFOUND : 0;
		char *v = NULL;
		size_t len = 0;
		if (status == 0 && !(v = dup_compact(PQgetvalue(res, 0, 0), (size_t)PQgetlength(res, 0, 0), &len)))
			status = E_BACKEND;
		PQclear(res);
		conn_idle(c);
		storage_complete_get(s, (storage_get_cb)op->cb, op->arg, status, v, len);
		free(v);
		op_free(op);
		return;
	}
	case OP_MULTI: {
		int status = ok ? 0 : E_BACKEND;
		char **values = NULL;
		if (status == 0 && !(values = calloc(op->nkeys, sizeof(*values))))
			status = E_BACKEND;
		int rows = ok ? PQntuples(res) : 0;
		for (size_t i = 0; i < op->nkeys && status == 0; i++) {
			for (int r = 0; r < rows; r++) {
				if (strcmp(PQgetvalue(res, r, 0), op->keys[i]) != 0)
					continue;
				size_t len;
				if (!(values[i] = dup_compact(PQgetvalue(res, r, 1), (size_t)PQgetlength(res, r, 1),
							      &len)))
					status = E_BACKEND;
				break;
			}
		}
		PQclear(res);
		conn_idle(c);
		if (status != 0 && values) {
			for (size_t i = 0; i < op->nkeys; i++)
				free(values[i]);
			free(values);
			values = NULL;
		}
		storage_complete_multi(s, (storage_multi_cb)op->cb, op->arg, status, values,
				       status == 0 ? op->nkeys : 0);
		op_free(op);
		return;
	}
	case OP_SET: {
		long n = ok ? affected(res) : -1;
		int status = !ok ? E_BACKEND : n == 1 ? 0 : op->exclusive ? E_EXISTS : E_BACKEND;
		if (ok && n != 1 && !op->exclusive)
			log_warn(log_name, "put %s key %s: %ld rows changed", table_names[op->ns], op->key, n);
		PQclear(res);
		conn_idle(c);
		op_fail(op, status);
		return;
	}
	case OP_DEL: {
		int status = !ok ? E_BACKEND : affected(res) > 0 ? 0 : E_NOTFOUND;
		PQclear(res);
		conn_idle(c);
		op_fail(op, status);
		return;
	}
	case OP_CLEANUP: {
		if (ok && affected(res) > 0)
			log_debug(log_name, "expiry cleanup removed %ld rows from %s", affected(res),
				  table_names[op->ns]);
		PQclear(res);
		conn_idle(c);
		op_free(op);
		return;
	}
	case OP_LIST: {
		int status = ok ? 0 : E_BACKEND;
		int rows = ok ? PQntuples(res) : 0;
		char **keys = NULL, *next = NULL;
		size_t n = 0;
		if (status == 0 && rows > 0) {
			keys = calloc((size_t)rows, sizeof(*keys));
			if (!keys)
				status = E_BACKEND;
			for (int r = 0; r < rows && status == 0; r++) {
				if (!(keys[n] = strdup(PQgetvalue(res, r, 0))))
					status = E_BACKEND;
				else
					n++;
			}
			if (status == 0 && !(next = strdup(keys[n - 1])))
				status = E_BACKEND;
		}
		PQclear(res);
		conn_idle(c);
		if (status != 0) {
			for (size_t i = 0; i < n; i++)
				free(keys[i]);
			free(keys);
			free(next);
			keys = NULL;
			next = NULL;
			n = 0;
		}
		storage_complete_list(s, (storage_list_cb)op->cb, op->arg, status, keys, n, next);
		op_free(op);
		return;
	}
	case OP_LOCK:
	case OP_RELEASE:
		break;
	}

	/* Lock and release: a small statement machine on one connection. */
	struct pg_lock *lk = op->lock;
	switch (op->step) {
	case S_BEGIN:
		PQclear(res);
		if (!ok)
			op_next(op, S_ROLLBACK, E_BACKEND);
		else
			op_next(op, S_SELECT, 0);
		return;
	case S_SELECT: {
		if (!ok) {
			const char *state = PQresultErrorField(res, PG_DIAG_SQLSTATE);
			int busy = state && strcmp(state, "55P03") == 0; /* lock_not_available */
			if (busy)
				log_warn(log_name, "lock %s key %s: still locked by another session",
					 table_names[op->ns], lk->key);
			else
				log_sql_error(op, res);
			PQclear(res);
			op_next(op, S_ROLLBACK, busy ? E_BUSY : E_BACKEND);
			return;
		}
		if (PQntuples(res) == 0) {
			PQclear(res);
			op_next(op, S_ROLLBACK, E_NOTFOUND);
			return;
		}
		size_t len = 0;
		char *v = dup_compact(PQgetvalue(res, 0, 0), (size_t)PQgetlength(res, 0, 0), &len);
		PQclear(res);
		if (!v) {
			op_next(op, S_ROLLBACK, E_BACKEND);
			return;
		}
		/* Locked: the connection stays with the lock until release. */
		c->state = C_HELD;
		c->op = NULL;
		c->lock = lk;
		lk->conn = c;
		lk->state = L_HELD;
		lk->op = NULL;
		lk->hold_timer = loop_timer_add(st->loop, PG_LOCK_HOLD_MS, lock_hold_timeout_cb, lk);
		(void)conn_watch(c, LOOP_READ);
		lock_complete(st, lk->sl, 0, 0, v, len, lk);
		free(v);
		op_free(op);
		return;
	}
	case S_UPDATE: {
		long n = ok ? affected(res) : -1;
		PQclear(res);
		if (!ok || n != 1) {
			if (ok)
				log_warn(log_name, "update %s key %s: %ld rows changed", table_names[op->ns], lk->key, n);
			op_next(op, S_ROLLBACK, E_BACKEND);
		} else {
			op_next(op, S_COMMIT, 0);
		}
		return;
	}
	case S_COMMIT: {
		/* COMMIT of a failed transaction answers "ROLLBACK", no error. */
		int committed = ok && strcmp(PQcmdStatus(res), "COMMIT") == 0;
		if (ok && !committed)
			log_warn(log_name, "update %s key %s: transaction rolled back", table_names[op->ns], lk->key);
		PQclear(res);
		op->conn = NULL;
		conn_idle(c);
		op_fail(op, committed ? 0 : E_BACKEND);
		return;
	}
	default: /* S_ROLLBACK */
		PQclear(res);
		op->conn = NULL;
		if (ok) {
			conn_idle(c);
		} else {
			c->op = NULL;
			c->lock = NULL;
			conn_broken(c, "ROLLBACK failed");
		}
		op_fail(op, op->status);
		return;
	}
}

/* ---- storage_ops ---- */

static struct pg_store *store_of(struct storage *s)
{
	return storage_backend(s);
}

static void pg_get(struct storage *s, enum storage_ns ns, const char *key, storage_get_cb cb, void *arg)
{
	struct pg_store *st = store_of(s);
	struct pg_op *op = op_new(st, OP_GET, ns, (void *)cb, arg, key);
	if (!op) {
		storage_complete_get(s, cb, arg, E_BACKEND, NULL, 0);
		return;
	}
	submit(st, op, 0);
}

static void pg_get_multi(struct storage *s, enum storage_ns ns, const char *const *keys, size_t n,
			 storage_multi_cb cb, void *arg)
{
	struct pg_store *st = store_of(s);
	if (n == 0) {
		storage_complete_multi(s, cb, arg, 0, NULL, 0);
		return;
	}
	if (n > PG_MAX_MULTI) {
		log_warn(log_name, "get_multi of %zu keys: at most %d", n, PG_MAX_MULTI);
		storage_complete_multi(s, cb, arg, E_INVAL, NULL, 0);
		return;
	}
	struct pg_op *op = op_new(st, OP_MULTI, ns, (void *)cb, arg, NULL);
	if (op && (op->keys = calloc(n, sizeof(*op->keys)))) {
		op->nkeys = n;
		for (size_t i = 0; i < n; i++) {
			if (!(op->keys[i] = strdup(keys[i] ? keys[i] : ""))) {
				op_fail(op, E_BACKEND);
				return;
			}
		}
		submit(st, op, 0);
		return;
	}
	if (op)
		op_free(op);
	storage_complete_multi(s, cb, arg, E_BACKEND, NULL, 0);
}

static void pg_set(struct storage *s, enum storage_ns ns, const char *key, const char *value, size_t len,
		   int exclusive, long ttl, storage_done_cb cb, void *arg)
{
	struct pg_store *st = store_of(s);
	struct pg_op *op = op_new(st, OP_SET, ns, (void *)cb, arg, key);
	if (!op || !(op->value = malloc(len + 1))) {
		if (op)
			op_free(op);
		storage_complete_done(s, cb, arg, E_BACKEND);
		return;
	}
	memcpy(op->value, value, len);
	op->value[len] = '\0';
	if (strlen(op->value) != len) { /* NUL inside: not JSON text */
		op_fail(op, E_INVAL);
		return;
	}
	op->exclusive = exclusive;
	if (ttl > 0)
		snprintf(op->expires, sizeof(op->expires), "%lld", storage_now_s() + ttl);
	submit(st, op, 0);
}

static void pg_del(struct storage *s, enum storage_ns ns, const char *key, storage_done_cb cb, void *arg)
{
	struct pg_store *st = store_of(s);
	struct pg_op *op = op_new(st, OP_DEL, ns, (void *)cb, arg, key);
	if (!op) {
		storage_complete_done(s, cb, arg, E_BACKEND);
		return;
	}
	submit(st, op, 0);
}

static void pg_list(struct storage *s, enum storage_ns ns, const char *cursor, size_t count,
		    storage_list_cb cb, void *arg)
{
	struct pg_store *st = store_of(s);
	struct pg_op *op = op_new(st, OP_LIST, ns, (void *)cb, arg, cursor ? cursor : "");
	if (!op) {
		storage_complete_list(s, cb, arg, E_BACKEND, NULL, 0, NULL);
		return;
	}
	snprintf(op->count, sizeof(op->count), "%zu", count);
	submit(st, op, 0);
}

static void pg_lock_get(struct storage *s, enum storage_ns ns, const char *key, struct storage_lock *sl)
{
	struct pg_store *st = store_of(s);
	size_t klen = strlen(key);
	struct pg_lock *lk = calloc(1, sizeof(*lk) + klen + 1);
	struct pg_op *op = lk ? op_new(st, OP_LOCK, ns, NULL, NULL, NULL) : NULL;
	if (!op) {
		free(lk);
		lock_complete(st, sl, 0, E_BACKEND, NULL, 0, NULL);
		return;
	}
	lk->st = st;
	lk->sl = sl;
	lk->ns = ns;
	memcpy(lk->key, key, klen + 1);
	lk->op = op;
	op->lock = lk;
	int busy = 0;
	struct pg_lock **pp = &st->locks;
	for (; *pp; pp = &(*pp)->next)
		if ((*pp)->ns == ns && lock_active(*pp) && strcmp((*pp)->key, key) == 0)
			busy = 1;
	*pp = lk; /* append: arrival order is the local FIFO */
	if (busy) {
		lk->state = L_PARKED;
		op->where = W_PARKED;
		if (arm_deadline(op) != 0)
			op_fail(op, E_BACKEND);
		return;
	}
	lk->state = L_ACQUIRING;
	submit(st, op, 0);
}

static void pg_lock_release(struct storage *s, struct storage_lock *sl, void *handle, const char *value,
			    size_t len)
{
	struct pg_store *st = store_of(s);
	struct pg_lock *lk = handle;
	if (lk->state != L_HELD || !lk->conn) {
		lock_finish(lk);
		lock_complete(st, sl, 1, E_BACKEND, NULL, 0, NULL);
		return;
	}
	if (lk->hold_timer)
		loop_timer_cancel(st->loop, lk->hold_timer);
	lk->hold_timer = NULL;
	struct pg_op *op = op_new(st, OP_RELEASE, lk->ns, NULL, NULL, NULL);
	int status = 0;
	if (op && value) {
		if (len > STORAGE_MAX_VALUE || memchr(value, '\0', len))
			status = E_INVAL;
		else if ((op->value = malloc(len + 1))) {
			memcpy(op->value, value, len);
			op->value[len] = '\0';
		} else
			status = E_BACKEND;
	}
	struct pg_conn *c = lk->conn;
	if (!op) {
		/* Cannot even say ROLLBACK: closing the session does it. */
		c->lock = NULL;
		conn_free(c);
		lock_lost(lk);
		lock_finish(lk);
		lock_complete(st, sl, 1, E_BACKEND, NULL, 0, NULL);
		pump(st);
		return;
	}
	op->lock = lk;
	lk->op = op;
	lk->state = L_RELEASING;
	c->state = C_BUSY;
	c->op = op;
	op->conn = c;
	op->where = W_RUNNING;
	if (arm_deadline(op) != 0)
		status = E_BACKEND;
	op->status = status;
	op->step = op->value && status == 0 ? S_UPDATE : S_ROLLBACK;
	op_send(op);
}

/* ---- URL, startup, cleanup, close ---- */

static int query_param_is(const char *p, size_t n, const char *name)
{
	size_t k = strlen(name);
	return n > k && strncmp(p, name, k) == 0 && p[k] == '=';
}

/* Rewrite the URL's query for libpq (spec §2.1): ssl=true|1 ->
 * sslmode=require, ssl=false|0 -> sslmode=disable (an explicit sslmode
 * wins), sslmode=no-verify -> sslmode=require without a root certificate.
 * postgres:// and postgresql:// are both libpq URIs. */
static int translate_url(const char *url, char *out, size_t cap)
{
	const char *q = strchr(url, '?');
	size_t base = q ? (size_t)(q - url) : strlen(url);
	if (base >= cap)
		return E_LIMIT;
	memcpy(out, url, base);
	size_t len = base;
	int ssl = -1, no_verify = 0, has_sslmode = 0;
	char sep = '?';
	for (const char *p = q ? q + 1 : NULL; p && *p;) {
		size_t n = strcspn(p, "&");
		if (n == 17 && strncmp(p, "sslmode=no-verify", 17) == 0)
			no_verify = 1;
		p += n;
		if (*p == '&')
			p++;
	}
	for (const char *p = q ? q + 1 : NULL; p && *p;) {
		size_t n = strcspn(p, "&");
		if (query_param_is(p, n, "ssl")) {
			const char *v = p + 4;
			size_t vn = n - 4;
			if ((vn == 4 && strncmp(v, "true", 4) == 0) || (vn == 1 && *v == '1'))
				ssl = 1;
			else if ((vn == 5 && strncmp(v, "false", 5) == 0) || (vn == 1 && *v == '0'))
				ssl = 0;
			else
				return E_INVAL;
		} else if (no_verify && (query_param_is(p, n, "sslmode") || query_param_is(p, n, "sslrootcert"))) {
			/* replaced below: no-verify never verifies */
		} else if (n > 0) {
			if (query_param_is(p, n, "sslmode"))
				has_sslmode = 1;
			if (len + n + 2 >= cap)
				return E_LIMIT;
			out[len++] = sep;
			memcpy(out + len, p, n);
			len += n;
			sep = '&';
		}
		p += n;
		if (*p == '&')
			p++;
	}
	const char *extra = NULL;
	if (no_verify)
		extra = "sslmode=require&sslrootcert=" PG_NO_VERIFY_ROOTCERT;
	else if (ssl == 1 && !has_sslmode)
		extra = "sslmode=require";
	else if (ssl == 0 && !has_sslmode)
		extra = "sslmode=disable";
	if (extra) {
		size_t n = strlen(extra);
		if (len + n + 2 >= cap)
			return E_LIMIT;
		out[len++] = sep;
		memcpy(out + len, extra, n);
		len += n;
	}
	out[len] = '\0';
	return 0;
}

static void free_params(struct pg_store *st)
{
	for (size_t i = 0; i < st->nkw; i++) {
		free(st->kw[i]);
		free(st->val[i]);
	}
	free(st->kw);
	free(st->val);
}

/* URL -> keyword/value arrays for PQconnect*Params (no expansion later). */
static int build_params(struct pg_store *st, const char *url)
{
	char *u = malloc(PG_MAX_URL);
	if (!u)
		return E_NOMEM;
	int rc = translate_url(url, u, PG_MAX_URL);
	if (rc != 0) {
		log_error(log_name, "invalid PostgreSQL URL: %s", rc == E_INVAL ? "ssl must be true, false, 1 or 0"
									   : "too long");
		free(u);
		return E_INVAL;
	}
	char *errmsg = NULL;
	PQconninfoOption *opts = PQconninfoParse(u, &errmsg);
	free(u);
	if (!opts) {
		char msg[512];
		copy_msg(msg, sizeof(msg), errmsg ? errmsg : "out of memory");
		log_error(log_name, "invalid PostgreSQL URL: %s", msg);
		PQfreemem(errmsg);
		return E_INVAL;
	}
	size_t n = 0;
	for (PQconninfoOption *o = opts; o->keyword; o++)
		n++;
	st->kw = calloc(n + 3, sizeof(char *));
	st->val = calloc(n + 3, sizeof(char *));
	st->nkw = st->kw && st->val ? n + 3 : 0;
	if (!st->kw || !st->val) {
		PQconninfoFree(opts);
		return E_NOMEM;
	}
	size_t k = 0;
	int has_timeout = 0;
	const char *host = NULL, *port = NULL, *db = NULL, *user = NULL;
	st->connect_timeout_ms = PG_CONNECT_TIMEOUT_S * 1000;
	for (PQconninfoOption *o = opts; o->keyword; o++) {
		if (!o->val)
			continue;
		if (strcmp(o->keyword, "sslmode") == 0 && !PQsslAttribute(NULL, "library") &&
		    (strcmp(o->val, "require") == 0 || strncmp(o->val, "verify-", 7) == 0)) {
			/* A libpq without TLS (the small static flavour) must not
			 * quietly connect in plain text, nor retry forever. */
			log_error(log_name, "PostgreSQL URL asks for TLS (sslmode=%s) but this build's libpq has no TLS "
				  "support; use the full flavour or sslmode=disable", o->val);
			PQconninfoFree(opts);
			return E_INVAL;
		}
		if (strcmp(o->keyword, "connect_timeout") == 0) {
			long t = strtol(o->val, NULL, 10);
			has_timeout = 1;
			/* libpq: at least 2 s; 0 = forever, which we do not do. */
			if (t > 0)
				st->connect_timeout_ms = (int)((t < 2 ? 2 : t > 3600 ? 3600 : t) * 1000);
		}
		st->kw[k] = strdup(o->keyword);
		st->val[k] = strdup(o->val);
		if (!st->kw[k] || !st->val[k]) {
			PQconninfoFree(opts);
			return E_NOMEM;
		}
		k++;
	}
	if (!has_timeout) {
		char t[16];
		snprintf(t, sizeof(t), "%d", PG_CONNECT_TIMEOUT_S);
		st->kw[k] = strdup("connect_timeout");
		st->val[k] = strdup(t);
		k++;
	}
	st->kw[k] = strdup("fallback_application_name");
	st->val[k] = strdup("exposrd");
	k++;
	for (size_t i = 0; i < k; i++)
		if (!st->kw[i] || !st->val[i])
			rc = E_NOMEM;
	for (size_t i = 0; i < k; i++) {
		if (!st->kw[i])
			continue;
		if (strcmp(st->kw[i], "host") == 0)
			host = st->val[i];
		else if (strcmp(st->kw[i], "port") == 0)
			port = st->val[i];
		else if (strcmp(st->kw[i], "dbname") == 0)
			db = st->val[i];
		else if (strcmp(st->kw[i], "user") == 0)
			user = st->val[i];
	}
	snprintf(st->target, sizeof(st->target), "%s%s%s:%s/%s", user ? user : "", user ? "@" : "",
		 host ? host : "(default host)", port ? port : "5432", db ? db : (user ? user : ""));
	PQconninfoFree(opts);
	return rc;
}

static int exec_ok(PGconn *pg, const char *sql, int nparams, const char *const *params, char *err, size_t errcap)
{
	PGresult *r = PQexecParams(pg, sql, nparams, NULL, params, NULL, NULL, 0);
	int ok = res_ok(r);
	if (!ok)
		snprintf(err, errcap, "%s: %s", sql, r ? PQresultErrorMessage(r) : PQerrorMessage(pg));
	PQclear(r);
	return ok ? 0 : E_BACKEND;
}

/* Probe, schema and cleanup on a fresh blocking connection. */
static int startup_queries(struct pg_store *st, PGconn *pg, char *err, size_t errcap)
{
	if (exec_ok(pg, "SELECT NOW()", 0, NULL, err, errcap) != 0)
		return E_BACKEND;
	char sql[PG_MAX_SQL];
	for (int ns = 0; ns < NS_COUNT; ns++) {
		for (size_t i = 0; i < sizeof(schema_templates) / sizeof(schema_templates[0]); i++) {
			snprintf(sql, sizeof(sql), schema_templates[i], table_names[ns], table_names[ns]);
			if (exec_ok(pg, sql, 0, NULL, err, errcap) != 0)
				return E_BACKEND;
		}
	}
	char now[24];
	snprintf(now, sizeof(now), "%lld", storage_now_s());
	const char *p[1] = {now};
	for (int ns = 0; ns < NS_COUNT; ns++) {
		char e[256];
		if (exec_ok(pg, st->sql[ns][Q_CLEANUP], 1, p, e, sizeof(e)) != 0) {
			trim_msg(e);
			log_warn(log_name, "expiry cleanup of %s: %s", table_names[ns], e);
		}
	}
	return 0;
}

static void sleep_ms(long ms)
{
	struct timespec ts = {ms / 1000, (ms % 1000) * 1000000L};
	while (nanosleep(&ts, &ts) != 0 && errno == EINTR)
		;
}

/* Blocking: only at startup.  Retries until the startup window closes. */
static int startup(struct pg_store *st, int window_ms)
{
	uint64_t t0 = loop_mono_us() / 1000u;
	uint64_t deadline = t0 + (uint64_t)window_ms;
	long delay = 250;
	char err[512] = "";
	for (int attempt = 1;; attempt++) {
		PGconn *pg = PQconnectdbParams((const char *const *)st->kw, (const char *const *)st->val, 0);
		if (!pg)
			return E_NOMEM;
		PQsetNoticeProcessor(pg, notice_cb, NULL);
		int rc = PQstatus(pg) == CONNECTION_OK ? startup_queries(st, pg, err, sizeof(err)) : E_BACKEND;
		if (rc == 0) {
			struct pg_conn *c = PQsetnonblocking(pg, 1) == 0 ? conn_new(st, pg, C_IDLE) : NULL;
			if (!c || conn_watch(c, LOOP_READ) != 0) {
				if (c)
					conn_free(c);
				else
					PQfinish(pg);
				log_error(log_name, "cannot set up the PostgreSQL connection");
				return E_NOMEM;
			}
			return 0;
		}
		if (PQstatus(pg) != CONNECTION_OK)
			copy_msg(err, sizeof(err), PQerrorMessage(pg));
		else
			trim_msg(err);
		PQfinish(pg);
		uint64_t now = loop_mono_us() / 1000u;
		if (now >= deadline) {
			log_error(log_name, "cannot use PostgreSQL %s: %s (gave up after %d attempts in %.1f s)",
				  st->target, err, attempt, (double)(now - t0) / 1000.0);
			return E_BACKEND;
		}
		log_warn(log_name, "PostgreSQL %s not ready (attempt %d): %s; retrying", st->target, attempt, err);
		long left = (long)(deadline - now);
		sleep_ms(delay < left ? delay : left);
		delay = delay * 2 > 4000 ? 4000 : delay * 2;
	}
}

static void cleanup_timer_cb(struct loop *loop, void *arg)
{
	struct pg_store *st = arg;
	st->cleanup_timer = loop_timer_add(loop, PG_CLEANUP_MS, cleanup_timer_cb, st);
	if (!st->cleanup_timer)
		log_warn(log_name, "cannot rearm the expiry cleanup timer: out of memory");
	for (int ns = 0; ns < NS_COUNT; ns++) {
		struct pg_op *op = op_new(st, OP_CLEANUP, (enum storage_ns)ns, NULL, NULL, NULL);
		if (op)
			submit(st, op, 0);
	}
}

static void pg_close(void *backend)
{
	struct pg_store *st = backend;
	if (!st)
		return;
	st->closing = 1;
	if (st->cleanup_timer)
		loop_timer_cancel(st->loop, st->cleanup_timer);
	if (st->retry_timer)
		loop_timer_cancel(st->loop, st->retry_timer);
	while (st->qhead) {
		struct pg_op *op = st->qhead;
		st->qhead = op->next;
		st->qlen--;
		op->next = NULL;
		op->where = W_NEW;
		op_fail(op, E_BACKEND);
	}
	st->qtail = NULL;
	while (st->conns) {
		struct pg_conn *c = st->conns;
		struct pg_op *op = c->op;
		c->op = NULL;
		c->lock = NULL;
		conn_free(c);
		if (op) {
			op->conn = NULL;
			op->where = W_NEW;
			op_fail(op, op->step == S_ROLLBACK ? op->status : E_BACKEND);
		}
	}
	/* Parked lockers fail; a lock still held by a caller is abandoned
	 * (its handle must not be used after storage_close). */
	while (st->locks) {
		struct pg_lock *lk = st->locks;
		if (lk->op) {
			lk->op->where = W_NEW;
			op_fail(lk->op, E_BACKEND); /* unlinks and frees lk */
		} else {
			lock_unlink(lk);
			free(lk);
		}
	}
	free_params(st);
	free(st);
}

static int pg_open(struct storage *s, const char *url, void **backend)
{
	struct pg_store *st = calloc(1, sizeof(*st));
	if (!st)
		return E_NOMEM;
	st->s = s;
	st->loop = storage_loop(s);
	st->pool_max = pool_size_setting;
	st->op_timeout_ms = env_ms("EXPOSRD_PGSQL_OP_TIMEOUT_MS", PG_OP_TIMEOUT_MS);
	int window = env_ms("EXPOSRD_PGSQL_STARTUP_TIMEOUT_MS", PG_STARTUP_TIMEOUT_MS);
	for (int ns = 0; ns < NS_COUNT; ns++)
		for (int q = 0; q < Q_COUNT; q++) {
			const char *t = table_names[ns];
			snprintf(st->sql[ns][q], PG_MAX_SQL, sql_templates[q], t, t, t);
		}
	int rc = st->loop ? build_params(st, url) : E_INVAL;
	if (!st->loop)
		log_error(log_name, "PostgreSQL storage needs an event loop");
	if (rc == 0)
		rc = startup(st, window);
	if (rc == 0) {
		st->cleanup_timer = loop_timer_add(st->loop, PG_CLEANUP_MS, cleanup_timer_cb, st);
		if (!st->cleanup_timer)
			rc = E_NOMEM;
	}
	if (rc != 0) {
		pg_close(st);
		return rc;
	}
	log_info(log_name, "PostgreSQL storage initialized: %s (pool of %d connections)", st->target, st->pool_max);
	*backend = st;
	return 0;
}

const struct storage_ops storage_pgsql_ops = {
	.name = "postgres",
	.open = pg_open,
	.close = pg_close,
	.get = pg_get,
	.get_multi = pg_get_multi,
	.set = pg_set,
	.del = pg_del,
	.list = pg_list,
	.lock_get = pg_lock_get,
	.lock_release = pg_lock_release,
};
