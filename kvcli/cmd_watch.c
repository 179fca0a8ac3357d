/*
 * cmd_watch.c - kvcli watch: follow the changes of a key or a prefix.
 *
 *   watch KEY|PREFIX [--prefix] [--from-rev N] [--count N]
 *
 * One line per change of a key, as it comes: "REV PUT key value" or
 * "REV DEL key" (with --json one JSON object a line). It runs until
 * Ctrl-C (exit 0), or --count events. When the server's history no longer
 * has events the watch missed, it says so on stderr, naming the revision
 * to resume from with --from-rev, and exits KVCLI_EXIT_LOST: events are
 * never skipped silently.
 */
#include <signal.h>
#include <stdlib.h>
#include <string.h>

#include "kvcli.h"

/* The wait for events is cut into slices so a Ctrl-C that lands just
 * before a wait is seen within one. */
#define SLICE_MS 500

static volatile sig_atomic_t interrupted;

static void on_sigint(int sig)
{
    (void)sig;
    interrupted = 1;
}

enum { W_PREFIX, W_FROM, W_COUNT };
static const kvcli_optdef watch_opts[] = {
    [W_PREFIX] = {"prefix", KVCLI_OPT_FLAG},
    [W_FROM] = {"from-rev", KVCLI_OPT_ARG},
    [W_COUNT] = {"count", KVCLI_OPT_ARG},
};

static void print_json(const kv_event *e)
{
    json_t *o = json_pack("{s:I,s:s,s:o}", "revision", (json_int_t)e->revision, "type",
                          e->deleted ? "DEL" : "PUT", "key", kvcli_json_bytes(e->key, e->klen));
    if (!o)
        return;
    if (!e->deleted) {
        json_object_set_new(o, "value", kvcli_json_bytes(e->value, e->vlen));
        json_object_set_new(o, "version", json_integer((json_int_t)e->version));
        json_object_set_new(o, "create_revision", json_integer((json_int_t)e->create_revision));
        if (e->expire_at_ms)
            json_object_set_new(o, "expire_at_ms", json_integer((json_int_t)e->expire_at_ms));
    }
    json_dumpf(o, stdout, JSON_COMPACT);
    fputc('\n', stdout);
    json_decref(o);
}

static void print_line(const kv_event *e)
{
    printf("%llu %s ", (unsigned long long)e->revision, e->deleted ? "DEL" : "PUT");
    kvcli_put_escaped(stdout, e->key, e->klen);
    if (!e->deleted) {
        fputc(' ', stdout);
        kvcli_put_escaped(stdout, e->value, e->vlen);
    }
    fputc('\n', stdout);
}

/* Follows w until Ctrl-C, count events (0: no bound) or an error. */
static int follow(kvcli_session *s, kv_client_watch *w, uint64_t count)
{
    uint64_t seen = 0;
    while (!interrupted) {
        kv_event *ev = NULL;
        size_t n = 0;
        int st = kv_client_watch_next(w, &ev, &n, SLICE_MS);
        if (st == KV_COMPACTED) {
            kvcli_err("watch: events lost: the server's history no longer has them; resume "
                      "with --from-rev %llu",
                      (unsigned long long)kv_client_watch_revision(w));
            return KVCLI_EXIT_LOST;
        }
        if (st != KV_OK)
            return kvcli_fail(s, st, "watch");
        for (size_t i = 0; i < n && (count == 0 || seen < count); i++, seen++) {
            if (s->cfg.json)
                print_json(&ev[i]);
            else
                print_line(&ev[i]);
        }
        kv_client_events_free(ev, n);
        fflush(stdout);
        if (count && seen >= count)
            break;
    }
    return KVCLI_EXIT_OK;
}

int kvcli_cmd_watch(kvcli_session *s, int argc, char **argv)
{
    kvcli_args a;
    int rc = kvcli_args_parse(argc, argv, watch_opts, 3, &s->cfg, &a);
    if (rc != 0)
        return rc;
    if (kvcli_maybe_help(s, "watch"))
        goto out;
    uint64_t from = 0, count = 0;
    int prefix = a.cmd_val[W_PREFIX] != NULL;
    if (a.cmd_val[W_FROM] && kvcli_parse_u64(a.cmd_val[W_FROM], &from) != 0) {
        rc = kvcli_usage_err("invalid --from-rev '%s' (expected a revision)", a.cmd_val[W_FROM]);
        goto out;
    }
    if (a.cmd_val[W_COUNT] &&
        (kvcli_parse_u64(a.cmd_val[W_COUNT], &count) != 0 || count == 0)) {
        rc = kvcli_usage_err("invalid --count '%s' (expected a number >= 1)", a.cmd_val[W_COUNT]);
        goto out;
    }
    if (a.npos > 1 || (a.npos == 0 && !prefix) || (a.npos == 1 && !prefix && !a.pos[0][0])) {
        rc = kvcli_usage_err("watch needs one KEY, or a PREFIX with --prefix (try 'kvcli "
                             "watch --help')");
        goto out;
    }
    const char *key = a.npos ? a.pos[0] : "";
    kv_client *c = kvcli_connect(s, &rc);
    if (c == NULL)
        goto out;
    kv_client_watch *w = NULL;
    int st = kv_client_watch_open(c, key, strlen(key), prefix, from, 0, &w);
    if (st != KV_OK) {
        rc = kvcli_fail(s, st, "watch");
        goto out;
    }
    struct sigaction sa, old;
    memset(&sa, 0, sizeof sa);
    sa.sa_handler = on_sigint; /* no SA_RESTART: the wait returns at once */
    sigemptyset(&sa.sa_mask);
    interrupted = 0;
    sigaction(SIGINT, &sa, &old);
    rc = follow(s, w, count);
    sigaction(SIGINT, &old, NULL);
    kv_client_watch_close(w);
out:
    kvcli_args_free(&a);
    return rc;
}
