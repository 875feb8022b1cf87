/* storage.c - backend table, asynchronous completions, in-process locks. */
#include "storage.h"
#include "err.h"
#include "log.h"
#include "loop.h"

#include <stdlib.h>
#include <string.h>
#include <time.h>

extern const struct storage_ops storage_mem_ops;
#if WITH_SQLITE
extern const struct storage_ops storage_sqlite_ops;
#endif
#if WITH_PGSQL
extern const struct storage_ops storage_pgsql_ops;
#endif
#if WITH_REDIS
extern const struct storage_ops storage_redis_ops;
#endif

struct storage_backend_entry {
	const char *scheme; /* with ':' */
	const struct storage_ops *ops;
};

/* Backends compiled in, by URL scheme. */
static const struct storage_backend_entry backend_table[] = {
	{"memory:", &storage_mem_ops},
#if WITH_SQLITE
	{"sqlite:", &storage_sqlite_ops},
#endif
#if WITH_PGSQL
	{"postgres:", &storage_pgsql_ops},
	{"postgresql:", &storage_pgsql_ops},
#endif
#if WITH_REDIS
	{"redis:", &storage_redis_ops},
	{"rediss:", &storage_redis_ops},
#endif
};

struct storage {
	struct loop *loop;
	const struct storage_ops *ops;
	void *backend;
	struct storage_lock *locks; /* in-process locks, when the backend has none */
};

struct lock_waiter {
	struct lock_waiter *next;
	storage_locked_cb cb;
	void *arg;
};

struct storage_lock {
	struct storage *s;
	struct storage_lock *next;
	enum storage_ns ns;
	struct lock_waiter *head, *tail; /* queued lockers, FIFO */
	storage_locked_cb cb;            /* current holder's read callback */
	void *arg;
	storage_done_cb done_cb;         /* current holder's finish callback */
	void *done_arg;
	void *backend_lock;              /* backend-provided lock, if any */
	char key[];
};

const char *storage_ns_name(enum storage_ns ns)
{
	switch (ns) {
	case NS_ACCOUNT: return "account";
	case NS_TUNNEL: return "tunnel";
	case NS_ALTNAME: return "ingress-altnames";
	case NS_COUNT: break;
	}
	return "invalid";
}

const char *storage_backends(void)
{
	return "memory"
#if WITH_SQLITE
	       " sqlite"
#endif
#if WITH_PGSQL
	       " postgres"
#endif
#if WITH_REDIS
	       " redis"
#endif
		;
}

long long storage_now_s(void)
{
	return (long long)time(NULL);
}

struct storage *storage_open(struct loop *loop, const char *url, char *err, size_t errcap)
{
	const struct storage_ops *ops = NULL;
	for (size_t i = 0; i < sizeof(backend_table) / sizeof(backend_table[0]); i++) {
		size_t n = strlen(backend_table[i].scheme);
		if (strncmp(url, backend_table[i].scheme, n) == 0)
			ops = backend_table[i].ops;
	}
	if (!ops) {
		snprintf(err, errcap, "storage backend for %s is not compiled in; available: %s", url,
			 storage_backends());
		return NULL;
	}
	struct storage *s = calloc(1, sizeof(*s));
	if (!s) {
		snprintf(err, errcap, "out of memory");
		return NULL;
	}
	s->loop = loop;
	s->ops = ops;
	int rc = ops->open(s, url, &s->backend);
	if (rc != 0) {
		snprintf(err, errcap, "cannot open %s storage: %s", ops->name, err_str(rc));
		free(s);
		return NULL;
	}
	return s;
}

void storage_close(struct storage *s)
{
	if (!s)
		return;
	s->ops->close(s->backend);
	free(s);
}

struct loop *storage_loop(const struct storage *s) { return s->loop; }
void *storage_backend(const struct storage *s) { return s->backend; }
const char *storage_backend_name(const struct storage *s) { return s->ops->name; }

/* ---- deferred completions ---- */

struct completion {
	int kind;
	int status;
	void *cb;
	void *arg;
	char **items;
	size_t n;
	char *cursor;
	size_t len;
	char value[];
};

enum { C_GET, C_DONE, C_MULTI, C_LIST, C_LOCKED };

static void free_items(char **items, size_t n)
{
	for (size_t i = 0; i < n; i++)
		free(items[i]);
	free(items);
}

static void run_completion(void *p)
{
	struct completion *c = p;
	switch (c->kind) {
	case C_GET:
		((storage_get_cb)c->cb)(c->arg, c->status, c->status == 0 ? c->value : NULL, c->len);
		break;
	case C_DONE:
		((storage_done_cb)c->cb)(c->arg, c->status);
		break;
	case C_MULTI:
		((storage_multi_cb)c->cb)(c->arg, c->status, c->items, c->n);
		free_items(c->items, c->n);
		break;
	case C_LOCKED:
		((storage_locked_cb)c->cb)(c->arg, c->status, NULL, 0, NULL);
		break;
	case C_LIST:
		((storage_list_cb)c->cb)(c->arg, c->status, c->items, c->n, c->cursor);
		free_items(c->items, c->n);
		free(c->cursor);
		break;
	}
	free(c);
}

static void defer_completion(struct storage *s, struct completion *c)
{
	if (loop_defer(s->loop, run_completion, c) != 0) {
		/* Out of memory for the queue: complete now rather than never. */
		run_completion(c);
	}
}

void storage_complete_get(struct storage *s, storage_get_cb cb, void *arg, int status, const char *value, size_t len)
{
	if (status != 0)
		len = 0;
	struct completion *c = malloc(sizeof(*c) + len + 1);
	if (!c) {
		cb(arg, E_BACKEND, NULL, 0);
		return;
	}
	memset(c, 0, sizeof(*c));
	c->kind = C_GET;
	c->status = status;
	c->cb = (void *)cb;
	c->arg = arg;
	c->len = len;
	if (len)
		memcpy(c->value, value, len);
	c->value[len] = '\0';
	defer_completion(s, c);
}

void storage_complete_done(struct storage *s, storage_done_cb cb, void *arg, int status)
{
	struct completion *c = calloc(1, sizeof(*c));
	if (!c) {
		cb(arg, status);
		return;
	}
	c->kind = C_DONE;
	c->status = status;
	c->cb = (void *)cb;
	c->arg = arg;
	defer_completion(s, c);
}

void storage_complete_multi(struct storage *s, storage_multi_cb cb, void *arg, int status, char **values, size_t n)
{
	struct completion *c = calloc(1, sizeof(*c));
	if (!c) {
		free_items(values, n);
		cb(arg, E_BACKEND, NULL, 0);
		return;
	}
	c->kind = C_MULTI;
	c->status = status;
	c->cb = (void *)cb;
	c->arg = arg;
	c->items = values;
	c->n = n;
	defer_completion(s, c);
}

void storage_complete_list(struct storage *s, storage_list_cb cb, void *arg, int status, char **keys, size_t n,
			   char *next_cursor)
{
	struct completion *c = calloc(1, sizeof(*c));
	if (!c) {
		free_items(keys, n);
		free(next_cursor);
		cb(arg, E_BACKEND, NULL, 0, NULL);
		return;
	}
	c->kind = C_LIST;
	c->status = status;
	c->cb = (void *)cb;
	c->arg = arg;
	c->items = keys;
	c->n = n;
	c->cursor = next_cursor;
	defer_completion(s, c);
}

/* A failed lock request still completes later on the loop. */
static void complete_locked_error(struct storage *s, storage_locked_cb cb, void *arg, int status)
{
	struct completion *c = calloc(1, sizeof(*c));
	if (!c) {
		cb(arg, status, NULL, 0, NULL);
		return;
	}
	c->kind = C_LOCKED;
	c->status = status;
	c->cb = (void *)cb;
	c->arg = arg;
	defer_completion(s, c);
}

/* ---- plain operations ---- */

static int key_ok(const char *key)
{
	size_t n = strlen(key);
	return n > 0 && n <= STORAGE_MAX_KEY;
}

void storage_get(struct storage *s, enum storage_ns ns, const char *key, storage_get_cb cb, void *arg)
{
	if (!key_ok(key)) {
		storage_complete_get(s, cb, arg, E_NOTFOUND, NULL, 0);
		return;
	}
	s->ops->get(s, ns, key, cb, arg);
}

void storage_get_multi(struct storage *s, enum storage_ns ns, const char *const *keys, size_t n,
		       storage_multi_cb cb, void *arg)
{
	s->ops->get_multi(s, ns, keys, n, cb, arg);
}

void storage_create(struct storage *s, enum storage_ns ns, const char *key, const char *value, size_t len,
		    long ttl, storage_done_cb cb, void *arg)
{
	if (!key_ok(key) || len > STORAGE_MAX_VALUE) {
		storage_complete_done(s, cb, arg, E_INVAL);
		return;
	}
	s->ops->set(s, ns, key, value, len, 1, ttl, cb, arg);
}

void storage_put(struct storage *s, enum storage_ns ns, const char *key, const char *value, size_t len,
		 long ttl, storage_done_cb cb, void *arg)
{
	if (!key_ok(key) || len > STORAGE_MAX_VALUE) {
		storage_complete_done(s, cb, arg, E_INVAL);
		return;
	}
	s->ops->set(s, ns, key, value, len, 0, ttl, cb, arg);
}

void storage_delete(struct storage *s, enum storage_ns ns, const char *key, storage_done_cb cb, void *arg)
{
	if (!key_ok(key)) {
		storage_complete_done(s, cb, arg, E_NOTFOUND);
		return;
	}
	s->ops->del(s, ns, key, cb, arg);
}

void storage_list(struct storage *s, enum storage_ns ns, const char *cursor, size_t count,
		  storage_list_cb cb, void *arg)
{
	if (count == 0 || count > STORAGE_MAX_LIST)
		count = STORAGE_MAX_LIST;
	s->ops->list(s, ns, cursor, count, cb, arg);
}

/* ---- locked read-modify-write ---- */

static struct storage_lock *lock_find(struct storage *s, enum storage_ns ns, const char *key)
{
	for (struct storage_lock *l = s->locks; l; l = l->next)
		if (l->ns == ns && strcmp(l->key, key) == 0)
			return l;
	return NULL;
}

static void lock_read_done(void *arg, int status, const char *value, size_t len);

/* Start the read for the current holder of l. */
static void lock_start_read(struct storage_lock *l)
{
	l->s->ops->get(l->s, l->ns, l->key, lock_read_done, l);
}

static void lock_release_local(struct storage_lock *l)
{
	struct storage *s = l->s;
	struct lock_waiter *w = l->head;
	if (w) {
		l->head = w->next;
		if (!l->head)
			l->tail = NULL;
		l->cb = w->cb;
		l->arg = w->arg;
		free(w);
		lock_start_read(l);
		return;
	}
	struct storage_lock **pp = &s->locks;
	while (*pp != l)
		pp = &(*pp)->next;
	*pp = l->next;
	free(l);
}

static void lock_read_done(void *arg, int status, const char *value, size_t len)
{
	struct storage_lock *l = arg;
	storage_locked_cb cb = l->cb;
	void *cbarg = l->arg;
	if (status != 0) {
		lock_release_local(l);
		cb(cbarg, status, NULL, 0, NULL);
		return;
	}
	cb(cbarg, 0, value, len, l);
}

void storage_update_begin(struct storage *s, enum storage_ns ns, const char *key, storage_locked_cb cb, void *arg)
{
	if (!key_ok(key)) {
		complete_locked_error(s, cb, arg, E_NOTFOUND);
		return;
	}
	if (s->ops->lock_get) {
		size_t klen = strlen(key);
		struct storage_lock *bl = calloc(1, sizeof(*bl) + klen + 1);
		if (!bl) {
			complete_locked_error(s, cb, arg, E_BACKEND);
			return;
		}
		bl->s = s;
		bl->ns = ns;
		memcpy(bl->key, key, klen + 1);
		bl->cb = cb;
		bl->arg = arg;
		s->ops->lock_get(s, ns, bl->key, bl);
		return;
	}
	struct storage_lock *l = lock_find(s, ns, key);
	if (l) {
		struct lock_waiter *w = calloc(1, sizeof(*w));
		if (!w) {
			complete_locked_error(s, cb, arg, E_BACKEND);
			return;
		}
		w->cb = cb;
		w->arg = arg;
		if (l->tail)
			l->tail->next = w;
		else
			l->head = w;
		l->tail = w;
		return;
	}
	size_t klen = strlen(key);
	l = calloc(1, sizeof(*l) + klen + 1);
	if (!l) {
		complete_locked_error(s, cb, arg, E_BACKEND);
		return;
	}
	l->s = s;
	l->ns = ns;
	memcpy(l->key, key, klen + 1);
	l->cb = cb;
	l->arg = arg;
	l->next = s->locks;
	s->locks = l;
	lock_start_read(l);
}

static void lock_write_done(void *arg, int status)
{
	struct storage_lock *l = arg;
	storage_done_cb cb = l->done_cb;
	void *cbarg = l->done_arg;
	lock_release_local(l);
	cb(cbarg, status);
}

void storage_update_finish(struct storage_lock *l, const char *value, size_t len, storage_done_cb cb, void *arg)
{
	struct storage *s = l->s;
	if (s->ops->lock_release) {
		l->done_cb = cb;
		l->done_arg = arg;
		s->ops->lock_release(s, l, l->backend_lock, value, len);
		return;
	}
	l->done_cb = cb;
	l->done_arg = arg;
	if (!value) {
		/* Nothing to write: still complete asynchronously. */
		storage_complete_done(s, lock_write_done, l, 0);
		return;
	}
	if (len > STORAGE_MAX_VALUE) {
		storage_complete_done(s, lock_write_done, l, E_INVAL);
		return;
	}
	s->ops->set(s, l->ns, l->key, value, len, 0, 0, lock_write_done, l);
}

void storage_backend_locked(struct storage_lock *l, int status, const char *value, size_t len, void *handle)
{
	storage_locked_cb cb = l->cb;
	void *arg = l->arg;
	if (status != 0) {
		free(l);
		cb(arg, status, NULL, 0, NULL);
		return;
	}
	l->backend_lock = handle;
	cb(arg, 0, value, len, l);
}

void storage_backend_released(struct storage_lock *l, int status)
{
	storage_done_cb cb = l->done_cb;
	void *arg = l->done_arg;
	free(l);
	cb(arg, status);
}
