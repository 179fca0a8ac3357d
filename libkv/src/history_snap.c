/*
 * history_snap.c - history in snapshots and copies: what a snapshot writes
 * of each key's history and loading it back at recovery (docs/storage.md),
 * and the same handed to a replica (kv_history_dump, kv_history_reset,
 * kv_history_load: kvd's Raft snapshots).
 */
#include <pthread.h>
#include <stdlib.h>
#include <string.h>

#include "files.h"
#include "hash.h"
#include "history_impl.h"

/* ---- snapshots and recovery --------------------------------------------------- */

bool kv__hist_entry_meta(kv_store *s, const void *key, size_t klen, uint64_t rev,
                         uint64_t *create, uint64_t *version)
{
    uint64_t hash = kv__hash(key, klen);
    unsigned st = kv__stripe_of(hash);
    *create = rev;
    *version = 1;
    kv__stripes_lock(s->stripes, &st, 1);
    const kv__hkey *r = kv__hmap_find(&s->hist->maps[st], hash, key, klen);
    if (r && r->live && r->cur_rev == rev) {
        *create = r->cur_create;
        *version = r->cur_version;
    } else {
        for (const kv__hent *e = r ? r->newest : NULL; e && e->rev >= rev; e = kv__hent_older(r, e))
            if (e->rev == rev) {
                *create = e->create_rev;
                *version = e->version;
            }
    }
    kv__stripes_unlock(s->stripes, &st, 1);
    return *create != rev || *version != 1;
}

/* Makes *ents (small, or malloc'ed) hold n versions. False: no memory. */
static bool room(kv_hist_version **ents, kv_hist_version *small, size_t *cap, size_t n)
{
    if (n <= *cap)
        return true;
    kv_hist_version *e = malloc(n * sizeof *e);
    if (!e)
        return false;
    if (*ents != small)
        free(*ents);
    *ents = e;
    *cap = n;
    return true;
}

int kv__hist_snapshot(kv_store *s, bool with_meta, kv__hist_key_fn fn,
                      int (*after_stripe)(void *ctx), void *ctx)
{
    kv_hist_version small[16], *ents = small;
    size_t cap = 16;
    int rc = KV_OK;
    for (unsigned st = 0; st < KV__NSTRIPES && rc == KV_OK; st++) {
        kv__hmap *m = &s->hist->maps[st];
        kv__stripes_lock(s->stripes, &st, 1);
        for (size_t b = 0; m->buckets && b < ((size_t)1 << m->bits) && rc == KV_OK; b++) {
            for (const kv__hkey *r = m->buckets[b]; r && rc == KV_OK; r = r->next) {
                bool meta = with_meta && r->live &&
                            (r->cur_create != r->cur_rev || r->cur_version != 1);
                if (!r->nent && !r->floor && !meta)
                    continue; /* only metadata: the entry of the key has it */
                if (!room(&ents, small, &cap, r->nent)) {
                    rc = KV_NO_MEMORY;
                    break;
                }
                size_t n = 0;
                for (const kv__hent *e = r->newest; e; e = kv__hent_older(r, e))
                    ents[n++] = (kv_hist_version){e->rev,
                                             e->until,
                                             e->create_rev,
                                             e->version,
                                             kv__item_expire_at(e->item),
                                             kv__item_value(e->item),
                                             kv__item_vlen(e->item)};
                kv_key_history h = {.key = r->key, .klen = r->klen, .floor = r->floor,
                                    .versions = ents, .nversions = n};
                if (meta) {
                    h.revision = r->cur_rev;
                    h.create_revision = r->cur_create;
                    h.version = r->cur_version;
                }
                rc = fn(ctx, &h);
            }
        }
        kv__stripes_unlock(s->stripes, &st, 1);
        if (rc == KV_OK && after_stripe)
            rc = after_stripe(ctx);
    }
    if (ents != small)
        free(ents);
    return rc;
}

/* One key's history as it was at rev (stripe locked, history held since
 * rev: nothing a read at rev needs has been dropped). Versions are newest
 * first and each one's `until` is the revision that replaced it, so the
 * versions replaced by rev are the older end of the list, and the one
 * visible at rev (if the key was replaced or deleted after rev) is the
 * entry just before them. Returns false when the key is to be left out,
 * as kv__hist_snapshot leaves it out. */
static bool key_at(const kv__hkey *r, uint64_t rev, kv_hist_version *ents, size_t *n,
                   kv_key_history *h)
{
    uint64_t mrev = 0, mcreate = 0, mversion = 0;
    if (r->live && r->cur_rev <= rev) {
        mrev = r->cur_rev;
        mcreate = r->cur_create;
        mversion = r->cur_version;
    } else {
        for (const kv__hent *e = r->newest; e; e = kv__hent_older(r, e))
            if (e->rev <= rev) {
                if (rev < e->until) {
                    mrev = e->rev;
                    mcreate = e->create_rev;
                    mversion = e->version;
                }
                break;
            }
    }
    *n = 0;
    for (const kv__hent *e = r->newest; e; e = kv__hent_older(r, e))
        if (e->until <= rev)
            ents[(*n)++] = (kv_hist_version){e->rev,
                                             e->until,
                                             e->create_rev,
                                             e->version,
                                             kv__item_expire_at(e->item),
                                             kv__item_value(e->item),
                                             kv__item_vlen(e->item)};
    bool meta = mrev && (mcreate != mrev || mversion != 1);
    if (!*n && !r->floor && !meta)
        return false;
    *h = (kv_key_history){.key = r->key, .klen = r->klen, .floor = r->floor,
                          .versions = ents, .nversions = *n};
    if (meta) {
        h->revision = mrev;
        h->create_revision = mcreate;
        h->version = mversion;
    }
    return true;
}

int kv__hist_snapshot_at(kv_store *s, uint64_t rev, kv_history_fn fn, void *ctx)
{
    kv_hist_version small[16], *ents = small;
    size_t cap = 16;
    int rc = KV_OK;
    bool stopped = false;
    for (unsigned st = 0; st < KV__NSTRIPES && rc == KV_OK && !stopped; st++) {
        kv__hmap *m = &s->hist->maps[st];
        kv__stripes_lock(s->stripes, &st, 1);
        for (size_t b = 0; m->buckets && b < ((size_t)1 << m->bits) && rc == KV_OK && !stopped;
             b++) {
            for (const kv__hkey *r = m->buckets[b]; r && rc == KV_OK && !stopped; r = r->next) {
                if (!room(&ents, small, &cap, r->nent)) {
                    rc = KV_NO_MEMORY;
                    break;
                }
                size_t n;
                kv_key_history h;
                if (key_at(r, rev, ents, &n, &h))
                    stopped = fn(ctx, &h) != 0;
            }
        }
        kv__stripes_unlock(s->stripes, &st, 1);
    }
    if (ents != small)
        free(ents);
    return rc;
}

/* The key's record, made if it has none (recovery; stripe locked). */
static kv__hkey *record_for(kv_store *s, kv__slot *slot, uint64_t hash, const void *key,
                            size_t klen)
{
    kv__hmap *m = &s->hist->maps[kv__stripe_of(hash)];
    kv__hkey *r = kv__hmap_find(m, hash, key, klen);
    if (r)
        return r;
    if (!m->buckets) {
        if (!(m->buckets = kv__hmap_buckets_new(KV__HMAP_MIN_BITS)))
            return NULL;
        m->bits = KV__HMAP_MIN_BITS;
    }
    if (!(r = kv__hkey_new(s, slot, klen)))
        return NULL;
    *r = (kv__hkey){.hash = hash, .klen = (uint32_t)klen};
    memcpy(r->key, key, klen);
    kv__item *cur = kv__hist_slot_item(s, hash, key, klen);
    r->live = cur != NULL;
    if (cur) /* the key's item links its record from now on (item.h) */
        /* release: kv__hist_prefetch_ahead reads the record it finds */
        atomic_store_explicit(kv__item_link(cur, s->item_pre), r, memory_order_release);
    kv__hmap_insert(m, r);
    kv__count(slot, KV__C_HIST_BYTES, kv__hkey_bytes(r));
    return r;
}

int kv__hist_set_meta(kv_store *s, const void *key, size_t klen, uint64_t rev,
                      uint64_t create, uint64_t version)
{
    kv__slot *slot = kv__slot_get(&s->slots);
    if (!slot)
        return KV_NO_MEMORY;
    uint64_t hash = kv__hash(key, klen);
    unsigned st = kv__stripe_of(hash);
    int rc = KV_OK;
    kv__ebr_pin(&s->ebr, slot);
    kv__stripes_lock(s->stripes, &st, 1);
    const kv__item *cur = kv__hist_slot_item(s, hash, key, klen);
    /* only for the version the key has (a later change may be loaded) */
    if (cur && kv__item_rev(cur) == rev) {
        kv__hkey *r = record_for(s, slot, hash, key, klen);
        if (r) {
            r->live = true;
            r->cur_rev = rev;
            r->cur_create = create;
            r->cur_version = version;
        } else {
            rc = KV_NO_MEMORY;
        }
    }
    kv__stripes_unlock(s->stripes, &st, 1);
    kv__ebr_unpin(slot);
    return rc;
}

int kv__hist_load_key(kv_store *s, const void *key, size_t klen, uint64_t floor,
                      const kv_hist_version *ents, size_t n)
{
    kv__slot *slot = kv__slot_get(&s->slots);
    if (!slot)
        return KV_NO_MEMORY;
    uint64_t hash = kv__hash(key, klen);
    unsigned st = kv__stripe_of(hash);
    int rc = KV_OK;
    kv__ebr_pin(&s->ebr, slot);
    kv__stripes_lock(s->stripes, &st, 1);
    kv__hkey *r = record_for(s, slot, hash, key, klen);
    if (!r)
        rc = KV_NO_MEMORY;
    if (r && floor > r->floor)
        r->floor = floor;
    /* oldest first, each below what the record has (a change replayed
     * before this block may already have put newer ones in) */
    for (size_t i = n; rc == KV_OK && i-- > 0;) {
        const kv_hist_version *x = &ents[i];
        bool have = false;
        for (const kv__hent *e = r->newest; e && !have; e = kv__hent_older(r, e))
            have = e->rev == x->revision;
        if (have)
            continue;
        kv__hent *e = kv__hent_new(s, slot);
        kv__item *it = e ? kv__item_new_pre(&s->slab, &slot->cache, s->item_pre, key, klen,
                                            x->value, x->vlen, x->expire_at_ms)
                         : NULL;
        if (!it) {
            if (e)
                kv__hent_free(slot, e);
            rc = KV_NO_MEMORY;
            break;
        }
        kv__item_set_rev(it, x->revision);
        *e = (kv__hent){.rev = x->revision, .until = x->until, .create_rev = x->create_revision,
                        .version = x->version, .item = it,
                        .footprint = (uint32_t)kv__item_footprint_pre(it, s->item_pre)};
        /* insert in revision order (newest first), after `newer` (the
         * last version newer than it; NULL: e is the newest) */
        kv__hent *newer = NULL;
        for (kv__hent *y = r->newest; y && y->rev > x->revision; y = kv__hent_older(r, y))
            newer = y;
        kv__hent *below = newer ? kv__hent_older(r, newer) : r->newest;
        e->older = below;
        e->newer = newer;
        e->newer_gap = newer ? kv__hent_gap(e->until, newer->until) : KV__GAP_UNKNOWN;
        if (below) {
            below->newer = e;
            below->newer_gap = kv__hent_gap(below->until, e->until);
        } else {
            kv__hkey_set_oldest(r, e);
            r->oldest_until = e->until;
        }
        if (newer)
            newer->older = e;
        else {
            kv__hkey_set_newest(r, e);
            r->newest_until = e->until;
        }
        r->nent++;
        kv__count(slot, KV__C_HIST_VERSIONS, 1);
        kv__count(slot, KV__C_HIST_BYTES, kv__hent_bytes(s, e));
    }
    /* a store reopened with a smaller per-key bound keeps the newest */
    uint32_t max = s->hist->max_versions;
    while (rc == KV_OK && max && r->nent > max && kv__ebr_reserve(slot, 1) == KV_OK)
        kv__hist_drop_oldest(s, slot, r, true);
    kv__stripes_unlock(s->stripes, &st, 1);
    kv__ebr_unpin(slot);
    return rc;
}

/* ---- copies for replicas ------------------------------------------------------ */

typedef struct dump_ctx {
    kv_history_fn fn;
    void *ctx;
    bool stopped;
} dump_ctx;

static int dump_key(void *ctx, const kv_key_history *h)
{
    dump_ctx *d = ctx;
    if (d->fn(d->ctx, h) == 0)
        return KV_OK;
    d->stopped = true;
    return -1;
}

int kv_history_dump(kv_store *s, kv_history_fn fn, void *ctx)
{
    if (!s)
        return KV_INVALID_ARGUMENT;
    if (!s->hist)
        return KV_UNSUPPORTED;
    if (!fn)
        return KV_INVALID_ARGUMENT;
    dump_ctx d = {fn, ctx, false};
    int rc = kv__hist_snapshot(s, true, dump_key, NULL, &d);
    return d.stopped ? KV_OK : rc;
}

int kv_history_reset(kv_store *s, uint64_t compact_rev)
{
    if (!s)
        return KV_INVALID_ARGUMENT;
    if (!s->hist)
        return KV_UNSUPPORTED;
    kv__slot *slot = kv__slot_get(&s->slots);
    if (!slot)
        return KV_NO_MEMORY;
    kv__hist *h = s->hist;
    int rc = KV_OK;
    pthread_mutex_lock(&h->compact_mu);
    for (unsigned st = 0; st < KV__NSTRIPES && rc == KV_OK; st++) {
        kv__hmap *m = &h->maps[st];
        kv__stripes_lock(s->stripes, &st, 1);
        kv__ebr_pin(&s->ebr, slot); /* kv__hist_slot_item reads the index */
        for (size_t b = 0; m->buckets && b < ((size_t)1 << m->bits) && rc == KV_OK; b++) {
            kv__hkey *r = m->buckets[b];
            while (r && rc == KV_OK) {
                kv__hkey *next = r->next;
                while (r->oldest && (rc = kv__ebr_reserve(slot, 1)) == KV_OK)
                    kv__hist_drop_oldest(s, slot, r, false);
                if (rc == KV_OK && (rc = kv__ebr_reserve(slot, 1)) == KV_OK)
                    kv__hist_record_free(s, slot, m, r,
                                         kv__hist_slot_item(s, r->hash, r->key, r->klen));
                r = next;
            }
        }
        kv__ebr_unpin(slot);
        kv__stripes_unlock(s->stripes, &st, 1);
        kv__ebr_collect(&s->ebr, slot);
    }
    if (rc == KV_OK)
        atomic_store(&h->compact_rev, compact_rev);
    pthread_mutex_unlock(&h->compact_mu);
    return rc;
}

int kv_history_load(kv_store *s, const kv_key_history *h)
{
    if (!s || !h)
        return KV_INVALID_ARGUMENT;
    if (!s->hist)
        return KV_UNSUPPORTED;
    int rc = kv__check_key(s, h->key, h->klen);
    if (rc != KV_OK)
        return rc;
    if (h->nversions && !h->versions)
        return KV_INVALID_ARGUMENT;
    for (size_t i = 0; i < h->nversions; i++) {
        const kv_hist_version *v = &h->versions[i];
        if (v->revision == 0 || v->until <= v->revision || (i && v->until > h->versions[i - 1].revision) ||
            (v->vlen && !v->value))
            return KV_INVALID_ARGUMENT;
        if ((rc = kv__check_value(s, v->value, v->vlen)) != KV_OK)
            return rc;
    }
    if (h->revision &&
        (rc = kv__hist_set_meta(s, h->key, h->klen, h->revision, h->create_revision,
                                h->version)) != KV_OK)
        return rc;
    if (!h->nversions && !h->floor)
        return KV_OK;
    return kv__hist_load_key(s, h->key, h->klen, h->floor, h->versions, h->nversions);
}
