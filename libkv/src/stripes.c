/*
 * stripes.c - lock stripes (see stripes.h).
 */
#include "stripes.h"

#include <linux/futex.h>
#include <stdlib.h>
#include <sys/syscall.h>
#include <time.h>
#include <unistd.h>

kv__stripe *kv__stripes_new(void)
{
    kv__stripe *s = aligned_alloc(64, KV__NSTRIPES * sizeof *s);
    if (!s)
        return NULL;
    for (unsigned i = 0; i < KV__NSTRIPES; i++) {
        atomic_init(&s[i].lock.state, 0);
        atomic_init(&s[i].lock.sleepers, 0);
        atomic_init(&s[i].seq, 0);
        atomic_init(&s[i].clock, 0);
    }
    return s;
}

void kv__stripes_free(kv__stripe *stripes)
{
    if (!stripes)
        return;
    free(stripes);
}

void kv__stripes_lock(kv__stripe *stripes, const unsigned *ids, size_t n)
{
    for (size_t i = 0; i < n; i++)
        kv__lock_take(&stripes[ids[i]].lock);
}

void kv__stripes_unlock(kv__stripe *stripes, const unsigned *ids, size_t n)
{
    for (size_t i = n; i-- > 0;)
        kv__lock_release(&stripes[ids[i]].lock);
}

void kv__stripes_barrier(kv__stripe *stripes)
{
    for (unsigned i = 0; i < KV__NSTRIPES; i++) {
        kv__lock_take(&stripes[i].lock);
        kv__lock_release(&stripes[i].lock);
    }
}

uint64_t kv__stripes_clock_max(kv__stripe *stripes)
{
    uint64_t max = 0;
    for (unsigned i = 0; i < KV__NSTRIPES; i++) {
        uint64_t c = kv__stripe_clock(stripes, i);
        if (c > max)
            max = c;
    }
    return max;
}

static inline void cpu_relax(void)
{
#if defined(__x86_64__) || defined(__i386__)
    __builtin_ia32_pause();
#elif defined(__aarch64__)
    __asm__ __volatile__("yield");
#endif
}

void kv__lock_wait(kv__lock *l)
{
    /* A short spin first: the holder is most likely running and about to
     * release (a stripe is held for one change). */
    for (int i = 0; i < 100; i++) {
        unsigned free_ = 0;
        if (atomic_load_explicit(&l->state, memory_order_relaxed) == 0 &&
            atomic_compare_exchange_weak_explicit(&l->state, &free_, 1, memory_order_acquire,
                                                  memory_order_relaxed))
            return;
        cpu_relax();
    }
    /* Then count in (a full barrier: a release after this sees it, but
     * for the store-load race of stripes.h) and sleep until woken, or a
     * nap's end. */
    atomic_fetch_add(&l->sleepers, 1);
    const struct timespec nap = {0, KV__LOCK_NAP_NS};
    for (;;) {
        unsigned free_ = 0;
        if (atomic_compare_exchange_strong_explicit(&l->state, &free_, 1, memory_order_acquire,
                                                    memory_order_relaxed))
            break;
        syscall(SYS_futex, &l->state, FUTEX_WAIT_PRIVATE, 1, &nap, NULL, 0);
    }
    atomic_fetch_sub(&l->sleepers, 1);
}

void kv__lock_wake(kv__lock *l)
{
    syscall(SYS_futex, &l->state, FUTEX_WAKE_PRIVATE, 1, NULL, NULL, 0);
}
