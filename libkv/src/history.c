/*
 * history.c - earlier values of keys (history.h): the per-stripe maps,
 * the write path's part, reads at a revision, a key's changes, rollback
 * and compaction.
 */
#include <errno.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "files.h"
#include "hash.h"
#include "history.h"
#include "store.h"

/* One earlier version of a key: visible at revisions [rev, until). */
struct kv__hent {
    kv__hent *older, *newer;
    uint64_t rev, until;
    uint64_t create_rev, version;
    kv__item *item;
};

/* A key with history. While the key is live (its slot holds an item) the
 * record also keeps the current item's create revision and version count;
 * a key without a record is live with version 1 (or absent). */
struct kv__hkey {
    kv__hkey *next; /* in its bucket */
    uint64_t hash;
    uint64_t floor; /* reads of this key below it: compacted (per-key bound) */
    uint64_t cur_rev, cur_create, cur_version; /* the version cur_rev's */
    kv__hent *newest, *oldest;
    uint32_t nent;
    bool live;
    uint32_t klen;
    unsigned char key[];
};

/* One stripe's keys with history: chained buckets indexed by the hash's
 * top bits, so a hash range is a range of buckets (kv_scan_at). */
typedef struct hmap {
    kv__hkey **buckets;
    unsigned bits;
    size_t count;
} hmap;

#define MAP_MIN_BITS 4u
#define NSAMPLES 1024u
#define TICK_MS 100u

typedef struct sample {
    uint64_t ms, rev;
} sample;

struct kv__hist {
    hmap *maps; /* KV__NSTRIPES, each guarded by its stripe's lock */
    uint32_t max_versions;
    uint64_t max_bytes;
    uint32_t max_age_s;
    _Atomic uint64_t compact_rev;
    pthread_mutex_t compact_mu; /* one sweep at a time */
    /* the compactor thread (byte and age bounds) */
    bool running, stop;
    pthread_t thread;
    pthread_mutex_t mu;
    pthread_cond_t cv;
    /* (time, latest revision) every sample_ms, for the age bound */
    sample samples[NSAMPLES];
    size_t nsamples, head;
    uint64_t sample_ms, last_sample;
};

/* ---- the maps ------------------------------------------------------------ */

static size_t map_bucket(const hmap *m, uint64_t hash)
{
    return (size_t)(hash >> (64 - m->bits));
}

static kv__hkey *map_find(const hmap *m, uint64_t hash, const void *key, size_t klen)
{
    if (!m->buckets)
        return NULL;
    for (kv__hkey *r = m->buckets[map_bucket(m, hash)]; r; r = r->next)
        if (r->hash == hash && r->klen == klen && memcmp(r->key, key, klen) == 0)
            return r;
    return NULL;
}

/* Doubles the buckets; on out-of-memory the chains just grow longer. */
static void map_grow(hmap *m)
{
    unsigned bits = m->bits + 1;
    kv__hkey **b = calloc((size_t)1 << bits, sizeof *b);
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
    free(m->buckets);
    m->buckets = b;
    m->bits = bits;
}

/* The map has buckets (kv__hist_prepare made sure). */
static void map_insert(hmap *m, kv__hkey *r)
{
    if (m->count >= ((size_t)1 << m->bits))
        map_grow(m);
    size_t i = map_bucket(m, r->hash);
    r->next = m->buckets[i];
    m->buckets[i] = r;
    m->count++;
}

static void map_remove(hmap *m, kv__hkey *r)
{
    kv__hkey **p = &m->buckets[map_bucket(m, r->hash)];
    while (*p != r)
        p = &(*p)->next;
    *p = r->next;
    m->count--;
}

/* ---- accounting and dropping -------------------------------------------- */

static size_t ent_bytes(const kv_store *s, const kv__hent *e)
{
    return sizeof *e + kv__item_footprint_pre(e->item, s->item_pre);
}

static size_t rec_bytes(const kv__hkey *r)
{
    return sizeof *r + r->klen;
}

static void item_free(kv__slot *slot, void *item)
{
    kv__item_free(&slot->cache, item);
}

static void meta_item_free(kv__slot *slot, void *item)
{
    kv__item_free_pre(&slot->cache, item, KV__ITEM_META_BYTES);
}

/* Unlinks r's oldest entry and retires its item (a retire must be
 * reserved); raise: the per-key bound dropped it, so reads of the key
 * below its `until` can no longer be answered. */
static void drop_oldest(kv_store *s, kv__slot *slot, kv__hkey *r, bool raise)
{
    kv__hent *e = r->oldest;
    r->oldest = e->newer;
    if (r->oldest)
        r->oldest->older = NULL;
    else
        r->newest = NULL;
    r->nent--;
    if (raise && e->until > r->floor)
        r->floor = e->until;
    size_t bytes = ent_bytes(s, e);
    kv__count(slot, KV__C_HIST_VERSIONS, (uint64_t)-1);
    kv__count(slot, KV__C_HIST_BYTES, (uint64_t)0 - bytes);
    /* Lock-free readers that found the item before it was replaced may
     * still be copying it: it goes the way every replaced item goes. */
    kv__ebr_retire(&s->ebr, slot, e->item, s->item_pre ? meta_item_free : item_free,
                   kv__item_footprint_pre(e->item, s->item_pre));
    free(e);
}

/* A record that holds nothing a read needs goes: no entries, and the key
 * is absent or at version 1 (what a missing record means). */
static void maybe_free_rec(kv__slot *slot, hmap *m, kv__hkey *r)
{
    if (r->nent || (r->live && r->cur_version > 1))
        return;
    map_remove(m, r);
    kv__count(slot, KV__C_HIST_BYTES, (uint64_t)0 - rec_bytes(r));
    free(r);
}

/* ---- the write path ------------------------------------------------------ */

int kv__hist_prepare(kv_store *s, uint64_t hash, const void *key, size_t klen, bool has_old,
                     kv__hist_prep *p)
{
    hmap *m = &s->hist->maps[kv__stripe_of(hash)];
    p->rec = map_find(m, hash, key, klen);
    p->rec_new = false;
    p->ent = NULL;
    if (!has_old)
        return KV_OK; /* a key created: an existing record is updated */
    if (!m->buckets) {
        if (!(m->buckets = calloc((size_t)1 << MAP_MIN_BITS, sizeof *m->buckets)))
            return KV_NO_MEMORY;
        m->bits = MAP_MIN_BITS;
    }
    if (!(p->ent = malloc(sizeof *p->ent)))
        return KV_NO_MEMORY;
    if (!p->rec) {
        kv__hkey *r = malloc(sizeof *r + klen);
        if (!r) {
            free(p->ent);
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

void kv__hist_unprepare(kv__hist_prep *p)
{
    free(p->ent);
    if (p->rec_new)
        free(p->rec);
    *p = (kv__hist_prep){0};
}

void kv__hist_commit(kv_store *s, kv__slot *slot, kv__hist_prep *p, uint64_t hash,
                     kv__item *old, bool visible, kv__item *next, uint64_t rev)
{
    kv__hist *h = s->hist;
    hmap *m = &h->maps[kv__stripe_of(hash)];
    kv__hkey *r = p->rec;
    if (!r)
        return; /* a key created, with no history */
    uint64_t old_create = 0, old_version = 0;
    if (old) {
        /* Recovery may replay a change whose replaced version a snapshot
         * already put in history (with its metadata): found, not added. */
        kv__hent *dup = NULL;
        for (kv__hent *x = r->newest; x && x->rev >= kv__item_rev(old); x = x->older)
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
            map_insert(m, r);
            kv__count(slot, KV__C_HIST_BYTES, rec_bytes(r));
        }
        if (dup) {
            /* the item goes as a replaced item goes without history */
            kv__ebr_retire(&s->ebr, slot, old, s->item_pre ? meta_item_free : item_free,
                           kv__item_footprint_pre(old, s->item_pre));
            free(p->ent);
            p->ent = NULL;
            old = NULL;
        }
    }
    if (old) {
        kv__hent *e = p->ent;
        *e = (kv__hent){.older = r->newest, .rev = kv__item_rev(old), .until = rev,
                        .create_rev = old_create, .version = old_version, .item = old};
        if (r->newest)
            r->newest->newer = e;
        else
            r->oldest = e;
        r->newest = e;
        r->nent++;
        kv__count(slot, KV__C_HIST_VERSIONS, 1);
        kv__count(slot, KV__C_HIST_BYTES, ent_bytes(s, e));
    }
    r->live = next != NULL;
    if (next) {
        /* an expired item was absent: the new value creates the key */
        bool had = old_version && visible;
        r->cur_rev = rev;
        r->cur_create = had ? old_create : rev;
        r->cur_version = had ? old_version + 1 : 1;
    }
    if (h->max_versions)
        while (r->nent > h->max_versions)
            drop_oldest(s, slot, r, true);
    maybe_free_rec(slot, m, r);
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

/* ---- reading one key at a revision --------------------------------------- */

/* A version found at a revision. */
typedef struct hver {
    const kv__item *item;
    uint64_t create_rev, version;
} hver;

/* The meta of key's current item it, from its record r (may be NULL). */
static hver current_ver(const kv__item *it, const kv__hkey *r)
{
    if (r && r->live && r->cur_rev == kv__item_rev(it))
        return (hver){it, r->cur_create, r->cur_version};
    return (hver){it, kv__item_rev(it), 1};
}

/* The item in key's slot, whatever its expiry (stripe locked, pinned). */
static kv__item *slot_item(kv_store *s, uint64_t hash, const void *key, size_t klen)
{
    kv__loc loc;
    if (kv__table_locate(atomic_load(&s->table), hash, key, klen, &loc) &&
        loc.word != KV__SLOT_TOMB)
        return kv__slot_current(loc.word, NULL);
    return NULL;
}

/* Key's version at rev (stripe locked, pinned). KV_OK, KV_NOT_FOUND or
 * KV_COMPACTED. */
static int resolve(kv_store *s, uint64_t hash, const void *key, size_t klen, uint64_t rev,
                   hver *out)
{
    if (rev < atomic_load(&s->hist->compact_rev))
        return KV_COMPACTED;
    const kv__item *cur = slot_item(s, hash, key, klen);
    const kv__hkey *r = map_find(&s->hist->maps[kv__stripe_of(hash)], hash, key, klen);
    if (cur && kv__item_rev(cur) <= rev) {
        *out = current_ver(cur, r);
        return KV_OK;
    }
    for (const kv__hent *e = r ? r->newest : NULL; e; e = e->older) {
        if (e->rev <= rev) {
            if (rev >= e->until)
                return KV_NOT_FOUND; /* removed between e and the next version */
            *out = (hver){e->item, e->create_rev, e->version};
            return KV_OK;
        }
    }
    return r && rev < r->floor ? KV_COMPACTED : KV_NOT_FOUND;
}

/* The checks every read in the past starts with. */
static int check_rev(kv_store *s, uint64_t rev)
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
                          uint64_t rev, hver *out)
{
    unsigned st = kv__stripe_of(hash);
    kv__stripes_lock(s->stripes, &st, 1);
    int rc = resolve(s, hash, key, klen, rev, out);
    kv__stripes_unlock(s->stripes, &st, 1);
    return rc;
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
    if (rc != KV_OK || (rc = check_rev(s, rev)) != KV_OK)
        return rc;
    kv__slot *slot = kv__slot_get(&s->slots);
    if (!slot)
        return KV_NO_MEMORY;
    hver v;
    kv__ebr_pin(&s->ebr, slot);
    rc = resolve_locked(s, kv__hash(key, klen), key, klen, rev, &v);
    if (rc == KV_OK)
        rc = kv__value_copy(kv__item_value(v.item), kv__item_vlen(v.item), kv__item_rev(v.item),
                            out);
    if (rc == KV_OK && meta)
        *meta = (kv_key_meta){kv__item_rev(v.item), v.create_rev, v.version,
                              kv__item_expire_at(v.item)};
    kv__ebr_unpin(slot);
    return rc;
}

int kv_mget_at(kv_store *s, const kv_key *keys, size_t n, uint64_t rev, kv_value *out)
{
    if (!s || (n && (!keys || !out)))
        return KV_INVALID_ARGUMENT;
    int rc = check_rev(s, rev);
    for (size_t i = 0; i < n && rc == KV_OK; i++)
        rc = kv__check_key(s, keys[i].data, keys[i].len);
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
        hver v;
        rc = resolve_locked(s, kv__hash(keys[i].data, keys[i].len), keys[i].data, keys[i].len,
                            rev, &v);
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
        hmap *m = &s->hist->maps[st];
        kv__stripes_lock(s->stripes, &st, 1);
        if (m->buckets) {
            for (size_t b = map_bucket(m, lo); b <= map_bucket(m, hi) && rc == KV_OK; b++)
                for (kv__hkey *r = m->buckets[b]; r && rc == KV_OK; r = r->next)
                    if (r->hash >= lo && r->hash <= hi && r->klen >= plen &&
                        memcmp(r->key, prefix, plen) == 0)
                        rc = cands_add(c, r->hash, r->key, r->klen);
        }
        kv__stripes_unlock(s->stripes, &st, 1);
    }
    return rc;
}

int kv_scan_at(kv_store *s, const void *prefix, size_t plen, uint64_t rev, uint64_t cursor,
               size_t limit, kv_scan_fn fn, void *ctx, uint64_t *next)
{
    if (!s || !fn || !next || limit == 0 || (plen && !prefix))
        return KV_INVALID_ARGUMENT;
    int rc = check_rev(s, rev);
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
            hver v;
            int r = resolve_locked(s, x->hash, cand_key(&c, x), x->klen, rev, &v);
            if (r == KV_NOT_FOUND)
                continue;
            if (r != KV_OK) {
                rc = r;
                break;
            }
            given++;
            stop = fn(ctx, cand_key(&c, x), x->klen, kv__item_value(v.item),
                      kv__item_vlen(v.item), kv__item_rev(v.item)) != 0 ||
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
    hver v; /* v.item NULL: a deletion */
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
    const kv__item *cur = slot_item(s, hash, key, klen);
    const kv__hkey *r = map_find(&s->hist->maps[st], hash, key, klen);
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
                ev[nev++] = (pend_event){kv__item_rev(cur), current_ver(cur, r)};
                newer_rev = kv__item_rev(cur);
            }
        } else if (e) {
            if (e->until != newer_rev)
                ev[nev++] = (pend_event){e->until, {NULL, 0, 0}};
            ev[nev++] = (pend_event){e->rev, {e->item, e->create_rev, e->version}};
            newer_rev = e->rev;
            e = e->older;
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

/* ---- rollback -------------------------------------------------------------- */

/* What one key of a rollback needs. */
typedef struct rb_key {
    uint64_t hash;
    uint64_t cur_version; /* visible now (0: absent), for the compare */
    bool change;          /* changed after to_rev: gets an op */
    bool present;         /* present at to_rev */
    void *val;            /* copy of the value at to_rev */
    size_t vlen;
    uint64_t expire_at;
} rb_key;

/* Reads key i's state now and at to_rev (its stripe locked). */
static int rb_read(kv_store *s, const kv_key *k, uint64_t to_rev, uint64_t now, rb_key *x)
{
    unsigned st = kv__stripe_of(x->hash);
    kv__stripes_lock(s->stripes, &st, 1);
    const kv__item *cur = slot_item(s, x->hash, k->data, k->len);
    const kv__hkey *r = map_find(&s->hist->maps[st], x->hash, k->data, k->len);
    x->cur_version = cur && !kv__item_expired(cur, now) ? kv__item_rev(cur) : 0;
    /* the last change of the key: its current item, or its removal */
    uint64_t last = cur ? kv__item_rev(cur) : r && r->newest ? r->newest->until : 0;
    x->change = last > to_rev;
    hver v;
    int rc = x->change ? resolve(s, x->hash, k->data, k->len, to_rev, &v) : KV_NOT_FOUND;
    x->present = rc == KV_OK && !kv__item_expired(v.item, now);
    if (rc == KV_NOT_FOUND)
        rc = KV_OK;
    if (x->present) {
        x->vlen = kv__item_vlen(v.item);
        x->expire_at = kv__item_expire_at(v.item);
        if ((x->val = malloc(x->vlen ? x->vlen : 1)))
            memcpy(x->val, kv__item_value(v.item), x->vlen);
        else
            rc = KV_NO_MEMORY;
    }
    kv__stripes_unlock(s->stripes, &st, 1);
    return rc;
}

#define RB_ATTEMPTS 1000

int kv_rollback(kv_store *s, const kv_key *keys, size_t n, uint64_t to_rev,
                uint64_t unchanged_since, uint64_t *version, size_t *changed)
{
    if (!s || (n && !keys))
        return KV_INVALID_ARGUMENT;
    int rc = check_rev(s, to_rev);
    for (size_t i = 0; i < n && rc == KV_OK; i++)
        rc = kv__check_key(s, keys[i].data, keys[i].len);
    if (rc != KV_OK)
        return rc;
    kv__slot *slot = kv__slot_get(&s->slots);
    if (!slot)
        return KV_NO_MEMORY;
    rb_key *x = calloc(n ? n : 1, sizeof *x);
    kv_compare *cmps = calloc(n ? n : 1, sizeof *cmps);
    kv_op *ops = calloc(n ? n : 1, sizeof *ops);
    if (!x || !cmps || !ops) {
        rc = KV_NO_MEMORY;
        goto out;
    }
    for (size_t i = 0; i < n; i++)
        x[i].hash = kv__hash(keys[i].data, keys[i].len);
    for (int attempt = 0;; attempt++) {
        if (attempt == RB_ATTEMPTS) {
            rc = KV_CONFLICT;
            break;
        }
        uint64_t now = kv__clock_now(s);
        size_t nops = 0;
        kv__ebr_pin(&s->ebr, slot);
        for (size_t i = 0; i < n && rc == KV_OK; i++) {
            free(x[i].val);
            x[i].val = NULL;
            rc = rb_read(s, &keys[i], to_rev, now, &x[i]);
        }
        kv__ebr_unpin(slot);
        if (rc != KV_OK)
            break;
        for (size_t i = 0; i < n; i++) {
            if (unchanged_since && x[i].cur_version > unchanged_since) {
                rc = KV_VERSION_MISMATCH;
                break;
            }
            cmps[i] = (kv_compare){.kind = KV_CMP_VERSION_EQ, .key = keys[i].data,
                                   .klen = keys[i].len, .version = x[i].cur_version};
            if (!x[i].change)
                continue;
            ops[nops++] = x[i].present
                              ? (kv_op){.kind = KV_OP_SET, .key = keys[i].data,
                                        .klen = keys[i].len, .value = x[i].val,
                                        .vlen = x[i].vlen, .expire_at_ms = x[i].expire_at}
                              : (kv_op){.kind = KV_OP_DELETE, .key = keys[i].data,
                                        .klen = keys[i].len};
        }
        if (rc != KV_OK)
            break;
        if (!nops) {
            if (changed)
                *changed = 0;
            break;
        }
        /* Every key as read, or nothing: a key changed meanwhile means
         * reading again (and the condition is checked again). */
        kv__outcome o;
        rc = kv__apply(s,
                       &(kv__batch){.cmps = cmps, .ncmps = n, .then_ops = ops, .nthen = nops},
                       &o);
        if (rc != KV_OK)
            break;
        bool ok = o.succeeded;
        kv__outcome_free(&o);
        if (ok) {
            if (version && o.revision)
                *version = o.revision;
            if (changed)
                *changed = nops;
            break;
        }
    }
out:
    for (size_t i = 0; x && i < n; i++)
        free(x[i].val);
    free(x);
    free(cmps);
    free(ops);
    return rc;
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

int kv_rollback_prefix(kv_store *s, const void *prefix, size_t plen, uint64_t to_rev,
                       uint64_t unchanged_since, uint64_t *version, size_t *changed)
{
    if (!s || (plen && !prefix))
        return KV_INVALID_ARGUMENT;
    int rc = check_rev(s, to_rev);
    if (rc != KV_OK)
        return rc;
    kv_key *keys;
    size_t n;
    void *mem;
    if ((rc = kv__hist_prefix_keys(s, prefix, plen, &keys, &n, &mem)) != KV_OK)
        return rc;
    rc = kv_rollback(s, keys, n, to_rev, unchanged_since, version, changed);
    free(keys);
    free(mem);
    return rc;
}

int kv__hist_value_at(kv_store *s, const void *key, size_t klen, uint64_t rev, kv_event *ev)
{
    hver v;
    int rc = resolve_locked(s, kv__hash(key, klen), key, klen, rev, &v);
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

/* ---- compaction ------------------------------------------------------------ */

/* Drops, stripe by stripe, every entry no read at a revision >= c needs.
 * compact_mu held. */
static void sweep(kv_store *s, kv__slot *slot, uint64_t c)
{
    for (unsigned st = 0; st < KV__NSTRIPES; st++) {
        hmap *m = &s->hist->maps[st];
        kv__stripes_lock(s->stripes, &st, 1);
        for (size_t b = 0; m->buckets && b < ((size_t)1 << m->bits); b++) {
            kv__hkey *r = m->buckets[b];
            while (r) {
                kv__hkey *next = r->next;
                while (r->oldest && r->oldest->until <= c &&
                       kv__ebr_reserve(slot, 1) == KV_OK)
                    drop_oldest(s, slot, r, false);
                maybe_free_rec(slot, m, r);
                r = next;
            }
        }
        kv__stripes_unlock(s->stripes, &st, 1);
    }
}

static void add_hist_bytes(kv__slot *slot, void *ctx)
{
    *(uint64_t *)ctx += atomic_load_explicit(&slot->counters[KV__C_HIST_BYTES],
                                             memory_order_relaxed);
}

static uint64_t hist_bytes_sum(kv_store *s)
{
    uint64_t sum = 0;
    kv__slot_each(&s->slots, add_hist_bytes, &sum);
    return (int64_t)sum < 0 ? 0 : sum;
}

/* Raises the compaction revision to c and sweeps. */
static void compact_to(kv_store *s, kv__slot *slot, uint64_t c)
{
    kv__hist *h = s->hist;
    pthread_mutex_lock(&h->compact_mu);
    kv__hist_floor(s, c);
    sweep(s, slot, atomic_load(&h->compact_rev));
    pthread_mutex_unlock(&h->compact_mu);
    kv__ebr_collect(&s->ebr, slot);
}

int kv_compact(kv_store *s, uint64_t rev)
{
    if (!s)
        return KV_INVALID_ARGUMENT;
    if (!s->hist)
        return KV_UNSUPPORTED;
    if (rev > kv__revision_latest(s))
        return KV_FUTURE_REVISION;
    if (rev <= atomic_load(&s->hist->compact_rev))
        return KV_COMPACTED;
    kv__slot *slot = kv__slot_get(&s->slots);
    if (!slot)
        return KV_NO_MEMORY;
    compact_to(s, slot, rev);
    return KV_OK;
}

static void add_hist_versions(kv__slot *slot, void *ctx)
{
    *(uint64_t *)ctx += atomic_load_explicit(&slot->counters[KV__C_HIST_VERSIONS],
                                             memory_order_relaxed);
}

bool kv__hist_shed(kv_store *s, kv__slot *slot)
{
    uint64_t versions = 0;
    kv__slot_each(&s->slots, add_hist_versions, &versions);
    if ((int64_t)versions <= 0)
        return false; /* only version counts of live keys: nothing to drop */
    uint64_t latest = kv__revision_latest(s), c = atomic_load(&s->hist->compact_rev);
    if (c >= latest)
        return false;
    compact_to(s, slot, c + (latest - c + 1) / 2);
    return true;
}

static uint64_t mono_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000u + (uint64_t)ts.tv_nsec / 1000000u;
}

/* The revision the bounds ask to compact to now (0: none). */
static uint64_t bounds_target(kv_store *s, uint64_t now)
{
    kv__hist *h = s->hist;
    uint64_t latest = kv__revision_latest(s), c = atomic_load(&h->compact_rev);
    uint64_t target = 0;
    if (h->max_age_s) {
        if (now - h->last_sample >= h->sample_ms || !h->nsamples) {
            h->samples[h->head] = (sample){now, latest};
            h->head = (h->head + 1) % NSAMPLES;
            if (h->nsamples < NSAMPLES)
                h->nsamples++;
            h->last_sample = now;
        }
        uint64_t cutoff = now - (uint64_t)h->max_age_s * 1000u;
        /* the newest sample taken at or before the cutoff */
        for (size_t i = 0; i < h->nsamples; i++) {
            const sample *x = &h->samples[(h->head + NSAMPLES - 1 - i) % NSAMPLES];
            if (now >= (uint64_t)h->max_age_s * 1000u && x->ms <= cutoff) {
                target = x->rev;
                break;
            }
        }
    }
    if (h->max_bytes) {
        uint64_t bytes = hist_bytes_sum(s);
        if (bytes > h->max_bytes && latest > c) {
            /* Drop about the share of the revisions since c that brings
             * the bytes to 7/8 of the bound (history is about evenly
             * spread over them); the next tick goes on if it was not
             * enough. */
            uint64_t excess = bytes - h->max_bytes / 8 * 7;
            uint64_t step = (uint64_t)((double)(latest - c) * ((double)excess / (double)bytes)) + 1;
            if (c + step > target)
                target = c + step > latest ? latest : c + step;
        }
    }
    return target > c ? target : 0;
}

static void *compactor(void *arg)
{
    kv_store *s = arg;
    kv__hist *h = s->hist;
    kv__slot *slot = kv__slot_get(&s->slots);
    pthread_mutex_lock(&h->mu);
    while (!h->stop) {
        struct timespec ts;
        clock_gettime(CLOCK_MONOTONIC, &ts);
        ts.tv_nsec += (long)TICK_MS * 1000000L;
        if (ts.tv_nsec >= 1000000000L) {
            ts.tv_sec++;
            ts.tv_nsec -= 1000000000L;
        }
        int w = 0;
        while (!h->stop && w != ETIMEDOUT)
            w = pthread_cond_timedwait(&h->cv, &h->mu, &ts);
        if (h->stop || !slot)
            break;
        pthread_mutex_unlock(&h->mu);
        uint64_t target = bounds_target(s, mono_ms());
        if (target)
            compact_to(s, slot, target);
        pthread_mutex_lock(&h->mu);
    }
    pthread_mutex_unlock(&h->mu);
    return NULL;
}

/* ---- snapshots and recovery --------------------------------------------------- */

bool kv__hist_entry_meta(kv_store *s, const void *key, size_t klen, uint64_t rev,
                         uint64_t *create, uint64_t *version)
{
    uint64_t hash = kv__hash(key, klen);
    unsigned st = kv__stripe_of(hash);
    *create = rev;
    *version = 1;
    kv__stripes_lock(s->stripes, &st, 1);
    const kv__hkey *r = map_find(&s->hist->maps[st], hash, key, klen);
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
        hmap *m = &s->hist->maps[st];
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
    hmap *m = &s->hist->maps[kv__stripe_of(hash)];
    kv__hkey *r = map_find(m, hash, key, klen);
    if (r)
        return r;
    if (!m->buckets) {
        if (!(m->buckets = calloc((size_t)1 << MAP_MIN_BITS, sizeof *m->buckets)))
            return NULL;
        m->bits = MAP_MIN_BITS;
    }
    if (!(r = malloc(sizeof *r + klen)))
        return NULL;
    *r = (kv__hkey){.hash = hash, .klen = (uint32_t)klen};
    memcpy(r->key, key, klen);
    r->live = slot_item(s, hash, key, klen) != NULL;
    map_insert(m, r);
    kv__count(slot, KV__C_HIST_BYTES, rec_bytes(r));
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
    const kv__item *cur = slot_item(s, hash, key, klen);
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
        kv__hent *e = malloc(sizeof *e);
        kv__item *it = e ? kv__item_new_pre(&s->slab, &slot->cache, s->item_pre, key, klen,
                                            x->val, x->vlen, x->expire_at)
                         : NULL;
        if (!it) {
            free(e);
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
        kv__count(slot, KV__C_HIST_BYTES, ent_bytes(s, e));
    }
    kv__stripes_unlock(s->stripes, &st, 1);
    kv__ebr_unpin(slot);
    return rc;
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
    if ((h->max_bytes || h->max_age_s) &&
        pthread_create(&h->thread, NULL, compactor, s) == 0)
        h->running = true;
    else if (h->max_bytes || h->max_age_s) {
        kv__hist_close(s);
        return KV_NO_MEMORY;
    }
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
        hmap *m = &h->maps[st];
        for (size_t b = 0; m->buckets && b < ((size_t)1 << m->bits); b++) {
            kv__hkey *r = m->buckets[b];
            while (r) {
                kv__hkey *next = r->next;
                kv__hent *e = r->newest;
                while (e) {
                    kv__hent *older = e->older;
                    kv__item_free_at_close(e->item, s->item_pre);
                    free(e);
                    e = older;
                }
                free(r);
                r = next;
            }
        }
        free(m->buckets);
    }
    free(h->maps);
    pthread_mutex_destroy(&h->compact_mu);
    pthread_mutex_destroy(&h->mu);
    pthread_cond_destroy(&h->cv);
    free(h);
    s->hist = NULL;
}
