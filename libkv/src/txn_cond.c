/*
 * txn_cond.c - one-shot conditional transactions: a thin shell around
 * kv__apply(), whose batch is exactly compares + then-ops + else-ops.
 */
#include "apply.h"
#include "store.h"

int kv_txn_cond(kv_store *s, const kv_compare *cmps, size_t ncmps,
                const kv_op *then_ops, size_t nthen, const kv_op *else_ops, size_t nelse,
                kv_txn_result *result)
{
    if (!s || !result)
        return KV_INVALID_ARGUMENT;
    kv__outcome o;
    int rc = kv__apply(
        s, &(kv__batch){cmps, ncmps, then_ops, nthen, else_ops, nelse, true, false, false, 0},
        &o);
    if (rc != KV_OK)
        return rc;
    kv__slot *slot = kv__slot_get(&s->slots);
    if (slot)
        kv__count(slot, KV__C_TXN_COMMITS, 1);
    *result = (kv_txn_result){o.succeeded, o.revision, o.nresults, o.results};
    return KV_OK;
}

void kv_txn_result_free(kv_txn_result *result)
{
    if (!result)
        return;
    kv__outcome o = {.results = result->results, .nresults = result->nresults};
    kv__outcome_free(&o);
    result->results = NULL;
    result->nresults = 0;
}
