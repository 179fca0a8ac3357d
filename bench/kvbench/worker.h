/*
 * worker.h - a kvbench worker thread: one uv loop, a share of the run's
 * connections, and what they measured. Internal to worker.c and conn.c;
 * the main thread sees only kvb_worker_start/join (kvbench.h).
 */
#ifndef KVBENCH_WORKER_H
#define KVBENCH_WORKER_H

#include <uv.h>

#include "conn.h"
#include "kvbench.h"
#include "pacer.h"

struct kvb_worker {
    kvb_run *run;
    int idx;
    uv_thread_t thread;
    uv_loop_t loop;
    uv_timer_t timer; /* polls run->phase every KVB_POLL_MS */
    kvb_pacer pacer;  /* --rate only: wakes the loop when a send is due */
    kvb_conn *conns;
    int nconns;
    int nready;    /* connections done with SETUP (and PRELOAD)     */
    int nclosed;   /* connections in CLOSED                          */
    int failed;    /* a connection failed during SETUP               */
    int reported;  /* told the main thread (ready or failed)         */
    int phase;     /* the last phase seen                            */
    int started;   /* READY connections were told to run             */
    int stopping;  /* connections were told to stop                  */
    int error_shown; /* the first error answer was printed           */
    uint64_t stop_deadline; /* uv_now() after which STOP closes all  */
    uint64_t setup_deadline; /* uv_now() after which SETUP gives up  */
    kvb_result res;
};

/* Called by a connection on its worker's thread. */
void kvb_worker_conn_ready(kvb_worker *w);
void kvb_worker_conn_failed(kvb_worker *w, kvb_conn *c, const char *what,
                            const char *detail);
void kvb_worker_conn_closed(kvb_worker *w);
/* --rate: a connection with room in its pipeline has its next request
 * due at due_ns; the worker wakes then to send it. */
void kvb_worker_wake_at(kvb_worker *w, uint64_t due_ns);

#endif /* KVBENCH_WORKER_H */
