/*
 * snapshot.h - the replicated state machine's snapshot: the store and
 * where clients reach each node, as one buffer that Raft keeps and sends
 * to a follower too far behind, and installing such a buffer.
 *
 * Made on the Raft thread, where every write is applied, so that the store
 * does not change while it is copied (kvd_snap_encode), or, for a store
 * with history, by another thread from a store held at the snapshot's
 * revision while later writes go on (kvd_snap_encode_held): either way
 * the copy is exact, the store as of one revision. It holds every
 * key with its revision and expiry time (expired keys not yet removed
 * included: the leader's removals must find on a copy what they find
 * everywhere else), and, for a store that keeps history, every key's
 * earlier versions, per-key metadata and floor, and the compaction
 * revision, so that a node that installs it reads the past as the others
 * do. Format (little-endian):
 *
 *   "KVDSNAP3", u64 revision (the store's), u64 entries, u32 nodes,
 *   per node (where clients reach it): u64 id, u32 len, bytes,
 *   per entry: u32 klen, u32 vlen, u64 revision, u64 expire_at (0: none),
 *              key, value,
 *   u8 history (0: the store keeps none), and if 1:
 *     u64 compaction revision, u64 keys,
 *     per key: u32 klen, u32 versions, u64 floor, u64 revision,
 *              u64 create revision, u64 version (revision 0: metadata
 *              not carried), key,
 *       per earlier version, newest first: u64 revision, u64 until,
 *              u64 create revision, u64 version, u64 expire_at,
 *              u32 vlen, value,
 *   u64 checksum: XXH3 (64 bits, seed 0) of every byte before it.
 *
 * The caller may put sections of its own after it (kvd: the table of
 * applied request ids, sessions.h): kvd_snap_size says where it ends.
 *
 * "KVDSNAP2" (no history section) and "KVDSNAP1" (no expiry times, no
 * expired keys) are still installed; a node that installs one of those
 * has no history below it (kv_load: reads there are COMPACTED).
 */
#ifndef KVD_REPL_SNAPSHOT_H
#define KVD_REPL_SNAPSHOT_H

#include <stddef.h>
#include <stdint.h>

#include "kv.h"

#define KVD_SNAP_MAX_NODES 16

typedef struct kvd_snap_node {
    uint64_t id;
    char addr[64];
} kvd_snap_node;

typedef struct kvd_snap_counts {
    uint64_t revision, keys, history_keys, history_versions, stale_removed;
} kvd_snap_counts;

/* The state of st (which must not change meanwhile) and the nodes'
 * addresses into *out (malloc'ed) of *len bytes. KV_OK or KV_NO_MEMORY. */
int kvd_snap_encode(kv_store *st, const kvd_snap_node *nodes, unsigned nnodes,
                    unsigned char **out, size_t *len, kvd_snap_counts *counts);

/* The same from a store that keeps history and is held at revision rev
 * (kv_history_hold, which gave compact_rev): made by any thread while
 * the Raft thread applies later entries, and equal to what
 * kvd_snap_encode would have made at rev. KV_OK, KV_NO_MEMORY, or
 * kv_history_copy's errors. */
int kvd_snap_encode_held(kv_store *st, uint64_t rev, uint64_t compact_rev,
                         const kvd_snap_node *nodes, unsigned nnodes, unsigned char **out,
                         size_t *len, kvd_snap_counts *counts);

/* The length of the snapshot at the start of buf (len bytes), checked
 * whole; 0 if it is malformed or cut short. */
size_t kvd_snap_size(const void *buf, size_t len);

/* Makes st equal to the snapshot at the start of buf (whatever follows it
 * is ignored): every key at its revision, every
 * other key deleted at the snapshot's revision (newer than anything st
 * has: it is behind, or it would not install a snapshot), and its history
 * in place of st's when both keep history. The nodes' addresses go to
 * nodes[] (*nnodes of them). The whole buffer is checked before st is
 * touched: KV_CORRUPT changes nothing. KV_OK, KV_CORRUPT, KV_NO_MEMORY. */
int kvd_snap_install(kv_store *st, const void *buf, size_t len, kvd_snap_node *nodes,
                     unsigned *nnodes, kvd_snap_counts *counts);

#endif
