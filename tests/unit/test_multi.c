/*
 * test_multi.c - the multi-key operations kv_mget, kv_mset, kv_mdelete:
 * results per key, all-or-none on errors, one revision per call.
 */
#include "kvtest.h"

#define K(s) {(s), sizeof(s) - 1}
#define P(k, v) {(k), sizeof(k) - 1, (v), sizeof(v) - 1}

Test(multi, mget_returns_values_and_marks_missing_keys)
{
    kv_store *s = kvt_open(NULL);
    uint64_t va = kvt_set(s, "a", "alpha");
    uint64_t vc = kvt_set(s, "c", "");
    kv_key keys[] = {K("a"), K("b"), K("c"), K("zz")};
    kv_value out[4];
    memset(out, 0xAB, sizeof out);
    cr_assert_eq(kv_mget(s, keys, 4, out), KV_OK);
    cr_assert_eq(out[0].len, 5);
    cr_assert_eq(memcmp(out[0].data, "alpha", 5), 0);
    cr_assert_eq(out[0].version, va);
    cr_assert_null(out[1].data, "missing key must give data NULL");
    cr_assert_eq(out[1].len, 0);
    cr_assert_eq(out[1].version, 0);
    cr_assert_not_null(out[2].data, "empty value must have non-NULL data");
    cr_assert_eq(out[2].len, 0);
    cr_assert_eq(out[2].version, vc);
    cr_assert_null(out[3].data);
    cr_assert_eq(out[3].version, 0);
    kv_values_free(out, 4);
    kv_close(s);
}

Test(multi, mget_same_key_twice_gives_same_value)
{
    kv_store *s = kvt_open(NULL);
    uint64_t v = kvt_set(s, "k", "v");
    kv_key keys[] = {K("k"), K("k")};
    kv_value out[2];
    cr_assert_eq(kv_mget(s, keys, 2, out), KV_OK);
    for (int i = 0; i < 2; i++) {
        cr_assert_eq(out[i].len, 1);
        cr_assert_eq(memcmp(out[i].data, "v", 1), 0);
        cr_assert_eq(out[i].version, v);
    }
    kv_values_free(out, 2);
    kv_close(s);
}

Test(multi, mget_invalid_key_fails_and_leaves_outputs_alone)
{
    kv_store *s = kvt_open(NULL);
    kvt_set(s, "a", "1");
    kv_key keys[] = {K("a"), {"", 0}};
    kv_value out[2];
    memset(out, 0, sizeof out);
    out[0].len = 4242;
    cr_assert_eq(kv_mget(s, keys, 2, out), KV_KEY_EMPTY);
    cr_assert_null(out[0].data, "kv_mget allocated on failure");
    cr_assert_eq(out[0].len, 4242);
    kv_close(s);
}

Test(multi, mset_sets_all_under_one_revision)
{
    kv_store *s = kvt_open(NULL);
    kvt_set(s, "b", "old");
    uint64_t before = kvt_revision(s);
    kv_pair pairs[] = {P("a", "1"), P("b", "22"), P("c", "333")};
    uint64_t v = 0;
    cr_assert_eq(kv_mset(s, pairs, 3, &v), KV_OK);
    cr_assert_eq(v, before + 1, "an mset uses exactly one revision");
    kvt_expect(s, "a", "1", v);
    kvt_expect(s, "b", "22", v);
    kvt_expect(s, "c", "333", v);
    kv_metrics m = kvt_metrics(s);
    cr_assert_eq(m.revision, v);
    cr_assert_eq(m.keys, 3);
    cr_assert_eq(m.value_bytes, 6);
    kv_close(s);
}

Test(multi, mset_duplicate_keys_last_pair_wins)
{
    kv_store *s = kvt_open(NULL);
    kv_pair pairs[] = {P("k", "first"), P("x", "x"), P("k", "second"),
                       P("k", "last")};
    uint64_t v = 0;
    cr_assert_eq(kv_mset(s, pairs, 4, &v), KV_OK);
    kvt_expect(s, "k", "last", v);
    kvt_expect(s, "x", "x", v);
    kv_metrics m = kvt_metrics(s);
    cr_assert_eq(m.keys, 2);
    cr_assert_eq(m.key_bytes, 2);
    cr_assert_eq(m.value_bytes, 5);
    kv_close(s);
}

static void check_mset_fails(kv_store *s, const kv_pair *pairs, size_t n, int want)
{
    kv_metrics before = kvt_metrics(s);
    uint64_t v = 5555;
    int rc = kv_mset(s, pairs, n, &v);
    cr_assert_eq(rc, want, "kv_mset: got %s, expected %s", kv_status_name(rc),
                 kv_status_name(want));
    cr_assert_eq(v, 5555, "version output touched on failure");
    kv_metrics after = kvt_metrics(s);
    kvt_expect_same_data(&before, &after);
}

Test(multi, mset_with_an_invalid_pair_sets_nothing)
{
    kv_options o;
    kv_options_init(&o);
    o.max_key_size = 8;
    o.max_value_size = 8;
    kv_store *s = kvt_open(&o);
    uint64_t vo = kvt_set(s, "a", "orig");

    kv_pair empty_key[] = {P("a", "new"), P("b", "new"), {"", 0, "v", 1}};
    check_mset_fails(s, empty_key, 3, KV_KEY_EMPTY);
    kv_pair big_key[] = {P("a", "new"), P("123456789", "v"), P("b", "new")};
    check_mset_fails(s, big_key, 3, KV_KEY_TOO_LARGE);
    kv_pair big_val[] = {P("b", "new"), P("a", "123456789")};
    check_mset_fails(s, big_val, 2, KV_VALUE_TOO_LARGE);

    kvt_expect(s, "a", "orig", vo);
    kvt_expect_absent(s, "b");
    kv_close(s);
}

Test(multi, mset_over_max_keys_sets_nothing)
{
    kv_options o;
    kv_options_init(&o);
    o.max_keys = 3;
    kv_store *s = kvt_open(&o);
    uint64_t va = kvt_set(s, "a", "orig");
    kv_pair pairs[] = {P("a", "new"), P("b", "b"), P("c", "c"), P("d", "d")};
    check_mset_fails(s, pairs, 4, KV_STORE_FULL);
    kvt_expect(s, "a", "orig", va);
    kvt_expect_absent(s, "b");
    kvt_expect_absent(s, "c");
    kvt_expect_absent(s, "d");
    /* exactly reaching the limit is fine */
    uint64_t v = 0;
    cr_assert_eq(kv_mset(s, pairs, 3, &v), KV_OK);
    cr_assert_eq(kvt_metrics(s).keys, 3);
    kv_close(s);
}

Test(multi, mdelete_counts_existing_keys_under_one_revision)
{
    kv_store *s = kvt_open(NULL);
    kvt_set(s, "a", "1");
    kvt_set(s, "b", "2");
    kvt_set(s, "c", "3");
    uint64_t before = kvt_revision(s);
    kv_key keys[] = {K("a"), K("missing"), K("c"), K("nope")};
    size_t deleted = 99;
    uint64_t v = 0;
    cr_assert_eq(kv_mdelete(s, keys, 4, &deleted, &v), KV_OK);
    cr_assert_eq(deleted, 2);
    cr_assert_eq(v, before + 1, "an mdelete uses exactly one revision");
    kvt_expect_absent(s, "a");
    kvt_expect_absent(s, "c");
    kvt_expect(s, "b", "2", 0);
    kv_metrics m = kvt_metrics(s);
    cr_assert_eq(m.keys, 1);
    cr_assert_eq(m.revision, v);
    kv_close(s);
}

Test(multi, mdelete_of_missing_keys_changes_nothing)
{
    kv_store *s = kvt_open(NULL);
    kvt_set(s, "a", "1");
    kv_metrics before = kvt_metrics(s);
    kv_key keys[] = {K("x"), K("y")};
    size_t deleted = 99;
    uint64_t v = 5555;
    cr_assert_eq(kv_mdelete(s, keys, 2, &deleted, &v), KV_OK);
    cr_assert_eq(deleted, 0);
    cr_assert_eq(v, 5555, "version must be left alone when nothing was deleted");
    kv_metrics after = kvt_metrics(s);
    kvt_expect_same_data(&before, &after);
    kv_close(s);
}

Test(multi, mdelete_accepts_null_outputs)
{
    kv_store *s = kvt_open(NULL);
    kvt_set(s, "a", "1");
    kv_key keys[] = {K("a")};
    cr_assert_eq(kv_mdelete(s, keys, 1, NULL, NULL), KV_OK);
    kvt_expect_absent(s, "a");
    kv_close(s);
}

Test(multi, mdelete_with_an_invalid_key_deletes_nothing)
{
    kv_store *s = kvt_open(NULL);
    kvt_set(s, "a", "1");
    kv_metrics before = kvt_metrics(s);
    kv_key keys[] = {K("a"), {"", 0}};
    size_t deleted = 99;
    cr_assert_eq(kv_mdelete(s, keys, 2, &deleted, NULL), KV_KEY_EMPTY);
    cr_assert_eq(deleted, 99, "deleted output touched on failure");
    kvt_expect(s, "a", "1", 0);
    kv_metrics after = kvt_metrics(s);
    kvt_expect_same_data(&before, &after);
    kv_close(s);
}

/* kv_mget_with: one callback per key, in order, zero-copy. */
typedef struct mget_seen {
    size_t calls;
    size_t index[4];
    char val[4][8];
    size_t vlen[4];
    uint64_t version[4];
    int missing[4];
} mget_seen;

static void record_mget(void *ctx, size_t i, const void *val, size_t vlen, uint64_t version)
{
    mget_seen *m = ctx;
    size_t c = m->calls++;
    if (c >= 4)
        return;
    m->index[c] = i;
    m->missing[c] = val == NULL;
    m->vlen[c] = vlen;
    m->version[c] = version;
    if (val && vlen < sizeof m->val[c])
        memcpy(m->val[c], val, vlen);
}

Test(multi, mget_with_calls_back_once_per_key_in_order)
{
    kv_store *s = kvt_open(NULL);
    uint64_t va, vc;
    cr_assert_eq(kv_set(s, "a", 1, "one", 3, &va), KV_OK);
    cr_assert_eq(kv_set(s, "c\0x", 3, "", 0, &vc), KV_OK);
    kv_key keys[3] = {{"a", 1}, {"b", 1}, {"c\0x", 3}};
    mget_seen m = {0};
    cr_assert_eq(kv_mget_with(s, keys, 3, record_mget, &m), KV_OK);
    cr_assert_eq(m.calls, 3);
    for (size_t i = 0; i < 3; i++)
        cr_assert_eq(m.index[i], i);
    cr_assert_eq(m.missing[0], 0);
    cr_assert_eq(m.vlen[0], 3);
    cr_assert_eq(memcmp(m.val[0], "one", 3), 0);
    cr_assert_eq(m.version[0], va);
    cr_assert_eq(m.missing[1], 1);
    cr_assert_eq(m.version[1], 0);
    cr_assert_eq(m.missing[2], 0, "an empty value is present, not missing");
    cr_assert_eq(m.vlen[2], 0);
    cr_assert_eq(m.version[2], vc);

    kv_key bad[2] = {{"a", 1}, {"", 0}};
    mget_seen none = {0};
    cr_assert_eq(kv_mget_with(s, bad, 2, record_mget, &none), KV_KEY_EMPTY);
    cr_assert_eq(none.calls, 0, "no callback when a key is invalid");
    cr_assert_eq(kv_mget_with(s, keys, 3, NULL, NULL), KV_INVALID_ARGUMENT);
    kv_close(s);
}

/* kv_prefetch and kv_prefetch_writes are only hints: present, absent,
 * invalid and many keys, a NULL list or store - they change no data and
 * count no reads. */
Test(multi, prefetch_is_only_a_hint)
{
    kv_store *s = kvt_open(NULL);
    char k[16];
    for (int i = 0; i < 100; i++) {
        snprintf(k, sizeof k, "p%d", i);
        kvt_set(s, k, "v");
    }
    kv_metrics before = kvt_metrics(s);
    static char big[70000];
    kv_key keys[40];
    char names[40][16];
    for (int i = 0; i < 40; i++) {
        snprintf(names[i], sizeof names[i], "p%d", i * 3); /* about a third absent */
        keys[i] = (kv_key){names[i], strlen(names[i])};
    }
    keys[5] = (kv_key){"", 0};             /* empty: skipped */
    keys[6] = (kv_key){NULL, 3};           /* no bytes: skipped */
    keys[7] = (kv_key){big, sizeof big};   /* over max_key_size: skipped */
    kv_prefetch(s, keys, 40);              /* more than one batch of 16 */
    kv_prefetch(s, keys, 0);
    kv_prefetch(s, NULL, 3);
    kv_prefetch(NULL, keys, 3);
    kv_prefetch_writes(s, keys, 40);
    kv_prefetch_writes(s, keys, 0);
    kv_prefetch_writes(s, NULL, 3);
    kv_prefetch_writes(NULL, keys, 3);
    kv_metrics after = kvt_metrics(s);
    kvt_expect_same_data(&before, &after);
    cr_assert_eq(after.gets, before.gets, "a prefetch is not a get");
    kvt_expect(s, "p3", "v", 0);
    kv_close(s);
}
