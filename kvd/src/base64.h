/*
 * base64.h - base64 (RFC 4648) for kvd's JSON: keys and values travel in
 * JSON as base64 text, as in etcd's JSON gateway.
 *
 * Encoding uses the standard alphabet with '=' padding. Decoding accepts
 * the standard and the URL-safe alphabet ('-' '_'), with or without
 * padding, and nothing else (no whitespace). Pure functions, any thread.
 */
#ifndef KVD_BASE64_H
#define KVD_BASE64_H

#include <stddef.h>

/* Length of the encoding of n bytes (padded). */
static inline size_t kvd_base64_encoded_len(size_t n)
{
    return (n + 2) / 3 * 4;
}

/* Most bytes that text of n characters decodes to. */
static inline size_t kvd_base64_decoded_max(size_t n)
{
    return n / 4 * 3 + 3;
}

/* Writes the encoding of p[0..n) to out (kvd_base64_encoded_len(n)
 * bytes, no terminator). */
void kvd_base64_encode(const void *p, size_t n, char *out);

/* Decodes s[0..n) into out (room for kvd_base64_decoded_max(n) bytes);
 * *outlen receives the length. Returns 0, or -1 if s is not base64 (a
 * character outside the alphabets, padding inside the text, a lone
 * trailing character, or non-zero bits after the last byte). */
int kvd_base64_decode(const char *s, size_t n, void *out, size_t *outlen);

#endif /* KVD_BASE64_H */
