/*
 * harness.h - runs a real kvd for the integration tests and talks to it.
 *
 * kvd_start() forks/execs the kvd binary built by this tree (KVD_PATH,
 * from CMake) on an ephemeral loopback port (--port 0 --port-file), with
 * its stderr in a temporary directory. kvd_stop() sends SIGTERM and
 * requires exit code 0 and no sanitizer report in that stderr, so leaks
 * and races inside kvd fail the test. harness_teardown() (the Criterion
 * .fini of every test) kills anything still running. All waits are
 * bounded.
 */
#ifndef KVD_TEST_HARNESS_H
#define KVD_TEST_HARNESS_H

#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#include "kv_client.h"
#include "kv_proto.h"

typedef struct kvd_proc {
    pid_t pid;
    int port;
    char dir[256];      /* temporary directory for this server    */
    char log[300];      /* its stderr                             */
    char portfile[300];
} kvd_proc;

/* The running server of the current test (one at a time). */
extern kvd_proc g_kvd;

/* Starts kvd with --port 0 --port-file --threads 2 plus the extra
 * arguments (NULL-terminated). Asserts it comes up within the timeout. */
void kvd_start(const char *arg, ...);
void kvd_startv(const char *const *args);

/* The next kvd_start() runs kvd with this address-space limit
 * (RLIMIT_AS, bytes; 0 = none), so a large allocation inside kvd fails.
 * Reset by harness_setup(). Meaningless under a sanitizer or valgrind,
 * which reserve huge address ranges: see kvd_under_a_tool(). */
void kvd_limit_address_space(size_t bytes);
/* 1 when kvd runs under valgrind (KVD_WRAPPER) or a sanitizer build. */
int kvd_under_a_tool(void);

/* SIGTERM, wait (bounded); returns the exit status (-1 on timeout/kill,
 * 128+sig when killed by a signal). */
int kvd_stop_status(void);
/* Waits (bounded) for a kvd already told to stop; status as above. A
 * second SIGTERM would kill it at once, by design. */
int kvd_wait_status(void);
/* kvd_wait_status() == 0 and a clean stderr, asserted. */
void kvd_wait_clean(void);
/* Sends sig (SIGTERM/SIGINT), then kvd_wait_clean(). */
void kvd_wait_clean_after(int sig);
/* kvd_stop_status() == 0 and a clean stderr, asserted. */
void kvd_stop(void);
/* Asserts the stderr log has no sanitizer report. */
void kvd_assert_clean_log(void);
/* g_kvd's log on stderr, each line marked "  kvd| ". */
void kvd_dump_log(void);
/* 1 if the process is still running. */
int kvd_alive(void);

/* Makes g_kvd.dir (the test's temporary directory) if it does not exist. */
void kvd_test_dir(void);

/* Runs another kvd with args (after the binary's name, NULL-terminated)
 * to completion, bounded at 20 s; its stdout and stderr go into out.
 * Returns its exit code, 128 if killed. */
int kvd_run_to_end(const char *const *args, char *out, size_t outlen);

/* 1 if the file at path contains needle on one line. */
int file_has(const char *path, const char *needle);
/* Waits (bounded, 20 s) until path contains needle. */
int wait_file_has(const char *path, const char *needle);

/* Criterion .init / .fini for every test. */
void harness_setup(void);
void harness_teardown(void);

/* A connected client (asserts success); password may be NULL. */
kv_client *test_client(const char *password);
/* The same over kvd's Unix socket at path. */
kv_client *test_unix_client(const char *path);

/* ---- raw sockets --------------------------------------------------------- */

/* TCP connection to 127.0.0.1:port with send/recv timeouts (ms). */
int raw_connect(int port, int timeout_ms);
int raw_connect6(int port, int timeout_ms);
/* Writes all; 0 or -1. */
int raw_send(int fd, const void *p, size_t n);
/* Reads one response frame body into *buf (malloc'ed, caller frees).
 * Returns its length, 0 on EOF before a header, -1 on error/timeout. */
long raw_recv_frame(int fd, uint8_t **buf);
/* Reads one frame and decodes it as a response to op; returns its
 * status, -1 if nothing arrived; *id receives the id. */
int raw_recv_status(int fd, int op, uint64_t *id);
/* 1 if the peer closed the connection (EOF or reset) within timeout. */
int raw_wait_closed(int fd, int timeout_ms);
/* Everything the server sends until it closes (bounded by the socket's
 * timeout), NUL-terminated into buf; returns its length. */
size_t raw_read_all(int fd, char *buf, size_t cap);
/* Sends text on a new connection to port, then "QUIT\r\n" (the Redis
 * protocol's), and reads what comes back until kvd closes. */
void raw_text_exchange(int port, const char *text, char *out, size_t cap);
/* The port of the listener whose "listening on" line in g_kvd's log
 * contains marker (e.g. "(Redis protocol only)"), or -1. */
int kvd_log_port(const char *marker);

/* ---- raw HTTP ------------------------------------------------------------- */

typedef struct http_resp {
    int code;        /* status, -1: nothing readable (EOF, timeout) */
    char head[8192]; /* status line and headers, NUL-terminated     */
    uint8_t *body;   /* malloc'ed, NUL-terminated; free with http_resp_free */
    size_t len;
} http_resp;

/* Reads one HTTP response from fd: the head, then Content-Length bytes
 * of body (none when no_body: the answer to a HEAD). Returns r->code. */
int http_recv(int fd, http_resp *r, int no_body);
void http_resp_free(http_resp *r);
/* Copies header name's value (case-insensitive) into out; 1 if found. */
int http_header(const http_resp *r, const char *name, char *out, size_t cap);

/* Encodes one request into b (asserts). */
void enc(kv_proto_buf *b, const kv_proto_request *r);

/* Current store metric by name (via a fresh client); asserts found. */
uint64_t metric_u(const char *parent, const char *name);

/* Resident memory of the kvd process in KiB (from /proc). */
long kvd_rss_kib(void);

#define TEST_IO_TIMEOUT_MS 20000

#endif /* KVD_TEST_HARNESS_H */
