/*
 * test_redis_benchmark.c - the real redis-benchmark against kvd: the
 * ping, set, get, incr and mset tests at pipelines 1 and 16 (-P 16), and
 * with a password. Small request counts; nothing is timed: every test
 * must report in the --csv output with a rate above zero, and no line may
 * mention an error (redis-benchmark stops at the first error reply).
 */
#include <criterion/criterion.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "harness.h"
#include "resp_util.h"

TestSuite(redis_benchmark, .init = harness_setup, .fini = harness_teardown, .timeout = 120);

static void need_redis_benchmark(void)
{
    if (!tool_found("redis-benchmark"))
        cr_skip_test("redis-benchmark is not installed (Debian redis-tools; bash scripts/dev.sh "
                     "deps)");
}

/* Runs redis-benchmark with args and checks its --csv report. */
static void bench(const char *args)
{
    static const char *const tests[] = {"PING_INLINE", "PING_MBULK", "SET", "GET", "INCR",
                                        "MSET (10 keys)"};
    char cmd[1024];
    snprintf(cmd, sizeof cmd,
             "redis-benchmark -h 127.0.0.1 -p %d -t ping,set,get,incr,mset -n 2000 -c 4 "
             "--csv %s",
             g_kvd.port, args);
    char *out = NULL;
    int rc = run_sh(cmd, NULL, &out, NULL, 100);
    cr_assert_eq(rc, 0, "%s exited %d:\n%s", cmd, rc, out);
    int found[sizeof tests / sizeof tests[0]] = {0};
    for (char *line = strtok(out, "\n"); line; line = strtok(NULL, "\n")) {
        cr_assert(!strstr(line, "rror") && !strstr(line, "ERR") && !strstr(line, "WARN"),
                  "%s: %s", args, line);
        char name[64];
        double rps = 0;
        if (sscanf(line, "\"%63[^\"]\",\"%lf\"", name, &rps) != 2)
            continue; /* the header */
        for (size_t i = 0; i < sizeof tests / sizeof tests[0]; i++)
            if (strcmp(name, tests[i]) == 0) {
                cr_assert_gt(rps, 0, "%s: %s", args, line);
                found[i]++;
            }
    }
    for (size_t i = 0; i < sizeof tests / sizeof tests[0]; i++)
        cr_assert_eq(found[i], 1, "%s: no report for %s", args, tests[i]);
    free(out);
}

Test(redis_benchmark, pipelines_1_and_16)
{
    need_redis_benchmark();
    kvd_start(NULL);
    bench("-P 1");
    bench("-P 16");
    /* what the benchmark wrote is there: MSET's keys, INCR's counter */
    kv_client *c = test_client(NULL);
    kv_value v;
    cr_assert_eq(kv_client_get(c, "counter:__rand_int__", 20, &v), KV_OK);
    cr_assert_eq(v.len, 4, "4000 increments");
    cr_assert(memcmp(v.data, "4000", 4) == 0);
    kv_client_value_free(&v);
    kv_client_close(c);
    kvd_stop();
}

/* With a data directory and --fsync always every write's reply waits for
 * its sync (held replies, in order with the others): what the benchmark
 * was told is written is there after a restart. */
Test(redis_benchmark, durable_writes_survive_a_restart)
{
    need_redis_benchmark();
    kvd_test_dir();
    char data[400], cmd[600];
    snprintf(data, sizeof data, "%s/data", g_kvd.dir);
    kvd_start("--data-dir", data, "--fsync", "always", NULL);
    bench("-P 16");
    kvd_stop();
    kvd_start("--data-dir", data, NULL);
    snprintf(cmd, sizeof cmd, "redis-cli -h 127.0.0.1 -p %d get counter:__rand_int__",
             g_kvd.port);
    char *out = NULL;
    run_sh(cmd, NULL, &out, NULL, 60);
    cr_assert_str_eq(out, "2000\n"); /* one run: 2000 INCRs */
    free(out);
    kvd_stop();
    snprintf(cmd, sizeof cmd, "rm -rf %s", data); /* the harness removes files only */
    cr_assert_eq(system(cmd), 0);
}

Test(redis_benchmark, with_a_password)
{
    need_redis_benchmark();
    kvd_start("--password", "bench-pw", NULL);
    bench("-P 16 -a bench-pw");
    kvd_stop();
}
