/*
 * entry.h - a write command as a Raft log entry: kvd_cmd to bytes and
 * back, so that every node applies exactly the command the leader was
 * asked to run.
 */
#ifndef KVD_REPL_ENTRY_H
#define KVD_REPL_ENTRY_H

#include <stddef.h>
#include <stdint.h>

#include "../cmd.h"

/* Encodes cmd into a buffer from raft_malloc (raft takes it), its clock
 * reading 0 until kvd_entry_stamp, with the request id (client, seq) a
 * client gave it (0, 0: none; sessions.h). Returns NULL when out of
 * memory. */
void *kvd_entry_encode(const kvd_cmd *cmd, uint64_t client, uint64_t seq, size_t *len);

/* Writes the leader's clock reading (ms since the Unix epoch) into an
 * entry from kvd_entry_encode, as it proposes it: every node applies the
 * entry with that reading as "now" for expiry. */
void kvd_entry_stamp(void *entry, uint64_t clock_ms);

/* A decoded entry: the command points into the entry's bytes and into
 * arrays owned here. */
typedef struct kvd_entry {
    kvd_cmd cmd;
    uint64_t clock_ms; /* the leader's clock at proposal; 0: none (an
                          entry of format 1 or 2, or never stamped) */
    uint64_t client, seq; /* the request id (format 5); 0 0: none */
    void *arrays; /* malloc'ed keys/pairs/compares/ops */
} kvd_entry;

/* Decodes buf[0..len). Returns KV_OK, KV_CORRUPT (malformed) or
 * KV_NO_MEMORY. Release with kvd_entry_free. */
int kvd_entry_decode(const void *buf, size_t len, kvd_entry *e);
void kvd_entry_free(kvd_entry *e);

/* EXEC in a cluster: a MULTI queue and its WATCHed keys as one entry of
 * kind KVD_CMD_EXEC (the queue in its value), applied as one transaction
 * on every node. Returns NULL when out of memory. */
void *kvd_entry_encode_exec(const kvd_cmd *const *queue, size_t n, const kvd_watched *watched,
                            size_t nw, uint64_t client, uint64_t seq, size_t *len);

/* A decoded EXEC entry's queue and watches (pointing into the entry's
 * bytes). */
typedef struct kvd_exec_batch {
    kvd_entry *entries;      /* n decoded commands */
    const kvd_cmd **queue;   /* n: &entries[i].cmd */
    size_t n;
    kvd_watched *watched;
    size_t nwatched;
} kvd_exec_batch;

/* Decodes e (an entry of kind KVD_CMD_EXEC). KV_OK, KV_CORRUPT or
 * KV_NO_MEMORY; release with kvd_entry_free_exec. */
int kvd_entry_decode_exec(const kvd_entry *e, kvd_exec_batch *b);
void kvd_entry_free_exec(kvd_exec_batch *b);

/* A batch: writes the Raft thread found queued together, proposed as one
 * Raft entry (one append, one AppendEntries per follower), each applied
 * on its own and in order on every node, as if proposed one by one.
 * kvd_entry_batch copies n encoded, stamped entries (they stay the
 * caller's) into one from raft_malloc; NULL when out of memory. */
void *kvd_entry_batch(void *const *entries, const size_t *lens, size_t n, size_t *len);

/* Whether buf[0..len) is a batch (else a single write entry). */
int kvd_entry_is_batch(const void *buf, size_t len);

/* Walks a batch's writes: open checks the batch's header and gives its
 * count (KV_OK or KV_CORRUPT); each next gives one write's bytes, for
 * kvd_entry_decode: KV_OK, KV_NOT_FOUND once all are given, or KV_CORRUPT
 * (a length past the batch's end). */
typedef struct kvd_batch_iter {
    const unsigned char *p, *end;
    uint32_t left;
} kvd_batch_iter;
int kvd_entry_batch_open(const void *buf, size_t len, kvd_batch_iter *it, size_t *n);
int kvd_entry_batch_next(kvd_batch_iter *it, const void **entry, size_t *len);

#endif /* KVD_REPL_ENTRY_H */
