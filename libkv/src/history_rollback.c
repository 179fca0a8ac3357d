/*
 * history_rollback.c - restoring keys to a past revision as one new
 * change (kv.h, "History").
 */
#include <stdlib.h>
#include <string.h>

#include "hash.h"
#include "history_impl.h"

/* ---- rollback -------------------------------------------------------------- */

/* What one key of a rollback needs. */
typedef struct rb_key {
    uint64_t hash;
    uint64_t cur_version; /* visible now (0: absent), for the compare */
    bool change;          /* changed after to_rev: gets an op */
    bool present;         /* present at to_rev */
    void *val;            /* copy of the value at to_rev */
    size_t vlen;
    uint64_t expire_at;
} rb_key;

/* Reads key i's state now and at to_rev (its stripe locked). */
static int rb_read(kv_store *s, const kv_key *k, uint64_t to_rev, uint64_t now, rb_key *x)
{
    unsigned st = kv__stripe_of(x->hash);
    kv__stripes_lock(s->stripes, &st, 1);
    const kv__item *cur = kv__hist_slot_item(s, x->hash, k->data, k->len);
    const kv__hkey *r = kv__hmap_find(&s->hist->maps[st], x->hash, k->data, k->len);
    x->cur_version = cur && !kv__item_expired(cur, now) ? kv__item_rev(cur) : 0;
    /* the last change of the key: its current item, or its removal */
    uint64_t last = cur ? kv__item_rev(cur) : r && r->newest ? r->newest_until : 0;
    x->change = last > to_rev;
    kv__hver v;
    int rc = x->change ? kv__hist_resolve(s, x->hash, k->data, k->len, to_rev, &v) : KV_NOT_FOUND;
    x->present = rc == KV_OK && !kv__item_expired(v.item, now);
    if (rc == KV_NOT_FOUND)
        rc = KV_OK;
    if (x->present) {
        x->vlen = kv__item_vlen(v.item);
        x->expire_at = kv__item_expire_at(v.item);
        if ((x->val = malloc(x->vlen ? x->vlen : 1)))
            memcpy(x->val, kv__item_value(v.item), x->vlen);
        else
            rc = KV_NO_MEMORY;
    }
    kv__stripes_unlock(s->stripes, &st, 1);
    return rc;
}

#define RB_ATTEMPTS 1000

int kv_rollback(kv_store *s, const kv_key *keys, size_t n, uint64_t to_rev,
                uint64_t unchanged_since, uint64_t *version, size_t *changed)
{
    if (!s || (n && !keys))
        return KV_INVALID_ARGUMENT;
    int rc = kv__hist_check_keys(s, keys, n, to_rev);
    if (rc != KV_OK)
        return rc;
    kv__slot *slot = kv__slot_get(&s->slots);
    if (!slot)
        return KV_NO_MEMORY;
    rb_key *x = calloc(n ? n : 1, sizeof *x);
    kv_compare *cmps = calloc(n ? n : 1, sizeof *cmps);
    kv_op *ops = calloc(n ? n : 1, sizeof *ops);
    if (!x || !cmps || !ops) {
        rc = KV_NO_MEMORY;
        goto out;
    }
    for (size_t i = 0; i < n; i++)
        x[i].hash = kv__hash(keys[i].data, keys[i].len);
    for (int attempt = 0;; attempt++) {
        if (attempt == RB_ATTEMPTS) {
            rc = KV_CONFLICT;
            break;
        }
        uint64_t now = kv__clock_now(s);
        size_t nops = 0;
        kv__ebr_pin(&s->ebr, slot);
        for (size_t i = 0; i < n && rc == KV_OK; i++) {
            free(x[i].val);
            x[i].val = NULL;
            rc = rb_read(s, &keys[i], to_rev, now, &x[i]);
        }
        kv__ebr_unpin(slot);
        if (rc != KV_OK)
            break;
        for (size_t i = 0; i < n; i++) {
            if (unchanged_since && x[i].cur_version > unchanged_since) {
                rc = KV_VERSION_MISMATCH;
                break;
            }
            cmps[i] = (kv_compare){.kind = KV_CMP_VERSION_EQ, .key = keys[i].data,
                                   .klen = keys[i].len, .version = x[i].cur_version};
            if (!x[i].change)
                continue;
            ops[nops++] = x[i].present
                              ? (kv_op){.kind = KV_OP_SET, .key = keys[i].data,
                                        .klen = keys[i].len, .value = x[i].val,
                                        .vlen = x[i].vlen, .expire_at_ms = x[i].expire_at}
                              : (kv_op){.kind = KV_OP_DELETE, .key = keys[i].data,
                                        .klen = keys[i].len};
        }
        if (rc != KV_OK)
            break;
        if (!nops) {
            if (changed)
                *changed = 0;
            break;
        }
        /* Every key as read, or nothing: a key changed meanwhile means
         * reading again (and the condition is checked again). */
        kv__outcome o;
        rc = kv__apply(s,
                       &(kv__batch){.cmps = cmps, .ncmps = n, .then_ops = ops, .nthen = nops},
                       &o);
        if (rc != KV_OK)
            break;
        bool ok = o.succeeded;
        kv__outcome_free(&o);
        if (ok) {
            if (version && o.revision)
                *version = o.revision;
            if (changed)
                *changed = nops;
            break;
        }
    }
out:
    for (size_t i = 0; x && i < n; i++)
        free(x[i].val);
    free(x);
    free(cmps);
    free(ops);
    return rc;
}

int kv_rollback_prefix(kv_store *s, const void *prefix, size_t plen, uint64_t to_rev,
                       uint64_t unchanged_since, uint64_t *version, size_t *changed)
{
    if (!s || (plen && !prefix))
        return KV_INVALID_ARGUMENT;
    int rc = kv__hist_check_rev(s, to_rev);
    if (rc != KV_OK)
        return rc;
    kv_key *keys;
    size_t n;
    void *mem;
    if ((rc = kv__hist_prefix_keys(s, prefix, plen, &keys, &n, &mem)) != KV_OK)
        return rc;
    rc = kv_rollback(s, keys, n, to_rev, unchanged_since, version, changed);
    free(keys);
    free(mem);
    return rc;
}
