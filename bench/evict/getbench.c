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
 * A timing benchmark: run it on a quiet machine (see bench/README.md).
 *
 * Usage: kvbench_evict_get [--keys K] [--seconds S] [--value-size V] [--hot]
 *        [--write-every N]
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

static kv_store *store;
static uint64_t nkeys;
static double seconds = 2.0;
static int hot;
static uint64_t write_every; /* --write-every N: each reader also sets a key every N gets */
static size_t value_len = 64;
static atomic_bool go, stop;

static double now_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
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

static void *reader(void *arg)
{
    uint64_t rnd = 0x9e3779b97f4a7c15ull * ((uint64_t)(uintptr_t)arg + 1), n = 0;
    char key[32], buf[4096];
    while (!atomic_load_explicit(&go, memory_order_acquire))
        ;
    while (!atomic_load_explicit(&stop, memory_order_relaxed)) {
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
    return (void *)(uintptr_t)n;
}

static double run(int threads)
{
    pthread_t t[2];
    atomic_store(&go, false);
    atomic_store(&stop, false);
    for (int i = 0; i < threads; i++)
        pthread_create(&t[i], NULL, reader, (void *)(uintptr_t)i);
    double start = now_s();
    atomic_store_explicit(&go, true, memory_order_release);
    while (now_s() - start < seconds) {
        struct timespec ts = {0, 10000000};
        nanosleep(&ts, NULL);
    }
    atomic_store(&stop, true);
    uint64_t total = 0;
    for (int i = 0; i < threads; i++) {
        void *n;
        pthread_join(t[i], &n);
        total += (uint64_t)(uintptr_t)n;
    }
    return (double)total / (now_s() - start);
}

int main(int argc, char **argv)
{
    size_t vlen = 64;
    nkeys = 1000000;
    static const struct option lo[] = {{"keys", 1, 0, 'k'}, {"seconds", 1, 0, 's'},
                                       {"value-size", 1, 0, 'v'}, {"hot", 0, 0, 'h'},
                                       {"write-every", 1, 0, 'w'}, {0, 0, 0, 0}};
    int c;
    while ((c = getopt_long(argc, argv, "", lo, NULL)) != -1) {
        switch (c) {
        case 'k': nkeys = strtoull(optarg, NULL, 10); break;
        case 's': seconds = strtod(optarg, NULL); break;
        case 'v': vlen = strtoull(optarg, NULL, 10); break;
        case 'h': hot = 1; break;
        case 'w': write_every = strtoull(optarg, NULL, 10); break;
        default: return 2;
        }
    }
    value_len = vlen;
    if (nkeys == 0 || vlen > 4096) {
        fprintf(stderr, "usage: %s [--keys K] [--seconds S] [--value-size V<=4096] [--hot]\n",
                argv[0]);
        return 2;
    }
    static const struct {
        const char *name;
        int policy;
        int limited;
    } configs[] = {{"off", KV_EVICT_NOEVICTION, 0},
                   {"allkeys-lru", KV_EVICT_ALLKEYS_LRU, 1},
                   {"allkeys-lfu", KV_EVICT_ALLKEYS_LFU, 1},
                   {"allkeys-random", KV_EVICT_ALLKEYS_RANDOM, 1}};
    char *val = malloc(vlen ? vlen : 1);
    memset(val, 'v', vlen);
    printf("%llu keys, %zu-byte values, %s reads, %.1f s per run, %s\n",
           (unsigned long long)nkeys, vlen, hot ? "hot (90% on 1% of keys)" : "uniform",
           seconds, write_every ? "with writes" : "no writes");
    double base1 = 0;
    for (size_t i = 0; i < sizeof configs / sizeof configs[0]; i++) {
        kv_config cfg;
        kv_config_init(&cfg, sizeof cfg);
        cfg.initial_capacity = nkeys;
        /* room for every key: nothing is evicted, only tracking runs */
        cfg.max_memory = configs[i].limited ? nkeys * (vlen + 128) * 2 + ((uint64_t)64 << 20) : 0;
        cfg.eviction_policy = configs[i].policy;
        if (kv_open_config(&cfg, &store) != KV_OK) {
            fprintf(stderr, "cannot open the store\n");
            return 1;
        }
        char key[32];
        for (uint64_t k = 0; k < nkeys; k++) {
            int kl = snprintf(key, sizeof key, "key:%08llu", (unsigned long long)k);
            if (kv_set(store, key, (size_t)kl, val, vlen, NULL) != KV_OK) {
                fprintf(stderr, "set failed\n");
                return 1;
            }
        }
        double one = run(1), two = run(2);
        if (i == 0)
            base1 = one;
        kv_metrics m;
        kv_metrics_read(store, &m, sizeof m);
        printf("%-15s 1 thread %8.2f M gets/s (%+.1f%% vs off)  2 threads %8.2f M gets/s "
               "(%.2fx)  evicted %llu\n",
               configs[i].name, one / 1e6, (one / base1 - 1) * 100, two / 1e6, two / one,
               (unsigned long long)m.evicted_keys);
        kv_close(store);
    }
    free(val);
    return 0;
}
