/*
 * test_auth_throttle.c - the per-address AUTH backoff (kvd/src/auth_throttle.c)
 * with made-up clock values: delays double per failure up to the cap, every
 * AUTH from a failing address waits its turn (parallel attempts are spaced),
 * addresses are independent, a success or time forgets an address.
 */
#include <arpa/inet.h>
#include <criterion/criterion.h>
#include <netinet/in.h>
#include <stdio.h>
#include <string.h>

#include "auth_throttle.h"

static kvd_auth_throttle t;

static void setup(void)
{
    kvd_auth_throttle_init(&t);
}

static void teardown(void)
{
    kvd_auth_throttle_destroy(&t);
}

TestSuite(auth_throttle, .init = setup, .fini = teardown);

static kvd_peer_key v4(const char *ip)
{
    struct sockaddr_storage ss;
    memset(&ss, 0, sizeof ss);
    ss.ss_family = AF_INET;
    inet_pton(AF_INET, ip, &((struct sockaddr_in *)&ss)->sin_addr);
    return kvd_peer_key_of(&ss);
}

static void fail(const kvd_peer_key *k, uint64_t now)
{
    uint32_t f;
    uint64_t u;
    kvd_auth_throttle_result(&t, k, now, 0, &f, &u);
}

Test(auth_throttle, backoff_doubles_up_to_the_cap)
{
    kvd_peer_key a = v4("10.0.0.1");
    uint64_t now = 1000;
    cr_assert_eq(kvd_auth_throttle_admit(&t, &a, now), 0, "no failure yet: no wait");
    fail(&a, now);
    uint64_t expect = KVD_AUTH_BASE_MS;
    for (int i = 0; i < 12; i++) {
        uint64_t d = kvd_auth_throttle_admit(&t, &a, now);
        cr_assert_eq(d, expect, "attempt %d waits %llu, not %llu", i, (unsigned long long)d,
                     (unsigned long long)expect);
        now += d;
        fail(&a, now);
        expect = expect * 2 > KVD_AUTH_MAX_MS ? KVD_AUTH_MAX_MS : expect * 2;
    }
}

Test(auth_throttle, parallel_attempts_wait_their_turn)
{
    kvd_peer_key a = v4("10.0.0.2");
    fail(&a, 0);
    fail(&a, 0);
    fail(&a, 0); /* three failures: 200 ms apart */
    uint64_t d1 = kvd_auth_throttle_admit(&t, &a, 0);
    uint64_t d2 = kvd_auth_throttle_admit(&t, &a, 0);
    uint64_t d3 = kvd_auth_throttle_admit(&t, &a, 0);
    cr_assert_eq(d1, 4 * KVD_AUTH_BASE_MS);
    cr_assert_eq(d2, d1 + 4 * KVD_AUTH_BASE_MS, "a second connection does not jump the queue");
    cr_assert_eq(d3, d2 + 4 * KVD_AUTH_BASE_MS);
}

Test(auth_throttle, addresses_are_independent_and_forgotten)
{
    kvd_peer_key a = v4("10.0.0.3"), b = v4("10.0.0.4");
    fail(&a, 0);
    cr_assert_gt(kvd_auth_throttle_admit(&t, &a, 0), 0);
    cr_assert_eq(kvd_auth_throttle_admit(&t, &b, 0), 0);
    /* a success forgets */
    kvd_auth_throttle_result(&t, &a, 10, 1, NULL, NULL);
    cr_assert_eq(kvd_auth_throttle_admit(&t, &a, 10), 0);
    /* and so does time */
    fail(&b, 100);
    cr_assert_gt(kvd_auth_throttle_admit(&t, &b, 100), 0);
    cr_assert_eq(kvd_auth_throttle_admit(&t, &b, 100 + KVD_AUTH_FORGET_MS + KVD_AUTH_MAX_MS), 0);
}

Test(auth_throttle, warnings_are_rate_limited)
{
    kvd_peer_key a = v4("10.0.0.5");
    uint32_t f = 0;
    uint64_t u = 0;
    cr_assert_eq(kvd_auth_throttle_result(&t, &a, 1, 0, &f, &u), 1, "the first failure warns");
    int warned = 0;
    for (int i = 0; i < 100; i++)
        warned += kvd_auth_throttle_result(&t, &a, 2 + (uint64_t)i, 0, &f, &u);
    cr_assert_eq(warned, 0, "not again within the interval");
    cr_assert_eq(kvd_auth_throttle_result(&t, &a, 1 + KVD_AUTH_WARN_EVERY_MS, 0, &f, &u), 1);
    cr_assert_eq(u, 101, "the warning counts the failures it summarises");
    cr_assert_eq(f, 102);
}

Test(auth_throttle, a_full_table_drops_the_stalest)
{
    for (int i = 0; i < KVD_AUTH_SLOTS + 10; i++) {
        char ip[32];
        snprintf(ip, sizeof ip, "10.1.%d.%d", i / 256, i % 256);
        kvd_peer_key k = v4(ip);
        fail(&k, 1000 + (uint64_t)i);
    }
    kvd_peer_key newest = v4("10.1.4.9"); /* i = 1033 */
    cr_assert_gt(kvd_auth_throttle_admit(&t, &newest, 2000), 0, "the latest address is kept");
}
