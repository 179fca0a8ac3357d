/*
 * sessions.c - the applied request ids of a cluster's clients
 * (sessions.h).
 *
 * A fixed array of slots, an open-addressing hash index from client id to
 * slot (linear probing, deletion by backward shift, so no tombstones),
 * and a doubly linked list of the slots from the least to the most recent
 * client, whose head is the one forgotten when the table is full. Every
 * change follows the log's order only, so every node's table is the same
 * (and a snapshot writes the list in order, so a node that installs one
 * forgets in the same order as the others).
 */
#include "sessions.h"

#include <stdlib.h>
#include <string.h>

#include "kv.h"
#include "bytes.h"

#define NONE ((uint32_t)-1)
#define NOT_KEPT 0xffffffffu
#define MAGIC "KVDSESS1"

typedef struct slot {
    uint64_t client, seq;
    unsigned char *outcome; /* malloc'ed; NULL: not kept */
    size_t len;
    uint32_t prev, next; /* the recency list; NONE at its ends */
} slot;

struct kvd_sessions {
    slot *slots;
    size_t max, n;
    uint32_t *index; /* slot + 1; 0: empty. nindex: a power of two >= 2 max */
    size_t nindex;
    uint32_t oldest, newest;
    uint32_t free_head; /* unused slots, linked through next */
};

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
        free(s->slots[i].outcome);
        s->slots[i] = (slot){.prev = NONE, .next = i + 1 < s->max ? (uint32_t)(i + 1) : NONE};
    }
    memset(s->index, 0, s->nindex * sizeof *s->index);
    s->n = 0;
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
        free(s->slots[i].outcome);
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
    if (seq < e->seq)
        return KVD_SESSION_STALE;
    *outcome = e->outcome;
    *len = e->len;
    return KVD_SESSION_DUPLICATE;
}

/* Forgets the least recent client. */
static void evict(kvd_sessions *s)
{
    uint32_t k = s->oldest;
    slot *e = &s->slots[k];
    index_remove(s, find_pos(s, e->client));
    list_unlink(s, k);
    free(e->outcome);
    *e = (slot){.prev = NONE, .next = s->free_head};
    s->free_head = k;
    s->n--;
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
    e->seq = seq;
    free(e->outcome);
    e->outcome = NULL;
    e->len = 0;
    if (!outcome || len > KVD_SESSIONS_MAX_OUTCOME)
        return KV_OK;
    e->outcome = malloc(len ? len : 1);
    if (!e->outcome)
        return KV_NO_MEMORY;
    memcpy(e->outcome, outcome, len);
    e->len = len;
    return KV_OK;
}

int kvd_sessions_save(const kvd_sessions *s, unsigned char **out, size_t *len)
{
    size_t n = 8 + 4;
    for (uint32_t k = s->oldest; k != NONE; k = s->slots[k].next)
        n += 20 + s->slots[k].len;
    unsigned char *p = malloc(n), *q = p;
    if (!p)
        return KV_NO_MEMORY;
    memcpy(q, MAGIC, 8);
    kvd_le_store(q + 8, s->n, 4);
    q += 12;
    for (uint32_t k = s->oldest; k != NONE; k = s->slots[k].next) {
        const slot *e = &s->slots[k];
        kvd_le_store(q, e->client, 8);
        kvd_le_store(q + 8, e->seq, 8);
        kvd_le_store(q + 16, e->outcome ? e->len : NOT_KEPT, 4);
        q += 20;
        if (e->outcome && e->len) {
            memcpy(q, e->outcome, e->len);
            q += e->len;
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
    if (!magic || memcmp(magic, MAGIC, 8) != 0)
        return KV_CORRUPT;
    uint64_t count = kvd_rd_num(&r, 4);
    if (r.bad || count > (uint64_t)(r.end - r.p) / 20)
        return KV_CORRUPT;
    int rc = KV_OK;
    for (uint64_t i = 0; i < count && rc == KV_OK; i++) {
        uint64_t client = kvd_rd_num(&r, 8), seq = kvd_rd_num(&r, 8);
        uint32_t n = (uint32_t)kvd_rd_num(&r, 4);
        const unsigned char *outcome = NULL;
        if (n != NOT_KEPT && !(outcome = kvd_rd_take(&r, n)))
            r.bad = 1;
        if (r.bad || client == 0 || (n > KVD_SESSIONS_MAX_OUTCOME && n != NOT_KEPT)) {
            rc = KV_CORRUPT;
            break;
        }
        rc = kvd_sessions_record(s, client, seq, outcome, outcome ? n : 0);
    }
    if (rc != KV_OK) {
        kvd_sessions_clear(s);
        return rc;
    }
    *used = (size_t)(r.p - (const unsigned char *)p);
    return KV_OK;
}
