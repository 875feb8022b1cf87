/* t-storage-pgsql.c - PostgreSQL backend specifics (spec/storage.md §7.2,
 * §9, §12): the table layout shared with reference nodes, exclusive-create
 * races and read-modify-write across two "nodes" (two storages in one
 * process), connection loss and outages (a small TCP proxy in a child
 * process refuses or black-holes the connections, so the shared test
 * server itself is never stopped), pool exhaustion, startup retries, and
 * a short latency measurement.
 *
 * Needs EXPOSRD_TEST_PGSQL_URL (ci/services.sh start).  Built without
 * WITH_PGSQL it only reports a skip.
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

#if WITH_PGSQL

#include <arpa/inet.h>
#include <netinet/in.h>
#include <poll.h>
#include <signal.h>
#include <sys/socket.h>
#include <sys/wait.h>

#include <libpq-fe.h>

#include "storage-pgsql.h"

#define WAIT_MS 8000 /* upper bound for any single wait */

static struct loop *L;
static struct storage *S;
static PGconn *raw;            /* blocking test connection */
static const char *base_url;   /* EXPOSRD_TEST_PGSQL_URL */
static int calling;
static int timed_out;

static uint64_t now_ms(void)
{
	return loop_mono_us() / 1000u;
}

/* ---- loop helpers ---- */

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

static int wait_until_ms(const int *counter, int target, int ms)
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
	else
		printf("#   timed out waiting for a callback\n");
	return *counter >= target ? 0 : -1;
}

static int wait_until(const int *counter, int target)
{
	return wait_until_ms(counter, target, WAIT_MS);
}

static void tick(struct loop *loop, void *arg)
{
	(*(int *)arg)++;
	loop_stop(loop);
}

/* Run the loop for ms milliseconds. */
static void run_for(int ms)
{
	int done = 0;
	(void)loop_timer_add(L, (uint64_t)ms, tick, &done);
	(void)wait_until_ms(&done, 1, ms + 2000);
}

/* ---- results ---- */

struct res {
	int called;
	int sync;
	int status;
	char *value;
	char **items;
	size_t n;
	char *cursor;
	struct storage_lock *lock;
	uint64_t t_start, t_done; /* ms */
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
	r->t_done = now_ms();
	loop_stop(L);
}

static void get_cb(void *arg, int status, const char *value, size_t len)
{
	struct res *r = arg;
	mark(r, status);
	if (status == 0 && value) {
		CHECK_EQ(strlen(value), len);
		r->value = strdup(value);
	}
}

static void done_cb(void *arg, int status)
{
	mark(arg, status);
}

static void multi_cb(void *arg, int status, char *const *values, size_t n)
{
	struct res *r = arg;
	mark(r, status);
	r->n = n;
	r->items = calloc(n ? n : 1, sizeof(char *));
	for (size_t i = 0; i < n; i++)
		r->items[i] = values[i] ? strdup(values[i]) : NULL;
}

static void list_cb(void *arg, int status, char *const *keys, size_t n, const char *next)
{
	struct res *r = arg;
	mark(r, status);
	r->n = n;
	r->items = calloc(n ? n : 1, sizeof(char *));
	for (size_t i = 0; i < n; i++)
		r->items[i] = strdup(keys[i]);
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

#define CALL(expr) do { calling = 1; expr; calling = 0; } while (0)

static int finish_ms(struct res *r, int ms)
{
	if (wait_until_ms(&r->called, 1, ms) != 0)
		return E_TIMEOUT;
	CHECK_EQ(r->called, 1);
	CHECK_EQ(r->sync, 0);
	return r->status;
}

static int finish(struct res *r)
{
	return finish_ms(r, WAIT_MS);
}

static int do_set(struct storage *s, enum storage_ns ns, const char *key, const char *value, int exclusive, long ttl)
{
	struct res r = {0};
	if (exclusive)
		CALL(storage_create(s, ns, key, value, strlen(value), ttl, done_cb, &r));
	else
		CALL(storage_put(s, ns, key, value, strlen(value), ttl, done_cb, &r));
	int rc = finish(&r);
	res_free(&r);
	return rc;
}

static int do_get(struct storage *s, enum storage_ns ns, const char *key, char **out)
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

/* Locked update writing value (NULL: release only); returns the status of
 * the lock step, *wstatus that of the write. */
static int do_update(struct storage *s, enum storage_ns ns, const char *key, const char *value, char **seen,
		     int *wstatus)
{
	struct res r = {0}, w = {0};
	CALL(storage_update_begin(s, ns, key, locked_cb, &r));
	int rc = finish(&r);
	if (rc == 0 && r.lock) {
		CALL(storage_update_finish(r.lock, value, value ? strlen(value) : 0, done_cb, &w));
		*wstatus = finish(&w);
	}
	if (seen) {
		*seen = r.value;
		r.value = NULL;
	}
	res_free(&r);
	res_free(&w);
	return rc;
}

#define CHECK_VALUE(s, ns, key, want) do { char *v_ = NULL; int rc_ = do_get((s), (ns), (key), &v_); \
	if (want) { CHECK_EQ(rc_, 0); CHECK_STR(v_, (want)); } \
	else { CHECK_EQ(rc_, E_NOTFOUND); } free(v_); } while (0)

/* ---- raw SQL (a blocking connection of the test itself) ---- */

static void quiet_notice(void *arg, const char *msg);

static int raw_exec(const char *sql)
{
	PGresult *r = PQexec(raw, sql);
	int ok = PQresultStatus(r) == PGRES_COMMAND_OK || PQresultStatus(r) == PGRES_TUPLES_OK;
	if (!ok)
		printf("#   %s: %s", sql, PQresultErrorMessage(r));
	PQclear(r);
	return ok ? 0 : -1;
}

/* First column of the first row (malloc'd), "(null)" for NULL, NULL if no row. */
static char *raw_query(const char *sql)
{
	PGresult *r = PQexec(raw, sql);
	char *out = NULL;
	if (PQresultStatus(r) != PGRES_TUPLES_OK)
		printf("#   %s: %s", sql, PQresultErrorMessage(r));
	else if (PQntuples(r) > 0)
		out = strdup(PQgetisnull(r, 0, 0) ? "(null)" : PQgetvalue(r, 0, 0));
	PQclear(r);
	return out;
}

#define CHECK_QUERY(sql, want) do { char *q_ = raw_query(sql); CHECK_STR(q_, (want)); free(q_); } while (0)

static const char *const tables[] = {"account", "tunnel", "ingress_altnames"};

static void drop_tables(void)
{
	(void)raw_exec("DROP TABLE IF EXISTS account, tunnel, ingress_altnames");
}

static void truncate_tables(void)
{
	(void)raw_exec("DO $$ BEGIN"
		       " IF to_regclass('account') IS NOT NULL THEN TRUNCATE account; END IF;"
		       " IF to_regclass('tunnel') IS NOT NULL THEN TRUNCATE tunnel; END IF;"
		       " IF to_regclass('ingress_altnames') IS NOT NULL THEN TRUNCATE ingress_altnames; END IF;"
		       " END $$");
}

/* base URL plus "application_name=app" (and more query text). */
static void make_url(char *out, size_t cap, const char *app, const char *more)
{
	snprintf(out, cap, "%s%s%s%s%s", base_url, strchr(base_url, '?') ? "&" : "?",
		 app ? "application_name=" : "", app ? app : "", more ? more : "");
}

static struct storage *open_url(const char *u)
{
	char err[256];
	struct storage *s = storage_open(L, u, err, sizeof(err));
	if (!s)
		printf("#   storage_open: %s\n", err);
	return s;
}

static int sessions(const char *app, const char *state_like)
{
	char sql[300];
	snprintf(sql, sizeof(sql),
		 "SELECT count(*) FROM pg_stat_activity WHERE datname = current_database()"
		 " AND application_name = '%s'%s%s%s", app, state_like ? " AND state LIKE '" : "",
		 state_like ? state_like : "", state_like ? "'" : "");
	char *v = raw_query(sql);
	int n = v ? atoi(v) : -1;
	free(v);
	return n;
}

static void terminate(const char *app)
{
	char sql[256];
	snprintf(sql, sizeof(sql),
		 "SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity WHERE datname = current_database()"
		 " AND application_name = '%s' AND pid <> pg_backend_pid()", app);
	free(raw_query(sql));
}

/* ---- TCP proxy in a child process (outage simulation) ---- */

enum { PX_UP = 'u', PX_REFUSE = 'r', PX_HOLE = 'b', PX_LATE = 'l', PX_QUIT = 'q' };
#define PX_MAX 64

static pid_t px_pid = -1;
static int px_cmd = -1, px_ack = -1;
static int px_port;
static char pg_host[64] = "127.0.0.1";
static int pg_port = 5432;

static int px_listen(int port)
{
	int fd = socket(AF_INET, SOCK_STREAM, 0);
	int one = 1;
	struct sockaddr_in a;
	memset(&a, 0, sizeof(a));
	a.sin_family = AF_INET;
	a.sin_port = htons((uint16_t)port);
	a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	(void)setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
	if (fd < 0 || bind(fd, (struct sockaddr *)&a, sizeof(a)) != 0 || listen(fd, 64) != 0) {
		if (fd >= 0)
			close(fd);
		return -1;
	}
	return fd;
}

static int px_upstream(void)
{
	int fd = socket(AF_INET, SOCK_STREAM, 0);
	struct sockaddr_in a;
	memset(&a, 0, sizeof(a));
	a.sin_family = AF_INET;
	a.sin_port = htons((uint16_t)pg_port);
	(void)inet_pton(AF_INET, pg_host, &a.sin_addr);
	if (fd < 0 || connect(fd, (struct sockaddr *)&a, sizeof(a)) != 0) {
		if (fd >= 0)
			close(fd);
		return -1;
	}
	return fd;
}

static int write_all(int fd, const char *p, size_t n)
{
	while (n > 0) {
		ssize_t w = write(fd, p, n);
		if (w < 0 && errno == EINTR)
			continue;
		if (w <= 0)
			return -1;
		p += w;
		n -= (size_t)w;
	}
	return 0;
}

static void px_child(int lfd, int cmd, int ack)
{
	int pr[PX_MAX][2], np = 0;
	int mode = PX_UP;
	uint64_t up_at = 0;
	signal(SIGPIPE, SIG_IGN);
	for (;;) {
		struct pollfd pf[2 + 2 * PX_MAX];
		int who[2 + 2 * PX_MAX]; /* -1 cmd, -2 listener, else pair*2+side */
		int n = 0;
		pf[n].fd = cmd, pf[n].events = POLLIN, who[n++] = -1;
		if (lfd >= 0)
			pf[n].fd = lfd, pf[n].events = POLLIN, who[n++] = -2;
		if (mode == PX_UP)
			for (int i = 0; i < np; i++)
				for (int k = 0; k < 2; k++)
					pf[n].fd = pr[i][k], pf[n].events = POLLIN, who[n++] = i * 2 + k;
		if (poll(pf, (nfds_t)n, up_at ? 20 : -1) < 0 && errno != EINTR)
			_exit(1);
		if (up_at && now_ms() >= up_at) {
			up_at = 0;
			mode = PX_UP;
			lfd = px_listen(px_port);
		}
		int closed = -1;
		for (int j = 0; j < n; j++) {
			if (!pf[j].revents)
				continue;
			if (who[j] == -1) {
				char c;
				if (read(cmd, &c, 1) != 1 || c == PX_QUIT)
					_exit(0);
				if (c == PX_UP || c == PX_REFUSE || c == PX_LATE) {
					/* every pair is cut (a healed partition too) */
					for (int i = 0; i < np; i++) {
						close(pr[i][0]);
						if (pr[i][1] >= 0)
							close(pr[i][1]);
					}
					np = 0;
				}
				if (c == PX_UP) {
					if (lfd < 0)
						lfd = px_listen(px_port);
					up_at = 0;
				} else if (c == PX_REFUSE || c == PX_LATE) {
					if (lfd >= 0)
						close(lfd);
					lfd = -1;
					up_at = c == PX_LATE ? now_ms() + 700 : 0;
				}
				mode = c == PX_LATE ? PX_REFUSE : c;
				(void)write_all(ack, &c, 1);
				break; /* the poll set changed */
			}
			if (who[j] == -2) {
				int c = accept(lfd, NULL, NULL);
				if (c < 0)
					continue;
				int u = mode == PX_UP ? px_upstream() : -1;
				if ((mode == PX_UP && u < 0) || np == PX_MAX) {
					close(c);
					if (u >= 0)
						close(u);
					continue;
				}
				pr[np][0] = c;
				pr[np][1] = u; /* black hole: never connected upstream */
				np++;
				break;
			}
			int i = who[j] / 2, k = who[j] % 2;
			char buf[16384];
			ssize_t r = read(pr[i][k], buf, sizeof(buf));
			if (r <= 0 || write_all(pr[i][1 - k], buf, (size_t)r) != 0) {
				closed = i;
				break;
			}
		}
		if (closed >= 0) {
			close(pr[closed][0]);
			close(pr[closed][1]);
			pr[closed][0] = pr[np - 1][0];
			pr[closed][1] = pr[np - 1][1];
			np--;
		}
	}
}

static int px_start(void)
{
	int lfd = px_listen(0);
	struct sockaddr_in a;
	socklen_t al = sizeof(a);
	if (lfd < 0 || getsockname(lfd, (struct sockaddr *)&a, &al) != 0)
		return -1;
	px_port = ntohs(a.sin_port);
	int c[2], k[2];
	if (pipe(c) != 0 || pipe(k) != 0)
		return -1;
	fflush(stdout);
	px_pid = fork();
	if (px_pid < 0)
		return -1;
	if (px_pid == 0) {
		close(c[1]);
		close(k[0]);
		px_child(lfd, c[0], k[1]);
		_exit(0);
	}
	close(lfd);
	close(c[0]);
	close(k[1]);
	px_cmd = c[1];
	px_ack = k[0];
	return 0;
}

static void px_send(char cmd)
{
	char a;
	if (write_all(px_cmd, &cmd, 1) != 0 || read(px_ack, &a, 1) != 1)
		printf("#   proxy command %c failed\n", cmd);
}

static void px_stop(void)
{
	if (px_pid <= 0)
		return;
	char q = PX_QUIT;
	(void)write_all(px_cmd, &q, 1);
	close(px_cmd);
	close(px_ack);
	(void)waitpid(px_pid, NULL, 0);
	px_pid = -1;
}

/* URL through the proxy: base URL with host:port replaced. */
static void proxy_url(char *out, size_t cap, const char *app)
{
	const char *p = strstr(base_url, "://");
	p = p ? p + 3 : base_url;
	const char *slash = strchr(p, '/');
	const char *at = memchr(p, '@', slash ? (size_t)(slash - p) : strlen(p));
	const char *host = at ? at + 1 : p;
	snprintf(out, cap, "%.*s127.0.0.1:%d%s%sapplication_name=%s", (int)(host - base_url), base_url, px_port,
		 slash ? slash : "/", slash && strchr(slash, '?') ? "&" : "?", app);
}

static void parse_pg_addr(void)
{
	const char *p = strstr(base_url, "://");
	p = p ? p + 3 : base_url;
	const char *slash = strchr(p, '/');
	size_t n = slash ? (size_t)(slash - p) : strlen(p);
	const char *at = memchr(p, '@', n);
	if (at) {
		n -= (size_t)(at + 1 - p);
		p = at + 1;
	}
	const char *colon = memchr(p, ':', n);
	size_t hl = colon ? (size_t)(colon - p) : n;
	if (hl > 0 && hl < sizeof(pg_host))
		snprintf(pg_host, sizeof(pg_host), "%.*s", (int)hl, p);
	if (colon)
		pg_port = atoi(colon + 1);
	if (strcmp(pg_host, "localhost") == 0)
		snprintf(pg_host, sizeof(pg_host), "127.0.0.1");
}

/* ---- cases ---- */

TEST(t_layout)
{
	drop_tables();
	S = open_url(base_url);
	CHECK(S != NULL);
	if (!S)
		return;
	char sql[600], want[200];
	for (int i = 0; i < 3; i++) {
		snprintf(sql, sizeof(sql),
			 "SELECT string_agg(column_name || ':' || data_type || ':' || is_nullable, ','"
			 " ORDER BY ordinal_position) FROM information_schema.columns"
			 " WHERE table_schema = current_schema() AND table_name = '%s'", tables[i]);
		CHECK_QUERY(sql, "key:text:NO,value:jsonb:NO,modified_at:timestamp without time zone:NO,"
				 "expires_at:timestamp without time zone:YES");
		snprintf(sql, sizeof(sql),
			 "SELECT string_agg(a.attname, ',') FROM pg_index i JOIN pg_attribute a"
			 " ON a.attrelid = i.indrelid AND a.attnum = ANY(i.indkey)"
			 " WHERE i.indrelid = '%s'::regclass AND i.indisprimary", tables[i]);
		CHECK_QUERY(sql, "key");
		snprintf(sql, sizeof(sql),
			 "SELECT string_agg(indexname || '(' || substring(indexdef from '\\((.*)\\)') || ')', ','"
			 " ORDER BY indexname) FROM pg_indexes WHERE schemaname = current_schema()"
			 " AND tablename = '%s' AND indexname LIKE 'idx_%%'", tables[i]);
		snprintf(want, sizeof(want), "idx_%s_expires_at(expires_at),idx_%s_modified_at(modified_at)",
			 tables[i], tables[i]);
		CHECK_QUERY(sql, want);
	}

	/* what we write is JSONB a reference node (or psql) can query */
	CHECK_EQ(do_set(S, NS_TUNNEL, "tun-1", "{\"id\":\"tun-1\",\"ingress\":{\"http\":{\"enabled\":true}}}", 1, 0),
		 0);
	CHECK_EQ(do_set(S, NS_ACCOUNT, "ACC1", "{\"id\":\"ACC1\",\"tunnels\":[\"tun-1\"]}", 0, 0), 0);
	CHECK_EQ(do_set(S, NS_ALTNAME, "http-a.example", "{\"tunnelId\":\"tun-1\"}", 1, 3600), 0);
	CHECK_QUERY("SELECT value->>'id' || ',' || (value->'ingress'->'http'->>'enabled') || ',' ||"
		    " jsonb_typeof(value) FROM tunnel WHERE key = 'tun-1'", "tun-1,true,object");
	CHECK_QUERY("SELECT value->'tunnels'->>0 FROM account WHERE key = 'ACC1'", "tun-1");
	CHECK_QUERY("SELECT value->>'tunnelId' FROM ingress_altnames", "tun-1");
	CHECK_QUERY("SELECT expires_at IS NULL AND modified_at BETWEEN NOW()::timestamp - interval '10 s'"
		    " AND NOW()::timestamp + interval '1 s' FROM tunnel WHERE key = 'tun-1'", "t");
	CHECK_QUERY("SELECT expires_at BETWEEN NOW()::timestamp + interval '3590 s'"
		    " AND NOW()::timestamp + interval '3610 s' FROM ingress_altnames", "t");
	/* put clears the expiry */
	CHECK_EQ(do_set(S, NS_ALTNAME, "http-a.example", "{\"tunnelId\":\"tun-2\"}", 0, 0), 0);
	CHECK_QUERY("SELECT expires_at IS NULL FROM ingress_altnames", "t");

	/* locked update: value replaced, modified_at refreshed, expiry kept */
	CHECK_EQ(do_set(S, NS_TUNNEL, "tun-ttl", "{\"id\":\"tun-ttl\"}", 1, 3600), 0);
	CHECK_EQ(raw_exec("UPDATE tunnel SET modified_at = '2000-01-01' WHERE key IN ('tun-1', 'tun-ttl')"), 0);
	int ws = -1;
	char *seen = NULL;
	CHECK_EQ(do_update(S, NS_TUNNEL, "tun-1", "{\"id\":\"tun-1\",\"x\":1}", &seen, &ws), 0);
	CHECK_EQ(ws, 0);
	/* JSONB's text, compacted: members in JSONB order, no blanks */
	CHECK_STR(seen, "{\"id\":\"tun-1\",\"ingress\":{\"http\":{\"enabled\":true}}}");
	free(seen);
	CHECK_EQ(do_update(S, NS_TUNNEL, "tun-ttl", "{\"id\":\"tun-ttl\",\"x\":2}", NULL, &ws), 0);
	CHECK_EQ(ws, 0);
	CHECK_QUERY("SELECT string_agg(key || ':' || (value->>'x') || ':' || (modified_at > '2001-01-01') || ':' ||"
		    " (expires_at IS NOT NULL), ',' ORDER BY key) FROM tunnel", "tun-1:1:true:false,tun-ttl:2:true:true");
	storage_close(S);
	S = NULL;
}

TEST(t_reference_rows)
{
	/* tables made by a reference node (same DDL, its own formatting) */
	drop_tables();
	char sql[600];
	for (int i = 0; i < 3; i++) {
		snprintf(sql, sizeof(sql),
			 "CREATE TABLE IF NOT EXISTS %s (\n  key TEXT PRIMARY KEY,\n  value JSONB NOT NULL,\n"
			 "  modified_at TIMESTAMP NOT NULL,\n  expires_at TIMESTAMP NULL\n);"
			 "CREATE INDEX IF NOT EXISTS idx_%s_modified_at ON %s (modified_at);"
			 "CREATE INDEX IF NOT EXISTS idx_%s_expires_at ON %s (expires_at)",
			 tables[i], tables[i], tables[i], tables[i], tables[i]);
		CHECK_EQ(raw_exec(sql), 0);
	}
	CHECK_EQ(raw_exec(
		"INSERT INTO tunnel (key, value, modified_at, expires_at) VALUES"
		" ('ref', '{\"id\":\"ref\",\"transport\":{\"token\":\"a, b: c\"}}', NOW(), NULL),"
		" ('ref-old', '{\"id\":\"ref-old\"}', NOW(), TO_TIMESTAMP(1700000000)),"
		" ('ref-later', '{\"id\":\"ref-later\"}', NOW(), TO_TIMESTAMP(4102444800));"
		"INSERT INTO account (key, value, modified_at, expires_at) VALUES"
		" ('MNF4P6Y6M2MRRVCT', '{\"accountId\":\"MNF4P6Y6M2MRRVCT\",\"id\":\"MNF4P6Y6M2MRRVCT\","
		"\"tunnels\":[\"ref\"],\"status\":{\"disabled\":false}}', NOW(), NULL)"), 0);
	S = open_url(base_url);
	CHECK(S != NULL);
	if (!S)
		return;
	/* expired rows were purged by the cleanup at startup */
	CHECK_QUERY("SELECT string_agg(key, ',' ORDER BY key) FROM tunnel", "ref,ref-later");
	CHECK_VALUE(S, NS_TUNNEL, "ref", "{\"id\":\"ref\",\"transport\":{\"token\":\"a, b: c\"}}");
	CHECK_VALUE(S, NS_TUNNEL, "ref-later", "{\"id\":\"ref-later\"}");
	CHECK_VALUE(S, NS_ACCOUNT, "MNF4P6Y6M2MRRVCT",
		    "{\"id\":\"MNF4P6Y6M2MRRVCT\",\"status\":{\"disabled\":false},\"tunnels\":[\"ref\"],"
		    "\"accountId\":\"MNF4P6Y6M2MRRVCT\"}");

	/* an expired row not yet purged: invisible, and no obstacle to create */
	CHECK_EQ(raw_exec("INSERT INTO tunnel VALUES ('gone', '{\"old\":1}', NOW(), TO_TIMESTAMP(1700000000))"), 0);
	CHECK_VALUE(S, NS_TUNNEL, "gone", NULL);
	const char *keys[] = {"gone", "ref", "nope"};
	struct res r = {0};
	CALL(storage_get_multi(S, NS_TUNNEL, keys, 3, multi_cb, &r));
	CHECK_EQ(finish(&r), 0);
	CHECK_EQ(r.n, 3);
	if (r.n == 3) {
		CHECK(r.items[0] == NULL && r.items[2] == NULL);
		CHECK_STR(r.items[1], "{\"id\":\"ref\",\"transport\":{\"token\":\"a, b: c\"}}");
	}
	res_free(&r);
	CALL(storage_list(S, NS_TUNNEL, NULL, 10, list_cb, &r));
	CHECK_EQ(finish(&r), 0);
	CHECK_EQ(r.n, 2);
	res_free(&r);
	CHECK_EQ(do_set(S, NS_TUNNEL, "gone", "{\"new\":1}", 1, 0), 0);
	CHECK_VALUE(S, NS_TUNNEL, "gone", "{\"new\":1}");
	CHECK_QUERY("SELECT expires_at IS NULL FROM tunnel WHERE key = 'gone'", "t");
	/* a live row still blocks it */
	CHECK_EQ(do_set(S, NS_TUNNEL, "ref-later", "{}", 1, 0), E_EXISTS);
	storage_close(S);
	S = NULL;
}

struct pair {
	struct res a, b;
};

TEST(t_create_race)
{
	truncate_tables();
	struct storage *n1 = open_url(base_url), *n2 = open_url(base_url);
	CHECK(n1 && n2);
	if (!n1 || !n2)
		goto out;
	enum { ROUNDS = 30 };
	static struct pair p[ROUNDS];
	memset(p, 0, sizeof(p));
	char key[32], val[32];
	for (int i = 0; i < ROUNDS; i++) {
		/* all in flight at once; odd rounds race within one node */
		snprintf(key, sizeof(key), "race-%d", i);
		snprintf(val, sizeof(val), "{\"n\":1}");
		CALL(storage_create(n1, NS_TUNNEL, key, val, strlen(val), 0, done_cb, &p[i].a));
		snprintf(val, sizeof(val), "{\"n\":2}");
		CALL(storage_create(i % 2 ? n1 : n2, NS_TUNNEL, key, val, strlen(val), 0, done_cb, &p[i].b));
	}
	int won = 0;
	for (int i = 0; i < ROUNDS; i++) {
		(void)wait_until(&p[i].a.called, 1);
		(void)wait_until(&p[i].b.called, 1);
		int sa = p[i].a.status, sb = p[i].b.status;
		CHECK((sa == 0 && sb == E_EXISTS) || (sa == E_EXISTS && sb == 0));
		won += sb == 0;
	}
	printf("#   second create won %d of %d races\n", won, ROUNDS);
	CHECK_QUERY("SELECT count(*) FROM tunnel WHERE key LIKE 'race-%'", "30");
out:
	storage_close(n1);
	storage_close(n2);
}

/* Increment {"n":N} under the lock, K times in a chain. */
struct incr {
	struct storage *s;
	int left;
	int done;
	int errors;
	struct res r, w;
};

static void incr_start(struct incr *it);

static void incr_written(void *arg, int status)
{
	struct incr *it = arg;
	if (status != 0)
		it->errors++;
	else
		it->left--;
	if (it->left > 0)
		incr_start(it);
	else {
		it->done = 1;
		loop_stop(L);
	}
}

static void incr_locked(void *arg, int status, const char *value, size_t len, struct storage_lock *lock)
{
	struct incr *it = arg;
	(void)len;
	if (status != 0) {
		it->errors++;
		incr_start(it);
		return;
	}
	int n = -1;
	const char *p = value ? strstr(value, "\"n\":") : NULL;
	if (p)
		n = atoi(p + 4);
	char buf[32];
	snprintf(buf, sizeof(buf), "{\"n\":%d}", n + 1);
	storage_update_finish(lock, buf, strlen(buf), incr_written, it);
}

static void incr_start(struct incr *it)
{
	if (it->errors > 20) {
		it->done = 1;
		return;
	}
	storage_update_begin(it->s, NS_TUNNEL, "ctr", incr_locked, it);
}

/* A holds the record 400 ms; B on the other node starts 100 ms later and
 * must see A's write. */
struct holder {
	struct res r, w;
	struct loop_timer *t;
	struct storage *s;
	const char *write;
	uint64_t t_locked;
};

static void holder_finish(struct loop *loop, void *arg)
{
	struct holder *h = arg;
	(void)loop;
	h->t = NULL;
	storage_update_finish(h->r.lock, h->write, strlen(h->write), done_cb, &h->w);
}

static void holder_locked(void *arg, int status, const char *value, size_t len, struct storage_lock *lock)
{
	struct holder *h = arg;
	locked_cb(&h->r, status, value, len, lock);
	h->t_locked = now_ms();
	if (status == 0)
		h->t = loop_timer_add(L, 400, holder_finish, h);
}

static void b_locked(void *arg, int status, const char *value, size_t len, struct storage_lock *lock)
{
	struct holder *h = arg;
	locked_cb(&h->r, status, value, len, lock);
	h->t_locked = now_ms();
	if (status == 0)
		storage_update_finish(lock, h->write, strlen(h->write), done_cb, &h->w);
}

TEST(t_rmw_two_nodes)
{
	truncate_tables();
	struct storage *n1 = open_url(base_url), *n2 = open_url(base_url);
	CHECK(n1 && n2);
	if (!n1 || !n2)
		goto out;
	CHECK_EQ(do_set(n1, NS_TUNNEL, "ctr", "{\"n\":0}", 1, 0), 0);
	enum { K = 15 };
	struct incr it[4] = {{n1, K, 0, 0, {0}, {0}}, {n2, K, 0, 0, {0}, {0}}, {n1, K, 0, 0, {0}, {0}},
			     {n2, K, 0, 0, {0}, {0}}};
	for (int i = 0; i < 4; i++)
		incr_start(&it[i]);
	for (int i = 0; i < 4; i++) {
		CHECK_EQ(wait_until_ms(&it[i].done, 1, 30000), 0);
		CHECK_EQ(it[i].errors, 0);
	}
	CHECK_VALUE(n2, NS_TUNNEL, "ctr", "{\"n\":60}");

	CHECK_EQ(do_set(n1, NS_TUNNEL, "hold", "{\"v\":\"0\"}", 1, 0), 0);
	struct holder a = {.s = n1, .write = "{\"v\":\"A\"}"}, b = {.s = n2, .write = "{\"v\":\"AB\"}"};
	storage_update_begin(n1, NS_TUNNEL, "hold", holder_locked, &a);
	CHECK_EQ(wait_until(&a.r.called, 1), 0);
	run_for(100);
	storage_update_begin(n2, NS_TUNNEL, "hold", b_locked, &b);
	CHECK_EQ(wait_until(&b.w.called, 1), 0);
	CHECK_EQ(a.w.called, 1);
	CHECK_EQ(a.w.status, 0);
	CHECK_EQ(b.w.status, 0);
	CHECK_STR(b.r.value, "{\"v\":\"A\"}");
	CHECK(b.t_locked >= a.t_locked + 350);
	CHECK_VALUE(n1, NS_TUNNEL, "hold", "{\"v\":\"AB\"}");
	if (a.t)
		loop_timer_cancel(L, a.t);
	res_free(&a.r);
	res_free(&a.w);
	res_free(&b.r);
	res_free(&b.w);
out:
	storage_close(n1);
	storage_close(n2);
}

TEST(t_rmw_errors_release)
{
	truncate_tables();
	static const char app[] = "t-pgsql-leak";
	char u[512];
	make_url(u, sizeof(u), app, NULL);
	storage_pgsql_set_pool_size(2);
	S = open_url(u);
	storage_pgsql_set_pool_size(0);
	CHECK(S != NULL);
	if (!S)
		return;
	/* spec §11 item 4: not-found must not leak transactions or connections */
	enum { N = 20 };
	struct res r[N];
	memset(r, 0, sizeof(r));
	char key[32];
	for (int i = 0; i < N; i++) {
		snprintf(key, sizeof(key), "missing-%d", i % 3);
		CALL(storage_update_begin(S, NS_TUNNEL, key, locked_cb, &r[i]));
	}
	for (int i = 0; i < N; i++) {
		CHECK_EQ(finish(&r[i]), E_NOTFOUND);
		res_free(&r[i]);
	}
	CHECK_EQ(do_set(S, NS_TUNNEL, "t", "{\"v\":1}", 1, 0), 0);
	/* a write the server rejects (not JSON): error, rolled back, unlocked */
	int ws = -1;
	CHECK_EQ(do_update(S, NS_TUNNEL, "t", "{not json", NULL, &ws), 0);
	CHECK_EQ(ws, E_BACKEND);
	CHECK_VALUE(S, NS_TUNNEL, "t", "{\"v\":1}");
	CHECK_EQ(do_update(S, NS_TUNNEL, "t", "{\"v\":2}", NULL, &ws), 0);
	CHECK_EQ(ws, 0);
	CHECK_VALUE(S, NS_TUNNEL, "t", "{\"v\":2}");
	/* invalid values on other writes: refused, nothing written */
	CHECK_EQ(do_set(S, NS_TUNNEL, "t", "[1,", 0, 0), E_BACKEND);
	CHECK_VALUE(S, NS_TUNNEL, "t", "{\"v\":2}");
	run_for(50);
	CHECK_EQ(sessions(app, "idle in transaction%"), 0);
	int n = sessions(app, NULL);
	CHECK(n >= 1 && n <= 2);
	storage_close(S);
	S = NULL;
}

struct many {
	int called, ok, failed;
	uint64_t *lat; /* us per op, when measuring */
	size_t nlat;
};

struct one {
	struct many *m;
	uint64_t t0;
};

static void many_done_common(struct one *o, int status)
{
	struct many *m = o->m;
	m->called++;
	if (status == 0 || status == E_EXISTS || status == E_NOTFOUND)
		m->ok++;
	else
		m->failed++;
	if (m->lat)
		m->lat[m->nlat++] = loop_mono_us() - o->t0;
	loop_stop(L);
}

static void many_get_cb(void *arg, int status, const char *value, size_t len)
{
	(void)value;
	(void)len;
	many_done_common(arg, status);
}

static void many_done_cb(void *arg, int status)
{
	many_done_common(arg, status);
}

TEST(t_pool_queue)
{
	truncate_tables();
	static const char app[] = "t-pgsql-pool";
	char u[512];
	make_url(u, sizeof(u), app, NULL);
	storage_pgsql_set_pool_size(3);
	S = open_url(u);
	storage_pgsql_set_pool_size(0);
	CHECK(S != NULL);
	if (!S)
		return;
	enum { N = 300 };
	static struct one ones[N];
	struct many m = {0};
	char key[32];
	for (int i = 0; i < N; i++) {
		ones[i].m = &m;
		snprintf(key, sizeof(key), "p-%d", i % 50);
		if (i % 3 == 0)
			storage_create(S, NS_TUNNEL, key, "{}", 2, 0, many_done_cb, &ones[i]);
		else if (i % 3 == 1)
			storage_put(S, NS_ACCOUNT, key, "{\"a\":1}", 7, 0, many_done_cb, &ones[i]);
		else
			storage_get(S, NS_TUNNEL, key, many_get_cb, &ones[i]);
	}
	CHECK_EQ(wait_until(&m.called, N), 0);
	CHECK_EQ(m.ok, N);
	int n = sessions(app, NULL);
	printf("#   %d sessions served %d queued operations\n", n, N);
	CHECK(n >= 2 && n <= 3);

	/* past the queue bound (10000 waiting): refused with E_BACKEND, the
	 * rest still completes */
	enum { BIG = 10100 };
	struct one *big = calloc(BIG, sizeof(*big));
	struct many mb = {0};
	uint64_t t0 = now_ms();
	for (int i = 0; i < BIG; i++) {
		big[i].m = &mb;
		storage_get(S, NS_TUNNEL, "p-1", many_get_cb, &big[i]);
	}
	CHECK_EQ(wait_until_ms(&mb.called, BIG, 30000), 0);
	printf("#   %d of %d gets refused, %d done in %llu ms\n", mb.failed, BIG, mb.ok,
	       (unsigned long long)(now_ms() - t0));
	CHECK(mb.failed >= 1 && mb.failed <= 200);
	CHECK_EQ(mb.ok + mb.failed, BIG);
	free(big);
	CHECK_VALUE(S, NS_ACCOUNT, "p-1", "{\"a\":1}");
	storage_close(S);
	S = NULL;
}

TEST(t_terminated_sessions)
{
	truncate_tables();
	static const char app[] = "t-pgsql-term";
	char u[512];
	make_url(u, sizeof(u), app, NULL);
	S = open_url(u);
	CHECK(S != NULL);
	if (!S)
		return;
	CHECK_EQ(do_set(S, NS_TUNNEL, "k", "{\"v\":1}", 1, 0), 0);

	/* killed while idle: the next operation still succeeds */
	terminate(app);
	CHECK_VALUE(S, NS_TUNNEL, "k", "{\"v\":1}");
	terminate(app);
	run_for(200);
	CHECK_EQ(do_set(S, NS_TUNNEL, "k2", "{}", 1, 0), 0);
	CHECK_EQ(do_set(S, NS_TUNNEL, "k2", "{\"v\":2}", 0, 0), 0);
	int ws = -1;
	CHECK_EQ(do_update(S, NS_TUNNEL, "k", "{\"v\":3}", NULL, &ws), 0);
	CHECK_EQ(ws, 0);

	/* killed while holding a row lock: the write fails, nothing is
	 * written, and the key is not left locked */
	struct res r = {0}, w = {0};
	CALL(storage_update_begin(S, NS_TUNNEL, "k", locked_cb, &r));
	CHECK_EQ(finish(&r), 0);
	terminate(app);
	run_for(200);
	if (r.lock) {
		CALL(storage_update_finish(r.lock, "{\"v\":4}", 7, done_cb, &w));
		CHECK_EQ(finish(&w), E_BACKEND);
	}
	res_free(&r);
	res_free(&w);
	CHECK_VALUE(S, NS_TUNNEL, "k", "{\"v\":3}");
	CHECK_EQ(do_update(S, NS_TUNNEL, "k", "{\"v\":5}", NULL, &ws), 0);
	CHECK_EQ(ws, 0);
	CHECK_VALUE(S, NS_TUNNEL, "k", "{\"v\":5}");
	storage_close(S);
	S = NULL;
}

/* Issue a get every 50 ms until one succeeds; returns ms taken or -1. */
static long recovery_ms(uint64_t t0, int limit_ms)
{
	for (;;) {
		struct res r = {0};
		CALL(storage_get(S, NS_TUNNEL, "k", get_cb, &r));
		int rc = finish(&r);
		res_free(&r);
		uint64_t t = now_ms();
		if (rc == 0)
			return (long)(t - t0);
		if (t - t0 > (uint64_t)limit_ms)
			return -1;
		run_for(50);
	}
}

TEST(t_outage)
{
	truncate_tables();
	char u[512];
	proxy_url(u, sizeof(u), "t-pgsql-proxy");
	setenv("EXPOSRD_PGSQL_OP_TIMEOUT_MS", "1000", 1);
	S = open_url(u);
	unsetenv("EXPOSRD_PGSQL_OP_TIMEOUT_MS");
	CHECK(S != NULL);
	if (!S)
		return;
	CHECK_EQ(do_set(S, NS_TUNNEL, "k", "{\"v\":1}", 1, 0), 0);

	/* database gone (connections cut, port refused): every operation
	 * fails, none takes longer than the operation timeout */
	px_send(PX_REFUSE);
	run_for(100);
	uint64_t worst = 0;
	for (int i = 0; i < 10; i++) {
		struct res r = {0};
		uint64_t t = now_ms();
		if (i % 3 == 2)
			CALL(storage_put(S, NS_TUNNEL, "k", "{\"v\":2}", 7, 0, done_cb, &r));
		else if (i % 3 == 1)
			CALL(storage_update_begin(S, NS_TUNNEL, "k", locked_cb, &r));
		else
			CALL(storage_get(S, NS_TUNNEL, "k", get_cb, &r));
		CHECK_EQ(finish_ms(&r, 3000), E_BACKEND);
		if (now_ms() - t > worst)
			worst = now_ms() - t;
		res_free(&r);
		run_for(100);
	}
	printf("#   refused: slowest failure %llu ms\n", (unsigned long long)worst);
	CHECK(worst <= 1300);

	/* back: service resumes by itself within 2 s */
	px_send(PX_UP);
	long rec = recovery_ms(now_ms(), 4000);
	printf("#   refused -> up: first success after %ld ms\n", rec);
	CHECK(rec >= 0 && rec <= 2000);
	CHECK_VALUE(S, NS_TUNNEL, "k", "{\"v\":1}"); /* the failed put was not applied */
	CHECK_EQ(do_set(S, NS_TUNNEL, "k", "{\"v\":3}", 0, 0), 0);

	/* black hole: nothing answers; operations fail at the timeout */
	px_send(PX_HOLE);
	worst = 0;
	uint64_t best = UINT64_MAX;
	for (int i = 0; i < 3; i++) {
		struct res r = {0};
		uint64_t t = now_ms();
		if (i == 1)
			CALL(storage_put(S, NS_TUNNEL, "k", "{\"v\":4}", 7, 0, done_cb, &r));
		else
			CALL(storage_get(S, NS_TUNNEL, "k", get_cb, &r));
		CHECK_EQ(finish_ms(&r, 4000), E_BACKEND);
		uint64_t d = now_ms() - t;
		worst = d > worst ? d : worst;
		best = d < best ? d : best;
		res_free(&r);
	}
	printf("#   black hole: failures after %llu..%llu ms\n", (unsigned long long)best, (unsigned long long)worst);
	CHECK(worst <= 1500);
	px_send(PX_UP);
	rec = recovery_ms(now_ms(), 4000);
	printf("#   black hole -> up: first success after %ld ms\n", rec);
	CHECK(rec >= 0 && rec <= 2000);
	CHECK_VALUE(S, NS_TUNNEL, "k", "{\"v\":3}");
	storage_close(S);
	S = NULL;
}

/* Optional (EXPOSRD_TEST_PG_RESTART=1, needs ci/services.sh's server and
 * its environment): stop the real server with pg_ctl -m immediate, then
 * start it again.  Off by default because the server is shared. */
static int pg_ctl(const char *what)
{
	const char *bin = getenv("EXPOSRD_PG_BIN"), *dir = getenv("EXPOSRD_SERVICES_DIR");
	char cmd[1024];
	if (strcmp(what, "start") == 0)
		snprintf(cmd, sizeof(cmd), "sh ci/services.sh start >/dev/null 2>&1");
	else if (geteuid() == 0)
		snprintf(cmd, sizeof(cmd), "su postgres -s /bin/sh -c '%s/pg_ctl -D %s/pg -m immediate -w stop' "
			 ">/dev/null 2>&1", bin, dir);
	else
		snprintf(cmd, sizeof(cmd), "%s/pg_ctl -D %s/pg -m immediate -w stop >/dev/null 2>&1", bin, dir);
	return system(cmd);
}

TEST(t_server_restart)
{
	if (!getenv("EXPOSRD_PG_BIN") || !getenv("EXPOSRD_SERVICES_DIR")) {
		printf("#   EXPOSRD_PG_BIN / EXPOSRD_SERVICES_DIR not set\n");
		CHECK(0);
		return;
	}
	truncate_tables();
	setenv("EXPOSRD_PGSQL_OP_TIMEOUT_MS", "2000", 1);
	S = open_url(base_url);
	unsetenv("EXPOSRD_PGSQL_OP_TIMEOUT_MS");
	CHECK(S != NULL);
	if (!S)
		return;
	CHECK_EQ(do_set(S, NS_TUNNEL, "k", "{\"v\":1}", 1, 0), 0);
	PQfinish(raw);
	raw = NULL;
	CHECK_EQ(pg_ctl("stop"), 0);
	uint64_t worst = 0;
	for (int i = 0; i < 6; i++) {
		struct res r = {0};
		uint64_t t = now_ms();
		if (i % 2)
			CALL(storage_put(S, NS_TUNNEL, "k", "{\"v\":2}", 7, 0, done_cb, &r));
		else
			CALL(storage_get(S, NS_TUNNEL, "k", get_cb, &r));
		CHECK_EQ(finish_ms(&r, 5000), E_BACKEND);
		worst = now_ms() - t > worst ? now_ms() - t : worst;
		res_free(&r);
		run_for(200);
	}
	printf("#   server stopped: slowest failure %llu ms\n", (unsigned long long)worst);
	CHECK(worst <= 2300);
	CHECK_EQ(pg_ctl("start"), 0); /* returns once the server accepts connections */
	long rec = recovery_ms(now_ms(), 5000);
	printf("#   server restarted: first success after %ld ms\n", rec);
	CHECK(rec >= 0 && rec <= 2000);
	CHECK_VALUE(S, NS_TUNNEL, "k", "{\"v\":1}");
	raw = PQconnectdb(base_url);
	CHECK(PQstatus(raw) == CONNECTION_OK);
	PQsetNoticeProcessor(raw, quiet_notice, NULL);
	storage_close(S);
	S = NULL;
}

TEST(t_startup)
{
	truncate_tables();
	char u[512], err[256];
	setenv("EXPOSRD_PGSQL_STARTUP_TIMEOUT_MS", "1200", 1);
	/* nothing listening: bounded retries, then a clear error */
	uint64_t t0 = now_ms();
	CHECK(storage_open(L, "postgres://postgres@127.0.0.1:1/exposrd_test", err, sizeof(err)) == NULL);
	uint64_t d = now_ms() - t0;
	printf("#   unreachable: gave up after %llu ms: %s\n", (unsigned long long)d, err);
	CHECK(d >= 1100 && d <= 8000);
	CHECK(strstr(err, "postgres") != NULL);

	/* bad URLs fail at once */
	t0 = now_ms();
	make_url(u, sizeof(u), NULL, "no_such_param=1");
	CHECK(storage_open(L, u, err, sizeof(err)) == NULL);
	make_url(u, sizeof(u), NULL, "ssl=maybe");
	CHECK(storage_open(L, u, err, sizeof(err)) == NULL);
	CHECK(now_ms() - t0 < 1000);

	/* ssl=true and sslmode=no-verify mean TLS required: the test server
	 * has none; ssl=false and a plain sslmode pass */
	setenv("EXPOSRD_PGSQL_STARTUP_TIMEOUT_MS", "300", 1);
	make_url(u, sizeof(u), NULL, "ssl=true");
	CHECK(storage_open(L, u, err, sizeof(err)) == NULL);
	make_url(u, sizeof(u), NULL, "sslmode=no-verify");
	CHECK(storage_open(L, u, err, sizeof(err)) == NULL);
	make_url(u, sizeof(u), NULL, "sslmode=no-verify&sslrootcert=/nonexistent/ca.pem");
	CHECK(storage_open(L, u, err, sizeof(err)) == NULL);
	static const char *const good[] = {"ssl=false", "ssl=0&connect_timeout=3", "sslmode=disable",
					   "ssl=1&sslmode=disable", "application_name=t-pgsql-url"};
	for (size_t i = 0; i < sizeof(good) / sizeof(good[0]); i++) {
		make_url(u, sizeof(u), NULL, good[i]);
		struct storage *s = open_url(u);
		CHECK(s != NULL);
		if (s)
			CHECK_EQ(do_set(s, NS_TUNNEL, "url", "{}", 0, 0), 0);
		storage_close(s);
	}
	/* the postgresql:// spelling */
	const char *p = strstr(base_url, "://");
	snprintf(u, sizeof(u), "postgresql%s", p ? p : "://");
	struct storage *s = open_url(u);
	CHECK(s != NULL);
	storage_close(s);

	/* a database that comes up during the startup window is waited for */
	setenv("EXPOSRD_PGSQL_STARTUP_TIMEOUT_MS", "5000", 1);
	px_send(PX_LATE); /* refuses now, accepts again after 700 ms */
	proxy_url(u, sizeof(u), "t-pgsql-late");
	t0 = now_ms();
	s = open_url(u);
	d = now_ms() - t0;
	printf("#   database up 700 ms after start: open took %llu ms\n", (unsigned long long)d);
	CHECK(s != NULL);
	CHECK(d >= 600 && d <= 4000);
	if (s)
		CHECK_EQ(do_set(s, NS_TUNNEL, "late", "{}", 1, 0), 0);
	storage_close(s);
	px_send(PX_UP);
	unsetenv("EXPOSRD_PGSQL_STARTUP_TIMEOUT_MS");
}

/* Everything pending at close gets exactly one E_BACKEND callback. */
TEST(t_close_pending)
{
	truncate_tables();
	S = open_url(base_url);
	CHECK(S != NULL);
	if (!S)
		return;
	CHECK_EQ(do_set(S, NS_TUNNEL, "k", "{}", 1, 0), 0);
	enum { N = 12 };
	struct res r[N];
	memset(r, 0, sizeof(r));
	for (int i = 0; i < 8; i++)
		storage_get(S, NS_TUNNEL, "k", get_cb, &r[i]);
	storage_put(S, NS_TUNNEL, "k", "{\"v\":1}", 7, 0, done_cb, &r[8]);
	storage_update_begin(S, NS_TUNNEL, "k", locked_cb, &r[9]);
	storage_update_begin(S, NS_TUNNEL, "k", locked_cb, &r[10]); /* parked behind r[9] */
	const char *keys[] = {"k"};
	storage_get_multi(S, NS_TUNNEL, keys, 1, multi_cb, &r[11]);
	storage_close(S);
	S = NULL;
	loop_run_deferred(L);
	for (int i = 0; i < N; i++) {
		CHECK_EQ(r[i].called, 1);
		CHECK_EQ(r[i].status, E_BACKEND);
		res_free(&r[i]);
	}
}

/* Short bounded load: 1, 10 and 50 operations in flight. */
struct bench {
	struct many m;
	int started, total, kind;
	struct one *ones;
};

static struct bench *B;

static void bench_next(void);

static void bench_get_cb(void *arg, int status, const char *value, size_t len)
{
	many_get_cb(arg, status, value, len);
	bench_next();
}

static void bench_done_cb(void *arg, int status)
{
	many_done_cb(arg, status);
	bench_next();
}

static void bench_next(void)
{
	if (B->started >= B->total)
		return;
	int i = B->started++;
	struct one *o = &B->ones[i];
	o->m = &B->m;
	o->t0 = loop_mono_us();
	char key[32];
	if (B->kind == 0) {
		snprintf(key, sizeof(key), "b-%d", i % 100);
		storage_get(S, NS_TUNNEL, key, bench_get_cb, o);
	} else {
		snprintf(key, sizeof(key), "c-%p-%d", (void *)B, i);
		storage_create(S, NS_TUNNEL, key, "{\"id\":\"x\",\"n\":1}", 16, 0, bench_done_cb, o);
	}
}

static int cmp_u64(const void *a, const void *b)
{
	uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;
	return x < y ? -1 : x > y;
}

TEST(t_latency)
{
	truncate_tables();
	S = open_url(base_url);
	CHECK(S != NULL);
	if (!S)
		return;
	char key[32];
	for (int i = 0; i < 100; i++) {
		snprintf(key, sizeof(key), "b-%d", i);
		CHECK_EQ(do_set(S, NS_TUNNEL, key, "{\"id\":\"x\",\"n\":1}", 1, 0), 0);
	}
	static const char *const names[] = {"get", "create"};
	static const int totals[] = {3000, 1500};
	static const int inflight[] = {1, 10, 50};
	for (int run = 0; run < 6; run++) {
		int kind = run / 3, conc = inflight[run % 3];
		struct bench b = {0};
		b.total = totals[kind];
		b.kind = kind;
		b.ones = calloc((size_t)b.total, sizeof(*b.ones));
		b.m.lat = calloc((size_t)b.total, sizeof(uint64_t));
		B = &b;
		uint64_t t0 = loop_mono_us();
		for (int i = 0; i < conc; i++)
			bench_next();
		CHECK_EQ(wait_until_ms(&b.m.called, b.total, 60000), 0);
		uint64_t el = loop_mono_us() - t0;
		CHECK_EQ(b.m.ok, b.total);
		qsort(b.m.lat, b.m.nlat, sizeof(uint64_t), cmp_u64);
		if (b.m.nlat > 0)
			printf("#   %s, %d in flight, %d ops: median %.2f ms, p99 %.2f ms, %.0f ops/s\n", names[kind],
			       conc, b.total, (double)b.m.lat[b.m.nlat / 2] / 1000.0,
			       (double)b.m.lat[b.m.nlat * 99 / 100] / 1000.0, (double)b.total * 1e6 / (double)el);
		free(b.ones);
		free(b.m.lat);
		B = NULL;
	}
	storage_close(S);
	S = NULL;
}

static void quiet_notice(void *arg, const char *msg)
{
	(void)arg;
	(void)msg;
}

#define RUN_L(fn) do { L = loop_new(); if (!L) exit(2); RUN(fn); storage_close(S); S = NULL; \
	loop_run_deferred(L); loop_free(L); L = NULL; } while (0)

int main(void)
{
	log_setup(getenv("T_STORAGE_VERBOSE") ? LOG_DEBUG : LOG_FATAL, 0, stderr);
	base_url = getenv("EXPOSRD_TEST_PGSQL_URL");
	if (!base_url || !*base_url) {
		printf("not ok - set EXPOSRD_TEST_PGSQL_URL to a test server URL (ci/services.sh start)\n");
		return 1;
	}
	parse_pg_addr();
	if (px_start() != 0) { /* before any connection, so the child holds none */
		printf("not ok - cannot start the test proxy\n");
		return 1;
	}
	raw = PQconnectdb(base_url);
	if (PQstatus(raw) != CONNECTION_OK) {
		printf("not ok - cannot connect to %s: %s", base_url, PQerrorMessage(raw));
		px_stop();
		return 1;
	}
	PQsetNoticeProcessor(raw, quiet_notice, NULL);
	RUN_L(t_layout);
	RUN_L(t_reference_rows);
	RUN_L(t_create_race);
	RUN_L(t_rmw_two_nodes);
	RUN_L(t_rmw_errors_release);
	RUN_L(t_pool_queue);
	RUN_L(t_terminated_sessions);
	RUN_L(t_outage);
	if (getenv("EXPOSRD_TEST_PG_RESTART") && strcmp(getenv("EXPOSRD_TEST_PG_RESTART"), "1") == 0)
		RUN_L(t_server_restart);
	RUN_L(t_startup);
	RUN_L(t_close_pending);
	RUN_L(t_latency);
	truncate_tables();
	PQfinish(raw);
	px_stop();
	printf("# %d passed, %d failed\n", test_total_passed, test_total_failed);
	return test_done();
}

#else /* !WITH_PGSQL */

int main(void)
{
	test_failures_in_case = 0;
	test_total_passed++;
	printf("ok - skipped: built without WITH_PGSQL\n");
	return test_done();
}

#endif
