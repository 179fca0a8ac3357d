/*
 * cluster.h - a test cluster of real kvd nodes on loopback, for the
 * integration tests of replication (test_cluster.c, test_cluster_faults.c).
 *
 * Three nodes bootstrap a Raft cluster (--cluster), a fourth may join it
 * (--cluster-join). Each node has its own data directory, log and port
 * file under the test's temporary directory; its client port is
 * ephemeral, its Raft port fixed (the --cluster list names it) from a
 * range chosen by the test's pid.
 *
 * With cluster_setup(1) ("proxied") the Raft traffic between the three
 * bootstrapped nodes goes through a raft_proxy (raftproxy.h) the test
 * can cut, delay and heal links of: node i listens on a port of its own
 * (--raft-bind) while --raft-addr and --cluster name the proxy's port for
 * it, which every other node dials.
 *
 * Helpers assert (Criterion) on failure; every wait is bounded.
 */
#ifndef KVD_TEST_CLUSTER_H
#define KVD_TEST_CLUSTER_H

#include <stdint.h>

#include "harness.h"
#include "raftproxy.h"

#define NODES 3     /* the cluster bootstrapped by the tests */
#define MAX_NODES 4 /* and one that joins it */

extern kvd_proc cluster_nodes[MAX_NODES];
/* SIGSTOPped or cut off: not asked by cluster_find_leader and
 * cluster_expect_same_revision. */
extern int cluster_paused[MAX_NODES];
/* --raft-snapshot-entries of the next starts ("16384" by default). */
extern const char *cluster_snapshot_entries;
/* More options for the next starts (NULL-terminated, at most 7; none by
 * default). */
extern const char *cluster_extra_args[8];
/* Node i's Raft address (what the others dial) is 127.0.0.1:base+i+1. */
extern int cluster_raft_base;
/* The proxy between the nodes' Raft ports (proxied clusters), or NULL. */
extern raft_proxy *cluster_proxy;

/* Criterion .init / .fini: harness_setup(), ports, directories; with
 * proxied, the proxy is started too. */
void cluster_setup(int proxied);
void cluster_teardown(void);

/* Milliseconds of CLOCK_MONOTONIC. */
long now_ms(void);

/* Starts node i: one of the bootstrapped cluster, or (i >= NODES) a node
 * that joins it once added. */
void start_node(int i);
void start_all(void);
/* Sends sig and reaps node i; after SIGTERM its exit status must be 0;
 * its log must have no sanitizer report. */
void stop_node(int i, int sig);
/* A client of node i (io timeout 10 s). */
kv_client *client(int i);
/* A METRICS figure of node i (answered by any node, never forwarded). */
uint64_t node_metric(int i, const char *name);
/* The store's revision on node i. */
uint64_t node_revision(int i);
/* The live node that leads, waiting up to 15 s for an election. */
int find_leader(void);
/* Writes key=val on the leader (retrying through an election); returns
 * the leader's index, *rev the write's revision. */
int write_somewhere(const char *key, const char *val, uint64_t *rev);
/* GET key on node i over RESP after READONLY (a possibly stale local
 * read): 1 and the value in out, or 0 (nil). */
int stale_get(int i, const char *key, char *out, size_t cap);
/* Waits until node i has key=val at revision rev (linearizably on the
 * leader, locally on a follower, whose revision must reach rev). */
void expect_on(int i, const char *key, const char *val, uint64_t rev);
/* Every live, unpaused node's store at the same revision (waits 10 s). */
void expect_same_revision(void);

#endif /* KVD_TEST_CLUSTER_H */
