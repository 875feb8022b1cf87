#include "apiview.h"
#include "config.h"
#include "err.h"
#include "httpd.h"
#include "log.h"
#include "url.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define APIVIEW_MAX_JSON (1u << 20)

static char ssh_fingerprint[128];

void apiview_set_ssh_fingerprint(const char *fp)
{
	snprintf(ssh_fingerprint, sizeof(ssh_fingerprint), "%s", fp ? fp : "");
}

/* ---- base URL ---- */

struct slice {
	const char *p;
	size_t n;
};

static void trim(struct slice *s)
{
	while (s->n && (s->p[0] == ' ' || s->p[0] == '\t')) {
		s->p++;
		s->n--;
	}
	while (s->n && (s->p[s->n - 1] == ' ' || s->p[s->n - 1] == '\t'))
		s->n--;
}

static void unquote(struct slice *s)
{
	if (s->n >= 2 && s->p[0] == '"' && s->p[s->n - 1] == '"') {
		s->p++;
		s->n -= 2;
	}
}

/* First element of a comma list. */
static struct slice first_element(const char *v, size_t n)
{
	struct slice s = {v, n};
	const char *comma = memchr(v, ',', n);
	if (comma)
		s.n = (size_t)(comma - v);
	trim(&s);
	return s;
}

/* Parameter name=value of the first element of a Forwarded header. */
static int forwarded_param(const char *v, size_t n, const char *name, struct slice *out)
{
	struct slice el = first_element(v, n);
	size_t i = 0;
	while (i < el.n) {
		size_t start = i;
		while (i < el.n && el.p[i] != ';')
			i++;
		struct slice part = {el.p + start, i - start};
		i++;
		trim(&part);
		const char *eq = memchr(part.p, '=', part.n);
		if (!eq)
			continue;
		struct slice key = {part.p, (size_t)(eq - part.p)};
		trim(&key);
		if (!http_slice_ieq(key.p, key.n, name))
			continue;
		struct slice val = {eq + 1, part.n - key.n - 1};
		trim(&val);
		unquote(&val);
		*out = val;
		return 1;
	}
	return 0;
}

static int host_char_ok(char c)
{
	return (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '-' || c == '.' || c == '_';
}

static int parse_port(const char *p, size_t n, int *port)
{
	if (n == 0 || n > 5)
		return E_INVAL;
	int v = 0;
	for (size_t i = 0; i < n; i++) {
		if (p[i] < '0' || p[i] > '9')
			return E_INVAL;
		v = v * 10 + (p[i] - '0');
	}
	if (v < 1 || v > 65535)
		return E_INVAL;
	*port = v;
	return 0;
}

/* Split "host[:port]" / "[v6]:port" into b->host and *port (0 if none). */
static int split_hostport(struct slice s, struct base_url *b, int *port)
{
	*port = 0;
	if (s.n == 0)
		return E_INVAL;
	const char *host = s.p;
	size_t hlen = s.n;
	if (s.p[0] == '[') {
		const char *close = memchr(s.p, ']', s.n);
		if (!close)
			return E_INVAL;
		host = s.p + 1;
		hlen = (size_t)(close - s.p - 1);
		size_t rest = s.n - (size_t)(close - s.p) - 1;
		if (rest > 0 && (close[1] != ':' || parse_port(close + 2, rest - 1, port) != 0))
			return E_INVAL;
		b->ipv6 = 1;
	} else {
		const char *colon = memchr(s.p, ':', s.n);
		if (colon) {
			hlen = (size_t)(colon - s.p);
			if (parse_port(colon + 1, s.n - hlen - 1, port) != 0)
				return E_INVAL;
		}
	}
	if (hlen == 0 || hlen >= sizeof(b->host))
		return E_INVAL;
	for (size_t i = 0; i < hlen; i++) {
		char c = host[i];
		if (c >= 'A' && c <= 'Z')
			c = (char)(c + 32);
		if (!(b->ipv6 ? (host_char_ok(c) || c == ':') : host_char_ok(c)))
			return E_INVAL;
		b->host[i] = c;
	}
	b->host[hlen] = '\0';
	return 0;
}

int base_url_from_request(const struct httpd_req *req, struct base_url *b)
{
	memset(b, 0, sizeof(*b));
	size_t fn = 0, n;
	const char *fwd = httpd_req_header(req, "forwarded", &fn);
	struct slice proto = {"http", 4}, hostv = {NULL, 0}, fwd_host;
	const char *v;
	if (fwd && forwarded_param(fwd, fn, "proto", &proto)) {
		/* taken from Forwarded */
	} else if ((v = httpd_req_header(req, "x-forwarded-proto", &n))) {
		proto = first_element(v, n);
	} else if ((v = httpd_req_header(req, "x-scheme", &n))) {
		proto = first_element(v, n);
	}
	if (proto.n == 0 || proto.n >= sizeof(b->proto))
		return E_INVAL;
	for (size_t i = 0; i < proto.n; i++) {
		char c = proto.p[i];
		if (c >= 'A' && c <= 'Z')
			c = (char)(c + 32);
		if (!((c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '+' || c == '-' || c == '.'))
			return E_INVAL;
		b->proto[i] = c;
	}
	int from_forwarded = fwd && forwarded_param(fwd, fn, "host", &fwd_host);
	if (from_forwarded) {
		hostv = fwd_host;
	} else if ((v = httpd_req_header(req, "host", &n))) {
		hostv.p = v;
		hostv.n = n;
	}
	int port = 0;
	if (!hostv.p || split_hostport(hostv, b, &port) != 0)
		return E_INVAL;
	if (!(from_forwarded && port) && (v = httpd_req_header(req, "x-forwarded-port", &n))) {
		struct slice ps = first_element(v, n);
		if (parse_port(ps.p, ps.n, &port) != 0)
			return E_INVAL;
	}
	if (port == url_default_port(b->proto))
		port = 0;
	b->port = port;
	return 0;
}

void base_url_hostport(const struct base_url *b, char *out, size_t cap)
{
	const char *l = b->ipv6 ? "[" : "", *r = b->ipv6 ? "]" : "";
	if (b->port)
		snprintf(out, cap, "%s%s%s:%d", l, b->host, r, b->port);
	else
		snprintf(out, cap, "%s%s%s", l, b->host, r);
}

/* ---- views ---- */

static void write_strlist(struct json_writer *w, const char *key, const struct strlist *l)
{
	jw_key(w, key);
	jw_arr_begin(w);
	for (size_t i = 0; i < l->n; i++)
		jw_str(w, l->v[i]);
	jw_arr_end(w);
}

static void write_transport_ws(struct json_writer *w, const struct base_url *b, const struct tunnel_config *t)
{
	char hp[300], url[600];
	base_url_hostport(b, hp, sizeof(hp));
	int secure = strcmp(b->proto, "https") == 0;
	snprintf(url, sizeof(url), "%s://%s/v1/tunnel/%s/ws-endpoint?t=%s", secure ? "wss" : "ws", hp, t->id, t->token);
	jw_key(w, "ws");
	jw_obj_begin(w);
	jw_kv_bool(w, "enabled", t->ws_enabled);
	jw_kv_str(w, "url", url);
	jw_obj_end(w);
}

static void write_transport_ssh(struct json_writer *w, const struct config *cfg, const struct base_url *b,
				const struct tunnel_config *t)
{
	const char *host = cfg->transport_ssh_host_name ? cfg->transport_ssh_host_name : b->host;
	int port = cfg->transport_ssh_host_port ? cfg->transport_ssh_host_port : cfg->transport_ssh_port;
	int v6 = strchr(host, ':') != NULL;
	char url[800];
	snprintf(url, sizeof(url), "ssh://%s:%s@%s%s%s:%d", t->id, t->token, v6 ? "[" : "", host, v6 ? "]" : "", port);
	jw_key(w, "ssh");
	jw_obj_begin(w);
	jw_kv_bool(w, "enabled", t->ssh_enabled);
	jw_kv_str(w, "host", host);
	jw_kv_int(w, "port", port);
	jw_kv_str(w, "username", t->id);
	jw_kv_str(w, "password", t->token);
	jw_kv_str(w, "url", url);
	if (ssh_fingerprint[0])
		jw_kv_str(w, "fingerprint", ssh_fingerprint);
	jw_obj_end(w);
}

static void write_transports(struct json_writer *w, const struct service *svc, const struct base_url *b,
			     const struct tunnel_config *t)
{
	const struct config *cfg = service_config(svc);
	if (cfg->transport_mask & CONFIG_TRANSPORT_WS)
		write_transport_ws(w, b, t);
	if (cfg->transport_mask & CONFIG_TRANSPORT_SSH)
		write_transport_ssh(w, cfg, b, t);
}

static void write_http_ingress(struct json_writer *w, const struct tunnel_config *t)
{
	jw_kv_bool(w, "enabled", t->http_enabled);
	if (t->http_url)
		jw_kv_str(w, "url", t->http_url);
	write_strlist(w, "urls", &t->http_urls);
	write_strlist(w, "alt_names", &t->alt_names);
}

static void write_sni_ingress(struct json_writer *w, const struct tunnel_config *t)
{
	jw_kv_bool(w, "enabled", t->sni_enabled);
	if (t->sni_url)
		jw_kv_str(w, "url", t->sni_url);
	write_strlist(w, "urls", &t->sni_urls);
}

static void write_target(struct json_writer *w, const struct tunnel_config *t)
{
	jw_key(w, "target");
	jw_obj_begin(w);
	if (t->target_url)
		jw_kv_str(w, "url", t->target_url);
	jw_obj_end(w);
}

void apiview_tunnel_public(struct json_writer *w, const struct service *svc, const struct base_url *b,
			   const struct tunnel_config *t)
{
	struct tunnel_state st;
	service_tunnel_state((struct service *)svc, t->id, &st);
	jw_obj_begin(w);
	jw_kv_str(w, "id", t->id);
	jw_key(w, "connection");
	jw_obj_begin(w);
	jw_kv_bool(w, "connected", st.connected);
	jw_kv_int(w, "connections", st.alive_connections);
	if (st.connected_at)
		jw_kv_int(w, "connected_at", st.connected_at);
	if (st.disconnected_at)
		jw_kv_int(w, "disconnected_at", st.disconnected_at);
	if (st.alive_at)
		jw_kv_int(w, "alive_at", st.alive_at);
	jw_obj_end(w);
	jw_key(w, "transport");
	jw_obj_begin(w);
	jw_kv_int(w, "max_connections", service_config(svc)->transport_max_connections);
	write_transports(w, svc, b, t);
	jw_obj_end(w);
	jw_key(w, "ingress");
	jw_obj_begin(w);
	jw_key(w, "http");
	jw_obj_begin(w);
	if (t->http_enabled)
		write_http_ingress(w, t);
	jw_obj_end(w);
	jw_key(w, "sni");
	jw_obj_begin(w);
	if (t->sni_enabled)
		write_sni_ingress(w, t);
	jw_obj_end(w);
	jw_obj_end(w);
	write_target(w, t);
	if (t->created_at[0])
		jw_kv_str(w, "created_at", t->created_at);
	jw_obj_end(w);
	tunnel_state_free(&st);
}

static void write_iso(struct json_writer *w, const char *key, int64_t ms)
{
	if (!ms)
		return;
	char iso[ISO_TIME_LEN + 1];
	iso_time(ms, iso);
	jw_kv_str(w, key, iso);
}

void apiview_tunnel_admin(struct json_writer *w, const struct service *svc, const struct base_url *b,
			  const struct tunnel_config *t)
{
	struct tunnel_state st;
	service_tunnel_state((struct service *)svc, t->id, &st);
	jw_obj_begin(w);
	jw_kv_str(w, "tunnel_id", t->id);
	jw_kv_str(w, "account_id", t->account);
	jw_key(w, "connection");
	jw_obj_begin(w);
	jw_kv_bool(w, "connected", st.connected);
	write_iso(w, "connected_at", st.connected_at);
	write_iso(w, "disconnected_at", st.disconnected_at);
	write_iso(w, "alive_at", st.alive_at);
	jw_obj_end(w);
	jw_key(w, "connections");
	jw_arr_begin(w);
	for (size_t i = 0; i < st.nconns; i++) {
		const struct tunnel_connection_info *c = &st.conns[i];
		jw_obj_begin(w);
		jw_kv_str(w, "connection_id", c->connection_id);
		jw_kv_str(w, "node_id", c->node);
		jw_kv_str(w, "peer", c->peer);
		jw_kv_bool(w, "connected", c->connected);
		write_iso(w, "connected_at", c->connected_at);
		write_iso(w, "disconnected_at", c->disconnected_at);
		write_iso(w, "alive_at", c->alive_at);
		jw_obj_end(w);
	}
	jw_arr_end(w);
	jw_key(w, "transport");
	jw_obj_begin(w);
	if (t->token[0])
		jw_kv_str(w, "token", t->token);
	jw_kv_int(w, "max_connections", service_config(svc)->transport_max_connections);
	write_transports(w, svc, b, t);
	jw_obj_end(w);
	jw_key(w, "ingress");
	jw_obj_begin(w);
	jw_key(w, "http");
	jw_obj_begin(w);
	write_http_ingress(w, t);
	jw_obj_end(w);
	jw_key(w, "sni");
	jw_obj_begin(w);
	write_sni_ingress(w, t);
	jw_obj_end(w);
	jw_obj_end(w);
	write_target(w, t);
	if (t->created_at[0])
		jw_kv_str(w, "created_at", t->created_at);
	if (t->updated_at[0])
		jw_kv_str(w, "updated_at", t->updated_at);
	jw_obj_end(w);
	tunnel_state_free(&st);
}

void apiview_account_full(struct json_writer *w, const struct account *a)
{
	char hr[ACCOUNT_ID_HR_MAX + 1];
	account_id_hr(a->id, hr, sizeof(hr));
	jw_obj_begin(w);
	jw_kv_str(w, "account_id", a->id);
	jw_kv_str(w, "account_id_hr", hr);
	jw_key(w, "tunnels");
	jw_arr_begin(w);
	for (size_t i = 0; i < a->tunnels.n; i++)
		jw_str(w, a->tunnels.v[i]);
	jw_arr_end(w);
	jw_key(w, "status");
	jw_obj_begin(w);
	jw_kv_bool(w, "disabled", a->disabled);
	if (a->disabled && a->disabled_at[0])
		jw_kv_str(w, "disabled_at", a->disabled_at);
	if (a->disabled && a->disabled_reason)
		jw_kv_str(w, "disabled_reason", a->disabled_reason);
	jw_obj_end(w);
	if (a->created_at[0])
		jw_kv_str(w, "created_at", a->created_at);
	if (a->updated_at[0])
		jw_kv_str(w, "updated_at", a->updated_at);
	jw_obj_end(w);
}

/* ---- answers ---- */

void api_respond_writer(struct httpd_req *req, int status, struct json_writer *w)
{
	size_t len;
	char *json = json_writer_take(w, &len);
	if (!json) {
		log_error("api", "response document failed: %d", w->err);
		httpd_respond_json(req, 500, "{\"error\":\"UNKNOWN_ERROR\"}", 25);
		return;
	}
	httpd_respond_json(req, status, json, len);
	free(json);
}

void api_error(struct httpd_req *req, int status, const char *code, const char *field, const char *details)
{
	struct json_writer w;
	json_writer_init(&w, 8192);
	jw_obj_begin(&w);
	jw_kv_str(&w, "error", code);
	if (field)
		jw_kv_str(&w, "field", field);
	if (details)
		jw_kv_str(&w, "details", details);
	jw_obj_end(&w);
	api_respond_writer(req, status, &w);
}

void api_storage_error(struct httpd_req *req)
{
	api_error(req, 503, "UNKNOWN_ERROR", NULL, "storage unavailable");
}
