/*
 * test_watch.c - watches through kvd's own protocol (version 6) and
 * libkvclient: live changes in order, catching up from a past revision,
 * a multi-key change's events with one revision, lost events (a watcher
 * that fell behind while history dropped what it missed: COMPACTED with
 * the revision to resume from), a client that does not read (kvd stops
 * polling it: its memory stays bounded, and nothing is lost once it
 * reads), CANCEL and the event frames on the wire (pipelined requests
 * answered between them), closing a watching connection, and the errors.
 *
 * kvd runs with --history on (its default): revisions are 1, 2, 3, ...
 * in a fresh server.
 */
#include <criterion/criterion.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "harness.h"

TestSuite(watch, .init = harness_setup, .fini = harness_teardown, .timeout = 240);

static uint64_t set(kv_client *c, const char *k, const char *v)
{
    uint64_t rev = 0;
    cr_assert_eq(kv_client_set(c, k, strlen(k), v, strlen(v), &rev), KV_OK, "set %s", k);
    return rev;
}

static kv_client_watch *watch(kv_client *c, const char *k, int prefix, uint64_t from)
{
    kv_client_watch *w = NULL;
    int rc = kv_client_watch_open(c, k, strlen(k), prefix, from, 0, &w);
    cr_assert_eq(rc, KV_OK, "watch %s: %s", k, kv_client_last_error(c));
    return w;
}

/* Collects at least want events (bounded by the client's io timeout per
 * wait); returns them, *n how many. */
static kv_event *collect(kv_client_watch *w, size_t want, size_t *n)
{
    kv_event *all = NULL;
    size_t have = 0;
    while (have < want) {
        kv_event *ev = NULL;
        size_t m = 0;
        int rc = kv_client_watch_next(w, &ev, &m, TEST_IO_TIMEOUT_MS);
        cr_assert_eq(rc, KV_OK, "watch_next after %zu events: %d", have, rc);
        cr_assert_gt(m, 0, "no event within %d ms (have %zu of %zu)", TEST_IO_TIMEOUT_MS, have,
                     want);
        all = realloc(all, (have + m) * sizeof *all);
        cr_assert_not_null(all);
        memcpy(all + have, ev, m * sizeof *ev);
        free(ev); /* the keys and values now belong to all */
        have += m;
    }
    *n = have;
    return all;
}

static int is(const void *p, size_t n, const char *s)
{
    return n == strlen(s) && memcmp(p, s, n) == 0;
}

/* Polls a server metric until it equals want (bounded). */
static void await_metric(const char *name, uint64_t want)
{
    for (int i = 0; i < 2000; i++) {
        if (metric_u(NULL, name) == want)
            return;
        usleep(10000);
    }
    cr_assert_fail("metric %s never reached %llu (is %llu)", name, (unsigned long long)want,
                   (unsigned long long)metric_u(NULL, name));
}

Test(watch, live_changes_in_order)
{
    kvd_start(NULL);
    kv_client *wc = test_client(NULL), *c = test_client(NULL);
    kv_client_watch *w = watch(wc, "k/", 1, 0);
    await_metric("watchers", 1);
    char k[32], v[32];
    for (int i = 0; i < 50; i++) {
        snprintf(k, sizeof k, "k/%d", i % 7);
        snprintf(v, sizeof v, "v%d", i);
        cr_assert_eq(set(c, k, v), (uint64_t)(2 * i + 1));
        set(c, "other", v); /* not watched */
    }
    uint64_t drev = 0;
    cr_assert_eq(kv_client_del(c, "k/3", 3, &drev), KV_OK);
    size_t n;
    kv_event *ev = collect(w, 51, &n);
    cr_assert_eq(n, 51, "no more than the watched changes");
    for (int i = 0; i < 50; i++) {
        snprintf(k, sizeof k, "k/%d", i % 7);
        snprintf(v, sizeof v, "v%d", i);
        cr_expect_eq(ev[i].revision, (uint64_t)(2 * i + 1));
        cr_expect(is(ev[i].key, ev[i].klen, k), "event %d's key", i);
        cr_expect(!ev[i].deleted && is(ev[i].value, ev[i].vlen, v), "event %d's value", i);
        cr_expect_eq(ev[i].version, (uint64_t)(i / 7 + 1), "event %d's version", i);
        cr_expect_eq(ev[i].create_revision, (uint64_t)(2 * (i % 7) + 1));
    }
    cr_expect(ev[50].deleted && is(ev[50].key, ev[50].klen, "k/3"));
    cr_expect_eq(ev[50].revision, drev);
    kv_client_events_free(ev, n);
    cr_expect_eq(kv_client_watch_revision(w), drev + 1);
    cr_expect_eq(metric_u(NULL, "watch_events"), 51);
    kv_client_watch_close(w);
    await_metric("watchers", 0);
    /* the client is usable again */
    kv_value val = {0};
    cr_expect_eq(kv_client_get(wc, "k/0", 3, &val), KV_OK);
    kv_client_value_free(&val);
    kv_client_close(wc);
    kv_client_close(c);
    kvd_stop();
}

Test(watch, catches_up_from_a_past_revision_then_live)
{
    kvd_start(NULL);
    kv_client *wc = test_client(NULL), *c = test_client(NULL);
    set(c, "a", "1");                /* 1 */
    set(c, "a", "2");                /* 2 */
    set(c, "b", "x");                /* 3 */
    uint64_t d = 0;
    cr_assert_eq(kv_client_del(c, "a", 1, &d), KV_OK); /* 4 */
    set(c, "a", "3");                /* 5 */
    kv_client_watch *w = watch(wc, "a", 0, 2);
    cr_expect_eq(kv_client_watch_revision(w), 2);
    size_t n;
    kv_event *ev = collect(w, 3, &n);
    cr_assert_eq(n, 3);
    cr_expect(ev[0].revision == 2 && is(ev[0].value, ev[0].vlen, "2") && ev[0].version == 2);
    cr_expect(ev[1].revision == 4 && ev[1].deleted);
    cr_expect(ev[2].revision == 5 && is(ev[2].value, ev[2].vlen, "3") && ev[2].version == 1 &&
              ev[2].create_revision == 5, "created again after the delete");
    kv_client_events_free(ev, n);
    set(c, "a", "4"); /* 6: live */
    ev = collect(w, 1, &n);
    cr_expect(n == 1 && ev[0].revision == 6 && is(ev[0].value, ev[0].vlen, "4"));
    kv_client_events_free(ev, n);
    kv_client_watch_close(w);
    kv_client_close(wc);
    kv_client_close(c);
    kvd_stop();
}

Test(watch, multi_key_change_has_one_revision)
{
    kvd_start(NULL);
    kv_client *wc = test_client(NULL), *c = test_client(NULL);
    kv_client_watch *w = watch(wc, "m:", 1, 0);
    kv_pair p[4] = {{"m:1", 3, "a", 1}, {"m:2", 3, "b", 1}, {"x", 1, "c", 1},
                    {"m:3", 3, "d", 1}};
    uint64_t rev = 0;
    cr_assert_eq(kv_client_mset(c, p, 4, &rev), KV_OK);
    kv_key keys[2] = {{"m:1", 3}, {"m:3", 3}};
    uint64_t drev = 0;
    size_t deleted = 0;
    cr_assert_eq(kv_client_mdel(c, keys, 2, &deleted, &drev), KV_OK);
    size_t n;
    kv_event *ev = collect(w, 5, &n);
    cr_assert_eq(n, 5);
    for (int i = 0; i < 3; i++)
        cr_expect(ev[i].revision == rev && !ev[i].deleted, "mset's event %d has its revision", i);
    cr_expect(is(ev[0].key, ev[0].klen, "m:1") || is(ev[1].key, ev[1].klen, "m:1") ||
              is(ev[2].key, ev[2].klen, "m:1"));
    for (int i = 3; i < 5; i++)
        cr_expect(ev[i].revision == drev && ev[i].deleted, "delete's event %d", i);
    kv_client_events_free(ev, n);
    kv_client_watch_close(w);
    kv_client_close(wc);
    kv_client_close(c);
    kvd_stop();
}

/* 4 KiB values: a few hundred of them fill a small output buffer. */
#define BIG 4096

static void big_value(char *v, int i)
{
    memset(v, 'a' + i % 26, BIG);
    snprintf(v, 16, "%d:", i);
}

Test(watch, client_that_does_not_read_is_not_polled_then_gets_everything)
{
    kvd_start("--max-output-buffer", "256k", NULL);
    kv_client *wc = test_client(NULL), *c = test_client(NULL);
    kv_client_watch *w = watch(wc, "p/", 1, 0);
    static char v[BIG];
    char k[32];
    enum { KEYS = 10000, BATCH = 100 }; /* 40 MB of events: more than sockets hold */
    static char keys[BATCH][32];
    kv_pair p[BATCH];
    for (int i = 0; i < KEYS; i += BATCH) {
        big_value(v, i);
        for (int j = 0; j < BATCH; j++) {
            snprintf(keys[j], sizeof keys[j], "p/%05d", i + j);
            p[j] = (kv_pair){keys[j], strlen(keys[j]), v, BIG};
        }
        cr_assert_eq(kv_client_mset(c, p, BATCH, NULL), KV_OK);
    }
    /* kvd stopped polling the watcher: its output is backed up ... */
    await_metric("watchers_backlogged", 1);
    /* ... and what kvd holds for the client is bounded: the soft mark
     * (128 KiB) plus one poll's events (100 of 4 KiB), not 40 MB */
    uint64_t held = metric_u(NULL, "client_memory");
    cr_expect_lt(held, (uint64_t)2 << 20, "client buffers: %llu bytes", (unsigned long long)held);
    cr_expect_lt(metric_u(NULL, "watch_events"), KEYS);
    /* reading, the client gets every event, in order: none skipped */
    size_t n;
    kv_event *ev = collect(w, KEYS, &n);
    cr_assert_eq(n, KEYS);
    for (int i = 0; i < KEYS; i++) {
        snprintf(k, sizeof k, "p/%05d", i);
        cr_assert(is(ev[i].key, ev[i].klen, k), "event %d is %s", i, k);
        cr_assert_eq(ev[i].revision, (uint64_t)(i / BATCH + 1));
        cr_assert_eq(ev[i].vlen, BIG);
    }
    kv_client_events_free(ev, n);
    cr_expect_eq(metric_u(NULL, "watch_lost"), 0);
    kv_client_watch_close(w);
    kv_client_close(wc);
    kv_client_close(c);
    kvd_stop();
}

Test(watch, fallen_behind_watcher_is_told_where_to_resume)
{
    kvd_start("--history-versions", "2", "--max-output-buffer", "256k", NULL);
    kv_client *wc = test_client(NULL), *c = test_client(NULL);
    kv_client_watch *w = watch(wc, "k/", 1, 0);
    /* the watcher falls behind: its client does not read ... */
    static char v[BIG], keys[100][32];
    kv_pair p[100];
    for (int i = 0; i < 100; i++) {
        big_value(v, i);
        for (int j = 0; j < 100; j++) {
            snprintf(keys[j], sizeof keys[j], "k/%05d", i * 100 + j);
            p[j] = (kv_pair){keys[j], strlen(keys[j]), v, BIG};
        }
        cr_assert_eq(kv_client_mset(c, p, 100, NULL), KV_OK); /* revisions 1..100 */
    }
    await_metric("watchers_backlogged", 1);
    /* ... while history drops what it has not seen: k/09999 as revision
     * 100 made it (2 earlier values are kept per key) */
    uint64_t last = 0;
    for (int i = 0; i < 10; i++)
        cr_assert_eq(kv_client_set(c, "k/09999", 7, "small", 5, &last), KV_OK);
    cr_assert_eq(last, 110);
    /* reading: events without a gap, then the end naming where to resume */
    uint64_t next = 1, resume = 0;
    for (;;) {
        kv_event *ev = NULL;
        size_t n = 0;
        int rc = kv_client_watch_next(w, &ev, &n, TEST_IO_TIMEOUT_MS);
        if (rc == KV_COMPACTED) {
            resume = kv_client_watch_revision(w);
            break;
        }
        cr_assert_eq(rc, KV_OK, "%s", kv_client_last_error(wc));
        cr_assert_gt(n, 0, "neither events nor the end within %d ms", TEST_IO_TIMEOUT_MS);
        for (size_t i = 0; i < n; i++) {
            cr_assert(ev[i].revision == next || ev[i].revision == next - 1,
                      "revision %llu after %llu: no gap", (unsigned long long)ev[i].revision,
                      (unsigned long long)next - 1);
            next = ev[i].revision + 1;
        }
        kv_client_events_free(ev, n);
    }
    cr_expect_leq(next, 100, "revision 100's events were not delivered");
    cr_expect_gt(resume, 100, "resume after what was lost: %llu", (unsigned long long)resume);
    cr_expect_leq(resume, last);
    cr_expect(strstr(kv_client_last_error(wc), "resume from revision"), "%s",
              kv_client_last_error(wc));
    cr_expect_eq(metric_u(NULL, "watch_lost"), 1);
    kv_client_watch_close(w);
    await_metric("watchers", 0);
    /* a new watch from the resume revision gets everything from there */
    w = watch(wc, "k/", 1, resume);
    size_t n;
    kv_event *ev = collect(w, last - resume + 1, &n);
    cr_assert_eq(n, last - resume + 1);
    for (size_t i = 0; i < n; i++)
        cr_expect(ev[i].revision == resume + i && is(ev[i].value, ev[i].vlen, "small"));
    kv_client_events_free(ev, n);
    kv_client_watch_close(w);
    kv_client_close(wc);
    kv_client_close(c);
    kvd_stop();
}

/* ---- the wire: event frames, pipelining, CANCEL -------------------------- */

static void send_req(int fd, kv_proto_request *q)
{
    kv_proto_buf b = {0};
    enc(&b, q);
    cr_assert_eq(raw_send(fd, b.data, b.len), 0);
    kv_proto_buf_free(&b);
}

static int hello(int fd, uint64_t version)
{
    kv_proto_request q = {.op = KV_PROTO_HELLO, .id = 1, .min_version = 1,
                          .max_version = version};
    send_req(fd, &q);
    uint64_t id;
    return raw_recv_status(fd, KV_PROTO_HELLO, &id);
}

/* The next frame: an event frame into *f (1) or a response to op into *r
 * (0). Bodies are kept in *body (free it). */
static int next_frame(int fd, int op, uint8_t **body, kv_proto_event_frame_t *f,
                      kv_proto_response *r)
{
    long len = raw_recv_frame(fd, body);
    cr_assert_gt(len, 0, "a frame");
    if (kv_proto_is_event_frame(*body, (size_t)len)) {
        cr_assert_eq(kv_proto_event_frame_decode(*body, (size_t)len, NULL, f), KV_OK);
        return 1;
    }
    cr_assert_eq(kv_proto_response_decode(*body, (size_t)len, op, NULL, r), KV_OK);
    return 0;
}

Test(watch, event_frames_cancel_and_pipelining)
{
    kvd_start(NULL);
    kv_client *c = test_client(NULL);
    set(c, "w", "old"); /* 1 */
    int fd = raw_connect(g_kvd.port, TEST_IO_TIMEOUT_MS);
    cr_assert_eq(hello(fd, KV_PROTO_WATCH_VERSION), KV_OK);
    kv_proto_request q = {.op = KV_PROTO_WATCH, .id = 7, .key = {"w", 1}, .revision = 1};
    send_req(fd, &q);
    uint8_t *body;
    kv_proto_event_frame_t f;
    kv_proto_response r;
    cr_assert_eq(next_frame(fd, KV_PROTO_WATCH, &body, &f, &r), 0, "the WATCH's response first");
    cr_expect(r.id == 7 && r.status == KV_OK && r.version == 1);
    kv_proto_response_free(&r);
    free(body);
    cr_assert_eq(next_frame(fd, KV_PROTO_WATCH, &body, &f, &r), 1, "then an event frame");
    cr_expect(f.id == 7 && f.status == KV_OK && !f.end && f.nevents == 1);
    cr_expect(f.events[0].revision == 1 && is(f.events[0].key.data, f.events[0].key.len, "w") &&
              is(f.events[0].value, f.events[0].vlen, "old"));
    cr_expect_eq(f.next_revision, 2);
    kv_proto_event_frame_free(&f);
    free(body);

    /* other requests are answered on the watching connection */
    kv_proto_request g = {.op = KV_PROTO_GET, .id = 8, .key = {"w", 1}};
    send_req(fd, &g);
    cr_assert_eq(next_frame(fd, KV_PROTO_GET, &body, &f, &r), 0);
    cr_expect(r.id == 8 && r.status == KV_OK && is(r.value.data, r.value.len, "old"));
    kv_proto_response_free(&r);
    free(body);
    /* a second watch on the same id is refused; another id is fine */
    send_req(fd, &q);
    cr_assert_eq(next_frame(fd, KV_PROTO_WATCH, &body, &f, &r), 0);
    cr_expect(r.id == 7 && r.status == KV_INVALID_ARGUMENT);
    kv_proto_response_free(&r);
    free(body);

    set(c, "w", "new"); /* 2 */
    cr_assert_eq(next_frame(fd, KV_PROTO_WATCH, &body, &f, &r), 1);
    cr_expect(f.id == 7 && f.nevents == 1 && f.events[0].revision == 2 &&
              is(f.events[0].value, f.events[0].vlen, "new") && f.events[0].version == 2);
    kv_proto_event_frame_free(&f);
    free(body);

    /* CANCEL: the end frame (status 0, events nil), then CANCEL's answer */
    kv_proto_request x = {.op = KV_PROTO_CANCEL, .id = 9, .watch_id = 7};
    send_req(fd, &x);
    cr_assert_eq(next_frame(fd, KV_PROTO_CANCEL, &body, &f, &r), 1);
    cr_expect(f.id == 7 && f.end && f.status == KV_OK && f.next_revision == 3);
    kv_proto_event_frame_free(&f);
    free(body);
    cr_assert_eq(next_frame(fd, KV_PROTO_CANCEL, &body, &f, &r), 0);
    cr_expect(r.id == 9 && r.status == KV_OK);
    kv_proto_response_free(&r);
    free(body);
    /* no more events after it; CANCEL again: NOT_FOUND */
    set(c, "w", "newer");
    send_req(fd, &x);
    cr_assert_eq(next_frame(fd, KV_PROTO_CANCEL, &body, &f, &r), 0, "no event frame any more");
    cr_expect(r.id == 9 && r.status == KV_NOT_FOUND);
    kv_proto_response_free(&r);
    free(body);
    await_metric("watchers", 0);
    cr_expect_eq(metric_u("requests_by_op", "watch_cancel"), 2);

    /* closing a watching connection ends its watch */
    send_req(fd, &q);
    cr_assert_eq(next_frame(fd, KV_PROTO_WATCH, &body, &f, &r), 0);
    cr_expect(r.status == KV_OK);
    kv_proto_response_free(&r);
    free(body);
    await_metric("watchers", 1);
    close(fd);
    await_metric("watchers", 0);
    kv_client_close(c);
    kvd_stop();
}

Test(watch, errors)
{
    kvd_start(NULL);
    kv_client *c = test_client(NULL);
    set(c, "e", "1");
    set(c, "e", "2");
    set(c, "e", "3");
    /* before HELLO 6: refused as a version-5 server would */
    int fd = raw_connect(g_kvd.port, TEST_IO_TIMEOUT_MS);
    cr_assert_eq(hello(fd, 5), KV_OK);
    kv_proto_request q = {.op = KV_PROTO_WATCH, .id = 3, .key = {"e", 1}};
    send_req(fd, &q);
    uint64_t id;
    cr_expect_eq(raw_recv_status(fd, KV_PROTO_WATCH, &id), KV_UNSUPPORTED);
    /* an empty key needs the prefix flag */
    cr_assert_eq(hello(fd, KV_PROTO_WATCH_VERSION), KV_OK);
    q.key.len = 0;
    send_req(fd, &q);
    cr_expect_eq(raw_recv_status(fd, KV_PROTO_WATCH, &id), KV_KEY_EMPTY);
    close(fd);

    /* a compacted starting revision names the oldest one kept */
    uint64_t crev = 0;
    cr_assert_eq(kv_client_compact(c, 3, &crev), KV_OK);
    kv_client_watch *w = NULL;
    cr_expect_eq(kv_client_watch_open(c, "e", 1, 0, 1, 0, &w), KV_COMPACTED);
    cr_expect(strstr(kv_client_last_error(c), "oldest is 3"), "%s", kv_client_last_error(c));
    /* the client owns its watch's connection */
    w = watch(c, "e", 0, 3);
    kv_value v = {0};
    cr_expect_eq(kv_client_get(c, "e", 1, &v), KV_INVALID_ARGUMENT);
    cr_expect_eq(kv_client_last_error_local(c), 1);
    kv_client_watch_close(w);
    cr_expect_eq(kv_client_get(c, "e", 1, &v), KV_OK);
    kv_client_value_free(&v);
    kv_client_close(c);
    kvd_stop();

    /* without history there is nothing to watch */
    kvd_start("--history", "off", NULL);
    c = test_client(NULL);
    cr_expect_eq(kv_client_watch_open(c, "e", 1, 0, 0, 0, &w), KV_UNSUPPORTED);
    cr_expect(strstr(kv_client_last_error(c), "history"), "%s", kv_client_last_error(c));
    kv_client_close(c);
    kvd_stop();
}
