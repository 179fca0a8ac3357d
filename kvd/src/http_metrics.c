/*
 * http_metrics.c - GET /metrics: kvd's and the store's figures in the
 * Prometheus text exposition format, version 0.0.4.
 *
 * Names follow Prometheus's conventions: the kvd_ prefix, base units in
 * the name (_seconds, _bytes), counters ending in _total, one family per
 * quantity with labels for its parts (command, reason). Request latency
 * is a real histogram per command: cumulative buckets at every power of
 * two of nanoseconds from 2^10 (~1 us) to 2^34 (~17 s), exact because
 * kvd's log-linear buckets (stats.h) split at those same edges, plus the
 * exact _sum and the _count. Commands appear once used; the MessagePack
 * protocol's operations always (as in METRICS).
 *
 * The figures are read with relaxed loads from every worker while they
 * run, as METRICS does (metrics.c): exact on a quiet server.
 */
#include <inttypes.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "http.h"
#include "server.h"
#include "stats.h"
#include "repl/repl.h"

#define LE_FIRST 10 /* 2^10 ns */
#define LE_LAST 34  /* 2^34 ns */

typedef struct out {
    kv_proto_buf *b;
    int rc;
} out;

static void put(out *o, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void put(out *o, const char *fmt, ...)
{
    char line[512];
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(line, sizeof line, fmt, ap);
    va_end(ap);
    if (o->rc == KV_OK && n > 0)
        o->rc = kvd_http_put(o->b, line, (size_t)n < sizeof line ? (size_t)n : sizeof line - 1);
}

static void family(out *o, const char *name, const char *type, const char *help)
{
    put(o, "# HELP %s %s\n# TYPE %s %s\n", name, help, name, type);
}

static void one(out *o, const char *name, const char *type, const char *help, uint64_t v)
{
    family(o, name, type, help);
    put(o, "%s %" PRIu64 "\n", name, v);
}

/* The store's figures (kv_metrics). */
static void store_metrics(out *o, const kv_metrics *m)
{
    static const struct {
        const char *name, *type, *help;
        size_t off;
    } f[] = {
#define M(field, name, type, help) {name, type, help, offsetof(kv_metrics, field)}
        M(keys, "kvd_keys", "gauge", "Keys stored."),
        M(key_bytes, "kvd_key_bytes", "gauge", "Total size of the stored keys."),
        M(value_bytes, "kvd_value_bytes", "gauge", "Total size of the stored values."),
        M(memory_bytes, "kvd_memory_bytes", "gauge", "Approximate memory used by the store."),
        M(revision, "kvd_revision", "gauge", "The store's latest revision."),
        M(gets, "kvd_store_gets_total", "counter", "Keys read (a multi-get of n counts n)."),
        M(get_hits, "kvd_store_get_hits_total", "counter", "Keys read that were found."),
        M(get_misses, "kvd_store_get_misses_total", "counter", "Keys read that were absent."),
        M(sets, "kvd_store_sets_total", "counter", "Keys set (a multi-set of n counts n)."),
        M(deletes, "kvd_store_deletes_total", "counter", "Keys deleted that existed."),
        M(cas_failures, "kvd_store_cas_failures_total", "counter",
          "Compare-and-swap writes refused for a version mismatch."),
        M(txn_commits, "kvd_store_txn_commits_total", "counter", "Transactions committed."),
        M(txn_conflicts, "kvd_store_txn_conflicts_total", "counter",
          "Optimistic transactions that conflicted."),
        M(table_slots, "kvd_table_slots", "gauge", "Capacity of the store's index."),
        M(table_resizes, "kvd_table_resizes_total", "counter", "Times the index grew."),
        M(durable_revision, "kvd_durable_revision", "gauge",
          "Highest revision durable on disk (0 in memory)."),
        M(log_bytes, "kvd_log_written_bytes_total", "counter",
          "Bytes appended to the write-ahead log since start."),
        M(log_records, "kvd_log_records_total", "counter", "Records written to the log."),
        M(log_batches, "kvd_log_batches_total", "counter",
          "Log writes (group commits of several records)."),
        M(log_syncs, "kvd_log_syncs_total", "counter", "fdatasync calls on the log."),
        M(snapshots, "kvd_snapshots_total", "counter", "Snapshots and backups completed."),
        M(snapshot_failures, "kvd_snapshot_failures_total", "counter", "Snapshots that failed."),
        M(snapshot_revision, "kvd_snapshot_revision", "gauge",
          "End revision of the newest snapshot."),
        M(expired_keys, "kvd_expired_keys_total", "counter",
          "Expired keys removed (lazily or actively)."),
        M(keys_with_ttl, "kvd_keys_with_ttl", "gauge",
          "Keys stored with an expiry time (expired ones until removed)."),
        M(evicted_keys, "kvd_evicted_keys_total", "counter",
          "Keys evicted to stay within --max-memory."),
        M(max_memory, "kvd_max_memory_bytes", "gauge", "The store's memory limit (0: none)."),
        M(memory_used, "kvd_memory_used_bytes", "gauge",
          "Memory counted against --max-memory: the store's memory and retired memory not "
          "yet freed."),
        M(history_versions, "kvd_history_versions", "gauge",
          "Earlier values of keys kept for reads at a revision (--history)."),
        M(history_bytes, "kvd_history_bytes", "gauge",
          "Memory the earlier values take (included in the store's memory)."),
        M(compact_revision, "kvd_compact_revision", "gauge",
          "The oldest revision a read in the past may ask for (0: none compacted)."),
#undef M
    };
    for (size_t i = 0; i < sizeof f / sizeof f[0]; i++)
        one(o, f[i].name, f[i].type, f[i].help,
            *(const uint64_t *)((const char *)m + f[i].off));
}

/* Whether command op gets its own series (as METRICS lists them). */
static int shown(int op, uint64_t requests)
{
    return kvd_cmd_is_native(op) || requests > 0;
}

static void histograms(out *o, const kvd_hist *hist, const uint64_t *reqs)
{
    family(o, "kvd_request_duration_seconds", "histogram",
           "Time from reading a request to its answer being ready, by command.");
    for (int op = 0; op < KVD_CMD_COUNT; op++) {
        if (!shown(op, reqs[op]))
            continue;
        const kvd_hist *h = &hist[op];
        const char *name = kvd_cmd_name(op);
        uint64_t cum = 0;
        unsigned b = 0;
        for (int e = LE_FIRST; e <= LE_LAST; e++) {
            uint64_t edge = (uint64_t)1 << e;
            while (b < KVD_HIST_BUCKETS && kvd_hist_bucket_limit(b) <= edge)
                cum += h->buckets[b++];
            put(o, "kvd_request_duration_seconds_bucket{command=\"%s\",le=\"%.12g\"} %" PRIu64
                   "\n",
                name, (double)edge / 1e9, cum);
        }
        put(o, "kvd_request_duration_seconds_bucket{command=\"%s\",le=\"+Inf\"} %" PRIu64 "\n",
            name, h->count);
        put(o, "kvd_request_duration_seconds_sum{command=\"%s\"} %" PRIu64 ".%09" PRIu64 "\n",
            name, h->sum_ns / 1000000000u, h->sum_ns % 1000000000u);
        put(o, "kvd_request_duration_seconds_count{command=\"%s\"} %" PRIu64 "\n", name,
            h->count);
    }
}

/* A cluster node's figures (repl.h). */
static void cluster_metrics(out *o, kvd_repl *r)
{
    kvd_repl_status st;
    kvd_repl_status_read(r, &st);
    one(o, "kvd_cluster_node_id", "gauge", "This node's Raft id.", st.id);
    one(o, "kvd_cluster_role", "gauge",
        "This node's role: 0 follower, 1 candidate, 2 leader, 3 unavailable.",
        (uint64_t)st.role);
    one(o, "kvd_cluster_leader_id", "gauge", "The leader's id as this node knows it (0: none).",
        st.leader_id);
    one(o, "kvd_cluster_term", "gauge", "The Raft term.", st.term);
    one(o, "kvd_cluster_commit_index", "gauge", "The highest log index known committed.",
        st.commit_index);
    one(o, "kvd_cluster_applied_index", "gauge", "The highest log index applied to the store.",
        st.applied_index);
    one(o, "kvd_cluster_apply_lag", "gauge",
        "Committed log entries not yet applied here (commit index - applied index).",
        st.commit_index > st.applied_index ? st.commit_index - st.applied_index : 0);
    family(o, "kvd_cluster_follower_lag", "gauge",
           "On the leader: log entries each other member lacks (its last index - the "
           "member's match index).");
    for (int i = 0; i < st.npeers; i++)
        put(o, "kvd_cluster_follower_lag{node=\"%" PRIu64 "\"} %" PRIu64 "\n", st.peers[i].id,
            st.peers[i].lag);
    one(o, "kvd_cluster_leader_changes_total", "counter", "Leaders this node has seen change.",
        st.leader_changes);
    one(o, "kvd_cluster_proposals_total", "counter", "Writes this node proposed as leader.",
        st.proposals);
    one(o, "kvd_cluster_proposals_failed_total", "counter",
        "Proposals refused or with an unknown outcome (NOT_LEADER, UNKNOWN_OUTCOME...).",
        st.proposals_failed);
    one(o, "kvd_cluster_batches_total", "counter",
        "Raft entries this node proposed carrying several writes (one batch each).", st.batches);
    one(o, "kvd_cluster_snapshots_total", "counter", "Raft snapshots taken by this node.",
        st.snapshots);
    one(o, "kvd_cluster_snapshot_bytes", "gauge", "Size of the last Raft snapshot taken.",
        st.snapshot_bytes);
    one(o, "kvd_cluster_snapshots_installed_total", "counter",
        "Raft snapshots installed (a restart, or the leader's to a node behind).",
        st.snapshots_installed);
    one(o, "kvd_cluster_snapshot_installed_bytes", "gauge",
        "Size of the last Raft snapshot installed.", st.snapshot_installed_bytes);
    one(o, "kvd_cluster_duplicate_requests_total", "counter",
        "Writes whose request id was applied before: not applied again.", st.duplicates);
    one(o, "kvd_cluster_request_sessions", "gauge",
        "Clients whose last applied request id is kept.", st.sessions);
}

int kvd_http_metrics(kvd_server *s, kv_proto_buf *b)
{
    kv_metrics m;
    int rc = kv_metrics_read(s->store, &m, sizeof m);
    if (rc != KV_OK)
        return rc;
    kvd_hist *hist = calloc(KVD_CMD_COUNT, sizeof *hist);
    if (!hist)
        return KV_NO_MEMORY;
    uint64_t reqs[KVD_CMD_COUNT] = {0}, errs[KVD_CMD_COUNT] = {0};
    uint64_t in = 0, outb = 0, errors = 0, proto = 0, slow = 0, idle = 0, frame = 0, cmem = 0;
    uint64_t authf = 0, autht = 0, batches = 0;
    for (int i = 0; i < s->nworkers; i++) {
        kvd_stats *st = &s->workers[i].stats;
        in += kvd_stat_get(&st->bytes_in);
        outb += kvd_stat_get(&st->bytes_out);
        errors += kvd_stat_get(&st->errors);
        proto += kvd_stat_get(&st->protocol_errors);
        slow += kvd_stat_get(&st->disconnects_slow);
        idle += kvd_stat_get(&st->disconnects_idle);
        frame += kvd_stat_get(&st->disconnects_frame_timeout);
        cmem += kvd_stat_get(&st->disconnects_client_memory);
        authf += kvd_stat_get(&st->auth_failures);
        autht += kvd_stat_get(&st->auth_throttled);
        batches += kvd_stat_get(&st->write_batches);
        for (int op = 0; op < KVD_CMD_COUNT; op++) {
            reqs[op] += kvd_stat_get(&st->requests[op]);
            errs[op] += kvd_stat_get(&st->op_errors[op]);
            kvd_hist_merge(&hist[op], st, op);
        }
    }
    out o = {b, KV_OK};
    family(&o, "kvd_build_info", "gauge", "kvd's version and protocol versions (always 1).");
    put(&o, "kvd_build_info{version=\"%s\",protocol_min=\"%d\",protocol_max=\"%d\"} 1\n",
        KV_VERSION_STRING, KV_PROTO_MIN_VERSION, KV_PROTO_MAX_VERSION);
    family(&o, "kvd_uptime_seconds", "gauge", "Seconds since kvd started.");
    put(&o, "kvd_uptime_seconds %.3f\n", (double)(uv_hrtime() - s->start_ns) / 1e9);
    one(&o, "kvd_threads", "gauge", "Event-loop threads.", (uint64_t)s->nworkers);
    one(&o, "kvd_connections", "gauge", "Open client connections.",
        atomic_load_explicit(&s->connections, memory_order_relaxed));
    one(&o, "kvd_max_connections", "gauge", "Connection limit in effect (0: none).",
        s->max_connections);
    one(&o, "kvd_connections_accepted_total", "counter", "Connections accepted.",
        atomic_load_explicit(&s->connections_total, memory_order_relaxed));
    one(&o, "kvd_connections_rejected_total", "counter",
        "Connections refused over the connection limit.",
        atomic_load_explicit(&s->connections_rejected, memory_order_relaxed));
    family(&o, "kvd_disconnects_total", "counter", "Connections kvd closed, by reason.");
    put(&o, "kvd_disconnects_total{reason=\"slow\"} %" PRIu64 "\n", slow);
    put(&o, "kvd_disconnects_total{reason=\"idle\"} %" PRIu64 "\n", idle);
    put(&o, "kvd_disconnects_total{reason=\"frame_timeout\"} %" PRIu64 "\n", frame);
    put(&o, "kvd_disconnects_total{reason=\"client_memory\"} %" PRIu64 "\n", cmem);
    one(&o, "kvd_client_memory_bytes", "gauge", "Bytes in all connections' buffers.",
        atomic_load_explicit(&s->client_memory, memory_order_relaxed));
    one(&o, "kvd_max_client_memory_bytes", "gauge", "Limit of client buffers (0: none).",
        s->cfg->max_client_memory);
    one(&o, "kvd_auth_failures_total", "counter", "Wrong passwords (AUTH or bearer token).",
        authf);
    one(&o, "kvd_auth_throttled_total", "counter",
        "Authentications delayed by the per-address backoff.", autht);
    one(&o, "kvd_received_bytes_total", "counter", "Bytes read from clients.", in);
    one(&o, "kvd_sent_bytes_total", "counter", "Bytes written to clients.", outb);
    one(&o, "kvd_write_batches_total", "counter",
        "Socket writes (pipelined responses share one).", batches);
    one(&o, "kvd_errors_total", "counter", "Responses with a failure status.", errors);
    one(&o, "kvd_protocol_errors_total", "counter", "Malformed or oversized requests.", proto);
    one(&o, "kvd_watchers", "gauge", "Open watches (WATCH, KVD.WATCH).",
        atomic_load_explicit(&s->watchers, memory_order_relaxed));
    one(&o, "kvd_watchers_backlogged", "gauge",
        "Watches not polled because their client does not read its output.",
        atomic_load_explicit(&s->watchers_backlogged, memory_order_relaxed));
    one(&o, "kvd_watch_events_total", "counter", "Watch events sent.",
        atomic_load_explicit(&s->watch_events, memory_order_relaxed));
    one(&o, "kvd_watch_lost_total", "counter",
        "Watches ended because history no longer had their events (COMPACTED).",
        atomic_load_explicit(&s->watch_lost, memory_order_relaxed));
    family(&o, "kvd_requests_total", "counter", "Requests answered, by command.");
    for (int op = 0; op < KVD_CMD_COUNT; op++)
        if (shown(op, reqs[op]))
            put(&o, "kvd_requests_total{command=\"%s\"} %" PRIu64 "\n", kvd_cmd_name(op),
                reqs[op]);
    family(&o, "kvd_request_errors_total", "counter",
           "Responses with a failure status, by command (when it was readable).");
    for (int op = 0; op < KVD_CMD_COUNT; op++)
        if (shown(op, reqs[op]))
            put(&o, "kvd_request_errors_total{command=\"%s\"} %" PRIu64 "\n", kvd_cmd_name(op),
                errs[op]);
    if (s->repl)
        cluster_metrics(&o, s->repl);
    histograms(&o, hist, reqs);
    store_metrics(&o, &m);
    free(hist);
    return o.rc;
}
