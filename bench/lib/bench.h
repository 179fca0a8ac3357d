/*
 * bench.h - kvbench_lib: what every contender implements, and the shared
 * helpers (keys, random numbers, clocks) of the library benchmark.
 *
 * A contender is one key-value structure driven by the same workloads:
 * libkv itself and the references built only for this benchmark (liburcu's
 * cds_lfht, a chained table under one pthread rwlock, and, when their
 * headers are installed, libcuckoo's cuckoohash_map and oneTBB's
 * concurrent_hash_map, written in C++ behind this C interface). Each
 * provides the operations of kvb_contender through function pointers, so
 * every contender pays the same indirect call per operation. A contender
 * that has no multi-key change leaves mset NULL and sits that workload out.
 *
 * Threads: open/close/load run on the main thread only. Every other
 * operation may run on many worker threads at once, each of which calls
 * thread_enter before its first operation and thread_leave after its last.
 */
#ifndef KVB_BENCH_H
#define KVB_BENCH_H

#include <stddef.h>
#include <stdint.h>
#include <string.h>
#include <time.h>

#ifdef __cplusplus
extern "C" {
#endif

/* Keys are "key:%08u": 12 bytes, no terminating NUL stored. */
#define KVB_KEY_LEN 12
#define KVB_MGET_N 16
#define KVB_MSET_N 4

typedef struct kvb_key {
    char data[16];
    size_t len;
} kvb_key;

typedef struct kvb_contender {
    const char *name;
    const char *about; /* one line for the report */
    /* A new, empty structure sized for nkeys keys; NULL on failure. */
    void *(*open)(size_t nkeys);
    /* Frees the structure and everything in it; no thread may use it. */
    void (*close)(void *h);
    void (*thread_enter)(void *h);
    void (*thread_leave)(void *h);
    /* Each returns 0 on success, non-zero on failure (a get of an absent
     * key is a failure here: the benchmark only reads loaded keys). */
    int (*get)(void *h, const kvb_key *k, void *buf, size_t cap, size_t *vlen);
    int (*set)(void *h, const kvb_key *k, const void *val, size_t vlen);
    /* Reads n keys; bufs holds n slots of cap bytes. *sum receives a
     * checksum of what was read, so nothing can be optimised away. */
    int (*mget)(void *h, const kvb_key *keys, size_t n, unsigned char *bufs,
                size_t cap, uint64_t *sum);
    /* Sets n keys, all to val. Atomic (readers see all or none) where the
     * structure can do it; lfht's is 4 separate replaces and its `about`
     * says so. NULL: the contender has no multi-key change at all and
     * sits mset4 out (reported as n/a). */
    int (*mset)(void *h, const kvb_key *keys, size_t n, const void *val, size_t vlen);
    /* Read-modify-write of one key: increments the 64-bit counter at the
     * start of its value. *retries counts conflicts that forced a retry. */
    int (*rmw)(void *h, const kvb_key *k, uint64_t *retries);
    /* The structure's own idea of its memory use, 0 if it has none. */
    uint64_t (*memory_bytes)(void *h);
} kvb_contender;

extern const kvb_contender kvb_libkv;
extern const kvb_contender kvb_lfht_qsbr;
extern const kvb_contender kvb_lfht_memb;
extern const kvb_contender kvb_rwlock;
#ifdef KVB_HAVE_CUCKOO
extern const kvb_contender kvb_cuckoo;
#endif
#ifdef KVB_HAVE_TBB
extern const kvb_contender kvb_tbb;
#endif

/* Formats key number i (< 10^8) into k. */
static inline void kvb_key_make(kvb_key *k, uint32_t i)
{
    static const char pairs[] =
        "00010203040506070809101112131415161718192021222324252627282930313233343536"
        "37383940414243444546474849505152535455565758596061626364656667686970717273"
        "74757677787980818283848586878889909192939495969798"
        "99";
    memcpy(k->data, "key:", 4);
    for (int d = 10; d >= 4; d -= 2) {
        memcpy(&k->data[d], &pairs[(i % 100) * 2], 2);
        i /= 100;
    }
    k->len = KVB_KEY_LEN;
}

/* xorshift64* (Vigna 2016): fast, good enough for key choice. */
static inline uint64_t kvb_rand(uint64_t *state)
{
    uint64_t x = *state;
    x ^= x >> 12;
    x ^= x << 25;
    x ^= x >> 27;
    *state = x;
    return x * 0x2545F4914F6CDD1DULL;
}

static inline double kvb_now(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec * 1e-9;
}

/* The 64-bit counter at the start of a value (values shorter than 8 bytes
 * use what they have). */
static inline uint64_t kvb_counter_get(const void *val, size_t vlen)
{
    uint64_t c = 0;
    memcpy(&c, val, vlen < 8 ? vlen : 8);
    return c;
}

static inline void kvb_counter_put(void *val, size_t vlen, uint64_t c)
{
    memcpy(val, &c, vlen < 8 ? vlen : 8);
}

/* The value size the run uses (set once by main before anything runs). */
extern size_t kvb_value_size;

#ifdef __cplusplus
}
#endif

#endif
