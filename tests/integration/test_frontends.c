/*
 * test_frontends.c - one kvd, several protocols (issue 11): the first
 * bytes of a connection choose the front-end, so kvd's own clients and
 * Redis clients share the main port and the store; --resp-port adds a
 * Redis-only port; a frame limit that would make the choice ambiguous is
 * refused at start.
 */
#include <criterion/criterion.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "harness.h"

TestSuite(frontends, .init = harness_setup, .fini = harness_teardown, .timeout = 90);

Test(frontends, native_and_redis_clients_share_the_port_and_the_store)
{
    kvd_start(NULL);
    kv_client *c = test_client(NULL);
    cr_assert_eq(kv_client_set(c, "shared", 6, "from-kvd", 8, NULL), KV_OK);
    char buf[1024];
    raw_text_exchange(g_kvd.port, "*2\r\n$3\r\nGET\r\n$6\r\nshared\r\n*3\r\n$3\r\nSET\r\n$5\r\nredis\r\n$2\r\nhi\r\n",
                  buf, sizeof buf);
    cr_assert_str_eq(buf, "$8\r\nfrom-kvd\r\n+OK\r\n+OK\r\n");
    kv_value v;
    cr_assert_eq(kv_client_get(c, "redis", 5, &v), KV_OK, "the RESP SET is in the store");
    cr_assert_eq(v.len, 2);
    cr_assert(memcmp(v.data, "hi", 2) == 0);
    kv_client_value_free(&v);
    /* the native connection is unaffected by the RESP ones */
    cr_assert_eq(kv_client_ping(c), KV_OK);
    kv_client_close(c);
    kvd_stop();
}

Test(frontends, resp_port_speaks_only_redis)
{
    kvd_start("--resp-port", "0", NULL);
    cr_assert(wait_file_has(g_kvd.log, "(Redis protocol only)"));
    int port = kvd_log_port("(Redis protocol only)");
    cr_assert_gt(port, 0);
    cr_assert_neq(port, g_kvd.port);
    char buf[1024];
    raw_text_exchange(port, "PING\r\n*3\r\n$3\r\nSET\r\n$1\r\nk\r\n$1\r\nv\r\n", buf, sizeof buf);
    cr_assert_str_eq(buf, "+PONG\r\n+OK\r\n+OK\r\n");
    /* a frame of kvd's protocol there is not taken for one */
    int fd = raw_connect(port, 5000);
    cr_assert_geq(fd, 0);
    kv_proto_buf b = {0};
    kv_proto_request ping = {.op = KV_PROTO_PING, .id = 1};
    enc(&b, &ping);
    cr_assert_eq(raw_send(fd, b.data, b.len), 0);
    cr_assert_eq(raw_send(fd, "\r\n", 2), 0);
    char resp[256];
    ssize_t n = read(fd, resp, sizeof resp - 1);
    cr_assert_gt(n, 0);
    resp[n] = 0;
    cr_assert_eq(resp[0], '-', "a RESP error: %s", resp);
    close(fd);
    kv_proto_buf_free(&b);
    /* and the main port still speaks both */
    kv_client *c = test_client(NULL);
    kv_value v;
    cr_assert_eq(kv_client_get(c, "k", 1, &v), KV_OK);
    kv_client_value_free(&v);
    kv_client_close(c);
    kvd_stop();
}

Test(frontends, a_frame_limit_that_could_look_like_redis_is_refused)
{
    const char *const too_big[] = {"--port", "0", "--max-frame-size", "672m", NULL};
    char out[2048];
    int rc = kvd_run_to_end(too_big, out, sizeof out);
    cr_assert_eq(rc, 2, "exit 2 (configuration): %s", out);
    cr_assert_not_null(strstr(out, "bad value for --max-frame-size: 672m is out of range"), "%s", out);
    cr_assert_not_null(strstr(out, "below 672m"), "%s", out);
    kvd_start("--max-frame-size", "671m", NULL);
    kv_client *c = test_client(NULL);
    cr_assert_eq(kv_client_ping(c), KV_OK);
    kv_client_close(c);
    kvd_stop();
}
