/*
 * kvtest.h - small helpers shared by the libkv unit tests.
 *
 * Only the public API (kv.h) is used: the unit tests check the contract
 * written in kv.h, not the implementation. Helpers assert with Criterion,
 * so they may only be called from a test's own thread.
 */
#ifndef KVTEST_H
#define KVTEST_H

#include <criterion/criterion.h>
#include <pthread.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "kv.h"

/* Like cr_assert(cond, fmt, ...) but reports only failures: the suite runs
 * with --full-stats, which sends every passing assertion to the runner, so
 * helpers used in loops of thousands check with this instead. */
#define KVT_CHECK(cond, ...)                                                 \
    do {                                                                     \
        if (!(cond))                                                         \
            cr_assert_fail(__VA_ARGS__);                                     \
    } while (0)

/* Opens a store with the given options (NULL = defaults) or fails the test. */
static inline kv_store *kvt_open(const kv_options *opts)
{
    kv_store *s = NULL;
    int rc = kv_open(opts, &s);
    KVT_CHECK(rc == KV_OK, "kv_open: %s", kv_strerror(rc));
    KVT_CHECK(s != NULL, "kv_open gave no store");
    return s;
}

/* Opens a store whose table starts with room for cap keys. */
static inline kv_store *kvt_open_cap(size_t cap)
{
    kv_options o;
    kv_options_init(&o);
    o.initial_capacity = cap;
    return kvt_open(&o);
}

/* Sets a NUL-terminated key to a NUL-terminated value (without the NULs). */
static inline uint64_t kvt_set(kv_store *s, const char *k, const char *v)
{
    uint64_t ver = 0;
    int rc = kv_set(s, k, strlen(k), v, strlen(v), &ver);
    KVT_CHECK(rc == KV_OK, "kv_set(%s): %s", k, kv_strerror(rc));
    KVT_CHECK(ver > 0, "kv_set(%s) gave version 0", k);
    return ver;
}

/* Asserts that key k holds exactly value v (and version ver unless 0). */
static inline void kvt_expect(kv_store *s, const char *k, const char *v,
                              uint64_t ver)
{
    kv_value val = {0};
    int rc = kv_get(s, k, strlen(k), &val);
    KVT_CHECK(rc == KV_OK, "kv_get(%s): %s", k, kv_strerror(rc));
    KVT_CHECK(val.len == strlen(v), "kv_get(%s): len %zu, expected %zu", k,
              val.len, strlen(v));
    KVT_CHECK(val.data != NULL, "kv_get(%s): data is NULL", k);
    KVT_CHECK(memcmp(val.data, v, val.len) == 0, "kv_get(%s): wrong bytes", k);
    KVT_CHECK(ver == 0 || val.version == ver,
              "kv_get(%s): version %llu, expected %llu", k,
              (unsigned long long)val.version, (unsigned long long)ver);
    kv_value_free(&val);
}

/* Asserts that key k is absent. */
static inline void kvt_expect_absent(kv_store *s, const char *k)
{
    kv_value val = {0};
    int rc = kv_get(s, k, strlen(k), &val);
    KVT_CHECK(rc == KV_NOT_FOUND, "kv_get(%s): expected NOT_FOUND, got %s", k,
              kv_status_name(rc));
    KVT_CHECK(val.data == NULL, "kv_get must leave the output alone on NOT_FOUND");
}

/* Returns the key's current version, or 0 if absent. */
static inline uint64_t kvt_version(kv_store *s, const char *k)
{
    uint64_t ver = 0;
    int rc = kv_exists(s, k, strlen(k), &ver);
    if (rc == KV_NOT_FOUND)
        return 0;
    KVT_CHECK(rc == KV_OK, "kv_exists(%s): %s", k, kv_strerror(rc));
    return ver;
}

static inline kv_metrics kvt_metrics(kv_store *s)
{
    kv_metrics m;
    memset(&m, 0, sizeof m);
    int rc = kv_metrics_read(s, &m, sizeof m);
    KVT_CHECK(rc == KV_OK, "kv_metrics_read: %s", kv_strerror(rc));
    return m;
}

static inline uint64_t kvt_revision(kv_store *s)
{
    return kvt_metrics(s).revision;
}

/* Asserts two metrics snapshots describe the same stored data and revision. */
static inline void kvt_expect_same_data(const kv_metrics *a, const kv_metrics *b)
{
    cr_assert_eq(a->keys, b->keys, "keys changed: %llu -> %llu",
                 (unsigned long long)a->keys, (unsigned long long)b->keys);
    cr_assert_eq(a->key_bytes, b->key_bytes, "key_bytes changed");
    cr_assert_eq(a->value_bytes, b->value_bytes, "value_bytes changed");
    cr_assert_eq(a->revision, b->revision, "revision changed: %llu -> %llu",
                 (unsigned long long)a->revision,
                 (unsigned long long)b->revision);
}

/* Flags that test threads raise and wait for, to stage who does what when
 * (a reader held inside a read section, a writer that has finished...). */
typedef struct kvt_flags {
    pthread_mutex_t lock;
    pthread_cond_t cond;
} kvt_flags;

static inline void kvt_flags_init(kvt_flags *f)
{
    pthread_mutex_init(&f->lock, NULL);
    pthread_cond_init(&f->cond, NULL);
}

static inline void kvt_flags_destroy(kvt_flags *f)
{
    pthread_cond_destroy(&f->cond);
    pthread_mutex_destroy(&f->lock);
}

/* Sets *flag (guarded by f) and wakes its waiters. */
static inline void kvt_flag_raise(kvt_flags *f, int *flag)
{
    pthread_mutex_lock(&f->lock);
    *flag = 1;
    pthread_cond_broadcast(&f->cond);
    pthread_mutex_unlock(&f->lock);
}

/* Waits until *flag (guarded by f) is set. */
static inline void kvt_flag_wait(kvt_flags *f, int *flag)
{
    pthread_mutex_lock(&f->lock);
    while (!*flag)
        pthread_cond_wait(&f->cond, &f->lock);
    pthread_mutex_unlock(&f->lock);
}

#endif /* KVTEST_H */
