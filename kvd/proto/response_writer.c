/*
 * response_writer.c - a response [id, 0, result] built element by element
 * (kv_proto_writer in kv_proto.h), for servers whose results are produced
 * by code that does not know the wire format: kvd's command layer calls
 * the MessagePack front-end's reply functions, which call these.
 *
 * The frame and the envelope are written at begin; elements follow as the
 * caller produces them; end patches the length prefix. An error of any
 * element sticks (err) and makes end drop the whole frame, so a buffer
 * still only ever holds complete frames.
 */
#include <string.h>

#include "proto_internal.h"

int kv_proto_writer_begin(kv_proto_writer *w, kv_proto_buf *b, uint64_t id, size_t hint)
{
    w->b = b;
    w->err = 0;
    if (kv__frame_begin(b, hint + 16, &w->start) != KV_OK) {
        w->err = KV_NO_MEMORY;
        w->start = b->len;
        return KV_NO_MEMORY;
    }
    msgpack_packer pk;
    kv__packer_init(&pk, b);
    int e = msgpack_pack_array(&pk, 3);
    e |= msgpack_pack_uint64(&pk, id);
    e |= msgpack_pack_unsigned_int(&pk, KV_OK);
    if (e)
        w->err = KV_NO_MEMORY;
    return w->err;
}

#define PACK(w, call)                          \
    do {                                       \
        if ((w)->err)                          \
            return (w)->err;                   \
        msgpack_packer pk;                     \
        kv__packer_init(&pk, (w)->b);          \
        if (call)                              \
            (w)->err = KV_NO_MEMORY;           \
        return (w)->err;                       \
    } while (0)

int kv_proto_writer_array(kv_proto_writer *w, size_t n)
{
    if (n > UINT32_MAX && !w->err)
        w->err = KV_FRAME_TOO_LARGE;
    PACK(w, msgpack_pack_array(&pk, n));
}

int kv_proto_writer_map(kv_proto_writer *w, size_t n)
{
    if (n > UINT32_MAX && !w->err)
        w->err = KV_FRAME_TOO_LARGE;
    PACK(w, msgpack_pack_map(&pk, n));
}

int kv_proto_writer_uint(kv_proto_writer *w, uint64_t v)
{
    PACK(w, msgpack_pack_uint64(&pk, v));
}

int kv_proto_writer_int(kv_proto_writer *w, int64_t v)
{
    PACK(w, msgpack_pack_int64(&pk, v));
}

int kv_proto_writer_double(kv_proto_writer *w, double v)
{
    PACK(w, msgpack_pack_double(&pk, v));
}

int kv_proto_writer_bool(kv_proto_writer *w, int v)
{
    PACK(w, v ? msgpack_pack_true(&pk) : msgpack_pack_false(&pk));
}

int kv_proto_writer_nil(kv_proto_writer *w)
{
    PACK(w, msgpack_pack_nil(&pk));
}

int kv_proto_writer_bin(kv_proto_writer *w, const void *p, size_t n)
{
    if (!w->err && kv_proto_buf_reserve(w->b, n + 8) != KV_OK)
        w->err = KV_NO_MEMORY;
    PACK(w, kv__pack_bin(&pk, p, n));
}

int kv_proto_writer_str(kv_proto_writer *w, const char *s)
{
    PACK(w, kv__pack_cstr(&pk, s));
}

int kv_proto_writer_strn(kv_proto_writer *w, const char *s, size_t n)
{
    if (!w->err && kv_proto_buf_reserve(w->b, n + 8) != KV_OK)
        w->err = KV_NO_MEMORY;
    PACK(w, n > UINT32_MAX || msgpack_pack_str(&pk, n) != 0 ||
                (n && msgpack_pack_str_body(&pk, s, n) != 0));
}

size_t kv_proto_writer_size(const kv_proto_writer *w)
{
    return w->b->len - w->start;
}

int kv_proto_writer_end(kv_proto_writer *w)
{
    return kv__frame_end(w->b, w->start, w->err);
}

void kv_proto_writer_abort(kv_proto_writer *w)
{
    w->b->len = w->start;
    w->err = KV_INVALID_ARGUMENT;
}
