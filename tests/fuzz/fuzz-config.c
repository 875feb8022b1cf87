/* fuzz-config.c - libFuzzer target for config_parse.
 *
 * The input is split on NUL bytes into strings. Strings that start with
 * "EXPOSR_" (or are "SERVICE_NAME=..."/"POD_NAMESPACE=...") and contain
 * '=' become the environment; all others become argv[1..]. Output goes to
 * /dev/null. Every config is freed, so leaks show up under ASan.
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "config.h"

#define FUZZ_MAX_ARGS 256

static int is_env(const char *s)
{
	return strchr(s, '=') != NULL &&
	       (strncmp(s, "EXPOSR_", 7) == 0 || strncmp(s, "SERVICE_NAME=", 13) == 0 ||
		strncmp(s, "POD_NAMESPACE=", 14) == 0);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	static FILE *devnull;
	char *argv[FUZZ_MAX_ARGS + 2], *envp[FUZZ_MAX_ARGS + 1];
	int argc = 1, envc = 0;
	struct config c;
	char *buf;
	size_t start = 0;

	if (!devnull)
		devnull = fopen("/dev/null", "w");
	buf = malloc(size + 1);
	if (!buf)
		return 0;
	memcpy(buf, data, size);
	buf[size] = '\0';
	argv[0] = "exposrd";
	for (size_t i = 0; i <= size; i++) {
		if (buf[i] != '\0')
			continue;
		char *s = buf + start;
		start = i + 1;
		if (is_env(s)) {
			if (envc < FUZZ_MAX_ARGS)
				envp[envc++] = s;
		} else if (argc < FUZZ_MAX_ARGS + 1) {
			argv[argc++] = s;
		}
	}
	argv[argc] = NULL;
	envp[envc] = NULL;
	if (config_init(&c) == 0)
		(void)config_parse(&c, argc, argv, envp, devnull, devnull);
	config_free(&c);
	free(buf);
	return 0;
}
