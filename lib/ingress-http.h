/* ingress-http.h - HTTP ingress: requests for <tunnel>.<domain> (or an
 * alt name) are proxied through a channel of the tunnel
 * (spec/ingress.md §1, §2).  An httpd component placed first on its port. */
#ifndef EXPOSRD_INGRESS_HTTP_H
#define EXPOSRD_INGRESS_HTTP_H

#include "httpd.h"
#include "service.h"
#include "tunnel.h"

#define INGRESS_MAX_RESPONSE_HEAD HTTP_MAX_HEADER_BYTES
#define INGRESS_MAX_FORWARDED_HEAD (HTTP_MAX_HEADER_BYTES + 2048)

struct ingress_http;

struct ingress_http *ingress_http_new(struct loop *loop, struct service *svc, struct registry *reg);
void ingress_http_free(struct ingress_http *ih);
void ingress_http_component(struct ingress_http *ih, struct httpd_component *c);

#endif
