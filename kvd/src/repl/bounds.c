/*
 * bounds.c - the target revision of a cluster's history bounds (bounds.h).
 *
 * The samples form a ring, oldest overwritten, taken at most every
 * every_ms, so that the ring spans twice the age bound: the newest sample
 * at least max_age old is found within it (its revision is then at most
 * every_ms younger than the exact cut, so history is kept a little longer
 * than the bound, never shorter).
 */
#include "bounds.h"

#include <string.h>

void kvd_bounds_init(kvd_bounds *b, uint64_t max_bytes, uint32_t max_age_s)
{
    memset(b, 0, sizeof *b);
    b->max_bytes = max_bytes;
    b->max_age_ms = (uint64_t)max_age_s * 1000u;
    b->every_ms = KVD_BOUNDS_TICK_MS;
    if (b->max_age_ms / (KVD_BOUNDS_SAMPLES / 2) > b->every_ms)
        b->every_ms = b->max_age_ms / (KVD_BOUNDS_SAMPLES / 2);
}

int kvd_bounds_any(const kvd_bounds *b)
{
    return b->max_bytes != 0 || b->max_age_ms != 0;
}

/* The i-th newest sample. */
#define NEWEST(b, i) ((b)->samples[((b)->head + KVD_BOUNDS_SAMPLES - 1 - (i)) % KVD_BOUNDS_SAMPLES])

static void sample(kvd_bounds *b, uint64_t now_ms, uint64_t latest)
{
    if (b->n && now_ms < NEWEST(b, 0).ms)
        b->n = 0; /* the clock stepped back: ages from before mean nothing */
    if (b->n && now_ms - NEWEST(b, 0).ms < b->every_ms)
        return;
    b->samples[b->head].ms = now_ms;
    b->samples[b->head].rev = latest;
    b->head = (b->head + 1) % KVD_BOUNDS_SAMPLES;
    if (b->n < KVD_BOUNDS_SAMPLES)
        b->n++;
}

uint64_t kvd_bounds_target(kvd_bounds *b, uint64_t now_ms, uint64_t latest, uint64_t compacted,
                           uint64_t hist_bytes)
{
    uint64_t target = 0;
    if (b->max_age_ms) {
        sample(b, now_ms, latest);
        for (size_t i = 0; i < b->n && now_ms >= b->max_age_ms; i++)
            if (NEWEST(b, i).ms <= now_ms - b->max_age_ms) {
                target = NEWEST(b, i).rev;
                break;
            }
    }
    if (b->max_bytes && hist_bytes > b->max_bytes && latest > compacted) {
        uint64_t excess = hist_bytes - b->max_bytes / 4 * 3; /* to 3/4, as libkv */
        uint64_t step =
            (uint64_t)((double)(latest - compacted) * ((double)excess / (double)hist_bytes)) + 1;
        uint64_t by_bytes = step > latest - compacted ? latest : compacted + step;
        if (by_bytes > target)
            target = by_bytes;
    }
    if (target > latest)
        target = latest;
    return target > compacted ? target : 0;
}
