/*
 * conn_write.c - the output side of a connection: sending a batch of
 * responses, completion, and what follows when output drains (resuming a
 * paused connection, finishing a fatal error or an ended input).
 *
 * One write per batch: tried directly (uv_try_write) when nothing is
 * queued, otherwise - and for whatever the kernel did not take - queued
 * with uv_write. Queued writes complete in order and a direct write is
 * only tried behind an empty queue, so responses keep request order.
 * c->pending counts queued bytes; conn.c pauses on it (backpressure).
 */
#include <stdlib.h>
#include <string.h>

#include "conn_internal.h"
#include "log.h"

#define KEEP_SPARE_MAX ((size_t)64 << 10) /* reuse output buffers up to this */

typedef struct kvd_write {
    uv_write_t req;
    kv_proto_buf buf; /* the batch; bytes before off were sent already */
    size_t off;
    kvd_conn *c;
} kvd_write;

/* Nothing is being written any more: finish a fatal error or an ended
 * input. */
void kvd__conn_settle(kvd_conn *c)
{
    if (c->closing || c->nwrites > 0)
        return;
    if (c->fatal)
        kvd__conn_linger(c);
    else if (c->eof && !c->paused)
        kvd_conn_close(c);
}

static void conn_after_write(kvd_conn *c)
{
    if (c->paused && c->pending <= c->w->server->out_low)
        kvd__conn_resume(c);
    kvd__conn_settle(c);
}

static void keep_or_free(kvd_conn *c, kv_proto_buf *b)
{
    if (!c->spare.data && b->cap <= KEEP_SPARE_MAX) {
        c->spare = *b;
        kv_proto_buf_reset(&c->spare);
    } else {
        kv_proto_buf_free(b);
    }
}

static void on_write(uv_write_t *req, int status)
{
    kvd_write *wr = (kvd_write *)req;
    kvd_conn *c = wr->c;
    size_t n = wr->buf.len - wr->off;
    c->pending -= n;
    c->nwrites--;
    if (status == 0) {
        kvd_stat_add(&c->w->stats.bytes_out, n);
        c->last_active = uv_now(&c->w->loop);
    }
    keep_or_free(c, &wr->buf);
    free(wr);
    if (c->closing)
        return;
    if (status < 0) {
        kvd_debug("%s: write failed: %s", c->peer, uv_strerror(status));
        kvd_conn_close(c);
        return;
    }
    conn_after_write(c);
    if (!c->closing)
        kvd__conn_account(c, 1); /* last: may close c */
}

/* Sends the current batch, one write per batch. With no write queued the
 * kernel is offered the bytes directly (uv_try_write: no request, no
 * allocation, no epoll re-arm); only what it does not take goes through
 * uv_write. */
void kvd__conn_flush(kvd_conn *c)
{
    if (c->out.len == 0 || c->closing)
        return;
    kvd_stat_add(&c->w->stats.write_batches, 1);
    size_t off = 0;
    if (c->nwrites == 0) {
        uv_buf_t b = uv_buf_init((char *)c->out.data, (unsigned)c->out.len);
        int n = uv_try_write(&c->h.stream, &b, 1);
        if (n < 0 && n != UV_EAGAIN) {
            kvd_debug("%s: write failed: %s", c->peer, uv_strerror(n));
            kvd_conn_close(c);
            return;
        }
        if (n > 0) {
            off = (size_t)n;
            kvd_stat_add(&c->w->stats.bytes_out, off);
            c->last_active = uv_now(&c->w->loop);
        }
        if (off == c->out.len) {
            if (c->out.cap > KEEP_SPARE_MAX)
                kv_proto_buf_free(&c->out);
            else
                kv_proto_buf_reset(&c->out);
            kvd__conn_settle(c);
            return;
        }
    }
    kvd_write *wr = malloc(sizeof *wr);
    if (!wr) {
        kvd_conn_close(c);
        return;
    }
    wr->buf = c->out;
    wr->off = off;
    wr->c = c;
    c->out = c->spare;
    memset(&c->spare, 0, sizeof c->spare);
    uv_buf_t b = uv_buf_init((char *)wr->buf.data + off, (unsigned)(wr->buf.len - off));
    int rc = uv_write(&wr->req, &c->h.stream, &b, 1, on_write);
    if (rc != 0) {
        kvd_debug("%s: write failed: %s", c->peer, uv_strerror(rc));
        kv_proto_buf_free(&wr->buf);
        free(wr);
        kvd_conn_close(c);
        return;
    }
    c->pending += wr->buf.len - off;
    c->nwrites++;
}
