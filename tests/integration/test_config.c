/*
 * test_config.c - a real kvd refusing bad configuration (issue 13 item 7):
 * a config file's unknown keys, bad values and syntax errors are named
 * with FILE:LINE, values outside an option's range are refused with the
 * range (exit 2, nothing started), flags and file alike; legal but
 * dubious values (more threads than CPUs, frames smaller than values)
 * start with a warning.
 */
#include <criterion/criterion.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include "harness.h"

TestSuite(config, .init = harness_setup, .fini = harness_teardown, .timeout = 90);

static char g_conf[300];

/* Writes text as the test's config file; returns its path. */
static const char *conf(const char *text)
{
    kvd_test_dir();
    snprintf(g_conf, sizeof g_conf, "%s/kvd.conf", g_kvd.dir);
    FILE *f = fopen(g_conf, "w");
    cr_assert_not_null(f);
    fputs(text, f);
    fclose(f);
    return g_conf;
}

/* Runs kvd --config (text) --port 0; asserts exit 2 and one line of output
 * that contains FILE:LINE: and each of the needles (NULL-terminated). */
static void refused_at(const char *text, int line, const char *needle, const char *needle2)
{
    char out[4096], where[400];
    const char *args[] = {"--config", conf(text), "--port", "0", NULL};
    cr_assert_eq(kvd_run_to_end(args, out, sizeof out), 2, "config:\n%s\nkvd said: %s", text, out);
    snprintf(where, sizeof where, "kvd: error: %s:%d: ", g_conf, line);
    cr_assert(strncmp(out, where, strlen(where)) == 0, "expected '%s...', got: %s", where, out);
    cr_assert(strstr(out, needle), "expected '%s' in: %s", needle, out);
    cr_assert(!needle2 || strstr(out, needle2), "expected '%s' in: %s", needle2, out);
    cr_assert_eq(strchr(out, '\n'), out + strlen(out) - 1, "one line: %s", out);
}

Test(config, file_errors_name_the_line)
{
    refused_at("# kvd\n[kvd]\nport = 7400\nno_such_key = 1\n", 4, "unknown key 'no_such_key'", NULL);
    refused_at("port = 7400\n\nthreads = many\n", 3, "bad value for 'threads'", "'many' is not a whole number");
    refused_at("[kvd]\n# big\n\nthreads = 1000\n", 4, "bad value for 'threads'", "out of range 0..256");
    refused_at("max_frame_size = 100\n", 1, "bad value for 'max_frame_size'", "1k..704643071");
    refused_at("port = 7379 # the default\n", 1, "bad value for 'port'",
               "comment must be on a line of its own");
    refused_at("port = 7400\n[redis]\nport = 1\n", 3, "section [redis]", NULL);
    refused_at("port = 7400\nlisten on everything\n", 2, "syntax error", NULL);
    refused_at("bind = 127.0.0.1\nbind = ::1, 10.0.0.300\n", 2, "bad value for 'bind'", "10.0.0.300");
    refused_at("fsync = sometimes\n", 1, "'sometimes' is not always, everysec or no", NULL);
    refused_at("huge-pages = deferred\n", 1, "'deferred' is not eager or never", NULL);
    /* a cross-option check still points at the line that set the value */
    refused_at("max-frame-size = 4k\n\nmax-client-memory = 2k\n", 3, "bad value for 'max-client-memory'",
               "below max-frame-size 4096");
    /* a line longer than inih's buffer would be split in two: refused */
    char longline[400];
    snprintf(longline, sizeof longline, "port = 7400\npassword = %0300d\n", 7);
    refused_at(longline, 2, "line longer than", NULL);
}

/* Out of range: exit 2, the flag and the allowed range named. */
static void flag_refused(const char *flag, const char *value, const char *range)
{
    char out[4096], expect[200];
    const char *args[] = {"--port", "0", flag, value, NULL};
    cr_assert_eq(kvd_run_to_end(args, out, sizeof out), 2, "%s %s: %s", flag, value, out);
    snprintf(expect, sizeof expect, "kvd: error: bad value for %s: %s is ", flag, value);
    cr_assert(strstr(out, expect), "expected '%s' in: %s", expect, out);
    cr_assert(strstr(out, range), "expected range '%s' in: %s", range, out);
}

Test(config, nonsensical_values_are_refused_with_the_range)
{
    flag_refused("--max-frame-size", "100", "out of range 1k..704643071");
    flag_refused("--max-frame-size", "5g", "out of range 1k..704643071");
    flag_refused("--threads", "1000", "out of range 0..256");
    flag_refused("--max-output-buffer", "100", "below the minimum 4k");
    flag_refused("--max-key-size", "1m", "out of range 1..64k");
    flag_refused("--idle-timeout", "99999999", "out of range 0..31536000");
    char out[4096];
    const char *small[] = {"--port", "0", "--max-frame-size", "100", NULL};
    kvd_run_to_end(small, out, sizeof out);
    cr_assert(strstr(out, "unless they end in k, m or g"), "a forgotten suffix is hinted at: %s", out);

    /* the same value from the file, named with its line */
    refused_at("\nthreads = 1000\n", 2, "bad value for 'threads'", "out of range 0..256");
    /* and a flag overriding a bad file value does not hide the file's error */
    char out2[4096];
    const char *both[] = {"--config", conf("threads = 1000\n"), "--threads", "2", "--port", "0", NULL};
    cr_assert_eq(kvd_run_to_end(both, out2, sizeof out2), 2, "%s", out2);
}

Test(config, limits_of_the_ranges_start)
{
    /* the smallest frame limit serves what fits in it */
    kvd_start("--max-frame-size", "1k", "--max-value-size", "100", NULL);
    kv_client *c = test_client(NULL);
    char val[100] = {0};
    cr_assert_eq(kv_client_set(c, "k", 1, val, sizeof val, NULL), KV_OK);
    kv_client_close(c);
    kvd_stop();
    cr_assert(!file_has(g_kvd.log, "max-frame-size"), "nothing to warn about");
}

Test(config, dubious_values_are_warned_about)
{
    /* more event loops than CPUs: legal (the range is the same on every
     * machine, so a config file moves between them), but said */
    long cpus = sysconf(_SC_NPROCESSORS_ONLN);
    char threads[32], warn[160];
    snprintf(threads, sizeof threads, "%ld", cpus + 1);
    kvd_start("--threads", threads, NULL);
    kvd_stop();
    snprintf(warn, sizeof warn, "kvd: warning: --threads: %ld event loops for %ld CPUs", cpus + 1, cpus);
    cr_assert(file_has(g_kvd.log, warn), "expected '%s' in kvd's log", warn);


    const char *path = conf("[kvd]\nmax-frame-size = 4k\n");
    kvd_start("--config", path, NULL);
    kvd_stop();
    char expect[400];
    snprintf(expect, sizeof expect,
             "kvd: warning: %s:2: 'max-frame-size': 4096 is below max-value-size 67108864", path);
    cr_assert(file_has(g_kvd.log, expect), "expected '%s' in kvd's log", expect);
}

Test(config, cluster_options_without_their_companions_are_refused)
{
    char out[4096];
    const char *bind_only[] = {"--port", "0", "--raft-bind", "127.0.0.1:1", NULL};
    cr_assert_eq(kvd_run_to_end(bind_only, out, sizeof out), 2, "%s", out);
    cr_assert(strstr(out, "kvd: error: --raft-bind without --raft-addr"), "%s", out);
    const char *id_only[] = {"--port", "0", "--node-id", "1", NULL};
    cr_assert_eq(kvd_run_to_end(id_only, out, sizeof out), 2, "%s", out);
    cr_assert(strstr(out, "needs all of --node-id, --raft-addr and --cluster"), "%s", out);
}
