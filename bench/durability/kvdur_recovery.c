/*
 * kvdur_recovery.c - how fast a durable libkv store opens: builds a store
 * of --keys keys (12-byte keys, 64-byte values) whose snapshot covers them
 * all, then --tail more writes to the log after the snapshot (overwrites of
 * every (keys/tail)-th key), closes it, and times kv_open_config on it
 * --rounds times. Reports, per open, the wall time of kv_open_config and
 * the recovery's own elapsed_us (kv_recovery_read), keys/s from each, and
 * their medians. --cold drops the store's files from the page cache before
 * each open (posix_fadvise; only these files), so the open reads the disk.
 *
 * --emit-resp prints the same final state (keys and values) as Redis SET
 * commands in RESP, for `redis-cli --pipe` (run.sh loads Redis with it).
 *
 *   kvdur_recovery [--dir /var/tmp] [--keys 1000000] [--tail 100000]
 *                  [--rounds 3] [--cold] [--capacity N]
 *   kvdur_recovery --emit-resp [--keys N] [--tail T]
 *
 * The store is built with fsync=no (building is not measured) and no
 * automatic snapshots; it is reopened with the defaults (fsync=everysec,
 * initial_capacity 1024: recovery grows the index as it loads; --capacity
 * sets initial_capacity for the reopen).
 */
#include <errno.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "dur.h"
#include "kv.h"

static uint64_t nkeys = 1000000, ntail = 100000;
static size_t capacity; /* initial_capacity at reopen; 0: the default */

/* Generation of key n's value in the final state: 1 if the tail wrote it. */
static uint64_t stride(void)
{
    return ntail ? (nkeys / ntail ? nkeys / ntail : 1) : 0;
}
static uint64_t final_gen(uint64_t n)
{
    uint64_t s = stride();
    return s && n % s == 0 && n / s < ntail ? 1 : 0;
}

static int emit_resp(void)
{
    char k[DUR_KEY_LEN], v[DUR_VAL_LEN];
    for (uint64_t n = 0; n < nkeys; n++) {
        dur_key(n, k);
        dur_value(n, final_gen(n), v);
        printf("*3\r\n$3\r\nSET\r\n$%d\r\n%.*s\r\n$%d\r\n%.*s\r\n", DUR_KEY_LEN, DUR_KEY_LEN, k,
               DUR_VAL_LEN, DUR_VAL_LEN, v);
    }
    return fflush(stdout) == 0 ? 0 : 1;
}

static int fail(const char *what, int rc)
{
    fprintf(stderr, "kvdur_recovery: %s: %s %s\n", what, kv_strerror(rc), kv_last_error());
    return 1;
}

static int build(const char *dir)
{
    kv_config c;
    kv_config_init(&c, sizeof c);
    c.dir = dir;
    c.fsync = KV_FSYNC_NO;
    c.initial_capacity = nkeys;
    c.snapshot_log_bytes = 0;
    c.snapshot_interval_s = 0;
    kv_store *s;
    int rc = kv_open_config(&c, &s);
    if (rc != KV_OK)
        return fail("open to build", rc);
    enum { BATCH = 1000 };
    static char keys[BATCH][DUR_KEY_LEN], vals[BATCH][DUR_VAL_LEN];
    kv_pair p[BATCH];
    for (uint64_t i = 0; i < nkeys; i += BATCH) {
        size_t n = nkeys - i < BATCH ? (size_t)(nkeys - i) : BATCH;
        for (size_t j = 0; j < n; j++) {
            dur_key(i + j, keys[j]);
            dur_value(i + j, 0, vals[j]);
            p[j] = (kv_pair){keys[j], DUR_KEY_LEN, vals[j], DUR_VAL_LEN};
        }
        if ((rc = kv_mset(s, p, n, NULL)) != KV_OK)
            return fail("load", rc);
    }
    uint64_t t0 = dur_now_ns();
    if ((rc = kv_snapshot(s)) != KV_OK)
        return fail("snapshot", rc);
    double snap_s = (double)(dur_now_ns() - t0) / 1e9;
    /* The tail: one log record per write, as ordinary traffic makes them. */
    char k[DUR_KEY_LEN], v[DUR_VAL_LEN];
    for (uint64_t i = 0; i < ntail; i++) {
        uint64_t n = (i * stride()) % nkeys;
        dur_key(n, k);
        dur_value(n, 1, v);
        if ((rc = kv_set(s, k, DUR_KEY_LEN, v, DUR_VAL_LEN, NULL)) != KV_OK)
            return fail("tail write", rc);
    }
    kv_close(s);
    unsigned files;
    uint64_t bytes = dur_tree_bytes(dir, &files);
    printf("built: %llu keys in a snapshot (taken in %.2f s), then %llu writes in the log; "
           "%u files, %.1f MiB on disk\n",
           (unsigned long long)nkeys, snap_s, (unsigned long long)ntail, files,
           (double)bytes / (1 << 20));
    return 0;
}

/* Spot checks after an open: the key count and a few values. */
static int check(kv_store *s)
{
    kv_metrics m;
    kv_metrics_read(s, &m, sizeof m);
    if (m.keys != nkeys) {
        fprintf(stderr, "kvdur_recovery: %llu keys after open, expected %llu\n",
                (unsigned long long)m.keys, (unsigned long long)nkeys);
        return -1;
    }
    uint64_t probe[] = {0, 1, nkeys / 2, nkeys - 1};
    for (size_t i = 0; i < sizeof probe / sizeof probe[0]; i++) {
        char k[DUR_KEY_LEN], want[DUR_VAL_LEN], got[DUR_VAL_LEN];
        size_t len;
        dur_key(probe[i], k);
        dur_value(probe[i], final_gen(probe[i]), want);
        if (kv_get_into(s, k, DUR_KEY_LEN, got, sizeof got, &len, NULL) != KV_OK ||
            len != DUR_VAL_LEN || memcmp(got, want, DUR_VAL_LEN) != 0) {
            fprintf(stderr, "kvdur_recovery: key %.12s has the wrong value after open\n", k);
            return -1;
        }
    }
    return 0;
}

int main(int argc, char **argv)
{
    const char *base = "/var/tmp";
    unsigned rounds = 3;
    bool cold = false, resp = false;
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        bool v = i + 1 < argc;
        if (!strcmp(a, "--dir") && v) base = argv[++i];
        else if (!strcmp(a, "--keys") && v) nkeys = strtoull(argv[++i], NULL, 10);
        else if (!strcmp(a, "--tail") && v) ntail = strtoull(argv[++i], NULL, 10);
        else if (!strcmp(a, "--rounds") && v) rounds = (unsigned)atoi(argv[++i]);
        else if (!strcmp(a, "--capacity") && v) capacity = strtoull(argv[++i], NULL, 10);
        else if (!strcmp(a, "--cold")) cold = true;
        else if (!strcmp(a, "--emit-resp")) resp = true;
        else {
            fprintf(stderr, "usage: kvdur_recovery [--dir DIR] [--keys N] [--tail N] "
                            "[--rounds N] [--cold] [--capacity N] | --emit-resp [--keys N] [--tail N]\n");
            return 2;
        }
    }
    if (nkeys == 0 || ntail > nkeys || rounds == 0) {
        fprintf(stderr, "kvdur_recovery: need 0 < keys, tail <= keys, rounds > 0\n");
        return 2;
    }
    if (resp)
        return emit_resp();

    char *top = dur_mkdtemp(base, "recovery");
    if (!top) {
        fprintf(stderr, "kvdur_recovery: mkdtemp under %s: %s\n", base, strerror(errno));
        return 1;
    }
    char dir[4096];
    snprintf(dir, sizeof dir, "%s/store", top);
    printf("kvdur_recovery: libkv %s, %llu keys of %d bytes, %d-byte values, tail %llu, "
           "dir %s (%s), %s page cache, initial_capacity %s at open\n",
           kv_version(), (unsigned long long)nkeys, DUR_KEY_LEN, DUR_VAL_LEN,
           (unsigned long long)ntail, base, dur_fstype(base),
           cold ? "files dropped from the" : "files in the",
           capacity ? "= keys" : "default");
    int status = build(dir);
    double *wall = calloc(rounds, sizeof *wall), *rec = calloc(rounds, sizeof *rec);
    unsigned done = 0;
    for (unsigned r = 0; status == 0 && r < rounds; r++) {
        if (cold)
            dur_drop_cache(dir);
        kv_config c;
        kv_config_init(&c, sizeof c);
        c.dir = dir;
        if (capacity)
            c.initial_capacity = capacity;
        kv_store *s;
        uint64_t t0 = dur_now_ns();
        int rc = kv_open_config(&c, &s);
        uint64_t t1 = dur_now_ns();
        if (rc != KV_OK) {
            status = fail("open", rc);
            break;
        }
        kv_recovery rv = {0};
        kv_recovery_read(s, &rv, sizeof rv);
        if (check(s) != 0)
            status = 1;
        kv_close(s);
        wall[done] = (double)(t1 - t0) / 1e3;
        rec[done] = (double)rv.elapsed_us;
        printf("open %u: kv_open_config %.1f ms, recovery elapsed_us %llu (%.1f ms): "
               "%llu keys, revision %llu, snapshot_revision %llu, %llu log records replayed, "
               "%llu segments; %.0f keys/s (wall), %.0f keys/s (elapsed_us)\n",
               r + 1, wall[done] / 1e3, (unsigned long long)rv.elapsed_us,
               (double)rv.elapsed_us / 1e3, (unsigned long long)rv.keys,
               (unsigned long long)rv.revision, (unsigned long long)rv.snapshot_revision,
               (unsigned long long)rv.records, (unsigned long long)rv.segments,
               (double)rv.keys * 1e6 / wall[done],
               rv.elapsed_us ? (double)rv.keys * 1e6 / (double)rv.elapsed_us : 0.0);
        done++;
    }
    if (done) {
        double w = dur_median(wall, done), e = dur_median(rec, done);
        printf("median of %u opens: kv_open_config %.1f ms = %.0f keys/s; recovery elapsed_us "
               "%.0f = %.0f keys/s\n",
               done, w / 1e3, (double)nkeys * 1e6 / w, e, e > 0 ? (double)nkeys * 1e6 / e : 0.0);
        /* One line for run.sh to parse. */
        printf("RESULT libkv_open_ms %.3f libkv_recovery_ms %.3f keys %llu\n", w / 1e3, e / 1e3,
               (unsigned long long)nkeys);
    }
    if (dur_rmtree(top) != 0)
        fprintf(stderr, "kvdur_recovery: could not remove %s\n", top);
    free(top);
    free(wall);
    free(rec);
    return status;
}
