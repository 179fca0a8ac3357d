/*
 * test_http_url.c - the request-target helpers of kvd's HTTP front-end
 * (kvd/src/http_url.c): percent-decoding of keys, query parameters and
 * decimal numbers.
 */
#include <criterion/criterion.h>
#include <stdint.h>
#include <string.h>

#include "http_url.h"

static long dec(const char *s, char *out, int plus)
{
    return kvd_http_pct_decode(s, strlen(s), out, plus);
}

Test(http_url, percent_decoding)
{
    char out[64];
    cr_assert_eq(dec("a%2Fb%00c", out, 0), 5);
    cr_assert(memcmp(out, "a/b\0c", 5) == 0);
    cr_assert_eq(dec("%e2%82%AC", out, 0), 3);
    cr_assert(memcmp(out, "\xe2\x82\xac", 3) == 0);
    cr_assert_eq(dec("a+b", out, 0), 3);
    cr_assert(memcmp(out, "a+b", 3) == 0, "a path keeps '+'");
    cr_assert_eq(dec("a+b", out, 1), 3);
    cr_assert(memcmp(out, "a b", 3) == 0, "a query's '+' is a space");
    cr_assert_eq(dec("", out, 0), 0);
    const char *bad[] = {"%", "%2", "a%g0", "%0x", "abc%"};
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++)
        cr_assert_eq(dec(bad[i], out, 0), -1, "%s", bad[i]);
}

Test(http_url, query_parameters)
{
    const char *q = "prefix=a%2F&limit=10&flag&limit=20&empty=";
    const char *v;
    size_t n;
    cr_assert_eq(kvd_http_query_get(q, strlen(q), "prefix", &v, &n), 1);
    cr_assert_eq(n, 4);
    cr_assert(memcmp(v, "a%2F", 4) == 0);
    cr_assert_eq(kvd_http_query_get(q, strlen(q), "limit", &v, &n), 1);
    cr_assert(n == 2 && memcmp(v, "20", 2) == 0, "the last one wins");
    cr_assert_eq(kvd_http_query_get(q, strlen(q), "flag", &v, &n), 1);
    cr_assert_eq(n, 0);
    cr_assert_eq(kvd_http_query_get(q, strlen(q), "empty", &v, &n), 1);
    cr_assert_eq(n, 0);
    cr_assert_eq(kvd_http_query_get(q, strlen(q), "pre", &v, &n), 0);
    cr_assert_eq(kvd_http_query_get(q, strlen(q), "cursor", &v, &n), 0);
    cr_assert_eq(kvd_http_query_get("", 0, "x", &v, &n), 0);
}

Test(http_url, numbers)
{
    uint64_t v = 0;
    cr_assert_eq(kvd_http_parse_u64("0", 1, &v), 0);
    cr_assert_eq(v, 0);
    cr_assert_eq(kvd_http_parse_u64("18446744073709551615", 20, &v), 0);
    cr_assert_eq(v, UINT64_MAX);
    const char *bad[] = {"", "18446744073709551616", "-1", "+1", " 1", "1a", "0x10",
                         "999999999999999999999"};
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++)
        cr_assert_eq(kvd_http_parse_u64(bad[i], strlen(bad[i]), &v), -1, "%s", bad[i]);
}
