/* ids.h - account ids, tunnel ids and connection tokens
 * (spec/api.md §1.1, §1.2, §1.3). */
#ifndef EXPOSRD_IDS_H
#define EXPOSRD_IDS_H

#include <stddef.h>

#define ACCOUNT_ID_LEN 16
#define ACCOUNT_ID_HR_MAX 24       /* 16 chars + 3 separators, with room */
#define TUNNEL_ID_MAX 65
#define TUNNEL_TOKEN_LEN 86        /* 64 random bytes, base64url */
#define ACCOUNT_API_TOKEN_LEN 24   /* base64 of the 16-char id */

/* Random account id (16 chars of the account alphabet), NUL-terminated. */
int account_id_generate(char out[ACCOUNT_ID_LEN + 1]);
/* Normalize user input: drop spaces and '-', upper-case, validate.
 * Returns 0 and writes out, or E_INVAL. */
int account_id_normalize(const char *in, size_t n, char out[ACCOUNT_ID_LEN + 1]);
/* Human-readable form: groups of 4 from the right joined by '-'. */
void account_id_hr(const char *id, char *out, size_t cap);
/* True if id (n bytes) matches the tunnel-id regex of §1.2. */
int tunnel_id_valid(const char *id, size_t n);
/* Fresh transport token: 64 random bytes as base64url (86 chars). */
int tunnel_token_generate(char out[TUNNEL_TOKEN_LEN + 1]);
/* API bearer token of an account: base64(normalized id). */
void account_api_token(const char *id, char out[ACCOUNT_API_TOKEN_LEN + 1]);
/* Account id from an Authorization header value ("Bearer <token>").
 * Returns 0, E_AGAIN when no token is present (AUTH_NO_TOKEN), or E_INVAL
 * when the token names no valid account id (PERMISSION_DENIED). */
int account_id_from_bearer(const char *hdr, size_t n, char out[ACCOUNT_ID_LEN + 1]);
/* Random hex string of n bytes (2n chars). */
int random_hex(char *out, size_t nbytes);

#endif
