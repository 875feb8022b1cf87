/* loop.c - poll(2) backend of the event loop.
 *
 * Per-fd slots indexed by fd, a pollfd array rebuilt only when the set of
 * fds or their masks changed, a binary min-heap of timers, and a FIFO of
 * deferred calls drained after every batch of callbacks.
 */
#include "loop.h"
#include "err.h"

#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#define LOOP_MAX_SIGNALS 8

struct loop_slot {
	loop_io_cb cb;
	void *arg;
	int events;
	unsigned gen;   /* bumped when the slot is (re)assigned or deleted */
	int pollidx;    /* index in pollfds, -1 when not present */
};

struct loop_timer {
	uint64_t deadline;
	uint64_t seq;   /* tie-break so equal deadlines fire in order */
	size_t heapidx;
	loop_timer_cb cb;
	void *arg;
};

struct loop_deferred {
	loop_defer_cb fn;
	void *arg;
};

struct loop_sighandler {
	int signo;
	loop_signal_cb cb;
	void *arg;
};

struct loop {
	struct loop_slot *slots;
	int nslots;
	struct pollfd *pollfds;
	unsigned *pollgens;
	int npoll, pollcap;
	int poll_dirty;

	struct loop_timer **heap;
	size_t nheap, heapcap;
	uint64_t timer_seq;

	struct loop_deferred *defer;
	size_t ndefer, defercap, defer_head;

	struct loop_sighandler sig[LOOP_MAX_SIGNALS];
	int nsig;
	int sigpipe[2];

	uint64_t now;
	int stop;
};

static int loop_signal_pipe_write = -1;

uint64_t loop_mono_us(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000000u + (uint64_t)ts.tv_nsec / 1000u;
}

int64_t loop_wall_ms(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_REALTIME, &ts);
	return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static void update_now(struct loop *loop)
{
	loop->now = loop_mono_us() / 1000u;
}

uint64_t loop_now(struct loop *loop)
{
	return loop->now;
}

struct loop *loop_new(void)
{
	struct loop *loop = calloc(1, sizeof(*loop));
	if (!loop)
		return NULL;
	loop->sigpipe[0] = loop->sigpipe[1] = -1;
	update_now(loop);
	return loop;
}

void loop_free(struct loop *loop)
{
	if (!loop)
		return;
	for (size_t i = 0; i < loop->nheap; i++)
		free(loop->heap[i]);
	if (loop->sigpipe[0] >= 0) {
		loop_signal_pipe_write = -1;
		close(loop->sigpipe[0]);
		close(loop->sigpipe[1]);
	}
	free(loop->heap);
	free(loop->defer);
	free(loop->slots);
	free(loop->pollfds);
	free(loop->pollgens);
	free(loop);
}

static int ensure_slot(struct loop *loop, int fd)
{
	if (fd < loop->nslots)
		return 0;
	int n = loop->nslots ? loop->nslots : 64;
	while (n <= fd)
		n *= 2;
	struct loop_slot *s = realloc(loop->slots, (size_t)n * sizeof(*s));
	if (!s)
		return E_NOMEM;
	memset(s + loop->nslots, 0, (size_t)(n - loop->nslots) * sizeof(*s));
	for (int i = loop->nslots; i < n; i++)
		s[i].pollidx = -1;
	loop->slots = s;
	loop->nslots = n;
	return 0;
}

int loop_add(struct loop *loop, int fd, int events, loop_io_cb cb, void *arg)
{
	if (fd < 0 || !cb)
		return E_INVAL;
	if (ensure_slot(loop, fd) != 0)
		return E_NOMEM;
	struct loop_slot *s = &loop->slots[fd];
	s->cb = cb;
	s->arg = arg;
	s->events = events;
	s->gen++;
	loop->poll_dirty = 1;
	return 0;
}

void loop_set_events(struct loop *loop, int fd, int events)
{
	if (fd < 0 || fd >= loop->nslots || !loop->slots[fd].cb)
		return;
	struct loop_slot *s = &loop->slots[fd];
	if (s->events == events)
		return;
	s->events = events;
	if (s->pollidx >= 0 && s->pollidx < loop->npoll && loop->pollfds[s->pollidx].fd == fd) {
		short ev = 0;
		if (events & LOOP_READ)
			ev |= POLLIN;
		if (events & LOOP_WRITE)
			ev |= POLLOUT;
		loop->pollfds[s->pollidx].events = ev;
		return;
	}
	loop->poll_dirty = 1;
}

void loop_del(struct loop *loop, int fd)
{
	if (fd < 0 || fd >= loop->nslots)
		return;
	struct loop_slot *s = &loop->slots[fd];
	s->cb = NULL;
	s->arg = NULL;
	s->events = 0;
	s->gen++;
	s->pollidx = -1;
	loop->poll_dirty = 1;
}

static int rebuild_pollfds(struct loop *loop)
{
	int n = 0;
	for (int fd = 0; fd < loop->nslots; fd++)
		if (loop->slots[fd].cb)
			n++;
	if (n > loop->pollcap) {
		int cap = loop->pollcap ? loop->pollcap : 64;
		while (cap < n)
			cap *= 2;
		struct pollfd *p = realloc(loop->pollfds, (size_t)cap * sizeof(*p));
		if (!p)
			return E_NOMEM;
		loop->pollfds = p;
		unsigned *g = realloc(loop->pollgens, (size_t)cap * sizeof(*g));
		if (!g)
			return E_NOMEM;
		loop->pollgens = g;
		loop->pollcap = cap;
	}
	int i = 0;
	for (int fd = 0; fd < loop->nslots; fd++) {
		struct loop_slot *s = &loop->slots[fd];
		if (!s->cb) {
			s->pollidx = -1;
			continue;
		}
		short ev = 0;
		if (s->events & LOOP_READ)
			ev |= POLLIN;
		if (s->events & LOOP_WRITE)
			ev |= POLLOUT;
		loop->pollfds[i].fd = fd;
		loop->pollfds[i].events = ev;
		loop->pollfds[i].revents = 0;
		loop->pollgens[i] = s->gen;
		s->pollidx = i;
		i++;
	}
	loop->npoll = i;
	loop->poll_dirty = 0;
	return 0;
}

/* ---- timers: binary min-heap ---- */

static int timer_less(const struct loop_timer *a, const struct loop_timer *b)
{
	if (a->deadline != b->deadline)
		return a->deadline < b->deadline;
	return a->seq < b->seq;
}

static void heap_swap(struct loop *loop, size_t i, size_t j)
{
	struct loop_timer *t = loop->heap[i];
	loop->heap[i] = loop->heap[j];
	loop->heap[j] = t;
	loop->heap[i]->heapidx = i;
	loop->heap[j]->heapidx = j;
}

static void heap_up(struct loop *loop, size_t i)
{
	while (i > 0) {
		size_t parent = (i - 1) / 2;
		if (!timer_less(loop->heap[i], loop->heap[parent]))
			break;
		heap_swap(loop, i, parent);
		i = parent;
	}
}

static void heap_down(struct loop *loop, size_t i)
{
	for (;;) {
		size_t l = 2 * i + 1, r = l + 1, m = i;
		if (l < loop->nheap && timer_less(loop->heap[l], loop->heap[m]))
			m = l;
		if (r < loop->nheap && timer_less(loop->heap[r], loop->heap[m]))
			m = r;
		if (m == i)
			return;
		heap_swap(loop, i, m);
		i = m;
	}
}

static void heap_remove(struct loop *loop, size_t i)
{
	loop->nheap--;
	if (i == loop->nheap)
		return;
	loop->heap[i] = loop->heap[loop->nheap];
	loop->heap[i]->heapidx = i;
	heap_down(loop, i);
	heap_up(loop, i);
}

struct loop_timer *loop_timer_add(struct loop *loop, uint64_t ms, loop_timer_cb cb, void *arg)
{
	if (loop->nheap == loop->heapcap) {
		size_t cap = loop->heapcap ? loop->heapcap * 2 : 64;
		struct loop_timer **h = realloc(loop->heap, cap * sizeof(*h));
		if (!h)
			return NULL;
		loop->heap = h;
		loop->heapcap = cap;
	}
	struct loop_timer *t = malloc(sizeof(*t));
	if (!t)
		return NULL;
	update_now(loop);
	t->deadline = loop->now + ms;
	t->seq = ++loop->timer_seq;
	t->cb = cb;
	t->arg = arg;
	t->heapidx = loop->nheap;
	loop->heap[loop->nheap++] = t;
	heap_up(loop, t->heapidx);
	return t;
}

void loop_timer_cancel(struct loop *loop, struct loop_timer *timer)
{
	if (!timer)
		return;
	heap_remove(loop, timer->heapidx);
	free(timer);
}

static void run_timers(struct loop *loop)
{
	update_now(loop);
	/* Timers added by these callbacks wait for the next iteration, so a
	 * callback re-arming a 0 ms timer cannot starve I/O. */
	uint64_t last_seq = loop->timer_seq;
	while (loop->nheap > 0 && loop->heap[0]->deadline <= loop->now &&
	       loop->heap[0]->seq <= last_seq) {
		struct loop_timer *t = loop->heap[0];
		heap_remove(loop, 0);
		loop_timer_cb cb = t->cb;
		void *arg = t->arg;
		free(t);
		cb(loop, arg);
	}
}

static int poll_timeout(struct loop *loop)
{
	if (loop->ndefer > loop->defer_head)
		return 0;
	if (loop->nheap == 0)
		return 1000;
	update_now(loop);
	uint64_t deadline = loop->heap[0]->deadline;
	if (deadline <= loop->now)
		return 0;
	uint64_t wait = deadline - loop->now;
	return wait > 1000 ? 1000 : (int)wait;
}

/* ---- deferred calls ---- */

int loop_defer(struct loop *loop, loop_defer_cb fn, void *arg)
{
	if (loop->ndefer == loop->defercap) {
		if (loop->defer_head > 0) {
			memmove(loop->defer, loop->defer + loop->defer_head,
				(loop->ndefer - loop->defer_head) * sizeof(*loop->defer));
			loop->ndefer -= loop->defer_head;
			loop->defer_head = 0;
		}
		if (loop->ndefer == loop->defercap) {
			size_t cap = loop->defercap ? loop->defercap * 2 : 64;
			struct loop_deferred *d = realloc(loop->defer, cap * sizeof(*d));
			if (!d)
				return E_NOMEM;
			loop->defer = d;
			loop->defercap = cap;
		}
	}
	loop->defer[loop->ndefer].fn = fn;
	loop->defer[loop->ndefer].arg = arg;
	loop->ndefer++;
	return 0;
}

static void run_deferred(struct loop *loop)
{
	while (loop->defer_head < loop->ndefer) {
		struct loop_deferred d = loop->defer[loop->defer_head++];
		d.fn(d.arg);
	}
	loop->defer_head = 0;
	loop->ndefer = 0;
}

/* ---- signals: self-pipe ---- */

static void signal_trampoline(int signo)
{
	int saved = errno;
	unsigned char b = (unsigned char)signo;
	if (loop_signal_pipe_write >= 0)
		(void)!write(loop_signal_pipe_write, &b, 1);
	errno = saved;
}

static void signal_pipe_readable(struct loop *loop, int fd, int events, void *arg)
{
	unsigned char buf[64];
	ssize_t n = read(fd, buf, sizeof(buf));
	for (ssize_t i = 0; i < n; i++)
		for (int j = 0; j < loop->nsig; j++)
			if (loop->sig[j].signo == buf[i])
				loop->sig[j].cb(loop, buf[i], loop->sig[j].arg);
}

static int set_nonblock_cloexec(int fd)
{
	int fl = fcntl(fd, F_GETFL);
	if (fl < 0 || fcntl(fd, F_SETFL, fl | O_NONBLOCK) < 0)
		return E_IO;
	if (fcntl(fd, F_SETFD, FD_CLOEXEC) < 0)
		return E_IO;
	return 0;
}

int loop_signal(struct loop *loop, int signo, loop_signal_cb cb, void *arg)
{
	if (loop->nsig == LOOP_MAX_SIGNALS)
		return E_LIMIT;
	if (loop->sigpipe[0] < 0) {
		if (pipe(loop->sigpipe) != 0)
			return E_IO;
		if (set_nonblock_cloexec(loop->sigpipe[0]) || set_nonblock_cloexec(loop->sigpipe[1]))
			return E_IO;
		int rc = loop_add(loop, loop->sigpipe[0], LOOP_READ, signal_pipe_readable, NULL);
		if (rc)
			return rc;
		loop_signal_pipe_write = loop->sigpipe[1];
	}
	loop->sig[loop->nsig].signo = signo;
	loop->sig[loop->nsig].cb = cb;
	loop->sig[loop->nsig].arg = arg;
	loop->nsig++;
	struct sigaction sa;
	memset(&sa, 0, sizeof(sa));
	sa.sa_handler = signal_trampoline;
	sigemptyset(&sa.sa_mask);
	sa.sa_flags = SA_RESTART;
	return sigaction(signo, &sa, NULL) == 0 ? 0 : E_IO;
}

/* ---- main loop ---- */

static void dispatch_io(struct loop *loop, int nready)
{
	int npoll = loop->npoll;
	for (int i = 0; i < npoll && nready > 0; i++) {
		struct pollfd *p = &loop->pollfds[i];
		if (!p->revents)
			continue;
		nready--;
		int fd = p->fd;
		short rev = p->revents;
		p->revents = 0;
		if (fd >= loop->nslots)
			continue;
		struct loop_slot *s = &loop->slots[fd];
		/* The slot was deleted or reassigned by an earlier callback. */
		if (!s->cb || s->gen != loop->pollgens[i])
			continue;
		int events = 0;
		if (rev & (POLLIN | POLLHUP))
			events |= LOOP_READ;
		if (rev & POLLOUT)
			events |= LOOP_WRITE;
		if (rev & (POLLERR | POLLHUP | POLLNVAL))
			events |= LOOP_ERROR;
		s->cb(loop, fd, events, s->arg);
		run_deferred(loop);
	}
}

int loop_run(struct loop *loop)
{
	loop->stop = 0;
	while (!loop->stop) {
		run_deferred(loop);
		if (loop->stop)
			break;
		if (loop->poll_dirty && rebuild_pollfds(loop) != 0)
			return E_NOMEM;
		int n = poll(loop->pollfds, (nfds_t)loop->npoll, poll_timeout(loop));
		if (n < 0 && errno != EINTR)
			return E_IO;
		update_now(loop);
		if (n > 0)
			dispatch_io(loop, n);
		run_timers(loop);
		run_deferred(loop);
	}
	return 0;
}

void loop_run_deferred(struct loop *loop)
{
	run_deferred(loop);
}

void loop_stop(struct loop *loop)
{
	loop->stop = 1;
}
