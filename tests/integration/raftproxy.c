/*
 * raftproxy.c - the Raft links' TCP forwarder (raftproxy.h): one thread
 * polling the listeners and every forwarded connection.
 *
 * A connection is a pair of sockets: [0] the one node i dialed (accepted
 * here), [1] ours to node j. Direction d carries what arrives on sock[d]
 * to sock[1-d] through a queue of chunks, each due at its arrival time
 * plus the link's delay. Until the handshake told us i, only the
 * handshake's first 16 bytes are read. A cut link's sockets are polled
 * for errors only; its queues keep what they hold.
 */
#include "raftproxy.h"

#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#define MAXN 8
#define MAXCONN 64
#define QUEUE_CAP (1u << 20) /* bytes queued per direction before reading stops */
#define HANDSHAKE_ID_END 16  /* protocol (8) and server id (8) */

typedef struct chunk {
    struct chunk *next;
    int64_t due; /* ms */
    size_t len, off;
    uint8_t data[];
} chunk;

typedef struct queue {
    chunk *head, *tail;
    size_t bytes;
} queue;

typedef struct pconn {
    int sock[2];
    int dst;     /* the node dialed */
    int src;     /* the dialing node; -1 unknown yet, -2 not one of ours */
    uint8_t hs[HANDSHAKE_ID_END];
    size_t hslen;
    queue q[2];
    int dead;
} pconn;

struct raft_proxy {
    int n;
    int listen_fd[MAXN];
    int target[MAXN];
    pthread_t thread;
    pthread_mutex_t mu; /* guards the fields below */
    int stop;
    int cut[MAXN][MAXN];
    int delay[MAXN][MAXN];
    uint64_t bytes[MAXN][MAXN];
    /* the thread's own */
    pconn *conns[MAXCONN];
};

static int64_t now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static void queue_free(queue *q)
{
    while (q->head) {
        chunk *c = q->head;
        q->head = c->next;
        free(c);
    }
    q->tail = NULL;
    q->bytes = 0;
}

static void conn_close(raft_proxy *p, int k)
{
    pconn *c = p->conns[k];
    close(c->sock[0]);
    close(c->sock[1]);
    queue_free(&c->q[0]);
    queue_free(&c->q[1]);
    free(c);
    p->conns[k] = NULL;
}

static int connect_to(int port)
{
    int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (fd < 0)
        return -1;
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_port = htons((uint16_t)port)};
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    if (connect(fd, (struct sockaddr *)&a, sizeof a) != 0) {
        close(fd);
        return -1;
    }
    int one = 1;
    setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
    fcntl(fd, F_SETFL, fcntl(fd, F_GETFL) | O_NONBLOCK);
    return fd;
}

static void accept_on(raft_proxy *p, int j)
{
    int fd = accept4(p->listen_fd[j], NULL, NULL, SOCK_NONBLOCK | SOCK_CLOEXEC);
    if (fd < 0)
        return;
    int k = 0;
    while (k < MAXCONN && p->conns[k])
        k++;
    int out = k < MAXCONN ? connect_to(p->target[j]) : -1;
    pconn *c = out >= 0 ? calloc(1, sizeof *c) : NULL;
    if (!c) { /* the node is down (or we are full): as a refused connection */
        if (out >= 0)
            close(out);
        close(fd);
        return;
    }
    int one = 1;
    setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
    c->sock[0] = fd;
    c->sock[1] = out;
    c->dst = j;
    c->src = -1;
    p->conns[k] = c;
}

/* Reads what sock[d] has into q[d]. */
static void pull(raft_proxy *p, pconn *c, int d, int delay)
{
    uint8_t buf[65536];
    size_t want = sizeof buf;
    if (c->src == -1) /* only the handshake's id until we know who dialed */
        want = HANDSHAKE_ID_END - c->hslen;
    ssize_t r = read(c->sock[d], buf, want);
    if (r == 0 || (r < 0 && errno != EAGAIN && errno != EINTR)) {
        c->dead = 1;
        return;
    }
    if (r < 0)
        return;
    if (c->src == -1) {
        memcpy(c->hs + c->hslen, buf, (size_t)r);
        c->hslen += (size_t)r;
        if (c->hslen == HANDSHAKE_ID_END) {
            uint64_t id = 0;
            for (int b = 7; b >= 0; b--)
                id = id << 8 | c->hs[8 + b];
            c->src = id >= 1 && id <= (uint64_t)p->n ? (int)id - 1 : -2;
        }
    }
    chunk *ch = malloc(sizeof *ch + (size_t)r);
    if (!ch) {
        c->dead = 1;
        return;
    }
    ch->next = NULL;
    ch->due = now_ms() + delay;
    ch->len = (size_t)r;
    ch->off = 0;
    memcpy(ch->data, buf, (size_t)r);
    queue *q = &c->q[d];
    if (q->tail)
        q->tail->next = ch;
    else
        q->head = ch;
    q->tail = ch;
    q->bytes += (size_t)r;
}

/* Writes q[d]'s due chunks to sock[1-d]; returns the bytes written. */
static size_t push(pconn *c, int d, int64_t now)
{
    queue *q = &c->q[d];
    size_t done = 0;
    while (q->head && q->head->due <= now) {
        chunk *ch = q->head;
        ssize_t w = write(c->sock[1 - d], ch->data + ch->off, ch->len - ch->off);
        if (w < 0) {
            if (errno != EAGAIN && errno != EINTR)
                c->dead = 1;
            break;
        }
        ch->off += (size_t)w;
        q->bytes -= (size_t)w;
        done += (size_t)w;
        if (ch->off < ch->len)
            break;
        q->head = ch->next;
        if (!q->head)
            q->tail = NULL;
        free(ch);
    }
    return done;
}

static void *proxy_main(void *arg)
{
    raft_proxy *p = arg;
    struct pollfd pf[MAXN + 2 * MAXCONN];
    for (;;) {
        int cut[MAXN][MAXN], delay[MAXN][MAXN];
        pthread_mutex_lock(&p->mu);
        int stop = p->stop;
        memcpy(cut, p->cut, sizeof cut);
        memcpy(delay, p->delay, sizeof delay);
        pthread_mutex_unlock(&p->mu);
        if (stop)
            break;
        int64_t now = now_ms();
        int np = 0, timeout = 10;
        for (int j = 0; j < p->n; j++)
            pf[np++] = (struct pollfd){.fd = p->listen_fd[j], .events = POLLIN};
        for (int k = 0; k < MAXCONN; k++) {
            pconn *c = p->conns[k];
            if (!c)
                continue;
            int blocked = c->src >= 0 && cut[c->src][c->dst];
            for (int s = 0; s < 2; s++) {
                short ev = 0;
                if (!blocked) {
                    /* reading sock[s] feeds q[s]; writing it drains q[1-s] */
                    if (c->q[s].bytes < QUEUE_CAP && (c->src != -1 || s == 0))
                        ev |= POLLIN;
                    if (c->src != -1 && c->q[1 - s].head && c->q[1 - s].head->due <= now)
                        ev |= POLLOUT;
                }
                pf[np++] = (struct pollfd){.fd = c->sock[s], .events = ev};
            }
        }
        poll(pf, (nfds_t)np, timeout);
        now = now_ms();
        int i = 0;
        for (int j = 0; j < p->n; j++, i++)
            if (pf[i].revents & POLLIN)
                accept_on(p, j);
        for (int k = 0; k < MAXCONN; k++) {
            pconn *c = p->conns[k];
            if (!c || (pf[i].fd != c->sock[0]))
                continue; /* accepted in this round: polled next time */
            for (int s = 0; s < 2; s++, i++) {
                short re = pf[i].revents;
                if (re & (POLLERR | POLLHUP | POLLNVAL))
                    c->dead = 1;
                if (!c->dead && (re & POLLIN))
                    pull(p, c, s, c->src >= 0 ? delay[c->src][c->dst] : 0);
            }
            int blocked = c->src >= 0 && cut[c->src][c->dst];
            if (!blocked && c->src != -1) {
                size_t to_dst = c->dead ? 0 : push(c, 0, now);
                size_t to_src = c->dead ? 0 : push(c, 1, now);
                if (c->src >= 0 && (to_dst || to_src)) {
                    pthread_mutex_lock(&p->mu);
                    p->bytes[c->src][c->dst] += to_dst;
                    p->bytes[c->dst][c->src] += to_src;
                    pthread_mutex_unlock(&p->mu);
                }
            }
            if (c->dead)
                conn_close(p, k);
        }
    }
    for (int k = 0; k < MAXCONN; k++)
        if (p->conns[k])
            conn_close(p, k);
    return NULL;
}

raft_proxy *raft_proxy_start(int n, const int *listen_ports, const int *target_ports)
{
    if (n < 1 || n > MAXN)
        return NULL;
    raft_proxy *p = calloc(1, sizeof *p);
    if (!p)
        return NULL;
    p->n = n;
    for (int j = 0; j < n; j++)
        p->listen_fd[j] = -1;
    for (int j = 0; j < n; j++) {
        p->target[j] = target_ports[j];
        int fd = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
        int one = 1;
        struct sockaddr_in a = {.sin_family = AF_INET,
                                .sin_port = htons((uint16_t)listen_ports[j])};
        a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
        if (fd >= 0)
            setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
        p->listen_fd[j] = fd;
        if (fd < 0 || bind(fd, (struct sockaddr *)&a, sizeof a) != 0 || listen(fd, 64) != 0)
            goto fail;
    }
    pthread_mutex_init(&p->mu, NULL);
    if (pthread_create(&p->thread, NULL, proxy_main, p) != 0) {
        pthread_mutex_destroy(&p->mu);
        goto fail;
    }
    return p;
fail:
    for (int j = 0; j < n; j++)
        if (p->listen_fd[j] >= 0)
            close(p->listen_fd[j]);
    free(p);
    return NULL;
}

void raft_proxy_stop(raft_proxy *p)
{
    if (!p)
        return;
    pthread_mutex_lock(&p->mu);
    p->stop = 1;
    pthread_mutex_unlock(&p->mu);
    pthread_join(p->thread, NULL);
    for (int j = 0; j < p->n; j++)
        close(p->listen_fd[j]);
    pthread_mutex_destroy(&p->mu);
    free(p);
}

static void set_link(raft_proxy *p, int a, int b, int cut, int delay)
{
    if (a < 0 || b < 0 || a >= p->n || b >= p->n || a == b)
        return;
    pthread_mutex_lock(&p->mu);
    if (cut >= 0)
        p->cut[a][b] = p->cut[b][a] = cut;
    if (delay >= 0)
        p->delay[a][b] = p->delay[b][a] = delay;
    pthread_mutex_unlock(&p->mu);
}

void raft_proxy_cut(raft_proxy *p, int a, int b)
{
    set_link(p, a, b, 1, -1);
}

void raft_proxy_heal(raft_proxy *p, int a, int b)
{
    set_link(p, a, b, 0, -1);
}

void raft_proxy_isolate(raft_proxy *p, int a)
{
    for (int b = 0; b < p->n; b++)
        set_link(p, a, b, 1, -1);
}

void raft_proxy_heal_all(raft_proxy *p)
{
    for (int a = 0; a < p->n; a++)
        for (int b = 0; b < p->n; b++)
            set_link(p, a, b, 0, -1);
}

void raft_proxy_delay(raft_proxy *p, int a, int b, int ms)
{
    set_link(p, a, b, -1, ms < 0 ? 0 : ms);
}

uint64_t raft_proxy_bytes(raft_proxy *p, int a, int b)
{
    pthread_mutex_lock(&p->mu);
    uint64_t v = p->bytes[a][b];
    pthread_mutex_unlock(&p->mu);
    return v;
}
