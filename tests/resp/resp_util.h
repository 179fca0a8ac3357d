/*
 * resp_util.h - what the RESP tests share: running the real Redis tools
 * (redis-cli, redis-benchmark, a python3 with redis-py) as child
 * processes against the kvd that the integration harness started
 * (harness.h: kvd_start, g_kvd.port, kvd_stop), and raw RESP over a
 * socket for the hostile tests. Every wait is bounded.
 */
#ifndef KVD_RESP_UTIL_H
#define KVD_RESP_UTIL_H

#include <stddef.h>

/* 1 if an executable named name is on PATH (or name is a path to one). */
int tool_found(const char *name);

/* Runs "/bin/sh -c cmd" with stdin from in_path (NULL: /dev/null) and
 * stdout+stderr into *out (malloc'ed, NUL-terminated, caller frees; its
 * length in *outlen when not NULL). Killed after timeout_s seconds.
 * Returns the exit code, 128+signal if it died of one, -1 if killed. */
int run_sh(const char *cmd, const char *in_path, char **out, size_t *outlen, int timeout_s);

/* The whole file (malloc'ed, NUL-terminated; its length in *len when
 * not NULL), or NULL. */
char *slurp(const char *path, size_t *len);

/* Writes n bytes to path (asserts). */
void spit(const char *path, const void *p, size_t n);

/* Lines of text that do not start with '#', in place; returns text. */
char *drop_comment_lines(char *text);

/* Asserts that actual equals the expected file (its '#' lines dropped),
 * printing a diff when not; what names the comparison. */
void assert_matches_file(const char *what, const char *actual, size_t len,
                         const char *expected_path);

/* Reads from fd until the peer closes or timeout_ms pass without data;
 * NUL-terminates. Returns the bytes read; *closed says whether it ended
 * by a close (EOF or reset). */
size_t read_until_close(int fd, char *buf, size_t cap, int timeout_ms, int *closed);

/* Reads exactly one RESP reply (of any type, nested) from fd into buf,
 * NUL-terminated. Returns its length, or -1 on EOF, timeout or overflow. */
long resp_read_reply(int fd, char *buf, size_t cap);

/* Sends a RESP request and returns its reply in buf (asserts both). */
void resp_roundtrip(int fd, const char *request, char *buf, size_t cap);

#endif /* KVD_RESP_UTIL_H */
