/* model.h - stored records: Account and TunnelConfig (spec/storage.md §5)
 * and their JSON forms.  Readers start from the defaults and overlay
 * known members whose type matches; unknown members are ignored. */
#ifndef EXPOSRD_MODEL_H
#define EXPOSRD_MODEL_H

#include <stddef.h>
#include <stdint.h>

#include "ids.h"

#define ISO_TIME_LEN 24 /* 2026-11-25T08:32:07.593Z */
#define MODEL_MAX_ALT_NAMES 10
#define MODEL_MAX_REASON 256

struct strlist {
	char **v;
	size_t n;
};

int strlist_add(struct strlist *l, const char *s, size_t n);
int strlist_contains(const struct strlist *l, const char *s);
int strlist_remove(struct strlist *l, const char *s); /* 1 if removed */
void strlist_clear(struct strlist *l);
int strlist_copy(struct strlist *dst, const struct strlist *src);

struct account {
	char id[ACCOUNT_ID_LEN + 1];
	char created_at[ISO_TIME_LEN + 1];  /* "" when unknown */
	char updated_at[ISO_TIME_LEN + 1];
	struct strlist tunnels;
	int disabled;
	char disabled_at[ISO_TIME_LEN + 1];
	char *disabled_reason;              /* NULL when absent */
};

struct tunnel_config {
	char id[TUNNEL_ID_MAX + 1];
	char account[ACCOUNT_ID_LEN + 1];
	char created_at[ISO_TIME_LEN + 1];
	char updated_at[ISO_TIME_LEN + 1];
	char token[TUNNEL_TOKEN_LEN + 1];   /* "" when missing: never authorizes */
	long long max_connections;          /* stored, default 1 */
	int ws_enabled, ssh_enabled;
	int http_enabled;
	char *http_url;                     /* NULL when absent */
	struct strlist http_urls, alt_names;
	int sni_enabled;
	char *sni_url;
	struct strlist sni_urls;
	char *target_url;
};

/* Wall-clock time as ISO-8601 UTC with milliseconds. */
void iso_time(int64_t epoch_ms, char out[ISO_TIME_LEN + 1]);
void iso_now(char out[ISO_TIME_LEN + 1]);

void account_init(struct account *a);
void account_free(struct account *a);
int account_from_json(struct account *a, const char *json, size_t len); /* 0 or E_INVAL */
/* Without the tunnel list: enough for authentication, cheap for accounts
 * that own many tunnels. */
int account_from_json_brief(struct account *a, const char *json, size_t len);
char *account_to_json(const struct account *a, size_t *len);             /* storage form; NULL on ENOMEM */

void tunnel_config_init(struct tunnel_config *t);
void tunnel_config_free(struct tunnel_config *t);
int tunnel_config_from_json(struct tunnel_config *t, const char *json, size_t len);
char *tunnel_config_to_json(const struct tunnel_config *t, size_t *len);

#endif
