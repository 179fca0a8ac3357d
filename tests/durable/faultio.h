/*
 * faultio.h - an I/O layer (libkv/src/io.h) that breaks on demand, in the
 * manner of SQLite's test VFS: fail the Nth operation of a kind with a
 * chosen errno (once, or from then on), or "lose power" at the Nth
 * operation: that write lands only in part, every later operation fails
 * with EIO, and fault_lose() then throws away, file by file, a random part
 * of whatever was written but not yet synced (a cut-off end, and maybe one
 * aligned 512-byte sector of it that never reached the disk).
 *
 * Unsynced writes may land inside a file's synced size too: the log writes
 * its records over zeros it wrote (and synced) ahead of them (log.c,
 * prefill). What such a write replaced is taken to be zeros, which is what
 * libkv only ever overwrites (zeros, or its own unsynced bytes), so a lost
 * overwrite turns back into zeros.
 */
#ifndef FAULTIO_H
#define FAULTIO_H

#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "io.h"

enum { F_OPEN, F_WRITE, F_SYNC, F_TRUNCATE, F_RENAME, F_UNLINK, F_SYNC_DIR, F_NKINDS, F_ANY };

#define F_MAXFILES 64

typedef struct fault_io {
    kv__io io; /* first: callbacks cast back */
    pthread_mutex_t mu;
    int kind;       /* which operations count (F_ANY: all) */
    int err;        /* errno to fail with */
    long countdown; /* the next `countdown` counted ops succeed; -1: off */
    bool sticky;    /* keep failing once triggered */
    bool failing;
    bool power;     /* the failure is a power cut */
    bool dead;      /* after the cut: everything fails */
    bool nospc_next; /* a full disk took part of a write: the next fails */
    unsigned seed;
    long ops[F_NKINDS];
    struct {
        char path[300];
        int fd; /* -1 when closed */
        off_t synced;
        off_t dirty; /* lowest offset written since the last sync (-1: none) */
    } files[F_MAXFILES];
    int nfiles;
} fault_io;

/* Returns 0 to go ahead, or -errno. Call with mu held. */
static int fault_check(fault_io *f, int kind)
{
    f->ops[kind]++;
    if (f->dead)
        return -EIO;
    if (f->failing)
        return -f->err;
    if (f->countdown < 0 || (f->kind != F_ANY && f->kind != kind))
        return 0;
    if (f->countdown-- > 0)
        return 0;
    f->countdown = -1;
    if (f->power) {
        f->dead = true;
        return -EIO;
    }
    if (f->sticky)
        f->failing = true;
    return -f->err;
}

static int fault_file(fault_io *f, int fd)
{
    for (int i = 0; i < f->nfiles; i++)
        if (f->files[i].fd == fd)
            return i;
    return -1;
}

static int f_open(kv__io *io, const char *path, int flags, int mode, int *fd)
{
    fault_io *f = (fault_io *)io;
    pthread_mutex_lock(&f->mu);
    int rc = fault_check(f, F_OPEN);
    if (rc == 0)
        rc = kv__io_posix.open(&kv__io_posix, path, flags, mode, fd);
    if (rc == 0 && (flags & (O_WRONLY | O_RDWR))) {
        int i;
        for (i = 0; i < f->nfiles; i++)
            if (strcmp(f->files[i].path, path) == 0)
                break;
        if (i == f->nfiles && f->nfiles < F_MAXFILES) {
            f->nfiles++;
            snprintf(f->files[i].path, sizeof f->files[i].path, "%s", path);
            struct stat st;
            f->files[i].synced = (flags & O_TRUNC) || stat(path, &st) != 0 ? 0 : st.st_size;
        } else if (i < f->nfiles && (flags & O_TRUNC)) {
            f->files[i].synced = 0;
        }
        if (i < F_MAXFILES) {
            f->files[i].fd = *fd;
            f->files[i].dirty = -1;
        }
    }
    pthread_mutex_unlock(&f->mu);
    return rc;
}

static ssize_t f_pwrite(kv__io *io, int fd, const void *buf, size_t len, off_t off)
{
    fault_io *f = (fault_io *)io;
    pthread_mutex_lock(&f->mu);
    bool was_dead = f->dead;
    int rc = fault_check(f, F_WRITE);
    if (rc == 0 && f->nospc_next)
        rc = -ENOSPC;
    f->nospc_next = false;
    ssize_t n = rc;
    int i = fault_file(f, fd);
    if (i >= 0 && (f->files[i].dirty < 0 || off < f->files[i].dirty))
        f->files[i].dirty = off;
    if (rc == 0) {
        n = kv__io_posix.pwrite(&kv__io_posix, fd, buf, len, off);
    } else if (f->dead && !was_dead && len > 1) {
        /* The write the power cut interrupted lands in part. */
        size_t part = (size_t)rand_r(&f->seed) % len;
        if (part)
            kv__io_posix.pwrite(&kv__io_posix, fd, buf, part, off);
    } else if (rc == -ENOSPC && len > 1 && !f->dead && !f->failing) {
        /* A full disk takes what fits, then says no. */
        size_t part = len / 2;
        ssize_t w = kv__io_posix.pwrite(&kv__io_posix, fd, buf, part, off);
        if (w > 0) {
            n = w;
            f->nospc_next = true;
        }
    }
    pthread_mutex_unlock(&f->mu);
    return n;
}

static ssize_t f_pread(kv__io *io, int fd, void *buf, size_t len, off_t off)
{
    (void)io;
    return kv__io_posix.pread(&kv__io_posix, fd, buf, len, off);
}

static int f_sync(kv__io *io, int fd)
{
    fault_io *f = (fault_io *)io;
    pthread_mutex_lock(&f->mu);
    int rc = fault_check(f, F_SYNC);
    if (rc == 0)
        rc = kv__io_posix.sync(&kv__io_posix, fd);
    int i = fault_file(f, fd);
    struct stat st;
    if (rc == 0 && i >= 0 && fstat(fd, &st) == 0) {
        f->files[i].synced = st.st_size;
        f->files[i].dirty = -1;
    }
    pthread_mutex_unlock(&f->mu);
    return rc;
}

static int f_truncate(kv__io *io, int fd, off_t len)
{
    fault_io *f = (fault_io *)io;
    pthread_mutex_lock(&f->mu);
    int rc = fault_check(f, F_TRUNCATE);
    if (rc == 0)
        rc = kv__io_posix.truncate(&kv__io_posix, fd, len);
    pthread_mutex_unlock(&f->mu);
    return rc;
}

static int f_close(kv__io *io, int fd)
{
    fault_io *f = (fault_io *)io;
    pthread_mutex_lock(&f->mu);
    int i = fault_file(f, fd);
    if (i >= 0)
        f->files[i].fd = -1;
    pthread_mutex_unlock(&f->mu);
    return kv__io_posix.close(&kv__io_posix, fd);
}

static int f_rename(kv__io *io, const char *from, const char *to)
{
    fault_io *f = (fault_io *)io;
    pthread_mutex_lock(&f->mu);
    int rc = fault_check(f, F_RENAME);
    if (rc == 0) {
        rc = kv__io_posix.rename(&kv__io_posix, from, to);
        for (int i = 0; rc == 0 && i < f->nfiles; i++)
            if (strcmp(f->files[i].path, from) == 0)
                snprintf(f->files[i].path, sizeof f->files[i].path, "%s", to);
    }
    pthread_mutex_unlock(&f->mu);
    return rc;
}

static int f_unlink(kv__io *io, const char *path)
{
    fault_io *f = (fault_io *)io;
    pthread_mutex_lock(&f->mu);
    int rc = fault_check(f, F_UNLINK);
    if (rc == 0)
        rc = kv__io_posix.unlink(&kv__io_posix, path);
    pthread_mutex_unlock(&f->mu);
    return rc;
}

static int f_sync_dir(kv__io *io, const char *dir)
{
    fault_io *f = (fault_io *)io;
    pthread_mutex_lock(&f->mu);
    int rc = fault_check(f, F_SYNC_DIR);
    if (rc == 0)
        rc = kv__io_posix.sync_dir(&kv__io_posix, dir);
    pthread_mutex_unlock(&f->mu);
    return rc;
}

static inline void fault_init(fault_io *f, unsigned seed)
{
    memset(f, 0, sizeof *f);
    f->io = (kv__io){f_open, f_pwrite, f_pread, f_sync, f_truncate,
                     f_close, f_rename, f_unlink, f_sync_dir};
    pthread_mutex_init(&f->mu, NULL);
    f->countdown = -1;
    f->seed = seed;
    for (int i = 0; i < F_MAXFILES; i++)
        f->files[i].fd = -1;
}

/* After `after` more operations of kind, fail with err (sticky: and keep
 * failing until fault_clear). */
static inline void fault_arm(fault_io *f, int kind, long after, int err, bool sticky)
{
    pthread_mutex_lock(&f->mu);
    f->kind = kind;
    f->countdown = after;
    f->err = err;
    f->sticky = sticky;
    f->power = false;
    pthread_mutex_unlock(&f->mu);
}

/* Cut the power at the operation `after` more operations from now. */
static inline void fault_power_cut(fault_io *f, long after)
{
    pthread_mutex_lock(&f->mu);
    f->kind = F_ANY;
    f->countdown = after;
    f->power = true;
    pthread_mutex_unlock(&f->mu);
}

static inline void fault_clear(fault_io *f)
{
    pthread_mutex_lock(&f->mu);
    f->countdown = -1;
    f->failing = false;
    pthread_mutex_unlock(&f->mu);
}

static inline bool fault_is_dead(fault_io *f)
{
    pthread_mutex_lock(&f->mu);
    bool d = f->dead;
    pthread_mutex_unlock(&f->mu);
    return d;
}

/* Zeros over [from, to) of path. */
static inline void fault_zero(const char *path, off_t from, off_t to)
{
    static const char zero[4096];
    int fd = open(path, O_WRONLY);
    if (fd < 0)
        return;
    while (from < to) {
        size_t n = to - from < (off_t)sizeof zero ? (size_t)(to - from) : sizeof zero;
        if (pwrite(fd, zero, n, from) != (ssize_t)n) {
            perror("fault_lose");
            break;
        }
        from += (off_t)n;
    }
    close(fd);
}

/* After a power cut (and with the store closed): each file keeps what was
 * synced, plus a random part of what was written after (from its lowest
 * unsynced offset on), with a random 512-byte block of that part possibly
 * never written (zeros). Lost bytes inside the synced size turn back into
 * zeros, lost bytes past it are cut off. */
static inline void fault_lose(fault_io *f)
{
    for (int i = 0; i < f->nfiles; i++) {
        struct stat st;
        if (stat(f->files[i].path, &st) != 0)
            continue;
        off_t synced = f->files[i].synced, size = st.st_size, dirty = f->files[i].dirty;
        off_t lo = dirty >= 0 && dirty < synced ? dirty : synced;
        if (size <= lo)
            continue;
        off_t keep = lo + (off_t)((unsigned)rand_r(&f->seed) % (unsigned)(size - lo + 1));
        if (keep < synced)
            fault_zero(f->files[i].path, keep, synced < size ? synced : size);
        if (keep < size && truncate(f->files[i].path, keep > synced ? keep : synced) != 0)
            continue;
        off_t first = (lo + 511) / 512 * 512;
        if (keep - first >= 512 && rand_r(&f->seed) % 2) {
            off_t blocks = (keep - first) / 512;
            off_t at = first + 512 * (off_t)((unsigned)rand_r(&f->seed) % (unsigned)blocks);
            int fd = open(f->files[i].path, O_WRONLY);
            static const char zero[512];
            if (fd >= 0) {
                if (pwrite(fd, zero, 512, at) != 512)
                    perror("fault_lose");
                close(fd);
            }
        }
    }
}

#endif
