/*
 * test_fuzz.c - robustness of both decoders: every truncation of every
 * valid frame, random byte mutations, random garbage, and a differential
 * check against msgpack-c (what we accept must be one standard MessagePack
 * value). Run under ASan/UBSan, any out-of-bounds read or leak fails it;
 * decodes use exact-size heap copies so over-reads are caught.
 */
#include "prototest.h"

typedef struct sample {
    int is_request;
    int op;
    uint8_t *body;
    size_t len;
} sample;

enum { MAXS = 64 };
static sample corpus[MAXS];
static int ncorpus;

static void add(kv_proto_buf *b, int is_request, int op)
{
    const uint8_t *body;
    size_t len;
    pt_body(b, &body, &len);
    cr_assert_lt(ncorpus, MAXS);
    corpus[ncorpus++] = (sample){is_request, op, pt_copy(body, len), len};
    kv_proto_buf_reset(b);
}

static void add_req(kv_proto_buf *b, kv_proto_request q)
{
    cr_assert_eq(kv_proto_request_encode(b, &q), KV_OK);
    add(b, 1, q.op);
}

static void build_corpus(void)
{
    kv_proto_buf b = {0};
    static const char bk[] = {'k', '\0', 'y'};
    kv_key keys[3] = {{"a", 1}, {bk, 3}, {"ccc", 3}};
    kv_pair pairs[2] = {{"a", 1, "1", 1}, {bk, 3, "", 0}};
    kv_compare cmps[4] = {
        {.kind = KV_CMP_VERSION_EQ, .key = "a", .klen = 1, .version = 300},
        {.kind = KV_CMP_EXISTS, .key = "b", .klen = 1},
        {.kind = KV_CMP_ABSENT, .key = "c", .klen = 1},
        {.kind = KV_CMP_VALUE_EQ, .key = "d", .klen = 1, .value = "x",
         .vlen = 1}};
    kv_op ops[3] = {{KV_OP_GET, "a", 1, NULL, 0, 0},
                    {KV_OP_SET, "b", 1, "v", 1, 0},
                    {KV_OP_DELETE, "c", 1, NULL, 0, 0}};
    ncorpus = 0;
    add_req(&b, (kv_proto_request){.op = KV_PROTO_HELLO, .id = 1,
                                   .min_version = 1, .max_version = 1,
                                   .client_name = {"c", 1}});
    add_req(&b, (kv_proto_request){.op = KV_PROTO_PING, .id = 2});
    add_req(&b, (kv_proto_request){.op = KV_PROTO_PING, .id = 2,
                                   .has_payload = 1, .payload = {"p", 1}});
    add_req(&b, (kv_proto_request){.op = KV_PROTO_AUTH, .id = 3,
                                   .secret = {"pw", 2}});
    add_req(&b, (kv_proto_request){.op = KV_PROTO_GET, .id = 300,
                                   .key = {bk, 3}});
    add_req(&b, (kv_proto_request){.op = KV_PROTO_MGET, .id = 70000,
                                   .keys = keys, .nkeys = 3});
    add_req(&b, (kv_proto_request){.op = KV_PROTO_SET, .id = 5,
                                   .key = {"k", 1}, .value = {bk, 3},
                                   .has_expected = 1, .expected = 1u << 20});
    add_req(&b, (kv_proto_request){.op = KV_PROTO_MSET, .id = 6,
                                   .pairs = pairs, .npairs = 2});
    add_req(&b, (kv_proto_request){.op = KV_PROTO_DEL, .id = 7, .keys = keys,
                                   .nkeys = 2});
    add_req(&b, (kv_proto_request){.op = KV_PROTO_TXN, .id = 8, .cmps = cmps,
                                   .ncmps = 4, .then_ops = ops, .nthen = 3,
                                   .else_ops = ops, .nelse = 2});
    add_req(&b, (kv_proto_request){.op = KV_PROTO_SCAN, .id = 9,
                                   .key = {"p", 1}, .cursor = 5,
                                   .limit = 10});
    add_req(&b, (kv_proto_request){.op = KV_PROTO_METRICS, .id = 10});

    cr_assert_eq(kv_proto_resp_status(&b, 1, KV_NOT_FOUND, "nope"), KV_OK);
    add(&b, 0, KV_PROTO_GET);
    cr_assert_eq(kv_proto_resp_hello(&b, 1, 1, "kvd", "0.1.0"), KV_OK);
    add(&b, 0, KV_PROTO_HELLO);
    cr_assert_eq(kv_proto_resp_value(&b, 1, bk, 3, 9), KV_OK);
    add(&b, 0, KV_PROTO_GET);
    cr_assert_eq(kv_proto_resp_del(&b, 1, 2, 9), KV_OK);
    add(&b, 0, KV_PROTO_DEL);
    kv_value vals[2] = {{(void *)"v", 1, 4}, {NULL, 0, 0}};
    cr_assert_eq(kv_proto_resp_mget(&b, 1, vals, 2), KV_OK);
    add(&b, 0, KV_PROTO_MGET);
    kv_op_result res[2] = {{KV_OK, {(void *)"v", 1, 3}},
                           {KV_NOT_FOUND, {NULL, 0, 0}}};
    kv_txn_result t = {1, 4, 2, res};
    cr_assert_eq(kv_proto_resp_txn(&b, 1, &t), KV_OK);
    add(&b, 0, KV_PROTO_TXN);
    kv_proto_scan_writer w;
    cr_assert_eq(kv_proto_resp_scan_begin(&b, 1, &w), KV_OK);
    cr_assert_eq(kv_proto_resp_scan_add(&w, "k", 1, "v", 1, 2), KV_OK);
    cr_assert_eq(kv_proto_resp_scan_end(&w, 3), KV_OK);
    add(&b, 0, KV_PROTO_SCAN);
    kv_metrics m = {0};
    kv_proto_metric lat = {.name = "get", .kind = KV_PROTO_METRIC_DOUBLE,
                           .d = 1.5};
    kv_proto_metric ex = {.name = "lat", .kind = KV_PROTO_METRIC_MAP,
                          .children = &lat, .nchildren = 1};
    cr_assert_eq(kv_proto_resp_metrics(&b, 1, &m, &ex, 1), KV_OK);
    add(&b, 0, KV_PROTO_METRICS);
    kv_proto_buf_free(&b);
}

static void free_corpus(void)
{
    for (int i = 0; i < ncorpus; i++)
        free(corpus[i].body);
    ncorpus = 0;
}

/* Decodes p[0..n) as the sample's kind; returns the status. */
static int decode(const sample *s, const uint8_t *p, size_t n,
                  kv_proto_arena *arena)
{
    uint8_t *copy = pt_copy(p, n);
    int rc;
    if (s->is_request) {
        kv_proto_request d;
        rc = kv_proto_request_decode(copy, n, NULL, arena, &d);
        if (rc != KV_OK && d.error == NULL)
            cr_assert_fail("request error %d without a detail", rc);
        kv_proto_request_free(&d);
    } else {
        kv_proto_response d;
        rc = kv_proto_response_decode(copy, n, s->op, arena, &d);
        if (rc != KV_OK && d.error == NULL)
            cr_assert_fail("response error %d without a detail", rc);
        kv_proto_response_free(&d);
    }
    free(copy);
    return rc;
}

static int allowed(int rc)
{
    switch (rc) {
    case KV_OK: case KV_PROTOCOL: case KV_UNSUPPORTED: case KV_KEY_EMPTY:
    case KV_KEY_TOO_LARGE: case KV_VALUE_TOO_LARGE: case KV_INVALID_ARGUMENT:
        return 1;
    default:
        return 0;
    }
}

Test(fuzz, corpus_decodes)
{
    build_corpus();
    for (int i = 0; i < ncorpus; i++)
        cr_expect_eq(decode(&corpus[i], corpus[i].body, corpus[i].len, NULL),
                     KV_OK, "sample %d", i);
    free_corpus();
}

/* MessagePack is prefix-free: no strict prefix of a valid body is one. */
Test(fuzz, every_truncation_fails)
{
    build_corpus();
    for (int i = 0; i < ncorpus; i++) {
        for (size_t n = 0; n < corpus[i].len; n++) {
            int rc = decode(&corpus[i], corpus[i].body, n, NULL);
            if (rc == KV_OK || !allowed(rc))
                cr_assert_fail("sample %d cut at %zu: %d", i, n, rc);
        }
    }
    free_corpus();
}

static uint64_t rng_state = 0x9e3779b97f4a7c15ull;
static uint64_t rnd(void)
{
    uint64_t x = rng_state;
    x ^= x << 13;
    x ^= x >> 7;
    x ^= x << 17;
    return rng_state = x;
}

Test(fuzz, mutations)
{
    build_corpus();
    kv_proto_arena arena = {0};
    uint8_t buf[512];
    for (int iter = 0; iter < 200000; iter++) {
        const sample *s = &corpus[rnd() % (uint64_t)ncorpus];
        size_t n = s->len;
        memcpy(buf, s->body, n);
        int flips = 1 + (int)(rnd() % 4);
        for (int f = 0; f < flips; f++) {
            size_t at = rnd() % n;
            switch (rnd() % 3) {
            case 0: buf[at] = (uint8_t)rnd(); break;
            case 1: buf[at] ^= (uint8_t)(1u << (rnd() % 8)); break;
            default: buf[at] = (uint8_t[]){0x00, 0x7f, 0xc0, 0xc1, 0xdc,
                                           0xdd, 0xde, 0xdf, 0xc6, 0xdb,
                                           0xff, 0x90}[rnd() % 12];
            }
        }
        if (rnd() % 4 == 0)
            n = rnd() % (n + 1);
        int rc = decode(s, buf, n, &arena);
        if (!allowed(rc))
            cr_assert_fail("rc %d", rc);
        if (iter % 64 == 0)
            kv_proto_arena_reset(&arena);
    }
    kv_proto_arena_free(&arena);
    free_corpus();
}

Test(fuzz, garbage)
{
    uint8_t buf[256];
    sample req = {1, 0, NULL, 0};
    for (int iter = 0; iter < 20000; iter++) {
        size_t n = rnd() % sizeof buf;
        for (size_t i = 0; i < n; i++)
            buf[i] = (uint8_t)rnd();
        /* often start like a request so the decoder gets further */
        if (n > 2 && iter % 2) {
            buf[0] = (uint8_t)(0x92 + rnd() % 4);
            buf[1] = (uint8_t)(rnd() % 12);
        }
        if (!allowed(decode(&req, buf, n, NULL)))
            cr_assert_fail("request garbage %d", iter);
        for (int op = 0; op < KV_PROTO_OP_COUNT; op++) {
            sample resp = {0, op, NULL, 0};
            if (n > 2 && iter % 2)
                buf[0] = 0x93;
            if (!allowed(decode(&resp, buf, n, NULL)))
                cr_assert_fail("response garbage %d op %d", iter, op);
        }
    }
}

/* What our reader accepts, msgpack-c must parse as exactly one value. */
Test(fuzz, differential_with_msgpack_c)
{
    build_corpus();
    uint8_t buf[512];
    int accepted = 0;
    for (int iter = 0; iter < 20000; iter++) {
        const sample *s = &corpus[rnd() % (uint64_t)ncorpus];
        memcpy(buf, s->body, s->len);
        buf[rnd() % s->len] ^= (uint8_t)(1u << (rnd() % 8));
        if (decode(s, buf, s->len, NULL) != KV_OK)
            continue;
        accepted++;
        msgpack_unpacked u;
        size_t off = 0;
        msgpack_unpacked_init(&u);
        if (msgpack_unpack_next(&u, (const char *)buf, s->len, &off) !=
                MSGPACK_UNPACK_SUCCESS ||
            off != s->len)
            cr_assert_fail("accepted what msgpack-c rejects (iter %d)", iter);
        msgpack_unpacked_destroy(&u);
    }
    cr_expect_gt(accepted, 0);
    free_corpus();
}
