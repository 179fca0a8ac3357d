/*
 * keys.c - random numbers, key distributions and key names (see keys.h).
 */
#include "keys.h"

#include <math.h>

/* The state starts at a scrambled seed: seeds that differ by one (one per
 * connection) must not give sequences one step apart, as seed * gamma
 * would with splitmix64's gamma increment. */
void kvb_rng_seed(kvb_rng *r, uint64_t seed)
{
    uint64_t z = seed + 0x2545F4914F6CDD1Dull;
    z = (z ^ (z >> 33)) * 0xFF51AFD7ED558CCDull;
    z = (z ^ (z >> 33)) * 0xC4CEB9FE1A85EC53ull;
    r->s = z ^ (z >> 33);
}

/* splitmix64 (Steele, Lea, Flood, "Fast splittable pseudorandom number
 * generators", OOPSLA 2014). */
uint64_t kvb_rng_next(kvb_rng *r)
{
    uint64_t z = (r->s += 0x9E3779B97F4A7C15ull);
    z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
    z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
    return z ^ (z >> 31);
}

/* Lemire's multiply-shift; the bias for n << 2^64 is negligible here. */
uint64_t kvb_rng_below(kvb_rng *r, uint64_t n)
{
    return (uint64_t)(((unsigned __int128)kvb_rng_next(r) * n) >> 64);
}

static double rng_unit(kvb_rng *r)
{
    return (double)(kvb_rng_next(r) >> 11) * 0x1.0p-53;
}

void kvb_keys_init(kvb_keys *k, uint64_t n, kvb_dist dist)
{
    k->n = n;
    k->dist = dist;
    k->theta = 0.99;
    if (dist != KVB_DIST_ZIPF)
        return;
    double zeta2 = 1.0 + pow(0.5, k->theta);
    double zetan = 0.0;
    for (uint64_t i = 1; i <= n; i++)
        zetan += 1.0 / pow((double)i, k->theta);
    k->zetan = zetan;
    k->alpha = 1.0 / (1.0 - k->theta);
    k->eta = (1.0 - pow(2.0 / (double)n, 1.0 - k->theta)) / (1.0 - zeta2 / zetan);
    k->half_pow_theta = 1.0 + pow(0.5, k->theta);
}

uint64_t kvb_keys_pick(const kvb_keys *k, kvb_rng *r)
{
    if (k->dist != KVB_DIST_ZIPF)
        return kvb_rng_below(r, k->n);
    double u = rng_unit(r);
    double uz = u * k->zetan;
    if (uz < 1.0)
        return 0;
    if (uz < k->half_pow_theta)
        return k->n > 1 ? 1 : 0;
    uint64_t i = (uint64_t)((double)k->n * pow(k->eta * u - k->eta + 1.0, k->alpha));
    return i < k->n ? i : k->n - 1;
}

size_t kvb_key_format(char *buf, uint64_t i)
{
    char digits[20];
    size_t nd = 0;
    do {
        digits[nd++] = (char)('0' + i % 10);
        i /= 10;
    } while (i != 0);
    while (nd < 8)
        digits[nd++] = '0';
    buf[0] = 'k';
    buf[1] = 'e';
    buf[2] = 'y';
    buf[3] = ':';
    for (size_t j = 0; j < nd; j++)
        buf[4 + j] = digits[nd - 1 - j];
    return 4 + nd;
}
