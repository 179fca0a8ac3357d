/*
 * test_client.c - libkvclient against a small in-process mock server.
 *
 * The mock speaks protocol v1 with the codec (one connection per test, in
 * its own thread, over loopback TCP or a Unix socket) and keeps a tiny
 * key-value table, so the client's operations, pipelining, errors
 * (refused, closed, timeout, bad reply, auth) and its messages can be
 * checked without kvd. kvd's own tests live in tests/integration. Modes
 * of version 7 act as a cluster that keeps request ids (SESSION) and
 * loses the answer of the first write (UNKNOWN_OUTCOME, or the
 * connection), so that the client's retry with the same id is seen, for
 * single calls and inside a pipeline.
 */
#include <arpa/inet.h>
#include <criterion/criterion.h>
#include <errno.h>
#include <netinet/in.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include "kv_client.h"
#include "kv_proto.h"

/* ---- mock server ------------------------------------------------------- */

enum mode {
    NORMAL, SILENT, CLOSE_AFTER_HELLO, BAD_ID, BUSY,
    LOSE_ANSWER,     /* v7 with SESSION: the first SET applied, answered
                        UNKNOWN_OUTCOME                                 */
    LOSE_CONNECTION, /* v7 with SESSION: the first SET applied, then the
                        connection closed unanswered                    */
    NO_SESSION,      /* v7, SESSION refused (not a cluster), the first
                        SET answered UNKNOWN_OUTCOME                     */
};

typedef struct entry {
    char key[64];
    size_t klen;
    char val[256];
    size_t vlen;
    uint64_t version;
} entry;

typedef struct mock {
    int lfd;
    enum mode mode;
    const char *password;
    uint16_t port;
    char path[108];
    pthread_t thread;
    entry table[64];
    int n;
    uint64_t revision;
    int authed;
    /* request ids (v7 modes) */
    uint64_t client;           /* SESSION's client id, 0: none          */
    uint64_t last_seq, last_rev; /* the last SET applied with an id     */
    int sets, lost, conns;     /* SETs received; answers lost; accepts  */
    uint64_t set_ids[8];       /* their request ids                     */
} mock;

static entry *find(mock *m, const void *k, size_t klen)
{
    for (int i = 0; i < m->n; i++)
        if (m->table[i].klen == klen && memcmp(m->table[i].key, k, klen) == 0)
            return &m->table[i];
    return NULL;
}

static uint64_t put(mock *m, const void *k, size_t klen, const void *v,
                    size_t vlen, uint64_t rev)
{
    entry *e = find(m, k, klen);
    if (e == NULL) {
        cr_assert_lt(m->n, 64);
        e = &m->table[m->n++];
        memcpy(e->key, k, klen);
        e->klen = klen;
    }
    cr_assert_leq(vlen, sizeof e->val);
    memcpy(e->val, v, vlen);
    e->vlen = vlen;
    e->version = rev;
    return rev;
}

static int del(mock *m, const void *k, size_t klen)
{
    entry *e = find(m, k, klen);
    if (e == NULL)
        return 0;
    *e = m->table[--m->n];
    return 1;
}

static void answer(mock *m, kv_proto_buf *out, const kv_proto_request *q)
{
    uint64_t id = m->mode == BAD_ID && q->op != KV_PROTO_HELLO ? q->id + 1
                                                               : q->id;
    if (m->password && !m->authed && q->op != KV_PROTO_HELLO &&
        q->op != KV_PROTO_AUTH && q->op != KV_PROTO_PING) {
        kv_proto_resp_status(out, id, KV_AUTH_REQUIRED, "auth first");
        return;
    }
    int v7 = m->mode == LOSE_ANSWER || m->mode == LOSE_CONNECTION || m->mode == NO_SESSION;
    switch (q->op) {
    case KV_PROTO_HELLO:
        kv_proto_resp_hello(out, id, v7 ? 7 : 1, "mock", "9.9");
        break;
    case KV_PROTO_SESSION:
        if (m->mode == NO_SESSION) {
            kv_proto_resp_status(out, id, KV_UNSUPPORTED, "not a cluster node");
            break;
        }
        m->client = q->client_id;
        kv_proto_resp_status(out, id, KV_OK, NULL);
        break;
    case KV_PROTO_PING:
        kv_proto_resp_status(out, id, KV_OK, NULL);
        break;
    case KV_PROTO_AUTH:
        if (m->password == NULL ||
            (q->secret.len == strlen(m->password) &&
             memcmp(q->secret.data, m->password, q->secret.len) == 0)) {
            m->authed = 1;
            kv_proto_resp_status(out, id, KV_OK, NULL);
        } else {
            kv_proto_resp_status(out, id, KV_AUTH_FAILED, "wrong password");
        }
        break;
    case KV_PROTO_GET: {
        entry *e = find(m, q->key.data, q->key.len);
        if (e)
            kv_proto_resp_value(out, id, e->val, e->vlen, e->version);
        else
            kv_proto_resp_status(out, id, KV_NOT_FOUND, NULL);
        break;
    }
    case KV_PROTO_MGET: {
        kv_value vals[16];
        cr_assert_leq(q->nkeys, 16);
        for (size_t i = 0; i < q->nkeys; i++) {
            entry *e = find(m, q->keys[i].data, q->keys[i].len);
            vals[i] = e ? (kv_value){e->val, e->vlen, e->version}
                        : (kv_value){NULL, 0, 0};
        }
        kv_proto_resp_mget(out, id, vals, q->nkeys);
        break;
    }
    case KV_PROTO_SET: {
        if (v7) {
            if (m->sets < 8)
                m->set_ids[m->sets] = q->id;
            m->sets++;
            if (m->client && q->id == m->last_seq) { /* a retry: not again */
                kv_proto_resp_version(out, id, m->last_rev);
                break;
            }
        }
        entry *e = find(m, q->key.data, q->key.len);
        uint64_t cur = e ? e->version : 0;
        if (q->has_expected && q->expected != cur) {
            kv_proto_resp_status(out, id, KV_VERSION_MISMATCH, NULL);
            break;
        }
        uint64_t rev = put(m, q->key.data, q->key.len, q->value.data, q->value.len,
                           ++m->revision);
        if (m->client) {
            m->last_seq = q->id;
            m->last_rev = rev;
        }
        if (v7 && !m->lost) {
            m->lost = 1;
            if (m->mode == LOSE_CONNECTION)
                break; /* no answer: serve() closes the connection */
            kv_proto_resp_status(out, id, KV_UNKNOWN_OUTCOME, "outcome unknown: lost leadership");
            break;
        }
        kv_proto_resp_version(out, id, rev);
        break;
    }
    case KV_PROTO_MSET:
        ++m->revision;
        for (size_t i = 0; i < q->npairs; i++)
            put(m, q->pairs[i].key, q->pairs[i].klen, q->pairs[i].val,
                q->pairs[i].vlen, m->revision);
        kv_proto_resp_version(out, id, m->revision);
        break;
    case KV_PROTO_DEL: {
        uint64_t n = 0;
        for (size_t i = 0; i < q->nkeys; i++)
            n += (uint64_t)del(m, q->keys[i].data, q->keys[i].len);
        kv_proto_resp_del(out, id, n, n ? ++m->revision : 0);
        break;
    }
    case KV_PROTO_TXN: {
        /* Enough for the client: compares are EXISTS only. */
        int ok = 1;
        for (size_t i = 0; i < q->ncmps; i++)
            ok &= find(m, q->cmps[i].key, q->cmps[i].klen) != NULL;
        const kv_op *ops = ok ? q->then_ops : q->else_ops;
        size_t n = ok ? q->nthen : q->nelse;
        kv_op_result res[8];
        cr_assert_leq(n, 8);
        uint64_t rev = 0;
        for (size_t i = 0; i < n; i++) {
            memset(&res[i], 0, sizeof res[i]);
            if (ops[i].kind == KV_OP_GET) {
                entry *e = find(m, ops[i].key, ops[i].klen);
                res[i].status = e ? KV_OK : KV_NOT_FOUND;
                if (e)
                    res[i].value = (kv_value){e->val, e->vlen, e->version};
            } else if (ops[i].kind == KV_OP_SET) {
                rev = rev ? rev : ++m->revision;
                put(m, ops[i].key, ops[i].klen, ops[i].value, ops[i].vlen,
                    rev);
            } else {
                res[i].status = del(m, ops[i].key, ops[i].klen)
                                    ? KV_OK
                                    : KV_NOT_FOUND;
            }
        }
        kv_txn_result t = {ok, rev, n, res};
        kv_proto_resp_txn(out, id, &t);
        break;
    }
    case KV_PROTO_SCAN: {
        kv_proto_scan_writer w;
        kv_proto_resp_scan_begin(out, id, &w);
        for (int i = 0; i < m->n; i++) {
            entry *e = &m->table[i];
            if (e->klen >= q->key.len &&
                memcmp(e->key, q->key.data, q->key.len) == 0)
                kv_proto_resp_scan_add(&w, e->key, e->klen, e->val, e->vlen,
                                       e->version);
        }
        kv_proto_resp_scan_end(&w, 0);
        break;
    }
    case KV_PROTO_METRICS: {
        kv_metrics st = {0};
        st.keys = (uint64_t)m->n;
        kv_proto_metric lat = {.name = "get", .kind = KV_PROTO_METRIC_DOUBLE,
                               .d = 2.5};
        kv_proto_metric ex[2] = {
            {.name = "connections", .kind = KV_PROTO_METRIC_UINT, .u = 1},
            {.name = "latency_us", .kind = KV_PROTO_METRIC_MAP,
             .children = &lat, .nchildren = 1}};
        kv_proto_resp_metrics(out, id, &st, ex, 2);
        break;
    }
    }
}

static void send_all(int fd, const uint8_t *p, size_t n)
{
    while (n > 0) {
        ssize_t w = send(fd, p, n, MSG_NOSIGNAL);
        if (w <= 0)
            return;
        p += w;
        n -= (size_t)w;
    }
}

static void serve_one(mock *m);

static void *serve(void *arg)
{
    mock *m = arg;
    /* LOSE_CONNECTION: the client comes back after the lost answer */
    for (int i = 0; i < (m->mode == LOSE_CONNECTION ? 2 : 1); i++)
        serve_one(m);
    return NULL;
}

static void serve_one(mock *m)
{
    int fd = accept(m->lfd, NULL, NULL);
    if (fd < 0)
        return;
    m->conns++;
    m->authed = 0;
    kv_proto_buf out = {0};
    if (m->mode == BUSY) {
        kv_proto_resp_status(&out, 0, KV_BUSY, "too many connections");
        send_all(fd, out.data, out.len);
        kv_proto_buf_free(&out);
        close(fd);
        return;
    }
    size_t cap = 1 << 20, len = 0;
    uint8_t *in = malloc(cap);
    for (;;) {
        ssize_t n = recv(fd, in + len, cap - len, 0);
        if (n <= 0)
            break;
        len += (size_t)n;
        size_t pos = 0, off, blen;
        kv_proto_buf_reset(&out);
        int quit = 0;
        /* after a lost connection the rest of a pipeline is not read */
        while (!quit && kv_proto_frame_split(in + pos, len - pos, 0, &off, &blen) ==
                            KV_PROTO_FRAME) {
            kv_proto_request q;
            int rc = kv_proto_request_decode(in + pos + off, blen, NULL, NULL,
                                             &q);
            pos += off + blen;
            if (rc != KV_OK) {
                kv_proto_resp_status(&out, q.has_id ? q.id : 0, rc, q.error);
            } else if (m->mode == SILENT && q.op != KV_PROTO_HELLO) {
                /* swallow it */
            } else {
                int lost = m->lost;
                answer(m, &out, &q);
                if (m->mode == CLOSE_AFTER_HELLO ||
                    (m->mode == LOSE_CONNECTION && m->lost != lost))
                    quit = 1;
            }
            kv_proto_request_free(&q);
        }
        memmove(in, in + pos, len - pos);
        len -= pos;
        send_all(fd, out.data, out.len);
        if (quit)
            break;
    }
    free(in);
    kv_proto_buf_free(&out);
    close(fd);
}

static void mock_start(mock *m, enum mode mode, int unix_socket)
{
    memset(m, 0, sizeof *m);
    m->mode = mode;
    if (unix_socket) {
        struct sockaddr_un a = {.sun_family = AF_UNIX};
        snprintf(m->path, sizeof m->path, "/tmp/kvproto-test-%d.sock",
                 (int)getpid());
        unlink(m->path);
        snprintf(a.sun_path, sizeof a.sun_path, "%s", m->path);
        m->lfd = socket(AF_UNIX, SOCK_STREAM, 0);
        cr_assert_eq(bind(m->lfd, (struct sockaddr *)&a, sizeof a), 0);
    } else {
        struct sockaddr_in a = {.sin_family = AF_INET};
        a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
        socklen_t al = sizeof a;
        m->lfd = socket(AF_INET, SOCK_STREAM, 0);
        cr_assert_eq(bind(m->lfd, (struct sockaddr *)&a, sizeof a), 0);
        getsockname(m->lfd, (struct sockaddr *)&a, &al);
        m->port = ntohs(a.sin_port);
    }
    cr_assert_eq(listen(m->lfd, 4), 0);
}

static void mock_run(mock *m)
{
    cr_assert_eq(pthread_create(&m->thread, NULL, serve, m), 0);
}

static void mock_stop(mock *m)
{
    pthread_join(m->thread, NULL);
    close(m->lfd);
    if (m->path[0])
        unlink(m->path);
}

static kv_client *client_for(const mock *m, int io_timeout_ms)
{
    kv_client_options o;
    kv_client_options_init(&o);
    o.port = m->port;
    o.io_timeout_ms = io_timeout_ms;
    o.password = m->password;
    if (m->path[0])
        o.unix_path = m->path;
    kv_client *c = NULL;
    cr_assert_eq(kv_client_new(&o, &c), KV_OK);
    return c;
}

/* ---- tests -------------------------------------------------------------- */

Test(client, refused_connection_message)
{
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    struct sockaddr_in a = {.sin_family = AF_INET};
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    socklen_t al = sizeof a;
    bind(fd, (struct sockaddr *)&a, sizeof a);
    getsockname(fd, (struct sockaddr *)&a, &al);
    close(fd); /* nobody listens on this port now */

    kv_client_options o;
    kv_client_options_init(&o);
    o.port = ntohs(a.sin_port);
    kv_client *c = NULL;
    cr_assert_eq(kv_client_open(&o, &c), KV_CONNECT);
    cr_assert_not_null(c);
    char want[64];
    snprintf(want, sizeof want,
             "cannot connect to 127.0.0.1:%u: connection refused",
             (unsigned)o.port);
    cr_expect_str_eq(kv_client_last_error(c), want);
    cr_expect_eq(kv_client_is_connected(c), 0);
    cr_expect_eq(kv_client_ping(c), KV_CLOSED);
    kv_client_close(c);

    o.host = "no-such-host.invalid";
    cr_expect_eq(kv_client_open(&o, &c), KV_CONNECT);
    cr_expect(strstr(kv_client_last_error(c), "no-such-host.invalid") != NULL);
    kv_client_close(c);
}

Test(client, operations)
{
    mock m;
    mock_start(&m, NORMAL, 0);
    mock_run(&m);
    kv_client *c = client_for(&m, 5000);
    cr_assert_eq(kv_client_connect(c), KV_OK, "%s", kv_client_last_error(c));
    cr_expect_eq(kv_client_protocol_version(c), 1);
    cr_expect_str_eq(kv_client_server_name(c), "mock");
    cr_expect_str_eq(kv_client_server_version(c), "9.9");
    cr_expect_eq(kv_client_ping(c), KV_OK);

    static const char bk[] = {'b', '\0', 'k'};
    static const char bv[] = {'\0', 'v', '\0'};
    uint64_t ver = 0;
    cr_expect_eq(kv_client_set(c, bk, 3, bv, 3, &ver), KV_OK);
    cr_expect_eq(ver, 1);
    kv_value v = {0};
    cr_assert_eq(kv_client_get(c, bk, 3, &v), KV_OK);
    cr_expect(v.len == 3 && memcmp(v.data, bv, 3) == 0);
    cr_expect_eq(v.version, 1);
    kv_client_value_free(&v);
    cr_expect_eq(kv_client_get(c, "nope", 4, &v), KV_NOT_FOUND);
    cr_expect_null(v.data);

    /* CAS */
    cr_expect_eq(kv_client_set_if(c, bk, 3, "x", 1, 7, &ver),
                 KV_VERSION_MISMATCH);
    cr_expect_eq(kv_client_set_if(c, bk, 3, "x", 1, 1, &ver), KV_OK);
    cr_expect_eq(kv_client_set_if(c, "new", 3, "", 0, 0, &ver), KV_OK);

    /* MSET / MGET */
    kv_pair pairs[2] = {{"a", 1, "1", 1}, {"b", 1, "22", 2}};
    cr_expect_eq(kv_client_mset(c, pairs, 2, &ver), KV_OK);
    kv_key keys[3] = {{"a", 1}, {"zz", 2}, {"b", 1}};
    kv_value vals[3];
    cr_assert_eq(kv_client_mget(c, keys, 3, vals), KV_OK);
    cr_expect(vals[0].len == 1 && memcmp(vals[0].data, "1", 1) == 0);
    cr_expect_null(vals[1].data);
    cr_expect(vals[2].len == 2 && vals[2].version == ver);
    kv_client_values_free(vals, 3);

    /* DEL */
    cr_expect_eq(kv_client_del(c, "zz", 2, NULL), KV_NOT_FOUND);
    size_t deleted = 9;
    uint64_t dver = 12345;
    cr_expect_eq(kv_client_mdel(c, keys, 3, &deleted, &dver), KV_OK);
    cr_expect_eq(deleted, 2);
    cr_expect_neq(dver, 12345);
    cr_expect_eq(kv_client_del(c, bk, 3, &ver), KV_OK);

    /* TXN */
    kv_compare cmp = {.kind = KV_CMP_EXISTS, .key = "new", .klen = 3};
    kv_op then_ops[2] = {{KV_OP_SET, "t", 1, "tv", 2, 0},
                         {KV_OP_GET, "t", 1, NULL, 0, 0}};
    kv_op else_ops[1] = {{KV_OP_GET, "none", 4, NULL, 0, 0}};
    kv_txn_result tr;
    cr_assert_eq(kv_client_txn(c, &cmp, 1, then_ops, 2, else_ops, 1, &tr),
                 KV_OK);
    cr_expect_eq(tr.succeeded, 1);
    cr_assert_eq(tr.nresults, 2);
    cr_expect(tr.results[1].value.len == 2 &&
              memcmp(tr.results[1].value.data, "tv", 2) == 0);
    kv_client_txn_result_free(&tr);
    cmp.key = "missing";
    cmp.klen = 7;
    cr_assert_eq(kv_client_txn(c, &cmp, 1, then_ops, 2, else_ops, 1, &tr),
                 KV_OK);
    cr_expect_eq(tr.succeeded, 0);
    cr_assert_eq(tr.nresults, 1);
    cr_expect_eq(tr.results[0].status, KV_NOT_FOUND);
    cr_expect_null(tr.results[0].value.data);
    kv_client_txn_result_free(&tr);

    /* METRICS */
    kv_client_metrics mm;
    cr_assert_eq(kv_client_metrics_get(c, &mm), KV_OK);
    const kv_client_metric *k = kv_client_metrics_find(&mm, NULL, "keys");
    cr_assert_not_null(k);
    cr_expect_eq(k->kind, KV_CLIENT_METRIC_UINT);
    const kv_client_metric *g =
        kv_client_metrics_find(&mm, "latency_us", "get");
    cr_assert_not_null(g);
    cr_expect_float_eq(g->d, 2.5, 1e-9);
    cr_expect_null(kv_client_metrics_find(&mm, NULL, "nope"));
    kv_client_metrics_free(&mm);

    /* server-side validation error keeps the connection */
    cr_expect_eq(kv_client_get(c, "", 0, &v), KV_KEY_EMPTY);
    cr_expect(strlen(kv_client_last_error(c)) > 0);
    cr_expect_eq(kv_client_ping(c), KV_OK);

    kv_client_close(c);
    mock_stop(&m);
}

static int count_scan(void *ctx, const void *k, size_t klen, const void *v,
                      size_t vlen, uint64_t version)
{
    (void)k; (void)v; (void)vlen; (void)version;
    cr_expect_eq(klen, 6);
    ++*(int *)ctx;
    return 0;
}

Test(client, scan_and_pipeline_over_unix_socket)
{
    mock m;
    mock_start(&m, NORMAL, 1);
    mock_run(&m);
    kv_client *c = client_for(&m, 5000);
    cr_assert_eq(kv_client_connect(c), KV_OK, "%s", kv_client_last_error(c));

    kv_client_pipeline *p;
    cr_assert_eq(kv_client_pipeline_new(c, &p), KV_OK);
    char key[16];
    for (int i = 0; i < 40; i++) {
        snprintf(key, sizeof key, "key:%02d", i);
        cr_assert_eq(kv_client_pipeline_set(p, key, 6, key, 6), KV_OK);
    }
    cr_assert_eq(kv_client_pipeline_get(p, "key:07", 6), KV_OK);
    cr_assert_eq(kv_client_pipeline_get(p, "absent", 6), KV_OK);
    kv_key ks[2] = {{"key:01", 6}, {"absent", 6}};
    cr_assert_eq(kv_client_pipeline_mget(p, ks, 2), KV_OK);
    cr_assert_eq(kv_client_pipeline_set_if(p, "key:00", 6, "x", 1, 999),
                 KV_OK);
    cr_assert_eq(kv_client_pipeline_del(p, ks, 2), KV_OK);
    cr_assert_eq(kv_client_pipeline_ping(p), KV_OK);
    cr_expect_eq(kv_client_pipeline_count(p), 46);
    cr_assert_eq(kv_client_pipeline_exec(p), KV_OK, "%s",
                 kv_client_last_error(c));
    cr_assert_eq(kv_client_pipeline_replies(p), 46);
    for (int i = 0; i < 40; i++) {
        const kv_client_reply *r = kv_client_pipeline_reply(p, (size_t)i);
        cr_expect_eq(r->status, KV_OK);
        cr_expect_eq(r->version, (uint64_t)i + 1);
    }
    const kv_client_reply *r = kv_client_pipeline_reply(p, 40);
    cr_expect(r->status == KV_OK && r->value.len == 6 &&
              memcmp(r->value.data, "key:07", 6) == 0);
    cr_expect_eq(kv_client_pipeline_reply(p, 41)->status, KV_NOT_FOUND);
    r = kv_client_pipeline_reply(p, 42);
    cr_expect(r->nvalues == 2 && r->values[0].data && !r->values[1].data);
    cr_expect_eq(kv_client_pipeline_reply(p, 43)->status,
                 KV_VERSION_MISMATCH);
    cr_expect_eq(kv_client_pipeline_reply(p, 44)->deleted, 1);
    cr_expect_null(kv_client_pipeline_reply(p, 46));
    cr_expect_eq(kv_client_pipeline_count(p), 0);

    /* reuse after exec; an empty exec is fine */
    cr_assert_eq(kv_client_pipeline_exec(p), KV_OK);
    cr_expect_eq(kv_client_pipeline_replies(p), 0);
    kv_client_pipeline_free(p);

    int n = 0;
    uint64_t next = 1;
    cr_assert_eq(kv_client_scan(c, "key:", 4, 0, 0, count_scan, &n, &next),
                 KV_OK);
    cr_expect_eq(n, 39); /* key:01 was deleted */
    cr_expect_eq(next, 0);

    kv_client_close(c);
    mock_stop(&m);
}

Test(client, auth)
{
    mock m;
    mock_start(&m, NORMAL, 0);
    m.password = "s3cret";
    mock_run(&m);
    kv_client *c = client_for(&m, 5000);
    cr_assert_eq(kv_client_connect(c), KV_OK, "%s", kv_client_last_error(c));
    cr_expect_eq(kv_client_set(c, "k", 1, "v", 1, NULL), KV_OK);
    kv_client_close(c);
    mock_stop(&m);

    mock_start(&m, NORMAL, 0);
    m.password = "s3cret";
    mock_run(&m);
    kv_client_options o;
    kv_client_options_init(&o);
    o.port = m.port;
    o.password = "wrong";
    cr_assert_eq(kv_client_new(&o, &c), KV_OK);
    cr_expect_eq(kv_client_connect(c), KV_AUTH_FAILED);
    cr_expect(strstr(kv_client_last_error(c), "wrong password") != NULL,
              "%s", kv_client_last_error(c));
    cr_expect_eq(kv_client_is_connected(c), 0);
    kv_client_close(c);
    mock_stop(&m);
}

Test(client, timeout_closes_connection)
{
    mock m;
    mock_start(&m, SILENT, 0);
    mock_run(&m);
    kv_client *c = client_for(&m, 200);
    cr_assert_eq(kv_client_connect(c), KV_OK, "%s", kv_client_last_error(c));
    cr_expect_eq(kv_client_ping(c), KV_TIMEOUT);
    cr_expect(strstr(kv_client_last_error(c), "timed out") != NULL);
    cr_expect_eq(kv_client_is_connected(c), 0);
    cr_expect_eq(kv_client_ping(c), KV_CLOSED);
    kv_client_close(c);
    mock_stop(&m);
}

Test(client, server_closing_gives_closed)
{
    mock m;
    mock_start(&m, CLOSE_AFTER_HELLO, 0);
    mock_run(&m);
    kv_client *c = client_for(&m, 5000);
    cr_assert_eq(kv_client_connect(c), KV_OK, "%s", kv_client_last_error(c));
    int rc = kv_client_ping(c);
    cr_expect_eq(rc, KV_CLOSED, "%d %s", rc, kv_client_last_error(c));
    cr_expect_eq(kv_client_is_connected(c), 0);
    kv_client_close(c);
    mock_stop(&m);
}

Test(client, wrong_reply_id_is_protocol_error)
{
    mock m;
    mock_start(&m, BAD_ID, 0);
    mock_run(&m);
    kv_client *c = client_for(&m, 5000);
    cr_assert_eq(kv_client_connect(c), KV_OK, "%s", kv_client_last_error(c));
    cr_expect_eq(kv_client_ping(c), KV_PROTOCOL);
    cr_expect(strstr(kv_client_last_error(c), "does not match") != NULL);
    cr_expect_eq(kv_client_is_connected(c), 0);
    kv_client_close(c);
    mock_stop(&m);
}

Test(client, busy_server)
{
    mock m;
    mock_start(&m, BUSY, 0);
    mock_run(&m);
    kv_client *c = client_for(&m, 5000);
    int rc = kv_client_connect(c);
    /* BUSY, or CLOSED if the close raced our HELLO */
    cr_expect(rc == KV_BUSY || rc == KV_CLOSED, "%d %s", rc,
              kv_client_last_error(c));
    cr_expect_eq(kv_client_is_connected(c), 0);
    kv_client_close(c);
    mock_stop(&m);
}

Test(client, misc)
{
    cr_expect_str_eq(kv_client_strerror(KV_NOT_FOUND), "key not found");
    cr_expect_str_eq(kv_client_strerror(999), "unknown status");
    cr_expect_str_eq(kv_client_status_name(KV_TIMEOUT), "TIMEOUT");
    cr_expect_str_eq(kv_client_version(), KV_VERSION_STRING);
    kv_client_close(NULL);
    kv_client_pipeline_free(NULL);
    kv_client_options o;
    kv_client_options_init(&o);
    char longpath[200];
    memset(longpath, 'x', sizeof longpath - 1);
    longpath[sizeof longpath - 1] = '\0';
    o.unix_path = longpath;
    kv_client *c = NULL;
    cr_expect_eq(kv_client_new(&o, &c), KV_INVALID_ARGUMENT);
    cr_expect_null(c);
}

/* A write whose answer is lost is sent again with the same request id,
 * and (the server keeping request ids) applied once. */
static void retried_once(enum mode mode)
{
    mock m;
    mock_start(&m, mode, 0);
    mock_run(&m);
    kv_client *c = client_for(&m, 5000);
    cr_assert_eq(kv_client_set_retries(c, 3), KV_OK);
    cr_assert_eq(kv_client_connect(c), KV_OK, "%s", kv_client_last_error(c));
    uint64_t v = 0, v2 = 0;
    cr_assert_eq(kv_client_set(c, "k", 1, "v", 1, &v), KV_OK, "%s", kv_client_last_error(c));
    cr_expect_eq(v, 1, "the first outcome");
    cr_expect_eq(kv_client_retried(c), 1);
    /* the next write gets a new id */
    cr_assert_eq(kv_client_set(c, "k", 1, "w", 1, &v2), KV_OK);
    cr_expect_eq(v2, 2);
    kv_client_close(c);
    mock_stop(&m); /* joined: its fields are read from here on */
    cr_expect_neq(m.client, 0, "SESSION sent with a client id");
    cr_expect_eq(m.revision, 2, "the first write applied once");
    cr_expect_eq(m.sets, 3);
    cr_expect_eq(m.set_ids[0], m.set_ids[1], "the retry has the same request id");
    cr_expect_gt(m.set_ids[2], m.set_ids[1]);
    cr_expect_eq(m.conns, mode == LOSE_CONNECTION ? 2 : 1);
}

Test(client, unknown_outcome_is_retried_with_the_same_request_id)
{
    retried_once(LOSE_ANSWER);
}

Test(client, lost_connection_is_retried_with_the_same_request_id)
{
    retried_once(LOSE_CONNECTION);
}

Test(client, without_retries_or_a_session_nothing_is_sent_again)
{
    mock m;
    mock_start(&m, LOSE_ANSWER, 0);
    mock_run(&m);
    kv_client *c = client_for(&m, 5000);
    cr_assert_eq(kv_client_connect(c), KV_OK, "%s", kv_client_last_error(c));
    cr_expect_eq(kv_client_set(c, "k", 1, "v", 1, NULL), KV_UNKNOWN_OUTCOME);
    cr_expect_eq(kv_client_retried(c), 0);
    kv_client_close(c);
    mock_stop(&m);
    cr_expect_eq(m.client, 0, "no SESSION without retries");
    cr_expect_eq(m.sets, 1);

    mock_start(&m, NO_SESSION, 0);
    mock_run(&m);
    c = client_for(&m, 5000);
    cr_assert_eq(kv_client_connect(c), KV_OK, "%s", kv_client_last_error(c));
    cr_expect_eq(kv_client_set_retries(c, 3), KV_UNSUPPORTED, "not a cluster node");
    cr_expect_eq(kv_client_set(c, "k", 1, "v", 1, NULL), KV_UNKNOWN_OUTCOME,
                 "not retried without request ids");
    cr_expect_eq(kv_client_retried(c), 0);
    cr_expect_eq(kv_client_set_retries(c, -1), KV_INVALID_ARGUMENT);
    cr_expect_eq(kv_client_set_consistency(c, 2), KV_INVALID_ARGUMENT);
    kv_client_close(c);
    mock_stop(&m);
    cr_expect_eq(m.sets, 1);
}

/* A pipeline whose connection is lost after its first write was applied
 * (unanswered): the answered PING keeps its answer, the write goes again
 * with its request id (answered with its first outcome, not applied
 * again), the requests after it are sent again, in order. */
Test(client, a_pipeline_s_unanswered_requests_go_again_with_their_ids)
{
    mock m;
    mock_start(&m, LOSE_CONNECTION, 0);
    mock_run(&m);
    kv_client *c = client_for(&m, 5000);
    cr_assert_eq(kv_client_set_retries(c, 3), KV_OK);
    cr_assert_eq(kv_client_connect(c), KV_OK, "%s", kv_client_last_error(c));
    kv_client_pipeline *p;
    cr_assert_eq(kv_client_pipeline_new(c, &p), KV_OK);
    kv_client_pipeline_ping(p);
    kv_client_pipeline_set(p, "a", 1, "1", 1);
    kv_client_pipeline_set(p, "b", 1, "2", 1);
    kv_client_pipeline_get(p, "a", 1);
    cr_assert_eq(kv_client_pipeline_exec(p), KV_OK, "%s", kv_client_last_error(c));
    cr_assert_eq(kv_client_pipeline_replies(p), 4);
    cr_expect_eq(kv_client_pipeline_reply(p, 0)->status, KV_OK);
    const kv_client_reply *a = kv_client_pipeline_reply(p, 1);
    const kv_client_reply *b = kv_client_pipeline_reply(p, 2);
    const kv_client_reply *g = kv_client_pipeline_reply(p, 3);
    cr_expect_eq(a->status, KV_OK);
    cr_expect_eq(a->version, 1, "its first outcome");
    cr_expect_eq(b->status, KV_OK);
    cr_expect_eq(b->version, 2);
    cr_expect_eq(g->op, KV_CLIENT_OP_GET);
    cr_expect_eq(g->status, KV_OK);
    cr_expect_eq(g->value.version, 1);
    cr_expect_eq(kv_client_retried(c), 2, "both writes sent may have run");
    kv_client_pipeline_free(p);
    kv_client_close(c);
    mock_stop(&m);
    cr_expect_eq(m.conns, 2);
    cr_expect_eq(m.revision, 2, "each write applied once");
    cr_expect_eq(m.sets, 3, "a, then a again and b");
    cr_expect_eq(m.set_ids[0], m.set_ids[1], "a went again with its request id");
}

/* Without retries nothing is sent again: a write answered
 * UNKNOWN_OUTCOME keeps that answer, the others theirs. */
Test(client, a_pipeline_without_retries_sends_nothing_again)
{
    mock m;
    mock_start(&m, LOSE_ANSWER, 0);
    mock_run(&m);
    kv_client *c = client_for(&m, 5000);
    cr_assert_eq(kv_client_connect(c), KV_OK, "%s", kv_client_last_error(c));
    kv_client_pipeline *p;
    cr_assert_eq(kv_client_pipeline_new(c, &p), KV_OK);
    kv_client_pipeline_set(p, "a", 1, "1", 1);
    kv_client_pipeline_set(p, "b", 1, "2", 1);
    cr_assert_eq(kv_client_pipeline_exec(p), KV_OK, "%s", kv_client_last_error(c));
    cr_expect_eq(kv_client_pipeline_reply(p, 0)->status, KV_UNKNOWN_OUTCOME);
    cr_expect_eq(kv_client_pipeline_reply(p, 1)->status, KV_OK);
    cr_expect_eq(kv_client_retried(c), 0);
    kv_client_pipeline_free(p);
    kv_client_close(c);
    mock_stop(&m);
    cr_expect_eq(m.sets, 2, "each sent once");
}
