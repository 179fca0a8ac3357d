/*
 * kv_proto.h - the kvd wire protocol codec, versions 1..7 (docs/protocol.md).
 *
 * The one module that encodes and decodes kvd frames; kvd, the client
 * library (libkvclient) and kvcli all use it, nobody else touches bytes.
 * It is a static library (kvproto), not installed: the published contract
 * is docs/protocol.md, and the published client API is kv_client.h.
 *
 *   frame    = u32 big-endian body length, then the body: exactly one
 *              MessagePack value of that length.
 *   request  = [op, id, args...]           (op: small uint, id: uint64)
 *   response = [id, status, result]        (status: a kv_status number)
 *
 * Decoding is zero-copy: keys and values in decoded structs point INTO the
 * frame buffer, which must outlive the struct. Arrays (key lists, txn ops,
 * scan entries...) go into a caller-provided kv_proto_arena, or, when the
 * arena is NULL, into one private block freed by kv_proto_request_free() /
 * kv_proto_response_free(). Decoders validate everything (types, counts
 * against the bytes left, trailing bytes, unknown ops, limits) and never
 * read outside [frame, frame + len).
 *
 * Encoders append complete frames (length prefix included) to a
 * kv_proto_buf, so a server can append many responses and write them with
 * one call. On failure an encoder leaves the buffer as it was.
 *
 * Threads: no global state; every function may be called from any thread,
 * objects (buffers, arenas, structs) belong to one thread at a time.
 */
#ifndef KV_PROTO_H
#define KV_PROTO_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "kv.h"

#ifdef __cplusplus
extern "C" {
#endif

/* ------------------------------------------------------------------------
 * Constants
 * ---------------------------------------------------------------------- */
#define KV_PROTO_VERSION 1     /* a connection's version before HELLO    */
#define KV_PROTO_MIN_VERSION 1 /* oldest version it can speak            */
#define KV_PROTO_MAX_VERSION 7 /* newest version it can speak (2: SCAN's
                                  keys_only argument, SNAPSHOT; 3:
                                  CLUSTER; 4: key expiry - an expiry on
                                  SET, MSET and TXN's set ops, TTL,
                                  EXPIRE, PERSIST; 5: history - GET_AT,
                                  MGET_AT, SCAN_AT, HISTORY, ROLLBACK,
                                  COMPACT; 6: WATCH, CANCEL and event
                                  frames; 7: SESSION - request ids of
                                  writes - and CONSISTENCY)              */
/* The version that brought key expiry (KV_PROTO_TTL...). */
#define KV_PROTO_EXPIRY_VERSION 4
/* The version that brought history (KV_PROTO_GET_AT...COMPACT). */
#define KV_PROTO_HISTORY_VERSION 5
/* The version that brought watches (KV_PROTO_WATCH, KV_PROTO_CANCEL). */
#define KV_PROTO_WATCH_VERSION 6
/* The version that brought SESSION (request ids) and CONSISTENCY. */
#define KV_PROTO_SESSION_VERSION 7

#define KV_PROTO_HEADER_SIZE 4 /* the big-endian u32 length prefix       */
/* Default largest frame body: a maximal value plus room for key and
 * framing (64 MiB + 64 KiB). kvd makes it configurable. */
#define KV_PROTO_DEFAULT_MAX_FRAME ((size_t)64 * 1024 * 1024 + 64 * 1024)
/* A body length can never exceed this (the prefix is a u32). */
#define KV_PROTO_LIMIT_MAX_FRAME ((size_t)UINT32_MAX)

/* Well-known TCP port of kvd. */
#define KV_PROTO_DEFAULT_PORT 7379

/* Operation codes: a request's first element. Stable numbers. */
#define KV_PROTO_OP_MAP(XX) \
    XX(HELLO, 0)            \
    XX(PING, 1)             \
    XX(AUTH, 2)             \
    XX(GET, 3)              \
    XX(MGET, 4)             \
    XX(SET, 5)              \
    XX(MSET, 6)             \
    XX(DEL, 7)              \
    XX(TXN, 8)              \
    XX(SCAN, 9)             \
    XX(METRICS, 10)         \
    XX(SNAPSHOT, 11)        \
    XX(SNAPSHOT_READ, 12)   \
    XX(CLUSTER, 13)         \
    XX(TTL, 14)             \
    XX(EXPIRE, 15)          \
    XX(PERSIST, 16)         \
    XX(GET_AT, 17)          \
    XX(MGET_AT, 18)         \
    XX(SCAN_AT, 19)         \
    XX(HISTORY, 20)         \
    XX(ROLLBACK, 21)        \
    XX(COMPACT, 22)         \
    XX(WATCH, 23)           \
    XX(CANCEL, 24)          \
    XX(SESSION, 25)         \
    XX(CONSISTENCY, 26)

typedef enum kv_proto_op {
#define KV__PROTO_OP_ENUM(name, code) KV_PROTO_##name = code,
    KV_PROTO_OP_MAP(KV__PROTO_OP_ENUM)
#undef KV__PROTO_OP_ENUM
    KV_PROTO_OP_COUNT
} kv_proto_op;

/* "GET", "MSET"...; "UNKNOWN" for codes outside the map. Never NULL. */
const char *kv_proto_op_name(int op);

/* ------------------------------------------------------------------------
 * Output buffer: frames are appended here
 * ---------------------------------------------------------------------- */
typedef struct kv_proto_buf {
    uint8_t *data; /* malloc'ed; NULL until the first append             */
    size_t len;    /* bytes of complete frames                           */
    size_t cap;
} kv_proto_buf;

/* An empty buffer (all zero; a zeroed struct is also a valid buffer). */
void kv_proto_buf_init(kv_proto_buf *b);
/* Forgets the contents, keeps the memory. */
void kv_proto_buf_reset(kv_proto_buf *b);
/* Frees the memory and re-initialises *b. NULL is a no-op. */
void kv_proto_buf_free(kv_proto_buf *b);
/* Ensures room for `extra` more bytes. Errors: KV_NO_MEMORY. */
int kv_proto_buf_reserve(kv_proto_buf *b, size_t extra);

/* ------------------------------------------------------------------------
 * Arena: where decoders put arrays, reusable across frames
 * ---------------------------------------------------------------------- */
typedef struct kv_proto_arena {
    struct kv__proto_chunk *chunks; /* private */
    size_t total;                   /* private: bytes handed out since reset */
} kv_proto_arena;

/* An empty arena (a zeroed struct is also a valid empty arena). */
void kv_proto_arena_init(kv_proto_arena *a);
/* Releases everything allocated since the last reset, keeping (at most)
 * one chunk big enough for that much, so a steady load stops allocating.
 * Every struct decoded into the arena becomes invalid. */
void kv_proto_arena_reset(kv_proto_arena *a);
/* Frees all memory. NULL is a no-op. */
void kv_proto_arena_free(kv_proto_arena *a);
/* size bytes aligned for any type, NULL if out of memory. For decoders;
 * also usable by kvd for per-batch scratch memory. */
void *kv_proto_arena_alloc(kv_proto_arena *a, size_t size);

/* ------------------------------------------------------------------------
 * Framing
 * ---------------------------------------------------------------------- */
typedef enum kv_proto_split_result {
    KV_PROTO_NEED_MORE = 0, /* incomplete: read more bytes              */
    KV_PROTO_FRAME = 1,     /* a whole frame is in the buffer            */
    KV_PROTO_TOO_LARGE = 2, /* declared length > max_frame: reply
                               KV_FRAME_TOO_LARGE and close             */
    KV_PROTO_INVALID = 3    /* declared length 0: reply KV_PROTOCOL and
                               close                                     */
} kv_proto_split_result;

/* Looks at buf[0..len), which must start at a frame boundary.
 * KV_PROTO_FRAME: the body is buf[*body_off .. *body_off + *body_len) and
 * the whole frame is *body_off + *body_len bytes: consume them and call
 * again for the next frame.
 * KV_PROTO_NEED_MORE: *body_len is the declared length once the 4-byte
 * header is complete (so a reader can reserve header + body), else 0.
 * KV_PROTO_TOO_LARGE / KV_PROTO_INVALID: *body_len is the declared length.
 * max_frame 0 means KV_PROTO_DEFAULT_MAX_FRAME. Never reads past len.
 * body_off and body_len must not be NULL. */
kv_proto_split_result kv_proto_frame_split(const void *buf, size_t len,
                                           size_t max_frame,
                                           size_t *body_off,
                                           size_t *body_len);

/* Big-endian u32 helpers for the length prefix. */
uint32_t kv_proto_read_u32(const void *p);
void kv_proto_write_u32(void *p, uint32_t v);

/* ------------------------------------------------------------------------
 * Requests
 * ---------------------------------------------------------------------- */

/* A decoded (or to-be-encoded) request. Only the fields of `op` matter;
 * decoders zero the rest. Byte strings point into the frame. */
typedef struct kv_proto_request {
    uint64_t id;
    int op; /* kv_proto_op */

    /* HELLO */
    uint64_t min_version; /* client's oldest supported version          */
    uint64_t max_version; /* client's newest supported version          */
    kv_key client_name;   /* may be empty                               */
    /* PING: optional payload, echoed back */
    int has_payload;
    kv_key payload;
    /* AUTH */
    kv_key secret;
    /* GET, SET (key); SCAN (prefix, may be empty) */
    kv_key key;
    /* SET */
    kv_key value;
    int has_expected;  /* 1: compare-and-swap on `expected`            */
    uint64_t expected; /* 0 = the key must not exist                   */
    /* Expiry (version 4) of SET, MSET and EXPIRE: has_expiry 1 when
     * given; expiry_mode KV_PROTO_EXPIRY_IN (expiry_ms from now) or
     * KV_PROTO_EXPIRY_AT (a Unix time in ms); expiry_ms >= 1. A TXN's
     * set ops carry theirs in kv_op.expire_at_ms (0: none), a time from
     * now where then_in[i] / else_in[i] is 1 (the arrays NULL: none is),
     * else a Unix time; has_expiry is then 1 when any op has one. */
    int has_expiry;
    int expiry_mode;
    uint64_t expiry_ms;
    const unsigned char *then_in;
    const unsigned char *else_in;
    /* EXPIRE (version 4): KV_PROTO_EXPIRE_* conditions, 0: none. */
    unsigned expire_flags;
    /* MGET, DEL */
    const kv_key *keys;
    size_t nkeys;
    /* MSET */
    const kv_pair *pairs;
    size_t npairs;
    /* TXN (kv_txn_cond) */
    const kv_compare *cmps;
    size_t ncmps;
    const kv_op *then_ops;
    size_t nthen;
    const kv_op *else_ops;
    size_t nelse;
    /* SCAN (prefix in `key`) */
    uint64_t cursor;
    uint64_t limit;    /* 0 = server default */
    int keys_only;     /* version 2: entries without values          */
    int has_keys_only; /* decoded: the keys_only argument was present
                          (a server speaking version 1 refuses it)    */

    /* CLUSTER (version 3): the subcommand in `key` ("status", "add",
     * "remove", "transfer"), a node id in `revision`, an address in
     * `value` (data NULL: absent). */
    /* SNAPSHOT_READ (version 2): bytes of the snapshot file that ends at
     * `revision`, from `offset`, at most `limit` (0 = server default) */
    uint64_t revision;
    uint64_t offset;

    /* History (version 5). GET_AT (key), MGET_AT (keys), SCAN_AT (prefix
     * in key, cursor, limit, keys_only), COMPACT: the revision in
     * `revision`. HISTORY: key's changes with revision in
     * [min_revision, revision] (revision 0: to the latest), at most
     * `limit` (0 = server default). ROLLBACK: `keys`, or with has_prefix
     * every key starting with `key` (may be empty), back to `revision`,
     * only if none changed after unchanged_since (0: unconditional). */
    uint64_t min_revision;
    uint64_t unchanged_since;
    int has_prefix;

    /* WATCH (version 6): `key`, or with has_prefix every key starting
     * with it (may then be empty), from revision `revision` (0: the next
     * change), at most `limit` events per frame (0 = server default).
     * CANCEL: the id of the WATCH request to end, in watch_id. */
    uint64_t watch_id;

    /* SESSION (version 7): the client id the connection's writes carry
     * with their request ids (0: none). CONSISTENCY (version 7): the
     * connection's reads, KV_PROTO_READ_* in `consistency`. */
    uint64_t client_id;
    uint64_t consistency;

    /* Set by the decoder. */
    int has_id;        /* 1 once the id could be read (also on failure) */
    const char *error; /* static detail when decoding failed, else NULL */
    void *owned_;      /* private */
} kv_proto_request;

/* CONSISTENCY's levels. */
#define KV_PROTO_READ_LINEARIZABLE 0 /* a cluster's leader answers, after
                                        a quorum confirms it (default)   */
#define KV_PROTO_READ_SERIALIZABLE 1 /* any node answers from its own
                                        store at once: possibly stale    */

/* An expiry's mode (the first element of [mode, ms]). */
#define KV_PROTO_EXPIRY_IN 0 /* ms from the time the server runs it */
#define KV_PROTO_EXPIRY_AT 1 /* a Unix time in ms                    */
/* The largest ms an expiry may carry (in either mode): a time from now
 * added to the clock stays far below 2^63. */
#define KV_PROTO_EXPIRY_MAX ((uint64_t)1 << 52)

/* EXPIRE's conditions (Redis 7's NX, XX, GT, LT). NX goes with none of
 * the others, GT not with LT. No expiry counts as an infinite one. */
#define KV_PROTO_EXPIRE_NX 1u /* only when the key has no expiry       */
#define KV_PROTO_EXPIRE_XX 2u /* only when it has one                  */
#define KV_PROTO_EXPIRE_GT 4u /* only when the new one is later        */
#define KV_PROTO_EXPIRE_LT 8u /* only when the new one is earlier      */
#define KV_PROTO_EXPIRE_ALL 15u

/* Limits the request decoder enforces (beyond the frame size). */
typedef struct kv_proto_limits {
    size_t max_key_size;   /* default KV_DEFAULT_MAX_KEY_SIZE           */
    size_t max_value_size; /* default KV_DEFAULT_MAX_VALUE_SIZE         */
} kv_proto_limits;

/* Fills *l with the defaults. */
void kv_proto_limits_init(kv_proto_limits *l);

/* Decodes the body of one request frame (the bytes after the length
 * prefix). limits may be NULL (defaults). Arrays go to arena, or to a
 * private block when arena is NULL (free with kv_proto_request_free()).
 * *out is always written. On failure out->error says why, out->has_id
 * says whether out->id (and out->op) are valid:
 *   has_id = 1: answer [id, status, detail] and keep the connection;
 *   has_id = 0: answer [0, status, detail] and close the connection.
 * Errors: KV_PROTOCOL (malformed, wrong type, missing or extra fields,
 * trailing bytes), KV_UNSUPPORTED (unknown op), KV_KEY_EMPTY,
 * KV_KEY_TOO_LARGE, KV_VALUE_TOO_LARGE, KV_INVALID_ARGUMENT (bad compare
 * or op kind), KV_NO_MEMORY. */
int kv_proto_request_decode(const void *body, size_t len,
                            const kv_proto_limits *limits,
                            kv_proto_arena *arena, kv_proto_request *out);

/* Looks ahead over the complete frames at the start of buf[0..len) (as
 * kv_proto_frame_split cuts them with max_frame) and collects into keys[]
 * the key of each frame that looks like a GET or a SET, at most max of
 * them, and into is_set[] (unless NULL) whether it is a SET, without
 * decoding anything else: for a server to prefetch a pipelined batch's
 * keys (kv_prefetch, kv_prefetch_writes) before running it. Only a hint:
 * frames are still decoded and checked one by one afterwards. Returns the
 * number of keys; they point into buf. */
size_t kv_proto_peek_keys(const void *buf, size_t len, size_t max_frame, kv_key *keys,
                          bool *is_set, size_t max);

/* Reads the id of a request from the first len bytes of its body, which
 * may be incomplete (a frame still arriving): [op, id, ... as the decoder
 * reads them. Returns 1 and sets *id when they are there, else 0. For an
 * error answer to a request that will not be read whole. */
int kv_proto_peek_id(const void *body, size_t len, uint64_t *id);

/* Frees what the decoder allocated without an arena. Safe on a request
 * decoded into an arena, on a zeroed struct, and on NULL. */
void kv_proto_request_free(kv_proto_request *req);

/* Appends one request frame for req (op, id and the op's fields).
 * Errors: KV_UNSUPPORTED (unknown op), KV_INVALID_ARGUMENT (bad compare
 * or op kind, NULL array with a non-zero count), KV_FRAME_TOO_LARGE (body
 * over 4 GiB), KV_NO_MEMORY. The caller checks its own frame limit. */
int kv_proto_request_encode(kv_proto_buf *b, const kv_proto_request *req);

/* ------------------------------------------------------------------------
 * Responses: decoding (client side)
 * ---------------------------------------------------------------------- */

/* A value in a decoded response; data points into the frame. */
typedef struct kv_proto_value {
    int found;        /* 0: absent (data NULL, len 0, version 0)        */
    int status;       /* TXN op results: the op's status; else KV_OK    */
    const void *data; /* non-NULL when found, even for 0 bytes          */
    size_t len;
    uint64_t version;
} kv_proto_value;

/* A HISTORY event (version 5): one change of a key; value points into
 * the frame. */
typedef struct kv_proto_event {
    uint64_t revision;
    kv_key key;               /* event frames: the key; HISTORY: {0}      */
    int deleted;              /* 1: the change removed the key (value NULL) */
    const void *value;
    size_t vlen;
    uint64_t create_revision;
    uint64_t version;         /* 1 for the value that created the key, ... */
    uint64_t expire_at_ms;    /* 0: none                                  */
} kv_proto_event;

/* A SCAN entry; pointers into the frame. */
typedef struct kv_proto_entry {
    kv_key key;
    const void *val;
    size_t vlen;
    uint64_t version;
} kv_proto_entry;

typedef enum kv_proto_metric_kind {
    KV_PROTO_METRIC_UINT = 0,
    KV_PROTO_METRIC_DOUBLE = 1,
    KV_PROTO_METRIC_MAP = 2 /* one level only: children are not maps */
} kv_proto_metric_kind;

/* A METRICS entry: name -> number, or name -> map of name -> number. */
typedef struct kv_proto_metric {
    const char *name; /* NUL-terminated (decoded: copied, never NULL) */
    kv_proto_metric_kind kind;
    uint64_t u; /* KV_PROTO_METRIC_UINT   */
    double d;   /* KV_PROTO_METRIC_DOUBLE */
    const struct kv_proto_metric *children; /* KV_PROTO_METRIC_MAP */
    size_t nchildren;
} kv_proto_metric;

typedef struct kv_proto_response {
    uint64_t id;
    int status;   /* the server's kv status                            */
    kv_key detail; /* error message when the result was a str, else {0} */

    /* HELLO */
    uint64_t proto_version;
    kv_key server_name;
    kv_key server_version;
    /* PING */
    int has_payload;
    kv_key payload;
    /* GET */
    kv_proto_value value;
    /* SET, MSET, DEL, TXN, EXPIRE, PERSIST: the new revision (0 if
     * nothing changed) */
    uint64_t version;
    /* TTL: the key's expiry time (Unix ms) and the time left (ms) when
     * the server answered; both 0 when the key has none */
    uint64_t expire_at_ms;
    uint64_t ttl_ms;
    /* DEL */
    uint64_t deleted;
    /* MGET */
    const kv_proto_value *values;
    size_t nvalues;
    /* TXN */
    int succeeded;
    const kv_proto_value *results;
    size_t nresults;
    /* SCAN */
    uint64_t cursor; /* next cursor, 0 when done */
    const kv_proto_entry *entries;
    size_t nentries;
    /* METRICS */
    const kv_proto_metric *metrics;
    size_t nmetrics;
    /* HISTORY: the server's compaction revision and the events, newest
     * first; COMPACT: the new compaction revision (also in version) */
    uint64_t compact_revision;
    const kv_proto_event *events;
    size_t nevents;
    /* ROLLBACK: keys changed (its revision in version, 0: none) */
    uint64_t changed;
    /* WATCH: `version` is the revision the watch delivers from */

    const char *error; /* static detail when decoding failed, else NULL */
    void *owned_;      /* private */
} kv_proto_response;

/* Decodes the body of a response frame to a request of operation op (a
 * response does not say its op: the client knows it from the id). When
 * status is KV_OK the result must have op's shape; otherwise it is nil or
 * a str (-> detail). Arrays and metric names go to arena, or to a private
 * block when arena is NULL (free with kv_proto_response_free()).
 * *out is always written; on failure out->error says why.
 * Errors: KV_PROTOCOL, KV_UNSUPPORTED (op unknown), KV_NO_MEMORY. */
int kv_proto_response_decode(const void *body, size_t len, int op,
                             kv_proto_arena *arena, kv_proto_response *out);

/* As kv_proto_response_decode(), for a request whose arguments shape its
 * result: flags KV_PROTO_RESULT_KEYS_ONLY for a SCAN sent with keys_only
 * (entries then have val NULL and vlen 0). */
#define KV_PROTO_RESULT_KEYS_ONLY 1u
int kv_proto_response_decode_ex(const void *body, size_t len, int op,
                                unsigned flags, kv_proto_arena *arena,
                                kv_proto_response *out);

/* As kv_proto_request_free(), for responses. */
void kv_proto_response_free(kv_proto_response *resp);

/* ------------------------------------------------------------------------
 * Responses: encoding (server side)
 *
 * Each appends one complete frame [id, status, result] to b. All return
 * KV_OK, KV_NO_MEMORY or KV_FRAME_TOO_LARGE (body over 4 GiB), and leave
 * b unchanged on failure.
 * ---------------------------------------------------------------------- */

/* Result nil, or a str when detail is not NULL. For every non-KV_OK
 * status (errors, GET's KV_NOT_FOUND, SET's KV_VERSION_MISMATCH) and for
 * ops whose success result is nil (AUTH, PING without payload). */
int kv_proto_resp_status(kv_proto_buf *b, uint64_t id, int status,
                         const char *detail);

/* HELLO: [version, server_name, server_version]. */
int kv_proto_resp_hello(kv_proto_buf *b, uint64_t id, uint64_t version,
                        const char *server_name, const char *server_version);

/* PING with a payload: the payload as bin. */
int kv_proto_resp_ping(kv_proto_buf *b, uint64_t id, const void *payload,
                       size_t len);

/* GET hit: [value, version]. */
int kv_proto_resp_value(kv_proto_buf *b, uint64_t id, const void *val,
                        size_t vlen, uint64_t version);

/* SET, MSET: the new revision. */
int kv_proto_resp_version(kv_proto_buf *b, uint64_t id, uint64_t version);

/* DEL: [deleted, version]. */
int kv_proto_resp_del(kv_proto_buf *b, uint64_t id, uint64_t deleted,
                      uint64_t version);

/* MGET: one entry per key, nil for missing ones (values[i].data NULL),
 * as kv_mget() fills them. */
int kv_proto_resp_mget(kv_proto_buf *b, uint64_t id, const kv_value *values,
                       size_t n);

/* MGET, streamed from kv_mget_with()'s callback without copying:
 *   kv_proto_mget_writer w;
 *   kv_proto_resp_mget_begin(b, id, n, &w);
 *   ... kv_proto_resp_mget_add(&w, val, vlen, version) per key, in order
 *       (val NULL: the key is missing) ...
 *   kv_proto_resp_mget_end(&w);   // or _abort(&w)
 * Exactly n adds must precede end (else KV_INVALID_ARGUMENT and the frame
 * is removed); after a failed begin, add and end refuse. Nothing else may be appended to b between begin and
 * end/abort; after a failed add, call abort: it removes the partial frame. */
typedef struct kv_proto_mget_writer {
    kv_proto_buf *b; /* private */
    size_t start;    /* private: offset of the frame in b */
    size_t left;     /* adds still expected                */
} kv_proto_mget_writer;

int kv_proto_resp_mget_begin(kv_proto_buf *b, uint64_t id, size_t n,
                             kv_proto_mget_writer *w);
int kv_proto_resp_mget_add(kv_proto_mget_writer *w, const void *val, size_t vlen,
                           uint64_t version);
int kv_proto_resp_mget_end(kv_proto_mget_writer *w);
void kv_proto_resp_mget_abort(kv_proto_mget_writer *w);

/* TXN: [succeeded, version, [op results]] from kv_txn_cond()'s result. */
int kv_proto_resp_txn(kv_proto_buf *b, uint64_t id, const kv_txn_result *r);

/* METRICS: store (may be NULL) as its kv_metrics field names, then the
 * caller's own entries (server metrics; maps nest one level at most).
 * Errors also: KV_INVALID_ARGUMENT (a map inside a map, NULL name). */
int kv_proto_resp_metrics(kv_proto_buf *b, uint64_t id,
                          const kv_metrics *store,
                          const kv_proto_metric *extra, size_t nextra);

/* The store's metrics as named entries (the names METRICS uses): fills
 * out[0..cap) and returns how many there are (call with cap 0 to count). */
size_t kv_proto_store_metrics(const kv_metrics *store, kv_proto_metric *out, size_t cap);

/* SCAN, streamed from kv_scan()'s callback without copying:
 *   kv_proto_scan_writer w;
 *   kv_proto_resp_scan_begin(b, id, &w);
 *   ... kv_proto_resp_scan_add(&w, key, klen, val, vlen, version), or
 *       kv_proto_resp_scan_add_key(&w, key, klen, version) for a
 *       keys_only SCAN (one kind per page) ...
 *   kv_proto_resp_scan_end(&w, next_cursor);   // or _abort(&w)
 * Nothing else may be appended to b between begin and end/abort. After a
 * failed add, call abort: it removes the partial frame. end encodes the
 * cursor and the entry count in their shortest form (moving the entries
 * back over the room begin reserved).
 *
 * Size: kv_proto_resp_scan_size() is what the frame body would be if
 * ended now, at most (the reserve for the cursor and count included);
 * kv_proto_resp_scan_entry_size() is exactly what one add appends. A
 * server keeps a page within its limit by checking their sum before it
 * adds. A copy of the writer taken between adds is a savepoint:
 * kv_proto_resp_scan_rewind(w, &copy) drops the entries added since. */
typedef struct kv_proto_scan_writer {
    kv_proto_buf *b; /* private */
    size_t start;    /* private: offset of the frame in b            */
    size_t end;      /* private: b->len after the last add            */
    size_t count;    /* entries added                                 */
    size_t items;    /* private: array elements (3 or 2 per entry)    */
} kv_proto_scan_writer;

int kv_proto_resp_scan_begin(kv_proto_buf *b, uint64_t id,
                             kv_proto_scan_writer *w);
int kv_proto_resp_scan_add(kv_proto_scan_writer *w, const void *key,
                           size_t klen, const void *val, size_t vlen,
                           uint64_t version);
int kv_proto_resp_scan_add_key(kv_proto_scan_writer *w, const void *key,
                               size_t klen, uint64_t version);
int kv_proto_resp_scan_end(kv_proto_scan_writer *w, uint64_t next_cursor);
void kv_proto_resp_scan_abort(kv_proto_scan_writer *w);
size_t kv_proto_resp_scan_size(const kv_proto_scan_writer *w);
/* keys_only: the size of a kv_proto_resp_scan_add_key (vlen ignored). */
size_t kv_proto_resp_scan_entry_size(size_t klen, size_t vlen,
                                     uint64_t version, int keys_only);
void kv_proto_resp_scan_rewind(kv_proto_scan_writer *w,
                               const kv_proto_scan_writer *saved);

/* ------------------------------------------------------------------------
 * Event frames (version 6): what a WATCH sends after its response
 *
 *   event frame = [watch_id, status, events, next_revision]   (4 elements)
 *   events      = [[revision, key, value | nil, create_revision, version,
 *                   expire_at_ms], ...]    or nil: the watch ended
 *
 * A response always has 3 elements, an event frame 4: that is how a
 * client tells them apart on a connection where both arrive. An end frame
 * (events nil) has status 0 after a CANCEL, 27 KV_COMPACTED when events
 * were lost; its next_revision is where a new watch resumes.
 * ---------------------------------------------------------------------- */

/* 1 if the frame body is an event frame (an array of 4), 0 otherwise (a
 * response, or not decodable: decode it as a response to learn why). */
int kv_proto_is_event_frame(const void *body, size_t len);

/* The size one event adds to an event frame's body (exactly). */
size_t kv_proto_event_size(const kv_event *e);
/* The bytes an event frame with no events takes (header included), at
 * most: a frame with events e is this plus their kv_proto_event_size. */
#define KV_PROTO_EVENT_FRAME_OVERHEAD 48

/* Appends an event frame [id, 0, [events[0..n)], next_revision] (n >= 1:
 * the events, keys and values of kv_watch_next). Errors: KV_NO_MEMORY,
 * KV_FRAME_TOO_LARGE; b unchanged then. */
int kv_proto_event_frame(kv_proto_buf *b, uint64_t id, const kv_event *events, size_t n,
                         uint64_t next_revision);
/* Appends an end frame [id, status, nil, next_revision]. */
int kv_proto_event_end(kv_proto_buf *b, uint64_t id, int status, uint64_t next_revision);

/* A decoded event frame; keys and values point into the frame. */
typedef struct kv_proto_event_frame_t {
    uint64_t id;            /* the WATCH request's id                   */
    int status;
    int end;                /* 1: the watch ended (events nil)          */
    const kv_proto_event *events;
    size_t nevents;
    uint64_t next_revision;
    const char *error;      /* static detail when decoding failed       */
    void *owned_;           /* private                                  */
} kv_proto_event_frame_t;

/* Decodes an event frame body. Arrays go to arena (or a private block,
 * freed by kv_proto_event_frame_free). *out is always written.
 * Errors: KV_PROTOCOL (not an event frame's shape), KV_NO_MEMORY. */
int kv_proto_event_frame_decode(const void *body, size_t len, kv_proto_arena *arena,
                                kv_proto_event_frame_t *out);
void kv_proto_event_frame_free(kv_proto_event_frame_t *f);

/* A successful response built element by element, for a server whose
 * results come from code that does not know the format:
 *   kv_proto_writer w;
 *   kv_proto_writer_begin(&w, b, id, hint);   // frame + [id, 0,
 *   ... one result value: kv_proto_writer_array(&w, 2), _bin, _uint ...
 *   kv_proto_writer_end(&w);                  // or _abort(&w)
 * Arrays and maps take their element count up front; the caller writes
 * exactly one result value (nested as it likes). The first failing call
 * sticks: later calls return it, and end removes the frame and returns
 * it (KV_NO_MEMORY, KV_FRAME_TOO_LARGE). Nothing else may be appended to
 * b between begin and end/abort. hint: a guess of the body size. */
typedef struct kv_proto_writer {
    kv_proto_buf *b; /* private */
    size_t start;    /* private: offset of the frame in b */
    int err;         /* the first failure, KV_OK while none */
} kv_proto_writer;

int kv_proto_writer_begin(kv_proto_writer *w, kv_proto_buf *b, uint64_t id, size_t hint);
int kv_proto_writer_array(kv_proto_writer *w, size_t n);
int kv_proto_writer_map(kv_proto_writer *w, size_t n);
int kv_proto_writer_uint(kv_proto_writer *w, uint64_t v);
int kv_proto_writer_int(kv_proto_writer *w, int64_t v);
int kv_proto_writer_double(kv_proto_writer *w, double v);
int kv_proto_writer_bool(kv_proto_writer *w, int v);
int kv_proto_writer_nil(kv_proto_writer *w);
/* Bytes as bin (values, keys). */
int kv_proto_writer_bin(kv_proto_writer *w, const void *p, size_t n);
/* A C string as str (names). */
int kv_proto_writer_str(kv_proto_writer *w, const char *s);
/* n bytes as str. */
int kv_proto_writer_strn(kv_proto_writer *w, const char *s, size_t n);
/* The frame's size so far, header included. */
size_t kv_proto_writer_size(const kv_proto_writer *w);
int kv_proto_writer_end(kv_proto_writer *w);
void kv_proto_writer_abort(kv_proto_writer *w);

#ifdef __cplusplus
}
#endif

#endif /* KV_PROTO_H */
