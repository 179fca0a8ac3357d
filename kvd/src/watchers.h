/*
 * watchers.h - kvd's watches: connections that follow the changes of a
 * key or a prefix (libkv's kv_watch) and get them pushed as they come
 * (native protocol: WATCH and its event frames; RESP: KVD.WATCH and its
 * push messages).
 *
 * Each worker loop polls its own watchers with a timer that runs only
 * while it has some (every KVD_WATCH_POLL_MS): kv_watch_next with timeout
 * 0, never a wait on a loop thread. Events are encoded by the
 * connection's front-end (kvd_frontend.watch_events / watch_end) into the
 * connection's output and sent like replies.
 *
 * Backpressure: a watcher whose connection has output backed up (queued
 * plus held plus unsent, at or above the soft mark of --max-output-buffer)
 * is not polled until the client reads: kvd's memory stays bounded and
 * the library keeps the history. If history is compacted meanwhile, the
 * watcher ends with KV_COMPACTED and the revision to resume from: events
 * are never skipped silently.
 *
 * Everything here runs on the connection's loop thread.
 */
#ifndef KVD_WATCHERS_H
#define KVD_WATCHERS_H

#include <stddef.h>
#include <stdint.h>

#include "cmd.h"

struct kvd_conn;
struct kvd_worker;

#define KVD_WATCH_POLL_MS 3       /* how often a loop polls its watchers  */
#define KVD_WATCH_PER_CONN 64     /* watches one connection may have open */
#define KVD_WATCH_DEFAULT_MAX 100 /* events per frame when not given      */
#define KVD_WATCH_MAX_EVENTS 1000 /* at most this many per frame          */

/* KVD_CMD_WATCH_CHANGES flags (kvd_cmd.flags). */
#define KVD_WATCH_PREFIX 1u /* every key starting with kvd_cmd.key */

typedef struct kv_watch kv_watch;

typedef struct kvd_watcher {
    struct kvd_watcher *prev, *next; /* the worker's watchers          */
    struct kvd_watcher *cnext;       /* the connection's watchers      */
    struct kvd_conn *c;
    kv_watch *kw;
    uint64_t id;       /* native: the WATCH request's id (CANCEL names it) */
    size_t max;        /* events per poll                              */
    unsigned char *key; /* what it follows (RESP names it in pushes)   */
    size_t klen;
    int prefix;
    int backlogged;    /* not polled: the connection's output is backed up */
} kvd_watcher;

/* WATCH_CHANGES and WATCH_CANCEL (cmd.c dispatches them here). */
int kvd__cmd_watch(kvd_exec *x);

/* The connection is closing: its watches end (no frame is sent). */
void kvd_watch_conn_closed(struct kvd_conn *c);

/* Ends every watch of c, or those following exactly key/prefix when klen
 * or prefix is given (RESP's KVD.UNWATCH), each with its front-end's end
 * message (status KV_OK). Returns how many ended, or -1 when out of
 * memory (the connection must close). */
int kvd_watch_cancel_matching(struct kvd_conn *c, const void *key, size_t klen, int prefix,
                              int all);

/* The worker's timer (server.c initialises and closes it). */
void kvd_watch_timer_init(struct kvd_worker *w);

#endif /* KVD_WATCHERS_H */
