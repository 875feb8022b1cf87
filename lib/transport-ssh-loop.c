/* transport-ssh-loop.c - one libssh session on our loop (see the header). */
#include "transport-ssh-loop.h"
#include "err.h"
#include "loop.h"

#include <libssh/server.h>
#include <stdlib.h>

struct ssh_loop {
	struct loop *loop;
	ssh_session s;
	ssh_loop_cb cb;
	void *arg;
	int fd;          /* the number we watch, -1 once released */
	int events;      /* LOOP_* bits last set */
	int paused;
	int kex_done;
};

static void on_io(struct loop *loop, int fd, int events, void *arg)
{
	struct ssh_loop *l = arg;
	l->cb(l->arg, events);
}

struct ssh_loop *ssh_loop_new(struct loop *loop, ssh_session s, ssh_loop_cb cb, void *arg)
{
	struct ssh_loop *l = calloc(1, sizeof(*l));
	if (!l)
		return NULL;
	l->loop = loop;
	l->s = s;
	l->cb = cb;
	l->arg = arg;
	l->fd = ssh_get_fd(s);
	l->events = LOOP_READ | LOOP_WRITE;
	if (l->fd < 0 || loop_add(loop, l->fd, l->events, on_io, l) != 0) {
		free(l);
		return NULL;
	}
	return l;
}

static void release_fd(struct ssh_loop *l)
{
	if (l->fd >= 0)
		loop_del(l->loop, l->fd);
	l->fd = -1;
}

void ssh_loop_free(struct ssh_loop *l)
{
	if (!l)
		return;
	release_fd(l);
	free(l);
}

int ssh_loop_open(const struct ssh_loop *l)
{
	return l->fd >= 0 && ssh_get_fd(l->s) == l->fd && !(ssh_get_status(l->s) & SSH_CLOSED_ERROR);
}

int ssh_loop_kex(struct ssh_loop *l)
{
	if (l->kex_done)
		return 0;
	int rc = ssh_handle_key_exchange(l->s);
	if (rc == SSH_OK) {
		l->kex_done = 1;
		return 1;
	}
	return rc == SSH_AGAIN ? 0 : E_CLOSED;
}

ssh_message ssh_loop_message(struct ssh_loop *l)
{
	if (!l->kex_done || !ssh_loop_open(l))
		return NULL;
	return ssh_message_get(l->s);
}

int ssh_loop_output_idle(const struct ssh_loop *l)
{
	return !(ssh_get_poll_flags(l->s) & SSH_WRITE_PENDING);
}

void ssh_loop_pause(struct ssh_loop *l, int paused)
{
	l->paused = paused;
}

int ssh_loop_update(struct ssh_loop *l)
{
	if (!ssh_loop_open(l)) {
		release_fd(l);
		return E_CLOSED;
	}
	int ev = l->paused ? 0 : LOOP_READ;
	if (!ssh_loop_output_idle(l))
		ev |= LOOP_WRITE;
	if (ev != l->events) {
		loop_set_events(l->loop, l->fd, ev);
		l->events = ev;
	}
	return 0;
}
