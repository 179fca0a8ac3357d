/*
 * test_sessions.c - a cluster's table of applied request ids
 * (kvd/src/repl/sessions.c): a duplicate is told apart from a new and an
 * older request and gets its recorded reply back; the least recent
 * client is forgotten when the table is full; a large reply is not kept;
 * each client keeps a window of its last KVD_SESSIONS_WINDOW request ids
 * with their replies, and all the windows together at most
 * KVD_SESSIONS_MAX_ENTRIES; the snapshot section restores the same table
 * (windows and the order of forgetting too), an older kvd's one-id
 * section is read, and a malformed one is refused.
 */
#include <criterion/criterion.h>
#include <stdint.h>
#include <stdio.h>
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
    cr_assert_eq(check(s, 7, 1, "first"), KVD_SESSION_DUPLICATE, "still in the window");
    cr_assert_eq(check(s, 7, 4, NULL), KVD_SESSION_STALE, "never applied, a later one was");
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
    cr_assert_eq(check(t, 1, 10, "one"), KVD_SESSION_DUPLICATE, "the window too");
    cr_assert_eq(check(t, 1, 9, NULL), KVD_SESSION_STALE);
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

Test(sessions, a_window_of_the_last_request_ids_keeps_their_replies)
{
    kvd_sessions *s = kvd_sessions_new(4), *t = kvd_sessions_new(4);
    char r[32];
    enum { N = KVD_SESSIONS_WINDOW + 44 };
    for (uint64_t q = 1; q <= N; q++) {
        snprintf(r, sizeof r, "reply %llu", (unsigned long long)q);
        cr_assert_eq(kvd_sessions_record(s, 5, q * 2, r, strlen(r)), KV_OK); /* even ids */
    }
    for (int pass = 0; pass < 2; pass++) {
        kvd_sessions *u = pass ? t : s;
        for (uint64_t q = 1; q <= N; q++) {
            snprintf(r, sizeof r, "reply %llu", (unsigned long long)q);
            if (q > N - KVD_SESSIONS_WINDOW)
                cr_assert_eq(check(u, 5, q * 2, r), KVD_SESSION_DUPLICATE, "%llu in the window",
                             (unsigned long long)q);
            else
                cr_assert_eq(check(u, 5, q * 2, NULL), KVD_SESSION_STALE, "%llu before it",
                             (unsigned long long)q);
            cr_assert_eq(check(u, 5, q * 2 - 1, NULL), KVD_SESSION_STALE, "odd: never applied");
        }
        cr_assert_eq(check(u, 5, N * 2 + 1, NULL), KVD_SESSION_NEW);
        if (!pass) { /* the same window through a snapshot section */
            unsigned char *p;
            size_t len, used;
            cr_assert_eq(kvd_sessions_save(s, &p, &len), KV_OK);
            cr_assert_eq(kvd_sessions_load(t, p, len, &used), KV_OK);
            cr_assert_eq(used, len);
            free(p);
        }
    }
    /* a request id at or below the last starts the window over */
    cr_assert_eq(kvd_sessions_record(s, 5, 3, "again", 5), KV_OK);
    cr_assert_eq(check(s, 5, 3, "again"), KVD_SESSION_DUPLICATE);
    cr_assert_eq(check(s, 5, N * 2, NULL), KVD_SESSION_NEW);
    kvd_sessions_free(s);
    kvd_sessions_free(t);
}

Test(sessions, many_clients_share_the_windows_room)
{
    enum { FULL = KVD_SESSIONS_MAX_ENTRIES / KVD_SESSIONS_WINDOW, N = 2 * FULL };
    enum { SHARE = KVD_SESSIONS_MAX_ENTRIES / N };
    kvd_sessions *s = kvd_sessions_new(N);
    uint64_t q = 0;
    for (int round = 0; round < 2; round++)
        for (uint64_t c = 1; c <= N; c++)
            for (uint64_t k = 0; k < KVD_SESSIONS_WINDOW; k++)
                cr_assert_eq(kvd_sessions_record(s, c, ++q, "ok", 2), KV_OK);
    /* every client is remembered; once all have written again with N
     * remembered, each window holds its share: the last SHARE ids */
    cr_assert_eq(kvd_sessions_count(s), N);
    for (uint64_t c = 1; c <= N; c++) {
        uint64_t last = (uint64_t)KVD_SESSIONS_WINDOW * (N + c);
        cr_assert_eq(check(s, c, last, "ok"), KVD_SESSION_DUPLICATE);
        cr_assert_eq(check(s, c, last - SHARE + 1, "ok"), KVD_SESSION_DUPLICATE);
        cr_assert_eq(check(s, c, last - SHARE, NULL), KVD_SESSION_STALE);
        cr_assert_eq(check(s, c, last + 1, NULL), KVD_SESSION_NEW);
    }
    /* one more client: the least recent one goes, as before windows */
    cr_assert_eq(kvd_sessions_record(s, N + 1, 1, "ok", 2), KV_OK);
    cr_assert_eq(kvd_sessions_count(s), N);
    cr_assert_eq(check(s, 1, (uint64_t)KVD_SESSIONS_WINDOW * (N + 1), NULL), KVD_SESSION_NEW);
    kvd_sessions_free(s);
}

Test(sessions, an_older_kvd_s_section_of_one_id_per_client_is_read)
{
    /* "KVDSESS1", 2 clients: (9, seq 4, "four"), (8, seq 7, not kept) */
    unsigned char b[8 + 4 + 20 + 4 + 20];
    unsigned char *q = b;
    memcpy(q, "KVDSESS1", 8);
    q += 8;
    *q++ = 2, *q++ = 0, *q++ = 0, *q++ = 0;
    const struct { uint64_t c, seq; uint32_t len; const char *r; } in[2] = {
        {9, 4, 4, "four"}, {8, 7, 0xffffffffu, NULL}};
    for (int i = 0; i < 2; i++) {
        for (int k = 0; k < 8; k++)
            *q++ = (unsigned char)(in[i].c >> (8 * k));
        for (int k = 0; k < 8; k++)
            *q++ = (unsigned char)(in[i].seq >> (8 * k));
        for (int k = 0; k < 4; k++)
            *q++ = (unsigned char)(in[i].len >> (8 * k));
        if (in[i].r) {
            memcpy(q, in[i].r, 4);
            q += 4;
        }
    }
    cr_assert_eq((size_t)(q - b), sizeof b);
    kvd_sessions *s = kvd_sessions_new(4);
    size_t used;
    cr_assert_eq(kvd_sessions_load(s, b, sizeof b, &used), KV_OK);
    cr_assert_eq(used, sizeof b);
    cr_assert_eq(kvd_sessions_count(s), 2);
    cr_assert_eq(check(s, 9, 4, "four"), KVD_SESSION_DUPLICATE);
    cr_assert_eq(check(s, 9, 3, NULL), KVD_SESSION_STALE);
    const void *o = "x";
    size_t n;
    cr_assert_eq(kvd_sessions_check(s, 8, 7, &o, &n), KVD_SESSION_DUPLICATE);
    cr_assert_null(o);
    kvd_sessions_free(s);
}
