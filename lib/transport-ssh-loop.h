/* transport-ssh-loop.h - binds one libssh server session to our loop
 * (STYLE §8.8: one small adapter per foreign library).
 *
 * libssh keeps its own poll handle per session and does all socket I/O
 * itself.  In non-blocking mode every libssh entry point that touches the
 * network runs at most one poll(2) round with timeout 0 on the session's
 * fd, so nothing ever waits.  The adapter watches the same fd on our loop
 * (read always unless paused, write while libssh has output queued) and
 * calls back when it is ready; the owner then lets libssh run one round
 * (ssh_loop_input) and reads the messages libssh queued.
 *
 * fd ownership: after ssh_bind_accept_fd the socket belongs to libssh,
 * which closes it on errors, on ssh_disconnect and in ssh_free.  The
 * adapter notices that (ssh_get_fd() turning invalid) and stops watching
 * the number before anything can reuse it.
 */
#ifndef EXPOSRD_TRANSPORT_SSH_LOOP_H
#define EXPOSRD_TRANSPORT_SSH_LOOP_H

/* Without the 0.4 compatibility names (channel_write, channel_close...),
 * which collide with tunnel.h. */
#ifndef LIBSSH_LEGACY_0_4
#define LIBSSH_LEGACY_0_4 1
#endif
#include <libssh/libssh.h>

struct loop;
struct ssh_loop;

/* Called on the loop when the session's fd is ready (LOOP_* bits). */
typedef void (*ssh_loop_cb)(void *arg, int events);

/* Start watching the fd of session s (connected, non-blocking).  The
 * session is borrowed.  Returns NULL on allocation failure. */
struct ssh_loop *ssh_loop_new(struct loop *loop, ssh_session s, ssh_loop_cb cb, void *arg);
/* Stop watching; NULL is a no-op.  Does not free or disconnect the session. */
void ssh_loop_free(struct ssh_loop *l);

/* One non-blocking round of the key exchange.  Returns 1 once it has
 * finished, 0 while it runs, E_CLOSED when it failed. */
int ssh_loop_kex(struct ssh_loop *l);
/* After the key exchange: the next message libssh queued (the caller owns
 * it).  With none queued it first runs one non-blocking round of packet
 * processing, which also runs channel callbacks; NULL then means nothing
 * more for now. */
ssh_message ssh_loop_message(struct ssh_loop *l);
/* Recompute the watched events after libssh calls: write interest while
 * libssh has output pending; reading unless paused.  Returns E_CLOSED
 * (and stops watching) when libssh has closed the socket. */
int ssh_loop_update(struct ssh_loop *l);
/* Stop (paused != 0) or resume reading the socket. */
void ssh_loop_pause(struct ssh_loop *l, int paused);
/* True when libssh has nothing queued for the socket (a small packet sent
 * now goes out at once). */
int ssh_loop_output_idle(const struct ssh_loop *l);
/* True while the fd is still open. */
int ssh_loop_open(const struct ssh_loop *l);

#endif
