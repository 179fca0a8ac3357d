/*
 * conn.h - one client connection on a worker loop: input buffer, batched
 * responses (one write per batch), backpressure, timeouts and the close
 * paths. What the bytes mean is its front-end's business (frontend.h).
 *
 * A connection belongs to its worker's thread only.
 */
#ifndef KVD_CONN_H
#define KVD_CONN_H

#include <stddef.h>
#include <stdint.h>
#include <uv.h>

#include "cmd.h"
#include "kv_proto.h"
#include "server.h"

/* A batch of replies held back until the writes answered in it are durable
 * (rev), or a reply that is not produced yet (waiting: a deferred
 * command, e.g. SNAPSHOT). Held batches leave in order, after everything
 * before them. */
typedef struct kvd_held {
    struct kvd_held *next;
    kv_proto_buf buf;
    size_t counted; /* bytes of buf counted in the conn's held_bytes */
    uint64_t rev;
    int waiting;
} kvd_held;

typedef struct kvd_conn {
    union {
        uv_handle_t handle;
        uv_stream_t stream;
        uv_tcp_t tcp;
        uv_pipe_t pipe;
    } h;
    uv_timer_t timer;       /* idle / write-stall / frame / linger      */
    uv_timer_t auth_timer;  /* a throttled AUTH's turn                  */
    uv_shutdown_t shutdown_req;
    kvd_worker *w;
    struct kvd_conn *prev, *next;
    int handles;            /* open uv handles; freed at 0              */

    uint8_t *in;            /* received bytes, from a frame boundary    */
    size_t in_len, in_cap;
    kv_proto_buf out;       /* the batch being built                    */
    kv_proto_buf spare;     /* a written buffer kept for reuse          */
    size_t pending;         /* bytes given to uv_write, not yet done    */
    size_t nwrites;         /* uv_write requests in flight              */
    kv_proto_arena arena;   /* decoded arrays, reset per frame          */

    uint64_t last_active;   /* uv_now() of the last read or write done  */
    uint64_t stall_since;   /* uv_now() of the last output progress while
                               backed up, or 0                          */
    size_t stall_queue;     /* write queue size seen at that time       */
    uint64_t frame_since;   /* uv_now() when the partial frame in c->in
                               began to arrive (valid while in_len > 0) */

    unsigned reading : 1;   /* uv_read_start is in effect               */
    unsigned paused : 1;    /* output backed up: not reading/processing */
    unsigned eof : 1;       /* peer finished sending                    */
    unsigned fatal : 1;     /* last response queued; close after it     */
    unsigned lingering : 1; /* shut down our side, discarding input     */
    unsigned closing : 1;   /* uv_close called                          */
    unsigned draining : 1;  /* server stopping: answer what arrived     */
    unsigned is_unix : 1;
    unsigned counted : 1;   /* included in server->connections          */
    unsigned auth_wait : 1; /* an AUTH waits for its turn: no processing,
                               no reading until it is answered          */
    size_t mem;             /* buffer bytes counted in client_memory    */
    uint64_t batch_rev;     /* newest revision written by requests whose
                               replies are in `out` (durable stores)    */
    kvd_held *held, *held_tail; /* replies waiting, oldest first         */
    size_t held_bytes;
    struct kvd_conn *held_prev, *held_next; /* worker's list of conns
                                               with held replies         */
    unsigned on_held_list : 1;
    uint8_t *auth_secret;   /* the waiting AUTH's secret (malloc'ed)    */
    size_t auth_secret_len;
    uint64_t auth_id;
    kvd_peer_key peer_key;  /* for the AUTH throttle                    */
    const struct kvd_frontend *fe; /* the protocol, once the first bytes
                                      told it (frontend.h)              */
    void *fe_state;         /* the front-end's parse state               */
    kvd_session sess;       /* auth, protocol version, name, MULTI       */
    struct kvd_watcher *watchers; /* its open watches (watchers.h)       */
    size_t nwatchers;
    struct kvd_conn *watch_flush_next; /* cmd_watch.c: output to send  */
    unsigned watch_flush : 1; /* on a poll's list of conns to flush      */
    unsigned watch_broken : 1; /* events could not be encoded: close it  */
    unsigned flush_soon : 1; /* on the worker's flush_soon list          */
    struct kvd_conn *flush_soon_next;
    char peer[64];
} kvd_conn;

/* Adopts an accepted socket on worker w (its thread). reject: answer
 * KV_BUSY and close. protocol: a dedicated port's KVD_PROTOCOL_*, or -1
 * (the first bytes decide). On failure closes fd. */
void kvd_conn_adopt(kvd_worker *w, int fd, int is_unix, int reject, int protocol);

/* The server is stopping: answer the complete requests already received,
 * flush, then close. */
void kvd_conn_drain(kvd_conn *c);

/* End of worker w's loop iteration: sends the replies that
 * kvd__conn_flush_soon kept back during it. */
void kvd_conn_flush_soon_all(kvd_worker *w);

/* Closes at once, dropping unsent output. */
void kvd_conn_close(kvd_conn *c);

#endif /* KVD_CONN_H */
