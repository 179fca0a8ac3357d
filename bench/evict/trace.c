/*
 * trace.c - kvbench_evict_trace: writes the request traces the hit-ratio
 * benchmark replays (bench/evict/hitratio.c), deterministically from a
 * seed, so a committed trace can be checked by regenerating it.
 *
 * A trace is a file of little-endian uint32 key ids, one per request.
 *   zipf  N requests over U keys, key k (0-based popularity rank, mapped
 *         to a scattered id so that popular keys are not neighbours)
 *         drawn with probability proportional to 1 / (k + 1)^s.
 *   scan  the same Zipf stream, and every P requests a scan: L keys read
 *         once each, in order, from a range never used before (ids from U
 *         on), as a batch job or a backup walking cold data would.
 *
 * Usage: kvbench_evict_trace zipf|scan OUT [--requests N] [--keys U]
 *        [--skew S] [--seed X] [--scan-every P] [--scan-length L]
 */
#include <getopt.h>
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* splitmix64 (Steele, Lea, Flood 2014) */
static uint64_t next(uint64_t *s)
{
    uint64_t z = (*s += 0x9e3779b97f4a7c15ull);
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
    return z ^ (z >> 31);
}

/* A permutation of 0..u-1 (rank -> id): multiplying by a prime that does
 * not divide u is a bijection mod u. */
static uint32_t scatter(uint32_t rank, uint32_t u)
{
    uint64_t p = u % 1000003u ? 1000003u : 999983u;
    return (uint32_t)(((uint64_t)rank * p + 12345u) % u);
}

int main(int argc, char **argv)
{
    if (argc < 3 || (strcmp(argv[1], "zipf") && strcmp(argv[1], "scan"))) {
        fprintf(stderr, "usage: %s zipf|scan OUT [--requests N] [--keys U] [--skew S] "
                        "[--seed X] [--scan-every P] [--scan-length L]\n", argv[0]);
        return 2;
    }
    int scan = strcmp(argv[1], "scan") == 0;
    const char *out = argv[2];
    uint64_t requests = 2000000, seed = 1;
    uint32_t keys = 1000000, scan_every = 200000, scan_length = 50000;
    double skew = 0.99;
    static const struct option lo[] = {
        {"requests", 1, 0, 'n'}, {"keys", 1, 0, 'u'},        {"skew", 1, 0, 's'},
        {"seed", 1, 0, 'x'},     {"scan-every", 1, 0, 'p'}, {"scan-length", 1, 0, 'l'},
        {0, 0, 0, 0}};
    int c;
    optind = 3;
    while ((c = getopt_long(argc, argv, "", lo, NULL)) != -1) {
        switch (c) {
        case 'n': requests = strtoull(optarg, NULL, 10); break;
        case 'u': keys = (uint32_t)strtoul(optarg, NULL, 10); break;
        case 's': skew = strtod(optarg, NULL); break;
        case 'x': seed = strtoull(optarg, NULL, 10); break;
        case 'p': scan_every = (uint32_t)strtoul(optarg, NULL, 10); break;
        case 'l': scan_length = (uint32_t)strtoul(optarg, NULL, 10); break;
        default: return 2;
        }
    }
    if (keys == 0 || keys > 0x40000000u || requests == 0 || (scan && scan_every == 0)) {
        fprintf(stderr, "bad arguments\n");
        return 2;
    }
    /* cumulative Zipf distribution, sampled by binary search */
    double *cdf = malloc(sizeof *cdf * keys);
    if (!cdf)
        return 1;
    double sum = 0;
    for (uint32_t k = 0; k < keys; k++)
        cdf[k] = sum += 1.0 / pow((double)k + 1.0, skew);
    FILE *f = fopen(out, "wb");
    if (!f) {
        perror(out);
        return 1;
    }
    uint64_t s = seed, written = 0;
    uint32_t cold = keys;
    for (uint64_t i = 0; i < requests; i++) {
        if (scan && i && i % scan_every == 0) {
            for (uint32_t j = 0; j < scan_length; j++) {
                uint32_t id = cold++;
                fwrite(&id, 4, 1, f);
                written++;
            }
        }
        double r = (double)(next(&s) >> 11) * 0x1.0p-53 * sum;
        uint32_t lo_i = 0, hi = keys - 1;
        while (lo_i < hi) {
            uint32_t mid = lo_i + (hi - lo_i) / 2;
            if (cdf[mid] < r)
                lo_i = mid + 1;
            else
                hi = mid;
        }
        uint32_t id = scatter(lo_i, keys);
        fwrite(&id, 4, 1, f); /* little-endian on every machine this runs on */
        written++;
    }
    if (fclose(f) != 0) {
        perror(out);
        return 1;
    }
    free(cdf);
    printf("%s: %llu requests (%s, %u keys, skew %.2f, seed %llu)\n", out,
           (unsigned long long)written, argv[1], keys, skew, (unsigned long long)seed);
    return 0;
}
