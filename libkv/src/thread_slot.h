/*
 * thread_slot.h - per-thread state inside a store.
 *
 * Every thread that touches a store owns one slot in it: its epoch for safe
 * memory reclamation (ebr.c), its list of retired memory, and its share of
 * the metrics counters. Gets write only to their own slot, so readers on
 * different cores never share a written cache line.
 *
 * A thread's slot index is a small integer unique among live threads
 * (kv__thread_id), reused after the thread exits. Slots live in chunks that
 * are allocated on first use and never move, so a slot pointer stays valid
 * until kv_close().
 *
 * Ownership: only the owning thread writes a slot's fields (counters use
 * relaxed atomics so others may read them), except the retired list, which
 * other threads may also free from under its lock (ebr.c), and ttl_note,
 * which the expiry thread takes with an exchange (expire.c). The next
 * thread to get the same id inherits the slot; the id registry's mutex
 * orders the hand-over.
 */
#ifndef KV_THREAD_SLOT_H
#define KV_THREAD_SLOT_H

#include <stdatomic.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "slab.h"

#define KV__SLOTS_PER_CHUNK 64u
#define KV__MAX_CHUNKS 1024u /* 65536 threads at once */

typedef enum kv__counter {
    KV__C_GETS,
    KV__C_GET_HITS,
    KV__C_GET_MISSES,
    KV__C_SETS,
    KV__C_DELETES,
    KV__C_CAS_FAILURES,
    KV__C_TXN_COMMITS,
    KV__C_TXN_CONFLICTS,
    KV__C_EXPIRED,
    KV__C_EVICTED,
    /* signed deltas, kept as wrapping uint64 */
    KV__C_KEYS,
    KV__C_KEY_BYTES,
    KV__C_VALUE_BYTES,
    KV__C_ITEM_BYTES,
    KV__C_TTL_KEYS,
    KV__C_HIST_VERSIONS, /* history.c: earlier values kept */
    KV__C_HIST_BYTES,    /* and the memory they take */
    KV__C_COUNT
} kv__counter;

struct kv__slot;

typedef struct kv__retired {
    void *ptr;
    /* runs on the thread that frees, with its slot (for its slab cache) */
    void (*free_fn)(struct kv__slot *slot, void *ptr, size_t bytes);
    uint64_t epoch; /* global epoch when it was retired */
    size_t bytes;
} kv__retired;

typedef struct kv__slot {
    /* ebr.c: 0 when not in a read section, else (epoch << 1) | 1 */
    _Atomic uint64_t epoch;
    unsigned nest; /* read-section nesting depth (owner only) */
    /* ebr.c: memory waiting for readers to move on, a ring of limbo_cap
     * (a power of two) entries in retire order. The owner appends with no
     * lock (it alone moves limbo_tail, and limbo_in); entries are freed by
     * the owner or by a helper thread (kv_reclaim, or a writer seeing a
     * lot of retired memory) under limbo_busy, a spin lock taken for one
     * pass of frees (which moves limbo_head and limbo_out) or by the owner
     * to grow the ring. */
    atomic_bool limbo_busy;
    kv__retired *limbo;
    size_t limbo_cap;
    _Atomic size_t limbo_head, limbo_tail;
    /* bytes ever retired and ever freed: their difference is what waits,
     * read by anyone (relaxed) to find lists worth collecting */
    _Atomic size_t limbo_in, limbo_out;
    size_t since_collect; /* retires since the last collection attempt (owner only) */
    size_t collect_every; /* retires between attempts (owner only; ebr.c) */
    _Atomic uint64_t counters[KV__C_COUNT];
    /* apply.c: the revision of this thread's last change (owner only), so
     * that one thread's changes take increasing revisions */
    uint64_t last_rev;
    _Atomic unsigned fence_word; /* ebr.h: kv__ebr_unlinked under TSan */
    /* evict.c (owner only): this slot's KV__C_ITEM_BYTES when the thread
     * last summed the store's memory, and its random number state */
    uint64_t evict_mark;
    uint32_t rng;
    /* expire.c: the earliest expiry time this thread published since the
     * expiry thread last collected it (0: none). Written by the owner
     * (compare-and-swap, after publishing) and by the expiry thread
     * (exchange to 0 when it starts a pass of the index). */
    _Atomic uint64_t ttl_note;
    kv__slab_cache cache; /* slab.h: this thread's free item blocks */
} __attribute__((aligned(64))) kv__slot;

typedef struct kv__slot_dir {
    _Atomic(kv__slot *) chunks[KV__MAX_CHUNKS];
    _Atomic unsigned nchunks_hint; /* highest chunk index used + 1 */
    kv__slab *slab; /* every slot's cache gives its surplus to this depot */
} kv__slot_dir;

/* The calling thread's id (0-based), or -1 if none can be allocated. */
int kv__thread_id(void);

/* An upper bound on the number of threads using libkv at this moment. */
unsigned kv__thread_bound(void);

/* The calling thread's slot in dir, allocating its chunk on first use.
 * NULL only on out-of-memory. */
kv__slot *kv__slot_get(kv__slot_dir *dir);

/* Calls fn for every slot allocated so far. */
void kv__slot_each(kv__slot_dir *dir, void (*fn)(kv__slot *, void *),
                   void *ctx);

/* Frees all chunks; nothing may use dir afterwards. */
void kv__slot_dir_free(kv__slot_dir *dir);

/* Counter update by the slot's owner: no read-modify-write atomics needed. */
static inline void kv__count(kv__slot *s, kv__counter c, uint64_t delta)
{
    uint64_t v = atomic_load_explicit(&s->counters[c], memory_order_relaxed);
    atomic_store_explicit(&s->counters[c], v + delta, memory_order_relaxed);
}

#endif
