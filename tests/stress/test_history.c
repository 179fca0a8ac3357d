/*
 * test_history.c - reads in the past while writers, rollbacks and
 * compaction run.
 *
 * Keys come in pairs (g<i>/a, g<i>/b). Every change of a pair sets both
 * to one value or deletes both, in one atomic step: a multi-set, a
 * multi-delete, or a rollback of the pair to an earlier revision (when
 * the pair was equal too). So at every revision the two keys of a pair are
 * equal. Readers pick random revisions between the compaction point and
 * the latest and check, for mget_at and scan_at, that no pair is ever
 * torn, and that reading the same revision again gives the same answer
 * (the past does not change) unless it has been compacted meanwhile.
 * A compactor thread compacts behind the writers, and the store's byte
 * bound makes its own thread compact as well.
 */
#include <stdbool.h>
#include <unistd.h>

#include "stress.h"

#define PAIRS 16

typedef struct ctx {
    kv_store *s;
    atomic_bool stop;
    struct stress_fail fail;
    long iters;
    unsigned seed;
} ctx;

static void pair_keys(int g, char *a, char *b)
{
    snprintf(a, 16, "g%02d/a", g);
    snprintf(b, 16, "g%02d/b", g);
}

static void *writer(void *arg)
{
    ctx *c = arg;
    unsigned seed = (unsigned)(uintptr_t)pthread_self() ^ c->seed;
    char a[16], b[16], val[32];
    for (long i = 0; i < c->iters; i++) {
        int g = rand_r(&seed) % PAIRS;
        pair_keys(g, a, b);
        int what = rand_r(&seed) % 10;
        int rc;
        if (what < 7) {
            snprintf(val, sizeof val, "v%ld-%u", i, seed % 1000);
            kv_pair p[2] = {{a, strlen(a), val, strlen(val)}, {b, strlen(b), val, strlen(val)}};
            rc = kv_mset(c->s, p, 2, NULL);
        } else if (what < 8) {
            kv_key k[2] = {{a, strlen(a)}, {b, strlen(b)}};
            rc = kv_mdelete(c->s, k, 2, NULL, NULL);
        } else {
            uint64_t lo = kv_compact_revision(c->s), hi = kv_revision(c->s);
            if (lo == 0)
                lo = 1;
            uint64_t to = hi > lo ? lo + (uint64_t)rand_r(&seed) % (hi - lo + 1) : hi;
            kv_key k[2] = {{a, strlen(a)}, {b, strlen(b)}};
            rc = to ? kv_rollback(c->s, k, 2, to, 0, NULL, NULL) : KV_OK;
            if (rc == KV_COMPACTED || rc == KV_CONFLICT)
                rc = KV_OK; /* compacted under it, or kept losing races */
        }
        if (rc != KV_OK)
            stress_failf(&c->fail, "write %ld: %s", i, kv_strerror(rc));
    }
    return NULL;
}

static void check_pair(ctx *c, const kv_value *x, const kv_value *y, uint64_t rev, int g)
{
    bool same = (!x->data && !y->data) ||
                (x->data && y->data && x->len == y->len && x->version == y->version &&
                 memcmp(x->data, y->data, x->len) == 0);
    if (!same)
        stress_failf(&c->fail, "pair %d torn at revision %llu", g, (unsigned long long)rev);
}

typedef struct scan_seen {
    kv_value v[PAIRS][2];
} scan_seen;

static int on_key(void *arg, const void *k, size_t kl, const void *v, size_t vl, uint64_t ver)
{
    scan_seen *x = arg;
    if (kl != 5 || ((const char *)k)[0] != 'g')
        return 0;
    int g = (((const char *)k)[1] - '0') * 10 + (((const char *)k)[2] - '0');
    int which = ((const char *)k)[4] == 'b';
    if (g >= 0 && g < PAIRS) {
        kv_value *slot = &x->v[g][which];
        slot->data = malloc(vl ? vl : 1);
        memcpy(slot->data, v, vl);
        slot->len = vl;
        slot->version = ver;
    }
    return 0;
}

static void *reader(void *arg)
{
    ctx *c = arg;
    unsigned seed = (unsigned)(uintptr_t)pthread_self() ^ c->seed ^ 0x5a5a;
    char a[16], b[16];
    for (long i = 0; i < c->iters && !atomic_load(&c->fail.count); i++) {
        uint64_t lo = kv_compact_revision(c->s), hi = kv_revision(c->s);
        if (hi == 0)
            continue;
        if (lo == 0)
            lo = 1;
        uint64_t rev = hi > lo ? lo + (uint64_t)rand_r(&seed) % (hi - lo + 1) : hi;
        int g = rand_r(&seed) % PAIRS;
        pair_keys(g, a, b);
        kv_key k[2] = {{a, strlen(a)}, {b, strlen(b)}};
        kv_value first[2], again[2];
        int rc = kv_mget_at(c->s, k, 2, rev, first);
        if (rc == KV_COMPACTED)
            continue;
        if (rc != KV_OK) {
            stress_failf(&c->fail, "mget_at %llu: %s", (unsigned long long)rev, kv_strerror(rc));
            break;
        }
        check_pair(c, &first[0], &first[1], rev, g);
        rc = kv_mget_at(c->s, k, 2, rev, again);
        if (rc == KV_OK) {
            for (int j = 0; j < 2; j++)
                check_pair(c, &first[j], &again[j], rev, g);
            kv_values_free(again, 2);
        } else if (rc != KV_COMPACTED) {
            stress_failf(&c->fail, "mget_at again: %s", kv_strerror(rc));
        }
        kv_values_free(first, 2);
        if (i % 16 == 0) {
            scan_seen x;
            memset(&x, 0, sizeof x);
            uint64_t cursor = 0, next;
            do {
                rc = kv_scan_at(c->s, "g", 1, rev, cursor, 7, on_key, &x, &next);
                cursor = next;
            } while (rc == KV_OK && cursor);
            if (rc != KV_OK && rc != KV_COMPACTED)
                stress_failf(&c->fail, "scan_at: %s", kv_strerror(rc));
            for (int p = 0; p < PAIRS; p++) {
                if (rc == KV_OK)
                    check_pair(c, &x.v[p][0], &x.v[p][1], rev, p);
                free(x.v[p][0].data);
                free(x.v[p][1].data);
            }
        }
    }
    return NULL;
}

static void *compactor(void *arg)
{
    ctx *c = arg;
    while (!atomic_load(&c->stop)) {
        uint64_t latest = kv_revision(c->s);
        if (latest > 300)
            (void)kv_compact(c->s, latest - 300); /* may say COMPACTED: fine */
        usleep(2000);
    }
    return NULL;
}

Test(stress_history, past_reads_are_never_torn_and_never_change)
{
    kv_config cfg;
    kv_config_init(&cfg, sizeof cfg);
    cfg.history = 1;
    cfg.history_versions = 64;
    cfg.history_bytes = 256 * 1024;
    ctx c = {.fail = STRESS_FAIL_INIT, .iters = stress_iters(200000, 10000), .seed = 12345};
    cr_assert_eq(kv_open_config(&cfg, &c.s), KV_OK);
    pthread_t w[2], r[2], comp;
    for (int i = 0; i < 2; i++) {
        pthread_create(&w[i], NULL, writer, &c);
        pthread_create(&r[i], NULL, reader, &c);
    }
    pthread_create(&comp, NULL, compactor, &c);
    for (int i = 0; i < 2; i++) {
        pthread_join(w[i], NULL);
        pthread_join(r[i], NULL);
    }
    atomic_store(&c.stop, true);
    pthread_join(comp, NULL);
    cr_assert_eq(atomic_load(&c.fail.count), 0, "%ld failures, first: %s",
                 atomic_load(&c.fail.count), c.fail.first);
    kv_metrics m;
    cr_assert_eq(kv_metrics_read(c.s, &m, sizeof m), KV_OK);
    cr_assert_gt(m.compact_revision, 0, "compaction ran");
    kv_close(c.s);
}

/* ---- watchers following the same load ------------------------------------ */

typedef struct follower {
    ctx *c;
    bool slow;       /* falls behind the feed now and then */
    char val[PAIRS][2][32];
    bool present[PAIRS][2];
    uint64_t last_rev;
} follower;

static void apply_event(follower *f, const kv_event *e)
{
    ctx *c = f->c;
    const char *k = e->key;
    if (e->klen != 5 || k[0] != 'g') {
        stress_failf(&c->fail, "watched a key outside the prefix");
        return;
    }
    int g = (k[1] - '0') * 10 + (k[2] - '0'), which = k[4] == 'b';
    if (e->revision < f->last_rev)
        stress_failf(&c->fail, "revision %llu after %llu", (unsigned long long)e->revision,
                     (unsigned long long)f->last_rev);
    f->last_rev = e->revision;
    f->present[g][which] = !e->deleted;
    if (!e->deleted)
        snprintf(f->val[g][which], 32, "%.*s", (int)e->vlen, (const char *)e->value);
}

static void *follow(void *arg)
{
    follower *f = arg;
    ctx *c = f->c;
    kv_watch *w;
    int rc = kv_watch_open(c->s, "g", 1, 1, 1, &w);
    if (rc != KV_OK) {
        stress_failf(&c->fail, "kv_watch_open: %s", kv_strerror(rc));
        return NULL;
    }
    unsigned seed = f->slow ? 7 : 11;
    for (;;) {
        kv_event *ev;
        size_t n;
        rc = kv_watch_next(w, &ev, &n, 64, 10);
        if (rc != KV_OK) {
            stress_failf(&c->fail, "kv_watch_next: %s", kv_strerror(rc));
            break;
        }
        for (size_t i = 0; i < n; i++)
            apply_event(f, &ev[i]);
        /* a change of a pair is delivered whole: the pair agrees after it */
        kv_events_free(ev, n);
        if (f->slow && rand_r(&seed) % 64 == 0)
            usleep(20 * 1000);
        if (n == 0 && atomic_load(&c->stop) && kv_watch_revision(w) > kv_revision(c->s))
            break;
    }
    kv_watch_close(w);
    return NULL;
}

Test(stress_history, watchers_see_every_change_in_order)
{
    kv_config cfg;
    kv_config_init(&cfg, sizeof cfg);
    cfg.history = 1;
    ctx c = {.fail = STRESS_FAIL_INIT, .iters = stress_iters(30000, 3000), .seed = 777};
    cr_assert_eq(kv_open_config(&cfg, &c.s), KV_OK);
    static follower f[2];
    memset(f, 0, sizeof f);
    pthread_t w[2], fw[2];
    for (int i = 0; i < 2; i++) {
        f[i].c = &c;
        f[i].slow = i == 1;
        pthread_create(&fw[i], NULL, follow, &f[i]);
    }
    for (int i = 0; i < 2; i++)
        pthread_create(&w[i], NULL, writer, &c);
    for (int i = 0; i < 2; i++)
        pthread_join(w[i], NULL);
    atomic_store(&c.stop, true);
    for (int i = 0; i < 2; i++)
        pthread_join(fw[i], NULL);
    cr_assert_eq(atomic_load(&c.fail.count), 0, "%ld failures, first: %s",
                 atomic_load(&c.fail.count), c.fail.first);
    /* what each watcher rebuilt from its events is the store */
    char a[16], b[16];
    for (int g = 0; g < PAIRS; g++) {
        pair_keys(g, a, b);
        const char *names[2] = {a, b};
        for (int j = 0; j < 2; j++) {
            kv_value v;
            int rc = kv_get(c.s, names[j], strlen(names[j]), &v);
            for (int i = 0; i < 2; i++) {
                cr_assert_eq(f[i].present[g][j], rc == KV_OK, "watcher %d, %s", i, names[j]);
                if (rc == KV_OK)
                    cr_assert(strlen(f[i].val[g][j]) == v.len &&
                                  memcmp(f[i].val[g][j], v.data, v.len) == 0,
                              "watcher %d, %s", i, names[j]);
            }
            if (rc == KV_OK)
                kv_value_free(&v);
        }
    }
    kv_close(c.s);
}
