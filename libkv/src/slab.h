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
 * Each thread keeps its own free lists and carving position (in its thread
 * slot, thread_slot.h), so allocating and freeing take no lock; a lock is
 * taken only to record a new chunk. A block freed by another thread than the
 * one that allocated it joins that thread's lists. So that memory freed by
 * a thread that does not allocate (the expiry thread, a thread that only
 * deletes) is not lost to the others, a thread whose list of one size
 * class grows past 2 * KV__SLAB_BATCH blocks hands KV__SLAB_BATCH of them
 * to the slab's depot, and a thread whose list is empty takes a batch from
 * the depot before carving new memory (the magazine and depot layers of
 * Bonwick and Adams, "Magazines and Vmem", USENIX 2001). Chunks are
 * returned to the system when the store closes.
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

typedef struct kv__slab {
    pthread_mutex_t lock;
    void *chunks; /* list linked through each chunk's first word */
    size_t nchunks;
    /* chunks from which new chunks are 2 MiB (KV__SLAB_BIG_AFTER; a store
     * with a small memory limit never takes them: evict.c) */
    size_t big_after;
    int huge; /* kv_huge_pages: whether big chunks are advised (slab.c) */
    /* under lock: batches of free blocks per class, each a list linked
     * through the blocks' first words, the batches linked through their
     * first block's second word (classes 1 and up: blocks of >= 16 bytes) */
    void *depot[KV__SLAB_MAX / 8];
} kv__slab;

/* One thread's lists (owner only). */
typedef struct kv__slab_cache {
    void *free[KV__SLAB_CLASSES]; /* class c holds blocks of 8 * (c + 1) */
    unsigned nfree[KV__SLAB_CLASSES];
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
/* Frees every chunk: all blocks die with them. */
void kv__slab_destroy(kv__slab *slab);

/* A block of size bytes (size <= KV__SLAB_MAX), 8-byte aligned, or NULL. */
void *kv__slab_alloc(kv__slab *slab, kv__slab_cache *cache, size_t size);
/* Returns a block of size bytes to cache's lists (and a batch of its
 * lists to cache->slab's depot when they are long). */
void kv__slab_free(kv__slab_cache *cache, void *block, size_t size);

#endif
