/*
 * minicrit.h - a tiny stand-in for the part of Criterion the libkv tests
 * use, for ThreadSanitizer builds.
 *
 * Criterion cannot start under ThreadSanitizer: its sandbox (BoxFort) maps
 * an "inheritable arena" at an address inside TSan's shadow memory and
 * aborts with "Could not initialize inheritable arena: Resource temporarily
 * unavailable" (Criterion issue #274). The tests include this header instead
 * of <criterion/criterion.h> when KV_MINICRIT is defined; it provides Test(),
 * the cr_assert* macros they use and a main() that runs every test in its
 * own forked process, like Criterion does, so tests keep their isolation.
 *
 * Options: --filter SUITE/NAME runs one test (a trailing '*' matches any
 * suffix); Criterion's --jobs N and --full-stats are accepted and ignored.
 */
#ifndef KV_MINICRIT_H
#define KV_MINICRIT_H

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/types.h>
#include <sys/wait.h>
#include <unistd.h>

struct mc_test {
    const char *suite;
    const char *name;
    void (*fn)(void);
    struct mc_test *next;
};

static struct mc_test *mc_head, **mc_tail = &mc_head;

static inline void mc_register(struct mc_test *t)
{
    *mc_tail = t;
    mc_tail = &t->next;
}

/* Test(suite, name, .options...): the options (e.g. .timeout) are ignored;
 * ctest's TIMEOUT bounds the whole binary. */
#define Test(suite, name, ...)                                               \
    static void suite##_##name##_impl(void);                                 \
    static struct mc_test suite##_##name##_reg = {#suite, #name,             \
                                                  suite##_##name##_impl, NULL}; \
    __attribute__((constructor)) static void suite##_##name##_ctor(void)     \
    {                                                                        \
        mc_register(&suite##_##name##_reg);                                  \
    }                                                                        \
    static void suite##_##name##_impl(void)

__attribute__((format(printf, 4, 5), noreturn)) static inline void
mc_fail(const char *file, int line, const char *expr, const char *fmt, ...)
{
    va_list ap;
    fprintf(stderr, "[----] %s:%d: Assertion Failed: %s\n[----]  ", file, line, expr);
    va_start(ap, fmt);
    vfprintf(stderr, fmt, ap);
    va_end(ap);
    fprintf(stderr, "\n");
    fflush(stderr);
    _exit(1);
}

/* The message arguments are optional, as in Criterion; the leading " "
 * makes the format non-empty when none are given. */
#define cr_assert(cond, ...)                                                 \
    do {                                                                     \
        if (!(cond))                                                         \
            mc_fail(__FILE__, __LINE__, #cond, " " __VA_ARGS__);             \
    } while (0)
#define cr_assert_fail(...) mc_fail(__FILE__, __LINE__, "fail", " " __VA_ARGS__)
#define cr_assert_eq(a, b, ...) cr_assert((a) == (b), __VA_ARGS__)
#define cr_assert_neq(a, b, ...) cr_assert((a) != (b), __VA_ARGS__)
#define cr_assert_gt(a, b, ...) cr_assert((a) > (b), __VA_ARGS__)
#define cr_assert_geq(a, b, ...) cr_assert((a) >= (b), __VA_ARGS__)
#define cr_assert_lt(a, b, ...) cr_assert((a) < (b), __VA_ARGS__)
#define cr_assert_null(a, ...) cr_assert((a) == NULL, __VA_ARGS__)
#define cr_assert_not_null(a, ...) cr_assert((a) != NULL, __VA_ARGS__)
#define cr_assert_str_eq(a, b, ...) cr_assert(strcmp((a), (b)) == 0, __VA_ARGS__)
#define cr_log_info(...)                                                     \
    do {                                                                     \
        fprintf(stderr, "[----] " __VA_ARGS__);                              \
        fprintf(stderr, "\n");                                               \
    } while (0)

static inline int mc_match(const char *filter, const struct mc_test *t)
{
    char full[256];
    snprintf(full, sizeof full, "%s/%s", t->suite, t->name);
    size_t n = strlen(filter);
    if (n > 0 && filter[n - 1] == '*')
        return strncmp(full, filter, n - 1) == 0;
    return strcmp(full, filter) == 0;
}

int main(int argc, char **argv)
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
    for (struct mc_test *t = mc_head; t != NULL; t = t->next) {
        if (filter != NULL && !mc_match(filter, t))
            continue;
        run++;
        fflush(NULL);
        pid_t pid = fork();
        if (pid < 0) {
            perror("fork");
            return 2;
        }
        if (pid == 0) {
            t->fn();
            fflush(NULL);
            _exit(0);
        }
        int st = 0;
        while (waitpid(pid, &st, 0) < 0)
            ;
        if (WIFEXITED(st) && WEXITSTATUS(st) == 0) {
            printf("[PASS] %s::%s\n", t->suite, t->name);
        } else {
            failed++;
            if (WIFSIGNALED(st))
                printf("[FAIL] %s::%s: crashed with signal %d\n", t->suite, t->name,
                       WTERMSIG(st));
            else
                printf("[FAIL] %s::%s: exit status %d\n", t->suite, t->name,
                       WEXITSTATUS(st));
        }
    }
    printf("[====] Synthesis: Tested: %d | Passing: %d | Failing: %d\n", run,
           run - failed, failed);
    return failed != 0 || run == 0;
}

#endif /* KV_MINICRIT_H */
