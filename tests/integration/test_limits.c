/*
 * test_limits.c - auth, max frame size, connection limit, a client that
 * never reads (disconnected, memory bounded, others unaffected), idle
 * timeout.
 */
#include <criterion/criterion.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <time.h>
#include <fcntl.h>
#include <sys/wait.h>
#include <unistd.h>

#include "harness.h"

TestSuite(limits, .init = harness_setup, .fini = harness_teardown, .timeout = 90);

static void sleep_ms(int ms)
{
    struct timespec ts = {ms / 1000, (long)(ms % 1000) * 1000000L};
    nanosleep(&ts, NULL);
}

static int open_client(const char *password, kv_client **out)
{
    kv_client_options o;
    kv_client_options_init(&o);
    o.port = (uint16_t)g_kvd.port;
    o.password = password;
    o.io_timeout_ms = TEST_IO_TIMEOUT_MS;
    return kv_client_open(&o, out);
}

Test(limits, auth)
{
    kvd_start("--password", "s3cret", NULL);
    kv_client *c = NULL;
    /* no password: HELLO and PING work, everything else is refused */
    cr_assert_eq(open_client(NULL, &c), KV_OK);
    cr_assert_eq(kv_client_ping(c), KV_OK);
    kv_value v;
    cr_assert_eq(kv_client_get(c, "k", 1, &v), KV_AUTH_REQUIRED);
    cr_assert_eq(kv_client_set(c, "k", 1, "v", 1, NULL), KV_AUTH_REQUIRED);
    cr_assert_eq(kv_client_auth(c, "wrong"), KV_AUTH_FAILED);
    cr_assert_eq(kv_client_get(c, "k", 1, &v), KV_AUTH_REQUIRED);
    cr_assert_eq(kv_client_auth(c, "s3cret"), KV_OK);
    cr_assert_eq(kv_client_set(c, "k", 1, "v", 1, NULL), KV_OK);
    kv_client_close(c);

    c = NULL;
    cr_assert_eq(open_client("s3cre", &c), KV_AUTH_FAILED);
    kv_client_close(c);
    c = NULL;
    cr_assert_eq(open_client("s3cret", &c), KV_OK);
    cr_assert_eq(kv_client_get(c, "k", 1, &v), KV_OK);
    kv_client_value_free(&v);
    kv_client_close(c);

    /* repeated failures end the connection */
    c = NULL;
    cr_assert_eq(open_client(NULL, &c), KV_OK);
    int rc = KV_OK;
    for (int i = 0; i < 10 && rc != KV_CLOSED; i++)
        rc = kv_client_auth(c, "guess");
    cr_assert_eq(rc, KV_CLOSED, "closed after repeated AUTH failures");
    kv_client_close(c);
    kvd_stop();
}

Test(limits, small_frames_until_authenticated)
{
    kvd_start("--password", "pw", NULL);
    /* 2 MiB announced before AUTH: refused without reading it */
    int fd = raw_connect(g_kvd.port, 5000);
    cr_assert_geq(fd, 0);
    uint8_t hdr[4];
    kv_proto_write_u32(hdr, 2u << 20);
    cr_assert_eq(raw_send(fd, hdr, 4), 0);
    uint64_t id = 1;
    cr_assert_eq(raw_recv_status(fd, KV_PROTO_PING, &id), KV_FRAME_TOO_LARGE);
    cr_assert_eq(id, 0);
    close(fd);
    /* after AUTH the configured limit applies */
    kv_client *c = NULL;
    cr_assert_eq(open_client("pw", &c), KV_OK);
    size_t n = 2u << 20;
    char *v = calloc(1, n);
    cr_assert_eq(kv_client_set(c, "big", 3, v, n, NULL), KV_OK);
    free(v);
    kv_client_close(c);
    kvd_stop();
}

Test(limits, password_from_environment)
{
    setenv("KVD_PASSWORD", "envpw", 1);
    kvd_start(NULL);
    unsetenv("KVD_PASSWORD");
    kv_client *c = NULL;
    cr_assert_eq(open_client("envpw", &c), KV_OK);
    cr_assert_eq(kv_client_set(c, "k", 1, "v", 1, NULL), KV_OK);
    kv_client_close(c);
    c = NULL;
    cr_assert_eq(open_client("other", &c), KV_AUTH_FAILED);
    kv_client_close(c);
    kvd_stop();
}

Test(limits, oversized_frame)
{
    kvd_start("--max-frame-size", "4096", NULL);
    /* raw: a header announcing more than the limit; no body follows */
    int fd = raw_connect(g_kvd.port, 5000);
    cr_assert_geq(fd, 0);
    uint8_t hdr[4];
    kv_proto_write_u32(hdr, 1u << 30);
    cr_assert_eq(raw_send(fd, hdr, 4), 0);
    uint64_t id = 99;
    cr_assert_eq(raw_recv_status(fd, KV_PROTO_PING, &id), KV_FRAME_TOO_LARGE);
    cr_assert_eq(id, 0);
    cr_assert(raw_wait_closed(fd, 5000));
    close(fd);

    /* through the client: a value bigger than the frame limit */
    kv_client *c = NULL;
    cr_assert_eq(open_client(NULL, &c), KV_OK);
    char *big = calloc(1, 8192);
    int rc = kv_client_set(c, "big", 3, big, 8192, NULL);
    cr_assert(rc == KV_FRAME_TOO_LARGE || rc == KV_CLOSED, "got %d", rc);
    free(big);
    kv_client_close(c);

    /* others are unaffected and nothing was stored */
    c = NULL;
    cr_assert_eq(open_client(NULL, &c), KV_OK);
    kv_value v;
    cr_assert_eq(kv_client_get(c, "big", 3, &v), KV_NOT_FOUND);
    kv_client_close(c);
    kvd_stop();
}

Test(limits, max_connections)
{
    kvd_start("--max-connections", "3", NULL);
    kv_client *cs[3];
    for (int i = 0; i < 3; i++)
        cr_assert_eq(open_client(NULL, &cs[i]), KV_OK);
    kv_client *extra = NULL;
    int rc = open_client(NULL, &extra);
    cr_assert(rc == KV_BUSY || rc == KV_CLOSED, "4th connection refused, got %d", rc);
    kv_client_close(extra);
    cr_assert_eq(kv_client_ping(cs[0]), KV_OK);
    kv_client_close(cs[2]);
    /* the slot frees once kvd has seen the close */
    rc = KV_BUSY;
    for (int i = 0; i < 100 && rc != KV_OK; i++) {
        extra = NULL;
        rc = open_client(NULL, &extra);
        if (rc != KV_OK) {
            kv_client_close(extra);
            extra = NULL;
            sleep_ms(20);
        }
    }
    cr_assert_eq(rc, KV_OK);
    /* read the counter over a connection we hold: a fresh one could be
     * refused until kvd has seen the closes below */
    kv_client_metrics m;
    cr_assert_eq(kv_client_metrics_get(extra, &m), KV_OK);
    const kv_client_metric *rejected = kv_client_metrics_find(&m, NULL, "connections_rejected");
    cr_assert_not_null(rejected);
    cr_assert_geq(rejected->u, 1);
    kv_client_metrics_free(&m);
    kv_client_close(extra);
    kv_client_close(cs[0]);
    kv_client_close(cs[1]);
    kvd_stop();
}

Test(limits, reader_that_never_reads)
{
    kvd_start("--max-output-buffer", "1m", "--write-timeout", "1", NULL);
    kv_client *c = NULL;
    cr_assert_eq(open_client(NULL, &c), KV_OK);
    size_t vlen = 64 * 1024;
    char *val = malloc(vlen);
    memset(val, 'x', vlen);
    cr_assert_eq(kv_client_set(c, "big", 3, val, vlen, NULL), KV_OK);
    free(val);
    long rss0 = kvd_rss_kib();

    /* GETs of 64 KiB each, sent until the socket will not take more
     * (kvd paused reading us); never read a byte. */
    int fd = raw_connect(g_kvd.port, 200);
    cr_assert_geq(fd, 0);
    kv_proto_buf b = {0};
    for (int i = 0; i < 1000; i++) {
        kv_proto_request r = {.op = KV_PROTO_GET, .id = (uint64_t)i + 1, .key = {"big", 3}};
        enc(&b, &r);
    }
    size_t sent_reqs = 0;
    for (int round = 0; round < 200; round++) {
        ssize_t n = send(fd, b.data, b.len, MSG_NOSIGNAL);
        if (n < (ssize_t)b.len)
            break;
        sent_reqs += 1000;
    }
    kv_proto_buf_free(&b);
    cr_assert_gt(sent_reqs, 1000, "sent %zu requests", sent_reqs);

    /* kvd keeps serving others meanwhile */
    for (int i = 0; i < 50; i++)
        cr_assert_eq(kv_client_ping(c), KV_OK);
    long rss1 = kvd_rss_kib();
    /* 1000s of 64 KiB answers were asked for; kvd holds ~1 MiB of them */
    cr_assert_lt(rss1 - rss0, 48 * 1024, "kvd grew by %ld KiB", rss1 - rss0);

    /* and disconnects the stuck reader after --write-timeout */
    uint64_t slow = 0;
    for (int i = 0; i < 100 && slow == 0; i++) {
        sleep_ms(100);
        slow = metric_u(NULL, "disconnects_slow");
    }
    cr_assert_eq(slow, 1);
    cr_assert(raw_wait_closed(fd, 10000));
    close(fd);
    cr_assert_eq(kv_client_ping(c), KV_OK);
    kv_client_close(c);
    kvd_stop();
}

Test(limits, idle_timeout)
{
    kvd_start("--idle-timeout", "1", NULL);
    int fd = raw_connect(g_kvd.port, 5000);
    cr_assert_geq(fd, 0);
    cr_assert(raw_wait_closed(fd, 5000), "idle connection closed");
    close(fd);
    cr_assert_geq(metric_u(NULL, "disconnects_idle"), 1);
    kvd_stop();
}

static int count_cb(void *ctx, const void *key, size_t klen, const void *val, size_t vlen,
                    uint64_t version)
{
    (void)key;
    (void)klen;
    (void)val;
    (void)version;
    size_t *acc = ctx;
    acc[0]++;
    acc[1] += vlen;
    return 0;
}

Test(limits, amplifying_results_are_capped)
{
    /* results are capped at max(frame limit, max value + 64 KiB) = 128 KiB */
    kvd_start("--max-value-size", "64k", "--max-frame-size", "128k", NULL);
    kv_client *c = NULL;
    cr_assert_eq(open_client(NULL, &c), KV_OK);
    size_t vlen = 60 * 1024;
    char *val = calloc(1, vlen);
    char k[16];
    for (int i = 0; i < 10; i++) {
        int n = snprintf(k, sizeof k, "big%d", i);
        cr_assert_eq(kv_client_set(c, k, (size_t)n, val, vlen, NULL), KV_OK);
    }
    free(val);
    kv_key same[5] = {{"big0", 4}, {"big0", 4}, {"big0", 4}, {"big0", 4}, {"big0", 4}};
    kv_value out[5];
    cr_assert_eq(kv_client_mget(c, same, 5, out), KV_INVALID_ARGUMENT, "5 x 60 KiB refused");
    cr_assert_eq(kv_client_mget(c, same, 2, out), KV_OK, "2 x 60 KiB fit");
    kv_client_values_free(out, 2);

    kv_op gets[5];
    for (int i = 0; i < 5; i++)
        gets[i] = (kv_op){KV_OP_GET, "big1", 4, NULL, 0, 0};
    kv_txn_result r;
    cr_assert_eq(kv_client_txn(c, NULL, 0, gets, 5, NULL, 0, &r), KV_INVALID_ARGUMENT);

    /* SCAN splits into smaller batches instead, losing nothing */
    size_t acc[2] = {0, 0};
    uint64_t cursor = 0;
    int rounds = 0;
    do {
        size_t before = acc[0];
        cr_assert_eq(kv_client_scan(c, "big", 3, cursor, 100, count_cb, acc, &cursor), KV_OK);
        cr_assert_leq(acc[0] - before, 3, "a batch stays near the cap");
        cr_assert_lt(++rounds, 100);
    } while (cursor != 0);
    cr_assert_eq(acc[0], 10);
    cr_assert_eq(acc[1], 10 * vlen);
    cr_assert_eq(kv_client_ping(c), KV_OK);
    kv_client_close(c);
    kvd_stop();
}

/* A client that starts a frame and then trickles it (one byte at a time)
 * is closed once --frame-timeout has passed since the frame began; a
 * connection that sends nothing stays (that is --idle-timeout's job). */
Test(limits, frame_timeout)
{
    kvd_start("--frame-timeout", "1", NULL);
    int idle = raw_connect(g_kvd.port, 5000);
    cr_assert_geq(idle, 0);
    int fd = raw_connect(g_kvd.port, 5000);
    cr_assert_geq(fd, 0);
    uint8_t hdr[4];
    kv_proto_write_u32(hdr, 100);
    int closed = 0;
    /* 4 header bytes, then body bytes, one every 200 ms: always progress,
     * never a whole frame (100 bytes would take 20 s). */
    for (int i = 0; i < 100 && !closed; i++) {
        uint8_t b = i < 4 ? hdr[i] : 0x90;
        if (send(fd, &b, 1, MSG_NOSIGNAL) != 1)
            break;
        closed = raw_wait_closed(fd, 200);
    }
    if (!closed)
        closed = raw_wait_closed(fd, TEST_IO_TIMEOUT_MS);
    cr_assert(closed, "a frame trickled in for 20 s was not cut off");
    close(fd);
    cr_assert_eq(metric_u(NULL, "disconnects_frame_timeout"), 1);

    /* the silent connection is still served */
    kv_proto_buf b = {0};
    enc(&b, &(kv_proto_request){.op = KV_PROTO_PING, .id = 7});
    cr_assert_eq(raw_send(idle, b.data, b.len), 0);
    uint64_t id = 0;
    cr_assert_eq(raw_recv_status(idle, KV_PROTO_PING, &id), KV_OK);
    cr_assert_eq(id, 7);
    kv_proto_buf_free(&b);
    close(idle);
    kvd_stop();
}

/* HTTP gets the same backpressure: pipelined GETs of a 64 KiB value from
 * a client that never reads pause the connection at the output limit and
 * it is dropped after --write-timeout. */
Test(limits, http_reader_that_never_reads)
{
    kvd_start("--max-output-buffer", "1m", "--write-timeout", "1", NULL);
    kv_client *c = NULL;
    cr_assert_eq(open_client(NULL, &c), KV_OK);
    size_t vlen = 64 * 1024;
    char *val = malloc(vlen);
    memset(val, 'x', vlen);
    cr_assert_eq(kv_client_set(c, "big", 3, val, vlen, NULL), KV_OK);
    free(val);
    long rss0 = kvd_rss_kib();

    int fd = raw_connect(g_kvd.port, 200);
    cr_assert_geq(fd, 0);
    static const char get[] = "GET /v1/keys/big HTTP/1.1\r\nHost: x\r\n\r\n";
    size_t n = sizeof get - 1;
    char *b = malloc(1000 * n);
    for (int i = 0; i < 1000; i++)
        memcpy(b + (size_t)i * n, get, n);
    size_t sent_reqs = 0;
    for (int round = 0; round < 200; round++) {
        ssize_t w = send(fd, b, 1000 * n, MSG_NOSIGNAL);
        if (w < (ssize_t)(1000 * n))
            break;
        sent_reqs += 1000;
    }
    free(b);
    cr_assert_gt(sent_reqs, 1000, "sent %zu requests", sent_reqs);

    for (int i = 0; i < 50; i++)
        cr_assert_eq(kv_client_ping(c), KV_OK);
    long rss1 = kvd_rss_kib();
    cr_assert_lt(rss1 - rss0, 48 * 1024, "kvd grew by %ld KiB", rss1 - rss0);

    uint64_t slow = 0;
    for (int i = 0; i < 100 && slow == 0; i++) {
        sleep_ms(100);
        slow = metric_u(NULL, "disconnects_slow");
    }
    cr_assert_eq(slow, 1);
    cr_assert(raw_wait_closed(fd, 10000));
    close(fd);
    cr_assert_eq(kv_client_ping(c), KV_OK);
    kv_client_close(c);
    kvd_stop();
}

/* An HTTP request trickled in a byte at a time is cut off by
 * --frame-timeout, head or body. */
Test(limits, http_request_trickled_in_is_cut_off)
{
    kvd_start("--frame-timeout", "1", NULL);
    static const char *const slow[] = {
        "GET /v1/keys/k HTTP/1.1\r\nX-Slow: aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa",
        "PUT /v1/keys/k HTTP/1.1\r\nContent-Length: 100\r\n\r\naaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa"
        "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa"};
    for (int k = 0; k < 2; k++) {
        int fd = raw_connect(g_kvd.port, 5000);
        cr_assert_geq(fd, 0);
        int closed = 0;
        for (size_t i = 0; slow[k][i] && !closed; i++) {
            if (send(fd, slow[k] + i, 1, MSG_NOSIGNAL) != 1)
                break;
            closed = raw_wait_closed(fd, 200);
        }
        if (!closed)
            closed = raw_wait_closed(fd, TEST_IO_TIMEOUT_MS);
        cr_assert(closed, "request %d trickled in was not cut off", k);
        close(fd);
    }
    cr_assert_eq(metric_u(NULL, "disconnects_frame_timeout"), 2);
    kvd_stop();
}

/* With only 64 descriptors kvd cannot hold --max-connections 10000: it
 * warns at start and lowers the limit, so connections beyond what the
 * descriptors allow are answered BUSY instead of waiting unaccepted. */
Test(limits, connection_limit_fits_open_file_limit)
{
    setenv("KVD_WRAPPER", "prlimit --nofile=64:64", 1);
    kvd_start(NULL);
    unsetenv("KVD_WRAPPER");
    uint64_t max = metric_u(NULL, "max_connections");
    cr_assert_gt(max, 0);
    cr_assert_lt(max, 64, "effective limit %llu must fit 64 descriptors", (unsigned long long)max);

    enum { N = 100 };
    int fds[N], ok = 0, busy = 0;
    kv_proto_buf b = {0};
    enc(&b, &(kv_proto_request){.op = KV_PROTO_PING, .id = 1});
    for (int i = 0; i < N; i++) {
        fds[i] = raw_connect(g_kvd.port, TEST_IO_TIMEOUT_MS);
        cr_assert_geq(fds[i], 0);
        /* Refused connections may still be lingering (each holds a
         * descriptor for a moment): every connection gets an answer. */
        raw_send(fds[i], b.data, b.len);
        uint64_t id = 99;
        int st = raw_recv_status(fds[i], KV_PROTO_PING, &id);
        if (st == KV_OK && id == 1) {
            ok++;
        } else {
            cr_assert_eq(st, KV_BUSY, "connection %d: status %d, not an answer or BUSY", i, st);
            cr_assert_eq(id, 0);
            busy++;
        }
    }
    kv_proto_buf_free(&b);
    cr_assert_eq(ok, (int)max, "%d served, effective limit %llu", ok, (unsigned long long)max);
    cr_assert_eq(busy, N - (int)max);
    for (int i = 0; i < N; i++)
        close(fds[i]);

    FILE *f = fopen(g_kvd.log, "r");
    cr_assert_not_null(f);
    char line[1024];
    int warned = 0;
    while (fgets(line, sizeof line, f))
        if (strstr(line, "open-file limit") && strstr(line, "max-connections"))
            warned = 1;
    fclose(f);
    cr_assert(warned, "no warning about the open-file limit in kvd's log");
    kvd_stop();
}

/* Memory of deleted values is reusable soon after a mass delete, without
 * waiting for the deleting thread to write again: kvd, limited to 448 MiB
 * of address space, is filled with 1 MiB values until it refuses, every
 * key is deleted (one MDEL), then 1 MiB SETs on new connections must succeed again
 * within the deadline (with no other writes in between). */
Test(limits, memory_of_deleted_values_is_reused)
{
#if defined(__SANITIZE_ADDRESS__) || defined(__SANITIZE_THREAD__)
    /* An address-space limit does not fit a sanitizer's shadow memory: this
     * one runs in the plain build only (the library side is
     * tests/unit/test_reclaim.c, which runs under all of them). */
    return;
#endif
    setenv("KVD_WRAPPER", "prlimit --as=469762048", 1);
    kvd_start("--threads", "1", NULL);
    unsetenv("KVD_WRAPPER");
    size_t vlen = (size_t)1 << 20;
    char *v = malloc(vlen);
    cr_assert_not_null(v);
    memset(v, 'v', vlen);
    kv_client *c = test_client(NULL);
    int n = 0, failures = 0;
    char k[32];
    while (failures < 3 && n < 1000) {
        snprintf(k, sizeof k, "big%d", n);
        int rc = kv_client_set(c, k, strlen(k), v, vlen, NULL);
        if (rc == KV_OK) {
            n++;
            failures = 0;
            continue;
        }
        failures++;
        kv_client_close(c); /* NO_MEMORY, or closed while reading it */
        c = test_client(NULL);
    }
    cr_assert_gt(n, 10, "only %d values fit", n);
    cr_assert_lt(n, 1000, "the address-space limit was not reached");
    /* one MDEL: one write, after which this thread writes nothing more */
    kv_key *keys = calloc((size_t)n, sizeof *keys);
    char (*names)[32] = calloc((size_t)n, sizeof *names);
    cr_assert(keys && names);
    for (int i = 0; i < n; i++) {
        snprintf(names[i], sizeof names[i], "big%d", i);
        keys[i].data = names[i];
        keys[i].len = strlen(names[i]);
    }
    size_t deleted = 0;
    cr_assert_eq(kv_client_mdel(c, keys, (size_t)n, &deleted, NULL), KV_OK);
    cr_assert_eq(deleted, (size_t)n);
    free(keys);
    free(names);
    kv_client_close(c);

    int ok = 0;
    for (int attempt = 0; attempt < 200 && !ok; attempt++) {
        kv_client *d = test_client(NULL);
        ok = kv_client_set(d, "again", 5, v, vlen, NULL) == KV_OK;
        kv_client_close(d);
        if (!ok)
            sleep_ms(100);
    }
    free(v);
    cr_assert(ok, "a 1 MiB SET still fails 20 s after deleting %d MiB of values", n);
    kvd_stop();
}

/* Guessing over fresh connections is throttled per address: every failed
 * AUTH is counted, AUTHs after a failure wait their turn (counted), each
 * still gets its answer, the warning is rate-limited, and the right
 * password still works afterwards. */
Test(limits, auth_guessing_is_throttled_across_connections)
{
    kvd_start("--password", "pw", NULL);
    enum { GUESSES = 6 };
    for (int i = 0; i < GUESSES; i++) {
        kv_client *c = NULL;
        cr_assert_eq(open_client(NULL, &c), KV_OK);
        cr_assert_eq(kv_client_auth(c, "guess"), KV_AUTH_FAILED, "guess %d", i);
        kv_client_close(c);
    }
    kv_client *c = NULL;
    cr_assert_eq(open_client("pw", &c), KV_OK, "the right password after the backoff");
    kv_client_metrics m;
    cr_assert_eq(kv_client_metrics_get(c, &m), KV_OK);
    const kv_client_metric *f = kv_client_metrics_find(&m, NULL, "auth_failures");
    const kv_client_metric *t = kv_client_metrics_find(&m, NULL, "auth_throttled");
    cr_assert(f && t, "auth metrics missing");
    cr_assert_eq(f->u, GUESSES);
    /* An AUTH waits when it comes before its address's backoff is over:
     * 50, 100, 200, 400, 800, 1600 ms after each failure. A slow run (a
     * sanitizer build on a busy machine) may take longer than the first
     * backoffs between two guesses, never than the last ones: at least
     * the last three attempts (the right one included) waited. */
    cr_assert_geq(t->u, 3, "the AUTHs after the later failures waited (%llu did)",
                  (unsigned long long)t->u);
    cr_assert_leq(t->u, GUESSES, "only AUTHs after a failure wait");
    kv_client_metrics_free(&m);
    kv_client_close(c);

    FILE *log = fopen(g_kvd.log, "r");
    cr_assert_not_null(log);
    char line[1024];
    int warns = 0;
    while (fgets(line, sizeof line, log))
        if (strstr(line, "wrong AUTH secret"))
            warns++;
    fclose(log);
    cr_assert(warns >= 1 && warns < GUESSES, "%d warnings for %d failures", warns, GUESSES);
    kvd_stop();
}

Test(limits, empty_password_is_refused)
{
    pid_t pid = fork();
    if (pid == 0) {
        int devnull = open("/dev/null", O_WRONLY);
        dup2(devnull, STDERR_FILENO);
        execl(KVD_PATH, KVD_PATH, "--port", "0", "--password", "", (char *)NULL);
        _exit(127);
    }
    cr_assert_gt(pid, 0);
    int st = 0;
    cr_assert_eq(waitpid(pid, &st, 0), pid);
    cr_assert(WIFEXITED(st) && WEXITSTATUS(st) == 2, "kvd --password '' must exit 2, status %d", st);
}

/* Client buffers have a server-wide bound: clients that each send most of
 * a big frame and stop are together over --max-client-memory, so the
 * biggest are disconnected (counted) until the total fits, and the server
 * keeps serving others. */
Test(limits, client_memory_is_bounded_server_wide)
{
    kvd_start("--max-client-memory", "16m", "--max-frame-size", "4m", NULL);
    cr_assert_eq(metric_u(NULL, "max_client_memory"), 16u << 20);
    enum { N = 8 };
    size_t part = (size_t)3 << 20;
    uint8_t *body = calloc(1, part);
    cr_assert_not_null(body);
    int fds[N];
    for (int i = 0; i < N; i++) {
        fds[i] = raw_connect(g_kvd.port, TEST_IO_TIMEOUT_MS);
        cr_assert_geq(fds[i], 0);
        uint8_t hdr[4];
        kv_proto_write_u32(hdr, (4u << 20) - 16);
        raw_send(fds[i], hdr, 4);
        raw_send(fds[i], body, part); /* may fail once kvd dropped it */
    }
    free(body);
    /* kvd accounts each read as it comes: poll (bounded) until it settled */
    uint64_t evicted = 0, used = 0;
    for (int i = 0; i < 200; i++) {
        evicted = metric_u(NULL, "disconnects_client_memory");
        used = metric_u(NULL, "client_memory");
        if (evicted > 0 && used <= (16u << 20))
            break;
        sleep_ms(100);
    }
    cr_assert_geq(evicted, 1, "8 x 3 MiB of input over a 16 MiB limit dropped nobody");
    cr_assert_leq(used, 16u << 20, "client memory %llu still over the limit",
                  (unsigned long long)used);
    int closed = 0;
    for (int i = 0; i < N; i++)
        closed += raw_wait_closed(fds[i], 100);
    cr_assert_geq(closed, (int)evicted, "%d closed, %llu evicted", closed,
                  (unsigned long long)evicted);
    cr_assert_lt(closed, N, "only the biggest go, not everyone");
    for (int i = 0; i < N; i++)
        close(fds[i]);
    kv_client *c = test_client(NULL);
    cr_assert_eq(kv_client_ping(c), KV_OK);
    kv_client_close(c);
    kvd_stop();
}

/* Every SCAN page fits the response limit, with or without values: with
 * --max-frame-size 1m --max-value-size 512k and 500 KiB values a page
 * holds at most two, stopping BEFORE the entry that would not fit; that
 * entry opens the next page (none is lost or repeated). */
Test(limits, scan_pages_fit_the_frame_limit)
{
    kvd_start("--max-frame-size", "1m", "--max-value-size", "512k", NULL);
    kv_client *c = NULL;
    cr_assert_eq(open_client(NULL, &c), KV_OK);
    size_t vlen = 500 * 1024;
    char *val = malloc(vlen);
    cr_assert_not_null(val);
    memset(val, 'v', vlen);
    char k[16];
    enum { N = 7 };
    for (int i = 0; i < N; i++) {
        int n = snprintf(k, sizeof k, "big%d", i);
        cr_assert_eq(kv_client_set(c, k, (size_t)n, val, vlen, NULL), KV_OK);
    }
    cr_assert_eq(kv_client_set(c, "small", 5, "s", 1, NULL), KV_OK);
    free(val);
    kv_client_close(c);

    int fd = raw_connect(g_kvd.port, TEST_IO_TIMEOUT_MS);
    cr_assert_geq(fd, 0);
    kv_proto_buf b = {0};
    kv_proto_request h = {.op = KV_PROTO_HELLO, .id = 1, .min_version = 1, .max_version = 2};
    enc(&b, &h);
    cr_assert_eq(raw_send(fd, b.data, b.len), 0);
    cr_assert_eq(raw_recv_status(fd, KV_PROTO_HELLO, NULL), KV_OK);
    for (int keys_only = 0; keys_only <= 1; keys_only++) {
        int seen[N] = {0}, small = 0, pages = 0;
        uint64_t cursor = 0;
        do {
            kv_proto_buf_reset(&b);
            kv_proto_request q = {.op = KV_PROTO_SCAN, .id = 2, .cursor = cursor,
                                  .limit = 1000, .keys_only = keys_only};
            enc(&b, &q);
            cr_assert_eq(raw_send(fd, b.data, b.len), 0);
            uint8_t *body = NULL;
            long n = raw_recv_frame(fd, &body);
            cr_assert_gt(n, 0);
            cr_assert_leq(n, 1024 * 1024, "page of %ld bytes exceeds the 1 MiB limit", n);
            kv_proto_response r;
            cr_assert_eq(kv_proto_response_decode_ex(body, (size_t)n, KV_PROTO_SCAN,
                                                     keys_only ? KV_PROTO_RESULT_KEYS_ONLY : 0,
                                                     NULL, &r),
                         KV_OK);
            cr_assert_eq(r.status, KV_OK);
            cr_assert(r.nentries > 0 || r.cursor == 0, "a page before the end has an entry");
            for (size_t i = 0; i < r.nentries; i++) {
                const kv_proto_entry *e = &r.entries[i];
                if (e->key.len == 5 && memcmp(e->key.data, "small", 5) == 0) {
                    small++;
                    continue;
                }
                cr_assert_eq(e->key.len, 4);
                int j = ((const char *)e->key.data)[3] - '0';
                cr_assert(j >= 0 && j < N);
                seen[j]++;
                cr_assert_eq(e->vlen, keys_only ? 0 : vlen);
            }
            cursor = r.cursor;
            kv_proto_response_free(&r);
            free(body);
            cr_assert_lt(++pages, 100);
        } while (cursor != 0);
        for (int j = 0; j < N; j++)
            cr_assert_eq(seen[j], 1, "big%d returned %d times (keys_only %d)", j, seen[j],
                         keys_only);
        cr_assert_eq(small, 1);
        if (keys_only)
            cr_assert_eq(pages, 1, "keys fit one page");
        else
            cr_assert_geq(pages, (N + 1) / 2, "at most two 500 KiB values per 1 MiB page");
    }
    kv_proto_buf_free(&b);
    close(fd);
    kvd_stop();
}

/* Out of memory while reading a frame: kvd answers [id, 20 NO_MEMORY]
 * with the id read from the frame's first bytes, after the answers to
 * the requests before it (a pipelined DEL's answer is not lost), then
 * closes; the request is not run, other connections are unaffected. kvd
 * runs with a 256 MiB address space and the frame declares 512 MiB. */
Test(limits, out_of_memory_reading_a_frame_answers_no_memory)
{
    if (kvd_under_a_tool())
        cr_skip_test("an address-space limit does not work under sanitizers or valgrind");
    kvd_limit_address_space((size_t)256 << 20);
    kvd_start("--max-frame-size", "600m", "--max-value-size", "1g", NULL);
    kv_client *c = NULL;
    cr_assert_eq(open_client(NULL, &c), KV_OK);
    cr_assert_eq(kv_client_set(c, "d", 1, "x", 1, NULL), KV_OK);

    int fd = raw_connect(g_kvd.port, TEST_IO_TIMEOUT_MS);
    cr_assert_geq(fd, 0);
    kv_proto_buf b = {0};
    kv_key dk = {"d", 1};
    kv_proto_request del = {.op = KV_PROTO_DEL, .id = 76, .keys = &dk, .nkeys = 1};
    enc(&b, &del);
    /* SET "big" of 512 MiB: [5, 77, "big", bin32 ...], only its start sent */
    size_t vlen = (size_t)512 << 20;
    uint8_t head[] = {0, 0, 0, 0, 0x94, 0x05, 0x4d, 0xa3, 'b', 'i', 'g', 0xc6,
                      (uint8_t)(vlen >> 24), (uint8_t)(vlen >> 16), (uint8_t)(vlen >> 8),
                      (uint8_t)vlen};
    kv_proto_write_u32(head, (uint32_t)(sizeof head - 4 + vlen));
    cr_assert_eq(kv_proto_buf_reserve(&b, sizeof head + 4096), KV_OK);
    memcpy(b.data + b.len, head, sizeof head);
    b.len += sizeof head;
    memset(b.data + b.len, 'v', 4096);
    b.len += 4096;
    cr_assert_eq(raw_send(fd, b.data, b.len), 0);
    /* more of the body, as a client would keep sending (kvd may be gone) */
    char more[65536];
    memset(more, 'v', sizeof more);
    (void)send(fd, more, sizeof more, MSG_NOSIGNAL);

    uint64_t id = 0;
    cr_assert_eq(raw_recv_status(fd, KV_PROTO_DEL, &id), KV_OK, "the DEL is answered");
    cr_assert_eq(id, 76);
    cr_assert_eq(raw_recv_status(fd, KV_PROTO_SET, &id), KV_NO_MEMORY,
                 "an error frame, not a reset");
    cr_assert_eq(id, 77, "with the request's id");
    cr_assert(raw_wait_closed(fd, TEST_IO_TIMEOUT_MS), "then kvd closes");
    close(fd);
    kv_proto_buf_free(&b);

    kv_value v;
    cr_assert_eq(kv_client_get(c, "big", 3, &v), KV_NOT_FOUND, "the SET did not run");
    cr_assert_eq(kv_client_get(c, "d", 1, &v), KV_NOT_FOUND, "the DEL ran");
    kv_client_close(c);
    kvd_stop();
}

/* --max-memory with noeviction: a write that does not fit is refused with
 * KV_MEMORY_LIMIT (native) or Redis's OOM error (RESP), and INFO and
 * CONFIG GET tell the limit and policy as Redis does. */
Test(limits, max_memory_noeviction_refuses_writes)
{
    kvd_start("--max-memory", "2m", "--eviction-policy", "noeviction", NULL);
    kv_client *c = test_client(NULL);
    char key[32], val[200];
    memset(val, 'v', sizeof val);
    int rc = KV_OK;
    long i = 0;
    for (; i < 100000 && rc == KV_OK; i++) {
        int n = snprintf(key, sizeof key, "k%ld", i);
        rc = kv_client_set(c, key, (size_t)n, val, sizeof val, NULL);
    }
    cr_assert_eq(rc, KV_MEMORY_LIMIT, "after %ld sets: %s", i, kv_client_strerror(rc));
    cr_assert_eq(metric_u(NULL, "max_memory"), (uint64_t)2 << 20);
    cr_assert_leq(metric_u(NULL, "memory_used"), ((uint64_t)2 << 20) + (32 << 10));
    cr_assert_eq(metric_u(NULL, "evicted_keys"), 0);
    /* deletes still work */
    cr_assert_eq(kv_client_del(c, "k0", 2, NULL), KV_OK);
    kv_client_close(c);
    char buf[8192], cmd[6000];
    int n = snprintf(cmd, sizeof cmd, "*3\r\n$3\r\nSET\r\n$7\r\nrespkey\r\n$4000\r\n");
    memset(cmd + n, 'x', 4000);
    memcpy(cmd + n + 4000, "\r\n", 3);
    raw_text_exchange(g_kvd.port, cmd, buf, sizeof buf);
    cr_assert(strstr(buf, "-OOM command not allowed when used memory > 'maxmemory'.\r\n"),
              "RESP reply: %s", buf);
    raw_text_exchange(g_kvd.port, "INFO memory\r\nCONFIG GET maxmemory*\r\n", buf, sizeof buf);
    cr_assert(strstr(buf, "maxmemory:2097152\r\n"), "%s", buf);
    cr_assert(strstr(buf, "maxmemory_policy:noeviction\r\n"), "%s", buf);
    cr_assert(strstr(buf, "$7\r\n2097152\r\n"), "CONFIG GET maxmemory: %s", buf);
    kvd_stop();
}

/* --max-memory with allkeys-lru: writes go on, old keys are evicted,
 * INFO's evicted_keys and the metrics count them. */
Test(limits, max_memory_allkeys_lru_evicts)
{
    kvd_start("--max-memory", "2m", "--eviction-policy", "allkeys-lru", NULL);
    kv_client *c = test_client(NULL);
    char key[32], val[200];
    memset(val, 'v', sizeof val);
    for (long i = 0; i < 30000; i++) {
        int n = snprintf(key, sizeof key, "k%ld", i);
        int rc = kv_client_set(c, key, (size_t)n, val, sizeof val, NULL);
        cr_assert_eq(rc, KV_OK, "set %ld: %s", i, kv_client_strerror(rc));
    }
    uint64_t evicted = metric_u(NULL, "evicted_keys");
    cr_assert_gt(evicted, 15000, "evicted %llu", (unsigned long long)evicted);
    cr_assert_leq(metric_u(NULL, "memory_used"), ((uint64_t)2 << 20) + (32 << 10));
    kv_value v;
    cr_assert_eq(kv_client_get(c, "k0", 2, &v), KV_NOT_FOUND, "the oldest key survived");
    cr_assert_eq(kv_client_get(c, "k29999", 6, &v), KV_OK, "the newest key was evicted");
    kv_client_value_free(&v);
    kv_client_close(c);
    char buf[8192];
    raw_text_exchange(g_kvd.port, "INFO\r\n", buf, sizeof buf);
    cr_assert(strstr(buf, "maxmemory_policy:allkeys-lru\r\n"), "%s", buf);
    const char *e = strstr(buf, "evicted_keys:");
    cr_assert_not_null(e);
    cr_assert_geq(strtoull(e + 13, NULL, 10), evicted);
    kvd_stop();
}
