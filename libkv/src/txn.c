/*
 * txn.c - optimistic, serializable transactions.
 *
 * A transaction buffers its writes and remembers what it read: each key's
 * version, and the change counter of the key's stripe when it was read
 * (stripes.h). Commit is one kv__apply() batch whose compares are "every
 * key read still has the version it had", so a transaction commits only if
 * nothing it read has changed (backward validation, Kung & Robinson 1981).
 *
 * Reads are also kept consistent while the transaction runs, so application
 * code never acts on a state that never existed: after every read, all the
 * reads so far are re-validated against their stripe counters, and the
 * transaction is doomed (KV_CONFLICT) as soon as one has moved. This costs
 * O(reads) per read, fine for the short transactions this API is for.
 *
 * Expiry: a key that expires is, to a transaction, a key deleted at its
 * expiry time. Reads remember the earliest expiry time among the items
 * they saw (live_until); a read made once the store's clock has reached it
 * dooms the transaction, since an earlier read no longer holds. Commit
 * compares versions with the writer's clock, where an expired key has
 * version 0, so a key that expired after it was read is a conflict.
 */
#include <stddef.h>
#include <stdlib.h>
#include <string.h>

#include "apply.h"
#include "evict.h"
#include "hash.h"
#include "store.h"

typedef struct txn_read {
    void *key;
    size_t klen;
    uint64_t hash;
    uint64_t version; /* 0: was absent */
    uint64_t seq;
    bool saw_pending; /* read while a multi-key commit was half-published */
} txn_read;

/* A short transaction (a few keys, small values) allocates nothing but
 * itself: its first reads and writes go in arrays inside it and their keys
 * and values in its arena; bigger ones spill to malloc. */
#define TXN_INLINE 4
#define TXN_ARENA 512

struct kv_txn {
    kv_store *store;
    bool doomed;
    uint64_t live_until; /* earliest expiry time among items read, or max */
    txn_read *reads;
    size_t nreads, reads_cap;
    kv_op *writes; /* keys and values owned */
    size_t nwrites, writes_cap;
    size_t arena_used;
    txn_read small_reads[TXN_INLINE];
    kv_op small_writes[TXN_INLINE];
    _Alignas(max_align_t) unsigned char arena[TXN_ARENA];
};

int kv_txn_begin(kv_store *s, kv_txn **out)
{
    if (!s || !out)
        return KV_INVALID_ARGUMENT;
    kv_txn *t = malloc(sizeof *t); /* the arrays are written before read */
    if (!t)
        return KV_NO_MEMORY;
    t->store = s;
    t->doomed = false;
    t->live_until = UINT64_MAX;
    t->reads = t->small_reads;
    t->writes = t->small_writes;
    t->nreads = t->nwrites = 0;
    t->reads_cap = t->writes_cap = TXN_INLINE;
    t->arena_used = 0;
    *out = t;
    return KV_OK;
}

/* n bytes for a key (and value) the transaction keeps: from its arena
 * while it has room, else from malloc. NULL: out of memory. */
static void *txn_alloc(kv_txn *t, size_t n)
{
    size_t at = (t->arena_used + 7) & ~(size_t)7;
    if (n <= TXN_ARENA && at <= TXN_ARENA - n) {
        t->arena_used = at + n;
        return t->arena + at;
    }
    return malloc(n);
}

static void txn_release(kv_txn *t, void *p)
{
    unsigned char *c = p;
    if (c && !(c >= t->arena && c < t->arena + TXN_ARENA))
        free(p);
}

static void txn_free(kv_txn *t)
{
    for (size_t i = 0; i < t->nreads; i++)
        txn_release(t, t->reads[i].key);
    for (size_t i = 0; i < t->nwrites; i++)
        txn_release(t, (void *)t->writes[i].key); /* value shares the allocation */
    if (t->reads != t->small_reads)
        free(t->reads);
    if (t->writes != t->small_writes)
        free(t->writes);
    free(t);
}

void kv_txn_abort(kv_txn *t)
{
    if (t)
        txn_free(t);
}

/* Makes room for need elements in *arr, which starts as the inline array
 * `inline_arr` and moves to the heap when it outgrows it. */
static int grow(void **arr, size_t *cap, size_t need, size_t elem, void *inline_arr)
{
    if (need <= *cap)
        return KV_OK;
    size_t c = *cap * 2;
    void *a = *arr == inline_arr ? malloc(c * elem) : realloc(*arr, c * elem);
    if (!a)
        return KV_NO_MEMORY;
    if (*arr == inline_arr)
        memcpy(a, inline_arr, *cap * elem);
    *arr = a;
    *cap = c;
    return KV_OK;
}

/* The transaction's own last write of key, or NULL. */
static const kv_op *own_write(const kv_txn *t, const void *key, size_t klen)
{
    for (size_t i = t->nwrites; i-- > 0;)
        if (t->writes[i].klen == klen && memcmp(t->writes[i].key, key, klen) == 0)
            return &t->writes[i];
    return NULL;
}

/* True if every read so far still holds. Runs in a read section. A read
 * that met a half-published commit is re-read: the commit object itself may
 * be gone by now (it was seen in an earlier read section), but if the
 * commit has completed the key's version has changed. */
static bool reads_hold(kv_store *s, const txn_read *r, size_t n, uint64_t now)
{
    for (size_t i = 0; i < n; i++) {
        if (kv__stripe_seq(s->stripes, kv__stripe_of(r[i].hash)) != r[i].seq)
            return false;
        if (r[i].saw_pending) {
            uintptr_t w = kv__index_find(s, r[i].hash, r[i].key,
                                         r[i].klen);
            const kv__item *it = w ? kv__slot_visible(w, NULL, now) : NULL;
            if ((it ? kv__item_rev(it) : 0) != r[i].version)
                return false;
        }
    }
    return true;
}

int kv_txn_get(kv_txn *t, const void *key, size_t klen, kv_value *out)
{
    if (!t || !out)
        return KV_INVALID_ARGUMENT;
    kv_store *s = t->store;
    int rc = kv__check_key(s, key, klen);
    if (rc != KV_OK)
        return rc;
    if (t->doomed)
        return KV_CONFLICT;
    const kv_op *w = own_write(t, key, klen);
    if (w) {
        if (w->kind == KV_OP_DELETE ||
            (w->expire_at_ms && w->expire_at_ms <= kv__clock_now(s)))
            return KV_NOT_FOUND;
        return kv__value_copy(w->value, w->vlen, 0, out);
    }
    if (grow((void **)&t->reads, &t->reads_cap, t->nreads + 1, sizeof *t->reads,
             t->small_reads) != KV_OK)
        return KV_NO_MEMORY;
    size_t arena_before = t->arena_used;
    void *kcopy = txn_alloc(t, klen);
    kv__slot *slot = kv__slot_get(&s->slots);
    if (!kcopy || !slot) {
        txn_release(t, kcopy);
        t->arena_used = arena_before;
        return KV_NO_MEMORY;
    }
    memcpy(kcopy, key, klen);

    txn_read *r = &t->reads[t->nreads];
    *r = (txn_read){kcopy, klen, kv__hash(key, klen), 0, 0, false};
    kv__ebr_pin(&s->ebr, slot);
    r->seq = kv__stripe_seq(s->stripes, kv__stripe_of(r->hash));
    uint64_t now = kv__clock_now(s); /* after the counter: see read.c */
    uintptr_t word = kv__index_find(s, r->hash, key, klen);
    kv__commit *pending = NULL;
    kv__item *it = word ? kv__slot_visible(word, &pending, now) : NULL;
    r->saw_pending = pending != NULL;
    r->version = it ? kv__item_rev(it) : 0;
    if (it && kv__item_has_ttl(it) && kv__item_expire_at(it) < t->live_until)
        t->live_until = kv__item_expire_at(it);
    if (now >= t->live_until || !reads_hold(s, t->reads, t->nreads, now) ||
        (pending && atomic_load(&pending->state) != KV__COMMIT_PENDING) ||
        kv__stripe_seq(s->stripes, kv__stripe_of(r->hash)) != r->seq) {
        t->doomed = true;
        rc = KV_CONFLICT;
    } else if (it) {
        kv__evict_touch(s, slot, it);
        rc = kv__value_copy(kv__item_value(it), kv__item_vlen(it), kv__item_rev(it), out);
    } else {
        rc = KV_NOT_FOUND;
    }
    kv__ebr_unpin(slot);
    kv__count(slot, KV__C_GETS, 1);
    kv__count(slot, it ? KV__C_GET_HITS : KV__C_GET_MISSES, 1);
    if (rc == KV_OK || rc == KV_NOT_FOUND) {
        t->nreads++;
    } else {
        txn_release(t, kcopy);
        t->arena_used = arena_before;
    }
    return rc;
}

static int buffer_write(kv_txn *t, kv_op_kind kind, const void *key, size_t klen,
                        const void *val, size_t vlen, uint64_t expire_at)
{
    if (!t)
        return KV_INVALID_ARGUMENT;
    int rc = kv__check_key(t->store, key, klen);
    if (rc == KV_OK && kind == KV_OP_SET)
        rc = kv__check_value(t->store, val, vlen);
    if (rc != KV_OK)
        return rc;
    if (t->doomed)
        return KV_CONFLICT;
    if (grow((void **)&t->writes, &t->writes_cap, t->nwrites + 1, sizeof *t->writes,
             t->small_writes) != KV_OK)
        return KV_NO_MEMORY;
    unsigned char *copy = klen <= SIZE_MAX - vlen ? txn_alloc(t, klen + vlen) : NULL;
    if (!copy)
        return KV_NO_MEMORY;
    memcpy(copy, key, klen);
    if (vlen)
        memcpy(copy + klen, val, vlen);
    t->writes[t->nwrites++] = (kv_op){kind, copy, klen, kind == KV_OP_SET ? copy + klen : NULL,
                                      vlen, expire_at};
    return KV_OK;
}

int kv_txn_set(kv_txn *t, const void *key, size_t klen, const void *val, size_t vlen)
{
    return buffer_write(t, KV_OP_SET, key, klen, val, vlen, 0);
}

int kv_txn_set_ex(kv_txn *t, const void *key, size_t klen, const void *val, size_t vlen,
                  uint64_t expire_at_ms)
{
    return buffer_write(t, KV_OP_SET, key, klen, val, vlen, expire_at_ms);
}

int kv_txn_delete(kv_txn *t, const void *key, size_t klen)
{
    return buffer_write(t, KV_OP_DELETE, key, klen, NULL, 0, 0);
}

int kv_txn_commit(kv_txn *t, uint64_t *version)
{
    if (!t)
        return KV_INVALID_ARGUMENT;
    kv_store *s = t->store;
    kv__slot *slot = kv__slot_get(&s->slots);
    int rc = KV_OK;
    if (t->doomed) {
        rc = KV_CONFLICT;
    } else if (t->nwrites > 0) {
        /* Reads were validated as they happened; a read-only transaction
         * is serializable at its last read and needs nothing more. */
        kv_compare small[TXN_INLINE];
        kv_compare *cmps = t->nreads <= TXN_INLINE ? small : malloc(t->nreads * sizeof *cmps);
        if (!cmps) {
            rc = KV_NO_MEMORY;
        } else {
            for (size_t i = 0; i < t->nreads; i++)
                cmps[i] = (kv_compare){.kind = KV_CMP_VERSION_EQ, .key = t->reads[i].key,
                                       .klen = t->reads[i].klen,
                                       .version = t->reads[i].version};
            kv__outcome o;
            rc = kv__apply(s, &(kv__batch){.cmps = cmps, .ncmps = t->nreads,
                                           .then_ops = t->writes, .nthen = t->nwrites},
                           &o);
            if (rc == KV_OK) {
                kv__outcome_free(&o);
                if (!o.succeeded)
                    rc = KV_CONFLICT;
                else if (version && o.revision)
                    *version = o.revision;
            }
            if (cmps != small)
                free(cmps);
        }
    }
    if (slot && rc == KV_OK)
        kv__count(slot, KV__C_TXN_COMMITS, 1);
    if (slot && rc == KV_CONFLICT)
        kv__count(slot, KV__C_TXN_CONFLICTS, 1);
    txn_free(t);
    return rc;
}
