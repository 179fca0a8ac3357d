/*
 * frame.c - framing (the u32 big-endian length prefix), the incremental
 * frame splitter, and op names.
 *
 * The splitter never allocates and never trusts the header: a declared
 * length above max_frame is reported before anyone reserves memory for it.
 */
#include "proto_internal.h"

uint32_t kv_proto_read_u32(const void *p)
{
    const uint8_t *b = p;
    return (uint32_t)b[0] << 24 | (uint32_t)b[1] << 16 | (uint32_t)b[2] << 8 |
           (uint32_t)b[3];
}

void kv_proto_write_u32(void *p, uint32_t v)
{
    uint8_t *b = p;
    b[0] = (uint8_t)(v >> 24);
    b[1] = (uint8_t)(v >> 16);
    b[2] = (uint8_t)(v >> 8);
    b[3] = (uint8_t)v;
}

kv_proto_split_result kv_proto_frame_split(const void *buf, size_t len,
                                           size_t max_frame,
                                           size_t *body_off,
                                           size_t *body_len)
{
    if (max_frame == 0)
        max_frame = KV_PROTO_DEFAULT_MAX_FRAME;
    *body_off = KV_PROTO_HEADER_SIZE;
    if (len < KV_PROTO_HEADER_SIZE) {
        *body_len = 0;
        return KV_PROTO_NEED_MORE;
    }
    size_t n = kv_proto_read_u32(buf);
    *body_len = n;
    if (n == 0)
        return KV_PROTO_INVALID;
    if (n > max_frame)
        return KV_PROTO_TOO_LARGE;
    if (len - KV_PROTO_HEADER_SIZE < n)
        return KV_PROTO_NEED_MORE;
    return KV_PROTO_FRAME;
}

const char *kv_proto_op_name(int op)
{
    switch (op) {
#define KV__PROTO_OP_NAME(name, code) \
    case code:                        \
        return #name;
        KV_PROTO_OP_MAP(KV__PROTO_OP_NAME)
#undef KV__PROTO_OP_NAME
    default:
        return "UNKNOWN";
    }
}
