/*
 * slab.c - size-class allocator for items (see slab.h).
 */
#include "slab.h"

#include "kv.h"

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

/* Takes a batch of class cls from the depot into the empty list. */
static bool depot_take(kv__slab *slab, kv__slab_cache *cache, size_t cls)
{
    if (cls == 0 || !__atomic_load_n(&slab->depot[cls], __ATOMIC_RELAXED))
        return false; /* a racy peek: a miss only means carving a block */
    pthread_mutex_lock(&slab->lock);
    void *head = slab->depot[cls];
    if (head) {
        UNPOISON(batch_link(head), sizeof(void *));
        __atomic_store_n(&slab->depot[cls], *batch_link(head), __ATOMIC_RELAXED);
    }
    pthread_mutex_unlock(&slab->lock);
    if (!head)
        return false;
    POISON(batch_link(head), sizeof(void *));
    cache->free[cls] = head;
    cache->nfree[cls] = KV__SLAB_BATCH;
    return true;
}

/* Moves KV__SLAB_BATCH blocks of class cls from the list to the depot. */
static void depot_give(kv__slab_cache *cache, size_t cls)
{
    void *head = cache->free[cls], *last = head;
    for (unsigned i = 1; i < KV__SLAB_BATCH; i++) {
        UNPOISON(last, sizeof(void *));
        last = *(void **)last;
    }
    UNPOISON(last, sizeof(void *));
    cache->free[cls] = *(void **)last;
    *(void **)last = NULL;
    POISON(last, sizeof(void *));
    cache->nfree[cls] -= KV__SLAB_BATCH;
    kv__slab *slab = cache->slab;
    pthread_mutex_lock(&slab->lock);
    UNPOISON(batch_link(head), sizeof(void *));
    *batch_link(head) = slab->depot[cls];
    /* Poisoned before it is published: once the lock is released another
     * thread may take the batch and hand head out as a live item. */
    POISON(head, 2 * sizeof(void *));
    __atomic_store_n(&slab->depot[cls], head, __ATOMIC_RELAXED);
    pthread_mutex_unlock(&slab->lock);
}

void *kv__slab_alloc(kv__slab *slab, kv__slab_cache *cache, size_t size)
{
    size_t block = kv__slab_block(size ? size : 1);
    size_t cls = block / 8 - 1;
    cache->keep[cls] = slab->keep[cls];
    void *p = cache->free[cls];
    if (!p && depot_take(slab, cache, cls))
        p = cache->free[cls];
    if (p) {
        UNPOISON(p, sizeof(void *));
        cache->free[cls] = *(void **)p;
        if (cache->nfree[cls])
            cache->nfree[cls]--;
        /* Free blocks go cold between the free and their reuse; fetch the
         * next one now so the next allocation does not wait on its link.
         * (A read prefetch: the line may hold live items other cores read.) */
        __builtin_prefetch(cache->free[cls], 0);
        UNPOISON(p, block);
        return p;
    }
    if (cache->carve_left < block && !new_chunk(slab, cache))
        return NULL;
    p = cache->carve;
    cache->carve += block;
    cache->carve_left -= block;
    UNPOISON(p, block);
    return p;
}

void kv__slab_free(kv__slab_cache *cache, void *block, size_t size)
{
    size_t b = kv__slab_block(size ? size : 1);
    size_t cls = b / 8 - 1;
    *(void **)block = cache->free[cls];
    cache->free[cls] = block;
    POISON((char *)block + sizeof(void *), b - sizeof(void *));
    unsigned keep = cache->keep[cls] ? cache->keep[cls] : 2 * KV__SLAB_BATCH;
    if (++cache->nfree[cls] >= keep && cls > 0 && cache->slab)
        depot_give(cache, cls);
}
