/*
 * dur.h - helpers shared by the durability benchmarks (bench/durability/):
 * the keys and values every program and the Redis loader use, clocks,
 * medians, a latency histogram, resident memory, scratch directories.
 *
 * Keys are the key number as 12 decimal digits ("000000123456"): 12 bytes,
 * and exactly what redis-benchmark -r makes of __rand_int__, so Redis gets
 * and overwrites the same keys. Values are 64 printable bytes derived from
 * (key number, generation) by a hash, so they do not compress (Redis's RDB
 * compresses repetitive strings with LZF).
 */
#ifndef KVDUR_H
#define KVDUR_H

#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

#define DUR_KEY_LEN 12
#define DUR_VAL_LEN 64

/* Writes the 12-digit key of n (no terminator). */
void dur_key(uint64_t n, char out[DUR_KEY_LEN]);
/* Writes the 64-byte value of key n in generation gen (no terminator). */
void dur_value(uint64_t n, uint64_t gen, char out[DUR_VAL_LEN]);

/* splitmix64: a per-thread random number generator. */
static inline uint64_t dur_rand(uint64_t *s)
{
    uint64_t z = (*s += 0x9e3779b97f4a7c15ull);
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
    return z ^ (z >> 31);
}

/* CLOCK_MONOTONIC in nanoseconds. */
uint64_t dur_now_ns(void);
void dur_sleep_ms(unsigned ms);

/* Median of n values (sorts v in place); 0 for n == 0. */
double dur_median(double *v, size_t n);

/* A log-linear latency histogram in nanoseconds: 32 buckets per power of
 * two, so a percentile is within about 3% of the true value. One per
 * thread, merged by the main thread after the threads have been joined. */
#define DUR_HIST_BUCKETS (64 * 32)
typedef struct dur_hist {
    uint64_t n;
    uint64_t b[DUR_HIST_BUCKETS];
} dur_hist;
void dur_hist_add(dur_hist *h, uint64_t ns);
void dur_hist_merge(dur_hist *into, const dur_hist *from);
/* The q-quantile (0..1) in nanoseconds; 0 for an empty histogram. */
double dur_hist_quantile(const dur_hist *h, double q);

/* Resident memory of this process in bytes (/proc/self/statm). */
uint64_t dur_rss_self(void);

/* mkdtemp under base: "<base>/kvdur-<tag>-XXXXXX". Returns a malloc'ed
 * path or NULL (errno set). */
char *dur_mkdtemp(const char *base, const char *tag);
/* Removes path and everything below it. 0 or -1. */
int dur_rmtree(const char *path);
/* Total bytes of the regular files under path, and how many there are. */
uint64_t dur_tree_bytes(const char *path, unsigned *files);
/* Asks the kernel to drop the cached pages of every file under path
 * (fdatasync, then posix_fadvise DONTNEED): the next read comes from the
 * disk. Only these files' pages; nothing else in the page cache. */
void dur_drop_cache(const char *path);
/* The file system type of path, e.g. "ext4", or "?". */
const char *dur_fstype(const char *path);

/* Prints date, machine, kernel and load on f, each line led by prefix. */
void dur_print_machine(FILE *f, const char *prefix);

#endif
