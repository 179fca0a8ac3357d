/*
 * dispatch.c - request -> libkv call -> encoded response (see dispatch.h).
 *
 * All bytes go through the codec (kv_proto.h); nothing here encodes by
 * hand. Decoded keys and values point into the connection's input buffer
 * and decoded arrays live in its arena, both valid for this call only.
 * GET answers straight from the store's memory with kv_get_with (one copy:
 * store -> output buffer); MGET (kv_mget_with) and SCAN stream their
 * entries into the response the same way.
 */
#include "dispatch.h"

#include <errno.h>
#include <fcntl.h>
#include <stdbool.h>
#include <stdio.h>
#include <sys/stat.h>
#include <unistd.h>
#include <stdlib.h>
#include <string.h>

#include "conn_internal.h"
#include "log.h"
#include "metrics.h"

#define KVD_STR_(x) #x
#define KVD_STR(x) KVD_STR_(x)

#define AUTH_MAX_FAILURES 5
#define SCAN_DEFAULT_LIMIT 100
#define SCAN_MAX_LIMIT 10000

static int is_failure(int status)
{
    return status != KV_OK && status != KV_NOT_FOUND && status != KV_VERSION_MISMATCH;
}

/* Queues [id, status, detail]; returns the status for the stats. */
static int reply_status(kvd_conn *c, uint64_t id, int status, const char *detail)
{
    if (kv_proto_resp_status(&c->out, id, status, detail) != KV_OK)
        return -1;
    return status;
}

/* An encoder failed (out of memory, or a result over 4 GiB). */
static int reply_encode_failed(kvd_conn *c, uint64_t id, int rc)
{
    return reply_status(c, id, rc, rc == KV_FRAME_TOO_LARGE ? "result too large" : kv_strerror(rc));
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

/* ---- ops --------------------------------------------------------------- */

static int op_hello(kvd_conn *c, const kv_proto_request *r)
{
    uint64_t lo = r->min_version > KV_PROTO_MIN_VERSION ? r->min_version : KV_PROTO_MIN_VERSION;
    uint64_t hi = r->max_version < KV_PROTO_MAX_VERSION ? r->max_version : KV_PROTO_MAX_VERSION;
    if (lo > hi)
        return reply_status(c, r->id, KV_UNSUPPORTED,
                            "no common protocol version (kvd speaks " KVD_STR(KV_PROTO_MIN_VERSION)
                            ".." KVD_STR(KV_PROTO_MAX_VERSION) ")");
    int rc = kv_proto_resp_hello(&c->out, r->id, hi, "kvd", KV_VERSION_STRING);
    if (rc != KV_OK)
        return reply_encode_failed(c, r->id, rc);
    c->proto_version = (int)hi;
    return KV_OK;
}

static int op_ping(kvd_conn *c, const kv_proto_request *r)
{
    int rc = r->has_payload ? kv_proto_resp_ping(&c->out, r->id, r->payload.data, r->payload.len)
                            : kv_proto_resp_status(&c->out, r->id, KV_OK, NULL);
    return rc == KV_OK ? KV_OK : reply_encode_failed(c, r->id, rc);
}

int kvd_dispatch_auth_check(kvd_conn *c, uint64_t id, const void *secret, size_t len, int *fatal)
{
    kvd_server *s = c->w->server;
    const char *pw = s->cfg->password;
    uint64_t now = uv_now(&c->w->loop);
    uint32_t failures = 0;
    uint64_t unwarned = 0;
    if (!pw || secret_equal(secret, len, pw)) {
        c->authed = 1;
        if (pw)
            kvd_auth_throttle_result(&s->auth_throttle, &c->peer_key, now, 1, NULL, NULL);
        return reply_status(c, id, KV_OK, NULL);
    }
    c->authed = 0;
    kvd_stat_add(&c->w->stats.auth_failures, 1);
    if (kvd_auth_throttle_result(&s->auth_throttle, &c->peer_key, now, 0, &failures, &unwarned))
        kvd_warn("%s: wrong AUTH secret (%u in a row from this address, whose AUTHs now wait up "
                 "to %d ms); %llu failed AUTHs from all addresses since the last such warning",
                 c->peer, failures, KVD_AUTH_MAX_MS, (unsigned long long)unwarned);
    if (++c->auth_failures >= AUTH_MAX_FAILURES) {
        kvd_debug("%s: %d failed AUTH attempts, closing", c->peer, c->auth_failures);
        *fatal = 1;
    }
    return reply_status(c, id, KV_AUTH_FAILED, "wrong password");
}

/* With a password, an AUTH from an address with recent failures waits for
 * its turn (auth_throttle.h): the connection holds it, then checks it. */
static int op_auth(kvd_conn *c, const kv_proto_request *r, int *fatal)
{
    kvd_server *s = c->w->server;
    if (s->cfg->password) {
        uint64_t delay = kvd_auth_throttle_admit(&s->auth_throttle, &c->peer_key,
                                                 uv_now(&c->w->loop));
        if (delay > 0) {
            kvd_stat_add(&c->w->stats.auth_throttled, 1);
            return kvd__conn_auth_defer(c, r->id, r->secret.data, r->secret.len, delay) == 0 ? KV_OK
                                                                                          : -1;
        }
    }
    return kvd_dispatch_auth_check(c, r->id, r->secret.data, r->secret.len, fatal);
}

typedef struct get_ctx {
    kv_proto_buf *out;
    uint64_t id;
    int rc;
} get_ctx;

static void get_cb(void *ctx, const void *val, size_t vlen, uint64_t version)
{
    get_ctx *g = ctx;
    g->rc = kv_proto_resp_value(g->out, g->id, val, vlen, version);
}

static int op_get(kvd_conn *c, kv_store *st, const kv_proto_request *r)
{
    get_ctx g = {&c->out, r->id, KV_OK};
    int rc = kv_get_with(st, r->key.data, r->key.len, get_cb, &g);
    if (rc == KV_OK && g.rc == KV_OK)
        return KV_OK;
    if (rc == KV_OK)
        return reply_encode_failed(c, r->id, g.rc);
    return reply_status(c, r->id, rc, rc == KV_NOT_FOUND ? NULL : kv_strerror(rc));
}

/* ---- MGET: streamed ------------------------------------------------------
 * The answer is encoded straight from kv_mget_with's snapshot (no copies).
 * An answer for several keys whose values add up to more than max_response
 * (counting 16 bytes per key for its framing) is dropped and the client is
 * told to ask for fewer; one key is always answered. An amplifying request
 * costs at most one value more than the limit. */

typedef struct mget_ctx {
    kv_proto_mget_writer w;
    int rc;
    size_t bytes;     /* values + 16 per key so far */
    size_t max_bytes; /* several keys only within this */
    size_t nkeys;
    bool too_large;
} mget_ctx;

static void mget_cb(void *ctx, size_t i, const void *val, size_t vlen, uint64_t version)
{
    (void)i;
    mget_ctx *m = ctx;
    m->bytes += vlen + 16;
    if (m->nkeys > 1 && m->bytes > m->max_bytes)
        m->too_large = true;
    if (m->rc == KV_OK && !m->too_large)
        m->rc = kv_proto_resp_mget_add(&m->w, val, vlen, version);
}

static int too_large(kvd_conn *c, uint64_t id)
{
    char msg[128];
    snprintf(msg, sizeof msg, "result would exceed %zu bytes; ask for fewer keys",
             c->w->server->max_response);
    return reply_status(c, id, KV_INVALID_ARGUMENT, msg);
}

static int op_mget(kvd_conn *c, kv_store *st, const kv_proto_request *r)
{
    mget_ctx m = {.rc = KV_OK, .max_bytes = c->w->server->max_response, .nkeys = r->nkeys};
    int rc = kv_proto_resp_mget_begin(&c->out, r->id, r->nkeys, &m.w);
    if (rc != KV_OK)
        return reply_encode_failed(c, r->id, rc);
    rc = kv_mget_with(st, r->keys, r->nkeys, mget_cb, &m);
    if (rc != KV_OK) { /* a bad key: nothing was read */
        kv_proto_resp_mget_abort(&m.w);
        return reply_status(c, r->id, rc, kv_strerror(rc));
    }
    if (m.too_large) {
        kv_proto_resp_mget_abort(&m.w);
        return too_large(c, r->id);
    }
    if (m.rc == KV_OK && (rc = kv_proto_resp_mget_end(&m.w)) == KV_OK)
        return KV_OK;
    kv_proto_resp_mget_abort(&m.w);
    return reply_encode_failed(c, r->id, m.rc != KV_OK ? m.rc : rc);
}

/* ---- TXN result size guard -------------------------------------------------
 * A conditional transaction copies every value its GETs read before
 * anything is encoded, so the size of those values is checked first with
 * zero-copy lookups. Values can change between the check and the
 * transaction; the check bounds the damage of an amplifying request, it
 * is not a transaction. */

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

static int reply_version(kvd_conn *c, uint64_t id, int rc, uint64_t version)
{
    if (rc != KV_OK)
        return reply_status(c, id, rc, rc == KV_VERSION_MISMATCH ? NULL : kv_strerror(rc));
    rc = kv_proto_resp_version(&c->out, id, version);
    return rc == KV_OK ? KV_OK : reply_encode_failed(c, id, rc);
}

static int op_set(kvd_conn *c, kv_store *st, const kv_proto_request *r)
{
    uint64_t version = 0;
    int rc = r->has_expected
                 ? kv_set_if(st, r->key.data, r->key.len, r->value.data, r->value.len,
                             r->expected, &version)
                 : kv_set(st, r->key.data, r->key.len, r->value.data, r->value.len, &version);
    return reply_version(c, r->id, rc, version);
}

static int op_mset(kvd_conn *c, kv_store *st, const kv_proto_request *r)
{
    uint64_t version = 0;
    int rc = kv_mset(st, r->pairs, r->npairs, &version);
    return reply_version(c, r->id, rc, version);
}

static int op_del(kvd_conn *c, kv_store *st, const kv_proto_request *r)
{
    size_t deleted = 0;
    uint64_t version = 0;
    int rc = kv_mdelete(st, r->keys, r->nkeys, &deleted, &version);
    if (rc != KV_OK)
        return reply_status(c, r->id, rc, kv_strerror(rc));
    if (deleted == 0)
        version = 0;
    rc = kv_proto_resp_del(&c->out, r->id, deleted, version);
    return rc == KV_OK ? KV_OK : reply_encode_failed(c, r->id, rc);
}

static int op_txn(kvd_conn *c, kv_store *st, const kv_proto_request *r)
{
    /* A GET may also read a value this TXN sets: those are in the frame. */
    size_t limit = c->w->server->max_response, frame = c->frame_len;
    if (ops_get_size(st, r->then_ops, r->nthen, limit) + frame > limit ||
        ops_get_size(st, r->else_ops, r->nelse, limit) + frame > limit)
        return too_large(c, r->id);
    kv_txn_result res;
    int rc = kv_txn_cond(st, r->cmps, r->ncmps, r->then_ops, r->nthen, r->else_ops, r->nelse, &res);
    if (rc != KV_OK)
        return reply_status(c, r->id, rc, kv_strerror(rc));
    rc = kv_proto_resp_txn(&c->out, r->id, &res);
    kv_txn_result_free(&res);
    return rc == KV_OK ? KV_OK : reply_encode_failed(c, r->id, rc);
}

/* ---- SCAN: pages within the response limit ---------------------------------
 * A page is built one cursor position at a time (kv_scan with limit 1),
 * so it can stop BEFORE an entry that would take it over max_response:
 * that entry's position becomes next_cursor and it opens the next page
 * (kv_scan's own stop request resumes after the key, which would lose
 * it). The first position of a page is always taken, so every page makes
 * progress; it is over the limit only when that one entry alone is. One
 * kv_scan call can pass several keys when their 64-bit hashes are equal
 * (it never stops between them); such a group is taken or dropped whole,
 * rewinding the writer. */

typedef struct scan_ctx {
    kv_proto_scan_writer w;
    int rc;
    bool keys_only;
    bool take_all;    /* the page is empty: take this position whatever its size */
    bool full;        /* an entry of this position did not fit */
    size_t max_bytes; /* the page's body stays within this */
} scan_ctx;

static int scan_cb(void *ctx, const void *key, size_t klen, const void *val, size_t vlen,
                   uint64_t version)
{
    scan_ctx *sc = ctx;
    if (sc->rc != KV_OK || sc->full)
        return 1;
    size_t need = kv_proto_resp_scan_entry_size(klen, vlen, version, sc->keys_only);
    if (!sc->take_all && kv_proto_resp_scan_size(&sc->w) + need > sc->max_bytes) {
        sc->full = true;
        return 1;
    }
    sc->rc = sc->keys_only ? kv_proto_resp_scan_add_key(&sc->w, key, klen, version)
                           : kv_proto_resp_scan_add(&sc->w, key, klen, val, vlen, version);
    return 0;
}

static int op_scan(kvd_conn *c, kv_store *st, const kv_proto_request *r)
{
    if (r->has_keys_only && c->proto_version < 2)
        return reply_status(c, r->id, KV_PROTOCOL,
                            "SCAN's keys_only needs protocol version 2 (HELLO first)");
    size_t limit = r->limit == 0 ? SCAN_DEFAULT_LIMIT
                   : r->limit > SCAN_MAX_LIMIT ? SCAN_MAX_LIMIT : (size_t)r->limit;
    scan_ctx sc = {.rc = KV_OK, .keys_only = r->keys_only != 0,
                   .max_bytes = c->w->server->max_response};
    int rc = kv_proto_resp_scan_begin(&c->out, r->id, &sc.w);
    if (rc != KV_OK)
        return reply_encode_failed(c, r->id, rc);
    uint64_t cursor = r->cursor, next = cursor;
    while (sc.w.count < limit) {
        kv_proto_scan_writer saved = sc.w;
        sc.take_all = sc.w.count == 0;
        rc = kv_scan(st, r->key.data, r->key.len, cursor, 1, scan_cb, &sc, &next);
        if (rc != KV_OK || (rc = sc.rc) != KV_OK)
            break;
        if (sc.full) {
            kv_proto_resp_scan_rewind(&sc.w, &saved);
            next = cursor; /* this position opens the next page */
            break;
        }
        if (next == 0)
            break; /* the scan is complete */
        cursor = next;
    }
    if (rc == KV_OK)
        rc = kv_proto_resp_scan_end(&sc.w, next);
    if (rc == KV_OK)
        return KV_OK;
    kv_proto_resp_scan_abort(&sc.w);
    return reply_status(c, r->id, rc, kv_strerror(rc));
}

static int op_metrics(kvd_conn *c, kv_store *st, const kv_proto_request *r)
{
    kv_metrics m;
    int rc = kv_metrics_read(st, &m, sizeof m);
    if (rc != KV_OK)
        return reply_status(c, r->id, rc, kv_strerror(rc));
    rc = kvd_metrics_encode(c->w->server, &c->out, r->id, &m);
    return rc == KV_OK ? KV_OK : reply_encode_failed(c, r->id, rc);
}

/* op (-1: unknown or unreadable) is refused until AUTH succeeds. */
static bool needs_auth(const kvd_conn *c, int op)
{
    return c->w->server->cfg->password && !c->authed && op != KV_PROTO_HELLO &&
           op != KV_PROTO_PING && op != KV_PROTO_AUTH;
}

/* ---- commands with a deferred reply ------------------------------------- */

/* A command that runs in libuv's thread pool; its reply is deferred (held
 * in order with the connection's other replies, conn_write.c) until it is
 * done. Each command's work struct starts with this. */
typedef struct deferred {
    uv_work_t req;
    kvd_conn *c;
    kvd_held *slot;
    uint64_t id;
    int status;      /* the outcome, set by the run function */
    char error[256]; /* its detail when status is a failure */
    /* the answer when status is KV_OK; returns the encoder's status */
    int (*encode)(struct deferred *d, kv_proto_buf *b);
} deferred;

static void deferred_after(uv_work_t *req, int uvstatus)
{
    deferred *d = req->data;
    kvd_conn *c = d->c;
    if (!c->closing) {
        int rc = uvstatus != 0 ? KV_INTERNAL : d->status;
        rc = rc == KV_OK ? d->encode(d, &d->slot->buf)
                         : kv_proto_resp_status(&d->slot->buf, d->id, rc,
                                                d->error[0] ? d->error : kv_strerror(rc));
        d->slot->waiting = 0;
        if (rc != KV_OK)
            kvd_conn_close(c);
        else
            kvd__conn_release(c);
    }
    kvd__conn_unref(c);
    free(d); /* work structs own nothing else once encoded */
}

/* Queues d (malloc'ed, d->encode set) to run in the pool. Returns KV_OK,
 * -1 (out of memory: the connection closes) or the status answered at
 * once; d is freed unless queued. */
static int deferred_start(kvd_conn *c, deferred *d, uint64_t id, uv_work_cb run)
{
    kvd_held *slot = kvd__conn_defer(c);
    if (!slot) {
        free(d);
        return -1;
    }
    d->req.data = d;
    d->c = c;
    d->slot = slot;
    d->id = id;
    if (uv_queue_work(&c->w->loop, &d->req, run, deferred_after) != 0) {
        free(d);
        slot->waiting = 0;
        return reply_status(c, id, KV_INTERNAL, "cannot start the work");
    }
    c->handles++; /* the connection outlives the work (kvd__conn_unref) */
    return KV_OK;
}

/* Snapshots and their files exist only with a data directory. */
static int refuse_in_memory(kvd_conn *c, uint64_t id)
{
    return reply_status(c, id, KV_UNSUPPORTED,
                        "kvd keeps the store in memory only: start it with --data-dir");
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

static int snapshot_encode(deferred *d, kv_proto_buf *b)
{
    return kv_proto_resp_version(b, d->id, ((snapshot_work *)d)->revision);
}

static int op_snapshot(kvd_conn *c, const kv_proto_request *r)
{
    if (!c->w->server->durable)
        return refuse_in_memory(c, r->id);
    snapshot_work *sw = calloc(1, sizeof *sw);
    if (!sw)
        return reply_status(c, r->id, KV_NO_MEMORY, "out of memory");
    sw->d.encode = snapshot_encode;
    return deferred_start(c, &sw->d, r->id, snapshot_run);
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

static int snapshot_read_encode(deferred *d, kv_proto_buf *b)
{
    snapshot_read_work *w = (snapshot_read_work *)d;
    return kv_proto_resp_value(b, d->id, w->data, w->len, w->size);
}

static int op_snapshot_read(kvd_conn *c, const kv_proto_request *r)
{
    kvd_server *s = c->w->server;
    if (!s->durable)
        return refuse_in_memory(c, r->id);
    size_t cap = s->max_response > 4096 ? s->max_response - 4096 : 4096;
    size_t max = r->limit && r->limit < cap ? (size_t)r->limit : SNAPSHOT_READ_DEFAULT;
    if (max > cap)
        max = cap;
    snapshot_read_work *w = calloc(1, sizeof *w + max);
    if (!w)
        return reply_status(c, r->id, KV_NO_MEMORY, "out of memory");
    w->d.encode = snapshot_read_encode;
    w->revision = r->revision;
    w->offset = r->offset;
    w->max = max;
    return deferred_start(c, &w->d, r->id, snapshot_read_run);
}

static int run_op(kvd_conn *c, const kv_proto_request *r, int *fatal)
{
    kv_store *st = c->w->server->store;
    if (needs_auth(c, r->op))
        return reply_status(c, r->id, KV_AUTH_REQUIRED, "authenticate with AUTH first");
    switch (r->op) {
    case KV_PROTO_HELLO: return op_hello(c, r);
    case KV_PROTO_PING: return op_ping(c, r);
    case KV_PROTO_AUTH: return op_auth(c, r, fatal);
    case KV_PROTO_GET: return op_get(c, st, r);
    case KV_PROTO_MGET: return op_mget(c, st, r);
    case KV_PROTO_SET: return op_set(c, st, r);
    case KV_PROTO_MSET: return op_mset(c, st, r);
    case KV_PROTO_DEL: return op_del(c, st, r);
    case KV_PROTO_TXN: return op_txn(c, st, r);
    case KV_PROTO_SCAN: return op_scan(c, st, r);
    case KV_PROTO_METRICS: return op_metrics(c, st, r);
    case KV_PROTO_SNAPSHOT: return op_snapshot(c, r);
    case KV_PROTO_SNAPSHOT_READ: return op_snapshot_read(c, r);
    default: return reply_status(c, r->id, KV_UNSUPPORTED, "unknown operation");
    }
}

/* Replies to a write wait until its revision is durable (conn_write.c):
 * note the newest revision now, which covers this request's own. */
static int writes(int op)
{
    return op == KV_PROTO_SET || op == KV_PROTO_MSET || op == KV_PROTO_DEL || op == KV_PROTO_TXN;
}

int kvd_dispatch_last_error(kvd_conn *c, uint64_t id, int status, const char *detail)
{
    kvd_stats *s = &c->w->stats;
    kvd_stat_add(&s->errors, 1);
    if (status == KV_PROTOCOL || status == KV_FRAME_TOO_LARGE)
        kvd_stat_add(&s->protocol_errors, 1);
    return kv_proto_resp_status(&c->out, id, status, detail) == KV_OK ? 0 : -1;
}

void kvd_dispatch_protocol_warn(kvd_conn *c, const char *what)
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

int kvd_dispatch_conn_error(kvd_conn *c, int status, const char *detail)
{
    return kvd_dispatch_last_error(c, 0, status, detail);
}

int kvd_dispatch_frame(kvd_conn *c, const uint8_t *body, size_t len, uint64_t *clock)
{
    const kvd_config *cfg = c->w->server->cfg;
    kvd_stats *s = &c->w->stats;
    kv_proto_limits lim = {cfg->max_key_size, cfg->max_value_size};
    kv_proto_request req;
    kv_proto_arena_reset(&c->arena);
    c->frame_len = len;
    int rc = kv_proto_request_decode(body, len, &lim, &c->arena, &req);
    if (rc != KV_OK) {
        *clock = uv_hrtime();
        kvd_debug("%s: bad request (%s): %s", c->peer, kv_status_name(rc),
                  req.error ? req.error : "");
        if (!req.has_id) {
            /* Not even an id: the peer is not speaking our protocol. */
            kvd_dispatch_protocol_warn(c, "request without a readable id, closing");
            if (kvd_dispatch_conn_error(c, rc, req.error ? req.error : kv_strerror(rc)) != 0)
                return -1;
            return 1;
        }
        kvd_stat_add(&s->errors, 1);
        if (req.op >= 0)
            kvd_stat_add(&s->op_errors[req.op], 1);
        /* Before AUTH only HELLO, PING and AUTH are looked at: anything
         * else is told to authenticate, however malformed. */
        if (needs_auth(c, req.op))
            return reply_status(c, req.id, KV_AUTH_REQUIRED, "authenticate with AUTH first") < 0
                       ? -1 : 0;
        if (rc == KV_PROTOCOL) {
            kvd_stat_add(&s->protocol_errors, 1);
            kvd_dispatch_protocol_warn(c, "malformed request (answered PROTOCOL, connection kept)");
        }
        return reply_status(c, req.id, rc, req.error ? req.error : kv_strerror(rc)) < 0 ? -1 : 0;
    }
    int fatal = 0;
    int status = run_op(c, &req, &fatal);
    if (status < 0)
        return -1;
    /* Only a write that was made waits: one the log refused (NO_SPACE, IO)
     * took no revision and is answered with its error at once. */
    if (c->w->server->durable && status == KV_OK && writes(req.op)) {
        c->batch_rev = kv_revision(c->w->server->store);
        c->w->log_dirty = 1;
    }
    if (is_failure(status)) {
        kvd_stat_add(&s->errors, 1);
        kvd_stat_add(&s->op_errors[req.op], 1);
    }
    kvd_stat_add(&s->requests[req.op], 1);
    uint64_t now = uv_hrtime();
    kvd_stats_record(s, req.op, now - *clock);
    *clock = now;
    return fatal;
}
