/*
 * cmd_watch.c - watches (watchers.h): the WATCH_CHANGES and WATCH_CANCEL
 * commands, and the per-loop timer that polls the open watchers and hands
 * their events to the connection's front-end.
 *
 * Lifetime: a watcher belongs to its connection (c->watchers) and to its
 * loop's list (w->watchers) from a successful WATCH until CANCEL, lost
 * events (KV_COMPACTED: its end message is sent) or the connection
 * closing (kvd_conn_close calls kvd_watch_conn_closed: nothing is sent).
 *
 * A poll never closes a connection while it walks the watchers (closing
 * frees that connection's watchers, which may be the next ones): the
 * connections that got output are listed and flushed - which may close
 * them - after the walk.
 */
#include <stdlib.h>
#include <string.h>

#include "conn.h"
#include "conn_internal.h"
#include "frontend.h"
#include "log.h"
#include "watchers.h"

/* Polls of one watcher per tick at most, so that one busy watcher does
 * not hold the loop (the next tick goes on). */
#define ROUNDS_PER_TICK 8

static void on_tick(uv_timer_t *t);

void kvd_watch_timer_init(kvd_worker *w)
{
    uv_timer_init(&w->loop, &w->watch_timer);
    w->watch_timer.data = w;
}

/* ---- the lists --------------------------------------------------------------- */

static void watcher_add(kvd_conn *c, kvd_watcher *wt)
{
    kvd_worker *w = c->w;
    wt->c = c;
    wt->cnext = c->watchers;
    c->watchers = wt;
    c->nwatchers++;
    wt->prev = NULL;
    wt->next = w->watchers;
    if (w->watchers)
        w->watchers->prev = wt;
    w->watchers = wt;
    if (w->nwatchers++ == 0)
        uv_timer_start(&w->watch_timer, on_tick, KVD_WATCH_POLL_MS, KVD_WATCH_POLL_MS);
    atomic_fetch_add_explicit(&w->server->watchers, 1, memory_order_relaxed);
}

/* Unlinks wt from its connection and its loop and frees it. */
static void watcher_free(kvd_watcher *wt)
{
    kvd_conn *c = wt->c;
    kvd_worker *w = c->w;
    for (kvd_watcher **p = &c->watchers; *p; p = &(*p)->cnext) {
        if (*p == wt) {
            *p = wt->cnext;
            break;
        }
    }
    c->nwatchers--;
    if (wt->prev)
        wt->prev->next = wt->next;
    else
        w->watchers = wt->next;
    if (wt->next)
        wt->next->prev = wt->prev;
    if (--w->nwatchers == 0)
        uv_timer_stop(&w->watch_timer);
    atomic_fetch_sub_explicit(&w->server->watchers, 1, memory_order_relaxed);
    if (wt->backlogged)
        atomic_fetch_sub_explicit(&w->server->watchers_backlogged, 1, memory_order_relaxed);
    kv_watch_close(wt->kw);
    free(wt->key);
    free(wt);
}

void kvd_watch_conn_closed(kvd_conn *c)
{
    while (c->watchers)
        watcher_free(c->watchers);
}

/* ---- polling ----------------------------------------------------------------- */

static size_t backlog(const kvd_conn *c)
{
    return c->pending + c->held_bytes + c->out.len;
}

/* Lists c to be flushed after the walk. */
static void want_flush(kvd_conn *c, kvd_conn **list)
{
    if (c->watch_flush)
        return;
    c->watch_flush = 1;
    c->watch_flush_next = *list;
    *list = c;
}

static void set_backlogged(kvd_watcher *wt, int on)
{
    if (wt->backlogged == on)
        return;
    wt->backlogged = on;
    kvd_server *s = wt->c->w->server;
    if (on) {
        atomic_fetch_add_explicit(&s->watchers_backlogged, 1, memory_order_relaxed);
        kvd_debug("%s: output backed up, not polling its watch", wt->c->peer);
    } else {
        atomic_fetch_sub_explicit(&s->watchers_backlogged, 1, memory_order_relaxed);
    }
}

/* Polls one watcher; returns 1 if it ended (freed). */
static int poll_one(kvd_watcher *wt, kvd_conn **flush)
{
    kvd_conn *c = wt->c;
    kvd_server *s = c->w->server;
    for (int round = 0; round < ROUNDS_PER_TICK; round++) {
        if (backlog(c) >= s->out_soft) {
            set_backlogged(wt, 1);
            return 0;
        }
        set_backlogged(wt, 0);
        kv_event *ev = NULL;
        size_t n = 0;
        int rc = kv_watch_next(wt->kw, &ev, &n, wt->max, 0);
        if (rc == KV_COMPACTED) {
            uint64_t resume = kv_watch_revision(wt->kw);
            kvd_info("%s: a watch lost events (history compacted); it resumes at revision %llu",
                     c->peer, (unsigned long long)resume);
            atomic_fetch_add_explicit(&s->watch_lost, 1, memory_order_relaxed);
            if (c->fe->watch_end(c, wt, KV_COMPACTED, resume) != KV_OK)
                c->watch_broken = 1; /* it cannot be told: it must not go on */
            want_flush(c, flush);
            watcher_free(wt);
            return 1;
        }
        if (rc != KV_OK)
            return 0; /* out of memory: the events wait for the next tick */
        if (n == 0)
            return 0;
        rc = c->fe->watch_events(c, wt, ev, n, kv_watch_revision(wt->kw));
        kv_events_free(ev, n);
        if (rc != KV_OK) {
            /* The events are taken from the watcher: closing is the only
             * way not to skip them silently. */
            kvd_warn("%s: out of memory sending a watch's events, closing", c->peer);
            c->watch_broken = 1;
            want_flush(c, flush);
            return 0;
        }
        atomic_fetch_add_explicit(&s->watch_events, n, memory_order_relaxed);
        want_flush(c, flush);
    }
    return 0;
}

static void on_tick(uv_timer_t *t)
{
    kvd_worker *w = t->data;
    kvd_conn *flush = NULL;
    kvd_watcher *next;
    for (kvd_watcher *wt = w->watchers; wt; wt = next) {
        next = wt->next;
        kvd_conn *c = wt->c;
        if (c->closing || c->lingering || c->fatal || c->watch_broken)
            continue;
        poll_one(wt, &flush); /* frees only wt itself */
    }
    /* Conns stay allocated until their handles' close callbacks, which
     * run after this one: the list is safe while they close. */
    while (flush) {
        kvd_conn *c = flush;
        flush = c->watch_flush_next;
        c->watch_flush = 0;
        c->watch_flush_next = NULL;
        if (c->closing)
            continue;
        if (c->watch_broken) {
            kvd_conn_close(c);
            continue;
        }
        kvd__conn_flush(c);
        if (!c->closing)
            kvd__conn_account(c, 1);
    }
}

/* ---- the commands ------------------------------------------------------------ */

static kvd_watcher *find_id(kvd_conn *c, uint64_t id)
{
    for (kvd_watcher *wt = c->watchers; wt; wt = wt->cnext)
        if (wt->id == id)
            return wt;
    return NULL;
}

/* The end of wt told to its client, the watcher freed. */
static int end_watch(kvd_watcher *wt)
{
    kvd_conn *c = wt->c;
    int rc = c->fe->watch_end(c, wt, KV_OK, kv_watch_revision(wt->kw));
    watcher_free(wt);
    return rc;
}

int kvd_watch_cancel_matching(kvd_conn *c, const void *key, size_t klen, int prefix, int all)
{
    int n = 0;
    kvd_watcher *next;
    for (kvd_watcher *wt = c->watchers; wt; wt = next) {
        next = wt->cnext;
        if (!all && (wt->prefix != prefix || wt->klen != klen ||
                     (klen && memcmp(wt->key, key, klen) != 0)))
            continue;
        if (end_watch(wt) != KV_OK)
            return -1;
        n++;
    }
    return n;
}

static int cmd_watch(kvd_exec *x)
{
    const kvd_cmd *cmd = x->cmd;
    kvd_reply *r = x->r;
    kvd_conn *c = x->c;
    if (!c || !c->fe || !c->fe->watch_events)
        return r->ops->error(r, KV_UNSUPPORTED, "watches are not offered over this protocol");
    if (c->w->stopping)
        return r->ops->error(r, KV_UNSUPPORTED, "the server is stopping");
    if (c->nwatchers >= KVD_WATCH_PER_CONN)
        return r->ops->error(r, KV_INVALID_ARGUMENT,
                             "too many watches on this connection (at most 64)");
    if (c->sess.protocol == KVD_PROTOCOL_NATIVE && find_id(c, cmd->id))
        return r->ops->error(r, KV_INVALID_ARGUMENT,
                             "a watch with this request id is open on this connection");
    size_t max = cmd->limit ? cmd->limit : KVD_WATCH_DEFAULT_MAX;
    if (max > KVD_WATCH_MAX_EVENTS)
        max = KVD_WATCH_MAX_EVENTS;
    int prefix = (cmd->flags & KVD_WATCH_PREFIX) != 0;
    kvd_watcher *wt = calloc(1, sizeof *wt);
    if (!wt || !(wt->key = malloc(cmd->key.len ? cmd->key.len : 1))) {
        free(wt);
        return r->ops->error(r, KV_NO_MEMORY, NULL);
    }
    if (cmd->key.len)
        memcpy(wt->key, cmd->key.data, cmd->key.len);
    wt->klen = cmd->key.len;
    wt->prefix = prefix;
    wt->id = cmd->id;
    wt->max = max;
    int rc = kv_watch_open(x->st, cmd->key.data, cmd->key.len, prefix, cmd->rev, &wt->kw);
    if (rc != KV_OK) {
        free(wt->key);
        free(wt);
        return kvd__history_error(x, rc, cmd->rev, NULL, 0);
    }
    uint64_t from = kv_watch_revision(wt->kw);
    int err;
    if (c->sess.protocol == KVD_PROTOCOL_RESP) {
        /* as SUBSCRIBE's confirmation: what, which, and from where */
        r->ops->array(r, 3);
        r->ops->text(r, "kvd.watch", 9);
        r->ops->bytes(r, wt->key, wt->klen);
        err = r->ops->integer(r, (int64_t)from);
    } else {
        err = r->ops->uinteger(r, from);
    }
    if (err != KV_OK) {
        kv_watch_close(wt->kw);
        free(wt->key);
        free(wt);
        return KV_OK; /* finish reports the failure */
    }
    watcher_add(c, wt);
    return KV_OK;
}

static int cmd_cancel(kvd_exec *x)
{
    const kvd_cmd *cmd = x->cmd;
    kvd_reply *r = x->r;
    kvd_conn *c = x->c;
    if (!c || !c->fe || !c->fe->watch_events)
        return r->ops->error(r, KV_UNSUPPORTED, "watches are not offered over this protocol");
    if (c->sess.protocol == KVD_PROTOCOL_NATIVE) {
        kvd_watcher *wt = find_id(c, cmd->a);
        if (!wt)
            return r->ops->error(r, KV_NOT_FOUND, "no open watch with this id");
        if (end_watch(wt) != KV_OK)
            return -1;
        r->mark = r->out->len; /* the end frame stays whatever the reply */
        return r->ops->nil(r);
    }
    /* RESP: KVD.UNWATCH [key [PREFIX]]: how many watches ended */
    int n = kvd_watch_cancel_matching(c, cmd->key.data, cmd->key.len,
                                      (cmd->flags & KVD_WATCH_PREFIX) != 0, !cmd->has_key);
    if (n < 0)
        return -1;
    r->mark = r->out->len;
    return r->ops->integer(r, n);
}

int kvd__cmd_watch(kvd_exec *x)
{
    return x->cmd->kind == KVD_CMD_WATCH_CHANGES ? cmd_watch(x) : cmd_cancel(x);
}
