/*
 * main.c - kvbench_lib: libkv against liburcu's cds_lfht, a naive
 * rwlock-protected table, libcuckoo and oneTBB's concurrent_hash_map, in
 * one run.
 *
 * For every key count: measure each contender's memory (a fresh structure
 * each, freed before the next), load all contenders once, then for every
 * distribution, workload and thread count run the contenders alternately
 * for several rounds (the first contender rotates from round to round),
 * and report the median rate of each and the ratio of medians against
 * cds_lfht. The machines this runs on are noisy; medians over alternating
 * rounds keep one contender from getting all the quiet (or busy) moments.
 */
#include <malloc.h>
#include <sched.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>

#include "bench.h"
#include "options.h"
#include "report.h"
#include "workload.h"


size_t kvb_value_size = 64;

/* ------------------------------------------------------------------------
 * Driving the runs
 * ---------------------------------------------------------------------- */

/* One configuration: every round runs every contender that can run the
 * workload once, the first one rotating, and the rows are printed when it
 * is done (an n/a row for the others). */
static int run_config(const kvb_options *o, void *const *handles, kvb_workload w, size_t nkeys,
                      kvb_dist d, size_t nthreads, const kvb_rings *rings, const int *cpus,
                      size_t ncpus)
{
    size_t active[KVB_MAX_CONTENDERS], nactive = 0, base = SIZE_MAX;
    for (size_t i = 0; i < o->ncontenders; i++) {
        if (!kvb_workload_supported(o->contenders[i], w))
            continue;
        size_t idx = kvb_cell_new(w, nkeys, d, nthreads, o->contenders[i], o->rounds);
        if (idx == SIZE_MAX)
            return -1;
        base = nactive == 0 ? idx : base;
        active[nactive++] = i;
    }
    for (unsigned r = 0; r < o->rounds; r++) {
        for (size_t j = 0; j < nactive; j++) {
            size_t a = (j + r) % nactive, i = active[a];
            kvb_result res;
            if (kvb_run(o->contenders[i], handles[i], w, rings, nthreads, cpus, ncpus,
                        o->duration, &res) != 0)
                return -1;
            kvb_cell_add(kvb_cell_at(base + a), &res);
        }
    }
    for (size_t i = 0, a = 0; i < o->ncontenders; i++) {
        if (a < nactive && active[a] == i)
            kvb_print_row(o, kvb_cell_at(base + a++), i == 0);
        else
            kvb_print_na(o, w, nkeys, d, nthreads, o->contenders[i], i == 0);
    }
    return 0;
}

static int run_keys(const kvb_options *o, size_t nkeys, const int *cpus, size_t ncpus)
{
    if (o->memory)
        for (size_t i = 0; i < o->ncontenders; i++)
            if (kvb_measure_memory(o, o->contenders[i], nkeys) != 0)
                return -1;

    void *handles[KVB_MAX_CONTENDERS] = {NULL};
    int rc = 0;
    for (size_t i = 0; i < o->ncontenders && rc == 0; i++) {
        handles[i] = o->contenders[i]->open(nkeys);
        if (!handles[i] || kvb_load(o->contenders[i], handles[i], nkeys) != 0) {
            fprintf(stderr, "kvbench_lib: %s: cannot load %zu keys\n",
                    o->contenders[i]->name, nkeys);
            rc = -1;
        }
    }
    if (rc == 0 && !o->csv)
        fprintf(kvb_report, "\n%-11s %8s %-8s %3s  %-10s %8s  %-15s %5s %8s %8s  %6s\n",
                "workload", "keys", "dist", "thr", "contender", "Mops/s", "min..max", "cpu",
                "Mops/cpu", "Mkeys/s", "vs lfht");
    for (int d = 0; d < KVB_D_COUNT && rc == 0; d++) {
        if (!o->dist[d])
            continue;
        kvb_rings rings;
        size_t len = o->ring_len;
        if (kvb_rings_make(&rings, kvb_max_threads(o), nkeys, (kvb_dist)d, len) != 0) {
            rc = -1;
            break;
        }
        for (int w = 0; w < KVB_W_COUNT && rc == 0; w++) {
            if (!o->workload[w])
                continue;
            for (size_t t = 0; t < o->nthreads && rc == 0; t++)
                rc = run_config(o, handles, (kvb_workload)w, nkeys, (kvb_dist)d,
                                o->threads[t], &rings, cpus, ncpus);
        }
        kvb_rings_free(&rings);
    }
    for (size_t i = 0; i < o->ncontenders; i++)
        if (handles[i])
            o->contenders[i]->close(handles[i]);
    malloc_trim(0);
    return rc;
}

int main(int argc, char **argv)
{
    int cpus[CPU_SETSIZE];
    size_t ncpus = kvb_allowed_cpus(cpus, CPU_SETSIZE);
    kvb_options o;
    if (kvb_options_parse(argc, argv, &o, ncpus) != 0) {
        kvb_usage(stderr);
        return 2;
    }
    kvb_report = o.csv ? stderr : stdout;
    if (o.csv)
        printf("kind,workload,keys,dist,threads,contender,median_mops,min_mops,max_mops,"
               "median_mkeys,ratio_vs_lfht,median_mops_per_cpu_s,median_cpu_share,retries,errors,"
               "rss_bytes_per_key,"
               "metric_bytes_per_key\n");
    kvb_print_header(&o, ncpus);

    int rc = 0;
    for (size_t k = 0; k < o.nkeys && rc == 0; k++)
        rc = run_keys(&o, o.keys[k], cpus, ncpus);
    if (rc != 0) {
        fprintf(stderr, "kvbench_lib: failed\n");
        return 1;
    }
    kvb_print_scaling(&o);
    kvb_print_targets(&o);

    uint64_t errors = kvb_report_free();
    if (errors) {
        fprintf(stderr, "kvbench_lib: %llu operations failed\n", (unsigned long long)errors);
        return 1;
    }
    return 0;
}
