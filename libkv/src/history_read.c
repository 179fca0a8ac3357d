/*
 * history_read.c - reading the past (kv.h, "History"): a key, many keys
 * or a scan as of a revision, a key's changes, and what watchers read
 * (history.h).
 */
#include <stdlib.h>
#include <string.h>

#include "hash.h"
#include "history_impl.h"

/* ---- reading one key at a revision --------------------------------------- */


/* The meta of key's current item it, from its record r (may be NULL). */
kv__hver kv__hist_current_ver(const kv__item *it, const kv__hkey *r)
{
    if (r && r->live && r->cur_rev == kv__item_rev(it))
        return (kv__hver){it, r->cur_create, r->cur_version};
    return (kv__hver){it, kv__item_rev(it), 1};
}

/* The item in key's slot, whatever its expiry (stripe locked, pinned). */
kv__item *kv__hist_slot_item(kv_store *s, uint64_t hash, const void *key, size_t klen)
{
    kv__loc loc;
    if (kv__table_locate(kv__index_seg(s, hash), hash, key, klen, &loc) &&
        loc.word != KV__SLOT_TOMB)
        return kv__slot_current(loc.word, NULL);
    return NULL;
}

/* Key's version at rev (stripe locked, pinned). KV_OK, KV_NOT_FOUND or
 * KV_COMPACTED (only when check). */
static int resolve(kv_store *s, uint64_t hash, const void *key, size_t klen, uint64_t rev,
                   bool check, kv__hver *out)
{
    if (check && rev < atomic_load(&s->hist->compact_rev))
        return KV_COMPACTED;
    const kv__item *cur = kv__hist_slot_item(s, hash, key, klen);
    const kv__hkey *r = kv__hmap_find(&s->hist->maps[kv__stripe_of(hash)], hash, key, klen);
    if (cur && kv__item_rev(cur) <= rev) {
        *out = kv__hist_current_ver(cur, r);
        return KV_OK;
    }
    for (const kv__hent *e = r ? r->newest : NULL; e; e = kv__hent_older(r, e)) {
        if (e->rev <= rev) {
            if (rev >= e->until)
                return KV_NOT_FOUND; /* removed between e and the next version */
            *out = (kv__hver){e->item, e->create_rev, e->version};
            return KV_OK;
        }
    }
    return check && r && rev < r->floor ? KV_COMPACTED : KV_NOT_FOUND;
}

int kv__hist_resolve(kv_store *s, uint64_t hash, const void *key, size_t klen, uint64_t rev,
                     kv__hver *out)
{
    return resolve(s, hash, key, klen, rev, true, out);
}

/* The checks every read in the past starts with. */
int kv__hist_check_rev(kv_store *s, uint64_t rev)
{
    if (!s->hist)
        return KV_UNSUPPORTED;
    if (rev == 0)
        return KV_INVALID_ARGUMENT;
    if (rev > kv__revision_latest(s))
        return KV_FUTURE_REVISION;
    if (rev < atomic_load(&s->hist->compact_rev))
        return KV_COMPACTED;
    return KV_OK;
}

/* Resolves one key at rev with its stripe locked for just that; the
 * caller is pinned, so the item stays allocated after the unlock (an
 * entry dropped meanwhile retires its item through the epochs). */
static int resolve_locked(kv_store *s, uint64_t hash, const void *key, size_t klen,
                          uint64_t rev, bool check, kv__hver *out)
{
    unsigned st = kv__stripe_of(hash);
    kv__stripes_lock(s->stripes, &st, 1);
    int rc = resolve(s, hash, key, klen, rev, check, out);
    kv__stripes_unlock(s->stripes, &st, 1);
    return rc;
}

int kv__hist_resolve_locked(kv_store *s, uint64_t hash, const void *key, size_t klen,
                            uint64_t rev, kv__hver *out)
{
    return resolve_locked(s, hash, key, klen, rev, true, out);
}

uint64_t kv_compact_revision(kv_store *s)
{
    return s && s->hist ? atomic_load(&s->hist->compact_rev) : 0;
}

int kv_get_at(kv_store *s, const void *key, size_t klen, uint64_t rev, kv_value *out,
              kv_key_meta *meta)
{
    if (!s || !out)
        return KV_INVALID_ARGUMENT;
    int rc = kv__check_key(s, key, klen);
    if (rc != KV_OK || (rc = kv__hist_check_rev(s, rev)) != KV_OK)
        return rc;
    kv__slot *slot = kv__slot_get(&s->slots);
    if (!slot)
        return KV_NO_MEMORY;
    kv__hver v;
    kv__ebr_pin(&s->ebr, slot);
    rc = kv__hist_resolve_locked(s, kv__hash(key, klen), key, klen, rev, &v);
    if (rc == KV_OK)
        rc = kv__value_copy(kv__item_value(v.item), kv__item_vlen(v.item), kv__item_rev(v.item),
                            out);
    if (rc == KV_OK && meta)
        *meta = (kv_key_meta){kv__item_rev(v.item), v.create_rev, v.version,
                              kv__item_expire_at(v.item)};
    kv__ebr_unpin(slot);
    return rc;
}

/* kv__hist_check_rev, and every key against the store's limits. */
int kv__hist_check_keys(kv_store *s, const kv_key *keys, size_t n, uint64_t rev)
{
    int rc = kv__hist_check_rev(s, rev);
    for (size_t i = 0; i < n && rc == KV_OK; i++)
        rc = kv__check_key(s, keys[i].data, keys[i].len);
    return rc;
}

int kv_mget_at(kv_store *s, const kv_key *keys, size_t n, uint64_t rev, kv_value *out)
{
    if (!s || (n && (!keys || !out)))
        return KV_INVALID_ARGUMENT;
    int rc = kv__hist_check_keys(s, keys, n, rev);
    if (rc != KV_OK)
        return rc;
    kv__slot *slot = kv__slot_get(&s->slots);
    if (!slot)
        return KV_NO_MEMORY;
    /* The state at rev no longer changes once every change up to rev is
     * published, which each key's lock makes sure of: the keys can be
     * read one after another and are still one snapshot. */
    kv__ebr_pin(&s->ebr, slot);
    size_t i = 0;
    for (; i < n; i++) {
        kv__hver v;
        rc = kv__hist_resolve_locked(s, kv__hash(keys[i].data, keys[i].len), keys[i].data,
                                     keys[i].len, rev, &v);
        if (rc == KV_NOT_FOUND) {
            out[i] = (kv_value){NULL, 0, 0};
            rc = KV_OK;
            continue;
        }
        if (rc != KV_OK || (rc = kv__value_copy(kv__item_value(v.item), kv__item_vlen(v.item),
                                                kv__item_rev(v.item), &out[i])) != KV_OK)
            break;
    }
    kv__ebr_unpin(slot);
    if (rc != KV_OK)
        kv_values_free(out, i);
    return rc;
}

/* ---- scanning at a revision ---------------------------------------------- */

/* Candidate keys of one page: hash and a copy of the key. */
typedef struct cand {
    uint64_t hash;
    size_t off, klen;
} cand;

typedef struct cands {
    cand *v;
    size_t n, cap;
    unsigned char *bytes;
    size_t nbytes, bcap;
} cands;

static int cands_add(cands *c, uint64_t hash, const void *key, size_t klen)
{
    if (c->n == c->cap) {
        size_t cap = c->cap ? c->cap * 2 : 64;
        cand *v = realloc(c->v, cap * sizeof *v);
        if (!v)
            return KV_NO_MEMORY;
        c->v = v;
        c->cap = cap;
    }
    if (c->nbytes + klen > c->bcap) {
        size_t cap = c->bcap ? c->bcap * 2 : 4096;
        while (cap < c->nbytes + klen)
            cap *= 2;
        unsigned char *b = realloc(c->bytes, cap);
        if (!b)
            return KV_NO_MEMORY;
        c->bytes = b;
        c->bcap = cap;
    }
    memcpy(c->bytes + c->nbytes, key, klen);
    c->v[c->n++] = (cand){hash, c->nbytes, klen};
    c->nbytes += klen;
    return KV_OK;
}

static const unsigned char *cand_key(const cands *c, const cand *x)
{
    return c->bytes + x->off;
}

/* qsort has no context argument: the candidates being sorted */
static _Thread_local const cands *tl_sort_ctx;

static int cand_cmp(const void *a, const void *b)
{
    const cand *x = a, *y = b;
    if (x->hash != y->hash)
        return x->hash < y->hash ? -1 : 1;
    if (x->klen != y->klen)
        return x->klen < y->klen ? -1 : 1;
    return memcmp(cand_key(tl_sort_ctx, x), cand_key(tl_sort_ctx, y), x->klen);
}

static int collect_live(void *ctx, const void *key, size_t klen, const void *val, size_t vlen,
                        uint64_t version, uint64_t expire_at)
{
    (void)val, (void)vlen, (void)version, (void)expire_at;
    cands *c = ctx;
    /* out of memory: stop; the caller sees the short count */
    return cands_add(c, kv__hash(key, klen), key, klen) != KV_OK ? -1 : 0;
}

/* Adds the keys with history, with the prefix and a hash in [lo, hi]. */
static int collect_records(kv_store *s, const void *prefix, size_t plen, uint64_t lo,
                           uint64_t hi, cands *c)
{
    int rc = KV_OK;
    for (unsigned st = 0; st < KV__NSTRIPES && rc == KV_OK; st++) {
        kv__hmap *m = &s->hist->maps[st];
        kv__stripes_lock(s->stripes, &st, 1);
        if (m->buckets) {
            for (size_t b = kv__hmap_bucket(m, lo); b <= kv__hmap_bucket(m, hi) && rc == KV_OK; b++)
                for (kv__hkey *r = m->buckets[b]; r && rc == KV_OK; r = r->next)
                    if (r->hash >= lo && r->hash <= hi && r->klen >= plen &&
                        memcmp(r->key, prefix, plen) == 0)
                        rc = cands_add(c, r->hash, r->key, r->klen);
        }
        kv__stripes_unlock(s->stripes, &st, 1);
    }
    return rc;
}

int kv__hist_scan_at(kv_store *s, const void *prefix, size_t plen, uint64_t rev,
                     uint64_t cursor, size_t limit, bool held, kv_scan_ex_fn fn, void *ctx,
                     uint64_t *next)
{
    if (!s || !fn || !next || limit == 0 || (plen && !prefix))
        return KV_INVALID_ARGUMENT;
    int rc = held ? KV_OK : kv__hist_check_rev(s, rev);
    if (rc != KV_OK)
        return rc;
    kv__slot *slot = kv__slot_get(&s->slots);
    if (!slot)
        return KV_NO_MEMORY;
    if (!plen)
        prefix = "";
    cands c = {0};
    size_t given = 0;
    uint64_t lo = cursor, resume = 0;
    bool finished = false, stop = false;
    while (!stop && !finished && rc == KV_OK) {
        /* A page: the live keys from lo (up to limit of them: their hashes
         * end at the cursor kv__scan returns), then every key with history
         * in the same hash range (deleted since, or expired). */
        c.n = c.nbytes = 0;
        uint64_t nx;
        rc = kv__scan_ex(s, prefix, plen, lo, limit, collect_live, &c, &nx, true);
        if (rc != KV_OK)
            break;
        uint64_t hi = nx ? nx - 1 : UINT64_MAX;
        if ((rc = collect_records(s, prefix, plen, lo, hi, &c)) != KV_OK)
            break;
        tl_sort_ctx = &c;
        if (c.n)
            qsort(c.v, c.n, sizeof *c.v, cand_cmp);
        kv__ebr_pin(&s->ebr, slot);
        for (size_t i = 0; i < c.n && !stop && rc == KV_OK; i++) {
            const cand *x = &c.v[i];
            if (i && cand_cmp(&c.v[i - 1], x) == 0)
                continue; /* live and with history: once */
            kv__hver v;
            int r = resolve_locked(s, x->hash, cand_key(&c, x), x->klen, rev, !held, &v);
            if (r == KV_NOT_FOUND)
                continue;
            if (r != KV_OK) {
                rc = r;
                break;
            }
            given++;
            stop = fn(ctx, cand_key(&c, x), x->klen, kv__item_value(v.item),
                      kv__item_vlen(v.item), kv__item_rev(v.item),
                      kv__item_expire_at(v.item)) != 0 ||
                   given >= limit;
            /* Stop only between different hashes, so resuming at hash + 1
             * skips nothing. */
            if (stop && i + 1 < c.n && c.v[i + 1].hash == x->hash)
                stop = false;
            if (stop) {
                finished = x->hash == UINT64_MAX;
                resume = x->hash + 1;
            }
        }
        kv__ebr_unpin(slot);
        if (!stop) {
            finished = nx == 0;
            lo = resume = nx;
        }
    }
    free(c.v);
    free(c.bytes);
    if (rc == KV_OK)
        *next = finished ? 0 : resume;
    return rc;
}

typedef struct plain_scan {
    kv_scan_fn fn;
    void *ctx;
} plain_scan;

static int plain_fn(void *ctx, const void *key, size_t klen, const void *val, size_t vlen,
                    uint64_t version, uint64_t expire_at)
{
    (void)expire_at;
    plain_scan *p = ctx;
    return p->fn(p->ctx, key, klen, val, vlen, version);
}

int kv_scan_at(kv_store *s, const void *prefix, size_t plen, uint64_t rev, uint64_t cursor,
               size_t limit, kv_scan_fn fn, void *ctx, uint64_t *next)
{
    if (!fn)
        return KV_INVALID_ARGUMENT;
    plain_scan p = {fn, ctx};
    return kv__hist_scan_at(s, prefix, plen, rev, cursor, limit, false, plain_fn, &p, next);
}

/* ---- a key's changes ------------------------------------------------------ */

void kv_events_free(kv_event *ev, size_t n)
{
    if (!ev)
        return;
    for (size_t i = 0; i < n; i++) {
        free(ev[i].value);
        free(ev[i].key);
    }
    free(ev);
}

/* One event while the stripe is locked: the item to copy after. */
typedef struct pend_event {
    uint64_t rev;
    kv__hver v; /* v.item NULL: a deletion */
} pend_event;

int kv_history(kv_store *s, const void *key, size_t klen, uint64_t min_rev, uint64_t max_rev,
               size_t limit, kv_event **out, size_t *n)
{
    if (!s || !out || !n)
        return KV_INVALID_ARGUMENT;
    int rc = kv__check_key(s, key, klen);
    if (rc != KV_OK)
        return rc;
    if (!s->hist)
        return KV_UNSUPPORTED;
    uint64_t latest = kv__revision_latest(s);
    if (max_rev > latest)
        return KV_FUTURE_REVISION;
    if (!max_rev)
        max_rev = latest;
    if (min_rev > max_rev)
        return KV_INVALID_ARGUMENT;
    uint64_t floor;
    return kv__hist_key_events(s, key, klen, min_rev, max_rev, limit, false, out, n, &floor);
}

int kv__hist_key_events(kv_store *s, const void *key, size_t klen, uint64_t min_rev,
                        uint64_t max_rev, size_t limit, bool with_key, kv_event **out,
                        size_t *n, uint64_t *floor_out)
{
    int rc = KV_OK;
    kv__slot *slot = kv__slot_get(&s->slots);
    if (!slot)
        return KV_NO_MEMORY;
    uint64_t hash = kv__hash(key, klen);
    unsigned st = kv__stripe_of(hash);
    pend_event *pe = NULL;
    size_t np = 0, cap = 0;
    bool full = false, passed = false;
    kv__ebr_pin(&s->ebr, slot);
    kv__stripes_lock(s->stripes, &st, 1);
    const kv__item *cur = kv__hist_slot_item(s, hash, key, klen);
    const kv__hkey *r = kv__hmap_find(&s->hist->maps[st], hash, key, klen);
    uint64_t floor = atomic_load(&s->hist->compact_rev);
    if (r && r->floor > floor)
        floor = r->floor;
    /* Newest first: the current version, then each earlier one, with a
     * deletion wherever a version's `until` is not the next one's rev. */
    uint64_t newer_rev = UINT64_MAX;
    const kv__hent *e = r ? r->newest : NULL;
    for (int step = 0; !full && rc == KV_OK; step++) {
        pend_event ev[2];
        size_t nev = 0;
        if (step == 0) {
            if (cur) {
                ev[nev++] = (pend_event){kv__item_rev(cur), kv__hist_current_ver(cur, r)};
                newer_rev = kv__item_rev(cur);
            }
        } else if (e) {
            if (e->until != newer_rev)
                ev[nev++] = (pend_event){e->until, {NULL, 0, 0}};
            ev[nev++] = (pend_event){e->rev, {e->item, e->create_rev, e->version}};
            newer_rev = e->rev;
            e = kv__hent_older(r, e);
        } else {
            break;
        }
        for (size_t i = 0; i < nev; i++) {
            if (ev[i].rev > max_rev || ev[i].rev < min_rev)
                continue;
            if (np == cap) {
                size_t nc = cap ? cap * 2 : 16;
                pend_event *p = realloc(pe, nc * sizeof *p);
                if (!p) {
                    rc = KV_NO_MEMORY;
                    break;
                }
                pe = p;
                cap = nc;
            }
            pe[np++] = ev[i];
            if (limit && np == limit) {
                full = true;
                break;
            }
        }
        if (newer_rev < min_rev) {
            passed = true; /* everything older is out of the range, and */
            break;         /* nothing dropped is newer than a kept version */
        }
    }
    kv__stripes_unlock(s->stripes, &st, 1);
    /* A listing that reached the oldest kept version without filling its
     * limit is incomplete if the range goes below what is kept. */
    *floor_out = floor;
    if (rc == KV_OK && !full && !passed && min_rev && min_rev < floor)
        rc = KV_COMPACTED;
    kv_event *evs = NULL;
    if (rc == KV_OK && np && !(evs = calloc(np, sizeof *evs)))
        rc = KV_NO_MEMORY;
    for (size_t i = 0; i < np && rc == KV_OK; i++) {
        kv_event *x = &evs[i];
        x->revision = pe[i].rev;
        if (with_key) {
            if (!(x->key = malloc(klen))) {
                kv_events_free(evs, np);
                evs = NULL;
                rc = KV_NO_MEMORY;
                break;
            }
            memcpy(x->key, key, klen);
            x->klen = klen;
        }
        if (!pe[i].v.item) {
            x->deleted = 1;
            continue;
        }
        const kv__item *it = pe[i].v.item;
        x->create_revision = pe[i].v.create_rev;
        x->version = pe[i].v.version;
        x->expire_at_ms = kv__item_expire_at(it);
        x->vlen = kv__item_vlen(it);
        if (!(x->value = malloc(x->vlen ? x->vlen : 1))) {
            kv_events_free(evs, np);
            evs = NULL;
            rc = KV_NO_MEMORY;
            break;
        }
        memcpy(x->value, kv__item_value(it), x->vlen);
    }
    kv__ebr_unpin(slot);
    free(pe);
    if (rc != KV_OK)
        return rc;
    *out = evs;
    *n = np;
    return KV_OK;
}

int kv__hist_prefix_keys(kv_store *s, const void *prefix, size_t plen, kv_key **out,
                         size_t *n, void **mem)
{
    if (!plen)
        prefix = "";
    /* every live key with the prefix (expired ones still held included),
     * and every key with history (deleted since, or with earlier values) */
    cands c = {0};
    uint64_t cursor = 0;
    int rc;
    do {
        rc = kv__scan_ex(s, prefix, plen, cursor, 4096, collect_live, &c, &cursor, true);
    } while (rc == KV_OK && cursor);
    if (rc == KV_OK)
        rc = collect_records(s, prefix, plen, 0, UINT64_MAX, &c);
    kv_key *keys = NULL;
    size_t nk = 0;
    if (rc == KV_OK && c.n) {
        tl_sort_ctx = &c;
        qsort(c.v, c.n, sizeof *c.v, cand_cmp);
        if (!(keys = malloc(c.n * sizeof *keys)))
            rc = KV_NO_MEMORY;
        for (size_t i = 0; rc == KV_OK && i < c.n; i++)
            if (!i || cand_cmp(&c.v[i - 1], &c.v[i]) != 0)
                keys[nk++] = (kv_key){cand_key(&c, &c.v[i]), c.v[i].klen};
    }
    free(c.v);
    if (rc != KV_OK) {
        free(keys);
        free(c.bytes);
        return rc;
    }
    *out = keys;
    *n = nk;
    *mem = c.bytes;
    return KV_OK;
}

int kv__hist_value_at(kv_store *s, const void *key, size_t klen, uint64_t rev, kv_event *ev)
{
    kv__hver v;
    int rc = kv__hist_resolve_locked(s, kv__hash(key, klen), key, klen, rev, &v);
    if (rc == KV_NOT_FOUND || (rc == KV_OK && kv__item_rev(v.item) != rev))
        rc = KV_COMPACTED; /* the value this change wrote is gone */
    if (rc != KV_OK)
        return rc;
    ev->create_revision = v.create_rev;
    ev->version = v.version;
    ev->expire_at_ms = kv__item_expire_at(v.item);
    ev->vlen = kv__item_vlen(v.item);
    if (!(ev->value = malloc(ev->vlen ? ev->vlen : 1)))
        return KV_NO_MEMORY;
    memcpy(ev->value, kv__item_value(v.item), ev->vlen);
    return KV_OK;
}
