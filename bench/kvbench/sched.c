/*
 * sched.c - a connection's open-loop send schedule (see sched.h).
 */
#include "sched.h"

static uint64_t due_of(const kvb_sched *s, uint64_t slot)
{
    return s->first_ns + (uint64_t)((double)slot * s->interval_ns);
}

void kvb_sched_init(kvb_sched *s, uint64_t first_ns, double interval_ns)
{
    s->first_ns = first_ns;
    s->interval_ns = interval_ns;
    s->slot = 0;
    s->due_ns = first_ns;
    s->blocked_ns = 0;
}

void kvb_sched_advance(kvb_sched *s)
{
    s->slot++;
    s->due_ns = due_of(s, s->slot);
}

uint64_t kvb_sched_due(const kvb_sched *s, uint64_t now_ns)
{
    if (now_ns < s->due_ns)
        return 0;
    /* The last slot due: estimated by a division, then corrected by
     * at most a step or two (the products are rounded doubles). */
    uint64_t last = (uint64_t)((double)(now_ns - s->first_ns) / s->interval_ns);
    while (last > s->slot && due_of(s, last) > now_ns)
        last--;
    while (last < s->slot || due_of(s, last + 1) <= now_ns)
        last++;
    return last - s->slot + 1;
}
