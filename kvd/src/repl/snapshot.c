/*
 * snapshot.c - the replicated state machine's snapshot: encoding the store
 * (keys, history) and the nodes' addresses into one buffer, and installing
 * one (format and guarantees: snapshot.h).
 */
#include "snapshot.h"

#include <stdbool.h>
#include <stdlib.h>
#include <string.h>

#include "bytes.h"

/* XXH3 compiled in (Debian's libxxhash-dev header; libkv links the
 * library): the checksum runs over the whole snapshot on the Raft thread,
 * so it must run at memory speed. */
#define XXH_INLINE_ALL
#include <xxhash.h>

#define MAGIC "KVDSNAP3"
#define MAGIC_NO_HISTORY "KVDSNAP2"
#define MAGIC_NO_EXPIRY "KVDSNAP1"

/* FNV-1a, 64 bits: the keys' set below (short keys). */
static uint64_t fnv1a(const void *p, size_t n)
{
    const unsigned char *b = p;
    uint64_t h = 1469598103934665603ull;
    for (size_t i = 0; i < n; i++)
        h = (h ^ b[i]) * 1099511628211ull;
    return h;
}

/* ---- encoding ------------------------------------------------------------------ */

typedef struct snap_wr {
    unsigned char *p;
    size_t len, cap;
    int oom;
    kvd_snap_counts *counts;
    size_t count_at, hcount_at; /* where the entry / history key counts go */
    int hist_begun;             /* the history section's head is written */
    uint64_t compact_rev;       /* kvd_snap_encode_held's */
} snap_wr;

static void put(snap_wr *w, const void *src, size_t n)
{
    if (w->oom || n == 0)
        return;
    if (w->cap - w->len < n) {
        size_t cap = w->cap ? w->cap * 2 : 4096;
        while (cap - w->len < n)
            cap *= 2;
        unsigned char *p = realloc(w->p, cap);
        if (!p) {
            w->oom = 1;
            return;
        }
        w->p = p;
        w->cap = cap;
    }
    memcpy(w->p + w->len, src, n);
    w->len += n;
}

static void put_num(snap_wr *w, uint64_t v, int n)
{
    unsigned char b[8];
    kvd_le_store(b, v, n);
    put(w, b, (size_t)n);
}

static int put_entry(void *ctx, const void *key, size_t klen, const void *val, size_t vlen,
                     uint64_t version, uint64_t expire_at)
{
    snap_wr *w = ctx;
    put_num(w, klen, 4);
    put_num(w, vlen, 4);
    put_num(w, version, 8);
    put_num(w, expire_at, 8);
    put(w, key, klen);
    put(w, val, vlen);
    w->counts->keys++;
    return w->oom;
}

static int put_history(void *ctx, const kv_key_history *h)
{
    snap_wr *w = ctx;
    put_num(w, h->klen, 4);
    put_num(w, h->nversions, 4);
    put_num(w, h->floor, 8);
    put_num(w, h->revision, 8);
    put_num(w, h->create_revision, 8);
    put_num(w, h->version, 8);
    put(w, h->key, h->klen);
    for (size_t i = 0; i < h->nversions; i++) {
        const kv_hist_version *v = &h->versions[i];
        put_num(w, v->revision, 8);
        put_num(w, v->until, 8);
        put_num(w, v->create_revision, 8);
        put_num(w, v->version, 8);
        put_num(w, v->expire_at_ms, 8);
        put_num(w, v->vlen, 4);
        put(w, v->value, v->vlen);
    }
    w->counts->history_keys++;
    w->counts->history_versions += h->nversions;
    return w->oom;
}

/* The head: magic, revision, the entry count (patched by finish), the
 * nodes. */
static void begin(snap_wr *w, const kvd_snap_node *nodes, unsigned nnodes)
{
    put(w, MAGIC, 8);
    put_num(w, w->counts->revision, 8);
    w->count_at = w->len;
    put_num(w, 0, 8);
    put_num(w, nnodes, 4);
    for (unsigned i = 0; i < nnodes; i++) {
        size_t n = strnlen(nodes[i].addr, sizeof nodes[i].addr);
        put_num(w, nodes[i].id, 8);
        put_num(w, n, 4);
        put(w, nodes[i].addr, n);
    }
}

/* The history section's head (once, after the last entry); has: the store
 * keeps history. */
static void begin_history(snap_wr *w, int has, uint64_t compact_rev)
{
    if (w->hist_begun)
        return;
    w->hist_begun = 1;
    put_num(w, (uint8_t)has, 1);
    if (has) {
        put_num(w, compact_rev, 8);
        w->hcount_at = w->len;
        put_num(w, 0, 8);
    }
}

/* Patches the counts and appends the checksum: KV_OK with the buffer in
 * *out, or KV_NO_MEMORY with nothing allocated. */
static int finish(snap_wr *w, unsigned char **out, size_t *len)
{
    if (!w->oom) {
        kvd_le_store(w->p + w->count_at, w->counts->keys, 8);
        if (w->hcount_at)
            kvd_le_store(w->p + w->hcount_at, w->counts->history_keys, 8);
        put_num(w, XXH3_64bits(w->p, w->len), 8);
    }
    if (w->oom) {
        free(w->p);
        return KV_NO_MEMORY;
    }
    *out = w->p;
    *len = w->len;
    return KV_OK;
}

int kvd_snap_encode(kv_store *st, const kvd_snap_node *nodes, unsigned nnodes,
                    unsigned char **out, size_t *len, kvd_snap_counts *counts)
{
    *counts = (kvd_snap_counts){.revision = kv_revision(st)};
    snap_wr w = {.counts = counts};
    begin(&w, nodes, nnodes);
    uint64_t cursor = 0;
    do {
        if (kv_scan_ex(st, NULL, 0, cursor, 1024, KV_SCAN_EXPIRED, put_entry, &w, &cursor) !=
            KV_OK)
            w.oom = 1;
    } while (!w.oom && cursor != 0);
    int has = kv_history_dump(st, NULL, NULL) != KV_UNSUPPORTED;
    begin_history(&w, has, has ? kv_compact_revision(st) : 0);
    if (has && !w.oom && kv_history_dump(st, put_history, &w) != KV_OK)
        w.oom = 1;
    return finish(&w, out, len);
}

/* put_history for kv_history_copy: the section's head comes first. */
static int put_history_held(void *ctx, const kv_key_history *h)
{
    snap_wr *w = ctx;
    begin_history(w, 1, w->compact_rev);
    return put_history(ctx, h);
}

int kvd_snap_encode_held(kv_store *st, uint64_t rev, uint64_t compact_rev,
                         const kvd_snap_node *nodes, unsigned nnodes, unsigned char **out,
                         size_t *len, kvd_snap_counts *counts)
{
    *counts = (kvd_snap_counts){.revision = rev};
    snap_wr w = {.counts = counts, .compact_rev = compact_rev};
    begin(&w, nodes, nnodes);
    int rc = kv_history_copy(st, put_entry, put_history_held, &w);
    if (rc != KV_OK && rc != KV_NO_MEMORY) {
        free(w.p);
        return rc;
    }
    if (rc != KV_OK)
        w.oom = 1;
    begin_history(&w, 1, compact_rev); /* no key with history */
    return finish(&w, out, len);
}

/* ---- installing ------------------------------------------------------------------ */

/* Keys of the snapshot, to find the store's keys it does not have. */
typedef struct key_set {
    const unsigned char **key;
    uint32_t *len;
    size_t cap; /* a power of two */
} key_set;

static void set_add(key_set *s, const unsigned char *k, uint32_t n)
{
    size_t i = fnv1a(k, n) & (s->cap - 1);
    while (s->key[i])
        i = (i + 1) & (s->cap - 1);
    s->key[i] = k;
    s->len[i] = n;
}

static int set_has(const key_set *s, const void *k, size_t n)
{
    size_t i = fnv1a(k, n) & (s->cap - 1);
    for (; s->key[i]; i = (i + 1) & (s->cap - 1))
        if (s->len[i] == n && memcmp(s->key[i], k, n) == 0)
            return 1;
    return 0;
}

typedef struct stale_ctx {
    const key_set *set;
    char **keys;
    size_t *lens;
    size_t n, cap;
    int oom;
} stale_ctx;

static int find_stale(void *ctx, const void *key, size_t klen, const void *val, size_t vlen,
                      uint64_t version, uint64_t expire_at)
{
    (void)val;
    (void)vlen;
    (void)version;
    (void)expire_at;
    stale_ctx *c = ctx;
    if (set_has(c->set, key, klen))
        return 0;
    if (c->n == c->cap) {
        size_t cap = c->cap ? c->cap * 2 : 64;
        char **k = realloc(c->keys, cap * sizeof *k);
        size_t *l = k ? realloc(c->lens, cap * sizeof *l) : NULL;
        if (k)
            c->keys = k;
        if (!k || !l) {
            c->oom = 1;
            return 1;
        }
        c->lens = l;
        c->cap = cap;
    }
    char *copy = malloc(klen ? klen : 1);
    if (!copy) {
        c->oom = 1;
        return 1;
    }
    memcpy(copy, key, klen);
    c->keys[c->n] = copy;
    c->lens[c->n++] = klen;
    return 0;
}

/* The parts of a snapshot, found by a first pass that checks it all. */
typedef struct parsed {
    int with_expiry;
    uint64_t revision, count;
    const unsigned char *entries;
    size_t entries_len;
    int history;
    uint64_t compact_rev, hkeys;
    const unsigned char *hist;
    size_t hist_len;
    size_t size; /* the snapshot's bytes */
} parsed;

static void skip_entries(kvd_rd *rd, const parsed *p)
{
    for (uint64_t i = 0; i < p->count && !rd->bad; i++) {
        uint32_t klen = (uint32_t)kvd_rd_num(rd, 4), vlen = (uint32_t)kvd_rd_num(rd, 4);
        if (klen == 0)
            rd->bad = 1;
        kvd_rd_num(rd, 8);
        if (p->with_expiry)
            kvd_rd_num(rd, 8);
        kvd_rd_take(rd, klen);
        kvd_rd_take(rd, vlen);
    }
}

/* One key's history at rd into *h, its versions into *vs (grown as
 * needed); false when malformed or out of memory (*oom). */
static bool read_hkey(kvd_rd *rd, kv_key_history *h, kv_hist_version **vs, size_t *cap, int *oom)
{
    uint32_t klen = (uint32_t)kvd_rd_num(rd, 4), n = (uint32_t)kvd_rd_num(rd, 4);
    *h = (kv_key_history){.klen = klen, .nversions = n};
    h->floor = kvd_rd_num(rd, 8);
    h->revision = kvd_rd_num(rd, 8);
    h->create_revision = kvd_rd_num(rd, 8);
    h->version = kvd_rd_num(rd, 8);
    h->key = kvd_rd_take(rd, klen);
    /* each version takes at least 44 bytes: a count beyond that is bad */
    if (rd->bad || n > (size_t)(rd->end - rd->p) / 44)
        return false;
    if (n > *cap) {
        kv_hist_version *v = realloc(*vs, n * sizeof *v);
        if (!v) {
            *oom = 1;
            return false;
        }
        *vs = v;
        *cap = n;
    }
    for (uint32_t i = 0; i < n && !rd->bad; i++) {
        kv_hist_version *v = &(*vs)[i];
        v->revision = kvd_rd_num(rd, 8);
        v->until = kvd_rd_num(rd, 8);
        v->create_revision = kvd_rd_num(rd, 8);
        v->version = kvd_rd_num(rd, 8);
        v->expire_at_ms = kvd_rd_num(rd, 8);
        v->vlen = (size_t)kvd_rd_num(rd, 4);
        v->value = kvd_rd_take(rd, v->vlen);
    }
    h->versions = *vs;
    return !rd->bad;
}

/* The first pass: the whole snapshot's structure; nodes into nodes[],
 * its length into p->size (the rest of buf is the caller's). */
static int parse(const void *buf, size_t len, parsed *p, kvd_snap_node *nodes, unsigned *nnodes)
{
    kvd_rd rd = kvd_rd_init(buf, len);
    const unsigned char *magic = kvd_rd_take(&rd, 8);
    if (!magic)
        return KV_CORRUPT;
    *p = (parsed){0};
    bool v3 = memcmp(magic, MAGIC, 8) == 0, v2 = memcmp(magic, MAGIC_NO_HISTORY, 8) == 0;
    if (!v3 && !v2 && memcmp(magic, MAGIC_NO_EXPIRY, 8) != 0)
        return KV_CORRUPT;
    p->with_expiry = v3 || v2;
    p->revision = kvd_rd_num(&rd, 8);
    p->count = kvd_rd_num(&rd, 8);
    uint32_t n = (uint32_t)kvd_rd_num(&rd, 4);
    if (rd.bad || p->count > (uint64_t)(rd.end - rd.p) / 16 || n > KVD_SNAP_MAX_NODES)
        return KV_CORRUPT;
    *nnodes = n;
    for (uint32_t i = 0; i < n && !rd.bad; i++) {
        nodes[i].id = kvd_rd_num(&rd, 8);
        uint32_t alen = (uint32_t)kvd_rd_num(&rd, 4);
        const unsigned char *a = kvd_rd_take(&rd, alen);
        size_t m = alen < sizeof nodes[i].addr - 1 ? alen : sizeof nodes[i].addr - 1;
        if (a)
            memcpy(nodes[i].addr, a, m);
        nodes[i].addr[m] = 0;
    }
    p->entries = rd.p;
    skip_entries(&rd, p);
    if (rd.bad)
        return KV_CORRUPT;
    p->entries_len = (size_t)(rd.p - p->entries);
    if (v3) {
        p->history = (int)kvd_rd_num(&rd, 1);
        if (rd.bad || p->history > 1)
            return KV_CORRUPT;
    }
    if (p->history) {
        p->compact_rev = kvd_rd_num(&rd, 8);
        p->hkeys = kvd_rd_num(&rd, 8);
        p->hist = rd.p;
        kv_hist_version *vs = NULL;
        size_t cap = 0;
        int oom = 0;
        kv_key_history h;
        for (uint64_t i = 0; i < p->hkeys && !rd.bad; i++)
            if (!read_hkey(&rd, &h, &vs, &cap, &oom))
                rd.bad = 1;
        free(vs);
        if (oom)
            return KV_NO_MEMORY;
        p->hist_len = (size_t)(rd.p - p->hist);
    }
    if (v3) {
        size_t body = (size_t)(rd.p - (const unsigned char *)buf);
        if (kvd_rd_num(&rd, 8) != XXH3_64bits(buf, body))
            return KV_CORRUPT;
    }
    if (rd.bad)
        return KV_CORRUPT;
    p->size = (size_t)(rd.p - (const unsigned char *)buf);
    return KV_OK;
}

size_t kvd_snap_size(const void *buf, size_t len)
{
    parsed p;
    kvd_snap_node nodes[KVD_SNAP_MAX_NODES];
    unsigned n;
    return parse(buf, len, &p, nodes, &n) == KV_OK ? p.size : 0;
}

/* Every key of the store the snapshot lacks, deleted at its revision. */
static int remove_stale(kv_store *st, const key_set *set, uint64_t revision, uint64_t *removed)
{
    stale_ctx sc = {.set = set};
    uint64_t cursor = 0;
    int rc = KV_OK;
    do {
        /* expired keys too: the store removes none on its own */
        if (kv_scan_ex(st, NULL, 0, cursor, 1024, KV_SCAN_EXPIRED, find_stale, &sc, &cursor) !=
            KV_OK)
            sc.oom = 1;
    } while (!sc.oom && cursor != 0);
    if (sc.oom)
        rc = KV_NO_MEMORY;
    for (size_t i = 0; i < sc.n; i++) {
        if (rc == KV_OK)
            rc = kv_load(st, sc.keys[i], sc.lens[i], NULL, 0, revision, 1);
        free(sc.keys[i]);
    }
    free(sc.keys);
    free(sc.lens);
    *removed = sc.n;
    return rc;
}

static int install_history(kv_store *st, const parsed *p, kvd_snap_counts *counts)
{
    int rc = kv_history_reset(st, p->compact_rev);
    if (rc == KV_UNSUPPORTED)
        return KV_OK; /* this node keeps no history (its configuration) */
    kvd_rd rd = kvd_rd_init(p->hist, p->hist_len);
    kv_hist_version *vs = NULL;
    size_t cap = 0;
    int oom = 0;
    kv_key_history h;
    for (uint64_t i = 0; i < p->hkeys && rc == KV_OK; i++) {
        if (!read_hkey(&rd, &h, &vs, &cap, &oom)) {
            rc = oom ? KV_NO_MEMORY : KV_CORRUPT;
            break;
        }
        rc = kv_history_load(st, &h);
        counts->history_keys++;
        counts->history_versions += h.nversions;
    }
    free(vs);
    return rc;
}

int kvd_snap_install(kv_store *st, const void *buf, size_t len, kvd_snap_node *nodes,
                     unsigned *nnodes, kvd_snap_counts *counts)
{
    parsed p;
    int rc = parse(buf, len, &p, nodes, nnodes);
    if (rc != KV_OK)
        return rc;
    *counts = (kvd_snap_counts){.revision = p.revision, .keys = p.count};
    key_set set = {.cap = 16};
    while (set.cap < 2 * p.count + 2)
        set.cap *= 2;
    set.key = calloc(set.cap, sizeof *set.key);
    set.len = calloc(set.cap, sizeof *set.len);
    if (!set.key || !set.len) {
        free(set.key);
        free(set.len);
        return KV_NO_MEMORY;
    }
    kvd_rd rd = kvd_rd_init(p.entries, p.entries_len);
    for (uint64_t i = 0; i < p.count && rc == KV_OK; i++) {
        uint32_t klen = (uint32_t)kvd_rd_num(&rd, 4), vlen = (uint32_t)kvd_rd_num(&rd, 4);
        uint64_t version = kvd_rd_num(&rd, 8);
        uint64_t expire_at = p.with_expiry ? kvd_rd_num(&rd, 8) : 0;
        const unsigned char *k = kvd_rd_take(&rd, klen), *v = kvd_rd_take(&rd, vlen);
        set_add(&set, k, klen);
        rc = kv_load_ex(st, k, klen, v, vlen, version, expire_at, 0);
    }
    if (rc == KV_OK)
        rc = remove_stale(st, &set, p.revision, &counts->stale_removed);
    if (rc == KV_OK) {
        /* The store's revision becomes the snapshot's (its last changes
         * may have been deletes): deleting a key that is absent - the
         * store now holds the snapshot's keys only - just raises it. */
        char absent[64] = {0};
        size_t n = 1;
        while (n < sizeof absent && set_has(&set, absent, n))
            n++;
        rc = kv_load(st, absent, n, NULL, 0, p.revision ? p.revision : 1, 1);
    }
    if (rc == KV_OK && p.history)
        rc = install_history(st, &p, counts);
    free(set.key);
    free(set.len);
    return rc;
}
