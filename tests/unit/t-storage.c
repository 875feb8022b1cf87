/* t-storage.c - storage contract tests (spec/storage.md §4, §6, §7.1).
 *
 * The same cases run against every backend compiled in: memory:// and
 * (WITH_SQLITE) sqlite://<fresh file under /tmp>.  Every case gets a new
 * loop and a new, empty store.  Every callback is checked to run later on
 * the loop, never inside the call that started the operation.  Waits are
 * bounded by a timer so a lost callback fails the test instead of hanging.
 */
#include <errno.h>
#include <stdint.h>
#include <time.h>
#include <unistd.h>

#include "test.h"
#include "err.h"
#include "log.h"
#include "loop.h"
#include "storage.h"

#if WITH_SQLITE
#include <sqlite3.h>
#endif
#if WITH_PGSQL
#include <libpq-fe.h>
#endif

#define WAIT_MS 5000 /* upper bound for any single wait */

/* ---- harness -------------------------------------------------------- */

struct backend {
	const char *name;
	int sqlite;
	/* Networked backends: the server URL comes from this environment
	 * variable (CI starts the servers), and reset() empties the store
	 * before each case.  A backend compiled in but without its URL fails
	 * rather than being skipped silently. */
	const char *url_env;
	void (*reset)(const char *url);
};

/* Backend-specific reset functions (networked backends) go here. */

#if WITH_REDIS
#include <hiredis/hiredis.h>

/* FLUSHDB over a short blocking connection.  url is
 * redis://[[user]:password@]host[:port][/db], as the backend takes it
 * (no %-escapes needed for test URLs). */
static void reset_redis(const char *u)
{
	char host[256] = "127.0.0.1", user[128] = "", pass[128] = "";
	int port = 6379, db = 0;
	const char *p = strncmp(u, "redis://", 8) == 0 ? u + 8 : u;
	const char *at = strchr(p, '@');
	if (at) {
		const char *colon = memchr(p, ':', (size_t)(at - p));
		if (colon) {
			snprintf(user, sizeof(user), "%.*s", (int)(colon - p), p);
			snprintf(pass, sizeof(pass), "%.*s", (int)(at - colon - 1), colon + 1);
		}
		p = at + 1;
	}
	size_t hl = strcspn(p, ":/");
	if (hl > 0 && hl < sizeof(host))
		snprintf(host, sizeof(host), "%.*s", (int)hl, p);
	p += hl;
	if (*p == ':')
		port = atoi(++p);
	p += strcspn(p, "/");
	if (*p == '/')
		db = atoi(p + 1);
	struct timeval tv = {5, 0};
	redisContext *c = redisConnectWithTimeout(host, port, tv);
	if (!c || c->err) {
		printf("#   reset: cannot connect to redis at %s:%d: %s\n", host, port, c ? c->errstr : "oom");
		exit(2);
	}
	redisReply *rep = NULL;
	if (pass[0]) {
		rep = user[0] ? redisCommand(c, "AUTH %s %s", user, pass) : redisCommand(c, "AUTH %s", pass);
		freeReplyObject(rep);
	}
	rep = redisCommand(c, "SELECT %d", db);
	freeReplyObject(rep);
	rep = redisCommand(c, "FLUSHDB");
	if (!rep || rep->type == REDIS_REPLY_ERROR) {
		printf("#   reset: FLUSHDB failed: %s\n", rep ? rep->str : c->errstr);
		exit(2);
	}
	freeReplyObject(rep);
	redisFree(c);
}
#endif

#if WITH_PGSQL
/* Empty the three tables (those that exist yet) over a short blocking
 * connection. */
static void reset_pgsql(const char *u)
{
	PGconn *c = PQconnectdb(u);
	if (PQstatus(c) != CONNECTION_OK) {
		printf("#   reset: cannot connect to %s: %s", u, PQerrorMessage(c));
		exit(2);
	}
	PGresult *r = PQexec(c, "DO $$ BEGIN"
		" IF to_regclass('account') IS NOT NULL THEN TRUNCATE account; END IF;"
		" IF to_regclass('tunnel') IS NOT NULL THEN TRUNCATE tunnel; END IF;"
		" IF to_regclass('ingress_altnames') IS NOT NULL THEN TRUNCATE ingress_altnames; END IF;"
		" END $$");
	if (PQresultStatus(r) != PGRES_COMMAND_OK) {
		printf("#   reset: TRUNCATE failed: %s", PQresultErrorMessage(r));
		exit(2);
	}
	PQclear(r);
	PQfinish(c);
}

/* JSONB re-orders and re-spaces values: compare them as JSON, on the
 * server. */
static int pg_json_same(const char *a, const char *b)
{
	PGconn *c = PQconnectdb(getenv("EXPOSRD_TEST_PGSQL_URL"));
	const char *p[2] = {a, b};
	PGresult *r = PQexecParams(c, "SELECT $1::jsonb = $2::jsonb", 2, NULL, p, NULL, NULL, 0);
	int same = PQresultStatus(r) == PGRES_TUPLES_OK && strcmp(PQgetvalue(r, 0, 0), "t") == 0;
	PQclear(r);
	PQfinish(c);
	return same;
}
#endif

static const struct backend backends[] = {
	{"memory", 0, NULL, NULL},
#if WITH_SQLITE
	{"sqlite", 1, NULL, NULL},
#endif
#if WITH_REDIS
	{"redis", 0, "EXPOSRD_TEST_REDIS_URL", reset_redis},
#endif
#if WITH_PGSQL
	{"postgres", 0, "EXPOSRD_TEST_PGSQL_URL", reset_pgsql},
#endif
};

static const struct backend *cur;   /* backend under test */
static struct loop *L;              /* loop of the current case */
static struct storage *S;           /* store of the current case */
static char db_path[64];            /* sqlite file of the current case */
static char url[128];
static int calling;                 /* 1 while inside a storage_* call */
static int timed_out;

static void make_db_path(void)
{
	snprintf(db_path, sizeof(db_path), "/tmp/t-storage-XXXXXX");
	int fd = mkstemp(db_path);
	if (fd < 0) {
		perror("mkstemp");
		exit(2);
	}
	(void)close(fd); /* sqlite accepts an empty file as a new database */
}

static void remove_db_files(const char *path)
{
	static const char *const sfx[] = {"", "-wal", "-shm", "-journal"};
	char p[96];
	for (size_t i = 0; i < sizeof(sfx) / sizeof(sfx[0]); i++) {
		snprintf(p, sizeof(p), "%s%s", path, sfx[i]);
		(void)unlink(p);
	}
}

static struct storage *open_url(const char *u)
{
	char err[256];
	struct storage *s = storage_open(L, u, err, sizeof(err));
	if (!s)
		printf("#   storage_open(%s): %s\n", u, err);
	return s;
}

static void setup(void)
{
	L = loop_new();
	if (!L)
		exit(2);
	db_path[0] = '\0';
	if (cur->sqlite) {
		make_db_path();
		snprintf(url, sizeof(url), "sqlite://%s", db_path);
	} else if (cur->url_env) {
		const char *u = getenv(cur->url_env);
		snprintf(url, sizeof(url), "%s", u ? u : "");
		if (cur->reset)
			cur->reset(url);
	} else {
		snprintf(url, sizeof(url), "memory://");
	}
	S = open_url(url);
	if (!S) {
		printf("#   cannot open %s\n", url);
		exit(2);
	}
}

static void teardown(void)
{
	storage_close(S);
	S = NULL;
	loop_free(L);
	L = NULL;
	if (db_path[0])
		remove_db_files(db_path);
}

static void on_timeout(struct loop *loop, void *arg)
{
	timed_out = 1;
	loop_stop(loop);
}

static void on_kick(struct loop *loop, void *arg)
{
}

/* Run the loop until *counter >= target or WAIT_MS passed; 0 on success. */
static int wait_until(const int *counter, int target)
{
	if (*counter >= target)
		return 0;
	timed_out = 0;
	struct loop_timer *t = loop_timer_add(L, WAIT_MS, on_timeout, NULL);
	/* loop_run polls once even when a deferred callback at the top of the
	 * iteration has called loop_stop; a due timer keeps that poll from
	 * blocking.  It always fires in the first iteration (no cancel). */
	(void)loop_timer_add(L, 0, on_kick, NULL);
	while (*counter < target && !timed_out)
		(void)loop_run(L);
	if (!timed_out)
		loop_timer_cancel(L, t);
	else
		printf("#   timed out waiting for a callback\n");
	return *counter >= target ? 0 : -1;
}

/* Sleep ms milliseconds (no loop activity). */
static void sleep_ms(long ms)
{
	struct timespec ts = {ms / 1000, (ms % 1000) * 1000000L};
	while (nanosleep(&ts, &ts) != 0 && errno == EINTR)
		;
}

/* One result of any operation kind. */
struct res {
	int called;
	int sync;     /* callback ran inside the call */
	int status;
	char *value;
	char **items; /* multi values or list keys (copied) */
	size_t n;
	int has_cursor;
	char *cursor;
	struct storage_lock *lock;
};

static void res_free(struct res *r)
{
	free(r->value);
	for (size_t i = 0; i < r->n; i++)
		free(r->items[i]);
	free(r->items);
	free(r->cursor);
	memset(r, 0, sizeof(*r));
}

static void mark(struct res *r, int status)
{
	r->called++;
	if (calling)
		r->sync = 1;
	r->status = status;
	loop_stop(L);
}

static void get_cb(void *arg, int status, const char *value, size_t len)
{
	struct res *r = arg;
	mark(r, status);
	if (status == 0) {
		CHECK(value != NULL);
		if (value) {
			CHECK_EQ(strlen(value), len);
			r->value = strdup(value);
		}
	} else {
		CHECK(value == NULL);
	}
}

static void done_cb(void *arg, int status)
{
	mark(arg, status);
}

static void copy_items(struct res *r, char *const *items, size_t n)
{
	r->n = n;
	r->items = calloc(n ? n : 1, sizeof(*r->items));
	for (size_t i = 0; i < n; i++)
		r->items[i] = items[i] ? strdup(items[i]) : NULL;
}

static void multi_cb(void *arg, int status, char *const *values, size_t n)
{
	struct res *r = arg;
	mark(r, status);
	copy_items(r, values, n);
}

static void list_cb(void *arg, int status, char *const *keys, size_t n, const char *next)
{
	struct res *r = arg;
	mark(r, status);
	copy_items(r, keys, n);
	r->has_cursor = next != NULL;
	r->cursor = next ? strdup(next) : NULL;
}

static void locked_cb(void *arg, int status, const char *value, size_t len, struct storage_lock *lock)
{
	struct res *r = arg;
	mark(r, status);
	r->lock = lock;
	if (status == 0) {
		CHECK(lock != NULL);
		r->value = value ? strdup(value) : NULL;
	} else {
		CHECK(lock == NULL);
	}
}

/* Finish one operation started with CALL: wait, check it was async. */
static int finish(struct res *r)
{
	if (wait_until(&r->called, 1) != 0)
		return E_TIMEOUT;
	CHECK_EQ(r->called, 1);
	CHECK_EQ(r->sync, 0);
	return r->status;
}

#define CALL(expr) do { calling = 1; expr; calling = 0; } while (0)

/* Synchronous-looking wrappers for the simple cases. */
static int do_set(enum storage_ns ns, const char *key, const char *value, int exclusive, long ttl)
{
	struct res r = {0};
	if (exclusive)
		CALL(storage_create(S, ns, key, value, strlen(value), ttl, done_cb, &r));
	else
		CALL(storage_put(S, ns, key, value, strlen(value), ttl, done_cb, &r));
	int rc = finish(&r);
	res_free(&r);
	return rc;
}

static int do_create(enum storage_ns ns, const char *key, const char *value, long ttl)
{
	return do_set(ns, key, value, 1, ttl);
}

static int do_put(enum storage_ns ns, const char *key, const char *value, long ttl)
{
	return do_set(ns, key, value, 0, ttl);
}

/* *out (if given) gets a malloc'd copy of the value or NULL. */
static int do_get(enum storage_ns ns, const char *key, char **out)
{
	struct res r = {0};
	CALL(storage_get(S, ns, key, get_cb, &r));
	int rc = finish(&r);
	if (out) {
		*out = r.value;
		r.value = NULL;
	}
	res_free(&r);
	return rc;
}

static int do_del(enum storage_ns ns, const char *key)
{
	struct res r = {0};
	CALL(storage_delete(S, ns, key, done_cb, &r));
	int rc = finish(&r);
	res_free(&r);
	return rc;
}

/* Values compare as text, except where the backend stores JSONB (which
 * re-orders members): there as JSON. */
static int json_same(const char *got, const char *want)
{
	if (!got || !want)
		return 0;
	if (strcmp(got, want) == 0)
		return 1;
#if WITH_PGSQL
	if (strcmp(cur->name, "postgres") == 0)
		return pg_json_same(got, want);
#endif
	return 0;
}

#define CHECK_JSON(a, b) do { const char *cj_a_ = (a), *cj_b_ = (b); \
	if (!json_same(cj_a_, cj_b_)) CHECK_STR(cj_a_, cj_b_); } while (0)

/* Check that key holds exactly want (NULL: not found). */
#define CHECK_VALUE(ns, key, want) do { char *v_ = NULL; int rc_ = do_get((ns), (key), &v_); \
	if (want) { CHECK_EQ(rc_, 0); CHECK_JSON(v_, (want)); } \
	else { CHECK_EQ(rc_, E_NOTFOUND); CHECK(v_ == NULL); } free(v_); } while (0)

/* Wait until the wall clock (seconds) reaches t. */
static void wait_wall(long long t)
{
	while (storage_now_s() < t)
		sleep_ms(20);
}

/* ---- contract cases (every backend) --------------------------------- */

TEST(t_create_exclusive)
{
	CHECK_EQ(do_create(NS_TUNNEL, "my-tunnel", "{\"id\":\"my-tunnel\"}", 0), 0);
	CHECK_EQ(do_create(NS_TUNNEL, "my-tunnel", "{\"id\":\"other\"}", 0), E_EXISTS);
	CHECK_VALUE(NS_TUNNEL, "my-tunnel", "{\"id\":\"my-tunnel\"}");
	/* An invalid key is refused, still asynchronously. */
	CHECK_EQ(do_create(NS_TUNNEL, "", "{}", 0), E_INVAL);
}

TEST(t_get)
{
	const char *v = "{\"accountId\":\"MNF4P6Y6M2MRRVCT\",\"id\":\"MNF4P6Y6M2MRRVCT\",\"tunnels\":[]}";
	CHECK_EQ(do_create(NS_ACCOUNT, "MNF4P6Y6M2MRRVCT", v, 0), 0);
	CHECK_VALUE(NS_ACCOUNT, "MNF4P6Y6M2MRRVCT", v);
	/* keys are case-sensitive */
	CHECK_VALUE(NS_ACCOUNT, "mnf4p6y6m2mrrvct", NULL);
}

TEST(t_get_missing)
{
	CHECK_VALUE(NS_TUNNEL, "nope", NULL);
	CHECK_VALUE(NS_TUNNEL, "", NULL);
}

TEST(t_namespaces_separate)
{
	CHECK_EQ(do_create(NS_ACCOUNT, "same", "{\"a\":1}", 0), 0);
	CHECK_EQ(do_create(NS_TUNNEL, "same", "{\"t\":1}", 0), 0);
	CHECK_EQ(do_create(NS_ALTNAME, "same", "{\"n\":1}", 0), 0);
	CHECK_VALUE(NS_ACCOUNT, "same", "{\"a\":1}");
	CHECK_VALUE(NS_TUNNEL, "same", "{\"t\":1}");
	CHECK_VALUE(NS_ALTNAME, "same", "{\"n\":1}");
	CHECK_EQ(do_del(NS_TUNNEL, "same"), 0);
	CHECK_VALUE(NS_ACCOUNT, "same", "{\"a\":1}");
	CHECK_VALUE(NS_TUNNEL, "same", NULL);
}

TEST(t_put_overwrites)
{
	CHECK_EQ(do_put(NS_TUNNEL, "t1", "{\"v\":1}", 0), 0); /* upsert creates */
	CHECK_VALUE(NS_TUNNEL, "t1", "{\"v\":1}");
	CHECK_EQ(do_put(NS_TUNNEL, "t1", "{\"v\":2}", 0), 0);
	CHECK_VALUE(NS_TUNNEL, "t1", "{\"v\":2}");
	CHECK_EQ(do_create(NS_TUNNEL, "t1", "{\"v\":3}", 0), E_EXISTS);
	CHECK_VALUE(NS_TUNNEL, "t1", "{\"v\":2}");
}

TEST(t_multi_get)
{
	CHECK_EQ(do_put(NS_ALTNAME, "http-a.example", "{\"tunnelId\":\"a\"}", 0), 0);
	CHECK_EQ(do_put(NS_ALTNAME, "http-b.example", "{\"tunnelId\":\"b\"}", 0), 0);

	const char *keys[] = {"http-a.example", "http-missing.example", "http-b.example"};
	struct res r = {0};
	CALL(storage_get_multi(S, NS_ALTNAME, keys, 3, multi_cb, &r));
	CHECK_EQ(finish(&r), 0);
	CHECK_EQ(r.n, 3);
	if (r.n == 3) {
		CHECK_STR(r.items[0], "{\"tunnelId\":\"a\"}");
		CHECK(r.items[1] == NULL);
		CHECK_STR(r.items[2], "{\"tunnelId\":\"b\"}");
	}
	res_free(&r);

	/* empty key list: success, no values, still asynchronous */
	CALL(storage_get_multi(S, NS_ALTNAME, keys, 0, multi_cb, &r));
	CHECK_EQ(finish(&r), 0);
	CHECK_EQ(r.n, 0);
	res_free(&r);

	/* the same key twice, all missing */
	const char *k2[] = {"http-b.example", "http-b.example", "x", "y"};
	CALL(storage_get_multi(S, NS_ALTNAME, k2, 4, multi_cb, &r));
	CHECK_EQ(finish(&r), 0);
	CHECK_EQ(r.n, 4);
	if (r.n == 4) {
		CHECK_STR(r.items[0], "{\"tunnelId\":\"b\"}");
		CHECK_STR(r.items[1], "{\"tunnelId\":\"b\"}");
		CHECK(r.items[2] == NULL && r.items[3] == NULL);
	}
	res_free(&r);
}

TEST(t_delete)
{
	CHECK_EQ(do_create(NS_TUNNEL, "gone", "{}", 0), 0);
	CHECK_EQ(do_del(NS_TUNNEL, "gone"), 0);
	CHECK_VALUE(NS_TUNNEL, "gone", NULL);
	CHECK_EQ(do_del(NS_TUNNEL, "gone"), E_NOTFOUND);
	CHECK_EQ(do_del(NS_TUNNEL, "never"), E_NOTFOUND);
	/* re-create after delete */
	CHECK_EQ(do_create(NS_TUNNEL, "gone", "{\"again\":true}", 0), 0);
	CHECK_VALUE(NS_TUNNEL, "gone", "{\"again\":true}");
}

/* One list page; returns its status. */
static int list_page(enum storage_ns ns, const char *cursor, size_t count, struct res *r)
{
	memset(r, 0, sizeof(*r));
	CALL(storage_list(S, ns, cursor, count, list_cb, r));
	return finish(r);
}

/* Page through ns with count 2; fills seen[] counts for keys[]; returns pages. */
static int list_all(enum storage_ns ns, const char *const *keys, size_t nkeys, int *seen, size_t *total)
{
	char *cursor = NULL;
	int pages = 0;
	*total = 0;
	for (int guard = 0; guard < 50; guard++) {
		struct res r;
		CHECK_EQ(list_page(ns, cursor, 2, &r), 0);
		pages++;
		CHECK(r.n <= 2 || strcmp(cur->name, "redis") == 0); /* SCAN may return more than COUNT (§4.4) */
		for (size_t i = 0; i < r.n; i++) {
			(*total)++;
			for (size_t k = 0; k < nkeys; k++)
				if (r.items[i] && strcmp(r.items[i], keys[k]) == 0)
					seen[k]++;
		}
		if (cur->sqlite && r.n > 0) /* SQL cursor = last returned key */
			CHECK_STR(r.cursor, r.items[r.n - 1]);
		if (r.n == 0)
			CHECK(!r.has_cursor); /* nothing returned: end */
		free(cursor);
		cursor = r.cursor;
		r.cursor = NULL;
		int end = !r.has_cursor;
		res_free(&r);
		if (end)
			break;
	}
	free(cursor);
	return pages;
}

TEST(t_list_paging)
{
	static const char *const keys[] = {"k-5", "k-1", "k-7", "k-3", "k-2", "k-6", "k-4"};
	enum { NK = sizeof(keys) / sizeof(keys[0]) };
	for (size_t i = 0; i < NK; i++)
		CHECK_EQ(do_create(NS_TUNNEL, keys[i], "{}", 0), 0);
	CHECK_EQ(do_create(NS_ACCOUNT, "not-a-tunnel", "{}", 0), 0);

	int seen[NK] = {0};
	size_t total;
	int pages = list_all(NS_TUNNEL, keys, NK, seen, &total);
	CHECK(pages >= 4 || strcmp(cur->name, "redis") == 0);
	CHECK_EQ(total, NK);
	for (size_t i = 0; i < NK; i++)
		CHECK_EQ(seen[i], 1);

	/* empty namespace: empty page, end */
	struct res r;
	CHECK_EQ(list_page(NS_ALTNAME, NULL, 2, &r), 0);
	CHECK_EQ(r.n, 0);
	CHECK(!r.has_cursor);
	res_free(&r);

	/* deleted keys disappear from listings */
	CHECK_EQ(do_del(NS_TUNNEL, "k-3"), 0);
	memset(seen, 0, sizeof(seen));
	(void)list_all(NS_TUNNEL, keys, NK, seen, &total);
	CHECK_EQ(total, NK - 1);
	CHECK_EQ(seen[3], 0);
}

TEST(t_ttl_expiry)
{
	/* Start right after a second boundary so "still visible" is reliable. */
	long long t0 = storage_now_s();
	wait_wall(t0 + 1);
	long long b = storage_now_s();
	CHECK_EQ(do_create(NS_TUNNEL, "short", "{\"ttl\":1}", 1), 0);
	CHECK_EQ(do_create(NS_TUNNEL, "made-permanent", "{\"ttl\":1}", 1), 0);
	CHECK_EQ(do_put(NS_TUNNEL, "made-permanent", "{\"ttl\":0}", 0), 0); /* put clears expiry */
	CHECK_EQ(do_create(NS_TUNNEL, "forever", "{}", 0), 0);
	long long t_created = storage_now_s();
	int64_t created_ms = loop_wall_ms();

	char *v = NULL;
	int rc = do_get(NS_TUNNEL, "short", &v);
	if (storage_now_s() == b) {
		CHECK_EQ(rc, 0);
		CHECK_STR(v, "{\"ttl\":1}");
	} else {
		printf("#   slow machine: skipped the visible-before-expiry check\n");
	}
	free(v);

	wait_wall(t_created + 1);
	/* A TTL counted in ms from the write (Redis EX) ends up to 1 s later. */
	while (loop_wall_ms() < created_ms + 1100)
		sleep_ms(10);
	CHECK_VALUE(NS_TUNNEL, "short", NULL);
	CHECK_VALUE(NS_TUNNEL, "made-permanent", "{\"ttl\":0}");
	CHECK_VALUE(NS_TUNNEL, "forever", "{}");

	const char *keys[] = {"short", "forever"};
	struct res r = {0};
	CALL(storage_get_multi(S, NS_TUNNEL, keys, 2, multi_cb, &r));
	CHECK_EQ(finish(&r), 0);
	if (r.n == 2) {
		CHECK(r.items[0] == NULL);
		CHECK_STR(r.items[1], "{}");
	}
	res_free(&r);

	static const char *const all[] = {"short", "made-permanent", "forever"};
	int seen[3] = {0};
	size_t total;
	(void)list_all(NS_TUNNEL, all, 3, seen, &total);
	CHECK_EQ(total, 2);
	CHECK_EQ(seen[0], 0);

	/* locked update of an expired key: not found */
	CALL(storage_update_begin(S, NS_TUNNEL, "short", locked_cb, &r));
	CHECK_EQ(finish(&r), E_NOTFOUND);
	res_free(&r);

	/* an expired key counts as absent for exclusive create */
	CHECK_EQ(do_create(NS_TUNNEL, "short", "{\"new\":1}", 0), 0);
	CHECK_VALUE(NS_TUNNEL, "short", "{\"new\":1}");
}

TEST(t_update_rmw)
{
	CHECK_EQ(do_create(NS_TUNNEL, "upd", "{\"n\":0}", 0), 0);

	struct res r = {0};
	CALL(storage_update_begin(S, NS_TUNNEL, "upd", locked_cb, &r));
	CHECK_EQ(finish(&r), 0);
	CHECK_STR(r.value, "{\"n\":0}");
	struct res w = {0};
	if (r.lock) {
		CALL(storage_update_finish(r.lock, "{\"n\":1}", 7, done_cb, &w));
		CHECK_EQ(finish(&w), 0);
	}
	res_free(&w);
	res_free(&r);
	CHECK_VALUE(NS_TUNNEL, "upd", "{\"n\":1}");

	/* NULL value: released without writing */
	CALL(storage_update_begin(S, NS_TUNNEL, "upd", locked_cb, &r));
	CHECK_EQ(finish(&r), 0);
	CHECK_STR(r.value, "{\"n\":1}");
	if (r.lock) {
		CALL(storage_update_finish(r.lock, NULL, 0, done_cb, &w));
		CHECK_EQ(finish(&w), 0);
	}
	res_free(&w);
	res_free(&r);
	CHECK_VALUE(NS_TUNNEL, "upd", "{\"n\":1}");

	/* the lock is free again */
	CALL(storage_update_begin(S, NS_TUNNEL, "upd", locked_cb, &r));
	CHECK_EQ(finish(&r), 0);
	if (r.lock) {
		CALL(storage_update_finish(r.lock, "{\"n\":2}", 7, done_cb, &w));
		CHECK_EQ(finish(&w), 0);
	}
	res_free(&w);
	res_free(&r);
	CHECK_VALUE(NS_TUNNEL, "upd", "{\"n\":2}");
}

TEST(t_update_missing)
{
	struct res r = {0};
	CALL(storage_update_begin(S, NS_TUNNEL, "absent", locked_cb, &r));
	CHECK_EQ(finish(&r), E_NOTFOUND);
	CHECK(r.lock == NULL);
	res_free(&r);
	CHECK_VALUE(NS_TUNNEL, "absent", NULL); /* nothing was created */

	CALL(storage_update_begin(S, NS_TUNNEL, "", locked_cb, &r));
	CHECK_EQ(finish(&r), E_NOTFOUND);
	res_free(&r);

	/* the failed attempt left no lock behind */
	CHECK_EQ(do_create(NS_TUNNEL, "absent", "{}", 0), 0);
	CALL(storage_update_begin(S, NS_TUNNEL, "absent", locked_cb, &r));
	CHECK_EQ(finish(&r), 0);
	struct res w = {0};
	if (r.lock) {
		CALL(storage_update_finish(r.lock, NULL, 0, done_cb, &w));
		CHECK_EQ(finish(&w), 0);
	}
	res_free(&w);
	res_free(&r);
}

/* Two concurrent updates: A holds the lock 200 ms before writing; B,
 * started right after A, must see A's write. */
struct upd {
	const char *write;      /* value to write */
	struct res locked, written;
	int order;              /* sequence number when locked */
	struct loop_timer *t;
};

static int upd_seq;

static void upd_finish_now(struct upd *u)
{
	CALL(storage_update_finish(u->locked.lock, u->write, strlen(u->write), done_cb, &u->written));
}

static void upd_timer(struct loop *loop, void *arg)
{
	struct upd *u = arg;
	u->t = NULL;
	upd_finish_now(u);
}

static void upd_locked_a(void *arg, int status, const char *value, size_t len, struct storage_lock *lock)
{
	struct upd *u = arg;
	locked_cb(&u->locked, status, value, len, lock);
	u->order = ++upd_seq;
	if (status == 0)
		u->t = loop_timer_add(L, 200, upd_timer, u);
}

static void upd_locked_b(void *arg, int status, const char *value, size_t len, struct storage_lock *lock)
{
	struct upd *u = arg;
	locked_cb(&u->locked, status, value, len, lock);
	u->order = ++upd_seq;
	if (status == 0)
		upd_finish_now(u); /* finish from inside the locked callback */
}

TEST(t_update_concurrent)
{
	CHECK_EQ(do_create(NS_TUNNEL, "race", "{\"v\":\"0\"}", 0), 0);
	struct upd a = {.write = "{\"v\":\"A\"}"}, b = {.write = "{\"v\":\"AB\"}"};
	upd_seq = 0;
	CALL(storage_update_begin(S, NS_TUNNEL, "race", upd_locked_a, &a));
	CALL(storage_update_begin(S, NS_TUNNEL, "race", upd_locked_b, &b));
	/* a plain get is not blocked by the lock */
	CHECK_VALUE(NS_TUNNEL, "race", "{\"v\":\"0\"}");
	CHECK_EQ(b.locked.called, 0);

	CHECK_EQ(wait_until(&b.written.called, 1), 0);
	CHECK_EQ(a.locked.called, 1);
	CHECK_EQ(a.locked.sync, 0);
	CHECK_EQ(a.written.called, 1);
	CHECK_EQ(a.written.sync, 0);
	CHECK_EQ(a.written.status, 0);
	CHECK_EQ(b.locked.called, 1);
	CHECK_EQ(b.locked.sync, 0);
	CHECK_EQ(b.written.sync, 0);
	CHECK_EQ(b.written.status, 0);
	CHECK_EQ(a.order, 1);
	CHECK_EQ(b.order, 2);
	CHECK_STR(a.locked.value, "{\"v\":\"0\"}");
	CHECK_STR(b.locked.value, "{\"v\":\"A\"}"); /* saw A's write */
	CHECK_VALUE(NS_TUNNEL, "race", "{\"v\":\"AB\"}");
	if (a.t)
		loop_timer_cancel(L, a.t);
	res_free(&a.locked);
	res_free(&a.written);
	res_free(&b.locked);
	res_free(&b.written);
}

TEST(t_open_bad_url)
{
	char err[256];
	err[0] = '\0';
	CHECK(storage_open(L, "nosuch://x", err, sizeof(err)) == NULL);
	CHECK(strstr(err, "memory") != NULL);
}

/* ---- sqlite-only cases ---------------------------------------------- */

#if WITH_SQLITE

static void reopen(void)
{
	storage_close(S);
	S = open_url(url);
	if (!S)
		exit(2);
}

static sqlite3 *raw_open(const char *path)
{
	sqlite3 *db = NULL;
	if (sqlite3_open_v2(path, &db, SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE, NULL) != SQLITE_OK) {
		printf("#   sqlite3_open %s: %s\n", path, db ? sqlite3_errmsg(db) : "?");
		exit(2);
	}
	(void)sqlite3_busy_timeout(db, 5000);
	return db;
}

static int raw_exec(sqlite3 *db, const char *sql)
{
	char *msg = NULL;
	int rc = sqlite3_exec(db, sql, NULL, NULL, &msg);
	if (rc != SQLITE_OK)
		printf("#   %s: %s\n", sql, msg ? msg : "?");
	sqlite3_free(msg);
	return rc;
}

/* First column of the first row as a malloc'd string ("(null)" for NULL,
 * NULL when no row). */
static char *raw_query(sqlite3 *db, const char *sql)
{
	sqlite3_stmt *st = NULL;
	char *out = NULL;
	if (sqlite3_prepare_v2(db, sql, -1, &st, NULL) != SQLITE_OK) {
		printf("#   prepare %s: %s\n", sql, sqlite3_errmsg(db));
		return NULL;
	}
	if (sqlite3_step(st) == SQLITE_ROW) {
		const unsigned char *t = sqlite3_column_text(st, 0);
		out = strdup(t ? (const char *)t : "(null)");
	}
	(void)sqlite3_finalize(st);
	return out;
}

#define CHECK_QUERY(db, sql, want) do { char *q_ = raw_query((db), (sql)); \
	CHECK_STR(q_, (want)); free(q_); } while (0)

TEST(t_sqlite_persistence)
{
	CHECK_EQ(do_create(NS_ACCOUNT, "ACC1", "{\"id\":\"ACC1\"}", 0), 0);
	CHECK_EQ(do_put(NS_TUNNEL, "tun-1", "{\"id\":\"tun-1\"}", 0), 0);
	CHECK_EQ(do_create(NS_ALTNAME, "http-x.example", "{\"tunnelId\":\"tun-1\"}", 0), 0);
	reopen();
	CHECK_VALUE(NS_ACCOUNT, "ACC1", "{\"id\":\"ACC1\"}");
	CHECK_VALUE(NS_TUNNEL, "tun-1", "{\"id\":\"tun-1\"}");
	CHECK_VALUE(NS_ALTNAME, "http-x.example", "{\"tunnelId\":\"tun-1\"}");
	CHECK_EQ(do_create(NS_ACCOUNT, "ACC1", "{}", 0), E_EXISTS);
	struct res r;
	CHECK_EQ(list_page(NS_TUNNEL, NULL, 10, &r), 0);
	CHECK_EQ(r.n, 1);
	if (r.n == 1)
		CHECK_STR(r.items[0], "tun-1");
	res_free(&r);
}

/* A file laid out by the reference (better-sqlite3, same DDL) opens. */
TEST(t_sqlite_reference_file)
{
	storage_close(S);
	S = NULL;
	remove_db_files(db_path);

	sqlite3 *db = raw_open(db_path);
	CHECK_EQ(raw_exec(db, "PRAGMA journal_mode = WAL"), SQLITE_OK);
	static const char *const tables[] = {"account", "tunnel", "ingress_altnames"};
	char sql[512];
	for (int i = 0; i < 3; i++) {
		snprintf(sql, sizeof(sql),
			 "CREATE TABLE IF NOT EXISTS %s (\n  key TEXT PRIMARY KEY,\n  value BLOB,\n"
			 "  modified_at INTEGER,\n  expires_at INTEGER NULL\n)", tables[i]);
		CHECK_EQ(raw_exec(db, sql), SQLITE_OK);
		snprintf(sql, sizeof(sql), "CREATE INDEX IF NOT EXISTS idx_%s_modified_at ON %s (modified_at)",
			 tables[i], tables[i]);
		CHECK_EQ(raw_exec(db, sql), SQLITE_OK);
		snprintf(sql, sizeof(sql), "CREATE INDEX IF NOT EXISTS idx_%s_expires_at ON %s (expires_at)",
			 tables[i], tables[i]);
		CHECK_EQ(raw_exec(db, sql), SQLITE_OK);
	}
	CHECK_EQ(raw_exec(db,
		"INSERT INTO account VALUES ('MNF4P6Y6M2MRRVCT', "
		"'{\"accountId\":\"MNF4P6Y6M2MRRVCT\",\"id\":\"MNF4P6Y6M2MRRVCT\",\"tunnels\":[\"my-tunnel\"]}', "
		"1700000000, NULL);"
		"INSERT INTO tunnel VALUES ('my-tunnel', '{\"id\":\"my-tunnel\"}', 1700000000, NULL);"
		"INSERT INTO tunnel VALUES ('old', '{\"id\":\"old\"}', 1700000000, 1700000100);"
		"INSERT INTO tunnel VALUES ('later', '{\"id\":\"later\"}', 1700000000, 4102444800);"
		"INSERT INTO tunnel VALUES ('empty', '', 1700000000, NULL);"
		"INSERT INTO ingress_altnames VALUES ('http-www.example.net', "
		"CAST('{\"tunnelId\":\"my-tunnel\"}' AS BLOB), 1700000000, NULL);"), SQLITE_OK);
	CHECK_EQ(sqlite3_close(db), SQLITE_OK);

	S = open_url(url);
	CHECK(S != NULL);
	if (!S)
		return;
	CHECK_VALUE(NS_ACCOUNT, "MNF4P6Y6M2MRRVCT",
		    "{\"accountId\":\"MNF4P6Y6M2MRRVCT\",\"id\":\"MNF4P6Y6M2MRRVCT\",\"tunnels\":[\"my-tunnel\"]}");
	CHECK_VALUE(NS_TUNNEL, "my-tunnel", "{\"id\":\"my-tunnel\"}");
	CHECK_VALUE(NS_TUNNEL, "later", "{\"id\":\"later\"}");
	CHECK_VALUE(NS_TUNNEL, "old", NULL);
	CHECK_VALUE(NS_TUNNEL, "empty", NULL); /* empty value = not found */
	CHECK_VALUE(NS_ALTNAME, "http-www.example.net", "{\"tunnelId\":\"my-tunnel\"}"); /* blob readable */
	/* an empty row does not block exclusive create */
	CHECK_EQ(do_create(NS_TUNNEL, "empty", "{\"id\":\"empty\"}", 0), 0);
	CHECK_VALUE(NS_TUNNEL, "empty", "{\"id\":\"empty\"}");

	db = raw_open(db_path);
	/* the expired row was purged by the cleanup at open */
	CHECK_QUERY(db, "SELECT count(*) FROM tunnel WHERE key = 'old'", "0");
	CHECK_QUERY(db, "SELECT count(*) FROM tunnel", "3");
	/* the existing schema was kept */
	CHECK_QUERY(db, "SELECT count(*) FROM sqlite_master WHERE type = 'index' AND name LIKE 'idx_%'", "6");
	CHECK_EQ(sqlite3_close(db), SQLITE_OK);
}

/* Files we create have the reference layout, and values are TEXT. */
TEST(t_sqlite_layout_text)
{
	long long before = storage_now_s();
	CHECK_EQ(do_create(NS_ACCOUNT, "ACC1", "{\"id\":\"ACC1\"}", 0), 0);
	CHECK_EQ(do_put(NS_TUNNEL, "tun-1", "{\"id\":\"tun-1\"}", 0), 0);
	CHECK_EQ(do_create(NS_ALTNAME, "http-x.example", "{\"tunnelId\":\"tun-1\"}", 3600), 0);
	CHECK_EQ(do_create(NS_TUNNEL, "tun-2", "{\"id\":\"tun-2\"}", 0), 0);
	struct res r = {0}, w = {0};
	CALL(storage_update_begin(S, NS_TUNNEL, "tun-2", locked_cb, &r));
	CHECK_EQ(finish(&r), 0);
	if (r.lock) {
		CALL(storage_update_finish(r.lock, "{\"id\":\"tun-2\",\"x\":1}", 20, done_cb, &w));
		CHECK_EQ(finish(&w), 0);
	}
	res_free(&r);
	res_free(&w);
	long long after = storage_now_s();

	sqlite3 *db = raw_open(db_path); /* second connection while open (WAL) */
	CHECK_QUERY(db, "PRAGMA journal_mode", "wal");
	CHECK_QUERY(db, "SELECT typeof(value) FROM account WHERE key = 'ACC1'", "text");
	CHECK_QUERY(db, "SELECT value FROM account WHERE key = 'ACC1'", "{\"id\":\"ACC1\"}");
	CHECK_QUERY(db, "SELECT typeof(value) FROM tunnel WHERE key = 'tun-1'", "text");
	CHECK_QUERY(db, "SELECT typeof(value) FROM tunnel WHERE key = 'tun-2'", "text");
	CHECK_QUERY(db, "SELECT value FROM tunnel WHERE key = 'tun-2'", "{\"id\":\"tun-2\",\"x\":1}");
	CHECK_QUERY(db, "SELECT typeof(value) FROM ingress_altnames", "text");
	CHECK_QUERY(db, "SELECT typeof(modified_at) || typeof(expires_at) FROM tunnel WHERE key = 'tun-1'",
		    "integernull");
	char sql[256], want[128];
	snprintf(sql, sizeof(sql), "SELECT expires_at BETWEEN %lld AND %lld FROM ingress_altnames",
		 before + 3600, after + 3600);
	CHECK_QUERY(db, sql, "1");
	snprintf(sql, sizeof(sql), "SELECT modified_at BETWEEN %lld AND %lld FROM account", before, after);
	CHECK_QUERY(db, sql, "1");
	static const char *const tables[] = {"account", "tunnel", "ingress_altnames"};
	for (int i = 0; i < 3; i++) {
		snprintf(sql, sizeof(sql),
			 "SELECT group_concat(name || ':' || type || ':' || pk || ':' || \"notnull\", ',') "
			 "FROM pragma_table_info('%s')", tables[i]);
		CHECK_QUERY(db, sql, "key:TEXT:1:0,value:BLOB:0:0,modified_at:INTEGER:0:0,expires_at:INTEGER:0:0");
		snprintf(sql, sizeof(sql),
			 "SELECT group_concat(name, ',') FROM (SELECT name FROM sqlite_master "
			 "WHERE type = 'index' AND tbl_name = '%s' AND name LIKE 'idx_%%' ORDER BY name)", tables[i]);
		snprintf(want, sizeof(want), "idx_%s_expires_at,idx_%s_modified_at", tables[i], tables[i]);
		CHECK_QUERY(db, sql, want);
	}
	CHECK_EQ(sqlite3_close(db), SQLITE_OK);
}

TEST(t_sqlite_url_forms)
{
	char u[160];
	struct storage *s2;

	/* sqlite:<path> without slashes */
	snprintf(u, sizeof(u), "sqlite:%s", db_path);
	s2 = open_url(u);
	CHECK(s2 != NULL);
	storage_close(s2);

	/* a query string is not part of the file name */
	snprintf(u, sizeof(u), "sqlite://%s?mode=x", db_path);
	CHECK_EQ(do_create(NS_TUNNEL, "q", "{}", 0), 0);
	s2 = open_url(u);
	CHECK(s2 != NULL);
	if (s2) {
		struct storage *keep = S;
		S = s2;
		CHECK_VALUE(NS_TUNNEL, "q", "{}");
		S = keep;
		storage_close(s2);
	}
	char qpath[96];
	snprintf(qpath, sizeof(qpath), "%s?mode=x", db_path);
	CHECK(access(qpath, F_OK) != 0);

	/* empty paths are refused */
	char err[256];
	CHECK(storage_open(L, "sqlite://", err, sizeof(err)) == NULL);
	CHECK(storage_open(L, "sqlite:", err, sizeof(err)) == NULL);
	CHECK(storage_open(L, "sqlite://?x=1", err, sizeof(err)) == NULL);
	/* a directory that does not exist */
	CHECK(storage_open(L, "sqlite:///nonexistent-dir-t-storage/x.db", err, sizeof(err)) == NULL);
}

TEST(t_sqlite_errors)
{
	/* a file that is not a database: open fails cleanly */
	char bad[32];
	snprintf(bad, sizeof(bad), "/tmp/t-storage-bad-XXXXXX");
	int fd = mkstemp(bad);
	CHECK(fd >= 0);
	if (fd >= 0) {
		static const char junk[] = "this is not an sqlite database, just some text padding it out....."
					   "................................................................";
		CHECK_EQ(write(fd, junk, sizeof(junk)), sizeof(junk));
		(void)close(fd);
		char u[64], err[256];
		snprintf(u, sizeof(u), "sqlite://%s", bad);
		CHECK(storage_open(L, u, err, sizeof(err)) == NULL);
		remove_db_files(bad);
	}

	/* a table dropped underneath: every operation reports E_BACKEND */
	CHECK_EQ(do_create(NS_TUNNEL, "t", "{}", 0), 0);
	sqlite3 *db = raw_open(db_path);
	CHECK_EQ(raw_exec(db, "DROP TABLE tunnel"), SQLITE_OK);
	CHECK_EQ(sqlite3_close(db), SQLITE_OK);
	CHECK_EQ(do_get(NS_TUNNEL, "t", NULL), E_BACKEND);
	CHECK_EQ(do_create(NS_TUNNEL, "t", "{}", 0), E_BACKEND);
	CHECK_EQ(do_put(NS_TUNNEL, "t", "{}", 0), E_BACKEND);
	CHECK_EQ(do_del(NS_TUNNEL, "t"), E_BACKEND);
	struct res r;
	CHECK_EQ(list_page(NS_TUNNEL, NULL, 2, &r), E_BACKEND);
	CHECK_EQ(r.n, 0);
	res_free(&r);
	const char *keys[] = {"t"};
	CALL(storage_get_multi(S, NS_TUNNEL, keys, 1, multi_cb, &r));
	CHECK_EQ(finish(&r), E_BACKEND);
	res_free(&r);
	CALL(storage_update_begin(S, NS_TUNNEL, "t", locked_cb, &r));
	CHECK_EQ(finish(&r), E_BACKEND);
	res_free(&r);
	/* other namespaces still work */
	CHECK_EQ(do_create(NS_ACCOUNT, "A", "{}", 0), 0);
	/* reopening recreates the missing table */
	reopen();
	CHECK_EQ(do_create(NS_TUNNEL, "t", "{}", 0), 0);
}

#endif /* WITH_SQLITE */

/* ---- driver --------------------------------------------------------- */

#define RUN_B(fn) do { setup(); test_failures_in_case = 0; fn(); teardown(); \
	if (test_failures_in_case) { test_total_failed++; printf("not ok - %s [%s]\n", #fn, cur->name); } \
	else { test_total_passed++; printf("ok - %s [%s]\n", #fn, cur->name); } } while (0)

int main(void)
{
	/* The error cases log warnings on purpose; T_STORAGE_VERBOSE shows them. */
	log_setup(getenv("T_STORAGE_VERBOSE") ? LOG_DEBUG : LOG_ERROR, 0, stderr);
	for (size_t i = 0; i < sizeof(backends) / sizeof(backends[0]); i++) {
		cur = &backends[i];
		printf("# backend %s\n", cur->name);
		if (cur->url_env && !getenv(cur->url_env)) {
			printf("not ok - backend %s: set %s to a test server URL\n", cur->name, cur->url_env);
			test_total_failed++;
			continue;
		}
		RUN_B(t_create_exclusive);
		RUN_B(t_get);
		RUN_B(t_get_missing);
		RUN_B(t_namespaces_separate);
		RUN_B(t_put_overwrites);
		RUN_B(t_multi_get);
		RUN_B(t_delete);
		RUN_B(t_list_paging);
		RUN_B(t_ttl_expiry);
		RUN_B(t_update_rmw);
		RUN_B(t_update_missing);
		RUN_B(t_update_concurrent);
		RUN_B(t_open_bad_url);
#if WITH_SQLITE
		if (cur->sqlite) {
			RUN_B(t_sqlite_persistence);
			RUN_B(t_sqlite_reference_file);
			RUN_B(t_sqlite_layout_text);
			RUN_B(t_sqlite_url_forms);
			RUN_B(t_sqlite_errors);
		}
#endif
	}
	printf("# %d passed, %d failed\n", test_total_passed, test_total_failed);
	return test_done();
}
