/*
 * test_cluster_faults.c - a kvd Raft cluster under faults (issue 15):
 * client threads load a three-node cluster while the test kills the
 * leader (twice, with restarts), pauses it (SIGSTOP/SIGCONT), cuts it
 * off from both followers through a TCP proxy between the Raft ports
 * (raftproxy.h), or cuts a follower off, then one link; every client operation is recorded with its call and
 * return time and outcome, and each key's history must be linearizable
 * (linearizable.h). Multi-key writes (MSET) must be atomic: an MGET of
 * the same keys never sees two generations. After the faults every node
 * has the same keys at the same revision.
 *
 * Each scenario loads the cluster for a few seconds only; the checker is
 * exponential in the worst case, so each key's history stays at a few
 * hundred operations (8 keys, paced clients).
 */
#include <criterion/criterion.h>
#include <inttypes.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "cluster.h"
#include "linearizable.h"

#define KEYS 8    /* registers under load                              */
#define MKEYS 3   /* the keys each MSET / MGET covers (scenario d)     */
#define CLIENTS 4 /* client threads                                    */
#define PACE_US 4000

/* ---- the load and its history -------------------------------------------- */

typedef struct history {
    lin_op *ops;
    size_t n, cap;
} history;

typedef struct load load;

typedef struct worker {
    load *l;
    int id;
    pthread_t thread;
    kv_client *c;
    int next_node; /* round robin over the nodes when reconnecting */
    history h[KEYS];
    unsigned seed;
    uint64_t seq;
    /* failures the history cannot hold: an unexpected status */
    char unexpected[256];
    /* multi-key atomicity: MGETs that saw mixed generations */
    uint64_t mixed, mgets;
    char mixed_example[256];
} worker;

struct load {
    int multi; /* scenario d: MSET / MGET of MKEYS keys */
    int stop;  /* __atomic */
    pthread_mutex_t mu;
    int ports[NODES]; /* client ports of the nodes up; 0: down (mu) */
    int io_timeout_ms;
    worker w[CLIENTS];
};

static int64_t now_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000000000 + ts.tv_nsec;
}

static void load_set_port(load *l, int i, int port)
{
    pthread_mutex_lock(&l->mu);
    l->ports[i] = port;
    pthread_mutex_unlock(&l->mu);
}

static void record(worker *w, int key, const lin_op *op)
{
    history *h = &w->h[key];
    if (h->n == h->cap) {
        h->cap = h->cap ? h->cap * 2 : 256;
        h->ops = realloc(h->ops, h->cap * sizeof *h->ops);
        cr_assert_not_null(h->ops);
    }
    h->ops[h->n] = *op;
    h->ops[h->n].client = w->id;
    h->n++;
}

/* (Re)connects w to the next node that is up; 0 if none is. */
static int reconnect(worker *w)
{
    if (w->c)
        kv_client_close(w->c);
    w->c = NULL;
    for (int tries = 0; tries < NODES; tries++) {
        int i = w->next_node++ % NODES;
        pthread_mutex_lock(&w->l->mu);
        int port = w->l->ports[i];
        pthread_mutex_unlock(&w->l->mu);
        if (!port)
            continue;
        kv_client_options o;
        kv_client_options_init(&o);
        o.host = "127.0.0.1";
        o.port = (uint16_t)port;
        o.connect_timeout_ms = 1000;
        o.io_timeout_ms = w->l->io_timeout_ms;
        if (kv_client_open(&o, &w->c) == KV_OK)
            return 1;
        kv_client_close(w->c); /* open made it even though it failed */
        w->c = NULL;
    }
    return 0;
}

/* What a status says about a request's effect. */
enum { DONE, FAILED, UNKNOWN };

static int classify(worker *w, int rc, const char *what)
{
    switch (rc) {
    case KV_OK:
    case KV_NOT_FOUND:
        return DONE;
    case KV_NOT_LEADER: /* refused before it ran */
    case KV_CONNECT:    /* following the leader: never sent there */
        return FAILED;
    case KV_UNKNOWN_OUTCOME:
    case KV_TIMEOUT:
    case KV_CLOSED:
    case KV_IO:
        return UNKNOWN;
    default:
        if (!w->unexpected[0])
            snprintf(w->unexpected, sizeof w->unexpected, "client %d: %s: %s", w->id, what,
                     kv_client_strerror(rc));
        return FAILED;
    }
}

/* A value read back: the number written, or one never written. */
static uint64_t value_of(const kv_value *v)
{
    char buf[32];
    if (!v->data || v->len == 0 || v->len >= sizeof buf)
        return UINT64_MAX;
    memcpy(buf, v->data, v->len);
    buf[v->len] = 0;
    char *end;
    uint64_t x = strtoull(buf, &end, 10);
    return *end || x == 0 ? UINT64_MAX : x;
}

static void key_name(int k, char *buf, size_t cap)
{
    snprintf(buf, cap, "reg%d", k);
}

/* One register operation on a random key. */
static void register_op(worker *w)
{
    int k = (int)(rand_r(&w->seed) % KEYS), pick = (int)(rand_r(&w->seed) % 10);
    char key[16], val[32];
    key_name(k, key, sizeof key);
    lin_op op = {0};
    int rc;
    kv_value v = {0};
    if (pick < 4) {
        op.kind = LIN_WRITE;
        op.in = (uint64_t)(w->id + 1) * 1000000000ull + ++w->seq;
        snprintf(val, sizeof val, "%" PRIu64, op.in);
        op.start = now_ns();
        rc = kv_client_set(w->c, key, strlen(key), val, strlen(val), NULL);
    } else if (pick < 9) {
        op.kind = LIN_READ;
        op.start = now_ns();
        rc = kv_client_get(w->c, key, strlen(key), &v);
        op.out = rc == KV_OK ? value_of(&v) : 0;
        kv_client_value_free(&v);
    } else {
        op.kind = LIN_DELETE;
        op.start = now_ns();
        rc = kv_client_del(w->c, key, strlen(key), NULL);
        op.out = rc == KV_OK;
    }
    op.end = now_ns();
    int how = classify(w, rc, "register op");
    if (how != FAILED) {
        op.outcome = how == DONE ? LIN_OK : LIN_UNKNOWN;
        record(w, k, &op);
    }
    if (how == UNKNOWN || rc == KV_NOT_LEADER || rc == KV_CONNECT)
        reconnect(w); /* a transport failure, or no leader known here */
}

/* MSET of the MKEYS keys with one generation, or MGET of them. */
static void multi_op(worker *w)
{
    char keys[MKEYS][16], val[32];
    kv_key kk[MKEYS];
    for (int k = 0; k < MKEYS; k++) {
        key_name(k, keys[k], sizeof keys[k]);
        kk[k] = (kv_key){keys[k], strlen(keys[k])};
    }
    lin_op op = {0};
    int rc;
    kv_value vals[MKEYS];
    uint64_t got[MKEYS] = {0};
    if (rand_r(&w->seed) % 2 == 0) {
        op.kind = LIN_WRITE;
        op.in = (uint64_t)(w->id + 1) * 1000000000ull + ++w->seq;
        snprintf(val, sizeof val, "%" PRIu64, op.in);
        kv_pair pairs[MKEYS];
        for (int k = 0; k < MKEYS; k++)
            pairs[k] = (kv_pair){keys[k], strlen(keys[k]), val, strlen(val)};
        op.start = now_ns();
        rc = kv_client_mset(w->c, pairs, MKEYS, NULL);
    } else {
        op.kind = LIN_READ;
        op.start = now_ns();
        rc = kv_client_mget(w->c, kk, MKEYS, vals);
        if (rc == KV_OK) {
            for (int k = 0; k < MKEYS; k++)
                got[k] = vals[k].data ? value_of(&vals[k]) : 0;
            kv_client_values_free(vals, MKEYS);
            w->mgets++;
            for (int k = 1; k < MKEYS; k++)
                if (got[k] != got[0]) {
                    if (!w->mixed++)
                        snprintf(w->mixed_example, sizeof w->mixed_example,
                                 "client %d: MGET saw %" PRIu64 ", %" PRIu64 ", %" PRIu64,
                                 w->id, got[0], got[1], got[2]);
                    break;
                }
        }
    }
    op.end = now_ns();
    int how = classify(w, rc, "multi op");
    if (how != FAILED) {
        op.outcome = how == DONE ? LIN_OK : LIN_UNKNOWN;
        for (int k = 0; k < MKEYS; k++) {
            op.out = got[k];
            record(w, k, &op);
        }
    }
    if (how == UNKNOWN || rc == KV_NOT_LEADER || rc == KV_CONNECT)
        reconnect(w);
}

static void *worker_main(void *arg)
{
    worker *w = arg;
    while (!__atomic_load_n(&w->l->stop, __ATOMIC_ACQUIRE)) {
        if (!w->c && !reconnect(w)) {
            usleep(20 * 1000);
            continue;
        }
        if (w->l->multi)
            multi_op(w);
        else
            register_op(w);
        usleep(PACE_US);
    }
    if (w->c)
        kv_client_close(w->c);
    return NULL;
}

static load L;

static void load_start(int multi)
{
    memset(&L, 0, sizeof L);
    L.multi = multi;
    /* a request to a paused or cut-off node gives up after this: an
     * unknown outcome, then the client tries another node */
    L.io_timeout_ms = kvd_under_a_tool() ? 4000 : 1500;
    pthread_mutex_init(&L.mu, NULL);
    for (int i = 0; i < NODES; i++)
        L.ports[i] = cluster_nodes[i].pid > 0 ? cluster_nodes[i].port : 0;
    for (int t = 0; t < CLIENTS; t++) {
        worker *w = &L.w[t];
        w->l = &L;
        w->id = t + 1;
        w->next_node = t;
        w->seed = (unsigned)(getpid() * 31 + t);
        cr_assert_eq(pthread_create(&w->thread, NULL, worker_main, w), 0);
    }
}

static void load_stop(void)
{
    __atomic_store_n(&L.stop, 1, __ATOMIC_RELEASE);
    for (int t = 0; t < CLIENTS; t++)
        pthread_join(L.w[t].thread, NULL);
}

/* The first acknowledged write called after t (ns), its return time. */
static int64_t first_write_after(int64_t t)
{
    int64_t best = INT64_MAX;
    for (int w = 0; w < CLIENTS; w++)
        for (int k = 0; k < KEYS; k++)
            for (size_t i = 0; i < L.w[w].h[k].n; i++) {
                const lin_op *o = &L.w[w].h[k].ops[i];
                if (o->kind != LIN_READ && o->outcome == LIN_OK && o->start >= t &&
                    o->end < best)
                    best = o->end;
            }
    return best;
}

/* Every key's history linearizable; no mixed MGET; frees the history. */
static void load_check(const char *scenario)
{
    size_t total = 0, unknown = 0, reads = 0, writes = 0;
    int violations = 0;
    char report[4096] = "";
    for (int k = 0; k < KEYS; k++) {
        history all = {0};
        for (int t = 0; t < CLIENTS; t++) {
            history *h = &L.w[t].h[k];
            all.ops = realloc(all.ops, (all.n + h->n + 1) * sizeof *all.ops);
            cr_assert_not_null(all.ops);
            if (h->n)
                memcpy(all.ops + all.n, h->ops, h->n * sizeof *h->ops);
            all.n += h->n;
        }
        for (size_t i = 0; i < all.n; i++) {
            unknown += all.ops[i].outcome == LIN_UNKNOWN;
            reads += all.ops[i].kind == LIN_READ;
            writes += all.ops[i].kind != LIN_READ;
        }
        total += all.n;
        char one[2048];
        int r = lin_check(all.ops, all.n, 0, one, sizeof one);
        cr_assert_neq(r, LIN_GAVE_UP, "%s: the checker gave up on reg%d (%zu ops)", scenario, k,
                      all.n);
        cr_assert_geq(r, 0, "out of memory");
        if (r == LIN_VIOLATION) {
            if (!violations)
                snprintf(report, sizeof report, "reg%d: %s", k, one);
            violations++;
        }
        free(all.ops);
    }
    uint64_t mixed = 0, mgets = 0;
    const char *example = "";
    for (int t = 0; t < CLIENTS; t++) {
        worker *w = &L.w[t];
        cr_assert_eq(w->unexpected[0], 0, "%s: %s", scenario, w->unexpected);
        mixed += w->mixed;
        mgets += w->mgets;
        if (w->mixed && !example[0])
            example = w->mixed_example;
    }
    fprintf(stderr,
            "%s: %zu operations (%zu writes, %zu reads, %zu with unknown outcome) on %d keys%s; "
            "%d keys not linearizable\n",
            scenario, total, writes, reads, unknown, L.multi ? MKEYS : KEYS,
            L.multi ? " by MSET/MGET" : "", violations);
    cr_assert_eq(violations, 0, "%s: %d keys not linearizable; the first:\n%s", scenario,
                 violations, report);
    cr_assert_eq(mixed, 0, "%s: %" PRIu64 " of %" PRIu64 " MGETs saw mixed generations: %s",
                 scenario, mixed, mgets, example);
    /* the load did something on both sides of the fault */
    cr_assert_gt(writes, 20, "%s: too few writes to check anything", scenario);
    cr_assert_gt(reads, 20, "%s: too few reads to check anything", scenario);
    if (L.multi)
        cr_assert_gt(mgets, 10, "%s: too few MGETs", scenario);
    for (int t = 0; t < CLIENTS; t++)
        for (int k = 0; k < KEYS; k++)
            free(L.w[t].h[k].ops);
    pthread_mutex_destroy(&L.mu);
}

/* After the faults: every node at the same revision with the same keys
 * and values (read locally on each node). */
static void expect_converged(void)
{
    expect_same_revision();
    for (int k = 0; k < KEYS; k++) {
        char key[16], first[64] = "", got[64] = "";
        key_name(k, key, sizeof key);
        int had = stale_get(0, key, first, sizeof first);
        for (int i = 1; i < NODES; i++) {
            int has = stale_get(i, key, got, sizeof got);
            cr_assert_eq(has, had, "%s on node 1 (%s) and node %d (%s), both at revision %llu",
                         key, had ? first : "absent", i + 1, has ? got : "absent",
                         (unsigned long long)node_revision(i));
            if (had)
                cr_assert_str_eq(got, first, "%s on node 1 and node %d, both at revision %llu",
                                 key, i + 1, (unsigned long long)node_revision(i));
        }
    }
}

static int election_ms(void)
{
    return kvd_under_a_tool() ? 3000 : 1000; /* as cluster.c starts nodes */
}

static void setup(void)
{
    cluster_setup(0);
}

static void setup_proxied(void)
{
    cluster_setup(1);
}

TestSuite(faults, .init = setup, .fini = cluster_teardown, .timeout = 300);
TestSuite(partition, .init = setup_proxied, .fini = cluster_teardown, .timeout = 300);

/* a. The leader killed with SIGKILL under load, twice, each time
 * restarted after a new leader took over. Prints the failover time: from
 * the kill to the first acknowledged write called after it. */
Test(faults, leader_killed_twice_under_load_stays_linearizable)
{
    start_all();
    uint64_t rev;
    write_somewhere("warmup", "1", &rev);
    load_start(0);
    usleep(1000 * 1000);
    int64_t t_kill[2];
    int killed[2];
    for (int round = 0; round < 2; round++) {
        int leader = killed[round] = find_leader();
        t_kill[round] = now_ns();
        stop_node(leader, SIGKILL);
        load_set_port(&L, leader, 0);
        int next = write_somewhere("failover", "x", &rev);
        cr_assert_neq(next, leader);
        usleep(1000 * 1000);
        start_node(leader);
        load_set_port(&L, leader, cluster_nodes[leader].port);
        usleep(1000 * 1000);
    }
    load_stop();
    for (int round = 0; round < 2; round++) {
        int64_t first = first_write_after(t_kill[round]);
        cr_assert_neq(first, INT64_MAX, "no write acknowledged after kill %d", round + 1);
        fprintf(stderr, "failover %d: node %d killed, first acknowledged write after %.0f ms\n",
                round + 1, killed[round] + 1, (double)(first - t_kill[round]) / 1e6);
    }
    load_check("kill -9 of the leader, twice");
    expect_converged();
    for (int i = 0; i < NODES; i++)
        stop_node(i, SIGTERM);
}

/* b. The leader paused (SIGSTOP) for longer than an election under load,
 * then resumed (SIGCONT): it must find itself deposed and never answer
 * from its old state. */
Test(faults, leader_paused_and_resumed_under_load_stays_linearizable)
{
    start_all();
    uint64_t rev;
    write_somewhere("warmup", "1", &rev);
    load_start(0);
    usleep(1000 * 1000);
    int old = find_leader();
    kill(cluster_nodes[old].pid, SIGSTOP);
    cluster_paused[old] = 1;
    int next = write_somewhere("during", "pause", &rev);
    cr_assert_neq(next, old);
    usleep((useconds_t)election_ms() * 1000);
    kill(cluster_nodes[old].pid, SIGCONT);
    cluster_paused[old] = 0;
    usleep(1500 * 1000);
    load_stop();
    load_check("SIGSTOP/SIGCONT of the leader");
    expect_converged();
    for (int i = 0; i < NODES; i++)
        stop_node(i, SIGTERM);
}

/* The leader cut off from both followers: asked directly, it neither
 * acknowledges a write nor answers a linearizable read. */
static void expect_minority_refuses(int old)
{
    kv_client_options o;
    kv_client_options_init(&o);
    o.host = "127.0.0.1";
    o.port = (uint16_t)cluster_nodes[old].port;
    o.io_timeout_ms = 1000;
    for (int n = 0; n < 3; n++) {
        kv_client *c = NULL;
        int orc = kv_client_open(&o, &c);
        cr_assert_eq(orc, KV_OK, "connect to the cut-off node %d: %s", old + 1,
                     kv_client_last_error(c));
        char val[32];
        snprintf(val, sizeof val, "minority%d", n);
        int rc = kv_client_set(c, "minority", 8, val, strlen(val), NULL);
        cr_assert(rc == KV_NOT_LEADER || rc == KV_UNKNOWN_OUTCOME || rc == KV_TIMEOUT,
                  "the cut-off node %d answered a write: %s", old + 1, kv_client_strerror(rc));
        if (rc == KV_TIMEOUT) {
            kv_client_close(c);
            orc = kv_client_open(&o, &c);
            cr_assert_eq(orc, KV_OK, "connect to the cut-off node %d: %s", old + 1,
                         kv_client_last_error(c));
        }
        kv_value v = {0};
        rc = kv_client_get(c, "reg0", 4, &v);
        kv_client_value_free(&v);
        cr_assert(rc == KV_NOT_LEADER || rc == KV_UNKNOWN_OUTCOME || rc == KV_TIMEOUT,
                  "the cut-off node %d answered a linearizable read: %s", old + 1,
                  kv_client_strerror(rc));
        kv_client_close(c);
    }
}

/* c. A network partition: the leader isolated from both followers by the
 * proxy between the Raft ports (the link between the followers delayed
 * by 20 ms meanwhile). The majority elects a leader and serves; the old
 * leader serves nothing; healed, every node converges. */
Test(partition, an_isolated_leader_serves_nothing_and_the_majority_goes_on)
{
    start_all();
    uint64_t rev;
    int w = write_somewhere("warmup", "1", &rev);
    for (int i = 0; i < NODES; i++)
        expect_on(i, "warmup", "1", rev);
    /* the Raft traffic really goes through the proxy */
    for (int i = 0; i < NODES; i++)
        if (i != w) {
            cr_assert_gt(raft_proxy_bytes(cluster_proxy, w, i), 0, "%d to %d", w + 1, i + 1);
            cr_assert_gt(raft_proxy_bytes(cluster_proxy, i, w), 0, "%d to %d", i + 1, w + 1);
        }
    load_start(0);
    usleep(1000 * 1000);
    int old = find_leader();
    int a = (old + 1) % NODES, b = (old + 2) % NODES;
    raft_proxy_delay(cluster_proxy, a, b, 20);
    raft_proxy_isolate(cluster_proxy, old);
    cluster_paused[old] = 1; /* find_leader: the majority's leader */
    int next = write_somewhere("during", "partition", &rev);
    cr_assert_neq(next, old);
    expect_minority_refuses(old);
    usleep(1000 * 1000);
    raft_proxy_heal_all(cluster_proxy);
    cluster_paused[old] = 0;
    expect_on(old, "during", "partition", rev); /* it caught up */
    usleep(1500 * 1000);
    load_stop();
    load_check("the leader partitioned off");
    expect_converged();
    for (int i = 0; i < NODES; i++)
        stop_node(i, SIGTERM);
}

/* d. Multi-key atomicity: MSETs of three keys with one generation value
 * and MGETs of them, with the leader killed and restarted meanwhile; no
 * MGET sees two generations, and each key's history is linearizable. */
Test(faults, multi_key_writes_are_atomic_through_a_leader_kill)
{
    start_all();
    uint64_t rev;
    write_somewhere("warmup", "1", &rev);
    load_start(1);
    usleep(1000 * 1000);
    int leader = find_leader();
    stop_node(leader, SIGKILL);
    load_set_port(&L, leader, 0);
    write_somewhere("failover", "x", &rev);
    usleep(1000 * 1000);
    start_node(leader);
    load_set_port(&L, leader, cluster_nodes[leader].port);
    usleep(1000 * 1000);
    load_stop();
    load_check("MSET/MGET through a leader kill");
    expect_converged();
    for (int i = 0; i < NODES; i++)
        stop_node(i, SIGTERM);
}

/* c'. Partial partitions: a follower cut off alone (the leader keeps its
 * majority), then, healed, only the link between the leader and the other
 * follower cut (each node still reaches a majority through the third).
 * The cluster serves throughout; healed, every node converges. */
Test(partition, a_follower_cut_off_and_a_partial_partition_stay_linearizable)
{
    start_all();
    uint64_t rev;
    write_somewhere("warmup", "1", &rev);
    load_start(0);
    usleep(1000 * 1000);
    int leader = find_leader();
    int f1 = (leader + 1) % NODES, f2 = (leader + 2) % NODES;
    raft_proxy_isolate(cluster_proxy, f1);
    cluster_paused[f1] = 1;
    write_somewhere("during", "follower cut off", &rev);
    usleep(1000 * 1000);
    raft_proxy_heal_all(cluster_proxy);
    cluster_paused[f1] = 0;
    expect_on(f1, "during", "follower cut off", rev);
    leader = find_leader();
    int other = leader == f2 ? f1 : f2;
    raft_proxy_cut(cluster_proxy, leader, other);
    write_somewhere("during", "leader and a follower apart", &rev);
    usleep(1500 * 1000);
    raft_proxy_heal_all(cluster_proxy);
    usleep(1000 * 1000);
    load_stop();
    load_check("a follower cut off, then a partial partition");
    expect_converged();
    for (int i = 0; i < NODES; i++)
        stop_node(i, SIGTERM);
}
