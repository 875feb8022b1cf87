/* storage-mem.c - in-process storage (memory://): per-namespace hash map
 * plus insertion order for offset cursors (spec/storage.md §4.4, §6).
 * Expiry is an absolute time checked lazily and swept during listing. */
#include "storage.h"
#include "err.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define MEM_MAX_ENTRIES 1000000 /* per namespace; beyond: backend error */

struct mem_entry {
	struct mem_entry *chain;
	size_t order;          /* index in ns->order */
	long long expires_at;  /* unix seconds, 0 = never */
	char *value;
	size_t len;
	char key[];
};

struct mem_ns {
	struct mem_entry **buckets;
	size_t nbuckets;
	struct mem_entry **order; /* insertion order */
	size_t count, cap;
};

struct mem_store {
	struct mem_ns ns[NS_COUNT];
};

static size_t hash_key(const char *key)
{
	size_t h = 1469598103934665603ull & (size_t)-1;
	for (; *key; key++)
		h = (h ^ (unsigned char)*key) * (size_t)1099511628211ull;
	return h;
}

static struct mem_entry **find_slot(struct mem_ns *ns, const char *key)
{
	if (!ns->nbuckets)
		return NULL;
	struct mem_entry **pp = &ns->buckets[hash_key(key) & (ns->nbuckets - 1)];
	while (*pp && strcmp((*pp)->key, key) != 0)
		pp = &(*pp)->chain;
	return pp;
}

static int expired(const struct mem_entry *e)
{
	return e->expires_at && e->expires_at <= storage_now_s();
}

static int grow_buckets(struct mem_ns *ns)
{
	size_t n = ns->nbuckets ? ns->nbuckets * 2 : 64;
	struct mem_entry **b = calloc(n, sizeof(*b));
	if (!b)
		return E_NOMEM;
	for (size_t i = 0; i < ns->count; i++) {
		struct mem_entry *e = ns->order[i];
		size_t idx = hash_key(e->key) & (n - 1);
		e->chain = b[idx];
		b[idx] = e;
	}
	free(ns->buckets);
	ns->buckets = b;
	ns->nbuckets = n;
	return 0;
}

static void remove_entry(struct mem_ns *ns, struct mem_entry **slot)
{
	struct mem_entry *e = *slot;
	*slot = e->chain;
	memmove(ns->order + e->order, ns->order + e->order + 1, (ns->count - e->order - 1) * sizeof(*ns->order));
	ns->count--;
	for (size_t i = e->order; i < ns->count; i++)
		ns->order[i]->order = i;
	free(e->value);
	free(e);
}

/* Live entry for key, removing it when expired. */
static struct mem_entry *lookup(struct mem_ns *ns, const char *key)
{
	struct mem_entry **slot = find_slot(ns, key);
	if (!slot || !*slot)
		return NULL;
	if (expired(*slot)) {
		remove_entry(ns, slot);
		return NULL;
	}
	return *slot;
}

static int mem_open(struct storage *s, const char *url, void **backend)
{
	struct mem_store *m = calloc(1, sizeof(*m));
	if (!m)
		return E_NOMEM;
	*backend = m;
	return 0;
}

static void mem_close(void *backend)
{
	struct mem_store *m = backend;
	if (!m)
		return;
	for (int i = 0; i < NS_COUNT; i++) {
		struct mem_ns *ns = &m->ns[i];
		for (size_t k = 0; k < ns->count; k++) {
			free(ns->order[k]->value);
			free(ns->order[k]);
		}
		free(ns->order);
		free(ns->buckets);
	}
	free(m);
}

static struct mem_ns *ns_of(struct storage *s, enum storage_ns ns)
{
	struct mem_store *m = storage_backend(s);
	return &m->ns[ns];
}

static void mem_get(struct storage *s, enum storage_ns ns, const char *key, storage_get_cb cb, void *arg)
{
	struct mem_entry *e = lookup(ns_of(s, ns), key);
	if (!e) {
		storage_complete_get(s, cb, arg, E_NOTFOUND, NULL, 0);
		return;
	}
	storage_complete_get(s, cb, arg, 0, e->value, e->len);
}

static void mem_get_multi(struct storage *s, enum storage_ns ns, const char *const *keys, size_t n,
			  storage_multi_cb cb, void *arg)
{
	char **values = calloc(n ? n : 1, sizeof(*values));
	if (!values) {
		storage_complete_multi(s, cb, arg, E_BACKEND, NULL, 0);
		return;
	}
	for (size_t i = 0; i < n; i++) {
		struct mem_entry *e = lookup(ns_of(s, ns), keys[i]);
		if (e && !(values[i] = strdup(e->value))) {
			storage_complete_multi(s, cb, arg, E_BACKEND, values, n);
			return;
		}
	}
	storage_complete_multi(s, cb, arg, 0, values, n);
}

static int insert_entry(struct mem_ns *ns, const char *key, char *value, size_t len, long long expires_at)
{
	if (ns->count >= MEM_MAX_ENTRIES)
		return E_LIMIT;
	if (ns->count + 1 > ns->nbuckets && grow_buckets(ns) != 0)
		return E_NOMEM;
	if (ns->count == ns->cap) {
		size_t cap = ns->cap ? ns->cap * 2 : 64;
		struct mem_entry **o = realloc(ns->order, cap * sizeof(*o));
		if (!o)
			return E_NOMEM;
		ns->order = o;
		ns->cap = cap;
	}
	size_t klen = strlen(key);
	struct mem_entry *e = malloc(sizeof(*e) + klen + 1);
	if (!e)
		return E_NOMEM;
	memcpy(e->key, key, klen + 1);
	e->value = value;
	e->len = len;
	e->expires_at = expires_at;
	e->order = ns->count;
	ns->order[ns->count++] = e;
	struct mem_entry **slot = &ns->buckets[hash_key(key) & (ns->nbuckets - 1)];
	e->chain = *slot;
	*slot = e;
	return 0;
}

static void mem_set(struct storage *s, enum storage_ns nsid, const char *key, const char *value, size_t len,
		    int exclusive, long ttl, storage_done_cb cb, void *arg)
{
	struct mem_ns *ns = ns_of(s, nsid);
	struct mem_entry *e = lookup(ns, key);
	if (e && exclusive) {
		storage_complete_done(s, cb, arg, E_EXISTS);
		return;
	}
	char *copy = malloc(len + 1);
	if (!copy) {
		storage_complete_done(s, cb, arg, E_BACKEND);
		return;
	}
	memcpy(copy, value, len);
	copy[len] = '\0';
	long long expires_at = ttl > 0 ? storage_now_s() + ttl : 0;
	if (e) {
		free(e->value);
		e->value = copy;
		e->len = len;
		e->expires_at = expires_at;
		storage_complete_done(s, cb, arg, 0);
		return;
	}
	if (insert_entry(ns, key, copy, len, expires_at) != 0) {
		free(copy);
		storage_complete_done(s, cb, arg, E_BACKEND);
		return;
	}
	storage_complete_done(s, cb, arg, 0);
}

static void mem_del(struct storage *s, enum storage_ns nsid, const char *key, storage_done_cb cb, void *arg)
{
	struct mem_ns *ns = ns_of(s, nsid);
	struct mem_entry **slot = find_slot(ns, key);
	if (!slot || !*slot) {
		storage_complete_done(s, cb, arg, E_NOTFOUND);
		return;
	}
	remove_entry(ns, slot);
	storage_complete_done(s, cb, arg, 0);
}

static void sweep_expired(struct mem_ns *ns)
{
	for (size_t i = ns->count; i > 0; i--) {
		struct mem_entry *e = ns->order[i - 1];
		if (expired(e))
			remove_entry(ns, find_slot(ns, e->key));
	}
}

static int parse_offset(const char *cursor, size_t *out)
{
	if (!cursor || !*cursor) {
		*out = 0;
		return 0;
	}
	size_t v = 0;
	for (const char *p = cursor; *p; p++) {
		if (*p < '0' || *p > '9' || v > 100000000)
			return E_INVAL;
		v = v * 10 + (size_t)(*p - '0');
	}
	*out = v;
	return 0;
}

static void mem_list(struct storage *s, enum storage_ns nsid, const char *cursor, size_t count,
		     storage_list_cb cb, void *arg)
{
	struct mem_ns *ns = ns_of(s, nsid);
	size_t offset;
	if (parse_offset(cursor, &offset) != 0) {
		storage_complete_list(s, cb, arg, E_INVAL, NULL, 0, NULL);
		return;
	}
	sweep_expired(ns);
	size_t n = 0;
	if (offset < ns->count)
		n = ns->count - offset < count ? ns->count - offset : count;
	char **keys = calloc(n ? n : 1, sizeof(*keys));
	if (!keys) {
		storage_complete_list(s, cb, arg, E_BACKEND, NULL, 0, NULL);
		return;
	}
	for (size_t i = 0; i < n; i++) {
		if (!(keys[i] = strdup(ns->order[offset + i]->key))) {
			storage_complete_list(s, cb, arg, E_BACKEND, keys, n, NULL);
			return;
		}
	}
	char *next = NULL;
	if (n > 0) {
		char tmp[32];
		snprintf(tmp, sizeof(tmp), "%zu", offset + n);
		next = strdup(tmp);
	}
	storage_complete_list(s, cb, arg, 0, keys, n, next);
}

const struct storage_ops storage_mem_ops = {
	.name = "memory",
	.open = mem_open,
	.close = mem_close,
	.get = mem_get,
	.get_multi = mem_get_multi,
	.set = mem_set,
	.del = mem_del,
	.list = mem_list,
};
