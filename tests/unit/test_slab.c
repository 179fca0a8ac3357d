/*
 * test_slab.c - the item allocator's per-thread stacks, white-box (slab.h):
 * a thread that only frees blocks of a size class hands all but
 * 2 * KV__SLAB_BATCH of them to the depot, where other threads find them;
 * a thread that also allocates the class keeps up to KV__SLAB_KEEP (the
 * blocks a writer frees a batch at a time and allocates again), and hands
 * the rest to the depot; under a memory limit it keeps less (kv__slab_bound_keep);
 * and a block comes back from a stack or the depot once, the last freed first.
 */
#include "kvtest.h"
#include "slab.h"

#if defined(__SANITIZE_ADDRESS__)
#include <sanitizer/asan_interface.h>
#define UNPOISON(p, n) ASAN_UNPOISON_MEMORY_REGION((p), (n))
#define POISON(p, n) ASAN_POISON_MEMORY_REGION((p), (n))
#else
#define UNPOISON(p, n) ((void)(p), (void)(n))
#define POISON(p, n) ((void)(p), (void)(n))
#endif

#define SIZE 96u
#define CLS (SIZE / 8 - 1)

/* Blocks in the depot's batches of class CLS. */
static size_t depot_blocks(kv__slab *slab)
{
    size_t n = 0;
    for (void *b = slab->depot[CLS]; b;) {
        n += KV__SLAB_BATCH;
        UNPOISON(b, 2 * sizeof(void *)); /* a free block: poisoned */
        void *next = ((void **)b)[1];
        POISON(b, 2 * sizeof(void *));
        b = next;
    }
    return n;
}

static void **alloc_n(kv__slab *slab, kv__slab_cache *c, size_t n)
{
    void **v = malloc(n * sizeof *v);
    cr_assert_not_null(v);
    for (size_t i = 0; i < n; i++) {
        v[i] = kv__slab_alloc(slab, c, SIZE);
        cr_assert_not_null(v[i]);
        memset(v[i], 0xab, SIZE);
    }
    return v;
}

static void free_n(kv__slab_cache *c, void **v, size_t n)
{
    for (size_t i = 0; i < n; i++)
        kv__slab_free(c, v[i], SIZE);
    free(v);
}

Test(slab, a_thread_that_only_frees_hands_its_blocks_to_the_depot)
{
    kv__slab slab;
    kv__slab_init(&slab, KV_HUGE_NEVER);
    kv__slab_cache writer = {.slab = &slab}, deleter = {.slab = &slab};
    size_t n = 3000;
    void **v = alloc_n(&slab, &writer, n);
    free_n(&deleter, v, n);
    cr_assert_lt(deleter.nfree[CLS], 2 * KV__SLAB_BATCH, "the deleter kept %u blocks",
                 deleter.nfree[CLS]);
    cr_assert_eq(deleter.nfree[CLS] + depot_blocks(&slab), n);

    /* Another thread with an empty list takes them from the depot, rather
     * than carving new memory. */
    kv__slab_cache other = {.slab = &slab};
    char *carve_before = other.carve;
    void *p = kv__slab_alloc(&slab, &other, SIZE);
    cr_assert_not_null(p);
    cr_assert_eq(other.carve, carve_before, "a new block was carved: the depot was not used");
    cr_assert_eq(other.nfree[CLS], KV__SLAB_BATCH - 1);
    kv__slab_free(&other, p, SIZE);
    kv__slab_cache_release(&writer);
    kv__slab_cache_release(&deleter);
    kv__slab_cache_release(&other);
    kv__slab_destroy(&slab);
}

Test(slab, a_writer_keeps_what_it_frees_up_to_its_bound)
{
    kv__slab slab;
    kv__slab_init(&slab, KV_HUGE_NEVER);
    kv__slab_cache writer = {.slab = &slab};

    /* A batch of retires freed at once: all of it stays on the list that
     * will hand it out again. */
    size_t n = 3000;
    free_n(&writer, alloc_n(&slab, &writer, n), n);
    cr_assert_eq(writer.nfree[CLS], n);
    cr_assert_eq(depot_blocks(&slab), 0, "%zu blocks went to the depot", depot_blocks(&slab));

    /* More than its bound: the rest goes to the depot, for the others. */
    size_t m = KV__SLAB_KEEP + 1000;
    free_n(&writer, alloc_n(&slab, &writer, m), m);
    cr_assert_lt(writer.nfree[CLS], KV__SLAB_KEEP, "kept %u blocks", writer.nfree[CLS]);
    cr_assert_geq(writer.nfree[CLS], KV__SLAB_KEEP - KV__SLAB_BATCH);
    cr_assert_eq(writer.nfree[CLS] + depot_blocks(&slab), m,
                 "every block is on the stack or in the depot");
    kv__slab_cache_release(&writer);
    kv__slab_destroy(&slab);
}

Test(slab, under_a_memory_limit_a_writer_keeps_less)
{
    kv__slab slab;
    kv__slab_init(&slab, KV_HUGE_NEVER);
    size_t bytes = ((size_t)32 << 20) / 1024; /* a 32 MiB limit's share (evict.c) */
    kv__slab_bound_keep(&slab, bytes);
    kv__slab_cache writer = {.slab = &slab};
    size_t n = 3000;
    free_n(&writer, alloc_n(&slab, &writer, n), n);
    cr_assert_lt(writer.nfree[CLS], bytes / SIZE,
                 "kept %u blocks of %u bytes under a %zu-byte bound", writer.nfree[CLS], SIZE,
                 bytes);
    cr_assert_eq(writer.nfree[CLS] + depot_blocks(&slab), n);

    /* Never below what a thread that only frees keeps. */
    kv__slab_bound_keep(&slab, 0);
    cr_assert_eq(slab.keep[CLS], 2 * KV__SLAB_BATCH);
    kv__slab_cache_release(&writer);
    kv__slab_destroy(&slab);
}

static int ptr_cmp(const void *a, const void *b)
{
    uintptr_t x = (uintptr_t) * (void *const *)a, y = (uintptr_t) * (void *const *)b;
    return x < y ? -1 : x > y;
}

Test(slab, every_freed_block_comes_back_once_the_last_freed_first)
{
    kv__slab slab;
    kv__slab_init(&slab, KV_HUGE_NEVER);
    kv__slab_cache writer = {.slab = &slab}, deleter = {.slab = &slab};

    /* On one thread's stack: last freed, first handed out. */
    void **v = alloc_n(&slab, &writer, 3);
    void *a = v[0], *b = v[1], *c = v[2];
    free_n(&writer, v, 3);
    cr_assert_eq(kv__slab_alloc(&slab, &writer, SIZE), c);
    cr_assert_eq(kv__slab_alloc(&slab, &writer, SIZE), b);
    cr_assert_eq(kv__slab_alloc(&slab, &writer, SIZE), a);

    /* Through the depot: a thread that only frees gives batches away;
     * another takes them all back. Each block exactly once. */
    size_t n = 20 * KV__SLAB_BATCH;
    v = alloc_n(&slab, &writer, n);
    void **freed = malloc(n * sizeof *freed);
    cr_assert_not_null(freed);
    memcpy(freed, v, n * sizeof *freed);
    free_n(&deleter, v, n);
    size_t kept = deleter.nfree[CLS], given = depot_blocks(&slab);
    cr_assert_eq(kept + given, n);
    kv__slab_cache other = {.slab = &slab};
    void **got = malloc(given * sizeof *got);
    cr_assert_not_null(got);
    char *carve_before = other.carve;
    for (size_t i = 0; i < given; i++)
        got[i] = kv__slab_alloc(&slab, &other, SIZE);
    cr_assert_eq(other.carve, carve_before, "a block was carved while the depot had some");
    cr_assert_eq(depot_blocks(&slab), 0);
    qsort(freed, n, sizeof *freed, ptr_cmp);
    qsort(got, given, sizeof *got, ptr_cmp);
    for (size_t i = 0; i < given; i++) {
        cr_assert(i == 0 || got[i] != got[i - 1], "block %p handed out twice", got[i]);
        cr_assert_not_null(bsearch(&got[i], freed, n, sizeof *freed, ptr_cmp),
                           "block %p was never freed", got[i]);
    }
    free(got);
    free(freed);
    kv__slab_cache_release(&writer);
    kv__slab_cache_release(&deleter);
    kv__slab_cache_release(&other);
    kv__slab_destroy(&slab);
}
