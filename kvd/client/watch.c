/*
 * watch.c - libkvclient's watches (protocol version 6; kv_client.h
 * "Watch"): WATCH, then the event frames that follow it on the
 * connection, and CANCEL.
 *
 * While a watch is open it owns the client's connection (c->watching):
 * every frame that arrives is one of its event frames, until the end
 * frame. Closing it sends CANCEL and reads up to CANCEL's response,
 * dropping events still on their way, so the connection can carry
 * requests again afterwards.
 */
#include <stdlib.h>
#include <string.h>

#include "client_internal.h"

struct kv_client_watch {
    kv_client *c;
    uint64_t id;       /* the WATCH request's id: its frames carry it */
    uint64_t next_rev; /* where it goes on (after the end: resume here) */
    int ended;         /* the server ended it, or the connection failed */
    int end_status;
};

int kv_client_watch_open(kv_client *c, const void *key, size_t klen, int prefix,
                         uint64_t from_rev, size_t max_events, kv_client_watch **out)
{
    if (out == NULL)
        return kv__client_error(c, KV_INVALID_ARGUMENT, "out must not be NULL");
    kv_client_watch *w = calloc(1, sizeof *w);
    if (w == NULL)
        return kv__client_error(c, KV_NO_MEMORY, "out of memory");
    kv_proto_request q = {.op = KV_PROTO_WATCH, .key = {key, klen}, .has_prefix = prefix != 0,
                          .revision = from_rev, .limit = max_events};
    kv_proto_response r;
    kv__client_start_call(c);
    int rc = kv__client_call(c, &q, &r);
    if (rc == KV_OK && r.status != KV_OK)
        rc = kv__client_server_status(c, &r);
    if (rc != KV_OK) {
        free(w);
        return rc;
    }
    w->c = c;
    w->id = q.id;
    w->next_rev = r.version;
    c->watching = 1;
    *out = w;
    return KV_OK;
}

/* Copies a decoded frame's events into caller-owned kv_events. */
static int copy_events(kv_client *c, const kv_proto_event_frame_t *f, kv_event **events,
                       size_t *n)
{
    kv_event *ev = calloc(f->nevents + 1, sizeof *ev);
    if (ev == NULL)
        return kv__client_fail(c, KV_NO_MEMORY, "out of memory");
    for (size_t i = 0; i < f->nevents; i++) {
        const kv_proto_event *e = &f->events[i];
        ev[i].revision = e->revision;
        ev[i].deleted = e->deleted;
        ev[i].key = kv__client_memdup(e->key.data, e->key.len);
        ev[i].klen = e->key.len;
        if (!e->deleted) {
            ev[i].value = kv__client_memdup(e->value, e->vlen);
            ev[i].vlen = e->vlen;
            ev[i].create_revision = e->create_revision;
            ev[i].version = e->version;
            ev[i].expire_at_ms = e->expire_at_ms;
        }
        if (ev[i].key == NULL || (!e->deleted && ev[i].value == NULL)) {
            kv_client_events_free(ev, i + 1);
            /* the events are consumed: going on would skip them */
            return kv__client_fail(c, KV_NO_MEMORY, "out of memory copying watch events");
        }
    }
    *events = ev;
    *n = f->nevents;
    return KV_OK;
}

int kv_client_watch_next(kv_client_watch *w, kv_event **events, size_t *n, int timeout_ms)
{
    if (w == NULL || events == NULL || n == NULL)
        return KV_INVALID_ARGUMENT;
    kv_client *c = w->c;
    if (w->ended)
        return kv__client_error(c, w->end_status, "the watch has ended");
    if (!c->watching) {
        w->ended = 1;
        w->end_status = KV_CLOSED;
        return kv__client_error(c, KV_CLOSED, "the watch's connection is closed");
    }
    int ready;
    int rc = kv__client_poll_frame(c, timeout_ms, &ready);
    if (rc != KV_OK)
        goto failed;
    if (!ready) {
        *events = NULL;
        *n = 0;
        return KV_OK;
    }
    const uint8_t *body;
    size_t len;
    kv__client_start_call(c); /* the rest of a frame that began arriving */
    if ((rc = kv__client_recv_frame(c, &body, &len)) != KV_OK)
        goto failed;
    if (!kv_proto_is_event_frame(body, len)) {
        kv_proto_response r;
        kv_proto_arena_reset(&c->arena);
        kv_proto_response_decode(body, len, KV_PROTO_PING, &c->arena, &r);
        if (r.id == 0 && r.status != KV_OK) {
            /* a connection-level error: the server closes after it */
            rc = kv__client_fail(c, r.status, "server: %.*s", (int)r.detail.len,
                                 r.detail.len ? (const char *)r.detail.data
                                              : kv_client_strerror(r.status));
        } else {
            rc = kv__client_fail(c, KV_PROTOCOL, "a response where watch events were expected");
        }
        goto failed;
    }
    kv_proto_event_frame_t f;
    kv_proto_arena_reset(&c->arena);
    rc = kv_proto_event_frame_decode(body, len, &c->arena, &f);
    if (rc != KV_OK) {
        rc = kv__client_fail(c, rc == KV_NO_MEMORY ? rc : KV_PROTOCOL, "bad event frame: %s",
                             f.error ? f.error : "undecodable");
        goto failed;
    }
    if (f.id != w->id) {
        rc = kv__client_fail(c, KV_PROTOCOL, "event frame for watch %llu, expected %llu",
                             (unsigned long long)f.id, (unsigned long long)w->id);
        goto failed;
    }
    w->next_rev = f.next_revision;
    if (f.end) {
        /* the server ended it: the connection is free again */
        w->ended = 1;
        w->end_status = f.status == KV_OK ? KV_CLOSED : f.status;
        c->watching = 0;
        if (f.status == KV_COMPACTED)
            return kv__client_error(c, KV_COMPACTED,
                                    "watch lost events: the server's history no longer has "
                                    "them; resume from revision %llu",
                                    (unsigned long long)f.next_revision);
        return kv__client_error(c, w->end_status, "the server ended the watch (%s)",
                                kv_client_status_name(f.status));
    }
    if (f.status != KV_OK) {
        rc = kv__client_fail(c, KV_PROTOCOL, "event frame with status %d and events", f.status);
        goto failed;
    }
    if ((rc = copy_events(c, &f, events, n)) != KV_OK)
        goto failed;
    return KV_OK;
failed:
    w->ended = 1;
    w->end_status = rc;
    return rc;
}

uint64_t kv_client_watch_revision(const kv_client_watch *w)
{
    return w ? w->next_rev : 0;
}

/* CANCEL, then frames up to its response. KV_OK or a failure (closed). */
static int cancel(kv_client_watch *w)
{
    kv_client *c = w->c;
    kv_proto_request q = {.op = KV_PROTO_CANCEL, .id = c->next_id++, .watch_id = w->id};
    kv_proto_buf_reset(&c->out);
    int rc = kv_proto_request_encode(&c->out, &q);
    if (rc != KV_OK)
        return kv__client_fail(c, rc, "cannot encode CANCEL");
    kv__client_start_call(c);
    if ((rc = kv__client_flush(c)) != KV_OK)
        return rc;
    for (;;) {
        const uint8_t *body;
        size_t len;
        if ((rc = kv__client_recv_frame(c, &body, &len)) != KV_OK)
            return rc;
        if (kv_proto_is_event_frame(body, len))
            continue; /* events (and the end frame) of the watch: dropped */
        kv_proto_response r;
        kv_proto_arena_reset(&c->arena);
        rc = kv_proto_response_decode(body, len, KV_PROTO_CANCEL, &c->arena, &r);
        if (rc != KV_OK || r.id != q.id)
            return kv__client_fail(c, KV_PROTOCOL, "unexpected answer to CANCEL");
        /* NOT_FOUND: the watch had ended already (its end frame was
         * dropped above); either way it is gone */
        return KV_OK;
    }
}

void kv_client_watch_close(kv_client_watch *w)
{
    if (w == NULL)
        return;
    kv_client *c = w->c;
    if (c->watching && !w->ended && c->fd >= 0 && cancel(w) != KV_OK)
        kv_client_disconnect(c);
    c->watching = 0;
    free(w);
}
