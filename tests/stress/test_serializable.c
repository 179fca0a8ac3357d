/*
 * test_serializable.c - optimistic transactions are serializable.
 *
 * Counters: threads increment counters by read-modify-write transactions,
 * retrying on KV_CONFLICT; a lost update would leave a counter below the
 * number of increments that committed.
 * Write skew: two "takers" each read x and y and, if both are 1, set their
 * own key to 0; a resetter sets both back to 1. Snapshot isolation would let
 * both takers commit (x = y = 0); serializability forbids it.
 */
#include <sched.h>

#include "stress.h"

#define NCOUNTERS 4
#define NTHREADS 4

/* ---- counters --------------------------------------------------------- */

struct counter_shared {
    kv_store *store;
    struct stress_fail fail;
    long iters;
    char key[NCOUNTERS][16];
};

struct counter_worker {
    struct counter_shared *sh;
    int id;
    long committed[NCOUNTERS]; /* increments this thread committed */
    long commits;              /* transactions this thread committed */
    long conflicts;
};

static struct counter_shared counters = {.fail = STRESS_FAIL_INIT};

/* Reads counter c inside t into *n (absent = 0). */
static int txn_read_counter(kv_txn *t, struct counter_shared *sh, int c, int64_t *n)
{
    kv_value v = {0};
    int rc = kv_txn_get(t, sh->key[c], strlen(sh->key[c]), &v);
    if (rc == KV_NOT_FOUND) {
        *n = 0;
        return KV_OK;
    }
    if (rc == KV_OK && stress_get_i64(v.data, v.len, n) != 0)
        rc = KV_INTERNAL;
    kv_value_free(&v);
    return rc;
}

/* One attempt to add 1 to each of the ncs counters in cs. */
static int increment_once(struct counter_shared *sh, const int *cs, int ncs)
{
    kv_txn *t = NULL;
    int rc = kv_txn_begin(sh->store, &t);
    if (rc != KV_OK)
        return rc;
    for (int i = 0; i < ncs; i++) {
        int64_t n;
        rc = txn_read_counter(t, sh, cs[i], &n);
        if (rc == KV_OK) {
            unsigned char buf[8];
            stress_put_i64(buf, n + 1);
            rc = kv_txn_set(t, sh->key[cs[i]], strlen(sh->key[cs[i]]), buf, 8);
        }
        if (rc != KV_OK) {
            kv_txn_abort(t);
            return rc;
        }
    }
    return kv_txn_commit(t, NULL);
}

static void *counter_thread(void *arg)
{
    struct counter_worker *w = arg;
    struct counter_shared *sh = w->sh;
    uint64_t rng = 0x9E3779B97F4A7C15ULL * (uint64_t)(w->id + 11);
    for (long i = 0; i < sh->iters && atomic_load(&sh->fail.count) == 0; i++) {
        int cs[2];
        cs[0] = (int)(stress_rand(&rng) % NCOUNTERS);
        cs[1] = (cs[0] + 1) % NCOUNTERS;
        int ncs = (i % 3 == 0) ? 2 : 1; /* some txns touch two counters */
        for (;;) {
            int rc = increment_once(sh, cs, ncs);
            if (rc == KV_OK)
                break;
            if (rc != KV_CONFLICT) {
                stress_failf(&sh->fail, "increment: %s", kv_status_name(rc));
                return NULL;
            }
            w->conflicts++;
        }
        w->commits++;
        for (int j = 0; j < ncs; j++)
            w->committed[cs[j]]++;
    }
    return NULL;
}

Test(stress, counter_increments_are_never_lost, .timeout = 240)
{
    struct counter_shared *sh = &counters;
    sh->store = stress_open(16);
    sh->iters = stress_iters(100000, 500);
    for (int c = 0; c < NCOUNTERS; c++)
        snprintf(sh->key[c], sizeof sh->key[c], "counter:%d", c);
    kv_metrics m0;
    cr_assert_eq(kv_metrics_read(sh->store, &m0, sizeof m0), KV_OK);

    struct counter_worker w[NTHREADS];
    pthread_t threads[NTHREADS];
    memset(w, 0, sizeof w);
    for (int i = 0; i < NTHREADS; i++) {
        w[i].sh = sh;
        w[i].id = i;
    }
    stress_start(threads, NTHREADS, counter_thread, w, sizeof w[0]);
    stress_join(threads, NTHREADS);
    stress_assert_ok(&sh->fail);

    long commits = 0, conflicts = 0;
    for (int c = 0; c < NCOUNTERS; c++) {
        long want = 0;
        for (int i = 0; i < NTHREADS; i++)
            want += w[i].committed[c];
        kv_value v = {0};
        int64_t got = 0;
        int rc = kv_get(sh->store, sh->key[c], strlen(sh->key[c]), &v);
        if (rc == KV_OK)
            cr_assert_eq(stress_get_i64(v.data, v.len, &got), 0);
        else
            cr_assert_eq(rc, KV_NOT_FOUND);
        kv_value_free(&v);
        cr_assert_eq(got, want, "counter %d is %lld after %ld committed increments",
                     c, (long long)got, want);
    }
    for (int i = 0; i < NTHREADS; i++) {
        commits += w[i].commits;
        conflicts += w[i].conflicts;
    }
    cr_assert_eq(commits, sh->iters * NTHREADS);
    /* the store is quiet now: metrics are exact */
    kv_metrics m;
    cr_assert_eq(kv_metrics_read(sh->store, &m, sizeof m), KV_OK);
    cr_assert_eq(m.txn_commits - m0.txn_commits, (uint64_t)commits,
                 "txn_commits %llu, committed %ld",
                 (unsigned long long)(m.txn_commits - m0.txn_commits), commits);
    cr_log_info("%ld commits, %ld conflicts retried", commits, conflicts);
    kv_close(sh->store);
}

/* ---- write skew ------------------------------------------------------- */

struct skew_shared {
    kv_store *store;
    struct stress_fail fail;
    long iters;
    atomic_int takers_left;
    atomic_long takes, resets, observed;
};

struct skew_worker {
    struct skew_shared *sh;
    int id; /* 0: takes x, 1: takes y, 2: resetter, 3: observer */
};

static struct skew_shared skew = {.fail = STRESS_FAIL_INIT};

static const char *const xy[2] = {"x", "y"};

/* Reads x and y in t. Returns KV_OK with both values in xyv[]. */
static int txn_read_xy(kv_txn *t, int xyv[2])
{
    for (int i = 0; i < 2; i++) {
        kv_value v = {0};
        int rc = kv_txn_get(t, xy[i], 1, &v);
        if (rc != KV_OK)
            return rc;
        int ok = v.len == 1 && (((char *)v.data)[0] == '0' || ((char *)v.data)[0] == '1');
        if (ok)
            xyv[i] = ((char *)v.data)[0] - '0';
        kv_value_free(&v);
        if (!ok)
            return KV_INTERNAL;
    }
    return KV_OK;
}

/* One transaction of worker id. Returns KV_OK, KV_CONFLICT or a failure. */
static int skew_step(struct skew_shared *sh, int id, int *wrote)
{
    kv_txn *t = NULL;
    int rc = kv_txn_begin(sh->store, &t);
    if (rc != KV_OK)
        return rc;
    int v[2];
    *wrote = 0;
    rc = txn_read_xy(t, v);
    if (rc != KV_OK) {
        kv_txn_abort(t);
        return rc;
    }
    if (v[0] == 0 && v[1] == 0) {
        kv_txn_abort(t);
        stress_failf(&sh->fail, "a transaction read x = y = 0");
        return KV_INTERNAL;
    }
    if (id < 2 && v[0] == 1 && v[1] == 1) {
        rc = kv_txn_set(t, xy[id], 1, "0", 1);
        *wrote = 1;
        /* widen the window in which the other taker reads (1, 1) too */
        sched_yield();
    } else if (id == 2 && (v[0] == 0 || v[1] == 0)) {
        rc = kv_txn_set(t, "x", 1, "1", 1);
        if (rc == KV_OK)
            rc = kv_txn_set(t, "y", 1, "1", 1);
        *wrote = 1;
    }
    if (rc != KV_OK) {
        kv_txn_abort(t);
        return rc;
    }
    return kv_txn_commit(t, NULL);
}

static void *skew_thread(void *arg)
{
    struct skew_worker *w = arg;
    struct skew_shared *sh = w->sh;
    long i = 0;
    for (;;) {
        if (atomic_load(&sh->fail.count) != 0)
            break;
        if (w->id < 2 && i++ >= sh->iters)
            break;
        if (w->id >= 2 && atomic_load(&sh->takers_left) == 0)
            break;
        if (w->id == 3) {
            kv_key keys[2] = {{"x", 1}, {"y", 1}};
            kv_value v[2];
            int rc = kv_mget(sh->store, keys, 2, v);
            if (rc != KV_OK) {
                stress_failf(&sh->fail, "kv_mget: %s", kv_status_name(rc));
                break;
            }
            if (v[0].data == NULL || v[1].data == NULL)
                stress_failf(&sh->fail, "x or y missing");
            else if (((char *)v[0].data)[0] == '0' && ((char *)v[1].data)[0] == '0')
                stress_failf(&sh->fail, "write skew: x = y = 0 in the store");
            kv_values_free(v, 2);
            atomic_fetch_add(&sh->observed, 1);
            continue;
        }
        int wrote = 0;
        int rc = skew_step(sh, w->id, &wrote);
        if (rc != KV_OK && rc != KV_CONFLICT) {
            stress_failf(&sh->fail, "skew txn: %s", kv_status_name(rc));
            break;
        }
        if (rc == KV_OK && wrote)
            atomic_fetch_add(w->id < 2 ? &sh->takes : &sh->resets, 1);
        if (w->id < 2 && (rc == KV_CONFLICT || wrote))
            continue; /* an attempt to take: counts as an iteration */
        if (w->id < 2)
            i--; /* nothing to take yet: wait for the resetter */
        sched_yield();
    }
    if (w->id < 2)
        atomic_fetch_sub(&sh->takers_left, 1);
    return NULL;
}

Test(stress, no_write_skew, .timeout = 240)
{
    struct skew_shared *sh = &skew;
    sh->store = stress_open(16);
    sh->iters = stress_iters(20000, 300);
    atomic_store(&sh->takers_left, 2);
    cr_assert_eq(kv_set(sh->store, "x", 1, "1", 1, NULL), KV_OK);
    cr_assert_eq(kv_set(sh->store, "y", 1, "1", 1, NULL), KV_OK);
    struct skew_worker w[4];
    pthread_t threads[4];
    for (int i = 0; i < 4; i++)
        w[i] = (struct skew_worker){sh, i};
    stress_start(threads, 4, skew_thread, w, sizeof w[0]);
    stress_join(threads, 4);
    stress_assert_ok(&sh->fail);
    kv_value x = {0}, y = {0};
    cr_assert_eq(kv_get(sh->store, "x", 1, &x), KV_OK);
    cr_assert_eq(kv_get(sh->store, "y", 1, &y), KV_OK);
    cr_assert(!(((char *)x.data)[0] == '0' && ((char *)y.data)[0] == '0'),
              "write skew: x = y = 0 at the end");
    kv_value_free(&x);
    kv_value_free(&y);
    cr_assert_gt(atomic_load(&sh->takes), 0);
    cr_assert_gt(atomic_load(&sh->resets), 0);
    cr_log_info("takes %ld, resets %ld, observations %ld", atomic_load(&sh->takes),
                atomic_load(&sh->resets), atomic_load(&sh->observed));
    kv_close(sh->store);
}
