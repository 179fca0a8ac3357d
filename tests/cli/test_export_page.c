/*
 * test_export_page.c - export_page.c, how kvcli export reads a page's
 * expiry times, against a real kvd: a page as the SCAN saw it gets each
 * key's expiry time in one pipelined round trip when nothing changed;
 * when a key changed after the SCAN (the page is given an older version
 * than the store has: no race needed) the keys are read again and the
 * entry takes the current value, version and expiry time; a key found
 * absent (deleted or expired after the SCAN) is left out and counted;
 * without the checking TXN (refused by a cluster follower) every key is
 * read again.
 */
#include <criterion/criterion.h>
#include <stdlib.h>
#include <string.h>

#include "harness.h"
#include "kvcli.h"

static cli_server srv;
static kv_client *c;

static void setup(void)
{
    cli_server_start(&srv, NULL);
    kv_client_options o;
    kv_client_options_init(&o);
    o.port = (uint16_t)srv.port;
    o.io_timeout_ms = 20000;
    cr_assert_eq(kv_client_open(&o, &c), KV_OK);
}

static void teardown(void)
{
    kv_client_close(c);
    cli_server_stop(&srv);
}

TestSuite(export_page, .init = setup, .fini = teardown, .timeout = 60);

#define HOUR_MS 3600000ull

static uint64_t version_of(const char *key)
{
    kv_value v = {0};
    cr_assert_eq(kv_client_get(c, key, strlen(key), &v), KV_OK, "%s", key);
    uint64_t ver = v.version;
    kv_client_value_free(&v);
    return ver;
}

static uint64_t expiry_of(const char *key)
{
    uint64_t at = 0;
    cr_assert_eq(kv_client_ttl(c, key, strlen(key), &at, NULL), KV_OK, "%s", key);
    return at;
}

static void add(kvcli_page *pg, const char *key, const char *val, uint64_t version)
{
    cr_assert_eq(kvcli_page_add(pg, key, strlen(key), val, strlen(val), version), 0);
}

static const kvcli_page_entry *entry(const kvcli_page *pg, size_t i, const char *val)
{
    const kvcli_page_entry *e = &pg->e[i];
    cr_assert_eq(e->vlen, strlen(val), "entry %zu", i);
    cr_assert_eq(memcmp(pg->bytes.data + e->voff, val, e->vlen), 0, "entry %zu", i);
    return e;
}

Test(export_page, unchanged_keys_in_one_round_trip)
{
    cr_assert_eq(kv_client_set_ttl(c, "a", 1, "1", 1, HOUR_MS, NULL), KV_OK);
    cr_assert_eq(kv_client_set(c, "b", 1, "2", 1, NULL), KV_OK);
    kvcli_page pg = {0};
    add(&pg, "a", "1", version_of("a"));
    add(&pg, "b", "2", version_of("b"));
    cr_assert_eq(kvcli_page_expiry(&pg, c), KV_OK);
    const kvcli_page_entry *e = entry(&pg, 0, "1");
    cr_assert_eq(e->state, KVCLI_PAGE_READY);
    cr_assert_eq(e->expire_at_ms, expiry_of("a"));
    e = entry(&pg, 1, "2");
    cr_assert_eq(e->state, KVCLI_PAGE_READY);
    cr_assert_eq(e->expire_at_ms, 0);
    cr_assert_eq(pg.gone, 0);
    cr_assert_eq(pg.unsettled, 0);

    /* cleared for the next page; an empty page asks nothing */
    kvcli_page_clear(&pg);
    cr_assert_eq(kvcli_page_expiry(&pg, c), KV_OK);
    kvcli_page_free(&pg);
}

Test(export_page, changed_keys_are_read_again_and_absent_ones_left_out)
{
    cr_assert_eq(kv_client_set_ttl(c, "a", 1, "new", 3, HOUR_MS, NULL), KV_OK);
    cr_assert_eq(kv_client_set(c, "b", 1, "2", 1, NULL), KV_OK);
    cr_assert_eq(kv_client_set_ttl(c, "c", 1, "3", 1, 2 * HOUR_MS, NULL), KV_OK);
    /* e expired after the SCAN: a time in the past makes it absent now */
    cr_assert_eq(kv_client_set_ex(c, "e", 1, "5", 1, 1000, NULL), KV_OK);
    kvcli_page pg = {0};
    add(&pg, "a", "old", version_of("a") - 1); /* the SCAN saw an older a */
    add(&pg, "b", "2", version_of("b"));       /* unchanged */
    add(&pg, "d", "4", 7);                     /* deleted since the SCAN */
    add(&pg, "c", "3", version_of("c"));       /* unchanged */
    add(&pg, "e", "5", 9);                     /* expired since */
    cr_assert_eq(kvcli_page_expiry(&pg, c), KV_OK);
    const kvcli_page_entry *e = entry(&pg, 0, "new");
    cr_assert_eq(e->state, KVCLI_PAGE_READY);
    cr_assert_eq(e->version, version_of("a"), "the version read again");
    cr_assert_eq(e->expire_at_ms, expiry_of("a"));
    e = entry(&pg, 1, "2");
    cr_assert_eq(e->state, KVCLI_PAGE_READY);
    cr_assert_eq(e->expire_at_ms, 0);
    cr_assert_eq(pg.e[2].state, KVCLI_PAGE_GONE);
    e = entry(&pg, 3, "3");
    cr_assert_eq(e->state, KVCLI_PAGE_READY);
    cr_assert_eq(e->expire_at_ms, expiry_of("c"));
    cr_assert_eq(pg.e[4].state, KVCLI_PAGE_GONE);
    cr_assert_eq(pg.gone, 2);
    cr_assert_eq(pg.unsettled, 0, "nothing changed while it read again");
    kvcli_page_free(&pg);
}

Test(export_page, many_keys_in_several_chunks)
{
    /* 100 keys, every one stale: re-read 16 at a time */
    kvcli_page pg = {0};
    char k[16], v[16];
    for (int i = 0; i < 100; i++) {
        snprintf(k, sizeof k, "k%03d", i);
        snprintf(v, sizeof v, "v%d", i);
        cr_assert_eq(kv_client_set_ttl(c, k, strlen(k), v, strlen(v), HOUR_MS + (uint64_t)i,
                                       NULL), KV_OK);
        add(&pg, k, "stale", version_of(k) - 1);
    }
    cr_assert_eq(kvcli_page_expiry(&pg, c), KV_OK);
    for (int i = 0; i < 100; i++) {
        snprintf(k, sizeof k, "k%03d", i);
        snprintf(v, sizeof v, "v%d", i);
        const kvcli_page_entry *e = entry(&pg, (size_t)i, v);
        cr_assert_eq(e->state, KVCLI_PAGE_READY);
        cr_assert_eq(e->expire_at_ms, expiry_of(k));
    }
    cr_assert_eq(pg.gone, 0);
    kvcli_page_free(&pg);
}

Test(export_page, without_the_checking_txn_keys_are_read_again)
{
    /* as after a server refused the TXN (a cluster follower) */
    cr_assert_eq(kv_client_set_ttl(c, "a", 1, "1", 1, HOUR_MS, NULL), KV_OK);
    cr_assert_eq(kv_client_set(c, "b", 1, "2", 1, NULL), KV_OK);
    kvcli_page pg = {.no_txn = 1};
    add(&pg, "a", "1", version_of("a"));
    add(&pg, "b", "old", version_of("b") - 1);
    add(&pg, "d", "4", 7);
    cr_assert_eq(kvcli_page_expiry(&pg, c), KV_OK);
    const kvcli_page_entry *e = entry(&pg, 0, "1");
    cr_assert_eq(e->state, KVCLI_PAGE_READY);
    cr_assert_eq(e->expire_at_ms, expiry_of("a"));
    e = entry(&pg, 1, "2");
    cr_assert_eq(e->state, KVCLI_PAGE_READY);
    cr_assert_eq(e->expire_at_ms, 0);
    cr_assert_eq(pg.e[2].state, KVCLI_PAGE_GONE);
    cr_assert_eq(pg.gone, 1);
    cr_assert(pg.no_txn, "kept for the next pages");
    kvcli_page_free(&pg);
}
