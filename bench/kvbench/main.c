/*
 * main.c - kvbench: a libuv load generator for kvd (and Redis over RESP2,
 * and memcached over its text protocol).
 *
 * Resolves the target, starts the worker threads (worker.c), then moves
 * the run through its phases by the clock: SETUP (connect, HELLO, AUTH,
 * --preload) until every worker is ready, WARMUP for --warmup seconds,
 * MEASURE for --duration seconds, STOP (with --rate the workers' send
 * schedules start with WARMUP). Then it joins the workers, merges
 * their counts and histograms, and prints the report (report.c).
 * SIGINT/SIGTERM end the current phase early and still report.
 */
#include <netdb.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <uv.h>

#include "kvbench.h"

static volatile sig_atomic_t interrupted;

static void on_signal(int sig)
{
    (void)sig;
    interrupted = 1;
}

static double now_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

/* Sleeps until `until` (now_s() clock) or a signal. */
static void sleep_until(double until)
{
    while (!interrupted) {
        double left = until - now_s();
        if (left <= 0)
            return;
        if (left > 0.01)
            left = 0.01;
        struct timespec ts = {0, (long)(left * 1e9)};
        nanosleep(&ts, NULL);
    }
}

static int resolve(const kvb_opts *o, struct sockaddr_storage *out)
{
    struct addrinfo hints = {.ai_family = AF_UNSPEC, .ai_socktype = SOCK_STREAM};
    struct addrinfo *ai;
    char port[16];
    snprintf(port, sizeof port, "%d", o->port);
    int rc = getaddrinfo(o->host, port, &hints, &ai);
    if (rc != 0) {
        fprintf(stderr, "kvbench: %s: %s\n", o->host, gai_strerror(rc));
        return -1;
    }
    memcpy(out, ai->ai_addr, ai->ai_addrlen);
    freeaddrinfo(ai);
    return 0;
}

static void note(const kvb_opts *o, const char *msg)
{
    if (!o->quiet)
        fprintf(stderr, "kvbench: %s\n", msg);
}

int main(int argc, char **argv)
{
    kvb_opts opts;
    int rc = kvb_opts_parse(&opts, argc, argv);
    if (rc != 0)
        return rc > 0 ? 0 : 2;

    static kvb_run run; /* static: shared with the workers, zeroed */
    run.opts = &opts;
    if (!opts.unix_path && resolve(&opts, &run.addr) != 0)
        return 1;
    uint8_t *value = malloc(opts.value_size ? opts.value_size : 1);
    if (!value) {
        fprintf(stderr, "kvbench: out of memory\n");
        return 1;
    }
    for (size_t i = 0; i < opts.value_size; i++)
        value[i] = (uint8_t)('a' + i % 26);
    run.value = value;
    kvb_keys_init(&run.keys, opts.keys, opts.dist);
    atomic_init(&run.measure_end_ns, 0);
    atomic_init(&run.phase, KVB_PHASE_SETUP);
    atomic_init(&run.workers_ready, 0);
    atomic_init(&run.workers_failed, 0);

    struct sigaction sa = {.sa_handler = on_signal};
    sigemptyset(&sa.sa_mask);
    sigaction(SIGINT, &sa, NULL);
    sigaction(SIGTERM, &sa, NULL);
    signal(SIGPIPE, SIG_IGN);

    kvb_worker **workers = calloc((size_t)opts.threads, sizeof *workers);
    int nstarted = 0;
    for (; workers && nstarted < opts.threads; nstarted++) {
        workers[nstarted] = kvb_worker_start(&run, nstarted);
        if (!workers[nstarted])
            break;
    }
    int ok = nstarted == opts.threads;
    if (!ok)
        fprintf(stderr, "kvbench: cannot start worker threads\n");

    if (ok && opts.preload)
        note(&opts, "connecting and preloading");
    while (ok && !interrupted) {
        int ready = atomic_load(&run.workers_ready);
        int failed = atomic_load(&run.workers_failed);
        if (failed > 0)
            ok = 0;
        else if (ready == opts.threads)
            break;
        else
            sleep_until(now_s() + 0.001);
    }
    double t0 = 0, t1 = 0;
    if (ok && !interrupted) {
        char msg[96];
        snprintf(msg, sizeof msg, "warming up %.1f s, then measuring %.1f s", opts.warmup,
                 opts.duration);
        note(&opts, msg);
        atomic_store(&run.phase, KVB_PHASE_WARMUP);
        sleep_until(now_s() + opts.warmup);
        t0 = now_s();
        atomic_store(&run.phase, KVB_PHASE_MEASURE);
        sleep_until(t0 + opts.duration);
        t1 = now_s();
        /* Before STOP: --rate workers count the sends still due by then. */
        atomic_store(&run.measure_end_ns, uv_hrtime());
    }
    atomic_store(&run.phase, KVB_PHASE_STOP);

    static kvb_result total; /* static: the histogram is 60 KiB */
    kvb_hist_init(&total.lat);
    kvb_hist_init(&total.send_lag);
    for (int i = 0; i < nstarted; i++)
        kvb_worker_join(workers[i], &total);
    free(workers);
    free(value);
    if (!ok)
        return 1;
    kvb_report(&run, &total, t1 - t0);
    return total.conn_errors ? 1 : 0;
}
