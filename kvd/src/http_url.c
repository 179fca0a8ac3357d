/*
 * http_url.c - percent-decoding, query parameters and numbers of an HTTP
 * request target (see http_url.h).
 */
#include "http_url.h"

#include <string.h>

static int hexval(char c)
{
    if (c >= '0' && c <= '9')
        return c - '0';
    if (c >= 'a' && c <= 'f')
        return c - 'a' + 10;
    if (c >= 'A' && c <= 'F')
        return c - 'A' + 10;
    return -1;
}

long kvd_http_pct_decode(const char *s, size_t n, char *out, int plus_space)
{
    size_t o = 0;
    for (size_t i = 0; i < n; i++) {
        char c = s[i];
        if (c == '%') {
            if (n - i < 3)
                return -1;
            int h = hexval(s[i + 1]), l = hexval(s[i + 2]);
            if (h < 0 || l < 0)
                return -1;
            out[o++] = (char)(h << 4 | l);
            i += 2;
        } else if (c == '+' && plus_space) {
            out[o++] = ' ';
        } else {
            out[o++] = c;
        }
    }
    return (long)o;
}

int kvd_http_query_get(const char *q, size_t n, const char *name, const char **val,
                       size_t *vlen)
{
    size_t nlen = strlen(name), i = 0;
    int found = 0;
    while (i < n) {
        size_t end = i;
        while (end < n && q[end] != '&')
            end++;
        size_t eq = i;
        while (eq < end && q[eq] != '=')
            eq++;
        if (eq - i == nlen && memcmp(q + i, name, nlen) == 0) {
            found = 1;
            *val = eq < end ? q + eq + 1 : q + end;
            *vlen = eq < end ? end - eq - 1 : 0;
        }
        i = end + 1;
    }
    return found;
}

int kvd_http_parse_u64(const char *s, size_t n, uint64_t *out)
{
    if (n == 0 || n > 20)
        return -1;
    uint64_t v = 0;
    for (size_t i = 0; i < n; i++) {
        if (s[i] < '0' || s[i] > '9')
            return -1;
        unsigned d = (unsigned)(s[i] - '0');
        if (v > (UINT64_MAX - d) / 10)
            return -1;
        v = v * 10 + d;
    }
    *out = v;
    return 0;
}

int kvd_http_parse_duration(const char *s, size_t n, uint64_t max_ms, uint64_t *ms)
{
    size_t digits = 0;
    while (digits < n && s[digits] >= '0' && s[digits] <= '9')
        digits++;
    static const struct {
        const char *unit;
        uint64_t ms;
    } units[] = {{"", 1000}, {"ms", 1}, {"s", 1000}, {"m", 60000}, {"h", 3600000}};
    uint64_t v;
    if (digits == 0 || kvd_http_parse_u64(s, digits, &v) != 0)
        return -1;
    for (size_t i = 0; i < sizeof units / sizeof units[0]; i++)
        if (strlen(units[i].unit) == n - digits &&
            memcmp(units[i].unit, s + digits, n - digits) == 0) {
            if (v == 0 || v > max_ms / units[i].ms)
                return -1;
            *ms = v * units[i].ms;
            return 0;
        }
    return -1;
}
