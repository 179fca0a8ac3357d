/*
 * cmd_kv.c - the commands that read and write keys, for every protocol:
 * GET, MGET, SET (plain, compare-and-swap, NX/XX/GET), MSET, MSETNX, DEL,
 * TXN, SCAN and KEYS, EXISTS, STRLEN, TYPE, DBSIZE, FLUSHDB, and the
 * read-modify-writes GETSET, GETDEL, APPEND, INCRBY, INCRBYFLOAT, RENAME.
 *
 * Reads outside a transaction answer straight from the store's memory
 * (kv_get_with, kv_mget_with, kv_scan: one copy, store -> reply). Inside
 * EXEC (x->txn) every command reads and writes through the transaction.
 * A read-modify-write outside EXEC runs as its own small optimistic
 * transaction, retried on conflict, so it is atomic like the rest.
 *
 * Expiry, as in Redis: SET, MSET and GETSET replace a key's expiry (with
 * the one given, or none); SET's KEEPTTL, APPEND, INCRBY, INCRBYFLOAT keep
 * it; RENAME moves it to the new name (kvd__key_expiry, cmd_expire.c).
 */
#include <ctype.h>
#include <errno.h>
#include <math.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cmd.h"
#include "conn.h"
#include "glob.h"

#define SCAN_DEFAULT_LIMIT 100
#define SCAN_MAX_LIMIT 10000
#define FLUSH_PAGE 50

static int fail(kvd_exec *x, int rc)
{
    return x->r->ops->error(x->r, rc, rc == KV_NOT_FOUND || rc == KV_VERSION_MISMATCH
                                          ? NULL : kv_strerror(rc));
}

static size_t max_response(const kvd_exec *x)
{
    return x->srv->max_response;
}

static int too_large(kvd_exec *x, const char *what)
{
    char msg[160];
    snprintf(msg, sizeof msg, "result would exceed %zu bytes; %s", max_response(x), what);
    return x->r->ops->error(x->r, KV_INVALID_ARGUMENT, msg);
}

/* kv_txn_get's status, without keeping the value. */
static int txn_has(kv_txn *t, const void *key, size_t klen)
{
    kv_value v = {0};
    int rc = kv_txn_get(t, key, klen, &v);
    kv_value_free(&v);
    return rc;
}

/* ---- GET ----------------------------------------------------------------- */

typedef struct get_ctx {
    kvd_reply *r;
    int rc;
    uint64_t version;
} get_ctx;

static void get_cb(void *ctx, const void *val, size_t vlen, uint64_t version)
{
    get_ctx *g = ctx;
    g->version = version;
    g->rc = g->r->ops->versioned(g->r, val, vlen, version);
}

static int cmd_get(kvd_exec *x)
{
    const kvd_cmd *cmd = x->cmd;
    if (x->txn) {
        kv_value v;
        int rc = kv_txn_get(x->txn, cmd->key.data, cmd->key.len, &v);
        if (rc != KV_OK)
            return fail(x, rc);
        x->r->ops->versioned(x->r, v.data, v.len, v.version);
        kv_value_free(&v);
        return KV_OK;
    }
    get_ctx g = {x->r, KV_OK, 0};
    if (!x->r->want_expiry) {
        int rc = kv_get_with(x->st, cmd->key.data, cmd->key.len, get_cb, &g);
        return rc == KV_OK ? KV_OK : fail(x, rc);
    }
    /* The value and the expiry it had (HTTP shows both). */
    for (;;) {
        uint64_t version = 0;
        int rc = kv_exists(x->st, cmd->key.data, cmd->key.len, &version);
        if (rc == KV_OK)
            rc = kvd__key_expiry(x, cmd->key.data, cmd->key.len, version,
                                 &x->r->expire_at_ms);
        if (rc == KV_CONFLICT)
            continue;
        uint64_t now = kv_clock_ms(x->st), at = x->r->expire_at_ms;
        x->r->expire_left_ms = at > now ? at - now : 0;
        if (rc == KV_OK)
            rc = kv_get_with(x->st, cmd->key.data, cmd->key.len, get_cb, &g);
        if (rc != KV_OK)
            return fail(x, rc);
        /* the value read must be the version whose expiry was read */
        if (g.version == version)
            return KV_OK;
        x->r->ops->rewind(x->r);
    }
}

/* ---- MGET: streamed --------------------------------------------------------
 * The answer is encoded straight from kv_mget_with's snapshot (no copies).
 * An answer for several keys whose values add up to more than max_response
 * (counting 16 bytes per key for its framing) is dropped and the client is
 * told to ask for fewer; one key is always answered. */

typedef struct mget_ctx {
    kvd_reply *r;
    size_t bytes, max_bytes, nkeys;
    bool too_large;
} mget_ctx;

static void mget_cb(void *ctx, size_t i, const void *val, size_t vlen, uint64_t version)
{
    (void)i;
    mget_ctx *m = ctx;
    m->bytes += vlen + 16;
    if (m->nkeys > 1 && m->bytes > m->max_bytes)
        m->too_large = true;
    if (m->too_large)
        return;
    if (val)
        m->r->ops->versioned(m->r, val, vlen, version);
    else
        m->r->ops->nil(m->r);
}

static int cmd_mget(kvd_exec *x)
{
    const kvd_cmd *cmd = x->cmd;
    kvd_reply *r = x->r;
    if (x->txn) {
        /* all read before anything is written: an error answers alone */
        kv_value *v = calloc(cmd->nkeys + 1, sizeof *v);
        if (!v)
            return fail(x, KV_NO_MEMORY);
        int rc = KV_OK;
        for (size_t i = 0; i < cmd->nkeys && rc == KV_OK; i++) {
            rc = kv_txn_get(x->txn, cmd->keys[i].data, cmd->keys[i].len, &v[i]);
            if (rc == KV_NOT_FOUND)
                rc = KV_OK;
        }
        if (rc == KV_OK) {
            r->ops->array(r, cmd->nkeys);
            for (size_t i = 0; i < cmd->nkeys; i++)
                if (v[i].data)
                    r->ops->versioned(r, v[i].data, v[i].len, v[i].version);
                else
                    r->ops->nil(r);
        }
        kv_values_free(v, cmd->nkeys);
        free(v);
        return rc == KV_OK ? KV_OK : fail(x, rc);
    }
    mget_ctx m = {.r = r, .max_bytes = max_response(x), .nkeys = cmd->nkeys};
    r->ops->array(r, cmd->nkeys);
    int rc = kv_mget_with(x->st, cmd->keys, cmd->nkeys, mget_cb, &m);
    if (rc != KV_OK || m.too_large) { /* a bad key: nothing was read */
        r->ops->rewind(r);
        return rc != KV_OK ? fail(x, rc) : too_large(x, "ask for fewer keys");
    }
    return KV_OK;
}

/* ---- SET, MSET, DEL ---------------------------------------------------------- */

/* The Unix time a write gives its keys (0: none). */
static uint64_t expire_at(const kvd_cmd *cmd)
{
    return cmd->exp_mode == KVD_EXP_AT ? cmd->exp : 0;
}

/* SET with NX/XX/GET (RESP): a one-shot conditional transaction. */
static int set_cond(kvd_exec *x)
{
    const kvd_cmd *cmd = x->cmd;
    kv_compare cmp = {.kind = (cmd->flags & KVD_SET_NX) ? KV_CMP_ABSENT : KV_CMP_EXISTS,
                      .key = cmd->key.data, .klen = cmd->key.len};
    kv_op ops[2] = {{.kind = KV_OP_GET, .key = cmd->key.data, .klen = cmd->key.len},
                    {.kind = KV_OP_SET, .key = cmd->key.data, .klen = cmd->key.len,
                     .value = cmd->value.data, .vlen = cmd->value.len,
                     .expire_at_ms = expire_at(cmd)}};
    int get = (cmd->flags & KVD_SET_GET) != 0;
    size_t ncmp = (cmd->flags & (KVD_SET_NX | KVD_SET_XX)) ? 1 : 0;
    kv_txn_result res;
    int rc = kv_txn_cond(x->st, &cmp, ncmp, get ? ops : ops + 1, get ? 2 : 1,
                         get ? ops : NULL, get ? 1 : 0, &res);
    if (rc != KV_OK)
        return fail(x, rc);
    kvd_reply *r = x->r;
    if (get) {
        const kv_value *old = &res.results[0].value;
        if (old->data)
            r->ops->bytes(r, old->data, old->len);
        else
            r->ops->nil(r);
    } else if (!res.succeeded) {
        r->ops->error(r, KV_VERSION_MISMATCH, NULL);
    } else {
        r->ops->written(r, res.version);
    }
    kv_txn_result_free(&res);
    return KV_OK;
}

/* SET on transaction t, its NX/XX/compare-and-swap decided on what t
 * reads: *made says whether it set the key, *old receives the value it
 * replaces (owned; data NULL when the key was absent). */
static int set_step(kvd_exec *x, kv_txn *t, int *made, kv_value *old)
{
    const kvd_cmd *cmd = x->cmd;
    int rc = kv_txn_get(t, cmd->key.data, cmd->key.len, old);
    if (rc != KV_OK && rc != KV_NOT_FOUND)
        return rc;
    int exists = rc == KV_OK;
    *made = !((cmd->flags & KVD_SET_NX) && exists) && !((cmd->flags & KVD_SET_XX) && !exists);
    if (cmd->has_expected)
        *made = cmd->expected == (exists ? old->version : 0);
    if (!*made)
        return KV_OK;
    uint64_t at = expire_at(cmd);
    if (cmd->exp_mode == KVD_EXP_KEEP && exists &&
        (rc = kvd__key_expiry(x, cmd->key.data, cmd->key.len, old->version, &at)) != KV_OK)
        return rc;
    return kvd__txn_set(x, t, cmd->key.data, cmd->key.len, cmd->value.data, cmd->value.len, at);
}

static int set_answer(kvd_exec *x, int made, kv_value *old, uint64_t revision)
{
    kvd_reply *r = x->r;
    int rc;
    if (x->cmd->flags & KVD_SET_GET)
        rc = old->data ? r->ops->bytes(r, old->data, old->len) : r->ops->nil(r);
    else if (!made)
        rc = r->ops->error(r, KV_VERSION_MISMATCH, NULL);
    else
        rc = r->ops->written(r, revision);
    kv_value_free(old);
    return rc;
}

/* SET inside EXEC, or with KEEPTTL (its own optimistic transaction,
 * retried on conflict: the expiry kept is the one the key had when it
 * was replaced). */
static int set_txn(kvd_exec *x)
{
    int made = 0;
    kv_value old = {0};
    if (x->txn) {
        int rc = set_step(x, x->txn, &made, &old);
        if (rc != KV_OK) {
            kv_value_free(&old);
            return fail(x, rc);
        }
        return set_answer(x, made, &old, 0);
    }
    for (;;) {
        kv_txn *t;
        uint64_t revision = 0;
        memset(&old, 0, sizeof old);
        int rc = kv_txn_begin(x->st, &t);
        if (rc != KV_OK)
            return fail(x, rc);
        rc = set_step(x, t, &made, &old);
        if (rc == KV_OK && made)
            rc = kv_txn_commit(t, &revision);
        else
            kv_txn_abort(t);
        if (rc == KV_CONFLICT) {
            kv_value_free(&old);
            continue;
        }
        if (rc != KV_OK) {
            kv_value_free(&old);
            return fail(x, rc);
        }
        return set_answer(x, made, &old, revision);
    }
}

/* Compare-and-swap with an expiry: a one-shot conditional transaction
 * (kv_set_if has no expiry). */
static int set_if_ex(kvd_exec *x)
{
    const kvd_cmd *cmd = x->cmd;
    kv_compare cmp = {.kind = KV_CMP_VERSION_EQ, .key = cmd->key.data, .klen = cmd->key.len,
                      .version = cmd->expected};
    kv_op op = {.kind = KV_OP_SET, .key = cmd->key.data, .klen = cmd->key.len,
                .value = cmd->value.data, .vlen = cmd->value.len, .expire_at_ms = expire_at(cmd)};
    kv_txn_result res;
    int rc = kv_txn_cond(x->st, &cmp, 1, &op, 1, NULL, 0, &res);
    if (rc != KV_OK)
        return fail(x, rc);
    rc = res.succeeded ? x->r->ops->written(x->r, res.version)
                       : x->r->ops->error(x->r, KV_VERSION_MISMATCH, NULL);
    kv_txn_result_free(&res);
    return rc;
}

static int cmd_set(kvd_exec *x)
{
    const kvd_cmd *cmd = x->cmd;
    if (x->txn || cmd->exp_mode == KVD_EXP_KEEP)
        return set_txn(x);
    if (cmd->flags)
        return set_cond(x);
    if (cmd->has_expected && cmd->exp_mode == KVD_EXP_AT)
        return set_if_ex(x);
    uint64_t version = 0;
    int rc = cmd->has_expected
                 ? kv_set_if(x->st, cmd->key.data, cmd->key.len, cmd->value.data, cmd->value.len,
                             cmd->expected, &version)
             : cmd->exp_mode == KVD_EXP_AT
                 ? kv_set_ex(x->st, cmd->key.data, cmd->key.len, cmd->value.data, cmd->value.len,
                             cmd->exp, &version)
                 : kv_set(x->st, cmd->key.data, cmd->key.len, cmd->value.data, cmd->value.len,
                          &version);
    return rc == KV_OK ? x->r->ops->written(x->r, version) : fail(x, rc);
}

static int cmd_mset(kvd_exec *x)
{
    const kvd_cmd *cmd = x->cmd;
    uint64_t version = 0;
    if (x->txn) {
        for (size_t i = 0; i < cmd->npairs; i++) {
            const kv_pair *p = &cmd->pairs[i];
            int rc = kvd__txn_set(x, x->txn, p->key, p->klen, p->val, p->vlen, expire_at(cmd));
            if (rc != KV_OK)
                return fail(x, rc);
        }
        return x->r->ops->written(x->r, 0);
    }
    int rc = cmd->exp_mode == KVD_EXP_AT
                 ? kv_mset_ex(x->st, cmd->pairs, cmd->npairs, cmd->exp, &version)
                 : kv_mset(x->st, cmd->pairs, cmd->npairs, &version);
    return rc == KV_OK ? x->r->ops->written(x->r, version) : fail(x, rc);
}

/* MSETNX: every key absent, then all set, in one step; 1 or 0. */
static int cmd_msetnx(kvd_exec *x)
{
    const kvd_cmd *cmd = x->cmd;
    size_t n = cmd->npairs;
    if (x->txn) {
        for (size_t i = 0; i < n; i++) {
            int rc = txn_has(x->txn, cmd->pairs[i].key, cmd->pairs[i].klen);
            if (rc == KV_OK)
                return x->r->ops->integer(x->r, 0);
            if (rc != KV_NOT_FOUND)
                return fail(x, rc);
        }
        for (size_t i = 0; i < n; i++) {
            const kv_pair *p = &cmd->pairs[i];
            int rc = kvd__txn_set(x, x->txn, p->key, p->klen, p->val, p->vlen, 0);
            if (rc != KV_OK)
                return fail(x, rc);
        }
        return x->r->ops->integer(x->r, 1);
    }
    kv_compare *cmps = malloc(n * sizeof *cmps + 1);
    kv_op *ops = malloc(n * sizeof *ops + 1);
    if (!cmps || !ops) {
        free(cmps);
        free(ops);
        return fail(x, KV_NO_MEMORY);
    }
    for (size_t i = 0; i < n; i++) {
        const kv_pair *p = &cmd->pairs[i];
        cmps[i] = (kv_compare){.kind = KV_CMP_ABSENT, .key = p->key, .klen = p->klen};
        ops[i] = (kv_op){.kind = KV_OP_SET, .key = p->key, .klen = p->klen, .value = p->val,
                         .vlen = p->vlen};
    }
    kv_txn_result res;
    int rc = kv_txn_cond(x->st, cmps, n, ops, n, NULL, 0, &res);
    free(cmps);
    free(ops);
    if (rc != KV_OK)
        return fail(x, rc);
    x->r->ops->integer(x->r, res.succeeded ? 1 : 0);
    kv_txn_result_free(&res);
    return KV_OK;
}

static int cmd_del(kvd_exec *x)
{
    const kvd_cmd *cmd = x->cmd;
    if (x->txn) {
        uint64_t n = 0;
        for (size_t i = 0; i < cmd->nkeys; i++) {
            int rc = txn_has(x->txn, cmd->keys[i].data, cmd->keys[i].len);
            if (rc == KV_OK)
                n++;
            else if (rc != KV_NOT_FOUND)
                return fail(x, rc);
            if (rc == KV_OK && (rc = kv_txn_delete(x->txn, cmd->keys[i].data,
                                                   cmd->keys[i].len)) != KV_OK)
                return fail(x, rc);
        }
        return x->r->ops->deleted(x->r, n, 0);
    }
    size_t deleted = 0;
    uint64_t version = 0;
    int rc = kv_mdelete(x->st, cmd->keys, cmd->nkeys, &deleted, &version);
    if (rc != KV_OK)
        return fail(x, rc);
    return x->r->ops->deleted(x->r, deleted, deleted ? version : 0);
}

/* EXISTS: how many of the keys exist (a key named twice counts twice). */
static int cmd_exists(kvd_exec *x)
{
    const kvd_cmd *cmd = x->cmd;
    int64_t n = 0;
    for (size_t i = 0; i < cmd->nkeys; i++) {
        const kv_key *k = &cmd->keys[i];
        int rc = x->txn ? txn_has(x->txn, k->data, k->len)
                        : kv_exists(x->st, k->data, k->len, NULL);
        if (rc == KV_OK)
            n++;
        else if (rc != KV_NOT_FOUND)
            return fail(x, rc);
    }
    return x->r->ops->integer(x->r, n);
}

static void len_cb(void *ctx, const void *val, size_t vlen, uint64_t version)
{
    (void)val;
    (void)version;
    *(size_t *)ctx = vlen;
}

/* STRLEN (0 when absent) and TYPE ("string" or "none"). */
static int cmd_strlen_type(kvd_exec *x)
{
    const kvd_cmd *cmd = x->cmd;
    size_t len = 0;
    int rc;
    if (x->txn) {
        kv_value v = {0};
        rc = kv_txn_get(x->txn, cmd->key.data, cmd->key.len, &v);
        len = v.len;
        kv_value_free(&v);
    } else {
        rc = kv_get_with(x->st, cmd->key.data, cmd->key.len, len_cb, &len);
    }
    if (rc != KV_OK && rc != KV_NOT_FOUND)
        return fail(x, rc);
    if (cmd->kind == KVD_CMD_TYPE)
        return x->r->ops->word(x->r, rc == KV_OK ? "string" : "none");
    return x->r->ops->integer(x->r, rc == KV_OK ? (int64_t)len : 0);
}

static int cmd_dbsize(kvd_exec *x)
{
    kv_metrics m;
    int rc = kv_metrics_read(x->st, &m, sizeof m);
    return rc == KV_OK ? x->r->ops->integer(x->r, (int64_t)m.keys) : fail(x, rc);
}

/* ---- TXN (one-shot conditional) -------------------------------------------
 * A conditional transaction copies every value its GETs read before
 * anything is encoded, so their size is checked first with zero-copy
 * lookups. Values can change between the check and the transaction; the
 * check bounds the damage of an amplifying request, it is not a
 * transaction. */

static void size_cb(void *ctx, const void *val, size_t vlen, uint64_t version)
{
    (void)val;
    (void)version;
    *(size_t *)ctx += vlen + 16;
}

static size_t ops_get_size(kv_store *st, const kv_op *ops, size_t n, size_t limit)
{
    size_t total = 0;
    for (size_t i = 0; i < n && total <= limit; i++)
        if (ops[i].kind == KV_OP_GET)
            kv_get_with(st, ops[i].key, ops[i].klen, size_cb, &total);
    return total;
}

static int cmd_txn(kvd_exec *x)
{
    const kvd_cmd *cmd = x->cmd;
    kvd_reply *r = x->r;
    /* A GET may also read a value this TXN sets: those are in the request. */
    size_t limit = max_response(x);
    if (ops_get_size(x->st, cmd->then_ops, cmd->nthen, limit) + cmd->size > limit ||
        ops_get_size(x->st, cmd->else_ops, cmd->nelse, limit) + cmd->size > limit)
        return too_large(x, "ask for fewer keys");
    kv_txn_result res;
    int rc = kv_txn_cond(x->st, cmd->cmps, cmd->ncmps, cmd->then_ops, cmd->nthen,
                         cmd->else_ops, cmd->nelse, &res);
    if (rc != KV_OK)
        return fail(x, rc);
    r->ops->array(r, 3);
    r->ops->boolean(r, res.succeeded);
    r->ops->uinteger(r, res.version);
    r->ops->array(r, res.nresults);
    for (size_t i = 0; i < res.nresults; i++) {
        const kv_op_result *o = &res.results[i];
        r->ops->array(r, o->value.data ? 3 : 1);
        r->ops->uinteger(r, (uint64_t)o->status);
        if (o->value.data) {
            r->ops->bytes(r, o->value.data, o->value.len);
            r->ops->uinteger(r, o->value.version);
        }
    }
    kv_txn_result_free(&res);
    return KV_OK;
}

/* ---- SCAN and KEYS: pages within the response limit ------------------------
 * A page is built one cursor position at a time (kv_scan with limit 1),
 * so it can stop BEFORE an entry that would take it over max_response:
 * that entry's position becomes the next cursor and it opens the next
 * page (kv_scan's own stop request resumes after the key, which would
 * lose it). The first position of a page is always taken, so every page
 * makes progress; it is over the limit only when that one entry alone is.
 * One kv_scan call can pass several keys when their 64-bit hashes are
 * equal (it never stops between them); such a group is taken or dropped
 * whole. With a pattern (RESP's MATCH, KEYS), keys that do not match are
 * passed over but count toward the limit, as in Redis. */

typedef struct scan_ctx {
    kvd_reply *r;
    int rc;
    bool keys_only;
    bool take_all; /* the page is empty: take this position whatever its size */
    bool full;     /* an entry of this position did not fit */
    size_t seen;   /* entries passed by kv_scan (matching or not) */
    size_t added;  /* entries in the page */
    size_t max_bytes;
    const kv_key *pattern; /* or NULL */
} scan_ctx;

static int scan_cb(void *ctx, const void *key, size_t klen, const void *val, size_t vlen,
                   uint64_t version)
{
    scan_ctx *sc = ctx;
    kvd_reply *r = sc->r;
    if (sc->rc != KV_OK || sc->full)
        return 1;
    sc->seen++;
    if (sc->pattern && !kvd_glob_match(sc->pattern->data, sc->pattern->len, key, klen))
        return 0;
    size_t need = r->ops->page_entry_size(r, klen, sc->keys_only ? 0 : vlen, version);
    if (!sc->take_all && r->ops->page_size(r) + need > sc->max_bytes) {
        sc->full = true;
        return 1;
    }
    sc->rc = r->ops->page_add(r, key, klen, sc->keys_only ? NULL : val, vlen, version);
    sc->added++;
    return 0;
}

/* SCAN (a page from cursor), SCAN_AT (the same over the store as it was
 * at a revision: kv_scan_at) and KEYS (every page: the whole store). */
static int cmd_scan(kvd_exec *x)
{
    const kvd_cmd *cmd = x->cmd;
    kvd_reply *r = x->r;
    int keys = cmd->kind == KVD_CMD_KEYS;
    size_t limit = keys ? SIZE_MAX
                   : cmd->limit == 0 ? SCAN_DEFAULT_LIMIT
                   : cmd->limit > SCAN_MAX_LIMIT ? SCAN_MAX_LIMIT : (size_t)cmd->limit;
    const kv_key *pattern = cmd->value.data ? &cmd->value : NULL;
    scan_ctx sc = {.r = r, .rc = KV_OK, .keys_only = keys || (cmd->flags & 1u),
                   .max_bytes = max_response(x), .pattern = pattern};
    int rc = r->ops->page_begin(r, sc.keys_only, !keys);
    if (rc != KV_OK)
        return KV_OK; /* finish reports it */
    uint64_t cursor = keys ? 0 : cmd->a, next = cursor;
    while (sc.seen < limit) {
        size_t seen = sc.seen, added = sc.added;
        r->ops->page_save(r);
        sc.take_all = sc.added == 0;
        rc = cmd->kind == KVD_CMD_SCAN_AT
                 ? kv_scan_at(x->st, cmd->key.data, cmd->key.len, cmd->rev, cursor, 1, scan_cb,
                              &sc, &next)
                 : kv_scan(x->st, cmd->key.data, cmd->key.len, cursor, 1, scan_cb, &sc, &next);
        if (rc != KV_OK || (rc = sc.rc) != KV_OK)
            break;
        if (sc.full) {
            r->ops->page_restore(r);
            sc.seen = seen;
            sc.added = added;
            next = cursor; /* this position opens the next page */
            break;
        }
        if (next == 0)
            break; /* the scan is complete */
        cursor = next;
    }
    if (rc == KV_OK && keys && next != 0) {
        r->ops->rewind(r);
        return too_large(x, "list the keys with SCAN instead");
    }
    if (rc != KV_OK) {
        r->ops->rewind(r);
        return cmd->kind == KVD_CMD_SCAN_AT ? kvd__history_error(x, rc, cmd->rev, NULL, 0)
                                            : fail(x, rc);
    }
    r->ops->page_end(r, next);
    return KV_OK;
}

/* FLUSHDB: deletes every key, a page at a time (each page atomic; writes
 * made meanwhile may survive: not one atomic step). */
typedef struct flush_ctx {
    kv_key keys[FLUSH_PAGE];
    char *copy[FLUSH_PAGE];
    size_t n;
} flush_ctx;

static int flush_cb(void *ctx, const void *key, size_t klen, const void *val, size_t vlen,
                    uint64_t version)
{
    (void)val;
    (void)vlen;
    (void)version;
    flush_ctx *f = ctx;
    char *k = malloc(klen);
    if (!k)
        return 1;
    memcpy(k, key, klen);
    f->copy[f->n] = k;
    f->keys[f->n++] = (kv_key){k, klen};
    return f->n == FLUSH_PAGE;
}

/* A cluster node applies FLUSHDB from its log, where no other write
 * runs meanwhile: every key is deleted in one change (one revision), so
 * every node deletes the same keys at the same revision whatever the
 * order of its index. */
typedef struct flush_all {
    kv_key *keys;
    size_t n, cap;
    int oom;
} flush_all;

static int flush_all_cb(void *ctx, const void *key, size_t klen, const void *val, size_t vlen,
                        uint64_t version)
{
    (void)val;
    (void)vlen;
    (void)version;
    flush_all *f = ctx;
    if (f->n == f->cap) {
        size_t cap = f->cap ? f->cap * 2 : 1024;
        kv_key *k = realloc(f->keys, cap * sizeof *k);
        if (!k) {
            f->oom = 1;
            return 1;
        }
        f->keys = k;
        f->cap = cap;
    }
    char *copy = malloc(klen ? klen : 1);
    if (!copy) {
        f->oom = 1;
        return 1;
    }
    memcpy(copy, key, klen);
    f->keys[f->n++] = (kv_key){copy, klen};
    return 0;
}

static int flush_at_once(kvd_exec *x)
{
    flush_all f = {0};
    uint64_t cursor = 0;
    int rc;
    do
        rc = kv_scan(x->st, NULL, 0, cursor, 1024, flush_all_cb, &f, &cursor);
    while (rc == KV_OK && !f.oom && cursor != 0);
    if (rc == KV_OK && f.oom)
        rc = KV_NO_MEMORY;
    if (rc == KV_OK && f.n > 0)
        rc = kv_mdelete(x->st, f.keys, f.n, NULL, NULL);
    for (size_t i = 0; i < f.n; i++)
        free((void *)f.keys[i].data);
    free(f.keys);
    return rc == KV_OK ? x->r->ops->ok(x->r, "OK") : fail(x, rc);
}

static int cmd_flushdb(kvd_exec *x)
{
    if (x->srv->repl)
        return flush_at_once(x);
    uint64_t cursor = 0;
    int rc;
    do {
        flush_ctx f = {.n = 0};
        rc = kv_scan(x->st, NULL, 0, cursor, FLUSH_PAGE, flush_cb, &f, &cursor);
        if (rc == KV_OK && f.n > 0)
            rc = kv_mdelete(x->st, f.keys, f.n, NULL, NULL);
        for (size_t i = 0; i < f.n; i++)
            free(f.copy[i]);
    } while (rc == KV_OK && cursor != 0);
    return rc == KV_OK ? x->r->ops->ok(x->r, "OK") : fail(x, rc);
}

/* ---- read-modify-writes ----------------------------------------------------- */

/* What a read-modify-write answers once it has committed. */
typedef struct rmw_out {
    int status;         /* KV_OK, or an error to answer */
    const char *detail;
    enum { OUT_INT, OUT_VALUE, OUT_NIL, OUT_OK, OUT_TEXT } type;
    int64_t i;
    kv_value v;         /* OUT_VALUE (owned) */
    char text[64];      /* OUT_TEXT */
} rmw_out;

static int parse_i64(const void *p, size_t n, int64_t *out)
{
    char buf[32];
    if (n == 0 || n >= sizeof buf)
        return -1;
    memcpy(buf, p, n);
    buf[n] = 0;
    char *end;
    errno = 0;
    long long v = strtoll(buf, &end, 10);
    /* all n bytes: a value "5\0x" is not the number 5 */
    if (errno || end != buf + n || isspace((unsigned char)buf[0]))
        return -1;
    /* Only the canonical form, as Redis: "05", "+5" and "-0" are not
     * integers (INCR would otherwise rewrite them). */
    if (buf[0] == '+' || (buf[0] == '0' && n > 1) || (buf[0] == '-' && buf[1] == '0'))
        return -1;
    *out = v;
    return 0;
}

static int parse_ld(const void *p, size_t n, long double *out)
{
    char buf[64];
    if (n == 0 || n >= sizeof buf)
        return -1;
    memcpy(buf, p, n);
    buf[n] = 0;
    char *end;
    errno = 0;
    long double v = strtold(buf, &end);
    if (errno || end != buf + n || isspace((unsigned char)buf[0]) || isnan(v) || isinf(v))
        return -1;
    *out = v;
    return 0;
}

/* The change itself, on transaction t. */
static int rmw_step(kvd_exec *x, kv_txn *t, rmw_out *o)
{
    const kvd_cmd *cmd = x->cmd;
    kv_value old = {0};
    int rc = kv_txn_get(t, cmd->key.data, cmd->key.len, &old);
    if (rc != KV_OK && rc != KV_NOT_FOUND)
        return rc;
    int exists = rc == KV_OK;
    /* the expiry the key keeps (APPEND, INCR...) or takes along (RENAME) */
    uint64_t at = 0;
    rc = exists && cmd->kind != KVD_CMD_GETSET && cmd->kind != KVD_CMD_GETDEL
             ? kvd__key_expiry(x, cmd->key.data, cmd->key.len, old.version, &at)
             : KV_OK;
    if (rc != KV_OK) {
        kv_value_free(&old);
        return rc;
    }
    switch (cmd->kind) {
    case KVD_CMD_GETSET:
    case KVD_CMD_GETDEL:
        rc = cmd->kind == KVD_CMD_GETSET
                 ? kvd__txn_set(x, t, cmd->key.data, cmd->key.len, cmd->value.data,
                                cmd->value.len, 0)
                 : exists ? kv_txn_delete(t, cmd->key.data, cmd->key.len) : KV_OK;
        o->type = exists ? OUT_VALUE : OUT_NIL;
        o->v = old;
        return rc;
    case KVD_CMD_APPEND: {
        size_t n = old.len + cmd->value.len;
        char *buf = malloc(n ? n : 1);
        if (!buf) {
            rc = KV_NO_MEMORY;
            break;
        }
        if (old.len)
            memcpy(buf, old.data, old.len);
        if (cmd->value.len)
            memcpy(buf + old.len, cmd->value.data, cmd->value.len);
        rc = kvd__txn_set(x, t, cmd->key.data, cmd->key.len, buf, n, at);
        free(buf);
        o->type = OUT_INT;
        o->i = (int64_t)n;
        break;
    }
    case KVD_CMD_INCRBY: {
        int64_t v = 0;
        if (exists && parse_i64(old.data, old.len, &v) != 0) {
            o->status = KV_INVALID_ARGUMENT;
            o->detail = "value is not an integer or out of range";
            break;
        }
        if ((cmd->i > 0 && v > INT64_MAX - cmd->i) || (cmd->i < 0 && v < INT64_MIN - cmd->i)) {
            o->status = KV_INVALID_ARGUMENT;
            o->detail = "increment or decrement would overflow";
            break;
        }
        v += cmd->i;
        char buf[24];
        int n = snprintf(buf, sizeof buf, "%lld", (long long)v);
        rc = kvd__txn_set(x, t, cmd->key.data, cmd->key.len, buf, (size_t)n, at);
        o->type = OUT_INT;
        o->i = v;
        break;
    }
    case KVD_CMD_INCRBYFLOAT: {
        long double v = 0;
        if (exists && parse_ld(old.data, old.len, &v) != 0) {
            o->status = KV_INVALID_ARGUMENT;
            o->detail = "value is not a valid float";
            break;
        }
        /* The increment's text, when the front-end passes it (RESP), is
         * read as a long double like Redis does: 10.5 + 0.1 is then 10.6,
         * not the 10.60000000000000001 of the double 0.1. */
        long double incr = (long double)cmd->f;
        if (cmd->value.data && parse_ld(cmd->value.data, cmd->value.len, &incr) != 0)
            incr = (long double)cmd->f;
        v += incr;
        if (isnan(v) || isinf(v)) {
            o->status = KV_INVALID_ARGUMENT;
            o->detail = "increment would produce NaN or Infinity";
            break;
        }
        /* As Redis: 17 digits, no exponent, trailing zeros dropped. */
        int n = snprintf(o->text, sizeof o->text, "%.17Lf", v);
        if (n <= 0 || (size_t)n >= sizeof o->text) {
            o->status = KV_INVALID_ARGUMENT;
            o->detail = "increment would produce a number out of range";
            break;
        }
        if (strchr(o->text, '.')) {
            while (n > 0 && o->text[n - 1] == '0')
                o->text[--n] = 0;
            if (n > 0 && o->text[n - 1] == '.')
                o->text[--n] = 0;
        }
        rc = kvd__txn_set(x, t, cmd->key.data, cmd->key.len, o->text, (size_t)n, at);
        o->type = OUT_TEXT;
        break;
    }
    case KVD_CMD_RENAME:
        if (!exists) {
            o->status = KV_NOT_FOUND;
            o->detail = "no such key";
            break;
        }
        if (cmd->key.len != cmd->value.len ||
            memcmp(cmd->key.data, cmd->value.data, cmd->key.len) != 0) {
            rc = kvd__txn_set(x, t, cmd->value.data, cmd->value.len, old.data, old.len, at);
            if (rc == KV_OK)
                rc = kv_txn_delete(t, cmd->key.data, cmd->key.len);
        }
        o->type = OUT_OK;
        break;
    default:
        rc = KV_INTERNAL;
    }
    kv_value_free(&old);
    return rc;
}

static int rmw_answer(kvd_exec *x, rmw_out *o)
{
    kvd_reply *r = x->r;
    int rc;
    if (o->status != KV_OK)
        rc = o->status == KV_NOT_FOUND ? r->ops->error(r, KV_INVALID_ARGUMENT, o->detail)
                                       : r->ops->error(r, o->status, o->detail);
    else if (o->type == OUT_INT)
        rc = r->ops->integer(r, o->i);
    else if (o->type == OUT_VALUE)
        rc = r->ops->bytes(r, o->v.data, o->v.len);
    else if (o->type == OUT_NIL)
        rc = r->ops->nil(r);
    else if (o->type == OUT_TEXT)
        rc = r->ops->bytes(r, o->text, strlen(o->text));
    else
        rc = r->ops->ok(r, "OK");
    kv_value_free(&o->v);
    return rc;
}

static int cmd_rmw(kvd_exec *x)
{
    rmw_out o;
    if (x->txn) {
        memset(&o, 0, sizeof o);
        int rc = rmw_step(x, x->txn, &o);
        if (rc != KV_OK) {
            kv_value_free(&o.v);
            return fail(x, rc);
        }
        return rmw_answer(x, &o);
    }
    for (;;) {
        kv_txn *t;
        memset(&o, 0, sizeof o);
        int rc = kv_txn_begin(x->st, &t);
        if (rc != KV_OK)
            return fail(x, rc);
        rc = rmw_step(x, t, &o);
        if (rc != KV_OK || o.status != KV_OK) {
            kv_txn_abort(t);
            if (rc == KV_CONFLICT) {
                kv_value_free(&o.v);
                continue;
            }
            if (rc != KV_OK) {
                kv_value_free(&o.v);
                return fail(x, rc);
            }
            return rmw_answer(x, &o);
        }
        rc = kv_txn_commit(t, NULL);
        if (rc == KV_CONFLICT) {
            kv_value_free(&o.v);
            continue; /* someone changed the key meanwhile: again */
        }
        if (rc != KV_OK) {
            kv_value_free(&o.v);
            return fail(x, rc);
        }
        return rmw_answer(x, &o);
    }
}

int kvd__cmd_kv(kvd_exec *x)
{
    switch (x->cmd->kind) {
    case KVD_CMD_GET: return cmd_get(x);
    case KVD_CMD_MGET: return cmd_mget(x);
    case KVD_CMD_SET: return cmd_set(x);
    case KVD_CMD_MSET: return cmd_mset(x);
    case KVD_CMD_MSETNX: return cmd_msetnx(x);
    case KVD_CMD_DEL: return cmd_del(x);
    case KVD_CMD_TXN: return cmd_txn(x);
    case KVD_CMD_SCAN:
    case KVD_CMD_SCAN_AT:
    case KVD_CMD_KEYS: return cmd_scan(x);
    case KVD_CMD_EXISTS: return cmd_exists(x);
    case KVD_CMD_STRLEN:
    case KVD_CMD_TYPE: return cmd_strlen_type(x);
    case KVD_CMD_DBSIZE: return cmd_dbsize(x);
    case KVD_CMD_FLUSHDB: return cmd_flushdb(x);
    case KVD_CMD_GETSET:
    case KVD_CMD_GETDEL:
    case KVD_CMD_APPEND:
    case KVD_CMD_INCRBY:
    case KVD_CMD_INCRBYFLOAT:
    case KVD_CMD_RENAME: return cmd_rmw(x);
    default: return x->r->ops->error(x->r, KV_UNSUPPORTED, "unknown operation");
    }
}
