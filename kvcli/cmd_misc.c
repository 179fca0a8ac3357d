/*
 * cmd_misc.c - kvcli's server commands: scan, ping, version, metrics.
 *
 * scan walks the server's cursor until it is complete or --limit keys were
 * listed; the order is the store's hash order, not sorted. metrics groups
 * the store's figures (names of kv_metrics in kv.h) and lists whatever
 * else the server reports under "Server", so new server metrics show up
 * without a kvcli change.
 */
#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "kvcli.h"

/* ----------------------------------------------------------------- scan */

enum { SCAN_LIMIT, SCAN_VALUES };
static const kvcli_optdef scan_opts[] = {
    [SCAN_LIMIT] = {"limit", KVCLI_OPT_ARG},
    [SCAN_VALUES] = {"values", KVCLI_OPT_FLAG},
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
    int rc = kvcli_args_parse(argc, argv, scan_opts, 2, &s->cfg, &a);
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
        int st = kv_client_scan_ex(c, prefix, strlen(prefix), cursor, batch,
                                   x.values ? 0 : KV_CLIENT_SCAN_KEYS_ONLY,
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
        kvcli_json_print(json_pack("{s:b,s:f}", "ok", 1, "rtt_ms", ms));
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
        rc = kvcli_usage_err("backup takes one argument, the file to write (see kvcli backup --help)");
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

/* The store's metrics in display order, with their labels. */
static const struct {
    const char *name, *label, *section;
} store_metrics[] = {
    {"keys", "keys stored", "Store"},
    {"key_bytes", "key bytes", "Store"},
    {"value_bytes", "value bytes", "Store"},
    {"memory_bytes", "memory used (approx.)", "Store"},
    {"revision", "revision", "Store"},
    {"gets", "gets", "Operations"},
    {"get_hits", "  hits", "Operations"},
    {"get_misses", "  misses", "Operations"},
    {"sets", "sets", "Operations"},
    {"deletes", "deletes", "Operations"},
    {"cas_failures", "CAS failures", "Operations"},
    {"txn_commits", "txn commits", "Operations"},
    {"txn_conflicts", "txn conflicts", "Operations"},
    {"table_slots", "index slots", "Index"},
    {"table_resizes", "index resizes", "Index"},
};
#define NSTORE (sizeof store_metrics / sizeof store_metrics[0])

static int is_store_metric(const char *name)
{
    for (size_t i = 0; i < NSTORE; i++)
        if (strcmp(store_metrics[i].name, name) == 0)
            return 1;
    return 0;
}

static void print_number(const kv_client_metric *m)
{
    if (m->kind == KV_CLIENT_METRIC_UINT)
        printf("%llu", (unsigned long long)m->u);
    else
        printf("%.3f", m->d);
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
    printf("%*s%-*s ", indent, "", 28 - indent, label);
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

static json_t *metric_json(const kv_client_metric *m)
{
    if (m->kind == KV_CLIENT_METRIC_UINT)
        return m->u > (uint64_t)INT64_MAX ? json_real((double)m->u)
                                          : json_integer((json_int_t)m->u);
    if (m->kind == KV_CLIENT_METRIC_DOUBLE)
        return json_real(m->d);
    json_t *o = json_object();
    for (size_t i = 0; i < m->nchildren; i++)
        json_object_set_new(o, m->children[i].name,
                            metric_json(&m->children[i]));
    return o;
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
        print_line(2, store_metrics[i].label, e);
        if (strcmp(e->name, "keys") == 0) {
            const kv_client_metric *kb =
                kv_client_metrics_find(m, NULL, "key_bytes");
            const kv_client_metric *vb =
                kv_client_metrics_find(m, NULL, "value_bytes");
            if (kb && vb && kb->kind == KV_CLIENT_METRIC_UINT &&
                vb->kind == KV_CLIENT_METRIC_UINT) {
                kv_client_metric sum = {.name = "stored_bytes",
                                        .kind = KV_CLIENT_METRIC_UINT,
                                        .u = kb->u + vb->u};
                print_line(2, "bytes stored (keys+values)", &sum);
            }
        }
    }
    /* The rest is the server's own, sorted for a stable layout. */
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
    for (size_t i = 0; i < nrest; i++) {
        const kv_client_metric *e = rest[i];
        if (e->kind != KV_CLIENT_METRIC_MAP) {
            print_line(2, e->name, e);
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
