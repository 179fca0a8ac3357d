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
#include <stdlib.h>
#include <string.h>

#include "client_internal.h"

struct kv_client_pipeline {
    kv_client *c;
    kv_proto_buf out;
    int *ops;
    uint64_t *ids;
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
        p->cap = cap;
    }
    if (p->c->fd >= 0 && kv__client_check_version(p->c, q) != KV_OK)
        return KV_UNSUPPORTED;
    q->id = p->c->next_id;
    int rc = kv_proto_request_encode(&p->out, q);
    if (rc != KV_OK)
        return rc;
    p->c->next_id++;
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
    kv__client_start_call(c);
    /* Swap the pipeline's frames into the client's send buffer. */
    kv_proto_buf tmp = c->out;
    c->out = p->out;
    p->out = tmp;
    kv_proto_buf_reset(&p->out);
    int rc = kv__client_flush(c);
    for (size_t i = 0; i < n && rc == KV_OK; i++) {
        kv_proto_response resp;
        rc = kv__client_read_reply(c, p->ids[i], p->ops[i], 0, &resp);
        if (rc != KV_OK)
            break;
        kv_client_reply *r = &p->replies[i];
        memset(r, 0, sizeof *r);
        r->op = p->ops[i];
        r->status = resp.status;
        p->nreplies = i + 1;
        if (resp.status == KV_OK && fill(r, &resp) != KV_OK)
            rc = kv__client_fail(c, KV_NO_MEMORY, "out of memory");
    }
    if (rc != KV_OK)
        free_replies(p);
    return rc;
}
