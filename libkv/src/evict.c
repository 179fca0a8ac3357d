/*
 * evict.c - the memory limit: accounting, admission and eviction (evict.h).
 *
 * Choosing victims follows Redis's approximated LRU/LFU (evict.c in
 * Redis): sample a few keys at random, score each by the policy, keep the
 * best candidates seen so far in a small pool sorted by score, and evict
 * the pool's best. A random sample is KV__EVICT_SAMPLES keys read from a
 * run of consecutive index slots from a random position (slot words say
 * whether a key has an expiry time, so the volatile policies skip the
 * others without loading them). Scores are comparable over time: LRU
 * scores the absolute access tick (older is better), LFU the decayed
 * counter, volatile-ttl the expiry time. Before a pooled key is evicted it
 * is looked up again: if it changed (a new version) or was accessed since
 * it was scored (its access word moved), it leaves the pool instead.
 *
 * Evicting goes through kv__apply like every change: a batch of up to
 * KV__EVICT_BATCH internal KV__OP_EVICT ops, each naming the version it
 * was chosen at, so a key rewritten in between is left alone. The batch is
 * one record (one revision, logged, replicated: each key a delete),
 * counted in evicted_keys; a victim found already expired is removed as
 * expired instead. One thread evicts at a time (kv__evict.mu): the pool
 * is its state, and two evictors would only race for the same victims.
 *
 * Memory that eviction frees is retired (ebr.h) on the evicting writer's
 * own list, so the writer's own next allocations reuse it (slab.h).
 * Retired memory counts against the limit until it is freed, but it is
 * room that readers will soon let go: a writer over the limit first
 * reclaims it (kv__ebr_reclaim_all) and, if that alone would make room,
 * waits for readers to move on (within the slice) rather than evicting
 * more keys for it.
 */
#include <sched.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>

#include "evict.h"
#include "history.h"
#include "hash.h"

#define POOL 16u
#define KV__EVICT_SAMPLES 8u /* keys sampled per victim (Redis: 5) */
#define RUN 32u              /* slots read from one random position */

typedef struct pool_entry {
    uint64_t score; /* higher: a better victim */
    uint64_t version;
    uint32_t meta;  /* the access word when scored */
    size_t klen;
    unsigned char *key; /* NULL: empty entry */
    size_t cap;
} pool_entry;

struct kv__evict {
    uint64_t limit;
    int policy;
    bool volatile_only; /* sample only keys with an expiry time */
    bool use_pool;      /* LRU, LFU, TTL score keys; the random policies
                           score them at random */
    uint64_t refresh_bytes;
    _Atomic uint64_t used; /* the last summed figure (evict.h) */
    pthread_mutex_t mu;    /* one evictor at a time; guards what follows */
    uint64_t rng;
    pool_entry pool[POOL]; /* ascending score; empty entries first */
    unsigned sweep_seg;     /* sweep(): where it stopped */
    kv__table *sweep_table;
    size_t sweep_pos;
    bool sweep_in_next;
    unsigned swept_empty;   /* index ends passed since a candidate */
    unsigned char *keybuf; /* keys of the batch being evicted */
    size_t keybuf_cap;
};

static const char *const policy_names[] = {
    "noeviction",   "allkeys-lru",   "allkeys-lfu",     "allkeys-random",
    "volatile-lru", "volatile-lfu",  "volatile-random", "volatile-ttl",
};
#define NPOLICIES (sizeof policy_names / sizeof policy_names[0])

const char *kv_eviction_policy_name(int policy)
{
    return policy >= 0 && (size_t)policy < NPOLICIES ? policy_names[policy] : NULL;
}

int kv_eviction_policy_parse(const char *name)
{
    if (!name)
        return -1;
    for (size_t i = 0; i < NPOLICIES; i++)
        if (strcasecmp(name, policy_names[i]) == 0)
            return (int)i;
    return -1;
}

static uint64_t mono_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000000000ull + (uint64_t)ts.tv_nsec;
}

/* splitmix64 (Steele, Lea, Flood 2014): the evictor's own sequence. */
static uint64_t next_random(struct kv__evict *ev)
{
    uint64_t z = (ev->rng += 0x9e3779b97f4a7c15ull);
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
    return z ^ (z >> 31);
}

int kv__evict_configure(kv_store *s, uint64_t max_memory, int policy)
{
    if (!kv_eviction_policy_name(policy) || (max_memory && max_memory < KV_MIN_MAX_MEMORY))
        return KV_INVALID_ARGUMENT;
    if (!max_memory)
        return KV_OK;
    /* Under a limit the index grows in segments, so that a resize needs
     * room for one segment's new table, not the whole index's (table.h). */
    if (kv__index_split(s) != KV_OK)
        return KV_NO_MEMORY;
    struct kv__evict *ev = calloc(1, sizeof *ev);
    if (!ev)
        return KV_NO_MEMORY;
    ev->limit = max_memory;
    ev->policy = policy;
    ev->volatile_only = policy >= KV_EVICT_VOLATILE_LRU;
    ev->use_pool = policy != KV_EVICT_ALLKEYS_RANDOM && policy != KV_EVICT_VOLATILE_RANDOM;
    ev->refresh_bytes = max_memory / KV__EVICT_TICKS;
    if (ev->refresh_bytes < 4096)
        ev->refresh_bytes = 4096; /* < KV_MIN_MAX_MEMORY / 64 */
    ev->rng = (uint64_t)(uintptr_t)ev ^ mono_ns();
    pthread_mutex_init(&ev->mu, NULL);
    s->evict = ev;
    switch (policy) {
    case KV_EVICT_ALLKEYS_LRU:
    case KV_EVICT_VOLATILE_LRU:
        s->access_mode = KV__ACCESS_LRU;
        break;
    case KV_EVICT_ALLKEYS_LFU:
    case KV_EVICT_VOLATILE_LFU:
        s->access_mode = KV__ACCESS_LFU;
        break;
    default:
        s->access_mode = KV__ACCESS_NONE;
    }
    /* A 2 MiB slab chunk is resident whole (a huge page) from its first
     * item: under a limit below KV__EVICT_BIG_CHUNKS_FROM it would be more
     * than 1.5% of the limit, so such stores keep 256 KiB chunks (their
     * pages are touched as items are carved). */
    if (max_memory < KV__EVICT_BIG_CHUNKS_FROM)
        s->slab.big_after = SIZE_MAX;
    /* Free blocks a writer keeps are memory the others cannot use: no
     * more than the drift each writer's count has before it sums again. */
    kv__slab_bound_keep(&s->slab, max_memory / KV__EVICT_TICKS);
    return KV_OK;
}

uint64_t kv__evict_limit(const kv_store *s)
{
    return s->evict ? s->evict->limit : 0;
}

void kv__evict_free(kv_store *s)
{
    struct kv__evict *ev = s->evict;
    if (!ev)
        return;
    for (unsigned i = 0; i < POOL; i++)
        free(ev->pool[i].key);
    free(ev->keybuf);
    pthread_mutex_destroy(&ev->mu);
    free(ev);
    s->evict = NULL;
}

/* ---- accounting ---------------------------------------------------------- */

typedef struct mem_sum {
    uint64_t items, retired;
} mem_sum;

static void add_slot(kv__slot *slot, void *ctx)
{
    mem_sum *m = ctx;
    m->items += atomic_load_explicit(&slot->counters[KV__C_ITEM_BYTES], memory_order_relaxed);
    m->items += atomic_load_explicit(&slot->counters[KV__C_HIST_BYTES], memory_order_relaxed);
    m->retired += kv__ebr_slot_bytes(slot);
}

void kv__memory_sum(kv_store *s, kv__slot *slot, uint64_t *bytes, uint64_t *retired,
                    uint64_t *moving)
{
    mem_sum m = {0, 0};
    kv__slot_each(&s->slots, add_slot, &m);
    size_t old;
    kv__ebr_pin(&s->ebr, slot);
    uint64_t table_bytes = kv__index_bytes(s, &old);
    kv__ebr_unpin(slot);
    if (moving)
        *moving = old;
    unsigned chunks = atomic_load(&s->slots.nchunks_hint);
    /* Signed totals can be briefly negative while threads race: 0. */
    uint64_t items = (int64_t)m.items < 0 ? 0 : m.items;
    *bytes = items + table_bytes + sizeof *s + KV__NSTRIPES * sizeof(kv__stripe) +
             chunks * KV__SLOTS_PER_CHUNK * sizeof(kv__slot);
    *retired = m.retired;
}

/* What this thread's writes added to the items and history (history
 * grows with overwrites that leave the items' total as it was). */
static uint64_t own_bytes(kv__slot *slot)
{
    return atomic_load_explicit(&slot->counters[KV__C_ITEM_BYTES], memory_order_relaxed) +
           atomic_load_explicit(&slot->counters[KV__C_HIST_BYTES], memory_order_relaxed);
}

/* Sums the store's memory now and caches it; *retired (may be NULL)
 * receives the retired part. */
static uint64_t refresh(kv_store *s, kv__slot *slot, uint64_t *retired)
{
    uint64_t bytes, ret, moving;
    slot->evict_mark = own_bytes(slot);
    kv__memory_sum(s, slot, &bytes, &ret, &moving);
    uint64_t used = bytes - moving + ret;
    atomic_store_explicit(&s->evict->used, used, memory_order_relaxed);
    if (retired)
        *retired = ret;
    return used;
}

/* ---- choosing victims ---------------------------------------------------- */

/* The policy's score of an item (higher: evict sooner), at access clock
 * reading clk. */
static uint64_t score_of(const kv_store *s, const kv__item *it, uint32_t meta, uint32_t clk)
{
    switch (s->evict->policy) {
    case KV_EVICT_ALLKEYS_LRU:
    case KV_EVICT_VOLATILE_LRU: {
        /* the absolute tick of the last access: older scores higher */
        uint64_t stamp = (uint64_t)clk - ((clk - meta) & 0xffffff);
        return UINT64_MAX - stamp;
    }
    case KV_EVICT_ALLKEYS_LFU:
    case KV_EVICT_VOLATILE_LFU:
        return 255 - kv__lfu_decayed(meta, clk);
    case KV_EVICT_VOLATILE_TTL:
        return UINT64_MAX - kv__item_expire_at(it);
    default:
        return 0;
    }
}

static bool entry_is(const pool_entry *e, const kv__item *it)
{
    return e->key && e->version == kv__item_rev(it) && e->klen == kv__item_klen(it) &&
           memcmp(e->key, kv__item_key(it), e->klen) == 0;
}

/* Puts the item into the pool if it beats the worst entry (Redis's
 * evictionPoolPopulate). In a read section. */
static void pool_offer(struct kv__evict *ev, const kv__item *it, uint64_t score, uint32_t meta)
{
    pool_entry *p = ev->pool;
    for (unsigned i = 0; i < POOL; i++)
        if (entry_is(&p[i], it))
            return;
    /* k: the first position whose entry scores at least as high */
    unsigned k = 0;
    while (k < POOL && (!p[k].key || p[k].score < score))
        k++;
    if (k == 0 && p[0].key)
        return; /* worse than everything in a full pool */
    /* Make room at k - 1 by shifting the lower entries down (dropping
     * the worst, p[0], whose buffer is reused). */
    unsigned at = k - 1;
    pool_entry spare = p[0];
    memmove(&p[0], &p[1], at * sizeof *p);
    p[at] = spare;
    size_t klen = kv__item_klen(it);
    if (p[at].cap < klen) {
        unsigned char *nk = realloc(p[at].key, klen);
        if (!nk) {
            free(p[at].key);
            p[at] = (pool_entry){0};
            return;
        }
        p[at].key = nk;
        p[at].cap = klen;
    }
    if (!p[at].key) { /* klen 0 cannot happen; keep the entry well-formed */
        p[at] = (pool_entry){0};
        return;
    }
    memcpy(p[at].key, kv__item_key(it), klen);
    p[at].klen = klen;
    p[at].score = score;
    p[at].version = kv__item_rev(it);
    p[at].meta = meta;
}

/* Offers the key in slot word v to the pool if the policy may evict it.
 * Returns whether it was a candidate. In a read section. */
static bool offer_word(kv_store *s, struct kv__evict *ev, uintptr_t v, uint32_t clk)
{
    if (!kv__slot_is_key(v) || kv__slot_is_pending(v))
        return false;
    if (ev->volatile_only && !(v & KV__SLOT_TTL))
        return false;
    const kv__item *it = kv__slot_ptr(v);
    uint32_t meta = s->access_mode != KV__ACCESS_NONE
                        ? atomic_load_explicit(kv__item_meta(it), memory_order_relaxed)
                        : 0;
    uint64_t score = ev->use_pool ? score_of(s, it, meta, clk) : next_random(ev);
    pool_offer(ev, it, score, meta);
    return true;
}

/* Offers up to KV__EVICT_SAMPLES candidate keys to the pool, read from
 * random runs of slots. Returns the candidates seen. In a read section. */
static unsigned sample(kv_store *s, struct kv__evict *ev, uint32_t clk)
{
    unsigned got = 0;
    for (unsigned tries = 0; got < KV__EVICT_SAMPLES && tries < 4; tries++) {
        /* a random segment (the top bits), a random slot in it */
        uint64_t r = next_random(ev);
        kv__table *t = kv__seg_table(s, kv__seg_of(s, r));
        kv__table *next = atomic_load(&t->next);
        kv__table *in = next && (tries & 1) ? next : t;
        size_t i = (size_t)r & in->mask;
        for (unsigned n = 0; n < RUN && got < KV__EVICT_SAMPLES; n++, i = (i + 1) & in->mask)
            got += offer_word(s, ev, atomic_load_explicit(&in->slots[i], memory_order_acquire),
                              clk);
    }
    return got;
}

/* When random runs find no candidate (a volatile policy with few keys
 * that expire): reads the slots in order, going on from where the last
 * sweep stopped, until a candidate is found, a whole pass of the index
 * found none (*none = true), or the deadline passes (a slow or huge
 * index: the next slice goes on). Returns the candidates offered. In a
 * read section. */
static unsigned sweep(kv_store *s, struct kv__evict *ev, uint32_t clk, uint64_t deadline,
                      bool *none)
{
    /* Where it stopped: a segment, its current table or (during the
     * segment's resize) the next one, a slot. A pass reads the segments in
     * order, both tables of one being copied. */
    kv__table *t = kv__seg_table(s, ev->sweep_seg);
    kv__table *next = atomic_load(&t->next);
    if (next)
        t = ev->sweep_in_next ? next : t;
    else
        ev->sweep_in_next = false;
    if (t != ev->sweep_table) { /* compared only, never dereferenced */
        ev->sweep_table = t;
        ev->sweep_pos = 0;
    }
    unsigned got = 0;
    for (size_t n = 0; got < KV__EVICT_SAMPLES; n++) {
        if (ev->sweep_pos > t->mask) { /* the end of this table */
            ev->sweep_pos = 0;
            if (next && !ev->sweep_in_next) {
                ev->sweep_in_next = true;
                ev->sweep_table = t = next;
                continue;
            }
            ev->sweep_in_next = false;
            ev->sweep_seg = (ev->sweep_seg + 1) % kv__nsegs(s);
            ev->sweep_table = t = kv__seg_table(s, ev->sweep_seg);
            next = atomic_load(&t->next);
            if (ev->sweep_seg == 0) { /* the end of the index */
                if (ev->swept_empty >= 1) { /* a whole pass, nothing found */
                    *none = true;
                    ev->swept_empty = 0;
                    return 0;
                }
                ev->swept_empty = 1;
            }
        }
        got += offer_word(s, ev,
                          atomic_load_explicit(&t->slots[ev->sweep_pos++], memory_order_acquire),
                          clk);
        if ((n & 4095) == 4095 && mono_ns() >= deadline)
            break;
    }
    if (got)
        ev->swept_empty = 0;
    return got;
}

/* Whether the pool's entry e still names the item it scored, unchanged
 * and not accessed since. In a read section. */
static bool entry_current(kv_store *s, const pool_entry *e)
{
    uint64_t h = kv__hash(e->key, e->klen);
    uintptr_t w = kv__index_find(s, h, e->key, e->klen);
    const kv__item *it = w ? kv__slot_current(w, NULL) : NULL;
    if (!it || kv__item_rev(it) != e->version)
        return false;
    return s->access_mode == KV__ACCESS_NONE ||
           atomic_load_explicit(kv__item_meta(it), memory_order_relaxed) == e->meta;
}

/* Appends a victim's key to the batch buffer. */
static bool batch_add(struct kv__evict *ev, size_t *used, const void *key, size_t klen)
{
    if (*used + klen > ev->keybuf_cap) {
        size_t cap = ev->keybuf_cap ? ev->keybuf_cap : 4096;
        while (cap < *used + klen)
            cap *= 2;
        unsigned char *nb = realloc(ev->keybuf, cap);
        if (!nb)
            return false;
        ev->keybuf = nb;
        ev->keybuf_cap = cap;
    }
    memcpy(ev->keybuf + *used, key, klen);
    *used += klen;
    return true;
}

/* Chooses up to max (<= KV__EVICT_BATCH) victims and evicts them as one
 * batch. *found receives the victims chosen, *none whether a whole pass of
 * the index found nothing the policy may evict. Returns the keys removed.
 * ev->mu held, no read section. */
static size_t evict_batch(kv_store *s, struct kv__evict *ev, kv__slot *slot, size_t max,
                          uint64_t deadline, size_t *found, bool *none)
{
    size_t lens[KV__EVICT_BATCH];
    uint64_t versions[KV__EVICT_BATCH];
    size_t n = 0, used = 0;
    *found = 0;
    *none = false;
    if (max > KV__EVICT_BATCH)
        max = KV__EVICT_BATCH;
    uint32_t clk = atomic_load_explicit(&s->evict_clock, memory_order_relaxed);
    kv__ebr_pin(&s->ebr, slot);
    for (unsigned attempts = 0; n < max && attempts < 4 * max; attempts++) {
        if (!sample(s, ev, clk) && !ev->pool[POOL - 1].key && !sweep(s, ev, clk, deadline, none))
            break; /* nothing the policy may evict, or out of time */
        /* The pool's best entry that is still what it was scored as. */
        for (int i = POOL - 1; i >= 0; i--) {
            pool_entry *e = &ev->pool[i];
            if (!e->key)
                break;
            bool ok = entry_current(s, e);
            bool dup = false;
            for (size_t j = 0, off = 0; ok && j < n; off += lens[j], j++)
                dup |= lens[j] == e->klen && memcmp(ev->keybuf + off, e->key, e->klen) == 0;
            if (ok && !dup && batch_add(ev, &used, e->key, e->klen)) {
                lens[n] = e->klen;
                versions[n++] = e->version;
            }
            /* taken or stale: the entry leaves the pool (empty entries
             * stay at the low end) */
            pool_entry gone = *e;
            memmove(&ev->pool[1], &ev->pool[0], (size_t)i * sizeof *e);
            ev->pool[0] = (pool_entry){.key = NULL, .cap = 0};
            free(gone.key);
            if (ok && !dup)
                break;
        }
    }
    kv__ebr_unpin(slot);
    *found = n;
    if (!n)
        return 0;
    kv_op ops[KV__EVICT_BATCH];
    for (size_t i = 0, off = 0; i < n; off += lens[i], i++)
        ops[i] = (kv_op){.kind = KV__OP_EVICT, .key = ev->keybuf + off, .klen = lens[i],
                         .expire_at_ms = versions[i]};
    kv__outcome o;
    if (kv__apply(s, &(kv__batch){.then_ops = ops, .nthen = n, .internal = true, .no_wait = true},
                  &o) != KV_OK)
        return 0;
    kv__outcome_free(&o);
    size_t removed = o.evicted + o.expired;
    return removed;
}

size_t kv__evict_now(kv_store *s, kv__slot *slot, size_t n)
{
    struct kv__evict *ev = s->evict;
    if (!ev || ev->policy == KV_EVICT_NOEVICTION)
        return 0;
    size_t removed = 0, found = 1;
    bool none = false;
    pthread_mutex_lock(&ev->mu);
    while (removed < n && found)
        removed += evict_batch(s, ev, slot, n - removed, mono_ns() + KV__EVICT_SLICE_NS, &found,
                               &none);
    pthread_mutex_unlock(&ev->mu);
    return removed;
}

/* ---- admission ------------------------------------------------------------ */

int kv__evict_admit_slow(kv_store *s, kv__slot *slot, uint64_t need)
{
    struct kv__evict *ev = s->evict;
    if (need > ev->limit)
        return KV_MEMORY_LIMIT;
    uint64_t own = own_bytes(slot);
    int64_t drift = (int64_t)(own - slot->evict_mark);
    uint64_t used = atomic_load_explicit(&ev->used, memory_order_relaxed);
    /* A segment of the index grows in one step: room for its bigger table
     * is needed before (a rebuild at the same size needs none: see
     * evict.h). From a little before a segment's grow mark: writers racing
     * in between could start the resize without the room (resize.c starts
     * it once used and reserved slots pass the mark). */
    kv__ebr_pin(&s->ebr, slot);
    need += kv__resize_growth(s, 16 * (size_t)kv__thread_bound() + 64);
    kv__ebr_unpin(slot);
    bool fresh = false;
    if (drift > (int64_t)ev->refresh_bytes || drift < -(int64_t)ev->refresh_bytes) {
        /* this thread wrote its share of a tick: the access clock moves */
        atomic_fetch_add_explicit(&s->evict_clock, 1, memory_order_relaxed);
        used = refresh(s, slot, NULL);
        fresh = true;
    }
    if (used + (fresh || drift < 0 ? 0 : (uint64_t)drift) + need <= ev->limit)
        return KV_OK;
    uint64_t retired;
    used = refresh(s, slot, &retired);
    if (used + need > ev->limit && retired &&
        (used - retired + need <= ev->limit || retired > ev->limit / 64)) {
        /* Retired memory is room once freed (an old index, evicted
         * items): free it rather than refuse or evict. */
        kv__ebr_reclaim_all(&s->ebr, slot);
        used = refresh(s, slot, &retired);
    }
    /* History is the first to go under the limit (history.h): compacting
     * frees it without touching a live key, a slice of at most
     * KV__EVICT_SLICE_NS per write (the eviction slice below goes on
     * with it before it evicts a key). Under noeviction a write that
     * stopped short would be refused while history could still make
     * room: there it sheds until the write fits or history is gone. */
    uint64_t shed_end = ev->policy == KV_EVICT_NOEVICTION ? 0 : mono_ns() + KV__EVICT_SLICE_NS;
    while (used + need > ev->limit && s->hist && (!shed_end || mono_ns() < shed_end) &&
           kv__hist_shed(s, slot, shed_end))
        used = refresh(s, slot, &retired);
    if (used + need <= ev->limit)
        return KV_OK;
    if (ev->policy == KV_EVICT_NOEVICTION)
        return used - retired + need <= ev->limit ? KV_OK : KV_MEMORY_LIMIT;

    /* Over the limit: one slice of eviction, down to a tick's worth below
     * the limit, so that the next writes find room without summing. */
    pthread_mutex_lock(&ev->mu);
    uint64_t deadline = mono_ns() + KV__EVICT_SLICE_NS;
    uint64_t target = ev->limit - ev->refresh_bytes;
    bool progress = false, reclaimed = false, none = false;
    for (;;) {
        used = refresh(s, slot, &retired);
        if (used + need <= target)
            break;
        /* Retired memory is room once readers let it go (an old index,
         * keys evicted before): free it rather than evicting more, and
         * if that is all the room needed, wait for readers to move on
         * (they leave a read section within microseconds; the slice's
         * deadline bounds the wait). */
        bool enough = retired && used - retired + need <= target;
        if (enough || (!reclaimed && retired > ev->limit / 64)) {
            kv__ebr_reclaim_all(&s->ebr, slot);
            reclaimed = true;
            if (enough) {
                if (mono_ns() >= deadline)
                    break;
                sched_yield();
            }
            continue;
        }
        /* an evicted item goes into history: drop that before evicting on */
        if (s->hist && mono_ns() < deadline && kv__hist_shed(s, slot, deadline))
            continue;
        size_t found;
        size_t removed = evict_batch(s, ev, slot, KV__EVICT_BATCH, deadline, &found, &none);
        if (removed) {
            progress = true;
            reclaimed = false;
        } else if (none) {
            break; /* a whole pass of the index found nothing evictable */
        }
        if (mono_ns() >= deadline)
            break;
    }
    pthread_mutex_unlock(&ev->mu);
    /* Refused only when there is nothing the policy may evict; a slice
     * that ran out of time (a slow machine, a huge index to sweep) lets
     * the write through and the next write goes on. */
    return used + need <= ev->limit || used - retired + need <= ev->limit || progress || !none
               ? KV_OK
               : KV_MEMORY_LIMIT;
}
