/*
 * client_internal.h - private state and helpers of libkvclient.
 *
 * A kv_client is one blocking socket plus two buffers: `out` (encoded
 * requests, written in one go) and `in` (received bytes; frames are decoded
 * in place, zero-copy, and consumed by the next receive). Every transport
 * failure goes through kv__client_fail(), which closes the socket and sets
 * the message, so "connection is closed after a transport error" holds in
 * one place.
 */
#ifndef KV_CLIENT_INTERNAL_H
#define KV_CLIENT_INTERNAL_H

#include <stdint.h>

#include "kv_client.h"
#include "kv_proto.h"

#define KV__CLIENT_ERRLEN 256

/* One of kv_client_set_endpoints' addresses (endpoints.c). */
typedef struct kv__client_endpoint {
    char *host;
    uint16_t port;
} kv__client_endpoint;

struct kv_client {
    kv_client_options opts; /* strings owned (copies) */
    int fd;                 /* -1 when not connected */

    uint64_t next_id; /* request ids start at 1; 0 is reserved */
    kv_proto_buf out;
    uint8_t *in;       /* received bytes: [in_start, in_len) not consumed */
    size_t in_start;
    size_t in_len;
    size_t in_cap;
    size_t in_pending; /* bytes of the last frame handed out, consumed by
                          the next receive */
    kv_proto_arena arena; /* for decoding responses; reset per request */

    int64_t deadline_ms; /* of the current call, 0 = none */

    int proto_version;
    char server_name[64];
    char server_version[64];
    char err[KV__CLIENT_ERRLEN];
    int err_local; /* err is the client's own refusal: nothing was sent */
    int watching;  /* a kv_client_watch owns the connection (watch.c) */

    /* Retried writes (protocol version 7, a cluster): */
    int retries;        /* kv_client_set_retries; 0: none              */
    uint64_t client_id; /* SESSION's id, random, chosen with retries   */
    int session;        /* the connection's SESSION was accepted: its
                           writes carry request ids                    */
    int consistency;    /* kv_client_set_consistency's level           */
    unsigned retried;   /* writes sent again since kv_client_new       */

    /* Other nodes to try when the current address fails (endpoints.c) */
    kv__client_endpoint *endpoints;
    size_t nendpoints;
    size_t ep_next; /* where the next search starts: after the last that
                       answered */
    int no_auto_sync; /* kv_client_set_auto_sync(c, 0): connects do not
                         learn the cluster's members */
    int syncing;      /* a sync is running (no sync from its connects) */
    unsigned syncs;   /* endpoint lists learned (kv_client_synced) */
};

/* Connects with connect_here (dial + handshake at opts.host/port), and
 * when that fails at the transport level, at each endpoint in turn until
 * one connects (endpoints.c). */
int kv__client_connect_any(kv_client *c, int (*connect_here)(kv_client *));
void kv__client_endpoints_free(kv_client *c);
/* After a connect: learns the members (kv_client_sync_endpoints) when
 * endpoints are in use and auto-sync is on. KV_OK, or a transport failure
 * (the connection is then closed); other failures are ignored. */
int kv__client_auto_sync(kv_client *c);

/* Monotonic milliseconds. */
int64_t kv__client_now_ms(void);
/* Starts a call: sets the deadline from opts.io_timeout_ms. */
void kv__client_start_call(kv_client *c);

/* The server's address as messages name it: host:port, [v6]:port or the
 * Unix socket path. */
void kv__client_peer_name(const kv_client *c, char *buf, size_t cap);

/* Records a failure message (printf-style) and returns status. */
int kv__client_error(kv_client *c, int status, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
/* As kv__client_error(), and closes the connection. */
int kv__client_fail(kv_client *c, int status, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

/* conn.c: opens the socket (TCP or Unix) into c->fd, non-blocking. */
int kv__client_dial(kv_client *c);
/* Sends c->out entirely (reading incoming bytes meanwhile, so a server
 * that answers while we still send cannot deadlock us), then empties it. */
int kv__client_flush(kv_client *c);
/* Waits for the next complete response frame; *body points into c->in and
 * stays valid until the next receive. */
int kv__client_recv_frame(kv_client *c, const uint8_t **body, size_t *len);
/* Waits up to timeout_ms (<0: no bound) for input: *ready is 1 when a
 * frame (or the start of one, or the peer's close) can be received, 0
 * when the time passed or a signal interrupted the wait. Nothing is
 * consumed. */
int kv__client_poll_frame(kv_client *c, int timeout_ms, int *ready);

/* Reads and decodes the next response, which must answer request `id` of
 * operation `op` (flags: kv_proto_response_decode_ex's, from the request's
 * arguments). KV_OK means a response arrived: the server's status is
 * resp->status. A connection-level error (id 0) closes the connection and
 * returns its status. */
int kv__client_read_reply(kv_client *c, uint64_t id, int op, unsigned flags,
                          kv_proto_response *resp);

/* Encodes req (assigning its id), sends it and reads the reply. */
int kv__client_call(kv_client *c, kv_proto_request *req,
                    kv_proto_response *resp);

/* KV_OK, or KV_UNSUPPORTED (recorded as the client's own refusal) when
 * req needs a newer protocol version than the connection speaks: key
 * expiry needs version 4. */
int kv__client_check_version(kv_client *c, const kv_proto_request *req);

/* ops.c: puts an expiry into q (ms from now, or with `at` a Unix time; at
 * with ms 0: none, q untouched). KV_INVALID_ARGUMENT (recorded) for a
 * value the protocol cannot carry. */
int kv__client_put_expiry(kv_client *c, kv_proto_request *q, int at, uint64_t ms);

/* ops.c: fills q as a TXN of these compares and ops; the set ops'
 * expire_at_ms are TTLs when `in` is 1, else Unix times. KV_OK, or
 * KV_INVALID_ARGUMENT (recorded) for an expiry above 2^52, or
 * KV_NO_MEMORY. *in_buf receives memory q points to (NULL if none):
 * free it after encoding q. */
int kv__client_txn_request(kv_client *c, kv_proto_request *q, const kv_compare *cmps,
                           size_t ncmps, const kv_op *then_ops, size_t nthen,
                           const kv_op *else_ops, size_t nelse, int in,
                           unsigned char **in_buf);

/* client.c, for the pipeline's retries as for single calls': */
/* 1 for the ops a cluster replicates (writes: retried only with a session). */
int kv__client_is_write(int op);
/* The leader's HOST:PORT from a NOT_LEADER reply's detail ("reachable at
 * HOST:PORT"): 1, or 0 when it names none. */
int kv__client_leader_of(const kv_proto_response *resp, char *host, size_t cap,
                         uint16_t *port);
/* Makes host:port the current address and connects there
 * (kv_client_connect: endpoints, SESSION, CONSISTENCY). KV_NO_MEMORY
 * leaves the address unchanged. */
int kv__client_move_to(kv_client *c, const char *host, uint16_t port);
/* Sleeps before retry number n (from 0): 50 ms doubling, at most 1 s. */
void kv__client_retry_pause(int n);
/* At most this many NOT_LEADER redirections per try. */
#define KV__CLIENT_FOLLOW_MAX_HOPS 3

/* Turns a non-OK server status into the call's return value, recording
 * the server's detail message. */
int kv__client_server_status(kv_client *c, const kv_proto_response *resp);

/* malloc'ed copy of n bytes (non-NULL even for n == 0), NULL if OOM. */
void *kv__client_memdup(const void *p, size_t n);

/* Runs a multi-get request q (MGET, MGET_AT: q->nkeys keys) and copies
 * its values into out[] (caller-owned; freed again on failure); name is
 * the operation's, for the error message. */
int kv__client_mget_run(kv_client *c, kv_proto_request *q, kv_value *out, const char *name);

/* Copies a decoded TXN result into a caller-owned kv_txn_result. */
int kv__client_copy_txn(const kv_proto_response *resp, kv_txn_result *out);

#endif /* KV_CLIENT_INTERNAL_H */
