/*
 * test_store.c - opening and closing a store, options, and the single-key
 * operations: get, get_into, get_with, exists, set, set_if, delete,
 * delete_if, with their limits; and when item memory is advised to be huge
 * pages. Checked against the contract in kv.h.
 */
#include <stdbool.h>
#include <unistd.h>

#include "kvtest.h"

/* ------------------------------------------------------------------------
 * Opening, closing, options
 * ---------------------------------------------------------------------- */

Test(store, options_init_gives_documented_defaults)
{
    kv_options o;
    memset(&o, 0xAB, sizeof o);
    kv_options_init(&o);
    cr_assert_eq(o.initial_capacity, 1024);
    cr_assert_eq(o.max_key_size, KV_DEFAULT_MAX_KEY_SIZE);
    cr_assert_eq(o.max_value_size, KV_DEFAULT_MAX_VALUE_SIZE);
    cr_assert_eq(o.max_keys, 0);
}

Test(store, open_with_null_options_gives_empty_store)
{
    kv_store *s = kvt_open(NULL);
    kv_metrics m = kvt_metrics(s);
    cr_assert_eq(m.keys, 0);
    cr_assert_eq(m.key_bytes, 0);
    cr_assert_eq(m.value_bytes, 0);
    kvt_expect_absent(s, "anything");
    kv_close(s);
}

Test(store, open_with_options_applies_them)
{
    kv_options o;
    kv_options_init(&o);
    o.initial_capacity = 4;
    o.max_key_size = 8;
    o.max_value_size = 16;
    o.max_keys = 2;
    kv_store *s = kvt_open(&o);
    char key[9] = "12345678";
    char val[17] = "0123456789abcdef";
    cr_assert_eq(kv_set(s, key, 8, val, 16, NULL), KV_OK);
    cr_assert_eq(kv_set(s, key, 9, val, 16, NULL), KV_KEY_TOO_LARGE);
    cr_assert_eq(kv_set(s, "k", 1, val, 17, NULL), KV_VALUE_TOO_LARGE);
    cr_assert_eq(kv_set(s, "k", 1, val, 1, NULL), KV_OK);
    cr_assert_eq(kv_set(s, "j", 1, val, 1, NULL), KV_STORE_FULL);
    kv_close(s);
}

Test(store, open_accepts_limits_at_their_maximum)
{
    kv_options o;
    kv_options_init(&o);
    o.max_key_size = KV_LIMIT_MAX_KEY_SIZE;
    o.max_value_size = KV_LIMIT_MAX_VALUE_SIZE;
    kv_store *s = kvt_open(&o);
    /* The maximum is usable, not just accepted: a key of exactly that size
     * round-trips. */
    char *key = malloc(KV_LIMIT_MAX_KEY_SIZE);
    cr_assert_not_null(key);
    memset(key, 'k', KV_LIMIT_MAX_KEY_SIZE);
    cr_assert_eq(kv_set(s, key, KV_LIMIT_MAX_KEY_SIZE, "v", 1, NULL), KV_OK);
    size_t vlen = 0;
    char buf[4];
    cr_assert_eq(kv_get_into(s, key, KV_LIMIT_MAX_KEY_SIZE, buf, sizeof buf, &vlen, NULL), KV_OK);
    cr_assert_eq(vlen, 1);
    free(key);
    kv_close(s);
}

Test(store, open_rejects_key_size_over_limit_and_leaves_out_alone)
{
    kv_options o;
    kv_options_init(&o);
    o.max_key_size = KV_LIMIT_MAX_KEY_SIZE + 1;
    kv_store *sentinel = (kv_store *)(uintptr_t)0x1234;
    kv_store *s = sentinel;
    cr_assert_eq(kv_open(&o, &s), KV_INVALID_ARGUMENT);
    cr_assert_eq(s, sentinel, "kv_open changed *out on failure");
}

Test(store, open_rejects_value_size_over_limit_and_leaves_out_alone)
{
    kv_options o;
    kv_options_init(&o);
    o.max_value_size = KV_LIMIT_MAX_VALUE_SIZE + 1;
    kv_store *sentinel = (kv_store *)(uintptr_t)0x1234;
    kv_store *s = sentinel;
    cr_assert_eq(kv_open(&o, &s), KV_INVALID_ARGUMENT);
    cr_assert_eq(s, sentinel, "kv_open changed *out on failure");
}

Test(store, close_null_is_a_no_op)
{
    kv_close(NULL);
}

Test(store, close_frees_a_store_with_data)
{
    kv_store *s = kvt_open(NULL);
    for (int i = 0; i < 100; i++) {
        char k[32];
        snprintf(k, sizeof k, "key%d", i);
        kvt_set(s, k, "some value");
    }
    kv_close(s); /* leaks are caught by the valgrind / ASan runs */
}

/* ------------------------------------------------------------------------
 * get / set / overwrite
 * ---------------------------------------------------------------------- */

Test(store, set_then_get_returns_value_and_version)
{
    kv_store *s = kvt_open(NULL);
    uint64_t v = kvt_set(s, "hello", "world");
    kvt_expect(s, "hello", "world", v);
    kv_close(s);
}

Test(store, get_missing_key_is_not_found)
{
    kv_store *s = kvt_open(NULL);
    kvt_set(s, "a", "1");
    kv_value out = {(void *)(uintptr_t)0x99, 77, 88};
    cr_assert_eq(kv_get(s, "b", 1, &out), KV_NOT_FOUND);
    cr_assert_eq(out.data, (void *)(uintptr_t)0x99, "output touched on NOT_FOUND");
    cr_assert_eq(out.len, 77);
    cr_assert_eq(out.version, 88);
    kv_close(s);
}

Test(store, empty_value_is_stored_with_non_null_data)
{
    kv_store *s = kvt_open(NULL);
    uint64_t v = 0;
    cr_assert_eq(kv_set(s, "e", 1, "", 0, &v), KV_OK);
    kv_value out = {0};
    cr_assert_eq(kv_get(s, "e", 1, &out), KV_OK);
    cr_assert_eq(out.len, 0);
    cr_assert_not_null(out.data, "a value of length 0 must have non-NULL data");
    cr_assert_eq(out.version, v);
    kv_value_free(&out);
    cr_assert_eq(kv_exists(s, "e", 1, NULL), KV_OK);
    kv_close(s);
}

Test(store, binary_keys_with_embedded_nuls_are_distinct)
{
    kv_store *s = kvt_open(NULL);
    const char k1[] = {'a', '\0', 'b'};
    const char k2[] = {'a', '\0', 'c'};
    const char k3[] = {'a'};
    const char k4[] = {'\0'};
    const char k5[] = {'\0', '\0'};
    const char *keys[] = {k1, k2, k3, k4, k5};
    size_t lens[] = {3, 3, 1, 1, 2};
    for (int i = 0; i < 5; i++) {
        unsigned char val[4] = {0, (unsigned char)i, 0, 0xFF};
        cr_assert_eq(kv_set(s, keys[i], lens[i], val, sizeof val, NULL), KV_OK);
    }
    for (int i = 0; i < 5; i++) {
        unsigned char want[4] = {0, (unsigned char)i, 0, 0xFF};
        kv_value out = {0};
        cr_assert_eq(kv_get(s, keys[i], lens[i], &out), KV_OK, "key %d", i);
        cr_assert_eq(out.len, 4);
        cr_assert_eq(memcmp(out.data, want, 4), 0, "key %d has the wrong value", i);
        kv_value_free(&out);
    }
    cr_assert_eq(kvt_metrics(s).keys, 5);
    cr_assert_eq(kv_exists(s, "a\0", 2, NULL), KV_NOT_FOUND);
    kv_close(s);
}

Test(store, overwrite_replaces_value_and_bumps_version)
{
    kv_store *s = kvt_open(NULL);
    uint64_t v1 = kvt_set(s, "k", "first value");
    uint64_t v2 = kvt_set(s, "k", "2nd");
    cr_assert_gt(v2, v1);
    kvt_expect(s, "k", "2nd", v2);
    kv_metrics m = kvt_metrics(s);
    cr_assert_eq(m.keys, 1);
    cr_assert_eq(m.key_bytes, 1);
    cr_assert_eq(m.value_bytes, 3);
    kv_close(s);
}

Test(store, value_free_resets_and_tolerates_null_and_double_free)
{
    kv_store *s = kvt_open(NULL);
    kvt_set(s, "k", "v");
    kv_value out = {0};
    cr_assert_eq(kv_get(s, "k", 1, &out), KV_OK);
    kv_value_free(&out);
    cr_assert_null(out.data);
    cr_assert_eq(out.len, 0);
    kv_value_free(&out);
    kv_value_free(NULL);
    kv_close(s);
}

Test(store, large_value_round_trips)
{
    kv_store *s = kvt_open(NULL);
    size_t n = 1024 * 1024;
    unsigned char *big = malloc(n);
    cr_assert_not_null(big);
    for (size_t i = 0; i < n; i++)
        big[i] = (unsigned char)(i * 7 + (i >> 11));
    uint64_t v = 0;
    cr_assert_eq(kv_set(s, "big", 3, big, n, &v), KV_OK);
    kv_value out = {0};
    cr_assert_eq(kv_get(s, "big", 3, &out), KV_OK);
    cr_assert_eq(out.len, n);
    cr_assert_eq(out.version, v);
    cr_assert_eq(memcmp(out.data, big, n), 0, "1 MiB value corrupted");
    kv_value_free(&out);
    cr_assert_eq(kvt_metrics(s).value_bytes, n);
    free(big);
    kv_close(s);
}

Test(store, many_keys_grow_the_table)
{
    kv_store *s = kvt_open_cap(8);
    const int n = 20000;
    char k[32], v[32];
    for (int i = 0; i < n; i++) {
        snprintf(k, sizeof k, "key:%d", i);
        snprintf(v, sizeof v, "val:%d", i * 3);
        kvt_set(s, k, v);
    }
    for (int i = 0; i < n; i++) {
        snprintf(k, sizeof k, "key:%d", i);
        snprintf(v, sizeof v, "val:%d", i * 3);
        kvt_expect(s, k, v, 0);
    }
    kv_metrics m = kvt_metrics(s);
    cr_assert_eq(m.keys, (uint64_t)n);
    cr_assert_gt(m.table_resizes, 0, "20000 keys in a table sized for 8 must grow it");
    /* delete half, the other half is intact */
    for (int i = 0; i < n; i += 2) {
        snprintf(k, sizeof k, "key:%d", i);
        int rc = kv_delete(s, k, strlen(k), NULL);
        KVT_CHECK(rc == KV_OK, "kv_delete(%s): %s", k, kv_status_name(rc));
    }
    for (int i = 0; i < n; i++) {
        snprintf(k, sizeof k, "key:%d", i);
        snprintf(v, sizeof v, "val:%d", i * 3);
        if (i % 2 == 0)
            kvt_expect_absent(s, k);
        else
            kvt_expect(s, k, v, 0);
    }
    cr_assert_eq(kvt_metrics(s).keys, (uint64_t)n / 2);
    kv_close(s);
}

/* ------------------------------------------------------------------------
 * get_into, get_with, exists
 * ---------------------------------------------------------------------- */

Test(store, get_into_copies_value_length_and_version)
{
    kv_store *s = kvt_open(NULL);
    uint64_t v = kvt_set(s, "k", "abcdef");
    char buf[16];
    memset(buf, 'x', sizeof buf);
    size_t vlen = 0;
    uint64_t ver = 0;
    cr_assert_eq(kv_get_into(s, "k", 1, buf, sizeof buf, &vlen, &ver), KV_OK);
    cr_assert_eq(vlen, 6);
    cr_assert_eq(ver, v);
    cr_assert_eq(memcmp(buf, "abcdef", 6), 0);
    cr_assert_eq(buf[6], 'x', "kv_get_into wrote past the value");
    /* exact fit and NULL version */
    memset(buf, 'x', sizeof buf);
    vlen = 0;
    cr_assert_eq(kv_get_into(s, "k", 1, buf, 6, &vlen, NULL), KV_OK);
    cr_assert_eq(vlen, 6);
    cr_assert_eq(memcmp(buf, "abcdef", 6), 0);
    kv_close(s);
}

Test(store, get_into_small_buffer_reports_length_and_copies_nothing)
{
    kv_store *s = kvt_open(NULL);
    kvt_set(s, "k", "abcdef");
    char buf[16];
    memset(buf, 'x', sizeof buf);
    size_t vlen = 0;
    uint64_t ver = 12345;
    cr_assert_eq(kv_get_into(s, "k", 1, buf, 5, &vlen, &ver), KV_BUFFER_TOO_SMALL);
    cr_assert_eq(vlen, 6, "vlen must receive the value's length");
    for (size_t i = 0; i < sizeof buf; i++)
        KVT_CHECK(buf[i] == 'x', "byte %zu copied despite BUFFER_TOO_SMALL", i);
    vlen = 0;
    cr_assert_eq(kv_get_into(s, "k", 1, buf, 0, &vlen, NULL), KV_BUFFER_TOO_SMALL);
    cr_assert_eq(vlen, 6);
    kv_close(s);
}

Test(store, get_into_missing_key_is_not_found)
{
    kv_store *s = kvt_open(NULL);
    char buf[8];
    size_t vlen = 99;
    cr_assert_eq(kv_get_into(s, "k", 1, buf, sizeof buf, &vlen, NULL), KV_NOT_FOUND);
    kv_close(s);
}

struct read_ctx {
    int calls;
    char bytes[64];
    size_t len;
    uint64_t version;
    kv_store *store;
    int nested_rc;
};

static void read_cb(void *ctx, const void *val, size_t vlen, uint64_t version)
{
    struct read_ctx *c = ctx;
    c->calls++;
    c->len = vlen;
    c->version = version;
    if (vlen <= sizeof c->bytes)
        memcpy(c->bytes, val, vlen);
}

static void nested_read_cb(void *ctx, const void *val, size_t vlen,
                           uint64_t version)
{
    struct read_ctx *c = ctx;
    read_cb(ctx, val, vlen, version);
    kv_value other = {0};
    c->nested_rc = kv_get(c->store, "other", 5, &other);
    if (c->nested_rc == KV_OK && (other.len != 2 || memcmp(other.data, "o!", 2) != 0))
        c->nested_rc = -1;
    kv_value_free(&other);
}

Test(store, get_with_passes_stored_bytes_and_version)
{
    kv_store *s = kvt_open(NULL);
    uint64_t v = kvt_set(s, "k", "zero-copy");
    struct read_ctx c = {0};
    cr_assert_eq(kv_get_with(s, "k", 1, read_cb, &c), KV_OK);
    cr_assert_eq(c.calls, 1);
    cr_assert_eq(c.len, 9);
    cr_assert_eq(memcmp(c.bytes, "zero-copy", 9), 0);
    cr_assert_eq(c.version, v);
    kv_close(s);
}

Test(store, get_with_missing_key_does_not_call_fn)
{
    kv_store *s = kvt_open(NULL);
    struct read_ctx c = {0};
    cr_assert_eq(kv_get_with(s, "k", 1, read_cb, &c), KV_NOT_FOUND);
    cr_assert_eq(c.calls, 0);
    kv_close(s);
}

Test(store, get_with_callback_may_call_libkv)
{
    kv_store *s = kvt_open(NULL);
    kvt_set(s, "k", "v");
    kvt_set(s, "other", "o!");
    struct read_ctx c = {0};
    c.store = s;
    c.nested_rc = 12345;
    cr_assert_eq(kv_get_with(s, "k", 1, nested_read_cb, &c), KV_OK);
    cr_assert_eq(c.calls, 1);
    cr_assert_eq(c.nested_rc, KV_OK, "kv_get inside the callback returned %d",
                 c.nested_rc);
    kv_close(s);
}

Test(store, exists_reports_version_and_absence)
{
    kv_store *s = kvt_open(NULL);
    uint64_t v = kvt_set(s, "k", "v");
    uint64_t ver = 0;
    cr_assert_eq(kv_exists(s, "k", 1, &ver), KV_OK);
    cr_assert_eq(ver, v);
    cr_assert_eq(kv_exists(s, "k", 1, NULL), KV_OK);
    ver = 777;
    cr_assert_eq(kv_exists(s, "x", 1, &ver), KV_NOT_FOUND);
    cr_assert_eq(kv_exists(s, "x", 1, NULL), KV_NOT_FOUND);
    kv_close(s);
}

/* ------------------------------------------------------------------------
 * delete, revisions
 * ---------------------------------------------------------------------- */

Test(store, delete_removes_key_and_returns_new_revision)
{
    kv_store *s = kvt_open(NULL);
    uint64_t v1 = kvt_set(s, "k", "v");
    uint64_t dv = 0;
    cr_assert_eq(kv_delete(s, "k", 1, &dv), KV_OK);
    cr_assert_gt(dv, v1);
    cr_assert_eq(kvt_revision(s), dv);
    kvt_expect_absent(s, "k");
    cr_assert_eq(kv_exists(s, "k", 1, NULL), KV_NOT_FOUND);
    cr_assert_eq(kvt_metrics(s).keys, 0);
    cr_assert_eq(kv_delete(s, "k", 1, NULL), KV_NOT_FOUND);
    kv_close(s);
}

Test(store, delete_missing_key_is_not_found_and_uses_no_revision)
{
    kv_store *s = kvt_open(NULL);
    uint64_t v1 = kvt_set(s, "a", "1");
    kv_metrics before = kvt_metrics(s);
    uint64_t dv = 4242;
    cr_assert_eq(kv_delete(s, "missing", 7, &dv), KV_NOT_FOUND);
    cr_assert_eq(dv, 4242, "version output touched on NOT_FOUND");
    kv_metrics after = kvt_metrics(s);
    kvt_expect_same_data(&before, &after);
    uint64_t v2 = kvt_set(s, "b", "2");
    cr_assert_eq(v2, v1 + 1, "the failed delete consumed a revision (%llu -> %llu)",
                 (unsigned long long)v1, (unsigned long long)v2);
    kv_close(s);
}

Test(store, versions_strictly_increase_store_wide)
{
    kv_store *s = kvt_open(NULL);
    uint64_t last = kvt_revision(s);
    char k[16];
    for (int i = 0; i < 200; i++) {
        snprintf(k, sizeof k, "k%d", i % 7);
        uint64_t v = 0;
        int rc;
        if (i % 5 == 4) {
            rc = kv_delete(s, k, strlen(k), &v);
            if (rc == KV_NOT_FOUND)
                continue;
        } else {
            rc = kv_set(s, k, strlen(k), "x", 1, &v);
        }
        KVT_CHECK(rc == KV_OK, "step %d: %s", i, kv_status_name(rc));
        KVT_CHECK(v == last + 1, "step %d: revision %llu after %llu", i,
                  (unsigned long long)v, (unsigned long long)last);
        KVT_CHECK(kvt_revision(s) == v, "step %d: metrics revision is not %llu",
                  i, (unsigned long long)v);
        last = v;
    }
    kv_close(s);
}

/* ------------------------------------------------------------------------
 * Compare-and-swap
 * ---------------------------------------------------------------------- */

Test(store, set_if_zero_creates_absent_key)
{
    kv_store *s = kvt_open(NULL);
    uint64_t v = 0;
    cr_assert_eq(kv_set_if(s, "k", 1, "new", 3, 0, &v), KV_OK);
    cr_assert_gt(v, 0);
    kvt_expect(s, "k", "new", v);
    kv_close(s);
}

Test(store, set_if_zero_fails_on_existing_key)
{
    kv_store *s = kvt_open(NULL);
    uint64_t v1 = kvt_set(s, "k", "old");
    kv_metrics before = kvt_metrics(s);
    uint64_t v = 999;
    cr_assert_eq(kv_set_if(s, "k", 1, "new", 3, 0, &v), KV_VERSION_MISMATCH);
    cr_assert_eq(v, 999, "version output touched on mismatch");
    kvt_expect(s, "k", "old", v1);
    kv_metrics after = kvt_metrics(s);
    kvt_expect_same_data(&before, &after);
    kv_close(s);
}

Test(store, set_if_matching_version_replaces)
{
    kv_store *s = kvt_open(NULL);
    uint64_t v1 = kvt_set(s, "k", "old");
    uint64_t v2 = 0;
    cr_assert_eq(kv_set_if(s, "k", 1, "new", 3, v1, &v2), KV_OK);
    cr_assert_gt(v2, v1);
    kvt_expect(s, "k", "new", v2);
    kv_close(s);
}

Test(store, set_if_stale_version_fails)
{
    kv_store *s = kvt_open(NULL);
    uint64_t v1 = kvt_set(s, "k", "old");
    uint64_t v2 = kvt_set(s, "k", "mid");
    kv_metrics before = kvt_metrics(s);
    cr_assert_eq(kv_set_if(s, "k", 1, "new", 3, v1, NULL), KV_VERSION_MISMATCH);
    kvt_expect(s, "k", "mid", v2);
    kv_metrics after = kvt_metrics(s);
    kvt_expect_same_data(&before, &after);
    kv_close(s);
}

Test(store, set_if_nonzero_version_on_absent_key_fails)
{
    kv_store *s = kvt_open(NULL);
    uint64_t v1 = kvt_set(s, "other", "x");
    cr_assert_eq(kv_set_if(s, "k", 1, "new", 3, v1, NULL), KV_VERSION_MISMATCH);
    kvt_expect_absent(s, "k");
    kv_close(s);
}

Test(store, delete_if_matching_version_deletes)
{
    kv_store *s = kvt_open(NULL);
    uint64_t v1 = kvt_set(s, "k", "v");
    uint64_t dv = 0;
    cr_assert_eq(kv_delete_if(s, "k", 1, v1, &dv), KV_OK);
    cr_assert_gt(dv, v1);
    kvt_expect_absent(s, "k");
    kv_close(s);
}

Test(store, delete_if_stale_version_fails)
{
    kv_store *s = kvt_open(NULL);
    uint64_t v1 = kvt_set(s, "k", "a");
    uint64_t v2 = kvt_set(s, "k", "b");
    kv_metrics before = kvt_metrics(s);
    uint64_t dv = 31337;
    cr_assert_eq(kv_delete_if(s, "k", 1, v1, &dv), KV_VERSION_MISMATCH);
    cr_assert_eq(dv, 31337);
    kvt_expect(s, "k", "b", v2);
    kv_metrics after = kvt_metrics(s);
    kvt_expect_same_data(&before, &after);
    kv_close(s);
}

Test(store, delete_if_absent_key_is_not_found)
{
    kv_store *s = kvt_open(NULL);
    uint64_t v1 = kvt_set(s, "other", "x");
    cr_assert_eq(kv_delete_if(s, "k", 1, v1, NULL), KV_NOT_FOUND);
    cr_assert_eq(kvt_revision(s), v1);
    kv_close(s);
}

Test(store, delete_if_expected_zero_is_refused)
{
    /* kv.h: "expected ... must not be 0". Which code is not specified; the
     * key must survive and no revision may be used. */
    kv_store *s = kvt_open(NULL);
    uint64_t v1 = kvt_set(s, "k", "v");
    int rc = kv_delete_if(s, "k", 1, 0, NULL);
    cr_assert_neq(rc, KV_OK, "kv_delete_if with expected 0 deleted the key");
    kvt_expect(s, "k", "v", v1);
    cr_assert_eq(kvt_revision(s), v1);
    kv_close(s);
}

/* ------------------------------------------------------------------------
 * Limits: each failure leaves the store unchanged
 * ---------------------------------------------------------------------- */

Test(store, empty_key_is_rejected_everywhere)
{
    kv_store *s = kvt_open(NULL);
    kvt_set(s, "k", "v");
    kv_metrics before = kvt_metrics(s);
    uint64_t ver = 5555;
    kv_value out = {0};
    char buf[8];
    size_t vlen = 0;
    struct read_ctx c = {0};
    cr_assert_eq(kv_set(s, "", 0, "v", 1, &ver), KV_KEY_EMPTY);
    cr_assert_eq(kv_set(s, NULL, 0, "v", 1, &ver), KV_KEY_EMPTY);
    cr_assert_eq(kv_set_if(s, "", 0, "v", 1, 0, &ver), KV_KEY_EMPTY);
    cr_assert_eq(kv_get(s, "", 0, &out), KV_KEY_EMPTY);
    cr_assert_eq(kv_get_into(s, "", 0, buf, sizeof buf, &vlen, &ver), KV_KEY_EMPTY);
    cr_assert_eq(kv_get_with(s, "", 0, read_cb, &c), KV_KEY_EMPTY);
    cr_assert_eq(kv_exists(s, "", 0, &ver), KV_KEY_EMPTY);
    cr_assert_eq(kv_delete(s, "", 0, &ver), KV_KEY_EMPTY);
    cr_assert_eq(kv_delete_if(s, "", 0, 1, &ver), KV_KEY_EMPTY);
    cr_assert_eq(ver, 5555, "version output touched on failure");
    cr_assert_null(out.data);
    cr_assert_eq(c.calls, 0);
    kv_metrics after = kvt_metrics(s);
    kvt_expect_same_data(&before, &after);
    kv_close(s);
}

Test(store, key_at_max_size_is_accepted_one_more_is_rejected)
{
    kv_options o;
    kv_options_init(&o);
    o.max_key_size = 32;
    kv_store *s = kvt_open(&o);
    char key[33];
    memset(key, 'k', sizeof key);
    uint64_t v = 0;
    cr_assert_eq(kv_set(s, key, 32, "v", 1, &v), KV_OK);
    kv_metrics before = kvt_metrics(s);
    uint64_t ver = 5555;
    kv_value out = {0};
    cr_assert_eq(kv_set(s, key, 33, "v", 1, &ver), KV_KEY_TOO_LARGE);
    cr_assert_eq(kv_set_if(s, key, 33, "v", 1, 0, &ver), KV_KEY_TOO_LARGE);
    cr_assert_eq(kv_get(s, key, 33, &out), KV_KEY_TOO_LARGE);
    cr_assert_eq(kv_exists(s, key, 33, &ver), KV_KEY_TOO_LARGE);
    cr_assert_eq(kv_delete(s, key, 33, &ver), KV_KEY_TOO_LARGE);
    cr_assert_eq(ver, 5555);
    cr_assert_null(out.data);
    kv_metrics after = kvt_metrics(s);
    kvt_expect_same_data(&before, &after);
    cr_assert_eq(kv_exists(s, key, 32, NULL), KV_OK);
    kv_close(s);
}

Test(store, default_max_key_size_is_enforced)
{
    kv_store *s = kvt_open(NULL);
    size_t n = KV_DEFAULT_MAX_KEY_SIZE + 1;
    char *key = malloc(n);
    cr_assert_not_null(key);
    memset(key, 'q', n);
    cr_assert_eq(kv_set(s, key, n - 1, "v", 1, NULL), KV_OK);
    cr_assert_eq(kv_set(s, key, n, "v", 1, NULL), KV_KEY_TOO_LARGE);
    cr_assert_eq(kvt_metrics(s).keys, 1);
    free(key);
    kv_close(s);
}

Test(store, value_over_max_size_is_rejected_and_old_value_kept)
{
    kv_options o;
    kv_options_init(&o);
    o.max_value_size = 100;
    kv_store *s = kvt_open(&o);
    char val[101];
    memset(val, 'v', sizeof val);
    uint64_t v1 = 0;
    cr_assert_eq(kv_set(s, "k", 1, val, 100, &v1), KV_OK);
    kv_metrics before = kvt_metrics(s);
    uint64_t ver = 5555;
    cr_assert_eq(kv_set(s, "k", 1, val, 101, &ver), KV_VALUE_TOO_LARGE);
    cr_assert_eq(kv_set(s, "new", 3, val, 101, &ver), KV_VALUE_TOO_LARGE);
    cr_assert_eq(kv_set_if(s, "k", 1, val, 101, v1, &ver), KV_VALUE_TOO_LARGE);
    cr_assert_eq(ver, 5555);
    kv_value out = {0};
    cr_assert_eq(kv_get(s, "k", 1, &out), KV_OK);
    cr_assert_eq(out.len, 100);
    cr_assert_eq(out.version, v1);
    kv_value_free(&out);
    kvt_expect_absent(s, "new");
    kv_metrics after = kvt_metrics(s);
    kvt_expect_same_data(&before, &after);
    kv_close(s);
}

Test(store, max_keys_gives_store_full_and_nothing_changes)
{
    kv_options o;
    kv_options_init(&o);
    o.max_keys = 3;
    kv_store *s = kvt_open(&o);
    kvt_set(s, "a", "1");
    kvt_set(s, "b", "2");
    uint64_t vc = kvt_set(s, "c", "3");
    kv_metrics before = kvt_metrics(s);
    uint64_t ver = 5555;
    cr_assert_eq(kv_set(s, "d", 1, "4", 1, &ver), KV_STORE_FULL);
    cr_assert_eq(kv_set_if(s, "d", 1, "4", 1, 0, &ver), KV_STORE_FULL);
    cr_assert_eq(ver, 5555);
    kvt_expect_absent(s, "d");
    kv_metrics after = kvt_metrics(s);
    kvt_expect_same_data(&before, &after);
    /* replacing an existing key is not a new key */
    uint64_t vc2 = kvt_set(s, "c", "33");
    cr_assert_gt(vc2, vc);
    kvt_expect(s, "c", "33", vc2);
    /* a delete makes room again */
    cr_assert_eq(kv_delete(s, "a", 1, NULL), KV_OK);
    kvt_set(s, "d", "4");
    kvt_expect(s, "d", "4", 0);
    cr_assert_eq(kvt_metrics(s).keys, 3);
    kv_close(s);
}

/* ---- huge pages (kv_config.huge_pages) ----------------------------------- */

/* The VmFlags of the mapping holding p, from /proc/self/smaps ("" if none). */
static void vm_flags_of(const void *p, char *flags, size_t cap)
{
    FILE *f = fopen("/proc/self/smaps", "r");
    cr_assert(f != NULL, "no /proc/self/smaps");
    char line[512];
    bool in = false;
    flags[0] = '\0';
    while (fgets(line, sizeof line, f)) {
        unsigned long lo, hi;
        if (sscanf(line, "%lx-%lx ", &lo, &hi) == 2 && strchr(line, '-') < strchr(line, ' '))
            in = (uintptr_t)p >= lo && (uintptr_t)p < hi;
        else if (in && strncmp(line, "VmFlags:", 8) == 0) {
            size_t n = strlen(line + 8);
            n = n < cap - 1 ? n : cap - 1;
            memcpy(flags, line + 8, n);
            flags[n] = '\0';
            break;
        }
    }
    fclose(f);
}

/* The kB of this process's mappings advised to be huge pages. */
static long huge_kb(void)
{
    FILE *f = fopen("/proc/self/smaps", "r");
    cr_assert(f != NULL, "no /proc/self/smaps");
    char line[512];
    long size = 0, total = 0;
    while (fgets(line, sizeof line, f)) {
        if (strncmp(line, "Size:", 5) == 0)
            size = strtol(line + 5, NULL, 10);
        else if (strncmp(line, "VmFlags:", 8) == 0 && strstr(line, " hg"))
            total += size;
    }
    fclose(f);
    return total;
}

static void keep_address(void *ctx, const void *val, size_t vlen, uint64_t version)
{
    (void)vlen, (void)version;
    *(const void **)ctx = val;
}

/* The advice on the memory of a key's item: 'h' (huge pages), 'n' (no
 * huge pages) or '?' (neither). */
static char advice_of(kv_store *s, long i)
{
    char key[32], flags[256];
    snprintf(key, sizeof key, "key:%08ld", i);
    const void *val = NULL;
    cr_assert_eq(kv_get_with(s, key, strlen(key), keep_address, &val), KV_OK);
    vm_flags_of(val, flags, sizeof flags);
    return strstr(flags, " hg") ? 'h' : strstr(flags, " nh") ? 'n' : '?';
}

/* Fills a store with 40k items of about 220 bytes (9 MB: the slab's 256 KiB
 * chunks, then several 2 MiB ones) and reports the advice on the memory of
 * the first item (in a small chunk), of an item in a filled 2 MiB chunk
 * (key 30000, at about 6.5 MB) and of the last one (in the chunk being
 * carved). */
static void advice_after_filling(int policy, char advice[3], long *huge_grew_kb)
{
    long before = huge_kb();
    kv_config cfg;
    kv_config_init(&cfg, sizeof cfg);
    cfg.huge_pages = policy;
    cfg.initial_capacity = (size_t)1 << 20; /* an index of several MiB */
    kv_store *s = NULL;
    cr_assert_eq(kv_open_config(&cfg, &s), KV_OK);
    char key[32], val[200];
    memset(val, 'v', sizeof val);
    for (long i = 0; i < 40000; i++) {
        snprintf(key, sizeof key, "key:%08ld", i);
        KVT_CHECK(kv_set(s, key, strlen(key), val, sizeof val, NULL) == KV_OK, "set %ld", i);
    }
    advice[0] = advice_of(s, 0);
    advice[1] = advice_of(s, 30000);
    advice[2] = advice_of(s, 39999);
    /* (freed memory of an earlier store may still be mapped: under
     * valgrind, whose allocator keeps it, so count what grew) */
    *huge_grew_kb = huge_kb() - before;
    kv_close(s);
}

Test(store, huge_pages_policy_decides_whether_item_memory_is_advised)
{
    if (access("/sys/kernel/mm/transparent_hugepage/enabled", F_OK) != 0)
        cr_skip_test("this kernel has no transparent huge pages");
    char a[3];
    long grew;
    advice_after_filling(KV_HUGE_EAGER, a, &grew);
    cr_expect_geq(grew, 4096, "eager: %ld kB more advised (the index's 16 MiB among them)", grew);
    cr_expect_neq(a[0], 'h', "eager, a small store's chunk: %c", a[0]);
    cr_expect_eq(a[1], 'h', "eager, filled 2 MiB chunk: %c", a[1]);
    cr_expect_eq(a[2], 'h', "eager, chunk being carved: %c", a[2]);
    advice_after_filling(KV_HUGE_NEVER, a, &grew);
    cr_expect_leq(grew, 0, "never: %ld kB more advised (the index's?)", grew);
    cr_expect_neq(a[0], 'h', "never, a small store's chunk: %c", a[0]);
    cr_expect_eq(a[1], 'n', "never, filled 2 MiB chunk: %c", a[1]);
    cr_expect_eq(a[2], 'n', "never, chunk being carved: %c", a[2]);
}

Test(store, huge_pages_out_of_range_is_refused)
{
    kv_config cfg;
    kv_config_init(&cfg, sizeof cfg);
    cr_assert_eq(cfg.huge_pages, KV_HUGE_EAGER, "the library's default");
    kv_store *s = NULL;
    cfg.huge_pages = KV_HUGE_NEVER + 1;
    cr_assert_eq(kv_open_config(&cfg, &s), KV_INVALID_ARGUMENT);
    cfg.huge_pages = -1;
    cr_assert_eq(kv_open_config(&cfg, &s), KV_INVALID_ARGUMENT);
    cr_assert_null(s);
}
