/*
 * options.c - kvbench_lib's command line (see usage below) and the CPUs
 * it may use.
 */
#include "options.h"

#include <getopt.h>
#include <sched.h>
#include <stdlib.h>
#include <string.h>

static const kvb_contender *const all_contenders[] = {
    &kvb_libkv, &kvb_lfht_qsbr, &kvb_rwlock, &kvb_lfht_memb,
#ifdef KVB_HAVE_CUCKOO
    &kvb_cuckoo,
#endif
#ifdef KVB_HAVE_TBB
    &kvb_tbb,
#endif
};

/* The C++ contenders this build has, and the default list: all but
 * lfht-memb. */
#define KVB_CXX_CONTENDERS KVB_CUCKOO_NAME KVB_TBB_NAME
#ifdef KVB_HAVE_CUCKOO
#define KVB_CUCKOO_NAME ",cuckoo"
#else
#define KVB_CUCKOO_NAME ""
#endif
#ifdef KVB_HAVE_TBB
#define KVB_TBB_NAME ",tbb"
#else
#define KVB_TBB_NAME ""
#endif
static const char default_contenders[] = "libkv,lfht,rwlock" KVB_CXX_CONTENDERS;
#define N_ALL_CONTENDERS (sizeof all_contenders / sizeof all_contenders[0])

void kvb_usage(FILE *f)
{
    fprintf(f,
            "usage: kvbench_lib [kvb_options]\n"
            "  --threads LIST     thread counts, e.g. 1,2 (default 1,2,4,..,nCPU)\n"
            "  --keys LIST        key counts (default 10000,1000000)\n"
            "  --dist D           uniform, zipf or both (default both; zipf s=0.99)\n"
            "  --workloads LIST   of get,get90set10,get50set50,set,mget16,mset4,rmw_txn\n"
            "                     (default all)\n"
            "  --contenders LIST  of libkv,lfht,rwlock,lfht-memb" KVB_CXX_CONTENDERS "\n"
            "                     (default %s)\n"
            "  --rounds R         rounds per configuration (default 7)\n"
            "  --duration S       seconds per contender per round (default 0.4)\n"
            "  --value-size B     value bytes (default 64)\n"
            "  --no-memory        skip the memory measurement\n"
            "  --csv              print CSV on stdout instead of the tables\n"
            "  --quick            tiny configuration for a smoke test (a few seconds)\n"
            "  --help\n",
            default_contenders);
}

static int parse_sizes(const char *arg, size_t *out, size_t *n)
{
    char *copy = strdup(arg), *save = NULL;
    *n = 0;
    for (char *tok = strtok_r(copy, ",", &save); tok; tok = strtok_r(NULL, ",", &save)) {
        char *end;
        unsigned long long v = strtoull(tok, &end, 10);
        if (*end || v == 0 || *n == KVB_MAX_LIST) {
            free(copy);
            return -1;
        }
        out[(*n)++] = (size_t)v;
    }
    free(copy);
    return *n ? 0 : -1;
}

static int parse_workloads(const char *arg, bool *on)
{
    char *copy = strdup(arg), *save = NULL;
    memset(on, 0, KVB_W_COUNT * sizeof *on);
    int rc = 0;
    for (char *tok = strtok_r(copy, ",", &save); tok; tok = strtok_r(NULL, ",", &save)) {
        int w = 0;
        while (w < KVB_W_COUNT && strcmp(tok, kvb_workload_names[w]) != 0)
            w++;
        if (w == KVB_W_COUNT && strcmp(tok, "all") != 0)
            rc = -1;
        for (int i = 0; i < KVB_W_COUNT; i++)
            if (i == w || w == KVB_W_COUNT)
                on[i] = true;
    }
    free(copy);
    return rc;
}

static int parse_contenders(const char *arg, kvb_options *o)
{
    char *copy = strdup(arg), *save = NULL;
    o->ncontenders = 0;
    int rc = 0;
    for (char *tok = strtok_r(copy, ",", &save); tok; tok = strtok_r(NULL, ",", &save)) {
        size_t i = 0;
        while (i < N_ALL_CONTENDERS && strcmp(tok, all_contenders[i]->name) != 0)
            i++;
        if (i == N_ALL_CONTENDERS || o->ncontenders == KVB_MAX_CONTENDERS)
            rc = -1;
        else
            o->contenders[o->ncontenders++] = all_contenders[i];
    }
    free(copy);
    return o->ncontenders ? rc : -1;
}

/* The CPUs this process may run on. */
size_t kvb_allowed_cpus(int *cpus, size_t cap)
{
    cpu_set_t set;
    size_t n = 0;
    if (sched_getaffinity(0, sizeof set, &set) != 0)
        return 0;
    for (int c = 0; c < CPU_SETSIZE && n < cap; c++)
        if (CPU_ISSET(c, &set))
            cpus[n++] = c;
    return n;
}

int kvb_options_parse(int argc, char **argv, kvb_options *o, size_t ncpus)
{
    enum { O_THREADS = 256, O_KEYS, O_DIST, O_WORK, O_CONT, O_ROUNDS, O_DUR, O_VSIZE,
           O_NOMEM, O_CSV, O_QUICK, O_HELP };
    static const struct option longopts[] = {
        {"threads", required_argument, NULL, O_THREADS},
        {"keys", required_argument, NULL, O_KEYS},
        {"dist", required_argument, NULL, O_DIST},
        {"workloads", required_argument, NULL, O_WORK},
        {"contenders", required_argument, NULL, O_CONT},
        {"rounds", required_argument, NULL, O_ROUNDS},
        {"duration", required_argument, NULL, O_DUR},
        {"value-size", required_argument, NULL, O_VSIZE},
        {"no-memory", no_argument, NULL, O_NOMEM},
        {"csv", no_argument, NULL, O_CSV},
        {"quick", no_argument, NULL, O_QUICK},
        {"help", no_argument, NULL, O_HELP},
        {NULL, 0, NULL, 0},
    };
    /* Defaults, then --quick's, then the explicit kvb_options on top. */
    *o = (kvb_options){.rounds = 7, .duration = 0.4, .ring_len = (size_t)1 << 20, .memory = true};
    for (size_t t = 1; t < ncpus; t *= 2)
        o->threads[o->nthreads++] = t;
    o->threads[o->nthreads++] = ncpus ? ncpus : 1;
    o->keys[0] = 10000;
    o->keys[1] = 1000000;
    o->nkeys = 2;
    o->dist[KVB_D_UNIFORM] = o->dist[KVB_D_ZIPF] = true;
    for (int w = 0; w < KVB_W_COUNT; w++)
        o->workload[w] = true;
    parse_contenders(default_contenders, o);

    for (int i = 1; i < argc; i++) {
        if (strcmp(argv[i], "--quick") == 0) {
            o->keys[0] = 10000;
            o->nkeys = 1;
            o->threads[0] = 1;
            o->threads[1] = 2;
            o->nthreads = 2;
            o->rounds = 1;
            o->duration = 0.02;
            o->ring_len = (size_t)1 << 14;
            o->quick = true;
        }
    }

    int c;
    while ((c = getopt_long(argc, argv, "", longopts, NULL)) != -1) {
        char *end = NULL;
        switch (c) {
        case O_THREADS:
            if (parse_sizes(optarg, o->threads, &o->nthreads) != 0)
                return -1;
            break;
        case O_KEYS:
            if (parse_sizes(optarg, o->keys, &o->nkeys) != 0)
                return -1;
            for (size_t i = 0; i < o->nkeys; i++)
                if (o->keys[i] > 100000000) /* key numbers have 8 digits */
                    return -1;
            break;
        case O_DIST:
            o->dist[KVB_D_UNIFORM] = !strcmp(optarg, "uniform") || !strcmp(optarg, "both");
            o->dist[KVB_D_ZIPF] = !strcmp(optarg, "zipf") || !strcmp(optarg, "both");
            if (!o->dist[KVB_D_UNIFORM] && !o->dist[KVB_D_ZIPF])
                return -1;
            break;
        case O_WORK:
            if (parse_workloads(optarg, o->workload) != 0)
                return -1;
            break;
        case O_CONT:
            if (parse_contenders(optarg, o) != 0)
                return -1;
            break;
        case O_ROUNDS:
            o->rounds = (unsigned)strtoul(optarg, &end, 10);
            if (*end || o->rounds == 0 || o->rounds > 1000)
                return -1;
            break;
        case O_DUR:
            o->duration = strtod(optarg, &end);
            if (*end || !(o->duration > 0 && o->duration <= 3600))
                return -1;
            break;
        case O_VSIZE:
            kvb_value_size = (size_t)strtoull(optarg, &end, 10);
            if (*end || kvb_value_size > ((size_t)1 << 20))
                return -1;
            break;
        case O_NOMEM:
            o->memory = false;
            break;
        case O_CSV:
            o->csv = true;
            break;
        case O_QUICK:
            break;
        case O_HELP:
            kvb_usage(stdout);
            exit(0);
        default:
            return -1;
        }
    }
    return optind == argc ? 0 : -1;
}

size_t kvb_max_threads(const kvb_options *o)
{
    size_t m = 1;
    for (size_t i = 0; i < o->nthreads; i++)
        if (o->threads[i] > m)
            m = o->threads[i];
    return m;
}
