/*
 * history_impl.h - what the history files share (history.c, history_read.c,
 * history_rollback.c, history_compact.c, history_snap.c): the records, the
 * per-stripe maps and the helpers every part uses. Private to them; the
 * rest of the library uses history.h.
 *
 * Locking: a stripe's map, its records and their versions are read and
 * written only with that stripe's lock held. Items of versions are
 * immutable; one dropped from history is retired through the epochs
 * (ebr.h), so a thread pinned in a read section may still copy it after
 * the lock is released.
 */
#ifndef KV_HISTORY_IMPL_H
#define KV_HISTORY_IMPL_H

#include <pthread.h>
#include <stdbool.h>
#include <stdint.h>

#include "history.h"
#include "store.h"

/* One earlier version of a key: visible at revisions [rev, until).
 * Slab blocks are 8-byte aligned, so these 64 bytes mostly span two cache
 * lines: what a write touches (linking a version in, dropping the oldest:
 * newer, newer_gap, footprint, item) comes first, together, so that one
 * line mostly holds it all (kv__hent_prefetch). */
struct kv__hent {
    kv__hent *older, *newer;
    /* newer->until - until, KV__GAP_UNKNOWN if there is no newer version
     * or it does not fit: a write that drops this version learns from it
     * whether the next one goes too without reading that one, a cache
     * miss (kv__hist_commit). */
    uint32_t newer_gap;
    /* the item's footprint (kv__item_footprint_pre), kept so that dropping
     * the version need not read the item, a cache miss per drop (items
     * are under 4 GiB: values at most 1 GiB) */
    uint32_t footprint;
    kv__item *item;
    uint64_t rev, until;
    uint64_t create_rev, version;
};

/* Starts the misses of the line or two that hold e's fields a write
 * touches (a hint: e may be freed by then, which a prefetch does not
 * mind). */
static inline void kv__hent_prefetch(const kv__hent *e)
{
    __builtin_prefetch(&e->newer, 1);
    __builtin_prefetch((const char *)&e->item + sizeof e->item - 1, 1);
}

#define KV__GAP_UNKNOWN UINT32_MAX

/* The newer_gap of a version whose `until` is `until` below one whose
 * `until` is newer_until. */
static inline uint32_t kv__hent_gap(uint64_t until, uint64_t newer_until)
{
    return newer_until >= until && newer_until - until < KV__GAP_UNKNOWN
               ? (uint32_t)(newer_until - until)
               : KV__GAP_UNKNOWN;
}

/* A key with history. While the key is live (its slot holds an item) the
 * record also keeps the current item's create revision and version count;
 * a key without a record is live with version 1 (or absent). */
struct kv__hkey {
    /* What a write reads and writes comes first, in 64 bytes: records are
     * 8-byte aligned slab blocks, so those fields span at most two cache
     * lines, the two kv__hist_prefetch_linked starts (r->live in a third
     * line was 2% of kvd's samples under pipelined SETs). */
    kv__hent *newest, *oldest;
    /* newest->until and oldest->until (when there are versions), kept
     * here so that a write decides what to link and drop from the record
     * alone: those loads missed on the versions' lines and the write
     * waited for them (80% of kv__hist_commit's samples under pipelined
     * SETs). kv__hist_drop_oldest keeps oldest_until from the dropped
     * version's newer_gap. */
    uint64_t newest_until, oldest_until;
    uint64_t cur_rev, cur_create, cur_version; /* the version cur_rev's */
    uint32_t nent;
    bool live;
    /* What the maps' walks read (kv__hmap_find), then the key. */
    uint32_t klen;
    uint64_t floor; /* reads of this key below it: compacted (per-key bound) */
    kv__hkey *next; /* in its bucket */
    uint64_t hash;
    unsigned char key[];
};

/* One stripe's keys with history: chained buckets indexed by the hash's
 * top bits, so a hash range is a range of buckets (kv_scan_at). */
typedef struct kv__hmap {
    kv__hkey **buckets; /* from kv__hmap_buckets_new */
    unsigned bits;
    size_t count;
} kv__hmap;

/* A zeroed array of 2^bits buckets (history.c); NULL on out-of-memory. */
kv__hkey **kv__hmap_buckets_new(unsigned bits);
void kv__hmap_buckets_free(kv__hkey **b);

#define KV__HMAP_MIN_BITS 4u /* a map starts with 16 buckets */
#define NSAMPLES 1024u
#define TICK_MS 25u /* the compactor's tick (history_compact.c) */

typedef struct sample {
    uint64_t ms, rev;
} sample;

/* Where a sweep of the maps has got to (history_compact.c). */
typedef struct kv__sweep_pos {
    unsigned stripe;
    size_t bucket;
    unsigned bits; /* the stripe's map size when bucket was reached */
} kv__sweep_pos;

struct kv__hist {
    kv__hmap *maps; /* KV__NSTRIPES, each guarded by its stripe's lock */
    uint32_t max_versions;
    uint64_t max_bytes;
    uint32_t max_age_s;
    _Atomic uint64_t compact_rev;
    pthread_mutex_t compact_mu; /* one sweep at a time */
    /* kv_history_hold (history_copy.c): while hold_rev is not 0 no version
     * is dropped (a sweep is owed until the release); it is the held
     * revision + 1, UINT64_MAX while a hold is being taken. hold_compact:
     * the compaction revision then. */
    _Atomic uint64_t hold_rev;
    uint64_t hold_compact;
    /* under compact_mu: a shed under the memory limit goes on from here */
    bool shed_active;
    kv__sweep_pos shed_pos;
    /* the kv__hist_compactor thread (byte and age bounds) */
    bool running, stop;
    pthread_t thread;
    pthread_mutex_t mu;
    pthread_cond_t cv;
    /* (time, latest revision) every sample_ms, for the age bound */
    sample samples[NSAMPLES];
    size_t nsamples, head;
    uint64_t sample_ms, last_sample;
    /* the compactor thread's own (history_compact.c): when it last swept,
     * and the compaction revision that sweep reached; a background sweep
     * under way (to bg_rev at least), and where it has got to */
    uint64_t last_sweep_ms, swept_rev, bg_rev;
    bool bg_active;
    kv__sweep_pos bg_pos;
};

/* Does r hold something a read needs? Entries, or a key past version 1
 * (a missing record means version 1, or absent). */
static inline bool kv__hkey_needed(const kv__hkey *r)
{
    return r->nent || (r->live && r->cur_version > 1);
}

/* The version older than e in r's list, NULL after the oldest. Walks
 * end at r->oldest, not at a NULL link: when a write drops the oldest
 * version it does not clear the next one's `older` (a store, and a cache
 * miss, on a version the write does not otherwise touch). */
static inline kv__hent *kv__hent_older(const kv__hkey *r, const kv__hent *e)
{
    return e == r->oldest ? NULL : e->older;
}

/* A version found at a revision. */
typedef struct kv__hver {
    const kv__item *item;
    uint64_t create_rev, version;
} kv__hver;

/* A record's newest and oldest are also read without the lock, by
 * kv_prefetch_writes (kv__hist_prefetch_ahead, a hint): the writers, under
 * the lock, store them atomically (relaxed: plain stores). A record is
 * retired through the epochs (kv__hist_record_free), so a pinned reader
 * that found it through an item's link may read them. */
static inline void kv__hkey_set_newest(kv__hkey *r, kv__hent *e)
{
    __atomic_store_n(&r->newest, e, __ATOMIC_RELAXED);
}

static inline void kv__hkey_set_oldest(kv__hkey *r, kv__hent *e)
{
    __atomic_store_n(&r->oldest, e, __ATOMIC_RELAXED);
}

static inline size_t kv__hmap_bucket(const kv__hmap *m, uint64_t hash)
{
    return (size_t)(hash >> (64 - m->bits));
}

/* The maps (history.c; the stripe locked). kv__hmap_insert: the map has
 * buckets (kv__hist_prepare or a loader made sure). Nothing reads them
 * without the lock: a write finds its key's record from the item it
 * replaces (item.h). */
kv__hkey *kv__hmap_find(const kv__hmap *m, uint64_t hash, const void *key, size_t klen);
void kv__hmap_insert(kv__hmap *m, kv__hkey *r);
void kv__hmap_remove(kv__hmap *m, kv__hkey *r);

/* Accounting and dropping (history.c; the stripe locked).
 * kv__hist_drop_oldest: unlinks r's oldest version and retires its item
 *   (a retire must be reserved); raise: the per-key bound dropped it, so
 *   the key's floor rises to its `until`.
 * kv__hist_maybe_free: frees r if it holds nothing a read needs; cur: the
 *   item in the key's slot (its link to r is cleared). */
size_t kv__hent_bytes(const kv_store *s, const kv__hent *e);
/* Nodes from the store's slab (hkeys too big for it from malloc), freed
 * into the calling thread's slab cache. */
kv__hent *kv__hent_new(kv_store *s, kv__slot *slot);
void kv__hent_free(kv__slot *slot, kv__hent *e);
kv__hkey *kv__hkey_new(kv_store *s, kv__slot *slot, size_t klen);
void kv__hkey_free(kv__slot *slot, kv__hkey *r);
size_t kv__hkey_bytes(const kv__hkey *r);
void kv__hist_drop_oldest(kv_store *s, kv__slot *slot, kv__hkey *r, bool raise);
void kv__hist_maybe_free(kv_store *s, kv__slot *slot, kv__hmap *m, kv__hkey *r,
                         const kv__item *cur);
/* Frees r whatever it holds (its versions dropped already), and clears the
 * link of cur, the item in its key's slot (NULL: none). r is retired
 * through the epochs (a pinned prefetch may still read it): a retire must
 * be reserved. */
void kv__hist_record_free(kv_store *s, kv__slot *slot, kv__hmap *m, kv__hkey *r,
                          const kv__item *cur);

/* Reading (history_read.c).
 * kv__hist_current_ver: the metadata of key's current item it (record r
 *   may be NULL).
 * kv__hist_slot_item: the item in key's slot whatever its expiry (stripe
 *   locked, pinned).
 * kv__hist_resolve: key's version at rev (stripe locked, pinned): KV_OK,
 *   KV_NOT_FOUND or KV_COMPACTED. kv__hist_resolve_locked: the same,
 *   taking the stripe lock for just that (the caller is pinned).
 * kv__hist_check_rev, kv__hist_check_keys: the checks every read in the
 *   past starts with. */
kv__hver kv__hist_current_ver(const kv__item *it, const kv__hkey *r);
kv__item *kv__hist_slot_item(kv_store *s, uint64_t hash, const void *key, size_t klen);
int kv__hist_resolve(kv_store *s, uint64_t hash, const void *key, size_t klen, uint64_t rev,
                     kv__hver *out);
int kv__hist_resolve_locked(kv_store *s, uint64_t hash, const void *key, size_t klen,
                            uint64_t rev, kv__hver *out);
/* The scan of kv_scan_at with expiry times; held: a held copy's (no
 * compaction checks; rev is the held revision). */
int kv__hist_scan_at(kv_store *s, const void *prefix, size_t plen, uint64_t rev,
                     uint64_t cursor, size_t limit, bool held, kv_scan_ex_fn fn, void *ctx,
                     uint64_t *next);
/* Every key's history as it was at rev, for a held copy (history_snap.c). */
int kv__hist_snapshot_at(kv_store *s, uint64_t rev, kv_history_fn fn, void *ctx);
/* Raises the compaction revision to c and sweeps (history_compact.c); while
 * history is held, only raises it: the sweep waits for the release. */
void kv__hist_compact_to(kv_store *s, kv__slot *slot, uint64_t c);
int kv__hist_check_rev(kv_store *s, uint64_t rev);
int kv__hist_check_keys(kv_store *s, const kv_key *keys, size_t n, uint64_t rev);

/* The compactor thread's body (history_compact.c); arg is the store. */
void *kv__hist_compactor(void *arg);

#endif
