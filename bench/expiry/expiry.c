/*
 * expiry.c - kvbench_expiry: what expiry costs in memory, and how fast the
 * active expiry gives memory back.
 *
 *   1. Bytes per key: N keys ("key:%08u", 12 bytes) with V-byte values, once
 *      without and once with an expiry time, each in a fresh store sized
 *      for N (memory_bytes / N, index included).
 *   2. Residency: N keys all set with the same TTL (default 10 s: every key
 *      expires within the same second, the worst case for Redis's sampling),
 *      then nothing but sampling: every 250 ms the keys still resident
 *      (kv_metrics.keys: expired ones count until removed), the keys removed
 *      so far and the process's CPU use over the interval (getrusage; the
 *      only busy thread is the store's expiry thread).
 *
 * Usage: kvbench_expiry [--keys N] [--ttl-ms T] [--value-size V] [--tail-s S]
 */
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <time.h>

#include "kv.h"

static double now_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static double cpu_s(void)
{
    struct rusage ru;
    getrusage(RUSAGE_SELF, &ru);
    return (double)ru.ru_utime.tv_sec + (double)ru.ru_utime.tv_usec / 1e6 +
           (double)ru.ru_stime.tv_sec + (double)ru.ru_stime.tv_usec / 1e6;
}

static kv_metrics metrics(kv_store *s)
{
    kv_metrics m;
    memset(&m, 0, sizeof m);
    kv_metrics_read(s, &m, sizeof m);
    return m;
}

static kv_store *load(size_t n, size_t vsize, uint64_t ttl_ms)
{
    kv_options o;
    kv_options_init(&o);
    o.initial_capacity = n;
    kv_store *s;
    if (kv_open(&o, &s) != KV_OK)
        exit(1);
    char key[32], *val = malloc(vsize ? vsize : 1);
    memset(val, 'v', vsize);
    uint64_t at = ttl_ms ? kv_clock_ms(s) + ttl_ms : 0;
    for (size_t i = 0; i < n; i++) {
        int kl = snprintf(key, sizeof key, "key:%08zu", i);
        if (kv_set_ex(s, key, (size_t)kl, val, vsize, at, NULL) != KV_OK)
            exit(1);
    }
    free(val);
    return s;
}

int main(int argc, char **argv)
{
    size_t n = 1000000, vsize = 64;
    uint64_t ttl = 10000;
    double tail = 5;
    static const struct option opts[] = {{"keys", required_argument, NULL, 'k'},
                                         {"ttl-ms", required_argument, NULL, 't'},
                                         {"value-size", required_argument, NULL, 'v'},
                                         {"tail-s", required_argument, NULL, 'a'},
                                         {NULL, 0, NULL, 0}};
    for (int c; (c = getopt_long(argc, argv, "", opts, NULL)) != -1;) {
        switch (c) {
        case 'k': n = strtoull(optarg, NULL, 10); break;
        case 't': ttl = strtoull(optarg, NULL, 10); break;
        case 'v': vsize = strtoull(optarg, NULL, 10); break;
        case 'a': tail = strtod(optarg, NULL); break;
        default:
            fprintf(stderr, "usage: %s [--keys N] [--ttl-ms T] [--value-size V] [--tail-s S]\n",
                    argv[0]);
            return 2;
        }
    }
    printf("# kvbench_expiry: libkv %s, %zu keys of 12 bytes, %zu-byte values\n", kv_version(),
           n, vsize);

    /* 1. Bytes per key. */
    kv_store *s = load(n, vsize, 0);
    kv_metrics m0 = metrics(s);
    kv_close(s);
    s = load(n, vsize, 3600 * 1000);
    kv_metrics m1 = metrics(s);
    kv_close(s);
    printf("bytes_per_key without_ttl %.1f  with_ttl %.1f  (memory_bytes %llu / %llu)\n",
           (double)m0.memory_bytes / (double)n, (double)m1.memory_bytes / (double)n,
           (unsigned long long)m0.memory_bytes, (unsigned long long)m1.memory_bytes);

    /* 2. Residency of expired keys and the expiry thread's CPU. */
    double t0 = now_s();
    s = load(n, vsize, ttl);
    double loaded = now_s() - t0;
    printf("loaded %zu keys with ttl %llu ms in %.2f s (all expire between t=%.2f s and "
           "t=%.2f s)\n",
           n, (unsigned long long)ttl, loaded, (double)ttl / 1000, (double)ttl / 1000 + loaded);
    printf("%8s %10s %10s %10s %8s\n", "t_s", "resident", "expired", "removed", "cpu_%");
    double end = (double)ttl / 1000 + loaded + tail, last_t = now_s() - t0, last_cpu = cpu_s();
    double peak_cpu = 0, cpu_total = 0;
    for (;;) {
        struct timespec ts = {0, 250 * 1000 * 1000};
        nanosleep(&ts, NULL);
        double t = now_s() - t0, c = cpu_s();
        kv_metrics m = metrics(s);
        uint64_t clock = kv_clock_ms(s);
        (void)clock;
        double pct = 100 * (c - last_cpu) / (t - last_t);
        if (t > loaded + 0.3) {
            cpu_total += c - last_cpu;
            if (pct > peak_cpu)
                peak_cpu = pct;
        }
        /* expired but resident: every key has expired once t >= ttl + loaded */
        printf("%8.2f %10llu %10s %10llu %8.1f\n", t, (unsigned long long)m.keys,
               t >= (double)ttl / 1000 + loaded ? "all" : (t >= (double)ttl / 1000 ? "some" : "0"),
               (unsigned long long)m.expired_keys, pct);
        last_t = t;
        last_cpu = c;
        if (t >= end)
            break;
    }
    kv_metrics m = metrics(s);
    printf("summary: removed %llu of %zu; peak cpu %.1f%% of a core over 250 ms; expiry "
           "thread cpu after loading %.2f s in %.1f s\n",
           (unsigned long long)m.expired_keys, n, peak_cpu, cpu_total, end - loaded);
    kv_close(s);
    return 0;
}
