/*
 * history_copy.c - a copy of the whole store as of one revision, made by
 * another thread while changes go on (kv_history_hold, kv_history_copy,
 * kv_history_release): what kvd's Raft snapshots are made of, so that a
 * node's apply thread does not stop while tens of MB are copied.
 *
 * With history, the store as of revision R is still there after R: each
 * key's version at R is its current item or one of its history entries,
 * and every version R's history had is still in the lists. Only dropping
 * takes anything away (compaction, the byte and age bounds, the per-key
 * count bound, shedding under the memory limit). So a hold at R stops all
 * dropping until its release:
 *   - kv_compact and the bounds' compactor raise the compaction revision
 *     as usual (reads below it are refused the same way), but sweep
 *     nothing;
 *   - a change skips the per-key count bound (the key keeps one more
 *     version);
 *   - shedding under max_memory finds nothing to shed;
 * and the release makes the sweep that was owed: everything below the
 * compaction revision, and every key down to the count bound, as if the
 * drops had happened on time. What the store holds after the release is
 * what it would hold without the hold; only reads in the past during the
 * hold may find versions a little longer.
 *
 * The copy reads each key at R through history (kv__hist_scan_at, as
 * kv_scan_at, keys deleted since included), then each key's history at R
 * (kv__hist_snapshot_at), one lock stripe at a time: what a copy made
 * with no change running would give (kv_scan_ex with KV_SCAN_EXPIRED and
 * kv_history_dump).
 */
#include <stdbool.h>
#include <stdint.h>

#include "history_impl.h"

int kv_history_hold(kv_store *s, uint64_t *rev, uint64_t *compact_rev)
{
    if (!s || !rev)
        return KV_INVALID_ARGUMENT;
    if (!s->hist)
        return KV_UNSUPPORTED;
    kv__hist *h = s->hist;
    /* compact_mu: a sweep running now ends first, and none starts before
     * the hold is in place. The revision is read after "hold everything"
     * is visible, so a change with a later revision sees a hold. */
    pthread_mutex_lock(&h->compact_mu);
    uint64_t none = 0;
    if (!atomic_compare_exchange_strong(&h->hold_rev, &none, UINT64_MAX)) {
        pthread_mutex_unlock(&h->compact_mu);
        return KV_INVALID_ARGUMENT; /* one hold at a time */
    }
    uint64_t r = kv__revision_latest(s);
    h->hold_compact = atomic_load(&h->compact_rev);
    atomic_store(&h->hold_rev, r + 1);
    pthread_mutex_unlock(&h->compact_mu);
    *rev = r;
    if (compact_rev)
        *compact_rev = h->hold_compact;
    return KV_OK;
}

typedef struct copy_ctx {
    kv_scan_ex_fn fn;
    void *ctx;
    bool stopped;
} copy_ctx;

static int copy_entry(void *ctx, const void *key, size_t klen, const void *val, size_t vlen,
                      uint64_t version, uint64_t expire_at)
{
    copy_ctx *c = ctx;
    if (c->fn(c->ctx, key, klen, val, vlen, version, expire_at) == 0)
        return 0;
    c->stopped = true;
    return 1;
}

int kv_history_copy(kv_store *s, kv_scan_ex_fn entry_fn, kv_history_fn history_fn, void *ctx)
{
    if (!s || !entry_fn || !history_fn)
        return KV_INVALID_ARGUMENT;
    if (!s->hist)
        return KV_UNSUPPORTED;
    uint64_t held = atomic_load(&s->hist->hold_rev);
    if (held == 0 || held == UINT64_MAX)
        return KV_INVALID_ARGUMENT; /* no hold */
    uint64_t rev = held - 1, cursor = 0;
    copy_ctx c = {entry_fn, ctx, false};
    int rc;
    do {
        rc = kv__hist_scan_at(s, NULL, 0, rev, cursor, 1024, true, copy_entry, &c, &cursor);
    } while (rc == KV_OK && cursor != 0 && !c.stopped);
    if (rc == KV_OK && !c.stopped)
        rc = kv__hist_snapshot_at(s, rev, history_fn, ctx);
    return rc;
}

void kv_history_release(kv_store *s)
{
    if (!s || !s->hist || !atomic_load(&s->hist->hold_rev))
        return;
    atomic_store(&s->hist->hold_rev, 0);
    kv__slot *slot = kv__slot_get(&s->slots);
    if (slot) /* else the next sweep makes the drops */
        kv__hist_compact_to(s, slot, atomic_load(&s->hist->compact_rev));
}
