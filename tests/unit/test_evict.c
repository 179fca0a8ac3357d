/*
 * test_evict.c - the memory limit and eviction (kv_config.max_memory,
 * libkv/src/evict.c): configuration, every policy, what a refused write
 * leaves, that evictions are changes like any other (records, the log),
 * and the access tracking readers do.
 *
 * White-box where the contract cannot be seen from outside: the record
 * hook (apply.h), the access word in front of items (item.h) and a forced
 * eviction step (evict.h).
 */
#include <pthread.h>
#include <stdlib.h>
#include <sys/stat.h>
#include <unistd.h>

#include "kvtest.h"

#include "apply.h"
#include "evict.h"
#include "hash.h"
#include "store.h"

#define MB ((uint64_t)1 << 20)

static kv_store *open_limited(uint64_t limit, int policy)
{
    kv_config c;
    kv_config_init(&c, sizeof c);
    c.max_memory = limit;
    c.eviction_policy = policy;
    kv_store *s = NULL;
    int rc = kv_open_config(&c, &s);
    cr_assert_eq(rc, KV_OK, "kv_open_config: %s", kv_strerror(rc));
    return s;
}

static void key_of(char *buf, size_t cap, const char *prefix, long i)
{
    snprintf(buf, cap, "%s:%08ld", prefix, i);
}

static char value[100];

static int set_key(kv_store *s, const char *prefix, long i, uint64_t expire_at)
{
    char k[48];
    key_of(k, sizeof k, prefix, i);
    return kv_set_ex(s, k, strlen(k), value, sizeof value, expire_at, NULL);
}

static bool has_key(kv_store *s, const char *prefix, long i)
{
    char k[48];
    key_of(k, sizeof k, prefix, i);
    return kv_exists(s, k, strlen(k), NULL) == KV_OK;
}

static bool get_key(kv_store *s, const char *prefix, long i)
{
    char k[48];
    key_of(k, sizeof k, prefix, i);
    size_t vlen;
    char buf[sizeof value];
    return kv_get_into(s, k, strlen(k), buf, sizeof buf, &vlen, NULL) == KV_OK;
}

static kv_metrics metrics(kv_store *s)
{
    kv_metrics m;
    cr_assert_eq(kv_metrics_read(s, &m, sizeof m), KV_OK);
    return m;
}

/* The limit holds up to what concurrent accounting may lag: 1/64. */
static void assert_within(kv_store *s, uint64_t limit)
{
    kv_metrics m = metrics(s);
    cr_assert_leq(m.memory_used, limit + limit / 64,
                  "memory_used %llu over the limit %llu", (unsigned long long)m.memory_used,
                  (unsigned long long)limit);
}

Test(evict, policy_names_are_redis_names_both_ways)
{
    static const char *names[] = {"noeviction",   "allkeys-lru",  "allkeys-lfu",
                                  "allkeys-random", "volatile-lru", "volatile-lfu",
                                  "volatile-random", "volatile-ttl"};
    for (int i = 0; i < 8; i++) {
        cr_assert_str_eq(kv_eviction_policy_name(i), names[i]);
        cr_assert_eq(kv_eviction_policy_parse(names[i]), i);
    }
    cr_assert_eq(kv_eviction_policy_parse("ALLKEYS-LFU"), KV_EVICT_ALLKEYS_LFU);
    cr_assert_eq(kv_eviction_policy_parse("lru"), -1);
    cr_assert_eq(kv_eviction_policy_parse(""), -1);
    cr_assert_eq(kv_eviction_policy_parse(NULL), -1);
    cr_assert_null(kv_eviction_policy_name(8));
    cr_assert_null(kv_eviction_policy_name(-1));
    cr_assert_str_eq(kv_status_name(KV_MEMORY_LIMIT), "MEMORY_LIMIT");
}

Test(evict, bad_limits_and_policies_are_refused)
{
    kv_config c;
    kv_config_init(&c, sizeof c);
    cr_assert_eq(c.max_memory, 0);
    cr_assert_eq(c.eviction_policy, KV_EVICT_NOEVICTION);
    kv_store *s = NULL;
    c.max_memory = KV_MIN_MAX_MEMORY - 1;
    cr_assert_eq(kv_open_config(&c, &s), KV_INVALID_ARGUMENT);
    c.max_memory = 64 * MB;
    c.eviction_policy = 8;
    cr_assert_eq(kv_open_config(&c, &s), KV_INVALID_ARGUMENT);
    c.eviction_policy = -1;
    cr_assert_eq(kv_open_config(&c, &s), KV_INVALID_ARGUMENT);
    cr_assert_null(s);
    /* a policy without a limit is fine and does nothing */
    c.max_memory = 0;
    c.eviction_policy = KV_EVICT_ALLKEYS_LRU;
    cr_assert_eq(kv_open_config(&c, &s), KV_OK);
    cr_assert_eq(s->item_pre, 0);
    cr_assert_eq(s->access_mode, KV__ACCESS_NONE);
    cr_assert_eq(metrics(s).max_memory, 0);
    kv_close(s);
    /* a caller that knows an older, smaller kv_config gets no limit */
    kv_config old;
    kv_config_init(&old, offsetof(kv_config, max_memory));
    cr_assert_eq(kv_open_config(&old, &s), KV_OK);
    cr_assert_null(s->evict);
    kv_close(s);
}

/* Fills a noeviction store until it refuses; returns the keys stored. */
static long fill_until_refused(kv_store *s)
{
    long i = 0;
    int rc;
    while ((rc = set_key(s, "k", i, 0)) == KV_OK)
        i++;
    cr_assert_eq(rc, KV_MEMORY_LIMIT, "set %ld: %s", i, kv_strerror(rc));
    return i;
}

Test(evict, noeviction_refuses_writes_that_do_not_fit_and_changes_nothing)
{
    kv_store *s = open_limited(2 * MB, KV_EVICT_NOEVICTION);
    long n = fill_until_refused(s);
    cr_assert_gt(n, 5000, "only %ld keys of 100 bytes fit in 2 MiB", n);
    assert_within(s, 2 * MB);
    uint64_t rev = kv_revision(s);
    kv_metrics before = metrics(s);

    cr_assert(!has_key(s, "k", n));
    /* every kind of write that stores data is refused, and leaves nothing */
    kv_pair pairs[4];
    char keys[4][48];
    for (int i = 0; i < 4; i++) {
        key_of(keys[i], sizeof keys[i], "m", i);
        pairs[i] = (kv_pair){keys[i], strlen(keys[i]), value, sizeof value};
    }
    cr_assert_eq(kv_mset(s, pairs, 4, NULL), KV_MEMORY_LIMIT);
    kv_txn *t;
    cr_assert_eq(kv_txn_begin(s, &t), KV_OK);
    cr_assert_eq(kv_txn_set(t, "m:x", 3, value, sizeof value), KV_OK);
    cr_assert_eq(kv_txn_commit(t, NULL), KV_MEMORY_LIMIT);
    kv_op op = {.kind = KV_OP_SET, .key = "m:y", .klen = 3, .value = value,
                .vlen = sizeof value};
    kv_txn_result res;
    cr_assert_eq(kv_txn_cond(s, NULL, 0, &op, 1, NULL, 0, &res), KV_MEMORY_LIMIT);
    for (int i = 0; i < 4; i++)
        cr_assert(!has_key(s, "m", i));
    cr_assert_eq(kv_exists(s, "m:x", 3, NULL), KV_NOT_FOUND);
    cr_assert_eq(kv_revision(s), rev, "a refused write used a revision");
    kv_metrics after = metrics(s);
    cr_assert_eq(after.keys, before.keys);
    cr_assert_eq(after.evicted_keys, 0);
    cr_assert_eq(after.max_memory, 2 * MB);

    /* deletes always work, and make room again */
    for (long i = 0; i < 100; i++) {
        char k[48];
        key_of(k, sizeof k, "k", i);
        cr_assert_eq(kv_delete(s, k, strlen(k), NULL), KV_OK);
    }
    cr_assert_eq(set_key(s, "k", n, 0), KV_OK);
    /* a value bigger than the whole limit can never fit */
    size_t big = 3 * MB;
    char *huge = calloc(1, big);
    cr_assert_eq(kv_set(s, "huge", 4, huge, big, NULL), KV_MEMORY_LIMIT);
    free(huge);
    kv_close(s);
}

/* Writes `writes` cold keys; after every `every` of them reads the hot
 * keys 0..nhot-1 `reads` times each. Returns how many hot keys survive. */
static long hot_survivors(kv_store *s, long nhot, long writes, long every, int reads)
{
    for (long i = 0; i < nhot; i++)
        cr_assert_eq(set_key(s, "hot", i, 0), KV_OK);
    for (long w = 0; w < writes; w++) {
        int rc = set_key(s, "cold", w, 0);
        KVT_CHECK(rc == KV_OK, "cold %ld: %s", w, kv_strerror(rc));
        if (w % every == 0)
            for (int r = 0; r < reads; r++)
                for (long i = 0; i < nhot; i++)
                    (void)get_key(s, "hot", i);
    }
    long alive = 0;
    for (long i = 0; i < nhot; i++)
        alive += has_key(s, "hot", i);
    return alive;
}

Test(evict, allkeys_lru_keeps_recently_read_keys)
{
    kv_store *s = open_limited(2 * MB, KV_EVICT_ALLKEYS_LRU);
    cr_assert_eq(s->item_pre, KV__ITEM_META_BYTES);
    long alive = hot_survivors(s, 200, 100000, 500, 1);
    kv_metrics m = metrics(s);
    cr_assert_gt(m.evicted_keys, 50000, "evicted %llu", (unsigned long long)m.evicted_keys);
    cr_assert_geq(alive, 196, "only %ld of 200 recently read keys survived", alive);
    /* the oldest cold keys are gone, the newest are there */
    long old_alive = 0, new_alive = 0;
    for (long i = 0; i < 1000; i++) {
        old_alive += has_key(s, "cold", i);
        new_alive += has_key(s, "cold", 99000 + i);
    }
    cr_assert_lt(old_alive, 50, "%ld of the 1000 oldest keys survived", old_alive);
    cr_assert_gt(new_alive, 950, "only %ld of the 1000 newest keys survived", new_alive);
    assert_within(s, 2 * MB);
    kv_close(s);
}

Test(evict, allkeys_lfu_keeps_frequently_read_keys_through_a_scan)
{
    kv_store *s = open_limited(2 * MB, KV_EVICT_ALLKEYS_LFU);
    /* hot keys are read 20 times every 2000 cold writes: each cold key is
     * written once and never read, a scan LRU would let through */
    long alive = hot_survivors(s, 200, 100000, 2000, 20);
    cr_assert_gt(metrics(s).evicted_keys, 50000);
    cr_assert_geq(alive, 196, "only %ld of 200 frequently read keys survived", alive);
    assert_within(s, 2 * MB);
    kv_close(s);
}

Test(evict, allkeys_random_stays_within_the_limit)
{
    kv_store *s = open_limited(2 * MB, KV_EVICT_ALLKEYS_RANDOM);
    cr_assert_eq(s->item_pre, 0, "random needs no access word");
    for (long i = 0; i < 100000; i++)
        KVT_CHECK(set_key(s, "k", i, 0) == KV_OK, "set %ld", i);
    kv_metrics m = metrics(s);
    cr_assert_gt(m.evicted_keys, 50000);
    cr_assert_eq(m.keys + m.evicted_keys, 100000);
    /* random victims: old keys survive about as often as new ones */
    long old_alive = 0;
    for (long i = 0; i < 10000; i++)
        old_alive += has_key(s, "k", i);
    cr_assert_gt(old_alive, 0);
    assert_within(s, 2 * MB);
    kv_close(s);
}

/* volatile-*: keys without an expiry time are never evicted; once only
 * they are left, a write that does not fit fails. */
static void volatile_spares_persistent_keys(int policy)
{
    kv_store *s = open_limited(2 * MB, policy);
    uint64_t far = kv_clock_ms(s) + 3600 * 1000;
    for (long i = 0; i < 3000; i++)
        cr_assert_eq(set_key(s, "keep", i, 0), KV_OK);
    for (long i = 0; i < 40000; i++)
        KVT_CHECK(set_key(s, "ttl", i, far + (uint64_t)i) == KV_OK, "ttl %ld", i);
    cr_assert_gt(metrics(s).evicted_keys, 10000);
    for (long i = 0; i < 3000; i++)
        KVT_CHECK(has_key(s, "keep", i), "persistent key %ld was evicted", i);
    assert_within(s, 2 * MB);
    /* fill with persistent keys until nothing evictable is left */
    int rc = KV_OK;
    long i = 3000;
    while (rc == KV_OK && i < 100000)
        rc = set_key(s, "keep", i++, 0);
    cr_assert_eq(rc, KV_MEMORY_LIMIT, "%s", kv_strerror(rc));
    cr_assert_eq(metrics(s).keys_with_ttl, 0, "refused while keys with a TTL remained");
    for (long j = 0; j < i - 1; j++)
        KVT_CHECK(has_key(s, "keep", j), "persistent key %ld was evicted", j);
    kv_close(s);
}

Test(evict, volatile_lru_evicts_only_keys_with_an_expiry_time)
{
    volatile_spares_persistent_keys(KV_EVICT_VOLATILE_LRU);
}

Test(evict, volatile_lfu_evicts_only_keys_with_an_expiry_time)
{
    volatile_spares_persistent_keys(KV_EVICT_VOLATILE_LFU);
}

Test(evict, volatile_random_evicts_only_keys_with_an_expiry_time)
{
    volatile_spares_persistent_keys(KV_EVICT_VOLATILE_RANDOM);
}

Test(evict, volatile_ttl_evicts_the_keys_that_expire_first)
{
    kv_store *s = open_limited(2 * MB, KV_EVICT_VOLATILE_TTL);
    cr_assert_eq(s->item_pre, 0);
    uint64_t base = kv_clock_ms(s) + 3600 * 1000;
    /* expiry times in the reverse order of writing: the last keys written
     * expire first, and are the ones to go */
    long n = 40000;
    for (long i = 0; i < n; i++)
        KVT_CHECK(set_key(s, "t", i, base + (uint64_t)(n - i) * 10) == KV_OK, "set %ld", i);
    kv_metrics m = metrics(s);
    cr_assert_gt(m.evicted_keys, 10000);
    long first_alive = 0;
    for (long i = 0; i < 2000; i++)
        first_alive += has_key(s, "t", i);
    cr_assert_gt(first_alive, 1950, "only %ld of the latest-expiring keys survived", first_alive);
    kv_close(s);
}

/* ---- evictions are changes like any other ------------------------------- */

typedef struct hook_count {
    uint64_t deletes, records;
} hook_count;

static void count_deletes(void *ctx, const kv__record *rec)
{
    hook_count *h = ctx;
    h->records++;
    for (size_t i = 0; i < rec->nchanges; i++)
        h->deletes += rec->changes[i].deleted;
}

Test(evict, evictions_are_records_of_deletes_with_revisions)
{
    kv_store *s = open_limited(2 * MB, KV_EVICT_ALLKEYS_LRU);
    hook_count h = {0, 0};
    kv__set_record_hook(s, count_deletes, &h);
    for (long i = 0; i < 50000; i++)
        KVT_CHECK(set_key(s, "k", i, 0) == KV_OK, "set %ld", i);
    kv_metrics m = metrics(s);
    cr_assert_gt(m.evicted_keys, 0);
    cr_assert_eq(h.deletes, m.evicted_keys, "records deleted %llu keys, evicted_keys %llu",
                 (unsigned long long)h.deletes, (unsigned long long)m.evicted_keys);
    cr_assert_eq(h.records, kv_revision(s), "every revision is one record");
    cr_assert_eq(m.deletes, 0, "evictions counted as deletes");
    cr_assert_eq(m.keys + m.evicted_keys, 50000);
    kv_close(s);
}

Test(evict, evictions_are_logged_and_recovered)
{
    char dir[] = "/tmp/kv_evict_XXXXXX";
    cr_assert_not_null(mkdtemp(dir));
    kv_config c;
    kv_config_init(&c, sizeof c);
    c.dir = dir;
    c.fsync = KV_FSYNC_NO;
    c.max_memory = 2 * MB;
    c.eviction_policy = KV_EVICT_ALLKEYS_LFU;
    kv_store *s;
    cr_assert_eq(kv_open_config(&c, &s), KV_OK);
    for (long i = 0; i < 40000; i++)
        KVT_CHECK(set_key(s, "k", i, 0) == KV_OK, "set %ld", i);
    kv_metrics m = metrics(s);
    cr_assert_gt(m.evicted_keys, 0);
    bool *alive = calloc(40000, sizeof *alive);
    for (long i = 0; i < 40000; i++)
        alive[i] = has_key(s, "k", i);
    uint64_t rev = kv_revision(s);
    kv_close(s);

    c.max_memory = 0; /* recovered as it was, whatever the limit */
    cr_assert_eq(kv_open_config(&c, &s), KV_OK);
    cr_assert_eq(kv_revision(s), rev);
    cr_assert_eq(metrics(s).keys, m.keys);
    for (long i = 0; i < 40000; i++)
        KVT_CHECK(has_key(s, "k", i) == alive[i], "key %ld differs after recovery", i);
    kv_close(s);
    free(alive);
    char cmd[128];
    snprintf(cmd, sizeof cmd, "rm -rf %s", dir);
    cr_assert_eq(system(cmd), 0);
}

/* ---- the internal ops ---------------------------------------------------- */

static size_t apply_internal(kv_store *s, kv_op_kind kind, const char *key, uint64_t arg,
                             kv__outcome *o)
{
    kv_op op = {.kind = kind, .key = key, .klen = strlen(key), .expire_at_ms = arg};
    cr_assert_eq(kv__apply(s, &(kv__batch){.then_ops = &op, .nthen = 1, .internal = true}, o),
                 KV_OK);
    kv__outcome_free(o);
    return o->evicted;
}

Test(evict, an_evict_op_removes_only_the_version_it_names)
{
    kv_store *s = open_limited(64 * MB, KV_EVICT_ALLKEYS_LRU);
    uint64_t v1 = kvt_set(s, "a", "1");
    uint64_t v2 = kvt_set(s, "a", "2");
    kv__outcome o;
    cr_assert_eq(apply_internal(s, KV__OP_EVICT, "a", v1, &o), 0);
    cr_assert_eq(o.revision, 0, "a no-op took a revision");
    kvt_expect(s, "a", "2", v2);
    cr_assert_eq(apply_internal(s, KV__OP_EVICT, "a", v2, &o), 1);
    kvt_expect_absent(s, "a");
    cr_assert_eq(apply_internal(s, KV__OP_EVICT, "a", 0, &o), 0);
    kv_metrics m = metrics(s);
    cr_assert_eq(m.evicted_keys, 1);
    cr_assert_eq(m.deletes, 0);
    /* user batches may not use internal kinds */
    kv_op op = {.kind = KV__OP_EVICT, .key = "b", .klen = 1};
    kv_txn_result r;
    cr_assert_eq(kv_txn_cond(s, NULL, 0, &op, 1, NULL, 0, &r), KV_INVALID_ARGUMENT);
    kv_close(s);
}

/* A single internal op once took the single-write route, which treats any
 * op that is not a SET as a delete: a TOUCH of a live key removed it. */
Test(evict, a_single_touch_op_leaves_a_live_key_alone)
{
    kv_store *s = kvt_open(NULL);
    uint64_t v = kvt_set(s, "live", "x");
    kv__outcome o;
    apply_internal(s, KV__OP_TOUCH, "live", 0, &o);
    kvt_expect(s, "live", "x", v);
    kv_close(s);
}

Test(evict, evict_now_under_noeviction_or_without_a_limit_does_nothing)
{
    kv_store *s = open_limited(64 * MB, KV_EVICT_NOEVICTION);
    kvt_set(s, "a", "1");
    kv__slot *slot = kv__slot_get(&s->slots);
    cr_assert_eq(kv__evict_now(s, slot, 10), 0);
    kv_close(s);
    s = kvt_open(NULL);
    kvt_set(s, "a", "1");
    cr_assert_eq(kv__evict_now(s, kv__slot_get(&s->slots), 10), 0);
    kvt_expect(s, "a", "1", 0);
    kv_close(s);
}

/* ---- access tracking ----------------------------------------------------- */

__attribute__((noinline)) static uint32_t meta_of(kv_store *s, const char *key)
{
    uint64_t h = kv__hash(key, strlen(key));
    uintptr_t w = kv__table_find(kv__index_seg(s, h), h, key, strlen(key));
    cr_assert_neq(w, 0);
    return atomic_load(kv__item_meta(kv__slot_current(w, NULL)));
}

Test(evict, lru_reads_stamp_the_access_clock)
{
    kv_store *s = open_limited(64 * MB, KV_EVICT_ALLKEYS_LRU);
    atomic_store(&s->evict_clock, 7);
    kvt_set(s, "a", "1");
    cr_assert_eq(meta_of(s, "a"), 7, "a write is an access");
    atomic_store(&s->evict_clock, 9);
    cr_assert_eq(meta_of(s, "a"), 7);
    kvt_expect(s, "a", "1", 0);
    cr_assert_eq(meta_of(s, "a"), 9);
    atomic_store(&s->evict_clock, 0x1000005); /* stamps keep 24 bits */
    cr_assert_eq(kv_exists(s, "a", 1, NULL), KV_OK);
    cr_assert_eq(meta_of(s, "a"), 5);
    atomic_store(&s->evict_clock, 0x1000006);
    kv_key k = {"a", 1};
    kv_value v;
    cr_assert_eq(kv_mget(s, &k, 1, &v), KV_OK);
    kv_values_free(&v, 1);
    cr_assert_eq(meta_of(s, "a"), 6);
    uint64_t exp;
    atomic_store(&s->evict_clock, 0x1000008);
    cr_assert_eq(kv_ttl(s, "a", 1, &exp), KV_OK);
    cr_assert_eq(meta_of(s, "a"), 6, "kv_ttl is not an access");
    kv_close(s);
}

Test(evict, lfu_counts_reads_logarithmically_and_decays)
{
    kv_store *s = open_limited(64 * MB, KV_EVICT_ALLKEYS_LFU);
    kvt_set(s, "a", "1");
    cr_assert_eq(meta_of(s, "a") >> 24, KV__LFU_INIT);
    for (int i = 0; i < 1000; i++)
        kvt_expect(s, "a", "1", 0);
    uint32_t c = meta_of(s, "a") >> 24;
    /* 1000 reads: the counter grows, but logarithmically (Redis: about 18
     * with factor 10 for 1000 hits from 5) */
    cr_assert_gt(c, KV__LFU_INIT + 3, "counter %u", c);
    cr_assert_lt(c, 40, "counter %u", c);
    /* an overwrite keeps the frequency */
    kvt_set(s, "a", "2");
    cr_assert_geq(meta_of(s, "a") >> 24, c);
    /* time passes in decay periods: the counter drops by one per period */
    uint32_t v = meta_of(s, "a");
    uint32_t later = atomic_load(&s->evict_clock) + (3u << KV__LFU_DECAY_SHIFT);
    cr_assert_eq(kv__lfu_decayed(v, later), (v >> 24) - 3);
    cr_assert_eq(kv__lfu_decayed(v, later + (300u << KV__LFU_DECAY_SHIFT)), 0);
    kv_close(s);
}

/* ---- memory per key -------------------------------------------------------- */

static void add_item_bytes(kv__slot *slot, void *ctx)
{
    *(uint64_t *)ctx += atomic_load(&slot->counters[KV__C_ITEM_BYTES]);
}

/* Item bytes per key (with the allocator's rounding) for keys of 16-byte
 * names and 64-byte values, expiring or not. */
static double per_key(kv_store *s, bool ttl)
{
    enum { N = 20000 };
    uint64_t at = ttl ? kv_clock_ms(s) + 3600 * 1000 : 0;
    for (long i = 0; i < N; i++) {
        char k[17];
        snprintf(k, sizeof k, "key:%012ld", i);
        KVT_CHECK(kv_set_ex(s, k, 16, value, 64, at, NULL) == KV_OK, "set");
    }
    uint64_t bytes = 0;
    kv__slot_each(&s->slots, add_item_bytes, &bytes);
    return (double)bytes / N;
}

Test(evict, access_tracking_costs_at_most_8_bytes_per_key)
{
    struct { const char *name; int policy; uint64_t limit; } cases[] = {
        {"no limit", KV_EVICT_NOEVICTION, 0},
        {"allkeys-random", KV_EVICT_ALLKEYS_RANDOM, 1024 * MB},
        {"allkeys-lru", KV_EVICT_ALLKEYS_LRU, 1024 * MB},
        {"allkeys-lfu", KV_EVICT_ALLKEYS_LFU, 1024 * MB},
    };
    double plain0 = 0;
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        kv_store *a = open_limited(cases[i].limit, cases[i].policy);
        double plain = per_key(a, false);
        kv_close(a);
        kv_store *b = open_limited(cases[i].limit, cases[i].policy);
        double ttl = per_key(b, true);
        kv_close(b);
        cr_log_info("item bytes per key (16-byte key, 64-byte value), %s: %.1f without a "
                    "TTL, %.1f with one", cases[i].name, plain, ttl);
        if (i == 0)
            plain0 = plain;
        cr_assert_leq(plain - plain0, 8.0, "%s: %.1f bytes more per key", cases[i].name,
                      plain - plain0);
        cr_assert_leq(ttl - plain, 8.0);
    }
    /* 12-byte header + 16 + 64 = 92, rounded to the slab's 8 bytes */
    cr_assert_eq(plain0, 96.0);
}

/* A 2 MiB slab chunk is a huge page, resident whole from its first item:
 * under a small limit the slab keeps to 256 KiB chunks, whose pages are
 * touched only as items are carved. */
Test(evict, a_small_limit_keeps_to_small_slab_chunks)
{
    kv_store *s = open_limited(4 * MB, KV_EVICT_ALLKEYS_LRU);
    for (long i = 0; i < 100000; i++) { /* about 3 times the limit */
        char k[32];
        key_of(k, sizeof k, "k", i);
        KVT_CHECK(kv_set(s, k, strlen(k), value, 64, NULL) == KV_OK, "set");
    }
    uint64_t items = 0;
    kv__slot_each(&s->slots, add_item_bytes, &items);
    /* past the point where a store without a limit takes 2 MiB chunks,
     * and every chunk is a small one: together they hold the items */
    cr_assert_gt(s->slab.nchunks, KV__SLAB_BIG_AFTER);
    cr_assert_geq((uint64_t)s->slab.nchunks * KV__SLAB_CHUNK, items);
    cr_assert_gt(kvt_metrics(s).evicted_keys, 0);
    kv_close(s);
    /* from KV__EVICT_BIG_CHUNKS_FROM on, and without a limit, big chunks */
    s = open_limited(KV__EVICT_BIG_CHUNKS_FROM, KV_EVICT_ALLKEYS_LRU);
    cr_assert_eq(s->slab.big_after, KV__SLAB_BIG_AFTER);
    kv_close(s);
    s = open_limited(0, KV_EVICT_NOEVICTION);
    cr_assert_eq(s->slab.big_after, KV__SLAB_BIG_AFTER);
    kv_close(s);
}

/* The address of key k's item block (the access word's, if any). */
static uintptr_t block_of(kv_store *s, const char *k)
{
    uint64_t h = kv__hash(k, strlen(k));
    uintptr_t w = kv__table_find(kv__index_seg(s, h), h, k, strlen(k));
    cr_assert(w);
    return (uintptr_t)kv__slot_ptr(w) - s->item_pre;
}

/* The slab carves blocks from a cache-line boundary: 128-byte blocks (a
 * 12-byte key and a 100-byte value; 96-byte ones with LRU's access word
 * and a 64-byte value) each take two lines, not three (or two lines for
 * header and key). */
Test(evict, slab_blocks_start_on_a_cache_line)
{
    kv_store *s = open_limited(0, KV_EVICT_NOEVICTION);
    /* the store's first items: the first blocks of its first chunk */
    cr_assert_eq(kv_set(s, "key:00000001", 12, value, 100, NULL), KV_OK);
    cr_assert_eq(kv_set(s, "key:00000002", 12, value, 100, NULL), KV_OK);
    uintptr_t a = block_of(s, "key:00000001"), b = block_of(s, "key:00000002");
    cr_assert_eq(b - a, 128);
    cr_assert_eq(a % 64, 0);
    kv_close(s);
    s = open_limited(64 * MB, KV_EVICT_ALLKEYS_LRU);
    cr_assert_eq(kv_set(s, "key:00000001", 12, value, 64, NULL), KV_OK);
    cr_assert_eq(kv_set(s, "key:00000002", 12, value, 64, NULL), KV_OK);
    a = block_of(s, "key:00000001");
    b = block_of(s, "key:00000002");
    cr_assert_eq(b - a, 96);
    cr_assert_eq(a % 64, 0);
    kv_close(s);
}
