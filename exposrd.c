/* exposrd.c - main(): configuration, loop, modules, run.  Nothing else. */
#include "admin.h"
#include "api.h"
#include "config.h"
#include "dns.h"
#if WITH_PGSQL
#include "storage-pgsql.h"
#endif
#include "ingress-http.h"
#if WITH_TLS
#include "ingress-sni.h"
#endif
#include "transport-ws.h"
#if WITH_SSH
#include "transport-ssh.h"
#endif
#include "tunnel.h"
#include "err.h"
#include "httpd.h"
#include "log.h"
#include "loop.h"
#include "service.h"
#include "storage.h"

#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define SHUTDOWN_GRACE_MS 30000   /* spec/config.md §8 */
#define SHUTDOWN_POLL_MS 10
#define MAX_LISTENERS 4           /* api, ingress, admin, admin-api ports */

extern char **environ;

struct listener {
	int port;
	struct httpd *httpd;
};

struct server {
	struct config cfg;
	struct loop *loop;
	struct storage *storage;
	struct service *svc;
	struct api *api;
	struct admin *admin;
	struct registry *registry;
	struct transport_ws *transport_ws;
#if WITH_SSH
	struct transport_ssh *transport_ssh;
#endif
	struct ingress_http *ingress_http;
#if WITH_TLS
	struct ingress_sni *ingress_sni;
#endif
	struct dns *dns;
	struct listener listeners[MAX_LISTENERS];
	int nlisteners;
	int shutdown_signals;
	uint64_t shutdown_started;
	int exit_code;
};

static enum log_level log_level_of(int level)
{
	return level == CONFIG_LOG_ALL ? LOG_TRACE : (enum log_level)(level - 1);
}

/* The httpd serving port, created on first use. */
static struct httpd *listener_for(struct server *s, int port)
{
	for (int i = 0; i < s->nlisteners; i++)
		if (s->listeners[i].port == port)
			return s->listeners[i].httpd;
	struct httpd *h = httpd_new(s->loop, NULL, port, "http");
	if (!h)
		fatal("main", "Failed to start up: cannot listen on port %d: %s", port, strerror(errno));
	s->listeners[s->nlisteners].port = port;
	s->listeners[s->nlisteners].httpd = h;
	s->nlisteners++;
	return h;
}

static void check_features(const struct config *cfg)
{
	if ((cfg->transport_mask & CONFIG_TRANSPORT_SSH) && !WITH_SSH)
		fatal("main", "Failed to start up: the SSH transport is not compiled into this build (WITH_SSH=0)");
	if ((cfg->ingress_mask & CONFIG_INGRESS_SNI) && !WITH_TLS)
		fatal("main", "Failed to start up: the SNI ingress is not compiled into this build (WITH_TLS=0)");
	if (cfg->cluster_mode != CONFIG_CLUSTER_SINGLE_NODE && !cfg->cluster_mode_auto)
		fatal("main", "Failed to start up: clustering mode %s is not available in this build; use --cluster single-node",
		      config_cluster_name(cfg->cluster_mode));
}

static void start_listeners(struct server *s)
{
	const struct config *cfg = &s->cfg;
	struct httpd_component comp;

	/* Dispatch order on a shared port: ingress, WS endpoint, API (§0.1). */
	if (s->ingress_http) {
		ingress_http_component(s->ingress_http, &comp);
		(void)httpd_add_component(listener_for(s, cfg->ingress_http_port), &comp);
		log_info("main", "HTTP ingress listening on port %d (agent idle timeout %d)", cfg->ingress_http_port,
			 cfg->ingress_http_agent_idle_timeout);
	}
#if WITH_TLS
	if (s->ingress_sni)
		log_info("main", "SNI ingress listening on port %d", ingress_sni_port(s->ingress_sni));
#endif
	if (s->transport_ws) {
		transport_ws_component(s->transport_ws, &comp);
		(void)httpd_add_component(listener_for(s, cfg->api_port), &comp);
		log_info("main", "WS transport connection endpoint listening on port %d", cfg->api_port);
	}
#if WITH_SSH
	if (s->transport_ssh)
		log_info("main", "SSH transport endpoint listening on port %d (host key fingerprint %s)",
			 transport_ssh_port(s->transport_ssh), transport_ssh_fingerprint(s->transport_ssh));
#endif
	api_component(s->api, &comp);
	(void)httpd_add_component(listener_for(s, cfg->api_port), &comp);
	log_info("main", "HTTP controller listening on port %d", cfg->api_port);

	if (cfg->admin_enable) {
		admin_interface_component(s->admin, &comp);
		(void)httpd_add_component(listener_for(s, cfg->admin_port), &comp);
		log_info("main", "HTTP Admin listening on port %d", cfg->admin_port);
	} else {
		log_info("main", "HTTP Admin disabled");
	}
	if (cfg->admin_api_enable) {
		if (cfg->admin_api_key)
			log_info("main", "Admin API resource enabled with API key");
		else if (cfg->admin_api_allow_access_without_key)
			log_warn("main", "Admin API resource enabled without authentication");
		else
			log_warn("main", "Admin API resource disabled - no API key given");
		admin_api_component(s->admin, &comp);
		/* The admin API goes before the public API if they share a port. */
		(void)httpd_add_component(listener_for(s, cfg->admin_api_port), &comp);
		log_info("main", "HTTP Admin API listening on port %d", cfg->admin_api_port);
	} else {
		log_info("main", "HTTP Admin API disabled");
	}
}

static void shutdown_poll(struct loop *loop, void *arg)
{
	struct server *s = arg;
	unsigned busy = 0;
	for (int i = 0; i < s->nlisteners; i++)
		busy += httpd_busy(s->listeners[i].httpd);
#if WITH_TLS
	busy += ingress_sni_busy(s->ingress_sni);
#endif
	uint64_t elapsed = loop_now(loop) - s->shutdown_started;
	if (busy > 0 && elapsed < SHUTDOWN_GRACE_MS &&
	    loop_timer_add(loop, SHUTDOWN_POLL_MS, shutdown_poll, s))
		return;
	if (busy > 0) {
		log_warn("main", "Failed to gracefully shutdown service, forcing shutdown");
		s->exit_code = 255;
	}
	loop_stop(loop);
}

static void on_signal(struct loop *loop, int signo, void *arg)
{
	struct server *s = arg;
	const char *name = signo == SIGTERM ? "SIGTERM" : "SIGINT";
	if (++s->shutdown_signals > 1) {
		log_warn("main", "Failed to gracefully shutdown service, forcing shutdown");
		exit(255);
	}
	log_info("main", "Shutdown initiated, signal=%s, press Ctrl-C again to force quit", name);
	s->shutdown_started = loop_now(loop);
	service_set_draining(s->svc, 1);
	/* Tunnel clients first: close 1001, no new registrations (§8 step 3). */
	if (s->transport_ws)
		transport_ws_shutdown(s->transport_ws);
#if WITH_SSH
	if (s->transport_ssh)
		transport_ssh_shutdown(s->transport_ssh);
#endif
	registry_shutdown(s->registry);
	/* No new connections; requests in flight finish (bounded wait). */
	for (int i = 0; i < s->nlisteners; i++)
		httpd_stop_listening(s->listeners[i].httpd);
#if WITH_TLS
	ingress_sni_stop_listening(s->ingress_sni);
#endif
	shutdown_poll(loop, s);
}

static void teardown(struct server *s)
{
	for (int i = 0; i < s->nlisteners; i++)
		httpd_free(s->listeners[i].httpd);
	/* Let storage completions of dropped requests run before freeing. */
	loop_run_deferred(s->loop);
	ingress_http_free(s->ingress_http);
#if WITH_TLS
	ingress_sni_free(s->ingress_sni);
#endif
	transport_ws_free(s->transport_ws);
#if WITH_SSH
	transport_ssh_free(s->transport_ssh);
#endif
	loop_run_deferred(s->loop);
	registry_free(s->registry);
	dns_free(s->dns);
	/* Storage first: its pending callbacks still reach live objects. */
	storage_close(s->storage);
	loop_run_deferred(s->loop);
	api_free(s->api);
	admin_free(s->admin);
	service_free(s->svc);
	loop_run_deferred(s->loop);
	loop_free(s->loop);
	config_free(&s->cfg);
}

int main(int argc, char **argv)
{
	static struct server s;
	uint64_t start_us = loop_mono_us();
	if (config_init(&s.cfg) != 0)
		return 255;
	int rc = config_parse(&s.cfg, argc, argv, environ, stdout, stderr);
	if (rc == 1) {
		config_free(&s.cfg);
		return 0;
	}
	if (rc != 0) {
		config_free(&s.cfg);
		return 255;
	}
	log_setup(log_level_of(s.cfg.log_level), s.cfg.log_format == CONFIG_LOG_FORMAT_JSON, stdout);
	signal(SIGPIPE, SIG_IGN);
	log_info("main", "exposrd %s", EXPOSRD_VERSION);
	check_features(&s.cfg);

	s.loop = loop_new();
	if (!s.loop)
		fatal("main", "Failed to start up: out of memory");
	char err[512];
#if WITH_PGSQL
	storage_pgsql_set_pool_size(s.cfg.storage_pgsql_connection_pool_size);
#endif
	s.storage = storage_open(s.loop, s.cfg.storage_url, err, sizeof(err));
	if (!s.storage)
		fatal("main", "Failed to start up: %s", err);
	if (s.cfg.storage_type == CONFIG_STORAGE_SQLITE)
		log_info("main", "SQlite storage initialized: %s", s.cfg.storage_path);
	s.svc = service_new(s.loop, &s.cfg, s.storage);
	s.api = s.svc ? api_new(s.svc) : NULL;
	s.admin = s.svc ? admin_new(s.svc) : NULL;
	s.registry = s.svc ? registry_new(s.loop, service_node_id(s.svc), s.cfg.transport_max_connections) : NULL;
	s.dns = dns_new(s.loop, NULL);
	if (!s.api || !s.admin || !s.registry || !s.dns)
		fatal("main", "Failed to start up: out of memory");
	struct service_connections hooks;
	registry_service_hooks(s.registry, &hooks);
	service_set_connections(s.svc, &hooks);
	struct service_cname_checker checker = {dns_cname_check, s.dns};
	service_set_cname_checker(s.svc, &checker);
	if (s.cfg.transport_mask & CONFIG_TRANSPORT_WS) {
		s.transport_ws = transport_ws_new(s.loop, s.svc, s.registry);
		if (!s.transport_ws)
			fatal("main", "Failed to start up: out of memory");
	}
#if WITH_SSH
	if (s.cfg.transport_mask & CONFIG_TRANSPORT_SSH) {
		s.transport_ssh = transport_ssh_new(s.loop, s.svc, s.registry, &s.cfg, err, sizeof(err));
		if (!s.transport_ssh)
			fatal("main", "Failed to start up: SSH transport: %s", err);
	}
#endif
	if (s.cfg.ingress_mask & CONFIG_INGRESS_HTTP) {
		s.ingress_http = ingress_http_new(s.loop, s.svc, s.registry);
		if (!s.ingress_http)
			fatal("main", "Failed to start up: out of memory");
	}
#if WITH_TLS
	if (s.cfg.ingress_mask & CONFIG_INGRESS_SNI) {
		s.ingress_sni = ingress_sni_new(s.loop, s.svc, s.registry, err, sizeof(err));
		if (!s.ingress_sni)
			fatal("main", "Failed to start up: %s", err);
	}
#endif
	log_info("main", "node_id %s", service_node_id(s.svc));
	if (s.cfg.cluster_mode != CONFIG_CLUSTER_SINGLE_NODE) {
		/* --cluster auto picked a mode this build lacks: one node still works. */
		log_warn("main", "Clustering mode %s is not available in this build; running as a single node",
			 config_cluster_name(s.cfg.cluster_mode));
		s.cfg.cluster_mode = CONFIG_CLUSTER_SINGLE_NODE;
	}
	log_info("main", "Clustering mode %s initialized", config_cluster_name(s.cfg.cluster_mode));
	if (s.cfg.allow_registration)
		log_warn("main", "Public account registration is enabled");
	start_listeners(&s);
	if (loop_signal(s.loop, SIGTERM, on_signal, &s) != 0 || loop_signal(s.loop, SIGINT, on_signal, &s) != 0)
		fatal("main", "Failed to start up: cannot install signal handlers");

	service_set_ready(s.svc, 1);
	log_info("main", "exposrd ready in %llu us", (unsigned long long)(loop_mono_us() - start_us));
	if (loop_run(s.loop) != 0)
		fatal("main", "event loop failed: %s", strerror(errno));
	uint64_t shutdown_ms = loop_now(s.loop) - s.shutdown_started;
	int code = s.exit_code;
	teardown(&s);
	log_info("main", "Shutdown complete in %llu ms", (unsigned long long)shutdown_ms);
	return code;
}
