/*
 * cmd_expire.c - the commands about a key's expiry, for every protocol:
 * TTL (RESP's TTL, PTTL, EXPIRETIME, PEXPIRETIME), EXPIRE (with Redis 7's
 * NX, XX, GT, LT; RESP's PEXPIRE, EXPIREAT, PEXPIREAT), PERSIST and
 * GETEX, and kvd__key_expiry, which SET's KEEPTTL and the
 * read-modify-writes (cmd_kv.c) use to keep a key's expiry.
 *
 * Expiry times reach here as Unix times in ms (kvd_cmd_resolve_expiry
 * turned times from now into them once, before a cluster replicated the
 * command), so every node applies the same ones. libkv's kv_ttl reads an
 * expiry without a version, and a transaction cannot read one at all: a
 * key's expiry is read between two reads of its version, and counts only
 * when both saw the same version (every change of a key, its expiry's
 * included, takes a new revision, and revisions only grow). A command
 * that changes an expiry under a condition (EXPIRE NX/XX/GT/LT, GETEX,
 * PERSIST inside EXEC) runs as a small optimistic transaction over the
 * key, retried on conflict, so the condition and the change are one
 * atomic step.
 *
 * Inside EXEC, a key the queue wrote earlier is read from the
 * transaction's own writes, whose expiry libkv does not tell: EXEC keeps
 * its own record of the expiries its queue wrote (kvd_written).
 */
#include <stdlib.h>
#include <string.h>

#include "cmd.h"
#include "conn.h"

static int fail(kvd_exec *x, int rc)
{
    return x->r->ops->error(x->r, rc, rc == KV_NOT_FOUND || rc == KV_VERSION_MISMATCH
                                          ? NULL : kv_strerror(rc));
}

/* ---- EXEC's own writes ---------------------------------------------------------
 * An open-addressing index (FNV-1a, linear probing) over the entries, one
 * per key, so a long queue that keeps reading keys it wrote stays linear. */

struct kvd_written_entry {
    char *key;
    size_t klen;
    uint64_t at;
};

static uint64_t fnv(const void *p, size_t n)
{
    const unsigned char *b = p;
    uint64_t h = 1469598103934665603ull;
    for (size_t i = 0; i < n; i++)
        h = (h ^ b[i]) * 1099511628211ull;
    return h;
}

/* The slot of key: holding its entry, or empty (where it goes). */
static size_t *written_slot(kvd_written *w, const void *key, size_t klen)
{
    size_t mask = w->nslots - 1;
    for (size_t i = (size_t)fnv(key, klen) & mask;; i = (i + 1) & mask) {
        size_t *s = &w->slots[i];
        if (*s == 0)
            return s;
        const struct kvd_written_entry *e = &w->e[*s - 1];
        if (e->klen == klen && memcmp(e->key, key, klen) == 0)
            return s;
    }
}

static int written_grow(kvd_written *w)
{
    size_t ns = w->nslots ? w->nslots * 2 : 64;
    size_t *slots = calloc(ns, sizeof *slots);
    struct kvd_written_entry *e = realloc(w->e, ns / 2 * sizeof *e);
    if (!slots || !e) {
        free(slots);
        if (e)
            w->e = e;
        return KV_NO_MEMORY;
    }
    free(w->slots);
    w->e = e;
    w->cap = ns / 2;
    w->slots = slots;
    w->nslots = ns;
    for (size_t i = 0; i < w->n; i++)
        *written_slot(w, e[i].key, e[i].klen) = i + 1;
    return KV_OK;
}

static int written_put(kvd_written *w, const void *key, size_t klen, uint64_t at)
{
    if (w->n == w->cap && written_grow(w) != KV_OK) /* at most half full */
        return KV_NO_MEMORY;
    size_t *s = written_slot(w, key, klen);
    if (*s) {
        w->e[*s - 1].at = at;
        return KV_OK;
    }
    char *k = malloc(klen ? klen : 1);
    if (!k)
        return KV_NO_MEMORY;
    memcpy(k, key, klen);
    w->e[w->n] = (struct kvd_written_entry){k, klen, at};
    *s = ++w->n;
    return KV_OK;
}

void kvd__written_reset(kvd_written *w)
{
    for (size_t i = 0; i < w->n; i++)
        free(w->e[i].key);
    w->n = 0;
    if (w->slots)
        memset(w->slots, 0, w->nslots * sizeof *w->slots);
}

void kvd__written_free(kvd_written *w)
{
    kvd__written_reset(w);
    free(w->e);
    free(w->slots);
    memset(w, 0, sizeof *w);
}

int kvd__txn_set(kvd_exec *x, kv_txn *t, const void *key, size_t klen, const void *val,
                 size_t vlen, uint64_t at)
{
    int rc = kv_txn_set_ex(t, key, klen, val, vlen, at);
    if (rc == KV_OK && t == x->txn && x->written)
        rc = written_put(x->written, key, klen, at);
    return rc;
}

/* ---- a key's expiry, consistent with its version ---------------------------------- */

int kvd__key_expiry(kvd_exec *x, const void *key, size_t klen, uint64_t version, uint64_t *at)
{
    kv_store *st = x->st;
    *at = 0;
    if (version == 0) { /* EXEC's own write */
        if (x->written && x->written->nslots) {
            size_t *s = written_slot(x->written, key, klen);
            if (*s)
                *at = x->written->e[*s - 1].at;
        }
        return KV_OK;
    }
    uint64_t t = 0, now_version = 0;
    int rc = kv_ttl(st, key, klen, &t);
    if (rc == KV_OK)
        rc = kv_exists(st, key, klen, &now_version);
    if (rc == KV_NOT_FOUND || (rc == KV_OK && now_version != version))
        return KV_CONFLICT;
    if (rc == KV_OK)
        *at = t;
    return rc;
}

/* ---- TTL --------------------------------------------------------------------- */

static int cmd_ttl(kvd_exec *x)
{
    const kvd_cmd *cmd = x->cmd;
    uint64_t at = 0;
    int rc;
    if (x->txn) {
        kv_value v = {0};
        rc = kv_txn_get(x->txn, cmd->key.data, cmd->key.len, &v);
        if (rc == KV_OK)
            rc = kvd__key_expiry(x, cmd->key.data, cmd->key.len, v.version, &at);
        kv_value_free(&v);
    } else {
        rc = kv_ttl(x->st, cmd->key.data, cmd->key.len, &at);
    }
    if (rc != KV_OK && rc != KV_NOT_FOUND)
        return fail(x, rc);
    return x->r->ops->expiry(x->r, cmd->flags, rc == KV_OK, at, kv_clock_ms(x->st));
}

/* ---- EXPIRE, PERSIST, GETEX: one key's expiry in a transaction ------------------ */

typedef struct exp_out {
    int status;      /* KV_OK, KV_NOT_FOUND, KV_VERSION_MISMATCH */
    int changed;
    uint64_t version;
    kv_value old;    /* GETEX: the value (owned) */
} exp_out;

/* Whether EXPIRE's conditions let at replace cur (0: none, which counts
 * as infinitely far). */
static int expire_allowed(unsigned flags, uint64_t cur, uint64_t at)
{
    if ((flags & KV_PROTO_EXPIRE_NX) && cur != 0)
        return 0;
    if ((flags & KV_PROTO_EXPIRE_XX) && cur == 0)
        return 0;
    if ((flags & KV_PROTO_EXPIRE_GT) && (cur == 0 || at <= cur))
        return 0;
    if ((flags & KV_PROTO_EXPIRE_LT) && cur != 0 && at >= cur)
        return 0;
    return 1;
}

/* The command's change on transaction t. */
static int exp_step(kvd_exec *x, kv_txn *t, exp_out *o)
{
    const kvd_cmd *cmd = x->cmd;
    const void *key = cmd->key.data;
    size_t klen = cmd->key.len;
    int rc = kv_txn_get(t, key, klen, &o->old);
    if (rc == KV_NOT_FOUND) {
        o->status = KV_NOT_FOUND;
        return KV_OK;
    }
    if (rc != KV_OK)
        return rc;
    o->version = o->old.version;
    if (cmd->kind == KVD_CMD_GETEX && cmd->exp_mode == KVD_EXP_KEEP)
        return KV_OK; /* GETEX without an option: a GET */
    uint64_t cur = 0;
    if ((rc = kvd__key_expiry(x, key, klen, o->old.version, &cur)) != KV_OK)
        return rc;
    uint64_t at = cmd->exp_mode == KVD_EXP_AT ? cmd->exp : 0; /* PERSIST: 0 */
    if (cmd->kind == KVD_CMD_EXPIRE && !expire_allowed(cmd->flags, cur, at)) {
        o->status = KV_VERSION_MISMATCH;
        return KV_OK;
    }
    if (at == cur) {
        /* nothing to change: EXPIRE to the time it has still counts as
         * set (Redis answers 1), PERSIST of a key without one not */
        o->changed = cmd->kind == KVD_CMD_EXPIRE;
        return KV_OK;
    }
    o->changed = 1;
    if (at != 0 && at <= kv_clock_ms(x->st))
        return kv_txn_delete(t, key, klen); /* a time past: gone now */
    return kvd__txn_set(x, t, key, klen, o->old.data, o->old.len, at);
}

static int exp_answer(kvd_exec *x, exp_out *o)
{
    kvd_reply *r = x->r;
    int rc;
    if (x->cmd->kind == KVD_CMD_GETEX)
        rc = o->status == KV_NOT_FOUND ? r->ops->nil(r)
                                       : r->ops->bytes(r, o->old.data, o->old.len);
    else
        rc = r->ops->updated(r, o->status, o->changed, o->version);
    kv_value_free(&o->old);
    return rc;
}

/* Runs exp_step in EXEC's transaction, or in its own (retried). */
static int exp_txn(kvd_exec *x)
{
    exp_out o;
    if (x->txn) {
        memset(&o, 0, sizeof o);
        int rc = exp_step(x, x->txn, &o);
        if (rc != KV_OK) {
            kv_value_free(&o.old);
            return fail(x, rc);
        }
        o.version = 0; /* the commit's revision is not known yet */
        return exp_answer(x, &o);
    }
    for (;;) {
        kv_txn *t;
        memset(&o, 0, sizeof o);
        int rc = kv_txn_begin(x->st, &t);
        if (rc != KV_OK)
            return fail(x, rc);
        rc = exp_step(x, t, &o);
        if (rc == KV_OK && o.changed)
            rc = kv_txn_commit(t, &o.version);
        else
            kv_txn_abort(t);
        if (rc == KV_CONFLICT) {
            kv_value_free(&o.old);
            continue; /* the key changed meanwhile: again */
        }
        if (rc != KV_OK) {
            kv_value_free(&o.old);
            return fail(x, rc);
        }
        return exp_answer(x, &o);
    }
}

static int cmd_expire(kvd_exec *x)
{
    const kvd_cmd *cmd = x->cmd;
    if (x->txn || cmd->flags != 0)
        return exp_txn(x);
    uint64_t version = 0;
    int rc = kv_expire(x->st, cmd->key.data, cmd->key.len, cmd->exp, &version);
    if (rc == KV_NOT_FOUND)
        return x->r->ops->updated(x->r, KV_NOT_FOUND, 0, 0);
    return rc == KV_OK ? x->r->ops->updated(x->r, KV_OK, 1, version) : fail(x, rc);
}

/* PERSIST outside EXEC: a key without an expiry is left alone (changed
 * 0, as Redis answers 0), else kv_persist. */
static int cmd_persist(kvd_exec *x)
{
    const kvd_cmd *cmd = x->cmd;
    if (x->txn)
        return exp_txn(x);
    uint64_t version = 0, at = 0;
    int rc;
    for (;;) {
        rc = kv_exists(x->st, cmd->key.data, cmd->key.len, &version);
        if (rc == KV_OK)
            rc = kvd__key_expiry(x, cmd->key.data, cmd->key.len, version, &at);
        if (rc != KV_CONFLICT)
            break;
    }
    if (rc == KV_OK && at == 0)
        return x->r->ops->updated(x->r, KV_OK, 0, version);
    if (rc == KV_OK)
        rc = kv_persist(x->st, cmd->key.data, cmd->key.len, &version);
    if (rc == KV_NOT_FOUND)
        return x->r->ops->updated(x->r, KV_NOT_FOUND, 0, 0);
    return rc == KV_OK ? x->r->ops->updated(x->r, KV_OK, 1, version) : fail(x, rc);
}

int kvd__cmd_expire(kvd_exec *x)
{
    switch (x->cmd->kind) {
    case KVD_CMD_TTL: return cmd_ttl(x);
    case KVD_CMD_EXPIRE: return cmd_expire(x);
    case KVD_CMD_PERSIST: return cmd_persist(x);
    case KVD_CMD_GETEX: return exp_txn(x);
    default: return x->r->ops->error(x->r, KV_UNSUPPORTED, "unknown operation");
    }
}
