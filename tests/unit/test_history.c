/*
 * test_history.c - history (kv.h, "History"): reads at a revision, a key's
 * changes, rollback, compaction and the bounds, against the public API.
 */
#include <pthread.h>
#include <stdatomic.h>
#include <time.h>
#include <unistd.h>

#include "kvtest.h"

static kv_store *open_hist(uint32_t versions, uint64_t bytes, uint32_t age_s)
{
    kv_config c;
    kv_config_init(&c, sizeof c);
    c.history = 1;
    c.history_versions = versions;
    c.history_bytes = bytes;
    c.history_age_s = age_s;
    kv_store *s = NULL;
    int rc = kv_open_config(&c, &s);
    cr_assert_eq(rc, KV_OK, "kv_open_config: %s", kv_strerror(rc));
    return s;
}

static uint64_t del(kv_store *s, const char *k)
{
    uint64_t v = 0;
    cr_assert_eq(kv_delete(s, k, strlen(k), &v), KV_OK);
    return v;
}

/* Asserts key k held v (NULL: absent) at rev. */
static void expect_at(kv_store *s, const char *k, uint64_t rev, const char *v)
{
    kv_value out = {0};
    int rc = kv_get_at(s, k, strlen(k), rev, &out, NULL);
    if (!v) {
        cr_assert_eq(rc, KV_NOT_FOUND, "%s at %llu: %s", k, (unsigned long long)rev,
                     kv_status_name(rc));
        return;
    }
    cr_assert_eq(rc, KV_OK, "%s at %llu: %s", k, (unsigned long long)rev, kv_status_name(rc));
    cr_assert_eq(out.len, strlen(v));
    cr_assert(memcmp(out.data, v, out.len) == 0, "%s at %llu: %.*s, not %s", k,
              (unsigned long long)rev, (int)out.len, (char *)out.data, v);
    kv_value_free(&out);
}

static int get_at_rc(kv_store *s, const char *k, uint64_t rev)
{
    kv_value out = {0};
    int rc = kv_get_at(s, k, strlen(k), rev, &out, NULL);
    kv_value_free(&out);
    return rc;
}

Test(history, off_by_default_and_calls_say_so)
{
    kv_store *s = kvt_open(NULL);
    kvt_set(s, "a", "1");
    kv_value v;
    kv_event *ev;
    size_t n;
    cr_assert_eq(kv_get_at(s, "a", 1, 1, &v, NULL), KV_UNSUPPORTED);
    cr_assert_eq(kv_history(s, "a", 1, 0, 0, 0, &ev, &n), KV_UNSUPPORTED);
    cr_assert_eq(kv_rollback(s, &(kv_key){"a", 1}, 1, 1, 0, NULL, NULL), KV_UNSUPPORTED);
    cr_assert_eq(kv_compact(s, 1), KV_UNSUPPORTED);
    cr_assert_eq(kv_compact_revision(s), 0);
    kv_close(s);
}

Test(history, revisions_are_dense_and_reads_at_each_are_exact)
{
    kv_store *s = open_hist(0, 0, 0);
    uint64_t r1 = kvt_set(s, "a", "1");
    uint64_t r2 = kvt_set(s, "a", "2");
    uint64_t r3 = del(s, "a");
    uint64_t r4 = kvt_set(s, "a", "3");
    cr_assert_eq(r1, 1);
    cr_assert_eq(r2, 2);
    cr_assert_eq(r3, 3);
    cr_assert_eq(r4, 4);
    expect_at(s, "a", r1, "1");
    expect_at(s, "a", r2, "2");
    expect_at(s, "a", r3, NULL);
    expect_at(s, "a", r4, "3");
    expect_at(s, "b", r4, NULL);

    kv_value v;
    kv_key_meta m;
    cr_assert_eq(kv_get_at(s, "a", 1, r2, &v, &m), KV_OK);
    cr_assert_eq(v.version, r2);
    cr_assert_eq(m.revision, r2);
    cr_assert_eq(m.create_revision, r1);
    cr_assert_eq(m.version, 2);
    kv_value_free(&v);
    cr_assert_eq(kv_get_at(s, "a", 1, r4, &v, &m), KV_OK);
    cr_assert_eq(m.create_revision, r4, "recreated after a delete: a new create revision");
    cr_assert_eq(m.version, 1);
    kv_value_free(&v);

    cr_assert_eq(get_at_rc(s, "a", r4 + 1), KV_FUTURE_REVISION);
    cr_assert_eq(get_at_rc(s, "a", 0), KV_INVALID_ARGUMENT);
    cr_assert_eq(get_at_rc(s, "", 1), KV_KEY_EMPTY);
    kv_close(s);
}

Test(history, mget_at_is_one_snapshot_of_a_past_revision)
{
    kv_store *s = open_hist(0, 0, 0);
    kv_pair p1[] = {{"x", 1, "old", 3}, {"y", 1, "old", 3}};
    kv_pair p2[] = {{"x", 1, "new", 3}, {"y", 1, "new", 3}};
    uint64_t r1, r2;
    cr_assert_eq(kv_mset(s, p1, 2, &r1), KV_OK);
    cr_assert_eq(kv_mset(s, p2, 2, &r2), KV_OK);
    del(s, "y");
    kv_key keys[] = {{"x", 1}, {"y", 1}, {"z", 1}};
    kv_value out[3];
    cr_assert_eq(kv_mget_at(s, keys, 3, r1, out), KV_OK);
    cr_assert(out[0].len == 3 && memcmp(out[0].data, "old", 3) == 0);
    cr_assert(out[1].len == 3 && memcmp(out[1].data, "old", 3) == 0);
    cr_assert_eq(out[0].version, r1);
    cr_assert_eq(out[1].version, r1);
    cr_assert_null(out[2].data);
    kv_values_free(out, 3);
    cr_assert_eq(kv_mget_at(s, keys, 3, kv_revision(s), out), KV_OK);
    cr_assert_null(out[1].data, "y is deleted at the latest revision");
    kv_values_free(out, 3);
    kv_close(s);
}

typedef struct seen {
    char keys[64][16];
    char vals[64][16];
    int n;
} seen;

static int collect(void *ctx, const void *k, size_t kl, const void *v, size_t vl, uint64_t ver)
{
    (void)ver;
    seen *x = ctx;
    cr_assert_lt(x->n, 64);
    snprintf(x->keys[x->n], 16, "%.*s", (int)kl, (const char *)k);
    snprintf(x->vals[x->n], 16, "%.*s", (int)vl, (const char *)v);
    x->n++;
    return 0;
}

static const char *seen_val(const seen *x, const char *k)
{
    for (int i = 0; i < x->n; i++)
        if (strcmp(x->keys[i], k) == 0)
            return x->vals[i];
    return NULL;
}

Test(history, scan_at_gives_the_keys_of_that_revision_once_across_pages)
{
    kv_store *s = open_hist(0, 0, 0);
    char k[16], v[16];
    for (int i = 0; i < 20; i++) {
        snprintf(k, sizeof k, "p%02d", i);
        snprintf(v, sizeof v, "v%d", i);
        kvt_set(s, k, v);
    }
    kvt_set(s, "other", "x");
    uint64_t at = kv_revision(s);
    for (int i = 0; i < 10; i++) { /* delete half, overwrite some, add new */
        snprintf(k, sizeof k, "p%02d", i);
        del(s, k);
    }
    kvt_set(s, "p15", "changed");
    kvt_set(s, "p99", "new");
    for (size_t limit = 1; limit <= 64; limit *= 4) {
        seen x = {.n = 0};
        uint64_t cursor = 0, next;
        do {
            cr_assert_eq(kv_scan_at(s, "p", 1, at, cursor, limit, collect, &x, &next), KV_OK);
            cursor = next;
        } while (cursor);
        cr_assert_eq(x.n, 20, "limit %zu: %d keys", limit, x.n);
        for (int i = 0; i < 20; i++) {
            snprintf(k, sizeof k, "p%02d", i);
            snprintf(v, sizeof v, "v%d", i);
            cr_assert_str_eq(seen_val(&x, k) ? seen_val(&x, k) : "(none)", v);
        }
        cr_assert_null(seen_val(&x, "p99"));
    }
    kv_close(s);
}

Test(history, history_lists_changes_newest_first_with_deletions)
{
    kv_store *s = open_hist(0, 0, 0);
    uint64_t r1 = kvt_set(s, "k", "a");
    uint64_t r2 = kvt_set(s, "k", "b");
    uint64_t r3 = del(s, "k");
    uint64_t r4 = kvt_set(s, "k", "c");
    kvt_set(s, "other", "x");
    kv_event *ev;
    size_t n;
    cr_assert_eq(kv_history(s, "k", 1, 0, 0, 0, &ev, &n), KV_OK);
    cr_assert_eq(n, 4);
    cr_assert_eq(ev[0].revision, r4);
    cr_assert_eq(ev[0].version, 1);
    cr_assert_eq(ev[0].create_revision, r4);
    cr_assert(ev[0].vlen == 1 && memcmp(ev[0].value, "c", 1) == 0);
    cr_assert_eq(ev[1].revision, r3);
    cr_assert_eq(ev[1].deleted, 1);
    cr_assert_null(ev[1].value);
    cr_assert_eq(ev[2].revision, r2);
    cr_assert_eq(ev[2].version, 2);
    cr_assert_eq(ev[2].create_revision, r1);
    cr_assert_eq(ev[3].revision, r1);
    kv_events_free(ev, n);

    cr_assert_eq(kv_history(s, "k", 1, 0, 0, 2, &ev, &n), KV_OK);
    cr_assert_eq(n, 2, "limit");
    kv_events_free(ev, n);
    cr_assert_eq(kv_history(s, "k", 1, r2, r3, 0, &ev, &n), KV_OK);
    cr_assert_eq(n, 2, "range [r2, r3]");
    cr_assert_eq(ev[0].revision, r3);
    cr_assert_eq(ev[1].revision, r2);
    kv_events_free(ev, n);
    cr_assert_eq(kv_history(s, "nokey", 5, 0, 0, 0, &ev, &n), KV_OK);
    cr_assert_eq(n, 0);
    kv_events_free(ev, n);
    cr_assert_eq(kv_history(s, "k", 1, 0, kv_revision(s) + 1, 0, &ev, &n), KV_FUTURE_REVISION);
    cr_assert_eq(kv_history(s, "k", 1, r3, r2, 0, &ev, &n), KV_INVALID_ARGUMENT);
    kv_close(s);
}

Test(history, rollback_of_a_multi_key_change_is_one_new_revision)
{
    kv_store *s = open_hist(0, 0, 0);
    kv_pair p1[] = {{"a", 1, "a1", 2}, {"b", 1, "b1", 2}};
    uint64_t r1;
    cr_assert_eq(kv_mset(s, p1, 2, &r1), KV_OK);
    kv_pair p2[] = {{"a", 1, "a2", 2}, {"c", 1, "c2", 2}};
    cr_assert_eq(kv_mset(s, p2, 2, NULL), KV_OK);
    del(s, "b");
    uint64_t before = kv_revision(s);

    kv_key keys[] = {{"a", 1}, {"b", 1}, {"c", 1}};
    uint64_t rv = 0;
    size_t changed = 0;
    cr_assert_eq(kv_rollback(s, keys, 3, r1, 0, &rv, &changed), KV_OK);
    cr_assert_eq(rv, before + 1, "one change, one new revision");
    cr_assert_eq(changed, 3);
    kvt_expect(s, "a", "a1", rv);
    kvt_expect(s, "b", "b1", rv);
    cr_assert_eq(kv_exists(s, "c", 1, NULL), KV_NOT_FOUND);
    /* history is not rewritten: the state before the rollback is there */
    expect_at(s, "a", before, "a2");
    expect_at(s, "c", before, "c2");

    /* the rollback itself can be rolled back */
    cr_assert_eq(kv_rollback(s, keys, 3, before, 0, &rv, &changed), KV_OK);
    kvt_expect(s, "a", "a2", rv);
    cr_assert_eq(kv_exists(s, "b", 1, NULL), KV_NOT_FOUND);
    kvt_expect(s, "c", "c2", rv);

    /* nothing changed since: nothing to do */
    uint64_t same = 0;
    cr_assert_eq(kv_rollback(s, keys, 3, kv_revision(s), 0, &same, &changed), KV_OK);
    cr_assert_eq(changed, 0);
    cr_assert_eq(same, 0);
    kv_close(s);
}

Test(history, conditional_rollback_refuses_keys_changed_since)
{
    kv_store *s = open_hist(0, 0, 0);
    uint64_t r1 = kvt_set(s, "a", "1");
    uint64_t r2 = kvt_set(s, "a", "2");
    uint64_t r3 = kvt_set(s, "a", "3"); /* someone else's change */
    uint64_t v = 0;
    cr_assert_eq(kv_rollback(s, &(kv_key){"a", 1}, 1, r1, r2, &v, NULL), KV_VERSION_MISMATCH);
    kvt_expect(s, "a", "3", r3);
    cr_assert_eq(kv_revision(s), r3, "nothing changed");
    cr_assert_eq(kv_rollback(s, &(kv_key){"a", 1}, 1, r1, r3, &v, NULL), KV_OK);
    kvt_expect(s, "a", "1", v);
    kv_close(s);
}

Test(history, rollback_prefix_restores_deleted_and_removes_created_keys)
{
    kv_store *s = open_hist(0, 0, 0);
    kvt_set(s, "cfg/a", "1");
    kvt_set(s, "cfg/b", "1");
    kvt_set(s, "keep", "1");
    uint64_t at = kv_revision(s);
    del(s, "cfg/a");
    kvt_set(s, "cfg/b", "2");
    kvt_set(s, "cfg/c", "new");
    kvt_set(s, "keep", "2");
    uint64_t rv = 0;
    size_t changed = 0;
    cr_assert_eq(kv_rollback_prefix(s, "cfg/", 4, at, 0, &rv, &changed), KV_OK);
    cr_assert_eq(changed, 3);
    kvt_expect(s, "cfg/a", "1", rv);
    kvt_expect(s, "cfg/b", "1", rv);
    cr_assert_eq(kv_exists(s, "cfg/c", 5, NULL), KV_NOT_FOUND);
    kvt_expect(s, "keep", "2", 0);
    kv_close(s);
}

Test(history, compaction_drops_what_only_older_reads_need)
{
    kv_store *s = open_hist(0, 0, 0);
    uint64_t r1 = kvt_set(s, "a", "1");
    uint64_t r2 = kvt_set(s, "a", "2");
    kvt_set(s, "b", "1");
    uint64_t r4 = del(s, "b");
    uint64_t r5 = kvt_set(s, "a", "3");
    kv_metrics m;
    cr_assert_eq(kv_metrics_read(s, &m, sizeof m), KV_OK);
    cr_assert_eq(m.history_versions, 3);
    cr_assert_gt(m.history_bytes, 0);
    uint64_t full_bytes = m.history_bytes;

    cr_assert_eq(kv_compact(s, r4), KV_OK);
    cr_assert_eq(kv_compact_revision(s), r4);
    cr_assert_eq(get_at_rc(s, "a", r1), KV_COMPACTED);
    expect_at(s, "a", r4, "2");
    expect_at(s, "b", r4, NULL);
    expect_at(s, "a", r5, "3");
    cr_assert_eq(kv_metrics_read(s, &m, sizeof m), KV_OK);
    cr_assert_eq(m.history_versions, 1, "only a=2 (replaced at r5) is still needed");
    cr_assert_eq(m.compact_revision, r4);
    cr_assert_eq(kv_compact(s, r2), KV_COMPACTED);
    cr_assert_eq(kv_compact(s, r5 + 1), KV_FUTURE_REVISION);
    cr_assert_eq(kv_compact(s, r5), KV_OK);
    cr_assert_eq(kv_metrics_read(s, &m, sizeof m), KV_OK);
    cr_assert_eq(m.history_versions, 0);
    /* what stays: a's record of its version count (it is at version 3) */
    cr_assert_lt(m.history_bytes, full_bytes / 3);
    kv_event *ev;
    size_t n;
    cr_assert_eq(kv_history(s, "a", 1, r1, 0, 0, &ev, &n), KV_COMPACTED);
    cr_assert_eq(kv_history(s, "a", 1, 0, 0, 0, &ev, &n), KV_OK);
    cr_assert_eq(n, 1);
    cr_assert_eq(ev[0].version, 3, "version counts survive compaction");
    kv_events_free(ev, n);
    kv_close(s);
}

Test(history, the_per_key_bound_keeps_the_newest_versions)
{
    kv_store *s = open_hist(2, 0, 0);
    uint64_t r[6];
    char v[8];
    for (int i = 0; i < 6; i++) {
        snprintf(v, sizeof v, "v%d", i);
        r[i] = kvt_set(s, "k", v);
    }
    kvt_set(s, "other", "x");
    kv_metrics m;
    cr_assert_eq(kv_metrics_read(s, &m, sizeof m), KV_OK);
    cr_assert_eq(m.history_versions, 2);
    expect_at(s, "k", r[3], "v3");
    expect_at(s, "k", r[4], "v4");
    cr_assert_eq(get_at_rc(s, "k", r[2]), KV_COMPACTED, "below the key's own floor");
    cr_assert_eq(kv_compact_revision(s), 0, "the store-wide point has not moved");
    kv_event *ev;
    size_t n;
    cr_assert_eq(kv_history(s, "k", 1, 0, 0, 0, &ev, &n), KV_OK);
    cr_assert_eq(n, 3);
    cr_assert_eq(ev[0].version, 6);
    kv_events_free(ev, n);
    kv_close(s);
}

static kv_metrics metrics_of(kv_store *s)
{
    kv_metrics m;
    cr_assert_eq(kv_metrics_read(s, &m, sizeof m), KV_OK);
    return m;
}

static uint64_t metric_hist_bytes(kv_store *s)
{
    return metrics_of(s).history_bytes;
}

/* n sets of 200-byte values to keys k0..k<nkeys - 1>, in turn. */
static void write_in_turn(kv_store *s, int nkeys, int n)
{
    char v[200];
    memset(v, 'x', sizeof v);
    for (int i = 0; i < n; i++) {
        char k[16];
        snprintf(k, sizeof k, "k%d", i % nkeys);
        cr_assert_eq(kv_set(s, k, strlen(k), v, sizeof v, NULL), KV_OK);
    }
}

Test(history, the_byte_bound_is_kept_by_the_compactor)
{
    uint64_t bound = 64 * 1024;
    kv_store *s = open_hist(0, bound, 0);
    write_in_turn(s, 50, 4000);
    cr_assert_gt(metric_hist_bytes(s), bound, "the writes made more history than the bound");
    /* The compactor runs every 100 ms; give it up to 30 s (a loaded CI
     * machine), then the bound must hold. */
    for (int i = 0; i < 300 && metric_hist_bytes(s) > bound; i++)
        usleep(100 * 1000);
    cr_assert_leq(metric_hist_bytes(s), bound);
    cr_assert_gt(kv_compact_revision(s), 0);
    cr_assert_eq(get_at_rc(s, "k49", kv_revision(s)), KV_OK, "latest values stay readable");
    kv_close(s);
}

/* Over half the byte bound the compactor only raises the compaction
 * revision, and a write drops its key's versions below it (up to four):
 * history shrinks as it is written, without a sweep. */
Test(history, a_write_drops_its_keys_versions_below_the_compaction_revision)
{
    uint64_t bound = 256 * 1024;
    kv_store *s = open_hist(0, bound, 0);
    /* 600 versions of 20 keys: between 1/2 and all of the bound */
    write_in_turn(s, 20, 620);
    uint64_t bytes = metric_hist_bytes(s);
    cr_assert_gt(bytes, bound / 2, "%llu bytes", (unsigned long long)bytes);
    cr_assert_lt(bytes, bound, "%llu bytes", (unsigned long long)bytes);
    for (int i = 0; i < 300 && kv_compact_revision(s) == 0; i++)
        usleep(100 * 1000);
    cr_assert_gt(kv_compact_revision(s), 20, "the compactor raised the compaction revision");
    uint64_t before = metrics_of(s).history_versions;
    write_in_turn(s, 1, 1); /* k0 */
    uint64_t after = metrics_of(s).history_versions;
    cr_assert_lt(after, before, "one version added, more dropped: %llu then %llu",
                 (unsigned long long)before, (unsigned long long)after);
    cr_assert_eq(get_at_rc(s, "k0", kv_revision(s)), KV_OK, "the latest value stays readable");
    kv_close(s);
}

/* The revisions at which the earlier versions of key g end (the key's
 * next change, set or delete), oldest first; kv_history lists the
 * changes newest first. Returns how many. */
static size_t version_ends(kv_store *s, uint64_t *ends, size_t cap)
{
    kv_event *ev;
    size_t n, k = 0;
    cr_assert_eq(kv_history(s, "g", 1, 0, 0, 0, &ev, &n), KV_OK);
    for (size_t i = n; i-- > 1;) /* ev[0] is the latest change */
        if (!ev[i].deleted) {
            cr_assert_lt(k, cap);
            ends[k++] = ev[i - 1].revision;
        }
    kv_events_free(ev, n);
    return k;
}

/* What g reads at revision r: its value, "-" absent, "?" an error. */
static void g_at(kv_store *s, uint64_t r, char *buf, size_t cap)
{
    kv_value out = {0};
    int rc = kv_get_at(s, "g", 1, r, &out, NULL);
    if (rc == KV_OK)
        snprintf(buf, cap, "%.*s", (int)out.len, (char *)out.data);
    else
        snprintf(buf, cap, "%s", rc == KV_NOT_FOUND ? "-" : "?");
    kv_value_free(&out);
}

/* A write's drops follow the key's versions through deletions: it drops
 * the oldest ones that end at or below the compaction revision, four at
 * most (kv.h, "History"), and nothing a read at or after that revision
 * still needs. */
Test(history, a_write_drops_versions_below_the_compaction_revision_across_deletions)
{
    kv_store *s = open_hist(0, 256 * 1024, 0);
    /* seven earlier versions of g, two of them ended by deletions; g is
     * live at the end */
    char v[16];
    for (int i = 0; i < 8; i++) {
        snprintf(v, sizeof v, "g%d", i);
        cr_assert_eq(kv_set(s, "g", 1, v, strlen(v), NULL), KV_OK);
        if (i == 1 || i == 4)
            cr_assert_eq(kv_delete(s, "g", 1, NULL), KV_OK);
    }
    uint64_t g_last = kv_revision(s);
    /* other keys: history past half its bound, and the compaction
     * revision raised past all of g's versions */
    write_in_turn(s, 20, 620);
    uint64_t c1 = 0;
    for (int i = 0; i < 300 && (c1 = kv_compact_revision(s)) <= g_last; i++)
        usleep(100 * 1000);
    cr_assert_gt(c1, g_last, "the compactor raised the compaction revision past g's versions");
    /* a write of g drops four of them and keeps what it replaced, which
     * ends above c1 */
    cr_assert_eq(kv_set(s, "g", 1, "x1", 2, NULL), KV_OK);
    uint64_t ends[64];
    size_t nv = version_ends(s, ends, 64), below = 0;
    while (below < nv && ends[below] <= c1)
        below++;
    cr_assert(below >= 1 && below <= 3 && below < nv,
              "versions of g on both sides of the compaction revision: %zu of %zu below",
              below, nv);
    uint64_t latest = kv_revision(s);
    static char before[4096][16];
    cr_assert_lt(latest - c1, 4096);
    for (uint64_t r = c1; r <= latest; r++)
        g_at(s, r, before[r - c1], sizeof before[0]);

    /* the next write drops the rest below c1 and stops at the first
     * version that ends above it */
    cr_assert_eq(kv_set(s, "g", 1, "x2", 2, NULL), KV_OK);
    /* the compactor may have raised it meanwhile, and sweeps may drop
     * more, never less and never what a read from c2 on needs */
    uint64_t c2 = kv_compact_revision(s), after_ends[64];
    size_t nv_after = version_ends(s, after_ends, 64);
    cr_assert_geq(nv + 1 - nv_after, below, "%zu versions, %zu ending by %llu: %zu after", nv,
                  below, (unsigned long long)c1, nv_after);
    for (uint64_t r = c2; r <= latest; r++) {
        char now[16];
        g_at(s, r, now, sizeof now);
        cr_assert_str_eq(now, before[r - c1], "g at %llu", (unsigned long long)r);
    }
    kv_close(s);
}

Test(history, the_age_bound_compacts_what_was_replaced_long_enough_ago)
{
    kv_store *s = open_hist(0, 0, 1);
    uint64_t r1 = kvt_set(s, "a", "1");
    kvt_set(s, "a", "2");
    for (int i = 0; i < 300 && kv_compact_revision(s) == 0; i++)
        usleep(100 * 1000);
    cr_assert_geq(kv_compact_revision(s), r1 + 1);
    cr_assert_eq(get_at_rc(s, "a", r1), KV_COMPACTED);
    expect_at(s, "a", kv_revision(s), "2");
    kv_close(s);
}

static char *tmpdir(void)
{
    char tmpl[] = "/tmp/kvhist.XXXXXX";
    char *d = mkdtemp(tmpl);
    cr_assert_not_null(d);
    return strdup(d);
}

static void rmdir_all(const char *d)
{
    char cmd[512];
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", d);
    cr_assert_eq(system(cmd), 0);
}

static kv_store *open_durable(const char *dir)
{
    kv_config c;
    kv_config_init(&c, sizeof c);
    c.dir = dir;
    c.history = 1;
    kv_store *s = NULL;
    int rc = kv_open_config(&c, &s);
    cr_assert_eq(rc, KV_OK, "open %s: %s", dir, kv_strerror(rc));
    return s;
}

Test(history, survives_a_restart_from_the_log_and_from_a_snapshot)
{
    char *dir = tmpdir();
    kv_store *s = open_durable(dir);
    uint64_t r1 = kvt_set(s, "a", "1");
    uint64_t r2 = kvt_set(s, "a", "2");
    uint64_t r3 = del(s, "a");
    kvt_set(s, "b", "1");
    uint64_t rb2 = kvt_set(s, "b", "2");
    kv_close(s);

    /* from the log alone */
    s = open_durable(dir);
    expect_at(s, "a", r1, "1");
    expect_at(s, "a", r2, "2");
    expect_at(s, "a", r3, NULL);
    kv_value v;
    kv_key_meta m;
    cr_assert_eq(kv_get_at(s, "a", 1, r2, &v, &m), KV_OK);
    cr_assert_eq(m.version, 2);
    kv_value_free(&v);
    uint64_t r4 = kvt_set(s, "a", "3");
    cr_assert_eq(r4, rb2 + 1, "revisions continue");
    cr_assert_eq(kv_snapshot(s), KV_OK);
    uint64_t r5 = kvt_set(s, "a", "4");
    kv_close(s);

    /* from the snapshot (which carries history) and the log after it */
    s = open_durable(dir);
    cr_assert_eq(kv_compact_revision(s), 0, "nothing was compacted");
    expect_at(s, "a", r1, "1");
    expect_at(s, "a", r2, "2");
    expect_at(s, "a", r3, NULL);
    expect_at(s, "a", r4, "3");
    expect_at(s, "a", r5, "4");
    cr_assert_eq(kv_get_at(s, "b", 1, rb2, &v, &m), KV_OK);
    cr_assert_eq(m.version, 2, "version counts survive the snapshot");
    kv_value_free(&v);
    kv_event *ev;
    size_t n;
    cr_assert_eq(kv_history(s, "a", 1, 0, 0, 0, &ev, &n), KV_OK);
    cr_assert_eq(n, 5, "4 values and a deletion");
    cr_assert_eq(ev[0].version, 2, "a=4 is the second version since a's recreation");
    cr_assert_eq(ev[0].create_revision, r4);
    kv_events_free(ev, n);

    /* compaction is remembered too */
    cr_assert_eq(kv_compact(s, r4), KV_OK);
    cr_assert_eq(kv_snapshot(s), KV_OK);
    kv_close(s);
    s = open_durable(dir);
    cr_assert_eq(kv_compact_revision(s), r4);
    cr_assert_eq(get_at_rc(s, "a", r1), KV_COMPACTED);
    expect_at(s, "a", r4, "3");
    kv_close(s);
    rmdir_all(dir);
    free(dir);
}

Test(history, a_snapshot_from_a_store_without_history_compacts_below_it)
{
    char *dir = tmpdir();
    kv_config c;
    kv_config_init(&c, sizeof c);
    c.dir = dir;
    kv_store *s = NULL;
    cr_assert_eq(kv_open_config(&c, &s), KV_OK);
    uint64_t r1 = kvt_set(s, "a", "1");
    uint64_t r2 = kvt_set(s, "a", "2");
    cr_assert_eq(kv_snapshot(s), KV_OK);
    kv_close(s);
    s = open_durable(dir);
    cr_assert_eq(kv_compact_revision(s), r2);
    cr_assert_eq(get_at_rc(s, "a", r1), KV_COMPACTED);
    expect_at(s, "a", r2, "2");
    kv_close(s);
    rmdir_all(dir);
    free(dir);
}

Test(history, rejects_a_bad_history_setting)
{
    kv_config c;
    kv_config_init(&c, sizeof c);
    c.history = 2;
    kv_store *s = NULL;
    cr_assert_eq(kv_open_config(&c, &s), KV_INVALID_ARGUMENT);
    cr_assert_null(s);
}

Test(history, an_old_config_struct_means_no_history)
{
    /* a caller built against a header without the history fields */
    kv_config c;
    kv_config_init(&c, offsetof(kv_config, history));
    kv_store *s = NULL;
    cr_assert_eq(kv_open_config(&c, &s), KV_OK);
    cr_assert_eq(kv_compact(s, 1), KV_UNSUPPORTED);
    kv_close(s);
}

typedef struct churn {
    kv_store *s;
    atomic_int stop;
} churn;

static void *churner(void *arg)
{
    churn *c = arg;
    char k[16], v[32];
    for (unsigned i = 0; !atomic_load(&c->stop); i++) {
        snprintf(k, sizeof k, "c%u", i % 37);
        snprintf(v, sizeof v, "v%u", i);
        if (i % 11 == 0)
            (void)kv_delete(c->s, k, strlen(k), NULL);
        else if (i % 7 == 0) {
            char k2[16];
            snprintf(k2, sizeof k2, "c%u", (i + 5) % 37);
            kv_pair p[2] = {{k, strlen(k), v, strlen(v)}, {k2, strlen(k2), v, strlen(v)}};
            (void)kv_mset(c->s, p, 2, NULL);
        } else
            (void)kv_set(c->s, k, strlen(k), v, strlen(v), NULL);
    }
    return NULL;
}

/* Every key's whole history, as one string. */
static char *histories(kv_store *s)
{
    size_t cap = 1 << 20, len = 0;
    char *out = malloc(cap);
    out[0] = '\0';
    for (int i = 0; i < 37; i++) {
        char k[16];
        snprintf(k, sizeof k, "c%d", i);
        kv_event *ev;
        size_t n;
        cr_assert_eq(kv_history(s, k, strlen(k), 0, 0, 0, &ev, &n), KV_OK);
        for (size_t j = 0; j < n; j++) {
            if (len + 200 > cap)
                out = realloc(out, cap *= 2);
            len += (size_t)snprintf(out + len, cap - len, "%s@%llu:%d:%llu:%llu:%.*s\n", k,
                                    (unsigned long long)ev[j].revision, ev[j].deleted,
                                    (unsigned long long)ev[j].create_revision,
                                    (unsigned long long)ev[j].version, (int)ev[j].vlen,
                                    ev[j].value ? (char *)ev[j].value : "");
        }
        kv_events_free(ev, n);
    }
    return out;
}

Test(history, snapshots_taken_while_writers_run_restore_history_exactly)
{
    char *dir = tmpdir();
    kv_store *s = open_durable(dir);
    churn c = {.s = s};
    pthread_t t;
    pthread_create(&t, NULL, churner, &c);
    for (int i = 0; i < 5; i++) {
        usleep(20 * 1000);
        cr_assert_eq(kv_snapshot(s), KV_OK);
    }
    atomic_store(&c.stop, 1);
    pthread_join(t, NULL);
    char *before = histories(s);
    uint64_t rev = kv_revision(s);
    kv_close(s);
    s = open_durable(dir);
    cr_assert_eq(kv_revision(s), rev);
    char *after = histories(s);
    cr_assert_str_eq(after, before);
    free(before);
    free(after);
    kv_close(s);
    rmdir_all(dir);
    free(dir);
}

/* kv_prefetch_writes reads the items' history links (item.h) without the
 * stripe locks, while writers set them (a key's first overwrite makes its
 * record) and clear them (a compaction frees the records of deleted keys,
 * a recreated key gets a new one): it must change nothing (and, under
 * TSan, race with nothing; under ASan, read nothing freed). */
typedef struct prefetcher {
    kv_store *s;
    atomic_int stop;
    atomic_ulong calls;
} prefetcher;

/* Waits (bounded) until the prefetcher has made more than `than` calls:
 * under valgrind the threads take turns, and it must run among the
 * writes. */
static void prefetched_past(prefetcher *p, unsigned long than)
{
    for (int i = 0; i < 10000 && atomic_load(&p->calls) <= than; i++)
        usleep(1000);
}

#define PF_KEYS 4096

static void *prefetch_loop(void *arg)
{
    prefetcher *p = arg;
    char names[16][16];
    kv_key keys[16];
    for (unsigned i = 0; !atomic_load(&p->stop); i++, atomic_fetch_add(&p->calls, 1)) {
        for (int j = 0; j < 16; j++) {
            snprintf(names[j], sizeof names[j], "pf%u", (i * 16 + (unsigned)j) % PF_KEYS);
            keys[j] = (kv_key){names[j], strlen(names[j])};
        }
        if (i % 2)
            kv_prefetch(p->s, keys, 16);
        else
            kv_prefetch_writes(p->s, keys, 16);
    }
    return NULL;
}

Test(history, prefetching_keys_while_writers_grow_history_changes_nothing)
{
    kv_store *s = open_hist(0, 0, 0);
    prefetcher p = {.s = s};
    pthread_t t;
    pthread_create(&t, NULL, prefetch_loop, &p);
    char k[16], v[16];
    for (int round = 0; round < 3; round++)
        for (int i = 0; i < PF_KEYS; i++) {
            if (i % 512 == 0)
                prefetched_past(&p, atomic_load(&p.calls));
            snprintf(k, sizeof k, "pf%d", i);
            snprintf(v, sizeof v, "v%d", round);
            cr_assert_eq(kv_set(s, k, strlen(k), v, strlen(v), NULL), KV_OK);
        }
    prefetched_past(&p, atomic_load(&p.calls));
    cr_assert_eq(metrics_of(s).history_versions, 2 * PF_KEYS, "two earlier values of each key");
    /* Records freed under the prefetches: the odd keys deleted, history
     * compacted to the latest revision (the deleted keys' records then
     * hold nothing and go), and those keys written again: new records,
     * new links. */
    uint64_t rev = 0;
    for (int i = 1; i < PF_KEYS; i += 2) {
        snprintf(k, sizeof k, "pf%d", i);
        cr_assert_eq(kv_delete(s, k, strlen(k), &rev), KV_OK);
    }
    cr_assert_eq(kv_compact(s, rev), KV_OK);
    cr_assert_eq(metrics_of(s).history_versions, 0);
    for (int round = 0; round < 2; round++)
        for (int i = 1; i < PF_KEYS; i += 2) {
            if (i % 512 == 1)
                prefetched_past(&p, atomic_load(&p.calls));
            snprintf(k, sizeof k, "pf%d", i);
            snprintf(v, sizeof v, "w%d", round);
            cr_assert_eq(kv_set(s, k, strlen(k), v, strlen(v), NULL), KV_OK);
        }
    atomic_store(&p.stop, 1);
    pthread_join(t, NULL);
    cr_assert_geq(atomic_load(&p.calls), 24, "the prefetches ran among the writes");
    kv_metrics m = metrics_of(s);
    cr_assert_eq(m.keys, PF_KEYS);
    cr_assert_eq(m.history_versions, PF_KEYS / 2, "one earlier value of each recreated key");
    for (int i = 0; i < PF_KEYS; i += 97) {
        snprintf(k, sizeof k, "pf%d", i);
        kv_event *ev;
        size_t n;
        cr_assert_eq(kv_history(s, k, strlen(k), rev, 0, 0, &ev, &n), KV_OK);
        if (i % 2) { /* recreated: two writes since the compaction */
            cr_assert_eq(n, 2, "%s: %zu changes", k, n);
            cr_assert(ev[0].vlen == 2 && memcmp(ev[0].value, "w1", 2) == 0, "newest first");
            cr_assert_eq(ev[0].version, 2, "%s: version %llu", k,
                         (unsigned long long)ev[0].version);
        } else { /* untouched: its last write, below the compaction */
            cr_assert_eq(n, 0, "%s: %zu changes", k, n);
            char out[8];
            size_t len;
            cr_assert_eq(kv_get_into(s, k, strlen(k), out, sizeof out, &len, NULL), KV_OK);
            cr_assert(len == 2 && memcmp(out, "v2", 2) == 0);
        }
        kv_events_free(ev, n);
    }
    kv_close(s);
}

/* A key's record can go while the key keeps an item: set over its expired
 * item, the key is at version 1 again, and once its one earlier value is
 * compacted away the record holds nothing. The item's link to the record
 * (item.h) must then be cleared, or the next write would use the freed
 * record (ASan sees that; without ASan the versions come out wrong). */
Test(history, a_record_freed_under_a_live_item_is_unlinked)
{
    kv_store *s = open_hist(0, 0, 0);
    const uint64_t t = 2000000000000ull; /* 2033: the store's own clock is behind */
    kv_clock_pin(s, t);
    uint64_t rev_a, rev_b, rev_c;
    cr_assert_eq(kv_set_ex(s, "k", 1, "a", 1, t + 500, &rev_a), KV_OK);
    kv_clock_pin(s, t + 1000); /* "a" has expired */
    cr_assert_eq(kv_set(s, "k", 1, "b", 1, &rev_b), KV_OK);
    cr_assert_eq(kv_compact(s, rev_b), KV_OK);
    kv_metrics m = metrics_of(s);
    cr_assert_eq(m.history_versions, 0);
    cr_assert_eq(kv_set(s, "k", 1, "c", 1, &rev_c), KV_OK);
    kv_event *ev;
    size_t n;
    cr_assert_eq(kv_history(s, "k", 1, rev_b, 0, 0, &ev, &n), KV_OK);
    cr_assert_eq(n, 2);
    cr_assert(ev[0].revision == rev_c && ev[0].vlen == 1 && memcmp(ev[0].value, "c", 1) == 0);
    cr_assert_eq(ev[0].version, 2);
    cr_assert(ev[1].revision == rev_b && memcmp(ev[1].value, "b", 1) == 0);
    cr_assert_eq(ev[1].version, 1, "created again over its expired item");
    kv_events_free(ev, n);
    cr_assert_eq(metrics_of(s).history_versions, 1);
    kv_clock_pin(s, 0);
    kv_close(s);
}

Test(history, gives_way_first_under_a_memory_limit)
{
    kv_config c;
    kv_config_init(&c, sizeof c);
    c.history = 1;
    c.max_memory = 4 << 20;
    c.eviction_policy = KV_EVICT_NOEVICTION;
    kv_store *s = NULL;
    cr_assert_eq(kv_open_config(&c, &s), KV_OK);
    char v[1000];
    memset(v, 'h', sizeof v);
    /* 20 MiB of overwrites of 100 keys: only history can grow */
    for (int i = 0; i < 20000; i++) {
        char k[16];
        snprintf(k, sizeof k, "k%d", i % 100);
        int rc = kv_set(s, k, strlen(k), v, sizeof v, NULL);
        cr_assert_eq(rc, KV_OK, "write %d: %s", i, kv_strerror(rc));
    }
    kv_metrics m;
    cr_assert_eq(kv_metrics_read(s, &m, sizeof m), KV_OK);
    cr_assert_leq(m.memory_used, (uint64_t)c.max_memory + (c.max_memory >> 4),
                  "used %llu, history %llu", (unsigned long long)m.memory_used,
                  (unsigned long long)m.history_bytes);
    cr_assert_gt(m.compact_revision, 0, "history was compacted to make room");
    cr_assert_eq(m.keys, 100, "no live key was lost");
    kv_close(s);
}

Test(history, an_evicting_store_with_history_stays_under_its_limit)
{
    kv_config c;
    kv_config_init(&c, sizeof c);
    c.history = 1;
    c.max_memory = 4 << 20;
    c.eviction_policy = KV_EVICT_ALLKEYS_LRU;
    kv_store *s = NULL;
    cr_assert_eq(kv_open_config(&c, &s), KV_OK);
    char v[500];
    memset(v, 'e', sizeof v);
    for (int i = 0; i < 40000; i++) { /* 20 MiB of new keys */
        char k[16];
        snprintf(k, sizeof k, "n%d", i);
        int rc = kv_set(s, k, strlen(k), v, sizeof v, NULL);
        cr_assert_eq(rc, KV_OK, "write %d: %s", i, kv_strerror(rc));
    }
    kv_metrics m;
    cr_assert_eq(kv_metrics_read(s, &m, sizeof m), KV_OK);
    cr_assert_leq(m.memory_used, (uint64_t)c.max_memory + (c.max_memory >> 4),
                  "used %llu, history %llu", (unsigned long long)m.memory_used,
                  (unsigned long long)m.history_bytes);
    cr_assert_gt(m.evicted_keys, 0);
    kv_close(s);
}

Test(history, a_store_reopened_with_a_smaller_bound_keeps_the_newest)
{
    char *dir = tmpdir();
    kv_store *s = open_durable(dir);
    uint64_t r[20];
    char v[8];
    for (int i = 0; i < 20; i++) {
        snprintf(v, sizeof v, "v%d", i);
        r[i] = kvt_set(s, "k", v);
    }
    cr_assert_eq(kv_snapshot(s), KV_OK);
    kv_close(s);
    kv_config c;
    kv_config_init(&c, sizeof c);
    c.dir = dir;
    c.history = 1;
    c.history_versions = 3;
    cr_assert_eq(kv_open_config(&c, &s), KV_OK);
    kv_metrics m;
    cr_assert_eq(kv_metrics_read(s, &m, sizeof m), KV_OK);
    cr_assert_eq(m.history_versions, 3);
    expect_at(s, "k", r[16], "v16");
    cr_assert_eq(get_at_rc(s, "k", r[15]), KV_COMPACTED);
    uint64_t last = kvt_set(s, "k", "new");
    expect_at(s, "k", last, "new");
    cr_assert_eq(kv_metrics_read(s, &m, sizeof m), KV_OK);
    cr_assert_eq(m.history_versions, 3);
    kv_close(s);
    rmdir_all(dir);
    free(dir);
}

/* ---- copies for replicas: kv_history_dump, kv_history_reset, kv_history_load ---- */

static int load_key(void *ctx, const void *key, size_t klen, const void *val, size_t vlen,
                    uint64_t version, uint64_t expire_at)
{
    cr_assert_eq(kv_load_ex(ctx, key, klen, val, vlen, version, expire_at, 0), KV_OK);
    return 0;
}

static int load_history(void *ctx, const kv_key_history *h)
{
    int rc = kv_history_load(ctx, h);
    cr_assert_eq(rc, KV_OK, "kv_history_load: %s", kv_strerror(rc));
    return 0;
}

/* Makes t a copy of s as a replica installing a snapshot does: keys, keys
 * s lacks deleted at its revision, then s's history in place of t's. */
static void copy_store(kv_store *s, kv_store *t)
{
    uint64_t cursor = 0;
    do
        cr_assert_eq(kv_scan_ex(s, NULL, 0, cursor, 16, KV_SCAN_EXPIRED, load_key, t, &cursor),
                     KV_OK);
    while (cursor);
    for (int i = 0; i < 37; i++) {
        char k[16];
        snprintf(k, sizeof k, "c%d", i);
        kv_value v = {0};
        if (kv_get(s, k, strlen(k), &v) == KV_NOT_FOUND)
            cr_assert_eq(kv_load(t, k, strlen(k), NULL, 0, kv_revision(s), 1), KV_OK);
        kv_value_free(&v);
    }
    cr_assert_eq(kv_history_reset(t, kv_compact_revision(s)), KV_OK);
    cr_assert_eq(kv_history_dump(s, load_history, t), KV_OK);
}

static void set_c(kv_store *s, int i, const char *v)
{
    char k[16];
    snprintf(k, sizeof k, "c%d", i);
    kvt_set(s, k, v);
}

/* Asserts that every key c0..c36 reads the same, with the same metadata,
 * on the copy t as on the original s at every revision in [from, to]. */
static void expect_same_past(kv_store *s, kv_store *t, uint64_t from, uint64_t to)
{
    for (uint64_t rev = from; rev <= to; rev++)
        for (int i = 0; i < 37; i++) {
            char k[16];
            snprintf(k, sizeof k, "c%d", i);
            kv_value a = {0}, b = {0};
            kv_key_meta ma = {0}, mb = {0};
            int ra = kv_get_at(s, k, strlen(k), rev, &a, &ma);
            int rb = kv_get_at(t, k, strlen(k), rev, &b, &mb);
            cr_assert_eq(rb, ra, "%s at %llu: %s on the copy, %s on the original", k,
                         (unsigned long long)rev, kv_status_name(rb), kv_status_name(ra));
            if (ra == KV_OK) {
                cr_assert_eq(b.len, a.len);
                cr_assert(memcmp(a.data, b.data, a.len) == 0);
                cr_assert(memcmp(&ma, &mb, sizeof ma) == 0, "%s at %llu: metadata differs", k,
                          (unsigned long long)rev);
            }
            kv_value_free(&a);
            kv_value_free(&b);
        }
}

Test(history, a_copy_made_with_dump_and_load_reads_the_same_at_every_revision)
{
    kv_store *s = open_hist(6, 0, 0), *t = open_hist(6, 0, 0);
    char v[32];
    /* t's own, different past: all of it must go */
    for (int i = 0; i < 200; i++) {
        snprintf(v, sizeof v, "t%d", i);
        set_c(t, i % 37, v);
    }
    for (int i = 0; i < 600; i++) {
        snprintf(v, sizeof v, "s%d", i);
        if (i % 11 == 3) {
            char k[16];
            snprintf(k, sizeof k, "c%d", i % 37);
            (void)kv_delete(s, k, strlen(k), NULL);
        } else if (i % 13 == 5) {
            kv_pair p[2] = {{"c1", 2, v, strlen(v)}, {"c2", 2, v, strlen(v)}};
            cr_assert_eq(kv_mset(s, p, 2, NULL), KV_OK);
        } else {
            set_c(s, (i * 7) % 37, v);
        }
        if (i == 300)
            cr_assert_eq(kv_compact(s, kv_revision(s) - 100), KV_OK);
    }
    kv_key ks[2] = {{"c1", 2}, {"c2", 2}};
    cr_assert_eq(kv_rollback(s, ks, 2, kv_revision(s) - 50, 0, NULL, NULL), KV_OK);
    cr_assert_eq(kv_set_ttl(s, "c3", 2, "ttl", 3, 60000, NULL), KV_OK);

    copy_store(s, t);
    cr_assert_eq(kv_revision(t), kv_revision(s));
    cr_assert_eq(kv_compact_revision(t), kv_compact_revision(s));
    char *hs = histories(s), *ht = histories(t);
    cr_assert_str_eq(ht, hs);
    free(hs);
    free(ht);
    /* every key at every revision, with its metadata (per-key floors too) */
    expect_same_past(s, t, kv_compact_revision(s) + 1, kv_revision(s));
    kv_metrics ms, mt;
    cr_assert_eq(kv_metrics_read(s, &ms, sizeof ms), KV_OK);
    cr_assert_eq(kv_metrics_read(t, &mt, sizeof mt), KV_OK);
    cr_assert_eq(mt.history_versions, ms.history_versions);
    /* the copy goes on as the original does */
    uint64_t a = kvt_set(s, "c5", "next"), b = kvt_set(t, "c5", "next");
    cr_assert_eq(a, b);
    kv_key_meta ma, mb;
    kv_value x = {0}, y = {0};
    cr_assert_eq(kv_get_at(s, "c5", 2, a, &x, &ma), KV_OK);
    cr_assert_eq(kv_get_at(t, "c5", 2, b, &y, &mb), KV_OK);
    cr_assert(memcmp(&ma, &mb, sizeof ma) == 0);
    kv_value_free(&x);
    kv_value_free(&y);
    kv_close(s);
    kv_close(t);
}

/* ---- a held copy made while changes go on: kv_history_hold/copy/release ---- */

typedef struct held_copy {
    kv_store *t;
    uint64_t rev, compact;
    int given[37];
    int reset;
} held_copy;

static int held_entry(void *ctx, const void *key, size_t klen, const void *val, size_t vlen,
                      uint64_t version, uint64_t expire_at)
{
    held_copy *h = ctx;
    cr_assert_leq(version, h->rev, "a key newer than the held revision");
    cr_assert_eq(kv_load_ex(h->t, key, klen, val, vlen, version, expire_at, 0), KV_OK);
    char name[16] = ""; /* the key is not NUL-terminated */
    cr_assert_lt(klen, sizeof name);
    memcpy(name, key, klen);
    int i = atoi(name + 1);
    cr_assert_eq(h->given[i], 0, "c%d given twice", i);
    h->given[i] = 1;
    return 0;
}

/* The keys absent at the held revision deleted there, then the history
 * replaced: as copy_store does after its keys. */
static void held_reset(held_copy *h)
{
    if (h->reset)
        return;
    h->reset = 1;
    for (int i = 0; i < 37; i++)
        if (!h->given[i]) {
            char k[16];
            snprintf(k, sizeof k, "c%d", i);
            cr_assert_eq(kv_load(h->t, k, strlen(k), NULL, 0, h->rev, 1), KV_OK);
        }
    cr_assert_eq(kv_history_reset(h->t, h->compact), KV_OK);
}

static int held_history(void *ctx, const kv_key_history *kh)
{
    held_copy *h = ctx;
    held_reset(h);
    return load_history(h->t, kh);
}

typedef struct compacting {
    churn c;
    atomic_uint_fast64_t compacted;
} compacting;

/* The churner, compacting past the held revision now and then. */
static void *churn_and_compact(void *arg)
{
    compacting *x = arg;
    pthread_t t;
    pthread_create(&t, NULL, churner, &x->c);
    while (!atomic_load(&x->c.stop)) {
        usleep(2000);
        uint64_t r = kv_revision(x->c.s);
        if (r > 3 && kv_compact(x->c.s, r - 3) == KV_OK)
            atomic_store(&x->compacted, r - 3);
    }
    pthread_join(t, NULL);
    return NULL;
}

Test(history, a_held_copy_made_while_changes_go_on_is_the_store_at_the_hold)
{
    kv_store *s = open_hist(6, 0, 0), *t1 = open_hist(6, 0, 0), *t2 = open_hist(6, 0, 0);
    char v[32];
    for (int i = 0; i < 600; i++) {
        snprintf(v, sizeof v, "s%d", i);
        if (i % 11 == 3) {
            char k[16];
            snprintf(k, sizeof k, "c%d", i % 37);
            (void)kv_delete(s, k, strlen(k), NULL);
        } else {
            set_c(s, (i * 7) % 37, v);
        }
        if (i == 300)
            cr_assert_eq(kv_compact(s, kv_revision(s) - 100), KV_OK);
    }
    cr_assert_eq(kv_set_ttl(s, "c3", 2, "ttl", 3, 60000, NULL), KV_OK);
    cr_assert_eq(kv_history_copy(s, held_entry, held_history, NULL), KV_INVALID_ARGUMENT,
                 "no hold");
    held_copy h = {.t = t2};
    cr_assert_eq(kv_history_hold(s, &h.rev, &h.compact), KV_OK);
    cr_assert_eq(h.rev, kv_revision(s));
    cr_assert_eq(h.compact, kv_compact_revision(s));
    uint64_t again;
    cr_assert_eq(kv_history_hold(s, &again, NULL), KV_INVALID_ARGUMENT, "one hold at a time");
    /* the reference: a copy made with nothing running, at the hold */
    copy_store(s, t1);
    char *want = histories(t1);

    /* writers, deletes and compactions past the held revision, during the
     * copy and before it: the per-key bound (6) is passed many times over */
    compacting x = {.c = {.s = s}};
    pthread_t w;
    pthread_create(&w, NULL, churn_and_compact, &x);
    /* The copy starts once the churn has gone past the hold and compacted
     * past it (a wait, not a sleep: under valgrind the churner may get
     * little time), and goes on while the copy runs. */
    for (int i = 0; i < 60000 && (kv_revision(s) <= h.rev + 100 ||
                                  atomic_load(&x.compacted) <= h.rev); i++)
        usleep(1000);
    cr_assert_eq(kv_history_copy(s, held_entry, held_history, &h), KV_OK);
    held_reset(&h);
    atomic_store(&x.c.stop, 1);
    pthread_join(w, NULL);
    cr_assert_gt(kv_revision(s), h.rev + 100, "changes went on during the copy");
    cr_assert_gt(atomic_load(&x.compacted), h.rev, "compacted past the held revision");

    char *got = histories(t2);
    cr_assert_str_eq(got, want);
    cr_assert_eq(kv_compact_revision(t2), kv_compact_revision(t1));
    expect_same_past(t1, t2, h.compact + 1, h.rev);
    kv_metrics m1, m2;
    cr_assert_eq(kv_metrics_read(t1, &m1, sizeof m1), KV_OK);
    cr_assert_eq(kv_metrics_read(t2, &m2, sizeof m2), KV_OK);
    cr_assert_eq(m2.history_versions, m1.history_versions);
    cr_assert_eq(m2.keys, m1.keys);

    /* while held nothing was dropped; the release makes the owed drops:
     * every key back to its bound, nothing below the compaction revision */
    kv_metrics ms;
    cr_assert_eq(kv_metrics_read(s, &ms, sizeof ms), KV_OK);
    cr_assert_gt(ms.history_versions, 37 * 6, "held: more versions than the bounds keep");
    kv_history_release(s);
    cr_assert_eq(kv_metrics_read(s, &ms, sizeof ms), KV_OK);
    cr_assert_leq(ms.history_versions, 37 * 6);
    cr_assert_eq(get_at_rc(s, "c1", h.rev), KV_COMPACTED);
    kv_history_release(s); /* a second release: nothing */
    free(want);
    free(got);
    kv_close(s);
    kv_close(t1);
    kv_close(t2);
}

Test(history, loading_a_copy_refuses_bad_input_and_stores_without_history)
{
    kv_store *s = open_hist(0, 0, 0), *plain = kvt_open(NULL);
    kv_hist_version bad[2] = {{.revision = 3, .until = 5, .value = "a", .vlen = 1},
                              {.revision = 4, .until = 6, .value = "b", .vlen = 1}};
    kv_key_history h = {.key = "k", .klen = 1, .versions = bad, .nversions = 2};
    cr_assert_eq(kv_history_load(s, &h), KV_INVALID_ARGUMENT); /* not newest first */
    bad[1] = (kv_hist_version){.revision = 2, .until = 2, .value = "b", .vlen = 1};
    cr_assert_eq(kv_history_load(s, &h), KV_INVALID_ARGUMENT); /* until not above */
    h.klen = 0; /* the status an empty key gets everywhere */
    cr_assert_eq(kv_history_load(s, &h), kv_set(s, "", 0, "v", 1, NULL));
    cr_assert_eq(kv_history_load(s, NULL), KV_INVALID_ARGUMENT);
    cr_assert_eq(kv_history_dump(s, NULL, NULL), KV_INVALID_ARGUMENT);
    kv_metrics m;
    cr_assert_eq(kv_metrics_read(s, &m, sizeof m), KV_OK);
    cr_assert_eq(m.history_versions, 0);
    h.klen = 1;
    cr_assert_eq(kv_history_load(plain, &h), KV_UNSUPPORTED);
    cr_assert_eq(kv_history_dump(plain, load_history, s), KV_UNSUPPORTED);
    cr_assert_eq(kv_history_reset(plain, 1), KV_UNSUPPORTED);
    kv_close(s);
    kv_close(plain);
}
