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
 *
 * The list may be learned from the cluster (kv_client_sync_endpoints, as
 * etcd clientv3's Sync): CLUSTER status names every member's client
 * address, and the list becomes those addresses. With endpoints in use
 * the client does it by itself after each connect (a failover, following
 * a new leader, a reconnect), unless kv_client_set_auto_sync(c, 0).
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

int kv_client_get_endpoints(const kv_client *c, char *buf, size_t cap)
{
    size_t len = 0;
    if (c == NULL)
        return -1;
    if (buf && cap)
        buf[0] = '\0';
    for (size_t i = 0; i < c->nendpoints; i++) {
        const kv__client_endpoint *e = &c->endpoints[i];
        int v6 = strchr(e->host, ':') != NULL;
        int k = snprintf(buf && len < cap ? buf + len : NULL, buf && len < cap ? cap - len : 0,
                         "%s%s%s%s:%u", i ? "," : "", v6 ? "[" : "", e->host, v6 ? "]" : "",
                         (unsigned)e->port);
        if (k < 0)
            return -1;
        len += (size_t)k;
    }
    return (int)len;
}

unsigned kv_client_synced(const kv_client *c)
{
    return c ? c->syncs : 0;
}

int kv_client_set_auto_sync(kv_client *c, int on)
{
    if (c == NULL || (on != 0 && on != 1))
        return KV_INVALID_ARGUMENT;
    c->no_auto_sync = !on;
    return KV_OK;
}

/* Adds the addresses of CLUSTER status's "client" members in json to
 * eps (n of them, at most KV_CLIENT_MAX_ENDPOINTS, no duplicates);
 * *unknown counts the members without one. The
 * JSON is kvd's own (kvd/src/repl/node.c, cluster_status): an address is
 * a plain string, HOST:PORT or [V6]:PORT, or null while a member has not
 * said where clients reach it. */
static int parse_members(const char *json, kv__client_endpoint *eps, size_t *n,
                         size_t *unknown)
{
    static const char mark[] = "\"client\":";
    const char *p = strstr(json, "\"nodes\":[");
    if (!p)
        return KV_PROTOCOL;
    while ((p = strstr(p, mark)) != NULL) {
        p += sizeof mark - 1;
        if (*p != '"') {
            (*unknown)++; /* null: not known yet */
            continue;
        }
        const char *end = strchr(p + 1, '"');
        if (!end || memchr(p + 1, '\\', (size_t)(end - p - 1)))
            return KV_PROTOCOL;
        char *host;
        uint16_t port;
        int rc = parse_one(p + 1, (size_t)(end - p - 1), &host, &port);
        p = end + 1;
        if (rc == KV_NO_MEMORY)
            return rc;
        if (rc != KV_OK)
            return KV_PROTOCOL;
        int dup = 0;
        for (size_t i = 0; i < *n && !dup; i++)
            dup = eps[i].port == port && strcmp(eps[i].host, host) == 0;
        if (dup || *n == KV_CLIENT_MAX_ENDPOINTS) {
            free(host);
            continue;
        }
        eps[*n].host = host;
        eps[*n].port = port;
        (*n)++;
    }
    return KV_OK;
}

int kv_client_sync_endpoints(kv_client *c)
{
    if (c == NULL)
        return KV_INVALID_ARGUMENT;
    if (c->opts.unix_path)
        return kv__client_error(c, KV_UNSUPPORTED,
                                "a client of a Unix socket uses no endpoints to learn");
    if (c->fd < 0)
        return kv__client_error(c, KV_CLOSED, "not connected");
    if (c->proto_version < 3)
        return kv__client_error(c, KV_UNSUPPORTED,
                                "the server speaks protocol version %d; cluster members need "
                                "version 3: a newer kvd",
                                c->proto_version);
    char *json = NULL;
    c->syncing = 1;
    int rc = kv_client_cluster(c, "status", 0, NULL, &json);
    c->syncing = 0;
    if (rc != KV_OK) {
        free(json);
        return rc; /* KV_UNSUPPORTED: a single kvd ("not a cluster node") */
    }
    if (!json)
        return kv__client_error(c, KV_PROTOCOL, "CLUSTER status came without its JSON");
    kv__client_endpoint *eps = calloc(KV_CLIENT_MAX_ENDPOINTS, sizeof *eps);
    size_t n = 0, unknown = 0;
    rc = eps ? parse_members(json, eps, &n, &unknown) : KV_NO_MEMORY;
    free(json);
    /* Members whose address is not known yet may be among the endpoints
     * c has: keep those too (the list is exact once every member said
     * where clients reach it). */
    for (size_t i = 0; rc == KV_OK && n > 0 && unknown > 0 && i < c->nendpoints; i++) {
        int dup = 0;
        for (size_t k = 0; k < n && !dup; k++)
            dup = eps[k].port == c->endpoints[i].port &&
                  strcmp(eps[k].host, c->endpoints[i].host) == 0;
        if (dup || n == KV_CLIENT_MAX_ENDPOINTS)
            continue;
        if (!(eps[n].host = strdup(c->endpoints[i].host)))
            rc = KV_NO_MEMORY;
        else
            eps[n++].port = c->endpoints[i].port;
    }
    if (rc == KV_OK && n == 0)
        rc = kv__client_error(c, KV_NOT_FOUND,
                              "no member of the cluster has said where clients reach it yet "
                              "(a leader announces its own address; the others theirs once "
                              "they know it): the endpoints are unchanged");
    else if (rc == KV_PROTOCOL)
        kv__client_error(c, rc, "CLUSTER status names a member's client address that is not "
                                "HOST:PORT: the endpoints are unchanged");
    else if (rc == KV_NO_MEMORY)
        kv__client_error(c, rc, "out of memory");
    if (rc != KV_OK) {
        while (eps && n > 0)
            free(eps[--n].host);
        free(eps);
        return rc;
    }
    kv__client_endpoints_free(c);
    c->endpoints = eps;
    c->nendpoints = n;
    /* the next search starts after the current address */
    for (size_t i = 0; i < n; i++)
        if (eps[i].port == c->opts.port && strcmp(eps[i].host, c->opts.host) == 0)
            c->ep_next = (i + 1) % n;
    c->syncs++;
    return KV_OK;
}

int kv__client_auto_sync(kv_client *c)
{
    if (c->no_auto_sync || c->syncing || c->nendpoints == 0 || c->opts.unix_path ||
        c->watching || c->proto_version < 3)
        return KV_OK;
    int rc = kv_client_sync_endpoints(c);
    if (rc == KV_CLOSED || rc == KV_IO || rc == KV_TIMEOUT || rc == KV_PROTOCOL)
        return c->fd < 0 ? rc : KV_OK;
    c->err[0] = '\0'; /* a single kvd, no address known yet: the list stays */
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
