/*
 * test_response.c - responses: every server-side encoder decoded back by
 * the client-side decoder, batching many responses in one buffer, and the
 * decoder's validation. Encoded frames are also checked against msgpack-c's
 * own unpacker, so what we write is standard MessagePack.
 */
#include "prototest.h"

static const char BIN[] = {'\0', 'v', '\0', '\xfe'};

/* The body in b is exactly one MessagePack value for msgpack-c too. */
static void expect_standard(const kv_proto_buf *b)
{
    const uint8_t *body;
    size_t len, off = 0;
    pt_body(b, &body, &len);
    msgpack_unpacked u;
    msgpack_unpacked_init(&u);
    cr_expect_eq(msgpack_unpack_next(&u, (const char *)body, len, &off),
                 MSGPACK_UNPACK_SUCCESS);
    cr_expect_eq(off, len);
    msgpack_unpacked_destroy(&u);
}

Test(response, status_and_detail)
{
    kv_proto_buf b = {0};
    kv_proto_response r;
    uint8_t *copy;

    cr_assert_eq(kv_proto_resp_status(&b, 5, KV_NOT_FOUND, NULL), KV_OK);
    expect_standard(&b);
    cr_assert_eq(pt_decode_resp(&b, KV_PROTO_GET, &copy, &r), KV_OK);
    cr_expect_eq(r.id, 5);
    cr_expect_eq(r.status, KV_NOT_FOUND);
    cr_expect_eq(r.detail.len, 0);
    cr_expect_eq(r.value.found, 0);
    free(copy);

    kv_proto_buf_reset(&b);
    cr_assert_eq(kv_proto_resp_status(&b, 0, KV_PROTOCOL, "bad frame"),
                 KV_OK);
    cr_assert_eq(pt_decode_resp(&b, KV_PROTO_SET, &copy, &r), KV_OK);
    cr_expect_eq(r.id, 0);
    cr_expect_eq(r.status, KV_PROTOCOL);
    cr_expect(pt_bytes_eq(r.detail.data, r.detail.len, "bad frame", 9));
    free(copy);

    /* success with a nil result: AUTH, PING */
    kv_proto_buf_reset(&b);
    cr_assert_eq(kv_proto_resp_status(&b, 6, KV_OK, NULL), KV_OK);
    cr_assert_eq(pt_decode_resp(&b, KV_PROTO_AUTH, &copy, &r), KV_OK);
    free(copy);
    cr_assert_eq(pt_decode_resp(&b, KV_PROTO_PING, &copy, &r), KV_OK);
    cr_expect_eq(r.has_payload, 0);
    free(copy);
    /* ...but not where a shape is required */
    cr_expect_eq(pt_decode_resp(&b, KV_PROTO_GET, &copy, &r), KV_PROTOCOL);
    cr_expect_not_null(r.error);
    free(copy);
    kv_proto_buf_free(&b);
}

Test(response, hello_ping_value_version_del)
{
    kv_proto_buf b = {0};
    kv_proto_response r;
    uint8_t *copy;

    cr_assert_eq(kv_proto_resp_hello(&b, 1, 1, "kvd", "0.1.0"), KV_OK);
    expect_standard(&b);
    cr_assert_eq(pt_decode_resp(&b, KV_PROTO_HELLO, &copy, &r), KV_OK);
    cr_expect_eq(r.proto_version, 1);
    cr_expect(pt_bytes_eq(r.server_name.data, r.server_name.len, "kvd", 3));
    cr_expect(pt_bytes_eq(r.server_version.data, r.server_version.len,
                          "0.1.0", 5));
    free(copy);

    kv_proto_buf_reset(&b);
    cr_assert_eq(kv_proto_resp_ping(&b, 2, BIN, sizeof BIN), KV_OK);
    cr_assert_eq(pt_decode_resp(&b, KV_PROTO_PING, &copy, &r), KV_OK);
    cr_expect_eq(r.has_payload, 1);
    cr_expect(pt_bytes_eq(r.payload.data, r.payload.len, BIN, sizeof BIN));
    free(copy);

    kv_proto_buf_reset(&b);
    cr_assert_eq(kv_proto_resp_value(&b, 3, BIN, sizeof BIN, 99), KV_OK);
    expect_standard(&b);
    cr_assert_eq(pt_decode_resp(&b, KV_PROTO_GET, &copy, &r), KV_OK);
    cr_expect_eq(r.value.found, 1);
    cr_expect_eq(r.value.version, 99);
    cr_expect(pt_bytes_eq(r.value.data, r.value.len, BIN, sizeof BIN));
    free(copy);

    /* an empty value is found, with a non-NULL pointer */
    kv_proto_buf_reset(&b);
    cr_assert_eq(kv_proto_resp_value(&b, 3, "", 0, 1), KV_OK);
    cr_assert_eq(pt_decode_resp(&b, KV_PROTO_GET, &copy, &r), KV_OK);
    cr_expect_eq(r.value.found, 1);
    cr_expect_eq(r.value.len, 0);
    cr_expect_not_null(r.value.data);
    free(copy);

    kv_proto_buf_reset(&b);
    cr_assert_eq(kv_proto_resp_version(&b, 4, UINT64_MAX), KV_OK);
    cr_assert_eq(pt_decode_resp(&b, KV_PROTO_SET, &copy, &r), KV_OK);
    cr_expect_eq(r.version, UINT64_MAX);
    free(copy);
    cr_assert_eq(pt_decode_resp(&b, KV_PROTO_MSET, &copy, &r), KV_OK);
    free(copy);

    kv_proto_buf_reset(&b);
    cr_assert_eq(kv_proto_resp_del(&b, 5, 3, 1000), KV_OK);
    cr_assert_eq(pt_decode_resp(&b, KV_PROTO_DEL, &copy, &r), KV_OK);
    cr_expect_eq(r.deleted, 3);
    cr_expect_eq(r.version, 1000);
    free(copy);
    kv_proto_buf_free(&b);
}

Test(response, mget)
{
    char v0[] = "hello";
    kv_value vals[3] = {{v0, 5, 7}, {NULL, 0, 0}, {(void *)BIN, sizeof BIN, 8}};
    kv_proto_buf b = {0};
    kv_proto_response r;
    uint8_t *copy;
    cr_assert_eq(kv_proto_resp_mget(&b, 9, vals, 3), KV_OK);
    expect_standard(&b);
    cr_assert_eq(pt_decode_resp(&b, KV_PROTO_MGET, &copy, &r), KV_OK);
    cr_assert_eq(r.nvalues, 3);
    cr_expect_eq(r.values[0].found, 1);
    cr_expect(pt_bytes_eq(r.values[0].data, r.values[0].len, "hello", 5));
    cr_expect_eq(r.values[0].version, 7);
    cr_expect_eq(r.values[1].found, 0);
    cr_expect_null(r.values[1].data);
    cr_expect(pt_bytes_eq(r.values[2].data, r.values[2].len, BIN, sizeof BIN));
    kv_proto_response_free(&r);
    free(copy);

    kv_proto_buf_reset(&b);
    cr_assert_eq(kv_proto_resp_mget(&b, 9, NULL, 0), KV_OK);
    cr_assert_eq(pt_decode_resp(&b, KV_PROTO_MGET, &copy, &r), KV_OK);
    cr_expect_eq(r.nvalues, 0);
    kv_proto_response_free(&r);
    free(copy);
    kv_proto_buf_free(&b);
}

/* The streamed writer: the frame only exists once end() saw every key; an
 * abort or a wrong count leaves the buffer as it was. */
Test(response, mget_streamed)
{
    kv_proto_buf b = {0};
    kv_proto_response r;
    uint8_t *copy;
    cr_assert_eq(kv_proto_resp_ping(&b, 1, "x", 1), KV_OK);
    size_t before = b.len;

    kv_proto_mget_writer w;
    cr_assert_eq(kv_proto_resp_mget_begin(&b, 9, 2, &w), KV_OK);
    cr_assert_eq(kv_proto_resp_mget_add(&w, "abc", 3, 5), KV_OK);
    kv_proto_resp_mget_abort(&w);
    cr_assert_eq(b.len, before, "abort removes the partial frame");

    cr_assert_eq(kv_proto_resp_mget_begin(&b, 9, 2, &w), KV_OK);
    cr_assert_eq(kv_proto_resp_mget_add(&w, "abc", 3, 5), KV_OK);
    cr_assert_eq(kv_proto_resp_mget_end(&w), KV_INVALID_ARGUMENT, "one add short");
    cr_assert_eq(b.len, before);

    cr_assert_eq(kv_proto_resp_mget_begin(&b, 9, 2, &w), KV_OK);
    cr_assert_eq(kv_proto_resp_mget_add(&w, NULL, 0, 0), KV_OK);
    cr_assert_eq(kv_proto_resp_mget_add(&w, BIN, sizeof BIN, 8), KV_OK);
    cr_assert_eq(kv_proto_resp_mget_add(&w, "extra", 5, 1), KV_INVALID_ARGUMENT);
    cr_assert_eq(kv_proto_resp_mget_end(&w), KV_OK);

    /* skip the PING frame, decode the MGET one */
    kv_proto_buf m = {0};
    cr_assert_eq(kv_proto_buf_reserve(&m, b.len - before), KV_OK);
    memcpy(m.data, b.data + before, b.len - before);
    m.len = b.len - before;
    expect_standard(&m);
    cr_assert_eq(pt_decode_resp(&m, KV_PROTO_MGET, &copy, &r), KV_OK);
    cr_assert_eq(r.id, 9);
    cr_assert_eq(r.nvalues, 2);
    cr_expect_eq(r.values[0].found, 0);
    cr_expect_eq(r.values[1].found, 1);
    cr_expect(pt_bytes_eq(r.values[1].data, r.values[1].len, BIN, sizeof BIN));
    cr_expect_eq(r.values[1].version, 8);
    kv_proto_response_free(&r);
    free(copy);
    kv_proto_buf_free(&m);
    kv_proto_buf_free(&b);
}

Test(response, txn)
{
    char v[] = "val";
    kv_op_result res[3] = {{KV_OK, {v, 3, 12}},
                           {KV_NOT_FOUND, {NULL, 0, 0}},
                           {KV_OK, {NULL, 0, 0}}};
    kv_txn_result t = {1, 13, 3, res};
    kv_proto_buf b = {0};
    kv_proto_response r;
    uint8_t *copy;
    cr_assert_eq(kv_proto_resp_txn(&b, 11, &t), KV_OK);
    expect_standard(&b);
    cr_assert_eq(pt_decode_resp(&b, KV_PROTO_TXN, &copy, &r), KV_OK);
    cr_expect_eq(r.succeeded, 1);
    cr_expect_eq(r.version, 13);
    cr_assert_eq(r.nresults, 3);
    cr_expect_eq(r.results[0].status, KV_OK);
    cr_expect_eq(r.results[0].found, 1);
    cr_expect(pt_bytes_eq(r.results[0].data, r.results[0].len, "val", 3));
    cr_expect_eq(r.results[0].version, 12);
    cr_expect_eq(r.results[1].status, KV_NOT_FOUND);
    cr_expect_eq(r.results[1].found, 0);
    cr_expect_eq(r.results[2].found, 0);
    kv_proto_response_free(&r);
    free(copy);

    t = (kv_txn_result){0, 0, 0, NULL};
    kv_proto_buf_reset(&b);
    cr_assert_eq(kv_proto_resp_txn(&b, 12, &t), KV_OK);
    cr_assert_eq(pt_decode_resp(&b, KV_PROTO_TXN, &copy, &r), KV_OK);
    cr_expect_eq(r.succeeded, 0);
    cr_expect_eq(r.nresults, 0);
    kv_proto_response_free(&r);
    free(copy);
    kv_proto_buf_free(&b);
}

Test(response, scan_streamed)
{
    kv_proto_buf b = {0};
    kv_proto_response r;
    uint8_t *copy;
    kv_proto_scan_writer w;

    /* a frame already in the buffer must be kept */
    cr_assert_eq(kv_proto_resp_version(&b, 1, 1), KV_OK);
    size_t first = b.len;
    cr_assert_eq(kv_proto_resp_scan_begin(&b, 20, &w), KV_OK);
    char key[8];
    for (int i = 0; i < 100; i++) {
        int n = snprintf(key, sizeof key, "k%d", i);
        cr_assert_eq(kv_proto_resp_scan_add(&w, key, (size_t)n, BIN,
                                            sizeof BIN, (uint64_t)i + 1),
                     KV_OK);
    }
    cr_assert_eq(kv_proto_resp_scan_end(&w, 0x0102030405060708ull), KV_OK);

    kv_proto_buf scan = {b.data + first, b.len - first, 0};
    expect_standard(&scan);
    cr_assert_eq(pt_decode_resp(&scan, KV_PROTO_SCAN, &copy, &r), KV_OK);
    cr_expect_eq(r.id, 20);
    cr_expect_eq(r.cursor, 0x0102030405060708ull);
    cr_assert_eq(r.nentries, 100);
    for (int i = 0; i < 100; i++) {
        int n = snprintf(key, sizeof key, "k%d", i);
        cr_expect(pt_bytes_eq(r.entries[i].key.data, r.entries[i].key.len,
                              key, (size_t)n));
        cr_expect(pt_bytes_eq(r.entries[i].val, r.entries[i].vlen, BIN,
                              sizeof BIN));
        cr_expect_eq(r.entries[i].version, (uint64_t)i + 1);
    }
    kv_proto_response_free(&r);
    free(copy);

    /* abort removes the partial frame */
    size_t before = b.len;
    cr_assert_eq(kv_proto_resp_scan_begin(&b, 21, &w), KV_OK);
    cr_assert_eq(kv_proto_resp_scan_add(&w, "a", 1, "b", 1, 1), KV_OK);
    kv_proto_resp_scan_abort(&w);
    cr_expect_eq(b.len, before);

    /* an empty batch with cursor 0 */
    kv_proto_buf_reset(&b);
    cr_assert_eq(kv_proto_resp_scan_begin(&b, 22, &w), KV_OK);
    cr_assert_eq(kv_proto_resp_scan_end(&w, 0), KV_OK);
    cr_assert_eq(pt_decode_resp(&b, KV_PROTO_SCAN, &copy, &r), KV_OK);
    cr_expect_eq(r.nentries, 0);
    cr_expect_eq(r.cursor, 0);
    kv_proto_response_free(&r);
    free(copy);
    kv_proto_buf_free(&b);
}

/* SCAN's cursor and entry count are written in their shortest form
 * (docs/protocol.md section 3), not as a fixed 9-byte int and 32-bit
 * array. */
Test(response, scan_shortest_encoding)
{
    kv_proto_buf b = {0};
    kv_proto_scan_writer w;
    const uint8_t *body;
    size_t len;

    cr_assert_eq(kv_proto_resp_scan_begin(&b, 7, &w), KV_OK);
    cr_assert_eq(kv_proto_resp_scan_end(&w, 0), KV_OK);
    pt_body(&b, &body, &len);
    const uint8_t empty[] = {0x93, 0x07, 0x00, 0x92, 0x00, 0x90};
    cr_assert_eq(len, sizeof empty);
    cr_expect_eq(memcmp(body, empty, len), 0);
    cr_expect_eq(b.len, KV_PROTO_HEADER_SIZE + len, "no gap left behind");

    kv_proto_buf_reset(&b);
    cr_assert_eq(kv_proto_resp_scan_begin(&b, 8, &w), KV_OK);
    cr_assert_eq(kv_proto_resp_scan_add(&w, "k", 1, "v", 1, 5), KV_OK);
    cr_assert_eq(kv_proto_resp_scan_end(&w, 300), KV_OK);
    pt_body(&b, &body, &len);
    const uint8_t one[] = {0x93, 0x08, 0x00, 0x92, 0xcd, 0x01, 0x2c, 0x93,
                           0xc4, 0x01, 'k', 0xc4, 0x01, 'v', 0x05};
    cr_assert_eq(len, sizeof one);
    cr_expect_eq(memcmp(body, one, len), 0);

    /* 6 entries: 18 elements, array 16 */
    kv_proto_buf_reset(&b);
    cr_assert_eq(kv_proto_resp_scan_begin(&b, 9, &w), KV_OK);
    for (int i = 0; i < 6; i++)
        cr_assert_eq(kv_proto_resp_scan_add(&w, "k", 1, "v", 1, 1), KV_OK);
    cr_assert_eq(kv_proto_resp_scan_end(&w, 1ull << 40), KV_OK);
    pt_body(&b, &body, &len);
    cr_expect_eq(body[3], 0x92);
    cr_expect_eq(body[4], 0xcf, "a cursor over 2^32 needs 8 bytes");
    cr_expect_eq(body[13], 0xdc, "18 elements: array 16");
    cr_expect_eq(body[14], 0x00);
    cr_expect_eq(body[15], 18);
    cr_expect_eq(len, 16 + 6 * 7);
    kv_proto_buf_free(&b);
}

/* keys_only pages: [cursor, [k, version, ...]], decoded with
 * KV_PROTO_RESULT_KEYS_ONLY; scan_size and entry_size bound the frame. */
Test(response, scan_keys_only_sizes_and_rewind)
{
    kv_proto_buf b = {0};
    kv_proto_scan_writer w;
    kv_proto_response r;
    uint8_t *copy;

    cr_assert_eq(kv_proto_resp_scan_begin(&b, 30, &w), KV_OK);
    size_t big = 70000;
    char *key = calloc(1, big);
    cr_assert_not_null(key);
    const size_t klens[] = {1, 200, 300, 70000};
    const uint64_t vers[] = {1, 200, 70000, 1ull << 33};
    for (int i = 0; i < 4; i++) {
        size_t before = b.len;
        cr_assert_eq(kv_proto_resp_scan_add_key(&w, key, klens[i], vers[i]), KV_OK);
        cr_expect_eq(b.len - before,
                     kv_proto_resp_scan_entry_size(klens[i], 12345, vers[i], 1),
                     "entry %d: size is exact", i);
    }
    kv_proto_scan_writer saved = w;
    cr_assert_eq(kv_proto_resp_scan_add_key(&w, "x", 1, 1), KV_OK);
    cr_assert_eq(w.count, 5);
    kv_proto_resp_scan_rewind(&w, &saved);
    cr_assert_eq(w.count, 4);
    size_t bound = kv_proto_resp_scan_size(&w);
    cr_assert_eq(kv_proto_resp_scan_end(&w, 77), KV_OK);
    const uint8_t *body;
    size_t len;
    pt_body(&b, &body, &len);
    cr_expect_leq(len, bound, "scan_size is an upper bound of the body");

    cr_assert_eq(kv_proto_response_decode_ex(body, len, KV_PROTO_SCAN,
                                             KV_PROTO_RESULT_KEYS_ONLY, NULL, &r),
                 KV_OK, "%s", r.error ? r.error : "");
    cr_expect_eq(r.cursor, 77);
    cr_assert_eq(r.nentries, 4);
    for (int i = 0; i < 4; i++) {
        cr_expect_eq(r.entries[i].key.len, klens[i]);
        cr_expect_null(r.entries[i].val);
        cr_expect_eq(r.entries[i].vlen, 0);
        cr_expect_eq(r.entries[i].version, vers[i]);
    }
    kv_proto_response_free(&r);
    /* the same page is not a valid page with values */
    cr_expect_eq(kv_proto_response_decode(body, len, KV_PROTO_SCAN, NULL, &r),
                 KV_PROTOCOL);

    /* with values: entry_size is exact too */
    kv_proto_buf_reset(&b);
    cr_assert_eq(kv_proto_resp_scan_begin(&b, 31, &w), KV_OK);
    size_t before = b.len;
    cr_assert_eq(kv_proto_resp_scan_add(&w, "k", 1, key, 300, 9), KV_OK);
    cr_expect_eq(b.len - before, kv_proto_resp_scan_entry_size(1, 300, 9, 0));
    cr_assert_eq(kv_proto_resp_scan_end(&w, 0), KV_OK);
    cr_assert_eq(pt_decode_resp(&b, KV_PROTO_SCAN, &copy, &r), KV_OK);
    cr_assert_eq(r.nentries, 1);
    cr_expect_eq(r.entries[0].vlen, 300);
    kv_proto_response_free(&r);
    free(copy);
    free(key);
    kv_proto_buf_free(&b);
}

Test(response, metrics)
{
    kv_metrics m = {0};
    m.keys = 12;
    m.gets = 40;
    m.table_resizes = 2;
    m.compact_revision = 9;
    kv_proto_metric lat[2] = {
        {.name = "get", .kind = KV_PROTO_METRIC_DOUBLE, .d = 12.5},
        {.name = "set", .kind = KV_PROTO_METRIC_UINT, .u = 20}};
    kv_proto_metric extra[2] = {
        {.name = "connections", .kind = KV_PROTO_METRIC_UINT, .u = 3},
        {.name = "latency_us", .kind = KV_PROTO_METRIC_MAP, .children = lat,
         .nchildren = 2}};
    kv_proto_buf b = {0};
    kv_proto_response r;
    uint8_t *copy;
    cr_assert_eq(kv_proto_resp_metrics(&b, 30, &m, extra, 2), KV_OK);
    expect_standard(&b);
    cr_assert_eq(pt_decode_resp(&b, KV_PROTO_METRICS, &copy, &r), KV_OK);
    cr_assert_eq(r.nmetrics, 31 + 2);
    cr_expect_str_eq(r.metrics[0].name, "keys");
    cr_expect_eq(r.metrics[0].u, 12);
    cr_expect_str_eq(r.metrics[5].name, "gets");
    cr_expect_eq(r.metrics[5].u, 40);
    cr_expect_str_eq(r.metrics[14].name, "table_resizes");
    cr_expect_str_eq(r.metrics[22].name, "snapshot_revision");
    cr_expect_str_eq(r.metrics[23].name, "expired_keys");
    cr_expect_str_eq(r.metrics[24].name, "keys_with_ttl");
    cr_expect_str_eq(r.metrics[25].name, "evicted_keys");
    cr_expect_str_eq(r.metrics[27].name, "memory_used");
    cr_expect_str_eq(r.metrics[28].name, "history_versions");
    cr_expect_str_eq(r.metrics[29].name, "history_bytes");
    cr_expect_str_eq(r.metrics[30].name, "compact_revision");
    cr_expect_eq(r.metrics[30].u, 9);
    cr_expect_str_eq(r.metrics[31].name, "connections");
    cr_expect_eq(r.metrics[31].kind, KV_PROTO_METRIC_UINT);
    const kv_proto_metric *l = &r.metrics[32];
    cr_expect_str_eq(l->name, "latency_us");
    cr_assert_eq(l->kind, KV_PROTO_METRIC_MAP);
    cr_assert_eq(l->nchildren, 2);
    cr_expect_eq(l->children[0].kind, KV_PROTO_METRIC_DOUBLE);
    cr_expect_float_eq(l->children[0].d, 12.5, 1e-9);
    cr_expect_eq(l->children[1].u, 20);
    kv_proto_response_free(&r);
    free(copy);

    /* store only; server only */
    kv_proto_buf_reset(&b);
    cr_assert_eq(kv_proto_resp_metrics(&b, 31, NULL, extra, 1), KV_OK);
    cr_assert_eq(pt_decode_resp(&b, KV_PROTO_METRICS, &copy, &r), KV_OK);
    cr_expect_eq(r.nmetrics, 1);
    kv_proto_response_free(&r);
    free(copy);

    /* a map inside a map is refused, buffer unchanged */
    kv_proto_metric deep = {.name = "x", .kind = KV_PROTO_METRIC_MAP,
                            .children = extra + 1, .nchildren = 1};
    size_t len = b.len;
    cr_expect_eq(kv_proto_resp_metrics(&b, 32, NULL, &deep, 1),
                 KV_INVALID_ARGUMENT);
    kv_proto_metric noname = {.kind = KV_PROTO_METRIC_UINT};
    cr_expect_eq(kv_proto_resp_metrics(&b, 32, NULL, &noname, 1),
                 KV_INVALID_ARGUMENT);
    cr_expect_eq(b.len, len);
    kv_proto_buf_free(&b);
}

Test(response, batch_of_responses_in_one_buffer)
{
    kv_proto_buf b = {0};
    for (uint64_t i = 1; i <= 1000; i++) {
        if (i % 2)
            cr_assert_eq(kv_proto_resp_value(&b, i, "v", 1, i), KV_OK);
        else
            cr_assert_eq(kv_proto_resp_status(&b, i, KV_NOT_FOUND, NULL),
                         KV_OK);
    }
    size_t pos = 0, off, blen;
    uint64_t want = 1;
    while (pos < b.len) {
        cr_assert_eq(kv_proto_frame_split(b.data + pos, b.len - pos, 0, &off,
                                          &blen),
                     KV_PROTO_FRAME);
        kv_proto_response r;
        cr_assert_eq(kv_proto_response_decode(b.data + pos + off, blen,
                                              KV_PROTO_GET, NULL, &r),
                     KV_OK);
        cr_expect_eq(r.id, want);
        cr_expect_eq(r.status, want % 2 ? KV_OK : KV_NOT_FOUND);
        pos += off + blen;
        want++;
    }
    cr_expect_eq(want, 1001);
    kv_proto_buf_free(&b);
}

Test(response, decoder_validation)
{
    kv_proto_response r;
    /* not [id, status, result] */
    const uint8_t two[] = {0x92, 0x01, 0x00};
    cr_expect_eq(kv_proto_response_decode(two, sizeof two, KV_PROTO_SET,
                                          NULL, &r),
                 KV_PROTOCOL);
    /* error status with a bin (not nil/str) result */
    const uint8_t binres[] = {0x93, 0x01, 0x1e, 0xc4, 0x01, 'x'};
    cr_expect_eq(kv_proto_response_decode(binres, sizeof binres,
                                          KV_PROTO_SET, NULL, &r),
                 KV_PROTOCOL);
    /* trailing byte */
    const uint8_t trail[] = {0x93, 0x01, 0x00, 0x05, 0xc0};
    cr_expect_eq(kv_proto_response_decode(trail, sizeof trail, KV_PROTO_SET,
                                          NULL, &r),
                 KV_PROTOCOL);
    /* unknown op */
    const uint8_t ok[] = {0x93, 0x01, 0x00, 0x05};
    cr_expect_eq(kv_proto_response_decode(ok, sizeof ok, 77, NULL, &r),
                 KV_UNSUPPORTED);
    cr_expect_eq(kv_proto_response_decode(ok, sizeof ok, KV_PROTO_SET, NULL,
                                          &r),
                 KV_OK);
    /* SCAN entries not a multiple of 3 */
    const uint8_t scan[] = {0x93, 0x01, 0x00, 0x92, 0x00, 0x92, 0xa1, 'k',
                            0xa1, 'v'};
    cr_expect_eq(kv_proto_response_decode(scan, sizeof scan, KV_PROTO_SCAN,
                                          NULL, &r),
                 KV_PROTOCOL);
    /* METRICS nested two levels */
    const uint8_t deep[] = {0x93, 0x01, 0x00, 0x81, 0xa1, 'a', 0x81, 0xa1,
                            'b', 0x81, 0xa1, 'c', 0x01};
    cr_expect_eq(kv_proto_response_decode(deep, sizeof deep,
                                          KV_PROTO_METRICS, NULL, &r),
                 KV_PROTOCOL);
    /* MGET claiming 2^32-1 entries */
    const uint8_t mget[] = {0x93, 0x01, 0x00, 0xdd, 0xff, 0xff, 0xff, 0xff,
                            0xc0};
    cr_expect_eq(kv_proto_response_decode(mget, sizeof mget, KV_PROTO_MGET,
                                          NULL, &r),
                 KV_PROTOCOL);
}

/* Version 4: TTL's [expire_at_ms, ttl_ms]; EXPIRE and PERSIST answer a
 * revision. */
Test(response, ttl_expire_persist)
{
    kv_proto_buf b = {0};
    kv_proto_response r;
    uint8_t *copy;
    kv_proto_writer w;
    cr_assert_eq(kv_proto_writer_begin(&w, &b, 7, 16), KV_OK);
    kv_proto_writer_array(&w, 2);
    kv_proto_writer_uint(&w, 1796070675043ull);
    kv_proto_writer_uint(&w, 29997);
    cr_assert_eq(kv_proto_writer_end(&w), KV_OK);
    cr_assert_eq(pt_decode_resp(&b, KV_PROTO_TTL, &copy, &r), KV_OK);
    cr_expect_eq(r.expire_at_ms, 1796070675043ull);
    cr_expect_eq(r.ttl_ms, 29997);
    free(copy);
    /* a TTL answer of another shape is refused */
    kv_proto_buf_reset(&b);
    cr_assert_eq(kv_proto_resp_version(&b, 7, 5), KV_OK);
    cr_assert_eq(pt_decode_resp(&b, KV_PROTO_TTL, &copy, &r), KV_PROTOCOL);
    free(copy);
    cr_assert_eq(pt_decode_resp(&b, KV_PROTO_EXPIRE, &copy, &r), KV_OK);
    cr_expect_eq(r.version, 5);
    free(copy);
    cr_assert_eq(pt_decode_resp(&b, KV_PROTO_PERSIST, &copy, &r), KV_OK);
    cr_expect_eq(r.version, 5);
    free(copy);
    kv_proto_buf_free(&b);
}

/* Version 5: HISTORY's [compact_revision, [event...]] (a deletion's value
 * nil), ROLLBACK's [changed, version], COMPACT's revision; GET_AT and
 * MGET_AT answer as GET and MGET. */
Test(response, history_ops)
{
    kv_proto_buf b = {0};
    kv_proto_response r;
    uint8_t *copy;
    kv_proto_writer w;
    cr_assert_eq(kv_proto_writer_begin(&w, &b, 7, 64), KV_OK);
    kv_proto_writer_array(&w, 2);
    kv_proto_writer_uint(&w, 3);
    kv_proto_writer_array(&w, 2);
    kv_proto_writer_array(&w, 5);
    kv_proto_writer_uint(&w, 9);
    kv_proto_writer_nil(&w);
    kv_proto_writer_uint(&w, 0);
    kv_proto_writer_uint(&w, 0);
    kv_proto_writer_uint(&w, 0);
    kv_proto_writer_array(&w, 5);
    kv_proto_writer_uint(&w, 8);
    kv_proto_writer_bin(&w, "val", 3);
    kv_proto_writer_uint(&w, 4);
    kv_proto_writer_uint(&w, 2);
    kv_proto_writer_uint(&w, 1796070675043ull);
    cr_assert_eq(kv_proto_writer_end(&w), KV_OK);
    cr_assert_eq(pt_decode_resp(&b, KV_PROTO_HISTORY, &copy, &r), KV_OK);
    cr_expect_eq(r.compact_revision, 3);
    cr_assert_eq(r.nevents, 2);
    cr_expect(r.events[0].deleted && r.events[0].revision == 9 && !r.events[0].value);
    cr_expect(!r.events[1].deleted && r.events[1].revision == 8);
    cr_expect(pt_bytes_eq(r.events[1].value, r.events[1].vlen, "val", 3));
    cr_expect_eq(r.events[1].create_revision, 4);
    cr_expect_eq(r.events[1].version, 2);
    cr_expect_eq(r.events[1].expire_at_ms, 1796070675043ull);
    kv_proto_response_free(&r);
    free(copy);

    /* ROLLBACK: DEL's shape, changed instead of deleted */
    kv_proto_buf_reset(&b);
    cr_assert_eq(kv_proto_resp_del(&b, 7, 2, 11), KV_OK);
    cr_assert_eq(pt_decode_resp(&b, KV_PROTO_ROLLBACK, &copy, &r), KV_OK);
    cr_expect_eq(r.changed, 2);
    cr_expect_eq(r.version, 11);
    free(copy);
    /* COMPACT: a revision; a HISTORY of that shape is refused */
    kv_proto_buf_reset(&b);
    cr_assert_eq(kv_proto_resp_version(&b, 7, 5), KV_OK);
    cr_assert_eq(pt_decode_resp(&b, KV_PROTO_COMPACT, &copy, &r), KV_OK);
    cr_expect_eq(r.compact_revision, 5);
    free(copy);
    cr_assert_eq(pt_decode_resp(&b, KV_PROTO_HISTORY, &copy, &r), KV_PROTOCOL);
    free(copy);
    kv_proto_buf_reset(&b);
    cr_assert_eq(kv_proto_resp_value(&b, 7, "v", 1, 4), KV_OK);
    cr_assert_eq(pt_decode_resp(&b, KV_PROTO_GET_AT, &copy, &r), KV_OK);
    cr_expect(r.value.found && r.value.version == 4);
    free(copy);
    kv_proto_buf_free(&b);
}
