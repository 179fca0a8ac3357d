/*
 * item.h - the immutable objects the index points at.
 *
 * kv__item: one key with one value and the revision that wrote it, in a
 * single allocation (key bytes, then value bytes) so a get touches one
 * object. An item may carry an absolute expiry time (wall clock, ms): only
 * items that have one store it (8 bytes, flagged by a bit of the lens
 * word), so keys without a TTL cost nothing more. Items are never changed after they are published: a set
 * publishes a new item and retires the old one (ebr.h).
 *
 * Access metadata (evict.h): in a store whose eviction policy needs it
 * (LRU, LFU), every item is allocated with KV__ITEM_META_BYTES more in
 * front of it, a 32-bit word readers update with relaxed atomics (the
 * item itself stays immutable). The word is outside the item so that
 * stores without such a policy pay nothing: the `pre` arguments below
 * say how many bytes precede the item (0 or KV__ITEM_META_BYTES).
 *
 * kv__pending: stands in the index for a key while a multi-key change is
 * being published. It names the key's item before and after the change and
 * the change's kv__commit; readers (kv__slot_visible, table.h) take `after`
 * once the commit's state is DONE and `before` until then, so all keys of the change become
 * visible at the single instant the state flips.
 */
#ifndef KV_ITEM_H
#define KV_ITEM_H

#include <stdatomic.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include "slab.h"

/* Header: the revision, then one 32-bit word of lengths. Most items are
 * "small" (key < 2 KiB, value < 512 KiB): both lengths fit in that word and
 * the header is 12 bytes. Other items have bit 31 set and keep the two
 * lengths as 32-bit words at the start of data[]. Bit 30 (KV__ITEM_TTL)
 * says the item expires: its expiry time, a u64 in ms since the Unix epoch,
 * follows (after the large lengths, if any). The struct is 4-byte aligned
 * so that no padding follows the header; rev is read as two halves.
 *
 *   data[] = [klen u32, vlen u32 if large][expire_at u64 if TTL][key][value] */
typedef struct kv__item {
    uint32_t rev_lo, rev_hi;
    uint32_t lens;
    unsigned char data[];
} kv__item;

#define KV__ITEM_LARGE 0x80000000u
#define KV__ITEM_TTL 0x40000000u
#define KV__ITEM_SMALL_KLEN 2048u     /* key lengths below this are small  */
#define KV__ITEM_SMALL_VLEN 524288u   /* value lengths below this are small */

static inline bool kv__item_is_small(size_t klen, size_t vlen)
{
    return klen < KV__ITEM_SMALL_KLEN && vlen < KV__ITEM_SMALL_VLEN;
}

/* Bytes of data[] before the key: the large lengths and the expiry. */
static inline size_t kv__item_prefix(const kv__item *it)
{
    return (it->lens >> 31) * 8 + ((it->lens >> 30) & 1) * 8;
}

static inline bool kv__item_has_ttl(const kv__item *it)
{
    return (it->lens & KV__ITEM_TTL) != 0;
}

/* The item's expiry time in ms since the epoch, 0 if it has none. */
static inline uint64_t kv__item_expire_at(const kv__item *it)
{
    if (!kv__item_has_ttl(it))
        return 0;
    uint64_t e;
    memcpy(&e, it->data + (it->lens & KV__ITEM_LARGE ? 8 : 0), sizeof e);
    return e;
}

/* The one rule of expiry: an item with expiry time T is gone once the
 * store's clock reads T or later (visible while now < T). */
static inline bool kv__item_expired(const kv__item *it, uint64_t now)
{
    return kv__item_has_ttl(it) && kv__item_expire_at(it) <= now;
}

static inline uint64_t kv__item_rev(const kv__item *it)
{
    return (uint64_t)it->rev_hi << 32 | it->rev_lo;
}

static inline void kv__item_set_rev(kv__item *it, uint64_t rev)
{
    it->rev_lo = (uint32_t)rev;
    it->rev_hi = (uint32_t)(rev >> 32);
}

static inline size_t kv__item_klen(const kv__item *it)
{
    if (!(it->lens & KV__ITEM_LARGE))
        return it->lens & (KV__ITEM_SMALL_KLEN - 1);
    uint32_t k;
    memcpy(&k, it->data, sizeof k);
    return k;
}

static inline size_t kv__item_vlen(const kv__item *it)
{
    if (!(it->lens & KV__ITEM_LARGE))
        return (it->lens >> 11) & (KV__ITEM_SMALL_VLEN - 1);
    uint32_t v;
    memcpy(&v, it->data + 4, sizeof v);
    return v;
}

enum { KV__COMMIT_PENDING = 0, KV__COMMIT_DONE = 1 };

typedef struct kv__commit kv__commit;

typedef struct kv__pending {
    kv__item *before; /* NULL: the key did not exist */
    kv__item *after;  /* NULL: the change deletes it */
    kv__commit *commit;
} kv__pending;

/* One allocation per multi-key change: its state and the pending node of
 * each key it changes (retired together once the change is published). */
struct kv__commit {
    _Atomic int state;
    kv__pending nodes[];
};

#define KV__ITEM_META_BYTES 4u

/* A new item with rev 0 expiring at expire_at (ms since the epoch; 0:
 * never), with `pre` bytes in front of it (zeroed), or NULL on
 * out-of-memory. Small items come from the slab (slab.h) through the
 * calling thread's cache. */
kv__item *kv__item_new_pre(kv__slab *slab, kv__slab_cache *cache, size_t pre, const void *key,
                           size_t klen, const void *val, size_t vlen, uint64_t expire_at);
/* Frees an item allocated with `pre` into the calling thread's cache (or
 * to malloc if large). NULL is a no-op. */
void kv__item_free_pre(kv__slab_cache *cache, kv__item *it, size_t pre);
/* The same, given its footprint (kv__item_footprint_pre, taken when it was
 * still hot): the item is not read, so freeing a cold one costs no miss. */
void kv__item_free_sized(kv__slab_cache *cache, kv__item *it, size_t pre, size_t footprint);
/* Frees a large item; small ones die with the slab's chunks. For close. */
void kv__item_free_at_close(kv__item *it, size_t pre);
/* Bytes the item's memory costs, for the memory metric. */
size_t kv__item_footprint_pre(const kv__item *it, size_t pre);

static inline kv__item *kv__item_new(kv__slab *slab, kv__slab_cache *cache, const void *key,
                                     size_t klen, const void *val, size_t vlen,
                                     uint64_t expire_at)
{
    return kv__item_new_pre(slab, cache, 0, key, klen, val, vlen, expire_at);
}

static inline void kv__item_free(kv__slab_cache *cache, kv__item *it)
{
    kv__item_free_pre(cache, it, 0);
}

static inline size_t kv__item_footprint(const kv__item *it)
{
    return kv__item_footprint_pre(it, 0);
}

/* The history link: in a store that keeps history (history.h) every item
 * has KV__ITEM_LINK_BYTES more in front of it, at the very start of its
 * block (before the access word, if there is one): the address of its
 * key's history record, or NULL if the key has none. It is kept exact,
 * under the key's stripe lock, for the item in the key's slot (an item
 * that leaves the slot keeps a stale link nobody reads), so that a write
 * finds the record from the item it replaces instead of looking it up in
 * the record maps, and a prefetch ahead of the write (kv_prefetch_writes)
 * can start the record's cache misses without the lock. pre: the store's
 * item_pre. */
#define KV__ITEM_LINK_BYTES 8u

static inline _Atomic(void *) *kv__item_link(const kv__item *it, size_t pre)
{
    return (_Atomic(void *) *)((uintptr_t)it - pre);
}

/* The access word in front of an item allocated with KV__ITEM_META_BYTES. */
static inline _Atomic uint32_t *kv__item_meta(const kv__item *it)
{
    return (_Atomic uint32_t *)((uintptr_t)it - KV__ITEM_META_BYTES);
}

static inline size_t kv__item_size(const kv__item *it)
{
    return sizeof *it + kv__item_prefix(it) + kv__item_klen(it) + kv__item_vlen(it);
}

static inline const unsigned char *kv__item_key(const kv__item *it)
{
    return it->data + kv__item_prefix(it);
}

static inline const void *kv__item_value(const kv__item *it)
{
    return kv__item_key(it) + kv__item_klen(it);
}

/* Key equality without a libc call for the common short keys: two
 * overlapping 8-byte loads cover any length from 8 to 16. */
static inline bool kv__bytes_equal(const void *a, const void *b, size_t n)
{
    if (n >= 8 && n <= 16) {
        uint64_t a0, a1, b0, b1;
        memcpy(&a0, a, 8);
        memcpy(&b0, b, 8);
        memcpy(&a1, (const char *)a + n - 8, 8);
        memcpy(&b1, (const char *)b + n - 8, 8);
        return ((a0 ^ b0) | (a1 ^ b1)) == 0;
    }
    return memcmp(a, b, n) == 0;
}

static inline int kv__item_has_key(const kv__item *it, const void *key,
                                   size_t klen)
{
    return kv__item_klen(it) == klen && kv__bytes_equal(kv__item_key(it), key, klen);
}

/* Either item of a pending node: both carry the same key. */
static inline const kv__item *kv__pending_any(const kv__pending *p)
{
    return p->after ? p->after : p->before;
}

#endif
