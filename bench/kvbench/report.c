/*
 * report.c - kvbench's result, as text or as one JSON object on stdout.
 *
 * Latencies are in microseconds; percentiles are the top of their
 * histogram bucket (at most 0.8 % above the true value), max is exact.
 * The closed loop's output is parsed by bench/compare.sh: its lines and
 * JSON fields stay as they are; --rate and --protocol only add to them.
 */
#include <inttypes.h>
#include <stdio.h>

#include "kv.h"
#include "kvbench.h"

static const char *dist_name(kvb_dist d)
{
    return d == KVB_DIST_ZIPF ? "zipf" : "uniform";
}

/* errors_by_status names: kv's, plus RESP's and memcached's error replies. */
static const char *status_name(int status)
{
    if (status == KVB_STATUS_RESP_ERROR)
        return "RESP_ERROR";
    if (status == KVB_STATUS_MC_ERROR)
        return "MEMCACHE_ERROR";
    return kv_status_name(status);
}

static double us(uint64_t ns)
{
    return (double)ns / 1000.0;
}

static double pct(uint64_t part, uint64_t whole)
{
    return whole ? 100.0 * (double)part / (double)whole : 0.0;
}

/* --rate: the fields a reader needs to tell whether the rate was met. */
static void rate_json(const kvb_opts *o, const kvb_result *r, double rps)
{
    const kvb_hist *g = &r->send_lag;
    printf("\"rate\":%.1f,\"achieved_pct\":%.2f,\"late\":%" PRIu64
           ",\"backlog\":%" PRIu64 ",\"send_lag_p50_us\":%.2f,\"send_lag_p99_us\":%.2f,"
           "\"send_lag_max_us\":%.2f,",
           o->rate, 100.0 * rps / o->rate, r->late, r->backlog,
           us(kvb_hist_percentile(g, 50.0)), us(kvb_hist_percentile(g, 99.0)), us(g->max));
}

static void rate_text(const kvb_opts *o, const kvb_result *r, double rps, uint64_t total)
{
    const kvb_hist *g = &r->send_lag;
    printf("rate:       %.0f req/s scheduled, %.0f achieved (%.1f %%); %" PRIu64
           " late (%.2f %%), %" PRIu64 " due but never sent\n",
           o->rate, rps, 100.0 * rps / o->rate, r->late, pct(r->late, total), r->backlog);
    printf("send lag us: p50 %.1f  p99 %.1f  max %.1f (due time to write, requests on time)\n",
           us(kvb_hist_percentile(g, 50.0)), us(kvb_hist_percentile(g, 99.0)), us(g->max));
}

void kvb_report(const kvb_run *run, const kvb_result *r, double seconds)
{
    const kvb_opts *o = run->opts;
    const kvb_hist *h = &r->lat;
    uint64_t total = r->gets + r->sets;
    double rps = seconds > 0 ? (double)total / seconds : 0.0;
    double mean = h->count ? (double)h->sum / (double)h->count / 1000.0 : 0.0;
    static const char *const shown[] = {"", " (RESP2)", " (memcache text)"};
    static const char *const miss[] = {"NOT_FOUND", "nil", "END without VALUE"};
    char target[300];
    if (o->unix_path)
        snprintf(target, sizeof target, "unix:%s", o->unix_path);
    else
        snprintf(target, sizeof target, "%s:%d", o->host, o->port);

    if (o->json) {
        printf("{\"target\":\"%s\",\"protocol\":\"%s\",\"connections\":%d,\"threads\":%d,\"pipeline\":%d,"
               "\"ratio\":\"%u:%u\",\"keys\":%" PRIu64 ",\"dist\":\"%s\","
               "\"value_size\":%zu,\"duration_s\":%.3f,\"warmup_s\":%.3f,"
               "\"preloaded\":%" PRIu64 ",",
               target, kvb_protocol_name(o->protocol), o->connections, o->threads, o->pipeline, o->get_ratio, o->set_ratio,
               o->keys, dist_name(o->dist), o->value_size, seconds, o->warmup, r->preloaded);
        printf("\"requests\":%" PRIu64 ",\"gets\":%" PRIu64 ",\"sets\":%" PRIu64
               ",\"rps\":%.1f,\"not_found\":%" PRIu64 ",\"errors\":%" PRIu64
               ",\"conn_errors\":%" PRIu64 ",\"answered\":%" PRIu64 ",",
               total, r->gets, r->sets, rps, r->not_found, r->errors, r->conn_errors,
               r->answered);
        if (o->rate > 0)
            rate_json(o, r, rps);
        printf("\"errors_by_status\":{");
        int first = 1;
        for (int i = 0; i < 64; i++) {
            if (r->errors_by_status[i]) {
                printf("%s\"%s\":%" PRIu64, first ? "" : ",", status_name(i),
                       r->errors_by_status[i]);
                first = 0;
            }
        }
        printf("},\"latency_us\":{\"mean\":%.2f,\"p50\":%.2f,\"p99\":%.2f,\"p999\":%.2f,"
               "\"max\":%.2f}}\n",
               mean, us(kvb_hist_percentile(h, 50.0)), us(kvb_hist_percentile(h, 99.0)),
               us(kvb_hist_percentile(h, 99.9)), us(h->max));
        return;
    }
    printf("kvbench: %s%s, %d connections, %d thread%s, pipeline %d", target,
           shown[o->protocol], o->connections, o->threads, o->threads == 1 ? "" : "s", o->pipeline);
    if (o->rate > 0)
        printf(", open loop at %.0f req/s (latency from each request's due time)", o->rate);
    printf("\n");
    printf("workload: GET:SET %u:%u, %" PRIu64 " keys %s, %zu-byte values, %.1f s (+%.1f s warmup)%s\n",
           o->get_ratio, o->set_ratio, o->keys, dist_name(o->dist), o->value_size, seconds,
           o->warmup, o->preload ? ", preloaded" : "");
    printf("requests:   %" PRIu64 " in %.2f s = %.0f req/s (GET %" PRIu64 ", SET %" PRIu64 ")\n",
           total, seconds, rps, r->gets, r->sets);
    if (o->rate > 0)
        rate_text(o, r, rps, total);
    printf("latency us: p50 %.1f  p99 %.1f  p99.9 %.1f  max %.1f  mean %.1f\n",
           us(kvb_hist_percentile(h, 50.0)), us(kvb_hist_percentile(h, 99.0)),
           us(kvb_hist_percentile(h, 99.9)), us(h->max), mean);
    printf("misses:     %" PRIu64 " GET %s\n", r->not_found, miss[o->protocol]);
    printf("errors:     %" PRIu64, r->errors);
    for (int i = 0; i < 64; i++)
        if (r->errors_by_status[i])
            printf(" %s=%" PRIu64, status_name(i), r->errors_by_status[i]);
    printf(", %" PRIu64 " connection errors\n", r->conn_errors);
}
