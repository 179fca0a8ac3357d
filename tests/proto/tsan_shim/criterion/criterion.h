/*
 * criterion.h (shim) - a minimal in-process stand-in for Criterion, used
 * only for the TSan build of tests/proto.
 *
 * Why: Criterion 2.4 forks a sandbox per test and maps an "inheritable
 * arena" at addresses ThreadSanitizer reserves, so every Criterion binary
 * built with -fsanitize=thread dies before running a test (Criterion issue
 * #274). The codec and client tests use only Test() and the cr_assert_* /
 * cr_expect_* macros below, so under TSan they are compiled against this
 * header instead and run sequentially in one process.
 *
 * cr_assert_* failures end the current test (longjmp back to the runner;
 * from another thread they abort), cr_expect_* failures are recorded and
 * the test goes on. The exit status is non-zero if any check failed.
 */
#ifndef KV_CRITERION_SHIM_H
#define KV_CRITERION_SHIM_H

#include <math.h>
#include <pthread.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

typedef struct shim_test {
    const char *suite;
    const char *name;
    void (*fn)(void);
    struct shim_test *next;
} shim_test;

static shim_test *shim_tests;
static int shim_failures;
static int shim_test_failed;
static jmp_buf shim_jmp;
static pthread_t shim_main;

static inline void shim_register(shim_test *t)
{
    t->next = shim_tests;
    shim_tests = t;
}

static inline void shim_report(const char *file, int line, const char *expr,
                               int fatal, const char *fmt, ...)
{
    va_list ap;
    fprintf(stderr, "%s:%d: check failed: %s", file, line, expr);
    if (fmt[0] != '\0') {
        fputs(" -- ", stderr);
        va_start(ap, fmt);
        vfprintf(stderr, fmt, ap);
        va_end(ap);
    }
    fputc('\n', stderr);
    shim_test_failed = 1;
    if (fatal) {
        if (!pthread_equal(pthread_self(), shim_main))
            abort();
        longjmp(shim_jmp, 1);
    }
}

#define Test(suite, name, ...)                                              \
    static void suite##_##name##_impl(void);                                \
    static shim_test suite##_##name##_reg = {#suite, #name,                 \
                                             suite##_##name##_impl, NULL};  \
    __attribute__((constructor)) static void suite##_##name##_ctor(void)    \
    {                                                                       \
        shim_register(&suite##_##name##_reg);                               \
    }                                                                       \
    static void suite##_##name##_impl(void)

#define SHIM_CHECK(fatal, cond, expr, ...)                                  \
    do {                                                                    \
        if (!(cond))                                                        \
            shim_report(__FILE__, __LINE__, expr, fatal, "" __VA_ARGS__);   \
    } while (0)

#define cr_assert(c, ...) SHIM_CHECK(1, c, #c, __VA_ARGS__)
#define cr_expect(c, ...) SHIM_CHECK(0, c, #c, __VA_ARGS__)
#define cr_assert_fail(...) SHIM_CHECK(1, 0, "fail", __VA_ARGS__)
#define cr_assert_eq(a, b, ...) SHIM_CHECK(1, (a) == (b), #a " == " #b, __VA_ARGS__)
#define cr_expect_eq(a, b, ...) SHIM_CHECK(0, (a) == (b), #a " == " #b, __VA_ARGS__)
#define cr_assert_neq(a, b, ...) SHIM_CHECK(1, (a) != (b), #a " != " #b, __VA_ARGS__)
#define cr_expect_neq(a, b, ...) SHIM_CHECK(0, (a) != (b), #a " != " #b, __VA_ARGS__)
#define cr_assert_lt(a, b, ...) SHIM_CHECK(1, (a) < (b), #a " < " #b, __VA_ARGS__)
#define cr_expect_lt(a, b, ...) SHIM_CHECK(0, (a) < (b), #a " < " #b, __VA_ARGS__)
#define cr_assert_leq(a, b, ...) SHIM_CHECK(1, (a) <= (b), #a " <= " #b, __VA_ARGS__)
#define cr_expect_leq(a, b, ...) SHIM_CHECK(0, (a) <= (b), #a " <= " #b, __VA_ARGS__)
#define cr_assert_gt(a, b, ...) SHIM_CHECK(1, (a) > (b), #a " > " #b, __VA_ARGS__)
#define cr_expect_gt(a, b, ...) SHIM_CHECK(0, (a) > (b), #a " > " #b, __VA_ARGS__)
#define cr_assert_null(p, ...) SHIM_CHECK(1, (p) == NULL, #p " == NULL", __VA_ARGS__)
#define cr_expect_null(p, ...) SHIM_CHECK(0, (p) == NULL, #p " == NULL", __VA_ARGS__)
#define cr_assert_not_null(p, ...) SHIM_CHECK(1, (p) != NULL, #p " != NULL", __VA_ARGS__)
#define cr_expect_not_null(p, ...) SHIM_CHECK(0, (p) != NULL, #p " != NULL", __VA_ARGS__)
#define cr_assert_str_eq(a, b, ...) SHIM_CHECK(1, strcmp((a), (b)) == 0, #a " == " #b, __VA_ARGS__)
#define cr_expect_str_eq(a, b, ...) SHIM_CHECK(0, strcmp((a), (b)) == 0, #a " == " #b, __VA_ARGS__)
#define cr_assert_float_eq(a, b, e, ...) SHIM_CHECK(1, fabs((double)(a) - (double)(b)) <= (e), #a " ~= " #b, __VA_ARGS__)
#define cr_expect_float_eq(a, b, e, ...) SHIM_CHECK(0, fabs((double)(a) - (double)(b)) <= (e), #a " ~= " #b, __VA_ARGS__)

/* One test; separate so no local of the loop lives across setjmp. */
static void shim_run(shim_test *t)
{
    shim_test_failed = 0;
    if (setjmp(shim_jmp) == 0)
        t->fn();
    fprintf(stderr, "[%s] %s::%s\n", shim_test_failed ? "FAIL" : "PASS",
            t->suite, t->name);
    shim_failures += shim_test_failed;
}

int main(int argc, char **argv);
int main(int argc, char **argv)
{
    (void)argc;
    (void)argv;
    int n = 0;
    shim_main = pthread_self();
    for (shim_test *t = shim_tests; t != NULL; t = t->next, n++)
        shim_run(t);
    fprintf(stderr, "Synthesis: Tested: %d | Failing: %d\n", n, shim_failures);
    return shim_failures ? 1 : 0;
}

#endif /* KV_CRITERION_SHIM_H */
