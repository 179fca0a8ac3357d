/*
 * thread_slot.c - thread ids and the per-store directory of thread slots.
 *
 * Thread ids come from one process-wide registry: a mutex-protected stack
 * of free ids, refilled by a pthread key destructor when a thread exits.
 * The mutex is taken once per thread lifetime, never on an operation.
 */
#include "thread_slot.h"

#include <pthread.h>
#include <stdlib.h>
#include <string.h>

static pthread_mutex_t registry_lock = PTHREAD_MUTEX_INITIALIZER;
static pthread_once_t registry_once = PTHREAD_ONCE_INIT;
static pthread_key_t registry_key;
static int *free_ids;
static size_t nfree, free_cap;
static _Atomic int next_id; /* ids handed out so far; changed under the lock */

static _Thread_local int my_id = -1;

static void raise_hint(kv__slot_dir *dir, unsigned c);

static void release_id(void *arg)
{
    int id = (int)(intptr_t)arg - 1;
    /* Runs on the exiting thread: should it use libkv again (from another
     * destructor), it must take a fresh id, not share this one. */
    my_id = -1;

    pthread_mutex_lock(&registry_lock);
    if (nfree == free_cap) {
        size_t cap = free_cap ? free_cap * 2 : 64;
        int *ids = realloc(free_ids, cap * sizeof *ids);
        if (!ids) { /* the id is lost, which only wastes one slot */
            pthread_mutex_unlock(&registry_lock);
            return;
        }
        free_ids = ids;
        free_cap = cap;
    }
    free_ids[nfree++] = id;
    pthread_mutex_unlock(&registry_lock);
}

static void registry_init(void)
{
    pthread_key_create(&registry_key, release_id);
}

int kv__thread_id(void)
{
    if (my_id >= 0)
        return my_id;
    pthread_once(&registry_once, registry_init);
    pthread_mutex_lock(&registry_lock);
    int id = -1;
    if (nfree > 0)
        id = free_ids[--nfree];
    else if (next_id < (int)(KV__SLOTS_PER_CHUNK * KV__MAX_CHUNKS))
        id = next_id++;
    pthread_mutex_unlock(&registry_lock);
    if (id < 0)
        return -1;
    /* The key's value is id + 1 because a NULL value runs no destructor. */
    if (pthread_setspecific(registry_key, (void *)(intptr_t)(id + 1)) != 0) {
        release_id((void *)(intptr_t)(id + 1));
        return -1;
    }
    my_id = id;
    return id;
}

unsigned kv__thread_bound(void)
{
    return (unsigned)atomic_load_explicit(&next_id, memory_order_relaxed);
}

kv__slot *kv__slot_get(kv__slot_dir *dir)
{
    int id = kv__thread_id();
    if (id < 0)
        return NULL;
    unsigned c = (unsigned)id / KV__SLOTS_PER_CHUNK;
    kv__slot *chunk = atomic_load_explicit(&dir->chunks[c], memory_order_acquire);
    if (!chunk) {
        kv__slot *fresh = aligned_alloc(64, KV__SLOTS_PER_CHUNK * sizeof *fresh);
        if (!fresh)
            return NULL;
        memset(fresh, 0, KV__SLOTS_PER_CHUNK * sizeof *fresh);
        for (unsigned i = 0; i < KV__SLOTS_PER_CHUNK; i++)
            fresh[i].cache.slab = dir->slab;
        kv__slot *expected = NULL;
        if (atomic_compare_exchange_strong_explicit(&dir->chunks[c], &expected, fresh,
                                                    memory_order_acq_rel,
                                                    memory_order_acquire)) {
            chunk = fresh;
        } else {
            free(fresh);
            chunk = expected;
        }
    }
    /* Whoever allocated the chunk may not have raised the hint yet: make
     * sure it covers this slot before the caller can pin in it (seq_cst, so
     * an epoch scan that starts after that pin is sure to see the chunk). */
    if (atomic_load_explicit(&dir->nchunks_hint, memory_order_relaxed) < c + 1)
        raise_hint(dir, c);
    return &chunk[(unsigned)id % KV__SLOTS_PER_CHUNK];
}

static void raise_hint(kv__slot_dir *dir, unsigned c)
{
    unsigned hint = atomic_load(&dir->nchunks_hint);
    while (hint < c + 1 && !atomic_compare_exchange_weak(&dir->nchunks_hint, &hint, c + 1))
        ;
}

void kv__slot_each(kv__slot_dir *dir, void (*fn)(kv__slot *, void *), void *ctx)
{
    unsigned n = atomic_load(&dir->nchunks_hint);
    for (unsigned c = 0; c < n; c++) {
        kv__slot *chunk = atomic_load_explicit(&dir->chunks[c], memory_order_acquire);
        if (!chunk)
            continue;
        for (unsigned i = 0; i < KV__SLOTS_PER_CHUNK; i++)
            fn(&chunk[i], ctx);
    }
}

void kv__slot_dir_free(kv__slot_dir *dir)
{
    for (unsigned c = 0; c < KV__MAX_CHUNKS; c++) {
        kv__slot *chunk = atomic_load_explicit(&dir->chunks[c], memory_order_relaxed);
        if (!chunk)
            continue;
        for (unsigned i = 0; i < KV__SLOTS_PER_CHUNK; i++) {
            free(chunk[i].limbo);
            kv__slab_cache_release(&chunk[i].cache);
        }
        free(chunk);
    }
}
