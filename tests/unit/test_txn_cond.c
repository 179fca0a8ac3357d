/*
 * test_txn_cond.c - one-shot conditional transactions (kv_txn_cond): each
 * compare kind, the then/else branches, GET results, one atomic revision,
 * and errors that change nothing.
 */
#include "kvtest.h"

static kv_compare cmp_version(const char *k, uint64_t v)
{
    kv_compare c = {KV_CMP_VERSION_EQ, k, strlen(k), v, NULL, 0};
    return c;
}

static kv_compare cmp_exists(const char *k)
{
    kv_compare c = {KV_CMP_EXISTS, k, strlen(k), 0, NULL, 0};
    return c;
}

static kv_compare cmp_absent(const char *k)
{
    kv_compare c = {KV_CMP_ABSENT, k, strlen(k), 0, NULL, 0};
    return c;
}

static kv_compare cmp_value(const char *k, const char *v)
{
    kv_compare c = {KV_CMP_VALUE_EQ, k, strlen(k), 0, v, strlen(v)};
    return c;
}

static kv_op op_get(const char *k)
{
    kv_op o = {KV_OP_GET, k, strlen(k), NULL, 0, 0};
    return o;
}

static kv_op op_set(const char *k, const char *v)
{
    kv_op o = {KV_OP_SET, k, strlen(k), v, strlen(v), 0};
    return o;
}

static kv_op op_del(const char *k)
{
    kv_op o = {KV_OP_DELETE, k, strlen(k), NULL, 0, 0};
    return o;
}

/* Runs a txn with one compare; then sets "branch"="then", else "else".
 * Returns result.succeeded and checks the branch's effect. */
static int run_one(kv_store *s, kv_compare c)
{
    kv_op then_ops[] = {op_set("branch", "then")};
    kv_op else_ops[] = {op_set("branch", "else")};
    kv_txn_result r;
    memset(&r, 0, sizeof r);
    int rc = kv_txn_cond(s, &c, 1, then_ops, 1, else_ops, 1, &r);
    cr_assert_eq(rc, KV_OK, "kv_txn_cond: %s", kv_strerror(rc));
    cr_assert(r.succeeded == 0 || r.succeeded == 1);
    cr_assert_eq(r.nresults, 1);
    cr_assert_gt(r.version, 0);
    kvt_expect(s, "branch", r.succeeded ? "then" : "else", r.version);
    int ok = r.succeeded;
    kv_txn_result_free(&r);
    return ok;
}

Test(txn_cond, version_eq_true_and_false)
{
    kv_store *s = kvt_open(NULL);
    uint64_t v = kvt_set(s, "k", "v");
    cr_assert_eq(run_one(s, cmp_version("k", v)), 1);
    cr_assert_eq(run_one(s, cmp_version("k", v + 100)), 0);
    cr_assert_eq(run_one(s, cmp_version("k", 0)), 0, "k exists: version 0 is false");
    kv_close(s);
}

Test(txn_cond, version_eq_zero_means_absent)
{
    kv_store *s = kvt_open(NULL);
    cr_assert_eq(run_one(s, cmp_version("missing", 0)), 1);
    cr_assert_eq(run_one(s, cmp_version("missing", 1)), 0);
    kv_close(s);
}

Test(txn_cond, exists_true_and_false)
{
    kv_store *s = kvt_open(NULL);
    kvt_set(s, "k", "v");
    cr_assert_eq(run_one(s, cmp_exists("k")), 1);
    cr_assert_eq(run_one(s, cmp_exists("missing")), 0);
    kv_close(s);
}

Test(txn_cond, absent_true_and_false)
{
    kv_store *s = kvt_open(NULL);
    kvt_set(s, "k", "v");
    cr_assert_eq(run_one(s, cmp_absent("missing")), 1);
    cr_assert_eq(run_one(s, cmp_absent("k")), 0);
    kv_close(s);
}

Test(txn_cond, value_eq_true_and_false)
{
    kv_store *s = kvt_open(NULL);
    kvt_set(s, "k", "hello");
    kvt_set(s, "e", "");
    cr_assert_eq(run_one(s, cmp_value("k", "hello")), 1);
    cr_assert_eq(run_one(s, cmp_value("k", "hellO")), 0);
    cr_assert_eq(run_one(s, cmp_value("k", "hell")), 0, "a prefix is not equal");
    cr_assert_eq(run_one(s, cmp_value("k", "hello!")), 0);
    cr_assert_eq(run_one(s, cmp_value("e", "")), 1);
    cr_assert_eq(run_one(s, cmp_value("missing", "")), 0,
                 "an absent key never equals a value, even an empty one");
    kv_close(s);
}

Test(txn_cond, all_compares_must_hold)
{
    kv_store *s = kvt_open(NULL);
    uint64_t v = kvt_set(s, "a", "1");
    kv_compare good[] = {cmp_version("a", v), cmp_exists("a"),
                         cmp_absent("b"), cmp_value("a", "1")};
    kv_op then_ops[] = {op_set("t", "1")};
    kv_op else_ops[] = {op_set("e", "1")};
    kv_txn_result r;
    cr_assert_eq(kv_txn_cond(s, good, 4, then_ops, 1, else_ops, 1, &r), KV_OK);
    cr_assert_eq(r.succeeded, 1);
    kv_txn_result_free(&r);
    kvt_expect(s, "t", "1", 0);
    kvt_expect_absent(s, "e");

    cr_assert_eq(kv_delete(s, "t", 1, NULL), KV_OK);
    kv_compare one_bad[] = {cmp_exists("a"), cmp_absent("b"), cmp_value("a", "2")};
    cr_assert_eq(kv_txn_cond(s, one_bad, 3, then_ops, 1, else_ops, 1, &r), KV_OK);
    cr_assert_eq(r.succeeded, 0);
    kv_txn_result_free(&r);
    kvt_expect_absent(s, "t");
    kvt_expect(s, "e", "1", 0);
    kv_close(s);
}

Test(txn_cond, no_compares_runs_then_branch)
{
    kv_store *s = kvt_open(NULL);
    kv_op then_ops[] = {op_set("t", "1")};
    kv_op else_ops[] = {op_set("e", "1")};
    kv_txn_result r;
    cr_assert_eq(kv_txn_cond(s, NULL, 0, then_ops, 1, else_ops, 1, &r), KV_OK);
    cr_assert_eq(r.succeeded, 1);
    kv_txn_result_free(&r);
    kvt_expect(s, "t", "1", 0);
    kvt_expect_absent(s, "e");
    kv_close(s);
}

Test(txn_cond, only_the_chosen_branch_runs)
{
    kv_store *s = kvt_open(NULL);
    kvt_set(s, "x", "orig");
    kv_compare c = cmp_absent("x");
    kv_op then_ops[] = {op_set("x", "then"), op_set("t", "t"), op_get("x")};
    kv_op else_ops[] = {op_del("x"), op_get("x")};
    kv_txn_result r;
    cr_assert_eq(kv_txn_cond(s, &c, 1, then_ops, 3, else_ops, 2, &r), KV_OK);
    cr_assert_eq(r.succeeded, 0);
    cr_assert_eq(r.nresults, 2, "nresults must be the number of else_ops");
    cr_assert_not_null(r.results);
    cr_assert_eq(r.results[0].status, KV_OK);
    cr_assert_eq(r.results[1].status, KV_NOT_FOUND, "GET after DELETE in the list");
    cr_assert_null(r.results[1].value.data);
    kv_txn_result_free(&r);
    kvt_expect_absent(s, "x");
    kvt_expect_absent(s, "t");
    kv_close(s);
}

Test(txn_cond, get_ops_return_values_and_not_found)
{
    kv_store *s = kvt_open(NULL);
    uint64_t va = kvt_set(s, "a", "alpha");
    kvt_set(s, "e", "");
    kv_metrics before = kvt_metrics(s);
    kv_op ops[] = {op_get("a"), op_get("missing"), op_get("e")};
    kv_txn_result r;
    cr_assert_eq(kv_txn_cond(s, NULL, 0, ops, 3, NULL, 0, &r), KV_OK);
    cr_assert_eq(r.succeeded, 1);
    cr_assert_eq(r.nresults, 3);
    cr_assert_eq(r.version, 0, "a branch that only reads has version 0");
    cr_assert_eq(r.results[0].status, KV_OK);
    cr_assert_eq(r.results[0].value.len, 5);
    cr_assert_eq(memcmp(r.results[0].value.data, "alpha", 5), 0);
    cr_assert_eq(r.results[0].value.version, va);
    cr_assert_eq(r.results[1].status, KV_NOT_FOUND);
    cr_assert_null(r.results[1].value.data);
    cr_assert_eq(r.results[2].status, KV_OK);
    cr_assert_not_null(r.results[2].value.data, "empty value must be non-NULL");
    cr_assert_eq(r.results[2].value.len, 0);
    kv_txn_result_free(&r);
    kv_metrics after = kvt_metrics(s);
    kvt_expect_same_data(&before, &after);
    kv_close(s);
}

Test(txn_cond, delete_of_missing_key_reports_not_found)
{
    kv_store *s = kvt_open(NULL);
    kvt_set(s, "a", "1");
    kv_op ops[] = {op_del("missing"), op_del("a")};
    kv_txn_result r;
    cr_assert_eq(kv_txn_cond(s, NULL, 0, ops, 2, NULL, 0, &r), KV_OK);
    cr_assert_eq(r.nresults, 2);
    cr_assert_eq(r.results[0].status, KV_NOT_FOUND);
    cr_assert_eq(r.results[1].status, KV_OK);
    kv_txn_result_free(&r);
    kvt_expect_absent(s, "a");
    kv_close(s);
}

Test(txn_cond, get_sees_earlier_set_in_the_same_list)
{
    kv_store *s = kvt_open(NULL);
    kvt_set(s, "k", "old");
    kv_op ops[] = {op_get("k"), op_set("k", "new"), op_get("k"),
                   op_set("fresh", "f"), op_get("fresh")};
    kv_txn_result r;
    cr_assert_eq(kv_txn_cond(s, NULL, 0, ops, 5, NULL, 0, &r), KV_OK);
    cr_assert_eq(r.nresults, 5);
    cr_assert_eq(r.results[0].status, KV_OK);
    cr_assert_eq(r.results[0].value.len, 3);
    cr_assert_eq(memcmp(r.results[0].value.data, "old", 3), 0);
    cr_assert_eq(r.results[2].status, KV_OK);
    cr_assert_eq(r.results[2].value.len, 3);
    cr_assert_eq(memcmp(r.results[2].value.data, "new", 3), 0,
                 "GET must see the list's earlier SET");
    cr_assert_eq(r.results[4].status, KV_OK);
    cr_assert_eq(r.results[4].value.len, 1);
    cr_assert_eq(memcmp(r.results[4].value.data, "f", 1), 0);
    kv_txn_result_free(&r);
    kv_close(s);
}

Test(txn_cond, get_after_set_reports_the_commit_revision)
{
    /* A key's version is the revision of its last change: for a key set
     * earlier in the list that is the commit's revision. */
    kv_store *s = kvt_open(NULL);
    kv_op ops[] = {op_set("k", "v"), op_get("k")};
    kv_txn_result r;
    cr_assert_eq(kv_txn_cond(s, NULL, 0, ops, 2, NULL, 0, &r), KV_OK);
    cr_assert_gt(r.version, 0);
    cr_assert_eq(r.results[1].value.version, r.version);
    kv_txn_result_free(&r);
    kv_close(s);
}

Test(txn_cond, all_writes_share_one_revision)
{
    kv_store *s = kvt_open(NULL);
    kvt_set(s, "d", "to delete");
    uint64_t before = kvt_revision(s);
    kv_op ops[] = {op_set("a", "1"), op_set("b", "2"), op_del("d"),
                   op_set("c", "3")};
    kv_txn_result r;
    cr_assert_eq(kv_txn_cond(s, NULL, 0, ops, 4, NULL, 0, &r), KV_OK);
    cr_assert_eq(r.version, before + 1, "one conditional txn uses exactly one revision");
    kvt_expect(s, "a", "1", r.version);
    kvt_expect(s, "b", "2", r.version);
    kvt_expect(s, "c", "3", r.version);
    kvt_expect_absent(s, "d");
    cr_assert_eq(kvt_revision(s), r.version);
    kv_txn_result_free(&r);
    kv_close(s);
}

Test(txn_cond, result_free_tolerates_null_and_double_free)
{
    kv_store *s = kvt_open(NULL);
    kvt_set(s, "a", "1");
    kv_op ops[] = {op_get("a")};
    kv_txn_result r;
    cr_assert_eq(kv_txn_cond(s, NULL, 0, ops, 1, NULL, 0, &r), KV_OK);
    kv_txn_result_free(&r);
    kv_txn_result_free(&r);
    kv_txn_result_free(NULL);
    kv_close(s);
}

static void expect_cond_fails(kv_store *s, const kv_compare *cmps, size_t ncmps,
                              const kv_op *ops, size_t nops, int want)
{
    kv_metrics before = kvt_metrics(s);
    kv_txn_result r;
    memset(&r, 0x5A, sizeof r);
    kv_txn_result copy = r;
    int rc = kv_txn_cond(s, cmps, ncmps, ops, nops, ops, nops, &r);
    cr_assert_eq(rc, want, "kv_txn_cond: got %s, expected %s", kv_status_name(rc),
                 kv_status_name(want));
    cr_assert_eq(memcmp(&r, &copy, sizeof r), 0, "result touched on failure");
    kv_metrics after = kvt_metrics(s);
    kvt_expect_same_data(&before, &after);
}

Test(txn_cond, invalid_compare_kind_changes_nothing)
{
    kv_store *s = kvt_open(NULL);
    kvt_set(s, "a", "1");
    kv_compare c = cmp_exists("a");
    c.kind = (kv_compare_kind)99;
    kv_op ops[] = {op_set("a", "2"), op_set("b", "2")};
    expect_cond_fails(s, &c, 1, ops, 2, KV_INVALID_ARGUMENT);
    kvt_expect(s, "a", "1", 0);
    kvt_expect_absent(s, "b");
    kv_close(s);
}

Test(txn_cond, invalid_op_kind_changes_nothing)
{
    kv_store *s = kvt_open(NULL);
    kvt_set(s, "a", "1");
    kv_op ops[] = {op_set("a", "2"), op_set("b", "2"), op_get("a")};
    ops[2].kind = (kv_op_kind)42;
    expect_cond_fails(s, NULL, 0, ops, 3, KV_INVALID_ARGUMENT);
    kvt_expect(s, "a", "1", 0);
    kvt_expect_absent(s, "b");
    kv_close(s);
}

Test(txn_cond, null_lists_with_counts_are_invalid)
{
    kv_store *s = kvt_open(NULL);
    kvt_set(s, "a", "1");
    kv_op ops[] = {op_set("a", "2")};
    expect_cond_fails(s, NULL, 1, ops, 1, KV_INVALID_ARGUMENT);
    expect_cond_fails(s, NULL, 0, NULL, 1, KV_INVALID_ARGUMENT);
    kvt_expect(s, "a", "1", 0);
    kv_close(s);
}

Test(txn_cond, key_and_value_limits_change_nothing)
{
    kv_options o;
    kv_options_init(&o);
    o.max_key_size = 4;
    o.max_value_size = 4;
    kv_store *s = kvt_open(&o);
    kvt_set(s, "a", "1");
    kv_op big_val[] = {op_set("a", "2"), op_set("b", "12345")};
    expect_cond_fails(s, NULL, 0, big_val, 2, KV_VALUE_TOO_LARGE);
    kv_op big_key[] = {op_set("a", "2"), op_set("12345", "1")};
    expect_cond_fails(s, NULL, 0, big_key, 2, KV_KEY_TOO_LARGE);
    kv_op empty_key[] = {op_set("a", "2"), op_del("")};
    expect_cond_fails(s, NULL, 0, empty_key, 2, KV_KEY_EMPTY);
    kv_compare c = cmp_exists("");
    kv_op ok_ops[] = {op_set("a", "2")};
    expect_cond_fails(s, &c, 1, ok_ops, 1, KV_KEY_EMPTY);
    kvt_expect(s, "a", "1", 0);
    kvt_expect_absent(s, "b");
    kv_close(s);
}

Test(txn_cond, over_max_keys_is_store_full_and_changes_nothing)
{
    kv_options o;
    kv_options_init(&o);
    o.max_keys = 2;
    kv_store *s = kvt_open(&o);
    kvt_set(s, "a", "1");
    kv_op ops[] = {op_set("a", "2"), op_set("b", "2"), op_set("c", "3")};
    expect_cond_fails(s, NULL, 0, ops, 3, KV_STORE_FULL);
    kvt_expect(s, "a", "1", 0);
    kvt_expect_absent(s, "b");
    kvt_expect_absent(s, "c");
    kv_close(s);
}

Test(txn_cond, compare_and_swap_loop_example)
{
    /* the classic use: replace a value only if nobody changed it */
    kv_store *s = kvt_open(NULL);
    uint64_t v = kvt_set(s, "cfg", "A");
    kv_compare c = cmp_version("cfg", v);
    kv_op then_ops[] = {op_set("cfg", "B")};
    kv_op else_ops[] = {op_get("cfg")};
    kv_txn_result r;
    cr_assert_eq(kv_txn_cond(s, &c, 1, then_ops, 1, else_ops, 1, &r), KV_OK);
    cr_assert_eq(r.succeeded, 1);
    uint64_t v2 = r.version;
    kv_txn_result_free(&r);
    /* the same request again fails and reports the current value */
    cr_assert_eq(kv_txn_cond(s, &c, 1, then_ops, 1, else_ops, 1, &r), KV_OK);
    cr_assert_eq(r.succeeded, 0);
    cr_assert_eq(r.version, 0);
    cr_assert_eq(r.results[0].status, KV_OK);
    cr_assert_eq(r.results[0].value.version, v2);
    cr_assert_eq(memcmp(r.results[0].value.data, "B", 1), 0);
    kv_txn_result_free(&r);
    kv_close(s);
}
