/*
 * repl.h - kvd's replication on Raft, behind one small interface so that
 * the Raft engine (canonical raft today, libraft-dev) can be swapped.
 *
 * A cluster node runs Raft on a thread of its own (its own libuv loop,
 * Raft's log and snapshots under --data-dir). A write command is not run
 * where it arrives: the worker encodes it as one log entry (entry.h) and
 * proposes it; once the entry is committed, every node applies it, in log
 * order, on its Raft thread, through the command layer and libkv's one
 * write path, so every node makes the same changes with the same
 * revisions. The proposing connection's reply is deferred (a held slot,
 * conn_write.c) and filled from the apply's recorded reply (recorded.h).
 */
#ifndef KVD_REPL_H
#define KVD_REPL_H

#include <stddef.h>
#include <stdint.h>

#include "../cmd.h"

struct kvd_server;
struct kvd_worker;
typedef struct kvd_repl kvd_repl;

/* Starts the node described by the server's configuration (--node-id,
 * --raft-addr, --cluster, --data-dir): opens or bootstraps its Raft
 * state and starts the Raft thread. Returns 0, or -1 after logging why. */
int kvd_repl_start(struct kvd_server *s);

/* Shutdown, in two steps around the workers' own: begin lets proposals
 * in flight finish for a grace period, then fails what remains (its
 * clients are told the outcome is unknown); end joins the thread and
 * frees everything (after the workers have stopped). */
void kvd_repl_begin_stop(kvd_repl *r);
void kvd_repl_end(kvd_repl *r);

/* Runs a write command through Raft for x's connection: its reply is
 * deferred until the entry is applied (or refused at once when this node
 * is not the leader). Returns KV_OK, or -1 when out of memory. */
int kvd_repl_submit(kvd_exec *x);

/* Answers a read command of x's connection from this node's store once
 * a quorum has confirmed that this node still leads and it has applied
 * everything committed before the read arrived (a Raft barrier, shared
 * by all the reads that arrive while one is in flight): a linearizable
 * read. Refused at once on a follower. Returns KV_OK or -1. */
int kvd_repl_read(kvd_exec *x);

/* CLUSTER: "status" (a JSON document: this node's view of every member),
 * "add" ID ADDRESS (a node started with --cluster-join becomes a voter
 * once it has caught up), "remove" ID, "transfer" [ID] (leadership;
 * 0: the most caught-up voter). Changes run on the leader; their reply
 * waits until the new configuration is committed. */
int kvd_repl_admin(kvd_exec *x);

/* Delivers the completed proposals of worker w (its loop thread). */
void kvd_repl_drain(struct kvd_worker *w);

#define KVD_REPL_MAX_PEERS 16

/* What `cluster status` and the metrics show: this node's role, indexes
 * and counters. apply lag = commit_index - applied_index. */
typedef struct kvd_repl_status {
    uint64_t id, leader_id, term, commit_index, applied_index, last_index;
    int role; /* 0 follower, 1 candidate, 2 leader, 3 unavailable */
    char leader_addr[64];
    uint64_t proposals, proposals_failed, leader_changes;
    uint64_t batches;    /* Raft entries that carried several writes  */
    uint64_t duplicates; /* writes with a request id applied before: not
                            applied again (sessions.h)               */
    uint64_t sessions;   /* clients whose last request id is kept     */
    /* Raft snapshots: taken here (and the last one's size), installed
     * here (a restart, or the leader's to a follower behind) */
    uint64_t snapshots, snapshot_bytes, snapshots_installed, snapshot_installed_bytes;
    /* The leader's view of the other members: the highest index each has
     * (match) and how far it is behind this node's log (lag); npeers 0 on
     * other nodes. */
    int npeers;
    struct {
        uint64_t id, match, lag;
    } peers[KVD_REPL_MAX_PEERS];
} kvd_repl_status;
void kvd_repl_status_read(kvd_repl *r, kvd_repl_status *out);

#endif /* KVD_REPL_H */
