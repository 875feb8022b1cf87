/* loop.h - single-threaded event loop: fd watchers, timers, deferred calls,
 * signals.
 *
 * Backend: poll(2) (loop-poll in loop.c).  Callers never see pollfd; the
 * API is backend-neutral so an epoll/kqueue backend can be added without
 * touching them.  Callbacks never block.
 */
#ifndef EXPOSRD_LOOP_H
#define EXPOSRD_LOOP_H

#include <stdint.h>

struct loop;
struct loop_timer;

enum {
	LOOP_READ = 1,
	LOOP_WRITE = 2,
	LOOP_ERROR = 4, /* reported only: hangup or error condition */
};

typedef void (*loop_io_cb)(struct loop *loop, int fd, int events, void *arg);
typedef void (*loop_timer_cb)(struct loop *loop, void *arg);
typedef void (*loop_defer_cb)(void *arg);
typedef void (*loop_signal_cb)(struct loop *loop, int signo, void *arg);

struct loop *loop_new(void);
void loop_free(struct loop *loop); /* NULL is a no-op */

/* Watch fd for events (LOOP_READ|LOOP_WRITE, may be 0).  One watcher per
 * fd; adding an fd again replaces the watcher.  Returns 0 or E_*. */
int loop_add(struct loop *loop, int fd, int events, loop_io_cb cb, void *arg);
/* Change the event mask of a watched fd. */
void loop_set_events(struct loop *loop, int fd, int events);
/* Stop watching fd.  Safe inside any callback; a pending event for fd in
 * the current iteration is dropped.  Does not close fd. */
void loop_del(struct loop *loop, int fd);

/* One-shot timer after ms milliseconds.  The handle is valid until the
 * callback has run or loop_timer_cancel was called; the callback must not
 * cancel its own timer.  Returns NULL on allocation failure. */
struct loop_timer *loop_timer_add(struct loop *loop, uint64_t ms, loop_timer_cb cb, void *arg);
void loop_timer_cancel(struct loop *loop, struct loop_timer *timer); /* NULL ok */

/* Run fn(arg) after the current callback has returned, before the next
 * poll.  Used for deferred frees and for completions that must not run
 * inside the caller's stack.  Returns 0 or E_NOMEM. */
int loop_defer(struct loop *loop, loop_defer_cb fn, void *arg);

/* Deliver signo through the loop (self-pipe); the callback runs as a
 * normal loop callback.  Returns 0 or E_*. */
int loop_signal(struct loop *loop, int signo, loop_signal_cb cb, void *arg);

/* Monotonic milliseconds, cached per iteration. */
uint64_t loop_now(struct loop *loop);
/* Wall-clock milliseconds since the epoch (not cached). */
int64_t loop_wall_ms(void);
/* Monotonic microseconds (not cached). */
uint64_t loop_mono_us(void);

/* Run the deferred calls queued so far (used at teardown). */
void loop_run_deferred(struct loop *loop);
/* Run until loop_stop.  Returns 0 or E_IO when poll fails. */
int loop_run(struct loop *loop);
void loop_stop(struct loop *loop);

#endif
