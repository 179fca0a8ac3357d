/*
 * test_cluster.c - three real kvd processes on loopback forming a Raft
 * cluster (issue 15, first part): one leader is elected; a write made on
 * the leader is applied on every node with the same revision; followers
 * refuse writes naming the leader, and a client of a follower follows
 * it there; reads are linearizable on the leader; after the leader is
 * killed with SIGKILL, or paused with SIGSTOP, a new one is elected and no
 * acknowledged write is lost; a whole cluster restarted from its
 * directories has every acknowledged write; a follower far behind
 * installs a snapshot; nodes join, take leadership and leave; expired
 * keys are removed through the log, with the same revisions everywhere.
 * Over HTTP: replication, a follower's serializable reads
 * (?consistency=serializable) and request ids (Kvd-Client-Id,
 * Kvd-Request-Id) that apply a retried write once.
 */
#include <criterion/criterion.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "cluster.h"

static void setup(void)
{
    cluster_setup(0);
}

TestSuite(cluster, .init = setup, .fini = cluster_teardown, .timeout = 240);

Test(cluster, a_write_on_the_leader_reaches_every_node_with_its_revision)
{
    start_all();
    uint64_t rev = 0;
    int leader = write_somewhere("k", "v1", &rev);
    cr_assert_gt(rev, 0);
    for (int i = 0; i < NODES; i++)
        expect_on(i, "k", "v1", rev);
    /* a multi-key write and a conditional transaction, replicated whole */
    kv_client *c = client(leader);
    kv_pair pairs[] = {{"a", 1, "1", 1}, {"b", 1, "2", 1}};
    uint64_t mrev = 0;
    cr_assert_eq(kv_client_mset(c, pairs, 2, &mrev), KV_OK);
    kv_compare cmp = {.kind = KV_CMP_VALUE_EQ, .key = "a", .klen = 1, .value = "1", .vlen = 1};
    kv_op op = {.kind = KV_OP_SET, .key = "a", .klen = 1, .value = "3", .vlen = 1};
    kv_txn_result res;
    cr_assert_eq(kv_client_txn(c, &cmp, 1, &op, 1, NULL, 0, &res), KV_OK);
    cr_assert(res.succeeded);
    uint64_t trev = res.version;
    kv_client_txn_result_free(&res);
    kv_client_close(c);
    for (int i = 0; i < NODES; i++) {
        expect_on(i, "b", "2", mrev);
        expect_on(i, "a", "3", trev);
    }
    expect_same_revision();
    for (int i = 0; i < NODES; i++)
        stop_node(i, SIGTERM);
}

/* PEXPIRETIME of key on node i, read locally (RESP, after READONLY):
 * -2 absent, -1 no expiry, else the expiry time in ms. */
static long long stale_pexpiretime(int i, const char *key)
{
    char req[256], buf[512];
    snprintf(req, sizeof req, "READONLY\r\n*2\r\n$11\r\nPEXPIRETIME\r\n$%zu\r\n%s\r\n",
             strlen(key), key);
    raw_text_exchange(cluster_nodes[i].port, req, buf, sizeof buf);
    cr_assert(strncmp(buf, "+OK\r\n:", 6) == 0, "node %d: %s", i + 1, buf);
    return strtoll(buf + 6, NULL, 10);
}

/* Waits until every node has key with expiry time at (ms; -1: none). */
static void expect_expiry_everywhere(const char *key, long long at)
{
    for (int i = 0; i < NODES; i++) {
        long deadline = now_ms() + 45000;
        long long got;
        while ((got = stale_pexpiretime(i, key)) != at && now_ms() < deadline)
            usleep(20 * 1000);
        cr_assert_eq(got, at, "node %d: %s expires at %lld, the leader said %lld", i + 1, key,
                     got, at);
    }
}

/* A TTL is turned into an expiry time once, on the leader: every node
 * applies the same time (not its own clock plus the TTL). */
Test(cluster, expiry_times_are_the_same_on_every_node)
{
    start_all();
    uint64_t rev = 0;
    int leader = write_somewhere("k", "v", &rev);
    kv_client *c = client(leader);
    uint64_t at = 0;
    cr_assert_eq(kv_client_set_ttl(c, "t", 1, "1", 1, 3600000, NULL), KV_OK);
    cr_assert_eq(kv_client_ttl(c, "t", 1, &at, NULL), KV_OK);
    cr_assert_neq(at, 0);
    expect_expiry_everywhere("t", (long long)at);
    kv_pair pairs[] = {{"m1", 2, "1", 1}, {"m2", 2, "2", 1}};
    cr_assert_eq(kv_client_mset_ttl(c, pairs, 2, 7200000, NULL), KV_OK);
    cr_assert_eq(kv_client_ttl(c, "m2", 2, &at, NULL), KV_OK);
    expect_expiry_everywhere("m1", (long long)at);
    expect_expiry_everywhere("m2", (long long)at);
    cr_assert_eq(kv_client_expire_if(c, "k", 1, 600000, KV_CLIENT_EXPIRE_NX, NULL), KV_OK);
    cr_assert_eq(kv_client_ttl(c, "k", 1, &at, NULL), KV_OK);
    expect_expiry_everywhere("k", (long long)at);
    cr_assert_eq(kv_client_persist(c, "t", 1, NULL), KV_OK);
    expect_expiry_everywhere("t", -1);
    kv_op op = {.kind = KV_OP_SET, .key = "x", .klen = 1, .value = "1", .vlen = 1,
                .expire_at_ms = 4102444800123ull};
    kv_txn_result res;
    cr_assert_eq(kv_client_txn(c, NULL, 0, &op, 1, NULL, 0, &res), KV_OK);
    kv_client_txn_result_free(&res);
    expect_expiry_everywhere("x", 4102444800123ll);
    /* RESP's relative SET ... PX, through the leader */
    char buf[256];
    raw_text_exchange(cluster_nodes[leader].port, "SET r v PX 5000000\r\n", buf, sizeof buf);
    cr_assert(strncmp(buf, "+OK\r\n", 5) == 0, "%s", buf);
    cr_assert_eq(kv_client_ttl(c, "r", 1, &at, NULL), KV_OK);
    expect_expiry_everywhere("r", (long long)at);
    kv_client_close(c);
    expect_same_revision();
    for (int i = 0; i < NODES; i++)
        stop_node(i, SIGTERM);
}

/* Waits until node i's figure name reaches want (45 s), asking on one
 * connection rather than on a new one every 20 ms. */
static void wait_metric(int i, const char *name, uint64_t want)
{
    long deadline = now_ms() + 45000;
    kv_client *c = client(i);
    uint64_t got = 0;
    for (;;) {
        kv_client_metrics m;
        cr_assert_eq(kv_client_metrics_get(c, &m), KV_OK, "node %d", i + 1);
        const kv_client_metric *x = kv_client_metrics_find(&m, NULL, name);
        cr_assert_not_null(x, "no metric %s", name);
        got = x->u;
        kv_client_metrics_free(&m);
        if (got == want || now_ms() >= deadline)
            break;
        usleep(20 * 1000);
    }
    kv_client_close(c);
    cr_assert_eq(got, want, "node %d: %s is %llu, not %llu", i + 1, name,
                 (unsigned long long)got, (unsigned long long)want);
}

/* Sets key with a TTL on the leader (retrying through an election); its
 * expiry time. */
static long long set_ttl_somewhere(const char *key, uint64_t ttl_ms)
{
    long deadline = now_ms() + 15000;
    for (;;) {
        kv_client *c = client(find_leader());
        int rc = kv_client_set_ttl(c, key, strlen(key), "t", 1, ttl_ms, NULL);
        uint64_t at = 0;
        if (rc == KV_OK && ttl_ms > 1000)
            rc = kv_client_ttl(c, key, strlen(key), &at, NULL);
        kv_client_close(c);
        if (rc == KV_OK)
            return (long long)at;
        cr_assert(rc == KV_NOT_LEADER || rc == KV_UNKNOWN_OUTCOME || rc == KV_CONNECT, "%s: %s",
                  key, kv_client_strerror(rc));
        cr_assert(now_ms() < deadline, "no write accepted within 15 s");
        usleep(50 * 1000);
    }
}

/* Removing an expired key is a change of the log like any other (issue
 * 12/15): no node removes one on its own clock; the leader proposes the
 * removals, and a write that meets an expired key judges it by the
 * clock its entry carries, so every node makes the same removals with the
 * same revisions. */
Test(cluster, expired_keys_are_removed_through_the_log_with_the_same_revisions)
{
    start_all();
    uint64_t rev = 0;
    int leader = write_somewhere("k", "v", &rev);
    kv_client *c = client(leader);
    char key[32];
    /* Keys expiring a few ms apart, the last set first, while a follower
     * is stopped: a node that swept on its own clock would remove them
     * one or a few per change as they expire, each change a revision
     * above the last (a Lamport clock: apply.c), and the stopped one all
     * at once after, in a few changes: fewer revisions. */
    int paused = (leader + 1) % NODES;
    for (int i = 0; i < 50; i++) {
        int n = snprintf(key, sizeof key, "t%d", i);
        uint64_t ttl = 300 + 7 * (uint64_t)(49 - i);
        cr_assert_eq(kv_client_set_ttl(c, key, (size_t)n, "x", 1, ttl, NULL), KV_OK);
    }
    cr_assert_eq(kv_client_set_ttl(c, "long", 4, "y", 1, 3600000, NULL), KV_OK);
    kill(cluster_nodes[paused].pid, SIGSTOP);
    cluster_paused[paused] = 1;
    /* once t0 (the last to expire) is gone for the leader's readers and
     * the leader has removed them all, the stopped follower resumes and
     * applies the same removals; then t0..t9 are set again */
    long deadline = now_ms() + 30000;
    kv_value v = {0};
    int got;
    while ((got = kv_client_get(c, "t0", 2, &v)) == KV_OK && now_ms() < deadline) {
        kv_client_value_free(&v);
        usleep(20 * 1000);
    }
    cr_assert_eq(got, KV_NOT_FOUND);
    wait_metric(leader, "keys_with_ttl", 1);
    kill(cluster_nodes[paused].pid, SIGCONT);
    cluster_paused[paused] = 0;
    uint64_t t3 = 0;
    for (int i = 0; i < 10; i++) {
        int n = snprintf(key, sizeof key, "t%d", i);
        cr_assert_eq(kv_client_set(c, key, (size_t)n, "again", 5, i == 3 ? &t3 : NULL), KV_OK);
    }
    /* every expired item removed exactly once, on every node: by the
     * leader's entries or by a set that met it */
    for (int i = 0; i < NODES; i++) {
        wait_metric(i, "keys_with_ttl", 1);
        wait_metric(i, "expired_keys", 50);
    }
    expect_same_revision();
    uint64_t after = 0;
    cr_assert_eq(kv_client_set(c, "after", 5, "1", 1, &after), KV_OK);
    for (int i = 0; i < NODES; i++) {
        expect_on(i, "after", "1", after);
        expect_on(i, "t3", "again", t3);
        cr_assert_eq(node_metric(i, "keys"), 13, "node %d", i + 1); /* k long t0-9 after */
        cr_assert_eq(node_metric(i, "expired_keys"), 50, "node %d", i + 1);
    }
    expect_same_revision();
    kv_client_close(c);
    for (int i = 0; i < NODES; i++)
        stop_node(i, SIGTERM);
}

/* Raw requests (kvcli and libkvclient would follow the leader). */
Test(cluster, followers_refuse_writes_and_linearizable_reads_naming_the_leader)
{
    start_all();
    uint64_t rev;
    int leader = write_somewhere("k", "v", &rev);
    int follower = (leader + 1) % NODES;
    char buf[1024], want[64];
    snprintf(want, sizeof want, "-ERR not the leader: the leader is node %d", leader + 1);
    /* refused at once; the leader is named once the follower's status
     * (refreshed every 20 ms) has seen it */
    long deadline = now_ms() + 10000;
    do {
        raw_text_exchange(cluster_nodes[follower].port, "SET k x\r\n", buf, sizeof buf);
        cr_assert(strncmp(buf, "-ERR not the leader", 19) == 0, "%s", buf);
    } while (strncmp(buf, want, strlen(want)) != 0 && now_ms() < deadline &&
             usleep(20 * 1000) == 0);
    cr_assert(strncmp(buf, want, strlen(want)) == 0, "%s", buf);
    raw_text_exchange(cluster_nodes[follower].port, "GET k\r\n", buf, sizeof buf);
    cr_assert(strncmp(buf, want, strlen(want)) == 0, "%s", buf);
    cr_assert_not_null(strstr(buf, "READONLY"), "the error says how to read here: %s", buf);
    expect_on(follower, "k", "v", rev); /* unchanged; READONLY reads it */
    for (int i = 0; i < NODES; i++)
        stop_node(i, SIGTERM);
}

/* Sends reqs on a new connection to node i; the connection. */
static int http_send(int i, const char *reqs)
{
    int fd = raw_connect(cluster_nodes[i].port, 10000);
    cr_assert_geq(fd, 0);
    cr_assert_eq(raw_send(fd, reqs, strlen(reqs)), 0);
    return fd;
}

/* The next answer on fd: its code must be code and its body contain
 * has (when not NULL); its X-Kvd-Version (0 when none). */
static uint64_t http_expect(int fd, int code, const char *has)
{
    http_resp r;
    char v[32] = "0";
    cr_assert_eq(http_recv(fd, &r, 0), code, "%s%s", r.head, r.body ? (char *)r.body : "");
    if (has)
        cr_assert_not_null(strstr((char *)r.body, has), "%s", r.body);
    http_header(&r, "X-Kvd-Version", v, sizeof v);
    http_resp_free(&r);
    return strtoull(v, NULL, 10);
}

/* ?consistency=serializable: a follower answers from its own store (it
 * has h1 at version v1); the setting is the request's, not the
 * keep-alive connection's; a bad value is refused naming the good ones. */
static void http_serializable_reads_on_a_follower(int follower, uint64_t v1)
{
    int fd = http_send(follower,
                       "GET /v1/keys/h1?consistency=serializable HTTP/1.1\r\n\r\n"
                       "GET /v1/keys/h1 HTTP/1.1\r\n\r\n"
                       "GET /v1/keys?prefix=h&consistency=serializable HTTP/1.1\r\n\r\n"
                       "POST /v1/mget?consistency=serializable HTTP/1.1\r\n"
                       "Content-Length: 17\r\n\r\n{\"keys\":[\"aDE=\"]}"
                       "GET /v1/history/h1?consistency=serializable HTTP/1.1\r\n\r\n"
                       "GET /v1/keys/h1?consistency=linearizable HTTP/1.1\r\n\r\n"
                       "GET /v1/keys/h1?consistency=eventual HTTP/1.1\r\n\r\n"
                       "PUT /v1/keys/h1?consistency=serializable HTTP/1.1\r\n"
                       "Content-Length: 1\r\n\r\nx");
    cr_assert_eq(http_expect(fd, 200, "v1"), v1, "answered here");
    http_expect(fd, 503, "NOT_LEADER"); /* linearizable again: the default */
    http_expect(fd, 200, "\"key\":\"aDE=\"");
    http_expect(fd, 200, "\"value\":\"djE=\"");
    http_expect(fd, 200, "\"events\":[{");
    http_expect(fd, 503, "NOT_LEADER");
    http_expect(fd, 400, "consistency must be linearizable (the default) or serializable");
    http_expect(fd, 400, "a write is always linearizable");
    close(fd);
}

#define HTTP_CLIENT "Kvd-Client-Id: 8214721032\r\n"

/* Kvd-Client-Id / Kvd-Request-Id: a PUT sent again with the same ids, on
 * a new connection, is answered with its first revision and applies
 * nothing (its new body is not written); a new request id is applied;
 * the ids are the request's, not the connection's. */
static void http_writes_with_request_ids_apply_once(int leader)
{
    static const char put1[] = "PUT /v1/keys/once HTTP/1.1\r\n" HTTP_CLIENT
                               "Kvd-Request-Id: 1\r\nContent-Length: 5\r\n\r\nfirst";
    int fd = http_send(leader, put1);
    uint64_t first = http_expect(fd, 200, "\"revision\"");
    close(fd);
    fd = http_send(leader, "PUT /v1/keys/once HTTP/1.1\r\n" HTTP_CLIENT
                           "Kvd-Request-Id: 1\r\nContent-Length: 6\r\n\r\nsecond");
    cr_assert_eq(http_expect(fd, 200, "\"revision\""), first, "the first answer again");
    close(fd);
    cr_assert_eq(node_revision(leader), first, "not applied again");
    fd = http_send(leader, "GET /v1/keys/once HTTP/1.1\r\n\r\n");
    cr_assert_eq(http_expect(fd, 200, "first"), first);
    close(fd);
    fd = http_send(leader,
                   /* a new request id is a new write; the next request,
                    * without ids, is an ordinary one (the client id would
                    * make it request 0 of that client: stale) */
                   "PUT /v1/keys/once HTTP/1.1\r\n" HTTP_CLIENT
                   "Kvd-Request-Id: 2\r\nContent-Length: 5\r\n\r\nthird"
                   "PUT /v1/keys/once HTTP/1.1\r\nContent-Length: 6\r\n\r\nfourth"
                   "DELETE /v1/keys/once HTTP/1.1\r\nKvd-Request-Id: 3\r\n\r\n"
                   "DELETE /v1/keys/once HTTP/1.1\r\nKvd-Client-Id: 0\r\n"
                   "Kvd-Request-Id: 3\r\n\r\n"
                   "DELETE /v1/keys/once HTTP/1.1\r\n" HTTP_CLIENT
                   "Kvd-Request-Id: three\r\n\r\n"
                   "GET /v1/keys/once HTTP/1.1\r\n\r\n");
    cr_assert_eq(http_expect(fd, 200, "\"revision\""), first + 1);
    cr_assert_eq(http_expect(fd, 200, "\"revision\""), first + 2);
    http_expect(fd, 400, "give both Kvd-Client-Id and Kvd-Request-Id, or neither");
    http_expect(fd, 400, "Kvd-Client-Id must be");
    http_expect(fd, 400, "Kvd-Request-Id must be");
    cr_assert_eq(http_expect(fd, 200, "fourth"), first + 2, "the refused ones changed nothing");
    close(fd);
}

/* HTTP goes through the same replication: pipelined requests on the
 * leader, whose writes' answers come later than their reads' would, are
 * answered in order and in HTTP's terms; a follower answers 503
 * NOT_LEADER naming the leader, and serializable reads itself; request
 * ids apply a retried write once. */
Test(cluster, http_requests_are_replicated_in_order)
{
    start_all();
    uint64_t rev;
    int leader = write_somewhere("k", "v", &rev);
    int fd = raw_connect(cluster_nodes[leader].port, 10000);
    cr_assert_geq(fd, 0);
    const char *reqs = "PUT /v1/keys/h1 HTTP/1.1\r\nContent-Length: 2\r\n\r\nv1"
                       "GET /v1/keys/h1 HTTP/1.1\r\n\r\n"
                       "PUT /v1/keys/h1 HTTP/1.1\r\nIf-Match: 1\r\nContent-Length: 2\r\n\r\nv2"
                       "POST /v1/mget HTTP/1.1\r\nContent-Length: 20\r\n\r\n{\"keys\":[\"aDE=\",\"\"]}"
                       "HEAD /v1/keys/h1 HTTP/1.1\r\n\r\n"
                       "DELETE /v1/keys/nope HTTP/1.1\r\n\r\n";
    cr_assert_eq(raw_send(fd, reqs, strlen(reqs)), 0);
    http_resp r;
    char v[32];
    cr_assert_eq(http_recv(fd, &r, 0), 200, "%s", r.head);
    cr_assert(http_header(&r, "X-Kvd-Version", v, sizeof v));
    uint64_t v1 = strtoull(v, NULL, 10);
    cr_assert_gt(v1, rev);
    http_resp_free(&r);
    cr_assert_eq(http_recv(fd, &r, 0), 200, "%s", r.head);
    cr_assert_str_eq((char *)r.body, "v1");
    http_resp_free(&r);
    cr_assert_eq(http_recv(fd, &r, 0), 412, "If-Match: 1 is stale: %s", r.body);
    cr_assert_not_null(strstr((char *)r.body, "VERSION_MISMATCH"));
    http_resp_free(&r);
    cr_assert_eq(http_recv(fd, &r, 0), 400, "an empty key: %s", r.body);
    http_resp_free(&r);
    cr_assert_eq(http_recv(fd, &r, 1), 200, "%s", r.head);
    cr_assert(http_header(&r, "ETag", v, sizeof v));
    http_resp_free(&r);
    cr_assert_eq(http_recv(fd, &r, 0), 200, "%s", r.head);
    cr_assert_str_eq((char *)r.body, "{\"deleted\":\"0\"}\n");
    http_resp_free(&r);
    close(fd);
    for (int i = 0; i < NODES; i++)
        expect_on(i, "h1", "v1", v1);
    int follower = (leader + 1) % NODES;
    const char *get = "GET /v1/keys/h1 HTTP/1.1\r\n\r\n";
    char want[64];
    snprintf(want, sizeof want, "the leader is node %d", leader + 1);
    /* A follower names the leader once its status has seen it (refreshed
     * every 20 ms): until then it says no leader is known. */
    long deadline = now_ms() + 5000;
    for (;;) {
        fd = raw_connect(cluster_nodes[follower].port, 10000);
        cr_assert_geq(fd, 0);
        cr_assert_eq(raw_send(fd, get, strlen(get)), 0);
        cr_assert_eq(http_recv(fd, &r, 0), 503, "%s", r.head);
        close(fd);
        if (strstr((char *)r.body, want) || now_ms() > deadline ||
            !strstr((char *)r.body, "no leader is known"))
            break;
        http_resp_free(&r);
        usleep(20 * 1000);
    }
    cr_assert_not_null(strstr((char *)r.body, want), "%s", r.body);
    cr_assert_not_null(strstr((char *)r.body, "consistency=serializable"), "%s", r.body);
    http_resp_free(&r);

    http_serializable_reads_on_a_follower(follower, v1);
    http_writes_with_request_ids_apply_once(leader);
    for (int i = 0; i < NODES; i++)
        stop_node(i, SIGTERM);
}

/* libkvclient (and so kvcli) connected to a follower finds the leader
 * from the NOT_LEADER detail and goes on there: writes and reads work. */
Test(cluster, a_client_of_a_follower_follows_the_leader)
{
    start_all();
    uint64_t rev;
    int leader = write_somewhere("k", "v", &rev);
    /* the leader says where clients reach it once its entry is applied */
    int follower = (leader + 1) % NODES;
    kv_client *c = client(follower);
    long deadline = now_ms() + 10000;
    int rc;
    uint64_t rev2 = 0;
    while ((rc = kv_client_set(c, "via", 3, "follower", 8, &rev2)) == KV_NOT_LEADER &&
           now_ms() < deadline) {
        usleep(20 * 1000);
        kv_client_close(c);
        c = client(follower);
    }
    cr_assert_eq(rc, KV_OK, "%s", kv_client_last_error(c));
    cr_assert_gt(rev2, rev);
    kv_value v;
    cr_assert_eq(kv_client_get(c, "via", 3, &v), KV_OK);
    cr_assert_eq(v.version, rev2);
    kv_client_value_free(&v);
    kv_client_close(c);
    for (int i = 0; i < NODES; i++)
        stop_node(i, SIGTERM);
}

Test(cluster, a_client_given_every_node_survives_the_leader_s_death)
{
    start_all();
    uint64_t rev;
    int leader = write_somewhere("k", "v", &rev);
    /* connected to the leader, the other nodes as endpoints */
    char list[200] = "";
    for (int i = 0; i < NODES; i++)
        if (i != leader) {
            size_t n = strlen(list);
            snprintf(list + n, sizeof list - n, "%s127.0.0.1:%d", n ? "," : "",
                     cluster_nodes[i].port);
        }
    kv_client *c = client(leader);
    cr_assert_eq(kv_client_set_endpoints(c, "127.0.0.1:0"), KV_INVALID_ARGUMENT);
    cr_assert_eq(kv_client_set_endpoints(c, "::1:7379"), KV_INVALID_ARGUMENT);
    cr_assert_eq(kv_client_set_endpoints(c, list), KV_OK);
    cr_assert_eq(kv_client_set_retries(c, 30), KV_OK, "%s", kv_client_last_error(c));
    uint64_t r1 = 0, r2 = 0;
    cr_assert_eq(kv_client_set(c, "before", 6, "1", 1, &r1), KV_OK, "%s",
                 kv_client_last_error(c));
    stop_node(leader, SIGKILL);
    /* the connection is lost and the leader's address refuses: the write
     * goes again through an endpoint, which names the new leader */
    int rc = kv_client_set(c, "after", 5, "2", 1, &r2);
    cr_assert_eq(rc, KV_OK, "the write reached the new leader: %s", kv_client_last_error(c));
    cr_assert_gt(r2, r1);
    int now = find_leader();
    cr_assert_neq(now, leader);
    expect_on(now, "after", "2", r2);
    expect_on(now, "before", "1", r1);
    kv_client_close(c);
    /* every endpoint down: one clear error naming the addresses tried */
    kv_client_options o;
    kv_client_options_init(&o);
    o.port = (uint16_t)cluster_nodes[leader].port;
    kv_client *d = NULL;
    cr_assert_eq(kv_client_new(&o, &d), KV_OK);
    char dead[64];
    snprintf(dead, sizeof dead, "127.0.0.1:%d", cluster_nodes[leader].port);
    cr_assert_eq(kv_client_set_endpoints(d, dead), KV_OK);
    cr_assert_eq(kv_client_connect(d), KV_CONNECT);
    cr_assert(strstr(kv_client_last_error(d), "cannot connect to 127.0.0.1:"),
              "%s", kv_client_last_error(d));
    kv_client_close(d);
    for (int i = 0; i < NODES; i++)
        if (i != leader)
            stop_node(i, SIGTERM);
}

Test(cluster, killing_the_leader_loses_no_acknowledged_write)
{
    start_all();
    uint64_t rev[20];
    char key[16];
    int leader = -1;
    for (int n = 0; n < 20; n++) {
        snprintf(key, sizeof key, "before%d", n);
        leader = write_somewhere(key, "x", &rev[n]);
    }
    stop_node(leader, SIGKILL);
    uint64_t after_rev;
    int next = write_somewhere("after", "y", &after_rev);
    cr_assert_neq(next, leader);
    cr_assert_gt(after_rev, rev[19]);
    for (int i = 0; i < NODES; i++) {
        if (i == leader)
            continue;
        for (int n = 0; n < 20; n++) {
            snprintf(key, sizeof key, "before%d", n);
            expect_on(i, key, "x", rev[n]);
        }
        expect_on(i, "after", "y", after_rev);
    }
    /* the old leader comes back as a follower and catches up */
    start_node(leader);
    expect_on(leader, "after", "y", after_rev);
    expect_same_revision();
    for (int i = 0; i < NODES; i++)
        stop_node(i, SIGTERM);
}

Test(cluster, a_restarted_cluster_has_every_acknowledged_write)
{
    start_all();
    uint64_t r1, r2;
    write_somewhere("one", "1", &r1);
    write_somewhere("two", "2", &r2);
    for (int i = 0; i < NODES; i++)
        stop_node(i, SIGTERM);
    start_all();
    for (int i = 0; i < NODES; i++) {
        expect_on(i, "one", "1", r1);
        expect_on(i, "two", "2", r2);
    }
    uint64_t r3;
    write_somewhere("three", "3", &r3);
    cr_assert_gt(r3, r2, "revisions go on from where they were");
    for (int i = 0; i < NODES; i++)
        stop_node(i, SIGTERM);
}

/* With a snapshot every 16 entries, a follower killed early is far
 * behind the leader's log: it comes back by installing a snapshot (keys
 * deleted meanwhile go, every key keeps its revision and its expiry
 * time), and a restarted
 * cluster recovers from its snapshots and the log after them. */
Test(cluster, a_follower_far_behind_installs_a_snapshot)
{
    cluster_snapshot_entries = "16";
    start_all();
    uint64_t rev, early;
    int leader = write_somewhere("early", "1", &early);
    for (int n = 0; n < 10; n++) {
        char key[16];
        snprintf(key, sizeof key, "gone%d", n);
        write_somewhere(key, "x", &rev);
    }
    int lagging = (leader + 1) % NODES;
    expect_on(lagging, "gone9", "x", rev);
    stop_node(lagging, SIGKILL);
    /* keys with expiry times reach it in the snapshot with their times;
     * one expires at once (removed by the leader, before or after the
     * snapshot: either way the follower holds what the others hold) */
    long long ttl_at = set_ttl_somewhere("ttl", 3600000);
    set_ttl_somewhere("brief", 1);
    /* writes retried through elections (a slow machine may change
     * leaders): each key's revision is that of its last acknowledged set */
    uint64_t k19 = 0, k0 = 0;
    for (int n = 0; n < 100; n++) {
        char key[16], val[16];
        snprintf(key, sizeof key, "k%d", n % 40);
        snprintf(val, sizeof val, "v%d", n);
        write_somewhere(key, val, n % 40 == 19 ? &k19 : n % 40 == 0 ? &k0 : &rev);
    }
    for (int n = 0; n < 10; n++) {
        char key[16];
        snprintf(key, sizeof key, "gone%d", n);
        long deadline = now_ms() + 15000;
        int rc;
        do { /* NOT_FOUND: an earlier try with an unknown outcome did it */
            kv_client *c = client(find_leader());
            rc = kv_client_del(c, key, strlen(key), NULL);
            kv_client_close(c);
        } while (rc != KV_OK && rc != KV_NOT_FOUND && now_ms() < deadline &&
                 usleep(50 * 1000) == 0);
        cr_assert(rc == KV_OK || rc == KV_NOT_FOUND, "delete %s: %s", key,
                  kv_client_strerror(rc));
    }
    uint64_t last = node_revision(find_leader());
    start_node(lagging);
    expect_on(lagging, "k19", "v99", k19);
    expect_on(lagging, "early", "1", early);
    char got[64];
    long deadline = now_ms() + 10000;
    while (stale_get(lagging, "gone0", got, sizeof got) && now_ms() < deadline)
        usleep(20 * 1000);
    cr_assert_eq(stale_get(lagging, "gone0", got, sizeof got), 0, "a deleted key is gone");
    cr_assert_eq(stale_pexpiretime(lagging, "ttl"), ttl_at);
    for (int i = 0; i < NODES; i++)
        wait_metric(i, "keys_with_ttl", 1); /* brief removed everywhere */
    expect_same_revision();
    cr_assert(file_has(cluster_nodes[lagging].log, "installed a snapshot"), "it installed one");
    /* the whole cluster restarted: snapshots, then the log after them */
    for (int i = 0; i < NODES; i++)
        stop_node(i, SIGTERM);
    start_all();
    uint64_t after;
    write_somewhere("after", "restart", &after);
    cr_assert_gt(after, last, "revisions go on from the snapshot's");
    for (int i = 0; i < NODES; i++)
        expect_on(i, "k0", "v80", k0);
    expect_same_revision();
    for (int i = 0; i < NODES; i++)
        stop_node(i, SIGTERM);
}

/* Membership at run time: a fourth node started with --cluster-join is
 * added (it catches up and becomes a voter), leadership is transferred,
 * the node is removed; CLUSTER status shows each step. */
Test(cluster, nodes_are_added_and_removed_and_leadership_moves)
{
    start_all();
    uint64_t rev;
    write_somewhere("before", "join", &rev);
    start_node(3);
    int leader = find_leader();
    kv_client *c = client(leader);
    char addr[64];
    snprintf(addr, sizeof addr, "127.0.0.1:%d", cluster_raft_base + 4);
    cr_assert_eq(kv_client_cluster(c, "add", 4, addr, NULL), KV_OK, "%s", kv_client_last_error(c));
    char *json = NULL;
    cr_assert_eq(kv_client_cluster(c, "status", 0, NULL, &json), KV_OK);
    cr_assert_not_null(strstr(json, "\"id\":4"), "%s", json);
    cr_assert_not_null(strstr(json, "\"role\":\"leader\""), "%s", json);
    free(json);
    kv_client_close(c);
    expect_on(3, "before", "join", rev); /* it caught up */
    uint64_t rev2;
    write_somewhere("after", "join", &rev2);
    expect_on(3, "after", "join", rev2);

    /* leadership to node 4 */
    c = client(leader);
    cr_assert_eq(kv_client_cluster(c, "transfer", 4, NULL, NULL), KV_OK, "%s",
                 kv_client_last_error(c));
    kv_client_close(c);
    long deadline = now_ms() + 10000;
    while (node_metric(3, "cluster_role") != 2 && now_ms() < deadline)
        usleep(20 * 1000);
    cr_assert_eq(node_metric(3, "cluster_role"), 2, "node 4 leads");

    /* back to node 1 (asked on a follower: the client follows the leader),
     * then node 4 is removed */
    int rc;
    deadline = now_ms() + 10000;
    do { /* until node 4 has said where clients reach it */
        c = client(1);
        rc = kv_client_cluster(c, "transfer", 1, NULL, NULL);
        kv_client_close(c);
    } while (rc == KV_NOT_LEADER && now_ms() < deadline && usleep(20 * 1000) == 0);
    cr_assert_eq(rc, KV_OK, "transfer: %s", kv_client_strerror(rc));
    deadline = now_ms() + 10000;
    while (node_metric(0, "cluster_role") != 2 && now_ms() < deadline)
        usleep(20 * 1000);
    cr_assert_eq(node_metric(0, "cluster_role"), 2, "node 1 leads");
    c = client(0);
    cr_assert_eq(kv_client_cluster(c, "remove", 4, NULL, NULL), KV_OK, "%s",
                 kv_client_last_error(c));
    deadline = now_ms() + 5000;
    int gone = 0;
    while (!gone && now_ms() < deadline) {
        cr_assert_eq(kv_client_cluster(c, "status", 0, NULL, &json), KV_OK);
        gone = strstr(json, "\"id\":4") == NULL;
        free(json);
        usleep(20 * 1000);
    }
    cr_assert(gone, "node 4 left the configuration");
    kv_client_close(c);
    uint64_t rev3;
    write_somewhere("after", "leave", &rev3);
    for (int i = 0; i < NODES; i++)
        expect_on(i, "after", "leave", rev3);
    for (int i = 0; i < MAX_NODES; i++)
        stop_node(i, SIGTERM);
}

Test(cluster, a_single_server_refuses_cluster_operations)
{
    kvd_start(NULL);
    kv_client *c = test_client(NULL);
    cr_assert_eq(kv_client_cluster(c, "status", 0, NULL, NULL), KV_UNSUPPORTED);
    cr_assert_not_null(strstr(kv_client_last_error(c), "not a cluster node"));
    kv_client_close(c);
    kvd_stop();
}

/* A leader paused with SIGSTOP (a long GC pause, a stalled VM): the
 * others elect a new leader and go on; resumed, the old leader finds
 * itself deposed, catches up and serves the writes made meanwhile; no
 * acknowledged write is lost. */
Test(cluster, a_paused_leader_is_replaced_and_catches_up)
{
    start_all();
    uint64_t before, during, after;
    int old = write_somewhere("before", "pause", &before);
    kill(cluster_nodes[old].pid, SIGSTOP);
    cluster_paused[old] = 1;
    int next = write_somewhere("during", "pause", &during);
    cr_assert_neq(next, old);
    kill(cluster_nodes[old].pid, SIGCONT);
    cluster_paused[old] = 0;
    write_somewhere("after", "pause", &after);
    cr_assert_gt(after, during);
    for (int i = 0; i < NODES; i++) {
        expect_on(i, "before", "pause", before);
        expect_on(i, "during", "pause", during);
        expect_on(i, "after", "pause", after);
    }
    expect_same_revision();
    for (int i = 0; i < NODES; i++)
        stop_node(i, SIGTERM);
}

/* A leader stopped with SIGTERM while writes are in flight exits
 * cleanly (stop_node checks exit status 0). It used to abort now and
 * then: kvd closed Raft from inside the apply callback of the last write
 * in flight, and when that apply came from the leader's own log write
 * completing, libraft 0.15 finalized the log segment a second time on
 * return (uv_poll_stop: Assertion `!uv__is_closing(handle)' failed). A
 * round pipelines many writes to the leader, waits for the first answer
 * (so the rest are being proposed), and stops the leader at once. */
Test(cluster, a_leader_stopped_with_writes_in_flight_exits_cleanly)
{
    enum { WRITES = 4000, ROUNDS = 5 };
    size_t cap = (size_t)WRITES * 48, len = 0;
    char *pipeline = malloc(cap);
    cr_assert_not_null(pipeline);
    for (int n = 0; n < WRITES; n++)
        len += (size_t)snprintf(pipeline + len, cap - len,
                                "*3\r\n$3\r\nSET\r\n$8\r\nk%07d\r\n$1\r\nv\r\n", n);
    start_all();
    uint64_t rev;
    write_somewhere("ready", "x", &rev);
    for (int round = 0; round < ROUNDS; round++) {
        int leader = find_leader();
        int fd = raw_connect(cluster_nodes[leader].port, 5000);
        cr_assert(fd >= 0);
        cr_assert_eq(raw_send(fd, pipeline, len), 0);
        char first[8];
        size_t got = 0;
        while (got < 5) {
            ssize_t k = recv(fd, first + got, 5 - got, 0);
            cr_assert(k > 0, "node %d closed the connection before answering", leader + 1);
            got += (size_t)k;
        }
        cr_assert(memcmp(first, "+OK\r\n", 5) == 0, "node %d: %.5s", leader + 1, first);
        stop_node(leader, SIGTERM);
        close(fd);
        start_node(leader);
        write_somewhere("ready", "x", &rev);
    }
    free(pipeline);
    expect_same_revision();
    for (int i = 0; i < NODES; i++)
        stop_node(i, SIGTERM);
}
