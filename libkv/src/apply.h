/*
 * apply.h - the single write path.
 *
 * Every change to the store - a set, a compare-and-swap, a delete, a
 * multi-set, a multi-delete, an optimistic transaction's commit and a
 * conditional transaction - is one kv__batch handed to kv__apply(), which
 * makes it one atomic step with one revision. A batch is the general form
 * (compares, then-ops, else-ops); the simpler operations are special cases.
 *
 * Expiry: every key is looked at with the store's clock (kv__clock_now,
 * which a replica's applying thread pins), or the batch's own reading.
 * An expired key counts as absent for compares and ops, and is removed by
 * the change that met it: a key that ends absent but whose slot still holds
 * an expired item gets a delete in the change's record (counted in
 * expired_keys). So a writer that meets an expired key reclaims it (lazy
 * expiry), and the active expiry (expire.c) is a batch of TOUCH ops.
 *
 * The log sits here (log.h): under the keys' stripe locks, the change is
 * appended to the log as one kv__record, which takes its revision; the
 * append can fail, and then nothing changed. The wait for the record to be
 * durable comes after the locks are released (kv__wait_durable). The
 * test-only record hook sees each record after it has its revision and
 * before anything becomes visible, in revision order for any one key.
 */
#ifndef KV_APPLY_H
#define KV_APPLY_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "kv.h"

typedef struct kv__batch {
    const kv_compare *cmps;
    size_t ncmps;
    const kv_op *then_ops;
    size_t nthen;
    const kv_op *else_ops;
    size_t nelse;
    bool want_results; /* fill kv__outcome.results (GET values, statuses) */
    bool internal;     /* may use the internal op kinds below */
    bool no_wait;      /* return without waiting for the record to be
                          durable (eviction: a writer's slice must stay
                          short; a lost eviction is only a key back) */
    uint64_t now;      /* the clock reading expiry is judged by in this
                          change (kv_expire_remove); 0: kv__clock_now */
} kv__batch;

/* Op kinds only the library uses (kv__batch.internal). */
#define KV__OP_EXPIRE ((kv_op_kind)16) /* give the key expire_at_ms (0: none),
                                          keeping its value: a change with a
                                          new revision; a time already past
                                          deletes the key */
#define KV__OP_TOUCH ((kv_op_kind)17)  /* nothing: the key is locked and
                                          looked at, so an expired one is
                                          removed (the active expiry) */
#define KV__OP_EVICT ((kv_op_kind)18)  /* a DELETE by the memory limit
                                          (evict.c), only if the key's
                                          version is expire_at_ms (0: any);
                                          counted as evicted, not deleted */

typedef struct kv__outcome {
    bool succeeded;          /* every compare held: then_ops ran        */
    uint64_t revision;       /* the change's revision, 0 if none        */
    size_t deleted;          /* DELETE ops that found their key         */
    size_t expired;          /* expired keys the change removed          */
    size_t evicted;          /* EVICT ops that removed their key         */
    uint64_t failed_version; /* version of the first failed compare's key */
    kv_op_result *results;   /* want_results: one per op that ran       */
    size_t nresults;
} kv__outcome;

/* One key's new state in a record. */
typedef struct kv__change {
    const void *key;
    size_t klen;
    const void *val; /* NULL when deleted */
    size_t vlen;
    bool deleted;
    uint64_t expire_at; /* a set's expiry time, ms since the epoch; 0: none */
} kv__change;

/* One atomic change, as a log would store it. */
typedef struct kv__record {
    uint64_t revision;
    size_t nchanges;
    const kv__change *changes;
} kv__record;

typedef void (*kv__record_hook)(void *ctx, const kv__record *record);

/* Runs the batch atomically. On KV_OK *out is filled (free results with
 * kv_txn_result_free semantics: kv__outcome_free). On error nothing
 * changed. Errors: key/value limit codes, KV_INVALID_ARGUMENT,
 * KV_NO_MEMORY, KV_STORE_FULL, KV_MEMORY_LIMIT (evict.h: a batch that
 * stores data, not internal, when the memory limit has no room). */
int kv__apply(kv_store *s, const kv__batch *b, kv__outcome *out);

struct kv__slot;
/* EBR free functions for a replaced item, given its footprint: items of
 * plain stores, and of stores whose items carry the access word (evict.h). */
/* The free_fn (ebr.h) for a replaced item of s: its block starts
 * s->item_pre bytes before it. */
void (*kv__retired_item_fn(const kv_store *s))(struct kv__slot *, void *, size_t);

void kv__outcome_free(kv__outcome *out);

/* After a change's locks are released: waits until its revision is
 * durable, if the store has a log and its callers wait (kv_config's
 * wait_durable). KV_OK, or KV_NO_SPACE / KV_IO. */
int kv__wait_durable(kv_store *s, uint64_t rev);

/* The newest revision taken: the log's counter in a store with a log; in
 * one without, the highest stripe clock (1024 relaxed loads: for metrics
 * and kv_revision, not for a hot path). */
uint64_t kv__revision_latest(kv_store *s);

/* Recovery: applies one change of a replayed record (or one snapshot
 * entry) with its original revision, if the key is not already at that
 * revision or later; raises the store's revision to rev. Not logged. */
int kv__replay_change(kv_store *s, const kv__change *c, uint64_t rev);

/* Sets the hook that receives every record (NULL to remove). Only while no
 * other thread uses the store. Internal for now: the log will use it. */
void kv__set_record_hook(kv_store *s, kv__record_hook hook, void *ctx);

#endif
