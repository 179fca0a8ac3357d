/*
 * cmd.c - the command layer's one place for what every command goes
 * through, whatever its protocol (see cmd.h): authentication, MULTI
 * queueing, statistics and latency by command, and marking a write's
 * reply to wait until its revision is durable.
 */
#include "cmd.h"

#include <stdlib.h>
#include <string.h>

#include "conn.h"
#include "conn_internal.h"
#include "watchers.h"
#include "log.h"
#include "repl/repl.h"

#define AUTH_MAX_FAILURES 5

static const char *const names[KVD_CMD_COUNT] = {
#define KVD__CMD_NAME(name, str, flags) str,
    KVD_CMD_MAP(KVD__CMD_NAME)
#undef KVD__CMD_NAME
};

static const unsigned flag_table[KVD_CMD_COUNT] = {
#define KVD__CMD_FLAGS(name, str, flags) flags,
    KVD_CMD_MAP(KVD__CMD_FLAGS)
#undef KVD__CMD_FLAGS
};

const char *kvd_cmd_name(int kind)
{
    return kind >= 0 && kind < KVD_CMD_COUNT ? names[kind] : "unknown";
}

unsigned kvd_cmd_flags(int kind)
{
    return kind >= 0 && kind < KVD_CMD_COUNT ? flag_table[kind] : 0;
}

int kvd_cmd_is_native(int kind)
{
    return (kind >= 0 && kind <= KVD_CMD_CLUSTER) || kind == KVD_CMD_TTL ||
           kind == KVD_CMD_EXPIRE || kind == KVD_CMD_PERSIST ||
           (kind >= KVD_CMD_GET_AT && kind <= KVD_CMD_COMPACT) ||
           kind == KVD_CMD_WATCH_CHANGES || kind == KVD_CMD_WATCH_CANCEL;
}

size_t kvd_cmd_request_limit(const kvd_conn *c, int authed)
{
    const kvd_server *s = c->w->server;
    if (s->cfg->password && !authed && s->preauth_max_frame < s->cfg->max_frame_size)
        return s->preauth_max_frame;
    return s->cfg->max_frame_size;
}

void kvd_reply_init(kvd_reply *r, const kvd_reply_ops *ops, kv_proto_buf *out, uint64_t id)
{
    memset(r, 0, sizeof *r);
    r->ops = ops;
    r->out = out;
    r->id = id;
    r->mark = out->len;
}

int kvd_cmd_needs_auth(const kvd_conn *c, int kind)
{
    return c->w->server->cfg->password && !c->sess.authed &&
           !(kvd_cmd_flags(kind) & KVD_CF_NOAUTH);
}

/* Failures count as errors; outcomes (absent, a condition that failed)
 * do not. */
static int is_failure(int status)
{
    return status != KV_OK && status != KV_NOT_FOUND && status != KV_VERSION_MISMATCH;
}

static void count(kvd_conn *c, int kind, int status)
{
    kvd_stats *s = &c->w->stats;
    if (is_failure(status)) {
        kvd_stat_add(&s->errors, 1);
        if (kind >= 0 && kind < KVD_CMD_COUNT)
            kvd_stat_add(&s->op_errors[kind], 1);
        if (status == KV_PROTOCOL || status == KV_FRAME_TOO_LARGE)
            kvd_stat_add(&s->protocol_errors, 1);
    }
}

/* Compares without an early exit, so the time taken does not tell how
 * many leading bytes of a guess were right. */
static int secret_equal(const void *given, size_t glen, const char *secret)
{
    const unsigned char *g = given, *s = (const unsigned char *)secret;
    size_t slen = strlen(secret);
    unsigned char diff = glen != slen;
    for (size_t i = 0; i < slen; i++)
        diff |= (unsigned char)(s[i] ^ (glen ? g[i % glen] : 0));
    return diff == 0;
}

int kvd_cmd_secret_is(const kvd_conn *c, const void *secret, size_t len)
{
    const char *pw = c->w->server->cfg->password;
    return !pw || secret_equal(secret, len, pw);
}

int kvd_cmd_auth_verify(kvd_conn *c, const void *secret, size_t len, int *fatal)
{
    kvd_server *s = c->w->server;
    const char *pw = s->cfg->password;
    uint64_t now = uv_now(&c->w->loop);
    uint32_t failures = 0;
    uint64_t unwarned = 0;
    if (!pw || secret_equal(secret, len, pw)) {
        c->sess.authed = 1;
        if (pw)
            kvd_auth_throttle_result(&s->auth_throttle, &c->peer_key, now, 1, NULL, NULL);
        return KV_OK;
    }
    /* A connection already authenticated stays so (as in Redis). */
    kvd_stat_add(&c->w->stats.auth_failures, 1);
    if (kvd_auth_throttle_result(&s->auth_throttle, &c->peer_key, now, 0, &failures, &unwarned))
        kvd_warn("%s: wrong AUTH secret (%u in a row from this address, whose AUTHs now wait up "
                 "to %d ms); %llu failed AUTHs from all addresses since the last such warning",
                 c->peer, failures, KVD_AUTH_MAX_MS, (unsigned long long)unwarned);
    if (++c->sess.auth_failures >= AUTH_MAX_FAILURES) {
        kvd_debug("%s: %d failed AUTH attempts, closing", c->peer, c->sess.auth_failures);
        *fatal = 1;
    }
    return KV_AUTH_FAILED;
}

int kvd_cmd_auth_check(kvd_conn *c, kvd_reply *r, const void *secret, size_t len, int *fatal)
{
    if (kvd_cmd_auth_verify(c, secret, len, fatal) == KV_OK) {
        r->ops->ok(r, "OK");
        return KV_OK;
    }
    r->ops->error(r, KV_AUTH_FAILED, "wrong password");
    return KV_AUTH_FAILED;
}

int kvd__cmd_run(kvd_exec *x)
{
    switch (x->cmd->kind) {
    case KVD_CMD_HELLO:
    case KVD_CMD_PING:
    case KVD_CMD_AUTH:
    case KVD_CMD_METRICS:
    case KVD_CMD_SNAPSHOT:
    case KVD_CMD_SNAPSHOT_READ:
    case KVD_CMD_ECHO:
    case KVD_CMD_SELECT:
    case KVD_CMD_QUIT:
    case KVD_CMD_CLIENT:
    case KVD_CMD_COMMAND:
    case KVD_CMD_INFO:
    case KVD_CMD_CONFIG:
    case KVD_CMD_READONLY:
    case KVD_CMD_READWRITE:
    case KVD_CMD_SESSION:
    case KVD_CMD_CLUSTER:
        return kvd__cmd_server(x);
    case KVD_CMD_MULTI:
    case KVD_CMD_EXEC:
    case KVD_CMD_DISCARD:
    case KVD_CMD_WATCH:
    case KVD_CMD_UNWATCH:
        return kvd__cmd_multi(x);
    case KVD_CMD_TTL:
    case KVD_CMD_EXPIRE:
    case KVD_CMD_PERSIST:
    case KVD_CMD_GETEX:
        return kvd__cmd_expire(x);
    case KVD_CMD_GET_AT:
    case KVD_CMD_MGET_AT:
    case KVD_CMD_HISTORY:
    case KVD_CMD_ROLLBACK:
    case KVD_CMD_COMPACT:
        return kvd__cmd_history(x);
    case KVD_CMD_WATCH_CHANGES:
    case KVD_CMD_WATCH_CANCEL:
        return kvd__cmd_watch(x);
    default:
        return kvd__cmd_kv(x);
    }
}

/* ops with the ones marked in[] turned into Unix times: a copy in *mem. */
static const kv_op *resolve_ops(const kv_op *ops, size_t n, const unsigned char *in,
                                uint64_t now, kv_op *mem)
{
    if (!in)
        return ops;
    for (size_t i = 0; i < n; i++) {
        mem[i] = ops[i];
        if (in[i] && ops[i].kind == KV_OP_SET && ops[i].expire_at_ms)
            mem[i].expire_at_ms = now + ops[i].expire_at_ms;
    }
    return mem;
}

int kvd_cmd_resolve_expiry(kv_store *st, const kvd_cmd *cmd, kvd_cmd *out, void **mem)
{
    *mem = NULL;
    *out = *cmd;
    if (cmd->exp_mode != KVD_EXP_IN && !cmd->then_in && !cmd->else_in)
        return KV_OK;
    uint64_t now = kv_clock_ms(st);
    if (cmd->exp_mode == KVD_EXP_IN) {
        out->exp_mode = KVD_EXP_AT;
        out->exp = now + cmd->exp; /* exp <= KVD_EXP_MAX: no overflow */
    }
    if (cmd->then_in || cmd->else_in) {
        kv_op *ops = malloc((cmd->nthen + cmd->nelse + 1) * sizeof *ops);
        if (!ops)
            return KV_NO_MEMORY;
        out->then_ops = resolve_ops(cmd->then_ops, cmd->nthen, cmd->then_in, now, ops);
        out->else_ops = resolve_ops(cmd->else_ops, cmd->nelse, cmd->else_in, now,
                                    ops + cmd->nthen);
        out->then_in = out->else_in = NULL;
        *mem = ops;
    }
    return KV_OK;
}

int kvd_cmd_refuse(kvd_conn *c, int kind, kvd_reply *r, int status, const char *detail)
{
    count(c, kind, status);
    kvd__multi_refused(&c->sess);
    if (r->ops->error(r, status, detail) != KV_OK || r->ops->finish(r) != KV_OK)
        return -1;
    return 0;
}

int kvd_cmd_execute(kvd_conn *c, const kvd_cmd *cmd, kvd_reply *r, uint64_t *clock)
{
    kvd_server *s = c->w->server;
    kvd_exec x = {.c = c, .srv = s, .sess = &c->sess, .cmd = cmd, .r = r, .st = s->store};
    int kind = cmd->kind;
    int rc;
    kvd_cmd resolved;
    void *mem = NULL;
    if (kvd_cmd_needs_auth(c, kind)) {
        rc = r->ops->error(r, KV_AUTH_REQUIRED, "authenticate with AUTH first");
    } else if (c->sess.in_multi && !(kvd_cmd_flags(kind) & KVD_CF_NOQUEUE)) {
        rc = kvd__multi_queue(&x); /* times from now count from EXEC */
    } else if (kvd_cmd_resolve_expiry(s->store, cmd, &resolved, &mem) != KV_OK) {
        rc = r->ops->error(r, KV_NO_MEMORY, "out of memory");
    } else {
        x.cmd = &resolved; /* a cluster's entry carries the resolved times */
        if (s->repl && (kvd_cmd_flags(kind) & KVD_CF_WRITE))
            rc = kvd_repl_submit(&x); /* run on every node once committed */
        else if (s->repl && (kvd_cmd_flags(kind) & KVD_CF_READ) && !c->sess.stale_reads)
            rc = kvd_repl_read(&x); /* run here once a quorum confirms the leader */
        else
            rc = kvd__cmd_run(&x);
    }
    free(mem);
    if (rc < 0)
        return -1;
    rc = r->ops->finish(r);
    if (rc != KV_OK) {
        /* The result could not be encoded (out of memory, or over 4 GiB):
         * answer that instead. */
        r->ops->rewind(r);
        r->ops->error(r, rc, rc == KV_FRAME_TOO_LARGE ? "result too large" : kv_strerror(rc));
        if (r->ops->finish(r) != KV_OK)
            return -1;
    }
    /* Only a write that was made waits: one the log refused (NO_SPACE, IO)
     * took no revision and is answered with its error at once. */
    if (s->durable && r->status == KV_OK && (kvd_cmd_flags(kind) & KVD_CF_WRITE)) {
        c->batch_rev = kv_revision(s->store);
        c->w->log_dirty = 1;
    }
    count(c, kind, r->status);
    kvd_stats *st = &c->w->stats;
    kvd_stat_add(&st->requests[kind], 1);
    kvd_worker *w = c->w;
    if (w->batch_n == KVD_BATCH_TIMED)
        kvd_cmd_time_batch(w, clock);
    w->batch_kind[w->batch_n++] = (uint8_t)kind;
    return x.fatal;
}

_Static_assert(KVD_CMD_COUNT <= 256, "batch_kind holds a command kind in a byte");

void kvd_cmd_time_batch(kvd_worker *w, uint64_t *clock)
{
    if (w->batch_n == 0)
        return;
    uint64_t now = uv_hrtime();
    uint64_t each = (now - *clock) / w->batch_n;
    for (unsigned i = 0; i < w->batch_n; i++)
        kvd_stats_record(&w->stats, w->batch_kind[i], each);
    w->batch_n = 0;
    *clock = now;
}

void kvd_cmd_protocol_warn(kvd_conn *c, const char *what)
{
    kvd_server *s = c->w->server;
    uint64_t now = uv_hrtime() / 1000000 + 1; /* never 0 */
    atomic_fetch_add_explicit(&s->proto_unwarned, 1, memory_order_relaxed);
    uint64_t last = atomic_load_explicit(&s->proto_warn_ms, memory_order_relaxed);
    if (last != 0 && now - last < KVD_PROTO_WARN_EVERY_MS)
        return;
    /* One thread wins the turn; the others only count. */
    if (!atomic_compare_exchange_strong(&s->proto_warn_ms, &last, now))
        return;
    uint64_t n = atomic_exchange_explicit(&s->proto_unwarned, 0, memory_order_relaxed);
    kvd_warn("%s: protocol error: %s; %llu protocol errors from all peers in the last %d s "
             "(at most one such warning per %d s)",
             c->peer, what, (unsigned long long)n,
             last ? (int)((now - last + 999) / 1000) : KVD_PROTO_WARN_EVERY_MS / 1000,
             KVD_PROTO_WARN_EVERY_MS / 1000);
}
