/*
 * http_url.h - the pieces of an HTTP request target kvd reads: keys as
 * percent-encoded bytes in the path, query parameters, decimal numbers.
 *
 * Pure functions on (pointer, length) spans, any thread.
 */
#ifndef KVD_HTTP_URL_H
#define KVD_HTTP_URL_H

#include <stddef.h>
#include <stdint.h>

/* Decodes the percent-escapes ("%2F") of s[0..n) into out, which has
 * room for n bytes (decoding never grows). With plus_space, '+' is a
 * space (form encoding, query strings); in a path it stays '+'. Returns
 * the decoded length, or -1 for a '%' not followed by two hex digits. */
long kvd_http_pct_decode(const char *s, size_t n, char *out, int plus_space);

/* Finds parameter name in the query string q[0..n) ("a=1&b=2", without
 * the '?'): 1 and its raw (still encoded) value in *val, *vlen when
 * present (the last one when repeated; "name" alone has an empty value),
 * else 0. */
int kvd_http_query_get(const char *q, size_t n, const char *name, const char **val,
                       size_t *vlen);

/* Parses s[0..n) as a decimal number of at most 20 digits that fits in
 * 64 bits (no sign, no spaces). Returns 0, or -1. */
int kvd_http_parse_u64(const char *s, size_t n, uint64_t *out);

/* Parses a duration s[0..n): a number with a unit ms, s, m or h (a bare
 * number is seconds), "30s", "1500ms". Returns 0 and *ms (>= 1), or -1:
 * not that form, 0, or over max_ms. */
int kvd_http_parse_duration(const char *s, size_t n, uint64_t max_ms, uint64_t *ms);

#endif /* KVD_HTTP_URL_H */
