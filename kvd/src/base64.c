/*
 * base64.c - base64 encoding and decoding (see base64.h).
 *
 * The decoder is strict about what it accepts so that one value has one
 * encoding per alphabet: padding only at the end and only as much as the
 * last group needs, and the unused low bits of the last character zero.
 */
#include "base64.h"

#include <stdint.h>

static const char alphabet[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";

void kvd_base64_encode(const void *p, size_t n, char *out)
{
    const uint8_t *b = p;
    size_t i = 0;
    for (; i + 3 <= n; i += 3) {
        uint32_t v = (uint32_t)b[i] << 16 | (uint32_t)b[i + 1] << 8 | b[i + 2];
        *out++ = alphabet[v >> 18];
        *out++ = alphabet[(v >> 12) & 63];
        *out++ = alphabet[(v >> 6) & 63];
        *out++ = alphabet[v & 63];
    }
    if (n - i == 1) {
        uint32_t v = (uint32_t)b[i] << 16;
        *out++ = alphabet[v >> 18];
        *out++ = alphabet[(v >> 12) & 63];
        *out++ = '=';
        *out++ = '=';
    } else if (n - i == 2) {
        uint32_t v = (uint32_t)b[i] << 16 | (uint32_t)b[i + 1] << 8;
        *out++ = alphabet[v >> 18];
        *out++ = alphabet[(v >> 12) & 63];
        *out++ = alphabet[(v >> 6) & 63];
        *out++ = '=';
    }
}

/* The 6-bit value of c, or -1. */
static int sextet(unsigned char c)
{
    if (c >= 'A' && c <= 'Z')
        return c - 'A';
    if (c >= 'a' && c <= 'z')
        return c - 'a' + 26;
    if (c >= '0' && c <= '9')
        return c - '0' + 52;
    if (c == '+' || c == '-')
        return 62;
    if (c == '/' || c == '_')
        return 63;
    return -1;
}

int kvd_base64_decode(const char *s, size_t n, void *out, size_t *outlen)
{
    uint8_t *o = out;
    /* Padding: at most two '=', only to complete the last group of 4. */
    size_t pad = 0;
    while (n > 0 && s[n - 1] == '=' && pad < 2) {
        n--;
        pad++;
    }
    if (pad && (n + pad) % 4 != 0)
        return -1;
    if (n % 4 == 1)
        return -1; /* one character carries less than a byte */
    size_t len = 0, i = 0;
    for (; i + 4 <= n; i += 4) {
        int a = sextet((unsigned char)s[i]), b = sextet((unsigned char)s[i + 1]);
        int c = sextet((unsigned char)s[i + 2]), d = sextet((unsigned char)s[i + 3]);
        if ((a | b | c | d) < 0)
            return -1;
        uint32_t v = (uint32_t)a << 18 | (uint32_t)b << 12 | (uint32_t)c << 6 | (uint32_t)d;
        o[len++] = (uint8_t)(v >> 16);
        o[len++] = (uint8_t)(v >> 8);
        o[len++] = (uint8_t)v;
    }
    size_t rest = n - i; /* 0, 2 or 3 */
    if (rest) {
        int a = sextet((unsigned char)s[i]), b = sextet((unsigned char)s[i + 1]);
        int c = rest == 3 ? sextet((unsigned char)s[i + 2]) : 0;
        if ((a | b | c) < 0)
            return -1;
        uint32_t v = (uint32_t)a << 18 | (uint32_t)b << 12 | (uint32_t)c << 6;
        if ((rest == 2 && (v & 0xffff)) || (rest == 3 && (v & 0xff)))
            return -1; /* bits past the last byte must be zero */
        o[len++] = (uint8_t)(v >> 16);
        if (rest == 3)
            o[len++] = (uint8_t)(v >> 8);
    }
    *outlen = len;
    return 0;
}
