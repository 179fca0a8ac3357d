/*
 * store.c - opening and closing a store, and the write operations, each of
 * which is one batch for kv__apply() (apply.c).
 */
#include <stdlib.h>
#include <string.h>

#include "apply.h"
#include "evict.h"
#include "history.h"
#include "store.h"
#include "watch.h"

#define DEFAULT_CAPACITY 1024u

void kv_options_init(kv_options *opts)
{
    if (!opts)
        return;
    *opts = (kv_options){
        .initial_capacity = DEFAULT_CAPACITY,
        .max_key_size = KV_DEFAULT_MAX_KEY_SIZE,
        .max_value_size = KV_DEFAULT_MAX_VALUE_SIZE,
        .max_keys = 0,
    };
}

/* The size of each segment's first table: its share of initial_capacity
 * below its grow mark; up to the default capacity a store of one table
 * starts at 1024 slots, a store of segments with its smallest tables
 * (table.h: 32 x 16 slots, 8 KiB). */
static unsigned index_bits(const kv_store *s)
{
    unsigned bits = s->seg_bits ? KV__SEG_MIN_BITS : 10;
    if (s->opts.initial_capacity > DEFAULT_CAPACITY) {
        size_t share = (s->opts.initial_capacity + kv__nsegs(s) - 1) / kv__nsegs(s);
        while (((size_t)1 << bits) / 4 * 3 < share)
            bits++;
    }
    return bits;
}

int kv__index_split(kv_store *s)
{
    if (s->seg_bits)
        return KV_OK;
    kv__table *t[KV__NSEGS] = {0};
    s->seg_bits = KV__SEG_BITS;
    unsigned bits = index_bits(s);
    for (unsigned g = 0; g < KV__NSEGS; g++)
        if (!(t[g] = kv__table_new(bits, kv__huge_pages(s)))) {
            for (unsigned k = 0; k < g; k++)
                kv__table_free(t[k]);
            s->seg_bits = 0;
            return KV_NO_MEMORY;
        }
    kv__table_free(kv__seg_table(s, 0));
    for (unsigned g = 0; g < KV__NSEGS; g++)
        kv__seg_set(s, g, t[g]);
    return KV_OK;
}

int kv_open(const kv_options *opts, kv_store **out)
{
    return kv__open(opts, KV_HUGE_EAGER, out);
}

int kv__open(const kv_options *opts, int huge_pages, kv_store **out)
{
    kv_options o;
    kv_options_init(&o);
    if (opts)
        o = *opts;
    if (!out || o.max_key_size == 0 || o.max_key_size > KV_LIMIT_MAX_KEY_SIZE ||
        o.max_value_size > KV_LIMIT_MAX_VALUE_SIZE ||
        o.initial_capacity > ((size_t)1 << 40))
        return KV_INVALID_ARGUMENT;

    kv__ebr_global_init();
    kv_store *s = aligned_alloc(64, sizeof *s);
    if (!s)
        return KV_NO_MEMORY;
    memset(s, 0, sizeof *s);
    s->opts = o;
    /* One table (kv__index_split makes segments of it for a store with a
     * memory limit), sized as index_bits says. */
    s->stripes = kv__stripes_new();
    kv__table *t = s->stripes ? kv__table_new(index_bits(s), huge_pages == KV_HUGE_EAGER) : NULL;
    if (!t) {
        kv__stripes_free(s->stripes);
        free(s);
        return KV_NO_MEMORY;
    }
    kv__seg_set(s, 0, t);
    atomic_init(&s->resizing, -1);
    kv__slab_init(&s->slab, huge_pages);
    s->slots.slab = &s->slab;
    s->ebr.slots = &s->slots;
    atomic_init(&s->ebr.epoch, 1);
    pthread_mutex_init(&s->expiry_mu, NULL);
    kv__clock_refresh(s);
    *out = s;
    return KV_OK;
}

static void free_word(uintptr_t w, size_t pre)
{
    if (!kv__slot_is_key(w))
        return;
    /* No pending nodes survive a completed write, so w is an item. */
    kv__item_free_at_close(kv__slot_ptr(w), pre);
}

void kv_close(kv_store *s)
{
    if (!s)
        return;
    kv_clock_pin(s, 0); /* a later store at this address is not pinned */
    kv__expiry_stop(s); /* it writes: before the log stops */
    kv__feed_close(s);
    kv__hist_close(s);
    kv__durable_close(s);
    kv__ebr_drain_all(&s->ebr);
    for (unsigned g = 0; g < kv__nsegs(s); g++) {
        kv__table *t = kv__seg_table(s, g);
        while (t) {
            kv__table *next = atomic_load(&t->next);
            /* A slot moved to the next table is freed there. */
            for (size_t i = 0; i < kv__table_size(t); i++)
                free_word(atomic_load_explicit(&t->slots[i], memory_order_relaxed),
                          s->item_pre);
            kv__table_free(t);
            t = next;
        }
    }
    kv__slot_dir_free(&s->slots);
    kv__slab_destroy(&s->slab);
    kv__stripes_free(s->stripes);
    pthread_mutex_destroy(&s->expiry_mu);
    kv__evict_free(s);
    free(s);
}

/* Runs a batch and frees its outcome: for the operations that need only
 * the summary fields. */
static int apply_simple(kv_store *s, const kv__batch *b, kv__outcome *o)
{
    int rc = kv__apply(s, b, o);
    if (rc == KV_OK)
        kv__outcome_free(o);
    return rc;
}

/* op on its key only if the key's version is expected (0: absent). */
static int apply_cas(kv_store *s, const kv_op *op, uint64_t expected, kv__outcome *o)
{
    kv_compare cmp = {.kind = KV_CMP_VERSION_EQ, .key = op->key, .klen = op->klen,
                      .version = expected};
    return apply_simple(s, &(kv__batch){.cmps = &cmp, .ncmps = 1, .then_ops = op, .nthen = 1}, o);
}

static void count_cas_failure(kv_store *s)
{
    kv__slot *slot = kv__slot_get(&s->slots);
    if (slot)
        kv__count(slot, KV__C_CAS_FAILURES, 1);
}

int kv_set(kv_store *s, const void *key, size_t klen, const void *val, size_t vlen,
           uint64_t *version)
{
    return kv_set_ex(s, key, klen, val, vlen, 0, version);
}

int kv_set_ex(kv_store *s, const void *key, size_t klen, const void *val, size_t vlen,
              uint64_t expire_at_ms, uint64_t *version)
{
    kv_op op = {KV_OP_SET, key, klen, val, vlen, expire_at_ms};
    kv__outcome o;
    int rc = apply_simple(s, &(kv__batch){.then_ops = &op, .nthen = 1}, &o);
    if (rc == KV_OK && version)
        *version = o.revision;
    return rc;
}

int kv_set_if(kv_store *s, const void *key, size_t klen, const void *val, size_t vlen,
              uint64_t expected, uint64_t *version)
{
    kv_op op = {KV_OP_SET, key, klen, val, vlen, 0};
    kv__outcome o;
    int rc = apply_cas(s, &op, expected, &o);
    if (rc != KV_OK)
        return rc;
    if (!o.succeeded) {
        count_cas_failure(s);
        return KV_VERSION_MISMATCH;
    }
    if (version)
        *version = o.revision;
    return KV_OK;
}

int kv_delete(kv_store *s, const void *key, size_t klen, uint64_t *version)
{
    kv_op op = {KV_OP_DELETE, key, klen, NULL, 0, 0};
    kv__outcome o;
    int rc = apply_simple(s, &(kv__batch){.then_ops = &op, .nthen = 1}, &o);
    if (rc != KV_OK)
        return rc;
    if (!o.deleted)
        return KV_NOT_FOUND;
    if (version)
        *version = o.revision;
    return KV_OK;
}

int kv_delete_if(kv_store *s, const void *key, size_t klen, uint64_t expected,
                 uint64_t *version)
{
    if (expected == 0)
        return KV_INVALID_ARGUMENT;
    kv_op op = {KV_OP_DELETE, key, klen, NULL, 0, 0};
    kv__outcome o;
    int rc = apply_cas(s, &op, expected, &o);
    if (rc != KV_OK)
        return rc;
    if (!o.succeeded) {
        if (o.failed_version == 0)
            return KV_NOT_FOUND;
        count_cas_failure(s);
        return KV_VERSION_MISMATCH;
    }
    if (version)
        *version = o.revision;
    return KV_OK;
}

/* kv_mset and kv_mdelete: n SETs (pairs, all expiring at expire_at) or n
 * DELETEs (keys) as one batch. */
static int apply_many(kv_store *s, const kv_pair *pairs, const kv_key *keys, size_t n,
                      uint64_t expire_at, kv__outcome *o)
{
    if (n && !pairs && !keys)
        return KV_INVALID_ARGUMENT;
    kv_op small[16];
    kv_op *ops = n <= 16 ? small : malloc(n * sizeof *ops);
    if (!ops)
        return KV_NO_MEMORY;
    for (size_t i = 0; i < n; i++)
        ops[i] = pairs ? (kv_op){KV_OP_SET, pairs[i].key, pairs[i].klen, pairs[i].val,
                                 pairs[i].vlen, expire_at}
                       : (kv_op){KV_OP_DELETE, keys[i].data, keys[i].len, NULL, 0, 0};
    int rc = apply_simple(s, &(kv__batch){.then_ops = ops, .nthen = n}, o);
    if (ops != small)
        free(ops);
    return rc;
}

int kv_mset(kv_store *s, const kv_pair *pairs, size_t n, uint64_t *version)
{
    return kv_mset_ex(s, pairs, n, 0, version);
}

int kv_mset_ex(kv_store *s, const kv_pair *pairs, size_t n, uint64_t expire_at_ms,
               uint64_t *version)
{
    kv__outcome o;
    int rc = apply_many(s, pairs, NULL, n, expire_at_ms, &o);
    if (rc == KV_OK && version && o.revision)
        *version = o.revision;
    return rc;
}

int kv_mdelete(kv_store *s, const kv_key *keys, size_t n, size_t *deleted,
               uint64_t *version)
{
    kv__outcome o;
    int rc = apply_many(s, NULL, keys, n, 0, &o);
    if (rc == KV_OK) {
        if (deleted)
            *deleted = o.deleted;
        if (version && o.revision)
            *version = o.revision;
    }
    return rc;
}

/* ---- expiry ------------------------------------------------------------ */

/* now + ttl_ms on the store's clock, or 0 if ttl_ms is 0 (invalid). */
static uint64_t expire_from_ttl(kv_store *s, uint64_t ttl_ms)
{
    if (!s || ttl_ms == 0)
        return 0;
    uint64_t now = kv__clock_refresh(s);
    return ttl_ms > UINT64_MAX - now ? UINT64_MAX : now + ttl_ms;
}

int kv_set_ttl(kv_store *s, const void *key, size_t klen, const void *val, size_t vlen,
               uint64_t ttl_ms, uint64_t *version)
{
    uint64_t at = expire_from_ttl(s, ttl_ms);
    return at ? kv_set_ex(s, key, klen, val, vlen, at, version) : KV_INVALID_ARGUMENT;
}

int kv_mset_ttl(kv_store *s, const kv_pair *pairs, size_t n, uint64_t ttl_ms,
                uint64_t *version)
{
    uint64_t at = expire_from_ttl(s, ttl_ms);
    return at ? kv_mset_ex(s, pairs, n, at, version) : KV_INVALID_ARGUMENT;
}

int kv_expire(kv_store *s, const void *key, size_t klen, uint64_t expire_at_ms,
              uint64_t *version)
{
    if (!s)
        return KV_INVALID_ARGUMENT;
    kv_op op = {KV__OP_EXPIRE, key, klen, NULL, 0, expire_at_ms};
    kv__outcome o;
    int rc = kv__apply(s, &(kv__batch){.then_ops = &op, .nthen = 1, .want_results = true,
                                       .internal = true},
                       &o);
    if (rc != KV_OK)
        return rc;
    rc = o.results[0].status;
    uint64_t ver = o.results[0].value.version;
    if (rc == KV_OK && version)
        *version = ver ? ver : o.revision;
    kv__outcome_free(&o);
    return rc;
}

int kv_persist(kv_store *s, const void *key, size_t klen, uint64_t *version)
{
    return kv_expire(s, key, klen, 0, version);
}
