/*
 * prototest.h - helpers shared by the codec tests (tests/proto).
 *
 * Bodies under test are copied into exactly-sized heap blocks before
 * decoding, so ASan reports any read past the end. Hand-made (often
 * invalid) bodies are built with msgpack-c's packer into an sbuffer.
 */
#ifndef PROTOTEST_H
#define PROTOTEST_H

#include <criterion/criterion.h>
#include <msgpack.h>
#include <stdlib.h>
#include <string.h>

#include "kv_proto.h"

/* The body of the only frame in b (asserts it is exactly one frame). */
static inline void pt_body(const kv_proto_buf *b, const uint8_t **body,
                           size_t *len)
{
    size_t off, blen;
    cr_assert_eq(kv_proto_frame_split(b->data, b->len, 0, &off, &blen),
                 KV_PROTO_FRAME);
    cr_assert_eq(off + blen, b->len, "one frame expected");
    *body = b->data + off;
    *len = blen;
}

/* An exact-size heap copy (at least 1 byte allocated). */
static inline uint8_t *pt_copy(const void *p, size_t n)
{
    uint8_t *d = malloc(n ? n : 1);
    if (d == NULL)
        abort();
    if (n)
        memcpy(d, p, n);
    return d;
}

/* Encodes req and decodes it back into *out (private block). Returns the
 * body copy, which must outlive *out; free both afterwards. */
static inline uint8_t *pt_roundtrip_req(const kv_proto_request *req,
                                        kv_proto_request *out)
{
    kv_proto_buf b = {0};
    cr_assert_eq(kv_proto_request_encode(&b, req), KV_OK);
    const uint8_t *body;
    size_t len;
    pt_body(&b, &body, &len);
    uint8_t *copy = pt_copy(body, len);
    kv_proto_buf_free(&b);
    int rc = kv_proto_request_decode(copy, len, NULL, NULL, out);
    cr_assert_eq(rc, KV_OK, "decode: %d %s", rc, out->error);
    cr_assert_eq(out->op, req->op);
    cr_assert_eq(out->id, req->id);
    return copy;
}

/* Decodes a response body held in b's only frame (copied to *copy). */
static inline int pt_decode_resp(const kv_proto_buf *b, int op,
                                 uint8_t **copy, kv_proto_response *out)
{
    const uint8_t *body;
    size_t len;
    pt_body(b, &body, &len);
    *copy = pt_copy(body, len);
    return kv_proto_response_decode(*copy, len, op, NULL, out);
}

static inline int pt_bytes_eq(const void *a, size_t alen, const void *b,
                              size_t blen)
{
    return alen == blen && (alen == 0 || memcmp(a, b, alen) == 0);
}

/* A hand-made body: pk writes into sb. */
typedef struct pt_raw {
    msgpack_sbuffer sb;
    msgpack_packer pk;
} pt_raw;

static inline void pt_raw_init(pt_raw *r)
{
    msgpack_sbuffer_init(&r->sb);
    msgpack_packer_init(&r->pk, &r->sb, msgpack_sbuffer_write);
}

static inline void pt_raw_free(pt_raw *r)
{
    msgpack_sbuffer_destroy(&r->sb);
}

static inline void pt_raw_str(pt_raw *r, const char *s)
{
    msgpack_pack_str(&r->pk, strlen(s));
    msgpack_pack_str_body(&r->pk, s, strlen(s));
}

static inline void pt_raw_bin(pt_raw *r, const void *p, size_t n)
{
    msgpack_pack_bin(&r->pk, n);
    msgpack_pack_bin_body(&r->pk, p, n);
}

/* Decodes the raw body (exact copy) as a request. */
static inline int pt_decode_raw_req(const pt_raw *r, kv_proto_request *out)
{
    uint8_t *copy = pt_copy(r->sb.data, r->sb.size);
    int rc = kv_proto_request_decode(copy, r->sb.size, NULL, NULL, out);
    kv_proto_request_free(out);
    free(copy);
    return rc;
}

/* Decodes raw bytes as a request. */
static inline int pt_decode_bytes_req(const void *p, size_t n,
                                      kv_proto_request *out)
{
    uint8_t *copy = pt_copy(p, n);
    int rc = kv_proto_request_decode(copy, n, NULL, NULL, out);
    kv_proto_request_free(out);
    free(copy);
    return rc;
}

#endif /* PROTOTEST_H */
