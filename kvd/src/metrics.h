/*
 * metrics.h - the METRICS answer: the store's kv_metrics plus kvd's own
 * figures, summed over all worker loops at the time of the request, as a
 * list of named numbers that any front-end can render.
 *
 * Server metric names (besides kv_metrics' field names):
 *   uptime_s, threads, connections, max_connections (the effective
 *   limit, see --max-connections; 0 = none), connections_total,
 *   connections_rejected, disconnects_slow, disconnects_idle,
 *   disconnects_frame_timeout (a request frame begun, not finished in time),
 *   client_memory (bytes in all connections' buffers), max_client_memory,
 *   disconnects_client_memory (biggest clients dropped over that limit),
 *   auth_failures (wrong AUTH secrets), auth_throttled (AUTHs delayed by the
 *   per-address backoff),
 *   bytes_in, bytes_out, write_batches (writes: pipelined
 *   responses share one), requests (total), errors, protocol_errors,
 *   requests_by_op   {op: count}
 *   errors_by_op     {op: failure responses} (of "errors", those whose
 *                    request had a readable, known op)
 *   latency_p50_us   {op: microseconds}   (ops with at least one request)
 *   latency_p99_us   {op: microseconds}
 *   latency_p999_us  {op: microseconds}
 * A cluster node adds cluster_node_id, cluster_role (0 follower, 1
 *   candidate, 2 leader, 3 unavailable), cluster_leader_id (0: none
 *   known), cluster_term, cluster_commit_index, cluster_applied_index,
 *   cluster_leader_changes, cluster_proposals (writes proposed here),
 *   cluster_proposals_failed (refused or not committed), cluster_batches
 *   (Raft entries proposed here carrying several writes).
 * Op names are the command layer's (cmd.h), lower case: the MessagePack
 * operations (hello, ping, auth, get, mget, set, mset, del, txn, scan,
 * metrics, snapshot, snapshot_read) always, other commands (incrby,
 * exists, ...) once they were used.
 */
#ifndef KVD_METRICS_H
#define KVD_METRICS_H

#include <stdint.h>

#include "cmd.h"
#include "kv_proto.h"
#include "server.h"

/* Answers METRICS into r: a map of name -> number or name -> map.
 * Returns the reply's status (KV_NO_MEMORY when the figures could not be
 * gathered). */
int kvd_metrics_reply(kvd_server *s, kvd_reply *r, const kv_metrics *store);

#endif /* KVD_METRICS_H */
