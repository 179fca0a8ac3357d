/*
 * resize.c - growing the index online (see table.h for the slot protocol).
 *
 * A resize starts when a table's non-empty slots pass 3/4 of it: a table
 * twice the live keys' need is hung on its `next`. From then on inserts go
 * to the new table and every writer, after releasing its locks, migrates a
 * chunk of slots; readers never do any of this work and never wait. The
 * writer that completes the last chunk switches the store to the new table
 * and retires the old one. Only one resize runs at a time.
 */
#include <sched.h>
#include <stdlib.h>

#include "hash.h"
#include "store.h"

#define MIGRATE_CHUNK 256u
#define MIN_SLOTS 1024u
#define KV__UNRESERVED_MAX 16u

static unsigned bits_for(size_t nslots)
{
    unsigned bits = 4;
    while (((size_t)1 << bits) < nslots)
        bits++;
    return bits;
}

static void sum_keys(kv__slot *slot, void *ctx)
{
    *(uint64_t *)ctx += atomic_load_explicit(&slot->counters[KV__C_KEYS],
                                             memory_order_relaxed);
}

size_t kv__resize_next_slots(kv_store *s, kv__table *t, size_t n)
{
    uint64_t live = 0;
    kv__slot_each(&s->slots, sum_keys, &live);
    if ((int64_t)live < 0)
        live = 0;
    /* Room for the live keys at half load, and at least twice what t holds
     * so everything migrated fits in half the new table (the other half is
     * the writers' budget, see kv__resize_prepare). What t holds is at
     * most its non-empty slots, and at most its live keys plus the inserts
     * writers may still make in it (reserved, or unannounced: plenty());
     * the margin covers counters a moment behind. So a table whose slots
     * are mostly tombstones (a cache that evicts or a store that deletes
     * as much as it inserts) is rebuilt at the same size rather than
     * doubled again and again. Never below the current size or MIN_SLOTS. */
    size_t want = 2 * ((size_t)live + n);
    size_t used = atomic_load(&t->used);
    size_t may_hold = (size_t)live + live / 8 + 64 + atomic_load(&t->reserved) +
                      (size_t)kv__thread_bound() * KV__UNRESERVED_MAX;
    size_t held = 2 * (used < may_hold ? used : may_hold);
    if (want < held)
        want = held;
    if (want < kv__table_size(t))
        want = kv__table_size(t);
    if (want < MIN_SLOTS)
        want = MIN_SLOTS;
    return (size_t)1 << bits_for(want);
}

/* Hangs a bigger (or, if t is mostly tombstones, a clean) table on t.
 * Returns false only on out-of-memory. */
static bool start_resize(kv_store *s, kv__table *t, size_t n)
{
    size_t want = kv__resize_next_slots(s, t, n);
    kv__table *nt = kv__table_new(bits_for(want));
    if (!nt)
        return false;
    kv__table *expected = NULL;
    if (!atomic_compare_exchange_strong(&t->next, &expected, nt))
        kv__table_free(nt);
    else
        atomic_fetch_add_explicit(&s->resizes, 1, memory_order_relaxed);
    return true;
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

/* Migrates one chunk; returns false if there was none left to claim.
 * Caller is in a read section, which keeps t allocated. */
static bool migrate_chunk(kv_store *s, kv__slot *slot, kv__table *t, kv__table *nt)
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
        /* Last chunk: switch over. Readers still in t follow t->next. */
        atomic_store(&s->table, nt);
        kv__ebr_retire(&s->ebr, slot, t, kv__table_retired_free, kv__table_footprint(t));
    }
    return true;
}

void kv__resize_help(kv_store *s, kv__slot *slot, size_t chunks)
{
    kv__ebr_pin(&s->ebr, slot);
    kv__table *t = atomic_load(&s->table);
    kv__table *nt = atomic_load(&t->next);
    while (nt && chunks-- > 0 && migrate_chunk(s, slot, t, nt))
        ;
    kv__ebr_unpin(slot);
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

kv__table *kv__resize_prepare(kv_store *s, kv__slot *slot, size_t n, size_t *reserved)
{
    /* Every writer that may insert reserves room first, so no table ever
     * fills up however many writers race (a full table would end no probe
     * chain). With no resize running, a writer reserves in the current
     * table up to its grow mark and starts a resize past it. During a
     * resize it reserves in the new table: migration fills at most half of
     * it (start_resize sizes it so), writers get a quarter; past that they
     * help copy and, if others hold the last chunks, yield until the copy
     * is done. Caller is in a read section and holds no stripe lock. */
    for (;;) {
        kv__table *t = atomic_load(&s->table);
        kv__table *nt = atomic_load(&t->next);
        if (!nt) {
            size_t used = atomic_load(&t->used);
            *reserved = 0;
            if (plenty(used, t, n, t->grow_at))
                return t;
            *reserved = n;
            if (reserve(t, used, n, t->grow_at))
                return t;
            if (!start_resize(s, t, n)) {
                /* Out of memory for a bigger table: go on in this one up to
                 * 7/8 full, then refuse the write. */
                if (reserve(t, used, n, kv__table_size(t) - kv__table_size(t) / 8))
                    return t;
                return NULL;
            }
            continue;
        }
        size_t chunks = 1 + n / 32;
        while (chunks-- > 0 && migrate_chunk(s, slot, t, nt))
            ;
        size_t ins = atomic_load(&nt->inserted);
        *reserved = 0;
        if (plenty(ins, nt, n, kv__table_size(nt) / 4))
            return nt;
        *reserved = n;
        if (reserve(nt, ins, n, kv__table_size(nt) / 4))
            return nt;
        while (migrate_chunk(s, slot, t, nt))
            ;
        if (atomic_load(&s->table) == t)
            sched_yield(); /* another writer is copying the last chunks */
    }
}

void kv__resize_release(kv__table *reserved_in, size_t reserved)
{
    if (reserved)
        atomic_fetch_sub(&reserved_in->reserved, reserved);
}
