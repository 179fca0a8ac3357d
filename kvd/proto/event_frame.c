/*
 * event_frame.c - the frames a WATCH sends after its response (protocol
 * version 6, docs/protocol.md "WATCH"): encoding (server) and decoding
 * (client).
 *
 *   [watch_id, status, [[revision, key, value | nil, create_revision,
 *                        version, expire_at_ms], ...], next_revision]
 *   [watch_id, status, nil, next_revision]        the end of the watch
 *
 * Four elements where every response has three, so a client reading a
 * connection that carries both tells them apart by the array header. A
 * server sizes its frames with kv_proto_event_size before it encodes them
 * (the size is exact: the packer writes the shortest forms).
 */
#include <string.h>

#include "proto_internal.h"

/* ---- encoding -------------------------------------------------------------- */

static size_t uint_size(uint64_t v)
{
    return v < 128 ? 1 : v <= UINT8_MAX ? 2 : v <= UINT16_MAX ? 3 : v <= UINT32_MAX ? 5 : 9;
}

static size_t bin_size(size_t n)
{
    return n + (n <= UINT8_MAX ? 2 : n <= UINT16_MAX ? 3 : 5);
}

size_t kv_proto_event_size(const kv_event *e)
{
    size_t n = 1 + uint_size(e->revision) + bin_size(e->klen);
    if (e->deleted)
        return n + 1 + 3; /* nil, then three zeros */
    return n + bin_size(e->vlen) + uint_size(e->create_revision) + uint_size(e->version) +
           uint_size(e->expire_at_ms);
}

static int pack_event(msgpack_packer *pk, const kv_event *e)
{
    int r = msgpack_pack_array(pk, 6);
    r |= msgpack_pack_uint64(pk, e->revision);
    r |= kv__pack_bin(pk, e->key, e->klen);
    if (e->deleted) {
        r |= msgpack_pack_nil(pk);
        r |= msgpack_pack_uint64(pk, 0);
        r |= msgpack_pack_uint64(pk, 0);
        r |= msgpack_pack_uint64(pk, 0);
        return r;
    }
    r |= kv__pack_bin(pk, e->value, e->vlen);
    r |= msgpack_pack_uint64(pk, e->create_revision);
    r |= msgpack_pack_uint64(pk, e->version);
    r |= msgpack_pack_uint64(pk, e->expire_at_ms);
    return r;
}

int kv_proto_event_frame(kv_proto_buf *b, uint64_t id, const kv_event *events, size_t n,
                         uint64_t next_revision)
{
    if (n > UINT32_MAX)
        return KV_FRAME_TOO_LARGE;
    size_t hint = KV_PROTO_EVENT_FRAME_OVERHEAD;
    for (size_t i = 0; i < n; i++)
        hint += kv_proto_event_size(&events[i]);
    size_t start;
    if (kv__frame_begin(b, hint, &start) != KV_OK)
        return KV_NO_MEMORY;
    msgpack_packer pk;
    kv__packer_init(&pk, b);
    int r = msgpack_pack_array(&pk, 4);
    r |= msgpack_pack_uint64(&pk, id);
    r |= msgpack_pack_unsigned_int(&pk, KV_OK);
    r |= msgpack_pack_array(&pk, n);
    for (size_t i = 0; i < n && r == 0; i++)
        r |= pack_event(&pk, &events[i]);
    r |= msgpack_pack_uint64(&pk, next_revision);
    return kv__frame_end(b, start, r ? KV_NO_MEMORY : KV_OK);
}

int kv_proto_event_end(kv_proto_buf *b, uint64_t id, int status, uint64_t next_revision)
{
    size_t start;
    if (kv__frame_begin(b, KV_PROTO_EVENT_FRAME_OVERHEAD, &start) != KV_OK)
        return KV_NO_MEMORY;
    msgpack_packer pk;
    kv__packer_init(&pk, b);
    int r = msgpack_pack_array(&pk, 4);
    r |= msgpack_pack_uint64(&pk, id);
    r |= msgpack_pack_unsigned_int(&pk, (unsigned)status);
    r |= msgpack_pack_nil(&pk);
    r |= msgpack_pack_uint64(&pk, next_revision);
    return kv__frame_end(b, start, r ? KV_NO_MEMORY : KV_OK);
}

/* ---- decoding -------------------------------------------------------------- */

int kv_proto_is_event_frame(const void *body, size_t len)
{
    kv__rd r = {body, (const uint8_t *)body + len};
    size_t n;
    return body != NULL && kv__rd_array(&r, &n) == 0 && n == 4;
}

static int bad(kv_proto_event_frame_t *f, const char *why)
{
    f->error = why;
    return KV_PROTOCOL;
}

#define EVENT_SHAPE "an event is [revision, key, value, create_revision, version, expire_at_ms]"

int kv_proto_event_frame_decode(const void *body, size_t len, kv_proto_arena *arena,
                                kv_proto_event_frame_t *out)
{
    memset(out, 0, sizeof *out);
    if (body == NULL || len == 0)
        return bad(out, "empty frame");
    kv__rd r = {body, (const uint8_t *)body + len};
    kv__alloc al = {arena, &out->owned_};
    size_t n;
    uint64_t status;
    if (kv__rd_array(&r, &n) || n != 4 || kv__rd_uint(&r, &out->id) ||
        kv__rd_uint(&r, &status) || status > 255)
        return bad(out, "an event frame is [watch_id, status, events, next_revision]");
    out->status = (int)status;
    int nil = kv__rd_nil(&r);
    if (nil < 0)
        return bad(out, "an event frame is [watch_id, status, events, next_revision]");
    if (nil) {
        out->end = 1;
    } else {
        size_t m;
        if (kv__rd_array(&r, &m))
            return bad(out, "an event frame's events are an array or nil");
        kv_proto_event *e = kv__alloc_array(&al, m, sizeof *e);
        if (e == NULL) {
            out->error = "out of memory";
            return KV_NO_MEMORY;
        }
        for (size_t i = 0; i < m; i++) {
            size_t k;
            memset(&e[i], 0, sizeof e[i]);
            if (kv__rd_array(&r, &k) || k != 6 || kv__rd_uint(&r, &e[i].revision) ||
                kv__rd_bytes(&r, &e[i].key) || (nil = kv__rd_nil(&r)) < 0)
                return bad(out, EVENT_SHAPE);
            if (nil) {
                e[i].deleted = 1;
            } else {
                kv_key v;
                if (kv__rd_bytes(&r, &v))
                    return bad(out, "an event's value must be bin or nil");
                e[i].value = v.data;
                e[i].vlen = v.len;
            }
            if (kv__rd_uint(&r, &e[i].create_revision) || kv__rd_uint(&r, &e[i].version) ||
                kv__rd_uint(&r, &e[i].expire_at_ms))
                return bad(out, EVENT_SHAPE);
        }
        out->events = e;
        out->nevents = m;
    }
    if (kv__rd_uint(&r, &out->next_revision))
        return bad(out, "an event frame's next_revision must be an unsigned int");
    if (r.p != r.end)
        return bad(out, "trailing bytes after the event frame");
    return KV_OK;
}

void kv_proto_event_frame_free(kv_proto_event_frame_t *f)
{
    if (f != NULL)
        kv__alloc_release(&f->owned_);
}
