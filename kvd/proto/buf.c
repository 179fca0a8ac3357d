/*
 * buf.c - kv_proto_buf, the growable output buffer frames are appended to,
 * and the msgpack-c packer glue that writes into it.
 *
 * Encoders reserve a good guess of the frame size first (kv__frame_begin),
 * so the packer's write callback is normally a bounds check and a memcpy.
 * A frame is started by appending a 4-byte placeholder and finished by
 * patching it with the body length; a failed encode truncates back to the
 * frame's start, so a buffer only ever holds complete frames.
 */
#include <stdlib.h>
#include <string.h>

#include "proto_internal.h"

void kv_proto_buf_init(kv_proto_buf *b)
{
    b->data = NULL;
    b->len = 0;
    b->cap = 0;
}

void kv_proto_buf_reset(kv_proto_buf *b)
{
    b->len = 0;
}

void kv_proto_buf_free(kv_proto_buf *b)
{
    if (b == NULL)
        return;
    free(b->data);
    kv_proto_buf_init(b);
}

int kv_proto_buf_reserve(kv_proto_buf *b, size_t extra)
{
    if (extra <= b->cap - b->len)
        return KV_OK;
    if (extra > SIZE_MAX / 2 - b->len)
        return KV_NO_MEMORY;
    size_t need = b->len + extra;
    size_t cap = b->cap ? b->cap : 256;
    while (cap < need)
        cap *= 2;
    uint8_t *p = realloc(b->data, cap);
    if (p == NULL)
        return KV_NO_MEMORY;
    b->data = p;
    b->cap = cap;
    return KV_OK;
}

static int buf_write(void *data, const char *src, size_t len)
{
    kv_proto_buf *b = data;
    if (kv_proto_buf_reserve(b, len) != KV_OK)
        return -1;
    memcpy(b->data + b->len, src, len);
    b->len += len;
    return 0;
}

void kv__packer_init(msgpack_packer *pk, kv_proto_buf *b)
{
    msgpack_packer_init(pk, b, buf_write);
}

int kv__frame_begin(kv_proto_buf *b, size_t hint, size_t *start)
{
    if (hint > SIZE_MAX - 64 || kv_proto_buf_reserve(b, hint + 64) != KV_OK)
        return KV_NO_MEMORY;
    *start = b->len;
    memset(b->data + b->len, 0, KV_PROTO_HEADER_SIZE);
    b->len += KV_PROTO_HEADER_SIZE;
    return KV_OK;
}

int kv__frame_end(kv_proto_buf *b, size_t start, int rc)
{
    size_t body = b->len - start - KV_PROTO_HEADER_SIZE;
    if (rc == KV_OK && body > KV_PROTO_LIMIT_MAX_FRAME)
        rc = KV_FRAME_TOO_LARGE;
    if (rc != KV_OK) {
        b->len = start;
        return rc;
    }
    kv_proto_write_u32(b->data + start, (uint32_t)body);
    return KV_OK;
}

int kv__pack_bin(msgpack_packer *pk, const void *p, size_t n)
{
    if (n > UINT32_MAX)
        return -1;
    if (msgpack_pack_bin(pk, n) != 0)
        return -1;
    return n ? msgpack_pack_bin_body(pk, p, n) : 0;
}

int kv__pack_cstr(msgpack_packer *pk, const char *s)
{
    size_t n = s ? strlen(s) : 0;
    if (n > UINT32_MAX || msgpack_pack_str(pk, n) != 0)
        return -1;
    return n ? msgpack_pack_str_body(pk, s, n) : 0;
}
