/* t-loop.c - tests of the event loop (poll backend).
 *
 * Every test arms a guard timer that stops the loop if the expected
 * event never comes, and main() arms alarm() against a loop that spins
 * without returning to its timers.  The whole runner takes well under a
 * second.
 */
#include "loop.h"
#include "err.h"
#include "test.h"

#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <unistd.h>

#define GUARD_MS 500

static int guard_fired;

static void guard_cb(struct loop *loop, void *arg)
{
	guard_fired = 1;
	loop_stop(loop);
}

static struct loop_timer *arm_guard(struct loop *loop)
{
	guard_fired = 0;
	return loop_timer_add(loop, GUARD_MS, guard_cb, NULL);
}

static void stop_cb(struct loop *loop, void *arg)
{
	loop_stop(loop);
}

static int make_pipe(int p[2])
{
	if (pipe(p) != 0)
		return -1;
	for (int i = 0; i < 2; i++)
		if (fcntl(p[i], F_SETFL, fcntl(p[i], F_GETFL) | O_NONBLOCK) != 0)
			return -1;
	return 0;
}

static void close_pipe(int p[2])
{
	close(p[0]);
	close(p[1]);
}

/* A log of events as a string ("1T3"). */
static char evlog[256];
static size_t evlog_len;

static void log_reset(void)
{
	evlog_len = 0;
	evlog[0] = '\0';
}

static void log_add(char c)
{
	if (evlog_len + 1 < sizeof(evlog)) {
		evlog[evlog_len++] = c;
		evlog[evlog_len] = '\0';
	}
}

/* ---- timers ---- */

struct tstamp {
	struct loop *loop;
	char id;
	uint64_t ms;
	uint64_t added;
	uint64_t fired;
	int stop;
};

static void tstamp_cb(struct loop *loop, void *arg)
{
	struct tstamp *t = arg;
	t->fired = loop_now(loop);
	log_add(t->id);
	if (t->stop)
		loop_stop(loop);
}

TEST(test_timer_order)
{
	struct loop *loop = loop_new();
	CHECK(loop != NULL);
	if (!loop)
		return;
	log_reset();
	struct tstamp ts[] = {
		{ loop, 'e', 30, 0, 0, 1 },
		{ loop, 'b', 10, 0, 0, 0 },
		{ loop, 'd', 20, 0, 0, 0 },
		{ loop, 'a', 0, 0, 0, 0 },
		{ loop, 'c', 10, 0, 0, 0 }, /* same delay as 'b', added later */
	};
	struct loop_timer *guard = arm_guard(loop);
	for (size_t i = 0; i < sizeof(ts) / sizeof(ts[0]); i++) {
		ts[i].added = loop_now(loop);
		CHECK(loop_timer_add(loop, ts[i].ms, tstamp_cb, &ts[i]) != NULL);
	}
	CHECK_EQ(loop_run(loop), 0);
	CHECK_STR(evlog, "abcde");
	CHECK(!guard_fired);
	for (size_t i = 0; i < sizeof(ts) / sizeof(ts[0]); i++)
		CHECK(ts[i].fired >= ts[i].added + ts[i].ms);
	loop_timer_cancel(loop, guard);
	loop_free(loop);
}

/* Many timers with pseudo-random delays, some cancelled: the rest fire in
 * order of deadline, each exactly once. */
struct heap_timer {
	uint64_t deadline;
	int fired;
	int cancelled;
	struct loop_timer *h;
};

static uint64_t last_deadline;
static int order_ok;
static int heap_fired;

static void heap_cb(struct loop *loop, void *arg)
{
	struct heap_timer *t = arg;
	if (t->deadline < last_deadline || t->cancelled || t->fired)
		order_ok = 0;
	last_deadline = t->deadline;
	t->fired++;
	t->h = NULL;
	heap_fired++;
}

TEST(test_timer_heap)
{
	struct loop *loop = loop_new();
	if (!loop)
		return;
	enum { N = 300 };
	static struct heap_timer t[N];
	unsigned x = 12345;
	order_ok = 1;
	last_deadline = 0;
	heap_fired = 0;
	for (int i = 0; i < N; i++) {
		x = x * 1103515245u + 12345u;
		uint64_t ms = (x >> 16) % 40;
		memset(&t[i], 0, sizeof(t[i]));
		t[i].h = loop_timer_add(loop, ms, heap_cb, &t[i]);
		t[i].deadline = loop_now(loop) + ms; /* loop_now after the add */
		CHECK(t[i].h != NULL);
	}
	int live = N;
	for (int i = 0; i < N; i += 3) {
		loop_timer_cancel(loop, t[i].h);
		t[i].cancelled = 1;
		t[i].h = NULL;
		live--;
	}
	loop_timer_cancel(loop, NULL);
	struct loop_timer *guard = arm_guard(loop);
	CHECK(loop_timer_add(loop, 60, stop_cb, NULL) != NULL);
	CHECK_EQ(loop_run(loop), 0);
	CHECK(!guard_fired);
	CHECK(order_ok);
	CHECK_EQ(heap_fired, live);
	for (int i = 0; i < N; i++)
		CHECK_EQ(t[i].fired, t[i].cancelled ? 0 : 1);
	loop_timer_cancel(loop, guard);
	loop_free(loop);
}

TEST(test_timer_cancel)
{
	struct loop *loop = loop_new();
	if (!loop)
		return;
	log_reset();
	struct tstamp a = { loop, 'a', 5, 0, 0, 0 };
	struct tstamp b = { loop, 'b', 15, 0, 0, 1 };
	struct loop_timer *ta = loop_timer_add(loop, a.ms, tstamp_cb, &a);
	CHECK(loop_timer_add(loop, b.ms, tstamp_cb, &b) != NULL);
	struct loop_timer *guard = arm_guard(loop);
	loop_timer_cancel(loop, ta);
	CHECK_EQ(loop_run(loop), 0);
	CHECK_STR(evlog, "b");
	CHECK(!guard_fired);
	loop_timer_cancel(loop, guard);
	loop_free(loop);
}

/* A callback cancels other timers: one due later and one due in the same
 * pass (both at 0 ms). */
static struct loop_timer *victims[2];

static void canceller_cb(struct loop *loop, void *arg)
{
	log_add('C');
	loop_timer_cancel(loop, victims[0]);
	loop_timer_cancel(loop, victims[1]);
	victims[0] = victims[1] = NULL;
}

static void victim_cb(struct loop *loop, void *arg)
{
	log_add('V');
}

TEST(test_timer_cancel_from_callback)
{
	struct loop *loop = loop_new();
	if (!loop)
		return;
	log_reset();
	CHECK(loop_timer_add(loop, 0, canceller_cb, NULL) != NULL);
	victims[0] = loop_timer_add(loop, 0, victim_cb, NULL);  /* same pass */
	victims[1] = loop_timer_add(loop, 10, victim_cb, NULL); /* later */
	struct tstamp end = { loop, 'E', 20, 0, 0, 1 };
	CHECK(loop_timer_add(loop, end.ms, tstamp_cb, &end) != NULL);
	struct loop_timer *guard = arm_guard(loop);
	CHECK_EQ(loop_run(loop), 0);
	CHECK_STR(evlog, "CE");
	CHECK(!guard_fired);
	loop_timer_cancel(loop, guard);
	loop_free(loop);
}

/* A timer that re-arms itself at 0 ms must not keep the loop inside its
 * timer pass: I/O that became ready is dispatched in between. */
static int rearm_count;
static int rearm_at_io = -1;
static int rearm_pipe[2];
static struct loop_timer *rearm_timer;

static void rearm_cb(struct loop *loop, void *arg)
{
	rearm_count++;
	if (rearm_count == 1)
		CHECK_EQ(write(rearm_pipe[1], "x", 1), 1);
	if (rearm_count >= 100000) { /* starved: give up */
		rearm_timer = NULL;
		loop_stop(loop);
		return;
	}
	rearm_timer = loop_timer_add(loop, 0, rearm_cb, NULL);
}

static void rearm_io_cb(struct loop *loop, int fd, int events, void *arg)
{
	rearm_at_io = rearm_count;
	loop_del(loop, fd);
	loop_timer_cancel(loop, rearm_timer);
	rearm_timer = NULL;
	loop_stop(loop);
}

TEST(test_timer_zero_rearm_no_starvation)
{
	struct loop *loop = loop_new();
	if (!loop || make_pipe(rearm_pipe) != 0)
		return;
	rearm_count = 0;
	rearm_at_io = -1;
	CHECK_EQ(loop_add(loop, rearm_pipe[0], LOOP_READ, rearm_io_cb, NULL), 0);
	rearm_timer = loop_timer_add(loop, 0, rearm_cb, NULL);
	struct loop_timer *guard = arm_guard(loop);
	CHECK_EQ(loop_run(loop), 0);
	CHECK(rearm_at_io >= 1);
	CHECK(rearm_at_io <= 3);
	CHECK(!guard_fired);
	loop_timer_cancel(loop, guard);
	loop_free(loop);
	close_pipe(rearm_pipe);
}

/* ---- deferred calls ---- */

static int in_callback;
static int defer_ran_in_callback;
static int wake_pipe[2];
static struct loop *defer_loop;

static void deferred_fn(void *arg)
{
	if (in_callback)
		defer_ran_in_callback = 1;
	log_add(*(const char *)arg);
}

static void nested_deferred_fn(void *arg)
{
	log_add('n');
	/* Deferred from a deferred call: still before the next poll. */
	CHECK_EQ(loop_defer(defer_loop, deferred_fn, "m"), 0);
}

static void defer_timer_cb(struct loop *loop, void *arg)
{
	in_callback = 1;
	log_add('T');
	CHECK_EQ(loop_defer(loop, deferred_fn, "t"), 0);
	CHECK_EQ(loop_defer(loop, nested_deferred_fn, NULL), 0);
	/* The pipe becomes readable now; its event needs another poll. */
	CHECK_EQ(write(wake_pipe[1], "x", 1), 1);
	log_add('w');
	in_callback = 0;
}

static void defer_io_cb(struct loop *loop, int fd, int events, void *arg)
{
	char c;
	CHECK_EQ(read(fd, &c, 1), 1);
	in_callback = 1;
	log_add('R');
	CHECK_EQ(loop_defer(loop, deferred_fn, "r"), 0);
	CHECK_EQ(loop_defer(loop, deferred_fn, "s"), 0);
	in_callback = 0;
	loop_stop(loop);
}

TEST(test_defer_order)
{
	struct loop *loop = loop_new();
	if (!loop || make_pipe(wake_pipe) != 0)
		return;
	defer_loop = loop;
	log_reset();
	in_callback = 0;
	defer_ran_in_callback = 0;
	/* Deferred before loop_run: runs before the first poll. */
	CHECK_EQ(loop_defer(loop, deferred_fn, "0"), 0);
	CHECK_EQ(loop_add(loop, wake_pipe[0], LOOP_READ, defer_io_cb, NULL), 0);
	CHECK(loop_timer_add(loop, 5, defer_timer_cb, NULL) != NULL);
	struct loop_timer *guard = arm_guard(loop);
	CHECK_EQ(loop_run(loop), 0);
	/* 0: before the first poll; T w then t n m: after the timer callback
	 * returned and before the poll that reports the pipe (R); r s after
	 * the I/O callback, in FIFO order. */
	CHECK_STR(evlog, "0TwtnmRrs");
	CHECK(!defer_ran_in_callback);
	CHECK(!guard_fired);
	loop_timer_cancel(loop, guard);
	loop_free(loop);
	close_pipe(wake_pipe);
}

/* The deferred call of one I/O callback runs before the next I/O
 * callback of the same poll batch. */
static void batch_deferred(void *arg)
{
	log_add('d');
}

static void batch_io_cb(struct loop *loop, int fd, int events, void *arg)
{
	char c;
	CHECK_EQ(read(fd, &c, 1), 1);
	log_add('I');
	CHECK_EQ(loop_defer(loop, batch_deferred, NULL), 0);
}

TEST(test_defer_between_io_callbacks)
{
	struct loop *loop = loop_new();
	int p1[2], p2[2];
	if (!loop || make_pipe(p1) != 0 || make_pipe(p2) != 0)
		return;
	log_reset();
	CHECK_EQ(write(p1[1], "a", 1), 1);
	CHECK_EQ(write(p2[1], "b", 1), 1);
	CHECK_EQ(loop_add(loop, p1[0], LOOP_READ, batch_io_cb, NULL), 0);
	CHECK_EQ(loop_add(loop, p2[0], LOOP_READ, batch_io_cb, NULL), 0);
	CHECK(loop_timer_add(loop, 0, stop_cb, NULL) != NULL);
	struct loop_timer *guard = arm_guard(loop);
	CHECK_EQ(loop_run(loop), 0);
	CHECK_STR(evlog, "IdId");
	loop_timer_cancel(loop, guard);
	loop_free(loop);
	close_pipe(p1);
	close_pipe(p2);
}

/* Many deferred calls (queue growth), some queued while draining. */
static int defer_count;
static int defer_seq_ok;

static void counting_fn(void *arg)
{
	if ((int)(intptr_t)arg != defer_count)
		defer_seq_ok = 0;
	defer_count++;
	if (defer_count == 100)
		for (int i = 0; i < 100; i++)
			CHECK_EQ(loop_defer(defer_loop, counting_fn, (void *)(intptr_t)(200 + i)), 0);
}

static void many_defer_timer(struct loop *loop, void *arg)
{
	for (int i = 0; i < 200; i++)
		CHECK_EQ(loop_defer(loop, counting_fn, (void *)(intptr_t)i), 0);
	loop_stop(loop);
}

TEST(test_defer_many)
{
	struct loop *loop = loop_new();
	if (!loop)
		return;
	defer_loop = loop;
	defer_count = 0;
	defer_seq_ok = 1;
	CHECK(loop_timer_add(loop, 0, many_defer_timer, NULL) != NULL);
	struct loop_timer *guard = arm_guard(loop);
	CHECK_EQ(loop_run(loop), 0);
	CHECK_EQ(defer_count, 300);
	CHECK(defer_seq_ok);
	loop_timer_cancel(loop, guard);
	loop_free(loop);
}

/* ---- fd watchers ---- */

static int io_events;
static int io_calls;
static char io_byte;

static void pipe_read_cb(struct loop *loop, int fd, int events, void *arg)
{
	io_calls++;
	io_events = events;
	CHECK(arg == &io_calls);
	CHECK_EQ(read(fd, &io_byte, 1), 1);
	loop_stop(loop);
}

static void writer_timer_cb(struct loop *loop, void *arg)
{
	int fd = *(int *)arg;
	CHECK_EQ(write(fd, "Q", 1), 1);
}

TEST(test_fd_read)
{
	struct loop *loop = loop_new();
	int p[2];
	if (!loop || make_pipe(p) != 0)
		return;
	io_calls = 0;
	io_events = 0;
	CHECK_EQ(loop_add(loop, p[0], LOOP_READ, pipe_read_cb, &io_calls), 0);
	/* Nothing written yet: the watcher fires only after the write. */
	CHECK(loop_timer_add(loop, 10, writer_timer_cb, &p[1]) != NULL);
	struct loop_timer *guard = arm_guard(loop);
	uint64_t t0 = loop_now(loop);
	CHECK_EQ(loop_run(loop), 0);
	CHECK_EQ(io_calls, 1);
	CHECK(io_events & LOOP_READ);
	CHECK(!(io_events & LOOP_WRITE));
	CHECK_EQ(io_byte, 'Q');
	CHECK(loop_now(loop) >= t0 + 10);
	CHECK(!guard_fired);
	loop_timer_cancel(loop, guard);
	loop_free(loop);
	close_pipe(p);
}

/* A watched fd above the initial slot table size. */
TEST(test_fd_high_number)
{
	struct loop *loop = loop_new();
	int p[2];
	if (!loop || make_pipe(p) != 0)
		return;
	int high = dup2(p[0], 300);
	CHECK_EQ(high, 300);
	io_calls = 0;
	CHECK_EQ(write(p[1], "h", 1), 1);
	CHECK_EQ(loop_add(loop, high, LOOP_READ, pipe_read_cb, &io_calls), 0);
	struct loop_timer *guard = arm_guard(loop);
	CHECK_EQ(loop_run(loop), 0);
	CHECK_EQ(io_calls, 1);
	CHECK_EQ(io_byte, 'h');
	loop_timer_cancel(loop, guard);
	loop_free(loop);
	close(high);
	close_pipe(p);
}

TEST(test_fd_add_errors)
{
	struct loop *loop = loop_new();
	if (!loop)
		return;
	CHECK_EQ(loop_add(loop, -1, LOOP_READ, pipe_read_cb, NULL), E_INVAL);
	CHECK_EQ(loop_add(loop, 0, LOOP_READ, NULL, NULL), E_INVAL);
	loop_del(loop, -1);      /* no-ops */
	loop_del(loop, 100000);
	loop_set_events(loop, -1, LOOP_READ);
	loop_set_events(loop, 100000, LOOP_READ);
	loop_free(loop);
	loop_free(NULL);
}

/* Write readiness, then loop_set_events(0) silences the watcher. */
static int write_calls;

static void pipe_write_cb(struct loop *loop, int fd, int events, void *arg)
{
	write_calls++;
	CHECK(events & LOOP_WRITE);
	loop_set_events(loop, fd, 0);
}

TEST(test_fd_write_and_set_events)
{
	struct loop *loop = loop_new();
	int p[2];
	if (!loop || make_pipe(p) != 0)
		return;
	write_calls = 0;
	CHECK_EQ(loop_add(loop, p[1], LOOP_WRITE, pipe_write_cb, NULL), 0);
	CHECK(loop_timer_add(loop, 20, stop_cb, NULL) != NULL);
	struct loop_timer *guard = arm_guard(loop);
	CHECK_EQ(loop_run(loop), 0);
	CHECK_EQ(write_calls, 1);
	/* Re-enable: fires again. */
	loop_set_events(loop, p[1], LOOP_WRITE);
	CHECK(loop_timer_add(loop, 20, stop_cb, NULL) != NULL);
	CHECK_EQ(loop_run(loop), 0);
	CHECK_EQ(write_calls, 2);
	loop_timer_cancel(loop, guard);
	loop_free(loop);
	close_pipe(p);
}

/* The peer closing its end: read readiness, then EOF. */
static int hup_events;
static ssize_t hup_read;

static void hup_cb(struct loop *loop, int fd, int events, void *arg)
{
	char c;
	hup_events = events;
	hup_read = read(fd, &c, 1);
	loop_del(loop, fd);
	loop_stop(loop);
}

TEST(test_fd_hangup)
{
	struct loop *loop = loop_new();
	int p[2];
	if (!loop || make_pipe(p) != 0)
		return;
	hup_events = 0;
	hup_read = -2;
	CHECK_EQ(loop_add(loop, p[0], LOOP_READ, hup_cb, NULL), 0);
	close(p[1]);
	struct loop_timer *guard = arm_guard(loop);
	CHECK_EQ(loop_run(loop), 0);
	CHECK(hup_events & LOOP_READ);
	CHECK_EQ(hup_read, 0);
	CHECK(!guard_fired);
	loop_timer_cancel(loop, guard);
	loop_free(loop);
	close(p[0]);
}

/* loop_del inside a callback for an fd whose event is pending in the same
 * iteration: that callback is not called. */
static int del_fds[2];
static int del_calls[2];

static void del_other_cb(struct loop *loop, int fd, int events, void *arg)
{
	int me = (int)(intptr_t)arg;
	del_calls[me]++;
	if (del_calls[0] + del_calls[1] == 1) {
		loop_del(loop, del_fds[1 - me]);
		loop_del(loop, fd);
	}
}

TEST(test_fd_del_pending)
{
	struct loop *loop = loop_new();
	int p1[2], p2[2];
	if (!loop || make_pipe(p1) != 0 || make_pipe(p2) != 0)
		return;
	del_fds[0] = p1[0];
	del_fds[1] = p2[0];
	del_calls[0] = del_calls[1] = 0;
	CHECK_EQ(write(p1[1], "a", 1), 1);
	CHECK_EQ(write(p2[1], "b", 1), 1);
	CHECK_EQ(loop_add(loop, p1[0], LOOP_READ, del_other_cb, (void *)0), 0);
	CHECK_EQ(loop_add(loop, p2[0], LOOP_READ, del_other_cb, (void *)1), 0);
	/* Both are readable in the first poll; stop after two iterations. */
	CHECK(loop_timer_add(loop, 10, stop_cb, NULL) != NULL);
	struct loop_timer *guard = arm_guard(loop);
	CHECK_EQ(loop_run(loop), 0);
	CHECK_EQ(del_calls[0] + del_calls[1], 1);
	loop_timer_cancel(loop, guard);
	loop_free(loop);
	close_pipe(p1);
	close_pipe(p2);
}

/* Delete and re-add the other fd inside a callback: the new watcher does
 * not get the stale event of this iteration, only the next poll's. */
static int readd_fds[2];

static void readd_new_cb(struct loop *loop, int fd, int events, void *arg)
{
	log_add('N');
	loop_del(loop, fd);
	loop_stop(loop);
}

static void readd_timer_cb(struct loop *loop, void *arg)
{
	log_add('T');
}

static void readd_old_cb(struct loop *loop, int fd, int events, void *arg)
{
	int me = fd == readd_fds[0] ? 0 : 1;
	log_add('O');
	loop_del(loop, fd);
	loop_del(loop, readd_fds[1 - me]);
	CHECK_EQ(loop_add(loop, readd_fds[1 - me], LOOP_READ, readd_new_cb, NULL), 0);
	/* A 0 ms timer fires at the end of this iteration. */
	CHECK(loop_timer_add(loop, 0, readd_timer_cb, NULL) != NULL);
}

TEST(test_fd_del_readd_pending)
{
	struct loop *loop = loop_new();
	int p1[2], p2[2];
	if (!loop || make_pipe(p1) != 0 || make_pipe(p2) != 0)
		return;
	log_reset();
	readd_fds[0] = p1[0];
	readd_fds[1] = p2[0];
	CHECK_EQ(write(p1[1], "a", 1), 1);
	CHECK_EQ(write(p2[1], "b", 1), 1);
	CHECK_EQ(loop_add(loop, p1[0], LOOP_READ, readd_old_cb, NULL), 0);
	CHECK_EQ(loop_add(loop, p2[0], LOOP_READ, readd_old_cb, NULL), 0);
	struct loop_timer *guard = arm_guard(loop);
	CHECK_EQ(loop_run(loop), 0);
	CHECK_STR(evlog, "OTN");
	CHECK(!guard_fired);
	loop_timer_cancel(loop, guard);
	loop_free(loop);
	close_pipe(p1);
	close_pipe(p2);
}

/* ---- signals ---- */

static int sig_count[2];
static int sig_bad_arg;

static void sig_cb(struct loop *loop, int signo, void *arg)
{
	if (signo == SIGUSR1) {
		sig_count[0]++;
		if (arg != &sig_count[0])
			sig_bad_arg = 1;
	} else if (signo == SIGUSR2) {
		sig_count[1]++;
		if (arg != &sig_count[1])
			sig_bad_arg = 1;
	}
	if (sig_count[0] >= 2 && sig_count[1] >= 1)
		loop_stop(loop);
}

TEST(test_signal)
{
	struct loop *loop = loop_new();
	if (!loop)
		return;
	sig_count[0] = sig_count[1] = 0;
	sig_bad_arg = 0;
	CHECK_EQ(loop_signal(loop, SIGUSR1, sig_cb, &sig_count[0]), 0);
	CHECK_EQ(loop_signal(loop, SIGUSR2, sig_cb, &sig_count[1]), 0);
	CHECK_EQ(raise(SIGUSR1), 0);
	CHECK_EQ(raise(SIGUSR2), 0);
	CHECK_EQ(raise(SIGUSR1), 0);
	struct loop_timer *guard = arm_guard(loop);
	CHECK_EQ(loop_run(loop), 0);
	CHECK_EQ(sig_count[0], 2);
	CHECK_EQ(sig_count[1], 1);
	CHECK(!sig_bad_arg);
	CHECK(!guard_fired);
	loop_timer_cancel(loop, guard);
	loop_free(loop);
	signal(SIGUSR1, SIG_DFL);
	signal(SIGUSR2, SIG_DFL);
}

/* ---- stop and clocks ---- */

static void stop_defer_fn(void *arg)
{
	loop_stop(arg);
}

static void stop_via_defer_cb(struct loop *loop, void *arg)
{
	CHECK_EQ(loop_defer(loop, stop_defer_fn, loop), 0);
}

TEST(test_stop)
{
	struct loop *loop = loop_new();
	if (!loop)
		return;
	struct loop_timer *guard = arm_guard(loop);
	CHECK(loop_timer_add(loop, 1, stop_cb, NULL) != NULL);
	CHECK_EQ(loop_run(loop), 0);
	CHECK(!guard_fired);
	/* loop_run can be entered again after a stop. */
	CHECK(loop_timer_add(loop, 1, stop_via_defer_cb, NULL) != NULL);
	CHECK_EQ(loop_run(loop), 0);
	CHECK(!guard_fired);
	/* loop_stop before loop_run does not prevent the next run. */
	loop_stop(loop);
	log_reset();
	struct tstamp t = { loop, 'x', 1, 0, 0, 1 };
	CHECK(loop_timer_add(loop, t.ms, tstamp_cb, &t) != NULL);
	CHECK_EQ(loop_run(loop), 0);
	CHECK_STR(evlog, "x");
	loop_timer_cancel(loop, guard);
	/* Pending timers are released by loop_free (ASan checks). */
	CHECK(loop_timer_add(loop, 100000, stop_cb, NULL) != NULL);
	loop_free(loop);
}

TEST(test_clocks)
{
	struct loop *loop = loop_new();
	if (!loop)
		return;
	uint64_t a = loop_mono_us();
	uint64_t b = loop_mono_us();
	CHECK(b >= a);
	CHECK(loop_wall_ms() > 1600000000000LL); /* after 2020 */
	uint64_t now = loop_now(loop);
	CHECK(now <= loop_mono_us() / 1000u);
	CHECK(now + 1000 >= loop_mono_us() / 1000u);
	loop_free(loop);
}

int main(void)
{
	alarm(10); /* a hung loop fails the run instead of blocking it */
	RUN(test_timer_order);
	RUN(test_timer_heap);
	RUN(test_timer_cancel);
	RUN(test_timer_cancel_from_callback);
	RUN(test_timer_zero_rearm_no_starvation);
	RUN(test_defer_order);
	RUN(test_defer_between_io_callbacks);
	RUN(test_defer_many);
	RUN(test_fd_read);
	RUN(test_fd_high_number);
	RUN(test_fd_add_errors);
	RUN(test_fd_write_and_set_events);
	RUN(test_fd_hangup);
	RUN(test_fd_del_pending);
	RUN(test_fd_del_readd_pending);
	RUN(test_signal);
	RUN(test_stop);
	RUN(test_clocks);
	return test_done();
}
