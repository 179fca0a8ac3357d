/*
 * kvcli.h - kvcli's internal declarations, shared by its files.
 *
 * kvcli is the command-line client of kvd. It talks to the server only
 * through libkvclient (kv_client.h); nothing here knows the wire format.
 *
 * Layout: main.c (global flags, environment, dispatch), opts.c (option
 * parsing shared by every command), conn.c (connecting, error reporting,
 * exit codes), cmd_kv.c (set/get/del), cmd_ttl.c (ttl, expire, persist,
 * durations), cmd_history.c (history, rollback, compact), cmd_watch.c (watch), cmd_bulk.c (del --prefix,
 * flush), cmd_misc.c (scan, ping, version, metrics), cmd_export.c +
 * export_page.c + exportfmt.c + progress.c (export, import), cmd_txn.c + txn_parse.c
 * (txn), output.c (escaping, JSON), bytes.c (growable byte buffers,
 * reading files), help.c, repl.c.
 */
#ifndef KVCLI_H
#define KVCLI_H

#include <stdint.h>
#include <stdio.h>

#include <jansson.h>

#include "kv_client.h"

/* Exit codes: documented in --help and docs/kvcli.1; scripts rely on them. */
enum {
    KVCLI_EXIT_OK = 0,
    KVCLI_EXIT_NEGATIVE = 1,  /* key(s) not found, CAS mismatch, txn else */
    KVCLI_EXIT_USAGE = 2,
    KVCLI_EXIT_CONNECT = 3,   /* connection, timeout or authentication   */
    KVCLI_EXIT_SERVER = 4,    /* the server refused or failed the request */
    KVCLI_EXIT_REVISION = 5,  /* the revision asked for is compacted or
                                 not reached yet                         */
    KVCLI_EXIT_LOST = 6       /* watch: events lost (history compacted
                                 while it fell behind)                   */
};

#define KVCLI_DEFAULT_HOST "127.0.0.1"

/* Everything the global flags and environment decide. */
typedef struct kvcli_config {
    const char *host;
    unsigned port;
    const char *unix_path;
    const char *password;
    double timeout_s;   /* 0 = none (connect still bounded by 5 s) */
    uint64_t max_frame; /* --max-frame-size; 0 = libkvclient's default */
    int json;           /* --json */
    int help;           /* --help / -h */
    int stale;          /* --stale: serializable (possibly stale) reads */
    int retries;        /* --retries: writes with an unknown outcome sent
                           again with their request id (a cluster)    */
    const char *endpoints; /* --endpoints: other nodes to try when the
                              address does not answer (a cluster)     */
    int no_sync;        /* --no-sync: do not learn the cluster's members
                           (kv_client_set_auto_sync(c, 0))           */
} kvcli_config;

/* One session: the config plus a lazily opened connection. */
typedef struct kvcli_session {
    kvcli_config cfg;
    kv_client *client; /* NULL until the first command needs it */
    int interactive;   /* inside the prompt: errors do not end the program */
} kvcli_session;

/* ---- conn.c ---------------------------------------------------------- */

/* Returns a connected client (connecting or reconnecting if needed), or
 * NULL after printing the error; *rc then holds the exit code. */
kv_client *kvcli_connect(kvcli_session *s, int *rc);
/* As kvcli_connect but silent: on failure the reason goes into why. */
kv_client *kvcli_try_connect(kvcli_session *s, char *why, size_t n);
void kvcli_disconnect(kvcli_session *s);
/* Prints "kvcli: WHAT: <message> (<hint>)" for a failed call and returns
 * the matching exit code. */
int kvcli_fail(kvcli_session *s, int status, const char *what);
/* Exit code for a kv status (KV_OK -> 0). */
int kvcli_exit_code(int status);
/* Inside the prompt (on = 1), error hints name commands without "kvcli":
 * "try 'help'", not "try 'kvcli help'". */
void kvcli_err_in_prompt(int on);
/* One-line error on stderr: "kvcli: ..." */
void kvcli_err(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
/* --json's error object: the first error since kvcli_error_reset() is
 * kept; kvcli_error_json(rc) prints {"error":{"status":S,"message":M},
 * "exit":rc} on stdout unless rc is 0, nothing failed, or the command
 * already wrote its JSON document (kvcli_json_print calls
 * kvcli_error_json_done). S is the kv status name (CONNECT, AUTH_FAILED,
 * ...) or, for kvcli's own refusals, USAGE. */
void kvcli_error_reset(void);
void kvcli_error_json_done(void);
void kvcli_error_json(int rc);
/* As kvcli_err, and returns KVCLI_EXIT_USAGE. */
int kvcli_usage_err(const char *fmt, ...)
    __attribute__((format(printf, 1, 2)));

/* ---- opts.c ---------------------------------------------------------- */

enum { KVCLI_OPT_FLAG, KVCLI_OPT_ARG, KVCLI_OPT_MARKER };

typedef struct kvcli_optdef {
    const char *name; /* without the leading "--" */
    int kind;         /* KVCLI_OPT_*; a MARKER stays among the positionals */
} kvcli_optdef;

#define KVCLI_MAX_CMD_OPTS 8

typedef struct kvcli_args {
    int npos;
    char **pos;  /* positional arguments (and MARKER options), in order */
    const char *cmd_val[KVCLI_MAX_CMD_OPTS]; /* ARG values, or "" for flags */
} kvcli_args;

/* True if name is a global option; *takes_arg says whether it has a value. */
int kvcli_is_global_opt(const char *name, int *takes_arg);
/* Parses argv (after the command name) against the global options (into
 * cfg) and the command's table (cmd, ncmd; into out->cmd_val). out->pos
 * is malloc'ed: free with kvcli_args_free(). Returns 0 or an exit code
 * after printing the usage error. */
int kvcli_args_parse(int argc, char **argv, const kvcli_optdef *cmd,
                     int ncmd, kvcli_config *cfg, kvcli_args *out);
void kvcli_args_free(kvcli_args *a);
/* Parses an unsigned decimal; 0 on success. */
int kvcli_parse_u64(const char *s, uint64_t *out);
/* Applies KV_HOST, KV_PORT, ... ; returns 0 or an exit code. */
int kvcli_config_from_env(kvcli_config *cfg);

/* ---- commands -------------------------------------------------------- */

typedef int (*kvcli_cmd_fn)(kvcli_session *s, int argc, char **argv);

typedef struct kvcli_command {
    const char *name;
    kvcli_cmd_fn fn;
    const char *summary;
    const char *help; /* full text for "kvcli COMMAND --help" */
} kvcli_command;

int kvcli_cmd_set(kvcli_session *s, int argc, char **argv);
int kvcli_cmd_get(kvcli_session *s, int argc, char **argv);
int kvcli_cmd_del(kvcli_session *s, int argc, char **argv);
int kvcli_cmd_flush(kvcli_session *s, int argc, char **argv);
/* del --prefix P (cmd_bulk.c): deletes page by page, not atomically. */
int kvcli_del_prefix(kvcli_session *s, const char *prefix);
int kvcli_cmd_scan(kvcli_session *s, int argc, char **argv);
int kvcli_cmd_ping(kvcli_session *s, int argc, char **argv);
int kvcli_cmd_snapshot(kvcli_session *s, int argc, char **argv);
int kvcli_cmd_cluster(kvcli_session *s, int argc, char **argv);
int kvcli_cmd_backup(kvcli_session *s, int argc, char **argv);
int kvcli_cmd_version(kvcli_session *s, int argc, char **argv);
int kvcli_cmd_metrics(kvcli_session *s, int argc, char **argv);
int kvcli_cmd_txn(kvcli_session *s, int argc, char **argv);
int kvcli_cmd_export(kvcli_session *s, int argc, char **argv);
int kvcli_cmd_import(kvcli_session *s, int argc, char **argv);
int kvcli_cmd_help(kvcli_session *s, int argc, char **argv);
int kvcli_cmd_ttl(kvcli_session *s, int argc, char **argv);
int kvcli_cmd_expire(kvcli_session *s, int argc, char **argv);
int kvcli_cmd_persist(kvcli_session *s, int argc, char **argv);
int kvcli_cmd_history(kvcli_session *s, int argc, char **argv);
int kvcli_cmd_rollback(kvcli_session *s, int argc, char **argv);
int kvcli_cmd_compact(kvcli_session *s, int argc, char **argv);
int kvcli_cmd_watch(kvcli_session *s, int argc, char **argv);
/* A duration (cmd_ttl.c): a whole number with a unit ms, s, m or h, a
 * bare number being seconds; 1 ms .. 2^52 ms. 0 and *ms, or -1. */
int kvcli_parse_duration(const char *s, uint64_t *ms);
/* The usage error for a bad duration given as `what`; returns
 * KVCLI_EXIT_USAGE. */
int kvcli_duration_err(const char *what, const char *value);

/* The command table (help.c), NULL-terminated by name. */
extern const kvcli_command kvcli_commands[];
/* Finds a command by name, in any case; NULL if there is none. */
const kvcli_command *kvcli_find_command(const char *name);
/* Prints "unknown command 'NAME'" with the closest command as a
 * suggestion if one is near; returns KVCLI_EXIT_USAGE. */
int kvcli_unknown_command(const char *name);
/* Runs one command line (argv[0] is the command). */
int kvcli_dispatch(kvcli_session *s, int argc, char **argv);
void kvcli_print_usage(FILE *f);
/* The short help of the interactive prompt: commands, quit, keys. */
void kvcli_print_prompt_help(FILE *f);
/* Prints the command's help if the args asked for it; returns 1 if so. */
int kvcli_maybe_help(const kvcli_session *s, const char *cmd);

/* ---- bytes.c --------------------------------------------------------- */

typedef struct kvcli_buf {
    unsigned char *data;
    size_t len;
    size_t cap;
} kvcli_buf;

int kvcli_buf_append(kvcli_buf *b, const void *p, size_t n);
void kvcli_buf_free(kvcli_buf *b);
/* Reads a whole file ("-" = stdin) into b. 0 or -1 (errno set). */
int kvcli_read_file(const char *path, kvcli_buf *b);

/* ---- output.c -------------------------------------------------------- */

/* Writes bytes escaped for a terminal: valid printable UTF-8 as is,
 * \\ \n \t \r, other bytes \xNN. */
void kvcli_put_escaped(FILE *f, const void *p, size_t n);
/* The escaped form as a malloc'ed string (for messages), or NULL. */
char *kvcli_escape(const void *p, size_t n);
/* JSON for bytes: a string if valid UTF-8 without NUL, else {"base64": "..."}. */
json_t *kvcli_json_bytes(const void *p, size_t n);
/* Inverse of kvcli_json_bytes; malloc'ed into *out (caller frees).
 * 0 on success, -1 if j is neither form. */
int kvcli_json_to_bytes(const json_t *j, unsigned char **out, size_t *n);
/* Prints j (compact, one line) to stdout and releases it. */
void kvcli_json_print(json_t *j);
int kvcli_utf8_valid(const unsigned char *p, size_t n);
/* RFC 4648 standard base64 with padding: a malloc'ed NUL-terminated
 * string (NULL if out of memory), its length in *outlen. */
char *kvcli_base64_encode(const void *p, size_t n, size_t *outlen);
/* Strict decoding (padded, no whitespace) into a malloc'ed *out (caller
 * frees; non-NULL also for 0 bytes). 0, or -1 if malformed. */
int kvcli_base64_decode(const char *s, size_t n, unsigned char **out,
                        size_t *outlen);

/* ---- exportfmt.c ----------------------------------------------------- */

/* The formats of export and import (described in exportfmt.c). */
enum { KVCLI_FMT_JSON = 0, KVCLI_FMT_BIN = 1 };

/* "json" or "bin" to KVCLI_FMT_*, -1 for anything else. */
int kvcli_format_parse(const char *name);
/* Writing: the header, each entry, the end; *written grows by the bytes
 * written. 0, or -1 (errno set) when f fails. */
int kvcli_export_begin(FILE *f, int fmt, uint64_t *written);
int kvcli_export_entry(FILE *f, int fmt, const void *key, size_t klen,
                       const void *val, size_t vlen, uint64_t version,
                       uint64_t expire_at_ms, uint64_t *written);
int kvcli_export_end(FILE *f, int fmt, uint64_t count, uint64_t *written);

/* Reading, one entry at a time. */
typedef struct kvcli_import_reader {
    FILE *f;
    int fmt;          /* found by kvcli_import_open */
    unsigned bin_version; /* binary: the file's format version */
    uint64_t pos;     /* bytes of the input consumed */
    uint64_t unit;    /* line (JSON) or record (binary) of the last entry */
    uint64_t count;   /* entries read */
    int done;         /* binary: the end record was read */
    char *text;       /* JSON: the current line */
    size_t cap;
    kvcli_buf key, val; /* the entry just read, valid until the next */
    uint64_t version;
    uint64_t expire_at_ms; /* its expiry time (Unix ms), 0: none */
} kvcli_import_reader;

/* Starts reading f (not closed by the reader) and finds its format. 0, or
 * -1 with a message in err. */
int kvcli_import_open(kvcli_import_reader *r, FILE *f, char *err, size_t n);
/* 1: the next entry is in r->key, r->val, r->version, r->expire_at_ms; 0: the input is
 * complete; -1: bad input or a read error, err says where and what. */
int kvcli_import_next(kvcli_import_reader *r, char *err, size_t n);
/* Frees the reader's buffers (a zeroed reader too). */
void kvcli_import_close(kvcli_import_reader *r);

/* ---- export_page.c --------------------------------------------------- */

/* One SCAN page of export, with each key's expiry time (export_page.c). */
enum { KVCLI_PAGE_PENDING = 0, KVCLI_PAGE_READY = 1, KVCLI_PAGE_GONE = 2 };
typedef struct kvcli_page_entry {
    size_t koff, klen, voff, vlen; /* into the page's bytes */
    uint64_t version;
    uint64_t expire_at_ms; /* 0: none */
    int state;             /* KVCLI_PAGE_*: write it when READY */
} kvcli_page_entry;

typedef struct kvcli_page {
    kvcli_buf bytes;
    kvcli_page_entry *e;
    size_t n, cap;
    uint64_t gone;      /* entries left out: found absent after the SCAN */
    uint64_t unsettled; /* keys that changed during every re-read */
    int no_txn;         /* the server refused the checking TXN: re-read */
} kvcli_page;

/* Copies an entry of a SCAN into the page (state PENDING, no expiry).
 * 0, or -1 when out of memory. */
int kvcli_page_add(kvcli_page *pg, const void *key, size_t klen, const void *val,
                   size_t vlen, uint64_t version);
/* Reads every entry's expiry time (protocol version 4; pipelined) and
 * decides which entries to write (READY) and which are gone. A kv status
 * (the client's last error says more). */
int kvcli_page_expiry(kvcli_page *pg, kv_client *c);
/* Empties the page for the next SCAN (keeps gone, unsettled, no_txn). */
void kvcli_page_clear(kvcli_page *pg);
void kvcli_page_free(kvcli_page *pg);

/* ---- progress.c ------------------------------------------------------ */

/* A progress line on stderr, drawn only when stderr is a terminal. */
typedef struct kvcli_progress {
    const char *what;       /* "import", "export" */
    int on;                 /* stderr is a terminal */
    double start, last;     /* kvcli_now() at the start, last drawing */
    uint64_t entries, bytes;
    uint64_t total_entries; /* 0: unknown */
    uint64_t total_bytes;   /* 0: unknown */
    size_t shown;           /* length of the line on the terminal */
} kvcli_progress;

/* Monotonic seconds. */
double kvcli_now(void);
void kvcli_progress_start(kvcli_progress *p, const char *what);
/* Records what was done; redraws at most 4 times a second. */
void kvcli_progress_update(kvcli_progress *p, uint64_t entries,
                           uint64_t bytes);
/* Erases the line (before a summary or an error). */
void kvcli_progress_end(kvcli_progress *p);
/* Seconds since kvcli_progress_start. */
double kvcli_progress_seconds(const kvcli_progress *p);

/* ---- repl.c ---------------------------------------------------------- */

/* The prompt (terminal) or line-by-line commands (other stdin). Returns
 * the exit code of the last command. */
int kvcli_repl(kvcli_session *s);
/* Splits a command line into words (shell-like quotes). *argv is
 * malloc'ed, free with kvcli_split_free. -1 on an unterminated quote. */
int kvcli_split(const char *line, int *argc, char ***argv);
void kvcli_split_free(int argc, char **argv);

#endif /* KVCLI_H */
