/*
 * frontend.h - what a protocol front-end gives the connection code: how
 * to cut the input into messages, how to run one (parse it into a
 * kvd_cmd and execute it through the command layer, cmd.h), how to start
 * a reply to a request, and how to say a last, fatal error. conn.c knows
 * no protocol's framing: it only calls these.
 *
 * Front-ends: fe_native.c (length-prefixed MessagePack frames, kvd's own
 * protocol), fe_resp.c (the Redis protocol, RESP2/RESP3 and inline
 * commands) and fe_http.c (HTTP/1.1: the REST API, /metrics, /healthz).
 * kvd_frontend_detect picks one from a connection's first bytes.
 */
#ifndef KVD_FRONTEND_H
#define KVD_FRONTEND_H

#include <stddef.h>
#include <stdint.h>

#include "cmd.h"

struct kvd_conn;
struct kvd_watcher;

/* kvd_frontend.split results. */
#define KVD_MSG_MORE 0  /* incomplete: read more                        */
#define KVD_MSG_READY 1 /* *msg_len bytes form one message              */
#define KVD_MSG_FATAL 2 /* the stream is broken: the front-end queued
                           its last error (c->fatal is set)             */

typedef struct kvd_frontend {
    const char *name;
    int protocol; /* KVD_PROTOCOL_* */
    /* Looks at p[0..len), which starts at a message boundary. */
    int (*split)(struct kvd_conn *c, const uint8_t *p, size_t len, size_t *msg_len);
    /* Runs one message (its bytes stay valid during the call). Returns 0
     * to go on, 1 when its reply was the last (close after it), -1 when
     * out of memory (close now). *clock as kvd_cmd_execute. */
    int (*run)(struct kvd_conn *c, const uint8_t *msg, size_t len, uint64_t *clock);
    /* The size of the message that begins with the len buffered bytes
     * p, when known from its header (to read it whole), else 0. */
    size_t (*want)(const struct kvd_conn *c, const uint8_t *p, size_t len);
    /* Starts a reply to request id (0 when there is none) in c->out. */
    void (*reply_init)(struct kvd_conn *c, kvd_reply *r, uint64_t id);
    /* Queues a last error for the connection (out of memory, too many
     * connections, a broken stream); partial (have bytes) is the
     * unanswered message's start, if any. Returns 0, or -1 if even that
     * could not be queued. */
    int (*fatal)(struct kvd_conn *c, const uint8_t *partial, size_t have, int status,
                 const char *detail);
    /* Optional: starts the cache misses of the keys of the messages
     * ahead; returns how many messages need no more look-ahead. */
    size_t (*prefetch)(struct kvd_conn *c, const uint8_t *p, size_t len);
    /* Optional: frees c->fe_state (the connection is gone). */
    void (*release)(struct kvd_conn *c);
    /* Optional, for a front-end that offers watches (watchers.h): appends
     * events[0..n) of watcher wt to c->out (next_revision: where the
     * watch goes on after them), or the end of the watch (status KV_OK:
     * cancelled; KV_COMPACTED: events were lost, resume at
     * next_revision). Return KV_OK or KV_NO_MEMORY (then nothing is
     * appended). */
    int (*watch_events)(struct kvd_conn *c, const struct kvd_watcher *wt, const kv_event *ev,
                        size_t n, uint64_t next_revision);
    int (*watch_end)(struct kvd_conn *c, const struct kvd_watcher *wt, int status,
                     uint64_t next_revision);
} kvd_frontend;

extern const kvd_frontend kvd_fe_native;
extern const kvd_frontend kvd_fe_resp;
extern const kvd_frontend kvd_fe_http;

/* The front-end of a listener dedicated to one protocol (KVD_PROTOCOL_*),
 * or NULL for -1: chosen by the first bytes. */
const kvd_frontend *kvd_frontend_for(int protocol);

/* The front-end for a connection whose first bytes are p[0..len) (len >
 * 0): RESP for '*' or an inline command (a line starting with a letter),
 * HTTP for an HTTP/1.x request line (or a first line over 8 KiB that
 * starts with an HTTP method: a long key in the target), else kvd's own
 * frames. A frame's length prefix can never start with '*' or a letter
 * while the frame limit is below KVD_MAX_FRAME_SIZE (config.h, checked at
 * start-up). NULL: not decidable yet (a letter, and the first line is not
 * complete). */
const kvd_frontend *kvd_frontend_detect(const uint8_t *p, size_t len);

/* For the front-ends' prefetch: the n keys (at most KVD_PREFETCH_MAX) of
 * the GETs and SETs ahead (is_set[i]: key i is a SET's), as kv_prefetch
 * and kv_prefetch_writes take them (a write also meets the key's
 * history). Pipelined requests on different keys are independent: their
 * cache misses start together instead of one request at a time. */
#define KVD_PREFETCH_MAX 16
void kvd_prefetch(kv_store *store, const kv_key *keys, const bool *is_set, size_t n);

#endif /* KVD_FRONTEND_H */
