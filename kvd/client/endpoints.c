/*
 * endpoints.c - the other nodes of a cluster that a client tries when the
 * one it was given cannot be reached (kv_client_set_endpoints), as
 * etcdctl's --endpoints.
 *
 * The client keeps one current address (opts.host/port): following a
 * leader moves it, and so does a failover here. When connecting to it
 * fails at the transport level (refused, unreachable, timed out, closed
 * during the handshake), kv_client_connect goes on to the endpoints in
 * turn, starting after the one that last answered, until one connects;
 * a node that is not the leader then names it (NOT_LEADER), and calls
 * follow it as they always do. Any other failure (authentication, no
 * common protocol version) ends the search: another node would answer
 * the same.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "client_internal.h"

/* Parses one "HOST:PORT" or "[V6]:PORT" of len bytes. */
static int parse_one(const char *s, size_t len, char **host, uint16_t *port)
{
    const char *colon = NULL;
    for (size_t i = len; i > 0; i--)
        if (s[i - 1] == ':') {
            colon = s + i - 1;
            break;
        }
    if (!colon || colon == s || (size_t)(s + len - colon) < 2 || s + len - colon > 6)
        return KV_INVALID_ARGUMENT;
    unsigned long p = 0;
    for (const char *d = colon + 1; d < s + len; d++) {
        if (*d < '0' || *d > '9')
            return KV_INVALID_ARGUMENT;
        p = p * 10 + (unsigned long)(*d - '0');
    }
    if (p == 0 || p > 65535)
        return KV_INVALID_ARGUMENT;
    const char *h = s;
    size_t hlen = (size_t)(colon - s);
    if (h[0] == '[') { /* [v6]:port */
        if (hlen < 3 || h[hlen - 1] != ']')
            return KV_INVALID_ARGUMENT;
        h++;
        hlen -= 2;
    } else if (memchr(h, ':', hlen) || memchr(h, '[', hlen) || memchr(h, ']', hlen)) {
        return KV_INVALID_ARGUMENT; /* a bare IPv6 address needs brackets */
    }
    if (memchr(h, ' ', hlen))
        return KV_INVALID_ARGUMENT;
    *host = strndup(h, hlen);
    if (!*host)
        return KV_NO_MEMORY;
    *port = (uint16_t)p;
    return KV_OK;
}

void kv__client_endpoints_free(kv_client *c)
{
    for (size_t i = 0; i < c->nendpoints; i++)
        free(c->endpoints[i].host);
    free(c->endpoints);
    c->endpoints = NULL;
    c->nendpoints = 0;
    c->ep_next = 0;
}

int kv_client_set_endpoints(kv_client *c, const char *list)
{
    if (c == NULL)
        return KV_INVALID_ARGUMENT;
    kv__client_endpoint *eps = NULL;
    size_t n = 0;
    if (list != NULL && *list) {
        size_t cap = 1;
        for (const char *p = list; *p; p++)
            cap += *p == ',';
        if (cap > KV_CLIENT_MAX_ENDPOINTS)
            return KV_INVALID_ARGUMENT;
        eps = calloc(cap, sizeof *eps);
        if (!eps)
            return KV_NO_MEMORY;
        for (const char *p = list;;) {
            const char *end = strchr(p, ',');
            size_t len = end ? (size_t)(end - p) : strlen(p);
            int rc = parse_one(p, len, &eps[n].host, &eps[n].port);
            if (rc != KV_OK) {
                while (n > 0)
                    free(eps[--n].host);
                free(eps);
                return rc;
            }
            n++;
            if (!end)
                break;
            p = end + 1;
        }
    }
    kv__client_endpoints_free(c);
    c->endpoints = eps;
    c->nendpoints = n;
    return KV_OK;
}

/* A failure that another node might not have: the address did not
 * answer, or the connection broke before the handshake finished. */
static int transport_failure(int rc)
{
    return rc == KV_CONNECT || rc == KV_TIMEOUT || rc == KV_CLOSED || rc == KV_IO;
}

int kv__client_connect_any(kv_client *c, int (*connect_here)(kv_client *))
{
    int rc = connect_here(c);
    if (rc == KV_OK || c->nendpoints == 0 || c->opts.unix_path || !transport_failure(rc))
        return rc;
    char first[KV__CLIENT_ERRLEN];
    snprintf(first, sizeof first, "%s", c->err);
    unsigned tried = 0;
    for (size_t i = 0; i < c->nendpoints; i++) {
        size_t k = (c->ep_next + i) % c->nendpoints;
        const kv__client_endpoint *e = &c->endpoints[k];
        if (e->port == c->opts.port && strcmp(e->host, c->opts.host) == 0)
            continue; /* the one that just failed */
        char *h = strdup(e->host);
        if (!h)
            return kv__client_error(c, KV_NO_MEMORY, "out of memory");
        free((char *)c->opts.host);
        c->opts.host = h;
        c->opts.port = e->port;
        tried++;
        rc = connect_here(c);
        if (rc == KV_OK) {
            c->ep_next = k + 1;
            return KV_OK;
        }
        if (!transport_failure(rc))
            return rc;
    }
    char last[KV__CLIENT_ERRLEN];
    snprintf(last, sizeof last, "%s", c->err);
    if (tried)
        kv__client_error(c, rc, "%s; and the %u other endpoint%s failed too (last: %s)",
                         first, tried, tried == 1 ? "" : "s", last);
    return rc;
}
