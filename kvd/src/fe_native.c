/*
 * fe_native.c - the front-end for kvd's own protocol (docs/protocol.md):
 * length-prefixed MessagePack frames in, [id, status, result] frames out.
 *
 * Input: frames are cut by their length prefix against the frame limit
 * (lower before AUTH when a password is set), decoded by the codec
 * (kv_proto_request_decode: keys and values point into the input, arrays
 * live in the connection's arena) and turned into a kvd_cmd. Output: the
 * reply interface, implemented with the codec's streaming writers; the
 * bytes on the wire are those of the protocol's fixed result shapes.
 */
#include <string.h>

#include "cmd.h"
#include "conn.h"
#include "frontend.h"
#include "log.h"
#include "watchers.h"

/* ---- replies ------------------------------------------------------------- */

enum { NOTHING = 0, VALUE = 1, DONE = 2, PAGE = 3 };

/* Starts the [id, 0, ...] frame before the first element. */
static int begin(kvd_reply *r)
{
    if (r->started == NOTHING) {
        r->started = VALUE;
        int rc = kv_proto_writer_begin(&r->u.w, r->out, r->id, 64);
        if (rc != KV_OK && !r->err)
            r->err = rc;
    }
    if (r->started != VALUE && !r->err)
        r->err = KV_INTERNAL; /* a second value after a complete reply */
    return r->err;
}

#define WRITE(r, call) (begin(r) ? (r)->err : ((r)->err = (call)))

static int n_error(kvd_reply *r, int status, const char *detail)
{
    if (r->started != NOTHING) {
        /* A failure after part of a result: drop the part. */
        r->out->len = r->mark;
        r->started = NOTHING;
    }
    r->status = status;
    r->started = DONE;
    int rc = kv_proto_resp_status(r->out, r->id, status, detail);
    if (rc != KV_OK)
        r->err = rc;
    return rc;
}

static int n_nil(kvd_reply *r) { return WRITE(r, kv_proto_writer_nil(&r->u.w)); }
static int n_ok(kvd_reply *r, const char *word)
{
    (void)word; /* success is status 0 with a nil result */
    return n_nil(r);
}
static int n_integer(kvd_reply *r, int64_t v) { return WRITE(r, kv_proto_writer_int(&r->u.w, v)); }
static int n_uinteger(kvd_reply *r, uint64_t v)
{
    return WRITE(r, kv_proto_writer_uint(&r->u.w, v));
}
static int n_dbl(kvd_reply *r, double v) { return WRITE(r, kv_proto_writer_double(&r->u.w, v)); }
static int n_boolean(kvd_reply *r, int v) { return WRITE(r, kv_proto_writer_bool(&r->u.w, v)); }
static int n_bytes(kvd_reply *r, const void *p, size_t n)
{
    return WRITE(r, kv_proto_writer_bin(&r->u.w, p, n));
}
static int n_text(kvd_reply *r, const char *s, size_t n)
{
    return WRITE(r, kv_proto_writer_strn(&r->u.w, s, n));
}
static int n_word(kvd_reply *r, const char *s) { return n_text(r, s, strlen(s)); }
static int n_array(kvd_reply *r, size_t n) { return WRITE(r, kv_proto_writer_array(&r->u.w, n)); }
static int n_map(kvd_reply *r, size_t n) { return WRITE(r, kv_proto_writer_map(&r->u.w, n)); }

static int n_versioned(kvd_reply *r, const void *p, size_t n, uint64_t version)
{
    n_array(r, 2);
    n_bytes(r, p, n);
    return n_uinteger(r, version);
}

static int n_written(kvd_reply *r, uint64_t revision) { return n_uinteger(r, revision); }

static int n_deleted(kvd_reply *r, uint64_t n, uint64_t revision)
{
    n_array(r, 2);
    n_uinteger(r, n);
    return n_uinteger(r, revision);
}

/* TTL: [expire_at_ms, ms left], both 0 without an expiry. */
static int n_expiry(kvd_reply *r, unsigned form, int found, uint64_t expire_at_ms,
                    uint64_t now_ms)
{
    (void)form;
    if (!found)
        return n_error(r, KV_NOT_FOUND, NULL);
    n_array(r, 2);
    n_uinteger(r, expire_at_ms);
    return n_uinteger(r, expire_at_ms > now_ms ? expire_at_ms - now_ms : 0);
}

/* EXPIRE, PERSIST: the key's version after it, or the outcome. */
static int n_updated(kvd_reply *r, int status, int changed, uint64_t revision)
{
    (void)changed;
    return status == KV_OK ? n_uinteger(r, revision) : n_error(r, status, NULL);
}

/* A page is a whole reply of its own: [next_cursor, [entries...]]. */
static int n_page_begin(kvd_reply *r, int keys_only, int with_cursor)
{
    (void)with_cursor; /* the protocol's SCAN always has one */
    if (r->started != NOTHING)
        return r->err = KV_INTERNAL;
    r->started = PAGE;
    r->keys_only = keys_only;
    int rc = kv_proto_resp_scan_begin(r->out, r->id, &r->u.scan.w);
    if (rc != KV_OK)
        r->err = rc;
    return rc;
}

static size_t n_page_size(kvd_reply *r) { return kv_proto_resp_scan_size(&r->u.scan.w); }

static size_t n_page_entry_size(kvd_reply *r, size_t klen, size_t vlen, uint64_t version)
{
    return kv_proto_resp_scan_entry_size(klen, vlen, version, r->keys_only);
}

static int n_page_add(kvd_reply *r, const void *k, size_t klen, const void *v, size_t vlen,
                      uint64_t version)
{
    if (r->err)
        return r->err;
    r->err = r->keys_only ? kv_proto_resp_scan_add_key(&r->u.scan.w, k, klen, version)
                          : kv_proto_resp_scan_add(&r->u.scan.w, k, klen, v, vlen, version);
    return r->err;
}

static void n_page_save(kvd_reply *r) { r->u.scan.saved = r->u.scan.w; }
static void n_page_restore(kvd_reply *r) { kv_proto_resp_scan_rewind(&r->u.scan.w, &r->u.scan.saved); }

static int n_page_end(kvd_reply *r, uint64_t next_cursor)
{
    if (r->err) {
        kv_proto_resp_scan_abort(&r->u.scan.w);
        return r->err;
    }
    r->started = DONE;
    return r->err = kv_proto_resp_scan_end(&r->u.scan.w, next_cursor);
}

static void n_rewind(kvd_reply *r)
{
    r->out->len = r->mark;
    r->started = NOTHING;
    r->err = KV_OK;
    r->status = KV_OK;
}

static int n_finish(kvd_reply *r)
{
    if (r->none)
        return KV_OK;
    if (r->err) {
        r->out->len = r->mark;
        r->started = NOTHING;
        return r->err;
    }
    if (r->started == NOTHING)
        n_nil(r); /* success with nothing to say */
    if (r->started == VALUE) {
        r->started = DONE;
        r->err = kv_proto_writer_end(&r->u.w);
    } else if (r->started == PAGE) {
        kv_proto_resp_scan_abort(&r->u.scan.w);
        r->err = KV_INTERNAL;
    }
    if (r->err)
        r->out->len = r->mark;
    return r->err;
}

static const kvd_reply_ops native_reply = {
    .error = n_error, .ok = n_ok, .nil = n_nil, .nil_array = n_nil, .integer = n_integer,
    .uinteger = n_uinteger, .dbl = n_dbl, .boolean = n_boolean, .bytes = n_bytes,
    .text = n_text, .word = n_word, .array = n_array, .map = n_map,
    .versioned = n_versioned, .written = n_written, .deleted = n_deleted,
    .expiry = n_expiry, .updated = n_updated, .page_begin = n_page_begin, .page_size = n_page_size,
    .page_entry_size = n_page_entry_size, .page_add = n_page_add,
    .page_save = n_page_save, .page_restore = n_page_restore, .page_end = n_page_end,
    .rewind = n_rewind, .finish = n_finish,
};

static void native_reply_init(kvd_conn *c, kvd_reply *r, uint64_t id)
{
    kvd_reply_init(r, &native_reply, &c->out, id);
}

/* ---- input ------------------------------------------------------------------ */

static size_t frame_limit(const kvd_conn *c)
{
    return kvd_cmd_request_limit(c, c->sess.authed);
}

static int native_fatal(kvd_conn *c, const uint8_t *partial, size_t have, int status,
                        const char *detail)
{
    uint64_t id = 0;
    if (partial && have > KV_PROTO_HEADER_SIZE)
        kv_proto_peek_id(partial + KV_PROTO_HEADER_SIZE, have - KV_PROTO_HEADER_SIZE, &id);
    kvd_reply r;
    native_reply_init(c, &r, id);
    c->fatal = 1;
    return kvd_cmd_refuse(c, -1, &r, status, detail);
}

static int native_split(kvd_conn *c, const uint8_t *p, size_t len, size_t *msg_len)
{
    size_t boff, blen, limit = frame_limit(c);
    kv_proto_split_result r = kv_proto_frame_split(p, len, limit, &boff, &blen);
    if (r == KV_PROTO_NEED_MORE)
        return KVD_MSG_MORE;
    if (r == KV_PROTO_FRAME) {
        *msg_len = boff + blen;
        return KVD_MSG_READY;
    }
    char msg[128];
    if (r == KV_PROTO_TOO_LARGE)
        snprintf(msg, sizeof msg, "frame of %zu bytes exceeds the limit of %zu bytes", blen, limit);
    else
        snprintf(msg, sizeof msg, "frame length 0");
    char what[192];
    snprintf(what, sizeof what, "%s, closing", msg); /* our text: sizes only */
    kvd_cmd_protocol_warn(c, what);
    if (native_fatal(c, NULL, 0, r == KV_PROTO_TOO_LARGE ? KV_FRAME_TOO_LARGE : KV_PROTOCOL,
                     msg) != 0)
        kvd_conn_close(c);
    return KVD_MSG_FATAL;
}

static size_t native_want(const kvd_conn *c, const uint8_t *p, size_t len)
{
    (void)c;
    if (len < KV_PROTO_HEADER_SIZE)
        return 0;
    return KV_PROTO_HEADER_SIZE + (size_t)kv_proto_read_u32(p);
}

/* The keys of the next GETs and SETs in the buffer, to kvd_prefetch. */
static size_t native_prefetch(kvd_conn *c, const uint8_t *p, size_t len)
{
    kv_key keys[KVD_PREFETCH_MAX];
    bool is_set[KVD_PREFETCH_MAX];
    size_t n = kv_proto_peek_keys(p, len, frame_limit(c), keys, is_set, KVD_PREFETCH_MAX);
    if (n > 1)
        kvd_prefetch(c->w->server->store, keys, is_set, n);
    return n > 1 ? n - 1 : 0;
}

/* The command kind of a protocol op: the same number up to CLUSTER. */
static int kind_of(int op)
{
    switch (op) {
    case KV_PROTO_TTL: return KVD_CMD_TTL;
    case KV_PROTO_EXPIRE: return KVD_CMD_EXPIRE;
    case KV_PROTO_PERSIST: return KVD_CMD_PERSIST;
    case KV_PROTO_GET_AT: return KVD_CMD_GET_AT;
    case KV_PROTO_MGET_AT: return KVD_CMD_MGET_AT;
    case KV_PROTO_SCAN_AT: return KVD_CMD_SCAN_AT;
    case KV_PROTO_HISTORY: return KVD_CMD_HISTORY;
    case KV_PROTO_ROLLBACK: return KVD_CMD_ROLLBACK;
    case KV_PROTO_COMPACT: return KVD_CMD_COMPACT;
    case KV_PROTO_WATCH: return KVD_CMD_WATCH_CHANGES;
    case KV_PROTO_CANCEL: return KVD_CMD_WATCH_CANCEL;
    case KV_PROTO_SESSION: return KVD_CMD_SESSION;
    case KV_PROTO_CONSISTENCY: return KVD_CMD_READONLY; /* or READWRITE: to_cmd */
    default: return op;
    }
}

/* The decoded request as a command. */
static void to_cmd(const kv_proto_request *q, size_t size, kvd_cmd *cmd)
{
    memset(cmd, 0, sizeof *cmd);
    cmd->kind = kind_of(q->op);
    cmd->id = q->id;
    cmd->size = size;
    cmd->key = q->key;
    cmd->value = q->value;
    switch (q->op) {
    case KV_PROTO_HELLO:
        cmd->a = q->min_version;
        cmd->b = q->max_version;
        cmd->value = (kv_key){0};
        break;
    case KV_PROTO_PING:
        cmd->has_key = q->has_payload;
        cmd->key = q->payload;
        break;
    case KV_PROTO_AUTH:
        cmd->key = q->secret;
        break;
    case KV_PROTO_SCAN:
        cmd->value = (kv_key){0}; /* no pattern */
        cmd->a = q->cursor;
        cmd->flags = q->keys_only ? 1u : 0u;
        break;
    case KV_PROTO_SNAPSHOT_READ:
        cmd->a = q->revision;
        cmd->b = q->offset;
        break;
    case KV_PROTO_CLUSTER:
        cmd->a = q->revision; /* subcommand in key, address in value */
        break;
    case KV_PROTO_EXPIRE:
        cmd->flags = q->expire_flags;
        break;
    case KV_PROTO_SCAN_AT:
        cmd->value = (kv_key){0}; /* no pattern */
        cmd->a = q->cursor;
        cmd->flags = q->keys_only ? 1u : 0u;
        break;
    case KV_PROTO_HISTORY:
        cmd->min_rev = q->min_revision;
        break;
    case KV_PROTO_ROLLBACK:
        cmd->flags = q->has_prefix ? KVD_ROLLBACK_PREFIX : 0u;
        cmd->expected = q->unchanged_since;
        break;
    case KV_PROTO_WATCH:
        cmd->flags = q->has_prefix ? KVD_WATCH_PREFIX : 0u;
        break;
    case KV_PROTO_CANCEL:
        cmd->a = q->watch_id;
        break;
    case KV_PROTO_SESSION:
        cmd->a = q->client_id;
        break;
    case KV_PROTO_CONSISTENCY:
        cmd->kind = q->consistency == KV_PROTO_READ_SERIALIZABLE ? KVD_CMD_READONLY
                                                                 : KVD_CMD_READWRITE;
        break;
    default:
        break;
    }
    if (q->has_expiry && q->op != KV_PROTO_TXN) {
        cmd->exp_mode = q->expiry_mode == KV_PROTO_EXPIRY_IN ? KVD_EXP_IN : KVD_EXP_AT;
        cmd->exp = q->expiry_ms;
    }
    cmd->then_in = q->then_in;
    cmd->else_in = q->else_in;
    cmd->has_expected = q->has_expected;
    if (q->op != KV_PROTO_ROLLBACK)
        cmd->expected = q->expected;
    cmd->rev = q->revision;
    cmd->keys = q->keys;
    cmd->nkeys = q->nkeys;
    cmd->pairs = q->pairs;
    cmd->npairs = q->npairs;
    cmd->cmps = q->cmps;
    cmd->ncmps = q->ncmps;
    cmd->then_ops = q->then_ops;
    cmd->nthen = q->nthen;
    cmd->else_ops = q->else_ops;
    cmd->nelse = q->nelse;
    cmd->limit = q->limit;
}

static int native_run(kvd_conn *c, const uint8_t *msg, size_t len, uint64_t *clock)
{
    const kvd_config *cfg = c->w->server->cfg;
    kv_proto_limits lim = {cfg->max_key_size, cfg->max_value_size};
    const uint8_t *body = msg + KV_PROTO_HEADER_SIZE;
    size_t blen = len - KV_PROTO_HEADER_SIZE;
    kv_proto_request req;
    kvd_reply r;
    kv_proto_arena_reset(&c->arena);
    int rc = kv_proto_request_decode(body, blen, &lim, &c->arena, &req);
    if (rc == KV_OK && req.op == KV_PROTO_SCAN && req.has_keys_only &&
        c->sess.native_version < 2 && !kvd_cmd_needs_auth(c, req.op)) {
        rc = KV_PROTOCOL;
        req.error = "SCAN's keys_only needs protocol version 2 (HELLO first)";
    }
    if (rc == KV_OK && c->sess.native_version < KV_PROTO_EXPIRY_VERSION &&
        !kvd_cmd_needs_auth(c, kind_of(req.op))) {
        /* Key expiry came with version 4: what an older version lacks is
         * refused as a server of that version refuses it. */
        if (req.op == KV_PROTO_TTL || req.op == KV_PROTO_EXPIRE || req.op == KV_PROTO_PERSIST) {
            rc = KV_UNSUPPORTED;
            req.error = "TTL, EXPIRE and PERSIST need protocol version 4 (HELLO first)";
        } else if (req.has_expiry) {
            rc = KV_PROTOCOL;
            req.error = "an expiry needs protocol version 4 (HELLO first)";
        }
    }
    if (rc == KV_OK && c->sess.native_version < KV_PROTO_HISTORY_VERSION &&
        req.op >= KV_PROTO_GET_AT && req.op <= KV_PROTO_COMPACT &&
        !kvd_cmd_needs_auth(c, kind_of(req.op))) {
        rc = KV_UNSUPPORTED;
        req.error = "GET_AT, MGET_AT, SCAN_AT, HISTORY, ROLLBACK and COMPACT need protocol "
                    "version 5 (HELLO first)";
    }
    if (rc == KV_OK && c->sess.native_version < KV_PROTO_WATCH_VERSION &&
        (req.op == KV_PROTO_WATCH || req.op == KV_PROTO_CANCEL) &&
        !kvd_cmd_needs_auth(c, kind_of(req.op))) {
        rc = KV_UNSUPPORTED;
        req.error = "WATCH and CANCEL need protocol version 6 (HELLO first)";
    }
    if (rc == KV_OK && c->sess.native_version < KV_PROTO_SESSION_VERSION &&
        (req.op == KV_PROTO_SESSION || req.op == KV_PROTO_CONSISTENCY) &&
        !kvd_cmd_needs_auth(c, kind_of(req.op))) {
        rc = KV_UNSUPPORTED;
        req.error = "SESSION and CONSISTENCY need protocol version 7 (HELLO first)";
    }
    if (rc != KV_OK) {
        *clock = uv_hrtime();
        kvd_debug("%s: bad request (%s): %s", c->peer, kv_status_name(rc),
                  req.error ? req.error : "");
        if (!req.has_id) {
            /* Not even an id: the peer is not speaking our protocol. */
            kvd_cmd_protocol_warn(c, "request without a readable id, closing");
            return native_fatal(c, NULL, 0, rc, req.error ? req.error : kv_strerror(rc)) != 0
                       ? -1 : 1;
        }
        native_reply_init(c, &r, req.id);
        /* Before AUTH only HELLO, PING and AUTH are looked at: anything
         * else is told to authenticate, however malformed. */
        if (kvd_cmd_needs_auth(c, kind_of(req.op)))
            return kvd_cmd_refuse(c, kind_of(req.op), &r, KV_AUTH_REQUIRED,
                                  "authenticate with AUTH first");
        if (rc == KV_PROTOCOL)
            kvd_cmd_protocol_warn(c, "malformed request (answered PROTOCOL, connection kept)");
        return kvd_cmd_refuse(c, kind_of(req.op), &r, rc,
                              req.error ? req.error : kv_strerror(rc));
    }
    kvd_cmd cmd;
    to_cmd(&req, blen, &cmd);
    native_reply_init(c, &r, req.id);
    return kvd_cmd_execute(c, &cmd, &r, clock);
}

/* ---- watches ------------------------------------------------------------------ */

/* Event frames (docs/protocol.md, WATCH): events[0..n) in as many frames
 * as the response limit needs, each ending where the events of one
 * change end when it can. */
static int native_watch_events(kvd_conn *c, const kvd_watcher *wt, const kv_event *ev,
                               size_t n, uint64_t next_revision)
{
    size_t limit = c->w->server->max_response, mark = c->out.len;
    size_t i = 0;
    while (i < n) {
        size_t j = i, size = KV_PROTO_EVENT_FRAME_OVERHEAD;
        do {
            size += kv_proto_event_size(&ev[j]);
            j++;
        } while (j < n && size + kv_proto_event_size(&ev[j]) <= limit);
        /* a frame that stops inside a change resumes at that change */
        uint64_t next = j == n ? next_revision
                        : ev[j].revision == ev[j - 1].revision ? ev[j - 1].revision
                                                               : ev[j].revision;
        int rc = kv_proto_event_frame(&c->out, wt->id, ev + i, j - i, next);
        if (rc != KV_OK) {
            c->out.len = mark;
            return rc;
        }
        i = j;
    }
    return KV_OK;
}

static int native_watch_end(kvd_conn *c, const kvd_watcher *wt, int status,
                            uint64_t next_revision)
{
    return kv_proto_event_end(&c->out, wt->id, status, next_revision);
}

const kvd_frontend kvd_fe_native = {
    .name = "kvd",
    .protocol = KVD_PROTOCOL_NATIVE,
    .split = native_split,
    .run = native_run,
    .want = native_want,
    .reply_init = native_reply_init,
    .fatal = native_fatal,
    .prefetch = native_prefetch,
    .watch_events = native_watch_events,
    .watch_end = native_watch_end,
};
