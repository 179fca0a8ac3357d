/*
 * criterion.h (ThreadSanitizer builds only) - a stand-in for the part of
 * Criterion's API the project's tests use.
 *
 * Criterion cannot start under ThreadSanitizer: its sandbox (BoxFort) maps
 * an "inheritable arena" inside TSan's shadow memory and aborts with "Could
 * not initialize inheritable arena" (Criterion issue #274). In KV_SANITIZE=
 * thread builds, kv_add_criterion_test (tests/CMakeLists.txt) puts this
 * directory first on the include path, so the same test sources compile
 * against this header instead. Like Criterion, it runs every test in its
 * own forked process, with its (or its TestSuite's) .init and .fini; a failed
 * cr_assert* ends the test, a failed cr_expect* marks it failed and goes on.
 *
 * Options: --filter SUITE/NAME (a trailing '*' matches any suffix);
 * Criterion's --jobs N and --full-stats are accepted and ignored.
 */
#ifndef KV_CRITERION_TSAN_H
#define KV_CRITERION_TSAN_H

#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/types.h>
#include <sys/wait.h>
#include <unistd.h>

struct crt_options {
    int unused_; /* lets Test() write {0, __VA_ARGS__} with no options */
    void (*init)(void);
    void (*fini)(void);
    double timeout; /* ignored: ctest's TIMEOUT bounds the binary */
    int disabled;
};

struct crt_test {
    const char *suite;
    const char *name;
    void (*fn)(void);
    struct crt_options opts;
    struct crt_test *next;
};

struct crt_suite {
    const char *name;
    struct crt_options opts;
    struct crt_suite *next;
};

/* The registry is shared by every file of a test binary that includes this
 * header (a test's helpers too), hence weak, one-definition globals. */
__attribute__((weak)) struct crt_test *crt_head;
__attribute__((weak)) struct crt_test **crt_tail = &crt_head;
__attribute__((weak)) struct crt_suite *crt_suites;
__attribute__((weak)) int crt_expect_failed;

static inline void crt_register(struct crt_test *t)
{
    *crt_tail = t;
    crt_tail = &t->next;
}

/* TestSuite(suite, .init = f, .fini = g): defaults for the suite's tests. */
#define TestSuite(suite, ...)                                                 \
    static struct crt_suite crt_suite_##suite = {#suite, {0, __VA_ARGS__}, NULL}; \
    __attribute__((constructor)) static void crt_suite_##suite##_ctor(void)   \
    {                                                                         \
        crt_suite_##suite.next = crt_suites;                                  \
        crt_suites = &crt_suite_##suite;                                      \
    }

#define Test(suite, name, ...)                                                \
    static void suite##_##name##_impl(void);                                  \
    static struct crt_test suite##_##name##_reg = {                           \
        #suite, #name, suite##_##name##_impl, {0, __VA_ARGS__}, NULL};        \
    __attribute__((constructor)) static void suite##_##name##_ctor(void)      \
    {                                                                         \
        crt_register(&suite##_##name##_reg);                                  \
    }                                                                         \
    static void suite##_##name##_impl(void)

__attribute__((format(printf, 5, 6))) static inline void
crt_fail(int fatal, const char *file, int line, const char *expr, const char *fmt, ...)
{
    va_list ap;
    fprintf(stderr, "[----] %s:%d: %s: %s\n[----]  ", file, line,
            fatal ? "Assertion Failed" : "Expectation Failed", expr);
    va_start(ap, fmt);
    vfprintf(stderr, fmt, ap);
    va_end(ap);
    fputc('\n', stderr);
    fflush(NULL);
    if (fatal)
        _exit(1); /* from any thread: the test's process ends */
    crt_expect_failed = 1;
}

/* The message arguments are optional, as in Criterion; the leading " "
 * keeps the format non-empty when none are given. */
#define CRT_CHECK(fatal, cond, expr, ...)                                     \
    do {                                                                      \
        if (!(cond))                                                          \
            crt_fail(fatal, __FILE__, __LINE__, expr, " " __VA_ARGS__);       \
    } while (0)

#define cr_assert(c, ...) CRT_CHECK(1, c, #c, __VA_ARGS__)
#define cr_expect(c, ...) CRT_CHECK(0, c, #c, __VA_ARGS__)
#define cr_assert_fail(...) CRT_CHECK(1, 0, "fail", __VA_ARGS__)
#define cr_expect_fail(...) CRT_CHECK(0, 0, "fail", __VA_ARGS__)
#define CRT_CMP(fatal, a, op, b, ...) CRT_CHECK(fatal, (a)op(b), #a " " #op " " #b, __VA_ARGS__)
#define cr_assert_eq(a, b, ...) CRT_CMP(1, a, ==, b, __VA_ARGS__)
#define cr_expect_eq(a, b, ...) CRT_CMP(0, a, ==, b, __VA_ARGS__)
#define cr_assert_neq(a, b, ...) CRT_CMP(1, a, !=, b, __VA_ARGS__)
#define cr_expect_neq(a, b, ...) CRT_CMP(0, a, !=, b, __VA_ARGS__)
#define cr_assert_lt(a, b, ...) CRT_CMP(1, a, <, b, __VA_ARGS__)
#define cr_expect_lt(a, b, ...) CRT_CMP(0, a, <, b, __VA_ARGS__)
#define cr_assert_leq(a, b, ...) CRT_CMP(1, a, <=, b, __VA_ARGS__)
#define cr_expect_leq(a, b, ...) CRT_CMP(0, a, <=, b, __VA_ARGS__)
#define cr_assert_gt(a, b, ...) CRT_CMP(1, a, >, b, __VA_ARGS__)
#define cr_expect_gt(a, b, ...) CRT_CMP(0, a, >, b, __VA_ARGS__)
#define cr_assert_geq(a, b, ...) CRT_CMP(1, a, >=, b, __VA_ARGS__)
#define cr_expect_geq(a, b, ...) CRT_CMP(0, a, >=, b, __VA_ARGS__)
#define cr_assert_null(p, ...) CRT_CHECK(1, (p) == NULL, #p " == NULL", __VA_ARGS__)
#define cr_expect_null(p, ...) CRT_CHECK(0, (p) == NULL, #p " == NULL", __VA_ARGS__)
#define cr_assert_not_null(p, ...) CRT_CHECK(1, (p) != NULL, #p " != NULL", __VA_ARGS__)
#define cr_expect_not_null(p, ...) CRT_CHECK(0, (p) != NULL, #p " != NULL", __VA_ARGS__)
#define cr_assert_str_eq(a, b, ...) CRT_CHECK(1, strcmp((a), (b)) == 0, #a " == " #b, __VA_ARGS__)
#define cr_expect_str_eq(a, b, ...) CRT_CHECK(0, strcmp((a), (b)) == 0, #a " == " #b, __VA_ARGS__)
#define cr_assert_str_neq(a, b, ...) CRT_CHECK(1, strcmp((a), (b)) != 0, #a " != " #b, __VA_ARGS__)
#define cr_expect_str_neq(a, b, ...) CRT_CHECK(0, strcmp((a), (b)) != 0, #a " != " #b, __VA_ARGS__)
#define cr_assert_float_eq(a, b, e, ...) \
    CRT_CHECK(1, fabs((double)(a) - (double)(b)) <= (e), #a " ~= " #b, __VA_ARGS__)
#define cr_expect_float_eq(a, b, e, ...) \
    CRT_CHECK(0, fabs((double)(a) - (double)(b)) <= (e), #a " ~= " #b, __VA_ARGS__)
#define cr_log_info(...)                                                      \
    do {                                                                      \
        fprintf(stderr, "[----] " __VA_ARGS__);                               \
        fputc('\n', stderr);                                                  \
    } while (0)
#define cr_log_warn cr_log_info
/* Ends the test as passed (skipped), as Criterion's does; call it before
 * the test starts anything that its .fini must clean up. */
#define cr_skip_test(...)                                                     \
    do {                                                                      \
        cr_log_info("skipped: " __VA_ARGS__);                                 \
        fflush(NULL);                                                         \
        _exit(0);                                                             \
    } while (0)
#define cr_log_error cr_log_info

static inline int crt_match(const char *filter, const struct crt_test *t)
{
    char full[256];
    snprintf(full, sizeof full, "%s/%s", t->suite, t->name);
    size_t n = strlen(filter);
    if (n > 0 && filter[n - 1] == '*')
        return strncmp(full, filter, n - 1) == 0;
    return strcmp(full, filter) == 0;
}

static inline const struct crt_options *crt_suite_options(const char *suite)
{
    for (const struct crt_suite *s = crt_suites; s != NULL; s = s->next)
        if (strcmp(s->name, suite) == 0)
            return &s->opts;
    return NULL;
}

/* Runs one test in a child process; returns 1 if it failed. The test's own
 * fixtures win over its suite's. */
static inline int crt_run(const struct crt_test *t)
{
    const struct crt_options *so = crt_suite_options(t->suite);
    void (*init)(void) = t->opts.init ? t->opts.init : so ? so->init : NULL;
    void (*fini)(void) = t->opts.fini ? t->opts.fini : so ? so->fini : NULL;
    fflush(NULL);
    pid_t pid = fork();
    if (pid < 0) {
        perror("fork");
        return 1;
    }
    if (pid == 0) {
        if (init)
            init();
        t->fn();
        if (fini)
            fini();
        fflush(NULL);
        _exit(crt_expect_failed);
    }
    int st = 0;
    while (waitpid(pid, &st, 0) < 0)
        ;
    if (WIFEXITED(st) && WEXITSTATUS(st) == 0) {
        printf("[PASS] %s::%s\n", t->suite, t->name);
        return 0;
    }
    if (WIFSIGNALED(st))
        printf("[FAIL] %s::%s: crashed with signal %d\n", t->suite, t->name, WTERMSIG(st));
    else
        printf("[FAIL] %s::%s: exit status %d\n", t->suite, t->name, WEXITSTATUS(st));
    return 1;
}

int main(int argc, char **argv);
__attribute__((weak)) int main(int argc, char **argv)
{
    const char *filter = NULL;
    for (int i = 1; i < argc; i++) {
        if (strcmp(argv[i], "--filter") == 0 && i + 1 < argc)
            filter = argv[++i];
        else if (strncmp(argv[i], "--filter=", 9) == 0)
            filter = argv[i] + 9;
        else if (strcmp(argv[i], "--jobs") == 0 && i + 1 < argc)
            i++;
    }
    int run = 0, failed = 0;
    for (const struct crt_test *t = crt_head; t != NULL; t = t->next) {
        if (t->opts.disabled || (filter != NULL && !crt_match(filter, t)))
            continue;
        run++;
        failed += crt_run(t);
    }
    printf("[====] Synthesis: Tested: %d | Passing: %d | Failing: %d | Crashing: 0\n", run,
           run - failed, failed);
    return failed != 0 || run == 0;
}

#endif /* KV_CRITERION_TSAN_H */
