/*
 * log.c - the log writer: batches, the flusher thread, segment files
 * (log.h explains the design and the failure rules).
 */
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "kv.h"
#include "log.h"
#include "record.h"

#define RETRY_NS 100000000L /* 100 ms between retries of a failed write */

/* Zeros written ahead of the records (see prefill): a chunk at a time,
 * when less than half a chunk of zeros is left. */
#define PREFILL_CHUNK (1u << 20)

typedef struct batch {
    unsigned char *p;
    size_t len, cap;
    uint64_t last_rev; /* revision of the last record in it */
    uint64_t first_rev;
    uint64_t nrecords;
} batch;

struct kv__log {
    kv__io *io;
    char *dir;
    int fsync;
    uint64_t segment_bytes;
    _Atomic uint64_t *revision;

    pthread_mutex_t mu;
    pthread_cond_t work;  /* flusher: something to do */
    pthread_cond_t done;  /* waiters: written/synced advanced, or failure */
    batch active;         /* appended to under mu */
    batch pending;        /* being written by the flusher (or retried) */
    uint64_t written_rev; /* handed to the kernel */
    uint64_t synced_rev;  /* on stable storage */
    int status;           /* KV_OK, KV_NO_SPACE (retrying), KV_IO (final) */
    bool stop;
    bool notifying;       /* the flusher is calling notify */
    bool busy;            /* a thread is in flush_round (the I/O token) */
    bool writers_lead;    /* waiting writers do the I/O themselves */
    bool kicked;          /* kv__log_write_now asked the flusher for a round
                           * (always): only while the active batch is not
                           * empty; the round that takes it clears it */
    bool bg_syncing;      /* the flusher syncs (everysec) without the token */
    bool flusher_waits;   /* the flusher waits for a writer's round */
    bool flusher_untimed; /* the flusher sleeps with no deadline */
    struct timespec next_sync; /* everysec: next sync due (under mu) */
    kv__log_notify_fn notify;
    void *notify_ctx;

    /* flusher only (read under mu by kv__log_current_segment) */
    int fd;
    uint64_t seg_first;
    uint64_t seg_off;
    uint64_t zeroed_end; /* the segment holds zeros from seg_off to here */

    _Atomic uint64_t bytes, records, batches, syncs;
    pthread_t thread;
};

void kv__log_segment_path(char *buf, size_t cap, const char *dir, uint64_t first_rev)
{
    snprintf(buf, cap, "%s/log-%016llx.kvl", dir, (unsigned long long)first_rev);
}

void kv__log_segment_header(unsigned char *h, uint64_t first_rev)
{
    memset(h, 0, KV__SEG_HDR);
    memcpy(h, "KVLOG\0\0\0", 8);
    kv__put32(h + 8, 1);            /* format version */
    kv__put32(h + 12, KV__SEG_HDR); /* header length */
    kv__put64(h + 16, first_rev);
    kv__put32(h + 28, kv__crc(h, 28));
}

static uint64_t durable_of(const kv__log *l)
{
    return l->fsync == KV_FSYNC_ALWAYS ? l->synced_rev : l->written_rev;
}

/* Creates and opens a new segment whose first record is first_rev. */
static int segment_create(kv__log *l, uint64_t first_rev)
{
    size_t cap = strlen(l->dir) + 32;
    char *path = malloc(cap);
    if (!path)
        return -ENOMEM;
    kv__log_segment_path(path, cap, l->dir, first_rev);
    int fd, rc = l->io->open(l->io, path, O_WRONLY | O_CREAT | O_TRUNC, 0644, &fd);
    if (rc == 0) {
        unsigned char h[KV__SEG_HDR];
        kv__log_segment_header(h, first_rev);
        if ((rc = kv__io_write_all(l->io, fd, h, sizeof h, 0)) == 0 &&
            (rc = l->io->sync(l->io, fd)) == 0)
            rc = l->io->sync_dir(l->io, l->dir);
        if (rc != 0) {
            l->io->close(l->io, fd);
            l->io->unlink(l->io, path);
        }
    }
    free(path);
    if (rc != 0)
        return rc;
    l->fd = fd;
    __atomic_store_n(&l->seg_first, first_rev, __ATOMIC_RELAXED);
    l->seg_off = l->zeroed_end = KV__SEG_HDR;
    return 0;
}

/*
 * Writes zeros ahead of the records. fdatasync of a file that grew must
 * also write its inode (the new size): on ext4 a second, dependent I/O in
 * every sync, about 40% of a small sync's time on this project's test
 * machine. Records written over zeros that are already on disk leave the
 * size alone, so such a sync writes only the data (what RocksDB's recycled
 * and PostgreSQL's zero-filled log files achieve). The zeros go out in the
 * round that needs them, before its sync, so no extra sync is paid: once
 * per chunk, one sync carries the chunk. Readers stop at zeros: an
 * all-zero frame header is the end of the log (record.h). fsync=no skips
 * it: the kernel's writeback pays the size update, nobody waits for it.
 * Written before the batch (which may land on part of them), so that a
 * failure leaves the batch unwritten, to be retried like a failed write.
 */
static int prefill(kv__log *l, size_t len)
{
    static const unsigned char zeros[64 * 1024];
    if (l->fsync == KV_FSYNC_NO || l->zeroed_end >= l->segment_bytes ||
        l->seg_off + len + PREFILL_CHUNK / 2 <= l->zeroed_end)
        return 0;
    uint64_t from = l->zeroed_end > l->seg_off ? l->zeroed_end : l->seg_off;
    uint64_t to = from + PREFILL_CHUNK;
    if (to > l->segment_bytes)
        to = l->segment_bytes;
    while (from < to) {
        size_t n = to - from < sizeof zeros ? (size_t)(to - from) : sizeof zeros;
        int rc = kv__io_write_all(l->io, l->fd, zeros, n, (off_t)from);
        if (rc != 0)
            return rc;
        from += n;
        l->zeroed_end = from;
    }
    return 0;
}

/* Writes the pending batch, starting a new segment first if the current
 * one is full. 0 or -errno; on error a retry writes the batch again in the
 * same place. */
static int write_batch(kv__log *l, batch *b, bool *synced)
{
    *synced = false;
    if (l->seg_off > KV__SEG_HDR && l->seg_off + b->len > l->segment_bytes) {
        /* Close the full segment durably before the next one starts. */
        int rc = l->io->sync(l->io, l->fd);
        if (rc != 0)
            return rc;
        atomic_fetch_add(&l->syncs, 1);
        int old = l->fd;
        if ((rc = segment_create(l, b->first_rev)) != 0)
            return rc;
        /* The flusher may be syncing the old descriptor (everysec). */
        pthread_mutex_lock(&l->mu);
        while (l->bg_syncing)
            pthread_cond_wait(&l->done, &l->mu);
        pthread_mutex_unlock(&l->mu);
        l->io->close(l->io, old);
        *synced = true; /* everything before this batch is on disk */
    }
    /* On failure seg_off stays: the retry writes the batch over whatever
     * part of it landed (the file is never cut while it may be mapped by a
     * snapshot's reader; a crash before the retry leaves a torn tail). */
    int rc = prefill(l, b->len);
    if (rc == 0)
        rc = kv__io_write_all(l->io, l->fd, b->p, b->len, (off_t)l->seg_off);
    if (rc != 0)
        return rc;
    l->seg_off += b->len;
    atomic_fetch_add(&l->bytes, b->len);
    atomic_fetch_add(&l->batches, 1);
    atomic_fetch_add(&l->records, b->nrecords);
    return 0;
}

static void deadline_after(struct timespec *ts, long ns)
{
    clock_gettime(CLOCK_MONOTONIC, ts);
    ts->tv_nsec += ns;
    while (ts->tv_nsec >= 1000000000L) {
        ts->tv_nsec -= 1000000000L;
        ts->tv_sec++;
    }
}

static bool reached(const struct timespec *t)
{
    struct timespec now;
    clock_gettime(CLOCK_MONOTONIC, &now);
    return now.tv_sec > t->tv_sec || (now.tv_sec == t->tv_sec && now.tv_nsec >= t->tv_nsec);
}

/* One round of the writer's work, done by whichever thread holds
 * l->busy: the flusher, or a writer waiting in kv__log_wait that leads a
 * group (RocksDB's write-group leader). Takes the active batch, writes it
 * with one pwrite, syncs as the policy says, publishes the new written and
 * synced revisions and tells the waiters. Called and returns with mu held;
 * drops it for the I/O. */
static void flush_round(kv__log *l, bool final, bool allow_sync)
{
    if (!l->pending.len && l->active.len) {
        batch t = l->pending;
        l->pending = l->active;
        l->active = t;
        l->active.len = 0;
        l->active.nrecords = 0;
        /* The round asked for takes these records, whoever leads it: a
         * kick left set after another thread's round (a snapshot's
         * kv__log_flush, a kv__log_wait) drained the batch would make
         * kv__log_write_now skip the signal for every later batch while
         * the flusher, finding the batch empty, sleeps with no deadline:
         * under always nothing would ever be written again. */
        l->kicked = false;
    }
    batch *b = &l->pending;
    bool have = b->len > 0;
    uint64_t to_write = b->last_rev, written = l->written_rev;
    uint64_t synced_before = l->synced_rev;
    pthread_mutex_unlock(&l->mu);

    int rc = 0;
    bool synced = false, rotated = false;
    if (have) {
        rc = write_batch(l, b, &rotated);
        if (rc == 0)
            written = to_write;
    }
    /* everysec's syncs are the flusher's (everysec_sync), off the token,
     * so that writers never wait for them; here only always and the last
     * round sync. */
    if (rc == 0 && written > 0 && allow_sync &&
        ((l->fsync == KV_FSYNC_ALWAYS && synced_before < written) || final)) {
        rc = l->io->sync(l->io, l->fd);
        if (rc == 0) {
            synced = true;
            atomic_fetch_add(&l->syncs, 1);
        } else {
            rc = rc == -ENOSPC ? -EIO : rc; /* a failed fsync is final */
        }
    }

    pthread_mutex_lock(&l->mu);
    if (have && (rc == 0 || written == to_write)) {
        l->written_rev = to_write;
        b->len = 0;
        b->nrecords = 0;
    }
    if (rotated && l->synced_rev < b->first_rev - 1)
        l->synced_rev = b->first_rev - 1;
    if (synced)
        l->synced_rev = written;
    if (rc == 0) {
        if (l->status == KV_NO_SPACE)
            l->status = KV_OK;
    } else {
        l->status = kv__io_status(rc);
    }
    kv__log_notify_fn fn = l->notify;
    void *ctx = l->notify_ctx;
    uint64_t durable = durable_of(l);
    int status = l->status;
    pthread_cond_broadcast(&l->done);
    if (fn) {
        l->notifying = true;
        pthread_mutex_unlock(&l->mu);
        fn(ctx, durable, status);
        pthread_mutex_lock(&l->mu);
        l->notifying = false;
        pthread_cond_broadcast(&l->done);
    }
}

/* Is there anything for a round to do for a waiter? */
static bool round_needed(const kv__log *l)
{
    return l->active.len || l->pending.len ||
           (l->fsync == KV_FSYNC_ALWAYS && l->synced_rev < l->written_rev);
}

/* After a writer's round: the flusher only needs waking if it waited for
 * the round to end, if the round failed and left a batch to retry, or if
 * it sleeps with no deadline while an everysec sync is now owed (so
 * appends and most rounds cost it no wake-ups). */
static void wake_flusher(kv__log *l)
{
    bool sync_due = l->flusher_untimed && l->fsync == KV_FSYNC_EVERYSEC &&
                    l->synced_rev < l->written_rev;
    if (l->flusher_waits || l->pending.len || sync_due) {
        l->flusher_waits = false;
        pthread_cond_signal(&l->work);
    }
}

/* everysec: once a second, the flusher syncs what is written, without the
 * I/O token, so writers (and kvd's loops) go on writing meanwhile; a
 * rotation waits for it before closing the descriptor. Called and returns
 * with mu held. A failed sync is final. */
static void everysec_sync(kv__log *l, int fd)
{
    if (l->fsync != KV_FSYNC_EVERYSEC || l->status != KV_OK ||
        l->synced_rev >= l->written_rev || !reached(&l->next_sync))
        return;
    uint64_t target = l->written_rev;
    l->bg_syncing = true;
    deadline_after(&l->next_sync, 1000000000L);
    pthread_mutex_unlock(&l->mu);
    int rc = l->io->sync(l->io, fd);
    pthread_mutex_lock(&l->mu);
    l->bg_syncing = false;
    if (rc == 0) {
        atomic_fetch_add(&l->syncs, 1);
        if (l->synced_rev < target)
            l->synced_rev = target;
    } else {
        l->status = KV_IO;
    }
    pthread_cond_broadcast(&l->done);
}

/* A round led by a caller (not the flusher), with mu held and no round in
 * progress: takes the I/O token, writes (and with allow_sync syncs)
 * everything queued, its own records included; writers arriving meanwhile
 * queue for the next round. */
static void lead_round(kv__log *l, bool allow_sync)
{
    l->busy = true;
    flush_round(l, false, allow_sync);
    l->busy = false;
    pthread_cond_broadcast(&l->done);
    wake_flusher(l);
}

static void *flusher(void *arg)
{
    kv__log *l = arg;
    pthread_setname_np(pthread_self(), "kv-log");
    pthread_mutex_lock(&l->mu);
    deadline_after(&l->next_sync, 1000000000L);
    for (;;) {
        bool everysec_due = l->fsync == KV_FSYNC_EVERYSEC && l->synced_rev < l->written_rev;
        bool retrying = l->pending.len > 0;
        /* With writers leading their own groups, appends do not wake the
         * flusher: it keeps the everysec syncs, retries and the final flush. */
        bool work = l->active.len && (!l->writers_lead || l->kicked);
        if (!l->stop && !work && !retrying && l->status == KV_OK) {
            struct timespec t;
            if (l->active.len) { /* a writer that leads will come; if not, in 10 ms */
                deadline_after(&t, 10000000L);
                pthread_cond_timedwait(&l->work, &l->mu, &t);
            } else if (everysec_due) {
                pthread_cond_timedwait(&l->work, &l->mu, &l->next_sync);
            } else {
                l->flusher_untimed = true; /* an everysec round must wake it */
                pthread_cond_wait(&l->work, &l->mu);
                l->flusher_untimed = false;
            }
        } else if (retrying && !l->stop) {
            struct timespec t;
            deadline_after(&t, RETRY_NS);
            pthread_cond_timedwait(&l->work, &l->mu, &t);
        }
        if (l->status == KV_IO) { /* permanent: nothing more is written */
            if (l->stop)
                break;
            pthread_cond_wait(&l->work, &l->mu);
            continue;
        }
        if (l->busy) { /* a writer leads a round: it signals work when done */
            l->flusher_waits = true;
            pthread_cond_wait(&l->work, &l->mu);
            continue;
        }
        bool final = l->stop;
        l->busy = true;
        flush_round(l, final, true);
        int fd = l->fd; /* read while holding the token */
        l->busy = false;
        pthread_cond_broadcast(&l->done);
        if (!final)
            everysec_sync(l, fd);
        if (final && !l->active.len && (!l->pending.len || l->status != KV_OK))
            break;
    }
    pthread_mutex_unlock(&l->mu);
    return NULL;
}

int kv__log_start(kv__io *io, const char *dir, int fsync, bool writers_lead,
                  uint64_t segment_bytes, _Atomic uint64_t *revision, const char *tail_path,
                  uint64_t tail_size, uint64_t tail_first_rev, kv__log **out)
{
    kv__log *l = calloc(1, sizeof *l);
    if (!l || !(l->dir = strdup(dir))) {
        free(l);
        return KV_NO_MEMORY;
    }
    l->io = io;
    l->fsync = fsync;
    l->writers_lead = writers_lead;
    l->segment_bytes = segment_bytes;
    l->revision = revision;
    l->written_rev = l->synced_rev = atomic_load(revision);
    l->fd = -1;
    int rc;
    if (tail_path) {
        rc = io->open(io, tail_path, O_WRONLY, 0644, &l->fd);
        if (rc == 0) {
            __atomic_store_n(&l->seg_first, tail_first_rev, __ATOMIC_RELAXED);
            l->seg_off = l->zeroed_end = tail_size;
        }
    } else {
        rc = segment_create(l, atomic_load(revision) + 1);
    }
    if (rc != 0) {
        free(l->dir);
        free(l);
        return rc == -ENOMEM ? KV_NO_MEMORY : kv__io_status(rc);
    }
    pthread_mutex_init(&l->mu, NULL);
    pthread_condattr_t ca;
    pthread_condattr_init(&ca);
    pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
    pthread_cond_init(&l->work, &ca);
    pthread_cond_init(&l->done, &ca);
    pthread_condattr_destroy(&ca);
    if (pthread_create(&l->thread, NULL, flusher, l) != 0) {
        io->close(io, l->fd);
        pthread_cond_destroy(&l->work);
        pthread_cond_destroy(&l->done);
        pthread_mutex_destroy(&l->mu);
        free(l->dir);
        free(l);
        return KV_NO_MEMORY;
    }
    *out = l;
    return KV_OK;
}

int kv__log_stop(kv__log *l)
{
    if (!l)
        return KV_OK;
    pthread_mutex_lock(&l->mu);
    l->stop = true;
    pthread_cond_signal(&l->work);
    pthread_mutex_unlock(&l->mu);
    pthread_join(l->thread, NULL);
    int status = l->status;
    if (l->fd >= 0)
        l->io->close(l->io, l->fd);
    free(l->active.p);
    free(l->pending.p);
    pthread_cond_destroy(&l->work);
    pthread_cond_destroy(&l->done);
    pthread_mutex_destroy(&l->mu);
    free(l->dir);
    free(l);
    return status;
}

static int reserve(batch *b, size_t more)
{
    if (b->cap - b->len >= more)
        return KV_OK;
    size_t cap = b->cap ? b->cap : 65536;
    while (cap - b->len < more) {
        if (cap > SIZE_MAX / 2)
            return KV_NO_MEMORY;
        cap *= 2;
    }
    unsigned char *p = realloc(b->p, cap);
    if (!p)
        return KV_NO_MEMORY;
    b->p = p;
    b->cap = cap;
    return KV_OK;
}

int kv__log_append(kv__log *l, kv__record *r)
{
    size_t n = kv__record_size(r);
    size_t fsize = kv__frame_size(n);
    pthread_mutex_lock(&l->mu);
    int rc = l->status != KV_OK ? l->status : reserve(&l->active, fsize);
    if (rc == KV_OK) {
        r->revision = atomic_load_explicit(l->revision, memory_order_relaxed) + 1;
        atomic_store_explicit(l->revision, r->revision, memory_order_relaxed);
        unsigned char *dst = l->active.p + l->active.len;
        kv__record_encode(r, dst + KV__FRAME_HDR);
        kv__frame_seal(dst, n);
        if (l->active.len == 0) {
            l->active.first_rev = r->revision;
            if (!l->writers_lead)
                pthread_cond_signal(&l->work);
        }
        l->active.len += fsize;
        l->active.last_rev = r->revision;
        l->active.nrecords++;
    }
    pthread_mutex_unlock(&l->mu);
    return rc;
}

int kv__log_wait(kv__log *l, uint64_t rev)
{
    pthread_mutex_lock(&l->mu);
    while (durable_of(l) < rev && l->status == KV_OK) {
        if (!l->busy && round_needed(l)) {
            lead_round(l, true);
            continue;
        }
        pthread_cond_wait(&l->done, &l->mu);
    }
    int rc = durable_of(l) >= rev ? KV_OK : l->status;
    pthread_mutex_unlock(&l->mu);
    return rc;
}

int kv__log_write_now(kv__log *l)
{
    pthread_mutex_lock(&l->mu);
    /* Under always a write without its sync makes nothing durable, and the
     * caller must not wait for a sync: the flusher is asked for a round
     * (now, or right after the one it is doing), which then takes every
     * record the caller queued since the last one (a whole event-loop
     * iteration's writes share one fdatasync). */
    if (l->fsync == KV_FSYNC_ALWAYS) {
        if (l->active.len && !l->kicked) {
            l->kicked = true;
            pthread_cond_signal(&l->work);
        }
    } else if (!l->busy && l->status == KV_OK && l->active.len) {
        lead_round(l, false);
    }
    int rc = l->status;
    pthread_mutex_unlock(&l->mu);
    return rc;
}

uint64_t kv__log_durable(kv__log *l)
{
    pthread_mutex_lock(&l->mu);
    uint64_t d = durable_of(l);
    pthread_mutex_unlock(&l->mu);
    return d;
}

int kv__log_flush(kv__log *l, uint64_t *rev)
{
    pthread_mutex_lock(&l->mu);
    uint64_t want = atomic_load(l->revision);
    while (l->written_rev < want && l->status == KV_OK) {
        if (!l->busy && (l->active.len || l->pending.len)) {
            lead_round(l, true);
            continue;
        }
        pthread_cond_wait(&l->done, &l->mu);
    }
    int rc = l->written_rev >= want ? KV_OK : l->status;
    *rev = want;
    pthread_mutex_unlock(&l->mu);
    return rc;
}

void kv__log_set_notify(kv__log *l, kv__log_notify_fn fn, void *ctx)
{
    pthread_mutex_lock(&l->mu);
    while (l->notifying) /* a call in progress finishes with the old one */
        pthread_cond_wait(&l->done, &l->mu);
    l->notify = fn;
    l->notify_ctx = ctx;
    pthread_mutex_unlock(&l->mu);
}

uint64_t kv__log_current_segment(kv__log *l)
{
    pthread_mutex_lock(&l->mu);
    /* The flusher changes seg_first without mu, but only while it holds
     * the pending batch; waiting for an empty pending batch would stall
     * the caller, so callers treat the answer as a lower bound. */
    uint64_t s = __atomic_load_n(&l->seg_first, __ATOMIC_RELAXED);
    pthread_mutex_unlock(&l->mu);
    return s;
}

int kv__log_flusher_state(kv__log *l)
{
    pthread_mutex_lock(&l->mu);
    int st = l->flusher_waits     ? KV__FLUSHER_WAITS_ROUND
             : l->flusher_untimed ? KV__FLUSHER_SLEEPS
                                  : KV__FLUSHER_RUNS;
    pthread_mutex_unlock(&l->mu);
    return st;
}

uint64_t kv__log_bytes(kv__log *l)
{
    return atomic_load(&l->bytes);
}

void kv__log_stats_read(kv__log *l, kv__log_stats *out)
{
    out->bytes = atomic_load(&l->bytes);
    out->records = atomic_load(&l->records);
    out->batches = atomic_load(&l->batches);
    out->syncs = atomic_load(&l->syncs);
    pthread_mutex_lock(&l->mu);
    out->durable = durable_of(l);
    out->status = l->status;
    pthread_mutex_unlock(&l->mu);
}
