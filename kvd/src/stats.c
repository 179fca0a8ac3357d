/*
 * stats.c - latency histogram buckets and percentiles (see stats.h).
 *
 * Bucket of v: for v < 4 the value itself; otherwise with e = floor(log2 v)
 * the index is (e - 1) * 4 + the two bits below the leading one. The value
 * reported for a bucket is its midpoint.
 */
#include "stats.h"

static unsigned bucket_of(uint64_t v)
{
    if (v < KVD_HIST_SUB)
        return (unsigned)v;
    unsigned e = 63u - (unsigned)__builtin_clzll(v); /* >= 2 */
    unsigned sub = (unsigned)(v >> (e - 2)) & (KVD_HIST_SUB - 1);
    unsigned b = (e - 1) * KVD_HIST_SUB + sub;
    return b < KVD_HIST_BUCKETS ? b : KVD_HIST_BUCKETS - 1;
}

/* Lowest value of bucket b and its width. */
static void bucket_range(unsigned b, double *lo, double *width)
{
    if (b < KVD_HIST_SUB) {
        *lo = b;
        *width = 1;
        return;
    }
    unsigned e = b / KVD_HIST_SUB + 1, sub = b % KVD_HIST_SUB;
    double base = (double)((uint64_t)1 << e);
    *width = base / KVD_HIST_SUB;
    *lo = base + sub * *width;
}

void kvd_stats_record(kvd_stats *s, int op, uint64_t ns)
{
    if (op < 0 || op >= KVD_CMD_COUNT)
        return;
    kvd_stat_add(&s->hist[op][bucket_of(ns)], 1);
    kvd_stat_add(&s->hist_sum_ns[op], ns);
}

uint64_t kvd_hist_bucket_limit(unsigned b)
{
    if (b + 1 >= KVD_HIST_BUCKETS)
        return UINT64_MAX;
    double lo, width;
    bucket_range(b, &lo, &width);
    return (uint64_t)(lo + width);
}

void kvd_hist_merge(kvd_hist *h, kvd_stats *s, int op)
{
    for (unsigned b = 0; b < KVD_HIST_BUCKETS; b++) {
        uint64_t n = kvd_stat_get(&s->hist[op][b]);
        h->buckets[b] += n;
        h->count += n;
    }
    h->sum_ns += kvd_stat_get(&s->hist_sum_ns[op]);
}

double kvd_hist_quantile_us(const kvd_hist *h, double q)
{
    if (h->count == 0)
        return 0.0;
    uint64_t rank = (uint64_t)(q * (double)h->count + 0.5);
    if (rank < 1)
        rank = 1;
    if (rank > h->count)
        rank = h->count;
    uint64_t seen = 0;
    for (unsigned b = 0; b < KVD_HIST_BUCKETS; b++) {
        seen += h->buckets[b];
        if (seen >= rank) {
            double lo, width;
            bucket_range(b, &lo, &width);
            return (lo + width / 2) / 1000.0;
        }
    }
    return 0.0;
}
