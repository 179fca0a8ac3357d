/*
 * options.h - kvbench_lib's command line.
 */
#ifndef KVB_OPTIONS_H
#define KVB_OPTIONS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdio.h>

#include "bench.h"
#include "workload.h"

#define KVB_MAX_LIST 32       /* entries of a list option */
#define KVB_MAX_CONTENDERS 8

typedef struct kvb_options {
    size_t threads[KVB_MAX_LIST], nthreads;
    size_t keys[KVB_MAX_LIST], nkeys;
    bool dist[KVB_D_COUNT];
    bool workload[KVB_W_COUNT];
    const kvb_contender *contenders[KVB_MAX_CONTENDERS];
    size_t ncontenders;
    unsigned rounds;
    double duration;
    size_t ring_len;
    bool csv, memory, quick;
} kvb_options;

/* Prints the usage text to f. */
void kvb_usage(FILE *f);

/* Fills *o from the command line (defaults, then --quick's, then the
 * explicit options). ncpus is the default largest thread count. Sets
 * kvb_value_size. Returns 0, or -1 on a bad command line. */
int kvb_options_parse(int argc, char **argv, kvb_options *o, size_t ncpus);

/* The largest thread count of o. */
size_t kvb_max_threads(const kvb_options *o);

/* The CPUs this process may run on, at most cap of them, into cpus. */
size_t kvb_allowed_cpus(int *cpus, size_t cap);

#endif
