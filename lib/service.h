/* service.h - accounts and tunnels: the operations behind the public API,
 * the admin API and (later) the transports, on top of asynchronous
 * storage.  Every operation completes through its callback on the loop.
 */
#ifndef EXPOSRD_SERVICE_H
#define EXPOSRD_SERVICE_H

#include <stddef.h>
#include <stdint.h>

#include "model.h"
#include "storage.h"

struct loop;
struct config;
struct service;

#define NODE_ID_LEN 40
#define SERVICE_MAX_DETAILS 1024
#define SERVICE_ACCOUNT_CREATE_ATTEMPTS 100
#define SERVICE_DISCONNECT_WAIT_MS 500

/* Outcome of an operation. */
enum service_status {
	SVC_OK = 0,
	SVC_NOTFOUND,        /* no such tunnel/account (or not visible to the caller) */
	SVC_DENIED,          /* owned by another account */
	SVC_EXISTS,          /* create found an existing record */
	SVC_BACKEND,         /* storage failure: answer 503 */
	SVC_ADMIN_DISABLED,  /* ingress administratively disabled */
	SVC_BAD_ALTNAMES,    /* alt-name CNAME check failed; details lists them */
	SVC_EXHAUSTED,       /* no free account id found */
};

struct service_result {
	enum service_status status;
	char details[SERVICE_MAX_DETAILS];
};

/* Requested changes of PUT/PATCH (spec/api.md §2.5). has_* marks presence. */
struct tunnel_patch {
	int has_http_enabled, http_enabled;
	int has_alt_names;            /* alt_names replaces the list (null: cleared) */
	struct strlist alt_names;     /* lower-cased, validated */
	int has_sni_enabled, sni_enabled;
	int has_target;               /* target_url NULL: unset */
	char *target_url;
	int has_ws_enabled, ws_enabled;
	int has_ssh_enabled, ssh_enabled;
};
void tunnel_patch_free(struct tunnel_patch *p);

/* Runtime connection state of a tunnel (spec/api.md §1.4). Times are
 * epoch milliseconds, 0 when unset. */
struct tunnel_connection_info {
	char connection_id[NODE_ID_LEN + 40];
	char node[NODE_ID_LEN + 1];
	char peer[64];
	int connected;
	int64_t connected_at, disconnected_at, alive_at;
};

struct tunnel_state {
	int connected;
	int alive_connections;
	int64_t connected_at, disconnected_at, alive_at;
	struct tunnel_connection_info *conns;
	size_t nconns;
};
void tunnel_state_free(struct tunnel_state *st);

/* The connection registry (transports) plugs in here. */
struct service_connections {
	/* Fill st for tunnel id (st is zeroed by the caller). */
	void (*state)(void *arg, const char *tunnel_id, struct tunnel_state *st);
	/* Close every local connection of tunnel id; returns how many. */
	int (*disconnect)(void *arg, const char *tunnel_id);
	void *arg;
};

/* Alt-name verification: does name have a CNAME equal to target?  Calls
 * cb(arg, 1) when it does, cb(arg, 0) when not or when the lookup fails. */
typedef void (*service_cname_cb)(void *arg, int ok);
struct service_cname_checker {
	void (*check)(void *arg, const char *name, const char *target, service_cname_cb cb, void *cbarg);
	void *arg;
};

struct service *service_new(struct loop *loop, const struct config *cfg, struct storage *storage);
void service_free(struct service *svc);
void service_set_connections(struct service *svc, const struct service_connections *c);
void service_set_cname_checker(struct service *svc, const struct service_cname_checker *c);
const struct config *service_config(const struct service *svc);
struct loop *service_loop(const struct service *svc);
const char *service_node_id(const struct service *svc);
/* Wildcard parent domain of HTTP ingress ("" when HTTP ingress is off). */
const char *service_ingress_http_domain(const struct service *svc);
/* SNI ingress domain/port of tunnel URLs, set by the SNI ingress. */
void service_set_sni(struct service *svc, const char *wildcard_domain, int port);

struct storage *service_storage(const struct service *svc);
/* Readiness (spec/config.md §7, §8): ready after startup; draining from
 * the start of a graceful shutdown. */
void service_set_ready(struct service *svc, int ready);
int service_is_ready(const struct service *svc);
void service_set_draining(struct service *svc, int draining);
int service_is_draining(const struct service *svc);

void service_tunnel_state(struct service *svc, const char *tunnel_id, struct tunnel_state *st);

typedef void (*service_account_cb)(void *arg, const struct service_result *res, struct account *a);
typedef void (*service_tunnel_cb)(void *arg, const struct service_result *res, struct tunnel_config *t);
typedef void (*service_done_cb)(void *arg, const struct service_result *res);
typedef void (*service_disconnect_cb)(void *arg, const struct service_result *res, int disconnected);
typedef void (*service_list_cb)(void *arg, const struct service_result *res, char *const *keys, size_t n,
				const char *cursor);

/* Records passed to callbacks are valid only during the callback. */
void service_account_create(struct service *svc, service_account_cb cb, void *arg);
void service_account_get(struct service *svc, const char *account_id, service_account_cb cb, void *arg);
/* Like service_account_get without the tunnel list (authentication). */
void service_account_auth(struct service *svc, const char *account_id, service_account_cb cb, void *arg);
void service_account_disable(struct service *svc, const char *account_id, int disable, const char *reason,
			     service_account_cb cb, void *arg);
void service_account_delete(struct service *svc, const char *account_id, service_done_cb cb, void *arg);

void service_tunnel_get(struct service *svc, const char *tunnel_id, service_tunnel_cb cb, void *arg);
/* Create tunnel_id for account; SVC_EXISTS when it already exists. */
void service_tunnel_create(struct service *svc, const char *tunnel_id, const char *account_id,
			   service_tunnel_cb cb, void *arg);
/* Apply patch under the record lock; owner NULL skips the owner check. */
void service_tunnel_update(struct service *svc, const char *tunnel_id, const char *owner,
			   const struct tunnel_patch *patch, service_tunnel_cb cb, void *arg);
/* Authorise a transport connection (spec/transports.md §3.3): under the
 * record lock, the tunnel's token must equal token (constant time) and its
 * account must exist and not be disabled; the token is then replaced by a
 * fresh one, so it is never accepted twice.  SVC_DENIED otherwise. */
void service_tunnel_authorize(struct service *svc, const char *tunnel_id, const char *token,
			      service_tunnel_cb cb, void *arg);
/* Disconnect, release alt names, delete, and remove from the account. */
void service_tunnel_delete(struct service *svc, const char *tunnel_id, const char *owner,
			   service_done_cb cb, void *arg);
void service_tunnel_disconnect(struct service *svc, const char *tunnel_id, const char *owner,
			       service_disconnect_cb cb, void *arg);

/* Page through a namespace: up to count keys after cursor (the backend's
 * cursor, NULL from the start); cursor NULL in the callback at the end. */
void service_list(struct service *svc, enum storage_ns ns, const char *cursor, size_t count,
		  service_list_cb cb, void *arg);

#endif
