/*
 * test_pipeline.c - pipelining thousands of requests, many concurrent
 * connections from several threads, and atomic MSET visibility across
 * connections (readers never see a torn group).
 */
#include <criterion/criterion.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "harness.h"

TestSuite(pipeline, .init = harness_setup, .fini = harness_teardown, .timeout = 90);

Test(pipeline, thousands_in_order)
{
    kvd_start(NULL);
    kv_client *c = test_client(NULL);
    kv_client_pipeline *p;
    cr_assert_eq(kv_client_pipeline_new(c, &p), KV_OK);
    enum { N = 5000 };
    char k[32], v[32];
    for (int round = 0; round < 2; round++) {
        for (int i = 0; i < N; i++) {
            int kl = snprintf(k, sizeof k, "p:%d", i);
            int vl = snprintf(v, sizeof v, "val-%d-%d", round, i);
            if (i % 2 == 0)
                cr_assert_eq(kv_client_pipeline_set(p, k, (size_t)kl, v, (size_t)vl), KV_OK);
            else
                cr_assert_eq(kv_client_pipeline_get(p, k, (size_t)kl), KV_OK);
        }
        cr_assert_eq(kv_client_pipeline_exec(p), KV_OK);
        cr_assert_eq(kv_client_pipeline_replies(p), N);
        uint64_t last = 0;
        for (int i = 0; i < N; i++) {
            const kv_client_reply *r = kv_client_pipeline_reply(p, i);
            if (i % 2 == 0) {
                cr_assert_eq(r->op, KV_CLIENT_OP_SET);
                cr_assert_eq(r->status, KV_OK);
                cr_assert_gt(r->version, last, "revisions increase in request order");
                last = r->version;
            } else {
                cr_assert_eq(r->op, KV_CLIENT_OP_GET);
                if (round == 0) {
                    cr_assert_eq(r->status, KV_NOT_FOUND);
                } else {
                    /* odd keys were set to "x" between the rounds */
                    cr_assert_eq(r->status, KV_OK);
                    cr_assert_eq(r->value.len, 1);
                    cr_assert_eq(((const char *)r->value.data)[0], 'x');
                }
            }
        }
        if (round == 0) {
            /* now make the odd keys exist so round 1's GETs find them */
            for (int i = 1; i < N; i += 2) {
                int kl = snprintf(k, sizeof k, "p:%d", i);
                kv_client_pipeline_set(p, k, (size_t)kl, "x", 1);
            }
            cr_assert_eq(kv_client_pipeline_exec(p), KV_OK);
        }
    }
    kv_client_pipeline_free(p);
    cr_assert_eq(kv_client_ping(c), KV_OK);
    kv_client_close(c);
    cr_assert_eq(metric_u(NULL, "keys"), N);
    /* answered in batches, not one write per response */
    uint64_t reqs = metric_u(NULL, "requests"), batches = metric_u(NULL, "write_batches");
    cr_assert_lt(batches * 10, reqs, "%llu writes for %llu requests",
                 (unsigned long long)batches, (unsigned long long)reqs);
    kvd_stop();
}

/* ---- many connections, several threads ------------------------------------- */

enum { CONN_THREADS = 6, CONNS_PER_THREAD = 5, OPS_PER_CONN = 200 };
static atomic_int g_failures;

static void *conn_worker(void *arg)
{
    int t = (int)(intptr_t)arg;
    kv_client *cs[CONNS_PER_THREAD];
    kv_client_options o;
    kv_client_options_init(&o);
    o.port = (uint16_t)g_kvd.port;
    o.io_timeout_ms = TEST_IO_TIMEOUT_MS;
    for (int i = 0; i < CONNS_PER_THREAD; i++)
        if (kv_client_open(&o, &cs[i]) != KV_OK)
            atomic_fetch_add(&g_failures, 1);
    char k[48], v[48];
    for (int n = 0; n < OPS_PER_CONN; n++) {
        for (int i = 0; i < CONNS_PER_THREAD; i++) {
            int kl = snprintf(k, sizeof k, "t%d:c%d:%d", t, i, n % 20);
            int vl = snprintf(v, sizeof v, "%d", n);
            if (kv_client_set(cs[i], k, (size_t)kl, v, (size_t)vl, NULL) != KV_OK) {
                atomic_fetch_add(&g_failures, 1);
                continue;
            }
            kv_value got;
            /* read it back on another connection of this thread */
            kv_client *o2 = cs[(i + 1) % CONNS_PER_THREAD];
            if (kv_client_get(o2, k, (size_t)kl, &got) != KV_OK || got.len != (size_t)vl ||
                memcmp(got.data, v, (size_t)vl) != 0)
                atomic_fetch_add(&g_failures, 1);
            kv_client_value_free(&got);
        }
        if (n % 50 == 0) { /* METRICS sums other loops' counters meanwhile */
            kv_client_metrics m;
            if (kv_client_metrics_get(cs[0], &m) != KV_OK)
                atomic_fetch_add(&g_failures, 1);
            else
                kv_client_metrics_free(&m);
        }
    }
    for (int i = 0; i < CONNS_PER_THREAD; i++)
        kv_client_close(cs[i]);
    return NULL;
}

Test(pipeline, many_connections_many_threads)
{
    kvd_start(NULL);
    pthread_t th[CONN_THREADS];
    atomic_store(&g_failures, 0);
    for (int t = 0; t < CONN_THREADS; t++)
        cr_assert_eq(pthread_create(&th[t], NULL, conn_worker, (void *)(intptr_t)t), 0);
    for (int t = 0; t < CONN_THREADS; t++)
        pthread_join(th[t], NULL);
    cr_assert_eq(atomic_load(&g_failures), 0);
    cr_assert_eq(metric_u(NULL, "keys"), CONN_THREADS * CONNS_PER_THREAD * 20);
    cr_assert_geq(metric_u(NULL, "connections_total"), CONN_THREADS * CONNS_PER_THREAD);
    kvd_stop();
}

/* ---- atomic multi-set visibility ------------------------------------------- */

enum { GROUP = 8, WRITERS = 2, READERS = 2 };
static atomic_int g_stop, g_torn, g_reads, g_errs;

static void *mset_writer(void *arg)
{
    int w = (int)(intptr_t)arg;
    kv_client_options o;
    kv_client_options_init(&o);
    o.port = (uint16_t)g_kvd.port;
    o.io_timeout_ms = TEST_IO_TIMEOUT_MS;
    kv_client *c;
    if (kv_client_open(&o, &c) != KV_OK) {
        atomic_fetch_add(&g_errs, 1);
        kv_client_close(c);
        return NULL;
    }
    char keys[GROUP][16], val[32];
    kv_pair pairs[GROUP];
    for (int gen = 0; !atomic_load(&g_stop) && gen < 100000; gen++) {
        int vl = snprintf(val, sizeof val, "w%d-gen%d", w, gen);
        for (int i = 0; i < GROUP; i++) {
            int kl = snprintf(keys[i], sizeof keys[i], "grp:%d", i);
            pairs[i] = (kv_pair){keys[i], (size_t)kl, val, (size_t)vl};
        }
        if (kv_client_mset(c, pairs, GROUP, NULL) != KV_OK)
            atomic_fetch_add(&g_errs, 1);
    }
    kv_client_close(c);
    return NULL;
}

static void *mget_reader(void *arg)
{
    (void)arg;
    kv_client_options o;
    kv_client_options_init(&o);
    o.port = (uint16_t)g_kvd.port;
    o.io_timeout_ms = TEST_IO_TIMEOUT_MS;
    kv_client *c;
    if (kv_client_open(&o, &c) != KV_OK) {
        atomic_fetch_add(&g_errs, 1);
        kv_client_close(c);
        return NULL;
    }
    char keys[GROUP][16];
    kv_key ks[GROUP];
    for (int i = 0; i < GROUP; i++) {
        int kl = snprintf(keys[i], sizeof keys[i], "grp:%d", i);
        ks[i] = (kv_key){keys[i], (size_t)kl};
    }
    while (!atomic_load(&g_stop)) {
        kv_value vals[GROUP];
        if (kv_client_mget(c, ks, GROUP, vals) != KV_OK) {
            atomic_fetch_add(&g_errs, 1);
            continue;
        }
        for (int i = 1; i < GROUP; i++) {
            int same = (vals[i].data == NULL) == (vals[0].data == NULL) &&
                       vals[i].len == vals[0].len && vals[i].version == vals[0].version &&
                       (vals[0].data == NULL || memcmp(vals[i].data, vals[0].data, vals[0].len) == 0);
            if (!same) {
                atomic_fetch_add(&g_torn, 1);
                break;
            }
        }
        atomic_fetch_add(&g_reads, 1);
        kv_client_values_free(vals, GROUP);
    }
    kv_client_close(c);
    return NULL;
}

Test(pipeline, mset_groups_never_torn)
{
    kvd_start(NULL);
    atomic_store(&g_stop, 0);
    atomic_store(&g_torn, 0);
    atomic_store(&g_reads, 0);
    atomic_store(&g_errs, 0);
    pthread_t th[WRITERS + READERS];
    for (int i = 0; i < WRITERS; i++)
        pthread_create(&th[i], NULL, mset_writer, (void *)(intptr_t)i);
    for (int i = 0; i < READERS; i++)
        pthread_create(&th[WRITERS + i], NULL, mget_reader, NULL);
    struct timespec ts = {1, 500000000L};
    nanosleep(&ts, NULL);
    atomic_store(&g_stop, 1);
    for (int i = 0; i < WRITERS + READERS; i++)
        pthread_join(th[i], NULL);
    cr_assert_eq(atomic_load(&g_errs), 0);
    cr_assert_gt(atomic_load(&g_reads), 10);
    cr_assert_eq(atomic_load(&g_torn), 0, "%d torn reads", atomic_load(&g_torn));
    kvd_stop();
}

/* ---- --busy-poll -------------------------------------------------------------- */

/* kvd's CPU time so far (user + system), in clock ticks. */
static long kvd_cpu_ticks(void)
{
    char path[64], buf[1024];
    snprintf(path, sizeof path, "/proc/%d/stat", (int)g_kvd.pid);
    FILE *f = fopen(path, "r");
    cr_assert_not_null(f);
    size_t n = fread(buf, 1, sizeof buf - 1, f);
    fclose(f);
    buf[n] = 0;
    /* fields 14 and 15, counted after the ")" that ends the command name */
    const char *p = strrchr(buf, ')');
    cr_assert_not_null(p);
    long ut = 0, st = 0;
    cr_assert_eq(sscanf(p + 2, "%*c %*d %*d %*d %*d %*d %*u %*u %*u %*u %*u %ld %ld", &ut, &st),
                 2);
    return ut + st;
}

Test(pipeline, busy_poll_answers_in_order_then_lets_the_threads_sleep)
{
    kvd_start("--busy-poll", "10000", NULL); /* 10 ms: the most it allows */
    kv_client *c = test_client(NULL);
    char k[32], v[32];
    for (int i = 0; i < 500; i++) { /* one request in flight: the loop polls */
        int kl = snprintf(k, sizeof k, "bp:%d", i % 50);
        int vl = snprintf(v, sizeof v, "v%d", i);
        uint64_t rev = 0;
        cr_assert_eq(kv_client_set(c, k, (size_t)kl, v, (size_t)vl, &rev), KV_OK);
        kv_value got;
        cr_assert_eq(kv_client_get(c, k, (size_t)kl, &got), KV_OK);
        cr_assert_eq(got.len, (size_t)vl);
        cr_assert_eq(memcmp(got.data, v, got.len), 0);
        cr_assert_eq(got.version, rev);
        kv_client_value_free(&got);
    }
    kv_client_pipeline *p;
    cr_assert_eq(kv_client_pipeline_new(c, &p), KV_OK);
    for (int i = 0; i < 1000; i++) {
        int kl = snprintf(k, sizeof k, "bp:%d", i % 50);
        cr_assert_eq(kv_client_pipeline_get(p, k, (size_t)kl), KV_OK);
    }
    cr_assert_eq(kv_client_pipeline_exec(p), KV_OK);
    cr_assert_eq(kv_client_pipeline_replies(p), 1000);
    for (int i = 0; i < 1000; i++) {
        const kv_client_reply *r = kv_client_pipeline_reply(p, i);
        cr_assert_eq(r->status, KV_OK);
        int vl = snprintf(v, sizeof v, "v%d", 450 + i % 50);
        cr_assert_eq(r->value.len, (size_t)vl, "reply %d out of order", i);
        cr_assert_eq(memcmp(r->value.data, v, (size_t)vl), 0, "reply %d out of order", i);
    }
    kv_client_pipeline_free(p);
    /* Idle now: once 10 ms pass without a request, no thread polls. A loop
     * that kept polling would use a whole CPU second in the next second;
     * an idle one wakes for its timers only. */
    usleep(200 * 1000);
    long before = kvd_cpu_ticks();
    sleep(1);
    long used = kvd_cpu_ticks() - before;
    cr_assert_lt(used * 4, sysconf(_SC_CLK_TCK), "an idle kvd used %ld of %ld ticks in 1 s",
                 used, sysconf(_SC_CLK_TCK));
    cr_assert_eq(kv_client_ping(c), KV_OK);
    kv_client_close(c);
    kvd_stop();
}
