/*
 * cmd_misc.c - kvcli's server commands: scan, ping, version, metrics.
 *
 * scan walks the server's cursor until it is complete or --limit keys were
 * listed; the order is the store's hash order, not sorted. metrics groups
 * the store's figures (names of kv_metrics in kv.h) and lists whatever
 * else the server reports under "Server", so new server metrics show up
 * without a kvcli change; every line carries the metric's own snake_case
 * name, floats are rounded, and the latency percentiles make one table
 * in increasing order (p50, p99, p99.9).
 */
#include <errno.h>
#include <fcntl.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "kvcli.h"

/* ----------------------------------------------------------------- scan */

enum { SCAN_LIMIT, SCAN_VALUES, SCAN_REV };
static const kvcli_optdef scan_opts[] = {
    [SCAN_LIMIT] = {"limit", KVCLI_OPT_ARG},
    [SCAN_VALUES] = {"values", KVCLI_OPT_FLAG},
    [SCAN_REV] = {"rev", KVCLI_OPT_ARG},
};

typedef struct scan_ctx {
    kvcli_session *s;
    uint64_t limit; /* 0 = all */
    uint64_t count;
    int values;
    json_t *arr;
} scan_ctx;

static int scan_entry(void *ctx, const void *key, size_t klen,
                      const void *val, size_t vlen, uint64_t version)
{
    scan_ctx *x = ctx;
    if (x->limit && x->count >= x->limit)
        return 1;
    x->count++;
    if (x->arr) {
        json_t *o = json_pack("{s:o,s:I}", "key", kvcli_json_bytes(key, klen),
                              "version", (json_int_t)version);
        if (o && x->values)
            json_object_set_new(o, "value", kvcli_json_bytes(val, vlen));
        json_array_append_new(x->arr, o);
        return 0;
    }
    kvcli_put_escaped(stdout, key, klen);
    if (x->values) {
        fputs(": ", stdout);
        kvcli_put_escaped(stdout, val, vlen);
    }
    fputc('\n', stdout);
    return 0;
}

int kvcli_cmd_scan(kvcli_session *s, int argc, char **argv)
{
    kvcli_args a;
    int rc = kvcli_args_parse(argc, argv, scan_opts, 3, &s->cfg, &a);
    if (rc != 0)
        return rc;
    if (kvcli_maybe_help(s, "scan"))
        goto out;
    scan_ctx x = {.s = s, .values = a.cmd_val[SCAN_VALUES] != NULL};
    if (a.cmd_val[SCAN_LIMIT] &&
        (kvcli_parse_u64(a.cmd_val[SCAN_LIMIT], &x.limit) != 0 ||
         x.limit == 0)) {
        rc = kvcli_usage_err("invalid --limit '%s' (expected a number >= 1)",
                             a.cmd_val[SCAN_LIMIT]);
        goto out;
    }
    uint64_t rev = 0; /* 0: the store as it is */
    if (a.cmd_val[SCAN_REV] && (kvcli_parse_u64(a.cmd_val[SCAN_REV], &rev) != 0 || rev == 0)) {
        rc = kvcli_usage_err("invalid --rev '%s' (expected a revision >= 1)",
                             a.cmd_val[SCAN_REV]);
        goto out;
    }
    if (a.npos > 1) {
        rc = kvcli_usage_err("scan takes at most one PREFIX (try 'kvcli scan"
                             " --help')");
        goto out;
    }
    const char *prefix = a.npos ? a.pos[0] : "";
    kv_client *c = kvcli_connect(s, &rc);
    if (c == NULL)
        goto out;
    if (s->cfg.json)
        x.arr = json_array();
    uint64_t cursor = 0;
    do {
        uint64_t next = 0;
        size_t batch = 0;
        if (x.limit) {
            uint64_t left = x.limit - x.count;
            batch = left < 1000 ? (size_t)left : 1000;
        }
        /* without --values only keys are shown: do not fetch values */
        unsigned flags = x.values ? 0 : KV_CLIENT_SCAN_KEYS_ONLY;
        int st = rev ? kv_client_scan_at(c, prefix, strlen(prefix), rev, cursor, batch, flags,
                                         scan_entry, &x, &next)
                     : kv_client_scan_ex(c, prefix, strlen(prefix), cursor, batch, flags,
                                         scan_entry, &x, &next);
        if (st != KV_OK) {
            rc = kvcli_fail(s, st, "scan");
            break;
        }
        cursor = next;
    } while (cursor != 0 && (x.limit == 0 || x.count < x.limit));
    if (x.arr) {
        if (rc == 0)
            kvcli_json_print(x.arr);
        else
            json_decref(x.arr);
    }
out:
    kvcli_args_free(&a);
    return rc;
}

/* ----------------------------------------------------------------- ping */

static double now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec * 1e3 + (double)ts.tv_nsec / 1e6;
}

int kvcli_cmd_ping(kvcli_session *s, int argc, char **argv)
{
    kvcli_args a;
    int rc = kvcli_args_parse(argc, argv, NULL, 0, &s->cfg, &a);
    if (rc != 0)
        return rc;
    if (kvcli_maybe_help(s, "ping"))
        goto out;
    if (a.npos != 0) {
        rc = kvcli_usage_err("ping takes no arguments");
        goto out;
    }
    kv_client *c = kvcli_connect(s, &rc);
    if (c == NULL)
        goto out;
    double t0 = now_ms();
    int st = kv_client_ping(c);
    double ms = now_ms() - t0;
    if (st != KV_OK)
        rc = kvcli_fail(s, st, "ping");
    else if (s->cfg.json)
        /* to the microsecond: digits below it are the clock's noise */
        kvcli_json_print(json_pack("{s:b,s:f}", "ok", 1, "rtt_ms",
                                   round(ms * 1000.0) / 1000.0));
    else
        printf("PONG (%.3f ms)\n", ms);
out:
    kvcli_args_free(&a);
    return rc;
}

/* ------------------------------------------------------------- snapshot */

int kvcli_cmd_snapshot(kvcli_session *s, int argc, char **argv)
{
    kvcli_args a;
    int rc = kvcli_args_parse(argc, argv, NULL, 0, &s->cfg, &a);
    if (rc != 0)
        return rc;
    if (kvcli_maybe_help(s, "snapshot"))
        goto out;
    if (a.npos != 0) {
        rc = kvcli_usage_err("snapshot takes no arguments");
        goto out;
    }
    kv_client *c = kvcli_connect(s, &rc);
    if (c == NULL)
        goto out;
    uint64_t rev = 0;
    int st = kv_client_snapshot(c, &rev);
    char file[64];
    snprintf(file, sizeof file, "snap-%016llx.kvs", (unsigned long long)rev);
    if (st != KV_OK)
        rc = kvcli_fail(s, st, "snapshot");
    else if (s->cfg.json)
        kvcli_json_print(json_pack("{s:I,s:s}", "revision", (json_int_t)rev, "file", file));
    else
        printf("OK snapshot at revision %llu (%s in the data directory)\n",
               (unsigned long long)rev, file);
out:
    kvcli_args_free(&a);
    return rc;
}

/* --------------------------------------------------------------- backup */

/* Copies the snapshot file into out (already open), chunk by chunk. */
static int copy_snapshot(kvcli_session *s, kv_client *c, uint64_t rev, int out, uint64_t *size)
{
    uint64_t off = 0;
    *size = UINT64_MAX;
    while (off < *size) {
        kv_value v;
        int st = kv_client_snapshot_read(c, rev, off, 0, &v);
        if (st != KV_OK)
            return kvcli_fail(s, st, "backup");
        *size = v.version;
        size_t done = 0;
        while (done < v.len) {
            ssize_t n = write(out, (char *)v.data + done, v.len - done);
            if (n < 0 && errno == EINTR)
                continue;
            if (n <= 0) {
                kvcli_err("backup: cannot write the backup file: %s", strerror(errno));
                kv_client_value_free(&v);
                return KVCLI_EXIT_USAGE;
            }
            done += (size_t)n;
        }
        off += v.len;
        kv_client_value_free(&v);
        if (done == 0 && off < *size) {
            kvcli_err("backup: the server sent no bytes at offset %llu of %llu",
                      (unsigned long long)off, (unsigned long long)*size);
            return KVCLI_EXIT_SERVER;
        }
    }
    return 0;
}

int kvcli_cmd_backup(kvcli_session *s, int argc, char **argv)
{
    kvcli_args a;
    int rc = kvcli_args_parse(argc, argv, NULL, 0, &s->cfg, &a);
    if (rc != 0)
        return rc;
    if (kvcli_maybe_help(s, "backup"))
        goto out;
    if (a.npos != 1) {
        rc = kvcli_usage_err("backup takes one argument, the file to write (try 'kvcli backup --help')");
        goto out;
    }
    const char *file = a.pos[0];
    kv_client *c = kvcli_connect(s, &rc);
    if (c == NULL)
        goto out;
    uint64_t rev = 0;
    int st = kv_client_snapshot(c, &rev);
    if (st != KV_OK) {
        rc = kvcli_fail(s, st, "backup");
        goto out;
    }
    char tmp[4096];
    snprintf(tmp, sizeof tmp, "%s.tmp", file);
    int fd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
    if (fd < 0) {
        kvcli_err("backup: cannot create %s: %s", tmp, strerror(errno));
        rc = KVCLI_EXIT_USAGE;
        goto out;
    }
    uint64_t size = 0;
    rc = copy_snapshot(s, c, rev, fd, &size);
    if (rc == 0 && fsync(fd) != 0) {
        kvcli_err("backup: cannot sync %s: %s", tmp, strerror(errno));
        rc = KVCLI_EXIT_USAGE;
    }
    if (close(fd) != 0 && rc == 0) {
        kvcli_err("backup: cannot write %s: %s", tmp, strerror(errno));
        rc = KVCLI_EXIT_USAGE;
    }
    if (rc == 0 && rename(tmp, file) != 0) {
        kvcli_err("backup: cannot rename %s to %s: %s", tmp, file, strerror(errno));
        rc = KVCLI_EXIT_USAGE;
    }
    if (rc != 0) {
        unlink(tmp);
        goto out;
    }
    if (s->cfg.json)
        kvcli_json_print(json_pack("{s:I,s:s,s:I}", "revision", (json_int_t)rev, "file", file,
                                   "bytes", (json_int_t)size));
    else
        printf("OK backup of revision %llu in %s (%llu bytes)\n", (unsigned long long)rev, file,
               (unsigned long long)size);
out:
    kvcli_args_free(&a);
    return rc;
}

/* -------------------------------------------------------------- version */

int kvcli_cmd_version(kvcli_session *s, int argc, char **argv)
{
    kvcli_args a;
    int rc = kvcli_args_parse(argc, argv, NULL, 0, &s->cfg, &a);
    if (rc != 0)
        return rc;
    if (kvcli_maybe_help(s, "version"))
        goto out;
    if (a.npos != 0) {
        rc = kvcli_usage_err("version takes no arguments");
        goto out;
    }
    /* The server part is optional: no error line, no failing exit code. */
    char why[256] = "";
    kv_client *c = kvcli_try_connect(s, why, sizeof why);
    if (s->cfg.json) {
        json_t *o2 = json_pack("{s:s,s:s}", "client", KV_CLIENT_VERSION_STRING,
                               "library", kv_client_version());
        if (c)
            json_object_set_new(
                o2, "server",
                json_pack("{s:s,s:s,s:i}", "name", kv_client_server_name(c),
                          "version", kv_client_server_version(c), "protocol",
                          kv_client_protocol_version(c)));
        else
            json_object_set_new(o2, "server", json_null());
        kvcli_json_print(o2);
    } else {
        printf("kvcli %s (libkvclient %s)\n", KV_CLIENT_VERSION_STRING,
               kv_client_version());
        if (c)
            printf("server: %s %s (protocol %d)\n", kv_client_server_name(c),
                   kv_client_server_version(c), kv_client_protocol_version(c));
        else
            printf("server: not reachable (%s)\n", why);
    }
out:
    kvcli_args_free(&a);
    return rc;
}

/* -------------------------------------------------------------- metrics */

/* The store's metrics (kv_metrics in kv.h) in display order. Every line
 * is named as the metric is (snake_case, as in --json), so what is read
 * here can be found there. */
static const struct {
    const char *name, *section;
} store_metrics[] = {
    {"keys", "Store"},
    {"key_bytes", "Store"},
    {"value_bytes", "Store"},
    {"memory_bytes", "Store"},
    {"memory_used", "Store"},
    {"max_memory", "Store"},
    {"evicted_keys", "Store"},
    {"revision", "Store"},
    {"history_versions", "Store"},
    {"history_bytes", "Store"},
    {"compact_revision", "Store"},
    {"gets", "Operations"},
    {"get_hits", "Operations"},
    {"get_misses", "Operations"},
    {"sets", "Operations"},
    {"deletes", "Operations"},
    {"cas_failures", "Operations"},
    {"txn_commits", "Operations"},
    {"txn_conflicts", "Operations"},
    {"table_slots", "Index"},
    {"table_resizes", "Index"},
};
#define NSTORE (sizeof store_metrics / sizeof store_metrics[0])

#define LABEL_WIDTH 28

static int is_store_metric(const char *name)
{
    for (size_t i = 0; i < NSTORE; i++)
        if (strcmp(store_metrics[i].name, name) == 0)
            return 1;
    return 0;
}

/* Rounded: the server's floats are microseconds, to one decimal. */
static void print_number(const kv_client_metric *m)
{
    if (m->kind == KV_CLIENT_METRIC_UINT)
        printf("%llu", (unsigned long long)m->u);
    else
        printf("%.1f", m->d);
}

/* "12.5 MiB" for byte counts, to read at a glance. */
static void human_bytes(uint64_t b, char *out, size_t n)
{
    const char *u[] = {"B", "KiB", "MiB", "GiB", "TiB"};
    double v = (double)b;
    int i = 0;
    while (v >= 1024 && i < 4)
        v /= 1024, i++;
    if (i == 0)
        snprintf(out, n, "%llu B", (unsigned long long)b);
    else
        snprintf(out, n, "%.1f %s", v, u[i]);
}

static void print_line(int indent, const char *label,
                       const kv_client_metric *m)
{
    printf("%*s%-*s ", indent, "", LABEL_WIDTH - indent, label);
    print_number(m);
    size_t nl = strlen(m->name);
    if (m->kind == KV_CLIENT_METRIC_UINT && m->u >= 1024 && nl > 6 &&
        strcmp(m->name + nl - 6, "_bytes") == 0) {
        char h[32];
        human_bytes(m->u, h, sizeof h);
        printf(" (%s)", h);
    }
    fputc('\n', stdout);
}

/* --json: the server's map, floats rounded to 0.001 (nanoseconds for the
 * latencies) so no float noise like 3.8399999141693115 shows. */
static json_t *metric_json(const kv_client_metric *m)
{
    if (m->kind == KV_CLIENT_METRIC_UINT)
        return m->u > (uint64_t)INT64_MAX ? json_real((double)m->u)
                                          : json_integer((json_int_t)m->u);
    if (m->kind == KV_CLIENT_METRIC_DOUBLE)
        return json_real(round(m->d * 1000.0) / 1000.0);
    json_t *o = json_object();
    for (size_t i = 0; i < m->nchildren; i++)
        json_object_set_new(o, m->children[i].name,
                            metric_json(&m->children[i]));
    return o;
}

/* The server's latency maps are latency_p<digits>_us: "p50", "p99",
 * "p999" (99.9), "p9999" (99.99). Returns the percentile, or -1 if name
 * is not such a map; *label receives "p50", "p99.9", ... */
static double latency_percentile(const char *name, char *label, size_t n)
{
    const char *d = name + strlen("latency_p");
    size_t nd = strspn(d, "0123456789");
    if (strncmp(name, "latency_p", 9) != 0 || nd < 2 || nd > 8 ||
        strcmp(d + nd, "_us") != 0)
        return -1;
    double v = 0, scale = 1;
    for (size_t i = 0; i < nd; i++) {
        if (i < 2) {
            v = v * 10 + (d[i] - '0');
        } else {
            scale /= 10;
            v += (d[i] - '0') * scale;
        }
    }
    snprintf(label, n, "p%.2s%s%.*s", d, nd > 2 ? "." : "", (int)(nd - 2),
             d + 2);
    return v;
}

typedef struct latency_col {
    const kv_client_metric *map;
    double pct;
    char label[16];
} latency_col;

static int cmp_col(const void *a, const void *b)
{
    const latency_col *x = a, *y = b;
    return (x->pct > y->pct) - (x->pct < y->pct);
}

/* The latency maps as one table, percentiles in increasing order:
 *   latency_us                   p50     p99   p99.9
 *     get                        3.8     3.8     3.8
 * Rows are the ops of the first map, in the server's order. */
static void print_latency(const kv_client_metrics *m)
{
    latency_col cols[8];
    size_t ncols = 0;
    for (size_t i = 0; i < m->n && ncols < 8; i++) {
        const kv_client_metric *e = &m->items[i];
        latency_col c = {.map = e};
        if (e->kind == KV_CLIENT_METRIC_MAP &&
            (c.pct = latency_percentile(e->name, c.label, sizeof c.label)) >= 0)
            cols[ncols++] = c;
    }
    if (ncols == 0)
        return;
    qsort(cols, ncols, sizeof cols[0], cmp_col);
    printf("  %-*s", LABEL_WIDTH - 2, "latency_us");
    for (size_t c = 0; c < ncols; c++)
        printf(" %9s", cols[c].label);
    fputc('\n', stdout);
    const kv_client_metric *rows = cols[0].map;
    for (size_t r = 0; r < rows->nchildren; r++) {
        const char *op = rows->children[r].name;
        printf("    %-*s", LABEL_WIDTH - 4, op);
        for (size_t c = 0; c < ncols; c++) {
            const kv_client_metric *v = kv_client_metrics_find(m, cols[c].map->name, op);
            if (v == NULL || v->kind == KV_CLIENT_METRIC_MAP)
                printf(" %9s", "-");
            else if (v->kind == KV_CLIENT_METRIC_UINT)
                printf(" %9llu", (unsigned long long)v->u);
            else
                printf(" %9.1f", v->d);
        }
        fputc('\n', stdout);
    }
}

static int cmp_metric(const void *a, const void *b)
{
    const kv_client_metric *x = *(const kv_client_metric *const *)a;
    const kv_client_metric *y = *(const kv_client_metric *const *)b;
    return strcmp(x->name, y->name);
}

static void print_metrics(const kv_client_metrics *m)
{
    const char *section = NULL;
    for (size_t i = 0; i < NSTORE; i++) {
        const kv_client_metric *e =
            kv_client_metrics_find(m, NULL, store_metrics[i].name);
        if (e == NULL || e->kind == KV_CLIENT_METRIC_MAP)
            continue;
        if (section == NULL || strcmp(section, store_metrics[i].section)) {
            section = store_metrics[i].section;
            printf("%s%s\n", i ? "\n" : "", section);
        }
        print_line(2, e->name, e);
    }
    /* The rest is the server's own, sorted for a stable layout; the
     * latency maps make one table where the first of them sorts. */
    const kv_client_metric **rest = calloc(m->n + 1, sizeof *rest);
    size_t nrest = 0;
    if (rest == NULL)
        return;
    for (size_t i = 0; i < m->n; i++)
        if (!is_store_metric(m->items[i].name) ||
            m->items[i].kind == KV_CLIENT_METRIC_MAP)
            rest[nrest++] = &m->items[i];
    qsort(rest, nrest, sizeof *rest, cmp_metric);
    if (nrest)
        printf("%sServer\n", section ? "\n" : "");
    int latency_done = 0;
    for (size_t i = 0; i < nrest; i++) {
        const kv_client_metric *e = rest[i];
        char label[16];
        if (e->kind != KV_CLIENT_METRIC_MAP) {
            print_line(2, e->name, e);
            continue;
        }
        if (latency_percentile(e->name, label, sizeof label) >= 0) {
            if (!latency_done)
                print_latency(m);
            latency_done = 1;
            continue;
        }
        printf("  %s\n", e->name);
        for (size_t k = 0; k < e->nchildren; k++)
            print_line(4, e->children[k].name, &e->children[k]);
    }
    free(rest);
}

int kvcli_cmd_metrics(kvcli_session *s, int argc, char **argv)
{
    kvcli_args a;
    int rc = kvcli_args_parse(argc, argv, NULL, 0, &s->cfg, &a);
    if (rc != 0)
        return rc;
    if (kvcli_maybe_help(s, "metrics"))
        goto out;
    if (a.npos != 0) {
        rc = kvcli_usage_err("metrics takes no arguments");
        goto out;
    }
    kv_client *c = kvcli_connect(s, &rc);
    if (c == NULL)
        goto out;
    kv_client_metrics m;
    int st = kv_client_metrics_get(c, &m);
    if (st != KV_OK) {
        rc = kvcli_fail(s, st, "metrics");
        goto out;
    }
    if (s->cfg.json) {
        json_t *o = json_object();
        for (size_t i = 0; i < m.n; i++)
            json_object_set_new(o, m.items[i].name, metric_json(&m.items[i]));
        kvcli_json_print(o);
    } else {
        print_metrics(&m);
    }
    kv_client_metrics_free(&m);
out:
    kvcli_args_free(&a);
    return rc;
}
