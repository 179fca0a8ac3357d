/*
 * test_resp_wire.c - kvd's RESP replies byte for byte over a raw socket:
 * every RESP2 reply type, the RESP3 ones after HELLO 3 (null, map) and
 * back after HELLO 2, inline commands, ignored empty requests, KVD.WATCH's
 * pushes (RESP3) and subscription messages (RESP2), and a
 * pipeline of good and bad requests whose replies keep their order. The
 * expected bytes are what redis-server 7.0 sends for the same requests.
 */
#include <criterion/criterion.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "harness.h"
#include "resp_util.h"

TestSuite(resp_wire, .init = harness_setup, .fini = harness_teardown, .timeout = 60);

static int conn(void)
{
    int fd = raw_connect(g_kvd.port, TEST_IO_TIMEOUT_MS);
    cr_assert_geq(fd, 0);
    return fd;
}

/* Sends request, expects exactly reply. */
static void rt(int fd, const char *request, const char *reply)
{
    char buf[4096];
    resp_roundtrip(fd, request, buf, sizeof buf);
    cr_assert_str_eq(buf, reply, "%s -> %s", request, buf);
}

Test(resp_wire, resp2_replies)
{
    kvd_start(NULL);
    int fd = conn();
    rt(fd, "*1\r\n$4\r\nPING\r\n", "+PONG\r\n");
    rt(fd, "*2\r\n$4\r\nPING\r\n$2\r\nhi\r\n", "$2\r\nhi\r\n");
    rt(fd, "*3\r\n$3\r\nSET\r\n$1\r\nk\r\n$1\r\nv\r\n", "+OK\r\n");
    rt(fd, "*2\r\n$3\r\nGET\r\n$1\r\nk\r\n", "$1\r\nv\r\n");
    rt(fd, "*2\r\n$3\r\nGET\r\n$4\r\nnope\r\n", "$-1\r\n");
    rt(fd, "*3\r\n$4\r\nMGET\r\n$1\r\nk\r\n$4\r\nnope\r\n", "*2\r\n$1\r\nv\r\n$-1\r\n");
    rt(fd, "*2\r\n$4\r\nINCR\r\n$1\r\nn\r\n", ":1\r\n");
    rt(fd, "*3\r\n$6\r\nDECRBY\r\n$1\r\nn\r\n$2\r\n10\r\n", ":-9\r\n");
    rt(fd, "*3\r\n$6\r\nEXISTS\r\n$1\r\nk\r\n$1\r\nk\r\n", ":2\r\n");
    rt(fd, "*2\r\n$4\r\nECHO\r\n$0\r\n\r\n", "$0\r\n\r\n");
    rt(fd, "*3\r\n$3\r\nSET\r\n$1\r\ne\r\n$0\r\n\r\n", "+OK\r\n");
    rt(fd, "*2\r\n$3\r\nGET\r\n$1\r\ne\r\n", "$0\r\n\r\n");
    rt(fd, "*2\r\n$4\r\nTYPE\r\n$1\r\nk\r\n", "+string\r\n");
    rt(fd, "*3\r\n$6\r\nCONFIG\r\n$3\r\nGET\r\n$9\r\nmaxmemory\r\n",
       "*2\r\n$9\r\nmaxmemory\r\n$1\r\n0\r\n");
    rt(fd, "*4\r\n$4\r\nSCAN\r\n$1\r\n0\r\n$5\r\nMATCH\r\n$1\r\nk\r\n",
       "*2\r\n$1\r\n0\r\n*1\r\n$1\r\nk\r\n");
    rt(fd, "*2\r\n$4\r\nKEYS\r\n$3\r\nzz*\r\n", "*0\r\n");
    rt(fd, "*2\r\n$3\r\nDEL\r\n$1\r\ne\r\n", ":1\r\n");
    rt(fd, "*1\r\n$5\r\nMULTI\r\n", "+OK\r\n");
    rt(fd, "*2\r\n$4\r\nINCR\r\n$1\r\nn\r\n", "+QUEUED\r\n");
    rt(fd, "*2\r\n$4\r\nINCR\r\n$1\r\nk\r\n", "+QUEUED\r\n");
    rt(fd, "*1\r\n$4\r\nEXEC\r\n",
       "*2\r\n:-8\r\n-ERR value is not an integer or out of range\r\n");
    rt(fd, "*1\r\n$4\r\nEXEC\r\n", "-ERR EXEC without MULTI\r\n");
    rt(fd, "*1\r\n$7\r\nDISCARD\r\n", "-ERR DISCARD without MULTI\r\n");
    rt(fd, "*2\r\n$4\r\nfrob\r\n$1\r\nx\r\n",
       "-ERR unknown command 'frob', with args beginning with: 'x' \r\n");
    rt(fd, "*1\r\n$3\r\nGET\r\n", "-ERR wrong number of arguments for 'get' command\r\n");
    rt(fd, "*2\r\n$5\r\nHELLO\r\n$1\r\n4\r\n", "-NOPROTO unsupported protocol version\r\n");
    /* EXEC after a WATCHed key changed: the null array, as Redis sends */
    int other = conn();
    rt(fd, "*2\r\n$5\r\nWATCH\r\n$1\r\nk\r\n", "+OK\r\n");
    rt(other, "*3\r\n$3\r\nSET\r\n$1\r\nk\r\n$1\r\nw\r\n", "+OK\r\n");
    rt(fd, "*1\r\n$5\r\nMULTI\r\n", "+OK\r\n");
    rt(fd, "*2\r\n$3\r\nGET\r\n$1\r\nk\r\n", "+QUEUED\r\n");
    char buf[256];
    resp_roundtrip(fd, "*1\r\n$4\r\nEXEC\r\n", buf, sizeof buf);
    cr_assert_str_eq(buf, "*-1\r\n");
    close(other);
    close(fd);
    kvd_stop();
}

Test(resp_wire, resp3_replies)
{
    kvd_start(NULL);
    int fd = conn();
    rt(fd, "*3\r\n$3\r\nSET\r\n$1\r\nk\r\n$1\r\nv\r\n", "+OK\r\n");
    char buf[4096];
    resp_roundtrip(fd, "*2\r\n$5\r\nHELLO\r\n$1\r\n3\r\n", buf, sizeof buf);
    static const char head[] = "%7\r\n$6\r\nserver\r\n$5\r\nredis\r\n$7\r\nversion\r\n";
    cr_assert(strncmp(buf, head, sizeof head - 1) == 0, "%s", buf);
    cr_assert_not_null(strstr(buf, "$5\r\nproto\r\n:3\r\n"), "%s", buf);
    cr_assert_not_null(strstr(buf, "$7\r\nmodules\r\n*0\r\n"), "%s", buf);
    rt(fd, "*2\r\n$3\r\nGET\r\n$4\r\nnope\r\n", "_\r\n");
    rt(fd, "*3\r\n$4\r\nMGET\r\n$1\r\nk\r\n$4\r\nnope\r\n", "*2\r\n$1\r\nv\r\n_\r\n");
    rt(fd, "*3\r\n$6\r\nCONFIG\r\n$3\r\nGET\r\n$9\r\nmaxmemory\r\n",
       "%1\r\n$9\r\nmaxmemory\r\n$1\r\n0\r\n");
    rt(fd, "*2\r\n$7\r\nCOMMAND\r\n$4\r\nDOCS\r\n", "%0\r\n");
    rt(fd, "*3\r\n$11\r\nINCRBYFLOAT\r\n$1\r\nf\r\n$3\r\n1.5\r\n", "$3\r\n1.5\r\n");
    rt(fd, "*2\r\n$4\r\nINCR\r\n$1\r\nk\r\n",
       "-ERR value is not an integer or out of range\r\n");
    /* HELLO without a version keeps RESP3 */
    resp_roundtrip(fd, "*1\r\n$5\r\nHELLO\r\n", buf, sizeof buf);
    cr_assert(strncmp(buf, "%7\r\n", 4) == 0, "%s", buf);
    /* EXEC of a changed WATCHed key: RESP3's null */
    int other = conn();
    rt(fd, "*2\r\n$5\r\nWATCH\r\n$1\r\nk\r\n", "+OK\r\n");
    rt(other, "*3\r\n$3\r\nSET\r\n$1\r\nk\r\n$1\r\nw\r\n", "+OK\r\n");
    rt(fd, "*1\r\n$5\r\nMULTI\r\n", "+OK\r\n");
    rt(fd, "*2\r\n$3\r\nGET\r\n$1\r\nk\r\n", "+QUEUED\r\n");
    rt(fd, "*1\r\n$4\r\nEXEC\r\n", "_\r\n");
    close(other);
    /* back to RESP2 */
    resp_roundtrip(fd, "*2\r\n$5\r\nHELLO\r\n$1\r\n2\r\n", buf, sizeof buf);
    cr_assert(strncmp(buf, "*14\r\n", 5) == 0, "%s", buf);
    rt(fd, "*2\r\n$3\r\nGET\r\n$4\r\nnope\r\n", "$-1\r\n");
    close(fd);
    kvd_stop();
}

Test(resp_wire, inline_commands_and_empty_requests)
{
    kvd_start(NULL);
    int fd = conn();
    rt(fd, "SET a b\r\n", "+OK\r\n");
    rt(fd, "  get \t a  \n", "$1\r\nb\r\n");
    rt(fd, "set 'x y' \"p q\"\r\n", "+OK\r\n");
    rt(fd, "GET \"x y\"\r\n", "$3\r\np q\r\n");
    /* an empty line, *0 and *-1 are nothing to answer: the PING after
     * them is the next reply */
    rt(fd, "\r\n\n*0\r\n*-1\r\nPING\r\n", "+PONG\r\n");
    rt(fd, "nosuch a b\r\n",
       "-ERR unknown command 'nosuch', with args beginning with: 'a' 'b' \r\n");
    rt(fd, "QUIT\r\n", "+OK\r\n");
    int closed = 0;
    char buf[64];
    read_until_close(fd, buf, sizeof buf, 5000, &closed);
    cr_assert(closed, "QUIT closes");
    close(fd);
    kvd_stop();
}

/* Many requests in one write, good and bad mixed: each gets its reply, in
 * order, and the connection is not thrown off by the errors. */
Test(resp_wire, pipelined_errors_keep_order)
{
    kvd_start(NULL);
    int fd = conn();
    enum { ROUNDS = 2000 };
    static const char round[] = "*3\r\n$3\r\nSET\r\n$1\r\nk\r\n$1\r\n7\r\n"
                                "*2\r\n$4\r\nINCR\r\n$1\r\nk\r\n"
                                "*1\r\n$4\r\nnope\r\n"
                                "*1\r\n$3\r\nGET\r\n"
                                "*2\r\n$3\r\nGET\r\n$1\r\nk\r\n";
    static const char replies[] = "+OK\r\n:8\r\n"
                                  "-ERR unknown command 'nope', with args beginning with: \r\n"
                                  "-ERR wrong number of arguments for 'get' command\r\n"
                                  "$1\r\n8\r\n";
    size_t rl = sizeof round - 1, pl = sizeof replies - 1;
    char *req = malloc(rl * ROUNDS);
    cr_assert_not_null(req);
    for (int i = 0; i < ROUNDS; i++)
        memcpy(req + (size_t)i * rl, round, rl);
    cr_assert_eq(raw_send(fd, req, rl * ROUNDS), 0);
    free(req);
    char *got = malloc(pl * ROUNDS + 1);
    cr_assert_not_null(got);
    size_t n = 0;
    while (n < pl * ROUNDS) {
        ssize_t r = recv(fd, got + n, pl * ROUNDS - n, 0);
        cr_assert_gt(r, 0, "after %zu bytes", n);
        n += (size_t)r;
    }
    for (int i = 0; i < ROUNDS; i++)
        cr_assert(memcmp(got + (size_t)i * pl, replies, pl) == 0, "round %d differs", i);
    free(got);
    close(fd);
    kvd_stop();
}

/* Reads the next reply or push and expects exactly want. */
static void expect_next(int fd, const char *want)
{
    char buf[1024];
    cr_assert_gt(resp_read_reply(fd, buf, sizeof buf), 0, "nothing after: %s", want);
    cr_assert_str_eq(buf, want);
}

#define WATCH_FROM_1 "*4\r\n$9\r\nKVD.WATCH\r\n$1\r\nk\r\n$4\r\nFROM\r\n$1\r\n1\r\n"
#define SET_K(v) "*3\r\n$3\r\nSET\r\n$1\r\nk\r\n$1\r\n" v "\r\n"

/* KVD.WATCH (docs/resp.md, "Watch"): its reply, then one push per event
 * (RESP3 >, RESP2 an array as SUBSCRIBE's messages), KVD.UNWATCH's end
 * push before its count, and the end of a watch that lost events. */
Test(resp_wire, kvd_watch_pushes)
{
    kvd_start("--history-versions", "2", NULL);
    int fd = conn(), w3 = conn(), w2 = conn();
    rt(fd, SET_K("a"), "+OK\r\n"); /* revision 1 */
    char buf[1024];
    resp_roundtrip(w3, "*2\r\n$5\r\nHELLO\r\n$1\r\n3\r\n", buf, sizeof buf);
    rt(w3, WATCH_FROM_1, "*3\r\n$9\r\nkvd.watch\r\n$1\r\nk\r\n:1\r\n");
    expect_next(w3, ">8\r\n$9\r\nkvd.event\r\n$1\r\nk\r\n:1\r\n$3\r\nput\r\n$1\r\nk\r\n$1\r\na\r\n"
                    ":1\r\n:1\r\n");
    rt(w2, WATCH_FROM_1, "*3\r\n$9\r\nkvd.watch\r\n$1\r\nk\r\n:1\r\n");
    expect_next(w2, "*8\r\n$9\r\nkvd.event\r\n$1\r\nk\r\n:1\r\n$3\r\nput\r\n$1\r\nk\r\n$1\r\na\r\n"
                    ":1\r\n:1\r\n");
    /* RESP3 takes other commands meanwhile; RESP2 only the watch ones */
    rt(w3, "*2\r\n$3\r\nGET\r\n$1\r\nk\r\n", "$1\r\na\r\n");
    rt(w2, "*2\r\n$3\r\nGET\r\n$1\r\nk\r\n",
       "-ERR Can't execute 'get': only KVD.WATCH / KVD.UNWATCH / PING / QUIT are allowed in "
       "this context (or use RESP3: HELLO 3)\r\n");
    rt(w2, "*1\r\n$4\r\nPING\r\n", "+PONG\r\n");
    rt(fd, "*2\r\n$3\r\nDEL\r\n$1\r\nk\r\n", ":1\r\n"); /* 2 */
    expect_next(w3, ">8\r\n$9\r\nkvd.event\r\n$1\r\nk\r\n:2\r\n$3\r\ndel\r\n$1\r\nk\r\n_\r\n"
                    ":0\r\n:0\r\n");
    expect_next(w2, "*8\r\n$9\r\nkvd.event\r\n$1\r\nk\r\n:2\r\n$3\r\ndel\r\n$1\r\nk\r\n$-1\r\n"
                    ":0\r\n:0\r\n");
    /* KVD.UNWATCH: the end of each watch, then how many ended */
    const char *unwatch = "*1\r\n$11\r\nKVD.UNWATCH\r\n";
    cr_assert_eq(raw_send(w3, unwatch, strlen(unwatch)), 0);
    expect_next(w3, ">3\r\n$11\r\nkvd.unwatch\r\n$1\r\nk\r\n:3\r\n");
    expect_next(w3, ":1\r\n");
    rt(w3, "*1\r\n$11\r\nKVD.UNWATCH\r\n", ":0\r\n");
    close(w2);
    /* revisions 1..3 leave history: a watch from 1 ends at once, naming
     * where to resume (2 earlier values of k are kept: 4 and 5) */
    for (int i = 0; i < 4; i++)
        rt(fd, SET_K("b"), "+OK\r\n"); /* 3..6 */
    rt(w3, WATCH_FROM_1, "*3\r\n$9\r\nkvd.watch\r\n$1\r\nk\r\n:1\r\n");
    expect_next(w3, ">3\r\n$8\r\nkvd.lost\r\n$1\r\nk\r\n:4\r\n");
    rt(w3, "*1\r\n$11\r\nKVD.UNWATCH\r\n", ":0\r\n");
    rt(w3, "*3\r\n$9\r\nKVD.WATCH\r\n$1\r\nk\r\n$4\r\nPRFX\r\n",
       "-ERR syntax error (KVD.WATCH key [PREFIX] [FROM rev] [COUNT n])\r\n");
    close(w3);
    close(fd);
    kvd_stop();
}
