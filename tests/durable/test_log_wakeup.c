/*
 * test_log_wakeup.c - the log's flusher is never left asleep with records
 * to write (white-box: the I/O layer is replaced by one whose log writes
 * can be held at a gate, to force interleavings of the flusher and the
 * threads that lead their own rounds).
 *
 * Under fsync=always kvd never waits for the disk in its loops: it queues
 * each loop iteration's records and asks the flusher for a round with
 * kv_write_log (a "kick"), and holds the replies until the round's
 * notification. A round led by another thread (a snapshot's flush of the
 * log, kv_sync) may take the kicked records first; the kick must not
 * outlive them, or the next kv_write_log believes a round is already asked
 * for and the flusher, which found nothing to do, sleeps for good.
 */
#include <pthread.h>
#include <time.h>

#include "durtest.h"
#include "durable.h"
#include "io.h"
#include "log.h"
#include "store.h"

/* kv__io_posix, except that the next `stop` pwrites stop at the gate,
 * each until released, in the order they arrived. */
typedef struct gate_io {
    kv__io io; /* first: callbacks cast back */
    pthread_mutex_t mu;
    pthread_cond_t cv;
    int stop;     /* pwrites still to stop */
    int arrived;  /* pwrites stopped so far */
    int released; /* of them, released */
} gate_io;

static ssize_t g_pwrite(kv__io *io, int fd, const void *buf, size_t len, off_t off)
{
    gate_io *g = (gate_io *)io;
    pthread_mutex_lock(&g->mu);
    if (g->stop > 0) {
        g->stop--;
        int ticket = ++g->arrived;
        pthread_cond_broadcast(&g->cv);
        while (g->released < ticket)
            pthread_cond_wait(&g->cv, &g->mu);
    }
    pthread_mutex_unlock(&g->mu);
    return kv__io_posix.pwrite(&kv__io_posix, fd, buf, len, off);
}

static void gate_init(gate_io *g)
{
    g->io = kv__io_posix;
    g->io.pwrite = g_pwrite;
    pthread_mutex_init(&g->mu, NULL);
    pthread_cond_init(&g->cv, NULL);
    g->stop = g->arrived = g->released = 0;
}

static void gate_destroy(gate_io *g)
{
    pthread_cond_destroy(&g->cv);
    pthread_mutex_destroy(&g->mu);
}

static void gate_stop(gate_io *g, int n)
{
    pthread_mutex_lock(&g->mu);
    g->stop += n;
    pthread_mutex_unlock(&g->mu);
}

/* Waits until the n-th stopped pwrite is at the gate. */
static void gate_wait_arrived(gate_io *g, int n)
{
    pthread_mutex_lock(&g->mu);
    while (g->arrived < n)
        pthread_cond_wait(&g->cv, &g->mu);
    pthread_mutex_unlock(&g->mu);
}

static void gate_release_one(gate_io *g)
{
    pthread_mutex_lock(&g->mu);
    g->released++;
    pthread_cond_broadcast(&g->cv);
    pthread_mutex_unlock(&g->mu);
}

static void pause_briefly(void)
{
    struct timespec ts = {0, 200000};
    nanosleep(&ts, NULL);
}

/* Waits until the flusher is in state st (a state it can only leave when
 * someone wakes it). */
static void wait_flusher(kv_store *s, int st)
{
    while (kv__log_flusher_state(s->log) != st)
        pause_briefly();
}

typedef struct leader {
    kv_store *s;
    uint64_t rev;
    int rc;
} leader;

/* A thread that waits for rev itself: it leads the rounds, one after
 * another while it holds the log's mutex, until rev is durable. */
static void *lead(void *arg)
{
    leader *ld = arg;
    ld->rc = kv__log_wait(ld->s->log, ld->rev);
    return NULL;
}

static void set1(kv_store *s, const char *k)
{
    DT_CHECK(kv_set(s, k, strlen(k), "v", 1, NULL) == KV_OK, "set %s", k);
}

/* Hangs (the suite's timeout fails it) if the flusher never writes rev. */
static void wait_durable_without_leading(kv_store *s, uint64_t rev)
{
    while (kv_durable_revision(s) < rev)
        pause_briefly();
}

Test(log_wakeup, a_kick_taken_by_another_threads_round_does_not_silence_the_next, .timeout = 60)
{
    char *dir = dt_tmpdir("wakeup");
    gate_io g;
    gate_init(&g);
    kv_config c;
    kv_config_init(&c, sizeof c);
    c.dir = dir;
    c.fsync = KV_FSYNC_ALWAYS;
    c.wait_durable = 0; /* as kvd: writes return before they are durable */
    c.snapshot_log_bytes = 0;
    c.snapshot_interval_s = 0;
    kv_store *s = NULL;
    int rc = kv__open_with_io(&c, &g.io, &s);
    cr_assert_eq(rc, KV_OK, "open: %s: %s", kv_strerror(rc), kv_last_error());

    /* 1. The flusher idle; r1 queued (appends do not wake it). */
    wait_flusher(s, KV__FLUSHER_SLEEPS);
    set1(s, "k1");
    uint64_t r1 = kv_revision(s);

    /* 2. Another thread leads a round for r1 and, holding the I/O token,
     * stops in its write. It waits for r1 + 1, so it leads the next round
     * too, right after the first, without letting the flusher in. */
    gate_stop(&g, 2);
    leader ld = {s, r1 + 1, -1};
    pthread_t t;
    cr_assert_eq(pthread_create(&t, NULL, lead, &ld), 0);
    gate_wait_arrived(&g, 1);

    /* 3. r2 queued and kicked, as kvd's loop does after an iteration: the
     * flusher wakes, finds the round in progress and waits for its end. */
    set1(s, "k2");
    cr_assert_eq(kv_revision(s), r1 + 1);
    cr_assert_eq(kv_write_log(s), KV_OK);
    wait_flusher(s, KV__FLUSHER_WAITS_ROUND);

    /* 4. The first round ends and the leader's second takes r2, the
     * kicked records, and stops in its write; the flusher, woken by the
     * first round's end, waits for the second's. */
    gate_release_one(&g);
    gate_wait_arrived(&g, 2);
    wait_flusher(s, KV__FLUSHER_WAITS_ROUND);

    /* 5. The second round ends: r2 is durable, nothing is queued, and the
     * flusher goes back to sleep. */
    gate_release_one(&g);
    cr_assert_eq(pthread_join(t, NULL), 0);
    cr_assert_eq(ld.rc, KV_OK);
    cr_assert_geq(kv_durable_revision(s), r1 + 1);
    wait_flusher(s, KV__FLUSHER_SLEEPS);

    /* 6. The next write and kick must reach it (before the fix the kick
     * of step 3 was still standing, so this one was never sent). */
    set1(s, "k3");
    uint64_t r3 = kv_revision(s);
    cr_assert_eq(kv_write_log(s), KV_OK);
    wait_durable_without_leading(s, r3);
    cr_assert_geq(kv_durable_revision(s), r3);

    kv_close(s);
    gate_destroy(&g);
    dt_rmdir(dir);
    free(dir);
}
