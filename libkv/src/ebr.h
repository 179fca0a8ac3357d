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
 * Pinning is asymmetric, as in liburcu's membarrier flavour: a reader
 * publishes its epoch with a plain store and a compiler barrier; the writer
 * that wants to advance the epoch first calls membarrier(2)
 * (MEMBARRIER_CMD_PRIVATE_EXPEDITED), which runs a full memory barrier on
 * every CPU running this process's threads, so every pin already stored is
 * visible to its scan. Kernels without it fall back to a seq_cst exchange
 * per pin. Readers write only their own slot and never wait. Writers scan
 * the slots only every KV__EBR_BATCH retires, KV__EBR_BATCH_SHARED while
 * other threads are in read sections (or KV__EBR_BATCH_BYTES of retired
 * memory, so a retired index goes quickly).
 *
 * Prompt freeing: an attempt advances E up to three times (r + 2 is
 * reachable at once when no reader holds it back; a change retires with
 * r = E + 1 at most: kv__ebr_retire), so a thread's big retires are freed
 * by the write that retired them. A thread that stops writing must not
 * hold its list forever: any thread may free from another thread's list
 * (kv_reclaim, and a collecting writer whose scan finds at least
 * KV__EBR_HELP_BYTES retired elsewhere). Each list is therefore guarded by
 * a per-slot spin lock (thread_slot.h): the owner takes it to append or
 * collect (uncontended: one atomic exchange), a helper only tries it and
 * skips a busy list, whose owner is active and collects by itself. A
 * writer helps with at most KV__EBR_HELP_SLICE entries of each list per
 * collection, so its own write never pays for a whole list (kv_reclaim
 * has no such bound: its caller asked for all of it). A
 * helper frees entries with its own slot (slab blocks join its cache), and
 * only entries with epoch + 2 <= E, the same rule as the owner.
 */
#ifndef KV_EBR_H
#define KV_EBR_H

#include <stdatomic.h>
#include <stdbool.h>

#include "thread_slot.h"

#define KV__EBR_BATCH 2048
#define KV__EBR_BATCH_SHARED 8192 /* the batch while other threads run (ebr.c) */
#define KV__EBR_BATCH_BYTES ((size_t)1 << 20)
#define KV__EBR_HELP_BYTES ((size_t)16 << 20)
#define KV__EBR_HELP_SLICE 4096 /* entries a writer frees per other list */

typedef struct kv__ebr {
    _Atomic uint64_t epoch;
    kv__slot_dir *slots;
} kv__ebr;

/* True when membarrier(2) does the readers' fencing (ebr.c). */
extern bool kv__ebr_asymmetric;

static inline void kv__ebr_pin(kv__ebr *ebr, kv__slot *s)
{
    if (s->nest++ > 0)
        return;
    /* Re-check E after publishing so a thread never stays published at an
     * epoch older than the one it saw last. */
    uint64_t e = atomic_load_explicit(&ebr->epoch, memory_order_relaxed);
    for (;;) {
        if (kv__ebr_asymmetric) {
            atomic_store_explicit(&s->epoch, (e << 1) | 1, memory_order_relaxed);
            atomic_signal_fence(memory_order_seq_cst);
        } else {
            atomic_exchange(&s->epoch, (e << 1) | 1);
        }
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

#if defined(__SANITIZE_THREAD__)
#define KV__TSAN 1
#elif defined(__has_feature)
#if __has_feature(thread_sanitizer)
#define KV__TSAN 1
#endif
#endif

/* A writer that unlinked objects with release stores calls this once,
 * before retiring them. Unpinned, retiring reads E, and that read must not
 * pass the unlinking stores (a reader pinned at E+1 could still be
 * reaching the object): one full fence per change instead of a
 * full-barrier store per unlink. Pinned (every change of kv__apply),
 * retiring reads no E and needs no fence: see kv__ebr_retire. GCC refuses
 * fences under ThreadSanitizer (which does not model this store-load order
 * anyway): there a sequentially consistent exchange on the slot's own word
 * does the same on the hardware. */
static inline void kv__ebr_unlinked(kv__slot *s)
{
    if (s->nest > 0)
        return;
#if defined(KV__TSAN)
    atomic_exchange(&s->fence_word, 0);
#else
    atomic_thread_fence(memory_order_seq_cst);
#endif
}

/* Sets kv__ebr_asymmetric once per process (called by kv_open). */
void kv__ebr_global_init(void);

/* Makes room for n more retires so that kv__ebr_retire cannot fail later.
 * Call before changing anything. Returns 0 or KV_NO_MEMORY. */
int kv__ebr_reserve(kv__slot *s, size_t n);

/* Schedules free_fn(slot, ptr, bytes) for when no reader can see ptr any
 * more. ptr must already be unreachable for new readers. Space must have
 * been reserved. bytes: what ptr takes (counted as retired memory, and
 * handed back, so that a free need not read a cold object for its size). */
void kv__ebr_retire(kv__ebr *ebr, kv__slot *s, void *ptr,
                    void (*free_fn)(kv__slot *, void *, size_t), size_t bytes);

/* Bytes retired on s's list and not yet freed (approximate: relaxed). */
size_t kv__ebr_slot_bytes(kv__slot *s);

/* A free_fn for memory from malloc. */
void kv__ebr_free_plain(kv__slot *s, void *ptr, size_t bytes);

/* Frees what this slot's retired list can free now, advancing the epoch if
 * possible (at most once per KV__EBR_BATCH retires, or
 * KV__EBR_BATCH_SHARED while other threads run, unless much memory
 * waits). Call with no read section open on this thread. */
void kv__ebr_collect(kv__ebr *ebr, kv__slot *s);

/* Frees whatever no reader can still see, from every slot's list (busy
 * lists are skipped), advancing the epoch as far as readers allow. self
 * is the calling thread's slot, with no read section open. Returns the
 * bytes still retired in all lists afterwards. */
size_t kv__ebr_reclaim_all(kv__ebr *ebr, kv__slot *self);

/* Frees everything retired by any slot. Only for kv_close(). */
void kv__ebr_drain_all(kv__ebr *ebr);

#endif
