/*
 * ebr.h - epoch-based reclamation: freeing memory that readers may still see.
 *
 * Readers bracket every access to shared objects with kv__ebr_pin/unpin.
 * Writers unlink an object first, then kv__ebr_retire() it; it is freed
 * once every thread that was in a read section at the time has left it.
 *
 * Algorithm (Fraser, "Practical lock-freedom", 2004, sec. 5.2.3): a global
 * epoch E; a pinned thread publishes the E it saw. E advances from e to e+1
 * only when every pinned thread has published e. An object retired while E
 * was r can be freed once E >= r + 2: every reader that could have seen it
 * has unpinned by then.
 *
 * Why not liburcu: Debian 12 ships liburcu 0.13, whose barriers
 * ThreadSanitizer cannot see, so the suite could not be checked under TSan.
 * This scheme uses only C11 atomics; tests/stress/ proves it under ASan/TSan.
 *
 * Pinning costs one atomic exchange on the thread's own cache line and never
 * waits. Only writers scan the slots, and only every KV__EBR_BATCH retires (or
 * KV__EBR_BATCH_BYTES of retired memory, so a retired index goes quickly).
 */
#ifndef KV_EBR_H
#define KV_EBR_H

#include <stdatomic.h>

#include "thread_slot.h"

#define KV__EBR_BATCH 256
#define KV__EBR_BATCH_BYTES ((size_t)1 << 20)

typedef struct kv__ebr {
    _Atomic uint64_t epoch;
    kv__slot_dir *slots;
} kv__ebr;

static inline void kv__ebr_pin(kv__ebr *ebr, kv__slot *s)
{
    if (s->nest++ > 0)
        return;
    /* seq_cst exchange: the published epoch is ordered before every load
     * of shared objects that follows (a full fence on x86). Re-check E so a
     * thread never stays published at an epoch older than the one it saw
     * last, which keeps advances from waiting on it needlessly. */
    uint64_t e = atomic_load(&ebr->epoch);
    for (;;) {
        atomic_exchange(&s->epoch, (e << 1) | 1);
        uint64_t now = atomic_load(&ebr->epoch);
        if (now == e)
            break;
        e = now;
    }
}

static inline void kv__ebr_unpin(kv__slot *s)
{
    if (--s->nest > 0)
        return;
    atomic_store_explicit(&s->epoch, 0, memory_order_release);
}

/* Makes room for n more retires so that kv__ebr_retire cannot fail later.
 * Call before changing anything. Returns 0 or KV_NO_MEMORY. */
int kv__ebr_reserve(kv__slot *s, size_t n);

/* Schedules free_fn(ptr) for when no reader can see ptr any more. ptr must
 * already be unreachable for new readers. Space must have been reserved. */
void kv__ebr_retire(kv__ebr *ebr, kv__slot *s, void *ptr,
                    void (*free_fn)(void *), size_t bytes);

/* Frees what this slot's retired list can free now, advancing the epoch if
 * possible. Call with no read section open on this thread. */
void kv__ebr_collect(kv__ebr *ebr, kv__slot *s);

/* Frees everything retired by any slot. Only for kv_close(). */
void kv__ebr_drain_all(kv__ebr *ebr);

#endif
