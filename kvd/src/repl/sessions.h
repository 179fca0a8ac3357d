/*
 * sessions.h - the request ids a cluster has applied, so that a retried
 * write is not applied twice.
 *
 * A client that says who it is (SESSION: a client id, 64 random bits)
 * gives each write a sequence number (its request id, increasing across
 * its connections). The write's Raft entry carries both (entry.h). Every
 * node keeps, per client id, the last KVD_SESSIONS_WINDOW sequence
 * numbers applied and the replies they got (recorded.h), as part of the
 * replicated state: it changes only as entries are applied, in log
 * order, and travels in Raft snapshots. Applying an entry whose sequence
 * number is in its client's window changes nothing and gives the first
 * outcome again (so a pipeline of up to KVD_SESSIONS_WINDOW writes sent
 * again after its leader died gets every first answer back); one older
 * than the window, or never applied, changes nothing and is answered
 * "outcome unknown". So a client that retries a write (after
 * UNKNOWN_OUTCOME, a timeout or a lost connection) with the same request
 * id, on any node, gets it applied at most once.
 *
 * The table is bounded: at most KVD_SESSIONS_MAX clients; when a new one
 * comes, the one that wrote least recently (in log order, the same on
 * every node) is forgotten. Once more than KVD_SESSIONS_MAX_ENTRIES /
 * KVD_SESSIONS_WINDOW clients are remembered, each window keeps only its
 * share of KVD_SESSIONS_MAX_ENTRIES (at least the last request id, which
 * is always kept), shrinking as its client next writes. A reply over
 * KVD_SESSIONS_MAX_OUTCOME bytes is not kept (a duplicate is then
 * answered "outcome unknown", still not applied again).
 *
 * Threads: the Raft thread only (apply, snapshot, restore).
 */
#ifndef KVD_REPL_SESSIONS_H
#define KVD_REPL_SESSIONS_H

#include <stddef.h>
#include <stdint.h>

#define KVD_SESSIONS_MAX 16384
#define KVD_SESSIONS_WINDOW 256          /* request ids kept per client */
#define KVD_SESSIONS_MAX_ENTRIES 262144  /* shared by the windows        */
#define KVD_SESSIONS_MAX_OUTCOME 4096

typedef struct kvd_sessions kvd_sessions;

/* A table of at most max clients (0: KVD_SESSIONS_MAX). NULL when out of
 * memory. */
kvd_sessions *kvd_sessions_new(size_t max);
void kvd_sessions_free(kvd_sessions *s);

/* What to do with a write of client's request seq (client != 0). */
enum {
    KVD_SESSION_NEW = 0,   /* not seen: apply it, then kvd_sessions_record */
    KVD_SESSION_DUPLICATE, /* applied, in the window: *outcome (len bytes)
                              is its recorded reply, NULL when not kept   */
    KVD_SESSION_STALE,     /* older than the window, or never applied
                              though a later one was: not again           */
};
int kvd_sessions_check(const kvd_sessions *s, uint64_t client, uint64_t seq,
                       const void **outcome, size_t *len);

/* Remembers that client's request seq was applied with this recorded
 * reply (copied; not kept when over KVD_SESSIONS_MAX_OUTCOME), making
 * client the most recent one and seq the last of its window (a seq at or
 * below the last one starts the window over); forgets the least recent
 * client when the table is full. KV_OK or KV_NO_MEMORY (then the
 * request is remembered without its reply). */
int kvd_sessions_record(kvd_sessions *s, uint64_t client, uint64_t seq, const void *outcome,
                        size_t len);

/* How many clients are remembered. */
size_t kvd_sessions_count(const kvd_sessions *s);

/* The table as a snapshot section (a malloc'ed block in *out, *len
 * bytes): "KVDSESS2", u32 count, then from the least to the most recent
 * client u64 client, u32 n, and its window's n request ids from the
 * oldest, each u64 seq, u32 reply length (0xffffffff: not kept), the
 * reply; little-endian. KV_OK or KV_NO_MEMORY. kvd_sessions_load also
 * reads "KVDSESS1" (kvd before windows: one request id per client, no n). */
int kvd_sessions_save(const kvd_sessions *s, unsigned char **out, size_t *len);

/* Replaces the table with a section from kvd_sessions_save at p (at most
 * avail bytes); *used receives its length. KV_OK, KV_CORRUPT (malformed:
 * the table is then empty) or KV_NO_MEMORY. */
int kvd_sessions_load(kvd_sessions *s, const void *p, size_t avail, size_t *used);

/* Forgets every client. */
void kvd_sessions_clear(kvd_sessions *s);

#endif /* KVD_REPL_SESSIONS_H */
