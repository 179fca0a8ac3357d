/*
 * test_sessions.c - a cluster's table of applied request ids
 * (kvd/src/repl/sessions.c): a duplicate is told apart from a new and an
 * older request and gets its recorded reply back; the least recent
 * client is forgotten when the table is full; a large reply is not kept;
 * the snapshot section restores the same table (the same order of
 * forgetting too), and a malformed one is refused.
 */
#include <criterion/criterion.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "kv.h"
#include "repl/sessions.h"

static int check(kvd_sessions *s, uint64_t client, uint64_t seq, const char *want)
{
    const void *o = NULL;
    size_t n = 0;
    int rc = kvd_sessions_check(s, client, seq, &o, &n);
    if (rc == KVD_SESSION_DUPLICATE && want) {
        cr_assert_not_null(o);
        cr_assert_eq(n, strlen(want));
        cr_assert(memcmp(o, want, n) == 0);
    }
    return rc;
}

Test(sessions, duplicates_new_and_stale_requests)
{
    kvd_sessions *s = kvd_sessions_new(8);
    cr_assert_not_null(s);
    cr_assert_eq(check(s, 7, 1, NULL), KVD_SESSION_NEW);
    cr_assert_eq(kvd_sessions_record(s, 7, 1, "first", 5), KV_OK);
    cr_assert_eq(check(s, 7, 1, "first"), KVD_SESSION_DUPLICATE);
    cr_assert_eq(check(s, 7, 2, NULL), KVD_SESSION_NEW);
    cr_assert_eq(check(s, 8, 1, NULL), KVD_SESSION_NEW, "another client");
    cr_assert_eq(kvd_sessions_record(s, 7, 5, "fifth", 5), KV_OK);
    cr_assert_eq(check(s, 7, 5, "fifth"), KVD_SESSION_DUPLICATE);
    cr_assert_eq(check(s, 7, 1, NULL), KVD_SESSION_STALE);
    cr_assert_eq(check(s, 7, 4, NULL), KVD_SESSION_STALE);
    cr_assert_eq(kvd_sessions_count(s), 1);
    kvd_sessions_free(s);
}

Test(sessions, a_large_reply_is_not_kept)
{
    kvd_sessions *s = kvd_sessions_new(4);
    char *big = calloc(1, KVD_SESSIONS_MAX_OUTCOME + 1);
    cr_assert_eq(kvd_sessions_record(s, 3, 9, big, KVD_SESSIONS_MAX_OUTCOME + 1), KV_OK);
    const void *o = "x";
    size_t n = 1;
    cr_assert_eq(kvd_sessions_check(s, 3, 9, &o, &n), KVD_SESSION_DUPLICATE);
    cr_assert_null(o, "remembered as applied, without its reply");
    free(big);
    kvd_sessions_free(s);
}

Test(sessions, the_least_recent_client_is_forgotten)
{
    kvd_sessions *s = kvd_sessions_new(3);
    kvd_sessions_record(s, 1, 1, "a", 1);
    kvd_sessions_record(s, 2, 1, "b", 1);
    kvd_sessions_record(s, 3, 1, "c", 1);
    kvd_sessions_record(s, 1, 2, "a2", 2); /* 1 is now the most recent */
    kvd_sessions_record(s, 4, 1, "d", 1);  /* full: 2 goes */
    cr_assert_eq(kvd_sessions_count(s), 3);
    cr_assert_eq(check(s, 2, 1, NULL), KVD_SESSION_NEW, "forgotten");
    cr_assert_eq(check(s, 1, 2, "a2"), KVD_SESSION_DUPLICATE);
    cr_assert_eq(check(s, 3, 1, "c"), KVD_SESSION_DUPLICATE);
    cr_assert_eq(check(s, 4, 1, "d"), KVD_SESSION_DUPLICATE);
    /* many more clients than slots: the index stays consistent */
    for (uint64_t c = 100; c < 1100; c++) {
        cr_assert_eq(kvd_sessions_record(s, c * 0x9e3779b97f4a7c15ull, c, "z", 1), KV_OK);
        cr_assert_eq(check(s, c * 0x9e3779b97f4a7c15ull, c, "z"), KVD_SESSION_DUPLICATE);
    }
    cr_assert_eq(kvd_sessions_count(s), 3);
    for (uint64_t c = 1097; c < 1100; c++)
        cr_assert_eq(check(s, c * 0x9e3779b97f4a7c15ull, c, "z"), KVD_SESSION_DUPLICATE);
    cr_assert_eq(check(s, 1096 * 0x9e3779b97f4a7c15ull, 1096, NULL), KVD_SESSION_NEW);
    kvd_sessions_free(s);
}

Test(sessions, the_snapshot_section_restores_the_same_table)
{
    kvd_sessions *s = kvd_sessions_new(3), *t = kvd_sessions_new(3);
    char *big = calloc(1, KVD_SESSIONS_MAX_OUTCOME + 1);
    kvd_sessions_record(s, 1, 10, "one", 3);
    kvd_sessions_record(s, 2, 20, big, KVD_SESSIONS_MAX_OUTCOME + 1);
    kvd_sessions_record(s, 3, 30, "three", 5);
    kvd_sessions_record(s, 1, 11, "one'", 4); /* order now 2, 3, 1 */
    unsigned char *p;
    size_t len, used = 0;
    cr_assert_eq(kvd_sessions_save(s, &p, &len), KV_OK);
    /* followed by other bytes of the snapshot: only the section is read */
    unsigned char *q = malloc(len + 5);
    memcpy(q, p, len);
    memcpy(q + len, "after", 5);
    kvd_sessions_record(t, 99, 1, "old", 3);
    cr_assert_eq(kvd_sessions_load(t, q, len + 5, &used), KV_OK);
    cr_assert_eq(used, len);
    cr_assert_eq(kvd_sessions_count(t), 3);
    cr_assert_eq(check(t, 99, 1, NULL), KVD_SESSION_NEW, "the table was replaced");
    cr_assert_eq(check(t, 1, 11, "one'"), KVD_SESSION_DUPLICATE);
    cr_assert_eq(check(t, 1, 10, NULL), KVD_SESSION_STALE);
    cr_assert_eq(check(t, 3, 30, "three"), KVD_SESSION_DUPLICATE);
    const void *o = "x";
    size_t n;
    cr_assert_eq(kvd_sessions_check(t, 2, 20, &o, &n), KVD_SESSION_DUPLICATE);
    cr_assert_null(o);
    /* the same order of forgetting: a new client drops 2 first */
    kvd_sessions_record(t, 4, 1, "d", 1);
    cr_assert_eq(check(t, 2, 20, NULL), KVD_SESSION_NEW);
    cr_assert_eq(check(t, 3, 30, "three"), KVD_SESSION_DUPLICATE);
    /* malformed sections are refused and leave the table empty */
    cr_assert_eq(kvd_sessions_load(t, q, len - 1, &used), KV_CORRUPT);
    cr_assert_eq(kvd_sessions_count(t), 0);
    q[0] = 'X';
    cr_assert_eq(kvd_sessions_load(t, q, len, &used), KV_CORRUPT);
    q[0] = 'K';
    q[8] = 0xff; /* a count beyond the bytes */
    cr_assert_eq(kvd_sessions_load(t, q, len, &used), KV_CORRUPT);
    free(q);
    free(p);
    free(big);
    kvd_sessions_free(s);
    kvd_sessions_free(t);
}
