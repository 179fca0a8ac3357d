/*
 * bounds.h - a cluster's history byte and age bounds (--history-bytes,
 * --history-age), judged by the leader.
 *
 * On a single server libkv's own thread applies these bounds, by the
 * machine's clock and the store's byte count. On a cluster node that
 * would drop different history on every node (their clocks and memory
 * differ), so kvd opens the node's store without them and the leader
 * judges them on its own store instead: kvd_bounds_target gives the
 * revision to compact to, which the leader proposes as one COMPACT entry
 * that every node applies at the same point of the log (node.c).
 *
 * The age bound needs to know when each revision was made: every node
 * samples (clock, revision) as it goes, a new leader's ring is filled
 * already. Plain data, one thread (the Raft thread).
 */
#ifndef KVD_REPL_BOUNDS_H
#define KVD_REPL_BOUNDS_H

#include <stddef.h>
#include <stdint.h>

#define KVD_BOUNDS_SAMPLES 512u
#define KVD_BOUNDS_TICK_MS 1000u /* how often node.c asks */

typedef struct kvd_bounds {
    uint64_t max_bytes; /* 0: no byte bound */
    uint64_t max_age_ms; /* 0: no age bound */
    uint64_t every_ms;  /* between samples: a ring covers twice the age */
    struct {
        uint64_t ms, rev;
    } samples[KVD_BOUNDS_SAMPLES];
    size_t head, n;
} kvd_bounds;

/* Sets b up for the bounds (0: none). */
void kvd_bounds_init(kvd_bounds *b, uint64_t max_bytes, uint32_t max_age_s);

/* Whether b has a bound at all. */
int kvd_bounds_any(const kvd_bounds *b);

/* Records that the store was at revision latest at clock now_ms (ms since
 * the epoch; a clock that steps back restarts the ring), and returns the
 * revision the bounds ask to compact to: above compacted and at most
 * latest, or 0 for none. The age bound asks for the newest revision
 * sampled at least max_age ago (history only values replaced before it
 * need); the byte bound, with hist_bytes over it, for the share of the
 * revisions since compacted that brings the bytes to about 3/4 of it
 * (history is taken to be spread evenly over them: the next call goes on
 * if it was not enough). */
uint64_t kvd_bounds_target(kvd_bounds *b, uint64_t now_ms, uint64_t latest, uint64_t compacted,
                           uint64_t hist_bytes);

#endif /* KVD_REPL_BOUNDS_H */
