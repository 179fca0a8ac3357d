/*
 * conn.h - one kvbench connection: up to `pipeline` requests in flight
 * over one TCP or Unix socket, on its worker's loop. In the closed loop
 * (default) it sends the next request as soon as an answer frees a
 * place; with --rate it sends on its schedule (sched.h), still never
 * more than `pipeline` in flight.
 *
 * Life: CONNECTING -> SETUP (HELLO, AUTH; with --protocol resp only AUTH,
 * if any; with memcache nothing) -> PRELOAD (--preload: SETs of its share of the keys) -> READY
 * (waits for the run to start) -> RUN -> CLOSED. Every step after CONNECTING is driven by responses (and, with
 * --rate, by the worker's calls to kvb_conn_send_due); the worker moves
 * READY connections to RUN and tells them to stop.
 *
 * Requests are encoded into an output buffer, by the codec (kvproto) for
 * kvd, as RESP2 commands (resp.h) for Redis or as text commands (mc.h)
 * for memcached, and written once per
 * batch; a request's latency runs from the moment its batch is handed to
 * the kernel (closed loop) or from its due time (--rate) to the read that
 * completes its response. Responses come back in request order (kvd:
 * docs/protocol.md, section 2; RESP and memcached: always), so the requests in flight
 * are a FIFO ring.
 */
#ifndef KVBENCH_CONN_H
#define KVBENCH_CONN_H

#include <stdint.h>
#include <uv.h>

#include "keys.h"
#include "kv_proto.h"
#include "sched.h"

typedef enum kvb_conn_state {
    KVB_CONN_CONNECTING = 0,
    KVB_CONN_SETUP,
    KVB_CONN_PRELOAD,
    KVB_CONN_READY,
    KVB_CONN_RUN,
    KVB_CONN_CLOSING,
    KVB_CONN_CLOSED
} kvb_conn_state;

typedef struct kvb_inflight {
    uint64_t id;      /* kvd's protocol; unused with RESP and memcache */
    uint64_t sent_ns; /* 0 until its batch is written */
    uint64_t due_ns;  /* --rate: its slot's due time; 0 in closed loop */
    int op;           /* kv_proto_op (GET, SET, HELLO, AUTH) for both */
    int late;         /* --rate: it fell due while the pipeline was full */
} kvb_inflight;

struct kvb_worker;

typedef struct kvb_conn {
    union {
        uv_handle_t handle;
        uv_stream_t stream;
        uv_tcp_t tcp;
        uv_pipe_t pipe;
    } h;
    uv_connect_t connect_req;
    uv_write_t write_req;
    struct kvb_worker *w;
    int gidx; /* index among all connections of the run */
    kvb_conn_state state;
    kvb_rng rng;

    kvb_inflight *ring; /* FIFO of requests in flight, `cap` slots */
    size_t cap, head, n;
    size_t unstamped;   /* the newest requests, not yet written */
    uint64_t next_id;
    uint64_t preload_next; /* next key index to preload */
    kvb_sched sched;       /* --rate only */

    uint8_t *in; /* received bytes not yet consumed */
    size_t in_len, in_cap;
    kv_proto_buf out;  /* encoded, not yet written */
    kv_proto_buf wbuf; /* being written by write_req */
    int writing;
} kvb_conn;

/* Initialises c (index gidx of the run) and starts connecting. Returns
 * 0, or a libuv error: c has then failed (kvb_worker_conn_failed) and is
 * CLOSING (kvb_worker_conn_closed follows) or, if its handle could not
 * even be initialised, already CLOSED (no callback follows). */
int kvb_conn_start(kvb_conn *c, struct kvb_worker *w, int gidx);
/* READY -> RUN: fills the pipeline (closed loop), or starts the
 * schedule with its first request due at first_due_ns (uv_hrtime clock;
 * --rate). */
void kvb_conn_run(kvb_conn *c, uint64_t first_due_ns);
/* --rate: sends the requests due at now_ns, as far as the pipeline
 * allows (the others wait and will count as late), and asks the worker
 * to wake it when the next one is due. No-op unless RUN. */
void kvb_conn_send_due(kvb_conn *c, uint64_t now_ns);
/* --rate: how many requests fell due at or before end_ns and were not
 * sent (0 unless the connection ran). */
uint64_t kvb_conn_backlog(const kvb_conn *c, uint64_t end_ns);
/* SETUP took too long: fails the connection (and so the run) if it is
 * still connecting or waiting for its handshake answer. */
void kvb_conn_setup_expired(kvb_conn *c);
/* Stops sending; closes now if nothing is in flight, else once the last
 * response is in (RUN) or at once (other states). */
void kvb_conn_stop(kvb_conn *c, int force);
/* Frees what c owns; call after the worker's loop has ended. */
void kvb_conn_free(kvb_conn *c);

#endif /* KVBENCH_CONN_H */
