/*
 * arena.c - kv_proto_arena, bump allocation for decoded arrays, and the
 * decoders' allocation helper (caller's arena, or a private one).
 *
 * A server decodes a batch of requests into one arena and resets it after
 * the batch is answered: no per-request malloc/free. Reset keeps a single
 * chunk as large as everything the last round used, so memory use settles
 * after the first batches.
 */
#include <stdalign.h>
#include <stddef.h>
#include <stdlib.h>

#include "proto_internal.h"

#define ARENA_ALIGN (alignof(max_align_t))
#define ARENA_MIN_CHUNK ((size_t)4096)

struct kv__proto_chunk {
    struct kv__proto_chunk *next;
    size_t size; /* usable bytes in data */
    size_t used;
    alignas(max_align_t) unsigned char data[];
};

void kv_proto_arena_init(kv_proto_arena *a)
{
    a->chunks = NULL;
    a->total = 0;
}

static void free_chunks(struct kv__proto_chunk *c)
{
    while (c != NULL) {
        struct kv__proto_chunk *next = c->next;
        free(c);
        c = next;
    }
}

static struct kv__proto_chunk *new_chunk(size_t size)
{
    if (size > SIZE_MAX - sizeof(struct kv__proto_chunk))
        return NULL;
    struct kv__proto_chunk *c = malloc(sizeof *c + size);
    if (c == NULL)
        return NULL;
    c->next = NULL;
    c->size = size;
    c->used = 0;
    return c;
}

void kv_proto_arena_free(kv_proto_arena *a)
{
    if (a == NULL)
        return;
    free_chunks(a->chunks);
    kv_proto_arena_init(a);
}

void kv_proto_arena_reset(kv_proto_arena *a)
{
    struct kv__proto_chunk *c = a->chunks;
    if (c != NULL && c->next == NULL) {
        c->used = 0;
    } else if (c != NULL) {
        size_t want = a->total;
        free_chunks(c);
        a->chunks = new_chunk(want < ARENA_MIN_CHUNK ? ARENA_MIN_CHUNK : want);
    }
    a->total = 0;
}

void *kv_proto_arena_alloc(kv_proto_arena *a, size_t size)
{
    if (size > SIZE_MAX - ARENA_ALIGN)
        return NULL;
    size = (size + ARENA_ALIGN - 1) & ~(ARENA_ALIGN - 1);
    if (size == 0)
        size = ARENA_ALIGN;
    struct kv__proto_chunk *c = a->chunks;
    if (c == NULL || c->size - c->used < size) {
        size_t want = c ? c->size * 2 : ARENA_MIN_CHUNK;
        if (want < size)
            want = size;
        struct kv__proto_chunk *n = new_chunk(want);
        if (n == NULL)
            return NULL;
        n->next = c;
        a->chunks = c = n;
    }
    void *p = c->data + c->used;
    c->used += size;
    a->total += size;
    return p;
}

void *kv__alloc_array(kv__alloc *al, size_t n, size_t size)
{
    static max_align_t empty; /* zero-length arrays: nothing to allocate */
    if (n == 0 || size == 0)
        return &empty;
    if (n > SIZE_MAX / size)
        return NULL;
    kv_proto_arena *a = al->arena;
    if (a == NULL) {
        if (*al->owned == NULL) {
            a = malloc(sizeof *a);
            if (a == NULL)
                return NULL;
            kv_proto_arena_init(a);
            *al->owned = a;
        }
        a = *al->owned;
    }
    return kv_proto_arena_alloc(a, n * size);
}

void kv__alloc_release(void **owned)
{
    if (*owned != NULL) {
        kv_proto_arena_free(*owned);
        free(*owned);
        *owned = NULL;
    }
}
