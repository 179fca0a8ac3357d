/*
 * test_expire.c - readers and writers while half of the keys expire and
 * the active expiry runs (real clock, expiry thread on).
 *
 * Keys come in groups of 4, always written together by one kv_mset_ex
 * whose value names the write ("w<writer>:<seq>"); odd groups get a TTL of
 * 1..8 ms, even groups none, so about half of the keys keep expiring while
 * the expiry thread and the writers remove them. Readers check:
 *   - kv_mget of a group: all 4 present with the same value and version,
 *     or all 4 absent (keys set with one expiry time expire together);
 *   - kv_get: a well-formed value;
 *   - an even group, once written, never disappears;
 *   - kv_scan: values well-formed.
 * Under ASan this checks memory safety of expiry's removals, under TSan
 * the races between the sweep, lazy removal, readers and the clock.
 */
#include <stdatomic.h>
#include <stdbool.h>
#include <time.h>
#include <criterion/criterion.h>
#include <pthread.h>
#include <stdio.h>
#include <string.h>

#include "stress.h"

#define GROUPS 512
#define WRITERS 2
#define READERS 2

static kv_store *store;
static atomic_bool stop;
static struct stress_fail fail = STRESS_FAIL_INIT;
static atomic_bool written[GROUPS];

static size_t key_of(char *buf, int g, int j)
{
    return (size_t)snprintf(buf, 32, "g%d:%d", g, j);
}

static void *writer(void *arg)
{
    long id = (long)arg;
    uint64_t rnd = 0x9e3779b97f4a7c15ull * (uint64_t)(id + 1);
    long iters = stress_iters(200000, 5000);
    char keys[4][32], val[32];
    for (long n = 0; n < iters && !atomic_load(&stop); n++) {
        int g = (int)(stress_rand(&rnd) % GROUPS);
        kv_pair p[4];
        size_t vl = (size_t)snprintf(val, sizeof val, "w%ld:%ld", id, n);
        for (int j = 0; j < 4; j++)
            p[j] = (kv_pair){keys[j], key_of(keys[j], g, j), val, vl};
        int rc = g % 2 ? kv_mset_ttl(store, p, 4, 1 + stress_rand(&rnd) % 8, NULL)
                       : kv_mset(store, p, 4, NULL);
        if (rc != KV_OK)
            stress_failf(&fail, "mset: %s", kv_strerror(rc));
        if (g % 2 == 0)
            atomic_store(&written[g], true);
        if (n % 16 == 0) { /* single-key writes that meet expired keys (a
                              CAS that never matches: it changes nothing
                              but removes the key if it has expired) */
            char k[32];
            size_t kl = key_of(k, g | 1, (int)(n % 4));
            kv_delete_if(store, k, kl, UINT64_MAX, NULL);
        }
    }
    return NULL;
}

static bool well_formed(const void *v, size_t vl)
{
    return vl >= 4 && vl < 32 && ((const char *)v)[0] == 'w' && memchr(v, ':', vl);
}

static int scan_fn(void *ctx, const void *k, size_t kl, const void *v, size_t vl, uint64_t ver)
{
    (void)ctx, (void)k, (void)kl;
    if (!well_formed(v, vl) || ver == 0)
        stress_failf(&fail, "scan: a malformed value");
    return 0;
}

static void *reader(void *arg)
{
    uint64_t rnd = 0x1234567ull * (uint64_t)((long)arg + 7);
    char keys[4][32];
    long n = 0;
    while (!atomic_load(&stop)) {
        int g = (int)(stress_rand(&rnd) % GROUPS);
        bool must = g % 2 == 0 && atomic_load(&written[g]);
        kv_key k[4];
        for (int j = 0; j < 4; j++)
            k[j] = (kv_key){keys[j], key_of(keys[j], g, j)};
        kv_value out[4];
        int rc = kv_mget(store, k, 4, out);
        if (rc != KV_OK) {
            stress_failf(&fail, "mget: %s", kv_strerror(rc));
            continue;
        }
        int present = 0;
        for (int j = 0; j < 4; j++)
            present += out[j].data != NULL;
        if (present != 0 && present != 4)
            stress_failf(&fail, "group %d: %d of 4 keys present (torn)", g, present);
        if (must && present != 4)
            stress_failf(&fail, "group %d without expiry disappeared", g);
        if (present == 4)
            for (int j = 1; j < 4; j++)
                if (out[j].version != out[0].version || out[j].len != out[0].len ||
                    memcmp(out[j].data, out[0].data, out[0].len) != 0)
                    stress_failf(&fail, "group %d: keys from different writes", g);
        kv_values_free(out, 4);
        kv_value v;
        if (kv_get(store, keys[0], k[0].len, &v) == KV_OK) {
            if (!well_formed(v.data, v.len))
                stress_failf(&fail, "get: malformed value");
            kv_value_free(&v);
        }
        if (++n % 512 == 0) {
            uint64_t next = 0;
            do {
                if (kv_scan(store, "g", 1, next, 64, scan_fn, NULL, &next) != KV_OK)
                    break;
            } while (next);
        }
    }
    return NULL;
}

Test(stress_expire, readers_and_writers_while_half_the_keys_expire)
{
    store = stress_open(64);
    pthread_t w[WRITERS], r[READERS];
    for (long i = 0; i < READERS; i++)
        pthread_create(&r[i], NULL, reader, (void *)i);
    for (long i = 0; i < WRITERS; i++)
        pthread_create(&w[i], NULL, writer, (void *)i);
    for (int i = 0; i < WRITERS; i++)
        pthread_join(w[i], NULL);
    atomic_store(&stop, true);
    for (int i = 0; i < READERS; i++)
        pthread_join(r[i], NULL);
    stress_assert_ok(&fail);

    /* Everything with a TTL goes away by itself; groups without one stay. */
    kv_metrics m = {0};
    for (int i = 0; i < 500; i++) {
        kv_metrics_read(store, &m, sizeof m);
        if (m.keys_with_ttl == 0)
            break;
        struct timespec ts = {0, 10 * 1000 * 1000};
        nanosleep(&ts, NULL);
    }
    cr_assert_eq(m.keys_with_ttl, 0, "%llu keys with a TTL left",
                 (unsigned long long)m.keys_with_ttl);
    cr_assert_gt(m.expired_keys, 0);
    size_t even = 0;
    for (int g = 0; g < GROUPS; g += 2)
        even += atomic_load(&written[g]) ? 4 : 0;
    cr_assert_eq(m.keys, even);
    kv_close(store);
}
