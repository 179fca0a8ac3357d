/*
 * snapshot.c - writing snapshots and backups without fork or pause.
 *
 * A snapshot is fuzzy, then made exact by the log:
 *   1. S = the last revision queued in the log (read under the log's
 *      mutex, so every record up to S is in the log). A barrier over the
 *      stripes then waits out writers between logging and publishing, so
 *      every change up to S is visible.
 *   2. Every key is copied, while writers go on, through kv_scan (one 1 MiB
 *      block at a time, written out between scan calls). A key changed
 *      during this pass may be seen before or after its change.
 *   3. E = the last revision queued; once the log has written everything up
 *      to E, its records in (S, E] are copied into the snapshot verbatim.
 *   4. An end block with E; sync; rename into place; sync the directory.
 * Loading replays the entries and then the records with the idempotent
 * rule of kv__replay_change (a key at the record's revision or later keeps
 * its state). Every key changed during step 2 has its last change up to E
 * among the copied records, so the result is exactly the state at E.
 *
 * Memory: one block buffer; nothing is copied on write. Readers and
 * writers never wait for a snapshot (the barrier takes each stripe lock
 * once, for as long as one write holds it).
 */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "durable.h"
#include "files.h"
#include "history.h"
#include "log.h"
#include "record.h"
#include "store.h"

#define BLOCK_BYTES ((size_t)1 << 20)

typedef struct writer {
    kv_store *s;
    kv__io *io;
    int fd;
    uint64_t off;
    unsigned char *buf; /* the block being filled: frame header, payload */
    size_t len, cap;    /* len counts from the payload's start */
    uint32_t count;
    uint64_t entries, records;
    int err;            /* -errno or a kv status (positive) */
} writer;

static int w_grow(writer *w, size_t need)
{
    size_t want = KV__FRAME_HDR + kv__align8(need);
    if (want <= w->cap)
        return 0;
    unsigned char *p = realloc(w->buf, want);
    if (!p)
        return KV_NO_MEMORY;
    w->buf = p;
    w->cap = want;
    return 0;
}

static int w_raw(writer *w, const void *p, size_t n)
{
    int rc = kv__io_write_all(w->io, w->fd, p, n, (off_t)w->off);
    if (rc == 0)
        w->off += n;
    return rc;
}

/* Seals and writes the block being filled (entries, or keys' history),
 * if it holds anything. */
static int w_flush_block(writer *w, unsigned type)
{
    if (!w->count)
        return 0;
    unsigned char *p = w->buf + KV__FRAME_HDR;
    p[0] = (unsigned char)type;
    memset(p + 1, 0, 3);
    kv__put32(p + 4, w->count);
    kv__frame_seal(w->buf, w->len);
    int rc = w_raw(w, w->buf, kv__frame_size(w->len));
    w->len = 8;
    w->count = 0;
    return rc;
}

static int on_key(void *ctx, const void *key, size_t klen, const void *val, size_t vlen,
                  uint64_t version, uint64_t expire_at)
{
    writer *w = ctx;
    /* With history: the version's create revision and count, when they
     * are not what a key without a record means (version, 1). */
    uint64_t create = 0, count = 0;
    bool meta = w->s->hist && kv__hist_entry_meta(w->s, key, klen, version, &create, &count);
    size_t ext = kv__ext_size(expire_at) + (meta ? KV__EXT_META_LEN : 0);
    size_t need = w->len + KV__ENTRY_HDR + ext + klen + vlen;
    if (w->err == 0)
        w->err = w_grow(w, need);
    if (w->err)
        return 1;
    unsigned char *e = w->buf + KV__FRAME_HDR + w->len;
    e[0] = KV__OP_SET;
    e[1] = 0;
    kv__put16(e + 2, (uint16_t)ext);
    kv__put32(e + 4, (uint32_t)klen);
    kv__put32(e + 8, (uint32_t)vlen);
    kv__put64(e + 12, version);
    kv__ext_put(e + KV__ENTRY_HDR, expire_at);
    if (meta) {
        unsigned char *m = e + KV__ENTRY_HDR + kv__ext_size(expire_at);
        m[0] = KV__EXT_META;
        m[1] = 16;
        kv__put64(m + 2, create);
        kv__put64(m + 10, count);
    }
    memcpy(e + KV__ENTRY_HDR + ext, key, klen);
    if (vlen)
        memcpy(e + KV__ENTRY_HDR + ext + klen, val, vlen);
    w->len = need;
    w->count++;
    w->entries++;
    return w->len >= BLOCK_BYTES; /* stop the scan call: write the block */
}

/* One key's history into the block (its stripe locked: copy only). */
static int on_history(void *ctx, const kv_key_history *h)
{
    writer *w = ctx;
    const void *key = h->key;
    size_t klen = h->klen, n = h->nversions;
    const kv_hist_version *ents = h->versions;
    size_t need = w->len + KV__HKEY_HDR + klen;
    for (size_t i = 0; i < n; i++)
        need += KV__HENT_HDR + kv__ext_size(ents[i].expire_at_ms) + ents[i].vlen;
    int rc = w_grow(w, need);
    if (rc)
        return rc;
    unsigned char *p = w->buf + KV__FRAME_HDR + w->len;
    kv__put32(p, (uint32_t)klen);
    kv__put32(p + 4, (uint32_t)n);
    kv__put64(p + 8, h->floor);
    memcpy(p + KV__HKEY_HDR, key, klen);
    p += KV__HKEY_HDR + klen;
    for (size_t i = 0; i < n; i++) {
        const kv_hist_version *e = &ents[i];
        size_t ext = kv__ext_size(e->expire_at_ms);
        kv__put64(p, e->revision);
        kv__put64(p + 8, e->until);
        kv__put64(p + 16, e->create_revision);
        kv__put64(p + 24, e->version);
        kv__put16(p + 32, (uint16_t)ext);
        kv__put16(p + 34, 0);
        kv__put32(p + 36, (uint32_t)e->vlen);
        kv__ext_put(p + KV__HENT_HDR, e->expire_at_ms);
        if (e->vlen)
            memcpy(p + KV__HENT_HDR + ext, e->value, e->vlen);
        p += KV__HENT_HDR + ext + e->vlen;
    }
    w->len = need;
    w->count++;
    return 0;
}

/* Between stripes (no lock held): a full block goes to the file. */
static int after_stripe(void *ctx)
{
    writer *w = ctx;
    return w->len >= BLOCK_BYTES ? w_flush_block(w, KV__BLK_HISTORY) : 0;
}

/* The history of a store that keeps it: blocks of keys' earlier versions,
 * then its compaction revision. */
static int write_history(kv_store *s, writer *w)
{
    int rc = kv__hist_snapshot(s, false, on_history, after_stripe, w);
    if (rc == 0)
        rc = w_flush_block(w, KV__BLK_HISTORY);
    if (rc == 0) {
        unsigned char b[KV__FRAME_HDR + 16] = {0};
        unsigned char *p = b + KV__FRAME_HDR;
        p[0] = KV__BLK_HIST_INFO;
        kv__put64(p + 8, kv_compact_revision(s));
        kv__frame_seal(b, 16);
        rc = w_raw(w, b, sizeof b);
    }
    return rc;
}

typedef struct tail_ctx {
    writer *w;
    uint64_t start, end;
} tail_ctx;

#define TAIL_DONE 1000

static int on_record(void *ctx, const kv__record *r, const unsigned char *frame, size_t flen)
{
    tail_ctx *t = ctx;
    if (r->revision <= t->start)
        return KV_OK;
    int rc = w_raw(t->w, frame, flen);
    if (rc != 0) {
        t->w->err = rc;
        return KV_IO;
    }
    t->w->records++;
    return r->revision >= t->end ? TAIL_DONE : KV_OK;
}

/* Copies the log's records in (start, end] into the snapshot. */
static int copy_tail(kv_store *s, writer *w, uint64_t start, uint64_t end)
{
    if (end <= start)
        return KV_OK;
    kv__dir_list dl;
    int rc = kv__dir_list_read(s->dur->dir, NULL, &dl);
    if (rc != KV_OK)
        return rc;
    tail_ctx t = {w, start, end};
    size_t cap = strlen(s->dur->dir) + 32;
    char *path = malloc(cap);
    char err[256] = "log segments end early";
    if (!path)
        rc = KV_NO_MEMORY;
    for (size_t i = 0; rc == KV_OK && i < dl.nsegs; i++) {
        if (dl.segs[i] > end || (i + 1 < dl.nsegs && dl.segs[i + 1] <= start + 1))
            continue;
        kv__log_segment_path(path, cap, s->dur->dir, dl.segs[i]);
        kv__seg_info info;
        rc = kv__seg_read(path, i + 1 == dl.nsegs, on_record, &t, &info, err, sizeof err);
        if (rc == TAIL_DONE)
            break;
    }
    if (rc == KV_OK) /* the log ran out before reaching end */
        rc = KV_IO;
    if (rc == TAIL_DONE)
        rc = KV_OK;
    else if (rc == KV_CORRUPT || rc == KV_IO)
        kv__set_error("snapshot: cannot copy the log tail: %s", err);
    free(path);
    kv__dir_list_free(&dl);
    return rc;
}

int kv__snapshot_write(kv_store *s, kv__io *io, const char *path, uint64_t *end_rev)
{
    /* No path: into the data directory, named after the end revision. */
    char *final = NULL;
    if (!path) {
        size_t cap = strlen(s->dur->dir) + 40;
        if (!(final = malloc(cap)))
            return KV_NO_MEMORY;
        snprintf(final, cap, "%s/snap-xxxxxxxxxxxxxxxx.kvs", s->dur->dir);
        path = final;
    }
    size_t plen = strlen(path);
    char *tmp = malloc(plen + 5);
    if (!tmp) {
        free(final);
        return KV_NO_MEMORY;
    }
    memcpy(tmp, path, plen);
    memcpy(tmp + plen, ".tmp", 5);
    /* The directory the file lands in, to sync its new name. */
    char dir[4096];
    const char *slash = strrchr(path, '/');
    if (!slash)
        strcpy(dir, ".");
    else if (slash == path)
        strcpy(dir, "/");
    else
        snprintf(dir, sizeof dir, "%.*s", (int)(slash - path), path);
    bool renamed = false;
    writer w = {.s = s, .io = io, .fd = -1, .len = 8};
    int rc = w_grow(&w, BLOCK_BYTES + 4096);
    int fd;
    if (rc == 0 && (rc = io->open(io, tmp, O_WRONLY | O_CREAT | O_TRUNC, 0644, &fd)) == 0)
        w.fd = fd;

    /* 1. S, and every change up to S visible. */
    uint64_t start = 0, end = 0;
    if (rc == 0 && s->log && (rc = kv__log_flush(s->log, &start)) != KV_OK)
        rc = rc == KV_NO_SPACE ? -ENOSPC : -EIO;
    if (rc == 0) {
        if (!s->log)
            start = atomic_load(&s->revision);
        kv__stripes_barrier(s->stripes);
        unsigned char h[KV__SNAP_HDR] = {0};
        memcpy(h, "KVSNAP\0\0", 8);
        kv__put32(h + 8, 1);
        kv__put32(h + 12, KV__SNAP_HDR);
        kv__put64(h + 16, start);
        kv__put32(h + 28, kv__crc(h, 28));
        rc = w_raw(&w, h, sizeof h);
    }
    /* 2. Every key, one block at a time. */
    uint64_t cursor = 0;
    while (rc == 0) {
        uint64_t next;
        int src = kv__scan(s, NULL, 0, cursor, 4096, on_key, &w, &next);
        if (src != KV_OK)
            rc = src;
        else if (w.err)
            rc = w.err;
        else if (w.len >= BLOCK_BYTES || next == 0)
            rc = w_flush_block(&w, KV__BLK_ENTRIES);
        if (rc || next == 0)
            break;
        cursor = next;
    }
    /* 2b. With history: every key's earlier versions, taken after the
     * keys, so that a version replaced during the pass is in either the
     * history copied or the records below (loading skips the twice-seen). */
    if (rc == 0 && s->hist)
        rc = write_history(s, &w);
    /* 3. The log's records during the pass. */
    if (rc == 0 && s->log) {
        int lrc = kv__log_flush(s->log, &end);
        rc = lrc == KV_OK ? copy_tail(s, &w, start, end) : lrc;
        if (rc == KV_IO && w.err < 0)
            rc = w.err;
    } else if (rc == 0) {
        end = atomic_load(&s->revision);
    }
    /* 4. End block, sync, rename. */
    if (rc == 0) {
        unsigned char b[KV__FRAME_HDR + 32] = {0};
        unsigned char *p = b + KV__FRAME_HDR;
        p[0] = KV__BLK_END;
        kv__put64(p + 8, w.entries);
        kv__put64(p + 16, end);
        kv__put64(p + 24, w.records);
        kv__frame_seal(b, 32);
        if ((rc = w_raw(&w, b, sizeof b)) == 0 && (rc = io->sync(io, w.fd)) == 0) {
            rc = io->close(io, w.fd);
            w.fd = -1;
            if (final)
                snprintf(final, plen + 1, "%s/snap-%016llx.kvs", s->dur->dir,
                         (unsigned long long)end);
            if (rc == 0 && (rc = io->rename(io, tmp, path)) == 0) {
                renamed = true;
                rc = io->sync_dir(io, dir);
            }
        }
    }
    if (w.fd >= 0)
        io->close(io, w.fd);
    if (rc != 0 && !renamed)
        io->unlink(io, tmp);
    free(tmp);
    free(final);
    free(w.buf);
    if (rc < 0)
        rc = kv__io_status(rc);
    if (rc == KV_OK)
        *end_rev = end;
    return rc;
}
