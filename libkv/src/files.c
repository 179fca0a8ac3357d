/*
 * files.c - listing a data directory and reading segments and snapshots
 * (files.h). See docs/storage.md for the formats.
 */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include "files.h"
#include "io.h"
#include "kv.h"
#include "log.h"
#include "record.h"

/* ---- directory listing ------------------------------------------------- */

static int push(uint64_t **v, size_t *n, size_t *cap, uint64_t x)
{
    if (*n == *cap) {
        size_t c = *cap ? *cap * 2 : 16;
        uint64_t *p = realloc(*v, c * sizeof *p);
        if (!p)
            return KV_NO_MEMORY;
        *v = p;
        *cap = c;
    }
    (*v)[(*n)++] = x;
    return KV_OK;
}

static int u64_cmp(const void *a, const void *b)
{
    uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;
    return x < y ? -1 : x > y;
}

/* "<prefix><16 hex><suffix>" -> number */
static bool parse_name(const char *name, const char *prefix, const char *suffix, uint64_t *out)
{
    size_t pl = strlen(prefix), sl = strlen(suffix), nl = strlen(name);
    if (nl != pl + 16 + sl || strncmp(name, prefix, pl) != 0 || strcmp(name + pl + 16, suffix) != 0)
        return false;
    uint64_t v = 0;
    for (size_t i = pl; i < pl + 16; i++) {
        char c = name[i];
        int d = c >= '0' && c <= '9' ? c - '0' : c >= 'a' && c <= 'f' ? c - 'a' + 10 : -1;
        if (d < 0)
            return false;
        v = v << 4 | (uint64_t)d;
    }
    *out = v;
    return true;
}

int kv__dir_list_read(const char *dir, kv__io *remove_tmp, kv__dir_list *out)
{
    memset(out, 0, sizeof *out);
    DIR *d = opendir(dir);
    if (!d)
        return errno == ENOMEM ? KV_NO_MEMORY : KV_IO;
    size_t segcap = 0, snapcap = 0;
    int rc = KV_OK;
    struct dirent *e;
    while (rc == KV_OK && (e = readdir(d))) {
        uint64_t x;
        size_t nl = strlen(e->d_name);
        if (parse_name(e->d_name, "log-", ".kvl", &x))
            rc = push(&out->segs, &out->nsegs, &segcap, x);
        else if (parse_name(e->d_name, "snap-", ".kvs", &x))
            rc = push(&out->snaps, &out->nsnaps, &snapcap, x);
        else if (remove_tmp && nl > 4 && strcmp(e->d_name + nl - 4, ".tmp") == 0) {
            char *p = malloc(strlen(dir) + nl + 2);
            if (p) {
                sprintf(p, "%s/%s", dir, e->d_name);
                remove_tmp->unlink(remove_tmp, p);
                free(p);
            }
        }
    }
    closedir(d);
    if (rc != KV_OK) {
        kv__dir_list_free(out);
        return rc;
    }
    if (out->nsegs)
        qsort(out->segs, out->nsegs, sizeof *out->segs, u64_cmp);
    if (out->nsnaps)
        qsort(out->snaps, out->nsnaps, sizeof *out->snaps, u64_cmp);
    return KV_OK;
}

void kv__dir_list_free(kv__dir_list *l)
{
    free(l->segs);
    free(l->snaps);
    memset(l, 0, sizeof *l);
}

/* ---- mapping a file ---------------------------------------------------- */

typedef struct mapped {
    const unsigned char *p;
    size_t len;
} mapped;

static int map_file(const char *path, mapped *m, char *err, size_t errcap)
{
    m->p = NULL;
    m->len = 0;
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0) {
        snprintf(err, errcap, "%s: cannot open: %s", path, strerror(errno));
        return KV_IO;
    }
    struct stat st;
    if (fstat(fd, &st) < 0) {
        snprintf(err, errcap, "%s: cannot stat: %s", path, strerror(errno));
        close(fd);
        return KV_IO;
    }
    m->len = (size_t)st.st_size;
    if (m->len) {
        void *p = mmap(NULL, m->len, PROT_READ, MAP_PRIVATE, fd, 0);
        if (p == MAP_FAILED) {
            snprintf(err, errcap, "%s: cannot map: %s", path, strerror(errno));
            close(fd);
            return errno == ENOMEM ? KV_NO_MEMORY : KV_IO;
        }
        madvise(p, m->len, MADV_SEQUENTIAL);
        m->p = p;
    }
    close(fd);
    return KV_OK;
}

/* Pages already read are dropped from the mapping as a read moves on, so a
 * long segment or snapshot never sits in the process's resident memory
 * (they are page cache, but they count in its RSS). */
#define DROP_EVERY ((size_t)4 << 20)
static void drop_behind(const mapped *m, size_t *dropped, size_t off)
{
    size_t upto = off & ~(size_t)4095;
    if (upto >= *dropped + DROP_EVERY) {
        madvise((void *)(m->p + *dropped), upto - *dropped, MADV_DONTNEED);
        *dropped = upto;
    }
}

static void unmap(mapped *m)
{
    if (m->p)
        munmap((void *)m->p, m->len);
}

static bool all_zero(const unsigned char *p, size_t n)
{
    for (size_t i = 0; i < n; i++)
        if (p[i])
            return false;
    return true;
}

/* ---- unmasked payloads ------------------------------------------------- */

/* A frame's payload, unmasked into a buffer that grows as needed. */
typedef struct scratch {
    unsigned char *p;
    size_t cap;
} scratch;

static const unsigned char *unmask(scratch *s, const unsigned char *frame, size_t len)
{
    if (len > s->cap) {
        size_t cap = len < 4096 ? 4096 : len;
        unsigned char *p = realloc(s->p, cap);
        if (!p)
            return NULL;
        s->p = p;
        s->cap = cap;
    }
    memcpy(s->p, frame + KV__FRAME_HDR, len);
    kv__frame_mask(s->p, len);
    return s->p;
}

/* ---- segments ---------------------------------------------------------- */

/* Does [from, to) hold a whole 512-byte sector (aligned in the file) of
 * zeros, or is it all zeros? Then the damage there is a write that never
 * reached the disk (the kernel writes a file's dirty pages in any order),
 * not a record that was written and then went bad (etcd's WAL draws the
 * same line). */
static bool zero_sector(const mapped *m, size_t from, size_t to)
{
    if (all_zero(m->p + from, to - from))
        return true;
    for (size_t s = (from + 511) & ~(size_t)511; s + 512 <= to; s += 512)
        if (all_zero(m->p + s, 512))
            return true;
    return false;
}

/* Is there a valid record anywhere after off? (8-byte aligned positions) */
static bool valid_record_after(const mapped *m, size_t off, size_t *found)
{
    scratch sc = {0};
    bool yes = false;
    for (size_t o = off; o + KV__FRAME_HDR <= m->len && !yes; o += 8) {
        uint64_t len;
        if (kv__frame_check(m->p + o, m->len - o, &len) != KV__FRAME_OK)
            continue;
        kv__record r;
        kv__change *ch;
        bool nomem;
        const unsigned char *pl = unmask(&sc, m->p + o, (size_t)len);
        if (!pl || kv__record_decode(pl, (size_t)len, &r, &ch, &nomem) || nomem) {
            free(ch);
            *found = o;
            yes = true;
        }
    }
    free(sc.p);
    return yes;
}

int kv__seg_read(const char *path, bool is_last, kv__rec_fn fn, void *ctx,
                 kv__seg_info *info, char *err, size_t errcap)
{
    memset(info, 0, sizeof *info);
    mapped m;
    int rc = map_file(path, &m, err, errcap);
    if (rc != KV_OK)
        return rc;
    info->file_size = m.len;
    const unsigned char *h = m.p;
    if (m.len < KV__SEG_HDR || memcmp(h, "KVLOG\0\0\0", 8) != 0 ||
        kv__get32(h + 28) != kv__crc(h, 28)) {
        /* A new segment whose header never reached the disk. */
        if (is_last && (m.len <= KV__SEG_HDR || all_zero(h, m.len))) {
            info->header_torn = true;
            unmap(&m);
            return KV_OK;
        }
        snprintf(err, errcap, "%s: bad segment header at offset 0", path);
        unmap(&m);
        return KV_CORRUPT;
    }
    if (kv__get32(h + 8) != 1) {
        snprintf(err, errcap, "%s: segment format version %" PRIu32 " is not supported", path,
                 kv__get32(h + 8));
        unmap(&m);
        return KV_CORRUPT;
    }
    info->first_rev = kv__get64(h + 16);
    size_t off = KV__SEG_HDR, dropped = 0;
    scratch sc = {0};
    uint64_t next = info->first_rev;
    rc = KV_OK;
    while (rc == KV_OK && off < m.len) {
        uint64_t len = 0;
        int fr = kv__frame_check(m.p + off, m.len - off, &len);
        if (fr == KV__FRAME_END && all_zero(m.p + off, m.len - off))
            break;
        if (fr == KV__FRAME_OK) {
            kv__record r;
            kv__change *ch;
            bool nomem = false;
            const unsigned char *pl = unmask(&sc, m.p + off, (size_t)len);
            if (!pl || !kv__record_decode(pl, (size_t)len, &r, &ch, &nomem)) {
                if (nomem || !pl) {
                    rc = KV_NO_MEMORY;
                    break;
                }
                snprintf(err, errcap, "%s: malformed record at offset %zu", path, off);
                rc = KV_CORRUPT;
                break;
            }
            if (r.revision != next) {
                free(ch);
                snprintf(err, errcap,
                         "%s: record at offset %zu has revision %" PRIu64 ", expected %" PRIu64,
                         path, off, r.revision, next);
                rc = KV_CORRUPT;
                break;
            }
            size_t flen = kv__frame_size((size_t)len);
            if (fn)
                rc = fn(ctx, &r, m.p + off, flen);
            free(ch);
            if (rc != KV_OK)
                break;
            info->last_rev = r.revision;
            info->records++;
            next++;
            off += flen;
            info->valid_end = off;
            drop_behind(&m, &dropped, off);
            continue;
        }
        /* A bad or cut-off frame: the torn end of the newest segment, or
         * damage in the middle (a valid record follows non-zero garbage). */
        size_t found;
        bool later = valid_record_after(&m, off + 8, &found);
        if (is_last && (!later || zero_sector(&m, off, found))) {
            info->torn = true;
            break;
        }
        snprintf(err, errcap, "%s: corrupt record at offset %zu%s", path, off,
                 is_last ? " (valid records follow it)" : " (not the newest segment)");
        rc = KV_CORRUPT;
    }
    if (info->valid_end == 0)
        info->valid_end = KV__SEG_HDR;
    free(sc.p);
    unmap(&m);
    return rc;
}

/* ---- snapshots --------------------------------------------------------- */

/* A history block (docs/storage.md): keys, each with its earlier
 * versions, newest first. */
static int read_history_block(const unsigned char *p, size_t n, const kv__snap_fns *fns,
                              void *ctx)
{
    uint64_t count = kv__get32(p + 4);
    size_t o = 8;
    int rc = KV_OK;
    kv_hist_version *ents = NULL;
    size_t cap = 0;
    for (uint64_t i = 0; i < count && rc == KV_OK; i++) {
        if (n - o < KV__HKEY_HDR)
            return free(ents), KV_CORRUPT;
        size_t klen = kv__get32(p + o), nent = kv__get32(p + o + 4);
        uint64_t floor = kv__get64(p + o + 8);
        o += KV__HKEY_HDR;
        if (klen == 0 || klen > n - o)
            return free(ents), KV_CORRUPT;
        const unsigned char *key = p + o;
        o += klen;
        if (nent > cap) {
            kv_hist_version *e = realloc(ents, nent * sizeof *e);
            if (!e)
                return free(ents), KV_NO_MEMORY;
            ents = e;
            cap = nent;
        }
        for (size_t j = 0; j < nent; j++) {
            if (n - o < KV__HENT_HDR)
                return free(ents), KV_CORRUPT;
            const unsigned char *h = p + o;
            size_t ext = kv__get16(h + 32), vlen = kv__get32(h + 36);
            o += KV__HENT_HDR;
            if (ext > n - o || vlen > n - o - ext)
                return free(ents), KV_CORRUPT;
            kv_hist_version *e = &ents[j];
            e->revision = kv__get64(h);
            e->until = kv__get64(h + 8);
            e->create_revision = kv__get64(h + 16);
            e->version = kv__get64(h + 24);
            kv__ext_parse(p + o, ext, &e->expire_at_ms);
            o += ext;
            e->value = p + o;
            e->vlen = vlen;
            o += vlen;
            if (e->revision == 0 || e->until <= e->revision ||
                (j && e->until > ents[j - 1].revision))
                return free(ents), KV_CORRUPT;
        }
        if (fns && fns->history)
            rc = fns->history(ctx, key, klen, floor, ents, nent);
    }
    free(ents);
    if (rc == KV_OK && o != n)
        rc = KV_CORRUPT;
    return rc;
}

int kv__snap_read(const char *path, const kv__snap_fns *fns, void *ctx, kv__snap_info *info,
                  char *err, size_t errcap)
{
    memset(info, 0, sizeof *info);
    mapped m;
    int rc = map_file(path, &m, err, errcap);
    if (rc != KV_OK)
        return rc;
    const unsigned char *h = m.p;
    if (m.len < KV__SNAP_HDR || memcmp(h, "KVSNAP\0\0", 8) != 0 ||
        kv__get32(h + 28) != kv__crc(h, 28)) {
        snprintf(err, errcap, "%s: bad snapshot header at offset 0", path);
        unmap(&m);
        return KV_CORRUPT;
    }
    if (kv__get32(h + 8) != 1) {
        snprintf(err, errcap, "%s: snapshot format version %" PRIu32 " is not supported", path,
                 kv__get32(h + 8));
        unmap(&m);
        return KV_CORRUPT;
    }
    info->start_rev = kv__get64(h + 16);
    size_t off = KV__SNAP_HDR, dropped = 0;
    scratch sc = {0};
    bool ended = false;
    while (rc == KV_OK && !ended) {
        uint64_t len;
        int fr = kv__frame_check(m.p + off, m.len - off, &len);
        if (fr != KV__FRAME_OK || len < 8) {
            snprintf(err, errcap, "%s: %s at offset %zu", path,
                     fr == KV__FRAME_END ? "snapshot ends without its end block"
                                         : "corrupt block",
                     off);
            rc = KV_CORRUPT;
            break;
        }
        size_t n = (size_t)len;
        const unsigned char *p = unmask(&sc, m.p + off, n);
        if (!p) {
            rc = KV_NO_MEMORY;
            break;
        }
        switch (p[0]) {
        case KV__REC_CHANGE: {
            kv__record r;
            kv__change *ch;
            bool nomem;
            if (!kv__record_decode(p, n, &r, &ch, &nomem)) {
                rc = nomem ? KV_NO_MEMORY : KV_CORRUPT;
                if (!nomem)
                    snprintf(err, errcap, "%s: malformed record at offset %zu", path, off);
                break;
            }
            if (fns && fns->record)
                rc = fns->record(ctx, &r, m.p + off, kv__frame_size(n));
            free(ch);
            info->records++;
            break;
        }
        case KV__BLK_ENTRIES: {
            uint64_t count = kv__get32(p + 4);
            size_t o = 8;
            for (uint64_t i = 0; i < count && rc == KV_OK; i++) {
                if (n - o < KV__ENTRY_HDR) {
                    rc = KV_CORRUPT;
                    break;
                }
                const unsigned char *e = p + o;
                size_t ext = kv__get16(e + 2), klen = kv__get32(e + 4), vlen = kv__get32(e + 8);
                uint64_t rev = kv__get64(e + 12);
                o += KV__ENTRY_HDR;
                if (e[0] != KV__OP_SET || klen == 0 || rev == 0 || ext > n - o ||
                    klen > n - o - ext || vlen > n - o - ext - klen) {
                    rc = KV_CORRUPT;
                    break;
                }
                uint64_t exp, create = 0, version = 0;
                kv__ext_parse(p + o, ext, &exp);
                bool meta = kv__ext_parse_meta(p + o, ext, &create, &version);
                o += ext;
                if (fns && fns->entry)
                    rc = fns->entry(ctx, p + o, klen, p + o + klen, vlen, rev, exp);
                if (rc == KV_OK && meta && fns && fns->entry_meta)
                    rc = fns->entry_meta(ctx, p + o, klen, rev, create, version);
                o += klen + vlen;
                info->entries++;
            }
            if (rc == KV_OK && o != n)
                rc = KV_CORRUPT;
            if (rc == KV_CORRUPT)
                snprintf(err, errcap, "%s: malformed entries block at offset %zu", path, off);
            break;
        }
        case KV__BLK_HISTORY:
            rc = read_history_block(p, n, fns, ctx);
            if (rc == KV_CORRUPT)
                snprintf(err, errcap, "%s: malformed history block at offset %zu", path, off);
            break;
        case KV__BLK_HIST_INFO:
            if (n != 16) {
                rc = KV_CORRUPT;
                snprintf(err, errcap, "%s: malformed history block at offset %zu", path, off);
                break;
            }
            if (fns && fns->hist_info)
                rc = fns->hist_info(ctx, kv__get64(p + 8));
            break;
        case KV__BLK_END:
            if (n != 32) {
                rc = KV_CORRUPT;
                snprintf(err, errcap, "%s: malformed end block at offset %zu", path, off);
                break;
            }
            info->end_rev = kv__get64(p + 16);
            ended = true;
            break;
        default:
            rc = KV_CORRUPT;
            snprintf(err, errcap, "%s: unknown block type %u at offset %zu", path, p[0], off);
        }
        off += kv__frame_size(n);
        drop_behind(&m, &dropped, off < m.len ? off : m.len);
        if (rc == KV_OK && off > m.len) {
            snprintf(err, errcap, "%s: cut short at offset %zu", path, m.len);
            rc = KV_CORRUPT;
        }
    }
    if (rc == KV_OK && !all_zero(m.p + off, m.len - off)) {
        snprintf(err, errcap, "%s: unexpected bytes after the end block at offset %zu", path, off);
        rc = KV_CORRUPT;
    }
    free(sc.p);
    unmap(&m);
    return rc;
}

int kv__snap_peek(const char *path, uint64_t *entries, uint64_t *records)
{
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0)
        return KV_IO;
    struct stat st;
    unsigned char b[KV__FRAME_HDR + 32];
    int rc = KV_CORRUPT;
    if (fstat(fd, &st) == 0 && st.st_size >= (off_t)(KV__SNAP_HDR + sizeof b) &&
        pread(fd, b, sizeof b, st.st_size - (off_t)sizeof b) == (ssize_t)sizeof b) {
        uint64_t len;
        if (kv__frame_check(b, sizeof b, &len) == KV__FRAME_OK && len == 32 &&
            (kv__frame_mask(b + KV__FRAME_HDR, 32), b[KV__FRAME_HDR] == KV__BLK_END)) {
            *entries = kv__get64(b + KV__FRAME_HDR + 8);
            *records = kv__get64(b + KV__FRAME_HDR + 24);
            rc = KV_OK;
        }
    }
    close(fd);
    return rc;
}
