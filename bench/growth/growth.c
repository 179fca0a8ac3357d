/*
 * growth.c - kvbench_growth: does the index's online growth stop readers?
 *
 * Pre-loads P keys into a store sized for them, then W writer threads
 * insert N new keys (the index doubles several times) while R reader
 * threads get random pre-loaded keys in a loop. Reports the insert rate,
 * the readers' get rate during the growth, every get that failed to find
 * its key (must be 0), and the longest single get any reader saw: a
 * stop-the-world rehash would show up as a get lasting as long as a resize.
 *
 *   kvbench_growth [--preload P] [--insert N] [--writers W] [--readers R]
 *                  [--overwrite]
 *   defaults: 1,000,000 / 10,000,000 / 2 / 1. --overwrite is the baseline:
 *   the writers replace pre-loaded keys instead, so the index never grows.
 */
#include <kv.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

static kv_store *store;
static size_t preload = 1000000, insert = 10000000;
static int nwriters = 2, nreaders = 1;
static int overwrite; /* baseline: writers replace pre-loaded keys, no growth */
static atomic_int writers_done;
static atomic_ulong misses;

typedef struct reader_stats {
    unsigned long gets;
    unsigned long slow; /* gets over 1 ms */
    double max_get_s;
} reader_stats;

static double now(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return ts.tv_sec + ts.tv_nsec / 1e9;
}

static int key_of(char *buf, size_t n)
{
    return snprintf(buf, 16, "key:%011zu", n);
}

static void *writer(void *arg)
{
    size_t id = (size_t)(uintptr_t)arg, per = insert / (size_t)nwriters;
    char k[16], v[64];
    memset(v, 'w', sizeof v);
    for (size_t i = 0; i < per; i++) {
        size_t key = overwrite ? (id * per + i) % preload : preload + id * per + i;
        int n = key_of(k, key);
        if (kv_set(store, k, (size_t)n, v, sizeof v, NULL) != KV_OK) {
            fprintf(stderr, "kvbench_growth: kv_set failed\n");
            exit(1);
        }
    }
    atomic_fetch_add(&writers_done, 1);
    return NULL;
}

static void *reader(void *arg)
{
    reader_stats *st = arg;
    char k[16], buf[64];
    unsigned long x = (unsigned long)(uintptr_t)st * 2654435761u + 1;
    while (atomic_load_explicit(&writers_done, memory_order_relaxed) < nwriters) {
        x = x * 6364136223846793005ul + 1442695040888963407ul;
        int n = key_of(k, (size_t)(x >> 33) % preload);
        size_t vlen;
        double t0 = now();
        int rc = kv_get_into(store, k, (size_t)n, buf, sizeof buf, &vlen, NULL);
        double dt = now() - t0;
        if (rc != KV_OK)
            atomic_fetch_add(&misses, 1);
        if (dt > st->max_get_s)
            st->max_get_s = dt;
        st->slow += dt > 1e-3;
        st->gets++;
    }
    return NULL;
}

static size_t arg_size(int argc, char **argv, int *i)
{
    if (*i + 1 >= argc) {
        fprintf(stderr, "kvbench_growth: %s needs a value\n", argv[*i]);
        exit(2);
    }
    return (size_t)strtoull(argv[++*i], NULL, 10);
}

int main(int argc, char **argv)
{
    for (int i = 1; i < argc; i++) {
        if (!strcmp(argv[i], "--preload")) preload = arg_size(argc, argv, &i);
        else if (!strcmp(argv[i], "--insert")) insert = arg_size(argc, argv, &i);
        else if (!strcmp(argv[i], "--writers")) nwriters = (int)arg_size(argc, argv, &i);
        else if (!strcmp(argv[i], "--readers")) nreaders = (int)arg_size(argc, argv, &i);
        else if (!strcmp(argv[i], "--overwrite")) overwrite = 1;
        else {
            fprintf(stderr, "usage: kvbench_growth [--preload P] [--insert N] "
                            "[--writers W] [--readers R] [--overwrite]\n");
            return 2;
        }
    }
    if (preload == 0 || nwriters < 1 || nreaders < 1 || nreaders > 64) {
        fprintf(stderr, "kvbench_growth: preload, writers and readers must be >= 1\n");
        return 2;
    }
    kv_options o;
    kv_options_init(&o);
    o.initial_capacity = preload;
    if (kv_open(&o, &store) != KV_OK)
        return 1;
    char k[16], v[64];
    memset(v, 'p', sizeof v);
    for (size_t i = 0; i < preload; i++)
        kv_set(store, k, (size_t)key_of(k, i), v, sizeof v, NULL);
    kv_metrics m0;
    kv_metrics_read(store, &m0, sizeof m0);

    pthread_t w[64], r[64];
    reader_stats rs[64] = {{0}};
    double t0 = now();
    for (int i = 0; i < nreaders; i++)
        pthread_create(&r[i], NULL, reader, &rs[i]);
    for (int i = 0; i < nwriters && i < 64; i++)
        pthread_create(&w[i], NULL, writer, (void *)(uintptr_t)i);
    for (int i = 0; i < nwriters && i < 64; i++)
        pthread_join(w[i], NULL);
    double t1 = now();
    unsigned long gets = 0, slow = 0;
    double max_get = 0;
    for (int i = 0; i < nreaders; i++) {
        pthread_join(r[i], NULL);
        gets += rs[i].gets;
        slow += rs[i].slow;
        if (rs[i].max_get_s > max_get)
            max_get = rs[i].max_get_s;
    }
    kv_metrics m1;
    kv_metrics_read(store, &m1, sizeof m1);
    printf("preloaded %zu keys, %s %zu keys with %d writers while %d readers read\n",
           preload, overwrite ? "overwrote" : "inserted", insert, nwriters, nreaders);
    printf("index: %llu -> %llu slots, %llu resizes during the run\n",
           (unsigned long long)m0.table_slots, (unsigned long long)m1.table_slots,
           (unsigned long long)(m1.table_resizes - m0.table_resizes));
    printf("writes: %.2f M/s over %.2f s\n", insert / (t1 - t0) / 1e6, t1 - t0);
    printf("reader gets meanwhile: %.2f M/s, misses %lu (must be 0)\n",
           gets / (t1 - t0) / 1e6, atomic_load(&misses));
    printf("longest get %.3f ms; %lu of %lu gets took over 1 ms\n", max_get * 1e3, slow, gets);
    kv_close(store);
    return atomic_load(&misses) != 0;
}
