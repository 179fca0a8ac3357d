/*
 * kv_client.h - libkvclient, the blocking C client for kvd.
 *
 * This is the whole public API of the client library: if it is not in this
 * file, it is not API. It speaks kvd's wire protocol (docs/protocol.md)
 * over TCP (IPv4/IPv6) or a Unix socket and reuses libkv's vocabulary from
 * kv.h: kv_value, kv_key, kv_pair, kv_compare, kv_op, kv_txn_result and the
 * kv status codes, which travel unchanged in kvd's frames. It needs kv.h the
 * header only; it does not link libkv, the store.
 *
 * Concepts
 *   kv_client           One connection to one kvd. Blocking. A client
 *                       belongs to ONE thread at a time: use one client per
 *                       thread (clients share nothing, so many threads with
 *                       their own clients are fine).
 *   kv_client_pipeline  A batch of requests queued on a client, sent in one
 *                       write and answered in order.
 *
 * Errors: every function that can fail returns a kv status (0 = KV_OK).
 * Outcomes (KV_NOT_FOUND, KV_VERSION_MISMATCH) leave the connection usable,
 * as do the server's per-request errors (KV_KEY_TOO_LARGE, ...).
 * Transport failures close the connection: KV_CLOSED (peer closed or not
 * connected), KV_TIMEOUT (io_timeout_ms passed: the reply may still come,
 * so the connection cannot be reused), KV_IO, KV_PROTOCOL (the server sent
 * something undecodable); after them every call returns KV_CLOSED until
 * kv_client_connect() is called again. kv_client_last_error() gives a
 * human message for the last failure. Outputs are left untouched on
 * failure. No function prints, aborts or raises SIGPIPE.
 */
#ifndef KV_CLIENT_H
#define KV_CLIENT_H

#include <stddef.h>
#include <stdint.h>

#include "kv.h"

#ifdef __cplusplus
extern "C" {
#endif

#if defined(KV_CLIENT_STATIC_DEFINE)
#define KV_CLIENT_API
#elif defined(KV_CLIENT_BUILDING_LIBRARY)
#define KV_CLIENT_API __attribute__((visibility("default")))
#else
#define KV_CLIENT_API
#endif

#define KV_CLIENT_VERSION_STRING KV_VERSION_STRING
#define KV_CLIENT_DEFAULT_PORT 7379
/* Largest response frame accepted by default (as kvd's default limit). */
#define KV_CLIENT_DEFAULT_MAX_FRAME ((size_t)64 * 1024 * 1024 + 64 * 1024)

/* The library's version, e.g. "0.1.0". */
KV_CLIENT_API const char *kv_client_version(void);

/* As kv_strerror() / kv_status_name() (same table), so a program need not
 * link libkv for them. Static strings, never NULL. */
KV_CLIENT_API const char *kv_client_strerror(int status);
KV_CLIENT_API const char *kv_client_status_name(int status);

/* ------------------------------------------------------------------------
 * Connecting
 * ---------------------------------------------------------------------- */
typedef struct kv_client kv_client;

typedef struct kv_client_options {
    const char *host;      /* name or address (IPv4, IPv6 without brackets);
                              default "127.0.0.1"                        */
    uint16_t port;         /* default KV_CLIENT_DEFAULT_PORT (7379)       */
    const char *unix_path; /* if not NULL, a Unix socket; host/port unused */
    const char *password;  /* if not NULL, AUTH with it after HELLO       */
    const char *client_name; /* sent in HELLO; default "libkvclient"      */
    int connect_timeout_ms; /* per address tried; default 5000; <0: none.
                               Name resolution itself is not bounded.    */
    int io_timeout_ms;      /* bound on each call's network wait;
                               default 0 = wait forever                  */
    size_t max_frame;       /* largest request sent and response
                               accepted; default
                               KV_CLIENT_DEFAULT_MAX_FRAME               */
} kv_client_options;

/* Fills *opts with the defaults. */
KV_CLIENT_API void kv_client_options_init(kv_client_options *opts);

/* Creates an unconnected client. opts may be NULL (defaults); its strings
 * are copied. *out owns the client until kv_client_close().
 * Errors: KV_INVALID_ARGUMENT (unix_path too long), KV_NO_MEMORY. */
KV_CLIENT_API int kv_client_new(const kv_client_options *opts,
                                kv_client **out);

/* Connects (closing any current connection first), negotiates the
 * protocol version with HELLO and authenticates with AUTH if a password is
 * set. May be called again to reconnect after a transport failure.
 * Errors: KV_CONNECT (refused, unreachable, unknown host),
 * KV_TIMEOUT, KV_UNSUPPORTED (no common protocol version),
 * KV_AUTH_FAILED, KV_AUTH_REQUIRED (server wants a password, none set),
 * KV_BUSY (server full), KV_CLOSED, KV_IO, KV_PROTOCOL, KV_NO_MEMORY.
 * kv_client_last_error() then says e.g.
 * "cannot connect to 127.0.0.1:7379: connection refused". */
KV_CLIENT_API int kv_client_connect(kv_client *c);

/* Shorthand: kv_client_new() + kv_client_connect(). On a connect failure
 * the client is still returned in *out (so kv_client_last_error() can be
 * read) and must be closed; only on KV_NO_MEMORY / KV_INVALID_ARGUMENT is
 * *out left NULL. */
KV_CLIENT_API int kv_client_open(const kv_client_options *opts,
                                 kv_client **out);

/* Closes the connection, if any; the client can reconnect. */
KV_CLIENT_API void kv_client_disconnect(kv_client *c);

/* Closes the connection and frees the client (and its pipelines' queued
 * state must no longer be used: free pipelines first). NULL is a no-op. */
KV_CLIENT_API void kv_client_close(kv_client *c);

/* 1 when connected (as far as the client knows), else 0. */
KV_CLIENT_API int kv_client_is_connected(const kv_client *c);

/* Looks, without sending anything or waiting, whether the server has
 * closed the connection since the last reply (kvd stopped or restarted,
 * an idle timeout, a connection-level error it sent before closing), so
 * an idle client can reconnect before its next request instead of
 * failing it. Returns KV_OK when the connection is open as far as the
 * socket tells, KV_CLOSED when not connected or the server closed it (the
 * client is then disconnected; kv_client_connect() reconnects). It cannot
 * see a server that vanished without closing (a host that went down). */
KV_CLIENT_API int kv_client_check(kv_client *c);

/* A human message for the client's last failure ("" if none). Valid until
 * the next call on the client. Never NULL. */
KV_CLIENT_API const char *kv_client_last_error(const kv_client *c);

/* 1 when the client's last failure was its own refusal, before anything
 * was sent (the connection stays usable): so far only KV_FRAME_TOO_LARGE
 * for a request above opts.max_frame. 0 otherwise, in particular for the
 * same status coming from the server. */
KV_CLIENT_API int kv_client_last_error_local(const kv_client *c);

/* What HELLO negotiated: protocol version (0 if not connected), server
 * name and version ("" if not connected). Valid until the next connect. */
KV_CLIENT_API int kv_client_protocol_version(const kv_client *c);
KV_CLIENT_API const char *kv_client_server_name(const kv_client *c);
KV_CLIENT_API const char *kv_client_server_version(const kv_client *c);

/* ------------------------------------------------------------------------
 * A cluster: retried writes and stale reads (protocol version 7)
 * ---------------------------------------------------------------------- */

/* The most retries kv_client_set_retries() takes. */
#define KV_CLIENT_MAX_RETRIES 100

/* Makes c send a write (set, mset, del, txn, expire, persist, rollback,
 * compact) again, up to `retries` times (0: never, the default), when its
 * outcome is unknown - KV_UNKNOWN_OUTCOME, a lost connection, a timeout -
 * or no leader is known (KV_NOT_LEADER without an address): on the same
 * connection, or a new one to the same address, which follows the leader
 * (pausing 50 ms, doubling up to 1 s, between tries). This is safe because
 * the write goes with a request id: c picks a random client id and tells
 * every connection (SESSION), and each request's id is its sequence
 * number; a cluster applies a request id at most once and answers a retry
 * of one it applied with the first outcome (docs/replication.md, "Request
 * ids"). So the call returns the write's real outcome, or, when every try
 * failed, the last failure (the outcome is then still unknown). Writes
 * are retried only on connections whose server keeps request ids: a
 * cluster node speaking version 7. Pipelines are retried request by
 * request (kv_client_pipeline_exec). Returns
 * KV_OK; KV_INVALID_ARGUMENT (retries < 0 or > KV_CLIENT_MAX_RETRIES);
 * when connected, KV_UNSUPPORTED if the server does not keep request ids
 * (not a cluster node, or older: writes are then not retried; the setting
 * stays for later connections), or a transport error. Thread: c's. */
KV_CLIENT_API int kv_client_set_retries(kv_client *c, int retries);

/* The most addresses kv_client_set_endpoints() takes. */
#define KV_CLIENT_MAX_ENDPOINTS 64

/* Gives c the other nodes of a cluster, "HOST:PORT,HOST:PORT,..." (an
 * IPv6 address in brackets: "[::1]:7379"), to try in turn when the
 * address it has cannot be reached: refused, unreachable, timed out, or
 * closed before the handshake ended (a node killed, a machine down).
 * kv_client_connect() - and so a retried write (kv_client_set_retries) -
 * then goes on to the next endpoint, starting after the last one that
 * answered, until one connects; a follower names the leader and c
 * follows it. The address c connected to becomes its current one. Any
 * other failure (authentication, protocol) ends the search. NULL or ""
 * clears the list. Not used with a Unix socket. Returns KV_OK,
 * KV_INVALID_ARGUMENT (a malformed address, a port outside 1-65535, more
 * than KV_CLIENT_MAX_ENDPOINTS: the list is then unchanged) or
 * KV_NO_MEMORY. Thread: c's. While endpoints are in use (the list is not
 * empty) c also learns the cluster's members by itself: see
 * kv_client_sync_endpoints(). */
KV_CLIENT_API int kv_client_set_endpoints(kv_client *c, const char *list);

/* Learns the cluster's current members from the node c is connected to
 * (CLUSTER status, as etcd clientv3's Sync) and makes their client
 * addresses c's endpoint list, in place of the one it had; the current
 * connection and address stay (the next search for a node starts after
 * it). A member that has not yet said where clients reach it cannot be
 * named (a node announces its address through the Raft log: a leader at
 * once, a follower once it knows its leader's): while some member has
 * none, the endpoints c had are kept besides the ones learned, so a sync
 * never loses a node c could reach; once every member has one, the list
 * is exactly theirs (a node removed leaves it). Returns KV_OK; KV_UNSUPPORTED
 * (a single kvd, "not a cluster node"; a server older than protocol
 * version 3; a Unix socket), KV_CLOSED (not connected), KV_NOT_FOUND (no
 * member has said where clients reach it yet), KV_PROTOCOL (an address
 * that is not HOST:PORT), or a transport error; on any failure the list
 * is unchanged. Thread: c's.
 *
 * Automatic sync (on by default): while c has endpoints (set with
 * kv_client_set_endpoints, even just one) every kv_client_connect() that
 * succeeds - the first, a reconnect, a failover to another endpoint,
 * following a new leader (a single call's, a retry's, a pipeline's) -
 * syncs after the handshake, so a client given one node learns the others
 * and survives that node's loss, and the list follows members added and
 * removed. That costs one round trip per connect. A failure of that sync
 * other than the connection's is ignored (the list stays); a lost
 * connection fails the connect. kv_client_set_auto_sync(c, 0) turns it
 * off (1 back on); KV_INVALID_ARGUMENT for other values. */
KV_CLIENT_API int kv_client_sync_endpoints(kv_client *c);
KV_CLIENT_API int kv_client_set_auto_sync(kv_client *c, int on);

/* c's endpoint list as "HOST:PORT,HOST:PORT,..." (IPv6 in brackets), as
 * kv_client_set_endpoints takes it, into buf (cap bytes, NUL-terminated,
 * truncated if short; buf may be NULL with cap 0). Returns the length of
 * the whole list (as snprintf: a result >= cap means it was truncated),
 * -1 if c is NULL. */
KV_CLIENT_API int kv_client_get_endpoints(const kv_client *c, char *buf, size_t cap);

/* How many times c has learned its endpoints from a cluster
 * (kv_client_sync_endpoints, automatic ones included). */
KV_CLIENT_API unsigned kv_client_synced(const kv_client *c);

/* How many times c has sent a write again (kv_client_set_retries). */
KV_CLIENT_API unsigned kv_client_retried(const kv_client *c);

/* Read consistency levels. */
#define KV_CLIENT_LINEARIZABLE 0 /* the default: a cluster's reads are
                                    answered by its leader once a quorum
                                    confirms it still leads: every write
                                    acknowledged before the read began is
                                    seen                                 */
#define KV_CLIENT_SERIALIZABLE 1 /* any node answers reads from its own
                                    store at once: faster and available
                                    without a leader, but POSSIBLY STALE
                                    (a follower behind, a deposed leader
                                    that does not know it yet); what one
                                    node answers is still a state the
                                    cluster had, and a key's revisions
                                    never go back on one node            */

/* Sets the consistency of c's reads (get, mget, scan, ttl, the history
 * reads) on this connection and the ones it makes later (CONSISTENCY, as
 * RESP's READONLY / READWRITE). A single kvd is always both. Returns
 * KV_OK, KV_INVALID_ARGUMENT (unknown level), KV_UNSUPPORTED (the server
 * speaks an older version: not sent, reads stay linearizable), or a
 * transport error. Thread: c's. */
KV_CLIENT_API int kv_client_set_consistency(kv_client *c, int level);

/* ------------------------------------------------------------------------
 * Values returned by the client
 *
 * kv_value's data is malloc'ed and owned by the caller, exactly as from
 * libkv: free with kv_client_value_free() (or libkv's kv_value_free()).
 * ---------------------------------------------------------------------- */
KV_CLIENT_API void kv_client_value_free(kv_value *v);
KV_CLIENT_API void kv_client_values_free(kv_value *values, size_t n);
KV_CLIENT_API void kv_client_txn_result_free(kv_txn_result *result);

/* ------------------------------------------------------------------------
 * Operations (one request, one reply)
 *
 * Each call blocks until the reply arrives, the timeout passes or the
 * connection fails. Besides the codes listed, each may return the server's
 * errors for the request (KV_KEY_EMPTY, KV_KEY_TOO_LARGE,
 * KV_VALUE_TOO_LARGE, KV_NO_MEMORY, KV_STORE_FULL, KV_AUTH_REQUIRED,
 * KV_FRAME_TOO_LARGE, ...) and the transport errors above.
 * ---------------------------------------------------------------------- */

/* Round trip with no effect. */
KV_CLIENT_API int kv_client_ping(kv_client *c);

/* AUTH with a shared secret (kv_client_connect does this when a password
 * is set). Errors: KV_AUTH_FAILED. */
KV_CLIENT_API int kv_client_auth(kv_client *c, const char *password);

/* As kv_get(): *out receives a malloc'ed copy. KV_NOT_FOUND (outcome). */
KV_CLIENT_API int kv_client_get(kv_client *c, const void *key, size_t klen,
                                kv_value *out);

/* As kv_mget(): one consistent snapshot; out[i] for keys[i], {NULL, 0, 0}
 * when missing. Free with kv_client_values_free(out, n). */
KV_CLIENT_API int kv_client_mget(kv_client *c, const kv_key *keys, size_t n,
                                 kv_value *out);

/* As kv_set(). version (may be NULL) receives the new revision. */
KV_CLIENT_API int kv_client_set(kv_client *c, const void *key, size_t klen,
                                const void *val, size_t vlen,
                                uint64_t *version);

/* As kv_set_if(): only if the key's version is `expected` (0 = must not
 * exist). KV_VERSION_MISMATCH (outcome) otherwise. */
KV_CLIENT_API int kv_client_set_if(kv_client *c, const void *key,
                                   size_t klen, const void *val, size_t vlen,
                                   uint64_t expected, uint64_t *version);

/* As kv_mset(): all pairs under one revision, atomically. */
KV_CLIENT_API int kv_client_mset(kv_client *c, const kv_pair *pairs,
                                 size_t n, uint64_t *version);

/* As kv_delete(): KV_NOT_FOUND (outcome) if the key did not exist.
 * version may be NULL. */
KV_CLIENT_API int kv_client_del(kv_client *c, const void *key, size_t klen,
                                uint64_t *version);

/* As kv_mdelete(): atomically; *deleted (may be NULL) = how many existed;
 * *version (may be NULL) untouched when none existed. */
KV_CLIENT_API int kv_client_mdel(kv_client *c, const kv_key *keys, size_t n,
                                 size_t *deleted, uint64_t *version);

/* As kv_txn_cond(): compares, then then_ops or else_ops, atomically.
 * A set op's kv_op.expire_at_ms (a Unix time in ms, 0: none) is its
 * expiry (protocol version 4, see "Key expiry").
 * On KV_OK release *result with kv_client_txn_result_free(). */
KV_CLIENT_API int kv_client_txn(kv_client *c,
                                const kv_compare *cmps, size_t ncmps,
                                const kv_op *then_ops, size_t nthen,
                                const kv_op *else_ops, size_t nelse,
                                kv_txn_result *result);

/* As kv_client_txn(), but a set op's kv_op.expire_at_ms is a TTL: the key
 * expires that many ms (1..2^52; 0: no expiry) after the server runs the
 * transaction, by the server's clock (protocol version 4, see "Key
 * expiry"; with an older server KV_UNSUPPORTED, not sent, when an op has
 * one). Errors: as kv_client_txn(); KV_INVALID_ARGUMENT (a TTL above
 * 2^52, not sent). */
KV_CLIENT_API int kv_client_txn_ttl(kv_client *c,
                                    const kv_compare *cmps, size_t ncmps,
                                    const kv_op *then_ops, size_t nthen,
                                    const kv_op *else_ops, size_t nelse,
                                    kv_txn_result *result);

/* As kv_scan(), one round trip: calls fn for each entry of one batch of up
 * to `limit` keys starting with prefix (limit 0: the server's default),
 * from cursor (0 to start); *next receives the cursor to continue from,
 * 0 when the scan is complete. fn's pointers are valid only during the
 * call; fn returning non-zero skips the rest of the batch (*next is still
 * the end of the batch). Weakly consistent, as kv_scan(). */
KV_CLIENT_API int kv_client_scan(kv_client *c, const void *prefix,
                                 size_t plen, uint64_t cursor, size_t limit,
                                 kv_scan_fn fn, void *ctx, uint64_t *next);

/* Flags of kv_client_scan_ex(). */
#define KV_CLIENT_SCAN_KEYS_ONLY 1u /* leave values out: fn gets val NULL,
                                       vlen 0 (and the version)          */

/* As kv_client_scan(), with flags. KV_CLIENT_SCAN_KEYS_ONLY asks the server
 * for keys and versions only (protocol version 2), so listing keys does
 * not carry the values; with a server that speaks only version 1 it sends
 * a plain SCAN and hides the values. Unknown flags: KV_INVALID_ARGUMENT. */
KV_CLIENT_API int kv_client_scan_ex(kv_client *c, const void *prefix,
                                    size_t plen, uint64_t cursor,
                                    size_t limit, unsigned flags,
                                    kv_scan_fn fn, void *ctx, uint64_t *next);

/* ------------------------------------------------------------------------
 * Key expiry (protocol version 4)
 *
 * As libkv's expiry (kv.h, "Expiry"): an expiry time is an absolute Unix
 * time in ms, the same on every node of a cluster and after a restart; a
 * key is absent from the moment the server's clock reaches it, for every
 * read (GET, MGET, SCAN, a compare). A TTL (ms from now) is turned into
 * that time once, by the server's clock when it runs the request, so the
 * client's own clock never matters. Times and TTLs are 1..2^52 ms (else
 * KV_INVALID_ARGUMENT, not sent). With a server that speaks an older
 * version these return KV_UNSUPPORTED without sending anything
 * (kv_client_last_error_local() is then 1); so does kv_client_txn with a
 * set op whose kv_op.expire_at_ms is not 0.
 * ---------------------------------------------------------------------- */

/* As kv_set_ex(): the key expires at the Unix time expire_at_ms (0: never,
 * as kv_client_set). A time past is allowed: the key is written and at
 * once absent. */
KV_CLIENT_API int kv_client_set_ex(kv_client *c, const void *key, size_t klen,
                                   const void *val, size_t vlen,
                                   uint64_t expire_at_ms, uint64_t *version);

/* As kv_set_ttl(): the key expires ttl_ms (>= 1) after the server sets it. */
KV_CLIENT_API int kv_client_set_ttl(kv_client *c, const void *key, size_t klen,
                                    const void *val, size_t vlen,
                                    uint64_t ttl_ms, uint64_t *version);

/* As kv_client_set_if(), and the key expires ttl_ms (>= 1) after the
 * server sets it: compare-and-swap and expiry in one step. */
KV_CLIENT_API int kv_client_set_if_ttl(kv_client *c, const void *key, size_t klen,
                                       const void *val, size_t vlen,
                                       uint64_t expected, uint64_t ttl_ms,
                                       uint64_t *version);

/* As kv_mset_ex() / kv_mset_ttl(): all pairs under one revision with one
 * expiry time, so they disappear together for every reader. */
KV_CLIENT_API int kv_client_mset_ex(kv_client *c, const kv_pair *pairs,
                                    size_t n, uint64_t expire_at_ms,
                                    uint64_t *version);
KV_CLIENT_API int kv_client_mset_ttl(kv_client *c, const kv_pair *pairs,
                                     size_t n, uint64_t ttl_ms,
                                     uint64_t *version);

/* As kv_ttl(): *expire_at_ms (may be NULL) receives the key's expiry time,
 * *ttl_ms (may be NULL) the ms left by the server's clock; both 0 when the
 * key has none. KV_NOT_FOUND (outcome) when the key is absent. */
KV_CLIENT_API int kv_client_ttl(kv_client *c, const void *key, size_t klen,
                                uint64_t *expire_at_ms, uint64_t *ttl_ms);

/* As kv_expire(): an existing key expires at the Unix time expire_at_ms
 * (0: as kv_client_persist), keeping its value; a time past deletes it.
 * *version (may be NULL) receives the key's version after it.
 * KV_NOT_FOUND (outcome) when the key is absent. */
KV_CLIENT_API int kv_client_expire(kv_client *c, const void *key, size_t klen,
                                   uint64_t expire_at_ms, uint64_t *version);

/* As kv_client_expire, ttl_ms (>= 1) from when the server runs it. */
KV_CLIENT_API int kv_client_expire_ttl(kv_client *c, const void *key,
                                       size_t klen, uint64_t ttl_ms,
                                       uint64_t *version);

/* Flags of kv_client_expire_if(). NX goes with none of the others, GT
 * not with LT (else the server answers KV_INVALID_ARGUMENT); no expiry
 * counts as an infinitely far one. */
#define KV_CLIENT_EXPIRE_NX 1u  /* only when the key has no expiry      */
#define KV_CLIENT_EXPIRE_XX 2u  /* only when it has one                 */
#define KV_CLIENT_EXPIRE_GT 4u  /* only when the new time is later      */
#define KV_CLIENT_EXPIRE_LT 8u  /* only when the new time is earlier    */
#define KV_CLIENT_EXPIRE_AT 16u /* ms is a Unix time, not a TTL         */

/* EXPIRE with Redis 7's conditions, checked and applied in one atomic
 * step: ms is a TTL (or with KV_CLIENT_EXPIRE_AT a Unix time).
 * KV_VERSION_MISMATCH (outcome) when a condition fails (nothing
 * changes), KV_NOT_FOUND (outcome) when the key is absent. */
KV_CLIENT_API int kv_client_expire_if(kv_client *c, const void *key,
                                      size_t klen, uint64_t ms, unsigned flags,
                                      uint64_t *version);

/* As kv_persist(): removes an existing key's expiry. *version (may be
 * NULL) receives the key's version after it (unchanged when the key had
 * none). KV_NOT_FOUND (outcome) when the key is absent. */
KV_CLIENT_API int kv_client_persist(kv_client *c, const void *key, size_t klen,
                                    uint64_t *version);

/* ------------------------------------------------------------------------
 * History (protocol version 5)
 *
 * As libkv's history (kv.h, "History"), on a server that keeps it (kvd
 * --history on, its default). A revision names the store as it was after
 * the change numbered so. With a server that speaks an older version
 * these return KV_UNSUPPORTED without sending anything
 * (kv_client_last_error_local() is then 1). Besides the usual errors:
 * KV_UNSUPPORTED (the server keeps no history, or a cluster node refuses
 * ROLLBACK and COMPACT), KV_INVALID_ARGUMENT (revision 0),
 * KV_FUTURE_REVISION (above the server's latest revision; the message
 * names the latest), KV_COMPACTED (below the oldest revision still kept;
 * kv_client_last_error() names it: "... oldest is N").
 * ---------------------------------------------------------------------- */

/* As kv_get_at(): the value key had at revision rev, a malloc'ed copy in
 * *out (out->version: the revision that wrote it; free with
 * kv_client_value_free). KV_NOT_FOUND (outcome) if the key did not exist
 * at rev. */
KV_CLIENT_API int kv_client_get_at(kv_client *c, const void *key, size_t klen, uint64_t rev,
                                   kv_value *out);

/* As kv_mget_at(): the n keys as they all were at revision rev; out[i]
 * for keys[i], {NULL, 0, 0} when absent then. Free with
 * kv_client_values_free(out, n). On error nothing is allocated. */
KV_CLIENT_API int kv_client_mget_at(kv_client *c, const kv_key *keys, size_t n, uint64_t rev,
                                    kv_value *out);

/* As kv_client_scan_ex(), over the keys as they were at revision rev
 * (kv_scan_at(): keys deleted since are included, keys created since are
 * not; the result does not change while the scan goes on). */
KV_CLIENT_API int kv_client_scan_at(kv_client *c, const void *prefix, size_t plen, uint64_t rev,
                                    uint64_t cursor, size_t limit, unsigned flags,
                                    kv_scan_fn fn, void *ctx, uint64_t *next);

/* As kv_history(): the changes of key with revision in [min_rev, max_rev]
 * (max_rev 0: to the latest; min_rev 0: as far back as is kept), newest
 * first, at most limit (0: the server's default, 100; it answers at most
 * 10000: page with max_rev = the last revision received - 1). *out
 * receives a malloc'ed array of *n events (each value malloc'ed; libkv's
 * kv_event): free it with kv_client_events_free(*out, *n). A key without
 * changes in the range gives *n = 0 and KV_OK. *compact_rev (may be NULL)
 * receives the server's compaction revision. */
KV_CLIENT_API int kv_client_history(kv_client *c, const void *key, size_t klen,
                                    uint64_t min_rev, uint64_t max_rev, size_t limit,
                                    kv_event **out, size_t *n, uint64_t *compact_rev);
/* Frees n events from kv_client_history or kv_client_watch_next. NULL is a
 * no-op. */
KV_CLIENT_API void kv_client_events_free(kv_event *events, size_t n);

/* As kv_rollback(): restores the n keys (n >= 1) to their state at
 * revision to_rev as ONE new change; *version (may be NULL) receives its
 * revision (0 when nothing needed to change), *changed (may be NULL) how
 * many keys it set or deleted. unchanged_since != 0: only if none of the
 * keys changed after that revision, else KV_VERSION_MISMATCH (outcome)
 * and nothing changes. */
KV_CLIENT_API int kv_client_rollback(kv_client *c, const kv_key *keys, size_t n,
                                     uint64_t to_rev, uint64_t unchanged_since,
                                     uint64_t *version, size_t *changed);

/* As kv_rollback_prefix(): every key starting with prefix (plen 0: the
 * whole store) back to revision to_rev, as one change; as above. */
KV_CLIENT_API int kv_client_rollback_prefix(kv_client *c, const void *prefix, size_t plen,
                                            uint64_t to_rev, uint64_t unchanged_since,
                                            uint64_t *version, size_t *changed);

/* As kv_compact(): drops the history below revision rev; *compact_rev
 * (may be NULL) receives the new compaction revision. KV_COMPACTED when
 * rev is not above the current one. */
KV_CLIENT_API int kv_client_compact(kv_client *c, uint64_t rev, uint64_t *compact_rev);

/* ------------------------------------------------------------------------
 * Watch (protocol version 6): following the changes of a key or a prefix
 *
 * As kv_watch_open() in the store, over the network: every change of the
 * key (or of every key starting with the prefix) from a starting revision
 * on, in revision order - first the changes history still has, then new
 * ones as they are made. A watch owns its client's connection while it is
 * open: other calls on that client return KV_INVALID_ARGUMENT (use a
 * second client for requests). A client that cannot keep up is never
 * skipped silently: when the server's history no longer has the events it
 * missed, kv_client_watch_next() returns KV_COMPACTED and
 * kv_client_watch_revision() names the revision to resume from with a new
 * watch. With a server that speaks an older version kv_client_watch_open
 * returns KV_UNSUPPORTED without sending anything.
 * ---------------------------------------------------------------------- */
typedef struct kv_client_watch kv_client_watch;

/* Starts watching key (prefix 0; klen >= 1) or every key starting with it
 * (prefix 1; klen may be 0: the whole store) from revision from_rev (0:
 * from the next change), on client c, which must be connected. max_events
 * bounds the events per frame the server sends (0: its default, 100).
 * *out receives the watch (free with kv_client_watch_close); the client
 * belongs to it until then. Errors, besides the transport ones:
 * KV_UNSUPPORTED (the server keeps no history, or is too old),
 * KV_COMPACTED (from_rev is below the oldest revision the server keeps;
 * kv_client_last_error() names it), KV_INVALID_ARGUMENT (a watch is
 * already open on c, too many watches), KV_KEY_EMPTY, KV_KEY_TOO_LARGE,
 * KV_NO_MEMORY. Thread: c's. */
KV_CLIENT_API int kv_client_watch_open(kv_client *c, const void *key, size_t klen, int prefix,
                                       uint64_t from_rev, size_t max_events,
                                       kv_client_watch **out);

/* Waits up to timeout_ms (0: do not wait; <0: no bound) for the next
 * events and returns them in a new array *events of *n (each key and
 * value malloc'ed; libkv's kv_event, create_revision/version/expire_at_ms
 * as kv_watch_next gives them; free with kv_client_events_free). KV_OK
 * with *n = 0 when the time passed or a signal interrupted the wait (the
 * caller may check its own flags and call again). The events of one
 * change may come over two calls when they are too large for one frame.
 * KV_COMPACTED: events were lost; the watch is over and
 * kv_client_watch_revision() is where to resume. Transport errors
 * (KV_CLOSED, KV_IO, KV_TIMEOUT while a frame was arriving, KV_PROTOCOL)
 * end the watch and close the connection. */
KV_CLIENT_API int kv_client_watch_next(kv_client_watch *w, kv_event **events, size_t *n,
                                       int timeout_ms);

/* The revision the watch delivers from next: after KV_COMPACTED, the
 * revision a new watch resumes from (the events before it are lost). */
KV_CLIENT_API uint64_t kv_client_watch_revision(const kv_client_watch *w);

/* Ends the watch (CANCEL, waiting for the server's answer; events still
 * arriving are dropped) and frees it: its client can send requests again.
 * If the connection fails meanwhile it is closed (reconnect with
 * kv_client_connect). NULL is a no-op. */
KV_CLIENT_API void kv_client_watch_close(kv_client_watch *w);

/* Metrics: the store's (kv_metrics field names) and the server's. */
typedef enum kv_client_metric_kind {
    KV_CLIENT_METRIC_UINT = 0,
    KV_CLIENT_METRIC_DOUBLE = 1,
    KV_CLIENT_METRIC_MAP = 2 /* children are numbers (one level) */
} kv_client_metric_kind;

typedef struct kv_client_metric {
    const char *name;
    kv_client_metric_kind kind;
    uint64_t u; /* UINT   */
    double d;   /* DOUBLE */
    const struct kv_client_metric *children; /* MAP */
    size_t nchildren;
} kv_client_metric;

typedef struct kv_client_metrics {
    const kv_client_metric *items;
    size_t n;
    void *owned_; /* private */
} kv_client_metrics;

/* Fills *out; release with kv_client_metrics_free(). */
KV_CLIENT_API int kv_client_metrics_get(kv_client *c, kv_client_metrics *out);

/* Asks the server to take a snapshot of its store now (protocol 2; the
 * server must run with a data directory, else KV_UNSUPPORTED). Returns
 * once the snapshot file is complete; *revision (may be NULL) receives the
 * revision it ends at: its file is snap-<revision, 16 hex digits>.kvs in
 * the server's data directory, a self-contained copy of the store at that
 * revision (a backup). The server goes on serving meanwhile. */
KV_CLIENT_API int kv_client_snapshot(kv_client *c, uint64_t *revision);

/* Cluster administration (protocol 3; a server that is not a cluster
 * node answers KV_UNSUPPORTED). sub: "status" (*json, malloc'ed, free
 * it: the node's view of every member, docs/replication.md), "add"
 * (node_id joins at raft address addr: started with --cluster-join, it
 * becomes a voter once it has caught up), "remove" node_id, "transfer"
 * (leadership to node_id, 0: any voter). Changes are made by the leader
 * (the client follows it) and return once committed. json may be NULL. */
KV_CLIENT_API int kv_client_cluster(kv_client *c, const char *sub, uint64_t node_id,
                                    const char *addr, char **json);

/* Reads up to max bytes (0: the server's default, 4 MiB) of the snapshot
 * file that ends at `revision` (from kv_client_snapshot), from `offset`:
 * out->data/len receive the bytes (free with kv_client_value_free),
 * out->version the file's total size. Read from offset 0 until offset
 * reaches that size to copy a backup over the network (kvcli backup).
 * Errors: KV_NOT_FOUND (no such snapshot any more: take a new one),
 * KV_INVALID_ARGUMENT (offset past the end), KV_UNSUPPORTED (in memory). */
KV_CLIENT_API int kv_client_snapshot_read(kv_client *c, uint64_t revision, uint64_t offset,
                                          size_t max, kv_value *out);
KV_CLIENT_API void kv_client_metrics_free(kv_client_metrics *m);
/* The entry named name (child of the map named parent if parent is not
 * NULL), or NULL. */
KV_CLIENT_API const kv_client_metric *
kv_client_metrics_find(const kv_client_metrics *m, const char *parent,
                       const char *name);

/* ------------------------------------------------------------------------
 * Pipelining
 *
 * Queue requests (each call encodes at once and copies the caller's
 * bytes), then kv_client_pipeline_exec() sends them all in one write and
 * reads every reply. Replies come in request order; reply i answers the
 * i-th queued request. Replies stay valid until the pipeline is reset,
 * executed again or freed.
 * ---------------------------------------------------------------------- */
typedef struct kv_client_pipeline kv_client_pipeline;

typedef struct kv_client_reply {
    int op;                /* KV_CLIENT_OP_*                               */
    int status;            /* this request's kv status (KV_OK, KV_NOT_FOUND,
                              KV_VERSION_MISMATCH, server errors)          */
    kv_value value;        /* GET: owned by the pipeline ({0} if missing)  */
    uint64_t version;      /* SET, MSET, DEL: the new revision             */
    size_t deleted;        /* DEL: how many keys existed                   */
    kv_value *values;      /* MGET: nvalues entries, owned by the pipeline */
    size_t nvalues;
    kv_txn_result txn;     /* TXN: owned by the pipeline                   */
    /* Members added later stay at the end (replies are only ever handed
     * out by pointer, so the struct may grow). */
    uint64_t expire_at_ms; /* TTL: the key's expiry time, 0: none          */
    uint64_t ttl_ms;       /* TTL: ms left by the server's clock, 0: none  */
} kv_client_reply;

/* The op codes of kv_client_reply.op (same numbers as the wire). */
#define KV_CLIENT_OP_PING 1
#define KV_CLIENT_OP_GET 3
#define KV_CLIENT_OP_MGET 4
#define KV_CLIENT_OP_SET 5
#define KV_CLIENT_OP_MSET 6
#define KV_CLIENT_OP_DEL 7
#define KV_CLIENT_OP_TXN 8
#define KV_CLIENT_OP_TTL 14
#define KV_CLIENT_OP_EXPIRE 15
#define KV_CLIENT_OP_PERSIST 16

/* A new, empty pipeline on c. It must be freed before c is closed.
 * Errors: KV_NO_MEMORY. */
KV_CLIENT_API int kv_client_pipeline_new(kv_client *c,
                                         kv_client_pipeline **out);
/* Frees the pipeline and its replies. NULL is a no-op. */
KV_CLIENT_API void kv_client_pipeline_free(kv_client_pipeline *p);
/* Drops queued requests and replies; keeps the memory for reuse. */
KV_CLIENT_API void kv_client_pipeline_reset(kv_client_pipeline *p);
/* Number of queued requests. */
KV_CLIENT_API size_t kv_client_pipeline_count(const kv_client_pipeline *p);

/* Queueing: KV_OK, KV_NO_MEMORY, KV_INVALID_ARGUMENT. Nothing is sent. */
KV_CLIENT_API int kv_client_pipeline_ping(kv_client_pipeline *p);
KV_CLIENT_API int kv_client_pipeline_get(kv_client_pipeline *p,
                                         const void *key, size_t klen);
KV_CLIENT_API int kv_client_pipeline_mget(kv_client_pipeline *p,
                                          const kv_key *keys, size_t n);
KV_CLIENT_API int kv_client_pipeline_set(kv_client_pipeline *p,
                                         const void *key, size_t klen,
                                         const void *val, size_t vlen);
KV_CLIENT_API int kv_client_pipeline_set_if(kv_client_pipeline *p,
                                            const void *key, size_t klen,
                                            const void *val, size_t vlen,
                                            uint64_t expected);
KV_CLIENT_API int kv_client_pipeline_mset(kv_client_pipeline *p,
                                          const kv_pair *pairs, size_t n);
/* DEL of n >= 1 keys: reply.deleted, reply.version; status KV_OK even if
 * none existed. */
KV_CLIENT_API int kv_client_pipeline_del(kv_client_pipeline *p,
                                         const kv_key *keys, size_t n);
KV_CLIENT_API int kv_client_pipeline_txn(kv_client_pipeline *p,
                                         const kv_compare *cmps, size_t ncmps,
                                         const kv_op *then_ops, size_t nthen,
                                         const kv_op *else_ops, size_t nelse);

/* Queueing with key expiry (protocol version 4), the pipelined forms of
 * kv_client_set_ex() ... kv_client_persist(), with the same arguments and
 * the same checks, made when queued: KV_INVALID_ARGUMENT (a time or TTL
 * out of 1..2^52, unknown EXPIRE flags) and, when the client is connected
 * to a server older than version 4, KV_UNSUPPORTED (with
 * kv_client_last_error_local() 1); either way nothing is queued. Replies:
 * the SET / MSET forms as kv_client_pipeline_set() / _mset() (op SET or
 * MSET, reply.version); TTL (op KV_CLIENT_OP_TTL) reply.expire_at_ms and
 * reply.ttl_ms, both 0 when the key has no expiry; EXPIRE and PERSIST
 * (KV_CLIENT_OP_EXPIRE / _PERSIST) reply.version, the key's version after
 * it. TTL, EXPIRE and PERSIST of an absent key: reply status KV_NOT_FOUND;
 * a failed EXPIRE condition: KV_VERSION_MISMATCH. kv_client_pipeline_expire
 * with expire_at_ms 0 queues a PERSIST, as kv_client_expire(). */
KV_CLIENT_API int kv_client_pipeline_set_ex(kv_client_pipeline *p,
                                            const void *key, size_t klen,
                                            const void *val, size_t vlen,
                                            uint64_t expire_at_ms);
KV_CLIENT_API int kv_client_pipeline_set_ttl(kv_client_pipeline *p,
                                             const void *key, size_t klen,
                                             const void *val, size_t vlen,
                                             uint64_t ttl_ms);
KV_CLIENT_API int kv_client_pipeline_set_if_ttl(kv_client_pipeline *p,
                                                const void *key, size_t klen,
                                                const void *val, size_t vlen,
                                                uint64_t expected,
                                                uint64_t ttl_ms);
KV_CLIENT_API int kv_client_pipeline_mset_ex(kv_client_pipeline *p,
                                             const kv_pair *pairs, size_t n,
                                             uint64_t expire_at_ms);
KV_CLIENT_API int kv_client_pipeline_mset_ttl(kv_client_pipeline *p,
                                              const kv_pair *pairs, size_t n,
                                              uint64_t ttl_ms);
KV_CLIENT_API int kv_client_pipeline_ttl(kv_client_pipeline *p,
                                         const void *key, size_t klen);
KV_CLIENT_API int kv_client_pipeline_expire(kv_client_pipeline *p,
                                            const void *key, size_t klen,
                                            uint64_t expire_at_ms);
KV_CLIENT_API int kv_client_pipeline_expire_ttl(kv_client_pipeline *p,
                                                const void *key, size_t klen,
                                                uint64_t ttl_ms);
KV_CLIENT_API int kv_client_pipeline_expire_if(kv_client_pipeline *p,
                                               const void *key, size_t klen,
                                               uint64_t ms, unsigned flags);
KV_CLIENT_API int kv_client_pipeline_persist(kv_client_pipeline *p,
                                             const void *key, size_t klen);
/* As kv_client_pipeline_txn(), with set ops' expire_at_ms TTLs as in
 * kv_client_txn_ttl(). kv_client_pipeline_txn() itself takes Unix times
 * there, as kv_client_txn(); both check them as above. */
KV_CLIENT_API int kv_client_pipeline_txn_ttl(kv_client_pipeline *p,
                                             const kv_compare *cmps,
                                             size_t ncmps,
                                             const kv_op *then_ops,
                                             size_t nthen,
                                             const kv_op *else_ops,
                                             size_t nelse);

/* Sends every queued request in one write and reads all replies. KV_OK
 * when every request has its server's answer (look at each reply's
 * status); otherwise the transport error that left some without one
 * (KV_CLOSED, KV_TIMEOUT, KV_CONNECT, ...; the connection is then closed):
 * the replies are still all there, the answered ones with their answers,
 * each unanswered write with KV_UNKNOWN_OUTCOME when it may have been
 * applied (it was sent) and the others with that error. KV_NO_MEMORY: no
 * replies. The queue is emptied either way.
 *
 * On a cluster (docs/replication.md), as a single call does, request by
 * request and keeping the replies in request order:
 *  - requests answered KV_NOT_LEADER were not run: they are sent again to
 *    the leader that reply names (at most 3 moves per try), with or
 *    without retries;
 *  - with kv_client_set_retries(c, n), up to n times (pausing 50 ms,
 *    doubling up to 1 s): the requests left without an answer by a lost
 *    connection or a timeout (on a new connection: the address, then the
 *    endpoints, then the leader named), the writes answered
 *    KV_UNKNOWN_OUTCOME, and the refused ones when no leader was named
 *    (an election). A write goes again only with its request id (a
 *    connection with a session: a cluster node speaking version 7), so
 *    it is applied at most once; without one (retries 0, or a single kvd)
 *    a write whose outcome is unknown is never sent again, and a write
 *    that was refused is sent again only if no later write of the
 *    pipeline may have run (it would run after it). Reads are simply sent
 *    again. Requests that have their answer keep it.
 * What that means for the results: a write sent again and found applied
 * before is answered with its first outcome (its revision); kvd keeps the
 * last 256 request ids of each client with their replies, so in a deeper
 * pipeline a write applied before 256 later ones of the same client
 * answers its retry KV_UNKNOWN_OUTCOME, not applied again - read the keys
 * to learn its result.
 * A read sent again runs after the writes that ran before it, and may see
 * writes queued after it whose first try had run. Request ids are given
 * as requests are queued: queue and exec without other calls on c in
 * between, else the pipeline's writes are older than that call's and a
 * cluster refuses them (KV_UNKNOWN_OUTCOME). kv_client_retried() counts
 * the writes sent again. */
KV_CLIENT_API int kv_client_pipeline_exec(kv_client_pipeline *p);

/* Number of replies of the last exec, and reply i (NULL if out of range). */
KV_CLIENT_API size_t kv_client_pipeline_replies(const kv_client_pipeline *p);
KV_CLIENT_API const kv_client_reply *
kv_client_pipeline_reply(const kv_client_pipeline *p, size_t i);

#ifdef __cplusplus
}
#endif

#endif /* KV_CLIENT_H */
