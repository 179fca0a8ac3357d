/*
 * test_record.c - the record format can grow (libkv/src/record.c,
 * white-box): a reader of format version 1 skips extension bytes it does
 * not know, in the record header and in each change, and refuses
 * malformed lengths. Also masking: a frame of zeros is not zeros on disk.
 */
#include "durtest.h"

#include "record.h"

static size_t put_change(unsigned char *p, unsigned op, const char *key, const char *val,
                         size_t ext)
{
    size_t kl = strlen(key), vl = val ? strlen(val) : 0;
    p[0] = (unsigned char)op;
    p[1] = 0;
    kv__put16(p + 2, (uint16_t)ext);
    kv__put32(p + 4, (uint32_t)kl);
    kv__put32(p + 8, (uint32_t)vl);
    memset(p + 12, 0xee, ext); /* a future field, e.g. an expiry time */
    memcpy(p + 12 + ext, key, kl);
    if (vl)
        memcpy(p + 12 + ext + kl, val, vl);
    return 12 + ext + kl + vl;
}

Test(record, a_reader_skips_extension_bytes_it_does_not_know)
{
    unsigned char p[256];
    p[0] = KV__REC_CHANGE;
    p[1] = 0;
    kv__put16(p + 2, 5); /* 5 bytes of record extension */
    kv__put32(p + 4, 2);
    kv__put64(p + 8, 77);
    memset(p + 16, 0xab, 5);
    size_t n = 21;
    n += put_change(p + n, KV__OP_SET, "key", "value", 9);
    n += put_change(p + n, KV__OP_DELETE, "gone", NULL, 3);
    kv__record r;
    kv__change *ch;
    bool nomem;
    cr_assert(kv__record_decode(p, n, &r, &ch, &nomem));
    cr_assert_eq(r.revision, 77);
    cr_assert_eq(r.nchanges, 2);
    cr_assert_eq(ch[0].klen, 3);
    cr_assert_eq(memcmp(ch[0].key, "key", 3), 0);
    cr_assert_eq(ch[0].vlen, 5);
    cr_assert_eq(memcmp(ch[0].val, "value", 5), 0);
    cr_assert(!ch[0].deleted);
    cr_assert(ch[1].deleted);
    cr_assert_eq(memcmp(ch[1].key, "gone", 4), 0);
    free(ch);

    /* an extension longer than what is left, a trailing byte, a delete
     * with a value: refused */
    unsigned char q[256];
    memcpy(q, p, n);
    kv__put16(q + 2, 200);
    cr_assert(!kv__record_decode(q, n, &r, &ch, &nomem));
    cr_assert(!nomem);
    cr_assert(!kv__record_decode(p, n + 1, &r, &ch, &nomem));
    memcpy(q, p, n);
    kv__put32(q + n - (12 + 3 + 4) + 8, 1);
    cr_assert(!kv__record_decode(q, n, &r, &ch, &nomem));
}

Test(record, a_round_trip_through_a_masked_frame)
{
    kv__change c[2] = {{"a", 1, NULL, 0, true, 0}, {"bb", 2, NULL, 0, false, 0}};
    static char zeros[4096];
    c[1].val = zeros;
    c[1].vlen = sizeof zeros;
    kv__record r = {9, 2, c};
    size_t n = kv__record_size(&r);
    unsigned char *f = calloc(1, kv__frame_size(n));
    kv__record_encode(&r, f + KV__FRAME_HDR);
    kv__frame_seal(f, n);
    /* no aligned 512-byte run of zeros in the stored payload */
    for (size_t o = KV__FRAME_HDR; o + 512 <= KV__FRAME_HDR + n; o += 512) {
        size_t z = 0;
        for (size_t i = 0; i < 512; i++)
            z += f[o + i] == 0;
        cr_assert_lt(z, 512, "a zero sector at %zu", o);
    }
    uint64_t len;
    cr_assert_eq(kv__frame_check(f, kv__frame_size(n), &len), KV__FRAME_OK);
    cr_assert_eq(len, n);
    kv__frame_mask(f + KV__FRAME_HDR, n);
    kv__record back;
    kv__change *ch;
    bool nomem;
    cr_assert(kv__record_decode(f + KV__FRAME_HDR, n, &back, &ch, &nomem));
    cr_assert_eq(back.revision, 9);
    cr_assert(ch[0].deleted);
    cr_assert_eq(ch[1].vlen, sizeof zeros);
    cr_assert_eq(memcmp(ch[1].val, zeros, sizeof zeros), 0);
    free(ch);
    free(f);
}
