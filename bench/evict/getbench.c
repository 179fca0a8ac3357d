/*
 * getbench.c - kvbench_evict_get: what access tracking costs gets.
 *
 * For each configuration - no memory limit, and a limit (big enough that
 * nothing is evicted during the run) with allkeys-lru, allkeys-lfu and
 * allkeys-random - a store is filled with K keys, then T threads
 * (1, then 2) read random keys (uniform, or Zipf-like hot keys with
 * --hot) for S seconds each, and the program prints gets per second.
 * Without writes the access clock never moves and readers only compare
 * their key's access word; --write-every N makes each reader also set the
 * key it read every N gets, so that the clock ticks and hot keys' words
 * are rewritten once per tick (the worst case for tracking). The
 * issue's targets: with eviction off gets cost what they cost without the
 * feature; with it on, 2 threads reach at least 1.8x one thread and one
 * thread loses at most 10% against eviction off.
 *
 * All four stores are filled first and stay open; --rounds R runs every
 * configuration R times, interleaved (the order rotates each round), and
 * the summary gives medians: of the gets per second, of each round's ratio
 * against eviction off in that same round (so a slow spell of the machine
 * hits both sides), and of the same ratio in gets per CPU-second of the
 * reader threads (CLOCK_THREAD_CPUTIME_ID: time the scheduler gave another
 * process does not count, which makes busy machines' figures usable).
 *
 * A timing benchmark: run it on a quiet machine (see bench/README.md).
 * For a cache model instead of a clock, --only NAME runs one configuration
 * and --gets N makes each reader do exactly N gets (one round, one
 * thread), so that e.g.
 *   valgrind --tool=callgrind --cache-sim=yes --toggle-collect=reader \
 *       kvbench_evict_get --only allkeys-lru --gets 1000000
 * counts the instructions and cache misses of a fixed number of gets.
 *
 * Usage: kvbench_evict_get [--keys K] [--seconds S] [--value-size V] [--hot]
 *        [--write-every N] [--rounds R] [--only NAME] [--gets N]
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

#include "kv.h"

static uint64_t nkeys;
static double seconds = 2.0;
static int hot;
static uint64_t write_every; /* --write-every N: each reader also sets a key every N gets */
static size_t value_len = 64;
static uint64_t fixed_gets; /* --gets N: each reader stops after N gets */
static atomic_bool go, stop;

typedef struct reader_arg {
    kv_store *store;
    unsigned id;
    uint64_t gets;   /* out */
    double cpu_s;    /* out: the thread's CPU time while reading */
} reader_arg;

static double now_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static double thread_cpu_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_THREAD_CPUTIME_ID, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
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

__attribute__((noinline)) static void *reader(void *p)
{
    reader_arg *a = p;
    kv_store *store = a->store;
    uint64_t rnd = 0x9e3779b97f4a7c15ull * ((uint64_t)a->id + 1), n = 0;
    char key[32], buf[4096];
    while (!atomic_load_explicit(&go, memory_order_acquire))
        ;
    double cpu0 = thread_cpu_s();
    while (fixed_gets ? n < fixed_gets : !atomic_load_explicit(&stop, memory_order_relaxed)) {
        for (int i = 0; i < 256; i++) {
            uint64_t r = xorshift(&rnd);
            /* --hot: 90% of reads go to 1% of the keys */
            uint64_t k = hot && (r & 0xff) < 230 ? (r >> 8) % (nkeys / 100 + 1) : (r >> 8) % nkeys;
            int kl = snprintf(key, sizeof key, "key:%08llu", (unsigned long long)k);
            size_t vlen;
            (void)kv_get_into(store, key, (size_t)kl, buf, sizeof buf, &vlen, NULL);
            if (write_every && (n + (uint64_t)i) % write_every == 0)
                (void)kv_set(store, key, (size_t)kl, buf, value_len, NULL);
        }
        n += 256;
    }
    a->cpu_s = thread_cpu_s() - cpu0;
    a->gets = n;
    return NULL;
}

typedef struct result {
    double rate;     /* gets per second */
    double cpu_rate; /* gets per CPU-second of the readers */
} result;

static result run(kv_store *store, int threads)
{
    pthread_t t[2];
    reader_arg a[2];
    atomic_store(&go, false);
    atomic_store(&stop, false);
    for (int i = 0; i < threads; i++) {
        a[i] = (reader_arg){.store = store, .id = (unsigned)i};
        pthread_create(&t[i], NULL, reader, &a[i]);
    }
    double start = now_s();
    atomic_store_explicit(&go, true, memory_order_release);
    while (!fixed_gets && now_s() - start < seconds) {
        struct timespec ts = {0, 10000000};
        nanosleep(&ts, NULL);
    }
    atomic_store(&stop, true);
    uint64_t total = 0;
    double cpu = 0;
    for (int i = 0; i < threads; i++) {
        pthread_join(t[i], NULL);
        total += a[i].gets;
        cpu += a[i].cpu_s;
    }
    return (result){(double)total / (now_s() - start), cpu > 0 ? (double)total / cpu : 0};
}

static int cmp_double(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}

static double median(double *v, size_t n)
{
    qsort(v, n, sizeof *v, cmp_double);
    return n % 2 ? v[n / 2] : (v[n / 2 - 1] + v[n / 2]) / 2;
}

#define NCONFIGS 4
#define MAX_ROUNDS 64

int main(int argc, char **argv)
{
    size_t vlen = 64;
    unsigned rounds = 1;
    const char *only = NULL;
    nkeys = 1000000;
    static const struct option lo[] = {{"keys", 1, 0, 'k'},        {"seconds", 1, 0, 's'},
                                       {"value-size", 1, 0, 'v'},  {"hot", 0, 0, 'h'},
                                       {"write-every", 1, 0, 'w'}, {"rounds", 1, 0, 'r'},
                                       {"only", 1, 0, 'o'},        {"gets", 1, 0, 'g'},
                                       {0, 0, 0, 0}};
    int c;
    while ((c = getopt_long(argc, argv, "", lo, NULL)) != -1) {
        switch (c) {
        case 'k': nkeys = strtoull(optarg, NULL, 10); break;
        case 's': seconds = strtod(optarg, NULL); break;
        case 'v': vlen = strtoull(optarg, NULL, 10); break;
        case 'h': hot = 1; break;
        case 'w': write_every = strtoull(optarg, NULL, 10); break;
        case 'r': rounds = (unsigned)strtoul(optarg, NULL, 10); break;
        case 'o': only = optarg; break;
        case 'g': fixed_gets = strtoull(optarg, NULL, 10); break;
        default: return 2;
        }
    }
    value_len = vlen;
    if (fixed_gets)
        rounds = 1;
    if (nkeys == 0 || vlen > 4096 || rounds == 0 || rounds > MAX_ROUNDS) {
        fprintf(stderr,
                "usage: %s [--keys K] [--seconds S] [--value-size V<=4096] [--hot] "
                "[--write-every N] [--rounds R<=%d] [--only NAME] [--gets N]\n",
                argv[0], MAX_ROUNDS);
        return 2;
    }
    static const struct {
        const char *name;
        int policy;
        int limited;
    } configs[NCONFIGS] = {{"off", KV_EVICT_NOEVICTION, 0},
                           {"allkeys-lru", KV_EVICT_ALLKEYS_LRU, 1},
                           {"allkeys-lfu", KV_EVICT_ALLKEYS_LFU, 1},
                           {"allkeys-random", KV_EVICT_ALLKEYS_RANDOM, 1}};
    bool use[NCONFIGS];
    for (size_t i = 0; i < NCONFIGS; i++)
        use[i] = !only || strcmp(only, configs[i].name) == 0;
    if (only && !use[0] && !use[1] && !use[2] && !use[3]) {
        fprintf(stderr, "--only: off, allkeys-lru, allkeys-lfu or allkeys-random\n");
        return 2;
    }
    char *val = malloc(vlen ? vlen : 1);
    memset(val, 'v', vlen);
    char per_run[64];
    if (fixed_gets)
        snprintf(per_run, sizeof per_run, "%llu gets", (unsigned long long)fixed_gets);
    else
        snprintf(per_run, sizeof per_run, "%.1f s", seconds);
    printf("%llu keys, %zu-byte values, %s reads, %s per run, %s, %u round%s\n",
           (unsigned long long)nkeys, vlen, hot ? "hot (90% on 1% of keys)" : "uniform", per_run,
           write_every ? "with writes" : "no writes", rounds, rounds > 1 ? "s" : "");
    kv_store *stores[NCONFIGS] = {NULL};
    for (size_t i = 0; i < NCONFIGS; i++) {
        if (!use[i])
            continue;
        kv_config cfg;
        kv_config_init(&cfg, sizeof cfg);
        cfg.initial_capacity = nkeys;
        /* room for every key: nothing is evicted, only tracking runs */
        cfg.max_memory = configs[i].limited ? nkeys * (vlen + 128) * 2 + ((uint64_t)64 << 20) : 0;
        cfg.eviction_policy = configs[i].policy;
        if (kv_open_config(&cfg, &stores[i]) != KV_OK) {
            fprintf(stderr, "cannot open the store\n");
            return 1;
        }
        char key[32];
        for (uint64_t k = 0; k < nkeys; k++) {
            int kl = snprintf(key, sizeof key, "key:%08llu", (unsigned long long)k);
            if (kv_set(stores[i], key, (size_t)kl, val, vlen, NULL) != KV_OK) {
                fprintf(stderr, "set failed\n");
                return 1;
            }
        }
    }
    static result one[NCONFIGS][MAX_ROUNDS], two[NCONFIGS][MAX_ROUNDS];
    for (unsigned r = 0; r < rounds; r++) {
        for (size_t j = 0; j < NCONFIGS; j++) {
            size_t i = (j + r) % NCONFIGS; /* each round starts elsewhere */
            if (!use[i])
                continue;
            one[i][r] = run(stores[i], 1);
            two[i][r] = fixed_gets ? one[i][r] : run(stores[i], 2);
        }
        if (rounds > 1) {
            printf("round %u:", r + 1);
            for (size_t i = 0; i < NCONFIGS; i++)
                if (use[i])
                    printf("  %s %.2f/%.2f", configs[i].name, one[i][r].rate / 1e6,
                           two[i][r].rate / 1e6);
            printf("  (M gets/s, 1/2 threads)\n");
        }
    }
    for (size_t i = 0; i < NCONFIGS; i++) {
        if (!use[i])
            continue;
        if (only) { /* one configuration: nothing to compare with */
            printf("%-15s 1 thread %8.2f M gets/s\n", configs[i].name, one[i][0].rate / 1e6);
            continue;
        }
        double r1[MAX_ROUNDS], r2[MAX_ROUNDS], vs[MAX_ROUNDS], vs_cpu[MAX_ROUNDS],
            scale[MAX_ROUNDS];
        for (unsigned r = 0; r < rounds; r++) {
            r1[r] = one[i][r].rate;
            r2[r] = two[i][r].rate;
            vs[r] = one[i][r].rate / one[0][r].rate - 1;
            vs_cpu[r] = one[i][r].cpu_rate / one[0][r].cpu_rate - 1;
            scale[r] = two[i][r].rate / one[i][r].rate;
        }
        kv_metrics m;
        kv_metrics_read(stores[i], &m, sizeof m);
        printf("%-15s 1 thread %8.2f M gets/s (%+.1f%% vs off, %+.1f%% per CPU-s)  2 threads "
               "%8.2f M gets/s (%.2fx)  evicted %llu\n",
               configs[i].name, median(r1, rounds) / 1e6, median(vs, rounds) * 100,
               median(vs_cpu, rounds) * 100, median(r2, rounds) / 1e6, median(scale, rounds),
               (unsigned long long)m.evicted_keys);
    }
    for (size_t i = 0; i < NCONFIGS; i++)
        if (stores[i])
            kv_close(stores[i]);
    free(val);
    return 0;
}
