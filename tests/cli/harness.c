/*
 * harness.c - starts kvd and runs kvcli for the CLI tests (harness.h).
 *
 * kvcli runs with pipes on stdin/stdout/stderr, serviced with poll() so a
 * large input or output cannot deadlock; a run that takes longer than
 * RUN_TIMEOUT_MS is killed and fails the test.
 */
#include "harness.h"

#include <criterion/criterion.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#define START_TIMEOUT_MS 15000
#define RUN_TIMEOUT_MS 20000

/* HOME for kvcli (its history file), one per test process. */
static char scratch_home[64];

static long long now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (long long)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static void sleep_ms(int ms)
{
    struct timespec ts = {ms / 1000, (long)(ms % 1000) * 1000000L};
    nanosleep(&ts, NULL);
}

void cli_write_file(const char *path, const void *p, size_t n)
{
    FILE *f = fopen(path, "wb");
    cr_assert_not_null(f, "cannot create %s", path);
    cr_assert_eq(fwrite(p, 1, n, f), n);
    cr_assert_eq(fclose(f), 0);
}

static int start_durable;
static const char *start_dir;
static int start_port; /* 0: an ephemeral port */
static const char *const *start_extra; /* more kvd arguments, or NULL */

void cli_server_restart(cli_server *s)
{
    int port = s->port;
    /* kvcli may still run with the scratch HOME: keep it. */
    char home[sizeof scratch_home];
    memcpy(home, scratch_home, sizeof home);
    scratch_home[0] = '\0';
    cli_server_stop(s);
    memcpy(scratch_home, home, sizeof home);
    start_port = port;
    cli_server_start(s, NULL);
    start_port = 0;
}

void cli_server_start_durable(cli_server *s, const char *password)
{
    start_durable = 1;
    cli_server_start(s, password);
    start_durable = 0;
}

void cli_server_start_dir(cli_server *s, const char *data_dir)
{
    start_durable = 1;
    start_dir = data_dir;
    cli_server_start(s, NULL);
    start_durable = 0;
    start_dir = NULL;
}

void cli_server_start_with(cli_server *s, const char *const *extra)
{
    start_extra = extra;
    cli_server_start(s, NULL);
    start_extra = NULL;
}

void cli_server_start(cli_server *s, const char *password)
{
    memset(s, 0, sizeof *s);
    snprintf(s->dir, sizeof s->dir, "/tmp/kvcli-test-XXXXXX");
    cr_assert_not_null(mkdtemp(s->dir));
    snprintf(s->unix_path, sizeof s->unix_path, "%s/kvd.sock", s->dir);
    char port_file[128], log_file[128];
    snprintf(port_file, sizeof port_file, "%s/port", s->dir);
    snprintf(log_file, sizeof log_file, "%s/kvd.log", s->dir);

    pid_t parent = getpid();
    pid_t pid = fork();
    /* No passing assertion around fork: with --full-stats the child
     * would report it too and confuse the runner. */
    if (pid == -1)
        cr_assert_fail("fork: %s", strerror(errno));
    if (pid == 0) {
        /* Never outlive the test, even if it crashes. */
        prctl(PR_SET_PDEATHSIG, SIGKILL);
        if (getppid() != parent)
            _exit(127);
        int fd = open(log_file, O_WRONLY | O_CREAT | O_TRUNC, 0600);
        int nul = open("/dev/null", O_RDONLY);
        if (fd >= 0) {
            dup2(fd, STDOUT_FILENO);
            dup2(fd, STDERR_FILENO);
        }
        if (nul >= 0)
            dup2(nul, STDIN_FILENO);
        const char *argv[32];
        int n = 0;
        argv[n++] = KVD_BIN;
        argv[n++] = "--bind";
        argv[n++] = "127.0.0.1";
        char port_arg[16];
        snprintf(port_arg, sizeof port_arg, "%d", start_port);
        argv[n++] = "--port";
        argv[n++] = port_arg;
        argv[n++] = "--port-file";
        argv[n++] = port_file;
        argv[n++] = "--unix";
        argv[n++] = s->unix_path;
        argv[n++] = "--threads";
        argv[n++] = "1";
        if (password) {
            argv[n++] = "--password";
            argv[n++] = password;
        }
        char data_dir[256];
        if (start_durable) {
            snprintf(data_dir, sizeof data_dir, "%s", start_dir ? start_dir : "");
            if (!start_dir)
                snprintf(data_dir, sizeof data_dir, "%s/data", s->dir);
            argv[n++] = "--data-dir";
            argv[n++] = data_dir;
        }
        for (int i = 0; start_extra && start_extra[i] && n < 30; i++)
            argv[n++] = start_extra[i];
        argv[n] = NULL;
        execv(KVD_BIN, (char *const *)argv);
        _exit(127);
    }
    s->pid = pid;
    long long deadline = now_ms() + START_TIMEOUT_MS;
    while (now_ms() < deadline) {
        int st;
        if (waitpid(pid, &st, WNOHANG) == pid) {
            s->pid = 0;
            cr_assert_fail("kvd exited during start-up (see %s)", log_file);
        }
        FILE *f = fopen(port_file, "r");
        if (f) {
            int port = 0;
            char nl = 0;
            int got = fscanf(f, "%d%c", &port, &nl);
            fclose(f);
            /* The newline proves the file was completely written. */
            if (got == 2 && port > 0 && nl == '\n') {
                s->port = port;
                struct stat sb;
                /* The Unix socket is bound by the time the port is out,
                 * but be tolerant of the order. */
                for (int i = 0; i < 100 && stat(s->unix_path, &sb) != 0; i++)
                    sleep_ms(10);
                return;
            }
        }
        sleep_ms(10);
    }
    cli_server_stop(s);
    cr_assert_fail("kvd did not write its port file in time");
}

void cli_server_stop(cli_server *s)
{
    if (s->pid > 0) {
        kill(s->pid, SIGTERM);
        long long deadline = now_ms() + 5000;
        int st;
        while (waitpid(s->pid, &st, WNOHANG) == 0) {
            if (now_ms() > deadline) {
                kill(s->pid, SIGKILL);
                waitpid(s->pid, &st, 0);
                break;
            }
            sleep_ms(5);
        }
        s->pid = 0;
    }
    if (s->dir[0]) {
        char cmd[200];
        /* Our own mkdtemp directory, never anything else. */
        snprintf(cmd, sizeof cmd, "rm -rf '%s'", s->dir);
        if (strncmp(s->dir, "/tmp/kvcli-test-", 16) == 0 && system(cmd) != 0)
            fprintf(stderr, "cannot remove %s\n", s->dir);
        s->dir[0] = '\0';
    }
    if (scratch_home[0]) {
        char cmd[200];
        snprintf(cmd, sizeof cmd, "rm -rf '%s'", scratch_home);
        if (system(cmd) != 0)
            fprintf(stderr, "cannot remove %s\n", scratch_home);
        scratch_home[0] = '\0';
    }
}

static void append(char **buf, size_t *len, size_t *cap, const char *p,
                   size_t n)
{
    if (*len + n + 1 > *cap) {
        size_t c = *cap ? *cap : 4096;
        while (c < *len + n + 1)
            c *= 2;
        *buf = realloc(*buf, c);
        cr_assert_not_null(*buf);
        *cap = c;
    }
    memcpy(*buf + *len, p, n);
    *len += n;
    (*buf)[*len] = '\0';
}

const char *cli_home(void)
{
    if (!scratch_home[0]) {
        snprintf(scratch_home, sizeof scratch_home, "/tmp/kvcli-home-XXXXXX");
        cr_assert_not_null(mkdtemp(scratch_home));
    }
    return scratch_home;
}

cli_result cli_run(const void *in, size_t inlen, const char *const *env,
                   const char *const *args)
{
    int pin[2], pout[2], perr[2];
    cr_assert_eq(pipe(pin), 0);
    cr_assert_eq(pipe(pout), 0);
    cr_assert_eq(pipe(perr), 0);
    const char *home = cli_home();
    pid_t pid = fork();
    /* No passing assertion around fork: with --full-stats the child
     * would report it too and confuse the runner. */
    if (pid == -1)
        cr_assert_fail("fork: %s", strerror(errno));
    if (pid == 0) {
        prctl(PR_SET_PDEATHSIG, SIGKILL);
        if (in) {
            dup2(pin[0], STDIN_FILENO);
        } else {
            int nul = open("/dev/null", O_RDONLY);
            dup2(nul, STDIN_FILENO);
        }
        dup2(pout[1], STDOUT_FILENO);
        dup2(perr[1], STDERR_FILENO);
        for (int fd = 3; fd < 1024; fd++)
            close(fd);
        /* A deterministic environment: no KV_* from the caller. */
        static const char *const kv_vars[] = {"KV_HOST", "KV_PORT", "KV_UNIX",
                                              "KV_PASSWORD", "KV_TIMEOUT"};
        for (size_t i = 0; i < sizeof kv_vars / sizeof kv_vars[0]; i++)
            unsetenv(kv_vars[i]);
        setenv("HOME", home, 1);
        for (size_t i = 0; env && env[i]; i++)
            putenv((char *)env[i]);
        size_t n = 0;
        while (args[n])
            n++;
        /* KVCLI_WRAPPER="valgrind -q ...": run kvcli under that command
         * (the valgrind_* tests); its words come first, split at spaces. */
        const char **argv = calloc(n + 34, sizeof *argv);
        size_t k = 0;
        char *wrap = getenv("KVCLI_WRAPPER") ? strdup(getenv("KVCLI_WRAPPER")) : NULL;
        for (char *save = NULL, *w = wrap ? strtok_r(wrap, " ", &save) : NULL; w && k < 32;
             w = strtok_r(NULL, " ", &save))
            argv[k++] = w;
        const char *path = k ? argv[0] : KVCLI_BIN;
        argv[k] = k ? KVCLI_BIN : "kvcli";
        k++;
        memcpy(argv + k, args, n * sizeof *argv);
        execvp(path, (char *const *)argv);
        _exit(127);
    }
    close(pin[0]);
    close(pout[1]);
    close(perr[1]);
    if (!in) {
        close(pin[1]);
        pin[1] = -1;
    } else {
        fcntl(pin[1], F_SETFL, O_NONBLOCK);
    }
    /* The child may exit before reading everything: no SIGPIPE for us. */
    signal(SIGPIPE, SIG_IGN);

    cli_result r = {0};
    size_t ocap = 0, ecap = 0, sent = 0;
    int open_out = 1, open_err = 1;
    long long deadline = now_ms() + RUN_TIMEOUT_MS;
    while (open_out || open_err) {
        struct pollfd fds[3] = {
            {open_out ? pout[0] : -1, POLLIN, 0},
            {open_err ? perr[0] : -1, POLLIN, 0},
            {pin[1], POLLOUT, 0},
        };
        long long left = deadline - now_ms();
        if (left <= 0) {
            kill(pid, SIGKILL);
            waitpid(pid, NULL, 0);
            cr_assert_fail("kvcli %s did not finish within %d ms", args[0],
                           RUN_TIMEOUT_MS);
        }
        int n = poll(fds, 3, (int)left);
        if (n < 0 && errno == EINTR)
            continue;
        char buf[65536];
        if (fds[0].revents) {
            ssize_t k = read(pout[0], buf, sizeof buf);
            if (k > 0)
                append(&r.out, &r.outlen, &ocap, buf, (size_t)k);
            else
                open_out = 0;
        }
        if (fds[1].revents) {
            ssize_t k = read(perr[0], buf, sizeof buf);
            if (k > 0)
                append(&r.err, &r.errlen, &ecap, buf, (size_t)k);
            else
                open_err = 0;
        }
        if (pin[1] >= 0 && fds[2].revents) {
            ssize_t k = sent < inlen
                            ? write(pin[1], (const char *)in + sent,
                                    inlen - sent)
                            : 0;
            if (k > 0)
                sent += (size_t)k;
            if (k < 0 || sent >= inlen) {
                close(pin[1]);
                pin[1] = -1;
            }
        }
    }
    if (pin[1] >= 0)
        close(pin[1]);
    close(pout[0]);
    close(perr[0]);
    int st;
    waitpid(pid, &st, 0);
    r.rc = WIFEXITED(st) ? WEXITSTATUS(st) : 128 + WTERMSIG(st);
    if (r.out == NULL)
        append(&r.out, &r.outlen, &ocap, "", 0);
    if (r.err == NULL)
        append(&r.err, &r.errlen, &ecap, "", 0);
    return r;
}

cli_result cli_run_srv(const cli_server *s, const void *in, size_t inlen,
                       const char *const *args)
{
    char port[16];
    snprintf(port, sizeof port, "%d", s->port);
    size_t n = 0;
    while (args[n])
        n++;
    const char **all = calloc(n + 3, sizeof *all);
    cr_assert_not_null(all);
    all[0] = "--port";
    all[1] = port;
    memcpy(all + 2, args, n * sizeof *all);
    cli_result r = cli_run(in, inlen, NULL, all);
    free(all);
    return r;
}

void cli_result_free(cli_result *r)
{
    free(r->out);
    free(r->err);
    memset(r, 0, sizeof *r);
}

json_t *cli_json(const cli_result *r)
{
    json_error_t e;
    json_t *j = json_loadb(r->out, r->outlen, 0, &e);
    cr_assert_not_null(j, "invalid JSON (%s) in: %s", e.text, r->out);
    return j;
}

void cli_assert_one_error_line(const cli_result *r)
{
    cr_assert(strncmp(r->err, "kvcli: ", 7) == 0, "stderr: %s", r->err);
    char *nl = strchr(r->err, '\n');
    cr_assert(nl != NULL && nl[1] == '\0', "not one line: %s", r->err);
}

int cli_closed_port(void)
{
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    cr_assert_geq(fd, 0);
    struct sockaddr_in a = {0};
    a.sin_family = AF_INET;
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    socklen_t len = sizeof a;
    cr_assert_eq(bind(fd, (struct sockaddr *)&a, sizeof a), 0);
    cr_assert_eq(getsockname(fd, (struct sockaddr *)&a, &len), 0);
    close(fd);
    return ntohs(a.sin_port);
}
