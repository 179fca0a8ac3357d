/*
 * node.c - one kvd cluster node on canonical raft (repl.h).
 *
 * Threads: Raft runs on its own thread and libuv loop (the Raft thread),
 * with Raft's own storage (raft_uv, under --data-dir) and TCP transport
 * (--raft-addr). Workers hand proposals to it through a mutex-protected
 * queue and an async wake-up; it hands completions back to each worker
 * through the worker's completion list and its `durable` async (the same
 * wake-up that releases replies held for durability), and the worker
 * fills the connection's held slot from the recorded reply.
 *
 * Applying: the FSM's apply runs the decoded command through the command
 * layer on the Raft thread, with a recording reply; Raft passes the
 * recording to the proposal's callback on the node that proposed it. On
 * other nodes nobody claims it: the next apply frees it.
 *
 * Batches: the writes the Raft thread finds queued when it wakes are
 * proposed as one Raft entry (entry.h's batch, up to BATCH_MAX writes or
 * BATCH_BYTES), so that a burst of writes costs one Raft request, one
 * append and one AppendEntries per follower instead of one each. Every
 * node applies a batch's writes one by one, in order, each as it would
 * have applied it alone (its own revision, its own request id, its own
 * reply): batching changes the cost of replication, not what a write
 * means. A lone write is proposed as before, unbatched.
 *
 * Leadership: a timer on the Raft thread copies Raft's role, leader and
 * indexes into a status block every STATUS_MS, which workers read to
 * refuse writes at once on a follower (naming the leader). A proposal
 * that Raft refuses (not leader) is answered NOT_LEADER; one that Raft
 * accepted but could not commit before losing leadership is answered
 * UNKNOWN_OUTCOME: it may or may not have been applied.
 *
 * Reads (linearizable): a read waits for a Raft barrier - an entry that
 * is committed, hence confirmed by a quorum, only while this node leads,
 * and whose callback runs once everything before it is applied - then
 * runs on its worker against the local store. One barrier serves every
 * read that arrived before it was proposed; reads arriving meanwhile wait
 * for the next one, so a burst of reads costs one log round trip.
 *
 * Expiry: a node's store never removes expired keys on its own (libkv's
 * manual_expiry). Every entry carries the leader's clock reading when it
 * proposed it (stamped here, on the Raft thread, in log order), and every
 * node applies the entry with that reading pinned as the store's "now"
 * (kv_clock_pin), so compares, and the removal of an expired key a write
 * meets, come out the same everywhere. The leader finds expired keys
 * every EXPIRE_MS (a bounded step of libkv's sweep, kv_expired_find) and
 * proposes their removal as one CLUSTER_EXPIRE entry, which every node
 * applies with kv_expire_remove at the entry's clock: a key set again
 * since (a later expiry time, or none) stays. One such entry is in flight
 * at a time; after a full one the next step runs as soon as it is
 * applied. So every removal is a log entry, with the same revision on
 * every node.
 *
 * History: ROLLBACK and COMPACT are write commands like the others, so
 * every node rolls back and compacts at the same point of the log; the
 * count bound (--history-versions) is the store's own and drops the same
 * versions everywhere. The byte and age bounds are judged by the leader
 * alone (bounds.h): every KVD_BOUNDS_TICK_MS every node samples its
 * revision and clock, and the leader, when its store is over a bound,
 * proposes one COMPACT entry for the revision the bounds ask for (one in
 * flight at a time), which every node applies. Snapshots carry history
 * (snapshot.h), so a node that installs one reads the past as the leader
 * does.
 *
 * Snapshots: every --raft-snapshot-entries entries (more once they are
 * big) Raft asks for the state (fsm_snapshot: the store as of the
 * snapshot's index with its history, exact, snapshot.h; copied beside
 * the Raft thread while it applies later entries), keeps it and drops the
 * log before it; a
 * restart or a follower far behind installs it (fsm_restore) and applies
 * the log after it.
 *
 * Request ids: a write from a connection that gave a client id
 * (SESSION) carries it and the request's id in its entry; applying it
 * consults the table of applied request ids (sessions.h, replicated
 * state, in snapshots too), so a retried write is applied once and its
 * retry answered with the first outcome.
 */
#include "repl.h"

#include <errno.h>
#include <limits.h>
#include <pthread.h>
#include <raft.h>
#include <raft/uv.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "../conn.h"
#include "../conn_internal.h"
#include "../log.h"
#include "../server.h"
#include "announce.h"
#include "bounds.h"
#include "bytes.h"
#include "entry.h"
#include "recorded.h"
#include "sessions.h"
#include "snapshot.h"
#include "tcp.h"

#define STATUS_MS 20
#define KVD_REPL_MAX_NODES 16
#define EXPIRE_MS 100        /* the leader's expiry step: 10 a second   */
#define EXPIRE_MIN_SLOTS 1024 /* index slots per step at least; else a
                                 tenth of the index (a pass a second)   */
#define EXPIRE_MAX_KEYS 256  /* keys per CLUSTER_EXPIRE entry           */
#define BATCH_MAX 256        /* writes per batch entry at most           */
#define BATCH_BYTES (1u << 20) /* and their entries' bytes (one bigger
                                 write goes alone)                      */

enum { ADMIN_NONE = 0, ADMIN_ADD, ADMIN_PROMOTE, ADMIN_REMOVE, ADMIN_TRANSFER };
#define STOP_GRACE_MS 3000
#define ANNOUNCE_RETRY_MS 1000 /* a follower's next try after a failed one */
#define ANNOUNCE_TIMEOUT_MS 2000
#define ANNOUNCE_DONE_MS 10000 /* after a successful one, while this node
                                  has not applied it yet                */

/* One proposal, from the worker that made it back to it. */
typedef struct kvd_repl_wait {
    struct kvd_repl_wait *next;
    struct raft_apply req;
    kvd_repl *repl;
    kvd_worker *w;
    kvd_conn *c;
    kvd_held *slot;
    kvd_reply reply;   /* the front-end's reply, aimed at slot later */
    void *entry;       /* raft_malloc'ed; Raft's once accepted */
    size_t len;
    int is_read;       /* a read waiting for a barrier; cmd is its copy */
    int admin;         /* a membership change: ADMIN_* */
    uint64_t node;     /* its node id */
    char addr[256];    /* its address (add) */
    struct raft_change change;
    struct raft_transfer transfer;
    kvd_cmd *cmd;
    int status;        /* KV_OK: result holds the recorded reply (a
                          read: the read may run now) */
    char detail[160];
    kv_proto_buf result;
} kvd_repl_wait;

/* What applying one Raft entry recorded: each write's reply (one for a
 * write entry, a batch's in its order), handed to the proposal's
 * callback on the proposing node. */
typedef struct kvd_applied {
    size_t n;
    kv_proto_buf rec[];
} kvd_applied;

static void applied_free(kvd_applied *a)
{
    if (!a)
        return;
    for (size_t i = 0; i < a->n; i++)
        kv_proto_buf_free(&a->rec[i]);
    free(a);
}

/* Writes proposed together as one batch entry. */
typedef struct kvd_repl_batch {
    struct raft_apply req;
    kvd_repl *repl;
    size_t n;
    kvd_repl_wait *w[];
} kvd_repl_batch;

/* A snapshot being taken: fsm_snapshot fills it on the Raft thread,
 * fsm_snapshot_async (a pool thread) copies the store if held, and
 * fsm_snapshot_finalize (the Raft thread) ends it. */
typedef struct kvd_snap_job {
    int held;              /* the store is held at rev: copied off the thread */
    atomic_int released;   /* the hold has ended */
    uint64_t rev, compact; /* kv_history_hold's */
    kvd_snap_node nodes[KVD_SNAP_MAX_NODES];
    unsigned nn;
    unsigned char *sess; /* the request ids' section */
    size_t sess_len;
    kvd_snap_counts counts;
    struct timespec t0;
    double raft_ms, copy_ms; /* time on the Raft thread, time of the copy beside it */
} kvd_snap_job;

struct kvd_repl {
    kvd_server *s;
    pthread_t thread;
    int running;
    uv_loop_t loop;
    uv_async_t wake;
    uv_timer_t tick, stop_timer, expire_timer, bounds_timer;
    struct raft raft;
    struct raft_io io;
    kvd_raft_tcp transport;
    struct raft_fsm fsm;
    int raft_closing;
    /* under mu */
    pthread_mutex_t mu;
    struct {
        uint64_t id;
        char addr[64];
    } clients[KVD_REPL_MAX_NODES]; /* where clients reach each node, as
                                      the nodes announced it (a log entry) */
    struct {
        uint64_t id;
        char raft[64];
        int role;          /* RAFT_VOTER, RAFT_STANDBY, RAFT_SPARE */
        uint64_t match;    /* leader only: highest index it has */
    } members[KVD_REPL_MAX_NODES];
    int nmembers;
    kvd_repl_wait *queue, *queue_tail;
    int stopping;
    int wake_closed; /* the Raft thread closed wake: nothing may send it */
    kvd_repl_status st;
    /* Raft thread only */
    size_t inflight;
    kvd_applied *unclaimed; /* the last apply's recordings, until claimed */
    kvd_session apply_sess;
    uint64_t announced_term;       /* term in which this leader said where
                                      clients reach it                   */
    /* a follower saying where clients reach it, through its leader
     * (announce.h), on a thread of libuv's pool */
    uv_work_t announce_work;
    int announce_busy;
    uint64_t announce_next_ms; /* no new try before (uv_now)         */
    int announce_failed;       /* the last try failed (logged once)  */
    char announce_leader[64], announce_self[64], announce_err[160];
    char *announce_password;
    int announce_rc;
    kvd_repl_wait *reads_next;     /* wait for the next barrier          */
    kvd_repl_wait *reads_inflight; /* confirmed by the barrier in flight */
    struct raft_barrier barrier;
    int barrier_busy;
    int expire_busy; /* a CLUSTER_EXPIRE entry is in flight */
    int expire_more; /* and it was full: the next step comes at once */
    kvd_sessions *sessions; /* applied request ids (replicated state) */
    kvd_bounds bounds; /* history's byte and age bounds */
    int bounds_busy;   /* a COMPACT entry of theirs is in flight */
    kvd_snap_job job;  /* the snapshot being taken (one at a time) */
    size_t snap_len;   /* bytes of the last snapshot taken (0: none yet) */
    unsigned snap_threshold; /* as last given to raft_set_snapshot_threshold */
    double entry_bytes;  /* applied entries' mean size and writes (moving */
    double entry_writes; /* averages; a batch is one entry of many writes) */
    _Atomic int leader; /* this node leads, as last seen */
};

/* ---- completions (Raft thread -> worker) --------------------------------- */

static void deliver(kvd_repl_wait *w)
{
    kvd_worker *wk = w->w;
    kvd_server *s = wk->server;
    pthread_mutex_lock(&wk->repl_mu);
    w->next = wk->repl_done;
    wk->repl_done = w;
    pthread_mutex_unlock(&wk->repl_mu);
    pthread_mutex_lock(&s->notify_mu);
    if (wk->durable_open)
        uv_async_send(&wk->durable);
    pthread_mutex_unlock(&s->notify_mu);
}

static const char *client_addr(kvd_repl *r, uint64_t id)
{
    for (int i = 0; i < KVD_REPL_MAX_NODES; i++)
        if (r->clients[i].id == id)
            return r->clients[i].addr;
    return NULL;
}

/* The NOT_LEADER detail; clients that follow the leader look for
 * "reachable at HOST:PORT" in it (docs/replication.md). */
static void not_leader(kvd_repl *r, char *out, size_t n)
{
    pthread_mutex_lock(&r->mu);
    /* A status taken while this node still led is no lead: a node never
     * names itself. */
    uint64_t leader = r->st.leader_id == r->st.id ? 0 : r->st.leader_id;
    const char *where = leader ? client_addr(r, leader) : NULL;
    if (where)
        snprintf(out, n, "not the leader: the leader is node %llu, reachable at %s",
                 (unsigned long long)leader, where);
    else if (leader)
        snprintf(out, n, "not the leader: the leader is node %llu (raft address %s)",
                 (unsigned long long)leader, r->st.leader_addr);
    else
        snprintf(out, n, "not the leader, and no leader is known (an election is under way, "
                         "or no quorum): retry");
    pthread_mutex_unlock(&r->mu);
}

static void fail(kvd_repl_wait *w, int raft_rc)
{
    kvd_repl *r = w->repl;
    switch (raft_rc) {
    case RAFT_NOTLEADER:
        w->status = KV_NOT_LEADER;
        not_leader(r, w->detail, sizeof w->detail);
        break;
    case RAFT_LEADERSHIPLOST:
    case RAFT_SHUTDOWN:
        w->status = KV_UNKNOWN_OUTCOME;
        snprintf(w->detail, sizeof w->detail,
                 "outcome unknown: %s before the write was known to be committed; read the "
                 "keys to find out",
                 raft_rc == RAFT_SHUTDOWN ? "the node stopped" : "this node lost leadership");
        break;
    case RAFT_NOMEM:
        w->status = KV_NO_MEMORY;
        snprintf(w->detail, sizeof w->detail, "out of memory");
        break;
    case RAFT_TOOBIG:
        w->status = KV_INVALID_ARGUMENT;
        snprintf(w->detail, sizeof w->detail, "entry too big for the Raft log");
        break;
    default:
        w->status = KV_INTERNAL;
        snprintf(w->detail, sizeof w->detail, "raft: %s", raft_strerror(raft_rc));
    }
    pthread_mutex_lock(&r->mu);
    r->st.proposals_failed++;
    pthread_mutex_unlock(&r->mu);
}

static void maybe_close(kvd_repl *r);
static void start_barrier(kvd_repl *r);

static void on_barrier(struct raft_barrier *req, int status)
{
    kvd_repl *r = req->data;
    r->barrier_busy = 0;
    r->inflight--;
    kvd_repl_wait *list = r->reads_inflight;
    r->reads_inflight = NULL;
    if (status != 0) {
        /* The reads waiting for the next barrier fail with these: no new
         * barrier from inside this callback, which Raft runs while it
         * tears down its leader state (leadership lost): raft_barrier()
         * there used freed state and crashed an isolated leader (found
         * by test_cluster_faults' partition). */
        kvd_repl_wait **tail = &list;
        while (*tail)
            tail = &(*tail)->next;
        *tail = r->reads_next;
        r->reads_next = NULL;
    }
    while (list) {
        kvd_repl_wait *w = list;
        list = list->next;
        if (status == 0)
            w->status = KV_OK;
        else
            fail(w, status == RAFT_LEADERSHIPLOST || status == RAFT_SHUTDOWN ? RAFT_NOTLEADER
                                                                             : status);
        deliver(w);
    }
    if (r->reads_next)
        start_barrier(r);
    maybe_close(r);
}

/* Proposes a barrier for the reads waiting for one. */
static void start_barrier(kvd_repl *r)
{
    if (r->barrier_busy || !r->reads_next)
        return;
    r->reads_inflight = r->reads_next;
    r->reads_next = NULL;
    r->barrier.data = r;
    int rc = r->raft_closing ? RAFT_SHUTDOWN : raft_barrier(&r->raft, &r->barrier, on_barrier);
    if (rc != 0) {
        kvd_repl_wait *list = r->reads_inflight;
        r->reads_inflight = NULL;
        while (list) {
            kvd_repl_wait *w = list;
            list = list->next;
            fail(w, RAFT_NOTLEADER);
            deliver(w);
        }
        return;
    }
    r->barrier_busy = 1;
    r->inflight++;
}

/* Gives the n proposals ws the recordings of their entry's apply (a,
 * claimed here), or their failure. */
static void applied_to(kvd_repl *r, kvd_repl_wait *const *ws, size_t n, int status,
                       kvd_applied *a)
{
    r->inflight--;
    if (a && r->unclaimed == a)
        r->unclaimed = NULL;
    for (size_t i = 0; i < n; i++) {
        kvd_repl_wait *w = ws[i];
        if (status == 0 && a && a->n == n) {
            w->status = KV_OK;
            w->result = a->rec[i];
            a->rec[i] = (kv_proto_buf){0};
        } else if (status == 0 && a) {
            w->status = KV_INTERNAL; /* never: every node decodes what it proposed */
            snprintf(w->detail, sizeof w->detail,
                     "a replicated batch of %zu writes was applied as %zu", n, a->n);
        } else {
            fail(w, status ? status : RAFT_SHUTDOWN);
        }
        deliver(w);
    }
    applied_free(a);
    maybe_close(r);
}

static void on_applied(struct raft_apply *req, int status, void *result)
{
    kvd_repl_wait *w = req->data;
    applied_to(w->repl, &w, 1, status, result);
}

static void on_applied_batch(struct raft_apply *req, int status, void *result)
{
    kvd_repl_batch *b = req->data;
    applied_to(b->repl, b->w, b->n, status, result);
    free(b);
}

/* ---- proposals (worker -> Raft thread) ------------------------------------- */

/* ---- membership changes (Raft thread) ------------------------------------ */

static void admin_done(kvd_repl_wait *w, int rc)
{
    kvd_repl *r = w->repl;
    r->inflight--;
    if (rc == 0) {
        w->status = KV_OK;
    } else {
        fail(w, rc);
        snprintf(w->detail + strlen(w->detail), sizeof w->detail - strlen(w->detail),
                 " (%s)", raft_strerror(rc));
    }
    deliver(w);
    maybe_close(r);
}

static void on_changed(struct raft_change *req, int status);

static void admin_step(kvd_repl *r, kvd_repl_wait *w)
{
    int rc;
    w->change.data = w;
    w->transfer.data = w;
    switch (w->admin) {
    case ADMIN_ADD:
        rc = raft_add(&r->raft, &w->change, (raft_id)w->node, w->addr, on_changed);
        break;
    case ADMIN_PROMOTE:
        /* raft_assign waits until the new node has caught up */
        rc = raft_assign(&r->raft, &w->change, (raft_id)w->node, RAFT_VOTER, on_changed);
        break;
    case ADMIN_REMOVE:
        rc = raft_remove(&r->raft, &w->change, (raft_id)w->node, on_changed);
        break;
    default:
        rc = RAFT_INVALID;
    }
    if (rc != 0)
        admin_done(w, rc);
}

static void on_changed(struct raft_change *req, int status)
{
    kvd_repl_wait *w = req->data;
    if (status == 0 && w->admin == ADMIN_ADD) {
        w->admin = ADMIN_PROMOTE; /* added as a spare: now make it a voter */
        admin_step(w->repl, w);
        return;
    }
    admin_done(w, status);
}

static void on_transferred(struct raft_transfer *req)
{
    kvd_repl_wait *w = req->data;
    kvd_repl *r = w->repl;
    /* raft 0.15 reports no status: it worked if another node leads now */
    raft_id id = 0;
    const char *addr;
    raft_leader(&r->raft, &id, &addr);
    admin_done(w, id != 0 && id != r->raft.id ? 0 : RAFT_NOTLEADER);
}

static void admin_start(kvd_repl *r, kvd_repl_wait *w)
{
    r->inflight++;
    if (r->raft_closing) {
        admin_done(w, RAFT_SHUTDOWN);
        return;
    }
    if (w->admin == ADMIN_TRANSFER) {
        w->transfer.data = w;
        int rc = raft_transfer(&r->raft, &w->transfer, (raft_id)w->node, on_transferred);
        if (rc != 0)
            admin_done(w, rc);
        return;
    }
    admin_step(r, w);
}

/* Proposes the n writes ws (stamped): one alone as its entry, more as
 * one batch entry. */
static void propose(kvd_repl *r, kvd_repl_wait **ws, size_t n)
{
    if (n == 0)
        return;
    struct raft_buffer buf = {ws[0]->entry, ws[0]->len};
    struct raft_apply *req = &ws[0]->req;
    raft_apply_cb cb = on_applied;
    kvd_repl_batch *b = NULL;
    ws[0]->req.data = ws[0];
    if (n > 1) {
        void *entries[BATCH_MAX];
        size_t lens[BATCH_MAX];
        for (size_t i = 0; i < n; i++) {
            entries[i] = ws[i]->entry;
            lens[i] = ws[i]->len;
        }
        b = malloc(sizeof *b + n * sizeof b->w[0]);
        buf.base = b ? kvd_entry_batch(entries, lens, n, &buf.len) : NULL;
        if (!buf.base) {
            /* No memory for the batch: one by one, as without batches. */
            free(b);
            for (size_t i = 0; i < n; i++)
                propose(r, &ws[i], 1);
            return;
        }
        b->repl = r;
        b->n = n;
        memcpy(b->w, ws, n * sizeof ws[0]);
        b->req.data = b;
        req = &b->req;
        cb = on_applied_batch;
    }
    int rc = r->raft_closing ? RAFT_SHUTDOWN : raft_apply(&r->raft, req, &buf, 1, cb);
    if (b) {
        if (rc != 0)
            raft_free(buf.base);
        for (size_t i = 0; i < n; i++) {
            raft_free(ws[i]->entry); /* copied into the batch */
            ws[i]->entry = NULL;
        }
        if (rc != 0)
            free(b);
    } else if (rc != 0) {
        raft_free(ws[0]->entry);
    }
    if (rc != 0) {
        for (size_t i = 0; i < n; i++) {
            fail(ws[i], rc == RAFT_SHUTDOWN ? RAFT_NOTLEADER : rc);
            deliver(ws[i]);
        }
        return;
    }
    r->inflight++;
    pthread_mutex_lock(&r->mu);
    r->st.proposals += n;
    r->st.batches += n > 1;
    pthread_mutex_unlock(&r->mu);
}

static void on_wake(uv_async_t *a)
{
    kvd_repl *r = a->data;
    pthread_mutex_lock(&r->mu);
    kvd_repl_wait *q = r->queue;
    r->queue = r->queue_tail = NULL;
    int stopping = r->stopping;
    pthread_mutex_unlock(&r->mu);
    /* The writes are proposed in their order, as few entries as the
     * batch bounds allow; an admin request first proposes those before
     * it. */
    kvd_repl_wait *batch[BATCH_MAX];
    size_t nb = 0, bytes = 0;
    uint64_t now = kv_clock_ms(r->s->store);
    while (q) {
        kvd_repl_wait *w = q;
        q = q->next;
        w->next = NULL;
        if (w->is_read) {
            w->next = r->reads_next;
            r->reads_next = w;
            continue;
        }
        if (w->admin) {
            propose(r, batch, nb);
            nb = bytes = 0;
            admin_start(r, w);
            continue;
        }
        kvd_entry_stamp(w->entry, now);
        if (nb == BATCH_MAX || (nb > 0 && bytes + w->len > BATCH_BYTES)) {
            propose(r, batch, nb);
            nb = bytes = 0;
        }
        batch[nb++] = w;
        bytes += w->len;
    }
    propose(r, batch, nb);
    start_barrier(r);
    if (stopping)
        maybe_close(r);
}

/* Hands w (its slot taken) to the Raft thread; x's reply is deferred. */
static void enqueue(kvd_repl *r, kvd_repl_wait *w, kvd_exec *x)
{
    kvd_conn *c = x->c;
    w->repl = r;
    w->w = c->w;
    w->c = c;
    w->reply = *x->r;
    x->r->none = 1;
    c->handles++; /* the connection outlives the proposal (kvd__conn_unref) */
    pthread_mutex_lock(&r->mu);
    if (r->queue_tail)
        r->queue_tail->next = w;
    else
        r->queue = w;
    r->queue_tail = w;
    if (!r->wake_closed)
        uv_async_send(&r->wake);
    pthread_mutex_unlock(&r->mu);
}

/* Queues entry (from raft_malloc; taken) to be proposed by the Raft thread
 * and holds x's reply until it is applied (or fails). KV_OK, or the
 * answer given at once: out of memory (entry NULL), the node stopping. */
static int propose_deferred(kvd_repl *r, kvd_exec *x, void *entry, size_t len)
{
    kvd_reply *rep = x->r;
    kvd_repl_wait *w = entry ? calloc(1, sizeof *w) : NULL;
    if (!w) {
        raft_free(entry);
        return rep->ops->error(rep, KV_NO_MEMORY, "out of memory");
    }
    w->entry = entry;
    w->len = len;
    pthread_mutex_lock(&r->mu);
    int stopping = r->stopping;
    pthread_mutex_unlock(&r->mu);
    if (stopping) {
        raft_free(w->entry);
        free(w);
        return rep->ops->error(rep, KV_UNSUPPORTED, "the node is stopping");
    }
    if (!(w->slot = kvd__conn_defer(x->c))) {
        raft_free(w->entry);
        free(w);
        return -1;
    }
    enqueue(r, w, x);
    return KV_OK;
}

int kvd_repl_submit(kvd_exec *x)
{
    kvd_conn *c = x->c;
    kvd_server *s = c->w->server;
    kvd_repl *r = s->repl;
    kvd_reply *rep = x->r;
    char detail[160];
    if (!atomic_load(&r->leader)) {
        if (x->cmd->kind == KVD_CMD_EXEC)
            kvd__multi_end(x->sess); /* EXEC ends MULTI, whatever its answer */
        not_leader(r, detail, sizeof detail);
        return rep->ops->error(rep, KV_NOT_LEADER, detail);
    }
    /* With SESSION the request's id is the write's sequence number: the
     * entry carries both, so a retry is applied once (sessions.h). */
    uint64_t client = x->sess->req_client, seq = client ? x->cmd->id : 0;
    void *entry = NULL;
    size_t len = 0;
    if (x->cmd->kind == KVD_CMD_EXEC) {
        /* The whole queue in one entry: one transaction on every node. */
        kvd_cmd **queue;
        const kvd_watched *wt;
        size_t n, nw;
        int rc = kvd__multi_take(x, &queue, &n, &wt, &nw);
        if (rc != 1)
            return rc; /* answered: EXEC without MULTI, EXECABORT */
        for (size_t i = 0; i < n; i++) {
            unsigned f = kvd_cmd_flags(queue[i]->kind);
            if (!(f & (KVD_CF_READ | KVD_CF_WRITE)) && queue[i]->kind != KVD_CMD_PING &&
                queue[i]->kind != KVD_CMD_ECHO) {
                snprintf(detail, sizeof detail,
                         "EXECABORT in a cluster a transaction holds reads and writes of keys "
                         "(and PING, ECHO) only, not %s", kvd_cmd_name(queue[i]->kind));
                kvd__multi_end(x->sess); /* frees the queue */
                return rep->ops->error(rep, KV_UNSUPPORTED, detail);
            }
        }
        entry = kvd_entry_encode_exec((const kvd_cmd *const *)queue, n, wt, nw, client, seq,
                                      &len);
        kvd__multi_end(x->sess);
    } else {
        entry = kvd_entry_encode(x->cmd, client, seq, &len);
    }
    return propose_deferred(r, x, entry, len);
}

/* CLUSTER status as JSON: this node's view (match indexes and lag are
 * known to the leader only). */
static int cluster_status(kvd_exec *x, kvd_repl *r)
{
    static const char *const roles[] = {"follower", "candidate", "leader", "unavailable"};
    size_t cap = 1024 + KVD_REPL_MAX_NODES * 400, n = 0;
    char *j = malloc(cap);
    if (!j)
        return x->r->ops->error(x->r, KV_NO_MEMORY, "out of memory");
    pthread_mutex_lock(&r->mu);
    kvd_repl_status st = r->st;
    n += (size_t)snprintf(j + n, cap - n,
                          "{\"node\":%llu,\"role\":\"%s\",\"term\":%llu,\"leader\":%llu,"
                          "\"commit_index\":%llu,\"applied_index\":%llu,\"last_index\":%llu,"
                          "\"leader_changes\":%llu,\"apply_lag\":%llu,\"snapshots\":%llu,"
                          "\"snapshot_bytes\":%llu,\"snapshots_installed\":%llu,"
                          "\"duplicates\":%llu,\"nodes\":[",
                          (unsigned long long)st.id, roles[st.role & 3],
                          (unsigned long long)st.term, (unsigned long long)st.leader_id,
                          (unsigned long long)st.commit_index,
                          (unsigned long long)st.applied_index,
                          (unsigned long long)st.last_index,
                          (unsigned long long)st.leader_changes,
                          (unsigned long long)(st.commit_index > st.applied_index
                                                   ? st.commit_index - st.applied_index : 0),
                          (unsigned long long)st.snapshots,
                          (unsigned long long)st.snapshot_bytes,
                          (unsigned long long)st.snapshots_installed,
                          (unsigned long long)st.duplicates);
    for (int i = 0; i < r->nmembers && n < cap - 400; i++) {
        const char *client = client_addr(r, r->members[i].id);
        int leads = st.role == 2;
        uint64_t match = r->members[i].id == st.id ? st.last_index : r->members[i].match;
        n += (size_t)snprintf(
            j + n, cap - n,
            "%s{\"id\":%llu,\"raft\":\"%s\",\"client\":%s%s%s,\"voter\":%s,"
            "\"role\":\"%s\"",
            i ? "," : "", (unsigned long long)r->members[i].id, r->members[i].raft,
            client ? "\"" : "", client ? client : "null", client ? "\"" : "",
            r->members[i].role == RAFT_VOTER ? "true" : "false",
            r->members[i].id == st.leader_id ? "leader"
            : r->members[i].role == RAFT_VOTER ? "follower"
            : r->members[i].role == RAFT_STANDBY ? "standby" : "spare");
        if (leads)
            n += (size_t)snprintf(j + n, cap - n, ",\"match_index\":%llu,\"lag\":%llu}",
                                  (unsigned long long)match,
                                  (unsigned long long)(st.last_index > match
                                                           ? st.last_index - match : 0));
        else
            n += (size_t)snprintf(j + n, cap - n, ",\"match_index\":null,\"lag\":null}");
    }
    pthread_mutex_unlock(&r->mu);
    n += (size_t)snprintf(j + n, cap - n, "]}");
    int rc = x->r->ops->text(x->r, j, n);
    free(j);
    return rc;
}

/* CLUSTER announce ID HOST:PORT: a member (a follower, announce.h) says
 * where clients reach it; the leader proposes it as the entry a leader
 * proposes for itself, and answers once it is applied. */
static int cluster_announce(kvd_exec *x, kvd_repl *r)
{
    kvd_reply *rep = x->r;
    const kv_key *addr = &x->cmd->value;
    if (x->cmd->a == 0 || !addr->data || addr->len == 0 || addr->len >= 64 ||
        !memchr(addr->data, ':', addr->len) || memchr(addr->data, '"', addr->len) ||
        memchr(addr->data, '\\', addr->len) || memchr(addr->data, ',', addr->len))
        return rep->ops->error(rep, KV_INVALID_ARGUMENT,
                               "announce needs a member's node id and its client address, "
                               "HOST:PORT");
    char detail[200];
    if (!atomic_load(&r->leader)) {
        not_leader(r, detail, sizeof detail);
        return rep->ops->error(rep, KV_NOT_LEADER, detail);
    }
    int member = 0;
    pthread_mutex_lock(&r->mu);
    for (int i = 0; i < r->nmembers; i++)
        member |= r->members[i].id == x->cmd->a;
    pthread_mutex_unlock(&r->mu);
    if (!member)
        return rep->ops->error(rep, KV_NOT_FOUND, "no such member of the cluster");
    kvd_cmd cmd = {.kind = KVD_CMD_CLUSTER_ANNOUNCE, .a = x->cmd->a, .value = *addr};
    size_t len = 0;
    void *entry = kvd_entry_encode(&cmd, 0, 0, &len);
    return propose_deferred(r, x, entry, len);
}

int kvd_repl_admin(kvd_exec *x)
{
    kvd_conn *c = x->c;
    kvd_repl *r = x->srv->repl;
    kvd_reply *rep = x->r;
    const kv_key *sub = &x->cmd->key;
    int op = ADMIN_NONE;
#define IS(s) (sub->len == strlen(s) && memcmp(sub->data, s, sub->len) == 0)
    if (IS("status"))
        return cluster_status(x, r);
    if (IS("announce"))
        return cluster_announce(x, r);
    if (IS("add"))
        op = ADMIN_ADD;
    else if (IS("remove"))
        op = ADMIN_REMOVE;
    else if (IS("transfer"))
        op = ADMIN_TRANSFER;
#undef IS
    if (op == ADMIN_NONE)
        return rep->ops->error(rep, KV_INVALID_ARGUMENT,
                               "unknown CLUSTER subcommand (status, add ID ADDRESS, remove ID, "
                               "transfer [ID], announce ID HOST:PORT)");
    if ((op == ADMIN_ADD || op == ADMIN_REMOVE) && x->cmd->a == 0)
        return rep->ops->error(rep, KV_INVALID_ARGUMENT, "a node id (1..1024) is needed");
    if (op == ADMIN_ADD && (!x->cmd->value.data || x->cmd->value.len == 0 ||
                            x->cmd->value.len >= 256 ||
                            !memchr(x->cmd->value.data, ':', x->cmd->value.len)))
        return rep->ops->error(rep, KV_INVALID_ARGUMENT,
                               "add needs the new node's raft address, HOST:PORT");
    char detail[200];
    if (!atomic_load(&r->leader)) {
        not_leader(r, detail, sizeof detail);
        return rep->ops->error(rep, KV_NOT_LEADER, detail);
    }
    kvd_repl_wait *w = calloc(1, sizeof *w);
    if (!w)
        return rep->ops->error(rep, KV_NO_MEMORY, "out of memory");
    w->admin = op;
    w->node = x->cmd->a;
    if (op == ADMIN_ADD) {
        memcpy(w->addr, x->cmd->value.data, x->cmd->value.len);
        w->addr[x->cmd->value.len] = 0;
    }
    if (!(w->slot = kvd__conn_defer(c))) {
        free(w);
        return -1;
    }
    enqueue(r, w, x);
    return KV_OK;
}

int kvd_repl_read(kvd_exec *x)
{
    kvd_conn *c = x->c;
    kvd_repl *r = c->w->server->repl;
    kvd_reply *rep = x->r;
    char detail[256];
    if (!atomic_load(&r->leader)) {
        not_leader(r, detail, sizeof detail);
        /* How to ask for a local read instead, in the client's protocol. */
        strncat(detail, x->sess->protocol == KVD_PROTOCOL_HTTP
                            ? " (?consistency=serializable allows possibly stale reads here)"
                            : " (READONLY allows possibly stale reads here)",
                sizeof detail - strlen(detail) - 1);
        return rep->ops->error(rep, KV_NOT_LEADER, detail);
    }
    kvd_repl_wait *w = calloc(1, sizeof *w);
    if (!w)
        return rep->ops->error(rep, KV_NO_MEMORY, "out of memory");
    w->is_read = 1;
    w->cmd = kvd_cmd_copy(x->cmd);
    if (!w->cmd || !(w->slot = kvd__conn_defer(c))) {
        int oom = w->cmd != NULL;
        free(w->cmd);
        free(w);
        return oom ? -1 : rep->ops->error(rep, KV_NO_MEMORY, "out of memory");
    }
    enqueue(r, w, x);
    return KV_OK;
}

void kvd_repl_drain(kvd_worker *wk)
{
    pthread_mutex_lock(&wk->repl_mu);
    kvd_repl_wait *list = wk->repl_done;
    wk->repl_done = NULL;
    pthread_mutex_unlock(&wk->repl_mu);
    while (list) {
        kvd_repl_wait *w = list;
        list = list->next;
        kvd_conn *c = w->c;
        if (!c->closing) {
            kvd_reply *rep = &w->reply;
            kvd__held_aim(w->slot, rep);
            int rc;
            if (w->status != KV_OK) {
                rc = rep->ops->error(rep, w->status, w->detail);
            } else if (w->is_read) {
                /* Confirmed: everything committed before it is applied. */
                kvd_exec x = {.c = c, .srv = wk->server, .sess = &c->sess, .cmd = w->cmd,
                              .r = rep, .st = wk->server->store};
                rc = kvd__cmd_run(&x) < 0 ? KV_NO_MEMORY : KV_OK;
            } else {
                rc = kvd_recorded_replay(w->result.data, w->result.len, rep);
            }
            kvd__held_done(c, w->slot, rep, rc);
        }
        kvd__conn_unref(c);
        kv_proto_buf_free(&w->result);
        free(w->cmd);
        free(w);
    }
}

/* ---- the state machine ------------------------------------------------------- */

/* Runs a decoded write entry: a command, or EXEC's queue as one
 * transaction. Returns KV_OK or -1 (out of memory). */
static int run_entry(kvd_exec *x, const kvd_entry *e)
{
    if (e->cmd.kind != KVD_CMD_EXEC)
        return kvd__cmd_run(x);
    kvd_exec_batch b;
    int rc = kvd_entry_decode_exec(e, &b);
    if (rc != KV_OK) {
        kvd_error("raft: an EXEC entry cannot be decoded (%s)", kv_strerror(rc));
        x->r->ops->error(x->r, rc, "a replicated transaction could not be decoded");
        return KV_OK;
    }
    rc = kvd__multi_exec(x, b.queue, b.n, b.watched, b.nwatched);
    kvd_entry_free_exec(&b);
    return rc;
}

/* Whether e (a write with a request id) was applied before, by this
 * client's session (sessions.h): then its reply is the first one again,
 * or "outcome unknown" when that is no longer kept. */
static int applied_before(kvd_repl *r, const kvd_entry *e, kvd_reply *reply)
{
    const void *outcome = NULL;
    size_t len = 0;
    int seen = kvd_sessions_check(r->sessions, e->client, e->seq, &outcome, &len);
    if (seen == KVD_SESSION_NEW)
        return 0;
    pthread_mutex_lock(&r->mu);
    r->st.duplicates++;
    pthread_mutex_unlock(&r->mu);
    if (seen == KVD_SESSION_DUPLICATE && outcome &&
        kvd_recorded_replay(outcome, len, reply) == KV_OK)
        return 1;
    reply->ops->rewind(reply);
    reply->ops->error(reply, KV_UNKNOWN_OUTCOME,
                      seen == KVD_SESSION_DUPLICATE
                          ? "outcome unknown: this request id was applied before, and its "
                            "result was too large to keep; it was not applied again"
                          : "outcome unknown: this request id is older than the last 256 "
                            "this client had applied, or was never applied while a later "
                            "one was; it was not applied again");
    return 1;
}

/* Applies one write entry (base[0..len)), recording its reply in rec. */
static void apply_one(kvd_repl *r, const void *base, size_t len, kv_proto_buf *rec)
{
    kvd_reply reply;
    kvd_recorded_init(&reply, rec);
    kvd_entry e;
    int rc = kvd_entry_decode(base, len, &e);
    if (rc != KV_OK) {
        kvd_error("raft: a log entry of %zu bytes cannot be decoded (%s)", len,
                  kv_strerror(rc));
        reply.ops->error(&reply, rc, "a replicated entry could not be decoded");
    } else if (e.cmd.kind == KVD_CMD_CLUSTER_ANNOUNCE) {
        /* A leader says where clients reach it: node a at value. */
        pthread_mutex_lock(&r->mu);
        int slot = -1;
        for (int i = 0; i < KVD_REPL_MAX_NODES; i++)
            if (r->clients[i].id == e.cmd.a || (slot < 0 && r->clients[i].id == 0))
                slot = i;
        if (slot >= 0 && e.cmd.value.data) {
            size_t n = e.cmd.value.len < 63 ? e.cmd.value.len : 63;
            r->clients[slot].id = e.cmd.a;
            memcpy(r->clients[slot].addr, e.cmd.value.data, n);
            r->clients[slot].addr[n] = 0;
        }
        pthread_mutex_unlock(&r->mu);
        reply.ops->ok(&reply, "OK");
        kvd_entry_free(&e);
    } else if (e.cmd.kind == KVD_CMD_CLUSTER_EXPIRE) {
        /* The leader's expiry: the keys still expired at its clock. */
        size_t removed = 0;
        uint64_t rev = 0;
        rc = kv_expire_remove(r->s->store, e.cmd.keys, e.cmd.nkeys, e.clock_ms, &removed, &rev);
        if (rc == KV_OK)
            reply.ops->integer(&reply, (int64_t)removed);
        else
            reply.ops->error(&reply, rc, "expired keys could not be removed");
        kvd_entry_free(&e);
    } else if (e.client && applied_before(r, &e, &reply)) {
        /* a retry of a write already applied: nothing changes */
        kvd_entry_free(&e);
    } else {
        kvd_exec x = {.c = NULL, .srv = r->s, .sess = &r->apply_sess, .cmd = &e.cmd, .r = &reply,
                      .st = r->s->store};
        /* "now" is the leader's when it proposed the entry (none in an
         * entry of an older format: this node's clock, as then). */
        kv_clock_pin(r->s->store, e.clock_ms);
        if (run_entry(&x, &e) < 0)
            reply.ops->error(&reply, KV_NO_MEMORY, "out of memory");
        kv_clock_pin(r->s->store, 0);
        if (e.client && reply.ops->finish(&reply) == KV_OK)
            kvd_sessions_record(r->sessions, e.client, e.seq, rec->data, rec->len);
        kvd_entry_free(&e);
    }
    reply.ops->finish(&reply);
}

static int fsm_apply(struct raft_fsm *fsm, const struct raft_buffer *buf, void **result)
{
    kvd_repl *r = fsm->data;
    kvd_batch_iter it;
    size_t n = 1;
    int batch = kvd_entry_is_batch(buf->base, buf->len);
    if (batch && kvd_entry_batch_open(buf->base, buf->len, &it, &n) != KV_OK) {
        /* Every node reads the same bytes, so every node answers so. */
        kvd_error("raft: a batch entry of %zu bytes cannot be decoded", buf->len);
        batch = 0;
        n = 1;
    }
    kvd_applied *a = calloc(1, sizeof *a + n * sizeof a->rec[0]);
    if (!a)
        return RAFT_NOMEM;
    a->n = n;
    if (!batch) {
        apply_one(r, buf->base, buf->len, &a->rec[0]);
    } else {
        for (size_t i = 0; i < n; i++) {
            const void *sub = NULL;
            size_t len = 0;
            if (kvd_entry_batch_next(&it, &sub, &len) != KV_OK) {
                kvd_error("raft: write %zu of a batch entry of %zu bytes cannot be decoded", i,
                          buf->len);
                sub = NULL;
                len = 0;
            }
            apply_one(r, sub ? sub : "", len, &a->rec[i]);
        }
    }
    /* For set_snapshot_threshold: Raft counts entries, kvd means bytes
     * and writes. */
    r->entry_bytes += ((double)buf->len - r->entry_bytes) / 32;
    r->entry_writes += ((double)n - r->entry_writes) / 32;
    /* Nobody claimed the previous recordings: they were another node's. */
    applied_free(r->unclaimed);
    r->unclaimed = a;
    *result = a;
    return 0;
}

/* ---- snapshots of the state machine -------------------------------------------
 * The store and the nodes' client addresses (snapshot.h), then the table
 * of applied request ids (kvd_sessions_save: "KVDSESS2" ...; a snapshot
 * without it restores an empty table): the state at the snapshot's
 * index, which is the state of the store whenever the Raft thread, where
 * every write is applied, is between two entries.
 *
 * A store with history is copied off the Raft thread (canonical raft's
 * asynchronous snapshots, fsm version 3): fsm_snapshot, on the Raft
 * thread, holds the store's history at its revision (kv_history_hold) and
 * copies the small parts (addresses, request ids); fsm_snapshot_async, on
 * a thread of libuv's pool, copies the store as of that revision while
 * the Raft thread applies later entries (kvd_snap_encode_held) and ends
 * the hold; fsm_snapshot_finalize, back on the Raft thread once Raft has
 * written it, counts and frees it. So writes do not wait while tens of
 * MB are copied. A store without history is copied on the Raft thread
 * (kvd_snap_encode), as every snapshot was before. Raft takes one
 * snapshot at a time and installs none while one is being taken. */

static double ms_since(const struct timespec *t0)
{
    struct timespec t1;
    clock_gettime(CLOCK_MONOTONIC, &t1);
    return (double)(t1.tv_sec - t0->tv_sec) * 1e3 + (double)(t1.tv_nsec - t0->tv_nsec) / 1e6;
}

/* The snapshot in one buffer: the store's section, then the request ids.
 * 0, or RAFT_NOMEM with nothing allocated. */
static int snap_buffer(unsigned char *store, size_t len, const unsigned char *sess,
                       size_t sess_len, struct raft_buffer *bufs[], unsigned *n)
{
    struct raft_buffer *b = malloc(sizeof *b);
    unsigned char *all = b ? realloc(store, len + sess_len) : NULL;
    if (!all) {
        free(b);
        free(store);
        return RAFT_NOMEM;
    }
    memcpy(all + len, sess, sess_len);
    b->base = all;
    b->len = len + sess_len;
    *bufs = b;
    *n = 1;
    return 0;
}

/* When Raft next asks for a snapshot: once the log since the last is
 * about as big as it, and never before --raft-snapshot-entries writes:
 * with history a snapshot is big (up to
 * --history-bytes more), and at a fixed 16384 entries a busy cluster
 * copied a growing history every second (as Redis rewrites its AOF once
 * it has doubled). A snapshot takes a core while the store is copied (and
 * holds up the Raft thread for it without history), so once snapshots
 * are big the nodes take turns:
 *   - a follower waits 1, 1.25, 1.5 or 1.75 times as long, by its id, so
 *     that two followers seldom copy at once (the leader commits as long
 *     as one follower answers);
 *   - the leader waits twice as long: its copy takes a core from the node
 *     that answers every client, so it makes one half as often, and keeps
 *     a longer log meanwhile.
 * Raft's threshold counts entries; a batch is one entry of up to 256
 * writes, so both bounds go through the applied entries' mean size and
 * writes (moving averages): counted in entries, a busy cluster's log
 * between snapshots grew some 60 times longer than meant, and a node
 * restarted after a benchmark's load replayed it for over 30 s.
 * Called after each snapshot and on every tick (the role changes). */
static void set_snapshot_threshold(kvd_repl *r)
{
    double bytes = r->entry_bytes > 64 ? r->entry_bytes : 64;
    double writes = r->entry_writes > 1 ? r->entry_writes : 1;
    uint64_t by_size = (uint64_t)((double)r->snap_len / bytes);
    uint64_t floor = (uint64_t)((double)r->s->cfg->raft_snapshot_entries / writes);
    if (floor < 1)
        floor = 1;
    if (raft_state(&r->raft) == RAFT_LEADER)
        by_size *= 2;
    else
        by_size = by_size * (4 + (r->raft.id - 1) % 4) / 4;
    uint64_t next = by_size > floor ? by_size : floor;
    if (next > (uint64_t)1 << 24)
        next = (uint64_t)1 << 24;
    if (next != r->snap_threshold) {
        r->snap_threshold = (unsigned)next;
        raft_set_snapshot_threshold(&r->raft, (unsigned)next);
        /* a quarter of the floor is kept behind a snapshot, so a follower
         * a little behind catches up from the log */
        raft_set_snapshot_trailing(&r->raft, (unsigned)(floor / 4 + 1));
    }
}

static int fsm_snapshot(struct raft_fsm *fsm, struct raft_buffer *bufs[], unsigned *n)
{
    kvd_repl *r = fsm->data;
    kvd_snap_job *j = &r->job;
    *j = (kvd_snap_job){0};
    clock_gettime(CLOCK_MONOTONIC, &j->t0);
    pthread_mutex_lock(&r->mu);
    for (int i = 0; i < KVD_REPL_MAX_NODES && j->nn < KVD_SNAP_MAX_NODES; i++)
        if (r->clients[i].id) {
            j->nodes[j->nn].id = r->clients[i].id;
            memcpy(j->nodes[j->nn].addr, r->clients[i].addr, sizeof j->nodes[j->nn].addr);
            j->nn++;
        }
    pthread_mutex_unlock(&r->mu);
    if (kvd_sessions_save(r->sessions, &j->sess, &j->sess_len) != KV_OK)
        return RAFT_NOMEM;
    kv_store *st = r->s->store;
    if (kv_history_hold(st, &j->rev, &j->compact) == KV_OK) {
        j->held = 1;
        j->raft_ms = ms_since(&j->t0);
        *bufs = NULL;
        *n = 0;
        return 0; /* fsm_snapshot_async copies the store */
    }
    unsigned char *p = NULL;
    size_t len = 0;
    if (kvd_snap_encode(st, j->nodes, j->nn, &p, &len, &j->counts) != KV_OK ||
        snap_buffer(p, len, j->sess, j->sess_len, bufs, n) != 0) {
        free(j->sess);
        j->sess = NULL;
        return RAFT_NOMEM;
    }
    j->raft_ms = ms_since(&j->t0);
    return 0;
}

static int fsm_snapshot_async(struct raft_fsm *fsm, struct raft_buffer *bufs[], unsigned *n)
{
    kvd_repl *r = fsm->data;
    kvd_snap_job *j = &r->job;
    if (!j->held)
        return 0; /* made on the Raft thread */
    struct timespec t0;
    clock_gettime(CLOCK_MONOTONIC, &t0);
    unsigned char *p = NULL;
    size_t len = 0;
    int rc = kvd_snap_encode_held(r->s->store, j->rev, j->compact, j->nodes, j->nn, &p, &len,
                                  &j->counts);
    kv_history_release(r->s->store);
    atomic_store(&j->released, 1);
    if (rc != KV_OK || snap_buffer(p, len, j->sess, j->sess_len, bufs, n) != 0)
        return RAFT_NOMEM;
    j->copy_ms = ms_since(&t0);
    return 0;
}

static int fsm_snapshot_finalize(struct raft_fsm *fsm, struct raft_buffer *bufs[], unsigned *n)
{
    kvd_repl *r = fsm->data;
    kvd_snap_job *j = &r->job;
    if (j->held && !atomic_load(&j->released))
        kv_history_release(r->s->store); /* the copy never ran */
    if (*n == 1) {
        size_t len = (*bufs)[0].len;
        pthread_mutex_lock(&r->mu);
        r->st.snapshots++;
        r->st.snapshot_bytes = len;
        pthread_mutex_unlock(&r->mu);
        r->snap_len = len;
        set_snapshot_threshold(r);
        if (j->held)
            kvd_info("raft: snapshot of %llu keys and %llu earlier versions at revision %llu "
                     "(%zu bytes; copied in %.1f ms beside the Raft thread, which it held "
                     "up %.1f ms; the next after %u entries)",
                     (unsigned long long)j->counts.keys,
                     (unsigned long long)j->counts.history_versions,
                     (unsigned long long)j->counts.revision, len, j->copy_ms, j->raft_ms,
                     r->snap_threshold);
        else
            kvd_info("raft: snapshot of %llu keys at revision %llu (%zu bytes; copied in "
                     "%.1f ms on the Raft thread; the next after %u entries)",
                     (unsigned long long)j->counts.keys,
                     (unsigned long long)j->counts.revision, len, j->raft_ms,
                     r->snap_threshold);
    }
    for (unsigned i = 0; i < *n; i++)
        free((*bufs)[i].base);
    free(*bufs);
    *bufs = NULL;
    *n = 0;
    free(j->sess);
    j->sess = NULL;
    return 0;
}

static int fsm_restore(struct raft_fsm *fsm, struct raft_buffer *buf)
{
    kvd_repl *r = fsm->data;
    kvd_snap_node nodes[KVD_SNAP_MAX_NODES];
    unsigned nn = 0;
    kvd_snap_counts c;
    struct timespec t0;
    clock_gettime(CLOCK_MONOTONIC, &t0);
    /* the store's section, checked whole; then the request ids after it */
    size_t used = kvd_snap_size(buf->base, buf->len);
    if (used == 0)
        return RAFT_CORRUPT;
    /* ---- section: the applied request ids (sessions.h), if present */
    size_t sess_used = 0;
    if (used == buf->len)
        kvd_sessions_clear(r->sessions);
    else if (kvd_sessions_load(r->sessions, (const unsigned char *)buf->base + used,
                               buf->len - used, &sess_used) != KV_OK ||
             used + sess_used != buf->len)
        return RAFT_CORRUPT;
    /* ---- end of the request ids section */
    int rc = kvd_snap_install(r->s->store, buf->base, used, nodes, &nn, &c);
    if (rc == KV_CORRUPT)
        return RAFT_CORRUPT;
    if (rc != KV_OK)
        return RAFT_NOMEM;
    pthread_mutex_lock(&r->mu);
    memset(r->clients, 0, sizeof r->clients);
    for (unsigned i = 0; i < nn && i < KVD_REPL_MAX_NODES; i++) {
        r->clients[i].id = nodes[i].id;
        memcpy(r->clients[i].addr, nodes[i].addr, sizeof r->clients[i].addr);
    }
    pthread_mutex_unlock(&r->mu);
    pthread_mutex_lock(&r->mu);
    r->st.snapshots_installed++;
    r->st.snapshot_installed_bytes = buf->len;
    pthread_mutex_unlock(&r->mu);
    kvd_info("raft: installed a snapshot of %llu keys and %llu earlier versions at revision "
             "%llu (%zu bytes in %.1f ms; %llu stale keys removed)",
             (unsigned long long)c.keys, (unsigned long long)c.history_versions,
             (unsigned long long)c.revision, buf->len, ms_since(&t0),
             (unsigned long long)c.stale_removed);
    raft_free(buf->base); /* the state machine owns it once restored */
    return 0;
}

/* ---- status ------------------------------------------------------------------- */

static void on_announced(struct raft_apply *req, int status, void *result)
{
    (void)status;
    (void)result; /* the apply's recording, freed by the next apply */
    free(req);
}

/* A new leader proposes where clients reach it (a log entry, so that
 * every node learns it in order): the raft address's host and the port
 * kvd listens on. */
/* Where clients reach this node: its raft address's host and the port kvd
 * listens on. */
static void self_client_addr(kvd_repl *r, char *addr, size_t cap)
{
    const char *raft = r->s->cfg->raft_addr;
    const char *colon = strrchr(raft, ':');
    snprintf(addr, cap, "%.*s:%d", (int)(colon ? colon - raft : 0), raft, r->s->bound_port);
}

static void announce(kvd_repl *r)
{
    char addr[64];
    self_client_addr(r, addr, sizeof addr);
    kvd_cmd cmd = {.kind = KVD_CMD_CLUSTER_ANNOUNCE, .a = (uint64_t)r->s->cfg->node_id,
                   .value = {addr, strlen(addr)}};
    size_t len;
    void *entry = kvd_entry_encode(&cmd, 0, 0, &len);
    struct raft_apply *req = malloc(sizeof *req);
    if (!entry || !req) {
        raft_free(entry);
        free(req);
        return;
    }
    kvd_entry_stamp(entry, kv_clock_ms(r->s->store));
    struct raft_buffer buf = {entry, len};
    if (raft_apply(&r->raft, req, &buf, 1, on_announced) != 0) {
        raft_free(entry);
        free(req);
        return;
    }
    r->announced_term = r->raft.current_term;
}

static void announce_work(uv_work_t *req)
{
    kvd_repl *r = req->data;
    r->announce_rc = kvd_announce_to(r->announce_leader, r->announce_password,
                                     (uint64_t)r->s->cfg->node_id, r->announce_self,
                                     ANNOUNCE_TIMEOUT_MS, r->announce_err,
                                     sizeof r->announce_err);
}

static void announce_after(uv_work_t *req, int status)
{
    kvd_repl *r = req->data;
    free(r->announce_password);
    r->announce_password = NULL;
    r->announce_busy = 0;
    if (status == 0 && r->announce_rc == 0) {
        if (r->announce_failed)
            kvd_info("raft: told the leader (%s) where clients reach this node (%s)",
                     r->announce_leader, r->announce_self);
        r->announce_failed = 0;
        /* committed: it reaches this node soon; no second try before */
        r->announce_next_ms = uv_now(&r->loop) + ANNOUNCE_DONE_MS;
        return;
    }
    if (!r->announce_failed)
        kvd_warn("raft: cannot tell the leader (%s) where clients reach this node (%s): %s; "
                 "trying again every %d ms",
                 r->announce_leader, r->announce_self,
                 status ? "canceled" : r->announce_err, ANNOUNCE_RETRY_MS);
    r->announce_failed = 1;
    r->announce_next_ms = uv_now(&r->loop) + ANNOUNCE_RETRY_MS;
}

/* A follower whose client address the log does not hold (or holds
 * another one: a restart on a new port) asks its leader to propose it
 * (announce.h), once the leader's own address is known. */
static void maybe_announce_through_leader(kvd_repl *r, int state, raft_id leader)
{
    if (state != RAFT_FOLLOWER || leader == 0 || leader == r->raft.id || r->announce_busy ||
        r->raft_closing || uv_now(&r->loop) < r->announce_next_ms || r->s->bound_port <= 0)
        return;
    char self[64];
    self_client_addr(r, self, sizeof self);
    pthread_mutex_lock(&r->mu);
    const char *mine = client_addr(r, r->raft.id);
    const char *where = client_addr(r, leader);
    int wanted = where && (!mine || strcmp(mine, self) != 0);
    if (wanted)
        snprintf(r->announce_leader, sizeof r->announce_leader, "%s", where);
    int stopping = r->stopping;
    pthread_mutex_unlock(&r->mu);
    if (!wanted || stopping)
        return;
    snprintf(r->announce_self, sizeof r->announce_self, "%s", self);
    const char *pw = r->s->cfg->password;
    r->announce_password = pw ? strdup(pw) : NULL;
    if (pw && !r->announce_password)
        return;
    r->announce_work.data = r;
    if (uv_queue_work(&r->loop, &r->announce_work, announce_work, announce_after) != 0) {
        free(r->announce_password);
        r->announce_password = NULL;
        return;
    }
    r->announce_busy = 1;
}

static void on_tick(uv_timer_t *t)
{
    kvd_repl *r = t->data;
    if (r->raft_closing)
        return;
    raft_id id = 0;
    const char *addr = NULL;
    raft_leader(&r->raft, &id, &addr);
    int state = raft_state(&r->raft);
    pthread_mutex_lock(&r->mu);
    if (id != r->st.leader_id && id != 0)
        r->st.leader_changes++;
    r->st.leader_id = id;
    snprintf(r->st.leader_addr, sizeof r->st.leader_addr, "%s", addr ? addr : "");
    r->st.role = state == RAFT_LEADER ? 2 : state == RAFT_CANDIDATE ? 1
                 : state == RAFT_FOLLOWER ? 0 : 3;
    r->st.term = r->raft.current_term;
    r->st.commit_index = r->raft.commit_index;
    r->st.applied_index = raft_last_applied(&r->raft);
    r->st.last_index = raft_last_index(&r->raft);
    r->st.sessions = kvd_sessions_count(r->sessions);
    const struct raft_configuration *conf = &r->raft.configuration;
    r->nmembers = 0;
    r->st.npeers = 0;
    for (unsigned i = 0; i < conf->n && r->nmembers < KVD_REPL_MAX_NODES; i++) {
        int m = r->nmembers++;
        r->members[m].id = conf->servers[i].id;
        snprintf(r->members[m].raft, sizeof r->members[m].raft, "%s", conf->servers[i].address);
        r->members[m].role = conf->servers[i].role;
        r->members[m].match = state == RAFT_LEADER && r->raft.leader_state.progress
                                  ? r->raft.leader_state.progress[i].match_index
                                  : 0;
        if (state == RAFT_LEADER && conf->servers[i].id != r->raft.id &&
            r->st.npeers < KVD_REPL_MAX_PEERS) {
            int k = r->st.npeers++;
            r->st.peers[k].id = conf->servers[i].id;
            r->st.peers[k].match = r->members[m].match;
            r->st.peers[k].lag = r->st.last_index > r->members[m].match
                                     ? r->st.last_index - r->members[m].match : 0;
        }
    }
    pthread_mutex_unlock(&r->mu);
    atomic_store(&r->leader, state == RAFT_LEADER);
    set_snapshot_threshold(r);
    if (state == RAFT_LEADER && r->announced_term != r->raft.current_term)
        announce(r);
    maybe_announce_through_leader(r, state, id);
}

/* ---- the leader's expiry ---------------------------------------------------- */

/* The keys of one CLUSTER_EXPIRE entry, copied while found. */
typedef struct expire_batch {
    kv_key keys[EXPIRE_MAX_KEYS];
    char *mem[EXPIRE_MAX_KEYS];
    size_t n;
    int oom;
} expire_batch;

static int collect_expired(void *ctx, const void *key, size_t klen, uint64_t expire_at_ms)
{
    (void)expire_at_ms;
    expire_batch *b = ctx;
    char *copy = malloc(klen);
    if (!copy) {
        b->oom = 1;
        return 1;
    }
    memcpy(copy, key, klen);
    b->mem[b->n] = copy;
    b->keys[b->n++] = (kv_key){copy, klen};
    return b->n == EXPIRE_MAX_KEYS;
}

static void on_expire_tick(uv_timer_t *t);

static void on_expire_applied(struct raft_apply *req, int status, void *result)
{
    (void)result; /* the apply's recording, freed by the next apply */
    kvd_repl *r = req->data;
    r->expire_busy = 0;
    r->inflight--;
    free(req);
    /* Many keys expired at once: go on as soon as this one is applied
     * (from the loop, not from inside Raft's callback), one entry per
     * commit instead of one per EXPIRE_MS. */
    if (status == 0 && r->expire_more && !r->raft_closing)
        uv_timer_start(&r->expire_timer, on_expire_tick, 0, EXPIRE_MS);
    maybe_close(r);
}

/* One step: the leader proposes the removal of the expired keys it finds
 * in the next part of its index, judged at its clock now; the entry
 * carries that reading, so every node judges them at the same time. */
static void on_expire_tick(uv_timer_t *t)
{
    kvd_repl *r = t->data;
    kv_store *st = r->s->store;
    if (r->raft_closing || r->expire_busy || raft_state(&r->raft) != RAFT_LEADER)
        return;
    kv_metrics m;
    if (kv_metrics_read(st, &m, sizeof m) != KV_OK || m.keys_with_ttl == 0)
        return;
    uint64_t now = kv_clock_ms(st);
    size_t slots = (size_t)(m.table_slots / (1000 / EXPIRE_MS));
    if (slots < EXPIRE_MIN_SLOTS)
        slots = EXPIRE_MIN_SLOTS;
    expire_batch *b = calloc(1, sizeof *b);
    if (!b)
        return;
    kv_expired_find(st, now, slots, collect_expired, b, NULL);
    struct raft_apply *req = NULL;
    void *entry = NULL;
    if (b->n && !b->oom) {
        kvd_cmd cmd = {.kind = KVD_CMD_CLUSTER_EXPIRE, .keys = b->keys, .nkeys = b->n};
        size_t len;
        entry = kvd_entry_encode(&cmd, 0, 0, &len);
        req = malloc(sizeof *req);
        if (entry && req) {
            kvd_entry_stamp(entry, now);
            req->data = r;
            struct raft_buffer buf = {entry, len};
            if (raft_apply(&r->raft, req, &buf, 1, on_expire_applied) == 0) {
                r->expire_busy = 1;
                r->expire_more = b->n == EXPIRE_MAX_KEYS;
                r->inflight++;
                entry = NULL;
                req = NULL;
            }
        }
    }
    raft_free(entry);
    free(req);
    for (size_t i = 0; i < b->n; i++)
        free(b->mem[i]);
    free(b);
}

/* ---- the leader's history bounds ------------------------------------------ */

static void on_bounds_applied(struct raft_apply *req, int status, void *result)
{
    (void)status;
    (void)result; /* the apply's recording, freed by the next apply */
    kvd_repl *r = req->data;
    r->bounds_busy = 0;
    r->inflight--;
    free(req);
    maybe_close(r);
}

/* Every node samples its revision for the age bound; the leader, when
 * the bounds ask for a compaction, proposes it as a COMPACT entry. */
static void on_bounds_tick(uv_timer_t *t)
{
    kvd_repl *r = t->data;
    kv_store *st = r->s->store;
    kv_metrics m;
    if (r->raft_closing || kv_metrics_read(st, &m, sizeof m) != KV_OK)
        return;
    uint64_t now = kv_clock_ms(st);
    uint64_t target =
        kvd_bounds_target(&r->bounds, now, m.revision, m.compact_revision, m.history_bytes);
    if (!target || r->bounds_busy || raft_state(&r->raft) != RAFT_LEADER)
        return;
    kvd_cmd cmd = {.kind = KVD_CMD_COMPACT, .rev = target};
    size_t len;
    void *entry = kvd_entry_encode(&cmd, 0, 0, &len);
    struct raft_apply *req = malloc(sizeof *req);
    if (entry && req) {
        kvd_entry_stamp(entry, now);
        req->data = r;
        struct raft_buffer buf = {entry, len};
        if (raft_apply(&r->raft, req, &buf, 1, on_bounds_applied) == 0) {
            r->bounds_busy = 1;
            r->inflight++;
            return;
        }
    }
    raft_free(entry);
    free(req);
}

void kvd_repl_status_read(kvd_repl *r, kvd_repl_status *out)
{
    pthread_mutex_lock(&r->mu);
    *out = r->st;
    pthread_mutex_unlock(&r->mu);
}

/* ---- start and stop ------------------------------------------------------------- */

static void on_raft_closed(struct raft *raft)
{
    kvd_repl *r = raft->data;
    raft_uv_close(&r->io);
    kvd_raft_tcp_close(&r->transport);
    pthread_mutex_lock(&r->mu);
    r->wake_closed = 1;
    pthread_mutex_unlock(&r->mu);
    uv_close((uv_handle_t *)&r->wake, NULL);
    uv_close((uv_handle_t *)&r->tick, NULL);
    uv_close((uv_handle_t *)&r->stop_timer, NULL);
    uv_close((uv_handle_t *)&r->expire_timer, NULL);
    uv_close((uv_handle_t *)&r->bounds_timer, NULL);
}

static void on_close_timer(uv_timer_t *t)
{
    kvd_repl *r = t->data;
    raft_close(&r->raft, on_raft_closed);
}

/* No new Raft requests from now on (raft_closing); raft_close() itself
 * runs from the loop, on the next iteration. maybe_close() gets here from
 * Raft's own callbacks (the last write in flight applied), and libraft
 * 0.15 must not be closed from inside them: an apply that completes in
 * the leader's log write callback returns into uvAliveSegmentWriteCb,
 * which, seeing the io closing, finalizes the segment that raft_close()
 * has just finalized, and libuv aborts on its writer's poll handle
 * (uv_poll_stop: Assertion `!uv__is_closing(handle)'). */
static void close_raft(kvd_repl *r)
{
    if (r->raft_closing)
        return;
    r->raft_closing = 1;
    atomic_store(&r->leader, 0);
    uv_timer_start(&r->stop_timer, on_close_timer, 0, 0);
}

static void on_stop_grace(uv_timer_t *t)
{
    close_raft(t->data);
}

/* Stopping and nothing in flight: close now, else after the grace. */
static void maybe_close(kvd_repl *r)
{
    pthread_mutex_lock(&r->mu);
    int stopping = r->stopping, queued = r->queue != NULL;
    pthread_mutex_unlock(&r->mu);
    if (!stopping || r->raft_closing)
        return;
    if (r->inflight == 0 && !queued)
        close_raft(r);
    else if (!uv_is_active((uv_handle_t *)&r->stop_timer))
        uv_timer_start(&r->stop_timer, on_stop_grace, STOP_GRACE_MS, 0);
}

static void *raft_main(void *arg)
{
    kvd_repl *r = arg;
    pthread_setname_np(pthread_self(), "kvd-raft");
    uv_run(&r->loop, UV_RUN_DEFAULT);
    if (uv_loop_close(&r->loop) != 0)
        kvd_warn("raft: event loop still busy at exit");
    return NULL;
}

/* "1@127.0.0.1:7401,2@..." into conf. Returns 0, or -1 after logging. */
static int parse_cluster(const char *spec, struct raft_configuration *conf, raft_id self,
                         const char *self_addr)
{
    char *copy = strdup(spec), *save = NULL;
    int found = 0;
    if (!copy)
        return -1;
    for (char *tok = strtok_r(copy, ",", &save); tok; tok = strtok_r(NULL, ",", &save)) {
        char *at = strchr(tok, '@');
        char *end;
        unsigned long long id = at ? strtoull(tok, &end, 10) : 0;
        if (!at || end != at || id == 0 || !strchr(at + 1, ':')) {
            kvd_error("--cluster: '%s' is not ID@HOST:PORT", tok);
            free(copy);
            return -1;
        }
        if (raft_configuration_add(conf, id, at + 1, RAFT_VOTER) != 0) {
            kvd_error("--cluster: node %llu is listed twice", id);
            free(copy);
            return -1;
        }
        if (id == self) {
            found = 1;
            if (strcmp(at + 1, self_addr) != 0) {
                kvd_error("--cluster lists node %llu at %s but --raft-addr is %s", id, at + 1,
                          self_addr);
                free(copy);
                return -1;
            }
        }
    }
    free(copy);
    if (!found) {
        kvd_error("--cluster does not list this node (--node-id %llu)", (unsigned long long)self);
        return -1;
    }
    return 0;
}

int kvd_repl_start(kvd_server *s)
{
    const kvd_config *cfg = s->cfg;
    if (!cfg->data_dir) {
        kvd_error("a cluster node needs --data-dir (its Raft log lives there)");
        return -1;
    }
    kvd_repl *r = calloc(1, sizeof *r);
    if (!r) {
        kvd_error("out of memory");
        return -1;
    }
    r->s = s;
    r->st.id = (uint64_t)cfg->node_id;
    r->entry_bytes = 128; /* a lone write, until entries are seen */
    r->entry_writes = 1;
    r->apply_sess.protocol = KVD_PROTOCOL_NATIVE;
    r->apply_sess.authed = 1;
    r->sessions = kvd_sessions_new(0);
    if (!r->sessions) {
        kvd_error("out of memory");
        free(r);
        return -1;
    }
    pthread_mutex_init(&r->mu, NULL);
    char dir[4096];
    snprintf(dir, sizeof dir, "%s/raft", cfg->data_dir);
    if (mkdir(cfg->data_dir, 0700) != 0 && errno != EEXIST) {
        kvd_error("cannot create %s: %s", cfg->data_dir, strerror(errno));
        kvd_sessions_free(r->sessions);
        free(r);
        return -1;
    }
    if (mkdir(dir, 0700) != 0 && errno != EEXIST) {
        kvd_error("cannot create %s: %s", dir, strerror(errno));
        kvd_sessions_free(r->sessions);
        free(r);
        return -1;
    }
    uv_loop_init(&r->loop);
    int rc = kvd_raft_tcp_init(&r->transport, &r->loop, cfg->raft_bind);
    if (rc == 0)
        rc = raft_uv_init(&r->io, &r->loop, dir, &r->transport.outer);
    if (rc != 0) {
        kvd_error("raft: cannot set up its storage in %s: %s", dir, raft_strerror(rc));
        return -1;
    }
    /* Snapshots are written as they are, not LZ4-compressed (libraft's
     * default when built with liblz4): compressing tens of MB of history
     * takes a core for a while, on a node whose cores serve clients; the
     * disk and the network have room for the bytes. */
    raft_uv_set_snapshot_compression(&r->io, false);
    /* Starting a new segment file holds up the log's writes (30-40 ms on
     * this project's 2-core machine, where three nodes share a disk): at
     * libraft's default 8 MB a busy cluster did so every 1.5 s, on every
     * node at once (the same entries fill the same segments), which was
     * most of the p99 of its puts. */
    raft_uv_set_segment_size(&r->io, cfg->raft_segment_size);
    /* Snapshots copied off the Raft thread need the io's async_work.
     * libraft 0.15 (Debian 12) has it but still says io version 1, which
     * raft_init refuses for an fsm version 3; upstream set it to 2 in
     * 0.17 without any other change ("uv: set io version to 2"). */
    if (r->io.version < 2 && r->io.async_work)
        r->io.version = 2;
    int async = r->io.version >= 2 && r->io.async_work;
    r->fsm.version = async ? 3 : 2;
    r->fsm.data = r;
    r->fsm.apply = fsm_apply;
    r->fsm.snapshot = fsm_snapshot;
    r->fsm.snapshot_finalize = fsm_snapshot_finalize;
    r->fsm.snapshot_async = async ? fsm_snapshot_async : NULL;
    r->fsm.restore = fsm_restore;
    rc = raft_init(&r->raft, &r->io, &r->fsm, (raft_id)cfg->node_id, cfg->raft_addr);
    if (rc != 0) {
        kvd_error("raft: %s", raft_errmsg(&r->raft));
        return -1;
    }
    r->raft.data = r;
    if (cfg->cluster_join) {
        /* No configuration of its own: the leader's arrives with the log. */
        kvd_info("raft: node %llu at %s, waiting to be added to a cluster (kvcli cluster add "
                 "%llu %s on its leader), or rejoining from its log",
                 (unsigned long long)cfg->node_id, cfg->raft_addr,
                 (unsigned long long)cfg->node_id, cfg->raft_addr);
    } else {
        struct raft_configuration conf;
        raft_configuration_init(&conf);
        if (parse_cluster(cfg->cluster, &conf, (raft_id)cfg->node_id, cfg->raft_addr) != 0) {
            raft_configuration_close(&conf);
            return -1;
        }
        rc = raft_bootstrap(&r->raft, &conf);
        raft_configuration_close(&conf);
        if (rc != 0 && rc != RAFT_CANTBOOTSTRAP) {
            kvd_error("raft: cannot bootstrap: %s", raft_errmsg(&r->raft));
            return -1;
        }
        kvd_info("raft: node %llu at %s, %s", (unsigned long long)cfg->node_id, cfg->raft_addr,
                 rc == 0 ? "bootstrapped a new cluster" : "rejoining from its log");
    }
    /* A snapshot every N writes, or more (set_snapshot_threshold). */
    set_snapshot_threshold(r);
    raft_set_pre_vote(&r->raft, true);
    raft_set_election_timeout(&r->raft, (unsigned)cfg->raft_election_timeout);
    raft_set_heartbeat_timeout(&r->raft, (unsigned)(cfg->raft_election_timeout / 10 + 1));
    /* a snapshot that did not arrive is sent again after 5 s, not 30 */
    raft_set_install_snapshot_timeout(&r->raft, 5000);
    rc = raft_start(&r->raft);
    if (rc != 0) {
        kvd_error("raft: cannot start: %s", raft_errmsg(&r->raft));
        return -1;
    }
    uv_async_init(&r->loop, &r->wake, on_wake);
    r->wake.data = r;
    uv_timer_init(&r->loop, &r->tick);
    r->tick.data = r;
    uv_timer_start(&r->tick, on_tick, STATUS_MS, STATUS_MS);
    uv_timer_init(&r->loop, &r->stop_timer);
    r->stop_timer.data = r;
    uv_timer_init(&r->loop, &r->expire_timer);
    r->expire_timer.data = r;
    uv_timer_start(&r->expire_timer, on_expire_tick, EXPIRE_MS, EXPIRE_MS);
    kvd_bounds_init(&r->bounds, cfg->history ? cfg->history_bytes : 0,
                    cfg->history ? cfg->history_age : 0);
    uv_timer_init(&r->loop, &r->bounds_timer);
    r->bounds_timer.data = r;
    if (kvd_bounds_any(&r->bounds))
        uv_timer_start(&r->bounds_timer, on_bounds_tick, KVD_BOUNDS_TICK_MS,
                       KVD_BOUNDS_TICK_MS);
    s->repl = r;
    rc = pthread_create(&r->thread, NULL, raft_main, r);
    if (rc != 0) {
        kvd_error("cannot start the raft thread: %s", strerror(rc));
        s->repl = NULL;
        return -1;
    }
    r->running = 1;
    return 0;
}

void kvd_repl_begin_stop(kvd_repl *r)
{
    if (!r)
        return;
    /* Called twice (when kvd stops, and at cleanup): by the second call
     * the Raft thread may have closed its loop, whose descriptor a send
     * would then write to (libuv aborts on EBADF). */
    pthread_mutex_lock(&r->mu);
    r->stopping = 1;
    if (!r->wake_closed)
        uv_async_send(&r->wake);
    pthread_mutex_unlock(&r->mu);
}

void kvd_repl_end(kvd_repl *r)
{
    if (!r)
        return;
    if (r->running)
        pthread_join(r->thread, NULL);
    applied_free(r->unclaimed);
    kvd_sessions_free(r->sessions);
    pthread_mutex_destroy(&r->mu);
    free(r);
}
