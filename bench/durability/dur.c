/*
 * dur.c - helpers shared by the durability benchmarks: keys and values,
 * clocks, medians, the latency histogram, resident memory, scratch
 * directories (see dur.h).
 */
#include "dur.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <ftw.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/utsname.h>
#include <sys/vfs.h>
#include <time.h>
#include <unistd.h>

void dur_key(uint64_t n, char out[DUR_KEY_LEN])
{
    for (int i = DUR_KEY_LEN - 1; i >= 0; i--) {
        out[i] = (char)('0' + n % 10);
        n /= 10;
    }
}

void dur_value(uint64_t n, uint64_t gen, char out[DUR_VAL_LEN])
{
    static const char abc[] =
        "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    uint64_t s = n * 0x100000001b3ull ^ (gen << 40);
    for (int i = 0; i < DUR_VAL_LEN; i += 8) {
        uint64_t r = dur_rand(&s);
        for (int j = 0; j < 8; j++, r >>= 6)
            out[i + j] = abc[r & 63];
    }
}

uint64_t dur_now_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000000000ull + (uint64_t)ts.tv_nsec;
}

void dur_sleep_ms(unsigned ms)
{
    struct timespec ts = {ms / 1000, (long)(ms % 1000) * 1000000L};
    while (nanosleep(&ts, &ts) != 0 && errno == EINTR) {
    }
}

static int cmp_double(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}

double dur_median(double *v, size_t n)
{
    if (n == 0)
        return 0;
    qsort(v, n, sizeof *v, cmp_double);
    return n % 2 ? v[n / 2] : (v[n / 2 - 1] + v[n / 2]) / 2;
}

/* Bucket of v: below 32 one bucket per value; above, 32 per power of two. */
static unsigned hist_index(uint64_t v)
{
    if (v < 32)
        return (unsigned)v;
    unsigned msb = 63u - (unsigned)__builtin_clzll(v);
    return (msb - 4) * 32 + (unsigned)((v >> (msb - 5)) & 31);
}

/* The midpoint of bucket i's range. */
static double hist_value(unsigned i)
{
    if (i < 32)
        return i;
    unsigned msb = i / 32 + 4, sub = i % 32;
    double lo = (double)(1ull << msb) + (double)sub * (double)(1ull << (msb - 5));
    return lo + (double)(1ull << (msb - 5)) / 2;
}

void dur_hist_add(dur_hist *h, uint64_t ns)
{
    h->b[hist_index(ns)]++;
    h->n++;
}

void dur_hist_merge(dur_hist *into, const dur_hist *from)
{
    for (unsigned i = 0; i < DUR_HIST_BUCKETS; i++)
        into->b[i] += from->b[i];
    into->n += from->n;
}

double dur_hist_quantile(const dur_hist *h, double q)
{
    if (h->n == 0)
        return 0;
    uint64_t want = (uint64_t)(q * (double)h->n), seen = 0;
    if (want >= h->n)
        want = h->n - 1;
    for (unsigned i = 0; i < DUR_HIST_BUCKETS; i++) {
        seen += h->b[i];
        if (seen > want)
            return hist_value(i);
    }
    return hist_value(DUR_HIST_BUCKETS - 1);
}

uint64_t dur_rss_self(void)
{
    /* statm: one short read; the second field is resident pages. */
    char buf[128];
    int fd = open("/proc/self/statm", O_RDONLY);
    if (fd < 0)
        return 0;
    ssize_t n = read(fd, buf, sizeof buf - 1);
    close(fd);
    if (n <= 0)
        return 0;
    buf[n] = 0;
    unsigned long long size, resident;
    if (sscanf(buf, "%llu %llu", &size, &resident) != 2)
        return 0;
    return resident * (uint64_t)sysconf(_SC_PAGESIZE);
}

char *dur_mkdtemp(const char *base, const char *tag)
{
    size_t len = strlen(base) + strlen(tag) + 32;
    char *p = malloc(len);
    if (!p)
        return NULL;
    snprintf(p, len, "%s/kvdur-%s-XXXXXX", base, tag);
    if (!mkdtemp(p)) {
        free(p);
        return NULL;
    }
    return p;
}

static int rm_one(const char *path, const struct stat *st, int flag, struct FTW *ftw)
{
    (void)st;
    (void)flag;
    (void)ftw;
    return remove(path) == 0 || errno == ENOENT ? 0 : -1;
}

int dur_rmtree(const char *path)
{
    return nftw(path, rm_one, 16, FTW_DEPTH | FTW_PHYS) == 0 ? 0 : -1;
}

static uint64_t tree_bytes;
static unsigned tree_files;
static int count_one(const char *path, const struct stat *st, int flag, struct FTW *ftw)
{
    (void)path;
    (void)ftw;
    if (flag == FTW_F && S_ISREG(st->st_mode)) {
        tree_bytes += (uint64_t)st->st_size;
        tree_files++;
    }
    return 0;
}

uint64_t dur_tree_bytes(const char *path, unsigned *files)
{
    tree_bytes = 0;
    tree_files = 0;
    nftw(path, count_one, 16, FTW_PHYS);
    if (files)
        *files = tree_files;
    return tree_bytes;
}

static int drop_one(const char *path, const struct stat *st, int flag, struct FTW *ftw)
{
    (void)ftw;
    if (flag != FTW_F || !S_ISREG(st->st_mode))
        return 0;
    int fd = open(path, O_RDONLY);
    if (fd < 0)
        return 0;
    fdatasync(fd); /* dirty pages cannot be dropped */
    posix_fadvise(fd, 0, 0, POSIX_FADV_DONTNEED);
    close(fd);
    return 0;
}

void dur_drop_cache(const char *path)
{
    nftw(path, drop_one, 16, FTW_PHYS);
}

const char *dur_fstype(const char *path)
{
    struct statfs s;
    if (statfs(path, &s) != 0)
        return "?";
    switch ((unsigned long)s.f_type) {
    case 0xEF53: return "ext4";
    case 0x58465342: return "xfs";
    case 0x9123683E: return "btrfs";
    case 0x01021994: return "tmpfs";
    case 0x794c7630: return "overlayfs";
    default: return "other";
    }
}

void dur_print_machine(FILE *f, const char *prefix)
{
    time_t t = time(NULL);
    char date[64];
    strftime(date, sizeof date, "%Y-%m-%d %H:%M UTC", gmtime(&t));
    char model[256] = "?", line[512];
    FILE *c = fopen("/proc/cpuinfo", "r");
    while (c && fgets(line, sizeof line, c)) {
        char *p = strchr(line, ':');
        if (strncmp(line, "model name", 10) == 0 && p) {
            snprintf(model, sizeof model, "%s", p + 2);
            model[strcspn(model, "\n")] = 0;
            break;
        }
    }
    if (c)
        fclose(c);
    struct utsname u;
    uname(&u);
    double load[3] = {0, 0, 0};
    getloadavg(load, 3);
    fprintf(f, "%sdate: %s\n", prefix, date);
    fprintf(f, "%smachine: %ld CPUs, %s; kernel %s\n", prefix, sysconf(_SC_NPROCESSORS_ONLN),
            model, u.release);
    fprintf(f, "%sload average: %.2f %.2f %.2f\n", prefix, load[0], load[1], load[2]);
}
