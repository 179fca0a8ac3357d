/*
 * response_encode.c - server side: responses [id, status, result] appended
 * as complete frames to a kv_proto_buf (docs/protocol.md sections 2, 4).
 *
 * Each function is one frame; a server appends a batch of them and writes
 * the buffer once. MGET and SCAN can be streamed from the store's zero-copy
 * callbacks. MGET knows its count up front, so begin writes the whole
 * envelope; SCAN's begin writes a fixed-width cursor and a 32-bit array
 * count, add appends entries straight from kv_scan's callback, and end
 * patches both (a non-minimal but valid MessagePack encoding).
 */
#include <string.h>

#include "proto_internal.h"

/* Envelope [id, status, <result follows>]. */
static int envelope(msgpack_packer *pk, uint64_t id, int status)
{
    int e = msgpack_pack_array(pk, 3);
    e |= msgpack_pack_uint64(pk, id);
    e |= msgpack_pack_unsigned_int(pk, (unsigned)status);
    return e;
}

#define RESP_BEGIN(b, hint, id, status)                          \
    size_t start_;                                               \
    msgpack_packer pk_;                                          \
    int e_;                                                      \
    if (kv__frame_begin((b), (hint), &start_) != KV_OK)          \
        return KV_NO_MEMORY;                                     \
    kv__packer_init(&pk_, (b));                                  \
    e_ = envelope(&pk_, (id), (status))

#define RESP_END(b) return kv__frame_end((b), start_, e_ ? KV_NO_MEMORY : KV_OK)

int kv_proto_resp_status(kv_proto_buf *b, uint64_t id, int status,
                         const char *detail)
{
    RESP_BEGIN(b, detail ? strlen(detail) + 16 : 16, id, status);
    if (detail != NULL)
        e_ |= kv__pack_cstr(&pk_, detail);
    else
        e_ |= msgpack_pack_nil(&pk_);
    RESP_END(b);
}

int kv_proto_resp_hello(kv_proto_buf *b, uint64_t id, uint64_t version,
                        const char *server_name, const char *server_version)
{
    RESP_BEGIN(b, 64, id, KV_OK);
    e_ |= msgpack_pack_array(&pk_, 3);
    e_ |= msgpack_pack_uint64(&pk_, version);
    e_ |= kv__pack_cstr(&pk_, server_name);
    e_ |= kv__pack_cstr(&pk_, server_version);
    RESP_END(b);
}

int kv_proto_resp_ping(kv_proto_buf *b, uint64_t id, const void *payload,
                       size_t len)
{
    RESP_BEGIN(b, len + 16, id, KV_OK);
    e_ |= kv__pack_bin(&pk_, payload, len);
    RESP_END(b);
}

int kv_proto_resp_value(kv_proto_buf *b, uint64_t id, const void *val,
                        size_t vlen, uint64_t version)
{
    RESP_BEGIN(b, vlen + 32, id, KV_OK);
    e_ |= msgpack_pack_array(&pk_, 2);
    e_ |= kv__pack_bin(&pk_, val, vlen);
    e_ |= msgpack_pack_uint64(&pk_, version);
    RESP_END(b);
}

int kv_proto_resp_version(kv_proto_buf *b, uint64_t id, uint64_t version)
{
    RESP_BEGIN(b, 24, id, KV_OK);
    e_ |= msgpack_pack_uint64(&pk_, version);
    RESP_END(b);
}

int kv_proto_resp_del(kv_proto_buf *b, uint64_t id, uint64_t deleted,
                      uint64_t version)
{
    RESP_BEGIN(b, 32, id, KV_OK);
    e_ |= msgpack_pack_array(&pk_, 2);
    e_ |= msgpack_pack_uint64(&pk_, deleted);
    e_ |= msgpack_pack_uint64(&pk_, version);
    RESP_END(b);
}

int kv_proto_resp_mget(kv_proto_buf *b, uint64_t id, const kv_value *values,
                       size_t n)
{
    kv_proto_mget_writer w;
    int rc = kv_proto_resp_mget_begin(b, id, n, &w);
    for (size_t i = 0; i < n && rc == KV_OK; i++)
        rc = kv_proto_resp_mget_add(&w, values[i].data, values[i].len, values[i].version);
    if (rc != KV_OK) {
        kv_proto_resp_mget_abort(&w);
        return rc;
    }
    return kv_proto_resp_mget_end(&w);
}

/* ---- MGET (streamed) -------------------------------------------------- */

int kv_proto_resp_mget_begin(kv_proto_buf *b, uint64_t id, size_t n,
                             kv_proto_mget_writer *w)
{
    /* left stays 0 until the envelope is written: after a failed begin,
     * add and end refuse */
    *w = (kv_proto_mget_writer){b, b->len, 0};
    if (n > UINT32_MAX)
        return KV_INVALID_ARGUMENT;
    /* a guess for small values; adds reserve for what they carry */
    RESP_BEGIN(b, 16 + 32 * (n < 1024 ? n : 1024), id, KV_OK);
    w->start = start_;
    e_ |= msgpack_pack_array(&pk_, n);
    if (e_) {
        b->len = start_;
        return KV_NO_MEMORY;
    }
    w->left = n;
    return KV_OK;
}

int kv_proto_resp_mget_add(kv_proto_mget_writer *w, const void *val, size_t vlen,
                           uint64_t version)
{
    kv_proto_buf *b = w->b;
    size_t before = b->len;
    if (w->left == 0)
        return KV_INVALID_ARGUMENT;
    if (kv_proto_buf_reserve(b, vlen + 24) != KV_OK)
        return KV_NO_MEMORY;
    msgpack_packer pk;
    kv__packer_init(&pk, b);
    int e;
    if (val == NULL) {
        e = msgpack_pack_nil(&pk);
    } else {
        e = msgpack_pack_array(&pk, 2);
        e |= kv__pack_bin(&pk, val, vlen);
        e |= msgpack_pack_uint64(&pk, version);
    }
    if (e) {
        b->len = before;
        return KV_NO_MEMORY;
    }
    w->left--;
    return KV_OK;
}

int kv_proto_resp_mget_end(kv_proto_mget_writer *w)
{
    if (w->left != 0) {
        w->b->len = w->start;
        return KV_INVALID_ARGUMENT;
    }
    return kv__frame_end(w->b, w->start, KV_OK);
}

void kv_proto_resp_mget_abort(kv_proto_mget_writer *w)
{
    w->b->len = w->start;
    w->left = 0;
}

int kv_proto_resp_txn(kv_proto_buf *b, uint64_t id, const kv_txn_result *r)
{
    size_t hint = 32;
    for (size_t i = 0; i < r->nresults; i++)
        hint += r->results[i].value.len + 16;
    RESP_BEGIN(b, hint, id, KV_OK);
    e_ |= msgpack_pack_array(&pk_, 3);
    e_ |= r->succeeded ? msgpack_pack_true(&pk_) : msgpack_pack_false(&pk_);
    e_ |= msgpack_pack_uint64(&pk_, r->version);
    e_ |= msgpack_pack_array(&pk_, r->nresults);
    for (size_t i = 0; i < r->nresults && e_ == 0; i++) {
        const kv_op_result *o = &r->results[i];
        e_ |= msgpack_pack_array(&pk_, o->value.data ? 3 : 1);
        e_ |= msgpack_pack_unsigned_int(&pk_, (unsigned)o->status);
        if (o->value.data) {
            e_ |= kv__pack_bin(&pk_, o->value.data, o->value.len);
            e_ |= msgpack_pack_uint64(&pk_, o->value.version);
        }
    }
    RESP_END(b);
}

/* ---- METRICS ---------------------------------------------------------- */

#define STORE_METRICS(XX)                                                 \
    XX(keys) XX(key_bytes) XX(value_bytes) XX(memory_bytes) XX(revision)  \
    XX(gets) XX(get_hits) XX(get_misses) XX(sets) XX(deletes)             \
    XX(cas_failures) XX(txn_commits) XX(txn_conflicts) XX(table_slots)    \
    XX(table_resizes) XX(durable_revision) XX(log_bytes) XX(log_records)  \
    XX(log_batches) XX(log_syncs) XX(snapshots) XX(snapshot_failures)     \
    XX(snapshot_revision)

#define COUNT_ONE(f) +1
enum { NSTORE = 0 STORE_METRICS(COUNT_ONE) };

static int pack_number(msgpack_packer *pk, const kv_proto_metric *m)
{
    if (m->kind == KV_PROTO_METRIC_DOUBLE)
        return msgpack_pack_double(pk, m->d);
    return msgpack_pack_uint64(pk, m->u);
}

static int check_metrics(const kv_proto_metric *m, size_t n, int depth)
{
    if (n != 0 && m == NULL)
        return 0;
    for (size_t i = 0; i < n; i++) {
        if (m[i].name == NULL || (unsigned)m[i].kind > KV_PROTO_METRIC_MAP)
            return 0;
        if (m[i].kind == KV_PROTO_METRIC_MAP &&
            (depth > 0 || !check_metrics(m[i].children, m[i].nchildren, 1)))
            return 0;
    }
    return 1;
}

int kv_proto_resp_metrics(kv_proto_buf *b, uint64_t id,
                          const kv_metrics *store,
                          const kv_proto_metric *extra, size_t nextra)
{
    if (!check_metrics(extra, nextra, 0))
        return KV_INVALID_ARGUMENT;
    size_t nstore = store ? NSTORE : 0;
    RESP_BEGIN(b, 512 + 48 * nextra, id, KV_OK);
    e_ |= msgpack_pack_map(&pk_, nstore + nextra);
    if (store != NULL) {
#define PACK_FIELD(f)                                \
    e_ |= kv__pack_cstr(&pk_, #f);                   \
    e_ |= msgpack_pack_uint64(&pk_, store->f);
        STORE_METRICS(PACK_FIELD)
#undef PACK_FIELD
    }
    for (size_t i = 0; i < nextra && e_ == 0; i++) {
        const kv_proto_metric *m = &extra[i];
        e_ |= kv__pack_cstr(&pk_, m->name);
        if (m->kind != KV_PROTO_METRIC_MAP) {
            e_ |= pack_number(&pk_, m);
            continue;
        }
        e_ |= msgpack_pack_map(&pk_, m->nchildren);
        for (size_t j = 0; j < m->nchildren; j++) {
            e_ |= kv__pack_cstr(&pk_, m->children[j].name);
            e_ |= pack_number(&pk_, &m->children[j]);
        }
    }
    RESP_END(b);
}

/* ---- SCAN (streamed) -------------------------------------------------- */

/* Layout after the frame header:
 *   93 <id> 00 92 cf <cursor: 8 bytes> dd <count: 4 bytes> entries...
 * The cursor and count sit at fixed offsets from the array marker. */
#define SCAN_FIXED 15 /* 92 + cf + 8 + dd + 4 */

int kv_proto_resp_scan_begin(kv_proto_buf *b, uint64_t id,
                             kv_proto_scan_writer *w)
{
    size_t start;
    msgpack_packer pk;
    if (kv__frame_begin(b, 256, &start) != KV_OK)
        return KV_NO_MEMORY;
    kv__packer_init(&pk, b);
    if (envelope(&pk, id, KV_OK) != 0 ||
        kv_proto_buf_reserve(b, SCAN_FIXED) != KV_OK) {
        b->len = start;
        return KV_NO_MEMORY;
    }
    uint8_t *p = b->data + b->len;
    memset(p, 0, SCAN_FIXED);
    p[0] = 0x92;
    p[1] = 0xcf;
    p[10] = 0xdd;
    b->len += SCAN_FIXED;
    w->b = b;
    w->start = start;
    w->count = 0;
    return KV_OK;
}

int kv_proto_resp_scan_add(kv_proto_scan_writer *w, const void *key,
                           size_t klen, const void *val, size_t vlen,
                           uint64_t version)
{
    kv_proto_buf *b = w->b;
    size_t before = b->len;
    msgpack_packer pk;
    if (w->count >= UINT32_MAX / 3 ||
        kv_proto_buf_reserve(b, klen + vlen + 24) != KV_OK)
        return KV_NO_MEMORY;
    kv__packer_init(&pk, b);
    int e = kv__pack_bin(&pk, key, klen);
    e |= kv__pack_bin(&pk, val, vlen);
    e |= msgpack_pack_uint64(&pk, version);
    if (e) {
        b->len = before;
        return KV_NO_MEMORY;
    }
    w->count++;
    return KV_OK;
}

int kv_proto_resp_scan_end(kv_proto_scan_writer *w, uint64_t next_cursor)
{
    kv_proto_buf *b = w->b;
    /* the fixed part follows the 4-byte header and the envelope */
    uint8_t *p = b->data + w->start + KV_PROTO_HEADER_SIZE;
    kv__rd r = {p, b->data + b->len};
    size_t n;
    uint64_t skip;
    /* walk the envelope we wrote: array, id, status */
    if (kv__rd_array(&r, &n) || kv__rd_uint(&r, &skip) ||
        kv__rd_uint(&r, &skip)) {
        b->len = w->start;
        return KV_INTERNAL;
    }
    uint8_t *f = (uint8_t *)r.p;
    for (int i = 0; i < 8; i++)
        f[2 + i] = (uint8_t)(next_cursor >> (56 - 8 * i));
    kv_proto_write_u32(f + 11, (uint32_t)(3 * w->count));
    return kv__frame_end(b, w->start, KV_OK);
}

void kv_proto_resp_scan_abort(kv_proto_scan_writer *w)
{
    w->b->len = w->start;
    w->count = 0;
}
