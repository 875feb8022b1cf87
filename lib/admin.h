/* admin.h - admin interface (/ping, /health) and admin API (/v1/admin/...)
 * as httpd components (spec/api.md §3, §4).  When both use one port they
 * are added to the same httpd and each serves its own paths. */
#ifndef EXPOSRD_ADMIN_H
#define EXPOSRD_ADMIN_H

#include "httpd.h"
#include "service.h"

struct admin;

struct admin *admin_new(struct service *svc);
void admin_free(struct admin *a);
void admin_interface_component(struct admin *a, struct httpd_component *c);
void admin_api_component(struct admin *a, struct httpd_component *c);

#endif
