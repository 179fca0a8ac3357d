/*
 * durable.c - a store on a directory: opening (lock, recovery), the log's
 * start and stop, automatic snapshots, and the public durability calls
 * (kv.h, "Durable stores"). The formats are in docs/storage.md.
 *
 * Recovery, at open:
 *   1. Lock dir/LOCK (flock): one process per directory.
 *   2. Remove unfinished snapshots (*.tmp).
 *   3. Load the newest snapshot: its entries, then its log tail. It ends at
 *      revision E.
 *   4. Replay the log's records after E, segment by segment. Revisions must
 *      follow one another with no gap (a gap means lost records: refuse).
 *      Only the newest segment may end torn; its torn tail is cut off.
 *   5. Start the log writer after the last revision.
 * Every replayed change goes through kv__replay_change (apply.c), which is
 * idempotent, so a snapshot's fuzzy entries plus its tail give the exact
 * state at E.
 */
#include <errno.h>
#include <pthread.h>
#include <fcntl.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "durable.h"
#include "evict.h"
#include "files.h"
#include "history.h"
#include "log.h"
#include "store.h"
#include "watch.h"

static __thread char last_error[512];

void kv__set_error(const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(last_error, sizeof last_error, fmt, ap);
    va_end(ap);
}

const char *kv_last_error(void)
{
    return last_error;
}

void kv_config_init(kv_config *cfg, size_t size)
{
    if (!cfg || size < sizeof(size_t))
        return;
    kv_config c = {
        .size = size < sizeof c ? size : sizeof c,
        .initial_capacity = 1024,
        .max_key_size = KV_DEFAULT_MAX_KEY_SIZE,
        .max_value_size = KV_DEFAULT_MAX_VALUE_SIZE,
        .fsync = KV_FSYNC_EVERYSEC,
        .wait_durable = 1,
        .segment_bytes = KV_DEFAULT_SEGMENT_BYTES,
        .snapshot_log_bytes = KV_DEFAULT_SNAPSHOT_LOG_BYTES,
        .snapshot_interval_s = KV_DEFAULT_SNAPSHOT_INTERVAL_S,
        .max_memory = 0,
        .eviction_policy = KV_EVICT_NOEVICTION,
    };
    memcpy(cfg, &c, c.size);
}

static uint64_t now_us(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000000u + (uint64_t)ts.tv_nsec / 1000u;
}

/* ---- recovery ---------------------------------------------------------- */

typedef struct replay_ctx {
    kv_store *s;
    uint64_t after;  /* records up to this revision are already in */
    uint64_t expect; /* the next revision the log must hold */
    uint64_t records;
    bool gap;
    uint64_t gap_at;
    bool hist_seen;  /* the snapshot carried history (history.h) */
} replay_ctx;

static int replay_record(kv_store *s, const kv__record *r)
{
    for (size_t i = 0; i < r->nchanges; i++) {
        int rc = kv__replay_change(s, &r->changes[i], r->revision);
        if (rc != KV_OK)
            return rc;
    }
    return KV_OK;
}

static int on_snap_entry(void *ctx, const void *key, size_t klen, const void *val, size_t vlen,
                         uint64_t rev, uint64_t expire_at)
{
    replay_ctx *c = ctx;
    kv__change ch = {key, klen, val, vlen, false, expire_at};
    return kv__replay_change(c->s, &ch, rev);
}

static int on_snap_meta(void *ctx, const void *key, size_t klen, uint64_t rev, uint64_t create,
                        uint64_t version)
{
    replay_ctx *c = ctx;
    return c->s->hist ? kv__hist_set_meta(c->s, key, klen, rev, create, version) : KV_OK;
}

static int on_snap_history(void *ctx, const void *key, size_t klen, uint64_t floor,
                           const kv_hist_version *ents, size_t n)
{
    replay_ctx *c = ctx;
    return c->s->hist ? kv__hist_load_key(c->s, key, klen, floor, ents, n) : KV_OK;
}

static int on_snap_hist_info(void *ctx, uint64_t compact_rev)
{
    replay_ctx *c = ctx;
    c->hist_seen = true;
    kv__hist_floor(c->s, compact_rev);
    return KV_OK;
}

static int on_snap_record(void *ctx, const kv__record *r, const unsigned char *f, size_t n)
{
    (void)f;
    (void)n;
    replay_ctx *c = ctx;
    return replay_record(c->s, r);
}

static int on_log_record(void *ctx, const kv__record *r, const unsigned char *f, size_t n)
{
    (void)f;
    (void)n;
    replay_ctx *c = ctx;
    if (r->revision <= c->after)
        return KV_OK;
    if (r->revision != c->expect) {
        c->gap = true;
        c->gap_at = r->revision;
        return KV_CORRUPT;
    }
    c->expect++;
    c->records++;
    return replay_record(c->s, r);
}

static char *path_of(const char *dir, const char *fmt, uint64_t n)
{
    size_t cap = strlen(dir) + 40;
    char *p = malloc(cap);
    if (p) {
        int k = snprintf(p, cap, "%s/", dir);
        snprintf(p + k, cap - (size_t)k, fmt, (unsigned long long)n);
    }
    return p;
}

/* Cuts the newest segment back to its valid end. */
static int cut_torn_tail(kv__io *io, const char *path, uint64_t len)
{
    int fd, rc = io->open(io, path, O_WRONLY, 0644, &fd);
    if (rc != 0)
        return rc;
    if ((rc = io->truncate(io, fd, (off_t)len)) == 0)
        rc = io->sync(io, fd);
    io->close(io, fd);
    return rc;
}

int kv__recover(kv_store *s, const char *dir, kv__io *io, bool repair, kv_recovery *rec,
                char **tail_path, uint64_t *tail_size, uint64_t *tail_first)
{
    uint64_t t0 = now_us();
    *tail_path = NULL;
    memset(rec, 0, sizeof *rec);
    kv__dir_list dl;
    int rc = kv__dir_list_read(dir, repair ? io : NULL, &dl);
    if (rc != KV_OK) {
        kv__set_error("%s: cannot list the directory: %s", dir, strerror(errno));
        return rc;
    }
    char err[512] = "";
    replay_ctx c = {.s = s};
    if (dl.nsnaps) {
        char *p = path_of(dir, "snap-%016llx.kvs", dl.snaps[dl.nsnaps - 1]);
        kv__snap_fns fns = {on_snap_entry,   on_snap_record,    on_snap_meta,
                            on_snap_history, on_snap_hist_info};
        kv__snap_info info;
        rc = p ? kv__snap_read(p, &fns, &c, &info, err, sizeof err) : KV_NO_MEMORY;
        free(p);
        if (rc != KV_OK)
            goto out;
        rec->snapshot_revision = info.end_rev;
        /* A snapshot without history (another store wrote it): reads
         * below it are compacted. */
        if (!c.hist_seen)
            kv__hist_floor(s, info.end_rev);
        if (atomic_load(&s->revision) < info.end_rev)
            atomic_store(&s->revision, info.end_rev);
    }
    uint64_t e = rec->snapshot_revision;
    c.after = e;
    c.expect = e + 1;
    for (size_t i = 0; i < dl.nsegs; i++) {
        bool last = i + 1 == dl.nsegs;
        if (!last && dl.segs[i + 1] <= e + 1)
            continue; /* every record in it is in the snapshot */
        char *p = path_of(dir, "log-%016llx.kvl", dl.segs[i]);
        if (!p) {
            rc = KV_NO_MEMORY;
            goto out;
        }
        kv__seg_info info;
        rc = kv__seg_read(p, last, on_log_record, &c, &info, err, sizeof err);
        rec->segments++;
        if (rc == KV_CORRUPT && c.gap)
            snprintf(err, sizeof err,
                     "%s: holds revision %llu but revision %llu is the next one expected: "
                     "log records are missing",
                     p, (unsigned long long)c.gap_at, (unsigned long long)c.expect);
        if (rc == KV_OK && !info.header_torn && info.first_rev != dl.segs[i]) {
            snprintf(err, sizeof err, "%s: its header says first revision %llu", p,
                     (unsigned long long)info.first_rev);
            rc = KV_CORRUPT;
        }
        if (rc == KV_OK && last && info.header_torn) {
            /* Created, but its header never reached the disk: recreated. */
            rec->torn_bytes = info.file_size;
            if (repair)
                io->unlink(io, p);
            free(p);
            continue;
        }
        if (rc == KV_OK && info.torn) {
            rec->torn_bytes = info.file_size - info.valid_end;
            int cut = repair ? cut_torn_tail(io, p, info.valid_end) : 0;
            if (cut != 0) {
                snprintf(err, sizeof err, "%s: cannot cut its torn tail: %s", p, strerror(-cut));
                rc = kv__io_status(cut);
            }
        }
        /* What a crashed process left in the page cache is on disk now:
         * written (under everysec, acknowledged) but maybe never synced. */
        if (rc == KV_OK && last && repair && !info.torn) {
            int fd, se = io->open(io, p, O_WRONLY, 0644, &fd);
            if (se == 0) {
                se = io->sync(io, fd);
                io->close(io, fd);
            }
            if (se != 0) {
                snprintf(err, sizeof err, "%s: cannot sync: %s", p, strerror(-se));
                rc = kv__io_status(se);
            }
        }
        uint64_t seg_end = info.records ? info.last_rev : info.first_rev - 1;
        if (rc == KV_OK && last && seg_end == atomic_load(&s->revision)) {
            *tail_path = p;
            *tail_size = info.valid_end;
            *tail_first = info.first_rev;
            p = NULL;
        }
        free(p);
        if (rc != KV_OK)
            goto out;
    }
    rec->records = c.records;
out:
    if (rc == KV_OK && repair) {
        int se = io->sync_dir(io, dir);
        if (se != 0) {
            snprintf(err, sizeof err, "%s: cannot sync the directory: %s", dir, strerror(-se));
            rc = kv__io_status(se);
        }
    }
    if (rc != KV_OK) {
        if (err[0])
            kv__set_error("%s", err);
        else
            kv__set_error("%s: recovery failed: %s", dir, kv_strerror(rc));
        free(*tail_path);
        *tail_path = NULL;
    }
    kv__dir_list_free(&dl);
    rec->revision = atomic_load(&s->revision);
    if (rc == KV_OK) {
        kv_metrics m;
        kv_metrics_read(s, &m, sizeof m);
        rec->keys = m.keys;
    }
    rec->elapsed_us = now_us() - t0;
    return rc;
}

/* ---- lock -------------------------------------------------------------- */

int kv__lock_dir(kv__io *io, const char *dir, int *out)
{
    char *p = path_of(dir, "LOCK%.0llu", 0);
    if (!p)
        return KV_NO_MEMORY;
    int fd, rc = io->open(io, p, O_RDWR | O_CREAT, 0644, &fd);
    if (rc != 0) {
        kv__set_error("%s: cannot open: %s", p, strerror(-rc));
        free(p);
        return kv__io_status(rc);
    }
    free(p);
    if (flock(fd, LOCK_EX | LOCK_NB) != 0) {
        char pid[32] = "";
        ssize_t n = pread(fd, pid, sizeof pid - 1, 0);
        if (n > 0)
            pid[strcspn(pid, "\n")] = '\0';
        kv__set_error("%s is in use by another process%s%s%s", dir, pid[0] ? " (pid " : "",
                      pid, pid[0] ? ")" : "");
        io->close(io, fd);
        return KV_LOCKED;
    }
    char pid[32];
    int n = snprintf(pid, sizeof pid, "%ld\n", (long)getpid());
    if (io->truncate(io, fd, 0) == 0)
        kv__io_write_all(io, fd, pid, (size_t)n, 0);
    *out = fd;
    return KV_OK;
}

/* ---- snapshots --------------------------------------------------------- */

/* Removes older snapshots and the segments a snapshot ending at e covers. */
static void remove_covered(kv_store *s, uint64_t e)
{
    kv__durable *d = s->dur;
    kv__dir_list dl;
    if (kv__dir_list_read(d->dir, NULL, &dl) != KV_OK)
        return;
    uint64_t current = kv__log_current_segment(s->log);
    /* The newest snapshot before this one (e) stays too: `kvcli snapshot`
     * names a file an operator may be about to copy as a backup. */
    size_t keep_from = dl.nsnaps >= 2 ? dl.nsnaps - 2 : 0;
    for (size_t i = 0; i < keep_from; i++) {
        if (dl.snaps[i] >= e)
            continue;
        char *p = path_of(d->dir, "snap-%016llx.kvs", dl.snaps[i]);
        if (p)
            d->io->unlink(d->io, p);
        free(p);
    }
    for (size_t i = 0; i + 1 < dl.nsegs; i++) {
        if (dl.segs[i + 1] > e + 1 || dl.segs[i] >= current)
            break;
        char *p = path_of(d->dir, "log-%016llx.kvl", dl.segs[i]);
        if (p)
            d->io->unlink(d->io, p);
        free(p);
    }
    d->io->sync_dir(d->io, d->dir);
    kv__dir_list_free(&dl);
}

static int take_snapshot(kv_store *s)
{
    kv__durable *d = s->dur;
    pthread_mutex_lock(&d->snap_mu);
    /* Nothing changed since the newest snapshot: it is the snapshot of
     * now. (Writing another one under the same name could also change the
     * bytes of a file someone is copying.) */
    uint64_t have = atomic_load(&d->snapshot_rev);
    if (have && have == atomic_load(&s->revision)) {
        pthread_mutex_unlock(&d->snap_mu);
        return KV_OK;
    }
    uint64_t bytes = kv__log_bytes(s->log), e = 0;
    int rc = kv__snapshot_write(s, d->io, NULL, &e);
    if (rc == KV_OK) {
        d->log_bytes_at_snap = bytes;
        d->rev_at_snap = e;
        atomic_store(&d->snapshot_rev, e);
        atomic_fetch_add(&d->snapshots, 1);
        remove_covered(s, e);
    } else {
        atomic_fetch_add(&d->snapshot_failures, 1);
        if (!kv_last_error()[0])
            kv__set_error("snapshot of %s failed: %s", d->dir, kv_strerror(rc));
    }
    pthread_mutex_unlock(&d->snap_mu);
    return rc;
}

static void *background(void *arg)
{
    kv_store *s = arg;
    kv__durable *d = s->dur;
    pthread_setname_np(pthread_self(), "kv-snapshot");
    uint64_t last = now_us();
    pthread_mutex_lock(&d->bg_mu);
    while (!d->bg_stop) {
        struct timespec ts;
        clock_gettime(CLOCK_MONOTONIC, &ts);
        ts.tv_sec += 1;
        pthread_cond_timedwait(&d->bg_cv, &d->bg_mu, &ts);
        if (d->bg_stop)
            break;
        pthread_mutex_unlock(&d->bg_mu);
        pthread_mutex_lock(&d->snap_mu);
        uint64_t grown = kv__log_bytes(s->log) - d->log_bytes_at_snap;
        bool changed = atomic_load(&s->revision) != d->rev_at_snap;
        pthread_mutex_unlock(&d->snap_mu);
        bool by_size = d->snapshot_log_bytes && grown >= d->snapshot_log_bytes;
        bool by_time = d->snapshot_interval_s && changed &&
                       now_us() - last >= (uint64_t)d->snapshot_interval_s * 1000000u;
        if (by_size || by_time) {
            take_snapshot(s);
            last = now_us();
        }
        pthread_mutex_lock(&d->bg_mu);
    }
    pthread_mutex_unlock(&d->bg_mu);
    return NULL;
}

/* ---- open and close ---------------------------------------------------- */

static void durable_free(kv__durable *d)
{
    if (!d)
        return;
    if (d->lock_fd >= 0)
        d->io->close(d->io, d->lock_fd);
    pthread_mutex_destroy(&d->snap_mu);
    pthread_mutex_destroy(&d->bg_mu);
    pthread_cond_destroy(&d->bg_cv);
    free(d->dir);
    free(d);
}

/* Creates dir if missing, and makes its name durable in its parent. */
static int make_dir(kv__io *io, const char *dir)
{
    if (mkdir(dir, 0755) != 0) {
        if (errno == EEXIST)
            return KV_OK;
        kv__set_error("%s: cannot create the directory: %s", dir, strerror(errno));
        return errno == ENOSPC ? KV_NO_SPACE : KV_IO;
    }
    char parent[4096];
    const char *slash = strrchr(dir, '/');
    if (!slash)
        strcpy(parent, ".");
    else if (slash == dir)
        strcpy(parent, "/");
    else
        snprintf(parent, sizeof parent, "%.*s", (int)(slash - dir), dir);
    int e = io->sync_dir(io, parent);
    if (e != 0) {
        kv__set_error("%s: cannot sync the directory: %s", parent, strerror(-e));
        return kv__io_status(e);
    }
    return KV_OK;
}

int kv__durable_open(kv_store *s, const kv_config *cfg, kv__io *io)
{
    int mrc = make_dir(io, cfg->dir);
    if (mrc != KV_OK)
        return mrc;
    kv__durable *d = calloc(1, sizeof *d);
    if (!d || !(d->dir = strdup(cfg->dir))) {
        free(d);
        return KV_NO_MEMORY;
    }
    d->io = io;
    d->lock_fd = -1;
    d->fsync = cfg->fsync;
    d->snapshot_log_bytes = cfg->snapshot_log_bytes;
    d->snapshot_interval_s = cfg->snapshot_interval_s;
    pthread_mutex_init(&d->snap_mu, NULL);
    pthread_mutex_init(&d->bg_mu, NULL);
    pthread_condattr_t ca;
    pthread_condattr_init(&ca);
    pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
    pthread_cond_init(&d->bg_cv, &ca);
    pthread_condattr_destroy(&ca);
    s->dur = d;

    int rc = kv__lock_dir(io, d->dir, &d->lock_fd);
    char *tail = NULL;
    uint64_t tail_size = 0, tail_first = 0;
    if (rc == KV_OK)
        rc = kv__recover(s, d->dir, io, true, &d->recovery, &tail, &tail_size, &tail_first);
    if (rc == KV_OK)
        atomic_store(&d->snapshot_rev, d->recovery.snapshot_revision);
    if (rc == KV_OK) {
        /* Appends never wake the flusher: waiting writers lead rounds, or
         * the caller calls kv_write_log (writes itself under everysec/no,
         * asks the flusher for a round under always); the flusher also
         * writes what nobody wrote within 10 ms. */
        bool lead = true;
        rc = kv__log_start(io, d->dir, cfg->fsync, lead, cfg->segment_bytes,
                           &s->revision, tail, tail_size, tail_first, &s->log);
        if (rc != KV_OK)
            kv__set_error("%s: cannot start the log: %s", d->dir, kv_strerror(rc));
    }
    free(tail);
    if (rc == KV_OK) {
        d->rev_at_snap = atomic_load(&s->revision);
        s->wait_durable = cfg->wait_durable != 0;
        if (pthread_create(&d->bg, NULL, background, s) == 0)
            d->bg_started = true;
        else
            rc = KV_NO_MEMORY;
    }
    return rc; /* on error the caller closes s, which frees d */
}

void kv__durable_close(kv_store *s)
{
    kv__durable *d = s->dur;
    if (!d)
        return;
    if (d->bg_started) {
        pthread_mutex_lock(&d->bg_mu);
        d->bg_stop = true;
        pthread_cond_signal(&d->bg_cv);
        pthread_mutex_unlock(&d->bg_mu);
        pthread_join(d->bg, NULL);
    }
    kv__log_stop(s->log);
    s->log = NULL;
    durable_free(d);
    s->dur = NULL;
}

/* The index is sized for the newest snapshot's keys before loading it: a
 * snapshot holds its keys in hash order, and inserting keys in hash order
 * into a small linear-probing index that keeps growing packs them into
 * long runs (quadratic time); into an index of the final size it is a
 * sequential fill. */
size_t kv__capacity_for(const char *dir, size_t cap)
{
    kv__dir_list dl;
    if (kv__dir_list_read(dir, NULL, &dl) != KV_OK)
        return cap;
    if (dl.nsnaps) {
        char *p = path_of(dir, "snap-%016llx.kvs", dl.snaps[dl.nsnaps - 1]);
        uint64_t entries = 0, records = 0;
        if (p && kv__snap_peek(p, &entries, &records) == KV_OK &&
            entries + records > cap && entries + records < ((uint64_t)1 << 40))
            cap = (size_t)(entries + records);
        free(p);
    }
    kv__dir_list_free(&dl);
    return cap;
}

int kv__open_with_io(const kv_config *cfg, kv__io *io, kv_store **out)
{
    last_error[0] = '\0';
    if (!cfg || !out || cfg->size < offsetof(kv_config, dir) ||
        cfg->size > ((size_t)1 << 20))
        return KV_INVALID_ARGUMENT;
    kv_config c;
    kv_config_init(&c, sizeof c);
    memcpy(&c, cfg, cfg->size < sizeof c ? cfg->size : sizeof c);
    if (c.fsync < KV_FSYNC_EVERYSEC || c.fsync > KV_FSYNC_NO || (c.dir && !c.dir[0]) ||
        (c.dir && c.segment_bytes < 4096) || !kv_eviction_policy_name(c.eviction_policy) ||
        (c.max_memory && c.max_memory < KV_MIN_MAX_MEMORY) ||
        (c.manual_expiry != 0 && c.manual_expiry != 1) || c.huge_pages < KV_HUGE_EAGER ||
        c.huge_pages > KV_HUGE_NEVER)
        return KV_INVALID_ARGUMENT;
    kv_options o = {c.initial_capacity, c.max_key_size, c.max_value_size, c.max_keys};
    if (c.dir)
        o.initial_capacity = kv__capacity_for(c.dir, o.initial_capacity);
    kv_store *s;
    int rc = kv__open(&o, c.huge_pages, &s);
    if (rc == KV_OK)
        s->manual_expiry = c.manual_expiry != 0; /* before any thread reads it */
    /* Before any item exists: the policy decides the items' layout. */
    if (rc == KV_OK && (rc = kv__evict_configure(s, c.max_memory, c.eviction_policy)) != KV_OK)
        kv_close(s);
    else if (rc == KV_OK && (rc = kv__hist_open(s, &c)) != KV_OK)
        kv_close(s);
    else if (rc == KV_OK && c.history && (rc = kv__feed_open(s)) != KV_OK)
        kv_close(s);
    if (rc != KV_OK)
        return rc;
    /* The bytes in front of every item: the access word for the policy,
     * the history link for history (item.h). */
    s->item_pre = (s->access_mode != KV__ACCESS_NONE ? KV__ITEM_META_BYTES : 0) +
                  (s->hist ? KV__ITEM_LINK_BYTES : 0);
    if (c.dir && (rc = kv__durable_open(s, &c, io)) != KV_OK) {
        kv_close(s);
        return rc;
    }
    /* The history's compactor only now that the store is whole: it reads
     * what recovery and the log set up. */
    if ((rc = kv__hist_start(s)) != KV_OK) {
        kv_close(s);
        return rc;
    }
    /* Recovered keys with an expiry time: now that the log runs, the
     * active expiry may delete them. */
    if (c.dir)
        kv__expiry_ensure(s);
    *out = s;
    return KV_OK;
}

int kv_open_config(const kv_config *cfg, kv_store **out)
{
    return kv__open_with_io(cfg, &kv__io_posix, out);
}

/* ---- the public calls -------------------------------------------------- */

int kv_recovery_read(kv_store *s, kv_recovery *out, size_t size)
{
    if (!s || !out)
        return KV_INVALID_ARGUMENT;
    kv_recovery r = {0};
    if (s->dur)
        r = s->dur->recovery;
    memcpy(out, &r, size < sizeof r ? size : sizeof r);
    return KV_OK;
}

int kv_sync(kv_store *s, uint64_t rev)
{
    if (!s)
        return KV_INVALID_ARGUMENT;
    if (!s->log)
        return KV_OK;
    if (rev == 0)
        rev = atomic_load(&s->revision);
    return kv__log_wait(s->log, rev);
}

uint64_t kv_revision(kv_store *s)
{
    return s ? kv__revision_latest(s) : 0;
}

uint64_t kv_durable_revision(kv_store *s)
{
    if (!s)
        return 0;
    return s->log ? kv__log_durable(s->log) : kv__revision_latest(s);
}

static void notify_tramp(void *ctx, uint64_t rev, int status)
{
    kv__durable *d = ctx;
    if (d->cb)
        d->cb(d->cb_ctx, rev, status);
}

int kv_set_durable_callback(kv_store *s, kv_durable_fn fn, void *ctx)
{
    if (!s || !s->log)
        return KV_INVALID_ARGUMENT;
    kv__log_set_notify(s->log, NULL, NULL);
    s->dur->cb = fn;
    s->dur->cb_ctx = ctx;
    if (fn)
        kv__log_set_notify(s->log, notify_tramp, s->dur);
    return KV_OK;
}

int kv_write_log(kv_store *s)
{
    if (!s)
        return KV_INVALID_ARGUMENT;
    return s->log ? kv__log_write_now(s->log) : KV_OK;
}

int kv_snapshot(kv_store *s)
{
    if (!s)
        return KV_INVALID_ARGUMENT;
    last_error[0] = '\0';
    if (!s->log)
        return KV_UNSUPPORTED;
    return take_snapshot(s);
}

int kv_backup(kv_store *s, const char *path)
{
    if (!s || !path || !path[0])
        return KV_INVALID_ARGUMENT;
    last_error[0] = '\0';
    if (!s->log)
        return KV_UNSUPPORTED;
    uint64_t e;
    pthread_mutex_lock(&s->dur->snap_mu);
    int rc = kv__snapshot_write(s, s->dur->io, path, &e);
    pthread_mutex_unlock(&s->dur->snap_mu);
    if (rc == KV_OK)
        atomic_fetch_add(&s->dur->snapshots, 1);
    else
        atomic_fetch_add(&s->dur->snapshot_failures, 1);
    if (rc != KV_OK && !last_error[0])
        kv__set_error("backup to %s failed: %s", path, kv_strerror(rc));
    return rc;
}

int kv_restore(const char *backup, const char *dir)
{
    if (!backup || !dir || !dir[0])
        return KV_INVALID_ARGUMENT;
    last_error[0] = '\0';
    char err[512] = "";
    kv__snap_info info;
    int rc = kv__snap_read(backup, NULL, NULL, &info, err, sizeof err);
    if (rc != KV_OK) {
        kv__set_error("%s", err);
        return rc;
    }
    if ((rc = make_dir(&kv__io_posix, dir)) != KV_OK)
        return rc;
    kv__dir_list dl;
    if ((rc = kv__dir_list_read(dir, NULL, &dl)) != KV_OK)
        return rc;
    bool empty = dl.nsegs == 0 && dl.nsnaps == 0;
    kv__dir_list_free(&dl);
    if (!empty) {
        kv__set_error("%s already holds a store: restore into an empty directory", dir);
        return KV_INVALID_ARGUMENT;
    }
    kv__io *io = &kv__io_posix;
    char *dst = path_of(dir, "snap-%016llx.kvs", info.end_rev);
    size_t cap = dst ? strlen(dst) + 5 : 0;
    char *tmp = dst ? malloc(cap) : NULL;
    char *buf = malloc(1 << 20);
    int in = -1, out = -1;
    if (!dst || !tmp || !buf) {
        rc = KV_NO_MEMORY;
        goto done;
    }
    snprintf(tmp, cap, "%s.tmp", dst);
    int e;
    if ((e = io->open(io, backup, O_RDONLY, 0, &in)) != 0 ||
        (e = io->open(io, tmp, O_WRONLY | O_CREAT | O_TRUNC, 0644, &out)) != 0)
        goto io_failed;
    for (off_t off = 0;;) {
        ssize_t n = kv__io_read_all(io, in, buf, 1 << 20, off);
        if (n < 0) {
            e = (int)n;
            goto io_failed;
        }
        if (n == 0)
            break;
        if ((e = kv__io_write_all(io, out, buf, (size_t)n, off)) != 0)
            goto io_failed;
        off += n;
    }
    if ((e = io->sync(io, out)) != 0)
        goto io_failed;
    e = io->close(io, out);
    out = -1;
    if (e != 0) {
        io->unlink(io, tmp);
        goto io_failed;
    }
    if ((e = io->rename(io, tmp, dst)) != 0 || (e = io->sync_dir(io, dir)) != 0)
        goto io_failed;
    rc = KV_OK;
    goto done;
io_failed:
    kv__set_error("restore of %s into %s failed: %s", backup, dir, strerror(-e));
    rc = kv__io_status(e);
    if (out >= 0)
        io->unlink(io, tmp);
done:
    if (in >= 0)
        io->close(io, in);
    if (out >= 0)
        io->close(io, out);
    free(buf);
    free(tmp);
    free(dst);
    return rc;
}

void kv__durable_metrics(kv_store *s, kv_metrics *m)
{
    if (!s->log)
        return;
    kv__log_stats st;
    kv__log_stats_read(s->log, &st);
    m->durable_revision = st.durable;
    m->log_bytes = st.bytes;
    m->log_records = st.records;
    m->log_batches = st.batches;
    m->log_syncs = st.syncs;
    m->snapshots = atomic_load(&s->dur->snapshots);
    m->snapshot_failures = atomic_load(&s->dur->snapshot_failures);
    m->snapshot_revision = atomic_load(&s->dur->snapshot_rev);
}
