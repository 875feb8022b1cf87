#include "model.h"
#include "err.h"
#include "json.h"
#include "loop.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#define MODEL_MAX_JSON_TOKENS 65536
#define MODEL_MAX_JSON_BYTES (256u << 10)

/* ---- string lists ---- */

int strlist_add(struct strlist *l, const char *s, size_t n)
{
	/* Grow geometrically: capacity is the next power of two >= n + 1. */
	if ((l->n & (l->n - 1)) == 0 || l->n == 0) {
		size_t cap = l->n ? l->n * 2 : 4;
		char **v = realloc(l->v, cap * sizeof(*v));
		if (!v)
			return E_NOMEM;
		l->v = v;
	}
	char *copy = malloc(n + 1);
	if (!copy)
		return E_NOMEM;
	memcpy(copy, s, n);
	copy[n] = '\0';
	l->v[l->n++] = copy;
	return 0;
}

int strlist_contains(const struct strlist *l, const char *s)
{
	for (size_t i = 0; i < l->n; i++)
		if (strcmp(l->v[i], s) == 0)
			return 1;
	return 0;
}

int strlist_remove(struct strlist *l, const char *s)
{
	int removed = 0;
	size_t o = 0;
	for (size_t i = 0; i < l->n; i++) {
		if (strcmp(l->v[i], s) == 0) {
			free(l->v[i]);
			removed = 1;
			continue;
		}
		l->v[o++] = l->v[i];
	}
	l->n = o;
	return removed;
}

void strlist_clear(struct strlist *l)
{
	for (size_t i = 0; i < l->n; i++)
		free(l->v[i]);
	free(l->v);
	l->v = NULL;
	l->n = 0;
}

int strlist_copy(struct strlist *dst, const struct strlist *src)
{
	strlist_clear(dst);
	for (size_t i = 0; i < src->n; i++)
		if (strlist_add(dst, src->v[i], strlen(src->v[i])) != 0)
			return E_NOMEM;
	return 0;
}

/* ---- time ---- */

void iso_time(int64_t epoch_ms, char out[ISO_TIME_LEN + 1])
{
	time_t secs = (time_t)(epoch_ms / 1000);
	struct tm tm;
	(void)gmtime_r(&secs, &tm);
	char tmp[80]; /* wide enough for any int fields; the real text is 24 */
	snprintf(tmp, sizeof(tmp), "%04d-%02d-%02dT%02d:%02d:%02d.%03dZ", tm.tm_year + 1900,
		 tm.tm_mon + 1, tm.tm_mday, tm.tm_hour, tm.tm_min, tm.tm_sec, (int)(epoch_ms % 1000));
	memcpy(out, tmp, ISO_TIME_LEN);
	out[ISO_TIME_LEN] = '\0';
}

void iso_now(char out[ISO_TIME_LEN + 1])
{
	iso_time(loop_wall_ms(), out);
}

/* ---- JSON reading helpers ---- */

struct doc {
	const char *s;
	struct json_token *t;
	int n;
};

static int doc_parse(struct doc *d, const char *json, size_t len)
{
	if (len > MODEL_MAX_JSON_BYTES)
		return E_LIMIT;
	size_t max = len / 2 + 4;
	if (max > MODEL_MAX_JSON_TOKENS)
		max = MODEL_MAX_JSON_TOKENS;
	d->s = json;
	d->t = malloc(max * sizeof(*d->t));
	if (!d->t)
		return E_NOMEM;
	d->n = json_parse(json, len, d->t, max, NULL);
	if (d->n <= 0 || d->t[0].type != JSON_OBJECT) {
		free(d->t);
		d->t = NULL;
		return E_INVAL;
	}
	return 0;
}

/* Member of object obj (a path of keys), or -1. */
static int doc_get(const struct doc *d, int obj, const char *key)
{
	if (obj < 0 || d->t[obj].type != JSON_OBJECT)
		return -1;
	return json_obj_get(d->s, d->t, obj, key);
}

static void read_bool(const struct doc *d, int tok, int *out)
{
	if (tok >= 0 && (d->t[tok].type == JSON_TRUE || d->t[tok].type == JSON_FALSE))
		*out = d->t[tok].type == JSON_TRUE;
}

static void read_fixed(const struct doc *d, int tok, char *out, size_t cap)
{
	if (tok < 0 || d->t[tok].type != JSON_STRING)
		return;
	char tmp[512];
	if (json_str_decode(d->s, &d->t[tok], tmp, sizeof(tmp)) < 0 || strlen(tmp) >= cap)
		return;
	memcpy(out, tmp, strlen(tmp) + 1);
}

static int read_str(const struct doc *d, int tok, char **out)
{
	if (tok < 0 || d->t[tok].type != JSON_STRING)
		return 0;
	char *v = json_str_dup(d->s, &d->t[tok]);
	if (!v)
		return E_NOMEM;
	free(*out);
	*out = v;
	return 0;
}

static int read_strlist(const struct doc *d, int tok, struct strlist *l)
{
	if (tok < 0 || d->t[tok].type != JSON_ARRAY)
		return 0;
	strlist_clear(l);
	int i = tok + 1;
	for (uint32_t k = 0; k < d->t[tok].size; k++) {
		if (d->t[i].type == JSON_STRING) {
			char *v = json_str_dup(d->s, &d->t[i]);
			if (!v)
				return E_NOMEM;
			int rc = strlist_add(l, v, strlen(v));
			free(v);
			if (rc)
				return rc;
		}
		i = (int)d->t[i].next;
	}
	return 0;
}

static void write_strlist(struct json_writer *w, const char *key, const struct strlist *l)
{
	jw_key(w, key);
	jw_arr_begin(w);
	for (size_t i = 0; i < l->n; i++)
		jw_str(w, l->v[i]);
	jw_arr_end(w);
}

/* ---- account ---- */

void account_init(struct account *a)
{
	memset(a, 0, sizeof(*a));
}

void account_free(struct account *a)
{
	strlist_clear(&a->tunnels);
	free(a->disabled_reason);
	a->disabled_reason = NULL;
}

static int account_read(struct account *a, const char *json, size_t len, int with_tunnels)
{
	struct doc d;
	int rc = doc_parse(&d, json, len);
	if (rc)
		return rc;
	read_fixed(&d, doc_get(&d, 0, "id"), a->id, sizeof(a->id));
	if (!a->id[0])
		read_fixed(&d, doc_get(&d, 0, "accountId"), a->id, sizeof(a->id));
	read_fixed(&d, doc_get(&d, 0, "created_at"), a->created_at, sizeof(a->created_at));
	read_fixed(&d, doc_get(&d, 0, "updated_at"), a->updated_at, sizeof(a->updated_at));
	if (with_tunnels)
		rc = read_strlist(&d, doc_get(&d, 0, "tunnels"), &a->tunnels);
	int status = doc_get(&d, 0, "status");
	read_bool(&d, doc_get(&d, status, "disabled"), &a->disabled);
	read_fixed(&d, doc_get(&d, status, "disabled_at"), a->disabled_at, sizeof(a->disabled_at));
	if (!rc)
		rc = read_str(&d, doc_get(&d, status, "disabled_reason"), &a->disabled_reason);
	free(d.t);
	return rc;
}

int account_from_json(struct account *a, const char *json, size_t len)
{
	return account_read(a, json, len, 1);
}

int account_from_json_brief(struct account *a, const char *json, size_t len)
{
	return account_read(a, json, len, 0);
}

static void write_opt_str(struct json_writer *w, const char *key, const char *v)
{
	if (v && v[0])
		jw_kv_str(w, key, v);
}

char *account_to_json(const struct account *a, size_t *len)
{
	struct json_writer w;
	json_writer_init(&w, MODEL_MAX_JSON_BYTES);
	jw_obj_begin(&w);
	jw_kv_str(&w, "accountId", a->id);
	jw_kv_str(&w, "id", a->id);
	write_opt_str(&w, "created_at", a->created_at);
	write_opt_str(&w, "updated_at", a->updated_at);
	write_strlist(&w, "tunnels", &a->tunnels);
	jw_key(&w, "status");
	jw_obj_begin(&w);
	jw_kv_bool(&w, "disabled", a->disabled);
	if (a->disabled) {
		write_opt_str(&w, "disabled_at", a->disabled_at);
		if (a->disabled_reason)
			jw_kv_str(&w, "disabled_reason", a->disabled_reason);
	}
	jw_obj_end(&w);
	jw_obj_end(&w);
	return json_writer_take(&w, len);
}

/* ---- tunnel config ---- */

void tunnel_config_init(struct tunnel_config *t)
{
	memset(t, 0, sizeof(*t));
	t->max_connections = 1;
}

void tunnel_config_free(struct tunnel_config *t)
{
	free(t->http_url);
	free(t->sni_url);
	free(t->target_url);
	strlist_clear(&t->http_urls);
	strlist_clear(&t->alt_names);
	strlist_clear(&t->sni_urls);
	t->http_url = t->sni_url = t->target_url = NULL;
}

int tunnel_config_from_json(struct tunnel_config *t, const char *json, size_t len)
{
	struct doc d;
	int rc = doc_parse(&d, json, len);
	if (rc)
		return rc;
	read_fixed(&d, doc_get(&d, 0, "id"), t->id, sizeof(t->id));
	read_fixed(&d, doc_get(&d, 0, "account"), t->account, sizeof(t->account));
	read_fixed(&d, doc_get(&d, 0, "created_at"), t->created_at, sizeof(t->created_at));
	read_fixed(&d, doc_get(&d, 0, "updated_at"), t->updated_at, sizeof(t->updated_at));
	int transport = doc_get(&d, 0, "transport");
	read_fixed(&d, doc_get(&d, transport, "token"), t->token, sizeof(t->token));
	int mc = doc_get(&d, transport, "max_connections");
	if (mc >= 0 && d.t[mc].type == JSON_NUMBER)
		(void)json_get_int(d.s, &d.t[mc], &t->max_connections);
	read_bool(&d, doc_get(&d, doc_get(&d, transport, "ws"), "enabled"), &t->ws_enabled);
	read_bool(&d, doc_get(&d, doc_get(&d, transport, "ssh"), "enabled"), &t->ssh_enabled);
	int ingress = doc_get(&d, 0, "ingress");
	int http = doc_get(&d, ingress, "http");
	read_bool(&d, doc_get(&d, http, "enabled"), &t->http_enabled);
	rc |= read_str(&d, doc_get(&d, http, "url"), &t->http_url);
	rc |= read_strlist(&d, doc_get(&d, http, "urls"), &t->http_urls);
	rc |= read_strlist(&d, doc_get(&d, http, "alt_names"), &t->alt_names);
	int sni = doc_get(&d, ingress, "sni");
	read_bool(&d, doc_get(&d, sni, "enabled"), &t->sni_enabled);
	rc |= read_str(&d, doc_get(&d, sni, "url"), &t->sni_url);
	rc |= read_strlist(&d, doc_get(&d, sni, "urls"), &t->sni_urls);
	rc |= read_str(&d, doc_get(&d, doc_get(&d, 0, "target"), "url"), &t->target_url);
	free(d.t);
	return rc ? E_NOMEM : 0;
}

char *tunnel_config_to_json(const struct tunnel_config *t, size_t *len)
{
	struct json_writer w;
	json_writer_init(&w, MODEL_MAX_JSON_BYTES);
	jw_obj_begin(&w);
	jw_key(&w, "transport");
	jw_obj_begin(&w);
	write_opt_str(&w, "token", t->token);
	jw_kv_int(&w, "max_connections", t->max_connections);
	jw_key(&w, "ws");
	jw_obj_begin(&w);
	jw_kv_bool(&w, "enabled", t->ws_enabled);
	jw_obj_end(&w);
	jw_key(&w, "ssh");
	jw_obj_begin(&w);
	jw_kv_bool(&w, "enabled", t->ssh_enabled);
	jw_obj_end(&w);
	jw_obj_end(&w);
	jw_key(&w, "ingress");
	jw_obj_begin(&w);
	jw_key(&w, "http");
	jw_obj_begin(&w);
	jw_kv_bool(&w, "enabled", t->http_enabled);
	write_opt_str(&w, "url", t->http_url);
	write_strlist(&w, "urls", &t->http_urls);
	write_strlist(&w, "alt_names", &t->alt_names);
	jw_obj_end(&w);
	jw_key(&w, "sni");
	jw_obj_begin(&w);
	jw_kv_bool(&w, "enabled", t->sni_enabled);
	write_opt_str(&w, "url", t->sni_url);
	write_strlist(&w, "urls", &t->sni_urls);
	jw_obj_end(&w);
	jw_obj_end(&w);
	jw_key(&w, "target");
	jw_obj_begin(&w);
	write_opt_str(&w, "url", t->target_url);
	jw_obj_end(&w);
	jw_kv_str(&w, "id", t->id);
	jw_kv_str(&w, "account", t->account);
	write_opt_str(&w, "created_at", t->created_at);
	write_opt_str(&w, "updated_at", t->updated_at);
	jw_obj_end(&w);
	return json_writer_take(&w, len);
}
