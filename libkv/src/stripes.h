/*
 * stripes.h - the writers' lock stripes and their change counters.
 *
 * A writer locks the stripe of every key it changes, in ascending stripe
 * order (so writers never deadlock), and only those: writers of different
 * keys almost never meet on a lock. Readers never lock.
 *
 * Each stripe also counts its changes (seq). A writer bumps seq before it
 * publishes a change and again after, both under the lock. A reader that
 * notes seq before reading a key and finds it unchanged later knows no
 * change to any of the stripe's keys was published in between; mget and
 * transactions use this to prove that what they read is one snapshot.
 */
#ifndef KV_STRIPES_H
#define KV_STRIPES_H

#include <pthread.h>
#include <stdatomic.h>
#include <stddef.h>
#include <stdint.h>

#define KV__NSTRIPES 1024u

typedef struct kv__stripe {
    pthread_mutex_t lock;
    _Atomic uint64_t seq;
} __attribute__((aligned(64))) kv__stripe;

static inline unsigned kv__stripe_of(uint64_t hash)
{
    return (unsigned)(hash >> 16) & (KV__NSTRIPES - 1);
}

/* Allocates and initialises the stripes; NULL on out-of-memory. */
kv__stripe *kv__stripes_new(void);
void kv__stripes_free(kv__stripe *stripes);

/* Locks/unlocks ids (sorted, unique) in order. */
void kv__stripes_lock(kv__stripe *stripes, const unsigned *ids, size_t n);
void kv__stripes_unlock(kv__stripe *stripes, const unsigned *ids, size_t n);

/* Locks and unlocks every stripe in turn (one at a time): when it
 * returns, every writer that held a stripe when it was called has
 * released it. Snapshots use it to wait out changes already logged but
 * not yet published. */
void kv__stripes_barrier(kv__stripe *stripes);

static inline uint64_t kv__stripe_seq(kv__stripe *stripes, unsigned id)
{
    return atomic_load(&stripes[id].seq);
}

/* Only with the stripe locked. A release store is enough: the first bump
 * is ordered before the publishing store by that store's own ordering, and
 * readers load seq with acquire after their reads. */
static inline void kv__stripe_bump(kv__stripe *stripes, unsigned id)
{
    atomic_store_explicit(&stripes[id].seq,
                          atomic_load_explicit(&stripes[id].seq, memory_order_relaxed) + 1,
                          memory_order_release);
}

#endif
