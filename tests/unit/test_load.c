/*
 * test_load.c - kv_load: installing another copy's state with its
 * revisions (replication). A key takes the given revision unless it is
 * already at that one or a later one; the store's revision follows; a
 * delete of an absent key only raises the revision; durable stores and
 * bad arguments are refused.
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
