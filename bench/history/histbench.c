/*
 * histbench.c - kvbench_history: what keeping history costs.
 *
 *   kvbench_history get [--keys K] [--versions V] [--seconds S] [--rounds R]
 *       Latest-value gets with history off and on (the target: no
 *       measurable loss). Each round fills one store of each kind with K
 *       keys, each written V times (so the store with history holds V-1
 *       earlier values per key), then 1 and 2 threads get random keys for
 *       S seconds. Rounds alternate the two kinds; medians and the on/off
 *       ratio follow.
 *   kvbench_history memory [--keys K] [--versions V] [--value-size B]
 *       Memory per retained version: history_bytes / history_versions as
 *       the store counts it, and the process's resident growth per version.
 *   kvbench_history compact [--seconds S] [--keys K] [--value-size B]
 *       Set latency (p50, p99, p99.9, max) of one writer under load while
 *       history is off, on without compaction, on with another thread
 *       compacting to 10000 revisions behind the latest every 10 ms, and on
 *       with a byte bound the background compactor keeps (1/4 of what the
 *       run writes), plus one reader thread getting random keys in every
 *       case (the load compaction must not stall).
 *
 * A timing benchmark: run it on a quiet machine (bench/README.md).
 */
#include <getopt.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "kv.h"

static uint64_t nkeys = 1000000;
static unsigned nversions = 4;
static double seconds = 2.0;
static int rounds = 5;
static size_t value_len = 100;

static double now_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static uint64_t now_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

static uint64_t xorshift(uint64_t *s)
{
    uint64_t x = *s;
    x ^= x >> 12;
    x ^= x << 25;
    x ^= x >> 27;
    *s = x;
    return x * 0x2545F4914F6CDD1DULL;
}

static size_t key_of(uint64_t i, char *buf)
{
    return (size_t)snprintf(buf, 32, "key:%012llu", (unsigned long long)i);
}

static kv_store *open_store(bool history, uint64_t history_bytes)
{
    kv_config c;
    kv_config_init(&c, sizeof c);
    c.initial_capacity = (size_t)nkeys;
    c.history = history;
    c.history_bytes = history_bytes;
    kv_store *s;
    int rc = kv_open_config(&c, &s);
    if (rc != KV_OK) {
        fprintf(stderr, "kv_open_config: %s\n", kv_strerror(rc));
        exit(1);
    }
    return s;
}

static void fill(kv_store *s, unsigned versions)
{
    char *val = malloc(value_len);
    char k[32];
    for (unsigned v = 0; v < versions; v++) {
        memset(val, 'a' + (int)v, value_len);
        for (uint64_t i = 0; i < nkeys; i++) {
            size_t kl = key_of(i, k);
            if (kv_set(s, k, kl, val, value_len, NULL) != KV_OK) {
                fprintf(stderr, "fill failed\n");
                exit(1);
            }
        }
    }
    free(val);
}

/* ---- get ------------------------------------------------------------------ */

typedef struct getter {
    kv_store *s;
    uint64_t seed, ops;
    atomic_bool *stop;
} getter;

static void *get_loop(void *arg)
{
    getter *g = arg;
    char k[32], buf[4096];
    uint64_t ops = 0;
    while (!atomic_load_explicit(g->stop, memory_order_relaxed)) {
        for (int i = 0; i < 256; i++) {
            size_t kl = key_of(xorshift(&g->seed) % nkeys, k), vl;
            if (kv_get_into(g->s, k, kl, buf, sizeof buf, &vl, NULL) != KV_OK)
                abort();
        }
        ops += 256;
    }
    g->ops = ops;
    return NULL;
}

static double gets_per_s(kv_store *s, int threads)
{
    atomic_bool stop = false;
    getter g[2];
    pthread_t t[2];
    double t0 = now_s();
    for (int i = 0; i < threads; i++) {
        g[i] = (getter){s, 0x9e3779b97f4a7c15ull * (uint64_t)(i + 1), 0, &stop};
        pthread_create(&t[i], NULL, get_loop, &g[i]);
    }
    usleep((useconds_t)(seconds * 1e6));
    atomic_store(&stop, true);
    uint64_t ops = 0;
    for (int i = 0; i < threads; i++) {
        pthread_join(t[i], NULL);
        ops += g[i].ops;
    }
    return (double)ops / (now_s() - t0);
}

static int cmp_double(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}

static double median(double *v, int n)
{
    qsort(v, (size_t)n, sizeof *v, cmp_double);
    return n % 2 ? v[n / 2] : (v[n / 2 - 1] + v[n / 2]) / 2;
}

static void run_get(void)
{
    printf("# latest-value gets, %llu keys written %u times each, %zu-byte values, %.1f s per run\n",
           (unsigned long long)nkeys, nversions, value_len, seconds);
    printf("round history threads gets_per_s\n");
    double res[2][2][64];
    for (int r = 0; r < rounds; r++) {
        for (int h = 0; h < 2; h++) {
            int hist = (r % 2) ? 1 - h : h; /* alternate which goes first */
            kv_store *s = open_store(hist, 0);
            fill(s, nversions);
            for (int t = 1; t <= 2; t++) {
                double v = gets_per_s(s, t);
                res[hist][t - 1][r] = v;
                printf("%d %s %d %.0f\n", r + 1, hist ? "on" : "off", t, v);
                fflush(stdout);
            }
            kv_close(s);
        }
    }
    printf("# medians\n");
    for (int t = 1; t <= 2; t++) {
        double off = median(res[0][t - 1], rounds), on = median(res[1][t - 1], rounds);
        printf("threads %d: off %.0f, on %.0f, on/off %.3f\n", t, off, on, on / off);
    }
}

/* ---- memory ---------------------------------------------------------------- */

static uint64_t rss_bytes(void)
{
    FILE *f = fopen("/proc/self/statm", "r");
    unsigned long size = 0, res = 0;
    if (f) {
        if (fscanf(f, "%lu %lu", &size, &res) != 2)
            res = 0;
        fclose(f);
    }
    return (uint64_t)res * (uint64_t)sysconf(_SC_PAGESIZE);
}

static void run_memory(void)
{
    kv_store *s = open_store(true, 0);
    fill(s, 1);
    kv_reclaim(s, NULL);
    uint64_t rss0 = rss_bytes();
    fill(s, nversions);
    kv_reclaim(s, NULL);
    uint64_t rss1 = rss_bytes();
    kv_metrics m;
    kv_metrics_read(s, &m, sizeof m);
    printf("# %llu keys, %zu-byte values and %zu-byte keys, then every key written %u more times\n",
           (unsigned long long)nkeys, value_len, (size_t)16, nversions);
    printf("history_versions %llu\n", (unsigned long long)m.history_versions);
    printf("history_bytes %llu\n", (unsigned long long)m.history_bytes);
    printf("counted bytes per version %.1f\n", (double)m.history_bytes / (double)m.history_versions);
    printf("resident growth per version %.1f\n",
           (double)(rss1 - rss0) / (double)m.history_versions);
    printf("bytes of key and value per version %zu\n", value_len + 16);
    kv_close(s);
}

/* ---- compaction and write latency -------------------------------------------- */

#define HIST_BUCKETS 4096 /* log-linear latency buckets */

typedef struct lat {
    uint64_t counts[HIST_BUCKETS];
    uint64_t n, max;
} lat;

static unsigned bucket_of(uint64_t ns)
{
    /* 64 linear steps per power of two above 64 ns */
    if (ns < 64)
        return (unsigned)ns;
    unsigned p = 63u - (unsigned)__builtin_clzll(ns);
    unsigned b = (p - 5) * 64 + (unsigned)((ns >> (p - 6)) & 63);
    return b < HIST_BUCKETS ? b : HIST_BUCKETS - 1;
}

static uint64_t bucket_ns(unsigned b)
{
    if (b < 64)
        return b;
    unsigned p = b / 64 + 5;
    return ((uint64_t)1 << p) + ((uint64_t)(b % 64) << (p - 6));
}

static uint64_t percentile(const lat *l, double q)
{
    uint64_t want = (uint64_t)((double)l->n * q), seen = 0;
    for (unsigned b = 0; b < HIST_BUCKETS; b++) {
        seen += l->counts[b];
        if (seen > want)
            return bucket_ns(b);
    }
    return l->max;
}

typedef struct load {
    kv_store *s;
    atomic_bool stop;
    lat w;
    uint64_t reads;
    int compactor; /* 1: kv_compact every 10 ms */
} load;

static void *writer(void *arg)
{
    load *l = arg;
    char k[32], *val = malloc(value_len);
    memset(val, 'w', value_len);
    uint64_t seed = 42;
    while (!atomic_load_explicit(&l->stop, memory_order_relaxed)) {
        size_t kl = key_of(xorshift(&seed) % nkeys, k);
        uint64_t t0 = now_ns();
        if (kv_set(l->s, k, kl, val, value_len, NULL) != KV_OK)
            abort();
        uint64_t d = now_ns() - t0;
        l->w.counts[bucket_of(d)]++;
        l->w.n++;
        if (d > l->w.max)
            l->w.max = d;
    }
    free(val);
    return NULL;
}

static void *reader(void *arg)
{
    load *l = arg;
    char k[32], buf[4096];
    uint64_t seed = 7, n = 0;
    while (!atomic_load_explicit(&l->stop, memory_order_relaxed)) {
        size_t kl = key_of(xorshift(&seed) % nkeys, k), vl;
        (void)kv_get_into(l->s, k, kl, buf, sizeof buf, &vl, NULL);
        n++;
    }
    l->reads = n;
    return NULL;
}

static void *compactor(void *arg)
{
    load *l = arg;
    while (!atomic_load_explicit(&l->stop, memory_order_relaxed)) {
        uint64_t latest = kv_revision(l->s);
        if (latest > 10000)
            (void)kv_compact(l->s, latest - 10000);
        usleep(10000);
    }
    return NULL;
}

static void run_case(const char *name, bool history, uint64_t bytes, int compacting)
{
    kv_store *s = open_store(history, bytes);
    fill(s, 1);
    load *l = calloc(1, sizeof *l);
    l->s = s;
    pthread_t w, r, c;
    pthread_create(&w, NULL, writer, l);
    pthread_create(&r, NULL, reader, l);
    if (compacting)
        pthread_create(&c, NULL, compactor, l);
    usleep((useconds_t)(seconds * 1e6));
    atomic_store(&l->stop, true);
    pthread_join(w, NULL);
    pthread_join(r, NULL);
    if (compacting)
        pthread_join(c, NULL);
    kv_metrics m;
    kv_metrics_read(s, &m, sizeof m);
    printf("%-22s %10.0f %8llu %8llu %8llu %10llu %12llu %12llu\n", name,
           (double)l->w.n / seconds, (unsigned long long)percentile(&l->w, 0.50),
           (unsigned long long)percentile(&l->w, 0.99),
           (unsigned long long)percentile(&l->w, 0.999), (unsigned long long)l->w.max,
           (unsigned long long)m.history_bytes, (unsigned long long)m.compact_revision);
    fflush(stdout);
    free(l);
    kv_close(s);
}

static void run_compact(void)
{
    printf("# one writer (random keys of %llu, %zu-byte values) and one reader, %.1f s per case;"
           " set latency in ns\n",
           (unsigned long long)nkeys, value_len, seconds);
    printf("%-22s %10s %8s %8s %8s %10s %12s %12s\n", "case", "sets/s", "p50", "p99", "p99.9",
           "max", "hist_bytes", "compact_rev");
    for (int r = 0; r < rounds; r++) {
        run_case("history-off", false, 0, 0);
        run_case("history-on", true, 0, 0);
        run_case("history-compact-10ms", true, 0, 1);
        /* a bound the run passes many times over */
        run_case("history-bytes-bound", true, (uint64_t)(value_len + 100) * nkeys / 4, 0);
    }
}

int main(int argc, char **argv)
{
    if (argc < 2) {
        fprintf(stderr, "usage: kvbench_history get|memory|compact [options]\n");
        return 2;
    }
    const char *mode = argv[1];
    static const struct option opts[] = {{"keys", required_argument, 0, 'k'},
                                         {"versions", required_argument, 0, 'v'},
                                         {"seconds", required_argument, 0, 's'},
                                         {"rounds", required_argument, 0, 'r'},
                                         {"value-size", required_argument, 0, 'b'},
                                         {0, 0, 0, 0}};
    int o;
    optind = 2;
    while ((o = getopt_long(argc, argv, "", opts, NULL)) != -1) {
        switch (o) {
        case 'k': nkeys = strtoull(optarg, NULL, 10); break;
        case 'v': nversions = (unsigned)strtoul(optarg, NULL, 10); break;
        case 's': seconds = strtod(optarg, NULL); break;
        case 'r': rounds = atoi(optarg); break;
        case 'b': value_len = strtoull(optarg, NULL, 10); break;
        default:
            fprintf(stderr, "kvbench_history: bad option\n");
            return 2;
        }
    }
    if (nkeys == 0 || nversions == 0 || seconds <= 0 || rounds < 1 || rounds > 64 ||
        value_len == 0 || value_len > 4000) {
        fprintf(stderr, "kvbench_history: an option is out of range\n");
        return 2;
    }
    if (strcmp(mode, "get") == 0)
        run_get();
    else if (strcmp(mode, "memory") == 0)
        run_memory();
    else if (strcmp(mode, "compact") == 0)
        run_compact();
    else {
        fprintf(stderr, "kvbench_history: unknown mode %s\n", mode);
        return 2;
    }
    return 0;
}
