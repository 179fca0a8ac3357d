/*
 * test_apply.c - the single write path (libkv/src/apply.c), white-box.
 *
 * Durability and replication will attach to the record hook, so it must
 * see every atomic change exactly once, as one record carrying the
 * revision the caller was told, with all of the change's keys, and nothing
 * for operations that changed nothing.
 */
#include "kvtest.h"

#include "apply.h"

#define MAX_RECORDS 16

typedef struct seen {
    uint64_t revision;
    size_t nchanges;
    size_t ndeleted;
    char first_key[16];
} seen;

static seen records[MAX_RECORDS];
static size_t nrecords;

static void hook(void *ctx, const kv__record *rec)
{
    (void)ctx;
    cr_assert_lt(nrecords, MAX_RECORDS);
    seen *s = &records[nrecords++];
    s->revision = rec->revision;
    s->nchanges = rec->nchanges;
    for (size_t i = 0; i < rec->nchanges; i++)
        s->ndeleted += rec->changes[i].deleted;
    size_t n = rec->changes[0].klen < 15 ? rec->changes[0].klen : 15;
    memcpy(s->first_key, rec->changes[0].key, n);
}

Test(apply, every_atomic_change_is_one_record_with_its_revision)
{
    kv_store *s = kvt_open(NULL);
    kv__set_record_hook(s, hook, NULL);
    uint64_t v1, v2, v3, v4;

    cr_assert_eq(kv_set(s, "a", 1, "1", 1, &v1), KV_OK);
    kv_pair pairs[3] = {{"b", 1, "2", 1}, {"c", 1, "3", 1}, {"d", 1, "4", 1}};
    cr_assert_eq(kv_mset(s, pairs, 3, &v2), KV_OK);

    kv_txn *t;
    cr_assert_eq(kv_txn_begin(s, &t), KV_OK);
    cr_assert_eq(kv_txn_set(t, "e", 1, "5", 1), KV_OK);
    cr_assert_eq(kv_txn_delete(t, "a", 1), KV_OK);
    cr_assert_eq(kv_txn_commit(t, &v3), KV_OK);

    kv_compare cmp = {.kind = KV_CMP_EXISTS, .key = "b", .klen = 1};
    kv_op op = {KV_OP_DELETE, "b", 1, NULL, 0, 0};
    kv_txn_result res;
    cr_assert_eq(kv_txn_cond(s, &cmp, 1, &op, 1, NULL, 0, &res), KV_OK);
    v4 = res.version;
    kv_txn_result_free(&res);

    /* No change, no record: a delete of a missing key, a failed CAS. */
    cr_assert_eq(kv_delete(s, "zz", 2, NULL), KV_NOT_FOUND);
    cr_assert_eq(kv_set_if(s, "c", 1, "x", 1, 999, NULL), KV_VERSION_MISMATCH);

    cr_assert_eq(nrecords, 4);
    uint64_t want_rev[4] = {v1, v2, v3, v4};
    size_t want_changes[4] = {1, 3, 2, 1};
    size_t want_deleted[4] = {0, 0, 1, 1};
    for (size_t i = 0; i < 4; i++) {
        cr_assert_eq(records[i].revision, want_rev[i], "record %zu", i);
        cr_assert_eq(records[i].nchanges, want_changes[i], "record %zu", i);
        cr_assert_eq(records[i].ndeleted, want_deleted[i], "record %zu", i);
        if (i > 0)
            cr_assert_gt(records[i].revision, records[i - 1].revision);
    }
    cr_assert_str_eq(records[0].first_key, "a");
    kv_close(s);
}

Test(apply, failed_batch_reaches_no_hook)
{
    kv_options o;
    kv_options_init(&o);
    o.max_keys = 1;
    kv_store *s = kvt_open(&o);
    kv__set_record_hook(s, hook, NULL);
    nrecords = 0;
    kv_pair pairs[2] = {{"a", 1, "1", 1}, {"b", 1, "2", 1}};
    cr_assert_eq(kv_mset(s, pairs, 2, NULL), KV_STORE_FULL);
    cr_assert_eq(kv_set(s, "", 0, "1", 1, NULL), KV_KEY_EMPTY);
    cr_assert_eq(nrecords, 0);
    kv_close(s);
}
