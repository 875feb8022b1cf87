/* transport-ssh.h - the SSH transport (spec/transports.md §4): any stock
 * OpenSSH client carries a tunnel with `ssh -R`.
 *
 * A libssh server on our loop (transport-ssh-loop.c binds each session to
 * it; no thread per session).  Users log in as "<id>:<token>" (method
 * none) or as "<id>" with the token as password; the token is rotated at
 * authorisation (service_tunnel_authorize).  A tcpip-forward request sets
 * the tunnel's target (§4.5 DECISION) and makes the connection ready; each
 * ingress channel is a forwarded-tcpip channel carrying the client's bind
 * address and effective listen port.
 *
 * Memory per forwarded channel is bounded: SSH_CH_TX_MAX bytes from the
 * ingress waiting for the peer's window; toward the ingress, libssh's own
 * channel buffer (its receive window: at most about 1.9 MB, libssh grants
 * window only while less than 640 kB is buffered or unread) plus what was
 * moved out of it for a slow sink (at most the same again, moved only when
 * the previous batch was taken).  Above SSH_RX_BUDGET held by one
 * connection its socket is not read.
 */
#ifndef EXPOSRD_TRANSPORT_SSH_H
#define EXPOSRD_TRANSPORT_SSH_H

#include <stddef.h>

#include "service.h"
#include "tunnel.h"

struct config;
struct loop;

#define SSH_KEEPALIVE_MS 15000          /* keepalive@openssh.com after this much silence */
#define SSH_KEEPALIVE_MAX_MISSED 3      /* then disconnect (about 60 s without a packet) */
#define SSH_LOGIN_GRACE_MS 30000        /* key exchange and authentication must finish */
#define SSH_OPEN_TIMEOUT_MS 10000       /* forwarded-tcpip open without an answer */
#define SSH_CLOSE_FLUSH_MS 5000         /* queued bytes of a closed channel may take this long */
#define SSH_DISCONNECT_LINGER_MS 2000   /* wait for queued output before SSH_MSG_DISCONNECT */
#define SSH_MAX_CHANNELS 4096           /* forwarded channels per connection */
#define SSH_MAX_QUEUED_MESSAGES 64      /* requests waiting behind an authorisation/forward */
#define SSH_MAX_BIND_ADDRESS 255        /* tcpip-forward bind address */
#define SSH_CH_TX_MAX (64u << 10)       /* ingress bytes held per channel */
#define SSH_CH_TX_LOW (16u << 10)       /* the ingress may write again below this */
#define SSH_CH_RX_HOLD_MAX (2u << 20)   /* bytes moved out of libssh for a slow sink */
#define SSH_RX_BUDGET (8u << 20)        /* held for slow sinks per connection: stop reading above */
#define SSH_TX_BURST (256u << 10)       /* channel bytes handed to libssh per pump run */

struct transport_ssh;

/* Create the transport: host key from cfg->transport_ssh_key (PEM text) or
 * a fresh Ed25519 key, listener on cfg->transport_ssh_port.  Returns NULL
 * with a message in err on failure (startup error). */
struct transport_ssh *transport_ssh_new(struct loop *loop, struct service *svc, struct registry *reg,
					const struct config *cfg, char *err, size_t errlen);
/* The listening port and the host-key fingerprint ("SHA256:<base64>"). */
int transport_ssh_port(const struct transport_ssh *t);
const char *transport_ssh_fingerprint(const struct transport_ssh *t);
/* Stop listening and disconnect every client ("Server shutting down"). */
void transport_ssh_shutdown(struct transport_ssh *t);
/* Shut down and free; NULL is a no-op.  Connections still waiting for an
 * asynchronous storage answer are freed by a later deferred call. */
void transport_ssh_free(struct transport_ssh *t);

#endif
