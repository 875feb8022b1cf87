/* config.h - command-line and environment configuration.
 *
 * Implements /work/shared/spec/config.md: every option of §2 as
 * "--name value", "--name=value" (booleans also bare, "--name true|false"
 * and "--no-name"), "-p" for --api-port, and as the environment variable
 * EXPOSR_<NAME> ('-' -> '_', upper case). The command line wins over the
 * environment; an empty environment value counts as unset. Defaults are
 * in options.h.
 *
 * struct config is a plain value type: the caller owns it, every string
 * field is heap-allocated (or NULL when unset) and freed by config_free.
 */
#ifndef EXPOSRD_CONFIG_H
#define EXPOSRD_CONFIG_H

#include <stddef.h>
#include <stdio.h>

/* Bits of ingress_mask (--ingress http,sni). */
#define CONFIG_INGRESS_HTTP 1
#define CONFIG_INGRESS_SNI 2

/* Bits of transport_mask (--transport ws,ssh). */
#define CONFIG_TRANSPORT_WS 1
#define CONFIG_TRANSPORT_SSH 2

/* cluster_mode (--cluster). AUTO never survives config_parse. */
enum config_cluster {
	CONFIG_CLUSTER_AUTO = 0,
	CONFIG_CLUSTER_SINGLE_NODE,
	CONFIG_CLUSTER_UDP,
	CONFIG_CLUSTER_REDIS,
};

/* cluster_udp_discovery (--cluster-udp-discovery). AUTO is resolved at
 * run time by the discovery module (kubernetes if the service-account
 * namespace file exists, else multicast). */
enum config_discovery {
	CONFIG_DISCOVERY_AUTO = 0,
	CONFIG_DISCOVERY_MULTICAST,
	CONFIG_DISCOVERY_KUBERNETES,
};

/* storage_type, from the scheme of storage_url. */
enum config_storage {
	CONFIG_STORAGE_MEMORY = 0, /* memory: */
	CONFIG_STORAGE_SQLITE,     /* sqlite: */
	CONFIG_STORAGE_PGSQL,      /* postgres: or postgresql: */
	CONFIG_STORAGE_REDIS,      /* redis: or rediss: */
};

/* log_level (--log-level), in increasing severity. ALL logs everything
 * (the same as TRACE); OFF logs nothing. */
enum config_log_level {
	CONFIG_LOG_ALL = 0,
	CONFIG_LOG_TRACE,
	CONFIG_LOG_DEBUG,
	CONFIG_LOG_INFO,
	CONFIG_LOG_WARN,
	CONFIG_LOG_ERROR,
	CONFIG_LOG_FATAL,
	CONFIG_LOG_OFF,
};

/* log_format (--log-format). "text" is a C extension. */
enum config_log_format {
	CONFIG_LOG_FORMAT_JSON = 0,
	CONFIG_LOG_FORMAT_TEXT,
};

struct config {
	/* Ingress */
	unsigned ingress_mask;              /* CONFIG_INGRESS_* bits (--ingress), default http */
	char *ingress_http_url;             /* --ingress-http-url, else --ingress-http-domain; NULL when unset */
	int ingress_http_port;              /* --ingress-http-port, 1..65535 */
	int ingress_http_agent_idle_timeout; /* --ingress-http-agent-idle-timeout, seconds */
	int ingress_sni_port;               /* --ingress-sni-port, 1..65535 */
	char *ingress_sni_host;             /* --ingress-sni-host as given ([scheme://]host[:port]) or NULL */
	char *ingress_sni_host_name;        /* its hostname, lower-cased, IPv6 unbracketed; NULL when unset */
	int ingress_sni_host_port;          /* its port, 0 when it has none (use ingress_sni_port) */
	char *ingress_sni_cert;             /* --ingress-sni-cert: PEM chain file path or NULL */
	char *ingress_sni_key;              /* --ingress-sni-key: PEM key file path or NULL */

	/* Transport */
	unsigned transport_mask;            /* CONFIG_TRANSPORT_* bits (--transport), default ws */
	int transport_max_connections;      /* --transport-max-connections, >= 1 */
	int transport_ssh_port;             /* --transport-ssh-port, 1..65535 */
	char *transport_ssh_host;           /* --transport-ssh-host normalized to host[:port] ([v6]:port) or NULL */
	char *transport_ssh_host_name;      /* its hostname, IPv6 unbracketed; NULL when unset */
	int transport_ssh_host_port;        /* its port, 0 when it has none (use transport_ssh_port) */
	char *transport_ssh_key;            /* resolved private-key PEM text, NULL = generate a key */
	size_t transport_ssh_key_len;       /* strlen(transport_ssh_key), 0 when NULL */
	int transport_ssh_allow_insecure_target; /* bool: accept bad TLS on ssh-forwarded targets */

	/* Admin */
	int admin_enable;                   /* bool: /ping and /health interface */
	int admin_port;                     /* --admin-port, 1..65535 */
	int admin_api_enable;               /* bool: the /v1/admin API */
	int admin_api_port;                 /* --admin-api-port, 1..65535 */
	char *admin_api_key;                /* --admin-api-key, NULL when unset or empty */
	int admin_api_allow_access_without_key; /* bool, only honoured without a key */

	/* API */
	char *api_url;                      /* --api-url (validated URL) or NULL */
	int api_port;                       /* --api-port / -p, 1..65535 */
	int allow_registration;             /* bool: enables POST /v1/account */

	/* Cluster */
	int cluster_mode;                   /* enum config_cluster, resolved (never AUTO) */
	int cluster_mode_auto;              /* 1 when cluster_mode came from --cluster auto */
	char *cluster_key;                  /* --cluster-key: HMAC signing key */
	int cluster_udp_discovery;          /* enum config_discovery */
	int cluster_udp_port;               /* --cluster-udp-port, 1..65535 */
	char *cluster_udp_discovery_multicast_group;          /* default 239.0.0.1 */
	char *cluster_udp_discovery_kubernetes_service;       /* resolved: option, else $<service-env>, else exposr-headless */
	char *cluster_udp_discovery_kubernetes_namespace;     /* resolved: option, else $<namespace-env>, else default */
	char *cluster_udp_discovery_kubernetes_service_env;   /* env var name, default SERVICE_NAME */
	char *cluster_udp_discovery_kubernetes_namespace_env; /* env var name, default POD_NAMESPACE */
	char *cluster_udp_discovery_kubernetes_cluster_domain; /* default cluster.local */
	char *cluster_redis_url;            /* --cluster-redis-url, else --redis-url; NULL when unset */
	char *cluster_node_ip;              /* --cluster-node-ip (IPv4/IPv6 literal) or NULL */

	/* Storage */
	int storage_type;                   /* enum config_storage */
	char *storage_url;                  /* effective storage URL (--redis-url replaces memory://) */
	char *storage_path;                 /* sqlite only: database file path (query stripped), else NULL */
	int storage_pgsql_connection_pool_size; /* --storage-pgsql-connection-pool-size */

	/* Deprecated, kept as given */
	char *redis_url;                    /* --redis-url or NULL */
	char *ingress_http_domain;          /* --ingress-http-domain or NULL */

	/* Logging */
	int log_level;                      /* enum config_log_level, default info */
	int log_format;                     /* enum config_log_format, default json */
};

/* config_init fills *c with the defaults of options.h. Returns 0 or
 * E_NOMEM (then *c is still safe to config_free). */
int config_init(struct config *c);

/* config_parse reads argv[1..argc-1] and then envp ("NAME=value"
 * strings, NULL-terminated; envp NULL means an empty environment) into
 * *c, which must come from config_init. Validates, applies the
 * required-when rules and resolves --cluster auto, storage and the SSH
 * key. Messages go to out (help, version) and err (warnings, usage
 * errors); either may be NULL to discard.
 *
 * Returns 0 on success; 1 when --help or --version was printed (the
 * caller exits 0); E_INVAL after printing a usage error to err (the
 * caller exits 255); E_NOMEM. On error *c is partly filled and must
 * still be released with config_free. */
int config_parse(struct config *c, int argc, char **argv, char **envp,
		 FILE *out, FILE *err);

/* config_free releases every string of *c and zeroes it. Safe on a
 * zeroed config and to call twice. */
void config_free(struct config *c);

/* Names for logging: "single-node"/"udp"/"redis", "memory"/"sqlite"/
 * "postgres"/"redis". Static strings. */
const char *config_cluster_name(int mode);
const char *config_storage_name(int type);

#endif
