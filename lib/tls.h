/* tls.h - BearSSL glue: server credentials loaded from PEM files, client
 * trust configuration, and per-connection TLS engines driven sans-I/O.
 *
 * No I/O of its own besides reading the PEM files when loading: the
 * caller moves bytes between its socket and the engine's buffers, as
 * BearSSL's engine API does (inc/bearssl_ssl.h):
 *
 *   state = tls_state(c);
 *   TLS_RECVREC  the engine wants record bytes from the socket:
 *                p = tls_recvrec_buf(c, &len); n = read(fd, p, len);
 *                tls_recvrec_ack(c, n)
 *   TLS_SENDREC  record bytes are waiting for the socket:
 *                p = tls_sendrec_buf(c, &len); n = write(fd, p, len);
 *                tls_sendrec_ack(c, n)
 *   TLS_RECVAPP  decrypted application bytes are ready (recvapp_buf/ack)
 *   TLS_SENDAPP  the engine takes application bytes (sendapp_buf/ack);
 *                tls_flush() wraps what was written into a record now
 *   TLS_CLOSED   finished: tls_error() is 0 for a clean close_notify
 *                exchange, else the BearSSL error code.
 *
 * Server parameters: TLS 1.2 only; ECDHE_ECDSA or ECDHE_RSA (after the
 * key) with AES-128-GCM, ChaCha20-Poly1305 or AES-256-GCM, in that server
 * preference order; no ALPN, no renegotiation, no client certificates;
 * session resumption by session id through an LRU cache owned by the
 * credentials.  BearSSL has no session tickets and no TLS 1.3.
 *
 * Memory: one connection is one allocation of about 38 KiB (the engine's
 * bidirectional record buffer, BR_SSL_BUFSIZE_BIDI, plus its context).
 */
#ifndef EXPOSRD_TLS_H
#define EXPOSRD_TLS_H

#include <stddef.h>
#include <stdint.h>

#include "der.h"

#define TLS_MAX_PEM_FILE (1 << 20)          /* certificate or key file */
#define TLS_MAX_CA_FILE (8 << 20)           /* CA bundle file */
#define TLS_MAX_CHAIN 10                    /* certificates in the served chain */
#define TLS_MAX_ANCHORS 4096                /* certificates in a CA bundle */
#define TLS_SESSION_CACHE_BYTES (256 << 10) /* LRU cache: 100 bytes a session */
#define TLS_NAME_MAX 255
#define TLS_CA_BUNDLE_DEFAULT "/etc/ssl/certs/ca-certificates.crt"

/* Engine state bits (the values of BearSSL's BR_SSL_*). */
enum {
	TLS_CLOSED = 0x0001,
	TLS_SENDREC = 0x0002,
	TLS_RECVREC = 0x0004,
	TLS_SENDAPP = 0x0008,
	TLS_RECVAPP = 0x0010,
};

enum tls_key_type {
	TLS_KEY_RSA = 1,
	TLS_KEY_EC = 2,
};

struct tls_creds;
struct tls_client_config;
struct tls_conn;

/* What was loaded, for logs and the advertised URLs. */
struct tls_cert_info {
	char domain[TLS_NAME_MAX + 1];      /* wildcard parent: "example.com" for "*.example.com" */
	char wildcard[TLS_NAME_MAX + 1];    /* the chosen entry, "*.example.com" */
	char subject_cn[TLS_NAME_MAX + 1];  /* first subject CN, printable ASCII, "" if none */
	char serial[2 * DER_SERIAL_MAX + 3]; /* lower-case hex */
	enum tls_key_type key_type;
	unsigned key_bits;                  /* RSA modulus bits, EC curve bits */
	size_t chain_len;
};

/* ---- server credentials ---- */

/* Load the PEM certificate chain (leaf first) from cert_path and the PEM
 * private key (RSA or EC: "RSA PRIVATE KEY", "EC PRIVATE KEY" or PKCS#8
 * "PRIVATE KEY") from key_path, each file read whole and at most
 * TLS_MAX_PEM_FILE bytes.  The key must match the leaf's public key.
 * The wildcard is chosen as spec/ingress.md §3.2 says (tls_cert_wildcard
 * with want_domain, NULL for the first one).
 * Returns 0 and *out with one reference, or E_IO (unreadable file),
 * E_INVAL (bad content, no wildcard, mismatch), E_LIMIT, E_NOMEM; err
 * (cap bytes) then says why in one line. */
int tls_creds_load(const char *cert_path, const char *key_path, const char *want_domain, struct tls_creds **out,
		   char *err, size_t cap);
/* The same from PEM text in memory. */
int tls_creds_load_mem(const char *cert_pem, size_t cert_len, const char *key_pem, size_t key_len,
		       const char *want_domain, struct tls_creds **out, char *err, size_t cap);
const struct tls_cert_info *tls_creds_info(const struct tls_creds *c);
/* Reference counting: every connection holds one; unref at 0 frees
 * (and wipes the key).  NULL is a no-op for unref. */
struct tls_creds *tls_creds_ref(struct tls_creds *c);
void tls_creds_unref(struct tls_creds *c);

/* Wildcard choice over a DER leaf certificate: candidates are the subject
 * CN when it starts with "*.", then every SAN dNSName starting with "*.",
 * in certificate order (compared lower-cased).  With want_domain (lower
 * case), the first candidate whose part after "*." equals it; otherwise
 * the first.  Writes the part after "*." to domain.  Returns 0, E_NOTFOUND
 * (no candidate / none matching) or E_INVAL (malformed certificate). */
int tls_cert_wildcard(const uint8_t *der, size_t len, const char *want_domain, char *domain, size_t cap);

/* ---- client configuration (TLS toward targets) ---- */

/* Trust anchors from the PEM bundle at ca_path (NULL: the system bundle,
 * TLS_CA_BUNDLE_DEFAULT), or no verification at all when insecure != 0
 * (ca_path is then not read).  Returns 0 and *out with one reference, or
 * E_IO / E_INVAL / E_LIMIT / E_NOMEM with err set. */
int tls_client_config_new(const char *ca_path, int insecure, struct tls_client_config **out, char *err, size_t cap);
struct tls_client_config *tls_client_config_ref(struct tls_client_config *cfg);
void tls_client_config_unref(struct tls_client_config *cfg); /* NULL ok */

/* ---- connections ---- */

/* Called once the ClientHello was read, with the requested server name
 * ("" without SNI).  Return 1 to go on, 0 to abort the handshake with a
 * handshake_failure alert.  Not called for a resumed session (BearSSL
 * skips its policy then): callers that must see every name read it from
 * the ClientHello themselves (clienthello.h). */
typedef int (*tls_sni_cb)(void *arg, const char *server_name);

/* A server connection with creds (takes its own reference).  sni may be
 * NULL.  Returns NULL on allocation or engine failure. */
struct tls_conn *tls_server_new(struct tls_creds *creds, tls_sni_cb sni, void *sni_arg);
/* Saved client session parameters, to resume a session with a later
 * connection to the same server (a plain value; valid 0 when empty). */
struct tls_session {
	int valid;
	unsigned char params[128];  /* br_ssl_session_parameters */
};

/* A client connection to host (a name: sent as SNI and checked against
 * the certificate unless insecure).  IP-literal hosts are accepted only
 * in insecure mode (BearSSL does not match IP subjectAltNames): E_INVAL.
 * resume (NULL or not valid: none) offers a saved session.
 * Returns 0 and *out, or E_INVAL / E_NOMEM. */
int tls_client_new(struct tls_client_config *cfg, const char *host, const struct tls_session *resume,
		   struct tls_conn **out);
/* Save the session of a client connection after its handshake. */
void tls_session_save(const struct tls_conn *c, struct tls_session *s);
void tls_conn_free(struct tls_conn *c); /* NULL ok */

unsigned tls_state(const struct tls_conn *c);
/* 0, or the BearSSL error code (BR_ERR_*, alerts received as 256+n and
 * sent as 512+n). */
int tls_error(const struct tls_conn *c);
/* A short text for a tls_error() code. */
const char *tls_error_str(int err);
/* Server name the client asked for ("" when none or not known yet). */
const char *tls_server_name(const struct tls_conn *c);
/* True once the handshake has completed (application data may flow). */
int tls_handshake_done(const struct tls_conn *c);
/* Session id of the current session (for tests of resumption); *len 0
 * before the handshake. */
const uint8_t *tls_session_id(const struct tls_conn *c, size_t *len);

/* Buffer pairs: *len is 0 and NULL is returned when the engine does not
 * want that direction now.  Acks must not exceed the last *len. */
uint8_t *tls_recvrec_buf(struct tls_conn *c, size_t *len);
void tls_recvrec_ack(struct tls_conn *c, size_t n);
uint8_t *tls_sendrec_buf(struct tls_conn *c, size_t *len);
void tls_sendrec_ack(struct tls_conn *c, size_t n);
uint8_t *tls_recvapp_buf(struct tls_conn *c, size_t *len);
void tls_recvapp_ack(struct tls_conn *c, size_t n);
uint8_t *tls_sendapp_buf(struct tls_conn *c, size_t *len);
void tls_sendapp_ack(struct tls_conn *c, size_t n);

/* Copy up to n record bytes into the engine (a prefix the caller had
 * buffered).  Returns how many were taken (0 when the engine wants none
 * now). */
size_t tls_feed(struct tls_conn *c, const uint8_t *p, size_t n);
/* Wrap buffered application bytes into a record. */
void tls_flush(struct tls_conn *c);
/* Start the closure: a close_notify is queued once the engine is ready;
 * the engine then reports TLS_CLOSED after the peer's close_notify. */
void tls_close(struct tls_conn *c);

#endif
