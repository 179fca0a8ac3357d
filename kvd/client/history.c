/*
 * history.c - libkvclient's history calls (protocol version 5): reads at
 * a revision (GET_AT, MGET_AT, SCAN_AT), a key's changes (HISTORY),
 * ROLLBACK and COMPACT, as in kv_client.h's "History".
 *
 * As ops.c: each builds a kv_proto_request, calls kv__client_call(), and
 * copies the zero-copy response into memory the caller owns.
 */
#include <stdlib.h>
#include <string.h>

#include "client_internal.h"

static int run(kv_client *c, kv_proto_request *q, kv_proto_response *r)
{
    kv__client_start_call(c);
    int rc = kv__client_call(c, q, r);
    if (rc != KV_OK)
        return rc;
    return r->status == KV_OK ? KV_OK : kv__client_server_status(c, r);
}

int kv_client_get_at(kv_client *c, const void *key, size_t klen, uint64_t rev, kv_value *out)
{
    kv_proto_request q = {.op = KV_PROTO_GET_AT, .key = {key, klen}, .revision = rev};
    kv_proto_response r;
    int rc = run(c, &q, &r);
    if (rc != KV_OK)
        return rc;
    void *d = kv__client_memdup(r.value.data, r.value.len);
    if (d == NULL)
        return kv__client_error(c, KV_NO_MEMORY, "out of memory");
    out->data = d;
    out->len = r.value.len;
    out->version = r.value.version;
    return KV_OK;
}

int kv_client_mget_at(kv_client *c, const kv_key *keys, size_t n, uint64_t rev, kv_value *out)
{
    kv_proto_request q = {.op = KV_PROTO_MGET_AT, .keys = keys, .nkeys = n, .revision = rev};
    return kv__client_mget_run(c, &q, out, "MGET_AT");
}

int kv_client_scan_at(kv_client *c, const void *prefix, size_t plen, uint64_t rev,
                      uint64_t cursor, size_t limit, unsigned flags, kv_scan_fn fn, void *ctx,
                      uint64_t *next)
{
    if (flags & ~KV_CLIENT_SCAN_KEYS_ONLY)
        return kv__client_error(c, KV_INVALID_ARGUMENT, "unknown SCAN flags");
    int keys_only = (flags & KV_CLIENT_SCAN_KEYS_ONLY) != 0;
    kv_proto_request q = {.op = KV_PROTO_SCAN_AT, .key = {prefix, plen}, .revision = rev,
                          .cursor = cursor, .limit = limit, .keys_only = keys_only};
    kv_proto_response r;
    int rc = run(c, &q, &r);
    if (rc != KV_OK)
        return rc;
    for (size_t i = 0; i < r.nentries && fn != NULL; i++) {
        const kv_proto_entry *e = &r.entries[i];
        if (fn(ctx, e->key.data, e->key.len, keys_only ? NULL : e->val, keys_only ? 0 : e->vlen,
               e->version))
            break;
    }
    if (next != NULL)
        *next = r.cursor;
    return KV_OK;
}

void kv_client_events_free(kv_event *events, size_t n)
{
    if (events == NULL)
        return;
    for (size_t i = 0; i < n; i++) {
        free(events[i].value);
        free(events[i].key); /* watch events have one (watch.c) */
    }
    free(events);
}

int kv_client_history(kv_client *c, const void *key, size_t klen, uint64_t min_rev,
                      uint64_t max_rev, size_t limit, kv_event **out, size_t *n,
                      uint64_t *compact_rev)
{
    if (out == NULL || n == NULL)
        return kv__client_error(c, KV_INVALID_ARGUMENT, "out and n must not be NULL");
    kv_proto_request q = {.op = KV_PROTO_HISTORY, .key = {key, klen}, .min_revision = min_rev,
                          .revision = max_rev, .limit = limit};
    kv_proto_response r;
    int rc = run(c, &q, &r);
    if (rc != KV_OK)
        return rc;
    kv_event *ev = calloc(r.nevents + 1, sizeof *ev);
    if (ev == NULL)
        return kv__client_error(c, KV_NO_MEMORY, "out of memory");
    for (size_t i = 0; i < r.nevents; i++) {
        const kv_proto_event *e = &r.events[i];
        ev[i].revision = e->revision;
        ev[i].deleted = e->deleted;
        if (e->deleted)
            continue;
        ev[i].create_revision = e->create_revision;
        ev[i].version = e->version;
        ev[i].expire_at_ms = e->expire_at_ms;
        ev[i].vlen = e->vlen;
        if ((ev[i].value = kv__client_memdup(e->value, e->vlen)) == NULL) {
            kv_client_events_free(ev, i);
            return kv__client_error(c, KV_NO_MEMORY, "out of memory");
        }
    }
    *out = ev;
    *n = r.nevents;
    if (compact_rev)
        *compact_rev = r.compact_revision;
    return KV_OK;
}

static int rollback(kv_client *c, kv_proto_request *q, uint64_t *version, size_t *changed)
{
    kv_proto_response r;
    int rc = run(c, q, &r);
    if (rc != KV_OK)
        return rc;
    if (version)
        *version = r.version;
    if (changed)
        *changed = (size_t)r.changed;
    return KV_OK;
}

int kv_client_rollback(kv_client *c, const kv_key *keys, size_t n, uint64_t to_rev,
                       uint64_t unchanged_since, uint64_t *version, size_t *changed)
{
    if (n == 0 || keys == NULL)
        return kv__client_error(c, KV_INVALID_ARGUMENT, "no keys to roll back");
    kv_proto_request q = {.op = KV_PROTO_ROLLBACK, .keys = keys, .nkeys = n,
                          .revision = to_rev, .unchanged_since = unchanged_since};
    return rollback(c, &q, version, changed);
}

int kv_client_rollback_prefix(kv_client *c, const void *prefix, size_t plen, uint64_t to_rev,
                              uint64_t unchanged_since, uint64_t *version, size_t *changed)
{
    kv_proto_request q = {.op = KV_PROTO_ROLLBACK, .key = {plen ? prefix : "", plen},
                          .has_prefix = 1, .revision = to_rev,
                          .unchanged_since = unchanged_since};
    return rollback(c, &q, version, changed);
}

int kv_client_compact(kv_client *c, uint64_t rev, uint64_t *compact_rev)
{
    kv_proto_request q = {.op = KV_PROTO_COMPACT, .revision = rev};
    kv_proto_response r;
    int rc = run(c, &q, &r);
    if (rc == KV_OK && compact_rev)
        *compact_rev = r.compact_revision;
    return rc;
}
