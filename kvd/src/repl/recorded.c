/*
 * recorded.c - the recording reply and its replay (recorded.h).
 *
 * Each call is one record: a tag byte, then its arguments (u64 numbers
 * little-endian, byte strings as u64 length + bytes, absent as
 * UINT64_MAX). Pages (SCAN) are never recorded: only write commands run
 * through Raft.
 */
#include "recorded.h"

#include "bytes.h"

#include <string.h>

enum {
    T_ERROR = 1, T_OK, T_NIL, T_INT, T_UINT, T_DBL, T_BOOL, T_BYTES, T_TEXT, T_WORD,
    T_ARRAY, T_MAP, T_VERSIONED, T_WRITTEN, T_DELETED, T_NIL_ARRAY, T_EXPIRY, T_UPDATED
};

#define ABSENT UINT64_MAX

static int rec(kvd_reply *r, const void *p, size_t n)
{
    if (r->err)
        return r->err;
    if (kv_proto_buf_reserve(r->out, n) != KV_OK)
        return r->err = KV_NO_MEMORY;
    memcpy(r->out->data + r->out->len, p, n);
    r->out->len += n;
    return KV_OK;
}

static int rec_tag(kvd_reply *r, int tag)
{
    unsigned char t = (unsigned char)tag;
    r->started = 1;
    return rec(r, &t, 1);
}

static int rec_u64(kvd_reply *r, uint64_t v)
{
    unsigned char b[8];
    kvd_le_store(b, v, 8);
    return rec(r, b, 8);
}

static int rec_bytes(kvd_reply *r, const void *p, size_t n)
{
    if (!p)
        return rec_u64(r, ABSENT);
    rec_u64(r, n);
    return rec(r, p, n);
}

static int c_error(kvd_reply *r, int status, const char *detail)
{
    if (!r->started)
        r->status = status;
    rec_tag(r, T_ERROR);
    rec_u64(r, (uint64_t)(int64_t)status);
    return rec_bytes(r, detail, detail ? strlen(detail) : 0);
}

static int c_ok(kvd_reply *r, const char *word)
{
    rec_tag(r, T_OK);
    return rec_bytes(r, word, strlen(word));
}

static int c_nil(kvd_reply *r) { return rec_tag(r, T_NIL); }
static int c_nil_array(kvd_reply *r) { return rec_tag(r, T_NIL_ARRAY); }
static int c_integer(kvd_reply *r, int64_t v)
{
    rec_tag(r, T_INT);
    return rec_u64(r, (uint64_t)v);
}
static int c_uinteger(kvd_reply *r, uint64_t v)
{
    rec_tag(r, T_UINT);
    return rec_u64(r, v);
}
static int c_dbl(kvd_reply *r, double v)
{
    uint64_t u;
    memcpy(&u, &v, sizeof u);
    rec_tag(r, T_DBL);
    return rec_u64(r, u);
}
static int c_boolean(kvd_reply *r, int v)
{
    rec_tag(r, T_BOOL);
    return rec_u64(r, v != 0);
}
static int c_bytes(kvd_reply *r, const void *p, size_t n)
{
    rec_tag(r, T_BYTES);
    return rec_bytes(r, p ? p : "", n);
}
static int c_text(kvd_reply *r, const char *s, size_t n)
{
    rec_tag(r, T_TEXT);
    return rec_bytes(r, s, n);
}
static int c_word(kvd_reply *r, const char *s)
{
    rec_tag(r, T_WORD);
    return rec_bytes(r, s, strlen(s));
}
static int c_array(kvd_reply *r, size_t n)
{
    rec_tag(r, T_ARRAY);
    return rec_u64(r, n);
}
static int c_map(kvd_reply *r, size_t n)
{
    rec_tag(r, T_MAP);
    return rec_u64(r, n);
}
static int c_versioned(kvd_reply *r, const void *p, size_t n, uint64_t version)
{
    rec_tag(r, T_VERSIONED);
    rec_bytes(r, p ? p : "", n);
    return rec_u64(r, version);
}
static int c_written(kvd_reply *r, uint64_t revision)
{
    rec_tag(r, T_WRITTEN);
    return rec_u64(r, revision);
}
static int c_deleted(kvd_reply *r, uint64_t n, uint64_t revision)
{
    rec_tag(r, T_DELETED);
    rec_u64(r, n);
    return rec_u64(r, revision);
}

static int c_expiry(kvd_reply *r, unsigned form, int found, uint64_t expire_at_ms,
                    uint64_t now_ms)
{
    rec_tag(r, T_EXPIRY);
    rec_u64(r, form);
    rec_u64(r, (uint64_t)found);
    rec_u64(r, expire_at_ms);
    return rec_u64(r, now_ms);
}
static int c_updated(kvd_reply *r, int status, int changed, uint64_t revision)
{
    if (!r->started && status != KV_OK)
        r->status = status;
    rec_tag(r, T_UPDATED);
    rec_u64(r, (uint64_t)(int64_t)status);
    rec_u64(r, (uint64_t)changed);
    return rec_u64(r, revision);
}

static int c_page_begin(kvd_reply *r, int keys_only, int with_cursor)
{
    (void)keys_only;
    (void)with_cursor;
    return r->err = KV_INTERNAL;
}
static size_t c_page_size(kvd_reply *r) { (void)r; return 0; }
static size_t c_page_entry_size(kvd_reply *r, size_t klen, size_t vlen, uint64_t version)
{
    (void)r;
    (void)version;
    return klen + vlen;
}
static int c_page_add(kvd_reply *r, const void *k, size_t klen, const void *v, size_t vlen,
                      uint64_t version)
{
    (void)k;
    (void)klen;
    (void)v;
    (void)vlen;
    (void)version;
    return r->err = KV_INTERNAL;
}
static void c_page_save(kvd_reply *r) { (void)r; }
static void c_page_restore(kvd_reply *r) { (void)r; }
static int c_page_end(kvd_reply *r, uint64_t next) { (void)next; return r->err = KV_INTERNAL; }

static void c_rewind(kvd_reply *r)
{
    r->out->len = r->mark;
    r->started = 0;
    r->err = KV_OK;
    r->status = KV_OK;
}

static int c_finish(kvd_reply *r) { return r->err; }

static const kvd_reply_ops recording = {
    .error = c_error, .ok = c_ok, .nil = c_nil, .nil_array = c_nil_array, .integer = c_integer,
    .uinteger = c_uinteger, .dbl = c_dbl, .boolean = c_boolean, .bytes = c_bytes,
    .text = c_text, .word = c_word, .array = c_array, .map = c_map,
    .versioned = c_versioned, .written = c_written, .deleted = c_deleted,
    .expiry = c_expiry, .updated = c_updated, .page_begin = c_page_begin, .page_size = c_page_size,
    .page_entry_size = c_page_entry_size, .page_add = c_page_add,
    .page_save = c_page_save, .page_restore = c_page_restore, .page_end = c_page_end,
    .rewind = c_rewind, .finish = c_finish,
};

void kvd_recorded_init(kvd_reply *r, kv_proto_buf *buf)
{
    kvd_reply_init(r, &recording, buf, 0);
}

/* ---- replay ------------------------------------------------------------------ */

typedef kvd_rd rd;

static uint64_t get_u64(rd *r) { return kvd_rd_num(r, 8); }

static const char *get_bytes(rd *r, size_t *n)
{
    uint64_t len = get_u64(r);
    *n = 0;
    if (r->bad || len == ABSENT)
        return NULL;
    if ((uint64_t)(r->end - r->p) < len) {
        r->bad = 1;
        return NULL;
    }
    *n = (size_t)len;
    return (const char *)kvd_rd_take(r, (size_t)len);
}

int kvd_recorded_replay(const void *buf, size_t len, kvd_reply *dst)
{
    rd r = kvd_rd_init(buf, len);
    char word[64];
    while (r.p < r.end && !r.bad) {
        int tag = *r.p++;
        size_t n = 0;
        const char *s;
        switch (tag) {
        case T_ERROR: {
            int status = (int)(int64_t)get_u64(&r);
            s = get_bytes(&r, &n);
            char detail[512];
            if (s) {
                size_t m = n < sizeof detail - 1 ? n : sizeof detail - 1;
                memcpy(detail, s, m);
                detail[m] = 0;
            }
            dst->ops->error(dst, status, s ? detail : NULL);
            break;
        }
        case T_OK:
        case T_WORD:
            s = get_bytes(&r, &n);
            if (!s || n >= sizeof word) {
                r.bad = 1;
                break;
            }
            memcpy(word, s, n);
            word[n] = 0;
            if (tag == T_OK)
                dst->ops->ok(dst, word);
            else
                dst->ops->word(dst, word);
            break;
        case T_NIL: dst->ops->nil(dst); break;
        case T_NIL_ARRAY: dst->ops->nil_array(dst); break;
        case T_INT: dst->ops->integer(dst, (int64_t)get_u64(&r)); break;
        case T_UINT: dst->ops->uinteger(dst, get_u64(&r)); break;
        case T_DBL: {
            uint64_t u = get_u64(&r);
            double d;
            memcpy(&d, &u, sizeof d);
            dst->ops->dbl(dst, d);
            break;
        }
        case T_BOOL: dst->ops->boolean(dst, get_u64(&r) != 0); break;
        case T_BYTES:
            s = get_bytes(&r, &n);
            dst->ops->bytes(dst, s ? s : "", n);
            break;
        case T_TEXT:
            s = get_bytes(&r, &n);
            dst->ops->text(dst, s ? s : "", n);
            break;
        case T_ARRAY: dst->ops->array(dst, (size_t)get_u64(&r)); break;
        case T_MAP: dst->ops->map(dst, (size_t)get_u64(&r)); break;
        case T_VERSIONED: {
            s = get_bytes(&r, &n);
            uint64_t v = get_u64(&r);
            dst->ops->versioned(dst, s ? s : "", n, v);
            break;
        }
        case T_WRITTEN: dst->ops->written(dst, get_u64(&r)); break;
        case T_DELETED: {
            uint64_t cnt = get_u64(&r);
            dst->ops->deleted(dst, cnt, get_u64(&r));
            break;
        }
        case T_EXPIRY: {
            unsigned form = (unsigned)get_u64(&r);
            int found = get_u64(&r) != 0;
            uint64_t at = get_u64(&r);
            dst->ops->expiry(dst, form, found, at, get_u64(&r));
            break;
        }
        case T_UPDATED: {
            int status = (int)(int64_t)get_u64(&r);
            int changed = get_u64(&r) != 0;
            dst->ops->updated(dst, status, changed, get_u64(&r));
            break;
        }
        default: r.bad = 1;
        }
    }
    return r.bad ? KV_CORRUPT : KV_OK;
}
