/*
 * ct_libkv.c - the contender under test: libkv through its public API.
 *
 * get uses kv_get_into and mget kv_mget_with (no allocation: each copies
 * into the caller's buffers, as the references do; until libkv 861fc2c, which
 * had no kv_mget_with, mget was kv_mget, allocating every value); mset is one
 * atomic kv_mset; rmw is an optimistic transaction (get, set, commit),
 * retried on KV_CONFLICT.
 */
#include <stdlib.h>

#include "bench.h"
#include "kv.h"

static void *libkv_open(size_t nkeys)
{
    kv_options o;
    kv_options_init(&o);
    o.initial_capacity = nkeys;
    kv_store *s;
    return kv_open(&o, &s) == KV_OK ? s : NULL;
}

static void libkv_close(void *h)
{
    kv_close(h);
}

static void libkv_thread(void *h)
{
    (void)h;
}

static int libkv_get(void *h, const kvb_key *k, void *buf, size_t cap, size_t *vlen)
{
    return kv_get_into(h, k->data, k->len, buf, cap, vlen, NULL);
}

static int libkv_set(void *h, const kvb_key *k, const void *val, size_t vlen)
{
    return kv_set(h, k->data, k->len, val, vlen, NULL);
}

/* Copies key i's value into its slot of the caller's buffers. */
typedef struct mget_ctx {
    unsigned char *bufs;
    size_t cap;
    uint64_t sum;
    int missing;
} mget_ctx;

static void mget_copy(void *ctx, size_t i, const void *val, size_t vlen, uint64_t version)
{
    (void)version;
    mget_ctx *m = ctx;
    if (!val || vlen > m->cap) {
        m->missing = 1;
        return;
    }
    memcpy(m->bufs + i * m->cap, val, vlen);
    m->sum += vlen + m->bufs[i * m->cap];
}

static int libkv_mget(void *h, const kvb_key *keys, size_t n, unsigned char *bufs,
                      size_t cap, uint64_t *sum)
{
    kv_key kk[KVB_MGET_N] = {{0}}; /* GCC 12 cannot tell n > 0 */
    if (n == 0 || n > KVB_MGET_N)
        return -1;
    for (size_t i = 0; i < n; i++)
        kk[i] = (kv_key){keys[i].data, keys[i].len};
    mget_ctx m = {bufs, cap, 0, 0};
    int rc = kv_mget_with(h, kk, n, mget_copy, &m);
    *sum += m.sum;
    return rc != KV_OK ? rc : m.missing ? -1 : 0;
}

static int libkv_mset(void *h, const kvb_key *keys, size_t n, const void *val, size_t vlen)
{
    kv_pair p[KVB_MSET_N];
    if (n == 0 || n > KVB_MSET_N)
        return -1;
    for (size_t i = 0; i < n; i++)
        p[i] = (kv_pair){keys[i].data, keys[i].len, val, vlen};
    return kv_mset(h, p, n, NULL);
}

static int libkv_rmw(void *h, const kvb_key *k, uint64_t *retries)
{
    for (;;) {
        kv_txn *t;
        int rc = kv_txn_begin(h, &t);
        if (rc != KV_OK)
            return rc;
        kv_value v;
        rc = kv_txn_get(t, k->data, k->len, &v);
        if (rc == KV_OK) {
            kvb_counter_put(v.data, v.len, kvb_counter_get(v.data, v.len) + 1);
            rc = kv_txn_set(t, k->data, k->len, v.data, v.len);
            kv_value_free(&v);
        }
        if (rc == KV_OK || rc == KV_CONFLICT) {
            /* A doomed transaction's commit says KV_CONFLICT too. */
            rc = kv_txn_commit(t, NULL);
        } else {
            kv_txn_abort(t);
        }
        if (rc != KV_CONFLICT)
            return rc;
        (*retries)++;
    }
}

static uint64_t libkv_memory(void *h)
{
    kv_metrics m;
    return kv_metrics_read(h, &m, sizeof m) == KV_OK ? m.memory_bytes : 0;
}

const kvb_contender kvb_libkv = {
    .name = "libkv",
    .about = "libkv " KV_VERSION_STRING ": kv_get_into, kv_set, kv_mget_with (atomic), "
             "kv_mset (atomic), kv_txn get+set+commit",
    .open = libkv_open,
    .close = libkv_close,
    .thread_enter = libkv_thread,
    .thread_leave = libkv_thread,
    .get = libkv_get,
    .set = libkv_set,
    .mget = libkv_mget,
    .mset = libkv_mset,
    .rmw = libkv_rmw,
    .memory_bytes = libkv_memory,
};
