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
 *
 * The replies to one read leave at the end of the loop iteration that read
 * them (kvd__conn_flush_soon), after every connection the poll reported
 * has been read and answered, as Redis writes its replies in beforeSleep:
 * the writes then reach the clients in one burst, and under everysec and
 * no the iteration's log write comes first, so they are not held.
 *
 * Held replies (durable stores, deferred commands): a batch that answers a
 * write whose record is not durable yet, and everything after it, waits in
 * c->held until the store's log thread reports the revision durable (the
 * worker's `durable` async, server.c); a deferred command's reply waits
 * until it is produced. Held bytes count toward backpressure. The loop
 * never blocks on the disk.
 */
#include <stdlib.h>
#include <string.h>

#include "conn_internal.h"
#include "log.h"
#include "server.h"

#define KEEP_SPARE_MAX ((size_t)64 << 10) /* reuse output buffers up to this */
#define FLUSH_SOON_MAX ((size_t)64 << 10)  /* a bigger batch goes at once   */

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
    if (c->closing || c->nwrites > 0 || c->held)
        return;
    if (c->fatal)
        kvd__conn_linger(c);
    else if (c->eof && !c->paused)
        kvd_conn_close(c);
}

static void conn_after_write(kvd_conn *c)
{
    if (c->paused && c->pending + c->held_bytes <= c->w->server->out_low)
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

/* Sends one batch: tried directly when nothing is queued (uv_try_write:
 * no request, no allocation, no epoll re-arm); only what the kernel does
 * not take goes through uv_write. Takes *b: afterwards it is empty (or
 * holds a buffer to reuse). Returns -1 if the connection was closed. */
static int send_buf(kvd_conn *c, kv_proto_buf *b)
{
    kvd_stat_add(&c->w->stats.write_batches, 1);
    size_t off = 0;
    if (c->nwrites == 0) {
        uv_buf_t ub = uv_buf_init((char *)b->data, (unsigned)b->len);
        int n = uv_try_write(&c->h.stream, &ub, 1);
        if (n < 0 && n != UV_EAGAIN) {
            kvd_debug("%s: write failed: %s", c->peer, uv_strerror(n));
            kvd_conn_close(c);
            return -1;
        }
        if (n > 0) {
            off = (size_t)n;
            kvd_stat_add(&c->w->stats.bytes_out, off);
            c->last_active = uv_now(&c->w->loop);
        }
        if (off == b->len) {
            if (b->cap > KEEP_SPARE_MAX)
                kv_proto_buf_free(b);
            else
                kv_proto_buf_reset(b);
            return 0;
        }
    }
    kvd_write *wr = malloc(sizeof *wr);
    if (!wr) {
        kvd_conn_close(c);
        return -1;
    }
    wr->buf = *b;
    wr->off = off;
    wr->c = c;
    memset(b, 0, sizeof *b);
    uv_buf_t ub = uv_buf_init((char *)wr->buf.data + off, (unsigned)(wr->buf.len - off));
    int rc = uv_write(&wr->req, &c->h.stream, &ub, 1, on_write);
    if (rc != 0) {
        kvd_debug("%s: write failed: %s", c->peer, uv_strerror(rc));
        kv_proto_buf_free(&wr->buf);
        free(wr);
        kvd_conn_close(c);
        return -1;
    }
    c->pending += wr->buf.len - off;
    c->nwrites++;
    return 0;
}

static kvd_held *held_push(kvd_conn *c)
{
    kvd_held *h = calloc(1, sizeof *h);
    if (!h)
        return NULL;
    if (c->held_tail)
        c->held_tail->next = h;
    else
        c->held = h;
    c->held_tail = h;
    kvd_worker_hold(c->w, c);
    return h;
}

/* Moves the current batch to the held queue. -1: out of memory (closed). */
static int hold_batch(kvd_conn *c)
{
    if (c->out.len == 0)
        return 0;
    kvd_held *h = held_push(c);
    if (!h) {
        kvd_warn("%s: out of memory holding replies, closing", c->peer);
        kvd_conn_close(c);
        return -1;
    }
    h->buf = c->out;
    h->rev = c->batch_rev;
    h->counted = h->buf.len;
    c->held_bytes += h->counted;
    c->out = c->spare;
    memset(&c->spare, 0, sizeof c->spare);
    c->batch_rev = 0;
    return 0;
}

/* Sends the current batch, unless it must wait: for its writes to be
 * durable, or behind replies that are held already. */
void kvd__conn_flush(kvd_conn *c)
{
    if (c->closing)
        return;
    kvd_server *s = c->w->server;
    if (c->held || (c->batch_rev && c->batch_rev > atomic_load(&s->durable_rev))) {
        if (hold_batch(c) == 0)
            kvd__conn_release(c);
        return;
    }
    c->batch_rev = 0;
    if (c->out.len == 0)
        return;
    if (c->nwrites == 0) {
        if (send_buf(c, &c->out) == 0 && c->out.len == 0 && c->nwrites == 0)
            kvd__conn_settle(c);
        return;
    }
    kv_proto_buf b = c->out;
    c->out = c->spare;
    memset(&c->spare, 0, sizeof c->spare);
    send_buf(c, &b);
}

void kvd__conn_flush_soon(kvd_conn *c)
{
    if (c->out.len == 0 || c->out.len > FLUSH_SOON_MAX || c->nwrites || c->held ||
        c->paused || c->fatal || c->eof || c->draining || c->lingering || c->closing) {
        kvd__conn_flush(c);
        return;
    }
    if (c->flush_soon)
        return;
    c->flush_soon = 1;
    c->flush_soon_next = c->w->flush_soon;
    c->w->flush_soon = c;
}

void kvd_conn_flush_soon_all(kvd_worker *w)
{
    kvd_conn *c;
    while ((c = w->flush_soon) != NULL) {
        w->flush_soon = c->flush_soon_next;
        c->flush_soon_next = NULL;
        c->flush_soon = 0;
        kvd__conn_flush(c);
    }
}

void kvd__conn_release(kvd_conn *c)
{
    kvd_server *s = c->w->server;
    uint64_t durable = atomic_load(&s->durable_rev);
    while (c->held && !c->closing) {
        kvd_held *h = c->held;
        if (h->waiting || h->rev > durable)
            break;
        c->held = h->next;
        if (!c->held)
            c->held_tail = NULL;
        c->held_bytes -= h->counted;
        if (h->buf.len && send_buf(c, &h->buf) != 0) {
            kv_proto_buf_free(&h->buf);
            free(h);
            return;
        }
        kv_proto_buf_free(&h->buf);
        free(h);
    }
    if (c->closing)
        return;
    if (!c->held)
        kvd_worker_unhold(c->w, c);
    /* A log that failed will never make these durable: the client gets no
     * answer it could trust, so it gets none (as if kvd had crashed). */
    if (c->held && !c->held->waiting && atomic_load(&s->durable_status) != KV_OK) {
        kvd_warn("%s: the store cannot make its writes durable (%s); closing without "
                 "answering them",
                 c->peer, kv_strerror(atomic_load(&s->durable_status)));
        kvd_conn_close(c);
        return;
    }
    conn_after_write(c);
}

kvd_held *kvd__conn_defer(kvd_conn *c)
{
    if (hold_batch(c) != 0)
        return NULL;
    kvd_held *h = held_push(c);
    if (h)
        h->waiting = 1;
    return h;
}

void kvd__held_aim(kvd_held *slot, kvd_reply *r)
{
    r->out = &slot->buf;
    r->mark = slot->buf.len;
    r->none = 0;
}

void kvd__held_done(kvd_conn *c, kvd_held *slot, kvd_reply *r, int rc)
{
    if (rc == KV_OK)
        rc = r->ops->finish(r);
    slot->waiting = 0;
    if (rc != KV_OK)
        kvd_conn_close(c);
    else
        kvd__conn_release(c);
}

void kvd__conn_free_held(kvd_conn *c)
{
    while (c->held) {
        kvd_held *h = c->held;
        c->held = h->next;
        kv_proto_buf_free(&h->buf);
        free(h);
    }
    c->held_tail = NULL;
    c->held_bytes = 0;
    kvd_worker_unhold(c->w, c);
}
