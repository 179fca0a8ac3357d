/*
 * conn.c - one client connection (see conn.h).
 *
 * Protocols: the first bytes choose the connection's front-end
 * (kvd_frontend_detect: kvd's MessagePack frames, RESP or HTTP), unless
 * a dedicated port's listener did; from then on the front-end cuts the
 * input into messages and runs them (frontend.h). Nothing here knows a
 * framing.
 *
 * Reading: libuv reads into the worker's 64 KiB scratch buffer when the
 * connection holds no partial message, so an idle connection owns no
 * input memory; only the tail of an incomplete message is copied into
 * c->in, which grows to the message's declared size once the front-end
 * checked its header against the request limit (never before).
 *
 * Batching: every complete message of a read is answered into one output
 * buffer (c->out), sent with one write afterwards (see conn_write.c).
 *
 * Backpressure: when queued output (c->pending) plus the batch reaches
 * the soft mark (half of --max-output-buffer), the connection pauses: no
 * reading and no processing until the backlog falls under a quarter. Pausing bounds a
 * connection's memory to the soft mark plus one response; the hard limit
 * closes a connection when output the kernel has not accepted yet plus
 * the batch exceeds --max-output-buffer (so one large answer to a client
 * that reads is fine), and --write-timeout closes a paused client whose
 * backlog makes no progress, i.e. a client that never reads.
 *
 * Timeouts (checked once a second): --frame-timeout closes a client whose
 * request frame has begun but not been completed for that long (a slow
 * sender holding a connection slot: progress does not reset it);
 * --idle-timeout closes a connection with no traffic at all.
 *
 * Closing: a fatal protocol error queues its error response, stops
 * reading, and once it is written shuts down our side and discards input
 * for a moment (so the peer gets the error, not a reset), then closes.
 *
 * Out of memory: no request runs unless the batch has room for its
 * answer (REPLY_ROOM, more than any error or SET/MSET/DEL answer needs),
 * so a request that ran is always answered. Out of memory reading a
 * message, or for that room, is a fatal error in the front-end's terms
 * (MessagePack: [id, NO_MEMORY], the id peeked from the frame) after the
 * answers before it; the request is not run.
 */
#include "conn.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "conn_internal.h"
#include "frontend.h"
#include "log.h"
#include "watchers.h"

#define LINGER_MS 1000
#define TICK_MS 1000
#define REPLY_ROOM 512 /* bytes of c->out free before a request runs */


static void conn_update_reading(kvd_conn *c);
static _Atomic uint64_t next_client_id = 1; /* CLIENT ID */
static void conn_check_drained(kvd_conn *c);

/* ---- lifetime ------------------------------------------------------------ */

void kvd__conn_unref(kvd_conn *c)
{
    if (--c->handles > 0)
        return;
    kvd_worker *w = c->w;
    if (c->prev)
        c->prev->next = c->next;
    else
        w->conns = c->next;
    if (c->next)
        c->next->prev = c->prev;
    if (c->counted)
        atomic_fetch_sub_explicit(&w->server->connections, 1, memory_order_relaxed);
    kvd_debug("%s: closed", c->peer);
    if (c->flush_soon) /* freed by a callback of the iteration that listed it */
        for (kvd_conn **p = &w->flush_soon; *p; p = &(*p)->flush_soon_next)
            if (*p == c) {
                *p = c->flush_soon_next;
                break;
            }
    kvd__conn_free_held(c);
    if (c->fe && c->fe->release)
        c->fe->release(c);
    kvd_session_free(&c->sess);
    free(c->in);
    free(c->auth_secret);
    kv_proto_buf_free(&c->out);
    kv_proto_buf_free(&c->spare);
    kv_proto_arena_free(&c->arena);
    free(c);
    kvd_worker_conn_gone(w);
}

static void on_handle_closed(uv_handle_t *h)
{
    kvd__conn_unref(h->data);
}

void kvd_conn_close(kvd_conn *c)
{
    if (c->closing)
        return;
    c->closing = 1;
    c->reading = 0;
    kvd_watch_conn_closed(c); /* before the accounting: no more output */
    kvd__conn_account(c, 0); /* its buffers are as good as freed */
    uv_close(&c->h.handle, on_handle_closed);
    uv_close((uv_handle_t *)&c->timer, on_handle_closed);
    uv_close((uv_handle_t *)&c->auth_timer, on_handle_closed);
}

static void on_linger_done(uv_timer_t *t)
{
    kvd_conn_close(t->data);
}

static void on_shutdown(uv_shutdown_t *req, int status)
{
    kvd_conn *c = req->data;
    if (status < 0 && !c->closing)
        kvd_conn_close(c);
}

/* The last response is written: send FIN, discard input until the peer
 * closes or LINGER_MS pass. */
void kvd__conn_linger(kvd_conn *c)
{
    if (c->lingering || c->closing)
        return;
    c->lingering = 1;
    c->in_len = 0;
    c->shutdown_req.data = c;
    if (uv_shutdown(&c->shutdown_req, &c->h.stream, on_shutdown) != 0) {
        kvd_conn_close(c);
        return;
    }
    uv_timer_stop(&c->timer);
    uv_timer_start(&c->timer, on_linger_done, LINGER_MS, 0);
    conn_update_reading(c);
}

/* ---- memory accounting ------------------------------------------------------ */

void kvd__conn_account(kvd_conn *c, int evict)
{
    kvd_server *s = c->w->server;
    size_t now = c->closing ? 0 : c->in_len + c->out.cap + c->spare.cap + c->pending + c->held_bytes;
    if (now != c->mem) {
        if (now > c->mem)
            atomic_fetch_add_explicit(&s->client_memory, now - c->mem, memory_order_relaxed);
        else
            atomic_fetch_sub_explicit(&s->client_memory, c->mem - now, memory_order_relaxed);
        c->mem = now;
        if (now > atomic_load_explicit(&c->w->biggest, memory_order_relaxed))
            atomic_store_explicit(&c->w->biggest, now, memory_order_relaxed);
    }
    if (evict && s->cfg->max_client_memory &&
        atomic_load_explicit(&s->client_memory, memory_order_relaxed) > s->cfg->max_client_memory)
        kvd_worker_evict(c->w);
}

/* ---- timers ---------------------------------------------------------------- */

static void on_tick(uv_timer_t *t)
{
    kvd_conn *c = t->data;
    const kvd_config *cfg = c->w->server->cfg;
    uint64_t now = uv_now(t->loop);
    if (c->closing || c->lingering)
        return;
    /* Replies held for the server's disk (or a SNAPSHOT) are not the
     * client's delay: neither timeout counts them. */
    if (cfg->write_timeout && c->paused && !c->held) {
        size_t q = uv_stream_get_write_queue_size(&c->h.stream);
        if (q < c->stall_queue) {
            c->stall_queue = q;
            c->stall_since = now;
        } else if (now - c->stall_since >= (uint64_t)cfg->write_timeout * 1000) {
            kvd_warn("%s: not reading its responses for %us (%zu bytes pending), closing",
                     c->peer, cfg->write_timeout, c->pending);
            kvd_stat_add(&c->w->stats.disconnects_slow, 1);
            kvd_conn_close(c);
            return;
        }
    }
    if (cfg->frame_timeout && c->in_len > 0 && !c->paused && !c->fatal && !c->eof &&
        !c->auth_wait &&
        now - c->frame_since >= (uint64_t)cfg->frame_timeout * 1000) {
        kvd_warn("%s: request frame incomplete after %us (%zu bytes received), closing",
                 c->peer, cfg->frame_timeout, c->in_len);
        kvd_stat_add(&c->w->stats.disconnects_frame_timeout, 1);
        kvd_conn_close(c);
        return;
    }
    if (cfg->idle_timeout && !c->paused && c->nwrites == 0 && !c->held && !c->watchers &&
        now - c->last_active >= (uint64_t)cfg->idle_timeout * 1000) {
        kvd_debug("%s: idle for %us, closing", c->peer, cfg->idle_timeout);
        kvd_stat_add(&c->w->stats.disconnects_idle, 1);
        kvd_conn_close(c);
    }
}

/* ---- writing --------------------------------------------------------------- */

/* ---- processing ------------------------------------------------------------ */

static void conn_pause(kvd_conn *c)
{
    if (c->paused)
        return;
    c->paused = 1;
    c->stall_since = uv_now(&c->w->loop);
    c->stall_queue = SIZE_MAX;
    kvd_debug("%s: %zu bytes of output pending, pausing", c->peer, c->pending + c->out.len);
}

/* The connection's front-end, or kvd's own frames before the first bytes
 * chose one. */
static const kvd_frontend *frontend(const kvd_conn *c)
{
    return c->fe ? c->fe : &kvd_fe_native;
}

static void conn_fatal_error(kvd_conn *c, int status, const char *detail)
{
    char what[192];
    snprintf(what, sizeof what, "%s, closing", detail); /* our text: sizes only */
    kvd_cmd_protocol_warn(c, what);
    c->fatal = 1;
    if (frontend(c)->fatal(c, NULL, 0, status, detail) != 0)
        kvd_conn_close(c);
}

/* Out of memory for the request whose message starts at frame (have
 * bytes of it arrived): queue the error as the last response. The caller
 * flushes. */
static void conn_out_of_memory(kvd_conn *c, const uint8_t *frame, size_t have)
{
    kvd_warn("%s: out of memory for a request, answering NO_MEMORY and closing", c->peer);
    c->fatal = 1;
    if (frontend(c)->fatal(c, frame, have, KV_NO_MEMORY,
                           "server out of memory; request not run") != 0)
        kvd_warn("%s: cannot even queue the error: sending what is queued", c->peer);
}

/* The same from the read path: also drop the partial frame, stop reading
 * and send. */
static void conn_read_out_of_memory(kvd_conn *c, const uint8_t *frame, size_t have)
{
    conn_out_of_memory(c, frame, have);
    free(c->in);
    c->in = NULL;
    c->in_len = c->in_cap = 0;
    conn_update_reading(c);
    kvd__conn_flush(c);
    kvd__conn_settle(c);
}

/* Answers every complete message in data[0..len) into c->out until the
 * connection pauses or fails. Returns the bytes consumed. */
static size_t conn_process(kvd_conn *c, const uint8_t *data, size_t len)
{
    const kvd_server *s = c->w->server;
    size_t off = 0, unprefetched = 0;
    uint64_t clock = uv_hrtime(); /* the requests of this read are timed together */
    while (!c->fatal && !c->closing && !c->lingering && !c->auth_wait && off < len) {
        if (!c->fe) {
            c->fe = kvd_frontend_detect(data + off, len - off);
            if (!c->fe)
                break; /* the first line is not complete */
            c->sess.protocol = c->fe->protocol;
        }
        if (c->fe->prefetch) {
            if (unprefetched == 0)
                unprefetched = c->fe->prefetch(c, data + off, len - off);
            else
                unprefetched--;
        }
        size_t before = c->pending + c->held_bytes + c->out.len;
        if (before >= s->out_soft) {
            conn_pause(c);
            break;
        }
        size_t mlen = 0;
        int r = c->fe->split(c, data + off, len - off, &mlen);
        if (r != KVD_MSG_READY)
            break; /* more to read, or fatal (its error is queued) */
        if (kv_proto_buf_reserve(&c->out, REPLY_ROOM) != KV_OK) {
            conn_out_of_memory(c, data + off, mlen);
            break;
        }
        int rc = c->fe->run(c, data + off, mlen, &clock);
        off += mlen;
        if (rc < 0) {
            /* REPLY_ROOM makes this unreachable; still deliver the rest */
            kvd_warn("%s: out of memory answering a request, closing", c->peer);
            c->fatal = 1;
            break;
        }
        if (rc > 0) {
            c->fatal = 1;
            break;
        }
        /* Hard limit: output the kernel has not taken yet plus this batch.
         * Responses still in the batch do not count as backlog, so one
         * large answer (up to the frame limit) is always allowed. */
        size_t unsent = uv_stream_get_write_queue_size(&c->h.stream);
        if (unsent > 0 && unsent + c->out.len > s->cfg->max_output_buffer) {
            kvd_warn("%s: output buffer over %zu bytes, closing", c->peer,
                     s->cfg->max_output_buffer);
            kvd_stat_add(&c->w->stats.disconnects_slow, 1);
            kvd_conn_close(c);
            break;
        }
    }
    kvd_cmd_time_batch(c->w, &clock);
    if (c->fatal)
        return len; /* the rest of the stream is not trusted: drop it */
    return off;
}

/* Appends bytes to c->in, growing it. Returns 0 or -1 (out of memory). */
static int conn_in_append(kvd_conn *c, const uint8_t *p, size_t n)
{
    if (n == 0)
        return 0;
    if (c->in_len == 0)
        c->frame_since = c->last_active; /* a frame begins in this read */
    if (c->in_cap - c->in_len < n) {
        size_t cap = c->in_len + n;
        if (cap < KVD_READ_CHUNK)
            cap = KVD_READ_CHUNK;
        uint8_t *in = realloc(c->in, cap);
        if (!in)
            return -1;
        c->in = in;
        c->in_cap = cap;
    }
    memcpy(c->in + c->in_len, p, n);
    c->in_len += n;
    return 0;
}

/* Processes what c->in holds and keeps only the unconsumed tail. */
static void conn_process_in(kvd_conn *c)
{
    size_t used = conn_process(c, c->in, c->in_len);
    if (c->closing)
        return;
    if (used == c->in_len) {
        /* Nothing buffered: give the memory back (reads use the scratch). */
        free(c->in);
        c->in = NULL;
        c->in_len = c->in_cap = 0;
    } else if (used > 0) {
        memmove(c->in, c->in + used, c->in_len - used);
        c->in_len -= used;
        c->frame_since = c->last_active; /* the next frame began by the last read */
    }
}

/* No more input will come (peer EOF, or the server is stopping and the
 * socket is empty): drop an incomplete frame, close after the writes. */
static void conn_end_input(kvd_conn *c, int report_truncated)
{
    c->eof = 1;
    if (c->in_len > 0 && !c->paused && !c->fatal) {
        if (report_truncated)
            conn_fatal_error(c, KV_PROTOCOL, "connection closed inside a frame");
        c->in_len = 0;
    }
    conn_update_reading(c);
    kvd__conn_flush(c);
    if (!c->closing && c->nwrites == 0 && !c->paused && !c->lingering) {
        if (c->fatal)
            kvd__conn_linger(c);
        else
            kvd_conn_close(c);
    }
}

void kvd__conn_resume(kvd_conn *c)
{
    c->paused = 0;
    c->stall_since = 0;
    conn_process_in(c);
    if (c->closing)
        return;
    kvd__conn_flush(c);
    if (c->paused || c->closing)
        return;
    if (c->eof) {
        conn_end_input(c, 1);
        return;
    }
    conn_update_reading(c);
    conn_check_drained(c);
}

/* ---- reading --------------------------------------------------------------- */

static void on_alloc(uv_handle_t *h, size_t suggested, uv_buf_t *buf)
{
    (void)suggested;
    kvd_conn *c = h->data;
    if (c->in_len == 0 || c->lingering) {
        *buf = uv_buf_init((char *)c->w->scratch, sizeof c->w->scratch);
        return;
    }
    /* A partial message: make room for all of it (its header was checked
     * against the limit when it was split), or another chunk. */
    size_t need = KVD_READ_CHUNK;
    size_t msg = c->fe ? c->fe->want(c, c->in, c->in_len) : 0;
    if (msg > c->in_len && msg - c->in_len > need)
        need = msg - c->in_len;
    if (c->in_cap - c->in_len < need) {
        uint8_t *in = realloc(c->in, c->in_len + need);
        if (!in) {
            *buf = uv_buf_init(NULL, 0); /* read_cb gets UV_ENOBUFS */
            return;
        }
        c->in = in;
        c->in_cap = c->in_len + need;
    }
    *buf = uv_buf_init((char *)c->in + c->in_len, (unsigned)(c->in_cap - c->in_len));
}

static void on_read(uv_stream_t *st, ssize_t nread, const uv_buf_t *buf)
{
    kvd_conn *c = st->data;
    if (c->closing)
        return;
    if (nread > 0) {
        kvd_stat_add(&c->w->stats.bytes_in, (uint64_t)nread);
        c->last_active = uv_now(&c->w->loop);
        c->w->worked = 1;
        if (c->lingering)
            return;
        if ((uint8_t *)buf->base == c->w->scratch) {
            size_t used = conn_process(c, c->w->scratch, (size_t)nread);
            if (c->closing)
                return;
            if (conn_in_append(c, c->w->scratch + used, (size_t)nread - used) != 0) {
                conn_read_out_of_memory(c, c->w->scratch + used, (size_t)nread - used);
                return;
            }
        } else {
            c->in_len += (size_t)nread;
            conn_process_in(c);
            if (c->closing)
                return;
        }
        /* Decoded arrays of this read are dead: an idle connection keeps
         * no arena memory (a big MSET would otherwise pin its chunk). */
        kv_proto_arena_free(&c->arena);
        kvd__conn_flush_soon(c);
        conn_update_reading(c);
        conn_check_drained(c);
        if (!c->closing)
            kvd__conn_account(c, 1); /* last: may close c */
        return;
    }
    if (nread == 0)
        return; /* EAGAIN */
    if (nread == UV_EOF && !c->lingering) {
        conn_end_input(c, 1);
        return;
    }
    if (nread == UV_ENOBUFS && !c->lingering) {
        conn_read_out_of_memory(c, c->in, c->in_len);
        return;
    }
    if (nread != UV_EOF)
        kvd_debug("%s: read failed: %s", c->peer, uv_strerror((int)nread));
    kvd_conn_close(c);
}

static void conn_update_reading(kvd_conn *c)
{
    if (c->closing)
        return;
    int want = c->lingering || (!c->paused && !c->fatal && !c->eof && !c->auth_wait);
    if (want && !c->reading) {
        if (uv_read_start(&c->h.stream, on_alloc, on_read) != 0) {
            kvd_conn_close(c);
            return;
        }
        c->reading = 1;
    } else if (!want && c->reading) {
        uv_read_stop(&c->h.stream);
        c->reading = 0;
    }
}

/* While the server stops: once the socket holds no more received bytes,
 * everything that arrived has been answered, so end the input. */
static void conn_check_drained(kvd_conn *c)
{
    if (!c->draining || c->paused || c->fatal || c->closing || c->lingering || c->eof ||
        c->auth_wait)
        return;
    uv_os_fd_t fd;
    char b;
    if (uv_fileno(&c->h.handle, &fd) == 0 && recv(fd, &b, 1, MSG_PEEK | MSG_DONTWAIT) > 0)
        return; /* more to read: on_read will call again */
    conn_end_input(c, 0);
}

void kvd_conn_drain(kvd_conn *c)
{
    c->draining = 1;
    conn_check_drained(c);
}

/* ---- a throttled AUTH ------------------------------------------------------- */

static void on_auth_due(uv_timer_t *t)
{
    kvd_conn *c = t->data;
    if (c->closing)
        return;
    c->auth_wait = 0;
    int fatal = 0;
    kvd_reply r;
    frontend(c)->reply_init(c, &r, c->auth_id);
    int rc = kvd_cmd_auth_check(c, &r, c->auth_secret, c->auth_secret_len, &fatal);
    if (rc >= 0 && r.ops->finish(&r) != KV_OK)
        rc = -1;
    free(c->auth_secret);
    c->auth_secret = NULL;
    if (rc < 0) {
        kvd_warn("%s: out of memory answering a request, closing", c->peer);
        kvd_conn_close(c);
        return;
    }
    if (fatal) {
        c->fatal = 1;
        c->in_len = 0; /* the rest of the stream is not trusted */
        conn_update_reading(c);
        kvd__conn_flush(c);
        return; /* the write's completion lingers (conn_write.c) */
    }
    kvd__conn_resume(c); /* answer what arrived meanwhile, read again */
}

int kvd__conn_auth_defer(kvd_conn *c, uint64_t id, const void *secret, size_t len,
                         uint64_t delay_ms)
{
    uint8_t *copy = malloc(len ? len : 1);
    if (!copy)
        return -1;
    memcpy(copy, secret, len);
    free(c->auth_secret);
    c->auth_secret = copy;
    c->auth_secret_len = len;
    c->auth_id = id;
    c->auth_wait = 1; /* conn_process stops; reading stops after this read */
    uv_timer_start(&c->auth_timer, on_auth_due, delay_ms, 0);
    return 0;
}

/* ---- adoption -------------------------------------------------------------- */

static void describe_peer(kvd_conn *c, int fd)
{
    struct sockaddr_storage ss;
    socklen_t len = sizeof ss;
    char ip[INET6_ADDRSTRLEN] = "?";
    if (c->is_unix || getpeername(fd, (struct sockaddr *)&ss, &len) != 0) {
        snprintf(c->peer, sizeof c->peer, "unix#%d", fd);
        c->peer_key = kvd_peer_key_of(NULL);
        return;
    }
    c->peer_key = kvd_peer_key_of(&ss);
    if (ss.ss_family == AF_INET6) {
        uv_ip6_name((struct sockaddr_in6 *)&ss, ip, sizeof ip);
        snprintf(c->peer, sizeof c->peer, "[%s]:%u", ip,
                 ntohs(((struct sockaddr_in6 *)&ss)->sin6_port));
    } else {
        uv_ip4_name((struct sockaddr_in *)&ss, ip, sizeof ip);
        snprintf(c->peer, sizeof c->peer, "%s:%u", ip,
                 ntohs(((struct sockaddr_in *)&ss)->sin_port));
    }
}

void kvd_conn_adopt(kvd_worker *w, int fd, int is_unix, int reject, int protocol)
{
    kvd_server *s = w->server;
    kvd_conn *c = calloc(1, sizeof *c);
    if (!c) {
        close(fd);
        if (!reject)
            atomic_fetch_sub_explicit(&s->connections, 1, memory_order_relaxed);
        return;
    }
    c->w = w;
    c->is_unix = is_unix ? 1 : 0;
    c->counted = reject ? 0 : 1;
    c->fe = kvd_frontend_for(protocol);
    if (c->fe)
        c->sess.protocol = c->fe->protocol;
    c->sess.native_version = KV_PROTO_VERSION;
    c->sess.resp_version = 2;
    c->sess.client_id = atomic_fetch_add_explicit(&next_client_id, 1, memory_order_relaxed);
    c->h.handle.data = c;
    c->timer.data = c;
    c->next = w->conns;
    if (w->conns)
        w->conns->prev = c;
    w->conns = c;
    describe_peer(c, fd);

    /* Neither init can fail for these arguments (no allocation, no fd). */
    if (is_unix)
        uv_pipe_init(&w->loop, &c->h.pipe, 0);
    else
        uv_tcp_init(&w->loop, &c->h.tcp);
    uv_timer_init(&w->loop, &c->timer);
    uv_timer_init(&w->loop, &c->auth_timer);
    c->handles = 3;
    c->h.handle.data = c;
    c->timer.data = c;
    c->auth_timer.data = c;
    int rc = is_unix ? uv_pipe_open(&c->h.pipe, fd) : uv_tcp_open(&c->h.tcp, fd);
    if (rc != 0) {
        kvd_warn("%s: cannot adopt connection: %s", c->peer, uv_strerror(rc));
        close(fd);
        kvd_conn_close(c);
        return;
    }
    if (!is_unix)
        uv_tcp_nodelay(&c->h.tcp, 1);
    c->last_active = uv_now(&w->loop);

    if (reject) {
        kvd_info("%s: refused, too many connections", c->peer);
        c->fatal = 1;
        /* The protocol may not be known yet: then kvd's own frames. */
        if (frontend(c)->fatal(c, NULL, 0, KV_BUSY, "too many connections") != 0) {
            kvd_conn_close(c);
            return;
        }
        kvd__conn_flush(c);
        if (!c->closing && c->nwrites == 0)
            kvd__conn_linger(c);
        return;
    }
    kvd_debug("%s: connected", c->peer);
    const kvd_config *cfg = s->cfg;
    if (cfg->idle_timeout || cfg->write_timeout || cfg->frame_timeout)
        uv_timer_start(&c->timer, on_tick, TICK_MS, TICK_MS);
    conn_update_reading(c);
    if (w->stopping)
        kvd_conn_drain(c);
}
