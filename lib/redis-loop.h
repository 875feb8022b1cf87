/* redis-loop.h - binds a hiredis asynchronous context to lib/loop.h.
 *
 * Header only, in the style of hiredis's own adapters (adapters/poll.h,
 * adapters/ae.h): include it from the one file that owns the
 * redisAsyncContext (storage-redis.c; later eventbus-redis.c).
 *
 * hiredis 0.14 calls addRead/delRead/addWrite/delWrite when it wants
 * readiness events and cleanup once, just before it frees the context (the
 * fd is closed by hiredis right after: only the creator closes an fd).
 * 0.14 has no timer hook, so command timeouts are the owner's job.
 *
 * The per-connection state is freed by cleanup.  cleanup can run inside
 * redis_loop_io (a read that hits EOF frees the context), so a flag defers
 * the free until redis_loop_io returns.
 */
#ifndef EXPOSRD_REDIS_LOOP_H
#define EXPOSRD_REDIS_LOOP_H

#include <errno.h>
#include <poll.h>
#include <stdlib.h>

#include <hiredis/async.h>

#include "err.h"
#include "loop.h"

struct redis_loop_ev {
	struct loop *loop;
	redisAsyncContext *ac;
	int fd;
	int events; /* LOOP_READ|LOOP_WRITE, as hiredis asked */
	int in_io;  /* inside redis_loop_io */
	int dead;   /* cleanup ran: the context is gone */
};

static inline void redis_loop_set(struct redis_loop_ev *e, int events)
{
	if (e->dead || e->events == events)
		return;
	e->events = events;
	loop_set_events(e->loop, e->fd, events);
}

static inline void redis_loop_add_read(void *p)
{
	struct redis_loop_ev *e = p;
	redis_loop_set(e, e->events | LOOP_READ);
}

static inline void redis_loop_del_read(void *p)
{
	struct redis_loop_ev *e = p;
	redis_loop_set(e, e->events & ~LOOP_READ);
}

static inline void redis_loop_add_write(void *p)
{
	struct redis_loop_ev *e = p;
	redis_loop_set(e, e->events | LOOP_WRITE);
}

static inline void redis_loop_del_write(void *p)
{
	struct redis_loop_ev *e = p;
	redis_loop_set(e, e->events & ~LOOP_WRITE);
}

static inline void redis_loop_cleanup(void *p)
{
	struct redis_loop_ev *e = p;
	if (!e || e->dead)
		return;
	loop_del(e->loop, e->fd);
	e->dead = 1;
	/* Nothing may reach e through the context any more (a second cleanup
	 * call, as some hiredis versions make, is then a no-op). */
	e->ac->ev.addRead = NULL;
	e->ac->ev.delRead = NULL;
	e->ac->ev.addWrite = NULL;
	e->ac->ev.delWrite = NULL;
	e->ac->ev.cleanup = NULL;
	e->ac->ev.data = NULL;
	if (!e->in_io)
		free(e);
}

/* Watcher callback.  The context may be freed inside (EOF, error, or an
 * owner's callback calling redisAsyncFree); e survives until the end. */
static inline void redis_loop_io(struct loop *loop, int fd, int events, void *arg)
{
	struct redis_loop_ev *e = arg;
	(void)loop;
	(void)fd;
	e->in_io = 1;
	/* Errors and hangups go through the read path: it completes a pending
	 * connect (reporting its error) or reads EOF / the error. */
	if (events & (LOOP_READ | LOOP_ERROR))
		redisAsyncHandleRead(e->ac);
	if (!e->dead && (events & LOOP_WRITE))
		redisAsyncHandleWrite(e->ac);
	e->in_io = 0;
	if (e->dead)
		free(e);
}

/* Attach ac (fresh from redisAsyncConnect, without error) to loop.
 * Returns 0, E_INVAL if ac already has an adapter, or E_NOMEM. */
static inline int redis_loop_attach(redisAsyncContext *ac, struct loop *loop)
{
	if (ac->ev.data)
		return E_INVAL;
	struct redis_loop_ev *e = calloc(1, sizeof(*e));
	if (!e)
		return E_NOMEM;
	e->loop = loop;
	e->ac = ac;
	e->fd = ac->c.fd;
	if (loop_add(loop, e->fd, 0, redis_loop_io, e) != 0) {
		free(e);
		return E_NOMEM;
	}
	ac->ev.addRead = redis_loop_add_read;
	ac->ev.delRead = redis_loop_del_read;
	ac->ev.addWrite = redis_loop_add_write;
	ac->ev.delWrite = redis_loop_del_write;
	ac->ev.cleanup = redis_loop_cleanup;
	ac->ev.data = e;
	return 0;
}

/* Blocking helper for startup only (before the loop runs): wait up to
 * timeout_ms for the events hiredis wants on ac and handle them, exactly
 * as the loop would.  ac may be freed inside; the owner learns that from
 * its connect/disconnect callbacks.  Returns 1 when events were handled,
 * 0 on timeout, E_INVAL without an adapter, E_IO when poll fails. */
static inline int redis_loop_wait(redisAsyncContext *ac, int timeout_ms)
{
	struct redis_loop_ev *e = ac->ev.data;
	if (!e || e->dead)
		return E_INVAL;
	struct pollfd p;
	p.fd = e->fd;
	p.events = (short)(((e->events & LOOP_READ) ? POLLIN : 0) | ((e->events & LOOP_WRITE) ? POLLOUT : 0));
	p.revents = 0;
	int n = poll(&p, 1, timeout_ms);
	if (n < 0)
		return errno == EINTR ? 0 : E_IO;
	if (n == 0)
		return 0;
	int ev = 0;
	if (p.revents & (POLLIN | POLLHUP))
		ev |= LOOP_READ;
	if (p.revents & POLLOUT)
		ev |= LOOP_WRITE;
	if (p.revents & (POLLERR | POLLHUP | POLLNVAL))
		ev |= LOOP_ERROR;
	redis_loop_io(e->loop, e->fd, ev, e);
	return 1;
}

#endif
