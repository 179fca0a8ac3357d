/*
 * store.h - the kv_store object and the helpers every operation shares.
 */
#ifndef KV_STORE_H
#define KV_STORE_H

#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>

#include "apply.h"
#include "ebr.h"
#include "slab.h"
#include "kv.h"
#include "stripes.h"
#include "table.h"
#include "thread_slot.h"

/* Fields are grouped by who writes them, so that writers' updates do not
 * evict the line every reader needs (false sharing). */
struct kv_store {
    /* read by every operation, written only by a resize */
    _Alignas(64) kv_options opts;
    kv__stripe *stripes;
    kv__record_hook record_hook; /* apply.h: test hook, sees each record */
    void *record_ctx;
    struct kv__log *log;         /* log.h: NULL for an in-memory store */
    bool wait_durable;           /* writers wait for their record (kv_config) */
    struct kv__durable *dur;     /* durable.c: directory, lock, snapshots */
    kv__ebr ebr;
    /* a store without a log: every revision is above it. Raised only by
     * recovery and kv_load (apply.c), read by every change */
    _Atomic uint64_t rev_floor;
    /* evict.h: the memory limit (NULL: none); whether reads track access
     * (KV__ACCESS_*). item_pre: the bytes in front of every item, for its
     * access word (4) and, with history, its history link (8; item.h) */
    struct kv__evict *evict;
    struct kv__hist *hist;       /* history.h: NULL when none is kept */
    struct kv__feed *feed;       /* watch.h: with history */
    unsigned char access_mode;
    unsigned char item_pre;
    /* the index's segments (table.h): 0 (one table, a store without a
     * memory limit) or KV__SEG_BITS (KV__NSEGS, kv__index_split) */
    unsigned char seg_bits;
    /* the index (table.h): each segment's current table, which may have a
     * `next`, as a word: the table's address | log2 of its slots (tables
     * are 64-byte aligned), so that a get finds the home slot without
     * loading the table's header first (kv__index_find). Read by every
     * operation, written only when a segment switches to a new table
     * (resize.c); lines of its own. Use kv__seg_table / kv__seg_set. */
    _Alignas(64) _Atomic uintptr_t seg[KV__NSEGS];
    /* written by every change */
    _Alignas(64) _Atomic uint64_t revision; /* with a log: the last revision
                                               handed out (log.c) */
    _Atomic uint64_t nkeys; /* exact key count, kept only if max_keys */
    /* expiry (expire.c): the coarse clock has a line of its own, written
     * once a millisecond by the expiry thread and read by every reader
     * that meets an item with an expiry time */
    _Alignas(64) _Atomic uint64_t clock_ms; /* wall clock, ms; never goes back */
    _Atomic bool clock_frozen;  /* a test set the clock: the thread leaves it */
    _Atomic bool ttl_seen;      /* an item with an expiry time was published */
    bool manual_expiry;         /* kv_config.manual_expiry: no sweep removes */
    _Atomic(struct kv__expiry *) expiry; /* the expiry thread, once started */
    pthread_mutex_t expiry_mu;  /* starts and stops it */
    /* evict.h: the access clock, raised by writers once per 1/1024 of the
     * memory limit written, read by readers that track access */
    _Alignas(64) _Atomic uint32_t evict_clock;
    /* written rarely */
    _Alignas(64) _Atomic uint64_t resizes;
    _Atomic int resizing; /* resize.c: the segment being resized, -1: none */
    kv__slot_dir slots;
    kv__slab slab; /* small items (slab.h) */
};

#define KV__SEG_WORD_BITS ((uintptr_t)63)

/* Segment g's current table (may have a `next`). In a read section: the
 * table stays allocated until it ends. */
static inline kv__table *kv__seg_table(kv_store *s, unsigned g)
{
    return (kv__table *)(atomic_load_explicit(&s->seg[g], memory_order_acquire) &
                         ~KV__SEG_WORD_BITS);
}

/* Makes t segment g's current table (t's slots are ready: the store
 * releases them to readers). */
static inline void kv__seg_set(kv_store *s, unsigned g, kv__table *t)
{
    unsigned bits = 0;
    while (((size_t)1 << bits) < kv__table_size(t))
        bits++;
    atomic_store_explicit(&s->seg[g], (uintptr_t)t | bits, memory_order_seq_cst);
}

/* How many segments the index has: 1 or KV__NSEGS. */
static inline unsigned kv__nsegs(const kv_store *s)
{
    return 1u << s->seg_bits;
}

/* The segment a hash belongs to: its top bits, or 0 in a store of one.
 * A branch, not arithmetic: in a store of one segment the directory load
 * of a get does not wait for the key's hash (a well predicted branch
 * breaks the dependency; `& mask` would not). */
static inline unsigned kv__seg_of(const kv_store *s, uint64_t hash)
{
    return s->seg_bits ? (unsigned)(hash >> (64 - KV__SEG_BITS)) : 0u;
}

/* The current table of the segment hash belongs to. */
static inline kv__table *kv__index_seg(kv_store *s, uint64_t hash)
{
    return kv__seg_table(s, kv__seg_of(s, hash));
}

/* Splits a fresh store's one-table index into KV__NSEGS segments, each
 * sized for its share of initial_capacity (kv_open_config, when the store
 * has a memory limit: a resize then needs room for one segment's new
 * table, not the whole index's). Before any key exists. KV_OK or
 * KV_NO_MEMORY (the store keeps its one table). */
int kv__index_split(kv_store *s);
/* kv_open with a huge-page policy (kv_huge_pages: kv_open_config's). */
int kv__open(const kv_options *opts, int huge_pages, kv_store **out);
/* Whether the store's big index tables are advised to be huge pages. */
static inline bool kv__huge_pages(const kv_store *s)
{
    return s->slab.huge == KV_HUGE_EAGER;
}

/* A get's lookup (kv__table_find from the key's segment), with the home
 * slot computed from the directory word: the table's header is not on
 * the path of the first probe. */
static inline __attribute__((always_inline)) uintptr_t
kv__index_find(kv_store *s, uint64_t hash, const void *key, size_t klen)
{
    uintptr_t w = atomic_load_explicit(&s->seg[kv__seg_of(s, hash)], memory_order_acquire);
    kv__table *t = (kv__table *)(w & ~KV__SEG_WORD_BITS);
    unsigned bits = (unsigned)(w & KV__SEG_WORD_BITS);
    size_t home = (size_t)((hash << KV__SEG_BITS) >> (64 - bits));
    kv__loc unused;
    return kv__table_probe_at(t, home, ((size_t)1 << bits) - 1, hash, key, klen, &unused);
}

/* durable.c: stops snapshots and the log, releases the directory. */
void kv__durable_close(kv_store *s);
/* durable.c: adds the log and snapshot figures to *m. */
struct kv_metrics;
void kv__durable_metrics(kv_store *s, struct kv_metrics *m);

/* expire.c: the clock reading the calling thread pinned on one store
 * (kv_clock_pin), or store NULL. Thread-local, initial-exec: reading it
 * costs one load, not a call (libkv is linked, not dlopen'ed, by its
 * users; glibc keeps static TLS room for a few such variables anyway). */
typedef struct kv__clock_pin {
    const kv_store *store;
    uint64_t ms;
} kv__clock_pin;
extern _Thread_local kv__clock_pin kv__pinned __attribute__((tls_model("initial-exec")));

/* The store's coarse clock (ms since the Unix epoch): what readers and
 * writers compare expiry times with. One relaxed load - or the reading
 * this thread pinned on s (a replica applying another copy's change). */
static inline uint64_t kv__clock_now(const kv_store *s)
{
    if (__builtin_expect(kv__pinned.store == s, 0))
        return kv__pinned.ms;
    return atomic_load_explicit(&s->clock_ms, memory_order_relaxed);
}

/* expire.c: the clock and the active expiry.
 * kv__clock_refresh: raises the clock to the wall clock now (unless a test
 * froze it) and returns it. kv__expiry_start: starts the expiry thread if
 * it is not running (no lock held); KV_OK or KV_NO_MEMORY. kv__expiry_stop:
 * stops and joins it (kv_close). */
uint64_t kv__clock_refresh(kv_store *s);
int kv__expiry_start(kv_store *s);
void kv__expiry_stop(kv_store *s);
/* expire.c: a writer published items with expiry times, the earliest at
 * ms (after its slot stores): lets the expiry thread, if it sleeps past
 * ms, wake up for it. slot: the caller's. */
void kv__expiry_note(kv_store *s, kv__slot *slot, uint64_t ms);
/* Starts the expiry thread once an item with an expiry time exists. */
static inline void kv__expiry_ensure(kv_store *s)
{
    if (atomic_load_explicit(&s->ttl_seen, memory_order_relaxed) &&
        !atomic_load_explicit(&s->expiry, memory_order_acquire))
        (void)kv__expiry_start(s);
}

/* Checks a key against the store's limits. */
static inline int kv__check_key(const kv_store *s, const void *key, size_t klen)
{
    if (klen == 0)
        return KV_KEY_EMPTY;
    if (klen > s->opts.max_key_size)
        return KV_KEY_TOO_LARGE;
    if (!key)
        return KV_INVALID_ARGUMENT;
    return KV_OK;
}

static inline int kv__check_value(const kv_store *s, const void *val, size_t vlen)
{
    if (vlen > s->opts.max_value_size)
        return KV_VALUE_TOO_LARGE;
    if (!val && vlen)
        return KV_INVALID_ARGUMENT;
    return KV_OK;
}

/* scan.c: kv_scan whose callback also receives the key's expiry time (0:
 * none); for snapshots. Keys expired at the scan's clock reading are not
 * given. */
typedef int (*kv__scan_fn)(void *ctx, const void *key, size_t klen, const void *val,
                           size_t vlen, uint64_t version, uint64_t expire_at);
int kv__scan(kv_store *s, const void *prefix, size_t plen, uint64_t cursor, size_t limit,
             kv__scan_fn fn, void *ctx, uint64_t *next);
/* As kv__scan; with_expired: expired items that are still held are given
 * too (history: they are present until the change that removes them). */
int kv__scan_ex(kv_store *s, const void *prefix, size_t plen, uint64_t cursor, size_t limit,
                kv__scan_fn fn, void *ctx, uint64_t *next, bool with_expired);

/* Copies an item's value into a new kv_value. */
int kv__value_copy(const void *val, size_t vlen, uint64_t version, kv_value *out);

/* resize.c: before a write that may insert up to n new keys into segment
 * seg (in a read section, no stripe lock held): reserves room for them,
 * starting a resize or helping a running one as needed. Returns the table
 * the reservation is in and *reserved (0 when room is plentiful and nothing
 * was reserved), for kv__resize_release once the write is done; NULL if no
 * room can be had (out of memory for a bigger table). */
kv__table *kv__resize_prepare(kv_store *s, kv__slot *slot, unsigned seg, size_t n,
                              size_t *reserved);
void kv__resize_release(kv__table *reserved_in, size_t reserved);
/* resize.c: the same for a batch whose new keys fall into several
 * segments: the caller sets nsegs (kv__nsegs: 1 in a store without a
 * memory limit, so a batch walks one entry, not KV__NSEGS) and fills
 * want[0..nsegs) (new keys per segment); kv__resize_prepare_each reserves
 * in every segment wanted, or releases what it took and returns false
 * (out of memory). */
typedef struct kv__reservations {
    unsigned nsegs;
    size_t want[KV__NSEGS];
    kv__table *in[KV__NSEGS];
    size_t n[KV__NSEGS];
} kv__reservations;
bool kv__resize_prepare_each(kv_store *s, kv__slot *slot, kv__reservations *r);
void kv__resize_release_each(kv__reservations *r);
/* resize.c: the bytes a resize starting now (for a write of a few keys)
 * would add to the index: the biggest growth of a segment near its grow
 * mark (window: slots short of it that count as near), 0 if none would
 * grow. In a read section. */
uint64_t kv__resize_growth(kv_store *s, size_t window);
/* Migrates up to `chunks` chunks of a running resize (no locks held). */
void kv__resize_help(kv_store *s, kv__slot *slot, size_t chunks);
/* resize.c: the index's slots (the newest table of each segment) and its
 * bytes (every table); *moving (if not NULL): bytes of tables being copied
 * to a next one. In a read section. */
size_t kv__index_slots(kv_store *s);
size_t kv__index_bytes(kv_store *s, size_t *moving);

#endif
