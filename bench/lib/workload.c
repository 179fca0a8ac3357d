/*
 * workload.c - key choice (uniform, Zipfian) and the timed worker threads.
 *
 * A run starts nthreads threads, pins each to one CPU, lets them all start
 * together at a barrier, and stops them after the run's duration with a
 * flag they poll between small batches of operations. The rate is all
 * operations over the span from the first thread's start to the last
 * thread's stop.
 *
 * Zipfian keys follow Gray et al., "Quickly generating billion-record
 * synthetic databases" (SIGMOD 1994), as YCSB does, with theta = 0.99.
 */
#include "workload.h"

#include <math.h>
#include <pthread.h>
#include <sched.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>

const char *const kvb_workload_names[KVB_W_COUNT] = {
    "get", "get90set10", "get50set50", "set", "mget16", "mset4", "rmw_txn",
};

const char *const kvb_dist_names[KVB_D_COUNT] = {"uniform", "zipf"};

unsigned kvb_workload_keys(kvb_workload w)
{
    switch (w) {
    case KVB_W_MGET:
        return KVB_MGET_N;
    case KVB_W_MSET:
        return KVB_MSET_N;
    default:
        return 1;
    }
}

bool kvb_workload_supported(const kvb_contender *c, kvb_workload w)
{
    return w != KVB_W_MSET || c->mset != NULL;
}

/* ------------------------------------------------------------------------
 * Key choice
 * ---------------------------------------------------------------------- */

typedef struct zipf {
    double theta, alpha, zetan, eta, half_pow_theta;
    size_t n;
} zipf;

static void zipf_init(zipf *z, size_t n, double theta)
{
    double zetan = 0, zeta2 = 1 + pow(0.5, theta);
    for (size_t i = 1; i <= n; i++)
        zetan += pow((double)i, -theta);
    z->theta = theta;
    z->n = n;
    z->zetan = zetan;
    z->alpha = 1 / (1 - theta);
    z->eta = (1 - pow(2.0 / (double)n, 1 - theta)) / (1 - zeta2 / zetan);
    z->half_pow_theta = pow(0.5, theta);
}

static uint32_t zipf_next(const zipf *z, uint64_t *rng)
{
    double u = (double)(kvb_rand(rng) >> 11) * 0x1.0p-53;
    double uz = u * z->zetan;
    if (uz < 1)
        return 0;
    if (uz < 1 + z->half_pow_theta)
        return 1;
    size_t r = (size_t)((double)z->n * pow(z->eta * u - z->eta + 1, z->alpha));
    return (uint32_t)(r < z->n ? r : z->n - 1);
}

int kvb_rings_make(kvb_rings *r, size_t nthreads, size_t nkeys, kvb_dist dist, size_t len)
{
    *r = (kvb_rings){nthreads, len, calloc(nthreads, sizeof(uint32_t *))};
    if (!r->ring)
        return -1;
    zipf z = {0};
    if (dist == KVB_D_ZIPF)
        zipf_init(&z, nkeys, 0.99);
    for (size_t t = 0; t < nthreads; t++) {
        uint32_t *ring = malloc(len * sizeof *ring);
        if (!ring) {
            kvb_rings_free(r);
            return -1;
        }
        uint64_t rng = 0x9E3779B97F4A7C15ULL * (t + 1) + nkeys;
        for (size_t i = 0; i < len; i++)
            ring[i] = dist == KVB_D_ZIPF ? zipf_next(&z, &rng)
                                         : (uint32_t)(kvb_rand(&rng) % nkeys);
        r->ring[t] = ring;
    }
    return 0;
}

void kvb_rings_free(kvb_rings *r)
{
    if (r->ring)
        for (size_t t = 0; t < r->nthreads; t++)
            free(r->ring[t]);
    free(r->ring);
    r->ring = NULL;
}

/* ------------------------------------------------------------------------
 * Loading
 * ---------------------------------------------------------------------- */

int kvb_load(const kvb_contender *c, void *h, size_t nkeys)
{
    unsigned char *val = calloc(1, kvb_value_size ? kvb_value_size : 1);
    if (!val)
        return -1;
    memset(val, 'v', kvb_value_size);
    int rc = 0;
    c->thread_enter(h);
    for (size_t i = 0; i < nkeys && rc == 0; i++) {
        kvb_key k;
        kvb_key_make(&k, (uint32_t)i);
        kvb_counter_put(val, kvb_value_size, i);
        rc = c->set(h, &k, val, kvb_value_size) ? -1 : 0;
    }
    c->thread_leave(h);
    free(val);
    return rc;
}

/* ------------------------------------------------------------------------
 * Timed runs
 * ---------------------------------------------------------------------- */

typedef struct run {
    const kvb_contender *c;
    void *h;
    kvb_workload w;
    const kvb_rings *rings;
    pthread_barrier_t start;
    _Atomic int stop;
} run;

typedef struct worker {
    run *run;
    size_t index;
    int cpu;
    double t0, t1;
    double cpu0, cpu1; /* the thread's CPU time: what other processes left it */
    uint64_t ops, retries, errors, sum;
} worker;

static double thread_cpu(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_THREAD_CPUTIME_ID, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec * 1e-9;
}

#define BATCH 8 /* operations between looks at the stop flag */

static void *worker_main(void *arg)
{
    worker *wk = arg;
    run *r = wk->run;
    const kvb_contender *c = r->c;
    void *h = r->h;
    const uint32_t *ring = r->rings->ring[wk->index];
    size_t mask = r->rings->len - 1, pos = 0;
    uint64_t rng = 0xD1B54A32D192ED03ULL * (wk->index + 1);
    size_t vsize = kvb_value_size;
    size_t cap = vsize ? vsize : 1;
    unsigned char *val = malloc(cap), *buf = malloc(cap * KVB_MGET_N);
    uint64_t ops = 0, retries = 0, errors = 0, sum = 0;

    if (wk->cpu >= 0) {
        cpu_set_t set;
        CPU_ZERO(&set);
        CPU_SET(wk->cpu, &set);
        pthread_setaffinity_np(pthread_self(), sizeof set, &set);
    }
    if (val)
        memset(val, 'w', vsize);
    if (buf) /* read as a checksum even when values are empty */
        memset(buf, 0, cap * KVB_MGET_N);
    c->thread_enter(h);
    pthread_barrier_wait(&r->start);
    if (!val || !buf)
        errors++;
    wk->cpu0 = thread_cpu();
    wk->t0 = kvb_now();
    while (!errors && !atomic_load_explicit(&r->stop, memory_order_relaxed)) {
        for (int b = 0; b < BATCH; b++) {
            kvb_key keys[KVB_MGET_N];
            size_t vlen = 0;
            int rc = 0;
            switch (r->w) {
            case KVB_W_GET:
                kvb_key_make(&keys[0], ring[pos++ & mask]);
                rc = c->get(h, &keys[0], buf, cap, &vlen);
                sum += vlen + buf[0];
                break;
            case KVB_W_GET90:
            case KVB_W_GET50:
                kvb_key_make(&keys[0], ring[pos++ & mask]);
                if (kvb_rand(&rng) % 100 < (r->w == KVB_W_GET90 ? 10u : 50u)) {
                    kvb_counter_put(val, vsize, ops);
                    rc = c->set(h, &keys[0], val, vsize);
                } else {
                    rc = c->get(h, &keys[0], buf, cap, &vlen);
                    sum += vlen + buf[0];
                }
                break;
            case KVB_W_SET:
                kvb_key_make(&keys[0], ring[pos++ & mask]);
                kvb_counter_put(val, vsize, ops);
                rc = c->set(h, &keys[0], val, vsize);
                break;
            case KVB_W_MGET:
                for (int i = 0; i < KVB_MGET_N; i++)
                    kvb_key_make(&keys[i], ring[pos++ & mask]);
                rc = c->mget(h, keys, KVB_MGET_N, buf, cap, &sum);
                break;
            case KVB_W_MSET:
                for (int i = 0; i < KVB_MSET_N; i++)
                    kvb_key_make(&keys[i], ring[pos++ & mask]);
                kvb_counter_put(val, vsize, ops);
                rc = c->mset(h, keys, KVB_MSET_N, val, vsize);
                break;
            case KVB_W_RMW:
                kvb_key_make(&keys[0], ring[pos++ & mask]);
                rc = c->rmw(h, &keys[0], &retries);
                break;
            default:
                rc = -1;
            }
            errors += rc != 0;
            ops++;
        }
    }
    wk->t1 = kvb_now();
    wk->cpu1 = thread_cpu();
    c->thread_leave(h);
    free(val);
    free(buf);
    wk->ops = ops;
    wk->retries = retries;
    wk->errors = errors;
    wk->sum = sum;
    return NULL;
}

int kvb_run(const kvb_contender *c, void *h, kvb_workload w, const kvb_rings *rings,
            size_t nthreads, const int *cpus, size_t ncpus, double duration,
            kvb_result *out)
{
    run r = {.c = c, .h = h, .w = w, .rings = rings};
    if (!kvb_workload_supported(c, w))
        return -1;
    worker *wk = calloc(nthreads, sizeof *wk);
    pthread_t *tids = calloc(nthreads, sizeof *tids);
    if (!wk || !tids || nthreads > rings->nthreads) {
        free(wk);
        free(tids);
        return -1;
    }
    atomic_init(&r.stop, 0);
    pthread_barrier_init(&r.start, NULL, (unsigned)nthreads + 1);
    for (size_t i = 0; i < nthreads; i++) {
        wk[i] = (worker){.run = &r, .index = i, .cpu = ncpus ? cpus[i % ncpus] : -1};
        /* The barrier counts every thread: one that cannot start would
         * hang the run, and there is nothing sensible left to measure. */
        if (pthread_create(&tids[i], NULL, worker_main, &wk[i]) != 0) {
            fprintf(stderr, "kvbench_lib: cannot start thread %zu\n", i);
            abort();
        }
    }
    pthread_barrier_wait(&r.start);
    struct timespec ts = {(time_t)duration,
                          (long)((duration - (double)(time_t)duration) * 1e9)};
    while (nanosleep(&ts, &ts) != 0)
        ;
    atomic_store(&r.stop, 1);
    double t0 = 0, t1 = 0, cpu = 0;
    *out = (kvb_result){0};
    for (size_t i = 0; i < nthreads; i++) {
        pthread_join(tids[i], NULL);
        if (i == 0 || wk[i].t0 < t0)
            t0 = wk[i].t0;
        if (i == 0 || wk[i].t1 > t1)
            t1 = wk[i].t1;
        cpu += wk[i].cpu1 - wk[i].cpu0;
        out->ops += wk[i].ops;
        out->retries += wk[i].retries;
        out->errors += wk[i].errors;
        out->checksum += wk[i].sum;
    }
    out->mops = t1 > t0 ? (double)out->ops / (t1 - t0) / 1e6 : 0;
    out->cpu_share = t1 > t0 ? cpu / ((double)nthreads * (t1 - t0)) : 0;
    out->mops_cpu = cpu > 0 ? (double)out->ops / cpu / 1e6 : 0;
    pthread_barrier_destroy(&r.start);
    free(wk);
    free(tids);
    return 0;
}
