/* t-config.c - unit tests for lib/config.c */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "config.h"
#include "err.h"
#include "options.h"
#include "test.h"

#define U "--ingress-http-url=http://localhost:8080"
#define USAGE "Usage: exposrd [options]  (see --help)\n\n"

static char out_text[65536];
static char err_text[65536];

static void slurp(FILE *f, char *buf, size_t cap)
{
	size_t n;
	rewind(f);
	n = fread(buf, 1, cap - 1, f);
	buf[n] = '\0';
	fclose(f);
}

/* parse runs config_init + config_parse and captures both streams. */
static int parse(struct config *c, char **envp, char **argv)
{
	int argc = 0, rc;
	FILE *o = tmpfile(), *e = tmpfile();
	if (!o || !e) {
		printf("# tmpfile failed\n");
		exit(2);
	}
	while (argv[argc])
		argc++;
	if (config_init(c) != 0) {
		printf("# config_init failed\n");
		exit(2);
	}
	rc = config_parse(c, argc, argv, envp, o, e);
	slurp(o, out_text, sizeof(out_text));
	slurp(e, err_text, sizeof(err_text));
	return rc;
}

#define ARGS(...) ((char *[]){ "exposrd", __VA_ARGS__, NULL })
#define ENV(...) ((char *[]){ __VA_ARGS__, NULL })
#define P(c, ...) parse((c), NULL, ARGS(__VA_ARGS__))
#define PE(c, env, ...) parse((c), (env), ARGS(__VA_ARGS__))

/* expect_error checks rc == E_INVAL and that err is USAGE + msg + "\n". */
static int expect_usage(int rc, const char *msg)
{
	char want[4096];
	(void)snprintf(want, sizeof(want), USAGE "%s\n", msg);
	if (rc != E_INVAL || strcmp(err_text, want) != 0) {
		printf("#   rc=%d err=[%s] want=[%s]\n", rc, err_text, want);
		return 0;
	}
	return 1;
}

/* One usage-error case: argv (NULL-terminated after "exposrd") and the
 * message line(s). */
static int usage_case(const char *msg, char **argv)
{
	struct config c;
	int rc = parse(&c, NULL, argv);
	int ok = expect_usage(rc, msg);
	config_free(&c);
	return ok;
}

TEST(test_defaults)
{
	struct config c;
	CHECK_EQ(P(&c, U), 0);
	CHECK_STR(err_text, "");
	CHECK_EQ(c.ingress_mask, CONFIG_INGRESS_HTTP);
	CHECK_STR(c.ingress_http_url, "http://localhost:8080");
	CHECK_EQ(c.ingress_http_port, 8080);
	CHECK_EQ(c.ingress_http_agent_idle_timeout, 60);
	CHECK_EQ(c.ingress_sni_port, 4430);
	CHECK(c.ingress_sni_host == NULL && c.ingress_sni_host_name == NULL);
	CHECK_EQ(c.ingress_sni_host_port, 0);
	CHECK(c.ingress_sni_cert == NULL && c.ingress_sni_key == NULL);
	CHECK_EQ(c.transport_mask, CONFIG_TRANSPORT_WS);
	CHECK_EQ(c.transport_max_connections, 2);
	CHECK_EQ(c.transport_ssh_port, 2200);
	CHECK(c.transport_ssh_host == NULL && c.transport_ssh_host_name == NULL);
	CHECK(c.transport_ssh_key == NULL);
	CHECK_EQ(c.transport_ssh_key_len, 0);
	CHECK_EQ(c.transport_ssh_allow_insecure_target, 0);
	CHECK_EQ(c.admin_enable, 0);
	CHECK_EQ(c.admin_port, 8081);
	CHECK_EQ(c.admin_api_enable, 0);
	CHECK_EQ(c.admin_api_port, 8081);
	CHECK(c.admin_api_key == NULL);
	CHECK_EQ(c.admin_api_allow_access_without_key, 0);
	CHECK(c.api_url == NULL);
	CHECK_EQ(c.api_port, 8080);
	CHECK_EQ(c.allow_registration, 0);
	CHECK_EQ(c.cluster_mode, CONFIG_CLUSTER_SINGLE_NODE);
	CHECK_STR(c.cluster_key, "secret-signing-key");
	CHECK_EQ(c.cluster_udp_discovery, CONFIG_DISCOVERY_AUTO);
	CHECK_EQ(c.cluster_udp_port, 1025);
	CHECK_STR(c.cluster_udp_discovery_multicast_group, "239.0.0.1");
	CHECK_STR(c.cluster_udp_discovery_kubernetes_service, "exposr-headless");
	CHECK_STR(c.cluster_udp_discovery_kubernetes_namespace, "default");
	CHECK_STR(c.cluster_udp_discovery_kubernetes_service_env, "SERVICE_NAME");
	CHECK_STR(c.cluster_udp_discovery_kubernetes_namespace_env, "POD_NAMESPACE");
	CHECK_STR(c.cluster_udp_discovery_kubernetes_cluster_domain, "cluster.local");
	CHECK(c.cluster_redis_url == NULL && c.cluster_node_ip == NULL);
	CHECK_EQ(c.storage_type, CONFIG_STORAGE_MEMORY);
	CHECK_STR(c.storage_url, "memory://");
	CHECK(c.storage_path == NULL);
	CHECK_EQ(c.storage_pgsql_connection_pool_size, 10);
	CHECK(c.redis_url == NULL && c.ingress_http_domain == NULL);
	CHECK_EQ(c.log_level, CONFIG_LOG_INFO);
	CHECK_EQ(c.log_format, CONFIG_LOG_FORMAT_JSON);
	config_free(&c);
	config_free(&c);  /* twice is safe */
}

TEST(test_init_only)
{
	struct config c;
	CHECK_EQ(config_init(&c), 0);
	CHECK_EQ(c.api_port, OPT_DEFAULT_API_PORT);
	CHECK_EQ(c.cluster_mode, CONFIG_CLUSTER_AUTO);
	CHECK_STR(c.storage_url, OPT_DEFAULT_STORAGE_URL);
	config_free(&c);
}

static void check_all_set(struct config *c)
{
	CHECK_EQ(c->ingress_mask, CONFIG_INGRESS_HTTP | CONFIG_INGRESS_SNI);
	CHECK_STR(c->ingress_http_url, "https://tun.example.com");
	CHECK_EQ(c->ingress_http_port, 8000);
	CHECK_EQ(c->ingress_http_agent_idle_timeout, 5);
	CHECK_EQ(c->ingress_sni_port, 4431);
	CHECK_STR(c->ingress_sni_host, "example.com:443");
	CHECK_STR(c->ingress_sni_host_name, "example.com");
	CHECK_EQ(c->ingress_sni_host_port, 443);
	CHECK_STR(c->ingress_sni_cert, "/c.pem");
	CHECK_STR(c->ingress_sni_key, "/k.pem");
	CHECK_EQ(c->transport_mask, CONFIG_TRANSPORT_WS | CONFIG_TRANSPORT_SSH);
	CHECK_EQ(c->transport_max_connections, 4);
	CHECK_EQ(c->transport_ssh_port, 2222);
	CHECK_STR(c->transport_ssh_host, "localhost:22");
	CHECK_STR(c->transport_ssh_host_name, "localhost");
	CHECK_EQ(c->transport_ssh_host_port, 22);
	CHECK_EQ(c->transport_ssh_allow_insecure_target, 1);
	CHECK_EQ(c->admin_enable, 1);
	CHECK_EQ(c->admin_port, 9001);
	CHECK_EQ(c->admin_api_enable, 1);
	CHECK_EQ(c->admin_api_port, 9002);
	CHECK_STR(c->admin_api_key, "k3y");
	CHECK_EQ(c->admin_api_allow_access_without_key, 1);
	CHECK_STR(c->api_url, "http://api.example.com");
	CHECK_EQ(c->api_port, 9000);
	CHECK_EQ(c->allow_registration, 1);
	CHECK_EQ(c->cluster_mode, CONFIG_CLUSTER_UDP);
	CHECK_STR(c->cluster_key, "sign");
	CHECK_EQ(c->cluster_udp_discovery, CONFIG_DISCOVERY_KUBERNETES);
	CHECK_EQ(c->cluster_udp_port, 1026);
	CHECK_STR(c->cluster_udp_discovery_multicast_group, "239.1.2.3");
	CHECK_STR(c->cluster_udp_discovery_kubernetes_service, "svc");
	CHECK_STR(c->cluster_udp_discovery_kubernetes_namespace, "ns");
	CHECK_STR(c->cluster_udp_discovery_kubernetes_service_env, "MY_SVC");
	CHECK_STR(c->cluster_udp_discovery_kubernetes_namespace_env, "MY_NS");
	CHECK_STR(c->cluster_udp_discovery_kubernetes_cluster_domain, "k8s.local");
	CHECK_STR(c->cluster_redis_url, "redis://r:6379");
	CHECK_STR(c->cluster_node_ip, "10.0.0.7");
	CHECK_EQ(c->storage_type, CONFIG_STORAGE_PGSQL);
	CHECK_STR(c->storage_url, "postgres://u:p@db/exposr");
	CHECK_EQ(c->storage_pgsql_connection_pool_size, 3);
	CHECK_EQ(c->log_level, CONFIG_LOG_DEBUG);
	CHECK_EQ(c->log_format, CONFIG_LOG_FORMAT_TEXT);
}

TEST(test_all_options_argv)
{
	struct config c;
	int rc = P(&c,
		"--ingress", "http", "--ingress", "sni",
		"--ingress-http-url", "https://tun.example.com",
		"--ingress-http-port", "8000",
		"--ingress-http-agent-idle-timeout", "5",
		"--ingress-sni-port", "4431",
		"--ingress-sni-host", "example.com:443",
		"--ingress-sni-cert", "/c.pem",
		"--ingress-sni-key=/k.pem",
		"--transport", "ws,ssh",
		"--transport-max-connections", "4",
		"--transport-ws-port", "1234",
		"--transport-ssh-port", "2222",
		"--transport-ssh-host", "localhost:22",
		"--transport-ssh-allow-insecure-target",
		"--admin-enable",
		"--admin-port", "9001",
		"--admin-api-enable", "true",
		"--admin-api-port", "9002",
		"--admin-api-key", "k3y",
		"--admin-api-allow-access-without-key=true",
		"--api-url", "http://api.example.com",
		"-p", "9000",
		"--allow-registration",
		"--cluster", "udp",
		"--cluster-key", "sign",
		"--cluster-udp-discovery", "kubernetes",
		"--cluster-udp-port", "1026",
		"--cluster-udp-discovery-multicast-group", "239.1.2.3",
		"--cluster-udp-discovery-kubernetes-service", "svc",
		"--cluster-udp-discovery-kubernetes-namespace", "ns",
		"--cluster-udp-discovery-kubernetes-service-env", "MY_SVC",
		"--cluster-udp-discovery-kubernetes-namespace-env", "MY_NS",
		"--cluster-udp-discovery-kubernetes-cluster-domain", "k8s.local",
		"--cluster-redis-url", "redis://r:6379",
		"--cluster-node-ip", "10.0.0.7",
		"--storage-url", "postgres://u:p@db/exposr",
		"--storage-pgsql-connection-pool-size", "3",
		"--log-level", "debug",
		"--log-format", "text");
	CHECK_EQ(rc, 0);
	CHECK_STR(err_text, "");
	check_all_set(&c);
	config_free(&c);
}

TEST(test_all_options_env)
{
	struct config c;
	int rc = PE(&c, ENV(
		"PATH=/bin",
		"EXPOSR_INGRESS=http,sni",
		"EXPOSR_INGRESS_HTTP_URL=https://tun.example.com",
		"EXPOSR_INGRESS_HTTP_PORT=8000",
		"EXPOSR_INGRESS_HTTP_AGENT_IDLE_TIMEOUT=5",
		"EXPOSR_INGRESS_SNI_PORT=4431",
		"EXPOSR_INGRESS_SNI_HOST=example.com:443",
		"EXPOSR_INGRESS_SNI_CERT=/c.pem",
		"EXPOSR_INGRESS_SNI_KEY=/k.pem",
		"EXPOSR_TRANSPORT=ws,ssh",
		"EXPOSR_TRANSPORT_MAX_CONNECTIONS=4",
		"EXPOSR_TRANSPORT_WS_PORT=1234",
		"EXPOSR_TRANSPORT_SSH_PORT=2222",
		"EXPOSR_TRANSPORT_SSH_HOST=localhost:22",
		"EXPOSR_TRANSPORT_SSH_ALLOW_INSECURE_TARGET=true",
		"EXPOSR_ADMIN_ENABLE=true",
		"EXPOSR_ADMIN_PORT=9001",
		"EXPOSR_ADMIN_API_ENABLE=true",
		"EXPOSR_ADMIN_API_PORT=9002",
		"EXPOSR_ADMIN_API_KEY=k3y",
		"EXPOSR_ADMIN_API_ALLOW_ACCESS_WITHOUT_KEY=true",
		"EXPOSR_API_URL=http://api.example.com",
		"EXPOSR_API_PORT=9000",
		"EXPOSR_ALLOW_REGISTRATION=true",
		"EXPOSR_CLUSTER=udp",
		"EXPOSR_CLUSTER_KEY=sign",
		"EXPOSR_CLUSTER_UDP_DISCOVERY=kubernetes",
		"EXPOSR_CLUSTER_UDP_PORT=1026",
		"EXPOSR_CLUSTER_UDP_DISCOVERY_MULTICAST_GROUP=239.1.2.3",
		"EXPOSR_CLUSTER_UDP_DISCOVERY_KUBERNETES_SERVICE=svc",
		"EXPOSR_CLUSTER_UDP_DISCOVERY_KUBERNETES_NAMESPACE=ns",
		"EXPOSR_CLUSTER_UDP_DISCOVERY_KUBERNETES_SERVICE_ENV=MY_SVC",
		"EXPOSR_CLUSTER_UDP_DISCOVERY_KUBERNETES_NAMESPACE_ENV=MY_NS",
		"EXPOSR_CLUSTER_UDP_DISCOVERY_KUBERNETES_CLUSTER_DOMAIN=k8s.local",
		"EXPOSR_CLUSTER_REDIS_URL=redis://r:6379",
		"EXPOSR_CLUSTER_NODE_IP=10.0.0.7",
		"EXPOSR_STORAGE_URL=postgres://u:p@db/exposr",
		"EXPOSR_STORAGE_PGSQL_CONNECTION_POOL_SIZE=3",
		"EXPOSR_LOG_LEVEL=debug",
		"EXPOSR_LOG_FORMAT=text"), "--log-level=debug");
	CHECK_EQ(rc, 0);
	CHECK_STR(err_text, "");
	check_all_set(&c);
	config_free(&c);
}

TEST(test_precedence)
{
	struct config c;
	char **env = ENV("EXPOSR_API_PORT=1111", "EXPOSR_INGRESS=sni",
			 "EXPOSR_ADMIN_ENABLE=true", "EXPOSR_LOG_LEVEL=warn",
			 "EXPOSR_INGRESS_HTTP_URL=http://env.example");
	CHECK_EQ(PE(&c, env, "--api-port", "2222", "--ingress", "http",
		    "--no-admin-enable", U), 0);
	CHECK_EQ(c.api_port, 2222);
	CHECK_EQ(c.ingress_mask, CONFIG_INGRESS_HTTP);  /* argv replaces env list */
	CHECK_EQ(c.admin_enable, 0);
	CHECK_EQ(c.log_level, CONFIG_LOG_WARN);         /* env where argv is silent */
	CHECK_STR(c.ingress_http_url, "http://localhost:8080");
	config_free(&c);

	/* Env alone provides the required URL. */
	CHECK_EQ(PE(&c, ENV("EXPOSR_INGRESS_HTTP_URL=http://env.example"), "--admin-enable"), 0);
	CHECK_STR(c.ingress_http_url, "http://env.example");
	config_free(&c);

	/* Empty environment values count as unset; envp NULL is empty. */
	CHECK_EQ(PE(&c, ENV("EXPOSR_API_PORT=", "EXPOSR_API_URL=", "EXPOSR_INGRESS_HTTP_URL="), U), 0);
	CHECK_EQ(c.api_port, 8080);
	CHECK(c.api_url == NULL);
	config_free(&c);

	/* Last value wins on the command line. */
	CHECK_EQ(P(&c, U, "-p", "1", "--api-port=2", "-p3"), 0);
	CHECK_EQ(c.api_port, 3);
	config_free(&c);
	CHECK_EQ(P(&c, U, "-p=4"), 0);
	CHECK_EQ(c.api_port, 4);
	config_free(&c);
}

TEST(test_booleans)
{
	struct config c;
	CHECK_EQ(P(&c, U, "--admin-enable"), 0);
	CHECK_EQ(c.admin_enable, 1);
	config_free(&c);
	CHECK_EQ(P(&c, U, "--admin-enable", "true"), 0);
	CHECK_EQ(c.admin_enable, 1);
	CHECK_STR(err_text, "");
	config_free(&c);
	CHECK_EQ(P(&c, U, "--admin-enable", "false"), 0);
	CHECK_EQ(c.admin_enable, 0);
	CHECK_STR(err_text, "");
	config_free(&c);
	CHECK_EQ(P(&c, U, "--admin-enable=false"), 0);
	CHECK_EQ(c.admin_enable, 0);
	config_free(&c);
	CHECK_EQ(P(&c, U, "--admin-enable=true"), 0);
	CHECK_EQ(c.admin_enable, 1);
	config_free(&c);
	CHECK_EQ(P(&c, U, "--admin-enable", "--no-admin-enable"), 0);
	CHECK_EQ(c.admin_enable, 0);
	config_free(&c);
	/* A bare boolean does not swallow a following option. */
	CHECK_EQ(P(&c, "--admin-enable", U, "--allow-registration"), 0);
	CHECK_EQ(c.admin_enable, 1);
	CHECK_EQ(c.allow_registration, 1);
	config_free(&c);
	/* A non-boolean word after a bare boolean is a positional (warned). */
	CHECK_EQ(P(&c, U, "--admin-enable", "1"), 0);
	CHECK_EQ(c.admin_enable, 1);
	CHECK(strstr(err_text, "ignoring argument \"1\"") != NULL);
	config_free(&c);
	CHECK_EQ(PE(&c, ENV("EXPOSR_ADMIN_ENABLE=false"), U), 0);
	CHECK_EQ(c.admin_enable, 0);
	config_free(&c);
	CHECK_EQ(PE(&c, ENV("EXPOSR_ALLOW_REGISTRATION=true"), U), 0);
	CHECK_EQ(c.allow_registration, 1);
	config_free(&c);
	CHECK(expect_usage(PE(&c, ENV("EXPOSR_ADMIN_ENABLE=yes"), U),
		"Invalid values:\n  Argument: admin-enable, Given: \"yes\", Choices: \"true\", \"false\""));
	config_free(&c);
	CHECK(usage_case("Invalid values:\n  Argument: admin-enable, Given: \"maybe\", Choices: \"true\", \"false\"",
		ARGS(U, "--admin-enable=maybe")));
}

TEST(test_lists)
{
	struct config c;
	CHECK_EQ(P(&c, U, "--transport", "ws", "--transport", "ssh"), 0);
	CHECK_EQ(c.transport_mask, CONFIG_TRANSPORT_WS | CONFIG_TRANSPORT_SSH);
	config_free(&c);
	CHECK_EQ(P(&c, U, "--transport", "ssh"), 0);
	CHECK_EQ(c.transport_mask, CONFIG_TRANSPORT_SSH);  /* replaces the default */
	config_free(&c);
	CHECK_EQ(P(&c, U, "--transport=ssh,ws,ssh"), 0);
	CHECK_EQ(c.transport_mask, CONFIG_TRANSPORT_WS | CONFIG_TRANSPORT_SSH);
	config_free(&c);
	CHECK_EQ(PE(&c, ENV("EXPOSR_TRANSPORT=ws,ssh"), U), 0);
	CHECK_EQ(c.transport_mask, CONFIG_TRANSPORT_WS | CONFIG_TRANSPORT_SSH);
	config_free(&c);
	CHECK_EQ(P(&c, "--ingress", "http,sni", U, "--ingress-sni-cert", "c", "--ingress-sni-key", "k"), 0);
	CHECK_EQ(c.ingress_mask, CONFIG_INGRESS_HTTP | CONFIG_INGRESS_SNI);
	config_free(&c);
	CHECK(usage_case("Invalid values:\n  Argument: ingress, Given: \"ftp\", Choices: \"http\", \"sni\"",
		ARGS(U, "--ingress", "http,ftp")));
	CHECK(usage_case("Invalid values:\n  Argument: transport, Given: \"\", Choices: \"ws\", \"ssh\"",
		ARGS(U, "--transport", "ws,")));
	CHECK(expect_usage(PE(&c, ENV("EXPOSR_TRANSPORT=tcp"), U),
		"Invalid values:\n  Argument: transport, Given: \"tcp\", Choices: \"ws\", \"ssh\""));
	config_free(&c);
}

TEST(test_numbers)
{
	struct config c;
	CHECK_EQ(P(&c, U, "--ingress-http-agent-idle-timeout", "0", "--transport-max-connections", "1",
		   "--api-port", "65535", "--admin-port", "1", "--storage-pgsql-connection-pool-size", "0"), 0);
	CHECK_EQ(c.ingress_http_agent_idle_timeout, 0);
	CHECK_EQ(c.transport_max_connections, 1);
	CHECK_EQ(c.api_port, 65535);
	CHECK_EQ(c.admin_port, 1);
	config_free(&c);
	CHECK(usage_case("Invalid values:\n  Argument: api-port, Given: \"abc\", Expected: an integer from 1 to 65535",
		ARGS(U, "--api-port", "abc")));
	CHECK(usage_case("Invalid values:\n  Argument: api-port, Given: \"0\", Expected: an integer from 1 to 65535",
		ARGS(U, "-p", "0")));
	CHECK(usage_case("Invalid values:\n  Argument: admin-api-port, Given: \"65536\", Expected: an integer from 1 to 65535",
		ARGS(U, "--admin-api-port=65536")));
	CHECK(usage_case("Invalid values:\n  Argument: transport-max-connections, Given: \"0\", Expected: an integer >= 1",
		ARGS(U, "--transport-max-connections", "0")));
	CHECK(usage_case("Invalid values:\n  Argument: transport-max-connections, Given: \"3.5\", Expected: an integer >= 1",
		ARGS(U, "--transport-max-connections", "3.5")));
	CHECK(usage_case("Invalid values:\n  Argument: transport-max-connections, Given: \"abc\", Expected: an integer >= 1",
		ARGS(U, "--transport-max-connections", "abc")));
	CHECK(usage_case("Invalid values:\n  Argument: ingress-http-agent-idle-timeout, Given: \"-1\", Expected: an integer >= 0",
		ARGS(U, "--ingress-http-agent-idle-timeout=-1")));
	CHECK(usage_case("Invalid values:\n  Argument: cluster-udp-port, Given: \" 80\", Expected: an integer from 1 to 65535",
		ARGS(U, "--cluster-udp-port", " 80")));
	CHECK(usage_case("Invalid values:\n  Argument: ingress-sni-port, Given: \"\", Expected: an integer from 1 to 65535",
		ARGS(U, "--ingress-sni-port=")));
	CHECK(usage_case("Invalid values:\n  Argument: storage-pgsql-connection-pool-size, Given: \"99999999999\", Expected: an integer >= 0",
		ARGS(U, "--storage-pgsql-connection-pool-size", "99999999999")));
	CHECK(usage_case("Invalid values:\n  Argument: transport-ssh-port, Given: \"0x50\", Expected: an integer from 1 to 65535",
		ARGS(U, "--transport-ssh-port", "0x50")));
	CHECK(expect_usage(PE(&c, ENV("EXPOSR_INGRESS_HTTP_PORT=http"), U),
		"Invalid values:\n  Argument: ingress-http-port, Given: \"http\", Expected: an integer from 1 to 65535"));
	config_free(&c);
}

TEST(test_urls)
{
	CHECK(usage_case("Invalid URL\n  Argument: ingress-http-url, Given: \"localhost\"",
		ARGS("--ingress-http-url", "localhost")));
	CHECK(usage_case("Invalid URL\n  Argument: ingress-http-url, Given: \"not a url\"",
		ARGS("--ingress-http-url", "not a url")));
	CHECK(usage_case("Invalid URL\n  Argument: api-url, Given: \"http://x:99999\"",
		ARGS(U, "--api-url", "http://x:99999")));
	CHECK(usage_case("Invalid URL\n  Argument: cluster-redis-url, Given: \"redis\"",
		ARGS(U, "--cluster-redis-url", "redis")));
	CHECK(usage_case("Invalid URL\n  Argument: storage-url, Given: \"db.sqlite\"",
		ARGS(U, "--storage-url", "db.sqlite")));
	CHECK(usage_case("Invalid URL\n  Argument: redis-url, Given: \"\"",
		ARGS(U, "--redis-url=")));
	CHECK(usage_case("Invalid URL\n  Argument: ingress-http-domain, Given: \"http://\"",
		ARGS("--ingress-http-domain", "http://")));
	struct config c;
	CHECK(expect_usage(PE(&c, ENV("EXPOSR_API_URL=::"), U),
		"Invalid URL\n  Argument: api-url, Given: \"::\""));
	config_free(&c);
}

TEST(test_choices)
{
	struct config c;
	static const char *const levels[] = { "all", "trace", "debug", "info", "warn", "error", "fatal", "off" };
	for (int i = 0; i < 8; i++) {
		char arg[64];
		(void)snprintf(arg, sizeof(arg), "--log-level=%s", levels[i]);
		CHECK_EQ(P(&c, U, arg), 0);
		CHECK_EQ(c.log_level, CONFIG_LOG_ALL + i);
		config_free(&c);
	}
	CHECK_EQ(P(&c, U, "--log-format", "json"), 0);
	CHECK_EQ(c.log_format, CONFIG_LOG_FORMAT_JSON);
	config_free(&c);
	CHECK_EQ(P(&c, U, "--cluster-udp-discovery", "multicast"), 0);
	CHECK_EQ(c.cluster_udp_discovery, CONFIG_DISCOVERY_MULTICAST);
	config_free(&c);
	CHECK(usage_case("Invalid values:\n  Argument: log-level, Given: \"loud\", Choices: \"all\", \"trace\", \"debug\", \"info\", \"warn\", \"error\", \"fatal\", \"off\"",
		ARGS(U, "--log-level", "loud")));
	CHECK(usage_case("Invalid values:\n  Argument: log-format, Given: \"xml\", Choices: \"json\", \"text\"",
		ARGS(U, "--log-format", "xml")));
	CHECK(usage_case("Invalid values:\n  Argument: cluster, Given: \"mesh\", Choices: \"auto\", \"single-node\", \"udp\", \"redis\"",
		ARGS(U, "--cluster", "mesh")));
	CHECK(usage_case("Invalid values:\n  Argument: cluster-udp-discovery, Given: \"dns\", Choices: \"auto\", \"multicast\", \"kubernetes\"",
		ARGS(U, "--cluster-udp-discovery", "dns")));
	CHECK(usage_case("Invalid values:\n  Argument: log-level, Given: \"INFO\", Choices: \"all\", \"trace\", \"debug\", \"info\", \"warn\", \"error\", \"fatal\", \"off\"",
		ARGS(U, "--log-level", "INFO")));
}

TEST(test_required)
{
	struct config c;
	CHECK(usage_case("Missing required argument: ingress-http-url", ARGS("--admin-enable")));
	CHECK_EQ(parse(&c, NULL, (char *[]){ "exposrd", NULL }), E_INVAL);
	CHECK(strstr(err_text, "Missing required argument: ingress-http-url") != NULL);
	config_free(&c);
	CHECK_EQ(parse(&c, NULL, (char *[]){ NULL }), E_INVAL);  /* argc 0 */
	config_free(&c);
	CHECK(usage_case("Missing required arguments: ingress-sni-cert, ingress-sni-key",
		ARGS("--ingress", "sni")));
	CHECK(usage_case("Missing required arguments: ingress-http-url, ingress-sni-cert, ingress-sni-key",
		ARGS("--ingress", "http,sni")));
	CHECK(usage_case("Missing required argument: ingress-sni-key",
		ARGS("--ingress", "sni", "--ingress-sni-cert", "c.pem")));
	CHECK(usage_case("Missing required argument: cluster-redis-url",
		ARGS(U, "--cluster", "redis")));
	CHECK(usage_case("Missing required arguments: ingress-http-url, cluster-redis-url",
		ARGS("--cluster", "redis")));
	/* sni only: no http URL needed. */
	CHECK_EQ(P(&c, "--ingress", "sni", "--ingress-sni-cert", "c.pem", "--ingress-sni-key", "k.pem"), 0);
	CHECK(c.ingress_http_url == NULL);
	config_free(&c);
	/* --cluster redis satisfied by --redis-url or --cluster-redis-url. */
	CHECK_EQ(P(&c, U, "--cluster", "redis", "--cluster-redis-url", "redis://r"), 0);
	CHECK_EQ(c.cluster_mode, CONFIG_CLUSTER_REDIS);
	CHECK_STR(c.cluster_redis_url, "redis://r");
	CHECK_EQ(c.storage_type, CONFIG_STORAGE_MEMORY);
	config_free(&c);
	CHECK_EQ(P(&c, U, "--cluster", "redis", "--redis-url", "redis://r"), 0);
	CHECK_STR(c.cluster_redis_url, "redis://r");
	config_free(&c);
	/* The deprecated domain option provides the URL. */
	CHECK_EQ(P(&c, "--ingress-http-domain", "https://dom.example"), 0);
	CHECK_STR(c.ingress_http_url, "https://dom.example");
	CHECK_STR(c.ingress_http_domain, "https://dom.example");
	config_free(&c);
	CHECK_EQ(P(&c, "--ingress-http-domain", "https://dom.example", U), 0);
	CHECK_STR(c.ingress_http_url, "http://localhost:8080");
	config_free(&c);
}

TEST(test_cluster_auto)
{
	struct config c;
	CHECK_EQ(P(&c, U, "--cluster", "auto"), 0);
	CHECK_EQ(c.cluster_mode, CONFIG_CLUSTER_SINGLE_NODE);
	config_free(&c);
	CHECK_EQ(P(&c, U, "--storage-url", "redis://x"), 0);
	CHECK_EQ(c.cluster_mode, CONFIG_CLUSTER_UDP);
	CHECK_EQ(c.storage_type, CONFIG_STORAGE_REDIS);
	config_free(&c);
	CHECK_EQ(P(&c, U, "--storage-url", "postgres://db/x"), 0);
	CHECK_EQ(c.cluster_mode, CONFIG_CLUSTER_UDP);
	config_free(&c);
	CHECK_EQ(P(&c, U, "--storage-url", "sqlite://db.sqlite"), 0);
	CHECK_EQ(c.cluster_mode, CONFIG_CLUSTER_SINGLE_NODE);
	config_free(&c);
	CHECK_EQ(P(&c, U, "--redis-url", "redis://x"), 0);
	CHECK_EQ(c.cluster_mode, CONFIG_CLUSTER_REDIS);
	CHECK_STR(c.cluster_redis_url, "redis://x");
	CHECK_STR(c.storage_url, "redis://x");
	CHECK_EQ(c.storage_type, CONFIG_STORAGE_REDIS);
	CHECK_STR(c.redis_url, "redis://x");
	config_free(&c);
	/* --redis-url with explicit storage keeps the storage. */
	CHECK_EQ(P(&c, U, "--redis-url", "redis://x", "--storage-url", "postgres://db/x"), 0);
	CHECK_EQ(c.cluster_mode, CONFIG_CLUSTER_REDIS);
	CHECK_STR(c.storage_url, "postgres://db/x");
	CHECK_EQ(c.storage_type, CONFIG_STORAGE_PGSQL);
	config_free(&c);
	/* Explicit cluster-redis-url wins over --redis-url for the bus. */
	CHECK_EQ(P(&c, U, "--redis-url", "redis://x", "--cluster-redis-url", "redis://y"), 0);
	CHECK_STR(c.cluster_redis_url, "redis://y");
	CHECK_STR(c.storage_url, "redis://x");
	config_free(&c);
	/* Explicit values are used as given. */
	CHECK_EQ(P(&c, U, "--cluster", "single-node", "--storage-url", "redis://x"), 0);
	CHECK_EQ(c.cluster_mode, CONFIG_CLUSTER_SINGLE_NODE);
	config_free(&c);
	CHECK_EQ(P(&c, U, "--cluster", "udp"), 0);
	CHECK_EQ(c.cluster_mode, CONFIG_CLUSTER_UDP);
	config_free(&c);
	CHECK_EQ(PE(&c, ENV("EXPOSR_REDIS_URL=redis://e"), U), 0);
	CHECK_EQ(c.cluster_mode, CONFIG_CLUSTER_REDIS);
	CHECK_STR(c.storage_url, "redis://e");
	config_free(&c);
}

TEST(test_storage)
{
	struct config c;
	CHECK_EQ(P(&c, U, "--storage-url", "memory://"), 0);
	CHECK_EQ(c.storage_type, CONFIG_STORAGE_MEMORY);
	CHECK(c.storage_path == NULL);
	config_free(&c);
	CHECK_EQ(P(&c, U, "--storage-url", "sqlite://db.sqlite"), 0);
	CHECK_EQ(c.storage_type, CONFIG_STORAGE_SQLITE);
	CHECK_STR(c.storage_path, "db.sqlite");
	CHECK_STR(c.storage_url, "sqlite://db.sqlite");
	config_free(&c);
	CHECK_EQ(P(&c, U, "--storage-url", "sqlite:///var/lib/exposr/db.sqlite"), 0);
	CHECK_STR(c.storage_path, "/var/lib/exposr/db.sqlite");
	config_free(&c);
	CHECK_EQ(P(&c, U, "--storage-url", "sqlite:db.sqlite"), 0);
	CHECK_STR(c.storage_path, "db.sqlite");
	config_free(&c);
	CHECK_EQ(P(&c, U, "--storage-url", "SQLite://Data/DB.sqlite?mode=rwc"), 0);
	CHECK_STR(c.storage_path, "Data/DB.sqlite");  /* case kept, query cut */
	config_free(&c);
	CHECK_EQ(P(&c, U, "--storage-url", "postgresql://u@db/x"), 0);
	CHECK_EQ(c.storage_type, CONFIG_STORAGE_PGSQL);
	config_free(&c);
	CHECK_EQ(P(&c, U, "--storage-url", "rediss://:pw@r:6380/1"), 0);
	CHECK_EQ(c.storage_type, CONFIG_STORAGE_REDIS);
	config_free(&c);
	CHECK(usage_case("Unsupported storage type foo:. Valid options are redis, postgres or sqlite",
		ARGS(U, "--storage-url", "foo://bar")));
	CHECK(usage_case("Unsupported storage type mysql:. Valid options are redis, postgres or sqlite",
		ARGS(U, "--storage-url", "MySQL://db/x")));
	CHECK(usage_case("SQlite storage can only be used in single-node mode",
		ARGS(U, "--storage-url", "sqlite://db.sqlite", "--cluster", "udp")));
	CHECK(usage_case("SQlite storage can only be used in single-node mode",
		ARGS(U, "--storage-url", "sqlite://db.sqlite", "--redis-url", "redis://x")));
	CHECK(usage_case("SQlite storage requires a database file path, e.g. sqlite:///var/lib/exposrd/db.sqlite",
		ARGS(U, "--storage-url", "sqlite://")));
	CHECK(usage_case("SQlite storage requires a database file path, e.g. sqlite:///var/lib/exposrd/db.sqlite",
		ARGS(U, "--storage-url", "sqlite:")));
	CHECK(usage_case("SQlite storage requires a database file path, e.g. sqlite:///var/lib/exposrd/db.sqlite",
		ARGS(U, "--storage-url", "sqlite://?x")));
	CHECK_EQ(P(&c, U, "--storage-url", "sqlite://db.sqlite", "--cluster", "single-node"), 0);
	config_free(&c);
	CHECK_STR(config_storage_name(CONFIG_STORAGE_PGSQL), "postgres");
	CHECK_STR(config_cluster_name(CONFIG_CLUSTER_SINGLE_NODE), "single-node");
	CHECK_STR(config_cluster_name(99), "unknown");
}

static const char pem_openssh[] =
	"-----BEGIN OPENSSH PRIVATE KEY-----\n"
	"b3BlbnNzaC1rZXktdjEAAAAABG5vbmUAAAAEbm9uZQAAAAAAAAABAAAAMwAAAAtzc2gtZW\n"
	"-----END OPENSSH PRIVATE KEY-----\n";
static const char pem_rsa[] =
	"-----BEGIN RSA PRIVATE KEY-----\nMIIEpAIBAAKCAQEA\n-----END RSA PRIVATE KEY-----\n";

static char *b64(const char *s)
{
	static const char tab[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
	size_t n = strlen(s), o = 0;
	char *out = malloc(n / 3 * 4 + 8);
	for (size_t i = 0; out && i < n; i += 3) {
		unsigned v = (unsigned char)s[i] << 16;
		if (i + 1 < n) v |= (unsigned char)s[i + 1] << 8;
		if (i + 2 < n) v |= (unsigned char)s[i + 2];
		out[o++] = tab[(v >> 18) & 63];
		out[o++] = tab[(v >> 12) & 63];
		out[o++] = i + 1 < n ? tab[(v >> 6) & 63] : '=';
		out[o++] = i + 2 < n ? tab[v & 63] : '=';
	}
	if (out)
		out[o] = '\0';
	return out;
}

static void write_file(const char *path, const char *text)
{
	FILE *f = fopen(path, "w");
	if (!f)
		return;
	fputs(text, f);
	fclose(f);
}

TEST(test_ssh_key)
{
	struct config c;
	char path[64], path2[64];
	(void)snprintf(path, sizeof(path), "/tmp/t-config-key-%ld", (long)getpid());
	(void)snprintf(path2, sizeof(path2), "/tmp/t-config-nokey-%ld", (long)getpid());
	write_file(path, pem_openssh);
	write_file(path2, "just some text\n");

	CHECK_EQ(P(&c, U, "--transport-ssh-key", path), 0);
	CHECK_STR(c.transport_ssh_key, pem_openssh);
	CHECK_EQ(c.transport_ssh_key_len, strlen(pem_openssh));
	config_free(&c);

	CHECK_EQ(P(&c, U, "--transport-ssh-key", (char *)pem_openssh), 0);
	CHECK_STR(c.transport_ssh_key, pem_openssh);
	config_free(&c);

	CHECK_EQ(P(&c, U, "--transport-ssh-key", (char *)pem_rsa), 0);
	CHECK_STR(c.transport_ssh_key, pem_rsa);
	config_free(&c);

	CHECK_EQ(P(&c, U, "--transport-ssh-key", "-----begin openssh private key----- abc"), 0);
	config_free(&c);

	char *enc = b64(pem_openssh);
	CHECK(enc != NULL);
	CHECK_EQ(P(&c, U, "--transport-ssh-key", enc), 0);
	CHECK_STR(c.transport_ssh_key, pem_openssh);
	CHECK_EQ(c.transport_ssh_key_len, strlen(pem_openssh));
	config_free(&c);
	char envvar[1024];
	(void)snprintf(envvar, sizeof(envvar), "EXPOSR_TRANSPORT_SSH_KEY=%s", enc);
	CHECK_EQ(PE(&c, ENV(envvar), U), 0);
	CHECK_STR(c.transport_ssh_key, pem_openssh);
	config_free(&c);
	free(enc);

	enc = b64(pem_rsa);
	CHECK_EQ(P(&c, U, "--transport-ssh-key", enc), 0);
	CHECK_STR(c.transport_ssh_key, pem_rsa);
	config_free(&c);
	free(enc);

	CHECK_EQ(P(&c, U, "--transport-ssh-key", "garbage"), E_INVAL);
	CHECK_STR(err_text, "transport-ssh-key requires either path to key or key content, got garbage\n");
	config_free(&c);
	CHECK_EQ(P(&c, U, "--transport-ssh-key", path2), E_INVAL);
	CHECK(strstr(err_text, "got /tmp/t-config-nokey-") != NULL);
	config_free(&c);
	CHECK_EQ(P(&c, U, "--transport-ssh-key", "-----BEGIN PUBLIC KEY-----"), E_INVAL);
	config_free(&c);
	enc = b64("-----BEGIN CERTIFICATE-----\n");
	CHECK_EQ(P(&c, U, "--transport-ssh-key", enc), E_INVAL);
	config_free(&c);
	free(enc);
	CHECK_EQ(P(&c, U, "--transport-ssh-key", "/nonexistent/key"), E_INVAL);
	config_free(&c);
	CHECK_EQ(P(&c, U, "--transport-ssh-key", "/tmp"), E_INVAL);  /* a directory */
	config_free(&c);
	CHECK_EQ(P(&c, U, "--transport-ssh-key="), E_INVAL);
	CHECK_STR(err_text, "transport-ssh-key requires either path to key or key content, got \n");
	config_free(&c);

	unlink(path);
	unlink(path2);
}

TEST(test_ssh_host)
{
	struct config c;
	CHECK_EQ(P(&c, U, "--transport-ssh-host", "Example.COM"), 0);
	CHECK_STR(c.transport_ssh_host, "example.com");
	CHECK_STR(c.transport_ssh_host_name, "example.com");
	CHECK_EQ(c.transport_ssh_host_port, 0);
	config_free(&c);
	CHECK_EQ(P(&c, U, "--transport-ssh-host", "user@host:2022/path"), 0);
	CHECK_STR(c.transport_ssh_host, "host:2022");
	CHECK_EQ(c.transport_ssh_host_port, 2022);
	config_free(&c);
	CHECK_EQ(P(&c, U, "--transport-ssh-host", "[::1]:22"), 0);
	CHECK_STR(c.transport_ssh_host, "[::1]:22");
	CHECK_STR(c.transport_ssh_host_name, "::1");
	config_free(&c);
	CHECK_EQ(P(&c, U, "--transport-ssh-host", "bad host"), E_INVAL);
	CHECK_STR(err_text, "Invalid hostname bad host\n");
	config_free(&c);
	CHECK_EQ(P(&c, U, "--transport-ssh-host", "host:99999"), E_INVAL);
	CHECK_STR(err_text, "Invalid hostname host:99999\n");
	config_free(&c);
	CHECK_EQ(P(&c, U, "--transport-ssh-host="), E_INVAL);
	CHECK_STR(err_text, "Invalid hostname \n");
	config_free(&c);
}

TEST(test_sni_host)
{
	struct config c;
	CHECK_EQ(P(&c, U, "--ingress-sni-host", "tcp://Example.com:443"), 0);
	CHECK_STR(c.ingress_sni_host_name, "example.com");
	CHECK_EQ(c.ingress_sni_host_port, 443);
	config_free(&c);
	CHECK_EQ(P(&c, U, "--ingress-sni-host", "example.com"), 0);
	CHECK_STR(c.ingress_sni_host_name, "example.com");
	CHECK_EQ(c.ingress_sni_host_port, 0);
	config_free(&c);
	CHECK(usage_case("Invalid values:\n  Argument: ingress-sni-host, Given: \"a b\", Expected: [scheme://]host[:port]",
		ARGS(U, "--ingress-sni-host", "a b")));
}

TEST(test_node_ip)
{
	struct config c;
	CHECK_EQ(P(&c, U, "--cluster-node-ip", "fd00::7"), 0);
	CHECK_STR(c.cluster_node_ip, "fd00::7");
	config_free(&c);
	CHECK_EQ(PE(&c, ENV("EXPOSR_CLUSTER_NODE_IP=192.168.1.2"), U), 0);
	CHECK_STR(c.cluster_node_ip, "192.168.1.2");
	config_free(&c);
	CHECK(usage_case("Invalid values:\n  Argument: cluster-node-ip, Given: \"node1\", Expected: an IPv4 or IPv6 address",
		ARGS(U, "--cluster-node-ip", "node1")));
	CHECK(usage_case("Invalid values:\n  Argument: cluster-node-ip, Given: \"1.2.3.256\", Expected: an IPv4 or IPv6 address",
		ARGS(U, "--cluster-node-ip", "1.2.3.256")));
}

TEST(test_kubernetes_env)
{
	struct config c;
	CHECK_EQ(PE(&c, ENV("SERVICE_NAME=svc-a", "POD_NAMESPACE=ns-a"), U), 0);
	CHECK_STR(c.cluster_udp_discovery_kubernetes_service, "svc-a");
	CHECK_STR(c.cluster_udp_discovery_kubernetes_namespace, "ns-a");
	config_free(&c);
	CHECK_EQ(PE(&c, ENV("MYSVC=svc-b", "SERVICE_NAME=svc-a"), U,
		    "--cluster-udp-discovery-kubernetes-service-env", "MYSVC"), 0);
	CHECK_STR(c.cluster_udp_discovery_kubernetes_service, "svc-b");
	CHECK_STR(c.cluster_udp_discovery_kubernetes_namespace, "default");
	config_free(&c);
	CHECK_EQ(PE(&c, ENV("SERVICE_NAME=svc-a"), U,
		    "--cluster-udp-discovery-kubernetes-service", "explicit"), 0);
	CHECK_STR(c.cluster_udp_discovery_kubernetes_service, "explicit");
	config_free(&c);
}

TEST(test_misc_values)
{
	struct config c;
	CHECK_EQ(P(&c, U, "--admin-api-key", ""), 0);
	CHECK(c.admin_api_key == NULL);
	config_free(&c);
	CHECK_EQ(P(&c, U, "--admin-api-key=a=b"), 0);
	CHECK_STR(c.admin_api_key, "a=b");
	config_free(&c);
	CHECK_EQ(P(&c, U, "--cluster-key", "-dash-start"), 0);
	CHECK_STR(c.cluster_key, "-dash-start");
	config_free(&c);
	CHECK_EQ(P(&c, U, "--transport-ws-port", "8080", "--transport-ws-port=1", "--transport-ws-port"), 0);
	CHECK_STR(err_text, "");
	config_free(&c);
	CHECK(usage_case("Not enough arguments following: api-url", ARGS(U, "--api-url")));
	CHECK(usage_case("Not enough arguments following: cluster-key", ARGS(U, "--cluster-key", "--admin-enable")));
	CHECK(usage_case("Not enough arguments following: p", ARGS(U, "-p")));
}

TEST(test_unknown)
{
	struct config c;
	CHECK_EQ(P(&c, U, "--frobnicate", "value", "--admin-enable", "--zap=1", "-x", "stray", "--no-cluster-key"), 0);
	CHECK_EQ(c.admin_enable, 1);
	CHECK(strstr(err_text, "unknown option --frobnicate ignored\n") != NULL);
	CHECK(strstr(err_text, "unknown option --zap ignored\n") != NULL);
	CHECK(strstr(err_text, "unknown option -x ignored\n") != NULL);
	CHECK(strstr(err_text, "unknown option --no-cluster-key ignored\n") != NULL);
	CHECK(strstr(err_text, "value") == NULL);  /* consumed as the unknown's value */
	CHECK(strstr(err_text, "stray") == NULL);
	CHECK_STR(c.cluster_key, "secret-signing-key");
	config_free(&c);
	CHECK_EQ(P(&c, U, "positional", "--", "--api-port", "1"), 0);
	CHECK_EQ(c.api_port, 8080);
	CHECK(strstr(err_text, "ignoring argument \"positional\"") != NULL);
	CHECK(strstr(err_text, "ignoring argument \"--api-port\"") != NULL);
	config_free(&c);
	/* Unknown EXPOSR_ variables are ignored silently. */
	CHECK_EQ(PE(&c, ENV("EXPOSR_EMBEDDED=true", "EXPOSR_NOPE=1"), U), 0);
	CHECK_STR(err_text, "");
	config_free(&c);
}

TEST(test_help)
{
	struct config c;
	CHECK_EQ(P(&c, "--help"), 1);
	CHECK(strncmp(out_text, "Usage: exposrd", 14) == 0);
	CHECK(strstr(out_text, "--ingress-http-url <url>") != NULL);
	CHECK(strstr(out_text, "-p, --api-port <port>") != NULL);
	CHECK(strstr(out_text, "--log-level <all|trace|debug|info|warn|error|fatal|off>") != NULL);
	CHECK(strstr(out_text, "--ingress <http,sni>") != NULL);
	CHECK(strstr(out_text, "\nIngress:\n") != NULL);
	CHECK(strstr(out_text, "--ingress-http-port") == NULL);  /* hidden */
	CHECK(strstr(out_text, "--redis-url") == NULL);
	CHECK(strstr(out_text, "Deprecated") == NULL);
	CHECK_STR(err_text, "");
	config_free(&c);
	CHECK_EQ(P(&c, "--help", "--show-hidden"), 1);
	CHECK(strstr(out_text, "--ingress-http-port <port>") != NULL);
	CHECK(strstr(out_text, "--redis-url <url>") != NULL);
	CHECK(strstr(out_text, "--transport-ssh-key <string>") != NULL);
	CHECK(strstr(out_text, "[default: 8080]") != NULL);
	CHECK(strstr(out_text, "\nDeprecated:\n") != NULL);
	config_free(&c);
	/* Help wins over usage errors. */
	CHECK_EQ(P(&c, "--api-port", "abc", "--help"), 1);
	CHECK_STR(err_text, "");
	config_free(&c);
	CHECK_EQ(P(&c, U, "--help=false"), 0);
	config_free(&c);
}

TEST(test_version)
{
	struct config c;
	char want[256];
	(void)snprintf(want, sizeof(want), "version: %s (pkg %s)\nfeatures:%s%s%s%s%s%s\n",
		       EXPOSRD_VERSION, EXPOSRD_VERSION,
		       WITH_SQLITE ? " sqlite" : "", WITH_PGSQL ? " pgsql" : "",
		       WITH_REDIS ? " redis" : "", WITH_SSH ? " ssh" : "", WITH_TLS ? " tls" : "",
		       (WITH_SQLITE || WITH_PGSQL || WITH_REDIS || WITH_SSH || WITH_TLS) ? "" : " none");
	CHECK_EQ(P(&c, "--version"), 1);
	CHECK_STR(out_text, want);
	config_free(&c);
	CHECK_EQ(P(&c, "--admin-enable", "--version"), 1);
	config_free(&c);
}

TEST(test_null_streams)
{
	struct config c;
	CHECK_EQ(config_init(&c), 0);
	CHECK_EQ(config_parse(&c, 2, ARGS("--bogus"), NULL, NULL, NULL), E_INVAL);
	config_free(&c);
	CHECK_EQ(config_init(&c), 0);
	CHECK_EQ(config_parse(&c, 2, ARGS("--help"), NULL, NULL, NULL), 1);
	config_free(&c);
}

int main(void)
{
	RUN(test_defaults);
	RUN(test_init_only);
	RUN(test_all_options_argv);
	RUN(test_all_options_env);
	RUN(test_precedence);
	RUN(test_booleans);
	RUN(test_lists);
	RUN(test_numbers);
	RUN(test_urls);
	RUN(test_choices);
	RUN(test_required);
	RUN(test_cluster_auto);
	RUN(test_storage);
	RUN(test_ssh_key);
	RUN(test_ssh_host);
	RUN(test_sni_host);
	RUN(test_node_ip);
	RUN(test_kubernetes_env);
	RUN(test_misc_values);
	RUN(test_unknown);
	RUN(test_help);
	RUN(test_version);
	RUN(test_null_streams);
	return test_done();
}
