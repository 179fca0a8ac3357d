/*
 * test_repl.c - kvcli without a command: commands line by line from a
 * pipe (no prompt), the prompt's short help and hints, and the
 * interactive prompt on a pseudo-terminal (libedit, history file, Tab
 * completion, reconnecting after kvd restarted).
 */
#include <criterion/criterion.h>
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <pty.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "harness.h"

static cli_server srv;

static void setup(void)
{
    cli_server_start(&srv, NULL);
}

static void teardown(void)
{
    cli_server_stop(&srv);
}

/* kvcli with no command, fed `in` on standard input. */
#define CLI_SESSION(srv, in) \
    cli_run_srv((srv), (in), strlen(in), (const char *const[]){NULL})

TestSuite(repl, .init = setup, .fini = teardown, .timeout = 60);

Test(repl, commands_from_a_pipe)
{
    const char *in = "set a 1\n"
                     "\n"
                     "# a comment\n"
                     "set 'two words' \"x \\\"y\\\"\"\n"
                     "get 'two words'\n"
                     "get a --json\n"
                     "get missing\n"
                     "set cake=🎂 horns=😈\n"
                     "get cake horns\n"
                     "frobnicate\n"
                     "set x 'unterminated\n"
                     "help\n"
                     "exit\n"
                     "set after exit\n";
    cli_result r = CLI_SESSION(&srv, in);
    /* The last command (help) succeeded. */
    cr_assert_eq(r.rc, 0, "rc %d", r.rc);
    cr_assert(strncmp(r.out, "OK (version ", 12) == 0, "out: %s", r.out);
    cr_assert_not_null(strstr(r.out, "\nx \"y\"\n"), "out: %s", r.out);
    cr_assert_not_null(strstr(r.out, "\n{\"key\":\"a\",\"found\":true,"
                                     "\"value\":\"1\""),
                       "out: %s", r.out);
    cr_assert_not_null(strstr(r.out, "cake: 🎂\nhorns: 😈\n"), "out: %s",
                       r.out);
    /* No prompt in pipe mode. */
    cr_assert_null(strstr(r.out, "> "), "out: %s", r.out);
    cr_assert_not_null(strstr(r.err, "kvcli: key 'missing' not found\n"));
    cr_assert_not_null(strstr(r.err, "unknown command 'frobnicate'"));
    cr_assert_not_null(strstr(r.err, "unterminated quote"));
    cli_result_free(&r);

    /* 'help' is the prompt's own short help, not the command line's. */
    r = CLI_SESSION(&srv, "help\n");
    cr_assert_eq(r.rc, 0);
    cr_assert(strncmp(r.out, "Commands (type them without 'kvcli'):\n", 38) == 0,
              "out: %s", r.out);
    cr_assert_not_null(strstr(r.out, "\n  get       "), "out: %s", r.out);
    cr_assert_not_null(strstr(r.out, "help COMMAND"), "out: %s", r.out);
    cr_assert_not_null(strstr(r.out, "quit, exit"), "out: %s", r.out);
    cr_assert_null(strstr(r.out, "Usage:"), "the whole CLI help: %s", r.out);
    cr_assert_null(strstr(r.out, "--host"), "the whole CLI help: %s", r.out);
    cr_assert_lt(r.outlen, 1400, "not short: %zu bytes", r.outlen);
    cli_result_free(&r);
    r = CLI_SESSION(&srv, "help get\n");
    cr_assert(strncmp(r.out, "Usage: kvcli get", 16) == 0, "out: %s", r.out);
    cli_result_free(&r);
}

/* Inside the prompt commands are typed without 'kvcli': so are the hints. */
Test(repl, error_hints_name_what_to_type_at_the_prompt)
{
    const char *in = "frobnicate\n"
                     "get\n"
                     "scan a b\n"
                     "del --prefix ''\n"
                     "txn\n";
    cli_result r = CLI_SESSION(&srv, in);
    cr_assert_eq(r.rc, 2);
    cr_assert_null(strstr(r.err, "kvcli help"), "err: %s", r.err);
    cr_assert_null(strstr(r.err, "'kvcli "), "err: %s", r.err);
    cr_assert_not_null(strstr(r.err, "kvcli: unknown command 'frobnicate'"
                                     " (try 'help')\n"), "err: %s", r.err);
    cr_assert_not_null(strstr(r.err, "(try 'get --help')"), "err: %s", r.err);
    cr_assert_not_null(strstr(r.err, "(try 'scan --help')"), "err: %s", r.err);
    cr_assert_not_null(strstr(r.err, "use 'flush')"), "err: %s", r.err);
    cr_assert_not_null(strstr(r.err, "(try 'txn --help')"), "err: %s", r.err);
    cli_result_free(&r);
    /* The command line keeps its own wording. */
    r = cli_run(NULL, 0, NULL, (const char *const[]){"frobnicate", NULL});
    cr_assert_str_eq(r.err, "kvcli: unknown command 'frobnicate' (try 'kvcli help')\n");
    cli_result_free(&r);

    r = CLI(&srv, "get", "after");
    cr_assert_eq(r.rc, 1, "a line after 'exit' ran");
    cli_result_free(&r);
}

Test(repl, exit_code_is_the_last_commands)
{
    cli_result r = CLI_SESSION(&srv, "set k v\nget nope\n");
    cr_assert_eq(r.rc, 1);
    cli_result_free(&r);
    r = CLI_SESSION(&srv, "get nope\nget k\n");
    cr_assert_eq(r.rc, 0);
    cli_result_free(&r);
    r = CLI_SESSION(&srv, "");
    cr_assert_eq(r.rc, 0);
    cli_result_free(&r);
    /* Standard input is the prompt's: a value cannot come from it. */
    r = CLI_SESSION(&srv, "set k -\n");
    cr_assert_eq(r.rc, 2);
    cli_result_free(&r);
}

Test(repl, connection_errors_do_not_end_the_session)
{
    char port[16];
    snprintf(port, sizeof port, "%d", cli_closed_port());
    const char *in = "get k\nhelp get\n";
    cli_result r = cli_run(in, strlen(in), NULL,
                           (const char *const[]){"--port", port, NULL});
    cr_assert_eq(r.rc, 0);
    cr_assert_not_null(strstr(r.err, "cannot connect"), "err: %s", r.err);
    cr_assert_not_null(strstr(r.out, "Usage: kvcli get"));
    cli_result_free(&r);
}

/* ---- pseudo-terminal -------------------------------------------------- */

static long long now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (long long)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/* Reads from the terminal into buf until `want` shows up (bounded). */
static void expect_output(int fd, char *buf, size_t cap, size_t *len,
                          const char *want)
{
    long long deadline = now_ms() + 15000;
    while (strstr(buf, want) == NULL) {
        long long left = deadline - now_ms();
        cr_assert_gt(left, 0, "timed out waiting for '%s'; got: %s", want,
                     buf);
        struct pollfd p = {fd, POLLIN, 0};
        int n = poll(&p, 1, (int)left);
        if (n <= 0)
            continue;
        ssize_t k = read(fd, buf + *len, cap - 1 - *len);
        cr_assert_gt(k, 0, "terminal closed waiting for '%s'; got: %s", want,
                     buf);
        *len += (size_t)k;
        buf[*len] = '\0';
    }
}

/* kvcli with no command on a new pseudo-terminal, in directory cwd (NULL:
 * the test's), against the test's kvd; *master receives the terminal. */
static pid_t pty_start(const char *cwd, int *master)
{
    char port[16];
    snprintf(port, sizeof port, "%d", srv.port);
    const char *home = cli_home();
    pid_t pid = forkpty(master, NULL, NULL, NULL);
    /* No passing assertion around fork: with --full-stats the child
     * would report it too and confuse the runner. */
    if (pid == -1)
        cr_assert_fail("fork: %s", strerror(errno));
    if (pid == 0) {
        prctl(PR_SET_PDEATHSIG, SIGKILL);
        setenv("HOME", home, 1);
        setenv("TERM", "dumb", 1);
        unsetenv("KV_PORT");
        if (cwd && chdir(cwd) != 0)
            _exit(126);
        execl(KVCLI_BIN, "kvcli", "--port", port, (char *)NULL);
        _exit(127);
    }
    return pid;
}

/* The terminal's output so far (everything since pty_start). */
typedef struct term {
    int fd;
    char buf[65536];
    size_t len;
} term;

/* Types line (with Enter) and waits until want shows up after it; returns
 * what the terminal printed from the line on. */
static const char *type_line(term *t, const char *line, const char *want)
{
    size_t from = t->len;
    char l[256];
    snprintf(l, sizeof l, "%s\r", line);
    cr_assert_eq(write(t->fd, l, strlen(l)), (ssize_t)strlen(l));
    /* expect_output searches the whole buffer: search from the line on */
    long long deadline = now_ms() + 15000;
    while (strstr(t->buf + from, want) == NULL) {
        long long left = deadline - now_ms();
        cr_assert_gt(left, 0, "timed out waiting for '%s' after '%s'; got: %s",
                     want, line, t->buf + from);
        struct pollfd p = {t->fd, POLLIN, 0};
        if (poll(&p, 1, (int)left) <= 0)
            continue;
        ssize_t k = read(t->fd, t->buf + t->len, sizeof t->buf - 1 - t->len);
        cr_assert_gt(k, 0, "terminal closed waiting for '%s'; got: %s", want,
                     t->buf + from);
        t->len += (size_t)k;
        t->buf[t->len] = '\0';
    }
    return t->buf + from;
}

/* Types quit and waits for kvcli to exit 0. */
static void pty_quit(pid_t pid, term *t)
{
    const char *q = "quit\r";
    cr_assert_eq(write(t->fd, q, strlen(q)), (ssize_t)strlen(q));
    int st = 0;
    long long deadline = now_ms() + 15000;
    while (waitpid(pid, &st, WNOHANG) == 0) {
        /* Drain the terminal so kvcli never blocks writing to it. */
        char tmp[4096];
        struct pollfd p = {t->fd, POLLIN, 0};
        if (poll(&p, 1, 50) > 0 && read(t->fd, tmp, sizeof tmp) <= 0)
            (void)0;
        if (now_ms() > deadline) {
            kill(pid, SIGKILL);
            waitpid(pid, &st, 0);
            cr_assert_fail("kvcli did not quit; output: %s", t->buf);
        }
    }
    close(t->fd);
    cr_assert(WIFEXITED(st) && WEXITSTATUS(st) == 0, "status %d", st);
}

Test(repl, interactive_prompt_on_a_terminal)
{
    static term t;
    memset(&t, 0, sizeof t);
    pid_t pid = pty_start(NULL, &t.fd);
    char prompt[64];
    snprintf(prompt, sizeof prompt, "kvcli 127.0.0.1:%d> ", srv.port);
    expect_output(t.fd, t.buf, sizeof t.buf, &t.len, "connected to kvd");
    expect_output(t.fd, t.buf, sizeof t.buf, &t.len, prompt);
    type_line(&t, "set tty 'from a terminal'", "OK (version ");
    type_line(&t, "get tty", "\nfrom a terminal");
    /* Tab completes a command name. */
    type_line(&t, "pin\t", "PONG (");
    pty_quit(pid, &t);

    char hist[160];
    snprintf(hist, sizeof hist, "%s/.kvcli_history", cli_home());
    FILE *f = fopen(hist, "r");
    cr_assert_not_null(f, "no history file %s", hist);
    char content[4096];
    size_t n = fread(content, 1, sizeof content - 1, f);
    content[n] = '\0';
    fclose(f);
    /* libedit may encode spaces in its history file; match a word. */
    cr_assert_not_null(strstr(content, "tty"), "history: %s", content);
}

/* Tab: command names first (and after help); after a command nothing, not
 * the current directory's file names, except where a file is expected. */
Test(repl, tab_completes_commands_not_file_names)
{
    char dir[] = "/tmp/kvcli-tab-XXXXXX";
    cr_assert_not_null(mkdtemp(dir));
    char file[128];
    snprintf(file, sizeof file, "%s/zzfile-xyz", dir);
    cli_write_file(file, "from the file", 13);

    static term t;
    memset(&t, 0, sizeof t);
    pid_t pid = pty_start(dir, &t.fd);
    expect_output(t.fd, t.buf, sizeof t.buf, &t.len, "> ");
    /* "get zz<Tab>" stays "get zz": a key, not a file name. */
    const char *o = type_line(&t, "get zz\t", "not found");
    cr_assert_not_null(strstr(o, "key 'zz' not found"), "got: %s", o);
    cr_assert_null(strstr(o, "zzfile"), "a file name was completed: %s", o);
    o = type_line(&t, "set zz\t v", "OK (version");
    cr_assert_null(strstr(o, "zzfile"), "got: %s", o);
    /* After --file, a file name is what is wanted. */
    type_line(&t, "set k --file zz\t", "OK (version");
    type_line(&t, "get k", "\nfrom the file");
    /* import's FILE too (the file is not an export: its error shows the
     * name was completed and the file opened). */
    type_line(&t, "import zz\t", "line 1: invalid JSON");
    type_line(&t, "import --dry-run zz\t", "line 1: invalid JSON");
    /* ... but not for an option's value. */
    o = type_line(&t, "import --format zz\t x", "unknown --format");
    cr_assert_not_null(strstr(o, "unknown --format 'zz'"), "got: %s", o);
    o = type_line(&t, "help sc\t", "Usage: kvcli scan");
    pty_quit(pid, &t);
    unlink(file);
    rmdir(dir);
}

/* kvd restarted while the prompt sat idle: the next command reconnects,
 * says so, and runs on the new server instead of failing. */
Test(repl, reconnect_after_kvd_restarted_is_announced)
{
    static term t;
    memset(&t, 0, sizeof t);
    pid_t pid = pty_start(NULL, &t.fd);
    expect_output(t.fd, t.buf, sizeof t.buf, &t.len, "connected to kvd");
    type_line(&t, "set k v", "OK (version");
    cli_server_restart(&srv);
    char want[64];
    snprintf(want, sizeof want, "kvcli: reconnected to 127.0.0.1:%d (kvd ",
             srv.port);
    const char *o = type_line(&t, "get k", "not found");
    cr_assert_not_null(strstr(o, want), "got: %s", o);
    cr_assert_null(strstr(o, "lost"), "the command failed: %s", o);
    /* The new server is in memory: k is gone, and it is kvd's answer. */
    cr_assert_not_null(strstr(o, "key 'k' not found"), "got: %s", o);
    /* Announced once, not on every command. */
    o = type_line(&t, "set k w", "OK (version");
    cr_assert_null(strstr(o, "reconnected"), "got: %s", o);
    pty_quit(pid, &t);
}
