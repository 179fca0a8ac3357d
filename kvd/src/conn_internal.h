/*
 * conn_internal.h - what conn.c (input, processing, lifetime) and
 * conn_write.c (output) share. Loop thread of the connection only.
 */
#ifndef KVD_CONN_INTERNAL_H
#define KVD_CONN_INTERNAL_H

#include "conn.h"

/* conn_write.c */
/* Sends c->out (one write per batch). May close or start lingering. */
void kvd__conn_flush(kvd_conn *c);
/* Sends c->out at the end of this loop iteration instead (when nothing
 * else is going on: kvd__conn_flush otherwise). */
void kvd__conn_flush_soon(kvd_conn *c);
/* With no write in flight: linger after a fatal error, close after EOF. */
void kvd__conn_settle(kvd_conn *c);

/* Sends the held batches that are ready (their writes durable, their
 * deferred reply produced), in order. */
void kvd__conn_release(kvd_conn *c);
/* Ends the current batch and appends a waiting entry for a deferred reply
 * to c's held queue; NULL on out of memory. */
kvd_held *kvd__conn_defer(kvd_conn *c);
/* A deferred reply can be written now: aims r (the copy the command kept
 * of its front-end's reply) at slot's buffer. */
void kvd__held_aim(kvd_held *slot, kvd_reply *r);
/* The deferred reply r in slot is written (rc: KV_OK, or the failure
 * that leaves nothing to answer: the connection closes). Finishes r and
 * sends what may go now. */
void kvd__held_done(kvd_conn *c, kvd_held *slot, kvd_reply *r, int rc);
/* Frees the held queue (the connection is closing). */
void kvd__conn_free_held(kvd_conn *c);

/* conn.c */
/* Drops a reference taken for a deferred command; frees a closed conn. */
void kvd__conn_unref(kvd_conn *c);
/* Brings c's share of server->client_memory up to date (input received
 * and buffered, output buffers, queued writes); with evict, acts when the
 * total is over --max-client-memory (c may be closed then). */
void kvd__conn_account(kvd_conn *c, int evict);
/* Output drained under the low mark: process buffered input, read again. */
void kvd__conn_resume(kvd_conn *c);
/* The last response is written: shut down our side and discard input. */
void kvd__conn_linger(kvd_conn *c);
/* Holds c's AUTH (id, secret copied) for delay_ms, then checks it and
 * goes on. Returns 0, or -1 when out of memory. */
int kvd__conn_auth_defer(kvd_conn *c, uint64_t id, const void *secret, size_t len,
                         uint64_t delay_ms);

#endif /* KVD_CONN_INTERNAL_H */
