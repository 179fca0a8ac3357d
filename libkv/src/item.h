/*
 * item.h - the immutable objects the index points at.
 *
 * kv__item: one key with one value and the revision that wrote it, in a
 * single allocation (key bytes, then value bytes) so a get touches one
 * object. Items are never changed after they are published: a set
 * publishes a new item and retires the old one (ebr.h).
 *
 * kv__pending: stands in the index for a key while a multi-key change is
 * being published. It names the key's item before and after the change and
 * the change's kv__commit; readers take `after` once the commit's state is
 * COMMITTED and `before` until then, so all keys of the change become
 * visible at the single instant the state flips.
 */
#ifndef KV_ITEM_H
#define KV_ITEM_H

#include <stdatomic.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

typedef struct kv__item {
    uint64_t rev;
    uint32_t klen;
    uint32_t vlen;
    unsigned char data[]; /* klen key bytes, then vlen value bytes */
} kv__item;

enum { KV__COMMIT_PENDING = 0, KV__COMMIT_DONE = 1 };

typedef struct kv__commit {
    _Atomic int state;
} kv__commit;

typedef struct kv__pending {
    kv__item *before; /* NULL: the key did not exist */
    kv__item *after;  /* NULL: the change deletes it */
    kv__commit *commit;
} kv__pending;

/* A new item with rev 0, or NULL on out-of-memory. */
kv__item *kv__item_new(const void *key, size_t klen, const void *val,
                       size_t vlen);
void kv__item_free(void *item);
/* Bytes the allocation costs, for the memory metric. */
size_t kv__item_footprint(const kv__item *it);

static inline const void *kv__item_key(const kv__item *it)
{
    return it->data;
}

static inline const void *kv__item_value(const kv__item *it)
{
    return it->data + it->klen;
}

static inline int kv__item_has_key(const kv__item *it, const void *key,
                                   size_t klen)
{
    return it->klen == klen && memcmp(it->data, key, klen) == 0;
}

/* The item a reader sees through a pending node (NULL: absent). */
static inline kv__item *kv__pending_visible(const kv__pending *p)
{
    if (atomic_load_explicit(&p->commit->state, memory_order_acquire) ==
        KV__COMMIT_DONE)
        return p->after;
    return p->before;
}

/* Either item of a pending node: both carry the same key. */
static inline const kv__item *kv__pending_any(const kv__pending *p)
{
    return p->after ? p->after : p->before;
}

#endif
