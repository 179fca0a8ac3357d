/*
 * test_metrics.c - kv_metrics_read: exact figures on a quiet store after a
 * known sequence of operations, and the size argument.
 */
#include <stddef.h>

#include "kvtest.h"

#define U(x) ((unsigned long long)(x))
#define EXPECT_FIELD(m, field, want)                                         \
    cr_assert_eq((m).field, (uint64_t)(want), #field " is %llu, expected %llu", \
                 U((m).field), U(want))

Test(metrics, fresh_store_is_all_zero)
{
    kv_store *s = kvt_open(NULL);
    kv_metrics m = kvt_metrics(s);
    EXPECT_FIELD(m, keys, 0);
    EXPECT_FIELD(m, key_bytes, 0);
    EXPECT_FIELD(m, value_bytes, 0);
    EXPECT_FIELD(m, gets, 0);
    EXPECT_FIELD(m, get_hits, 0);
    EXPECT_FIELD(m, get_misses, 0);
    EXPECT_FIELD(m, sets, 0);
    EXPECT_FIELD(m, deletes, 0);
    EXPECT_FIELD(m, cas_failures, 0);
    EXPECT_FIELD(m, txn_commits, 0);
    EXPECT_FIELD(m, txn_conflicts, 0);
    EXPECT_FIELD(m, table_resizes, 0);
    cr_assert_gt(m.table_slots, 0, "an open store has an index");
    kv_close(s);
}

Test(metrics, keys_and_bytes_follow_sets_overwrites_and_deletes)
{
    kv_store *s = kvt_open(NULL);
    cr_assert_eq(kv_set(s, "abc", 3, "12345", 5, NULL), KV_OK);
    cr_assert_eq(kv_set(s, "de", 2, "1234567", 7, NULL), KV_OK);
    kv_metrics m = kvt_metrics(s);
    EXPECT_FIELD(m, keys, 2);
    EXPECT_FIELD(m, key_bytes, 5);
    EXPECT_FIELD(m, value_bytes, 12);
    cr_assert_eq(kv_set(s, "abc", 3, "1", 1, NULL), KV_OK); /* overwrite: 5 -> 1 */
    m = kvt_metrics(s);
    EXPECT_FIELD(m, keys, 2);
    EXPECT_FIELD(m, key_bytes, 5);
    EXPECT_FIELD(m, value_bytes, 8);
    cr_assert_eq(kv_delete(s, "de", 2, NULL), KV_OK);
    m = kvt_metrics(s);
    EXPECT_FIELD(m, keys, 1);
    EXPECT_FIELD(m, key_bytes, 3);
    EXPECT_FIELD(m, value_bytes, 1);
    kv_pair pairs[] = {{"x", 1, "", 0}, {"yy", 2, "1234", 4}};
    cr_assert_eq(kv_mset(s, pairs, 2, NULL), KV_OK);
    m = kvt_metrics(s);
    EXPECT_FIELD(m, keys, 3);
    EXPECT_FIELD(m, key_bytes, 6);
    EXPECT_FIELD(m, value_bytes, 5);
    kv_key keys[] = {{"abc", 3}, {"yy", 2}};
    cr_assert_eq(kv_mdelete(s, keys, 2, NULL, NULL), KV_OK);
    m = kvt_metrics(s);
    EXPECT_FIELD(m, keys, 1);
    EXPECT_FIELD(m, key_bytes, 1);
    EXPECT_FIELD(m, value_bytes, 0);
    kv_close(s);
}

struct noop {
    int calls;
};

static void noop_read(void *ctx, const void *val, size_t vlen, uint64_t version)
{
    (void)val;
    (void)vlen;
    (void)version;
    ((struct noop *)ctx)->calls++;
}

Test(metrics, gets_hits_and_misses_are_exact)
{
    kv_store *s = kvt_open(NULL);
    kvt_set(s, "a", "1");
    kvt_set(s, "b", "2");
    kv_metrics m0 = kvt_metrics(s);

    kv_value v = {0};
    cr_assert_eq(kv_get(s, "a", 1, &v), KV_OK); /* hit */
    kv_value_free(&v);
    cr_assert_eq(kv_get(s, "zz", 2, &v), KV_NOT_FOUND); /* miss */
    char buf[4];
    size_t vlen;
    cr_assert_eq(kv_get_into(s, "b", 1, buf, sizeof buf, &vlen, NULL), KV_OK); /* hit */
    cr_assert_eq(kv_get_into(s, "q", 1, buf, sizeof buf, &vlen, NULL), KV_NOT_FOUND); /* miss */
    struct noop n = {0};
    cr_assert_eq(kv_get_with(s, "a", 1, noop_read, &n), KV_OK); /* hit */
    kv_key keys[] = {{"a", 1}, {"b", 1}, {"c", 1}};
    kv_value out[3];
    cr_assert_eq(kv_mget(s, keys, 3, out), KV_OK); /* 3 gets: 2 hits, 1 miss */
    kv_values_free(out, 3);

    kv_metrics m = kvt_metrics(s);
    EXPECT_FIELD(m, gets, m0.gets + 8);
    EXPECT_FIELD(m, get_hits, m0.get_hits + 5);
    EXPECT_FIELD(m, get_misses, m0.get_misses + 3);
    cr_assert_eq(m.gets, m.get_hits + m.get_misses);
    kv_close(s);
}

Test(metrics, sets_deletes_and_cas_failures_are_exact)
{
    kv_store *s = kvt_open(NULL);
    uint64_t va = 0;
    cr_assert_eq(kv_set(s, "a", 1, "1", 1, &va), KV_OK);          /* sets 1 */
    cr_assert_eq(kv_set(s, "a", 1, "2", 1, &va), KV_OK);          /* sets 2 */
    kv_pair pairs[] = {{"b", 1, "b", 1}, {"c", 1, "c", 1}, {"d", 1, "d", 1}};
    cr_assert_eq(kv_mset(s, pairs, 3, NULL), KV_OK);              /* sets 5 */
    cr_assert_eq(kv_set_if(s, "a", 1, "3", 1, va, &va), KV_OK);   /* sets 6 */
    cr_assert_eq(kv_set_if(s, "a", 1, "4", 1, va + 50, NULL),
                 KV_VERSION_MISMATCH);                            /* cas 1 */
    cr_assert_eq(kv_set_if(s, "b", 1, "4", 1, 0, NULL),
                 KV_VERSION_MISMATCH);                            /* cas 2 */
    cr_assert_eq(kv_delete(s, "b", 1, NULL), KV_OK);              /* deletes 1 */
    cr_assert_eq(kv_delete(s, "b", 1, NULL), KV_NOT_FOUND);       /* no delete */
    uint64_t vc = kvt_version(s, "c");
    cr_assert_eq(kv_delete_if(s, "c", 1, vc + 50, NULL),
                 KV_VERSION_MISMATCH);                            /* cas 3 */
    cr_assert_eq(kv_delete_if(s, "c", 1, vc, NULL), KV_OK);       /* deletes 2 */
    kv_key keys[] = {{"a", 1}, {"d", 1}, {"nope", 4}};
    size_t deleted = 0;
    cr_assert_eq(kv_mdelete(s, keys, 3, &deleted, NULL), KV_OK);  /* deletes 4 */
    cr_assert_eq(deleted, 2);
    kv_metrics m = kvt_metrics(s);
    EXPECT_FIELD(m, sets, 6);
    EXPECT_FIELD(m, deletes, 4);
    EXPECT_FIELD(m, cas_failures, 3);
    EXPECT_FIELD(m, keys, 0);
    kv_close(s);
}

Test(metrics, txn_commits_and_conflicts_are_exact)
{
    kv_store *s = kvt_open(NULL);
    kvt_set(s, "k", "0");
    kv_txn *t = NULL;

    /* optimistic commit with a write */
    cr_assert_eq(kv_txn_begin(s, &t), KV_OK);
    cr_assert_eq(kv_txn_set(t, "k", 1, "1", 1), KV_OK);
    cr_assert_eq(kv_txn_commit(t, NULL), KV_OK);

    /* optimistic conflict */
    kv_value v = {0};
    cr_assert_eq(kv_txn_begin(s, &t), KV_OK);
    cr_assert_eq(kv_txn_get(t, "k", 1, &v), KV_OK);
    kv_value_free(&v);
    cr_assert_eq(kv_txn_set(t, "k", 1, "2", 1), KV_OK);
    kvt_set(s, "k", "x");
    cr_assert_eq(kv_txn_commit(t, NULL), KV_CONFLICT);

    /* abort counts as neither */
    cr_assert_eq(kv_txn_begin(s, &t), KV_OK);
    cr_assert_eq(kv_txn_set(t, "k", 1, "3", 1), KV_OK);
    kv_txn_abort(t);

    /* conditional commit with a write */
    kv_op op = {KV_OP_SET, "c", 1, "1", 1, 0};
    kv_txn_result r;
    cr_assert_eq(kv_txn_cond(s, NULL, 0, &op, 1, NULL, 0, &r), KV_OK);
    kv_txn_result_free(&r);

    kv_metrics m = kvt_metrics(s);
    EXPECT_FIELD(m, txn_commits, 2);
    EXPECT_FIELD(m, txn_conflicts, 1);
    kv_close(s);
}

Test(metrics, revision_is_the_latest_revision)
{
    kv_store *s = kvt_open(NULL);
    uint64_t r0 = kvt_revision(s);
    uint64_t v = kvt_set(s, "a", "1");
    cr_assert_eq(v, r0 + 1);
    cr_assert_eq(kvt_revision(s), v);
    uint64_t dv = 0;
    cr_assert_eq(kv_delete(s, "a", 1, &dv), KV_OK);
    cr_assert_eq(kvt_revision(s), dv);
    kv_close(s);
}

Test(metrics, memory_grows_with_data)
{
    kv_store *s = kvt_open(NULL);
    uint64_t before = kvt_metrics(s).memory_bytes;
    size_t n = 256 * 1024;
    char *big = calloc(1, n);
    cr_assert_not_null(big);
    cr_assert_eq(kv_set(s, "big", 3, big, n, NULL), KV_OK);
    free(big);
    kv_metrics m = kvt_metrics(s);
    cr_assert_gt(m.memory_bytes, before, "storing 256 KiB did not raise memory_bytes");
    kv_close(s);
}

Test(metrics, table_grows_with_keys)
{
    kv_store *s = kvt_open_cap(4);
    kv_metrics m0 = kvt_metrics(s);
    char k[32];
    for (int i = 0; i < 5000; i++) {
        snprintf(k, sizeof k, "key%d", i);
        kvt_set(s, k, "v");
    }
    kv_metrics m = kvt_metrics(s);
    cr_assert_gt(m.table_resizes, m0.table_resizes);
    cr_assert_gt(m.table_slots, m0.table_slots);
    EXPECT_FIELD(m, keys, 5000);
    kv_close(s);
}

Test(metrics, size_too_small_is_invalid_and_untouched)
{
    kv_store *s = kvt_open(NULL);
    kvt_set(s, "a", "1");
    kv_metrics m;
    memset(&m, 0xAB, sizeof m);
    kv_metrics copy = m;
    cr_assert_eq(kv_metrics_read(s, &m, 0), KV_INVALID_ARGUMENT);
    cr_assert_eq(kv_metrics_read(s, &m, 1), KV_INVALID_ARGUMENT);
    cr_assert_eq(kv_metrics_read(s, &m, sizeof(uint64_t) - 1), KV_INVALID_ARGUMENT);
    cr_assert_eq(memcmp(&m, &copy, sizeof m), 0, "metrics written despite the error");
    kv_close(s);
}

Test(metrics, older_smaller_struct_is_filled_up_to_its_size)
{
    /* A program built against an older header passes a smaller size: the
     * library must not write past it. */
    kv_store *s = kvt_open(NULL);
    kvt_set(s, "abc", "12345");
    kv_metrics m;
    memset(&m, 0xAB, sizeof m);
    size_t small = offsetof(kv_metrics, table_slots);
    cr_assert_eq(kv_metrics_read(s, &m, small), KV_OK);
    EXPECT_FIELD(m, keys, 1);
    EXPECT_FIELD(m, key_bytes, 3);
    EXPECT_FIELD(m, value_bytes, 5);
    const unsigned char *p = (const unsigned char *)&m;
    for (size_t i = small; i < sizeof m; i++)
        KVT_CHECK(p[i] == 0xAB, "byte %zu past size %zu was written", i, small);
    kv_close(s);
}
