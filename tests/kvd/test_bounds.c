/*
 * test_bounds.c - a cluster's history bounds as the leader judges them
 * (kvd/src/repl/bounds.c): the age bound compacts to the newest revision
 * sampled at least the age ago, the byte bound to a share of the
 * revisions since the last compaction, neither ever at or below the
 * compaction revision nor above the latest one; a clock that steps back
 * forgets the samples.
 */
#include <criterion/criterion.h>

#include "repl/bounds.h"

#define T0 1700000000000ull

Test(bounds, none_asks_for_nothing)
{
    kvd_bounds b;
    kvd_bounds_init(&b, 0, 0);
    cr_assert(!kvd_bounds_any(&b));
    cr_assert_eq(kvd_bounds_target(&b, T0, 100, 0, 1u << 30), 0);
}

Test(bounds, the_age_bound_follows_the_samples)
{
    kvd_bounds b;
    kvd_bounds_init(&b, 0, 10); /* 10 s */
    cr_assert(kvd_bounds_any(&b));
    /* revision 10 * s at second s */
    for (uint64_t s = 0; s < 10; s++)
        cr_assert_eq(kvd_bounds_target(&b, T0 + s * 1000, 10 * s + 1, 0, 0), 0,
                     "nothing is 10 s old yet (second %llu)", (unsigned long long)s);
    cr_assert_eq(kvd_bounds_target(&b, T0 + 10000, 101, 0, 0), 1, "the sample of second 0");
    cr_assert_eq(kvd_bounds_target(&b, T0 + 15500, 151, 1, 0), 51, "second 5: 10.5 s old");
    cr_assert_eq(kvd_bounds_target(&b, T0 + 15600, 151, 51, 0), 0, "already compacted there");
    /* no new revisions: in time the target reaches the latest */
    for (uint64_t s = 16; s < 40; s++)
        kvd_bounds_target(&b, T0 + s * 1000, 151, 51, 0);
    cr_assert_eq(kvd_bounds_target(&b, T0 + 40000, 151, 51, 0), 151);
    cr_assert_eq(kvd_bounds_target(&b, T0 + 41000, 151, 151, 0), 0);
}

Test(bounds, samples_are_spaced_for_a_long_age)
{
    kvd_bounds b;
    kvd_bounds_init(&b, 0, 3600); /* an hour: a sample every ~14 s */
    cr_assert_gt(b.every_ms, 1000);
    for (uint64_t s = 0; s < 7200; s++)
        kvd_bounds_target(&b, T0 + s * 1000, s + 1, 0, 0);
    cr_assert_leq(b.n, KVD_BOUNDS_SAMPLES);
    uint64_t t = kvd_bounds_target(&b, T0 + 7200000, 7201, 0, 0);
    cr_assert(t > 0 && t <= 3601, "at most an hour old: %llu", (unsigned long long)t);
    cr_assert_geq(t + b.every_ms / 1000 + 1, 3601, "and not much older: %llu",
                  (unsigned long long)t);
}

Test(bounds, a_clock_stepping_back_forgets_the_samples)
{
    kvd_bounds b;
    kvd_bounds_init(&b, 0, 5);
    for (uint64_t s = 0; s < 5; s++)
        kvd_bounds_target(&b, T0 + s * 1000, s + 1, 0, 0);
    cr_assert_eq(kvd_bounds_target(&b, T0 - 60000, 6, 0, 0), 0);
    cr_assert_eq(b.n, 1);
}

Test(bounds, the_byte_bound_compacts_a_share)
{
    kvd_bounds b;
    kvd_bounds_init(&b, 1000, 0);
    cr_assert_eq(kvd_bounds_target(&b, T0, 100, 0, 1000), 0, "at the bound: nothing");
    /* twice the bound: down to 3/4 of the bound, so about 1 - 3/8 of the
     * revisions since 0 */
    uint64_t t = kvd_bounds_target(&b, T0, 100, 0, 2000);
    cr_assert(t >= 62 && t <= 64, "%llu", (unsigned long long)t);
    cr_assert_eq(kvd_bounds_target(&b, T0, 100, 40, 2000), 40 + 38, "from the last compaction");
    cr_assert_eq(kvd_bounds_target(&b, T0, 100, 100, 5000), 0, "nothing above the latest");
    cr_assert_eq(kvd_bounds_target(&b, T0, 100, 99, 1u << 30), 100, "at most the latest");
}

Test(bounds, the_further_bound_wins)
{
    kvd_bounds b;
    kvd_bounds_init(&b, 1000, 1);
    kvd_bounds_target(&b, T0, 50, 0, 0);
    cr_assert_eq(kvd_bounds_target(&b, T0 + 1000, 100, 0, 0), 50, "age");
    cr_assert_eq(kvd_bounds_target(&b, T0 + 2000, 200, 0, 100000), 199, "bytes (age: 100)");
}
