/*
 * test_resp_hostile.c - malformed and abusive RESP over raw sockets:
 * absurd array and bulk lengths (2^31 elements, -2, 10^12), header lines
 * that never end, binary garbage after '*', inline lines over 64 KiB, a
 * huge MSET announced and never sent, the request limits before and
 * after AUTH, and clients that announce a large request and then trickle
 * it. Each gets "-ERR Protocol error: ..." and a close, or a plain close;
 * kvd never crashes, keeps serving a bystander connection, changes
 * nothing in the store, and (under valgrind and ASan, which run these
 * tests too) leaks nothing; a trickling client's memory is bounded by the
 * request limit and the frame timeout ends it.
 */
#include <criterion/criterion.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include "harness.h"
#include "resp_util.h"

TestSuite(resp_hostile, .init = harness_setup, .fini = harness_teardown, .timeout = 120);

static int conn(void)
{
    int fd = raw_connect(g_kvd.port, TEST_IO_TIMEOUT_MS);
    cr_assert_geq(fd, 0);
    return fd;
}

static void rt(int fd, const char *request, const char *reply)
{
    char buf[4096];
    resp_roundtrip(fd, request, buf, sizeof buf);
    cr_assert_str_eq(buf, reply, "%s", request);
}

/* Sends bytes on a new connection; expects exactly reply (NULL: nothing)
 * and then the close. */
static void expect_refused(const void *bytes, size_t n, const char *reply, const char *what)
{
    int fd = conn();
    cr_assert_eq(raw_send(fd, bytes, n), 0, "%s: send", what);
    char buf[1024];
    int closed = 0;
    read_until_close(fd, buf, sizeof buf, 10000, &closed);
    cr_assert_str_eq(buf, reply ? reply : "", "%s", what);
    cr_assert(closed, "%s: kvd should close the connection", what);
    close(fd);
}

#define PROTO(what) "-ERR Protocol error: " what "\r\n"
#define PING "*1\r\n$4\r\nPING\r\n"

Test(resp_hostile, malformed_requests_get_an_error_and_a_close)
{
    kvd_start(NULL);
    int bystander = conn();
    rt(bystander, "*3\r\n$3\r\nSET\r\n$4\r\nkeep\r\n$4\r\nsafe\r\n", "+OK\r\n");

    char digits[160];
    memset(digits, '9', sizeof digits);
    char line[200];
    static const struct {
        const char *bytes;
        size_t n;
        const char *reply;
        const char *what;
    } cases[] = {
#define C(b, r, w) {b, sizeof b - 1, r, w}
        C("*2147483648\r\n", PROTO("invalid multibulk length"), "2^31 elements"),
        C("*9223372036854775808\r\n", PROTO("invalid multibulk length"), "2^63 elements"),
        C("*1048577\r\n", PROTO("invalid multibulk length"), "over 1 Mi elements"),
        C("*1\r\n$-2\r\n", PROTO("invalid bulk length"), "bulk length -2"),
        C("*1\r\n$-1\r\n", PROTO("invalid bulk length"), "null bulk in a request"),
        C("*1\r\n$1000000000000\r\n", PROTO("invalid bulk length"), "bulk length 10^12"),
        C("*abc\r\n", PROTO("invalid multibulk length"), "letters for a count"),
        C("*\r\n", PROTO("invalid multibulk length"), "no count"),
        C("*1\r\r\n", PROTO("invalid multibulk length"), "CR without LF"),
        C("*\x00\xff\xfe garbage\r\n", PROTO("invalid multibulk length"), "binary after *"),
        C("*1\x00" "5\r\n", PROTO("invalid multibulk length"), "NUL inside a count"),
        C("*1\r\n\x00\xff$", PROTO("expected '$', got '?'"), "binary instead of $"),
        C("*2\r\n$3\r\nGET\r\n:1\r\n", PROTO("expected '$', got ':'"), "an integer argument"),
        C("*1\r\n$4\r\nPINGxx", PROTO("bulk string not followed by CRLF"), "bulk overrun"),
        C("PING \"open\r\n", PROTO("unbalanced quotes in request"), "inline quote"),
        /* a good request first: answered, then the error */
        C(PING "*2147483648\r\n", "+PONG\r\n" PROTO("invalid multibulk length"),
          "after a good one"),
        C(PING PING "*1\r\n$-2\r\n" PING, "+PONG\r\n+PONG\r\n" PROTO("invalid bulk length"),
          "between good ones"),
#undef C
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++)
        expect_refused(cases[i].bytes, cases[i].n, cases[i].reply, cases[i].what);

    /* header lines that never end: a long run of digits */
    line[0] = '*';
    memcpy(line + 1, digits, 100);
    expect_refused(line, 101, PROTO("invalid multibulk length"), "endless count");
    memcpy(line, "*1\r\n$", 5);
    memcpy(line + 5, digits, 100);
    expect_refused(line, 105, PROTO("invalid bulk length"), "endless bulk length");

    /* inline lines over 64 KiB, with and without their newline */
    size_t big = 64 * 1024 + 100;
    char *inl = malloc(big + 2);
    cr_assert_not_null(inl);
    memset(inl, 'A', big);
    memcpy(inl + big, "\r\n", 2);
    expect_refused(inl, big, PROTO("too big inline request"), "64 KiB inline, no newline");
    expect_refused(inl, big + 2, PROTO("too big inline request"), "64 KiB inline line");
    memcpy(inl, "SET k ", 6);
    expect_refused(inl, big + 2, PROTO("too big inline request"), "64 KiB inline SET");
    free(inl);

    /* the bystander was served all along, the store is unchanged */
    rt(bystander, PING, "+PONG\r\n");
    rt(bystander, "*1\r\n$6\r\nDBSIZE\r\n", ":1\r\n");
    rt(bystander, "*2\r\n$3\r\nGET\r\n$4\r\nkeep\r\n", "$4\r\nsafe\r\n");
    close(bystander);
    cr_assert_geq(metric_u(NULL, "protocol_errors"), 20);
    kvd_stop();
}

Test(resp_hostile, announced_but_never_sent)
{
    kvd_start(NULL);
    int bystander = conn();
    /* a huge MSET announced, a little of it sent, then the end of input */
    static const char mset[] = "*1000001\r\n$4\r\nMSET\r\n$1\r\na\r\n$1\r\n1\r\n";
    int fd = conn();
    cr_assert_eq(raw_send(fd, mset, sizeof mset - 1), 0);
    shutdown(fd, SHUT_WR);
    char buf[512];
    int closed = 0;
    read_until_close(fd, buf, sizeof buf, 10000, &closed);
    cr_assert(closed);
    cr_assert(buf[0] == '\0' || strncmp(buf, "-ERR ", 5) == 0, "%s", buf);
    close(fd);
    /* the same and an abrupt close, a few times over */
    for (int i = 0; i < 20; i++) {
        fd = conn();
        cr_assert_eq(raw_send(fd, mset, sizeof mset - 1), 0);
        close(fd);
    }
    /* a bulk of 100000 announced, 10 bytes of it sent */
    fd = conn();
    static const char part[] = "*3\r\n$3\r\nSET\r\n$1\r\nk\r\n$100000\r\n0123456789";
    cr_assert_eq(raw_send(fd, part, sizeof part - 1), 0);
    shutdown(fd, SHUT_WR);
    read_until_close(fd, buf, sizeof buf, 10000, &closed);
    cr_assert(closed);
    cr_assert(buf[0] == '\0' || strncmp(buf, "-ERR ", 5) == 0, "%s", buf);
    close(fd);
    /* nothing was written, kvd serves on */
    rt(bystander, "*1\r\n$6\r\nDBSIZE\r\n", ":0\r\n");
    int fresh = conn();
    rt(fresh, PING, "+PONG\r\n");
    close(fresh);
    close(bystander);
    kvd_stop();
}

/* Random bytes after '*' (deterministic): whatever kvd makes of them it
 * answers with errors only, or nothing, and survives. */
Test(resp_hostile, binary_garbage_after_star)
{
    kvd_start(NULL);
    int bystander = conn();
    uint32_t x = 0x9e3779b9u;
    for (int i = 0; i < 120; i++) {
        uint8_t junk[600];
        size_t len = 1;
        junk[0] = '*';
        x ^= x << 13, x ^= x >> 17, x ^= x << 5;
        size_t n = 1 + x % 500;
        /* some start with a plausible count, to get past the header */
        if (i % 3 == 1) {
            memcpy(junk + 1, "3\r\n$3\r\n", 7);
            len += 7;
        }
        for (size_t j = 0; j < n; j++) {
            x ^= x << 13, x ^= x >> 17, x ^= x << 5;
            junk[len++] = (uint8_t)x;
        }
        int fd = conn();
        cr_assert_eq(raw_send(fd, junk, len), 0);
        if (i % 2 == 0)
            shutdown(fd, SHUT_WR);
        char buf[2048];
        int closed = 0;
        read_until_close(fd, buf, sizeof buf, i % 2 == 0 ? 5000 : 30, &closed);
        cr_assert(buf[0] == '\0' || buf[0] == '-', "case %d: %s", i, buf);
        close(fd);
    }
    rt(bystander, PING, "+PONG\r\n");
    close(bystander);
    cr_assert(kvd_alive());
    kvd_stop();
}

/* --max-frame-size bounds a RESP request as it does a frame; before AUTH
 * the bound is 1 MiB. */
Test(resp_hostile, request_limits)
{
    kvd_start("--max-frame-size", "100000", NULL);
    expect_refused("*3\r\n$3\r\nSET\r\n$1\r\nk\r\n$100001\r\n", 29, PROTO("invalid bulk length"),
                   "bulk over the limit");
    expect_refused("*25001\r\n", 8, PROTO("invalid multibulk length"), "count over limit/4");
    /* just under the limit is fine */
    int fd = conn();
    size_t vlen = 99000;
    char *req = malloc(vlen + 64);
    cr_assert_not_null(req);
    int h = sprintf(req, "*3\r\n$3\r\nSET\r\n$1\r\nk\r\n$%zu\r\n", vlen);
    memset(req + h, 'v', vlen);
    memcpy(req + h + vlen, "\r\n", 2);
    cr_assert_eq(raw_send(fd, req, (size_t)h + vlen + 2), 0);
    char buf[64];
    cr_assert_gt(resp_read_reply(fd, buf, sizeof buf), 0);
    cr_assert_str_eq(buf, "+OK\r\n");
    free(req);
    close(fd);
    kvd_stop();

    kvd_start("--password", "pw", NULL);
    static const char big[] = "*3\r\n$3\r\nSET\r\n$1\r\nk\r\n$2000000\r\n";
    expect_refused(big, sizeof big - 1, PROTO("invalid bulk length"), "2 MB before AUTH");
    fd = conn();
    rt(fd, "*2\r\n$4\r\nAUTH\r\n$2\r\npw\r\n", "+OK\r\n");
    size_t n = 2000000;
    req = malloc(n + 64);
    cr_assert_not_null(req);
    memcpy(req, big, sizeof big - 1);
    memset(req + sizeof big - 1, 'x', n);
    memcpy(req + sizeof big - 1 + n, "\r\n", 2);
    cr_assert_eq(raw_send(fd, req, sizeof big - 1 + n + 2), 0);
    free(req);
    cr_assert_gt(resp_read_reply(fd, buf, sizeof buf), 0);
    cr_assert_str_eq(buf, "+OK\r\n", "2 MB after AUTH");
    rt(fd, "*2\r\n$6\r\nSTRLEN\r\n$1\r\nk\r\n", ":2000000\r\n");
    close(fd);
    kvd_stop();
}

static long now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return ts.tv_sec * 1000L + ts.tv_nsec / 1000000L;
}

/* Clients that announce a large request and then send it a few bytes at a
 * time: kvd's memory for them stays within the request limit (it grows
 * with what arrives, never by what is announced beyond the limit), the
 * frame timeout closes them, and others are served meanwhile. */
Test(resp_hostile, trickling_clients_are_bounded_and_timed_out)
{
    enum { NBULK = 4, NARGS = 4, N = NBULK + NARGS };
    const size_t limit = 4u << 20;
    kvd_start("--frame-timeout", "1", "--max-frame-size", "4194304", NULL);
    int bystander = conn();
    rt(bystander, PING, "+PONG\r\n");
    long rss0 = kvd_rss_kib();
    int fds[N], open_fds = N;
    for (int i = 0; i < N; i++) {
        fds[i] = conn();
        /* a 4000000-byte value announced / a million arguments announced */
        const char *head =
            i < NBULK ? "*3\r\n$3\r\nSET\r\n$1\r\nk\r\n$4000000\r\n" : "*1000000\r\n";
        cr_assert_eq(raw_send(fds[i], head, strlen(head)), 0);
    }
    char chunk[256];
    memset(chunk, 'x', sizeof chunk);
    static const char arg[] = "$1\r\na\r\n$1\r\na\r\n$1\r\na\r\n$1\r\na\r\n";
    long rss_max = rss0, deadline = now_ms() + 30000;
    while (open_fds > 0 && now_ms() < deadline) {
        for (int i = 0; i < N; i++) {
            if (fds[i] < 0)
                continue;
            int rc = i < NBULK ? raw_send(fds[i], chunk, sizeof chunk)
                               : raw_send(fds[i], arg, sizeof arg - 1);
            char buf[256];
            int closed = 0;
            read_until_close(fds[i], buf, sizeof buf, 1, &closed);
            if (rc != 0 || closed) {
                close(fds[i]);
                fds[i] = -1;
                open_fds--;
            }
        }
        long rss = kvd_rss_kib();
        if (rss > rss_max)
            rss_max = rss;
        rt(bystander, PING, "+PONG\r\n");
        usleep(20000);
    }
    cr_assert_eq(open_fds, 0, "the frame timeout closes every trickling client");
    cr_assert_eq(metric_u(NULL, "disconnects_frame_timeout"), N);
    if (!kvd_under_a_tool()) /* RSS means nothing under valgrind or a sanitizer */
        cr_assert_lt((rss_max - rss0) * 1024L, (long)(N * limit),
                     "kvd grew by %ld KiB for %d trickling clients", rss_max - rss0, N);
    rt(bystander, "*1\r\n$6\r\nDBSIZE\r\n", ":0\r\n");
    close(bystander);
    kvd_stop();
}
