/*
 * report.c - kvbench_lib's results: per-configuration medians, the table or
 * CSV rows, memory per key, the scaling summary and the target checks.
 */
#include "report.h"

#include <malloc.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/utsname.h>
#include <time.h>
#include <unistd.h>

/* ------------------------------------------------------------------------
 * Results
 * ---------------------------------------------------------------------- */

static kvb_cell *cells;
static size_t ncells, cells_cap;
static kvb_memrow memrows[KVB_MAX_LIST * KVB_MAX_CONTENDERS];
static size_t nmemrows;

FILE *kvb_report;

static int cmp_double(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}

static double median(const double *v, size_t n)
{
    double *s = malloc(n * sizeof *s);
    if (!s)
        return 0;
    memcpy(s, v, n * sizeof *s);
    qsort(s, n, sizeof *s, cmp_double);
    double m = n % 2 ? s[n / 2] : (s[n / 2 - 1] + s[n / 2]) / 2;
    free(s);
    return m;
}

static const kvb_cell *find_cell(kvb_workload w, size_t keys, kvb_dist d, size_t threads,
                             const char *contender)
{
    for (size_t i = 0; i < ncells; i++)
        if (cells[i].w == w && cells[i].keys == keys && cells[i].dist == d &&
            cells[i].threads == threads && strcmp(cells[i].c->name, contender) == 0)
            return &cells[i];
    return NULL;
}

/* median / the same configuration's median of contender `ref`; 0 if there
 * is none. */
static double ratio_vs(const kvb_cell *c, const char *ref)
{
    const kvb_cell *r = find_cell(c->w, c->keys, c->dist, c->threads, ref);
    return r && r->median > 0 ? c->median / r->median : 0;
}

static double ratio_vs_lfht(const kvb_cell *c)
{
    return ratio_vs(c, "lfht");
}

size_t kvb_cell_new(kvb_workload w, size_t keys, kvb_dist d, size_t threads,
                    const kvb_contender *c, unsigned rounds)
{
    if (ncells == cells_cap) {
        size_t cap = cells_cap ? cells_cap * 2 : 64;
        kvb_cell *n = realloc(cells, cap * sizeof *n);
        if (!n)
            return SIZE_MAX;
        cells = n;
        cells_cap = cap;
    }
    double *m = calloc(3 * (size_t)rounds, sizeof *m);
    if (!m)
        return SIZE_MAX;
    cells[ncells] = (kvb_cell){.w = w, .keys = keys, .dist = d, .threads = threads, .c = c,
                               .mops = m, .cpu = m + rounds, .mops_cpu = m + 2 * rounds};
    return ncells++;
}

kvb_cell *kvb_cell_at(size_t i)
{
    return &cells[i];
}

void kvb_cell_add(kvb_cell *c, const kvb_result *res)
{
    unsigned r = c->nrounds++;
    c->mops[r] = res->mops;
    c->cpu[r] = res->cpu_share;
    c->mops_cpu[r] = res->mops_cpu;
    c->retries += res->retries;
    c->errors += res->errors;
    c->ops += res->ops;
    c->median = median(c->mops, c->nrounds);
    c->median_cpu = median(c->cpu, c->nrounds);
    c->median_mops_cpu = median(c->mops_cpu, c->nrounds);
    c->min = c->max = c->mops[0];
    for (unsigned i = 1; i < c->nrounds; i++) {
        c->min = c->mops[i] < c->min ? c->mops[i] : c->min;
        c->max = c->mops[i] > c->max ? c->mops[i] : c->max;
    }
}

uint64_t kvb_report_free(void)
{
    uint64_t errors = 0;
    for (size_t i = 0; i < ncells; i++) {
        errors += cells[i].errors;
        free(cells[i].mops);
    }
    free(cells);
    cells = NULL;
    ncells = cells_cap = 0;
    return errors;
}

void kvb_print_row(const kvb_options *o, const kvb_cell *c, bool first)
{
    double ratio = ratio_vs_lfht(c);
    unsigned kpo = kvb_workload_keys(c->w);
    if (o->csv) {
        printf("result,%s,%zu,%s,%zu,%s,%.4f,%.4f,%.4f,%.4f,%.4f,%.4f,%.3f,%llu,%llu,,\n",
               kvb_workload_names[c->w], c->keys, kvb_dist_names[c->dist], c->threads,
               c->c->name, c->median, c->min, c->max, c->median * kpo, ratio,
               c->median_mops_cpu, c->median_cpu,
               (unsigned long long)c->retries, (unsigned long long)c->errors);
        return;
    }
    char rs[32] = "";
    if (ratio > 0)
        snprintf(rs, sizeof rs, "%.2fx", ratio);
    char extra[48] = "";
    if (c->retries)
        snprintf(extra, sizeof extra, "  retries %.1f%%",
                 c->ops ? 100.0 * (double)c->retries / (double)c->ops : 0.0);
    if (c->errors)
        snprintf(extra, sizeof extra, "  ERRORS %llu", (unsigned long long)c->errors);
    if (first)
        fprintf(kvb_report, "%-11s %8zu %-8s %3zu", kvb_workload_names[c->w], c->keys,
                kvb_dist_names[c->dist], c->threads);
    else
        fprintf(kvb_report, "%-11s %8s %-8s %3s", "", "", "", "");
    fprintf(kvb_report, "  %-10s %8.3f  %7.3f..%-7.3f %4.0f%% %8.3f %8.3f  %6s%s\n", c->c->name,
            c->median, c->min, c->max, 100 * c->median_cpu, c->median_mops_cpu,
            c->median * kpo, rs, extra);
    fflush(kvb_report);
}

void kvb_print_na(const kvb_options *o, kvb_workload w, size_t keys, kvb_dist d,
                  size_t threads, const kvb_contender *c, bool first)
{
    if (o->csv) {
        printf("na,%s,%zu,%s,%zu,%s,,,,,,,,,,,\n", kvb_workload_names[w], keys,
               kvb_dist_names[d], threads, c->name);
        return;
    }
    if (first)
        fprintf(kvb_report, "%-11s %8zu %-8s %3zu", kvb_workload_names[w], keys,
                kvb_dist_names[d], threads);
    else
        fprintf(kvb_report, "%-11s %8s %-8s %3s", "", "", "", "");
    fprintf(kvb_report, "  %-10s %8s  (no atomic multi-key set)\n", c->name, "n/a");
    fflush(kvb_report);
}

/* ------------------------------------------------------------------------
 * Memory
 * ---------------------------------------------------------------------- */

static long rss_bytes(void)
{
    FILE *f = fopen("/proc/self/statm", "r");
    long size = 0, resident = 0;
    if (!f)
        return 0;
    if (fscanf(f, "%ld %ld", &size, &resident) != 2)
        resident = 0;
    fclose(f);
    return resident * sysconf(_SC_PAGESIZE);
}

int kvb_measure_memory(const kvb_options *o, const kvb_contender *c, size_t nkeys)
{
    malloc_trim(0);
    long before = rss_bytes();
    double t0 = kvb_now();
    void *h = c->open(nkeys);
    if (!h || kvb_load(c, h, nkeys) != 0) {
        fprintf(stderr, "kvbench_lib: %s: cannot load %zu keys\n", c->name, nkeys);
        if (h)
            c->close(h);
        return -1;
    }
    double t1 = kvb_now();
    malloc_trim(0);
    long after = rss_bytes();
    uint64_t metric = c->memory_bytes(h);
    c->close(h);
    malloc_trim(0);
    kvb_memrow *m = &memrows[nmemrows++];
    *m = (kvb_memrow){c, nkeys, (double)(after - before) / (double)nkeys,
                  (double)metric / (double)nkeys, t1 - t0};
    if (o->csv) {
        printf("memory,,%zu,,,%s,,,,,,,,,,%.1f,%.1f\n", nkeys, c->name, m->rss_per_key,
               m->metric_per_key);
        return 0;
    }
    fprintf(kvb_report, "memory %8zu keys  %-10s %7.1f bytes/key by RSS", nkeys, c->name,
            m->rss_per_key);
    if (m->metric_per_key)
        fprintf(kvb_report, ", %7.1f by kv_metrics.memory_bytes", m->metric_per_key);
    fprintf(kvb_report, "  (load %.2f s)\n", m->load_seconds);
    return 0;
}

/* ------------------------------------------------------------------------
 * Summary: scaling and the project's targets
 * ---------------------------------------------------------------------- */

void kvb_print_scaling(const kvb_options *o)
{
    if (o->nthreads < 2)
        return;
    fprintf(kvb_report, "\nScaling: median at the largest thread count / median at 1 thread; CPU-normalised:\n"
                    "the same from Mops per CPU-second, i.e. as if no other process took CPU time\n");
    size_t tmax = kvb_max_threads(o);
    for (size_t i = 0; i < ncells; i++) {
        const kvb_cell *c = &cells[i];
        if (c->threads != tmax)
            continue;
        const kvb_cell *one = find_cell(c->w, c->keys, c->dist, 1, c->c->name);
        if (!one || one->median <= 0)
            continue;
        double norm = one->median_mops_cpu > 0
                          ? c->median_mops_cpu * (double)tmax / one->median_mops_cpu
                          : 0;
        fprintf(kvb_report, "  %-11s %8zu %-8s %-10s %zu threads / 1: %5.2fx   CPU-normalised %5.2fx\n",
                kvb_workload_names[c->w], c->keys, kvb_dist_names[c->dist], c->c->name, tmax,
                c->median / one->median, norm);
    }
}

static unsigned targets_met, targets_missed;

/* Prints one target check: got >= want (or got <= want if at_most)? */
static void check_bound(const char *what, double got, double want, bool at_most)
{
    bool met = at_most ? got <= want : got >= want;
    fprintf(kvb_report, "  %-58s %6.2f (target %s %.2f)  %s", what, got, at_most ? "<=" : ">=",
            want, met ? "MET" : "MISSED");
    if (!met)
        fprintf(kvb_report, " by %.0f%%", 100 * (at_most ? got / want - 1 : 1 - got / want));
    fprintf(kvb_report, "\n");
    met ? targets_met++ : targets_missed++;
}

static void check(const char *what, double got, double want)
{
    check_bound(what, got, want, false);
}

/* libkv / ref in one configuration against a target (skipped if either
 * did not run). */
static void check_ratio_vs(kvb_workload w, size_t keys, kvb_dist d, size_t threads,
                           const char *ref_name, double want)
{
    const kvb_cell *c = find_cell(w, keys, d, threads, "libkv");
    if (!c || ratio_vs(c, ref_name) == 0)
        return;
    char what[96];
    snprintf(what, sizeof what, "%s %zu keys %s %zu thr: libkv / %s", kvb_workload_names[w],
             keys, kvb_dist_names[d], threads, ref_name);
    check(what, ratio_vs(c, ref_name), want);
    const kvb_cell *ref = find_cell(w, keys, d, threads, ref_name);
    if (ref && ref->median_mops_cpu > 0)
        fprintf(kvb_report, "  %-58s %6.2f (per CPU-second, for information)\n", "",
                c->median_mops_cpu / ref->median_mops_cpu);
}

static void check_ratio(kvb_workload w, size_t keys, kvb_dist d, size_t threads, double want)
{
    check_ratio_vs(w, keys, d, threads, "lfht", want);
}

void kvb_print_targets(const kvb_options *o)
{
    fprintf(kvb_report, "\nTargets (ratios of medians)\n");
    for (size_t k = 0; k < o->nkeys; k++) {
        size_t keys = o->keys[k];
        for (int d = 0; d < KVB_D_COUNT; d++) {
            for (size_t t = 1; t <= 2; t++)
                check_ratio(KVB_W_GET, keys, (kvb_dist)d, t, keys >= 1000000 ? 1.1 : 1.0);
            const kvb_cell *one = find_cell(KVB_W_GET, keys, (kvb_dist)d, 1, "libkv");
            const kvb_cell *two = find_cell(KVB_W_GET, keys, (kvb_dist)d, 2, "libkv");
            if (one && two && one->median > 0) {
                char what[96];
                snprintf(what, sizeof what, "get %zu keys %s: libkv 2 thr / 1 thr", keys,
                         kvb_dist_names[d]);
                check(what, two->median / one->median, 1.8);
                if (one->median_mops_cpu > 0)
                    fprintf(kvb_report, "  %-58s %6.2f (CPU-normalised, for information)\n", "",
                            2 * two->median_mops_cpu / one->median_mops_cpu);
            }
            for (size_t t = 0; t < o->nthreads; t++)
                check_ratio(KVB_W_MGET, keys, (kvb_dist)d, o->threads[t], 3.0);
            check_ratio(KVB_W_GET90, keys, (kvb_dist)d, 2, 1.5);
            /* Issue 10: at least libcuckoo's rate in every get and write
             * cell at 1 and 2 threads. */
            static const kvb_workload vs_cuckoo[] = {KVB_W_GET, KVB_W_GET50, KVB_W_SET};
            for (size_t i = 0; i < sizeof vs_cuckoo / sizeof vs_cuckoo[0]; i++)
                for (size_t t = 1; t <= 2; t++)
                    check_ratio_vs(vs_cuckoo[i], keys, (kvb_dist)d, t, "cuckoo", 1.0);
        }
    }
    for (size_t i = 0; i < nmemrows; i++) {
        const kvb_memrow *m = &memrows[i];
        /* The target is for 1M keys; small loads are dominated by pages. */
        if (strcmp(m->c->name, "libkv") != 0 || m->keys < 1000000)
            continue;
        char what[96];
        snprintf(what, sizeof what, "memory %zu keys: libkv bytes/key by RSS", m->keys);
        check_bound(what, m->rss_per_key, 110, true);
        if (m->metric_per_key > 0) {
            snprintf(what, sizeof what, "memory %zu keys: libkv kv_metrics bytes/key", m->keys);
            check_bound(what, m->metric_per_key, 110, true);
        }
    }
    fprintf(kvb_report, "  %u met, %u missed\n", targets_met, targets_missed);
}

void kvb_print_header(const kvb_options *o, size_t ncpus)
{
    char model[256] = "unknown";
    FILE *f = fopen("/proc/cpuinfo", "r");
    if (f) {
        char line[512];
        while (fgets(line, sizeof line, f)) {
            char *colon = strchr(line, ':');
            if (strncmp(line, "model name", 10) == 0 && colon) {
                snprintf(model, sizeof model, "%s", colon + 2);
                model[strcspn(model, "\n")] = 0;
                break;
            }
        }
        fclose(f);
    }
    struct utsname u;
    uname(&u);
    double load[3] = {0};
    getloadavg(load, 3);
    time_t now = time(NULL);
    char date[64];
    strftime(date, sizeof date, "%Y-%m-%d %H:%M:%S %Z", localtime(&now));
    fprintf(kvb_report, "kvbench_lib  %s  %s %s\n", date, u.sysname, u.release);
    fprintf(kvb_report, "cpu: %s, %ld online, %zu usable; load average %.2f %.2f %.2f\n", model,
            sysconf(_SC_NPROCESSORS_ONLN), ncpus, load[0], load[1], load[2]);
    fprintf(kvb_report, "rounds %u x %.3f s per contender, value %zu bytes, keys %d bytes%s\n",
            o->rounds, o->duration, kvb_value_size, KVB_KEY_LEN, o->quick ? " (--quick)" : "");
    for (size_t i = 0; i < o->ncontenders; i++)
        fprintf(kvb_report, "  %-10s %s\n", o->contenders[i]->name, o->contenders[i]->about);
    fprintf(kvb_report, "Mops/s: operations per second (one mget16 or mset4 is one operation;\n"
                    "Mkeys/s counts its keys). Medians over rounds; ratio = libkv median /"
                    " lfht median.\n"
                    "cpu: CPU time the worker threads got / (threads x wall time), median; well"
                    " below 100%%\nmeans other processes took the CPUs (a disturbed row)."
                    " Mops/cpu: operations per CPU-second.\n\n");
}
