/*
 * test_revisions.c - what revisions promise (kv.h, "Revisions"), with
 * writers on several threads.
 *
 * An in-memory store takes revisions from per-stripe clocks, not from one
 * counter (apply.c, take_revision), so these are the properties to check:
 *   - a key's versions strictly increase, and the value a key ends with is
 *     the one its highest version wrote;
 *   - a change's revision is above the version of whatever it overwrote
 *     (compare-and-swap) or compared (a transaction's reads);
 *   - no change lands between a transaction's read and its revision: any
 *     write to a key the transaction read, with a version above the one it
 *     read, has a revision above the transaction's (so revision order is a
 *     serial order);
 *   - the keys of a multi-set carry one revision;
 *   - one thread's changes take increasing revisions, and a store with one
 *     writer numbers them 1, 2, 3, ...
 */
#include "stress.h"

#define NTHREADS 4
#define NKEYS 64

/* ---- one writer ---------------------------------------------------------- */

Test(revisions, one_writer_numbers_its_changes_one_by_one)
{
    kv_store *s = stress_open(0);
    char key[32];
    uint64_t v = 0;
    for (uint64_t i = 1; i <= 2000; i++) {
        snprintf(key, sizeof key, "k%llu", (unsigned long long)(i * 7919 % 1000));
        if (i % 3 == 0) {
            kv_pair p[2] = {{key, strlen(key), "m", 1}, {"other", 5, "o", 1}};
            cr_assert_eq(kv_mset(s, p, 2, &v), KV_OK);
        } else {
            cr_assert_eq(kv_set(s, key, strlen(key), "x", 1, &v), KV_OK);
        }
        cr_assert_eq(v, i, "change %llu took revision %llu", (unsigned long long)i,
                     (unsigned long long)v);
    }
    cr_assert_eq(kv_revision(s), 2000);
    kv_close(s);
}

/* ---- per-key order and compare-and-swap ------------------------------------ */

struct kw {
    kv_store *s;
    struct stress_fail *fail;
    int id;
    long iters;
    uint64_t last_own; /* revision of this thread's last change */
};

static void key_name(char *buf, size_t n, unsigned k)
{
    snprintf(buf, n, "key-%03u", k);
}

/* Sets and CASes random keys; every value names its writer and revision
 * order: "thread:counter". Checks what it can see itself. */
static void *cas_worker(void *arg)
{
    struct kw *w = arg;
    uint64_t rng = 0x9E3779B97F4A7C15ULL * (uint64_t)(w->id + 3);
    char key[32], val[32];
    for (long i = 0; i < w->iters && atomic_load(&w->fail->count) == 0; i++) {
        unsigned k = (unsigned)(stress_rand(&rng) % NKEYS);
        key_name(key, sizeof key, k);
        snprintf(val, sizeof val, "%d:%ld", w->id, i);
        uint64_t got = 0;
        if (stress_rand(&rng) & 1) {
            kv_value cur = {0};
            int rc = kv_get(w->s, key, strlen(key), &cur);
            uint64_t expect = rc == KV_OK ? cur.version : 0;
            kv_value_free(&cur);
            rc = kv_set_if(w->s, key, strlen(key), val, strlen(val), expect, &got);
            if (rc == KV_VERSION_MISMATCH)
                continue;
            if (rc != KV_OK) {
                stress_failf(w->fail, "kv_set_if: %s", kv_strerror(rc));
                break;
            }
            if (got <= expect)
                stress_failf(w->fail, "CAS over version %llu took revision %llu",
                             (unsigned long long)expect, (unsigned long long)got);
        } else if (kv_set(w->s, key, strlen(key), val, strlen(val), &got) != KV_OK) {
            stress_failf(w->fail, "kv_set failed");
            break;
        }
        if (got <= w->last_own)
            stress_failf(w->fail, "thread %d: revision %llu after its own %llu", w->id,
                         (unsigned long long)got, (unsigned long long)w->last_own);
        w->last_own = got;
        /* a read afterwards sees this version or a later one */
        kv_value now = {0};
        if (kv_get(w->s, key, strlen(key), &now) != KV_OK || now.version < got)
            stress_failf(w->fail, "%s: read version %llu below the set's %llu", key,
                         (unsigned long long)now.version, (unsigned long long)got);
        kv_value_free(&now);
    }
    return NULL;
}

Test(revisions, versions_increase_per_key_and_cas_goes_above_what_it_replaced)
{
    kv_store *s = stress_open(0);
    struct stress_fail fail = STRESS_FAIL_INIT;
    struct kw w[NTHREADS];
    pthread_t th[NTHREADS];
    for (int i = 0; i < NTHREADS; i++)
        w[i] = (struct kw){s, &fail, i, stress_iters(200000, 5000), 0};
    stress_start(th, NTHREADS, cas_worker, w, sizeof w[0]);
    stress_join(th, NTHREADS);
    stress_assert_ok(&fail);
    /* the store's revision is the highest any change took */
    uint64_t max = 0;
    for (int i = 0; i < NTHREADS; i++)
        if (w[i].last_own > max)
            max = w[i].last_own;
    cr_assert_geq(kv_revision(s), max);
    kv_close(s);
}

/* ---- transactions: revision order is a serial order ----------------------- */

struct txn_log {
    unsigned read_key, write_key;
    uint64_t read_version, rev;
};

struct write_log {
    unsigned key;
    uint64_t version;
};

struct tw {
    kv_store *s;
    struct stress_fail *fail;
    int id;
    long iters;
    struct txn_log *txns;
    size_t ntxns;
    struct write_log *writes;
    size_t nwrites;
};

static void *txn_worker(void *arg)
{
    struct tw *w = arg;
    uint64_t rng = 0xD1B54A32D192ED03ULL * (uint64_t)(w->id + 5);
    char rkey[32], wkey[32];
    for (long i = 0; i < w->iters && atomic_load(&w->fail->count) == 0; i++) {
        unsigned a = (unsigned)(stress_rand(&rng) % NKEYS);
        unsigned b = (unsigned)(stress_rand(&rng) % NKEYS);
        key_name(wkey, sizeof wkey, b);
        uint64_t v = 0;
        if (a == b || (stress_rand(&rng) & 3) == 0) { /* a plain write */
            if (kv_set(w->s, wkey, strlen(wkey), "p", 1, &v) != KV_OK) {
                stress_failf(w->fail, "kv_set failed");
                break;
            }
            w->writes[w->nwrites++] = (struct write_log){b, v};
            continue;
        }
        key_name(rkey, sizeof rkey, a);
        kv_txn *t = NULL;
        if (kv_txn_begin(w->s, &t) != KV_OK) {
            stress_failf(w->fail, "kv_txn_begin failed");
            break;
        }
        kv_value got = {0};
        int rc = kv_txn_get(t, rkey, strlen(rkey), &got);
        uint64_t read_version = rc == KV_OK ? got.version : 0;
        kv_value_free(&got);
        if (rc == KV_CONFLICT) { /* what it read changed under it */
            kv_txn_abort(t);
            continue;
        }
        if ((rc != KV_OK && rc != KV_NOT_FOUND) ||
            (rc = kv_txn_set(t, wkey, strlen(wkey), "t", 1)) != KV_OK) {
            stress_failf(w->fail, "txn: %s", kv_strerror(rc));
            kv_txn_abort(t);
            break;
        }
        rc = kv_txn_commit(t, &v); /* frees t */
        if (rc == KV_OK) {
            if (v <= read_version)
                stress_failf(w->fail, "txn read version %llu yet committed at %llu",
                             (unsigned long long)read_version, (unsigned long long)v);
            w->txns[w->ntxns++] = (struct txn_log){a, b, read_version, v};
            w->writes[w->nwrites++] = (struct write_log){b, v};
        } else if (rc != KV_CONFLICT) {
            stress_failf(w->fail, "kv_txn_commit: %s", kv_strerror(rc));
        }
    }
    return NULL;
}

Test(revisions, no_write_lands_between_a_transactions_read_and_its_revision)
{
    kv_store *s = stress_open(0);
    struct stress_fail fail = STRESS_FAIL_INIT;
    struct tw w[NTHREADS];
    pthread_t th[NTHREADS];
    long iters = stress_iters(50000, 2000);
    for (int i = 0; i < NTHREADS; i++) {
        w[i] = (struct tw){s, &fail, i, iters, calloc((size_t)iters, sizeof(struct txn_log)), 0,
                           calloc((size_t)iters, sizeof(struct write_log)), 0};
        cr_assert(w[i].txns && w[i].writes);
    }
    stress_start(th, NTHREADS, txn_worker, w, sizeof w[0]);
    stress_join(th, NTHREADS);
    stress_assert_ok(&fail);

    /* For each key, its write versions sorted; then for each transaction,
     * the first write of the key it read with a version above the one it
     * read must have a version above the transaction's revision. */
    size_t total = 0;
    for (int i = 0; i < NTHREADS; i++)
        total += w[i].nwrites;
    uint64_t *by_key[NKEYS];
    size_t nby[NKEYS] = {0};
    for (unsigned k = 0; k < NKEYS; k++)
        cr_assert(by_key[k] = malloc((total + 1) * sizeof(uint64_t)));
    for (int i = 0; i < NTHREADS; i++)
        for (size_t j = 0; j < w[i].nwrites; j++)
            by_key[w[i].writes[j].key][nby[w[i].writes[j].key]++] = w[i].writes[j].version;
    for (unsigned k = 0; k < NKEYS; k++) {
        uint64_t *v = by_key[k];
        for (size_t i = 1; i < nby[k]; i++) /* insertion sort: nearly sorted */
            for (size_t j = i; j > 0 && v[j] < v[j - 1]; j--) {
                uint64_t x = v[j];
                v[j] = v[j - 1];
                v[j - 1] = x;
            }
        for (size_t i = 1; i < nby[k]; i++)
            cr_assert_neq(v[i], v[i - 1], "key %u: two writes took version %llu", k,
                          (unsigned long long)v[i]);
    }
    size_t checked = 0;
    for (int i = 0; i < NTHREADS; i++)
        for (size_t j = 0; j < w[i].ntxns; j++) {
            struct txn_log *t = &w[i].txns[j];
            uint64_t *v = by_key[t->read_key];
            size_t lo = 0, hi = nby[t->read_key];
            while (lo < hi) { /* first version > read_version */
                size_t mid = (lo + hi) / 2;
                if (v[mid] <= t->read_version)
                    lo = mid + 1;
                else
                    hi = mid;
            }
            if (lo < nby[t->read_key]) {
                cr_assert_gt(v[lo], t->rev,
                             "txn read key %u at %llu and committed at %llu, but a write "
                             "of that key took %llu in between",
                             t->read_key, (unsigned long long)t->read_version,
                             (unsigned long long)t->rev, (unsigned long long)v[lo]);
                checked++;
            }
        }
    cr_assert_gt(checked, 0, "some transactions were overwritten afterwards");
    for (unsigned k = 0; k < NKEYS; k++)
        free(by_key[k]);
    for (int i = 0; i < NTHREADS; i++) {
        free(w[i].txns);
        free(w[i].writes);
    }
    kv_close(s);
}

/* ---- multi-sets ------------------------------------------------------------ */

static void *mset_worker(void *arg)
{
    struct kw *w = arg;
    char keys[4][32], val[32];
    for (long i = 0; i < w->iters && atomic_load(&w->fail->count) == 0; i++) {
        kv_pair p[4];
        kv_key k[4];
        for (int j = 0; j < 4; j++) {
            /* four distinct keys, overlapping other threads' */
            key_name(keys[j], sizeof keys[j], (unsigned)((i * 4 + j + w->id) % NKEYS));
            p[j] = (kv_pair){keys[j], strlen(keys[j]), val, 0};
            k[j] = (kv_key){keys[j], strlen(keys[j])};
        }
        snprintf(val, sizeof val, "%d:%ld", w->id, i);
        for (int j = 0; j < 4; j++)
            p[j].vlen = strlen(val);
        uint64_t v = 0;
        if (kv_mset(w->s, p, 4, &v) != KV_OK) {
            stress_failf(w->fail, "kv_mset failed");
            break;
        }
        /* a snapshot of the four: those still holding this thread's value
         * of this round all carry v */
        kv_value out[4] = {{0}};
        if (kv_mget(w->s, k, 4, out) != KV_OK) {
            stress_failf(w->fail, "kv_mget failed");
            break;
        }
        for (int j = 0; j < 4; j++) {
            if (out[j].data && out[j].len == strlen(val) && memcmp(out[j].data, val, out[j].len) == 0 &&
                out[j].version != v)
                stress_failf(w->fail, "multi-set at %llu, but %s has version %llu",
                             (unsigned long long)v, keys[j], (unsigned long long)out[j].version);
            if (out[j].data && out[j].version < v)
                stress_failf(w->fail, "%s at version %llu after a multi-set at %llu", keys[j],
                             (unsigned long long)out[j].version, (unsigned long long)v);
            kv_value_free(&out[j]);
        }
    }
    return NULL;
}

Test(revisions, the_keys_of_a_multi_set_share_its_revision)
{
    kv_store *s = stress_open(0);
    struct stress_fail fail = STRESS_FAIL_INIT;
    struct kw w[NTHREADS];
    pthread_t th[NTHREADS];
    for (int i = 0; i < NTHREADS; i++)
        w[i] = (struct kw){s, &fail, i, stress_iters(50000, 2000), 0};
    stress_start(th, NTHREADS, mset_worker, w, sizeof w[0]);
    stress_join(th, NTHREADS);
    stress_assert_ok(&fail);
    kv_close(s);
}
