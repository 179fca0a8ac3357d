/*
 * load.c - kv_load: installing another copy's state key by key, with the
 * revisions it had there (replication: a node that installs a snapshot).
 * It is recovery's replay (kv__replay_change), offered to callers: not
 * logged, no new revision taken.
 */
#include "apply.h"
#include "history.h"
#include "store.h"

int kv_load(kv_store *s, const void *key, size_t klen, const void *val, size_t vlen,
            uint64_t version, int deleted)
{
    return kv_load_ex(s, key, klen, val, vlen, version, 0, deleted);
}

int kv_load_ex(kv_store *s, const void *key, size_t klen, const void *val, size_t vlen,
               uint64_t version, uint64_t expire_at_ms, int deleted)
{
    if (!s || version == 0)
        return KV_INVALID_ARGUMENT;
    if (s->log)
        return KV_UNSUPPORTED;
    int rc = kv__check_key(s, key, klen);
    if (rc == KV_OK && !deleted)
        rc = kv__check_value(s, val, vlen);
    if (rc != KV_OK)
        return rc;
    kv__change c = {.key = key, .klen = klen, .val = deleted ? NULL : (val ? val : ""),
                    .vlen = deleted ? 0 : vlen, .deleted = deleted != 0,
                    .expire_at = deleted ? 0 : expire_at_ms};
    rc = kv__replay_change(s, &c, version);
    /* What came before the loaded state is not known here. */
    if (rc == KV_OK)
        kv__hist_floor(s, version);
    kv__expiry_ensure(s); /* the clock must tick for a key with an expiry */
    return rc;
}
