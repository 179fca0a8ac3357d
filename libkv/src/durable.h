/*
 * durable.h - a store's life on a directory: lock, recovery, the log, and
 * snapshots (durable.c and snapshot.c).
 */
#ifndef KV_DURABLE_H
#define KV_DURABLE_H

#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>

#include "io.h"
#include "kv.h"

typedef struct kv__durable {
    char *dir;
    kv__io *io;
    int lock_fd;
    int fsync;
    uint64_t snapshot_log_bytes;
    uint32_t snapshot_interval_s;
    kv_recovery recovery;

    pthread_mutex_t snap_mu; /* one snapshot at a time */
    uint64_t log_bytes_at_snap; /* under snap_mu */
    uint64_t rev_at_snap;       /* under snap_mu */

    /* the background thread that takes automatic snapshots */
    pthread_t bg;
    bool bg_started;
    pthread_mutex_t bg_mu;
    pthread_cond_t bg_cv;
    bool bg_stop;

    _Atomic uint64_t snapshots, snapshot_failures, snapshot_rev;
    kv_durable_fn cb;
    void *cb_ctx;
} kv__durable;

/* snapshot.c: writes a snapshot of s to path (through path.tmp, synced
 * and renamed). *end_rev receives its end revision. */
int kv__snapshot_write(kv_store *s, kv__io *io, const char *path, uint64_t *end_rev);

/* durable.c: sets the calling thread's kv_last_error() message. */
void kv__set_error(const char *fmt, ...) __attribute__((format(printf, 1, 2)));

/* durable.c: opens s on cfg->dir with the given I/O layer (tests pass a
 * failing one). */
int kv__durable_open(kv_store *s, const kv_config *cfg, kv__io *io);

/* Loads dir's newest snapshot and the log after it into s (recovery, and
 * the check tool with an in-memory s). repair: remove unfinished snapshot
 * files and cut a torn log tail off (else only report it in rec). On
 * success *tail_path (malloc'ed, or NULL) names the newest segment when
 * appending may go on in it, valid up to *tail_size. Errors: KV_CORRUPT
 * (kv_last_error names file and offset), KV_IO, KV_NO_MEMORY. */
int kv__recover(kv_store *s, const char *dir, kv__io *io, bool repair, kv_recovery *rec,
                char **tail_path, uint64_t *tail_size, uint64_t *tail_first);

/* Takes dir's lock (dir/LOCK, flock) into *fd. KV_LOCKED if another
 * process has it (kv_last_error names its pid). */
int kv__lock_dir(kv__io *io, const char *dir, int *fd);

/* The index capacity to open dir's store with: cap, or the newest
 * snapshot's key count if larger (durable.c explains why). */
size_t kv__capacity_for(const char *dir, size_t cap);

/* For tests: kv_open_config with another I/O layer. */
int kv__open_with_io(const kv_config *cfg, kv__io *io, kv_store **out);

#endif
