/*
 * history_snap.c - history in snapshots: what a snapshot writes of each
 * key's history, and loading it back at recovery (docs/storage.md).
 */
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
        for (const kv__hent *e = r ? r->newest : NULL; e && e->rev >= rev; e = e->older)
            if (e->rev == rev) {
                *create = e->create_rev;
                *version = e->version;
            }
    }
    kv__stripes_unlock(s->stripes, &st, 1);
    return *create != rev || *version != 1;
}

int kv__hist_snapshot(kv_store *s, kv__hist_key_fn fn, int (*after_stripe)(void *ctx),
                      void *ctx)
{
    kv__snap_hent small[16], *ents = small;
    size_t cap = 16;
    int rc = KV_OK;
    for (unsigned st = 0; st < KV__NSTRIPES && rc == KV_OK; st++) {
        kv__hmap *m = &s->hist->maps[st];
        kv__stripes_lock(s->stripes, &st, 1);
        for (size_t b = 0; m->buckets && b < ((size_t)1 << m->bits) && rc == KV_OK; b++) {
            for (const kv__hkey *r = m->buckets[b]; r && rc == KV_OK; r = r->next) {
                if (!r->nent && !r->floor)
                    continue; /* only metadata: the entry of the key has it */
                if (r->nent > cap) {
                    kv__snap_hent *e = malloc(r->nent * sizeof *e);
                    if (!e) {
                        rc = KV_NO_MEMORY;
                        break;
                    }
                    if (ents != small)
                        free(ents);
                    ents = e;
                    cap = r->nent;
                }
                size_t n = 0;
                for (const kv__hent *e = r->newest; e; e = e->older)
                    ents[n++] = (kv__snap_hent){e->rev,
                                                e->until,
                                                e->create_rev,
                                                e->version,
                                                kv__item_expire_at(e->item),
                                                kv__item_value(e->item),
                                                kv__item_vlen(e->item)};
                rc = fn(ctx, r->key, r->klen, r->floor, ents, n);
            }
        }
        kv__stripes_unlock(s->stripes, &st, 1);
        if (rc == KV_OK)
            rc = after_stripe(ctx);
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
        if (!(m->buckets = calloc((size_t)1 << KV__HMAP_MIN_BITS, sizeof *m->buckets)))
            return NULL;
        m->bits = KV__HMAP_MIN_BITS;
    }
    if (!(r = kv__hkey_new(s, slot, klen)))
        return NULL;
    *r = (kv__hkey){.hash = hash, .klen = (uint32_t)klen};
    memcpy(r->key, key, klen);
    r->live = kv__hist_slot_item(s, hash, key, klen) != NULL;
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
                      const kv__snap_hent *ents, size_t n)
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
        const kv__snap_hent *x = &ents[i];
        bool have = false;
        for (const kv__hent *e = r->newest; e && !have; e = e->older)
            have = e->rev == x->rev;
        if (have)
            continue;
        kv__hent *e = kv__hent_new(s, slot);
        kv__item *it = e ? kv__item_new_pre(&s->slab, &slot->cache, s->item_pre, key, klen,
                                            x->val, x->vlen, x->expire_at)
                         : NULL;
        if (!it) {
            if (e)
                kv__hent_free(slot, e);
            rc = KV_NO_MEMORY;
            break;
        }
        kv__item_set_rev(it, x->rev);
        *e = (kv__hent){.rev = x->rev, .until = x->until, .create_rev = x->create,
                        .version = x->version, .item = it};
        /* insert in revision order (newest first) */
        kv__hent **pp = &r->newest, *newer = NULL;
        while (*pp && (*pp)->rev > x->rev) {
            newer = *pp;
            pp = &(*pp)->older;
        }
        e->older = *pp;
        e->newer = newer;
        if (*pp)
            (*pp)->newer = e;
        else
            r->oldest = e;
        *pp = e;
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
