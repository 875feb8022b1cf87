/* admin.c - admin interface and admin API. */
#include "admin.h"
#include "api.h"
#include "apiview.h"
#include "base64.h"
#include "compat.h"
#include "config.h"
#include "err.h"
#include "ids.h"
#include "json.h"
#include "log.h"
#include "loop.h"

#include <netdb.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#define ADMIN_MAX_BODY 4096
#define ADMIN_LIST_DEFAULT 25
#define ADMIN_LIST_MAX 100
#define ADMIN_MAX_SEGMENTS 8
#define ADMIN_MAX_RESPONSE (8u << 20)
#define ADMIN_MAX_CURSOR 512

struct admin {
	struct service *svc;
	int64_t started_ms;
	char host[300];  /* "<pid>@<hostname>" */
	char ip[64];
};

enum admin_route {
	A_ACCOUNT_CREATE,
	A_ACCOUNT_GET,
	A_ACCOUNT_LIST,
	A_ACCOUNT_DELETE,
	A_ACCOUNT_DISABLE,
	A_TUNNEL_GET,
	A_TUNNEL_DELETE,
	A_TUNNEL_DISCONNECT,
	A_TUNNEL_LIST,
	A_CLUSTER,
};

struct admin_call {
	struct admin *admin;
	struct httpd_req *req;
	enum admin_route route;
	char id[TUNNEL_ID_MAX + ACCOUNT_ID_LEN + 1];
	struct base_url base;
	int verbose;
	char *next_cursor;
};

static void call_free(struct admin_call *call)
{
	free(call->next_cursor);
	free(call);
}

/* ---- admin interface ---- */

static int interface_match(struct httpd_req *req, void *arg)
{
	size_t n;
	const char *p = httpd_req_path(req, &n);
	return (n == 5 && memcmp(p, "/ping", 5) == 0) || (n == 7 && memcmp(p, "/health", 7) == 0);
}

static long no_body(struct httpd_req *req, void *arg)
{
	return 0;
}

static void interface_request(struct httpd_req *req, void *arg)
{
	struct admin *a = arg;
	size_t n;
	const char *p = httpd_req_path(req, &n);
	int get = httpd_req_method_is(req, "GET") || httpd_req_method_is(req, "HEAD");
	int ok = service_is_ready(a->svc);
	if (n == 7) /* /health: readiness ends when shutdown starts */
		ok = ok && !service_is_draining(a->svc);
	(void)p;
	httpd_respond_status(req, get && ok ? 200 : 404);
}

void admin_interface_component(struct admin *a, struct httpd_component *c)
{
	memset(c, 0, sizeof(*c));
	c->name = "admin";
	c->match = interface_match;
	c->body_limit = no_body;
	c->request = interface_request;
	c->arg = a;
}

/* ---- admin API: auth ---- */

static int api_match(struct httpd_req *req, void *arg)
{
	size_t n;
	const char *p = httpd_req_path(req, &n);
	return n >= 9 && memcmp(p, "/v1/admin", 9) == 0 && (n == 9 || p[9] == '/');
}

static long api_body_limit(struct httpd_req *req, void *arg)
{
	return ADMIN_MAX_BODY;
}

/* 1 when the request may use the admin API, 0 for 403, -1 for 404. */
static int authorized(const struct admin *a, struct httpd_req *req)
{
	const struct config *cfg = service_config(a->svc);
	const char *key = cfg->admin_api_key;
	if (!key || !key[0])
		return cfg->admin_api_allow_access_without_key ? 1 : -1;
	size_t n;
	const char *hdr = httpd_req_header(req, "authorization", &n);
	const char *sp = hdr ? memchr(hdr, ' ', n) : NULL;
	if (!sp)
		return 0;
	size_t tlen = n - (size_t)(sp + 1 - hdr);
	if (tlen > 4096)
		return 0;
	unsigned char decoded[4096];
	size_t dlen = base64_decode_lenient(sp + 1, tlen, decoded);
	size_t klen = strlen(key);
	if (dlen != klen)
		return 0;
	return compat_ct_equal(decoded, key, klen);
}

/* ---- listing ---- */

struct list_query {
	size_t count;
	int verbose;
	char cursor[ADMIN_MAX_CURSOR + 1]; /* backend cursor, "" from the start */
};

static int query_value(const char *v, size_t n, char *out, size_t cap)
{
	return api_path_segment(v, n, out, cap);
}

/* Parse cursor/count/verbose (spec/api.md §4.3).  Returns 0 or writes the
 * validation message into field. */
static int parse_list_query(struct httpd_req *req, struct list_query *q, char *field, size_t cap)
{
	q->count = ADMIN_LIST_DEFAULT;
	q->verbose = 0;
	q->cursor[0] = '\0';
	size_t qlen;
	const char *qs = httpd_req_query(req, &qlen);
	size_t i = 0;
	while (qs && i < qlen) {
		size_t start = i;
		while (i < qlen && qs[i] != '&')
			i++;
		const char *part = qs + start;
		size_t plen = i - start;
		i++;
		if (plen == 0)
			continue;
		const char *eq = memchr(part, '=', plen);
		size_t klen = eq ? (size_t)(eq - part) : plen;
		char key[64], val[ADMIN_MAX_CURSOR + 1];
		if (query_value(part, klen, key, sizeof(key)) < 0) {
			snprintf(field, cap, "\"query\" is invalid");
			return E_INVAL;
		}
		int vl = eq ? query_value(eq + 1, plen - klen - 1, val, sizeof(val)) : 0;
		if (!eq)
			val[0] = '\0';
		if (strcmp(key, "count") == 0) {
			char *end;
			long c = vl > 0 ? strtol(val, &end, 10) : 0;
			if (vl <= 0 || *end) {
				snprintf(field, cap, "\"count\" must be a number");
				return E_INVAL;
			}
			if (c < 1) {
				snprintf(field, cap, "\"count\" must be greater than or equal to 1");
				return E_INVAL;
			}
			if (c > ADMIN_LIST_MAX) {
				snprintf(field, cap, "\"count\" must be less than or equal to 100");
				return E_INVAL;
			}
			q->count = (size_t)c;
		} else if (strcmp(key, "verbose") == 0) {
			if (vl >= 0 && strcmp(val, "true") == 0) {
				q->verbose = 1;
			} else if (vl >= 0 && strcmp(val, "false") == 0) {
				q->verbose = 0;
			} else {
				snprintf(field, cap, "\"verbose\" must be a boolean");
				return E_INVAL;
			}
		} else if (strcmp(key, "cursor") == 0) {
			if (vl < 0) {
				snprintf(field, cap, "\"cursor\" is invalid");
				return E_INVAL;
			}
			if (vl == 0 || strcmp(val, "0") == 0) {
				q->cursor[0] = '\0';
				continue;
			}
			long dl = base64url_decode_strict(val, (size_t)vl, (unsigned char *)q->cursor);
			if (dl <= 0 || memchr(q->cursor, '\0', (size_t)dl)) {
				snprintf(field, cap, "\"cursor\" is invalid");
				return E_INVAL;
			}
			q->cursor[dl] = '\0';
		} else {
			snprintf(field, cap, "\"%.40s\" is not allowed", key);
			return E_INVAL;
		}
	}
	return 0;
}

static void write_cursor(struct json_writer *w, const char *next)
{
	jw_key(w, "cursor");
	if (!next) {
		jw_null(w);
		return;
	}
	char enc[BASE64_ENCODED_LEN(ADMIN_MAX_CURSOR) + 1];
	size_t n = strlen(next);
	if (n > ADMIN_MAX_CURSOR) {
		jw_null(w);
		return;
	}
	base64url_encode(next, n, enc);
	jw_str(w, enc);
}

static void list_values(void *arg, int status, char *const *values, size_t n);

static void list_keys(void *arg, const struct service_result *res, char *const *keys, size_t n, const char *cursor)
{
	struct admin_call *call = arg;
	if (res->status == SVC_NOTFOUND) {
		api_error(call->req, 400, "BAD_INPUT", "\"cursor\" is invalid", NULL);
		call_free(call);
		return;
	}
	if (res->status != SVC_OK) {
		api_storage_error(call->req);
		call_free(call);
		return;
	}
	int tunnels = call->route == A_TUNNEL_LIST;
	if (call->verbose && n > 0) {
		call->next_cursor = cursor ? strdup(cursor) : NULL;
		storage_get_multi(service_storage(call->admin->svc), tunnels ? NS_TUNNEL : NS_ACCOUNT,
				  (const char *const *)keys, n, list_values, call);
		return;
	}
	struct json_writer w;
	json_writer_init(&w, ADMIN_MAX_RESPONSE);
	jw_obj_begin(&w);
	write_cursor(&w, cursor);
	jw_key(&w, tunnels ? "tunnels" : "accounts");
	jw_arr_begin(&w);
	for (size_t i = 0; i < n; i++) {
		if (tunnels) {
			jw_str(&w, keys[i]);
			continue;
		}
		/* Reference placeholder shape for non-verbose account lists. */
		jw_obj_begin(&w);
		jw_kv_str(&w, "accountId", keys[i]);
		jw_kv_str(&w, "id", keys[i]);
		jw_key(&w, "tunnels");
		jw_arr_begin(&w);
		jw_arr_end(&w);
		jw_key(&w, "status");
		jw_obj_begin(&w);
		jw_kv_bool(&w, "disabled", 0);
		jw_obj_end(&w);
		jw_obj_end(&w);
	}
	jw_arr_end(&w);
	jw_obj_end(&w);
	api_respond_writer(call->req, 200, &w);
	call_free(call);
}

static void list_values(void *arg, int status, char *const *values, size_t n)
{
	struct admin_call *call = arg;
	if (status != 0) {
		api_storage_error(call->req);
		call_free(call);
		return;
	}
	int tunnels = call->route == A_TUNNEL_LIST;
	struct json_writer w;
	json_writer_init(&w, ADMIN_MAX_RESPONSE);
	jw_obj_begin(&w);
	write_cursor(&w, call->next_cursor);
	jw_key(&w, tunnels ? "tunnels" : "accounts");
	jw_arr_begin(&w);
	for (size_t i = 0; i < n; i++) {
		if (!values[i])
			continue; /* deleted between the two reads */
		if (tunnels) {
			struct tunnel_config t;
			tunnel_config_init(&t);
			if (tunnel_config_from_json(&t, values[i], strlen(values[i])) == 0)
				apiview_tunnel_admin(&w, call->admin->svc, &call->base, &t);
			tunnel_config_free(&t);
			continue;
		}
		struct account a;
		account_init(&a);
		if (account_from_json(&a, values[i], strlen(values[i])) == 0) {
			size_t len;
			char *json = account_to_json(&a, &len);
			if (json)
				jw_raw(&w, json, len);
			free(json);
		}
		account_free(&a);
	}
	jw_arr_end(&w);
	jw_obj_end(&w);
	api_respond_writer(call->req, 200, &w);
	call_free(call);
}

/* ---- account and tunnel routes ---- */

static void respond_account(struct admin_call *call, int status, const struct account *a)
{
	struct json_writer w;
	json_writer_init(&w, ADMIN_MAX_RESPONSE);
	apiview_account_full(&w, a);
	api_respond_writer(call->req, status, &w);
}

static void respond_empty_404(struct httpd_req *req)
{
	httpd_respond_json(req, 404, "{}", 2);
}

static void account_created(void *arg, const struct service_result *res, struct account *a)
{
	struct admin_call *call = arg;
	if (res->status == SVC_OK)
		respond_account(call, 201, a);
	else if (res->status == SVC_EXHAUSTED)
		httpd_respond(call->req, 503, NULL, NULL, 0);
	else
		api_storage_error(call->req);
	call_free(call);
}

static void account_read(void *arg, const struct service_result *res, struct account *a)
{
	struct admin_call *call = arg;
	if (res->status == SVC_OK)
		respond_account(call, 200, a);
	else if (res->status == SVC_NOTFOUND)
		respond_empty_404(call->req);
	else
		api_storage_error(call->req);
	call_free(call);
}

static void account_deleted(void *arg, const struct service_result *res)
{
	struct admin_call *call = arg;
	if (res->status == SVC_OK)
		httpd_respond_status(call->req, 204);
	else if (res->status == SVC_NOTFOUND)
		respond_empty_404(call->req);
	else
		api_storage_error(call->req);
	call_free(call);
}

static void tunnel_read(void *arg, const struct service_result *res, struct tunnel_config *t)
{
	struct admin_call *call = arg;
	if (res->status == SVC_OK) {
		struct json_writer w;
		json_writer_init(&w, ADMIN_MAX_RESPONSE);
		apiview_tunnel_admin(&w, call->admin->svc, &call->base, t);
		api_respond_writer(call->req, 200, &w);
	} else if (res->status == SVC_NOTFOUND) {
		api_error(call->req, 404, "TUNNEL_NOT_FOUND", NULL, NULL);
	} else {
		api_storage_error(call->req);
	}
	call_free(call);
}

static void tunnel_deleted(void *arg, const struct service_result *res)
{
	struct admin_call *call = arg;
	if (res->status == SVC_OK)
		httpd_respond_status(call->req, 204);
	else if (res->status == SVC_NOTFOUND)
		api_error(call->req, 404, "TUNNEL_NOT_FOUND", NULL, NULL);
	else
		api_storage_error(call->req);
	call_free(call);
}

static void tunnel_disconnected(void *arg, const struct service_result *res, int disconnected)
{
	struct admin_call *call = arg;
	if (res->status == SVC_OK) {
		httpd_respond_json(call->req, 200, disconnected ? "{\"result\":true}" : "{\"result\":false}",
				   disconnected ? 15 : 16);
	} else if (res->status == SVC_NOTFOUND) {
		api_error(call->req, 404, "TUNNEL_NOT_FOUND", NULL, NULL);
	} else {
		api_storage_error(call->req);
	}
	call_free(call);
}

static void cluster_view(struct admin_call *call)
{
	struct admin *a = call->admin;
	/* Single node: this process is the only member. */
	int64_t now = loop_wall_ms();
	char iso[ISO_TIME_LEN + 1];
	iso_time(now, iso);
	struct json_writer w;
	json_writer_init(&w, 4096);
	jw_obj_begin(&w);
	jw_key(&w, "nodes");
	jw_arr_begin(&w);
	jw_obj_begin(&w);
	jw_kv_str(&w, "node_id", service_node_id(a->svc));
	jw_kv_str(&w, "host", a->host);
	jw_kv_str(&w, "ip", a->ip);
	jw_kv_str(&w, "alive_at", iso);
	jw_kv_int(&w, "alive_age", 0);
	jw_kv_bool(&w, "is_stale", 0);
	jw_obj_end(&w);
	jw_arr_end(&w);
	jw_obj_end(&w);
	api_respond_writer(call->req, 200, &w);
	call_free(call);
}

/* Length of UTF-8 text in UTF-16 code units, as JavaScript (and the
 * reference's validator) counts string length. */
static size_t utf16_length(const char *s)
{
	size_t n = 0;
	for (const unsigned char *p = (const unsigned char *)s; *p; p++) {
		if ((*p & 0xC0) != 0x80)
			n++;
		if (*p >= 0xF0)
			n++; /* outside the BMP: a surrogate pair */
	}
	return n;
}

/* PUT .../disable body: {"disable": bool, "reason": string <= 256}. */
static int parse_disable(struct httpd_req *req, int *disable, char *reason, size_t cap, char *field, size_t fcap)
{
	size_t n, blen;
	const char *ct = httpd_req_header(req, "content-type", &n);
	if (!ct || !httpd_req_has_body(req) || !(http_slice_ieq(ct, n, "application/json") ||
						 (n > 16 && http_slice_ieq(ct, 16, "application/json") && ct[16] == ';'))) {
		snprintf(field, fcap, "content-type: expected json");
		return E_INVAL;
	}
	const char *body = httpd_req_body(req, &blen);
	struct json_token toks[64];
	struct json_error jerr;
	int nt = json_parse(body, blen, toks, 64, &jerr);
	if (nt < 0) {
		snprintf(field, fcap, "content-type: %s", jerr.message);
		return E_INVAL;
	}
	if (toks[0].type != JSON_OBJECT) {
		snprintf(field, fcap, "\"value\" must be of type object");
		return E_INVAL;
	}
	int has_disable = 0;
	reason[0] = '\0';
	int i = 1;
	for (uint32_t k = 0; k < toks[0].size; k++) {
		int v = (int)toks[i].next;
		if (json_str_eq(body, &toks[i], "disable")) {
			if (toks[v].type != JSON_TRUE && toks[v].type != JSON_FALSE) {
				snprintf(field, fcap, "\"disable\" must be a boolean");
				return E_INVAL;
			}
			has_disable = 1;
			*disable = toks[v].type == JSON_TRUE;
		} else if (json_str_eq(body, &toks[i], "reason")) {
			int rlen = toks[v].type == JSON_STRING ? json_str_decode(body, &toks[v], reason, cap) : -1;
			if (rlen < 0 || (size_t)rlen != strlen(reason) || utf16_length(reason) > MODEL_MAX_REASON) {
				snprintf(field, fcap, "\"reason\" must be a string of at most 256 characters");
				return E_INVAL;
			}
		} else {
			char key[64];
			if (json_str_decode(body, &toks[i], key, sizeof(key)) < 0)
				snprintf(key, sizeof(key), "?");
			snprintf(field, fcap, "\"%s\" is not allowed", key);
			return E_INVAL;
		}
		i = (int)toks[v].next;
	}
	if (!has_disable) {
		snprintf(field, fcap, "\"disable\" is required");
		return E_INVAL;
	}
	return 0;
}

static int admin_route_of(struct httpd_req *req, struct api_seg *segs, int *nseg)
{
	size_t plen;
	const char *path = httpd_req_path(req, &plen);
	int n = api_split_path(path, plen, segs, ADMIN_MAX_SEGMENTS);
	*nseg = n;
	if (n < 3)
		return -1;
	int get = httpd_req_method_is(req, "GET") || httpd_req_method_is(req, "HEAD");
	int del = httpd_req_method_is(req, "DELETE");
	if (api_seg_is(&segs[2], "cluster"))
		return n == 3 && get ? A_CLUSTER : -1;
	if (api_seg_is(&segs[2], "account")) {
		if (n == 3)
			return httpd_req_method_is(req, "POST") ? A_ACCOUNT_CREATE : get ? A_ACCOUNT_LIST : -1;
		if (n == 4)
			return get ? A_ACCOUNT_GET : del ? A_ACCOUNT_DELETE : -1;
		if (n == 5 && api_seg_is(&segs[4], "disable") && httpd_req_method_is(req, "PUT"))
			return A_ACCOUNT_DISABLE;
		return -1;
	}
	if (api_seg_is(&segs[2], "tunnel")) {
		if (n == 3)
			return get ? A_TUNNEL_LIST : -1;
		if (n == 4)
			return get ? A_TUNNEL_GET : del ? A_TUNNEL_DELETE : -1;
		if (n == 5 && api_seg_is(&segs[4], "disconnect") && httpd_req_method_is(req, "POST"))
			return A_TUNNEL_DISCONNECT;
	}
	return -1;
}

/* Normalized account id of segment 3, or 404 {} answered. */
static int account_param(struct admin_call *call, const struct api_seg *seg)
{
	char raw[128];
	int n = api_path_segment(seg->p, seg->n, raw, sizeof(raw));
	if (n < 0 || account_id_normalize(raw, (size_t)n, call->id) != 0)
		return E_INVAL;
	return 0;
}

static int tunnel_param(struct admin_call *call, const struct api_seg *seg)
{
	char raw[128];
	int n = api_path_segment(seg->p, seg->n, raw, sizeof(raw));
	if (n < 0 || !tunnel_id_valid(raw, (size_t)n))
		return E_INVAL;
	memcpy(call->id, raw, (size_t)n + 1);
	return 0;
}

static void admin_api_request(struct httpd_req *req, void *arg)
{
	struct admin *a = arg;
	int auth = authorized(a, req);
	if (auth < 0) {
		httpd_respond_status(req, 404);
		return;
	}
	if (auth == 0) {
		httpd_respond_status(req, 403);
		return;
	}
	struct api_seg segs[ADMIN_MAX_SEGMENTS];
	int nseg;
	int route = admin_route_of(req, segs, &nseg);
	if (route < 0) {
		httpd_respond_status(req, 404);
		return;
	}
	struct admin_call *call = calloc(1, sizeof(*call));
	if (!call) {
		api_error(req, 500, "UNKNOWN_ERROR", NULL, "out of memory");
		return;
	}
	call->admin = a;
	call->req = req;
	call->route = (enum admin_route)route;
	if (base_url_from_request(req, &call->base) != 0) {
		httpd_respond(req, 400, NULL, NULL, 0);
		call_free(call);
		return;
	}
	struct service *svc = a->svc;
	char field[256];
	struct list_query q;
	switch (call->route) {
	case A_CLUSTER:
		cluster_view(call);
		return;
	case A_ACCOUNT_CREATE:
		service_account_create(svc, account_created, call);
		return;
	case A_ACCOUNT_LIST:
	case A_TUNNEL_LIST:
		if (parse_list_query(req, &q, field, sizeof(field)) != 0) {
			api_error(req, 400, "BAD_INPUT", field, NULL);
			call_free(call);
			return;
		}
		call->verbose = q.verbose;
		service_list(svc, call->route == A_TUNNEL_LIST ? NS_TUNNEL : NS_ACCOUNT, q.cursor[0] ? q.cursor : NULL,
			     q.count, list_keys, call);
		return;
	case A_ACCOUNT_GET:
	case A_ACCOUNT_DELETE:
	case A_ACCOUNT_DISABLE:
		if (account_param(call, &segs[3]) != 0) {
			respond_empty_404(req);
			call_free(call);
			return;
		}
		if (call->route == A_ACCOUNT_GET) {
			service_account_get(svc, call->id, account_read, call);
		} else if (call->route == A_ACCOUNT_DELETE) {
			service_account_delete(svc, call->id, account_deleted, call);
		} else {
			int disable = 0;
			char reason[MODEL_MAX_REASON * 4 + 1];
			if (parse_disable(req, &disable, reason, sizeof(reason), field, sizeof(field)) != 0) {
				api_error(req, 400, "BAD_INPUT", field, NULL);
				call_free(call);
				return;
			}
			service_account_disable(svc, call->id, disable, reason[0] ? reason : NULL, account_read, call);
		}
		return;
	case A_TUNNEL_GET:
	case A_TUNNEL_DELETE:
	case A_TUNNEL_DISCONNECT:
		if (tunnel_param(call, &segs[3]) != 0) {
			api_error(req, 404, "TUNNEL_NOT_FOUND", NULL, NULL);
			call_free(call);
			return;
		}
		if (call->route == A_TUNNEL_GET)
			service_tunnel_get(svc, call->id, tunnel_read, call);
		else if (call->route == A_TUNNEL_DELETE)
			service_tunnel_delete(svc, call->id, NULL, tunnel_deleted, call);
		else
			service_tunnel_disconnect(svc, call->id, NULL, tunnel_disconnected, call);
		return;
	}
}

void admin_api_component(struct admin *a, struct httpd_component *c)
{
	memset(c, 0, sizeof(*c));
	c->name = "admin-api";
	c->match = api_match;
	c->body_limit = api_body_limit;
	c->request = admin_api_request;
	c->arg = a;
}

/* The node's advertised address: --cluster-node-ip, else the host name's
 * first address, else loopback. */
static void node_ip(const struct config *cfg, char *out, size_t cap)
{
	snprintf(out, cap, "127.0.0.1");
	if (cfg->cluster_node_ip) {
		snprintf(out, cap, "%s", cfg->cluster_node_ip);
		return;
	}
	char host[256];
	if (gethostname(host, sizeof(host) - 1) != 0)
		return;
	host[sizeof(host) - 1] = '\0';
	struct addrinfo hints, *res;
	memset(&hints, 0, sizeof(hints));
	hints.ai_family = AF_INET;
	if (getaddrinfo(host, NULL, &hints, &res) != 0)
		return;
	if (res)
		(void)getnameinfo(res->ai_addr, res->ai_addrlen, out, (socklen_t)cap, NULL, 0, NI_NUMERICHOST);
	freeaddrinfo(res);
}

struct admin *admin_new(struct service *svc)
{
	struct admin *a = calloc(1, sizeof(*a));
	if (!a)
		return NULL;
	a->svc = svc;
	a->started_ms = loop_wall_ms();
	char host[256];
	if (gethostname(host, sizeof(host) - 1) != 0)
		snprintf(host, sizeof(host), "localhost");
	host[sizeof(host) - 1] = '\0';
	snprintf(a->host, sizeof(a->host), "%ld@%s", (long)getpid(), host);
	node_ip(service_config(svc), a->ip, sizeof(a->ip));
	return a;
}

void admin_free(struct admin *a)
{
	free(a);
}
