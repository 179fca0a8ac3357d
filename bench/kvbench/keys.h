/*
 * keys.h - kvbench's key choice: a per-connection random generator and
 * the uniform or Zipfian (s = 0.99) distribution over key indices.
 *
 * Keys are "key:%08d" of their index 0..nkeys-1. The Zipf generator's
 * constants are computed once (O(nkeys)) and then shared read-only by
 * every thread; each connection has its own kvb_rng.
 */
#ifndef KVBENCH_KEYS_H
#define KVBENCH_KEYS_H

#include <stddef.h>
#include <stdint.h>

/* Longest key: "key:" and up to 20 digits. */
#define KVB_KEY_MAX 24

typedef struct kvb_rng {
    uint64_t s;
} kvb_rng;

typedef enum kvb_dist { KVB_DIST_UNIFORM = 0, KVB_DIST_ZIPF = 1 } kvb_dist;

/* Precomputed, read-only after kvb_keys_init. */
typedef struct kvb_keys {
    uint64_t n;
    kvb_dist dist;
    /* Zipf (Gray et al., "Quickly generating billion-record synthetic
     * databases", SIGMOD 1994; the form YCSB uses). */
    double theta, alpha, zetan, eta, half_pow_theta;
} kvb_keys;

/* Seeds a generator; different seeds give independent-looking streams. */
void kvb_rng_seed(kvb_rng *r, uint64_t seed);
/* The next 64 random bits (splitmix64). */
uint64_t kvb_rng_next(kvb_rng *r);
/* Uniform in [0, n), n > 0. */
uint64_t kvb_rng_below(kvb_rng *r, uint64_t n);

/* Prepares the distribution over n > 0 keys (Zipf: O(n) once). */
void kvb_keys_init(kvb_keys *k, uint64_t n, kvb_dist dist);
/* A key index drawn from the distribution; Zipf rank 0 is the hottest. */
uint64_t kvb_keys_pick(const kvb_keys *k, kvb_rng *r);
/* Writes "key:%08d" of index i into buf (KVB_KEY_MAX bytes, not
 * NUL-terminated) and returns its length. */
size_t kvb_key_format(char *buf, uint64_t i);

#endif /* KVBENCH_KEYS_H */
