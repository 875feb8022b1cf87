/* transport-ws.h - the WebSocket transport: the ws-endpoint on the API
 * port (spec/transports.md §3) and ws-multiplex v2 connections carrying
 * tunnel channels (§2). */
#ifndef EXPOSRD_TRANSPORT_WS_H
#define EXPOSRD_TRANSPORT_WS_H

#include "httpd.h"
#include "service.h"
#include "tunnel.h"

#define WS_KEEPALIVE_MS 10000        /* ping interval */
#define WS_DEAD_PEER_MS 20000        /* no pong for this long: dead */
#define WSM_OPEN_TIMEOUT_MS 5000     /* OPEN without ACK */
#define WSM_CLOSE_TIMEOUT_MS 1000    /* CLOSE without ACK */
#define WSM_MAX_CHANNELS 65535       /* per WebSocket, both sides */
#define WSM_MAX_DATA_PAYLOAD (64u << 10)   /* bytes per DATA message sent */
#define WS_IN_MAX (256u << 10)       /* receive buffer per connection */
#define WS_OUT_HIGH_WATER (256u << 10) /* stop taking channel data above this */
#define WS_OUT_MAX (1u << 20)        /* hard cap, control frames always fit */
#define WS_RX_BUDGET (8u << 20)      /* bytes held for slow sinks, all channels of one
                                      * connection: the socket is not read above it */
/* Memory bound per connection: WS_IN_MAX + WS_OUT_MAX + WS_RX_BUDGET + WS_IN_MAX
 * (about 9.5 MiB) plus ~200 bytes per open channel. */

struct transport_ws;

struct transport_ws *transport_ws_new(struct loop *loop, struct service *svc, struct registry *reg);
/* Close every connection with 1001 and free. */
void transport_ws_free(struct transport_ws *t);
/* Close every connection with 1001 (graceful shutdown) and refuse new ones. */
void transport_ws_shutdown(struct transport_ws *t);
void transport_ws_component(struct transport_ws *t, struct httpd_component *c);

#endif
