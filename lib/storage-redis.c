/* storage-redis.c - Redis storage (redis://...), spec/storage.md §7.3, §8.2.
 *
 * Key layout, exactly as the reference (so C and reference nodes share one
 * Redis):
 *
 *   <ns>:<key>    STRING, the JSON text; EX <ttl> when a TTL is given
 *   lock:<key>    STRING, random 32-hex owner token, PX 1000 (no namespace)
 *
 *   get          GET                 nil => E_NOTFOUND
 *   get_multi    MGET (none for an empty list)
 *   create       SET k v NX [EX ttl] nil => E_EXISTS
 *   put          SET k v [EX ttl]    (a plain SET clears an old TTL)
 *   delete       DEL                 0 => E_NOTFOUND
 *   list         SCAN <cursor> MATCH <ns>:* COUNT <count>; the prefix is
 *                stripped; next cursor = SCAN's cursor, NULL when 0.  Extra
 *                keys and duplicates are passed through (§4.4).  A round
 *                that matched nothing is continued at once (bounded), so
 *                an empty page with a cursor is rare.
 *
 * Locked read-modify-write is the reference's redlock lease (§8.2):
 * SET lock:<key> <token> NX PX 1000, up to 25 retries 200 ms +-100 ms
 * apart on loop timers, extended every 500 ms by a compare-and-extend
 * script while held (stopping after the first failure), then GET of the
 * record (nil: unlock, E_NOTFOUND).  BETTER, still compatible: the new
 * value is written by one script that checks the token, writes and
 * unlocks atomically, so a lapsed lease never lets a stale write through
 * (E_BUSY, nothing written); release without a value is compare-and-delete.
 * Updates of one key from this node wait in a local FIFO line (at most as
 * long as polling would take) and take over as soon as the previous one
 * releases, so only one of them polls Redis; the wire protocol is the
 * same, and other nodes are still excluded by the lease.
 *
 * One connection carries data and lock commands (Redis answers in order,
 * so the in-flight list is oldest first).  It is driven by hiredis's
 * asynchronous API on our loop (redis-loop.h).
 *
 * Outages (§9): while the connection is down or its handshake (AUTH,
 * SELECT, PING) is not done, every operation fails at once with E_BACKEND
 * ("redis client not connected").  A lost connection is re-established in
 * the background, 50 ms x attempt apart (at most 500 ms), like node-redis.
 * Commands in flight on a connection that dies complete with E_BACKEND,
 * and a command without a reply for REDIS_OP_TIMEOUT_MS drops the
 * connection (hiredis 0.14 has no timer hook, so a watchdog timer does
 * this).  Success is reported only on the server's reply.
 *
 * Startup: open() resolves the host, connects and runs the handshake,
 * blocking (the loop does not run yet), retrying with backoff for up to
 * REDIS_STARTUP_TIMEOUT_MS (EXPOSRD_REDIS_STARTUP_TIMEOUT_MS overrides it,
 * for tests).  A refused AUTH or SELECT is a configuration error and is
 * not retried.  The resolved address is kept for reconnects (hiredis
 * resolves with blocking getaddrinfo; a numeric address never blocks).
 *
 * Callers: writes to a closed peer need SIGPIPE ignored (exposrd does).
 * Locked/released callbacks run from hiredis reply callbacks; do not call
 * storage_close from inside one.
 */
#include "storage.h"
#include "compat.h"
#include "err.h"
#include "ids.h"
#include "log.h"
#include "loop.h"
#include "redis-loop.h"
#include "url.h"

#include <arpa/inet.h>
#include <errno.h>
#include <limits.h>
#include <netdb.h>
#include <netinet/in.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>

#include <hiredis/async.h>
#include <hiredis/hiredis.h>

#define REDIS_DEFAULT_PORT 6379
#define REDIS_OP_TIMEOUT_MS 3000         /* no reply this long: drop the connection */
#define REDIS_RECONNECT_STEP_MS 50       /* backoff = step x attempt ... */
#define REDIS_RECONNECT_MAX_MS 500       /* ... capped (node-redis default) */
#define REDIS_STARTUP_TIMEOUT_MS 30000   /* total startup wait */
#define REDIS_STARTUP_ATTEMPT_MS 5000    /* one startup connect + handshake */
#define REDIS_STARTUP_MIN_ATTEMPT_MS 200 /* ... at least, even past the deadline */
#define REDIS_STARTUP_BACKOFF_STEP_MS 250
#define REDIS_STARTUP_BACKOFF_MAX_MS 2000
#define REDIS_MAX_INFLIGHT 10000         /* commands awaiting a reply */
#define REDIS_SCAN_MAX_ROUNDS 16         /* SCAN rounds per list call */
#define REDIS_MAX_SECRET 256             /* user name / password */
#define REDIS_MAX_KEY (STORAGE_MAX_KEY + 32) /* "<ns>:<key>", "lock:<key>" */
#define REDIS_MAX_ERR 256

#define LOCK_LEASE_MS 1000
#define LOCK_EXTEND_MS 500
#define LOCK_RETRIES 25                  /* after the first attempt */
#define LOCK_RETRY_MS 200
#define LOCK_JITTER_MS 100               /* +- */
#define LOCK_DRIFT_MS 12                 /* round(0.01 x lease) + 2, as redlock */
#define LOCK_TOKEN_BYTES 16              /* 32 hex chars */
#define LOCK_QUEUE_MAX_MS (LOCK_RETRIES * LOCK_RETRY_MS) /* local line: as long as polling */

static const char log_name[] = "redis-storage";

/* KEYS[1] lock key, ARGV[1] token, ARGV[2] lease ms. */
static const char lua_extend[] =
	"if redis.call('get', KEYS[1]) == ARGV[1] then "
	"return redis.call('pexpire', KEYS[1], ARGV[2]) end return 0";
/* KEYS[1] lock key, ARGV[1] token. */
static const char lua_unlock[] =
	"if redis.call('get', KEYS[1]) == ARGV[1] then "
	"return redis.call('del', KEYS[1]) end return 0";
/* KEYS[1] lock key, KEYS[2] record key, ARGV[1] token, ARGV[2] value. */
static const char lua_write_unlock[] =
	"if redis.call('get', KEYS[1]) == ARGV[1] then "
	"redis.call('set', KEYS[2], ARGV[2]) redis.call('del', KEYS[1]) return 1 end return 0";

enum req_kind {
	RQ_AUTH,
	RQ_SELECT,
	RQ_PING,
	RQ_GET,
	RQ_MULTI,
	RQ_SET,
	RQ_DEL,
	RQ_SCAN,
	RQ_LOCK_SET,    /* SET lock:<key> NX PX */
	RQ_LOCK_GET,    /* GET the record under the lock */
	RQ_LOCK_EXTEND,
	RQ_LOCK_WRITE,  /* write + unlock script */
	RQ_LOCK_UNLOCK, /* compare-and-delete on release */
	RQ_FORGET,      /* compare-and-delete nobody waits for */
};

enum lock_state {
	LK_ACQUIRE, /* SET NX in flight */
	LK_WAIT,    /* retry timer armed */
	LK_READ,    /* locked, GET in flight */
	LK_HELD,    /* caller holds it */
	LK_RELEASE, /* write/unlock in flight */
	LK_DONE,    /* caller's callbacks are over; freed with no refs */
	LK_QUEUED,  /* behind a local update of the same key */
};

struct redis_store;

struct rlock {
	struct redis_store *r;
	struct rlock *prev, *next;
	struct rlock *queued;   /* next local update of the same key, FIFO */
	struct storage_lock *l; /* storage.c's handle; NULL once completed */
	enum lock_state state;
	int tries;              /* SET NX attempts so far */
	int lost;               /* an extension failed: stop extending */
	int extending;          /* an extension is in flight */
	int refs;               /* requests in flight naming this lock */
	uint64_t attempt_ms;    /* when the current SET NX was sent */
	struct loop_timer *retry, *extend;
	struct loop_timer *queue_timer; /* bounds the wait in the local line */
	size_t lock_len, rec_len;
	char token[2 * LOCK_TOKEN_BYTES + 1];
	char lock_key[REDIS_MAX_KEY]; /* lock:<key> */
	char rec_key[REDIS_MAX_KEY];  /* <ns>:<key> */
};

struct req {
	struct redis_store *r;
	struct req *prev, *next; /* in flight, oldest first */
	uint64_t sent_ms;
	enum req_kind kind;
	unsigned gen;            /* connection generation (handshake replies) */
	union {
		storage_get_cb get;
		storage_done_cb done;
		storage_multi_cb multi;
		storage_list_cb list;
	} cb;
	void *arg;
	struct rlock *lk;
	enum storage_ns ns;
	size_t n;                /* MGET keys; SCAN count */
	int exclusive;
	int rounds;              /* SCAN rounds so far */
};

struct redis_store {
	struct storage *s;
	struct loop *loop;

	/* from the URL */
	char host[URL_HOST_MAX];
	int port;
	int db;
	char user[REDIS_MAX_SECRET];
	char pass[REDIS_MAX_SECRET];
	int has_pass;
	char addr[INET6_ADDRSTRLEN]; /* resolved host, numeric */

	redisAsyncContext *ac;   /* NULL while disconnected */
	unsigned gen;            /* bumped on every connect and drop */
	int ready;               /* handshake done: operations go out */
	int was_ready;           /* the connection being set up replaces a working one */
	int starting;            /* inside open(): no background reconnects */
	int closing;
	int setup_refused;       /* AUTH/SELECT/PING answered with an error */
	unsigned attempt;        /* reconnect attempts since the last success */
	uint64_t down_since_ms;
	unsigned long failed_while_down;
	struct loop_timer *reconnect_timer;
	struct loop_timer *watchdog;
	struct req *head, *tail; /* in flight */
	size_t inflight;
	struct rlock *locks;
	char last_err[REDIS_MAX_ERR];
	char logged_err[REDIS_MAX_ERR]; /* last refusal logged at warn level */
};

static uint64_t mono_ms(void)
{
	return loop_mono_us() / 1000u;
}

static struct redis_store *store_of(struct storage *s)
{
	return storage_backend(s);
}

static void set_err(struct redis_store *r, const char *fmt, const char *detail)
{
	snprintf(r->last_err, sizeof(r->last_err), fmt, detail ? detail : "unknown error");
}

/* "<prefix><key>" into out; length or 0 when it does not fit. */
static size_t make_key(char *out, size_t cap, const char *prefix, const char *key)
{
	int n = snprintf(out, cap, "%s%s", prefix, key);
	return n < 0 || (size_t)n >= cap ? 0 : (size_t)n;
}

static size_t record_key(char *out, size_t cap, enum storage_ns ns, const char *key)
{
	int n = snprintf(out, cap, "%s:%s", storage_ns_name(ns), key);
	return n < 0 || (size_t)n >= cap ? 0 : (size_t)n;
}

/* ---- connection ---- */

static void conn_lost(struct redis_store *r);
static void on_reply(redisAsyncContext *ac, void *reply, void *priv);

static int usable(const struct redis_store *r)
{
	return r->ac && r->ready && !r->closing;
}

static void watchdog_cb(struct loop *loop, void *arg);

static void arm_watchdog(struct redis_store *r, uint64_t ms)
{
	if (r->watchdog || r->closing)
		return;
	r->watchdog = loop_timer_add(r->loop, ms, watchdog_cb, r);
	/* Without memory for the timer a stuck command is still caught by the
	 * next command's send (which arms it again). */
}

static void req_unlink(struct redis_store *r, struct req *q)
{
	if (q->prev)
		q->prev->next = q->next;
	else
		r->head = q->next;
	if (q->next)
		q->next->prev = q->prev;
	else
		r->tail = q->prev;
	q->prev = q->next = NULL;
	r->inflight--;
}

/* Send argv with q as the reply's context.  0, or E_BACKEND (q untouched,
 * not linked: the caller completes it). */
static int send_argv(struct redis_store *r, struct req *q, int argc, const char **argv, const size_t *lens)
{
	if (!r->ac || r->closing)
		return E_BACKEND;
	if (r->inflight >= REDIS_MAX_INFLIGHT) {
		log_warn(log_name, "%zu redis commands in flight: refusing more", r->inflight);
		return E_BACKEND;
	}
	q->r = r;
	if (redisAsyncCommandArgv(r->ac, on_reply, q, argc, argv, lens) != REDIS_OK)
		return E_BACKEND;
	q->sent_ms = mono_ms();
	q->prev = r->tail;
	q->next = NULL;
	if (r->tail)
		r->tail->next = q;
	else
		r->head = q;
	r->tail = q;
	r->inflight++;
	arm_watchdog(r, REDIS_OP_TIMEOUT_MS);
	return 0;
}

static struct req *req_new(enum req_kind kind)
{
	struct req *q = calloc(1, sizeof(*q));
	if (q)
		q->kind = kind;
	return q;
}

/* Forget the current connection: pending callbacks complete with NULL
 * replies (now, or when hiredis returns from the callback we are in). */
static void conn_drop(struct redis_store *r)
{
	redisAsyncContext *ac = r->ac;
	if (!ac)
		return;
	r->ac = NULL;
	r->ready = 0;
	r->gen++;
	ac->data = NULL; /* its connect/disconnect callbacks now ignore it */
	redisAsyncFree(ac);
	conn_lost(r);
}

static void watchdog_cb(struct loop *loop, void *arg)
{
	struct redis_store *r = arg;
	r->watchdog = NULL;
	if (!r->head)
		return;
	uint64_t now = mono_ms(), age = now - r->head->sent_ms;
	if (age >= REDIS_OP_TIMEOUT_MS) {
		if (r->ac) {
			char detail[64];
			snprintf(detail, sizeof(detail), "%d", REDIS_OP_TIMEOUT_MS);
			set_err(r, "no reply within %s ms", detail);
			log_warn(log_name, "redis at %s:%d sent no reply for %llu ms: dropping the connection",
				 r->host, r->port, (unsigned long long)age);
			conn_drop(r);
		}
		if (r->head) /* freeing is pending inside a callback: look again soon */
			arm_watchdog(r, 100);
		return;
	}
	arm_watchdog(r, REDIS_OP_TIMEOUT_MS - age);
	(void)loop;
}

static void reconnect_cb(struct loop *loop, void *arg);

static void schedule_reconnect(struct redis_store *r)
{
	if (r->closing || r->starting || r->reconnect_timer || r->ac)
		return;
	r->attempt++;
	uint64_t delay = (uint64_t)REDIS_RECONNECT_STEP_MS * r->attempt;
	if (delay > REDIS_RECONNECT_MAX_MS)
		delay = REDIS_RECONNECT_MAX_MS;
	r->reconnect_timer = loop_timer_add(r->loop, delay, reconnect_cb, r);
	if (!r->reconnect_timer)
		log_error(log_name, "cannot schedule a reconnect: out of memory (retried on the next operation)");
}

/* The connection is gone (ac already freed or being freed). */
static void conn_lost(struct redis_store *r)
{
	if (r->closing)
		return;
	if (r->was_ready) {
		r->was_ready = 0;
		r->down_since_ms = mono_ms();
		r->failed_while_down = 0;
		log_warn(log_name, "connection to redis at %s:%d lost (%s); operations fail until it is back",
			 r->host, r->port, r->last_err[0] ? r->last_err : "disconnected");
	} else if (!r->starting && r->setup_refused && strcmp(r->logged_err, r->last_err) != 0) {
		/* e.g. a password changed on the server: say so once */
		log_warn(log_name, "redis at %s:%d refused the connection setup: %s; retrying", r->host, r->port,
			 r->last_err);
		snprintf(r->logged_err, sizeof(r->logged_err), "%s", r->last_err);
	} else if (!r->starting) {
		log_debug(log_name, "reconnect %u to redis at %s:%d failed: %s", r->attempt, r->host, r->port,
			  r->last_err);
	}
	schedule_reconnect(r);
}

static void on_connect(const redisAsyncContext *ac, int status)
{
	struct redis_store *r = ac->data;
	if (!r || r->ac != ac || status == REDIS_OK)
		return;
	/* hiredis frees ac right after this callback. */
	set_err(r, "connect: %s", ac->errstr);
	r->ac = NULL;
	r->ready = 0;
	r->gen++;
	conn_lost(r);
}

static void on_disconnect(const redisAsyncContext *ac, int status)
{
	struct redis_store *r = ac->data;
	if (!r || r->ac != ac)
		return;
	set_err(r, "%s", status == REDIS_OK ? "closed" : ac->errstr);
	r->ac = NULL;
	r->ready = 0;
	r->gen++;
	conn_lost(r);
}

/* Send the handshake on a fresh connection; the PING reply makes it ready. */
static int send_handshake(struct redis_store *r)
{
	char dbtext[16];
	const char *argv[3];
	size_t lens[3];
	struct req *q;

	if (r->has_pass) {
		int argc = 0;
		argv[argc++] = "AUTH";
		if (r->user[0])
			argv[argc++] = r->user;
		argv[argc++] = r->pass;
		for (int i = 0; i < argc; i++)
			lens[i] = strlen(argv[i]);
		if (!(q = req_new(RQ_AUTH)))
			return E_NOMEM;
		q->gen = r->gen;
		if (send_argv(r, q, argc, argv, lens) != 0) {
			free(q);
			return E_BACKEND;
		}
	}
	if (r->db != 0) {
		snprintf(dbtext, sizeof(dbtext), "%d", r->db);
		argv[0] = "SELECT";
		argv[1] = dbtext;
		lens[0] = 6;
		lens[1] = strlen(dbtext);
		if (!(q = req_new(RQ_SELECT)))
			return E_NOMEM;
		q->gen = r->gen;
		if (send_argv(r, q, 2, argv, lens) != 0) {
			free(q);
			return E_BACKEND;
		}
	}
	argv[0] = "PING";
	lens[0] = 4;
	if (!(q = req_new(RQ_PING)))
		return E_NOMEM;
	q->gen = r->gen;
	if (send_argv(r, q, 1, argv, lens) != 0) {
		free(q);
		return E_BACKEND;
	}
	return 0;
}

/* Start a connection to r->addr.  0: connecting (the outcome arrives
 * through the callbacks); <0: failed at once (nothing to clean up). */
static int start_connect(struct redis_store *r)
{
	redisAsyncContext *ac = redisAsyncConnect(r->addr, r->port);
	if (!ac) {
		set_err(r, "connect: %s", "out of memory");
		return E_NOMEM;
	}
	if (ac->err) {
		set_err(r, "connect: %s", ac->errstr);
		redisAsyncFree(ac);
		return E_BACKEND;
	}
	(void)redisEnableKeepAlive(&ac->c);
	if (redis_loop_attach(ac, r->loop) != 0) {
		set_err(r, "connect: %s", "out of memory");
		redisAsyncFree(ac);
		return E_NOMEM;
	}
	ac->data = r;
	(void)redisAsyncSetDisconnectCallback(ac, on_disconnect);
	(void)redisAsyncSetConnectCallback(ac, on_connect); /* asks for the first write event */
	r->ac = ac;
	r->ready = 0;
	r->setup_refused = 0;
	r->gen++;
	int rc = send_handshake(r);
	if (rc != 0) {
		set_err(r, "connect: %s", "cannot queue the handshake");
		int starting = r->starting;
		r->starting = 1; /* the caller retries; no background reconnect */
		conn_drop(r);
		r->starting = starting;
		return rc;
	}
	return 0;
}

static void reconnect_cb(struct loop *loop, void *arg)
{
	struct redis_store *r = arg;
	(void)loop;
	r->reconnect_timer = NULL;
	if (r->ac || r->closing)
		return;
	if (start_connect(r) != 0) {
		log_debug(log_name, "reconnect %u to redis at %s:%d failed: %s", r->attempt, r->host, r->port,
			  r->last_err);
		schedule_reconnect(r);
	}
}

static void handshake_reply(struct redis_store *r, struct req *q, redisReply *rep)
{
	if (q->gen != r->gen || !r->ac)
		return; /* an old connection's reply */
	if (!rep)
		return; /* the connection is going away: its callbacks report that */
	static const char *const names[] = {[RQ_AUTH] = "AUTH", [RQ_SELECT] = "SELECT", [RQ_PING] = "PING"};
	if (rep->type == REDIS_REPLY_ERROR) {
		char what[REDIS_MAX_ERR];
		snprintf(what, sizeof(what), "%s refused: %%s", names[q->kind]);
		set_err(r, what, rep->str);
		r->setup_refused = 1;
		conn_drop(r);
		return;
	}
	if (q->kind != RQ_PING)
		return;
	r->ready = 1;
	r->was_ready = 1;
	if (r->down_since_ms && !r->starting) {
		log_info(log_name,
			 "connection to redis at %s:%d restored after %llu ms (%u attempts, %lu operations failed meanwhile)",
			 r->host, r->port, (unsigned long long)(mono_ms() - r->down_since_ms), r->attempt,
			 r->failed_while_down);
	}
	r->down_since_ms = 0;
	r->attempt = 0;
	r->last_err[0] = '\0';
	r->logged_err[0] = '\0';
}

/* An operation found no usable connection. */
static void not_connected(struct redis_store *r, const char *op)
{
	r->failed_while_down++;
	log_debug(log_name, "%s: redis client not connected", op);
	if (!r->ac)
		schedule_reconnect(r); /* in case a timer could not be armed */
}

/* Turn a reply into a status; logs errors.  what names the operation. */
static int reply_status(struct redis_store *r, const redisReply *rep, const char *what, const char *key)
{
	if (!rep) {
		log_debug(log_name, "%s %s: connection lost before the reply", what, key ? key : "");
		return E_BACKEND;
	}
	if (rep->type == REDIS_REPLY_ERROR) {
		log_warn(log_name, "%s %s: %s", what, key ? key : "", rep->str);
		return E_BACKEND;
	}
	(void)r;
	return 0;
}

/* ---- plain operations ---- */

static void redis_get(struct storage *s, enum storage_ns ns, const char *key, storage_get_cb cb, void *arg)
{
	struct redis_store *r = store_of(s);
	char k[REDIS_MAX_KEY];
	size_t kl = record_key(k, sizeof(k), ns, key);
	if (!kl) {
		storage_complete_get(s, cb, arg, E_NOTFOUND, NULL, 0);
		return;
	}
	if (!usable(r)) {
		not_connected(r, "get");
		storage_complete_get(s, cb, arg, E_BACKEND, NULL, 0);
		return;
	}
	struct req *q = req_new(RQ_GET);
	const char *argv[] = {"GET", k};
	size_t lens[] = {3, kl};
	if (!q || send_argv(r, q, 2, argv, lens) != 0) {
		free(q);
		storage_complete_get(s, cb, arg, E_BACKEND, NULL, 0);
		return;
	}
	q->cb.get = cb;
	q->arg = arg;
	q->ns = ns;
}

static void get_reply(struct redis_store *r, struct req *q, redisReply *rep)
{
	int st = reply_status(r, rep, "get", storage_ns_name(q->ns));
	if (st == 0) {
		if (rep->type == REDIS_REPLY_STRING) {
			storage_complete_get(r->s, q->cb.get, q->arg, 0, rep->str, rep->len);
			return;
		}
		st = rep->type == REDIS_REPLY_NIL ? E_NOTFOUND : E_BACKEND;
	}
	storage_complete_get(r->s, q->cb.get, q->arg, st, NULL, 0);
}

static void redis_get_multi(struct storage *s, enum storage_ns ns, const char *const *keys, size_t n,
			    storage_multi_cb cb, void *arg)
{
	struct redis_store *r = store_of(s);
	if (n == 0) {
		storage_complete_multi(s, cb, arg, 0, NULL, 0);
		return;
	}
	if (!usable(r)) {
		not_connected(r, "get_multi");
		storage_complete_multi(s, cb, arg, E_BACKEND, NULL, 0);
		return;
	}
	if (n >= INT_MAX / 2) {
		storage_complete_multi(s, cb, arg, E_INVAL, NULL, 0);
		return;
	}
	const char **argv = calloc(n + 1, sizeof(*argv));
	size_t *lens = calloc(n + 1, sizeof(*lens));
	char **owned = calloc(n, sizeof(*owned));
	struct req *q = req_new(RQ_MULTI);
	int rc = argv && lens && owned && q ? 0 : E_NOMEM;
	const char *prefix = storage_ns_name(ns);
	size_t plen = strlen(prefix);
	if (rc == 0) {
		argv[0] = "MGET";
		lens[0] = 4;
	}
	for (size_t i = 0; i < n && rc == 0; i++) {
		size_t klen = strlen(keys[i]);
		if (!(owned[i] = malloc(plen + 1 + klen + 1))) {
			rc = E_NOMEM;
			break;
		}
		memcpy(owned[i], prefix, plen);
		owned[i][plen] = ':';
		memcpy(owned[i] + plen + 1, keys[i], klen + 1);
		argv[i + 1] = owned[i];
		lens[i + 1] = plen + 1 + klen;
	}
	if (rc == 0)
		rc = send_argv(r, q, (int)(n + 1), argv, lens); /* hiredis copies the arguments */
	if (owned)
		for (size_t i = 0; i < n; i++)
			free(owned[i]);
	free(owned);
	free(argv);
	free(lens);
	if (rc != 0) {
		free(q);
		storage_complete_multi(s, cb, arg, E_BACKEND, NULL, 0);
		return;
	}
	q->cb.multi = cb;
	q->arg = arg;
	q->ns = ns;
	q->n = n;
}

static void multi_reply(struct redis_store *r, struct req *q, redisReply *rep)
{
	int st = reply_status(r, rep, "get_multi", storage_ns_name(q->ns));
	if (st == 0 && (rep->type != REDIS_REPLY_ARRAY || rep->elements != q->n)) {
		log_warn(log_name, "get_multi %s: unexpected reply", storage_ns_name(q->ns));
		st = E_BACKEND;
	}
	char **values = NULL;
	if (st == 0 && !(values = calloc(q->n, sizeof(*values))))
		st = E_BACKEND;
	for (size_t i = 0; st == 0 && i < q->n; i++) {
		const redisReply *e = rep->element[i];
		if (e->type == REDIS_REPLY_STRING) {
			if (!(values[i] = malloc(e->len + 1))) {
				st = E_BACKEND;
				break;
			}
			memcpy(values[i], e->str, e->len);
			values[i][e->len] = '\0';
		}
	}
	if (st != 0) {
		if (values)
			for (size_t i = 0; i < q->n; i++)
				free(values[i]);
		free(values);
		storage_complete_multi(r->s, q->cb.multi, q->arg, st, NULL, 0);
		return;
	}
	storage_complete_multi(r->s, q->cb.multi, q->arg, 0, values, q->n);
}

static void redis_set(struct storage *s, enum storage_ns ns, const char *key, const char *value, size_t len,
		      int exclusive, long ttl, storage_done_cb cb, void *arg)
{
	struct redis_store *r = store_of(s);
	char k[REDIS_MAX_KEY], ttltext[24];
	size_t kl = record_key(k, sizeof(k), ns, key);
	if (!kl) {
		storage_complete_done(s, cb, arg, E_INVAL);
		return;
	}
	if (!usable(r)) {
		not_connected(r, exclusive ? "create" : "put");
		storage_complete_done(s, cb, arg, E_BACKEND);
		return;
	}
	const char *argv[6] = {"SET", k, value};
	size_t lens[6] = {3, kl, len};
	int argc = 3;
	if (exclusive) {
		argv[argc] = "NX";
		lens[argc++] = 2;
	}
	if (ttl > 0) {
		snprintf(ttltext, sizeof(ttltext), "%ld", ttl);
		argv[argc] = "EX";
		lens[argc++] = 2;
		argv[argc] = ttltext;
		lens[argc++] = strlen(ttltext);
	}
	struct req *q = req_new(RQ_SET);
	if (!q || send_argv(r, q, argc, argv, lens) != 0) {
		free(q);
		storage_complete_done(s, cb, arg, E_BACKEND);
		return;
	}
	q->cb.done = cb;
	q->arg = arg;
	q->ns = ns;
	q->exclusive = exclusive;
}

static void set_reply(struct redis_store *r, struct req *q, redisReply *rep)
{
	int st = reply_status(r, rep, q->exclusive ? "create" : "put", storage_ns_name(q->ns));
	if (st == 0) {
		if (rep->type == REDIS_REPLY_STATUS && strcmp(rep->str, "OK") == 0)
			st = 0;
		else if (rep->type == REDIS_REPLY_NIL && q->exclusive)
			st = E_EXISTS;
		else
			st = E_BACKEND;
	}
	storage_complete_done(r->s, q->cb.done, q->arg, st);
}

static void redis_del(struct storage *s, enum storage_ns ns, const char *key, storage_done_cb cb, void *arg)
{
	struct redis_store *r = store_of(s);
	char k[REDIS_MAX_KEY];
	size_t kl = record_key(k, sizeof(k), ns, key);
	if (!kl) {
		storage_complete_done(s, cb, arg, E_NOTFOUND);
		return;
	}
	if (!usable(r)) {
		not_connected(r, "delete");
		storage_complete_done(s, cb, arg, E_BACKEND);
		return;
	}
	const char *argv[] = {"DEL", k};
	size_t lens[] = {3, kl};
	struct req *q = req_new(RQ_DEL);
	if (!q || send_argv(r, q, 2, argv, lens) != 0) {
		free(q);
		storage_complete_done(s, cb, arg, E_BACKEND);
		return;
	}
	q->cb.done = cb;
	q->arg = arg;
	q->ns = ns;
}

static void del_reply(struct redis_store *r, struct req *q, redisReply *rep)
{
	int st = reply_status(r, rep, "delete", storage_ns_name(q->ns));
	if (st == 0)
		st = rep->type != REDIS_REPLY_INTEGER ? E_BACKEND : rep->integer > 0 ? 0 : E_NOTFOUND;
	storage_complete_done(r->s, q->cb.done, q->arg, st);
}

/* A SCAN cursor is an unsigned decimal number. */
static int cursor_ok(const char *c)
{
	size_t n = strlen(c);
	return n > 0 && n <= 20 && strspn(c, "0123456789") == n;
}

static int send_scan(struct redis_store *r, struct req *q, const char *cursor)
{
	char match[64], count[24];
	snprintf(match, sizeof(match), "%s:*", storage_ns_name(q->ns));
	snprintf(count, sizeof(count), "%zu", q->n);
	const char *argv[] = {"SCAN", cursor, "MATCH", match, "COUNT", count};
	size_t lens[] = {4, strlen(cursor), 5, strlen(match), 5, strlen(count)};
	q->rounds++;
	return send_argv(r, q, 6, argv, lens);
}

static void redis_list(struct storage *s, enum storage_ns ns, const char *cursor, size_t count,
		       storage_list_cb cb, void *arg)
{
	struct redis_store *r = store_of(s);
	if (cursor && !cursor_ok(cursor)) {
		storage_complete_list(s, cb, arg, E_INVAL, NULL, 0, NULL);
		return;
	}
	if (!usable(r)) {
		not_connected(r, "list");
		storage_complete_list(s, cb, arg, E_BACKEND, NULL, 0, NULL);
		return;
	}
	struct req *q = req_new(RQ_SCAN);
	if (q) {
		q->ns = ns;
		q->n = count ? count : 1;
	}
	if (!q || send_scan(r, q, cursor ? cursor : "0") != 0) {
		free(q);
		storage_complete_list(s, cb, arg, E_BACKEND, NULL, 0, NULL);
		return;
	}
	q->cb.list = cb;
	q->arg = arg;
}

/* Returns 1 when q was sent again (continued), 0 when it is done. */
static int scan_reply(struct redis_store *r, struct req *q, redisReply *rep)
{
	const char *ns = storage_ns_name(q->ns);
	int st = reply_status(r, rep, "list", ns);
	if (st == 0 && (rep->type != REDIS_REPLY_ARRAY || rep->elements != 2 ||
			rep->element[0]->type != REDIS_REPLY_STRING || rep->element[1]->type != REDIS_REPLY_ARRAY ||
			!cursor_ok(rep->element[0]->str))) {
		log_warn(log_name, "list %s: unexpected SCAN reply", ns);
		st = E_BACKEND;
	}
	if (st != 0) {
		storage_complete_list(r->s, q->cb.list, q->arg, st, NULL, 0, NULL);
		return 0;
	}
	const char *next = rep->element[0]->str;
	const redisReply *arr = rep->element[1];
	size_t plen = strlen(ns);
	size_t matched = 0;
	for (size_t i = 0; i < arr->elements; i++) {
		const redisReply *e = arr->element[i];
		if (e->type == REDIS_REPLY_STRING && e->len > plen && memcmp(e->str, ns, plen) == 0 &&
		    e->str[plen] == ':')
			matched++;
	}
	int end = strcmp(next, "0") == 0;
	if (matched == 0 && !end && q->rounds < REDIS_SCAN_MAX_ROUNDS && usable(r)) {
		char cur[24];
		snprintf(cur, sizeof(cur), "%s", next);
		if (send_scan(r, q, cur) == 0)
			return 1;
	}
	char **keys = calloc(matched ? matched : 1, sizeof(*keys));
	char *cursor = end ? NULL : strdup(next);
	size_t n = 0;
	if (!keys || (!end && !cursor))
		st = E_BACKEND;
	for (size_t i = 0; st == 0 && i < arr->elements; i++) {
		const redisReply *e = arr->element[i];
		if (!(e->type == REDIS_REPLY_STRING && e->len > plen && memcmp(e->str, ns, plen) == 0 &&
		      e->str[plen] == ':'))
			continue;
		size_t klen = e->len - plen - 1;
		if (!(keys[n] = malloc(klen + 1))) {
			st = E_BACKEND;
			break;
		}
		memcpy(keys[n], e->str + plen + 1, klen);
		keys[n][klen] = '\0';
		n++;
	}
	if (st != 0) {
		for (size_t i = 0; i < n; i++)
			free(keys[i]);
		free(keys);
		free(cursor);
		storage_complete_list(r->s, q->cb.list, q->arg, st, NULL, 0, NULL);
		return 0;
	}
	storage_complete_list(r->s, q->cb.list, q->arg, 0, keys, n, cursor);
	return 0;
}

/* ---- lease lock (§8.2) ---- */

/* Completion of a lock request outside a reply callback: later, on the
 * loop.  Self-contained (the store may be closed by then). */
struct lock_defer {
	struct storage_lock *l;
	int status;
	int released;
};

static void lock_defer_run(void *p)
{
	struct lock_defer *d = p;
	if (d->released)
		storage_backend_released(d->l, d->status);
	else
		storage_backend_locked(d->l, d->status, NULL, 0, NULL);
	free(d);
}

static void lock_defer(struct redis_store *r, struct storage_lock *l, int status, int released)
{
	struct lock_defer *d = malloc(sizeof(*d));
	if (d) {
		d->l = l;
		d->status = status;
		d->released = released;
		if (loop_defer(r->loop, lock_defer_run, d) == 0)
			return;
		free(d);
	}
	/* Out of memory: complete now rather than never. */
	if (released)
		storage_backend_released(l, status);
	else
		storage_backend_locked(l, status, NULL, 0, NULL);
}

static void lock_cancel_timers(struct rlock *k)
{
	loop_timer_cancel(k->r->loop, k->retry);
	loop_timer_cancel(k->r->loop, k->extend);
	loop_timer_cancel(k->r->loop, k->queue_timer);
	k->retry = k->extend = k->queue_timer = NULL;
}

/* Free k once the caller is done with it and no reply names it. */
static void lock_put(struct rlock *k)
{
	if (k->state != LK_DONE || k->refs > 0)
		return;
	struct redis_store *r = k->r;
	lock_cancel_timers(k);
	if (k->prev)
		k->prev->next = k->next;
	else
		r->locks = k->next;
	if (k->next)
		k->next->prev = k->prev;
	free(k);
}

/* Acquisition failed (the caller has not been told anything yet). */
static void lock_fail_one(struct rlock *k, int status)
{
	struct storage_lock *l = k->l;
	lock_cancel_timers(k);
	k->state = LK_DONE;
	k->l = NULL;
	lock_defer(k->r, l, status, 0);
	lock_put(k);
}

static void lock_try(struct rlock *k);

/* k is done with the key: the next local update in line takes its turn
 * (status 0 or E_NOTFOUND), or the whole line fails the same way (no
 * connection, lock held elsewhere too long). */
static void lock_pass(struct rlock *k, int status)
{
	struct rlock *n = k->queued;
	k->queued = NULL;
	if (!n)
		return;
	if (status == 0 || status == E_NOTFOUND) {
		loop_timer_cancel(n->r->loop, n->queue_timer);
		n->queue_timer = NULL;
		lock_try(n); /* on failure it passes the rest on with that status */
		return;
	}
	while (n) {
		struct rlock *next = n->queued;
		n->queued = NULL;
		lock_fail_one(n, status);
		n = next;
	}
}

static void lock_fail(struct rlock *k, int status)
{
	lock_pass(k, status);
	lock_fail_one(k, status);
}

/* Waited too long in the local line (e.g. the caller updates a key it
 * already holds): leave the line, E_BUSY as if polling had given up. */
static void lock_queue_timeout_cb(struct loop *loop, void *arg)
{
	struct rlock *k = arg;
	(void)loop;
	k->queue_timer = NULL;
	for (struct rlock *h = k->r->locks; h; h = h->next)
		if (h->queued == k) {
			h->queued = k->queued;
			break;
		}
	k->queued = NULL;
	log_info(log_name, "update %s: waited %d ms behind another update of this node", k->rec_key,
		 LOCK_QUEUE_MAX_MS);
	lock_fail_one(k, E_BUSY);
}

static int lock_send(struct rlock *k, enum req_kind kind, int argc, const char **argv, const size_t *lens)
{
	struct req *q = req_new(kind);
	if (!q)
		return E_NOMEM;
	q->lk = kind == RQ_FORGET ? NULL : k;
	if (send_argv(k->r, q, argc, argv, lens) != 0) {
		free(q);
		return E_BACKEND;
	}
	if (q->lk)
		k->refs++;
	return 0;
}

/* Compare-and-delete that nobody waits for (failures: the lease expires). */
static void lock_forget(struct rlock *k)
{
	const char *argv[] = {"EVAL", lua_unlock, "1", k->lock_key, k->token};
	size_t lens[] = {4, sizeof(lua_unlock) - 1, 1, k->lock_len, strlen(k->token)};
	if (usable(k->r))
		(void)lock_send(k, RQ_FORGET, 5, argv, lens);
}

static void lock_try(struct rlock *k)
{
	char lease[16];
	snprintf(lease, sizeof(lease), "%d", LOCK_LEASE_MS);
	const char *argv[] = {"SET", k->lock_key, k->token, "NX", "PX", lease};
	size_t lens[] = {3, k->lock_len, strlen(k->token), 2, 2, strlen(lease)};
	if (!usable(k->r)) {
		not_connected(k->r, "update");
		lock_fail(k, E_BACKEND);
		return;
	}
	k->state = LK_ACQUIRE;
	k->tries++;
	k->attempt_ms = mono_ms();
	if (lock_send(k, RQ_LOCK_SET, 6, argv, lens) != 0)
		lock_fail(k, E_BACKEND);
}

static void lock_retry_cb(struct loop *loop, void *arg)
{
	struct rlock *k = arg;
	(void)loop;
	k->retry = NULL;
	lock_try(k);
}

/* Not acquired this time: wait 200 ms +- 100 ms, or give up. */
static void lock_wait(struct rlock *k)
{
	if (k->tries > LOCK_RETRIES) {
		log_info(log_name, "update %s: %s is still locked after %d attempts", k->rec_key, k->lock_key,
			 k->tries);
		lock_fail(k, E_BUSY);
		return;
	}
	uint16_t rnd = 0;
	(void)compat_random(&rnd, sizeof(rnd));
	int delay = LOCK_RETRY_MS - LOCK_JITTER_MS + (int)(rnd % (2 * LOCK_JITTER_MS + 1));
	k->state = LK_WAIT;
	k->retry = loop_timer_add(k->r->loop, (uint64_t)delay, lock_retry_cb, k);
	if (!k->retry)
		lock_fail(k, E_BACKEND);
}

static void lock_extend_cb(struct loop *loop, void *arg);

static void lock_arm_extend(struct rlock *k)
{
	if (k->extend || k->lost || k->r->closing)
		return;
	k->extend = loop_timer_add(k->r->loop, LOCK_EXTEND_MS, lock_extend_cb, k);
	if (!k->extend) {
		log_warn(log_name, "update %s: cannot arm the lease extension: out of memory", k->rec_key);
		k->lost = 1;
	}
}

static void lock_extend_cb(struct loop *loop, void *arg)
{
	struct rlock *k = arg;
	(void)loop;
	k->extend = NULL;
	if ((k->state != LK_READ && k->state != LK_HELD) || k->lost)
		return;
	lock_arm_extend(k); /* every 500 ms from acquisition, whatever the RTT */
	if (k->extending)
		return;
	char lease[16];
	snprintf(lease, sizeof(lease), "%d", LOCK_LEASE_MS);
	const char *argv[] = {"EVAL", lua_extend, "1", k->lock_key, k->token, lease};
	size_t lens[] = {4, sizeof(lua_extend) - 1, 1, k->lock_len, strlen(k->token), strlen(lease)};
	if (!usable(k->r) || lock_send(k, RQ_LOCK_EXTEND, 6, argv, lens) != 0) {
		log_warn(log_name, "update %s: cannot extend the lease on %s: redis client not connected", k->rec_key,
			 k->lock_key);
		k->lost = 1;
		lock_cancel_timers(k);
		return;
	}
	k->extending = 1;
}

static void lock_set_reply(struct rlock *k, redisReply *rep)
{
	if (k->state != LK_ACQUIRE)
		return;
	if (reply_status(k->r, rep, "lock", k->lock_key) != 0) {
		lock_fail(k, E_BACKEND);
		return;
	}
	if (rep->type == REDIS_REPLY_NIL) {
		lock_wait(k);
		return;
	}
	if (rep->type != REDIS_REPLY_STATUS) {
		lock_fail(k, E_BACKEND);
		return;
	}
	if (mono_ms() - k->attempt_ms + LOCK_DRIFT_MS >= LOCK_LEASE_MS) {
		/* Acquired too late to be sure it is still ours (as redlock). */
		lock_forget(k);
		lock_wait(k);
		return;
	}
	const char *argv[] = {"GET", k->rec_key};
	size_t lens[] = {3, k->rec_len};
	k->state = LK_READ;
	lock_arm_extend(k);
	if (lock_send(k, RQ_LOCK_GET, 2, argv, lens) != 0) {
		lock_forget(k);
		lock_fail(k, E_BACKEND);
	}
}

static void lock_get_reply(struct rlock *k, redisReply *rep)
{
	if (k->state != LK_READ)
		return;
	int st = reply_status(k->r, rep, "update", k->rec_key);
	if (st == 0 && rep->type != REDIS_REPLY_STRING)
		st = rep->type == REDIS_REPLY_NIL ? E_NOTFOUND : E_BACKEND;
	if (st != 0) {
		lock_forget(k);
		lock_fail(k, st);
		return;
	}
	k->state = LK_HELD;
	/* The caller may release inside (on_reply's reference keeps k). */
	storage_backend_locked(k->l, 0, rep->str, rep->len, k);
}

static void lock_extend_reply(struct rlock *k, redisReply *rep)
{
	k->extending = 0;
	if (k->state != LK_READ && k->state != LK_HELD)
		return;
	if (reply_status(k->r, rep, "extend", k->lock_key) == 0 && rep->type == REDIS_REPLY_INTEGER &&
	    rep->integer == 1)
		return;
	if (!k->lost)
		log_warn(log_name, "update %s: the lease on %s was lost; the write will be refused", k->rec_key,
			 k->lock_key);
	k->lost = 1;
	lock_cancel_timers(k);
}

/* Release finished: tell the caller (directly from a reply, deferred
 * while closing). */
static void lock_released(struct rlock *k, int status)
{
	struct redis_store *r = k->r;
	struct storage_lock *l = k->l;
	lock_pass(k, 0);
	k->l = NULL;
	k->state = LK_DONE;
	int closing = r->closing;
	lock_put(k);
	if (closing)
		lock_defer(r, l, status, 1);
	else
		storage_backend_released(l, status);
}

static void lock_write_reply(struct rlock *k, redisReply *rep)
{
	if (k->state != LK_RELEASE)
		return;
	int st = reply_status(k->r, rep, "update", k->rec_key);
	if (st == 0 && rep->type != REDIS_REPLY_INTEGER)
		st = E_BACKEND;
	if (st == 0 && rep->integer != 1) {
		log_warn(log_name, "update %s: %s is no longer ours: nothing written", k->rec_key, k->lock_key);
		st = E_BUSY;
	}
	lock_released(k, st);
}

static void lock_unlock_reply(struct rlock *k, redisReply *rep)
{
	if (k->state != LK_RELEASE)
		return;
	if (reply_status(k->r, rep, "unlock", k->lock_key) != 0)
		log_debug(log_name, "unlock %s failed; the lease expires by itself", k->lock_key);
	lock_released(k, 0); /* the lease expires anyway */
}

static void redis_lock_get(struct storage *s, enum storage_ns ns, const char *key, struct storage_lock *l)
{
	struct redis_store *r = store_of(s);
	if (!usable(r)) {
		not_connected(r, "update");
		lock_defer(r, l, E_BACKEND, 0);
		return;
	}
	struct rlock *k = calloc(1, sizeof(*k));
	if (!k) {
		lock_defer(r, l, E_BACKEND, 0);
		return;
	}
	k->r = r;
	k->l = l;
	k->lock_len = make_key(k->lock_key, sizeof(k->lock_key), "lock:", key);
	k->rec_len = record_key(k->rec_key, sizeof(k->rec_key), ns, key);
	if (!k->lock_len || !k->rec_len || random_hex(k->token, LOCK_TOKEN_BYTES) != 0) {
		int st = k->lock_len && k->rec_len ? E_BACKEND : E_NOTFOUND;
		free(k);
		lock_defer(r, l, st, 0);
		return;
	}
	/* Another update of this key from this node: wait in line locally
	 * rather than polling Redis against it (handed over on release). */
	struct rlock *tail = NULL;
	for (struct rlock *h = r->locks; h && !tail; h = h->next)
		if (h->state != LK_DONE && h->state != LK_QUEUED && strcmp(h->lock_key, k->lock_key) == 0)
			tail = h;
	k->next = r->locks;
	if (r->locks)
		r->locks->prev = k;
	r->locks = k;
	if (tail) {
		while (tail->queued)
			tail = tail->queued;
		tail->queued = k;
		k->state = LK_QUEUED;
		k->queue_timer = loop_timer_add(r->loop, LOCK_QUEUE_MAX_MS, lock_queue_timeout_cb, k);
		if (!k->queue_timer)
			lock_queue_timeout_cb(r->loop, k); /* deferred E_BUSY */
		return;
	}
	lock_try(k);
}

static void redis_lock_release(struct storage *s, struct storage_lock *l, void *handle, const char *value,
			       size_t len)
{
	struct redis_store *r = store_of(s);
	struct rlock *k = handle;
	int rc = E_BACKEND;
	lock_cancel_timers(k);
	if (value && len > STORAGE_MAX_VALUE) {
		rc = E_INVAL;
	} else if (usable(r)) {
		k->state = LK_RELEASE;
		if (value) {
			const char *argv[] = {"EVAL", lua_write_unlock, "2", k->lock_key, k->rec_key, k->token, value};
			size_t lens[] = {4, sizeof(lua_write_unlock) - 1, 1, k->lock_len, k->rec_len,
					 strlen(k->token), len};
			rc = lock_send(k, RQ_LOCK_WRITE, 7, argv, lens);
		} else {
			const char *argv[] = {"EVAL", lua_unlock, "1", k->lock_key, k->token};
			size_t lens[] = {4, sizeof(lua_unlock) - 1, 1, k->lock_len, strlen(k->token)};
			rc = lock_send(k, RQ_LOCK_UNLOCK, 5, argv, lens);
		}
		if (rc == 0)
			return;
	} else {
		not_connected(r, "update");
	}
	/* Not sent: a release without a value still succeeds (the lease
	 * expires); a write cannot. */
	lock_forget(k);
	lock_pass(k, usable(r) ? 0 : E_BACKEND);
	k->state = LK_DONE;
	k->l = NULL;
	lock_put(k);
	lock_defer(r, l, value ? rc : 0, 1);
}

/* ---- reply dispatch ---- */

static void on_reply(redisAsyncContext *ac, void *reply, void *priv)
{
	struct req *q = priv;
	struct redis_store *r = q->r;
	redisReply *rep = reply;
	(void)ac;
	req_unlink(r, q);
	/* The request's reference keeps k alive through the handler, even when
	 * the caller releases the lock inside it. */
	struct rlock *k = q->lk;
	switch (q->kind) {
	case RQ_AUTH:
	case RQ_SELECT:
	case RQ_PING:
		handshake_reply(r, q, rep);
		break;
	case RQ_GET: get_reply(r, q, rep); break;
	case RQ_MULTI: multi_reply(r, q, rep); break;
	case RQ_SET: set_reply(r, q, rep); break;
	case RQ_DEL: del_reply(r, q, rep); break;
	case RQ_SCAN:
		if (scan_reply(r, q, rep))
			return; /* q was sent again */
		break;
	case RQ_LOCK_SET: lock_set_reply(k, rep); break;
	case RQ_LOCK_GET: lock_get_reply(k, rep); break;
	case RQ_LOCK_EXTEND: lock_extend_reply(k, rep); break;
	case RQ_LOCK_WRITE: lock_write_reply(k, rep); break;
	case RQ_LOCK_UNLOCK: lock_unlock_reply(k, rep); break;
	case RQ_FORGET:
		if (rep && rep->type == REDIS_REPLY_ERROR)
			log_debug(log_name, "unlock: %s", rep->str);
		break;
	}
	free(q);
	if (k) {
		k->refs--;
		lock_put(k);
	}
}

/* ---- open / close ---- */

static int hexval(int c)
{
	if (c >= '0' && c <= '9')
		return c - '0';
	if (c >= 'a' && c <= 'f')
		return c - 'a' + 10;
	if (c >= 'A' && c <= 'F')
		return c - 'A' + 10;
	return -1;
}

/* Percent-decode src[0..n) into out (cap bytes, NUL-terminated). */
static int pct_decode(const char *src, size_t n, char *out, size_t cap)
{
	size_t o = 0;
	for (size_t i = 0; i < n; i++) {
		int c = (unsigned char)src[i];
		if (c == '%') {
			if (i + 2 >= n)
				return E_INVAL;
			int a = hexval((unsigned char)src[i + 1]), b = hexval((unsigned char)src[i + 2]);
			if (a < 0 || b < 0)
				return E_INVAL;
			c = a * 16 + b;
			i += 2;
		}
		if (c == 0 || o + 1 >= cap)
			return E_INVAL;
		out[o++] = (char)c;
	}
	out[o] = '\0';
	return 0;
}

static int parse_url(struct redis_store *r, const char *url)
{
	static const char usage[] = "expected redis://[[user][:password]@]host[:port][/db-number]";
	if (strncmp(url, "rediss:", 7) == 0) {
		log_error(log_name, "rediss:// (Redis over TLS) is not supported: this build's hiredis (0.14) has no "
				    "TLS; use redis:// (through a TLS tunnel if needed)");
		return E_INVAL;
	}
	struct url u;
	if (url_parse(url, strlen(url), &u) != 0 || strcmp(u.scheme, "redis") != 0 || !u.has_authority) {
		log_error(log_name, "invalid redis url: %s", usage);
		return E_INVAL;
	}
	snprintf(r->host, sizeof(r->host), "%s", u.host[0] ? u.host : "localhost");
	r->port = u.port ? u.port : REDIS_DEFAULT_PORT;
	if (u.userinfo[0]) {
		const char *colon = strchr(u.userinfo, ':');
		size_t ulen = colon ? (size_t)(colon - u.userinfo) : strlen(u.userinfo);
		if (pct_decode(u.userinfo, ulen, r->user, sizeof(r->user)) != 0 ||
		    (colon && pct_decode(colon + 1, strlen(colon + 1), r->pass, sizeof(r->pass)) != 0)) {
			log_error(log_name, "invalid user name or password in the redis url (bad %%-escape or too long)");
			return E_INVAL;
		}
		r->has_pass = colon && r->pass[0];
		if (!r->has_pass && r->user[0])
			log_warn(log_name, "redis url names user %s without a password: not authenticating", r->user);
	}
	const char *p = u.path;
	if (*p == '/')
		p++;
	if (*p) {
		size_t n = strlen(p);
		if (n > 9 || strspn(p, "0123456789") != n) {
			log_error(log_name, "invalid database number \"%s\" in the redis url: %s", p, usage);
			return E_INVAL;
		}
		r->db = atoi(p);
	}
	if (u.query[0])
		log_warn(log_name, "redis url parameters ignored: %s", u.query);
	return 0;
}

/* Resolve r->host into r->addr: IPv4 first, as hiredis itself does. */
static int resolve(struct redis_store *r)
{
	static const int families[] = {AF_INET, AF_INET6};
	int rc = EAI_NONAME;
	for (size_t i = 0; i < 2; i++) {
		struct addrinfo hints, *res = NULL;
		memset(&hints, 0, sizeof(hints));
		hints.ai_family = families[i];
		hints.ai_socktype = SOCK_STREAM;
		rc = getaddrinfo(r->host, NULL, &hints, &res);
		if (rc != 0)
			continue;
		const void *a = res->ai_family == AF_INET ? (const void *)&((struct sockaddr_in *)res->ai_addr)->sin_addr
							  : (const void *)&((struct sockaddr_in6 *)res->ai_addr)->sin6_addr;
		const char *ok = inet_ntop(res->ai_family, a, r->addr, sizeof(r->addr));
		freeaddrinfo(res);
		if (ok)
			return 0;
	}
	set_err(r, "cannot resolve the host: %s", gai_strerror(rc));
	return E_BACKEND;
}

static void sleep_ms(uint64_t ms)
{
	struct timespec ts = {(time_t)(ms / 1000), (long)(ms % 1000) * 1000000L};
	while (nanosleep(&ts, &ts) != 0 && errno == EINTR)
		;
}

/* Drive the connection until its handshake is done, it fails, or deadline. */
static void pump(struct redis_store *r, uint64_t deadline)
{
	while (r->ac && !r->ready) {
		uint64_t now = mono_ms();
		if (now >= deadline) {
			set_err(r, "%s", "timed out connecting");
			conn_drop(r);
			return;
		}
		uint64_t left = deadline - now;
		if (redis_loop_wait(r->ac, left > 100 ? 100 : (int)left) < 0) {
			set_err(r, "%s", "poll failed");
			conn_drop(r);
			return;
		}
	}
}

static void redis_close(void *backend)
{
	struct redis_store *r = backend;
	if (!r)
		return;
	r->closing = 1;
	loop_timer_cancel(r->loop, r->reconnect_timer);
	r->reconnect_timer = NULL;
	loop_timer_cancel(r->loop, r->watchdog);
	r->watchdog = NULL;
	if (r->ac) {
		redisAsyncContext *ac = r->ac;
		r->ac = NULL;
		r->ready = 0;
		ac->data = NULL;
		redisAsyncFree(ac); /* in-flight requests complete with E_BACKEND (deferred) */
	}
	while (r->locks) {
		struct rlock *k = r->locks;
		r->locks = k->next;
		lock_cancel_timers(k);
		/* Acquisitions still waiting fail; a lock the caller holds is
		 * just dropped (its lease expires within a second). */
		if (k->l && k->state != LK_HELD)
			lock_defer(r, k->l, E_BACKEND, 0);
		free(k);
	}
	free(r);
}

static int redis_open(struct storage *s, const char *url, void **backend)
{
	struct redis_store *r = calloc(1, sizeof(*r));
	if (!r)
		return E_NOMEM;
	r->s = s;
	r->loop = storage_loop(s);
	int rc = parse_url(r, url);
	if (rc != 0) {
		free(r);
		return rc;
	}
	if (!r->loop) {
		free(r);
		return E_INVAL;
	}
	uint64_t total = REDIS_STARTUP_TIMEOUT_MS;
	const char *env = getenv("EXPOSRD_REDIS_STARTUP_TIMEOUT_MS");
	if (env && *env) {
		char *end = NULL;
		unsigned long v = strtoul(env, &end, 10);
		if (end && *end == '\0')
			total = v;
	}
	r->starting = 1;
	uint64_t t0 = mono_ms(), deadline = t0 + total;
	for (unsigned attempt = 1;; attempt++) {
		r->last_err[0] = '\0';
		if (resolve(r) == 0 && start_connect(r) == 0) {
			/* Each attempt gets a fair window, even the last one. */
			uint64_t now = mono_ms(), d = now + REDIS_STARTUP_ATTEMPT_MS;
			if (d > deadline)
				d = deadline > now + REDIS_STARTUP_MIN_ATTEMPT_MS ? deadline
										   : now + REDIS_STARTUP_MIN_ATTEMPT_MS;
			pump(r, d);
		}
		if (r->ready)
			break;
		if (r->setup_refused) {
			log_error(log_name, "redis at %s:%d refused the connection setup: %s", r->host, r->port,
				  r->last_err);
			redis_close(r);
			return E_BACKEND;
		}
		uint64_t now = mono_ms();
		if (now >= deadline) {
			log_error(log_name, "redis at %s:%d is not reachable (%u attempts in %.1f s): %s", r->host,
				  r->port, attempt, (double)(now - t0) / 1000.0, r->last_err);
			redis_close(r);
			return E_BACKEND;
		}
		if (attempt == 1)
			log_warn(log_name, "waiting for redis at %s:%d (%s); retrying for up to %.1f s", r->host,
				 r->port, r->last_err, (double)total / 1000.0);
		uint64_t pause = (uint64_t)REDIS_STARTUP_BACKOFF_STEP_MS * attempt;
		if (pause > REDIS_STARTUP_BACKOFF_MAX_MS)
			pause = REDIS_STARTUP_BACKOFF_MAX_MS;
		if (pause > deadline - now)
			pause = deadline - now;
		sleep_ms(pause);
	}
	r->starting = 0;
	r->attempt = 0;
	log_info(log_name, "Redis storage initialized: %s:%d (%s) db %d", r->host, r->port, r->addr, r->db);
	*backend = r;
	return 0;
}

const struct storage_ops storage_redis_ops = {
	.name = "redis",
	.open = redis_open,
	.close = redis_close,
	.get = redis_get,
	.get_multi = redis_get_multi,
	.set = redis_set,
	.del = redis_del,
	.list = redis_list,
	.lock_get = redis_lock_get,
	.lock_release = redis_lock_release,
};
