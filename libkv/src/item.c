/*
 * item.c - allocation of items (see item.h).
 */
#include "item.h"

#include <malloc.h>
#include <stdlib.h>

kv__item *kv__item_new(kv__slab *slab, kv__slab_cache *cache, const void *key,
                       size_t klen, const void *val, size_t vlen, uint64_t expire_at)
{
    bool small = kv__item_is_small(klen, vlen);
    size_t extra = (small ? 0 : 8) + (expire_at ? 8 : 0);
    size_t size = sizeof(kv__item) + extra + klen + vlen;
    kv__item *it = kv__slab_fits(size) ? kv__slab_alloc(slab, cache, size) : malloc(size);
    if (!it)
        return NULL;
    kv__item_set_rev(it, 0);
    if (small) {
        it->lens = (uint32_t)klen | (uint32_t)vlen << 11;
    } else {
        uint32_t k = (uint32_t)klen, v = (uint32_t)vlen;
        it->lens = KV__ITEM_LARGE;
        memcpy(it->data, &k, 4);
        memcpy(it->data + 4, &v, 4);
    }
    if (expire_at) {
        it->lens |= KV__ITEM_TTL;
        memcpy(it->data + (small ? 0 : 8), &expire_at, 8);
    }
    unsigned char *p = it->data + extra;
    memcpy(p, key, klen);
    if (vlen)
        memcpy(p + klen, val, vlen);
    return it;
}

void kv__item_free(kv__slab_cache *cache, kv__item *it)
{
    if (!it)
        return;
    size_t size = kv__item_size(it);
    if (kv__slab_fits(size))
        kv__slab_free(cache, it, size);
    else
        free(it);
}

void kv__item_free_at_close(kv__item *it)
{
    if (!kv__slab_fits(kv__item_size(it)))
        free(it);
}

size_t kv__item_footprint(const kv__item *it)
{
    size_t size = kv__item_size(it);
    if (kv__slab_fits(size))
        return kv__slab_block(size);
    /* What malloc really hands out: its chunk header and size rounding. */
    return malloc_usable_size((void *)it) + sizeof(size_t);
}
