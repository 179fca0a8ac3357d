/*
 * resize.c - growing the index online, one segment at a time (see table.h
 * for the segments and the slot protocol).
 *
 * A resize starts when a segment's table has its non-empty slots past 3/4
 * of it: a table twice the segment's live keys' need is hung on its
 * `next`. From then on that segment's inserts go to the new table and
 * every writer, after releasing its locks, migrates a chunk of slots;
 * readers never do any of this work and never wait. The writer that
 * completes the last chunk switches the segment's directory word to the
 * new table and retires the old one.
 *
 * Only one resize runs at a time in the whole store (kv_store.resizing):
 * the index then holds at most one segment twice, so the transient is
 * about 2/KV__NSEGS of the index rather than a whole index more (issue
 * 12). A writer whose segment must grow while another segment's resize
 * runs helps that one to its end first, as it would help its own.
 */
#include <sched.h>
#include <stdlib.h>

#include "hash.h"
#include "store.h"

#define MIGRATE_CHUNK 256u
#define KV__UNRESERVED_MAX 16u
#define NO_RESIZE (-1)

static unsigned bits_for(size_t nslots)
{
    unsigned bits = KV__SEG_MIN_BITS;
    while (((size_t)1 << bits) < nslots)
        bits++;
    return bits;
}

static void sum_keys(kv__slot *slot, void *ctx)
{
    *(uint64_t *)ctx += atomic_load_explicit(&slot->counters[KV__C_KEYS],
                                             memory_order_relaxed);
}

/* The store's live keys (the per-thread counters' sum, never negative). */
static size_t live_keys(kv_store *s)
{
    uint64_t live = 0;
    kv__slot_each(&s->slots, sum_keys, &live);
    return (int64_t)live < 0 ? 0 : (size_t)live;
}

/* Keys in t's slots: a segment's live keys when it has no next (a resize
 * reads the slots once before it copies them all anyway; a figure summed
 * from counters would be the store's, and a segment's share of that is
 * only an estimate, too low for a segment that has more than its share). */
static size_t count_keys(const kv__table *t)
{
    size_t n = 0;
    for (size_t i = 0; i <= t->mask; i++)
        n += kv__slot_is_key(atomic_load_explicit(&t->slots[i], memory_order_relaxed));
    return n;
}

/* The number of slots for the table after t, whose segment has `live`
 * keys (a figure that may be up to `margin` behind), for a write of n. */
static size_t next_slots(kv__table *t, size_t live, size_t margin, size_t n)
{
    /* Room for the live keys at half load, and at least twice what t holds
     * so everything migrated fits in half the new table (the other half is
     * the writers' budget, see kv__resize_prepare). What t holds is at
     * most its non-empty slots, and at most its live keys plus the inserts
     * writers may still make in it (reserved, or unannounced: plenty()).
     * So a table
     * whose slots are mostly tombstones (a cache that evicts or a store
     * that deletes as much as it inserts) is rebuilt at the same size
     * rather than doubled again and again. Never below the current size. */
    size_t want = 2 * (live + n);
    size_t used = atomic_load(&t->used);
    size_t may_hold = live + margin + 64 + atomic_load(&t->reserved) +
                      (size_t)kv__thread_bound() * KV__UNRESERVED_MAX;
    size_t held = 2 * (used < may_hold ? used : may_hold);
    if (want < held)
        want = held;
    if (want < kv__table_size(t))
        want = kv__table_size(t);
    return (size_t)1 << bits_for(want);
}

uint64_t kv__resize_growth(kv_store *s, size_t window)
{
    /* The admission's estimate: a segment's share of the store's live keys
     * (hashes spread keys evenly), not a count of its slots; the per-thread
     * counters' sum may be a moment behind. Summed only if needed. */
    size_t live = 0;
    uint64_t most = 0;
    for (unsigned g = 0; g < kv__nsegs(s); g++) {
        kv__table *t = kv__seg_table(s, g);
        if (atomic_load_explicit(&t->next, memory_order_relaxed) ||
            atomic_load_explicit(&t->used, memory_order_relaxed) + window +
                    kv__table_size(t) / 64 < t->grow_at)
            continue;
        if (!live)
            live = live_keys(s) / kv__nsegs(s) + 1;
        size_t next = next_slots(t, live, live / 8, 16);
        if (next > kv__table_size(t) && (next - kv__table_size(t)) * sizeof t->slots[0] > most)
            most = (next - kv__table_size(t)) * sizeof t->slots[0];
    }
    return most;
}

/* The running resize: its segment's table t and the table being filled,
 * or false if none is running (or it is being set up or just ended). */
static bool running(kv_store *s, unsigned *seg, kv__table **t, kv__table **nt)
{
    int g = atomic_load(&s->resizing);
    if (g == NO_RESIZE)
        return false;
    *seg = (unsigned)g;
    *t = kv__seg_table(s, g);
    *nt = atomic_load(&(*t)->next);
    return *nt != NULL;
}

/* Copies one live slot's key into nt. Holds the key's stripe lock, so the
 * word cannot change under it; retries if the slot now holds another key. */
static void migrate_slot(kv_store *s, kv__table *t, kv__table *nt, size_t i)
{
    for (;;) {
        uintptr_t v = atomic_load(&t->slots[i]);
        if (v == KV__SLOT_EMPTY || v == KV__SLOT_TOMB) {
            uintptr_t mark = v == KV__SLOT_EMPTY ? KV__SLOT_MOVED_EMPTY : KV__SLOT_MOVED;
            if (atomic_compare_exchange_strong(&t->slots[i], &v, mark))
                return;
            continue;
        }
        if (!kv__slot_is_key(v))
            return; /* already moved */
        const kv__item *key = kv__slot_key_item(v);
        uint64_t h = kv__hash(kv__item_key(key), kv__item_klen(key));
        unsigned stripe = kv__stripe_of(h);
        kv__lock_take(&s->stripes[stripe].lock);
        uintptr_t now = atomic_load(&t->slots[i]);
        bool same_stripe = kv__slot_is_key(now);
        if (same_stripe && now != v) {
            const kv__item *k2 = kv__slot_key_item(now);
            same_stripe = kv__stripe_of(kv__hash(kv__item_key(k2), kv__item_klen(k2))) == stripe;
            if (same_stripe)
                h = kv__hash(kv__item_key(k2), kv__item_klen(k2));
        }
        if (same_stripe) {
            kv__loc loc;
            kv__table_insert(nt, h, now, false, &loc);
            atomic_store(&t->slots[i], KV__SLOT_MOVED);
        }
        kv__lock_release(&s->stripes[stripe].lock);
        if (same_stripe)
            return;
    }
}

/* Migrates one chunk of segment seg's table t into nt; returns false if
 * there was none left to claim. Caller is in a read section, which keeps t
 * allocated. */
static bool migrate_chunk(kv_store *s, kv__slot *slot, unsigned seg, kv__table *t,
                          kv__table *nt)
{
    /* Room to retire t, reserved before claiming so that whoever finishes
     * the last chunk can always retire it. */
    if (kv__ebr_reserve(slot, 1) != KV_OK)
        return false;
    size_t size = kv__table_size(t);
    size_t start = atomic_fetch_add(&t->migrate_claim, MIGRATE_CHUNK);
    if (start >= size)
        return false;
    size_t end = start + MIGRATE_CHUNK < size ? start + MIGRATE_CHUNK : size;
    for (size_t i = start; i < end; i++)
        migrate_slot(s, t, nt, i);
    if (atomic_fetch_add(&t->migrate_done, end - start) + (end - start) == size) {
        /* Last chunk: switch over. Readers still in t follow t->next. The
         * next resize may start once the segment shows nt. */
        kv__seg_set(s, seg, nt);
        kv__ebr_retire(&s->ebr, slot, t, kv__table_retired_free, kv__table_footprint(t));
        atomic_store(&s->resizing, NO_RESIZE);
    }
    return true;
}

/* Migrates chunks of the running resize, whichever segment it is in, until
 * none is left to claim or `chunks` were done. In a read section. */
static void help_running(kv_store *s, kv__slot *slot, size_t chunks)
{
    unsigned g;
    kv__table *t, *nt;
    if (!running(s, &g, &t, &nt))
        return;
    while (chunks-- > 0 && migrate_chunk(s, slot, g, t, nt))
        ;
}

void kv__resize_help(kv_store *s, kv__slot *slot, size_t chunks)
{
    if (atomic_load_explicit(&s->resizing, memory_order_relaxed) == NO_RESIZE)
        return; /* the common case: nothing to pin for */
    kv__ebr_pin(&s->ebr, slot);
    help_running(s, slot, chunks);
    kv__ebr_unpin(slot);
}

enum { STARTED, BUSY, NO_ROOM };

/* Hangs a bigger (or, if t is mostly tombstones, a clean) table on segment
 * seg's table t, if no other resize runs; else helps that one (BUSY: the
 * caller tries again). STARTED also when t is no longer the segment's
 * current table (someone else resized it). NO_ROOM: out of memory. */
static int start_resize(kv_store *s, kv__slot *slot, unsigned seg, kv__table *t, size_t n)
{
    int idle = NO_RESIZE;
    if (!atomic_compare_exchange_strong(&s->resizing, &idle, (int)seg)) {
        help_running(s, slot, SIZE_MAX);
        if (atomic_load(&s->resizing) != NO_RESIZE)
            sched_yield(); /* others hold its last chunks, or set it up */
        return BUSY;
    }
    /* Only the holder of s->resizing hangs a next on a table. */
    if (kv__seg_table(s, seg) != t || atomic_load(&t->next)) {
        atomic_store(&s->resizing, NO_RESIZE);
        return STARTED;
    }
    /* The segment's keys, counted: those its writers inserted while the
     * count ran may lie behind it (they may have released their
     * reservations already), so they are added; a small margin on top. */
    size_t before = atomic_load(&t->inserted);
    size_t live = count_keys(t);
    live += atomic_load(&t->inserted) - before;
    kv__table *nt = kv__table_new(bits_for(next_slots(t, live, live / 32, n)), kv__huge_pages(s));
    if (!nt) {
        atomic_store(&s->resizing, NO_RESIZE);
        return NO_ROOM;
    }
    atomic_store(&t->next, nt);
    atomic_fetch_add_explicit(&s->resizes, 1, memory_order_relaxed);
    return STARTED;
}

/* Tries to reserve room for n writer inserts in table x, whose writers'
 * inserts may reach `limit` slots in all. */
static bool reserve(kv__table *x, size_t used, size_t n, size_t limit)
{
    size_t r = atomic_fetch_add(&x->reserved, n) + n;
    if (used + r <= limit)
        return true;
    atomic_fetch_sub(&x->reserved, n);
    return false;
}

/* True if x has room for n more writer inserts even if every thread that
 * uses libkv inserted KV__UNRESERVED_MAX keys unannounced right now: then
 * a small write need not reserve (no shared counter to bump). */
static bool plenty(size_t used, kv__table *x, size_t n, size_t limit)
{
    size_t worst = used + atomic_load_explicit(&x->reserved, memory_order_relaxed) +
                   (size_t)kv__thread_bound() * KV__UNRESERVED_MAX;
    return n <= KV__UNRESERVED_MAX && worst <= limit;
}

kv__table *kv__resize_prepare(kv_store *s, kv__slot *slot, unsigned seg, size_t n,
                              size_t *reserved)
{
    /* Every writer that may insert reserves room first, so no table ever
     * fills up however many writers race (a full table would end no probe
     * chain). With no resize running in the segment, a writer reserves in
     * its current table up to its grow mark and starts a resize past it.
     * During a resize it reserves in the new table: migration fills at
     * most half of it (start_resize sizes it so), writers get a quarter;
     * past that they help copy and, if others hold the last chunks, yield
     * until the copy is done. Caller is in a read section and holds no
     * stripe lock. */
    for (;;) {
        kv__table *t = kv__seg_table(s, seg);
        kv__table *nt = atomic_load(&t->next);
        if (!nt) {
            size_t used = atomic_load(&t->used);
            *reserved = 0;
            if (plenty(used, t, n, t->grow_at))
                return t;
            *reserved = n;
            if (reserve(t, used, n, t->grow_at))
                return t;
            if (start_resize(s, slot, seg, t, n) == NO_ROOM) {
                /* Out of memory for a bigger table: go on in this one up to
                 * 7/8 full, then refuse the write. */
                if (reserve(t, used, n, kv__table_size(t) - kv__table_size(t) / 8))
                    return t;
                return NULL;
            }
            continue;
        }
        size_t chunks = 1 + n / 32;
        while (chunks-- > 0 && migrate_chunk(s, slot, seg, t, nt))
            ;
        size_t ins = atomic_load(&nt->inserted);
        *reserved = 0;
        if (plenty(ins, nt, n, kv__table_size(nt) / 4))
            return nt;
        *reserved = n;
        if (reserve(nt, ins, n, kv__table_size(nt) / 4))
            return nt;
        while (migrate_chunk(s, slot, seg, t, nt))
            ;
        if (kv__seg_table(s, seg) == t)
            sched_yield(); /* another writer is copying the last chunks */
    }
}

void kv__resize_release(kv__table *reserved_in, size_t reserved)
{
    if (reserved)
        atomic_fetch_sub(&reserved_in->reserved, reserved);
}

bool kv__resize_prepare_each(kv_store *s, kv__slot *slot, kv__reservations *r)
{
    for (unsigned g = 0; g < r->nsegs; g++) {
        r->in[g] = NULL;
        r->n[g] = 0;
    }
    for (unsigned g = 0; g < r->nsegs; g++) {
        if (r->want[g] && !(r->in[g] = kv__resize_prepare(s, slot, g, r->want[g], &r->n[g]))) {
            kv__resize_release_each(r);
            return false;
        }
    }
    return true;
}

void kv__resize_release_each(kv__reservations *r)
{
    for (unsigned g = 0; g < r->nsegs; g++) {
        if (r->in[g])
            kv__resize_release(r->in[g], r->n[g]);
        r->in[g] = NULL;
        r->n[g] = 0;
    }
}

size_t kv__index_slots(kv_store *s)
{
    size_t slots = 0;
    for (unsigned g = 0; g < kv__nsegs(s); g++) {
        kv__table *t = kv__seg_table(s, g), *n;
        while ((n = atomic_load(&t->next)) != NULL)
            t = n;
        slots += kv__table_size(t);
    }
    return slots;
}

size_t kv__index_bytes(kv_store *s, size_t *moving)
{
    size_t bytes = 0, old = 0;
    for (unsigned g = 0; g < kv__nsegs(s); g++) {
        for (kv__table *t = kv__seg_table(s, g); t; t = atomic_load(&t->next)) {
            bytes += kv__table_footprint(t);
            if (atomic_load(&t->next))
                old += kv__table_footprint(t);
        }
    }
    if (moving)
        *moving = old;
    return bytes;
}
