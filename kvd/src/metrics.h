/*
 * metrics.h - the METRICS response: the store's kv_metrics plus kvd's own
 * figures, summed over all worker loops at the time of the request.
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
 * Op names are lower case: hello, ping, auth, get, mget, set, mset, del,
 * txn, scan, metrics.
 */
#ifndef KVD_METRICS_H
#define KVD_METRICS_H

#include <stdint.h>

#include "kv_proto.h"
#include "server.h"

/* Appends the METRICS response frame for request id to out.
 * Errors as the codec's encoders (KV_NO_MEMORY). Any worker thread. */
int kvd_metrics_encode(kvd_server *s, kv_proto_buf *out, uint64_t id, const kv_metrics *store);

#endif /* KVD_METRICS_H */
