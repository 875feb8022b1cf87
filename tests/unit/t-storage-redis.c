/* t-storage-redis.c - Redis storage specifics (spec/storage.md §7.3, §8.2,
 * §9, §12): raw key layout, records written by a reference node, the
 * lock:<key> lease protocol against foreign lock holders, the local line
 * of same-key updates, two "nodes"
 * updating one key, outages (server paused, connections killed, server
 * stopped and restarted), startup errors, close with work in flight, and
 * a short latency measurement.
 *
 * Needs EXPOSRD_TEST_REDIS_URL (ci/services.sh start); the restart case
 * also needs EXPOSRD_SERVICES_DIR and restarts redis-server with the
 * command line of ci/services.sh.  The contract cases shared with the
 * other backends are in t-storage.c.
 */
#if !WITH_REDIS

#include <stdio.h>

int main(void)
{
	printf("ok - skipped: built without WITH_REDIS\n");
	return 0;
}

#else

#include <errno.h>
#include <netinet/in.h>
#include <signal.h>
#include <stdarg.h>
#include <stdint.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include <hiredis/hiredis.h>

#include "test.h"
#include "err.h"
#include "log.h"
#include "loop.h"
#include "storage.h"

#define WAIT_MS 5000

static struct loop *L;
static struct storage *S;
static const char *url;
static char host[256] = "127.0.0.1";
static int port = 6379, db;
static redisContext *R; /* raw blocking connection */
static int calling, timed_out;

/* ---- raw redis ---------------------------------------------------------- */

static void parse_test_url(const char *u)
{
	const char *p = strncmp(u, "redis://", 8) == 0 ? u + 8 : u;
	const char *at = strchr(p, '@');
	if (at)
		p = at + 1;
	size_t hl = strcspn(p, ":/");
	if (hl > 0 && hl < sizeof(host))
		snprintf(host, sizeof(host), "%.*s", (int)hl, p);
	p += hl;
	if (*p == ':')
		port = atoi(++p);
	p += strcspn(p, "/");
	if (*p == '/')
		db = atoi(p + 1);
}

static redisContext *raw_try_connect(void)
{
	struct timeval tv = {2, 0};
	redisContext *c = redisConnectWithTimeout(host, port, tv);
	if (!c || c->err) {
		redisFree(c);
		return NULL;
	}
	(void)redisSetTimeout(c, (struct timeval){10, 0});
	redisReply *rep = redisCommand(c, "SELECT %d", db);
	int ok = rep && rep->type == REDIS_REPLY_STATUS;
	freeReplyObject(rep);
	if (!ok) {
		redisFree(c);
		return NULL;
	}
	return c;
}

static void raw_reconnect(void)
{
	redisFree(R);
	R = raw_try_connect();
	if (!R) {
		printf("#   cannot connect to redis at %s:%d\n", host, port);
		exit(2);
	}
}

static redisReply *raw(const char *fmt, ...)
{
	va_list ap;
	va_start(ap, fmt);
	redisReply *rep = redisvCommand(R, fmt, ap);
	va_end(ap);
	if (!rep) { /* the connection died (outage tests): once more */
		raw_reconnect();
		va_start(ap, fmt);
		rep = redisvCommand(R, fmt, ap);
		va_end(ap);
	}
	return rep;
}

/* The reply as text: strings and statuses verbatim, integers in decimal,
 * "(nil)", "(error) ...", "[n]" for arrays.  Caller frees. */
static char *raw_str(const char *fmt, ...)
{
	va_list ap;
	va_start(ap, fmt);
	redisReply *rep = redisvCommand(R, fmt, ap);
	va_end(ap);
	if (!rep) {
		raw_reconnect();
		va_start(ap, fmt);
		rep = redisvCommand(R, fmt, ap);
		va_end(ap);
	}
	char buf[64];
	char *out;
	if (!rep)
		return strdup("(no reply)");
	switch (rep->type) {
	case REDIS_REPLY_STRING:
	case REDIS_REPLY_STATUS:
		out = strdup(rep->str);
		break;
	case REDIS_REPLY_INTEGER:
		snprintf(buf, sizeof(buf), "%lld", rep->integer);
		out = strdup(buf);
		break;
	case REDIS_REPLY_NIL:
		out = strdup("(nil)");
		break;
	case REDIS_REPLY_ERROR:
		snprintf(buf, sizeof(buf), "(error) %.50s", rep->str);
		out = strdup(buf);
		break;
	default:
		snprintf(buf, sizeof(buf), "[%zu]", rep->elements);
		out = strdup(buf);
		break;
	}
	freeReplyObject(rep);
	return out;
}

static long long raw_int(const char *fmt, const char *arg)
{
	char *s = raw_str(fmt, arg);
	long long v = atoll(s);
	free(s);
	return v;
}

#define CHECK_RAW(want, ...) do { char *cr_ = raw_str(__VA_ARGS__); CHECK_STR(cr_, (want)); free(cr_); } while (0)

static void raw_ok(const char *fmt, ...)
{
	va_list ap;
	va_start(ap, fmt);
	redisReply *rep = redisvCommand(R, fmt, ap);
	va_end(ap);
	if (!rep || rep->type == REDIS_REPLY_ERROR) {
		printf("#   raw %s: %s\n", fmt, rep ? rep->str : R->errstr);
		test_failures_in_case++;
	}
	freeReplyObject(rep);
}

/* ---- server control (outage cases) -------------------------------------- */

static const char *services_dir(void)
{
	const char *d = getenv("EXPOSRD_SERVICES_DIR");
	return d && *d ? d : NULL;
}

static pid_t server_pid(void)
{
	char path[512];
	snprintf(path, sizeof(path), "%s/redis.pid", services_dir());
	FILE *f = fopen(path, "r");
	long pid = 0;
	if (f) {
		if (fscanf(f, "%ld", &pid) != 1)
			pid = 0;
		fclose(f);
	}
	return (pid_t)pid;
}

static void sleep_ms(long ms)
{
	struct timespec ts = {ms / 1000, (ms % 1000) * 1000000L};
	while (nanosleep(&ts, &ts) != 0 && errno == EINTR)
		;
}

static uint64_t now_ms(void)
{
	return loop_mono_us() / 1000u;
}

static int server_up(void)
{
	redisContext *c = raw_try_connect();
	redisFree(c);
	return c != NULL;
}

/* Same command line as ci/services.sh.  delay_ms > 0: in the background,
 * after that long.  Returns once it answers (delay 0). */
static void server_start(long delay_ms)
{
	const char *d = services_dir();
	char cmd[2048], pre[64] = "";
	if (delay_ms > 0)
		snprintf(pre, sizeof(pre), "(sleep %ld.%03ld;", delay_ms / 1000, delay_ms % 1000);
	snprintf(cmd, sizeof(cmd),
		 "%s redis-server --port %d --bind 127.0.0.1 --save '' --appendonly no "
		 "--daemonize yes --pidfile %s/redis.pid --logfile %s/redis.log --dir %s >/dev/null%s",
		 pre, port, d, d, d, delay_ms > 0 ? ") &" : "");
	if (system(cmd) != 0 && delay_ms == 0)
		printf("#   redis-server failed to start\n");
	if (delay_ms > 0)
		return;
	for (int i = 0; i < 100 && !server_up(); i++)
		sleep_ms(50);
}

static void server_kill(int sig)
{
	pid_t pid = server_pid();
	if (pid <= 0 || kill(pid, sig) != 0) {
		printf("#   cannot signal redis-server (pid %ld)\n", (long)pid);
		return;
	}
	for (int i = 0; i < 200 && kill(pid, 0) == 0; i++)
		sleep_ms(25);
}

/* ---- harness ------------------------------------------------------------- */

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
	if (!R || R->err)
		raw_reconnect();
	redisReply *rep = raw("FLUSHDB");
	freeReplyObject(rep);
	S = open_url(url);
	if (!S)
		exit(2);
}

static void teardown(void)
{
	storage_close(S);
	S = NULL;
	loop_run_deferred(L);
	loop_free(L);
	L = NULL;
}

static void on_timeout(struct loop *loop, void *arg)
{
	(void)arg;
	timed_out = 1;
	loop_stop(loop);
}

static void on_kick(struct loop *loop, void *arg)
{
	(void)loop;
	(void)arg;
}

/* Run the loop until *counter >= target or ms passed; 0 on success. */
static int wait_for(const int *counter, int target, int ms)
{
	if (*counter >= target)
		return 0;
	timed_out = 0;
	struct loop_timer *t = loop_timer_add(L, (uint64_t)ms, on_timeout, NULL);
	(void)loop_timer_add(L, 0, on_kick, NULL);
	while (*counter < target && !timed_out)
		(void)loop_run(L);
	if (!timed_out)
		loop_timer_cancel(L, t);
	return *counter >= target ? 0 : -1;
}

/* Run the loop for ms milliseconds. */
static void run_for(int ms)
{
	int never = 0;
	(void)wait_for(&never, 1, ms);
}

struct res {
	int called;
	int sync;
	int status;
	char *value;
	char **items;
	size_t n;
	int has_cursor;
	char *cursor;
	struct storage_lock *lock;
	uint64_t at_us; /* when the callback ran */
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
	r->at_us = loop_mono_us();
	loop_stop(L);
}

static void get_cb(void *arg, int status, const char *value, size_t len)
{
	struct res *r = arg;
	(void)len;
	mark(r, status);
	if (status == 0 && value)
		r->value = strdup(value);
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
	(void)len;
	mark(r, status);
	r->lock = lock;
	if (status == 0 && value)
		r->value = strdup(value);
}

static int finish_ms(struct res *r, int ms)
{
	if (wait_for(&r->called, 1, ms) != 0) {
		printf("#   timed out waiting for a callback\n");
		return E_TIMEOUT;
	}
	CHECK_EQ(r->called, 1);
	CHECK_EQ(r->sync, 0);
	return r->status;
}

static int finish(struct res *r)
{
	return finish_ms(r, WAIT_MS);
}

#define CALL(expr) do { calling = 1; expr; calling = 0; } while (0)

static int do_set(struct storage *s, enum storage_ns ns, const char *key, const char *value, int excl, long ttl)
{
	struct res r = {0};
	if (excl)
		CALL(storage_create(s, ns, key, value, strlen(value), ttl, done_cb, &r));
	else
		CALL(storage_put(s, ns, key, value, strlen(value), ttl, done_cb, &r));
	int rc = finish(&r);
	res_free(&r);
	return rc;
}

static int do_create(enum storage_ns ns, const char *key, const char *value, long ttl)
{
	return do_set(S, ns, key, value, 1, ttl);
}

static int do_put(enum storage_ns ns, const char *key, const char *value, long ttl)
{
	return do_set(S, ns, key, value, 0, ttl);
}

static int do_get_s(struct storage *s, enum storage_ns ns, const char *key, char **out)
{
	struct res r = {0};
	CALL(storage_get(s, ns, key, get_cb, &r));
	int rc = finish(&r);
	if (out) {
		*out = r.value;
		r.value = NULL;
	}
	res_free(&r);
	return rc;
}

static int do_get(enum storage_ns ns, const char *key, char **out)
{
	return do_get_s(S, ns, key, out);
}

#define CHECK_VALUE(ns, key, want) do { char *v_ = NULL; int rc_ = do_get((ns), (key), &v_); \
	if (want) { CHECK_EQ(rc_, 0); CHECK_STR(v_, (want)); } \
	else { CHECK_EQ(rc_, E_NOTFOUND); } free(v_); } while (0)

/* Locked update writing value (NULL: none); returns the finish status. */
static int do_update(struct storage *s, enum storage_ns ns, const char *key, const char *value, char **seen)
{
	struct res r = {0}, w = {0};
	CALL(storage_update_begin(s, ns, key, locked_cb, &r));
	int rc = finish_ms(&r, 10000);
	if (rc == 0 && r.lock) {
		CALL(storage_update_finish(r.lock, value, value ? strlen(value) : 0, done_cb, &w));
		rc = finish(&w);
	}
	if (seen) {
		*seen = r.value;
		r.value = NULL;
	}
	res_free(&r);
	res_free(&w);
	return rc;
}

static int is_hex32(const char *s)
{
	return s && strlen(s) == 32 && strspn(s, "0123456789abcdef") == 32;
}

/* ---- layout ------------------------------------------------------------- */

TEST(t_key_layout)
{
	const char *tj = "{\"id\":\"my-tunnel\",\"account\":\"MNF4P6Y6M2MRRVCT\"}";
	const char *aj = "{\"accountId\":\"MNF4P6Y6M2MRRVCT\",\"id\":\"MNF4P6Y6M2MRRVCT\",\"tunnels\":[]}";
	const char *nj = "{\"tunnelId\":\"my-tunnel\",\"created_at\":\"2024-01-02T03:04:05.678Z\"}";
	CHECK_EQ(do_create(NS_TUNNEL, "my-tunnel", tj, 0), 0);
	CHECK_EQ(do_create(NS_ACCOUNT, "MNF4P6Y6M2MRRVCT", aj, 0), 0);
	CHECK_EQ(do_create(NS_ALTNAME, "http-www.example.net", nj, 3600), 0);

	CHECK_RAW("3", "DBSIZE");
	CHECK_RAW("string", "TYPE tunnel:my-tunnel");
	CHECK_RAW(tj, "GET tunnel:my-tunnel");
	CHECK_RAW("-1", "TTL tunnel:my-tunnel");
	CHECK_RAW(aj, "GET account:MNF4P6Y6M2MRRVCT");
	CHECK_RAW("-1", "TTL account:MNF4P6Y6M2MRRVCT");
	CHECK_RAW(nj, "GET ingress-altnames:http-www.example.net");
	long long ttl = raw_int("TTL %s", "ingress-altnames:http-www.example.net");
	CHECK(ttl > 3590 && ttl <= 3600);

	/* put: SET ... EX ttl; without a TTL the old one is cleared */
	CHECK_EQ(do_put(NS_TUNNEL, "my-tunnel", "{\"v\":2}", 100), 0);
	ttl = raw_int("TTL %s", "tunnel:my-tunnel");
	CHECK(ttl > 90 && ttl <= 100);
	CHECK_EQ(do_put(NS_TUNNEL, "my-tunnel", tj, 0), 0);
	CHECK_RAW("-1", "TTL tunnel:my-tunnel");

	/* exclusive create is SET NX: it does not touch an existing key */
	CHECK_EQ(do_create(NS_TUNNEL, "my-tunnel", "{\"other\":1}", 0), E_EXISTS);
	CHECK_RAW(tj, "GET tunnel:my-tunnel");

	/* delete is DEL */
	CHECK_EQ(do_create(NS_TUNNEL, "gone", "{}", 0), 0);
	struct res r = {0};
	CALL(storage_delete(S, NS_TUNNEL, "gone", done_cb, &r));
	CHECK_EQ(finish(&r), 0);
	res_free(&r);
	CHECK_RAW("0", "EXISTS tunnel:gone");
}

TEST(t_lock_layout)
{
	CHECK_EQ(do_create(NS_TUNNEL, "lk", "{\"n\":0}", 500), 0);
	struct res r = {0}, w = {0};
	CALL(storage_update_begin(S, NS_TUNNEL, "lk", locked_cb, &r));
	CHECK_EQ(finish(&r), 0);
	CHECK_STR(r.value, "{\"n\":0}");
	/* lock:<key> without the namespace, a 32-hex token, PX 1000 */
	char *tok = raw_str("GET lock:lk");
	CHECK(is_hex32(tok));
	long long pttl = raw_int("PTTL %s", "lock:lk");
	CHECK(pttl > 0 && pttl <= 1000);
	CHECK_RAW("0", "EXISTS lock:tunnel:lk");
	CHECK_RAW("2", "DBSIZE");
	if (r.lock) {
		CALL(storage_update_finish(r.lock, "{\"n\":1}", 7, done_cb, &w));
		CHECK_EQ(finish(&w), 0);
	}
	res_free(&r);
	res_free(&w);
	CHECK_RAW("0", "EXISTS lock:lk");
	CHECK_RAW("{\"n\":1}", "GET tunnel:lk");
	CHECK_RAW("-1", "TTL tunnel:lk"); /* the locked write is a plain SET */

	/* a second update gets a fresh token; release without a value
	 * deletes only the lock */
	CALL(storage_update_begin(S, NS_TUNNEL, "lk", locked_cb, &r));
	CHECK_EQ(finish(&r), 0);
	char *tok2 = raw_str("GET lock:lk");
	CHECK(is_hex32(tok2));
	CHECK(tok && tok2 && strcmp(tok, tok2) != 0);
	if (r.lock) {
		CALL(storage_update_finish(r.lock, NULL, 0, done_cb, &w));
		CHECK_EQ(finish(&w), 0);
	}
	res_free(&r);
	res_free(&w);
	CHECK_RAW("0", "EXISTS lock:lk");
	CHECK_RAW("{\"n\":1}", "GET tunnel:lk");
	free(tok);
	free(tok2);

	/* missing record: the lock is taken, then released, E_NOTFOUND */
	CALL(storage_update_begin(S, NS_TUNNEL, "nope", locked_cb, &r));
	CHECK_EQ(finish(&r), E_NOTFOUND);
	res_free(&r);
	run_for(50);
	CHECK_RAW("0", "EXISTS lock:nope");
	CHECK_RAW("0", "EXISTS tunnel:nope");
}

/* Records a reference node wrote by hand in its layout. */
TEST(t_reference_records)
{
	const char *acc = "{\"accountId\":\"MNF4P6Y6M2MRRVCT\",\"id\":\"MNF4P6Y6M2MRRVCT\","
			  "\"created_at\":\"2024-01-02T03:04:05.678Z\",\"updated_at\":\"2024-01-02T03:10:00.000Z\","
			  "\"tunnels\":[\"my-tunnel\"],\"status\":{\"disabled\":false}}";
	const char *tun = "{\"transport\":{\"max_connections\":1,\"ws\":{\"enabled\":false},"
			  "\"ssh\":{\"enabled\":false}},\"ingress\":{\"http\":{\"enabled\":true,"
			  "\"url\":\"http://my-tunnel.example.com/\",\"urls\":[\"http://my-tunnel.example.com/\"],"
			  "\"alt_names\":[]},\"sni\":{\"enabled\":false,\"urls\":[]}},\"target\":{\"url\":"
			  "\"http://localhost:3000\"},\"id\":\"my-tunnel\",\"account\":\"MNF4P6Y6M2MRRVCT\","
			  "\"updated_at\":\"2024-01-02T03:10:00.000Z\"}";
	const char *alt = "{\"tunnelId\":\"my-tunnel\",\"created_at\":\"2024-01-02T03:04:05.678Z\"}";
	raw_ok("SET account:MNF4P6Y6M2MRRVCT %s", acc);
	raw_ok("SET tunnel:my-tunnel %s", tun);
	raw_ok("SET ingress-altnames:http-www.example.net %s EX 100", alt);
	raw_ok("SET unrelated-key x");

	CHECK_VALUE(NS_ACCOUNT, "MNF4P6Y6M2MRRVCT", acc);
	CHECK_VALUE(NS_TUNNEL, "my-tunnel", tun);
	CHECK_VALUE(NS_ALTNAME, "http-www.example.net", alt);
	CHECK_VALUE(NS_TUNNEL, "unrelated-key", NULL);

	const char *keys[] = {"my-tunnel", "other"};
	struct res r = {0};
	CALL(storage_get_multi(S, NS_TUNNEL, keys, 2, multi_cb, &r));
	CHECK_EQ(finish(&r), 0);
	CHECK_EQ(r.n, 2);
	if (r.n == 2) {
		CHECK_STR(r.items[0], tun);
		CHECK(r.items[1] == NULL);
	}
	res_free(&r);

	CALL(storage_list(S, NS_TUNNEL, NULL, 100, list_cb, &r));
	CHECK_EQ(finish(&r), 0);
	CHECK_EQ(r.n, 1);
	if (r.n == 1)
		CHECK_STR(r.items[0], "my-tunnel");
	CHECK(!r.has_cursor);
	res_free(&r);

	/* a record holding something else than a string: backend error */
	raw_ok("HSET tunnel:hash a b");
	CHECK_EQ(do_get(NS_TUNNEL, "hash", NULL), E_BACKEND);
	CHECK_EQ(do_update(S, NS_TUNNEL, "hash", "{}", NULL), E_BACKEND);
	run_for(50);
	CHECK_RAW("0", "EXISTS lock:hash");
}

TEST(t_list_scan)
{
	char key[32];
	for (int i = 0; i < 25; i++) {
		snprintf(key, sizeof(key), "t-%02d", i);
		CHECK_EQ(do_create(NS_TUNNEL, key, "{}", 0), 0);
	}
	for (int i = 0; i < 30; i++) {
		snprintf(key, sizeof(key), "ACC%02d", i);
		CHECK_EQ(do_create(NS_ACCOUNT, key, "{}", 0), 0);
	}
	int seen[25] = {0};
	char *cursor = NULL;
	int pages = 0, foreign = 0;
	for (; pages < 100; pages++) {
		struct res r = {0};
		CALL(storage_list(S, NS_TUNNEL, cursor, 10, list_cb, &r));
		CHECK_EQ(finish(&r), 0);
		for (size_t i = 0; i < r.n; i++) {
			int k = -1;
			if (r.items[i] && sscanf(r.items[i], "t-%d", &k) == 1 && k >= 0 && k < 25)
				seen[k]++;
			else
				foreign++;
		}
		if (r.has_cursor)
			CHECK(strspn(r.cursor, "0123456789") == strlen(r.cursor) && strcmp(r.cursor, "0") != 0);
		free(cursor);
		cursor = r.cursor;
		r.cursor = NULL;
		int end = !r.has_cursor;
		res_free(&r);
		if (end)
			break;
	}
	free(cursor);
	CHECK(pages < 100);
	CHECK_EQ(foreign, 0);
	for (int i = 0; i < 25; i++)
		CHECK(seen[i] >= 1); /* SCAN may repeat a key, never skips one */

	struct res r = {0};
	CALL(storage_list(S, NS_TUNNEL, "not-a-cursor", 10, list_cb, &r));
	CHECK_EQ(finish(&r), E_INVAL);
	res_free(&r);
	CALL(storage_list(S, NS_ALTNAME, NULL, 10, list_cb, &r));
	CHECK_EQ(finish(&r), 0);
	CHECK_EQ(r.n, 0);
	CHECK(!r.has_cursor);
	res_free(&r);
}

/* ---- lease lock against foreign holders ---------------------------------- */

TEST(t_foreign_lock_released)
{
	CHECK_EQ(do_create(NS_TUNNEL, "contended", "{\"n\":1}", 0), 0);
	raw_ok("SET lock:contended foreign-token PX 10000");
	struct res r = {0}, w = {0};
	CALL(storage_update_begin(S, NS_TUNNEL, "contended", locked_cb, &r));
	run_for(700);
	CHECK_EQ(r.called, 0); /* waits while the foreign lock exists */
	raw_ok("DEL lock:contended");
	uint64_t t0 = now_ms();
	CHECK_EQ(finish_ms(&r, 2000), 0);
	uint64_t waited = now_ms() - t0;
	CHECK(waited < 1000); /* next retry: 200 ms +- 100 ms */
	printf("#   acquired %llu ms after the foreign lock was deleted\n", (unsigned long long)waited);
	CHECK_STR(r.value, "{\"n\":1}");
	if (r.lock) {
		CALL(storage_update_finish(r.lock, "{\"n\":2}", 7, done_cb, &w));
		CHECK_EQ(finish(&w), 0);
	}
	res_free(&r);
	res_free(&w);
	CHECK_RAW("{\"n\":2}", "GET tunnel:contended");
	CHECK_RAW("0", "EXISTS lock:contended");
}

TEST(t_foreign_lock_expires)
{
	CHECK_EQ(do_create(NS_TUNNEL, "lapsing", "{\"n\":1}", 0), 0);
	raw_ok("SET lock:lapsing foreign-token PX 1500");
	uint64_t t0 = now_ms();
	CHECK_EQ(do_update(S, NS_TUNNEL, "lapsing", "{\"n\":2}", NULL), 0);
	uint64_t took = now_ms() - t0;
	CHECK(took >= 1300 && took < 3000);
	printf("#   acquired after %llu ms (foreign lease 1500 ms)\n", (unsigned long long)took);
	CHECK_RAW("{\"n\":2}", "GET tunnel:lapsing");
}

TEST(t_foreign_lock_gives_up)
{
	CHECK_EQ(do_create(NS_TUNNEL, "stuck", "{\"n\":1}", 0), 0);
	raw_ok("SET lock:stuck foreign-token PX 60000");
	uint64_t t0 = now_ms();
	struct res r[3];
	memset(r, 0, sizeof(r));
	for (int i = 0; i < 3; i++) /* the 2nd and 3rd wait in the local line */
		CALL(storage_update_begin(S, NS_TUNNEL, "stuck", locked_cb, &r[i]));
	CHECK_EQ(finish_ms(&r[0], 10000), E_BUSY);
	uint64_t took = now_ms() - t0;
	printf("#   gave up after %llu ms (25 retries)\n", (unsigned long long)took);
	CHECK(took >= 2500 && took <= 8500);
	/* the line behind it fails with it, not 5 s later each */
	CHECK_EQ(finish_ms(&r[1], 100), E_BUSY);
	CHECK_EQ(finish_ms(&r[2], 100), E_BUSY);
	for (int i = 0; i < 3; i++)
		res_free(&r[i]);
	CHECK_RAW("foreign-token", "GET lock:stuck"); /* not ours: untouched */
	CHECK_RAW("{\"n\":1}", "GET tunnel:stuck");
}

/* Updates of one key from this node wait in a local line (FIFO) and take
 * over right after each release, instead of polling Redis 200 ms apart. */
struct line {
	struct res locked[10], written[10];
	int order[10];
	int seq;
};

static struct line *line_ctx;

static void line_locked(void *arg, int status, const char *value, size_t len, struct storage_lock *lock)
{
	struct res *r = arg;
	int i = (int)(r - line_ctx->locked), n = -1;
	locked_cb(r, status, value, len, lock);
	line_ctx->order[i] = ++line_ctx->seq;
	if (status != 0 || !value || sscanf(value, "{\"n\":%d}", &n) != 1)
		return;
	char v[32];
	snprintf(v, sizeof(v), "{\"n\":%d}", n + 1);
	storage_update_finish(lock, v, strlen(v), done_cb, &line_ctx->written[i]);
}

TEST(t_local_line)
{
	struct line *ln = calloc(1, sizeof(*ln));
	line_ctx = ln;
	CHECK_EQ(do_create(NS_TUNNEL, "line", "{\"n\":0}", 0), 0);
	uint64_t t0 = now_ms();
	for (int i = 0; i < 10; i++)
		CALL(storage_update_begin(S, NS_TUNNEL, "line", line_locked, &ln->locked[i]));
	CHECK_EQ(wait_for(&ln->written[9].called, 1, 10000), 0);
	uint64_t took = now_ms() - t0;
	printf("#   10 updates of one key from one node in %llu ms\n", (unsigned long long)took);
	CHECK(took < 150); /* no 200 ms polling between them */
	for (int i = 0; i < 10; i++) {
		CHECK_EQ(ln->locked[i].status, 0);
		CHECK_EQ(ln->locked[i].sync, 0);
		CHECK_EQ(ln->written[i].status, 0);
		CHECK_EQ(ln->order[i], i + 1); /* FIFO */
		res_free(&ln->locked[i]);
		res_free(&ln->written[i]);
	}
	CHECK_RAW("{\"n\":10}", "GET tunnel:line");
	CHECK_RAW("0", "EXISTS lock:line");
	free(ln);

	/* a caller updating a key it already holds is not stuck forever:
	 * the inner update gives up like polling would (E_BUSY, ~5 s) */
	struct res outer = {0}, inner = {0}, w = {0};
	CALL(storage_update_begin(S, NS_TUNNEL, "line", locked_cb, &outer));
	CHECK_EQ(finish(&outer), 0);
	t0 = now_ms();
	CALL(storage_update_begin(S, NS_TUNNEL, "line", locked_cb, &inner));
	CHECK_EQ(finish_ms(&inner, 8000), E_BUSY);
	took = now_ms() - t0;
	CHECK(took >= 4500 && took < 6500);
	CHECK(inner.lock == NULL);
	if (outer.lock) { /* the outer one still holds it (extended meanwhile) */
		CALL(storage_update_finish(outer.lock, "{\"n\":11}", 8, done_cb, &w));
		CHECK_EQ(finish(&w), 0);
	}
	res_free(&outer);
	res_free(&inner);
	res_free(&w);
	CHECK_RAW("{\"n\":11}", "GET tunnel:line");
	CHECK_EQ(do_update(S, NS_TUNNEL, "line", "{\"n\":12}", NULL), 0);
}

/* The reference test (§4.6): A holds the lock 1.2 s (longer than the
 * lease, so it must be extended); B on another node starts 250 ms later
 * and must see A's write. */
struct ext {
	struct storage *s2;
	struct res a, aw, b, bw;
	char *token_at_1100;
	long long pttl_at_1100;
};

static void ext_b_locked(void *arg, int status, const char *value, size_t len, struct storage_lock *lock)
{
	struct ext *e = arg;
	locked_cb(&e->b, status, value, len, lock);
	if (status == 0)
		storage_update_finish(lock, "{\"v\":\"AB\"}", 10, done_cb, &e->bw);
}

static void ext_t250(struct loop *loop, void *arg)
{
	struct ext *e = arg;
	(void)loop;
	storage_update_begin(e->s2, NS_TUNNEL, "ext", ext_b_locked, e);
}

static void ext_t1100(struct loop *loop, void *arg)
{
	struct ext *e = arg;
	(void)loop;
	e->token_at_1100 = raw_str("GET lock:ext");
	e->pttl_at_1100 = raw_int("PTTL %s", "lock:ext");
}

static void ext_t1200(struct loop *loop, void *arg)
{
	struct ext *e = arg;
	(void)loop;
	if (e->a.lock)
		storage_update_finish(e->a.lock, "{\"v\":\"A\"}", 9, done_cb, &e->aw);
}

TEST(t_lock_extension)
{
	struct ext e;
	memset(&e, 0, sizeof(e));
	e.s2 = open_url(url);
	CHECK(e.s2 != NULL);
	if (!e.s2)
		return;
	CHECK_EQ(do_create(NS_TUNNEL, "ext", "{\"v\":\"0\"}", 0), 0);
	CALL(storage_update_begin(S, NS_TUNNEL, "ext", locked_cb, &e.a));
	CHECK_EQ(finish(&e.a), 0);
	char *token = raw_str("GET lock:ext");
	(void)loop_timer_add(L, 250, ext_t250, &e);
	(void)loop_timer_add(L, 1100, ext_t1100, &e);
	(void)loop_timer_add(L, 1200, ext_t1200, &e);
	CHECK_EQ(wait_for(&e.bw.called, 1, 6000), 0);
	CHECK(is_hex32(token));
	CHECK_STR(e.token_at_1100, token); /* still ours after the 1000 ms lease */
	CHECK(e.pttl_at_1100 > 300);
	CHECK_EQ(e.aw.called, 1);
	CHECK_EQ(e.aw.status, 0);
	CHECK_EQ(e.b.status, 0);
	CHECK_STR(e.b.value, "{\"v\":\"A\"}"); /* B saw A's write */
	CHECK_EQ(e.bw.status, 0);
	CHECK(e.b.at_us > e.aw.at_us);
	CHECK_RAW("{\"v\":\"AB\"}", "GET tunnel:ext");
	free(token);
	free(e.token_at_1100);
	res_free(&e.a);
	res_free(&e.aw);
	res_free(&e.b);
	res_free(&e.bw);
	storage_close(e.s2);
}

/* BETTER (§8.2): a lease lost while held refuses the write. */
TEST(t_lock_lost_write_refused)
{
	CHECK_EQ(do_create(NS_TUNNEL, "fence", "{\"v\":0}", 0), 0);
	struct res r = {0}, w = {0};
	CALL(storage_update_begin(S, NS_TUNNEL, "fence", locked_cb, &r));
	CHECK_EQ(finish(&r), 0);
	/* our lease "lapsed" and another node took the lock */
	raw_ok("SET lock:fence other-node PX 5000");
	run_for(700); /* an extension fails in between: we stop extending */
	if (r.lock) {
		CALL(storage_update_finish(r.lock, "{\"v\":1}", 7, done_cb, &w));
		CHECK_EQ(finish(&w), E_BUSY);
	}
	res_free(&r);
	res_free(&w);
	CHECK_RAW("{\"v\":0}", "GET tunnel:fence"); /* nothing written */
	CHECK_RAW("other-node", "GET lock:fence");  /* their lock untouched */
	long long pttl = raw_int("PTTL %s", "lock:fence");
	CHECK(pttl > 0 && pttl <= 4400); /* and never extended by us */

	/* after their release, updates work again */
	raw_ok("DEL lock:fence");
	CHECK_EQ(do_update(S, NS_TUNNEL, "fence", "{\"v\":2}", NULL), 0);
	CHECK_RAW("{\"v\":2}", "GET tunnel:fence");
}

/* Two "nodes" (two storage instances, two connections) each add 1 twenty
 * times to the same record, holding the lock a few ms each time. */
struct node {
	struct storage *s;
	int done, busy, errors, locked;
	struct loop_timer *t;
	struct storage_lock *lock;
	int next;
};

static void node_begin(struct node *n);
static int node_total; /* increments written by both nodes */

static void node_written(void *arg, int status)
{
	struct node *n = arg;
	if (status == 0) {
		n->done++;
		node_total++;
	}
	else
		n->errors++;
	loop_stop(L);
	if (n->done < 20 && n->errors == 0)
		node_begin(n);
}

static void node_hold_over(struct loop *loop, void *arg)
{
	struct node *n = arg;
	char v[32];
	(void)loop;
	n->t = NULL;
	snprintf(v, sizeof(v), "{\"n\":%d}", n->next);
	storage_update_finish(n->lock, v, strlen(v), node_written, n);
}

static void node_locked(void *arg, int status, const char *value, size_t len, struct storage_lock *lock)
{
	struct node *n = arg;
	int cur = -1;
	(void)len;
	if (status == E_BUSY) { /* lock not acquired in ~5 s: try again */
		n->busy++;
		node_begin(n);
		return;
	}
	if (status != 0 || !value || sscanf(value, "{\"n\":%d}", &cur) != 1) {
		n->errors++;
		loop_stop(L);
		return;
	}
	n->locked++;
	n->lock = lock;
	n->next = cur + 1;
	n->t = loop_timer_add(L, 3, node_hold_over, n);
}

static void node_begin(struct node *n)
{
	storage_update_begin(n->s, NS_TUNNEL, "counter", node_locked, n);
}

TEST(t_two_nodes)
{
	CHECK_EQ(do_create(NS_TUNNEL, "counter", "{\"n\":0}", 0), 0);
	struct node a = {.s = S}, b = {.s = open_url(url)};
	CHECK(b.s != NULL);
	if (!b.s)
		return;
	uint64_t t0 = now_ms();
	node_begin(&a);
	node_begin(&b);
	node_total = 0;
	uint64_t deadline = t0 + 60000;
	while ((a.done < 20 || b.done < 20) && !a.errors && !b.errors && now_ms() < deadline)
		(void)wait_for(&node_total, node_total + 1, 1000);
	CHECK_EQ(a.done, 20);
	CHECK_EQ(b.done, 20);
	CHECK_EQ(a.errors + b.errors, 0);
	CHECK_RAW("{\"n\":40}", "GET tunnel:counter");
	CHECK_RAW("0", "EXISTS lock:counter");
	printf("#   40 locked increments from two nodes in %llu ms (%d lock timeouts)\n",
	       (unsigned long long)(now_ms() - t0), a.busy + b.busy);
	storage_close(b.s);
}

/* ---- startup and URLs ---------------------------------------------------- */

static int free_port(void)
{
	int fd = socket(AF_INET, SOCK_STREAM, 0);
	struct sockaddr_in sa;
	memset(&sa, 0, sizeof(sa));
	sa.sin_family = AF_INET;
	sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	socklen_t len = sizeof(sa);
	int p = 1;
	if (fd >= 0 && bind(fd, (struct sockaddr *)&sa, sizeof(sa)) == 0 &&
	    getsockname(fd, (struct sockaddr *)&sa, &len) == 0)
		p = ntohs(sa.sin_port);
	if (fd >= 0)
		close(fd);
	return p;
}

static int opens(const char *u, uint64_t *took)
{
	char err[256];
	uint64_t t0 = now_ms();
	struct storage *s = storage_open(L, u, err, sizeof(err));
	if (took)
		*took = now_ms() - t0;
	storage_close(s);
	return s != NULL;
}

TEST(t_open_urls)
{
	char u[300];
	uint64_t took;

	CHECK(!opens("rediss://127.0.0.1:6379", &took)); /* no TLS in hiredis 0.14 */
	snprintf(u, sizeof(u), "redis://%s:%d/abc", host, port);
	CHECK(!opens(u, &took));
	snprintf(u, sizeof(u), "redis:%s:%d", host, port);
	CHECK(!opens(u, &took));

	/* refused setup (no such database, wrong password): not retried */
	snprintf(u, sizeof(u), "redis://%s:%d/99999", host, port);
	CHECK(!opens(u, &took));
	CHECK(took < 1000);
	snprintf(u, sizeof(u), "redis://:wrong@%s:%d/%d", host, port, db);
	CHECK(!opens(u, &took));
	CHECK(took < 1000);

	/* nothing listening: bounded retries (shortened for the test) */
	setenv("EXPOSRD_REDIS_STARTUP_TIMEOUT_MS", "500", 1);
	snprintf(u, sizeof(u), "redis://127.0.0.1:%d", free_port());
	CHECK(!opens(u, &took));
	CHECK(took >= 400 && took < 2500);
	unsetenv("EXPOSRD_REDIS_STARTUP_TIMEOUT_MS");

	/* another database number; host name; default port is 6379 */
	int other = db == 1 ? 2 : 1;
	snprintf(u, sizeof(u), "redis://localhost:%d/%d", port, other);
	struct storage *s2 = open_url(u);
	CHECK(s2 != NULL);
	if (s2) {
		CHECK_EQ(do_set(s2, NS_TUNNEL, "in-other-db", "{}", 1, 0), 0);
		storage_close(s2);
		CHECK_RAW("0", "EXISTS tunnel:in-other-db");
		raw_ok("SELECT %d", other);
		CHECK_RAW("{}", "GET tunnel:in-other-db");
		raw_ok("FLUSHDB");
		raw_ok("SELECT %d", db);
	}

	/* user and password (ACL), %-escaped */
	raw_ok("ACL SETUSER exposrd-test on >p@ss:w0rd ~* &* +@all");
	snprintf(u, sizeof(u), "redis://exposrd-test:p%%40ss%%3Aw0rd@%s:%d/%d", host, port, db);
	s2 = open_url(u);
	CHECK(s2 != NULL);
	if (s2) {
		CHECK_EQ(do_set(s2, NS_TUNNEL, "acl", "{}", 1, 0), 0);
		storage_close(s2);
	}
	snprintf(u, sizeof(u), "redis://exposrd-test:wrong@%s:%d/%d", host, port, db);
	CHECK(!opens(u, &took));
	raw_ok("ACL DELUSER exposrd-test");
	CHECK_RAW("{}", "GET tunnel:acl");
}

/* ---- outages ------------------------------------------------------------- */

/* Try a get every 20 ms until one succeeds; ms until then, or -1. */
static long until_success(int max_ms, int *failures)
{
	uint64_t t0 = now_ms();
	*failures = 0;
	while (now_ms() - t0 < (uint64_t)max_ms) {
		struct res r = {0};
		uint64_t s0 = now_ms();
		CALL(storage_get(S, NS_TUNNEL, "probe", get_cb, &r));
		int rc = finish(&r);
		res_free(&r);
		if (rc == 0 || rc == E_NOTFOUND)
			return (long)(now_ms() - t0);
		CHECK_EQ(rc, E_BACKEND);
		CHECK(now_ms() - s0 < 4000);
		(*failures)++;
		run_for(20);
	}
	return -1;
}

TEST(t_outage_client_kill)
{
	CHECK_EQ(do_create(NS_TUNNEL, "probe", "{}", 0), 0);
	raw_ok("CLIENT KILL TYPE normal SKIPME yes");
	int failures;
	long ms = until_success(2000, &failures);
	printf("#   after CLIENT KILL: service back in %ld ms (%d failed gets)\n", ms, failures);
	CHECK(ms >= 0 && ms <= 2000);
	CHECK_VALUE(NS_TUNNEL, "probe", "{}");
	/* a locked update works on the new connection */
	CHECK_EQ(do_update(S, NS_TUNNEL, "probe", "{\"x\":1}", NULL), 0);
}

/* The server stops answering for 4 s (CLIENT PAUSE: DEBUG SLEEP is
 * disabled by default since Redis 7). */
TEST(t_outage_paused)
{
	CHECK_EQ(do_create(NS_TUNNEL, "probe", "{}", 0), 0);
	raw_ok("CLIENT PAUSE 4000 ALL");
	uint64_t t0 = now_ms();
	struct res r = {0};
	CALL(storage_get(S, NS_TUNNEL, "probe", get_cb, &r));
	CHECK_EQ(finish_ms(&r, 6000), E_BACKEND); /* bounded: the op timeout */
	uint64_t took = now_ms() - t0;
	printf("#   get while the server is paused failed after %llu ms\n", (unsigned long long)took);
	CHECK(took >= 2500 && took < 3900);
	res_free(&r);
	/* meanwhile (the new connection's handshake waits too): fail fast */
	uint64_t s0 = now_ms();
	CALL(storage_get(S, NS_TUNNEL, "probe", get_cb, &r));
	CHECK_EQ(finish(&r), E_BACKEND);
	CHECK(now_ms() - s0 < 100);
	res_free(&r);
	/* when the pause ends, service resumes by itself */
	while (now_ms() - t0 < 4000)
		run_for(10);
	int failures;
	long ms = until_success(2000, &failures);
	printf("#   service back %ld ms after the pause ended\n", ms);
	CHECK(ms >= 0 && ms <= 2000);
}

TEST(t_outage_restart)
{
	if (!services_dir() || server_pid() <= 0) {
		printf("#   skipped: EXPOSRD_SERVICES_DIR/redis.pid not available\n");
		return;
	}
	CHECK_EQ(do_create(NS_TUNNEL, "probe", "{}", 0), 0);

	/* an operation in flight when the server dies completes with
	 * E_BACKEND: pause the server, queue a get, kill -9 */
	raw_ok("CLIENT PAUSE 2000 ALL");
	struct res r = {0};
	CALL(storage_get(S, NS_TUNNEL, "probe", get_cb, &r));
	run_for(50);
	CHECK_EQ(r.called, 0);
	server_kill(SIGKILL);
	uint64_t t0 = now_ms();
	CHECK_EQ(finish_ms(&r, 3000), E_BACKEND);
	CHECK(now_ms() - t0 < 1000);
	res_free(&r);

	/* down: everything fails fast */
	uint64_t worst = 0;
	for (int i = 0; i < 10; i++) {
		uint64_t s0 = now_ms();
		struct res g = {0}, c = {0}, u = {0}, l = {0};
		CALL(storage_get(S, NS_TUNNEL, "probe", get_cb, &g));
		CALL(storage_create(S, NS_TUNNEL, "new", "{}", 2, 0, done_cb, &c));
		CALL(storage_update_begin(S, NS_TUNNEL, "probe", locked_cb, &u));
		CALL(storage_list(S, NS_TUNNEL, NULL, 10, list_cb, &l));
		CHECK_EQ(finish(&g), E_BACKEND);
		CHECK_EQ(finish(&c), E_BACKEND);
		CHECK_EQ(finish(&u), E_BACKEND);
		CHECK_EQ(finish(&l), E_BACKEND);
		if (now_ms() - s0 > worst)
			worst = now_ms() - s0;
		res_free(&g);
		res_free(&c);
		res_free(&u);
		res_free(&l);
		run_for(100);
	}
	printf("#   while down: 4 operations failed within %llu ms\n", (unsigned long long)worst);
	CHECK(worst < 100);

	/* back: service resumes by itself within 2 s */
	run_for(1500); /* let the reconnect backoff reach its cap */
	server_start(0);
	int failures;
	long ms = until_success(3000, &failures);
	printf("#   service back %ld ms after redis-server answered again (%d failed gets)\n", ms, failures);
	CHECK(ms >= 0 && ms <= 2000);
	CHECK_EQ(do_create(NS_TUNNEL, "after", "{}", 0), 0);
	CHECK_EQ(do_update(S, NS_TUNNEL, "after", "{\"x\":1}", NULL), 0);
	raw_reconnect();
	CHECK_RAW("{\"x\":1}", "GET tunnel:after");
}

/* Startup waits for a server that comes up later. */
TEST(t_startup_waits)
{
	if (!services_dir() || server_pid() <= 0) {
		printf("#   skipped: EXPOSRD_SERVICES_DIR/redis.pid not available\n");
		return;
	}
	server_kill(SIGTERM);
	server_start(700); /* in the background, 0.7 s from now */
	setenv("EXPOSRD_REDIS_STARTUP_TIMEOUT_MS", "10000", 1);
	uint64_t t0 = now_ms();
	struct storage *s2 = open_url(url);
	uint64_t took = now_ms() - t0;
	unsetenv("EXPOSRD_REDIS_STARTUP_TIMEOUT_MS");
	printf("#   open waited %llu ms for the server\n", (unsigned long long)took);
	CHECK(s2 != NULL);
	CHECK(took >= 500 && took < 5000);
	if (s2) {
		CHECK_EQ(do_set(s2, NS_TUNNEL, "late", "{}", 1, 0), 0);
		storage_close(s2);
	}
	for (int i = 0; i < 100 && !server_up(); i++)
		sleep_ms(50);
	raw_reconnect();
}

/* ---- close with work in flight ------------------------------------------- */

TEST(t_close_pending)
{
	struct storage *s2 = open_url(url);
	CHECK(s2 != NULL);
	if (!s2)
		return;
	CHECK_EQ(do_create(NS_TUNNEL, "cp", "{}", 0), 0);
	raw_ok("SET lock:cp foreign PX 5000");
	struct res u = {0}, g = {0}, m = {0}, q = {0};
	CALL(storage_update_begin(s2, NS_TUNNEL, "cp", locked_cb, &u));
	CALL(storage_update_begin(s2, NS_TUNNEL, "cp", locked_cb, &q)); /* in the local line */
	run_for(100); /* now waiting between retries */
	CALL(storage_get(s2, NS_TUNNEL, "cp", get_cb, &g));
	const char *keys[] = {"cp"};
	CALL(storage_get_multi(s2, NS_TUNNEL, keys, 1, multi_cb, &m));
	CALL(storage_close(s2));
	CHECK_EQ(u.called + g.called + m.called + q.called, 0); /* not inside close */
	loop_run_deferred(L);
	CHECK_EQ(q.called, 1);
	CHECK_EQ(q.status, E_BACKEND);
	res_free(&q);
	CHECK_EQ(u.called, 1);
	CHECK_EQ(u.status, E_BACKEND);
	CHECK_EQ(g.called, 1);
	CHECK_EQ(g.status, E_BACKEND);
	CHECK_EQ(m.called, 1);
	CHECK_EQ(m.status, E_BACKEND);
	res_free(&u);
	res_free(&g);
	res_free(&m);
	raw_ok("DEL lock:cp");
}

/* ---- latency at a short bounded load -------------------------------------- */

#define LAT_OPS 4000

struct lat {
	int started, done, errors;
	int create;
	int conc; /* operations in flight */
	uint64_t t0[LAT_OPS];
	uint64_t us[LAT_OPS];
};

static void lat_start(struct lat *l);

struct lat_op {
	struct lat *l;
	int i;
};

static void lat_finish(struct lat_op *op, int status)
{
	struct lat *l = op->l;
	l->us[op->i] = loop_mono_us() - l->t0[op->i];
	if (status != 0)
		l->errors++;
	l->done++;
	free(op);
	if (l->started < LAT_OPS)
		lat_start(l);
	if (l->done == LAT_OPS)
		loop_stop(L);
}

static void lat_get_cb(void *arg, int status, const char *value, size_t len)
{
	(void)value;
	(void)len;
	lat_finish(arg, status);
}

static void lat_done_cb(void *arg, int status)
{
	lat_finish(arg, status);
}

static void lat_start(struct lat *l)
{
	struct lat_op *op = malloc(sizeof(*op));
	char key[32];
	op->l = l;
	op->i = l->started++;
	l->t0[op->i] = loop_mono_us();
	if (l->create) {
		snprintf(key, sizeof(key), "lat-%d", op->i);
		static const char v[] = "{\"id\":\"lat\",\"account\":\"MNF4P6Y6M2MRRVCT\"}";
		storage_create(S, NS_TUNNEL, key, v, sizeof(v) - 1, 0, lat_done_cb, op);
	} else {
		snprintf(key, sizeof(key), "get-%d", op->i % 100);
		storage_get(S, NS_TUNNEL, key, lat_get_cb, op);
	}
}

static int cmp_u64(const void *a, const void *b)
{
	uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;
	return x < y ? -1 : x > y;
}

static void lat_run(struct lat *l, const char *name)
{
	uint64_t t0 = loop_mono_us();
	for (int i = 0; i < l->conc; i++)
		lat_start(l);
	(void)wait_for(&l->done, LAT_OPS, 30000);
	uint64_t total = loop_mono_us() - t0;
	CHECK_EQ(l->done, LAT_OPS);
	CHECK_EQ(l->errors, 0);
	qsort(l->us, LAT_OPS, sizeof(l->us[0]), cmp_u64);
	printf("#   %s: %d ops, %d in flight: median %.2f ms, p99 %.2f ms, max %.2f ms, %.0f ops/s\n", name,
	       LAT_OPS, l->conc, l->us[LAT_OPS / 2] / 1000.0, l->us[LAT_OPS * 99 / 100] / 1000.0,
	       l->us[LAT_OPS - 1] / 1000.0, LAT_OPS * 1e6 / (double)total);
	CHECK(l->us[LAT_OPS * 99 / 100] < 100000); /* sanity only */
}

TEST(t_latency)
{
	char key[32];
	for (int i = 0; i < 100; i++) {
		snprintf(key, sizeof(key), "get-%d", i);
		CHECK_EQ(do_create(NS_TUNNEL, key, "{\"id\":\"x\",\"account\":\"MNF4P6Y6M2MRRVCT\"}", 0), 0);
	}
	struct lat *l = calloc(1, sizeof(*l));
	static const int concs[] = {1, 50};
	for (int c = 0; c < 2; c++) {
		memset(l, 0, sizeof(*l));
		l->conc = concs[c];
		lat_run(l, "get");
		raw_ok("FLUSHDB");
		memset(l, 0, sizeof(*l));
		l->conc = concs[c];
		l->create = 1;
		lat_run(l, "create");
		for (int i = 0; i < 100; i++) {
			snprintf(key, sizeof(key), "get-%d", i);
			CHECK_EQ(do_create(NS_TUNNEL, key, "{\"id\":\"x\",\"account\":\"MNF4P6Y6M2MRRVCT\"}", 0), 0);
		}
	}
	free(l);
}

/* ---- driver -------------------------------------------------------------- */

#define RUN_R(fn) do { setup(); test_failures_in_case = 0; fn(); teardown(); \
	if (test_failures_in_case) { test_total_failed++; printf("not ok - %s\n", #fn); } \
	else { test_total_passed++; printf("ok - %s\n", #fn); } fflush(stdout); } while (0)

int main(void)
{
	log_setup(getenv("T_STORAGE_VERBOSE") ? LOG_DEBUG : LOG_OFF, 0, stderr);
	signal(SIGPIPE, SIG_IGN); /* as exposrd does: writes to a dead server */
	url = getenv("EXPOSRD_TEST_REDIS_URL");
	if (!url || !*url) {
		printf("not ok - set EXPOSRD_TEST_REDIS_URL to a test server URL (ci/services.sh start)\n");
		return 1;
	}
	parse_test_url(url);
	raw_reconnect();
	RUN_R(t_key_layout);
	RUN_R(t_lock_layout);
	RUN_R(t_reference_records);
	RUN_R(t_list_scan);
	RUN_R(t_foreign_lock_released);
	RUN_R(t_foreign_lock_expires);
	RUN_R(t_foreign_lock_gives_up);
	RUN_R(t_local_line);
	RUN_R(t_lock_extension);
	RUN_R(t_lock_lost_write_refused);
	RUN_R(t_two_nodes);
	RUN_R(t_open_urls);
	RUN_R(t_close_pending);
	RUN_R(t_latency);
	RUN_R(t_outage_client_kill);
	RUN_R(t_outage_paused);
	RUN_R(t_outage_restart);
	RUN_R(t_startup_waits);
	redisFree(R);
	printf("# %d passed, %d failed\n", test_total_passed, test_total_failed);
	return test_done();
}

#endif /* WITH_REDIS */
