/*
 * glob.h - Redis-style glob patterns over byte strings (SCAN's MATCH,
 * KEYS): * any run, ? one byte, [abc] [a-z] [^a] classes, \x a literal x.
 */
#ifndef KVD_GLOB_H
#define KVD_GLOB_H

#include <stddef.h>

/* 1 if s[0..slen) matches the pattern p[0..plen), else 0. */
int kvd_glob_match(const void *p, size_t plen, const void *s, size_t slen);

/* How many leading bytes of the pattern are literal (every match starts
 * with them): the prefix a scan can be narrowed to. */
size_t kvd_glob_literal_prefix(const void *p, size_t plen);

#endif /* KVD_GLOB_H */
