/*
 * watch.c - the change feed and the watchers that follow it (watch.h,
 * kv.h "Watch").
 *
 * A watcher delivers revision after revision from `next`. For each it
 * looks in the feed's slot: the record of that revision names the keys
 * the change touched, and the values come from history. When the slot
 * has already been reused (the watcher fell more than the ring behind),
 * or the record could not be made (out of memory), or the revision is
 * below the compaction point, it catches up from history instead: it
 * lists the changes of every watched key between `next` and the latest
 * revision (history.h) and delivers them in revision order. Only what
 * history no longer has is reported lost.
 */
#include <limits.h>
#include <linux/futex.h>
#include <stdlib.h>
#include <string.h>
#include <sys/syscall.h>
#include <time.h>
#include <unistd.h>

#include "history.h"
#include "store.h"
#include "watch.h"

/* The keys of one change. */
typedef struct feed_rec {
    uint64_t rev;
    size_t n;
    struct {
        size_t off, klen;
        bool deleted;
    } keys[];
    /* then the key bytes */
} feed_rec;

struct kv__feed {
    _Atomic uintptr_t *slots;     /* a feed_rec, or (rev << 1 | 1): lost */
    _Atomic unsigned watchers;
    _Atomic uint32_t seq;         /* bumped per record, for waiting */
    _Atomic unsigned waiters;
};

struct kv_watch {
    kv_store *s;
    unsigned char *key;
    size_t klen;
    bool prefix;
    uint64_t next;       /* the next revision to deliver */
    uint64_t catchup_to; /* history covers [next, catchup_to] first */
    bool dead;           /* lost events: next is where to resume */
    kv_event *pend;      /* caught up from history, oldest first */
    size_t npend, ipend;
};

int kv__feed_open(kv_store *s)
{
    kv__feed *f = calloc(1, sizeof *f);
    if (!f || !(f->slots = calloc(KV__FEED_SLOTS, sizeof *f->slots))) {
        free(f);
        return KV_NO_MEMORY;
    }
    s->feed = f;
    return KV_OK;
}

void kv__feed_close(kv_store *s)
{
    kv__feed *f = s->feed;
    if (!f)
        return;
    for (size_t i = 0; i < KV__FEED_SLOTS; i++) {
        uintptr_t v = atomic_load(&f->slots[i]);
        if (v && !(v & 1))
            free((void *)v);
    }
    free(f->slots);
    free(f);
    s->feed = NULL;
}

bool kv__feed_watched(kv_store *s)
{
    return s->feed && atomic_load_explicit(&s->feed->watchers, memory_order_relaxed) > 0;
}

static void futex_wake_all(_Atomic uint32_t *w)
{
    syscall(SYS_futex, w, FUTEX_WAKE_PRIVATE, INT_MAX, NULL, NULL, 0);
}

void kv__feed_record(kv_store *s, kv__slot *slot, uint64_t rev, const kv__feed_key *keys,
                     size_t n)
{
    kv__feed *f = s->feed;
    size_t bytes = sizeof(feed_rec) + n * sizeof(((feed_rec *)0)->keys[0]);
    for (size_t i = 0; i < n; i++)
        bytes += keys[i].klen;
    feed_rec *r = keys ? malloc(bytes) : NULL;
    uintptr_t word;
    if (r) {
        r->rev = rev;
        r->n = n;
        unsigned char *p = (unsigned char *)&r->keys[n];
        size_t off = (size_t)(p - (unsigned char *)r);
        for (size_t i = 0; i < n; i++) {
            r->keys[i].off = off;
            r->keys[i].klen = keys[i].klen;
            r->keys[i].deleted = keys[i].deleted;
            memcpy((unsigned char *)r + off, keys[i].key, keys[i].klen);
            off += keys[i].klen;
        }
        word = (uintptr_t)r;
    } else {
        word = (uintptr_t)(rev << 1) | 1; /* watchers read this one from history */
    }
    uintptr_t old = atomic_exchange_explicit(&f->slots[rev % KV__FEED_SLOTS], word,
                                             memory_order_acq_rel);
    if (old && !(old & 1)) {
        const feed_rec *o = (const feed_rec *)old;
        size_t ob = sizeof *o + o->n * sizeof o->keys[0];
        for (size_t i = 0; i < o->n; i++)
            ob += o->keys[i].klen;
        kv__ebr_retire(&s->ebr, slot, (void *)old, kv__ebr_free_plain, ob);
    }
    atomic_fetch_add(&f->seq, 1);
    if (atomic_load(&f->waiters))
        futex_wake_all(&f->seq);
}

/* ---- watchers ----------------------------------------------------------- */

/* Frees what n events hold, not the array they are in. */
static void events_clear(kv_event *e, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        free(e[i].value);
        free(e[i].key);
    }
}

static bool watched_key(const kv_watch *w, const void *key, size_t klen)
{
    if (w->prefix)
        return klen >= w->klen && memcmp(key, w->key, w->klen) == 0;
    return klen == w->klen && memcmp(key, w->key, klen) == 0;
}

int kv_watch_open(kv_store *s, const void *key, size_t klen, int prefix, uint64_t from_rev,
                  kv_watch **out)
{
    if (!s || !out || (prefix != 0 && prefix != 1) || (klen && !key))
        return KV_INVALID_ARGUMENT;
    if (!s->hist || !s->feed)
        return KV_UNSUPPORTED;
    if (!(prefix && klen == 0)) {
        int rc = kv__check_key(s, key, klen);
        if (rc != KV_OK)
            return rc;
    }
    kv_watch *w = calloc(1, sizeof *w);
    if (!w || !(w->key = malloc(klen ? klen : 1))) {
        free(w);
        return KV_NO_MEMORY;
    }
    memcpy(w->key, key, klen);
    w->s = s;
    w->klen = klen;
    w->prefix = prefix;
    /* Counted in before reading the latest revision (watch.h). */
    atomic_fetch_add(&s->feed->watchers, 1);
    uint64_t latest = kv__revision_latest(s);
    if (from_rev && from_rev < kv_compact_revision(s)) {
        kv_watch_close(w);
        return KV_COMPACTED;
    }
    if (!from_rev || from_rev > latest) {
        w->next = from_rev ? from_rev : latest + 1;
    } else {
        w->next = from_rev;
        w->catchup_to = latest;
    }
    *out = w;
    return KV_OK;
}

void kv_watch_close(kv_watch *w)
{
    if (!w)
        return;
    atomic_fetch_sub(&w->s->feed->watchers, 1);
    events_clear(w->pend + w->ipend, w->npend - w->ipend); /* not delivered */
    free(w->pend);
    free(w->key);
    free(w);
}

uint64_t kv_watch_revision(const kv_watch *w)
{
    return w ? w->next : 0;
}

static int event_cmp(const void *a, const void *b)
{
    const kv_event *x = a, *y = b;
    if (x->revision != y->revision)
        return x->revision < y->revision ? -1 : 1;
    size_t m = x->klen < y->klen ? x->klen : y->klen;
    int c = memcmp(x->key, y->key, m);
    return c ? c : (x->klen > y->klen) - (x->klen < y->klen);
}

/* Reads the changes of the watched keys in [w->next, w->catchup_to] from
 * history into w->pend. */
static int catch_up(kv_watch *w)
{
    kv_store *s = w->s;
    kv_key one = {w->key, w->klen}, *keys = &one;
    size_t nkeys = 1;
    void *mem = NULL;
    int rc = KV_OK;
    if (w->prefix && (rc = kv__hist_prefix_keys(s, w->key, w->klen, &keys, &nkeys, &mem)) !=
                         KV_OK)
        return rc;
    kv_event *all = NULL;
    size_t nall = 0, cap = 0;
    uint64_t resume = 0;
    for (size_t i = 0; i < nkeys; i++) {
        kv_event *ev;
        size_t n;
        uint64_t floor;
        int r = kv__hist_key_events(s, keys[i].data, keys[i].len, w->next, w->catchup_to, 0,
                                    true, &ev, &n, &floor);
        if (r == KV_COMPACTED) {
            if (floor > resume)
                resume = floor;
            rc = KV_COMPACTED;
            continue;
        }
        if (r != KV_OK) {
            rc = r;
            break;
        }
        if (nall + n > cap) {
            size_t nc = (nall + n) * 2;
            kv_event *p = realloc(all, nc * sizeof *p);
            if (!p) {
                kv_events_free(ev, n);
                rc = KV_NO_MEMORY;
                break;
            }
            all = p;
            cap = nc;
        }
        if (n)
            memcpy(all + nall, ev, n * sizeof *ev);
        nall += n;
        free(ev);
    }
    if (w->prefix) {
        free(keys);
        free(mem);
    }
    if (rc != KV_OK) {
        kv_events_free(all, nall);
        if (rc == KV_COMPACTED) {
            w->dead = true;
            w->next = resume > w->next ? resume : w->next + 1;
        }
        return rc;
    }
    if (nall)
        qsort(all, nall, sizeof *all, event_cmp);
    w->pend = all;
    w->npend = nall;
    w->ipend = 0;
    w->next = w->catchup_to + 1;
    return KV_OK;
}

typedef struct evbuf {
    kv_event *v;
    size_t n, cap;
} evbuf;

static kv_event *evbuf_add(evbuf *b)
{
    if (b->n == b->cap) {
        size_t nc = b->cap ? b->cap * 2 : 16;
        kv_event *p = realloc(b->v, nc * sizeof *p);
        if (!p)
            return NULL;
        b->v = p;
        b->cap = nc;
    }
    kv_event *e = &b->v[b->n++];
    memset(e, 0, sizeof *e);
    return e;
}

/* The events of the record for revision rev that the watcher wants. */
static int take_record(kv_watch *w, const feed_rec *r, evbuf *b)
{
    size_t first = b->n;
    int rc = KV_OK;
    for (size_t i = 0; i < r->n && rc == KV_OK; i++) {
        const unsigned char *k = (const unsigned char *)r + r->keys[i].off;
        size_t kl = r->keys[i].klen;
        if (!watched_key(w, k, kl))
            continue;
        kv_event *e = evbuf_add(b);
        if (!e || !(e->key = malloc(kl))) {
            rc = KV_NO_MEMORY;
            break;
        }
        memcpy(e->key, k, kl);
        e->klen = kl;
        e->revision = r->rev;
        e->deleted = r->keys[i].deleted;
        if (!e->deleted)
            rc = kv__hist_value_at(w->s, k, kl, r->rev, e);
    }
    if (rc != KV_OK) {
        events_clear(b->v + first, b->n - first);
        b->n = first;
    } else if (b->n - first > 1) {
        /* a change's keys in key order, as catching up gives them */
        qsort(b->v + first, b->n - first, sizeof *b->v, event_cmp);
    }
    return rc;
}

/* Collects events from w->next on, up to max (whole revisions). */
static int collect(kv_watch *w, size_t max, evbuf *b)
{
    kv_store *s = w->s;
    kv__feed *f = s->feed;
    kv__slot *slot = kv__slot_get(&s->slots);
    if (!slot)
        return KV_NO_MEMORY;
    while (b->n < max) {
        if (w->ipend < w->npend) {
            while (w->ipend < w->npend &&
                   (b->n < max || w->pend[w->ipend].revision == b->v[b->n - 1].revision)) {
                kv_event *e = evbuf_add(b);
                if (!e)
                    return KV_NO_MEMORY;
                *e = w->pend[w->ipend++];
            }
            if (w->ipend == w->npend) {
                free(w->pend);
                w->pend = NULL;
                w->npend = w->ipend = 0;
            }
            continue;
        }
        if (w->catchup_to >= w->next) {
            int rc = catch_up(w);
            if (rc != KV_OK)
                return rc;
            continue;
        }
        uint64_t rev = w->next;
        if (rev > kv__revision_latest(s))
            break;
        kv__ebr_pin(&s->ebr, slot);
        uintptr_t v = atomic_load_explicit(&f->slots[rev % KV__FEED_SLOTS],
                                           memory_order_acquire);
        uint64_t at = !v ? 0 : (v & 1) ? v >> 1 : ((const feed_rec *)v)->rev;
        int rc = KV_OK;
        if (v && !(v & 1) && at == rev) {
            rc = take_record(w, (const feed_rec *)v, b);
            if (rc == KV_OK)
                w->next++;
        }
        kv__ebr_unpin(slot);
        if (rc == KV_COMPACTED) {
            w->catchup_to = rev; /* history says from where to resume */
            continue;
        }
        if (rc != KV_OK)
            return rc;
        if (at == rev && !(v & 1))
            continue;
        if (at > rev || (at == rev && (v & 1))) {
            /* reused, or never recorded: from history */
            w->catchup_to = at > rev ? kv__revision_latest(s) : rev;
            continue;
        }
        if (rev < kv_compact_revision(s)) {
            w->catchup_to = rev; /* reports it lost */
            continue;
        }
        break; /* being published: its record comes next */
    }
    return KV_OK;
}

static uint64_t now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000u + (uint64_t)ts.tv_nsec / 1000000u;
}

int kv_watch_next(kv_watch *w, kv_event **events, size_t *n, size_t max, int timeout_ms)
{
    if (!w || !events || !n || max == 0 || timeout_ms < -1)
        return KV_INVALID_ARGUMENT;
    if (w->dead)
        return KV_COMPACTED;
    kv__feed *f = w->s->feed;
    uint64_t deadline = timeout_ms > 0 ? now_ms() + (uint64_t)timeout_ms : 0;
    evbuf b = {0};
    int rc;
    for (;;) {
        /* Counted as a waiter before the last look, so that a record made
         * after the look wakes the wait below. */
        atomic_fetch_add(&f->waiters, 1);
        uint32_t seen = atomic_load(&f->seq);
        rc = collect(w, max, &b);
        if (rc != KV_OK || b.n || timeout_ms == 0) {
            atomic_fetch_sub(&f->waiters, 1);
            break;
        }
        struct timespec ts, *tsp = NULL;
        if (timeout_ms > 0) {
            uint64_t now = now_ms();
            if (now >= deadline) {
                atomic_fetch_sub(&f->waiters, 1);
                break;
            }
            uint64_t left = deadline - now;
            ts.tv_sec = (time_t)(left / 1000);
            ts.tv_nsec = (long)(left % 1000) * 1000000L;
            tsp = &ts;
        } else {
            /* a revision may be published without a record (kv_load): look
             * again now and then */
            ts = (struct timespec){0, 100 * 1000000L};
            tsp = &ts;
        }
        syscall(SYS_futex, &f->seq, FUTEX_WAIT_PRIVATE, seen, tsp, NULL, 0);
        atomic_fetch_sub(&f->waiters, 1);
    }
    if (rc != KV_OK && b.n)
        rc = KV_OK; /* deliver what came before the failure: the watcher
                       stopped right after it, and meets it again next time */
    if (rc != KV_OK) {
        free(b.v);
        return rc;
    }
    *events = b.v;
    *n = b.n;
    return KV_OK;
}
