/*
 * test_reclaim.c - memory handed to readers stays intact until they are done.
 *
 * Writers overwrite and delete a few hot keys as fast as they can, through
 * every write path. Readers read them zero-copy (kv_get_with, kv_scan) and
 * by copy (kv_get, kv_mget) and check every byte: each value describes
 * itself (its key, a seed, its length, and a body derived from the seed).
 * A value freed or reused under a reader shows up as wrong bytes, and under
 * AddressSanitizer as a use-after-free report.
 */
#include "stress.h"

#define NHOT 8
#define HDR 16
#define NWRITERS 2
#define NREADERS 2

struct shared {
    kv_store *store;
    struct stress_fail fail;
    long iters;
    atomic_int writers_left;
    atomic_long checked, absent;
    char key[NHOT][16];
    size_t klen[NHOT];
};

struct worker {
    struct shared *sh;
    int id;
};

static struct shared sh_storage = {.fail = STRESS_FAIL_INIT};

static void put_u32(unsigned char *p, uint32_t v)
{
    for (int i = 0; i < 4; i++)
        p[i] = (unsigned char)(v >> (8 * i));
}

static uint32_t get_u32(const unsigned char *p)
{
    return (uint32_t)p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16 |
           (uint32_t)p[3] << 24;
}

static unsigned char body_byte(uint64_t seed, size_t j)
{
    return (unsigned char)(seed * 131 + 7 + j);
}

/* Builds the value for key k from seed into buf (at least HDR + 4096). */
/* Half the values are small enough for the slab allocator (libkv's
 * slab.h), half come from malloc: reclamation is checked for both. */
static size_t value_len(uint64_t seed)
{
    return HDR + (size_t)(seed & 1 ? seed % 4096 : seed % 200);
}

static size_t make_value(unsigned char *buf, int k, uint64_t seed)
{
    size_t len = value_len(seed);
    put_u32(buf, (uint32_t)k);
    put_u32(buf + 4, (uint32_t)seed);
    put_u32(buf + 8, (uint32_t)(seed >> 32));
    put_u32(buf + 12, (uint32_t)len);
    for (size_t j = HDR; j < len; j++)
        buf[j] = body_byte(seed, j);
    return len;
}

/* 0 if val is an intact value of key k, else a short reason. */
static const char *check_value(int k, const void *val, size_t vlen)
{
    const unsigned char *p = val;
    if (p == NULL)
        return "NULL data";
    if (vlen < HDR)
        return "too short";
    if (get_u32(p) != (uint32_t)k)
        return "value of another key";
    uint64_t seed = (uint64_t)get_u32(p + 4) | (uint64_t)get_u32(p + 8) << 32;
    if (get_u32(p + 12) != vlen || vlen != value_len(seed))
        return "wrong length";
    for (size_t j = HDR; j < vlen; j++)
        if (p[j] != body_byte(seed, j))
            return "corrupted body";
    return NULL;
}

/* ---- writers ---------------------------------------------------------- */

static int write_step(struct shared *sh, uint64_t *rng, unsigned char bufs[3][HDR + 4096])
{
    int k = (int)(stress_rand(rng) % NHOT);
    int k2 = (k + 1 + (int)(stress_rand(rng) % (NHOT - 1))) % NHOT;
    size_t len = make_value(bufs[0], k, stress_rand(rng));
    switch (stress_rand(rng) % 8) {
    case 0:
    case 1:
    case 2:
        return kv_set(sh->store, sh->key[k], sh->klen[k], bufs[0], len, NULL);
    case 3: {
        int rc = kv_delete(sh->store, sh->key[k], sh->klen[k], NULL);
        return rc == KV_NOT_FOUND ? KV_OK : rc;
    }
    case 4: {
        size_t len2 = make_value(bufs[1], k2, stress_rand(rng));
        kv_pair pairs[2] = {{sh->key[k], sh->klen[k], bufs[0], len},
                            {sh->key[k2], sh->klen[k2], bufs[1], len2}};
        return kv_mset(sh->store, pairs, 2, NULL);
    }
    case 5: {
        kv_key keys[2] = {{sh->key[k], sh->klen[k]}, {sh->key[k2], sh->klen[k2]}};
        return kv_mdelete(sh->store, keys, 2, NULL, NULL);
    }
    case 6: {
        kv_op ops[2] = {{KV_OP_SET, sh->key[k], sh->klen[k], bufs[0], len, 0},
                        {KV_OP_DELETE, sh->key[k2], sh->klen[k2], NULL, 0, 0}};
        kv_txn_result r;
        int rc = kv_txn_cond(sh->store, NULL, 0, ops, 2, NULL, 0, &r);
        if (rc == KV_OK)
            kv_txn_result_free(&r);
        return rc;
    }
    default: {
        kv_txn *t = NULL;
        int rc = kv_txn_begin(sh->store, &t);
        if (rc != KV_OK)
            return rc;
        rc = kv_txn_set(t, sh->key[k], sh->klen[k], bufs[0], len);
        if (rc == KV_OK)
            rc = kv_txn_delete(t, sh->key[k2], sh->klen[k2]);
        if (rc != KV_OK) {
            kv_txn_abort(t);
            return rc;
        }
        return kv_txn_commit(t, NULL); /* blind writes: no conflict */
    }
    }
}

static void *writer(void *arg)
{
    struct worker *w = arg;
    struct shared *sh = w->sh;
    uint64_t rng = 0x9E3779B97F4A7C15ULL * (uint64_t)(w->id + 21);
    static _Thread_local unsigned char bufs[3][HDR + 4096];
    for (long i = 0; i < sh->iters && atomic_load(&sh->fail.count) == 0; i++) {
        int rc = write_step(sh, &rng, bufs);
        if (rc != KV_OK) {
            stress_failf(&sh->fail, "write: %s", kv_status_name(rc));
            break;
        }
    }
    atomic_fetch_sub(&sh->writers_left, 1);
    return NULL;
}

/* ---- readers ---------------------------------------------------------- */

struct with_ctx {
    struct shared *sh;
    int k;
    int nested;
    const char *err;
};

static void with_cb(void *ctx, const void *val, size_t vlen, uint64_t version)
{
    struct with_ctx *c = ctx;
    c->err = version == 0 ? "version 0" : check_value(c->k, val, vlen);
    if (c->err != NULL || !c->nested)
        return;
    /* Do more library work while holding the bytes, then check again:
     * reclaimed memory would have been reused by now. */
    for (int i = 0; i < NHOT; i++) {
        kv_value v = {0};
        if (kv_get(c->sh->store, c->sh->key[i], c->sh->klen[i], &v) == KV_OK) {
            const char *e = check_value(i, v.data, v.len);
            if (e != NULL)
                c->err = e;
            kv_value_free(&v);
        }
    }
    if (c->err == NULL)
        c->err = check_value(c->k, val, vlen);
}

struct scan_ctx {
    struct shared *sh;
    const char *err;
    long n;
};

static int scan_cb(void *ctx, const void *key, size_t klen, const void *val,
                   size_t vlen, uint64_t version)
{
    struct scan_ctx *c = ctx;
    int k = -1;
    for (int i = 0; i < NHOT; i++)
        if (klen == c->sh->klen[i] && memcmp(key, c->sh->key[i], klen) == 0)
            k = i;
    if (k < 0)
        c->err = "unknown key";
    else if (version == 0)
        c->err = "version 0";
    else if ((c->err = check_value(k, val, vlen)) == NULL)
        c->n++;
    return c->err != NULL;
}

static void read_step(struct shared *sh, uint64_t *rng, long round)
{
    int k = (int)(stress_rand(rng) % NHOT);
    const char *err = NULL;
    const char *how = "";
    int rc = KV_OK;
    switch (round % 5) {
    case 0:
    case 1: {
        how = round % 5 ? "kv_get_with (nested)" : "kv_get_with";
        struct with_ctx c = {sh, k, (int)(round % 5), NULL};
        rc = kv_get_with(sh->store, sh->key[k], sh->klen[k], with_cb, &c);
        err = c.err;
        break;
    }
    case 2: {
        how = "kv_get";
        kv_value v = {0};
        rc = kv_get(sh->store, sh->key[k], sh->klen[k], &v);
        if (rc == KV_OK)
            err = check_value(k, v.data, v.len);
        kv_value_free(&v);
        break;
    }
    case 3: {
        how = "kv_mget";
        kv_key keys[NHOT];
        kv_value v[NHOT];
        for (int i = 0; i < NHOT; i++)
            keys[i] = (kv_key){sh->key[i], sh->klen[i]};
        rc = kv_mget(sh->store, keys, NHOT, v);
        if (rc == KV_OK) {
            for (int i = 0; i < NHOT && err == NULL; i++)
                if (v[i].data != NULL)
                    err = check_value(i, v[i].data, v[i].len);
            kv_values_free(v, NHOT);
        }
        break;
    }
    default: {
        how = "kv_scan";
        struct scan_ctx c = {sh, NULL, 0};
        uint64_t cursor = 0;
        do {
            uint64_t next = 0;
            rc = kv_scan(sh->store, "hot:", 4, cursor, 4, scan_cb, &c, &next);
            cursor = next;
        } while (rc == KV_OK && c.err == NULL && cursor != 0);
        err = c.err;
        break;
    }
    }
    if (rc == KV_NOT_FOUND) {
        atomic_fetch_add(&sh->absent, 1);
        return;
    }
    if (rc != KV_OK)
        stress_failf(&sh->fail, "%s: %s", how, kv_status_name(rc));
    else if (err != NULL)
        stress_failf(&sh->fail, "%s handed a bad value: %s", how, err);
    else
        atomic_fetch_add(&sh->checked, 1);
}

static void *reader(void *arg)
{
    struct worker *w = arg;
    struct shared *sh = w->sh;
    uint64_t rng = 0xA0761D6478BD642FULL * (uint64_t)(w->id + 9);
    long round = 0;
    while ((atomic_load(&sh->writers_left) > 0 || round < 100) &&
           atomic_load(&sh->fail.count) == 0)
        read_step(sh, &rng, round++);
    return NULL;
}

Test(stress, readers_never_see_reclaimed_memory, .timeout = 240)
{
    struct shared *sh = &sh_storage;
    sh->store = stress_open(16);
    sh->iters = stress_iters(400000, 2000);
    static unsigned char buf[HDR + 4096];
    for (int k = 0; k < NHOT; k++) {
        sh->klen[k] = (size_t)snprintf(sh->key[k], sizeof sh->key[k], "hot:%d", k);
        size_t len = make_value(buf, k, (uint64_t)k * 977);
        cr_assert_eq(kv_set(sh->store, sh->key[k], sh->klen[k], buf, len, NULL), KV_OK);
    }
    enum { NT = NWRITERS + NREADERS };
    struct worker w[NT];
    pthread_t threads[NT];
    for (int i = 0; i < NT; i++)
        w[i] = (struct worker){sh, i};
    atomic_store(&sh->writers_left, NWRITERS);
    stress_start(threads, NWRITERS, writer, w, sizeof w[0]);
    stress_start(threads + NWRITERS, NREADERS, reader, w + NWRITERS, sizeof w[0]);
    stress_join(threads, NT);
    stress_assert_ok(&sh->fail);
    cr_assert_gt(atomic_load(&sh->checked), 0);
    cr_log_info("%ld reads checked, %ld found the key absent",
                atomic_load(&sh->checked), atomic_load(&sh->absent));
    kv_close(sh->store);
}

Test(stress, close_after_heavy_churn_frees_everything, .timeout = 240)
{
    /* Retired values must all be freed by kv_close (leaks show under
     * ASan's leak checker and valgrind). Also checks the final state. */
    struct shared *sh = &sh_storage;
    sh->store = stress_open(4);
    sh->iters = stress_iters(20000, 500);
    for (int k = 0; k < NHOT; k++)
        sh->klen[k] = (size_t)snprintf(sh->key[k], sizeof sh->key[k], "hot:%d", k);
    struct worker w[NWRITERS];
    pthread_t threads[NWRITERS];
    for (int i = 0; i < NWRITERS; i++)
        w[i] = (struct worker){sh, i};
    atomic_store(&sh->writers_left, NWRITERS);
    stress_start(threads, NWRITERS, writer, w, sizeof w[0]);
    stress_join(threads, NWRITERS);
    stress_assert_ok(&sh->fail);
    for (int k = 0; k < NHOT; k++) {
        kv_value v = {0};
        int rc = kv_get(sh->store, sh->key[k], sh->klen[k], &v);
        if (rc == KV_OK) {
            const char *err = check_value(k, v.data, v.len);
            cr_assert_null(err, "hot:%d: %s", k, err);
        } else {
            cr_assert_eq(rc, KV_NOT_FOUND);
        }
        kv_value_free(&v);
    }
    kv_close(sh->store);
}
