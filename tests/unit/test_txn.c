/*
 * test_txn.c - optimistic transactions: buffered writes visible to their
 * own reads, commit under one revision, KV_CONFLICT when something read has
 * changed, abort.
 */
#include "kvtest.h"

static kv_txn *begin(kv_store *s)
{
    kv_txn *t = NULL;
    int rc = kv_txn_begin(s, &t);
    cr_assert_eq(rc, KV_OK, "kv_txn_begin: %s", kv_strerror(rc));
    cr_assert_not_null(t);
    return t;
}

static void txn_expect(kv_txn *t, const char *k, const char *v)
{
    kv_value out = {0};
    int rc = kv_txn_get(t, k, strlen(k), &out);
    cr_assert_eq(rc, KV_OK, "kv_txn_get(%s): %s", k, kv_strerror(rc));
    cr_assert_eq(out.len, strlen(v));
    cr_assert_eq(memcmp(out.data, v, out.len), 0, "kv_txn_get(%s): wrong bytes", k);
    kv_value_free(&out);
}

static void txn_expect_absent(kv_txn *t, const char *k)
{
    kv_value out = {0};
    int rc = kv_txn_get(t, k, strlen(k), &out);
    cr_assert_eq(rc, KV_NOT_FOUND, "kv_txn_get(%s): expected NOT_FOUND, got %s",
                 k, kv_status_name(rc));
    cr_assert_null(out.data);
}

static void txn_set(kv_txn *t, const char *k, const char *v)
{
    int rc = kv_txn_set(t, k, strlen(k), v, strlen(v));
    cr_assert_eq(rc, KV_OK, "kv_txn_set(%s): %s", k, kv_strerror(rc));
}

Test(txn, get_sees_committed_data)
{
    kv_store *s = kvt_open(NULL);
    uint64_t v = kvt_set(s, "k", "value");
    kv_txn *t = begin(s);
    kv_value out = {0};
    cr_assert_eq(kv_txn_get(t, "k", 1, &out), KV_OK);
    cr_assert_eq(out.len, 5);
    cr_assert_eq(memcmp(out.data, "value", 5), 0);
    cr_assert_eq(out.version, v);
    kv_value_free(&out);
    txn_expect_absent(t, "nope");
    kv_txn_abort(t);
    kv_close(s);
}

Test(txn, reads_its_own_writes_which_stay_private_until_commit)
{
    kv_store *s = kvt_open(NULL);
    kvt_set(s, "k", "old");
    kv_txn *t = begin(s);
    txn_set(t, "k", "new");
    txn_set(t, "fresh", "f");
    txn_expect(t, "k", "new");
    txn_expect(t, "fresh", "f");
    kvt_expect(s, "k", "old", 0);
    kvt_expect_absent(s, "fresh");
    txn_set(t, "k", "newer");
    txn_expect(t, "k", "newer");
    uint64_t v = 0;
    cr_assert_eq(kv_txn_commit(t, &v), KV_OK);
    kvt_expect(s, "k", "newer", v);
    kvt_expect(s, "fresh", "f", v);
    kv_close(s);
}

Test(txn, delete_inside_txn_hides_key_then_removes_it_on_commit)
{
    kv_store *s = kvt_open(NULL);
    kvt_set(s, "k", "v");
    kvt_set(s, "other", "o");
    kv_txn *t = begin(s);
    cr_assert_eq(kv_txn_delete(t, "k", 1), KV_OK);
    txn_expect_absent(t, "k");
    kvt_expect(s, "k", "v", 0);
    /* set after delete in the same txn is visible again */
    cr_assert_eq(kv_txn_delete(t, "other", 5), KV_OK);
    txn_set(t, "other", "back");
    txn_expect(t, "other", "back");
    uint64_t v = 0;
    cr_assert_eq(kv_txn_commit(t, &v), KV_OK);
    kvt_expect_absent(s, "k");
    kvt_expect(s, "other", "back", v);
    cr_assert_eq(kvt_metrics(s).keys, 1);
    kv_close(s);
}

Test(txn, commit_uses_one_new_revision_for_all_writes)
{
    kv_store *s = kvt_open(NULL);
    kvt_set(s, "c", "to delete");
    uint64_t before = kvt_revision(s);
    kv_txn *t = begin(s);
    txn_set(t, "a", "1");
    txn_set(t, "b", "2");
    cr_assert_eq(kv_txn_delete(t, "c", 1), KV_OK);
    uint64_t v = 0;
    cr_assert_eq(kv_txn_commit(t, &v), KV_OK);
    cr_assert_eq(v, before + 1, "commit revision %llu, expected %llu",
                 (unsigned long long)v, (unsigned long long)before + 1);
    kvt_expect(s, "a", "1", v);
    kvt_expect(s, "b", "2", v);
    kvt_expect_absent(s, "c");
    cr_assert_eq(kvt_revision(s), v);
    kv_close(s);
}

Test(txn, conflict_when_a_read_key_changed)
{
    kv_store *s = kvt_open(NULL);
    kvt_set(s, "k", "v1");
    kv_txn *t = begin(s);
    txn_expect(t, "k", "v1");
    txn_set(t, "out", "written");
    uint64_t v2 = kvt_set(s, "k", "v2");
    kv_metrics before = kvt_metrics(s);
    uint64_t v = 5555;
    cr_assert_eq(kv_txn_commit(t, &v), KV_CONFLICT);
    cr_assert_eq(v, 5555, "version output touched on conflict");
    kvt_expect_absent(s, "out");
    kvt_expect(s, "k", "v2", v2);
    kv_metrics after = kvt_metrics(s);
    kvt_expect_same_data(&before, &after);
    kv_close(s);
}

Test(txn, conflict_when_a_read_key_was_deleted)
{
    kv_store *s = kvt_open(NULL);
    kvt_set(s, "k", "v1");
    kv_txn *t = begin(s);
    txn_expect(t, "k", "v1");
    txn_set(t, "k", "v1+1");
    cr_assert_eq(kv_delete(s, "k", 1, NULL), KV_OK);
    cr_assert_eq(kv_txn_commit(t, NULL), KV_CONFLICT);
    kvt_expect_absent(s, "k");
    kv_close(s);
}

Test(txn, conflict_when_a_key_read_as_absent_was_created)
{
    kv_store *s = kvt_open(NULL);
    kv_txn *t = begin(s);
    txn_expect_absent(t, "k");
    txn_set(t, "k", "mine");
    uint64_t v = kvt_set(s, "k", "theirs");
    cr_assert_eq(kv_txn_commit(t, NULL), KV_CONFLICT);
    kvt_expect(s, "k", "theirs", v);
    kv_close(s);
}

Test(txn, conflict_when_key_changed_and_changed_back)
{
    /* same value, new version: still a change */
    kv_store *s = kvt_open(NULL);
    kvt_set(s, "k", "same");
    kv_txn *t = begin(s);
    txn_expect(t, "k", "same");
    txn_set(t, "w", "x");
    kvt_set(s, "k", "same");
    cr_assert_eq(kv_txn_commit(t, NULL), KV_CONFLICT);
    kvt_expect_absent(s, "w");
    kv_close(s);
}

Test(txn, change_to_an_unread_key_does_not_conflict)
{
    kv_store *s = kvt_open(NULL);
    kvt_set(s, "read", "r");
    kvt_set(s, "unrelated", "u");
    kv_txn *t = begin(s);
    txn_expect(t, "read", "r");
    txn_set(t, "w", "x");
    kvt_set(s, "unrelated", "u2");
    uint64_t v = 0;
    cr_assert_eq(kv_txn_commit(t, &v), KV_OK);
    kvt_expect(s, "w", "x", v);
    kv_close(s);
}

Test(txn, blind_write_commits_over_a_concurrent_change)
{
    kv_store *s = kvt_open(NULL);
    kvt_set(s, "k", "v1");
    kv_txn *t = begin(s);
    txn_set(t, "k", "blind");
    kvt_set(s, "k", "v2");
    uint64_t v = 0;
    cr_assert_eq(kv_txn_commit(t, &v), KV_OK, "a txn that read nothing cannot conflict");
    kvt_expect(s, "k", "blind", v);
    kv_close(s);
}

Test(txn, inconsistent_read_gives_conflict_or_the_old_snapshot)
{
    kv_store *s = kvt_open(NULL);
    kvt_set(s, "a", "a1");
    kvt_set(s, "b", "b1");
    kv_txn *t = begin(s);
    txn_expect(t, "a", "a1");
    kv_pair pairs[] = {{"a", 1, "a2", 2}, {"b", 1, "b2", 2}};
    cr_assert_eq(kv_mset(s, pairs, 2, NULL), KV_OK);
    kv_value out = {0};
    int rc = kv_txn_get(t, "b", 1, &out);
    if (rc == KV_OK) {
        /* only the state consistent with a = a1 may be seen */
        cr_assert_eq(out.len, 2);
        cr_assert_eq(memcmp(out.data, "b1", 2), 0,
                     "txn saw b = b2 after a = a1: not a consistent state");
        kv_value_free(&out);
        txn_set(t, "c", "c");
    } else {
        /* the txn can now only be aborted: later calls may say CONFLICT */
        cr_assert_eq(rc, KV_CONFLICT, "kv_txn_get: %s", kv_status_name(rc));
        rc = kv_txn_set(t, "c", 1, "c", 1);
        cr_assert(rc == KV_OK || rc == KV_CONFLICT, "kv_txn_set: %s",
                  kv_status_name(rc));
    }
    cr_assert_eq(kv_txn_commit(t, NULL), KV_CONFLICT);
    kvt_expect_absent(s, "c");
    kv_close(s);
}

Test(txn, abort_discards_writes)
{
    kv_store *s = kvt_open(NULL);
    uint64_t v1 = kvt_set(s, "k", "v");
    kv_metrics before = kvt_metrics(s);
    kv_txn *t = begin(s);
    txn_set(t, "k", "changed");
    txn_set(t, "new", "n");
    cr_assert_eq(kv_txn_delete(t, "k", 1), KV_OK);
    kv_txn_abort(t);
    kvt_expect(s, "k", "v", v1);
    kvt_expect_absent(s, "new");
    kv_metrics after = kvt_metrics(s);
    kvt_expect_same_data(&before, &after);
    kv_close(s);
}

Test(txn, abort_null_is_a_no_op)
{
    kv_txn_abort(NULL);
}

Test(txn, read_only_txn_commits_and_leaves_version_alone)
{
    kv_store *s = kvt_open(NULL);
    kvt_set(s, "k", "v");
    kv_metrics before = kvt_metrics(s);
    kv_txn *t = begin(s);
    txn_expect(t, "k", "v");
    txn_expect_absent(t, "missing");
    uint64_t v = 5555;
    cr_assert_eq(kv_txn_commit(t, &v), KV_OK);
    cr_assert_eq(v, 5555, "a txn that wrote nothing must leave version unchanged");
    kv_metrics after = kvt_metrics(s);
    kvt_expect_same_data(&before, &after);
    kv_close(s);
}

Test(txn, empty_txn_commits)
{
    kv_store *s = kvt_open(NULL);
    kv_txn *t = begin(s);
    uint64_t v = 5555;
    cr_assert_eq(kv_txn_commit(t, &v), KV_OK);
    cr_assert_eq(v, 5555);
    kv_close(s);
}

Test(txn, conflict_leaves_store_unchanged)
{
    kv_store *s = kvt_open(NULL);
    kvt_set(s, "x", "1");
    kvt_set(s, "y", "2");
    kv_txn *t = begin(s);
    txn_expect(t, "x", "1");
    txn_set(t, "x", "10");
    cr_assert_eq(kv_txn_delete(t, "y", 1), KV_OK);
    txn_set(t, "z", "30");
    uint64_t vx = kvt_set(s, "x", "100");
    kv_metrics before = kvt_metrics(s);
    cr_assert_eq(kv_txn_commit(t, NULL), KV_CONFLICT);
    kv_metrics after = kvt_metrics(s);
    kvt_expect_same_data(&before, &after);
    kvt_expect(s, "x", "100", vx);
    kvt_expect(s, "y", "2", 0);
    kvt_expect_absent(s, "z");
    kv_close(s);
}

Test(txn, limits_are_checked_on_buffered_ops)
{
    kv_options o;
    kv_options_init(&o);
    o.max_key_size = 4;
    o.max_value_size = 4;
    kv_store *s = kvt_open(&o);
    kv_txn *t = begin(s);
    kv_value out = {0};
    cr_assert_eq(kv_txn_set(t, "", 0, "v", 1), KV_KEY_EMPTY);
    cr_assert_eq(kv_txn_set(t, "12345", 5, "v", 1), KV_KEY_TOO_LARGE);
    cr_assert_eq(kv_txn_set(t, "k", 1, "12345", 5), KV_VALUE_TOO_LARGE);
    cr_assert_eq(kv_txn_delete(t, "", 0), KV_KEY_EMPTY);
    cr_assert_eq(kv_txn_get(t, "", 0, &out), KV_KEY_EMPTY);
    cr_assert_eq(kv_txn_get(t, "12345", 5, &out), KV_KEY_TOO_LARGE);
    cr_assert_null(out.data);
    kv_txn_abort(t);
    kv_close(s);
}

Test(txn, commit_over_max_keys_is_store_full_and_changes_nothing)
{
    kv_options o;
    kv_options_init(&o);
    o.max_keys = 2;
    kv_store *s = kvt_open(&o);
    uint64_t va = kvt_set(s, "a", "1");
    kv_metrics before = kvt_metrics(s);
    kv_txn *t = begin(s);
    txn_set(t, "a", "changed");
    txn_set(t, "b", "2");
    txn_set(t, "c", "3");
    uint64_t v = 5555;
    cr_assert_eq(kv_txn_commit(t, &v), KV_STORE_FULL);
    cr_assert_eq(v, 5555);
    kv_metrics after = kvt_metrics(s);
    kvt_expect_same_data(&before, &after);
    kvt_expect(s, "a", "1", va);
    kvt_expect_absent(s, "b");
    kvt_expect_absent(s, "c");
    kv_close(s);
}

Test(txn, independent_txns_both_commit)
{
    kv_store *s = kvt_open(NULL);
    kvt_set(s, "a", "1");
    kvt_set(s, "b", "2");
    kv_txn *t1 = begin(s);
    kv_txn *t2 = begin(s);
    txn_expect(t1, "a", "1");
    txn_expect(t2, "b", "2");
    txn_set(t1, "a", "11");
    txn_set(t2, "b", "22");
    uint64_t v1 = 0, v2 = 0;
    cr_assert_eq(kv_txn_commit(t1, &v1), KV_OK);
    cr_assert_eq(kv_txn_commit(t2, &v2), KV_OK);
    cr_assert_neq(v1, v2);
    kvt_expect(s, "a", "11", v1);
    kvt_expect(s, "b", "22", v2);
    kv_close(s);
}

Test(txn, second_of_two_read_modify_write_txns_conflicts)
{
    kv_store *s = kvt_open(NULL);
    kvt_set(s, "n", "0");
    kv_txn *t1 = begin(s);
    kv_txn *t2 = begin(s);
    txn_expect(t1, "n", "0");
    txn_expect(t2, "n", "0");
    txn_set(t1, "n", "1");
    txn_set(t2, "n", "1");
    cr_assert_eq(kv_txn_commit(t1, NULL), KV_OK);
    cr_assert_eq(kv_txn_commit(t2, NULL), KV_CONFLICT);
    kvt_expect(s, "n", "1", 0);
    kv_close(s);
}

/* A transaction keeps its first reads and writes, and their keys and
 * values, inside itself (txn.c): one that outgrows that (many keys, big
 * values, both in the middle of the transaction) must read its own writes,
 * validate every read and commit every write all the same. */
Test(txn, a_big_transaction_keeps_every_read_and_write)
{
    kv_store *s = kvt_open(NULL);
    char k[32], v[400];
    for (int i = 0; i < 12; i++) {
        snprintf(k, sizeof k, "big-%02d", i);
        kvt_set(s, k, "old");
    }
    kv_txn *t = begin(s);
    for (int i = 0; i < 12; i++) { /* reads and writes interleaved */
        snprintf(k, sizeof k, "big-%02d", i);
        txn_expect(t, k, "old");
        memset(v, 'a' + i, sizeof v - 1);
        v[sizeof v - 1 - (size_t)i] = '\0'; /* 399 bytes down to 388 */
        txn_set(t, k, v);
        txn_expect(t, k, v);
    }
    for (int i = 0; i < 12; i++) { /* the earliest ones, long spilled */
        snprintf(k, sizeof k, "big-%02d", i);
        memset(v, 'a' + i, sizeof v - 1);
        v[sizeof v - 1 - (size_t)i] = '\0';
        txn_expect(t, k, v);
    }
    uint64_t ver = 0;
    cr_assert_eq(kv_txn_commit(t, &ver), KV_OK);
    for (int i = 0; i < 12; i++) {
        snprintf(k, sizeof k, "big-%02d", i);
        memset(v, 'a' + i, sizeof v - 1);
        v[sizeof v - 1 - (size_t)i] = '\0';
        kv_value got;
        cr_assert_eq(kv_get(s, k, strlen(k), &got), KV_OK);
        cr_assert_eq(got.len, strlen(v), "%s", k);
        cr_assert_eq(memcmp(got.data, v, got.len), 0, "%s", k);
        cr_assert_eq(got.version, ver, "%s: one revision for all", k);
        kv_value_free(&got);
    }

    /* and the last of twelve reads still validates: a change to it
     * conflicts */
    t = begin(s);
    for (int i = 0; i < 12; i++) {
        snprintf(k, sizeof k, "big-%02d", i);
        kv_value got;
        cr_assert_eq(kv_txn_get(t, k, strlen(k), &got), KV_OK);
        kv_value_free(&got);
    }
    txn_set(t, "big-00", "x");
    kvt_set(s, "big-11", "changed");
    cr_assert_eq(kv_txn_commit(t, NULL), KV_CONFLICT);
    kv_value got;
    cr_assert_eq(kv_get(s, "big-00", 6, &got), KV_OK);
    cr_assert_neq(got.len, 1, "the conflicting transaction changed nothing");
    kv_value_free(&got);
    kv_close(s);
}
