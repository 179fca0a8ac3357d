/*
 * http.h - what the files of kvd's HTTP front-end share (not an API):
 * a connection's HTTP state, from the request being read (fe_http.c,
 * with Node's http_parser) and turned into a command (http_route.c) to
 * the reply being rendered (http_reply.c), and the helpers for JSON
 * bodies (http_json.c) and the Prometheus exposition (http_metrics.c).
 * docs/http.md describes the API.
 *
 * One request at a time per connection: the state of the request being
 * read and of the reply being written live side by side in kvd_http
 * (c->fe_state), since a request is answered before the next one is
 * parsed. Offsets (kvd_http_span) count from the request's first byte,
 * because the buffer that holds it may move between reads.
 *
 * Everything here runs on the connection's loop thread.
 */
#ifndef KVD_HTTP_H
#define KVD_HTTP_H

#include <http_parser.h>
#include <jansson.h>
#include <stddef.h>
#include <stdint.h>

#include "cmd.h"
#include "kv_proto.h"

struct kvd_conn;
struct kvd_server;

/* The endpoints. */
typedef enum kvd_http_route {
    KVD_HTTP_NONE = 0, /* no such path                         */
    KVD_HTTP_KEY,      /* /v1/keys/{key}                       */
    KVD_HTTP_KEYS,     /* /v1/keys?prefix=&cursor=&limit=      */
    KVD_HTTP_TXN,      /* /v1/txn                              */
    KVD_HTTP_MSET,     /* /v1/mset                             */
    KVD_HTTP_MGET,     /* /v1/mget                             */
    KVD_HTTP_METRICS,  /* /metrics                             */
    KVD_HTTP_HEALTH,   /* /healthz                             */
    KVD_HTTP_HISTORY,  /* /v1/history/{key}?min_rev=&max_rev=&limit= */
    KVD_HTTP_ROLLBACK, /* /v1/rollback                         */
    KVD_HTTP_COMPACT,  /* /v1/compact                          */
} kvd_http_route;

/* How the request's bearer token fared (decided when its head is read). */
enum {
    KVD_HTTP_AUTH_OK = 0,  /* no password, a right token, or a route without auth */
    KVD_HTTP_AUTH_MISSING, /* no token                                  */
    KVD_HTTP_AUTH_WRONG,   /* a wrong token                             */
    KVD_HTTP_AUTH_WAIT,    /* the address must wait for its turn first
                              (the AUTH throttle), then it is checked   */
};

/* What the reply renders. */
enum {
    KVD_HTTP_OUT_JSON = 0, /* the command's result, shaped for the route  */
    KVD_HTTP_OUT_RAW,      /* GET /v1/keys/{key}: the value itself         */
    KVD_HTTP_OUT_TEXT,     /* body_out as it is (metrics, health)          */
};

typedef struct kvd_http_span {
    size_t off, len;
    int set;
} kvd_http_span;

#define KVD_HTTP_DEPTH 8 /* nesting of a command's structural reply */

typedef struct kvd_http {
    http_parser parser;
    struct kvd_conn *c;
    const uint8_t *base; /* the request's first byte (during a split) */
    size_t pos;          /* its bytes fed to the parser               */

    /* ---- the request ---- */
    unsigned begun : 1, headers_done : 1, complete : 1, keep_alive : 1;
    unsigned in_field : 1;     /* the last callback was a header name   */
    unsigned copy_body : 1;    /* the body is in body_copy (chunked)     */
    unsigned verified : 1;     /* a token was verified on this connection */
    unsigned head_only : 1;    /* HEAD: the headers of GET, no body      */
    unsigned body_ok : 1;      /* the head passed: the body may be read  */
    unsigned waiting : 1;      /* the token waits for its turn (throttle) */
    int method;                /* enum http_method                        */
    int http_minor;
    kvd_http_span url, field;
    kvd_http_span authorization, if_match, if_none_match, expect;
    kvd_http_span client_id, request_id; /* Kvd-Client-Id, Kvd-Request-Id */
    kvd_http_span *value;      /* the header value being read, or NULL   */
    int duplicate;             /* a header that counts was repeated      */
    kvd_http_span body;        /* in the request, when contiguous        */
    kv_proto_buf body_copy;    /* a chunked body, reassembled            */
    size_t body_total;         /* body bytes so far                       */
    size_t head_limit, body_limit;
    size_t head_end;           /* end of the head's last piece seen       */
    int route;                 /* kvd_http_route                          */
    kvd_http_span path_key;    /* KEY: the encoded key in the path        */
    kvd_http_span query;       /* the query string                        */
    int auth;                  /* KVD_HTTP_AUTH_*                          */
    uint64_t wait_ms;          /* AUTH_WAIT: how long                      */
    /* an error found while reading, answered instead (then close) */
    int early_status;          /* kv status, 0 = none                     */
    char early_msg[160];

    /* set while reading, for the request's reply */
    int code;                  /* HTTP status to answer instead of the
                                  status's own (417, 431...), or 0       */
    int close_after;           /* Connection: close                       */

    /* ---- the reply's scratch ----
     * A reply's parameters travel in the kvd_reply (r->u.http); what it
     * collects lives here, shared by the connection's replies: each one
     * is rendered from its first call to its finish within one callback
     * of the loop (also one given later, by the cluster layer), so they
     * never interleave. */
    kv_proto_buf body_out;     /* JSON or text body being built           */
    json_t *root;              /* the command's structural reply          */
    json_t *stack[KVD_HTTP_DEPTH];
    size_t left[KVD_HTTP_DEPTH]; /* elements still to come (maps: 2 per pair) */
    json_t *map_key;           /* a map's key waiting for its value        */
    int depth;
    size_t page_start, page_saved; /* SCAN: body_out offsets              */
    int page_first, page_saved_first;
    char err_msg[256];         /* an error's detail, copied               */
} kvd_http;

/* The bytes of span s of the request. */
static inline const char *kvd_http_at(const kvd_http *st, const kvd_http_span *s)
{
    return (const char *)st->base + s->off;
}

/* s[0..n) is lit, ignoring ASCII case. */
static inline int kvd_http_eq_ci(const char *s, size_t n, const char *lit)
{
    size_t i = 0;
    for (; i < n && lit[i]; i++) {
        char a = s[i], b = lit[i];
        if (a >= 'A' && a <= 'Z')
            a = (char)(a - 'A' + 'a');
        if (b >= 'A' && b <= 'Z')
            b = (char)(b - 'A' + 'a');
        if (a != b)
            return 0;
    }
    return i == n && !lit[i];
}

/* ---- http_route.c ---- */

/* Answers the complete request st holds (its bytes at st->base, len of
 * them) into r: refusals (no such endpoint, a method it does not take, a
 * missing or wrong token, a malformed argument), /healthz, /metrics, or
 * its command through kvd_cmd_execute. Returns as kvd_cmd_execute. */
int kvd_http_dispatch(struct kvd_conn *c, kvd_http *st, size_t len, kvd_reply *r,
                      uint64_t *clock);

/* ---- http_reply.c ---- */

/* The reply interface for HTTP (cmd.h): starts a reply in c->out, its
 * parameters (r->u.http) from the request being answered (HEAD, the
 * HTTP version, Connection: close, a status to answer instead); the
 * caller sets the rest (mode, kind...). */
void kvd_http_reply_init(struct kvd_conn *c, kvd_reply *r, uint64_t id);
/* Clears the scratch of st (after a reply, or when the connection goes). */
void kvd_http_reply_reset(kvd_http *st);
/* Writes a whole response to r->out: status line, headers (Content-Type,
 * Content-Length, Date, the version, Connection...) and body[0..n)
 * (omitted for HEAD). Returns KV_OK or KV_NO_MEMORY. */
int kvd_http_respond(kvd_reply *r, int code, const char *ctype, const void *body, size_t n);
/* The HTTP status for a kv status. */
int kvd_http_code(int status);
/* Renders {"error":{"status","code","message"}} into b. */
int kvd_http_error_body(kv_proto_buf *b, int status, const char *msg);

/* ---- http_json.c ---- */

/* Turns the JSON body of a POST to route (TXN, MSET, MGET) into cmd;
 * arrays and decoded bytes go to arena. limit bounds the memory the
 * parse may take (a body estimated to need more is refused). Returns
 * KV_OK, or a status (INVALID_ARGUMENT, FRAME_TOO_LARGE, NO_MEMORY) with
 * its explanation in err. */
int kvd_http_json_request(int route, const void *body, size_t len, size_t limit,
                          kv_proto_arena *arena, kvd_cmd *cmd, char *err, size_t errlen);

/* Appends s[0..n) as a JSON string (quoted, escaped) to b. */
int kvd_http_json_string(kv_proto_buf *b, const char *s, size_t n);
/* Appends bytes as a quoted base64 JSON string to b. */
int kvd_http_json_base64(kv_proto_buf *b, const void *p, size_t n);
/* Appends n bytes to b. */
int kvd_http_put(kv_proto_buf *b, const void *p, size_t n);

/* ---- http_metrics.c ---- */

/* Appends the Prometheus text exposition (format 0.0.4) of the server's
 * and the store's figures to b. Returns KV_OK or a failure status. */
int kvd_http_metrics(struct kvd_server *s, kv_proto_buf *b);

#endif /* KVD_HTTP_H */
