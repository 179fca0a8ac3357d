/*
 * slab.c - size-class allocator for items (see slab.h).
 */
#include "slab.h"

#include "kv.h"

#include <limits.h>
#include <stdint.h>
#include <stdlib.h>
#include <sys/mman.h>

#if defined(__SANITIZE_ADDRESS__)
#include <sanitizer/asan_interface.h>
#define POISON(p, n) ASAN_POISON_MEMORY_REGION((p), (n))
#define UNPOISON(p, n) ASAN_UNPOISON_MEMORY_REGION((p), (n))
#else
#define POISON(p, n) ((void)(p), (void)(n))
#define UNPOISON(p, n) ((void)(p), (void)(n))
#endif

/* Room at the start of each chunk for the list link: a whole cache line,
 * so that blocks are carved from a line boundary. With 16 bytes there,
 * every block whose size is a multiple of 32 (96, 128, 192...) started 16
 * bytes into a line and its header and key straddled two lines in half or
 * all of the items: one more cache miss per read (bench/evict getbench). */
#define CHUNK_HEADER 64u

void kv__slab_init(kv__slab *slab, int huge)
{
    pthread_mutex_init(&slab->lock, NULL);
    slab->chunks = NULL;
    slab->nchunks = 0;
    slab->big_after = KV__SLAB_BIG_AFTER;
    slab->huge = huge;
    for (size_t c = 0; c < KV__SLAB_CLASSES; c++) {
        slab->depot[c] = NULL;
        slab->keep[c] = KV__SLAB_KEEP;
    }
}

void kv__slab_bound_keep(kv__slab *slab, size_t bytes)
{
    for (size_t c = 0; c < KV__SLAB_CLASSES; c++) {
        size_t n = bytes / (8 * (c + 1));
        if (n < 2 * KV__SLAB_BATCH)
            n = 2 * KV__SLAB_BATCH;
        slab->keep[c] = n < KV__SLAB_KEEP ? (unsigned)n : KV__SLAB_KEEP;
    }
}

void kv__slab_destroy(kv__slab *slab)
{
    void *c = slab->chunks;
    while (c) {
        UNPOISON(c, CHUNK_HEADER); /* the rest is never read again */
        void *next = *(void **)c;
        free(c);
        c = next;
    }
    slab->chunks = NULL;
    pthread_mutex_destroy(&slab->lock);
}

/* A big store's items are read at random, like its index (table.c): once
 * the slab holds KV__SLAB_BIG_AFTER chunks, new chunks are 2 MiB, aligned
 * and (KV_HUGE_EAGER, kv.h) advised to be transparent huge pages, so item
 * reads stop missing the TLB. The price is the first touch of each: 2 MiB
 * of faults at once, in the writer that carves its first block
 * (bench/results/slab-huge-1.txt: 3 ms on the benchmarks' VM; a helper
 * thread that faulted the next chunk in ahead did not help there, where
 * the server has one CPU and the stall is that CPU's, in the host).
 * Small stores keep small chunks and small footprints. */
static char *chunk_alloc(size_t nchunks, size_t big_after, int huge, size_t *size)
{
    if (nchunks < big_after) {
        *size = KV__SLAB_CHUNK;
        void *p;
        return posix_memalign(&p, 64, KV__SLAB_CHUNK) == 0 ? p : NULL;
    }
    void *p;
    if (posix_memalign(&p, KV__SLAB_BIG_CHUNK, KV__SLAB_BIG_CHUNK) != 0)
        return NULL;
    /* (NOHUGEPAGE: where THP is "always", the kernel would otherwise
     * fault huge pages in on its own) advice: may fail */
    madvise(p, KV__SLAB_BIG_CHUNK, huge == KV_HUGE_EAGER ? MADV_HUGEPAGE : MADV_NOHUGEPAGE);
    *size = KV__SLAB_BIG_CHUNK;
    return p;
}

static bool new_chunk(kv__slab *slab, kv__slab_cache *cache)
{
    pthread_mutex_lock(&slab->lock);
    size_t size;
    char *c = chunk_alloc(slab->nchunks, slab->big_after, slab->huge, &size);
    if (c) {
        *(void **)c = slab->chunks;
        slab->chunks = c;
        slab->nchunks++;
    }
    pthread_mutex_unlock(&slab->lock);
    if (!c)
        return false;
    /* The tail of the old carving region is too small for this request;
     * hand it to the free list of the class it fits, not to waste it. */
    if (cache->carve_left >= 8) {
        size_t cls = cache->carve_left / 8 - 1;
        if (cls >= KV__SLAB_CLASSES)
            cls = KV__SLAB_CLASSES - 1;
        UNPOISON(cache->carve, sizeof(void *));
        kv__slab_free(cache, cache->carve, 8 * (cls + 1));
    }
    cache->carve = c + CHUNK_HEADER;
    cache->carve_left = size - CHUNK_HEADER;
    POISON(cache->carve, cache->carve_left);
    return true;
}

/* The second word of a batch's first block links the depot's batches. */
static void **batch_link(void *head)
{
    return (void **)head + 1;
}

/* Makes room for at least want blocks on the stack of class cls: doubles
 * it, from 2 * KV__SLAB_BATCH. False if out of memory. */
static bool stack_grow(kv__slab_cache *cache, size_t cls, unsigned want)
{
    unsigned cap = cache->cap[cls] ? cache->cap[cls] : 2 * KV__SLAB_BATCH;
    while (cap < want) {
        if (cap > UINT_MAX / 2)
            return false;
        cap *= 2;
    }
    if (cap <= cache->cap[cls])
        return true;
    void **v = realloc(cache->free[cls], cap * sizeof *v);
    if (!v)
        return false;
    cache->free[cls] = v;
    cache->cap[cls] = cap;
    return true;
}

/* Takes a batch of class cls from the depot onto the empty stack. */
static bool depot_take(kv__slab *slab, kv__slab_cache *cache, size_t cls)
{
    if (cls == 0 || !__atomic_load_n(&slab->depot[cls], __ATOMIC_RELAXED))
        return false; /* a racy peek: a miss only means carving a block */
    if (!stack_grow(cache, cls, KV__SLAB_BATCH))
        return false;
    pthread_mutex_lock(&slab->lock);
    void *head = slab->depot[cls];
    if (head) {
        UNPOISON(batch_link(head), sizeof(void *));
        __atomic_store_n(&slab->depot[cls], *batch_link(head), __ATOMIC_RELAXED);
    }
    pthread_mutex_unlock(&slab->lock);
    if (!head)
        return false;
    /* Pushed last to first, so that they are handed out in list order. */
    void **stack = cache->free[cls];
    void *b = head;
    for (unsigned i = KV__SLAB_BATCH; i-- > 0;) {
        UNPOISON(b, sizeof(void *));
        stack[i] = b;
        void *next = *(void **)b;
        POISON(b, 2 * sizeof(void *));
        b = next;
    }
    cache->nfree[cls] = KV__SLAB_BATCH;
    return true;
}

/* Moves the top KV__SLAB_BATCH blocks of class cls's stack to the depot,
 * as a list linked through their first words. */
static void depot_give(kv__slab_cache *cache, size_t cls)
{
    void **top = cache->free[cls] + cache->nfree[cls] - KV__SLAB_BATCH;
    for (unsigned i = 0; i < KV__SLAB_BATCH; i++) {
        UNPOISON(top[i], 2 * sizeof(void *));
        *(void **)top[i] = i + 1 < KV__SLAB_BATCH ? top[i + 1] : NULL;
    }
    cache->nfree[cls] -= KV__SLAB_BATCH;
    void *head = top[0];
    kv__slab *slab = cache->slab;
    pthread_mutex_lock(&slab->lock);
    *batch_link(head) = slab->depot[cls];
    /* Poisoned before it is published: once the lock is released another
     * thread may take the batch and hand head out as a live item. */
    POISON(batch_link(head), sizeof(void *));
    __atomic_store_n(&slab->depot[cls], head, __ATOMIC_RELAXED);
    pthread_mutex_unlock(&slab->lock);
}

void *kv__slab_alloc(kv__slab *slab, kv__slab_cache *cache, size_t size)
{
    size_t block = kv__slab_block(size ? size : 1);
    size_t cls = block / 8 - 1;
    cache->keep[cls] = slab->keep[cls];
    unsigned n = cache->nfree[cls];
    if (!n && depot_take(slab, cache, cls))
        n = cache->nfree[cls];
    if (n) {
        void **stack = cache->free[cls];
        void *p = stack[--n];
        cache->nfree[cls] = n;
        /* Free blocks go cold between the free and their reuse; start
         * fetching the one KV__SLAB_AHEAD allocations on now (a multi-key
         * change allocates its items back to back). A read prefetch: the
         * line may hold live items other cores read. */
        if (n >= KV__SLAB_AHEAD)
            __builtin_prefetch(stack[n - KV__SLAB_AHEAD], 0);
        UNPOISON(p, block);
        return p;
    }
    if (cache->carve_left < block && !new_chunk(slab, cache))
        return NULL;
    void *p = cache->carve;
    cache->carve += block;
    cache->carve_left -= block;
    UNPOISON(p, block);
    return p;
}

void kv__slab_free(kv__slab_cache *cache, void *block, size_t size)
{
    size_t b = kv__slab_block(size ? size : 1);
    size_t cls = b / 8 - 1;
    POISON(block, b);
    bool depot = cls > 0 && cache->slab;
    unsigned keep = cache->keep[cls] ? cache->keep[cls] : 2 * KV__SLAB_BATCH;
    if (depot && cache->nfree[cls] >= keep)
        depot_give(cache, cls);
    if (cache->nfree[cls] == cache->cap[cls] && !stack_grow(cache, cls, cache->nfree[cls] + 1)) {
        if (depot && cache->nfree[cls] >= KV__SLAB_BATCH) {
            depot_give(cache, cls);
        } else {
            /* Out of memory for the stack, and too few blocks for the
             * depot: the block stays in its chunk, unused until the store
             * closes (freeing cannot fail). */
            return;
        }
    }
    cache->free[cls][cache->nfree[cls]++] = block;
}

void kv__slab_cache_release(kv__slab_cache *cache)
{
    for (size_t c = 0; c < KV__SLAB_CLASSES; c++) {
        free(cache->free[c]);
        cache->free[c] = NULL;
        cache->nfree[c] = cache->cap[c] = 0;
    }
}
