/*
 * test_frame.c - framing: the length prefix and the incremental splitter,
 * fed whole buffers, every prefix, and one byte at a time.
 */
#include "prototest.h"

Test(frame, u32_big_endian)
{
    uint8_t b[4];
    kv_proto_write_u32(b, 0x01020304u);
    cr_expect(b[0] == 1 && b[1] == 2 && b[2] == 3 && b[3] == 4);
    cr_expect_eq(kv_proto_read_u32(b), 0x01020304u);
    kv_proto_write_u32(b, UINT32_MAX);
    cr_expect_eq(kv_proto_read_u32(b), UINT32_MAX);
}

Test(frame, split_results)
{
    size_t off = 99, len = 99;
    const uint8_t hdr_only[] = {0, 0, 0, 3};
    cr_expect_eq(kv_proto_frame_split(hdr_only, 2, 0, &off, &len),
                 KV_PROTO_NEED_MORE);
    cr_expect_eq(len, 0);
    cr_expect_eq(kv_proto_frame_split(hdr_only, 4, 0, &off, &len),
                 KV_PROTO_NEED_MORE);
    cr_expect_eq(len, 3); /* the declared length, to reserve */

    const uint8_t frame[] = {0, 0, 0, 1, 0xc0, 0xff};
    cr_expect_eq(kv_proto_frame_split(frame, sizeof frame, 0, &off, &len),
                 KV_PROTO_FRAME);
    cr_expect_eq(off, 4);
    cr_expect_eq(len, 1);

    const uint8_t empty[] = {0, 0, 0, 0};
    cr_expect_eq(kv_proto_frame_split(empty, 4, 0, &off, &len),
                 KV_PROTO_INVALID);

    const uint8_t huge[] = {0xff, 0xff, 0xff, 0xff};
    cr_expect_eq(kv_proto_frame_split(huge, 4, 0, &off, &len),
                 KV_PROTO_TOO_LARGE);
    cr_expect_eq(len, UINT32_MAX);

    /* the default limit is 64 MiB + 64 KiB, exactly */
    uint8_t at[4];
    kv_proto_write_u32(at, (uint32_t)KV_PROTO_DEFAULT_MAX_FRAME);
    cr_expect_eq(kv_proto_frame_split(at, 4, 0, &off, &len),
                 KV_PROTO_NEED_MORE);
    kv_proto_write_u32(at, (uint32_t)KV_PROTO_DEFAULT_MAX_FRAME + 1);
    cr_expect_eq(kv_proto_frame_split(at, 4, 0, &off, &len),
                 KV_PROTO_TOO_LARGE);
    /* a configured limit */
    kv_proto_write_u32(at, 101);
    cr_expect_eq(kv_proto_frame_split(at, 4, 100, &off, &len),
                 KV_PROTO_TOO_LARGE);
}

/* Many frames of varied sizes, then fed to the splitter one byte at a
 * time through an accumulating buffer, as a server's read loop would. */
Test(frame, byte_by_byte)
{
    kv_proto_buf b = {0};
    enum { N = 300 };
    char *val = malloc(5000);
    for (int i = 0; i < 5000; i++)
        val[i] = (char)i;
    for (int i = 0; i < N; i++) {
        kv_proto_request q = {.op = KV_PROTO_SET, .id = (uint64_t)i + 1,
                              .key = {"k", 1},
                              .value = {val, (size_t)(i * 17) % 5000}};
        cr_assert_eq(kv_proto_request_encode(&b, &q), KV_OK);
    }
    uint8_t *acc = malloc(b.len);
    size_t have = 0, start = 0;
    int frames = 0;
    for (size_t i = 0; i < b.len; i++) {
        acc[have++] = b.data[i];
        for (;;) {
            size_t off, len;
            kv_proto_split_result s = kv_proto_frame_split(
                acc + start, have - start, 0, &off, &len);
            if (s == KV_PROTO_NEED_MORE)
                break;
            cr_assert_eq(s, KV_PROTO_FRAME);
            kv_proto_request d;
            cr_assert_eq(kv_proto_request_decode(acc + start + off, len,
                                                 NULL, NULL, &d),
                         KV_OK);
            cr_assert_eq(d.id, (uint64_t)frames + 1);
            cr_assert_eq(d.value.len, (size_t)(frames * 17) % 5000);
            cr_assert(pt_bytes_eq(d.value.data, d.value.len, val,
                                  d.value.len));
            frames++;
            start += off + len;
        }
    }
    cr_expect_eq(frames, N);
    cr_expect_eq(start, b.len);
    free(acc);
    free(val);
    kv_proto_buf_free(&b);
}

Test(frame, every_prefix_needs_more)
{
    kv_proto_buf b = {0};
    kv_proto_request q = {.op = KV_PROTO_GET, .id = 1, .key = {"abc", 3}};
    cr_assert_eq(kv_proto_request_encode(&b, &q), KV_OK);
    for (size_t n = 0; n < b.len; n++) {
        uint8_t *p = pt_copy(b.data, n);
        size_t off, len;
        cr_expect_eq(kv_proto_frame_split(p, n, 0, &off, &len),
                     KV_PROTO_NEED_MORE, "prefix %zu", n);
        free(p);
    }
    kv_proto_buf_free(&b);
}

Test(frame, op_names)
{
    cr_expect_str_eq(kv_proto_op_name(KV_PROTO_HELLO), "HELLO");
    cr_expect_str_eq(kv_proto_op_name(KV_PROTO_METRICS), "METRICS");
    cr_expect_str_eq(kv_proto_op_name(-1), "UNKNOWN");
    cr_expect_str_eq(kv_proto_op_name(KV_PROTO_OP_COUNT), "UNKNOWN");
}

/* The look-ahead a server uses to prefetch a pipelined batch: the keys of
 * complete GET and SET frames, in order, at most max, nothing else, and
 * which of them are SETs. */
Test(frame, peek_keys_of_gets_and_sets)
{
    kv_proto_buf b = {0};
    kv_key two[2] = {{"c", 1}, {"d", 1}};
    kv_proto_request q[] = {
        {.op = KV_PROTO_GET, .id = 1, .key = {"a", 1}},
        {.op = KV_PROTO_SET, .id = 2, .key = {"bb", 2}, .value = {"v", 1}},
        {.op = KV_PROTO_MGET, .id = 3, .keys = two, .nkeys = 2},
        {.op = KV_PROTO_PING, .id = 4},
        {.op = KV_PROTO_GET, .id = 5, .key = {"e", 1}},
    };
    for (size_t i = 0; i < sizeof q / sizeof q[0]; i++)
        cr_assert_eq(kv_proto_request_encode(&b, &q[i]), KV_OK);
    const uint8_t junk[] = {0, 0, 0, 1, 0xc1}; /* a complete frame, not a request */
    cr_assert_eq(kv_proto_buf_reserve(&b, sizeof junk), KV_OK);
    memcpy(b.data + b.len, junk, sizeof junk);
    b.len += sizeof junk;
    size_t whole = b.len;
    kv_proto_request last = {.op = KV_PROTO_GET, .id = 6, .key = {"f", 1}};
    cr_assert_eq(kv_proto_request_encode(&b, &last), KV_OK);

    kv_key keys[8];
    bool is_set[8];
    cr_assert_eq(kv_proto_peek_keys(b.data, b.len, 0, keys, is_set, 8), 4);
    cr_assert(!is_set[0] && is_set[1] && !is_set[2] && !is_set[3], "which are SETs");
    cr_assert_eq(keys[0].len, 1);
    cr_assert_eq(memcmp(keys[0].data, "a", 1), 0);
    cr_assert_eq(keys[1].len, 2);
    cr_assert_eq(memcmp(keys[1].data, "bb", 2), 0);
    cr_assert_eq(memcmp(keys[2].data, "e", 1), 0);
    cr_assert_eq(memcmp(keys[3].data, "f", 1), 0);
    cr_assert_eq(kv_proto_peek_keys(b.data, b.len, 0, keys, NULL, 2), 2, "at most max");
    /* a frame cut short is not looked into */
    cr_assert_eq(kv_proto_peek_keys(b.data, whole + 3, 0, keys, NULL, 8), 3);
    cr_assert_eq(kv_proto_peek_keys(b.data, 2, 0, keys, NULL, 8), 0);
    kv_proto_buf_free(&b);
}
