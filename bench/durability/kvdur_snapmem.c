/*
 * kvdur_snapmem.c - what a snapshot costs in memory: a durable libkv store
 * of --keys keys (12-byte keys, 64-byte values) under a 50% get / 50% set
 * load from --threads threads, resident memory (/proc/self/statm) sampled
 * every --interval-ms by a thread of its own. After a warm-up, each round
 * samples --steady-ms of steady state, then calls kv_snapshot in the main
 * thread (the load goes on), then waits --after-ms. Per round: the median
 * RSS of the steady window, the peak RSS from the snapshot's start to its
 * end, their ratio, the snapshot's duration, and the load's rate before
 * and during the snapshot (a pause would show there).
 *
 *   kvdur_snapmem [--dir /var/tmp] [--keys 1000000] [--threads 2]
 *                 [--rounds 3] [--warmup-ms 2000] [--steady-ms 3000]
 *                 [--after-ms 1000] [--interval-ms 10]
 *
 * The store: fsync=everysec (the default), no automatic snapshots, sized
 * for the keys; loaded with kv_mset before the load starts.
 */
#include <errno.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "dur.h"
#include "kv.h"

static kv_store *store;
static uint64_t nkeys = 1000000;
static atomic_bool stop;
static atomic_uint_fast64_t total_ops, failed_ops;

typedef struct sample {
    uint64_t t_ns, rss, ops;
} sample;
static sample *samples;
static size_t nsamples, max_samples;
static unsigned interval_ms = 10;

static void *worker(void *arg)
{
    uint64_t seed = (uintptr_t)arg * 0x9e3779b97f4a7c15ull + 1, n = 0;
    char k[DUR_KEY_LEN], v[DUR_VAL_LEN];
    while (!atomic_load_explicit(&stop, memory_order_relaxed)) {
        uint64_t r = dur_rand(&seed), key = (r >> 1) % nkeys;
        dur_key(key, k);
        int rc;
        size_t len;
        if (r & 1) {
            dur_value(key, ++n, v);
            rc = kv_set(store, k, DUR_KEY_LEN, v, DUR_VAL_LEN, NULL);
        } else {
            rc = kv_get_into(store, k, DUR_KEY_LEN, v, sizeof v, &len, NULL);
        }
        if (rc != KV_OK)
            atomic_fetch_add_explicit(&failed_ops, 1, memory_order_relaxed);
        atomic_fetch_add_explicit(&total_ops, 1, memory_order_relaxed);
    }
    return NULL;
}

static void *sampler(void *arg)
{
    (void)arg;
    uint64_t next = dur_now_ns();
    while (!atomic_load(&stop) && nsamples < max_samples) {
        samples[nsamples] = (sample){dur_now_ns(), dur_rss_self(),
                                     atomic_load_explicit(&total_ops, memory_order_relaxed)};
        /* Published to main only after pthread_join. */
        nsamples++;
        next += (uint64_t)interval_ms * 1000000ull;
        uint64_t now = dur_now_ns();
        if (next > now) {
            struct timespec ts = {(time_t)((next - now) / 1000000000ull),
                                  (long)((next - now) % 1000000000ull)};
            nanosleep(&ts, NULL);
        }
    }
    return NULL;
}

typedef struct round_mark {
    uint64_t steady_ns, snap_ns, snap_end_ns, end_ns, rss_at_end;
    int rc;
} round_mark;

/* Ops/s between the first and last sample in [a, b). */
static double rate(uint64_t a, uint64_t b)
{
    size_t i = 0, j;
    while (i < nsamples && samples[i].t_ns < a)
        i++;
    for (j = i; j + 1 < nsamples && samples[j + 1].t_ns < b; j++) {
    }
    if (j <= i || j >= nsamples)
        return 0;
    return (double)(samples[j].ops - samples[i].ops) * 1e9 / (double)(samples[j].t_ns - samples[i].t_ns);
}

int main(int argc, char **argv)
{
    const char *base = "/var/tmp";
    unsigned nthreads = 2, rounds = 3, warmup_ms = 2000, steady_ms = 3000, after_ms = 1000;
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        bool v = i + 1 < argc;
        if (!strcmp(a, "--dir") && v) base = argv[++i];
        else if (!strcmp(a, "--keys") && v) nkeys = strtoull(argv[++i], NULL, 10);
        else if (!strcmp(a, "--threads") && v) nthreads = (unsigned)atoi(argv[++i]);
        else if (!strcmp(a, "--rounds") && v) rounds = (unsigned)atoi(argv[++i]);
        else if (!strcmp(a, "--warmup-ms") && v) warmup_ms = (unsigned)atoi(argv[++i]);
        else if (!strcmp(a, "--steady-ms") && v) steady_ms = (unsigned)atoi(argv[++i]);
        else if (!strcmp(a, "--after-ms") && v) after_ms = (unsigned)atoi(argv[++i]);
        else if (!strcmp(a, "--interval-ms") && v) interval_ms = (unsigned)atoi(argv[++i]);
        else {
            fprintf(stderr, "usage: kvdur_snapmem [--dir DIR] [--keys N] [--threads N] "
                            "[--rounds N] [--warmup-ms MS] [--steady-ms MS] [--after-ms MS] "
                            "[--interval-ms MS]\n");
            return 2;
        }
    }
    if (nkeys == 0 || nthreads == 0 || rounds == 0 || interval_ms == 0 || steady_ms == 0) {
        fprintf(stderr, "kvdur_snapmem: keys, threads, rounds, steady-ms and interval-ms must be > 0\n");
        return 2;
    }
    char *dir = dur_mkdtemp(base, "snapmem");
    if (!dir) {
        fprintf(stderr, "kvdur_snapmem: mkdtemp under %s: %s\n", base, strerror(errno));
        return 1;
    }
    printf("kvdur_snapmem: libkv %s, %llu keys of %d bytes, %d-byte values, %u threads 50%% "
           "get / 50%% set, RSS every %u ms, dir %s (%s)\n",
           kv_version(), (unsigned long long)nkeys, DUR_KEY_LEN, DUR_VAL_LEN, nthreads,
           interval_ms, base, dur_fstype(base));
    uint64_t rss0 = dur_rss_self();
    kv_config c;
    kv_config_init(&c, sizeof c);
    c.dir = dir;
    c.initial_capacity = nkeys;
    c.snapshot_log_bytes = 0;
    c.snapshot_interval_s = 0;
    int rc = kv_open_config(&c, &store), status = 0;
    if (rc != KV_OK) {
        fprintf(stderr, "kvdur_snapmem: open: %s %s\n", kv_strerror(rc), kv_last_error());
        dur_rmtree(dir);
        return 1;
    }
    enum { BATCH = 1000 };
    static char keys[BATCH][DUR_KEY_LEN], vals[BATCH][DUR_VAL_LEN];
    kv_pair p[BATCH];
    for (uint64_t i = 0; rc == KV_OK && i < nkeys; i += BATCH) {
        size_t n = nkeys - i < BATCH ? (size_t)(nkeys - i) : BATCH;
        for (size_t j = 0; j < n; j++) {
            dur_key(i + j, keys[j]);
            dur_value(i + j, 0, vals[j]);
            p[j] = (kv_pair){keys[j], DUR_KEY_LEN, vals[j], DUR_VAL_LEN};
        }
        rc = kv_mset(store, p, n, NULL);
    }
    if (rc != KV_OK) {
        fprintf(stderr, "kvdur_snapmem: load: %s\n", kv_strerror(rc));
        kv_close(store);
        dur_rmtree(dir);
        return 1;
    }
    kv_metrics m;
    kv_metrics_read(store, &m, sizeof m);
    printf("loaded: RSS %.1f MiB (%.1f MiB before opening), libkv memory_bytes %.1f MiB\n",
           (double)dur_rss_self() / (1 << 20), (double)rss0 / (1 << 20),
           (double)m.memory_bytes / (1 << 20));

    uint64_t total_ms = warmup_ms + (uint64_t)rounds * (steady_ms + after_ms + 60000);
    max_samples = (size_t)(total_ms / interval_ms) + 16;
    samples = calloc(max_samples, sizeof *samples);
    round_mark *mk = calloc(rounds, sizeof *mk);
    pthread_t *tid = calloc(nthreads, sizeof *tid), stid;
    if (!samples || !mk || !tid)
        return 1;
    for (unsigned t = 0; t < nthreads; t++)
        pthread_create(&tid[t], NULL, worker, (void *)(uintptr_t)(t + 1));
    pthread_create(&stid, NULL, sampler, NULL);
    dur_sleep_ms(warmup_ms);
    for (unsigned r = 0; r < rounds; r++) {
        mk[r].steady_ns = dur_now_ns();
        dur_sleep_ms(steady_ms);
        mk[r].snap_ns = dur_now_ns();
        mk[r].rc = kv_snapshot(store);
        mk[r].snap_end_ns = dur_now_ns();
        mk[r].rss_at_end = dur_rss_self();
        if (mk[r].rc != KV_OK) {
            fprintf(stderr, "kvdur_snapmem: snapshot: %s %s\n", kv_strerror(mk[r].rc),
                    kv_last_error());
            status = 1;
        }
        dur_sleep_ms(after_ms);
        mk[r].end_ns = dur_now_ns();
    }
    atomic_store(&stop, true);
    for (unsigned t = 0; t < nthreads; t++)
        pthread_join(tid[t], NULL);
    pthread_join(stid, NULL);
    kv_metrics_read(store, &m, sizeof m);

    double *ratios = calloc(rounds, sizeof *ratios), *steadies = calloc(rounds, sizeof *steadies);
    double worst = 0, peak_all = 0;
    double *win = calloc(nsamples + 1, sizeof *win);
    for (unsigned r = 0; r < rounds; r++) {
        size_t n = 0;
        uint64_t peak = mk[r].rss_at_end;
        size_t during = 0;
        for (size_t i = 0; i < nsamples; i++) {
            if (samples[i].t_ns >= mk[r].steady_ns && samples[i].t_ns < mk[r].snap_ns)
                win[n++] = (double)samples[i].rss;
            if (samples[i].t_ns >= mk[r].snap_ns && samples[i].t_ns <= mk[r].snap_end_ns) {
                during++;
                if (samples[i].rss > peak)
                    peak = samples[i].rss;
            }
        }
        double steady = dur_median(win, n);
        ratios[r] = steady > 0 ? (double)peak / steady : 0;
        steadies[r] = steady;
        if (ratios[r] > worst)
            worst = ratios[r];
        if ((double)peak > peak_all)
            peak_all = (double)peak;
        printf("round %u: steady median RSS %.1f MiB (%zu samples), snapshot %.0f ms (%zu "
               "samples), peak RSS during it %.1f MiB, ratio %.3f; load %.0f ops/s steady, "
               "%.0f ops/s during the snapshot\n",
               r + 1, steady / (1 << 20), n, (double)(mk[r].snap_end_ns - mk[r].snap_ns) / 1e6,
               during, (double)peak / (1 << 20), ratios[r],
               rate(mk[r].steady_ns, mk[r].snap_ns), rate(mk[r].snap_ns, mk[r].snap_end_ns));
    }
    double med_steady = dur_median(steadies, rounds), med_ratio = dur_median(ratios, rounds);
    printf("summary: steady RSS median %.1f MiB, peak during snapshots %.1f MiB, peak/steady "
           "median %.3f, worst %.3f over %u snapshots; %llu snapshots counted by libkv; %llu "
           "failed operations; libkv memory_bytes at the end %.1f MiB\n",
           med_steady / (1 << 20), peak_all / (1 << 20), med_ratio, worst, rounds,
           (unsigned long long)m.snapshots, (unsigned long long)atomic_load(&failed_ops),
           (double)m.memory_bytes / (1 << 20));
    printf("RESULT libkv_steady_mib %.1f libkv_peak_mib %.1f libkv_ratio %.3f libkv_worst %.3f\n",
           med_steady / (1 << 20), peak_all / (1 << 20), med_ratio, worst);
    if (atomic_load(&failed_ops))
        status = 1;
    kv_close(store);
    if (dur_rmtree(dir) != 0)
        fprintf(stderr, "kvdur_snapmem: could not remove %s\n", dir);
    free(dir);
    return status;
}
