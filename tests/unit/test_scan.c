/*
 * test_scan.c - prefix scans with a cursor: every matching key present for
 * the whole scan is returned at least once, no other key is, cursor 0 ends
 * the scan, and a callback can stop it early.
 */
#include "kvtest.h"

#define NKEYS 600
#define MAX_CALLS 1000000

struct scan_ctx {
    const char *prefix;
    size_t plen;
    int seen[NKEYS];     /* times "<prefix><i>" was passed to fn */
    int seen_other;      /* keys with the right prefix but not ours */
    int wrong_prefix;    /* keys not starting with prefix */
    int bad_value;       /* value not matching the key */
    int calls;           /* fn calls in the current kv_scan */
    int stop_after;      /* return non-zero after this many calls; 0 = never */
};

/* Keys "<prefix><i>" hold "v<i>". */
static void fill(kv_store *s, const char *prefix, int n)
{
    char k[64], v[32];
    for (int i = 0; i < n; i++) {
        snprintf(k, sizeof k, "%s%d", prefix, i);
        snprintf(v, sizeof v, "v%d", i);
        kvt_set(s, k, v);
    }
}

static int collect(void *ctx, const void *key, size_t klen, const void *val,
                   size_t vlen, uint64_t version)
{
    struct scan_ctx *c = ctx;
    c->calls++;
    if (version == 0)
        c->bad_value++;
    if (klen < c->plen || memcmp(key, c->prefix, c->plen) != 0) {
        c->wrong_prefix++;
    } else {
        char num[32];
        size_t nlen = klen - c->plen;
        int idx = -1;
        if (nlen > 0 && nlen < sizeof num) {
            memcpy(num, (const char *)key + c->plen, nlen);
            num[nlen] = '\0';
            char *end;
            long l = strtol(num, &end, 10);
            if (*end == '\0' && l >= 0 && l < NKEYS)
                idx = (int)l;
        }
        if (idx < 0) {
            c->seen_other++;
        } else {
            char want[32];
            int wl = snprintf(want, sizeof want, "v%d", idx);
            if (vlen != (size_t)wl || memcmp(val, want, vlen) != 0)
                c->bad_value++;
            c->seen[idx]++;
        }
    }
    return c->stop_after > 0 && c->calls >= c->stop_after;
}

/* Scans to the end with the given limit, checking each call's contract. */
static void scan_all(kv_store *s, struct scan_ctx *c, size_t limit)
{
    uint64_t cursor = 0;
    int rounds = 0;
    do {
        uint64_t next = 0xDEADBEEF;
        c->calls = 0;
        int rc = kv_scan(s, c->prefix, c->plen, cursor, limit, collect, c, &next);
        KVT_CHECK(rc == KV_OK, "kv_scan: %s", kv_strerror(rc));
        KVT_CHECK(next != 0xDEADBEEF, "kv_scan did not set *next");
        KVT_CHECK(next == 0 || c->stop_after != 0 || (size_t)c->calls >= limit,
                  "an unfinished scan call passed %d keys, limit %zu", c->calls,
                  limit);
        cursor = next;
        KVT_CHECK(++rounds < MAX_CALLS, "scan does not terminate");
    } while (cursor != 0);
}

static void expect_all_seen(const struct scan_ctx *c, int n)
{
    for (int i = 0; i < n; i++)
        KVT_CHECK(c->seen[i] >= 1, "key %s%d was never returned", c->prefix, i);
    cr_assert_eq(c->wrong_prefix, 0, "%d keys without the prefix were returned",
                 c->wrong_prefix);
    cr_assert_eq(c->bad_value, 0, "%d keys came with a wrong value", c->bad_value);
}

Test(scan, empty_store_ends_at_once)
{
    kv_store *s = kvt_open(NULL);
    struct scan_ctx c = {.prefix = "", .plen = 0};
    uint64_t next = 77;
    cr_assert_eq(kv_scan(s, "", 0, 0, 10, collect, &c, &next), KV_OK);
    cr_assert_eq(next, 0);
    cr_assert_eq(c.calls, 0);
    kv_close(s);
}

Test(scan, prefix_scan_with_small_limit_finds_every_match)
{
    kv_store *s = kvt_open_cap(16);
    fill(s, "user:", NKEYS);
    fill(s, "item:", NKEYS);
    fill(s, "use", 50); /* shares part of the prefix */
    struct scan_ctx c = {.prefix = "user:", .plen = 5};
    scan_all(s, &c, 7);
    expect_all_seen(&c, NKEYS);
    cr_assert_eq(c.seen_other, 0);
    kv_close(s);
}

Test(scan, prefix_with_no_match_returns_nothing)
{
    kv_store *s = kvt_open(NULL);
    fill(s, "a:", 100);
    struct scan_ctx c = {.prefix = "b:", .plen = 2};
    scan_all(s, &c, 5);
    for (int i = 0; i < NKEYS; i++)
        KVT_CHECK(c.seen[i] == 0, "key b:%d does not exist", i);
    cr_assert_eq(c.wrong_prefix, 0);
    kv_close(s);
}

Test(scan, large_limit_finishes_in_one_call)
{
    kv_store *s = kvt_open(NULL);
    fill(s, "k", 100);
    struct scan_ctx c = {.prefix = "k", .plen = 1};
    uint64_t next = 77;
    cr_assert_eq(kv_scan(s, "k", 1, 0, 1000, collect, &c, &next), KV_OK);
    cr_assert_eq(next, 0, "the store was exhausted: cursor must be 0");
    cr_assert_eq(c.calls, 100);
    expect_all_seen(&c, 100);
    kv_close(s);
}

Test(scan, empty_prefix_returns_every_key)
{
    kv_store *s = kvt_open(NULL);
    fill(s, "", NKEYS);
    struct scan_ctx c = {.prefix = "", .plen = 0};
    scan_all(s, &c, 10);
    expect_all_seen(&c, NKEYS);
    cr_assert_eq(c.seen_other, 0);
    kv_close(s);
}

Test(scan, binary_prefix_with_nul)
{
    kv_store *s = kvt_open(NULL);
    cr_assert_eq(kv_set(s, "p\0a", 3, "1", 1, NULL), KV_OK);
    cr_assert_eq(kv_set(s, "p\0b", 3, "2", 1, NULL), KV_OK);
    cr_assert_eq(kv_set(s, "pa", 2, "3", 1, NULL), KV_OK);
    struct scan_ctx c = {.prefix = "p\0", .plen = 2};
    scan_all(s, &c, 1);
    cr_assert_eq(c.wrong_prefix, 0, "\"pa\" does not start with \"p\\0\"");
    cr_assert_geq(c.seen_other, 2); /* "p\0a", "p\0b" are not numbered keys */
    kv_close(s);
}

Test(scan, callback_can_stop_early)
{
    kv_store *s = kvt_open(NULL);
    fill(s, "k", 200);
    struct scan_ctx c = {.prefix = "k", .plen = 1, .stop_after = 3};
    uint64_t next = 0;
    cr_assert_eq(kv_scan(s, "k", 1, 0, 1000, collect, &c, &next), KV_OK);
    cr_assert_eq(c.calls, 3, "fn was called again after asking to stop");
    cr_assert_neq(next, 0, "stopped early with keys left: the scan is not complete");
    kv_close(s);
}

Test(scan, stopping_early_and_resuming_covers_everything)
{
    kv_store *s = kvt_open_cap(16);
    fill(s, "k", NKEYS);
    struct scan_ctx c = {.prefix = "k", .plen = 1, .stop_after = 25};
    scan_all(s, &c, 1000);
    expect_all_seen(&c, NKEYS);
    kv_close(s);
}

Test(scan, keys_present_throughout_are_found_while_the_table_grows)
{
    kv_store *s = kvt_open_cap(8);
    fill(s, "old:", 300);
    uint64_t resizes_before = kvt_metrics(s).table_resizes;
    struct scan_ctx c = {.prefix = "old:", .plen = 4};
    uint64_t cursor = 0;
    int rounds = 0, added = 0;
    char k[32];
    do {
        uint64_t next = 0;
        c.calls = 0;
        int rc = kv_scan(s, "old:", 4, cursor, 5, collect, &c, &next);
        KVT_CHECK(rc == KV_OK, "kv_scan: %s", kv_status_name(rc));
        cursor = next;
        /* grow the table between scan calls */
        for (int i = 0; i < 200; i++, added++) {
            snprintf(k, sizeof k, "new:%d", added);
            kvt_set(s, k, "n");
        }
        KVT_CHECK(++rounds < MAX_CALLS, "scan does not terminate");
    } while (cursor != 0);
    expect_all_seen(&c, 300);
    cr_assert_gt(kvt_metrics(s).table_resizes, resizes_before,
                 "the test meant to grow the table during the scan");
    kv_close(s);
}
