/*
 * workload.h - the workloads, key choice, and one timed run of a workload
 * on a contender from pinned worker threads.
 */
#ifndef KVB_WORKLOAD_H
#define KVB_WORKLOAD_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "bench.h"

typedef enum kvb_workload {
    KVB_W_GET,    /* 100% get                                       */
    KVB_W_GET90,  /* 90% get, 10% set                               */
    KVB_W_GET50,  /* 50% get, 50% set                               */
    KVB_W_SET,    /* 100% set (of loaded keys: overwrites)          */
    KVB_W_MGET,   /* multi-get of KVB_MGET_N keys                   */
    KVB_W_MSET,   /* multi-set of KVB_MSET_N keys                   */
    KVB_W_RMW,    /* read-modify-write transaction on one key       */
    KVB_W_COUNT
} kvb_workload;

typedef enum kvb_dist { KVB_D_UNIFORM, KVB_D_ZIPF, KVB_D_COUNT } kvb_dist;

extern const char *const kvb_workload_names[KVB_W_COUNT];
extern const char *const kvb_dist_names[KVB_D_COUNT];

/* Keys per operation of a workload (for the per-key rate). */
unsigned kvb_workload_keys(kvb_workload w);

/* Whether contender c can run workload w (it may leave mset NULL). */
bool kvb_workload_supported(const kvb_contender *c, kvb_workload w);

/* Key numbers each thread draws from, generated before any timing so that
 * key choice costs the same small, constant time for every contender:
 * thread t reads ring[t] cyclically. Every contender of a configuration
 * replays the same sequences. */
typedef struct kvb_rings {
    size_t nthreads;
    size_t len; /* power of two */
    uint32_t **ring;
} kvb_rings;

/* Fills rings for nthreads threads over nkeys keys. Zipf has s = 0.99
 * (rank 0 hottest, key number = rank). Returns 0 or -1 (out of memory). */
int kvb_rings_make(kvb_rings *r, size_t nthreads, size_t nkeys, kvb_dist dist,
                   size_t len);
void kvb_rings_free(kvb_rings *r);

typedef struct kvb_result {
    double mops;      /* operations per second / 1e6 */
    double cpu_share; /* CPU time the workers got / (threads x wall time) */
    double mops_cpu;  /* operations per CPU-second of the workers / 1e6 */
    uint64_t ops;
    uint64_t retries; /* rmw conflicts that were retried */
    uint64_t errors;  /* operations that failed (should be 0) */
    uint64_t checksum; /* of the values read: keeps the reads honest */
} kvb_result;

/* Runs workload w on h from nthreads threads (pinned to cpus[t % ncpus])
 * for `duration` seconds. Returns 0, or -1 if threads could not start. */
int kvb_run(const kvb_contender *c, void *h, kvb_workload w, const kvb_rings *rings,
            size_t nthreads, const int *cpus, size_t ncpus, double duration,
            kvb_result *out);

/* Loads keys 0..nkeys-1 (values of kvb_value_size bytes) on the calling
 * thread. Returns 0 or -1. */
int kvb_load(const kvb_contender *c, void *h, size_t nkeys);

#endif
