/*
 * test_stats.c - kvd's latency histograms (kvd/src/stats.c): bucket
 * accuracy, quantile ranks, merging, and inputs at the edges.
 */
#include <criterion/criterion.h>
#include <math.h>
#include <stdint.h>
#include <stdlib.h>

#include "stats.h"

static kvd_stats *new_stats(void)
{
    kvd_stats *s = calloc(1, sizeof *s);
    cr_assert_not_null(s);
    return s;
}

static kvd_hist merged(kvd_stats *s, int op)
{
    kvd_hist h = {0};
    kvd_hist_merge(&h, s, op);
    return h;
}

Test(stats, empty_histogram_reports_zero)
{
    kvd_stats *s = new_stats();
    kvd_hist h = merged(s, KV_PROTO_GET);
    cr_assert_eq(h.count, 0);
    cr_assert_eq(kvd_hist_quantile_us(&h, 0.5), 0.0);
    cr_assert_eq(kvd_hist_quantile_us(&h, 1.0), 0.0);
    free(s);
}

/* One sample of v: every quantile is v's bucket midpoint, within an eighth
 * of v (4 buckets per power of two) from 4 ns up. */
Test(stats, one_sample_is_reported_within_an_eighth)
{
    for (uint64_t v = 4; v < (uint64_t)1 << 40; v = v * 3 / 2 + 1) {
        kvd_stats *s = new_stats();
        kvd_stats_record(s, KV_PROTO_SET, v);
        kvd_hist h = merged(s, KV_PROTO_SET);
        cr_assert_eq(h.count, 1);
        double us = kvd_hist_quantile_us(&h, 0.99);
        double err = fabs(us * 1000.0 - (double)v) / (double)v;
        cr_assert_leq(err, 0.125 + 1e-9, "v=%llu ns reported as %f us", (unsigned long long)v, us);
        free(s);
    }
}

Test(stats, quantiles_pick_the_right_rank)
{
    kvd_stats *s = new_stats();
    for (int i = 0; i < 990; i++)
        kvd_stats_record(s, KV_PROTO_GET, 1000); /* 1 us */
    for (int i = 0; i < 10; i++)
        kvd_stats_record(s, KV_PROTO_GET, 1000000); /* 1 ms */
    kvd_hist h = merged(s, KV_PROTO_GET);
    cr_assert_eq(h.count, 1000);
    double p50 = kvd_hist_quantile_us(&h, 0.5);
    double p99 = kvd_hist_quantile_us(&h, 0.99);
    double p999 = kvd_hist_quantile_us(&h, 0.999);
    cr_assert(p50 > 0.875 && p50 < 1.125, "p50 %f", p50);
    cr_assert(p99 > 0.875 && p99 < 1.125, "p99 %f: rank 990 is still 1 us", p99);
    cr_assert(p999 > 875 && p999 < 1125, "p99.9 %f: rank 999 is 1 ms", p999);
    cr_assert_eq(kvd_hist_quantile_us(&h, 1.0), p999);
    free(s);
}

Test(stats, merge_adds_loops_and_keeps_ops_apart)
{
    kvd_stats *a = new_stats(), *b = new_stats();
    for (int i = 0; i < 30; i++)
        kvd_stats_record(a, KV_PROTO_GET, 5000);
    for (int i = 0; i < 70; i++)
        kvd_stats_record(b, KV_PROTO_GET, 50000);
    kvd_stats_record(b, KV_PROTO_SET, 7);
    kvd_hist h = {0};
    kvd_hist_merge(&h, a, KV_PROTO_GET);
    kvd_hist_merge(&h, b, KV_PROTO_GET);
    cr_assert_eq(h.count, 100);
    double p25 = kvd_hist_quantile_us(&h, 0.25), p50 = kvd_hist_quantile_us(&h, 0.5);
    cr_assert(p25 > 4.3 && p25 < 5.7, "p25 %f from loop a", p25);
    cr_assert(p50 > 43 && p50 < 57, "p50 %f from loop b", p50);
    cr_assert_eq(merged(b, KV_PROTO_SET).count, 1);
    cr_assert_eq(merged(a, KV_PROTO_SET).count, 0);
    free(a);
    free(b);
}

Test(stats, extreme_inputs_are_safe)
{
    kvd_stats *s = new_stats();
    kvd_stats_record(s, KV_PROTO_GET, 0);
    kvd_stats_record(s, KV_PROTO_GET, UINT64_MAX); /* lands in the last bucket */
    kvd_stats_record(s, -1, 10);                    /* ignored */
    kvd_stats_record(s, KVD_CMD_COUNT, 10);     /* ignored */
    kvd_hist h = merged(s, KV_PROTO_GET);
    cr_assert_eq(h.count, 2);
    cr_assert_lt(kvd_hist_quantile_us(&h, 0.5), 0.001);
    cr_assert_gt(kvd_hist_quantile_us(&h, 1.0), 1e9, "the top bucket is ~2^41 ns");
    uint64_t total = 0;
    for (int op = 0; op < KVD_CMD_COUNT; op++)
        total += merged(s, op).count;
    cr_assert_eq(total, 2, "out-of-range ops recorded nothing");
    free(s);
}

/* Bucket edges (for Prometheus's cumulative buckets): each sample lies
 * below its bucket's limit and at or above the one before; every power
 * of two from 4 ns is an edge; the sum of the samples is exact. */
Test(stats, bucket_limits_and_sum)
{
    kvd_stats *s = new_stats();
    uint64_t sum = 0;
    for (uint64_t v = 0; v < (uint64_t)1 << 36; v = v * 5 / 4 + 1) {
        kvd_stats *one = new_stats();
        kvd_stats_record(one, KV_PROTO_GET, v);
        kvd_hist h = merged(one, KV_PROTO_GET);
        unsigned b = 0;
        while (h.buckets[b] == 0)
            b++;
        cr_assert_lt(v, kvd_hist_bucket_limit(b), "v=%llu", (unsigned long long)v);
        if (b > 0)
            cr_assert_geq(v, kvd_hist_bucket_limit(b - 1), "v=%llu", (unsigned long long)v);
        free(one);
        kvd_stats_record(s, KV_PROTO_GET, v);
        sum += v;
    }
    for (int e = 2; e < 40; e++) {
        int edge = 0;
        for (unsigned b = 0; b < KVD_HIST_BUCKETS; b++)
            edge |= kvd_hist_bucket_limit(b) == (uint64_t)1 << e;
        cr_assert(edge, "2^%d is a bucket edge", e);
    }
    cr_assert_eq(kvd_hist_bucket_limit(KVD_HIST_BUCKETS - 1), UINT64_MAX);
    cr_assert_eq(merged(s, KV_PROTO_GET).sum_ns, sum);
    free(s);
}
