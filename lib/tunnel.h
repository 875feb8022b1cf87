/* tunnel.h - registry of live transport connections per tunnel, the
 * channel interface between ingresses and transports, and routing of new
 * channels (spec/transports.md §5).
 *
 * A transport embeds struct tunnel_conn in its connection object and
 * registers it once authorised; an ingress asks the registry for a
 * channel to a tunnel and talks to it through struct channel.
 */
#ifndef EXPOSRD_TUNNEL_H
#define EXPOSRD_TUNNEL_H

#include <stddef.h>
#include <stdint.h>

#include "ids.h"
#include "service.h"

struct loop;
struct registry;
struct channel;
struct tunnel_conn;

#define REGISTRY_RECORD_RETENTION_MS 60000   /* disconnected records kept */
#define REGISTRY_SWEEP_MS 10000

/* Failure reasons of a channel that never opened. */
enum channel_fail {
	CHANNEL_FAIL_REFUSED = 1, /* the peer refused the open */
	CHANNEL_FAIL_TIMEOUT,     /* no answer within the open timeout */
	CHANNEL_FAIL_GONE,        /* the transport connection went away */
};

/* The consumer side of a channel (an ingress).  All callbacks run on the
 * loop, never inside a channel_* call made by the sink itself. */
struct channel_sink {
	void (*opened)(void *arg);
	void (*failed)(void *arg, enum channel_fail reason);
	/* Bytes from the tunnel client.  Returns how many were taken; taking
	 * fewer stops delivery until channel_resume(). */
	size_t (*data)(void *arg, const char *p, size_t n);
	/* The peer closed the channel (after all its data was delivered).
	 * error != 0 when it closed with an error.  The channel is gone. */
	void (*closed)(void *arg, int error);
	/* channel_write accepts bytes again. */
	void (*writable)(void *arg);
};

struct channel_ops {
	size_t (*write)(struct channel *ch, const char *p, size_t n);
	void (*resume)(struct channel *ch);
	void (*close)(struct channel *ch);
};

/* Base of every transport channel. */
struct channel {
	const struct channel_ops *ops;
	const struct channel_sink *sink;
	void *sink_arg;
};

/* Queue bytes toward the tunnel client.  Returns how many were taken
 * (fewer than n when the channel is full: wait for sink->writable). Bytes
 * written before sink->opened are held (bounded) until the open. */
static inline size_t channel_write(struct channel *ch, const char *p, size_t n) { return ch->ops->write(ch, p, n); }
/* The sink can take data again after taking fewer bytes than offered. */
static inline void channel_resume(struct channel *ch) { ch->ops->resume(ch); }
/* Close after the queued bytes are sent; no sink callbacks afterwards. */
static inline void channel_close(struct channel *ch) { ch->ops->close(ch); }

/* Who the channel is for (originator address for SSH forwarded-tcpip). */
struct channel_origin {
	const char *peer_ip;
	int peer_port;
};

struct tunnel_conn_ops {
	/* Open a channel; NULL with *err E_LIMIT when the connection has no free channel. */
	struct channel *(*open_channel)(struct tunnel_conn *c, const struct channel_sink *sink, void *arg,
					const struct channel_origin *origin, int *err);
	/* Close the transport connection (API disconnect, delete, disable). */
	void (*disconnect)(struct tunnel_conn *c);
	/* 0 while the connection cannot carry channels yet (SSH without a forward). */
	int (*ready)(struct tunnel_conn *c);
};

/* Embedded in the transport's connection object; owned by the transport. */
struct tunnel_conn {
	const struct tunnel_conn_ops *ops;
	/* set by the registry */
	struct tunnel_entry *entry;
	struct tunnel_record *record;
	struct tunnel_conn *next_in_tunnel;
};

struct registry *registry_new(struct loop *loop, const char *node_id, int max_connections);
void registry_free(struct registry *r);
/* Hooks for service.c (state and disconnect). */
void registry_service_hooks(struct registry *r, struct service_connections *out);

/* Register an authorised connection.  Returns 0, or E_LIMIT when the
 * tunnel already has max_connections alive (refuse with 1008), E_BUSY
 * during shutdown. */
int registry_register(struct registry *r, struct tunnel_conn *c, const char *tunnel_id, const char *peer);
/* The transport connection closed (idempotent; no-op if not registered). */
void registry_unregister(struct registry *r, struct tunnel_conn *c);
/* Refuse new registrations (graceful shutdown) and disconnect everything. */
void registry_shutdown(struct registry *r);

/* Number of alive connections of a tunnel. */
int registry_alive(struct registry *r, const char *tunnel_id);
/* Open a channel on one of the tunnel's connections, round-robin.
 * Returns NULL with *err: E_NOTFOUND (not connected), E_LIMIT (no free
 * channel on any connection). */
struct channel *registry_open_channel(struct registry *r, const char *tunnel_id, const struct channel_sink *sink,
				      void *arg, const struct channel_origin *origin, int *err);

#endif
