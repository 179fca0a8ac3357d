/*
 * test_cluster_history.c - the store's history on a kvd cluster (real
 * nodes on loopback, cluster.h): identical on every node.
 *
 * After writes, rollbacks (of keys and of a prefix, a conditional one
 * that fails) and a compaction through the leader, every node answers
 * the same HISTORY for each key, the same reads in the past (values and
 * COMPACTED alike) and has the same compaction revision. A rollback or
 * compaction sent to a follower is redirected (NOT_LEADER) and changes
 * nothing. The age and byte bounds, judged by the leader, compact every
 * node at the same revision. A follower that installs a snapshot gets the
 * leader's history with it and reads the past as the others do.
 *
 * Followers are read with READONLY over RESP (a local read), once their
 * store has reached the leader's revision; replies are compared byte for
 * byte across nodes.
 */
#include <criterion/criterion.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "cluster.h"
#include "harness.h"

static void init(void)
{
    cluster_setup(0);
}

TestSuite(cluster_history, .init = init, .fini = cluster_teardown, .timeout = 240);

/* libraft writes uninitialised padding, which valgrind reports: the
 * cluster tests run under the sanitizers, not under valgrind */
#define SKIP_UNDER_VALGRIND()                                                       \
    do {                                                                            \
        if (getenv("KVD_WRAPPER"))                                                  \
            cr_skip_test("a cluster under valgrind (libraft's own reports)");       \
    } while (0)

/* Node i's answer to one RESP command (argv, NULL-terminated), in out;
 * with readonly after READONLY (a local read; its +OK is skipped). */
static const char *resp_on(int i, int readonly, const char *const *argv, char *out, size_t cap)
{
    char req[1024];
    size_t n = 0, argc = 0;
    while (argv[argc])
        argc++;
    n += (size_t)snprintf(req + n, sizeof req - n, "%s*%zu\r\n", readonly ? "READONLY\r\n" : "",
                          argc);
    for (size_t a = 0; a < argc; a++)
        n += (size_t)snprintf(req + n, sizeof req - n, "$%zu\r\n%s\r\n", strlen(argv[a]),
                              argv[a]);
    cr_assert_lt(n, sizeof req);
    raw_text_exchange(cluster_nodes[i].port, req, out, cap);
    /* QUIT's +OK ends it */
    size_t len = strlen(out);
    cr_assert(len >= 5 && strcmp(out + len - 5, "+OK\r\n") == 0, "node %d: %s", i + 1, out);
    out[len - 5] = 0;
    if (!readonly)
        return out;
    cr_assert(strncmp(out, "+OK\r\n", 5) == 0, "node %d: %s", i + 1, out);
    return out + 5;
}

static const char *local_resp(int i, const char *const *argv, char *out, size_t cap)
{
    return resp_on(i, 1, argv, out, cap);
}

/* Every node gives the same local answer to argv; returns it (node 1's,
 * in a static buffer). */
static const char *same_everywhere(const char *const *argv)
{
    static char first[65536], buf[65536];
    const char *want = NULL;
    for (int i = 0; i < NODES; i++) {
        const char *got = local_resp(i, argv, buf, sizeof buf);
        if (!want) {
            snprintf(first, sizeof first, "%s", got);
            want = first;
        } else {
            cr_assert_str_eq(got, want, "node %d answers %s otherwise than node 1", i + 1,
                             argv[0]);
        }
    }
    return want;
}

static void rev_text(uint64_t rev, char *buf)
{
    snprintf(buf, 24, "%llu", (unsigned long long)rev);
}

/* The changes of key on node i's leader client, newest first, checked. */
static void expect_events(kv_client *c, const char *key, size_t want_n,
                          const char *const *values, const uint64_t *revs)
{
    kv_event *ev = NULL;
    size_t n = 0;
    cr_assert_eq(kv_client_history(c, key, strlen(key), 0, 0, 0, &ev, &n, NULL), KV_OK);
    cr_assert_eq(n, want_n, "%s: %zu changes", key, n);
    for (size_t i = 0; i < n; i++) {
        cr_expect_eq(ev[i].revision, revs[i], "%s change %zu", key, i);
        if (values[i]) {
            cr_assert_eq(ev[i].vlen, strlen(values[i]));
            cr_expect(memcmp(ev[i].value, values[i], ev[i].vlen) == 0);
        } else {
            cr_expect(ev[i].deleted, "%s change %zu: a deletion", key, i);
        }
    }
    kv_client_events_free(ev, n);
}

/* Writes, rollbacks and a compaction through the leader: every node has
 * the same history. */
Test(cluster_history, rollback_and_compaction_are_the_same_on_every_node)
{
    SKIP_UNDER_VALGRIND();
    start_all();
    uint64_t r1, r2, r3, r4, r5, r6, r7, r8;
    write_somewhere("a", "1", &r1);
    write_somewhere("a", "2", &r2);
    write_somewhere("b", "1", &r3);
    write_somewhere("a", "3", &r4);
    write_somewhere("user:1", "x", &r5);
    int leader = write_somewhere("user:2", "y", &r6);
    kv_client *c = client(leader);
    cr_assert_eq(kv_client_del(c, "user:2", 6, &r7), KV_OK);
    cr_assert_eq(kv_client_set(c, "user:1", 6, "z", 1, &r8), KV_OK);
    cr_assert(r1 < r2 && r2 < r3 && r3 < r4 && r4 < r5 && r5 < r6 && r6 < r7 && r7 < r8);

    /* a key back to r2, then the prefix back to r6 (user:2 comes back) */
    kv_key a = {"a", 1};
    uint64_t rb1 = 0, rb2 = 0, none = 7;
    size_t changed = 0;
    cr_assert_eq(kv_client_rollback(c, &a, 1, r2, 0, &rb1, &changed), KV_OK,
                 "%s", kv_client_last_error(c));
    cr_expect_eq(changed, 1);
    cr_expect_eq(rb1, r8 + 1, "a rollback is the next change");
    cr_assert_eq(kv_client_rollback_prefix(c, "user:", 5, r6, rb1, &rb2, &changed), KV_OK,
                 "%s", kv_client_last_error(c));
    cr_expect_eq(changed, 2);
    cr_expect_eq(rb2, rb1 + 1);
    /* a condition that fails changes nothing, on any node */
    cr_expect_eq(kv_client_rollback_prefix(c, "user:", 5, r5, r6, &none, NULL),
                 KV_VERSION_MISMATCH);
    cr_expect_eq(none, 7, "untouched");
    /* compaction at r4: the value a had before r4 goes */
    uint64_t compacted = 0;
    cr_assert_eq(kv_client_compact(c, r4, &compacted), KV_OK, "%s", kv_client_last_error(c));
    cr_expect_eq(compacted, r4);
    cr_expect_eq(kv_client_compact(c, r4, NULL), KV_COMPACTED);
    cr_expect_eq(kv_client_compact(c, rb2 + 100, NULL), KV_FUTURE_REVISION);
    /* one more write: a node at its revision has applied all of the above */
    uint64_t last = 0;
    cr_assert_eq(kv_client_set(c, "after", 5, "1", 1, &last), KV_OK);
    cr_expect_eq(last, rb2 + 1, "a compaction takes no revision");
    expect_same_revision();
    for (int i = 0; i < NODES; i++) {
        cr_expect_eq(node_revision(i), last, "node %d", i + 1);
        cr_expect_eq(node_metric(i, "compact_revision"), r4, "node %d", i + 1);
    }

    /* the history itself, on the leader */
    expect_events(c, "a", 2, (const char *const[]){"2", "3"}, (const uint64_t[]){rb1, r4});
    expect_events(c, "user:2", 3, (const char *const[]){"y", NULL, "y"},
                  (const uint64_t[]){rb2, r7, r6});
    expect_events(c, "user:1", 3, (const char *const[]){"x", "z", "x"},
                  (const uint64_t[]){rb2, r8, r5});
    kv_client_close(c);

    /* and the same on every node: HISTORY, reads in the past, latest */
    static const char *const keys[] = {"a", "b", "user:1", "user:2", "after"};
    for (size_t k = 0; k < sizeof keys / sizeof *keys; k++) {
        const char *h = same_everywhere((const char *const[]){"KVD.HISTORY", keys[k], NULL});
        cr_expect_eq(*h, '*', "%s", h);
        same_everywhere((const char *const[]){"GET", keys[k], NULL});
    }
    char rev[24];
    rev_text(r4, rev);
    cr_expect_str_eq(same_everywhere((const char *const[]){"KVD.GETAT", "a", rev, NULL}),
                     "$1\r\n3\r\n");
    rev_text(r7, rev);
    cr_expect_str_eq(same_everywhere((const char *const[]){"KVD.GETAT", "user:2", rev, NULL}),
                     "$-1\r\n");
    rev_text(r8, rev);
    cr_expect_str_eq(same_everywhere((const char *const[]){"KVD.GETAT", "user:1", rev, NULL}),
                     "$1\r\nz\r\n");
    rev_text(r2, rev);
    const char *gone = same_everywhere((const char *const[]){"KVD.GETAT", "a", rev, NULL});
    cr_expect(strncmp(gone, "-COMPACTED", 10) == 0, "%s", gone);
    cr_expect_str_eq(same_everywhere((const char *const[]){"GET", "a", NULL}), "$1\r\n2\r\n");
    for (int i = 0; i < NODES; i++)
        stop_node(i, SIGTERM);
}

/* ROLLBACK and COMPACT are writes: a follower refuses them with
 * NOT_LEADER naming the leader, and changes nothing; libkvclient follows
 * that to the leader. */
Test(cluster_history, a_follower_redirects_rollback_and_compact)
{
    SKIP_UNDER_VALGRIND();
    start_all();
    uint64_t r1, r2;
    write_somewhere("k", "v1", &r1);
    int leader = write_somewhere("k", "v2", &r2);
    expect_same_revision();
    int f = (leader + 1) % NODES;
    char rev[24], buf[1024], want[64];
    rev_text(r1, rev);
    snprintf(want, sizeof want, "-ERR not the leader: the leader is node %d", leader + 1);
    const char *got =
        resp_on(f, 0, (const char *const[]){"KVD.ROLLBACK", rev, "KEYS", "k", NULL}, buf,
                sizeof buf);
    cr_expect(strncmp(got, want, strlen(want)) == 0 && strstr(got, "reachable at"), "%s", got);
    got = resp_on(f, 0, (const char *const[]){"KVD.ROLLBACK", rev, "PREFIX", "", NULL}, buf,
                  sizeof buf);
    cr_expect(strncmp(got, want, strlen(want)) == 0, "%s", got);
    got = resp_on(f, 0, (const char *const[]){"KVD.COMPACT", rev, NULL}, buf, sizeof buf);
    cr_expect(strncmp(got, want, strlen(want)) == 0, "%s", got);
    for (int i = 0; i < NODES; i++) {
        cr_expect_eq(node_revision(i), r2, "node %d", i + 1);
        cr_expect_eq(node_metric(i, "compact_revision"), 0, "node %d", i + 1);
    }
    char val[16];
    cr_expect(stale_get(f, "k", val, sizeof val) && strcmp(val, "v2") == 0);
    /* libkvclient follows NOT_LEADER's address */
    kv_client *c = client(f);
    kv_key key = {"k", 1};
    uint64_t rb = 0;
    cr_expect_eq(kv_client_rollback(c, &key, 1, r1, 0, &rb, NULL), KV_OK, "%s",
                 kv_client_last_error(c));
    cr_expect_eq(rb, r2 + 1);
    kv_client_close(c);
    expect_on(f, "k", "v1", rb);
    for (int i = 0; i < NODES; i++)
        stop_node(i, SIGTERM);
}

/* Waits until every node has compaction revision `want` (0: any, the
 * same on all, above 0). Returns it. */
static uint64_t wait_same_compaction(uint64_t want)
{
    long deadline = now_ms() + 30000;
    for (;;) {
        uint64_t first = node_metric(0, "compact_revision");
        int same = first > 0 && (want == 0 || first == want);
        for (int i = 1; i < NODES && same; i++)
            same = node_metric(i, "compact_revision") == first;
        if (same)
            return first;
        cr_assert(now_ms() < deadline, "the nodes never compacted alike (node 1 at %llu)",
                  (unsigned long long)first);
        usleep(50 * 1000);
    }
}

/* --history-age 1: with writes stopped, the leader compacts in time to
 * the latest revision, and every node does it at the same one. */
Test(cluster_history, the_age_bound_compacts_every_node_alike)
{
    SKIP_UNDER_VALGRIND();
    cluster_extra_args[0] = "--history-age";
    cluster_extra_args[1] = "1";
    start_all();
    uint64_t r1, r2, r3;
    write_somewhere("k", "v1", &r1);
    write_somewhere("k", "v2", &r2);
    write_somewhere("k", "v3", &r3);
    expect_same_revision();
    cr_expect_eq(wait_same_compaction(r3), r3);
    char rev[24];
    rev_text(r1, rev);
    const char *gone = same_everywhere((const char *const[]){"KVD.GETAT", "k", rev, NULL});
    cr_expect(strncmp(gone, "-COMPACTED", 10) == 0, "%s", gone);
    rev_text(r3, rev);
    cr_expect_str_eq(same_everywhere((const char *const[]){"KVD.GETAT", "k", rev, NULL}),
                     "$2\r\nv3\r\n");
    same_everywhere((const char *const[]){"KVD.HISTORY", "k", NULL});
    for (int i = 0; i < NODES; i++)
        stop_node(i, SIGTERM);
}

/* --history-bytes: once over it, the leader compacts a share of the
 * revisions, the same on every node, until history is under the bound. */
Test(cluster_history, the_byte_bound_compacts_every_node_alike)
{
    SKIP_UNDER_VALGRIND();
    cluster_extra_args[0] = "--history-bytes";
    cluster_extra_args[1] = "8192";
    start_all();
    char val[513];
    memset(val, 'v', 512);
    val[512] = 0;
    uint64_t rev = 0;
    int leader = 0;
    for (int n = 0; n < 40; n++) {
        val[0] = (char)('a' + n % 26);
        leader = write_somewhere(n % 2 ? "big1" : "big2", val, &rev);
    }
    expect_same_revision();
    long deadline = now_ms() + 30000;
    while (node_metric(leader, "history_bytes") > 8192) {
        cr_assert(now_ms() < deadline, "history stays over the bound: %llu bytes",
                  (unsigned long long)node_metric(leader, "history_bytes"));
        usleep(50 * 1000);
    }
    uint64_t compacted = wait_same_compaction(0);
    cr_expect_lt(compacted, rev, "a share of the revisions, not all");
    cr_expect_eq(node_metric(leader, "compact_revision"), compacted, "and no further");
    for (int i = 0; i < NODES; i++)
        cr_expect_eq(node_metric(i, "history_bytes"), node_metric(leader, "history_bytes"),
                     "node %d keeps as much history", i + 1);
    same_everywhere((const char *const[]){"KVD.HISTORY", "big1", NULL});
    same_everywhere((const char *const[]){"KVD.HISTORY", "big2", NULL});
    for (int i = 0; i < NODES; i++)
        stop_node(i, SIGTERM);
}

/* A follower far behind installs a snapshot: the snapshot carries the
 * leader's history (earlier versions, per-key metadata, the compaction
 * revision), so afterwards that node reads the past as the others do. */
Test(cluster_history, a_snapshot_carries_history_to_a_follower)
{
    SKIP_UNDER_VALGRIND();
    cluster_snapshot_entries = "16";
    start_all();
    uint64_t early, rev = 0;
    int leader = write_somewhere("early", "1", &early);
    write_somewhere("early", "2", &rev);
    int lagging = (leader + 1) % NODES;
    expect_on(lagging, "early", "2", rev);
    stop_node(lagging, SIGKILL);
    for (int n = 0; n < 60; n++) {
        char key[16], val[16];
        snprintf(key, sizeof key, "k%d", n % 10);
        snprintf(val, sizeof val, "v%d", n);
        write_somewhere(key, val, &rev);
        if (n == 20) {
            /* a compaction while it is away: its point travels too */
            char at[24];
            rev_text(rev - 5, at);
            leader = find_leader();
            char buf[256];
            const char *ok = resp_on(leader, 0, (const char *const[]){"KVD.COMPACT", at, NULL},
                                     buf, sizeof buf);
            cr_assert_str_eq(ok, "+OK\r\n");
        }
    }
    start_node(lagging);
    expect_on(lagging, "k9", "v59", rev);
    expect_same_revision();
    cr_assert(file_has(cluster_nodes[lagging].log, "installed a snapshot"), "it installed one");
    uint64_t floor = node_metric(lagging, "compact_revision");
    for (int i = 0; i < NODES; i++)
        cr_expect_eq(node_metric(i, "compact_revision"), floor, "node %d's compaction revision",
                     i + 1);
    cr_expect_lt(floor, rev - 30, "the compaction revision came with the snapshot");
    /* the past, byte for byte the same on every node */
    char at[24];
    rev_text(early, at);
    for (int n = 0; n < 10; n++) {
        char key[16];
        snprintf(key, sizeof key, "k%d", n);
        same_everywhere((const char *const[]){"KVD.HISTORY", key, NULL});
    }
    const char *hist = same_everywhere((const char *const[]){"KVD.HISTORY", "early", NULL});
    cr_expect(strstr(hist, "2") != NULL, "%s", hist);
    const char *got = same_everywhere((const char *const[]){"KVD.GETAT", "early", at, NULL});
    cr_expect(strncmp(got, "-COMPACTED", 10) == 0, "compacted everywhere: %s", got);
    rev_text(floor + 1, at);
    for (int n = 0; n < 10; n++) {
        char key[16];
        snprintf(key, sizeof key, "k%d", n);
        same_everywhere((const char *const[]){"KVD.GETAT", key, at, NULL});
    }
    same_everywhere((const char *const[]){"GET", "early", NULL});
    for (int i = 0; i < NODES; i++)
        stop_node(i, SIGTERM);
}
