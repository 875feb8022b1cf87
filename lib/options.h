/* options.h - compiled-in defaults and option limits.
 *
 * Every default of a command-line option lives here, in the style of
 * dropbear's default_options.h. Each one can be overridden at run time
 * with the option named in the comment, or with its EXPOSR_* environment
 * variable (the option name upper-cased, '-' replaced by '_'). See
 * /work/shared/spec/config.md section 2 for their meaning.
 *
 * Numbers are plain integers; config.c stringifies them for --help, so
 * keep them as bare decimal literals.
 */
#ifndef EXPOSRD_OPTIONS_H
#define EXPOSRD_OPTIONS_H

/* Prefix of the environment variables that mirror the options. */
#define OPT_ENV_PREFIX "EXPOSR_"

/* --- Ingress --- */
#define OPT_DEFAULT_INGRESS "http"                     /* --ingress (list: http, sni) */
#define OPT_DEFAULT_INGRESS_HTTP_PORT 8080             /* --ingress-http-port */
#define OPT_DEFAULT_INGRESS_HTTP_AGENT_IDLE_TIMEOUT 60 /* --ingress-http-agent-idle-timeout, seconds */
#define OPT_DEFAULT_INGRESS_SNI_PORT 4430              /* --ingress-sni-port */

/* --- Transport --- */
#define OPT_DEFAULT_TRANSPORT "ws"                     /* --transport (list: ws, ssh) */
#define OPT_DEFAULT_TRANSPORT_MAX_CONNECTIONS 2        /* --transport-max-connections, per tunnel */
#define OPT_DEFAULT_TRANSPORT_SSH_PORT 2200            /* --transport-ssh-port */

/* --- Admin --- */
#define OPT_DEFAULT_ADMIN_PORT 8081                    /* --admin-port */
#define OPT_DEFAULT_ADMIN_API_PORT 8081                /* --admin-api-port (shares the admin listener) */

/* --- API --- */
#define OPT_DEFAULT_API_PORT 8080                      /* --api-port, -p */

/* --- Cluster --- */
#define OPT_DEFAULT_CLUSTER "auto"                     /* --cluster */
#define OPT_DEFAULT_CLUSTER_KEY "secret-signing-key"   /* --cluster-key */
#define OPT_DEFAULT_CLUSTER_UDP_DISCOVERY "auto"       /* --cluster-udp-discovery */
#define OPT_DEFAULT_CLUSTER_UDP_PORT 1025              /* --cluster-udp-port */
#define OPT_DEFAULT_CLUSTER_UDP_DISCOVERY_MULTICAST_GROUP "239.0.0.1"
#define OPT_DEFAULT_CLUSTER_UDP_DISCOVERY_KUBERNETES_SERVICE "exposr-headless"
#define OPT_DEFAULT_CLUSTER_UDP_DISCOVERY_KUBERNETES_NAMESPACE "default"
#define OPT_DEFAULT_CLUSTER_UDP_DISCOVERY_KUBERNETES_SERVICE_ENV "SERVICE_NAME"
#define OPT_DEFAULT_CLUSTER_UDP_DISCOVERY_KUBERNETES_NAMESPACE_ENV "POD_NAMESPACE"
#define OPT_DEFAULT_CLUSTER_UDP_DISCOVERY_KUBERNETES_CLUSTER_DOMAIN "cluster.local"

/* --- Storage --- */
#define OPT_DEFAULT_STORAGE_URL "memory://"            /* --storage-url */
#define OPT_DEFAULT_STORAGE_PGSQL_CONNECTION_POOL_SIZE 10

/* --- Logging --- */
#define OPT_DEFAULT_LOG_LEVEL "info"                   /* --log-level */
#define OPT_DEFAULT_LOG_FORMAT "json"                  /* --log-format (json, text) */

/* --- Limits --- */
/* Largest --transport-ssh-key accepted, as text, base64 or file. */
#define OPT_MAX_SSH_KEY_BYTES 65536
/* Longest usage-error message kept (longer values are cut). */
#define OPT_MAX_MESSAGE 1024

#endif
