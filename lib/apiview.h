/* apiview.h - what the HTTP APIs show: the request's base URL
 * (spec/api.md §0.2), JSON views of accounts and tunnels (§2.4, §4.2),
 * and the common JSON error answers. */
#ifndef EXPOSRD_APIVIEW_H
#define EXPOSRD_APIVIEW_H

#include "json.h"
#include "model.h"
#include "service.h"

struct httpd_req;

struct base_url {
	char proto[16];   /* "http" or "https" (lower-cased as sent) */
	char host[256];   /* lower-cased hostname, IPv6 without brackets */
	int port;         /* 0 when the scheme's default */
	int ipv6;
};

/* Derive the base URL from Forwarded / X-Forwarded-* / Host.  Returns 0 or
 * E_INVAL when none can be formed (no Host, bad characters). */
int base_url_from_request(const struct httpd_req *req, struct base_url *b);
/* "host[:port]" as used for host matching (port left out when default). */
void base_url_hostport(const struct base_url *b, char *out, size_t cap);

/* SSH host-key fingerprint shown in the tunnel object; set by the SSH
 * transport ("" while none). */
void apiview_set_ssh_fingerprint(const char *fp);

/* Public tunnel object (§2.4). */
void apiview_tunnel_public(struct json_writer *w, const struct service *svc, const struct base_url *b,
			   const struct tunnel_config *t);
/* Admin tunnel object (§4.2). */
void apiview_tunnel_admin(struct json_writer *w, const struct service *svc, const struct base_url *b,
			  const struct tunnel_config *t);
/* account-full (§4.2). */
void apiview_account_full(struct json_writer *w, const struct account *a);

/* Answer {"error":code[,"field"/"details":text]} with status. */
void api_error(struct httpd_req *req, int status, const char *code, const char *field, const char *details);
/* Answer the JSON document being written by w (and free it). */
void api_respond_writer(struct httpd_req *req, int status, struct json_writer *w);
/* 503 for a storage failure. */
void api_storage_error(struct httpd_req *req);

#endif
