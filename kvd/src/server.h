/*
 * server.h - kvd's server: the store, the worker event loops (one thread
 * each) and the acceptor on the main thread.
 *
 * Threads: the main thread runs the acceptor loop (listeners, signals);
 * each worker thread runs one libuv loop that owns its connections
 * outright. Workers share only the store (libkv is thread-safe and
 * lock-free for reads), read-only configuration, and relaxed-atomic
 * counters. Mutexes: the per-worker hand-off queue of accepted sockets,
 * taken once per accepted connection, and the AUTH throttle table, taken
 * once per AUTH when a password is set; never per other request.
 */
#ifndef KVD_SERVER_H
#define KVD_SERVER_H

#include <pthread.h>
#include <stdatomic.h>
#include <stdint.h>
#include <sys/types.h>
#include <uv.h>

#include "auth_throttle.h"
#include "config.h"
#include "kv.h"
#include "stats.h"

#define KVD_READ_CHUNK (64 * 1024)

struct kvd_conn;
struct kvd_server;

/* One accepted socket waiting to be adopted by a worker. */
typedef struct kvd_handoff {
    int fd;
    int is_unix;
    int protocol; /* the listener's (KVD_PROTOCOL_*), -1: by first bytes */
    int reject; /* answer BUSY and close */
} kvd_handoff;

typedef struct kvd_worker {
    struct kvd_server *server;
    int index;
    pthread_t thread;
    int running;           /* thread started, not yet joined          */
    uv_loop_t loop;
    uv_async_t wakeup;     /* new sockets in the queue, or stop         */
    uv_timer_t grace;      /* bounds the graceful stop                  */
    uv_timer_t reclaim;    /* frees retired store memory (kv_reclaim)   */
    pthread_mutex_t lock;  /* protects queue only                       */
    kvd_handoff *queue;
    size_t nqueue, capqueue;
    atomic_int stop;       /* set by the main thread                    */
    int wakeup_closed;     /* under lock: no more uv_async_send         */
    atomic_int evict_req;  /* another loop asks: free client memory     */
    pthread_mutex_t repl_mu;             /* protects repl_done only     */
    struct kvd_repl_wait *repl_done;     /* applied proposals (cluster) */
    _Atomic uint64_t biggest; /* largest connection's buffers here, as
                                 last seen (relaxed; a hint for others) */
    int stopping;          /* this loop has begun stopping              */
    struct kvd_conn *conns; /* doubly linked list of live connections  */
    struct kvd_conn *held;  /* connections with held replies            */
    atomic_int has_held;    /* held != NULL, for the notifying thread:
                               it stores durable_rev then loads this; the
                               loop sets this then loads durable_rev     */
    uv_async_t durable;     /* the store's durable revision advanced     */
    uv_check_t log_write;   /* end of a loop iteration: write the log,
                               then send the replies of this iteration   */
    int log_dirty;          /* writes made in this iteration             */
    uv_idle_t spin;         /* --busy-poll: active, the loop does not sleep */
    int spinning;           /* spin started                              */
    int worked;             /* this iteration read requests              */
    uint64_t spin_until;    /* uv_hrtime() when spinning stops, unless
                               more work comes                           */
    struct kvd_conn *flush_soon; /* conns whose replies go out at the end of
                                    this iteration (kvd__conn_flush_soon)  */
    /* cmd.c: the kinds of the requests run since the connection's batch
     * clock was read, timed together (kvd_cmd_time_batch) */
    unsigned batch_n;
    uint8_t batch_kind[KVD_BATCH_TIMED];
    int durable_open;       /* under server->notify_mu                   */
    kvd_stats stats;
    /* watchers.h: this loop's watchers, polled by watch_timer while any */
    uv_timer_t watch_timer;
    struct kvd_watcher *watchers;
    size_t nwatchers;
    uint8_t scratch[KVD_READ_CHUNK]; /* reads land here first (loop thread only) */
} kvd_worker;

typedef struct kvd_listener {
    uv_poll_t poll;
    int fd;
    int is_unix;
    int protocol; /* KVD_PROTOCOL_* of a dedicated port, -1: any */
    struct kvd_server *server;
} kvd_listener;

typedef struct kvd_server {
    const kvd_config *cfg;
    kv_store *store;
    uv_loop_t *loop; /* the acceptor loop (main thread) */
    kvd_worker *workers;
    int nworkers;
    unsigned next_worker; /* round robin, main thread only */
    kvd_listener *listeners;
    size_t nlisteners;
    int unix_bound;             /* we created the --unix socket file:  */
    dev_t unix_dev;             /* ... this one                        */
    ino_t unix_ino;         /* reopen the log; unref'ed, open to the end */
    uv_timer_t accept_backoff; /* pauses accepting after EMFILE */
    uv_timer_t status_timer;   /* refreshes the service manager's STATUS= */
    int stopping;              /* SIGINT/SIGTERM seen (main thread)       */
    int bound_port;         /* first TCP listener's port */
    int resp_port;          /* the --resp-port listeners' port, or 0 */
    int http_port;          /* the --http-port listeners' port, or 0 */
    uint64_t start_ns;      /* uv_hrtime() at start      */
    atomic_uint_fast64_t connections; /* currently open (accepted, not yet closed) */
    atomic_uint_fast64_t connections_total;
    atomic_uint_fast64_t connections_rejected;
    /* Bytes held in all connections' buffers (conn.c, kvd__conn_account):
     * each connection adds its own changes with a relaxed fetch_add, so the
     * total is exact up to changes in flight; compared against
     * cfg->max_client_memory. */
    _Atomic uint64_t client_memory;
    size_t out_soft;        /* pause reading above this pending output */
    size_t out_low;         /* resume below this                        */
    size_t preauth_max_frame; /* frame limit before AUTH (password set) */
    size_t max_response;    /* largest multi-value result (MGET, TXN, SCAN) */
    int durable;            /* the store has a data directory           */
    struct kvd_repl *repl;  /* a cluster node's Raft side, or NULL      */
    int served;             /* kvd_server_run() ran: log the keys at exit */
    _Atomic uint64_t durable_rev; /* set by the store's log thread      */
    atomic_int durable_status;    /* KV_OK, or the log's failure        */
    pthread_mutex_t notify_mu;    /* orders notifications with closing  */
    kvd_auth_throttle auth_throttle; /* per-address AUTH backoff */
    _Atomic uint64_t proto_warn_ms;  /* last protocol-error WARN (hrtime ms), 0 none */
    _Atomic uint64_t proto_unwarned; /* protocol errors since that WARN */
    /* Watches (watchers.h), all loops: open now, not polled now because
     * their client does not read, events sent, watches ended by lost
     * events. Relaxed atomics. */
    _Atomic uint64_t watchers, watchers_backlogged, watch_events, watch_lost;
    uint64_t max_connections; /* effective limit: --max-connections lowered
                                 to what RLIMIT_NOFILE allows; 0 = none  */
} kvd_server;

/* Opens the store, binds every listener (printing/writing the port) and
 * starts the worker threads. Returns 0, or -1 after logging why. */
int kvd_server_start(kvd_server *s, const kvd_config *cfg, uv_loop_t *loop);

/* Runs the acceptor loop until SIGINT/SIGTERM, then stops the workers
 * gracefully, joins them and frees everything. Returns 0. */
int kvd_server_run(kvd_server *s);

/* Frees what kvd_server_start() built (also after a failed start). */
void kvd_server_cleanup(kvd_server *s);

/* Connection c of w has held replies / has none any more (w's thread). */
void kvd_worker_hold(kvd_worker *w, struct kvd_conn *c);
void kvd_worker_unhold(kvd_worker *w, struct kvd_conn *c);

/* A connection of w closed (called by conn.c on w's thread). */
void kvd_worker_conn_gone(kvd_worker *w);

/* Client buffers are over --max-client-memory (seen on w's thread):
 * disconnects w's biggest connections while they are the biggest of all,
 * else asks the loop that has the biggest to do it. */
void kvd_worker_evict(kvd_worker *w);

#endif /* KVD_SERVER_H */
