/*
 * store.h - the kv_store object and the helpers every operation shares.
 */
#ifndef KV_STORE_H
#define KV_STORE_H

#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>

#include "apply.h"
#include "ebr.h"
#include "slab.h"
#include "kv.h"
#include "stripes.h"
#include "table.h"
#include "thread_slot.h"

/* Fields are grouped by who writes them, so that writers' updates do not
 * evict the line every reader needs (false sharing). */
struct kv_store {
    /* read by every operation, written only by a resize */
    _Alignas(64) kv_options opts;
    _Atomic(kv__table *) table; /* the current index; may have a `next` */
    kv__stripe *stripes;
    kv__record_hook record_hook; /* apply.h: test hook, sees each record */
    void *record_ctx;
    struct kv__log *log;         /* log.h: NULL for an in-memory store */
    bool wait_durable;           /* writers wait for their record (kv_config) */
    struct kv__durable *dur;     /* durable.c: directory, lock, snapshots */
    kv__ebr ebr;
    /* written by every change */
    _Alignas(64) _Atomic uint64_t revision; /* the last revision handed out */
    _Atomic uint64_t nkeys; /* exact key count, kept only if max_keys */
    /* written rarely */
    _Alignas(64) _Atomic uint64_t resizes;
    kv__slot_dir slots;
    kv__slab slab; /* small items (slab.h) */
};

/* durable.c: stops snapshots and the log, releases the directory. */
void kv__durable_close(kv_store *s);
/* durable.c: adds the log and snapshot figures to *m. */
struct kv_metrics;
void kv__durable_metrics(kv_store *s, struct kv_metrics *m);

/* Checks a key against the store's limits. */
static inline int kv__check_key(const kv_store *s, const void *key, size_t klen)
{
    if (klen == 0)
        return KV_KEY_EMPTY;
    if (klen > s->opts.max_key_size)
        return KV_KEY_TOO_LARGE;
    if (!key)
        return KV_INVALID_ARGUMENT;
    return KV_OK;
}

static inline int kv__check_value(const kv_store *s, const void *val, size_t vlen)
{
    if (vlen > s->opts.max_value_size)
        return KV_VALUE_TOO_LARGE;
    if (!val && vlen)
        return KV_INVALID_ARGUMENT;
    return KV_OK;
}

/* Copies an item's value into a new kv_value. */
int kv__value_copy(const void *val, size_t vlen, uint64_t version, kv_value *out);

/* resize.c: before a write that may insert up to n new keys (in a read
 * section, no stripe lock held): reserves room for them, starting a resize
 * or helping a running one as needed. Returns the table the reservation is
 * in and *reserved (0 when room is plentiful and nothing was reserved), for
 * kv__resize_release once the write is done; NULL if no room can be had
 * (out of memory for a bigger index). */
kv__table *kv__resize_prepare(kv_store *s, kv__slot *slot, size_t n, size_t *reserved);
void kv__resize_release(kv__table *reserved_in, size_t reserved);
/* Migrates up to `chunks` chunks of a running resize (no locks held). */
void kv__resize_help(kv_store *s, kv__slot *slot, size_t chunks);

#endif
