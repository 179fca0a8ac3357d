/*
 * cmd.h - kvd's protocol-neutral command layer.
 *
 * A front-end (MessagePack, RESP, ...) turns bytes into a kvd_cmd - one
 * struct for every command and its arguments - and hands it to
 * kvd_cmd_execute together with a kvd_reply, the front-end's
 * implementation of the reply interface below. The command layer is the
 * one place where authentication, MULTI queueing, statistics, latency and
 * the durability wait of writes are handled; the commands themselves
 * (cmd_kv.c, cmd_server.c, cmd_multi.c) call libkv and answer through the
 * reply interface only, so they never see a wire format.
 *
 * The reply interface is structural (error, ok, nil, integer, bytes,
 * array, map...) plus three results whose shape legitimately differs
 * between protocols: a value with its version (MessagePack: [value,
 * version]; RESP: the value), a write's revision (MessagePack: the
 * revision; RESP: +OK) and a delete's count and revision. A reply may be
 * completed later than its command was read (deferred commands, held
 * replies): see conn_write.c.
 *
 * Everything here runs on the connection's loop thread.
 */
#ifndef KVD_CMD_H
#define KVD_CMD_H

#include <stddef.h>
#include <stdint.h>

#include "kv.h"
#include "kv_proto.h"

struct kvd_conn;

/* Command flags. */
#define KVD_CF_NOAUTH 1u  /* allowed before AUTH                         */
#define KVD_CF_WRITE 2u   /* may change the store: a success waits for
                             durability before it is answered            */
#define KVD_CF_NOQUEUE 4u /* runs at once inside MULTI (not queued)      */
#define KVD_CF_NOTXN 8u   /* refused inside MULTI                        */
#define KVD_CF_READ 16u   /* reads the store: linearizable in a cluster  */

/* Every command: name (lower case, as in metrics), flags. The first ones
 * are the MessagePack protocol's operations, in their wire numbers (its
 * later ones, TTL, EXPIRE, PERSIST and the history ops GET_AT...COMPACT,
 * are mapped by fe_native.c). New
 * kinds go at the end: a cluster's Raft entries carry the numbers. */
#define KVD_CMD_MAP(XX)                                      \
    XX(HELLO, "hello", KVD_CF_NOAUTH | KVD_CF_NOTXN)         \
    XX(PING, "ping", KVD_CF_NOAUTH)                          \
    XX(AUTH, "auth", KVD_CF_NOAUTH | KVD_CF_NOTXN)           \
    XX(GET, "get", KVD_CF_READ)                              \
    XX(MGET, "mget", KVD_CF_READ)                            \
    XX(SET, "set", KVD_CF_WRITE)                             \
    XX(MSET, "mset", KVD_CF_WRITE)                           \
    XX(DEL, "del", KVD_CF_WRITE)                             \
    XX(TXN, "txn", KVD_CF_WRITE | KVD_CF_NOTXN)              \
    XX(SCAN, "scan", KVD_CF_READ | KVD_CF_NOTXN)             \
    XX(METRICS, "metrics", KVD_CF_NOTXN)                     \
    XX(SNAPSHOT, "snapshot", KVD_CF_NOTXN)                   \
    XX(SNAPSHOT_READ, "snapshot_read", KVD_CF_NOTXN)         \
    XX(CLUSTER, "cluster", KVD_CF_NOTXN)                     \
    XX(ECHO, "echo", 0)                                      \
    XX(SELECT, "select", 0)                                  \
    XX(QUIT, "quit", KVD_CF_NOAUTH | KVD_CF_NOQUEUE)         \
    XX(CLIENT, "client", 0)                                  \
    XX(COMMAND, "command", 0)                                \
    XX(INFO, "info", 0)                                      \
    XX(CONFIG, "config", 0)                                  \
    XX(DBSIZE, "dbsize", KVD_CF_READ)                        \
    XX(FLUSHDB, "flushdb", KVD_CF_WRITE | KVD_CF_NOTXN)      \
    XX(GETSET, "getset", KVD_CF_WRITE)                       \
    XX(GETDEL, "getdel", KVD_CF_WRITE)                       \
    XX(MSETNX, "msetnx", KVD_CF_WRITE)                       \
    XX(EXISTS, "exists", KVD_CF_READ)                        \
    XX(STRLEN, "strlen", KVD_CF_READ)                        \
    XX(APPEND, "append", KVD_CF_WRITE)                       \
    XX(INCRBY, "incrby", KVD_CF_WRITE)                       \
    XX(INCRBYFLOAT, "incrbyfloat", KVD_CF_WRITE)             \
    XX(KEYS, "keys", KVD_CF_READ | KVD_CF_NOTXN)             \
    XX(TYPE, "type", KVD_CF_READ)                            \
    XX(RENAME, "rename", KVD_CF_WRITE)                       \
    XX(MULTI, "multi", KVD_CF_NOQUEUE)                       \
    XX(EXEC, "exec", KVD_CF_WRITE | KVD_CF_NOQUEUE)          \
    XX(DISCARD, "discard", KVD_CF_NOQUEUE)                   \
    XX(WATCH, "watch", KVD_CF_NOQUEUE)                       \
    XX(UNWATCH, "unwatch", KVD_CF_NOQUEUE)                   \
    XX(READONLY, "readonly", KVD_CF_NOTXN)                   \
    XX(READWRITE, "readwrite", KVD_CF_NOTXN)                 \
    XX(CLUSTER_ANNOUNCE, "cluster_announce", KVD_CF_NOTXN)   \
    XX(TTL, "ttl", KVD_CF_READ)                              \
    XX(EXPIRE, "expire", KVD_CF_WRITE)                       \
    XX(PERSIST, "persist", KVD_CF_WRITE)                     \
    XX(GETEX, "getex", KVD_CF_WRITE)                         \
    XX(CLUSTER_EXPIRE, "cluster_expire", KVD_CF_NOTXN)       \
    XX(GET_AT, "get_at", KVD_CF_READ | KVD_CF_NOTXN)         \
    XX(MGET_AT, "mget_at", KVD_CF_READ | KVD_CF_NOTXN)       \
    XX(SCAN_AT, "scan_at", KVD_CF_READ | KVD_CF_NOTXN)       \
    XX(HISTORY, "history", KVD_CF_READ | KVD_CF_NOTXN)       \
    XX(ROLLBACK, "rollback", KVD_CF_WRITE | KVD_CF_NOTXN)    \
    XX(COMPACT, "compact", KVD_CF_WRITE | KVD_CF_NOTXN)      \
    XX(WATCH_CHANGES, "watch_changes", KVD_CF_NOTXN)         \
    XX(WATCH_CANCEL, "watch_cancel", KVD_CF_NOTXN)           \
    XX(SESSION, "session", KVD_CF_NOTXN)

typedef enum kvd_cmd_kind {
#define KVD__CMD_ENUM(name, str, flags) KVD_CMD_##name,
    KVD_CMD_MAP(KVD__CMD_ENUM)
#undef KVD__CMD_ENUM
    KVD_CMD_COUNT
} kvd_cmd_kind;

/* "get", "mset"...; "unknown" outside the map. */
const char *kvd_cmd_name(int kind);
unsigned kvd_cmd_flags(int kind);
/* Whether kind is one of the MessagePack protocol's operations (metrics
 * list those always, the others once used). */
int kvd_cmd_is_native(int kind);

/* SET options (flags). */
#define KVD_SET_NX 1u  /* only if absent  */
#define KVD_SET_XX 2u  /* only if present */
#define KVD_SET_GET 4u /* answer the old value instead of the revision */

/* Expiry of a write (kvd_cmd.exp_mode). */
#define KVD_EXP_NONE 0    /* none: a SET or MSET clears the key's expiry */
#define KVD_EXP_IN 1      /* exp ms from now: front-ends give this, and
                             kvd_cmd_execute turns it into KVD_EXP_AT  */
#define KVD_EXP_AT 2      /* at Unix time exp ms (a past time: the key is
                             written and at once absent, or EXPIRE
                             deletes it)                               */
#define KVD_EXP_KEEP 3    /* SET, GETEX: keep the key's expiry (KEEPTTL;
                             GETEX without an option)                  */
#define KVD_EXP_PERSIST 4 /* GETEX: remove the key's expiry            */
/* The largest exp a front-end passes (either mode), so that a time from
 * now plus the clock never overflows: KV_PROTO_EXPIRY_MAX ms. */
#define KVD_EXP_MAX KV_PROTO_EXPIRY_MAX

/* EXPIRE's conditions (kvd_cmd.flags): KV_PROTO_EXPIRE_NX, _XX, _GT, _LT.
 * TTL's answer in RESP (kvd_cmd.flags): seconds left (TTL), or */
#define KVD_TTL_MS 1u /* in ms (PTTL, PEXPIRETIME)                    */
#define KVD_TTL_AT 2u /* the expiry time itself (EXPIRETIME, PEXPIRETIME) */

/* CLIENT / CONFIG / COMMAND subcommands (kvd_cmd.sub). */
enum {
    KVD_SUB_NONE = 0,
    KVD_SUB_CLIENT_SETNAME, KVD_SUB_CLIENT_GETNAME, KVD_SUB_CLIENT_ID, KVD_SUB_CLIENT_SETINFO,
    KVD_SUB_CLIENT_INFO,
    KVD_SUB_CONFIG_GET, KVD_SUB_CONFIG_SET, KVD_SUB_CONFIG_RESETSTAT,
    KVD_SUB_COMMAND_COUNT, KVD_SUB_COMMAND_DOCS, KVD_SUB_COMMAND_INFO, KVD_SUB_COMMAND_LIST,
    KVD_SUB_UNKNOWN,
};

/* One command and its arguments. Bytes point into the front-end's input
 * (or a MULTI queue's copy) and are valid during kvd_cmd_execute only. */
typedef struct kvd_cmd {
    int kind;           /* kvd_cmd_kind */
    uint64_t id;        /* the request id (MessagePack; HTTP's
                           Kvd-Request-Id); 0 for others            */
    size_t size;        /* the request's size on the wire */
    /* GET, SET, APPEND, INCRBY..., SCAN/KEYS (prefix), RENAME (source),
     * PING/ECHO payload, AUTH secret, CLIENT/CONFIG/INFO argument */
    kv_key key;
    /* SET, APPEND, GETSET value; RENAME target; HELLO client name */
    kv_key value;
    int has_key;        /* PING: a payload was given; others: key set */
    unsigned flags;     /* SET: KVD_SET_*; SCAN: 1 = keys only; EXPIRE:
                           KV_PROTO_EXPIRE_*; TTL: KVD_TTL_*           */
    int has_expected;   /* SET: compare-and-swap on expected          */
    uint64_t expected;
    /* MGET, DEL, EXISTS, WATCH */
    const kv_key *keys;
    size_t nkeys;
    /* MSET, MSETNX */
    const kv_pair *pairs;
    size_t npairs;
    /* TXN */
    const kv_compare *cmps;
    size_t ncmps;
    const kv_op *then_ops;
    size_t nthen;
    const kv_op *else_ops;
    size_t nelse;
    /* TXN: for each op, 1 when its expire_at_ms is ms from now rather than
     * a Unix time (NULL: none is); kvd_cmd_execute resolves them. */
    const unsigned char *then_in, *else_in;
    /* SET, MSET, GETEX, EXPIRE: the expiry (KVD_EXP_*, exp in ms) */
    int exp_mode;
    uint64_t exp;
    /* HELLO: min/max version; SCAN: cursor, limit; SNAPSHOT_READ:
     * revision (a), offset (b), limit; INCRBY: delta in i; SELECT: db in i */
    uint64_t a, b, limit;
    int64_t i;
    double f;           /* INCRBYFLOAT */
    int sub;            /* CLIENT/CONFIG/COMMAND subcommand (cmd_server.c) */
    /* History (cmd_history.c): GET_AT, MGET_AT, SCAN_AT, COMPACT: the
     * revision in rev; HISTORY: key's changes in [min_rev, rev] (rev 0:
     * to the latest), at most limit; ROLLBACK: keys, or with flags
     * KVD_ROLLBACK_PREFIX every key starting with key, back to rev, only
     * if none changed after expected (0: unconditional). */
    uint64_t rev, min_rev;
} kvd_cmd;

#define KVD_ROLLBACK_PREFIX 1u

/* A connection's state as the command layer sees it. */
typedef struct kvd_multi kvd_multi;
typedef struct kvd_session {
    int protocol;        /* KVD_PROTOCOL_* */
    int native_version;  /* MessagePack protocol version (HELLO)   */
    int resp_version;    /* 2 or 3 (RESP's HELLO)                  */
    unsigned authed : 1;
    unsigned in_multi : 1; /* after MULTI: commands are queued       */
    unsigned stale_reads : 1; /* cluster: reads answered locally
                                 (HTTP: for one request)           */
    int auth_failures;
    uint64_t client_id;
    uint64_t req_client; /* SESSION (cluster): the client id its writes'
                            Raft entries carry with their request ids,
                            so that a retry is not applied twice; 0: none
                            (HTTP: Kvd-Client-Id, for one request) */
    char name[64];       /* CLIENT SETNAME / HELLO's client name   */
    kvd_multi *multi;    /* MULTI queue and WATCHed keys, or NULL  */
} kvd_session;

/* Why a single kvd refuses request ids (SESSION, HTTP's Kvd-Client-Id). */
#define KVD_IDS_NEED_CLUSTER                                                                \
    "request ids need a cluster node: a single kvd does not remember applied requests " \
    "(docs/replication.md)"

#define KVD_PROTOCOL_NATIVE 0
#define KVD_PROTOCOL_RESP 1
#define KVD_PROTOCOL_HTTP 2

/* ---- the reply interface --------------------------------------------------
 * Each function appends to the reply and returns KV_OK or the encoder's
 * failure (KV_NO_MEMORY, KV_FRAME_TOO_LARGE), which sticks: finish
 * reports it. A command writes exactly one value (an array or map counts
 * as one with its elements), or calls error once instead. */
typedef struct kvd_reply kvd_reply;
typedef struct kvd_reply_ops {
    /* A failure, or an outcome told by status: KV_NOT_FOUND (absent) and
     * KV_VERSION_MISMATCH (a condition failed) are RESP's nil. detail
     * may be NULL. */
    int (*error)(kvd_reply *r, int status, const char *detail);
    /* Success with nothing to return (RESP: +word). */
    int (*ok)(kvd_reply *r, const char *word);
    int (*nil)(kvd_reply *r);
    /* An absent array (EXEC after a WATCHed key changed): RESP2 *-1. */
    int (*nil_array)(kvd_reply *r);
    int (*integer)(kvd_reply *r, int64_t v);
    int (*uinteger)(kvd_reply *r, uint64_t v);
    int (*dbl)(kvd_reply *r, double v);
    int (*boolean)(kvd_reply *r, int v);
    int (*bytes)(kvd_reply *r, const void *p, size_t n);
    /* A name or a text (MessagePack str; RESP bulk or verbatim). */
    int (*text)(kvd_reply *r, const char *s, size_t n);
    /* A status word (RESP simple string, MessagePack str). */
    int (*word)(kvd_reply *r, const char *s);
    int (*array)(kvd_reply *r, size_t n);
    int (*map)(kvd_reply *r, size_t n); /* n pairs follow */
    /* A value read with its version. */
    int (*versioned)(kvd_reply *r, const void *p, size_t n, uint64_t version);
    /* A write's revision. */
    int (*written)(kvd_reply *r, uint64_t revision);
    /* A delete: how many existed, and its revision (0: nothing changed). */
    int (*deleted)(kvd_reply *r, uint64_t n, uint64_t revision);
    /* A key's expiry (TTL): found 0 when the key is absent, expire_at_ms
     * 0 when it has none, now_ms the store's clock; form KVD_TTL_* (the
     * RESP command's unit). MessagePack: [expire_at_ms, ms left] or
     * NOT_FOUND; RESP: an integer, -2 absent, -1 no expiry. */
    int (*expiry)(kvd_reply *r, unsigned form, int found, uint64_t expire_at_ms,
                  uint64_t now_ms);
    /* A change to one key that a condition may stop (EXPIRE, PERSIST):
     * status KV_OK (revision: the key's version after it; changed 0 when
     * there was nothing to change), KV_NOT_FOUND (no such key) or
     * KV_VERSION_MISMATCH (a condition failed). MessagePack: the revision
     * or the status; RESP: 1 if changed, else 0. */
    int (*updated)(kvd_reply *r, int status, int changed, uint64_t revision);

    /* A page of entries (SCAN, KEYS), streamed: begin, then adds; end
     * with the cursor that continues (with_cursor 0: a plain list). Its
     * size so far and an entry's size let a command keep a page under
     * the response limit; save/restore rewind over entries added since. */
    int (*page_begin)(kvd_reply *r, int keys_only, int with_cursor);
    size_t (*page_size)(kvd_reply *r);
    size_t (*page_entry_size)(kvd_reply *r, size_t klen, size_t vlen, uint64_t version);
    int (*page_add)(kvd_reply *r, const void *k, size_t klen, const void *v, size_t vlen,
                    uint64_t version);
    void (*page_save)(kvd_reply *r);
    void (*page_restore)(kvd_reply *r);
    int (*page_end)(kvd_reply *r, uint64_t next_cursor);

    /* Drops everything written for this reply (to answer differently). */
    void (*rewind)(kvd_reply *r);
    /* Completes the reply: KV_OK, or the first failure (the reply is then
     * dropped and the caller answers with an error instead). */
    int (*finish)(kvd_reply *r);
} kvd_reply_ops;

struct kvd_reply {
    const kvd_reply_ops *ops;
    kv_proto_buf *out;  /* where the reply goes                     */
    uint64_t id;        /* the request's id (MessagePack)           */
    int status;         /* KV_OK, or the status of a top-level error */
    int err;            /* first encoder failure                    */
    size_t mark;        /* out->len when the reply began            */
    int started;
    int none;           /* no reply now: it comes later (deferred)  */
    int keys_only;      /* the page being written has no values     */
    int resp3;
    /* GET: the front-end shows the key's expiry (HTTP's headers); the
     * command puts it in expire_at_ms (0: none) and the ms left in
     * expire_left_ms before versioned. */
    int want_expiry;
    uint64_t expire_at_ms, expire_left_ms;
    union {             /* the front-end's own state                */
        kv_proto_writer w;
        struct {
            kv_proto_scan_writer w, saved;
        } scan;
        struct {
            size_t head, count, saved_len, saved_count;
            int keys_only, with_cursor;
        } page;
        struct {           /* HTTP (http_reply.c): what the answer looks
                              like, carried with the reply so that one
                              given later (a cluster's write) renders the
                              same                                     */
            void *state;   /* the connection's kvd_http (scratch buffers) */
            int kind;      /* the command answered, for its JSON shape   */
            int code;      /* HTTP status instead of the status's, or 0 */
            const char *allow, *ctype; /* 405's Allow; a text's type     */
            uint64_t etag; /* X-Kvd-Version / ETag, with has_etag       */
            unsigned char mode, has_etag, cas_delete, head_only, close_after,
                http_minor, raw_done;
        } http;
    } u;
};

/* ---- executing ------------------------------------------------------------ */

/* EXEC's record of the expiry each key its transaction wrote was given,
 * since a transaction reads its own writes back without their expiry
 * (cmd_expire.c). Zero-initialised: empty. */
typedef struct kvd_written {
    struct kvd_written_entry *e;
    size_t n, cap;
    size_t *slots; /* hash index: entry index + 1, 0 = empty */
    size_t nslots;
} kvd_written;
void kvd__written_reset(kvd_written *w);
void kvd__written_free(kvd_written *w);

/* What a command runs with. */
typedef struct kvd_exec {
    struct kvd_conn *c;   /* NULL when a cluster node applies a log entry */
    struct kvd_server *srv;
    kvd_session *sess;
    const kvd_cmd *cmd;
    kvd_reply *r;
    kv_store *st;
    kv_txn *txn;    /* inside EXEC: the transaction, else NULL */
    kvd_written *written; /* inside EXEC: what txn wrote, with expiries */
    int fatal;      /* set by a command: close after this reply */
} kvd_exec;

/* Runs cmd on connection c and answers it into r (already initialised by
 * the front-end). Returns 0 to keep the connection, 1 when the reply is
 * the last one (close after it), -1 when out of memory (close now).
 * *clock is uv_hrtime() when the connection's batch of timed requests
 * began (the front-end may move it on past time it does not want counted);
 * the command joins that batch, timed when the batch ends. */
int kvd_cmd_execute(struct kvd_conn *c, const kvd_cmd *cmd, kvd_reply *r, uint64_t *clock);

/* Ends a batch of timed requests (conn.c, after answering a read's
 * requests; kvd_cmd_execute when the batch is full): one clock read, and
 * each request of the batch recorded with the batch's mean time since
 * *clock, which receives the time now. */
struct kvd_worker;
void kvd_cmd_time_batch(struct kvd_worker *w, uint64_t *clock);

/* A command refused before it was understood (a malformed request whose
 * kind is known or not: kind -1): counts the error and answers it. */
int kvd_cmd_refuse(struct kvd_conn *c, int kind, kvd_reply *r, int status, const char *detail);

/* The largest request c may send, in any protocol: --max-frame-size,
 * lower (1 MiB) while a password is set and not yet proven (authed: the
 * connection's, or a request's own credentials). */
size_t kvd_cmd_request_limit(const struct kvd_conn *c, int authed);

/* Starts a front-end's reply r to request id in out (fields zero). */
void kvd_reply_init(kvd_reply *r, const kvd_reply_ops *ops, kv_proto_buf *out, uint64_t id);

/* Whether kind (-1: unknown or unreadable) must wait for AUTH on c. */
int kvd_cmd_needs_auth(const struct kvd_conn *c, int kind);

/* Checks an AUTH secret now and answers it into r; a wrong one counts
 * against the peer's address and *fatal is set after repeated failures
 * on this connection. Returns the status, or -1 when out of memory. */
int kvd_cmd_auth_check(struct kvd_conn *c, kvd_reply *r, const void *secret, size_t len,
                       int *fatal);
/* The same check without an answer (HTTP's bearer token): sets
 * c->sess.authed, does the bookkeeping (throttle result, failure count,
 * WARN) and returns KV_OK or KV_AUTH_FAILED. The caller consults the
 * throttle (kvd_auth_throttle_admit) first. */
int kvd_cmd_auth_verify(struct kvd_conn *c, const void *secret, size_t len, int *fatal);
/* Whether secret is the password (1 when none is set), compared in
 * constant time, with no bookkeeping: for a token this connection
 * already proved with kvd_cmd_auth_verify. */
int kvd_cmd_secret_is(const struct kvd_conn *c, const void *secret, size_t len);

/* Turns cmd's expiries given as a time from now (KVD_EXP_IN, TXN ops'
 * then_in / else_in) into Unix times by the store's clock, once, so that
 * every node of a cluster applies the same times: *out is cmd with them
 * resolved (cmd itself when there were none), *mem what to free after
 * (NULL when nothing was allocated). Returns KV_OK or KV_NO_MEMORY. */
int kvd_cmd_resolve_expiry(kv_store *st, const kvd_cmd *cmd, kvd_cmd *out, void **mem);

/* Runs one command without the layer's bookkeeping (cmd_*.c, EXEC). */
int kvd__cmd_run(kvd_exec *x);

/* The command implementations (cmd_kv.c, cmd_server.c, cmd_multi.c).
 * Each answers through x->r and returns KV_OK or -1 (out of memory). */
int kvd__cmd_kv(kvd_exec *x);
int kvd__cmd_server(kvd_exec *x);
int kvd__cmd_multi(kvd_exec *x);
int kvd__cmd_expire(kvd_exec *x);
int kvd__cmd_history(kvd_exec *x);
/* Answers a failed read in the past (or rollback) with its status and a
 * detail that helps: for KV_COMPACTED the oldest revision still readable
 * (of key when klen > 0), for KV_FUTURE_REVISION the latest, for
 * KV_UNSUPPORTED that history is off. Other statuses as usual. */
int kvd__history_error(kvd_exec *x, int rc, uint64_t rev, const void *key, size_t klen);
/* cmd_server.c: COMPACT to rev in libuv's pool, its reply deferred (the
 * new compaction revision, as the synchronous path answers). */
int kvd__compact_in_pool(kvd_exec *x, uint64_t rev);
/* The expiry *at (0: none) of a key read at version `version` (0: a write
 * of EXEC's own transaction: from x->written), read after it: KV_OK, or
 * KV_CONFLICT when the key changed since (read it again). */
int kvd__key_expiry(kvd_exec *x, const void *key, size_t klen, uint64_t version, uint64_t *at);
/* kv_txn_set_ex on t, remembered in x->written when t is EXEC's. */
int kvd__txn_set(kvd_exec *x, kv_txn *t, const void *key, size_t klen, const void *val,
                 size_t vlen, uint64_t at);
/* A copy of cmd and every byte it points to, in one malloc'ed block (free
 * it with free); NULL when out of memory. TXN's compares and ops are not
 * copied (no caller needs them). */
kvd_cmd *kvd_cmd_copy(const kvd_cmd *cmd);

/* A WATCHed key and its version then (0: absent). */
typedef struct kvd_watched {
    const void *key;
    size_t len;
    uint64_t version;
} kvd_watched;
/* EXEC's first step: ends the session's MULTI and, when its queue may
 * run, returns 1 with the queue (times from now resolved) and watches,
 * owned by the session until kvd__multi_end; else answers x (EXEC
 * without MULTI, EXECABORT) and returns KV_OK or -1. A cluster encodes
 * them into one log entry (repl/entry.h). */
int kvd__multi_take(kvd_exec *x, kvd_cmd ***queue, size_t *n, const kvd_watched **w,
                    size_t *nw);
/* EXEC's second step: runs queue[0..n) as one transaction of x->st if
 * every watched key still has its version (else nil), answering x. */
int kvd__multi_exec(kvd_exec *x, const kvd_cmd *const *queue, size_t n, const kvd_watched *w,
                    size_t nw);
/* Leaves MULTI: forgets the queue and the watches. */
void kvd__multi_end(kvd_session *s);

/* Queues cmd into the session's MULTI (copying its bytes). */
int kvd__multi_queue(kvd_exec *x);
/* A command was refused while the session is in MULTI: EXEC refuses. */
void kvd__multi_refused(kvd_session *s);
void kvd_session_free(kvd_session *s);

/* A protocol error (malformed request or another protocol) from c: one
 * WARN naming the peer, at most every KVD_PROTO_WARN_EVERY_MS across the
 * server, with the count since the last one. what is kvd's own text,
 * never request bytes (a secret could be among them). */
#define KVD_PROTO_WARN_EVERY_MS 10000
void kvd_cmd_protocol_warn(struct kvd_conn *c, const char *what);

#endif /* KVD_CMD_H */
