/*
 * bytes.h - the little-endian byte formats of the replication layer
 * (Raft entries, recorded replies, state-machine snapshots): encoding
 * numbers, and a bounded reader whose failures stick (a short or
 * malformed input sets bad and every later read returns zero).
 */
#ifndef KVD_REPL_BYTES_H
#define KVD_REPL_BYTES_H

#include <stddef.h>
#include <stdint.h>

/* v into p[0..n), least significant byte first (n <= 8). */
static inline void kvd_le_store(unsigned char *p, uint64_t v, int n)
{
    for (int i = 0; i < n; i++)
        p[i] = (unsigned char)(v >> (8 * i));
}

typedef struct kvd_rd {
    const unsigned char *p, *end;
    int bad;
} kvd_rd;

static inline kvd_rd kvd_rd_init(const void *buf, size_t len)
{
    kvd_rd r = {buf, (const unsigned char *)buf + len, 0};
    return r;
}

/* The next n bytes, or NULL (and bad) if fewer are left. */
static inline const unsigned char *kvd_rd_take(kvd_rd *r, size_t n)
{
    if (r->bad || (size_t)(r->end - r->p) < n) {
        r->bad = 1;
        return NULL;
    }
    const unsigned char *q = r->p;
    r->p += n;
    return q;
}

/* An n-byte little-endian number (n <= 8); 0 when bad. */
static inline uint64_t kvd_rd_num(kvd_rd *r, int n)
{
    const unsigned char *q = kvd_rd_take(r, (size_t)n);
    uint64_t v = 0;
    for (int i = 0; q && i < n; i++)
        v |= (uint64_t)q[i] << (8 * i);
    return v;
}

#endif /* KVD_REPL_BYTES_H */
