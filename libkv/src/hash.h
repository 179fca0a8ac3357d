/*
 * hash.h - the one hash function of the store (XXH3, 64-bit).
 *
 * Bits are used as follows, so no two uses correlate:
 *   top 5 bits    index segment (table.h), and the bits below them
 *                 the home slot in the segment's table
 *   bits 16..31   writer lock stripe (stripes.c)
 *   low 16 bits   tag kept beside each index pointer to skip most key compares
 */
#ifndef KV_HASH_H
#define KV_HASH_H

#include <stddef.h>
#include <stdint.h>

#define XXH_INLINE_ALL
#include <xxhash.h>

static inline uint64_t kv__hash(const void *key, size_t klen)
{
    return XXH3_64bits(key, klen);
}

#endif
