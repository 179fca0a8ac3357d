/*
 * test_request.c - requests: encode/decode round trips of every op, and
 * the decoder's validation (docs/protocol.md sections 3, 4 and 6).
 */
#include "prototest.h"

static const char BINKEY[] = {'a', '\0', 'b', '\0', '\xff'};
static const char BINVAL[] = {'\0', '\0', 'x', '\x80', '\0'};

Test(request, hello_ping_auth_metrics)
{
    kv_proto_request q = {.op = KV_PROTO_HELLO, .id = 1, .min_version = 1,
                          .max_version = 3, .client_name = {"cli", 3}};
    kv_proto_request d;
    uint8_t *body = pt_roundtrip_req(&q, &d);
    cr_expect_eq(d.min_version, 1);
    cr_expect_eq(d.max_version, 3);
    cr_expect(pt_bytes_eq(d.client_name.data, d.client_name.len, "cli", 3));
    kv_proto_request_free(&d);
    free(body);

    q = (kv_proto_request){.op = KV_PROTO_HELLO, .id = 2, .min_version = 1,
                           .max_version = 1};
    body = pt_roundtrip_req(&q, &d);
    cr_expect_eq(d.client_name.len, 0);
    free(body);

    q = (kv_proto_request){.op = KV_PROTO_PING, .id = UINT64_MAX};
    body = pt_roundtrip_req(&q, &d);
    cr_expect_eq(d.has_payload, 0);
    free(body);

    q = (kv_proto_request){.op = KV_PROTO_PING, .id = 3, .has_payload = 1,
                           .payload = {BINVAL, sizeof BINVAL}};
    body = pt_roundtrip_req(&q, &d);
    cr_expect_eq(d.has_payload, 1);
    cr_expect(pt_bytes_eq(d.payload.data, d.payload.len, BINVAL,
                          sizeof BINVAL));
    free(body);

    q = (kv_proto_request){.op = KV_PROTO_AUTH, .id = 4,
                           .secret = {"s3cret", 6}};
    body = pt_roundtrip_req(&q, &d);
    cr_expect(pt_bytes_eq(d.secret.data, d.secret.len, "s3cret", 6));
    free(body);

    q = (kv_proto_request){.op = KV_PROTO_METRICS, .id = 5};
    body = pt_roundtrip_req(&q, &d);
    free(body);
}

Test(request, get_set_binary)
{
    kv_proto_request q = {.op = KV_PROTO_GET, .id = 10,
                          .key = {BINKEY, sizeof BINKEY}};
    kv_proto_request d;
    uint8_t *body = pt_roundtrip_req(&q, &d);
    cr_expect(pt_bytes_eq(d.key.data, d.key.len, BINKEY, sizeof BINKEY));
    /* zero-copy: the key points into the body */
    cr_expect((const uint8_t *)d.key.data > body);
    free(body);

    q = (kv_proto_request){.op = KV_PROTO_SET, .id = 11,
                           .key = {BINKEY, sizeof BINKEY},
                           .value = {BINVAL, sizeof BINVAL}};
    body = pt_roundtrip_req(&q, &d);
    cr_expect(pt_bytes_eq(d.value.data, d.value.len, BINVAL, sizeof BINVAL));
    cr_expect_eq(d.has_expected, 0);
    free(body);

    /* CAS with 0 = must not exist, and an empty value */
    q = (kv_proto_request){.op = KV_PROTO_SET, .id = 12, .key = {"k", 1},
                           .value = {"", 0}, .has_expected = 1,
                           .expected = 0};
    body = pt_roundtrip_req(&q, &d);
    cr_expect_eq(d.has_expected, 1);
    cr_expect_eq(d.expected, 0);
    cr_expect_eq(d.value.len, 0);
    free(body);

    q.expected = UINT64_MAX - 1;
    body = pt_roundtrip_req(&q, &d);
    cr_expect_eq(d.expected, UINT64_MAX - 1);
    free(body);
}

Test(request, mget_mset_del)
{
    kv_key keys[3] = {{"a", 1}, {BINKEY, sizeof BINKEY}, {"ccc", 3}};
    kv_proto_request q = {.op = KV_PROTO_MGET, .id = 20, .keys = keys,
                          .nkeys = 3};
    kv_proto_request d;
    uint8_t *body = pt_roundtrip_req(&q, &d);
    cr_assert_eq(d.nkeys, 3);
    for (int i = 0; i < 3; i++)
        cr_expect(pt_bytes_eq(d.keys[i].data, d.keys[i].len, keys[i].data,
                              keys[i].len));
    kv_proto_request_free(&d);
    free(body);

    q.op = KV_PROTO_DEL;
    body = pt_roundtrip_req(&q, &d);
    cr_assert_eq(d.nkeys, 3);
    kv_proto_request_free(&d);
    free(body);

    kv_pair pairs[2] = {{"k1", 2, BINVAL, sizeof BINVAL},
                        {BINKEY, sizeof BINKEY, "", 0}};
    q = (kv_proto_request){.op = KV_PROTO_MSET, .id = 21, .pairs = pairs,
                           .npairs = 2};
    body = pt_roundtrip_req(&q, &d);
    cr_assert_eq(d.npairs, 2);
    for (int i = 0; i < 2; i++) {
        cr_expect(pt_bytes_eq(d.pairs[i].key, d.pairs[i].klen, pairs[i].key,
                              pairs[i].klen));
        cr_expect(pt_bytes_eq(d.pairs[i].val, d.pairs[i].vlen, pairs[i].val,
                              pairs[i].vlen));
    }
    kv_proto_request_free(&d);
    free(body);
}

Test(request, txn)
{
    kv_compare cmps[4] = {
        {.kind = KV_CMP_VERSION_EQ, .key = "a", .klen = 1, .version = 77},
        {.kind = KV_CMP_EXISTS, .key = "b", .klen = 1},
        {.kind = KV_CMP_ABSENT, .key = BINKEY, .klen = sizeof BINKEY},
        {.kind = KV_CMP_VALUE_EQ, .key = "d", .klen = 1, .value = BINVAL,
         .vlen = sizeof BINVAL}};
    kv_op then_ops[3] = {{KV_OP_GET, "a", 1, NULL, 0, 0},
                         {KV_OP_SET, "b", 1, "vv", 2, 0},
                         {KV_OP_DELETE, "c", 1, NULL, 0, 0}};
    kv_op else_ops[1] = {{KV_OP_SET, "e", 1, "", 0, 0}};
    kv_proto_request q = {.op = KV_PROTO_TXN, .id = 30, .cmps = cmps,
                          .ncmps = 4, .then_ops = then_ops, .nthen = 3,
                          .else_ops = else_ops, .nelse = 1};
    kv_proto_arena arena;
    kv_proto_arena_init(&arena);
    kv_proto_buf b = {0};
    cr_assert_eq(kv_proto_request_encode(&b, &q), KV_OK);
    const uint8_t *body;
    size_t len;
    pt_body(&b, &body, &len);
    kv_proto_request d;
    cr_assert_eq(kv_proto_request_decode(body, len, NULL, &arena, &d), KV_OK);
    cr_assert_eq(d.ncmps, 4);
    for (int i = 0; i < 4; i++) {
        cr_expect_eq(d.cmps[i].kind, cmps[i].kind);
        cr_expect(pt_bytes_eq(d.cmps[i].key, d.cmps[i].klen, cmps[i].key,
                              cmps[i].klen));
    }
    cr_expect_eq(d.cmps[0].version, 77);
    cr_expect(pt_bytes_eq(d.cmps[3].value, d.cmps[3].vlen, BINVAL,
                          sizeof BINVAL));
    cr_assert_eq(d.nthen, 3);
    cr_assert_eq(d.nelse, 1);
    for (int i = 0; i < 3; i++) {
        cr_expect_eq(d.then_ops[i].kind, then_ops[i].kind);
        cr_expect(pt_bytes_eq(d.then_ops[i].key, d.then_ops[i].klen,
                              then_ops[i].key, 1));
    }
    cr_expect(pt_bytes_eq(d.then_ops[1].value, d.then_ops[1].vlen, "vv", 2));
    cr_expect_eq(d.else_ops[0].vlen, 0);
    kv_proto_request_free(&d); /* no-op: arena memory */

    /* empty lists */
    q = (kv_proto_request){.op = KV_PROTO_TXN, .id = 31};
    kv_proto_buf_reset(&b);
    cr_assert_eq(kv_proto_request_encode(&b, &q), KV_OK);
    pt_body(&b, &body, &len);
    cr_assert_eq(kv_proto_request_decode(body, len, NULL, &arena, &d), KV_OK);
    cr_expect_eq(d.ncmps + d.nthen + d.nelse, 0);

    kv_proto_arena_reset(&arena);
    kv_proto_arena_free(&arena);
    kv_proto_buf_free(&b);
}

Test(request, scan)
{
    kv_proto_request q = {.op = KV_PROTO_SCAN, .id = 40,
                          .key = {"user:", 5}, .cursor = 1ull << 40,
                          .limit = 100};
    kv_proto_request d;
    uint8_t *body = pt_roundtrip_req(&q, &d);
    cr_expect(pt_bytes_eq(d.key.data, d.key.len, "user:", 5));
    cr_expect_eq(d.cursor, 1ull << 40);
    cr_expect_eq(d.limit, 100);
    free(body);

    q.key.len = 0; /* empty prefix is fine */
    body = pt_roundtrip_req(&q, &d);
    cr_expect_eq(d.key.len, 0);
    free(body);
}

/* Version 2: SCAN's optional keys_only boolean. */
Test(request, scan_keys_only)
{
    kv_proto_request q = {.op = KV_PROTO_SCAN, .id = 41, .key = {"p", 1},
                          .cursor = 9, .limit = 5, .keys_only = 1};
    kv_proto_request d;
    uint8_t *body = pt_roundtrip_req(&q, &d);
    cr_expect_eq(d.keys_only, 1);
    cr_expect_eq(d.has_keys_only, 1);
    cr_expect_eq(d.cursor, 9);
    free(body);

    q.keys_only = 0; /* left out: the version 1 shape */
    body = pt_roundtrip_req(&q, &d);
    cr_expect_eq(d.keys_only, 0);
    cr_expect_eq(d.has_keys_only, 0);
    free(body);

    /* [9, 42, "p", 0, 0, false] */
    const uint8_t no[] = {0x96, 0x09, 0x2a, 0xa1, 'p', 0x00, 0x00, 0xc2};
    cr_expect_eq(pt_decode_bytes_req(no, sizeof no, &d), KV_OK);
    cr_expect_eq(d.has_keys_only, 1);
    cr_expect_eq(d.keys_only, 0);
    /* keys_only must be a boolean; the id was read */
    const uint8_t bad[] = {0x96, 0x09, 0x2a, 0xa1, 'p', 0x00, 0x00, 0x01};
    cr_expect_eq(pt_decode_bytes_req(bad, sizeof bad, &d), KV_PROTOCOL);
    cr_expect_eq(d.has_id, 1);
    cr_expect_eq(d.id, 42);
    /* at most 4 arguments */
    const uint8_t many[] = {0x97, 0x09, 0x2a, 0xa1, 'p', 0x00, 0x00, 0xc3, 0xc3};
    cr_expect_eq(pt_decode_bytes_req(many, sizeof many, &d), KV_PROTOCOL);
}

Test(request, str_and_bin_keys_both_accepted)
{
    pt_raw r;
    kv_proto_request d;
    pt_raw_init(&r);
    msgpack_pack_array(&r.pk, 3);
    msgpack_pack_uint8(&r.pk, KV_PROTO_GET);
    msgpack_pack_uint8(&r.pk, 9);
    pt_raw_str(&r, "foo");
    uint8_t *copy = pt_copy(r.sb.data, r.sb.size);
    cr_assert_eq(kv_proto_request_decode(copy, r.sb.size, NULL, NULL, &d),
                 KV_OK);
    cr_expect(pt_bytes_eq(d.key.data, d.key.len, "foo", 3));
    free(copy);
    pt_raw_free(&r);

    /* bin key, and ids / ops in wider int encodings */
    pt_raw_init(&r);
    msgpack_pack_array(&r.pk, 3);
    msgpack_pack_fix_uint64(&r.pk, KV_PROTO_GET);
    msgpack_pack_fix_int32(&r.pk, 9);
    pt_raw_bin(&r, "foo", 3);
    copy = pt_copy(r.sb.data, r.sb.size);
    cr_assert_eq(kv_proto_request_decode(copy, r.sb.size, NULL, NULL, &d),
                 KV_OK);
    cr_expect_eq(d.id, 9);
    cr_expect(pt_bytes_eq(d.key.data, d.key.len, "foo", 3));
    free(copy);
    pt_raw_free(&r);
}

/* Builds [op, id, <one extra element from fn>]. */
static int decode_with(int op, uint64_t id, void (*fn)(pt_raw *),
                       kv_proto_request *d)
{
    pt_raw r;
    pt_raw_init(&r);
    msgpack_pack_array(&r.pk, fn ? 3 : 2);
    msgpack_pack_uint64(&r.pk, (uint64_t)op);
    msgpack_pack_uint64(&r.pk, id);
    if (fn)
        fn(&r);
    int rc = pt_decode_raw_req(&r, d);
    pt_raw_free(&r);
    return rc;
}

static void arg_int(pt_raw *r) { msgpack_pack_int(&r->pk, 5); }
static void arg_nil(pt_raw *r) { msgpack_pack_nil(&r->pk); }
static void arg_ext(pt_raw *r)
{
    msgpack_pack_ext(&r->pk, 1, 1);
    msgpack_pack_ext_body(&r->pk, "k", 1);
}
static void arg_map(pt_raw *r) { msgpack_pack_map(&r->pk, 0); }
static void arg_empty_keys(pt_raw *r) { msgpack_pack_array(&r->pk, 0); }
static void arg_odd_pairs(pt_raw *r)
{
    msgpack_pack_array(&r->pk, 3);
    pt_raw_bin(r, "a", 1);
    pt_raw_bin(r, "b", 1);
    pt_raw_bin(r, "c", 1);
}
static void arg_empty_key(pt_raw *r) { pt_raw_bin(r, "", 0); }

Test(request, wrong_types_are_protocol_errors_with_id)
{
    kv_proto_request d;
    cr_expect_eq(decode_with(KV_PROTO_GET, 7, arg_int, &d), KV_PROTOCOL);
    cr_expect_eq(d.has_id, 1);
    cr_expect_eq(d.id, 7);
    cr_expect_eq(d.op, KV_PROTO_GET);
    cr_expect_not_null(d.error);
    cr_expect_eq(decode_with(KV_PROTO_GET, 7, arg_nil, &d), KV_PROTOCOL);
    cr_expect_eq(decode_with(KV_PROTO_GET, 7, arg_ext, &d), KV_PROTOCOL);
    cr_expect_eq(decode_with(KV_PROTO_GET, 7, arg_map, &d), KV_PROTOCOL);
    cr_expect_eq(decode_with(KV_PROTO_GET, 7, NULL, &d), KV_PROTOCOL);
    cr_expect_eq(decode_with(KV_PROTO_MGET, 7, arg_int, &d), KV_PROTOCOL);
    cr_expect_eq(decode_with(KV_PROTO_DEL, 7, arg_empty_keys, &d),
                 KV_PROTOCOL);
    cr_expect_eq(decode_with(KV_PROTO_MGET, 7, arg_empty_keys, &d), KV_OK);
    cr_expect_eq(decode_with(KV_PROTO_MSET, 7, arg_odd_pairs, &d),
                 KV_PROTOCOL);
    cr_expect_eq(decode_with(KV_PROTO_METRICS, 7, arg_nil, &d), KV_PROTOCOL);
    cr_expect_eq(decode_with(KV_PROTO_TXN, 7, arg_nil, &d), KV_PROTOCOL);
    cr_expect_eq(decode_with(KV_PROTO_AUTH, 7, NULL, &d), KV_PROTOCOL);
    cr_expect_eq(decode_with(KV_PROTO_GET, 7, arg_empty_key, &d),
                 KV_KEY_EMPTY);
    cr_expect_eq(d.has_id, 1);
}

Test(request, unknown_op_is_unsupported_with_id)
{
    kv_proto_request d;
    cr_expect_eq(decode_with(99, 1234, NULL, &d), KV_UNSUPPORTED);
    cr_expect_eq(d.has_id, 1);
    cr_expect_eq(d.id, 1234);
    cr_expect_eq(decode_with(KV_PROTO_OP_COUNT, 5, arg_int, &d),
                 KV_UNSUPPORTED);
    cr_expect_eq(decode_with(-1 /* huge */, 5, NULL, &d), KV_UNSUPPORTED);
}

Test(request, envelope_errors_have_no_id)
{
    kv_proto_request d;
    pt_raw r;

    /* not an array */
    pt_raw_init(&r);
    msgpack_pack_map(&r.pk, 0);
    cr_expect_eq(pt_decode_raw_req(&r, &d), KV_PROTOCOL);
    cr_expect_eq(d.has_id, 0);
    pt_raw_free(&r);

    /* array of one */
    pt_raw_init(&r);
    msgpack_pack_array(&r.pk, 1);
    msgpack_pack_uint8(&r.pk, 3);
    cr_expect_eq(pt_decode_raw_req(&r, &d), KV_PROTOCOL);
    cr_expect_eq(d.has_id, 0);
    pt_raw_free(&r);

    /* negative id */
    pt_raw_init(&r);
    msgpack_pack_array(&r.pk, 3);
    msgpack_pack_uint8(&r.pk, 3);
    msgpack_pack_int(&r.pk, -1);
    pt_raw_bin(&r, "k", 1);
    cr_expect_eq(pt_decode_raw_req(&r, &d), KV_PROTOCOL);
    cr_expect_eq(d.has_id, 0);
    pt_raw_free(&r);

    /* str id */
    pt_raw_init(&r);
    msgpack_pack_array(&r.pk, 2);
    msgpack_pack_uint8(&r.pk, 1);
    pt_raw_str(&r, "1");
    cr_expect_eq(pt_decode_raw_req(&r, &d), KV_PROTOCOL);
    cr_expect_eq(d.has_id, 0);
    pt_raw_free(&r);

    /* op of the wrong type but a readable id: per-request error */
    pt_raw_init(&r);
    msgpack_pack_array(&r.pk, 2);
    pt_raw_str(&r, "GET");
    msgpack_pack_uint8(&r.pk, 42);
    cr_expect_eq(pt_decode_raw_req(&r, &d), KV_PROTOCOL);
    cr_expect_eq(d.has_id, 1);
    cr_expect_eq(d.id, 42);
    pt_raw_free(&r);

    /* empty body, and a byte that is never valid MessagePack */
    cr_expect_eq(pt_decode_bytes_req("", 0, &d), KV_PROTOCOL);
    cr_expect_eq(pt_decode_bytes_req("\xc1", 1, &d), KV_PROTOCOL);
    cr_expect_eq(d.has_id, 0);
}

Test(request, trailing_bytes)
{
    kv_proto_request q = {.op = KV_PROTO_GET, .id = 5, .key = {"k", 1}};
    kv_proto_buf b = {0};
    cr_assert_eq(kv_proto_request_encode(&b, &q), KV_OK);
    const uint8_t *body;
    size_t len;
    pt_body(&b, &body, &len);
    uint8_t *copy = malloc(len + 1);
    memcpy(copy, body, len);
    copy[len] = 0xc0;
    kv_proto_request d;
    cr_expect_eq(kv_proto_request_decode(copy, len + 1, NULL, NULL, &d),
                 KV_PROTOCOL);
    cr_expect_eq(d.has_id, 1);
    cr_expect_eq(d.id, 5);
    free(copy);
    kv_proto_buf_free(&b);
}

Test(request, oversized_counts_are_rejected_before_allocating)
{
    kv_proto_request d;
    /* outer array claims 2^32-1 elements */
    const uint8_t outer[] = {0xdd, 0xff, 0xff, 0xff, 0xff, 0x03, 0x01};
    cr_expect_eq(pt_decode_bytes_req(outer, sizeof outer, &d), KV_PROTOCOL);
    cr_expect_eq(d.has_id, 0);
    /* MGET whose key array claims 2^32-1 keys */
    const uint8_t mget[] = {0x93, 0x04, 0x07, 0xdd, 0xff, 0xff, 0xff, 0xff,
                            0xa1, 'k'};
    cr_expect_eq(pt_decode_bytes_req(mget, sizeof mget, &d), KV_PROTOCOL);
    cr_expect_eq(d.has_id, 1);
    cr_expect_eq(d.id, 7);
    /* a key whose bin32 length runs past the frame */
    const uint8_t key[] = {0x93, 0x03, 0x07, 0xc6, 0x7f, 0xff, 0xff, 0xff,
                           'k'};
    cr_expect_eq(pt_decode_bytes_req(key, sizeof key, &d), KV_PROTOCOL);
    /* TXN compares array of 65535 */
    const uint8_t txn[] = {0x95, 0x08, 0x07, 0xdc, 0xff, 0xff, 0x90, 0x90};
    cr_expect_eq(pt_decode_bytes_req(txn, sizeof txn, &d), KV_PROTOCOL);
    /* map count larger than the frame as the op */
    const uint8_t map[] = {0x92, 0xdf, 0xff, 0xff, 0xff, 0xff, 0x01};
    cr_expect_eq(pt_decode_bytes_req(map, sizeof map, &d), KV_PROTOCOL);
    cr_expect_eq(d.has_id, 0);
}

/* An op nested deeper than any valid value is skipped without recursion
 * (a million levels here), so the id after it is still read: [id, 30]
 * and the connection stays, as docs/protocol.md section 6 says. */
Test(request, deep_op_still_gives_the_id)
{
    /* [ [[[[[[[[...]]]]]]]], 7 ] */
    enum { DEPTH = 1000000 };
    uint8_t *p = malloc(DEPTH + 3);
    cr_assert_not_null(p);
    p[0] = 0x92;
    for (int i = 1; i <= DEPTH; i++)
        p[i] = 0x91;
    p[DEPTH + 1] = 0x90;
    p[DEPTH + 2] = 0x07;
    kv_proto_request d;
    cr_expect_eq(pt_decode_bytes_req(p, DEPTH + 3, &d), KV_PROTOCOL);
    cr_expect_eq(d.has_id, 1);
    cr_expect_eq(d.id, 7);
    uint64_t id = 0;
    cr_expect_eq(kv_proto_peek_id(p, DEPTH + 3, &id), 1);
    cr_expect_eq(id, 7);
    /* truncated inside the nesting: no id */
    cr_expect_eq(pt_decode_bytes_req(p, DEPTH, &d), KV_PROTOCOL);
    cr_expect_eq(d.has_id, 0);
    cr_expect_eq(kv_proto_peek_id(p, DEPTH, &id), 0);
    /* a map of arrays as the op, then the id */
    const uint8_t m[] = {0x92, 0x81, 0x91, 0x91, 0x91, 0x91, 0x91, 0x90, 0xc0, 0x09};
    cr_expect_eq(pt_decode_bytes_req(m, sizeof m, &d), KV_PROTOCOL);
    cr_expect_eq(d.has_id, 1);
    cr_expect_eq(d.id, 9);
    free(p);
}

Test(request, txn_kinds)
{
    kv_proto_request d;
    /* [8, 1, [[9, "k"]], [], []]: unknown compare kind */
    const uint8_t bad_cmp[] = {0x95, 0x08, 0x01, 0x91, 0x92, 0x09, 0xa1,
                               'k', 0x90, 0x90};
    cr_expect_eq(pt_decode_bytes_req(bad_cmp, sizeof bad_cmp, &d),
                 KV_INVALID_ARGUMENT);
    cr_expect_eq(d.has_id, 1);
    /* unknown op kind */
    const uint8_t bad_op[] = {0x95, 0x08, 0x01, 0x90, 0x91, 0x92, 0x07,
                              0xa1, 'k', 0x90};
    cr_expect_eq(pt_decode_bytes_req(bad_op, sizeof bad_op, &d),
                 KV_INVALID_ARGUMENT);
    /* version compare without its version */
    const uint8_t short_cmp[] = {0x95, 0x08, 0x01, 0x91, 0x92, 0x00, 0xa1,
                                 'k', 0x90, 0x90};
    cr_expect_eq(pt_decode_bytes_req(short_cmp, sizeof short_cmp, &d),
                 KV_PROTOCOL);
    /* set op without a value */
    const uint8_t short_set[] = {0x95, 0x08, 0x01, 0x90, 0x91, 0x92, 0x01,
                                 0xa1, 'k', 0x90};
    cr_expect_eq(pt_decode_bytes_req(short_set, sizeof short_set, &d),
                 KV_PROTOCOL);
    /* get op with an extra element */
    const uint8_t long_get[] = {0x95, 0x08, 0x01, 0x90, 0x91, 0x93, 0x00,
                                0xa1, 'k', 0xc0, 0x90};
    cr_expect_eq(pt_decode_bytes_req(long_get, sizeof long_get, &d),
                 KV_PROTOCOL);
}

Test(request, limits)
{
    kv_proto_limits lim;
    kv_proto_limits_init(&lim);
    lim.max_key_size = 4;
    lim.max_value_size = 8;
    char big[16] = {0};
    kv_proto_request q = {.op = KV_PROTO_SET, .id = 1, .key = {big, 5},
                          .value = {big, 1}};
    kv_proto_buf b = {0};
    const uint8_t *body;
    size_t len;
    kv_proto_request d;

    cr_assert_eq(kv_proto_request_encode(&b, &q), KV_OK);
    pt_body(&b, &body, &len);
    cr_expect_eq(kv_proto_request_decode(body, len, &lim, NULL, &d),
                 KV_KEY_TOO_LARGE);
    cr_expect_eq(d.has_id, 1);

    q.key.len = 4;
    q.value.len = 9;
    kv_proto_buf_reset(&b);
    cr_assert_eq(kv_proto_request_encode(&b, &q), KV_OK);
    pt_body(&b, &body, &len);
    cr_expect_eq(kv_proto_request_decode(body, len, &lim, NULL, &d),
                 KV_VALUE_TOO_LARGE);

    q.value.len = 8;
    kv_proto_buf_reset(&b);
    cr_assert_eq(kv_proto_request_encode(&b, &q), KV_OK);
    pt_body(&b, &body, &len);
    cr_expect_eq(kv_proto_request_decode(body, len, &lim, NULL, &d), KV_OK);

    /* the default key limit: 64 KiB */
    char *k = calloc(1, KV_DEFAULT_MAX_KEY_SIZE + 1);
    q = (kv_proto_request){.op = KV_PROTO_GET, .id = 2,
                           .key = {k, KV_DEFAULT_MAX_KEY_SIZE + 1}};
    kv_proto_buf_reset(&b);
    cr_assert_eq(kv_proto_request_encode(&b, &q), KV_OK);
    pt_body(&b, &body, &len);
    cr_expect_eq(kv_proto_request_decode(body, len, NULL, NULL, &d),
                 KV_KEY_TOO_LARGE);
    q.key.len = KV_DEFAULT_MAX_KEY_SIZE;
    kv_proto_buf_reset(&b);
    cr_assert_eq(kv_proto_request_encode(&b, &q), KV_OK);
    pt_body(&b, &body, &len);
    cr_expect_eq(kv_proto_request_decode(body, len, NULL, NULL, &d), KV_OK);
    free(k);
    kv_proto_buf_free(&b);
}

Test(request, encode_rejects_bad_input_and_keeps_buffer)
{
    kv_proto_buf b = {0};
    kv_proto_request ok = {.op = KV_PROTO_PING, .id = 1};
    cr_assert_eq(kv_proto_request_encode(&b, &ok), KV_OK);
    size_t len = b.len;

    kv_proto_request q = {.op = 99, .id = 1};
    cr_expect_eq(kv_proto_request_encode(&b, &q), KV_UNSUPPORTED);
    kv_compare c = {.kind = (kv_compare_kind)9, .key = "k", .klen = 1};
    q = (kv_proto_request){.op = KV_PROTO_TXN, .id = 2, .cmps = &c,
                           .ncmps = 1};
    cr_expect_eq(kv_proto_request_encode(&b, &q), KV_INVALID_ARGUMENT);
    q = (kv_proto_request){.op = KV_PROTO_MGET, .id = 3, .nkeys = 2};
    cr_expect_eq(kv_proto_request_encode(&b, &q), KV_INVALID_ARGUMENT);
    cr_expect_eq(b.len, len);
    kv_proto_buf_free(&b);
}

Test(request, many_requests_share_one_arena)
{
    kv_proto_arena arena = {0};
    kv_proto_buf b = {0};
    kv_key keys[64];
    for (int i = 0; i < 64; i++)
        keys[i] = (kv_key){"key", 3};
    for (int round = 0; round < 3; round++) {
        kv_proto_buf_reset(&b);
        for (int i = 0; i < 200; i++) {
            kv_proto_request q = {.op = KV_PROTO_MGET, .id = (uint64_t)i,
                                  .keys = keys, .nkeys = 1 + i % 64};
            cr_assert_eq(kv_proto_request_encode(&b, &q), KV_OK);
        }
        size_t pos = 0, n = 0, off, blen;
        while (kv_proto_frame_split(b.data + pos, b.len - pos, 0, &off,
                                    &blen) == KV_PROTO_FRAME) {
            kv_proto_request d;
            cr_assert_eq(kv_proto_request_decode(b.data + pos + off, blen,
                                                 NULL, &arena, &d),
                         KV_OK);
            cr_expect_eq(d.id, n);
            cr_expect_eq(d.nkeys, 1 + n % 64);
            pos += off + blen;
            n++;
        }
        cr_expect_eq(n, 200);
        cr_expect_eq(pos, b.len);
        kv_proto_arena_reset(&arena);
    }
    kv_proto_arena_free(&arena);
    kv_proto_buf_free(&b);
}

/* Version 4: expiries on SET (with and without expected), MSET and TXN
 * set ops (a time from now marked per op), and TTL, EXPIRE, PERSIST. */
Test(request, expiry_roundtrip)
{
    kv_proto_request q = {.op = KV_PROTO_SET, .id = 1, .key = {"k", 1}, .value = {"v", 1},
                          .has_expiry = 1, .expiry_mode = KV_PROTO_EXPIRY_IN,
                          .expiry_ms = 30000};
    kv_proto_request d;
    uint8_t *copy = pt_roundtrip_req(&q, &d);
    cr_assert(d.has_expiry && !d.has_expected);
    cr_assert_eq(d.expiry_mode, KV_PROTO_EXPIRY_IN);
    cr_assert_eq(d.expiry_ms, 30000);
    kv_proto_request_free(&d);
    free(copy);

    q.has_expected = 1;
    q.expected = 0;
    q.expiry_mode = KV_PROTO_EXPIRY_AT;
    q.expiry_ms = KV_PROTO_EXPIRY_MAX;
    copy = pt_roundtrip_req(&q, &d);
    cr_assert(d.has_expiry && d.has_expected && d.expected == 0);
    cr_assert_eq(d.expiry_mode, KV_PROTO_EXPIRY_AT);
    cr_assert_eq(d.expiry_ms, KV_PROTO_EXPIRY_MAX);
    kv_proto_request_free(&d);
    free(copy);

    kv_pair pairs[2] = {{"a", 1, "1", 1}, {"b", 1, "2", 1}};
    kv_proto_request m = {.op = KV_PROTO_MSET, .id = 2, .pairs = pairs, .npairs = 2,
                          .has_expiry = 1, .expiry_ms = 5};
    copy = pt_roundtrip_req(&m, &d);
    cr_assert(d.has_expiry && d.npairs == 2 && d.expiry_ms == 5);
    kv_proto_request_free(&d);
    free(copy);

    kv_op ops[3] = {{.kind = KV_OP_SET, .key = "a", .klen = 1, .value = "1", .vlen = 1,
                     .expire_at_ms = 1000},
                    {.kind = KV_OP_SET, .key = "b", .klen = 1, .value = "2", .vlen = 1},
                    {.kind = KV_OP_SET, .key = "c", .klen = 1, .value = "3", .vlen = 1,
                     .expire_at_ms = 1700000000000ull}};
    unsigned char in[3] = {1, 0, 0};
    kv_proto_request t = {.op = KV_PROTO_TXN, .id = 3, .then_ops = ops, .nthen = 3,
                          .then_in = in, .else_ops = ops + 2, .nelse = 1};
    copy = pt_roundtrip_req(&t, &d);
    cr_assert(d.has_expiry);
    cr_assert_not_null(d.then_in);
    cr_assert(d.then_in[0] == 1 && d.then_in[1] == 0 && d.then_in[2] == 0);
    cr_assert_null(d.else_in, "no op of else is from now");
    cr_assert_eq(d.then_ops[0].expire_at_ms, 1000);
    cr_assert_eq(d.then_ops[1].expire_at_ms, 0);
    cr_assert_eq(d.then_ops[2].expire_at_ms, 1700000000000ull);
    cr_assert_eq(d.else_ops[0].expire_at_ms, 1700000000000ull);
    kv_proto_request_free(&d);
    free(copy);

    kv_proto_request e = {.op = KV_PROTO_EXPIRE, .id = 4, .key = {"k", 1}, .expiry_ms = 9,
                          .expire_flags = KV_PROTO_EXPIRE_GT | KV_PROTO_EXPIRE_XX};
    copy = pt_roundtrip_req(&e, &d);
    cr_assert(d.has_expiry && d.expiry_ms == 9);
    cr_assert_eq(d.expire_flags, KV_PROTO_EXPIRE_GT | KV_PROTO_EXPIRE_XX);
    kv_proto_request_free(&d);
    free(copy);
    e.expire_flags = KV_PROTO_EXPIRE_NX | KV_PROTO_EXPIRE_LT; /* encodes; the server refuses */
    kv_proto_buf b = {0};
    cr_assert_eq(kv_proto_request_encode(&b, &e), KV_OK);
    const uint8_t *body;
    size_t len;
    pt_body(&b, &body, &len);
    cr_assert_eq(kv_proto_request_decode(body, len, NULL, NULL, &d), KV_INVALID_ARGUMENT);
    cr_assert(d.has_id && d.id == 4);
    kv_proto_request_free(&d);
    kv_proto_buf_free(&b);

    for (int op = KV_PROTO_TTL; op <= KV_PROTO_PERSIST; op += 2) {
        kv_proto_request k = {.op = op, .id = 5, .key = {"key", 3}};
        copy = pt_roundtrip_req(&k, &d);
        cr_assert_eq(d.key.len, 3);
        kv_proto_request_free(&d);
        free(copy);
    }
    /* the encoder refuses what the protocol cannot carry */
    q.expiry_ms = KV_PROTO_EXPIRY_MAX + 1;
    cr_assert_eq(kv_proto_request_encode(&b, &q), KV_INVALID_ARGUMENT);
    q.expiry_ms = 0;
    cr_assert_eq(kv_proto_request_encode(&b, &q), KV_INVALID_ARGUMENT);
    cr_assert_eq(b.len, 0);
    kv_proto_buf_free(&b);
}

/* Version 5: the history ops round-trip, ROLLBACK's target is keys (an
 * array) or a prefix (bytes, empty allowed). */
Test(request, history_ops_roundtrip)
{
    kv_proto_request d;
    kv_proto_request g = {.op = KV_PROTO_GET_AT, .id = 1, .key = {"k", 1}, .revision = 77};
    uint8_t *copy = pt_roundtrip_req(&g, &d);
    cr_expect(pt_bytes_eq(d.key.data, d.key.len, "k", 1));
    cr_expect_eq(d.revision, 77);
    kv_proto_request_free(&d);
    free(copy);

    kv_key keys[2] = {{"a", 1}, {"bb", 2}};
    kv_proto_request m = {.op = KV_PROTO_MGET_AT, .id = 2, .keys = keys, .nkeys = 2,
                          .revision = 1ull << 40};
    copy = pt_roundtrip_req(&m, &d);
    cr_expect_eq(d.nkeys, 2);
    cr_expect(pt_bytes_eq(d.keys[1].data, d.keys[1].len, "bb", 2));
    cr_expect_eq(d.revision, 1ull << 40);
    kv_proto_request_free(&d);
    free(copy);

    kv_proto_request s = {.op = KV_PROTO_SCAN_AT, .id = 3, .key = {"p:", 2}, .revision = 5,
                          .cursor = 9, .limit = 10, .keys_only = 1};
    copy = pt_roundtrip_req(&s, &d);
    cr_expect_eq(d.revision, 5);
    cr_expect_eq(d.cursor, 9);
    cr_expect_eq(d.limit, 10);
    cr_expect(d.keys_only && d.has_keys_only);
    kv_proto_request_free(&d);
    free(copy);

    kv_proto_request h = {.op = KV_PROTO_HISTORY, .id = 4, .key = {"k", 1}, .min_revision = 3,
                          .revision = 8, .limit = 2};
    copy = pt_roundtrip_req(&h, &d);
    cr_expect_eq(d.min_revision, 3);
    cr_expect_eq(d.revision, 8);
    cr_expect_eq(d.limit, 2);
    kv_proto_request_free(&d);
    free(copy);

    kv_proto_request r = {.op = KV_PROTO_ROLLBACK, .id = 5, .keys = keys, .nkeys = 2,
                          .revision = 4, .unchanged_since = 6};
    copy = pt_roundtrip_req(&r, &d);
    cr_expect(!d.has_prefix);
    cr_expect_eq(d.nkeys, 2);
    cr_expect_eq(d.revision, 4);
    cr_expect_eq(d.unchanged_since, 6);
    kv_proto_request_free(&d);
    free(copy);

    kv_proto_request rp = {.op = KV_PROTO_ROLLBACK, .id = 6, .key = {"", 0}, .has_prefix = 1,
                           .revision = 4};
    copy = pt_roundtrip_req(&rp, &d);
    cr_expect(d.has_prefix);
    cr_expect_eq(d.key.len, 0);
    cr_expect_eq(d.nkeys, 0);
    kv_proto_request_free(&d);
    free(copy);

    kv_proto_request c = {.op = KV_PROTO_COMPACT, .id = 7, .revision = 12};
    copy = pt_roundtrip_req(&c, &d);
    cr_expect_eq(d.revision, 12);
    kv_proto_request_free(&d);
    free(copy);

    /* ROLLBACK of no keys is refused by the encoder and the decoder */
    kv_proto_buf b = {0};
    kv_proto_request none = {.op = KV_PROTO_ROLLBACK, .id = 8, .revision = 1};
    cr_expect_eq(kv_proto_request_encode(&b, &none), KV_INVALID_ARGUMENT);
    cr_expect_eq(b.len, 0);
    /* [21, 9, [], 1, 0] */
    const uint8_t empty[] = {0x95, 0x15, 0x09, 0x90, 0x01, 0x00};
    cr_expect_eq(pt_decode_bytes_req(empty, sizeof empty, &d), KV_PROTOCOL);
    cr_expect_eq(d.id, 9);
    /* [17, 10, "k"]: GET_AT without its revision */
    const uint8_t short_get[] = {0x93, 0x11, 0x0a, 0xa1, 'k'};
    cr_expect_eq(pt_decode_bytes_req(short_get, sizeof short_get, &d), KV_PROTOCOL);
    cr_expect_eq(d.id, 10);
}
