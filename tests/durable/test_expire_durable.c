/*
 * test_expire_durable.c - expiry times survive close and reopen of a
 * durable store, through the log and through a snapshot; a key that has
 * expired by the time the store is reopened is absent, and its removal by
 * the active expiry is itself logged.
 */
#include <stdatomic.h>
#include <stdbool.h>
#include <time.h>
#include <time.h>

#include "durtest.h"

static uint64_t ttl_of(kv_store *s, const char *k)
{
    uint64_t at = 0;
    cr_assert_eq(kv_ttl(s, k, strlen(k), &at), KV_OK, "kv_ttl(%s)", k);
    return at;
}

static void write_ttls(kv_store *s, uint64_t far)
{
    cr_assert_eq(kv_set_ex(s, "one", 3, "1", 1, far, NULL), KV_OK);
    kv_pair p[2] = {{"m1", 2, "a", 1}, {"m2", 2, "b", 1}};
    cr_assert_eq(kv_mset_ex(s, p, 2, far + 1, NULL), KV_OK);
    cr_assert_eq(kv_set(s, "plain", 5, "p", 1, NULL), KV_OK);
    cr_assert_eq(kv_set(s, "later", 5, "l", 1, NULL), KV_OK);
    cr_assert_eq(kv_expire(s, "later", 5, far + 2, NULL), KV_OK);
    cr_assert_eq(kv_set_ex(s, "persisted", 9, "x", 1, far, NULL), KV_OK);
    cr_assert_eq(kv_persist(s, "persisted", 9, NULL), KV_OK);
    kv_txn *t;
    cr_assert_eq(kv_txn_begin(s, &t), KV_OK);
    cr_assert_eq(kv_txn_set_ex(t, "txn", 3, "t", 1, far + 3), KV_OK);
    cr_assert_eq(kv_txn_commit(t, NULL), KV_OK);
}

static void check_ttls(kv_store *s, uint64_t far)
{
    cr_assert_eq(ttl_of(s, "one"), far);
    cr_assert_eq(ttl_of(s, "m1"), far + 1);
    cr_assert_eq(ttl_of(s, "m2"), far + 1);
    cr_assert_eq(ttl_of(s, "plain"), 0);
    cr_assert_eq(ttl_of(s, "later"), far + 2);
    cr_assert_eq(ttl_of(s, "persisted"), 0);
    cr_assert_eq(ttl_of(s, "txn"), far + 3);
    kv_metrics m;
    kv_metrics_read(s, &m, sizeof m);
    cr_assert_eq(m.keys_with_ttl, 5);
}

static void reopen_keeps_ttls(bool snapshot)
{
    char *dir = dt_tmpdir(snapshot ? "ttlsnap" : "ttllog");
    kv_store *s = dt_open(dir, KV_FSYNC_ALWAYS);
    uint64_t far = kv_clock_ms(s) + 3600 * 1000;
    write_ttls(s, far);
    if (snapshot)
        cr_assert_eq(kv_snapshot(s), KV_OK);
    check_ttls(s, far);
    kv_close(s);
    s = dt_open(dir, KV_FSYNC_ALWAYS);
    kv_recovery r;
    kv_recovery_read(s, &r, sizeof r);
    if (snapshot)
        cr_assert_gt(r.snapshot_revision, 0);
    else
        cr_assert_eq(r.snapshot_revision, 0);
    check_ttls(s, far);
    kv_close(s);
    dt_rmdir(dir);
    free(dir);
}

Test(expire_durable, ttls_survive_reopen_through_the_log) { reopen_keeps_ttls(false); }
Test(expire_durable, ttls_survive_reopen_through_a_snapshot) { reopen_keeps_ttls(true); }

Test(expire_durable, a_key_expired_while_closed_is_absent_and_its_removal_is_logged)
{
    char *dir = dt_tmpdir("ttlgone");
    kv_store *s = dt_open(dir, KV_FSYNC_ALWAYS);
    uint64_t soon = kv_clock_ms(s) + 150;
    cr_assert_eq(kv_set_ex(s, "soon", 4, "v", 1, soon, NULL), KV_OK);
    cr_assert_eq(kv_set(s, "stays", 5, "v", 1, NULL), KV_OK);
    cr_assert_eq(kv_snapshot(s), KV_OK); /* the key is in the snapshot too */
    kv_close(s);
    struct timespec ts = {0, 200 * 1000 * 1000};
    nanosleep(&ts, NULL);

    s = dt_open(dir, KV_FSYNC_ALWAYS);
    kv_value v;
    cr_assert_eq(kv_get(s, "soon", 4, &v), KV_NOT_FOUND);
    cr_assert_eq(kv_get(s, "stays", 5, &v), KV_OK);
    kv_value_free(&v);
    /* the active expiry deletes it: a logged change */
    kv_metrics m = {0};
    for (int i = 0; i < 500; i++) {
        kv_metrics_read(s, &m, sizeof m);
        if (m.expired_keys == 1)
            break;
        ts.tv_nsec = 10 * 1000 * 1000;
        nanosleep(&ts, NULL);
    }
    cr_assert_eq(m.expired_keys, 1);
    cr_assert_eq(m.keys, 1);
    uint64_t rev = m.revision;
    kv_close(s);
    s = dt_open(dir, KV_FSYNC_ALWAYS);
    kv_metrics_read(s, &m, sizeof m);
    cr_assert_eq(m.revision, rev);
    cr_assert_eq(m.keys, 1, "the delete was replayed");
    kv_close(s);
    dt_rmdir(dir);
    free(dir);
}
