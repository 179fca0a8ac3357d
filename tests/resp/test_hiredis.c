/*
 * test_hiredis.c - kvd driven from C by hiredis (Debian libhiredis-dev,
 * 0.14: RESP2 only): binary-safe SET/GET with %b, a pipeline of 1000
 * commands (redisAppendCommand, then redisGetReply for each), every
 * reply type hiredis has (status, string, integer, nil, array, error),
 * MULTI/EXEC with WATCH from two connections, AUTH, and a request split
 * into single bytes.
 */
#include <criterion/criterion.h>
#include <hiredis/hiredis.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <unistd.h>

#include "harness.h"

TestSuite(hiredis, .init = harness_setup, .fini = harness_teardown, .timeout = 120);

static redisContext *connect_kvd(void)
{
    struct timeval tv = {20, 0};
    redisContext *c = redisConnectWithTimeout("127.0.0.1", g_kvd.port, tv);
    cr_assert_not_null(c);
    cr_assert_eq(c->err, 0, "connect: %s", c->errstr);
    cr_assert_eq(redisSetTimeout(c, tv), REDIS_OK);
    return c;
}

/* Runs a command (printf-like, hiredis's %s/%b) and checks the reply's
 * type; returns it (caller frees). */
static redisReply *cmd_type(redisContext *c, int type, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    redisReply *r = redisvCommand(c, fmt, ap);
    va_end(ap);
    cr_assert_not_null(r, "%s: %s", fmt, c->errstr);
    cr_assert_eq(r->type, type, "%s: reply type %d, expected %d (%s)", fmt, r->type, type,
                 r->str ? r->str : "");
    return r;
}

static void expect_status(redisContext *c, const char *status, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    redisReply *r = redisvCommand(c, fmt, ap);
    va_end(ap);
    cr_assert_not_null(r, "%s: %s", fmt, c->errstr);
    cr_assert_eq(r->type, REDIS_REPLY_STATUS, "%s: type %d (%s)", fmt, r->type,
                 r->str ? r->str : "");
    cr_assert_str_eq(r->str, status);
    freeReplyObject(r);
}

static void expect_int(redisContext *c, long long v, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    redisReply *r = redisvCommand(c, fmt, ap);
    va_end(ap);
    cr_assert_not_null(r, "%s: %s", fmt, c->errstr);
    cr_assert_eq(r->type, REDIS_REPLY_INTEGER, "%s: type %d (%s)", fmt, r->type,
                 r->str ? r->str : "");
    cr_assert_eq(r->integer, v, "%s: %lld", fmt, r->integer);
    freeReplyObject(r);
}

static void expect_error(redisContext *c, const char *start, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    redisReply *r = redisvCommand(c, fmt, ap);
    va_end(ap);
    cr_assert_not_null(r, "%s: %s", fmt, c->errstr);
    cr_assert_eq(r->type, REDIS_REPLY_ERROR, "%s: type %d", fmt, r->type);
    cr_assert(strncmp(r->str, start, strlen(start)) == 0, "%s: %s", fmt, r->str);
    freeReplyObject(r);
}

Test(hiredis, binary_values)
{
    kvd_start(NULL);
    redisContext *c = connect_kvd();
    unsigned char val[256 * 3 + 4];
    for (size_t i = 0; i < 256 * 3; i++)
        val[i] = (unsigned char)i;
    memcpy(val + 256 * 3, "\r\n\0\0", 4);
    static const char key[] = "k\0e\r\ny\xff";
    expect_status(c, "OK", "SET %b %b", key, sizeof key - 1, val, sizeof val);
    redisReply *r = cmd_type(c, REDIS_REPLY_STRING, "GET %b", key, sizeof key - 1);
    cr_assert_eq(r->len, sizeof val);
    cr_assert(memcmp(r->str, val, sizeof val) == 0);
    freeReplyObject(r);
    expect_int(c, sizeof val, "STRLEN %b", key, sizeof key - 1);
    /* the key without its NUL-and-after is another key */
    r = cmd_type(c, REDIS_REPLY_NIL, "GET k");
    freeReplyObject(r);
    /* an empty value and an empty-looking key part */
    expect_status(c, "OK", "SET %b %b", "e", (size_t)1, "", (size_t)0);
    r = cmd_type(c, REDIS_REPLY_STRING, "GET e");
    cr_assert_eq(r->len, 0);
    freeReplyObject(r);
    /* redisCommandArgv, the other way to pass binary arguments */
    const char *argv[] = {"MSET", "a\0b", "1\0", "c", "\xff\xfe"};
    const size_t lens[] = {4, 3, 2, 1, 2};
    r = redisCommandArgv(c, 5, argv, lens);
    cr_assert_not_null(r);
    cr_assert_eq(r->type, REDIS_REPLY_STATUS);
    freeReplyObject(r);
    r = cmd_type(c, REDIS_REPLY_ARRAY, "MGET %b c nope", "a\0b", (size_t)3);
    cr_assert_eq(r->elements, 3);
    cr_assert_eq(r->element[0]->type, REDIS_REPLY_STRING);
    cr_assert(r->element[0]->len == 2 && memcmp(r->element[0]->str, "1\0", 2) == 0);
    cr_assert(r->element[1]->len == 2 && memcmp(r->element[1]->str, "\xff\xfe", 2) == 0);
    cr_assert_eq(r->element[2]->type, REDIS_REPLY_NIL);
    freeReplyObject(r);
    redisFree(c);
    kvd_stop();
}

Test(hiredis, pipeline_of_1000)
{
    kvd_start(NULL);
    redisContext *c = connect_kvd();
    enum { N = 1000 };
    /* 400 SETs, 400 GETs, 100 INCRs, 50 GETs of absent keys, 50 errors */
    for (int i = 0; i < N; i++) {
        int rc;
        if (i < 400)
            rc = redisAppendCommand(c, "SET key:%d value-%d", i, i);
        else if (i < 800)
            rc = redisAppendCommand(c, "GET key:%d", i - 400);
        else if (i < 900)
            rc = redisAppendCommand(c, "INCR counter");
        else if (i < 950)
            rc = redisAppendCommand(c, "GET absent:%d", i);
        else
            rc = redisAppendCommand(c, "INCR key:%d", i - 950); /* "value-N": not a number */
        cr_assert_eq(rc, REDIS_OK);
    }
    for (int i = 0; i < N; i++) {
        redisReply *r = NULL;
        cr_assert_eq(redisGetReply(c, (void **)&r), REDIS_OK, "reply %d: %s", i, c->errstr);
        cr_assert_not_null(r);
        if (i < 400) {
            cr_assert_eq(r->type, REDIS_REPLY_STATUS, "reply %d", i);
            cr_assert_str_eq(r->str, "OK");
        } else if (i < 800) {
            char want[32];
            snprintf(want, sizeof want, "value-%d", i - 400);
            cr_assert_eq(r->type, REDIS_REPLY_STRING, "reply %d", i);
            cr_assert_str_eq(r->str, want);
        } else if (i < 900) {
            cr_assert_eq(r->type, REDIS_REPLY_INTEGER, "reply %d", i);
            cr_assert_eq(r->integer, i - 799);
        } else if (i < 950) {
            cr_assert_eq(r->type, REDIS_REPLY_NIL, "reply %d", i);
        } else {
            cr_assert_eq(r->type, REDIS_REPLY_ERROR, "reply %d", i);
            cr_assert_str_eq(r->str, "ERR value is not an integer or out of range");
        }
        freeReplyObject(r);
    }
    expect_int(c, 401, "DBSIZE");
    redisFree(c);
    kvd_stop();
}

Test(hiredis, reply_types)
{
    kvd_start(NULL);
    redisContext *c = connect_kvd();
    expect_status(c, "PONG", "PING");
    expect_status(c, "OK", "SET n 41");
    expect_int(c, 42, "INCR n");
    expect_int(c, -8, "DECRBY n 50");
    expect_int(c, 2, "EXISTS n n");
    expect_int(c, 0, "EXISTS nope");
    expect_int(c, 1, "SETNX fresh 1");
    expect_int(c, 0, "SETNX fresh 1");
    redisReply *r = cmd_type(c, REDIS_REPLY_NIL, "GET nope");
    freeReplyObject(r);
    r = cmd_type(c, REDIS_REPLY_STRING, "INCRBYFLOAT f 2.5");
    cr_assert_str_eq(r->str, "2.5");
    freeReplyObject(r);
    r = cmd_type(c, REDIS_REPLY_STATUS, "TYPE n");
    cr_assert_str_eq(r->str, "string");
    freeReplyObject(r);
    /* arrays: SCAN's [cursor, [keys]], an empty one, KEYS */
    r = cmd_type(c, REDIS_REPLY_ARRAY, "SCAN 0 MATCH n COUNT 1000");
    cr_assert_eq(r->elements, 2);
    cr_assert_eq(r->element[0]->type, REDIS_REPLY_STRING);
    cr_assert_str_eq(r->element[0]->str, "0");
    cr_assert_eq(r->element[1]->type, REDIS_REPLY_ARRAY);
    cr_assert_eq(r->element[1]->elements, 1);
    cr_assert_str_eq(r->element[1]->element[0]->str, "n");
    freeReplyObject(r);
    r = cmd_type(c, REDIS_REPLY_ARRAY, "KEYS zz*");
    cr_assert_eq(r->elements, 0);
    freeReplyObject(r);
    /* HELLO 2: a flat array of 7 pairs */
    r = cmd_type(c, REDIS_REPLY_ARRAY, "HELLO 2");
    cr_assert_eq(r->elements, 14);
    cr_assert_str_eq(r->element[0]->str, "server");
    cr_assert_str_eq(r->element[4]->str, "proto");
    cr_assert_eq(r->element[5]->integer, 2);
    freeReplyObject(r);
    /* errors, and the connection goes on after each */
    expect_error(c, "ERR unknown command 'NOPE', with args beginning with: 'x' ", "NOPE x");
    expect_error(c, "ERR wrong number of arguments for 'get' command", "GET");
    expect_error(c, "ERR value is not an integer or out of range", "INCRBY n x");
    expect_error(c, "ERR no such key", "RENAME nope x");
    expect_error(c, "ERR EXEC without MULTI", "EXEC");
    expect_error(c, "NOPROTO ", "HELLO 4");
    expect_status(c, "PONG", "PING");

    /* MULTI/EXEC: QUEUED statuses, an array of mixed types with an error */
    expect_status(c, "OK", "MULTI");
    expect_status(c, "QUEUED", "SET t abc");
    expect_status(c, "QUEUED", "INCR t");
    expect_status(c, "QUEUED", "GET t");
    expect_status(c, "QUEUED", "GET nope");
    r = cmd_type(c, REDIS_REPLY_ARRAY, "EXEC");
    cr_assert_eq(r->elements, 4);
    cr_assert_eq(r->element[0]->type, REDIS_REPLY_STATUS);
    cr_assert_eq(r->element[1]->type, REDIS_REPLY_ERROR);
    cr_assert_eq(r->element[2]->type, REDIS_REPLY_STRING);
    cr_assert_eq(r->element[3]->type, REDIS_REPLY_NIL);
    freeReplyObject(r);
    /* a refused command aborts EXEC */
    expect_status(c, "OK", "MULTI");
    expect_error(c, "ERR wrong number of arguments", "SET only");
    expect_error(c, "EXECABORT ", "EXEC");

    /* WATCH, then another connection changes the key: EXEC is nil */
    redisContext *other = connect_kvd();
    expect_status(c, "OK", "WATCH t");
    expect_status(other, "OK", "SET t changed");
    expect_status(c, "OK", "MULTI");
    expect_status(c, "QUEUED", "SET t mine");
    r = cmd_type(c, REDIS_REPLY_NIL, "EXEC");
    freeReplyObject(r);
    r = cmd_type(c, REDIS_REPLY_STRING, "GET t");
    cr_assert_str_eq(r->str, "changed");
    freeReplyObject(r);
    redisFree(other);
    redisFree(c);
    kvd_stop();
}

Test(hiredis, auth)
{
    kvd_start("--password", "hi-pw", NULL);
    redisContext *c = connect_kvd();
    expect_error(c, "NOAUTH Authentication required.", "GET k");
    expect_error(c, "NOAUTH Authentication required.", "NOSUCHCOMMAND");
    expect_status(c, "OK", "AUTH %s", "hi-pw");
    expect_status(c, "OK", "SET k v");
    redisFree(c);
    c = connect_kvd();
    expect_error(c, "WRONGPASS invalid username-password pair", "AUTH %s", "nope");
    expect_error(c, "NOAUTH", "GET k");
    expect_status(c, "OK", "AUTH default %s", "hi-pw"); /* waits out the backoff */
    redisReply *r = cmd_type(c, REDIS_REPLY_STRING, "GET k");
    cr_assert_str_eq(r->str, "v");
    freeReplyObject(r);
    redisFree(c);
    kvd_stop();
}

/* A request written one byte at a time (hiredis's reader on our side,
 * kvd's resumable parser on its side). */
Test(hiredis, request_in_single_bytes)
{
    kvd_start(NULL);
    int fd = raw_connect(g_kvd.port, TEST_IO_TIMEOUT_MS);
    cr_assert_geq(fd, 0);
    static const char req[] = "*3\r\n$3\r\nSET\r\n$2\r\nk1\r\n$5\r\nv\r\n\0x\r\n"
                              "*2\r\n$3\r\nGET\r\n$2\r\nk1\r\n";
    for (size_t i = 0; i < sizeof req - 1; i++) {
        cr_assert_eq(raw_send(fd, req + i, 1), 0);
        if (i % 7 == 0)
            usleep(1000);
    }
    redisReader *rd = redisReaderCreate();
    redisReply *got[2] = {NULL, NULL};
    int n = 0;
    while (n < 2) {
        char buf[256];
        ssize_t k = recv(fd, buf, sizeof buf, 0);
        cr_assert_gt(k, 0, "reply");
        cr_assert_eq(redisReaderFeed(rd, buf, (size_t)k), REDIS_OK);
        void *rep;
        while (n < 2 && redisReaderGetReply(rd, &rep) == REDIS_OK && rep)
            got[n++] = rep;
    }
    cr_assert_eq(got[0]->type, REDIS_REPLY_STATUS);
    cr_assert_eq(got[1]->type, REDIS_REPLY_STRING);
    cr_assert_eq(got[1]->len, 5);
    cr_assert(memcmp(got[1]->str, "v\r\n\0x", 5) == 0);
    freeReplyObject(got[0]);
    freeReplyObject(got[1]);
    redisReaderFree(rd);
    close(fd);
    kvd_stop();
}
