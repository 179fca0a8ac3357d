/*
 * pipeline.c - kv_client_pipeline: queue requests, send them in one write,
 * read the replies in order.
 *
 * Requests are encoded when queued (into the pipeline's own buffer, so the
 * caller's bytes need not outlive the call) and get their ids then, after
 * the same checks as the one-request calls (ops.c), expiry ones included; exec
 * moves the whole buffer to the socket with one flush and reads exactly
 * one reply per request, checking each id. Replies own copies of their
 * values, freed on reset/free.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "client_internal.h"

struct kv_client_pipeline {
    kv_client *c;
    kv_proto_buf out;
    int *ops;
    uint64_t *ids;
    size_t *offs;      /* where each request's frame starts in out */
    unsigned char *st; /* exec: each request's state (EXEC_*) */
    size_t nqueued;
    size_t cap;
    kv_client_reply *replies;
    size_t nreplies;
    size_t replies_cap;
};

int kv_client_pipeline_new(kv_client *c, kv_client_pipeline **out)
{
    kv_client_pipeline *p = calloc(1, sizeof *p);
    if (p == NULL)
        return KV_NO_MEMORY;
    p->c = c;
    kv_proto_buf_init(&p->out);
    *out = p;
    return KV_OK;
}

static void free_replies(kv_client_pipeline *p)
{
    for (size_t i = 0; i < p->nreplies; i++) {
        kv_client_reply *r = &p->replies[i];
        kv_client_value_free(&r->value);
        kv_client_values_free(r->values, r->nvalues);
        free(r->values);
        kv_client_txn_result_free(&r->txn);
    }
    p->nreplies = 0;
}

void kv_client_pipeline_reset(kv_client_pipeline *p)
{
    free_replies(p);
    kv_proto_buf_reset(&p->out);
    p->nqueued = 0;
}

void kv_client_pipeline_free(kv_client_pipeline *p)
{
    if (p == NULL)
        return;
    free_replies(p);
    kv_proto_buf_free(&p->out);
    free(p->ops);
    free(p->ids);
    free(p->offs);
    free(p->st);
    free(p->replies);
    free(p);
}

size_t kv_client_pipeline_count(const kv_client_pipeline *p)
{
    return p->nqueued;
}

size_t kv_client_pipeline_replies(const kv_client_pipeline *p)
{
    return p->nreplies;
}

const kv_client_reply *kv_client_pipeline_reply(const kv_client_pipeline *p,
                                                size_t i)
{
    return i < p->nreplies ? &p->replies[i] : NULL;
}

static int queue(kv_client_pipeline *p, kv_proto_request *q)
{
    if (p->nqueued == p->cap) {
        size_t cap = p->cap ? 2 * p->cap : 16;
        int *ops = realloc(p->ops, cap * sizeof *ops);
        if (ops == NULL)
            return KV_NO_MEMORY;
        p->ops = ops;
        uint64_t *ids = realloc(p->ids, cap * sizeof *ids);
        if (ids == NULL)
            return KV_NO_MEMORY;
        p->ids = ids;
        size_t *offs = realloc(p->offs, cap * sizeof *offs);
        if (offs == NULL)
            return KV_NO_MEMORY;
        p->offs = offs;
        unsigned char *st = realloc(p->st, cap);
        if (st == NULL)
            return KV_NO_MEMORY;
        p->st = st;
        p->cap = cap;
    }
    if (p->c->fd >= 0 && kv__client_check_version(p->c, q) != KV_OK)
        return KV_UNSUPPORTED;
    q->id = p->c->next_id;
    size_t off = p->out.len;
    int rc = kv_proto_request_encode(&p->out, q);
    if (rc != KV_OK)
        return rc;
    p->c->next_id++;
    p->offs[p->nqueued] = off;
    p->ops[p->nqueued] = q->op;
    p->ids[p->nqueued] = q->id;
    p->nqueued++;
    return KV_OK;
}

int kv_client_pipeline_ping(kv_client_pipeline *p)
{
    kv_proto_request q = {.op = KV_PROTO_PING};
    return queue(p, &q);
}

int kv_client_pipeline_get(kv_client_pipeline *p, const void *key,
                           size_t klen)
{
    kv_proto_request q = {.op = KV_PROTO_GET, .key = {key, klen}};
    return queue(p, &q);
}

int kv_client_pipeline_mget(kv_client_pipeline *p, const kv_key *keys,
                            size_t n)
{
    kv_proto_request q = {.op = KV_PROTO_MGET, .keys = keys, .nkeys = n};
    return queue(p, &q);
}

int kv_client_pipeline_set(kv_client_pipeline *p, const void *key,
                           size_t klen, const void *val, size_t vlen)
{
    kv_proto_request q = {
        .op = KV_PROTO_SET, .key = {key, klen}, .value = {val, vlen}};
    return queue(p, &q);
}

int kv_client_pipeline_set_if(kv_client_pipeline *p, const void *key,
                              size_t klen, const void *val, size_t vlen,
                              uint64_t expected)
{
    kv_proto_request q = {.op = KV_PROTO_SET,
                          .key = {key, klen},
                          .value = {val, vlen},
                          .has_expected = 1,
                          .expected = expected};
    return queue(p, &q);
}

int kv_client_pipeline_mset(kv_client_pipeline *p, const kv_pair *pairs,
                            size_t n)
{
    kv_proto_request q = {.op = KV_PROTO_MSET, .pairs = pairs, .npairs = n};
    return queue(p, &q);
}

int kv_client_pipeline_del(kv_client_pipeline *p, const kv_key *keys,
                           size_t n)
{
    if (n == 0)
        return KV_INVALID_ARGUMENT;
    kv_proto_request q = {.op = KV_PROTO_DEL, .keys = keys, .nkeys = n};
    return queue(p, &q);
}

static int txn_queue(kv_client_pipeline *p, const kv_compare *cmps, size_t ncmps,
                     const kv_op *then_ops, size_t nthen, const kv_op *else_ops,
                     size_t nelse, int in)
{
    kv_proto_request q;
    unsigned char *in_buf;
    int rc = kv__client_txn_request(p->c, &q, cmps, ncmps, then_ops, nthen, else_ops,
                                    nelse, in, &in_buf);
    if (rc == KV_OK)
        rc = queue(p, &q);
    free(in_buf);
    return rc;
}

int kv_client_pipeline_txn(kv_client_pipeline *p, const kv_compare *cmps,
                           size_t ncmps, const kv_op *then_ops, size_t nthen,
                           const kv_op *else_ops, size_t nelse)
{
    return txn_queue(p, cmps, ncmps, then_ops, nthen, else_ops, nelse, 0);
}

int kv_client_pipeline_txn_ttl(kv_client_pipeline *p, const kv_compare *cmps,
                               size_t ncmps, const kv_op *then_ops, size_t nthen,
                               const kv_op *else_ops, size_t nelse)
{
    return txn_queue(p, cmps, ncmps, then_ops, nthen, else_ops, nelse, 1);
}

/* ---- expiry (protocol version 4) ------------------------------------------ */

/* Queues q with an expiry (as kv__client_put_expiry). */
static int queue_expiring(kv_client_pipeline *p, kv_proto_request *q, int at, uint64_t ms)
{
    int rc = kv__client_put_expiry(p->c, q, at, ms);
    return rc == KV_OK ? queue(p, q) : rc;
}

int kv_client_pipeline_set_ex(kv_client_pipeline *p, const void *key, size_t klen,
                              const void *val, size_t vlen, uint64_t expire_at_ms)
{
    kv_proto_request q = {.op = KV_PROTO_SET, .key = {key, klen}, .value = {val, vlen}};
    return queue_expiring(p, &q, 1, expire_at_ms);
}

int kv_client_pipeline_set_ttl(kv_client_pipeline *p, const void *key, size_t klen,
                               const void *val, size_t vlen, uint64_t ttl_ms)
{
    kv_proto_request q = {.op = KV_PROTO_SET, .key = {key, klen}, .value = {val, vlen}};
    return queue_expiring(p, &q, 0, ttl_ms);
}

int kv_client_pipeline_set_if_ttl(kv_client_pipeline *p, const void *key, size_t klen,
                                  const void *val, size_t vlen, uint64_t expected,
                                  uint64_t ttl_ms)
{
    kv_proto_request q = {.op = KV_PROTO_SET, .key = {key, klen}, .value = {val, vlen},
                          .has_expected = 1, .expected = expected};
    return queue_expiring(p, &q, 0, ttl_ms);
}

int kv_client_pipeline_mset_ex(kv_client_pipeline *p, const kv_pair *pairs, size_t n,
                               uint64_t expire_at_ms)
{
    kv_proto_request q = {.op = KV_PROTO_MSET, .pairs = pairs, .npairs = n};
    return queue_expiring(p, &q, 1, expire_at_ms);
}

int kv_client_pipeline_mset_ttl(kv_client_pipeline *p, const kv_pair *pairs, size_t n,
                                uint64_t ttl_ms)
{
    kv_proto_request q = {.op = KV_PROTO_MSET, .pairs = pairs, .npairs = n};
    return queue_expiring(p, &q, 0, ttl_ms);
}

int kv_client_pipeline_ttl(kv_client_pipeline *p, const void *key, size_t klen)
{
    kv_proto_request q = {.op = KV_PROTO_TTL, .key = {key, klen}};
    return queue(p, &q);
}

int kv_client_pipeline_persist(kv_client_pipeline *p, const void *key, size_t klen)
{
    kv_proto_request q = {.op = KV_PROTO_PERSIST, .key = {key, klen}};
    return queue(p, &q);
}

int kv_client_pipeline_expire_if(kv_client_pipeline *p, const void *key, size_t klen,
                                 uint64_t ms, unsigned flags)
{
    kv_client *c = p->c;
    if (flags & ~(KV_CLIENT_EXPIRE_AT | KV_CLIENT_EXPIRE_NX | KV_CLIENT_EXPIRE_XX |
                  KV_CLIENT_EXPIRE_GT | KV_CLIENT_EXPIRE_LT))
        return kv__client_error(c, KV_INVALID_ARGUMENT, "unknown EXPIRE flags");
    int at = (flags & KV_CLIENT_EXPIRE_AT) != 0;
    if (at && ms == 0)
        return kv__client_error(c, KV_INVALID_ARGUMENT,
                                "an expiry time of 0 is none: use kv_client_pipeline_persist");
    kv_proto_request q = {.op = KV_PROTO_EXPIRE, .key = {key, klen},
                          .expire_flags = flags & ~KV_CLIENT_EXPIRE_AT};
    return queue_expiring(p, &q, at, ms);
}

int kv_client_pipeline_expire(kv_client_pipeline *p, const void *key, size_t klen,
                              uint64_t expire_at_ms)
{
    if (expire_at_ms == 0)
        return kv_client_pipeline_persist(p, key, klen);
    return kv_client_pipeline_expire_if(p, key, klen, expire_at_ms, KV_CLIENT_EXPIRE_AT);
}

int kv_client_pipeline_expire_ttl(kv_client_pipeline *p, const void *key, size_t klen,
                                  uint64_t ttl_ms)
{
    return kv_client_pipeline_expire_if(p, key, klen, ttl_ms, 0);
}

/* Copies a KV_OK response into reply r. */
static int fill(kv_client_reply *r, const kv_proto_response *resp)
{
    switch (r->op) {
    case KV_PROTO_GET:
        r->value.data = kv__client_memdup(resp->value.data, resp->value.len);
        if (r->value.data == NULL)
            return KV_NO_MEMORY;
        r->value.len = resp->value.len;
        r->value.version = resp->value.version;
        return KV_OK;
    case KV_PROTO_MGET:
        r->values = calloc(resp->nvalues ? resp->nvalues : 1,
                           sizeof *r->values);
        if (r->values == NULL)
            return KV_NO_MEMORY;
        r->nvalues = resp->nvalues;
        for (size_t i = 0; i < resp->nvalues; i++) {
            const kv_proto_value *v = &resp->values[i];
            if (!v->found)
                continue;
            r->values[i].data = kv__client_memdup(v->data, v->len);
            if (r->values[i].data == NULL)
                return KV_NO_MEMORY;
            r->values[i].len = v->len;
            r->values[i].version = v->version;
        }
        return KV_OK;
    case KV_PROTO_SET:
    case KV_PROTO_MSET:
    case KV_PROTO_EXPIRE:
    case KV_PROTO_PERSIST:
        r->version = resp->version;
        return KV_OK;
    case KV_PROTO_DEL:
        r->version = resp->version;
        r->deleted = (size_t)resp->deleted;
        return KV_OK;
    case KV_PROTO_TTL:
        r->expire_at_ms = resp->expire_at_ms;
        r->ttl_ms = resp->ttl_ms;
        return KV_OK;
    case KV_PROTO_TXN:
        return kv__client_copy_txn(resp, &r->txn);
    default:
        return KV_OK;
    }
}

/* A request's state during exec: one of these, with EXEC_RAN once it may
 * have been run (sent, and answered UNKNOWN_OUTCOME or not at all) and
 * EXEC_MUTE while its last try got no answer. */
enum {
    EXEC_SEND = 0, /* to be sent (again) in the next pass */
    EXEC_FINAL,    /* answered for good: its reply stays */
    EXEC_REFUSED,  /* answered NOT_LEADER: not run, safe to send again */
    EXEC_UNKNOWN,  /* answered UNKNOWN_OUTCOME (a write) */
    EXEC_LOST,     /* no answer: the connection failed (or no connection) */
    EXEC_STATE = 0x0f,
    EXEC_RAN = 0x10, /* may have been run */
    EXEC_MUTE = 0x20 /* its last try got no answer */
};

static void set_state(kv_client_pipeline *p, size_t i, int st)
{
    p->st[i] = (unsigned char)((p->st[i] & (EXEC_RAN | EXEC_MUTE)) | st);
}

/* Sends every request in state EXEC_SEND, in order, on c's connection
 * and reads their replies into p->replies; each ends FINAL, REFUSED,
 * UNKNOWN or LOST. *leader receives the address a NOT_LEADER reply named
 * (the first one), if any (*named 1). Returns KV_OK, or the transport
 * failure that left requests LOST. */
static int exec_pass(kv_client_pipeline *p, size_t n, char *leader, size_t cap,
                     uint16_t *leader_port, int *named)
{
    kv_client *c = p->c;
    size_t bytes = 0;
    for (size_t i = 0; i < n; i++)
        if ((p->st[i] & EXEC_STATE) == EXEC_SEND)
            bytes += (i + 1 < n ? p->offs[i + 1] : p->out.len) - p->offs[i];
    kv_proto_buf_reset(&c->out);
    if (kv_proto_buf_reserve(&c->out, bytes) != KV_OK)
        return kv__client_error(c, KV_NO_MEMORY, "out of memory");
    for (size_t i = 0; i < n; i++)
        if ((p->st[i] & EXEC_STATE) == EXEC_SEND) {
            size_t len = (i + 1 < n ? p->offs[i + 1] : p->out.len) - p->offs[i];
            memcpy(c->out.data + c->out.len, p->out.data + p->offs[i], len);
            c->out.len += len;
        }
    int rc = kv__client_flush(c);
    for (size_t i = 0; i < n; i++) {
        if ((p->st[i] & EXEC_STATE) != EXEC_SEND)
            continue;
        kv_client_reply *r = &p->replies[i];
        kv_proto_response resp;
        if (rc == KV_OK)
            rc = kv__client_read_reply(c, p->ids[i], p->ops[i], 0, &resp);
        if (rc != KV_OK) { /* this one and the rest: sent, not answered */
            p->st[i] = EXEC_LOST | EXEC_RAN | EXEC_MUTE;
            continue;
        }
        p->st[i] &= (unsigned char)~EXEC_MUTE;
        memset(r, 0, sizeof *r); /* an earlier pass's NOT_LEADER or UNKNOWN */
        r->op = p->ops[i];
        r->status = resp.status;
        if (resp.status == KV_NOT_LEADER) {
            set_state(p, i, EXEC_REFUSED);
            if (!*named && kv__client_leader_of(&resp, leader, cap, leader_port))
                *named = 1;
        } else if (resp.status == KV_UNKNOWN_OUTCOME) {
            p->st[i] = EXEC_UNKNOWN | EXEC_RAN;
        } else {
            set_state(p, i, EXEC_FINAL);
            if (resp.status == KV_OK && fill(r, &resp) != KV_OK)
                /* the other replies cannot be read in step any more */
                rc = kv__client_fail(c, KV_NO_MEMORY, "out of memory");
        }
    }
    return rc;
}

/* The connection has no session (the node c moved to keeps no request
 * ids): the writes that may have run cannot go again; they end with
 * KV_UNKNOWN_OUTCOME. Returns 1 if one of them had no answer at all. */
static int drop_resent_writes(kv_client_pipeline *p, size_t n)
{
    int unanswered = 0;
    for (size_t i = 0; i < n; i++)
        if ((p->st[i] & EXEC_STATE) == EXEC_SEND && (p->st[i] & EXEC_RAN) &&
            kv__client_is_write(p->ops[i])) {
            unanswered |= (p->st[i] & EXEC_MUTE) != 0;
            memset(&p->replies[i], 0, sizeof p->replies[i]);
            p->replies[i].op = p->ops[i];
            p->replies[i].status = KV_UNKNOWN_OUTCOME;
            set_state(p, i, EXEC_FINAL);
        }
    return unanswered;
}

/* After a pass: which requests go again (state EXEC_SEND), given whether
 * the connection keeps request ids (session) and whether c may retry
 * (retry); the others become FINAL - a LOST one with the status
 * KV_UNKNOWN_OUTCOME if it is a write that may have run, else `lost`, the
 * failure that kept it unanswered (*unanswered is then set). Returns how
 * many go again; *writes, how many of them are writes that may have run
 * (sent again with their request ids). */
static size_t exec_select(kv_client_pipeline *p, size_t n, int session, int retry, int lost,
                          unsigned *writes, int *unanswered)
{
    size_t again = 0;
    int later_write_run = 0; /* a write after this one may have run */
    *writes = 0;
    for (size_t k = n; k-- > 0;) {
        int st = p->st[k] & EXEC_STATE, ran = (p->st[k] & EXEC_RAN) != 0;
        int w = kv__client_is_write(p->ops[k]);
        int go = 0;
        if (st == EXEC_REFUSED || (st == EXEC_LOST && !ran))
            /* not run: a write without a request id only if nothing after
             * it may have run (it would run after that); a lost one (no
             * connection) only with retries */
            go = (st == EXEC_REFUSED || retry) && (!w || session || !later_write_run);
        else if (st == EXEC_UNKNOWN)
            go = w && session && retry;
        else if (st == EXEC_LOST)
            go = retry && (!w || session);
        if (w && (ran || st == EXEC_FINAL))
            later_write_run = 1;
        if (go) {
            set_state(p, k, EXEC_SEND);
            again++;
            *writes += w && ran;
            continue;
        }
        if (st == EXEC_LOST) {
            kv_client_reply *r = &p->replies[k];
            memset(r, 0, sizeof *r);
            r->op = p->ops[k];
            r->status = w && ran ? KV_UNKNOWN_OUTCOME : lost;
            *unanswered = 1;
        }
        set_state(p, k, EXEC_FINAL);
    }
    return again;
}

/* Sends the requests and reads their replies. As a single call does
 * (kv__client_call), requests without a final answer go again, in their
 * order and with their request ids: refused ones (NOT_LEADER: not run) to
 * the leader named, up to KV__CLIENT_FOLLOW_MAX_HOPS moves per try; with
 * retries, after a pause, the ones whose connection failed or whose
 * outcome is unknown (writes only with a session), or all of them when
 * no leader was named. Answered requests keep their answers. */
int kv_client_pipeline_exec(kv_client_pipeline *p)
{
    kv_client *c = p->c;
    size_t n = p->nqueued;
    free_replies(p);
    p->nqueued = 0;
    if (c->fd < 0) {
        kv_proto_buf_reset(&p->out);
        return kv__client_error(c, KV_CLOSED, "not connected");
    }
    if (c->watching) { /* its frames are the watch's (watch.c) */
        kv_proto_buf_reset(&p->out);
        c->err_local = 1;
        return kv__client_error(c, KV_INVALID_ARGUMENT,
                                "the connection is following a watch: close the watch first");
    }
    if (n > p->replies_cap) {
        kv_client_reply *r = realloc(p->replies, n * sizeof *r);
        if (r == NULL) {
            kv_proto_buf_reset(&p->out);
            return kv__client_error(c, KV_NO_MEMORY, "out of memory");
        }
        p->replies = r;
        p->replies_cap = n;
    }
    for (size_t i = 0; i < n; i++) {
        memset(&p->replies[i], 0, sizeof p->replies[i]);
        p->replies[i].op = p->ops[i];
        p->st[i] = EXEC_SEND;
    }
    p->nreplies = n;
    int had_session = c->session; /* its writes carry request ids */
    int tries = 0, hops = 0, rc = KV_OK, lost_rc = KV_OK, unanswered = 0;
    char lost_err[KV__CLIENT_ERRLEN] = "";
    for (;;) {
        kv__client_start_call(c);
        char leader[200];
        uint16_t port = 0;
        int named = 0;
        if (c->fd < 0 && (rc = kv_client_connect(c)) != KV_OK) {
            rc = rc == KV_TIMEOUT || rc == KV_CLOSED || rc == KV_IO ? rc : KV_CONNECT;
            for (size_t i = 0; i < n; i++) /* not sent this time */
                if ((p->st[i] & EXEC_STATE) == EXEC_SEND)
                    p->st[i] = (unsigned char)((p->st[i] & EXEC_RAN) | EXEC_LOST | EXEC_MUTE);
        } else {
            if (had_session && !c->session) /* a server without request ids */
                unanswered |= drop_resent_writes(p, n);
            rc = exec_pass(p, n, leader, sizeof leader, &port, &named);
            if (rc == KV_NO_MEMORY)
                break;
        }
        if (rc != KV_OK) {
            lost_rc = rc;
            snprintf(lost_err, sizeof lost_err, "%s", c->err);
        }
        /* writes go again with their ids only on a connection with a
         * session: a new one is checked once made (above) */
        int session = had_session && (c->fd < 0 || c->session);
        unsigned writes;
        size_t again = exec_select(p, n, session, tries < c->retries,
                                   lost_rc != KV_OK ? lost_rc : KV_CLOSED, &writes, &unanswered);
        if (again == 0)
            break;
        if (named && hops < KV__CLIENT_FOLLOW_MAX_HOPS && !c->opts.unix_path) {
            hops++; /* the leader named: go there at once */
            c->retried += writes;
            if (kv__client_move_to(c, leader, port) == KV_NO_MEMORY) {
                rc = kv__client_error(c, KV_NO_MEMORY, "out of memory");
                break;
            }
            continue;
        }
        if (tries >= c->retries) {
            /* only refused requests were selected: nothing more to try */
            for (size_t i = 0; i < n; i++)
                if ((p->st[i] & EXEC_STATE) == EXEC_SEND)
                    set_state(p, i, EXEC_FINAL); /* keeps its NOT_LEADER reply */
            break;
        }
        kv__client_retry_pause(tries++);
        hops = 0;
        c->retried += writes;
    }
    kv_proto_buf_reset(&p->out);
    if (rc == KV_NO_MEMORY) {
        free_replies(p);
        return rc;
    }
    /* KV_OK when every request has a server's answer (c->err keeps the
     * failure that left some without one) */
    if (!unanswered)
        return KV_OK;
    if (c->err[0] == '\0')
        kv__client_error(c, lost_rc, "%s", lost_err);
    return lost_rc;
}
