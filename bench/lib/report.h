/*
 * report.h - kvbench_lib's results and how they are printed.
 *
 * A cell is one contender in one configuration (workload, keys,
 * distribution, threads): its rate in every round and their medians.
 * Everything here runs on the main thread.
 */
#ifndef KVB_REPORT_H
#define KVB_REPORT_H

#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>

#include "options.h"
#include "workload.h"

typedef struct kvb_cell {
    kvb_workload w;
    size_t keys;
    kvb_dist dist;
    size_t threads;
    const kvb_contender *c;
    double *mops;     /* one per round */
    double *cpu;      /* kvb_result.cpu_share, one per round */
    double *mops_cpu; /* kvb_result.mops_cpu, one per round */
    unsigned nrounds;
    uint64_t retries, errors, ops;
    double median, min, max, median_cpu, median_mops_cpu;
} kvb_cell;

typedef struct kvb_memrow {
    const kvb_contender *c;
    size_t keys;
    double rss_per_key, metric_per_key; /* metric 0: none */
    double load_seconds;
} kvb_memrow;

/* Where the tables go: stdout, or stderr with --csv (CSV goes to stdout). */
extern FILE *kvb_report;

/* A new, empty cell for up to `rounds` rounds: its index, or SIZE_MAX on
 * out-of-memory. Pointers from kvb_cell_at() stay valid only until the next
 * kvb_cell_new(). */
size_t kvb_cell_new(kvb_workload w, size_t keys, kvb_dist d, size_t threads,
                    const kvb_contender *c, unsigned rounds);
kvb_cell *kvb_cell_at(size_t i);
/* Records one round's result and updates the medians. */
void kvb_cell_add(kvb_cell *c, const kvb_result *res);
/* One table row (or CSV line); first: the row that names the configuration. */
void kvb_print_row(const kvb_options *o, const kvb_cell *c, bool first);

/* The row of a contender that sits workload w out (it has no atomic
 * multi-key set): "n/a" in the table, a row of kind "na" in the CSV. */
void kvb_print_na(const kvb_options *o, kvb_workload w, size_t keys, kvb_dist d,
                  size_t threads, const kvb_contender *c, bool first);

/* Loads nkeys keys into a fresh structure of contender c and prints the
 * resident memory it added per key (and libkv's own figure); frees it
 * again. Returns 0 or -1. */
int kvb_measure_memory(const kvb_options *o, const kvb_contender *c, size_t nkeys);

void kvb_print_header(const kvb_options *o, size_t ncpus);
void kvb_print_scaling(const kvb_options *o);
void kvb_print_targets(const kvb_options *o);

/* Frees all cells; returns how many operations failed in all runs. */
uint64_t kvb_report_free(void);

#endif
