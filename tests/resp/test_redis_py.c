/*
 * test_redis_py.c - runs redis_py_test.py (redis-py, Debian's
 * python3-redis) against a real kvd, without and with a password; the
 * script's own unittest cases say what is covered. Skipped, saying why,
 * when that python3 cannot import redis.
 */
#include <criterion/criterion.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "harness.h"
#include "resp_util.h"

TestSuite(redis_py, .init = harness_setup, .fini = harness_teardown, .timeout = 120);

static void need_redis_py(void)
{
    char *out = NULL;
    int rc = run_sh(RESP_PYTHON3 " -c 'import redis'", NULL, &out, NULL, 30);
    if (rc != 0)
        cr_skip_test("%s cannot import redis (Debian python3-redis; bash scripts/dev.sh deps): %s",
                     RESP_PYTHON3, out);
    free(out);
}

static void run_script(const char *password)
{
    const char *wrap = getenv("KVD_WRAPPER");
    char cmd[1024];
    snprintf(cmd, sizeof cmd, "%s %s %s/redis_py_test.py %d %s",
             wrap && strstr(wrap, "valgrind") ? "RESP_TEST_UNDER_VALGRIND=1" : "",
             RESP_PYTHON3, RESP_TEST_DIR, g_kvd.port, password ? password : "");
    char *out = NULL;
    int rc = run_sh(cmd, NULL, &out, NULL, 100);
    if (rc != 0)
        fprintf(stderr, "%s\n", out);
    cr_assert_eq(rc, 0, "redis_py_test.py exited %d (its output above)", rc);
    cr_assert_not_null(strstr(out, " 0 failed"), "%s", out);
    free(out);
}

Test(redis_py, without_password)
{
    need_redis_py();
    kvd_start(NULL);
    run_script(NULL);
    kvd_stop();
}

Test(redis_py, with_password)
{
    need_redis_py();
    kvd_start("--password", "py-secret", NULL);
    run_script("py-secret");
    kvd_stop();
}
