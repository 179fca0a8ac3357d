/*
 * files.h - reading what the log and snapshots left in a data directory.
 *
 * Used by recovery (durable.c), snapshots (they copy the log's tail) and
 * the check tool. Files are read through a read-only mapping; nothing here
 * writes (kv__seg_read reports a torn tail, the caller decides to cut it).
 *
 * Names in a data directory:
 *   LOCK                          flock'ed by the process that has it open
 *   log-<16 hex>.kvl              a log segment; the number is its first revision
 *   snap-<16 hex>.kvs             a snapshot; the number is its end revision
 *   *.tmp                         unfinished snapshots, removed at open
 */
#ifndef KV_FILES_H
#define KV_FILES_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "apply.h"

struct kv__io;

typedef struct kv__dir_list {
    uint64_t *segs; /* first revisions, ascending */
    size_t nsegs;
    uint64_t *snaps; /* end revisions, ascending */
    size_t nsnaps;
} kv__dir_list;

/* Lists segments and snapshots of dir. With remove_tmp (an I/O layer),
 * *.tmp files are deleted through it. KV_OK, KV_IO (cannot read the
 * directory), KV_NO_MEMORY. */
int kv__dir_list_read(const char *dir, struct kv__io *remove_tmp, kv__dir_list *out);
void kv__dir_list_free(kv__dir_list *l);

/* Called for each record; a non-zero return stops the read with it. frame
 * and frame_len are the record's whole frame (for copying verbatim). */
typedef int (*kv__rec_fn)(void *ctx, const kv__record *r, const unsigned char *frame,
                          size_t frame_len);

typedef struct kv__seg_info {
    uint64_t first_rev;  /* from the header */
    uint64_t last_rev;   /* of the last valid record, 0 if none */
    uint64_t records;
    uint64_t valid_end;  /* offset just past the last valid record */
    uint64_t file_size;
    bool torn;           /* bytes past valid_end are a torn write */
    bool header_torn;    /* the header itself was never completely written */
} kv__seg_info;

/* Reads segment path. is_last: the newest segment (the only one allowed to
 * end torn). Records must be consecutive revisions starting at the
 * header's first revision. Errors: KV_CORRUPT (err says which file and
 * offset), KV_IO, KV_NO_MEMORY, or fn's return value. */
int kv__seg_read(const char *path, bool is_last, kv__rec_fn fn, void *ctx,
                 kv__seg_info *info, char *err, size_t errcap);

struct kv__snap_hent;

/* A snapshot's contents, as kv__snap_read hands them out. */
typedef struct kv__snap_fns {
    /* one key as it was (rev = its version; expire_at its expiry time, 0:
     * none) */
    int (*entry)(void *ctx, const void *key, size_t klen, const void *val, size_t vlen,
                 uint64_t rev, uint64_t expire_at);
    /* a record of the log tail inside the snapshot */
    kv__rec_fn record;
    /* optional, after `entry` when the entry carries them: the key's
     * create revision and version count (a store with history) */
    int (*entry_meta)(void *ctx, const void *key, size_t klen, uint64_t rev, uint64_t create,
                      uint64_t version);
    /* optional: one key's history (n earlier versions, newest first) */
    int (*history)(void *ctx, const void *key, size_t klen, uint64_t floor,
                   const kv_hist_version *ents, size_t n);
    /* optional: the store's compaction revision (a store with history) */
    int (*hist_info)(void *ctx, uint64_t compact_rev);
} kv__snap_fns;


typedef struct kv__snap_info {
    uint64_t start_rev, end_rev, entries, records;
} kv__snap_info;

/* Reads and verifies snapshot path completely. Errors: KV_CORRUPT (err
 * names file and offset), KV_IO, KV_NO_MEMORY, or a callback's value.
 * fns may be NULL (verify only). */
int kv__snap_read(const char *path, const kv__snap_fns *fns, void *ctx, kv__snap_info *info,
                  char *err, size_t errcap);

/* Reads only the end block of snapshot path: its entry and record
 * counts (to size the index before loading). KV_CORRUPT if the end block
 * is not there or fails its checksum; the full check is kv__snap_read's. */
int kv__snap_peek(const char *path, uint64_t *entries, uint64_t *records);

/* Snapshot file format constants (docs/storage.md). */
#define KV__SNAP_HDR 32u
#define KV__BLK_ENTRIES 2u
#define KV__BLK_END 3u
#define KV__BLK_HISTORY 4u   /* keys' earlier versions */
#define KV__BLK_HIST_INFO 5u /* the compaction revision */
#define KV__HKEY_HDR 16u     /* klen u32, nent u32, floor u64 */
#define KV__HENT_HDR 40u     /* rev, until, create, version u64; ext u16, 0 u16, vlen u32 */
#define KV__ENTRY_HDR 20u

#endif
