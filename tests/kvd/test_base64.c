/*
 * test_base64.c - kvd's base64 (kvd/src/base64.c): RFC 4648's test
 * vectors, every byte value round trip, both alphabets, optional padding,
 * and refusal of what is not base64.
 */
#include <criterion/criterion.h>
#include <stdint.h>
#include <string.h>

#include "base64.h"

static void encodes_to(const char *in, const char *want)
{
    char out[64];
    size_t n = strlen(in);
    cr_assert_eq(kvd_base64_encoded_len(n), strlen(want));
    kvd_base64_encode(in, n, out);
    cr_assert(memcmp(out, want, strlen(want)) == 0, "%s -> %.*s", in, (int)strlen(want), out);
}

static int decode(const char *in, char *out, size_t *n)
{
    return kvd_base64_decode(in, strlen(in), out, n);
}

Test(base64, rfc4648_vectors)
{
    const char *v[][2] = {{"", ""},          {"f", "Zg=="},         {"fo", "Zm8="},
                          {"foo", "Zm9v"},   {"foob", "Zm9vYg=="},  {"fooba", "Zm9vYmE="},
                          {"foobar", "Zm9vYmFy"}};
    for (size_t i = 0; i < sizeof v / sizeof v[0]; i++) {
        encodes_to(v[i][0], v[i][1]);
        char out[16];
        size_t n = 99;
        cr_assert_eq(decode(v[i][1], out, &n), 0, "%s", v[i][1]);
        cr_assert_eq(n, strlen(v[i][0]));
        cr_assert(memcmp(out, v[i][0], n) == 0);
    }
}

Test(base64, every_byte_round_trips)
{
    uint8_t in[256], back[260];
    char enc[400];
    for (int i = 0; i < 256; i++)
        in[i] = (uint8_t)i;
    for (size_t len = 0; len <= 256; len++) {
        kvd_base64_encode(in, len, enc);
        size_t e = kvd_base64_encoded_len(len), n = 0;
        cr_assert_leq(len, kvd_base64_decoded_max(e));
        cr_assert_eq(kvd_base64_decode(enc, e, back, &n), 0);
        cr_assert_eq(n, len);
        cr_assert(memcmp(in, back, len) == 0);
    }
}

Test(base64, url_safe_alphabet_and_no_padding)
{
    char out[8];
    size_t n = 0;
    cr_assert_eq(decode("-_8", out, &n), 0); /* = "+/8" = fb ff */
    cr_assert_eq(n, 2);
    cr_assert_eq((uint8_t)out[0], 0xfb);
    cr_assert_eq((uint8_t)out[1], 0xff);
    cr_assert_eq(decode("Zg", out, &n), 0);
    cr_assert_eq(n, 1);
    cr_assert_eq(out[0], 'f');
}

Test(base64, refuses_what_is_not_base64)
{
    const char *bad[] = {"Z",     "Zg=",   "Zg===", "Z===",  "Zm9v\n", " Zm9v", "Zm=v",
                         "Zh==",  "Zm9=",  "Zm 9v", "Zm9v=", "====",   "Zm9vYg=!", "\x80Zg="};
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        char out[16];
        size_t n = 0;
        cr_assert_eq(decode(bad[i], out, &n), -1, "\"%s\" was accepted", bad[i]);
    }
}
