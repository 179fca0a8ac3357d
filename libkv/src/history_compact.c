/*
 * history_compact.c - dropping history no read needs any more: on request
 * (kv_compact), by the byte and age bounds (the compactor thread), and
 * under the memory limit (kv__hist_shed). A sweep takes one stripe at a
 * time, so readers and writers wait at most for one stripe's part. Under
 * the bounds the writers do most of the dropping (see tick()).
 */
#include <errno.h>
#include <pthread.h>
#include <time.h>

#include "history_impl.h"

/* ---- compaction ------------------------------------------------------------ */

/* Versions a sweep drops under one stripe lock at most: then it lets the
 * stripe's writers in and frees what it retired (a first sweep of a big
 * history drops millions of versions). */
#define SWEEP_SLICE 1024u

static uint64_t now_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

/* A sweep reads each record and its oldest entry, two dependent cache
 * misses per key: it starts them some buckets ahead (the first record of
 * a bucket; chains are short), so that they overlap. (In the loop, not in
 * a helper: GCC finds a function of loads and prefetches pure and drops
 * the call.) */
#define AHEAD_RECORD 16u
#define AHEAD_ENTRY 8u

/* Drops, stripe by stripe and slice by slice from *pos on, every entry no
 * read at a revision >= c needs, and the oldest versions of keys over the
 * count bound (left there while history was held); stops once a slice ends past deadline_ns
 * (0: none). True when the sweep is complete. compact_mu held. */
static bool sweep(kv_store *s, kv__slot *slot, uint64_t c, kv__sweep_pos *pos,
                  uint64_t deadline_ns)
{
    for (; pos->stripe < KV__NSTRIPES; pos->stripe++, pos->bucket = 0) {
        unsigned st = pos->stripe;
        kv__hmap *m = &s->hist->maps[st];
        bool more = true;
        while (more) {
            unsigned dropped = 0;
            kv__stripes_lock(s->stripes, &st, 1);
            kv__ebr_pin(&s->ebr, slot); /* kv__hist_slot_item reads the index */
            /* A writer may have resized the map since the last slice:
             * buckets were rehashed, so start the stripe again (what was
             * dropped is gone; the rest is found again). */
            if (pos->bucket && m->bits != pos->bits)
                pos->bucket = 0;
            pos->bits = m->bits;
            size_t b = pos->bucket;
            for (; m->buckets && b < ((size_t)1 << m->bits) && dropped < SWEEP_SLICE; b++) {
                size_t n = (size_t)1 << m->bits;
                if (b + AHEAD_RECORD < n)
                    __builtin_prefetch(m->buckets[b + AHEAD_RECORD]); /* NULL: a no-op */
                if (b + AHEAD_ENTRY < n && m->buckets[b + AHEAD_ENTRY] &&
                    m->buckets[b + AHEAD_ENTRY]->oldest)
                    kv__hent_prefetch(m->buckets[b + AHEAD_ENTRY]->oldest);
                kv__hkey *r = m->buckets[b];
                while (r) {
                    kv__hkey *next = r->next;
                    uint32_t maxv = s->hist->max_versions;
                    while (r->oldest && (r->oldest_until <= c || (maxv && r->nent > maxv)) &&
                           kv__ebr_reserve(slot, 1) == KV_OK) {
                        /* over the count bound: the key's floor rises */
                        kv__hist_drop_oldest(s, slot, r, r->oldest_until > c);
                        dropped++;
                    }
                    if (!kv__hkey_needed(r) && kv__ebr_reserve(slot, 1) == KV_OK)
                        kv__hist_record_free(s, slot, m, r,
                                             kv__hist_slot_item(s, r->hash, r->key, r->klen));
                    r = next;
                }
            }
            pos->bucket = b;
            more = m->buckets && b < ((size_t)1 << m->bits);
            kv__ebr_unpin(slot);
            kv__stripes_unlock(s->stripes, &st, 1);
            /* A full slice: a big sweep frees as it goes. Small ones leave
             * it to the end of the compaction (compact_to): a collection
             * may cost a membarrier, an interrupt on every core running
             * the store's threads, which a writer feels in its tail. */
            if (dropped >= SWEEP_SLICE)
                kv__ebr_collect(&s->ebr, slot);
            if (deadline_ns && now_ns() >= deadline_ns) {
                if (!more) {
                    pos->stripe++;
                    pos->bucket = 0;
                }
                return pos->stripe >= KV__NSTRIPES;
            }
        }
    }
    return true;
}

static void add_hist_bytes(kv__slot *slot, void *ctx)
{
    *(uint64_t *)ctx += atomic_load_explicit(&slot->counters[KV__C_HIST_BYTES],
                                             memory_order_relaxed);
}

static uint64_t hist_bytes_sum(kv_store *s)
{
    uint64_t sum = 0;
    kv__slot_each(&s->slots, add_hist_bytes, &sum);
    return (int64_t)sum < 0 ? 0 : sum;
}

/* Raises the compaction revision to c and sweeps, all of it (a shed
 * left unfinished included: it is below c). While history is held the
 * sweep waits for the release, which makes it. */
void kv__hist_compact_to(kv_store *s, kv__slot *slot, uint64_t c)
{
    kv__hist *h = s->hist;
    pthread_mutex_lock(&h->compact_mu);
    kv__hist_floor(s, c);
    if (atomic_load(&h->hold_rev)) {
        pthread_mutex_unlock(&h->compact_mu);
        return;
    }
    kv__sweep_pos pos = {0};
    sweep(s, slot, atomic_load(&h->compact_rev), &pos, 0);
    h->shed_active = false;
    pthread_mutex_unlock(&h->compact_mu);
    kv__ebr_collect(&s->ebr, slot);
}

int kv_compact(kv_store *s, uint64_t rev)
{
    if (!s)
        return KV_INVALID_ARGUMENT;
    if (!s->hist)
        return KV_UNSUPPORTED;
    if (rev > kv__revision_latest(s))
        return KV_FUTURE_REVISION;
    if (rev <= atomic_load(&s->hist->compact_rev))
        return KV_COMPACTED;
    kv__slot *slot = kv__slot_get(&s->slots);
    if (!slot)
        return KV_NO_MEMORY;
    kv__hist_compact_to(s, slot, rev);
    return KV_OK;
}

static void add_hist_versions(kv__slot *slot, void *ctx)
{
    *(uint64_t *)ctx += atomic_load_explicit(&slot->counters[KV__C_HIST_VERSIONS],
                                             memory_order_relaxed);
}

bool kv__hist_shed(kv_store *s, kv__slot *slot, uint64_t deadline_ns)
{
    kv__hist *h = s->hist;
    pthread_mutex_lock(&h->compact_mu);
    if (atomic_load(&h->hold_rev)) {
        /* a copy is being made (history_copy.c): nothing may go */
        pthread_mutex_unlock(&h->compact_mu);
        return false;
    }
    if (!h->shed_active) {
        uint64_t versions = 0;
        kv__slot_each(&s->slots, add_hist_versions, &versions);
        uint64_t latest = kv__revision_latest(s), c = atomic_load(&h->compact_rev);
        if ((int64_t)versions <= 0 || c >= latest) {
            /* only version counts of live keys, or nothing below the
             * latest: nothing to drop */
            pthread_mutex_unlock(&h->compact_mu);
            return false;
        }
        kv__hist_floor(s, c + (latest - c + 1) / 2);
        h->shed_pos = (kv__sweep_pos){0};
        h->shed_active = true;
    }
    if (sweep(s, slot, atomic_load(&h->compact_rev), &h->shed_pos, deadline_ns))
        h->shed_active = false;
    pthread_mutex_unlock(&h->compact_mu);
    return true;
}

static uint64_t mono_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000u + (uint64_t)ts.tv_nsec / 1000000u;
}

/* The revision that, dropped to, leaves about `goal` of `bytes` (history
 * is about evenly spread over the revisions since c). */
static uint64_t bytes_target(uint64_t latest, uint64_t c, uint64_t bytes, uint64_t goal)
{
    if (bytes <= goal || latest <= c)
        return 0;
    uint64_t step = (uint64_t)((double)(latest - c) * ((double)(bytes - goal) / (double)bytes)) + 1;
    return c + step > latest ? latest : c + step;
}

/* The revision the age bound asks to compact to now (0: none). */
static uint64_t age_target(kv_store *s, uint64_t now, uint64_t latest)
{
    kv__hist *h = s->hist;
    if (!h->max_age_s)
        return 0;
    if (now - h->last_sample >= h->sample_ms || !h->nsamples) {
        h->samples[h->head] = (sample){now, latest};
        h->head = (h->head + 1) % NSAMPLES;
        if (h->nsamples < NSAMPLES)
            h->nsamples++;
        h->last_sample = now;
    }
    uint64_t cutoff = now - (uint64_t)h->max_age_s * 1000u;
    /* the newest sample taken at or before the cutoff */
    for (size_t i = 0; i < h->nsamples; i++) {
        const sample *x = &h->samples[(h->head + NSAMPLES - 1 - i) % NSAMPLES];
        if (now >= (uint64_t)h->max_age_s * 1000u && x->ms <= cutoff)
            return x->rev;
    }
    return 0;
}

/* One tick of the compactor thread: the bounds' targets, and who drops.
 *
 * Every change drops the oldest versions of the keys it writes that are
 * below the compaction revision c (kv__hist_commit): the writer has the
 * key's record in its cache, and the work is spread evenly over the
 * writes. A sweep walks every key with history, two cache misses each,
 * whether it drops anything or not; run as a burst on its own thread it
 * took a core from the writers for tens of milliseconds, the tail of a
 * busy server. So the compactor mostly only raises c, and sweeps when the
 * writers cannot keep up or would never come by:
 *   - the byte bound: over 1/2 of it, c follows the latest revision at
 *     the distance that 1/2 of the bound holds, counted in versions (a
 *     change of one key adds at most one): latest - (1/2 of the bound /
 *     the mean bytes of a version). Half, not more: a key's versions
 *     below c stay until the key is written again, and a sweep (a burst)
 *     is what the headroom is there to avoid. The writers keep history near that
 *     size as they go. Not from the bytes against the revisions since c,
 *     as a sweep does: the bytes still count what is below c and not yet
 *     dropped, and judging them at every tick would chase those and
 *     compact far more than the bound asks. Over the bound itself
 *     (changes of several keys each, or writers that keep to a few keys
 *     and leave the others' versions), a sweep to 3/4 of it, as before.
 *   - the age bound: c rises to the revision of max_age_s ago at once
 *     (reads below it fail from then on).
 * The versions below c of keys nobody writes go at a background sweep
 * that starts at most SWEEP_EVERY_MS after c rose and runs in slices of
 * BG_SLICE_NS, one per tick (about 1% of a core): it is never urgent, so
 * it must not take a core from the writers. Short slices, often: where the
 * compactor shares a CPU with a server's event loop, every request in
 * flight waits out a slice, and slices of 1 ms every 100 ms put kvd's
 * SET p99.9 at pipeline 1 above Redis's (bench/results/history-slice-1.txt). */
#define SWEEP_EVERY_MS 10000u
#define BG_SLICE_NS 250000u

static void tick(kv_store *s, kv__slot *slot, uint64_t now)
{
    kv__hist *h = s->hist;
    uint64_t latest = kv__revision_latest(s), c = atomic_load(&h->compact_rev);
    uint64_t lazy = age_target(s, now, latest), sweep_to = 0;
    if (h->max_bytes) {
        uint64_t bytes = hist_bytes_sum(s);
        if (bytes > h->max_bytes) {
            sweep_to = bytes_target(latest, c, bytes, h->max_bytes / 4 * 3);
        } else if (bytes > h->max_bytes / 2) {
            uint64_t versions = 0;
            kv__slot_each(&s->slots, add_hist_versions, &versions);
            if ((int64_t)versions > 0) {
                uint64_t keep = h->max_bytes / 2 / (bytes / versions + 1);
                if (latest > keep && latest - keep > lazy)
                    lazy = latest - keep;
            }
        }
    }
    if (lazy > c)
        kv__hist_floor(s, lazy);
    c = atomic_load(&h->compact_rev);
    if (sweep_to) {
        kv__hist_compact_to(s, slot, sweep_to > c ? sweep_to : c);
        h->last_sweep_ms = now;
        h->swept_rev = atomic_load(&h->compact_rev);
        h->bg_active = false;
        return;
    }
    if (!h->bg_active && c > h->swept_rev && now - h->last_sweep_ms >= SWEEP_EVERY_MS) {
        h->bg_active = true;
        h->bg_pos = (kv__sweep_pos){0};
        h->bg_rev = c;
    }
    if (h->bg_active) {
        pthread_mutex_lock(&h->compact_mu);
        bool done = atomic_load(&h->hold_rev) == 0 &&
                    sweep(s, slot, atomic_load(&h->compact_rev), &h->bg_pos, now_ns() + BG_SLICE_NS);
        pthread_mutex_unlock(&h->compact_mu);
        if (done) {
            kv__ebr_collect(&s->ebr, slot);
            h->bg_active = false;
            h->last_sweep_ms = now;
            h->swept_rev = h->bg_rev;
        }
    }
}

void *kv__hist_compactor(void *arg)
{
    kv_store *s = arg;
    kv__hist *h = s->hist;
    pthread_setname_np(pthread_self(), "kv-history");
    kv__slot *slot = kv__slot_get(&s->slots);
    h->last_sweep_ms = mono_ms();
    pthread_mutex_lock(&h->mu);
    while (!h->stop) {
        struct timespec ts;
        clock_gettime(CLOCK_MONOTONIC, &ts);
        ts.tv_nsec += (long)TICK_MS * 1000000L;
        if (ts.tv_nsec >= 1000000000L) {
            ts.tv_sec++;
            ts.tv_nsec -= 1000000000L;
        }
        int w = 0;
        while (!h->stop && w != ETIMEDOUT)
            w = pthread_cond_timedwait(&h->cv, &h->mu, &ts);
        if (h->stop || !slot)
            break;
        pthread_mutex_unlock(&h->mu);
        /* while history is held the bytes cannot fall: judging them would
         * compact further at every tick */
        if (!atomic_load(&h->hold_rev))
            tick(s, slot, mono_ms());
        pthread_mutex_lock(&h->mu);
    }
    pthread_mutex_unlock(&h->mu);
    return NULL;
}
