/*
 * durtest.h - helpers for the durability tests: scratch directories, file
 * bytes, and a whole-store fingerprint to compare before and after a
 * reopen.
 */
#ifndef DURTEST_H
#define DURTEST_H

#include <criterion/criterion.h>
#include <dirent.h>
#include <stdbool.h>
#include <stddef.h>
#include <fcntl.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "kv.h"

#define DT_CHECK(cond, ...)                                                  \
    do {                                                                     \
        if (!(cond))                                                         \
            cr_assert_fail(__VA_ARGS__);                                     \
    } while (0)

/* A new empty scratch directory (removed by dt_rmdir). */
static inline char *dt_tmpdir(const char *tag)
{
    char *p = malloc(256);
    snprintf(p, 256, "/tmp/kvdur-%s-XXXXXX", tag);
    DT_CHECK(mkdtemp(p) != NULL, "mkdtemp failed");
    return p;
}

/* Removes the plain files in dir, then dir. */
static inline void dt_rmdir(const char *dir)
{
    DIR *d = opendir(dir);
    if (!d)
        return;
    struct dirent *e;
    while ((e = readdir(d))) {
        if (e->d_name[0] == '.')
            continue;
        unlinkat(dirfd(d), e->d_name, 0);
    }
    closedir(d);
    rmdir(dir);
}

/* Empties dir, keeping it. */
static inline void dt_clear(const char *dir)
{
    dt_rmdir(dir);
    mkdir(dir, 0755);
}

static inline unsigned char *dt_read(const char *path, size_t *len)
{
    FILE *f = fopen(path, "rb");
    DT_CHECK(f != NULL, "cannot open %s", path);
    fseek(f, 0, SEEK_END);
    long n = ftell(f);
    fseek(f, 0, SEEK_SET);
    unsigned char *p = malloc((size_t)n + 1);
    DT_CHECK(fread(p, 1, (size_t)n, f) == (size_t)n, "short read of %s", path);
    fclose(f);
    *len = (size_t)n;
    return p;
}

static inline void dt_write(const char *path, const void *p, size_t len)
{
    FILE *f = fopen(path, "wb");
    DT_CHECK(f != NULL, "cannot create %s", path);
    DT_CHECK(fwrite(p, 1, len, f) == len, "short write of %s", path);
    fclose(f);
}

/* Number of names in dir starting with prefix. */
static inline int dt_count(const char *dir, const char *prefix)
{
    DIR *d = opendir(dir);
    int n = 0;
    struct dirent *e;
    while (d && (e = readdir(d)))
        n += strncmp(e->d_name, prefix, strlen(prefix)) == 0;
    if (d)
        closedir(d);
    return n;
}

/* The first name in dir starting with prefix, as a full path. */
static inline char *dt_find(const char *dir, const char *prefix)
{
    DIR *d = opendir(dir);
    struct dirent *e;
    char *out = NULL;
    while (d && (e = readdir(d)) && !out)
        if (strncmp(e->d_name, prefix, strlen(prefix)) == 0) {
            out = malloc(512);
            snprintf(out, 512, "%s/%s", dir, e->d_name);
        }
    if (d)
        closedir(d);
    return out;
}

static inline kv_store *dt_open(const char *dir, int fsync)
{
    kv_config c;
    kv_config_init(&c, sizeof c);
    c.dir = dir;
    c.fsync = fsync;
    kv_store *s = NULL;
    int rc = kv_open_config(&c, &s);
    DT_CHECK(rc == KV_OK, "kv_open_config(%s): %s: %s", dir, kv_strerror(rc), kv_last_error());
    return s;
}

/* Reads the metrics every 100 ms, at most `seconds` long, until the
 * uint64_t field at offset (offsetof(kv_metrics, ...)) is non-zero;
 * returns the last reading. */
static inline kv_metrics dt_wait_metric(kv_store *s, size_t offset, int seconds)
{
    kv_metrics m;
    kv_metrics_read(s, &m, sizeof m);
    for (int i = 0; i < seconds * 10; i++) {
        uint64_t v;
        memcpy(&v, (const char *)&m + offset, sizeof v);
        if (v)
            break;
        usleep(100000);
        kv_metrics_read(s, &m, sizeof m);
    }
    return m;
}

/* Order-independent fingerprint of every key, value and version. */
typedef struct dt_print {
    uint64_t keys, sum, xor_;
} dt_print;

static inline uint64_t dt_mix(uint64_t h)
{
    h ^= h >> 33;
    h *= 0xff51afd7ed558ccdull;
    h ^= h >> 33;
    h *= 0xc4ceb9fe1a85ec53ull;
    return h ^ (h >> 33);
}

static inline int dt_print_fn(void *ctx, const void *key, size_t klen, const void *val,
                              size_t vlen, uint64_t version)
{
    dt_print *p = ctx;
    uint64_t h = 1469598103934665603ull;
    const unsigned char *b = key;
    for (size_t i = 0; i < klen; i++)
        h = (h ^ b[i]) * 1099511628211ull;
    h = (h ^ 0xff) * 1099511628211ull;
    b = val;
    for (size_t i = 0; i < vlen; i++)
        h = (h ^ b[i]) * 1099511628211ull;
    h = dt_mix(h ^ version * 0x9e3779b97f4a7c15ull);
    p->keys++;
    p->sum += h;
    p->xor_ ^= h;
    return 0;
}

static inline dt_print dt_fingerprint(kv_store *s)
{
    dt_print p = {0};
    uint64_t cur = 0;
    do
        cr_assert_eq(kv_scan(s, NULL, 0, cur, 1000, dt_print_fn, &p, &cur), KV_OK);
    while (cur);
    return p;
}

static inline int dt_print_eq(dt_print a, dt_print b)
{
    return a.keys == b.keys && a.sum == b.sum && a.xor_ == b.xor_;
}

#endif
