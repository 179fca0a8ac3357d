/*
 * worker.c - kvbench worker threads (see worker.h, kvbench.h).
 *
 * Each worker owns a uv loop, its connections and a timer. The timer
 * polls run->phase (written only by the main thread): on WARMUP it starts
 * the READY connections, on STOP it stops them and, once every
 * connection is closed or KVB_STOP_GRACE_MS has passed, closes the timer
 * so that uv_run returns. A worker tells the main thread once, through
 * run->workers_ready or run->workers_failed, that its setup is over.
 *
 * With --rate the worker also drives its connections' schedules: when
 * the run starts it staggers their first due times evenly over one
 * interval; a pacer (pacer.h) wakes the loop at the earliest due time of
 * the connections that have room in their pipeline, and then every
 * connection sends what has fallen due. A connection whose pipeline is
 * full sends from its read callback instead, as answers free places. At
 * STOP the worker counts the requests that fell due before MEASURE ended
 * but were never sent (backlog).
 */
#include "worker.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* How long STOP waits for the responses still in flight. */
#define KVB_STOP_GRACE_MS 2000

static void worker_report(kvb_worker *w)
{
    if (w->reported)
        return;
    if (w->failed) {
        w->reported = 1;
        atomic_fetch_add(&w->run->workers_failed, 1);
    } else if (w->nready == w->nconns) {
        w->reported = 1;
        atomic_fetch_add(&w->run->workers_ready, 1);
    }
}

void kvb_worker_conn_ready(kvb_worker *w)
{
    w->nready++;
    worker_report(w);
}

void kvb_worker_conn_failed(kvb_worker *w, kvb_conn *c, const char *what,
                            const char *detail)
{
    w->res.conn_errors++;
    if (c->state < KVB_CONN_READY) {
        /* Setup failed: the run cannot start. Close the others too. */
        if (!w->failed)
            fprintf(stderr, "kvbench: connection %d: %s: %s\n", c->gidx, what, detail);
        w->failed = 1;
        worker_report(w);
        for (int i = 0; i < w->nconns; i++)
            if (&w->conns[i] != c)
                kvb_conn_stop(&w->conns[i], 1);
    } else if (w->res.conn_errors <= 5) {
        fprintf(stderr, "kvbench: connection %d: %s: %s\n", c->gidx, what, detail);
    }
}

void kvb_worker_conn_closed(kvb_worker *w)
{
    w->nclosed++;
}

static int rate_mode(const kvb_worker *w)
{
    return w->run->opts->rate > 0;
}

void kvb_worker_wake_at(kvb_worker *w, uint64_t due_ns)
{
    kvb_pacer_arm(&w->pacer, due_ns);
}

/* The pacer's callback: every connection sends what is due and asks to
 * be woken for its next request (the pacer keeps the earliest). */
static void on_pace(kvb_pacer *p)
{
    kvb_worker *w = p->data;
    uint64_t now = uv_hrtime();
    for (int i = 0; i < w->nconns; i++)
        kvb_conn_send_due(&w->conns[i], now);
}

/* Starts the READY connections; with --rate, connection i of n is first
 * due i/n of an interval after now, so the worker's sends are even. */
static void worker_start_conns(kvb_worker *w)
{
    const kvb_opts *o = w->run->opts;
    uint64_t now = uv_hrtime();
    double step = rate_mode(w) ? (double)o->connections * 1e9 / o->rate / w->nconns : 0;
    for (int i = 0; i < w->nconns; i++)
        kvb_conn_run(&w->conns[i], now + (uint64_t)(step * i));
}

/* --rate, at STOP: stops sending and counts what was due before MEASURE
 * ended but never went out. */
static void worker_stop_schedule(kvb_worker *w)
{
    if (!rate_mode(w))
        return;
    kvb_pacer_stop(&w->pacer);
    uint64_t end = atomic_load(&w->run->measure_end_ns);
    if (end == 0) /* stopped before MEASURE */
        return;
    for (int i = 0; i < w->nconns; i++)
        w->res.backlog += kvb_conn_backlog(&w->conns[i], end);
}

static void worker_close_handles(kvb_worker *w)
{
    uv_close((uv_handle_t *)&w->timer, NULL);
    if (rate_mode(w))
        kvb_pacer_close(&w->pacer);
}

static void on_timer(uv_timer_t *t)
{
    kvb_worker *w = t->data;
    int phase = atomic_load_explicit(&w->run->phase, memory_order_acquire);
    w->phase = phase;
    /* A server that never answers the handshake (say, Redis without
     * --protocol resp) must not keep the run waiting forever. */
    if (phase == KVB_PHASE_SETUP && uv_now(&w->loop) >= w->setup_deadline)
        for (int i = 0; i < w->nconns; i++)
            kvb_conn_setup_expired(&w->conns[i]);
    if ((phase == KVB_PHASE_WARMUP || phase == KVB_PHASE_MEASURE) && !w->started) {
        w->started = 1;
        worker_start_conns(w);
    }
    if (phase != KVB_PHASE_STOP)
        return;
    if (!w->stopping) {
        w->stopping = 1;
        w->stop_deadline = uv_now(&w->loop) + KVB_STOP_GRACE_MS;
        worker_stop_schedule(w);
        for (int i = 0; i < w->nconns; i++)
            kvb_conn_stop(&w->conns[i], 0);
    } else if (uv_now(&w->loop) >= w->stop_deadline) {
        for (int i = 0; i < w->nconns; i++)
            kvb_conn_stop(&w->conns[i], 1);
    }
    if (w->nclosed == w->nconns)
        worker_close_handles(w);
}

static void worker_main(void *arg)
{
    kvb_worker *w = arg;
    const kvb_opts *o = w->run->opts;
    int base = 0;
    for (int i = 0; i < w->idx; i++)
        base += o->connections / o->threads + (i < o->connections % o->threads);

    w->setup_deadline = uv_now(&w->loop) + KVB_SETUP_LIMIT_MS;
    uv_timer_start(&w->timer, on_timer, KVB_POLL_MS, KVB_POLL_MS);
    for (int i = 0; i < w->nconns && !w->failed; i++) {
        kvb_conn *c = &w->conns[i];
        int rc = kvb_conn_start(c, w, base + i);
        if (rc < 0 && c->state == KVB_CONN_CLOSED) {
            fprintf(stderr, "kvbench: connection %d: %s\n", base + i, uv_strerror(rc));
            w->nclosed++;
            w->res.conn_errors++;
            w->failed = 1;
        }
    }
    if (w->failed) {
        /* Connections never started count as closed. */
        for (int i = 0; i < w->nconns; i++) {
            kvb_conn *c = &w->conns[i];
            if (c->w == NULL) {
                c->state = KVB_CONN_CLOSED;
                w->nclosed++;
            } else {
                kvb_conn_stop(c, 1);
            }
        }
        worker_report(w);
    }
    uv_run(&w->loop, UV_RUN_DEFAULT);
}

kvb_worker *kvb_worker_start(kvb_run *run, int idx)
{
    const kvb_opts *o = run->opts;
    kvb_worker *w = calloc(1, sizeof *w);
    if (!w)
        return NULL;
    w->run = run;
    w->idx = idx;
    w->nconns = o->connections / o->threads + (idx < o->connections % o->threads);
    w->conns = calloc((size_t)w->nconns, sizeof *w->conns);
    kvb_hist_init(&w->res.lat);
    kvb_hist_init(&w->res.send_lag);
    if (!w->conns || uv_loop_init(&w->loop) != 0) {
        free(w->conns);
        free(w);
        return NULL;
    }
    uv_timer_init(&w->loop, &w->timer);
    w->timer.data = w;
    int rc = rate_mode(w) ? kvb_pacer_init(&w->pacer, &w->loop, on_pace, w) : 0;
    if (rc != 0 || uv_thread_create(&w->thread, worker_main, w) != 0) {
        uv_close((uv_handle_t *)&w->timer, NULL);
        if (rc == 0 && rate_mode(w))
            kvb_pacer_close(&w->pacer);
        uv_run(&w->loop, UV_RUN_DEFAULT);
        uv_loop_close(&w->loop);
        free(w->conns);
        free(w);
        return NULL;
    }
    return w;
}

void kvb_worker_join(kvb_worker *w, kvb_result *out)
{
    uv_thread_join(&w->thread);
    uv_loop_close(&w->loop);
    for (int i = 0; i < w->nconns; i++)
        kvb_conn_free(&w->conns[i]);

    const kvb_result *r = &w->res;
    out->gets += r->gets;
    out->sets += r->sets;
    out->not_found += r->not_found;
    out->errors += r->errors;
    for (int i = 0; i < 64; i++)
        out->errors_by_status[i] += r->errors_by_status[i];
    out->conn_errors += r->conn_errors;
    out->preloaded += r->preloaded;
    out->answered += r->answered;
    out->late += r->late;
    out->backlog += r->backlog;
    kvb_hist_merge(&out->lat, &r->lat);
    kvb_hist_merge(&out->send_lag, &r->send_lag);
    free(w->conns);
    free(w);
}
