/*
 * apply.c - kv__apply(), the one function every change goes through.
 *
 * Steps, for a batch touching keys K1..Kn:
 *   1. Validate everything; nothing is touched if anything is wrong.
 *   2. Lock the stripes of all keys, in stripe order (stripes.h).
 *   3. Find each key and evaluate the compares; pick then_ops or else_ops
 *      and play them in order on a private overlay (so a GET sees earlier
 *      writes of its list). Keys whose state really changes are the change.
 *   4. Allocate everything the change needs; on failure, unlock and return
 *      KV_NO_MEMORY with the store untouched.
 *   5. Take the next revision, hand the record to the hook (apply.h), and
 *      publish: one key is published with one atomic store; several keys
 *      are first replaced by kv__pending nodes of one kv__commit, then the
 *      commit's state flips (the instant they all become visible), then
 *      the pending nodes are replaced by the new items. Stripe counters are
 *      bumped before and after publishing (stripes.h).
 *   6. Retire what was replaced, unlock, and help a running resize.
 *
 * A set or delete of one key (with at most a compare of that key) takes a
 * shorter route through the same steps, apply_single_write(): it is most
 * of the writes, and has nothing to sort, merge or replay.
 */
#include <stdlib.h>

#include "apply.h"
#include "evict.h"
#include "hash.h"
#include "history.h"
#include "log.h"
#include "store.h"
#include "watch.h"

/* A key the batch touches, and what happens to it. */
typedef struct akey {
    const void *key;
    size_t klen;
    uint64_t hash;
    kv__loc loc;
    kv__item *old; /* the item in its slot before the batch, expired or not */
    kv__item *cur; /* its visible item before the batch, NULL if absent
                      (or expired: then old is the expired item) */
    /* overlay while playing the ops */
    bool exists;
    const void *val;
    size_t vlen;
    uint64_t expire; /* expiry time of the key's value in the overlay */
    bool val_is_new; /* val came from a SET of this batch */
    /* what publishing does */
    bool changed;
    kv__item *next; /* new item, NULL: deleted */
    kv__pending *pending;
    kv__hist_prep hist; /* a store with history: what the change needs */
} akey;

/* Every field set one by one: a compound literal of this size compiles to
 * a `rep stos`, whose start-up cost was a fifth of a small batch's time. */
static inline void akey_init(akey *k, const void *key, size_t klen, uint64_t hash)
{
    k->key = key;
    k->klen = klen;
    k->hash = hash;
    k->loc.table = NULL;
    k->loc.index = 0;
    k->loc.word = 0;
    k->old = k->cur = NULL;
    k->exists = false;
    k->val = NULL;
    k->vlen = 0;
    k->expire = 0;
    k->val_is_new = k->changed = false;
    k->next = NULL;
    k->pending = NULL;
    k->hist = (kv__hist_prep){0};
}

/* One mention of a key in the batch: compares first, then then_ops, then
 * else_ops; origin is that position. */
typedef struct ref {
    const void *key;
    size_t klen;
    uint64_t hash;
    size_t origin;
} ref;

static int validate(const kv_store *s, const kv__batch *b)
{
    int rc;
    if (b->ncmps && !b->cmps)
        return KV_INVALID_ARGUMENT;
    for (size_t i = 0; i < b->ncmps; i++) {
        const kv_compare *c = &b->cmps[i];
        if ((unsigned)c->kind > KV_CMP_VALUE_EQ)
            return KV_INVALID_ARGUMENT;
        if ((rc = kv__check_key(s, c->key, c->klen)) != KV_OK)
            return rc;
        if (c->kind == KV_CMP_VALUE_EQ && !c->value && c->vlen)
            return KV_INVALID_ARGUMENT;
    }
    const kv_op *lists[2] = {b->then_ops, b->else_ops};
    size_t lens[2] = {b->nthen, b->nelse};
    for (int l = 0; l < 2; l++) {
        if (lens[l] && !lists[l])
            return KV_INVALID_ARGUMENT;
        for (size_t i = 0; i < lens[l]; i++) {
            const kv_op *op = &lists[l][i];
            if ((unsigned)op->kind > KV_OP_DELETE &&
                !(b->internal && (op->kind == KV__OP_EXPIRE || op->kind == KV__OP_TOUCH ||
                                  op->kind == KV__OP_EVICT)))
                return KV_INVALID_ARGUMENT;
            if ((rc = kv__check_key(s, op->key, op->klen)) != KV_OK)
                return rc;
            if (op->kind == KV_OP_SET && (rc = kv__check_value(s, op->value, op->vlen)) != KV_OK)
                return rc;
        }
    }
    return KV_OK;
}

static int ref_cmp(const ref *a, const ref *b)
{
    unsigned sa = kv__stripe_of(a->hash), sb = kv__stripe_of(b->hash);
    if (sa != sb)
        return sa < sb ? -1 : 1;
    if (a->hash != b->hash)
        return a->hash < b->hash ? -1 : 1;
    if (a->klen != b->klen)
        return a->klen < b->klen ? -1 : 1;
    return memcmp(a->key, b->key, a->klen);
}

static int ref_qsort_cmp(const void *a, const void *b)
{
    return ref_cmp(a, b);
}

/* Sorts a batch's key mentions into lock order: by insertion for the few
 * most batches have (no calls through a pointer, no allocation). */
static void sort_refs(ref *refs, size_t n)
{
    if (n > 16) {
        qsort(refs, n, sizeof *refs, ref_qsort_cmp);
        return;
    }
    for (size_t i = 1; i < n; i++) {
        ref r = refs[i];
        size_t j = i;
        while (j > 0 && ref_cmp(&r, &refs[j - 1]) < 0) {
            refs[j] = refs[j - 1];
            j--;
        }
        refs[j] = r;
    }
}

static bool compare_holds(const kv_compare *c, const akey *k)
{
    switch (c->kind) {
    case KV_CMP_VERSION_EQ:
        return (k->cur ? kv__item_rev(k->cur) : 0) == c->version;
    case KV_CMP_EXISTS:
        return k->cur != NULL;
    case KV_CMP_ABSENT:
        return k->cur == NULL;
    case KV_CMP_VALUE_EQ:
        return k->cur && kv__item_vlen(k->cur) == c->vlen &&
               (c->vlen == 0 || memcmp(kv__item_value(k->cur), c->value, c->vlen) == 0);
    }
    return false;
}

static void free_results(kv_op_result *r, size_t n)
{
    if (!r)
        return;
    for (size_t i = 0; i < n; i++)
        kv_value_free(&r[i].value);
    free(r);
}

void kv__outcome_free(kv__outcome *out)
{
    free_results(out->results, out->nresults);
    out->results = NULL;
    out->nresults = 0;
}

void kv__set_record_hook(kv_store *s, kv__record_hook hook, void *ctx)
{
    s->record_hook = hook;
    s->record_ctx = ctx;
}

/* Plays ops on the overlay. GET results are copied now (under the locks);
 * versions of values written by this batch are filled in after the
 * revision is known. Returns KV_OK or KV_NO_MEMORY. */
static int play_ops(kv__slot *slot, const kv_op *ops, size_t nops, const size_t *op_keys,
                    akey *keys, size_t nkeys, kv__outcome *out, kv_op_result *results,
                    bool *result_needs_rev, uint64_t now)
{
    for (size_t i = 0; i < nops; i++) {
        const kv_op *op = &ops[i];
        akey *k = &keys[op_keys[i]];
        switch ((int)op->kind) {
        case KV_OP_GET:
            kv__count(slot, KV__C_GETS, 1);
            kv__count(slot, k->exists ? KV__C_GET_HITS : KV__C_GET_MISSES, 1);
            if (results) {
                results[i].status = k->exists ? KV_OK : KV_NOT_FOUND;
                if (k->exists) {
                    uint64_t ver = k->val_is_new ? 0 : kv__item_rev(k->cur);
                    if (kv__value_copy(k->val, k->vlen, ver, &results[i].value) != KV_OK)
                        return KV_NO_MEMORY;
                    result_needs_rev[i] = k->val_is_new;
                }
            }
            break;
        case KV_OP_SET:
            k->exists = true;
            k->val = op->value;
            k->vlen = op->vlen;
            k->val_is_new = true;
            k->changed = true;
            k->expire = op->expire_at_ms;
            if (results)
                result_needs_rev[i] = true;
            break;
        case KV__OP_EXPIRE:
            if (results) {
                results[i].status = k->exists ? KV_OK : KV_NOT_FOUND;
                results[i].value.version = k->exists && !k->val_is_new ? kv__item_rev(k->cur) : 0;
            }
            if (!k->exists || k->expire == op->expire_at_ms)
                break; /* absent, or nothing to change */
            if (op->expire_at_ms && op->expire_at_ms <= now) {
                k->exists = false; /* a time already past: the key goes now */
                k->val_is_new = false;
            } else {
                k->expire = op->expire_at_ms;
            }
            k->changed = true;
            if (results)
                result_needs_rev[i] = true;
            break;
        case KV__OP_TOUCH:
            break;
        case KV__OP_EVICT:
            if (k->exists && !k->val_is_new &&
                (!op->expire_at_ms || kv__item_rev(k->cur) == op->expire_at_ms)) {
                out->evicted++;
                k->exists = false;
                k->changed = true;
            }
            break;
        case KV_OP_DELETE:
            if (results)
                results[i].status = k->exists ? KV_OK : KV_NOT_FOUND;
            if (k->exists) {
                out->deleted++;
                k->exists = false;
                k->val_is_new = false;
                k->changed = true;
            }
            break;
        }
    }
    /* A key that ends absent is a change exactly when its slot holds an
     * item: a live one deleted, or an expired one, which the change
     * removes (lazy expiry). */
    for (size_t i = 0; i < nkeys; i++)
        if (!keys[i].exists)
            keys[i].changed = keys[i].old != NULL;
    return KV_OK;
}

static void retired_item_free(kv__slot *slot, void *item, size_t footprint)
{
    kv__item_free_sized(&slot->cache, item, 0, footprint);
}

/* Items of a store that tracks access (evict.h) have their word in front. */
static void retired_meta_item_free(kv__slot *slot, void *item, size_t footprint)
{
    kv__item_free_sized(&slot->cache, item, KV__ITEM_META_BYTES, footprint);
}

/* Items of a store with history have their link in front (item.h). */
static void retired_link_item_free(kv__slot *slot, void *item, size_t footprint)
{
    kv__item_free_sized(&slot->cache, item, KV__ITEM_LINK_BYTES, footprint);
}

static void retired_link_meta_item_free(kv__slot *slot, void *item, size_t footprint)
{
    kv__item_free_sized(&slot->cache, item, KV__ITEM_LINK_BYTES + KV__ITEM_META_BYTES,
                        footprint);
}

void (*kv__retired_item_fn(const kv_store *s))(kv__slot *, void *, size_t)
{
    switch (s->item_pre) {
    case 0: return retired_item_free;
    case KV__ITEM_META_BYTES: return retired_meta_item_free;
    case KV__ITEM_LINK_BYTES: return retired_link_item_free;
    default: return retired_link_meta_item_free;
    }
}

static size_t commit_size(size_t nchanged)
{
    return sizeof(kv__commit) + nchanged * sizeof(kv__pending);
}

/* A multi-key change's commit comes from the slab like an item (a few
 * dozen bytes per key: malloc and free were a twentieth of an mset's
 * time), from malloc when it is too big for it. */
static kv__commit *commit_new(kv_store *s, kv__slot *slot, size_t nchanged)
{
    size_t size = commit_size(nchanged);
    return kv__slab_fits(size) ? kv__slab_alloc(&s->slab, &slot->cache, size) : malloc(size);
}

/* Frees a commit (a free_fn for kv__ebr_retire). */
static void commit_free(kv__slot *slot, void *commit, size_t bytes)
{
    if (kv__slab_fits(bytes))
        kv__slab_free(&slot->cache, commit, bytes);
    else
        free(commit);
}

static void free_prepared(kv_store *s, kv__slot *slot, akey *keys, size_t n, kv__commit *commit)
{
    size_t nchanged = 0;
    for (size_t i = 0; i < n; i++) {
        nchanged += keys[i].changed;
        kv__item_free_pre(&slot->cache, keys[i].next, s->item_pre);
        keys[i].next = NULL;
        keys[i].pending = NULL;
        if (s->hist)
            kv__hist_unprepare(slot, &keys[i].hist);
    }
    if (commit)
        commit_free(slot, commit, commit_size(nchanged));
}

/* Allocates the new items (and, for a multi-key change, its commit with
 * the keys' pending nodes: one allocation). */
static int prepare(kv_store *s, kv__slot *slot, akey *keys, size_t n, size_t nchanged,
                   kv__commit **commit)
{
    *commit = NULL;
    if (nchanged > 1) {
        *commit = commit_new(s, slot, nchanged);
        if (!*commit)
            return KV_NO_MEMORY;
        atomic_init(&(*commit)->state, KV__COMMIT_PENDING);
    }
    size_t j = 0;
    for (size_t i = 0; i < n; i++) {
        akey *k = &keys[i];
        if (!k->changed)
            continue;
        if (k->exists) {
            k->next = kv__item_new_pre(&s->slab, &slot->cache, s->item_pre, k->key, k->klen,
                                       k->val, k->vlen, k->expire);
            if (!k->next)
                goto nomem;
            kv__evict_item_init(s, slot, k->next, k->old);
        }
        if (nchanged > 1) {
            k->pending = &(*commit)->nodes[j++];
            *k->pending = (kv__pending){k->old, k->next, *commit};
        }
        if (s->hist) {
            if (kv__hist_prepare(s, slot, k->hash, k->key, k->klen, k->old, &k->hist) != KV_OK)
                goto nomem;
            if (k->next) /* the new item links the key's record (item.h) */
                atomic_store_explicit(kv__item_link(k->next, s->item_pre), k->hist.rec,
                                      memory_order_relaxed);
        }
    }
    /* Retires: replaced items and the commit (with history: what the
     * per-key bound drops). */
    if (kv__ebr_reserve(slot, nchanged + 1 + (s->hist ? kv__hist_retires(nchanged) + 1 : 0)) !=
        KV_OK)
        goto nomem;
    return KV_OK;
nomem:
    free_prepared(s, slot, keys, n, *commit);
    *commit = NULL;
    return KV_NO_MEMORY;
}

/* The change as one record (revision filled in by the caller or the log).
 * ch is `small` or malloc'ed: free it if it is not small. */
static kv__change *make_changes(akey *keys, size_t n, size_t nchanged, kv__change *small)
{
    kv__change *ch = nchanged <= 8 ? small : malloc(nchanged * sizeof *ch);
    if (!ch)
        return NULL;
    size_t j = 0;
    for (size_t i = 0; i < n; i++)
        if (keys[i].changed)
            ch[j++] = (kv__change){keys[i].key, keys[i].klen,
                                   keys[i].exists ? keys[i].val : NULL,
                                   keys[i].exists ? keys[i].vlen : 0, !keys[i].exists,
                                   keys[i].exists ? keys[i].expire : 0};
    return ch;
}

static void bump_changed(kv_store *s, akey *keys, size_t n)
{
    unsigned last = KV__NSTRIPES;
    for (size_t i = 0; i < n; i++) {
        unsigned st = kv__stripe_of(keys[i].hash);
        if (keys[i].changed && st != last) { /* keys are sorted by stripe */
            kv__stripe_bump(s->stripes, st);
            last = st;
        }
    }
}

/* The word a key's slot gets once the change is done. */
static uintptr_t final_word(const akey *k)
{
    return k->next ? kv__slot_make(k->hash, k->next, false, kv__item_has_ttl(k->next))
                   : KV__SLOT_TOMB;
}

static void publish(kv_store *s, kv__slot *slot, akey *keys, size_t n,
                    size_t nchanged, kv__commit *commit, uint64_t rev, bool replay)
{
    if (nchanged == 1) {
        bump_changed(s, keys, n);
        for (size_t i = 0; i < n; i++) {
            akey *k = &keys[i];
            if (!k->changed)
                continue;
            if (k->loc.table)
                kv__table_replace(&k->loc, final_word(k));
            else
                kv__table_insert(kv__index_seg(s, k->hash), k->hash, final_word(k), true, &k->loc);
        }
    } else {
        for (size_t i = 0; i < n; i++) {
            akey *k = &keys[i];
            if (!k->changed)
                continue;
            uintptr_t w = kv__slot_make(k->hash, k->pending, true, false);
            if (k->loc.table)
                kv__table_replace(&k->loc, w);
            else
                kv__table_insert(kv__index_seg(s, k->hash), k->hash, w, true, &k->loc);
        }
        /* Bumped only now that every key shows the pending node: a reader
         * that noted the old counter and read a key before its node was
         * installed is caught by this bump, one that read a node is caught
         * by the commit's state. */
        bump_changed(s, keys, n);
        /* The instant the whole change becomes visible. */
        atomic_store(&commit->state, KV__COMMIT_DONE);
        for (size_t i = 0; i < n; i++)
            if (keys[i].changed)
                kv__table_replace(&keys[i].loc, final_word(&keys[i]));
    }
    bump_changed(s, keys, n);
    /* The slot stores above are release stores; what retiring them needs
     * of their order (ebr.h: nothing, as the change runs pinned). */
    kv__ebr_unlinked(slot);

    bool ttl_new = false;
    uint64_t ttl_min = UINT64_MAX; /* the earliest expiry time published */
    for (size_t i = 0; i < n; i++) {
        akey *k = &keys[i];
        if (!k->changed)
            continue;
        if (k->old) {
            size_t fp = kv__item_footprint_pre(k->old, s->item_pre);
            kv__count(slot, KV__C_KEYS, (uint64_t)-1);
            kv__count(slot, KV__C_KEY_BYTES, (uint64_t)0 - kv__item_klen(k->old));
            kv__count(slot, KV__C_VALUE_BYTES, (uint64_t)0 - kv__item_vlen(k->old));
            kv__count(slot, KV__C_ITEM_BYTES, (uint64_t)0 - fp);
            if (kv__item_has_ttl(k->old))
                kv__count(slot, KV__C_TTL_KEYS, (uint64_t)-1);
            if (!k->cur)
                kv__count(slot, KV__C_EXPIRED, 1);
            if (!s->hist)
                kv__ebr_retire(&s->ebr, slot, k->old,
                               kv__retired_item_fn(s),
                               fp);
        }
        /* With history the replaced item is kept: it becomes the key's
         * newest earlier version (stripes still locked). */
        if (s->hist)
            kv__hist_commit(s, slot, &k->hist, k->hash, k->old, k->cur != NULL, k->next, rev,
                            replay);
        if (k->next) {
            kv__count(slot, KV__C_KEYS, 1);
            kv__count(slot, KV__C_KEY_BYTES, kv__item_klen(k->next));
            kv__count(slot, KV__C_VALUE_BYTES, kv__item_vlen(k->next));
            kv__count(slot, KV__C_ITEM_BYTES, kv__item_footprint_pre(k->next, s->item_pre));
            if (kv__item_has_ttl(k->next)) {
                kv__count(slot, KV__C_TTL_KEYS, 1);
                ttl_new = true;
                if (kv__item_expire_at(k->next) < ttl_min)
                    ttl_min = kv__item_expire_at(k->next);
            }
        }
    }
    if (commit)
        kv__ebr_retire(&s->ebr, slot, commit, commit_free, commit_size(nchanged));
    if (ttl_new && !atomic_load_explicit(&s->ttl_seen, memory_order_relaxed))
        atomic_store(&s->ttl_seen, true);
    if (ttl_new) /* after the slot stores: see expire.c */
        kv__expiry_note(s, slot, ttl_min);
}

/* The clock reading a batch judges expiry by. One that writes an expiry
 * time reads the wall clock: while no key is due the expiry thread sleeps
 * and the store's clock stays behind (expire.c), and a time already past
 * must be found past, as it would be with the clock ticking. */
static uint64_t batch_now(kv_store *s, const kv__batch *b)
{
    if (b->now)
        return b->now;
    if (!b->internal && kv__pinned.store != s) {
        for (size_t i = 0; i < b->nthen; i++)
            if (b->then_ops[i].expire_at_ms)
                return kv__clock_refresh(s);
        for (size_t i = 0; i < b->nelse; i++)
            if (b->else_ops[i].expire_at_ms)
                return kv__clock_refresh(s);
    }
    return kv__clock_now(s);
}

/* Under max_keys: reserves room for a change that adds keys (undone by the
 * caller if the change then fails). A change that removes keys gives its
 * room back only once it cannot fail any more (apply_key_delta), so that
 * no other writer can use room this change might still need. */
static int reserve_keys(kv_store *s, akey *keys, size_t n, bool replay, int64_t *delta)
{
    *delta = 0;
    if (!s->opts.max_keys)
        return KV_OK;
    for (size_t i = 0; i < n; i++)
        if (keys[i].changed)
            *delta += (keys[i].exists ? 1 : 0) - (keys[i].old ? 1 : 0);
    if (*delta <= 0)
        return KV_OK;
    uint64_t before = atomic_fetch_add(&s->nkeys, (uint64_t)*delta);
    /* Recovery replays one key of a change at a time, and a snapshot's
     * fuzzy copy can hold more keys for a moment than the store ever did:
     * the limit held when the changes were made, it is not checked again. */
    if (!replay && before + (uint64_t)*delta > s->opts.max_keys) {
        atomic_fetch_sub(&s->nkeys, (uint64_t)*delta);
        return KV_STORE_FULL;
    }
    return KV_OK;
}

/* Finds a key (its stripe locked) and loads its current state at clock
 * reading now: an expired item is k->old but not k->cur. */
static void load_key(kv_store *s, akey *k, uint64_t now)
{
    if (kv__table_locate(kv__index_seg(s, k->hash), k->hash, k->key, k->klen, &k->loc) && k->loc.word != KV__SLOT_TOMB)
        k->old = kv__slot_current(k->loc.word, NULL);
    k->cur = k->old && !kv__item_expired(k->old, now) ? k->old : NULL;
    k->exists = k->cur != NULL;
    if (k->cur) {
        k->val = kv__item_value(k->cur);
        k->vlen = kv__item_vlen(k->cur);
        k->expire = kv__item_expire_at(k->cur);
    }
}

/* The revision of a change in a store without a log (with one, the log
 * hands out revisions in its order: log.c). Called with the stripes of
 * all nkeys keys locked, changed or only compared.
 *
 * Each stripe keeps a clock, the revision of the last change that locked
 * it, and each thread the revision of its own last change. A change takes
 * one more than the highest of these (and of the floor that recovery and
 * kv_load raise, a line no change writes), and leaves it in all of them: a
 * Lamport clock (Lamport, "Time, clocks, and the ordering of events in a
 * distributed system", CACM 1978) whose messages are the stripes. So:
 *   - a key's revisions strictly increase (its stripe's clock is at least
 *     its last revision);
 *   - whatever the change overwrote or compared (held in locked stripes)
 *     has a smaller revision, and so has whatever a later change that
 *     locks one of these stripes finds: revision order is a serial order
 *     of the changes (every conflict goes forward in it);
 *   - one thread's changes take increasing revisions, so a store with one
 *     writer (or a Raft node's apply thread) numbers them 1, 2, 3, ...
 * Two changes that share no stripe and no thread may take the same
 * revision: neither saw the other. Nothing here writes a line that a
 * writer of other keys on another core writes (docs/design.md). */
static uint64_t take_revision(kv_store *s, kv__slot *slot, const akey *keys, size_t nkeys)
{
    uint64_t rev = atomic_load_explicit(&s->rev_floor, memory_order_relaxed);
    if (slot->last_rev > rev)
        rev = slot->last_rev;
    for (size_t i = 0; i < nkeys; i++) {
        uint64_t c = kv__stripe_clock(s->stripes, kv__stripe_of(keys[i].hash));
        if (c > rev)
            rev = c;
    }
    rev++;
    for (size_t i = 0; i < nkeys; i++)
        kv__stripe_clock_raise(s->stripes, kv__stripe_of(keys[i].hash), rev);
    slot->last_rev = rev;
    return rev;
}

uint64_t kv__revision_latest(kv_store *s)
{
    if (s->log || s->hist)
        return atomic_load(&s->revision);
    uint64_t rev = atomic_load(&s->rev_floor);
    uint64_t c = kv__stripes_clock_max(s->stripes);
    return c > rev ? c : rev;
}

/* Recovery and kv_load: a change replayed with its own revision moves the
 * clocks forward as if it had been made here. */
static void replay_raise(kv_store *s, kv__slot *slot, uint64_t hash, uint64_t rev)
{
    if (atomic_load(&s->revision) < rev)
        atomic_store(&s->revision, rev);
    if (!s->log && atomic_load(&s->rev_floor) < rev)
        atomic_store(&s->rev_floor, rev);
    kv__stripe_clock_raise(s->stripes, kv__stripe_of(hash), rev);
    if (slot->last_rev < rev)
        slot->last_rev = rev;
}

/* Tells watchers which keys the change of revision rev changed. */
static void feed_record(kv_store *s, kv__slot *slot, const akey *keys, size_t n,
                        size_t nchanged, uint64_t rev)
{
    kv__feed_key small[8], *fk = nchanged <= 8 ? small : malloc(nchanged * sizeof *fk);
    size_t j = 0;
    for (size_t i = 0; fk && i < n; i++)
        if (keys[i].changed)
            fk[j++] = (kv__feed_key){keys[i].key, keys[i].klen, keys[i].next == NULL};
    /* out of memory: no keys, and the feed marks the revision for
     * watchers to read from history */
    kv__feed_record(s, slot, rev, fk, j);
    if (fk != small)
        free(fk);
}

/* Steps 4 and 5 for the nchanged keys marked changed: allocates, takes the
 * revision (into o->revision; replay_rev if not 0, for recovery), logs the
 * record, tells the hook and publishes. On error nothing changed and no
 * revision was used. */
static int commit_change(kv_store *s, kv__slot *slot, akey *keys, size_t nkeys,
                         size_t nchanged, kv__outcome *o, uint64_t replay_rev)
{
    int64_t key_delta;
    int rc = reserve_keys(s, keys, nkeys, replay_rev != 0, &key_delta);
    if (rc != KV_OK)
        return rc;
    kv__commit *commit;
    if ((rc = prepare(s, slot, keys, nkeys, nchanged, &commit)) != KV_OK)
        goto undo_keys;
    kv__change small[8], *ch = NULL;
    kv__record rec = {0, nchanged, NULL};
    if (!replay_rev && (s->log || s->record_hook)) {
        if (!(ch = make_changes(keys, nkeys, nchanged, small))) {
            rc = KV_NO_MEMORY;
            goto undo_prepared;
        }
        rec.changes = ch;
    }
    if (replay_rev) {
        o->revision = replay_rev;
        replay_raise(s, slot, keys[0].hash, replay_rev);
    } else if (s->log) {
        /* Takes the revision under the log's mutex: log order is revision
         * order. Can fail (no memory, disk full, I/O error): undo all. */
        if ((rc = kv__log_append(s->log, &rec)) != KV_OK)
            goto undo_prepared;
        o->revision = rec.revision;
    } else if (s->hist) {
        /* History needs every revision up to the latest to name a change
         * (history.h): one counter, as with a log. */
        o->revision = atomic_fetch_add(&s->revision, 1) + 1;
    } else {
        o->revision = take_revision(s, slot, keys, nkeys);
    }
    if (key_delta < 0)
        atomic_fetch_add(&s->nkeys, (uint64_t)key_delta);
    for (size_t i = 0; i < nkeys; i++)
        if (keys[i].next)
            kv__item_set_rev(keys[i].next, o->revision);
    if (ch && s->record_hook) {
        rec.revision = o->revision;
        s->record_hook(s->record_ctx, &rec);
    }
    if (ch && ch != small)
        free(ch);
    publish(s, slot, keys, nkeys, nchanged, commit, o->revision, replay_rev != 0);
    /* After publish's fence: a watcher counted in before reading the
     * latest revision is seen here (watch.h). */
    if (s->hist && kv__feed_watched(s))
        feed_record(s, slot, keys, nkeys, nchanged, o->revision);
    return KV_OK;

undo_prepared:
    if (ch && ch != small)
        free(ch);
    free_prepared(s, slot, keys, nkeys, commit);
undo_keys:
    if (key_delta > 0)
        atomic_fetch_sub(&s->nkeys, (uint64_t)key_delta);
    return rc;
}

/* A set or delete of one key, at most guarded by one compare of that key:
 * kv_set, kv_set_if, kv_delete, kv_delete_if, most of the writes a store
 * sees. Internal batches never: their op kinds (TOUCH, EVICT...) are not
 * a delete. */
static bool is_single_write(const kv__batch *b)
{
    if (b->nthen != 1 || b->nelse != 0 || b->want_results || b->ncmps > 1 || b->internal ||
        b->then_ops[0].kind == KV_OP_GET)
        return false;
    const kv_op *op = &b->then_ops[0];
    return b->ncmps == 0 || (b->cmps[0].klen == op->klen &&
                             memcmp(b->cmps[0].key, op->key, op->klen) == 0);
}

/* kv__apply for is_single_write batches: the same steps with one key and
 * one stripe, without the bookkeeping that sorts, merges and replays the
 * keys of a general batch. */
static int apply_single_write(kv_store *s, kv__slot *slot, const kv__batch *b, kv__outcome *out)
{
    const kv_op *op = &b->then_ops[0];
    bool is_set = op->kind == KV_OP_SET;
    akey k;
    akey_init(&k, op->key, op->klen, kv__hash(op->key, op->klen));
    unsigned stripe = kv__stripe_of(k.hash);

    kv__ebr_pin(&s->ebr, slot);
    kv__table *reserved_in = NULL;
    size_t reserved = 0;
    if (is_set &&
        !(reserved_in = kv__resize_prepare(s, slot, kv__seg_of(s, k.hash), 1, &reserved))) {
        kv__ebr_unpin(slot);
        return KV_NO_MEMORY;
    }
    kv__stripes_lock(s->stripes, &stripe, 1);
    load_key(s, &k, batch_now(s, b));
    if (s->hist)
        kv__hist_prefetch(s, k.old);

    kv__outcome o = {.succeeded = true};
    if (b->ncmps && !compare_holds(&b->cmps[0], &k)) {
        o.succeeded = false;
        o.failed_version = k.cur ? kv__item_rev(k.cur) : 0;
    } else if (is_set) {
        k.exists = k.changed = k.val_is_new = true;
        k.val = op->value;
        k.vlen = op->vlen;
        k.expire = op->expire_at_ms;
    } else if (k.exists) {
        k.exists = false;
        k.changed = true;
        o.deleted = 1;
    }
    if (!k.exists && k.old)
        k.changed = true; /* an expired key: removed by this change */
    o.expired = k.old && !k.cur && k.changed;
    int rc = k.changed ? commit_change(s, slot, &k, 1, 1, &o, 0) : KV_OK;
    if (rc == KV_OK && o.succeeded) {
        kv__count(slot, is_set ? KV__C_SETS : KV__C_DELETES, is_set ? 1 : o.deleted);
    }

    kv__stripes_unlock(s->stripes, &stripe, 1);
    if (is_set) {
        kv__resize_release(reserved_in, reserved);
        kv__resize_help(s, slot, 1);
    }
    kv__ebr_unpin(slot);
    kv__ebr_collect(&s->ebr, slot);
    kv__expiry_ensure(s);
    if (rc == KV_OK && o.revision)
        rc = kv__wait_durable(s, o.revision);
    if (rc == KV_OK)
        *out = o;
    return rc;
}

int kv__apply(kv_store *s, const kv__batch *b, kv__outcome *out)
{
    int rc = validate(s, b);
    if (rc != KV_OK)
        return rc;
    kv__slot *slot = kv__slot_get(&s->slots);
    if (!slot)
        return KV_NO_MEMORY;
    if ((rc = kv__evict_admit(s, slot, b)) != KV_OK)
        return rc;
    if (is_single_write(b))
        return apply_single_write(s, slot, b, out);

    size_t nrefs = b->ncmps + b->nthen + b->nelse;
    ref small_refs[8];
    akey small_keys[8];
    unsigned small_stripes[8];
    size_t small_key_of[8];
    ref *refs = small_refs;
    akey *keys = small_keys;
    unsigned *stripes = small_stripes;
    size_t *key_of = small_key_of; /* origin -> index in keys */
    if (nrefs > 8) {
        refs = malloc(nrefs * sizeof *refs);
        keys = malloc(nrefs * sizeof *keys);
        stripes = malloc(nrefs * sizeof *stripes);
        key_of = malloc(nrefs * sizeof *key_of);
        if (!refs || !keys || !stripes || !key_of) {
            rc = KV_NO_MEMORY;
            goto out_free;
        }
    }

    /* Collect the distinct keys, sorted by stripe (the lock order). */
    size_t r = 0;
    for (size_t i = 0; i < b->ncmps; i++, r++)
        refs[r] = (ref){b->cmps[i].key, b->cmps[i].klen, 0, r};
    for (size_t i = 0; i < b->nthen; i++, r++)
        refs[r] = (ref){b->then_ops[i].key, b->then_ops[i].klen, 0, r};
    for (size_t i = 0; i < b->nelse; i++, r++)
        refs[r] = (ref){b->else_ops[i].key, b->else_ops[i].klen, 0, r};
    for (size_t i = 0; i < nrefs; i++)
        refs[i].hash = kv__hash(refs[i].key, refs[i].klen);
    sort_refs(refs, nrefs);
    size_t nkeys = 0, nstripes = 0;
    for (size_t i = 0; i < nrefs; i++) {
        if (nkeys && ref_cmp(&refs[i], &refs[i - 1]) == 0) {
            key_of[refs[i].origin] = nkeys - 1;
            continue;
        }
        key_of[refs[i].origin] = nkeys;
        akey_init(&keys[nkeys++], refs[i].key, refs[i].klen, refs[i].hash);
        unsigned st = kv__stripe_of(refs[i].hash);
        if (!nstripes || stripes[nstripes - 1] != st)
            stripes[nstripes++] = st;
    }

    kv__stripes_prefetch(s->stripes, stripes, nstripes);

    /* New keys per segment of the index, to reserve room for. */
    kv__reservations resv;
    resv.nsegs = kv__nsegs(s);
    memset(resv.want, 0, resv.nsegs * sizeof resv.want[0]);
    size_t nsets = 0;
    for (size_t i = 0; i < b->nthen; i++) {
        if (b->then_ops[i].kind != KV_OP_SET)
            continue;
        nsets++;
        resv.want[kv__seg_of(s, keys[key_of[b->ncmps + i]].hash)]++;
    }
    for (size_t i = 0; i < b->nelse; i++) {
        if (b->else_ops[i].kind != KV_OP_SET)
            continue;
        nsets++;
        resv.want[kv__seg_of(s, keys[key_of[b->ncmps + b->nthen + i]].hash)]++;
    }
    /* One read section for the whole batch: the resize helpers below nest
     * in it for free. */
    kv__ebr_pin(&s->ebr, slot);
    if (nsets && !kv__resize_prepare_each(s, slot, &resv)) {
        kv__ebr_unpin(slot);
        rc = KV_NO_MEMORY;
        goto out_free;
    }
    /* The keys are independent: start their slots' cache misses together
     * before taking the locks, rather than one locate after another. */
    for (size_t i = 0; i < nkeys; i++) {
        kv__table *t = kv__index_seg(s, keys[i].hash);
        __builtin_prefetch(&t->slots[kv__table_home(t, keys[i].hash)]);
    }
    kv__stripes_lock(s->stripes, stripes, nstripes);
    uint64_t now = batch_now(s, b);
    for (size_t i = 0; i < nkeys; i++)
        load_key(s, &keys[i], now);
    if (s->hist)
        for (size_t i = 0; i < nkeys; i++)
            kv__hist_prefetch(s, keys[i].old);

    kv__outcome o = {.succeeded = true};
    for (size_t i = 0; i < b->ncmps; i++) {
        const kv_compare *c = &b->cmps[i];
        akey *k = &keys[key_of[i]];
        if (!compare_holds(c, k)) {
            o.succeeded = false;
            o.failed_version = k->cur ? kv__item_rev(k->cur) : 0;
            break;
        }
    }
    const kv_op *ops = o.succeeded ? b->then_ops : b->else_ops;
    size_t nops = o.succeeded ? b->nthen : b->nelse;
    const size_t *op_keys = key_of + b->ncmps + (o.succeeded ? 0 : b->nthen);

    bool *needs_rev = NULL;
    if (b->want_results && nops) {
        o.results = calloc(nops, sizeof *o.results);
        needs_rev = calloc(nops, sizeof *needs_rev);
        o.nresults = nops;
        if (!o.results || !needs_rev) {
            rc = KV_NO_MEMORY;
            goto out_unlock;
        }
    }
    if ((rc = play_ops(slot, ops, nops, op_keys, keys, nkeys, &o, o.results, needs_rev,
                       now)) != KV_OK)
        goto out_unlock;

    size_t nchanged = 0;
    for (size_t i = 0; i < nkeys; i++) {
        nchanged += keys[i].changed;
        o.expired += keys[i].changed && keys[i].old && !keys[i].cur;
    }
    if (nchanged && (rc = commit_change(s, slot, keys, nkeys, nchanged, &o, 0)) != KV_OK)
        goto out_unlock;
    for (size_t i = 0; i < nops; i++) {
        if (ops[i].kind == KV_OP_SET)
            kv__count(slot, KV__C_SETS, 1);
        if (o.results && needs_rev[i])
            o.results[i].value.version = o.revision;
    }
    kv__count(slot, KV__C_DELETES, o.deleted);
    kv__count(slot, KV__C_EVICTED, o.evicted);
    rc = KV_OK;

out_unlock:
    kv__stripes_unlock(s->stripes, stripes, nstripes);
    if (nsets) {
        kv__resize_release_each(&resv);
        kv__resize_help(s, slot, 1);
    }
    kv__ebr_unpin(slot);
    free(needs_rev);
    kv__ebr_collect(&s->ebr, slot);
    kv__expiry_ensure(s);
    if (rc == KV_OK && o.revision && !b->no_wait)
        rc = kv__wait_durable(s, o.revision);
    if (rc == KV_OK)
        *out = o;
    else
        free_results(o.results, o.nresults);
out_free:
    if (refs != small_refs) {
        free(refs);
        free(keys);
        free(stripes);
        free(key_of);
    }
    return rc;
}

int kv__wait_durable(kv_store *s, uint64_t rev)
{
    if (!s->log || !s->wait_durable)
        return KV_OK;
    return kv__log_wait(s->log, rev);
}

int kv__replay_change(kv_store *s, const kv__change *c, uint64_t rev)
{
    kv__slot *slot = kv__slot_get(&s->slots);
    if (!slot)
        return KV_NO_MEMORY;
    akey k = {.key = c->key, .klen = c->klen, .hash = kv__hash(c->key, c->klen)};
    unsigned stripe = kv__stripe_of(k.hash);
    kv__ebr_pin(&s->ebr, slot);
    kv__table *reserved_in = NULL;
    size_t reserved = 0;
    if (!c->deleted &&
        !(reserved_in = kv__resize_prepare(s, slot, kv__seg_of(s, k.hash), 1, &reserved))) {
        kv__ebr_unpin(slot);
        return KV_NO_MEMORY;
    }
    kv__stripes_lock(s->stripes, &stripe, 1);
    /* Recovery looks at items whatever their expiry (clock 0): a key that
     * has expired is loaded as it was logged, and is gone for readers at
     * once; the active expiry then removes it with a logged delete. */
    load_key(s, &k, 0);
    /* Idempotent: a key already at this revision or a later one keeps its
     * state; an absent key takes a set (a later delete, if any, follows). */
    int rc = KV_OK;
    if (!k.cur || kv__item_rev(k.cur) < rev) {
        if (!c->deleted) {
            k.exists = k.changed = k.val_is_new = true;
            k.val = c->val;
            k.vlen = c->vlen;
            k.expire = c->expire_at;
        } else if (k.cur) {
            k.exists = false;
            k.changed = true;
        }
    }
    kv__outcome o = {.succeeded = true};
    if (k.changed)
        rc = commit_change(s, slot, &k, 1, 1, &o, rev);
    else
        replay_raise(s, slot, k.hash, rev);
    kv__stripes_unlock(s->stripes, &stripe, 1);
    if (!c->deleted) {
        kv__resize_release(reserved_in, reserved);
        kv__resize_help(s, slot, 1);
    }
    kv__ebr_unpin(slot);
    kv__ebr_collect(&s->ebr, slot);
    return rc;
}
