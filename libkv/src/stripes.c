/*
 * stripes.c - lock stripes (see stripes.h).
 */
#include "stripes.h"

#include <stdlib.h>

kv__stripe *kv__stripes_new(void)
{
    kv__stripe *s = aligned_alloc(64, KV__NSTRIPES * sizeof *s);
    if (!s)
        return NULL;
    for (unsigned i = 0; i < KV__NSTRIPES; i++) {
        pthread_mutex_init(&s[i].lock, NULL);
        atomic_init(&s[i].seq, 0);
        atomic_init(&s[i].clock, 0);
    }
    return s;
}

void kv__stripes_free(kv__stripe *stripes)
{
    if (!stripes)
        return;
    for (unsigned i = 0; i < KV__NSTRIPES; i++)
        pthread_mutex_destroy(&stripes[i].lock);
    free(stripes);
}

void kv__stripes_lock(kv__stripe *stripes, const unsigned *ids, size_t n)
{
    for (size_t i = 0; i < n; i++)
        pthread_mutex_lock(&stripes[ids[i]].lock);
}

void kv__stripes_unlock(kv__stripe *stripes, const unsigned *ids, size_t n)
{
    for (size_t i = n; i-- > 0;)
        pthread_mutex_unlock(&stripes[ids[i]].lock);
}

void kv__stripes_barrier(kv__stripe *stripes)
{
    for (unsigned i = 0; i < KV__NSTRIPES; i++) {
        pthread_mutex_lock(&stripes[i].lock);
        pthread_mutex_unlock(&stripes[i].lock);
    }
}

uint64_t kv__stripes_clock_max(kv__stripe *stripes)
{
    uint64_t max = 0;
    for (unsigned i = 0; i < KV__NSTRIPES; i++) {
        uint64_t c = kv__stripe_clock(stripes, i);
        if (c > max)
            max = c;
    }
    return max;
}
