/*
 * test_ops.c - every protocol operation through libkvclient against a
 * real kvd: HELLO (via connect), PING, AUTH, GET, MGET, SET, CAS, MSET,
 * DEL, TXN, SCAN, METRICS; plus IPv6 and Unix socket listeners.
 */
#include <criterion/criterion.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "harness.h"

TestSuite(ops, .init = harness_setup, .fini = harness_teardown, .timeout = 60);

Test(ops, hello_ping_get_set_cas_del)
{
    kvd_start(NULL);
    kv_client *c = test_client(NULL);
    cr_assert_eq(kv_client_protocol_version(c), 7, "kvd speaks 1..7, the client too");
    cr_assert_str_eq(kv_client_server_name(c), "kvd");
    cr_assert_eq(kv_client_ping(c), KV_OK);
    cr_assert_eq(kv_client_auth(c, "anything"), KV_OK, "no password: AUTH is OK");

    kv_value v;
    cr_assert_eq(kv_client_get(c, "k", 1, &v), KV_NOT_FOUND);
    uint64_t v1 = 0, v2 = 0;
    cr_assert_eq(kv_client_set(c, "k", 1, "hello", 5, &v1), KV_OK);
    cr_assert_gt(v1, 0);
    cr_assert_eq(kv_client_get(c, "k", 1, &v), KV_OK);
    cr_assert_eq(v.len, 5);
    cr_assert_eq(memcmp(v.data, "hello", 5), 0);
    cr_assert_eq(v.version, v1);
    kv_client_value_free(&v);

    /* binary key and empty value */
    const char bk[3] = {0, 'x', 0};
    cr_assert_eq(kv_client_set(c, bk, 3, "", 0, NULL), KV_OK);
    cr_assert_eq(kv_client_get(c, bk, 3, &v), KV_OK);
    cr_assert_eq(v.len, 0);
    kv_client_value_free(&v);

    /* compare-and-swap */
    cr_assert_eq(kv_client_set_if(c, "k", 1, "x", 1, v1 + 1000, NULL), KV_VERSION_MISMATCH);
    cr_assert_eq(kv_client_set_if(c, "k", 1, "x", 1, v1, &v2), KV_OK);
    cr_assert_gt(v2, v1);
    cr_assert_eq(kv_client_set_if(c, "new", 3, "n", 1, 0, NULL), KV_OK);
    cr_assert_eq(kv_client_set_if(c, "new", 3, "n", 1, 0, NULL), KV_VERSION_MISMATCH);

    /* delete one, then many: how many existed */
    cr_assert_eq(kv_client_del(c, "k", 1, NULL), KV_OK);
    cr_assert_eq(kv_client_del(c, "k", 1, NULL), KV_NOT_FOUND);
    kv_key keys[3] = {{"new", 3}, {bk, 3}, {"nope", 4}};
    size_t deleted = 99;
    uint64_t dv = 0;
    cr_assert_eq(kv_client_mdel(c, keys, 3, &deleted, &dv), KV_OK);
    cr_assert_eq(deleted, 2);
    cr_assert_gt(dv, v2);
    cr_assert_eq(kv_client_mdel(c, keys, 3, &deleted, NULL), KV_OK);
    cr_assert_eq(deleted, 0);

    /* errors that keep the connection */
    cr_assert_eq(kv_client_set(c, "", 0, "v", 1, NULL), KV_KEY_EMPTY);
    cr_assert_eq(kv_client_ping(c), KV_OK);
    kv_client_close(c);
    kvd_stop();
}

Test(ops, mget_mset)
{
    kvd_start(NULL);
    kv_client *c = test_client(NULL);
    kv_pair pairs[3] = {{"a", 1, "1", 1}, {"b", 1, "22", 2}, {"c", 1, "333", 3}};
    uint64_t ver = 0;
    cr_assert_eq(kv_client_mset(c, pairs, 3, &ver), KV_OK);
    kv_key keys[4] = {{"a", 1}, {"zz", 2}, {"b", 1}, {"c", 1}};
    kv_value out[4];
    cr_assert_eq(kv_client_mget(c, keys, 4, out), KV_OK);
    cr_assert_eq(out[0].len, 1);
    cr_assert_null(out[1].data);
    cr_assert_eq(out[2].len, 2);
    cr_assert_eq(memcmp(out[3].data, "333", 3), 0);
    for (int i = 0; i < 4; i++)
        if (i != 1)
            cr_assert_eq(out[i].version, ver, "one revision for the whole MSET");
    kv_client_values_free(out, 4);
    kv_client_close(c);
    kvd_stop();
}

Test(ops, txn)
{
    kvd_start(NULL);
    kv_client *c = test_client(NULL);
    uint64_t v1;
    cr_assert_eq(kv_client_set(c, "acct", 4, "100", 3, &v1), KV_OK);
    kv_compare cmp = {.kind = KV_CMP_VERSION_EQ, .key = "acct", .klen = 4, .version = v1};
    kv_op then_ops[2] = {{KV_OP_SET, "acct", 4, "50", 2, 0}, {KV_OP_GET, "acct", 4, NULL, 0, 0}};
    kv_op else_ops[1] = {{KV_OP_GET, "acct", 4, NULL, 0, 0}};
    kv_txn_result r;
    cr_assert_eq(kv_client_txn(c, &cmp, 1, then_ops, 2, else_ops, 1, &r), KV_OK);
    cr_assert_eq(r.succeeded, 1);
    cr_assert_gt(r.version, v1);
    cr_assert_eq(r.nresults, 2);
    cr_assert_eq(r.results[1].status, KV_OK);
    cr_assert_eq(r.results[1].value.len, 2, "GET sees the list's earlier SET");
    kv_client_txn_result_free(&r);

    /* same compare again fails: else branch */
    cr_assert_eq(kv_client_txn(c, &cmp, 1, then_ops, 2, else_ops, 1, &r), KV_OK);
    cr_assert_eq(r.succeeded, 0);
    cr_assert_eq(r.version, 0);
    cr_assert_eq(r.nresults, 1);
    cr_assert_eq(memcmp(r.results[0].value.data, "50", 2), 0);
    kv_client_txn_result_free(&r);

    kv_compare absent = {.kind = KV_CMP_ABSENT, .key = "x", .klen = 1};
    kv_op del = {KV_OP_DELETE, "nothing", 7, NULL, 0, 0};
    cr_assert_eq(kv_client_txn(c, &absent, 1, &del, 1, NULL, 0, &r), KV_OK);
    cr_assert_eq(r.succeeded, 1);
    cr_assert_eq(r.results[0].status, KV_NOT_FOUND);
    kv_client_txn_result_free(&r);
    kv_client_close(c);
    kvd_stop();
}

typedef struct scan_acc {
    int seen[600];
    int n;
} scan_acc;

static int scan_fn(void *ctx, const void *key, size_t klen, const void *val, size_t vlen,
                   uint64_t version)
{
    scan_acc *a = ctx;
    (void)val;
    (void)vlen;
    (void)version;
    char buf[32];
    cr_assert(klen < sizeof buf);
    memcpy(buf, key, klen);
    buf[klen] = 0;
    int i = atoi(buf + 5);
    if (strncmp(buf, "scan:", 5) == 0 && i >= 0 && i < 600)
        a->seen[i]++;
    a->n++;
    return 0;
}

Test(ops, scan)
{
    kvd_start(NULL);
    kv_client *c = test_client(NULL);
    kv_client_pipeline *p;
    cr_assert_eq(kv_client_pipeline_new(c, &p), KV_OK);
    char k[32];
    for (int i = 0; i < 500; i++) {
        int n = snprintf(k, sizeof k, "scan:%d", i);
        kv_client_pipeline_set(p, k, (size_t)n, "v", 1);
    }
    cr_assert_eq(kv_client_set(c, "other", 5, "x", 1, NULL), KV_OK);
    cr_assert_eq(kv_client_pipeline_exec(p), KV_OK);
    kv_client_pipeline_free(p);

    scan_acc acc = {{0}, 0};
    uint64_t cursor = 0;
    int rounds = 0;
    do {
        cr_assert_eq(kv_client_scan(c, "scan:", 5, cursor, 64, scan_fn, &acc, &cursor), KV_OK);
        cr_assert_lt(++rounds, 1000);
    } while (cursor != 0);
    for (int i = 0; i < 500; i++)
        cr_assert_geq(acc.seen[i], 1, "key %d missing from scan", i);
    cr_assert_gt(rounds, 1, "limit 64 needs several batches");
    kv_client_close(c);
    kvd_stop();
}

typedef struct keys_acc {
    int seen[600];
    int n;
    int values; /* entries that came with a value */
} keys_acc;

static int keys_fn(void *ctx, const void *key, size_t klen, const void *val, size_t vlen,
                   uint64_t version)
{
    keys_acc *a = ctx;
    char buf[64];
    cr_assert(klen < sizeof buf);
    memcpy(buf, key, klen);
    buf[klen] = 0;
    int i = atoi(buf + 5);
    if (strncmp(buf, "keys:", 5) == 0 && i >= 0 && i < 600)
        a->seen[i]++;
    cr_assert_gt(version, 0);
    a->values += val != NULL || vlen != 0;
    a->n++;
    return 0;
}

/* SCAN keys_only (protocol version 2): keys and versions, no values; a
 * version 1 connection gets [id, 30] for the 4th argument and stays open. */
Test(ops, scan_keys_only)
{
    kvd_start(NULL);
    kv_client *c = test_client(NULL);
    char k[32];
    for (int i = 0; i < 300; i++) {
        int n = snprintf(k, sizeof k, "keys:%d", i);
        cr_assert_eq(kv_client_set(c, k, (size_t)n, "value", 5, NULL), KV_OK);
    }
    keys_acc acc = {{0}, 0, 0};
    uint64_t cursor = 0;
    int rounds = 0;
    do {
        cr_assert_eq(kv_client_scan_ex(c, "keys:", 5, cursor, 50, KV_CLIENT_SCAN_KEYS_ONLY,
                                       keys_fn, &acc, &cursor),
                     KV_OK, "%s", kv_client_last_error(c));
        cr_assert_lt(++rounds, 1000);
    } while (cursor != 0);
    cr_assert_eq(acc.n, 300);
    cr_assert_eq(acc.values, 0);
    for (int i = 0; i < 300; i++)
        cr_assert_eq(acc.seen[i], 1, "key %d seen %d times", i, acc.seen[i]);
    cr_assert_eq(kv_client_scan_ex(c, "", 0, 0, 0, 2, keys_fn, &acc, &cursor),
                 KV_INVALID_ARGUMENT, "unknown flag");
    kv_client_close(c);

    /* raw: version 1 refuses keys_only, HELLO 2 allows it */
    int fd = raw_connect(g_kvd.port, 5000);
    cr_assert_geq(fd, 0);
    kv_proto_buf b = {0};
    kv_proto_request q = {.op = KV_PROTO_SCAN, .id = 5, .key = {"keys:1", 6}, .limit = 1000,
                          .keys_only = 1};
    enc(&b, &q);
    cr_assert_eq(raw_send(fd, b.data, b.len), 0);
    uint64_t id = 0;
    cr_assert_eq(raw_recv_status(fd, KV_PROTO_SCAN, &id), KV_PROTOCOL);
    cr_assert_eq(id, 5, "the id was readable: [id, 30], connection open");
    kv_proto_buf_reset(&b);
    kv_proto_request h = {.op = KV_PROTO_HELLO, .id = 6, .min_version = 2, .max_version = 2};
    enc(&b, &h);
    cr_assert_eq(raw_send(fd, b.data, b.len), 0);
    cr_assert_eq(raw_recv_status(fd, KV_PROTO_HELLO, &id), KV_OK);
    kv_proto_buf_reset(&b);
    q.id = 7;
    enc(&b, &q);
    cr_assert_eq(raw_send(fd, b.data, b.len), 0);
    uint8_t *body = NULL;
    long n = raw_recv_frame(fd, &body);
    cr_assert_gt(n, 0);
    kv_proto_response r;
    cr_assert_eq(kv_proto_response_decode_ex(body, (size_t)n, KV_PROTO_SCAN,
                                             KV_PROTO_RESULT_KEYS_ONLY, NULL, &r),
                 KV_OK, "pairs of key, version");
    cr_assert_eq(r.status, KV_OK);
    cr_assert_eq(r.nentries, 111, "keys:1, keys:10..19, keys:100..199");
    kv_proto_response_free(&r);
    free(body);
    kv_proto_buf_free(&b);
    close(fd);
    kvd_stop();
}

/* A SCAN reply is in the shortest encoding: an empty store answers
 * [id, 0, [0, []]] in 6 bytes (no 9-byte cursor, no 32-bit array). */
Test(ops, scan_reply_is_shortest)
{
    kvd_start(NULL);
    int fd = raw_connect(g_kvd.port, 5000);
    cr_assert_geq(fd, 0);
    kv_proto_buf b = {0};
    kv_proto_request q = {.op = KV_PROTO_SCAN, .id = 3, .cursor = 0};
    enc(&b, &q);
    cr_assert_eq(raw_send(fd, b.data, b.len), 0);
    uint8_t *body = NULL;
    long n = raw_recv_frame(fd, &body);
    const uint8_t want[] = {0x93, 0x03, 0x00, 0x92, 0x00, 0x90};
    cr_assert_eq(n, (long)sizeof want);
    cr_assert_eq(memcmp(body, want, sizeof want), 0);
    free(body);
    kv_proto_buf_free(&b);
    close(fd);
    kvd_stop();
}

/* The documented edge cases (docs/protocol.md section 4): MGET [] and
 * MSET [] are accepted (an empty result, revision 0: nothing changed); a
 * SCAN cursor past the last key gives [0, []]; a SCAN prefix over the key
 * limit is 12 KEY_TOO_LARGE. */
Test(ops, empty_lists_bogus_cursor_long_prefix)
{
    kvd_start(NULL);
    kv_client *c = test_client(NULL);
    cr_assert_eq(kv_client_set(c, "k", 1, "v", 1, NULL), KV_OK);
    kv_client_close(c);
    int fd = raw_connect(g_kvd.port, 5000);
    cr_assert_geq(fd, 0);
    kv_proto_buf b = {0};
    kv_proto_request mget = {.op = KV_PROTO_MGET, .id = 1};
    kv_proto_request mset = {.op = KV_PROTO_MSET, .id = 2};
    kv_proto_request scan = {.op = KV_PROTO_SCAN, .id = 3, .cursor = UINT64_MAX};
    char *prefix = calloc(1, 70000);
    cr_assert_not_null(prefix);
    kv_proto_request longp = {.op = KV_PROTO_SCAN, .id = 4, .key = {prefix, 70000}};
    enc(&b, &mget);
    enc(&b, &mset);
    enc(&b, &scan);
    enc(&b, &longp);
    cr_assert_eq(raw_send(fd, b.data, b.len), 0);
    const int ops[4] = {KV_PROTO_MGET, KV_PROTO_MSET, KV_PROTO_SCAN, KV_PROTO_SCAN};
    for (int i = 0; i < 4; i++) {
        uint8_t *body = NULL;
        long n = raw_recv_frame(fd, &body);
        cr_assert_gt(n, 0);
        kv_proto_response r;
        cr_assert_eq(kv_proto_response_decode(body, (size_t)n, ops[i], NULL, &r), KV_OK);
        cr_assert_eq(r.id, (uint64_t)i + 1);
        if (i == 0)
            cr_assert(r.status == KV_OK && r.nvalues == 0, "MGET []: []");
        else if (i == 1)
            cr_assert(r.status == KV_OK && r.version == 0, "MSET []: revision 0");
        else if (i == 2)
            cr_assert(r.status == KV_OK && r.cursor == 0 && r.nentries == 0, "bogus cursor");
        else
            cr_assert_eq(r.status, KV_KEY_TOO_LARGE);
        kv_proto_response_free(&r);
        free(body);
    }
    free(prefix);
    kv_proto_buf_free(&b);
    close(fd);
    kvd_stop();
}

Test(ops, metrics)
{
    kvd_start(NULL);
    kv_client *c = test_client(NULL);
    for (int i = 0; i < 20; i++)
        cr_assert_eq(kv_client_set(c, "m", 1, "v", 1, NULL), KV_OK);
    kv_value v;
    cr_assert_eq(kv_client_get(c, "m", 1, &v), KV_OK);
    kv_client_value_free(&v);
    kv_client_metrics m;
    cr_assert_eq(kv_client_metrics_get(c, &m), KV_OK);
    const kv_client_metric *x;
    cr_assert_not_null(x = kv_client_metrics_find(&m, NULL, "keys"));
    cr_assert_eq(x->u, 1);
    cr_assert_not_null(x = kv_client_metrics_find(&m, NULL, "revision"));
    cr_assert_eq(x->u, 20);
    cr_assert_not_null(x = kv_client_metrics_find(&m, NULL, "connections"));
    cr_assert_eq(x->u, 1);
    cr_assert_not_null(kv_client_metrics_find(&m, NULL, "uptime_s"));
    cr_assert_not_null(x = kv_client_metrics_find(&m, NULL, "bytes_in"));
    cr_assert_gt(x->u, 0);
    cr_assert_not_null(x = kv_client_metrics_find(&m, "requests_by_op", "set"));
    cr_assert_eq(x->u, 20);
    cr_assert_not_null(x = kv_client_metrics_find(&m, "latency_p50_us", "set"));
    cr_assert_gt(x->d, 0.0);
    const kv_client_metric *p99 = kv_client_metrics_find(&m, "latency_p99_us", "set");
    const kv_client_metric *p999 = kv_client_metrics_find(&m, "latency_p999_us", "set");
    cr_assert_not_null(p99);
    cr_assert_not_null(p999);
    cr_assert_geq(p999->d, p99->d);
    cr_assert_geq(p99->d, x->d);
    kv_client_metrics_free(&m);

    /* errors by op: failures only (a GET miss, a CAS mismatch are outcomes) */
    cr_assert_eq(kv_client_set(c, "", 0, "v", 1, NULL), KV_KEY_EMPTY);
    cr_assert_eq(kv_client_set(c, "", 0, "v", 1, NULL), KV_KEY_EMPTY);
    cr_assert_eq(kv_client_get(c, "", 0, &v), KV_KEY_EMPTY);
    cr_assert_eq(kv_client_get(c, "nope", 4, &v), KV_NOT_FOUND);
    cr_assert_eq(kv_client_set_if(c, "m", 1, "v", 1, 999, NULL), KV_VERSION_MISMATCH);
    cr_assert_eq(kv_client_metrics_get(c, &m), KV_OK);
    cr_assert_not_null(x = kv_client_metrics_find(&m, "errors_by_op", "set"));
    cr_assert_eq(x->u, 2);
    cr_assert_not_null(x = kv_client_metrics_find(&m, "errors_by_op", "get"));
    cr_assert_eq(x->u, 1);
    cr_assert_not_null(x = kv_client_metrics_find(&m, "errors_by_op", "del"));
    cr_assert_eq(x->u, 0);
    cr_assert_not_null(x = kv_client_metrics_find(&m, NULL, "errors"));
    cr_assert_eq(x->u, 3);
    kv_client_metrics_free(&m);
    kv_client_close(c);
    kvd_stop();
}

Test(ops, ipv6_and_unix_socket)
{
    char sock[300];
    /* directory comes from the harness; make it now to name the socket */
    strcpy(g_kvd.dir, "/tmp/kvdtest.XXXXXX");
    cr_assert_not_null(mkdtemp(g_kvd.dir));
    snprintf(sock, sizeof sock, "%s/kvd.sock", g_kvd.dir);
    kvd_start("--bind", "127.0.0.1,::1", "--unix", sock, NULL);

    int fd = raw_connect6(g_kvd.port, 5000);
    if (fd >= 0) { /* IPv6 loopback may be disabled in some containers */
        kv_proto_buf b = {0};
        kv_proto_request r = {.op = KV_PROTO_PING, .id = 7};
        enc(&b, &r);
        cr_assert_eq(raw_send(fd, b.data, b.len), 0);
        uint64_t id = 0;
        cr_assert_eq(raw_recv_status(fd, KV_PROTO_PING, &id), KV_OK);
        cr_assert_eq(id, 7);
        kv_proto_buf_free(&b);
        close(fd);
    }

    kv_client *c = test_unix_client(sock);
    cr_assert_eq(kv_client_set(c, "u", 1, "x", 1, NULL), KV_OK);
    kv_client_close(c);
    c = test_client(NULL);
    kv_value v;
    cr_assert_eq(kv_client_get(c, "u", 1, &v), KV_OK, "same store over TCP and Unix");
    kv_client_value_free(&v);
    kv_client_close(c);
    kvd_stop();
    cr_assert_neq(access(sock, F_OK), 0, "socket file removed at exit");
}
