/*
 * stress.h - helpers for the libkv stress tests.
 *
 * Worker threads never call Criterion's asserts (they may only fail the
 * test from its own thread): they record failures in a stress_fail and the
 * test asserts on it after joining them.
 *
 * Iteration counts are multiplied by stress_scale(): KV_STRESS_SCALE from
 * the environment (default 1), divided further under ThreadSanitizer
 * (~10x slower) and AddressSanitizer (~3x slower). No test depends on
 * timing: a slower machine only takes longer.
 */
#ifndef KV_STRESS_H
#define KV_STRESS_H

#include <criterion/criterion.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "kv.h"

#if defined(__SANITIZE_THREAD__)
#define STRESS_TSAN 1
#elif defined(__has_feature)
#if __has_feature(thread_sanitizer)
#define STRESS_TSAN 1
#endif
#endif
#if defined(__SANITIZE_ADDRESS__)
#define STRESS_ASAN 1
#elif defined(__has_feature)
#if __has_feature(address_sanitizer)
#define STRESS_ASAN 1
#endif
#endif

static inline double stress_scale(void)
{
    double scale = 1.0;
    const char *env = getenv("KV_STRESS_SCALE");
    if (env != NULL && *env != '\0') {
        double v = strtod(env, NULL);
        if (v > 0)
            scale = v;
    }
#if defined(STRESS_TSAN)
    scale /= 20.0;
#elif defined(STRESS_ASAN)
    scale /= 3.0;
#endif
    return scale;
}

/* base scaled, never below min. */
static inline long stress_iters(long base, long min)
{
    double n = (double)base * stress_scale();
    return n < (double)min ? min : (long)n;
}

/* First failure seen by any thread, and how many there were. */
struct stress_fail {
    pthread_mutex_t lock;
    atomic_long count;
    char first[512];
};

#define STRESS_FAIL_INIT {PTHREAD_MUTEX_INITIALIZER, 0, {0}}

static inline void stress_failf(struct stress_fail *f, const char *fmt, ...)
{
    if (atomic_fetch_add(&f->count, 1) == 0) {
        va_list ap;
        va_start(ap, fmt);
        pthread_mutex_lock(&f->lock);
        vsnprintf(f->first, sizeof f->first, fmt, ap);
        pthread_mutex_unlock(&f->lock);
        va_end(ap);
    }
}

static inline void stress_assert_ok(struct stress_fail *f)
{
    long n = atomic_load(&f->count);
    pthread_mutex_lock(&f->lock);
    cr_assert_eq(n, 0, "%ld failures in worker threads; first: %s", n, f->first);
    pthread_mutex_unlock(&f->lock);
}

/* xorshift64*: a cheap per-thread random source. */
static inline uint64_t stress_rand(uint64_t *state)
{
    uint64_t x = *state;
    x ^= x >> 12;
    x ^= x << 25;
    x ^= x >> 27;
    *state = x;
    return x * 0x2545F4914F6CDD1DULL;
}

static inline kv_store *stress_open(size_t initial_capacity)
{
    kv_options o;
    kv_options_init(&o);
    o.initial_capacity = initial_capacity;
    kv_store *s = NULL;
    int rc = kv_open(&o, &s);
    cr_assert_eq(rc, KV_OK, "kv_open: %s", kv_strerror(rc));
    return s;
}

typedef void *(*stress_thread_fn)(void *);

/* Starts n threads running fn(args + i * size). */
static inline void stress_start(pthread_t *threads, int n, stress_thread_fn fn,
                                void *args, size_t size)
{
    for (int i = 0; i < n; i++) {
        int rc = pthread_create(&threads[i], NULL, fn, (char *)args + (size_t)i * size);
        cr_assert_eq(rc, 0, "pthread_create failed");
    }
}

static inline void stress_join(pthread_t *threads, int n)
{
    for (int i = 0; i < n; i++)
        pthread_join(threads[i], NULL);
}

/* Encodes / decodes a signed 64-bit integer value as 8 bytes. */
static inline void stress_put_i64(unsigned char out[8], int64_t v)
{
    uint64_t u = (uint64_t)v;
    for (int i = 0; i < 8; i++)
        out[i] = (unsigned char)(u >> (8 * i));
}

static inline int stress_get_i64(const void *data, size_t len, int64_t *v)
{
    if (data == NULL || len != 8)
        return -1;
    const unsigned char *p = data;
    uint64_t u = 0;
    for (int i = 0; i < 8; i++)
        u |= (uint64_t)p[i] << (8 * i);
    *v = (int64_t)u;
    return 0;
}

#endif /* KV_STRESS_H */
