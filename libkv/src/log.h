/*
 * log.h - the write-ahead log's writer: appending records, group commit,
 * and the fsync policies.
 *
 * A writer inside kv__apply (stripe locks held) calls kv__log_append: under
 * the log's mutex it takes the next revision and copies the record into the
 * active in-memory batch. That step can fail cleanly (no memory, or the log
 * is failing), and then nothing changed and no revision was used. Because
 * revisions are taken under the same mutex that orders the batch, the log
 * holds records in revision order, one record per revision, with no gaps.
 *
 * Whole batches are written: everything queued since the last write goes
 * to the segment file with one pwrite and, under fsync=always, one
 * fdatasync. Writers wait (kv__log_wait) after their stripe locks are
 * released, so a slow disk never holds a key's stripe, and every writer
 * queued during one write+fsync shares the next (group commit). Who does
 * the I/O: with writers_lead, the first waiter that finds no round in
 * progress leads one itself (no thread hand-off, as in RocksDB's write
 * groups), or the caller writes with kv__log_write_now (kvd's event loops
 * under everysec and no, once per loop iteration, as Redis writes its AOF);
 * appends do not wake the flusher, which keeps the everysec syncs, retries,
 * the final flush, and writes records nobody wrote within 10 ms. Without it
 * (kvd under always: its loops must not wait for an fsync), the flusher
 * does every round. Each round reports through the notify function.
 *
 * Durable, per policy: always = synced to stable storage; everysec and no =
 * handed to the kernel (a process crash loses nothing; everysec syncs at
 * least once a second, no leaves syncing to the kernel).
 *
 * Failures: out of space on a write keeps the batch and retries every
 * 100 ms; meanwhile new appends get KV_NO_SPACE and waiters of the batch get
 * KV_NO_SPACE (their change is in memory, not yet logged). Any other write
 * error, and any failed fdatasync, is permanent (after a failed fsync the
 * kernel may have dropped the dirty pages, so retrying proves nothing): the
 * log refuses every later append with KV_IO until the store is reopened.
 *
 * Segments are named log-<first revision, 16 hex digits>.kvl and begin
 * with a 32-byte header (docs/storage.md). A segment is synced before the
 * next one starts, so only the newest can end torn.
 */
#ifndef KV_LOG_H
#define KV_LOG_H

#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>

#include "apply.h"
#include "io.h"

typedef struct kv__log kv__log;

#define KV__SEG_HDR 32u

typedef void (*kv__log_notify_fn)(void *ctx, uint64_t durable_rev, int status);

/* Starts the log writer after recovery. writers_lead: see above. revision is the store's revision
 * counter (the last revision used, kept by the store); appends continue
 * after it. If tail_path is not NULL the newest segment, valid up to
 * tail_size bytes, is reopened for appending; otherwise a new segment is
 * created. Errors: KV_IO, KV_NO_SPACE, KV_NO_MEMORY. */
int kv__log_start(kv__io *io, const char *dir, int fsync, bool writers_lead,
                  uint64_t segment_bytes, _Atomic uint64_t *revision, const char *tail_path,
                  uint64_t tail_size, uint64_t tail_first_rev, kv__log **out);

/* Flushes and syncs everything queued, stops the flusher and frees the
 * log. Returns the log's status (KV_OK if everything was written). */
int kv__log_stop(kv__log *l);

/* Takes the next revision into r->revision and queues the record. Call
 * with the record's stripes locked. Errors: KV_NO_MEMORY, KV_NO_SPACE,
 * KV_IO; then no revision was taken. */
int kv__log_append(kv__log *l, kv__record *r);

/* Waits until rev is durable per the policy. KV_OK, or the log's failure
 * (KV_NO_SPACE, KV_IO) if rev is not durable and the log is failing. */
int kv__log_wait(kv__log *l, uint64_t rev);

/* Writes what is queued now, in the calling thread, with one pwrite and
 * never an fsync (syncs stay with the flusher), unless a round is in
 * progress (it or the next one takes the records). KV_OK or the log's
 * failure. */
int kv__log_write_now(kv__log *l);

/* The highest durable revision. */
uint64_t kv__log_durable(kv__log *l);

/* Waits until every record queued so far is written to the segment files
 * (not necessarily synced) and returns the last such revision in *rev. */
int kv__log_flush(kv__log *l, uint64_t *rev);

/* Called by the flusher (no lock held) each time the durable revision
 * advances or the log fails. Once kv__log_set_notify returns, the old
 * function is not running and will not be called again (so it must not be
 * called from inside fn). */
void kv__log_set_notify(kv__log *l, kv__log_notify_fn fn, void *ctx);

/* The first revision of the segment being appended to: segments that
 * start before it are closed and complete. */
uint64_t kv__log_current_segment(kv__log *l);

/* Bytes appended to the log since it started. */
uint64_t kv__log_bytes(kv__log *l);

/* Test-only (tests/durable/test_log_wakeup.c): what the flusher thread
 * is doing, read under the log's mutex; it may change as soon as this
 * returns, but a waiting state lasts until someone wakes the flusher. */
enum {
    KV__FLUSHER_RUNS,        /* working, or woken and not yet waiting */
    KV__FLUSHER_WAITS_ROUND, /* waits for the end of a round a writer leads */
    KV__FLUSHER_SLEEPS       /* nothing to do: sleeps with no deadline */
};
int kv__log_flusher_state(kv__log *l);

typedef struct kv__log_stats {
    uint64_t bytes, records, batches, syncs, durable;
    int status;
} kv__log_stats;
void kv__log_stats_read(kv__log *l, kv__log_stats *out);

/* Path of a segment: dir/log-%016llx.kvl. buf must hold strlen(dir)+32. */
void kv__log_segment_path(char *buf, size_t cap, const char *dir, uint64_t first_rev);

/* Builds the 32-byte segment header. */
void kv__log_segment_header(unsigned char *hdr, uint64_t first_rev);

#endif
