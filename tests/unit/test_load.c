/*
 * test_load.c - kv_load: installing another copy's state with its
 * revisions (replication). A key takes the given revision unless it is
 * already at that one or a later one; the store's revision follows; a
 * delete of an absent key only raises the revision; durable stores and
 * bad arguments are refused; kv_load_ex with kv_scan_ex copies expiry
 * times and keys expired but not yet removed.
 */
#include <unistd.h>

#include "kvtest.h"

Test(load, keys_take_the_given_revisions)
{
    kv_store *s = kvt_open(NULL);
    cr_assert_eq(kv_load(s, "a", 1, "1", 1, 7, 0), KV_OK);
    cr_assert_eq(kv_load(s, "b", 1, "2", 1, 3, 0), KV_OK);
    kv_value v;
    cr_assert_eq(kv_get(s, "a", 1, &v), KV_OK);
    cr_assert_eq(v.version, 7);
    kv_value_free(&v);
    cr_assert_eq(kv_get(s, "b", 1, &v), KV_OK);
    cr_assert_eq(v.version, 3);
    kv_value_free(&v);
    cr_assert_eq(kv_revision(s), 7, "the store's revision is the highest loaded");
    uint64_t rev = 0;
    cr_assert_eq(kv_set(s, "c", 1, "3", 1, &rev), KV_OK);
    cr_assert_eq(rev, 8, "writes go on from there");
    kv_close(s);
}

Test(load, an_older_or_equal_revision_changes_nothing)
{
    kv_store *s = kvt_open(NULL);
    cr_assert_eq(kv_load(s, "k", 1, "new", 3, 10, 0), KV_OK);
    cr_assert_eq(kv_load(s, "k", 1, "old", 3, 9, 0), KV_OK);
    cr_assert_eq(kv_load(s, "k", 1, "same", 4, 10, 0), KV_OK);
    cr_assert_eq(kv_load(s, "k", 1, NULL, 0, 10, 1), KV_OK);
    kv_value v;
    cr_assert_eq(kv_get(s, "k", 1, &v), KV_OK);
    cr_assert_eq(v.len, 3);
    cr_assert(memcmp(v.data, "new", 3) == 0);
    cr_assert_eq(v.version, 10);
    kv_value_free(&v);
    kv_close(s);
}

Test(load, deletes_remove_or_only_raise_the_revision)
{
    kv_store *s = kvt_open(NULL);
    cr_assert_eq(kv_load(s, "k", 1, "v", 1, 4, 0), KV_OK);
    cr_assert_eq(kv_load(s, "k", 1, NULL, 0, 5, 1), KV_OK);
    kv_value v;
    cr_assert_eq(kv_get(s, "k", 1, &v), KV_NOT_FOUND);
    cr_assert_eq(kv_load(s, "absent", 6, NULL, 0, 12, 1), KV_OK);
    cr_assert_eq(kv_revision(s), 12);
    kv_metrics m;
    kv_metrics_read(s, &m, sizeof m);
    cr_assert_eq(m.keys, 0);
    kv_close(s);
}

Test(load, bad_arguments_and_durable_stores_are_refused)
{
    kv_store *s = kvt_open(NULL);
    cr_assert_eq(kv_load(s, "k", 1, "v", 1, 0, 0), KV_INVALID_ARGUMENT, "revision 0");
    cr_assert_eq(kv_load(s, "", 0, "v", 1, 1, 0), KV_KEY_EMPTY);
    cr_assert_eq(kv_load(NULL, "k", 1, "v", 1, 1, 0), KV_INVALID_ARGUMENT);
    kv_close(s);
    char dir[] = "/tmp/kvloadXXXXXX";
    cr_assert_not_null(mkdtemp(dir));
    kv_config c;
    kv_config_init(&c, sizeof c);
    c.dir = dir;
    kv_store *d = NULL;
    cr_assert_eq(kv_open_config(&c, &d), KV_OK);
    cr_assert_eq(kv_load(d, "k", 1, "v", 1, 1, 0), KV_UNSUPPORTED,
                 "a durable store's log would not hold the change");
    kv_close(d);
    char cmd[64];
    snprintf(cmd, sizeof cmd, "rm -rf %s", dir);
    cr_assert_eq(system(cmd), 0);
}

/* A replica's copy (kv.h, "Replicas"): kv_scan_ex with KV_SCAN_EXPIRED
 * gives every stored key with its expiry time, expired ones included, and
 * kv_load_ex installs them so: the copy holds what the original holds. */
typedef struct copy_ctx {
    kv_store *to;
    int n;
} copy_ctx;

static int copy_key(void *ctx, const void *key, size_t klen, const void *val, size_t vlen,
                    uint64_t version, uint64_t expire_at)
{
    copy_ctx *c = ctx;
    c->n++;
    cr_assert_eq(kv_load_ex(c->to, key, klen, val, vlen, version, expire_at, 0), KV_OK);
    return 0;
}

static int copy_all(kv_store *from, kv_store *to, unsigned flags)
{
    copy_ctx c = {to, 0};
    uint64_t cursor = 0;
    do
        cr_assert_eq(kv_scan_ex(from, NULL, 0, cursor, 2, flags, copy_key, &c, &cursor), KV_OK);
    while (cursor);
    return c.n;
}

Test(load, a_copy_with_expiry_times_and_expired_keys)
{
    kv_config cfg;
    kv_config_init(&cfg, sizeof cfg);
    cfg.manual_expiry = 1; /* nothing removes the expired key meanwhile */
    kv_store *s, *copy;
    cr_assert_eq(kv_open_config(&cfg, &s), KV_OK);
    cr_assert_eq(kv_open_config(&cfg, &copy), KV_OK);
    uint64_t now = kv_clock_ms(s);
    uint64_t v_live, v_gone;
    cr_assert_eq(kv_set_ex(s, "live", 4, "1", 1, now + 3600000, &v_live), KV_OK);
    cr_assert_eq(kv_set_ex(s, "gone", 4, "2", 1, 1000, &v_gone), KV_OK); /* long past */
    kvt_set(s, "plain", "3");
    uint64_t next;
    cr_assert_eq(kv_scan_ex(s, NULL, 0, 0, 10, 2, copy_key, NULL, &next), KV_INVALID_ARGUMENT);
    cr_assert_eq(kv_scan_ex(s, NULL, 0, 0, 10, 0, NULL, NULL, &next), KV_INVALID_ARGUMENT);

    kv_store *visible;
    cr_assert_eq(kv_open_config(&cfg, &visible), KV_OK);
    cr_assert_eq(copy_all(s, visible, 0), 2, "without the flag: what readers see");
    cr_assert_eq(copy_all(s, copy, KV_SCAN_EXPIRED), 3);
    kv_metrics m;
    cr_assert_eq(kv_metrics_read(copy, &m, sizeof m), KV_OK);
    cr_assert_eq(m.keys, 3);
    cr_assert_eq(m.keys_with_ttl, 2);
    uint64_t at = 0;
    cr_assert_eq(kv_ttl(copy, "live", 4, &at), KV_OK);
    cr_assert_eq(at, now + 3600000);
    cr_assert_eq(kv_ttl(copy, "gone", 4, &at), KV_NOT_FOUND, "stored, but expired");
    kv_value v;
    cr_assert_eq(kv_get(copy, "live", 4, &v), KV_OK);
    cr_assert_eq(v.version, v_live);
    kv_value_free(&v);
    /* the copy's removal of the expired key matches the original's */
    kv_key gone = {"gone", 4};
    size_t removed = 0;
    cr_assert_eq(kv_expire_remove(copy, &gone, 1, now, &removed, NULL), KV_OK);
    cr_assert_eq(removed, 1);
    kv_close(visible);
    kv_close(copy);
    kv_close(s);
}
