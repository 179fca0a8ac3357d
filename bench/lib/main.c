/*
 * main.c - kvbench_lib: libkv against liburcu's cds_lfht and a naive
 * rwlock-protected table, in one run.
 *
 * For every key count: measure each contender's memory (a fresh structure
 * each, freed before the next), load all contenders once, then for every
 * distribution, workload and thread count run the contenders alternately
 * for several rounds (the first contender rotates from round to round),
 * and report the median rate of each and the ratio of medians against
 * cds_lfht. The machines this runs on are noisy; medians over alternating
 * rounds keep one contender from getting all the quiet (or busy) moments.
 */
#include <getopt.h>
#include <malloc.h>
#include <sched.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/utsname.h>
#include <unistd.h>

#include "bench.h"
#include "workload.h"

size_t kvb_value_size = 64;

#define MAX_LIST 32
#define MAX_CONTENDERS 4

static const kvb_contender *const all_contenders[] = {
    &kvb_libkv, &kvb_lfht_qsbr, &kvb_rwlock, &kvb_lfht_memb,
};
#define N_ALL_CONTENDERS (sizeof all_contenders / sizeof all_contenders[0])

/* ------------------------------------------------------------------------
 * Options
 * ---------------------------------------------------------------------- */

typedef struct options {
    size_t threads[MAX_LIST], nthreads;
    size_t keys[MAX_LIST], nkeys;
    bool dist[KVB_D_COUNT];
    bool workload[KVB_W_COUNT];
    const kvb_contender *contenders[MAX_CONTENDERS];
    size_t ncontenders;
    unsigned rounds;
    double duration;
    size_t ring_len;
    bool csv, memory, quick;
} options;

static void usage(FILE *f)
{
    fprintf(f,
            "usage: kvbench_lib [options]\n"
            "  --threads LIST     thread counts, e.g. 1,2 (default 1,2,4,..,nCPU)\n"
            "  --keys LIST        key counts (default 10000,1000000)\n"
            "  --dist D           uniform, zipf or both (default both; zipf s=0.99)\n"
            "  --workloads LIST   of get,get90set10,get50set50,mget16,mset4,rmw_txn\n"
            "                     (default all)\n"
            "  --contenders LIST  of libkv,lfht,rwlock,lfht-memb (default libkv,lfht,rwlock)\n"
            "  --rounds R         rounds per configuration (default 7)\n"
            "  --duration S       seconds per contender per round (default 0.4)\n"
            "  --value-size B     value bytes (default 64)\n"
            "  --no-memory        skip the memory measurement\n"
            "  --csv              print CSV on stdout instead of the tables\n"
            "  --quick            tiny configuration for a smoke test (a few seconds)\n"
            "  --help\n");
}

static int parse_sizes(const char *arg, size_t *out, size_t *n)
{
    char *copy = strdup(arg), *save = NULL;
    *n = 0;
    for (char *tok = strtok_r(copy, ",", &save); tok; tok = strtok_r(NULL, ",", &save)) {
        char *end;
        unsigned long long v = strtoull(tok, &end, 10);
        if (*end || v == 0 || *n == MAX_LIST) {
            free(copy);
            return -1;
        }
        out[(*n)++] = (size_t)v;
    }
    free(copy);
    return *n ? 0 : -1;
}

static int parse_workloads(const char *arg, bool *on)
{
    char *copy = strdup(arg), *save = NULL;
    memset(on, 0, KVB_W_COUNT * sizeof *on);
    int rc = 0;
    for (char *tok = strtok_r(copy, ",", &save); tok; tok = strtok_r(NULL, ",", &save)) {
        int w = 0;
        while (w < KVB_W_COUNT && strcmp(tok, kvb_workload_names[w]) != 0)
            w++;
        if (w == KVB_W_COUNT && strcmp(tok, "all") != 0)
            rc = -1;
        for (int i = 0; i < KVB_W_COUNT; i++)
            if (i == w || w == KVB_W_COUNT)
                on[i] = true;
    }
    free(copy);
    return rc;
}

static int parse_contenders(const char *arg, options *o)
{
    char *copy = strdup(arg), *save = NULL;
    o->ncontenders = 0;
    int rc = 0;
    for (char *tok = strtok_r(copy, ",", &save); tok; tok = strtok_r(NULL, ",", &save)) {
        size_t i = 0;
        while (i < N_ALL_CONTENDERS && strcmp(tok, all_contenders[i]->name) != 0)
            i++;
        if (i == N_ALL_CONTENDERS || o->ncontenders == MAX_CONTENDERS)
            rc = -1;
        else
            o->contenders[o->ncontenders++] = all_contenders[i];
    }
    free(copy);
    return o->ncontenders ? rc : -1;
}

/* The CPUs this process may run on. */
static size_t allowed_cpus(int *cpus, size_t cap)
{
    cpu_set_t set;
    size_t n = 0;
    if (sched_getaffinity(0, sizeof set, &set) != 0)
        return 0;
    for (int c = 0; c < CPU_SETSIZE && n < cap; c++)
        if (CPU_ISSET(c, &set))
            cpus[n++] = c;
    return n;
}

static int parse_options(int argc, char **argv, options *o, size_t ncpus)
{
    enum { O_THREADS = 256, O_KEYS, O_DIST, O_WORK, O_CONT, O_ROUNDS, O_DUR, O_VSIZE,
           O_NOMEM, O_CSV, O_QUICK, O_HELP };
    static const struct option longopts[] = {
        {"threads", required_argument, NULL, O_THREADS},
        {"keys", required_argument, NULL, O_KEYS},
        {"dist", required_argument, NULL, O_DIST},
        {"workloads", required_argument, NULL, O_WORK},
        {"contenders", required_argument, NULL, O_CONT},
        {"rounds", required_argument, NULL, O_ROUNDS},
        {"duration", required_argument, NULL, O_DUR},
        {"value-size", required_argument, NULL, O_VSIZE},
        {"no-memory", no_argument, NULL, O_NOMEM},
        {"csv", no_argument, NULL, O_CSV},
        {"quick", no_argument, NULL, O_QUICK},
        {"help", no_argument, NULL, O_HELP},
        {NULL, 0, NULL, 0},
    };
    /* Defaults, then --quick's, then the explicit options on top. */
    *o = (options){.rounds = 7, .duration = 0.4, .ring_len = (size_t)1 << 20, .memory = true};
    for (size_t t = 1; t < ncpus; t *= 2)
        o->threads[o->nthreads++] = t;
    o->threads[o->nthreads++] = ncpus ? ncpus : 1;
    o->keys[0] = 10000;
    o->keys[1] = 1000000;
    o->nkeys = 2;
    o->dist[KVB_D_UNIFORM] = o->dist[KVB_D_ZIPF] = true;
    for (int w = 0; w < KVB_W_COUNT; w++)
        o->workload[w] = true;
    parse_contenders("libkv,lfht,rwlock", o);

    for (int i = 1; i < argc; i++) {
        if (strcmp(argv[i], "--quick") == 0) {
            o->keys[0] = 10000;
            o->nkeys = 1;
            o->threads[0] = 1;
            o->threads[1] = 2;
            o->nthreads = 2;
            o->rounds = 1;
            o->duration = 0.02;
            o->ring_len = (size_t)1 << 14;
            o->quick = true;
        }
    }

    int c;
    while ((c = getopt_long(argc, argv, "", longopts, NULL)) != -1) {
        char *end = NULL;
        switch (c) {
        case O_THREADS:
            if (parse_sizes(optarg, o->threads, &o->nthreads) != 0)
                return -1;
            break;
        case O_KEYS:
            if (parse_sizes(optarg, o->keys, &o->nkeys) != 0)
                return -1;
            for (size_t i = 0; i < o->nkeys; i++)
                if (o->keys[i] > 100000000) /* key numbers have 8 digits */
                    return -1;
            break;
        case O_DIST:
            o->dist[KVB_D_UNIFORM] = !strcmp(optarg, "uniform") || !strcmp(optarg, "both");
            o->dist[KVB_D_ZIPF] = !strcmp(optarg, "zipf") || !strcmp(optarg, "both");
            if (!o->dist[KVB_D_UNIFORM] && !o->dist[KVB_D_ZIPF])
                return -1;
            break;
        case O_WORK:
            if (parse_workloads(optarg, o->workload) != 0)
                return -1;
            break;
        case O_CONT:
            if (parse_contenders(optarg, o) != 0)
                return -1;
            break;
        case O_ROUNDS:
            o->rounds = (unsigned)strtoul(optarg, &end, 10);
            if (*end || o->rounds == 0 || o->rounds > 1000)
                return -1;
            break;
        case O_DUR:
            o->duration = strtod(optarg, &end);
            if (*end || !(o->duration > 0 && o->duration <= 3600))
                return -1;
            break;
        case O_VSIZE:
            kvb_value_size = (size_t)strtoull(optarg, &end, 10);
            if (*end || kvb_value_size > ((size_t)1 << 20))
                return -1;
            break;
        case O_NOMEM:
            o->memory = false;
            break;
        case O_CSV:
            o->csv = true;
            break;
        case O_QUICK:
            break;
        case O_HELP:
            usage(stdout);
            exit(0);
        default:
            return -1;
        }
    }
    return optind == argc ? 0 : -1;
}

/* ------------------------------------------------------------------------
 * Results
 * ---------------------------------------------------------------------- */

typedef struct cell {
    kvb_workload w;
    size_t keys;
    kvb_dist dist;
    size_t threads;
    const kvb_contender *c;
    double *mops;     /* one per round */
    double *cpu;      /* kvb_result.cpu_share, one per round */
    double *mops_cpu; /* kvb_result.mops_cpu, one per round */
    unsigned nrounds;
    uint64_t retries, errors, ops;
    double median, min, max, median_cpu, median_mops_cpu;
} cell;

typedef struct memrow {
    const kvb_contender *c;
    size_t keys;
    double rss_per_key, metric_per_key; /* metric 0: none */
    double load_seconds;
} memrow;

static cell *cells;
static size_t ncells, cells_cap;
static memrow memrows[MAX_LIST * MAX_CONTENDERS];
static size_t nmemrows;

static FILE *report; /* the tables: stdout, or stderr with --csv */

static int cmp_double(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}

static double median(const double *v, size_t n)
{
    double *s = malloc(n * sizeof *s);
    if (!s)
        return 0;
    memcpy(s, v, n * sizeof *s);
    qsort(s, n, sizeof *s, cmp_double);
    double m = n % 2 ? s[n / 2] : (s[n / 2 - 1] + s[n / 2]) / 2;
    free(s);
    return m;
}

static const cell *find_cell(kvb_workload w, size_t keys, kvb_dist d, size_t threads,
                             const char *contender)
{
    for (size_t i = 0; i < ncells; i++)
        if (cells[i].w == w && cells[i].keys == keys && cells[i].dist == d &&
            cells[i].threads == threads && strcmp(cells[i].c->name, contender) == 0)
            return &cells[i];
    return NULL;
}

/* median / the same configuration's cds_lfht median; 0 if there is none. */
static double ratio_vs_lfht(const cell *c)
{
    const cell *ref = find_cell(c->w, c->keys, c->dist, c->threads, "lfht");
    return ref && ref->median > 0 ? c->median / ref->median : 0;
}

static cell *new_cell(kvb_workload w, size_t keys, kvb_dist d, size_t threads,
                      const kvb_contender *c, unsigned rounds)
{
    if (ncells == cells_cap) {
        size_t cap = cells_cap ? cells_cap * 2 : 64;
        cell *n = realloc(cells, cap * sizeof *n);
        if (!n)
            return NULL;
        cells = n;
        cells_cap = cap;
    }
    double *m = calloc(3 * (size_t)rounds, sizeof *m);
    if (!m)
        return NULL;
    cells[ncells] = (cell){.w = w, .keys = keys, .dist = d, .threads = threads, .c = c,
                           .mops = m, .cpu = m + rounds, .mops_cpu = m + 2 * rounds};
    return &cells[ncells++];
}

static void print_row(const options *o, const cell *c, bool first)
{
    double ratio = ratio_vs_lfht(c);
    unsigned kpo = kvb_workload_keys(c->w);
    if (o->csv) {
        printf("result,%s,%zu,%s,%zu,%s,%.4f,%.4f,%.4f,%.4f,%.4f,%.4f,%.3f,%llu,%llu,,\n",
               kvb_workload_names[c->w], c->keys, kvb_dist_names[c->dist], c->threads,
               c->c->name, c->median, c->min, c->max, c->median * kpo, ratio,
               c->median_mops_cpu, c->median_cpu,
               (unsigned long long)c->retries, (unsigned long long)c->errors);
        return;
    }
    char rs[32] = "";
    if (ratio > 0)
        snprintf(rs, sizeof rs, "%.2fx", ratio);
    char extra[48] = "";
    if (c->retries)
        snprintf(extra, sizeof extra, "  retries %.1f%%",
                 c->ops ? 100.0 * (double)c->retries / (double)c->ops : 0.0);
    if (c->errors)
        snprintf(extra, sizeof extra, "  ERRORS %llu", (unsigned long long)c->errors);
    if (first)
        fprintf(report, "%-11s %8zu %-8s %3zu", kvb_workload_names[c->w], c->keys,
                kvb_dist_names[c->dist], c->threads);
    else
        fprintf(report, "%-11s %8s %-8s %3s", "", "", "", "");
    fprintf(report, "  %-10s %8.3f  %7.3f..%-7.3f %4.0f%% %8.3f %8.3f  %6s%s\n", c->c->name,
            c->median, c->min, c->max, 100 * c->median_cpu, c->median_mops_cpu,
            c->median * kpo, rs, extra);
    fflush(report);
}

/* ------------------------------------------------------------------------
 * Memory
 * ---------------------------------------------------------------------- */

static long rss_bytes(void)
{
    FILE *f = fopen("/proc/self/statm", "r");
    long size = 0, resident = 0;
    if (!f)
        return 0;
    if (fscanf(f, "%ld %ld", &size, &resident) != 2)
        resident = 0;
    fclose(f);
    return resident * sysconf(_SC_PAGESIZE);
}

static int measure_memory(const options *o, const kvb_contender *c, size_t nkeys)
{
    malloc_trim(0);
    long before = rss_bytes();
    double t0 = kvb_now();
    void *h = c->open(nkeys);
    if (!h || kvb_load(c, h, nkeys) != 0) {
        fprintf(stderr, "kvbench_lib: %s: cannot load %zu keys\n", c->name, nkeys);
        if (h)
            c->close(h);
        return -1;
    }
    double t1 = kvb_now();
    malloc_trim(0);
    long after = rss_bytes();
    uint64_t metric = c->memory_bytes(h);
    c->close(h);
    malloc_trim(0);
    memrow *m = &memrows[nmemrows++];
    *m = (memrow){c, nkeys, (double)(after - before) / (double)nkeys,
                  (double)metric / (double)nkeys, t1 - t0};
    if (o->csv) {
        printf("memory,,%zu,,,%s,,,,,,,,,,%.1f,%.1f\n", nkeys, c->name, m->rss_per_key,
               m->metric_per_key);
        return 0;
    }
    fprintf(report, "memory %8zu keys  %-10s %7.1f bytes/key by RSS", nkeys, c->name,
            m->rss_per_key);
    if (m->metric_per_key)
        fprintf(report, ", %7.1f by kv_metrics.memory_bytes", m->metric_per_key);
    fprintf(report, "  (load %.2f s)\n", m->load_seconds);
    return 0;
}

/* ------------------------------------------------------------------------
 * Driving the runs
 * ---------------------------------------------------------------------- */

static size_t max_threads(const options *o)
{
    size_t m = 1;
    for (size_t i = 0; i < o->nthreads; i++)
        if (o->threads[i] > m)
            m = o->threads[i];
    return m;
}

/* One configuration: every round runs every contender once, the first one
 * rotating, and the rows are printed when it is done. */
static int run_config(const options *o, void *const *handles, kvb_workload w, size_t nkeys,
                      kvb_dist d, size_t nthreads, const kvb_rings *rings, const int *cpus,
                      size_t ncpus)
{
    cell *cs[MAX_CONTENDERS];
    for (size_t i = 0; i < o->ncontenders; i++) {
        cell *c = new_cell(w, nkeys, d, nthreads, o->contenders[i], o->rounds);
        if (!c)
            return -1;
        cs[i] = c;
    }
    /* new_cell may move the array: take the pointers again afterwards. */
    size_t base = ncells - o->ncontenders;
    for (unsigned r = 0; r < o->rounds; r++) {
        for (size_t j = 0; j < o->ncontenders; j++) {
            size_t i = (j + r) % o->ncontenders;
            cell *c = &cells[base + i];
            kvb_result res;
            if (kvb_run(c->c, handles[i], w, rings, nthreads, cpus, ncpus, o->duration,
                        &res) != 0)
                return -1;
            c->mops[r] = res.mops;
            c->cpu[r] = res.cpu_share;
            c->mops_cpu[r] = res.mops_cpu;
            c->retries += res.retries;
            c->errors += res.errors;
            c->ops += res.ops;
            c->nrounds = r + 1;
        }
    }
    for (size_t i = 0; i < o->ncontenders; i++) {
        cell *c = &cells[base + i];
        cs[i] = c;
        c->median = median(c->mops, c->nrounds);
        c->median_cpu = median(c->cpu, c->nrounds);
        c->median_mops_cpu = median(c->mops_cpu, c->nrounds);
        c->min = c->max = c->mops[0];
        for (unsigned r = 1; r < c->nrounds; r++) {
            c->min = c->mops[r] < c->min ? c->mops[r] : c->min;
            c->max = c->mops[r] > c->max ? c->mops[r] : c->max;
        }
    }
    for (size_t i = 0; i < o->ncontenders; i++)
        print_row(o, cs[i], i == 0);
    return 0;
}

static int run_keys(const options *o, size_t nkeys, const int *cpus, size_t ncpus)
{
    if (o->memory)
        for (size_t i = 0; i < o->ncontenders; i++)
            if (measure_memory(o, o->contenders[i], nkeys) != 0)
                return -1;

    void *handles[MAX_CONTENDERS] = {NULL};
    int rc = 0;
    for (size_t i = 0; i < o->ncontenders && rc == 0; i++) {
        handles[i] = o->contenders[i]->open(nkeys);
        if (!handles[i] || kvb_load(o->contenders[i], handles[i], nkeys) != 0) {
            fprintf(stderr, "kvbench_lib: %s: cannot load %zu keys\n",
                    o->contenders[i]->name, nkeys);
            rc = -1;
        }
    }
    if (rc == 0 && !o->csv)
        fprintf(report, "\n%-11s %8s %-8s %3s  %-10s %8s  %-15s %5s %8s %8s  %6s\n",
                "workload", "keys", "dist", "thr", "contender", "Mops/s", "min..max", "cpu",
                "Mops/cpu", "Mkeys/s", "vs lfht");
    for (int d = 0; d < KVB_D_COUNT && rc == 0; d++) {
        if (!o->dist[d])
            continue;
        kvb_rings rings;
        size_t len = o->ring_len;
        if (kvb_rings_make(&rings, max_threads(o), nkeys, (kvb_dist)d, len) != 0) {
            rc = -1;
            break;
        }
        for (int w = 0; w < KVB_W_COUNT && rc == 0; w++) {
            if (!o->workload[w])
                continue;
            for (size_t t = 0; t < o->nthreads && rc == 0; t++)
                rc = run_config(o, handles, (kvb_workload)w, nkeys, (kvb_dist)d,
                                o->threads[t], &rings, cpus, ncpus);
        }
        kvb_rings_free(&rings);
    }
    for (size_t i = 0; i < o->ncontenders; i++)
        if (handles[i])
            o->contenders[i]->close(handles[i]);
    malloc_trim(0);
    return rc;
}

/* ------------------------------------------------------------------------
 * Summary: scaling and the project's targets
 * ---------------------------------------------------------------------- */

static void print_scaling(const options *o)
{
    if (o->nthreads < 2)
        return;
    fprintf(report, "\nScaling: median at the largest thread count / median at 1 thread; CPU-normalised:\n"
                    "the same from Mops per CPU-second, i.e. as if no other process took CPU time\n");
    size_t tmax = max_threads(o);
    for (size_t i = 0; i < ncells; i++) {
        const cell *c = &cells[i];
        if (c->threads != tmax)
            continue;
        const cell *one = find_cell(c->w, c->keys, c->dist, 1, c->c->name);
        if (!one || one->median <= 0)
            continue;
        double norm = one->median_mops_cpu > 0
                          ? c->median_mops_cpu * (double)tmax / one->median_mops_cpu
                          : 0;
        fprintf(report, "  %-11s %8zu %-8s %-10s %zu threads / 1: %5.2fx   CPU-normalised %5.2fx\n",
                kvb_workload_names[c->w], c->keys, kvb_dist_names[c->dist], c->c->name, tmax,
                c->median / one->median, norm);
    }
}

static unsigned targets_met, targets_missed;

/* Prints one target check: got >= want (or got <= want if at_most)? */
static void check_bound(const char *what, double got, double want, bool at_most)
{
    bool met = at_most ? got <= want : got >= want;
    fprintf(report, "  %-58s %6.2f (target %s %.2f)  %s", what, got, at_most ? "<=" : ">=",
            want, met ? "MET" : "MISSED");
    if (!met)
        fprintf(report, " by %.0f%%", 100 * (at_most ? got / want - 1 : 1 - got / want));
    fprintf(report, "\n");
    met ? targets_met++ : targets_missed++;
}

static void check(const char *what, double got, double want)
{
    check_bound(what, got, want, false);
}

static void check_ratio(kvb_workload w, size_t keys, kvb_dist d, size_t threads, double want)
{
    const cell *c = find_cell(w, keys, d, threads, "libkv");
    if (!c || ratio_vs_lfht(c) == 0)
        return;
    char what[96];
    snprintf(what, sizeof what, "%s %zu keys %s %zu thr: libkv / lfht", kvb_workload_names[w],
             keys, kvb_dist_names[d], threads);
    check(what, ratio_vs_lfht(c), want);
    const cell *ref = find_cell(w, keys, d, threads, "lfht");
    if (ref && ref->median_mops_cpu > 0)
        fprintf(report, "  %-58s %6.2f (per CPU-second, for information)\n", "",
                c->median_mops_cpu / ref->median_mops_cpu);
}

static void print_targets(const options *o)
{
    fprintf(report, "\nTargets (ratios of medians)\n");
    for (size_t k = 0; k < o->nkeys; k++) {
        size_t keys = o->keys[k];
        for (int d = 0; d < KVB_D_COUNT; d++) {
            for (size_t t = 1; t <= 2; t++)
                check_ratio(KVB_W_GET, keys, (kvb_dist)d, t, keys >= 1000000 ? 1.1 : 1.0);
            const cell *one = find_cell(KVB_W_GET, keys, (kvb_dist)d, 1, "libkv");
            const cell *two = find_cell(KVB_W_GET, keys, (kvb_dist)d, 2, "libkv");
            if (one && two && one->median > 0) {
                char what[96];
                snprintf(what, sizeof what, "get %zu keys %s: libkv 2 thr / 1 thr", keys,
                         kvb_dist_names[d]);
                check(what, two->median / one->median, 1.8);
                if (one->median_mops_cpu > 0)
                    fprintf(report, "  %-58s %6.2f (CPU-normalised, for information)\n", "",
                            2 * two->median_mops_cpu / one->median_mops_cpu);
            }
            for (size_t t = 0; t < o->nthreads; t++)
                check_ratio(KVB_W_MGET, keys, (kvb_dist)d, o->threads[t], 3.0);
            check_ratio(KVB_W_GET90, keys, (kvb_dist)d, 2, 1.5);
        }
    }
    for (size_t i = 0; i < nmemrows; i++) {
        const memrow *m = &memrows[i];
        /* The target is for 1M keys; small loads are dominated by pages. */
        if (strcmp(m->c->name, "libkv") != 0 || m->keys < 1000000)
            continue;
        char what[96];
        snprintf(what, sizeof what, "memory %zu keys: libkv bytes/key by RSS", m->keys);
        check_bound(what, m->rss_per_key, 110, true);
        if (m->metric_per_key > 0) {
            snprintf(what, sizeof what, "memory %zu keys: libkv kv_metrics bytes/key", m->keys);
            check_bound(what, m->metric_per_key, 110, true);
        }
    }
    fprintf(report, "  %u met, %u missed\n", targets_met, targets_missed);
}

static void print_header(const options *o, size_t ncpus)
{
    char model[256] = "unknown";
    FILE *f = fopen("/proc/cpuinfo", "r");
    if (f) {
        char line[512];
        while (fgets(line, sizeof line, f)) {
            char *colon = strchr(line, ':');
            if (strncmp(line, "model name", 10) == 0 && colon) {
                snprintf(model, sizeof model, "%s", colon + 2);
                model[strcspn(model, "\n")] = 0;
                break;
            }
        }
        fclose(f);
    }
    struct utsname u;
    uname(&u);
    double load[3] = {0};
    getloadavg(load, 3);
    time_t now = time(NULL);
    char date[64];
    strftime(date, sizeof date, "%Y-%m-%d %H:%M:%S %Z", localtime(&now));
    fprintf(report, "kvbench_lib  %s  %s %s\n", date, u.sysname, u.release);
    fprintf(report, "cpu: %s, %ld online, %zu usable; load average %.2f %.2f %.2f\n", model,
            sysconf(_SC_NPROCESSORS_ONLN), ncpus, load[0], load[1], load[2]);
    fprintf(report, "rounds %u x %.3f s per contender, value %zu bytes, keys %d bytes%s\n",
            o->rounds, o->duration, kvb_value_size, KVB_KEY_LEN, o->quick ? " (--quick)" : "");
    for (size_t i = 0; i < o->ncontenders; i++)
        fprintf(report, "  %-10s %s\n", o->contenders[i]->name, o->contenders[i]->about);
    fprintf(report, "Mops/s: operations per second (one mget16 or mset4 is one operation;\n"
                    "Mkeys/s counts its keys). Medians over rounds; ratio = libkv median /"
                    " lfht median.\n"
                    "cpu: CPU time the worker threads got / (threads x wall time), median; well"
                    " below 100%%\nmeans other processes took the CPUs (a disturbed row)."
                    " Mops/cpu: operations per CPU-second.\n\n");
}

int main(int argc, char **argv)
{
    int cpus[CPU_SETSIZE];
    size_t ncpus = allowed_cpus(cpus, CPU_SETSIZE);
    options o;
    if (parse_options(argc, argv, &o, ncpus) != 0) {
        usage(stderr);
        return 2;
    }
    report = o.csv ? stderr : stdout;
    if (o.csv)
        printf("kind,workload,keys,dist,threads,contender,median_mops,min_mops,max_mops,"
               "median_mkeys,ratio_vs_lfht,median_mops_per_cpu_s,median_cpu_share,retries,errors,"
               "rss_bytes_per_key,"
               "metric_bytes_per_key\n");
    print_header(&o, ncpus);

    int rc = 0;
    for (size_t k = 0; k < o.nkeys && rc == 0; k++)
        rc = run_keys(&o, o.keys[k], cpus, ncpus);
    if (rc != 0) {
        fprintf(stderr, "kvbench_lib: failed\n");
        return 1;
    }
    print_scaling(&o);
    print_targets(&o);

    uint64_t errors = 0;
    for (size_t i = 0; i < ncells; i++) {
        errors += cells[i].errors;
        free(cells[i].mops);
    }
    free(cells);
    if (errors) {
        fprintf(stderr, "kvbench_lib: %llu operations failed\n", (unsigned long long)errors);
        return 1;
    }
    return 0;
}
