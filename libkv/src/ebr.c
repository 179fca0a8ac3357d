/*
 * ebr.c - epoch advance and the retired lists (see ebr.h for the scheme),
 * and kv_reclaim().
 */
#include "ebr.h"

#include <limits.h>
#include <linux/membarrier.h>
#include <pthread.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/syscall.h>
#include <unistd.h>

#include "kv.h"
#include "store.h"

bool kv__ebr_asymmetric;

static void global_init_once(void)
{
    /* Registration is per process and must precede the first use. */
    kv__ebr_asymmetric =
        syscall(SYS_membarrier, MEMBARRIER_CMD_REGISTER_PRIVATE_EXPEDITED, 0, 0) == 0;
}

void kv__ebr_global_init(void)
{
    static pthread_once_t once = PTHREAD_ONCE_INIT;
    pthread_once(&once, global_init_once);
}

/* ---- the list lock ----------------------------------------------------------
 * Test-and-test-and-set; acquire on taking, release on leaving, so a list
 * changed by one holder is seen whole by the next. Appending takes no
 * lock (thread_slot.h). */

static void limbo_lock(kv__slot *s)
{
    while (atomic_exchange_explicit(&s->limbo_busy, true, memory_order_acquire))
        while (atomic_load_explicit(&s->limbo_busy, memory_order_relaxed))
            ;
}

static bool limbo_trylock(kv__slot *s)
{
    return !atomic_load_explicit(&s->limbo_busy, memory_order_relaxed) &&
           !atomic_exchange_explicit(&s->limbo_busy, true, memory_order_acquire);
}

static void limbo_unlock(kv__slot *s)
{
    atomic_store_explicit(&s->limbo_busy, false, memory_order_release);
}

size_t kv__ebr_slot_bytes(kv__slot *s)
{
    size_t out = atomic_load_explicit(&s->limbo_out, memory_order_relaxed);
    size_t in = atomic_load_explicit(&s->limbo_in, memory_order_relaxed);
    return in > out ? in - out : 0;
}

/* ---- retiring ------------------------------------------------------------- */

int kv__ebr_reserve(kv__slot *s, size_t n)
{
    /* Frees only move the head forward: room seen here stays. */
    size_t tail = atomic_load_explicit(&s->limbo_tail, memory_order_relaxed);
    if (s->limbo_cap - (tail - atomic_load_explicit(&s->limbo_head, memory_order_acquire)) >= n)
        return KV_OK; /* most writes: no lock, no atomic read-modify-write */
    int rc = KV_OK;
    limbo_lock(s); /* no free runs while the ring moves */
    size_t head = atomic_load_explicit(&s->limbo_head, memory_order_relaxed);
    size_t used = tail - head;
    if (s->limbo_cap - used < n) {
        size_t cap = s->limbo_cap ? s->limbo_cap : 64;
        while (cap - used < n)
            cap *= 2;
        kv__retired *l = malloc(cap * sizeof *l);
        if (l) {
            for (size_t i = 0; i < used; i++)
                l[i] = s->limbo[(head + i) & (s->limbo_cap - 1)];
            free(s->limbo);
            s->limbo = l;
            s->limbo_cap = cap;
            atomic_store_explicit(&s->limbo_head, 0, memory_order_relaxed);
            atomic_store_explicit(&s->limbo_tail, used, memory_order_release);
        } else {
            rc = KV_NO_MEMORY;
        }
    }
    limbo_unlock(s);
    return rc;
}

void kv__ebr_free_plain(kv__slot *s, void *ptr, size_t bytes)
{
    (void)s;
    (void)bytes;
    free(ptr);
}

void kv__ebr_retire(kv__ebr *ebr, kv__slot *s, void *ptr,
                    void (*free_fn)(kv__slot *, void *, size_t),
                    size_t bytes)
{
    /* The retire epoch r must be at least that of every reader that can
     * still reach the object ("freed at E >= r + 2").
     * Pinned at p (a change of kv__apply: pinned from before its unlinking
     * stores until after this): E cannot pass p + 1 while the pin stands
     * (E moves from p + 1 only once every pinned thread has published
     * p + 1), so no reader that pinned before the unlink became visible
     * published more than p + 1, and one that pins later, after the pin
     * is gone and E has moved past it, reads E with acquire after the
     * advancer saw the unpin (release, after the unlink): it cannot find
     * the object. r = p + 1 then, with no load of the shared E and no
     * store-load fence: at most one epoch later than reading E would give.
     * Unpinned, the object is already unlinked and the caller fenced
     * (kv__ebr_unlinked): reading E now (seq_cst) is what makes it safe. */
    uint64_t e = s->nest > 0
                     ? (atomic_load_explicit(&s->epoch, memory_order_relaxed) >> 1) + 1
                     : atomic_load(&ebr->epoch);
    /* Reserved, so the ring has room; the owner alone moves the tail. */
    size_t tail = atomic_load_explicit(&s->limbo_tail, memory_order_relaxed);
    s->limbo[tail & (s->limbo_cap - 1)] = (kv__retired){ptr, free_fn, e, bytes};
    atomic_store_explicit(&s->limbo_tail, tail + 1, memory_order_release);
    atomic_store_explicit(&s->limbo_in,
                          atomic_load_explicit(&s->limbo_in, memory_order_relaxed) + bytes,
                          memory_order_relaxed);
    s->since_collect++;
}

/* ---- advancing ------------------------------------------------------------ */

struct scan_state {
    uint64_t epoch;
    bool blocked;
    size_t retired; /* bytes on all lists (approximate) */
    unsigned pinned; /* threads in a read section at the scan */
};

static void check_slot(kv__slot *s, void *ctx)
{
    struct scan_state *st = ctx;
    uint64_t v = atomic_load(&s->epoch);
    if ((v & 1) && (v >> 1) != st->epoch)
        st->blocked = true;
    st->pinned += (unsigned)(v & 1);
    st->retired += kv__ebr_slot_bytes(s);
}

/* Advances E by one if every pinned thread has seen the current E. Sets
 * *retired to the bytes retired on all lists and *pinned to the threads
 * found in a read section (either may be NULL). */
static uint64_t try_advance(kv__ebr *ebr, size_t *retired, unsigned *pinned)
{
    /* Make every reader's pin store visible before the scan (ebr.h). If
     * the call fails, treat the scan as blocked rather than guess. */
    if (kv__ebr_asymmetric &&
        syscall(SYS_membarrier, MEMBARRIER_CMD_PRIVATE_EXPEDITED, 0, 0) != 0)
        return atomic_load(&ebr->epoch);
    struct scan_state st = {atomic_load(&ebr->epoch), false, 0, 0};
    kv__slot_each(ebr->slots, check_slot, &st);
    if (retired)
        *retired = st.retired;
    if (pinned)
        *pinned = st.pinned;
    if (st.blocked)
        return st.epoch;
    uint64_t e = st.epoch;
    if (atomic_compare_exchange_strong(&ebr->epoch, &e, st.epoch + 1))
        return st.epoch + 1;
    return e; /* someone else advanced it */
}

/* Advances E toward need, at most three steps (each one a scan): an entry
 * retired pinned at p has r = p + 1 while E may still be p. */
static uint64_t advance_toward(kv__ebr *ebr, uint64_t need, size_t *retired, unsigned *pinned)
{
    uint64_t e = atomic_load(&ebr->epoch);
    for (int i = 0; i < 3 && e < need; i++) {
        uint64_t now = try_advance(ebr, retired, pinned);
        if (now == e)
            break; /* a reader holds it back */
        e = now;
    }
    return e;
}

/* ---- freeing -------------------------------------------------------------- */

/* Frees the entries of s's list (locked by the caller) retired at epoch
 * E - 2 or earlier, at most max of them, with the freeing thread's slot
 * self. */
static void free_safe(kv__slot *s, kv__slot *self, uint64_t e, size_t max)
{
    size_t head = atomic_load_explicit(&s->limbo_head, memory_order_relaxed);
    size_t tail = atomic_load_explicit(&s->limbo_tail, memory_order_acquire);
    size_t done = 0, bytes = 0, mask = s->limbo_cap - 1;
    /* The list is in retire order, so epochs never decrease along it. */
    while (head + done < tail && done < max && s->limbo[(head + done) & mask].epoch + 2 <= e) {
        const kv__retired *r = &s->limbo[(head + done) & mask];
        r->free_fn(self, r->ptr, r->bytes);
        bytes += r->bytes;
        done++;
    }
    if (done) {
        atomic_store_explicit(&s->limbo_head, head + done, memory_order_release);
        atomic_store_explicit(&s->limbo_out,
                              atomic_load_explicit(&s->limbo_out, memory_order_relaxed) + bytes,
                              memory_order_relaxed);
    }
}

/* The newest epoch on s's list (locked by the caller), or 0 if empty.
 * E need never go past it + 2, at most three steps from the current E. */
static uint64_t newest(kv__slot *s)
{
    size_t head = atomic_load_explicit(&s->limbo_head, memory_order_relaxed);
    size_t tail = atomic_load_explicit(&s->limbo_tail, memory_order_acquire);
    return tail != head ? s->limbo[(tail - 1) & (s->limbo_cap - 1)].epoch : 0;
}

struct help_state {
    kv__slot *self;
    uint64_t epoch;
    size_t max;  /* entries freed per list at most */
    size_t left; /* bytes still retired afterwards */
};

static void help_slot(kv__slot *s, void *ctx)
{
    struct help_state *h = ctx;
    if (s != h->self && kv__ebr_slot_bytes(s) && limbo_trylock(s)) {
        free_safe(s, h->self, h->epoch, h->max);
        limbo_unlock(s);
    }
    h->left += kv__ebr_slot_bytes(s);
}

/* Frees what is safe on every other list, at most max entries of each;
 * returns the bytes left on all. */
static size_t help_others(kv__ebr *ebr, kv__slot *self, uint64_t e, size_t max)
{
    struct help_state h = {self, e, max, 0};
    kv__slot_each(ebr->slots, help_slot, &h);
    return h.left;
}

void kv__ebr_collect(kv__ebr *ebr, kv__slot *s)
{
    /* An attempt costs up to three membarriers, each an interrupt on
     * every other CPU that runs one of the process's threads, so make one
     * per batch of retires, not one per write while the list waits; only
     * a lot of retired memory justifies more. The batch is KV__EBR_BATCH
     * retires while the thread writes alone, KV__EBR_BATCH_SHARED once the
     * last scan found another thread in a read section. Not always the
     * bigger: what a batch retires is what the slab hands out again, and
     * a bigger batch hands it out colder (a fixed 8192 made one thread's
     * 4-key multi-sets slower in a first try; this rule made two threads'
     * writes 2-12% faster and one thread's no slower:
     * bench/results/ebr-batch-1.txt). */
    size_t every = s->collect_every ? s->collect_every : KV__EBR_BATCH; /* 0: a new slot */
    if (s->since_collect < every && kv__ebr_slot_bytes(s) < KV__EBR_BATCH_BYTES)
        return;
    s->since_collect = 0;
    limbo_lock(s);
    uint64_t last = newest(s);
    limbo_unlock(s);
    uint64_t e = atomic_load(&ebr->epoch);
    size_t retired = 0;
    unsigned pinned = UINT_MAX;
    if (last && last + 2 > e)
        e = advance_toward(ebr, last + 2, &retired, &pinned);
    if (pinned != UINT_MAX) { /* it scanned: anyone else in a read section? */
        unsigned self = (unsigned)(atomic_load_explicit(&s->epoch, memory_order_relaxed) & 1);
        s->collect_every = pinned > self ? KV__EBR_BATCH_SHARED : KV__EBR_BATCH;
    }
    limbo_lock(s);
    free_safe(s, s, e, SIZE_MAX);
    limbo_unlock(s);
    /* Much memory waiting on other lists (threads that stopped writing):
     * free some of it here rather than leave it all to them; a slice, so
     * that a write never pays for another thread's whole list (a history
     * compaction can retire hundreds of MB at once). */
    if (retired >= KV__EBR_HELP_BYTES)
        help_others(ebr, s, e, KV__EBR_HELP_SLICE);
}

static void newest_slot(kv__slot *s, void *ctx)
{
    uint64_t *max = ctx;
    if (!kv__ebr_slot_bytes(s) || !limbo_trylock(s))
        return;
    uint64_t e = newest(s);
    limbo_unlock(s);
    if (e > *max)
        *max = e;
}

size_t kv__ebr_reclaim_all(kv__ebr *ebr, kv__slot *self)
{
    /* How far E must go to free every entry anywhere, then as far as
     * readers allow toward it (nothing retired: no scan, no membarrier). */
    uint64_t last = 0;
    kv__slot_each(ebr->slots, newest_slot, &last);
    uint64_t e = atomic_load(&ebr->epoch);
    if (last && last + 2 > e)
        e = advance_toward(ebr, last + 2, NULL, NULL);
    limbo_lock(self);
    free_safe(self, self, e, SIZE_MAX);
    limbo_unlock(self);
    return help_others(ebr, self, e, SIZE_MAX);
}

static void drain_slot(kv__slot *s, void *ctx)
{
    (void)ctx;
    size_t head = atomic_load(&s->limbo_head), tail = atomic_load(&s->limbo_tail);
    for (size_t i = head; i < tail; i++) {
        const kv__retired *r = &s->limbo[i & (s->limbo_cap - 1)];
        r->free_fn(s, r->ptr, r->bytes);
    }
    atomic_store(&s->limbo_head, tail);
    atomic_store(&s->limbo_out, atomic_load(&s->limbo_in));
}

void kv__ebr_drain_all(kv__ebr *ebr)
{
    kv__slot_each(ebr->slots, drain_slot, NULL);
}

/* ---- public ----------------------------------------------------------------- */

static void sum_bytes(kv__slot *s, void *ctx)
{
    *(size_t *)ctx += kv__ebr_slot_bytes(s);
}

int kv_reclaim(kv_store *store, uint64_t *retired_bytes)
{
    if (!store)
        return KV_INVALID_ARGUMENT;
    kv__slot *self = kv__slot_get(&store->slots);
    if (!self)
        return KV_NO_MEMORY;
    /* Inside a read section (a callback) E cannot pass this thread's pin;
     * freeing others' lists is still safe by the epoch rule, but keep the
     * contract simple: nothing happens there. */
    size_t left = 0;
    if (self->nest > 0)
        kv__slot_each(store->ebr.slots, sum_bytes, &left);
    else
        left = kv__ebr_reclaim_all(&store->ebr, self);
    if (retired_bytes)
        *retired_bytes = left;
    return KV_OK;
}
