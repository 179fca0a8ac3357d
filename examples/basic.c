/*
 * basic.c - a tour of libkv's everyday calls: open a store, set, get,
 * delete, multi-set and multi-get, and read the metrics.
 *
 * Prints what it does. Exits 0 on success; on any unexpected status it
 * prints which call failed and exits 1.
 */
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "kv.h"

/* Fails the program unless rc is the status we expected. */
static void expect(int rc, int want, const char *what)
{
    if (rc != want) {
        fprintf(stderr, "basic: %s: got %s (%s), expected %s\n", what,
                kv_status_name(rc), kv_strerror(rc), kv_status_name(want));
        exit(1);
    }
}

static void fail(const char *what)
{
    fprintf(stderr, "basic: %s\n", what);
    exit(1);
}

int main(void)
{
    printf("libkv %s\n", kv_version());

    /* A store with default options, except a small initial table. */
    kv_options opts;
    kv_options_init(&opts);
    opts.initial_capacity = 64;
    kv_store *store = NULL;
    expect(kv_open(&opts, &store), KV_OK, "kv_open");
    printf("opened a store\n");

    /* set and get */
    uint64_t version = 0;
    expect(kv_set(store, "greeting", 8, "hello, world", 12, &version), KV_OK,
           "kv_set greeting");
    printf("set greeting = \"hello, world\" at revision %" PRIu64 "\n", version);

    kv_value value = {0};
    expect(kv_get(store, "greeting", 8, &value), KV_OK, "kv_get greeting");
    printf("get greeting -> \"%.*s\" (version %" PRIu64 ")\n", (int)value.len,
           (const char *)value.data, value.version);
    if (value.len != 12 || memcmp(value.data, "hello, world", 12) != 0 ||
        value.version != version)
        fail("kv_get returned something other than what was set");
    kv_value_free(&value);

    /* a missing key is a normal outcome, not an error */
    expect(kv_get(store, "nobody", 6, &value), KV_NOT_FOUND, "kv_get nobody");
    printf("get nobody -> %s\n", kv_strerror(KV_NOT_FOUND));

    /* get into a caller's buffer, without allocating */
    char buf[64];
    size_t len = 0;
    expect(kv_get_into(store, "greeting", 8, buf, sizeof buf, &len, NULL), KV_OK,
           "kv_get_into greeting");
    printf("get_into greeting -> %zu bytes\n", len);

    /* delete */
    expect(kv_delete(store, "greeting", 8, &version), KV_OK, "kv_delete greeting");
    printf("deleted greeting at revision %" PRIu64 "\n", version);
    expect(kv_exists(store, "greeting", 8, NULL), KV_NOT_FOUND, "kv_exists greeting");

    /* multi-set: all three keys change at one revision */
    kv_pair pairs[] = {
        {"fruit:1", 7, "apple", 5},
        {"fruit:2", 7, "banana", 6},
        {"fruit:3", 7, "cherry", 6},
    };
    expect(kv_mset(store, pairs, 3, &version), KV_OK, "kv_mset");
    printf("mset 3 fruits at revision %" PRIu64 "\n", version);

    /* multi-get: one consistent snapshot; missing keys come back empty */
    kv_key keys[] = {{"fruit:1", 7}, {"fruit:2", 7}, {"fruit:4", 7}, {"fruit:3", 7}};
    kv_value values[4];
    expect(kv_mget(store, keys, 4, values), KV_OK, "kv_mget");
    for (int i = 0; i < 4; i++) {
        if (values[i].data == NULL)
            printf("  %.*s -> (missing)\n", (int)keys[i].len, (const char *)keys[i].data);
        else
            printf("  %.*s -> %.*s (version %" PRIu64 ")\n", (int)keys[i].len,
                   (const char *)keys[i].data, (int)values[i].len,
                   (const char *)values[i].data, values[i].version);
    }
    if (values[2].data != NULL || values[0].data == NULL ||
        values[0].version != version || values[3].version != version)
        fail("kv_mget returned an unexpected result");
    kv_values_free(values, 4);

    /* metrics */
    kv_metrics m;
    expect(kv_metrics_read(store, &m, sizeof m), KV_OK, "kv_metrics_read");
    printf("metrics: keys=%" PRIu64 " key_bytes=%" PRIu64 " value_bytes=%" PRIu64
           " revision=%" PRIu64 " gets=%" PRIu64 " hits=%" PRIu64 " misses=%" PRIu64
           " sets=%" PRIu64 " deletes=%" PRIu64 "\n",
           m.keys, m.key_bytes, m.value_bytes, m.revision, m.gets, m.get_hits,
           m.get_misses, m.sets, m.deletes);
    if (m.keys != 3 || m.value_bytes != 17 || m.revision != version)
        fail("metrics do not match what was done");

    kv_close(store);
    printf("closed the store: ok\n");
    return 0;
}
