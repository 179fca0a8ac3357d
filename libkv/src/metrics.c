/*
 * metrics.c - summing the per-thread counters (thread_slot.h) on demand.
 */
#include <stddef.h>

#include "evict.h"
#include "store.h"

static void add_slot(kv__slot *slot, void *ctx)
{
    uint64_t *sum = ctx;
    for (int c = 0; c < KV__C_COUNT; c++)
        sum[c] += atomic_load_explicit(&slot->counters[c], memory_order_relaxed);
}

/* Signed totals can be briefly negative while threads race; show 0. */
static uint64_t clamp(uint64_t v)
{
    return (int64_t)v < 0 ? 0 : v;
}

int kv_metrics_read(kv_store *s, kv_metrics *out, size_t size)
{
    if (!s || !out || size < offsetof(kv_metrics, table_slots))
        return KV_INVALID_ARGUMENT;
    uint64_t sum[KV__C_COUNT] = {0};
    kv__slot_each(&s->slots, add_slot, sum);

    kv__slot *slot = kv__slot_get(&s->slots);
    if (!slot)
        return KV_NO_MEMORY;
    kv__ebr_pin(&s->ebr, slot);
    uint64_t table_slots = kv__index_slots(s);
    kv__ebr_unpin(slot);
    uint64_t memory, retired, moving;
    kv__memory_sum(s, slot, &memory, &retired, &moving);

    kv_metrics m = {
        .keys = clamp(sum[KV__C_KEYS]),
        .key_bytes = clamp(sum[KV__C_KEY_BYTES]),
        .value_bytes = clamp(sum[KV__C_VALUE_BYTES]),
        .memory_bytes = memory,
        .revision = kv__revision_latest(s),
        .gets = sum[KV__C_GETS],
        .get_hits = sum[KV__C_GET_HITS],
        .get_misses = sum[KV__C_GET_MISSES],
        .sets = sum[KV__C_SETS],
        .deletes = sum[KV__C_DELETES],
        .cas_failures = sum[KV__C_CAS_FAILURES],
        .txn_commits = sum[KV__C_TXN_COMMITS],
        .txn_conflicts = sum[KV__C_TXN_CONFLICTS],
        .table_slots = table_slots,
        .table_resizes = atomic_load(&s->resizes),
        .expired_keys = sum[KV__C_EXPIRED],
        .keys_with_ttl = clamp(sum[KV__C_TTL_KEYS]),
        .evicted_keys = sum[KV__C_EVICTED],
        .max_memory = kv__evict_limit(s),
        .memory_used = memory - moving + retired,
        .history_versions = clamp(sum[KV__C_HIST_VERSIONS]),
        .history_bytes = clamp(sum[KV__C_HIST_BYTES]),
        .compact_revision = kv_compact_revision(s),
    };
    kv__durable_metrics(s, &m);
    memcpy(out, &m, size < sizeof m ? size : sizeof m);
    return KV_OK;
}
