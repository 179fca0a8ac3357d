/*
 * cmd_history.c - kvcli's history commands (kvd --history on):
 *
 *   history KEY [--limit N] [--min-rev N] [--max-rev N]
 *                            the key's changes, newest first, one a line
 *   rollback KEY... --to-rev N [--if-unchanged-since M]
 *   rollback --prefix P --to-rev N [--if-unchanged-since M]
 *                            the keys back to revision N, as ONE new change
 *   compact REV              drop the history older than revision REV
 *
 * get --rev and scan --rev live with get and scan. A revision that is
 * compacted or not reached yet exits 5 with the server's message, which
 * names the oldest or the latest revision there is.
 */
#include <stdlib.h>
#include <string.h>

#include "kvcli.h"

/* A revision option: 0 when absent, else >= 1; -1 after a usage error. */
static int rev_opt(const char *name, const char *val, int zero_ok, uint64_t *out)
{
    *out = 0;
    if (!val)
        return 0;
    if (kvcli_parse_u64(val, out) != 0 || (!zero_ok && *out == 0)) {
        kvcli_usage_err("invalid --%s '%s' (expected a revision >= %d)", name, val,
                        zero_ok ? 0 : 1);
        return -1;
    }
    return 0;
}

/* -------------------------------------------------------------- history */

enum { HIST_LIMIT, HIST_MIN, HIST_MAX };
static const kvcli_optdef history_opts[] = {
    [HIST_LIMIT] = {"limit", KVCLI_OPT_ARG},
    [HIST_MIN] = {"min-rev", KVCLI_OPT_ARG},
    [HIST_MAX] = {"max-rev", KVCLI_OPT_ARG},
};

static json_t *event_json(const kv_event *e)
{
    json_t *o = json_pack("{s:I,s:b}", "revision", (json_int_t)e->revision, "deleted",
                          e->deleted);
    if (o && !e->deleted) {
        json_object_set_new(o, "value", kvcli_json_bytes(e->value, e->vlen));
        json_object_set_new(o, "create_revision", json_integer((json_int_t)e->create_revision));
        json_object_set_new(o, "version", json_integer((json_int_t)e->version));
        json_object_set_new(o, "expire_at_ms", json_integer((json_int_t)e->expire_at_ms));
    }
    return o;
}

int kvcli_cmd_history(kvcli_session *s, int argc, char **argv)
{
    kvcli_args a;
    int rc = kvcli_args_parse(argc, argv, history_opts, 3, &s->cfg, &a);
    if (rc != 0)
        return rc;
    if (kvcli_maybe_help(s, "history"))
        goto out;
    uint64_t limit = 0, min_rev, max_rev;
    if (a.cmd_val[HIST_LIMIT] &&
        (kvcli_parse_u64(a.cmd_val[HIST_LIMIT], &limit) != 0 || limit == 0 || limit > 10000)) {
        rc = kvcli_usage_err("invalid --limit '%s' (expected 1..10000)", a.cmd_val[HIST_LIMIT]);
        goto out;
    }
    if (rev_opt("min-rev", a.cmd_val[HIST_MIN], 0, &min_rev) ||
        rev_opt("max-rev", a.cmd_val[HIST_MAX], 0, &max_rev)) {
        rc = KVCLI_EXIT_USAGE;
        goto out;
    }
    if (a.npos != 1 || a.pos[0][0] == '\0') {
        rc = kvcli_usage_err("history needs exactly one KEY (try 'kvcli history --help')");
        goto out;
    }
    if (max_rev && min_rev > max_rev) {
        rc = kvcli_usage_err("history: --min-rev is above --max-rev");
        goto out;
    }
    kv_client *c = kvcli_connect(s, &rc);
    if (c == NULL)
        goto out;
    const char *key = a.pos[0];
    kv_event *ev = NULL;
    size_t n = 0;
    uint64_t compact_rev = 0;
    int st = kv_client_history(c, key, strlen(key), min_rev, max_rev, (size_t)limit, &ev, &n,
                               &compact_rev);
    if (st != KV_OK) {
        rc = kvcli_fail(s, st, "history");
        goto out;
    }
    if (s->cfg.json) {
        json_t *arr = json_array();
        for (size_t i = 0; i < n; i++)
            json_array_append_new(arr, event_json(&ev[i]));
        kvcli_json_print(json_pack("{s:o,s:I,s:o}", "key", kvcli_json_bytes(key, strlen(key)),
                                   "compact_revision", (json_int_t)compact_rev, "events", arr));
    } else {
        for (size_t i = 0; i < n; i++) {
            printf("%llu ", (unsigned long long)ev[i].revision);
            if (ev[i].deleted) {
                fputs("(deleted)\n", stdout);
                continue;
            }
            kvcli_put_escaped(stdout, ev[i].value, ev[i].vlen);
            printf("  (version %llu, created at %llu", (unsigned long long)ev[i].version,
                   (unsigned long long)ev[i].create_revision);
            if (ev[i].expire_at_ms)
                printf(", expires at %llu ms", (unsigned long long)ev[i].expire_at_ms);
            fputs(")\n", stdout);
        }
        if (n == 0)
            fputs("(no changes kept in that range)\n", stdout);
    }
    kv_client_events_free(ev, n);
out:
    kvcli_args_free(&a);
    return rc;
}

/* ------------------------------------------------------------- rollback */

enum { RB_TO, RB_SINCE, RB_PREFIX };
static const kvcli_optdef rollback_opts[] = {
    [RB_TO] = {"to-rev", KVCLI_OPT_ARG},
    [RB_SINCE] = {"if-unchanged-since", KVCLI_OPT_ARG},
    [RB_PREFIX] = {"prefix", KVCLI_OPT_ARG},
};

int kvcli_cmd_rollback(kvcli_session *s, int argc, char **argv)
{
    kvcli_args a;
    kv_key *keys = NULL;
    int rc = kvcli_args_parse(argc, argv, rollback_opts, 3, &s->cfg, &a);
    if (rc != 0)
        return rc;
    if (kvcli_maybe_help(s, "rollback"))
        goto out;
    uint64_t to_rev, since;
    const char *prefix = a.cmd_val[RB_PREFIX];
    if (!a.cmd_val[RB_TO]) {
        rc = kvcli_usage_err("rollback needs --to-rev N (try 'kvcli rollback --help')");
        goto out;
    }
    if (rev_opt("to-rev", a.cmd_val[RB_TO], 0, &to_rev) ||
        rev_opt("if-unchanged-since", a.cmd_val[RB_SINCE], 0, &since)) {
        rc = KVCLI_EXIT_USAGE;
        goto out;
    }
    if (to_rev == 0) {
        rc = kvcli_usage_err("invalid --to-rev '0' (expected a revision >= 1)");
        goto out;
    }
    if ((prefix != NULL) == (a.npos > 0)) {
        rc = kvcli_usage_err("rollback takes KEYs or --prefix P (one of them; try 'kvcli "
                             "rollback --help')");
        goto out;
    }
    for (int i = 0; i < a.npos; i++)
        if (a.pos[i][0] == '\0') {
            rc = kvcli_usage_err("rollback: a key cannot be empty");
            goto out;
        }
    kv_client *c = kvcli_connect(s, &rc);
    if (c == NULL)
        goto out;
    uint64_t version = 0;
    size_t changed = 0;
    int st;
    if (prefix) {
        st = kv_client_rollback_prefix(c, prefix, strlen(prefix), to_rev, since, &version,
                                       &changed);
    } else {
        keys = calloc((size_t)a.npos, sizeof *keys);
        if (keys == NULL) {
            kvcli_err("out of memory");
            rc = KVCLI_EXIT_SERVER;
            goto out;
        }
        for (int i = 0; i < a.npos; i++)
            keys[i] = (kv_key){a.pos[i], strlen(a.pos[i])};
        st = kv_client_rollback(c, keys, (size_t)a.npos, to_rev, since, &version, &changed);
    }
    if (st == KV_VERSION_MISMATCH) {
        if (s->cfg.json)
            kvcli_json_print(json_pack("{s:b,s:s}", "ok", 0, "error", "changed_since"));
        kvcli_err("rollback: a key changed after revision %llu; nothing was changed",
                  (unsigned long long)since);
        rc = KVCLI_EXIT_NEGATIVE;
        goto out;
    }
    if (st != KV_OK) {
        rc = kvcli_fail(s, st, "rollback (nothing was changed)");
        goto out;
    }
    if (s->cfg.json)
        kvcli_json_print(json_pack("{s:b,s:I,s:I}", "ok", 1, "changed", (json_int_t)changed,
                                   "version", (json_int_t)version));
    else if (changed == 0)
        printf("OK, nothing to change: already as at revision %llu\n",
               (unsigned long long)to_rev);
    else
        printf("OK, %zu key%s restored to revision %llu (version %llu)\n", changed,
               changed == 1 ? "" : "s", (unsigned long long)to_rev,
               (unsigned long long)version);
out:
    free(keys);
    kvcli_args_free(&a);
    return rc;
}

/* -------------------------------------------------------------- compact */

int kvcli_cmd_compact(kvcli_session *s, int argc, char **argv)
{
    kvcli_args a;
    int rc = kvcli_args_parse(argc, argv, NULL, 0, &s->cfg, &a);
    if (rc != 0)
        return rc;
    if (kvcli_maybe_help(s, "compact"))
        goto out;
    uint64_t rev = 0;
    if (a.npos != 1 || kvcli_parse_u64(a.pos[0], &rev) != 0 || rev == 0) {
        rc = kvcli_usage_err("compact needs one REVISION >= 1 (try 'kvcli compact --help')");
        goto out;
    }
    kv_client *c = kvcli_connect(s, &rc);
    if (c == NULL)
        goto out;
    uint64_t now = 0;
    int st = kv_client_compact(c, rev, &now);
    if (st != KV_OK) {
        rc = kvcli_fail(s, st, "compact");
        goto out;
    }
    if (s->cfg.json)
        kvcli_json_print(json_pack("{s:b,s:I}", "ok", 1, "compact_revision", (json_int_t)now));
    else
        printf("OK, history before revision %llu dropped\n", (unsigned long long)now);
out:
    kvcli_args_free(&a);
    return rc;
}
