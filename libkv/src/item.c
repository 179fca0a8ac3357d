/*
 * item.c - allocation of items (see item.h).
 */
#include "item.h"

#include <malloc.h>
#include <stdlib.h>

kv__item *kv__item_new_pre(kv__slab *slab, kv__slab_cache *cache, size_t pre, const void *key,
                           size_t klen, const void *val, size_t vlen, uint64_t expire_at)
{
    bool small = kv__item_is_small(klen, vlen);
    size_t extra = (small ? 0 : 8) + (expire_at ? 8 : 0);
    size_t size = pre + sizeof(kv__item) + extra + klen + vlen;
    char *block = kv__slab_fits(size) ? kv__slab_alloc(slab, cache, size) : malloc(size);
    if (!block)
        return NULL;
    if (pre)
        memset(block, 0, pre);
    kv__item *it = (kv__item *)(block + pre);
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

void kv__item_free_pre(kv__slab_cache *cache, kv__item *it, size_t pre)
{
    if (!it)
        return;
    size_t size = pre + kv__item_size(it);
    void *block = (char *)it - pre;
    if (kv__slab_fits(size))
        kv__slab_free(cache, block, size);
    else
        free(block);
}

void kv__item_free_sized(kv__slab_cache *cache, kv__item *it, size_t pre, size_t footprint)
{
    void *block = (char *)it - pre;
    if (kv__slab_fits(footprint)) /* a malloc'ed item's footprint is over the slab's max */
        kv__slab_free(cache, block, footprint);
    else
        free(block);
}

void kv__item_free_at_close(kv__item *it, size_t pre)
{
    if (!kv__slab_fits(pre + kv__item_size(it)))
        free((char *)it - pre);
}

size_t kv__item_footprint_pre(const kv__item *it, size_t pre)
{
    size_t size = pre + kv__item_size(it);
    if (kv__slab_fits(size))
        return kv__slab_block(size);
    /* What malloc really hands out: its chunk header and size rounding. */
    return malloc_usable_size((char *)it - pre) + sizeof(size_t);
}
