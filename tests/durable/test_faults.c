/*
 * test_faults.c - durable stores on a failing disk (white-box: the I/O
 * layer is replaced by faultio.h through kv__open_with_io).
 *
 * Out of space on the log: the failing write reports KV_NO_SPACE, later
 * writes are refused and change nothing, reads go on, and writing resumes
 * once space is back. Any other I/O error, and a failed fsync, stop writes
 * for good. A failing snapshot changes nothing and the store goes on. A
 * power cut at any operation, with what was not synced partly lost, always
 * reopens, and under fsync=always keeps every acknowledged write.
 */
#include "durtest.h"
#include "faultio.h"

#include "durable.h"

static kv_store *fopen_store(const char *dir, int policy, fault_io *f, uint64_t segment_bytes)
{
    kv_config c;
    kv_config_init(&c, sizeof c);
    c.dir = dir;
    c.fsync = policy;
    c.snapshot_log_bytes = 0;
    if (segment_bytes)
        c.segment_bytes = segment_bytes;
    kv_store *s = NULL;
    int rc = kv__open_with_io(&c, &f->io, &s);
    DT_CHECK(rc == KV_OK, "open: %s: %s", kv_strerror(rc), kv_last_error());
    return s;
}

static void set_n(kv_store *s, const char *prefix, int n)
{
    for (int i = 0; i < n; i++) {
        char k[64];
        snprintf(k, sizeof k, "%s%d", prefix, i);
        DT_CHECK(kv_set(s, k, strlen(k), k, strlen(k), NULL) == KV_OK, "set %s", k);
    }
}

static void expect_n(kv_store *s, const char *prefix, int n)
{
    for (int i = 0; i < n; i++) {
        char k[64];
        snprintf(k, sizeof k, "%s%d", prefix, i);
        DT_CHECK(kv_exists(s, k, strlen(k), NULL) == KV_OK, "%s is there", k);
    }
}

/* Retries a set until the store accepts it again (at most ~20 s). */
static int set_until_ok(kv_store *s, const char *k)
{
    int rc = KV_IO;
    for (int i = 0; i < 200 && rc != KV_OK; i++) {
        rc = kv_set(s, k, strlen(k), "v", 1, NULL);
        if (rc != KV_OK)
            usleep(100000);
    }
    return rc;
}

Test(faults, disk_full_on_the_log_refuses_writes_then_resumes)
{
    char *dir = dt_tmpdir("enospc");
    fault_io f;
    fault_init(&f, 1);
    kv_store *s = fopen_store(dir, KV_FSYNC_ALWAYS, &f, 0);
    set_n(s, "before", 10);
    fault_arm(&f, F_WRITE, 0, ENOSPC, true);
    cr_assert_eq(kv_set(s, "x", 1, "1", 1, NULL), KV_NO_SPACE);
    /* While the disk is full: refused, nothing changes, reads go on. */
    cr_assert_eq(kv_set(s, "y", 1, "1", 1, NULL), KV_NO_SPACE);
    cr_assert_eq(kv_exists(s, "y", 1, NULL), KV_NOT_FOUND);
    kv_pair p[2] = {{"m1", 2, "a", 1}, {"m2", 2, "b", 1}};
    cr_assert_eq(kv_mset(s, p, 2, NULL), KV_NO_SPACE);
    cr_assert_eq(kv_exists(s, "m1", 2, NULL), KV_NOT_FOUND);
    expect_n(s, "before", 10);
    fault_clear(&f);
    cr_assert_eq(set_until_ok(s, "z"), KV_OK, "writes resume once space is back");
    set_n(s, "after", 10);
    kv_close(s);

    s = dt_open(dir, KV_FSYNC_ALWAYS);
    expect_n(s, "before", 10);
    expect_n(s, "after", 10);
    cr_assert_eq(kv_exists(s, "z", 1, NULL), KV_OK);
    cr_assert_eq(kv_exists(s, "x", 1, NULL), KV_OK, "the batch that hit the full disk was retried");
    cr_assert_eq(kv_exists(s, "y", 1, NULL), KV_NOT_FOUND);
    kv_close(s);
    dt_rmdir(dir);
    free(dir);
}

Test(faults, disk_full_when_a_new_segment_is_created_refuses_then_resumes)
{
    char *dir = dt_tmpdir("enospc-seg");
    fault_io f;
    fault_init(&f, 2);
    kv_store *s = fopen_store(dir, KV_FSYNC_EVERYSEC, &f, 4096);
    fault_arm(&f, F_OPEN, 0, ENOSPC, true);
    char v[600] = {0};
    int rc = KV_OK, acked = 0;
    for (int i = 0; i < 100 && rc == KV_OK; i++) {
        rc = kv_set(s, &i, sizeof i, v, sizeof v, NULL);
        acked += rc == KV_OK;
    }
    cr_assert_eq(rc, KV_NO_SPACE);
    cr_assert_lt(acked, 10);
    fault_clear(&f);
    cr_assert_eq(set_until_ok(s, "resumed"), KV_OK);
    kv_close(s);
    s = dt_open(dir, KV_FSYNC_EVERYSEC);
    for (int i = 0; i < acked; i++)
        cr_assert_eq(kv_exists(s, &i, sizeof i, NULL), KV_OK);
    cr_assert_eq(kv_exists(s, "resumed", 7, NULL), KV_OK);
    kv_close(s);
    dt_rmdir(dir);
    free(dir);
}

static void final_failure(int kind, int err)
{
    char *dir = dt_tmpdir("eio");
    fault_io f;
    fault_init(&f, 3);
    kv_store *s = fopen_store(dir, KV_FSYNC_ALWAYS, &f, 0);
    set_n(s, "before", 10);
    fault_arm(&f, kind, 0, err, false);
    cr_assert_eq(kv_set(s, "x", 1, "1", 1, NULL), KV_IO);
    fault_clear(&f);
    /* Final: the store says so on every later write, and reads go on. */
    cr_assert_eq(kv_set(s, "y", 1, "1", 1, NULL), KV_IO);
    cr_assert_eq(kv_exists(s, "y", 1, NULL), KV_NOT_FOUND);
    cr_assert_eq(kv_sync(s, 0), KV_IO);
    expect_n(s, "before", 10);
    kv_metrics m;
    kv_metrics_read(s, &m, sizeof m);
    cr_assert_lt(m.durable_revision, m.revision);
    kv_close(s);
    s = dt_open(dir, KV_FSYNC_ALWAYS);
    expect_n(s, "before", 10);
    cr_assert_eq(kv_exists(s, "y", 1, NULL), KV_NOT_FOUND);
    cr_assert_eq(kv_set(s, "y", 1, "1", 1, NULL), KV_OK, "a reopen clears it");
    kv_close(s);
    dt_rmdir(dir);
    free(dir);
}

Test(faults, an_io_error_on_a_log_write_stops_writes_until_reopened) { final_failure(F_WRITE, EIO); }
Test(faults, a_failed_fsync_stops_writes_until_reopened) { final_failure(F_SYNC, EIO); }
Test(faults, a_full_disk_reported_by_fsync_is_final_too) { final_failure(F_SYNC, ENOSPC); }

static void failed_snapshot(int kind, int err, int want)
{
    char *dir = dt_tmpdir("snapfail");
    fault_io f;
    fault_init(&f, 4);
    kv_store *s = fopen_store(dir, KV_FSYNC_NO, &f, 0);
    set_n(s, "a", 50);
    cr_assert_eq(kv_snapshot(s), KV_OK);
    set_n(s, "b", 50);
    dt_print before = dt_fingerprint(s);
    int snaps = dt_count(dir, "snap-"), logs = dt_count(dir, "log-");
    fault_arm(&f, kind, 0, err, false);
    cr_assert_eq(kv_snapshot(s), want, "%s", kv_last_error());
    fault_clear(&f);
    cr_assert_eq(dt_count(dir, "snap-"), snaps, "no new or half snapshot");
    cr_assert_eq(dt_count(dir, "log-"), logs, "no segment removed");
    cr_assert_null(dt_find(dir, "snap-xxxx"), "no temporary file left");
    kv_metrics m;
    kv_metrics_read(s, &m, sizeof m);
    cr_assert_eq(m.snapshot_failures, 1);
    set_n(s, "c", 50); /* writes go on */
    dt_print during = dt_fingerprint(s);
    cr_assert_eq(kv_snapshot(s), KV_OK, "the next snapshot works");
    kv_close(s);
    s = dt_open(dir, KV_FSYNC_NO);
    cr_assert(dt_print_eq(during, dt_fingerprint(s)));
    cr_assert(!dt_print_eq(before, during));
    kv_close(s);
    dt_rmdir(dir);
    free(dir);
}

Test(faults, snapshot_create_fails_for_lack_of_space) { failed_snapshot(F_OPEN, ENOSPC, KV_NO_SPACE); }
Test(faults, snapshot_write_fails_for_lack_of_space) { failed_snapshot(F_WRITE, ENOSPC, KV_NO_SPACE); }
Test(faults, snapshot_write_fails_with_eio) { failed_snapshot(F_WRITE, EIO, KV_IO); }
Test(faults, snapshot_fsync_fails) { failed_snapshot(F_SYNC, EIO, KV_IO); }
Test(faults, snapshot_rename_fails) { failed_snapshot(F_RENAME, EIO, KV_IO); }

/* ---- power loss -------------------------------------------------------- */

#define PK 12 /* keys in play */

typedef struct model {
    int val[PK]; /* -1: absent, else the op that wrote it */
} model;

/* The store's state as a model; every key's value is the decimal op id. */
static model read_model(kv_store *s)
{
    model m;
    for (int k = 0; k < PK; k++) {
        char key[8];
        snprintf(key, sizeof key, "p%d", k);
        kv_value v;
        int rc = kv_get(s, key, strlen(key), &v);
        m.val[k] = -1;
        if (rc == KV_OK) {
            char buf[16] = {0};
            memcpy(buf, v.data, v.len < 15 ? v.len : 15);
            m.val[k] = atoi(buf);
            kv_value_free(&v);
        }
    }
    return m;
}

/* Runs random ops until the power cut stops them; history[i] is the state
 * after i acknowledged ops. Returns the number acknowledged. */
static int run_until_cut(kv_store *s, fault_io *f, unsigned *seed, model *history, int max)
{
    model cur;
    for (int k = 0; k < PK; k++)
        cur.val[k] = -1;
    history[0] = cur;
    int acked = 0;
    for (int op = 1; op < max; op++) {
        model next = cur;
        char v[16];
        snprintf(v, sizeof v, "%d", op);
        int r = rand_r(seed) % 10, rc;
        if (r < 5) {
            int k = rand_r(seed) % PK;
            char key[8];
            snprintf(key, sizeof key, "p%d", k);
            rc = kv_set(s, key, strlen(key), v, strlen(v), NULL);
            next.val[k] = op;
        } else if (r < 8) {
            kv_pair p[3];
            char keys[3][8];
            for (int j = 0; j < 3; j++) {
                int k = (rand_r(seed) % PK + j * 5) % PK;
                snprintf(keys[j], 8, "p%d", k);
                p[j] = (kv_pair){keys[j], strlen(keys[j]), v, strlen(v)};
                next.val[k] = op;
            }
            rc = kv_mset(s, p, 3, NULL);
        } else if (r < 9) {
            int k = rand_r(seed) % PK;
            char key[8];
            snprintf(key, sizeof key, "p%d", k);
            rc = kv_delete(s, key, strlen(key), NULL);
            if (rc == KV_NOT_FOUND)
                rc = KV_OK;
            next.val[k] = -1;
        } else {
            rc = kv_snapshot(s);
            if (rc != KV_OK && !fault_is_dead(f))
                DT_CHECK(0, "snapshot failed before the cut: %s", kv_strerror(rc));
            if (rc != KV_OK)
                return acked;
            continue;
        }
        history[acked + 1] = next; /* what the failing op would have made */
        if (rc != KV_OK)
            return acked;
        cur = next;
        acked++;
    }
    return acked;
}

static void power_loss(int policy, int rounds)
{
    char *dir = dt_tmpdir("power");
    static model history[400];
    int kept_all = 0, torn = 0;
    for (int round = 0; round < rounds; round++) {
        dt_clear(dir);
        unsigned seed = 1000u + (unsigned)round * 7919u;
        fault_io f;
        fault_init(&f, seed);
        kv_store *s = fopen_store(dir, policy, &f, 4096);
        fault_power_cut(&f, 1 + rand_r(&seed) % 400);
        int acked = run_until_cut(s, &f, &seed, history, 399);
        kv_close(s);
        fault_lose(&f);

        kv_config c;
        kv_config_init(&c, sizeof c);
        c.dir = dir;
        int rc = kv_open_config(&c, &s);
        DT_CHECK(rc == KV_OK, "round %d: reopen after power loss: %s: %s", round,
                 kv_strerror(rc), kv_last_error());
        model got = read_model(s);
        kv_recovery r;
        kv_recovery_read(s, &r, sizeof r);
        torn += r.torn_bytes > 0;
        kv_close(s);
        int lo = policy == KV_FSYNC_ALWAYS ? acked : 0, match = -1;
        for (int i = acked + 1; i >= lo && match < 0; i--)
            if (memcmp(&got, &history[i], sizeof got) == 0)
                match = i;
        DT_CHECK(match >= 0, "round %d: the recovered state is not the state after any "
                 "prefix of the %d acknowledged ops (policy %d)", round, acked, policy);
        kept_all += match >= acked;
    }
    if (policy == KV_FSYNC_ALWAYS)
        cr_assert_eq(kept_all, rounds);
    cr_assert_gt(torn, 0, "some cuts left a torn log tail to recover from");
    cr_log_info("policy %d: %d rounds, %d with a torn tail, %d kept every acked op", policy,
                rounds, torn, kept_all);
    dt_rmdir(dir);
    free(dir);
}

Test(faults, power_loss_under_fsync_always_keeps_every_acknowledged_write, .timeout = 240)
{
    power_loss(KV_FSYNC_ALWAYS, 60);
}

Test(faults, power_loss_under_fsync_everysec_recovers_a_prefix, .timeout = 240)
{
    power_loss(KV_FSYNC_EVERYSEC, 40);
}

Test(faults, power_loss_under_fsync_no_recovers_a_prefix, .timeout = 240)
{
    power_loss(KV_FSYNC_NO, 40);
}
