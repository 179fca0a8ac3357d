/*
 * test_expire.c - expiry (libkv/src/expire.c, and the expiry rule in
 * table.h, apply.c, read.c, scan.c, txn.c), white-box: the store's clock is
 * frozen with kv__clock_set so that every boundary is tested at an exact
 * millisecond, without sleeping.
 *
 * The rule under test: a key with expiry time T is present while the clock
 * reads < T and absent from T on, identically for get, get_into, get_with,
 * exists, ttl, mget, scan, CAS, optimistic and conditional transactions.
 * Last, the replicas' part: a thread's pinned clock, and a store with
 * manual expiry (kv_expired_find, kv_expire_remove).
 */
#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <string.h>
#include <time.h>
#include "kvtest.h"

#include <time.h>

#include "apply.h"
#include "expire.h"

#define T0 1700000000000ull /* an arbitrary wall-clock time, ms */

/* A store whose clock reads T0 and whose active expiry is paused. */
static kv_store *open_frozen(void)
{
    kv_store *s = kvt_open(NULL);
    kv__clock_set(s, T0);
    kv__expiry_pause(s, true);
    return s;
}

static int count_fn(void *ctx, const void *k, size_t kl, const void *v, size_t vl,
                    uint64_t ver)
{
    (void)k, (void)kl, (void)v, (void)vl, (void)ver;
    ++*(int *)ctx;
    return 0;
}

static int scan_count(kv_store *s)
{
    int n = 0;
    uint64_t next;
    cr_assert_eq(kv_scan(s, NULL, 0, 0, 1000, count_fn, &n, &next), KV_OK);
    cr_assert_eq(next, 0);
    return n;
}

static void read_fn(void *ctx, const void *v, size_t vl, uint64_t ver)
{
    (void)v, (void)vl, (void)ver;
    ++*(int *)ctx;
}

/* Every single-key read agrees on whether k is present. */
static void expect_present(kv_store *s, const char *k, bool present)
{
    size_t kl = strlen(k);
    int want = present ? KV_OK : KV_NOT_FOUND;
    kv_value v = {0};
    cr_assert_eq(kv_get(s, k, kl, &v), want, "get %s", k);
    kv_value_free(&v);
    char buf[64];
    size_t vl;
    cr_assert_eq(kv_get_into(s, k, kl, buf, sizeof buf, &vl, NULL), want);
    int calls = 0;
    cr_assert_eq(kv_get_with(s, k, kl, read_fn, &calls), want);
    cr_assert_eq(calls, present ? 1 : 0);
    cr_assert_eq(kv_exists(s, k, kl, NULL), want);
    uint64_t at;
    cr_assert_eq(kv_ttl(s, k, kl, &at), want);
    kv_key key = {k, kl};
    kv_value mv;
    cr_assert_eq(kv_mget(s, &key, 1, &mv), KV_OK);
    cr_assert_eq(mv.data != NULL, present);
    kv_values_free(&mv, 1);
    kv_txn *t;
    cr_assert_eq(kv_txn_begin(s, &t), KV_OK);
    cr_assert_eq(kv_txn_get(t, k, kl, &v), want);
    kv_value_free(&v);
    kv_txn_abort(t);
    kv_compare c = {.kind = KV_CMP_EXISTS, .key = k, .klen = kl};
    kv_txn_result r;
    cr_assert_eq(kv_txn_cond(s, &c, 1, NULL, 0, NULL, 0, &r), KV_OK);
    cr_assert_eq(r.succeeded, present);
    kv_txn_result_free(&r);
}

Test(expire, a_key_is_visible_until_the_boundary_millisecond_and_gone_at_it)
{
    kv_store *s = open_frozen();
    uint64_t ver;
    cr_assert_eq(kv_set_ex(s, "k", 1, "v", 1, T0 + 100, &ver), KV_OK);
    kvt_set(s, "plain", "p");
    expect_present(s, "k", true);
    uint64_t at = 0;
    cr_assert_eq(kv_ttl(s, "k", 1, &at), KV_OK);
    cr_assert_eq(at, T0 + 100);
    cr_assert_eq(kv_ttl(s, "plain", 5, &at), KV_OK);
    cr_assert_eq(at, 0);
    cr_assert_eq(scan_count(s), 2);

    kv__clock_set(s, T0 + 99);
    expect_present(s, "k", true);
    cr_assert_eq(scan_count(s), 2);
    kv__clock_set(s, T0 + 100);
    expect_present(s, "k", false);
    expect_present(s, "plain", true);
    cr_assert_eq(scan_count(s), 1);
    kv_close(s);
}

Test(expire, ttl_is_relative_to_the_store_clock_and_zero_is_refused)
{
    kv_store *s = open_frozen();
    cr_assert_eq(kv_clock_ms(s), T0);
    cr_assert_eq(kv_set_ttl(s, "k", 1, "v", 1, 0, NULL), KV_INVALID_ARGUMENT);
    cr_assert_eq(kv_set_ttl(s, "k", 1, "v", 1, 10, NULL), KV_OK);
    uint64_t at;
    cr_assert_eq(kv_ttl(s, "k", 1, &at), KV_OK);
    cr_assert_eq(at, T0 + 10);
    cr_assert_eq(kv_ttl(s, "k", 1, NULL), KV_INVALID_ARGUMENT);
    cr_assert_eq(kv_ttl(s, "nope", 4, &at), KV_NOT_FOUND);
    kv_close(s);
}

Test(expire, expire_and_persist_are_changes_with_a_revision)
{
    kv_store *s = open_frozen();
    uint64_t v1 = kvt_set(s, "k", "v"), v2, v3, v4;
    cr_assert_eq(kv_expire(s, "k", 1, T0 + 50, &v2), KV_OK);
    cr_assert_gt(v2, v1);
    kvt_expect(s, "k", "v", v2);
    uint64_t at;
    kv_ttl(s, "k", 1, &at);
    cr_assert_eq(at, T0 + 50);
    /* the same expiry again: no change */
    cr_assert_eq(kv_expire(s, "k", 1, T0 + 50, &v3), KV_OK);
    cr_assert_eq(v3, v2);
    cr_assert_eq(kv_revision(s), v2);
    cr_assert_eq(kv_persist(s, "k", 1, &v4), KV_OK);
    cr_assert_gt(v4, v2);
    kv_ttl(s, "k", 1, &at);
    cr_assert_eq(at, 0);
    kv__clock_set(s, T0 + 1000);
    kvt_expect(s, "k", "v", v4); /* persisted: never expires */
    cr_assert_eq(kv_expire(s, "nope", 4, T0 + 5000, NULL), KV_NOT_FOUND);
    cr_assert_eq(kv_persist(s, "nope", 4, NULL), KV_NOT_FOUND);
    /* a time already past deletes the key */
    cr_assert_eq(kv_expire(s, "k", 1, T0, NULL), KV_OK);
    expect_present(s, "k", false);
    cr_assert_eq(kvt_metrics(s).keys, 0);
    /* an expired key cannot be given an expiry */
    cr_assert_eq(kv_set_ex(s, "e", 1, "v", 1, T0 + 1001, NULL), KV_OK);
    kv__clock_set(s, T0 + 1001);
    cr_assert_eq(kv_expire(s, "e", 1, T0 + 9000, NULL), KV_NOT_FOUND);
    cr_assert_eq(kv_persist(s, "e", 1, NULL), KV_NOT_FOUND);
    kv_close(s);
}

Test(expire, a_multi_set_with_one_expiry_disappears_at_once_for_mget)
{
    kv_store *s = open_frozen();
    kv_pair p[3] = {{"a", 1, "1", 1}, {"b", 1, "2", 1}, {"c", 1, "3", 1}};
    uint64_t ver;
    cr_assert_eq(kv_mset_ex(s, p, 3, T0 + 7, &ver), KV_OK);
    kv_key keys[3] = {{"a", 1}, {"b", 1}, {"c", 1}};
    kv_value out[3];
    kv__clock_set(s, T0 + 6);
    cr_assert_eq(kv_mget(s, keys, 3, out), KV_OK);
    for (int i = 0; i < 3; i++)
        cr_assert_eq(out[i].version, ver);
    kv_values_free(out, 3);
    kv__clock_set(s, T0 + 7);
    cr_assert_eq(kv_mget(s, keys, 3, out), KV_OK);
    for (int i = 0; i < 3; i++)
        cr_assert_null(out[i].data);
    cr_assert_eq(kv_mset_ttl(s, p, 3, 0, NULL), KV_INVALID_ARGUMENT);
    cr_assert_eq(kv_mset_ttl(s, p, 3, 5, NULL), KV_OK);
    uint64_t at;
    kv_ttl(s, "b", 1, &at);
    cr_assert_eq(at, T0 + 12);
    kv_close(s);
}

Test(expire, cas_compares_an_expired_key_as_absent)
{
    kv_store *s = open_frozen();
    uint64_t v, v2;
    cr_assert_eq(kv_set_ex(s, "k", 1, "old", 3, T0 + 5, &v), KV_OK);
    kv__clock_set(s, T0 + 5);
    cr_assert_eq(kv_set_if(s, "k", 1, "x", 1, v, NULL), KV_VERSION_MISMATCH);
    cr_assert_eq(kv_delete_if(s, "k", 1, v, NULL), KV_NOT_FOUND);
    cr_assert_eq(kv_delete(s, "k", 1, NULL), KV_NOT_FOUND);
    /* expected 0 = "must be absent": holds for an expired key */
    cr_assert_eq(kv_set_ex(s, "j", 1, "old", 3, T0 + 6, &v), KV_OK);
    cr_assert_eq(kv_set_if(s, "j", 1, "new", 3, 0, NULL), KV_VERSION_MISMATCH);
    kv__clock_set(s, T0 + 6);
    cr_assert_eq(kv_set_if(s, "j", 1, "new", 3, 0, &v2), KV_OK);
    kvt_expect(s, "j", "new", v2);
    uint64_t at;
    kv_ttl(s, "j", 1, &at);
    cr_assert_eq(at, 0, "a set without expiry replaces the expired key's");
    /* a value compare fails on an expired key */
    cr_assert_eq(kv_set_ex(s, "q", 1, "val", 3, T0 + 7, NULL), KV_OK);
    kv__clock_set(s, T0 + 7);
    kv_compare c = {.kind = KV_CMP_VALUE_EQ, .key = "q", .klen = 1, .value = "val", .vlen = 3};
    kv_txn_result r;
    cr_assert_eq(kv_txn_cond(s, &c, 1, NULL, 0, NULL, 0, &r), KV_OK);
    cr_assert_eq(r.succeeded, 0);
    kv_txn_result_free(&r);
    kv_compare c0 = {.kind = KV_CMP_VERSION_EQ, .key = "q", .klen = 1, .version = 0};
    cr_assert_eq(kv_txn_cond(s, &c0, 1, NULL, 0, NULL, 0, &r), KV_OK);
    cr_assert_eq(r.succeeded, 1);
    kv_txn_result_free(&r);
    kv_close(s);
}

Test(expire, conditional_transactions_write_expiry_times)
{
    kv_store *s = open_frozen();
    kv_op then_ops[2] = {{KV_OP_SET, "a", 1, "1", 1, T0 + 10}, {KV_OP_SET, "b", 1, "2", 1, 0}};
    kv_txn_result r;
    cr_assert_eq(kv_txn_cond(s, NULL, 0, then_ops, 2, NULL, 0, &r), KV_OK);
    kv_txn_result_free(&r);
    uint64_t at;
    kv_ttl(s, "a", 1, &at);
    cr_assert_eq(at, T0 + 10);
    kv_ttl(s, "b", 1, &at);
    cr_assert_eq(at, 0);
    /* a GET in the same list sees the set; after the boundary, gone */
    kv_op get = {KV_OP_GET, "a", 1, NULL, 0, 0};
    kv__clock_set(s, T0 + 10);
    cr_assert_eq(kv_txn_cond(s, NULL, 0, &get, 1, NULL, 0, &r), KV_OK);
    cr_assert_eq(r.results[0].status, KV_NOT_FOUND);
    kv_txn_result_free(&r);
    kv_close(s);
}

Test(expire, optimistic_transactions_see_expiry_as_a_delete_at_the_expiry_time)
{
    kv_store *s = open_frozen();
    cr_assert_eq(kv_set_ex(s, "a", 1, "1", 1, T0 + 10, NULL), KV_OK);
    kvt_set(s, "b", "2");
    kv_value v;

    /* a read after a read key expired: doomed */
    kv_txn *t;
    cr_assert_eq(kv_txn_begin(s, &t), KV_OK);
    cr_assert_eq(kv_txn_get(t, "a", 1, &v), KV_OK);
    kv_value_free(&v);
    kv__clock_set(s, T0 + 10);
    cr_assert_eq(kv_txn_get(t, "b", 1, &v), KV_CONFLICT);
    cr_assert_eq(kv_txn_commit(t, NULL), KV_CONFLICT);

    /* a key read live that expires before commit: conflict */
    kv__clock_set(s, T0);
    cr_assert_eq(kv_set_ex(s, "a", 1, "1", 1, T0 + 10, NULL), KV_OK);
    cr_assert_eq(kv_txn_begin(s, &t), KV_OK);
    cr_assert_eq(kv_txn_get(t, "a", 1, &v), KV_OK);
    kv_value_free(&v);
    cr_assert_eq(kv_txn_set(t, "c", 1, "3", 1), KV_OK);
    kv__clock_set(s, T0 + 10);
    cr_assert_eq(kv_txn_commit(t, NULL), KV_CONFLICT);
    kvt_expect_absent(s, "c");

    /* kv_txn_set_ex writes an expiry; the transaction's own read of an
     * expired write is absent */
    cr_assert_eq(kv_txn_begin(s, &t), KV_OK);
    cr_assert_eq(kv_txn_set_ex(t, "d", 1, "4", 1, T0 + 20), KV_OK);
    cr_assert_eq(kv_txn_set_ex(t, "e", 1, "5", 1, T0 + 5), KV_OK);
    cr_assert_eq(kv_txn_get(t, "d", 1, &v), KV_OK);
    kv_value_free(&v);
    cr_assert_eq(kv_txn_get(t, "e", 1, &v), KV_NOT_FOUND);
    cr_assert_eq(kv_txn_commit(t, NULL), KV_OK);
    uint64_t at;
    cr_assert_eq(kv_ttl(s, "d", 1, &at), KV_OK);
    cr_assert_eq(at, T0 + 20);
    kvt_expect_absent(s, "e");
    kv_close(s);
}

typedef struct hook_log {
    size_t records, deletes, sets_with_expiry;
    uint64_t last_expire;
} hook_log;

static void hook(void *ctx, const kv__record *r)
{
    hook_log *h = ctx;
    h->records++;
    for (size_t i = 0; i < r->nchanges; i++) {
        h->deletes += r->changes[i].deleted;
        if (r->changes[i].expire_at) {
            h->sets_with_expiry++;
            h->last_expire = r->changes[i].expire_at;
        }
    }
}

Test(expire, a_writer_that_meets_an_expired_key_removes_it_with_a_logged_delete)
{
    kv_store *s = open_frozen();
    hook_log h = {0};
    kv__set_record_hook(s, hook, &h);
    cr_assert_eq(kv_set_ex(s, "k", 1, "v", 1, T0 + 1, NULL), KV_OK);
    cr_assert_eq(h.sets_with_expiry, 1);
    cr_assert_eq(h.last_expire, T0 + 1);
    kv_metrics m = kvt_metrics(s);
    cr_assert_eq(m.keys, 1);
    cr_assert_eq(m.keys_with_ttl, 1);
    kv__clock_set(s, T0 + 1);
    /* a read does not remove it (readers never write) */
    kvt_expect_absent(s, "k");
    cr_assert_eq(kvt_metrics(s).keys, 1);
    uint64_t rev = kv_revision(s);
    cr_assert_eq(kv_delete(s, "k", 1, NULL), KV_NOT_FOUND);
    cr_assert_eq(kv_revision(s), rev + 1, "the removal is a change with a revision");
    cr_assert_eq(h.deletes, 1);
    m = kvt_metrics(s);
    cr_assert_eq(m.keys, 0);
    cr_assert_eq(m.keys_with_ttl, 0);
    cr_assert_eq(m.expired_keys, 1);
    cr_assert_eq(m.deletes, 0, "not a delete the caller made");
    /* a set over an expired key replaces it and counts it expired */
    cr_assert_eq(kv_set_ex(s, "k", 1, "v", 1, T0 + 2, NULL), KV_OK);
    kv__clock_set(s, T0 + 2);
    kvt_set(s, "k", "w");
    m = kvt_metrics(s);
    cr_assert_eq(m.keys, 1);
    cr_assert_eq(m.expired_keys, 2);
    cr_assert_eq(m.keys_with_ttl, 0);
    kv__set_record_hook(s, NULL, NULL);
    kv_close(s);
}

Test(expire, the_active_expiry_removes_expired_keys_and_only_those)
{
    kv_store *s = open_frozen();
    char k[32];
    for (int i = 0; i < 1000; i++) {
        int n = snprintf(k, sizeof k, "key%d", i);
        cr_assert_eq(kv_set_ex(s, k, (size_t)n, "v", 1, i % 2 ? T0 + 10 : 0, NULL), KV_OK);
    }
    cr_assert_eq(kv__expire_step(s, 1u << 20, 0), 0);
    kv__clock_set(s, T0 + 10);
    cr_assert_eq(kv__expire_step(s, 1u << 20, 0), 500);
    kv_metrics m = kvt_metrics(s);
    cr_assert_eq(m.keys, 500);
    cr_assert_eq(m.expired_keys, 500);
    cr_assert_eq(m.keys_with_ttl, 0);
    cr_assert_eq(scan_count(s), 500);
    kv_close(s);
}

Test(expire, the_expiry_thread_reclaims_on_its_own)
{
    kv_store *s = kvt_open(NULL);
    char k[32];
    uint64_t now = kv_clock_ms(s);
    for (int i = 0; i < 2000; i++) {
        int n = snprintf(k, sizeof k, "key%d", i);
        cr_assert_eq(kv_set_ex(s, k, (size_t)n, "v", 1, now + 20, NULL), KV_OK);
    }
    /* about one pass a second: wait up to 5 s */
    for (int i = 0; i < 500 && kvt_metrics(s).keys; i++) {
        struct timespec ts = {0, 10 * 1000 * 1000};
        nanosleep(&ts, NULL);
    }
    kv_metrics m = kvt_metrics(s);
    cr_assert_eq(m.keys, 0);
    cr_assert_eq(m.expired_keys, 2000);
    cr_assert_geq(kv_clock_ms(s), now + 20);
    kv_close(s);
}

static void set_at(kv_store *s, const char *k, uint64_t at)
{
    cr_assert_eq(kv_set_ex(s, k, strlen(k), "v", 1, at, NULL), KV_OK);
}

Test(expire, the_sweep_knows_when_the_next_key_is_due)
{
    kv_store *s = open_frozen();
    char k[32];
    for (int i = 0; i < 100; i++) {
        int n = snprintf(k, sizeof k, "plain%d", i);
        cr_assert_eq(kv_set(s, k, (size_t)n, "v", 1, NULL), KV_OK);
    }
    set_at(s, "hour", T0 + 3600000);
    set_at(s, "two-hours", T0 + 7200000);
    /* not known before a whole pass of the index */
    cr_assert_eq(kv__expiry_due(s), 0);
    cr_assert_eq(kv__expire_step(s, 1u << 20, 0), 0); /* a whole pass */
    cr_assert_eq(kv__expiry_due(s), T0 + 3600000);
    /* a sooner key lowers it at once */
    set_at(s, "minute", T0 + 60000);
    cr_assert_eq(kv__expiry_due(s), T0 + 60000);
    /* once it is gone, a pass raises it again: the pass that takes the
     * minute's note still counts it, the next one no longer does */
    cr_assert_eq(kv_delete(s, "minute", 6, NULL), KV_OK);
    cr_assert_eq(kv__expire_step(s, 1u << 20, 0), 0);
    cr_assert_eq(kv__expire_step(s, 1u << 20, 0), 0);
    cr_assert_eq(kv__expiry_due(s), T0 + 3600000);
    /* a key without expiry replacing one with it */
    cr_assert_eq(kv_set(s, "hour", 4, "v", 1, NULL), KV_OK);
    cr_assert_eq(kv__expire_step(s, 1u << 20, 0), 0);
    cr_assert_eq(kv__expire_step(s, 1u << 20, 0), 0);
    cr_assert_eq(kv__expiry_due(s), T0 + 7200000);
    cr_assert_eq(kv_delete(s, "two-hours", 9, NULL), KV_OK);
    cr_assert_eq(kv__expire_step(s, 1u << 20, 0), 0);
    cr_assert_eq(kv__expire_step(s, 1u << 20, 0), 0);
    cr_assert_eq(kv__expiry_due(s), UINT64_MAX);
    /* what is due is removed by the pass that finds it */
    set_at(s, "soon", T0 + 10);
    kv__clock_set(s, T0 + 10);
    cr_assert_eq(kv__expiry_due(s), T0 + 10);
    cr_assert_eq(kv__expire_step(s, 1u << 20, 0), 1);
    cr_assert_eq(kvt_metrics(s).keys, 101); /* the plain keys and "hour" */
    kv_close(s);
}

Test(expire, an_idle_expiry_thread_sleeps_and_still_reclaims_a_key_set_meanwhile)
{
    kv_store *s = kvt_open(NULL);
    char k[32];
    uint64_t now = kv_clock_ms(s);
    for (int i = 0; i < 100; i++) {
        int n = snprintf(k, sizeof k, "key%d", i);
        cr_assert_eq(kv_set_ex(s, k, (size_t)n, "v", 1, now + 3600000, NULL), KV_OK);
    }
    /* after a pass found nothing due for an hour the thread sleeps (a
     * pass of this small index takes about a second: wait up to 10 s) */
    for (int i = 0; i < 1000 && !kv__expiry_sleeping(s); i++) {
        struct timespec ts = {0, 10 * 1000 * 1000};
        nanosleep(&ts, NULL);
    }
    cr_assert(kv__expiry_sleeping(s));
    cr_assert_eq(kv__expiry_due(s), now + 3600000);
    now = kv_clock_ms(s);
    cr_assert_eq(kv_set_ex(s, "soon", 4, "v", 1, now + 20, NULL), KV_OK);
    for (int i = 0; i < 1000 && kvt_metrics(s).expired_keys == 0; i++) {
        struct timespec ts = {0, 10 * 1000 * 1000};
        nanosleep(&ts, NULL);
    }
    kv_metrics m = kvt_metrics(s);
    cr_assert_eq(m.expired_keys, 1);
    cr_assert_eq(m.keys, 100);
    kv_close(s);
}

Test(expire, a_past_expiry_time_is_past_while_the_expiry_thread_sleeps)
{
    kv_store *s = kvt_open(NULL);
    uint64_t now = kv_clock_ms(s);
    cr_assert_eq(kv_set_ex(s, "later", 5, "v", 1, now + 3600000, NULL), KV_OK);
    for (int i = 0; i < 1000 && !kv__expiry_sleeping(s); i++) {
        struct timespec ts = {0, 10 * 1000 * 1000};
        nanosleep(&ts, NULL);
    }
    cr_assert(kv__expiry_sleeping(s));
    /* the store's clock may lag the wall clock now by up to 100 ms; a
     * write with an expiry time reads the wall clock */
    struct timespec ts = {0, 50 * 1000 * 1000};
    nanosleep(&ts, NULL);
    clock_gettime(CLOCK_REALTIME, &ts);
    uint64_t wall = (uint64_t)ts.tv_sec * 1000u + (uint64_t)ts.tv_nsec / 1000000u;
    cr_assert_eq(kv_set_ex(s, "past", 4, "v", 1, wall - 5, NULL), KV_OK);
    kv_value v;
    cr_assert_eq(kv_get(s, "past", 4, &v), KV_NOT_FOUND);
    /* and the thread, woken by the write's note, removes it */
    for (int i = 0; i < 1000 && kvt_metrics(s).expired_keys == 0; i++) {
        ts = (struct timespec){0, 10 * 1000 * 1000};
        nanosleep(&ts, NULL);
    }
    cr_assert_eq(kvt_metrics(s).expired_keys, 1);
    cr_assert_eq(kvt_metrics(s).keys, 1);
    kv_close(s);
}

Test(expire, items_without_expiry_cost_nothing_more)
{
    kv_store *s = open_frozen();
    kvt_set(s, "0123456789ab", "v");
    uint64_t plain = kvt_metrics(s).memory_bytes;
    cr_assert_eq(kv_set_ex(s, "0123456789ab", 12, "v", 1, T0 + 100, NULL), KV_OK);
    uint64_t ttl = kvt_metrics(s).memory_bytes;
    cr_assert_leq(ttl - plain, 8);
    kv_close(s);
}

Test(expire, large_items_and_values_between_512k_and_1m_keep_their_expiry)
{
    kv_store *s = open_frozen();
    size_t n = 700 * 1024;
    char *big = calloc(1, n);
    big[n - 1] = 'z';
    cr_assert_eq(kv_set_ex(s, "big", 3, big, n, T0 + 3, NULL), KV_OK);
    cr_assert_eq(kv_set(s, "big2", 4, big, n, NULL), KV_OK);
    kv_value v;
    cr_assert_eq(kv_get(s, "big", 3, &v), KV_OK);
    cr_assert_eq(v.len, n);
    cr_assert_eq(((char *)v.data)[n - 1], 'z');
    kv_value_free(&v);
    cr_assert_eq(kv_get(s, "big2", 4, &v), KV_OK);
    cr_assert_eq(v.len, n);
    kv_value_free(&v);
    uint64_t at;
    kv_ttl(s, "big", 3, &at);
    cr_assert_eq(at, T0 + 3);
    kv__clock_set(s, T0 + 3);
    kvt_expect_absent(s, "big");
    free(big);
    kv_close(s);
}

/* ---- replicas: a pinned clock, manual expiry (kv.h, "Replicas") ---------- */

/* expect_present's reads only (its compare, a change, would remove an
 * expired key). */
static void expect_absent_to_reads(kv_store *s, const char *k)
{
    size_t kl = strlen(k);
    kv_value v = {0};
    cr_assert_eq(kv_get(s, k, kl, &v), KV_NOT_FOUND);
    cr_assert_eq(kv_exists(s, k, kl, NULL), KV_NOT_FOUND);
    uint64_t at;
    cr_assert_eq(kv_ttl(s, k, kl, &at), KV_NOT_FOUND);
    kv_key key = {k, kl};
    kv_value mv;
    cr_assert_eq(kv_mget(s, &key, 1, &mv), KV_OK);
    cr_assert_null(mv.data);
    kv_values_free(&mv, 1);
    kv_txn *t;
    cr_assert_eq(kv_txn_begin(s, &t), KV_OK);
    cr_assert_eq(kv_txn_get(t, k, kl, &v), KV_NOT_FOUND);
    kv_txn_abort(t);
}

typedef struct seen_by {
    kv_store *s;
    uint64_t clock;
    int get;
} seen_by;

static void *look_from_another_thread(void *arg)
{
    seen_by *o = arg;
    o->clock = kv_clock_ms(o->s);
    kv_value v = {0};
    o->get = kv_get(o->s, "k", 1, &v);
    kv_value_free(&v);
    return NULL;
}

Test(expire, a_pinned_clock_is_what_this_thread_sees_and_no_other_thread)
{
    kv_store *s = open_frozen();
    uint64_t v1;
    cr_assert_eq(kv_set_ex(s, "k", 1, "v", 1, T0 + 10, &v1), KV_OK);
    kv_clock_pin(s, T0 + 10);
    cr_assert_eq(kv_clock_ms(s), T0 + 10);
    expect_absent_to_reads(s, "k");
    seen_by o = {.s = s};
    pthread_t th;
    cr_assert_eq(pthread_create(&th, NULL, look_from_another_thread, &o), 0);
    pthread_join(th, NULL);
    cr_assert_eq(o.clock, T0);
    cr_assert_eq(o.get, KV_OK);
    /* reading changed nothing: unpinned, the key is there */
    kv_clock_pin(s, 0);
    cr_assert_eq(kv_clock_ms(s), T0);
    expect_present(s, "k", true);
    kv_close(s);
}

/* A change judges expiry by the pinned reading, in both directions: a key
 * the store's clock calls expired is present to it, and one the store's
 * clock calls present is removed by it. */
Test(expire, a_change_judges_expiry_by_the_pinned_clock)
{
    kv_store *s = open_frozen();
    uint64_t v1, v2;
    cr_assert_eq(kv_set_ex(s, "k", 1, "v", 1, T0 + 10, &v1), KV_OK);
    kv__clock_set(s, T0 + 50); /* expired by the store's clock */
    kv_clock_pin(s, T0 + 5);   /* not by the change's */
    cr_assert_eq(kv_set_if(s, "k", 1, "w", 1, v1, &v2), KV_OK);
    cr_assert_gt(v2, v1);
    cr_assert_eq(kvt_metrics(s).expired_keys, 0);
    kv_clock_pin(s, 0);

    cr_assert_eq(kv_set_ex(s, "j", 1, "v", 1, T0 + 100, &v1), KV_OK);
    kv_clock_pin(s, T0 + 100); /* j expired for this change only */
    cr_assert_eq(kv_delete(s, "j", 1, &v2), KV_NOT_FOUND);
    kv_clock_pin(s, 0);
    kv_metrics m = kvt_metrics(s);
    cr_assert_eq(m.expired_keys, 1, "the delete removed the expired j");
    cr_assert_gt(m.revision, v1);
    expect_present(s, "j", false); /* gone, though the store reads T0 + 50 */
    kv_close(s);
}

static kv_store *open_manual(void)
{
    kv_config c;
    kv_config_init(&c, sizeof c);
    c.manual_expiry = 1;
    kv_store *s = NULL;
    cr_assert_eq(kv_open_config(&c, &s), KV_OK);
    return s;
}

typedef struct found_keys {
    char keys[8][16];
    uint64_t at[8];
    int n;
} found_keys;

static int collect_expired(void *ctx, const void *key, size_t klen, uint64_t at)
{
    found_keys *f = ctx;
    cr_assert_lt(klen, sizeof f->keys[0]);
    cr_assert_lt(f->n, 8);
    memcpy(f->keys[f->n], key, klen);
    f->keys[f->n][klen] = 0;
    f->at[f->n++] = at;
    return 0;
}

static int found(const found_keys *f, const char *k)
{
    for (int i = 0; i < f->n; i++)
        if (strcmp(f->keys[i], k) == 0)
            return 1;
    return 0;
}

Test(expire, a_manual_expiry_store_removes_only_what_its_program_asks)
{
    kv_config bad;
    kv_config_init(&bad, sizeof bad);
    bad.manual_expiry = 2;
    kv_store *s = NULL;
    cr_assert_eq(kv_open_config(&bad, &s), KV_INVALID_ARGUMENT);

    s = open_manual();
    kv__clock_set(s, T0);
    cr_assert_eq(kv_set_ex(s, "a", 1, "1", 1, T0 + 5, NULL), KV_OK);
    cr_assert_eq(kv_set_ex(s, "b", 1, "2", 1, T0 + 5, NULL), KV_OK);
    cr_assert_eq(kv_set_ex(s, "c", 1, "3", 1, T0 + 100, NULL), KV_OK);
    kvt_set(s, "d", "4");
    kv__clock_set(s, T0 + 50);
    /* no sweep: neither the thread's steps nor one run here remove a or b */
    cr_assert_eq(kv__expire_step(s, 1u << 20, 0), 0);
    struct timespec ts = {0, 100 * 1000 * 1000}; /* ~100 of the thread's ticks */
    nanosleep(&ts, NULL);
    kv_metrics m = kvt_metrics(s);
    cr_assert_eq(m.keys, 4);
    cr_assert_eq(m.expired_keys, 0);
    expect_absent_to_reads(s, "a"); /* invisible all the same */

    found_keys f = {0};
    size_t nfound = 0;
    cr_assert_eq(kv_expired_find(s, 0, 1024, collect_expired, &f, NULL), KV_INVALID_ARGUMENT);
    cr_assert_eq(kv_expired_find(s, T0 + 50, 1024, NULL, NULL, NULL), KV_INVALID_ARGUMENT);
    cr_assert_eq(kv_expired_find(s, T0 + 50, m.table_slots, collect_expired, &f, &nfound),
                 KV_OK);
    cr_assert_eq(nfound, 2);
    cr_assert(found(&f, "a") && found(&f, "b"));
    cr_assert_eq(f.at[0], T0 + 5);

    /* b is set again (no expiry) between finding and removing: it stays */
    kvt_set(s, "b", "again");
    kv_key keys[] = {{"a", 1}, {"b", 1}, {"c", 1}, {"zz", 2}};
    size_t removed = 99;
    uint64_t ver = 0;
    cr_assert_eq(kv_expire_remove(s, keys, 0, T0 + 50, &removed, &ver), KV_INVALID_ARGUMENT);
    cr_assert_eq(kv_expire_remove(s, keys, 4, 0, &removed, &ver), KV_INVALID_ARGUMENT);
    cr_assert_eq(removed, 99);
    uint64_t before = kvt_metrics(s).revision;
    cr_assert_eq(kv_expire_remove(s, keys, 4, T0 + 50, &removed, &ver), KV_OK);
    cr_assert_eq(removed, 1);
    cr_assert_eq(ver, before + 1, "one change, one revision");
    m = kvt_metrics(s);
    cr_assert_eq(m.keys, 3);
    cr_assert_eq(m.expired_keys, 2, "a, and b's old item replaced by the set");
    kvt_expect(s, "b", "again", 0);
    /* nothing left to remove: no change, *version left alone */
    ver = 0;
    cr_assert_eq(kv_expire_remove(s, keys, 4, T0 + 50, &removed, &ver), KV_OK);
    cr_assert_eq(removed, 0);
    cr_assert_eq(ver, 0);
    cr_assert_eq(kvt_metrics(s).revision, before + 1);
    kv_close(s);
}

/* The removal is judged at the reading given, not the store's clock: the
 * same call removes the same keys on every copy whatever its clock says. */
Test(expire, expire_remove_judges_at_the_given_time_not_the_store_clock)
{
    kv_store *s = open_manual();
    kv__clock_set(s, T0);
    cr_assert_eq(kv_set_ex(s, "a", 1, "1", 1, T0 + 10, NULL), KV_OK);
    kv_key a = {"a", 1};
    size_t removed = 99;
    cr_assert_eq(kv_expire_remove(s, &a, 1, T0 + 9, &removed, NULL), KV_OK);
    cr_assert_eq(removed, 0);
    kv__clock_set(s, T0 + 500); /* the store calls it expired; T0 + 9 does not */
    cr_assert_eq(kv_expire_remove(s, &a, 1, T0 + 9, &removed, NULL), KV_OK);
    cr_assert_eq(removed, 0);
    kv__clock_set(s, T0); /* the store calls it present; T0 + 10 does not */
    cr_assert_eq(kv_expire_remove(s, &a, 1, T0 + 10, &removed, NULL), KV_OK);
    cr_assert_eq(removed, 1);
    cr_assert_eq(kvt_metrics(s).keys, 0);
    /* many keys at once (more than the on-stack batch) */
    char k[16];
    for (int i = 0; i < 40; i++) {
        int n = snprintf(k, sizeof k, "m%d", i);
        cr_assert_eq(kv_set_ex(s, k, (size_t)n, "v", 1, i < 30 ? T0 + 1 : T0 + 1000, NULL),
                     KV_OK);
    }
    char store[40][16];
    kv_key keys[40];
    for (int i = 0; i < 40; i++) {
        int n = snprintf(store[i], sizeof store[i], "m%d", i);
        keys[i] = (kv_key){store[i], (size_t)n};
    }
    cr_assert_eq(kv_expire_remove(s, keys, 40, T0 + 2, &removed, NULL), KV_OK);
    cr_assert_eq(removed, 30);
    cr_assert_eq(kvt_metrics(s).keys, 10);
    kv_close(s);
}
