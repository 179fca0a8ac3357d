/*
 * test_resize.c - the index grows one segment at a time (resize.c,
 * table.h): a fresh store's index is small, a store growing under a memory
 * limit sees its index grow in steps of at most one segment's doubling,
 * and every key stays findable by get and scan while segments are copied,
 * with readers running all along. White-box only for KV__NSEGS and the
 * fresh index's bytes; the growth is read from kv_metrics.
 */
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "kvtest.h"
#include "store.h"

#if defined(__SANITIZE_ADDRESS__) || defined(__SANITIZE_THREAD__)
#define NKEYS 300000u /* the sanitizers are 5-20x slower */
#else
#define NKEYS 2000000u
#endif

static kv_store *open_limited(uint64_t max_memory)
{
    kv_config c;
    kv_config_init(&c, sizeof c);
    c.max_memory = max_memory;
    kv_store *s = NULL;
    cr_assert_eq(kv_open_config(&c, &s), KV_OK);
    return s;
}

Test(resize, a_fresh_store_index_is_no_bigger_than_one_1024_slot_table)
{
    /* without a memory limit: one table, as it always was */
    kv_store *s = kvt_open(NULL); /* default initial_capacity */
    kv_metrics m = kvt_metrics(s);
    cr_assert_eq(m.table_slots, 1024);
    cr_assert_eq(kv__nsegs(s), 1);
    kv_close(s);
    /* with one: KV__NSEGS segments at their smallest, no bigger in all */
    s = open_limited(64u << 20);
    m = kvt_metrics(s);
    cr_assert_eq(kv__nsegs(s), KV__NSEGS);
    cr_assert_eq(m.table_slots, KV__NSEGS << KV__SEG_MIN_BITS);
    cr_assert_leq(kv__index_bytes(s, NULL), sizeof(kv__table) + 1024 * sizeof(uintptr_t));
    kv_close(s);

    /* a capacity beyond the default sizes every segment for its share */
    s = kvt_open_cap(1u << 20);
    m = kvt_metrics(s);
    cr_assert_geq(m.table_slots / 4 * 3, 1u << 20);
    cr_assert_leq(m.table_slots, 2u << 20, "no bigger than one table for it was");
    for (unsigned i = 0; i < 1000; i++)
        cr_assert_eq(kv_set(s, &i, sizeof i, "v", 1, NULL), KV_OK);
    cr_assert_eq(kvt_metrics(s).table_resizes, 0);
    kv_close(s);
}

typedef struct growth {
    kv_store *s;
    _Atomic uint32_t published; /* keys 0..published-1 are set */
    _Atomic bool done;
    _Atomic uint64_t gets, get_misses, scans, scan_misses;
} growth;

static int key_text(char *buf, uint32_t i)
{
    return snprintf(buf, 16, "k%07u", i);
}

static void *getter(void *arg)
{
    growth *g = arg;
    uint64_t rng = (uint64_t)(uintptr_t)&rng;
    char k[16], v[16];
    while (!atomic_load(&g->done)) {
        uint32_t n = atomic_load(&g->published);
        if (!n)
            continue;
        rng = rng * 6364136223846793005ull + 1442695040888963407ull;
        uint32_t i = (uint32_t)((rng >> 33) % n);
        int kl = key_text(k, i);
        size_t vlen = 0;
        int rc = kv_get_into(g->s, k, (size_t)kl, v, sizeof v, &vlen, NULL);
        atomic_fetch_add(&g->gets, 1);
        if (rc != KV_OK || vlen != (size_t)kl || memcmp(v, k, vlen) != 0)
            atomic_fetch_add(&g->get_misses, 1);
    }
    return NULL;
}

typedef struct seen {
    unsigned char *mark;
    uint32_t bound;
} seen;

static int scan_mark(void *ctx, const void *key, size_t klen, const void *val, size_t vlen,
                     uint64_t version)
{
    (void)val;
    (void)vlen;
    (void)version;
    seen *sn = ctx;
    char k[16] = {0};
    if (klen < sizeof k) {
        memcpy(k, key, klen);
        uint32_t i = (uint32_t)strtoul(k + 1, NULL, 10);
        if (i < sn->bound)
            sn->mark[i] = 1;
    }
    return 0;
}

static void *scanner(void *arg)
{
    growth *g = arg;
    seen sn = {calloc(NKEYS, 1), NKEYS};
    cr_assert(sn.mark);
    while (!atomic_load(&g->done)) {
        uint32_t before = atomic_load(&g->published); /* set before the scan began */
        memset(sn.mark, 0, NKEYS);
        uint64_t cursor = 0;
        do {
            if (kv_scan(g->s, NULL, 0, cursor, 4096, scan_mark, &sn, &cursor) != KV_OK) {
                atomic_fetch_add(&g->scan_misses, 1);
                break;
            }
        } while (cursor);
        uint64_t missed = 0;
        for (uint32_t i = 0; i < before; i++)
            missed += !sn.mark[i];
        atomic_fetch_add(&g->scan_misses, missed);
        atomic_fetch_add(&g->scans, 1);
    }
    free(sn.mark);
    return NULL;
}

Test(resize, growth_under_a_limit_goes_one_segment_at_a_time_and_keys_stay_findable,
     .timeout = 600)
{
    kv_config c;
    kv_config_init(&c, sizeof c);
    c.max_memory = (uint64_t)1 << 30; /* room for every key: nothing is evicted */
    c.eviction_policy = KV_EVICT_ALLKEYS_LRU;
    c.initial_capacity = 0;
    growth g = {0};
    cr_assert_eq(kv_open_config(&c, &g.s), KV_OK);

    pthread_t readers[3];
    for (int i = 0; i < 2; i++)
        cr_assert_eq(pthread_create(&readers[i], NULL, getter, &g), 0);
    cr_assert_eq(pthread_create(&readers[2], NULL, scanner, &g), 0);

    kv_metrics m = kvt_metrics(g.s);
    uint64_t slots = m.table_slots, bytes = m.memory_bytes, steps = 0;
    char k[16];
    for (uint32_t i = 0; i < NKEYS; i++) {
        int kl = key_text(k, i);
        cr_assert_eq(kv_set(g.s, k, (size_t)kl, k, (size_t)kl, NULL), KV_OK);
        atomic_store(&g.published, i + 1);
        m = kvt_metrics(g.s);
        /* One write starts at most one segment's resize, and a segment is
         * at most about twice the average (they fill evenly): the index
         * never grows by more than that at once (a whole-index doubling
         * would add table_slots). */
        uint64_t one_segment = 4 * slots / KV__NSEGS;
        if (m.table_slots != slots) {
            cr_assert_leq(m.table_slots - slots, one_segment,
                          "at %u keys the index grew from %llu to %llu slots", i + 1,
                          (unsigned long long)slots, (unsigned long long)m.table_slots);
            steps++;
        }
        /* memory_bytes counts both tables of the segment being copied */
        if (m.memory_bytes > bytes)
            cr_assert_leq(m.memory_bytes - bytes, one_segment * sizeof(uintptr_t) + 4096,
                          "at %u keys memory_bytes grew by %llu", i + 1,
                          (unsigned long long)(m.memory_bytes - bytes));
        slots = m.table_slots;
        bytes = m.memory_bytes;
    }
    atomic_store(&g.done, true);
    for (int i = 0; i < 3; i++)
        pthread_join(readers[i], NULL);

    m = kvt_metrics(g.s);
    cr_assert_eq(m.keys, NKEYS);
    cr_assert_eq(m.evicted_keys, 0);
    cr_assert_gt(steps, KV__NSEGS, "every segment grew, in %llu steps",
                 (unsigned long long)steps);
    cr_assert_geq(m.table_slots / 4 * 3, NKEYS);
    cr_assert_gt(atomic_load(&g.gets), 0);
    cr_assert_eq(atomic_load(&g.get_misses), 0, "%llu of %llu gets missed a set key",
                 (unsigned long long)atomic_load(&g.get_misses),
                 (unsigned long long)atomic_load(&g.gets));
    cr_assert_gt(atomic_load(&g.scans), 0);
    cr_assert_eq(atomic_load(&g.scan_misses), 0, "scans missed %llu set keys",
                 (unsigned long long)atomic_load(&g.scan_misses));
    /* and once it is quiet, every key once */
    for (uint32_t i = 0; i < NKEYS; i += 997) {
        key_text(k, i);
        kvt_expect(g.s, k, k, 0);
    }
    kv_close(g.s);
}
