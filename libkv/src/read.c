/*
 * read.c - the read paths: get, exists, the snapshot multi-get, and the
 * prefetch hint.
 *
 * A read pins the thread's epoch (ebr.h), probes the index without any
 * lock and copies what it found. It writes only to its own thread slot.
 *
 * kv_mget must return values that all held at one instant. It notes the
 * change counter of each key's stripe (stripes.h) before reading anything,
 * reads every key, and checks that the counters are unchanged and that no
 * multi-key commit it saw half-way (a pending node) has completed since. If
 * a writer raced it, it simply reads again: it never waits for a writer.
 */
#include <stdlib.h>

#include "evict.h"
#include "hash.h"
#include "history.h"
#include "store.h"

int kv__value_copy(const void *val, size_t vlen, uint64_t version, kv_value *out)
{
    void *data = malloc(vlen ? vlen : 1);
    if (!data)
        return KV_NO_MEMORY;
    if (vlen)
        memcpy(data, val, vlen);
    *out = (kv_value){data, vlen, version};
    return KV_OK;
}

void kv_value_free(kv_value *v)
{
    if (!v)
        return;
    free(v->data);
    *v = (kv_value){NULL, 0, 0};
}

void kv_values_free(kv_value *values, size_t n)
{
    if (!values)
        return;
    for (size_t i = 0; i < n; i++)
        kv_value_free(&values[i]);
}

/* Starts a read: validates the key and pins the epoch. */
static int read_begin(kv_store *s, const void *key, size_t klen, kv__slot **slot)
{
    int rc = kv__check_key(s, key, klen);
    if (rc != KV_OK)
        return rc;
    if (!(*slot = kv__slot_get(&s->slots)))
        return KV_NO_MEMORY;
    kv__ebr_pin(&s->ebr, *slot);
    return KV_OK;
}

/* The visible item of key, an access to it (evict.h); in a read section. */
static kv__item *read_item(kv_store *s, kv__slot *slot, const void *key, size_t klen)
{
    uint64_t h = kv__hash(key, klen);
    uintptr_t w = kv__index_find(s, h, key, klen);
    kv__item *it = w ? kv__slot_visible(w, NULL, kv__clock_now(s)) : NULL;
    if (it)
        kv__evict_touch(s, slot, it);
    return it;
}

static void read_end(kv__slot *slot, bool hit)
{
    kv__ebr_unpin(slot);
    kv__count(slot, KV__C_GETS, 1);
    kv__count(slot, hit ? KV__C_GET_HITS : KV__C_GET_MISSES, 1);
}

int kv_get(kv_store *s, const void *key, size_t klen, kv_value *out)
{
    kv__slot *slot;
    int rc = read_begin(s, key, klen, &slot);
    if (rc != KV_OK)
        return rc;
    kv__item *it = read_item(s, slot, key, klen);
    rc = it ? kv__value_copy(kv__item_value(it), kv__item_vlen(it), kv__item_rev(it), out) : KV_NOT_FOUND;
    read_end(slot, it != NULL);
    return rc;
}

int kv_get_into(kv_store *s, const void *key, size_t klen, void *buf, size_t cap,
                size_t *vlen, uint64_t *version)
{
    if (!vlen || (!buf && cap))
        return KV_INVALID_ARGUMENT;
    kv__slot *slot;
    int rc = read_begin(s, key, klen, &slot);
    if (rc != KV_OK)
        return rc;
    kv__item *it = read_item(s, slot, key, klen);
    if (!it) {
        rc = KV_NOT_FOUND;
    } else if (kv__item_vlen(it) > cap) {
        *vlen = kv__item_vlen(it);
        rc = KV_BUFFER_TOO_SMALL;
    } else {
        if (kv__item_vlen(it))
            memcpy(buf, kv__item_value(it), kv__item_vlen(it));
        *vlen = kv__item_vlen(it);
        if (version)
            *version = kv__item_rev(it);
    }
    read_end(slot, it != NULL);
    return rc;
}

int kv_get_with(kv_store *s, const void *key, size_t klen, kv_read_fn fn, void *ctx)
{
    if (!fn)
        return KV_INVALID_ARGUMENT;
    kv__slot *slot;
    int rc = read_begin(s, key, klen, &slot);
    if (rc != KV_OK)
        return rc;
    kv__item *it = read_item(s, slot, key, klen);
    if (it)
        fn(ctx, kv__item_value(it), kv__item_vlen(it), kv__item_rev(it));
    read_end(slot, it != NULL);
    return it ? KV_OK : KV_NOT_FOUND;
}

int kv_exists(kv_store *s, const void *key, size_t klen, uint64_t *version)
{
    kv__slot *slot;
    int rc = read_begin(s, key, klen, &slot);
    if (rc != KV_OK)
        return rc;
    kv__item *it = read_item(s, slot, key, klen);
    if (it && version)
        *version = kv__item_rev(it);
    read_end(slot, it != NULL);
    return it ? KV_OK : KV_NOT_FOUND;
}

int kv_ttl(kv_store *s, const void *key, size_t klen, uint64_t *expire_at_ms)
{
    if (!expire_at_ms)
        return KV_INVALID_ARGUMENT;
    kv__slot *slot;
    int rc = read_begin(s, key, klen, &slot);
    if (rc != KV_OK)
        return rc;
    uint64_t h = kv__hash(key, klen);
    uintptr_t w = kv__index_find(s, h, key, klen);
    kv__item *it = w ? kv__slot_visible(w, NULL, kv__clock_now(s)) : NULL; /* no access */
    if (it)
        *expire_at_ms = kv__item_expire_at(it);
    kv__ebr_unpin(slot);
    return it ? KV_OK : KV_NOT_FOUND;
}

/* One key of a multi-get. */
typedef struct mkey {
    uint64_t hash;
    uint64_t seq;
    kv__item *item;
    kv__commit *seen_pending;
} mkey;

/* True if nothing the reads saw has changed since their counters were noted. */
static bool snapshot_holds(kv_store *s, const mkey *m, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        if (kv__stripe_seq(s->stripes, kv__stripe_of(m[i].hash)) != m[i].seq)
            return false;
        if (m[i].seen_pending &&
            atomic_load(&m[i].seen_pending->state) != KV__COMMIT_PENDING)
            return false;
    }
    return true;
}

/* Slots a prefetch looks at from a key's home: a chain that long is
 * mostly in the home slot's cache line, which the first wave fetched. */
#define PREFETCH_PROBE 4u

/* The item of the first slot of the key's chain, among the first
 * PREFETCH_PROBE, that has the key's tag and is not pending: for
 * prefetches, which need no more (the key itself is not compared: a slot
 * of another key with the same tag only wastes a prefetch). */
static const kv__item *home_item(kv_store *s, uint64_t hash)
{
    kv__table *t = kv__index_seg(s, hash);
    size_t i = kv__table_home(t, hash);
    uintptr_t tag = kv__slot_tag(hash);
    for (unsigned n = 0; n < PREFETCH_PROBE; n++, i = (i + 1) & t->mask) {
        /* acquire: kv__hist_prefetch_linked reads the item's link, which
         * its writer filled in before publishing it */
        uintptr_t w = atomic_load_explicit(&t->slots[i], memory_order_acquire);
        if (kv__slot_ends_chain(w))
            break;
        if ((w & KV__SLOT_TAG_MASK) == tag && kv__slot_is_key(w) && !(w & KV__SLOT_PENDING))
            return (const kv__item *)(w & KV__SLOT_PTR_MASK);
    }
    return NULL;
}

/* Starts the cache misses of n keys: every home slot first, then the items
 * those slots point to (the keys are independent, so the misses overlap
 * instead of following one another). In a read section. */
static void prefetch_keys(kv_store *s, const mkey *m, size_t n, const kv__item **items)
{
    for (size_t i = 0; i < n; i++) {
        kv__table *t = kv__index_seg(s, m[i].hash);
        __builtin_prefetch(&t->slots[kv__table_home(t, m[i].hash)]);
    }
    for (size_t i = 0; i < n; i++) {
        const kv__item *it = home_item(s, m[i].hash);
        if (it) {
            __builtin_prefetch(it);
            __builtin_prefetch((const char *)it + 64);
        }
        if (items)
            items[i] = it;
    }
}

/* kv_prefetch and kv_prefetch_writes: writes also meet the keys' history
 * (history.h), reads never do. */
static void prefetch(kv_store *s, const kv_key *keys, size_t n, bool writes)
{
    if (!s || !keys || n == 0)
        return;
    kv__slot *slot = kv__slot_get(&s->slots);
    if (!slot)
        return;
    bool hist = writes && s->hist;
    mkey m[16];
    kv__ebr_pin(&s->ebr, slot);
    for (size_t done = 0; done < n;) {
        size_t k = 0;
        for (; done < n && k < 16; done++)
            if (kv__check_key(s, keys[done].data, keys[done].len) == KV_OK)
                m[k++].hash = kv__hash(keys[done].data, keys[done].len);
        const kv__item *items[16];
        prefetch_keys(s, m, k, hist ? items : NULL);
        if (!hist)
            continue;
        /* Two more waves for writes with history: the records the items
         * link (item.h), then those records' newest and oldest versions. */
        for (size_t i = 0; i < k; i++)
            if (items[i])
                kv__hist_prefetch_linked(s, items[i]);
        for (size_t i = 0; i < k; i++)
            if (items[i])
                kv__hist_prefetch_ahead(s, items[i]);
    }
    kv__ebr_unpin(slot);
}

void kv_prefetch(kv_store *s, const kv_key *keys, size_t n)
{
    prefetch(s, keys, n, false);
}

void kv_prefetch_writes(kv_store *s, const kv_key *keys, size_t n)
{
    prefetch(s, keys, n, true);
}

/* A multi-get in progress: its keys' hashes, and what they were found to be. */
typedef struct mget_state {
    kv__slot *slot;
    mkey *m;
    mkey small[16];
} mget_state;

/* Validates the keys and reads them as one snapshot. On KV_OK the caller is
 * in a read section (the items in st->m stay valid) and must call
 * mget_finish. */
static int mget_snapshot(kv_store *s, const kv_key *keys, size_t n, mget_state *st)
{
    if (n && !keys)
        return KV_INVALID_ARGUMENT;
    for (size_t i = 0; i < n; i++) {
        int rc = kv__check_key(s, keys[i].data, keys[i].len);
        if (rc != KV_OK)
            return rc;
    }
    if (!(st->slot = kv__slot_get(&s->slots)))
        return KV_NO_MEMORY;
    st->m = n <= 16 ? st->small : malloc(n * sizeof *st->m);
    if (!st->m)
        return KV_NO_MEMORY;
    mkey *m = st->m;
    for (size_t i = 0; i < n; i++) {
        m[i].hash = kv__hash(keys[i].data, keys[i].len);
        __builtin_prefetch(&s->stripes[kv__stripe_of(m[i].hash)]);
    }

    kv__ebr_pin(&s->ebr, st->slot);
    do {
        for (size_t i = 0; i < n; i++) {
            m[i].seq = kv__stripe_seq(s->stripes, kv__stripe_of(m[i].hash));
            m[i].seen_pending = NULL;
        }
        /* One clock reading for every key of the attempt, so keys set
         * together with one expiry time are all present or all gone. Read
         * after the counters: a writer that removed one of them as expired
         * read the clock before its bump, so this reading is at least
         * that late and finds the others expired too (acquire on the
         * counter, release on the bump). */
        uint64_t now = kv__clock_now(s);
        /* The keys are independent: start all their cache misses before
         * waiting on any. */
        prefetch_keys(s, m, n, NULL);
        for (size_t i = 0; i < n; i++) {
            uintptr_t w = kv__index_find(s, m[i].hash, keys[i].data,
                                         keys[i].len);
            m[i].item = w ? kv__slot_visible(w, &m[i].seen_pending, now) : NULL;
        }
    } while (!snapshot_holds(s, m, n));
    for (size_t i = 0; i < n; i++)
        if (m[i].item)
            kv__evict_touch(s, st->slot, m[i].item);
    return KV_OK;
}

static void mget_finish(mget_state *st, size_t n)
{
    kv__ebr_unpin(st->slot);
    size_t hits = 0;
    for (size_t i = 0; i < n; i++)
        hits += st->m[i].item != NULL;
    kv__count(st->slot, KV__C_GETS, n);
    kv__count(st->slot, KV__C_GET_HITS, hits);
    kv__count(st->slot, KV__C_GET_MISSES, n - hits);
    if (st->m != st->small)
        free(st->m);
}

int kv_mget(kv_store *s, const kv_key *keys, size_t n, kv_value *out)
{
    if (n && !out)
        return KV_INVALID_ARGUMENT;
    mget_state st;
    int rc = mget_snapshot(s, keys, n, &st);
    if (rc != KV_OK)
        return rc;
    for (size_t i = 0; i < n; i++) {
        kv__item *it = st.m[i].item;
        out[i] = (kv_value){NULL, 0, 0};
        if (it && rc == KV_OK)
            rc = kv__value_copy(kv__item_value(it), kv__item_vlen(it), kv__item_rev(it),
                                &out[i]);
    }
    mget_finish(&st, n);
    if (rc != KV_OK)
        kv_values_free(out, n);
    return rc;
}

int kv_mget_with(kv_store *s, const kv_key *keys, size_t n, kv_mget_fn fn, void *ctx)
{
    if (!fn)
        return KV_INVALID_ARGUMENT;
    mget_state st;
    int rc = mget_snapshot(s, keys, n, &st);
    if (rc != KV_OK)
        return rc;
    for (size_t i = 0; i < n; i++) {
        const kv__item *it = st.m[i].item;
        if (it)
            fn(ctx, i, kv__item_value(it), kv__item_vlen(it), kv__item_rev(it));
        else
            fn(ctx, i, NULL, 0, 0);
    }
    mget_finish(&st, n);
    return KV_OK;
}
