/*
 * kvdur_bench.c - write throughput of an embedded durable store: libkv in
 * memory, libkv on a directory with fsync always / everysec / no, and
 * LMDB with a durable commit per write, side by side in one run.
 *
 * Every run: a fresh directory under --dir, the key space (--keys, default
 * 100k) preloaded, then T threads SET random keys (12 bytes, 64-byte
 * values) for --seconds; each write's latency goes into a histogram.
 * Runs are interleaved (for each thread count, each round runs every
 * contender once) so that a busy moment of a shared machine hits them
 * alike. Reports per-run ops/s, the median of the rounds, the medians of
 * the runs' p50 and p99 latencies, and ratios against LMDB and against
 * libkv in memory at the same thread count.
 *
 * libkv: kv_set; durable stores with the library's defaults otherwise
 * (64 MiB segments, a snapshot every 64 MiB of log), preloaded with
 * fsync=no and reopened with the policy measured. LMDB: default env flags
 * (MDB_NOSYNC not set, so mdb_txn_commit fsyncs), one write transaction
 * per SET; LMDB lets one write transaction run at a time and the others
 * wait on its writer mutex.
 *
 *   kvdur_bench [--dir /var/tmp] [--threads 1,2,4,16,64] [--rounds 3]
 *               [--seconds 2] [--keys 100000] [--no-preload]
 *               [--contenders mem,always,everysec,no,lmdb] [--json]
 *   With --json the table goes to stderr and a JSON document to stdout.
 */
#include <errno.h>
#include <lmdb.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "dur.h"
#include "kv.h"

/* ---- contenders ------------------------------------------------------ */

typedef struct ctx {
    kv_store *kv;
    MDB_env *env;
    MDB_dbi dbi;
    char *dir;
} ctx;

typedef struct contender {
    const char *name;
    int fsync; /* libkv policy; -1: in memory; -2: LMDB */
} contender;

static const contender all_contenders[] = {
    {"mem", -1}, {"always", KV_FSYNC_ALWAYS}, {"everysec", KV_FSYNC_EVERYSEC},
    {"no", KV_FSYNC_NO}, {"lmdb", -2},
};
#define NCONT (sizeof all_contenders / sizeof all_contenders[0])

static size_t nkeys = 100000;
static double seconds = 2;
static bool preload = true;

static int kv_fill(kv_store *s)
{
    enum { BATCH = 1000 };
    static char keys[BATCH][DUR_KEY_LEN], vals[BATCH][DUR_VAL_LEN];
    kv_pair p[BATCH];
    for (size_t i = 0; i < nkeys; i += BATCH) {
        size_t n = nkeys - i < BATCH ? nkeys - i : BATCH;
        for (size_t j = 0; j < n; j++) {
            dur_key(i + j, keys[j]);
            dur_value(i + j, 0, vals[j]);
            p[j] = (kv_pair){keys[j], DUR_KEY_LEN, vals[j], DUR_VAL_LEN};
        }
        int rc = kv_mset(s, p, n, NULL);
        if (rc != KV_OK)
            return rc;
    }
    return KV_OK;
}

static void config(kv_config *c, const char *dir, int fsync)
{
    kv_config_init(c, sizeof *c);
    c->initial_capacity = nkeys;
    c->dir = dir;
    c->fsync = fsync;
}

static int lmdb_check(int rc, const char *what)
{
    if (rc != 0)
        fprintf(stderr, "kvdur_bench: LMDB %s: %s\n", what, mdb_strerror(rc));
    return rc;
}

static int lmdb_open(ctx *x)
{
    MDB_txn *txn;
    if (lmdb_check(mdb_env_create(&x->env), "env_create") ||
        lmdb_check(mdb_env_set_mapsize(x->env, (size_t)1 << 30), "set_mapsize") ||
        lmdb_check(mdb_env_open(x->env, x->dir, 0, 0644), "env_open") ||
        lmdb_check(mdb_txn_begin(x->env, NULL, 0, &txn), "txn_begin") ||
        lmdb_check(mdb_dbi_open(txn, NULL, 0, &x->dbi), "dbi_open"))
        return -1;
    char k[DUR_KEY_LEN], v[DUR_VAL_LEN];
    for (size_t i = 0; preload && i < nkeys; i++) {
        dur_key(i, k);
        dur_value(i, 0, v);
        MDB_val mk = {DUR_KEY_LEN, k}, mv = {DUR_VAL_LEN, v};
        if (lmdb_check(mdb_put(txn, x->dbi, &mk, &mv, 0), "put"))
            return -1;
    }
    return lmdb_check(mdb_txn_commit(txn), "commit") ? -1 : 0;
}

/* A fresh, preloaded store of contender c in x->dir. */
static int open_store(const contender *c, ctx *x)
{
    int rc;
    kv_config cfg;
    if (c->fsync == -2)
        return lmdb_open(x);
    if (c->fsync == -1) {
        config(&cfg, NULL, 0);
        if ((rc = kv_open_config(&cfg, &x->kv)) != KV_OK)
            goto fail;
        return preload && (rc = kv_fill(x->kv)) != KV_OK ? (kv_close(x->kv), -1) : 0;
    }
    if (preload) {
        config(&cfg, x->dir, KV_FSYNC_NO);
        kv_store *s;
        if ((rc = kv_open_config(&cfg, &s)) != KV_OK)
            goto fail;
        rc = kv_fill(s);
        kv_close(s);
        if (rc != KV_OK)
            goto fail;
    }
    config(&cfg, x->dir, c->fsync);
    if ((rc = kv_open_config(&cfg, &x->kv)) != KV_OK)
        goto fail;
    return 0;
fail:
    fprintf(stderr, "kvdur_bench: %s: %s %s\n", c->name, kv_strerror(rc), kv_last_error());
    return -1;
}

static void close_store(const contender *c, ctx *x)
{
    if (c->fsync == -2) {
        mdb_env_close(x->env);
        x->env = NULL;
    } else {
        kv_close(x->kv);
        x->kv = NULL;
    }
}

/* ---- one run --------------------------------------------------------- */

typedef struct worker {
    pthread_t tid;
    const contender *c;
    ctx *x;
    uint64_t seed, ops, errors, end_ns;
    int first_error;
    dur_hist hist;
} worker;

static atomic_bool stop;
static atomic_int ready;
static atomic_bool go;

static int do_set(const contender *c, ctx *x, const char *k, const char *v)
{
    if (c->fsync != -2)
        return kv_set(x->kv, k, DUR_KEY_LEN, v, DUR_VAL_LEN, NULL);
    MDB_txn *txn;
    int rc = mdb_txn_begin(x->env, NULL, 0, &txn);
    if (rc)
        return rc;
    MDB_val mk = {DUR_KEY_LEN, (void *)k}, mv = {DUR_VAL_LEN, (void *)v};
    if ((rc = mdb_put(txn, x->dbi, &mk, &mv, 0)) != 0) {
        mdb_txn_abort(txn);
        return rc;
    }
    return mdb_txn_commit(txn);
}

static void *worker_main(void *arg)
{
    worker *w = arg;
    char k[DUR_KEY_LEN], v[DUR_VAL_LEN];
    atomic_fetch_add(&ready, 1);
    while (!atomic_load(&go)) {
    }
    uint64_t t1 = dur_now_ns();
    while (!atomic_load_explicit(&stop, memory_order_relaxed)) {
        uint64_t n = dur_rand(&w->seed) % nkeys;
        dur_key(n, k);
        dur_value(n, w->ops + 1, v);
        uint64_t t0 = dur_now_ns();
        int rc = do_set(w->c, w->x, k, v);
        t1 = dur_now_ns();
        dur_hist_add(&w->hist, t1 - t0);
        if (rc != 0 && w->errors++ == 0)
            w->first_error = rc;
        w->ops++;
    }
    w->end_ns = t1;
    return NULL;
}

typedef struct run_result {
    double ops_s, p50_us, p99_us;
    uint64_t ops, errors, syncs, batches;
} run_result;

static int run_once(const contender *c, const char *base, size_t nthreads, unsigned round,
                    run_result *out)
{
    ctx x = {0};
    if (c->fsync != -1 && !(x.dir = dur_mkdtemp(base, c->name))) {
        fprintf(stderr, "kvdur_bench: mkdtemp under %s: %s\n", base, strerror(errno));
        return -1;
    }
    int rc = open_store(c, &x);
    worker *w = rc == 0 ? calloc(nthreads, sizeof *w) : NULL;
    if (!w) {
        if (x.dir)
            dur_rmtree(x.dir);
        free(x.dir);
        return -1;
    }
    kv_metrics m0 = {0}, m1 = {0};
    if (x.kv)
        kv_metrics_read(x.kv, &m0, sizeof m0);
    atomic_store(&stop, false);
    atomic_store(&go, false);
    atomic_store(&ready, 0);
    size_t started = 0;
    for (; started < nthreads; started++) {
        w[started] = (worker){.c = c, .x = &x, .seed = round * 1000003ull + started * 7919ull};
        if (pthread_create(&w[started].tid, NULL, worker_main, &w[started]) != 0)
            break;
    }
    while (atomic_load(&ready) < (int)started)
        dur_sleep_ms(1);
    uint64_t t0 = dur_now_ns();
    atomic_store(&go, true);
    dur_sleep_ms((unsigned)(seconds * 1000));
    atomic_store(&stop, true);
    static dur_hist all;
    memset(&all, 0, sizeof all);
    uint64_t end = t0;
    *out = (run_result){0};
    for (size_t i = 0; i < started; i++) {
        pthread_join(w[i].tid, NULL);
        dur_hist_merge(&all, &w[i].hist);
        out->ops += w[i].ops;
        out->errors += w[i].errors;
        if (w[i].errors)
            fprintf(stderr, "kvdur_bench: %s: %lu failed writes, first: %d (%s)\n", c->name,
                    (unsigned long)w[i].errors, w[i].first_error,
                    c->fsync == -2 ? mdb_strerror(w[i].first_error)
                                   : kv_strerror(w[i].first_error));
        if (w[i].end_ns > end)
            end = w[i].end_ns;
    }
    if (x.kv) {
        kv_metrics_read(x.kv, &m1, sizeof m1);
        out->syncs = m1.log_syncs - m0.log_syncs;
        out->batches = m1.log_batches - m0.log_batches;
    }
    out->ops_s = end > t0 ? (double)out->ops * 1e9 / (double)(end - t0) : 0;
    out->p50_us = dur_hist_quantile(&all, 0.50) / 1e3;
    out->p99_us = dur_hist_quantile(&all, 0.99) / 1e3;
    close_store(c, &x);
    if (x.dir && dur_rmtree(x.dir) != 0)
        fprintf(stderr, "kvdur_bench: could not remove %s\n", x.dir);
    free(x.dir);
    free(w);
    return started == nthreads ? 0 : -1;
}

/* ---- main ------------------------------------------------------------ */

typedef struct cell {
    const contender *c;
    size_t threads;
    double *ops_s, *p50, *p99;
    uint64_t ops, errors, syncs, batches;
    unsigned n;
    double median, p50_med, p99_med;
} cell;

static void usage(void)
{
    fprintf(stderr, "usage: kvdur_bench [--dir DIR] [--threads 1,2,4,16,64] [--rounds N]\n"
                    "  [--seconds S] [--keys N] [--no-preload]\n"
                    "  [--contenders mem,always,everysec,no,lmdb] [--json]\n");
    exit(2);
}

static const cell *find(const cell *cells, size_t ncells, const char *name, size_t threads)
{
    for (size_t i = 0; i < ncells; i++)
        if (cells[i].threads == threads && strcmp(cells[i].c->name, name) == 0)
            return &cells[i];
    return NULL;
}

static double ratio(const cell *a, const cell *b)
{
    return a && b && b->median > 0 ? a->median / b->median : 0;
}

int main(int argc, char **argv)
{
    const char *base = "/var/tmp", *threads_arg = "1,2,4,16,64";
    const char *cont_arg = "mem,always,everysec,no,lmdb";
    unsigned rounds = 3;
    bool json = false;
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i], *v = i + 1 < argc ? argv[i + 1] : NULL;
        if (!strcmp(a, "--dir") && v) base = argv[++i];
        else if (!strcmp(a, "--threads") && v) threads_arg = argv[++i];
        else if (!strcmp(a, "--contenders") && v) cont_arg = argv[++i];
        else if (!strcmp(a, "--rounds") && v) rounds = (unsigned)atoi(argv[++i]);
        else if (!strcmp(a, "--seconds") && v) seconds = atof(argv[++i]);
        else if (!strcmp(a, "--keys") && v) nkeys = strtoull(argv[++i], NULL, 10);
        else if (!strcmp(a, "--no-preload")) preload = false;
        else if (!strcmp(a, "--json")) json = true;
        else usage();
    }
    if (rounds == 0 || seconds <= 0 || nkeys == 0)
        usage();
    size_t threads[32], nthr = 0;
    for (char *s = strdup(threads_arg), *t = strtok(s, ","); t && nthr < 32; t = strtok(NULL, ","))
        if (atoi(t) > 0)
            threads[nthr++] = (size_t)atoi(t);
    const contender *conts[NCONT];
    size_t ncont = 0;
    for (char *s = strdup(cont_arg), *t = strtok(s, ","); t; t = strtok(NULL, ",")) {
        size_t j = 0;
        while (j < NCONT && strcmp(all_contenders[j].name, t) != 0)
            j++;
        if (j == NCONT) {
            fprintf(stderr, "kvdur_bench: unknown contender %s\n", t);
            usage();
        }
        conts[ncont++] = &all_contenders[j];
    }
    if (nthr == 0 || ncont == 0)
        usage();

    FILE *out = json ? stderr : stdout;
    int maj, min, pat;
    mdb_version(&maj, &min, &pat);
    fprintf(out, "kvdur_bench: SET throughput, %zu keys of %d bytes, %d-byte values, %s\n", nkeys,
            DUR_KEY_LEN, DUR_VAL_LEN, preload ? "preloaded (overwrites)" : "empty at start");
    dur_print_machine(out, "  ");
    fprintf(out, "  libkv %s; LMDB %d.%d.%d; dir %s (%s); %u rounds x %.1f s per contender and "
                 "thread count, runs interleaved\n",
            kv_version(), maj, min, pat, base, dur_fstype(base), rounds, seconds);
    fprintf(out, "  mem = libkv in memory; always/everysec/no = libkv durable with that fsync "
                 "policy; lmdb = one mdb_txn_commit (fsync) per SET\n\n");

    cell *cells = calloc(nthr * ncont, sizeof *cells);
    size_t ncells = 0;
    int failed = 0;
    for (size_t ti = 0; ti < nthr; ti++) {
        cell *row = &cells[ncells];
        for (size_t ci = 0; ci < ncont; ci++) {
            row[ci] = (cell){.c = conts[ci], .threads = threads[ti]};
            row[ci].ops_s = calloc(rounds, sizeof(double));
            row[ci].p50 = calloc(rounds, sizeof(double));
            row[ci].p99 = calloc(rounds, sizeof(double));
        }
        for (unsigned r = 0; r < rounds; r++) {
            for (size_t k = 0; k < ncont; k++) {
                /* Rotate the order each round. */
                cell *cl = &row[(k + r) % ncont];
                run_result res;
                if (run_once(cl->c, base, threads[ti], r, &res) != 0) {
                    failed = 1;
                    continue;
                }
                fprintf(stderr, "  %-8s %2zu thr round %u: %12.0f ops/s  p50 %9.1f us  p99 %9.1f us\n",
                        cl->c->name, threads[ti], r + 1, res.ops_s, res.p50_us, res.p99_us);
                cl->ops_s[cl->n] = res.ops_s;
                cl->p50[cl->n] = res.p50_us;
                cl->p99[cl->n] = res.p99_us;
                cl->n++;
                cl->ops += res.ops;
                cl->errors += res.errors;
                cl->syncs += res.syncs;
                cl->batches += res.batches;
                failed |= res.errors != 0;
            }
        }
        for (size_t ci = 0; ci < ncont; ci++) {
            cell *cl = &row[ci];
            fprintf(out, "%-8s %3zu thr  runs", cl->c->name, cl->threads);
            for (unsigned r = 0; r < cl->n; r++)
                fprintf(out, " %10.0f", cl->ops_s[r]);
            /* dur_median sorts: print the runs first. */
            cl->median = dur_median(cl->ops_s, cl->n);
            cl->p50_med = dur_median(cl->p50, cl->n);
            cl->p99_med = dur_median(cl->p99, cl->n);
            fprintf(out, "  median %10.0f ops/s  p50 %9.1f us  p99 %9.1f us", cl->median,
                    cl->p50_med, cl->p99_med);
            if (cl->syncs)
                fprintf(out, "  %.1f writes/fdatasync", (double)cl->ops / (double)cl->syncs);
            fprintf(out, "\n");
        }
        fflush(out);
        ncells += ncont;
    }

    fprintf(out, "\nMedian ops/s and ratios (x lmdb = median / LMDB's median, x mem = median / "
                 "libkv in memory's median, same thread count):\n");
    fprintf(out, "%-8s", "threads");
    for (size_t ci = 0; ci < ncont; ci++)
        fprintf(out, " %12s %7s %7s", conts[ci]->name, "x lmdb", "x mem");
    fprintf(out, "\n");
    for (size_t ti = 0; ti < nthr; ti++) {
        fprintf(out, "%-8zu", threads[ti]);
        for (size_t ci = 0; ci < ncont; ci++) {
            const cell *cl = find(cells, ncells, conts[ci]->name, threads[ti]);
            double rl = ratio(cl, find(cells, ncells, "lmdb", threads[ti]));
            double rm = ratio(cl, find(cells, ncells, "mem", threads[ti]));
            fprintf(out, " %12.0f", cl->median);
            if (rl > 0)
                fprintf(out, " %7.2f", rl);
            else
                fprintf(out, " %7s", "-");
            if (rm > 0)
                fprintf(out, " %7.4f", rm);
            else
                fprintf(out, " %7s", "-");
        }
        fprintf(out, "\n");
    }
    uint64_t errors = 0;
    for (size_t i = 0; i < ncells; i++)
        errors += cells[i].errors;
    fprintf(out, "failed writes over all runs: %lu\n", (unsigned long)errors);

    if (json) {
        printf("{\"keys\":%zu,\"key_bytes\":%d,\"value_bytes\":%d,\"rounds\":%u,\"seconds\":%g,"
               "\"preload\":%s,\"results\":[",
               nkeys, DUR_KEY_LEN, DUR_VAL_LEN, rounds, seconds, preload ? "true" : "false");
        for (size_t i = 0; i < ncells; i++) {
            const cell *cl = &cells[i];
            printf("%s{\"contender\":\"%s\",\"threads\":%zu,\"median_ops_s\":%.0f,"
                   "\"p50_us\":%.1f,\"p99_us\":%.1f,\"vs_lmdb\":%.4f,\"vs_mem\":%.4f,"
                   "\"errors\":%lu,\"runs\":%u}",
                   i ? "," : "", cl->c->name, cl->threads, cl->median, cl->p50_med, cl->p99_med,
                   ratio(cl, find(cells, ncells, "lmdb", cl->threads)),
                   ratio(cl, find(cells, ncells, "mem", cl->threads)),
                   (unsigned long)cl->errors, cl->n);
        }
        printf("]}\n");
    }
    return failed ? 1 : 0;
}
