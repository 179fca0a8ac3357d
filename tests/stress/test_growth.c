/*
 * test_growth.c - the table grows online without losing a key.
 *
 * A store with a tiny initial capacity gets NPRE keys, then writer threads
 * insert (and delete some of) many more keys, forcing several resizes while
 * reader threads keep reading the pre-inserted keys through every read path
 * and a scanner keeps scanning them: every read must find every one of
 * them, with its value, every time.
 */
#include "stress.h"

#define NPRE 2000
#define NWRITERS 2
#define NREADERS 2

struct shared {
    kv_store *store;
    struct stress_fail fail;
    long iters; /* keys inserted per writer */
    atomic_int writers_left;
    atomic_long reads, scans;
};

struct worker {
    struct shared *sh;
    int id;
    long inserted, deleted;
};

static struct shared sh_storage = {.fail = STRESS_FAIL_INIT};

static size_t pre_key(char *buf, size_t cap, int i)
{
    return (size_t)snprintf(buf, cap, "pre:%d", i);
}

/* The value of pre key i: "pv<i>" padded to a length depending on i. */
static size_t pre_val(char *buf, size_t cap, int i)
{
    int n = snprintf(buf, cap, "pv%d:", i);
    size_t len = (size_t)n + (size_t)(i % 40);
    if (len > cap)
        len = cap;
    for (size_t j = (size_t)n; j < len; j++)
        buf[j] = (char)('a' + (i + (int)j) % 26);
    return len;
}

static void *writer(void *arg)
{
    struct worker *w = arg;
    struct shared *sh = w->sh;
    char k[48];
    for (long i = 0; i < sh->iters && atomic_load(&sh->fail.count) == 0; i++) {
        int kl = snprintf(k, sizeof k, "new:%d:%ld", w->id, i);
        int rc = kv_set(sh->store, k, (size_t)kl, k, (size_t)kl, NULL);
        if (rc != KV_OK) {
            stress_failf(&sh->fail, "kv_set(%s): %s", k, kv_status_name(rc));
            break;
        }
        w->inserted++;
        if (i % 4 == 3) { /* delete an older key of ours */
            kl = snprintf(k, sizeof k, "new:%d:%ld", w->id, i - 2);
            rc = kv_delete(sh->store, k, (size_t)kl, NULL);
            if (rc != KV_OK) {
                stress_failf(&sh->fail, "kv_delete(%s): %s", k, kv_status_name(rc));
                break;
            }
            w->deleted++;
        }
    }
    atomic_fetch_sub(&sh->writers_left, 1);
    return NULL;
}

struct read_check {
    const char *want;
    size_t wlen;
    int ok;
};

static void check_cb(void *ctx, const void *val, size_t vlen, uint64_t version)
{
    struct read_check *c = ctx;
    c->ok = version != 0 && vlen == c->wlen && memcmp(val, c->want, vlen) == 0;
}

static void read_one(struct shared *sh, int i, int how)
{
    char k[32], want[96], buf[96];
    size_t kl = pre_key(k, sizeof k, i);
    size_t wl = pre_val(want, sizeof want, i);
    int rc;
    int ok = 0;
    switch (how) {
    case 0: {
        kv_value v = {0};
        rc = kv_get(sh->store, k, kl, &v);
        ok = rc == KV_OK && v.len == wl && memcmp(v.data, want, wl) == 0;
        kv_value_free(&v);
        break;
    }
    case 1: {
        size_t vlen = 0;
        rc = kv_get_into(sh->store, k, kl, buf, sizeof buf, &vlen, NULL);
        ok = rc == KV_OK && vlen == wl && memcmp(buf, want, wl) == 0;
        break;
    }
    case 2: {
        struct read_check c = {want, wl, 0};
        rc = kv_get_with(sh->store, k, kl, check_cb, &c);
        ok = rc == KV_OK && c.ok;
        break;
    }
    default: {
        uint64_t ver = 0;
        rc = kv_exists(sh->store, k, kl, &ver);
        ok = rc == KV_OK && ver != 0;
        break;
    }
    }
    if (!ok)
        stress_failf(&sh->fail, "read path %d lost or garbled %s during growth: %s",
                     how, k, kv_status_name(rc));
    atomic_fetch_add(&sh->reads, 1);
}

static void read_some_mget(struct shared *sh, uint64_t *rng)
{
    enum { N = 8 };
    char k[N][32];
    kv_key keys[N];
    int idx[N];
    for (int j = 0; j < N; j++) {
        idx[j] = (int)(stress_rand(rng) % NPRE);
        keys[j].data = k[j];
        keys[j].len = pre_key(k[j], sizeof k[j], idx[j]);
    }
    kv_value v[N];
    int rc = kv_mget(sh->store, keys, N, v);
    if (rc != KV_OK) {
        stress_failf(&sh->fail, "kv_mget: %s", kv_status_name(rc));
        return;
    }
    for (int j = 0; j < N; j++) {
        char want[96];
        size_t wl = pre_val(want, sizeof want, idx[j]);
        if (v[j].data == NULL || v[j].len != wl || memcmp(v[j].data, want, wl) != 0)
            stress_failf(&sh->fail, "kv_mget lost or garbled pre:%d during growth",
                         idx[j]);
    }
    kv_values_free(v, N);
}

static void *reader(void *arg)
{
    struct worker *w = arg;
    struct shared *sh = w->sh;
    uint64_t rng = 0x2545F4914F6CDD1DULL * (uint64_t)(w->id + 5);
    long round = 0;
    while ((atomic_load(&sh->writers_left) > 0 || round < 2) &&
           atomic_load(&sh->fail.count) == 0) {
        /* a full pass over the pre-inserted keys, then some multi-gets */
        for (int i = 0; i < NPRE && atomic_load(&sh->fail.count) == 0; i++)
            read_one(sh, i, (int)((i + round + w->id) % 4));
        for (int j = 0; j < 50; j++)
            read_some_mget(sh, &rng);
        round++;
    }
    return NULL;
}

struct scan_ctx {
    unsigned char seen[NPRE];
    int bad;
};

static int scan_cb(void *ctx, const void *key, size_t klen, const void *val,
                   size_t vlen, uint64_t version)
{
    struct scan_ctx *c = ctx;
    char k[32], want[96];
    if (klen < 5 || klen >= sizeof k || version == 0) {
        c->bad++;
        return 0;
    }
    memcpy(k, key, klen);
    k[klen] = '\0';
    int i = atoi(k + 4);
    if (memcmp(k, "pre:", 4) != 0 || i < 0 || i >= NPRE) {
        c->bad++;
        return 0;
    }
    size_t wl = pre_val(want, sizeof want, i);
    if (vlen != wl || memcmp(val, want, wl) != 0)
        c->bad++;
    c->seen[i] = 1;
    return 0;
}

static void *scanner(void *arg)
{
    struct worker *w = arg;
    struct shared *sh = w->sh;
    static struct scan_ctx c; /* one scanner thread */
    long full = 0;
    while ((atomic_load(&sh->writers_left) > 0 || full < 1) &&
           atomic_load(&sh->fail.count) == 0) {
        memset(&c, 0, sizeof c);
        uint64_t cursor = 0;
        long calls = 0;
        do {
            uint64_t next = 0;
            int rc = kv_scan(sh->store, "pre:", 4, cursor, 64, scan_cb, &c, &next);
            if (rc != KV_OK) {
                stress_failf(&sh->fail, "kv_scan: %s", kv_status_name(rc));
                return NULL;
            }
            cursor = next;
            if (++calls > 100000000L) {
                stress_failf(&sh->fail, "kv_scan does not terminate");
                return NULL;
            }
        } while (cursor != 0);
        if (c.bad)
            stress_failf(&sh->fail, "scan returned %d wrong keys or values", c.bad);
        for (int i = 0; i < NPRE; i++) {
            if (!c.seen[i]) {
                stress_failf(&sh->fail, "a full scan during growth missed pre:%d", i);
                break;
            }
        }
        full++;
        atomic_fetch_add(&sh->scans, 1);
    }
    return NULL;
}

Test(stress, growth_under_load_loses_no_key, .timeout = 240)
{
    struct shared *sh = &sh_storage;
    sh->store = stress_open(16);
    sh->iters = stress_iters(200000, 5000);
    char k[32], v[96];
    for (int i = 0; i < NPRE; i++) {
        size_t kl = pre_key(k, sizeof k, i);
        size_t vl = pre_val(v, sizeof v, i);
        cr_assert_eq(kv_set(sh->store, k, kl, v, vl, NULL), KV_OK);
    }
    kv_metrics m0;
    cr_assert_eq(kv_metrics_read(sh->store, &m0, sizeof m0), KV_OK);
    cr_assert_eq(m0.keys, NPRE);

    enum { NT = NWRITERS + NREADERS + 1 };
    struct worker w[NT];
    pthread_t threads[NT];
    memset(w, 0, sizeof w);
    for (int i = 0; i < NT; i++) {
        w[i].sh = sh;
        w[i].id = i;
    }
    atomic_store(&sh->writers_left, NWRITERS);
    stress_start(threads, NWRITERS, writer, w, sizeof w[0]);
    stress_start(threads + NWRITERS, NREADERS, reader, w + NWRITERS, sizeof w[0]);
    stress_start(threads + NWRITERS + NREADERS, 1, scanner, w + NWRITERS + NREADERS,
                 sizeof w[0]);
    stress_join(threads, NT);
    stress_assert_ok(&sh->fail);

    long expect_keys = NPRE;
    for (int i = 0; i < NWRITERS; i++)
        expect_keys += w[i].inserted - w[i].deleted;
    kv_metrics m;
    cr_assert_eq(kv_metrics_read(sh->store, &m, sizeof m), KV_OK);
    cr_assert_eq(m.keys, (uint64_t)expect_keys, "keys %llu, expected %ld",
                 (unsigned long long)m.keys, expect_keys);
    cr_assert_gt(m.table_resizes, m0.table_resizes,
                 "the writers were meant to grow the table (%llu -> %llu keys)",
                 (unsigned long long)m0.keys, (unsigned long long)m.keys);
    /* every writer key is where it should be */
    for (int wi = 0; wi < NWRITERS; wi++) {
        for (long i = 0; i < w[wi].inserted; i++) {
            int kl = snprintf(k, sizeof k, "new:%d:%ld", wi, i);
            int deleted = (i + 2) % 4 == 3 && i + 2 < w[wi].inserted;
            int rc = kv_exists(sh->store, k, (size_t)kl, NULL);
            if (rc != (deleted ? KV_NOT_FOUND : KV_OK))
                cr_assert_fail("%s: %s", k, kv_status_name(rc));
        }
    }
    cr_log_info("%ld reads, %ld full scans, %llu resizes during the run",
                atomic_load(&sh->reads), atomic_load(&sh->scans),
                (unsigned long long)(m.table_resizes - m0.table_resizes));
    kv_close(sh->store);
}

/* Many writers growing an empty store at once: every insert must find room
 * (a table that fills up before its copy is done would never end a probe
 * chain, and the store would hang), and every key must be there after. */
#define CROWD 16

typedef struct crowd_arg {
    kv_store *s;
    int id;
    long n;
    struct stress_fail *fail;
} crowd_arg;

static void *crowd_writer(void *p)
{
    crowd_arg *a = p;
    char k[32];
    for (long i = 0; i < a->n; i++) {
        int len = snprintf(k, sizeof k, "crowd:%d:%ld", a->id, i);
        int rc = kv_set(a->s, k, (size_t)len, k, (size_t)len, NULL);
        if (rc != KV_OK) {
            stress_failf(a->fail, "kv_set %s: %s", k, kv_strerror(rc));
            return NULL;
        }
    }
    return NULL;
}

Test(stress, many_writers_grow_an_empty_store, .timeout = 240)
{
    struct stress_fail fail = STRESS_FAIL_INIT;
    kv_store *s = stress_open(0);
    long per = stress_iters(50000, 2000);
    pthread_t th[CROWD];
    crowd_arg args[CROWD];
    for (int i = 0; i < CROWD; i++)
        args[i] = (crowd_arg){s, i, per, &fail};
    stress_start(th, CROWD, crowd_writer, args, sizeof args[0]);
    stress_join(th, CROWD);
    stress_assert_ok(&fail);

    char k[32], buf[32];
    for (int t = 0; t < CROWD; t++)
        for (long i = 0; i < per; i++) {
            int len = snprintf(k, sizeof k, "crowd:%d:%ld", t, i);
            size_t vlen;
            int rc = kv_get_into(s, k, (size_t)len, buf, sizeof buf, &vlen, NULL);
            if (rc != KV_OK || vlen != (size_t)len || memcmp(buf, k, vlen) != 0)
                cr_assert_fail("%s: %s", k, kv_strerror(rc));
        }
    kv_metrics m;
    cr_assert_eq(kv_metrics_read(s, &m, sizeof m), KV_OK);
    cr_assert_eq(m.keys, (uint64_t)(CROWD * per));
    cr_assert_gt(m.table_resizes, 0);
    kv_close(s);
}
