/*
 * table.c - index allocation and the writers' locate/insert (see table.h).
 */
#include "table.h"

#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>

/* Big indexes are probed at random: on 4 KiB pages nearly every probe also
 * misses the TLB. Ask for transparent huge pages (2 MiB) for them, unless
 * the store was opened with KV_HUGE_NEVER (kv.h). */
#define HUGE_PAGE ((size_t)2 << 20)
/* Tables from this size on are mapped on their own (mmap), not taken
 * from malloc's heap: a table is replaced by a new one at each resize,
 * and in a heap the small allocations made meanwhile would settle in the
 * hole an old table leaves, so that the next table no longer fits there
 * and the heap grows by one table per resize or two (a cache that evicts
 * rebuilds its tables over and over: its resident size crept up without
 * bound). munmap gives the memory back at once. With 32 segments each
 * growing through every size, a 128 KiB threshold left 4 MiB of freed
 * tables in the heap (64 MiB limit: 2% more resident); from 16 KiB on,
 * at most 16 KiB a segment, for a page of rounding per mapped table. */
#define MAP_FROM ((size_t)4 << 10)
#define PAGE ((size_t)4096)

static size_t map_bytes(size_t bytes)
{
    return (bytes + PAGE - 1) & ~(PAGE - 1);
}

static void *alloc_zeroed(size_t bytes, bool huge)
{
    void *p;
    if (bytes < MAP_FROM) {
        /* 64-byte aligned: the struct keeps hot fields on separate lines */
        if (posix_memalign(&p, 64, bytes) != 0)
            return NULL;
        return memset(p, 0, bytes);
    }
    /* Fresh anonymous pages are zero. Big ones start on a huge-page
     * boundary: map HUGE_PAGE more and unmap what is before and after. */
    size_t len = map_bytes(bytes), align = bytes >= 2 * HUGE_PAGE ? HUGE_PAGE : PAGE;
    size_t over = len + (align > PAGE ? align : 0);
    char *m = mmap(NULL, over, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    if (m == MAP_FAILED)
        return NULL;
    char *a = (char *)(((uintptr_t)m + align - 1) & ~(uintptr_t)(align - 1));
    if (a > m)
        munmap(m, (size_t)(a - m));
    if (m + over > a + len)
        munmap(a + len, (size_t)(m + over - (a + len)));
    if (align > PAGE) /* advice: may fail */
        madvise(a, len & ~(HUGE_PAGE - 1), huge ? MADV_HUGEPAGE : MADV_NOHUGEPAGE);
    return a;
}

kv__table *kv__table_new(unsigned bits, bool huge)
{
    size_t size = (size_t)1 << bits;
    kv__table *t = alloc_zeroed(sizeof *t + size * sizeof t->slots[0], huge);
    if (!t)
        return NULL;
    t->shift = 64 - KV__SEG_BITS - bits;
    t->mask = size - 1;
    t->grow_at = size / 4 * 3;
    return t;
}

void kv__table_free(void *table)
{
    kv__table *t = table;
    if (!t)
        return;
    size_t bytes = kv__table_footprint(t);
    if (bytes < MAP_FROM)
        free(t);
    else
        munmap(t, map_bytes(bytes));
}

void kv__table_retired_free(struct kv__slot *slot, void *table, size_t bytes)
{
    (void)slot;
    (void)bytes;
    kv__table_free(table);
}

size_t kv__table_footprint(const kv__table *t)
{
    return sizeof *t + kv__table_size(t) * sizeof t->slots[0];
}

bool kv__table_locate(kv__table *t, uint64_t hash, const void *key, size_t klen,
                      kv__loc *loc)
{
    if (kv__table_probe(t, hash, key, klen, loc))
        return true;
    *loc = (kv__loc){NULL, 0, 0};
    return false;
}

void kv__table_insert(kv__table *t, uint64_t hash, uintptr_t word, bool by_writer,
                      kv__loc *loc)
{
    for (;;) {
        kv__table *n;
        while ((n = atomic_load(&t->next)) != NULL)
            t = n;
        size_t i = kv__table_home(t, hash);
        for (;;) {
            uintptr_t v = atomic_load(&t->slots[i]);
            if (v == KV__SLOT_EMPTY || v == KV__SLOT_TOMB) {
                if (atomic_compare_exchange_strong(&t->slots[i], &v, word)) {
                    if (v == KV__SLOT_EMPTY)
                        atomic_fetch_add_explicit(&t->used, 1, memory_order_relaxed);
                    if (by_writer)
                        atomic_fetch_add_explicit(&t->inserted, 1, memory_order_relaxed);
                    *loc = (kv__loc){t, i, word};
                    return;
                }
                continue; /* lost the race for this slot: look at it again */
            }
            if (v == KV__SLOT_MOVED_EMPTY)
                break; /* this table is being migrated: use the next one */
            i = (i + 1) & t->mask;
        }
    }
}
