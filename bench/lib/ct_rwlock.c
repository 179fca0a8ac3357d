/*
 * ct_rwlock.c - reference (b): what a naive store does. A chained hash
 * table (one node per key, key and value inline) under one global pthread
 * rwlock: readers share it, every writer excludes everyone.
 *
 * Sized once for the key count (a bucket per key) and never resized: the
 * benchmark's key set is fixed after loading. A set of an existing key with
 * a value of the same size overwrites it in place under the write lock.
 * mget and mset take the lock once for all their keys, so both are atomic;
 * rmw holds the write lock across the read and the write.
 */
#include <pthread.h>
#include <stdlib.h>
/* Inlined, exactly as libkv includes it (libkv/src/hash.h). */
#define XXH_INLINE_ALL
#include <xxhash.h>

#include "bench.h"

typedef struct rnode {
    struct rnode *next;
    uint64_t hash;
    uint32_t klen, vlen;
    unsigned char data[]; /* key, then value */
} rnode;

typedef struct rtable {
    pthread_rwlock_t lock;
    size_t mask;
    rnode **buckets;
} rtable;

static void *rw_open(size_t nkeys)
{
    rtable *t = calloc(1, sizeof *t);
    if (!t)
        return NULL;
    size_t size = 1;
    while (size < nkeys)
        size <<= 1;
    t->mask = size - 1;
    t->buckets = calloc(size, sizeof *t->buckets);
    if (!t->buckets || pthread_rwlock_init(&t->lock, NULL) != 0) {
        free(t->buckets);
        free(t);
        return NULL;
    }
    return t;
}

static void rw_close(void *h)
{
    rtable *t = h;
    for (size_t i = 0; i <= t->mask; i++) {
        rnode *n = t->buckets[i];
        while (n) {
            rnode *next = n->next;
            free(n);
            n = next;
        }
    }
    pthread_rwlock_destroy(&t->lock);
    free(t->buckets);
    free(t);
}

static void rw_thread(void *h)
{
    (void)h;
}

/* The link pointing at key's node (or the chain's terminating NULL). */
static rnode **find(rtable *t, uint64_t hash, const kvb_key *k)
{
    rnode **p = &t->buckets[hash & t->mask];
    for (; *p; p = &(*p)->next)
        if ((*p)->hash == hash && (*p)->klen == k->len && memcmp((*p)->data, k->data, k->len) == 0)
            break;
    return p;
}

static int rw_get(void *h, const kvb_key *k, void *buf, size_t cap, size_t *vlen)
{
    rtable *t = h;
    uint64_t hash = XXH3_64bits(k->data, k->len);
    int rc = -1;
    pthread_rwlock_rdlock(&t->lock);
    const rnode *n = *find(t, hash, k);
    if (n && n->vlen <= cap) {
        memcpy(buf, n->data + n->klen, n->vlen);
        *vlen = n->vlen;
        rc = 0;
    }
    pthread_rwlock_unlock(&t->lock);
    return rc;
}

/* Caller holds the write lock. */
static int set_locked(rtable *t, const kvb_key *k, const void *val, size_t vlen)
{
    uint64_t hash = XXH3_64bits(k->data, k->len);
    rnode **p = find(t, hash, k);
    rnode *n = *p;
    if (n && n->vlen == vlen) {
        memcpy(n->data + n->klen, val, vlen);
        return 0;
    }
    rnode *fresh = malloc(sizeof *fresh + k->len + vlen);
    if (!fresh)
        return -1;
    *fresh = (rnode){n ? n->next : NULL, hash, (uint32_t)k->len, (uint32_t)vlen};
    memcpy(fresh->data, k->data, k->len);
    memcpy(fresh->data + k->len, val, vlen);
    *p = fresh;
    free(n);
    return 0;
}

static int rw_set(void *h, const kvb_key *k, const void *val, size_t vlen)
{
    rtable *t = h;
    pthread_rwlock_wrlock(&t->lock);
    int rc = set_locked(t, k, val, vlen);
    pthread_rwlock_unlock(&t->lock);
    return rc;
}

static int rw_mget(void *h, const kvb_key *keys, size_t n, unsigned char *bufs, size_t cap,
                   uint64_t *sum)
{
    rtable *t = h;
    uint64_t hashes[KVB_MGET_N];
    if (n > KVB_MGET_N)
        return -1;
    for (size_t i = 0; i < n; i++)
        hashes[i] = XXH3_64bits(keys[i].data, keys[i].len);
    int rc = 0;
    uint64_t s = 0;
    pthread_rwlock_rdlock(&t->lock);
    for (size_t i = 0; i < n; i++) {
        const rnode *nd = *find(t, hashes[i], &keys[i]);
        if (!nd || nd->vlen > cap) {
            rc = -1;
            continue;
        }
        memcpy(bufs + i * cap, nd->data + nd->klen, nd->vlen);
        s += nd->vlen + bufs[i * cap];
    }
    pthread_rwlock_unlock(&t->lock);
    *sum += s;
    return rc;
}

static int rw_mset(void *h, const kvb_key *keys, size_t n, const void *val, size_t vlen)
{
    rtable *t = h;
    int rc = 0;
    pthread_rwlock_wrlock(&t->lock);
    for (size_t i = 0; i < n && rc == 0; i++)
        rc = set_locked(t, &keys[i], val, vlen);
    pthread_rwlock_unlock(&t->lock);
    return rc;
}

static int rw_rmw(void *h, const kvb_key *k, uint64_t *retries)
{
    (void)retries;
    rtable *t = h;
    int rc = -1;
    pthread_rwlock_wrlock(&t->lock);
    rnode *n = *find(t, XXH3_64bits(k->data, k->len), k);
    if (n) {
        unsigned char *v = n->data + n->klen;
        kvb_counter_put(v, n->vlen, kvb_counter_get(v, n->vlen) + 1);
        rc = 0;
    }
    pthread_rwlock_unlock(&t->lock);
    return rc;
}

static uint64_t rw_memory(void *h)
{
    (void)h;
    return 0;
}

const kvb_contender kvb_rwlock = {
    .name = "rwlock",
    .about = "chained hash table under one global pthread rwlock (naive store); "
             "mget/mset atomic under the lock",
    .open = rw_open,
    .close = rw_close,
    .thread_enter = rw_thread,
    .thread_leave = rw_thread,
    .get = rw_get,
    .set = rw_set,
    .mget = rw_mget,
    .mset = rw_mset,
    .rmw = rw_rmw,
    .memory_bytes = rw_memory,
};
