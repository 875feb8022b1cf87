/* tunnel.c - tunnel connection registry and channel routing. */
#include "tunnel.h"
#include "compat.h"
#include "err.h"
#include "log.h"
#include "loop.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define REGISTRY_FORGET_MS (5 * 60 * 1000) /* fully disconnected tunnels */

struct tunnel_record {
	struct tunnel_record *next;
	struct tunnel_conn *conn; /* NULL once disconnected */
	char connection_id[NODE_ID_LEN + 40];
	char peer[64];
	int64_t connected_at, disconnected_at;
};

struct tunnel_entry {
	struct tunnel_entry *hnext;
	struct tunnel_record *records;
	int alive;
	int64_t connected_at, disconnected_at;
	unsigned rr;                /* round-robin position */
	char id[TUNNEL_ID_MAX + 1];
};

struct registry {
	struct loop *loop;
	char node_id[NODE_ID_LEN + 1];
	int max_connections;
	int shutting_down;
	struct tunnel_entry **buckets;
	size_t nbuckets, count;
	struct loop_timer *sweep;
};

static size_t hash_id(const char *s)
{
	size_t h = 5381;
	for (; *s; s++)
		h = h * 33 + (unsigned char)*s;
	return h;
}

static struct tunnel_entry **slot_of(struct registry *r, const char *id)
{
	struct tunnel_entry **pp = &r->buckets[hash_id(id) & (r->nbuckets - 1)];
	while (*pp && strcmp((*pp)->id, id) != 0)
		pp = &(*pp)->hnext;
	return pp;
}

static struct tunnel_entry *find_entry(struct registry *r, const char *id)
{
	return *slot_of(r, id);
}

static int grow(struct registry *r)
{
	size_t n = r->nbuckets * 2;
	struct tunnel_entry **b = calloc(n, sizeof(*b));
	if (!b)
		return E_NOMEM;
	for (size_t i = 0; i < r->nbuckets; i++) {
		struct tunnel_entry *e = r->buckets[i];
		while (e) {
			struct tunnel_entry *next = e->hnext;
			size_t k = hash_id(e->id) & (n - 1);
			e->hnext = b[k];
			b[k] = e;
			e = next;
		}
	}
	free(r->buckets);
	r->buckets = b;
	r->nbuckets = n;
	return 0;
}

static struct tunnel_entry *get_entry(struct registry *r, const char *id)
{
	struct tunnel_entry *e = find_entry(r, id);
	if (e)
		return e;
	if (r->count >= r->nbuckets && grow(r) != 0)
		return NULL;
	e = calloc(1, sizeof(*e));
	if (!e)
		return NULL;
	snprintf(e->id, sizeof(e->id), "%s", id);
	struct tunnel_entry **slot = slot_of(r, id);
	*slot = e;
	r->count++;
	return e;
}

static void free_entry(struct tunnel_entry *e)
{
	while (e->records) {
		struct tunnel_record *rec = e->records;
		e->records = rec->next;
		free(rec);
	}
	free(e);
}

/* ---- sweep of old records ---- */

static void sweep_entry(struct registry *r, struct tunnel_entry *e, int64_t now)
{
	struct tunnel_record **pp = &e->records;
	while (*pp) {
		struct tunnel_record *rec = *pp;
		if (!rec->conn && now - rec->disconnected_at > REGISTRY_RECORD_RETENTION_MS) {
			*pp = rec->next;
			free(rec);
			continue;
		}
		pp = &rec->next;
	}
}

static void sweep(struct loop *loop, void *arg)
{
	struct registry *r = arg;
	int64_t now = loop_wall_ms();
	for (size_t i = 0; i < r->nbuckets; i++) {
		struct tunnel_entry **pp = &r->buckets[i];
		while (*pp) {
			struct tunnel_entry *e = *pp;
			sweep_entry(r, e, now);
			if (!e->records && e->alive == 0 && now - e->disconnected_at > REGISTRY_FORGET_MS) {
				*pp = e->hnext;
				free_entry(e);
				r->count--;
				continue;
			}
			pp = &e->hnext;
		}
	}
	r->sweep = loop_timer_add(loop, REGISTRY_SWEEP_MS, sweep, r);
}

/* ---- lifecycle ---- */

struct registry *registry_new(struct loop *loop, const char *node_id, int max_connections)
{
	struct registry *r = calloc(1, sizeof(*r));
	if (!r)
		return NULL;
	r->loop = loop;
	snprintf(r->node_id, sizeof(r->node_id), "%s", node_id);
	r->max_connections = max_connections;
	r->nbuckets = 256;
	r->buckets = calloc(r->nbuckets, sizeof(*r->buckets));
	if (!r->buckets) {
		free(r);
		return NULL;
	}
	r->sweep = loop_timer_add(loop, REGISTRY_SWEEP_MS, sweep, r);
	return r;
}

void registry_free(struct registry *r)
{
	if (!r)
		return;
	loop_timer_cancel(r->loop, r->sweep);
	for (size_t i = 0; i < r->nbuckets; i++) {
		struct tunnel_entry *e = r->buckets[i];
		while (e) {
			struct tunnel_entry *next = e->hnext;
			free_entry(e);
			e = next;
		}
	}
	free(r->buckets);
	free(r);
}

static void uuid_v4(char out[37])
{
	unsigned char b[16];
	static const char hex[] = "0123456789abcdef";
	if (compat_random(b, sizeof(b)) != 0)
		memset(b, 0, sizeof(b));
	b[6] = (unsigned char)((b[6] & 0x0f) | 0x40);
	b[8] = (unsigned char)((b[8] & 0x3f) | 0x80);
	size_t o = 0;
	for (int i = 0; i < 16; i++) {
		if (i == 4 || i == 6 || i == 8 || i == 10)
			out[o++] = '-';
		out[o++] = hex[b[i] >> 4];
		out[o++] = hex[b[i] & 15];
	}
	out[o] = '\0';
}

int registry_register(struct registry *r, struct tunnel_conn *c, const char *tunnel_id, const char *peer)
{
	if (r->shutting_down)
		return E_BUSY;
	struct tunnel_entry *e = get_entry(r, tunnel_id);
	if (!e)
		return E_NOMEM;
	if (e->alive >= r->max_connections)
		return E_LIMIT;
	struct tunnel_record *rec = calloc(1, sizeof(*rec));
	if (!rec)
		return E_NOMEM;
	char uuid[37];
	uuid_v4(uuid);
	snprintf(rec->connection_id, sizeof(rec->connection_id), "%s:%s", r->node_id, uuid);
	snprintf(rec->peer, sizeof(rec->peer), "%s", peer ? peer : "");
	rec->conn = c;
	rec->connected_at = loop_wall_ms();
	/* Append: round-robin goes in registration order. */
	struct tunnel_record **pp = &e->records;
	while (*pp)
		pp = &(*pp)->next;
	*pp = rec;
	if (e->alive == 0)
		e->connected_at = rec->connected_at;
	e->alive++;
	c->entry = e;
	c->record = rec;
	log_info("tunnel", "tunnel %s connection %s from %s registered (%d alive)", e->id, rec->connection_id,
		 rec->peer, e->alive);
	return 0;
}

void registry_unregister(struct registry *r, struct tunnel_conn *c)
{
	struct tunnel_entry *e = c->entry;
	struct tunnel_record *rec = c->record;
	if (!e || !rec)
		return;
	rec->conn = NULL;
	rec->disconnected_at = loop_wall_ms();
	e->alive--;
	if (e->alive == 0)
		e->disconnected_at = rec->disconnected_at;
	c->entry = NULL;
	c->record = NULL;
	log_info("tunnel", "tunnel %s connection %s disconnected (%d alive)", e->id, rec->connection_id, e->alive);
}

int registry_alive(struct registry *r, const char *tunnel_id)
{
	struct tunnel_entry *e = find_entry(r, tunnel_id);
	return e ? e->alive : 0;
}

static int disconnect_tunnel(struct registry *r, const char *tunnel_id)
{
	struct tunnel_entry *e = find_entry(r, tunnel_id);
	if (!e)
		return 0;
	int n = 0;
	/* disconnect() unregisters the connection, which edits the record;
	 * restart the scan after each one. */
	for (;;) {
		struct tunnel_record *rec = e->records;
		while (rec && !rec->conn)
			rec = rec->next;
		if (!rec)
			break;
		struct tunnel_conn *c = rec->conn;
		c->ops->disconnect(c);
		if (rec->conn == c)
			registry_unregister(r, c); /* the transport did not: do it here */
		n++;
	}
	return n;
}

void registry_shutdown(struct registry *r)
{
	r->shutting_down = 1;
	for (size_t i = 0; i < r->nbuckets; i++)
		for (struct tunnel_entry *e = r->buckets[i]; e; e = e->hnext)
			if (e->alive)
				(void)disconnect_tunnel(r, e->id);
}

struct channel *registry_open_channel(struct registry *r, const char *tunnel_id, const struct channel_sink *sink,
				      void *arg, const struct channel_origin *origin, int *err)
{
	struct tunnel_entry *e = find_entry(r, tunnel_id);
	*err = E_NOTFOUND;
	if (!e || e->alive == 0)
		return NULL;
	/* Round-robin over ready connections, starting after the last used. */
	int n = 0;
	for (struct tunnel_record *rec = e->records; rec; rec = rec->next)
		if (rec->conn)
			n++;
	for (int tries = 0; tries < n; tries++) {
		unsigned pick = (e->rr + 1 + (unsigned)tries) % (unsigned)n;
		struct tunnel_record *rec = e->records;
		for (unsigned k = 0; rec; rec = rec->next) {
			if (!rec->conn)
				continue;
			if (k++ == pick)
				break;
		}
		if (!rec || !rec->conn)
			continue;
		struct tunnel_conn *c = rec->conn;
		if (c->ops->ready && !c->ops->ready(c))
			continue;
		int cerr = 0;
		struct channel *ch = c->ops->open_channel(c, sink, arg, origin, &cerr);
		if (ch) {
			e->rr = pick;
			return ch;
		}
		*err = cerr ? cerr : E_LIMIT;
	}
	return NULL;
}

/* ---- service hooks ---- */

static void hook_state(void *arg, const char *tunnel_id, struct tunnel_state *st)
{
	struct registry *r = arg;
	struct tunnel_entry *e = find_entry(r, tunnel_id);
	if (!e)
		return;
	int64_t now = loop_wall_ms();
	st->alive_connections = e->alive;
	st->connected = e->alive > 0;
	st->connected_at = e->connected_at;
	st->disconnected_at = e->disconnected_at;
	st->alive_at = e->alive > 0 ? now : e->disconnected_at;
	size_t n = 0;
	for (struct tunnel_record *rec = e->records; rec; rec = rec->next)
		n++;
	if (n == 0)
		return;
	st->conns = calloc(n, sizeof(*st->conns));
	if (!st->conns)
		return;
	for (struct tunnel_record *rec = e->records; rec; rec = rec->next) {
		struct tunnel_connection_info *ci = &st->conns[st->nconns++];
		snprintf(ci->connection_id, sizeof(ci->connection_id), "%s", rec->connection_id);
		snprintf(ci->node, sizeof(ci->node), "%s", r->node_id);
		snprintf(ci->peer, sizeof(ci->peer), "%s", rec->peer);
		ci->connected = rec->conn != NULL;
		ci->connected_at = rec->connected_at;
		ci->disconnected_at = rec->disconnected_at;
		ci->alive_at = rec->conn ? now : rec->disconnected_at;
	}
}

static int hook_disconnect(void *arg, const char *tunnel_id)
{
	return disconnect_tunnel(arg, tunnel_id);
}

void registry_service_hooks(struct registry *r, struct service_connections *out)
{
	out->state = hook_state;
	out->disconnect = hook_disconnect;
	out->arg = r;
}
