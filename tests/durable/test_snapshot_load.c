/*
 * test_snapshot_load.c - snapshots and backups while writers and readers
 * run (also under TSan): readers never see a torn multi-key change, every
 * snapshot and backup is exact, and the store reopens to exactly the state
 * it had.
 */
#include <pthread.h>
#include <stdatomic.h>

#include "durtest.h"

#define PAIRS 200

typedef struct load {
    kv_store *s;
    _Atomic bool stop;
    _Atomic long writes, reads, torn;
    _Atomic unsigned seed;
} load;

static void pair_keys(int i, char *a, char *b)
{
    snprintf(a, 16, "a%d", i);
    snprintf(b, 16, "b%d", i);
}

static void *writer(void *arg)
{
    load *l = arg;
    unsigned seed = atomic_fetch_add(&l->seed, 1);
    char v[64];
    long n = 0;
    while (!atomic_load(&l->stop)) {
        int i = rand_r(&seed) % PAIRS;
        char a[16], b[16];
        pair_keys(i, a, b);
        snprintf(v, sizeof v, "%u-%ld", seed, n++);
        size_t vl = strlen(v) + (size_t)(rand_r(&seed) % 32);
        if (rand_r(&seed) % 8 == 0) {
            kv_key k[2] = {{a, strlen(a)}, {b, strlen(b)}};
            DT_CHECK(kv_mdelete(l->s, k, 2, NULL, NULL) == KV_OK, "mdelete");
        } else {
            kv_pair p[2] = {{a, strlen(a), v, vl}, {b, strlen(b), v, vl}};
            DT_CHECK(kv_mset(l->s, p, 2, NULL) == KV_OK, "mset");
        }
        char single[16];
        snprintf(single, sizeof single, "s%d", rand_r(&seed) % 1000);
        DT_CHECK(kv_set(l->s, single, strlen(single), v, vl, NULL) == KV_OK, "set");
        atomic_fetch_add(&l->writes, 2);
    }
    return NULL;
}

static void *reader(void *arg)
{
    load *l = arg;
    unsigned seed = 99;
    while (!atomic_load(&l->stop)) {
        int i = rand_r(&seed) % PAIRS;
        char a[16], b[16];
        pair_keys(i, a, b);
        kv_key k[2] = {{a, strlen(a)}, {b, strlen(b)}};
        kv_value v[2];
        DT_CHECK(kv_mget(l->s, k, 2, v) == KV_OK, "mget");
        if (v[0].len != v[1].len || v[0].version != v[1].version ||
            (v[0].len && memcmp(v[0].data, v[1].data, v[0].len) != 0))
            atomic_fetch_add(&l->torn, 1);
        kv_values_free(v, 2);
        atomic_fetch_add(&l->reads, 1);
    }
    return NULL;
}

/* Every pair is whole: both keys absent, or both with one value and
 * version. */
static int torn_pairs(kv_store *s)
{
    int torn = 0;
    for (int i = 0; i < PAIRS; i++) {
        char a[16], b[16];
        pair_keys(i, a, b);
        kv_key k[2] = {{a, strlen(a)}, {b, strlen(b)}};
        kv_value v[2];
        cr_assert_eq(kv_mget(s, k, 2, v), KV_OK);
        torn += v[0].len != v[1].len || v[0].version != v[1].version ||
                (v[0].len && memcmp(v[0].data, v[1].data, v[0].len) != 0);
        kv_values_free(v, 2);
    }
    return torn;
}

Test(snapshot_load, snapshots_and_backups_under_writers_and_readers_are_exact, .timeout = 300)
{
    char *dir = dt_tmpdir("load");
    char *bdir = dt_tmpdir("loadbk");
    kv_config c;
    kv_config_init(&c, sizeof c);
    c.dir = dir;
    c.fsync = KV_FSYNC_NO;
    c.segment_bytes = 256 * 1024;
    c.snapshot_log_bytes = 512 * 1024; /* the background thread joins in */
    kv_store *s;
    cr_assert_eq(kv_open_config(&c, &s), KV_OK);
    load l = {.s = s, .seed = 7};
    pthread_t w[2], r;
    for (int i = 0; i < 2; i++)
        pthread_create(&w[i], NULL, writer, &l);
    pthread_create(&r, NULL, reader, &l);

    char backups[3][300];
    for (int round = 0; round < 6; round++) {
        usleep(100000);
        if (round % 2 == 0) {
            snprintf(backups[round / 2], 300, "%s/b%d.kvs", bdir, round / 2);
            cr_assert_eq(kv_backup(s, backups[round / 2]), KV_OK, "%s", kv_last_error());
        } else {
            cr_assert_eq(kv_snapshot(s), KV_OK, "%s", kv_last_error());
        }
    }
    atomic_store(&l.stop, true);
    for (int i = 0; i < 2; i++)
        pthread_join(w[i], NULL);
    pthread_join(r, NULL);
    cr_assert_eq(atomic_load(&l.torn), 0, "readers saw a torn pair");
    cr_assert_gt(atomic_load(&l.writes), 100);
    dt_print before = dt_fingerprint(s);
    kv_metrics m;
    kv_metrics_read(s, &m, sizeof m);
    cr_assert_geq(m.snapshots, 6);
    kv_close(s);

    cr_assert_eq(kv_open_config(&c, &s), KV_OK, "%s", kv_last_error());
    cr_assert(dt_print_eq(before, dt_fingerprint(s)), "the reopened store is exactly as it was");
    kv_metrics m2;
    kv_metrics_read(s, &m2, sizeof m2);
    cr_assert_eq(m2.revision, m.revision);
    kv_close(s);

    /* Each backup is one consistent instant: no pair torn. */
    for (int i = 0; i < 3; i++) {
        char rd[320];
        snprintf(rd, sizeof rd, "%s/r%d", bdir, i);
        cr_assert_eq(kv_restore(backups[i], rd), KV_OK, "%s", kv_last_error());
        kv_store *b = dt_open(rd, KV_FSYNC_NO);
        cr_assert_eq(torn_pairs(b), 0, "backup %d holds a torn pair", i);
        kv_close(b);
        dt_rmdir(rd);
    }
    dt_rmdir(bdir);
    dt_rmdir(dir);
    free(dir);
    free(bdir);
}
