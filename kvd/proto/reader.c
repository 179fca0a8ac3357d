/*
 * reader.c - kv__rd, the bounds-checked MessagePack pull reader.
 *
 * Why not msgpack-c's unpacker: see proto_internal.h. This reader knows
 * just the formats of the MessagePack spec, reads one value at a time
 * where the caller expects it, and never looks past r->end:
 *   - every length is checked against the bytes left before it is used;
 *   - array counts are checked against the bytes left (each element takes
 *     at least one byte), map counts likewise (two bytes per entry), so a
 *     caller may allocate `count` structs without trusting the input;
 *   - skipping nests at most max_depth levels (no unbounded recursion),
 *     or, for kv__rd_skip_any, any depth with a counter instead of a
 *     stack.
 */
#include <string.h>

#include "proto_internal.h"

static size_t left(const kv__rd *r)
{
    return (size_t)(r->end - r->p);
}

/* Big-endian loads of n bytes at r->p; the caller checked the length. */
static uint64_t load_be(const uint8_t *p, size_t n)
{
    uint64_t v = 0;
    for (size_t i = 0; i < n; i++)
        v = (v << 8) | p[i];
    return v;
}

/* Consumes a type byte plus an n-byte big-endian length/payload field. */
static int take_be(kv__rd *r, size_t n, uint64_t *v)
{
    if (left(r) < 1 + n)
        return -1;
    *v = load_be(r->p + 1, n);
    r->p += 1 + n;
    return 0;
}

int kv__rd_array(kv__rd *r, size_t *n)
{
    uint64_t v;
    const uint8_t *p0 = r->p;
    if (left(r) < 1)
        return -1;
    uint8_t t = r->p[0];
    if (t >= 0x90 && t <= 0x9f) {
        v = t & 0x0f;
        r->p++;
    } else if (t == 0xdc) {
        if (take_be(r, 2, &v))
            return -1;
    } else if (t == 0xdd) {
        if (take_be(r, 4, &v))
            return -1;
    } else {
        return -1;
    }
    if (v > left(r)) {
        r->p = p0;
        return -1;
    }
    *n = (size_t)v;
    return 0;
}

int kv__rd_map(kv__rd *r, size_t *n)
{
    uint64_t v;
    const uint8_t *p0 = r->p;
    if (left(r) < 1)
        return -1;
    uint8_t t = r->p[0];
    if (t >= 0x80 && t <= 0x8f) {
        v = t & 0x0f;
        r->p++;
    } else if (t == 0xde) {
        if (take_be(r, 2, &v))
            return -1;
    } else if (t == 0xdf) {
        if (take_be(r, 4, &v))
            return -1;
    } else {
        return -1;
    }
    if (v > left(r) / 2) {
        r->p = p0;
        return -1;
    }
    *n = (size_t)v;
    return 0;
}

/* Reads any integer format as a signed/unsigned pair. */
static int read_int(kv__rd *r, int *neg, uint64_t *u)
{
    uint64_t v;
    if (left(r) < 1)
        return -1;
    uint8_t t = r->p[0];
    *neg = 0;
    if (t <= 0x7f) {
        *u = t;
        r->p++;
        return 0;
    }
    if (t >= 0xe0) {
        *neg = 1;
        *u = (uint64_t)(int64_t)(int8_t)t;
        r->p++;
        return 0;
    }
    switch (t) {
    case 0xcc: case 0xcd: case 0xce: case 0xcf:
        if (take_be(r, (size_t)1 << (t - 0xcc), &v))
            return -1;
        *u = v;
        return 0;
    case 0xd0: case 0xd1: case 0xd2: case 0xd3: {
        size_t n = (size_t)1 << (t - 0xd0);
        if (take_be(r, n, &v))
            return -1;
        /* sign-extend the n-byte two's complement value */
        if (n < 8 && (v >> (8 * n - 1)) & 1)
            v |= ~(uint64_t)0 << (8 * n);
        *neg = (int64_t)v < 0;
        *u = v;
        return 0;
    }
    default:
        return -1;
    }
}

int kv__rd_uint(kv__rd *r, uint64_t *v)
{
    int neg;
    uint64_t u;
    const uint8_t *p0 = r->p;
    if (read_int(r, &neg, &u))
        return -1;
    if (neg) {
        r->p = p0;
        return -1;
    }
    *v = u;
    return 0;
}

int kv__rd_bool(kv__rd *r, int *v)
{
    if (left(r) < 1 || (r->p[0] != 0xc2 && r->p[0] != 0xc3))
        return -1;
    *v = r->p[0] == 0xc3;
    r->p++;
    return 0;
}

int kv__rd_number(kv__rd *r, int *is_uint, uint64_t *u, double *d)
{
    if (left(r) < 1)
        return -1;
    uint8_t t = r->p[0];
    if (t == 0xca || t == 0xcb) {
        uint64_t bits;
        if (take_be(r, t == 0xca ? 4 : 8, &bits))
            return -1;
        if (t == 0xca) {
            uint32_t b32 = (uint32_t)bits;
            float f;
            memcpy(&f, &b32, sizeof f);
            *d = f;
        } else {
            memcpy(d, &bits, sizeof *d);
        }
        *is_uint = 0;
        return 0;
    }
    int neg;
    uint64_t v;
    if (read_int(r, &neg, &v))
        return -1;
    if (neg) {
        *is_uint = 0;
        *d = (double)(int64_t)v;
    } else {
        *is_uint = 1;
        *u = v;
    }
    return 0;
}

int kv__rd_bytes(kv__rd *r, kv_key *out)
{
    uint64_t n;
    const uint8_t *p0 = r->p;
    if (left(r) < 1)
        return -1;
    uint8_t t = r->p[0];
    if (t >= 0xa0 && t <= 0xbf) {
        n = t & 0x1f;
        r->p++;
    } else if (t == 0xd9 || t == 0xc4) {
        if (take_be(r, 1, &n))
            return -1;
    } else if (t == 0xda || t == 0xc5) {
        if (take_be(r, 2, &n))
            return -1;
    } else if (t == 0xdb || t == 0xc6) {
        if (take_be(r, 4, &n))
            return -1;
    } else {
        return -1;
    }
    if (n > left(r)) {
        r->p = p0;
        return -1;
    }
    out->data = r->p;
    out->len = (size_t)n;
    r->p += n;
    return 0;
}

int kv__rd_nil(kv__rd *r)
{
    if (left(r) < 1)
        return -1;
    if (r->p[0] != 0xc0)
        return 0;
    r->p++;
    return 1;
}

int kv__rd_is_str(const kv__rd *r)
{
    if (left(r) < 1)
        return 0;
    uint8_t t = r->p[0];
    return (t >= 0xa0 && t <= 0xbf) || t == 0xd9 || t == 0xda || t == 0xdb;
}

static int skip(kv__rd *r, int max_depth);

int kv__rd_skip(kv__rd *r, int max_depth)
{
    const uint8_t *p0 = r->p;
    if (skip(r, max_depth)) {
        r->p = p0;
        return -1;
    }
    return 0;
}

static int skip(kv__rd *r, int max_depth)
{
    uint64_t n;
    size_t count;
    kv_key k;
    if (left(r) < 1)
        return -1;
    uint8_t t = r->p[0];
    if (t <= 0x7f || t >= 0xe0 || t == 0xc0 || t == 0xc2 || t == 0xc3) {
        r->p++;
        return 0;
    }
    if ((t >= 0x90 && t <= 0x9f) || t == 0xdc || t == 0xdd) {
        if (max_depth <= 0 || kv__rd_array(r, &count))
            return -1;
        for (size_t i = 0; i < count; i++)
            if (skip(r, max_depth - 1))
                return -1;
        return 0;
    }
    if ((t >= 0x80 && t <= 0x8f) || t == 0xde || t == 0xdf) {
        if (max_depth <= 0 || kv__rd_map(r, &count))
            return -1;
        for (size_t i = 0; i < 2 * count; i++)
            if (skip(r, max_depth - 1))
                return -1;
        return 0;
    }
    if ((t >= 0xa0 && t <= 0xbf) || (t >= 0xc4 && t <= 0xc6) ||
        (t >= 0xd9 && t <= 0xdb))
        return kv__rd_bytes(r, &k);
    switch (t) {
    case 0xcc: case 0xcd: case 0xce: case 0xcf:
    case 0xd0: case 0xd1: case 0xd2: case 0xd3: {
        int neg;
        return read_int(r, &neg, &n);
    }
    case 0xca:
        return take_be(r, 4, &n);
    case 0xcb:
        return take_be(r, 8, &n);
    case 0xd4: case 0xd5: case 0xd6: case 0xd7: case 0xd8: /* fixext */
        n = ((uint64_t)1 << (t - 0xd4)) + 1; /* type byte + data */
        if (left(r) < 1 + n)
            return -1;
        r->p += 1 + n;
        return 0;
    case 0xc7: case 0xc8: case 0xc9: /* ext 8/16/32 */
        if (take_be(r, (size_t)1 << (t - 0xc7), &n))
            return -1;
        if (left(r) < 1 || n > left(r) - 1)
            return -1;
        r->p += 1 + n;
        return 0;
    default: /* 0xc1: never used */
        return -1;
    }
}

int kv__rd_skip_any(kv__rd *r)
{
    const uint8_t *p0 = r->p;
    /* values still to skip; each takes at least one byte, so more than
     * the bytes left means a truncated input */
    uint64_t pending = 1;
    while (pending > 0) {
        size_t n;
        if (left(r) < 1)
            goto fail;
        uint8_t t = r->p[0];
        pending--;
        if ((t >= 0x90 && t <= 0x9f) || t == 0xdc || t == 0xdd) {
            if (kv__rd_array(r, &n))
                goto fail;
            pending += n;
        } else if ((t >= 0x80 && t <= 0x8f) || t == 0xde || t == 0xdf) {
            if (kv__rd_map(r, &n))
                goto fail;
            pending += 2 * (uint64_t)n;
        } else if (kv__rd_skip(r, 0)) {
            goto fail;
        }
        if (pending > left(r))
            goto fail;
    }
    return 0;
fail:
    r->p = p0;
    return -1;
}
