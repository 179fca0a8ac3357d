/*
 * kv.h - libkv, an embeddable in-memory key-value store for many threads.
 *
 * This is the whole public API: if it is not in this file, it is not API.
 *
 * Concepts
 *   kv_store   An open store. Every function taking a kv_store may be called
 *              from any number of threads at once, except kv_close().
 *   kv_txn     An optimistic, serializable transaction. A transaction belongs
 *              to one thread at a time.
 *   version    Every change to the store (one key or many, atomically)
 *              gets one 64-bit revision. A key's version is the revision
 *              of its last change; 0 means "absent".
 *
 * Revisions: a key's versions strictly increase; whatever a change
 * overwrote or compared has a smaller revision than the change; one
 * thread's changes take increasing revisions. Sorted by revision, the
 * changes form a serial order of the store's history. A store with a log
 * (kv_open_config with a directory) numbers its changes 1, 2, 3, ... in
 * log order. A store in memory lets changes on different keys from
 * different threads take their revisions without meeting (so that writers
 * scale): two such changes that did not see each other may take the same
 * revision, and revisions may leave gaps. With one writing thread they are
 * 1, 2, 3, ... as well. A store with history (kv_config.history) numbers
 * its changes 1, 2, 3, ... like a store with a log, so that "the store as
 * of revision N" is fixed once N exists. docs/design.md, "Revisions", has
 * the argument.
 *
 * Keys are byte strings of 1..max_key_size bytes (embedded NULs allowed);
 * values are byte strings of 0..max_value_size bytes.
 *
 * Every function that can fail returns a kv status (0 = KV_OK). Outputs are
 * left untouched on failure unless the function says otherwise. No function
 * aborts, exits or prints on bad input.
 *
 * Expiry: a key may carry an expiry time (see "Expiry" below); once the
 * store's clock reaches it, the key is absent for every call.
 *
 * Durability: a store opened with kv_open() lives in memory only. A store
 * opened with kv_open_config() on a directory logs every change and
 * recovers it at the next open (see "Durable stores" below, and
 * docs/storage.md for the files).
 */
#ifndef KV_H
#define KV_H

#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

#if defined(KV_STATIC_DEFINE)
#define KV_API
#elif defined(KV_BUILDING_LIBRARY)
#define KV_API __attribute__((visibility("default")))
#else
#define KV_API
#endif

#define KV_VERSION_MAJOR 0
#define KV_VERSION_MINOR 1
#define KV_VERSION_PATCH 0
#define KV_VERSION_STRING "0.1.0"
/* MAJOR * 10000 + MINOR * 100 + PATCH, comparable with KV_VERSION_NUMBER. */
#define KV_VERSION_NUMBER \
    (KV_VERSION_MAJOR * 10000 + KV_VERSION_MINOR * 100 + KV_VERSION_PATCH)

/* The library's version at run time, e.g. "0.1.0", and as a number. */
KV_API const char *kv_version(void);
KV_API int kv_version_number(void);

/* ------------------------------------------------------------------------
 * Status codes
 *
 * Stable numbers: they travel in kvd's frames, so a code never changes its
 * value. "Outcome" codes are normal answers, the rest are failures.
 * The network codes (30..) are used by kvd and the client library.
 * ---------------------------------------------------------------------- */
#define KV_STATUS_MAP(XX)                                                     \
    XX(OK, 0, "success")                                                      \
    /* outcomes */                                                            \
    XX(NOT_FOUND, 1, "key not found")                                         \
    XX(VERSION_MISMATCH, 2, "version does not match (compare-and-swap failed)") \
    XX(CONFLICT, 3, "transaction conflict: data it read has changed; retry")  \
    /* caller errors: nothing was changed */                                  \
    XX(INVALID_ARGUMENT, 10, "invalid argument")                              \
    XX(KEY_EMPTY, 11, "key is empty")                                         \
    XX(KEY_TOO_LARGE, 12, "key is larger than the store's max_key_size")      \
    XX(VALUE_TOO_LARGE, 13, "value is larger than the store's max_value_size") \
    XX(BUFFER_TOO_SMALL, 14, "buffer too small for the value")               \
    /* resource failures: nothing was changed */                              \
    XX(NO_MEMORY, 20, "out of memory")                                        \
    XX(STORE_FULL, 21, "store is full (max_keys reached)")                    \
    XX(MEMORY_LIMIT, 26, "memory limit reached (max_memory, and nothing may be evicted)") \
    /* history (see "History" below) */                                      \
    XX(COMPACTED, 27, "revision compacted: the history before it is gone")   \
    XX(FUTURE_REVISION, 28, "revision is newer than the store's latest")      \
    /* storage (a store opened on a directory) */                             \
    XX(NO_SPACE, 22, "no space left on the store's disk")                     \
    XX(CORRUPT, 23, "data files are corrupt")                                 \
    XX(LOCKED, 24, "data directory is in use by another process")             \
    /* network (kvd, client library) */                                       \
    XX(PROTOCOL, 30, "protocol error: malformed frame")                       \
    XX(UNSUPPORTED, 31, "unsupported operation or protocol version")          \
    XX(AUTH_REQUIRED, 32, "authentication required")                          \
    XX(AUTH_FAILED, 33, "authentication failed")                              \
    XX(FRAME_TOO_LARGE, 34, "frame larger than the server allows")            \
    XX(BUSY, 35, "server busy: too many connections")                         \
    XX(NOT_LEADER, 36, "not the cluster's leader")                            \
    XX(UNKNOWN_OUTCOME, 37, "outcome unknown: the leader changed before the write was known to be committed") \
    XX(IO, 40, "I/O error")                                                   \
    XX(TIMEOUT, 41, "timed out")                                              \
    XX(CLOSED, 42, "connection closed")                                       \
    XX(CONNECT, 43, "cannot connect")                                         \
    XX(INTERNAL, 50, "internal error")

typedef enum kv_status {
#define KV__STATUS_ENUM(name, code, text) KV_##name = code,
    KV_STATUS_MAP(KV__STATUS_ENUM)
#undef KV__STATUS_ENUM
} kv_status;

/* A static, human-readable message for a status; never NULL (unknown codes
 * give "unknown status"). */
KV_API const char *kv_strerror(int status);
/* The status's symbolic name without the KV_ prefix, e.g. "NOT_FOUND";
 * "UNKNOWN" for codes not in KV_STATUS_MAP. Never NULL. */
KV_API const char *kv_status_name(int status);

/* ------------------------------------------------------------------------
 * Opening and closing
 * ---------------------------------------------------------------------- */
typedef struct kv_store kv_store;

typedef struct kv_options {
    size_t initial_capacity; /* keys to size the table for; default 1024
                                (0 is fine: the table grows on demand)  */
    size_t max_key_size;     /* bytes; default 64 KiB, 1 to 64 KiB       */
    size_t max_value_size;   /* bytes; default 64 MiB, at most 1 GiB     */
    uint64_t max_keys;       /* 0 = unlimited (default)                  */
} kv_options;

#define KV_DEFAULT_MAX_KEY_SIZE ((size_t)64 * 1024)
#define KV_DEFAULT_MAX_VALUE_SIZE ((size_t)64 * 1024 * 1024)
#define KV_LIMIT_MAX_KEY_SIZE ((size_t)64 * 1024)
#define KV_LIMIT_MAX_VALUE_SIZE ((size_t)1024 * 1024 * 1024)

/* Fills *opts with the defaults. */
KV_API void kv_options_init(kv_options *opts);

/* Opens a new, empty store. opts may be NULL for the defaults.
 * On success *out owns the store until kv_close().
 * Errors: KV_INVALID_ARGUMENT (a limit out of range), KV_NO_MEMORY. */
KV_API int kv_open(const kv_options *opts, kv_store **out);

/* Frees the store and everything in it. No other thread may be using the
 * store, and open transactions on it must be finished first. NULL is a
 * harmless no-op. The handle must not be used again. */
KV_API void kv_close(kv_store *store);

/* ------------------------------------------------------------------------
 * Durable stores
 *
 * kv_open_config() opens a store on a directory: every change is appended
 * to a write-ahead log as one record with its revision, snapshots are
 * taken in the background, and the next open recovers exactly the
 * acknowledged state (every key with its value and version; no multi-key
 * change or transaction ever half-present). Only one process at a time may
 * have a directory open (KV_LOCKED otherwise).
 *
 * When a write "returns" depends on the fsync policy:
 *   KV_FSYNC_ALWAYS    after its record is on stable storage (fdatasync).
 *                      Nothing acknowledged is lost, even by a power
 *                      failure. Concurrent writers share one fdatasync.
 *   KV_FSYNC_EVERYSEC  after its record is written to the kernel; a
 *                      background fdatasync runs at least once a second.
 *                      A crash of the process loses nothing; a power
 *                      failure or kernel crash can lose about the last
 *                      second of acknowledged writes.
 *   KV_FSYNC_NO        after its record is written to the kernel, which
 *                      syncs when it likes (Linux: typically within 30 s).
 *                      A crash of the process loses nothing.
 * A write is visible to readers as soon as it is made, before it is
 * durable (as in Redis): a reader may see a change that a power failure
 * then loses under EVERYSEC or NO, or that fails to be logged (below).
 *
 * Failures of the disk: a write whose record cannot be queued (the log is
 * failing) returns KV_NO_SPACE or KV_IO and changes nothing. A write whose
 * record was queued but could not be made durable returns KV_NO_SPACE or
 * KV_IO after the fact: the change is in memory and its outcome on disk is
 * unknown, as after a crash. Out of space is retried every 100 ms and
 * writes resume once space is free; any other I/O error, and any failed
 * fdatasync, stops all writes with KV_IO until the store is reopened
 * (after a failed fsync the kernel may have dropped the data, so a retry
 * would prove nothing). Reads always keep working.
 * ---------------------------------------------------------------------- */
typedef enum kv_fsync {
    KV_FSYNC_EVERYSEC = 0,
    KV_FSYNC_ALWAYS = 1,
    KV_FSYNC_NO = 2
} kv_fsync;

/* Options for kv_open_config. Fields are only ever added at the end; a
 * caller sets `size` (kv_config_init does) so that a library newer than
 * its header reads only the fields the caller knows. */
typedef struct kv_config {
    size_t size;             /* sizeof(kv_config) as the caller knows it  */
    size_t initial_capacity; /* as kv_options                             */
    size_t max_key_size;
    size_t max_value_size;
    uint64_t max_keys;
    const char *dir;         /* data directory (created if missing);
                                NULL: in memory, exactly as kv_open       */
    int fsync;               /* kv_fsync; default KV_FSYNC_EVERYSEC        */
    int wait_durable;        /* 1 (default): writes return once durable as
                                the policy says. 0: writes return as soon
                                as their record is queued, and the caller
                                waits with kv_sync() or is told by the
                                kv_set_durable_callback (kvd does this).  */
    uint64_t segment_bytes;  /* log segment size; default 64 MiB          */
    uint64_t snapshot_log_bytes; /* snapshot automatically once the log has
                                grown this much since the last one;
                                default 64 MiB, 0 = never by size         */
    uint32_t snapshot_interval_s; /* also snapshot this often if anything
                                changed; default 3600, 0 = never by time  */
    uint64_t max_memory;     /* bytes the store may use, 0 = unlimited
                                (default); at least KV_MIN_MAX_MEMORY.
                                See "Memory limit and eviction" below     */
    int eviction_policy;     /* kv_eviction_policy; default
                                KV_EVICT_NOEVICTION                       */
    int history;             /* 1: keep earlier values of keys (see
                                "History"); default 0: none kept, and the
                                calls that need history give
                                KV_UNSUPPORTED                            */
    uint32_t history_versions; /* with history: at most this many earlier
                                values per key (0 = no count bound)       */
    uint64_t history_bytes;  /* with history: at most this many bytes of
                                earlier values in all (0 = no byte bound) */
    uint32_t history_age_s;  /* with history: drop values replaced more
                                than this many seconds ago (0 = no bound) */
    int manual_expiry;       /* 1: the store never removes an expired key
                                on its own: no background sweep. Expired
                                keys stay invisible to readers; a change
                                that meets one still removes it, judged by
                                the clock the thread pinned (kv_clock_pin),
                                and the program removes the others with
                                kv_expire_remove. For a replica whose
                                every change must come out the same on
                                every copy (kvd's cluster nodes). See
                                "Expiry". Default 0                       */
    int huge_pages;          /* kv_huge_pages: whether a big store's item
                                memory (2 MiB chunks) and index are
                                advised to be transparent huge pages;
                                default KV_HUGE_EAGER                     */
} kv_config;

/* Huge pages for item memory and the index (kv_config.huge_pages). Huge pages spare the
 * random reads of a big store most TLB misses: at a million keys, 10-17%
 * more gets and sets in the library, and 1.2-1.4x the GETs of kvd at
 * pipeline 16 (bench/results/slab-huge-1.txt). But a huge page is faulted
 * in whole at its first write: a writer that touches a new one stalls for
 * 2 MiB of page faults (3 ms on the virtual machine the benchmarks ran on,
 * where the host backs the page then), and every request queued behind
 * that write waits too, while the store grows.
 *   KV_HUGE_EAGER  each 2 MiB chunk of items, and each index table of
 *                  4 MiB or more, is advised as it is taken (default).
 *   KV_HUGE_NEVER  never (and advised MADV_NOHUGEPAGE, for kernels whose
 *                  THP mode is "always"): pages fault in 4 KiB at a time.
 * (Advising chunks only once they are filled, for the kernel's khugepaged
 * to merge in the background, was tried: each merge stalled readers of
 * the chunk for milliseconds, and p99.9s grew to 5-13 ms.) */
typedef enum kv_huge_pages {
    KV_HUGE_EAGER = 0,
    KV_HUGE_NEVER = 1
} kv_huge_pages;

#define KV_DEFAULT_SEGMENT_BYTES ((uint64_t)64 * 1024 * 1024)
#define KV_DEFAULT_SNAPSHOT_LOG_BYTES ((uint64_t)64 * 1024 * 1024)
#define KV_DEFAULT_SNAPSHOT_INTERVAL_S 3600u

/* ------------------------------------------------------------------------
 * Memory limit and eviction
 *
 * Set with kv_open_config (cfg->dir NULL for a store in memory only); a
 * store opened with kv_open has no limit. With kv_config.max_memory set,
 * the store keeps the memory it uses (its
 * items with their allocator rounding, its index, retired memory not yet
 * freed and its fixed structures: what kv_metrics.memory_used reports)
 * at or below the limit, so the process's resident size stays within a
 * few percent of it (plus what the program itself uses). The index grows
 * and is rebuilt (a cache that evicts fills it with tombstones) one
 * segment at a time: for that while, 1/32 of the index more (under 1% of
 * a store of 100-byte values). A write that
 * stores data while the store is at the limit first makes room as the
 * policy says (Redis's policies and names):
 *   KV_EVICT_NOEVICTION      nothing is evicted: the write fails with
 *                            KV_MEMORY_LIMIT and changes nothing. Deletes
 *                            and writes that store nothing always work.
 *   KV_EVICT_ALLKEYS_LRU     evict the keys least recently used
 *   KV_EVICT_ALLKEYS_LFU     evict the keys least frequently used (a
 *                            logarithmic counter per key that decays)
 *   KV_EVICT_ALLKEYS_RANDOM  evict random keys
 *   KV_EVICT_VOLATILE_LRU    as ALLKEYS_LRU among keys with an expiry time
 *   KV_EVICT_VOLATILE_LFU    as ALLKEYS_LFU among keys with an expiry time
 *   KV_EVICT_VOLATILE_RANDOM random keys with an expiry time
 *   KV_EVICT_VOLATILE_TTL    the keys with an expiry time that expire first
 * Recency and frequency are approximations from samples, as in Redis. An
 * access is a kv_get and its variants, kv_exists, kv_mget and kv_txn_get
 * (not kv_scan or kv_ttl), and every write of the key.
 *
 * Evicting is done by the writing thread in slices of at most about 1 ms
 * before its write; a write never waits longer than that for room (an
 * eviction does not wait for its record to be durable: after a crash an
 * evicted key may be back, and is evicted again as room is needed). If a
 * whole pass over the keys finds nothing it may evict (a volatile policy
 * and no key with an expiry time), the write fails with KV_MEMORY_LIMIT
 * and changes nothing; a slice that runs out of time lets its write
 * through and the next write goes on.
 * An evicted key is deleted through the store's one write path: a delete
 * with its own revision, logged and seen by replicas, counted in
 * kv_metrics.evicted_keys. The limit is checked against a figure summed
 * from per-thread counters every so often, so concurrent writers may pass
 * it by up to 1/1024 of it each for a moment.
 *
 * Cost: with no limit, or with noeviction, random or volatile-ttl, reads
 * write nothing and items carry nothing more. With an LRU or LFU policy
 * each item carries 4 more bytes (its access clock), and a read updates
 * them only when they would change (for LRU at most once per 1/1024 of
 * the limit written; for LFU rarely, by chance), so reads on many threads
 * still scale.
 * ---------------------------------------------------------------------- */
typedef enum kv_eviction_policy {
    KV_EVICT_NOEVICTION = 0,
    KV_EVICT_ALLKEYS_LRU = 1,
    KV_EVICT_ALLKEYS_LFU = 2,
    KV_EVICT_ALLKEYS_RANDOM = 3,
    KV_EVICT_VOLATILE_LRU = 4,
    KV_EVICT_VOLATILE_LFU = 5,
    KV_EVICT_VOLATILE_RANDOM = 6,
    KV_EVICT_VOLATILE_TTL = 7
} kv_eviction_policy;

/* The smallest max_memory accepted: below it the store's fixed structures
 * alone would not fit. */
#define KV_MIN_MAX_MEMORY ((uint64_t)1 << 20)

/* A policy's Redis name ("allkeys-lru"...), or NULL for an unknown one. */
KV_API const char *kv_eviction_policy_name(int policy);
/* The policy named name (Redis's names, case-insensitive), or -1. */
KV_API int kv_eviction_policy_parse(const char *name);

/* Fills the first `size` bytes of *cfg with the defaults and sets
 * cfg->size; pass sizeof(kv_config). */
KV_API void kv_config_init(kv_config *cfg, size_t size);

/* Opens a store as configured. With cfg->dir it recovers the directory
 * first (the newest snapshot, then the log after it; a torn write at the
 * end of the log is cut off). On success *out owns the store until
 * kv_close(), which flushes and syncs the log.
 * Errors: KV_INVALID_ARGUMENT (bad size or limit, an unknown eviction
 * policy, max_memory below KV_MIN_MAX_MEMORY), KV_NO_MEMORY,
 * KV_LOCKED (another process has the directory open), KV_CORRUPT (a
 * checksum failed in the middle of the data: nothing is dropped silently;
 * kv_last_error() names the file and offset), KV_IO, KV_NO_SPACE. */
KV_API int kv_open_config(const kv_config *cfg, kv_store **out);

/* A message about the last failed kv_open_config, kv_snapshot or kv_backup
 * of the calling thread (e.g. the corrupt file and offset), or "" . Valid
 * until the thread's next such call. Never NULL. */
KV_API const char *kv_last_error(void);

/* What the last open recovered. Fills the first `size` bytes. */
typedef struct kv_recovery {
    uint64_t keys;             /* keys in the store after recovery         */
    uint64_t revision;         /* the store's revision after recovery      */
    uint64_t snapshot_revision;/* end revision of the snapshot loaded, 0: none */
    uint64_t records;          /* log records replayed after the snapshot   */
    uint64_t segments;         /* log segments read                         */
    uint64_t torn_bytes;       /* bytes of a torn log tail that were cut off */
    uint64_t elapsed_us;       /* time the recovery took                    */
} kv_recovery;
KV_API int kv_recovery_read(kv_store *store, kv_recovery *out, size_t size);

/* Waits until every change up to revision rev (0: every change made so
 * far) is durable as the store's policy says. KV_OK at once for an
 * in-memory store. Errors: KV_NO_SPACE, KV_IO (see above). Any thread. */
KV_API int kv_sync(kv_store *store, uint64_t rev);

/* The store's latest revision: the highest any change has taken (visible
 * or about to be). With a log, one atomic load; in memory, a read of the
 * 1024 lock stripes' clocks (see "Revisions" above): meant for metrics and
 * tools, not for every operation. */
KV_API uint64_t kv_revision(kv_store *store);

/* The highest revision that is durable as the policy says (for an
 * in-memory store, the current revision). */
KV_API uint64_t kv_durable_revision(kv_store *store);

/* Writes every change queued so far to the log file now, in the calling
 * thread: one pwrite, never an fsync (under everysec the log's thread
 * syncs), and nothing if another thread is writing already (its round or
 * the next takes the changes). Meant for stores opened with
 * wait_durable = 0 under KV_FSYNC_EVERYSEC or KV_FSYNC_NO, whose writes do
 * not wake the log's thread: call it once per batch of writes (kvd calls
 * it once per event-loop iteration, as Redis writes its AOF); changes left
 * unwritten are written by the log's thread within about 10 ms. Under
 * KV_FSYNC_ALWAYS it does not write: it asks the log's thread to write and
 * sync everything queued (now, or as soon as the round in progress ends),
 * so that all the writes a caller queued between two calls share one
 * fdatasync. Never waits for the disk. KV_OK at once for an in-memory
 * store. Errors: KV_NO_SPACE, KV_IO. */
KV_API int kv_write_log(kv_store *store);

/* fn is called each time the durable revision advances, and when the log
 * fails (status KV_NO_SPACE or KV_IO), from the thread that did the write:
 * the log's thread, a writer, or a kv_write_log caller. It must
 * be quick and must not call libkv functions (e.g. it wakes an event
 * loop). NULL removes it; once this returns, the previous fn is not
 * running and will not be called again. Not from inside fn.
 * KV_INVALID_ARGUMENT for an in-memory store. */
typedef void (*kv_durable_fn)(void *ctx, uint64_t durable_rev, int status);
KV_API int kv_set_durable_callback(kv_store *store, kv_durable_fn fn, void *ctx);

/* Takes a snapshot of the store into its directory now, in the calling
 * thread, while other threads go on reading and writing (no fork, no
 * pause; memory grows by one buffer of 1 MiB, or of the largest key and
 * value if that is bigger). Log segments the snapshot covers are then
 * removed, and so are snapshots older than the one before it. If nothing
 * changed since the newest snapshot, that one stands and nothing is
 * written.
 * Errors: KV_UNSUPPORTED (in-memory store), KV_NO_SPACE, KV_IO,
 * KV_NO_MEMORY; a failed snapshot leaves the directory as it was. */
KV_API int kv_snapshot(kv_store *store);

/* Writes a consistent backup of the running store to the file path (a
 * snapshot file, self-contained: docs/storage.md), as kv_snapshot does.
 * The file is complete once this returns KV_OK (written to path.tmp,
 * synced, renamed). Errors as kv_snapshot. */
KV_API int kv_backup(kv_store *store, const char *path);

/* Makes dir (which must be empty or not exist) a data directory holding
 * the backup file `backup`, verified first; kv_open_config on dir then
 * opens the backed-up state. Errors: KV_CORRUPT (the backup fails its
 * checks), KV_INVALID_ARGUMENT (dir not empty), KV_IO, KV_NO_SPACE. */
KV_API int kv_restore(const char *backup, const char *dir);

/* ------------------------------------------------------------------------
 * Single-key operations
 * ---------------------------------------------------------------------- */

/* A value copied out of the store. data is malloc'ed and owned by the
 * caller: release it with kv_value_free(). A value of length 0 still has a
 * non-NULL data pointer. */
typedef struct kv_value {
    void *data;
    size_t len;
    uint64_t version; /* revision of the key's last change */
} kv_value;

/* Frees v->data and resets *v. NULL, or a value already freed, is fine. */
KV_API void kv_value_free(kv_value *v);

/* Copies the value of key into a new kv_value.
 * Errors: KV_NOT_FOUND (outcome), KV_KEY_EMPTY, KV_KEY_TOO_LARGE,
 * KV_NO_MEMORY. Never takes a lock. */
KV_API int kv_get(kv_store *store, const void *key, size_t klen,
                  kv_value *out);

/* Copies the value into the caller's buffer without allocating.
 * *vlen receives the value's length (also when the buffer is too small:
 * then KV_BUFFER_TOO_SMALL is returned and nothing is copied).
 * version may be NULL. Never takes a lock. */
KV_API int kv_get_into(kv_store *store, const void *key, size_t klen,
                       void *buf, size_t cap, size_t *vlen,
                       uint64_t *version);

/* Zero-copy read: calls fn with the stored bytes, which stay valid only
 * until fn returns. fn must not keep the pointer and must not block for
 * long (it delays memory reclamation, not other threads). fn may call other
 * libkv functions. Returns KV_NOT_FOUND without calling fn if absent. */
typedef void (*kv_read_fn)(void *ctx, const void *val, size_t vlen,
                           uint64_t version);
KV_API int kv_get_with(kv_store *store, const void *key, size_t klen,
                       kv_read_fn fn, void *ctx);

/* KV_OK and the version if key exists, KV_NOT_FOUND if not.
 * version may be NULL. */
KV_API int kv_exists(kv_store *store, const void *key, size_t klen,
                     uint64_t *version);

/* Sets key to value (creating or replacing it). version, if not NULL,
 * receives the new revision. Errors: KV_KEY_EMPTY, KV_KEY_TOO_LARGE,
 * KV_VALUE_TOO_LARGE, KV_NO_MEMORY, KV_STORE_FULL, KV_MEMORY_LIMIT. */
KV_API int kv_set(kv_store *store, const void *key, size_t klen,
                  const void *val, size_t vlen, uint64_t *version);

/* Compare-and-swap: sets key only if its current version equals expected
 * (0 = the key must not exist). Otherwise KV_VERSION_MISMATCH and nothing
 * changes. */
KV_API int kv_set_if(kv_store *store, const void *key, size_t klen,
                     const void *val, size_t vlen, uint64_t expected,
                     uint64_t *version);

/* Deletes key. KV_NOT_FOUND (outcome) if it did not exist; nothing changes
 * and no revision is used then (unless the key had expired and was still
 * held: its removal is then a change of its own). version may be NULL. */
KV_API int kv_delete(kv_store *store, const void *key, size_t klen,
                     uint64_t *version);

/* Deletes key only if its version equals expected. KV_NOT_FOUND if absent,
 * KV_VERSION_MISMATCH if it has another version, KV_INVALID_ARGUMENT if
 * expected is 0 (an absent key cannot be deleted). */
KV_API int kv_delete_if(kv_store *store, const void *key, size_t klen,
                        uint64_t expected, uint64_t *version);

/* ------------------------------------------------------------------------
 * Multi-key operations: atomic, all or none
 * ---------------------------------------------------------------------- */
typedef struct kv_key {
    const void *data;
    size_t len;
} kv_key;

typedef struct kv_pair {
    const void *key;
    size_t klen;
    const void *val;
    size_t vlen;
} kv_pair;

/* Reads n keys as one consistent snapshot: the results are the values all
 * n keys had at one instant, so no part of a concurrent multi-key change is
 * ever seen without the rest. out[i] receives key i; a missing key gives
 * {NULL, 0, 0}. Free the results with kv_values_free(out, n).
 * Returns KV_OK even if some keys are missing; on any error nothing is
 * allocated. Never takes a lock (it retries if a writer raced it). */
KV_API int kv_mget(kv_store *store, const kv_key *keys, size_t n,
                   kv_value *out);

/* Zero-copy multi-get: reads the n keys as one snapshot, as kv_mget(),
 * then calls fn once per key, in order, with i = the key's index and the
 * stored bytes (val NULL, vlen 0, version 0 for a missing key). The bytes
 * stay valid only until fn returns; fn must not keep them and must not
 * block for long. Errors: key limit codes, KV_INVALID_ARGUMENT,
 * KV_NO_MEMORY (only for n > 16). Never takes a lock. */
typedef void (*kv_mget_fn)(void *ctx, size_t i, const void *val, size_t vlen,
                           uint64_t version);
KV_API int kv_mget_with(kv_store *store, const kv_key *keys, size_t n,
                        kv_mget_fn fn, void *ctx);

/* A hint: the n keys are about to be read (say, the GETs of a pipelined
 * batch). Starts the memory loads of their index slots and items so that
 * the coming operations overlap their cache misses instead of waiting for
 * each in turn. Changes nothing and returns nothing; keys that are
 * invalid or absent are simply skipped. Never takes a lock.
 * kv_prefetch_writes: the same for keys about to be written (the SETs of
 * a batch); in a store with history it also starts the loads of the
 * records that hold their earlier versions, which a write updates and a
 * read never needs. */
KV_API void kv_prefetch(kv_store *store, const kv_key *keys, size_t n);
KV_API void kv_prefetch_writes(kv_store *store, const kv_key *keys, size_t n);

/* Frees n values filled by kv_mget(). */
KV_API void kv_values_free(kv_value *values, size_t n);

/* Sets n pairs atomically under one revision (all or none). If a key
 * appears more than once, the last pair wins. Errors as kv_set(); when a
 * pair is invalid nothing is set. */
KV_API int kv_mset(kv_store *store, const kv_pair *pairs, size_t n,
                   uint64_t *version);

/* As kv_mset, and every key expires at expire_at_ms (see "Expiry"; 0 =
 * never): keys set together with one expiry time disappear together, for
 * every reader. */
KV_API int kv_mset_ex(kv_store *store, const kv_pair *pairs, size_t n,
                      uint64_t expire_at_ms, uint64_t *version);

/* As kv_mset_ex with expire_at_ms = kv_clock_ms(store) + ttl_ms.
 * KV_INVALID_ARGUMENT if ttl_ms is 0. */
KV_API int kv_mset_ttl(kv_store *store, const kv_pair *pairs, size_t n,
                       uint64_t ttl_ms, uint64_t *version);

/* Deletes n keys atomically. *deleted (may be NULL) receives how many of
 * them existed. If none existed, nothing changes and *version (may be
 * NULL) is left alone. */
KV_API int kv_mdelete(kv_store *store, const kv_key *keys, size_t n,
                      size_t *deleted, uint64_t *version);

/* ------------------------------------------------------------------------
 * Expiry
 *
 * A key may carry an expiry time: an absolute wall-clock time in
 * milliseconds since the Unix epoch (0 = none), so that it means the same
 * after a restart of a durable store (it is logged and snapshotted with
 * the key) and on every machine. A key with expiry time T is present while
 * the store's clock reads less than T and absent from the moment it reads
 * T: for kv_get and its variants, kv_exists, kv_mget (one clock reading for
 * all its keys, so keys set together with one expiry time are all there or
 * all gone), kv_scan, transactions (a key that expires after a transaction
 * read it is a conflict at commit) and every compare (an expired key
 * compares as absent, version 0).
 *
 * The store's clock is a coarse copy of CLOCK_REALTIME that the store
 * raises every millisecond (it never goes back), so a read costs no system
 * call; a key disappears within about 1 ms of its expiry time. Keys
 * without an expiry time do not read the clock at all.
 *
 * Memory: an expired key is removed by the next write that meets it, and
 * by the store's active expiry, a background thread the store starts the
 * first time a key with an expiry time is written or recovered (a store
 * that never uses expiry starts no thread). It sweeps the index about once
 * a second in 1 ms steps of at most 250 us (25% of a core), so an expired
 * key stays in memory for about a second at most. Either way the removal
 * is a change like any other (a delete with its own revision, logged),
 * counted in kv_metrics.expired_keys; until then the key still counts in
 * kv_metrics.keys. A store opened with kv_config.manual_expiry has no
 * background sweep: its program removes expired keys (replicas, below).
 * ---------------------------------------------------------------------- */

/* The store's clock: milliseconds since the Unix epoch, as the store
 * compares expiry times with (the pinned reading, if the calling thread
 * pinned one with kv_clock_pin). Any thread. 0 if store is NULL. */
KV_API uint64_t kv_clock_ms(kv_store *store);

/* Replicas. A copy of a store that applies another's changes must judge
 * expiry exactly as the origin did, or the copies drift apart: a change
 * that met a key expired by one copy's clock and not by another's would
 * remove it on one copy only, with a revision the other never takes. So
 * the origin records its clock reading with each change, and each copy
 * applies the change with that reading pinned; and, in a store opened
 * with kv_config.manual_expiry, expired keys are removed only by changes
 * the origin decided on (kv_expired_find there, kv_expire_remove on every
 * copy), never by a copy's own sweep. */

/* Pins the clock the calling thread sees on store at ms (0: unpins):
 * until unpinned, every call of this thread on store - reads, compares,
 * the removal of expired keys a change meets, kv_clock_ms - takes ms as
 * the time now. Other threads are not affected, and neither is the store's
 * own clock (it goes on ticking for them). A thread pins one store at a
 * time: pinning another unpins the first. Unpin before kv_close. */
KV_API void kv_clock_pin(kv_store *store, uint64_t ms);

/* What kv_expired_find gives for each expired key it finds: the key (valid
 * only during the call: copy it) and its expiry time. Return 0 to go on,
 * non-zero to stop. It must not call into the store. */
typedef int (*kv_expired_fn)(void *ctx, const void *key, size_t klen, uint64_t expire_at_ms);

/* One step of a sweep for expired keys, without removing them: looks at
 * up to max_slots slots of the store's index, from where the previous
 * step stopped (about kv_metrics.table_slots slots make a whole pass), and
 * calls fn for each key whose expiry time is at or before now_ms, until
 * fn returns non-zero. *found (may be NULL) receives how many keys fn was
 * given. Any thread (steps on one store take turns); for a store opened
 * with kv_config.manual_expiry (in another, the background sweep may
 * remove the keys at any time).
 * Errors: KV_INVALID_ARGUMENT (fn NULL, now_ms 0), KV_NO_MEMORY. */
KV_API int kv_expired_find(kv_store *store, uint64_t now_ms, size_t max_slots,
                           kv_expired_fn fn, void *ctx, size_t *found);

/* Removes, in one change, those of the n keys whose expiry time is at or
 * before now_ms; a key that has no expiry time or a later one (set again
 * since it was found), or is absent, is left alone. The change has one
 * revision (*version, may be NULL, left alone if nothing was removed) and
 * counts in kv_metrics.expired_keys; *removed (may be NULL) receives how
 * many keys it removed. Given the same state and the same now_ms, every
 * copy removes the same keys.
 * Errors: KV_INVALID_ARGUMENT (n 0, keys NULL, now_ms 0), key limit
 * codes, KV_NO_MEMORY; a store with a data directory: KV_NO_SPACE, KV_IO. */
KV_API int kv_expire_remove(kv_store *store, const kv_key *keys, size_t n, uint64_t now_ms,
                            size_t *removed, uint64_t *version);

/* As kv_set, and the key expires at expire_at_ms (0 = never). A time
 * already past is allowed: the key is set and at once absent. */
KV_API int kv_set_ex(kv_store *store, const void *key, size_t klen,
                     const void *val, size_t vlen, uint64_t expire_at_ms,
                     uint64_t *version);

/* As kv_set_ex with expire_at_ms = kv_clock_ms(store) + ttl_ms.
 * KV_INVALID_ARGUMENT if ttl_ms is 0. */
KV_API int kv_set_ttl(kv_store *store, const void *key, size_t klen,
                      const void *val, size_t vlen, uint64_t ttl_ms,
                      uint64_t *version);

/* Gives an existing key the expiry time expire_at_ms (0: none), keeping
 * its value: a change with a new revision (*version, may be NULL), like
 * Redis PEXPIREAT. A time already past deletes the key (the change is then
 * a delete). If the key already has exactly that expiry time nothing
 * changes and *version receives its current version.
 * Errors: KV_NOT_FOUND (outcome: absent or expired), key limit codes,
 * KV_NO_MEMORY. */
KV_API int kv_expire(kv_store *store, const void *key, size_t klen,
                     uint64_t expire_at_ms, uint64_t *version);

/* Removes a key's expiry time: kv_expire(store, key, klen, 0, version). */
KV_API int kv_persist(kv_store *store, const void *key, size_t klen,
                      uint64_t *version);

/* *expire_at_ms receives the key's expiry time, 0 if it has none (the
 * time left is *expire_at_ms - kv_clock_ms(store)).
 * Errors: KV_NOT_FOUND (outcome: absent or expired), key limit codes,
 * KV_INVALID_ARGUMENT (expire_at_ms NULL). Never takes a lock. */
KV_API int kv_ttl(kv_store *store, const void *key, size_t klen,
                  uint64_t *expire_at_ms);

/* ------------------------------------------------------------------------
 * Optimistic transactions
 *
 * Reads inside a transaction see a consistent state of the store plus the
 * transaction's own writes; writes are buffered until commit. Commit is
 * serializable: if any key the transaction read has changed since it was
 * read, commit returns KV_CONFLICT and changes nothing. A read that could
 * no longer be consistent with earlier reads returns KV_CONFLICT at once;
 * the transaction is then doomed: later gets, sets and deletes return
 * KV_CONFLICT, and so does commit. A transaction that wrote nothing commits
 * with KV_OK (its reads were one consistent snapshot when they were made).
 * ---------------------------------------------------------------------- */
typedef struct kv_txn kv_txn;

/* Starts a transaction. Errors: KV_NO_MEMORY. */
KV_API int kv_txn_begin(kv_store *store, kv_txn **out);

/* As kv_get(), inside the transaction. */
KV_API int kv_txn_get(kv_txn *txn, const void *key, size_t klen,
                      kv_value *out);
/* Buffer a set or delete; visible to this transaction's reads only. */
KV_API int kv_txn_set(kv_txn *txn, const void *key, size_t klen,
                      const void *val, size_t vlen);
KV_API int kv_txn_delete(kv_txn *txn, const void *key, size_t klen);
/* As kv_txn_set, and the key expires at expire_at_ms (0 = never). */
KV_API int kv_txn_set_ex(kv_txn *txn, const void *key, size_t klen,
                         const void *val, size_t vlen, uint64_t expire_at_ms);

/* Commits and frees the transaction, whatever the outcome: the handle must
 * not be used again. version (may be NULL) receives the commit's revision
 * (unchanged for a transaction that wrote nothing).
 * Errors: KV_CONFLICT (outcome: retry), KV_NO_MEMORY, KV_STORE_FULL,
 * KV_MEMORY_LIMIT. */
KV_API int kv_txn_commit(kv_txn *txn, uint64_t *version);

/* Discards and frees the transaction. NULL is a no-op. */
KV_API void kv_txn_abort(kv_txn *txn);

/* ------------------------------------------------------------------------
 * One-shot conditional transactions (like etcd's Txn)
 *
 * If every compare holds, then_ops run, otherwise else_ops run; compares
 * and ops together are one atomic step. Ops in a list run in order and a
 * GET sees the list's earlier writes. Every compare and every op of both
 * lists is validated before anything runs: a bad one in either list is an
 * error and nothing changes.
 * ---------------------------------------------------------------------- */
typedef enum kv_compare_kind {
    KV_CMP_VERSION_EQ = 0, /* key's version == version (0 = absent) */
    KV_CMP_EXISTS = 1,     /* key exists                            */
    KV_CMP_ABSENT = 2,     /* key does not exist                    */
    KV_CMP_VALUE_EQ = 3    /* key exists and its value == value     */
} kv_compare_kind;

typedef struct kv_compare {
    kv_compare_kind kind;
    const void *key;
    size_t klen;
    uint64_t version;  /* KV_CMP_VERSION_EQ */
    const void *value; /* KV_CMP_VALUE_EQ   */
    size_t vlen;
} kv_compare;

typedef enum kv_op_kind {
    KV_OP_GET = 0,
    KV_OP_SET = 1,
    KV_OP_DELETE = 2
} kv_op_kind;

typedef struct kv_op {
    kv_op_kind kind;
    const void *key;
    size_t klen;
    const void *value; /* KV_OP_SET */
    size_t vlen;
    uint64_t expire_at_ms; /* KV_OP_SET: the key's expiry time (see
                              "Expiry"), 0 = never; ignored otherwise */
} kv_op;

typedef struct kv_op_result {
    int status;      /* KV_OK, or KV_NOT_FOUND for a GET/DELETE of a missing key */
    kv_value value;  /* GET: the value read (data NULL if missing)     */
} kv_op_result;

typedef struct kv_txn_result {
    int succeeded;          /* 1: compares held, then_ops ran; 0: else_ops */
    uint64_t version;       /* the commit's revision if it wrote, else 0  */
    size_t nresults;        /* = number of ops in the branch that ran     */
    kv_op_result *results;  /* owned; free with kv_txn_result_free()      */
} kv_txn_result;

/* Runs the conditional transaction. On KV_OK, *result describes the branch
 * that ran; release it with kv_txn_result_free(). On error nothing changed
 * and *result is untouched. Errors: KV_INVALID_ARGUMENT (bad kind), key and
 * value limit errors, KV_NO_MEMORY, KV_STORE_FULL, KV_MEMORY_LIMIT. */
KV_API int kv_txn_cond(kv_store *store,
                       const kv_compare *cmps, size_t ncmps,
                       const kv_op *then_ops, size_t nthen,
                       const kv_op *else_ops, size_t nelse,
                       kv_txn_result *result);

KV_API void kv_txn_result_free(kv_txn_result *result);

/* ------------------------------------------------------------------------
 * Prefix scan with a cursor
 *
 * Walks the keys in hash order (not sorted), calling fn for each key that
 * starts with prefix (plen may be 0), until `limit` keys were passed to fn,
 * fn asks to stop, or the store is exhausted. Start with cursor 0; *next
 * receives the cursor to continue from, 0 when the scan is complete.
 * Weakly consistent, like Redis SCAN: a key present for the whole scan is
 * returned exactly once; keys added or removed during the scan may or may
 * not be. fn returns 0 to continue, non-zero to stop after this key (the
 * scan then resumes after it). fn's pointers are valid only during the
 * call; fn may call other libkv functions. limit must be at least 1.
 * Errors: KV_INVALID_ARGUMENT, KV_NO_MEMORY.
 * ---------------------------------------------------------------------- */
typedef int (*kv_scan_fn)(void *ctx, const void *key, size_t klen,
                          const void *val, size_t vlen, uint64_t version);
KV_API int kv_scan(kv_store *store, const void *prefix, size_t plen,
                   uint64_t cursor, size_t limit, kv_scan_fn fn, void *ctx,
                   uint64_t *next);

/* kv_scan_ex's callback: as kv_scan_fn, with the key's expiry time (0:
 * none). */
typedef int (*kv_scan_ex_fn)(void *ctx, const void *key, size_t klen, const void *val,
                             size_t vlen, uint64_t version, uint64_t expire_at_ms);
/* kv_scan_ex flags. */
#define KV_SCAN_EXPIRED 1u /* also give keys that have expired but are
                              still stored (not yet removed): a replica's
                              copy of its whole state (see "Replicas") */

/* As kv_scan, and fn also receives each key's expiry time; flags: 0 or
 * KV_SCAN_EXPIRED. Errors: as kv_scan; KV_INVALID_ARGUMENT for an unknown
 * flag. */
KV_API int kv_scan_ex(kv_store *store, const void *prefix, size_t plen, uint64_t cursor,
                      size_t limit, unsigned flags, kv_scan_ex_fn fn, void *ctx,
                      uint64_t *next);

/* ------------------------------------------------------------------------
 * Reclamation
 *
 * Deleted and overwritten values are not freed at once: readers on other
 * threads may still be looking at them (epoch-based reclamation, see
 * docs/design.md). Each writing thread frees its own retired memory as its
 * writes go on, large values promptly; kv_reclaim frees what a thread
 * that stopped writing left behind.
 * ---------------------------------------------------------------------- */

/* Frees now all retired memory that no reader can still see, whichever
 * thread retired it (a list its owner is using at that moment is left to
 * the owner). Cheap when nothing is retired; otherwise it may interrupt
 * every CPU running the process once or twice (membarrier), so call it
 * when idle or on a timer (kvd: every 100 ms per event loop), not per
 * operation. *retired_bytes (may be NULL) receives the bytes still waiting
 * for readers afterwards, summed over all threads (approximate while
 * others write). Any thread; called from inside a read callback (kv_get_with,
 * kv_scan...) it frees nothing. Errors: KV_INVALID_ARGUMENT (store NULL),
 * KV_NO_MEMORY (no per-thread state could be allocated). */
KV_API int kv_reclaim(kv_store *store, uint64_t *retired_bytes);

/* ------------------------------------------------------------------------
 * Metrics
 *
 * Cheap to read; counters are kept per thread, so reading them never slows
 * the operations. Under concurrent writes the figures are a close
 * approximation; when the store is quiet they are exact.
 * ---------------------------------------------------------------------- */
typedef struct kv_metrics {
    uint64_t keys;          /* keys stored                               */
    uint64_t key_bytes;     /* total bytes of stored keys                */
    uint64_t value_bytes;   /* total bytes of stored values              */
    uint64_t memory_bytes;  /* approximate memory used by the store      */
    uint64_t revision;      /* the store's latest revision               */
    uint64_t gets;          /* get calls, including multi-get keys       */
    uint64_t get_hits;
    uint64_t get_misses;
    uint64_t sets;          /* keys set (a multi-set of n counts n)      */
    uint64_t deletes;       /* keys deleted                              */
    uint64_t cas_failures;  /* kv_set_if / kv_delete_if mismatches      */
    uint64_t txn_commits;   /* optimistic and conditional commits        */
    uint64_t txn_conflicts; /* optimistic transactions that conflicted   */
    uint64_t table_slots;   /* index capacity (its 32 segments' slots)   */
    uint64_t table_resizes; /* times a segment of the index grew or was
                               rebuilt                                   */
    /* durable stores (all 0 in memory) */
    uint64_t durable_revision; /* highest durable revision               */
    uint64_t log_bytes;     /* bytes appended to the log since open      */
    uint64_t log_records;   /* records written                           */
    uint64_t log_batches;   /* writes of a batch (group commits)         */
    uint64_t log_syncs;     /* fdatasync calls on the log                */
    uint64_t snapshots;     /* snapshots and backups completed           */
    uint64_t snapshot_failures;
    uint64_t snapshot_revision; /* end revision of the newest snapshot    */
    /* expiry */
    uint64_t expired_keys;  /* expired keys removed (lazily or actively) */
    uint64_t keys_with_ttl; /* keys stored with an expiry time (expired
                               ones included until removed)              */
    /* memory limit (see "Memory limit and eviction") */
    uint64_t evicted_keys;  /* keys evicted to stay under max_memory     */
    uint64_t max_memory;    /* the store's limit, 0 = none               */
    uint64_t memory_used;   /* what the limit is checked against:
                               memory_bytes plus retired memory not yet
                               freed, less an old index being copied to
                               a bigger one while that runs              */
    /* history (see "History") */
    uint64_t history_versions; /* earlier values kept                    */
    uint64_t history_bytes; /* memory they take (values, keys, entries;
                               included in memory_bytes)                 */
    uint64_t compact_revision; /* kv_compact_revision()                  */
} kv_metrics;

/* Fills the first `size` bytes of *out; pass sizeof(kv_metrics). Fields are
 * only ever added at the end, so a program built against an older header
 * (with a smaller struct) stays correct and nothing past size is written.
 * Counting: kv_get, kv_get_into, kv_get_with, kv_exists, kv_txn_get and
 * every key of kv_mget and of a conditional transaction's GETs count as
 * gets; sets count SET operations run (duplicates included); deletes count
 * DELETE operations that found their key (set earlier in the same batch
 * counts); txn_commits counts successful kv_txn_commit calls
 * (read-only ones included) and every kv_txn_cond.
 * Errors: KV_INVALID_ARGUMENT if size is too small for the first 13 fields. */
KV_API int kv_metrics_read(kv_store *store, kv_metrics *out, size_t size);

/* ------------------------------------------------------------------------
 * History: reads in the past, a key's changes, rollback, compaction
 *
 * A store opened with kv_config.history = 1 keeps earlier values of its
 * keys (off by default: a store without it pays nothing). Its revisions
 * are 1, 2, 3, ... (one counter, as with a log), and "the store as of
 * revision N" is the state after the changes numbered up to N: a state
 * the store really went through, with no multi-key change split.
 *
 * Each version of a key has, as in etcd, its revision (the change that
 * wrote it; kv_value.version), the key's create revision (the change that
 * created the key since it last did not exist) and its version count
 * (1 for the value that created the key, then 2, 3, ...). A deletion is
 * a change of the key too: kv_history lists it.
 *
 * Bounds (kv_config): at most history_versions earlier values per key,
 * history_bytes in all, and none replaced more than history_age_s seconds
 * ago; 0 leaves that bound out, and with none set history grows until
 * kv_compact. History is dropped oldest first: the per-key bound by the
 * writer of the key; for the others a background thread raises the
 * compaction revision (under the byte bound from half of it on, keeping
 * history near half the bound), a change drops up to four of its keys'
 * values below it, and the thread sweeps the rest in slices of one lock
 * stripe at a time (a reader or writer of history waits at most for one
 * slice): at once when history is over its byte bound, else in the
 * background. Dropping history raises the compaction revision: a read at
 * a revision below it gives KV_COMPACTED (and for one key whose own
 * earlier values were dropped by the per-key bound, below that key's
 * oldest kept value). kv_compact_revision() gives the oldest readable
 * revision. Memory for history is counted in kv_metrics.memory_bytes and
 * history_bytes, and under max_memory: there history gives way first (a
 * write that needs room compacts history, oldest half first, before any
 * live key is evicted or the write is refused).
 *
 * Reads in the past lock the stripes of the keys they read for a moment
 * (so that a change with a revision up to N that is still being published
 * is waited for); they never block gets of the latest values.
 *
 * Expiry in history: a key that expires is removed by a change (the
 * store's active or lazy expiry, within about a second of its expiry
 * time); history shows it until that change's revision.
 *
 * A store opened on a directory keeps its history across a restart: the
 * log holds every change and snapshots hold each key's earlier versions
 * within the bounds (docs/storage.md). A snapshot written by a store
 * without history has none: after it, reads below its revision give
 * KV_COMPACTED. A store filled with kv_load has no history below the
 * revisions it loaded.
 *
 * Errors common to the calls below: KV_UNSUPPORTED (the store keeps no
 * history), KV_INVALID_ARGUMENT (rev 0, NULL outputs), KV_FUTURE_REVISION
 * (rev above kv_revision()), KV_COMPACTED, KV_NO_MEMORY, key limit codes.
 * ---------------------------------------------------------------------- */

/* A key's version as history records it. */
typedef struct kv_key_meta {
    uint64_t revision;        /* the change that wrote this value          */
    uint64_t create_revision; /* the change that created the key           */
    uint64_t version;         /* 1 for the creating value, then 2, 3, ...   */
    uint64_t expire_at_ms;    /* its expiry time (see "Expiry"), 0 = none   */
} kv_key_meta;

/* The oldest revision a read in the past may ask for (0 while nothing was
 * ever compacted: every revision from 1), or 0 for a store without
 * history. */
KV_API uint64_t kv_compact_revision(kv_store *store);

/* Copies the value key had at revision rev into *out (out->version is the
 * revision that wrote it) and, if meta is not NULL, its metadata.
 * KV_NOT_FOUND (outcome) if the key did not exist at rev. */
KV_API int kv_get_at(kv_store *store, const void *key, size_t klen, uint64_t rev,
                     kv_value *out, kv_key_meta *meta);

/* As kv_mget, at revision rev: all n keys as they were after the change
 * numbered rev. A key absent at rev gives {NULL, 0, 0}. On any error
 * nothing is allocated. */
KV_API int kv_mget_at(kv_store *store, const kv_key *keys, size_t n, uint64_t rev,
                      kv_value *out);

/* As kv_scan, over the keys as they were at revision rev (keys deleted
 * since are included, keys created since are not), with the same cursor
 * and callback rules. Every key that existed at rev is given exactly once,
 * whatever changes meanwhile: the state at rev does not change. */
KV_API int kv_scan_at(kv_store *store, const void *prefix, size_t plen, uint64_t rev,
                      uint64_t cursor, size_t limit, kv_scan_fn fn, void *ctx,
                      uint64_t *next);

/* One change of a key, as kv_history lists it. */
typedef struct kv_event {
    uint64_t revision;        /* the change                                 */
    int deleted;              /* 1: the change removed the key (deleted,
                                 evicted, expired or rolled back); the rest
                                 below is 0/NULL then                        */
    uint64_t create_revision;
    uint64_t version;
    uint64_t expire_at_ms;
    void *value;              /* malloc'ed, owned by the caller             */
    size_t vlen;
    void *key;                /* kv_watch_next: the key (malloc'ed, owned by
                                 the caller); kv_history: NULL              */
    size_t klen;
} kv_event;

/* The changes of key with revision in [min_rev, max_rev] (max_rev 0: up
 * to the latest), newest first, at most limit of them (0: no limit), into
 * a new array *out of *n events; free it with kv_events_free(*out, *n).
 * A key with no change in the range gives *n = 0 and KV_OK.
 * KV_COMPACTED if the listing would reach below what is kept of the key
 * (min_rev below the compaction revision or the key's own floor) before
 * limit is reached; min_rev 0 means "as far back as is kept" and never
 * gives it. */
KV_API int kv_history(kv_store *store, const void *key, size_t klen, uint64_t min_rev,
                      uint64_t max_rev, size_t limit, kv_event **out, size_t *n);

/* Frees n events from kv_history or kv_watch_next. NULL is a no-op. */
KV_API void kv_events_free(kv_event *events, size_t n);

/* Restores the n keys to their state at revision to_rev - the value and
 * expiry time each had then, or absent - as ONE new change with a new
 * revision (*version, may be NULL; left alone if nothing needed to
 * change). History is never rewritten: the rollback is a change like any
 * other, and can itself be rolled back. Keys already as they were at
 * to_rev (not changed since) are left alone; *changed (may be NULL)
 * receives how many keys the change sets or deletes.
 * unchanged_since != 0 makes it conditional: if any of the keys has
 * changed after revision unchanged_since (its current version is above
 * it), KV_VERSION_MISMATCH (outcome) and nothing changes. A value whose
 * expiry time has passed restores as absent. Errors as above, and
 * KV_STORE_FULL, KV_MEMORY_LIMIT as kv_mset. */
KV_API int kv_rollback(kv_store *store, const kv_key *keys, size_t n, uint64_t to_rev,
                       uint64_t unchanged_since, uint64_t *version, size_t *changed);

/* As kv_rollback, for every key that starts with prefix (plen may be 0:
 * the whole store) and exists now or existed at to_rev: keys created
 * since are deleted, keys deleted since come back. The keys are found
 * first and then changed in one atomic step; a key with the prefix that
 * another thread creates while the call runs may be left out of it. */
KV_API int kv_rollback_prefix(kv_store *store, const void *prefix, size_t plen,
                              uint64_t to_rev, uint64_t unchanged_since,
                              uint64_t *version, size_t *changed);

/* Drops the history that only reads below revision rev need, now, in the
 * calling thread (one lock stripe at a time: readers and writers go on);
 * rev becomes the compaction revision. KV_COMPACTED if rev is not above
 * the current compaction revision (as etcd), KV_FUTURE_REVISION if it is
 * above kv_revision(). */
KV_API int kv_compact(kv_store *store, uint64_t rev);

/* ------------------------------------------------------------------------
 * Watch: following the changes of a key or a prefix
 *
 * Like etcd's Watch, in a store with history: a watcher gets every change
 * of its key (or of every key with its prefix) from a starting revision
 * on, in revision order: first the changes already made (from history),
 * then new ones as they are made. Each event is one key's part in one
 * change (a change of several watched keys gives several events with one
 * revision, never split across two kv_watch_next calls).
 *
 * New changes reach watchers through a ring of the last 16384 changes
 * (their keys only: values are read from history when delivered). A
 * watcher that falls further behind catches up from history again, on
 * its own; only when history itself no longer has what it missed (the
 * bounds, or kv_compact, dropped it) is it told: kv_watch_next returns
 * KV_COMPACTED and kv_watch_revision() names the revision to resume from
 * with a new watch (events before it are lost to this watcher). It is
 * never skipped silently.
 *
 * Cost: a store with no open watcher pays nothing; while one is open,
 * every change also copies its keys into the ring. A kv_watch belongs to
 * one thread at a time.
 * ---------------------------------------------------------------------- */
typedef struct kv_watch kv_watch;

/* Starts watching key (prefix = 0) or every key starting with key
 * (prefix = 1; klen may then be 0: the whole store) from revision
 * from_rev (0: from the next change; a revision above the latest waits
 * for it). Errors: KV_UNSUPPORTED (no history), KV_COMPACTED (from_rev is
 * below kv_compact_revision()), KV_INVALID_ARGUMENT, key limit codes
 * (except an empty prefix), KV_NO_MEMORY. */
KV_API int kv_watch_open(kv_store *store, const void *key, size_t klen, int prefix,
                         uint64_t from_rev, kv_watch **out);

/* Delivers the next events into a new array *events of *n (free with
 * kv_events_free): at most max (at least 1) unless one change has more
 * watched keys than that, waiting up to timeout_ms for the first (0: do
 * not wait; -1: wait as long as it takes). KV_OK with *n = 0 on timeout.
 * KV_COMPACTED: events were lost (see above); the watcher is finished and
 * kv_watch_revision() says where to resume. KV_NO_MEMORY: try again. */
KV_API int kv_watch_next(kv_watch *watch, kv_event **events, size_t *n, size_t max,
                         int timeout_ms);

/* The revision the watcher delivers from next (after KV_COMPACTED: the
 * revision to resume from). */
KV_API uint64_t kv_watch_revision(const kv_watch *watch);

/* Stops and frees the watcher. NULL is a no-op. */
KV_API void kv_watch_close(kv_watch *watch);

/* ------------------------------------------------------------------------
 * Loading a copy (replication)
 * For a replica that installs another store's state: each key takes the
 * exact revision it had there, so that revisions mean the same on every
 * copy. Not for ordinary writes: nothing here is logged, and no new
 * revision is taken.
 * ---------------------------------------------------------------------- */

/* Sets key to value at revision `version` (deleted != 0: removes the key
 * at that revision, val ignored), unless the key is already at that
 * revision or a later one; the store's revision becomes at least
 * `version` (so a delete of an absent key just raises it). Errors: key
 * and value limit codes, KV_INVALID_ARGUMENT (version 0), KV_NO_MEMORY,
 * KV_UNSUPPORTED (a store with a data directory: its log would not
 * hold the change). */
KV_API int kv_load(kv_store *store, const void *key, size_t klen, const void *val, size_t vlen,
                   uint64_t version, int deleted);

/* As kv_load, and the key (unless deleted) has expiry time expire_at_ms
 * (0: none), which may already be past: the key is then stored but
 * absent, as on the copy it comes from (kv_scan_ex with KV_SCAN_EXPIRED
 * gives such keys). */
KV_API int kv_load_ex(kv_store *store, const void *key, size_t klen, const void *val,
                      size_t vlen, uint64_t version, uint64_t expire_at_ms, int deleted);

/* A key's history as one copy hands it to another (kv_history_dump,
 * kv_history_load): its current version's metadata and its earlier
 * versions. A key with no such record is absent or at version 1. */
typedef struct kv_hist_version {
    uint64_t revision;        /* the change that wrote it                 */
    uint64_t until;           /* the change that replaced or deleted it   */
    uint64_t create_revision; /* the key's create revision then           */
    uint64_t version;         /* the key's number of changes then         */
    uint64_t expire_at_ms;    /* its expiry time (0: none)                */
    const void *value;
    size_t vlen;
} kv_hist_version;

typedef struct kv_key_history {
    const void *key;
    size_t klen;
    uint64_t floor;           /* reads of this key below it: compacted    */
    uint64_t revision;        /* its current version (0: absent) and ...  */
    uint64_t create_revision; /* ... that version's create revision and   */
    uint64_t version;         /* ... number of changes                    */
    const kv_hist_version *versions; /* earlier versions, newest first         */
    size_t nversions;
} kv_key_history;

/* Receives one key's history (pointers valid during the call only; the
 * key's lock stripe is held: copy, do not call into the store). Nonzero
 * stops the dump. */
typedef int (*kv_history_fn)(void *ctx, const kv_key_history *h);

/* Calls fn for every key whose history or metadata a copy needs (keys
 * at version 1 with no earlier version are left out), one lock stripe at
 * a time. The result is exact only if no change runs meanwhile (a
 * replica's apply thread). Errors: KV_UNSUPPORTED (no history; checked
 * first, so a NULL fn asks whether the store keeps history),
 * KV_INVALID_ARGUMENT; KV_OK also when fn stopped it. */
KV_API int kv_history_dump(kv_store *store, kv_history_fn fn, void *ctx);

/* Drops all of the store's history and per-key metadata and makes
 * compact_rev its compaction revision (lower or higher than before): the
 * first step of installing another copy's history, after its keys are
 * loaded (kv_load_ex) and before kv_history_load of each of its keys.
 * Reads in the past while it runs see a store being replaced. Errors:
 * KV_UNSUPPORTED (no history), KV_INVALID_ARGUMENT, KV_NO_MEMORY. */
KV_API int kv_history_reset(kv_store *store, uint64_t compact_rev);

/* Adds a key's history from another copy (versions already there are
 * skipped); its metadata is taken only if the key's current version is
 * h->revision. Errors: KV_UNSUPPORTED (no history), KV_INVALID_ARGUMENT
 * (versions not newest first, or a version's until not above its
 * revision), key and value limit codes, KV_NO_MEMORY. */
KV_API int kv_history_load(kv_store *store, const kv_key_history *h);

/* A copy of a store with history as of one revision, made by any thread
 * while changes go on (a replica's snapshot taken off its apply thread):
 *
 *   kv_history_hold(store, &rev, &compact_rev);   the revision is now's
 *   kv_history_copy(store, entry_fn, history_fn, ctx);
 *   kv_history_release(store);
 *
 * While held, nothing drops history: kv_compact and the byte and age
 * bounds raise the compaction revision (reads below it are refused as
 * usual) but free nothing, a change does not apply the per-key count
 * bound, and a write under max_memory finds no history to shed (it
 * evicts or is refused instead). kv_history_release frees what was owed,
 * so the store then holds what it would have held without the hold. Hold
 * only for as long as a copy takes.
 *
 * kv_history_hold: *rev gets the store's latest revision and, if not
 * NULL, *compact_rev its compaction revision. Errors: KV_UNSUPPORTED (no
 * history), KV_INVALID_ARGUMENT (NULL rev, or already held: one hold at a
 * time).
 *
 * kv_history_copy: entry_fn gets every key as it was at the held
 * revision, with its value, revision and expiry time (keys expired but
 * not yet removed included, as kv_scan_ex with KV_SCAN_EXPIRED), then
 * history_fn every key's history at that revision (as kv_history_dump
 * gives it): exactly what a copy made with no change running would have
 * given. The pointers callbacks get are valid during the call only, and
 * callbacks must not call into the store (history_fn runs with a lock
 * stripe held); nonzero from entry_fn stops the copy (KV_OK), from
 * history_fn stops the history part. Errors: KV_UNSUPPORTED,
 * KV_INVALID_ARGUMENT (NULL callback, no hold), KV_NO_MEMORY.
 *
 * kv_history_release: ends the hold (a no-op without one) and makes the
 * owed sweep on the calling thread. */
KV_API int kv_history_hold(kv_store *store, uint64_t *rev, uint64_t *compact_rev);
KV_API int kv_history_copy(kv_store *store, kv_scan_ex_fn entry_fn, kv_history_fn history_fn,
                           void *ctx);
KV_API void kv_history_release(kv_store *store);

#ifdef __cplusplus
}
#endif

#endif /* KV_H */
