/* config.c - command-line and environment configuration (see config.h).
 *
 * Parsing runs in phases over one option table:
 *   1. tokenize argv: remember each option's last raw value (borrowed
 *      pointers into argv), accumulate list options into bit masks;
 *   2. --help / --version short-circuit (before any validation);
 *   3. fill options not on the command line from EXPOSR_* variables;
 *   4. convert and validate every given value into struct config;
 *   5. cross-option rules: deprecated defaults, required-when, storage
 *      scheme, --cluster auto, sqlite path, SSH host and key.
 * The first usage error is kept in the parse state and printed once.
 */
#include <arpa/inet.h>
#include <fcntl.h>
#include <limits.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "config.h"
#include "err.h"
#include "options.h"
#include "url.h"

#ifndef EXPOSRD_VERSION
#define EXPOSRD_VERSION "unknown"
#endif

#define STR_(x) #x
#define STR(x) STR_(x)

#define CONFIG_ENV_NAME_MAX 96   /* "EXPOSR_" + the longest option name */
#define CONFIG_HELP_COLUMN 50    /* where help descriptions start */
#define CONFIG_PORT_MAX 65535

#define USAGE_LINE "Usage: exposrd [options]  (see --help)"

enum opt_type {
	T_BOOL,        /* int 0/1 */
	T_INT,         /* int >= 0 (>= 1 with OPTF_MIN1) */
	T_PORT,        /* int 1..65535 */
	T_STR,         /* char * */
	T_URL,         /* char *, must pass url_parse */
	T_IP,          /* char *, IPv4 or IPv6 literal */
	T_LIST,        /* unsigned bit mask, bit i = choices[i] */
	T_CHOICE,      /* int index into choices */
	T_IGNORE,      /* accepted with a value and ignored */
	T_HELP,        /* boolean flags kept in the parse state */
	T_SHOW_HIDDEN,
	T_VERSION,
};

#define OPTF_HIDDEN 1      /* only in --help --show-hidden */
#define OPTF_MIN1 2        /* T_INT must be >= 1 */
#define OPTF_EMPTY_NULL 4  /* T_STR: an empty value counts as unset */

enum opt_group {
	G_INGRESS, G_TRANSPORT, G_ADMIN, G_API, G_CLUSTER, G_STORAGE,
	G_LOG, G_DEPRECATED, G_MISC, G_COUNT
};

static const char *const group_names[G_COUNT] = {
	"Ingress", "Transport", "Admin", "API", "Cluster", "Storage",
	"Logging", "Deprecated", "Misc",
};

enum opt_id {
	O_INGRESS, O_INGRESS_HTTP_URL, O_INGRESS_HTTP_PORT,
	O_INGRESS_HTTP_AGENT_IDLE_TIMEOUT, O_INGRESS_SNI_PORT, O_INGRESS_SNI_HOST,
	O_INGRESS_SNI_CERT, O_INGRESS_SNI_KEY,
	O_TRANSPORT, O_TRANSPORT_MAX_CONNECTIONS, O_TRANSPORT_WS_PORT,
	O_TRANSPORT_SSH_PORT, O_TRANSPORT_SSH_HOST, O_TRANSPORT_SSH_KEY,
	O_TRANSPORT_SSH_ALLOW_INSECURE_TARGET,
	O_ADMIN_ENABLE, O_ADMIN_PORT, O_ADMIN_API_ENABLE, O_ADMIN_API_PORT,
	O_ADMIN_API_KEY, O_ADMIN_API_ALLOW_ACCESS_WITHOUT_KEY,
	O_API_URL, O_API_PORT, O_ALLOW_REGISTRATION,
	O_CLUSTER, O_CLUSTER_KEY, O_CLUSTER_UDP_DISCOVERY, O_CLUSTER_UDP_PORT,
	O_K8S_MULTICAST_GROUP, O_K8S_SERVICE, O_K8S_NAMESPACE, O_K8S_SERVICE_ENV,
	O_K8S_NAMESPACE_ENV, O_K8S_CLUSTER_DOMAIN, O_CLUSTER_REDIS_URL,
	O_CLUSTER_NODE_IP,
	O_STORAGE_URL, O_STORAGE_PGSQL_POOL_SIZE,
	O_LOG_LEVEL, O_LOG_FORMAT,
	O_REDIS_URL, O_INGRESS_HTTP_DOMAIN,
	O_HELP, O_SHOW_HIDDEN, O_VERSION,
	O_COUNT
};

static const char *const ch_ingress[] = { "http", "sni", NULL };
static const char *const ch_transport[] = { "ws", "ssh", NULL };
static const char *const ch_cluster[] = { "auto", "single-node", "udp", "redis", NULL };
static const char *const ch_discovery[] = { "auto", "multicast", "kubernetes", NULL };
static const char *const ch_log_level[] = {
	"all", "trace", "debug", "info", "warn", "error", "fatal", "off", NULL
};
static const char *const ch_log_format[] = { "json", "text", NULL };

struct opt {
	const char *name;             /* long name without "--" */
	unsigned char type;           /* enum opt_type */
	unsigned char group;          /* enum opt_group, for --help */
	unsigned char flags;          /* OPTF_* */
	const char *const *choices;   /* T_LIST / T_CHOICE */
	const char *def;              /* default as text (applied by config_init), or NULL */
	size_t off;                   /* offsetof(struct config, field) */
	const char *help;             /* one-line description */
};

#define F(field) offsetof(struct config, field)

static const struct opt opts[O_COUNT] = {
	[O_INGRESS] = { "ingress", T_LIST, G_INGRESS, 0, ch_ingress,
		OPT_DEFAULT_INGRESS, F(ingress_mask), "Enabled ingress methods" },
	[O_INGRESS_HTTP_URL] = { "ingress-http-url", T_URL, G_INGRESS, 0, NULL,
		NULL, F(ingress_http_url),
		"Base URL of tunnel subdomains (required with http ingress)" },
	[O_INGRESS_HTTP_PORT] = { "ingress-http-port", T_PORT, G_INGRESS, OPTF_HIDDEN, NULL,
		STR(OPT_DEFAULT_INGRESS_HTTP_PORT), F(ingress_http_port),
		"HTTP ingress port (shares the API listener when equal)" },
	[O_INGRESS_HTTP_AGENT_IDLE_TIMEOUT] = { "ingress-http-agent-idle-timeout", T_INT,
		G_INGRESS, OPTF_HIDDEN, NULL, STR(OPT_DEFAULT_INGRESS_HTTP_AGENT_IDLE_TIMEOUT),
		F(ingress_http_agent_idle_timeout), "Idle timeout of upstream connections, seconds" },
	[O_INGRESS_SNI_PORT] = { "ingress-sni-port", T_PORT, G_INGRESS, 0, NULL,
		STR(OPT_DEFAULT_INGRESS_SNI_PORT), F(ingress_sni_port), "SNI ingress TLS port" },
	[O_INGRESS_SNI_HOST] = { "ingress-sni-host", T_STR, G_INGRESS, OPTF_HIDDEN, NULL,
		NULL, F(ingress_sni_host),
		"[scheme://]host[:port] selecting the certificate wildcard and advertised port" },
	[O_INGRESS_SNI_CERT] = { "ingress-sni-cert", T_STR, G_INGRESS, 0, NULL,
		NULL, F(ingress_sni_cert), "Wildcard certificate chain, PEM file (required with sni)" },
	[O_INGRESS_SNI_KEY] = { "ingress-sni-key", T_STR, G_INGRESS, 0, NULL,
		NULL, F(ingress_sni_key), "Certificate private key, PEM file (required with sni)" },

	[O_TRANSPORT] = { "transport", T_LIST, G_TRANSPORT, 0, ch_transport,
		OPT_DEFAULT_TRANSPORT, F(transport_mask), "Enabled transports" },
	[O_TRANSPORT_MAX_CONNECTIONS] = { "transport-max-connections", T_INT, G_TRANSPORT,
		OPTF_MIN1, NULL, STR(OPT_DEFAULT_TRANSPORT_MAX_CONNECTIONS),
		F(transport_max_connections), "Max transport connections per tunnel" },
	[O_TRANSPORT_WS_PORT] = { "transport-ws-port", T_IGNORE, G_TRANSPORT, 0, NULL,
		NULL, 0, "Ignored; WebSocket transport uses the API port" },
	[O_TRANSPORT_SSH_PORT] = { "transport-ssh-port", T_PORT, G_TRANSPORT, 0, NULL,
		STR(OPT_DEFAULT_TRANSPORT_SSH_PORT), F(transport_ssh_port), "SSH transport port" },
	[O_TRANSPORT_SSH_HOST] = { "transport-ssh-host", T_STR, G_TRANSPORT, OPTF_HIDDEN, NULL,
		NULL, F(transport_ssh_host), "host[:port] advertised for SSH (default: request host)" },
	[O_TRANSPORT_SSH_KEY] = { "transport-ssh-key", T_STR, G_TRANSPORT, OPTF_HIDDEN, NULL,
		NULL, F(transport_ssh_key),
		"SSH host key: file path, PEM text or base64 of it (default: generated)" },
	[O_TRANSPORT_SSH_ALLOW_INSECURE_TARGET] = { "transport-ssh-allow-insecure-target",
		T_BOOL, G_TRANSPORT, OPTF_HIDDEN, NULL, "false",
		F(transport_ssh_allow_insecure_target), "Allow insecure TLS targets over SSH" },

	[O_ADMIN_ENABLE] = { "admin-enable", T_BOOL, G_ADMIN, 0, NULL, "false",
		F(admin_enable), "Enable the admin interface (/ping, /health)" },
	[O_ADMIN_PORT] = { "admin-port", T_PORT, G_ADMIN, 0, NULL,
		STR(OPT_DEFAULT_ADMIN_PORT), F(admin_port), "Admin interface port" },
	[O_ADMIN_API_ENABLE] = { "admin-api-enable", T_BOOL, G_ADMIN, 0, NULL, "false",
		F(admin_api_enable), "Enable the admin API (/v1/admin)" },
	[O_ADMIN_API_PORT] = { "admin-api-port", T_PORT, G_ADMIN, 0, NULL,
		STR(OPT_DEFAULT_ADMIN_API_PORT), F(admin_api_port), "Admin API port" },
	[O_ADMIN_API_KEY] = { "admin-api-key", T_STR, G_ADMIN, OPTF_EMPTY_NULL, NULL,
		NULL, F(admin_api_key), "API key of the admin API" },
	[O_ADMIN_API_ALLOW_ACCESS_WITHOUT_KEY] = { "admin-api-allow-access-without-key",
		T_BOOL, G_ADMIN, OPTF_HIDDEN, NULL, "false",
		F(admin_api_allow_access_without_key), "Allow admin API access when no key is set" },

	[O_API_URL] = { "api-url", T_URL, G_API, 0, NULL, NULL, F(api_url),
		"Only answer API requests for this URL's host" },
	[O_API_PORT] = { "api-port", T_PORT, G_API, 0, NULL, STR(OPT_DEFAULT_API_PORT),
		F(api_port), "API, WebSocket transport and HTTP ingress port" },
	[O_ALLOW_REGISTRATION] = { "allow-registration", T_BOOL, G_API, 0, NULL, "false",
		F(allow_registration), "Allow public account registration" },

	[O_CLUSTER] = { "cluster", T_CHOICE, G_CLUSTER, 0, ch_cluster, OPT_DEFAULT_CLUSTER,
		F(cluster_mode), "Cluster mode" },
	[O_CLUSTER_KEY] = { "cluster-key", T_STR, G_CLUSTER, 0, NULL, OPT_DEFAULT_CLUSTER_KEY,
		F(cluster_key), "Key signing cluster messages" },
	[O_CLUSTER_UDP_DISCOVERY] = { "cluster-udp-discovery", T_CHOICE, G_CLUSTER, 0,
		ch_discovery, OPT_DEFAULT_CLUSTER_UDP_DISCOVERY, F(cluster_udp_discovery),
		"UDP peer discovery method" },
	[O_CLUSTER_UDP_PORT] = { "cluster-udp-port", T_PORT, G_CLUSTER, 0, NULL,
		STR(OPT_DEFAULT_CLUSTER_UDP_PORT), F(cluster_udp_port), "UDP cluster port" },
	[O_K8S_MULTICAST_GROUP] = { "cluster-udp-discovery-multicast-group", T_STR, G_CLUSTER,
		OPTF_HIDDEN, NULL, OPT_DEFAULT_CLUSTER_UDP_DISCOVERY_MULTICAST_GROUP,
		F(cluster_udp_discovery_multicast_group), "Multicast discovery group" },
	[O_K8S_SERVICE] = { "cluster-udp-discovery-kubernetes-service", T_STR, G_CLUSTER,
		OPTF_HIDDEN, NULL, OPT_DEFAULT_CLUSTER_UDP_DISCOVERY_KUBERNETES_SERVICE,
		F(cluster_udp_discovery_kubernetes_service),
		"Headless service name (unset: taken from $<service-env> if set)" },
	[O_K8S_NAMESPACE] = { "cluster-udp-discovery-kubernetes-namespace", T_STR, G_CLUSTER,
		OPTF_HIDDEN, NULL, OPT_DEFAULT_CLUSTER_UDP_DISCOVERY_KUBERNETES_NAMESPACE,
		F(cluster_udp_discovery_kubernetes_namespace),
		"Kubernetes namespace (unset: taken from $<namespace-env> if set)" },
	[O_K8S_SERVICE_ENV] = { "cluster-udp-discovery-kubernetes-service-env", T_STR,
		G_CLUSTER, OPTF_HIDDEN, NULL,
		OPT_DEFAULT_CLUSTER_UDP_DISCOVERY_KUBERNETES_SERVICE_ENV,
		F(cluster_udp_discovery_kubernetes_service_env),
		"Environment variable holding the service name" },
	[O_K8S_NAMESPACE_ENV] = { "cluster-udp-discovery-kubernetes-namespace-env", T_STR,
		G_CLUSTER, OPTF_HIDDEN, NULL,
		OPT_DEFAULT_CLUSTER_UDP_DISCOVERY_KUBERNETES_NAMESPACE_ENV,
		F(cluster_udp_discovery_kubernetes_namespace_env),
		"Environment variable holding the namespace" },
	[O_K8S_CLUSTER_DOMAIN] = { "cluster-udp-discovery-kubernetes-cluster-domain", T_STR,
		G_CLUSTER, OPTF_HIDDEN, NULL,
		OPT_DEFAULT_CLUSTER_UDP_DISCOVERY_KUBERNETES_CLUSTER_DOMAIN,
		F(cluster_udp_discovery_kubernetes_cluster_domain), "Kubernetes cluster domain" },
	[O_CLUSTER_REDIS_URL] = { "cluster-redis-url", T_URL, G_CLUSTER, 0, NULL, NULL,
		F(cluster_redis_url), "Redis URL for --cluster redis" },
	[O_CLUSTER_NODE_IP] = { "cluster-node-ip", T_IP, G_CLUSTER, 0, NULL, NULL,
		F(cluster_node_ip), "IP address advertised to other nodes (default: detected)" },

	[O_STORAGE_URL] = { "storage-url", T_URL, G_STORAGE, 0, NULL, OPT_DEFAULT_STORAGE_URL,
		F(storage_url), "Storage: memory://, sqlite://<file>, postgres://..., redis://..." },
	[O_STORAGE_PGSQL_POOL_SIZE] = { "storage-pgsql-connection-pool-size", T_INT,
		G_STORAGE, OPTF_HIDDEN, NULL, STR(OPT_DEFAULT_STORAGE_PGSQL_CONNECTION_POOL_SIZE),
		F(storage_pgsql_connection_pool_size), "PostgreSQL connection pool size" },

	[O_LOG_LEVEL] = { "log-level", T_CHOICE, G_LOG, 0, ch_log_level, OPT_DEFAULT_LOG_LEVEL,
		F(log_level), "Log level" },
	[O_LOG_FORMAT] = { "log-format", T_CHOICE, G_LOG, OPTF_HIDDEN, ch_log_format,
		OPT_DEFAULT_LOG_FORMAT, F(log_format), "Log format" },

	[O_REDIS_URL] = { "redis-url", T_URL, G_DEPRECATED, OPTF_HIDDEN, NULL, NULL,
		F(redis_url), "Default of --cluster-redis-url; selects redis cluster and storage" },
	[O_INGRESS_HTTP_DOMAIN] = { "ingress-http-domain", T_URL, G_DEPRECATED, OPTF_HIDDEN,
		NULL, NULL, F(ingress_http_domain), "Default of --ingress-http-url" },

	[O_HELP] = { "help", T_HELP, G_MISC, 0, NULL, NULL, 0, "Show help and exit" },
	[O_SHOW_HIDDEN] = { "show-hidden", T_SHOW_HIDDEN, G_MISC, 0, NULL, NULL, 0,
		"Include hidden options in --help" },
	[O_VERSION] = { "version", T_VERSION, G_MISC, 0, NULL, NULL, 0,
		"Show version and compiled-in features and exit" },
};

#define GIVEN_ARGV 1
#define GIVEN_ENV 2

struct pstate {
	const char *raw[O_COUNT];      /* last value per option (borrowed) */
	unsigned mask[O_COUNT];        /* T_LIST: accumulated bits */
	unsigned char given[O_COUNT];  /* 0, GIVEN_ARGV or GIVEN_ENV */
	int help, show_hidden, version;
	int failed;                    /* a usage error is recorded in msg */
	int msg_only;                  /* print msg without the usage line */
	int nomem;
	char msg[OPT_MAX_MESSAGE];
	FILE *out, *err;
	char **envp;
};

/* ---------- small helpers ---------- */

static void say(FILE *f, const char *fmt, ...)
{
	va_list ap;
	if (!f)
		return;
	va_start(ap, fmt);
	(void)vfprintf(f, fmt, ap);
	va_end(ap);
}

static void vfail(struct pstate *st, int msg_only, const char *fmt, va_list ap)
{
	if (st->failed)
		return;
	st->failed = 1;
	st->msg_only = msg_only;
	(void)vsnprintf(st->msg, sizeof(st->msg), fmt, ap);
}

static void fail(struct pstate *st, const char *fmt, ...)
{
	va_list ap;
	va_start(ap, fmt);
	vfail(st, 0, fmt, ap);
	va_end(ap);
}

static void fail_only(struct pstate *st, const char *fmt, ...)
{
	va_list ap;
	va_start(ap, fmt);
	vfail(st, 1, fmt, ap);
	va_end(ap);
}

static void fail_choices(struct pstate *st, const struct opt *o, const char *v,
			 const char *const *choices)
{
	char list[256];
	size_t len = 0;
	list[0] = '\0';
	for (size_t i = 0; choices[i]; i++) {
		int n = snprintf(list + len, sizeof(list) - len, "%s\"%s\"",
				 i ? ", " : "", choices[i]);
		if (n < 0 || (size_t)n >= sizeof(list) - len)
			break;
		len += (size_t)n;
	}
	fail(st, "Invalid values:\n  Argument: %s, Given: \"%s\", Choices: %s",
	     o->name, v, list);
}

static int to_lower(int c)
{
	return (c >= 'A' && c <= 'Z') ? c - 'A' + 'a' : c;
}

static int ascii_ncaseeq(const char *a, const char *b, size_t n)
{
	for (size_t i = 0; i < n; i++)
		if (to_lower((unsigned char)a[i]) != to_lower((unsigned char)b[i]))
			return 0;
	return 1;
}

static int is_boolish(const struct opt *o)
{
	return o->type == T_BOOL || o->type == T_HELP ||
	       o->type == T_SHOW_HIDDEN || o->type == T_VERSION;
}

static int takes_env(const struct opt *o)
{
	return !(o->type == T_HELP || o->type == T_SHOW_HIDDEN ||
		 o->type == T_VERSION || o->type == T_IGNORE);
}

static char **field_str(struct config *c, const struct opt *o)
{
	return (char **)(void *)((char *)c + o->off);
}

static int *field_int(struct config *c, const struct opt *o)
{
	return (int *)(void *)((char *)c + o->off);
}

static unsigned *field_mask(struct config *c, const struct opt *o)
{
	return (unsigned *)(void *)((char *)c + o->off);
}

/* set_str replaces *dst with a copy of n bytes of v (NULL clears). */
static int set_strn(char **dst, const char *v, size_t n)
{
	char *copy = NULL;
	if (v) {
		copy = malloc(n + 1);
		if (!copy)
			return E_NOMEM;
		memcpy(copy, v, n);
		copy[n] = '\0';
	}
	free(*dst);
	*dst = copy;
	return 0;
}

static int set_str(char **dst, const char *v)
{
	return set_strn(dst, v, v ? strlen(v) : 0);
}

static const char *env_get(char **envp, const char *name)
{
	size_t n = strlen(name);
	for (; envp && *envp; envp++)
		if (strncmp(*envp, name, n) == 0 && (*envp)[n] == '=')
			return *envp + n + 1;
	return NULL;
}

/* env_name builds EXPOSR_<NAME> for an option. */
static void env_name(const struct opt *o, char *buf, size_t cap)
{
	size_t len = strlen(OPT_ENV_PREFIX);
	memcpy(buf, OPT_ENV_PREFIX, len);
	for (const char *p = o->name; *p && len + 1 < cap; p++) {
		int ch = (unsigned char)*p;
		buf[len++] = ch == '-' ? '_' : (char)(ch >= 'a' && ch <= 'z' ? ch - 'a' + 'A' : ch);
	}
	buf[len] = '\0';
}

/* ---------- value conversion ---------- */

static int parse_bool(const char *v, int *out)
{
	if (strcmp(v, "true") == 0 || strcmp(v, "1") == 0) {
		*out = 1;
		return 0;
	}
	if (strcmp(v, "false") == 0 || strcmp(v, "0") == 0) {
		*out = 0;
		return 0;
	}
	return E_INVAL;
}

/* parse_int accepts an optional '-' and decimal digits only. */
static int parse_int(const char *v, long min, long max, int *out)
{
	const char *p = v;
	long val = 0;
	int neg = 0;
	if (*p == '-') {
		neg = 1;
		p++;
	}
	if (*p == '\0')
		return E_INVAL;
	for (; *p; p++) {
		if (*p < '0' || *p > '9')
			return E_INVAL;
		val = val * 10 + (*p - '0');
		if (val > INT_MAX)
			return E_INVAL;
	}
	if (neg)
		val = -val;
	if (val < min || val > max)
		return E_INVAL;
	*out = (int)val;
	return 0;
}

static int choice_index(const char *const *choices, const char *v, size_t n)
{
	for (int i = 0; choices[i]; i++)
		if (strlen(choices[i]) == n && strncmp(choices[i], v, n) == 0)
			return i;
	return -1;
}

/* parse_list splits v on commas; every element must be a choice. */
static int parse_list(struct pstate *st, const struct opt *o, const char *v, unsigned *mask)
{
	const char *p = v;
	for (;;) {
		const char *comma = strchr(p, ',');
		size_t n = comma ? (size_t)(comma - p) : strlen(p);
		int idx = choice_index(o->choices, p, n);
		if (idx < 0) {
			char given[128];
			size_t gn = n < sizeof(given) - 1 ? n : sizeof(given) - 1;
			memcpy(given, p, gn);
			given[gn] = '\0';
			fail_choices(st, o, given, o->choices);
			return E_INVAL;
		}
		*mask |= 1u << idx;
		if (!comma)
			return 0;
		p = comma + 1;
	}
}

static int apply_int(struct config *c, struct pstate *st, const struct opt *o, const char *v)
{
	long min = (o->type == T_PORT || (o->flags & OPTF_MIN1)) ? 1 : 0;
	long max = o->type == T_PORT ? CONFIG_PORT_MAX : INT_MAX;
	if (parse_int(v, min, max, field_int(c, o)) == 0)
		return 0;
	if (o->type == T_PORT)
		fail(st, "Invalid values:\n  Argument: %s, Given: \"%s\", Expected: an integer from 1 to %d",
		     o->name, v, CONFIG_PORT_MAX);
	else
		fail(st, "Invalid values:\n  Argument: %s, Given: \"%s\", Expected: an integer >= %ld",
		     o->name, v, min);
	return E_INVAL;
}

static int apply_ip(struct config *c, struct pstate *st, const struct opt *o, const char *v)
{
	unsigned char bin[16];
	if (inet_pton(AF_INET, v, bin) != 1 && inet_pton(AF_INET6, v, bin) != 1) {
		fail(st, "Invalid values:\n  Argument: %s, Given: \"%s\", Expected: an IPv4 or IPv6 address",
		     o->name, v);
		return E_INVAL;
	}
	return set_str(field_str(c, o), v);
}

/* apply converts one raw value into its config field. */
static int apply(struct config *c, struct pstate *st, const struct opt *o, const char *v)
{
	struct url u;
	int b, idx;
	unsigned mask = 0;

	switch (o->type) {
	case T_BOOL:
		if (parse_bool(v, &b) != 0) {
			fail_choices(st, o, v, (const char *const[]){ "true", "false", NULL });
			return E_INVAL;
		}
		*field_int(c, o) = b;
		return 0;
	case T_INT:
	case T_PORT:
		return apply_int(c, st, o, v);
	case T_STR:
		if ((o->flags & OPTF_EMPTY_NULL) && v[0] == '\0')
			v = NULL;
		return set_str(field_str(c, o), v);
	case T_URL:
		if (url_parse(v, strlen(v), &u) != 0) {
			fail(st, "Invalid URL\n  Argument: %s, Given: \"%s\"", o->name, v);
			return E_INVAL;
		}
		return set_str(field_str(c, o), v);
	case T_IP:
		return apply_ip(c, st, o, v);
	case T_LIST:
		if (parse_list(st, o, v, &mask) != 0)
			return E_INVAL;
		*field_mask(c, o) = mask;
		return 0;
	case T_CHOICE:
		idx = choice_index(o->choices, v, strlen(v));
		if (idx < 0) {
			fail_choices(st, o, v, o->choices);
			return E_INVAL;
		}
		*field_int(c, o) = idx;
		return 0;
	default:
		return 0;
	}
}

/* ---------- phase 1: command line ---------- */

static const struct opt *find_opt(const char *name, size_t n)
{
	for (int i = 0; i < O_COUNT; i++)
		if (strlen(opts[i].name) == n && strncmp(opts[i].name, name, n) == 0)
			return &opts[i];
	return NULL;
}

/* record stores a command-line value of option o. */
static void record(struct pstate *st, const struct opt *o, const char *v)
{
	int id = (int)(o - opts), b = 0;
	switch (o->type) {
	case T_HELP:
	case T_SHOW_HIDDEN:
	case T_VERSION:
		if (parse_bool(v, &b) != 0) {
			fail_choices(st, o, v, (const char *const[]){ "true", "false", NULL });
			return;
		}
		if (o->type == T_HELP)
			st->help = b;
		else if (o->type == T_VERSION)
			st->version = b;
		else
			st->show_hidden = b;
		return;
	case T_IGNORE:
		return;
	case T_LIST:
		if (!st->given[id])
			st->mask[id] = 0;
		st->given[id] = GIVEN_ARGV;
		(void)parse_list(st, o, v, &st->mask[id]);
		return;
	default:
		st->given[id] = GIVEN_ARGV;
		st->raw[id] = v;
		return;
	}
}

static void warn_unknown(struct pstate *st, const char *arg, size_t n)
{
	say(st->err, "exposrd: warning: unknown option %.*s ignored\n", (int)n, arg);
}

/* take_value takes the argument after argv[*i] as a value when there is
 * one that does not look like a long option ("--" and a letter) or the
 * "--" terminator. So "-x" and "-----BEGIN ..." key text are values. */
static const char *take_value(int argc, char **argv, int *i)
{
	const char *next = *i + 1 < argc ? argv[*i + 1] : NULL;
	if (!next || strcmp(next, "--") == 0)
		return NULL;
	if (next[0] == '-' && next[1] == '-' &&
	    ((next[2] >= 'a' && next[2] <= 'z') || (next[2] >= 'A' && next[2] <= 'Z')))
		return NULL;
	(*i)++;
	return next;
}

static void tokenize_long(struct pstate *st, int argc, char **argv, int *i)
{
	const char *name = argv[*i] + 2;
	const char *eq = strchr(name, '=');
	size_t n = eq ? (size_t)(eq - name) : strlen(name);
	const struct opt *o = find_opt(name, n);
	const char *v;

	if (!o && n > 3 && strncmp(name, "no-", 3) == 0 && !eq) {
		o = find_opt(name + 3, n - 3);
		if (o && is_boolish(o)) {
			record(st, o, "false");
			return;
		}
		o = NULL;
	}
	if (!o) {
		warn_unknown(st, argv[*i], n + 2);
		if (!eq && *i + 1 < argc && argv[*i + 1] && argv[*i + 1][0] != '-')
			(*i)++;
		return;
	}
	if (eq) {
		record(st, o, eq + 1);
		return;
	}
	if (is_boolish(o)) {
		const char *next = *i + 1 < argc ? argv[*i + 1] : NULL;
		if (next && (strcmp(next, "true") == 0 || strcmp(next, "false") == 0)) {
			(*i)++;
			record(st, o, next);
		} else {
			record(st, o, "true");
		}
		return;
	}
	v = take_value(argc, argv, i);
	if (v)
		record(st, o, v);
	else if (o->type != T_IGNORE)
		fail(st, "Not enough arguments following: %s", o->name);
}

/* tokenize_short handles -p (the only short alias) and warns on others. */
static void tokenize_short(struct pstate *st, int argc, char **argv, int *i)
{
	const char *a = argv[*i];
	const struct opt *o = &opts[O_API_PORT];
	const char *v;
	if (a[1] != 'p') {
		warn_unknown(st, a, strcspn(a, "="));
		if (!strchr(a, '=') && *i + 1 < argc && argv[*i + 1] && argv[*i + 1][0] != '-')
			(*i)++;
		return;
	}
	if (a[2] == '=')
		v = a + 3;
	else if (a[2])
		v = a + 2;
	else
		v = take_value(argc, argv, i);
	if (v)
		record(st, o, v);
	else
		fail(st, "Not enough arguments following: p");
}

static void tokenize(struct pstate *st, int argc, char **argv)
{
	int rest = 0;
	for (int i = 1; i < argc; i++) {
		const char *a = argv[i];
		if (!a)
			continue;
		if (!rest && strcmp(a, "--") == 0) {
			rest = 1;
		} else if (!rest && a[0] == '-' && a[1] == '-') {
			tokenize_long(st, argc, argv, &i);
		} else if (!rest && a[0] == '-' && a[1]) {
			tokenize_short(st, argc, argv, &i);
		} else {
			say(st->err, "exposrd: warning: ignoring argument \"%s\"\n", a);
		}
	}
}

/* ---------- phase 2: help and version ---------- */

static void help_hint(const struct opt *o, char *buf, size_t cap)
{
	size_t len = 0;
	buf[0] = '\0';
	switch (o->type) {
	case T_INT: (void)snprintf(buf, cap, " <n>"); return;
	case T_PORT: case T_IGNORE: (void)snprintf(buf, cap, " <port>"); return;
	case T_STR: (void)snprintf(buf, cap, " <string>"); return;
	case T_URL: (void)snprintf(buf, cap, " <url>"); return;
	case T_IP: (void)snprintf(buf, cap, " <ip>"); return;
	case T_LIST:
	case T_CHOICE:
		for (size_t i = 0; o->choices[i]; i++) {
			int n = snprintf(buf + len, cap - len, "%s%s", i ? (o->type == T_LIST ? "," : "|") : " <",
					 o->choices[i]);
			if (n < 0 || (size_t)n >= cap - len)
				return;
			len += (size_t)n;
		}
		(void)snprintf(buf + len, cap - len, ">");
		return;
	default:
		return;
	}
}

static void help_line(FILE *out, const struct opt *o)
{
	char hint[128];
	int col;
	help_hint(o, hint, sizeof(hint));
	col = fprintf(out, "  %s--%s%s", o == &opts[O_API_PORT] ? "-p, " : "", o->name, hint);
	if (col < 0)
		return;
	if (col + 2 > CONFIG_HELP_COLUMN)
		(void)fprintf(out, "\n%*s", CONFIG_HELP_COLUMN, "");
	else
		(void)fprintf(out, "%*s", CONFIG_HELP_COLUMN - col, "");
	(void)fprintf(out, "%s", o->help);
	if (o->def && o->type != T_BOOL)
		(void)fprintf(out, " [default: %s]", o->def);
	(void)fprintf(out, "\n");
}

static void print_help(FILE *out, int show_hidden)
{
	if (!out)
		return;
	(void)fprintf(out, "Usage: exposrd [options]\n\n"
		      "Every option can also be set as an environment variable EXPOSR_<NAME>\n"
		      "(e.g. EXPOSR_API_PORT=8080); the command line wins. Booleans accept\n"
		      "--name, --name true|false and --no-name. Lists are repeated or comma-separated.\n");
	for (int g = 0; g < G_COUNT; g++) {
		int shown = 0;
		for (int i = 0; i < O_COUNT; i++) {
			const struct opt *o = &opts[i];
			if (o->group != g || ((o->flags & OPTF_HIDDEN) && !show_hidden))
				continue;
			if (!shown++)
				(void)fprintf(out, "\n%s:\n", group_names[g]);
			help_line(out, o);
		}
	}
}

static void print_version(FILE *out)
{
	if (!out)
		return;
	(void)fprintf(out, "version: %s (pkg %s)\nfeatures:", EXPOSRD_VERSION, EXPOSRD_VERSION);
	int n = 0;
#if WITH_SQLITE
	(void)fprintf(out, " sqlite");
	n++;
#endif
#if WITH_PGSQL
	(void)fprintf(out, " pgsql");
	n++;
#endif
#if WITH_REDIS
	(void)fprintf(out, " redis");
	n++;
#endif
#if WITH_SSH
	(void)fprintf(out, " ssh");
	n++;
#endif
#if WITH_TLS
	(void)fprintf(out, " tls");
	n++;
#endif
	(void)fprintf(out, "%s\n", n ? "" : " none");
}

/* ---------- phase 3 + 4: environment and conversion ---------- */

static void read_env(struct pstate *st)
{
	char name[CONFIG_ENV_NAME_MAX];
	for (int i = 0; i < O_COUNT; i++) {
		const struct opt *o = &opts[i];
		const char *v;
		if (st->given[i] || !takes_env(o))
			continue;
		env_name(o, name, sizeof(name));
		v = env_get(st->envp, name);
		if (!v || v[0] == '\0')
			continue;
		st->given[i] = GIVEN_ENV;
		if (o->type == T_LIST) {
			st->mask[i] = 0;
			(void)parse_list(st, o, v, &st->mask[i]);
		} else {
			st->raw[i] = v;
		}
	}
}

static int apply_all(struct config *c, struct pstate *st)
{
	for (int i = 0; i < O_COUNT && !st->failed; i++) {
		const struct opt *o = &opts[i];
		int rc;
		if (!st->given[i])
			continue;
		if (o->type == T_LIST) {
			*field_mask(c, o) = st->mask[i];
			continue;
		}
		rc = apply(c, st, o, st->raw[i]);
		if (rc == E_NOMEM)
			return rc;
	}
	return 0;
}

/* ---------- phase 5: cross-option rules ---------- */

static int check_required(struct config *c, struct pstate *st)
{
	const char *missing[4];
	size_t n = 0;
	char list[256];
	size_t len = 0;

	if ((c->ingress_mask & CONFIG_INGRESS_HTTP) && !c->ingress_http_url)
		missing[n++] = opts[O_INGRESS_HTTP_URL].name;
	if ((c->ingress_mask & CONFIG_INGRESS_SNI) && !c->ingress_sni_cert)
		missing[n++] = opts[O_INGRESS_SNI_CERT].name;
	if ((c->ingress_mask & CONFIG_INGRESS_SNI) && !c->ingress_sni_key)
		missing[n++] = opts[O_INGRESS_SNI_KEY].name;
	if (c->cluster_mode == CONFIG_CLUSTER_REDIS && !c->cluster_redis_url)
		missing[n++] = opts[O_CLUSTER_REDIS_URL].name;
	if (n == 0)
		return 0;
	list[0] = '\0';
	for (size_t i = 0; i < n; i++) {
		int w = snprintf(list + len, sizeof(list) - len, "%s%s", i ? ", " : "", missing[i]);
		if (w > 0 && (size_t)w < sizeof(list) - len)
			len += (size_t)w;
	}
	fail(st, "Missing required argument%s: %s", n > 1 ? "s" : "", list);
	return E_INVAL;
}

static int storage_type_of(const char *scheme)
{
	if (strcmp(scheme, "memory") == 0)
		return CONFIG_STORAGE_MEMORY;
	if (strcmp(scheme, "sqlite") == 0)
		return CONFIG_STORAGE_SQLITE;
	if (strcmp(scheme, "postgres") == 0 || strcmp(scheme, "postgresql") == 0)
		return CONFIG_STORAGE_PGSQL;
	if (strcmp(scheme, "redis") == 0 || strcmp(scheme, "rediss") == 0)
		return CONFIG_STORAGE_REDIS;
	return -1;
}

/* resolve_storage applies --redis-url to memory storage and picks the type. */
static int resolve_storage(struct config *c, struct pstate *st)
{
	struct url u;
	int type, rc;
	if (!c->storage_url || url_parse(c->storage_url, strlen(c->storage_url), &u) != 0) {
		fail(st, "Invalid URL\n  Argument: storage-url, Given: \"%s\"",
		     c->storage_url ? c->storage_url : "");
		return E_INVAL;
	}
	if (strcmp(u.scheme, "memory") == 0 && c->redis_url) {
		rc = set_str(&c->storage_url, c->redis_url);
		if (rc != 0)
			return rc;
		if (url_parse(c->storage_url, strlen(c->storage_url), &u) != 0)
			return E_INVAL;  /* redis_url was validated as a URL */
	}
	type = storage_type_of(u.scheme);
	if (type < 0) {
		fail(st, "Unsupported storage type %s:. Valid options are redis, postgres or sqlite",
		     u.scheme);
		return E_INVAL;
	}
	c->storage_type = type;
	return 0;
}

static void resolve_cluster(struct config *c)
{
	if (c->cluster_mode != CONFIG_CLUSTER_AUTO)
		return;
	c->cluster_mode_auto = 1;
	if (c->redis_url)
		c->cluster_mode = CONFIG_CLUSTER_REDIS;
	else if (c->storage_type == CONFIG_STORAGE_MEMORY || c->storage_type == CONFIG_STORAGE_SQLITE)
		c->cluster_mode = CONFIG_CLUSTER_SINGLE_NODE;
	else
		c->cluster_mode = CONFIG_CLUSTER_UDP;
}

/* resolve_sqlite_path: sqlite://x -> x, sqlite:///abs -> /abs,
 * sqlite:x -> x; a query or fragment is cut off; empty is an error. */
static int resolve_sqlite_path(struct config *c, struct pstate *st)
{
	const char *p = c->storage_url;
	size_t n;
	if (c->storage_type != CONFIG_STORAGE_SQLITE)
		return 0;
	if (c->cluster_mode != CONFIG_CLUSTER_SINGLE_NODE) {
		fail(st, "SQlite storage can only be used in single-node mode");
		return E_INVAL;
	}
	p += strlen("sqlite:");
	if (p[0] == '/' && p[1] == '/')
		p += 2;
	n = strcspn(p, "?#");
	if (n == 0) {
		fail(st, "SQlite storage requires a database file path, e.g. sqlite:///var/lib/exposrd/db.sqlite");
		return E_INVAL;
	}
	return set_strn(&c->storage_path, p, n);
}

/* resolve_k8s fills the service and namespace from the environment
 * variables they name, unless the options were given. */
static int resolve_k8s(struct config *c, struct pstate *st)
{
	const char *v;
	int rc;
	if (!st->given[O_K8S_SERVICE]) {
		v = env_get(st->envp, c->cluster_udp_discovery_kubernetes_service_env);
		if (v && v[0] && (rc = set_str(&c->cluster_udp_discovery_kubernetes_service, v)) != 0)
			return rc;
	}
	if (!st->given[O_K8S_NAMESPACE]) {
		v = env_get(st->envp, c->cluster_udp_discovery_kubernetes_namespace_env);
		if (v && v[0] && (rc = set_str(&c->cluster_udp_discovery_kubernetes_namespace, v)) != 0)
			return rc;
	}
	return 0;
}

/* parse_hostport parses "<prefix><value>" as a URL with a non-empty host. */
static int parse_host_url(const char *prefix, const char *v, struct url *u)
{
	char buf[URL_MAX];
	size_t pn = strlen(prefix), vn = strlen(v);
	if (pn + vn >= sizeof(buf))
		return E_INVAL;
	memcpy(buf, prefix, pn);
	memcpy(buf + pn, v, vn);
	if (url_parse(buf, pn + vn, u) != 0 || u->host[0] == '\0')
		return E_INVAL;
	return 0;
}

static int resolve_sni_host(struct config *c, struct pstate *st)
{
	struct url u;
	const char *v = c->ingress_sni_host;
	if (!v)
		return 0;
	if (parse_host_url(strstr(v, "://") ? "" : "tcp://", v, &u) != 0) {
		fail(st, "Invalid values:\n  Argument: ingress-sni-host, Given: \"%s\", Expected: [scheme://]host[:port]", v);
		return E_INVAL;
	}
	c->ingress_sni_host_port = u.port;
	return set_str(&c->ingress_sni_host_name, u.host);
}

static int resolve_ssh_host(struct config *c, struct pstate *st)
{
	struct url u;
	char hp[URL_HOST_MAX + 16];
	int rc;
	if (!c->transport_ssh_host)
		return 0;
	if (parse_host_url("ssh://", c->transport_ssh_host, &u) != 0) {
		fail_only(st, "Invalid hostname %s", c->transport_ssh_host);
		return E_INVAL;
	}
	if (u.port)
		(void)snprintf(hp, sizeof(hp), u.ipv6 ? "[%s]:%d" : "%s:%d", u.host, u.port);
	else
		(void)snprintf(hp, sizeof(hp), u.ipv6 ? "[%s]" : "%s", u.host);
	c->transport_ssh_host_port = u.port;
	if ((rc = set_str(&c->transport_ssh_host_name, u.host)) != 0)
		return rc;
	return set_str(&c->transport_ssh_host, hp);
}

/* key_has_marker looks for "BEGIN <label>PRIVATE KEY" (case-insensitive),
 * which covers OPENSSH, RSA, EC and PKCS#8 PEM headers. */
static int key_has_marker(const char *s, size_t n)
{
	static const char begin[] = "BEGIN ";
	static const char tail[] = "PRIVATE KEY";
	const size_t bl = sizeof(begin) - 1, tl = sizeof(tail) - 1;
	for (size_t i = 0; i + bl <= n; i++) {
		size_t j;
		if (!ascii_ncaseeq(s + i, begin, bl))
			continue;
		j = i + bl;
		while (j < n && j - i < 80 &&
		       ((s[j] >= 'A' && s[j] <= 'Z') || (s[j] >= 'a' && s[j] <= 'z') ||
			(s[j] >= '0' && s[j] <= '9') || s[j] == ' '))
			j++;
		if (j - (i + bl) >= tl && ascii_ncaseeq(s + j - tl, tail, tl))
			return 1;
	}
	return 0;
}

/* read_key_file reads a regular file of at most OPT_MAX_SSH_KEY_BYTES.
 * Returns 1 with *out set, 0 when path is not a readable regular file,
 * E_LIMIT when it is too big, or E_NOMEM. */
static int read_key_file(const char *path, char **out, size_t *outlen)
{
	struct stat sb;
	char *buf;
	size_t len = 0;
	int fd = open(path, O_RDONLY | O_NONBLOCK | O_NOCTTY);
	if (fd < 0)
		return 0;
	if (fstat(fd, &sb) != 0 || !S_ISREG(sb.st_mode)) {
		(void)close(fd);
		return 0;
	}
	if (sb.st_size > OPT_MAX_SSH_KEY_BYTES) {
		(void)close(fd);
		return E_LIMIT;
	}
	buf = malloc(OPT_MAX_SSH_KEY_BYTES + 1);
	if (!buf) {
		(void)close(fd);
		return E_NOMEM;
	}
	for (;;) {
		ssize_t r = read(fd, buf + len, OPT_MAX_SSH_KEY_BYTES + 1 - len);
		if (r <= 0)
			break;
		len += (size_t)r;
		if (len > OPT_MAX_SSH_KEY_BYTES)
			break;
	}
	(void)close(fd);
	if (len > OPT_MAX_SSH_KEY_BYTES) {
		free(buf);
		return E_LIMIT;
	}
	buf[len] = '\0';
	*out = buf;
	*outlen = len;
	return 1;
}

static int b64_value(int ch)
{
	if (ch >= 'A' && ch <= 'Z')
		return ch - 'A';
	if (ch >= 'a' && ch <= 'z')
		return ch - 'a' + 26;
	if (ch >= '0' && ch <= '9')
		return ch - '0' + 52;
	if (ch == '+')
		return 62;
	if (ch == '/')
		return 63;
	return -1;
}

/* b64_decode decodes standard base64 (whitespace ignored, padding
 * optional) into a NUL-terminated heap buffer. */
static int b64_decode(const char *s, size_t n, char **out, size_t *outlen)
{
	char *buf = malloc(n / 4 * 3 + 4);
	unsigned long acc = 0;
	int bits = 0, pad = 0;
	size_t len = 0;
	if (!buf)
		return E_NOMEM;
	for (size_t i = 0; i < n; i++) {
		int ch = (unsigned char)s[i], v;
		if (ch == ' ' || ch == '\n' || ch == '\r' || ch == '\t')
			continue;
		if (ch == '=') {
			pad = 1;
			continue;
		}
		v = b64_value(ch);
		if (v < 0 || pad) {
			free(buf);
			return E_INVAL;
		}
		acc = ((acc << 6) | (unsigned long)v) & 0xffffff;
		bits += 6;
		if (bits >= 8) {
			bits -= 8;
			buf[len++] = (char)((acc >> bits) & 0xff);
		}
	}
	buf[len] = '\0';
	*out = buf;
	*outlen = len;
	return 0;
}

/* key_ok: private-key text without NUL bytes. */
static int key_ok(const char *s, size_t n)
{
	return n > 0 && memchr(s, '\0', n) == NULL && key_has_marker(s, n);
}

/* resolve_ssh_key: a readable file's contents, else PEM text as is, else
 * base64 of PEM text. */
static int resolve_ssh_key(struct config *c, struct pstate *st)
{
	const char *in = c->transport_ssh_key;
	char *text = NULL;
	size_t n, tlen = 0;
	int rc;

	if (!in)
		return 0;
	n = strlen(in);
	if (n == 0 || n > OPT_MAX_SSH_KEY_BYTES)
		goto bad;
	rc = read_key_file(in, &text, &tlen);
	if (rc == E_NOMEM)
		return rc;
	if (rc == E_LIMIT)
		goto bad;
	if (rc == 0) {
		if (key_ok(in, n)) {
			c->transport_ssh_key_len = n;
			return 0;
		}
		rc = b64_decode(in, n, &text, &tlen);
		if (rc == E_NOMEM)
			return rc;
	}
	if (text && !key_ok(text, tlen)) {
		free(text);
		text = NULL;
	}
	if (!text)
		goto bad;
	free(c->transport_ssh_key);
	c->transport_ssh_key = text;
	c->transport_ssh_key_len = tlen;
	return 0;
bad:
	fail_only(st, "transport-ssh-key requires either path to key or key content, got %s", in);
	return E_INVAL;
}

static int resolve(struct config *c, struct pstate *st)
{
	int rc;
	if (!c->ingress_http_url && c->ingress_http_domain &&
	    (rc = set_str(&c->ingress_http_url, c->ingress_http_domain)) != 0)
		return rc;
	if (!c->cluster_redis_url && c->redis_url &&
	    (rc = set_str(&c->cluster_redis_url, c->redis_url)) != 0)
		return rc;
	if ((rc = check_required(c, st)) != 0)
		return rc;
	if ((rc = resolve_storage(c, st)) != 0)
		return rc;
	resolve_cluster(c);
	if ((rc = resolve_sqlite_path(c, st)) != 0)
		return rc;
	if ((rc = resolve_k8s(c, st)) != 0)
		return rc;
	if ((rc = resolve_sni_host(c, st)) != 0)
		return rc;
	if ((rc = resolve_ssh_host(c, st)) != 0)
		return rc;
	return resolve_ssh_key(c, st);
}

/* ---------- public API ---------- */

int config_init(struct config *c)
{
	struct pstate st;
	memset(c, 0, sizeof(*c));
	memset(&st, 0, sizeof(st));
	for (int i = 0; i < O_COUNT; i++) {
		if (opts[i].def && apply(c, &st, &opts[i], opts[i].def) == E_NOMEM)
			return E_NOMEM;
	}
	return 0;
}

int config_parse(struct config *c, int argc, char **argv, char **envp,
		 FILE *out, FILE *err)
{
	struct pstate *st = calloc(1, sizeof(*st));
	int rc;
	if (!st)
		return E_NOMEM;
	st->out = out;
	st->err = err;
	st->envp = envp;

	tokenize(st, argc, argv);
	if (st->help || st->version) {
		if (st->help)
			print_help(out, st->show_hidden);
		else
			print_version(out);
		free(st);
		return 1;
	}
	read_env(st);
	rc = apply_all(c, st);
	if (rc == 0 && !st->failed)
		rc = resolve(c, st);
	if (rc != E_NOMEM && st->failed) {
		if (st->msg_only)
			say(err, "%s\n", st->msg);
		else
			say(err, "%s\n\n%s\n", USAGE_LINE, st->msg);
		rc = E_INVAL;
	}
	free(st);
	return rc;
}

void config_free(struct config *c)
{
	if (!c)
		return;
	for (int i = 0; i < O_COUNT; i++) {
		const struct opt *o = &opts[i];
		if (o->type == T_STR || o->type == T_URL || o->type == T_IP)
			free(*field_str(c, o));
	}
	free(c->ingress_sni_host_name);
	free(c->transport_ssh_host_name);
	free(c->storage_path);
	memset(c, 0, sizeof(*c));
}

const char *config_cluster_name(int mode)
{
	if (mode >= 0 && mode < (int)(sizeof(ch_cluster) / sizeof(ch_cluster[0])) - 1)
		return ch_cluster[mode];
	return "unknown";
}

const char *config_storage_name(int type)
{
	static const char *const names[] = { "memory", "sqlite", "postgres", "redis" };
	if (type >= 0 && type < (int)(sizeof(names) / sizeof(names[0])))
		return names[type];
	return "unknown";
}
