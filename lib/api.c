/* api.c - public REST API: accounts, tokens, tunnels (spec/api.md §2). */
#include "api.h"
#include "apiview.h"
#include "config.h"
#include "err.h"
#include "ids.h"
#include "json.h"
#include "log.h"
#include "url.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define API_MAX_SEGMENTS 8
#define API_MAX_JSON_TOKENS 2048
#define API_MAX_RESPONSE (1u << 20)

struct api {
	struct service *svc;
	char api_hostport[300]; /* --api-url host[:port], "" when unrestricted */
};

enum route {
	R_ACCOUNT_CREATE,
	R_ACCOUNT_TOKEN,
	R_TUNNEL_PUT,
	R_TUNNEL_PATCH,
	R_TUNNEL_GET,
	R_TUNNEL_DELETE,
	R_TUNNEL_DISCONNECT,
};

/* One request in flight. */
struct api_call {
	struct api *api;
	struct httpd_req *req;
	enum route route;
	char account_id[ACCOUNT_ID_LEN + 1];
	char tunnel_id[TUNNEL_ID_MAX + 1];
	struct base_url base;
	struct tunnel_patch patch;
};

/* ---- path helpers ---- */

int api_split_path(const char *path, size_t len, struct api_seg *segs, int max)
{
	int n = 0;
	size_t i = 0;
	if (len == 0 || path[0] != '/')
		return E_INVAL;
	while (i < len) {
		i++; /* skip '/' */
		size_t start = i;
		while (i < len && path[i] != '/')
			i++;
		if (i == start && i == len)
			break; /* trailing slash */
		if (n == max)
			return E_LIMIT;
		segs[n].p = path + start;
		segs[n].n = i - start;
		n++;
	}
	return n;
}

int api_seg_is(const struct api_seg *s, const char *lit)
{
	size_t n = strlen(lit);
	return s->n == n && memcmp(s->p, lit, n) == 0;
}

static int hexdigit(char c)
{
	if (c >= '0' && c <= '9')
		return c - '0';
	if (c >= 'a' && c <= 'f')
		return c - 'a' + 10;
	if (c >= 'A' && c <= 'F')
		return c - 'A' + 10;
	return -1;
}

int api_path_segment(const char *p, size_t n, char *out, size_t cap)
{
	size_t o = 0;
	for (size_t i = 0; i < n; i++) {
		char c = p[i];
		if (c == '%') {
			if (i + 2 >= n)
				return E_INVAL;
			int hi = hexdigit(p[i + 1]);
			int lo = hexdigit(p[i + 2]);
			if (hi < 0 || lo < 0)
				return E_INVAL;
			c = (char)(hi * 16 + lo);
			i += 2;
		}
		if (c == '\0' || o + 1 >= cap)
			return E_INVAL;
		out[o++] = c;
	}
	out[o] = '\0';
	return (int)o;
}

/* ---- request body (spec/api.md §2.2, §2.5) ---- */

struct body_error {
	char field[512];
};

static int body_fail(struct body_error *e, const char *fmt, const char *a)
{
	snprintf(e->field, sizeof(e->field), fmt, a);
	return E_INVAL;
}

static int is_json_content_type(const char *v, size_t n)
{
	size_t end = 0;
	while (end < n && v[end] != ';')
		end++;
	while (end > 0 && (v[end - 1] == ' ' || v[end - 1] == '\t'))
		end--;
	return http_slice_ieq(v, end, "application/json");
}

struct body_doc {
	const char *s;
	struct json_token toks[API_MAX_JSON_TOKENS];
	int n;
};

/* Boolean field: JSON true/false or the strings "true"/"false". */
static int read_flag(const struct body_doc *d, int tok, const char *path, int *has, int *out, struct body_error *e)
{
	const struct json_token *t = &d->toks[tok];
	if (t->type == JSON_TRUE || t->type == JSON_FALSE) {
		*has = 1;
		*out = t->type == JSON_TRUE;
		return 0;
	}
	if (t->type == JSON_STRING) {
		char v[8];
		if (json_str_decode(d->s, t, v, sizeof(v)) >= 0) {
			if (http_slice_ieq(v, strlen(v), "true") || http_slice_ieq(v, strlen(v), "false")) {
				*has = 1;
				*out = (v[0] | 32) == 't';
				return 0;
			}
		}
	}
	return body_fail(e, "\"%s\" must be a boolean", path);
}

/* RFC 3986 URI with a scheme: scheme ":" then only URI characters. */
static int uri_valid(const char *s)
{
	size_t i = 0;
	if (!((s[0] >= 'a' && s[0] <= 'z') || (s[0] >= 'A' && s[0] <= 'Z')))
		return 0;
	while (s[i] && s[i] != ':') {
		char c = s[i];
		if (!((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '+' ||
		      c == '-' || c == '.'))
			return 0;
		i++;
	}
	if (s[i] != ':')
		return 0;
	for (i++; s[i]; i++) {
		unsigned char c = (unsigned char)s[i];
		if (c == '%') {
			if (hexdigit(s[i + 1]) < 0 || hexdigit(s[i + 2]) < 0)
				return 0;
			i += 2;
			continue;
		}
		if ((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9'))
			continue;
		if (!strchr("-._~:/?#[]@!$&'()*+,;=", c))
			return 0;
	}
	return 1;
}

/* Alt-name domain rules of spec/api.md §2.5 (name already lower-cased). */
static int domain_valid(const char *name)
{
	size_t len = strlen(name);
	if (len == 0 || len > 256 || name[len - 1] == '.')
		return 0;
	int labels = 0;
	const char *p = name;
	while (*p) {
		const char *dot = strchr(p, '.');
		size_t n = dot ? (size_t)(dot - p) : strlen(p);
		int last = dot == NULL;
		if (n == 0 || n > 63)
			return 0;
		for (size_t i = 0; i < n; i++) {
			char c = p[i];
			int alnum = (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9');
			if (!alnum && !(c == '-' && i > 0 && i < n - 1))
				return 0;
		}
		if (last && !(p[0] >= 'a' && p[0] <= 'z'))
			return 0;
		labels++;
		p += n + (dot ? 1 : 0);
	}
	return labels >= 2;
}

static int read_alt_names(const struct body_doc *d, int tok, struct tunnel_patch *p, struct body_error *e)
{
	const struct json_token *t = &d->toks[tok];
	p->has_alt_names = 1;
	strlist_clear(&p->alt_names); /* a repeated key replaces the list */
	if (t->type == JSON_NULL)
		return 0;
	if (t->type != JSON_ARRAY)
		return body_fail(e, "\"%s\" must be an array", "ingress.http.alt_names");
	if (t->size > MODEL_MAX_ALT_NAMES)
		return body_fail(e, "\"%s\" must contain less than or equal to 10 items", "ingress.http.alt_names");
	int i = tok + 1;
	for (uint32_t k = 0; k < t->size; k++) {
		char path[64], name[300];
		snprintf(path, sizeof(path), "ingress.http.alt_names[%u]", (unsigned)k);
		if (d->toks[i].type != JSON_STRING)
			return body_fail(e, "\"%s\" must be a string", path);
		int nlen = json_str_decode(d->s, &d->toks[i], name, sizeof(name));
		if (nlen < 0 || (size_t)nlen != strlen(name))
			return body_fail(e, "\"%s\" must contain a valid domain name", path);
		for (char *c = name; *c; c++)
			if (*c >= 'A' && *c <= 'Z')
				*c = (char)(*c + 32);
		if (!domain_valid(name))
			return body_fail(e, "\"%s\" must contain a valid domain name", path);
		if (!strlist_contains(&p->alt_names, name) && strlist_add(&p->alt_names, name, strlen(name)) != 0)
			return body_fail(e, "%s", "out of memory");
		i = (int)d->toks[i].next;
	}
	return 0;
}

/* Walk the members of object tok; for each, call fn. */
typedef int (*member_fn)(const struct body_doc *d, const char *key, int val, struct tunnel_patch *p,
			 struct body_error *e);

static int each_member(const struct body_doc *d, int tok, const char *prefix, member_fn fn, struct tunnel_patch *p,
		       struct body_error *e)
{
	if (d->toks[tok].type != JSON_OBJECT)
		return body_fail(e, "\"%s\" must be of type object", prefix);
	int i = tok + 1;
	for (uint32_t k = 0; k < d->toks[tok].size; k++) {
		char key[64];
		if (json_str_decode(d->s, &d->toks[i], key, sizeof(key)) < 0)
			snprintf(key, sizeof(key), "?");
		int val = (int)d->toks[i].next;
		int rc = fn(d, key, val, p, e);
		if (rc != 0) {
			if (rc == E_NOTFOUND) {
				char path[160];
				snprintf(path, sizeof(path), "%s%s%s", prefix[0] && strcmp(prefix, "value") ? prefix : "",
					 prefix[0] && strcmp(prefix, "value") ? "." : "", key);
				return body_fail(e, "\"%s\" is not allowed", path);
			}
			return rc;
		}
		i = (int)d->toks[val].next;
	}
	return 0;
}

static int http_member(const struct body_doc *d, const char *key, int val, struct tunnel_patch *p,
		       struct body_error *e)
{
	if (strcmp(key, "enabled") == 0)
		return read_flag(d, val, "ingress.http.enabled", &p->has_http_enabled, &p->http_enabled, e);
	if (strcmp(key, "alt_names") == 0)
		return read_alt_names(d, val, p, e);
	return E_NOTFOUND;
}

static int sni_member(const struct body_doc *d, const char *key, int val, struct tunnel_patch *p,
		      struct body_error *e)
{
	if (strcmp(key, "enabled") == 0)
		return read_flag(d, val, "ingress.sni.enabled", &p->has_sni_enabled, &p->sni_enabled, e);
	return E_NOTFOUND;
}

static int ingress_member(const struct body_doc *d, const char *key, int val, struct tunnel_patch *p,
			  struct body_error *e)
{
	if (strcmp(key, "http") == 0)
		return each_member(d, val, "ingress.http", http_member, p, e);
	if (strcmp(key, "sni") == 0)
		return each_member(d, val, "ingress.sni", sni_member, p, e);
	return E_NOTFOUND;
}

static int target_member(const struct body_doc *d, const char *key, int val, struct tunnel_patch *p,
			 struct body_error *e)
{
	if (strcmp(key, "url") != 0)
		return E_NOTFOUND;
	const struct json_token *t = &d->toks[val];
	p->has_target = 1;
	/* A repeated key replaces the earlier value (JSON.parse semantics). */
	free(p->target_url);
	p->target_url = NULL;
	if (t->type == JSON_NULL)
		return 0;
	if (t->type != JSON_STRING)
		return body_fail(e, "\"%s\" must be a string", "target.url");
	size_t cap = (size_t)t->len + 1;
	char *url = malloc(cap);
	int ulen = url ? json_str_decode(d->s, t, url, cap) : -1;
	if (ulen < 0) {
		free(url);
		return body_fail(e, "%s", "out of memory");
	}
	if (ulen == 0) {
		free(url);
		return body_fail(e, "\"%s\" is not allowed to be empty", "target.url");
	}
	/* \u0000 decodes to an embedded NUL: not a URI character. */
	if ((size_t)ulen != strlen(url) || strlen(url) > URL_MAX || !uri_valid(url)) {
		free(url);
		return body_fail(e, "\"%s\" must be a valid uri", "target.url");
	}
	p->target_url = url;
	return 0;
}

static int ws_member(const struct body_doc *d, const char *key, int val, struct tunnel_patch *p,
		     struct body_error *e)
{
	if (strcmp(key, "enabled") == 0)
		return read_flag(d, val, "transport.ws.enabled", &p->has_ws_enabled, &p->ws_enabled, e);
	return E_NOTFOUND;
}

static int ssh_member(const struct body_doc *d, const char *key, int val, struct tunnel_patch *p,
		      struct body_error *e)
{
	if (strcmp(key, "enabled") == 0)
		return read_flag(d, val, "transport.ssh.enabled", &p->has_ssh_enabled, &p->ssh_enabled, e);
	return E_NOTFOUND;
}

static int transport_member(const struct body_doc *d, const char *key, int val, struct tunnel_patch *p,
			    struct body_error *e)
{
	if (strcmp(key, "ws") == 0)
		return each_member(d, val, "transport.ws", ws_member, p, e);
	if (strcmp(key, "ssh") == 0)
		return each_member(d, val, "transport.ssh", ssh_member, p, e);
	return E_NOTFOUND;
}

static int top_member(const struct body_doc *d, const char *key, int val, struct tunnel_patch *p,
		      struct body_error *e)
{
	if (strcmp(key, "ingress") == 0)
		return each_member(d, val, "ingress", ingress_member, p, e);
	if (strcmp(key, "target") == 0)
		return each_member(d, val, "target", target_member, p, e);
	if (strcmp(key, "transport") == 0)
		return each_member(d, val, "transport", transport_member, p, e);
	return E_NOTFOUND;
}

/* Check the JSON body framing and syntax (the part that runs before the
 * path check).  Returns 0 with d filled, or E_INVAL with e set. */
static int body_parse(struct httpd_req *req, struct body_doc *d, struct body_error *e)
{
	size_t n, blen;
	const char *ct = httpd_req_header(req, "content-type", &n);
	if (!ct || !is_json_content_type(ct, n) || !httpd_req_has_body(req))
		return body_fail(e, "%s", "content-type: expected json");
	const char *body = httpd_req_body(req, &blen);
	d->s = body;
	/* An empty body counts as {} (§2.2). */
	size_t ws = 0;
	while (ws < blen && (body[ws] == ' ' || body[ws] == '\t' || body[ws] == '\r' || body[ws] == '\n'))
		ws++;
	if (ws == blen) {
		d->s = "{}";
		d->n = json_parse(d->s, 2, d->toks, API_MAX_JSON_TOKENS, NULL);
		return 0;
	}
	struct json_error jerr;
	d->n = json_parse(body, blen, d->toks, API_MAX_JSON_TOKENS, &jerr);
	if (d->n < 0)
		return body_fail(e, "content-type: %s", jerr.message);
	if (d->toks[0].type != JSON_OBJECT && d->toks[0].type != JSON_ARRAY)
		return body_fail(e, "%s", "content-type: invalid JSON, only supports object and array");
	return 0;
}

static int body_schema(const struct body_doc *d, struct tunnel_patch *p, struct body_error *e)
{
	if (d->toks[0].type != JSON_OBJECT)
		return body_fail(e, "\"%s\" must be of type object", "value");
	return each_member(d, 0, "value", top_member, p, e);
}

/* ---- answers ---- */

static void call_free(struct api_call *call)
{
	tunnel_patch_free(&call->patch);
	free(call);
}

static void respond_tunnel(struct api_call *call, struct tunnel_config *t)
{
	struct json_writer w;
	json_writer_init(&w, API_MAX_RESPONSE);
	apiview_tunnel_public(&w, call->api->svc, &call->base, t);
	api_respond_writer(call->req, 200, &w);
}

static void respond_service_error(struct httpd_req *req, const struct service_result *res)
{
	switch (res->status) {
	case SVC_NOTFOUND:
		api_error(req, 404, "TUNNEL_NOT_FOUND", NULL, NULL);
		break;
	case SVC_DENIED:
		api_error(req, 403, "PERMISSION_DENIED", NULL, NULL);
		break;
	case SVC_BAD_ALTNAMES:
		api_error(req, 400, "TUNNEL_INGRESS_BAD_ALT_NAMES", NULL, res->details);
		break;
	case SVC_ADMIN_DISABLED:
		api_error(req, 500, "UNKNOWN_ERROR", NULL, res->details);
		break;
	case SVC_BACKEND:
		api_storage_error(req);
		break;
	default:
		api_error(req, 500, "UNKNOWN_ERROR", NULL, res->details[0] ? res->details : NULL);
		break;
	}
}

/* ---- account routes ---- */

static void account_created(void *arg, const struct service_result *res, struct account *a)
{
	struct api_call *call = arg;
	if (res->status == SVC_EXHAUSTED) {
		httpd_respond(call->req, 503, NULL, NULL, 0);
	} else if (res->status != SVC_OK) {
		api_storage_error(call->req);
	} else {
		char hr[ACCOUNT_ID_HR_MAX + 1];
		account_id_hr(a->id, hr, sizeof(hr));
		struct json_writer w;
		json_writer_init(&w, 1024);
		jw_obj_begin(&w);
		jw_kv_str(&w, "account_id", a->id);
		jw_kv_str(&w, "account_id_hr", hr);
		jw_obj_end(&w);
		api_respond_writer(call->req, 201, &w);
		log_info("api", "account %s created", a->id);
	}
	call_free(call);
}

static void token_account_read(void *arg, const struct service_result *res, struct account *a)
{
	struct api_call *call = arg;
	if (res->status == SVC_BACKEND) {
		api_storage_error(call->req);
	} else if (res->status != SVC_OK) {
		api_error(call->req, 403, "PERMISSION_DENIED", NULL, NULL);
	} else {
		char token[ACCOUNT_API_TOKEN_LEN + 1];
		account_api_token(a->id, token);
		struct json_writer w;
		json_writer_init(&w, 256);
		jw_obj_begin(&w);
		jw_kv_str(&w, "token", token);
		jw_obj_end(&w);
		api_respond_writer(call->req, 201, &w);
	}
	call_free(call);
}

/* ---- tunnel routes ---- */

static void tunnel_updated(void *arg, const struct service_result *res, struct tunnel_config *t)
{
	struct api_call *call = arg;
	if (res->status == SVC_OK)
		respond_tunnel(call, t);
	else
		respond_service_error(call->req, res);
	call_free(call);
}

static void tunnel_put_created(void *arg, const struct service_result *res, struct tunnel_config *t)
{
	struct api_call *call = arg;
	if (res->status != SVC_OK && res->status != SVC_EXISTS) {
		respond_service_error(call->req, res);
		call_free(call);
		return;
	}
	if (res->status == SVC_OK)
		log_info("api", "tunnel %s created by %s", call->tunnel_id, call->account_id);
	service_tunnel_update(call->api->svc, call->tunnel_id, call->account_id, &call->patch, tunnel_updated, call);
}

static void tunnel_got(void *arg, const struct service_result *res, struct tunnel_config *t)
{
	struct api_call *call = arg;
	if (res->status == SVC_OK && strcmp(t->account, call->account_id) == 0)
		respond_tunnel(call, t);
	else if (res->status == SVC_OK || res->status == SVC_NOTFOUND)
		api_error(call->req, 404, "TUNNEL_NOT_FOUND", NULL, NULL);
	else
		respond_service_error(call->req, res);
	call_free(call);
}

static void tunnel_deleted(void *arg, const struct service_result *res)
{
	struct api_call *call = arg;
	if (res->status == SVC_OK) {
		httpd_respond_status(call->req, 204);
		log_info("api", "tunnel %s deleted", call->tunnel_id);
	} else {
		respond_service_error(call->req, res);
	}
	call_free(call);
}

static void tunnel_disconnected(void *arg, const struct service_result *res, int disconnected)
{
	struct api_call *call = arg;
	if (res->status == SVC_OK) {
		struct json_writer w;
		json_writer_init(&w, 64);
		jw_obj_begin(&w);
		jw_kv_bool(&w, "result", disconnected);
		jw_obj_end(&w);
		api_respond_writer(call->req, 200, &w);
	} else {
		respond_service_error(call->req, res);
	}
	call_free(call);
}

static void authenticated(void *arg, const struct service_result *res, struct account *a)
{
	struct api_call *call = arg;
	struct service *svc = call->api->svc;
	if (res->status == SVC_BACKEND) {
		api_storage_error(call->req);
		call_free(call);
		return;
	}
	if (res->status != SVC_OK) {
		api_error(call->req, 401, "PERMISSION_DENIED", NULL, NULL);
		call_free(call);
		return;
	}
	switch (call->route) {
	case R_TUNNEL_PUT:
		service_tunnel_create(svc, call->tunnel_id, call->account_id, tunnel_put_created, call);
		break;
	case R_TUNNEL_PATCH:
		service_tunnel_update(svc, call->tunnel_id, call->account_id, &call->patch, tunnel_updated, call);
		break;
	case R_TUNNEL_GET:
		service_tunnel_get(svc, call->tunnel_id, tunnel_got, call);
		break;
	case R_TUNNEL_DELETE:
		service_tunnel_delete(svc, call->tunnel_id, call->account_id, tunnel_deleted, call);
		break;
	case R_TUNNEL_DISCONNECT:
		service_tunnel_disconnect(svc, call->tunnel_id, call->account_id, tunnel_disconnected, call);
		break;
	default:
		httpd_respond_status(call->req, 404);
		call_free(call);
		break;
	}
}

/* ---- dispatch ---- */

/* Route of the request, or -1 when the API has no such route. */
static int route_of(struct httpd_req *req, struct api_seg *segs, int *nseg)
{
	size_t plen;
	const char *path = httpd_req_path(req, &plen);
	int n = api_split_path(path, plen, segs, API_MAX_SEGMENTS);
	*nseg = n;
	if (n < 2 || !api_seg_is(&segs[0], "v1"))
		return -1;
	int get = httpd_req_method_is(req, "GET") || httpd_req_method_is(req, "HEAD");
	if (api_seg_is(&segs[1], "account")) {
		if (n == 2 && httpd_req_method_is(req, "POST"))
			return R_ACCOUNT_CREATE;
		if (n == 4 && get && api_seg_is(&segs[3], "token"))
			return R_ACCOUNT_TOKEN;
		return -1;
	}
	if (!api_seg_is(&segs[1], "tunnel"))
		return -1;
	if (n == 3) {
		if (httpd_req_method_is(req, "PUT"))
			return R_TUNNEL_PUT;
		if (httpd_req_method_is(req, "PATCH"))
			return R_TUNNEL_PATCH;
		if (get)
			return R_TUNNEL_GET;
		if (httpd_req_method_is(req, "DELETE"))
			return R_TUNNEL_DELETE;
		return -1;
	}
	if (n == 4 && httpd_req_method_is(req, "POST") && api_seg_is(&segs[3], "disconnect"))
		return R_TUNNEL_DISCONNECT;
	return -1;
}

static int api_match(struct httpd_req *req, void *arg)
{
	struct api *api = arg;
	if (httpd_req_head(req)->upgrade)
		return 0;
	if (!api->api_hostport[0])
		return 1;
	/* --api-url: only requests whose base host matches (§0.1 step 3). */
	struct base_url b;
	char hp[300];
	if (base_url_from_request(req, &b) != 0)
		return 1; /* answered 400 below */
	base_url_hostport(&b, hp, sizeof(hp));
	return strcmp(hp, api->api_hostport) == 0;
}

static long api_body_limit(struct httpd_req *req, void *arg)
{
	return API_MAX_BODY;
}

static void api_request(struct httpd_req *req, void *arg)
{
	struct api *api = arg;
	struct api_seg segs[API_MAX_SEGMENTS];
	int nseg;
	int route = route_of(req, segs, &nseg);
	if (route < 0) {
		httpd_respond_status(req, 404);
		return;
	}
	struct api_call *call = calloc(1, sizeof(*call));
	if (!call) {
		api_error(req, 500, "UNKNOWN_ERROR", NULL, "out of memory");
		return;
	}
	call->api = api;
	call->req = req;
	call->route = (enum route)route;
	if (base_url_from_request(req, &call->base) != 0) {
		httpd_respond(req, 400, NULL, NULL, 0);
		call_free(call);
		return;
	}
	struct service *svc = api->svc;
	if (route == R_ACCOUNT_CREATE) {
		if (!service_config(svc)->allow_registration) {
			httpd_respond_status(req, 404);
			call_free(call);
			return;
		}
		service_account_create(svc, account_created, call);
		return;
	}
	char seg[128];
	if (route == R_ACCOUNT_TOKEN) {
		if (api_path_segment(segs[2].p, segs[2].n, seg, sizeof(seg)) < 0 ||
		    account_id_normalize(seg, strlen(seg), call->account_id) != 0) {
			api_error(req, 403, "PERMISSION_DENIED", NULL, NULL);
			call_free(call);
			return;
		}
		service_account_get(svc, call->account_id, token_account_read, call);
		return;
	}

	/* Tunnel routes: body type, then path, then schema, then auth (§2.1, §2.2). */
	/* Token space for the body; the loop is single-threaded and the
	 * document is consumed before this function returns. */
	static struct body_doc doc;
	struct body_error berr;
	int with_body = route == R_TUNNEL_PUT || route == R_TUNNEL_PATCH;
	if (with_body && body_parse(req, &doc, &berr) != 0) {
		api_error(req, 400, "BAD_INPUT", berr.field, NULL);
		call_free(call);
		return;
	}
	int slen = api_path_segment(segs[2].p, segs[2].n, seg, sizeof(seg));
	if (slen < 0 || !tunnel_id_valid(seg, (size_t)slen)) {
		char field[256];
		snprintf(field, sizeof(field),
			 "\"tunnel_id\" with value \"%.64s\" fails to match the required pattern: "
			 "/^(?:[a-z0-9][a-z0-9-]{4,63}[a-z0-9]|[a-z0-9]{4,63})$/",
			 slen < 0 ? "" : seg);
		api_error(req, 400, "BAD_INPUT", field, NULL);
		call_free(call);
		return;
	}
	memcpy(call->tunnel_id, seg, (size_t)slen + 1);
	if (with_body && body_schema(&doc, &call->patch, &berr) != 0) {
		api_error(req, 400, "BAD_INPUT", berr.field, NULL);
		call_free(call);
		return;
	}
	size_t alen;
	const char *auth = httpd_req_header(req, "authorization", &alen);
	int rc = account_id_from_bearer(auth, auth ? alen : 0, call->account_id);
	if (rc == E_AGAIN) {
		api_error(req, 401, "AUTH_NO_TOKEN", NULL, NULL);
		call_free(call);
		return;
	}
	if (rc != 0) {
		api_error(req, 401, "PERMISSION_DENIED", NULL, NULL);
		call_free(call);
		return;
	}
	service_account_auth(svc, call->account_id, authenticated, call);
}

struct api *api_new(struct service *svc)
{
	struct api *api = calloc(1, sizeof(*api));
	if (!api)
		return NULL;
	api->svc = svc;
	const struct config *cfg = service_config(svc);
	if (cfg->api_url) {
		struct url u;
		if (url_parse(cfg->api_url, strlen(cfg->api_url), &u) == 0) {
			int port = u.port && u.port != url_default_port(u.scheme) ? u.port : 0;
			const char *l = u.ipv6 ? "[" : "", *r = u.ipv6 ? "]" : "";
			if (port)
				snprintf(api->api_hostport, sizeof(api->api_hostport), "%s%s%s:%d", l, u.host, r, port);
			else
				snprintf(api->api_hostport, sizeof(api->api_hostport), "%s%s%s", l, u.host, r);
		}
	}
	return api;
}

void api_free(struct api *api)
{
	free(api);
}

void api_component(struct api *api, struct httpd_component *c)
{
	memset(c, 0, sizeof(*c));
	c->name = "api";
	c->match = api_match;
	c->body_limit = api_body_limit;
	c->request = api_request;
	c->arg = api;
}
