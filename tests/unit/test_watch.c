/*
 * test_watch.c - watchers (kv.h, "Watch"): live changes, catching up from
 * history, falling behind the feed, lost events and waiting.
 */
#include <pthread.h>
#include <unistd.h>

#include "kvtest.h"

static kv_store *open_hist(uint32_t versions)
{
    kv_config c;
    kv_config_init(&c, sizeof c);
    c.history = 1;
    c.history_versions = versions;
    kv_store *s = NULL;
    cr_assert_eq(kv_open_config(&c, &s), KV_OK);
    return s;
}

/* Takes exactly want events (waiting up to 5 s each call). */
static kv_event *take(kv_watch *w, size_t want)
{
    kv_event *all = calloc(want ? want : 1, sizeof *all);
    size_t got = 0;
    while (got < want) {
        kv_event *ev;
        size_t n;
        int rc = kv_watch_next(w, &ev, &n, want - got, 5000);
        cr_assert_eq(rc, KV_OK, "kv_watch_next: %s", kv_status_name(rc));
        cr_assert_gt(n, 0, "no event within 5 s (%zu of %zu)", got, want);
        cr_assert_leq(got + n, want, "more events than changes");
        memcpy(all + got, ev, n * sizeof *ev);
        free(ev);
        got += n;
    }
    return all;
}

static void expect_event(const kv_event *e, uint64_t rev, const char *key, const char *val)
{
    cr_assert_eq(e->revision, rev, "revision %llu, not %llu", (unsigned long long)e->revision,
                 (unsigned long long)rev);
    cr_assert_eq(e->klen, strlen(key));
    cr_assert(memcmp(e->key, key, e->klen) == 0);
    if (!val) {
        cr_assert_eq(e->deleted, 1);
        cr_assert_null(e->value);
    } else {
        cr_assert_eq(e->deleted, 0);
        cr_assert_eq(e->vlen, strlen(val));
        cr_assert(memcmp(e->value, val, e->vlen) == 0);
    }
}

static void no_more(kv_watch *w)
{
    kv_event *ev;
    size_t n;
    cr_assert_eq(kv_watch_next(w, &ev, &n, 10, 0), KV_OK);
    cr_assert_eq(n, 0, "an event nobody made");
    kv_events_free(ev, n);
}

Test(watch, needs_history)
{
    kv_store *s = kvt_open(NULL);
    kv_watch *w;
    cr_assert_eq(kv_watch_open(s, "a", 1, 0, 0, &w), KV_UNSUPPORTED);
    kv_close(s);
}

Test(watch, follows_new_changes_of_a_key_and_a_prefix)
{
    kv_store *s = open_hist(0);
    kvt_set(s, "a/old", "x");
    kv_watch *wk, *wp;
    cr_assert_eq(kv_watch_open(s, "a/1", 3, 0, 0, &wk), KV_OK);
    cr_assert_eq(kv_watch_open(s, "a/", 2, 1, 0, &wp), KV_OK);
    no_more(wp);
    uint64_t r1 = kvt_set(s, "a/1", "one");
    kvt_set(s, "b/1", "elsewhere");
    kv_pair p[] = {{"a/1", 3, "m1", 2}, {"a/2", 3, "m2", 2}};
    uint64_t r3;
    cr_assert_eq(kv_mset(s, p, 2, &r3), KV_OK);
    uint64_t r4;
    cr_assert_eq(kv_delete(s, "a/2", 3, &r4), KV_OK);

    kv_event *e = take(wk, 2);
    expect_event(&e[0], r1, "a/1", "one");
    expect_event(&e[1], r3, "a/1", "m1");
    cr_assert_eq(e[1].version, 2);
    kv_events_free(e, 2);
    no_more(wk);

    e = take(wp, 4);
    expect_event(&e[0], r1, "a/1", "one");
    expect_event(&e[1], r3, "a/1", "m1");
    expect_event(&e[2], r3, "a/2", "m2");
    expect_event(&e[3], r4, "a/2", NULL);
    kv_events_free(e, 4);
    no_more(wp);
    cr_assert_eq(kv_watch_revision(wp), r4 + 1);
    kv_watch_close(wk);
    kv_watch_close(wp);
    kv_close(s);
}

Test(watch, a_multi_key_change_is_never_split)
{
    kv_store *s = open_hist(0);
    kv_watch *w;
    cr_assert_eq(kv_watch_open(s, "", 0, 1, 0, &w), KV_OK);
    kv_pair p[] = {{"x", 1, "1", 1}, {"y", 1, "1", 1}, {"z", 1, "1", 1}};
    cr_assert_eq(kv_mset(s, p, 3, NULL), KV_OK);
    kvt_set(s, "x", "2");
    kv_event *ev;
    size_t n;
    cr_assert_eq(kv_watch_next(w, &ev, &n, 1, 5000), KV_OK);
    cr_assert_eq(n, 3, "max 1, but the change has 3 keys");
    kv_events_free(ev, n);
    cr_assert_eq(kv_watch_next(w, &ev, &n, 1, 5000), KV_OK);
    cr_assert_eq(n, 1);
    kv_events_free(ev, n);
    kv_watch_close(w);
    kv_close(s);
}

Test(watch, catches_up_from_history_then_goes_on_live)
{
    kv_store *s = open_hist(0);
    uint64_t r1 = kvt_set(s, "k", "1");
    uint64_t r2 = kvt_set(s, "k", "2");
    uint64_t r3;
    cr_assert_eq(kv_delete(s, "k", 1, &r3), KV_OK);
    kv_watch *w;
    cr_assert_eq(kv_watch_open(s, "k", 1, 0, r2, &w), KV_OK);
    uint64_t r4 = kvt_set(s, "k", "4");
    kv_event *e = take(w, 3);
    expect_event(&e[0], r2, "k", "2");
    expect_event(&e[1], r3, "k", NULL);
    expect_event(&e[2], r4, "k", "4");
    cr_assert_eq(e[2].create_revision, r4);
    kv_events_free(e, 3);
    (void)r1;
    kv_watch_close(w);
    kv_close(s);
}

Test(watch, a_watcher_far_behind_the_feed_reads_history_and_loses_nothing)
{
    kv_store *s = open_hist(0);
    kv_watch *w;
    cr_assert_eq(kv_watch_open(s, "hot", 3, 0, 0, &w), KV_OK);
    const int N = 20000; /* more than the feed's 16384 slots */
    char v[16];
    for (int i = 0; i < N; i++) {
        snprintf(v, sizeof v, "%d", i);
        kvt_set(s, "hot", v);
        if (i % 3 == 0)
            kvt_set(s, "cold", v);
    }
    kv_event *e = take(w, (size_t)N);
    for (int i = 0; i < N; i++) {
        snprintf(v, sizeof v, "%d", i);
        cr_assert_eq(e[i].vlen, strlen(v));
        cr_assert(memcmp(e[i].value, v, e[i].vlen) == 0, "event %d", i);
        if (i)
            cr_assert_gt(e[i].revision, e[i - 1].revision);
    }
    kv_events_free(e, (size_t)N);
    no_more(w);
    kv_watch_close(w);
    kv_close(s);
}

Test(watch, events_history_no_longer_has_are_reported_with_where_to_resume)
{
    kv_store *s = open_hist(10);
    kv_watch *w;
    cr_assert_eq(kv_watch_open(s, "k", 1, 0, 0, &w), KV_OK);
    char v[16];
    for (int i = 0; i < 20000; i++) {
        snprintf(v, sizeof v, "%d", i);
        kvt_set(s, "k", v);
    }
    kv_event *ev;
    size_t n;
    int rc;
    size_t got = 0;
    while ((rc = kv_watch_next(w, &ev, &n, 100, 0)) == KV_OK && n) {
        got += n;
        kv_events_free(ev, n);
    }
    cr_assert_eq(rc, KV_COMPACTED, "the watcher was told: %s", kv_status_name(rc));
    uint64_t resume = kv_watch_revision(w);
    cr_assert_gt(resume, got, "resume after what was delivered");
    cr_assert_eq(kv_watch_next(w, &ev, &n, 100, 0), KV_COMPACTED, "and stays finished");
    kv_watch_close(w);

    cr_assert_eq(kv_watch_open(s, "k", 1, 0, resume, &w), KV_OK);
    kv_event *e = take(w, 20000 - (size_t)(resume - 1));
    cr_assert_eq(e[0].revision, resume);
    kv_events_free(e, 20000 - (size_t)(resume - 1));
    kv_watch_close(w);
    kv_close(s);
}

Test(watch, from_a_compacted_revision_is_refused)
{
    kv_store *s = open_hist(0);
    kvt_set(s, "k", "1");
    kvt_set(s, "k", "2");
    uint64_t r3 = kvt_set(s, "k", "3");
    cr_assert_eq(kv_compact(s, r3), KV_OK);
    kv_watch *w = NULL;
    cr_assert_eq(kv_watch_open(s, "k", 1, 0, 1, &w), KV_COMPACTED);
    cr_assert_null(w);
    cr_assert_eq(kv_watch_open(s, "k", 1, 0, r3, &w), KV_OK);
    kv_event *e = take(w, 1);
    expect_event(&e[0], r3, "k", "3");
    kv_events_free(e, 1);
    kv_watch_close(w);
    kv_close(s);
}

Test(watch, a_future_revision_waits_for_it)
{
    kv_store *s = open_hist(0);
    kv_watch *w;
    cr_assert_eq(kv_watch_open(s, "k", 1, 0, 3, &w), KV_OK);
    kvt_set(s, "k", "1");
    kvt_set(s, "k", "2");
    no_more(w);
    uint64_t r3 = kvt_set(s, "k", "3");
    kv_event *e = take(w, 1);
    expect_event(&e[0], r3, "k", "3");
    kv_events_free(e, 1);
    kv_watch_close(w);
    kv_close(s);
}

Test(watch, rejects_bad_arguments)
{
    kv_store *s = open_hist(0);
    kv_watch *w;
    cr_assert_eq(kv_watch_open(s, "", 0, 0, 0, &w), KV_KEY_EMPTY);
    cr_assert_eq(kv_watch_open(s, "k", 1, 2, 0, &w), KV_INVALID_ARGUMENT);
    cr_assert_eq(kv_watch_open(s, "k", 1, 0, 0, &w), KV_OK);
    kv_event *ev;
    size_t n;
    cr_assert_eq(kv_watch_next(w, &ev, &n, 0, 0), KV_INVALID_ARGUMENT);
    cr_assert_eq(kv_watch_next(w, &ev, &n, 1, -2), KV_INVALID_ARGUMENT);
    kv_watch_close(w);
    kv_watch_close(NULL);
    kv_close(s);
}

static void *late_writer(void *arg)
{
    usleep(50 * 1000);
    (void)kv_set(arg, "k", 1, "late", 4, NULL);
    return NULL;
}

Test(watch, a_waiting_watcher_wakes_when_a_change_comes)
{
    kv_store *s = open_hist(0);
    kv_watch *w;
    cr_assert_eq(kv_watch_open(s, "k", 1, 0, 0, &w), KV_OK);
    pthread_t t;
    pthread_create(&t, NULL, late_writer, s);
    kv_event *ev;
    size_t n;
    cr_assert_eq(kv_watch_next(w, &ev, &n, 10, -1), KV_OK);
    cr_assert_eq(n, 1);
    cr_assert(ev[0].vlen == 4 && memcmp(ev[0].value, "late", 4) == 0);
    kv_events_free(ev, n);
    pthread_join(t, NULL);
    kv_watch_close(w);
    kv_close(s);
}
