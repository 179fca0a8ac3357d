/*
 * ct_lfht.c - reference (a): liburcu's lock-free resizable hash table
 * (cds_lfht, liburcu 0.13), one node per key holding key and value.
 *
 * Compiled twice: with the QSBR flavour (the default reference, "lfht":
 * rcu_read_lock is free and each operation ends with rcu_quiescent_state(),
 * the per-operation equivalent of leaving a read section) and, with
 * KVB_LFHT_MEMB defined, with the membarrier flavour ("lfht-memb":
 * rcu_read_lock/unlock are a thread-local store plus compiler barrier when
 * sys_membarrier is available). _LGPL_SOURCE inlines the read-side
 * primitives, which is how a performance-minded user would build it.
 *
 * Semantics, which differ from libkv's:
 *   set   a new node replaces the old one (cds_lfht_add_replace); the old
 *         one is freed after a grace period (call_rcu).
 *   mget  16 separate lookups in one read section: no snapshot guarantee.
 *   mset  4 separate replaces: NOT atomic, readers can see some of them.
 *   rmw   lookup, then cds_lfht_replace of exactly that node, which fails
 *         if the node was replaced meanwhile (then retry): an atomic
 *         read-modify-write of one key, like a compare-and-swap.
 * The hash is XXH3_64bits of the key, as in libkv.
 */
#define _LGPL_SOURCE
#ifdef KVB_LFHT_MEMB
#include <urcu.h> /* the memb flavour, with the rcu_* names */
#define KVB_LFHT_NAME "lfht-memb"
#define KVB_LFHT_SYM kvb_lfht_memb
#define KVB_QUIESCE() ((void)0)
#else
#include <urcu-qsbr.h> /* with the rcu_* names */
#define KVB_LFHT_NAME "lfht"
#define KVB_LFHT_SYM kvb_lfht_qsbr
#define KVB_QUIESCE() rcu_quiescent_state()
#endif
#include <urcu/rculfhash.h>

#include <stdlib.h>
/* Inlined, exactly as libkv includes it (libkv/src/hash.h). */
#define XXH_INLINE_ALL
#include <xxhash.h>

#include "bench.h"

typedef struct lnode {
    struct cds_lfht_node node;
    struct rcu_head rcu;
    uint32_t klen, vlen;
    unsigned char data[]; /* key, then value */
} lnode;

typedef struct lkey {
    const void *data;
    size_t len;
} lkey;

static int match(struct cds_lfht_node *n, const void *key)
{
    const lnode *ln = caa_container_of(n, lnode, node);
    const lkey *k = key;
    return ln->klen == k->len && memcmp(ln->data, k->data, k->len) == 0;
}

static lnode *node_new(const void *key, size_t klen, const void *val, size_t vlen)
{
    lnode *n = malloc(sizeof *n + klen + vlen);
    if (!n)
        return NULL;
    cds_lfht_node_init(&n->node);
    n->klen = (uint32_t)klen;
    n->vlen = (uint32_t)vlen;
    memcpy(n->data, key, klen);
    memcpy(n->data + klen, val, vlen);
    return n;
}

static void node_free_rcu(struct rcu_head *head)
{
    free(caa_container_of(head, lnode, rcu));
}

static unsigned long next_pow2(size_t n)
{
    unsigned long p = 1;
    while (p < n)
        p <<= 1;
    return p;
}

static void *lfht_open(size_t nkeys)
{
    /* Sized for one node per bucket up front, as libkv is; it may still
     * grow (AUTO_RESIZE) but never needs to in this benchmark. */
    unsigned long size = next_pow2(nkeys);
    return cds_lfht_new(size, size, 0, CDS_LFHT_AUTO_RESIZE | CDS_LFHT_ACCOUNTING, NULL);
}

static void lfht_close(void *h)
{
    struct cds_lfht *ht = h;
    struct cds_lfht_iter it;
    lnode *n;
    rcu_register_thread();
    rcu_read_lock();
    cds_lfht_for_each_entry(ht, &it, n, node) {
        if (cds_lfht_del(ht, &n->node) == 0)
            call_rcu(&n->rcu, node_free_rcu);
    }
    rcu_read_unlock();
    rcu_unregister_thread();
    rcu_barrier(); /* every node is freed when it returns */
    cds_lfht_destroy(ht, NULL);
}

static void lfht_thread_enter(void *h)
{
    (void)h;
    rcu_register_thread();
}

static void lfht_thread_leave(void *h)
{
    (void)h;
    rcu_unregister_thread();
}

static int lfht_get(void *h, const kvb_key *k, void *buf, size_t cap, size_t *vlen)
{
    lkey key = {k->data, k->len};
    struct cds_lfht_iter it;
    int rc = -1;
    rcu_read_lock();
    cds_lfht_lookup(h, XXH3_64bits(k->data, k->len), match, &key, &it);
    struct cds_lfht_node *n = cds_lfht_iter_get_node(&it);
    if (n) {
        const lnode *ln = caa_container_of(n, lnode, node);
        if (ln->vlen <= cap) {
            memcpy(buf, ln->data + ln->klen, ln->vlen);
            *vlen = ln->vlen;
            rc = 0;
        }
    }
    rcu_read_unlock();
    KVB_QUIESCE();
    return rc;
}

/* Sets one key; the caller is in a read section. */
static int set_locked(struct cds_lfht *ht, const kvb_key *k, const void *val, size_t vlen)
{
    lnode *n = node_new(k->data, k->len, val, vlen);
    if (!n)
        return -1;
    lkey key = {k->data, k->len};
    struct cds_lfht_node *old =
        cds_lfht_add_replace(ht, XXH3_64bits(k->data, k->len), match, &key, &n->node);
    if (old)
        call_rcu(&caa_container_of(old, lnode, node)->rcu, node_free_rcu);
    return 0;
}

static int lfht_set(void *h, const kvb_key *k, const void *val, size_t vlen)
{
    rcu_read_lock();
    int rc = set_locked(h, k, val, vlen);
    rcu_read_unlock();
    KVB_QUIESCE();
    return rc;
}

static int lfht_mget(void *h, const kvb_key *keys, size_t n, unsigned char *bufs,
                     size_t cap, uint64_t *sum)
{
    int rc = 0;
    uint64_t s = 0;
    rcu_read_lock();
    for (size_t i = 0; i < n; i++) {
        lkey key = {keys[i].data, keys[i].len};
        struct cds_lfht_iter it;
        cds_lfht_lookup(h, XXH3_64bits(keys[i].data, keys[i].len), match, &key, &it);
        struct cds_lfht_node *nd = cds_lfht_iter_get_node(&it);
        const lnode *ln = nd ? caa_container_of(nd, lnode, node) : NULL;
        if (!ln || ln->vlen > cap) {
            rc = -1;
            continue;
        }
        memcpy(bufs + i * cap, ln->data + ln->klen, ln->vlen);
        s += ln->vlen + bufs[i * cap];
    }
    rcu_read_unlock();
    KVB_QUIESCE();
    *sum += s;
    return rc;
}

static int lfht_mset(void *h, const kvb_key *keys, size_t n, const void *val, size_t vlen)
{
    int rc = 0;
    rcu_read_lock();
    for (size_t i = 0; i < n && rc == 0; i++)
        rc = set_locked(h, &keys[i], val, vlen);
    rcu_read_unlock();
    KVB_QUIESCE();
    return rc;
}

static int lfht_rmw(void *h, const kvb_key *k, uint64_t *retries)
{
    struct cds_lfht *ht = h;
    lkey key = {k->data, k->len};
    unsigned long hash = XXH3_64bits(k->data, k->len);
    int rc = -1;
    rcu_read_lock();
    for (;;) {
        struct cds_lfht_iter it;
        cds_lfht_lookup(ht, hash, match, &key, &it);
        struct cds_lfht_node *old = cds_lfht_iter_get_node(&it);
        if (!old)
            break;
        const lnode *ol = caa_container_of(old, lnode, node);
        lnode *n = node_new(ol->data, ol->klen, ol->data + ol->klen, ol->vlen);
        if (!n)
            break;
        kvb_counter_put(n->data + n->klen, n->vlen,
                        kvb_counter_get(n->data + n->klen, n->vlen) + 1);
        if (cds_lfht_replace(ht, &it, hash, match, &key, &n->node) == 0) {
            call_rcu(&caa_container_of(old, lnode, node)->rcu, node_free_rcu);
            rc = 0;
            break;
        }
        free(n); /* never published */
        (*retries)++;
    }
    rcu_read_unlock();
    KVB_QUIESCE();
    return rc;
}

static uint64_t lfht_memory(void *h)
{
    (void)h;
    return 0;
}

const kvb_contender KVB_LFHT_SYM = {
    .name = KVB_LFHT_NAME,
#ifdef KVB_LFHT_MEMB
    .about = "liburcu cds_lfht, memb flavour (rcu_read_lock per operation); "
             "mget = 16 lookups, mset = 4 replaces (not atomic)",
#else
    .about = "liburcu cds_lfht, QSBR flavour (rcu_quiescent_state after each "
             "operation); mget = 16 lookups, mset = 4 replaces (not atomic)",
#endif
    .open = lfht_open,
    .close = lfht_close,
    .thread_enter = lfht_thread_enter,
    .thread_leave = lfht_thread_leave,
    .get = lfht_get,
    .set = lfht_set,
    .mget = lfht_mget,
    .mset = lfht_mset,
    .rmw = lfht_rmw,
    .memory_bytes = lfht_memory,
};
