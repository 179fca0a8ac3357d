/*
 * tcp.c - Raft's TCP transport without Nagle's algorithm (tcp.h).
 *
 * The outer transport forwards every call to raft_uv_tcp's and sets
 * TCP_NODELAY on each stream before Raft gets it: an accepted one in
 * on_accept, a connected one in on_connect, through a request of our own
 * wrapped around Raft's (freed once Raft's callback has run, as the
 * interface allows: canceled requests included).
 */
#include "tcp.h"

#include <stddef.h>
#include <stdlib.h>
#include <string.h>
#include <uv.h>

#include "../log.h"

#define OUTER(t) ((kvd_raft_tcp *)((char *)(t) - offsetof(kvd_raft_tcp, outer)))
#define INNER(t) ((kvd_raft_tcp *)((char *)(t) - offsetof(kvd_raft_tcp, inner)))

typedef struct connect_req {
    struct raft_uv_connect req;    /* given to raft_uv_tcp */
    struct raft_uv_connect *raft;  /* Raft's */
    raft_uv_connect_cb cb;         /* Raft's callback */
} connect_req;

static void no_delay(struct uv_stream_s *stream)
{
    if (stream && stream->type == UV_TCP) {
        int rc = uv_tcp_nodelay((uv_tcp_t *)stream, 1);
        if (rc != 0)
            kvd_warn("raft: cannot turn Nagle's algorithm off on a peer connection: %s",
                     uv_strerror(rc));
    }
}

/* Copies the inner transport's last error where Raft reads it. */
static int forward(kvd_raft_tcp *w, int rc)
{
    if (rc != 0)
        memcpy(w->outer.errmsg, w->inner.errmsg, sizeof w->outer.errmsg);
    return rc;
}

static int tcp_init(struct raft_uv_transport *t, raft_id id, const char *address)
{
    kvd_raft_tcp *w = OUTER(t);
    return forward(w, w->inner.init(&w->inner, id, address));
}

static void on_accept(struct raft_uv_transport *inner, raft_id id, const char *address,
                      struct uv_stream_s *stream)
{
    kvd_raft_tcp *w = INNER(inner);
    no_delay(stream);
    w->accept_cb(&w->outer, id, address, stream);
}

static int tcp_listen(struct raft_uv_transport *t, raft_uv_accept_cb cb)
{
    kvd_raft_tcp *w = OUTER(t);
    w->accept_cb = cb;
    return forward(w, w->inner.listen(&w->inner, on_accept));
}

static void on_connect(struct raft_uv_connect *req, struct uv_stream_s *stream, int status)
{
    connect_req *c = (connect_req *)req;
    struct raft_uv_connect *raft = c->raft;
    raft_uv_connect_cb cb = c->cb;
    free(c);
    if (status == 0)
        no_delay(stream);
    cb(raft, stream, status);
}

static int tcp_connect(struct raft_uv_transport *t, struct raft_uv_connect *req, raft_id id,
                       const char *address, raft_uv_connect_cb cb)
{
    kvd_raft_tcp *w = OUTER(t);
    connect_req *c = calloc(1, sizeof *c);
    if (!c)
        return RAFT_NOMEM;
    c->raft = req;
    c->cb = cb;
    req->cb = cb;
    int rc = w->inner.connect(&w->inner, &c->req, id, address, on_connect);
    if (rc != 0)
        free(c); /* its callback never runs */
    return forward(w, rc);
}

static void on_closed(struct raft_uv_transport *inner)
{
    kvd_raft_tcp *w = INNER(inner);
    if (w->close_cb)
        w->close_cb(&w->outer);
}

static void tcp_close(struct raft_uv_transport *t, raft_uv_transport_close_cb cb)
{
    kvd_raft_tcp *w = OUTER(t);
    w->close_cb = cb;
    w->inner.close(&w->inner, on_closed);
}

int kvd_raft_tcp_init(kvd_raft_tcp *t, struct uv_loop_s *loop, const char *bind)
{
    memset(t, 0, sizeof *t);
    int rc = raft_uv_tcp_init(&t->inner, loop);
    if (rc == 0 && bind)
        rc = raft_uv_tcp_set_bind_address(&t->inner, bind);
    if (rc != 0) {
        if (t->inner.impl)
            raft_uv_tcp_close(&t->inner);
        return rc;
    }
    t->outer.init = tcp_init;
    t->outer.listen = tcp_listen;
    t->outer.connect = tcp_connect;
    t->outer.close = tcp_close;
    return 0;
}

void kvd_raft_tcp_close(kvd_raft_tcp *t)
{
    raft_uv_tcp_close(&t->inner);
}
