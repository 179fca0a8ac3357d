/*
 * dispatch.h - one request frame in, one response frame out: decodes with
 * the codec, checks auth, calls libkv and encodes the answer into the
 * connection's current batch (c->out).
 */
#ifndef KVD_DISPATCH_H
#define KVD_DISPATCH_H

#include <stddef.h>
#include <stdint.h>

#include "conn.h"

/* Answers the request in body[0..len) (a frame body). Returns 0 to keep
 * the connection, 1 when the response just queued is the last one (the
 * stream can no longer be trusted, or auth failed too often), -1 when not
 * even an error response could be queued (out of memory: close at once).
 * *clock is uv_hrtime() when this request began (the end of the previous
 * one in a batch); it receives the time this one ended, which also
 * gives the op's latency sample. */
int kvd_dispatch_frame(kvd_conn *c, const uint8_t *body, size_t len, uint64_t *clock);

/* Queues a connection-level error [0, status, detail]. Returns 0 or -1. */
int kvd_dispatch_conn_error(kvd_conn *c, int status, const char *detail);

/* Checks an AUTH secret now and queues its answer; a wrong one counts
 * against the peer's address and *fatal is set after repeated failures
 * on this connection. Returns the status, or -1 when out of memory. */
int kvd_dispatch_auth_check(kvd_conn *c, uint64_t id, const void *secret, size_t len, int *fatal);
/* Queues [id, status, detail] for a request that will not be run (id 0
 * when it is not known), the last response of the connection. Returns 0
 * or -1. */
int kvd_dispatch_last_error(kvd_conn *c, uint64_t id, int status, const char *detail);

/* A malformed frame (or another protocol) from c: one WARN naming the
 * peer, at most every KVD_PROTO_WARN_EVERY_MS across the server, with the
 * count since the last one. what is kvd's own text, never request bytes
 * (a secret could be among them). Any worker thread. */
#define KVD_PROTO_WARN_EVERY_MS 10000
void kvd_dispatch_protocol_warn(kvd_conn *c, const char *what);

#endif /* KVD_DISPATCH_H */
