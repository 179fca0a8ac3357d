/*
 * glob.c - Redis-style glob matching (see glob.h). Iterative with one
 * backtrack point for the last '*', so a hostile pattern costs at most
 * O(plen * slen), never exponential time.
 */
#include "glob.h"

#include <stdint.h>

/* Matches one class "[...]" at p[*i] (p[*i] == '['); advances *i past it.
 * An unterminated class matches its bytes as far as they go. */
static int class_match(const uint8_t *p, size_t plen, size_t *i, uint8_t c)
{
    size_t k = *i + 1;
    int negate = 0, hit = 0;
    if (k < plen && p[k] == '^') {
        negate = 1;
        k++;
    }
    while (k < plen && p[k] != ']') {
        if (p[k] == '\\' && k + 1 < plen) {
            hit |= p[k + 1] == c;
            k += 2;
        } else if (k + 2 < plen && p[k + 1] == '-' && p[k + 2] != ']') {
            uint8_t lo = p[k], hi = p[k + 2];
            if (lo > hi) {
                uint8_t t = lo;
                lo = hi;
                hi = t;
            }
            hit |= c >= lo && c <= hi;
            k += 3;
        } else {
            hit |= p[k] == c;
            k++;
        }
    }
    *i = k < plen ? k + 1 : k;
    return negate ? !hit : hit;
}

int kvd_glob_match(const void *pat, size_t plen, const void *str, size_t slen)
{
    const uint8_t *p = pat, *s = str;
    size_t i = 0, j = 0;
    size_t star = SIZE_MAX, star_j = 0;
    while (j < slen) {
        if (i < plen && p[i] == '*') {
            while (i < plen && p[i] == '*')
                i++;
            if (i == plen)
                return 1;
            star = i;
            star_j = j;
            continue;
        }
        if (i < plen) {
            size_t next = i + 1;
            int ok;
            if (p[i] == '?') {
                ok = 1;
            } else if (p[i] == '[') {
                ok = class_match(p, plen, &next, s[j]);
            } else if (p[i] == '\\' && i + 1 < plen) {
                ok = p[i + 1] == s[j];
                next = i + 2;
            } else {
                ok = p[i] == s[j];
            }
            if (ok) {
                i = next;
                j++;
                continue;
            }
        }
        if (star == SIZE_MAX)
            return 0;
        i = star; /* let the last '*' take one more byte */
        j = ++star_j;
    }
    while (i < plen && p[i] == '*')
        i++;
    return i == plen;
}

size_t kvd_glob_literal_prefix(const void *pat, size_t plen)
{
    const uint8_t *p = pat;
    size_t i = 0;
    while (i < plen && p[i] != '*' && p[i] != '?' && p[i] != '[' && p[i] != '\\')
        i++;
    return i;
}
