/*
 * cmd_cluster.c - kvcli cluster: a kvd cluster's members and their state
 * (status), and membership changes (add, remove, transfer), through the
 * CLUSTER operation (docs/replication.md). Changes go to the leader (the
 * client library follows it) and return once committed.
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "kvcli.h"

static int parse_id(const char *s, uint64_t *id)
{
    char *end;
    errno = 0;
    unsigned long long v = strtoull(s, &end, 10);
    if (errno || *end || !*s || v > 1024 || s[0] == '-')
        return -1;
    *id = v;
    return 0;
}

static void print_status(const char *text)
{
    json_error_t err;
    json_t *j = json_loads(text, 0, &err);
    if (!j) {
        printf("%s\n", text);
        return;
    }
    printf("node %lld: %s, term %lld, leader %lld; commit index %lld, applied %lld\n",
           (long long)json_integer_value(json_object_get(j, "node")),
           json_string_value(json_object_get(j, "role")),
           (long long)json_integer_value(json_object_get(j, "term")),
           (long long)json_integer_value(json_object_get(j, "leader")),
           (long long)json_integer_value(json_object_get(j, "commit_index")),
           (long long)json_integer_value(json_object_get(j, "applied_index")));
    if (json_object_get(j, "apply_lag")) /* newer kvd */
        printf("apply lag %lld; snapshots: %lld taken (the last %lld bytes), %lld installed; "
               "%lld retried writes not applied again\n",
               (long long)json_integer_value(json_object_get(j, "apply_lag")),
               (long long)json_integer_value(json_object_get(j, "snapshots")),
               (long long)json_integer_value(json_object_get(j, "snapshot_bytes")),
               (long long)json_integer_value(json_object_get(j, "snapshots_installed")),
               (long long)json_integer_value(json_object_get(j, "duplicates")));
    printf("%-4s %-9s %-22s %-22s %-8s %s\n", "ID", "ROLE", "RAFT", "CLIENTS", "MATCH", "LAG");
    size_t i;
    json_t *n;
    json_array_foreach(json_object_get(j, "nodes"), i, n)
    {
        json_t *client = json_object_get(n, "client"), *match = json_object_get(n, "match_index"),
               *lag = json_object_get(n, "lag");
        char m[24] = "-", l[24] = "-";
        if (json_is_integer(match))
            snprintf(m, sizeof m, "%lld", (long long)json_integer_value(match));
        if (json_is_integer(lag))
            snprintf(l, sizeof l, "%lld", (long long)json_integer_value(lag));
        printf("%-4lld %-9s %-22s %-22s %-8s %s\n",
               (long long)json_integer_value(json_object_get(n, "id")),
               json_string_value(json_object_get(n, "role")),
               json_string_value(json_object_get(n, "raft")),
               json_is_string(client) ? json_string_value(client) : "?", m, l);
    }
    json_decref(j);
}

int kvcli_cmd_cluster(kvcli_session *s, int argc, char **argv)
{
    kvcli_args a;
    int rc = kvcli_args_parse(argc, argv, NULL, 0, &s->cfg, &a);
    if (rc != 0)
        return rc;
    if (kvcli_maybe_help(s, "cluster"))
        goto out;
    const char *sub = a.npos ? a.pos[0] : "status";
    uint64_t id = 0;
    const char *addr = NULL;
    int want = !strcmp(sub, "status") ? 0 : !strcmp(sub, "add") ? 2
               : !strcmp(sub, "remove") ? 1 : !strcmp(sub, "transfer") ? -1 : -2;
    if (want == -2) {
        rc = kvcli_usage_err("unknown cluster subcommand '%s' (status, add ID HOST:PORT, "
                             "remove ID, transfer [ID])", sub);
        goto out;
    }
    int given = a.npos ? a.npos - 1 : 0;
    if ((want >= 0 && given != want) || (want == -1 && given > 1)) {
        rc = kvcli_usage_err("usage: kvcli cluster %s%s", sub,
                             want == 2 ? " ID HOST:PORT" : want == 1 ? " ID"
                             : want == -1 ? " [ID]" : "");
        goto out;
    }
    if (given >= 1 && parse_id(a.pos[1], &id) != 0) {
        rc = kvcli_usage_err("node id '%s' is not a number 1..1024", a.pos[1]);
        goto out;
    }
    if (given == 2)
        addr = a.pos[2];
    kv_client *c = kvcli_connect(s, &rc);
    if (c == NULL)
        goto out;
    char *json = NULL;
    int st = kv_client_cluster(c, sub, id, addr, &json);
    if (st != KV_OK) {
        rc = kvcli_fail(s, st, "cluster");
    } else if (!strcmp(sub, "status")) {
        if (s->cfg.json) {
            json_error_t err;
            json_t *j = json ? json_loads(json, 0, &err) : NULL;
            kvcli_json_print(j ? j : json_pack("{s:s}", "status", json ? json : ""));
        } else {
            print_status(json ? json : "");
        }
    } else if (s->cfg.json) {
        kvcli_json_print(json_pack("{s:s,s:I}", "done", sub, "node", (json_int_t)id));
    } else {
        printf("OK %s%s%s\n", sub, id ? " node " : "", id ? a.pos[1] : "");
    }
    free(json);
out:
    kvcli_args_free(&a);
    return rc;
}
