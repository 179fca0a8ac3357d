/*
 * test_repl.c - kvcli without a command: commands line by line from a
 * pipe (no prompt), and the interactive prompt on a pseudo-terminal
 * (libedit, history file).
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
    cr_assert_not_null(strstr(r.out, "Usage: kvcli"), "out: %s", r.out);
    /* No prompt in pipe mode. */
    cr_assert_null(strstr(r.out, "> "), "out: %s", r.out);
    cr_assert_not_null(strstr(r.err, "kvcli: key 'missing' not found\n"));
    cr_assert_not_null(strstr(r.err, "unknown command 'frobnicate'"));
    cr_assert_not_null(strstr(r.err, "unterminated quote"));
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

Test(repl, interactive_prompt_on_a_terminal)
{
    int master;
    char port[16];
    snprintf(port, sizeof port, "%d", srv.port);
    const char *home = cli_home();
    pid_t pid = forkpty(&master, NULL, NULL, NULL);
    /* No passing assertion around fork: with --full-stats the child
     * would report it too and confuse the runner. */
    if (pid == -1)
        cr_assert_fail("fork: %s", strerror(errno));
    if (pid == 0) {
        prctl(PR_SET_PDEATHSIG, SIGKILL);
        setenv("HOME", home, 1);
        setenv("TERM", "dumb", 1);
        unsetenv("KV_PORT");
        execl(KVCLI_BIN, "kvcli", "--port", port, (char *)NULL);
        _exit(127);
    }
    static char buf[65536];
    size_t len = 0;
    buf[0] = '\0';
    char prompt[64];
    snprintf(prompt, sizeof prompt, "kvcli 127.0.0.1:%s> ", port);
    expect_output(master, buf, sizeof buf, &len, "connected to kvd");
    expect_output(master, buf, sizeof buf, &len, prompt);
    const char *l1 = "set tty 'from a terminal'\r";
    cr_assert_eq(write(master, l1, strlen(l1)), (ssize_t)strlen(l1));
    expect_output(master, buf, sizeof buf, &len, "OK (version ");
    const char *l2 = "get tty\r";
    cr_assert_eq(write(master, l2, strlen(l2)), (ssize_t)strlen(l2));
    expect_output(master, buf, sizeof buf, &len, "\nfrom a terminal");
    /* Tab completes a command name. */
    const char *l25 = "pin\t\r";
    cr_assert_eq(write(master, l25, strlen(l25)), (ssize_t)strlen(l25));
    expect_output(master, buf, sizeof buf, &len, "PONG (");
    const char *l3 = "quit\r";
    cr_assert_eq(write(master, l3, strlen(l3)), (ssize_t)strlen(l3));

    int st = 0;
    long long deadline = now_ms() + 15000;
    while (waitpid(pid, &st, WNOHANG) == 0) {
        /* Drain the terminal so kvcli never blocks writing to it. */
        char tmp[4096];
        struct pollfd p = {master, POLLIN, 0};
        if (poll(&p, 1, 50) > 0 && read(master, tmp, sizeof tmp) <= 0)
            (void)0;
        if (now_ms() > deadline) {
            kill(pid, SIGKILL);
            waitpid(pid, &st, 0);
            cr_assert_fail("kvcli did not quit; output: %s", buf);
        }
    }
    close(master);
    cr_assert(WIFEXITED(st) && WEXITSTATUS(st) == 0, "status %d", st);

    char hist[160];
    snprintf(hist, sizeof hist, "%s/.kvcli_history", home);
    FILE *f = fopen(hist, "r");
    cr_assert_not_null(f, "no history file %s", hist);
    char content[4096];
    size_t n = fread(content, 1, sizeof content - 1, f);
    content[n] = '\0';
    fclose(f);
    /* libedit may encode spaces in its history file; match a word. */
    cr_assert_not_null(strstr(content, "tty"), "history: %s", content);
}
