/*
 * expire.c - the coarse clock and the active expiry (expire.h).
 *
 * The clock. kv_store.clock_ms holds the wall clock in ms (CLOCK_REALTIME:
 * expiry times are absolute so that they mean the same after a restart and
 * on every replica). The expiry thread raises it once a millisecond; it
 * never goes back (a wall clock stepped back holds it still until the wall
 * clock catches up). Readers load it relaxed: it is one word, and a reader
 * that sees a value one tick old sees a key for at most one more ms. So a
 * key with expiry time T is visible while the clock reads < T and gone for
 * every reader once the thread has stored a value >= T: between T and
 * about T + 1 ms of wall time (plus the thread's scheduling delay).
 *
 * The active expiry. Each slot word of the index says whether its item has
 * an expiry time (KV__SLOT_TTL, table.h), so a sweep reads slot words in
 * order - sequential memory - and loads only the items that can expire.
 * Every millisecond the thread looks at table_size / 1000 slots (at least
 * 1024), so it passes over the whole index about once a second, whatever
 * the number of keys: an expired key stays resident for at most about one
 * second plus the time to delete what expired with it. Work per tick is
 * bounded in time as well: a tick stops after 250 us (25% of a core), and
 * the pass then simply takes longer. Unlike a random sample (Redis), the
 * sweep's cost does not grow when many keys expire at once (it deletes
 * what it finds in the slots it was going to read anyway) and no expired
 * key can be missed for long.
 *
 * Deleting: expired keys found are copied and deleted in batches of
 * KV__EXPIRE_BATCH through kv__apply with KV__OP_TOUCH ops: the write path
 * locks each key, sees it is (still) expired under the lock and deletes it
 * - one record, one revision, counted in expired_keys - exactly as it
 * would for any writer that meets an expired key. A key set again in the
 * meantime is left alone.
 *
 * Replicas (kv.h, "Replicas"): a store opened with manual_expiry runs the
 * clock but no sweep; its program finds expired keys with
 * kv_expired_find (the same cursor the sweep would use) and removes them
 * with kv_expire_remove, a batch of TOUCH ops judged at a clock reading
 * the caller gives (kv__batch.now). A thread may pin the clock it sees
 * on one store (kv__pinned, store.h), so that the changes it applies for
 * another copy judge expiry with the reading that copy made them with.
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "expire.h"
#include "store.h"

#define TICK_NS 1000000ull     /* the clock's resolution and the sweep's period */
#define TICK_BUDGET_NS 250000ull /* sweep time per tick: 25% of a core at most */
#define PASS_TICKS 1000u       /* a full pass of the index every ~1000 ticks */
#define MIN_SLOTS_PER_TICK 1024u

struct kv__expiry {
    pthread_t thread;
    pthread_mutex_t mu;
    pthread_cond_t cv;
    bool stop;
    _Atomic bool paused;
    pthread_mutex_t step_mu; /* one step at a time: it owns the cursor */
    kv__table *cursor_table; /* compared only, never dereferenced */
    size_t cursor;
    unsigned char *keybuf;   /* copies of the keys of a delete batch */
    size_t keybuf_cap;
};

static uint64_t wall_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    return (uint64_t)ts.tv_sec * 1000u + (uint64_t)ts.tv_nsec / 1000000u;
}

static uint64_t mono_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000000000ull + (uint64_t)ts.tv_nsec;
}

uint64_t kv__clock_refresh(kv_store *s)
{
    if (atomic_load_explicit(&s->clock_frozen, memory_order_relaxed))
        return kv__clock_now(s);
    uint64_t w = wall_ms();
    uint64_t c = atomic_load_explicit(&s->clock_ms, memory_order_relaxed);
    while (c < w && !atomic_compare_exchange_weak_explicit(&s->clock_ms, &c, w,
                                                           memory_order_relaxed,
                                                           memory_order_relaxed))
        ;
    return c < w ? w : c;
}

void kv__clock_set(kv_store *s, uint64_t ms)
{
    atomic_store(&s->clock_frozen, true);
    atomic_store(&s->clock_ms, ms);
}

void kv__clock_unfreeze(kv_store *s)
{
    atomic_store(&s->clock_frozen, false);
}

_Thread_local kv__clock_pin kv__pinned __attribute__((tls_model("initial-exec")));

uint64_t kv_clock_ms(kv_store *s)
{
    if (!s)
        return 0;
    if (kv__pinned.store == s)
        return kv__pinned.ms;
    return kv__clock_refresh(s);
}

void kv_clock_pin(kv_store *s, uint64_t ms)
{
    if (!s)
        return;
    if (ms) {
        kv__pinned.store = s;
        kv__pinned.ms = ms;
    } else if (kv__pinned.store == s) {
        kv__pinned.store = NULL;
        kv__pinned.ms = 0;
    }
}

/* Deletes the n keys (lengths in lens, bytes back to back in buf) if they
 * are still expired. Returns how many were. */
static size_t delete_batch(kv_store *s, const unsigned char *buf, const size_t *lens, size_t n)
{
    kv_op ops[KV__EXPIRE_BATCH];
    size_t off = 0;
    for (size_t i = 0; i < n; i++) {
        ops[i] = (kv_op){.kind = KV__OP_TOUCH, .key = buf + off, .klen = lens[i]};
        off += lens[i];
    }
    kv__outcome o;
    if (kv__apply(s, &(kv__batch){.then_ops = ops, .nthen = n, .internal = true}, &o) != KV_OK)
        return 0;
    kv__outcome_free(&o);
    return o.expired;
}

static size_t step_locked(kv_store *s, struct kv__expiry *e, size_t max_slots,
                          uint64_t deadline_ns)
{
    kv__slot *slot = kv__slot_get(&s->slots);
    if (!slot || s->manual_expiry) /* its program removes expired keys */
        return 0;
    size_t lens[KV__EXPIRE_BATCH], nbatch = 0, used = 0, deleted = 0;
    size_t seen = 0;
    while (seen < max_slots) {
        uint64_t now = kv__clock_now(s);
        kv__ebr_pin(&s->ebr, slot);
        kv__table *t = atomic_load(&s->table);
        if (t != e->cursor_table) { /* the index was replaced: start over */
            e->cursor_table = t;
            e->cursor = 0;
        }
        /* Read slots until a batch is full or 256 slots were read (then
         * look at the time). */
        size_t chunk_end = seen + 256 < max_slots ? seen + 256 : max_slots;
        for (; seen < chunk_end && nbatch < KV__EXPIRE_BATCH; seen++) {
            size_t i = e->cursor;
            e->cursor = (i + 1) & t->mask;
            uintptr_t v = atomic_load_explicit(&t->slots[i], memory_order_acquire);
            if (!(v & KV__SLOT_TTL) || !kv__slot_is_key(v) || kv__slot_is_pending(v))
                continue;
            const kv__item *it = kv__slot_ptr(v);
            if (!kv__item_expired(it, now))
                continue;
            size_t klen = kv__item_klen(it);
            if (used + klen > e->keybuf_cap) {
                size_t cap = e->keybuf_cap ? e->keybuf_cap : 4096;
                while (cap < used + klen)
                    cap *= 2;
                unsigned char *nb = realloc(e->keybuf, cap);
                if (!nb)
                    break;
                e->keybuf = nb;
                e->keybuf_cap = cap;
            }
            memcpy(e->keybuf + used, kv__item_key(it), klen);
            used += klen;
            lens[nbatch++] = klen;
        }
        kv__ebr_unpin(slot);
        if (nbatch == KV__EXPIRE_BATCH || (nbatch && seen >= max_slots)) {
            deleted += delete_batch(s, e->keybuf, lens, nbatch);
            nbatch = used = 0;
        }
        if (deadline_ns && mono_ns() >= deadline_ns)
            break;
    }
    if (nbatch)
        deleted += delete_batch(s, e->keybuf, lens, nbatch);
    return deleted;
}

size_t kv__expire_step(kv_store *s, size_t max_slots, uint64_t deadline_ns)
{
    if (kv__expiry_start(s) != KV_OK)
        return 0;
    struct kv__expiry *e = atomic_load(&s->expiry);
    pthread_mutex_lock(&e->step_mu);
    size_t n = step_locked(s, e, max_slots, deadline_ns);
    pthread_mutex_unlock(&e->step_mu);
    return n;
}

int kv_expired_find(kv_store *s, uint64_t now_ms, size_t max_slots, kv_expired_fn fn,
                    void *ctx, size_t *found)
{
    if (!s || !fn || !now_ms)
        return KV_INVALID_ARGUMENT;
    size_t n = 0;
    if (!atomic_load(&s->ttl_seen)) /* no key ever had an expiry time */
        goto out;
    int rc = kv__expiry_start(s); /* holds the cursor */
    if (rc != KV_OK)
        return rc;
    kv__slot *slot = kv__slot_get(&s->slots);
    if (!slot)
        return KV_NO_MEMORY;
    struct kv__expiry *e = atomic_load(&s->expiry);
    pthread_mutex_lock(&e->step_mu);
    kv__ebr_pin(&s->ebr, slot);
    kv__table *t = atomic_load(&s->table);
    if (t != e->cursor_table) {
        e->cursor_table = t;
        e->cursor = 0;
    }
    for (size_t seen = 0; seen < max_slots; seen++) {
        size_t i = e->cursor;
        e->cursor = (i + 1) & t->mask;
        uintptr_t v = atomic_load_explicit(&t->slots[i], memory_order_acquire);
        if (!(v & KV__SLOT_TTL) || !kv__slot_is_key(v) || kv__slot_is_pending(v))
            continue;
        const kv__item *it = kv__slot_ptr(v);
        if (!kv__item_expired(it, now_ms))
            continue;
        n++;
        if (fn(ctx, kv__item_key(it), kv__item_klen(it), kv__item_expire_at(it)) != 0)
            break;
    }
    kv__ebr_unpin(slot);
    pthread_mutex_unlock(&e->step_mu);
out:
    if (found)
        *found = n;
    return KV_OK;
}

int kv_expire_remove(kv_store *s, const kv_key *keys, size_t n, uint64_t now_ms,
                     size_t *removed, uint64_t *version)
{
    if (!s || !keys || !n || !now_ms)
        return KV_INVALID_ARGUMENT;
    kv_op small[KV__EXPIRE_BATCH];
    kv_op *ops = n <= KV__EXPIRE_BATCH ? small : malloc(n * sizeof *ops);
    if (!ops)
        return KV_NO_MEMORY;
    for (size_t i = 0; i < n; i++)
        ops[i] = (kv_op){.kind = KV__OP_TOUCH, .key = keys[i].data, .klen = keys[i].len};
    kv__outcome o;
    int rc = kv__apply(
        s, &(kv__batch){.then_ops = ops, .nthen = n, .internal = true, .now = now_ms}, &o);
    if (ops != small)
        free(ops);
    if (rc != KV_OK)
        return rc;
    kv__outcome_free(&o);
    if (removed)
        *removed = o.expired;
    if (version && o.revision)
        *version = o.revision;
    return KV_OK;
}

void kv__expiry_pause(kv_store *s, bool paused)
{
    if (kv__expiry_start(s) == KV_OK)
        atomic_store(&atomic_load(&s->expiry)->paused, paused);
}

static void *expiry_main(void *arg)
{
    kv_store *s = arg;
    struct kv__expiry *e = atomic_load(&s->expiry);
    struct timespec next;
    clock_gettime(CLOCK_MONOTONIC, &next);
    pthread_mutex_lock(&e->mu);
    while (!e->stop) {
        next.tv_nsec += (long)TICK_NS;
        if (next.tv_nsec >= 1000000000L) {
            next.tv_nsec -= 1000000000L;
            next.tv_sec++;
        }
        int rc = 0;
        while (!e->stop && rc != ETIMEDOUT)
            rc = pthread_cond_timedwait(&e->cv, &e->mu, &next);
        if (e->stop)
            break;
        pthread_mutex_unlock(&e->mu);
        kv__clock_refresh(s);
        uint64_t start = mono_ns();
        /* A late tick (the machine was busy) does not try to catch up. */
        if ((uint64_t)next.tv_sec * 1000000000ull + (uint64_t)next.tv_nsec + 10 * TICK_NS < start)
            clock_gettime(CLOCK_MONOTONIC, &next);
        if (!atomic_load(&e->paused) &&
            atomic_load_explicit(&s->ttl_seen, memory_order_relaxed)) {
            kv__table *t = atomic_load(&s->table);
            size_t slots = kv__table_size(t) / PASS_TICKS;
            if (slots < MIN_SLOTS_PER_TICK)
                slots = MIN_SLOTS_PER_TICK;
            pthread_mutex_lock(&e->step_mu);
            step_locked(s, e, slots, start + TICK_BUDGET_NS);
            pthread_mutex_unlock(&e->step_mu);
        }
        pthread_mutex_lock(&e->mu);
    }
    pthread_mutex_unlock(&e->mu);
    return NULL;
}

int kv__expiry_start(kv_store *s)
{
    if (atomic_load_explicit(&s->expiry, memory_order_acquire))
        return KV_OK;
    pthread_mutex_lock(&s->expiry_mu);
    int rc = KV_OK;
    if (!atomic_load(&s->expiry)) {
        struct kv__expiry *e = calloc(1, sizeof *e);
        if (!e) {
            rc = KV_NO_MEMORY;
            goto out;
        }
        pthread_mutex_init(&e->mu, NULL);
        pthread_mutex_init(&e->step_mu, NULL);
        pthread_condattr_t ca;
        pthread_condattr_init(&ca);
        pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
        pthread_cond_init(&e->cv, &ca);
        pthread_condattr_destroy(&ca);
        kv__clock_refresh(s);
        atomic_store(&s->expiry, e);
        if (pthread_create(&e->thread, NULL, expiry_main, s) != 0) {
            atomic_store(&s->expiry, NULL);
            pthread_mutex_destroy(&e->mu);
            pthread_mutex_destroy(&e->step_mu);
            pthread_cond_destroy(&e->cv);
            free(e);
            rc = KV_NO_MEMORY;
        }
    }
out:
    pthread_mutex_unlock(&s->expiry_mu);
    return rc;
}

void kv__expiry_stop(kv_store *s)
{
    pthread_mutex_lock(&s->expiry_mu);
    struct kv__expiry *e = atomic_load(&s->expiry);
    if (e) {
        pthread_mutex_lock(&e->mu);
        e->stop = true;
        pthread_cond_signal(&e->cv);
        pthread_mutex_unlock(&e->mu);
        pthread_join(e->thread, NULL);
        atomic_store(&s->expiry, NULL);
        pthread_mutex_destroy(&e->mu);
        pthread_mutex_destroy(&e->step_mu);
        pthread_cond_destroy(&e->cv);
        free(e->keybuf);
        free(e);
    }
    pthread_mutex_unlock(&s->expiry_mu);
}
