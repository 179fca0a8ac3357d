/*
 * entry.c - the Raft entry format of a write command (entry.h).
 *
 * Little-endian, fixed fields then length-prefixed byte strings:
 *   u8 format (4), u32 length (of the entry without its padding: Raft's
 *   storage wants multiples of 8 bytes), u64 clock (the leader's clock
 *   reading when it proposed the entry, ms), u8 kind, u32 sub,
 *   u32 flags, u8 has_key,
 *   u8 has_expected, u64 expected, u64 a, u64 b, u64 limit, i64 i,
 *   f64 f, u8 exp_mode, u64 exp, u64 rev, u64 client, u64 seq,
 *   bytes key, bytes value,
 *   u32 n + n bytes (keys), u32 n + n (bytes key, bytes value) (pairs),
 *   u32 n + n (u8 kind, bytes key, u64 version, bytes value) (compares),
 *   u32 n + n (u8 kind, bytes key, bytes value, u64 expire_at_ms) (then
 *   ops), same (else)
 * where bytes = u32 length (0xffffffff: absent) + the bytes. rev is the
 * revision of ROLLBACK (to_rev) and COMPACT, the replicated history
 * commands. client and seq are the request id a client gave the write
 * (SESSION, then the request's id; sessions.h), 0 0 for none. Format 4
 * lacks them, format 3 also rev (its entries have no history command),
 * format 2 also the clock, format 1 (before key expiry) also exp_mode and
 * exp; all are still read, so a node's older log applies as it did (with
 * the node's own clock where they carry none). The clock sits at a fixed offset so
 * that the Raft thread stamps an encoded entry as it proposes it, in log
 * order (kvd_entry_stamp). Expiry times in an entry are
 * always Unix times (kvd_cmd_resolve_expiry ran on the leader before it
 * proposed it), so every node applies the same ones. Entries are
 * read back only from the node's own Raft log or a peer's (checksummed by
 * the Raft library), but every length is still checked.
 *
 * A batch (several writes in one Raft entry, entry.h):
 *   u8 BATCH (0x80), u32 length, u64 clock (unused: each write carries
 *   its own), u32 n, then n times u32 length + a write entry as
 *   kvd_entry_encode made it (padding included)
 * and Raft's padding. Its first byte tells it from a write entry (whose
 * format is 1 to 5); a node of a kvd from before batches cannot apply it
 * (docs/replication.md).
 */
#include "entry.h"

#include "bytes.h"

#include <raft.h>
#include <stdlib.h>
#include <string.h>

#define FORMAT 5
#define FORMAT_NO_REQ_ID 4
#define FORMAT_NO_REV 3
#define FORMAT_NO_CLOCK 2
#define FORMAT_NO_EXPIRY 1
#define BATCH 0x80
#define BATCH_HEAD 17 /* format, length, clock, count */
#define CLOCK_AT 5 /* after the format and the length */
#define ABSENT 0xffffffffu

typedef struct wr {
    unsigned char *p;
    size_t len, cap;
} wr;

static void put(wr *w, const void *src, size_t n)
{
    if (w->p && n)
        memcpy(w->p + w->len, src, n);
    w->len += n;
}

static void put_u8(wr *w, unsigned v)
{
    unsigned char b = (unsigned char)v;
    put(w, &b, 1);
}

static void put_u32(wr *w, uint32_t v)
{
    unsigned char b[4];
    kvd_le_store(b, v, 4);
    put(w, b, 4);
}

static void put_u64(wr *w, uint64_t v)
{
    unsigned char b[8];
    kvd_le_store(b, v, 8);
    put(w, b, 8);
}

static void put_bytes(wr *w, const void *p, size_t n)
{
    if (!p) {
        put_u32(w, ABSENT);
        return;
    }
    put_u32(w, (uint32_t)n);
    put(w, p, n);
}

static void put_ops(wr *w, const kv_op *ops, size_t n)
{
    put_u32(w, (uint32_t)n);
    for (size_t i = 0; i < n; i++) {
        put_u8(w, ops[i].kind);
        put_bytes(w, ops[i].key, ops[i].klen);
        put_bytes(w, ops[i].value, ops[i].vlen);
        put_u64(w, ops[i].expire_at_ms);
    }
}

static void encode(wr *w, const kvd_cmd *c, uint64_t client, uint64_t seq, uint32_t total)
{
    put_u8(w, FORMAT);
    put_u32(w, total);
    put_u64(w, 0); /* the clock: kvd_entry_stamp */
    put_u8(w, (unsigned)c->kind);
    put_u32(w, (uint32_t)c->sub);
    put_u32(w, c->flags);
    put_u8(w, (unsigned)c->has_key);
    put_u8(w, (unsigned)c->has_expected);
    put_u64(w, c->expected);
    put_u64(w, c->a);
    put_u64(w, c->b);
    put_u64(w, c->limit);
    put_u64(w, (uint64_t)c->i);
    uint64_t f;
    memcpy(&f, &c->f, sizeof f);
    put_u64(w, f);
    put_u8(w, (unsigned)c->exp_mode);
    put_u64(w, c->exp);
    put_u64(w, c->rev);
    put_u64(w, client);
    put_u64(w, seq);
    put_bytes(w, c->key.data, c->key.len);
    put_bytes(w, c->value.data, c->value.len);
    put_u32(w, (uint32_t)c->nkeys);
    for (size_t i = 0; i < c->nkeys; i++)
        put_bytes(w, c->keys[i].data, c->keys[i].len);
    put_u32(w, (uint32_t)c->npairs);
    for (size_t i = 0; i < c->npairs; i++) {
        put_bytes(w, c->pairs[i].key, c->pairs[i].klen);
        put_bytes(w, c->pairs[i].val, c->pairs[i].vlen);
    }
    put_u32(w, (uint32_t)c->ncmps);
    for (size_t i = 0; i < c->ncmps; i++) {
        put_u8(w, c->cmps[i].kind);
        put_bytes(w, c->cmps[i].key, c->cmps[i].klen);
        put_u64(w, c->cmps[i].version);
        put_bytes(w, c->cmps[i].value, c->cmps[i].vlen);
    }
    put_ops(w, c->then_ops, c->nthen);
    put_ops(w, c->else_ops, c->nelse);
}

void *kvd_entry_encode(const kvd_cmd *cmd, uint64_t client, uint64_t seq, size_t *len)
{
    wr w = {0};
    encode(&w, cmd, client, seq, 0); /* measure */
    size_t used = w.len;
    /* Raft's storage wants entries in multiples of 8 bytes (it reads them
     * back padded); the length field says where ours end. */
    w.cap = (used + 7) & ~(size_t)7;
    w.p = raft_malloc(w.cap);
    if (!w.p)
        return NULL;
    memset(w.p + used, 0, w.cap - used);
    w.len = 0;
    encode(&w, cmd, client, seq, (uint32_t)used);
    *len = w.cap;
    return w.p;
}

void kvd_entry_stamp(void *entry, uint64_t clock_ms)
{
    kvd_le_store((unsigned char *)entry + CLOCK_AT, clock_ms, 8);
}

/* ---- batches: several writes in one entry ---------------------------------- */

void *kvd_entry_batch(void *const *entries, const size_t *lens, size_t n, size_t *len)
{
    size_t used = BATCH_HEAD;
    for (size_t i = 0; i < n; i++)
        used += 4 + lens[i];
    if (used > UINT32_MAX || n > UINT32_MAX)
        return NULL;
    wr w = {.cap = (used + 7) & ~(size_t)7};
    w.p = raft_malloc(w.cap);
    if (!w.p)
        return NULL;
    memset(w.p + used, 0, w.cap - used);
    put_u8(&w, BATCH);
    put_u32(&w, (uint32_t)used);
    put_u64(&w, 0);
    put_u32(&w, (uint32_t)n);
    for (size_t i = 0; i < n; i++) {
        put_u32(&w, (uint32_t)lens[i]);
        put(&w, entries[i], lens[i]);
    }
    *len = w.cap;
    return w.p;
}

int kvd_entry_is_batch(const void *buf, size_t len)
{
    return len > 0 && *(const unsigned char *)buf == BATCH;
}

int kvd_entry_batch_open(const void *buf, size_t len, kvd_batch_iter *it, size_t *n)
{
    kvd_rd r = kvd_rd_init(buf, len);
    unsigned format = (unsigned)kvd_rd_num(&r, 1);
    uint32_t total = (uint32_t)kvd_rd_num(&r, 4);
    (void)kvd_rd_num(&r, 8);
    uint32_t count = (uint32_t)kvd_rd_num(&r, 4);
    if (r.bad || format != BATCH || total > len || len - total >= 8 || total < BATCH_HEAD ||
        (total - BATCH_HEAD) / 4 < count)
        return KV_CORRUPT;
    it->p = r.p;
    it->end = (const unsigned char *)buf + total;
    it->left = count;
    *n = count;
    return KV_OK;
}

int kvd_entry_batch_next(kvd_batch_iter *it, const void **entry, size_t *len)
{
    if (it->left == 0)
        return KV_NOT_FOUND;
    kvd_rd r = {it->p, it->end, 0};
    uint32_t n = (uint32_t)kvd_rd_num(&r, 4);
    const unsigned char *q = kvd_rd_take(&r, n);
    if (!q)
        return KV_CORRUPT;
    it->p = r.p;
    it->left--;
    *entry = q;
    *len = n;
    return KV_OK;
}

/* ---- EXEC: a MULTI queue in one entry ---------------------------------------
 * The EXEC command's value is: u32 nwatched, per watched key bytes key +
 * u64 version, u32 ncmds, per queued command u32 length + the command as
 * an entry of its own (the format above, unpadded, without request id). */

static void encode_batch(wr *w, const kvd_cmd *const *queue, size_t n, const kvd_watched *wt,
                         size_t nw)
{
    put_u32(w, (uint32_t)nw);
    for (size_t i = 0; i < nw; i++) {
        put_bytes(w, wt[i].key, wt[i].len);
        put_u64(w, wt[i].version);
    }
    put_u32(w, (uint32_t)n);
    for (size_t i = 0; i < n; i++) {
        wr m = {0};
        encode(&m, queue[i], 0, 0, 0);
        put_u32(w, (uint32_t)m.len);
        if (w->p) {
            wr sub = {w->p + w->len, 0, m.len};
            encode(&sub, queue[i], 0, 0, (uint32_t)m.len);
        }
        w->len += m.len;
    }
}

void *kvd_entry_encode_exec(const kvd_cmd *const *queue, size_t n, const kvd_watched *watched,
                            size_t nw, uint64_t client, uint64_t seq, size_t *len)
{
    wr w = {0};
    encode_batch(&w, queue, n, watched, nw);
    unsigned char *blob = malloc(w.len ? w.len : 1);
    if (!blob)
        return NULL;
    w = (wr){blob, 0, w.len};
    encode_batch(&w, queue, n, watched, nw);
    kvd_cmd exec = {.kind = KVD_CMD_EXEC, .value = {blob, w.len}};
    void *entry = kvd_entry_encode(&exec, client, seq, len);
    free(blob);
    return entry;
}

int kvd_entry_decode_exec(const kvd_entry *e, kvd_exec_batch *b)
{
    memset(b, 0, sizeof *b);
    kvd_rd r = kvd_rd_init(e->cmd.value.data, e->cmd.value.len);
    uint32_t nw = (uint32_t)kvd_rd_num(&r, 4);
    if (r.bad || nw > (size_t)(r.end - r.p) / 12)
        return KV_CORRUPT;
    b->watched = calloc(nw ? nw : 1, sizeof *b->watched);
    if (!b->watched)
        return KV_NO_MEMORY;
    for (uint32_t i = 0; i < nw && !r.bad; i++) {
        uint32_t klen = (uint32_t)kvd_rd_num(&r, 4);
        const unsigned char *k = kvd_rd_take(&r, klen);
        b->watched[i] = (kvd_watched){k, klen, kvd_rd_num(&r, 8)};
    }
    b->nwatched = nw;
    uint32_t n = (uint32_t)kvd_rd_num(&r, 4);
    int rc = KV_OK;
    if (r.bad || n > (size_t)(r.end - r.p) / 4) {
        rc = KV_CORRUPT;
        goto out;
    }
    b->entries = calloc(n ? n : 1, sizeof *b->entries);
    b->queue = calloc(n ? n : 1, sizeof *b->queue);
    if (!b->entries || !b->queue) {
        rc = KV_NO_MEMORY;
        goto out;
    }
    for (uint32_t i = 0; i < n && rc == KV_OK; i++) {
        uint32_t len = (uint32_t)kvd_rd_num(&r, 4);
        const unsigned char *sub = kvd_rd_take(&r, len);
        if (!sub) {
            rc = KV_CORRUPT;
            break;
        }
        rc = kvd_entry_decode(sub, len, &b->entries[i]);
        if (rc == KV_OK && (b->entries[i].cmd.kind == KVD_CMD_EXEC || b->entries[i].client))
            rc = KV_CORRUPT; /* no nesting; the request id is the EXEC's */
        b->n = i + 1;
        b->queue[i] = &b->entries[i].cmd;
    }
    if (rc == KV_OK && (r.bad || r.p != r.end))
        rc = KV_CORRUPT;
out:
    if (rc != KV_OK)
        kvd_entry_free_exec(b);
    return rc;
}

void kvd_entry_free_exec(kvd_exec_batch *b)
{
    for (size_t i = 0; i < b->n; i++)
        kvd_entry_free(&b->entries[i]);
    free(b->entries);
    free(b->queue);
    free(b->watched);
    memset(b, 0, sizeof *b);
}

/* ---- decoding ------------------------------------------------------------- */

typedef kvd_rd rd;

static unsigned get_u8(rd *r) { return (unsigned)kvd_rd_num(r, 1); }
static uint32_t get_u32(rd *r) { return (uint32_t)kvd_rd_num(r, 4); }
static uint64_t get_u64(rd *r) { return kvd_rd_num(r, 8); }

static kv_key get_bytes(rd *r)
{
    uint32_t n = get_u32(r);
    if (n == ABSENT)
        return (kv_key){NULL, 0};
    const unsigned char *q = kvd_rd_take(r, n);
    return (kv_key){q ? (const void *)q : (const void *)"", q ? n : 0};
}

/* A count, checked against the bytes left (each element takes >= 4). */
static size_t get_count(rd *r)
{
    uint32_t n = get_u32(r);
    if ((size_t)(r->end - r->p) / 4 < n) {
        r->bad = 1;
        return 0;
    }
    return n;
}

static void get_ops(rd *r, kv_op *ops, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        ops[i].kind = (kv_op_kind)get_u8(r);
        kv_key k = get_bytes(r), v = get_bytes(r);
        ops[i].key = k.data;
        ops[i].klen = k.len;
        ops[i].value = v.data;
        ops[i].vlen = v.len;
        ops[i].expire_at_ms = get_u64(r);
    }
}

int kvd_entry_decode(const void *buf, size_t len, kvd_entry *e)
{
    memset(e, 0, sizeof *e);
    rd r = kvd_rd_init(buf, len);
    kvd_cmd *c = &e->cmd;
    unsigned format = get_u8(&r);
    if (format != FORMAT && format != FORMAT_NO_REQ_ID && format != FORMAT_NO_REV &&
        format != FORMAT_NO_CLOCK && format != FORMAT_NO_EXPIRY)
        return KV_CORRUPT;
    uint32_t total = get_u32(&r);
    if (total > len || len - total >= 8 || total < 5)
        return KV_CORRUPT;
    r.end = (const unsigned char *)buf + total; /* Raft's padding follows */
    len = total;
    if (format >= FORMAT_NO_REV)
        e->clock_ms = get_u64(&r);
    c->kind = (int)get_u8(&r);
    c->sub = (int)get_u32(&r);
    c->flags = get_u32(&r);
    c->has_key = (int)get_u8(&r);
    c->has_expected = (int)get_u8(&r);
    c->expected = get_u64(&r);
    c->a = get_u64(&r);
    c->b = get_u64(&r);
    c->limit = get_u64(&r);
    c->i = (int64_t)get_u64(&r);
    uint64_t f = get_u64(&r);
    memcpy(&c->f, &f, sizeof f);
    if (format != FORMAT_NO_EXPIRY) {
        c->exp_mode = (int)get_u8(&r);
        c->exp = get_u64(&r);
        if (c->exp_mode == KVD_EXP_IN)
            r.bad = 1; /* never proposed unresolved */
    }
    if (format >= FORMAT_NO_REQ_ID)
        c->rev = get_u64(&r);
    else if (c->kind == KVD_CMD_ROLLBACK || c->kind == KVD_CMD_COMPACT)
        r.bad = 1; /* no format before 4 carries them */
    if (format >= FORMAT) {
        e->client = get_u64(&r);
        e->seq = get_u64(&r);
    }
    c->key = get_bytes(&r);
    c->value = get_bytes(&r);
    if (c->kind < 0 || c->kind >= KVD_CMD_COUNT)
        r.bad = 1;
    /* The arrays: sized from the counts, which are checked against the
     * bytes left before anything is allocated. */
    const unsigned char *mark = r.p;
    size_t nkeys = get_count(&r);
    for (size_t i = 0; i < nkeys && !r.bad; i++)
        get_bytes(&r);
    size_t npairs = get_count(&r);
    for (size_t i = 0; i < 2 * npairs && !r.bad; i++)
        get_bytes(&r);
    size_t ncmps = get_count(&r);
    for (size_t i = 0; i < ncmps && !r.bad; i++) {
        get_u8(&r);
        get_bytes(&r);
        get_u64(&r);
        get_bytes(&r);
    }
    size_t nops[2];
    for (int b = 0; b < 2; b++) {
        nops[b] = get_count(&r);
        for (size_t i = 0; i < nops[b] && !r.bad; i++) {
            get_u8(&r);
            get_bytes(&r);
            get_bytes(&r);
            get_u64(&r);
        }
    }
    if (r.bad || r.p != r.end)
        return KV_CORRUPT;
    size_t arrays = nkeys * sizeof(kv_key) + npairs * sizeof(kv_pair) +
                   ncmps * sizeof(kv_compare) + (nops[0] + nops[1]) * sizeof(kv_op);
    char *mem = calloc(1, arrays ? arrays : 1); /* fields not in the format stay 0 */
    if (!mem)
        return KV_NO_MEMORY;
    e->arrays = mem;
    kv_key *keys = (kv_key *)mem;
    kv_pair *pairs = (kv_pair *)(keys + nkeys);
    kv_compare *cmps = (kv_compare *)(pairs + npairs);
    kv_op *then_ops = (kv_op *)(cmps + ncmps);
    kv_op *else_ops = then_ops + nops[0];
    r.p = mark; /* second pass: fill */
    get_count(&r);
    for (size_t i = 0; i < nkeys; i++)
        keys[i] = get_bytes(&r);
    get_count(&r);
    for (size_t i = 0; i < npairs; i++) {
        kv_key k = get_bytes(&r), v = get_bytes(&r);
        pairs[i] = (kv_pair){k.data, k.len, v.data, v.len};
    }
    get_count(&r);
    for (size_t i = 0; i < ncmps; i++) {
        cmps[i].kind = (kv_compare_kind)get_u8(&r);
        kv_key k = get_bytes(&r);
        cmps[i].key = k.data;
        cmps[i].klen = k.len;
        cmps[i].version = get_u64(&r);
        kv_key v = get_bytes(&r);
        cmps[i].value = v.data;
        cmps[i].vlen = v.len;
    }
    get_count(&r);
    get_ops(&r, then_ops, nops[0]);
    get_count(&r);
    get_ops(&r, else_ops, nops[1]);
    c->keys = keys;
    c->nkeys = nkeys;
    c->pairs = pairs;
    c->npairs = npairs;
    c->cmps = cmps;
    c->ncmps = ncmps;
    c->then_ops = then_ops;
    c->nthen = nops[0];
    c->else_ops = else_ops;
    c->nelse = nops[1];
    c->size = len;
    return KV_OK;
}

void kvd_entry_free(kvd_entry *e)
{
    free(e->arrays);
    e->arrays = NULL;
}
