/* service.c - account and tunnel operations as asynchronous chains over
 * storage.  Each chain keeps its state in a heap context freed at the end. */
#include "service.h"
#include "config.h"
#include "err.h"
#include "ids.h"
#include "json.h"
#include "log.h"
#include "loop.h"
#include "url.h"
#include "compat.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define ALTNAME_KEY_PREFIX "http-"

struct service {
	struct loop *loop;
	const struct config *cfg;
	struct storage *storage;
	char node_id[NODE_ID_LEN + 1];
	struct url http_url;          /* parsed --ingress-http-url */
	int http_enabled;
	char sni_domain[256];
	int sni_port;
	struct service_connections conns;
	struct service_cname_checker cname;
	int ready, draining;
};

struct storage *service_storage(const struct service *svc) { return svc->storage; }
void service_set_ready(struct service *svc, int ready) { svc->ready = ready; }
int service_is_ready(const struct service *svc) { return svc->ready; }
void service_set_draining(struct service *svc, int draining) { svc->draining = draining; }
int service_is_draining(const struct service *svc) { return svc->draining; }

static void result_set(struct service_result *r, enum service_status st, const char *details)
{
	r->status = st;
	r->details[0] = '\0';
	if (details)
		snprintf(r->details, sizeof(r->details), "%s", details);
}

/* The answer when a context for an operation cannot be allocated. */
static const struct service_result oom_result = {SVC_BACKEND, "out of memory"};

static enum service_status status_of(int storage_status)
{
	switch (storage_status) {
	case 0: return SVC_OK;
	case E_NOTFOUND: return SVC_NOTFOUND;
	case E_EXISTS: return SVC_EXISTS;
	default: return SVC_BACKEND;
	}
}

void tunnel_patch_free(struct tunnel_patch *p)
{
	strlist_clear(&p->alt_names);
	free(p->target_url);
	p->target_url = NULL;
}

void tunnel_state_free(struct tunnel_state *st)
{
	free(st->conns);
	st->conns = NULL;
	st->nconns = 0;
}

struct service *service_new(struct loop *loop, const struct config *cfg, struct storage *storage)
{
	struct service *svc = calloc(1, sizeof(*svc));
	if (!svc)
		return NULL;
	svc->loop = loop;
	svc->cfg = cfg;
	svc->storage = storage;
	if (random_hex(svc->node_id, NODE_ID_LEN / 2) != 0) {
		free(svc);
		return NULL;
	}
	if ((cfg->ingress_mask & CONFIG_INGRESS_HTTP) && cfg->ingress_http_url &&
	    url_parse(cfg->ingress_http_url, strlen(cfg->ingress_http_url), &svc->http_url) == 0)
		svc->http_enabled = 1;
	if (cfg->ingress_mask & CONFIG_INGRESS_SNI) {
		svc->sni_port = cfg->ingress_sni_host_port ? cfg->ingress_sni_host_port : cfg->ingress_sni_port;
		if (cfg->ingress_sni_host_name)
			snprintf(svc->sni_domain, sizeof(svc->sni_domain), "%s", cfg->ingress_sni_host_name);
	}
	return svc;
}

void service_free(struct service *svc)
{
	free(svc);
}

void service_set_connections(struct service *svc, const struct service_connections *c) { svc->conns = *c; }
void service_set_cname_checker(struct service *svc, const struct service_cname_checker *c) { svc->cname = *c; }
const struct config *service_config(const struct service *svc) { return svc->cfg; }
struct loop *service_loop(const struct service *svc) { return svc->loop; }
const char *service_node_id(const struct service *svc) { return svc->node_id; }

const char *service_ingress_http_domain(const struct service *svc)
{
	return svc->http_enabled ? svc->http_url.host : "";
}

void service_set_sni(struct service *svc, const char *wildcard_domain, int port)
{
	snprintf(svc->sni_domain, sizeof(svc->sni_domain), "%s", wildcard_domain);
	if (!svc->cfg->ingress_sni_host_port)
		svc->sni_port = port;
}

void service_tunnel_state(struct service *svc, const char *tunnel_id, struct tunnel_state *st)
{
	memset(st, 0, sizeof(*st));
	if (svc->conns.state)
		svc->conns.state(svc->conns.arg, tunnel_id, st);
}

static int disconnect_local(struct service *svc, const char *tunnel_id)
{
	return svc->conns.disconnect ? svc->conns.disconnect(svc->conns.arg, tunnel_id) : 0;
}

/* ---- reading records ---- */

struct read_ctx {
	struct service *svc;
	union {
		service_account_cb account;
		service_tunnel_cb tunnel;
	} cb;
	void *arg;
	int brief; /* account without its tunnel list */
};

static void account_read_done(void *arg, int status, const char *value, size_t len)
{
	struct read_ctx *ctx = arg;
	struct service_result res;
	struct account a;
	account_init(&a);
	result_set(&res, status_of(status), NULL);
	int rc = 0;
	if (status == 0)
		rc = ctx->brief ? account_from_json_brief(&a, value, len) : account_from_json(&a, value, len);
	if (rc != 0) {
		log_warn("service", "unreadable account record");
		result_set(&res, SVC_BACKEND, "unreadable record");
	}
	ctx->cb.account(ctx->arg, &res, res.status == SVC_OK ? &a : NULL);
	account_free(&a);
	free(ctx);
}

static void account_get(struct service *svc, const char *account_id, int brief, service_account_cb cb, void *arg);

void service_account_get(struct service *svc, const char *account_id, service_account_cb cb, void *arg)
{
	account_get(svc, account_id, 0, cb, arg);
}

void service_account_auth(struct service *svc, const char *account_id, service_account_cb cb, void *arg)
{
	account_get(svc, account_id, 1, cb, arg);
}

static void account_get(struct service *svc, const char *account_id, int brief, service_account_cb cb, void *arg)
{
	struct read_ctx *ctx = calloc(1, sizeof(*ctx));
	if (!ctx) {
		cb(arg, &oom_result, NULL);
		return;
	}
	ctx->svc = svc;
	ctx->cb.account = cb;
	ctx->arg = arg;
	ctx->brief = brief;
	storage_get(svc->storage, NS_ACCOUNT, account_id, account_read_done, ctx);
}

static void tunnel_read_done(void *arg, int status, const char *value, size_t len)
{
	struct read_ctx *ctx = arg;
	struct service_result res;
	struct tunnel_config t;
	tunnel_config_init(&t);
	result_set(&res, status_of(status), NULL);
	if (status == 0 && tunnel_config_from_json(&t, value, len) != 0) {
		log_warn("service", "unreadable tunnel record");
		result_set(&res, SVC_BACKEND, "unreadable record");
	}
	ctx->cb.tunnel(ctx->arg, &res, res.status == SVC_OK ? &t : NULL);
	tunnel_config_free(&t);
	free(ctx);
}

void service_tunnel_get(struct service *svc, const char *tunnel_id, service_tunnel_cb cb, void *arg)
{
	struct read_ctx *ctx = calloc(1, sizeof(*ctx));
	if (!ctx) {
		cb(arg, &oom_result, NULL);
		return;
	}
	ctx->svc = svc;
	ctx->cb.tunnel = cb;
	ctx->arg = arg;
	storage_get(svc->storage, NS_TUNNEL, tunnel_id, tunnel_read_done, ctx);
}

/* ---- account create ---- */

struct account_create_ctx {
	struct service *svc;
	service_account_cb cb;
	void *arg;
	int attempts;
	struct account a;
};

static void account_create_try(struct account_create_ctx *ctx);

static void account_create_done(void *arg, int status)
{
	struct account_create_ctx *ctx = arg;
	struct service_result res;
	if (status == E_EXISTS && ctx->attempts < SERVICE_ACCOUNT_CREATE_ATTEMPTS) {
		account_create_try(ctx);
		return;
	}
	if (status == 0)
		result_set(&res, SVC_OK, NULL);
	else if (status == E_EXISTS)
		result_set(&res, SVC_EXHAUSTED, "no free account id");
	else
		result_set(&res, SVC_BACKEND, err_str(status));
	ctx->cb(ctx->arg, &res, status == 0 ? &ctx->a : NULL);
	account_free(&ctx->a);
	free(ctx);
}

static void account_create_try(struct account_create_ctx *ctx)
{
	ctx->attempts++;
	size_t len;
	char *json = NULL;
	if (account_id_generate(ctx->a.id) == 0)
		json = account_to_json(&ctx->a, &len);
	if (!json) {
		storage_complete_done(ctx->svc->storage, account_create_done, ctx, E_BACKEND);
		return;
	}
	storage_create(ctx->svc->storage, NS_ACCOUNT, ctx->a.id, json, len, 0, account_create_done, ctx);
	free(json);
}

void service_account_create(struct service *svc, service_account_cb cb, void *arg)
{
	struct account_create_ctx *ctx = calloc(1, sizeof(*ctx));
	if (!ctx) {
		cb(arg, &oom_result, NULL);
		return;
	}
	ctx->svc = svc;
	ctx->cb = cb;
	ctx->arg = arg;
	account_init(&ctx->a);
	iso_now(ctx->a.created_at);
	memcpy(ctx->a.updated_at, ctx->a.created_at, sizeof(ctx->a.updated_at));
	account_create_try(ctx);
}

/* ---- locked account update (add/remove tunnel, disable) ---- */

enum account_change { ACC_ADD_TUNNEL, ACC_REMOVE_TUNNEL, ACC_DISABLE, ACC_ENABLE };

struct account_update_ctx {
	struct service *svc;
	enum account_change change;
	char tunnel_id[TUNNEL_ID_MAX + 1];
	char *reason;
	struct account a;
	int wrote;
	void (*done)(void *arg, int status, struct account *a);
	void *arg;
};

static void account_update_written(void *arg, int status)
{
	struct account_update_ctx *ctx = arg;
	ctx->done(ctx->arg, status, status == 0 ? &ctx->a : NULL);
	account_free(&ctx->a);
	free(ctx->reason);
	free(ctx);
}

/* Apply the change; returns 1 when the record changed. */
static int account_apply(struct account_update_ctx *ctx)
{
	struct account *a = &ctx->a;
	switch (ctx->change) {
	case ACC_ADD_TUNNEL:
		if (strlist_contains(&a->tunnels, ctx->tunnel_id))
			return 0;
		if (strlist_add(&a->tunnels, ctx->tunnel_id, strlen(ctx->tunnel_id)) != 0)
			return -1;
		break;
	case ACC_REMOVE_TUNNEL:
		if (!strlist_remove(&a->tunnels, ctx->tunnel_id))
			return 0;
		break;
	case ACC_DISABLE:
		a->disabled = 1;
		iso_now(a->disabled_at);
		free(a->disabled_reason);
		a->disabled_reason = ctx->reason ? strdup(ctx->reason) : NULL;
		break;
	case ACC_ENABLE:
		a->disabled = 0;
		a->disabled_at[0] = '\0';
		free(a->disabled_reason);
		a->disabled_reason = NULL;
		break;
	}
	iso_now(a->updated_at);
	return 1;
}

static void account_update_locked(void *arg, int status, const char *value, size_t len, struct storage_lock *lock)
{
	struct account_update_ctx *ctx = arg;
	if (status != 0) {
		account_update_written(ctx, status);
		return;
	}
	if (account_from_json(&ctx->a, value, len) != 0) {
		storage_update_finish(lock, NULL, 0, account_update_written, ctx);
		return;
	}
	int changed = account_apply(ctx);
	if (changed <= 0) {
		storage_update_finish(lock, NULL, 0, account_update_written, ctx);
		return;
	}
	size_t jlen;
	char *json = account_to_json(&ctx->a, &jlen);
	storage_update_finish(lock, json, json ? jlen : 0, account_update_written, ctx);
	free(json);
}

static void account_update(struct service *svc, const char *account_id, enum account_change change,
			   const char *tunnel_id, const char *reason,
			   void (*done)(void *arg, int status, struct account *a), void *arg)
{
	struct account_update_ctx *ctx = calloc(1, sizeof(*ctx));
	if (!ctx) {
		done(arg, E_NOMEM, NULL);
		return;
	}
	ctx->svc = svc;
	ctx->change = change;
	if (tunnel_id)
		snprintf(ctx->tunnel_id, sizeof(ctx->tunnel_id), "%s", tunnel_id);
	ctx->reason = reason ? strdup(reason) : NULL;
	ctx->done = done;
	ctx->arg = arg;
	account_init(&ctx->a);
	storage_update_begin(svc->storage, NS_ACCOUNT, account_id, account_update_locked, ctx);
}

/* ---- tunnel create ---- */

struct tunnel_create_ctx {
	struct service *svc;
	struct tunnel_config t;
	service_tunnel_cb cb;
	void *arg;
	int status;
};

static void tunnel_create_finish(struct tunnel_create_ctx *ctx, enum service_status st, const char *details)
{
	struct service_result res;
	result_set(&res, st, details);
	ctx->cb(ctx->arg, &res, st == SVC_OK ? &ctx->t : NULL);
	tunnel_config_free(&ctx->t);
	free(ctx);
}

static void tunnel_create_rollback_done(void *arg, int status)
{
	struct tunnel_create_ctx *ctx = arg;
	tunnel_create_finish(ctx, SVC_BACKEND, "account update failed");
}

static void tunnel_create_account_done(void *arg, int status, struct account *a)
{
	struct tunnel_create_ctx *ctx = arg;
	if (status == 0) {
		tunnel_create_finish(ctx, SVC_OK, NULL);
		return;
	}
	/* The owner could not record the tunnel: undo the create (§3). */
	storage_delete(ctx->svc->storage, NS_TUNNEL, ctx->t.id, tunnel_create_rollback_done, ctx);
}

static void tunnel_create_stored(void *arg, int status)
{
	struct tunnel_create_ctx *ctx = arg;
	if (status != 0) {
		tunnel_create_finish(ctx, status_of(status), NULL);
		return;
	}
	account_update(ctx->svc, ctx->t.account, ACC_ADD_TUNNEL, ctx->t.id, NULL, tunnel_create_account_done, ctx);
}

void service_tunnel_create(struct service *svc, const char *tunnel_id, const char *account_id,
			   service_tunnel_cb cb, void *arg)
{
	struct tunnel_create_ctx *ctx = calloc(1, sizeof(*ctx));
	if (!ctx) {
		cb(arg, &oom_result, NULL);
		return;
	}
	ctx->svc = svc;
	ctx->cb = cb;
	ctx->arg = arg;
	tunnel_config_init(&ctx->t);
	snprintf(ctx->t.id, sizeof(ctx->t.id), "%s", tunnel_id);
	snprintf(ctx->t.account, sizeof(ctx->t.account), "%s", account_id);
	iso_now(ctx->t.created_at);
	memcpy(ctx->t.updated_at, ctx->t.created_at, sizeof(ctx->t.updated_at));
	size_t len;
	char *json = NULL;
	if (tunnel_token_generate(ctx->t.token) == 0)
		json = tunnel_config_to_json(&ctx->t, &len);
	if (!json) {
		storage_complete_done(svc->storage, tunnel_create_stored, ctx, E_BACKEND);
		return;
	}
	storage_create(svc->storage, NS_TUNNEL, tunnel_id, json, len, 0, tunnel_create_stored, ctx);
	free(json);
}

/* ---- ingress derivation ---- */

static int format_http_url(const struct service *svc, const char *host, char *out, size_t cap)
{
	struct url u = svc->http_url;
	snprintf(u.host, sizeof(u.host), "%s", host);
	u.ipv6 = 0;
	return url_format(&u, out, cap);
}

/* Re-derive the ingress block (spec/api.md §2.5). */
static int derive_ingress(const struct service *svc, struct tunnel_config *t)
{
	strlist_clear(&t->http_urls);
	free(t->http_url);
	t->http_url = NULL;
	if (!svc->http_enabled) {
		t->http_enabled = 0;
		strlist_clear(&t->alt_names);
	} else if (t->http_enabled) {
		char host[512], url[URL_MAX];
		snprintf(host, sizeof(host), "%s.%s", t->id, svc->http_url.host);
		if (format_http_url(svc, host, url, sizeof(url)) < 0)
			return E_INVAL;
		if (!(t->http_url = strdup(url)) || strlist_add(&t->http_urls, url, strlen(url)) != 0)
			return E_NOMEM;
		for (size_t i = 0; i < t->alt_names.n; i++) {
			if (format_http_url(svc, t->alt_names.v[i], url, sizeof(url)) < 0)
				return E_INVAL;
			if (strlist_add(&t->http_urls, url, strlen(url)) != 0)
				return E_NOMEM;
		}
	}
	strlist_clear(&t->sni_urls);
	free(t->sni_url);
	t->sni_url = NULL;
	int sni_on = (svc->cfg->ingress_mask & CONFIG_INGRESS_SNI) && svc->sni_domain[0];
	if (!sni_on)
		t->sni_enabled = 0;
	if (t->sni_enabled) {
		char url[URL_MAX];
		snprintf(url, sizeof(url), "tcps://%s.%s:%d", t->id, svc->sni_domain, svc->sni_port);
		if (!(t->sni_url = strdup(url)) || strlist_add(&t->sni_urls, url, strlen(url)) != 0)
			return E_NOMEM;
	}
	return 0;
}

/* ---- tunnel update ---- */

struct tunnel_update_ctx {
	struct service *svc;
	char tunnel_id[TUNNEL_ID_MAX + 1];
	char owner[ACCOUNT_ID_LEN + 1];
	struct tunnel_patch patch;
	struct tunnel_config t;
	struct storage_lock *lock;
	service_tunnel_cb cb;
	void *arg;
	struct service_result res;
	/* alt-name processing */
	struct strlist old_names;   /* names before the change */
	struct strlist want_names;  /* requested names */
	struct strlist kept_names;  /* names accepted into the config */
	struct strlist bad_names;   /* failed the CNAME check */
	size_t step;                /* index into the current list */
	int phase;
};

static void update_ctx_free(struct tunnel_update_ctx *ctx)
{
	tunnel_patch_free(&ctx->patch);
	tunnel_config_free(&ctx->t);
	strlist_clear(&ctx->old_names);
	strlist_clear(&ctx->want_names);
	strlist_clear(&ctx->kept_names);
	strlist_clear(&ctx->bad_names);
	free(ctx);
}

static void update_written(void *arg, int status)
{
	struct tunnel_update_ctx *ctx = arg;
	if (ctx->res.status == SVC_OK && status != 0)
		result_set(&ctx->res, SVC_BACKEND, err_str(status));
	ctx->cb(ctx->arg, &ctx->res, ctx->res.status == SVC_OK ? &ctx->t : NULL);
	update_ctx_free(ctx);
}

/* Release the lock without writing and report st. */
static void update_fail(struct tunnel_update_ctx *ctx, enum service_status st, const char *details)
{
	result_set(&ctx->res, st, details);
	storage_update_finish(ctx->lock, NULL, 0, update_written, ctx);
}

static void update_commit(struct tunnel_update_ctx *ctx)
{
	struct tunnel_config *t = &ctx->t;
	if (ctx->patch.has_alt_names || ctx->phase > 0)
		(void)strlist_copy(&t->alt_names, &ctx->kept_names);
	if (derive_ingress(ctx->svc, t) != 0) {
		update_fail(ctx, SVC_BACKEND, "cannot derive ingress urls");
		return;
	}
	iso_now(t->updated_at);
	size_t len;
	char *json = tunnel_config_to_json(t, &len);
	if (!json) {
		update_fail(ctx, SVC_BACKEND, "out of memory");
		return;
	}
	result_set(&ctx->res, SVC_OK, NULL);
	storage_update_finish(ctx->lock, json, len, update_written, ctx);
	free(json);
}

/* Alt names: phase 1 checks CNAMEs of added names, phase 2 claims added
 * names in the alt-name registry, phase 3 releases removed ones. */
static void altnames_next(struct tunnel_update_ctx *ctx);

static void altname_cname_done(void *arg, int ok)
{
	struct tunnel_update_ctx *ctx = arg;
	if (!ok)
		(void)strlist_add(&ctx->bad_names, ctx->want_names.v[ctx->step], strlen(ctx->want_names.v[ctx->step]));
	ctx->step++;
	altnames_next(ctx);
}

static void altname_owner_read(void *arg, int status, const char *value, size_t len);

static void altname_claimed(void *arg, int status)
{
	struct tunnel_update_ctx *ctx = arg;
	const char *name = ctx->want_names.v[ctx->step];
	if (status == 0) {
		(void)strlist_add(&ctx->kept_names, name, strlen(name));
	} else if (status == E_EXISTS) {
		char key[STORAGE_MAX_KEY + 8];
		snprintf(key, sizeof(key), ALTNAME_KEY_PREFIX "%s", name);
		storage_get(ctx->svc->storage, NS_ALTNAME, key, altname_owner_read, ctx);
		return;
	} else {
		update_fail(ctx, SVC_BACKEND, "alt-name registry failure");
		return;
	}
	ctx->step++;
	altnames_next(ctx);
}

/* True if the alt-name record value names tunnel_id as its owner. */
static int altname_owned_by(const char *value, size_t len, const char *tunnel_id)
{
	struct json_token toks[16];
	int n = json_parse(value, len, toks, 16, NULL);
	if (n <= 0 || toks[0].type != JSON_OBJECT)
		return 0;
	int v = json_obj_get(value, toks, 0, "tunnelId");
	return v >= 0 && toks[v].type == JSON_STRING && json_str_eq(value, &toks[v], tunnel_id);
}

static void altname_owner_read(void *arg, int status, const char *value, size_t len)
{
	struct tunnel_update_ctx *ctx = arg;
	const char *name = ctx->want_names.v[ctx->step];
	if (ctx->phase == 2) {
		/* Already claimed: keep it only if it is ours; another tunnel's
		 * claim silently drops the name (first come, first served). */
		if (status == 0 && altname_owned_by(value, len, ctx->t.id))
			(void)strlist_add(&ctx->kept_names, name, strlen(name));
		ctx->step++;
		altnames_next(ctx);
		return;
	}
	ctx->step++;
	altnames_next(ctx);
}

static void altname_released(void *arg, int status)
{
	struct tunnel_update_ctx *ctx = arg;
	ctx->step++;
	altnames_next(ctx);
}

static void altname_release_read(void *arg, int status, const char *value, size_t len)
{
	struct tunnel_update_ctx *ctx = arg;
	const char *name = ctx->old_names.v[ctx->step];
	if (status == 0 && altname_owned_by(value, len, ctx->t.id)) {
		char key[STORAGE_MAX_KEY + 8];
		snprintf(key, sizeof(key), ALTNAME_KEY_PREFIX "%s", name);
		storage_delete(ctx->svc->storage, NS_ALTNAME, key, altname_released, ctx);
		return;
	}
	ctx->step++;
	altnames_next(ctx);
}

static void altnames_phase(struct tunnel_update_ctx *ctx, int phase)
{
	ctx->phase = phase;
	ctx->step = 0;
}

static void altnames_next(struct tunnel_update_ctx *ctx)
{
	char key[STORAGE_MAX_KEY + 8];
	if (ctx->phase == 1) {
		while (ctx->step < ctx->want_names.n && strlist_contains(&ctx->old_names, ctx->want_names.v[ctx->step]))
			ctx->step++;
		if (ctx->step < ctx->want_names.n) {
			char target[512];
			snprintf(target, sizeof(target), "%s.%s", ctx->t.id, ctx->svc->http_url.host);
			if (!ctx->svc->cname.check) {
				altname_cname_done(ctx, 0);
				return;
			}
			ctx->svc->cname.check(ctx->svc->cname.arg, ctx->want_names.v[ctx->step], target,
					      altname_cname_done, ctx);
			return;
		}
		if (ctx->bad_names.n > 0) {
			char details[SERVICE_MAX_DETAILS] = "";
			size_t pos = 0;
			for (size_t i = 0; i < ctx->bad_names.n && pos < sizeof(details); i++)
				pos += (size_t)snprintf(details + pos, sizeof(details) - pos, "%s%s", i ? ", " : "",
							ctx->bad_names.v[i]);
			update_fail(ctx, SVC_BAD_ALTNAMES, details);
			return;
		}
		altnames_phase(ctx, 2);
	}
	if (ctx->phase == 2) {
		if (ctx->step < ctx->want_names.n) {
			const char *name = ctx->want_names.v[ctx->step];
			snprintf(key, sizeof(key), ALTNAME_KEY_PREFIX "%s", name);
			if (strlist_contains(&ctx->old_names, name)) {
				storage_get(ctx->svc->storage, NS_ALTNAME, key, altname_owner_read, ctx);
				return;
			}
			char created[ISO_TIME_LEN + 1];
			iso_now(created);
			char value[TUNNEL_ID_MAX + 96];
			int n = snprintf(value, sizeof(value), "{\"tunnelId\":\"%s\",\"created_at\":\"%s\"}",
					 ctx->t.id, created);
			storage_create(ctx->svc->storage, NS_ALTNAME, key, value, (size_t)n, 0, altname_claimed, ctx);
			return;
		}
		altnames_phase(ctx, 3);
	}
	if (ctx->phase == 3) {
		while (ctx->step < ctx->old_names.n && strlist_contains(&ctx->want_names, ctx->old_names.v[ctx->step]))
			ctx->step++;
		if (ctx->step < ctx->old_names.n) {
			snprintf(key, sizeof(key), ALTNAME_KEY_PREFIX "%s", ctx->old_names.v[ctx->step]);
			storage_get(ctx->svc->storage, NS_ALTNAME, key, altname_release_read, ctx);
			return;
		}
	}
	update_commit(ctx);
}

static int names_differ(const struct strlist *a, const struct strlist *b)
{
	for (size_t i = 0; i < a->n; i++)
		if (!strlist_contains(b, a->v[i]))
			return 1;
	for (size_t i = 0; i < b->n; i++)
		if (!strlist_contains(a, b->v[i]))
			return 1;
	return 0;
}

static void apply_patch(struct tunnel_config *t, const struct tunnel_patch *p)
{
	if (p->has_http_enabled)
		t->http_enabled = p->http_enabled;
	if (p->has_sni_enabled)
		t->sni_enabled = p->sni_enabled;
	if (p->has_ws_enabled)
		t->ws_enabled = p->ws_enabled;
	if (p->has_ssh_enabled)
		t->ssh_enabled = p->ssh_enabled;
	if (p->has_target) {
		free(t->target_url);
		t->target_url = p->target_url ? strdup(p->target_url) : NULL;
	}
}

static void update_locked(void *arg, int status, const char *value, size_t len, struct storage_lock *lock)
{
	struct tunnel_update_ctx *ctx = arg;
	ctx->lock = lock;
	if (status != 0) {
		result_set(&ctx->res, status_of(status), NULL);
		update_written(ctx, 0);
		return;
	}
	if (tunnel_config_from_json(&ctx->t, value, len) != 0) {
		update_fail(ctx, SVC_BACKEND, "unreadable tunnel record");
		return;
	}
	if (!ctx->t.id[0])
		snprintf(ctx->t.id, sizeof(ctx->t.id), "%s", ctx->tunnel_id);
	if (ctx->owner[0] && strcmp(ctx->owner, ctx->t.account) != 0) {
		update_fail(ctx, SVC_DENIED, NULL);
		return;
	}
	const struct config *cfg = ctx->svc->cfg;
	const struct tunnel_patch *p = &ctx->patch;
	int want_http = p->has_http_enabled ? p->http_enabled : ctx->t.http_enabled;
	if (!ctx->svc->http_enabled && want_http) {
		update_fail(ctx, SVC_ADMIN_DISABLED, "ingress_administratively_disabled");
		return;
	}
	if (!(cfg->ingress_mask & CONFIG_INGRESS_SNI) && p->has_sni_enabled && p->sni_enabled) {
		update_fail(ctx, SVC_ADMIN_DISABLED, "ingress_administratively_disabled");
		return;
	}
	apply_patch(&ctx->t, p);
	(void)strlist_copy(&ctx->old_names, &ctx->t.alt_names);
	(void)strlist_copy(&ctx->kept_names, &ctx->t.alt_names);
	if (p->has_alt_names && ctx->svc->http_enabled && names_differ(&ctx->old_names, &p->alt_names)) {
		(void)strlist_copy(&ctx->want_names, &p->alt_names);
		strlist_clear(&ctx->kept_names);
		altnames_phase(ctx, 1);
		altnames_next(ctx);
		return;
	}
	update_commit(ctx);
}

void service_tunnel_update(struct service *svc, const char *tunnel_id, const char *owner,
			   const struct tunnel_patch *patch, service_tunnel_cb cb, void *arg)
{
	struct tunnel_update_ctx *ctx = calloc(1, sizeof(*ctx));
	if (!ctx) {
		cb(arg, &oom_result, NULL);
		return;
	}
	ctx->svc = svc;
	ctx->cb = cb;
	ctx->arg = arg;
	snprintf(ctx->tunnel_id, sizeof(ctx->tunnel_id), "%s", tunnel_id);
	if (owner)
		snprintf(ctx->owner, sizeof(ctx->owner), "%s", owner);
	tunnel_config_init(&ctx->t);
	ctx->patch = *patch;
	/* Deep-copy the patch's heap parts. */
	memset(&ctx->patch.alt_names, 0, sizeof(ctx->patch.alt_names));
	(void)strlist_copy(&ctx->patch.alt_names, &patch->alt_names);
	ctx->patch.target_url = patch->target_url ? strdup(patch->target_url) : NULL;
	storage_update_begin(svc->storage, NS_TUNNEL, tunnel_id, update_locked, ctx);
}

/* ---- tunnel delete / disconnect ---- */

struct tunnel_delete_ctx {
	struct service *svc;
	char tunnel_id[TUNNEL_ID_MAX + 1];
	char owner[ACCOUNT_ID_LEN + 1];
	char account[ACCOUNT_ID_LEN + 1];
	struct strlist names;
	size_t step;
	service_done_cb cb;
	void *arg;
	struct service_result res;
};

static void delete_finish(struct tunnel_delete_ctx *ctx, enum service_status st)
{
	result_set(&ctx->res, st, NULL);
	ctx->cb(ctx->arg, &ctx->res);
	strlist_clear(&ctx->names);
	free(ctx);
}

static void delete_account_updated(void *arg, int status, struct account *a)
{
	struct tunnel_delete_ctx *ctx = arg;
	/* The tunnel is gone; a missing owner record is not an error. */
	delete_finish(ctx, status == 0 || status == E_NOTFOUND ? SVC_OK : SVC_BACKEND);
}

static void delete_record_done(void *arg, int status)
{
	struct tunnel_delete_ctx *ctx = arg;
	if (status != 0 && status != E_NOTFOUND) {
		delete_finish(ctx, SVC_BACKEND);
		return;
	}
	account_update(ctx->svc, ctx->account, ACC_REMOVE_TUNNEL, ctx->tunnel_id, NULL, delete_account_updated, ctx);
}

static void delete_next_altname(struct tunnel_delete_ctx *ctx);

static void delete_altname_done(void *arg, int status)
{
	struct tunnel_delete_ctx *ctx = arg;
	ctx->step++;
	delete_next_altname(ctx);
}

static void delete_altname_read(void *arg, int status, const char *value, size_t len)
{
	struct tunnel_delete_ctx *ctx = arg;
	if (status == 0 && altname_owned_by(value, len, ctx->tunnel_id)) {
		char key[STORAGE_MAX_KEY + 8];
		snprintf(key, sizeof(key), ALTNAME_KEY_PREFIX "%s", ctx->names.v[ctx->step]);
		storage_delete(ctx->svc->storage, NS_ALTNAME, key, delete_altname_done, ctx);
		return;
	}
	ctx->step++;
	delete_next_altname(ctx);
}

static void delete_next_altname(struct tunnel_delete_ctx *ctx)
{
	if (ctx->step < ctx->names.n) {
		char key[STORAGE_MAX_KEY + 8];
		snprintf(key, sizeof(key), ALTNAME_KEY_PREFIX "%s", ctx->names.v[ctx->step]);
		storage_get(ctx->svc->storage, NS_ALTNAME, key, delete_altname_read, ctx);
		return;
	}
	storage_delete(ctx->svc->storage, NS_TUNNEL, ctx->tunnel_id, delete_record_done, ctx);
}

static void delete_tunnel_read(void *arg, const struct service_result *res, struct tunnel_config *t)
{
	struct tunnel_delete_ctx *ctx = arg;
	if (res->status != SVC_OK) {
		delete_finish(ctx, res->status);
		return;
	}
	if (ctx->owner[0] && strcmp(ctx->owner, t->account) != 0) {
		delete_finish(ctx, SVC_NOTFOUND);
		return;
	}
	snprintf(ctx->account, sizeof(ctx->account), "%s", t->account);
	(void)strlist_copy(&ctx->names, &t->alt_names);
	(void)disconnect_local(ctx->svc, ctx->tunnel_id);
	delete_next_altname(ctx);
}

void service_tunnel_delete(struct service *svc, const char *tunnel_id, const char *owner,
			   service_done_cb cb, void *arg)
{
	struct tunnel_delete_ctx *ctx = calloc(1, sizeof(*ctx));
	if (!ctx) {
		cb(arg, &oom_result);
		return;
	}
	ctx->svc = svc;
	ctx->cb = cb;
	ctx->arg = arg;
	snprintf(ctx->tunnel_id, sizeof(ctx->tunnel_id), "%s", tunnel_id);
	if (owner)
		snprintf(ctx->owner, sizeof(ctx->owner), "%s", owner);
	service_tunnel_get(svc, tunnel_id, delete_tunnel_read, ctx);
}

struct disconnect_ctx {
	struct service *svc;
	char tunnel_id[TUNNEL_ID_MAX + 1];
	char owner[ACCOUNT_ID_LEN + 1];
	service_disconnect_cb cb;
	void *arg;
	int waited_ms;
};

#define DISCONNECT_POLL_MS 50

static void disconnect_check(struct loop *loop, void *arg)
{
	struct disconnect_ctx *ctx = arg;
	struct tunnel_state st;
	service_tunnel_state(ctx->svc, ctx->tunnel_id, &st);
	int connected = st.alive_connections > 0;
	tunnel_state_free(&st);
	/* Wait up to 500 ms for the connections to report closed (§2.8). */
	if (connected && ctx->waited_ms < SERVICE_DISCONNECT_WAIT_MS &&
	    loop_timer_add(loop, DISCONNECT_POLL_MS, disconnect_check, ctx)) {
		ctx->waited_ms += DISCONNECT_POLL_MS;
		return;
	}
	struct service_result res;
	result_set(&res, SVC_OK, NULL);
	ctx->cb(ctx->arg, &res, !connected);
	free(ctx);
}

static void disconnect_tunnel_read(void *arg, const struct service_result *res, struct tunnel_config *t)
{
	struct disconnect_ctx *ctx = arg;
	if (res->status == SVC_OK && ctx->owner[0] && strcmp(ctx->owner, t->account) != 0) {
		struct service_result nf;
		result_set(&nf, SVC_NOTFOUND, NULL);
		ctx->cb(ctx->arg, &nf, 0);
		free(ctx);
		return;
	}
	if (res->status != SVC_OK) {
		ctx->cb(ctx->arg, res, 0);
		free(ctx);
		return;
	}
	(void)disconnect_local(ctx->svc, ctx->tunnel_id);
	disconnect_check(ctx->svc->loop, ctx);
}

void service_tunnel_disconnect(struct service *svc, const char *tunnel_id, const char *owner,
			       service_disconnect_cb cb, void *arg)
{
	struct disconnect_ctx *ctx = calloc(1, sizeof(*ctx));
	if (!ctx) {
		cb(arg, &oom_result, 0);
		return;
	}
	ctx->svc = svc;
	ctx->cb = cb;
	ctx->arg = arg;
	snprintf(ctx->tunnel_id, sizeof(ctx->tunnel_id), "%s", tunnel_id);
	if (owner)
		snprintf(ctx->owner, sizeof(ctx->owner), "%s", owner);
	service_tunnel_get(svc, tunnel_id, disconnect_tunnel_read, ctx);
}

/* ---- account disable / delete ---- */

struct account_admin_ctx {
	struct service *svc;
	char account_id[ACCOUNT_ID_LEN + 1];
	struct strlist tunnels;
	size_t step;
	service_account_cb account_cb;
	service_done_cb done_cb;
	void *arg;
	struct account a;
	int have_account;
};

static void account_admin_free(struct account_admin_ctx *ctx)
{
	strlist_clear(&ctx->tunnels);
	account_free(&ctx->a);
	free(ctx);
}

static void account_disabled(void *arg, int status, struct account *a)
{
	struct account_admin_ctx *ctx = arg;
	struct service_result res;
	result_set(&res, status_of(status), NULL);
	if (status == 0 && a->disabled) {
		/* Disabled accounts lose their live tunnel connections at once. */
		for (size_t i = 0; i < a->tunnels.n; i++)
			(void)disconnect_local(ctx->svc, a->tunnels.v[i]);
	}
	ctx->account_cb(ctx->arg, &res, status == 0 ? a : NULL);
	account_admin_free(ctx);
}

void service_account_disable(struct service *svc, const char *account_id, int disable, const char *reason,
			     service_account_cb cb, void *arg)
{
	struct account_admin_ctx *ctx = calloc(1, sizeof(*ctx));
	if (!ctx) {
		cb(arg, &oom_result, NULL);
		return;
	}
	ctx->svc = svc;
	ctx->account_cb = cb;
	ctx->arg = arg;
	account_init(&ctx->a);
	account_update(svc, account_id, disable ? ACC_DISABLE : ACC_ENABLE, NULL, reason, account_disabled, ctx);
}

static void account_delete_next(struct account_admin_ctx *ctx);

static void account_delete_record_done(void *arg, int status)
{
	struct account_admin_ctx *ctx = arg;
	struct service_result res;
	result_set(&res, status_of(status), NULL);
	ctx->done_cb(ctx->arg, &res);
	account_admin_free(ctx);
}

static void account_delete_tunnel_done(void *arg, const struct service_result *res)
{
	struct account_admin_ctx *ctx = arg;
	if (res->status != SVC_OK && res->status != SVC_NOTFOUND) {
		ctx->done_cb(ctx->arg, res);
		account_admin_free(ctx);
		return;
	}
	ctx->step++;
	account_delete_next(ctx);
}

static void account_delete_next(struct account_admin_ctx *ctx)
{
	if (ctx->step < ctx->tunnels.n) {
		service_tunnel_delete(ctx->svc, ctx->tunnels.v[ctx->step], ctx->account_id,
				      account_delete_tunnel_done, ctx);
		return;
	}
	storage_delete(ctx->svc->storage, NS_ACCOUNT, ctx->account_id, account_delete_record_done, ctx);
}

static void account_delete_read(void *arg, const struct service_result *res, struct account *a)
{
	struct account_admin_ctx *ctx = arg;
	if (res->status != SVC_OK) {
		ctx->done_cb(ctx->arg, res);
		account_admin_free(ctx);
		return;
	}
	(void)strlist_copy(&ctx->tunnels, &a->tunnels);
	account_delete_next(ctx);
}

void service_account_delete(struct service *svc, const char *account_id, service_done_cb cb, void *arg)
{
	struct account_admin_ctx *ctx = calloc(1, sizeof(*ctx));
	if (!ctx) {
		cb(arg, &oom_result);
		return;
	}
	ctx->svc = svc;
	ctx->done_cb = cb;
	ctx->arg = arg;
	account_init(&ctx->a);
	snprintf(ctx->account_id, sizeof(ctx->account_id), "%s", account_id);
	service_account_get(svc, account_id, account_delete_read, ctx);
}

/* ---- listing ---- */

struct list_ctx {
	struct service *svc;
	enum storage_ns ns;
	size_t count;
	struct strlist keys;
	service_list_cb cb;
	void *arg;
};

static void list_page(void *arg, int status, char *const *keys, size_t n, const char *next_cursor)
{
	struct list_ctx *ctx = arg;
	struct service_result res;
	if (status != 0) {
		result_set(&res, status == E_INVAL ? SVC_NOTFOUND : SVC_BACKEND, "bad cursor");
		ctx->cb(ctx->arg, &res, NULL, 0, NULL);
		goto out;
	}
	for (size_t i = 0; i < n; i++)
		(void)strlist_add(&ctx->keys, keys[i], strlen(keys[i]));
	/* Keep asking until count keys or the end (spec/storage.md §4.4). */
	if (next_cursor && ctx->keys.n < ctx->count) {
		storage_list(ctx->svc->storage, ctx->ns, next_cursor, ctx->count - ctx->keys.n, list_page, ctx);
		return;
	}
	result_set(&res, SVC_OK, NULL);
	ctx->cb(ctx->arg, &res, ctx->keys.v, ctx->keys.n, next_cursor);
out:
	strlist_clear(&ctx->keys);
	free(ctx);
}

void service_list(struct service *svc, enum storage_ns ns, const char *cursor, size_t count,
		  service_list_cb cb, void *arg)
{
	struct list_ctx *ctx = calloc(1, sizeof(*ctx));
	if (!ctx) {
		cb(arg, &oom_result, NULL, 0, NULL);
		return;
	}
	ctx->svc = svc;
	ctx->ns = ns;
	ctx->count = count;
	ctx->cb = cb;
	ctx->arg = arg;
	storage_list(svc->storage, ns, cursor, count, list_page, ctx);
}

/* ---- transport authorisation ---- */

struct authorize_ctx {
	struct service *svc;
	char tunnel_id[TUNNEL_ID_MAX + 1];
	char token[TUNNEL_TOKEN_LEN + 1];
	struct tunnel_config t;
	struct storage_lock *lock;
	service_tunnel_cb cb;
	void *arg;
	struct service_result res;
};

static void authorize_finish(void *arg, int status)
{
	struct authorize_ctx *ctx = arg;
	if (ctx->res.status == SVC_OK && status != 0)
		result_set(&ctx->res, SVC_BACKEND, err_str(status));
	ctx->cb(ctx->arg, &ctx->res, ctx->res.status == SVC_OK ? &ctx->t : NULL);
	tunnel_config_free(&ctx->t);
	free(ctx);
}

static void authorize_account_read(void *arg, const struct service_result *res, struct account *a)
{
	struct authorize_ctx *ctx = arg;
	if (res->status == SVC_BACKEND) {
		result_set(&ctx->res, SVC_BACKEND, NULL);
		storage_update_finish(ctx->lock, NULL, 0, authorize_finish, ctx);
		return;
	}
	if (res->status != SVC_OK || a->disabled) {
		result_set(&ctx->res, SVC_DENIED, res->status == SVC_OK ? "account disabled" : "no such account");
		storage_update_finish(ctx->lock, NULL, 0, authorize_finish, ctx);
		return;
	}
	/* Single use: replace the token before the connection is accepted. */
	size_t len;
	char *json = NULL;
	if (tunnel_token_generate(ctx->t.token) == 0) {
		iso_now(ctx->t.updated_at);
		json = tunnel_config_to_json(&ctx->t, &len);
	}
	if (!json) {
		result_set(&ctx->res, SVC_BACKEND, "out of memory");
		storage_update_finish(ctx->lock, NULL, 0, authorize_finish, ctx);
		return;
	}
	result_set(&ctx->res, SVC_OK, NULL);
	storage_update_finish(ctx->lock, json, len, authorize_finish, ctx);
	free(json);
}

static void authorize_locked(void *arg, int status, const char *value, size_t len, struct storage_lock *lock)
{
	struct authorize_ctx *ctx = arg;
	ctx->lock = lock;
	if (status != 0) {
		result_set(&ctx->res, status == E_NOTFOUND ? SVC_DENIED : SVC_BACKEND, "no such tunnel");
		authorize_finish(ctx, 0);
		return;
	}
	if (tunnel_config_from_json(&ctx->t, value, len) != 0) {
		result_set(&ctx->res, SVC_BACKEND, "unreadable tunnel record");
		storage_update_finish(lock, NULL, 0, authorize_finish, ctx);
		return;
	}
	size_t want = strlen(ctx->token);
	int ok = ctx->t.token[0] && strlen(ctx->t.token) == want && compat_ct_equal(ctx->t.token, ctx->token, want);
	if (!ok) {
		result_set(&ctx->res, SVC_DENIED, "bad token");
		storage_update_finish(lock, NULL, 0, authorize_finish, ctx);
		return;
	}
	service_account_auth(ctx->svc, ctx->t.account, authorize_account_read, ctx);
}

void service_tunnel_authorize(struct service *svc, const char *tunnel_id, const char *token,
			      service_tunnel_cb cb, void *arg)
{
	struct authorize_ctx *ctx = calloc(1, sizeof(*ctx));
	if (!ctx || strlen(token) > TUNNEL_TOKEN_LEN || !tunnel_id_valid(tunnel_id, strlen(tunnel_id))) {
		free(ctx);
		struct service_result res;
		result_set(&res, SVC_DENIED, "bad token");
		cb(arg, &res, NULL);
		return;
	}
	ctx->svc = svc;
	ctx->cb = cb;
	ctx->arg = arg;
	snprintf(ctx->tunnel_id, sizeof(ctx->tunnel_id), "%s", tunnel_id);
	snprintf(ctx->token, sizeof(ctx->token), "%s", token);
	tunnel_config_init(&ctx->t);
	storage_update_begin(svc->storage, NS_TUNNEL, tunnel_id, authorize_locked, ctx);
}
