/*
 * config.h - kvd's settings: defaults, the config file (INI, parsed with
 * inih) and command-line flags. Both use the same key names; flags
 * override the file, and KVD_PASSWORD overrides the file's password.
 */
#ifndef KVD_CONFIG_H
#define KVD_CONFIG_H

#include <stddef.h>
#include <stdint.h>
#include <sys/socket.h>

#define KVD_MAX_BINDS 16
/* Frame limits stay below this (672 MiB = '*' << 24): a valid frame's
 * length prefix then never starts with '*' or a letter, so a connection's
 * first byte tells kvd's frames from RESP and HTTP (frontend.h). */
#define KVD_MAX_FRAME_SIZE ((size_t)0x2A000000)

typedef struct kvd_config {
    char *binds[KVD_MAX_BINDS]; /* addresses to listen on (malloc'ed)     */
    size_t nbinds;
    int tcp_off;                /* --bind none: the Unix socket only      */
    int port;                   /* 0 = ephemeral                          */
    int resp_port;              /* -1 = none: a Redis-protocol-only port  */
    int http_port;              /* -1 = none: an HTTP-only port           */
    char *unix_path;            /* NULL: no Unix socket                   */
    int unix_perm;              /* its mode (0..0777); -1: as the umask   */
    char *port_file;            /* write the bound TCP port here          */
    int threads;                /* worker loops; 0 = one per CPU          */
    char *password;             /* NULL: no auth                          */
    char *password_file;        /* the secret's first line is read here   */
    int protected_mode;         /* refuse non-loopback binds without one  */
    size_t max_connections;     /* 0 = unlimited                          */
    size_t max_frame_size;      /* largest request body                   */
    size_t max_output_buffer;   /* per-connection pending output (hard)   */
    size_t max_client_memory;   /* all connections' buffers; 0 = no limit */
    int busy_poll;              /* microseconds a loop polls on after work
                                   before it sleeps; 0 = off              */
    unsigned idle_timeout;      /* seconds, 0 = none                      */
    unsigned write_timeout;     /* seconds without write progress while
                                   output is backed up; 0 = none         */
    unsigned frame_timeout;     /* seconds a started request frame may take
                                   to arrive in full; 0 = none           */
    size_t max_key_size;        /* store options (kv_options)             */
    size_t max_value_size;
    uint64_t max_keys;
    uint64_t max_memory;        /* store's memory limit, 0 = none          */
    int eviction_policy;        /* kv_eviction_policy                     */
    int history;                /* keep earlier values (kv_config.history) */
    uint64_t history_versions;  /* earlier values per key, 0 = no bound    */
    uint64_t history_bytes;     /* history's memory in all, 0 = no bound   */
    unsigned history_age;       /* seconds; 0 = no bound                  */
    size_t initial_capacity;
    int huge_pages;             /* kv_huge_pages                          */
    char *data_dir;             /* NULL: in memory only                   */
    int node_id;                /* cluster: this node's id (1..1024)      */
    char *raft_addr;            /* cluster: HOST:PORT for Raft traffic     */
    char *raft_bind;            /* cluster: HOST:PORT listened on, if not
                                   raft_addr (NULL: raft_addr)           */
    char *cluster;              /* cluster: ID@HOST:PORT,... or NULL       */
    size_t raft_snapshot_entries; /* cluster: log entries per snapshot    */
    size_t raft_segment_size;     /* cluster: bytes per Raft log segment  */
    int cluster_join;           /* cluster: start empty, wait to be added */
    size_t raft_election_timeout; /* cluster: ms without a leader before an
                                     election (randomized up to twice)  */
    int fsync;                  /* kv_fsync                               */
    size_t snapshot_log_size;   /* snapshot when the log grew this much   */
    unsigned snapshot_interval; /* seconds; 0 = never by time             */
    int log_level;              /* kvd_log_level                          */
    char *log_file;
    int syslog;                 /* log lines also to syslog (the journal)  */
    int daemonize;
    char *pidfile;
    char *config_path;
} kvd_config;

/* What kvd_config_load() asks the caller to do. */
typedef enum kvd_config_result {
    KVD_CONFIG_RUN = 0,     /* start the server                      */
    KVD_CONFIG_EXIT_OK = 1, /* --help or --version was printed       */
    KVD_CONFIG_ERROR = 2    /* an error line was printed; exit 2     */
} kvd_config_result;

/* Fills *cfg from defaults, the --config file, KVD_PASSWORD and argv.
 * Prints --help / --version to stdout, errors (one line) to stderr. */
kvd_config_result kvd_config_load(kvd_config *cfg, int argc, char **argv);

/* 1 if the bind address (valid for kvd_config_parse_addr) is a loopback
 * one: 127.0.0.0/8, ::1 or ::ffff:127.x.y.z. */
int kvd_config_addr_is_loopback(const char *text);

/* Parses a bind address ("1.2.3.4", "::1" or "[::1]") with port into
 * *out (may be NULL). Returns 1 if valid, else 0. */
int kvd_config_parse_addr(const char *text, int port, struct sockaddr_storage *out);

/* Frees the strings of *cfg. */
void kvd_config_free(kvd_config *cfg);

#endif /* KVD_CONFIG_H */
