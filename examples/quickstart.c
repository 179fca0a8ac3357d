/*
 * quickstart.c - README.md's "Quick start: the library", as one complete
 * program: open an in-memory store, set a key, read it back, close.
 * Built and run by the test suite (tests/examples), so the README's code
 * compiles and works.
 */
#include <stdint.h>
#include <stdio.h>

#include <kv.h>

int main(void)
{
    kv_store *db;
    if (kv_open(NULL, &db) != KV_OK) /* NULL: default options, in memory */
        return 1;

    uint64_t ver;
    if (kv_set(db, "user:1", 6, "alice", 5, &ver) != KV_OK) /* ver: revision */
        return 1;

    kv_value v;
    if (kv_get(db, "user:1", 6, &v) != KV_OK)
        return 1;
    printf("%.*s (version %llu)\n", (int)v.len, (const char *)v.data,
           (unsigned long long)v.version);
    kv_value_free(&v);
    kv_close(db);
    return 0;
}
