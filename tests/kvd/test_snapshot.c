/*
 * test_snapshot.c - the replicated state machine's snapshot
 * (kvd/src/repl/snapshot.h): a store with history encoded and installed
 * into another store that had its own, different state gives the same
 * keys, revisions, expiry times and history, read at every revision; the
 * nodes' addresses round-trip; a snapshot cut short anywhere, or with a
 * count that does not match, is refused and changes nothing (its size
 * says where it ends, the caller's sections after it); the older formats
 * still install.
 */
#include <criterion/criterion.h>
#include <pthread.h>
#include <sched.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "kv.h"
#include "repl/snapshot.h"

static kv_store *open_store(int history)
{
    kv_config c;
    kv_config_init(&c, sizeof c);
    c.history = history;
    c.history_versions = history ? 5 : 0;
    c.manual_expiry = 1; /* as a cluster node: expired keys stay until removed */
    kv_store *s = NULL;
    cr_assert_eq(kv_open_config(&c, &s), KV_OK);
    return s;
}

static void put(kv_store *s, const char *k, const char *v)
{
    cr_assert_eq(kv_set(s, k, strlen(k), v, strlen(v), NULL), KV_OK);
}

/* The whole readable state of a store: every key of k0..k19 at every
 * revision from `from` on, with metadata, as one string. */
static char *state(kv_store *s, uint64_t from)
{
    size_t cap = 1 << 16, len = 0;
    char *out = malloc(cap);
    out[0] = 0;
    uint64_t last = kv_revision(s);
    len += (size_t)snprintf(out, cap, "rev %llu compact %llu\n", (unsigned long long)last,
                            (unsigned long long)kv_compact_revision(s));
    for (uint64_t rev = from ? from : last; rev <= last; rev++)
        for (int i = 0; i < 20; i++) {
            char k[8];
            snprintf(k, sizeof k, "k%d", i);
            kv_value v = {0};
            kv_key_meta m = {0};
            int rc = from ? kv_get_at(s, k, strlen(k), rev, &v, &m) : kv_get(s, k, strlen(k), &v);
            if (len + 256 > cap)
                out = realloc(out, cap *= 2);
            len += (size_t)snprintf(out + len, cap - len, "%s@%llu %d %.*s %llu %llu %llu %llu\n",
                                    k, (unsigned long long)rev, rc, (int)v.len,
                                    v.data ? (char *)v.data : "",
                                    (unsigned long long)m.revision,
                                    (unsigned long long)m.create_revision,
                                    (unsigned long long)m.version,
                                    (unsigned long long)m.expire_at_ms);
            kv_value_free(&v);
        }
    return out;
}

/* A store with history: overwrites, deletes, a multi-set, a rollback, a
 * compaction, an expiry time. */
static kv_store *source(void)
{
    kv_store *s = open_store(1);
    char v[16];
    for (int i = 0; i < 300; i++) {
        char k[8];
        snprintf(k, sizeof k, "k%d", (i * 7) % 20);
        snprintf(v, sizeof v, "v%d", i);
        if (i % 9 == 4)
            (void)kv_delete(s, k, strlen(k), NULL);
        else
            put(s, k, v);
        if (i == 150)
            cr_assert_eq(kv_compact(s, kv_revision(s) - 40), KV_OK);
    }
    kv_pair p[2] = {{"k1", 2, "m", 1}, {"k2", 2, "m", 1}};
    cr_assert_eq(kv_mset(s, p, 2, NULL), KV_OK);
    kv_key ks[2] = {{"k1", 2}, {"k2", 2}};
    cr_assert_eq(kv_rollback(s, ks, 2, kv_revision(s) - 30, 0, NULL, NULL), KV_OK);
    cr_assert_eq(kv_set_ttl(s, "k3", 2, "t", 1, 3600 * 1000, NULL), KV_OK);
    return s;
}

static const kvd_snap_node nodes[2] = {{1, "127.0.0.1:7001"}, {3, "host-three:7003"}};

Test(repl_snapshot, a_store_with_history_installs_exactly)
{
    kv_store *s = source(), *t = open_store(1);
    for (int i = 0; i < 50; i++) {
        char k[8];
        snprintf(k, sizeof k, "k%d", i % 25); /* k20..k24: keys s lacks */
        put(t, k, "theirs");
    }
    unsigned char *buf;
    size_t len;
    kvd_snap_counts c;
    cr_assert_eq(kvd_snap_encode(s, nodes, 2, &buf, &len, &c), KV_OK);
    cr_assert_gt(c.history_versions, 0);
    kvd_snap_node got[KVD_SNAP_MAX_NODES];
    unsigned n = 0;
    kvd_snap_counts ic;
    cr_assert_eq(kvd_snap_install(t, buf, len, got, &n, &ic), KV_OK);
    cr_assert_eq(n, 2);
    cr_assert_eq(got[1].id, 3);
    cr_assert_str_eq(got[1].addr, "host-three:7003");
    cr_assert_eq(ic.keys, c.keys);
    cr_assert_eq(ic.history_versions, c.history_versions);
    cr_assert_geq(ic.stale_removed, 5, "k20..k24 removed (and keys s deleted)");
    char *a = state(s, kv_compact_revision(s) + 1), *b = state(t, kv_compact_revision(s) + 1);
    cr_assert_str_eq(b, a);
    free(a);
    free(b);
    for (int i = 20; i < 25; i++) {
        char k[8];
        snprintf(k, sizeof k, "k%d", i);
        cr_assert_eq(kv_get(t, k, strlen(k), &(kv_value){0}), KV_NOT_FOUND, "%s", k);
    }
    /* and both go on alike */
    cr_assert_eq(kv_set(s, "k5", 2, "x", 1, NULL), KV_OK);
    cr_assert_eq(kv_set(t, "k5", 2, "x", 1, NULL), KV_OK);
    a = state(s, kv_revision(s));
    b = state(t, kv_revision(t));
    cr_assert_str_eq(b, a);
    free(a);
    free(b);
    free(buf);
    kv_close(s);
    kv_close(t);
}

typedef struct writer {
    kv_store *s;
    atomic_int stop, n;
} writer;

/* Writes, deletes and compactions past the held revision. */
static void *write_on(void *arg)
{
    writer *w = arg;
    char k[8], v[16];
    for (int i = 0; !atomic_load(&w->stop) || i < 200; i++, atomic_fetch_add(&w->n, 1)) {
        snprintf(k, sizeof k, "k%d", (i * 3) % 20);
        snprintf(v, sizeof v, "w%d", i);
        if (i % 7 == 2)
            (void)kv_delete(w->s, k, strlen(k), NULL);
        else
            cr_assert_eq(kv_set(w->s, k, strlen(k), v, strlen(v), NULL), KV_OK);
        if (i % 50 == 49)
            cr_assert_eq(kv_compact(w->s, kv_revision(w->s) - 2), KV_OK);
    }
    return NULL;
}

Test(repl_snapshot, a_held_snapshot_made_while_writes_go_on_is_the_store_at_the_hold)
{
    kv_store *s = source();
    uint64_t rev, compact;
    cr_assert_eq(kv_history_hold(s, &rev, &compact), KV_OK);
    unsigned char *exact, *held;
    size_t exact_len, held_len;
    kvd_snap_counts ce, ch;
    cr_assert_eq(kvd_snap_encode(s, nodes, 2, &exact, &exact_len, &ce), KV_OK);
    writer w = {.s = s};
    pthread_t t;
    cr_assert_eq(pthread_create(&t, NULL, write_on, &w), 0);
    while (atomic_load(&w.n) < 100)
        sched_yield();
    cr_assert_eq(kvd_snap_encode_held(s, rev, compact, nodes, 2, &held, &held_len, &ch), KV_OK);
    atomic_store(&w.stop, 1);
    pthread_join(t, NULL);
    kv_history_release(s);
    cr_assert_gt(kv_compact_revision(s), rev, "compacted past the held revision meanwhile");
    cr_assert_eq(ch.revision, ce.revision);
    cr_assert_eq(ch.keys, ce.keys);
    cr_assert_eq(ch.history_keys, ce.history_keys);
    cr_assert_eq(ch.history_versions, ce.history_versions);
    cr_assert_eq(held_len, exact_len);
    cr_assert_eq(kvd_snap_size(held, held_len), held_len);
    /* installed, both give the same store, read at every revision */
    kv_store *a = open_store(1), *b = open_store(1);
    kvd_snap_node got[KVD_SNAP_MAX_NODES];
    unsigned n;
    kvd_snap_counts ic;
    cr_assert_eq(kvd_snap_install(a, exact, exact_len, got, &n, &ic), KV_OK);
    cr_assert_eq(kvd_snap_install(b, held, held_len, got, &n, &ic), KV_OK);
    cr_assert_eq(n, 2);
    char *sa = state(a, compact + 1), *sb = state(b, compact + 1);
    cr_assert_str_eq(sb, sa);
    free(sa);
    free(sb);
    free(exact);
    free(held);
    /* without a hold: refused */
    cr_assert_eq(kvd_snap_encode_held(s, rev, compact, nodes, 2, &held, &held_len, &ch),
                 KV_INVALID_ARGUMENT);
    kv_close(s);
    kv_close(a);
    kv_close(b);
}

Test(repl_snapshot, a_node_without_history_takes_the_keys_only)
{
    kv_store *s = source(), *t = open_store(0);
    unsigned char *buf;
    size_t len;
    kvd_snap_counts c;
    cr_assert_eq(kvd_snap_encode(s, nodes, 2, &buf, &len, &c), KV_OK);
    kvd_snap_node got[KVD_SNAP_MAX_NODES];
    unsigned n;
    cr_assert_eq(kvd_snap_install(t, buf, len, got, &n, &c), KV_OK);
    char *a = state(s, 0), *b = state(t, 0);
    /* the latest values and revisions match; t has no compaction point */
    cr_assert_str_eq(strchr(b, '\n'), strchr(a, '\n'));
    free(a);
    free(b);
    free(buf);
    /* and the other way round: a store without history to one with it */
    kv_store *u = open_store(1);
    cr_assert_eq(kvd_snap_encode(t, nodes, 0, &buf, &len, &c), KV_OK);
    cr_assert_eq(kvd_snap_install(u, buf, len, got, &n, &c), KV_OK);
    cr_assert_eq(n, 0);
    cr_assert_eq(kv_revision(u), kv_revision(t));
    free(buf);
    kv_close(s);
    kv_close(t);
    kv_close(u);
}

Test(repl_snapshot, a_damaged_snapshot_is_refused_and_changes_nothing)
{
    kv_store *s = open_store(1);
    put(s, "k1", "a");
    put(s, "k1", "b");
    put(s, "k2", "c");
    unsigned char *buf;
    size_t len;
    kvd_snap_counts c;
    cr_assert_eq(kvd_snap_encode(s, nodes, 2, &buf, &len, &c), KV_OK);
    kv_store *t = open_store(1);
    put(t, "mine", "1");
    char *before = state(t, 1);
    kvd_snap_node got[KVD_SNAP_MAX_NODES];
    unsigned n;
    for (size_t cut = 0; cut < len; cut++)
        cr_assert_eq(kvd_snap_install(t, buf, cut, got, &n, &c), KV_CORRUPT, "cut at %zu",
                     cut);
    for (size_t cut = 0; cut < len; cut++)
        cr_assert_eq(kvd_snap_size(buf, cut), 0, "cut at %zu", cut);
    /* what follows is the caller's; a wrong magic, an entry count too high */
    unsigned char *longer = malloc(len + 1);
    memcpy(longer, buf, len);
    longer[len] = 0;
    cr_assert_eq(kvd_snap_size(longer, len + 1), len);
    memcpy(longer, "KVDSNAP9", 8);
    cr_assert_eq(kvd_snap_install(t, longer, len, got, &n, &c), KV_CORRUPT);
    memcpy(longer, buf, len);
    longer[16]++; /* the entry count (after magic and revision) */
    cr_assert_eq(kvd_snap_install(t, longer, len, got, &n, &c), KV_CORRUPT);
    /* any byte changed: the checksum */
    for (size_t i = 8; i < len; i += 7) {
        memcpy(longer, buf, len);
        longer[i] ^= 0x20;
        cr_assert_eq(kvd_snap_size(longer, len), 0, "byte %zu flipped", i);
    }
    char *after = state(t, 1);
    cr_assert_str_eq(after, before);
    free(before);
    free(after);
    free(longer);
    free(buf);
    kv_close(s);
    kv_close(t);
}

Test(repl_snapshot, the_older_formats_still_install)
{
    kv_store *s = open_store(0);
    put(s, "k1", "a");
    put(s, "k2", "b");
    unsigned char *buf;
    size_t len;
    kvd_snap_counts c;
    cr_assert_eq(kvd_snap_encode(s, nodes, 1, &buf, &len, &c), KV_OK);
    /* KVDSNAP2: the same without the history byte and the checksum */
    memcpy(buf, "KVDSNAP2", 8);
    kv_store *t = open_store(1);
    kvd_snap_node got[KVD_SNAP_MAX_NODES];
    unsigned n;
    cr_assert_eq(kvd_snap_size(buf, len - 9), len - 9);
    cr_assert_eq(kvd_snap_install(t, buf, len - 9, got, &n, &c), KV_OK);
    char *a = state(s, 0), *b = state(t, 0);
    cr_assert_str_eq(strchr(b, '\n'), strchr(a, '\n'));
    free(a);
    free(b);
    /* KVDSNAP1: entries without expiry times */
    unsigned char v1[256];
    size_t o = 0;
    memcpy(v1, "KVDSNAP1", 8);
    o = 8;
    uint64_t rev = 7, count = 1;
    memcpy(v1 + o, &rev, 8); /* little-endian machine (x86-64, arm64) */
    memcpy(v1 + o + 8, &count, 8);
    memset(v1 + o + 16, 0, 4);
    o += 20;
    uint32_t kl = 3, vl = 2;
    memcpy(v1 + o, &kl, 4);
    memcpy(v1 + o + 4, &vl, 4);
    memcpy(v1 + o + 8, &rev, 8);
    memcpy(v1 + o + 16, "oldhi", 5);
    o += 21;
    kv_store *u = open_store(0);
    cr_assert_eq(kvd_snap_install(u, v1, o, got, &n, &c), KV_OK);
    kv_value v = {0};
    cr_assert_eq(kv_get(u, "old", 3, &v), KV_OK);
    cr_assert_eq(v.len, 2);
    cr_assert(memcmp(v.data, "hi", 2) == 0);
    kv_value_free(&v);
    cr_assert_eq(kv_revision(u), 7);
    free(buf);
    kv_close(s);
    kv_close(t);
    kv_close(u);
}
