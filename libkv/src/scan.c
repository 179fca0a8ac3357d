/*
 * scan.c - prefix scan with a cursor.
 *
 * Keys are visited in the order of their hash, and the cursor is a hash
 * value: "everything below this has been visited". Since a key's hash does
 * not change when the index grows, a scan survives resizes: with linear
 * probing a key sits at or after its home slot (hash's top bits), so the
 * keys of a hash range are found by walking from the range's first home
 * slot to the end of the probe chain past its last one.
 */
#include "hash.h"
#include "store.h"

typedef struct scan_ctx {
    const void *prefix;
    size_t plen;
    kv_scan_fn fn;
    void *ctx;
    size_t count;
    bool stop;
} scan_ctx;

/* Visits the keys with hash in [lo, hi] stored in table t. */
static void scan_range(kv__table *t, uint64_t lo, uint64_t hi, scan_ctx *sc)
{
    size_t first = (size_t)(lo >> t->shift), last = (size_t)(hi >> t->shift);
    size_t span = (last - first) & t->mask;
    for (size_t d = 0; d <= kv__table_size(t) && !sc->stop; d++) {
        size_t j = (first + d) & t->mask;
        uintptr_t v = atomic_load(&t->slots[j]);
        if (kv__slot_ends_chain(v)) {
            if (d > span)
                return;
            continue;
        }
        if (!kv__slot_is_key(v))
            continue;
        const kv__item *it = kv__slot_visible(v, NULL);
        if (!it || kv__item_klen(it) < sc->plen ||
            (sc->plen && memcmp(kv__item_key(it), sc->prefix, sc->plen) != 0))
            continue;
        uint64_t h = kv__hash(kv__item_key(it), kv__item_klen(it));
        if (h < lo || h > hi)
            continue;
        sc->count++;
        if (sc->fn(sc->ctx, kv__item_key(it), kv__item_klen(it), kv__item_value(it), kv__item_vlen(it), kv__item_rev(it)))
            sc->stop = true;
    }
}

int kv_scan(kv_store *s, const void *prefix, size_t plen, uint64_t cursor, size_t limit,
            kv_scan_fn fn, void *ctx, uint64_t *next)
{
    if (!s || !fn || !next || limit == 0 || (plen && !prefix))
        return KV_INVALID_ARGUMENT;
    kv__slot *slot = kv__slot_get(&s->slots);
    if (!slot)
        return KV_NO_MEMORY;
    scan_ctx sc = {prefix, plen, fn, ctx, 0, false};
    kv__ebr_pin(&s->ebr, slot);
    kv__table *t = atomic_load(&s->table);
    /* One step is the hash range of one home slot of the current table. */
    uint64_t step_mask = t->shift >= 64 ? UINT64_MAX : (((uint64_t)1 << t->shift) - 1);
    uint64_t lo = cursor;
    bool done = false;
    while (!done && !sc.stop && sc.count < limit) {
        uint64_t hi = lo | step_mask;
        for (kv__table *x = t; x; x = atomic_load(&x->next))
            scan_range(x, lo, hi, &sc);
        lo = hi + 1;
        done = hi == UINT64_MAX;
    }
    kv__ebr_unpin(slot);
    /* A callback that stopped the scan is resumed at the start of its range. */
    *next = done && !sc.stop ? 0 : lo;
    return KV_OK;
}
