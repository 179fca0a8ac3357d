/*
 * stats.h - kvd's own counters and latency histograms.
 *
 * Each worker loop owns one kvd_stats and is its only writer; METRICS
 * (on any loop) sums all of them. Fields are relaxed atomics: the writer
 * does a plain load + store (no read-modify-write, no lock, no fence), a
 * reader may see a value a few requests old, never a torn one.
 *
 * Latency histogram: log-linear buckets, 4 per power of two of
 * nanoseconds (HdrHistogram-style, <= 19% relative error), 0 ns .. ~18 min.
 */
#ifndef KVD_STATS_H
#define KVD_STATS_H

#include <stdatomic.h>
#include <stddef.h>
#include <stdint.h>

#include "cmd.h"

#define KVD_HIST_SUB 4                      /* buckets per power of two */
#define KVD_HIST_BUCKETS (41 * KVD_HIST_SUB) /* up to 2^41 ns            */

typedef struct kvd_stats {
    _Atomic uint64_t requests[KVD_CMD_COUNT];
    _Atomic uint64_t errors;          /* responses with a failure status */
    _Atomic uint64_t op_errors[KVD_CMD_COUNT]; /* the same, by op when
                                         the op was readable            */
    _Atomic uint64_t protocol_errors; /* malformed frames                */
    _Atomic uint64_t bytes_in;
    _Atomic uint64_t bytes_out;
    _Atomic uint64_t write_batches;    /* writes: one per response batch  */
    _Atomic uint64_t disconnects_slow; /* output limit / write timeout   */
    _Atomic uint64_t disconnects_idle;
    _Atomic uint64_t disconnects_frame_timeout; /* frame begun, not finished */
    _Atomic uint64_t disconnects_client_memory; /* over --max-client-memory */
    _Atomic uint64_t auth_failures;    /* wrong AUTH secrets              */
    _Atomic uint64_t auth_throttled;   /* AUTHs delayed by the backoff    */
    _Atomic uint64_t hist[KVD_CMD_COUNT][KVD_HIST_BUCKETS];
    _Atomic uint64_t hist_sum_ns[KVD_CMD_COUNT]; /* the samples' exact sum */
} kvd_stats;

/* Single-writer increment (only the owning loop calls these). */
static inline void kvd_stat_add(_Atomic uint64_t *c, uint64_t n)
{
    atomic_store_explicit(c, atomic_load_explicit(c, memory_order_relaxed) + n,
                          memory_order_relaxed);
}

static inline uint64_t kvd_stat_get(_Atomic uint64_t *c)
{
    return atomic_load_explicit(c, memory_order_relaxed);
}

/* Requests timed together: a connection's batch (the requests answered
 * from one read) is timed with two clock reads, not one per request, and
 * each request of it is recorded with the batch's mean (cmd.c). With one
 * request per read, as most clients send, that is its own time. */
#define KVD_BATCH_TIMED 64

/* Records one request of op (a kvd_cmd_kind) that took ns nanoseconds. */
void kvd_stats_record(kvd_stats *s, int op, uint64_t ns);

/* A merged histogram for one op, and its percentiles. */
typedef struct kvd_hist {
    uint64_t count;
    uint64_t sum_ns; /* of all samples */
    uint64_t buckets[KVD_HIST_BUCKETS];
} kvd_hist;

/* The upper edge of bucket b in nanoseconds: its samples are below it
 * (UINT64_MAX for the last bucket, which takes everything above). */
uint64_t kvd_hist_bucket_limit(unsigned b);

/* Adds stats s's histogram of op into h. */
void kvd_hist_merge(kvd_hist *h, kvd_stats *s, int op);

/* The q-quantile (0 < q <= 1) of h in microseconds; 0 if empty. */
double kvd_hist_quantile_us(const kvd_hist *h, double q);

#endif /* KVD_STATS_H */
