/*
 * frontend.c - choosing a connection's protocol from its first bytes
 * (frontend.h): kvd's MessagePack frames, RESP, or HTTP (fe_http.c).
 */
#include "frontend.h"

#include <string.h>

/* p[0..len) starts with an HTTP method and a space. */
static int http_method(const uint8_t *p, size_t len)
{
    static const char *const methods[] = {"GET ", "POST ", "PUT ", "HEAD ", "DELETE ",
                                          "OPTIONS ", "PATCH ", "CONNECT ", "TRACE "};
    for (size_t i = 0; i < sizeof methods / sizeof methods[0]; i++) {
        size_t n = strlen(methods[i]);
        if (len >= n && memcmp(p, methods[i], n) == 0)
            return 1;
    }
    return 0;
}

/* First line of an HTTP request: "METHOD target HTTP/1.x". */
static int is_http(const uint8_t *p, size_t line)
{
    int method = http_method(p, line);
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
    if (i == len) /* a long line: an HTTP target with a long key, or not */
        return http_method(p, len) ? &kvd_fe_http : &kvd_fe_resp;
    return is_http(p, i) ? &kvd_fe_http : &kvd_fe_resp;
}

const kvd_frontend *kvd_frontend_for(int protocol)
{
    switch (protocol) {
    case KVD_PROTOCOL_NATIVE: return &kvd_fe_native;
    case KVD_PROTOCOL_RESP: return &kvd_fe_resp;
    case KVD_PROTOCOL_HTTP: return &kvd_fe_http;
    default: return NULL;
    }
}

void kvd_prefetch(kv_store *store, const kv_key *keys, const bool *is_set, size_t n)
{
    kv_key reads[KVD_PREFETCH_MAX], writes[KVD_PREFETCH_MAX];
    size_t nr = 0, nw = 0;
    for (size_t i = 0; i < n && i < KVD_PREFETCH_MAX; i++) {
        if (is_set[i])
            writes[nw++] = keys[i];
        else
            reads[nr++] = keys[i];
    }
    if (nr)
        kv_prefetch(store, reads, nr);
    if (nw)
        kv_prefetch_writes(store, writes, nw);
}
