/*
 * item.c - allocation of items (see item.h).
 */
#include "item.h"

#include <malloc.h>
#include <stdlib.h>

kv__item *kv__item_new(const void *key, size_t klen, const void *val, size_t vlen)
{
    kv__item *it = malloc(sizeof *it + klen + vlen);
    if (!it)
        return NULL;
    it->rev = 0;
    it->klen = (uint32_t)klen;
    it->vlen = (uint32_t)vlen;
    memcpy(it->data, key, klen);
    if (vlen)
        memcpy(it->data + klen, val, vlen);
    return it;
}

void kv__item_free(void *item)
{
    free(item);
}

size_t kv__item_footprint(const kv__item *it)
{
    /* What malloc really hands out: its chunk header and size rounding. */
    return malloc_usable_size((void *)it) + sizeof(size_t);
}
