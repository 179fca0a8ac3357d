/*
 * io.h - the one door through which libkv touches files.
 *
 * Every file operation of the log and the snapshots goes through a kv__io
 * table of functions, in the manner of SQLite's VFS. The default table
 * (kv__io_posix) calls the system; tests install their own to fail the Nth
 * write, the Nth fsync, a rename, or to "lose power" (drop what was written
 * but not yet synced). Nothing in libkv calls write(2), fsync(2), rename(2)
 * or unlink(2) except through this table.
 *
 * Convention: each function returns 0 (or a byte count) on success and a
 * negative errno on failure. Short writes are the caller's to handle:
 * kv__io_write_all() loops and maps errors.
 */
#ifndef KV_IO_H
#define KV_IO_H

#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

typedef struct kv__io kv__io;

struct kv__io {
    /* open(2) with O_CLOEXEC added; *fd receives the descriptor. */
    int (*open)(kv__io *io, const char *path, int flags, int mode, int *fd);
    /* pwrite(2): bytes written (maybe fewer than asked) or -errno. */
    ssize_t (*pwrite)(kv__io *io, int fd, const void *buf, size_t len, off_t off);
    ssize_t (*pread)(kv__io *io, int fd, void *buf, size_t len, off_t off);
    /* fdatasync(2): makes the file's data (and size) durable. */
    int (*sync)(kv__io *io, int fd);
    int (*truncate)(kv__io *io, int fd, off_t len);
    int (*close)(kv__io *io, int fd);
    int (*rename)(kv__io *io, const char *from, const char *to);
    int (*unlink)(kv__io *io, const char *path);
    /* fsync of a directory, so that created, renamed and removed names in
     * it are durable. */
    int (*sync_dir)(kv__io *io, const char *dir);
};

/* The system's calls. */
extern kv__io kv__io_posix;

/* Writes all len bytes at off, retrying short writes. 0 or -errno (a short
 * write that makes no progress reports -EIO). */
int kv__io_write_all(kv__io *io, int fd, const void *buf, size_t len, off_t off);

/* Reads up to len bytes at off until EOF. Bytes read or -errno. */
ssize_t kv__io_read_all(kv__io *io, int fd, void *buf, size_t len, off_t off);

/* A kv status for a negative errno from this layer: -ENOSPC and -EDQUOT
 * give KV_NO_SPACE, anything else KV_IO. */
int kv__io_status(int neg_errno);

#endif
