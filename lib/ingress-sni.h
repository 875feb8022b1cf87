/* ingress-sni.h - SNI ingress: TLS terminated with a wildcard certificate,
 * the decrypted stream carried through a tunnel channel
 * (spec/ingress.md §3).
 *
 * Per connection: the ClientHello is read raw (clienthello.h) and the
 * tunnel <id> of the SNI name <id>.<anything> is looked up before the TLS
 * engine sees a byte.  Unknown tunnel, SNI disabled for it, or no SNI:
 * the handshake is refused with a fatal alert (unrecognized_name, or
 * handshake_failure without SNI).  Otherwise the handshake completes; a
 * tunnel without a connected transport then gets close_notify at once,
 * others get one channel carrying the plaintext both ways with
 * backpressure, and an orderly close (close_notify/FIN flushed both ways).
 *
 * The certificate and key files are reloaded when either changes
 * (inotify hints debounced, and stat() polling every SNI_RELOAD_POLL_MS):
 * new handshakes use the new pair once it loaded completely and matched;
 * a half-written or mismatched pair keeps the old one (a warning is
 * logged); live connections keep the credentials they started with.
 *
 * Memory per connection: the TLS engine (about 38 KiB, tls.h), the raw
 * ClientHello while the tunnel is looked up (at most
 * CLIENTHELLO_MAX_INPUT, usually a few hundred bytes, freed once fed to
 * the engine) and about 600 bytes of state.  Nothing else is buffered:
 * the socket is not read while the channel refuses bytes, and the channel
 * is paused while the engine's output record is not written out.
 */
#ifndef EXPOSRD_INGRESS_SNI_H
#define EXPOSRD_INGRESS_SNI_H

#include <stddef.h>

#define SNI_HANDSHAKE_TIMEOUT_MS 10000  /* accept until the handshake is done */
#define SNI_CLOSE_LINGER_MS 2000        /* our close_notify sent: wait for the client's */
#define SNI_MAX_CONNECTIONS 16384
#define SNI_ACCEPT_PAUSE_MS 1000        /* accept(2) out of descriptors: retry after */
#define SNI_RELOAD_POLL_MS 2000         /* stat() of the certificate and key files */
#define SNI_RELOAD_DEBOUNCE_MS 200      /* quiet time after a change event */

struct loop;
struct service;
struct registry;
struct ingress_sni;
struct tls_cert_info;

/* Load --ingress-sni-cert/--ingress-sni-key (choosing the wildcard with
 * --ingress-sni-host), set the service's SNI domain and port, and listen
 * on --ingress-sni-port.  Returns NULL with err (cap bytes) set when the
 * certificate cannot be used or the port cannot be bound: a startup
 * error. */
struct ingress_sni *ingress_sni_new(struct loop *loop, struct service *svc, struct registry *reg, char *err,
				    size_t cap);
/* The port actually bound. */
int ingress_sni_port(const struct ingress_sni *is);
/* The certificate currently served. */
const struct tls_cert_info *ingress_sni_cert(const struct ingress_sni *is);
/* Graceful shutdown: stop accepting; connections finish on their own.
 * NULL is a no-op (also for ingress_sni_busy, which then says 0). */
void ingress_sni_stop_listening(struct ingress_sni *is);
/* Open connections. */
unsigned ingress_sni_busy(const struct ingress_sni *is);
/* Close everything at once.  NULL is a no-op. */
void ingress_sni_free(struct ingress_sni *is);

#endif
