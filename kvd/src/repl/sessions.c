/*
 * sessions.c - the applied request ids of a cluster's clients
 * (sessions.h).
 *
 * A fixed array of slots, an open-addressing hash index from client id to
 * slot (linear probing, deletion by backward shift, so no tombstones),
 * and a doubly linked list of the slots from the least to the most recent
 * client, whose head is the one forgotten when the table is full. Each
 * slot holds its client's window: a ring of its latest applied request
 * ids with their replies, in increasing order, grown by doubling up to
 * KVD_SESSIONS_WINDOW. Every change follows the log's order only, so
 * every node's table is the same (and a snapshot writes the list in
 * order, so a node that installs one forgets in the same order as the
 * others).
 */
#include "sessions.h"

#include <stdlib.h>
#include <string.h>

#include "kv.h"
#include "bytes.h"

#define NONE ((uint32_t)-1)
#define NOT_KEPT 0xffffffffu
#define MAGIC "KVDSESS2"
#define MAGIC_ONE "KVDSESS1" /* one request id per client: still read */

/* One applied request id and its reply. */
typedef struct applied {
    uint64_t seq;
    unsigned char *outcome; /* malloc'ed; NULL: not kept */
    uint32_t len;
} applied;

typedef struct slot {
    uint64_t client, seq; /* seq: the last request id applied */
    applied *win;        /* a ring of cap; wn of them from head, oldest first */
    uint32_t cap, head, wn;
    uint32_t prev, next; /* the recency list; NONE at its ends */
} slot;

struct kvd_sessions {
    slot *slots;
    size_t max, n;
    size_t entries; /* request ids held, all windows together */
    uint32_t *index; /* slot + 1; 0: empty. nindex: a power of two >= 2 max */
    size_t nindex;
    uint32_t oldest, newest;
    uint32_t free_head; /* unused slots, linked through next */
};

/* The i-th (from the oldest) request id of e's window. */
static applied *at(const slot *e, uint32_t i)
{
    return &e->win[(e->head + i) % e->cap];
}

static void window_free(slot *e)
{
    for (uint32_t i = 0; i < e->wn; i++)
        free(at(e, i)->outcome);
    free(e->win);
    e->win = NULL;
    e->cap = e->head = e->wn = 0;
}

static size_t hash(uint64_t client, size_t mask)
{
    client ^= client >> 33;
    client *= 0xff51afd7ed558ccdull;
    client ^= client >> 33;
    return (size_t)client & mask;
}

/* The index position holding client, or the empty one where it would go. */
static size_t find_pos(const kvd_sessions *s, uint64_t client)
{
    size_t mask = s->nindex - 1, i = hash(client, mask);
    while (s->index[i] && s->slots[s->index[i] - 1].client != client)
        i = (i + 1) & mask;
    return i;
}

static void index_remove(kvd_sessions *s, size_t i)
{
    size_t mask = s->nindex - 1;
    s->index[i] = 0;
    /* Backward shift: move later entries of the run into the hole when
     * their home position does not lie cyclically in (i, j]. */
    for (size_t j = (i + 1) & mask; s->index[j]; j = (j + 1) & mask) {
        size_t home = hash(s->slots[s->index[j] - 1].client, mask);
        int stays = i <= j ? (home > i && home <= j) : (home > i || home <= j);
        if (!stays) {
            s->index[i] = s->index[j];
            s->index[j] = 0;
            i = j;
        }
    }
}

static void list_unlink(kvd_sessions *s, uint32_t k)
{
    slot *e = &s->slots[k];
    if (e->prev != NONE)
        s->slots[e->prev].next = e->next;
    else
        s->oldest = e->next;
    if (e->next != NONE)
        s->slots[e->next].prev = e->prev;
    else
        s->newest = e->prev;
    e->prev = e->next = NONE;
}

static void list_append(kvd_sessions *s, uint32_t k)
{
    slot *e = &s->slots[k];
    e->prev = s->newest;
    e->next = NONE;
    if (s->newest != NONE)
        s->slots[s->newest].next = k;
    else
        s->oldest = k;
    s->newest = k;
}

void kvd_sessions_clear(kvd_sessions *s)
{
    for (size_t i = 0; i < s->max; i++) {
        window_free(&s->slots[i]);
        s->slots[i] = (slot){.prev = NONE, .next = i + 1 < s->max ? (uint32_t)(i + 1) : NONE};
    }
    memset(s->index, 0, s->nindex * sizeof *s->index);
    s->n = 0;
    s->entries = 0;
    s->oldest = s->newest = NONE;
    s->free_head = 0;
}

kvd_sessions *kvd_sessions_new(size_t max)
{
    if (max == 0)
        max = KVD_SESSIONS_MAX;
    kvd_sessions *s = calloc(1, sizeof *s);
    if (!s)
        return NULL;
    s->max = max;
    s->nindex = 2;
    while (s->nindex < 2 * max)
        s->nindex *= 2;
    s->slots = calloc(max, sizeof *s->slots);
    s->index = calloc(s->nindex, sizeof *s->index);
    if (!s->slots || !s->index) {
        free(s->slots);
        free(s->index);
        free(s);
        return NULL;
    }
    kvd_sessions_clear(s);
    return s;
}

void kvd_sessions_free(kvd_sessions *s)
{
    if (!s)
        return;
    for (size_t i = 0; i < s->max; i++)
        window_free(&s->slots[i]);
    free(s->slots);
    free(s->index);
    free(s);
}

size_t kvd_sessions_count(const kvd_sessions *s)
{
    return s->n;
}

int kvd_sessions_check(const kvd_sessions *s, uint64_t client, uint64_t seq,
                       const void **outcome, size_t *len)
{
    uint32_t k = s->index[find_pos(s, client)];
    if (!k)
        return KVD_SESSION_NEW;
    const slot *e = &s->slots[k - 1];
    if (seq > e->seq)
        return KVD_SESSION_NEW;
    /* the window is in increasing order: a binary search */
    uint32_t lo = 0, hi = e->wn;
    while (lo < hi) {
        uint32_t mid = lo + (hi - lo) / 2;
        if (at(e, mid)->seq < seq)
            lo = mid + 1;
        else
            hi = mid;
    }
    if (lo < e->wn && at(e, lo)->seq == seq) {
        *outcome = at(e, lo)->outcome;
        *len = at(e, lo)->len;
        return KVD_SESSION_DUPLICATE;
    }
    if (seq == e->seq) { /* the last one, not in the window (no memory) */
        *outcome = NULL;
        *len = 0;
        return KVD_SESSION_DUPLICATE;
    }
    return KVD_SESSION_STALE; /* before the window, or never applied */
}

/* Forgets the least recent client. */
static void evict(kvd_sessions *s)
{
    uint32_t k = s->oldest;
    slot *e = &s->slots[k];
    index_remove(s, find_pos(s, e->client));
    list_unlink(s, k);
    s->entries -= e->wn;
    window_free(e);
    *e = (slot){.prev = NONE, .next = s->free_head};
    s->free_head = k;
    s->n--;
}

static void drop_oldest(kvd_sessions *s, slot *e)
{
    free(at(e, 0)->outcome);
    e->head = (e->head + 1) % e->cap;
    e->wn--;
    s->entries--;
}

/* How many request ids a window keeps: KVD_SESSIONS_WINDOW, fewer once
 * more than KVD_SESSIONS_MAX_ENTRIES / KVD_SESSIONS_WINDOW clients are
 * remembered (their share of KVD_SESSIONS_MAX_ENTRIES, at least 1). A
 * window shrinks to it as its client writes, so all of them together
 * hold at most about twice KVD_SESSIONS_MAX_ENTRIES. */
static uint32_t window_limit(const kvd_sessions *s)
{
    size_t share = KVD_SESSIONS_MAX_ENTRIES / (s->n ? s->n : 1);
    return share >= KVD_SESSIONS_WINDOW ? KVD_SESSIONS_WINDOW : share ? (uint32_t)share : 1;
}

/* Room for one more request id at the end of e's window: the oldest are
 * dropped once it holds window_limit. KV_OK or KV_NO_MEMORY. */
static int window_make_room(kvd_sessions *s, slot *e)
{
    uint32_t limit = window_limit(s);
    if (e->wn >= limit) {
        while (e->wn >= limit)
            drop_oldest(s, e);
        return KV_OK;
    }
    if (e->wn < e->cap)
        return KV_OK;
    uint32_t cap = e->cap ? e->cap * 2 : 1;
    if (cap > KVD_SESSIONS_WINDOW)
        cap = KVD_SESSIONS_WINDOW;
    applied *w = malloc(cap * sizeof *w);
    if (!w)
        return KV_NO_MEMORY;
    for (uint32_t i = 0; i < e->wn; i++)
        w[i] = *at(e, i);
    free(e->win);
    e->win = w;
    e->cap = cap;
    e->head = 0;
    return KV_OK;
}

int kvd_sessions_record(kvd_sessions *s, uint64_t client, uint64_t seq, const void *outcome,
                        size_t len)
{
    size_t pos = find_pos(s, client);
    uint32_t k;
    if (s->index[pos]) {
        k = s->index[pos] - 1;
        list_unlink(s, k);
    } else {
        if (s->n == s->max) {
            evict(s);
            pos = find_pos(s, client); /* the shift may have moved the hole */
        }
        k = s->free_head;
        s->free_head = s->slots[k].next;
        s->slots[k].client = client;
        s->index[pos] = k + 1;
        s->n++;
    }
    slot *e = &s->slots[k];
    list_append(s, k);
    /* a request id at or below the last one replaces the window (a
     * client's ids only grow: it started over) */
    if (e->wn && seq <= e->seq) {
        s->entries -= e->wn;
        window_free(e);
    }
    e->seq = seq; /* applied, whatever memory allows below */
    if (window_make_room(s, e) != KV_OK) {
        if (e->wn == 0)
            return KV_NO_MEMORY; /* remembered as the last one, no reply */
        drop_oldest(s, e); /* no growing: the oldest makes room */
    }
    applied *a = &e->win[(e->head + e->wn) % e->cap];
    *a = (applied){.seq = seq};
    e->wn++;
    s->entries++;
    if (!outcome || len > KVD_SESSIONS_MAX_OUTCOME)
        return KV_OK;
    a->outcome = malloc(len ? len : 1);
    if (!a->outcome)
        return KV_NO_MEMORY;
    memcpy(a->outcome, outcome, len);
    a->len = (uint32_t)len;
    return KV_OK;
}

int kvd_sessions_save(const kvd_sessions *s, unsigned char **out, size_t *len)
{
    size_t n = 8 + 4;
    for (uint32_t k = s->oldest; k != NONE; k = s->slots[k].next) {
        const slot *e = &s->slots[k];
        n += 12;
        for (uint32_t i = 0; i < e->wn; i++)
            n += 12 + (at(e, i)->outcome ? at(e, i)->len : 0);
    }
    unsigned char *p = malloc(n), *q = p;
    if (!p)
        return KV_NO_MEMORY;
    memcpy(q, MAGIC, 8);
    kvd_le_store(q + 8, s->n, 4);
    q += 12;
    for (uint32_t k = s->oldest; k != NONE; k = s->slots[k].next) {
        const slot *e = &s->slots[k];
        kvd_le_store(q, e->client, 8);
        kvd_le_store(q + 8, e->wn, 4);
        q += 12;
        for (uint32_t i = 0; i < e->wn; i++) {
            const applied *a = at(e, i);
            kvd_le_store(q, a->seq, 8);
            kvd_le_store(q + 8, a->outcome ? a->len : NOT_KEPT, 4);
            q += 12;
            if (a->outcome && a->len) {
                memcpy(q, a->outcome, a->len);
                q += a->len;
            }
        }
    }
    *out = p;
    *len = n;
    return KV_OK;
}

int kvd_sessions_load(kvd_sessions *s, const void *p, size_t avail, size_t *used)
{
    kvd_sessions_clear(s);
    kvd_rd r = kvd_rd_init(p, avail);
    const unsigned char *magic = kvd_rd_take(&r, 8);
    if (!magic)
        return KV_CORRUPT;
    int one = memcmp(magic, MAGIC_ONE, 8) == 0; /* a window of one, no count */
    if (!one && memcmp(magic, MAGIC, 8) != 0)
        return KV_CORRUPT;
    uint64_t count = kvd_rd_num(&r, 4);
    if (r.bad || count > (uint64_t)(r.end - r.p) / (one ? 20 : 12))
        return KV_CORRUPT;
    int rc = KV_OK;
    for (uint64_t i = 0; i < count && rc == KV_OK; i++) {
        uint64_t client = kvd_rd_num(&r, 8);
        uint64_t nids = one ? 1 : kvd_rd_num(&r, 4);
        if (r.bad || client == 0 || nids == 0 || nids > KVD_SESSIONS_WINDOW) {
            rc = KV_CORRUPT;
            break;
        }
        uint64_t last = 0;
        for (uint64_t j = 0; j < nids && rc == KV_OK; j++) {
            uint64_t seq = kvd_rd_num(&r, 8);
            uint32_t n = (uint32_t)kvd_rd_num(&r, 4);
            const unsigned char *outcome = NULL;
            if (n != NOT_KEPT && !(outcome = kvd_rd_take(&r, n)))
                r.bad = 1;
            if (r.bad || (n > KVD_SESSIONS_MAX_OUTCOME && n != NOT_KEPT) ||
                (j > 0 && seq <= last)) {
                rc = KV_CORRUPT;
                break;
            }
            last = seq;
            rc = kvd_sessions_record(s, client, seq, outcome, outcome ? n : 0);
        }
    }
    if (rc != KV_OK) {
        kvd_sessions_clear(s);
        return rc;
    }
    *used = (size_t)(r.p - (const unsigned char *)p);
    return KV_OK;
}
