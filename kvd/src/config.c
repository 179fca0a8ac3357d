/*
 * config.c - defaults, config file and flags (see config.h).
 *
 * One table describes every option: its name (the same for the flag and
 * the file key), its type and its help line, so --help, the INI parser and
 * getopt can never disagree. Order of precedence, lowest first: defaults,
 * the file (--config), the KVD_PASSWORD environment variable, flags.
 *
 * Checking values, in one place for flags and file alike: set_opt()
 * refuses what does not parse or lies outside the option's range (the
 * table's min..max: what makes sense on any machine); validate() then
 * refuses contradictory combinations and warns about settings that are
 * legal but likely a mistake here (more threads than CPUs). Every message
 * names where the value came from: FILE:LINE for the config file (inih is
 * fed line by line, so the line is known), --flag for the command line.
 */
#include "config.h"

#include <ctype.h>
#include <errno.h>
#include <getopt.h>
#include <ini.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/un.h>
#include <uv.h>

#include "kv.h"
#include "kv_proto.h"
#include "log.h"
#include "notify.h"

typedef enum opt_type {
    OPT_STR,   /* char * (replaced)                          */
    OPT_BINDS, /* address list, comma separated, repeatable   */
    OPT_PORT,
    OPT_INT,   /* int 0..1024 (threads)                       */
    OPT_SIZE,  /* size_t with optional k/m/g suffix (binary)  */
    OPT_U64,
    OPT_SECS,  /* unsigned seconds                            */
    OPT_BOOL,  /* a flag without argument on the command line */
    OPT_YESNO, /* yes/no, with an argument everywhere         */
    OPT_LEVEL,
    OPT_FSYNC, /* always, everysec or no                      */
    OPT_POLICY, /* an eviction policy by its Redis name        */
    OPT_HUGE,  /* eager or never                              */
    OPT_MODE,  /* octal file mode 0..777                      */
    OPT_FLAG   /* no argument; only on the command line       */
} opt_type;

typedef struct opt_def {
    const char *name;
    opt_type type;
    size_t offset; /* into kvd_config */
    const char *arg;
    const char *help; /* includes the default and the range */
    uint64_t min, max; /* numeric types: the accepted range */
} opt_def;

/* The largest useful number of event loops. Every loop is a thread with
 * its own epoll set and buffers; beyond this even the biggest machines
 * gain nothing. Fixed, not derived from the CPU count, so that a config
 * file valid on one machine is valid on every other (more loops than CPUs
 * is warned about instead). */
#define KVD_MAX_THREADS 256
/* The smallest --max-frame-size: a request with a key of several hundred
 * bytes, an AUTH with a long password or a small TXN must still fit. A
 * value below it is a forgotten suffix (100 for 100m), not a setting. */
#define KVD_MIN_FRAME ((uint64_t)1024)
#define KVD_MIN_OUTPUT_BUFFER ((uint64_t)4096)
#define KVD_MAX_SECS ((uint64_t)86400 * 365)
/* libkv refuses to size a table for more (store.c). */
#define KVD_MAX_INITIAL_CAPACITY ((uint64_t)1 << 40)

#define OFF(f) offsetof(kvd_config, f)

/* History's defaults (docs/kvd.8): an hour of undo for a store of
 * moderate write rate, at a bounded memory cost for a busy one. The byte and age bounds depend on each
 * node's own clock and memory, so a cluster node leaves them out. */
#define KVD_DEFAULT_HISTORY_VERSIONS 100
#define KVD_DEFAULT_HISTORY_BYTES ((uint64_t)64 << 20)
#define KVD_DEFAULT_HISTORY_AGE 3600u

static const opt_def opts[] = {
    {"config", OPT_STR, OFF(config_path), "PATH",
     "read settings from this INI file (keys as these flags, top level or [kvd])", 0, 0},
    {"bind", OPT_BINDS, 0, "ADDR[,ADDR]",
     "IPv4/IPv6 address or localhost (= 127.0.0.1) to listen on; repeatable; 'none' = no TCP, only --unix (default 127.0.0.1)", 0, 0},
    {"protected-mode", OPT_YESNO, OFF(protected_mode), "yes|no",
     "refuse to start listening on a non-loopback address (0.0.0.0, ::, a LAN address) without a password (default yes)", 0, 0},
    {"port", OPT_PORT, OFF(port), "N", "TCP port, 0 = ephemeral (default 7379)", 0, 65535},
    {"node-id", OPT_INT, OFF(node_id), "N",
     "cluster: this node's id, 1..1024 (with --raft-addr and --cluster)", 0, 1024},
    {"raft-addr", OPT_STR, OFF(raft_addr), "HOST:PORT",
     "cluster: the address this node's Raft listens on and peers reach it at", 0, 0},
    {"raft-bind", OPT_STR, OFF(raft_bind), "HOST:PORT",
     "cluster: listen for Raft traffic here instead of at --raft-addr, which peers still dial "
     "(a port forward, NAT or a test's proxy in between) (default --raft-addr)", 0, 0},
    {"cluster", OPT_STR, OFF(cluster), "ID@HOST:PORT,...",
     "cluster: every node's id and Raft address; bootstraps a new cluster once, later starts "
     "rejoin from --data-dir (default none: a single server)", 0, 0},
    {"cluster-join", OPT_BOOL, OFF(cluster_join), NULL,
     "cluster: a new node joining a running cluster: start empty and wait until the leader "
     "adds it (kvcli cluster add ID HOST:PORT); needs --node-id and --raft-addr", 0, 0},
    {"raft-election-timeout", OPT_SIZE, OFF(raft_election_timeout), "MS",
     "cluster: milliseconds without hearing from a leader before a follower starts an "
     "election (randomized between 1x and 2x; heartbeats every tenth of it) (default 750)",
     50, 60000},
    {"raft-snapshot-entries", OPT_SIZE, OFF(raft_snapshot_entries), "N",
     "cluster: snapshot the store after at least N writes to the Raft log (more once "
     "snapshots are big: when the log is about as big as the last one) and drop the log "
     "before it (default 16384)", 16, 1u << 30},
    {"raft-segment-size", OPT_SIZE, OFF(raft_segment_size), "BYTES",
     "cluster: the size of each Raft log segment file (preallocated); starting the next one "
     "holds up the log's writes for tens of ms on a busy disk, so big segments make that rare "
     "(default 64m)", 1u << 20, 1u << 30},
    {"resp-port", OPT_PORT, OFF(resp_port), "N",
     "also listen on port N (same addresses) for the Redis protocol only, e.g. 6379 for a "
     "drop-in replacement; the main port speaks it too (default none)", 0, 65535},
    {"http-port", OPT_PORT, OFF(http_port), "N",
     "also listen on port N (same addresses) for HTTP only (docs/http.md); the main port "
     "speaks it too (default none)", 0, 65535},
    {"port-file", OPT_STR, OFF(port_file), "PATH",
     "write the bound TCP port to this file once listening, 0 with --bind none (default none)", 0, 0},
    {"unix", OPT_STR, OFF(unix_path), "PATH",
     "also listen on this Unix socket; refused if a running server answers there, removed at exit if still ours (default none)", 0, 0},
    {"unix-perm", OPT_MODE, OFF(unix_perm), "MODE",
     "octal permissions of the Unix socket, e.g. 700 or 770 (default: from the umask)", 0, 0},
    {"threads", OPT_INT, OFF(threads), "N", "event-loop threads, 0 = one per CPU, at most 256; more than the CPUs is warned about (default 0)", 0, KVD_MAX_THREADS},
    {"busy-poll", OPT_INT, OFF(busy_poll), "USECS",
     "after answering, keep polling the connections for up to USECS microseconds before the thread sleeps: a closed-loop client then does not pay to wake the server, at the cost of CPU while lightly loaded, at most 10000; 0 = off (default 0)", 0, 10000},
    {"password", OPT_STR, OFF(password), "SECRET",
     "require AUTH with this secret, not empty (frames over 1 MiB are refused before it; AUTHs from an address with recent failures wait up to 3 s); visible to every user in ps: prefer --password-file or env KVD_PASSWORD (default none)", 0, 0},
    {"password-file", OPT_STR, OFF(password_file), "PATH",
     "read the password from the first line of this file (not empty), instead of --password (default none)", 0, 0},
    {"max-connections", OPT_SIZE, OFF(max_connections), "N",
     "refuse connections above this with BUSY, 0 = unlimited (default 10000); lowered, with a warning, to what the open-file limit allows after raising its soft value", 0, SIZE_MAX},
    {"max-frame-size", OPT_SIZE, OFF(max_frame_size), "BYTES",
     "largest request (frame body, or Redis command), 1k to below 672m; below max-value-size is warned about (default 64M+64K = 67174400)", KVD_MIN_FRAME, KVD_MAX_FRAME_SIZE - 1},
    {"max-output-buffer", OPT_SIZE, OFF(max_output_buffer), "BYTES",
     "per-connection unsent output: reading pauses at half, disconnect above; at least 4k (default 64M)", KVD_MIN_OUTPUT_BUFFER, SIZE_MAX},
    {"max-client-memory", OPT_SIZE, OFF(max_client_memory), "BYTES",
     "all clients' input and output buffers together; above it the biggest are disconnected; 0 = no limit, else at least max-frame-size (default 1g)", 0, SIZE_MAX},
    {"idle-timeout", OPT_SECS, OFF(idle_timeout), "SECS",
     "close connections idle this long, 0 = never (default 0)", 0, KVD_MAX_SECS},
    {"write-timeout", OPT_SECS, OFF(write_timeout), "SECS",
     "close a client whose backed-up output does not drain for this long, 0 = never (default 60)", 0, KVD_MAX_SECS},
    {"frame-timeout", OPT_SECS, OFF(frame_timeout), "SECS",
     "close a client whose request frame, once begun, is not complete within this long, 0 = never (default 30)", 0, KVD_MAX_SECS},
    {"max-key-size", OPT_SIZE, OFF(max_key_size), "BYTES", "store's largest key (default 64K, at most 64K)", 1, KV_LIMIT_MAX_KEY_SIZE},
    {"max-value-size", OPT_SIZE, OFF(max_value_size), "BYTES",
     "store's largest value (default 64M, at most 1G)", 0, KV_LIMIT_MAX_VALUE_SIZE},
    {"max-keys", OPT_U64, OFF(max_keys), "N", "store's key limit, 0 = unlimited (default 0)", 0, UINT64_MAX},
    {"max-memory", OPT_U64, OFF(max_memory), "BYTES",
     "store's memory limit (items, index, allocator overhead), e.g. 2g; 0 = unlimited, else at "
     "least 1m; not with a cluster (default 0)", 0, UINT64_MAX},
    {"eviction-policy", OPT_POLICY, OFF(eviction_policy), "POLICY",
     "what a write does at --max-memory, as Redis's maxmemory-policy: noeviction (refuse it), "
     "allkeys-lru, allkeys-lfu, allkeys-random, volatile-lru, volatile-lfu, volatile-random or "
     "volatile-ttl (default noeviction)", 0, 0},
    {"history", OPT_YESNO, OFF(history), "on|off",
     "keep earlier values of keys for reads at a revision, HISTORY, ROLLBACK and COMPACT "
     "(kvd(8), HISTORY); off gives every command its latest value only and lets "
     "writers on different lock stripes take revisions without one shared counter "
     "(default on)", 0, 0},
    {"history-versions", OPT_U64, OFF(history_versions), "N",
     "with history: at most N earlier values per key, 0 = no count bound (default 100)", 0,
     UINT32_MAX},
    {"history-bytes", OPT_U64, OFF(history_bytes), "BYTES",
     "with history: at most this much memory for earlier values in all, oldest dropped "
     "first, 0 = no bound; under --max-memory history gives way before keys are evicted; "
     "on a cluster node the leader compacts every node alike (default 64m)", 0,
     UINT64_MAX},
    {"history-age", OPT_SECS, OFF(history_age), "SECS",
     "with history: drop values replaced more than SECS ago, 0 = no bound; on a cluster "
     "node by the leader's clock, every node alike (default 3600)", 0, KVD_MAX_SECS},
    {"initial-capacity", OPT_SIZE, OFF(initial_capacity), "N", "keys to size the store for, at most 2^40 (default 1024)", 0, KVD_MAX_INITIAL_CAPACITY},
    {"huge-pages", OPT_HUGE, OFF(huge_pages), "WHEN",
     "eager: a big store's item memory and index are advised to be transparent huge pages as they are taken (fewer TLB "
     "misses; the first write to each huge page faults in all 2 MiB at once, a stall while the store "
     "grows), or never (4 KiB pages) (default eager)", 0, 0},
    {"data-dir", OPT_STR, OFF(data_dir), "DIR",
     "keep the store in this directory (log + snapshots) and recover it at start (default none: in memory)", 0, 0},
    {"fsync", OPT_FSYNC, OFF(fsync), "POLICY",
     "with --data-dir: always (each write synced before its reply), everysec, or no (default everysec)", 0, 0},
    {"snapshot-log-size", OPT_SIZE, OFF(snapshot_log_size), "BYTES",
     "snapshot once the log has grown this much, 0 = never by size (default 64M)", 0, SIZE_MAX},
    {"snapshot-interval", OPT_SECS, OFF(snapshot_interval), "SECS",
     "also snapshot this often if anything changed, 0 = never by time (default 3600)", 0, KVD_MAX_SECS},
    {"log-level", OPT_LEVEL, OFF(log_level), "LEVEL", "debug, info, warn or error (default info)", 0, 0},
    {"log-file", OPT_STR, OFF(log_file), "PATH", "log to this file instead of stderr (default stderr)", 0, 0},
    {"syslog", OPT_BOOL, OFF(syslog), NULL,
     "also send every log line to syslog (facility daemon, ident kvd; under systemd the journal "
     "collects it), with its level as the priority (default no)", 0, 0},
    {"daemonize", OPT_BOOL, OFF(daemonize), NULL,
     "run in the background once listening; start-up errors (port in use, unwritable pid file) are still printed on stderr and exit 1; without --log-file the log is discarded (default no)", 0, 0},
    {"pidfile", OPT_STR, OFF(pidfile), "PATH", "write the process id here and hold a lock on it while running; a second kvd with the same pid file exits 1 'already running'; removed on exit (default none)", 0, 0},
    {"help", OPT_FLAG, 0, NULL, "print this help and exit", 0, 0},
    {"version", OPT_FLAG, 0, NULL, "print the version and exit", 0, 0},
};
#define NOPTS (sizeof opts / sizeof opts[0])

static void config_defaults(kvd_config *cfg)
{
    memset(cfg, 0, sizeof *cfg);
    cfg->port = KV_PROTO_DEFAULT_PORT;
    cfg->resp_port = -1;
    cfg->http_port = -1;
    cfg->raft_snapshot_entries = 16384;
    cfg->raft_segment_size = (size_t)64 << 20;
    cfg->raft_election_timeout = 750;
    cfg->unix_perm = -1;
    cfg->protected_mode = 1;
    cfg->max_connections = 10000;
    cfg->max_frame_size = KV_PROTO_DEFAULT_MAX_FRAME;
    cfg->max_output_buffer = (size_t)64 * 1024 * 1024;
    cfg->max_client_memory = (size_t)1 << 30;
    cfg->write_timeout = 60;
    cfg->frame_timeout = 30;
    kv_options o;
    kv_options_init(&o);
    cfg->max_key_size = o.max_key_size;
    cfg->max_value_size = o.max_value_size;
    cfg->max_keys = o.max_keys;
    cfg->initial_capacity = o.initial_capacity;
    cfg->fsync = KV_FSYNC_EVERYSEC;
    cfg->huge_pages = KV_HUGE_EAGER;
    cfg->snapshot_log_size = (size_t)KV_DEFAULT_SNAPSHOT_LOG_BYTES;
    cfg->snapshot_interval = KV_DEFAULT_SNAPSHOT_INTERVAL_S;
    cfg->log_level = KVD_LOG_INFO;
    cfg->history = 1;
    cfg->history_versions = KVD_DEFAULT_HISTORY_VERSIONS;
    cfg->history_bytes = KVD_DEFAULT_HISTORY_BYTES;
    cfg->history_age = KVD_DEFAULT_HISTORY_AGE;
}

void kvd_config_free(kvd_config *cfg)
{
    for (size_t i = 0; i < cfg->nbinds; i++)
        free(cfg->binds[i]);
    cfg->nbinds = 0;
    for (size_t i = 0; i < NOPTS; i++) {
        if (opts[i].type == OPT_STR) {
            char **p = (char **)((char *)cfg + opts[i].offset);
            free(*p);
            *p = NULL;
        }
    }
}

static const opt_def *find_opt(const char *name)
{
    for (size_t i = 0; i < NOPTS; i++)
        if (strcmp(opts[i].name, name) == 0)
            return &opts[i];
    return NULL;
}

/* Unsigned number with an optional binary suffix: 64k, 64M, 1g, 2GiB. */
static int parse_u64(const char *s, int suffixes, uint64_t *out)
{
    if (!*s || !isdigit((unsigned char)*s))
        return -1;
    errno = 0;
    char *end;
    unsigned long long v = strtoull(s, &end, 10);
    if (errno)
        return -1;
    unsigned shift = 0;
    if (suffixes && *end) {
        switch (tolower((unsigned char)*end)) {
        case 'k': shift = 10; break;
        case 'm': shift = 20; break;
        case 'g': shift = 30; break;
        default: return -1;
        }
        end++;
        if (strcasecmp(end, "ib") == 0 || strcasecmp(end, "b") == 0)
            end += strlen(end);
    }
    if (*end)
        return -1;
    if (shift && v > (UINT64_MAX >> shift))
        return -1;
    *out = (uint64_t)v << shift;
    return 0;
}

static int parse_bool(const char *s, int *out)
{
    static const char *const yes[] = {"1", "yes", "true", "on"};
    static const char *const no[] = {"0", "no", "false", "off"};
    for (int i = 0; i < 4; i++) {
        if (strcasecmp(s, yes[i]) == 0)
            return *out = 1, 0;
        if (strcasecmp(s, no[i]) == 0)
            return *out = 0, 0;
    }
    return -1;
}

/* Bytes as an operator would write them: 1k, 64m, 1g, else the number. */
static void fmt_size(uint64_t v, char *buf, size_t n)
{
    static const char suffix[] = "gmk";
    for (int i = 0; i < 3; i++) {
        unsigned shift = 30 - 10 * (unsigned)i;
        if (v && v % ((uint64_t)1 << shift) == 0) {
            snprintf(buf, n, "%llu%c", (unsigned long long)(v >> shift), suffix[i]);
            return;
        }
    }
    snprintf(buf, n, "%llu", (unsigned long long)v);
}

/* 0 if u is within o's range, else -1 with what is wrong in err. */
static int check_range(const opt_def *o, const char *val, uint64_t u, char *err, size_t errlen)
{
    if (u >= o->min && u <= o->max)
        return 0;
    char lo[32], hi[32];
    if (o->type == OPT_SIZE) {
        fmt_size(o->min, lo, sizeof lo);
        fmt_size(o->max, hi, sizeof hi);
    } else {
        snprintf(lo, sizeof lo, "%llu", (unsigned long long)o->min);
        snprintf(hi, sizeof hi, "%llu", (unsigned long long)o->max);
    }
    const char *hint = o->type == OPT_SIZE && u < o->min
                           ? " (sizes are in bytes unless they end in k, m or g)"
                           : "";
    /* where the number alone would puzzle, why the range ends there */
    if (o->offset == OFF(max_frame_size) && u > o->max)
        hint = " (below 672m: a larger frame's length prefix could begin with '*' or a letter, "
               "which is how kvd tells the Redis protocol and HTTP from its own frames)";
    if (o->max == UINT64_MAX || o->max == SIZE_MAX)
        snprintf(err, errlen, "%s is below the minimum %s%s", val, lo, hint);
    else
        snprintf(err, errlen, "%s is out of range %s..%s%s", val, lo, hi, hint);
    return -1;
}

static int add_binds(kvd_config *cfg, const char *list, char *err, size_t errlen)
{
    if (strcasecmp(list, "none") == 0) {
        cfg->tcp_off = 1;
        return 0;
    }
    const char *p = list;
    for (;;) {
        const char *comma = strchr(p, ',');
        size_t n = comma ? (size_t)(comma - p) : strlen(p);
        while (n && isspace((unsigned char)*p))
            p++, n--;
        while (n && isspace((unsigned char)p[n - 1]))
            n--;
        if (n == 0) {
            snprintf(err, errlen, "empty address in '%s'", list);
            return -1;
        }
        if (cfg->nbinds == KVD_MAX_BINDS) {
            snprintf(err, errlen, "at most %d addresses", KVD_MAX_BINDS);
            return -1;
        }
        /* localhost: the IPv4 loopback only, whatever /etc/hosts says */
        if (n == 9 && strncasecmp(p, "localhost", 9) == 0)
            p = "127.0.0.1", n = 9;
        char *addr = strndup(p, n);
        if (!addr) {
            snprintf(err, errlen, "out of memory");
            return -1;
        }
        if (!kvd_config_parse_addr(addr, 0, NULL)) {
            snprintf(err, errlen, "'%s' is not a numeric IPv4 or IPv6 address or localhost", addr);
            free(addr);
            return -1;
        }
        cfg->binds[cfg->nbinds++] = addr;
        if (!comma)
            return 0;
        p = comma + 1;
    }
}

/* Applies one setting. Returns 0, or -1 with what is wrong with val in
 * err (the caller says which option and where it came from). */
static int set_opt(kvd_config *cfg, const opt_def *o, const char *val, char *err, size_t errlen)
{
    void *field = (char *)cfg + o->offset;
    uint64_t u = 0;
    int b;
    const char *expected = NULL;
    switch (o->type) {
    case OPT_STR: {
        char *copy = strdup(val);
        if (!copy) {
            snprintf(err, errlen, "out of memory");
            return -1;
        }
        free(*(char **)field);
        *(char **)field = copy;
        return 0;
    }
    case OPT_BINDS:
        return add_binds(cfg, val, err, errlen);
    case OPT_PORT:
    case OPT_INT:
    case OPT_SECS:
        if (parse_u64(val, 0, &u)) {
            expected = "a whole number";
            break;
        }
        if (check_range(o, val, u, err, errlen))
            return -1;
        if (o->type == OPT_SECS)
            *(unsigned *)field = (unsigned)u;
        else
            *(int *)field = (int)u;
        return 0;
    case OPT_SIZE:
    case OPT_U64:
        if (parse_u64(val, 1, &u)) {
            expected = "a number with an optional k, m or g suffix";
            break;
        }
        if (check_range(o, val, u, err, errlen))
            return -1;
        if (o->type == OPT_SIZE)
            *(size_t *)field = (size_t)u;
        else
            *(uint64_t *)field = u;
        return 0;
    case OPT_BOOL:
    case OPT_YESNO:
        if (parse_bool(val, &b)) {
            expected = "yes or no";
            break;
        }
        *(int *)field = b;
        return 0;
    case OPT_LEVEL:
        b = kvd_log_parse_level(val);
        if (b < 0) {
            expected = "debug, info, warn or error";
            break;
        }
        *(int *)field = b;
        return 0;
    case OPT_FSYNC:
        if (strcmp(val, "always") == 0)
            *(int *)field = KV_FSYNC_ALWAYS;
        else if (strcmp(val, "everysec") == 0)
            *(int *)field = KV_FSYNC_EVERYSEC;
        else if (strcmp(val, "no") == 0)
            *(int *)field = KV_FSYNC_NO;
        else {
            expected = "always, everysec or no";
            break;
        }
        return 0;
    case OPT_HUGE:
        if (strcmp(val, "eager") == 0)
            *(int *)field = KV_HUGE_EAGER;
        else if (strcmp(val, "never") == 0)
            *(int *)field = KV_HUGE_NEVER;
        else {
            expected = "eager or never";
            break;
        }
        return 0;
    case OPT_POLICY:
        b = kv_eviction_policy_parse(val);
        if (b < 0) {
            expected = "noeviction, allkeys-lru, allkeys-lfu, allkeys-random, volatile-lru, "
                       "volatile-lfu, volatile-random or volatile-ttl";
            break;
        }
        *(int *)field = b;
        return 0;
    case OPT_MODE: {
        char *end;
        errno = 0;
        unsigned long m = strtoul(val, &end, 8);
        if (!*val || !isdigit((unsigned char)*val) || *end || errno || m > 0777) {
            expected = "an octal mode such as 700 or 770";
            break;
        }
        *(int *)field = (int)m;
        return 0;
    }
    case OPT_FLAG:
        expected = "no value";
        break;
    }
    snprintf(err, errlen, "'%s' is not %s%s", val, expected,
             strchr(val, '#') ? " (a # comment must be on a line of its own)" : "");
    return -1;
}

/* ---- where values come from ------------------------------------------- */

enum { FROM_DEFAULT = 0, FROM_FLAG = -1, FROM_ENV = -2 }; /* > 0: a file line */

typedef struct loader {
    kvd_config *cfg;
    const char *path;  /* the --config file */
    FILE *file;
    int line;          /* lines of it read so far */
    int from[NOPTS];   /* where each option's value came from */
    int err_line;      /* the line of err, if about the file */
    char err[512];
} loader;

/* Prints "kvd: LEVEL: WHERE ..." for option name: WHERE is "FILE:LINE:
 * bad value for 'name'" for a value from the config file, "bad value for
 * --name" for a flag (errors), or "FILE:LINE: 'name'" / "--name" (warnings). */
static void opt_say(const loader *L, const char *name, int error, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));
static void opt_say(const loader *L, const char *name, int error, const char *fmt, ...)
{
    const opt_def *o = find_opt(name);
    int from = o ? L->from[o - opts] : FROM_DEFAULT;
    char loc[600] = "", ref[96];
    if (from > 0) {
        snprintf(loc, sizeof loc, "%s:%d: ", L->path, from);
        snprintf(ref, sizeof ref, "'%s'", name);
    } else if (from == FROM_FLAG) {
        snprintf(ref, sizeof ref, "--%s", name);
    } else if (from == FROM_ENV) {
        snprintf(ref, sizeof ref, "KVD_PASSWORD");
    } else {
        snprintf(ref, sizeof ref, "'%s' (the default)", name);
    }
    char msg[768];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    if (error)
        fprintf(stderr, "kvd: error: %sbad value for %s: %s\n", loc, ref, msg);
    else
        fprintf(stderr, "kvd: warning: %s%s: %s\n", loc, ref, msg);
}

/* ---- config file ------------------------------------------------------ */

/* inih's reader: one line per call, so the loader knows the line number
 * of every key it is handed. A line that does not fit inih's buffer would
 * be split silently (the rest read as a line of its own): refused. */
static char *read_line(char *str, int num, void *stream)
{
    loader *L = stream;
    if (L->err[0] || !fgets(str, num, L->file))
        return NULL; /* the first error ends the parse */
    L->line++;
    size_t n = strlen(str);
    if (n == (size_t)num - 1 && str[n - 1] != '\n') {
        int c = getc(L->file);
        if (c != EOF) {
            L->err_line = L->line;
            snprintf(L->err, sizeof L->err, "%s:%d: line longer than %d characters", L->path,
                     L->line, num - 2);
            return NULL;
        }
    }
    return str;
}

static int on_ini_pair(void *user, const char *section, const char *name, const char *value)
{
    loader *L = user;
    if (L->err[0])
        return 0;
    L->err_line = L->line;
    if (section[0] && strcmp(section, "kvd") != 0) {
        snprintf(L->err, sizeof L->err,
                 "%s:%d: '%s' is in section [%s]; kvd reads the top level and [kvd] only", L->path,
                 L->line, name, section);
        return 0;
    }
    char key[64];
    size_t n = strlen(name);
    if (n >= sizeof key)
        n = sizeof key - 1;
    for (size_t i = 0; i < n; i++)
        key[i] = name[i] == '_' ? '-' : (char)tolower((unsigned char)name[i]);
    key[n] = '\0';
    const opt_def *o = find_opt(key);
    if (!o || o->type == OPT_FLAG || strcmp(key, "config") == 0) {
        snprintf(L->err, sizeof L->err, "%s:%d: unknown key '%s' (kvd --help lists them)",
                 L->path, L->line, name);
        return 0;
    }
    char e[300];
    if (set_opt(L->cfg, o, value, e, sizeof e) != 0) {
        snprintf(L->err, sizeof L->err, "%s:%d: bad value for '%s': %s", L->path, L->line, name, e);
        return 0;
    }
    L->from[o - opts] = L->line;
    return 1;
}

static int load_file(loader *L, const char *path)
{
    L->path = path;
    L->file = fopen(path, "re");
    if (!L->file) {
        fprintf(stderr, "kvd: error: cannot open config file %s: %s\n", path, strerror(errno));
        return -1;
    }
    int rc = ini_parse_stream(read_line, L, on_ini_pair, L);
    fclose(L->file);
    L->file = NULL;
    /* rc: the first line inih found wrong (a syntax error, or one of ours) */
    if (L->err[0] && (rc <= 0 || rc >= L->err_line)) {
        fprintf(stderr, "kvd: error: %s\n", L->err);
        return -1;
    }
    if (rc > 0) {
        fprintf(stderr, "kvd: error: %s:%d: syntax error (expected 'key = value', a [kvd] "
                        "section or a # comment)\n", path, rc);
        return -1;
    }
    if (rc < 0) {
        fprintf(stderr, "kvd: error: cannot read config file %s: out of memory\n", path);
        return -1;
    }
    return 0;
}

/* ---- command line ----------------------------------------------------- */

static void print_help(void)
{
    printf("Usage: kvd [OPTIONS]\n"
           "kvd %s - network server for the libkv in-memory key-value store.\n\n"
           "Options (config file keys have the same names, without --):\n",
           KV_VERSION_STRING);
    for (size_t i = 0; i < NOPTS; i++) {
        char lhs[64];
        snprintf(lhs, sizeof lhs, "--%s%s%s", opts[i].name, opts[i].arg ? " " : "",
                 opts[i].arg ? opts[i].arg : "");
        printf("  %-28s %s\n", lhs, opts[i].help);
    }
    printf("\nSizes take an optional k, m or g suffix (binary units); durations are\n"
           "at most 31536000 s (a year). A value that does not parse or is out of\n"
           "range is refused (exit 2), naming the flag or FILE:LINE of the config.\n"
           "Signals: SIGINT/SIGTERM stop gracefully (answer what was received, exit 0);\n"
           "SIGHUP reopens --log-file (for logrotate) and never stops kvd.\n"
           "Under systemd (Type=notify) kvd reports READY=1 once listening, STATUS=\n"
           "lines and STOPPING=1 through $NOTIFY_SOCKET%s.\n",
           kvd_notify_supported() ? "" : " (not in this build: no libsystemd)");
}

int kvd_config_parse_addr(const char *text, int port, struct sockaddr_storage *out)
{
    char buf[INET6_ADDRSTRLEN + 2];
    size_t n = strlen(text);
    if (n >= 2 && text[0] == '[' && text[n - 1] == ']' && n - 2 < sizeof buf) {
        memcpy(buf, text + 1, n - 2);
        buf[n - 2] = '\0';
        text = buf;
    }
    struct sockaddr_storage ss;
    memset(&ss, 0, sizeof ss);
    if (uv_ip4_addr(text, port, (struct sockaddr_in *)&ss) != 0 &&
        uv_ip6_addr(text, port, (struct sockaddr_in6 *)&ss) != 0)
        return 0;
    if (out)
        *out = ss;
    return 1;
}

int kvd_config_addr_is_loopback(const char *text)
{
    struct sockaddr_storage ss;
    if (!kvd_config_parse_addr(text, 0, &ss))
        return 0;
    if (ss.ss_family == AF_INET)
        return (ntohl(((struct sockaddr_in *)&ss)->sin_addr.s_addr) >> 24) == 127;
    const struct in6_addr *a = &((struct sockaddr_in6 *)&ss)->sin6_addr;
    if (IN6_IS_ADDR_LOOPBACK(a))
        return 1;
    return IN6_IS_ADDR_V4MAPPED(a) && a->s6_addr[12] == 127;
}

static int validate(loader *L)
{
    kvd_config *cfg = L->cfg;
    if (cfg->max_client_memory && cfg->max_client_memory < cfg->max_frame_size) {
        opt_say(L, "max-client-memory", 1,
                "%zu is below max-frame-size %zu (one request must fit); 0 = no limit",
                cfg->max_client_memory, cfg->max_frame_size);
        return -1;
    }
    if (cfg->tcp_off && cfg->nbinds) {
        fprintf(stderr, "kvd: error: --bind none cannot be combined with addresses\n");
        return -1;
    }
    if (cfg->tcp_off && !cfg->unix_path) {
        fprintf(stderr, "kvd: error: --bind none leaves nothing to listen on (add --unix PATH)\n");
        return -1;
    }
    if (cfg->unix_path && strlen(cfg->unix_path) >= sizeof(((struct sockaddr_un *)0)->sun_path)) {
        opt_say(L, "unix", 1, "path longer than %zu bytes: %s",
                sizeof(((struct sockaddr_un *)0)->sun_path) - 1, cfg->unix_path);
        return -1;
    }
    for (size_t i = 0; i < cfg->nbinds && cfg->protected_mode && !cfg->password; i++) {
        if (!kvd_config_addr_is_loopback(cfg->binds[i])) {
            fprintf(stderr,
                    "kvd: error: protected mode: refusing to listen on %s without a password; anyone "
                    "who can reach it could read and change every key. Set a password "
                    "(--password-file, KVD_PASSWORD or --password), bind to 127.0.0.1, or give "
                    "--protected-mode no if the network is already protected (a firewall)\n",
                    cfg->binds[i]);
            return -1;
        }
    }
    if (cfg->unix_perm >= 0 && !cfg->unix_path) {
        fprintf(stderr, "kvd: error: --unix-perm without --unix\n");
        return -1;
    }
    int cluster_opts = (cfg->node_id != 0) + (cfg->raft_addr != NULL) +
                       (cfg->cluster != NULL || cfg->cluster_join);
    if (cluster_opts != 0 && cluster_opts != 3) {
        fprintf(stderr, "kvd: error: a cluster node needs all of --node-id, --raft-addr and "
                        "--cluster (or --cluster-join)\n");
        return -1;
    }
    if (cfg->raft_bind && !cfg->raft_addr) {
        fprintf(stderr, "kvd: error: --raft-bind without --raft-addr\n");
        return -1;
    }
    if (cfg->cluster_join && cfg->cluster) {
        fprintf(stderr, "kvd: error: --cluster-join and --cluster: a joining node gets the "
                        "cluster's configuration from its leader; give only --cluster-join\n");
        return -1;
    }
    if ((cfg->cluster || cfg->cluster_join) && !cfg->data_dir) {
        fprintf(stderr, "kvd: error: a cluster node needs --data-dir (its Raft log lives there)\n");
        return -1;
    }
    if (cfg->max_memory && cfg->max_memory < KV_MIN_MAX_MEMORY) {
        opt_say(L, "max-memory", 1,
                "%llu is below the minimum 1m (sizes are in bytes unless they end in k, m or g); "
                "0 = no limit",
                (unsigned long long)cfg->max_memory);
        return -1;
    }
    if (cfg->max_memory && (cfg->cluster || cfg->cluster_join)) {
        /* Each node applies the log to its own store: evicting there would
         * remove different keys on different nodes. */
        opt_say(L, "max-memory", 1,
                "is not supported on a cluster node (each node would evict different keys)");
        return -1;
    }
    if (cfg->password && !cfg->password[0]) {
        /* Silently serving without auth would be the worst reading of it. */
        fprintf(stderr, "kvd: error: empty password (from --password, the config file or "
                        "KVD_PASSWORD); omit it to run without authentication\n");
        return -1;
    }

    /* Legal, but probably not what was meant: say so and go on. */
    long cpus = sysconf(_SC_NPROCESSORS_ONLN);
    if (cpus > 0 && cfg->threads > cpus)
        opt_say(L, "threads", 0,
                "%d event loops for %ld CPUs: the extra loops only add context switches "
                "(0 = one per CPU)",
                cfg->threads, cpus);
    if (cfg->max_frame_size < cfg->max_value_size)
        opt_say(L, "max-frame-size", 0,
                "%zu is below max-value-size %zu: values over about %zu bytes cannot be sent",
                cfg->max_frame_size, cfg->max_value_size, cfg->max_frame_size);
    return 0;
}

/* --password-file: the secret is the file's first line, without its line
 * end. Read at start only (it may sit where the daemon cannot reach later). */
static int read_password_file(kvd_config *cfg)
{
    if (cfg->password) {
        fprintf(stderr, "kvd: error: give either password-file or a password (--password, the "
                        "config file or KVD_PASSWORD), not both\n");
        return -1;
    }
    FILE *f = fopen(cfg->password_file, "re");
    if (!f) {
        fprintf(stderr, "kvd: error: cannot read password file %s: %s\n", cfg->password_file,
                strerror(errno));
        return -1;
    }
    char *line = NULL;
    size_t cap = 0;
    ssize_t n = getline(&line, &cap, f);
    int read_err = ferror(f);
    fclose(f);
    while (n > 0 && (line[n - 1] == '\n' || line[n - 1] == '\r'))
        line[--n] = '\0';
    if (read_err || n <= 0) {
        fprintf(stderr, "kvd: error: password file %s %s\n", cfg->password_file,
                read_err ? "could not be read" : "has an empty first line; refusing to run without "
                                                 "authentication by accident");
        free(line);
        return -1;
    }
    cfg->password = line;
    return 0;
}


kvd_config_result kvd_config_load(kvd_config *cfg, int argc, char **argv)
{
    config_defaults(cfg);
    loader L;
    memset(&L, 0, sizeof L);
    L.cfg = cfg;

    struct option longopts[NOPTS + 1];
    for (size_t i = 0; i < NOPTS; i++) {
        longopts[i].name = opts[i].name;
        longopts[i].has_arg =
            (opts[i].type == OPT_FLAG || opts[i].type == OPT_BOOL) ? no_argument : required_argument;
        longopts[i].flag = NULL;
        longopts[i].val = 256 + (int)i;
    }
    memset(&longopts[NOPTS], 0, sizeof longopts[NOPTS]);

    /* Pass 1: --help, --version, --config and syntax errors. */
    const char *config_path = NULL;
    int c, idx;
    opterr = 0;
    optind = 1;
    while ((c = getopt_long(argc, argv, ":hv", longopts, &idx)) != -1) {
        if (c == 'h' || (c >= 256 && strcmp(opts[c - 256].name, "help") == 0)) {
            print_help();
            return KVD_CONFIG_EXIT_OK;
        }
        if (c == 'v' || (c >= 256 && strcmp(opts[c - 256].name, "version") == 0)) {
            printf("kvd %s (libkv %s, protocol %d%s)\n", KV_VERSION_STRING, kv_version(),
                   KV_PROTO_MAX_VERSION, kvd_notify_supported() ? ", systemd notify" : "");
            return KVD_CONFIG_EXIT_OK;
        }
        if (c == '?' || c == ':') {
            const char *arg = argv[optind - 1];
            fprintf(stderr, "kvd: error: %s option '%s' (try --help)\n",
                    c == '?' ? "unknown" : "missing argument for", arg);
            return KVD_CONFIG_ERROR;
        }
        if (c >= 256 && strcmp(opts[c - 256].name, "config") == 0)
            config_path = optarg;
    }
    if (optind < argc) {
        fprintf(stderr, "kvd: error: unexpected argument '%s' (try --help)\n", argv[optind]);
        return KVD_CONFIG_ERROR;
    }

    if (config_path && load_file(&L, config_path) != 0)
        return KVD_CONFIG_ERROR;
    const char *env = getenv("KVD_PASSWORD");
    char err[512];
    if (env) {
        const opt_def *o = find_opt("password");
        if (set_opt(cfg, o, env, err, sizeof err) != 0) {
            fprintf(stderr, "kvd: error: KVD_PASSWORD: %s\n", err);
            return KVD_CONFIG_ERROR;
        }
        L.from[o - opts] = FROM_ENV;
    }

    /* Pass 2: flags override the file. A --bind flag replaces the file's. */
    int flag_binds = 0;
    optind = 1;
    while ((c = getopt_long(argc, argv, ":hv", longopts, &idx)) != -1) {
        const opt_def *o = &opts[c - 256];
        if (o->type == OPT_BINDS && !flag_binds) {
            for (size_t i = 0; i < cfg->nbinds; i++)
                free(cfg->binds[i]);
            cfg->nbinds = 0;
            cfg->tcp_off = 0;
            flag_binds = 1;
        }
        const char *val = o->type == OPT_BOOL ? "1" : optarg;
        if (set_opt(cfg, o, val, err, sizeof err) != 0) {
            fprintf(stderr, "kvd: error: bad value for --%s: %s\n", o->name, err);
            return KVD_CONFIG_ERROR;
        }
        L.from[o - opts] = FROM_FLAG;
    }
    if (cfg->nbinds == 0 && !cfg->tcp_off && add_binds(cfg, "127.0.0.1", err, sizeof err) != 0) {
        fprintf(stderr, "kvd: error: %s\n", err);
        return KVD_CONFIG_ERROR;
    }
    if (cfg->password_file && read_password_file(cfg) != 0)
        return KVD_CONFIG_ERROR;
    return validate(&L) == 0 ? KVD_CONFIG_RUN : KVD_CONFIG_ERROR;
}
