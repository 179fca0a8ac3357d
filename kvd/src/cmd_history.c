/*
 * cmd_history.c - the commands on the store's history (kv.h, "History"),
 * for every protocol: GET_AT and MGET_AT (reads as of a revision),
 * HISTORY (one key's changes, newest first), ROLLBACK (keys or a prefix
 * back to a revision, as one new change) and COMPACT (drop the history
 * below a revision). SCAN_AT shares SCAN's paging in cmd_kv.c.
 *
 * Shapes, the same structure in every front-end (each renders it its own
 * way: MessagePack arrays, RESP arrays, HTTP JSON shaped by kind):
 *   GET_AT    the value with the revision that wrote it (as GET)
 *   MGET_AT   one value or nil per key (as MGET)
 *   HISTORY   [compact_revision, [[revision, value | nil (a deletion),
 *              create_revision, version, expire_at_ms], ...]]
 *   ROLLBACK  [changed, revision] (revision 0: nothing needed to change)
 *   COMPACT   the new compaction revision (a write's revision)
 *
 * On a cluster node ROLLBACK and COMPACT are writes like the others: one
 * Raft entry each (the revision in it), run by every node as it applies
 * the entry, so every node changes and compacts the same (repl/node.c).
 *
 * A failure says what to do next: a compacted revision names the oldest
 * one still readable, a future one the latest, and a store without
 * history how to turn it on (kvd__history_error).
 */
#include <stdio.h>
#include <stdlib.h>

#include "cmd.h"
#include "conn.h"

/* A HISTORY of more than this many changes is cut (the client pages with
 * max_rev): each event is answered with its value. */
#define HISTORY_MAX_LIMIT 10000
#define HISTORY_DEFAULT_LIMIT 100

/* The oldest revision a read of key (klen 0: of the whole store) may ask
 * for: the compaction revision, or the key's oldest kept change if that is
 * later. */
static uint64_t oldest_readable(kvd_exec *x, const void *key, size_t klen)
{
    uint64_t oldest = kv_compact_revision(x->st);
    if (klen == 0)
        return oldest ? oldest : 1;
    kv_event *ev = NULL;
    size_t n = 0;
    if (kv_history(x->st, key, klen, 0, 0, 0, &ev, &n) == KV_OK && n > 0 &&
        ev[n - 1].revision > oldest)
        oldest = ev[n - 1].revision;
    kv_events_free(ev, n);
    return oldest ? oldest : 1;
}

int kvd__history_error(kvd_exec *x, int rc, uint64_t rev, const void *key, size_t klen)
{
    char msg[200];
    const char *detail = kv_strerror(rc);
    switch (rc) {
    case KV_NOT_FOUND:
    case KV_VERSION_MISMATCH:
        detail = NULL;
        break;
    case KV_COMPACTED:
        snprintf(msg, sizeof msg, "required revision %llu has been compacted; oldest is %llu",
                 (unsigned long long)rev, (unsigned long long)oldest_readable(x, key, klen));
        detail = msg;
        break;
    case KV_FUTURE_REVISION:
        snprintf(msg, sizeof msg, "required revision %llu is a future revision; latest is %llu",
                 (unsigned long long)rev, (unsigned long long)kv_revision(x->st));
        detail = msg;
        break;
    case KV_UNSUPPORTED:
        detail = "history is off on this server (start kvd with --history on)";
        break;
    case KV_INVALID_ARGUMENT:
        if (rev == 0)
            detail = "a revision must be 1 or more";
        break;
    default:
        break;
    }
    return x->r->ops->error(x->r, rc, detail);
}

/* ---- GET_AT, MGET_AT ------------------------------------------------------- */

static int cmd_get_at(kvd_exec *x)
{
    const kvd_cmd *cmd = x->cmd;
    kv_value v;
    int rc = kv_get_at(x->st, cmd->key.data, cmd->key.len, cmd->rev, &v, NULL);
    if (rc != KV_OK)
        return kvd__history_error(x, rc, cmd->rev, cmd->key.data, cmd->key.len);
    x->r->ops->versioned(x->r, v.data, v.len, v.version);
    kv_value_free(&v);
    return KV_OK;
}

static int cmd_mget_at(kvd_exec *x)
{
    const kvd_cmd *cmd = x->cmd;
    kvd_reply *r = x->r;
    kv_value *v = calloc(cmd->nkeys + 1, sizeof *v);
    if (!v)
        return r->ops->error(r, KV_NO_MEMORY, "out of memory");
    int rc = kv_mget_at(x->st, cmd->keys, cmd->nkeys, cmd->rev, v);
    if (rc != KV_OK) {
        free(v);
        return kvd__history_error(x, rc, cmd->rev, cmd->nkeys == 1 ? cmd->keys[0].data : NULL,
                                  cmd->nkeys == 1 ? cmd->keys[0].len : 0);
    }
    /* as MGET: several values over the response limit are refused whole */
    size_t bytes = 0;
    for (size_t i = 0; i < cmd->nkeys; i++)
        bytes += v[i].len + 16;
    if (cmd->nkeys > 1 && bytes > x->srv->max_response) {
        char msg[160];
        snprintf(msg, sizeof msg, "result would exceed %zu bytes; ask for fewer keys",
                 x->srv->max_response);
        r->ops->error(r, KV_INVALID_ARGUMENT, msg);
    } else {
        r->ops->array(r, cmd->nkeys);
        for (size_t i = 0; i < cmd->nkeys; i++)
            if (v[i].data)
                r->ops->versioned(r, v[i].data, v[i].len, v[i].version);
            else
                r->ops->nil(r);
    }
    kv_values_free(v, cmd->nkeys);
    free(v);
    return KV_OK;
}

/* ---- HISTORY ------------------------------------------------------------------ */

static int cmd_history(kvd_exec *x)
{
    const kvd_cmd *cmd = x->cmd;
    kvd_reply *r = x->r;
    size_t limit = cmd->limit == 0 ? HISTORY_DEFAULT_LIMIT
                   : cmd->limit > HISTORY_MAX_LIMIT ? HISTORY_MAX_LIMIT : (size_t)cmd->limit;
    if (cmd->rev && cmd->min_rev > cmd->rev)
        return r->ops->error(r, KV_INVALID_ARGUMENT, "min_rev is above max_rev");
    if (cmd->rev > kv_revision(x->st))
        return kvd__history_error(x, KV_FUTURE_REVISION, cmd->rev, NULL, 0);
    kv_event *ev = NULL;
    size_t n = 0;
    int rc = kv_history(x->st, cmd->key.data, cmd->key.len, cmd->min_rev, cmd->rev, limit, &ev,
                        &n);
    if (rc != KV_OK)
        return kvd__history_error(x, rc, cmd->min_rev, cmd->key.data, cmd->key.len);
    size_t bytes = 0;
    for (size_t i = 0; i < n; i++)
        bytes += ev[i].vlen + 48;
    if (n > 1 && bytes > x->srv->max_response) {
        char msg[160];
        snprintf(msg, sizeof msg, "result would exceed %zu bytes; ask for fewer changes (limit)",
                 x->srv->max_response);
        r->ops->error(r, KV_INVALID_ARGUMENT, msg);
    } else {
        r->ops->array(r, 2);
        r->ops->uinteger(r, kv_compact_revision(x->st));
        r->ops->array(r, n);
        for (size_t i = 0; i < n; i++) {
            r->ops->array(r, 5);
            r->ops->uinteger(r, ev[i].revision);
            if (ev[i].deleted)
                r->ops->nil(r);
            else
                r->ops->bytes(r, ev[i].value, ev[i].vlen);
            r->ops->uinteger(r, ev[i].create_revision);
            r->ops->uinteger(r, ev[i].version);
            r->ops->uinteger(r, ev[i].expire_at_ms);
        }
    }
    kv_events_free(ev, n);
    return KV_OK;
}

/* ---- ROLLBACK, COMPACT ----------------------------------------------------------- */

static int cmd_rollback(kvd_exec *x)
{
    const kvd_cmd *cmd = x->cmd;
    kvd_reply *r = x->r;
    uint64_t version = 0;
    size_t changed = 0;
    int rc;
    if (cmd->flags & KVD_ROLLBACK_PREFIX)
        rc = kv_rollback_prefix(x->st, cmd->key.data, cmd->key.len, cmd->rev, cmd->expected,
                                &version, &changed);
    else if (cmd->nkeys == 0)
        return r->ops->error(r, KV_INVALID_ARGUMENT, "ROLLBACK needs keys or a prefix");
    else
        rc = kv_rollback(x->st, cmd->keys, cmd->nkeys, cmd->rev, cmd->expected, &version,
                         &changed);
    if (rc != KV_OK) {
        int one = !(cmd->flags & KVD_ROLLBACK_PREFIX) && cmd->nkeys == 1;
        return kvd__history_error(x, rc, cmd->rev, one ? cmd->keys[0].data : NULL,
                                  one ? cmd->keys[0].len : 0);
    }
    r->ops->array(r, 2);
    r->ops->uinteger(r, changed);
    return r->ops->uinteger(r, changed ? version : 0);
}

static int cmd_compact(kvd_exec *x)
{
    uint64_t rev = x->cmd->rev;
    /* A compaction that will go ahead sweeps the whole history, which may
     * take a while: on a connection it runs in libuv's pool, so that the
     * loop goes on serving (a cluster node applying the log has no loop
     * to keep free). The checks that refuse it stay here, with their
     * messages. */
    if (x->c && x->srv->cfg->history && rev <= kv_revision(x->st) &&
        rev > kv_compact_revision(x->st))
        return kvd__compact_in_pool(x, rev);
    int rc = kv_compact(x->st, rev);
    if (rc == KV_COMPACTED) {
        char msg[160];
        snprintf(msg, sizeof msg, "revision %llu is not above the compaction revision %llu",
                 (unsigned long long)rev, (unsigned long long)kv_compact_revision(x->st));
        return x->r->ops->error(x->r, rc, msg);
    }
    if (rc != KV_OK)
        return kvd__history_error(x, rc, rev, NULL, 0);
    return x->r->ops->written(x->r, kv_compact_revision(x->st));
}

int kvd__cmd_history(kvd_exec *x)
{
    switch (x->cmd->kind) {
    case KVD_CMD_GET_AT: return cmd_get_at(x);
    case KVD_CMD_MGET_AT: return cmd_mget_at(x);
    case KVD_CMD_HISTORY: return cmd_history(x);
    case KVD_CMD_ROLLBACK: return cmd_rollback(x);
    case KVD_CMD_COMPACT: return cmd_compact(x);
    default: return x->r->ops->error(x->r, KV_UNSUPPORTED, "unknown operation");
    }
}
