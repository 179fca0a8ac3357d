/*
 * conn.c - one kvbench connection (see conn.h).
 *
 * Invariants: ring[head .. head+n) (mod cap) are the requests sent or
 * queued, oldest first; the last `unstamped` of them are still in `out`.
 * At most one uv_write is in flight (`writing`), on `wbuf`; requests
 * queued meanwhile wait in `out` and go with the next write.
 * With --rate, n <= pipeline in RUN as in the closed loop: a request
 * that falls due while n == pipeline stays in the schedule (not yet
 * queued) and is queued as soon as an answer frees a place.
 *
 * The protocols (kvd, RESP2, memcached's text protocol) differ only in
 * conn_queue (how a request is encoded), conn_next_reply (how an answer
 * is cut from the stream and turned into a kv status) and on_connect
 * (kvd's HELLO); everything after an answer's status is known
 * (conn_answered) is shared.
 */
#include "conn.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "mc.h"
#include "resp.h"
#include "worker.h"

#define READ_CHUNK (64 * 1024)
/* Preload pipelines at least this deep: it only has to be quick. */
#define PRELOAD_DEPTH 32

static void conn_close(kvb_conn *c);

static kvb_inflight *ring_at(kvb_conn *c, size_t i)
{
    return &c->ring[(c->head + i) % c->cap];
}

/* A fatal problem: count it, close the connection. During SETUP the
 * whole run fails. */
static void conn_fail(kvb_conn *c, const char *what, const char *detail)
{
    if (c->state >= KVB_CONN_CLOSING)
        return;
    kvb_worker_conn_failed(c->w, c, what, detail);
    conn_close(c);
}

static void on_close(uv_handle_t *h)
{
    kvb_conn *c = h->data;
    c->state = KVB_CONN_CLOSED;
    kvb_worker_conn_closed(c->w);
}

static void conn_close(kvb_conn *c)
{
    if (c->state >= KVB_CONN_CLOSING)
        return;
    c->state = KVB_CONN_CLOSING;
    uv_close(&c->h.handle, on_close);
}

static kvb_protocol conn_protocol(const kvb_conn *c)
{
    return c->w->run->opts->protocol;
}

/* Appends one request; its send time is stamped when it is written. */
static int conn_queue(kvb_conn *c, kv_proto_request *q)
{
    q->id = c->next_id++; /* kvd's protocol only: RESP and memcache have no ids */
    int rc;
    switch (conn_protocol(c)) {
    case KVB_PROTOCOL_RESP:
        rc = kvb_resp_request_encode(&c->out, q);
        break;
    case KVB_PROTOCOL_MEMCACHE:
        rc = kvb_mc_request_encode(&c->out, q);
        break;
    default:
        rc = kv_proto_request_encode(&c->out, q);
        break;
    }
    if (rc != KV_OK) {
        conn_fail(c, "encoding a request", kv_strerror(rc));
        return -1;
    }
    kvb_inflight *f = ring_at(c, c->n);
    f->id = q->id;
    f->op = q->op;
    f->sent_ns = 0;
    f->due_ns = 0;
    f->late = 0;
    c->n++;
    c->unstamped++;
    return 0;
}

static int conn_queue_set(kvb_conn *c, uint64_t key_index)
{
    char key[KVB_KEY_MAX];
    size_t klen = kvb_key_format(key, key_index);
    const kvb_run *run = c->w->run;
    kv_proto_request q = {.op = KV_PROTO_SET,
                          .key = {key, klen},
                          .value = {run->value, run->opts->value_size}};
    return conn_queue(c, &q);
}

static int conn_queue_get(kvb_conn *c, uint64_t key_index)
{
    char key[KVB_KEY_MAX];
    size_t klen = kvb_key_format(key, key_index);
    kv_proto_request q = {.op = KV_PROTO_GET, .key = {key, klen}};
    return conn_queue(c, &q);
}

static void on_write(uv_write_t *req, int status);

/* Writes `out` unless a write is in flight (on_write calls again). */
static void conn_flush(kvb_conn *c)
{
    if (c->writing || c->out.len == 0 || c->state >= KVB_CONN_CLOSING)
        return;
    uint64_t now = uv_hrtime();
    for (size_t i = c->n - c->unstamped; i < c->n; i++)
        ring_at(c, i)->sent_ns = now;
    c->unstamped = 0;

    uv_buf_t b = uv_buf_init((char *)c->out.data, (unsigned)c->out.len);
    int r = uv_try_write(&c->h.stream, &b, 1);
    if (r == (int)c->out.len) {
        kv_proto_buf_reset(&c->out);
        return;
    }
    if (r < 0 && r != UV_EAGAIN) {
        conn_fail(c, "write", uv_strerror(r));
        return;
    }
    size_t done = r > 0 ? (size_t)r : 0;
    kv_proto_buf t = c->wbuf;
    c->wbuf = c->out;
    c->out = t;
    kv_proto_buf_reset(&c->out);
    b = uv_buf_init((char *)c->wbuf.data + done, (unsigned)(c->wbuf.len - done));
    r = uv_write(&c->write_req, &c->h.stream, &b, 1, on_write);
    if (r < 0) {
        conn_fail(c, "write", uv_strerror(r));
        return;
    }
    c->writing = 1;
}

static void on_write(uv_write_t *req, int status)
{
    kvb_conn *c = req->data;
    c->writing = 0;
    kv_proto_buf_reset(&c->wbuf);
    if (status < 0) {
        if (status != UV_ECANCELED)
            conn_fail(c, "write", uv_strerror(status));
        return;
    }
    conn_flush(c);
}

/* Queues one request of the workload: a random key, GET or SET by
 * --ratio. */
static int conn_queue_next(kvb_conn *c)
{
    const kvb_run *run = c->w->run;
    const kvb_opts *o = run->opts;
    unsigned total = o->get_ratio + o->set_ratio;
    uint64_t k = kvb_keys_pick(&run->keys, &c->rng);
    int is_get = o->set_ratio == 0 ||
                 (o->get_ratio != 0 && kvb_rng_below(&c->rng, total) < o->get_ratio);
    return is_get ? conn_queue_get(c, k) : conn_queue_set(c, k);
}

/* --rate: queues the requests due at now_ns, oldest first, while fewer
 * than `pipeline` are in flight. If one is due and the pipeline is full,
 * every slot due so far is marked blocked: those requests are sent late
 * (their latency still counts from the due time). */
static void conn_fill_due(kvb_conn *c, uint64_t now_ns)
{
    kvb_sched *s = &c->sched;
    size_t pipeline = (size_t)c->w->run->opts->pipeline;
    while (s->due_ns <= now_ns) {
        if (c->n >= pipeline) {
            s->blocked_ns = now_ns;
            return; /* an answer frees a place: on_read sends then */
        }
        if (conn_queue_next(c) != 0)
            return;
        kvb_inflight *f = ring_at(c, c->n - 1);
        f->due_ns = s->due_ns;
        f->late = s->due_ns <= s->blocked_ns;
        kvb_sched_advance(s);
    }
    if (c->n < pipeline)
        kvb_worker_wake_at(c->w, s->due_ns);
}

/* Queues requests until `pipeline` are in flight (RUN; with --rate, only
 * those due) or the share of preloaded keys is done (PRELOAD). Does not
 * flush. */
static void conn_fill(kvb_conn *c)
{
    const kvb_run *run = c->w->run;
    const kvb_opts *o = run->opts;
    if (c->state == KVB_CONN_PRELOAD) {
        uint64_t stride = (uint64_t)o->connections;
        while (c->n < c->cap && c->preload_next < o->keys) {
            if (conn_queue_set(c, c->preload_next) != 0)
                return;
            c->preload_next += stride;
        }
        if (c->n == 0) {
            c->state = KVB_CONN_READY;
            kvb_worker_conn_ready(c->w);
        }
        return;
    }
    if (c->state != KVB_CONN_RUN)
        return;
    if (c->w->phase != KVB_PHASE_WARMUP && c->w->phase != KVB_PHASE_MEASURE) {
        if (c->n == 0)
            conn_close(c);
        return;
    }
    if (o->rate > 0) {
        conn_fill_due(c, uv_hrtime());
        return;
    }
    while (c->n < (size_t)o->pipeline)
        if (conn_queue_next(c) != 0)
            return;
}

/* SETUP is over (its answers are in, or it sent nothing): preload, or
 * tell the worker this connection is ready. */
static void conn_setup_done(kvb_conn *c)
{
    if (c->w->run->opts->preload) {
        c->state = KVB_CONN_PRELOAD;
    } else {
        c->state = KVB_CONN_READY;
        kvb_worker_conn_ready(c->w);
    }
}

/* Counts an answer of the measured seconds and records its latency. */
static void conn_measure(kvb_conn *c, const kvb_inflight *f, int status, uint64_t now)
{
    kvb_result *r = &c->w->res;
    if (f->op == KV_PROTO_GET)
        r->gets++;
    else
        r->sets++;
    if (status == KV_NOT_FOUND && f->op == KV_PROTO_GET) {
        r->not_found++;
    } else if (status != KV_OK) {
        r->errors++;
        r->errors_by_status[status >= 0 && status < 64 ? status : 63]++;
    }
    if (f->due_ns == 0) {
        kvb_hist_record(&r->lat, now - f->sent_ns);
        return;
    }
    /* --rate: from the due time, so time spent waiting for a place in
     * the pipeline (or for our own loop) is part of the latency. */
    kvb_hist_record(&r->lat, now - f->due_ns);
    if (f->late)
        r->late++;
    else
        kvb_hist_record(&r->send_lag, f->sent_ns - f->due_ns);
}

/* The answer to the oldest request in flight (c->n > 0), whatever the
 * protocol: its status as a kv status code, and a readable detail for
 * messages. */
static void conn_answered(kvb_conn *c, int status, const char *detail, uint64_t now)
{
    kvb_inflight f = *ring_at(c, 0);
    /* --rate: a request that fell due while the pipeline was full waited
     * for this answer; nothing may have looked at the schedule meanwhile
     * (no wake-up is armed for a full connection), so mark it now or its
     * wait would count as kvbench's own send lag. */
    if (c->n >= (size_t)c->w->run->opts->pipeline)
        c->sched.blocked_ns = now;
    c->head = (c->head + 1) % c->cap;
    c->n--;

    kvb_worker *w = c->w;
    switch (c->state) {
    case KVB_CONN_SETUP:
        if (status != KV_OK) {
            conn_fail(c, f.op == KV_PROTO_AUTH ? "AUTH" : "HELLO", detail);
            return;
        }
        if (c->n == 0)
            conn_setup_done(c);
        return;
    case KVB_CONN_PRELOAD:
        if (status != KV_OK) {
            conn_fail(c, "preload SET", detail);
            return;
        }
        w->res.preloaded++;
        return;
    case KVB_CONN_RUN:
        w->res.answered++;
        break;
    default:
        return;
    }
    if (status != KV_OK && status != KV_NOT_FOUND && !w->error_shown) {
        /* Later ones are only counted: one says what the server objects to. */
        w->error_shown = 1;
        fprintf(stderr, "kvbench: connection %d: %s answered with an error: %s\n", c->gidx,
                kv_proto_op_name(f.op), detail);
    }
    if (w->phase == KVB_PHASE_MEASURE)
        conn_measure(c, &f, status, now);
}

/* kvd: one response frame's body. */
static void conn_reply_kvd(kvb_conn *c, const uint8_t *body, size_t len, uint64_t now)
{
    if (c->n == 0) {
        conn_fail(c, "protocol", "a response to no request");
        return;
    }
    const kvb_inflight *f = ring_at(c, 0);
    kv_proto_response resp;
    int rc = kv_proto_response_decode(body, len, f->op, NULL, &resp);
    uint64_t id = resp.id;
    int status = resp.status;
    const char *err = resp.error; /* static */
    kv_proto_response_free(&resp);
    if (rc != KV_OK) {
        conn_fail(c, "decoding a response", err ? err : kv_strerror(rc));
        return;
    }
    if (id != f->id) {
        if (id == 0) {
            conn_fail(c, "connection error from the server", kv_status_name(status));
        } else {
            conn_fail(c, "protocol", "response id does not match the request");
        }
        return;
    }
    conn_answered(c, status, kv_status_name(status), now);
}

/* RESP: one reply, mapped to a kv status: an error reply is
 * KVB_STATUS_RESP_ERROR, a null bulk (GET of a missing key) NOT_FOUND,
 * anything else OK. */
static void conn_reply_resp(kvb_conn *c, const kvb_resp_reply *rep, uint64_t now)
{
    if (c->n == 0) {
        conn_fail(c, "protocol", "a reply to no request");
        return;
    }
    if (rep->type == KVB_RESP_ERROR) {
        char text[160]; /* the reply is not NUL-terminated */
        int n = rep->len < sizeof text ? (int)rep->len : (int)sizeof text - 1;
        snprintf(text, sizeof text, "%.*s", n, rep->str);
        conn_answered(c, KVB_STATUS_RESP_ERROR, text, now);
        return;
    }
    if (rep->type == KVB_RESP_NULL) {
        conn_answered(c, KV_NOT_FOUND, "nil", now);
        return;
    }
    conn_answered(c, KV_OK, "OK", now);
}

/* memcache: one reply, mapped to a kv status: a failure line is
 * KVB_STATUS_MC_ERROR, END without VALUE (GET of a missing key)
 * NOT_FOUND, a VALUE or STORED OK. A reply of the wrong kind for the
 * request (STORED to a get, VALUE to a set) means the stream is lost. */
static void conn_reply_mc(kvb_conn *c, const kvb_mc_reply *rep, uint64_t now)
{
    if (c->n == 0) {
        conn_fail(c, "protocol", "a reply to no request");
        return;
    }
    int op = ring_at(c, 0)->op;
    switch (rep->type) {
    case KVB_MC_ERROR: {
        char text[160]; /* the reply is not NUL-terminated */
        int n = rep->len < sizeof text ? (int)rep->len : (int)sizeof text - 1;
        snprintf(text, sizeof text, "%.*s", n, rep->str);
        conn_answered(c, KVB_STATUS_MC_ERROR, text, now);
        return;
    }
    case KVB_MC_MISS:
    case KVB_MC_VALUE:
        if (op != KV_PROTO_GET)
            break;
        conn_answered(c, rep->type == KVB_MC_MISS ? KV_NOT_FOUND : KV_OK,
                      rep->type == KVB_MC_MISS ? "END" : "VALUE", now);
        return;
    case KVB_MC_STORED:
        if (op != KV_PROTO_SET)
            break;
        conn_answered(c, KV_OK, "STORED", now);
        return;
    }
    conn_fail(c, "memcache protocol error from the server", "a reply of the wrong kind");
}

/* Handles the reply at the start of buf[0..len) if it is complete.
 * Returns the bytes it took, 0 if more must be read first (or c failed:
 * then it is CLOSING). */
static size_t conn_next_reply(kvb_conn *c, const uint8_t *buf, size_t len, uint64_t now)
{
    if (conn_protocol(c) == KVB_PROTOCOL_MEMCACHE) {
        kvb_mc_reply rep;
        size_t used;
        const char *why;
        kvb_mc_result r = kvb_mc_parse(buf, len, &rep, &used, &why);
        if (r == KVB_MC_NEED_MORE)
            return 0;
        if (r == KVB_MC_BAD) {
            conn_fail(c, "memcache protocol error from the server", why);
            return 0;
        }
        conn_reply_mc(c, &rep, now);
        return used;
    }
    if (conn_protocol(c) == KVB_PROTOCOL_RESP) {
        kvb_resp_reply rep;
        size_t used;
        const char *why;
        kvb_resp_result r = kvb_resp_parse(buf, len, &rep, &used, &why);
        if (r == KVB_RESP_NEED_MORE)
            return 0;
        if (r == KVB_RESP_BAD) {
            conn_fail(c, "RESP protocol error from the server", why);
            return 0;
        }
        conn_reply_resp(c, &rep, now);
        return used;
    }
    size_t off, blen;
    kv_proto_split_result sr = kv_proto_frame_split(buf, len, 0, &off, &blen);
    if (sr == KV_PROTO_NEED_MORE)
        return 0;
    if (sr != KV_PROTO_FRAME) {
        conn_fail(c, "protocol", "bad frame length from the server");
        return 0;
    }
    conn_reply_kvd(c, buf + off, blen, now);
    return off + blen;
}

static void on_alloc(uv_handle_t *h, size_t suggested, uv_buf_t *buf)
{
    (void)suggested;
    kvb_conn *c = h->data;
    if (c->in_cap - c->in_len < READ_CHUNK) {
        size_t cap = c->in_cap ? c->in_cap * 2 : 2 * READ_CHUNK;
        while (cap - c->in_len < READ_CHUNK)
            cap *= 2;
        uint8_t *p = realloc(c->in, cap);
        if (!p) {
            *buf = uv_buf_init(NULL, 0); /* libuv reports UV_ENOBUFS */
            return;
        }
        c->in = p;
        c->in_cap = cap;
    }
    *buf = uv_buf_init((char *)c->in + c->in_len, (unsigned)(c->in_cap - c->in_len));
}

static void on_read(uv_stream_t *s, ssize_t nread, const uv_buf_t *buf)
{
    (void)buf;
    kvb_conn *c = s->data;
    if (nread == 0)
        return;
    if (nread < 0) {
        conn_fail(c, "read", nread == UV_EOF ? "server closed the connection"
                                             : uv_strerror((int)nread));
        return;
    }
    c->in_len += (size_t)nread;
    c->w->phase = atomic_load_explicit(&c->w->run->phase, memory_order_acquire);

    uint64_t now = uv_hrtime();
    size_t pos = 0;
    while (c->state < KVB_CONN_CLOSING) {
        size_t used = conn_next_reply(c, c->in + pos, c->in_len - pos, now);
        if (used == 0)
            break;
        pos += used;
    }
    if (c->state >= KVB_CONN_CLOSING)
        return;
    if (pos > 0) {
        memmove(c->in, c->in + pos, c->in_len - pos);
        c->in_len -= pos;
    }
    conn_fill(c);
    conn_flush(c);
}

static void on_connect(uv_connect_t *req, int status)
{
    kvb_conn *c = req->data;
    if (c->state >= KVB_CONN_CLOSING)
        return;
    if (status < 0) {
        conn_fail(c, "connect", uv_strerror(status));
        return;
    }
    int rc = uv_read_start(&c->h.stream, on_alloc, on_read);
    if (rc < 0) {
        conn_fail(c, "read", uv_strerror(rc));
        return;
    }
    c->state = KVB_CONN_SETUP;
    const kvb_opts *o = c->w->run->opts;
    static const char name[] = "kvbench";
    kv_proto_request hello = {.op = KV_PROTO_HELLO,
                              .min_version = KV_PROTO_MIN_VERSION,
                              .max_version = KV_PROTO_MAX_VERSION,
                              .client_name = {name, sizeof name - 1}};
    /* RESP2 is what a Redis connection speaks from the start, and
     * memcached has no handshake: HELLO is kvd's only. (No AUTH with
     * memcache: the options refuse --password.) */
    if (conn_protocol(c) == KVB_PROTOCOL_KVD && conn_queue(c, &hello) != 0)
        return;
    if (o->password) {
        kv_proto_request auth = {.op = KV_PROTO_AUTH,
                                 .secret = {o->password, strlen(o->password)}};
        if (conn_queue(c, &auth) != 0)
            return;
    }
    if (c->n == 0) /* nothing to wait for */
        conn_setup_done(c);
    conn_fill(c);
    conn_flush(c);
}

int kvb_conn_start(kvb_conn *c, kvb_worker *w, int gidx)
{
    const kvb_run *run = w->run;
    const kvb_opts *o = run->opts;
    memset(c, 0, sizeof *c);
    c->w = w;
    c->gidx = gidx;
    c->next_id = 1; /* id 0 is reserved for connection errors */
    c->preload_next = (uint64_t)gidx;
    kvb_rng_seed(&c->rng, o->seed * 1000003u + (uint64_t)gidx);
    c->cap = (size_t)(o->pipeline > PRELOAD_DEPTH ? o->pipeline : PRELOAD_DEPTH);
    c->ring = calloc(c->cap, sizeof *c->ring);

    int rc;
    if (o->unix_path)
        rc = uv_pipe_init(&w->loop, &c->h.pipe, 0);
    else
        rc = uv_tcp_init(&w->loop, &c->h.tcp);
    if (rc < 0) {
        c->state = KVB_CONN_CLOSED; /* never initialised: nothing to close */
        return rc;
    }
    c->h.handle.data = c;
    c->connect_req.data = c;
    c->write_req.data = c;
    c->state = KVB_CONN_CONNECTING;
    if (!c->ring) {
        conn_fail(c, "connect", "out of memory");
        return UV_ENOMEM;
    }
    if (o->unix_path) {
        uv_pipe_connect(&c->connect_req, &c->h.pipe, o->unix_path, on_connect);
        return 0;
    }
    uv_tcp_nodelay(&c->h.tcp, 1);
    rc = uv_tcp_connect(&c->connect_req, &c->h.tcp,
                        (const struct sockaddr *)&run->addr, on_connect);
    if (rc < 0) {
        conn_fail(c, "connect", uv_strerror(rc));
        return rc;
    }
    return 0;
}

void kvb_conn_run(kvb_conn *c, uint64_t first_due_ns)
{
    if (c->state != KVB_CONN_READY)
        return;
    const kvb_opts *o = c->w->run->opts;
    if (o->rate > 0)
        kvb_sched_init(&c->sched, first_due_ns, (double)o->connections * 1e9 / o->rate);
    c->state = KVB_CONN_RUN;
    conn_fill(c);
    conn_flush(c);
}

void kvb_conn_send_due(kvb_conn *c, uint64_t now_ns)
{
    if (c->state != KVB_CONN_RUN)
        return;
    if (c->w->phase != KVB_PHASE_WARMUP && c->w->phase != KVB_PHASE_MEASURE)
        return;
    conn_fill_due(c, now_ns);
    conn_flush(c);
}

uint64_t kvb_conn_backlog(const kvb_conn *c, uint64_t end_ns)
{
    if (c->sched.interval_ns <= 0) /* never ran */
        return 0;
    return kvb_sched_due(&c->sched, end_ns);
}

void kvb_conn_setup_expired(kvb_conn *c)
{
    if (c->state == KVB_CONN_CONNECTING)
        conn_fail(c, "connect", "no connection after " KVB_SETUP_LIMIT_TEXT);
    else if (c->state == KVB_CONN_SETUP)
        conn_fail(c, "handshake",
                  conn_protocol(c) != KVB_PROTOCOL_KVD
                      ? "no answer to AUTH after " KVB_SETUP_LIMIT_TEXT
                      : "no answer to HELLO after " KVB_SETUP_LIMIT_TEXT
                        " (is this kvd? for Redis use --protocol resp, for memcached"
                        " --protocol memcache)");
}

void kvb_conn_stop(kvb_conn *c, int force)
{
    if (c->state >= KVB_CONN_CLOSING)
        return;
    if (force || c->n == 0 || c->state != KVB_CONN_RUN)
        conn_close(c);
}

void kvb_conn_free(kvb_conn *c)
{
    free(c->ring);
    free(c->in);
    kv_proto_buf_free(&c->out);
    kv_proto_buf_free(&c->wbuf);
    c->ring = NULL;
    c->in = NULL;
}
