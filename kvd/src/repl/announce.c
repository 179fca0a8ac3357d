/*
 * announce.c - a cluster follower telling its leader where clients reach
 * it (announce.h), so that CLUSTER status names every member's client
 * address and clients can learn the members (libkvclient's
 * kv_client_sync_endpoints).
 *
 * A leader proposes its own address as a log entry (node.c, announce()).
 * A follower cannot propose: it connects to the leader's client address
 * (learned from the leader's entry) as a client of kvd's own protocol -
 * HELLO, AUTH with the node's password if it has one, then CLUSTER
 * announce ID HOST:PORT - and the leader proposes the entry for it. This
 * runs on a thread of libuv's pool (node.c queues it), blocking, bounded
 * by a timeout on every step.
 */
#include "announce.h"

#include <errno.h>
#include <netdb.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <unistd.h>

#include "kv_proto.h"

static int send_all(int fd, const uint8_t *p, size_t n)
{
    while (n > 0) {
        ssize_t k = send(fd, p, n, MSG_NOSIGNAL);
        if (k < 0 && errno == EINTR)
            continue;
        if (k <= 0)
            return -1;
        p += k;
        n -= (size_t)k;
    }
    return 0;
}

static int recv_all(int fd, uint8_t *p, size_t n)
{
    while (n > 0) {
        ssize_t k = recv(fd, p, n, 0);
        if (k < 0 && errno == EINTR)
            continue;
        if (k <= 0)
            return -1;
        p += k;
        n -= (size_t)k;
    }
    return 0;
}

/* Sends q, reads its response; its status, or -1 (err says why). */
static int exchange(int fd, const kv_proto_request *q, char *err, size_t cap)
{
    kv_proto_buf b;
    kv_proto_buf_init(&b);
    if (kv_proto_request_encode(&b, q) != KV_OK) {
        kv_proto_buf_free(&b);
        snprintf(err, cap, "cannot encode a request");
        return -1;
    }
    int rc = send_all(fd, b.data, b.len);
    kv_proto_buf_free(&b);
    uint8_t head[KV_PROTO_HEADER_SIZE];
    if (rc != 0 || recv_all(fd, head, sizeof head) != 0) {
        snprintf(err, cap, "%s", rc != 0 ? "send failed" : "no answer");
        return -1;
    }
    uint32_t len = kv_proto_read_u32(head);
    if (len == 0 || len > 65536) {
        snprintf(err, cap, "an answer of %u bytes", (unsigned)len);
        return -1;
    }
    uint8_t *body = malloc(len);
    if (!body || recv_all(fd, body, len) != 0) {
        free(body);
        snprintf(err, cap, "no answer");
        return -1;
    }
    kv_proto_response r;
    int st = kv_proto_response_decode(body, len, q->op, NULL, &r);
    if (st == KV_OK) {
        st = r.status;
        if (st != KV_OK)
            snprintf(err, cap, "%s: %.*s", kv_status_name(st), (int)r.detail.len,
                     r.detail.len ? (const char *)r.detail.data : "");
    } else {
        snprintf(err, cap, "an answer that does not decode");
        st = -1;
    }
    kv_proto_response_free(&r);
    free(body);
    return st;
}

/* Connects to "HOST:PORT" or "[V6]:PORT" within timeout_ms; the socket's
 * sends and receives time out after it too. fd, or -1. */
static int dial(const char *addr, int timeout_ms, char *err, size_t cap)
{
    char host[128];
    const char *colon = strrchr(addr, ':');
    size_t hl = colon ? (size_t)(colon - addr) : 0;
    if (!colon || hl == 0 || hl >= sizeof host) {
        snprintf(err, cap, "bad address %s", addr);
        return -1;
    }
    const char *h = addr;
    if (h[0] == '[' && hl >= 2 && h[hl - 1] == ']') {
        h++;
        hl -= 2;
    }
    memcpy(host, h, hl);
    host[hl] = '\0';
    struct addrinfo hints = {.ai_family = AF_UNSPEC, .ai_socktype = SOCK_STREAM}, *res = NULL;
    if (getaddrinfo(host, colon + 1, &hints, &res) != 0) {
        snprintf(err, cap, "cannot resolve %s", addr);
        return -1;
    }
    struct timeval tv = {timeout_ms / 1000, (timeout_ms % 1000) * 1000};
    int fd = -1;
    for (struct addrinfo *a = res; a && fd < 0; a = a->ai_next) {
        fd = socket(a->ai_family, SOCK_STREAM | SOCK_CLOEXEC, 0);
        if (fd < 0)
            continue;
        /* on Linux SO_SNDTIMEO bounds a blocking connect too */
        setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof tv);
        setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
        if (connect(fd, a->ai_addr, a->ai_addrlen) != 0) {
            snprintf(err, cap, "cannot connect to %s: %s", addr, strerror(errno));
            close(fd);
            fd = -1;
        }
    }
    freeaddrinfo(res);
    return fd;
}

int kvd_announce_to(const char *leader, const char *password, uint64_t node_id,
                    const char *self, int timeout_ms, char *err, size_t cap)
{
    err[0] = '\0';
    int fd = dial(leader, timeout_ms, err, cap);
    if (fd < 0)
        return -1;
    kv_proto_request q = {.op = KV_PROTO_HELLO, .id = 1, .min_version = 3,
                          .max_version = KV_PROTO_MAX_VERSION,
                          .client_name = {"kvd-node", 8}};
    int st = exchange(fd, &q, err, cap);
    if (st == KV_OK && password) {
        q = (kv_proto_request){.op = KV_PROTO_AUTH, .id = 2,
                               .secret = {password, strlen(password)}};
        st = exchange(fd, &q, err, cap);
    }
    if (st == KV_OK) {
        q = (kv_proto_request){.op = KV_PROTO_CLUSTER, .id = 3, .key = {"announce", 8},
                               .revision = node_id, .value = {self, strlen(self)}};
        st = exchange(fd, &q, err, cap);
    }
    close(fd);
    return st == KV_OK ? 0 : -1;
}
