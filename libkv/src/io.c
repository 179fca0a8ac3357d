/*
 * io.c - kv__io_posix, the I/O layer's system implementation (io.h), and
 * the helpers every user of the layer shares.
 */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <unistd.h>

#include "io.h"
#include "kv.h"

static int posix_open(kv__io *io, const char *path, int flags, int mode, int *fd)
{
    (void)io;
    int f;
    do
        f = open(path, flags | O_CLOEXEC, mode);
    while (f < 0 && errno == EINTR);
    if (f < 0)
        return -errno;
    *fd = f;
    return 0;
}

static ssize_t posix_pwrite(kv__io *io, int fd, const void *buf, size_t len, off_t off)
{
    (void)io;
    ssize_t n;
    do
        n = pwrite(fd, buf, len, off);
    while (n < 0 && errno == EINTR);
    return n < 0 ? -errno : n;
}

static ssize_t posix_pread(kv__io *io, int fd, void *buf, size_t len, off_t off)
{
    (void)io;
    ssize_t n;
    do
        n = pread(fd, buf, len, off);
    while (n < 0 && errno == EINTR);
    return n < 0 ? -errno : n;
}

static int posix_sync(kv__io *io, int fd)
{
    (void)io;
    return fdatasync(fd) < 0 ? -errno : 0;
}

static int posix_truncate(kv__io *io, int fd, off_t len)
{
    (void)io;
    return ftruncate(fd, len) < 0 ? -errno : 0;
}

static int posix_close(kv__io *io, int fd)
{
    (void)io;
    return close(fd) < 0 ? -errno : 0;
}

static int posix_rename(kv__io *io, const char *from, const char *to)
{
    (void)io;
    return rename(from, to) < 0 ? -errno : 0;
}

static int posix_unlink(kv__io *io, const char *path)
{
    (void)io;
    return unlink(path) < 0 ? -errno : 0;
}

static int posix_sync_dir(kv__io *io, const char *dir)
{
    (void)io;
    int fd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (fd < 0)
        return -errno;
    int rc = fsync(fd) < 0 ? -errno : 0;
    close(fd);
    return rc;
}

kv__io kv__io_posix = {
    .open = posix_open,
    .pwrite = posix_pwrite,
    .pread = posix_pread,
    .sync = posix_sync,
    .truncate = posix_truncate,
    .close = posix_close,
    .rename = posix_rename,
    .unlink = posix_unlink,
    .sync_dir = posix_sync_dir,
};

int kv__io_write_all(kv__io *io, int fd, const void *buf, size_t len, off_t off)
{
    const char *p = buf;
    while (len) {
        ssize_t n = io->pwrite(io, fd, p, len, off);
        if (n < 0)
            return (int)n;
        if (n == 0)
            return -EIO;
        p += n;
        len -= (size_t)n;
        off += n;
    }
    return 0;
}

ssize_t kv__io_read_all(kv__io *io, int fd, void *buf, size_t len, off_t off)
{
    char *p = buf;
    size_t got = 0;
    while (got < len) {
        ssize_t n = io->pread(io, fd, p + got, len - got, off + (off_t)got);
        if (n < 0)
            return n;
        if (n == 0)
            break;
        got += (size_t)n;
    }
    return (ssize_t)got;
}

int kv__io_status(int neg_errno)
{
    return neg_errno == -ENOSPC || neg_errno == -EDQUOT ? KV_NO_SPACE : KV_IO;
}
