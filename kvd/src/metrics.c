/*
 * metrics.c - builds the METRICS response (names in metrics.h).
 *
 * Reads every worker's kvd_stats with relaxed loads while those workers
 * keep running: the sums are a close approximation under load and exact
 * when the server is quiet, like the store's own metrics.
 */
#include "metrics.h"

#include <stdlib.h>
#include <string.h>

static const char *const op_names[KV_PROTO_OP_COUNT] = {
    "hello", "ping", "auth", "get", "mget", "set", "mset", "del", "txn", "scan", "metrics",
    "snapshot", "snapshot_read",
};

#define NSERVER 20 /* flat server entries */
#define NMAPS 5    /* requests_by_op, errors_by_op and three latency maps */

static kv_proto_metric uint_metric(const char *name, uint64_t v)
{
    kv_proto_metric m = {.name = name, .kind = KV_PROTO_METRIC_UINT, .u = v};
    return m;
}

int kvd_metrics_encode(kvd_server *s, kv_proto_buf *out, uint64_t id, const kv_metrics *store)
{
    uint64_t sums[16] = {0}, reqs[KV_PROTO_OP_COUNT] = {0}, errs[KV_PROTO_OP_COUNT] = {0};
    uint64_t total = 0;
    kvd_hist *hist = calloc(KV_PROTO_OP_COUNT, sizeof *hist);
    if (!hist)
        return KV_NO_MEMORY;
    for (int i = 0; i < s->nworkers; i++) {
        kvd_stats *st = &s->workers[i].stats;
        sums[0] += kvd_stat_get(&st->bytes_in);
        sums[1] += kvd_stat_get(&st->bytes_out);
        sums[2] += kvd_stat_get(&st->errors);
        sums[3] += kvd_stat_get(&st->protocol_errors);
        sums[4] += kvd_stat_get(&st->disconnects_slow);
        sums[5] += kvd_stat_get(&st->disconnects_idle);
        sums[6] += kvd_stat_get(&st->write_batches);
        sums[7] += kvd_stat_get(&st->disconnects_frame_timeout);
        sums[8] += kvd_stat_get(&st->auth_failures);
        sums[10] += kvd_stat_get(&st->disconnects_client_memory);
        sums[9] += kvd_stat_get(&st->auth_throttled);
        for (int op = 0; op < KV_PROTO_OP_COUNT; op++) {
            uint64_t n = kvd_stat_get(&st->requests[op]);
            reqs[op] += n;
            total += n;
            errs[op] += kvd_stat_get(&st->op_errors[op]);
            kvd_hist_merge(&hist[op], st, op);
        }
    }

    kv_proto_metric items[NSERVER + NMAPS];
    kv_proto_metric by_op[KV_PROTO_OP_COUNT], errs_by_op[KV_PROTO_OP_COUNT];
    kv_proto_metric lat[3][KV_PROTO_OP_COUNT];
    size_t n = 0, nlat = 0;
    items[n++] = uint_metric("uptime_s", (uv_hrtime() - s->start_ns) / 1000000000u);
    items[n++] = uint_metric("threads", (uint64_t)s->nworkers);
    items[n++] = uint_metric("connections", atomic_load_explicit(&s->connections, memory_order_relaxed));
    items[n++] = uint_metric("max_connections", s->max_connections);
    items[n++] = uint_metric("connections_total",
                             atomic_load_explicit(&s->connections_total, memory_order_relaxed));
    items[n++] = uint_metric("connections_rejected",
                             atomic_load_explicit(&s->connections_rejected, memory_order_relaxed));
    items[n++] = uint_metric("disconnects_slow", sums[4]);
    items[n++] = uint_metric("disconnects_idle", sums[5]);
    items[n++] = uint_metric("disconnects_frame_timeout", sums[7]);
    items[n++] = uint_metric("disconnects_client_memory", sums[10]);
    items[n++] = uint_metric("client_memory",
                             atomic_load_explicit(&s->client_memory, memory_order_relaxed));
    items[n++] = uint_metric("max_client_memory", s->cfg->max_client_memory);
    items[n++] = uint_metric("auth_failures", sums[8]);
    items[n++] = uint_metric("auth_throttled", sums[9]);
    items[n++] = uint_metric("bytes_in", sums[0]);
    items[n++] = uint_metric("bytes_out", sums[1]);
    items[n++] = uint_metric("write_batches", sums[6]);
    items[n++] = uint_metric("requests", total);
    items[n++] = uint_metric("errors", sums[2]);
    items[n++] = uint_metric("protocol_errors", sums[3]);

    static const double qs[3] = {0.50, 0.99, 0.999};
    for (int op = 0; op < KV_PROTO_OP_COUNT; op++) {
        by_op[op] = uint_metric(op_names[op], reqs[op]);
        errs_by_op[op] = uint_metric(op_names[op], errs[op]);
        if (hist[op].count == 0)
            continue;
        for (int q = 0; q < 3; q++) {
            lat[q][nlat].name = op_names[op];
            lat[q][nlat].kind = KV_PROTO_METRIC_DOUBLE;
            lat[q][nlat].d = kvd_hist_quantile_us(&hist[op], qs[q]);
            lat[q][nlat].u = 0;
            lat[q][nlat].children = NULL;
            lat[q][nlat].nchildren = 0;
        }
        nlat++;
    }
    free(hist);
    static const char *const map_names[NMAPS] = {"requests_by_op", "errors_by_op",
                                                 "latency_p50_us", "latency_p99_us",
                                                 "latency_p999_us"};
    for (int i = 0; i < NMAPS; i++) {
        items[n].name = map_names[i];
        items[n].kind = KV_PROTO_METRIC_MAP;
        items[n].u = 0;
        items[n].d = 0;
        items[n].children = i == 0 ? by_op : i == 1 ? errs_by_op : lat[i - 2];
        items[n].nchildren = i <= 1 ? KV_PROTO_OP_COUNT : nlat;
        n++;
    }
    return kv_proto_resp_metrics(out, id, store, items, n);
}
