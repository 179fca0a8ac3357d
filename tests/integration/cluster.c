/*
 * cluster.c - a test cluster of real kvd nodes on loopback (cluster.h):
 * starting and stopping nodes, finding the leader, writing through
 * elections and waiting for every node to have a write.
 */
#include "cluster.h"

#include <criterion/criterion.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

kvd_proc cluster_nodes[MAX_NODES];
int cluster_paused[MAX_NODES];
const char *cluster_snapshot_entries = "16384";
const char *cluster_extra_args[8];
int cluster_raft_base;
raft_proxy *cluster_proxy;

static char cluster_spec[256];
static char dirs[MAX_NODES][300];
static int proxied;

/* Where node i listens for Raft traffic when proxied (--raft-bind). */
static int bind_port(int i)
{
    return cluster_raft_base + 4 + i + 1;
}

long now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return ts.tv_sec * 1000L + ts.tv_nsec / 1000000L;
}

void cluster_setup(int with_proxy)
{
    harness_setup();
    memset(cluster_nodes, 0, sizeof cluster_nodes);
    memset(cluster_paused, 0, sizeof cluster_paused);
    cluster_snapshot_entries = "16384";
    memset(cluster_extra_args, 0, sizeof cluster_extra_args);
    proxied = with_proxy;
    /* Raft ports are fixed in the --cluster list: pick a range by pid
     * (below Linux's ephemeral ports, 32768 on), another one when
     * proxied: 8 ports, the proxy's and the nodes' own. */
    if (proxied)
        cluster_raft_base = 10000 + (int)(getpid() % 1375) * 8;
    else
        cluster_raft_base = 21000 + (int)(getpid() % 2000) * 3;
    int raft_base = cluster_raft_base;
    snprintf(cluster_spec, sizeof cluster_spec, "1@127.0.0.1:%d,2@127.0.0.1:%d,3@127.0.0.1:%d",
             raft_base + 1, raft_base + 2, raft_base + 3);
    kvd_test_dir();
    for (int i = 0; i < MAX_NODES; i++)
        snprintf(dirs[i], sizeof dirs[i], "%s/node%d", g_kvd.dir, i + 1);
    cluster_proxy = NULL;
    if (proxied) {
        int listen[NODES], target[NODES];
        for (int i = 0; i < NODES; i++) {
            listen[i] = raft_base + i + 1;
            target[i] = bind_port(i);
        }
        cluster_proxy = raft_proxy_start(NODES, listen, target);
        cr_assert_not_null(cluster_proxy, "cannot start the Raft proxy (ports %d..%d)",
                           raft_base + 1, raft_base + NODES);
    }
}

void cluster_teardown(void)
{
    for (int i = 0; i < MAX_NODES; i++)
        if (cluster_nodes[i].pid > 0) {
            /* a node that died on its own: say how, with its log's end */
            int st = 0;
            if (waitpid(cluster_nodes[i].pid, &st, WNOHANG) == cluster_nodes[i].pid) {
                fprintf(stderr, "node %d had exited (status %d); the end of its log:\n", i + 1,
                        st);
                char cmd[400];
                snprintf(cmd, sizeof cmd, "tail -n 30 %s >&2", cluster_nodes[i].log);
                if (system(cmd) != 0)
                    fprintf(stderr, "(no log)\n");
                cluster_nodes[i].pid = 0;
                continue;
            }
            kill(cluster_nodes[i].pid, SIGKILL);
            waitpid(cluster_nodes[i].pid, NULL, 0);
            cluster_nodes[i].pid = 0;
        }
    g_kvd.pid = 0;
    raft_proxy_stop(cluster_proxy);
    cluster_proxy = NULL;
    harness_teardown();
}

void start_node(int i)
{
    char id[16], raft[64], bind[64], logdir[256];
    snprintf(id, sizeof id, "%d", i + 1);
    snprintf(raft, sizeof raft, "127.0.0.1:%d", cluster_raft_base + i + 1);
    snprintf(bind, sizeof bind, "127.0.0.1:%d", bind_port(i));
    /* Sanitizers and valgrind slow kvd down many times: a longer
     * election timeout keeps leaders from being deposed by slowness. */
    const char *election = kvd_under_a_tool() ? "3000" : "1000";
    const char *args[32] = {"--data-dir", dirs[i], "--node-id", id, "--raft-addr", raft,
                            "--raft-snapshot-entries", cluster_snapshot_entries,
                            "--raft-election-timeout", election};
    size_t n = 10;
    for (size_t e = 0; e < 8 && cluster_extra_args[e]; e++)
        args[n++] = cluster_extra_args[e];
    args[n++] = i < NODES ? "--cluster" : "--cluster-join";
    if (i < NODES)
        args[n++] = cluster_spec;
    if (proxied && i < NODES) { /* the others dial the proxy, which forwards here */
        args[n++] = "--raft-bind";
        args[n++] = bind;
    }
    /* The harness starts g_kvd; each node keeps its own log and port file
     * in a directory of its own. */
    kvd_proc saved = g_kvd;
    snprintf(logdir, sizeof logdir, "%.200s/proc%d", saved.dir, i + 1);
    char cmd[400];
    snprintf(cmd, sizeof cmd, "mkdir -p %s", logdir);
    cr_assert_eq(system(cmd), 0);
    memset(&g_kvd, 0, sizeof g_kvd);
    snprintf(g_kvd.dir, sizeof g_kvd.dir, "%s", logdir);
    kvd_startv(args);
    cluster_nodes[i] = g_kvd;
    g_kvd = saved;
}

void stop_node(int i, int sig)
{
    if (cluster_nodes[i].pid <= 0)
        return;
    kill(cluster_nodes[i].pid, sig);
    int st = 0;
    waitpid(cluster_nodes[i].pid, &st, 0);
    cluster_nodes[i].pid = 0;
    kvd_proc saved = g_kvd;
    g_kvd = cluster_nodes[i];
    if (sig == SIGTERM && !(WIFEXITED(st) && WEXITSTATUS(st) == 0)) {
        kvd_dump_log(); /* what it said before it died */
        cr_assert_fail("node %d exit status %d", i + 1, st);
    }
    /* no sanitizer report in its log (harness's check, on this node) */
    kvd_assert_clean_log();
    g_kvd = saved;
}

kv_client *client(int i)
{
    kv_client_options o;
    kv_client_options_init(&o);
    o.host = "127.0.0.1";
    o.port = (uint16_t)cluster_nodes[i].port;
    o.io_timeout_ms = 10000;
    kv_client *c = NULL;
    int rc = kv_client_open(&o, &c);
    cr_assert_eq(rc, KV_OK, "connect to node %d: %s", i + 1, kv_client_strerror(rc));
    return c;
}

uint64_t node_metric(int i, const char *name)
{
    kv_client *c = client(i);
    kv_client_metrics m;
    cr_assert_eq(kv_client_metrics_get(c, &m), KV_OK);
    const kv_client_metric *x = kv_client_metrics_find(&m, NULL, name);
    cr_assert_not_null(x, "no metric %s", name);
    uint64_t v = x->u;
    kv_client_metrics_free(&m);
    kv_client_close(c);
    return v;
}

int find_leader(void)
{
    long deadline = now_ms() + 15000;
    while (now_ms() < deadline) {
        for (int i = 0; i < NODES; i++)
            if (cluster_nodes[i].pid > 0 && !cluster_paused[i] && node_metric(i, "cluster_role") == 2)
                return i;
        usleep(50 * 1000);
    }
    cr_assert_fail("no leader within 15 s");
    return -1;
}

int write_somewhere(const char *key, const char *val, uint64_t *rev)
{
    long deadline = now_ms() + 15000;
    for (;;) {
        int leader = find_leader();
        kv_client *c = client(leader);
        int rc = kv_client_set(c, key, strlen(key), val, strlen(val), rev);
        kv_client_close(c);
        if (rc == KV_OK)
            return leader;
        cr_assert(rc == KV_NOT_LEADER || rc == KV_UNKNOWN_OUTCOME || rc == KV_CONNECT,
                  "node %d: %s", leader + 1, kv_client_strerror(rc));
        cr_assert(now_ms() < deadline, "no write accepted within 15 s");
        usleep(50 * 1000);
    }
}

uint64_t node_revision(int i)
{
    return node_metric(i, "revision");
}

int stale_get(int i, const char *key, char *out, size_t cap)
{
    char req[256], buf[512];
    snprintf(req, sizeof req, "READONLY\r\n*2\r\n$3\r\nGET\r\n$%zu\r\n%s\r\n", strlen(key),
             key);
    raw_text_exchange(cluster_nodes[i].port, req, buf, sizeof buf);
    cr_assert(strncmp(buf, "+OK\r\n", 5) == 0, "node %d: %s", i + 1, buf);
    const char *p = buf + 5;
    if (strncmp(p, "$-1", 3) == 0)
        return 0;
    cr_assert_eq(*p, '$', "node %d: %s", i + 1, buf);
    size_t len = strtoul(p + 1, NULL, 10);
    p = strstr(p, "\r\n");
    cr_assert(p && len < cap);
    memcpy(out, p + 2, len);
    out[len] = 0;
    return 1;
}

/* Waits until node i has key=val: read linearizably (with its version,
 * which must be rev) on the leader, locally on a follower, whose store
 * must then reach the leader's revision: the same changes with the same
 * revisions. */
void expect_on(int i, const char *key, const char *val, uint64_t rev)
{
    /* generous: under load a follower far behind may wait for Raft to
     * retry sending a snapshot */
    long deadline = now_ms() + 45000;
    /* A node that has just lost its leadership (say, resumed after a
     * pause) may still report itself leader for a moment, and refuse the
     * read: ask again. */
    int rc = KV_NOT_LEADER;
    kv_value v = {0};
    while (rc == KV_NOT_LEADER && now_ms() < deadline && node_metric(i, "cluster_role") == 2) {
        kv_client *c = client(i);
        rc = kv_client_get(c, key, strlen(key), &v);
        kv_client_close(c);
        if (rc == KV_NOT_LEADER)
            usleep(20 * 1000);
    }
    if (rc != KV_NOT_LEADER) { /* the leader answered: a linearizable read */
        cr_assert_eq(rc, KV_OK, "node %d: %s: %s", i + 1, key, kv_client_strerror(rc));
        cr_assert_eq(v.len, strlen(val));
        cr_assert(memcmp(v.data, val, v.len) == 0, "node %d: %s has another value", i + 1, key);
        cr_assert_eq(v.version, rev, "node %d: %s at revision %llu, written at %llu", i + 1,
                     key, (unsigned long long)v.version, (unsigned long long)rev);
        kv_client_value_free(&v);
        return;
    }
    char got[256] = "";
    while (now_ms() < deadline && !(stale_get(i, key, got, sizeof got) && strcmp(got, val) == 0))
        usleep(20 * 1000);
    cr_assert_str_eq(got, val, "node %d never had %s=%s", i + 1, key, val);
    cr_assert_geq(node_revision(i), rev);
}

void expect_same_revision(void)
{
    long deadline = now_ms() + 10000;
    for (;;) {
        /* (a node still loading its log answers revision 0: not the same) */
        uint64_t first = 0;
        int same = 1, seen = 0;
        for (int i = 0; i < NODES; i++) {
            if (cluster_nodes[i].pid <= 0 || cluster_paused[i])
                continue;
            uint64_t r = node_revision(i);
            if (!seen++)
                first = r;
            same &= r == first;
        }
        if (same)
            return;
        cr_assert(now_ms() < deadline, "the nodes' revisions never converged");
        usleep(20 * 1000);
    }
}

void start_all(void)
{
    for (int i = 0; i < NODES; i++)
        start_node(i);
}

