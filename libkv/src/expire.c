/*
 * expire.c - the coarse clock and the active expiry (expire.h).
 *
 * The clock. kv_store.clock_ms holds the wall clock in ms (CLOCK_REALTIME:
 * expiry times are absolute so that they mean the same after a restart and
 * on every replica). The expiry thread raises it once a millisecond while
 * keys are due (below: when nothing is due it sleeps, and the clock only
 * has to be right at the moments a key expires); it never goes back (a
 * wall clock stepped back holds it still until the wall clock catches up).
 * Readers load it relaxed: it is one word, and a reader that sees a value
 * one tick old sees a key for at most one more ms. So a key with expiry
 * time T is visible while the clock reads < T and gone for every reader
 * once the thread has stored a value >= T: between T and about T + 1 ms of
 * wall time (plus the thread's scheduling delay).
 *
 * The active expiry. Each slot word of the index says whether its item has
 * an expiry time (KV__SLOT_TTL, table.h), so a sweep reads slot words in
 * order - sequential memory - and loads only the items that can expire.
 * Every millisecond the thread looks at table_slots / 1000 slots (at least
 * 1024), so it passes over the whole index, segment after segment, about
 * once a second, whatever
 * the number of keys: an expired key stays resident for at most about one
 * second plus the time to delete what expired with it. Work per tick is
 * bounded in time as well: a tick stops after 250 us (25% of a core), and
 * the pass then simply takes longer. Unlike a random sample (Redis), the
 * sweep's cost does not grow when many keys expire at once (it deletes
 * what it finds in the slots it was going to read anyway) and no expired
 * key can be missed for long.
 *
 * Sleeping when nothing is due. A whole pass of the index also finds the
 * earliest expiry time of the keys it passed; writers leave a note of the
 * earliest expiry time they publish in their thread slot (kv__expiry_note:
 * a compare-and-swap on their own line, after their slot stores, only for
 * items with an expiry time). A pass starts by taking every note (an
 * exchange), so the keys published before it are in the notes or in the
 * slots it reads; when it ends, `due` = the earliest of what it saw and of
 * the notes left since. A pass during a resize (keys it may not see in the
 * next table) only ever lowers `due`. While `due` is more than a tick
 * away the thread sleeps until it, at most IDLE_MAX_MS (100 ms, which
 * bounds what a wall clock stepped forward can delay): no sweep, no clock
 * store. A writer that notes an earlier time than the sleeping thread's
 * wake-up (wake_at) wakes it (the thread publishes wake_at, then reads the
 * notes; the writer notes, then reads wake_at: one of them sees the
 * other). So an idle store with keys that expire in an hour costs ten
 * wake-ups a second (bench/expiry: 0.0-0.1% of a core against 4-5% for a
 * pass a second over 1M keys), and a store with keys due keeps the 1 ms
 * tick and the sweep above. Tests, a paused sweep and manual_expiry stores
 * tick every millisecond as before. While the thread sleeps the clock
 * lags, which no existing key can notice (none expires before `due`); a
 * batch that writes an expiry time reads the wall clock itself (apply.c,
 * batch_now), so that a time already past is judged past.
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
#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "expire.h"
#include "store.h"

#define TICK_NS 1000000ull     /* the clock's resolution and the sweep's period */
#define TICK_BUDGET_NS 250000ull /* sweep time per tick: 25% of a core at most */
#define PASS_TICKS 1000u       /* a full pass of the index every ~1000 ticks */
#define MIN_SLOTS_PER_TICK 1024u
#define IDLE_MAX_MS 100u       /* the longest sleep with nothing due */

struct kv__expiry {
    pthread_t thread;
    pthread_mutex_t mu;
    pthread_cond_t cv;
    bool stop;
    bool kick;               /* under mu: wake up now (a note, a set clock) */
    _Atomic bool paused;
    /* the clock reading (ms) the sleeping thread wakes up at; 0 while it
     * ticks every millisecond */
    _Atomic uint64_t wake_at;
    pthread_mutex_t step_mu; /* one step at a time: it owns the cursor and
                                what follows */
    unsigned cursor_seg;     /* the cursor: a segment of the index, */
    kv__table *cursor_table; /* its table (compared only, never
                                dereferenced), */
    size_t cursor;           /* a slot in it */
    unsigned char *keybuf;   /* copies of the keys of a delete batch */
    size_t keybuf_cap;
    /* No key expires before `due` (ms; 0: not known, UINT64_MAX: no key
     * has an expiry time), as the last whole pass of the index found. */
    uint64_t due;
    bool in_pass;
    unsigned pass_segs; /* segments read to their end in this pass */
    uint64_t pass_min;  /* the earliest expiry time it saw or took as a note */
    bool pass_partial;  /* a resize ran (keys the pass did not see) or
                           kv_expired_find moved the cursor */
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

/* Wakes the expiry thread up if it sleeps. */
static void kick(kv_store *s)
{
    struct kv__expiry *e = atomic_load_explicit(&s->expiry, memory_order_acquire);
    if (!e)
        return;
    pthread_mutex_lock(&e->mu);
    e->kick = true;
    pthread_cond_signal(&e->cv);
    pthread_mutex_unlock(&e->mu);
}

void kv__clock_set(kv_store *s, uint64_t ms)
{
    atomic_store(&s->clock_frozen, true);
    atomic_store(&s->clock_ms, ms);
    kick(s); /* a sleeping thread's plan was made with the old reading */
}

void kv__clock_unfreeze(kv_store *s)
{
    atomic_store(&s->clock_frozen, false);
    kick(s);
}

/* ---- notes: when the thread may sleep ------------------------------------ */

typedef struct notes {
    uint64_t min; /* UINT64_MAX: none */
    bool take;
} notes;

static void note_of(kv__slot *slot, void *ctx)
{
    notes *n = ctx;
    uint64_t v = n->take ? atomic_exchange(&slot->ttl_note, 0) : atomic_load(&slot->ttl_note);
    if (v && v < n->min)
        n->min = v;
}

/* The earliest expiry time noted by any thread (UINT64_MAX: none); take:
 * and clear the notes (a pass starts). Sequentially consistent loads or
 * exchanges (see kv__expiry_note). */
static uint64_t notes_min(kv_store *s, bool take)
{
    notes n = {UINT64_MAX, take};
    kv__slot_each(&s->slots, note_of, &n);
    return n.min;
}

void kv__expiry_note(kv_store *s, kv__slot *slot, uint64_t ms)
{
    /* Always a read-modify-write, even when the note does not go down:
     * either it comes before the exchange that starts a pass (which then
     * synchronizes with it, so the pass sees the items published before
     * it), or after it (and the pass's end reads it, or the next check
     * below sees the plan of the thread's sleep). */
    uint64_t v = atomic_load_explicit(&slot->ttl_note, memory_order_relaxed);
    while (!atomic_compare_exchange_weak(&slot->ttl_note, &v, v && v < ms ? v : ms))
        ;
    /* Dekker with the thread (expiry_plan): it stores wake_at and then
     * reads the notes, this stores the note and then reads wake_at
     * (all sequentially consistent): one of the two sees the other. */
    struct kv__expiry *e = atomic_load_explicit(&s->expiry, memory_order_acquire);
    if (e && ms < atomic_load(&e->wake_at))
        kick(s);
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

/* Starts a pass of the index (step_mu held) at the start of the cursor's
 * segment: takes the notes, which covers the items published before it
 * that the pass will not see (in slots it has passed: none yet; in a next
 * table: a partial pass). */
static void pass_begin(kv_store *s, struct kv__expiry *e)
{
    e->pass_min = notes_min(s, true);
    e->pass_partial = false;
    e->in_pass = true;
    e->pass_segs = 0;
    e->cursor = 0;
}

/* The table at the cursor (in a read section): its segment's current one.
 * When the segment switched to a new table, the cursor goes back to its
 * start: the keys it had read are read again, none is skipped. */
static kv__table *cursor_table(kv_store *s, struct kv__expiry *e)
{
    kv__table *t = kv__seg_table(s, e->cursor_seg);
    if (t != e->cursor_table) {
        e->cursor_table = t;
        e->cursor = 0;
    }
    return t;
}

/* Reads the slot word at the cursor and moves the cursor on, to the next
 * segment's table after the end of *t (*t is then that table, and
 * *seg_end is set). In a read section. */
static uintptr_t cursor_read(kv_store *s, struct kv__expiry *e, kv__table **t, bool *seg_end)
{
    uintptr_t v = atomic_load_explicit(&(*t)->slots[e->cursor & (*t)->mask],
                                       memory_order_acquire);
    *seg_end = ++e->cursor > (*t)->mask;
    if (*seg_end) {
        e->cursor_seg = (e->cursor_seg + 1) % kv__nsegs(s);
        e->cursor_table = NULL;
        *t = cursor_table(s, e);
    }
    return v;
}

/* Ends a pass (step_mu held): what it found is when the next key is due. */
static void pass_end(kv_store *s, struct kv__expiry *e)
{
    uint64_t due = e->pass_min, noted = notes_min(s, false);
    if (noted < due)
        due = noted;
    /* A partial pass may have missed keys: it only ever lowers `due`. */
    if (e->pass_partial && e->due < due)
        due = e->due;
    e->due = due;
    e->in_pass = false;
}

/* Deletes the expired keys of the batch; a key the batch could not delete
 * (out of memory) keeps the pass from believing nothing is due. */
static size_t flush_batch(kv_store *s, struct kv__expiry *e, const size_t *lens, size_t n,
                          uint64_t now)
{
    size_t deleted = delete_batch(s, e->keybuf, lens, n);
    if (deleted < n && now < e->pass_min) /* failed, or set again: look again */
        e->pass_min = now;
    return deleted;
}

static size_t step_locked(kv_store *s, struct kv__expiry *e, size_t max_slots,
                          uint64_t deadline_ns)
{
    kv__slot *slot = kv__slot_get(&s->slots);
    if (!slot || s->manual_expiry) /* its program removes expired keys */
        return 0;
    size_t lens[KV__EXPIRE_BATCH], nbatch = 0, used = 0, deleted = 0;
    size_t seen = 0;
    uint64_t now = 0;
    /* a step that ends a pass starts no other: the thread then decides
     * whether it may sleep */
    bool ended = false;
    while (seen < max_slots) {
        now = kv__clock_now(s);
        kv__ebr_pin(&s->ebr, slot);
        if (!e->in_pass && !ended)
            pass_begin(s, e);
        kv__table *t = cursor_table(s, e);
        if (e->in_pass && atomic_load(&t->next)) /* keys move to a table the pass skips */
            e->pass_partial = true;
        /* Read slots until a batch is full, 256 slots were read (then look
         * at the time) or the pass read every segment. */
        size_t chunk_end = seen + 256 < max_slots ? seen + 256 : max_slots;
        while (seen < chunk_end && nbatch < KV__EXPIRE_BATCH &&
               !(e->in_pass && e->pass_segs >= kv__nsegs(s))) {
            seen++;
            bool seg_end;
            uintptr_t v = cursor_read(s, e, &t, &seg_end);
            if (seg_end) {
                e->pass_segs += e->in_pass;
                if (e->in_pass && atomic_load(&t->next))
                    e->pass_partial = true;
            }
            if (v == KV__SLOT_MOVED || v == KV__SLOT_MOVED_EMPTY)
                e->pass_partial = true;
            if (!(v & KV__SLOT_TTL) || !kv__slot_is_key(v) || kv__slot_is_pending(v))
                continue;
            const kv__item *it = kv__slot_ptr(v);
            if (!kv__item_expired(it, now)) {
                if (kv__item_expire_at(it) < e->pass_min)
                    e->pass_min = kv__item_expire_at(it);
                continue;
            }
            size_t klen = kv__item_klen(it);
            if (used + klen > e->keybuf_cap) {
                size_t cap = e->keybuf_cap ? e->keybuf_cap : 4096;
                while (cap < used + klen)
                    cap *= 2;
                unsigned char *nb = realloc(e->keybuf, cap);
                if (!nb) {
                    e->pass_min = now; /* left behind: due now */
                    break;
                }
                e->keybuf = nb;
                e->keybuf_cap = cap;
            }
            memcpy(e->keybuf + used, kv__item_key(it), klen);
            used += klen;
            lens[nbatch++] = klen;
        }
        kv__ebr_unpin(slot);
        bool pass_read = e->in_pass && e->pass_segs >= kv__nsegs(s);
        if (nbatch == KV__EXPIRE_BATCH || (nbatch && (seen >= max_slots || pass_read))) {
            deleted += flush_batch(s, e, lens, nbatch, now);
            nbatch = used = 0;
        }
        if (pass_read) {
            pass_end(s, e);
            ended = true;
        }
        if (deadline_ns && mono_ns() >= deadline_ns)
            break;
    }
    if (nbatch)
        deleted += flush_batch(s, e, lens, nbatch, now);
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

uint64_t kv__expiry_due(kv_store *s)
{
    if (kv__expiry_start(s) != KV_OK)
        return 0;
    struct kv__expiry *e = atomic_load(&s->expiry);
    pthread_mutex_lock(&e->step_mu);
    uint64_t due = e->due;
    pthread_mutex_unlock(&e->step_mu);
    uint64_t noted = notes_min(s, false);
    return noted < due ? noted : due;
}

bool kv__expiry_sleeping(kv_store *s)
{
    struct kv__expiry *e = atomic_load(&s->expiry);
    return e && atomic_load(&e->wake_at) != 0;
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
    kv__table *t = cursor_table(s, e);
    e->pass_partial = true; /* the cursor moves without the pass */
    for (size_t seen = 0; seen < max_slots; seen++) {
        bool seg_end;
        uintptr_t v = cursor_read(s, e, &t, &seg_end);
        if (seg_end)
            e->pass_segs += e->in_pass;
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

/* How long the thread may sleep now, in ms: 0 to tick (keys are due, a
 * pass is under way, or the sweep is paused). A plan to sleep is published
 * in wake_at before the notes are read again (kv__expiry_note). */
static uint64_t expiry_plan(kv_store *s, struct kv__expiry *e)
{
    if (atomic_load(&e->paused) || s->manual_expiry)
        return 0;
    uint64_t now = kv__clock_now(s);
    pthread_mutex_lock(&e->step_mu);
    uint64_t due = e->in_pass ? 0 : e->due;
    pthread_mutex_unlock(&e->step_mu);
    if (!atomic_load_explicit(&s->ttl_seen, memory_order_relaxed))
        due = UINT64_MAX; /* no item ever had an expiry time */
    uint64_t noted = notes_min(s, false);
    if (noted < due)
        due = noted;
    if (due <= now + 1)
        return 0;
    uint64_t wake = due - now < IDLE_MAX_MS ? due : now + IDLE_MAX_MS;
    atomic_store(&e->wake_at, wake);
    if (notes_min(s, false) < wake) { /* a writer noted in between */
        atomic_store(&e->wake_at, 0);
        return 0;
    }
    return wake - now;
}

static void *expiry_main(void *arg)
{
    kv_store *s = arg;
    struct kv__expiry *e = atomic_load(&s->expiry);
    pthread_setname_np(pthread_self(), "kv-expiry");
    struct timespec next;
    clock_gettime(CLOCK_MONOTONIC, &next);
    uint64_t sleep_ns = TICK_NS;
    pthread_mutex_lock(&e->mu);
    while (!e->stop) {
        next.tv_sec += (time_t)(sleep_ns / 1000000000ull);
        next.tv_nsec += (long)(sleep_ns % 1000000000ull);
        if (next.tv_nsec >= 1000000000L) {
            next.tv_nsec -= 1000000000L;
            next.tv_sec++;
        }
        int rc = 0;
        while (!e->stop && !e->kick && rc != ETIMEDOUT)
            rc = pthread_cond_timedwait(&e->cv, &e->mu, &next);
        if (e->stop)
            break;
        bool kicked = e->kick;
        e->kick = false;
        pthread_mutex_unlock(&e->mu);
        atomic_store(&e->wake_at, 0); /* ticking: writers need not kick */
        kv__clock_refresh(s);
        uint64_t start = mono_ns();
        /* A late tick (the machine was busy) does not try to catch up; an
         * early one (kicked) starts the schedule again from now. */
        if (kicked ||
            (uint64_t)next.tv_sec * 1000000000ull + (uint64_t)next.tv_nsec + 10 * TICK_NS < start)
            clock_gettime(CLOCK_MONOTONIC, &next);
        uint64_t idle = expiry_plan(s, e);
        if (!idle && !atomic_load(&e->paused) &&
            atomic_load_explicit(&s->ttl_seen, memory_order_relaxed)) {
            kv__slot *slot = kv__slot_get(&s->slots);
            size_t slots = 0;
            if (slot) {
                kv__ebr_pin(&s->ebr, slot);
                slots = kv__index_slots(s) / PASS_TICKS;
                kv__ebr_unpin(slot);
            }
            if (slots < MIN_SLOTS_PER_TICK)
                slots = MIN_SLOTS_PER_TICK;
            pthread_mutex_lock(&e->step_mu);
            step_locked(s, e, slots, start + TICK_BUDGET_NS);
            pthread_mutex_unlock(&e->step_mu);
            /* the pass may have just ended with nothing due for a while */
            idle = expiry_plan(s, e);
        }
        sleep_ns = idle ? idle * 1000000ull : TICK_NS;
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
