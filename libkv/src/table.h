/*
 * table.h - the index: a directory of segments, each an open-addressing
 * hash table of item pointers.
 *
 * A store with a memory limit has KV__NSEGS segments: the hash's top
 * KV__SEG_BITS bits pick one (kv_store.seg, a fixed directory of words on
 * lines of their own, written only when a segment switches to a new
 * table). A store without has one (kv__index_split is not called): the
 * same code with segment 0 always, so that its gets cost what they did
 * before segments (a get's directory load must not wait for the hash:
 * with 32 segments gets of 10k keys ran 11% slower,
 * bench/results/index-get-0.txt). Either way the
 * bits below KV__SEG_BITS pick the home slot in the segment's table, and
 * the directory word carries log2 of the table's size with its address,
 * so the first probe needs nothing from the table's header. Each slot is
 * one atomic word. Linear probing from the home slot, so a get is one load
 * of the directory word (read-mostly, in cache), one cache miss for the
 * slot and one for the item. A slot word is one of:
 *   KV__SLOT_EMPTY        never used: ends a probe chain
 *   KV__SLOT_TOMB         a deleted key: probing continues
 *   KV__SLOT_MOVED        copied to the next table: probing continues
 *   KV__SLOT_MOVED_EMPTY  was empty when migrated: ends the chain here
 *   ttl << 63 | tag << 48 | pointer
 *                         a kv__item, or a kv__pending if bit 0 is set;
 *                         the tag is the hash's low 15 bits, compared
 *                         before the key is; bit 63 (KV__SLOT_TTL) is set
 *                         when the item has an expiry time, so the active
 *                         expiry (expire.c) finds candidates by reading
 *                         slot words only, without touching items
 *
 * Online growth (resize.c), per segment: a full segment table gets a
 * `next` table twice the size; slots are then copied over in chunks by the
 * writers, never the readers. A key is always findable: readers that reach
 * the end of a chain in a table follow `next`, and a slot is marked MOVED
 * only after its item is in the next table. When every slot is copied, the
 * segment's directory word switches to the next table and the old one is
 * retired. Segments grow independently, one resize at a time in the whole
 * store, so the memory a resize holds twice is one segment's, about
 * 1/KV__NSEGS of the index, not the whole index (issue 12: under a memory
 * limit a whole-index resize pushed the resident size 13-15% past it).
 *
 * Segments: KV__NSEGS = 32. A fresh store's segments start at 16 slots
 * (32 x 256 bytes = 8 KiB, no more than the 1024-slot table a store of
 * one starts with); an initial_capacity above the default sizes every
 * segment for its share (store.c). 32 rather than 64: the
 * 128-byte header of 64 smallest tables alone would be 8 KiB, and 1/32 of
 * the index is already well under one percent of a limit's memory.
 *
 * Invariants: readers only load slots. Every change of a slot that holds a
 * key happens under that key's stripe lock (stripes.h); EMPTY and TOMB
 * slots are claimed by compare-and-swap, which settles races between
 * inserters and the migration.
 */
#ifndef KV_TABLE_H
#define KV_TABLE_H

#include <stdatomic.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "item.h"

#define KV__SLOT_EMPTY ((uintptr_t)0)
#define KV__SLOT_TOMB ((uintptr_t)1)
#define KV__SLOT_MOVED ((uintptr_t)2)
#define KV__SLOT_MOVED_EMPTY ((uintptr_t)3)
#define KV__SLOT_PENDING ((uintptr_t)1)
#define KV__SLOT_PTR_MASK ((uintptr_t)0x0000fffffffffffeULL)
#define KV__SLOT_TAG_MASK ((uintptr_t)0x7fff000000000000ULL)
#define KV__SLOT_TTL ((uintptr_t)0x8000000000000000ULL)

#define KV__SEG_BITS 5u
#define KV__NSEGS (1u << KV__SEG_BITS)
#define KV__SEG_MIN_BITS 4u /* a segment's smallest table: 16 slots */


typedef struct kv__table {
    /* read by every probe */
    unsigned shift; /* 64 - KV__SEG_BITS - log2(size) */
    size_t mask;
    size_t grow_at; /* start a resize when used exceeds this */
    _Atomic(struct kv__table *) next;
    /* written by writers: kept off the line above (false sharing) */
    _Alignas(64) _Atomic size_t used; /* slots that are not EMPTY */
    _Atomic size_t inserted; /* of those, filled by writers, not by migration */
    _Atomic size_t reserved; /* inserts writers have announced (resize.c) */
    _Atomic size_t migrate_claim; /* next slot to hand to a migrator */
    _Atomic size_t migrate_done;  /* slots migrated */
    _Alignas(64) _Atomic uintptr_t slots[];
} kv__table;

/* A table of 2^bits empty slots, or NULL on out-of-memory; huge: a big
 * one is advised to be transparent huge pages (else advised not to). */
kv__table *kv__table_new(unsigned bits, bool huge);
void kv__table_free(void *table);
/* kv__table_free as an EBR free_fn. */
struct kv__slot;
void kv__table_retired_free(struct kv__slot *slot, void *table, size_t bytes);
size_t kv__table_footprint(const kv__table *t);

static inline size_t kv__table_size(const kv__table *t)
{
    return t->mask + 1;
}

/* A hash's home slot in its segment's table t: the bits just below the
 * segment bits. */
static inline size_t kv__table_home(const kv__table *t, uint64_t hash)
{
    return (size_t)(hash >> t->shift) & t->mask;
}

static inline uintptr_t kv__slot_tag(uint64_t hash)
{
    return (uintptr_t)(hash & 0x7fff) << 48;
}

static inline bool kv__slot_is_key(uintptr_t v)
{
    return v > KV__SLOT_MOVED_EMPTY;
}

static inline bool kv__slot_ends_chain(uintptr_t v)
{
    return v == KV__SLOT_EMPTY || v == KV__SLOT_MOVED_EMPTY;
}

static inline void *kv__slot_ptr(uintptr_t v)
{
    return (void *)(v & KV__SLOT_PTR_MASK);
}

static inline bool kv__slot_is_pending(uintptr_t v)
{
    return (v & KV__SLOT_PENDING) && kv__slot_is_key(v);
}

/* A key slot's word. ttl: the item has an expiry time (never set for a
 * pending node: those are short-lived, the sweep skips them). */
static inline uintptr_t kv__slot_make(uint64_t hash, const void *ptr, bool pending, bool ttl)
{
    return kv__slot_tag(hash) | (uintptr_t)ptr | (pending ? KV__SLOT_PENDING : 0) |
           (ttl ? KV__SLOT_TTL : 0);
}

/* An item holding the key of a key slot (either side of a pending one). */
static inline const kv__item *kv__slot_key_item(uintptr_t v)
{
    if (kv__slot_is_pending(v))
        return kv__pending_any((const kv__pending *)kv__slot_ptr(v));
    return (const kv__item *)kv__slot_ptr(v);
}

/* The item a key slot holds now, expired or not, or NULL (a pending
 * delete). If the slot is pending and its commit has not happened,
 * *pending_commit (if not NULL) receives the commit, else it is left alone.
 * Writers use this (they must see an expired item to remove it); readers
 * use kv__slot_visible. */
static inline kv__item *kv__slot_current(uintptr_t v, kv__commit **pending_commit)
{
    if (!kv__slot_is_pending(v))
        return (kv__item *)kv__slot_ptr(v);
    const kv__pending *p = kv__slot_ptr(v);
    if (atomic_load_explicit(&p->commit->state, memory_order_acquire) == KV__COMMIT_DONE)
        return p->after;
    if (pending_commit)
        *pending_commit = p->commit;
    return p->before;
}

/* What a reader sees in a key slot at clock reading now (the store's coarse
 * clock, kv__clock_now): the visible item, or NULL (absent or expired).
 * This is the one place visibility is decided. A reader that reads several
 * keys as one snapshot passes the same now for all of them, so that keys
 * set together with one expiry time disappear together. */
static inline kv__item *kv__slot_visible(uintptr_t v, kv__commit **pending_commit,
                                         uint64_t now)
{
    kv__item *it = kv__slot_current(v, pending_commit);
    return it && !kv__item_expired(it, now) ? it : NULL;
}

/* Where a key sits, for a writer holding its stripe lock. */
typedef struct kv__loc {
    kv__table *table; /* NULL: not present */
    size_t index;
    uintptr_t word;
} kv__loc;

/* One table's chain from slot i (t's size - 1 is mask): the key's slot
 * word (and *loc), or 0 at the chain's end. */
static inline __attribute__((always_inline)) uintptr_t
kv__table_chain(kv__table *t, size_t i, size_t mask, uintptr_t tag, const void *key, size_t klen,
                kv__loc *loc)
{
    /* resize.c keeps every table below full, so a chain always ends; the
     * bound only makes that a guarantee rather than an assumption. */
    for (size_t n = 0; n <= mask; n++, i = (i + 1) & mask) {
        uintptr_t v = atomic_load(&t->slots[i]);
        if (kv__slot_ends_chain(v))
            break;
        if ((v & KV__SLOT_TAG_MASK) != tag || !kv__slot_is_key(v))
            continue;
        /* A typical item spans two cache lines: start the miss on the
         * second (the value) now rather than after the key compare.
         * (Integer arithmetic: the address may lie past a small item; a
         * prefetch never faults.) */
        if (!(v & KV__SLOT_PENDING))
            __builtin_prefetch((const void *)((v & KV__SLOT_PTR_MASK) + 64));
        if (kv__item_has_key(kv__slot_key_item(v), key, klen)) {
            *loc = (kv__loc){t, i, v};
            return v;
        }
    }
    return 0;
}

/* kv__table_probe with t's home slot and mask given (kv__index_find reads
 * them from the directory word, not from t's header). */
static inline __attribute__((always_inline)) uintptr_t
kv__table_probe_at(kv__table *t, size_t home, size_t mask, uint64_t hash, const void *key,
                   size_t klen, kv__loc *loc)
{
    uintptr_t tag = kv__slot_tag(hash);
    uintptr_t v = kv__table_chain(t, home, mask, tag, key, klen, loc);
    if (v)
        return v;
    /* a resize in progress: the key may be in the next tables */
    for (t = atomic_load(&t->next); t; t = atomic_load(&t->next))
        if ((v = kv__table_chain(t, kv__table_home(t, hash), t->mask, tag, key, klen, loc)))
            return v;
    return 0;
}

/* Probes for key from table t (the key's segment's, kv__index_seg) on,
 * following `next` past the end of each chain. Returns the key's slot word
 * and fills *loc, or returns 0 (and leaves *loc alone) if the key is in no
 * table. Only loads slots, so a reader may call it; the caller is in a
 * read section. Always inlined: it is the whole of a get. */
static inline __attribute__((always_inline)) uintptr_t
kv__table_probe(kv__table *t, uint64_t hash, const void *key, size_t klen, kv__loc *loc)
{
    return kv__table_probe_at(t, kv__table_home(t, hash), t->mask, hash, key, klen, loc);
}

/* Lock-free lookup: the key's slot word, or 0 if the key is in no table. */
static inline uintptr_t kv__table_find(kv__table *t, uint64_t hash,
                                       const void *key, size_t klen)
{
    kv__loc unused;
    return kv__table_probe(t, hash, key, klen, &unused);
}

/* Finds key from table t on. Caller holds the key's stripe lock and is in a
 * read section. Returns true and fills *loc if present. */
bool kv__table_locate(kv__table *t, uint64_t hash, const void *key, size_t klen,
                      kv__loc *loc);

/* Inserts word for a key that is in no table (caller holds its stripe lock
 * and is in a read section) into the newest table reachable from t, and
 * fills *loc with where it went. by_writer: a new key (counted against the
 * writers' reservations, resize.c), not a migrated one. */
void kv__table_insert(kv__table *t, uint64_t hash, uintptr_t word, bool by_writer,
                      kv__loc *loc);

/* Replaces the word at loc (which the caller's lock protects) and updates
 * loc->word. A release store: a reader that loads the word (acquire) sees
 * the item it names. Not a full barrier: a writer that goes on to retire
 * what it replaced issues one fence for its whole change first (apply.c). */
static inline void kv__table_replace(kv__loc *loc, uintptr_t word)
{
    atomic_store_explicit(&loc->table->slots[loc->index], word, memory_order_release);
    loc->word = word;
}

#endif
