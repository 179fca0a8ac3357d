/*
 * test_cluster_clients.c - libkvclient (and kvcli) against a real
 * three-node cluster (cluster.h) when nodes go away (issue 15):
 *
 *  - pipelines retried request by request: a pipeline of writes whose
 *    leader is killed (SIGKILL) while they are in flight is sent again,
 *    with the same request ids, to the new leader and applied exactly
 *    once (the store's revision counts every write once; compare-and-
 *    swaps never fail on their own earlier application); a pipeline sent
 *    to a follower follows the leader; without retries the writes of an
 *    interrupted pipeline report an unknown outcome and are not resent;
 *  - learning the members (kv_client_sync_endpoints): a client given one
 *    node learns the others, and survives that node's death; a sync sees
 *    a node added and removed; a single kvd answers UNSUPPORTED; kvcli
 *    --endpoints with one node survives its loss at the prompt.
 */
#include <criterion/criterion.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "cluster.h"

static void setup(void)
{
    cluster_setup(0);
}

TestSuite(cluster_clients, .init = setup, .fini = cluster_teardown, .timeout = 300);

/* ---- helpers ------------------------------------------------------------------ */

/* "127.0.0.1:P,..." of the live nodes among the first n, except `skip`. */
static void node_list(char *out, size_t cap, int n, int skip)
{
    out[0] = '\0';
    for (int i = 0; i < n; i++)
        if (i != skip && cluster_nodes[i].pid > 0) {
            size_t len = strlen(out);
            snprintf(out + len, cap - len, "%s127.0.0.1:%d", len ? "," : "",
                     cluster_nodes[i].port);
        }
}

/* Whether the endpoint list "a,b,c" holds 127.0.0.1:port. */
static int lists(const char *list, int port)
{
    char want[32];
    snprintf(want, sizeof want, "127.0.0.1:%d", port);
    size_t n = strlen(want);
    for (const char *p = list; (p = strstr(p, want)) != NULL; p += n)
        if ((p == list || p[-1] == ',') && (p[n] == ',' || p[n] == '\0'))
            return 1;
    return 0;
}

/* How many members node i's CLUSTER status gives a client address. */
static int addresses_known(int i)
{
    kv_client *c = client(i);
    char *json = NULL;
    cr_assert_eq(kv_client_cluster(c, "status", 0, NULL, &json), KV_OK, "%s",
                 kv_client_last_error(c));
    int n = 0;
    for (const char *p = json; (p = strstr(p, "\"client\":\"")) != NULL; p++)
        n++;
    free(json);
    kv_client_close(c);
    return n;
}

/* Waits (15 s at most) until node i knows where clients reach n members:
 * each follower tells the leader through its client port. */
static void wait_addresses(int i, int n)
{
    long deadline = now_ms() + 15000;
    while (addresses_known(i) < n && now_ms() < deadline)
        usleep(50 * 1000);
    cr_assert_eq(addresses_known(i), n, "node %d knows where clients reach %d members", i + 1,
                 n);
}

/* Makes node `want` the leader (a transfer, asked of the leader). */
static void make_leader(int want)
{
    long deadline = now_ms() + 20000;
    while (find_leader() != want) {
        cr_assert(now_ms() < deadline, "node %d never became leader", want + 1);
        kv_client *c = client(find_leader());
        int rc = kv_client_cluster(c, "transfer", (uint64_t)want + 1, NULL, NULL);
        kv_client_close(c);
        cr_assert(rc == KV_OK || rc == KV_NOT_LEADER, "transfer: %s", kv_client_strerror(rc));
        long until = now_ms() + 5000;
        while (node_metric(want, "cluster_role") != 2 && now_ms() < until)
            usleep(20 * 1000);
    }
}

/* ---- pipelines through a leader's death ---------------------------------------- */

#define NSET 200 /* SETs of distinct keys                              */
#define NCAS 50  /* compare-and-swaps, one every NSET / NCAS SETs         */
#define NREQ (NSET + NCAS)

typedef struct piped {
    kv_client_pipeline *p;
    int rc;
} piped;

static void *exec_thread(void *arg)
{
    piped *x = arg;
    x->rc = kv_client_pipeline_exec(x->p);
    return NULL;
}

/* Request k of the pipeline: its key and the value it writes; 1 for a
 * compare-and-swap. */
static int request_of(int k, char *key, size_t kcap, char *val, size_t vcap)
{
    int every = NSET / NCAS + 1; /* SET, SET, SET, SET, CAS, ... */
    if (k % every == every - 1) {
        snprintf(key, kcap, "cas%d", k / every);
        snprintf(val, vcap, "swapped%d", k / every);
        return 1;
    }
    snprintf(key, kcap, "k%d", k - k / every);
    snprintf(val, vcap, "v%d", k - k / every);
    return 0;
}

/* The cluster's leader with the compare-and-swap keys written (versions
 * in cas_ver), and a pipeline of NREQ writes on *out_c (connected to the
 * leader: retries, and the other nodes as endpoints, when `retries`). */
static int prepare(int retries, uint64_t *cas_ver, kv_client **out_c, kv_client_pipeline **out_p)
{
    uint64_t r;
    int leader = write_somewhere("warm", "up", &r);
    kv_client *c = client(leader);
    for (int j = 0; j < NCAS; j++) {
        char key[16];
        snprintf(key, sizeof key, "cas%d", j);
        int rc = kv_client_set(c, key, strlen(key), "0", 1, &cas_ver[j]);
        cr_assert_eq(rc, KV_OK, "%s: %s", key, kv_client_last_error(c));
    }
    if (retries) {
        char eps[256];
        node_list(eps, sizeof eps, NODES, leader);
        cr_assert_eq(kv_client_set_endpoints(c, eps), KV_OK);
        cr_assert_eq(kv_client_set_retries(c, retries), KV_OK, "%s", kv_client_last_error(c));
    }
    kv_client_pipeline *p;
    cr_assert_eq(kv_client_pipeline_new(c, &p), KV_OK);
    for (int k = 0; k < NREQ; k++) {
        char key[16], val[16];
        if (request_of(k, key, sizeof key, val, sizeof val))
            cr_assert_eq(kv_client_pipeline_set_if(p, key, strlen(key), val, strlen(val),
                                                   cas_ver[atoi(key + 3)]),
                         KV_OK);
        else
            cr_assert_eq(kv_client_pipeline_set(p, key, strlen(key), val, strlen(val)), KV_OK);
    }
    *out_c = c;
    *out_p = p;
    return leader;
}

/* With the followers stopped the leader proposes every write of the
 * pipeline but commits none; then it is killed and the followers
 * resumed: they may hold some or all of its entries (sent to them before
 * they were resumed) and commit them under a new leader, without the
 * client having heard. Returns the exec's status. */
static int exec_through_a_kill(int leader, kv_client_pipeline *p)
{
    uint64_t proposed = node_metric(leader, "cluster_proposals");
    for (int i = 0; i < NODES; i++)
        if (i != leader) {
            kill(cluster_nodes[i].pid, SIGSTOP);
            cluster_paused[i] = 1;
        }
    piped x = {.p = p};
    pthread_t t;
    cr_assert_eq(pthread_create(&t, NULL, exec_thread, &x), 0);
    long deadline = now_ms() + 15000;
    while (node_metric(leader, "cluster_proposals") < proposed + NREQ && now_ms() < deadline)
        usleep(5 * 1000);
    cr_assert_geq(node_metric(leader, "cluster_proposals"), proposed + NREQ,
                  "the leader proposed the pipeline's writes");
    stop_node(leader, SIGKILL);
    for (int i = 0; i < NODES; i++)
        if (i != leader) {
            kill(cluster_nodes[i].pid, SIGCONT);
            cluster_paused[i] = 0;
        }
    pthread_join(t, NULL);
    return x.rc;
}

Test(cluster_clients, pipelined_writes_through_the_leader_s_death_are_applied_once)
{
    start_all();
    uint64_t cas_ver[NCAS];
    kv_client *c;
    kv_client_pipeline *p;
    int leader = prepare(30, cas_ver, &c, &p);
    uint64_t base = node_revision(leader);
    int rc = exec_through_a_kill(leader, p);
    cr_assert_eq(rc, KV_OK, "every request answered: %s", kv_client_last_error(c));
    cr_assert_eq(kv_client_pipeline_replies(p), NREQ);
    cr_assert_geq(kv_client_retried(c), 1, "writes were sent again");
    int now = find_leader();
    cr_assert_neq(now, leader);
    kv_client *d = client(now);
    uint64_t prev = 0;
    int acked = 0, unknown = 0;
    for (int k = 0; k < NREQ; k++) {
        char key[16], val[16];
        int cas = request_of(k, key, sizeof key, val, sizeof val);
        const kv_client_reply *r = kv_client_pipeline_reply(p, (size_t)k);
        cr_assert_eq(r->op, KV_CLIENT_OP_SET, "reply %d answers request %d", k, k);
        /* never VERSION_MISMATCH: a compare-and-swap applied twice would
         * fail the second time */
        cr_assert(r->status == KV_OK || r->status == KV_UNKNOWN_OUTCOME,
                  "request %d (%s): %s", k, key, kv_client_status_name(r->status));
        kv_value v;
        cr_assert_eq(kv_client_get(d, key, strlen(key), &v), KV_OK, "%s is there", key);
        cr_assert_eq(v.len, strlen(val));
        cr_assert(memcmp(v.data, val, v.len) == 0, "%s has the value written", key);
        if (r->status == KV_OK) {
            /* acknowledged: present with the revision it was answered,
             * and in request order */
            cr_assert_eq(v.version, r->version, "%s at revision %llu, acknowledged at %llu", key,
                         (unsigned long long)v.version, (unsigned long long)r->version);
            cr_assert_gt(r->version, prev, "request %d applied after the ones before it", k);
            prev = r->version;
            acked++;
        } else {
            /* applied before a later request of the client: kept once */
            cr_assert_leq(v.version, base + NREQ);
            unknown++;
        }
        if (cas)
            cr_assert_gt(v.version, cas_ver[atoi(key + 3)]);
        kv_client_value_free(&v);
    }
    /* one revision per write: none applied twice, none lost */
    cr_assert_eq(node_revision(now), base + NREQ, "revision %llu, expected %llu",
                 (unsigned long long)node_revision(now), (unsigned long long)(base + NREQ));
    fprintf(stderr, "pipeline through a leader kill: %d acknowledged, %d UNKNOWN_OUTCOME, "
                    "%u sent again\n",
            acked, unknown, kv_client_retried(c));
    /* the cluster keeps each client's last KVD_SESSIONS_WINDOW (256)
     * request ids with their replies: a pipeline of 250 gets every first
     * answer back */
    cr_assert_eq(unknown, 0, "every write answered with its first outcome");
    cr_assert_eq(acked, NREQ);
    kv_client_close(d);
    kv_client_pipeline_free(p);
    kv_client_close(c);
    expect_same_revision();
    for (int i = 0; i < NODES; i++)
        stop_node(i, SIGTERM);
}

Test(cluster_clients, without_retries_an_interrupted_pipeline_reports_unknown_outcomes)
{
    start_all();
    uint64_t cas_ver[NCAS];
    kv_client *c;
    kv_client_pipeline *p;
    int leader = prepare(0, cas_ver, &c, &p);
    int rc = exec_through_a_kill(leader, p);
    cr_assert(rc == KV_CLOSED || rc == KV_IO, "the connection was lost: %s (%s)",
              kv_client_status_name(rc), kv_client_last_error(c));
    cr_assert_eq(kv_client_pipeline_replies(p), NREQ, "the replies are there");
    for (int k = 0; k < NREQ; k++) {
        const kv_client_reply *r = kv_client_pipeline_reply(p, (size_t)k);
        cr_assert_eq(r->status, KV_UNKNOWN_OUTCOME, "request %d: %s", k,
                     kv_client_status_name(r->status));
    }
    cr_assert_eq(kv_client_retried(c), 0, "nothing sent again");
    cr_assert(!kv_client_is_connected(c), "no new connection was made");
    kv_client_pipeline_free(p);
    kv_client_close(c);
    /* whatever the new leader holds, it holds once */
    int now = find_leader();
    cr_assert_neq(now, leader);
    expect_same_revision();
    for (int i = 0; i < NODES; i++)
        stop_node(i, SIGTERM);
}

Test(cluster_clients, a_pipeline_sent_to_a_follower_is_redirected_and_applied)
{
    start_all();
    uint64_t cas_ver[NCAS], rev;
    int leader = write_somewhere("first", "1", &rev);
    int f = (leader + 1) % NODES;
    expect_on(f, "first", "1", rev); /* it knows where the leader is */
    kv_client *lc = client(leader);
    for (int j = 0; j < NCAS; j++) {
        char key[16];
        snprintf(key, sizeof key, "cas%d", j);
        cr_assert_eq(kv_client_set(lc, key, strlen(key), "0", 1, &cas_ver[j]), KV_OK);
    }
    kv_client_close(lc);
    kv_client *c = client(f); /* no retries, no endpoints */
    kv_client_pipeline *p;
    cr_assert_eq(kv_client_pipeline_new(c, &p), KV_OK);
    for (int k = 0; k < NREQ; k++) {
        char key[16], val[16];
        if (request_of(k, key, sizeof key, val, sizeof val))
            kv_client_pipeline_set_if(p, key, strlen(key), val, strlen(val),
                                      cas_ver[atoi(key + 3)]);
        else
            kv_client_pipeline_set(p, key, strlen(key), val, strlen(val));
    }
    kv_client_pipeline_get(p, "k0", 2);
    cr_assert_eq(kv_client_pipeline_exec(p), KV_OK, "%s", kv_client_last_error(c));
    uint64_t prev = rev;
    for (int k = 0; k < NREQ; k++) {
        const kv_client_reply *r = kv_client_pipeline_reply(p, (size_t)k);
        cr_assert_eq(r->status, KV_OK, "request %d: %s", k, kv_client_status_name(r->status));
        cr_assert_gt(r->version, prev, "in request order");
        prev = r->version;
    }
    const kv_client_reply *g = kv_client_pipeline_reply(p, NREQ);
    cr_assert_eq(g->op, KV_CLIENT_OP_GET);
    cr_assert_eq(g->status, KV_OK);
    cr_assert_eq(g->value.len, 2);
    cr_assert(memcmp(g->value.data, "v0", 2) == 0, "the read follows the writes before it");
    cr_assert_eq(kv_client_retried(c), 0, "refused requests are not retries");
    /* every write applied, once, on every node */
    for (int k = 0; k < NREQ; k += 7) {
        char key[16], val[16];
        request_of(k, key, sizeof key, val, sizeof val);
        expect_on(leader, key, val, kv_client_pipeline_reply(p, (size_t)k)->version);
    }
    cr_assert_eq(node_revision(leader), prev, "nothing else was applied");
    kv_client_pipeline_free(p);
    kv_client_close(c);
    expect_same_revision();
    for (int i = 0; i < NODES; i++)
        stop_node(i, SIGTERM);
}

/* ---- learning the members --------------------------------------------------------- */

Test(cluster_clients, a_client_given_one_node_learns_the_others_and_survives_its_loss)
{
    start_all();
    uint64_t rev;
    write_somewhere("k", "v", &rev);
    wait_addresses(0, NODES); /* every node said where clients reach it */
    make_leader(0);
    kv_client_options o;
    kv_client_options_init(&o);
    o.port = (uint16_t)cluster_nodes[0].port;
    o.io_timeout_ms = 10000;
    kv_client *c;
    cr_assert_eq(kv_client_new(&o, &c), KV_OK);
    char one[32], list[256];
    snprintf(one, sizeof one, "127.0.0.1:%d", cluster_nodes[0].port);
    cr_assert_eq(kv_client_set_endpoints(c, one), KV_OK);
    cr_assert_eq(kv_client_get_endpoints(c, list, sizeof list), (int)strlen(one));
    cr_assert_str_eq(list, one);
    cr_assert_eq(kv_client_set_retries(c, 30), KV_OK);
    cr_assert_eq(kv_client_connect(c), KV_OK, "%s", kv_client_last_error(c));
    /* the connect learned the members */
    cr_assert_geq(kv_client_synced(c), 1);
    int len = kv_client_get_endpoints(c, list, sizeof list);
    cr_assert(len > 0 && (size_t)len < sizeof list);
    for (int i = 0; i < NODES; i++)
        cr_assert(lists(list, cluster_nodes[i].port), "node %d in %s", i + 1, list);
    cr_assert_eq(kv_client_sync_endpoints(c), KV_OK, "%s", kv_client_last_error(c));
    uint64_t r1 = 0, r2 = 0;
    cr_assert_eq(kv_client_set(c, "before", 6, "1", 1, &r1), KV_OK, "%s",
                 kv_client_last_error(c));
    /* the only node it was given dies */
    stop_node(0, SIGKILL);
    cr_assert_eq(kv_client_set(c, "after", 5, "2", 1, &r2), KV_OK, "the write reached the "
                 "new leader: %s", kv_client_last_error(c));
    cr_assert_gt(r2, r1);
    int now = find_leader();
    cr_assert_neq(now, 0);
    expect_on(now, "after", "2", r2);
    expect_on(now, "before", "1", r1);
    /* synced again after the failover: node 1 is still a member (the
     * configuration keeps it while it is down) */
    len = kv_client_get_endpoints(c, list, sizeof list);
    cr_assert(lists(list, cluster_nodes[now].port), "%s", list);
    kv_client_close(c);
    for (int i = 1; i < NODES; i++)
        stop_node(i, SIGTERM);
}

Test(cluster_clients, a_sync_sees_members_added_and_removed)
{
    start_all();
    uint64_t rev;
    write_somewhere("before", "join", &rev);
    start_node(3);
    int leader = find_leader();
    kv_client *lc = client(leader);
    char addr[64];
    snprintf(addr, sizeof addr, "127.0.0.1:%d", cluster_raft_base + 4);
    cr_assert_eq(kv_client_cluster(lc, "add", 4, addr, NULL), KV_OK, "%s",
                 kv_client_last_error(lc));
    kv_client_close(lc);

    /* a client of node 1, without automatic sync: its list stays as
     * given until it asks */
    kv_client_options o;
    kv_client_options_init(&o);
    o.port = (uint16_t)cluster_nodes[0].port;
    o.io_timeout_ms = 10000;
    kv_client *c;
    cr_assert_eq(kv_client_new(&o, &c), KV_OK);
    char one[32], list[256];
    snprintf(one, sizeof one, "127.0.0.1:%d", cluster_nodes[0].port);
    cr_assert_eq(kv_client_set_endpoints(c, one), KV_OK);
    cr_assert_eq(kv_client_set_auto_sync(c, 2), KV_INVALID_ARGUMENT);
    cr_assert_eq(kv_client_set_auto_sync(c, 0), KV_OK);
    cr_assert_eq(kv_client_connect(c), KV_OK, "%s", kv_client_last_error(c));
    cr_assert_eq(kv_client_synced(c), 0);
    kv_client_get_endpoints(c, list, sizeof list);
    cr_assert_str_eq(list, one, "not synced");
    /* node 4 tells the leader where clients reach it once it follows */
    long deadline = now_ms() + 15000;
    int rc;
    do {
        rc = kv_client_sync_endpoints(c);
        cr_assert_eq(rc, KV_OK, "%s", kv_client_last_error(c));
        kv_client_get_endpoints(c, list, sizeof list);
    } while (!lists(list, cluster_nodes[3].port) && now_ms() < deadline &&
             usleep(50 * 1000) == 0);
    for (int i = 0; i < MAX_NODES; i++)
        cr_assert(lists(list, cluster_nodes[i].port), "node %d in %s", i + 1, list);

    /* removed: the next sync leaves it out */
    deadline = now_ms() + 15000;
    do {
        lc = client(find_leader());
        rc = kv_client_cluster(lc, "remove", 4, NULL, NULL);
        kv_client_close(lc);
    } while (rc == KV_NOT_LEADER && now_ms() < deadline && usleep(50 * 1000) == 0);
    cr_assert_eq(rc, KV_OK, "remove: %s", kv_client_strerror(rc));
    deadline = now_ms() + 15000;
    do {
        rc = kv_client_sync_endpoints(c);
        cr_assert_eq(rc, KV_OK, "%s", kv_client_last_error(c));
        kv_client_get_endpoints(c, list, sizeof list);
    } while (lists(list, cluster_nodes[3].port) && now_ms() < deadline &&
             usleep(50 * 1000) == 0);
    cr_assert(!lists(list, cluster_nodes[3].port), "node 4 left: %s", list);
    for (int i = 0; i < NODES; i++)
        cr_assert(lists(list, cluster_nodes[i].port), "node %d in %s", i + 1, list);
    kv_client_close(c);
    for (int i = 0; i < MAX_NODES; i++)
        stop_node(i, SIGTERM);
}

Test(cluster_clients, a_single_server_has_no_members_to_learn)
{
    kvd_start(NULL);
    kv_client *c = test_client(NULL);
    char mine[32], list[256];
    snprintf(mine, sizeof mine, "127.0.0.1:%d", g_kvd.port);
    cr_assert_eq(kv_client_set_endpoints(c, mine), KV_OK);
    cr_assert_eq(kv_client_sync_endpoints(c), KV_UNSUPPORTED);
    cr_assert_not_null(strstr(kv_client_last_error(c), "not a cluster node"), "%s",
                       kv_client_last_error(c));
    kv_client_get_endpoints(c, list, sizeof list);
    cr_assert_str_eq(list, mine, "unchanged");
    /* a connect with endpoints tries to sync, and goes on when it cannot */
    cr_assert_eq(kv_client_connect(c), KV_OK, "%s", kv_client_last_error(c));
    cr_assert_eq(kv_client_synced(c), 0);
    cr_assert_eq(kv_client_set(c, "k", 1, "v", 1, NULL), KV_OK);
    kv_client_close(c);
    kvd_stop();
}

/* kvcli at its prompt (commands from a pipe) with --endpoints naming one
 * node learns the others when it connects, and goes on when that node
 * dies. */
Test(cluster_clients, kvcli_with_one_endpoint_survives_that_node_s_loss)
{
    start_all();
    uint64_t rev;
    write_somewhere("k", "v", &rev);
    wait_addresses(0, NODES);
    make_leader(0);
    char out[300], cmd[1024];
    snprintf(out, sizeof out, "%s/kvcli.out", g_kvd.dir);
    snprintf(cmd, sizeof cmd,
             "%s --port %d --endpoints 127.0.0.1:%d --retries 30 --timeout 10 > %s 2>&1",
             KVCLI_PATH, cluster_nodes[0].port, cluster_nodes[0].port, out);
    FILE *cli = popen(cmd, "w");
    cr_assert_not_null(cli);
    fputs("set before 1\n", cli);
    fflush(cli);
    /* applied: the prompt is connected to node 1 */
    long deadline = now_ms() + 15000;
    char got[64] = "";
    while (!(stale_get(1, "before", got, sizeof got) && strcmp(got, "1") == 0) &&
           now_ms() < deadline)
        usleep(20 * 1000);
    cr_assert_str_eq(got, "1");
    stop_node(0, SIGKILL);
    fputs("set after 2\nget after\n", cli);
    int st = pclose(cli);
    FILE *f = fopen(out, "r");
    cr_assert_not_null(f);
    char text[4096];
    size_t n = fread(text, 1, sizeof text - 1, f);
    text[n] = '\0';
    fclose(f);
    cr_assert_eq(st, 0, "kvcli exit status %d: %s", st, text);
    cr_assert(n >= 2 && strcmp(text + n - 2, "2\n") == 0, "the new leader has it: %s", text);
    int now = find_leader();
    kv_client *c = client(now);
    kv_value v;
    cr_assert_eq(kv_client_get(c, "after", 5, &v), KV_OK);
    cr_assert_eq(v.len, 1);
    kv_client_value_free(&v);
    kv_client_close(c);
    for (int i = 1; i < NODES; i++)
        stop_node(i, SIGTERM);
}
