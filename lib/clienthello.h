/* clienthello.h - read the SNI server name from the raw bytes of a TLS
 * ClientHello, before any TLS engine sees them (spec/ingress.md §3.4).
 *
 * The SNI ingress needs the name before the handshake goes on, because
 * the tunnel lookup is asynchronous: it buffers the client's first bytes,
 * asks this reader for the name, looks the tunnel up, and only then feeds
 * the same bytes to the TLS engine (which reads them again).
 *
 * Sans-I/O and incremental in the picohttpparser way: call it with
 * everything received so far; it answers "complete", "need more" (with
 * the total number of bytes to wait for) or "malformed".  It copies
 * nothing but the name, never reads past n, and does not recurse.
 *
 * Accepted input: TLS records of type handshake (22), version 3.x, each
 * 1..CLIENTHELLO_MAX_RECORD bytes long, carrying one ClientHello
 * (handshake type 1) of at most CLIENTHELLO_MAX_MESSAGE bytes, possibly
 * fragmented over at most CLIENTHELLO_MAX_RECORDS records.  SSLv2-style
 * hellos are refused (as BearSSL does).
 */
#ifndef EXPOSRD_CLIENTHELLO_H
#define EXPOSRD_CLIENTHELLO_H

#include <stddef.h>
#include <stdint.h>

#define CLIENTHELLO_MAX_RECORD 16384   /* TLSPlaintext.length limit (2^14) */
#define CLIENTHELLO_MAX_MESSAGE 16384  /* ClientHello body, ours */
#define CLIENTHELLO_MAX_RECORDS 32     /* fragments of one ClientHello */
#define CLIENTHELLO_NAME_MAX 255       /* RFC 6066 host_name; BearSSL's limit too */
/* The most raw bytes a complete parse can need under the limits above
 * (the message, the record headers, and the rest of the record in which
 * the message ends): a caller that buffers the input caps it here. */
#define CLIENTHELLO_MAX_INPUT \
	(CLIENTHELLO_MAX_MESSAGE + 4 + CLIENTHELLO_MAX_RECORD + CLIENTHELLO_MAX_RECORDS * 5)

struct clienthello {
	int has_sni;                          /* a host_name was present */
	char sni[CLIENTHELLO_NAME_MAX + 1];   /* lower-cased, NUL-terminated; "" without SNI */
	size_t sni_len;
	uint16_t version;                     /* client_version of the hello */
	size_t end;                           /* raw offset just past the ClientHello */
};

/* Parse the ClientHello at the start of p[0..n).  Returns:
 *   0           complete: *out is filled (has_sni 0 when no server_name);
 *   E_AGAIN     incomplete: nothing is decided before n >= *need, which
 *               is always > n;
 *   E_INVAL     not a well-formed ClientHello (including a server_name
 *               extension that is malformed, holds two host_names, or a
 *               name that is empty, longer than 255 bytes or not made of
 *               letters, digits, '-', '_' and '.');
 *   E_LIMIT     over one of the limits above.
 * need may be NULL. */
int clienthello_parse(const uint8_t *p, size_t n, struct clienthello *out, size_t *need);

/* A TLS plaintext fatal alert record (5-byte header + 2 bytes) for
 * description desc, with record version 0x0303.  Used to refuse a hello
 * before any engine has seen it. */
#define CLIENTHELLO_ALERT_LEN 7
#define CLIENTHELLO_ALERT_HANDSHAKE_FAILURE 40
#define CLIENTHELLO_ALERT_UNRECOGNIZED_NAME 112
void clienthello_alert(uint8_t out[CLIENTHELLO_ALERT_LEN], int desc);

#endif
