/*
 * pacer.h - wakes a kvbench worker's loop when the next request of its
 * send schedule (--rate, sched.h) falls due.
 *
 * Why not a uv_timer: libuv timers count whole milliseconds, so a
 * request due between two ticks would wait up to 1 ms for the loop, and
 * since --rate measures latency from the due time, that wait would be
 * added to every latency (about 0.5 ms at the median, more than a
 * loopback request takes). On Linux the pacer is a timerfd on
 * CLOCK_MONOTONIC (the clock of uv_hrtime), armed at an absolute time
 * and watched by a uv_poll handle: the loop wakes within microseconds.
 * Elsewhere it falls back to a uv_timer rounded up to the millisecond
 * (the send lag kvbench reports then shows the cost).
 *
 * Threads: everything on the loop's thread.
 */
#ifndef KVBENCH_PACER_H
#define KVBENCH_PACER_H

#include <stdint.h>
#include <uv.h>

#if defined(__linux__) && !defined(KVB_PACER_NO_TIMERFD)
#define KVB_PACER_TIMERFD 1
#endif

typedef struct kvb_pacer kvb_pacer;
/* Called on the loop's thread once an armed time has come. Calls to
 * kvb_pacer_arm from inside it are gathered: the pacer arms the earliest
 * of them once the callback returns (one system call, not one per
 * connection). */
typedef void (*kvb_pacer_cb)(kvb_pacer *p);

struct kvb_pacer {
    kvb_pacer_cb cb;
    void *data;        /* for the callback                            */
    uint64_t armed_ns; /* the wake-up armed, 0 = none                 */
    uint64_t want_ns;  /* inside the callback: earliest asked for     */
    int in_cb;
    int closed;
#ifdef KVB_PACER_TIMERFD
    int fd;
    uv_poll_t poll;
#else
    uv_timer_t timer;
#endif
};

/* Initialises p on loop, not armed. Returns 0 or a libuv error; after
 * an error p needs no kvb_pacer_close, but may have a close pending:
 * run the loop before freeing p. */
int kvb_pacer_init(kvb_pacer *p, uv_loop_t *loop, kvb_pacer_cb cb, void *data);
/* Makes sure the callback runs at or soon after due_ns (uv_hrtime
 * clock; a time already past means at once): arms the pacer unless it
 * is already armed for an earlier time. */
void kvb_pacer_arm(kvb_pacer *p, uint64_t due_ns);
/* Disarms; a later kvb_pacer_arm arms again. */
void kvb_pacer_stop(kvb_pacer *p);
/* Closes p's handle (and descriptor) on the loop; arming it afterwards
 * does nothing. p must stay valid until the loop has run the close. */
void kvb_pacer_close(kvb_pacer *p);

#endif /* KVBENCH_PACER_H */
