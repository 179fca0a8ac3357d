/*
 * hist.h - kvbench's latency histogram: log-linear buckets, HDR style.
 *
 * Values (nanoseconds) below 256 get a bucket each; above, every power of
 * two is split into 128 equal sub-buckets, so a bucket is at most 1/128
 * (0.8 %) of its value wide. 7424 buckets cover the whole uint64 range,
 * so recording never fails and never allocates. One histogram per worker
 * thread; the main thread merges them after the workers have stopped.
 */
#ifndef KVBENCH_HIST_H
#define KVBENCH_HIST_H

#include <stdint.h>

#define KVB_HIST_SUB_BITS 7
#define KVB_HIST_SUB (1u << KVB_HIST_SUB_BITS)           /* 128 */
#define KVB_HIST_BUCKETS (2 * KVB_HIST_SUB + (64 - KVB_HIST_SUB_BITS - 1) * KVB_HIST_SUB)

typedef struct kvb_hist {
    uint64_t count;
    uint64_t sum; /* for the mean; wraps only after ~584 years of ns */
    uint64_t min;
    uint64_t max;
    uint64_t buckets[KVB_HIST_BUCKETS];
} kvb_hist;

/* An empty histogram. */
void kvb_hist_init(kvb_hist *h);
/* Records one value. */
void kvb_hist_record(kvb_hist *h, uint64_t v);
/* Adds every value of src to dst. */
void kvb_hist_merge(kvb_hist *dst, const kvb_hist *src);
/* The value at percentile p (0..100): the highest value of the bucket
 * holding it (the exact max for p = 100), 0 when empty. */
uint64_t kvb_hist_percentile(const kvb_hist *h, double p);

#endif /* KVBENCH_HIST_H */
