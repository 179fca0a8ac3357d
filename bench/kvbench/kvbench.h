/*
 * kvbench.h - kvbench's internal interfaces: options, the run shared by
 * all worker threads, and a worker's results.
 *
 * Threads: the main thread parses options, starts one worker per -t
 * thread (each with its own uv loop and its share of the connections),
 * moves the run through its phases (kvb_run.phase) and, after joining
 * the workers, merges their results. Workers only read the options and
 * the key distribution; they talk to the main thread only through the
 * atomic fields of kvb_run, which each worker polls from a uv timer
 * every KVB_POLL_MS (no cross-thread handle, so no lifetime races).
 */
#ifndef KVBENCH_H
#define KVBENCH_H

#include <stdatomic.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/socket.h>

#include "hist.h"
#include "keys.h"

/* ------------------------------------------------------------------------
 * Options
 * ---------------------------------------------------------------------- */
/* What the server speaks (--protocol). */
typedef enum kvb_protocol {
    KVB_PROTOCOL_KVD = 0,     /* kvd's frames, through kvproto (default) */
    KVB_PROTOCOL_RESP = 1,    /* RESP2: a Redis server (resp.h)          */
    KVB_PROTOCOL_MEMCACHE = 2 /* memcached's text protocol (mc.h)        */
} kvb_protocol;

/* Default -p with --protocol resp: Redis's port; with memcache,
 * memcached's. */
#define KVB_RESP_DEFAULT_PORT 6379
#define KVB_MC_DEFAULT_PORT 11211

/* The --protocol name of p. */
const char *kvb_protocol_name(kvb_protocol p);

typedef struct kvb_opts {
    const char *host;      /* -h, default 127.0.0.1                     */
    int port;              /* -p, default KV_PROTO_DEFAULT_PORT, or
                              KVB_RESP_DEFAULT_PORT with resp           */
    kvb_protocol protocol; /* --protocol, default kvd                   */
    const char *unix_path; /* --unix: connect here instead of TCP       */
    int connections;       /* -c, default 50                            */
    int threads;           /* -t, default 1                             */
    int pipeline;          /* -P, requests in flight per connection     */
    double rate;           /* --rate, requests/s of the whole run; 0 =
                              closed loop                               */
    unsigned get_ratio;    /* --ratio GET:SET, default 1:0              */
    unsigned set_ratio;
    uint64_t keys;         /* --keys, default 100000                    */
    kvb_dist dist;         /* --dist                                    */
    size_t value_size;     /* -d, default 64                            */
    double duration;       /* --duration seconds, default 10            */
    double warmup;         /* --warmup seconds, default 1               */
    int preload;           /* --preload                                 */
    const char *password;  /* --password                                */
    int json;              /* --json                                    */
    int quiet;             /* -q: no progress messages on stderr        */
    uint64_t seed;         /* --seed                                    */
} kvb_opts;

/* Parses argv into *o. Returns 0 to run, 1 when --help/--version was
 * printed (exit 0), -1 on a usage error (message printed; exit 2). */
int kvb_opts_parse(kvb_opts *o, int argc, char **argv);

/* ------------------------------------------------------------------------
 * The run
 * ---------------------------------------------------------------------- */
/* How often workers look at kvb_run.phase, in milliseconds. */
#define KVB_POLL_MS 2
/* How long connecting and the handshake (HELLO, AUTH) may take. Preloading
 * comes after and is not bounded. */
#define KVB_SETUP_LIMIT_MS 10000
#define KVB_SETUP_LIMIT_TEXT "10 s"

typedef enum kvb_phase {
    KVB_PHASE_SETUP = 0,   /* connecting, HELLO (kvd)/AUTH, --preload    */
    KVB_PHASE_WARMUP = 1,  /* load, not measured                         */
    KVB_PHASE_MEASURE = 2, /* load, measured                             */
    KVB_PHASE_STOP = 3     /* send nothing more, drain and close         */
} kvb_phase;

typedef struct kvb_run {
    const kvb_opts *opts;
    kvb_keys keys;
    struct sockaddr_storage addr; /* TCP target (unused with --unix)     */
    const uint8_t *value;         /* opts->value_size bytes for SETs     */

    _Atomic uint64_t measure_end_ns; /* uv_hrtime() at the end of MEASURE,
                                       stored before phase becomes STOP */
    _Atomic int phase;            /* kvb_phase, written by main only     */
    _Atomic int workers_ready;    /* workers done with SETUP             */
    _Atomic int workers_failed;   /* workers whose SETUP failed          */
} kvb_run;

/* errors_by_status slots of RESP error replies (-ERR ...) and of
 * memcached's failure lines (ERROR, CLIENT_ERROR, SERVER_ERROR,
 * NOT_STORED...): numbers no kv status uses (they stop at 50), below the
 * catch-all 63. */
#define KVB_STATUS_RESP_ERROR 62
#define KVB_STATUS_MC_ERROR 61

/* What a worker measured (only requests answered during MEASURE). */
typedef struct kvb_result {
    uint64_t gets, sets;      /* answered requests, any status          */
    uint64_t not_found;       /* GET answered NOT_FOUND (RESP: nil;
                                 memcache: END alone)                   */
    uint64_t errors;          /* any other non-OK status, RESP errors   */
    uint64_t errors_by_status[64]; /* errors by status code (< 64)     */
    uint64_t conn_errors;     /* connections lost or refused            */
    uint64_t preloaded;       /* SETs of --preload                      */
    uint64_t answered;        /* all responses of WARMUP and MEASURE    */
    kvb_hist lat;             /* request latency, ns; with --rate from
                                 the request's due time                 */
    /* --rate only: */
    uint64_t late;            /* answered requests that fell due while
                                 their connection had -P in flight      */
    uint64_t backlog;         /* due before MEASURE ended, never sent   */
    kvb_hist send_lag;        /* due time to write, on-time requests, ns */
} kvb_result;

typedef struct kvb_worker kvb_worker;

/* Creates worker index `idx` (of opts->threads) and starts its thread,
 * which connects its share of the connections and runs until the
 * phase is STOP and its connections are closed. NULL on failure. */
kvb_worker *kvb_worker_start(kvb_run *run, int idx);
/* Waits for the worker's thread to end, adds its result to *out and
 * frees it. */
void kvb_worker_join(kvb_worker *w, kvb_result *out);

/* Prints the result as text or JSON (opts->json) on stdout. */
void kvb_report(const kvb_run *run, const kvb_result *r, double seconds);

#endif /* KVBENCH_H */
