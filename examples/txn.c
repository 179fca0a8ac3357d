/*
 * txn.c - transactions in libkv.
 *
 * 1. A bank transfer with an optimistic transaction: read both balances,
 *    write both, commit; on KV_CONFLICT (someone changed a balance we read)
 *    start over. Here a second "teller" changes a balance mid-transaction
 *    once, so the retry path really runs.
 * 2. A compare-and-set with kv_txn_cond: change a value only if its version
 *    is still the one we read, else read the current value.
 *
 * Exits 0 on success; on any unexpected status prints it and exits 1.
 */
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "kv.h"

static void expect(int rc, int want, const char *what)
{
    if (rc != want) {
        fprintf(stderr, "txn: %s: got %s (%s), expected %s\n", what,
                kv_status_name(rc), kv_strerror(rc), kv_status_name(want));
        exit(1);
    }
}

static void fail(const char *what)
{
    fprintf(stderr, "txn: %s\n", what);
    exit(1);
}

/* Balances are stored as decimal text. */
static void set_balance(kv_store *store, const char *who, long amount)
{
    char buf[32];
    int n = snprintf(buf, sizeof buf, "%ld", amount);
    expect(kv_set(store, who, strlen(who), buf, (size_t)n, NULL), KV_OK, "kv_set balance");
}

static long parse_balance(const kv_value *v)
{
    char buf[32];
    if (v->len == 0 || v->len >= sizeof buf)
        fail("malformed balance");
    memcpy(buf, v->data, v->len);
    buf[v->len] = '\0';
    return strtol(buf, NULL, 10);
}

static long get_balance(kv_store *store, const char *who)
{
    kv_value v = {0};
    expect(kv_get(store, who, strlen(who), &v), KV_OK, "kv_get balance");
    long b = parse_balance(&v);
    kv_value_free(&v);
    return b;
}

/* Reads a balance inside txn t. Returns KV_OK or the status to act on. */
static int txn_balance(kv_txn *t, const char *who, long *out)
{
    kv_value v = {0};
    int rc = kv_txn_get(t, who, strlen(who), &v);
    if (rc == KV_OK) {
        *out = parse_balance(&v);
        kv_value_free(&v);
    }
    return rc;
}

/* One attempt at moving amount from -> to. interfere simulates another
 * client changing `from` between our read and our commit. */
static int transfer_once(kv_store *store, const char *from, const char *to,
                         long amount, int interfere)
{
    kv_txn *t = NULL;
    int rc = kv_txn_begin(store, &t);
    if (rc != KV_OK)
        return rc;
    long a = 0, b = 0;
    if ((rc = txn_balance(t, from, &a)) != KV_OK ||
        (rc = txn_balance(t, to, &b)) != KV_OK) {
        kv_txn_abort(t);
        return rc;
    }
    if (a < amount) {
        kv_txn_abort(t);
        fail("insufficient funds");
    }
    char abuf[32], bbuf[32];
    int alen = snprintf(abuf, sizeof abuf, "%ld", a - amount);
    int blen = snprintf(bbuf, sizeof bbuf, "%ld", b + amount);
    if ((rc = kv_txn_set(t, from, strlen(from), abuf, (size_t)alen)) != KV_OK ||
        (rc = kv_txn_set(t, to, strlen(to), bbuf, (size_t)blen)) != KV_OK) {
        kv_txn_abort(t);
        return rc;
    }
    if (interfere) {
        printf("  (another teller deposits 5 into %s meanwhile)\n", from);
        set_balance(store, from, a + 5);
    }
    return kv_txn_commit(t, NULL); /* frees t whatever the outcome */
}

static void transfer(kv_store *store, const char *from, const char *to, long amount)
{
    for (int attempt = 1;; attempt++) {
        printf("transfer %ld from %s to %s, attempt %d\n", amount, from, to, attempt);
        int rc = transfer_once(store, from, to, amount, attempt == 1);
        if (rc == KV_OK) {
            printf("  committed\n");
            return;
        }
        if (rc != KV_CONFLICT)
            expect(rc, KV_OK, "transfer");
        printf("  %s\n", kv_strerror(rc));
        if (attempt >= 100)
            fail("transfer keeps conflicting");
    }
}

static void bank(kv_store *store)
{
    set_balance(store, "alice", 100);
    set_balance(store, "bob", 50);
    transfer(store, "alice", "bob", 30);
    long a = get_balance(store, "alice"), b = get_balance(store, "bob");
    printf("alice = %ld, bob = %ld\n", a, b);
    /* 100 + 5 (the other teller's deposit) - 30 = 75; 50 + 30 = 80 */
    if (a != 75 || b != 80)
        fail("balances are wrong after the transfer");
}

/* Sets key to val if its version is still expected. Returns 1 if it was
 * set, 0 if not (then prints the current value). */
static int compare_and_set(kv_store *store, const char *key, uint64_t expected,
                           const char *val, uint64_t *new_version)
{
    kv_compare cmp = {KV_CMP_VERSION_EQ, key, strlen(key), expected, NULL, 0};
    kv_op then_op = {KV_OP_SET, key, strlen(key), val, strlen(val), 0};
    kv_op else_op = {KV_OP_GET, key, strlen(key), NULL, 0, 0};
    kv_txn_result r;
    expect(kv_txn_cond(store, &cmp, 1, &then_op, 1, &else_op, 1, &r), KV_OK,
           "kv_txn_cond");
    int ok = r.succeeded;
    if (ok) {
        *new_version = r.version;
        printf("  set %s = %s at revision %" PRIu64 "\n", key, val, r.version);
    } else {
        if (r.nresults != 1 || r.results[0].status != KV_OK)
            fail("the else branch did not read the key");
        kv_value *cur = &r.results[0].value;
        printf("  not set: %s is now \"%.*s\" (version %" PRIu64 ")\n", key,
               (int)cur->len, (const char *)cur->data, cur->version);
    }
    kv_txn_result_free(&r);
    return ok;
}

static void cas(kv_store *store)
{
    uint64_t v1 = 0, v2 = 0;
    expect(kv_set(store, "config", 6, "v1", 2, &v1), KV_OK, "kv_set config");
    printf("compare-and-set config from version %" PRIu64 "\n", v1);
    if (!compare_and_set(store, "config", v1, "v2", &v2))
        fail("compare-and-set with the current version failed");
    printf("compare-and-set config again from the stale version %" PRIu64 "\n", v1);
    if (compare_and_set(store, "config", v1, "v3", &v2))
        fail("compare-and-set with a stale version succeeded");
    kv_value v = {0};
    expect(kv_get(store, "config", 6, &v), KV_OK, "kv_get config");
    int right = v.len == 2 && memcmp(v.data, "v2", 2) == 0 && v.version == v2;
    kv_value_free(&v);
    if (!right)
        fail("config does not hold v2");
}

int main(void)
{
    kv_store *store = NULL;
    expect(kv_open(NULL, &store), KV_OK, "kv_open");
    bank(store);
    cas(store);
    kv_close(store);
    printf("ok\n");
    return 0;
}
