/*
 * scan.c - prefix scan with a cursor.
 *
 * Keys are visited in the order of their hash, and the cursor is a hash
 * value: "every key hashing below this has been visited". A key's hash does
 * not change when the index grows, so a scan survives resizes. The hash's
 * top bits pick the segment and the bits below them the home slot in it
 * (table.h), so hash order is segment by segment, home slot by home slot.
 * With linear probing a key sits at or after its home slot, so the keys of
 * one home slot's hash range are found by walking from that slot to the
 * end of its probe chain (in the segment's table and its next, if one is
 * being filled); they are sorted by hash before being handed
 * out, which lets a scan stop after any key and resume right after it.
 */
#include <stdlib.h>

#include "hash.h"
#include "store.h"

typedef struct found {
    uint64_t hash;
    const kv__item *item;
} found;

typedef struct range_keys {
    found *v;
    size_t n, cap;
    found small[16];
} range_keys;

static int add_found(range_keys *r, uint64_t h, const kv__item *it)
{
    if (r->n == r->cap) {
        size_t cap = r->cap * 2;
        found *v = malloc(cap * sizeof *v);
        if (!v)
            return KV_NO_MEMORY;
        memcpy(v, r->v, r->n * sizeof *v);
        if (r->v != r->small)
            free(r->v);
        r->v = v;
        r->cap = cap;
    }
    r->v[r->n++] = (found){h, it};
    return KV_OK;
}

/* Collects the prefix-matching keys with hash in [lo, hi] (in one segment)
 * stored in t, that segment's table or its next. */
static int collect_range(kv__table *t, uint64_t lo, uint64_t hi, const void *prefix,
                         size_t plen, uint64_t now, range_keys *r)
{
    size_t first = kv__table_home(t, lo), last = kv__table_home(t, hi);
    size_t span = (last - first) & t->mask;
    for (size_t d = 0; d <= kv__table_size(t); d++) {
        uintptr_t v = atomic_load(&t->slots[(first + d) & t->mask]);
        if (kv__slot_ends_chain(v)) {
            if (d > span)
                break;
            continue;
        }
        if (!kv__slot_is_key(v))
            continue;
        const kv__item *it = kv__slot_visible(v, NULL, now);
        if (!it || kv__item_klen(it) < plen ||
            (plen && memcmp(kv__item_key(it), prefix, plen) != 0))
            continue;
        uint64_t h = kv__hash(kv__item_key(it), kv__item_klen(it));
        if (h >= lo && h <= hi && add_found(r, h, it) != KV_OK)
            return KV_NO_MEMORY;
    }
    return KV_OK;
}

static int found_cmp(const void *a, const void *b)
{
    const found *x = a, *y = b;
    if (x->hash != y->hash)
        return x->hash < y->hash ? -1 : 1;
    size_t kx = kv__item_klen(x->item), ky = kv__item_klen(y->item);
    if (kx != ky)
        return kx < ky ? -1 : 1;
    return memcmp(kv__item_key(x->item), kv__item_key(y->item), kx);
}

/* kv_scan's callback as kv__scan calls it. */
static int call_plain(void *ctx, const void *key, size_t klen, const void *val, size_t vlen,
                      uint64_t version, uint64_t expire_at)
{
    (void)expire_at;
    const struct {
        kv_scan_fn fn;
        void *ctx;
    } *p = ctx;
    return p->fn(p->ctx, key, klen, val, vlen, version);
}

int kv_scan(kv_store *s, const void *prefix, size_t plen, uint64_t cursor, size_t limit,
            kv_scan_fn fn, void *ctx, uint64_t *next)
{
    if (!fn)
        return KV_INVALID_ARGUMENT;
    struct {
        kv_scan_fn fn;
        void *ctx;
    } plain = {fn, ctx};
    return kv__scan(s, prefix, plen, cursor, limit, call_plain, &plain, next);
}

int kv__scan(kv_store *s, const void *prefix, size_t plen, uint64_t cursor, size_t limit,
             kv__scan_fn fn, void *ctx, uint64_t *next)
{
    return kv__scan_ex(s, prefix, plen, cursor, limit, fn, ctx, next, false);
}

int kv__scan_ex(kv_store *s, const void *prefix, size_t plen, uint64_t cursor, size_t limit,
                kv__scan_fn fn, void *ctx, uint64_t *next, bool with_expired)
{
    if (!s || !fn || !next || limit == 0 || (plen && !prefix))
        return KV_INVALID_ARGUMENT;
    kv__slot *slot = kv__slot_get(&s->slots);
    if (!slot)
        return KV_NO_MEMORY;
    range_keys r = {.cap = 16};
    r.v = r.small;
    int rc = KV_OK;
    size_t count = 0;
    uint64_t lo = cursor, resume = 0;
    bool finished = false;

    kv__ebr_pin(&s->ebr, slot);
    /* clock 0: no item counts as expired */
    uint64_t now = with_expired ? 0 : kv__clock_now(s);
    while (!finished) {
        /* One step is the hash range of one home slot of the current table
         * of lo's segment (never past the segment's end). */
        kv__table *t = kv__index_seg(s, lo);
        uint64_t hi = lo | (((uint64_t)1 << t->shift) - 1);
        r.n = 0;
        for (kv__table *x = t; x && rc == KV_OK; x = atomic_load(&x->next))
            rc = collect_range(x, lo, hi, prefix, plen, now, &r);
        if (rc != KV_OK)
            break;
        qsort(r.v, r.n, sizeof *r.v, found_cmp);
        /* The same key in two tables (mid-resize) is given once. */
        size_t distinct = 0;
        for (size_t i = 0; i < r.n; i++)
            if (distinct == 0 || found_cmp(&r.v[distinct - 1], &r.v[i]) != 0)
                r.v[distinct++] = r.v[i];
        r.n = distinct;
        bool stop = false;
        for (size_t i = 0; i < r.n && !stop; i++) {
            const kv__item *it = r.v[i].item;
            count++;
            stop = fn(ctx, kv__item_key(it), kv__item_klen(it), kv__item_value(it),
                      kv__item_vlen(it), kv__item_rev(it), kv__item_expire_at(it)) != 0 ||
                   count >= limit;
            /* Stop only between different hashes, so resuming at hash + 1
             * skips nothing. */
            if (stop && i + 1 < r.n && r.v[i + 1].hash == r.v[i].hash)
                stop = false;
            if (stop) {
                finished = r.v[i].hash == UINT64_MAX;
                resume = r.v[i].hash + 1;
            }
        }
        if (stop)
            break;
        finished = hi == UINT64_MAX;
        lo = resume = hi + 1;
    }
    kv__ebr_unpin(slot);
    if (r.v != r.small)
        free(r.v);
    if (rc == KV_OK)
        *next = finished ? 0 : resume;
    return rc;
}

int kv_scan_ex(kv_store *s, const void *prefix, size_t plen, uint64_t cursor, size_t limit,
               unsigned flags, kv_scan_ex_fn fn, void *ctx, uint64_t *next)
{
    if (flags & ~KV_SCAN_EXPIRED)
        return KV_INVALID_ARGUMENT;
    return kv__scan_ex(s, prefix, plen, cursor, limit, fn, ctx, next,
                       (flags & KV_SCAN_EXPIRED) != 0);
}
