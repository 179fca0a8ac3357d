/*
 * record.c - encoding and checking frames and change records (record.h).
 */
#include <stdlib.h>
#include <string.h>


#include "hash.h"
#include "record.h"

#define CRC_SEED 0x6c69626b76ull /* "libkv" */

uint32_t kv__crc(const void *p, size_t n)
{
    return (uint32_t)XXH3_64bits_withSeed(p, n, CRC_SEED);
}

/* SplitMix64 (Steele, Lea, Flood 2014): the mask's keystream. */
static uint64_t mix64(uint64_t z)
{
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
    return z ^ (z >> 31);
}

void kv__frame_mask(unsigned char *p, size_t n)
{
    uint64_t seed = (uint64_t)n * 0x9e3779b97f4a7c15ull ^ 0x6b766d61736b2121ull;
    size_t i = 0;
    for (uint64_t w = 0; i + 8 <= n; i += 8, w++) {
        uint64_t x, k = mix64(seed + w);
        memcpy(&x, p + i, 8);
        x ^= k;
        memcpy(p + i, &x, 8);
    }
    uint64_t k = mix64(seed + n / 8);
    for (unsigned j = 0; i < n; i++, j++)
        p[i] ^= (unsigned char)(k >> (8 * j));
}

void kv__frame_seal(unsigned char *dst, size_t n)
{
    kv__frame_mask(dst + KV__FRAME_HDR, n);
    kv__put64(dst, n);
    kv__put32(dst + 8, kv__crc(dst + KV__FRAME_HDR, n));
    kv__put32(dst + 12, kv__crc(dst, 12));
    memset(dst + KV__FRAME_HDR + n, 0, kv__align8(n) - n);
}

int kv__frame_check(const unsigned char *p, size_t avail, uint64_t *len)
{
    if (avail < KV__FRAME_HDR) {
        for (size_t i = 0; i < avail; i++)
            if (p[i])
                return KV__FRAME_SHORT;
        return KV__FRAME_END;
    }
    static const unsigned char zero[KV__FRAME_HDR];
    if (memcmp(p, zero, KV__FRAME_HDR) == 0)
        return KV__FRAME_END;
    if (kv__get32(p + 12) != kv__crc(p, 12))
        return KV__FRAME_BAD;
    uint64_t n = kv__get64(p);
    if (n > avail - KV__FRAME_HDR)
        return KV__FRAME_SHORT;
    if (kv__get32(p + 8) != kv__crc(p + KV__FRAME_HDR, (size_t)n))
        return KV__FRAME_BAD;
    *len = n;
    return KV__FRAME_OK;
}

size_t kv__record_size(const kv__record *r)
{
    size_t n = KV__REC_HDR;
    for (size_t i = 0; i < r->nchanges; i++)
        n += KV__CHANGE_HDR + r->changes[i].klen +
             (r->changes[i].deleted ? 0 : r->changes[i].vlen + kv__ext_size(r->changes[i].expire_at));
    return n;
}

void kv__record_encode(const kv__record *r, unsigned char *p)
{
    p[0] = KV__REC_CHANGE;
    p[1] = 0;
    kv__put16(p + 2, 0);
    kv__put32(p + 4, (uint32_t)r->nchanges);
    kv__put64(p + 8, r->revision);
    p += KV__REC_HDR;
    for (size_t i = 0; i < r->nchanges; i++) {
        const kv__change *c = &r->changes[i];
        size_t vlen = c->deleted ? 0 : c->vlen;
        uint64_t exp = c->deleted ? 0 : c->expire_at;
        p[0] = c->deleted ? KV__OP_DELETE : KV__OP_SET;
        p[1] = 0;
        kv__put16(p + 2, (uint16_t)kv__ext_size(exp));
        kv__put32(p + 4, (uint32_t)c->klen);
        kv__put32(p + 8, (uint32_t)vlen);
        p += KV__CHANGE_HDR;
        kv__ext_put(p, exp);
        p += kv__ext_size(exp);
        memcpy(p, c->key, c->klen);
        p += c->klen;
        if (vlen)
            memcpy(p, c->val, vlen);
        p += vlen;
    }
}

bool kv__record_decode(const unsigned char *p, size_t n, kv__record *out,
                       kv__change **changes, bool *nomem)
{
    *nomem = false;
    *changes = NULL;
    if (n < KV__REC_HDR || p[0] != KV__REC_CHANGE)
        return false;
    size_t ext = kv__get16(p + 2);
    uint64_t nch = kv__get32(p + 4);
    uint64_t rev = kv__get64(p + 8);
    if (rev == 0 || nch == 0 || KV__REC_HDR + ext > n || nch > (n - KV__REC_HDR) / KV__CHANGE_HDR)
        return false;
    kv__change *ch = malloc(nch * sizeof *ch);
    if (!ch) {
        *nomem = true;
        return false;
    }
    size_t off = KV__REC_HDR + ext;
    for (uint64_t i = 0; i < nch; i++) {
        if (n - off < KV__CHANGE_HDR)
            goto bad;
        const unsigned char *c = p + off;
        unsigned op = c[0];
        size_t cext = kv__get16(c + 2);
        size_t klen = kv__get32(c + 4), vlen = kv__get32(c + 8);
        off += KV__CHANGE_HDR;
        if ((op != KV__OP_SET && op != KV__OP_DELETE) || klen == 0 ||
            (op == KV__OP_DELETE && vlen) || cext > n - off || klen > n - off - cext ||
            vlen > n - off - cext - klen)
            goto bad;
        uint64_t exp;
        kv__ext_parse(p + off, cext, &exp);
        off += cext;
        ch[i] = (kv__change){p + off, klen, op == KV__OP_SET ? p + off + klen : NULL, vlen,
                             op == KV__OP_DELETE, op == KV__OP_SET ? exp : 0};
        off += klen + vlen;
    }
    if (off != n)
        goto bad;
    *out = (kv__record){rev, (size_t)nch, ch};
    *changes = ch;
    return true;
bad:
    free(ch);
    return false;
}
