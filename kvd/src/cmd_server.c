/*
 * cmd_server.c - the commands about the connection and the server rather
 * than keys: HELLO, PING, ECHO, AUTH, SELECT, QUIT, CLIENT, COMMAND,
 * INFO, CONFIG, METRICS, and the deferred SNAPSHOT and SNAPSHOT_READ
 * (run in libuv's thread pool; their replies are held in order with the
 * connection's others until they are done, conn_write.c).
 */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>
#include <unistd.h>

#include "cmd.h"
#include "conn.h"
#include "conn_internal.h"
#include "glob.h"
#include "log.h"
#include "metrics.h"
#include "repl/repl.h"

#define KVD_STR_(x) #x
#define KVD_STR(x) KVD_STR_(x)

static int text(kvd_reply *r, const char *s)
{
    return r->ops->text(r, s, strlen(s));
}

/* ---- HELLO ------------------------------------------------------------- */

static int hello_native(kvd_exec *x)
{
    const kvd_cmd *cmd = x->cmd;
    kvd_reply *r = x->r;
    uint64_t lo = cmd->a > KV_PROTO_MIN_VERSION ? cmd->a : KV_PROTO_MIN_VERSION;
    uint64_t hi = cmd->b < KV_PROTO_MAX_VERSION ? cmd->b : KV_PROTO_MAX_VERSION;
    if (lo > hi)
        return r->ops->error(r, KV_UNSUPPORTED,
                             "no common protocol version (kvd speaks " KVD_STR(KV_PROTO_MIN_VERSION)
                             ".." KVD_STR(KV_PROTO_MAX_VERSION) ")");
    x->sess->native_version = (int)hi;
    r->ops->array(r, 3);
    r->ops->uinteger(r, hi);
    text(r, "kvd");
    return text(r, KV_VERSION_STRING);
}

/* RESP's HELLO [protover [AUTH user pass] [SETNAME name]]: a (0: keep),
 * key (the password, has_key), value (the name, when given). */
static int hello_resp(kvd_exec *x)
{
    const kvd_cmd *cmd = x->cmd;
    kvd_reply *r = x->r;
    if (cmd->a != 0 && cmd->a != 2 && cmd->a != 3)
        return r->ops->error(r, KV_UNSUPPORTED, "NOPROTO unsupported protocol version");
    if (cmd->has_key) {
        /* HELLO's AUTH obeys the address's backoff like AUTH does; it
         * cannot wait its turn (only AUTH's reply is deferred), so a
         * HELLO inside the backoff is refused unchecked. */
        kvd_server *s = x->c->w->server;
        uint64_t delay = s->cfg->password
                             ? kvd_auth_throttle_admit(&s->auth_throttle, &x->c->peer_key,
                                                       uv_now(&x->c->w->loop))
                             : 0;
        if (delay > 0) {
            char msg[160];
            kvd_stat_add(&x->c->w->stats.auth_throttled, 1);
            snprintf(msg, sizeof msg,
                     "AUTH from this address is slowed down after failed attempts: retry "
                     "in %llu ms (AUTH waits its turn itself)",
                     (unsigned long long)delay);
            return r->ops->error(r, KV_BUSY, msg);
        }
        int fatal = 0;
        kvd_reply probe = *r;
        /* The password decides; the answer is HELLO's map, not AUTH's OK. */
        if (kvd_cmd_auth_check(x->c, &probe, cmd->key.data, cmd->key.len, &fatal) != KV_OK) {
            *r = probe;
            x->fatal = fatal;
            return KV_OK;
        }
        r->ops->rewind(r);
    }
    if (kvd_cmd_needs_auth(x->c, KVD_CMD_GET))
        return r->ops->error(r, KV_AUTH_REQUIRED, "HELLO must authenticate (AUTH user password)");
    if (cmd->a)
        x->sess->resp_version = (int)cmd->a;
    r->resp3 = x->sess->resp_version == 3;
    if (cmd->value.data) {
        size_t n = cmd->value.len < sizeof x->sess->name - 1 ? cmd->value.len
                                                              : sizeof x->sess->name - 1;
        memcpy(x->sess->name, cmd->value.data, n);
        x->sess->name[n] = 0;
    }
    r->ops->map(r, 7);
    text(r, "server");
    text(r, "redis"); /* what clients look for; "version" says which */
    text(r, "version");
    text(r, "7.0.0");
    text(r, "proto");
    r->ops->integer(r, x->sess->resp_version);
    text(r, "id");
    r->ops->integer(r, (int64_t)x->sess->client_id);
    text(r, "mode");
    text(r, "standalone");
    text(r, "role");
    text(r, "master");
    text(r, "modules");
    return r->ops->array(r, 0);
}

/* ---- AUTH, PING, ECHO, SELECT, QUIT ---------------------------------------- */

/* With a password, an AUTH from an address with recent failures waits for
 * its turn (auth_throttle.h): the connection holds it, then checks it. */
static int cmd_auth(kvd_exec *x)
{
    kvd_conn *c = x->c;
    kvd_server *s = c->w->server;
    const kv_key *secret = &x->cmd->key;
    if (s->cfg->password) {
        uint64_t delay = kvd_auth_throttle_admit(&s->auth_throttle, &c->peer_key,
                                                 uv_now(&c->w->loop));
        if (delay > 0) {
            kvd_stat_add(&c->w->stats.auth_throttled, 1);
            x->r->none = 1; /* answered when its turn comes */
            return kvd__conn_auth_defer(c, x->cmd->id, secret->data, secret->len, delay) == 0
                       ? KV_OK : -1;
        }
    }
    int fatal = 0;
    int rc = kvd_cmd_auth_check(c, x->r, secret->data, secret->len, &fatal);
    x->fatal = fatal;
    return rc < 0 ? -1 : KV_OK;
}

static int cmd_ping(kvd_exec *x)
{
    const kvd_cmd *cmd = x->cmd;
    if (cmd->has_key)
        return x->r->ops->bytes(x->r, cmd->key.data, cmd->key.len);
    return x->r->ops->ok(x->r, "PONG");
}

static int cmd_select(kvd_exec *x)
{
    if (x->cmd->i != 0)
        return x->r->ops->error(x->r, KV_INVALID_ARGUMENT,
                                "DB index is out of range (kvd has one database, 0)");
    return x->r->ops->ok(x->r, "OK");
}

/* ---- CLIENT ------------------------------------------------------------------ */

static int cmd_client(kvd_exec *x)
{
    const kvd_cmd *cmd = x->cmd;
    kvd_session *s = x->sess;
    kvd_reply *r = x->r;
    switch (cmd->sub) {
    case KVD_SUB_CLIENT_SETNAME: {
        for (size_t i = 0; i < cmd->key.len; i++) {
            char ch = ((const char *)cmd->key.data)[i];
            if (ch <= ' ' || ch > '~')
                return r->ops->error(r, KV_INVALID_ARGUMENT,
                                     "Client names cannot contain spaces, newlines or special "
                                     "characters.");
        }
        size_t n = cmd->key.len < sizeof s->name - 1 ? cmd->key.len : sizeof s->name - 1;
        memcpy(s->name, cmd->key.data, n);
        s->name[n] = 0;
        return r->ops->ok(r, "OK");
    }
    case KVD_SUB_CLIENT_GETNAME:
        return s->name[0] ? text(r, s->name) : r->ops->nil(r);
    case KVD_SUB_CLIENT_ID:
        return r->ops->integer(r, (int64_t)s->client_id);
    case KVD_SUB_CLIENT_SETINFO:
        return r->ops->ok(r, "OK");
    case KVD_SUB_CLIENT_INFO: {
        char line[256];
        snprintf(line, sizeof line, "id=%llu addr=%s name=%s db=0 resp=%d\n",
                 (unsigned long long)s->client_id, x->c->peer, s->name,
                 s->protocol == KVD_PROTOCOL_RESP ? s->resp_version : 0);
        return text(r, line);
    }
    default:
        return r->ops->error(r, KV_UNSUPPORTED,
                             "unknown CLIENT subcommand (kvd has SETNAME, GETNAME, ID, SETINFO, "
                             "INFO)");
    }
}

/* ---- COMMAND ------------------------------------------------------------------
 * Entries [name, arity, [flag], first key, last key, step] for every
 * command a client can name: the kinds (less the MessagePack-only ones)
 * and the RESP names that share a kind with another (INCR is INCRBY's).
 * Arity -1: variable (kvd checks arguments itself). */

static const struct {
    const char *name;
    int kind;
} command_aliases[] = {
    {"incr", KVD_CMD_INCRBY},   {"decr", KVD_CMD_INCRBY}, {"decrby", KVD_CMD_INCRBY},
    {"setnx", KVD_CMD_MSETNX}, {"unlink", KVD_CMD_DEL},  {"flushall", KVD_CMD_FLUSHDB},
    {"setex", KVD_CMD_SET},    {"psetex", KVD_CMD_SET},  {"pttl", KVD_CMD_TTL},
    {"expiretime", KVD_CMD_TTL}, {"pexpiretime", KVD_CMD_TTL}, {"pexpire", KVD_CMD_EXPIRE},
    {"expireat", KVD_CMD_EXPIRE}, {"pexpireat", KVD_CMD_EXPIRE},
    {"kvd.getat", KVD_CMD_GET_AT}, {"kvd.mgetat", KVD_CMD_MGET_AT},
    {"kvd.scanat", KVD_CMD_SCAN_AT}, {"kvd.history", KVD_CMD_HISTORY},
    {"kvd.rollback", KVD_CMD_ROLLBACK}, {"kvd.compact", KVD_CMD_COMPACT},
    {"kvd.watch", KVD_CMD_WATCH_CHANGES}, {"kvd.unwatch", KVD_CMD_WATCH_CANCEL},
};
#define N_ALIASES (sizeof command_aliases / sizeof command_aliases[0])

static int command_listed(int k)
{
    /* the history and watch kinds are listed by their RESP names (aliases) */
    return k != KVD_CMD_TXN && k != KVD_CMD_METRICS && k != KVD_CMD_SNAPSHOT &&
           k != KVD_CMD_SNAPSHOT_READ && k != KVD_CMD_CLUSTER_EXPIRE &&
           !(k >= KVD_CMD_GET_AT && k <= KVD_CMD_COMPACT) && k != KVD_CMD_WATCH_CHANGES &&
           k != KVD_CMD_WATCH_CANCEL;
}

static int command_entry(kvd_reply *r, const char *name, int kind)
{
    int first = 0, last = 0, step = 0;
    switch (kind) {
    case KVD_CMD_GET: case KVD_CMD_SET: case KVD_CMD_GETSET: case KVD_CMD_GETDEL:
    case KVD_CMD_STRLEN: case KVD_CMD_APPEND: case KVD_CMD_INCRBY:
    case KVD_CMD_INCRBYFLOAT: case KVD_CMD_TYPE: case KVD_CMD_TTL: case KVD_CMD_EXPIRE:
    case KVD_CMD_PERSIST: case KVD_CMD_GETEX: case KVD_CMD_GET_AT: case KVD_CMD_HISTORY:
    case KVD_CMD_WATCH_CHANGES:
        first = last = step = 1;
        break;
    case KVD_CMD_MGET_AT:
        first = 2, last = -1, step = 1;
        break;
    case KVD_CMD_MGET: case KVD_CMD_DEL: case KVD_CMD_EXISTS: case KVD_CMD_WATCH:
        first = step = 1, last = -1;
        break;
    case KVD_CMD_MSET: case KVD_CMD_MSETNX:
        first = 1, last = strcmp(name, "setnx") == 0 ? 1 : -1, step = last == 1 ? 1 : 2;
        break;
    case KVD_CMD_RENAME:
        first = step = 1, last = 2;
        break;
    default:
        break;
    }
    r->ops->array(r, 6);
    text(r, name);
    r->ops->integer(r, -1);
    r->ops->array(r, 1);
    r->ops->word(r, (kvd_cmd_flags(kind) & KVD_CF_WRITE) ? "write" : "readonly");
    r->ops->integer(r, first);
    r->ops->integer(r, last);
    return r->ops->integer(r, step);
}

/* The kind of a command's name (any case), or -1. */
static int command_kind(const kv_key *name, const char **canonical)
{
    for (int k = 0; k < KVD_CMD_COUNT; k++) {
        const char *n = kvd_cmd_name(k);
        if (command_listed(k) && strlen(n) == name->len &&
            strncasecmp(n, name->data, name->len) == 0) {
            *canonical = n;
            return k;
        }
    }
    for (size_t i = 0; i < N_ALIASES; i++) {
        const char *n = command_aliases[i].name;
        if (strlen(n) == name->len && strncasecmp(n, name->data, name->len) == 0) {
            *canonical = n;
            return command_aliases[i].kind;
        }
    }
    return -1;
}

static int cmd_command(kvd_exec *x)
{
    kvd_reply *r = x->r;
    const kvd_cmd *cmd = x->cmd;
    size_t n = N_ALIASES;
    for (int k = 0; k < KVD_CMD_COUNT; k++)
        n += command_listed(k);
    if (cmd->sub == KVD_SUB_COMMAND_INFO && cmd->nkeys > 0) {
        /* the named ones, in order; nil for a name kvd does not have */
        r->ops->array(r, cmd->nkeys);
        for (size_t i = 0; i < cmd->nkeys; i++) {
            const char *name = NULL;
            int kind = command_kind(&cmd->keys[i], &name);
            if (kind < 0)
                r->ops->nil(r);
            else
                command_entry(r, name, kind);
        }
        return KV_OK;
    }
    switch (cmd->sub) {
    case KVD_SUB_COMMAND_COUNT:
        return r->ops->integer(r, (int64_t)n);
    case KVD_SUB_COMMAND_DOCS:
        /* No documentation to offer: an empty answer, which redis-cli
         * takes as "no hints". */
        return r->ops->map(r, 0);
    case KVD_SUB_COMMAND_INFO:
    case KVD_SUB_COMMAND_LIST:
    case KVD_SUB_NONE: {
        int list = cmd->sub == KVD_SUB_COMMAND_LIST;
        r->ops->array(r, n);
        for (int k = 0; k < KVD_CMD_COUNT; k++)
            if (command_listed(k))
                list ? text(r, kvd_cmd_name(k)) : command_entry(r, kvd_cmd_name(k), k);
        for (size_t i = 0; i < N_ALIASES; i++)
            list ? text(r, command_aliases[i].name)
                 : command_entry(r, command_aliases[i].name, command_aliases[i].kind);
        return KV_OK;
    }
    default:
        return r->ops->error(r, KV_UNSUPPORTED,
                             "unknown COMMAND subcommand (kvd has COUNT, DOCS, INFO, LIST)");
    }
}

/* ---- CONFIG GET: the parameters clients ask about ---------------------------- */

static int cmd_config(kvd_exec *x)
{
    const kvd_cmd *cmd = x->cmd;
    kvd_reply *r = x->r;
    const kvd_config *cfg = x->c->w->server->cfg;
    if (cmd->sub == KVD_SUB_CONFIG_RESETSTAT)
        return r->ops->ok(r, "OK");
    if (cmd->sub != KVD_SUB_CONFIG_GET)
        return r->ops->error(r, KV_UNSUPPORTED,
                             "CONFIG SET is not supported: kvd takes its settings from its "
                             "command line and config file (see kvd --help)");
    char port[16], timeout[16], maxclients[24], maxmemory[24];
    snprintf(port, sizeof port, "%d", x->c->w->server->bound_port);
    snprintf(maxmemory, sizeof maxmemory, "%llu", (unsigned long long)cfg->max_memory);
    snprintf(timeout, sizeof timeout, "%u", cfg->idle_timeout);
    snprintf(maxclients, sizeof maxclients, "%llu",
             (unsigned long long)x->c->w->server->max_connections);
    const char *params[][2] = {
        {"save", ""},
        {"appendonly", cfg->data_dir ? "yes" : "no"},
        {"appendfsync", cfg->fsync == KV_FSYNC_ALWAYS ? "always"
                        : cfg->fsync == KV_FSYNC_NO ? "no" : "everysec"},
        {"databases", "1"},
        {"maxmemory", maxmemory},
        {"maxmemory-policy", kv_eviction_policy_name(cfg->eviction_policy)},
        {"port", port},
        {"timeout", timeout},
        {"maxclients", maxclients},
        {"dir", cfg->data_dir ? cfg->data_dir : ""},
    };
    size_t np = sizeof params / sizeof params[0], n = 0;
    for (size_t i = 0; i < np; i++)
        n += kvd_glob_match(cmd->key.data, cmd->key.len, params[i][0], strlen(params[i][0]));
    r->ops->map(r, n);
    for (size_t i = 0; i < np; i++)
        if (kvd_glob_match(cmd->key.data, cmd->key.len, params[i][0], strlen(params[i][0]))) {
            text(r, params[i][0]);
            text(r, params[i][1]);
        }
    return KV_OK;
}

/* ---- INFO: Redis's field names, for tools that read them ------------------------ */

static int cmd_info(kvd_exec *x)
{
    kvd_server *s = x->c->w->server;
    kv_metrics m;
    if (kv_metrics_read(s->store, &m, sizeof m) != KV_OK)
        return x->r->ops->error(x->r, KV_INTERNAL, "cannot read the store's metrics");
    uint64_t cmds = 0, rejected = atomic_load(&s->connections_rejected);
    for (int i = 0; i < s->nworkers; i++)
        for (int k = 0; k < KVD_CMD_COUNT; k++)
            cmds += kvd_stat_get(&s->workers[i].stats.requests[k]);
    char *buf = malloc(4096);
    if (!buf)
        return x->r->ops->error(x->r, KV_NO_MEMORY, "out of memory");
    int n = snprintf(
        buf, 4096,
        "# Server\r\nredis_version:7.0.0\r\nkvd_version:%s\r\nredis_mode:standalone\r\n"
        "os:Linux\r\nprocess_id:%d\r\ntcp_port:%d\r\nuptime_in_seconds:%llu\r\n\r\n"
        "# Clients\r\nconnected_clients:%llu\r\nmaxclients:%llu\r\nwatchers:%llu\r\n"
        "watchers_backlogged:%llu\r\n\r\n"
        "# Memory\r\nused_memory:%llu\r\nused_memory_human:%.2fM\r\nmaxmemory:%llu\r\n"
        "maxmemory_policy:%s\r\n\r\n"
        "# Persistence\r\nloading:0\r\naof_enabled:%d\r\nrdb_changes_since_last_save:0\r\n\r\n"
        "# Stats\r\ntotal_connections_received:%llu\r\ntotal_commands_processed:%llu\r\n"
        "rejected_connections:%llu\r\nkeyspace_hits:%llu\r\nkeyspace_misses:%llu\r\n"
        "expired_keys:%llu\r\nevicted_keys:%llu\r\n\r\n"
        "# History\r\nhistory_enabled:%d\r\nhistory_versions:%llu\r\nhistory_bytes:%llu\r\n"
        "compact_revision:%llu\r\nrevision:%llu\r\n\r\n"
        "# Replication\r\nrole:master\r\nconnected_slaves:0\r\n\r\n"
        "# Keyspace\r\n",
        KV_VERSION_STRING, (int)getpid(), s->bound_port,
        (unsigned long long)((uv_hrtime() - s->start_ns) / 1000000000u),
        (unsigned long long)atomic_load(&s->connections),
        (unsigned long long)s->max_connections, (unsigned long long)atomic_load(&s->watchers),
        (unsigned long long)atomic_load(&s->watchers_backlogged),
        (unsigned long long)m.memory_used,
        (double)m.memory_used / (1024.0 * 1024.0), (unsigned long long)m.max_memory,
        kv_eviction_policy_name(s->cfg->eviction_policy), s->durable ? 1 : 0,
        (unsigned long long)atomic_load(&s->connections_total), (unsigned long long)cmds,
        (unsigned long long)rejected, (unsigned long long)m.get_hits,
        (unsigned long long)m.get_misses, (unsigned long long)m.expired_keys,
        (unsigned long long)m.evicted_keys, s->cfg->history,
        (unsigned long long)m.history_versions, (unsigned long long)m.history_bytes,
        (unsigned long long)m.compact_revision, (unsigned long long)m.revision);
    /* expires: keys stored with an expiry (expired ones too, until the
     * store removes them); avg_ttl is not kept (Redis estimates it) */
    if (m.keys && n > 0 && n < 4000)
        n += snprintf(buf + n, 4096 - (size_t)n, "db0:keys=%llu,expires=%llu,avg_ttl=0\r\n",
                      (unsigned long long)m.keys, (unsigned long long)m.keys_with_ttl);
    int rc = x->r->ops->text(x->r, buf, n > 0 ? (size_t)n : 0);
    free(buf);
    return rc;
}

static int cmd_metrics(kvd_exec *x)
{
    kv_metrics m;
    int rc = kv_metrics_read(x->st, &m, sizeof m);
    if (rc != KV_OK)
        return x->r->ops->error(x->r, rc, kv_strerror(rc));
    return kvd_metrics_reply(x->c->w->server, x->r, &m);
}

/* ---- commands with a deferred reply ------------------------------------- */

/* A command that runs in libuv's thread pool; its reply is deferred (held
 * in order with the connection's other replies, conn_write.c) until it is
 * done. Each command's work struct starts with this. */
typedef struct deferred {
    uv_work_t req;
    kvd_conn *c;
    kvd_held *slot;
    kvd_reply reply; /* the front-end's reply, pointed at slot's buffer later */
    int status;      /* the outcome, set by the run function */
    char error[256]; /* its detail when status is a failure */
    /* the answer when status is KV_OK */
    int (*answer)(struct deferred *d, kvd_reply *r);
} deferred;

static void deferred_after(uv_work_t *req, int uvstatus)
{
    deferred *d = req->data;
    kvd_conn *c = d->c;
    if (!c->closing) {
        kvd_reply *r = &d->reply;
        int rc = uvstatus != 0 ? KV_INTERNAL : d->status;
        kvd__held_aim(d->slot, r);
        if (rc == KV_OK)
            d->answer(d, r);
        else
            r->ops->error(r, rc, d->error[0] ? d->error : kv_strerror(rc));
        kvd__held_done(c, d->slot, r, KV_OK);
    }
    kvd__conn_unref(c);
    free(d); /* work structs own nothing else once answered */
}

/* Queues d (malloc'ed, d->answer set) to run in the pool; x's reply is
 * then given later. Returns KV_OK, or -1 (out of memory: the connection
 * closes); d is freed unless queued. */
static int deferred_start(kvd_exec *x, deferred *d, uv_work_cb run)
{
    kvd_conn *c = x->c;
    kvd_held *slot = kvd__conn_defer(c);
    if (!slot) {
        free(d);
        return -1;
    }
    d->req.data = d;
    d->c = c;
    d->slot = slot;
    d->reply = *x->r;
    if (uv_queue_work(&c->w->loop, &d->req, run, deferred_after) != 0) {
        free(d);
        slot->waiting = 0;
        return x->r->ops->error(x->r, KV_INTERNAL, "cannot start the work");
    }
    x->r->none = 1;
    c->handles++; /* the connection outlives the work (kvd__conn_unref) */
    return KV_OK;
}

/* Snapshots and their files exist only with a data directory. */
static int refuse_in_memory(kvd_exec *x)
{
    return x->r->ops->error(x->r, KV_UNSUPPORTED,
                            "kvd keeps the store in memory only: start it with --data-dir");
}

/* COMPACT on a connection: kv_compact in the pool (cmd_history.c checked
 * it first); the answer is the compaction revision. */
typedef struct compact_work {
    deferred d;
    uint64_t rev;
} compact_work;

static void compact_run(uv_work_t *req)
{
    compact_work *cw = req->data;
    kv_store *st = cw->d.c->w->server->store;
    cw->d.status = kv_compact(st, cw->rev);
    if (cw->d.status == KV_COMPACTED) /* another compaction got there first */
        snprintf(cw->d.error, sizeof cw->d.error,
                 "revision %llu is not above the compaction revision %llu",
                 (unsigned long long)cw->rev, (unsigned long long)kv_compact_revision(st));
}

static int compact_answer(deferred *d, kvd_reply *r)
{
    return r->ops->written(r, kv_compact_revision(d->c->w->server->store));
}

int kvd__compact_in_pool(kvd_exec *x, uint64_t rev)
{
    compact_work *cw = calloc(1, sizeof *cw);
    if (!cw)
        return x->r->ops->error(x->r, KV_NO_MEMORY, "out of memory");
    cw->rev = rev;
    cw->d.answer = compact_answer;
    return deferred_start(x, &cw->d, compact_run);
}

/* SNAPSHOT: kv_snapshot in the pool; the answer is the revision it ends at. */
typedef struct snapshot_work {
    deferred d;
    uint64_t revision;
} snapshot_work;

static void snapshot_run(uv_work_t *req)
{
    snapshot_work *sw = req->data;
    kv_store *st = sw->d.c->w->server->store;
    sw->d.status = kv_snapshot(st);
    if (sw->d.status == KV_OK) {
        kv_metrics m;
        kv_metrics_read(st, &m, sizeof m);
        sw->revision = m.snapshot_revision;
        kvd_info("%s: snapshot taken at revision %llu", sw->d.c->peer,
                 (unsigned long long)sw->revision);
    } else {
        snprintf(sw->d.error, sizeof sw->d.error, "%s",
                 kv_last_error()[0] ? kv_last_error() : kv_strerror(sw->d.status));
        kvd_warn("%s: snapshot failed: %s", sw->d.c->peer, sw->d.error);
    }
}

static int snapshot_answer(deferred *d, kvd_reply *r)
{
    return r->ops->written(r, ((snapshot_work *)d)->revision);
}

static int cmd_snapshot(kvd_exec *x)
{
    if (!x->c->w->server->durable)
        return refuse_in_memory(x);
    snapshot_work *sw = calloc(1, sizeof *sw);
    if (!sw)
        return x->r->ops->error(x->r, KV_NO_MEMORY, "out of memory");
    sw->d.answer = snapshot_answer;
    return deferred_start(x, &sw->d, snapshot_run);
}

/* SNAPSHOT_READ: a chunk of a snapshot file of the data directory (a
 * backup streamed to the client), read in the pool. Files are named by
 * revision only, so a client cannot name any other file. The chunk lives
 * in the work struct, freed with it. */
#define SNAPSHOT_READ_DEFAULT ((size_t)4 << 20)

typedef struct snapshot_read_work {
    deferred d;
    uint64_t revision, offset;
    size_t max, len;
    uint64_t size;
    char data[]; /* max bytes */
} snapshot_read_work;

static void snapshot_read_run(uv_work_t *req)
{
    snapshot_read_work *w = req->data;
    const char *dir = w->d.c->w->server->cfg->data_dir;
    char path[4096];
    snprintf(path, sizeof path, "%s/snap-%016llx.kvs", dir, (unsigned long long)w->revision);
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0) {
        w->d.status = errno == ENOENT ? KV_NOT_FOUND : KV_IO;
        snprintf(w->d.error, sizeof w->d.error,
                 errno == ENOENT ? "no snapshot at revision %llu in the data directory (a newer "
                                   "one replaced it: take a new SNAPSHOT)"
                                 : "cannot open the snapshot at revision %llu",
                 (unsigned long long)w->revision);
        return;
    }
    struct stat st;
    if (fstat(fd, &st) != 0) {
        w->d.status = KV_IO;
        close(fd);
        return;
    }
    w->size = (uint64_t)st.st_size;
    if (w->offset > w->size) {
        w->d.status = KV_INVALID_ARGUMENT;
        snprintf(w->d.error, sizeof w->d.error, "offset %llu is past the end (%llu bytes)",
                 (unsigned long long)w->offset, (unsigned long long)w->size);
        close(fd);
        return;
    }
    size_t want = w->size - w->offset < w->max ? (size_t)(w->size - w->offset) : w->max;
    size_t got = 0;
    while (got < want) {
        ssize_t n = pread(fd, w->data + got, want - got, (off_t)(w->offset + got));
        if (n < 0 && errno == EINTR)
            continue;
        if (n <= 0)
            break;
        got += (size_t)n;
    }
    close(fd);
    w->len = got;
    w->d.status = got == want ? KV_OK : KV_IO;
}

static int snapshot_read_answer(deferred *d, kvd_reply *r)
{
    snapshot_read_work *w = (snapshot_read_work *)d;
    return r->ops->versioned(r, w->data, w->len, w->size);
}

static int cmd_snapshot_read(kvd_exec *x)
{
    kvd_server *s = x->c->w->server;
    if (!s->durable)
        return refuse_in_memory(x);
    size_t cap = s->max_response > 4096 ? s->max_response - 4096 : 4096;
    size_t max = x->cmd->limit && x->cmd->limit < cap ? (size_t)x->cmd->limit
                                                       : SNAPSHOT_READ_DEFAULT;
    if (max > cap)
        max = cap;
    snapshot_read_work *w = calloc(1, sizeof *w + max);
    if (!w)
        return x->r->ops->error(x->r, KV_NO_MEMORY, "out of memory");
    w->d.answer = snapshot_read_answer;
    w->revision = x->cmd->a;
    w->offset = x->cmd->b;
    w->max = max;
    return deferred_start(x, &w->d, snapshot_read_run);
}

int kvd__cmd_server(kvd_exec *x)
{
    kvd_reply *r = x->r;
    switch (x->cmd->kind) {
    case KVD_CMD_HELLO:
        return x->sess->protocol == KVD_PROTOCOL_NATIVE ? hello_native(x) : hello_resp(x);
    case KVD_CMD_PING: return cmd_ping(x);
    case KVD_CMD_ECHO: return r->ops->bytes(r, x->cmd->key.data, x->cmd->key.len);
    case KVD_CMD_AUTH: return cmd_auth(x);
    case KVD_CMD_SELECT: return cmd_select(x);
    case KVD_CMD_QUIT:
        x->fatal = 1;
        return r->ops->ok(r, "OK");
    case KVD_CMD_CLIENT: return cmd_client(x);
    case KVD_CMD_COMMAND: return cmd_command(x);
    case KVD_CMD_CONFIG: return cmd_config(x);
    case KVD_CMD_INFO: return cmd_info(x);
    case KVD_CMD_METRICS: return cmd_metrics(x);
    case KVD_CMD_CLUSTER:
        if (!x->srv->repl)
            return r->ops->error(r, KV_UNSUPPORTED,
                                 "not a cluster node (start kvd with --node-id, --raft-addr and "
                                 "--cluster)");
        return kvd_repl_admin(x);
    case KVD_CMD_READONLY:
    case KVD_CMD_READWRITE:
        /* Redis cluster's names: READONLY lets a replica answer reads. */
        x->sess->stale_reads = x->cmd->kind == KVD_CMD_READONLY;
        return r->ops->ok(r, "OK");
    case KVD_CMD_SESSION:
        /* Request ids are deduplicated where writes are applied in one
         * order everywhere: a cluster's log (repl/sessions.h). */
        if (!x->srv->repl)
            return r->ops->error(r, KV_UNSUPPORTED, KVD_IDS_NEED_CLUSTER);
        x->sess->req_client = x->cmd->a;
        return r->ops->ok(r, "OK");
    case KVD_CMD_SNAPSHOT: return cmd_snapshot(x);
    case KVD_CMD_SNAPSHOT_READ: return cmd_snapshot_read(x);
    default: return r->ops->error(r, KV_UNSUPPORTED, "unknown operation");
    }
}
