/*
 * config.c - defaults, config file and flags (see config.h).
 *
 * One table describes every option: its name (the same for the flag and
 * the file key), its type and its help line, so --help, the INI parser and
 * getopt can never disagree. Order of precedence, lowest first: defaults,
 * the file (--config), the KVD_PASSWORD environment variable, flags.
 */
#include "config.h"

#include <ctype.h>
#include <errno.h>
#include <getopt.h>
#include <ini.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/un.h>
#include <uv.h>

#include "kv.h"
#include "kv_proto.h"
#include "log.h"

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
    OPT_MODE,  /* octal file mode 0..777                      */
    OPT_FLAG   /* no argument; only on the command line       */
} opt_type;

typedef struct opt_def {
    const char *name;
    opt_type type;
    size_t offset; /* into kvd_config */
    const char *arg;
    const char *help; /* includes the default */
} opt_def;

#define OFF(f) offsetof(kvd_config, f)

static const opt_def opts[] = {
    {"config", OPT_STR, OFF(config_path), "PATH",
     "read settings from this INI file (keys as these flags, top level or [kvd])"},
    {"bind", OPT_BINDS, 0, "ADDR[,ADDR]",
     "IPv4/IPv6 address or localhost (= 127.0.0.1) to listen on; repeatable; 'none' = no TCP, only --unix (default 127.0.0.1)"},
    {"protected-mode", OPT_YESNO, OFF(protected_mode), "yes|no",
     "refuse to start listening on a non-loopback address (0.0.0.0, ::, a LAN address) without a password (default yes)"},
    {"port", OPT_PORT, OFF(port), "N", "TCP port, 0 = ephemeral (default 7379)"},
    {"node-id", OPT_INT, OFF(node_id), "N",
     "cluster: this node's id, 1..1024 (with --raft-addr and --cluster)"},
    {"raft-addr", OPT_STR, OFF(raft_addr), "HOST:PORT",
     "cluster: the address this node's Raft listens on and peers reach it at"},
    {"cluster", OPT_STR, OFF(cluster), "ID@HOST:PORT,...",
     "cluster: every node's id and Raft address; bootstraps a new cluster once, later starts "
     "rejoin from --data-dir (default none: a single server)"},
    {"resp-port", OPT_PORT, OFF(resp_port), "N",
     "also listen on port N (same addresses) for the Redis protocol only, e.g. 6379 for a "
     "drop-in replacement; the main port speaks it too (default none)"},
    {"port-file", OPT_STR, OFF(port_file), "PATH",
     "write the bound TCP port to this file once listening, 0 with --bind none (default none)"},
    {"unix", OPT_STR, OFF(unix_path), "PATH",
     "also listen on this Unix socket; refused if a running server answers there, removed at exit if still ours (default none)"},
    {"unix-perm", OPT_MODE, OFF(unix_perm), "MODE",
     "octal permissions of the Unix socket, e.g. 700 or 770 (default: from the umask)"},
    {"threads", OPT_INT, OFF(threads), "N", "event-loop threads, 0 = one per CPU (default 0)"},
    {"password", OPT_STR, OFF(password), "SECRET",
     "require AUTH with this secret, not empty (frames over 1 MiB are refused before it; AUTHs from an address with recent failures wait up to 3 s); visible to every user in ps: prefer --password-file or env KVD_PASSWORD (default none)"},
    {"password-file", OPT_STR, OFF(password_file), "PATH",
     "read the password from the first line of this file (not empty), instead of --password (default none)"},
    {"max-connections", OPT_SIZE, OFF(max_connections), "N",
     "refuse connections above this with BUSY, 0 = unlimited (default 10000); lowered, with a warning, to what the open-file limit allows after raising its soft value"},
    {"max-frame-size", OPT_SIZE, OFF(max_frame_size), "BYTES",
     "largest request (frame body, or Redis command), below 672m (default 64M+64K = 67174400)"},
    {"max-output-buffer", OPT_SIZE, OFF(max_output_buffer), "BYTES",
     "per-connection unsent output: reading pauses at half, disconnect above (default 64M)"},
    {"max-client-memory", OPT_SIZE, OFF(max_client_memory), "BYTES",
     "all clients' input and output buffers together; above it the biggest are disconnected, 0 = no limit (default 1g)"},
    {"idle-timeout", OPT_SECS, OFF(idle_timeout), "SECS",
     "close connections idle this long, 0 = never (default 0)"},
    {"write-timeout", OPT_SECS, OFF(write_timeout), "SECS",
     "close a client whose backed-up output does not drain for this long, 0 = never (default 60)"},
    {"frame-timeout", OPT_SECS, OFF(frame_timeout), "SECS",
     "close a client whose request frame, once begun, is not complete within this long, 0 = never (default 30)"},
    {"max-key-size", OPT_SIZE, OFF(max_key_size), "BYTES", "store's largest key (default 64K, at most 64K)"},
    {"max-value-size", OPT_SIZE, OFF(max_value_size), "BYTES",
     "store's largest value (default 64M, at most 1G)"},
    {"max-keys", OPT_U64, OFF(max_keys), "N", "store's key limit, 0 = unlimited (default 0)"},
    {"initial-capacity", OPT_SIZE, OFF(initial_capacity), "N", "keys to size the store for (default 1024)"},
    {"data-dir", OPT_STR, OFF(data_dir), "DIR",
     "keep the store in this directory (log + snapshots) and recover it at start (default none: in memory)"},
    {"fsync", OPT_FSYNC, OFF(fsync), "POLICY",
     "with --data-dir: always (each write synced before its reply), everysec, or no (default everysec)"},
    {"snapshot-log-size", OPT_SIZE, OFF(snapshot_log_size), "BYTES",
     "snapshot once the log has grown this much, 0 = never by size (default 64M)"},
    {"snapshot-interval", OPT_SECS, OFF(snapshot_interval), "SECS",
     "also snapshot this often if anything changed, 0 = never by time (default 3600)"},
    {"log-level", OPT_LEVEL, OFF(log_level), "LEVEL", "debug, info, warn or error (default info)"},
    {"log-file", OPT_STR, OFF(log_file), "PATH", "log to this file instead of stderr (default stderr)"},
    {"daemonize", OPT_BOOL, OFF(daemonize), NULL,
     "run in the background once listening; start-up errors (port in use, unwritable pid file) are still printed on stderr and exit 1; without --log-file the log is discarded (default no)"},
    {"pidfile", OPT_STR, OFF(pidfile), "PATH", "write the process id here and hold a lock on it while running; a second kvd with the same pid file exits 1 'already running'; removed on exit (default none)"},
    {"help", OPT_FLAG, 0, NULL, "print this help and exit"},
    {"version", OPT_FLAG, 0, NULL, "print the version and exit"},
};
#define NOPTS (sizeof opts / sizeof opts[0])

static void config_defaults(kvd_config *cfg)
{
    memset(cfg, 0, sizeof *cfg);
    cfg->port = KV_PROTO_DEFAULT_PORT;
    cfg->resp_port = -1;
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
    cfg->snapshot_log_size = (size_t)KV_DEFAULT_SNAPSHOT_LOG_BYTES;
    cfg->snapshot_interval = KV_DEFAULT_SNAPSHOT_INTERVAL_S;
    cfg->log_level = KVD_LOG_INFO;
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
            snprintf(err, errlen, "--bind: empty address in '%s'", list);
            return -1;
        }
        if (cfg->nbinds == KVD_MAX_BINDS) {
            snprintf(err, errlen, "--bind: at most %d addresses", KVD_MAX_BINDS);
            return -1;
        }
        /* localhost: the IPv4 loopback only, whatever /etc/hosts says */
        if (n == 9 && strncasecmp(p, "localhost", 9) == 0)
            p = "127.0.0.1", n = 9;
        cfg->binds[cfg->nbinds] = strndup(p, n);
        if (!cfg->binds[cfg->nbinds]) {
            snprintf(err, errlen, "out of memory");
            return -1;
        }
        cfg->nbinds++;
        if (!comma)
            return 0;
        p = comma + 1;
    }
}

/* Applies one setting. Returns 0, or -1 with a message in err. */
static int set_opt(kvd_config *cfg, const opt_def *o, const char *val, char *err, size_t errlen)
{
    void *field = (char *)cfg + o->offset;
    uint64_t u = 0;
    int b;
    switch (o->type) {
    case OPT_STR: {
        char *copy = strdup(val);
        if (!copy)
            goto nomem;
        free(*(char **)field);
        *(char **)field = copy;
        return 0;
    }
    case OPT_BINDS:
        return add_binds(cfg, val, err, errlen);
    case OPT_PORT:
        if (parse_u64(val, 0, &u) || u > 65535)
            goto bad;
        *(int *)field = (int)u;
        return 0;
    case OPT_INT:
        if (parse_u64(val, 0, &u) || u > 1024)
            goto bad;
        *(int *)field = (int)u;
        return 0;
    case OPT_SIZE:
        if (parse_u64(val, 1, &u) || u > SIZE_MAX)
            goto bad;
        *(size_t *)field = (size_t)u;
        return 0;
    case OPT_U64:
        if (parse_u64(val, 1, &u))
            goto bad;
        *(uint64_t *)field = u;
        return 0;
    case OPT_SECS:
        if (parse_u64(val, 0, &u) || u > 86400 * 365)
            goto bad;
        *(unsigned *)field = (unsigned)u;
        return 0;
    case OPT_BOOL:
    case OPT_YESNO:
        if (parse_bool(val, &b))
            goto bad;
        *(int *)field = b;
        return 0;
    case OPT_LEVEL:
        b = kvd_log_parse_level(val);
        if (b < 0)
            goto bad;
        *(int *)field = b;
        return 0;
    case OPT_FSYNC:
        if (strcmp(val, "always") == 0)
            *(int *)field = KV_FSYNC_ALWAYS;
        else if (strcmp(val, "everysec") == 0)
            *(int *)field = KV_FSYNC_EVERYSEC;
        else if (strcmp(val, "no") == 0)
            *(int *)field = KV_FSYNC_NO;
        else
            goto bad;
        return 0;
    case OPT_MODE: {
        char *end;
        errno = 0;
        unsigned long m = strtoul(val, &end, 8);
        if (!*val || !isdigit((unsigned char)*val) || *end || errno || m > 0777)
            goto bad;
        *(int *)field = (int)m;
        return 0;
    }
    case OPT_FLAG:
        break;
    }
bad:
    snprintf(err, errlen, "invalid value '%s' for %s", val, o->name);
    return -1;
nomem:
    snprintf(err, errlen, "out of memory");
    return -1;
}

/* ---- config file ------------------------------------------------------ */

typedef struct ini_ctx {
    kvd_config *cfg;
    const char *path;
    char err[256];
} ini_ctx;

static int kvd_ini_handler(void *user, const char *section, const char *name, const char *value)
{
    ini_ctx *ic = user;
    if (ic->err[0])
        return 0;
    if (section[0] && strcmp(section, "kvd") != 0) {
        snprintf(ic->err, sizeof ic->err, "%s: unknown section [%s]", ic->path, section);
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
        snprintf(ic->err, sizeof ic->err, "%s: unknown key '%s'", ic->path, name);
        return 0;
    }
    char e[200];
    if (set_opt(ic->cfg, o, value, e, sizeof e) != 0) {
        snprintf(ic->err, sizeof ic->err, "%s: %s", ic->path, e);
        return 0;
    }
    return 1;
}

static int load_file(kvd_config *cfg, const char *path)
{
    ini_ctx ic = {cfg, path, {0}};
    int rc = ini_parse(path, kvd_ini_handler, &ic);
    if (ic.err[0]) {
        fprintf(stderr, "kvd: error: %s\n", ic.err);
        return -1;
    }
    if (rc == -1) {
        fprintf(stderr, "kvd: error: cannot open config file %s: %s\n", path, strerror(errno));
        return -1;
    }
    if (rc != 0) {
        fprintf(stderr, "kvd: error: %s:%d: syntax error\n", path, rc);
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
    printf("\nSizes take an optional k, m or g suffix (binary units).\n"
           "Signals: SIGINT/SIGTERM stop gracefully (answer what was received, exit 0);\n"
           "SIGHUP reopens --log-file (for logrotate) and never stops kvd.\n");
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

static int validate(kvd_config *cfg)
{
    const char *msg = NULL;
    if (cfg->max_frame_size < 16 || cfg->max_frame_size >= KVD_MAX_FRAME_SIZE)
        msg = "max-frame-size must be below 672m (704643072 bytes): a larger frame's length prefix "
              "could begin with '*' or a letter, which is how kvd tells the Redis protocol "
              "and HTTP from its own frames";
    else if (cfg->max_key_size < 1 || cfg->max_key_size > KV_LIMIT_MAX_KEY_SIZE)
        msg = "max-key-size must be 1..65536";
    else if (cfg->max_value_size > KV_LIMIT_MAX_VALUE_SIZE)
        msg = "max-value-size must be at most 1g";
    else if (cfg->max_output_buffer < 4096)
        msg = "max-output-buffer must be at least 4096";
    else if (cfg->max_client_memory && cfg->max_client_memory < cfg->max_frame_size)
        msg = "max-client-memory must be 0 or at least max-frame-size (one request must fit)";
    if (msg) {
        fprintf(stderr, "kvd: error: %s\n", msg);
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
    for (size_t i = 0; i < cfg->nbinds; i++) {
        if (!kvd_config_parse_addr(cfg->binds[i], 0, NULL)) {
            fprintf(stderr, "kvd: error: invalid bind address '%s' (a numeric IPv4 or IPv6 address, or localhost)\n",
                    cfg->binds[i]);
            return -1;
        }
    }
    if (cfg->unix_path && strlen(cfg->unix_path) >= sizeof(((struct sockaddr_un *)0)->sun_path)) {
        fprintf(stderr, "kvd: error: unix socket path too long: %s\n", cfg->unix_path);
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
    int cluster_opts = (cfg->node_id != 0) + (cfg->raft_addr != NULL) + (cfg->cluster != NULL);
    if (cluster_opts != 0 && cluster_opts != 3) {
        fprintf(stderr, "kvd: error: a cluster node needs all of --node-id, --raft-addr and "
                        "--cluster\n");
        return -1;
    }
    if (cfg->cluster && !cfg->data_dir) {
        fprintf(stderr, "kvd: error: a cluster node needs --data-dir (its Raft log lives there)\n");
        return -1;
    }
    if (cfg->password && !cfg->password[0]) {
        /* Silently serving without auth would be the worst reading of it. */
        fprintf(stderr, "kvd: error: empty password (from --password, the config file or "
                        "KVD_PASSWORD); omit it to run without authentication\n");
        return -1;
    }
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
            printf("kvd %s (libkv %s, protocol %d)\n", KV_VERSION_STRING, kv_version(),
                   KV_PROTO_MAX_VERSION);
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

    if (config_path && load_file(cfg, config_path) != 0)
        return KVD_CONFIG_ERROR;
    const char *env = getenv("KVD_PASSWORD");
    char err[256];
    if (env && set_opt(cfg, find_opt("password"), env, err, sizeof err) != 0) {
        fprintf(stderr, "kvd: error: %s\n", err);
        return KVD_CONFIG_ERROR;
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
            fprintf(stderr, "kvd: error: %s\n", err);
            return KVD_CONFIG_ERROR;
        }
    }
    if (cfg->nbinds == 0 && !cfg->tcp_off && add_binds(cfg, "127.0.0.1", err, sizeof err) != 0) {
        fprintf(stderr, "kvd: error: %s\n", err);
        return KVD_CONFIG_ERROR;
    }
    if (cfg->password_file && read_password_file(cfg) != 0)
        return KVD_CONFIG_ERROR;
    return validate(cfg) == 0 ? KVD_CONFIG_RUN : KVD_CONFIG_ERROR;
}
