/*
 * history.c - where earlier values of keys live (history.h): the
 * per-stripe maps of keys with history, what a change does to them (the
 * write path's part), and opening and closing a store's history. Reading
 * the past is history_read.c, rollback history_rollback.c, compaction
 * history_compact.c, snapshots history_snap.c.
 */
#include <assert.h>
#include <errno.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "history_impl.h"

/* ---- the maps ------------------------------------------------------------ */

_Static_assert(sizeof(kv__hent) == 64, "a version is one cache line's worth");


kv__hkey *kv__hmap_find(const kv__hmap *m, uint64_t hash, const void *key, size_t klen)
{
    if (!m->buckets)
        return NULL;
    for (kv__hkey *r = m->buckets[kv__hmap_bucket(m, hash)]; r; r = r->next)
        if (r->hash == hash && r->klen == klen && memcmp(r->key, key, klen) == 0)
            return r;
    return NULL;
}

kv__hkey **kv__hmap_buckets_new(unsigned bits)
{
    return calloc((size_t)1 << bits, sizeof(kv__hkey *));
}

void kv__hmap_buckets_free(kv__hkey **b)
{
    free(b);
}

/* Starts the misses of the versions kv__hist_commit links to (the
 * newest) and drops from (the oldest). Under the record's stripe lock, or
 * pinned without it (kv__hist_prefetch_ahead): the two are read
 * atomically, as the writers store them. */
static void prefetch_versions(const kv__hkey *r)
{
    const kv__hent *newest = __atomic_load_n(&r->newest, __ATOMIC_RELAXED);
    const kv__hent *oldest = __atomic_load_n(&r->oldest, __ATOMIC_RELAXED);
    if (newest)
        kv__hent_prefetch(newest);
    if (oldest && oldest != newest)
        kv__hent_prefetch(oldest);
}

void kv__hist_prefetch_linked(const kv_store *s, const kv__item *it)
{
    const kv__hkey *r =
        atomic_load_explicit(kv__item_link(it, s->item_pre), memory_order_relaxed);
    if (r) { /* perhaps freed since: a prefetch does not mind */
        __builtin_prefetch(r);
        __builtin_prefetch((const char *)r + 64);
    }
}

void kv__hist_prefetch_ahead(const kv_store *s, const kv__item *it)
{
    /* acquire: a loader that made the record stored the link after
     * filling the record in (history_snap.c) */
    const kv__hkey *r =
        atomic_load_explicit(kv__item_link(it, s->item_pre), memory_order_acquire);
    /* Retired through the epochs, so readable while pinned, even if it was
     * freed since the link was read; its versions are only prefetched (a
     * dropped one is freed at once: prefetching it does no harm). */
    if (r)
        prefetch_versions(r);
}

void kv__hist_prefetch(const kv_store *s, const kv__item *old)
{
    if (!old)
        return;
    const kv__hkey *r =
        atomic_load_explicit(kv__item_link(old, s->item_pre), memory_order_relaxed);
    /* The record is on its way (kv_prefetch_writes started it) or comes
     * now; the lock is held, so its fields can be read. */
    if (r)
        prefetch_versions(r);
}

/* Doubles the buckets; on out-of-memory the chains just grow longer. */
static void map_grow(kv__hmap *m)
{
    unsigned bits = m->bits + 1;
    kv__hkey **b = kv__hmap_buckets_new(bits);
    if (!b)
        return;
    for (size_t i = 0; i < ((size_t)1 << m->bits); i++) {
        kv__hkey *r = m->buckets[i];
        while (r) {
            kv__hkey *next = r->next;
            size_t j = (size_t)(r->hash >> (64 - bits));
            r->next = b[j];
            b[j] = r;
            r = next;
        }
    }
    kv__hmap_buckets_free(m->buckets);
    m->buckets = b;
    m->bits = bits;
}

void kv__hmap_insert(kv__hmap *m, kv__hkey *r)
{
    if (m->count >= ((size_t)1 << m->bits))
        map_grow(m);
    size_t i = kv__hmap_bucket(m, r->hash);
    r->next = m->buckets[i];
    m->buckets[i] = r;
    m->count++;
}

void kv__hmap_remove(kv__hmap *m, kv__hkey *r)
{
    kv__hkey **p = &m->buckets[kv__hmap_bucket(m, r->hash)];
    while (*p != r)
        p = &(*p)->next;
    *p = r->next;
    m->count--;
}

/* ---- accounting and dropping -------------------------------------------- */

size_t kv__hent_bytes(const kv_store *s, const kv__hent *e)
{
    (void)s;
    return sizeof *e + e->footprint;
}

size_t kv__hkey_bytes(const kv__hkey *r)
{
    size_t n = sizeof *r + r->klen;
    return kv__slab_fits(n) ? kv__slab_block(n) : n + sizeof(size_t);
}

/* Versions and key records come from the store's slab (slab.h), as items
 * do: no malloc header, and no glibc fastbins for a compaction to fill. A
 * sweep that free()d millions of nodes a writer had malloc()ed left them in
 * that writer's arena, and the writer's next big malloc consolidated them
 * all while the write waited (330 ms in bench/history's compaction run). */
kv__hent *kv__hent_new(kv_store *s, kv__slot *slot)
{
    return kv__slab_alloc(&s->slab, &slot->cache, sizeof(kv__hent));
}

void kv__hent_free(kv__slot *slot, kv__hent *e)
{
    kv__slab_free(&slot->cache, e, sizeof *e);
}

kv__hkey *kv__hkey_new(kv_store *s, kv__slot *slot, size_t klen)
{
    size_t n = sizeof(kv__hkey) + klen;
    return kv__slab_fits(n) ? kv__slab_alloc(&s->slab, &slot->cache, n) : malloc(n);
}

void kv__hkey_free(kv__slot *slot, kv__hkey *r)
{
    size_t n = sizeof *r + r->klen;
    if (kv__slab_fits(n))
        kv__slab_free(&slot->cache, r, n);
    else
        free(r);
}

/* Unlinks r's oldest entry and retires its item (a retire must be
 * reserved); raise: the per-key bound dropped it, so reads of the key
 * below its `until` can no longer be answered. */
void kv__hist_drop_oldest(kv_store *s, kv__slot *slot, kv__hkey *r, bool raise)
{
    kv__hent *e = r->oldest;
    uint64_t until = r->oldest_until;
    kv__hkey_set_oldest(r, e->newer); /* its `older` is left: kv__hent_older */
    if (!r->oldest)
        kv__hkey_set_newest(r, NULL);
    else if (r->oldest == r->newest)
        r->oldest_until = r->newest_until;
    else if (e->newer_gap != KV__GAP_UNKNOWN) /* the next one's line not read */
        r->oldest_until = until + e->newer_gap;
    else
        r->oldest_until = r->oldest->until;
    r->nent--;
    if (raise && until > r->floor)
        r->floor = until;
    size_t bytes = kv__hent_bytes(s, e);
    kv__count(slot, KV__C_HIST_VERSIONS, (uint64_t)-1);
    kv__count(slot, KV__C_HIST_BYTES, (uint64_t)0 - bytes);
    /* Lock-free readers that found the item before it was replaced may
     * still be copying it: it goes the way every replaced item goes. */
    kv__ebr_retire(&s->ebr, slot, e->item, kv__retired_item_fn(s),
                   e->footprint);
    kv__hent_free(slot, e);
}

/* A record that holds nothing a read needs goes: no entries, and the key
 * is absent or at version 1 (what a missing record means). cur: the item
 * in the key's slot, whose link (item.h) is cleared. */
void kv__hist_maybe_free(kv_store *s, kv__slot *slot, kv__hmap *m, kv__hkey *r,
                         const kv__item *cur)
{
    if (!kv__hkey_needed(r))
        kv__hist_record_free(s, slot, m, r, cur);
}

/* An epoch-retired record's free function: bytes is its size
 * (kv__hkey_free's n), so the free does not read it. */
static void retired_hkey_free(kv__slot *slot, void *r, size_t bytes)
{
    if (kv__slab_fits(bytes))
        kv__slab_free(&slot->cache, r, bytes);
    else
        free(r);
}

void kv__hist_record_free(kv_store *s, kv__slot *slot, kv__hmap *m, kv__hkey *r,
                          const kv__item *cur)
{
    if (cur)
        /* release: before the retire, as every unlink (ebr.h) */
        atomic_store_explicit(kv__item_link(cur, s->item_pre), NULL, memory_order_release);
    kv__hmap_remove(m, r);
    kv__count(slot, KV__C_HIST_BYTES, (uint64_t)0 - kv__hkey_bytes(r));
    kv__ebr_retire(&s->ebr, slot, r, retired_hkey_free, sizeof *r + r->klen);
}

/* ---- the write path ------------------------------------------------------ */

int kv__hist_prepare(kv_store *s, kv__slot *slot, uint64_t hash, const void *key, size_t klen,
                     const kv__item *old, kv__hist_prep *p)
{
    kv__hmap *m = &s->hist->maps[kv__stripe_of(hash)];
    /* The item the change replaces links the key's record (item.h): no
     * look in the map, and no miss on another key's record in the chain. */
    p->rec = old ? atomic_load_explicit(kv__item_link(old, s->item_pre), memory_order_relaxed)
                 : kv__hmap_find(m, hash, key, klen);
    assert(p->rec == kv__hmap_find(m, hash, key, klen));
    p->rec_new = false;
    p->ent = NULL;
    if (!old)
        return KV_OK; /* a key created: an existing record is updated */
    /* Again (kv__hist_prefetch started them right after the index lookup,
     * perhaps while the record was still on its way): dropping this
     * second hint cost about 1% of pipelined SETs in an A/B. */
    if (p->rec)
        prefetch_versions(p->rec);
    if (!m->buckets) {
        if (!(m->buckets = kv__hmap_buckets_new(KV__HMAP_MIN_BITS)))
            return KV_NO_MEMORY;
        m->bits = KV__HMAP_MIN_BITS;
    }
    if (!(p->ent = kv__hent_new(s, slot)))
        return KV_NO_MEMORY;
    if (!p->rec) {
        kv__hkey *r = kv__hkey_new(s, slot, klen);
        if (!r) {
            kv__hent_free(slot, p->ent);
            p->ent = NULL;
            return KV_NO_MEMORY;
        }
        *r = (kv__hkey){.hash = hash, .klen = (uint32_t)klen};
        memcpy(r->key, key, klen);
        p->rec = r;
        p->rec_new = true;
    }
    return KV_OK;
}

void kv__hist_unprepare(kv__slot *slot, kv__hist_prep *p)
{
    if (p->ent)
        kv__hent_free(slot, p->ent);
    if (p->rec_new)
        kv__hkey_free(slot, p->rec);
    *p = (kv__hist_prep){0};
}

void kv__hist_commit(kv_store *s, kv__slot *slot, kv__hist_prep *p, uint64_t hash,
                     kv__item *old, bool visible, kv__item *next, uint64_t rev, bool replay)
{
    kv__hist *h = s->hist;
    kv__hmap *m = &h->maps[kv__stripe_of(hash)];
    kv__hkey *r = p->rec;
    if (!r)
        return; /* a key created, with no history */
    uint64_t old_create = 0, old_version = 0;
    if (old) {
        /* Recovery may replay a change whose replaced version a snapshot
         * already put in history (with its metadata): found, not added.
         * Only then: the look costs a live write a cache miss on the
         * key's newest entry (7% of a busy kvd's SETs). */
        kv__hent *dup = NULL;
        for (kv__hent *x = replay ? r->newest : NULL; x && x->rev >= kv__item_rev(old);
             x = kv__hent_older(r, x))
            if (x->rev == kv__item_rev(old))
                dup = x;
        if (!p->rec_new && r->live && r->cur_rev == kv__item_rev(old)) {
            old_create = r->cur_create;
            old_version = r->cur_version;
        } else if (dup) {
            old_create = dup->create_rev;
            old_version = dup->version;
        } else {
            old_create = kv__item_rev(old);
            old_version = 1;
        }
        if (p->rec_new) {
            kv__hmap_insert(m, r);
            kv__count(slot, KV__C_HIST_BYTES, kv__hkey_bytes(r));
        }
        if (dup) {
            /* the item goes as a replaced item goes without history */
            kv__ebr_retire(&s->ebr, slot, old, kv__retired_item_fn(s),
                           kv__item_footprint_pre(old, s->item_pre));
            kv__hent_free(slot, p->ent);
            p->ent = NULL;
            old = NULL;
        }
    }
    if (old) {
        kv__hent *e = p->ent;
        *e = (kv__hent){.older = r->newest, .rev = kv__item_rev(old), .until = rev,
                        .create_rev = old_create, .version = old_version, .item = old,
                        .footprint = (uint32_t)kv__item_footprint_pre(old, s->item_pre),
                        .newer_gap = KV__GAP_UNKNOWN};
        /* Stores only into the newest version's line: the write does not
         * wait for it. */
        if (r->newest) {
            r->newest->newer = e;
            r->newest->newer_gap = kv__hent_gap(r->newest_until, rev);
        } else {
            kv__hkey_set_oldest(r, e);
            r->oldest_until = rev;
        }
        kv__hkey_set_newest(r, e);
        r->newest_until = rev;
        r->nent++;
        kv__count(slot, KV__C_HIST_VERSIONS, 1);
        kv__count(slot, KV__C_HIST_BYTES, kv__hent_bytes(s, e));
    }
    r->live = next != NULL;
    if (next) {
        /* an expired item was absent: the new value creates the key */
        bool had = old_version && visible;
        r->cur_rev = rev;
        r->cur_create = had ? old_create : rev;
        r->cur_version = had ? old_version + 1 : 1;
    }
    /* Drops: the oldest versions over the per-key bound (the key's floor
     * rises), and those no read at or after the compaction revision c
     * needs, KV__HIST_DROPS at most: the retires the change reserved. A
     * key further over (a store reopened with a smaller bound, a key
     * written rarely) comes down that many per change, and all the way
     * at the next sweep. None while history is held (a copy is being
     * made, history_copy.c): its release sweeps. c is read before the
     * hold: a c raised during a hold (kv__hist_compact_to raises it then,
     * under compact_mu, after the hold is in place) is only seen with the
     * hold, so a copy never misses a version above its own compaction
     * revision. */
    uint64_t c = atomic_load(&h->compact_rev);
    if (!atomic_load(&h->hold_rev)) {
        uint32_t maxv = h->max_versions;
        /* The decisions read only the record (oldest_until); the
         * version's own line is needed only to unlink it. */
        for (unsigned drops = 0; drops < KV__HIST_DROPS && r->oldest &&
                                 (r->oldest_until <= c || (maxv && r->nent > maxv));
             drops++)
            kv__hist_drop_oldest(s, slot, r, r->oldest_until > c);
    }
    kv__hist_maybe_free(s, slot, m, r, next);
    *p = (kv__hist_prep){0};
}

void kv__hist_floor(kv_store *s, uint64_t rev)
{
    if (!s->hist)
        return;
    uint64_t c = atomic_load(&s->hist->compact_rev);
    while (c < rev && !atomic_compare_exchange_weak(&s->hist->compact_rev, &c, rev))
        ;
}

/* ---- opening, closing, metrics ---------------------------------------------- */

int kv__hist_open(kv_store *s, const kv_config *cfg)
{
    if (!cfg->history)
        return KV_OK;
    if (cfg->history != 1)
        return KV_INVALID_ARGUMENT;
    kv__hist *h = calloc(1, sizeof *h);
    if (!h || !(h->maps = calloc(KV__NSTRIPES, sizeof *h->maps))) {
        free(h);
        return KV_NO_MEMORY;
    }
    h->max_versions = cfg->history_versions;
    h->max_bytes = cfg->history_bytes;
    h->max_age_s = cfg->history_age_s;
    h->sample_ms = TICK_MS;
    if ((uint64_t)h->max_age_s * 1000u / (NSAMPLES / 2) > h->sample_ms)
        h->sample_ms = (uint64_t)h->max_age_s * 1000u / (NSAMPLES / 2);
    atomic_init(&h->compact_rev, 0);
    pthread_mutex_init(&h->compact_mu, NULL);
    pthread_mutex_init(&h->mu, NULL);
    pthread_condattr_t ca;
    pthread_condattr_init(&ca);
    pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
    pthread_cond_init(&h->cv, &ca);
    pthread_condattr_destroy(&ca);
    s->hist = h;
    return KV_OK;
}

int kv__hist_start(kv_store *s)
{
    kv__hist *h = s->hist;
    if (!h || !(h->max_bytes || h->max_age_s))
        return KV_OK;
    if (pthread_create(&h->thread, NULL, kv__hist_compactor, s) != 0)
        return KV_NO_MEMORY;
    h->running = true;
    return KV_OK;
}

void kv__hist_close(kv_store *s)
{
    kv__hist *h = s->hist;
    if (!h)
        return;
    if (h->running) {
        pthread_mutex_lock(&h->mu);
        h->stop = true;
        pthread_cond_signal(&h->cv);
        pthread_mutex_unlock(&h->mu);
        pthread_join(h->thread, NULL);
    }
    for (unsigned st = 0; st < KV__NSTRIPES; st++) {
        kv__hmap *m = &h->maps[st];
        for (size_t b = 0; m->buckets && b < ((size_t)1 << m->bits); b++) {
            kv__hkey *r = m->buckets[b];
            while (r) {
                kv__hkey *next = r->next;
                kv__hent *e = r->newest;
                while (e) {
                    kv__hent *older = kv__hent_older(r, e);
                    /* slab blocks go with the slab's chunks */
                    kv__item_free_at_close(e->item, s->item_pre);
                    e = older;
                }
                if (!kv__slab_fits(sizeof *r + r->klen))
                    free(r);
                r = next;
            }
        }
        kv__hmap_buckets_free(m->buckets);
    }
    free(h->maps);
    pthread_mutex_destroy(&h->compact_mu);
    pthread_mutex_destroy(&h->mu);
    pthread_cond_destroy(&h->cv);
    free(h);
    s->hist = NULL;
}
