/*
 * cmd_multi.c - MULTI/EXEC/DISCARD/WATCH/UNWATCH on libkv's optimistic
 * transactions.
 *
 * After MULTI a session's commands are copied into its queue (answered
 * QUEUED). EXEC runs them all inside one kv_txn: every read goes through
 * the transaction and every write is buffered in it, and the commit is
 * serializable, so the whole queue is one atomic step. WATCH records each
 * key's version; EXEC first reads the watched keys in its transaction and
 * answers nil (nothing runs) if one has another version. A commit that
 * conflicts because something the queue read changed meanwhile is run
 * again from the start (its answers are rewound); on that rerun a
 * watched key that changed gives nil, as Redis does.
 *
 * As in Redis, a command that fails inside EXEC (INCR of a non-number)
 * answers its error in the array and the others still take effect; a
 * command refused while queueing (bad arguments, or one that cannot run
 * in a transaction) makes EXEC refuse the whole queue. The queue is
 * bounded (KVD_MULTI_MAX_COMMANDS, and the frame limit in bytes).
 */
#include <stdlib.h>
#include <string.h>

#include "cmd.h"
#include "conn.h"

#define KVD_MULTI_MAX_COMMANDS 100000
#define KVD_WATCH_MAX_KEYS 10000
#define EXEC_MAX_TRIES 1000

typedef kvd_watched watched;

struct kvd_multi {
    kvd_cmd **queue;
    size_t n, cap, bytes;
    int refused; /* a command was refused while queueing */
    watched *w;
    size_t nw, capw;
};

static kvd_multi *multi_of(kvd_session *s)
{
    if (!s->multi)
        s->multi = calloc(1, sizeof *s->multi);
    return s->multi;
}

static void clear_queue(kvd_multi *m)
{
    for (size_t i = 0; i < m->n; i++)
        free(m->queue[i]);
    m->n = 0;
    m->bytes = 0;
    m->refused = 0;
}

static void clear_watches(kvd_multi *m)
{
    for (size_t i = 0; i < m->nw; i++)
        free((void *)m->w[i].key);
    m->nw = 0;
}

void kvd_session_free(kvd_session *s)
{
    if (!s->multi)
        return;
    clear_queue(s->multi);
    clear_watches(s->multi);
    free(s->multi->queue);
    free(s->multi->w);
    free(s->multi);
    s->multi = NULL;
}

/* ---- copying a command ------------------------------------------------------
 * One allocation: the struct, then its arrays, then every byte string. */

static size_t cmd_bytes(const kvd_cmd *c)
{
    size_t n = sizeof *c + c->key.len + c->value.len + 16;
    n += c->nkeys * sizeof(kv_key) + c->npairs * sizeof(kv_pair);
    for (size_t i = 0; i < c->nkeys; i++)
        n += c->keys[i].len;
    for (size_t i = 0; i < c->npairs; i++)
        n += c->pairs[i].klen + c->pairs[i].vlen;
    return n;
}

static const void *put(char **p, const void *src, size_t n)
{
    if (!src)
        return NULL;
    char *dst = *p;
    if (n)
        memcpy(dst, src, n);
    *p += n;
    return dst;
}

kvd_cmd *kvd_cmd_copy(const kvd_cmd *src)
{
    size_t size = cmd_bytes(src);
    kvd_cmd *c = malloc(size);
    if (!c)
        return NULL;
    *c = *src;
    char *p = (char *)(c + 1);
    kv_key *keys = (kv_key *)p;
    p += src->nkeys * sizeof(kv_key);
    kv_pair *pairs = (kv_pair *)p;
    p += src->npairs * sizeof(kv_pair);
    c->key.data = put(&p, src->key.data, src->key.len);
    c->value.data = put(&p, src->value.data, src->value.len);
    for (size_t i = 0; i < src->nkeys; i++)
        keys[i] = (kv_key){put(&p, src->keys[i].data, src->keys[i].len), src->keys[i].len};
    for (size_t i = 0; i < src->npairs; i++) {
        pairs[i] = src->pairs[i];
        pairs[i].key = put(&p, src->pairs[i].key, src->pairs[i].klen);
        pairs[i].val = put(&p, src->pairs[i].val, src->pairs[i].vlen);
    }
    c->keys = src->nkeys ? keys : NULL;
    c->pairs = src->npairs ? pairs : NULL;
    c->cmps = NULL;
    c->then_ops = c->else_ops = NULL;
    c->then_in = c->else_in = NULL;
    c->ncmps = c->nthen = c->nelse = 0;
    return c;
}

int kvd__multi_queue(kvd_exec *x)
{
    kvd_multi *m = multi_of(x->sess);
    kvd_reply *r = x->r;
    if (!m)
        return r->ops->error(r, KV_NO_MEMORY, "out of memory");
    if (kvd_cmd_flags(x->cmd->kind) & KVD_CF_NOTXN) {
        m->refused = 1;
        return r->ops->error(r, KV_UNSUPPORTED, "command not allowed inside MULTI");
    }
    size_t size = cmd_bytes(x->cmd);
    if (m->n >= KVD_MULTI_MAX_COMMANDS ||
        m->bytes + size > x->srv->cfg->max_frame_size) {
        m->refused = 1;
        return r->ops->error(r, KV_INVALID_ARGUMENT,
                             "MULTI queue too large (EXEC will refuse it; DISCARD it)");
    }
    if (m->n == m->cap) {
        size_t cap = m->cap ? m->cap * 2 : 16;
        kvd_cmd **q = realloc(m->queue, cap * sizeof *q);
        if (!q)
            return r->ops->error(r, KV_NO_MEMORY, "out of memory");
        m->queue = q;
        m->cap = cap;
    }
    kvd_cmd *copy = kvd_cmd_copy(x->cmd);
    if (!copy)
        return r->ops->error(r, KV_NO_MEMORY, "out of memory");
    m->queue[m->n++] = copy;
    m->bytes += size;
    return r->ops->ok(r, "QUEUED");
}

/* ---- the commands ------------------------------------------------------------ */

static int cmd_watch(kvd_exec *x)
{
    kvd_reply *r = x->r;
    if (x->sess->in_multi)
        return r->ops->error(r, KV_INVALID_ARGUMENT, "WATCH inside MULTI is not allowed");
    kvd_multi *m = multi_of(x->sess);
    if (!m)
        return r->ops->error(r, KV_NO_MEMORY, "out of memory");
    const kvd_cmd *cmd = x->cmd;
    if (m->nw + cmd->nkeys > KVD_WATCH_MAX_KEYS)
        return r->ops->error(r, KV_INVALID_ARGUMENT, "too many WATCHed keys");
    if (m->nw + cmd->nkeys > m->capw) {
        size_t cap = m->nw + cmd->nkeys + 8;
        watched *w = realloc(m->w, cap * sizeof *w);
        if (!w)
            return r->ops->error(r, KV_NO_MEMORY, "out of memory");
        m->w = w;
        m->capw = cap;
    }
    for (size_t i = 0; i < cmd->nkeys; i++) {
        uint64_t version = 0;
        int rc = kv_exists(x->st, cmd->keys[i].data, cmd->keys[i].len, &version);
        if (rc != KV_OK && rc != KV_NOT_FOUND)
            return r->ops->error(r, rc, kv_strerror(rc));
        char *k = malloc(cmd->keys[i].len ? cmd->keys[i].len : 1);
        if (!k)
            return r->ops->error(r, KV_NO_MEMORY, "out of memory");
        memcpy(k, cmd->keys[i].data, cmd->keys[i].len);
        m->w[m->nw++] = (watched){k, cmd->keys[i].len, rc == KV_OK ? version : 0};
    }
    return r->ops->ok(r, "OK");
}

/* 1 if every watched key still has the version it had, read through t
 * (so the commit validates it too); 0 if one changed; <0 a status. */
static int watches_hold(const watched *w, size_t nw, kv_txn *t)
{
    for (size_t i = 0; i < nw; i++) {
        kv_value v = {0};
        int rc = kv_txn_get(t, w[i].key, w[i].len, &v);
        uint64_t version = rc == KV_OK ? v.version : 0;
        kv_value_free(&v);
        if (rc != KV_OK && rc != KV_NOT_FOUND)
            return -rc;
        if (version != w[i].version)
            return 0;
    }
    return 1;
}

int kvd__multi_take(kvd_exec *x, kvd_cmd ***queue, size_t *n, const kvd_watched **w,
                    size_t *nw)
{
    kvd_reply *r = x->r;
    kvd_multi *m = x->sess->multi;
    if (!x->sess->in_multi || !m)
        return r->ops->error(r, KV_INVALID_ARGUMENT, "EXEC without MULTI");
    x->sess->in_multi = 0;
    if (m->refused) {
        kvd__multi_end(x->sess);
        return r->ops->error(r, KV_INVALID_ARGUMENT,
                             "EXECABORT Transaction discarded because of previous errors.");
    }
    /* Times from now count from EXEC, as in Redis (each queued command
     * is a copy of its own: resolved in place, once). */
    uint64_t now = kv_clock_ms(x->st);
    for (size_t i = 0; i < m->n; i++)
        if (m->queue[i]->exp_mode == KVD_EXP_IN) {
            m->queue[i]->exp_mode = KVD_EXP_AT;
            m->queue[i]->exp += now;
        }
    *queue = m->queue;
    *n = m->n;
    *w = m->w;
    *nw = m->nw;
    return 1;
}

void kvd__multi_end(kvd_session *s)
{
    s->in_multi = 0;
    if (s->multi) {
        clear_queue(s->multi);
        clear_watches(s->multi);
    }
}

static int cmd_exec(kvd_exec *x)
{
    kvd_cmd **queue;
    const watched *w;
    size_t n, nw;
    int rc = kvd__multi_take(x, &queue, &n, &w, &nw);
    if (rc != 1)
        return rc;
    rc = kvd__multi_exec(x, (const kvd_cmd *const *)queue, n, w, nw);
    kvd__multi_end(x->sess);
    return rc;
}

int kvd__multi_exec(kvd_exec *x, const kvd_cmd *const *queue, size_t n, const kvd_watched *w,
                    size_t nw)
{
    kvd_reply *r = x->r;
    int rc = KV_OK;
    kvd_written written = {0};
    for (int tries = 0;; tries++) {
        kvd__written_reset(&written);
        if (tries == EXEC_MAX_TRIES) {
            rc = r->ops->error(r, KV_CONFLICT, "transaction kept conflicting; retry");
            break;
        }
        kv_txn *t;
        rc = kv_txn_begin(x->st, &t);
        if (rc != KV_OK) {
            rc = r->ops->error(r, rc, kv_strerror(rc));
            break;
        }
        int hold = watches_hold(w, nw, t);
        if (hold <= 0) {
            kv_txn_abort(t);
            if (hold == -KV_CONFLICT)
                continue;
            rc = hold == 0 ? r->ops->nil_array(r) : r->ops->error(r, -hold, kv_strerror(-hold));
            break;
        }
        r->ops->array(r, n);
        for (size_t i = 0; i < n; i++) {
            kvd_exec q = {.c = x->c, .srv = x->srv, .sess = x->sess, .cmd = queue[i], .r = r,
                          .st = x->st, .txn = t, .written = &written};
            if (kvd__cmd_run(&q) < 0) {
                kv_txn_abort(t);
                rc = -1;
                goto done;
            }
        }
        rc = kv_txn_commit(t, NULL);
        if (rc == KV_CONFLICT) {
            r->ops->rewind(r); /* what it read changed: run it again */
            continue;
        }
        if (rc != KV_OK) {
            r->ops->rewind(r);
            rc = r->ops->error(r, rc, kv_strerror(rc));
        }
        break;
    }
done:
    kvd__written_free(&written);
    return rc < 0 ? -1 : KV_OK;
}

int kvd__cmd_multi(kvd_exec *x)
{
    kvd_reply *r = x->r;
    kvd_session *s = x->sess;
    switch (x->cmd->kind) {
    case KVD_CMD_MULTI:
        if (s->in_multi)
            return r->ops->error(r, KV_INVALID_ARGUMENT, "MULTI calls can not be nested");
        if (!multi_of(s))
            return r->ops->error(r, KV_NO_MEMORY, "out of memory");
        s->in_multi = 1;
        return r->ops->ok(r, "OK");
    case KVD_CMD_EXEC:
        return cmd_exec(x);
    case KVD_CMD_DISCARD:
        if (!s->in_multi)
            return r->ops->error(r, KV_INVALID_ARGUMENT, "DISCARD without MULTI");
        kvd__multi_end(s);
        return r->ops->ok(r, "OK");
    case KVD_CMD_WATCH:
        return cmd_watch(x);
    case KVD_CMD_UNWATCH:
        if (s->multi)
            clear_watches(s->multi);
        return r->ops->ok(r, "OK");
    default:
        return r->ops->error(r, KV_UNSUPPORTED, "unknown operation");
    }
}

void kvd__multi_refused(kvd_session *s)
{
    if (s->in_multi && s->multi)
        s->multi->refused = 1;
}
