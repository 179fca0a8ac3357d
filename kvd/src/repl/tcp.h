/*
 * tcp.h - the TCP transport between a cluster's nodes: canonical raft's
 * own (raft_uv_tcp), with Nagle's algorithm turned off on every
 * connection it makes or accepts.
 *
 * raft_uv_tcp leaves Nagle's algorithm on. A node then holds back a
 * small message (an AppendEntries, its answer) while an earlier one is
 * unacknowledged, and the peer acknowledges late (delayed ACKs, 40 ms on
 * Linux): a write stalled for 40-50 ms every so often under load, on
 * every path (docs/replication.md "Tails"). Raft's messages are already
 * batched by the library, so each should leave at once, as etcd's do
 * (Go sets TCP_NODELAY on every connection).
 */
#ifndef KVD_REPL_TCP_H
#define KVD_REPL_TCP_H

#include <raft.h>
#include <raft/uv.h>

typedef struct kvd_raft_tcp {
    struct raft_uv_transport outer; /* the transport Raft's io is given */
    struct raft_uv_transport inner; /* raft_uv_tcp's */
    raft_uv_accept_cb accept_cb;    /* Raft's, for accepted connections */
    raft_uv_transport_close_cb close_cb; /* Raft's, once closed */
} kvd_raft_tcp;

/* raft_uv_tcp_init on loop, wrapped; bind (NULL: the node's address)
 * as raft_uv_tcp_set_bind_address. Returns 0 or a RAFT_* code. */
int kvd_raft_tcp_init(kvd_raft_tcp *t, struct uv_loop_s *loop, const char *bind);

/* Releases it (after Raft's io is closed), as raft_uv_tcp_close. */
void kvd_raft_tcp_close(kvd_raft_tcp *t);

#endif /* KVD_REPL_TCP_H */
