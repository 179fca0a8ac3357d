/*
 * client.c - a short tour of libkvclient against a running kvd.
 *
 *   client [host [port]]        default 127.0.0.1 7379
 *
 * Connects, then: SET and GET one key, compare-and-swap it, MSET and MGET
 * several keys, a conditional transaction (etcd-style: "if the key still
 * has the version we read, update it and read it back"), and a pipeline of
 * many SETs sent in one write. Exits 0 on success, 1 on any failure, with
 * the client's own message (kv_client_last_error) on stderr.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "kv_client.h"

static int fail(kv_client *c, const char *what, int rc)
{
    fprintf(stderr, "%s: %s (%s)\n", what, kv_client_last_error(c),
            kv_client_status_name(rc));
    kv_client_close(c);
    return 1;
}

int main(int argc, char **argv)
{
    kv_client_options opts;
    kv_client_options_init(&opts);
    if (argc > 1)
        opts.host = argv[1];
    if (argc > 2)
        opts.port = (uint16_t)atoi(argv[2]);
    opts.io_timeout_ms = 5000;
    if (getenv("KVD_PASSWORD"))
        opts.password = getenv("KVD_PASSWORD");

    kv_client *c = NULL;
    int rc = kv_client_open(&opts, &c);
    if (rc != KV_OK) {
        if (c == NULL) {
            fprintf(stderr, "client: %s\n", kv_client_strerror(rc));
            return 1;
        }
        return fail(c, "connect", rc);
    }
    printf("connected to %s %s (protocol %d)\n", kv_client_server_name(c),
           kv_client_server_version(c), kv_client_protocol_version(c));

    /* SET and GET: values are bytes; the version is the change's revision */
    uint64_t version = 0;
    if ((rc = kv_client_set(c, "greeting", 8, "hello", 5, &version)))
        return fail(c, "set", rc);
    kv_value v = {0};
    if ((rc = kv_client_get(c, "greeting", 8, &v)))
        return fail(c, "get", rc);
    printf("greeting = %.*s (version %llu)\n", (int)v.len, (char *)v.data,
           (unsigned long long)v.version);
    kv_client_value_free(&v);

    /* compare-and-swap: succeeds only against the version we saw */
    rc = kv_client_set_if(c, "greeting", 8, "hi", 2, version, &version);
    if (rc != KV_OK)
        return fail(c, "set_if", rc);
    rc = kv_client_set_if(c, "greeting", 8, "stale", 5, version - 1, NULL);
    printf("stale compare-and-swap: %s\n", kv_client_status_name(rc));
    if (rc != KV_VERSION_MISMATCH)
        return fail(c, "set_if (stale)", rc);

    /* MSET is atomic; MGET reads one consistent snapshot */
    kv_pair pairs[3] = {{"fruit:1", 7, "apple", 5},
                        {"fruit:2", 7, "banana", 6},
                        {"fruit:3", 7, "cherry", 6}};
    if ((rc = kv_client_mset(c, pairs, 3, NULL)))
        return fail(c, "mset", rc);
    kv_key keys[4] = {{"fruit:1", 7}, {"fruit:2", 7}, {"fruit:9", 7},
                      {"fruit:3", 7}};
    kv_value vals[4];
    if ((rc = kv_client_mget(c, keys, 4, vals)))
        return fail(c, "mget", rc);
    for (int i = 0; i < 4; i++) {
        if (vals[i].data)
            printf("%.*s = %.*s\n", (int)keys[i].len, (const char *)keys[i].data,
                   (int)vals[i].len, (char *)vals[i].data);
        else
            printf("%.*s is missing\n", (int)keys[i].len,
                   (const char *)keys[i].data);
    }
    kv_client_values_free(vals, 4);

    /* a conditional transaction: if greeting is unchanged, update it and
     * read it back, otherwise just read it */
    kv_compare cmp = {.kind = KV_CMP_VERSION_EQ, .key = "greeting",
                      .klen = 8, .version = version};
    kv_op then_ops[2] = {{KV_OP_SET, "greeting", 8, "bonjour", 7, 0},
                         {KV_OP_GET, "greeting", 8, NULL, 0, 0}};
    kv_op else_ops[1] = {{KV_OP_GET, "greeting", 8, NULL, 0, 0}};
    kv_txn_result tr;
    if ((rc = kv_client_txn(c, &cmp, 1, then_ops, 2, else_ops, 1, &tr)))
        return fail(c, "txn", rc);
    const kv_value *last = &tr.results[tr.nresults - 1].value;
    printf("txn %s at revision %llu: greeting = %.*s\n",
           tr.succeeded ? "committed" : "took the else branch",
           (unsigned long long)tr.version, (int)last->len,
           (char *)last->data);
    kv_client_txn_result_free(&tr);

    /* a pipeline: 100 SETs in one write, then every reply */
    kv_client_pipeline *p = NULL;
    if ((rc = kv_client_pipeline_new(c, &p)))
        return fail(c, "pipeline", rc);
    char key[32];
    for (int i = 0; i < 100; i++) {
        int n = snprintf(key, sizeof key, "counter:%d", i);
        kv_client_pipeline_set(p, key, (size_t)n, key, (size_t)n);
    }
    if ((rc = kv_client_pipeline_exec(p))) {
        kv_client_pipeline_free(p);
        return fail(c, "pipeline exec", rc);
    }
    size_t ok = 0;
    for (size_t i = 0; i < kv_client_pipeline_replies(p); i++)
        ok += kv_client_pipeline_reply(p, i)->status == KV_OK;
    printf("pipeline: %zu of 100 sets succeeded\n", ok);
    kv_client_pipeline_free(p);

    kv_key cleanup[4] = {{"greeting", 8}, {"fruit:1", 7}, {"fruit:2", 7},
                         {"fruit:3", 7}};
    size_t deleted = 0;
    if ((rc = kv_client_mdel(c, cleanup, 4, &deleted, NULL)))
        return fail(c, "del", rc);
    printf("deleted %zu keys\n", deleted);

    kv_client_close(c);
    return ok == 100 ? 0 : 1;
}
