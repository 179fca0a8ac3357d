/*
 * harness.h - end-to-end harness for kvcli's tests: starts a real kvd on
 * an ephemeral 127.0.0.1 port, runs the kvcli binary with given arguments,
 * standard input and environment, and captures its exit code, stdout and
 * stderr. Every wait is bounded; kvd is killed at the end of each test
 * (and by the kernel if the test process dies: PR_SET_PDEATHSIG).
 *
 * KVCLI_BIN and KVD_BIN come from CMake ($<TARGET_FILE:...>).
 */
#ifndef KVCLI_TEST_HARNESS_H
#define KVCLI_TEST_HARNESS_H

#include <stddef.h>
#include <sys/types.h>

#include <jansson.h>

typedef struct cli_server {
    pid_t pid;
    int port;
    char dir[64];        /* private temporary directory */
    char unix_path[128]; /* kvd's Unix socket inside dir */
} cli_server;

typedef struct cli_result {
    int rc; /* exit code; 128+signal if killed */
    char *out;
    size_t outlen;
    char *err;
    size_t errlen;
} cli_result;

/* Starts kvd (password may be NULL); cr_assert-fails if it does not come
 * up within a few seconds. */
void cli_server_start(cli_server *s, const char *password);
void cli_server_stop(cli_server *s);
/* Stops kvd and starts a new one (in memory, no password) on the same
 * TCP port, as after a restart: clients find their connection closed. */
void cli_server_restart(cli_server *s);
/* As cli_server_start, with --data-dir DIR/data (s->dir's "data"). */
void cli_server_start_durable(cli_server *s, const char *password);
/* As cli_server_start (no password), with more kvd arguments (extra:
 * NULL-terminated). */
void cli_server_start_with(cli_server *s, const char *const *extra);
/* As cli_server_start, with --data-dir data_dir (kept after the stop). */
void cli_server_start_dir(cli_server *s, const char *data_dir);

/* Runs kvcli args... (NULL-terminated). in/inlen: standard input (NULL:
 * /dev/null). env: extra "NAME=value" entries (NULL-terminated) or NULL;
 * every KV_* variable of the test's own environment is removed first and
 * HOME points at a scratch directory. */
cli_result cli_run(const void *in, size_t inlen, const char *const *env,
                   const char *const *args);
/* As cli_run with "--port PORT" of the server prepended. */
cli_result cli_run_srv(const cli_server *s, const void *in, size_t inlen,
                       const char *const *args);
void cli_result_free(cli_result *r);

/* The scratch HOME kvcli runs with (created on first use). */
const char *cli_home(void);

/* Parses r->out as one JSON document (cr_assert on failure). */
json_t *cli_json(const cli_result *r);

/* Asserts that stderr is exactly one line starting with "kvcli: ". */
void cli_assert_one_error_line(const cli_result *r);

/* A 127.0.0.1 port with nothing listening (bound, then closed). */
int cli_closed_port(void);

/* Writes n bytes to path (cr_assert on failure). */
void cli_write_file(const char *path, const void *p, size_t n);

#define CLI(srv, ...) \
    cli_run_srv((srv), NULL, 0, (const char *const[]){__VA_ARGS__, NULL})
#define CLI_IN(srv, in, ...)                                  \
    cli_run_srv((srv), (in), strlen(in),                      \
                (const char *const[]){__VA_ARGS__, NULL})

#endif /* KVCLI_TEST_HARNESS_H */
