/*
 * sched.h - one connection's send schedule in open-loop mode (--rate).
 *
 * The run's rate is split evenly over its connections: every connection
 * sends one request every `interval_ns` (connections / rate seconds),
 * and the connections of a worker are staggered so that the worker's
 * requests come at even steps. Due times are computed from the slot
 * number (first + k * interval), not by adding intervals, so rounding
 * never accumulates over a long run.
 *
 * A request's latency is measured from its due time, not from when it
 * was actually written: a connection that cannot send (its pipeline is
 * full because the server is slow) does not stop the clock, so a stall
 * shows in the percentiles instead of being hidden (coordinated
 * omission; see Gil Tene's talk "How NOT to Measure Latency" and wrk2).
 */
#ifndef KVBENCH_SCHED_H
#define KVBENCH_SCHED_H

#include <stdint.h>

typedef struct kvb_sched {
    uint64_t first_ns;   /* due time of slot 0 (uv_hrtime clock)        */
    double interval_ns;  /* between two slots                           */
    uint64_t slot;       /* the next slot to send                       */
    uint64_t due_ns;     /* its due time                                */
    uint64_t blocked_ns; /* slots due at or before this found the
                            pipeline full: they are sent late           */
} kvb_sched;

/* Starts a schedule whose slot 0 is due at first_ns. */
void kvb_sched_init(kvb_sched *s, uint64_t first_ns, double interval_ns);
/* Moves to the next slot (the current one was sent). */
void kvb_sched_advance(kvb_sched *s);
/* How many slots not yet sent are due at or before now_ns. */
uint64_t kvb_sched_due(const kvb_sched *s, uint64_t now_ns);

#endif /* KVBENCH_SCHED_H */
