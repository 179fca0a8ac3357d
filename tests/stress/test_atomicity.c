/*
 * test_atomicity.c - multi-key changes are seen whole or not at all.
 *
 * Groups: every write to a group sets all its keys to one new value in one
 * atomic step (kv_mset, an optimistic kv_txn, or kv_txn_cond), so a reader
 * must always see all keys of a group with the same value and version.
 * Bank: transfers between accounts (kv_txn and kv_txn_cond, retried on
 * conflict) keep the sum of all balances constant, so every consistent read
 * of all accounts (kv_mget, or reads inside one kv_txn) must add up.
 * Any torn read fails the test.
 */
#include <sched.h>

#include "stress.h"

#define NGROUPS 4
#define GROUP_KEYS 8
#define NACCOUNTS 16
#define START_BALANCE 1000
#define TOTAL ((int64_t)NACCOUNTS * START_BALANCE)
#define NREADERS 2
#define NGROUP_WRITERS 2

struct shared {
    kv_store *store;
    struct stress_fail fail;
    atomic_int writers_left;
    long iters;
    char gkey[NGROUPS][GROUP_KEYS][16];
    char akey[NACCOUNTS][16];
    kv_key gkeys[NGROUPS][GROUP_KEYS];
    kv_key akeys[NACCOUNTS];
    atomic_long group_checks, bank_checks, read_conflicts;
    atomic_long transfers_txn, transfers_cond, txn_conflicts, cond_retries;
};

struct worker {
    struct shared *sh;
    int id;
};

static struct shared sh_storage = {.fail = STRESS_FAIL_INIT};

static void setup(struct shared *sh)
{
    sh->store = stress_open(64);
    for (int g = 0; g < NGROUPS; g++) {
        kv_pair pairs[GROUP_KEYS];
        for (int i = 0; i < GROUP_KEYS; i++) {
            snprintf(sh->gkey[g][i], sizeof sh->gkey[g][i], "g%d:%d", g, i);
            sh->gkeys[g][i].data = sh->gkey[g][i];
            sh->gkeys[g][i].len = strlen(sh->gkey[g][i]);
            pairs[i] = (kv_pair){sh->gkey[g][i], strlen(sh->gkey[g][i]), "init", 4};
        }
        cr_assert_eq(kv_mset(sh->store, pairs, GROUP_KEYS, NULL), KV_OK);
    }
    unsigned char bal[8];
    stress_put_i64(bal, START_BALANCE);
    for (int a = 0; a < NACCOUNTS; a++) {
        snprintf(sh->akey[a], sizeof sh->akey[a], "acct:%d", a);
        sh->akeys[a].data = sh->akey[a];
        sh->akeys[a].len = strlen(sh->akey[a]);
        cr_assert_eq(kv_set(sh->store, sh->akey[a], strlen(sh->akey[a]), bal, 8, NULL),
                     KV_OK);
    }
}

/* ---- group writers ---------------------------------------------------- */

static int write_group_mset(struct shared *sh, int g, const char *val, size_t vlen)
{
    kv_pair pairs[GROUP_KEYS];
    for (int i = 0; i < GROUP_KEYS; i++)
        pairs[i] = (kv_pair){sh->gkeys[g][i].data, sh->gkeys[g][i].len, val, vlen};
    return kv_mset(sh->store, pairs, GROUP_KEYS, NULL);
}

static int write_group_txn(struct shared *sh, int g, const char *val, size_t vlen)
{
    kv_txn *t = NULL;
    int rc = kv_txn_begin(sh->store, &t);
    if (rc != KV_OK)
        return rc;
    for (int i = 0; i < GROUP_KEYS; i++) {
        rc = kv_txn_set(t, sh->gkeys[g][i].data, sh->gkeys[g][i].len, val, vlen);
        if (rc != KV_OK) {
            kv_txn_abort(t);
            return rc;
        }
    }
    /* blind writes read nothing: they cannot conflict */
    return kv_txn_commit(t, NULL);
}

static int write_group_cond(struct shared *sh, int g, const char *val, size_t vlen)
{
    kv_op ops[GROUP_KEYS];
    for (int i = 0; i < GROUP_KEYS; i++)
        ops[i] = (kv_op){KV_OP_SET, sh->gkeys[g][i].data, sh->gkeys[g][i].len, val, vlen, 0};
    kv_compare c = {KV_CMP_EXISTS, sh->gkeys[g][0].data, sh->gkeys[g][0].len, 0, NULL, 0};
    kv_txn_result r;
    int rc = kv_txn_cond(sh->store, &c, 1, ops, GROUP_KEYS, NULL, 0, &r);
    if (rc != KV_OK)
        return rc;
    int ok = r.succeeded;
    kv_txn_result_free(&r);
    return ok ? KV_OK : KV_INTERNAL;
}

static void *group_writer(void *arg)
{
    struct worker *w = arg;
    struct shared *sh = w->sh;
    uint64_t rng = 0x9E3779B97F4A7C15ULL * (uint64_t)(w->id + 1);
    char val[32];
    for (long i = 0; i < sh->iters && atomic_load(&sh->fail.count) == 0; i++) {
        int g = (int)(stress_rand(&rng) % NGROUPS);
        /* varying lengths so a torn read cannot hide behind equal sizes */
        int vlen = snprintf(val, sizeof val, "w%d-%ld%.*s", w->id, i,
                            (int)(i % 7), "xxxxxxx");
        int how = (int)(stress_rand(&rng) % 3);
        int rc = how == 0   ? write_group_mset(sh, g, val, (size_t)vlen)
                 : how == 1 ? write_group_txn(sh, g, val, (size_t)vlen)
                            : write_group_cond(sh, g, val, (size_t)vlen);
        if (rc != KV_OK)
            stress_failf(&sh->fail, "group write (method %d) failed: %s", how,
                         kv_status_name(rc));
    }
    atomic_fetch_sub(&sh->writers_left, 1);
    return NULL;
}

/* ---- bank transfers --------------------------------------------------- */

static void pick_two(uint64_t *rng, int *a, int *b, int64_t *amount)
{
    *a = (int)(stress_rand(rng) % NACCOUNTS);
    do
        *b = (int)(stress_rand(rng) % NACCOUNTS);
    while (*b == *a);
    *amount = (int64_t)(stress_rand(rng) % 50) + 1;
}

/* Returns KV_OK when committed, KV_CONFLICT to retry, else a failure. */
static int transfer_txn_once(struct shared *sh, int a, int b, int64_t amount)
{
    kv_txn *t = NULL;
    int rc = kv_txn_begin(sh->store, &t);
    if (rc != KV_OK)
        return rc;
    int64_t bal[2];
    int idx[2] = {a, b};
    for (int i = 0; i < 2; i++) {
        kv_value v = {0};
        rc = kv_txn_get(t, sh->akeys[idx[i]].data, sh->akeys[idx[i]].len, &v);
        if (rc == KV_OK && stress_get_i64(v.data, v.len, &bal[i]) != 0)
            rc = KV_INTERNAL;
        kv_value_free(&v);
        if (rc != KV_OK) {
            kv_txn_abort(t);
            return rc;
        }
    }
    unsigned char buf[2][8];
    stress_put_i64(buf[0], bal[0] - amount);
    stress_put_i64(buf[1], bal[1] + amount);
    if (amount % 4 == 0)
        sched_yield(); /* let others change what we read: exercise conflicts */
    for (int i = 0; i < 2; i++) {
        rc = kv_txn_set(t, sh->akeys[idx[i]].data, sh->akeys[idx[i]].len, buf[i], 8);
        if (rc != KV_OK) {
            kv_txn_abort(t);
            return rc;
        }
    }
    return kv_txn_commit(t, NULL);
}

static int transfer_cond_once(struct shared *sh, int a, int b, int64_t amount)
{
    kv_key keys[2] = {sh->akeys[a], sh->akeys[b]};
    kv_value v[2];
    int rc = kv_mget(sh->store, keys, 2, v);
    if (rc != KV_OK)
        return rc;
    int64_t bal[2];
    uint64_t ver[2] = {v[0].version, v[1].version};
    if (stress_get_i64(v[0].data, v[0].len, &bal[0]) != 0 ||
        stress_get_i64(v[1].data, v[1].len, &bal[1]) != 0) {
        kv_values_free(v, 2);
        return KV_INTERNAL;
    }
    kv_values_free(v, 2);
    if (amount % 4 == 0)
        sched_yield();
    unsigned char buf[2][8];
    stress_put_i64(buf[0], bal[0] - amount);
    stress_put_i64(buf[1], bal[1] + amount);
    kv_compare cmps[2] = {
        {KV_CMP_VERSION_EQ, keys[0].data, keys[0].len, ver[0], NULL, 0},
        {KV_CMP_VERSION_EQ, keys[1].data, keys[1].len, ver[1], NULL, 0},
    };
    kv_op ops[2] = {
        {KV_OP_SET, keys[0].data, keys[0].len, buf[0], 8, 0},
        {KV_OP_SET, keys[1].data, keys[1].len, buf[1], 8, 0},
    };
    kv_txn_result r;
    rc = kv_txn_cond(sh->store, cmps, 2, ops, 2, NULL, 0, &r);
    if (rc != KV_OK)
        return rc;
    int ok = r.succeeded;
    if (ok && r.nresults != 2)
        rc = KV_INTERNAL;
    kv_txn_result_free(&r);
    if (rc != KV_OK)
        return rc;
    return ok ? KV_OK : KV_CONFLICT;
}

static void *bank_writer(void *arg)
{
    struct worker *w = arg;
    struct shared *sh = w->sh;
    uint64_t rng = 0xD1B54A32D192ED03ULL * (uint64_t)(w->id + 7);
    int use_cond = w->id % 2;
    for (long i = 0; i < sh->iters && atomic_load(&sh->fail.count) == 0; i++) {
        int a, b;
        int64_t amount;
        pick_two(&rng, &a, &b, &amount);
        for (;;) {
            int rc = use_cond ? transfer_cond_once(sh, a, b, amount)
                              : transfer_txn_once(sh, a, b, amount);
            if (rc == KV_OK)
                break;
            if (rc == KV_CONFLICT) {
                atomic_fetch_add(use_cond ? &sh->cond_retries : &sh->txn_conflicts, 1);
                continue;
            }
            stress_failf(&sh->fail, "transfer (%s) failed: %s",
                         use_cond ? "txn_cond" : "txn", kv_status_name(rc));
            goto out;
        }
        atomic_fetch_add(use_cond ? &sh->transfers_cond : &sh->transfers_txn, 1);
    }
out:
    atomic_fetch_sub(&sh->writers_left, 1);
    return NULL;
}

/* ---- readers ---------------------------------------------------------- */

static void check_group_values(struct shared *sh, int g, const kv_value *v,
                               const char *how)
{
    for (int i = 0; i < GROUP_KEYS; i++) {
        if (v[i].data == NULL) {
            stress_failf(&sh->fail, "%s: group %d key %d missing", how, g, i);
            return;
        }
    }
    for (int i = 1; i < GROUP_KEYS; i++) {
        if (v[i].len != v[0].len || memcmp(v[i].data, v[0].data, v[0].len) != 0) {
            stress_failf(&sh->fail, "%s: torn group %d: key 0 = '%.*s', key %d = '%.*s'",
                         how, g, (int)v[0].len, (const char *)v[0].data, i,
                         (int)v[i].len, (const char *)v[i].data);
            return;
        }
        if (v[i].version != v[0].version) {
            stress_failf(&sh->fail, "%s: group %d written in one step has versions "
                         "%llu and %llu", how, g, (unsigned long long)v[0].version,
                         (unsigned long long)v[i].version);
            return;
        }
    }
    atomic_fetch_add(&sh->group_checks, 1);
}

static void check_bank_values(struct shared *sh, const kv_value *v, const char *how)
{
    int64_t sum = 0;
    for (int a = 0; a < NACCOUNTS; a++) {
        int64_t bal;
        if (stress_get_i64(v[a].data, v[a].len, &bal) != 0) {
            stress_failf(&sh->fail, "%s: account %d missing or malformed", how, a);
            return;
        }
        sum += bal;
    }
    if (sum != TOTAL)
        stress_failf(&sh->fail, "%s: balances add up to %lld, expected %lld", how,
                     (long long)sum, (long long)TOTAL);
    else
        atomic_fetch_add(&sh->bank_checks, 1);
}

static void read_group_mget(struct shared *sh, int g)
{
    kv_value v[GROUP_KEYS];
    int rc = kv_mget(sh->store, sh->gkeys[g], GROUP_KEYS, v);
    if (rc != KV_OK) {
        stress_failf(&sh->fail, "kv_mget group: %s", kv_status_name(rc));
        return;
    }
    check_group_values(sh, g, v, "mget");
    kv_values_free(v, GROUP_KEYS);
}

static void read_bank_mget(struct shared *sh)
{
    kv_value v[NACCOUNTS];
    int rc = kv_mget(sh->store, sh->akeys, NACCOUNTS, v);
    if (rc != KV_OK) {
        stress_failf(&sh->fail, "kv_mget bank: %s", kv_status_name(rc));
        return;
    }
    check_bank_values(sh, v, "mget");
    kv_values_free(v, NACCOUNTS);
}

/* Reads n keys in one txn. Returns 1 if all reads succeeded (values in v,
 * to be freed by the caller), 0 on a read conflict (v freed). */
static int txn_read(struct shared *sh, const kv_key *keys, int n, kv_value *v)
{
    kv_txn *t = NULL;
    int rc = kv_txn_begin(sh->store, &t);
    if (rc != KV_OK) {
        stress_failf(&sh->fail, "kv_txn_begin: %s", kv_status_name(rc));
        return 0;
    }
    memset(v, 0, sizeof *v * (size_t)n);
    for (int i = 0; i < n; i++) {
        rc = kv_txn_get(t, keys[i].data, keys[i].len, &v[i]);
        if (rc != KV_OK) {
            if (rc == KV_CONFLICT)
                atomic_fetch_add(&sh->read_conflicts, 1);
            else
                stress_failf(&sh->fail, "kv_txn_get: %s", kv_status_name(rc));
            kv_txn_abort(t);
            kv_values_free(v, (size_t)i);
            return 0;
        }
    }
    rc = kv_txn_commit(t, NULL);
    if (rc != KV_OK && rc != KV_CONFLICT)
        stress_failf(&sh->fail, "read-only kv_txn_commit: %s", kv_status_name(rc));
    return 1;
}

static void *reader(void *arg)
{
    struct worker *w = arg;
    struct shared *sh = w->sh;
    uint64_t rng = 0xA0761D6478BD642FULL * (uint64_t)(w->id + 3);
    kv_value gv[GROUP_KEYS], bv[NACCOUNTS];
    long rounds = 0;
    /* keep reading while writers run (and at least a few rounds) */
    while ((atomic_load(&sh->writers_left) > 0 || rounds < 100) &&
           atomic_load(&sh->fail.count) == 0) {
        int g = (int)(stress_rand(&rng) % NGROUPS);
        switch (rounds++ % 4) {
        case 0:
            read_group_mget(sh, g);
            break;
        case 1:
            read_bank_mget(sh);
            break;
        case 2:
            if (txn_read(sh, sh->gkeys[g], GROUP_KEYS, gv)) {
                check_group_values(sh, g, gv, "txn");
                kv_values_free(gv, GROUP_KEYS);
            }
            break;
        default:
            if (txn_read(sh, sh->akeys, NACCOUNTS, bv)) {
                check_bank_values(sh, bv, "txn");
                kv_values_free(bv, NACCOUNTS);
            }
            break;
        }
    }
    return NULL;
}

Test(stress, multi_key_writes_are_never_seen_torn, .timeout = 240)
{
    struct shared *sh = &sh_storage;
    setup(sh);
    sh->iters = stress_iters(100000, 500);
    enum { NBANK = 2, NW = NGROUP_WRITERS + NBANK, NT = NW + NREADERS };
    atomic_store(&sh->writers_left, NW);
    struct worker workers[NT];
    pthread_t threads[NT];
    for (int i = 0; i < NT; i++)
        workers[i] = (struct worker){sh, i};
    stress_start(threads, NGROUP_WRITERS, group_writer, workers, sizeof workers[0]);
    stress_start(threads + NGROUP_WRITERS, NBANK, bank_writer,
                 workers + NGROUP_WRITERS, sizeof workers[0]);
    stress_start(threads + NW, NREADERS, reader, workers + NW, sizeof workers[0]);
    stress_join(threads, NT);
    stress_assert_ok(&sh->fail);

    /* final state: the same invariants, read single-threaded */
    for (int g = 0; g < NGROUPS; g++)
        read_group_mget(sh, g);
    read_bank_mget(sh);
    stress_assert_ok(&sh->fail);
    cr_assert_eq(atomic_load(&sh->transfers_txn), sh->iters);
    cr_assert_eq(atomic_load(&sh->transfers_cond), sh->iters);
    cr_assert_gt(atomic_load(&sh->group_checks), 0);
    cr_assert_gt(atomic_load(&sh->bank_checks), 0);
    cr_log_info("group checks %ld, bank checks %ld, read conflicts %ld, "
                "txn conflicts %ld, cond retries %ld",
                atomic_load(&sh->group_checks), atomic_load(&sh->bank_checks),
                atomic_load(&sh->read_conflicts), atomic_load(&sh->txn_conflicts),
                atomic_load(&sh->cond_retries));
    kv_close(sh->store);
}
