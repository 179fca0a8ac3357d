/*
 * consumer.c - an out-of-tree program using the installed libkv: a real set
 * and get, checked. Built by run_consumer.sh with pkg-config and with CMake.
 */
#include <stdio.h>
#include <string.h>

#include <kv.h>

int main(void)
{
    kv_store *store = NULL;
    int rc = kv_open(NULL, &store);
    if (rc != KV_OK) {
        fprintf(stderr, "consumer: kv_open: %s\n", kv_strerror(rc));
        return 1;
    }
    uint64_t version = 0;
    rc = kv_set(store, "installed", 9, "works", 5, &version);
    if (rc != KV_OK) {
        fprintf(stderr, "consumer: kv_set: %s\n", kv_strerror(rc));
        kv_close(store);
        return 1;
    }
    kv_value v = {0};
    rc = kv_get(store, "installed", 9, &v);
    int ok = rc == KV_OK && v.len == 5 && memcmp(v.data, "works", 5) == 0 &&
             v.version == version;
    kv_value_free(&v);
    kv_close(store);
    if (!ok) {
        fprintf(stderr, "consumer: kv_get returned %s or the wrong value\n",
                kv_status_name(rc));
        return 1;
    }
    if (strcmp(kv_version(), KV_VERSION_STRING) != 0) {
        fprintf(stderr, "consumer: header %s, library %s\n", KV_VERSION_STRING,
                kv_version());
        return 1;
    }
    printf("consumer: libkv %s linked and working\n", kv_version());
    return 0;
}
