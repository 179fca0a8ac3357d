/*
 * response_encode.c - server side: responses [id, status, result] appended
 * as complete frames to a kv_proto_buf (docs/protocol.md sections 2, 4).
 *
 * Each function is one frame; a server appends a batch of them and writes
 * the buffer once. MGET and SCAN can be streamed from the store's zero-copy
 * callbacks. MGET knows its count up front, so begin writes the whole
 * envelope; SCAN's begin reserves room for the widest cursor and array
 * count, add appends entries straight from kv_scan's callback, and end
 * writes both in their shortest form, moving the entries back over the
 * unused reserve (one memmove of the page, so the encoding is the
 * shortest, as docs/protocol.md section 3 says encoders use).
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
    XX(snapshot_revision) XX(expired_keys) XX(keys_with_ttl)              \
    XX(evicted_keys) XX(max_memory) XX(memory_used) XX(history_versions)  \
    XX(history_bytes) XX(compact_revision)

#define COUNT_ONE(f) +1
enum { NSTORE = 0 STORE_METRICS(COUNT_ONE) };

size_t kv_proto_store_metrics(const kv_metrics *store, kv_proto_metric *out, size_t cap)
{
    size_t n = 0;
#define STORE_ITEM(f)                                                         \
    if (n < cap)                                                              \
        out[n] = (kv_proto_metric){.name = #f, .kind = KV_PROTO_METRIC_UINT,  \
                                   .u = store->f};                            \
    n++;
    STORE_METRICS(STORE_ITEM)
#undef STORE_ITEM
    return n;
}

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
 *   93 <id> 00 <reserve: SCAN_RESERVE bytes> entries...
 * where end writes 92 <cursor> <array header> into the reserve, right
 * before the entries, then moves them back so the frame has no gap. */
#define SCAN_RESERVE 15 /* 92 + cf + 8 + dd + 4: the widest header */

static size_t uint_size(uint64_t v)
{
    return v < 128 ? 1 : v <= UINT8_MAX ? 2 : v <= UINT16_MAX ? 3 : v <= UINT32_MAX ? 5 : 9;
}

static size_t bin_size(size_t n)
{
    return (n <= UINT8_MAX ? 2 : n <= UINT16_MAX ? 3 : 5) + n;
}

size_t kv_proto_resp_scan_entry_size(size_t klen, size_t vlen, uint64_t version, int keys_only)
{
    return bin_size(klen) + (keys_only ? 0 : bin_size(vlen)) + uint_size(version);
}

size_t kv_proto_resp_scan_size(const kv_proto_scan_writer *w)
{
    return w->end - w->start - KV_PROTO_HEADER_SIZE;
}

int kv_proto_resp_scan_begin(kv_proto_buf *b, uint64_t id,
                             kv_proto_scan_writer *w)
{
    size_t start;
    msgpack_packer pk;
    if (kv__frame_begin(b, 256, &start) != KV_OK)
        return KV_NO_MEMORY;
    kv__packer_init(&pk, b);
    if (envelope(&pk, id, KV_OK) != 0 ||
        kv_proto_buf_reserve(b, SCAN_RESERVE) != KV_OK) {
        b->len = start;
        return KV_NO_MEMORY;
    }
    memset(b->data + b->len, 0, SCAN_RESERVE);
    b->len += SCAN_RESERVE;
    *w = (kv_proto_scan_writer){.b = b, .start = start, .end = b->len};
    return KV_OK;
}

static int scan_add(kv_proto_scan_writer *w, const void *key, size_t klen,
                    const void *val, size_t vlen, uint64_t version, int keys_only)
{
    kv_proto_buf *b = w->b;
    size_t before = b->len;
    msgpack_packer pk;
    if (w->items > UINT32_MAX - 3 ||
        kv_proto_buf_reserve(b, kv_proto_resp_scan_entry_size(klen, vlen, version,
                                                              keys_only)) != KV_OK)
        return KV_NO_MEMORY;
    kv__packer_init(&pk, b);
    int e = kv__pack_bin(&pk, key, klen);
    if (!keys_only)
        e |= kv__pack_bin(&pk, val, vlen);
    e |= msgpack_pack_uint64(&pk, version);
    if (e) {
        b->len = before;
        return KV_NO_MEMORY;
    }
    w->count++;
    w->items += keys_only ? 2 : 3;
    w->end = b->len;
    return KV_OK;
}

int kv_proto_resp_scan_add(kv_proto_scan_writer *w, const void *key,
                           size_t klen, const void *val, size_t vlen,
                           uint64_t version)
{
    return scan_add(w, key, klen, val, vlen, version, 0);
}

int kv_proto_resp_scan_add_key(kv_proto_scan_writer *w, const void *key,
                               size_t klen, uint64_t version)
{
    return scan_add(w, key, klen, NULL, 0, version, 1);
}

void kv_proto_resp_scan_rewind(kv_proto_scan_writer *w,
                               const kv_proto_scan_writer *saved)
{
    w->b->len = saved->end;
    w->end = saved->end;
    w->count = saved->count;
    w->items = saved->items;
}

/* A packer target of a few bytes on the stack (the SCAN result header). */
typedef struct small_out {
    uint8_t p[SCAN_RESERVE];
    size_t len;
} small_out;

static int small_write(void *data, const char *src, size_t len)
{
    small_out *o = data;
    if (len > sizeof o->p - o->len)
        return -1;
    memcpy(o->p + o->len, src, len);
    o->len += len;
    return 0;
}

int kv_proto_resp_scan_end(kv_proto_scan_writer *w, uint64_t next_cursor)
{
    kv_proto_buf *b = w->b;
    /* the reserve is the last SCAN_RESERVE bytes before the entries */
    size_t entries = w->start + KV_PROTO_HEADER_SIZE;
    kv__rd r = {b->data + entries, b->data + b->len};
    size_t n;
    uint64_t skip;
    /* walk the envelope we wrote: array, id, status */
    if (kv__rd_array(&r, &n) || kv__rd_uint(&r, &skip) || kv__rd_uint(&r, &skip)) {
        b->len = w->start;
        return KV_INTERNAL;
    }
    uint8_t *reserve = (uint8_t *)r.p;
    small_out h = {.len = 0};
    msgpack_packer pk;
    msgpack_packer_init(&pk, &h, small_write);
    if (msgpack_pack_array(&pk, 2) || msgpack_pack_uint64(&pk, next_cursor) ||
        msgpack_pack_array(&pk, w->items)) {
        b->len = w->start;
        return KV_INTERNAL;
    }
    memcpy(reserve, h.p, h.len);
    uint8_t *first = reserve + SCAN_RESERVE;
    size_t tail = (size_t)(b->data + b->len - first);
    if (h.len < SCAN_RESERVE) {
        memmove(reserve + h.len, first, tail);
        b->len -= SCAN_RESERVE - h.len;
    }
    w->end = b->len;
    return kv__frame_end(b, w->start, KV_OK);
}

void kv_proto_resp_scan_abort(kv_proto_scan_writer *w)
{
    w->b->len = w->start;
    w->count = 0;
    w->items = 0;
    w->end = w->start;
}
