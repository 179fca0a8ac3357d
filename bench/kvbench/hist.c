/*
 * hist.c - log-linear latency histogram (see hist.h).
 *
 * Bucket layout: index v for v < 2*SUB; above, with m the index of v's
 * highest set bit (m >= SUB_BITS + 1) and shift = m - SUB_BITS, the top
 * SUB_BITS + 1 bits of v (SUB..2*SUB-1) pick one of SUB sub-buckets of
 * the power of two 2^m. This is HdrHistogram's scheme with 2 significant
 * decimal digits, without its configurable range.
 */
#include "hist.h"

#include <string.h>

static unsigned bucket_of(uint64_t v)
{
    if (v < 2 * KVB_HIST_SUB)
        return (unsigned)v;
    unsigned m = 63u - (unsigned)__builtin_clzll(v);
    unsigned shift = m - KVB_HIST_SUB_BITS;
    return 2 * KVB_HIST_SUB + (shift - 1) * KVB_HIST_SUB +
           (unsigned)((v >> shift) - KVB_HIST_SUB);
}

/* The highest value that lands in bucket i. */
static uint64_t bucket_top(unsigned i)
{
    if (i < 2 * KVB_HIST_SUB)
        return i;
    unsigned shift = (i - 2 * KVB_HIST_SUB) / KVB_HIST_SUB + 1;
    uint64_t sub = (i - 2 * KVB_HIST_SUB) % KVB_HIST_SUB + KVB_HIST_SUB;
    return ((sub + 1) << shift) - 1;
}

void kvb_hist_init(kvb_hist *h)
{
    memset(h, 0, sizeof *h);
    h->min = UINT64_MAX;
}

void kvb_hist_record(kvb_hist *h, uint64_t v)
{
    h->buckets[bucket_of(v)]++;
    h->count++;
    h->sum += v;
    if (v < h->min)
        h->min = v;
    if (v > h->max)
        h->max = v;
}

void kvb_hist_merge(kvb_hist *dst, const kvb_hist *src)
{
    for (unsigned i = 0; i < KVB_HIST_BUCKETS; i++)
        dst->buckets[i] += src->buckets[i];
    dst->count += src->count;
    dst->sum += src->sum;
    if (src->min < dst->min)
        dst->min = src->min;
    if (src->max > dst->max)
        dst->max = src->max;
}

uint64_t kvb_hist_percentile(const kvb_hist *h, double p)
{
    if (h->count == 0)
        return 0;
    if (p >= 100.0)
        return h->max;
    /* The rank of the value wanted, 1-based, rounded up. */
    double r = p / 100.0 * (double)h->count;
    uint64_t rank = (uint64_t)r;
    if ((double)rank < r || rank == 0)
        rank++;
    uint64_t seen = 0;
    for (unsigned i = 0; i < KVB_HIST_BUCKETS; i++) {
        seen += h->buckets[i];
        if (seen >= rank) {
            uint64_t top = bucket_top(i);
            return top < h->max ? top : h->max;
        }
    }
    return h->max;
}
