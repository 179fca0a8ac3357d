/*
 * test_expiry.c - key expiry through kvd's own protocol (version 4) and
 * libkvclient: TTLs and expiry times on SET, MSET and TXN set ops, TTL,
 * EXPIRE with its conditions, PERSIST; an expired key absent alike for
 * GET, MGET, SCAN, compares and compare-and-swap; bad expiries refused
 * with nothing changed; version negotiation (an older version refuses
 * the new ops and arguments; a new client facing an older server refuses
 * them itself), pipelined as well as one request at a time.
 *
 * No timing thresholds: a key given a time in the past is absent at once
 * (no wait at all), a short TTL is waited out by polling, and a long one
 * (an hour) is only checked to be there.
 */
#include <criterion/criterion.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <netinet/in.h>
#include <time.h>
#include <unistd.h>

#include "harness.h"

TestSuite(expiry, .init = harness_setup, .fini = harness_teardown, .timeout = 120);

#define HOUR_MS 3600000ull

static uint64_t now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    return (uint64_t)ts.tv_sec * 1000 + (uint64_t)ts.tv_nsec / 1000000;
}

static void sleep_ms(int ms)
{
    struct timespec ts = {ms / 1000, (long)(ms % 1000) * 1000000};
    nanosleep(&ts, NULL);
}

static int get_status(kv_client *c, const char *key)
{
    kv_value v = {0};
    int rc = kv_client_get(c, key, strlen(key), &v);
    kv_client_value_free(&v);
    return rc;
}

typedef struct seen {
    int n;
    char keys[8][16];
} seen;

static int scan_cb(void *ctx, const void *k, size_t klen, const void *v, size_t vlen,
                   uint64_t version)
{
    (void)v;
    (void)vlen;
    (void)version;
    seen *s = ctx;
    if (s->n < 8 && klen < 16) {
        memcpy(s->keys[s->n], k, klen);
        s->keys[s->n][klen] = 0;
    }
    s->n++;
    return 0;
}

/* Every key with prefix p in one SCAN (a few keys: one page). */
static seen scan_all(kv_client *c, const char *p)
{
    seen s = {0};
    uint64_t next = 0;
    do
        cr_assert_eq(kv_client_scan(c, p, strlen(p), next, 100, scan_cb, &s, &next), KV_OK);
    while (next);
    return s;
}

/* The key is absent for every kind of read, compare and write. */
static void assert_absent_everywhere(kv_client *c, const char *key)
{
    size_t klen = strlen(key);
    cr_assert_eq(get_status(c, key), KV_NOT_FOUND, "GET %s", key);
    kv_key k = {key, klen};
    kv_value mv = {0};
    cr_assert_eq(kv_client_mget(c, &k, 1, &mv), KV_OK);
    cr_assert_null(mv.data, "MGET %s", key);
    seen s = scan_all(c, key);
    cr_assert_eq(s.n, 0, "SCAN %s found it", key);
    uint64_t at = 7, left = 7;
    cr_assert_eq(kv_client_ttl(c, key, klen, &at, &left), KV_NOT_FOUND, "TTL %s", key);
    cr_assert_eq(kv_client_expire_ttl(c, key, klen, 1000, NULL), KV_NOT_FOUND);
    cr_assert_eq(kv_client_persist(c, key, klen, NULL), KV_NOT_FOUND);
    /* compares: absent, version 0, not equal to any value */
    kv_compare cmps[3] = {{.kind = KV_CMP_ABSENT, .key = key, .klen = klen},
                          {.kind = KV_CMP_VERSION_EQ, .key = key, .klen = klen, .version = 0},
                          {.kind = KV_CMP_EXISTS, .key = key, .klen = klen}};
    kv_txn_result res;
    cr_assert_eq(kv_client_txn(c, cmps, 2, NULL, 0, NULL, 0, &res), KV_OK);
    cr_assert(res.succeeded, "ABSENT and VERSION_EQ 0 hold for %s", key);
    kv_client_txn_result_free(&res);
    cr_assert_eq(kv_client_txn(c, cmps + 2, 1, NULL, 0, NULL, 0, &res), KV_OK);
    cr_assert(!res.succeeded, "EXISTS fails for %s", key);
    kv_client_txn_result_free(&res);
    /* a TXN GET of it finds nothing */
    kv_op get = {.kind = KV_OP_GET, .key = key, .klen = klen};
    cr_assert_eq(kv_client_txn(c, NULL, 0, &get, 1, NULL, 0, &res), KV_OK);
    cr_assert_eq(res.results[0].status, KV_NOT_FOUND);
    kv_client_txn_result_free(&res);
}

Test(expiry, ttl_set_mset_and_reads)
{
    kvd_start(NULL);
    kv_client *c = test_client(NULL);
    cr_assert_eq(kv_client_protocol_version(c), KV_PROTO_MAX_VERSION);
    uint64_t v1 = 0, at = 0, left = 0, before = now_ms();
    cr_assert_eq(kv_client_set_ttl(c, "a", 1, "1", 1, HOUR_MS, &v1), KV_OK);
    cr_assert_eq(kv_client_ttl(c, "a", 1, &at, &left), KV_OK);
    /* the server's clock made the time: within the hour around ours */
    cr_assert(at >= before + HOUR_MS - 5000 && at <= now_ms() + HOUR_MS + 5000, "at %llu",
              (unsigned long long)at);
    cr_assert(left > 0 && left <= HOUR_MS, "left %llu", (unsigned long long)left);
    /* visible to every read while it lasts */
    cr_assert_eq(get_status(c, "a"), KV_OK);
    seen s = scan_all(c, "a");
    cr_assert_eq(s.n, 1);

    /* a plain SET clears the expiry (as Redis's SET) */
    cr_assert_eq(kv_client_set(c, "a", 1, "2", 1, NULL), KV_OK);
    cr_assert_eq(kv_client_ttl(c, "a", 1, &at, &left), KV_OK);
    cr_assert_eq(at, 0);
    cr_assert_eq(left, 0);

    /* absolute times; MSET gives every key the same one */
    uint64_t t = now_ms() + 2 * HOUR_MS, vm = 0;
    cr_assert_eq(kv_client_set_ex(c, "b", 1, "x", 1, t, NULL), KV_OK);
    cr_assert_eq(kv_client_ttl(c, "b", 1, &at, NULL), KV_OK);
    cr_assert_eq(at, t);
    kv_pair pairs[3] = {{"m1", 2, "1", 1}, {"m2", 2, "2", 1}, {"m3", 2, "3", 1}};
    cr_assert_eq(kv_client_mset_ttl(c, pairs, 3, HOUR_MS, &vm), KV_OK);
    uint64_t at1 = 0, at2 = 0, at3 = 0;
    cr_assert_eq(kv_client_ttl(c, "m1", 2, &at1, NULL), KV_OK);
    cr_assert_eq(kv_client_ttl(c, "m2", 2, &at2, NULL), KV_OK);
    cr_assert_eq(kv_client_ttl(c, "m3", 2, &at3, NULL), KV_OK);
    cr_assert(at1 != 0 && at1 == at2 && at2 == at3, "one expiry time for the MSET");
    kv_value mv = {0};
    cr_assert_eq(kv_client_get(c, "m2", 2, &mv), KV_OK);
    cr_assert_eq(mv.version, vm, "one revision for the MSET");
    kv_client_value_free(&mv);
    cr_assert_eq(kv_client_mset_ex(c, pairs, 2, t, NULL), KV_OK);
    cr_assert_eq(kv_client_ttl(c, "m1", 2, &at1, NULL), KV_OK);
    cr_assert_eq(at1, t);

    /* compare-and-swap with a TTL */
    kv_value cur = {0};
    cr_assert_eq(kv_client_get(c, "a", 1, &cur), KV_OK);
    cr_assert_eq(kv_client_set_if_ttl(c, "a", 1, "3", 1, cur.version + 100, HOUR_MS, NULL),
                 KV_VERSION_MISMATCH);
    cr_assert_eq(kv_client_ttl(c, "a", 1, &at, NULL), KV_OK);
    cr_assert_eq(at, 0, "a failed CAS changes nothing");
    cr_assert_eq(kv_client_set_if_ttl(c, "a", 1, "3", 1, cur.version, HOUR_MS, NULL), KV_OK);
    cr_assert_eq(kv_client_ttl(c, "a", 1, &at, NULL), KV_OK);
    cr_assert_neq(at, 0);
    kv_client_value_free(&cur);
    cr_assert_eq(kv_client_set_if_ttl(c, "new", 3, "n", 1, 0, HOUR_MS, NULL), KV_OK,
                 "expected 0: the key must not exist");

    kv_client_close(c);
    kvd_stop();
}

Test(expiry, expired_key_is_absent_for_every_read)
{
    kvd_start(NULL);
    kv_client *c = test_client(NULL);
    /* a time already past: written, and absent at once (no waiting) */
    cr_assert_eq(kv_client_set(c, "p", 1, "old", 3, NULL), KV_OK);
    cr_assert_eq(kv_client_set_ex(c, "p", 1, "new", 3, 1000, NULL), KV_OK);
    assert_absent_everywhere(c, "p");
    /* and a CAS that expects it absent succeeds */
    cr_assert_eq(kv_client_set_if(c, "p", 1, "again", 5, 0, NULL), KV_OK);

    /* EXPIRE to a time past deletes */
    cr_assert_eq(kv_client_set(c, "q", 1, "v", 1, NULL), KV_OK);
    cr_assert_eq(kv_client_expire(c, "q", 1, 1000, NULL), KV_OK);
    assert_absent_everywhere(c, "q");

    /* a short TTL at its boundary: there, then (polled) gone together */
    kv_pair pairs[2] = {{"s1", 2, "1", 1}, {"s2", 2, "2", 1}};
    cr_assert_eq(kv_client_mset_ttl(c, pairs, 2, 300, NULL), KV_OK);
    kv_key keys[2] = {{"s1", 2}, {"s2", 2}};
    kv_value vals[2];
    for (;;) {
        cr_assert_eq(kv_client_mget(c, keys, 2, vals), KV_OK);
        int a = vals[0].data != NULL, b = vals[1].data != NULL;
        kv_client_values_free(vals, 2);
        cr_assert_eq(a, b, "keys set with one expiry time disappear together");
        if (!a)
            break;
        sleep_ms(20);
    }
    assert_absent_everywhere(c, "s1");
    assert_absent_everywhere(c, "s2");
    /* the store counts what it removed (the expiry thread or a write) */
    cr_assert_eq(kv_client_set(c, "s1", 2, "x", 1, NULL), KV_OK);
    while (metric_u(NULL, "expired_keys") < 2)
        sleep_ms(20);
    kv_client_close(c);
    kvd_stop();
}

Test(expiry, expire_conditions_and_persist)
{
    kvd_start(NULL);
    kv_client *c = test_client(NULL);
    uint64_t v0 = 0, v = 0, at = 0;
    cr_assert_eq(kv_client_set(c, "k", 1, "v", 1, &v0), KV_OK);
    /* XX, GT: no expiry yet (an infinite one) */
    cr_assert_eq(kv_client_expire_if(c, "k", 1, HOUR_MS, KV_CLIENT_EXPIRE_XX, NULL),
                 KV_VERSION_MISMATCH);
    cr_assert_eq(kv_client_expire_if(c, "k", 1, HOUR_MS, KV_CLIENT_EXPIRE_GT, NULL),
                 KV_VERSION_MISMATCH);
    cr_assert_eq(kv_client_ttl(c, "k", 1, &at, NULL), KV_OK);
    cr_assert_eq(at, 0, "a failed condition changes nothing");
    cr_assert_eq(kv_client_expire_if(c, "k", 1, 2 * HOUR_MS, KV_CLIENT_EXPIRE_NX, &v), KV_OK);
    cr_assert_gt(v, v0, "EXPIRE takes a revision");
    kv_value got = {0};
    cr_assert_eq(kv_client_get(c, "k", 1, &got), KV_OK);
    cr_assert_eq(got.len, 1);
    cr_assert_eq(got.version, v, "the value is kept, the version is the EXPIRE's");
    kv_client_value_free(&got);
    cr_assert_eq(kv_client_expire_if(c, "k", 1, HOUR_MS, KV_CLIENT_EXPIRE_NX, NULL),
                 KV_VERSION_MISMATCH);
    cr_assert_eq(kv_client_expire_if(c, "k", 1, 3 * HOUR_MS, KV_CLIENT_EXPIRE_LT, NULL),
                 KV_VERSION_MISMATCH);
    cr_assert_eq(kv_client_expire_if(c, "k", 1, HOUR_MS, KV_CLIENT_EXPIRE_LT, NULL), KV_OK);
    cr_assert_eq(kv_client_expire_if(c, "k", 1, 3 * HOUR_MS,
                                     KV_CLIENT_EXPIRE_GT | KV_CLIENT_EXPIRE_XX, NULL),
                 KV_OK);
    uint64_t t = now_ms() + 5 * HOUR_MS;
    cr_assert_eq(kv_client_expire(c, "k", 1, t, NULL), KV_OK);
    cr_assert_eq(kv_client_ttl(c, "k", 1, &at, NULL), KV_OK);
    cr_assert_eq(at, t);
    /* incompatible conditions: the server's refusal */
    cr_assert_eq(kv_client_expire_if(c, "k", 1, HOUR_MS,
                                     KV_CLIENT_EXPIRE_NX | KV_CLIENT_EXPIRE_XX, NULL),
                 KV_INVALID_ARGUMENT);
    cr_assert_eq(kv_client_expire_if(c, "k", 1, HOUR_MS,
                                     KV_CLIENT_EXPIRE_GT | KV_CLIENT_EXPIRE_LT, NULL),
                 KV_INVALID_ARGUMENT);
    cr_assert_eq(kv_client_ttl(c, "k", 1, &at, NULL), KV_OK);
    cr_assert_eq(at, t);
    /* PERSIST */
    cr_assert_eq(kv_client_persist(c, "k", 1, &v), KV_OK);
    cr_assert_eq(kv_client_ttl(c, "k", 1, &at, NULL), KV_OK);
    cr_assert_eq(at, 0);
    uint64_t v2 = 0;
    cr_assert_eq(kv_client_persist(c, "k", 1, &v2), KV_OK);
    cr_assert_eq(v2, v, "nothing to remove: the version stays");
    kv_client_close(c);
    kvd_stop();
}

Test(expiry, txn_set_ops_carry_expiry)
{
    kvd_start(NULL);
    kv_client *c = test_client(NULL);
    uint64_t t = now_ms() + HOUR_MS, at = 0;
    kv_op ops[3] = {{.kind = KV_OP_SET, .key = "t1", .klen = 2, .value = "1", .vlen = 1,
                     .expire_at_ms = t},
                    {.kind = KV_OP_SET, .key = "t2", .klen = 2, .value = "2", .vlen = 1},
                    {.kind = KV_OP_SET, .key = "t3", .klen = 2, .value = "3", .vlen = 1,
                     .expire_at_ms = 1000}};
    kv_txn_result res;
    cr_assert_eq(kv_client_txn(c, NULL, 0, ops, 3, NULL, 0, &res), KV_OK);
    cr_assert(res.succeeded);
    kv_client_txn_result_free(&res);
    cr_assert_eq(kv_client_ttl(c, "t1", 2, &at, NULL), KV_OK);
    cr_assert_eq(at, t);
    cr_assert_eq(kv_client_ttl(c, "t2", 2, &at, NULL), KV_OK);
    cr_assert_eq(at, 0);
    assert_absent_everywhere(c, "t3");

    /* a time from now in a TXN op (mode 0), as the protocol allows: raw */
    int fd = raw_connect(g_kvd.port, TEST_IO_TIMEOUT_MS);
    kv_proto_buf b = {0};
    kv_proto_request hello = {.op = KV_PROTO_HELLO, .id = 1, .min_version = 4,
                              .max_version = 4};
    enc(&b, &hello);
    unsigned char in[1] = {1};
    kv_op rel = {.kind = KV_OP_SET, .key = "t4", .klen = 2, .value = "4", .vlen = 1,
                 .expire_at_ms = HOUR_MS};
    kv_proto_request txn = {.op = KV_PROTO_TXN, .id = 2, .then_ops = &rel, .nthen = 1,
                            .then_in = in, .has_expiry = 1};
    enc(&b, &txn);
    cr_assert_eq(raw_send(fd, b.data, b.len), 0);
    uint64_t id;
    cr_assert_eq(raw_recv_status(fd, KV_PROTO_HELLO, &id), KV_OK);
    cr_assert_eq(raw_recv_status(fd, KV_PROTO_TXN, &id), KV_OK);
    close(fd);
    kv_proto_buf_free(&b);
    uint64_t before = now_ms();
    cr_assert_eq(kv_client_ttl(c, "t4", 2, &at, NULL), KV_OK);
    cr_assert(at > before && at <= before + HOUR_MS + 5000, "from now, not a 1970 time");
    kv_client_close(c);
    kvd_stop();
}

Test(expiry, txn_ttl_set_ops_are_times_from_now)
{
    kvd_start(NULL);
    kv_client *c = test_client(NULL);
    uint64_t at = 0, before = now_ms();
    kv_op ops[2] = {{.kind = KV_OP_SET, .key = "r1", .klen = 2, .value = "1", .vlen = 1,
                     .expire_at_ms = HOUR_MS},
                    {.kind = KV_OP_SET, .key = "r2", .klen = 2, .value = "2", .vlen = 1}};
    kv_compare cmp = {.kind = KV_CMP_ABSENT, .key = "r1", .klen = 2};
    kv_txn_result res;
    /* the else branch carries the TTL too */
    cr_assert_eq(kv_client_txn_ttl(c, &cmp, 1, NULL, 0, ops, 2, &res), KV_OK);
    cr_assert(res.succeeded);
    kv_client_txn_result_free(&res);
    cr_assert_eq(get_status(c, "r1"), KV_NOT_FOUND, "the then branch ran");
    cmp.kind = KV_CMP_EXISTS;
    cr_assert_eq(kv_client_txn_ttl(c, &cmp, 1, NULL, 0, ops, 2, &res), KV_OK);
    cr_assert(!res.succeeded);
    cr_assert_eq(res.nresults, 2);
    kv_client_txn_result_free(&res);
    cr_assert_eq(kv_client_ttl(c, "r1", 2, &at, NULL), KV_OK);
    cr_assert(at >= before + HOUR_MS && at <= now_ms() + HOUR_MS, "a TTL, not a 1970 time");
    cr_assert_eq(kv_client_ttl(c, "r2", 2, &at, NULL), KV_OK);
    cr_assert_eq(at, 0, "an op without a TTL has no expiry");
    /* too large: refused, not sent, nothing changed */
    ops[1].expire_at_ms = (1ull << 52) + 1;
    cr_assert_eq(kv_client_txn_ttl(c, NULL, 0, ops, 2, NULL, 0, &res), KV_INVALID_ARGUMENT);
    cr_assert(kv_client_last_error(c)[0] != '\0');
    cr_assert_eq(kv_client_ttl(c, "r2", 2, &at, NULL), KV_OK);
    cr_assert_eq(at, 0);
    kv_client_close(c);
    kvd_stop();
}

Test(expiry, pipelined_expiry)
{
    kvd_start(NULL);
    kv_client *c = test_client(NULL);
    kv_client_pipeline *p;
    cr_assert_eq(kv_client_pipeline_new(c, &p), KV_OK);
    uint64_t t = now_ms() + HOUR_MS, before = now_ms();
    kv_pair pairs[2] = {{"m1", 2, "x", 1}, {"m2", 2, "y", 1}};
    kv_pair tpairs[2] = {{"n1", 2, "x", 1}, {"n2", 2, "y", 1}};
    cr_assert_eq(kv_client_pipeline_set_ex(p, "a", 1, "1", 1, t), KV_OK);            /* 0 */
    cr_assert_eq(kv_client_pipeline_set_ttl(p, "b", 1, "2", 1, HOUR_MS), KV_OK);     /* 1 */
    cr_assert_eq(kv_client_pipeline_set_if_ttl(p, "c", 1, "3", 1, 0, HOUR_MS), KV_OK); /* 2 */
    cr_assert_eq(kv_client_pipeline_set_if_ttl(p, "c", 1, "4", 1, 0, HOUR_MS), KV_OK); /* 3 */
    cr_assert_eq(kv_client_pipeline_mset_ex(p, pairs, 2, t + HOUR_MS), KV_OK);        /* 4 */
    cr_assert_eq(kv_client_pipeline_mset_ttl(p, tpairs, 2, HOUR_MS), KV_OK);          /* 5 */
    cr_assert_eq(kv_client_pipeline_set(p, "d", 1, "5", 1), KV_OK);                   /* 6 */
    cr_assert_eq(kv_client_pipeline_ttl(p, "a", 1), KV_OK);                           /* 7 */
    cr_assert_eq(kv_client_pipeline_ttl(p, "d", 1), KV_OK);                           /* 8 */
    cr_assert_eq(kv_client_pipeline_ttl(p, "nope", 4), KV_OK);                        /* 9 */
    cr_assert_eq(kv_client_pipeline_expire(p, "d", 1, t), KV_OK);                     /* 10 */
    cr_assert_eq(kv_client_pipeline_expire_if(p, "d", 1, HOUR_MS, KV_CLIENT_EXPIRE_NX),
                 KV_OK);                                                              /* 11 */
    cr_assert_eq(kv_client_pipeline_persist(p, "b", 1), KV_OK);                       /* 12 */
    cr_assert_eq(kv_client_pipeline_expire_ttl(p, "m1", 2, HOUR_MS), KV_OK);          /* 13 */
    cr_assert_eq(kv_client_pipeline_expire(p, "m2", 2, 0), KV_OK);                    /* 14 */
    cr_assert_eq(kv_client_pipeline_persist(p, "nope", 4), KV_OK);                    /* 15 */
    kv_op op = {.kind = KV_OP_SET, .key = "e", .klen = 1, .value = "6", .vlen = 1,
                .expire_at_ms = HOUR_MS};
    cr_assert_eq(kv_client_pipeline_txn_ttl(p, NULL, 0, &op, 1, NULL, 0), KV_OK);     /* 16 */
    op.key = "f";
    op.expire_at_ms = t;
    cr_assert_eq(kv_client_pipeline_txn(p, NULL, 0, &op, 1, NULL, 0), KV_OK);         /* 17 */
    cr_assert_eq(kv_client_pipeline_set_ex(p, "g", 1, "7", 1, 1000), KV_OK);          /* 18: past */
    cr_assert_eq(kv_client_pipeline_count(p), 19);
    cr_assert_eq(kv_client_pipeline_exec(p), KV_OK);
    cr_assert_eq(kv_client_pipeline_replies(p), 19);
    const kv_client_reply *r;
    static const int ops[19] = {
        KV_CLIENT_OP_SET,     KV_CLIENT_OP_SET,    KV_CLIENT_OP_SET,    KV_CLIENT_OP_SET,
        KV_CLIENT_OP_MSET,    KV_CLIENT_OP_MSET,   KV_CLIENT_OP_SET,    KV_CLIENT_OP_TTL,
        KV_CLIENT_OP_TTL,     KV_CLIENT_OP_TTL,    KV_CLIENT_OP_EXPIRE, KV_CLIENT_OP_EXPIRE,
        KV_CLIENT_OP_PERSIST, KV_CLIENT_OP_EXPIRE, KV_CLIENT_OP_PERSIST, KV_CLIENT_OP_PERSIST,
        KV_CLIENT_OP_TXN,     KV_CLIENT_OP_TXN,    KV_CLIENT_OP_SET};
    static const int want[19] = {KV_OK, KV_OK, KV_OK, KV_VERSION_MISMATCH, KV_OK, KV_OK,
                                 KV_OK, KV_OK, KV_OK, KV_NOT_FOUND, KV_OK,
                                 KV_VERSION_MISMATCH, KV_OK, KV_OK, KV_OK, KV_NOT_FOUND,
                                 KV_OK, KV_OK, KV_OK};
    for (int i = 0; i < 19; i++) {
        r = kv_client_pipeline_reply(p, (size_t)i);
        cr_assert_eq(r->op, ops[i], "reply %d op %d", i, r->op);
        cr_assert_eq(r->status, want[i], "reply %d status %d", i, r->status);
    }
    r = kv_client_pipeline_reply(p, 7);
    cr_assert_eq(r->expire_at_ms, t, "TTL of a: its expiry time");
    cr_assert(r->ttl_ms > 0 && r->ttl_ms <= HOUR_MS);
    r = kv_client_pipeline_reply(p, 8);
    cr_assert_eq(r->expire_at_ms, 0, "d had no expiry yet");
    cr_assert_eq(r->ttl_ms, 0);
    cr_assert_gt(kv_client_pipeline_reply(p, 10)->version,
                 kv_client_pipeline_reply(p, 6)->version, "EXPIRE is a new revision");
    kv_client_pipeline_free(p);

    /* what the pipeline did, read back one request at a time */
    uint64_t at = 0;
    cr_assert_eq(kv_client_ttl(c, "a", 1, &at, NULL), KV_OK);
    cr_assert_eq(at, t);
    cr_assert_eq(kv_client_ttl(c, "b", 1, &at, NULL), KV_OK);
    cr_assert_eq(at, 0, "persisted");
    cr_assert_eq(kv_client_ttl(c, "c", 1, &at, NULL), KV_OK);
    cr_assert(at >= before + HOUR_MS, "set_if_ttl: a time from now");
    kv_value v = {0};
    cr_assert_eq(kv_client_get(c, "c", 1, &v), KV_OK);
    cr_assert_eq(((const char *)v.data)[0], '3', "the second compare-and-swap failed");
    kv_client_value_free(&v);
    cr_assert_eq(kv_client_ttl(c, "d", 1, &at, NULL), KV_OK);
    cr_assert_eq(at, t, "EXPIRE NX failed: the first EXPIRE's time stays");
    cr_assert_eq(kv_client_ttl(c, "m1", 2, &at, NULL), KV_OK);
    cr_assert(at >= before + HOUR_MS && at <= now_ms() + HOUR_MS, "expire_ttl replaced it");
    cr_assert_eq(kv_client_ttl(c, "m2", 2, &at, NULL), KV_OK);
    cr_assert_eq(at, 0, "expire with 0 is PERSIST");
    for (int i = 0; i < 2; i++) {
        cr_assert_eq(kv_client_ttl(c, tpairs[i].key, 2, &at, NULL), KV_OK);
        cr_assert(at >= before + HOUR_MS, "mset_ttl: a time from now");
    }
    cr_assert_eq(kv_client_ttl(c, "e", 1, &at, NULL), KV_OK);
    cr_assert(at >= before + HOUR_MS && at <= now_ms() + HOUR_MS, "txn_ttl: a time from now");
    cr_assert_eq(kv_client_ttl(c, "f", 1, &at, NULL), KV_OK);
    cr_assert_eq(at, t, "txn: a Unix time");
    assert_absent_everywhere(c, "g");
    kv_client_close(c);
    kvd_stop();
}

Test(expiry, pipelined_bad_expiries_queue_nothing)
{
    kvd_start(NULL);
    kv_client *c = test_client(NULL);
    kv_client_pipeline *p;
    cr_assert_eq(kv_client_pipeline_new(c, &p), KV_OK);
    uint64_t big = (1ull << 52) + 1;
    kv_pair pair = {"k", 1, "v", 1};
    kv_op op = {.kind = KV_OP_SET, .key = "k", .klen = 1, .value = "v", .vlen = 1,
                .expire_at_ms = big};
    cr_assert_eq(kv_client_pipeline_set_ttl(p, "k", 1, "v", 1, 0), KV_INVALID_ARGUMENT);
    cr_assert_eq(kv_client_pipeline_set_ttl(p, "k", 1, "v", 1, big), KV_INVALID_ARGUMENT);
    cr_assert_eq(kv_client_pipeline_set_ex(p, "k", 1, "v", 1, big), KV_INVALID_ARGUMENT);
    cr_assert_eq(kv_client_pipeline_set_if_ttl(p, "k", 1, "v", 1, 0, 0), KV_INVALID_ARGUMENT);
    cr_assert_eq(kv_client_pipeline_mset_ttl(p, &pair, 1, 0), KV_INVALID_ARGUMENT);
    cr_assert_eq(kv_client_pipeline_mset_ex(p, &pair, 1, big), KV_INVALID_ARGUMENT);
    cr_assert_eq(kv_client_pipeline_expire_ttl(p, "k", 1, 0), KV_INVALID_ARGUMENT);
    cr_assert_eq(kv_client_pipeline_expire_if(p, "k", 1, 5, 64), KV_INVALID_ARGUMENT);
    cr_assert_eq(kv_client_pipeline_expire_if(p, "k", 1, 0, KV_CLIENT_EXPIRE_AT),
                 KV_INVALID_ARGUMENT);
    cr_assert_eq(kv_client_pipeline_txn(p, NULL, 0, &op, 1, NULL, 0), KV_INVALID_ARGUMENT);
    cr_assert_eq(kv_client_pipeline_txn_ttl(p, NULL, 0, &op, 1, NULL, 0), KV_INVALID_ARGUMENT);
    cr_assert_eq(kv_client_pipeline_count(p), 0, "nothing queued");
    /* set_ex with 0 is the plain write, as kv_client_set_ex */
    cr_assert_eq(kv_client_pipeline_set_ex(p, "k", 1, "v", 1, 0), KV_OK);
    cr_assert_eq(kv_client_pipeline_exec(p), KV_OK);
    cr_assert_eq(kv_client_pipeline_reply(p, 0)->status, KV_OK);
    kv_client_pipeline_free(p);
    uint64_t at = 9;
    cr_assert_eq(kv_client_ttl(c, "k", 1, &at, NULL), KV_OK);
    cr_assert_eq(at, 0);
    cr_assert_eq(metric_u(NULL, "keys"), 1, "only the one valid write");
    kv_client_close(c);
    kvd_stop();
}

/* Sends the frames of reqs on a new connection and returns each status. */
static void exchange(const kv_proto_request *reqs, int n, int *status)
{
    int fd = raw_connect(g_kvd.port, TEST_IO_TIMEOUT_MS);
    kv_proto_buf b = {0};
    for (int i = 0; i < n; i++)
        enc(&b, &reqs[i]);
    cr_assert_eq(raw_send(fd, b.data, b.len), 0);
    for (int i = 0; i < n; i++) {
        uint64_t id = 0;
        status[i] = raw_recv_status(fd, reqs[i].op, &id);
        cr_assert_eq(id, reqs[i].id);
    }
    close(fd);
    kv_proto_buf_free(&b);
}

/* Sends HELLO 4 and then the request body given (id 9) on a new
 * connection; returns the request's status. */
static int raw_status(const unsigned char *body, size_t n, int op)
{
    unsigned char frame[96];
    cr_assert_leq(n, sizeof frame - 4);
    kv_proto_write_u32(frame, (uint32_t)n);
    memcpy(frame + 4, body, n);
    int fd = raw_connect(g_kvd.port, TEST_IO_TIMEOUT_MS);
    kv_proto_buf b = {0};
    kv_proto_request hello = {.op = KV_PROTO_HELLO, .id = 1, .min_version = 4,
                              .max_version = 4};
    enc(&b, &hello);
    cr_assert_eq(raw_send(fd, b.data, b.len), 0);
    cr_assert_eq(raw_send(fd, frame, 4 + n), 0);
    uint64_t id;
    cr_assert_eq(raw_recv_status(fd, KV_PROTO_HELLO, &id), KV_OK);
    int st = raw_recv_status(fd, op, &id);
    cr_assert_eq(id, 9);
    close(fd);
    kv_proto_buf_free(&b);
    return st;
}

/* [5, 9, "k", "v", nil, EXPIRY], [15, 9, "k", EXPIRY] and
 * [8, 9, [], [[1, "k", "v", EXPIRY]], []] with EXPIRY's bytes given:
 * each one's status, which must be the same. */
static int with_expiry(const unsigned char *e, size_t n)
{
    unsigned char set[64] = {0x96, 0x05, 0x09, 0xa1, 'k', 0xa1, 'v', 0xc0};
    unsigned char exp[64] = {0x94, 0x0f, 0x09, 0xa1, 'k'};
    unsigned char txn[64] = {0x95, 0x08, 0x09, 0x90, 0x91, 0x94, 0x01, 0xa1, 'k', 0xa1, 'x'};
    memcpy(set + 8, e, n);
    memcpy(exp + 5, e, n);
    memcpy(txn + 11, e, n);
    txn[11 + n] = 0x90;
    int a = raw_status(set, 8 + n, KV_PROTO_SET);
    int b = raw_status(exp, 5 + n, KV_PROTO_EXPIRE);
    int c = raw_status(txn, 12 + n, KV_PROTO_TXN);
    cr_assert(a == b && b == c, "SET %d, EXPIRE %d, TXN %d", a, b, c);
    return a;
}

Test(expiry, bad_expiries_change_nothing)
{
    kvd_start(NULL);
    kv_client *c = test_client(NULL);
    uint64_t v0 = 0;
    cr_assert_eq(kv_client_set(c, "k", 1, "orig", 4, &v0), KV_OK);
    /* refused by the client before sending */
    cr_assert_eq(kv_client_set_ttl(c, "k", 1, "x", 1, 0, NULL), KV_INVALID_ARGUMENT);
    cr_assert_eq(kv_client_set_ttl(c, "k", 1, "x", 1, (1ull << 52) + 1, NULL),
                 KV_INVALID_ARGUMENT);
    cr_assert_eq(kv_client_expire_ttl(c, "k", 1, 0, NULL), KV_INVALID_ARGUMENT);
    /* refused by the server: [mode, ms] out of range or of the wrong type */
    static const unsigned char zero[] = {0x92, 0x00, 0x00};          /* [0, 0]     */
    static const unsigned char mode[] = {0x92, 0x02, 0x05};          /* [2, 5]     */
    static const unsigned char big[] = {0x92, 0x00, 0xcf, 0x00, 0x10, 0, 0, 0, 0, 0, 1};
    static const unsigned char neg[] = {0x92, 0x00, 0xff};           /* [0, -1]    */
    static const unsigned char str[] = {0x92, 0x00, 0xa2, '1', '0'}; /* [0, "10"]  */
    static const unsigned char one[] = {0x91, 0x00};                 /* [0]        */
    static const unsigned char num[] = {0x0a};                       /* 10         */
    cr_assert_eq(with_expiry(zero, sizeof zero), KV_INVALID_ARGUMENT);
    cr_assert_eq(with_expiry(mode, sizeof mode), KV_INVALID_ARGUMENT);
    cr_assert_eq(with_expiry(big, sizeof big), KV_INVALID_ARGUMENT);
    cr_assert_eq(with_expiry(neg, sizeof neg), KV_PROTOCOL);
    cr_assert_eq(with_expiry(str, sizeof str), KV_PROTOCOL);
    cr_assert_eq(with_expiry(one, sizeof one), KV_PROTOCOL);
    cr_assert_eq(with_expiry(num, sizeof num), KV_PROTOCOL);
    kv_value v = {0};
    uint64_t at = 1;
    cr_assert_eq(kv_client_get(c, "k", 1, &v), KV_OK);
    cr_assert(v.len == 4 && memcmp(v.data, "orig", 4) == 0 && v.version == v0,
              "no bad expiry changed anything");
    kv_client_value_free(&v);
    cr_assert_eq(kv_client_ttl(c, "k", 1, &at, NULL), KV_OK);
    cr_assert_eq(at, 0);
    /* the same frames with a good expiry work (so the bad ones were
     * refused for their expiry alone) */
    static const unsigned char good[] = {0x92, 0x00, 0xce, 0x00, 0x36, 0xee, 0x80}; /* 1 h */
    cr_assert_eq(with_expiry(good, sizeof good), KV_OK);
    cr_assert_eq(kv_client_get(c, "k", 1, &v), KV_OK);
    cr_assert_eq(v.len, 1);
    cr_assert_eq(memcmp(v.data, "x", 1), 0, "the good TXN wrote last");
    kv_client_value_free(&v);
    kv_client_close(c);
    kvd_stop();
}

Test(expiry, older_versions_refuse_expiry)
{
    kvd_start(NULL);
    /* no HELLO (version 1), then version 3: the new ops are unknown, an
     * expiry argument malformed; after HELLO 4 they work */
    for (int hv = 0; hv <= 4; hv += 3) {
        kv_proto_request reqs[5] = {
            {.op = KV_PROTO_HELLO, .id = 1, .min_version = hv ? (uint64_t)hv : 1,
             .max_version = hv ? (uint64_t)hv : 1},
            {.op = KV_PROTO_TTL, .id = 2, .key = {"k", 1}},
            {.op = KV_PROTO_SET, .id = 3, .key = {"k", 1}, .value = {"v", 1}, .has_expiry = 1,
             .expiry_mode = KV_PROTO_EXPIRY_IN, .expiry_ms = 1000},
            {.op = KV_PROTO_PERSIST, .id = 4, .key = {"k", 1}},
            {.op = KV_PROTO_EXPIRE, .id = 5, .key = {"k", 1}, .expiry_ms = 1000}};
        int st[5];
        exchange(reqs, 5, st);
        cr_assert_eq(st[0], KV_OK);
        if (hv < 4) {
            cr_assert_eq(st[1], KV_UNSUPPORTED, "TTL in version %d", hv ? hv : 1);
            cr_assert_eq(st[2], KV_PROTOCOL, "an expiry in version %d", hv ? hv : 1);
            cr_assert_eq(st[3], KV_UNSUPPORTED);
            cr_assert_eq(st[4], KV_UNSUPPORTED);
        } else {
            cr_assert_eq(st[1], KV_NOT_FOUND, "TTL of an absent key");
            cr_assert_eq(st[2], KV_OK);
            cr_assert_eq(st[3], KV_OK);
            cr_assert_eq(st[4], KV_OK);
        }
    }
    kvd_stop();
}

/* ---- a server of protocol version 3: answers HELLO, then anything it is
 * sent with status 31 (a client must not get that far) ---------------------- */

typedef struct old_server {
    int lfd, port, requests_after_hello;
} old_server;

static void *old_server_run(void *arg)
{
    old_server *o = arg;
    int fd = accept(o->lfd, NULL, NULL);
    if (fd < 0)
        return NULL;
    struct timeval tv = {20, 0};
    setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
    uint8_t *body;
    long n;
    while ((n = raw_recv_frame(fd, &body)) > 0) {
        kv_proto_request q;
        kv_proto_request_decode(body, (size_t)n, NULL, NULL, &q);
        kv_proto_buf out = {0};
        if (q.op == KV_PROTO_HELLO) {
            kv_proto_resp_hello(&out, q.id, 3, "kvd", "0.0.3");
        } else {
            o->requests_after_hello++;
            kv_proto_resp_status(&out, q.id, q.op == KV_PROTO_GET ? KV_NOT_FOUND : KV_UNSUPPORTED,
                                 "unknown op");
        }
        kv_proto_request_free(&q);
        free(body);
        raw_send(fd, out.data, out.len);
        kv_proto_buf_free(&out);
    }
    close(fd);
    return NULL;
}

Test(expiry, new_client_and_an_older_server)
{
    old_server o = {0};
    o.lfd = socket(AF_INET, SOCK_STREAM, 0);
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    cr_assert_eq(bind(o.lfd, (struct sockaddr *)&a, sizeof a), 0);
    socklen_t al = sizeof a;
    getsockname(o.lfd, (struct sockaddr *)&a, &al);
    cr_assert_eq(listen(o.lfd, 1), 0);
    pthread_t th;
    pthread_create(&th, NULL, old_server_run, &o);
    kv_client_options opts;
    kv_client_options_init(&opts);
    opts.host = "127.0.0.1";
    opts.port = ntohs(a.sin_port);
    kv_client *c = NULL;
    cr_assert_eq(kv_client_open(&opts, &c), KV_OK);
    cr_assert_eq(kv_client_protocol_version(c), 3);
    uint64_t at;
    cr_assert_eq(kv_client_ttl(c, "k", 1, &at, NULL), KV_UNSUPPORTED);
    cr_assert(kv_client_last_error_local(c), "refused without sending");
    cr_assert_not_null(strstr(kv_client_last_error(c), "version 4"), "%s",
                       kv_client_last_error(c));
    cr_assert_eq(kv_client_set_ttl(c, "k", 1, "v", 1, 1000, NULL), KV_UNSUPPORTED);
    cr_assert_eq(kv_client_persist(c, "k", 1, NULL), KV_UNSUPPORTED);
    kv_op op = {.kind = KV_OP_SET, .key = "k", .klen = 1, .value = "v", .vlen = 1,
                .expire_at_ms = 5};
    kv_txn_result res;
    cr_assert_eq(kv_client_txn(c, NULL, 0, &op, 1, NULL, 0, &res), KV_UNSUPPORTED);
    cr_assert_eq(kv_client_txn_ttl(c, NULL, 0, &op, 1, NULL, 0, &res), KV_UNSUPPORTED);
    /* the pipeline refuses them when queued: nothing is sent */
    kv_client_pipeline *p;
    cr_assert_eq(kv_client_pipeline_new(c, &p), KV_OK);
    cr_assert_eq(kv_client_pipeline_ttl(p, "k", 1), KV_UNSUPPORTED);
    cr_assert(kv_client_last_error_local(c));
    cr_assert_eq(kv_client_pipeline_set_ttl(p, "k", 1, "v", 1, 1000), KV_UNSUPPORTED);
    cr_assert_eq(kv_client_pipeline_persist(p, "k", 1), KV_UNSUPPORTED);
    cr_assert_eq(kv_client_pipeline_expire_ttl(p, "k", 1, 1000), KV_UNSUPPORTED);
    cr_assert_eq(kv_client_pipeline_txn_ttl(p, NULL, 0, &op, 1, NULL, 0), KV_UNSUPPORTED);
    cr_assert_eq(kv_client_pipeline_count(p), 0);
    kv_client_pipeline_free(p);
    /* the connection is still good for what version 3 has */
    cr_assert_eq(get_status(c, "k"), KV_NOT_FOUND);
    kv_client_close(c);
    pthread_join(th, NULL);
    close(o.lfd);
    cr_assert_eq(o.requests_after_hello, 1, "only the GET was sent");
}
