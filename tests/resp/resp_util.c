/*
 * resp_util.c - child processes and raw RESP for the RESP tests (see
 * resp_util.h).
 */
#include "resp_util.h"

#include <criterion/criterion.h>
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "harness.h"

static long now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return ts.tv_sec * 1000L + ts.tv_nsec / 1000000L;
}

int tool_found(const char *name)
{
    if (strchr(name, '/'))
        return access(name, X_OK) == 0;
    const char *path = getenv("PATH");
    if (!path)
        path = "/usr/bin:/bin";
    char dir[4096];
    while (*path) {
        size_t n = strcspn(path, ":");
        snprintf(dir, sizeof dir, "%.*s/%s", (int)n, path, name);
        if (access(dir, X_OK) == 0)
            return 1;
        path += n + (path[n] == ':');
    }
    return 0;
}

char *slurp(const char *path, size_t *len)
{
    FILE *f = fopen(path, "rb");
    if (!f)
        return NULL;
    size_t cap = 4096, n = 0;
    char *b = malloc(cap);
    size_t r;
    while (b && (r = fread(b + n, 1, cap - n - 1, f)) > 0) {
        n += r;
        if (cap - n - 1 == 0) {
            char *nb = realloc(b, cap * 2);
            if (!nb) {
                free(b);
                b = NULL;
                break;
            }
            b = nb;
            cap *= 2;
        }
    }
    fclose(f);
    if (!b)
        return NULL;
    b[n] = '\0';
    if (len)
        *len = n;
    return b;
}

void spit(const char *path, const void *p, size_t n)
{
    FILE *f = fopen(path, "wb");
    cr_assert_not_null(f, "cannot write %s", path);
    cr_assert_eq(fwrite(p, 1, n, f), n);
    cr_assert_eq(fclose(f), 0);
}

int run_sh(const char *cmd, const char *in_path, char **out, size_t *outlen, int timeout_s)
{
    kvd_test_dir();
    char path[400];
    snprintf(path, sizeof path, "%s/tool.out", g_kvd.dir);
    /* No cr_assert in the child: it must not talk to the runner. */
    pid_t pid = fork();
    if (pid == 0) {
        int in = open(in_path ? in_path : "/dev/null", O_RDONLY);
        int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC, 0644);
        if (in < 0 || fd < 0)
            _exit(126);
        dup2(in, 0);
        dup2(fd, 1);
        dup2(fd, 2);
        setpgid(0, 0); /* its own group: a timeout kills the whole pipeline */
        execl("/bin/sh", "sh", "-c", cmd, (char *)NULL);
        _exit(127);
    }
    cr_assert(pid > 0, "fork failed");
    int st = 0, rc = -1;
    long deadline = now_ms() + timeout_s * 1000L;
    for (;;) {
        pid_t w = waitpid(pid, &st, WNOHANG);
        if (w == pid) {
            rc = WIFEXITED(st) ? WEXITSTATUS(st) : 128 + WTERMSIG(st);
            break;
        }
        if (now_ms() > deadline) {
            kill(-pid, SIGKILL);
            kill(pid, SIGKILL);
            waitpid(pid, &st, 0);
            rc = -1;
            break;
        }
        struct timespec ts = {0, 5 * 1000000L};
        nanosleep(&ts, NULL);
    }
    size_t n = 0;
    char *b = slurp(path, &n);
    cr_assert_not_null(b, "cannot read %s", path);
    unlink(path);
    if (outlen)
        *outlen = n;
    if (out)
        *out = b;
    else
        free(b);
    return rc;
}

char *drop_comment_lines(char *text)
{
    char *w = text;
    const char *r = text;
    while (*r) {
        const char *nl = strchr(r, '\n');
        size_t n = nl ? (size_t)(nl - r) + 1 : strlen(r);
        if (r[0] != '#') {
            memmove(w, r, n);
            w += n;
        }
        r += n;
    }
    *w = '\0';
    return text;
}

void assert_matches_file(const char *what, const char *actual, size_t len,
                         const char *expected_path)
{
    char *exp = slurp(expected_path, NULL);
    cr_assert_not_null(exp, "cannot read %s", expected_path);
    drop_comment_lines(exp);
    int same = strlen(exp) == len && memcmp(exp, actual, len) == 0;
    if (!same) {
        char apath[400], epath[400], cmd[1000];
        snprintf(apath, sizeof apath, "%s/actual", g_kvd.dir);
        snprintf(epath, sizeof epath, "%s/expected", g_kvd.dir);
        spit(apath, actual, len);
        spit(epath, exp, strlen(exp));
        snprintf(cmd, sizeof cmd, "diff -a -u %s %s", epath, apath);
        char *d = NULL;
        run_sh(cmd, NULL, &d, NULL, 20);
        fprintf(stderr, "%s: output differs from %s:\n%s\n", what, expected_path, d);
        free(d);
    }
    free(exp);
    cr_assert(same, "%s: output differs from %s (diff above)", what, expected_path);
}

size_t read_until_close(int fd, char *buf, size_t cap, int timeout_ms, int *closed)
{
    size_t n = 0;
    *closed = 0;
    long deadline = now_ms() + timeout_ms;
    while (now_ms() < deadline) {
        struct pollfd p = {fd, POLLIN, 0};
        if (poll(&p, 1, 50) <= 0)
            continue;
        char tmp[65536];
        ssize_t r = recv(fd, tmp, sizeof tmp, MSG_DONTWAIT);
        if (r < 0 && (errno == EAGAIN || errno == EINTR))
            continue;
        if (r <= 0) {
            *closed = 1;
            break;
        }
        size_t take = (size_t)r < cap - 1 - n ? (size_t)r : cap - 1 - n;
        memcpy(buf + n, tmp, take);
        n += take;
    }
    buf[n] = '\0';
    return n;
}

/* The length of the first complete reply at p[0..n), 0 if incomplete. */
static size_t reply_len(const char *p, size_t n)
{
    const char *nl = memchr(p, '\n', n);
    if (n < 3 || !nl)
        return 0;
    size_t line = (size_t)(nl - p) + 1;
    long v = strtol(p + 1, NULL, 10);
    switch (p[0]) {
    case '$': case '=': case '!':
        if (v < 0)
            return line;
        return n >= line + (size_t)v + 2 ? line + (size_t)v + 2 : 0;
    case '*': case '~': case '>': case '%': case '|': {
        if (v < 0)
            return line;
        long items = p[0] == '%' || p[0] == '|' ? 2 * v : v;
        size_t at = line;
        for (long i = 0; i < items; i++) {
            size_t e = reply_len(p + at, n - at);
            if (e == 0)
                return 0;
            at += e;
        }
        return at;
    }
    default: /* + - : _ # , ( */
        return line;
    }
}

long resp_read_reply(int fd, char *buf, size_t cap)
{
    long deadline = now_ms() + TEST_IO_TIMEOUT_MS;
    while (now_ms() < deadline) {
        struct pollfd p = {fd, POLLIN, 0};
        if (poll(&p, 1, 50) <= 0)
            continue;
        ssize_t r = recv(fd, buf, cap - 1, MSG_PEEK | MSG_DONTWAIT);
        if (r == 0)
            return -1;
        if (r < 0) {
            if (errno == EAGAIN || errno == EINTR)
                continue;
            return -1;
        }
        size_t len = reply_len(buf, (size_t)r);
        if (len == 0) {
            if ((size_t)r == cap - 1)
                return -1; /* larger than the buffer */
            continue;
        }
        ssize_t got = recv(fd, buf, len, MSG_WAITALL);
        if (got != (ssize_t)len)
            return -1;
        buf[len] = '\0';
        return (long)len;
    }
    return -1;
}

void resp_roundtrip(int fd, const char *request, char *buf, size_t cap)
{
    cr_assert_eq(raw_send(fd, request, strlen(request)), 0, "send %s", request);
    cr_assert_gt(resp_read_reply(fd, buf, cap), 0, "no reply to %s", request);
}
