/*
 * metrics.c - builds the METRICS response (names in metrics.h).
 *
 * Reads every worker's kvd_stats with relaxed loads while those workers
 * keep running: the sums are a close approximation under load and exact
 * when the server is quiet, like the store's own metrics.
 */
#include "metrics.h"

#include "repl/repl.h"

#include <stdlib.h>
#include <string.h>

#define NSERVER 24 /* flat server entries */
#define NCLUSTER 18 /* a cluster node's */
#define NMAPS 5    /* requests_by_op, errors_by_op and three latency maps */

static kv_proto_metric uint_metric(const char *name, uint64_t v)
{
    kv_proto_metric m = {.name = name, .kind = KV_PROTO_METRIC_UINT, .u = v};
    return m;
}

/* Writes one number. */
static void reply_number(kvd_reply *r, const kv_proto_metric *m)
{
    r->ops->text(r, m->name, strlen(m->name));
    if (m->kind == KV_PROTO_METRIC_DOUBLE)
        r->ops->dbl(r, m->d);
    else
        r->ops->uinteger(r, m->u);
}

static int reply_metrics(kvd_reply *r, const kv_metrics *store, const kv_proto_metric *items,
                         size_t n)
{
    kv_proto_metric st[64];
    size_t nstore = kv_proto_store_metrics(store, st, 64);
    if (nstore > 64)
        return r->ops->error(r, KV_INTERNAL, "too many store metrics");
    r->ops->map(r, nstore + n);
    for (size_t i = 0; i < nstore; i++)
        reply_number(r, &st[i]);
    for (size_t i = 0; i < n; i++) {
        if (items[i].kind != KV_PROTO_METRIC_MAP) {
            reply_number(r, &items[i]);
            continue;
        }
        r->ops->text(r, items[i].name, strlen(items[i].name));
        r->ops->map(r, items[i].nchildren);
        for (size_t j = 0; j < items[i].nchildren; j++)
            reply_number(r, &items[i].children[j]);
    }
    return KV_OK;
}

int kvd_metrics_reply(kvd_server *s, kvd_reply *r, const kv_metrics *store)
{
    uint64_t sums[16] = {0}, reqs[KVD_CMD_COUNT] = {0}, errs[KVD_CMD_COUNT] = {0};
    uint64_t total = 0;
    kvd_hist *hist = calloc(KVD_CMD_COUNT, sizeof *hist);
    if (!hist)
        return r->ops->error(r, KV_NO_MEMORY, "out of memory");
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
        for (int op = 0; op < KVD_CMD_COUNT; op++) {
            uint64_t n = kvd_stat_get(&st->requests[op]);
            reqs[op] += n;
            total += n;
            errs[op] += kvd_stat_get(&st->op_errors[op]);
            kvd_hist_merge(&hist[op], st, op);
        }
    }

    kv_proto_metric items[NSERVER + NCLUSTER + NMAPS];
    kv_proto_metric by_op[KVD_CMD_COUNT], errs_by_op[KVD_CMD_COUNT];
    kv_proto_metric lat[3][KVD_CMD_COUNT];
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
    items[n++] = uint_metric("watchers", atomic_load_explicit(&s->watchers, memory_order_relaxed));
    items[n++] = uint_metric("watchers_backlogged",
                             atomic_load_explicit(&s->watchers_backlogged, memory_order_relaxed));
    items[n++] = uint_metric("watch_events",
                             atomic_load_explicit(&s->watch_events, memory_order_relaxed));
    items[n++] = uint_metric("watch_lost", atomic_load_explicit(&s->watch_lost, memory_order_relaxed));
    if (s->repl) {
        kvd_repl_status st;
        kvd_repl_status_read(s->repl, &st);
        items[n++] = uint_metric("cluster_node_id", st.id);
        items[n++] = uint_metric("cluster_role", (uint64_t)st.role);
        items[n++] = uint_metric("cluster_leader_id", st.leader_id);
        items[n++] = uint_metric("cluster_term", st.term);
        items[n++] = uint_metric("cluster_commit_index", st.commit_index);
        items[n++] = uint_metric("cluster_applied_index", st.applied_index);
        items[n++] = uint_metric("cluster_leader_changes", st.leader_changes);
        items[n++] = uint_metric("cluster_proposals", st.proposals);
        items[n++] = uint_metric("cluster_proposals_failed", st.proposals_failed);
        items[n++] = uint_metric("cluster_batches", st.batches);
        items[n++] = uint_metric("cluster_apply_lag", st.commit_index > st.applied_index
                                                          ? st.commit_index - st.applied_index
                                                          : 0);
        uint64_t lag = 0;
        for (int i = 0; i < st.npeers; i++)
            lag = st.peers[i].lag > lag ? st.peers[i].lag : lag;
        items[n++] = uint_metric("cluster_follower_lag_max", lag);
        items[n++] = uint_metric("cluster_snapshots", st.snapshots);
        items[n++] = uint_metric("cluster_snapshot_bytes", st.snapshot_bytes);
        items[n++] = uint_metric("cluster_snapshots_installed", st.snapshots_installed);
        items[n++] = uint_metric("cluster_snapshot_installed_bytes", st.snapshot_installed_bytes);
        items[n++] = uint_metric("cluster_duplicates", st.duplicates);
        items[n++] = uint_metric("cluster_request_sessions", st.sessions);
    }

    static const double qs[3] = {0.50, 0.99, 0.999};
    size_t nops = 0;
    for (int op = 0; op < KVD_CMD_COUNT; op++) {
        /* the MessagePack operations always; other commands once used */
        if (!kvd_cmd_is_native(op) && reqs[op] == 0)
            continue;
        by_op[nops] = uint_metric(kvd_cmd_name(op), reqs[op]);
        errs_by_op[nops++] = uint_metric(kvd_cmd_name(op), errs[op]);
        if (hist[op].count == 0)
            continue;
        for (int q = 0; q < 3; q++) {
            lat[q][nlat].name = kvd_cmd_name(op);
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
        items[n].nchildren = i <= 1 ? nops : nlat;
        n++;
    }
    return reply_metrics(r, store, items, n);
}
