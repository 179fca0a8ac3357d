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
 *
 * And each stripe keeps a clock: the revision of the last change that
 * locked it (revisions of a store without a log, see apply.c). It lives in
 * the line the writer owns anyway for the lock, so taking a revision
 * writes nothing another core's writer of other keys touches.
 */
#ifndef KV_STRIPES_H
#define KV_STRIPES_H

#include <stdatomic.h>
#include <stddef.h>
#include <stdint.h>

#define KV__NSTRIPES 1024u

/* The stripe lock: 0 free, 1 held, and a count of the threads that sleep
 * (or are about to) on it. Taking a free lock is one compare-and-swap;
 * releasing one is a plain store, then a look at the sleepers, with no
 * atomic read-modify-write (a futex mutex's release exchange, Drepper's
 * "Futexes Are Tricky" mutex 2, was a fifth of a single-key set's
 * atomics). A waiter spins briefly (the sections it guards are short),
 * then counts itself in and sleeps in the kernel. The release's store may
 * become visible after its look at the count (x86 lets a load pass an
 * earlier store), so a waiter that counted itself in at that instant
 * could miss its wake-up: it therefore sleeps at most KV__LOCK_NAP_NS and
 * looks again. In practice the kernel's own check of the word, a system
 * call later, already sees the release. */
typedef struct kv__lock {
    _Atomic unsigned state;
    _Atomic unsigned sleepers;
} kv__lock;

#define KV__LOCK_NAP_NS 1000000L

void kv__lock_wait(kv__lock *l);  /* stripes.c: the contended path */
void kv__lock_wake(kv__lock *l);

static inline void kv__lock_take(kv__lock *l)
{
    unsigned free_ = 0;
    if (!atomic_compare_exchange_strong_explicit(&l->state, &free_, 1, memory_order_acquire,
                                                 memory_order_relaxed))
        kv__lock_wait(l);
}

static inline void kv__lock_release(kv__lock *l)
{
    atomic_store_explicit(&l->state, 0, memory_order_release);
    if (atomic_load_explicit(&l->sleepers, memory_order_relaxed))
        kv__lock_wake(l);
}

typedef struct kv__stripe {
    kv__lock lock;
    _Atomic uint64_t seq;
    /* written under the lock; read without it by kv_revision (relaxed) */
    _Atomic uint64_t clock;
} __attribute__((aligned(64))) kv__stripe;

static inline unsigned kv__stripe_of(uint64_t hash)
{
    return (unsigned)(hash >> 16) & (KV__NSTRIPES - 1);
}

/* Starts fetching the lines of stripes ids for writing, before a writer
 * of several keys takes them: with two writers, a stripe's line was as
 * often as not written last by the other core, and kv__lock_take would
 * wait for each transfer in turn (PREFETCHW asks for the line exclusive;
 * x86-64 CPUs without it run the opcode as a no-op). Two writers' 4-key
 * multi-sets ran 4% faster with it, one-key sets no faster
 * (bench/results/stripe-prefetch-1.txt). */
static inline void kv__stripes_prefetch(const kv__stripe *stripes, const unsigned *ids, size_t n)
{
    for (size_t i = 0; i < n; i++) {
#if defined(__x86_64__)
        __asm__ volatile("prefetchw %0" : : "m"(*(const char *)&stripes[ids[i]]));
#else
        __builtin_prefetch(&stripes[ids[i]], 1);
#endif
    }
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

/* The stripe's clock (with the stripe locked, or as a hint without). */
static inline uint64_t kv__stripe_clock(kv__stripe *stripes, unsigned id)
{
    return atomic_load_explicit(&stripes[id].clock, memory_order_relaxed);
}

/* Only with the stripe locked: its clock moves forward to rev. */
static inline void kv__stripe_clock_raise(kv__stripe *stripes, unsigned id, uint64_t rev)
{
    if (atomic_load_explicit(&stripes[id].clock, memory_order_relaxed) < rev)
        atomic_store_explicit(&stripes[id].clock, rev, memory_order_relaxed);
}

/* The highest clock of all stripes: the newest revision taken. */
uint64_t kv__stripes_clock_max(kv__stripe *stripes);

#endif
