/*
 * export_page.c - one page of kvcli export: the entries of one SCAN page,
 * copied out of the reply, and each key's expiry time read for them.
 *
 * SCAN does not carry expiry times, so they are read afterwards, all of a
 * page's in one pipelined round trip: a TTL per key, then one TXN whose
 * compares say every key still has the version the SCAN saw (and which
 * changes nothing). The TTLs lie between the SCAN and that TXN, and any
 * change to a key, its expiry included (EXPIRE, PERSIST), gives it a new
 * revision: so when the TXN's compares hold, every TTL read belongs to
 * the value the SCAN read. This is the common case: two requests per
 * page besides the SCAN, one TTL per key, all reads but the TXN (in a
 * cluster, one Raft entry per page). A server that refuses that TXN (a
 * cluster follower answers NOT_LEADER to every write) gets the re-reads
 * below for every key instead, from then on (without the TTLs first).
 *
 * When a compare fails (a key was written, deleted or expired meanwhile),
 * the page's other keys are read again in rounds of TTL + GET per key
 * until a key's GET finds the version seen before its TTL (the SCAN's,
 * then the last GET's): that TTL belongs to that value, which replaces
 * the SCAN's. A key found absent by any of these reads (deleted or
 * expired) is left out, counted as gone: it was not present for the
 * whole export (which SCAN's contract allows), and writing it without
 * its expiry time would bring an expired key back. A key that changes in
 * every one of RETRY_ROUNDS rounds is written with its last value and
 * the TTL read just before it, and counted as unsettled (export warns).
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "kvcli.h"

/* Rounds of re-reading a changed key before settling for its last read. */
#define RETRY_ROUNDS 8
/* Keys per re-read round trip: each GET's value is held until the round
 * ends, so few at a time (values may be up to 64 MiB). */
#define RETRY_CHUNK 16

int kvcli_page_add(kvcli_page *pg, const void *key, size_t klen, const void *val,
                   size_t vlen, uint64_t version)
{
    if (pg->n == pg->cap) {
        size_t cap = pg->cap ? 2 * pg->cap : 64;
        kvcli_page_entry *e = realloc(pg->e, cap * sizeof *e);
        if (e == NULL)
            return -1;
        pg->e = e;
        pg->cap = cap;
    }
    kvcli_page_entry *e = &pg->e[pg->n];
    memset(e, 0, sizeof *e);
    e->koff = pg->bytes.len;
    e->klen = klen;
    e->voff = pg->bytes.len + klen;
    e->vlen = vlen;
    e->version = version;
    if (kvcli_buf_append(&pg->bytes, key, klen) != 0 ||
        kvcli_buf_append(&pg->bytes, val, vlen) != 0)
        return -1;
    pg->n++;
    return 0;
}

void kvcli_page_clear(kvcli_page *pg)
{
    pg->n = 0;
    pg->bytes.len = 0;
}

void kvcli_page_free(kvcli_page *pg)
{
    free(pg->e);
    kvcli_buf_free(&pg->bytes);
    memset(pg, 0, sizeof *pg);
}

/* Queues the first round: a TTL per key, then the TXN of compares. */
static int queue_first(kvcli_page *pg, kv_client_pipeline *p, kv_compare *cmps)
{
    for (size_t i = 0; i < pg->n; i++) {
        const kvcli_page_entry *e = &pg->e[i];
        cmps[i] = (kv_compare){.kind = KV_CMP_VERSION_EQ,
                               .key = pg->bytes.data + e->koff,
                               .klen = e->klen,
                               .version = e->version};
        int st = kv_client_pipeline_ttl(p, cmps[i].key, e->klen);
        if (st != KV_OK)
            return st;
    }
    return kv_client_pipeline_txn(p, cmps, pg->n, NULL, 0, NULL, 0);
}

/* Re-reads the pending entries (state KVCLI_PAGE_PENDING) of [from, to)
 * with TTL + GET each; settles those whose GET finds the version they had
 * before the TTL; `last`: settles the others too (unsettled). */
static int reread(kvcli_page *pg, kv_client_pipeline *p, size_t from, size_t to, int last)
{
    kv_client_pipeline_reset(p);
    for (size_t i = from; i < to; i++) {
        const kvcli_page_entry *e = &pg->e[i];
        if (e->state != KVCLI_PAGE_PENDING)
            continue;
        const void *key = pg->bytes.data + e->koff;
        int st = kv_client_pipeline_ttl(p, key, e->klen);
        if (st == KV_OK)
            st = kv_client_pipeline_get(p, key, e->klen);
        if (st != KV_OK)
            return st;
    }
    if (kv_client_pipeline_count(p) == 0)
        return KV_OK;
    int st = kv_client_pipeline_exec(p);
    if (st != KV_OK)
        return st;
    size_t j = 0;
    for (size_t i = from; i < to; i++) {
        kvcli_page_entry *e = &pg->e[i];
        if (e->state != KVCLI_PAGE_PENDING)
            continue;
        const kv_client_reply *ttl = kv_client_pipeline_reply(p, j++);
        const kv_client_reply *get = kv_client_pipeline_reply(p, j++);
        if (ttl == NULL || get == NULL)
            return KV_PROTOCOL;
        if (ttl->status != KV_OK && ttl->status != KV_NOT_FOUND)
            return ttl->status;
        if (get->status != KV_OK && get->status != KV_NOT_FOUND)
            return get->status;
        if (ttl->status == KV_NOT_FOUND || get->status == KV_NOT_FOUND) {
            /* absent at some moment of the export: it may be left out */
            e->state = KVCLI_PAGE_GONE;
            pg->gone++;
            continue;
        }
        int settled = get->value.version == e->version;
        if (!settled) {
            /* the entry takes the value just read */
            size_t off = pg->bytes.len;
            if (kvcli_buf_append(&pg->bytes, get->value.data, get->value.len) != 0)
                return KV_NO_MEMORY;
            e->voff = off;
            e->vlen = get->value.len;
            e->version = get->value.version;
        }
        e->expire_at_ms = ttl->expire_at_ms;
        if (settled || last) {
            e->state = KVCLI_PAGE_READY;
            pg->unsettled += !settled;
        }
    }
    return KV_OK;
}

static size_t pending(const kvcli_page *pg)
{
    size_t n = 0;
    for (size_t i = 0; i < pg->n; i++)
        n += pg->e[i].state == KVCLI_PAGE_PENDING;
    return n;
}

/* The first round: a TTL per key and the checking TXN; settles every
 * entry when the TXN's compares hold, else leaves them PENDING (or GONE). */
static int first_round(kvcli_page *pg, kv_client_pipeline *p)
{
    kv_compare *cmps = calloc(pg->n, sizeof *cmps);
    int st = cmps ? queue_first(pg, p, cmps) : KV_NO_MEMORY;
    if (st == KV_OK)
        st = kv_client_pipeline_exec(p);
    free(cmps);
    if (st != KV_OK)
        return st;
    if (kv_client_pipeline_replies(p) != pg->n + 1)
        return KV_PROTOCOL;
    const kv_client_reply *txn = kv_client_pipeline_reply(p, pg->n);
    if (txn->status != KV_OK)
        pg->no_txn = 1; /* refused (a cluster follower takes no TXN:
                           NOT_LEADER): read again, and at once on the
                           next pages */
    int unchanged = txn->status == KV_OK && txn->txn.succeeded;
    for (size_t i = 0; i < pg->n; i++) {
        kvcli_page_entry *e = &pg->e[i];
        const kv_client_reply *ttl = kv_client_pipeline_reply(p, i);
        if (ttl->status == KV_NOT_FOUND) {
            /* absent at some moment of the export: it may be left out */
            e->state = KVCLI_PAGE_GONE;
            pg->gone++;
        } else if (ttl->status != KV_OK) {
            return ttl->status;
        } else {
            e->expire_at_ms = ttl->expire_at_ms;
            e->state = unchanged ? KVCLI_PAGE_READY : KVCLI_PAGE_PENDING;
        }
    }
    return KV_OK;
}

int kvcli_page_expiry(kvcli_page *pg, kv_client *c)
{
    if (pg->n == 0)
        return KV_OK;
    kv_client_pipeline *p;
    if (kv_client_pipeline_new(c, &p) != KV_OK)
        return KV_NO_MEMORY;
    /* without the TXN every entry stays PENDING, as added */
    int st = pg->no_txn ? KV_OK : first_round(pg, p);
    for (int round = 0; st == KV_OK && round < RETRY_ROUNDS && pending(pg) > 0; round++)
        for (size_t from = 0; st == KV_OK && from < pg->n; from += RETRY_CHUNK) {
            size_t to = pg->n - from < RETRY_CHUNK ? pg->n : from + RETRY_CHUNK;
            st = reread(pg, p, from, to, round == RETRY_ROUNDS - 1);
        }
    kv_client_pipeline_free(p);
    return st;
}
