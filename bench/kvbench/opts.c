/*
 * opts.c - kvbench's command line (see kvbench.h, kvbench_usage below).
 */
#include <errno.h>
#include <getopt.h>
#include <inttypes.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "kv_proto.h"
#include "kvbench.h"

static void usage(FILE *f)
{
    fprintf(f,
            "Usage: kvbench [OPTIONS]\n"
            "Load generator for kvd (or Redis, or memcached): GET/SET over the kvd\n"
            "protocol (or RESP2, or memcached's text protocol), closed loop (each\n"
            "connection keeps -P requests in flight) or at a fixed rate (--rate).\n"
            "\n"
            "      --protocol P       kvd (default), resp or memcache. resp: speak\n"
            "                         RESP2 to a Redis server instead, same workload and\n"
            "                         key names, no HELLO; a nil GET counts as a miss,\n"
            "                         an error reply as an error (RESP_ERROR).\n"
            "                         memcache: memcached's text protocol (get, set with\n"
            "                         flags 0 and no expiry); END without VALUE is a\n"
            "                         miss, ERROR/CLIENT_ERROR/SERVER_ERROR/NOT_STORED\n"
            "                         an error (MEMCACHE_ERROR); no --password\n"
            "  -h, --host ADDR        server address (default 127.0.0.1)\n"
            "  -p, --port N           server TCP port (default %d; %d with resp,\n"
            "                         %d with memcache)\n"
            "      --unix PATH        connect to this Unix socket instead of TCP\n"
            "  -c, --connections N    connections (default 50)\n"
            "  -t, --threads N        threads, each with its own event loop; the\n"
            "                         connections are spread over them (default 1)\n"
            "  -P, --pipeline N       requests in flight per connection (default 1);\n"
            "                         with --rate, the most in flight per connection\n"
            "      --rate N           open loop: N requests/s in all, spread evenly over\n"
            "                         the connections, each sent at its scheduled time\n"
            "                         and timed from it, so a slow server shows in the\n"
            "                         latencies (no coordinated omission). A request due\n"
            "                         while its connection has -P in flight waits and\n"
            "                         counts as late; one still unsent when the run ends\n"
            "                         counts as backlog. 0 = closed loop (default 0),\n"
            "                         else 1 to 1e9\n"
            "      --ratio GET:SET    mix of GETs and SETs, e.g. 1:0, 0:1, 9:1 (default 1:0)\n"
            "      --keys N           key space, keys key:%%08d of 0..N-1 (default 100000)\n"
            "      --dist D           uniform or zipf (s = 0.99) (default uniform)\n"
            "  -d, --value-size N     SET value bytes (default 64)\n"
            "      --duration S       measured seconds (default 10)\n"
            "      --warmup S         unmeasured seconds of load first (default 1)\n"
            "      --preload          SET every key once before the warmup\n"
            "      --password SECRET  AUTH with this secret (also env KVBENCH_PASSWORD)\n"
            "      --seed N           random seed (default 1)\n"
            "      --json             print the result as one JSON object\n"
            "  -q, --quiet            no progress messages on stderr\n"
            "      --help             print this help and exit\n"
            "      --version          print the version and exit\n"
            "\n"
            "Counts only requests answered during the measured seconds (with --rate,\n"
            "compare the achieved req/s with the rate, and see late and backlog).\n"
            "Any status other than OK is an error, except NOT_FOUND for GET (counted\n"
            "as a miss; with resp, a nil reply).\n"
            "Exit status: 0 when the run completed without connection errors,\n"
            "1 when a connection failed, 2 on a usage error.\n",
            KV_PROTO_DEFAULT_PORT, KVB_RESP_DEFAULT_PORT, KVB_MC_DEFAULT_PORT);
}

const char *kvb_protocol_name(kvb_protocol p)
{
    switch (p) {
    case KVB_PROTOCOL_RESP:
        return "resp";
    case KVB_PROTOCOL_MEMCACHE:
        return "memcache";
    default:
        return "kvd";
    }
}

static int parse_u64(const char *s, uint64_t min, uint64_t max, uint64_t *out)
{
    char *end;
    errno = 0;
    if (*s == '-' || *s == '\0')
        return -1;
    unsigned long long v = strtoull(s, &end, 10);
    if (errno || *end || v < min || v > max)
        return -1;
    *out = v;
    return 0;
}

static int parse_secs(const char *s, double min, double *out)
{
    char *end;
    errno = 0;
    double v = strtod(s, &end);
    if (errno || *end || end == s || !isfinite(v) || v < min || v > 86400.0)
        return -1;
    *out = v;
    return 0;
}

/* Requests per second: 0 (closed loop), or 1 to 1e9 (lower rates are of
 * no use here, and tiny ones would overflow a connection's interval). */
static int parse_rate(const char *s, double *out)
{
    char *end;
    errno = 0;
    double v = strtod(s, &end);
    if (errno || *end || end == s || !isfinite(v) || (v != 0.0 && (v < 1.0 || v > 1e9)))
        return -1;
    *out = v;
    return 0;
}

static int parse_int(const char *s, int min, int max, int *out)
{
    uint64_t v;
    if (parse_u64(s, (uint64_t)min, (uint64_t)max, &v) != 0)
        return -1;
    *out = (int)v;
    return 0;
}

static int parse_ratio(const char *s, unsigned *get, unsigned *set)
{
    const char *colon = strchr(s, ':');
    if (!colon)
        return -1;
    char a[32];
    size_t n = (size_t)(colon - s);
    if (n == 0 || n >= sizeof a)
        return -1;
    memcpy(a, s, n);
    a[n] = '\0';
    uint64_t g, t;
    if (parse_u64(a, 0, 1000000, &g) != 0 || parse_u64(colon + 1, 0, 1000000, &t) != 0 ||
        g + t == 0)
        return -1;
    *get = (unsigned)g;
    *set = (unsigned)t;
    return 0;
}

static int bad(const char *opt, const char *arg)
{
    fprintf(stderr, "kvbench: invalid value for %s: '%s' (see --help)\n", opt, arg);
    return -1;
}

enum {
    OPT_UNIX = 256,
    OPT_PROTOCOL,
    OPT_RATIO,
    OPT_RATE,
    OPT_KEYS,
    OPT_DIST,
    OPT_DURATION,
    OPT_WARMUP,
    OPT_PRELOAD,
    OPT_PASSWORD,
    OPT_SEED,
    OPT_JSON,
    OPT_HELP,
    OPT_VERSION
};

int kvb_opts_parse(kvb_opts *o, int argc, char **argv)
{
    static const struct option longopts[] = {
        {"host", required_argument, NULL, 'h'},
        {"port", required_argument, NULL, 'p'},
        {"unix", required_argument, NULL, OPT_UNIX},
        {"protocol", required_argument, NULL, OPT_PROTOCOL},
        {"connections", required_argument, NULL, 'c'},
        {"threads", required_argument, NULL, 't'},
        {"pipeline", required_argument, NULL, 'P'},
        {"ratio", required_argument, NULL, OPT_RATIO},
        {"rate", required_argument, NULL, OPT_RATE},
        {"keys", required_argument, NULL, OPT_KEYS},
        {"dist", required_argument, NULL, OPT_DIST},
        {"value-size", required_argument, NULL, 'd'},
        {"duration", required_argument, NULL, OPT_DURATION},
        {"warmup", required_argument, NULL, OPT_WARMUP},
        {"preload", no_argument, NULL, OPT_PRELOAD},
        {"password", required_argument, NULL, OPT_PASSWORD},
        {"seed", required_argument, NULL, OPT_SEED},
        {"json", no_argument, NULL, OPT_JSON},
        {"quiet", no_argument, NULL, 'q'},
        {"help", no_argument, NULL, OPT_HELP},
        {"version", no_argument, NULL, OPT_VERSION},
        {NULL, 0, NULL, 0},
    };
    *o = (kvb_opts){.host = "127.0.0.1",
                    .port = KV_PROTO_DEFAULT_PORT,
                    .connections = 50,
                    .threads = 1,
                    .pipeline = 1,
                    .get_ratio = 1,
                    .set_ratio = 0,
                    .keys = 100000,
                    .dist = KVB_DIST_UNIFORM,
                    .value_size = 64,
                    .duration = 10.0,
                    .warmup = 1.0,
                    .seed = 1,
                    .password = getenv("KVBENCH_PASSWORD")};
    uint64_t u;
    int ch;
    int port_given = 0;
    opterr = 0;
    optind = 1;
    while ((ch = getopt_long(argc, argv, ":h:p:c:t:P:d:q", longopts, NULL)) != -1) {
        switch (ch) {
        case 'h':
            o->host = optarg;
            break;
        case 'p':
            if (parse_int(optarg, 1, 65535, &o->port) != 0)
                return bad("--port", optarg);
            port_given = 1;
            break;
        case OPT_PROTOCOL:
            if (strcmp(optarg, "kvd") == 0)
                o->protocol = KVB_PROTOCOL_KVD;
            else if (strcmp(optarg, "resp") == 0)
                o->protocol = KVB_PROTOCOL_RESP;
            else if (strcmp(optarg, "memcache") == 0)
                o->protocol = KVB_PROTOCOL_MEMCACHE;
            else
                return bad("--protocol", optarg);
            break;
        case OPT_UNIX:
            o->unix_path = optarg;
            break;
        case 'c':
            if (parse_int(optarg, 1, 100000, &o->connections) != 0)
                return bad("--connections", optarg);
            break;
        case 't':
            if (parse_int(optarg, 1, 1024, &o->threads) != 0)
                return bad("--threads", optarg);
            break;
        case 'P':
            if (parse_int(optarg, 1, 65536, &o->pipeline) != 0)
                return bad("--pipeline", optarg);
            break;
        case OPT_RATIO:
            if (parse_ratio(optarg, &o->get_ratio, &o->set_ratio) != 0)
                return bad("--ratio", optarg);
            break;
        case OPT_RATE:
            if (parse_rate(optarg, &o->rate) != 0)
                return bad("--rate", optarg);
            break;
        case OPT_KEYS:
            if (parse_u64(optarg, 1, UINT64_C(1) << 40, &o->keys) != 0)
                return bad("--keys", optarg);
            break;
        case OPT_DIST:
            if (strcmp(optarg, "uniform") == 0)
                o->dist = KVB_DIST_UNIFORM;
            else if (strcmp(optarg, "zipf") == 0)
                o->dist = KVB_DIST_ZIPF;
            else
                return bad("--dist", optarg);
            break;
        case 'd':
            if (parse_u64(optarg, 0, (uint64_t)64 << 20, &u) != 0)
                return bad("--value-size", optarg);
            o->value_size = (size_t)u;
            break;
        case OPT_DURATION:
            if (parse_secs(optarg, 0.001, &o->duration) != 0)
                return bad("--duration", optarg);
            break;
        case OPT_WARMUP:
            if (parse_secs(optarg, 0.0, &o->warmup) != 0)
                return bad("--warmup", optarg);
            break;
        case OPT_PRELOAD:
            o->preload = 1;
            break;
        case OPT_PASSWORD:
            o->password = optarg;
            break;
        case OPT_SEED:
            if (parse_u64(optarg, 0, UINT64_MAX, &o->seed) != 0)
                return bad("--seed", optarg);
            break;
        case OPT_JSON:
            o->json = 1;
            break;
        case 'q':
            o->quiet = 1;
            break;
        case OPT_HELP:
            usage(stdout);
            return 1;
        case OPT_VERSION:
            printf("kvbench %s (protocol %d)\n", kv_version(), KV_PROTO_VERSION);
            return 1;
        case ':':
            fprintf(stderr, "kvbench: option %s needs a value (see --help)\n", argv[optind - 1]);
            return -1;
        default:
            fprintf(stderr, "kvbench: unknown option %s (see --help)\n", argv[optind - 1]);
            return -1;
        }
    }
    if (optind < argc) {
        fprintf(stderr, "kvbench: unexpected argument '%s' (see --help)\n", argv[optind]);
        return -1;
    }
    if (o->protocol == KVB_PROTOCOL_RESP && !port_given)
        o->port = KVB_RESP_DEFAULT_PORT;
    if (o->protocol == KVB_PROTOCOL_MEMCACHE && !port_given)
        o->port = KVB_MC_DEFAULT_PORT;
    if (o->protocol == KVB_PROTOCOL_MEMCACHE && o->password) {
        fprintf(stderr, "kvbench: --password (or KVBENCH_PASSWORD) with --protocol memcache: "
                        "memcached's text protocol has no authentication\n");
        return -1;
    }
    if (o->threads > o->connections) {
        fprintf(stderr, "kvbench: more threads (%d) than connections (%d)\n", o->threads,
                o->connections);
        return -1;
    }
    return 0;
}
