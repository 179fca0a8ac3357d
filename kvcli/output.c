/*
 * output.c - how kvcli shows bytes: escaped text for people, JSON for
 * scripts.
 *
 * Text form: valid UTF-8 that prints (so "🎂" or "é") passes through;
 * backslash, newline, tab and carriage return become \\ \n \t \r; every
 * other byte that is a control character or not part of valid UTF-8
 * becomes \xNN. The output is therefore always one line per value and
 * unambiguous (a literal backslash is doubled).
 *
 * JSON form: keys and values that are valid UTF-8 without NUL bytes are
 * JSON strings (controls escaped by JSON itself); anything else is an object
 * {"base64": "<RFC 4648 standard base64>"}. Input (txn files) accepts the
 * same two forms.
 */
#include <stdlib.h>
#include <string.h>

#include "kvcli.h"

/* Length of the valid UTF-8 sequence at p (RFC 3629: no overlongs, no
 * surrogates, at most U+10FFFF), 0 if invalid; *cp receives the code
 * point. */
static size_t utf8_seq(const unsigned char *p, size_t n, uint32_t *cp)
{
    unsigned char c = p[0];
    size_t len;
    uint32_t v, min;
    if (c < 0x80) {
        *cp = c;
        return 1;
    } else if (c >= 0xc2 && c <= 0xdf) {
        len = 2, v = c & 0x1f, min = 0x80;
    } else if (c >= 0xe0 && c <= 0xef) {
        len = 3, v = c & 0x0f, min = 0x800;
    } else if (c >= 0xf0 && c <= 0xf4) {
        len = 4, v = c & 0x07, min = 0x10000;
    } else {
        return 0;
    }
    if (len > n)
        return 0;
    for (size_t i = 1; i < len; i++) {
        if ((p[i] & 0xc0) != 0x80)
            return 0;
        v = (v << 6) | (p[i] & 0x3f);
    }
    if (v < min || v > 0x10ffff || (v >= 0xd800 && v <= 0xdfff))
        return 0;
    *cp = v;
    return len;
}

int kvcli_utf8_valid(const unsigned char *p, size_t n)
{
    uint32_t cp;
    for (size_t i = 0; i < n;) {
        size_t l = utf8_seq(p + i, n - i, &cp);
        if (l == 0)
            return 0;
        i += l;
    }
    return 1;
}

void kvcli_put_escaped(FILE *f, const void *data, size_t n)
{
    const unsigned char *p = data;
    uint32_t cp;
    for (size_t i = 0; i < n;) {
        size_t l = utf8_seq(p + i, n - i, &cp);
        if (l == 0) {
            fprintf(f, "\\x%02x", p[i]);
            i++;
            continue;
        }
        switch (cp) {
        case '\\': fputs("\\\\", f); break;
        case '\n': fputs("\\n", f); break;
        case '\t': fputs("\\t", f); break;
        case '\r': fputs("\\r", f); break;
        default:
            /* C0, DEL and C1 controls would move the cursor or worse. */
            if (cp < 0x20 || cp == 0x7f || (cp >= 0x80 && cp < 0xa0)) {
                for (size_t k = 0; k < l; k++)
                    fprintf(f, "\\x%02x", p[i + k]);
            } else {
                fwrite(p + i, 1, l, f);
            }
        }
        i += l;
    }
}

char *kvcli_escape(const void *p, size_t n)
{
    char *out = NULL;
    size_t len = 0;
    FILE *f = open_memstream(&out, &len);
    if (f == NULL)
        return NULL;
    kvcli_put_escaped(f, p, n);
    if (fclose(f) != 0) {
        free(out);
        return NULL;
    }
    return out;
}

static const char b64[] =
    "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";

char *kvcli_base64_encode(const void *data, size_t n, size_t *outlen)
{
    const unsigned char *p = data;
    size_t len = (n + 2) / 3 * 4;
    char *o = malloc(len + 1);
    if (o == NULL)
        return NULL;
    size_t j = 0;
    for (size_t i = 0; i < n; i += 3) {
        uint32_t v = (uint32_t)p[i] << 16;
        if (i + 1 < n)
            v |= (uint32_t)p[i + 1] << 8;
        if (i + 2 < n)
            v |= p[i + 2];
        o[j++] = b64[(v >> 18) & 63];
        o[j++] = b64[(v >> 12) & 63];
        o[j++] = i + 1 < n ? b64[(v >> 6) & 63] : '=';
        o[j++] = i + 2 < n ? b64[v & 63] : '=';
    }
    o[j] = '\0';
    *outlen = j;
    return o;
}

static int b64_val(char c)
{
    const char *q = c ? strchr(b64, c) : NULL;
    return q ? (int)(q - b64) : -1;
}

int kvcli_base64_decode(const char *s, size_t n, unsigned char **out,
                        size_t *outlen)
{
    if (n % 4 != 0)
        return -1;
    unsigned char *o = malloc(n / 4 * 3 + 1);
    if (o == NULL)
        return -1;
    size_t j = 0;
    for (size_t i = 0; i < n; i += 4) {
        int pad = (s[i + 3] == '=') + (s[i + 2] == '=');
        if (pad && i + 4 != n)
            goto bad;
        if (pad == 1 && s[i + 2] == '=')
            goto bad;
        int a = b64_val(s[i]), b = b64_val(s[i + 1]);
        int c = pad >= 2 ? 0 : b64_val(s[i + 2]);
        int d = pad >= 1 ? 0 : b64_val(s[i + 3]);
        if (a < 0 || b < 0 || c < 0 || d < 0)
            goto bad;
        uint32_t v = (uint32_t)a << 18 | (uint32_t)b << 12 |
                     (uint32_t)c << 6 | (uint32_t)d;
        o[j++] = (unsigned char)(v >> 16);
        if (pad < 2)
            o[j++] = (unsigned char)(v >> 8);
        if (pad < 1)
            o[j++] = (unsigned char)v;
    }
    *out = o;
    *outlen = j;
    return 0;
bad:
    free(o);
    return -1;
}

json_t *kvcli_json_bytes(const void *p, size_t n)
{
    /* NUL is valid UTF-8, but many JSON readers reject \u0000. */
    if (kvcli_utf8_valid(p, n) && (n == 0 || memchr(p, 0, n) == NULL))
        return json_stringn(n ? p : "", n);
    size_t len;
    char *enc = kvcli_base64_encode(p, n, &len);
    if (enc == NULL)
        return NULL;
    json_t *o = json_pack("{s:s%}", "base64", enc, len);
    free(enc);
    return o;
}

int kvcli_json_to_bytes(const json_t *j, unsigned char **out, size_t *n)
{
    if (json_is_string(j)) {
        size_t len = json_string_length(j);
        unsigned char *o = malloc(len + 1);
        if (o == NULL)
            return -1;
        memcpy(o, json_string_value(j), len);
        *out = o;
        *n = len;
        return 0;
    }
    const json_t *b = json_is_object(j) && json_object_size(j) == 1
                          ? json_object_get(j, "base64")
                          : NULL;
    if (!json_is_string(b))
        return -1;
    return kvcli_base64_decode(json_string_value(b), json_string_length(b), out,
                               n);
}

void kvcli_json_print(json_t *j)
{
    if (j == NULL) {
        kvcli_err("out of memory building the JSON output");
        return;
    }
    /* Compact and one line, so scripts can read results line by line. */
    /* 15 digits: no 2.8159999999999998 for 2.816. */
    kvcli_error_json_done();
    json_dumpf(j, stdout,
               JSON_COMPACT | JSON_ENCODE_ANY | JSON_REAL_PRECISION(15));
    fputc('\n', stdout);
    json_decref(j);
}
