/*
 * server.c - listeners, the acceptor, worker loops and shutdown
 * (see server.h).
 *
 * Accept distribution: one acceptor (the main thread's loop) owns every
 * listening socket - TCP IPv4, IPv6 and the Unix socket alike - watches
 * them with uv_poll, accepts with accept4() and hands each socket to the
 * next worker round robin (a mutex-protected queue plus uv_async_send;
 * the worker adopts it with uv_tcp_open / uv_pipe_open). Chosen over
 * SO_REUSEPORT listeners per loop because it treats Unix sockets the same
 * as TCP, spreads even a handful of connections evenly, enforces
 * --max-connections in one place, and stopping it cannot reset
 * connections still queued in a per-loop listen backlog. Accepting is
 * cheap next to serving, so one acceptor does not limit throughput.
 *
 * Shutdown (SIGINT/SIGTERM): close the listeners, tell every worker to
 * stop; each worker answers the complete requests its connections have
 * already received, flushes and closes them, and gives up after
 * KVD_GRACE_MS. The main loop then ends and the threads are joined.
 *
 * Under systemd (notify.h) the acceptor loop also reports: STATUS= while
 * --data-dir is recovered, READY=1 once listening, a fresh STATUS= every
 * KVD_STATUS_MS, RELOADING=1/READY=1 around SIGHUP, STOPPING=1 at a stop.
 */
#include "server.h"

#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <signal.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#include "cmd.h"
#include "conn.h"
#include "conn_internal.h"
#include "log.h"
#include "notify.h"
#include "repl/repl.h"
#include "signals.h"
#include "watchers.h"

#define KVD_GRACE_MS 3000
#define ACCEPT_BATCH 64
#define ACCEPT_BACKOFF_MS 100
#define RECLAIM_MS 100
#define KVD_STATUS_MS 10000 /* STATUS= refresh for systemctl status */
#define PREAUTH_MAX_FRAME ((size_t)1 << 20)
#define RESPONSE_HEADROOM ((size_t)64 << 10)
/* Descriptors kept out of the connection budget: stdio, log and pid files,
 * the port file, each loop's epoll/eventfd/signal pipe, and connections
 * being refused with BUSY (each holds a descriptor for up to a second). */
#define FD_RESERVE 32
#define FD_PER_LOOP 4

/* ---- the store ---------------------------------------------------------------- */

/* Opens the store: in memory, or recovered from --data-dir. Writes do not
 * wait for the disk in kvd's loops: their replies are held instead
 * (conn_write.c) until durable_notify says their revision is durable. */
static int open_store(kvd_server *s, const kvd_config *cfg)
{
    kv_config c;
    kv_config_init(&c, sizeof c);
    c.max_key_size = cfg->max_key_size;
    c.max_value_size = cfg->max_value_size;
    c.max_keys = cfg->max_keys;
    c.max_memory = cfg->max_memory;
    c.eviction_policy = cfg->eviction_policy;
    c.huge_pages = cfg->huge_pages;
    c.history = cfg->history;
    c.history_versions = (uint32_t)cfg->history_versions;
    /* A cluster node's store keeps the count bound only, which every
     * node applies alike with each change; the byte and age bounds depend
     * on the node's memory and clock, so the leader applies them instead,
     * as COMPACT entries every node applies at the same revision
     * (repl/bounds.c). */
    int cluster = cfg->cluster || cfg->cluster_join;
    c.history_bytes = cluster ? 0 : cfg->history_bytes;
    c.history_age_s = cluster ? 0 : cfg->history_age;
    if (cfg->initial_capacity)
        c.initial_capacity = cfg->initial_capacity;
    /* A cluster node's durability is its Raft log (repl/): the store
     * itself stays in memory and is rebuilt from the log at start. */
    c.dir = cfg->cluster || cfg->cluster_join ? NULL : cfg->data_dir;
    /* Nor does a node remove expired keys on its own: the leader does,
     * through the log, at the clock its entries carry (repl/node.c). */
    c.manual_expiry = cfg->cluster || cfg->cluster_join ? 1 : 0;
    c.fsync = cfg->fsync;
    c.wait_durable = 0;
    c.snapshot_log_bytes = cfg->snapshot_log_size;
    c.snapshot_interval_s = cfg->snapshot_interval;
    if (cfg->data_dir)
        kvd_notify("STATUS=recovering %s", cfg->data_dir);
    int rc = kv_open_config(&c, &s->store);
    if (rc != KV_OK) {
        if (cfg->data_dir)
            kvd_error("cannot open the store in %s: %s%s%s", cfg->data_dir, kv_strerror(rc),
                      kv_last_error()[0] ? ": " : "", kv_last_error());
        else
            kvd_error("cannot open the store: %s", kv_strerror(rc));
        return -1;
    }
    static const char *policy[] = {"everysec", "always", "no"};
    if (cfg->history)
        kvd_info("history on: %llu earlier values per key, %llu bytes in all, %u s "
                 "(0: no bound)",
                 (unsigned long long)cfg->history_versions,
                 (unsigned long long)cfg->history_bytes, cfg->history_age);
    else
        kvd_info("history off: reads at a revision, HISTORY and ROLLBACK are refused");
    if (cfg->cluster || cfg->cluster_join) {
        kvd_info("cluster node: data in %s/raft (Raft's log), the store rebuilt from it",
                 cfg->data_dir ? cfg->data_dir : "?");
        return 0;
    }
    if (!cfg->data_dir) {
        kvd_info("in memory only: data is lost when kvd stops (--data-dir DIR keeps it)");
        return 0;
    }
    kvd_info("data in %s, fsync %s", cfg->data_dir, policy[cfg->fsync]);
    s->durable = 1;
    kv_recovery r;
    kv_recovery_read(s->store, &r, sizeof r);
    kvd_info("recovered %s in %.3f s: %llu keys, revision %llu (snapshot at %llu, %llu log "
             "records replayed from %llu segments%s), fsync %s",
             cfg->data_dir, (double)r.elapsed_us / 1e6, (unsigned long long)r.keys,
             (unsigned long long)r.revision, (unsigned long long)r.snapshot_revision,
             (unsigned long long)r.records, (unsigned long long)r.segments,
             r.torn_bytes ? ", a torn tail cut off" : "", policy[cfg->fsync]);
    if (r.torn_bytes)
        kvd_warn("%s: cut %llu bytes of a write torn by a crash off the end of the log",
                 cfg->data_dir, (unsigned long long)r.torn_bytes);
    atomic_store(&s->durable_rev, kv_durable_revision(s->store));
    atomic_store(&s->durable_status, KV_OK);
    return 0;
}

/* ---- workers --------------------------------------------------------------- */

static void worker_stop(kvd_worker *w);

static void on_grace(uv_timer_t *t)
{
    kvd_worker *w = t->data;
    size_t n = 0;
    for (kvd_conn *c = w->conns; c; c = c->next, n++)
        kvd_conn_close(c);
    if (n)
        kvd_warn("worker %d: closed %zu connections still busy after %d ms", w->index, n,
                 KVD_GRACE_MS);
}

/* The worker's last handles, once it is stopping and has no connection. */
static void worker_close_last(kvd_worker *w)
{
    if (!uv_is_closing((uv_handle_t *)&w->grace))
        uv_close((uv_handle_t *)&w->grace, NULL);
    if (!uv_is_closing((uv_handle_t *)&w->log_write))
        uv_close((uv_handle_t *)&w->log_write, NULL);
    if (!uv_is_closing((uv_handle_t *)&w->spin))
        uv_close((uv_handle_t *)&w->spin, NULL);
    pthread_mutex_lock(&w->server->notify_mu);
    if (w->durable_open) {
        w->durable_open = 0;
        uv_close((uv_handle_t *)&w->durable, NULL);
    }
    pthread_mutex_unlock(&w->server->notify_mu);
}

void kvd_worker_conn_gone(kvd_worker *w)
{
    if (w->stopping && w->conns == NULL)
        worker_close_last(w);
}

/* ---- replies held for durability ------------------------------------------ */

void kvd_worker_hold(kvd_worker *w, kvd_conn *c)
{
    if (c->on_held_list)
        return;
    c->on_held_list = 1;
    c->held_prev = NULL;
    c->held_next = w->held;
    if (w->held)
        w->held->held_prev = c;
    else
        atomic_store(&w->has_held, 1);
    w->held = c;
}

void kvd_worker_unhold(kvd_worker *w, kvd_conn *c)
{
    if (!c->on_held_list)
        return;
    c->on_held_list = 0;
    if (c->held_prev)
        c->held_prev->held_next = c->held_next;
    else
        w->held = c->held_next;
    if (c->held_next)
        c->held_next->held_prev = c->held_prev;
    c->held_prev = c->held_next = NULL;
    if (!w->held)
        atomic_store(&w->has_held, 0);
}

/* The durable revision advanced (or the log failed): release what waited. */
static void on_durable(uv_async_t *a)
{
    kvd_worker *w = a->data;
    if (w->server->repl)
        kvd_repl_drain(w); /* proposals applied by the cluster */
    kvd_conn *next;
    for (kvd_conn *c = w->held; c; c = next) {
        next = c->held_next;
        kvd__conn_release(c);
    }
}

static void on_spin(uv_idle_t *h)
{
    (void)h; /* being active is the point: libuv then polls without waiting */
}

/* --busy-poll: an iteration that read requests keeps the loop polling
 * (an active idle handle makes libuv's poll not wait) until busy_poll
 * microseconds pass without another. A client waiting for each answer
 * then finds the loop awake: its send does not have to wake a sleeping
 * thread, which it pays for on its own CPU (with one closed-loop client
 * on a CPU of its own, that was the limit: kvd 71% busy, the client 99%,
 * bench/results/resp-redis-benchmark-6.txt). */
static void busy_poll(kvd_worker *w)
{
    int us = w->server->cfg->busy_poll;
    if (us <= 0)
        return;
    uint64_t now = uv_hrtime();
    if (w->worked) {
        w->worked = 0;
        w->spin_until = now + (uint64_t)us * 1000u;
        if (!w->spinning) {
            uv_idle_start(&w->spin, on_spin);
            w->spinning = 1;
        }
    } else if (w->spinning && now >= w->spin_until) {
        uv_idle_stop(&w->spin);
        w->spinning = 0;
    }
}

/* After each loop iteration's I/O callbacks: under everysec and no, the
 * loop writes the log itself (one pwrite for every write this iteration
 * answered, to the page cache, as Redis writes its AOF in beforeSleep)
 * and releases the replies that were waiting for it; fsyncs stay on the
 * log's thread. Under always it asks the log's thread for a round that
 * writes and syncs everything this iteration queued (one fdatasync for
 * the whole iteration), so the loop never waits for a disk. Then the
 * replies of this iteration's reads go out (kvd__conn_flush_soon), and
 * --busy-poll decides whether the loop may sleep. */
static void on_log_write(uv_check_t *h)
{
    kvd_worker *w = h->data;
    if (w->log_dirty) {
        w->log_dirty = 0;
        kv_write_log(w->server->store);
        on_durable(&w->durable);
    }
    kvd_conn_flush_soon_all(w); /* then this iteration's replies */
    busy_poll(w);
}

/* The worker whose loop runs on this thread, if any. */
static __thread kvd_worker *this_worker;

/* One notification per written batch, from the thread that wrote it: the
 * log's thread, or a worker's loop in on_log_write (which then releases
 * its own replies itself, without waking its own loop). */
static void durable_notify(void *ctx, uint64_t rev, int status)
{
    kvd_server *s = ctx;
    atomic_store(&s->durable_rev, rev);
    atomic_store(&s->durable_status, status);
    pthread_mutex_lock(&s->notify_mu);
    for (int i = 0; i < s->nworkers; i++)
        if (s->workers[i].durable_open && &s->workers[i] != this_worker &&
            atomic_load(&s->workers[i].has_held))
            uv_async_send(&s->workers[i].durable);
    pthread_mutex_unlock(&s->notify_mu);
}

/* ---- client memory --------------------------------------------------------- */

#define EVICT_MIN ((uint64_t)64 << 10) /* never drop a client for less */
#define EVICT_ROUNDS 16

static int over_client_memory(kvd_server *s)
{
    return atomic_load_explicit(&s->client_memory, memory_order_relaxed) > s->cfg->max_client_memory;
}

/* Asks w's loop to evict. Under w->lock, so the async handle cannot be
 * closed (worker_stop) between the check and the send. */
static void poke_evict(kvd_worker *w)
{
    if (atomic_exchange(&w->evict_req, 1))
        return; /* already asked */
    pthread_mutex_lock(&w->lock);
    if (!w->wakeup_closed)
        uv_async_send(&w->wakeup);
    pthread_mutex_unlock(&w->lock);
}

/* Race-freedom: only a loop closes its own connections; others only read
 * its published `biggest` (a hint, possibly stale) and poke it. A stale
 * hint costs one poke: the poked loop rescans, publishes the truth and
 * passes the request on if it no longer has the biggest. */
void kvd_worker_evict(kvd_worker *w)
{
    kvd_server *s = w->server;
    for (int round = 0; round < EVICT_ROUNDS && over_client_memory(s); round++) {
        kvd_conn *big = NULL;
        size_t bm = 0;
        for (kvd_conn *c = w->conns; c; c = c->next)
            if (!c->closing && c->mem > bm) {
                big = c;
                bm = c->mem;
            }
        atomic_store_explicit(&w->biggest, bm, memory_order_relaxed);
        kvd_worker *other = NULL;
        uint64_t om = 0;
        for (int i = 0; i < s->nworkers; i++) {
            kvd_worker *x = &s->workers[i];
            uint64_t m = atomic_load_explicit(&x->biggest, memory_order_relaxed);
            if (x != w && m > om) {
                other = x;
                om = m;
            }
        }
        if (big && bm >= om && bm >= EVICT_MIN) {
            kvd_warn("%s: client buffers total %llu bytes, over --max-client-memory %zu; "
                     "closing the biggest client (%zu bytes)",
                     big->peer,
                     (unsigned long long)atomic_load_explicit(&s->client_memory, memory_order_relaxed),
                     s->cfg->max_client_memory, bm);
            kvd_stat_add(&w->stats.disconnects_client_memory, 1);
            kvd_conn_close(big); /* subtracts its share at once */
            continue;
        }
        if (other && om >= EVICT_MIN)
            poke_evict(other);
        return;
    }
}

static void on_wakeup(uv_async_t *a)
{
    kvd_worker *w = a->data;
    if (atomic_exchange(&w->evict_req, 0))
        kvd_worker_evict(w);
    pthread_mutex_lock(&w->lock);
    kvd_handoff *q = w->queue;
    size_t n = w->nqueue;
    w->queue = NULL;
    w->nqueue = w->capqueue = 0;
    pthread_mutex_unlock(&w->lock);
    for (size_t i = 0; i < n; i++)
        kvd_conn_adopt(w, q[i].fd, q[i].is_unix, q[i].reject, q[i].protocol);
    free(q);
    if (atomic_load(&w->stop) && !w->stopping)
        worker_stop(w);
}

/* Memory of deleted values waits on this thread's retired list until no
 * reader can see it; without this a thread that stops writing would hold
 * it indefinitely (libkv frees it on the thread's later writes). Cheap
 * when nothing is retired. */
static void on_reclaim(uv_timer_t *t)
{
    kvd_worker *w = t->data;
    kv_reclaim(w->server->store, NULL);
}

static void worker_stop(kvd_worker *w)
{
    w->stopping = 1;
    pthread_mutex_lock(&w->lock);
    w->wakeup_closed = 1;
    pthread_mutex_unlock(&w->lock);
    uv_close((uv_handle_t *)&w->wakeup, NULL);
    uv_close((uv_handle_t *)&w->reclaim, NULL);
    uv_close((uv_handle_t *)&w->watch_timer, NULL);
    for (kvd_conn *c = w->conns; c; c = c->next)
        kvd_conn_drain(c);
    if (w->conns == NULL)
        worker_close_last(w);
    else
        uv_timer_start(&w->grace, on_grace, KVD_GRACE_MS, 0);
}

static void close_any(uv_handle_t *h, void *arg)
{
    (void)arg;
    if (!uv_is_closing(h))
        uv_close(h, NULL);
}

static void *worker_main(void *arg)
{
    kvd_worker *w = arg;
    this_worker = w;
    char name[16];
    snprintf(name, sizeof name, "kvd-loop-%d", w->index % 1000);
    pthread_setname_np(pthread_self(), name);
    uv_run(&w->loop, UV_RUN_DEFAULT);
    /* Normally everything is closed by now; be sure before loop_close. */
    uv_walk(&w->loop, close_any, NULL);
    uv_run(&w->loop, UV_RUN_DEFAULT);
    if (uv_loop_close(&w->loop) != 0)
        kvd_warn("worker %d: event loop still busy at exit", w->index);
    return NULL;
}

static void handoff(kvd_worker *w, int fd, int is_unix, int reject, int protocol)
{
    pthread_mutex_lock(&w->lock);
    if (w->nqueue == w->capqueue) {
        size_t cap = w->capqueue ? w->capqueue * 2 : 16;
        kvd_handoff *q = realloc(w->queue, cap * sizeof *q);
        if (!q) {
            pthread_mutex_unlock(&w->lock);
            close(fd);
            if (!reject)
                atomic_fetch_sub(&w->server->connections, 1);
            return;
        }
        w->queue = q;
        w->capqueue = cap;
    }
    w->queue[w->nqueue++] =
        (kvd_handoff){.fd = fd, .is_unix = is_unix, .reject = reject, .protocol = protocol};
    pthread_mutex_unlock(&w->lock);
    uv_async_send(&w->wakeup);
}

static int workers_start(kvd_server *s)
{
    int n = s->cfg->threads;
    if (n <= 0) {
        long cpus = sysconf(_SC_NPROCESSORS_ONLN);
        n = cpus > 0 ? (int)cpus : 1;
    }
    s->workers = calloc((size_t)n, sizeof *s->workers);
    if (!s->workers) {
        kvd_error("out of memory");
        return -1;
    }
    for (int i = 0; i < n; i++) {
        kvd_worker *w = &s->workers[i];
        w->server = s;
        w->index = i;
        int rc = uv_loop_init(&w->loop);
        if (rc != 0) {
            kvd_error("cannot create event loop: %s", uv_strerror(rc));
            return -1;
        }
        s->nworkers = i + 1;
        uv_async_init(&w->loop, &w->wakeup, on_wakeup);
        w->wakeup.data = w;
        uv_timer_init(&w->loop, &w->grace);
        w->grace.data = w;
        uv_async_init(&w->loop, &w->durable, on_durable);
        w->durable.data = w;
        uv_check_init(&w->loop, &w->log_write);
        w->log_write.data = w;
        uv_check_start(&w->log_write, on_log_write);
        uv_unref((uv_handle_t *)&w->log_write); /* does not keep the loop alive */
        uv_idle_init(&w->loop, &w->spin);
        uv_unref((uv_handle_t *)&w->spin);
        pthread_mutex_lock(&s->notify_mu);
        w->durable_open = 1;
        pthread_mutex_unlock(&s->notify_mu);
        uv_timer_init(&w->loop, &w->reclaim);
        w->reclaim.data = w;
        uv_timer_start(&w->reclaim, on_reclaim, RECLAIM_MS, RECLAIM_MS);
        kvd_watch_timer_init(w);
        pthread_mutex_init(&w->lock, NULL);
        pthread_mutex_init(&w->repl_mu, NULL);
        atomic_init(&w->stop, 0);
        rc = pthread_create(&w->thread, NULL, worker_main, w);
        if (rc != 0) {
            kvd_error("cannot start thread: %s", strerror(rc));
            uv_close((uv_handle_t *)&w->wakeup, NULL);
            uv_close((uv_handle_t *)&w->grace, NULL);
            pthread_mutex_lock(&s->notify_mu);
            w->durable_open = 0;
            uv_close((uv_handle_t *)&w->durable, NULL);
            pthread_mutex_unlock(&s->notify_mu);
            uv_close((uv_handle_t *)&w->log_write, NULL);
            uv_close((uv_handle_t *)&w->spin, NULL);
            uv_close((uv_handle_t *)&w->reclaim, NULL);
            uv_close((uv_handle_t *)&w->watch_timer, NULL);
            uv_run(&w->loop, UV_RUN_DEFAULT);
            uv_loop_close(&w->loop);
            pthread_mutex_destroy(&w->lock);
            pthread_mutex_destroy(&w->repl_mu);
            s->nworkers = i;
            return -1;
        }
        w->running = 1;
    }
    if (s->cfg->busy_poll > 0)
        kvd_info("%d worker threads, each polling %d us after requests before it sleeps "
                 "(--busy-poll)",
                 n, s->cfg->busy_poll);
    else
        kvd_info("%d worker threads", n);
    return 0;
}

/* Asks w to stop; only the first request wakes it. The send is under
 * w->lock, as in poke_evict: a worker woken meanwhile for something else
 * (a handoff, an eviction) may see stop, close its async handle and then
 * its loop before an unlocked send, which would write to a closed
 * descriptor (libuv aborts on EBADF). */
static void worker_ask_stop(kvd_worker *w)
{
    if (atomic_exchange(&w->stop, 1))
        return;
    pthread_mutex_lock(&w->lock);
    if (!w->wakeup_closed)
        uv_async_send(&w->wakeup);
    pthread_mutex_unlock(&w->lock);
}

static void workers_stop_and_join(kvd_server *s)
{
    for (int i = 0; i < s->nworkers; i++) {
        kvd_worker *w = &s->workers[i];
        if (w->running)
            worker_ask_stop(w);
    }
    for (int i = 0; i < s->nworkers; i++) {
        kvd_worker *w = &s->workers[i];
        if (!w->running)
            continue;
        pthread_join(w->thread, NULL);
        w->running = 0;
        for (size_t j = 0; j < w->nqueue; j++)
            close(w->queue[j].fd);
        free(w->queue);
        w->queue = NULL;
        w->nqueue = 0;
        pthread_mutex_destroy(&w->lock);
        pthread_mutex_destroy(&w->repl_mu);
    }
}

/* ---- listeners ------------------------------------------------------------- */

static void on_listener_closed(uv_handle_t *h)
{
    kvd_listener *l = h->data;
    close(l->fd);
    l->fd = -1;
}

static void accept_resume(uv_timer_t *t);

static void on_acceptable(uv_poll_t *p, int status, int events)
{
    (void)events;
    kvd_listener *l = p->data;
    kvd_server *s = l->server;
    if (status < 0) {
        kvd_warn("listener error: %s", uv_strerror(status));
        return;
    }
    for (int i = 0; i < ACCEPT_BATCH; i++) {
        int fd = accept4(l->fd, NULL, NULL, SOCK_NONBLOCK | SOCK_CLOEXEC);
        if (fd < 0) {
            if (errno == EINTR || errno == ECONNABORTED)
                continue;
            if (errno == EMFILE || errno == ENFILE || errno == ENOBUFS || errno == ENOMEM) {
                /* Out of descriptors: retrying at once would spin. */
                kvd_warn("accept: %s; pausing accepts for %d ms", strerror(errno),
                         ACCEPT_BACKOFF_MS);
                for (size_t j = 0; j < s->nlisteners; j++)
                    uv_poll_stop(&s->listeners[j].poll);
                uv_timer_start(&s->accept_backoff, accept_resume, ACCEPT_BACKOFF_MS, 0);
            } else if (errno != EAGAIN && errno != EWOULDBLOCK) {
                kvd_warn("accept: %s", strerror(errno));
            }
            return;
        }
        uint64_t max = s->max_connections;
        int reject = max && atomic_load(&s->connections) >= max;
        if (reject) {
            atomic_fetch_add_explicit(&s->connections_rejected, 1, memory_order_relaxed);
        } else {
            atomic_fetch_add(&s->connections, 1);
            atomic_fetch_add_explicit(&s->connections_total, 1, memory_order_relaxed);
        }
        kvd_worker *w = &s->workers[s->next_worker++ % (unsigned)s->nworkers];
        handoff(w, fd, l->is_unix, reject, l->protocol);
    }
}

static void accept_resume(uv_timer_t *t)
{
    kvd_server *s = t->data;
    for (size_t j = 0; j < s->nlisteners; j++)
        if (s->listeners[j].fd >= 0 && !uv_is_closing((uv_handle_t *)&s->listeners[j].poll))
            uv_poll_start(&s->listeners[j].poll, UV_READABLE, on_acceptable);
}

static int add_listener(kvd_server *s, int fd, int is_unix, int protocol)
{
    kvd_listener *l = &s->listeners[s->nlisteners];
    l->fd = fd;
    l->is_unix = is_unix;
    l->protocol = protocol;
    l->server = s;
    int rc = uv_poll_init_socket(s->loop, &l->poll, fd);
    if (rc != 0) {
        kvd_error("cannot watch listener: %s", uv_strerror(rc));
        close(fd);
        return -1;
    }
    l->poll.data = l;
    s->nlisteners++;
    uv_poll_start(&l->poll, UV_READABLE, on_acceptable);
    return 0;
}

/* protocol: KVD_PROTOCOL_* for a dedicated port, -1 for the main one. */
static int listen_tcp(kvd_server *s, const char *addr, int port, int protocol, int *bound)
{
    struct sockaddr_storage ss;
    if (!kvd_config_parse_addr(addr, port, &ss)) {
        kvd_error("invalid bind address '%s' (expected a numeric IPv4 or IPv6 address)", addr);
        return -1;
    }
    int fd = socket(ss.ss_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    if (fd < 0) {
        kvd_error("socket for %s: %s", addr, strerror(errno));
        return -1;
    }
    int one = 1;
    setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
    /* "::" must not also take the IPv4 port: 0.0.0.0 may be bound too. */
    if (ss.ss_family == AF_INET6)
        setsockopt(fd, IPPROTO_IPV6, IPV6_V6ONLY, &one, sizeof one);
    socklen_t len = ss.ss_family == AF_INET6 ? sizeof(struct sockaddr_in6) : sizeof(struct sockaddr_in);
    if (bind(fd, (struct sockaddr *)&ss, len) != 0 || listen(fd, 511) != 0) {
        /* A LAN address that is not up yet (at boot): say what to wait for. */
        kvd_error("cannot listen on %s port %d: %s%s", addr, port, strerror(errno),
                  errno == EADDRNOTAVAIL
                      ? " (no interface has this address; if the network is still coming up, "
                        "start kvd after it: systemd's After=network-online.target)"
                      : "");
        close(fd);
        return -1;
    }
    len = sizeof ss;
    getsockname(fd, (struct sockaddr *)&ss, &len);
    *bound = ntohs(ss.ss_family == AF_INET6 ? ((struct sockaddr_in6 *)&ss)->sin6_port
                                            : ((struct sockaddr_in *)&ss)->sin_port);
    kvd_info("listening on %s port %d%s", addr, *bound,
             protocol == KVD_PROTOCOL_RESP   ? " (Redis protocol only)"
             : protocol == KVD_PROTOCOL_HTTP ? " (HTTP only)"
                                             : "");
    return add_listener(s, fd, 0, protocol);
}

/* 1 if a server accepts connections on the Unix socket at sun. */
static int unix_socket_live(const struct sockaddr_un *sun)
{
    int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (fd < 0)
        return 0;
    int rc;
    do
        rc = connect(fd, (const struct sockaddr *)sun, sizeof *sun);
    while (rc != 0 && errno == EINTR);
    /* EAGAIN: its backlog is full, so it is very much alive. */
    int live = rc == 0 || errno == EAGAIN;
    close(fd);
    return live;
}

static int listen_unix(kvd_server *s, const char *path)
{
    struct sockaddr_un sun;
    if (strlen(path) >= sizeof sun.sun_path) {
        kvd_error("unix socket path too long: %s", path);
        return -1;
    }
    memset(&sun, 0, sizeof sun);
    sun.sun_family = AF_UNIX;
    strcpy(sun.sun_path, path);
    struct stat st;
    if (lstat(path, &st) == 0 && S_ISSOCK(st.st_mode)) {
        if (unix_socket_live(&sun)) {
            kvd_error("unix socket %s is in use by a running server; not taking it over "
                      "(stop that server or choose another --unix path)", path);
            return -1;
        }
        unlink(path); /* a stale socket from an earlier run */
    }
    int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    if (fd < 0 || bind(fd, (struct sockaddr *)&sun, sizeof sun) != 0) {
        kvd_error("cannot listen on unix socket %s: %s", path, strerror(errno));
        if (fd >= 0)
            close(fd);
        return -1;
    }
    /* Remember which file is ours, so that exit removes only it. */
    if (stat(path, &st) == 0) {
        s->unix_dev = st.st_dev;
        s->unix_ino = st.st_ino;
        s->unix_bound = 1;
    }
    /* Before listen(): until then nobody can connect, whatever the mode. */
    if (s->cfg->unix_perm >= 0 && chmod(path, (mode_t)s->cfg->unix_perm) != 0) {
        kvd_error("cannot set mode %03o on unix socket %s: %s", s->cfg->unix_perm, path,
                  strerror(errno));
        close(fd);
        return -1;
    }
    if (listen(fd, 511) != 0) {
        kvd_error("cannot listen on unix socket %s: %s", path, strerror(errno));
        close(fd);
        return -1;
    }
    kvd_info("listening on unix socket %s", path);
    return add_listener(s, fd, 1, -1);
}

static int write_port_file(const char *path, int port)
{
    char tmp[4096];
    if (snprintf(tmp, sizeof tmp, "%s.tmp.%d", path, (int)getpid()) >= (int)sizeof tmp)
        return -1;
    FILE *f = fopen(tmp, "we");
    if (!f)
        return -1;
    int ok = fprintf(f, "%d\n", port) > 0;
    ok = (fclose(f) == 0) && ok;
    /* rename: a reader never sees a half-written file */
    if (!ok || rename(tmp, path) != 0) {
        unlink(tmp);
        return -1;
    }
    return 0;
}

static void close_listeners(kvd_server *s)
{
    for (size_t i = 0; i < s->nlisteners; i++) {
        kvd_listener *l = &s->listeners[i];
        if (!uv_is_closing((uv_handle_t *)&l->poll))
            uv_close((uv_handle_t *)&l->poll, on_listener_closed);
    }
    /* Only our own socket: another kvd may have replaced it since. */
    struct stat st;
    if (s->unix_bound && lstat(s->cfg->unix_path, &st) == 0 && st.st_dev == s->unix_dev &&
        st.st_ino == s->unix_ino)
        unlink(s->cfg->unix_path);
    s->unix_bound = 0;
}

/* ---- descriptor limit -------------------------------------------------------- */

/* Every connection holds a descriptor: with fewer than --max-connections
 * allow, accept() fails with EMFILE and clients wait unanswered instead of
 * getting BUSY. So, like Redis: raise the soft RLIMIT_NOFILE toward the
 * hard one as far as needed, then lower the effective connection limit to
 * what the descriptors allow, and say so. */
static void fit_fd_limit(kvd_server *s)
{
    uint64_t want = s->cfg->max_connections;
    uint64_t reserve = FD_RESERVE + s->nlisteners + (uint64_t)FD_PER_LOOP * (s->nworkers + 1);
    s->max_connections = want;
    struct rlimit rl;
    if (getrlimit(RLIMIT_NOFILE, &rl) != 0)
        return;
    rlim_t need = want ? (rlim_t)(want + reserve) : rl.rlim_max;
    if (rl.rlim_cur != RLIM_INFINITY && rl.rlim_cur < need) {
        rlim_t old = rl.rlim_cur;
        rl.rlim_cur = rl.rlim_max == RLIM_INFINITY || rl.rlim_max > need ? need : rl.rlim_max;
        if (setrlimit(RLIMIT_NOFILE, &rl) == 0)
            kvd_info("raised the open-file limit from %llu to %llu", (unsigned long long)old,
                     (unsigned long long)rl.rlim_cur);
        else
            rl.rlim_cur = old;
    }
    if (rl.rlim_cur == RLIM_INFINITY)
        return;
    uint64_t fit = rl.rlim_cur > reserve + 1 ? (uint64_t)rl.rlim_cur - reserve : 1;
    if (want == 0 || want > fit) {
        s->max_connections = fit;
        if (want)
            kvd_warn("open-file limit %llu (hard %llu) allows only %llu of --max-connections %llu "
                     "(%llu descriptors kept in reserve); refusing connections above %llu with BUSY "
                     "(raise the limit with ulimit -n or LimitNOFILE=)",
                     (unsigned long long)rl.rlim_cur, (unsigned long long)rl.rlim_max,
                     (unsigned long long)fit, (unsigned long long)want,
                     (unsigned long long)reserve, (unsigned long long)fit);
        else
            kvd_info("max connections %llu (open-file limit %llu)", (unsigned long long)fit,
                     (unsigned long long)rl.rlim_cur);
    }
}

/* ---- service manager status ---------------------------------------------- */

/* One line for `systemctl status kvd`: where kvd listens, how much it holds. */
static void status_line(kvd_server *s, char *buf, size_t n)
{
    kv_metrics m = {0};
    kv_metrics_read(s->store, &m, sizeof m);
    char where[64];
    if (s->cfg->tcp_off)
        snprintf(where, sizeof where, "on %s", s->cfg->unix_path);
    else
        snprintf(where, sizeof where, "on port %d", s->bound_port);
    snprintf(buf, n, "serving %s: %llu keys, %llu clients, %s%s", where,
             (unsigned long long)m.keys, (unsigned long long)atomic_load(&s->connections),
             s->durable ? "data in " : "in memory only",
             s->durable ? s->cfg->data_dir : "");
}

static void notify_ready(kvd_server *s)
{
    char line[512];
    status_line(s, line, sizeof line);
    kvd_notify("READY=1\nSTATUS=%s", line);
}

static void on_status_timer(uv_timer_t *t)
{
    kvd_server *s = t->data;
    char line[512];
    status_line(s, line, sizeof line);
    kvd_notify("STATUS=%s", line);
}

/* ---- signals --------------------------------------------------------------- */

static void on_signal(void *arg, int signum)
{
    kvd_server *s = arg;
    kvd_info("received %s, shutting down", signum == SIGINT ? "SIGINT" : "SIGTERM");
    s->stopping = 1;
    kvd_notify("STOPPING=1\nSTATUS=stopping: answering what %llu clients sent",
               (unsigned long long)atomic_load(&s->connections));
    close_listeners(s);
    for (int i = 0; i < s->nworkers; i++)
        worker_ask_stop(&s->workers[i]);
    /* A second signal now ends kvd at once (signals.c). */
    uv_close((uv_handle_t *)&s->accept_backoff, NULL);
    uv_close((uv_handle_t *)&s->status_timer, NULL);
}

/* SIGHUP (logrotate's postrotate): reopen --log-file, never stop. It is
 * heard until kvd_server_cleanup(), so a SIGHUP during shutdown is
 * harmless too (and after it, stays pending: signals.c). */
static void on_sighup(void *arg, int signum)
{
    kvd_server *s = arg;
    (void)signum;
    /* systemctl reload kvd: ExecReload sends SIGHUP; the manager shows
     * "reloading" until READY=1. Not once stopping: READY=1 would undo it. */
    if (!s->stopping)
        kvd_notify_reloading();
    int err = kvd_log_reopen();
    if (err)
        kvd_error("received SIGHUP, cannot reopen the log file: %s (still logging to the old one)",
                  strerror(err));
    else
        kvd_info("received SIGHUP, reopened the log file");
    if (!s->stopping)
        notify_ready(s);
}

/* ---- public ---------------------------------------------------------------- */

int kvd_server_start(kvd_server *s, const kvd_config *cfg, uv_loop_t *loop)
{
    memset(s, 0, sizeof *s);
    s->cfg = cfg;
    s->loop = loop;
    s->start_ns = uv_hrtime();
    kvd_auth_throttle_init(&s->auth_throttle);
    s->out_soft = cfg->max_output_buffer / 2;
    s->out_low = cfg->max_output_buffer / 4;
    s->preauth_max_frame = PREAUTH_MAX_FRAME;
    /* A small MGET/TXN/SCAN request could ask for the same big value many
     * times over; results are capped at what a client accepts anyway. */
    s->max_response = cfg->max_value_size + RESPONSE_HEADROOM;
    if (s->max_response < cfg->max_frame_size)
        s->max_response = cfg->max_frame_size;

    pthread_mutex_init(&s->notify_mu, NULL);
    if (open_store(s, cfg) != 0)
        return -1;
    /* Recovered: from now on a SIGTERM is a clean stop (it is acted on
     * once the loop runs), before the port file tells anyone to connect. */
    int rc = kvd_signals_listen(loop, on_signal, on_sighup, s);
    if (rc != 0) {
        kvd_error("cannot listen for signals: %s", uv_strerror(rc));
        return -1;
    }

    s->listeners = calloc(3 * cfg->nbinds + 1, sizeof *s->listeners);
    if (!s->listeners) {
        kvd_error("out of memory");
        return -1;
    }
    int port = cfg->port;
    for (size_t i = 0; i < cfg->nbinds; i++) {
        int bound;
        if (listen_tcp(s, cfg->binds[i], port, -1, &bound) != 0)
            return -1;
        if (i == 0)
            s->bound_port = bound;
        port = bound; /* with --port 0, every address gets the same port */
    }
    port = cfg->resp_port;
    for (size_t i = 0; port >= 0 && i < cfg->nbinds; i++) {
        int bound;
        if (listen_tcp(s, cfg->binds[i], port, KVD_PROTOCOL_RESP, &bound) != 0)
            return -1;
        if (i == 0)
            s->resp_port = bound;
        port = bound;
    }
    port = cfg->http_port;
    for (size_t i = 0; port >= 0 && i < cfg->nbinds; i++) {
        int bound;
        if (listen_tcp(s, cfg->binds[i], port, KVD_PROTOCOL_HTTP, &bound) != 0)
            return -1;
        if (i == 0)
            s->http_port = bound;
        port = bound;
    }
    if (cfg->unix_path && listen_unix(s, cfg->unix_path) != 0)
        return -1;
    if (cfg->port_file && write_port_file(cfg->port_file, s->bound_port) != 0) {
        kvd_error("cannot write port file %s: %s", cfg->port_file, strerror(errno));
        return -1;
    }

    uv_timer_init(loop, &s->accept_backoff);
    uv_timer_init(loop, &s->status_timer);
    s->accept_backoff.data = s->status_timer.data = s;

    if (workers_start(s) != 0)
        return -1;
    if ((cfg->cluster || cfg->cluster_join) && kvd_repl_start(s) != 0)
        return -1;
    if (s->durable)
        kv_set_durable_callback(s->store, durable_notify, s);
    fit_fd_limit(s); /* before the acceptor loop runs */
    char where[32];
    if (cfg->tcp_off)
        snprintf(where, sizeof where, "no TCP");
    else
        snprintf(where, sizeof where, "port %d", s->bound_port);
    kvd_info("kvd %s ready (%s, max frame %zu, store max key %zu, max value %zu%s)",
             KV_VERSION_STRING, where, cfg->max_frame_size, cfg->max_key_size,
             cfg->max_value_size, cfg->password ? ", password required" : "");
    notify_ready(s);
    if (kvd_notify_active()) {
        uv_timer_start(&s->status_timer, on_status_timer, KVD_STATUS_MS, KVD_STATUS_MS);
        uv_unref((uv_handle_t *)&s->status_timer); /* does not keep the loop alive */
    }
    return 0;
}

int kvd_server_run(kvd_server *s)
{
    uv_run(s->loop, UV_RUN_DEFAULT);
    /* Proposals in flight get a grace period to commit while the
     * workers answer what they received. */
    kvd_repl_begin_stop(s->repl);
    workers_stop_and_join(s);
    s->served = 1;
    kvd_info("stopped");
    return 0;
}

void kvd_server_cleanup(kvd_server *s)
{
    kvd_repl_begin_stop(s->repl);
    workers_stop_and_join(s);
    kvd_repl_end(s->repl);
    s->repl = NULL;
    if (s->store && s->durable)
        kv_set_durable_callback(s->store, NULL, NULL);
    if (s->loop) {
        close_listeners(s);
        kvd_signals_close();
        uv_walk(s->loop, close_any, NULL);
        uv_run(s->loop, UV_RUN_DEFAULT);
    }
    free(s->workers);
    s->workers = NULL;
    free(s->listeners);
    s->listeners = NULL;
    kv_metrics m = {0};
    if (s->store && s->served)
        kv_metrics_read(s->store, &m, sizeof m);
    if (s->store && s->durable)
        kvd_notify("STATUS=closing the store in %s", s->cfg->data_dir);
    kv_close(s->store); /* a data directory's log is complete once this returns */
    if (s->store && s->served) {
        if (s->durable)
            kvd_info("%llu keys saved in %s", (unsigned long long)m.keys, s->cfg->data_dir);
        else
            kvd_info("in memory only: %llu keys discarded", (unsigned long long)m.keys);
    }
    s->store = NULL;
    if (s->cfg)
        kvd_auth_throttle_destroy(&s->auth_throttle);
}
