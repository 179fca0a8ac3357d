/*
 * evict.h - the memory limit and eviction (kv_config.max_memory, kv.h).
 *
 * Accounting. What the limit is checked against is the store's memory
 * figure (kv_metrics.memory_bytes: items with their allocator rounding,
 * the index, fixed structures) plus retired memory not yet freed. Items
 * are counted in per-thread counters (thread_slot.h), so no write touches
 * a shared counter; the sum is kept in kv__evict.used and refreshed by a
 * writer once its own counter has moved by 1/KV__EVICT_TICKS of the limit
 * since it last summed, or when the cached figure says the write would not
 * fit. A segment of the index grows in one step (twice its size,
 * resize.c): a write that may make one grow needs room for its bigger
 * table too. While keys are copied to a new table, the old one is not
 * counted (nor, once retired, for long: a slice frees retired memory
 * first): it is transient, and counting it would evict a table's worth of
 * keys for nothing each time a cache's table, full of the tombstones
 * evictions leave, is rebuilt at its own size. So the process briefly
 * holds one segment table more than the figure says during a resize:
 * 1/32 of the index, one resize at a time (a single-table index peaked at
 * 113-115% of the limit; segments: 101.8-103.4%, docs/design.md,
 * "Admission").
 * Below KV__EVICT_BIG_CHUNKS_FROM the slab takes no 2 MiB chunks: a huge
 * page is resident whole from its first item.
 *
 * Admission. kv__apply calls kv__evict_admit before a batch that stores
 * data (no lock held); deletes and internal batches pass at once. Over the
 * limit, the writer evicts (evict.c) for at most KV__EVICT_SLICE_NS, one
 * evictor at a time, then writes even if the slice ended short of room
 * (the next writer goes on evicting), or fails with KV_MEMORY_LIMIT if a
 * whole pass over the index found nothing it could evict, or under
 * noeviction.
 *
 * Access tracking (LRU and LFU policies only). Every item carries a 32-bit
 * word in front of it (item.h, KV__ITEM_META_BYTES) and the store keeps a
 * logical clock, kv_store.evict_clock, that a writer raises each time it
 * has written 1/KV__EVICT_TICKS of the limit: time is measured in data
 * written, the turnover of the cache, so a tick is the same fraction of
 * the cache whatever its size and speed (and a store not written to sees
 * no tick). A reader stores into the word with a relaxed atomic only when
 * the value would change:
 *   LRU: the word is the clock's low 24 bits at the last access, so a key
 *        read over and over is written once per tick, not once per read
 *        (a tick is a writer's 1/1024 of the limit: a 2 GiB cache with
 *        100-byte values ticks every ~20000 writes);
 *   LFU: the word is an 8-bit logarithmic counter (Redis's: incremented
 *        with probability 1 / ((c - 5) * 10 + 1)) and the 24-bit time of
 *        its last decay (the clock >> KV__LFU_DECAY_SHIFT); a hot key's
 *        counter is near 255 and changes about once per 2500 reads.
 * So most gets write nothing, and no get ever writes a line another thread
 * writes on every access: reads stay as scalable as without tracking. With
 * no limit (or a policy that needs no tracking) reads do not look at any
 * of it: one test of a flag in the store's read-mostly line.
 */
#ifndef KV_EVICT_H
#define KV_EVICT_H

#include <stdatomic.h>
#include <stdint.h>

#include "apply.h"
#include "store.h"

enum { KV__ACCESS_NONE = 0, KV__ACCESS_LRU = 1, KV__ACCESS_LFU = 2 };

#define KV__EVICT_TICKS 1024u         /* ticks of the clock per limit written */
#define KV__EVICT_SLICE_NS 1000000ull /* longest eviction slice of a write */
#define KV__EVICT_BATCH 16u           /* keys per eviction record */
#define KV__EVICT_BIG_CHUNKS_FROM ((uint64_t)128 << 20) /* slab: 2 MiB chunks from this limit */
#define KV__LFU_INIT 5u               /* a new key's counter (Redis's LFU_INIT_VAL) */
#define KV__LFU_LOG_FACTOR 10u        /* Redis's lfu-log-factor default */
#define KV__LFU_DECAY_SHIFT 13u       /* one decay per 8192 ticks: each
                                         time 8 limits' worth was written
                                         (faster decay lost hit ratio on
                                         bench/evict's traces) */

/* Sets the store's limit and policy (kv_open_config, before any item
 * exists). KV_OK, KV_INVALID_ARGUMENT (unknown policy, limit too small),
 * KV_NO_MEMORY. max_memory 0: no limit, nothing tracked. */
int kv__evict_configure(kv_store *s, uint64_t max_memory, int policy);
/* The store's limit, 0 if none. */
uint64_t kv__evict_limit(const kv_store *s);
/* Frees the eviction state (kv_close). */
void kv__evict_free(kv_store *s);

/* The store's memory as kv_metrics.memory_bytes (items, index, fixed
 * structures) into *bytes, its retired memory into *retired and the part
 * of *bytes that is an old index being copied to a new one into *moving
 * (may be NULL). slot: the caller's. */
void kv__memory_sum(kv_store *s, kv__slot *slot, uint64_t *bytes, uint64_t *retired,
                    uint64_t *moving);

/* kv__evict_admit's slow part: need more bytes are about to be stored. */
int kv__evict_admit_slow(kv_store *s, kv__slot *slot, uint64_t need);

/* Before a batch runs (no lock held, not in a read section): KV_OK, or
 * KV_MEMORY_LIMIT if it stores data the limit has no room for. */
static inline int kv__evict_admit(kv_store *s, kv__slot *slot, const kv__batch *b)
{
    if (!s->evict || b->internal)
        return KV_OK;
    uint64_t need = 0;
    for (size_t i = 0; i < b->nthen; i++)
        if (b->then_ops[i].kind == KV_OP_SET)
            need += 32 + b->then_ops[i].klen + b->then_ops[i].vlen;
    for (size_t i = 0; i < b->nelse; i++)
        if (b->else_ops[i].kind == KV_OP_SET)
            need += 32 + b->else_ops[i].klen + b->else_ops[i].vlen;
    return need ? kv__evict_admit_slow(s, slot, need) : KV_OK;
}

/* Evicts up to n keys now as the policy says, whatever the memory (tests;
 * also the body of a slice). Returns the keys removed (evicted, or found
 * expired). The caller is not in a read section. */
size_t kv__evict_now(kv_store *s, kv__slot *slot, size_t n);

/* The LFU counter of word v decayed to clock reading clk. */
static inline uint32_t kv__lfu_decayed(uint32_t v, uint32_t clk)
{
    uint32_t c = v >> 24, periods = ((clk >> KV__LFU_DECAY_SHIFT) - v) & 0xffffff;
    return periods >= c ? 0 : c - periods;
}

/* An LFU word after one access at clock reading clk. */
static inline uint32_t kv__lfu_access(uint32_t v, uint32_t clk, kv__slot *slot)
{
    uint32_t now = (clk >> KV__LFU_DECAY_SHIFT) & 0xffffff;
    uint32_t c = kv__lfu_decayed(v, clk); /* decayed up to now */
    if (c <= KV__LFU_INIT) {
        c++; /* probability 1: no random number needed */
    } else if (c < 255) {
        /* xorshift32 (Marsaglia 2003) in the thread's own slot */
        uint32_t r = slot->rng ? slot->rng : (uint32_t)(uintptr_t)slot | 1;
        r ^= r << 13;
        r ^= r >> 17;
        r ^= r << 5;
        slot->rng = r;
        /* increment with probability 1 / ((c - init) * factor + 1) */
        if ((uint64_t)r * ((c - KV__LFU_INIT) * KV__LFU_LOG_FACTOR + 1) < ((uint64_t)1 << 32))
            c++;
    }
    return c << 24 | now;
}

/* A reader's access to it (in a read section; the store tracks access). */
static inline void kv__evict_touch_slow(kv_store *s, kv__slot *slot, const kv__item *it)
{
    _Atomic uint32_t *m = kv__item_meta(it);
    uint32_t clk = atomic_load_explicit(&s->evict_clock, memory_order_relaxed);
    uint32_t v = atomic_load_explicit(m, memory_order_relaxed);
    uint32_t nv = s->access_mode == KV__ACCESS_LRU ? clk & 0xffffff : kv__lfu_access(v, clk, slot);
    if (nv != v)
        atomic_store_explicit(m, nv, memory_order_relaxed);
}

static inline void kv__evict_touch(kv_store *s, kv__slot *slot, const kv__item *it)
{
    if (__builtin_expect(s->access_mode != KV__ACCESS_NONE, 0))
        kv__evict_touch_slow(s, slot, it);
}

/* A new item's access word (the writer, before publishing it): a write is
 * an access; under LFU an overwritten key keeps its frequency. */
static inline void kv__evict_item_init(kv_store *s, kv__slot *slot, kv__item *next,
                                       const kv__item *old)
{
    if (s->access_mode == KV__ACCESS_NONE || !next)
        return;
    uint32_t clk = atomic_load_explicit(&s->evict_clock, memory_order_relaxed);
    uint32_t v;
    if (s->access_mode == KV__ACCESS_LRU)
        v = clk & 0xffffff;
    else if (old)
        v = kv__lfu_access(atomic_load_explicit(kv__item_meta(old), memory_order_relaxed), clk,
                           slot);
    else
        v = KV__LFU_INIT << 24 | ((clk >> KV__LFU_DECAY_SHIFT) & 0xffffff);
    atomic_init(kv__item_meta(next), v);
}

#endif
