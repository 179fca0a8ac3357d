/*
 * slab.h - the allocator for small items.
 *
 * malloc rounds every block up to a multiple of 16 bytes and adds an 8-byte
 * header: a typical item (12-byte header, 12-byte key, 64-byte value = 88
 * bytes) costs 96. Items are the bulk of the store's memory, so blocks of
 * up to KV__SLAB_MAX bytes come from this allocator instead: size classes 8
 * bytes apart, carved from 256 KiB chunks (2 MiB huge-page chunks once the
 * store is big, unless its memory limit is small: a huge page is resident
 * whole from its first block on), with no per-block header.
 *
 * Each thread keeps its own free blocks and carving position (in its thread
 * slot, thread_slot.h), so allocating and freeing take no lock; a lock is
 * taken only to record a new chunk. A thread's free blocks of a class are
 * a stack of pointers (an array, as jemalloc's thread caches keep them),
 * not a list linked through the blocks: a free block goes cold before it
 * is reused, and popping a list waits for the block's line to learn the
 * next one, one such wait after another when a multi-key change allocates
 * its items (two writers' 4-key multi-sets at 1M keys ran 1.22x faster
 * without them: bench/results/slab-stack-2.txt). The arrays cost 8 bytes
 * per free block. A block freed by another thread than the one that
 * allocated it joins the freeing thread's stack. So that memory freed by
 * a thread that does not allocate (the expiry thread, a thread that only
 * deletes) is not lost to the others, a thread whose stack of one size
 * class grows past 2 * KV__SLAB_BATCH blocks hands KV__SLAB_BATCH of them
 * to the slab's depot, and a thread whose stack is empty takes a batch from
 * the depot before carving new memory (the magazine and depot layers of
 * Bonwick and Adams, "Magazines and Vmem", USENIX 2001). A thread that
 * also allocates blocks of the class keeps up to KV__SLAB_KEEP of them
 * instead (fewer under a small memory limit: kv__slab_bound_keep): a
 * writer frees what it retired a batch at a time (ebr.h: up to 8192
 * blocks at once) and allocates them again over the next batch, and
 * through the depot every 64 of them went through a lock that every
 * writer takes (without it one writer's sets ran up to 12% faster, two
 * writers' 4-key multi-sets 13-19%: bench/results/slab-keep-1.txt).
 * Chunks are returned to the system when the store closes.
 *
 * Under AddressSanitizer free blocks are poisoned, so a use after free is
 * still caught.
 */
#ifndef KV_SLAB_H
#define KV_SLAB_H

#include <pthread.h>
#include <stdbool.h>
#include <stddef.h>

#define KV__SLAB_MAX 256u
#define KV__SLAB_CLASSES (KV__SLAB_MAX / 8)
#define KV__SLAB_CHUNK ((size_t)256 * 1024)
#define KV__SLAB_BIG_CHUNK ((size_t)2 << 20)
#define KV__SLAB_BIG_AFTER 8u
#define KV__SLAB_BATCH 64u /* blocks moved to or from the depot at once */
/* a class's free blocks a thread keeps once it allocates that class too:
 * twice the biggest batch a writer frees at once (KV__EBR_BATCH_SHARED) */
#define KV__SLAB_KEEP 16384u
#define KV__SLAB_AHEAD 4u /* how far ahead kv__slab_alloc prefetches a free block */

typedef struct kv__slab {
    pthread_mutex_t lock;
    void *chunks; /* list linked through each chunk's first word */
    size_t nchunks;
    /* chunks from which new chunks are 2 MiB (KV__SLAB_BIG_AFTER; a store
     * with a small memory limit never takes them: evict.c) */
    size_t big_after;
    int huge; /* kv_huge_pages: whether big chunks are advised (slab.c) */
    /* per class, the free blocks a thread that allocates the class keeps
     * (KV__SLAB_KEEP, less under a memory limit: kv__slab_bound_keep) */
    unsigned keep[KV__SLAB_CLASSES];
    /* under lock: batches of free blocks per class, each a list linked
     * through the blocks' first words, the batches linked through their
     * first block's second word (classes 1 and up: blocks of >= 16 bytes) */
    void *depot[KV__SLAB_MAX / 8];
} kv__slab;

/* One thread's free blocks (owner only). */
typedef struct kv__slab_cache {
    /* per class (class c: blocks of 8 * (c + 1) bytes), a stack of free
     * blocks: nfree of them in an array of cap (malloc'ed) */
    void **free[KV__SLAB_CLASSES];
    unsigned nfree[KV__SLAB_CLASSES];
    unsigned cap[KV__SLAB_CLASSES];
    /* 2 * KV__SLAB_BATCH, or the slab's keep once this thread allocated
     * from the class (0: not set yet, the same as the former) */
    unsigned keep[KV__SLAB_CLASSES];
    kv__slab *slab; /* the depot to give long lists to (set with the slot) */
    char *carve;
    size_t carve_left;
} kv__slab_cache;

static inline bool kv__slab_fits(size_t size)
{
    return size <= KV__SLAB_MAX;
}

/* The bytes a block of this size really takes. */
static inline size_t kv__slab_block(size_t size)
{
    return (size + 7) & ~(size_t)7;
}

/* huge: kv_huge_pages, whether big chunks are advised to be huge pages. */
void kv__slab_init(kv__slab *slab, int huge);
/* Bounds what a thread keeps of each class to about bytes (at least
 * 2 * KV__SLAB_BATCH blocks): a store under a memory limit keeps no more
 * than a writer's count may drift from it (evict.h). */
void kv__slab_bound_keep(kv__slab *slab, size_t bytes);
/* Frees every chunk: all blocks die with them. */
void kv__slab_destroy(kv__slab *slab);

/* A block of size bytes (size <= KV__SLAB_MAX), 8-byte aligned, or NULL. */
void *kv__slab_alloc(kv__slab *slab, kv__slab_cache *cache, size_t size);
/* Returns a block of size bytes to cache's stacks (and a batch of its
 * stacks to cache->slab's depot when they are long). */
void kv__slab_free(kv__slab_cache *cache, void *block, size_t size);
/* Frees cache's stacks (the blocks on them stay in the slab's chunks). */
void kv__slab_cache_release(kv__slab_cache *cache);

#endif
