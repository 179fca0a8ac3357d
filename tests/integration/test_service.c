/*
 * test_service.c - kvd as a service (issue 13): SIGHUP reopens the log
 * file for logrotate and never stops kvd; pid file locking; a live Unix
 * socket is never taken over, --unix-perm; protected mode; --password-file;
 * what the start and stop lines say about persistence.
 */
#include <criterion/criterion.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "harness.h"

TestSuite(service, .init = harness_setup, .fini = harness_teardown, .timeout = 90);

static void sleep_ms(int ms)
{
    struct timespec ts = {ms / 1000, (long)(ms % 1000) * 1000000L};
    nanosleep(&ts, NULL);
}

static void make_dir(void)
{
    if (!g_kvd.dir[0]) {
        strcpy(g_kvd.dir, "/tmp/kvdtest.XXXXXX");
        cr_assert_not_null(mkdtemp(g_kvd.dir));
    }
}

/* 1 if the file at path contains needle. */
static int file_has(const char *path, const char *needle)
{
    FILE *f = fopen(path, "r");
    if (!f)
        return 0;
    char line[1024];
    int found = 0;
    while (!found && fgets(line, sizeof line, f))
        found = strstr(line, needle) != NULL;
    fclose(f);
    return found;
}

/* Waits (bounded, 20 s) until path contains needle. */
static int wait_file_has(const char *path, const char *needle)
{
    for (int i = 0; i < 2000; i++) {
        if (file_has(path, needle))
            return 1;
        sleep_ms(10);
    }
    return 0;
}

static void assert_answers(void)
{
    kv_client *c = test_client(NULL);
    cr_assert_eq(kv_client_ping(c), KV_OK);
    kv_client_close(c);
}

/* ---- SIGHUP ---------------------------------------------------------------- */

Test(service, sighup_reopens_the_log_file)
{
    make_dir();
    char log[300], rotated[300];
    snprintf(log, sizeof log, "%s/service.log", g_kvd.dir);
    snprintf(rotated, sizeof rotated, "%s/service.log.1", g_kvd.dir);
    kvd_start("--log-file", log, NULL);
    cr_assert(file_has(log, "ready"), "kvd logs to --log-file");

    /* logrotate: rename the file away, then kill -HUP */
    cr_assert_eq(rename(log, rotated), 0);
    cr_assert_eq(kill(g_kvd.pid, SIGHUP), 0);
    cr_assert(wait_file_has(log, "reopened the log file"), "a new file at the path");
    cr_assert(kvd_alive(), "SIGHUP does not stop kvd");
    assert_answers();
    cr_assert(!file_has(rotated, "reopened the log file"), "the rotated file is left alone");

    /* again: the handler stays installed */
    cr_assert_eq(unlink(log), 0);
    cr_assert_eq(kill(g_kvd.pid, SIGHUP), 0);
    cr_assert(wait_file_has(log, "reopened the log file"));
    assert_answers();
    kvd_stop();
    cr_assert(file_has(log, "stopped"), "later lines, to the end, go to the new file");
}

Test(service, sighup_without_log_file_keeps_serving)
{
    kvd_start(NULL);
    cr_assert_eq(kill(g_kvd.pid, SIGHUP), 0);
    cr_assert(wait_file_has(g_kvd.log, "received SIGHUP"));
    cr_assert(kvd_alive());
    assert_answers();
    kvd_stop();
}
