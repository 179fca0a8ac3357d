/*
 * conn.c - libkvclient's socket layer: connecting with a timeout (TCP over
 * IPv4/IPv6, or a Unix socket), sending a buffer, receiving whole frames.
 *
 * The socket is non-blocking and every wait is a poll() bounded by the
 * call's deadline, which is how connect and I/O timeouts are enforced.
 * send() uses MSG_NOSIGNAL: a dead peer gives EPIPE, never SIGPIPE.
 */
#include <errno.h>
#include <fcntl.h>
#include <netdb.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include "client_internal.h"

#define RECV_CHUNK ((size_t)64 * 1024)

/* strerror, lower-cased first letter ("connection refused"). */
static const char *errtext(int err, char *buf, size_t cap)
{
    const char *s = strerror_r(err, buf, cap);
    if (s != buf) {
        snprintf(buf, cap, "%s", s);
    }
    if (buf[0] >= 'A' && buf[0] <= 'Z')
        buf[0] = (char)(buf[0] - 'A' + 'a');
    return buf;
}

/* "host:port", "[v6]:port" or the socket path, for messages. */
void kv__client_peer_name(const kv_client *c, char *buf, size_t cap)
{
    if (c->opts.unix_path)
        snprintf(buf, cap, "%s", c->opts.unix_path);
    else if (strchr(c->opts.host, ':'))
        snprintf(buf, cap, "[%s]:%u", c->opts.host, (unsigned)c->opts.port);
    else
        snprintf(buf, cap, "%s:%u", c->opts.host, (unsigned)c->opts.port);
}

/* Milliseconds left before the deadline (-1: none, 0: expired). */
static int wait_ms(int64_t deadline)
{
    if (deadline == 0)
        return -1;
    int64_t left = deadline - kv__client_now_ms();
    if (left <= 0)
        return 0;
    return left > INT32_MAX ? INT32_MAX : (int)left;
}

/* Connects one socket to addr; 0 or an errno (ETIMEDOUT on timeout). */
static int connect_one(int family, const struct sockaddr *addr,
                       socklen_t alen, int timeout_ms, int *fdout)
{
    int fd = socket(family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    if (fd < 0)
        return errno;
    int err = 0;
    if (connect(fd, addr, alen) != 0) {
        err = errno;
        if (err == EINPROGRESS) {
            int64_t deadline =
                timeout_ms < 0 ? 0 : kv__client_now_ms() + timeout_ms;
            struct pollfd p = {fd, POLLOUT, 0};
            int n;
            do {
                n = poll(&p, 1, wait_ms(deadline));
            } while (n < 0 && errno == EINTR);
            if (n == 0) {
                err = ETIMEDOUT;
            } else if (n < 0) {
                err = errno;
            } else {
                socklen_t len = sizeof err;
                if (getsockopt(fd, SOL_SOCKET, SO_ERROR, &err, &len) != 0)
                    err = errno;
            }
        }
    }
    if (err != 0) {
        close(fd);
        return err;
    }
    if (family != AF_UNIX) {
        int one = 1;
        (void)setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
    }
    *fdout = fd;
    return 0;
}

int kv__client_dial(kv_client *c)
{
    char peer[300], ebuf[128];
    int err;
    kv__client_peer_name(c, peer, sizeof peer);

    if (c->opts.unix_path) {
        struct sockaddr_un sun;
        memset(&sun, 0, sizeof sun);
        sun.sun_family = AF_UNIX;
        memcpy(sun.sun_path, c->opts.unix_path, strlen(c->opts.unix_path));
        err = connect_one(AF_UNIX, (struct sockaddr *)&sun, sizeof sun,
                          c->opts.connect_timeout_ms, &c->fd);
    } else {
        char port[8];
        struct addrinfo hints, *res = NULL;
        memset(&hints, 0, sizeof hints);
        hints.ai_family = AF_UNSPEC;
        hints.ai_socktype = SOCK_STREAM;
        snprintf(port, sizeof port, "%u", (unsigned)c->opts.port);
        int g = getaddrinfo(c->opts.host, port, &hints, &res);
        if (g != 0) {
            const char *m = g == EAI_SYSTEM ? errtext(errno, ebuf, sizeof ebuf)
                                            : gai_strerror(g);
            return kv__client_error(c, KV_CONNECT, "cannot connect to %s: %s",
                                    peer, m);
        }
        err = ENOENT;
        for (struct addrinfo *a = res; a != NULL; a = a->ai_next) {
            err = connect_one(a->ai_family, a->ai_addr, a->ai_addrlen,
                              c->opts.connect_timeout_ms, &c->fd);
            if (err == 0)
                break;
        }
        freeaddrinfo(res);
    }
    if (err == ETIMEDOUT)
        return kv__client_error(c, KV_TIMEOUT,
                                "cannot connect to %s: timed out", peer);
    if (err != 0)
        return kv__client_error(c, KV_CONNECT, "cannot connect to %s: %s",
                                peer, errtext(err, ebuf, sizeof ebuf));
    return KV_OK;
}

/* Makes room for at least `want` more bytes in c->in, compacting first. */
static int in_reserve(kv_client *c, size_t want)
{
    if (c->in_start > 0) {
        memmove(c->in, c->in + c->in_start, c->in_len - c->in_start);
        c->in_len -= c->in_start;
        c->in_start = 0;
    }
    if (c->in_cap - c->in_len >= want)
        return KV_OK;
    size_t cap = c->in_cap ? c->in_cap : RECV_CHUNK;
    while (cap - c->in_len < want) {
        if (cap > SIZE_MAX / 2)
            return KV_NO_MEMORY;
        cap *= 2;
    }
    uint8_t *p = realloc(c->in, cap);
    if (p == NULL)
        return KV_NO_MEMORY;
    c->in = p;
    c->in_cap = cap;
    return KV_OK;
}

/* One recv() of whatever is available. 1 = got bytes, 0 = would block,
 * else a failure status (the connection is closed). */
static int recv_some(kv_client *c, size_t want)
{
    if (want < RECV_CHUNK)
        want = RECV_CHUNK;
    if (in_reserve(c, want) != KV_OK)
        return kv__client_fail(c, KV_NO_MEMORY, "out of memory");
    ssize_t n = recv(c->fd, c->in + c->in_len, c->in_cap - c->in_len, 0);
    if (n > 0) {
        c->in_len += (size_t)n;
        return 1;
    }
    if (n == 0)
        return kv__client_fail(c, KV_CLOSED, "connection closed by server");
    if (errno == EAGAIN || errno == EWOULDBLOCK || errno == EINTR)
        return 0;
    char ebuf[128];
    int st = errno == ECONNRESET ? KV_CLOSED : KV_IO;
    return kv__client_fail(c, st, "receive failed: %s",
                           errtext(errno, ebuf, sizeof ebuf));
}

/* poll() for ev until the deadline. 1 = ready, else a failure status. */
static int wait_for(kv_client *c, short ev, short *revents)
{
    struct pollfd p = {c->fd, ev, 0};
    int n;
    do {
        n = poll(&p, 1, wait_ms(c->deadline_ms));
    } while (n < 0 && errno == EINTR);
    if (n == 0)
        return kv__client_fail(c, KV_TIMEOUT, "timed out waiting for server");
    if (n < 0) {
        char ebuf[128];
        return kv__client_fail(c, KV_IO, "poll failed: %s",
                               errtext(errno, ebuf, sizeof ebuf));
    }
    *revents = p.revents;
    return 1;
}

int kv__client_flush(kv_client *c)
{
    size_t off = 0;
    if (c->fd < 0)
        return kv__client_error(c, KV_CLOSED, "not connected");
    while (off < c->out.len) {
        ssize_t n = send(c->fd, c->out.data + off, c->out.len - off,
                         MSG_NOSIGNAL);
        if (n > 0) {
            off += (size_t)n;
            continue;
        }
        if (n < 0 && errno != EAGAIN && errno != EWOULDBLOCK &&
            errno != EINTR) {
            char ebuf[128];
            int st = (errno == EPIPE || errno == ECONNRESET) ? KV_CLOSED
                                                             : KV_IO;
            kv_proto_buf_reset(&c->out);
            return kv__client_fail(c, st, "send failed: %s",
                                   errtext(errno, ebuf, sizeof ebuf));
        }
        short rev = 0;
        int rc = wait_for(c, POLLOUT | POLLIN, &rev);
        if (rc != 1) {
            kv_proto_buf_reset(&c->out);
            return rc;
        }
        /* Drain replies while we send so neither side blocks forever. */
        if (rev & (POLLIN | POLLHUP | POLLERR)) {
            rc = recv_some(c, 0);
            if (rc < 0 || rc > 1) {
                kv_proto_buf_reset(&c->out);
                return rc;
            }
        }
    }
    kv_proto_buf_reset(&c->out);
    return KV_OK;
}

int kv__client_poll_frame(kv_client *c, int timeout_ms, int *ready)
{
    *ready = 0;
    if (c->fd < 0)
        return kv__client_error(c, KV_CLOSED, "not connected");
    size_t off, blen;
    size_t start = c->in_start + c->in_pending;
    if (kv_proto_frame_split(c->in + start, c->in_len - start, c->opts.max_frame, &off,
                             &blen) != KV_PROTO_NEED_MORE) {
        *ready = 1; /* a frame, or a broken one: receiving says which */
        return KV_OK;
    }
    struct pollfd p = {c->fd, POLLIN, 0};
    int n = poll(&p, 1, timeout_ms < 0 ? -1 : timeout_ms);
    if (n < 0 && errno != EINTR) {
        char ebuf[128];
        return kv__client_fail(c, KV_IO, "poll failed: %s", errtext(errno, ebuf, sizeof ebuf));
    }
    *ready = n > 0;
    return KV_OK;
}

int kv__client_recv_frame(kv_client *c, const uint8_t **body, size_t *len)
{
    c->in_start += c->in_pending;
    c->in_pending = 0;
    for (;;) {
        if (c->fd < 0)
            return kv__client_error(c, KV_CLOSED, "not connected");
        size_t off, blen;
        size_t avail = c->in_len - c->in_start;
        kv_proto_split_result s = kv_proto_frame_split(
            c->in + c->in_start, avail, c->opts.max_frame, &off, &blen);
        if (s == KV_PROTO_FRAME) {
            *body = c->in + c->in_start + off;
            *len = blen;
            c->in_pending = off + blen;
            return KV_OK;
        }
        if (s == KV_PROTO_TOO_LARGE)
            return kv__client_fail(c, KV_PROTOCOL,
                                   "response frame of %zu bytes exceeds the "
                                   "limit of %zu",
                                   blen, c->opts.max_frame);
        if (s == KV_PROTO_INVALID)
            return kv__client_fail(c, KV_PROTOCOL, "empty response frame");
        size_t want = blen ? KV_PROTO_HEADER_SIZE + blen - avail : 0;
        int rc = recv_some(c, want);
        if (rc == 1)
            continue;
        if (rc != 0)
            return rc;
        short rev;
        rc = wait_for(c, POLLIN, &rev);
        if (rc != 1)
            return rc;
    }
}
