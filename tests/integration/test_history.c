/*
 * test_history.c - the store's history through kvd's own protocol
 * (version 5) and libkvclient: reads at a revision (GET_AT, MGET_AT,
 * SCAN_AT), a key's changes (HISTORY), ROLLBACK of keys and of a prefix
 * (conditional too, and rolled back itself), COMPACT; the errors with
 * their messages (compacted: the oldest revision; future: the latest;
 * history off; revision 0), the ops refused before HELLO 5, the history
 * metrics, and kvd's history flags. On a cluster: test_cluster_history.c.
 *
 * kvd runs with --history on (its default): revisions are 1, 2, 3, ...
 * in a fresh server, so each write's revision is asserted as returned.
 */
#include <criterion/criterion.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "harness.h"

TestSuite(history, .init = harness_setup, .fini = harness_teardown, .timeout = 120);

static uint64_t set(kv_client *c, const char *k, const char *v)
{
    uint64_t rev = 0;
    cr_assert_eq(kv_client_set(c, k, strlen(k), v, strlen(v), &rev), KV_OK, "set %s", k);
    return rev;
}

static uint64_t del(kv_client *c, const char *k)
{
    uint64_t rev = 0;
    cr_assert_eq(kv_client_del(c, k, strlen(k), &rev), KV_OK, "del %s", k);
    return rev;
}

/* key's value at rev: KV_OK with the value in buf, or the status. */
static int get_at(kv_client *c, const char *k, uint64_t rev, char *buf, size_t cap,
                  uint64_t *version)
{
    kv_value v = {0};
    int rc = kv_client_get_at(c, k, strlen(k), rev, &v);
    if (rc == KV_OK) {
        cr_assert_lt(v.len, cap);
        memcpy(buf, v.data, v.len);
        buf[v.len] = 0;
        if (version)
            *version = v.version;
    }
    kv_client_value_free(&v);
    return rc;
}

static void expect_value(kv_client *c, const char *k, uint64_t rev, const char *want)
{
    char buf[64];
    int rc = get_at(c, k, rev, buf, sizeof buf, NULL);
    if (want == NULL) {
        cr_expect_eq(rc, KV_NOT_FOUND, "%s at %llu: %d", k, (unsigned long long)rev, rc);
        return;
    }
    cr_assert_eq(rc, KV_OK, "%s at %llu: %s", k, (unsigned long long)rev,
                 kv_client_last_error(c));
    cr_expect_str_eq(buf, want, "%s at %llu", k, (unsigned long long)rev);
}

static void expect_latest(kv_client *c, const char *k, const char *want)
{
    kv_value v = {0};
    int rc = kv_client_get(c, k, strlen(k), &v);
    if (want == NULL) {
        cr_expect_eq(rc, KV_NOT_FOUND, "%s", k);
    } else {
        cr_assert_eq(rc, KV_OK, "%s", k);
        cr_expect(v.len == strlen(want) && memcmp(v.data, want, v.len) == 0, "%s", k);
    }
    kv_client_value_free(&v);
}

Test(history, reads_at_a_revision)
{
    kvd_start(NULL);
    kv_client *c = test_client(NULL);
    cr_assert_geq(kv_client_protocol_version(c), KV_PROTO_HISTORY_VERSION);
    uint64_t r1 = set(c, "a", "1");
    uint64_t r2 = set(c, "a", "2");
    uint64_t r3 = set(c, "b", "x");
    uint64_t r4 = del(c, "a");
    cr_assert(r1 < r2 && r2 < r3 && r3 < r4);

    char buf[64];
    uint64_t ver = 0;
    cr_assert_eq(get_at(c, "a", r1, buf, sizeof buf, &ver), KV_OK);
    cr_expect_str_eq(buf, "1");
    cr_expect_eq(ver, r1, "the revision that wrote the value");
    expect_value(c, "a", r3, "2");
    expect_value(c, "a", r4, NULL);
    expect_value(c, "b", r2, NULL);

    /* MGET_AT: all keys as at one revision */
    kv_key keys[2] = {{"a", 1}, {"b", 1}};
    kv_value out[2];
    cr_assert_eq(kv_client_mget_at(c, keys, 2, r3, out), KV_OK);
    cr_assert_not_null(out[0].data);
    cr_expect(out[0].len == 1 && memcmp(out[0].data, "2", 1) == 0);
    cr_expect_eq(out[0].version, r2);
    cr_assert_not_null(out[1].data);
    cr_expect(out[1].len == 1 && memcmp(out[1].data, "x", 1) == 0);
    kv_client_values_free(out, 2);
    cr_assert_eq(kv_client_mget_at(c, keys, 2, r1, out), KV_OK);
    cr_expect_not_null(out[0].data);
    cr_expect_null(out[1].data, "b did not exist at r1");
    kv_client_values_free(out, 2);
    kv_client_close(c);
    kvd_stop();
}

typedef struct listing {
    int n;
    char keys[8][8];
    char vals[8][8];
} listing;

static int list_cb(void *ctx, const void *k, size_t klen, const void *v, size_t vlen,
                   uint64_t version)
{
    (void)version;
    listing *l = ctx;
    cr_assert_lt(l->n, 8);
    cr_assert_lt(klen, 8);
    memcpy(l->keys[l->n], k, klen);
    l->keys[l->n][klen] = 0;
    if (v) {
        cr_assert_lt(vlen, 8);
        memcpy(l->vals[l->n], v, vlen);
        l->vals[l->n][vlen] = 0;
    }
    l->n++;
    return 0;
}

Test(history, scan_at_a_revision)
{
    kvd_start(NULL);
    kv_client *c = test_client(NULL);
    uint64_t r1 = set(c, "p:1", "one");
    set(c, "p:2", "two");
    uint64_t r3 = del(c, "p:1");
    set(c, "p:3", "three");
    listing l = {0};
    uint64_t next = 1;
    cr_assert_eq(kv_client_scan_at(c, "p:", 2, r1 + 1, 0, 0, 0, list_cb, &l, &next), KV_OK);
    cr_expect_eq(next, 0);
    cr_assert_eq(l.n, 2, "p:1 and p:2 existed then (p:3 not yet)");
    for (int i = 0; i < 2; i++)
        cr_expect(strcmp(l.keys[i], "p:1") == 0 ? strcmp(l.vals[i], "one") == 0
                                                : strcmp(l.vals[i], "two") == 0,
                  "%s=%s", l.keys[i], l.vals[i]);
    memset(&l, 0, sizeof l);
    cr_assert_eq(kv_client_scan_at(c, "p:", 2, r3, 0, 0, KV_CLIENT_SCAN_KEYS_ONLY, list_cb, &l,
                                   &next), KV_OK);
    cr_assert_eq(l.n, 1);
    cr_expect_str_eq(l.keys[0], "p:2");
    kv_client_close(c);
    kvd_stop();
}

Test(history, a_keys_changes_newest_first)
{
    kvd_start(NULL);
    kv_client *c = test_client(NULL);
    uint64_t r1 = set(c, "k", "v1");
    uint64_t r2 = set(c, "k", "v2");
    uint64_t r3 = del(c, "k");
    uint64_t r4 = set(c, "k", "v3");
    kv_event *ev = NULL;
    size_t n = 0;
    uint64_t compact = 99;
    cr_assert_eq(kv_client_history(c, "k", 1, 0, 0, 0, &ev, &n, &compact), KV_OK);
    cr_expect_eq(compact, 0);
    cr_assert_eq(n, 4);
    cr_expect_eq(ev[0].revision, r4);
    cr_expect_eq(ev[0].create_revision, r4, "created again after the delete");
    cr_expect_eq(ev[0].version, 1);
    cr_expect(ev[0].vlen == 2 && memcmp(ev[0].value, "v3", 2) == 0);
    cr_expect_eq(ev[1].revision, r3);
    cr_expect(ev[1].deleted);
    cr_expect_null(ev[1].value);
    cr_expect_eq(ev[2].revision, r2);
    cr_expect_eq(ev[2].create_revision, r1);
    cr_expect_eq(ev[2].version, 2);
    cr_expect_eq(ev[3].revision, r1);
    kv_client_events_free(ev, n);

    /* a range and a limit */
    cr_assert_eq(kv_client_history(c, "k", 1, r2, r3, 0, &ev, &n, NULL), KV_OK);
    cr_assert_eq(n, 2);
    cr_expect_eq(ev[0].revision, r3);
    cr_expect_eq(ev[1].revision, r2);
    kv_client_events_free(ev, n);
    cr_assert_eq(kv_client_history(c, "k", 1, 0, 0, 1, &ev, &n, NULL), KV_OK);
    cr_assert_eq(n, 1);
    cr_expect_eq(ev[0].revision, r4);
    kv_client_events_free(ev, n);
    /* a key without changes */
    cr_assert_eq(kv_client_history(c, "none", 4, 0, 0, 0, &ev, &n, NULL), KV_OK);
    cr_expect_eq(n, 0);
    kv_client_events_free(ev, n);
    /* max_rev in the future */
    cr_expect_eq(kv_client_history(c, "k", 1, 0, r4 + 100, 0, &ev, &n, NULL),
                 KV_FUTURE_REVISION);
    cr_expect_eq(kv_client_history(c, "k", 1, r4, r2, 0, &ev, &n, NULL), KV_INVALID_ARGUMENT,
                 "min above max");
    kv_client_close(c);
    kvd_stop();
}

Test(history, rollback_keys_as_one_change)
{
    kvd_start(NULL);
    kv_client *c = test_client(NULL);
    kv_pair p1[2] = {{"x", 1, "x1", 2}, {"y", 1, "y1", 2}};
    uint64_t r1 = 0, r2 = 0, rb = 0, rb2 = 0;
    cr_assert_eq(kv_client_mset(c, p1, 2, &r1), KV_OK);
    kv_pair p2[2] = {{"x", 1, "x2", 2}, {"y", 1, "y2", 2}};
    cr_assert_eq(kv_client_mset(c, p2, 2, &r2), KV_OK);
    set(c, "z", "new");
    kv_key keys[3] = {{"x", 1}, {"y", 1}, {"z", 1}};
    size_t changed = 0;
    cr_assert_eq(kv_client_rollback(c, keys, 3, r1, 0, &rb, &changed), KV_OK,
                 "%s", kv_client_last_error(c));
    cr_expect_eq(changed, 3, "x and y restored, z (absent at r1) deleted");
    cr_expect_gt(rb, r2);
    expect_latest(c, "x", "x1");
    expect_latest(c, "y", "y1");
    expect_latest(c, "z", NULL);
    /* one change: every key has the rollback's revision */
    kv_event *ev = NULL;
    size_t n = 0;
    cr_assert_eq(kv_client_history(c, "y", 1, 0, 0, 1, &ev, &n, NULL), KV_OK);
    cr_assert_eq(n, 1);
    cr_expect_eq(ev[0].revision, rb);
    kv_client_events_free(ev, n);
    /* the rollback rolled back */
    cr_assert_eq(kv_client_rollback(c, keys, 3, rb - 1, 0, &rb2, &changed), KV_OK);
    cr_expect_eq(changed, 3);
    expect_latest(c, "x", "x2");
    expect_latest(c, "z", "new");
    /* nothing to change: version 0 */
    cr_assert_eq(kv_client_rollback(c, keys, 3, rb2, 0, &rb, &changed), KV_OK);
    cr_expect_eq(changed, 0);
    cr_expect_eq(rb, 0);
    /* conditional: x changes after the revision given, nothing happens */
    uint64_t seen = rb2;
    set(c, "x", "x3");
    cr_expect_eq(kv_client_rollback(c, keys, 3, r1, seen, &rb, &changed), KV_VERSION_MISMATCH);
    expect_latest(c, "x", "x3");
    expect_latest(c, "y", "y2");
    kv_client_close(c);
    kvd_stop();
}

Test(history, rollback_a_prefix)
{
    kvd_start(NULL);
    kv_client *c = test_client(NULL);
    set(c, "u:1", "a");
    uint64_t r = set(c, "u:2", "b");
    set(c, "other", "o1");
    del(c, "u:1");
    set(c, "u:2", "B");
    set(c, "u:3", "c");
    set(c, "other", "o2");
    uint64_t rb = 0;
    size_t changed = 0;
    cr_assert_eq(kv_client_rollback_prefix(c, "u:", 2, r, 0, &rb, &changed), KV_OK,
                 "%s", kv_client_last_error(c));
    cr_expect_eq(changed, 3);
    expect_latest(c, "u:1", "a");
    expect_latest(c, "u:2", "b");
    expect_latest(c, "u:3", NULL);
    expect_latest(c, "other", "o2"); /* outside the prefix */
    kv_client_close(c);
    kvd_stop();
}

Test(history, compaction_and_revision_errors)
{
    kvd_start(NULL);
    kv_client *c = test_client(NULL);
    uint64_t r1 = set(c, "k", "1");
    set(c, "k", "2");
    uint64_t r3 = set(c, "k", "3");
    char buf[64];
    cr_expect_eq(get_at(c, "k", r3 + 10, buf, sizeof buf, NULL), KV_FUTURE_REVISION);
    char want[96];
    snprintf(want, sizeof want, "latest is %llu", (unsigned long long)r3);
    cr_expect(strstr(kv_client_last_error(c), want), "%s", kv_client_last_error(c));
    cr_expect_eq(get_at(c, "k", 0, buf, sizeof buf, NULL), KV_INVALID_ARGUMENT);

    uint64_t now = 0;
    cr_assert_eq(kv_client_compact(c, r3, &now), KV_OK);
    cr_expect_eq(now, r3);
    cr_expect_eq(get_at(c, "k", r1, buf, sizeof buf, NULL), KV_COMPACTED);
    snprintf(want, sizeof want, "oldest is %llu", (unsigned long long)r3);
    cr_expect(strstr(kv_client_last_error(c), want), "%s", kv_client_last_error(c));
    expect_value(c, "k", r3, "3");
    kv_event *ev = NULL;
    size_t n = 0;
    cr_expect_eq(kv_client_history(c, "k", 1, r1, 0, 0, &ev, &n, NULL), KV_COMPACTED);
    kv_key key = {"k", 1};
    kv_value v;
    cr_expect_eq(kv_client_mget_at(c, &key, 1, r1, &v), KV_COMPACTED);
    cr_expect_eq(kv_client_scan_at(c, "", 0, r1, 0, 0, 0, NULL, NULL, NULL), KV_COMPACTED);
    cr_expect_eq(kv_client_rollback(c, &key, 1, r1, 0, NULL, NULL), KV_COMPACTED);
    expect_latest(c, "k", "3");
    /* compacting again at or below it, or into the future */
    cr_expect_eq(kv_client_compact(c, r3, NULL), KV_COMPACTED);
    cr_expect_eq(kv_client_compact(c, r3 + 100, NULL), KV_FUTURE_REVISION);

    kv_client_metrics m;
    cr_assert_eq(kv_client_metrics_get(c, &m), KV_OK);
    const kv_client_metric *cr = kv_client_metrics_find(&m, NULL, "compact_revision");
    cr_assert_not_null(cr);
    cr_expect_eq(cr->u, r3);
    cr_expect_not_null(kv_client_metrics_find(&m, NULL, "history_versions"));
    cr_expect_not_null(kv_client_metrics_find(&m, NULL, "history_bytes"));
    kv_client_metrics_free(&m);
    kv_client_close(c);
    kvd_stop();
}

Test(history, history_kept_and_counted)
{
    kvd_start("--history-versions", "3", NULL);
    kv_client *c = test_client(NULL);
    uint64_t first = set(c, "k", "0");
    for (int i = 1; i < 10; i++) {
        char v[8];
        snprintf(v, sizeof v, "%d", i);
        set(c, "k", v);
    }
    kv_event *ev = NULL;
    size_t n = 0;
    cr_assert_eq(kv_client_history(c, "k", 1, 0, 0, 0, &ev, &n, NULL), KV_OK);
    cr_expect_eq(n, 4, "the value and 3 earlier ones (--history-versions 3)");
    kv_client_events_free(ev, n);
    char buf[16];
    cr_expect_eq(get_at(c, "k", first, buf, sizeof buf, NULL), KV_COMPACTED);
    kv_client_metrics m;
    cr_assert_eq(kv_client_metrics_get(c, &m), KV_OK);
    const kv_client_metric *hv = kv_client_metrics_find(&m, NULL, "history_versions");
    cr_assert_not_null(hv);
    cr_expect_eq(hv->u, 3);
    cr_expect_gt(kv_client_metrics_find(&m, NULL, "history_bytes")->u, 0);
    kv_client_metrics_free(&m);
    kv_client_close(c);
    kvd_stop();
}

Test(history, history_off)
{
    kvd_start("--history", "off", NULL);
    kv_client *c = test_client(NULL);
    uint64_t r = set(c, "k", "v");
    char buf[16];
    cr_expect_eq(get_at(c, "k", r, buf, sizeof buf, NULL), KV_UNSUPPORTED);
    cr_expect(strstr(kv_client_last_error(c), "history is off"), "%s",
              kv_client_last_error(c));
    cr_expect(!kv_client_last_error_local(c), "the server refused it");
    kv_event *ev = NULL;
    size_t n = 0;
    cr_expect_eq(kv_client_history(c, "k", 1, 0, 0, 0, &ev, &n, NULL), KV_UNSUPPORTED);
    kv_key key = {"k", 1};
    cr_expect_eq(kv_client_rollback(c, &key, 1, r, 0, NULL, NULL), KV_UNSUPPORTED);
    cr_expect_eq(kv_client_compact(c, r, NULL), KV_UNSUPPORTED);
    expect_latest(c, "k", "v");
    kv_client_close(c);
    kvd_stop();
}

/* Before HELLO (version 1) or with HELLO 4 the history ops are refused
 * as an older server refuses them; the connection stays usable. */
Test(history, needs_protocol_version_5)
{
    kvd_start(NULL);
    int fd = raw_connect(g_kvd.port, 5000);
    cr_assert_geq(fd, 0);
    kv_proto_buf b = {0};
    kv_proto_request q = {.op = KV_PROTO_GET_AT, .id = 7, .key = {"k", 1}, .revision = 1};
    cr_assert_eq(kv_proto_request_encode(&b, &q), KV_OK);
    kv_proto_request h = {.op = KV_PROTO_HELLO, .id = 8, .min_version = 4, .max_version = 4};
    cr_assert_eq(kv_proto_request_encode(&b, &h), KV_OK);
    q.id = 9;
    cr_assert_eq(kv_proto_request_encode(&b, &q), KV_OK);
    kv_proto_request h5 = {.op = KV_PROTO_HELLO, .id = 10, .min_version = 5, .max_version = 5};
    cr_assert_eq(kv_proto_request_encode(&b, &h5), KV_OK);
    q.id = 11;
    cr_assert_eq(kv_proto_request_encode(&b, &q), KV_OK);
    cr_assert_eq(raw_send(fd, b.data, b.len), 0);
    uint64_t id;
    cr_expect_eq(raw_recv_status(fd, KV_PROTO_GET_AT, &id), KV_UNSUPPORTED);
    cr_expect_eq(id, 7);
    cr_expect_eq(raw_recv_status(fd, KV_PROTO_HELLO, &id), KV_OK);
    cr_expect_eq(raw_recv_status(fd, KV_PROTO_GET_AT, &id), KV_UNSUPPORTED);
    cr_expect_eq(id, 9);
    cr_expect_eq(raw_recv_status(fd, KV_PROTO_HELLO, &id), KV_OK);
    cr_expect_eq(raw_recv_status(fd, KV_PROTO_GET_AT, &id), KV_FUTURE_REVISION,
                 "version 5: understood (revision 1 is not reached in an empty store)");
    cr_expect_eq(id, 11);
    kv_proto_buf_free(&b);
    close(fd);
    kvd_stop();
}

Test(history, flags_checked)
{
    static char out[65536];
    const char *const bad[] = {"--history", "maybe", NULL};
    cr_expect_eq(kvd_run_to_end(bad, out, sizeof out), 2, "%s", out);
    cr_expect(strstr(out, "--history"), "%s", out);
    const char *const big[] = {"--history-versions", "5000000000", NULL};
    cr_expect_eq(kvd_run_to_end(big, out, sizeof out), 2, "%s", out);
    const char *const help[] = {"--help", NULL};
    cr_expect_eq(kvd_run_to_end(help, out, sizeof out), 0);
    cr_expect(strstr(out, "--history-versions") && strstr(out, "default 100"), "%s", out);
}
