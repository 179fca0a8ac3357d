/*
 * rss.c - kvbench_evict_rss: the process's resident size under a memory
 * limit while writers fill the store forever (new keys only, so every
 * write past the start evicts).
 *
 * T threads set keys "t<thread>:<n>" with V-byte values until F times the
 * limit has been written; every tenth of the way the program prints the
 * resident size (VmRSS from /proc/self/status), kv_metrics.memory_used,
 * keys held, keys evicted and the index's size. The last line gives the
 * peak resident size over the limit. Memory, not timing: any machine
 * gives about the same figures.
 *
 * Usage: kvbench_evict_rss [--limit BYTES] [--value-size V] [--threads T]
 *        [--fill F] [--policy NAME]
 */
#include <getopt.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "kv.h"

static kv_store *store;
static size_t vlen = 100;
static uint64_t per_thread;
static atomic_uint_fast64_t written;

static long rss_kib(void)
{
    FILE *f = fopen("/proc/self/status", "r");
    char line[256];
    long kib = 0;
    while (f && fgets(line, sizeof line, f))
        if (strncmp(line, "VmRSS:", 6) == 0)
            kib = strtol(line + 6, NULL, 10);
    if (f)
        fclose(f);
    return kib;
}

static void *writer(void *arg)
{
    long id = (long)(intptr_t)arg;
    char key[48], *val = malloc(vlen);
    memset(val, 'v', vlen);
    for (uint64_t i = 0; i < per_thread; i++) {
        int kl = snprintf(key, sizeof key, "t%ld:%llu", id, (unsigned long long)i);
        int rc = kv_set(store, key, (size_t)kl, val, vlen, NULL);
        if (rc != KV_OK) {
            fprintf(stderr, "kv_set: %s\n", kv_strerror(rc));
            exit(1);
        }
        atomic_fetch_add_explicit(&written, 1, memory_order_relaxed);
    }
    free(val);
    return NULL;
}

int main(int argc, char **argv)
{
    uint64_t limit = (uint64_t)1 << 30;
    int threads = 2;
    double fill = 4;
    const char *policy = "allkeys-lru";
    static const struct option lo[] = {{"limit", 1, 0, 'l'},   {"value-size", 1, 0, 'v'},
                                       {"threads", 1, 0, 't'}, {"fill", 1, 0, 'f'},
                                       {"policy", 1, 0, 'p'},  {0, 0, 0, 0}};
    int c;
    while ((c = getopt_long(argc, argv, "", lo, NULL)) != -1) {
        switch (c) {
        case 'l': limit = strtoull(optarg, NULL, 10); break;
        case 'v': vlen = strtoull(optarg, NULL, 10); break;
        case 't': threads = atoi(optarg); break;
        case 'f': fill = strtod(optarg, NULL); break;
        case 'p': policy = optarg; break;
        default: return 2;
        }
    }
    int pol = kv_eviction_policy_parse(policy);
    if (threads < 1 || threads > 64 || pol < 0 || pol == KV_EVICT_NOEVICTION || !vlen ||
        fill <= 0) {
        fprintf(stderr, "usage: %s [--limit BYTES] [--value-size V] [--threads T] [--fill F] "
                        "[--policy NAME (not noeviction)]\n", argv[0]);
        return 2;
    }
    long base = rss_kib();
    kv_config cfg;
    kv_config_init(&cfg, sizeof cfg);
    cfg.max_memory = limit;
    cfg.eviction_policy = pol;
    if (kv_open_config(&cfg, &store) != KV_OK) {
        fprintf(stderr, "cannot open the store (limit at least 1 MiB)\n");
        return 1;
    }
    /* what one key costs, roughly: the key, the value, a header, a slot */
    per_thread = (uint64_t)((double)limit * fill / (double)(vlen + 40) / threads);
    printf("limit %llu bytes (%.1f MiB), %s, %zu-byte values, %d threads writing %.1fx the "
           "limit (%llu keys each); resident size before the store: %ld KiB\n",
           (unsigned long long)limit, (double)limit / 1048576.0, policy, vlen, threads, fill,
           (unsigned long long)per_thread, base);
    pthread_t t[64];
    for (int i = 0; i < threads; i++)
        pthread_create(&t[i], NULL, writer, (void *)(intptr_t)i);
    uint64_t total = per_thread * (uint64_t)threads, next = total / 10;
    long peak = 0;
    for (;;) {
        uint64_t w = atomic_load(&written);
        long r = rss_kib() - base;
        if (r > peak)
            peak = r;
        if (w >= next || w >= total) {
            kv_metrics m;
            kv_metrics_read(store, &m, sizeof m);
            printf("written %10llu  rss %9ld KiB (%6.2f%% of the limit)  memory_used %10llu  "
                   "keys %9llu  evicted %10llu  table_slots %llu\n",
                   (unsigned long long)w, r, 100.0 * (double)r * 1024 / (double)limit,
                   (unsigned long long)m.memory_used, (unsigned long long)m.keys,
                   (unsigned long long)m.evicted_keys, (unsigned long long)m.table_slots);
            fflush(stdout);
            next += total / 10;
        }
        if (w >= total)
            break;
        struct timespec ts = {0, 20000000};
        nanosleep(&ts, NULL);
    }
    for (int i = 0; i < threads; i++)
        pthread_join(t[i], NULL);
    printf("peak resident size of the store (sampled every 20 ms): %ld KiB = %.2f%% of the "
           "limit\n",
           peak, 100.0 * (double)peak * 1024 / (double)limit);
    kv_close(store);
    return 0;
}
