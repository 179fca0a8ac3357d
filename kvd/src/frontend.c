/*
 * frontend.c - choosing a connection's protocol from its first bytes
 * (frontend.h), and the one front-end that only refuses: an HTTP request
 * gets a plain-text 400 answer saying what kvd speaks, then the
 * connection closes.
 */
#include "frontend.h"

#include <string.h>

#include "conn.h"

/* First line of an HTTP request: "METHOD target HTTP/1.x". */
static int is_http(const uint8_t *p, size_t line)
{
    static const char *const methods[] = {"GET ", "POST ", "PUT ", "HEAD ", "DELETE ",
                                          "OPTIONS ", "PATCH ", "CONNECT ", "TRACE "};
    int method = 0;
    for (size_t i = 0; i < sizeof methods / sizeof methods[0]; i++) {
        size_t n = strlen(methods[i]);
        if (line >= n && memcmp(p, methods[i], n) == 0)
            method = 1;
    }
    if (line > 0 && p[line - 1] == '\r')
        line--;
    return method && line >= 8 && memcmp(p + line - 8, "HTTP/1.", 7) == 0;
}

#define DETECT_MAX_LINE 8192

const kvd_frontend *kvd_frontend_detect(const uint8_t *p, size_t len)
{
    if (p[0] == '*')
        return &kvd_fe_resp;
    if (!((p[0] >= 'A' && p[0] <= 'Z') || (p[0] >= 'a' && p[0] <= 'z')))
        return &kvd_fe_native; /* a frame's length prefix */
    /* A letter: an inline Redis command or an HTTP request line. */
    size_t i = 0;
    while (i < len && p[i] != '\n')
        i++;
    if (i == len && len < DETECT_MAX_LINE)
        return NULL; /* the first line is not complete yet */
    return is_http(p, i) ? &kvd_fe_http_refusal : &kvd_fe_resp;
}

const kvd_frontend *kvd_frontend_for(int protocol)
{
    switch (protocol) {
    case KVD_PROTOCOL_NATIVE: return &kvd_fe_native;
    case KVD_PROTOCOL_RESP: return &kvd_fe_resp;
    case KVD_PROTOCOL_HTTP: return &kvd_fe_http_refusal;
    default: return NULL;
    }
}

/* ---- the HTTP refusal ------------------------------------------------------ */

static const char http_reply_body[] =
    "kvd does not speak HTTP on this port: it speaks kvd's MessagePack frames (see "
    "docs/protocol.md) and the Redis protocol (redis-cli -p PORT)\n";

static int http_split(kvd_conn *c, const uint8_t *p, size_t len, size_t *msg_len)
{
    (void)p;
    (void)len;
    (void)msg_len;
    char head[160];
    size_t body_len = sizeof http_reply_body - 1;
    size_t head_len = (size_t)snprintf(head, sizeof head,
                                       "HTTP/1.0 400 Bad Request\r\n"
                                       "Content-Type: text/plain\r\n"
                                       "Content-Length: %zu\r\n"
                                       "Connection: close\r\n\r\n",
                                       body_len);
    c->fatal = 1;
    kvd_stat_add(&c->w->stats.errors, 1);
    kvd_stat_add(&c->w->stats.protocol_errors, 1);
    kvd_cmd_protocol_warn(c, "an HTTP request (answered in plain text), closing");
    if (kv_proto_buf_reserve(&c->out, head_len + body_len) == KV_OK) {
        memcpy(c->out.data + c->out.len, head, head_len);
        memcpy(c->out.data + c->out.len + head_len, http_reply_body, body_len);
        c->out.len += head_len + body_len;
    }
    return KVD_MSG_FATAL;
}

static int http_run(kvd_conn *c, const uint8_t *msg, size_t len, uint64_t *clock)
{
    (void)c;
    (void)msg;
    (void)len;
    (void)clock;
    return 1;
}

static size_t http_want(const kvd_conn *c, const uint8_t *p, size_t len)
{
    (void)c;
    (void)p;
    (void)len;
    return 0;
}

/* Connection-level errors before the protocol is known, or on an HTTP
 * connection, use kvd's own frames (a client of ours may be waiting). */
static void http_reply_init(kvd_conn *c, kvd_reply *r, uint64_t id)
{
    kvd_fe_native.reply_init(c, r, id);
}

static int http_fatal(kvd_conn *c, const uint8_t *partial, size_t have, int status,
                      const char *detail)
{
    (void)partial;
    (void)have;
    (void)status;
    (void)detail;
    c->fatal = 1;
    return 0;
}

const kvd_frontend kvd_fe_http_refusal = {
    .name = "http-refusal",
    .protocol = KVD_PROTOCOL_HTTP,
    .split = http_split,
    .run = http_run,
    .want = http_want,
    .reply_init = http_reply_init,
    .fatal = http_fatal,
    .prefetch = NULL,
};
