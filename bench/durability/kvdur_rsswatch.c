/*
 * kvdur_rsswatch.c - the memory of a process and of the children it forks,
 * sampled every --interval-ms until SIGTERM/SIGINT or until the process
 * exits: run.sh watches redis-server through a BGSAVE with it.
 *
 * Each sample reads VmRSS (/proc/PID/status) and Pss (/proc/PID/smaps_rollup)
 * of the process and of each child listed in /proc/PID/task/TID/children.
 * RSS counts a page shared by parent and child (copy-on-write, not yet
 * copied) in both, so parent+child RSS overstates what the machine holds;
 * PSS splits shared pages between the sharers, so parent+child PSS is what
 * they really use. Both are reported.
 *
 * Summary: "before" = the samples before the first child appeared (median
 * parent RSS and PSS); "during" = samples with a child (peak of parent+child
 * RSS and of parent+child PSS, and the ratios to before).
 *
 *   kvdur_rsswatch --pid PID [--interval-ms 10]
 */
#include <dirent.h>
#include <signal.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "dur.h"

static volatile sig_atomic_t done;
static void on_signal(int sig)
{
    (void)sig;
    done = 1;
}

/* The value in kB of the line "<field>: N kB" in a /proc file, in bytes;
 * -1 if the file cannot be read (the process is gone). */
static long long proc_field(int pid, const char *file, const char *field)
{
    char path[64], line[256];
    snprintf(path, sizeof path, "/proc/%d/%s", pid, file);
    FILE *f = fopen(path, "r");
    if (!f)
        return -1;
    size_t fl = strlen(field);
    long long v = -1;
    while (fgets(line, sizeof line, f))
        if (strncmp(line, field, fl) == 0 && line[fl] == ':') {
            v = atoll(line + fl + 1) * 1024;
            break;
        }
    fclose(f);
    return v;
}

/* Children of every thread of pid, up to max. */
static int children(int pid, int *out, int max)
{
    char path[64];
    snprintf(path, sizeof path, "/proc/%d/task", pid);
    DIR *d = opendir(path);
    if (!d)
        return 0;
    int n = 0;
    struct dirent *e;
    while ((e = readdir(d)) && n < max) {
        if (e->d_name[0] == '.')
            continue;
        char cpath[320];
        snprintf(cpath, sizeof cpath, "/proc/%d/task/%s/children", pid, e->d_name);
        FILE *f = fopen(cpath, "r");
        if (!f)
            continue;
        int c;
        while (n < max && fscanf(f, "%d", &c) == 1)
            out[n++] = c;
        fclose(f);
    }
    closedir(d);
    return n;
}

typedef struct sample {
    double rss, pss, child_rss, child_pss;
    bool child;
} sample;

int main(int argc, char **argv)
{
    int pid = 0;
    unsigned interval_ms = 10;
    for (int i = 1; i < argc; i++) {
        if (!strcmp(argv[i], "--pid") && i + 1 < argc) pid = atoi(argv[++i]);
        else if (!strcmp(argv[i], "--interval-ms") && i + 1 < argc)
            interval_ms = (unsigned)atoi(argv[++i]);
        else pid = 0, i = argc;
    }
    if (pid <= 0 || interval_ms == 0) {
        fprintf(stderr, "usage: kvdur_rsswatch --pid PID [--interval-ms MS]\n");
        return 2;
    }
    struct sigaction sa = {0};
    sa.sa_handler = on_signal; /* no SA_RESTART: nanosleep returns at once */
    sigaction(SIGTERM, &sa, NULL);
    sigaction(SIGINT, &sa, NULL);

    size_t cap = 1024, n = 0;
    sample *s = malloc(cap * sizeof *s);
    uint64_t first_child_ns = 0, last_child_ns = 0, t_start = dur_now_ns();
    while (!done && s) {
        sample x = {0};
        long long rss = proc_field(pid, "status", "VmRSS");
        long long pss = proc_field(pid, "smaps_rollup", "Pss");
        if (rss < 0)
            break; /* gone */
        x.rss = (double)rss;
        x.pss = pss < 0 ? 0 : (double)pss;
        int kids[16], nk = children(pid, kids, 16);
        for (int k = 0; k < nk; k++) {
            long long cr = proc_field(kids[k], "status", "VmRSS");
            long long cp = proc_field(kids[k], "smaps_rollup", "Pss");
            if (cr < 0)
                continue;
            x.child = true;
            x.child_rss += (double)cr;
            x.child_pss += cp < 0 ? 0 : (double)cp;
        }
        if (x.child) {
            last_child_ns = dur_now_ns();
            if (!first_child_ns)
                first_child_ns = last_child_ns;
        }
        if (n == cap) {
            sample *g = realloc(s, 2 * cap * sizeof *s);
            if (!g)
                break;
            s = g;
            cap *= 2;
        }
        s[n++] = x;
        dur_sleep_ms(interval_ms);
        if (done)
            break;
    }
    if (!s)
        return 1;
    double *rss_b = calloc(n + 1, sizeof(double)), *pss_b = calloc(n + 1, sizeof(double));
    size_t nb = 0, nd = 0;
    double peak_rss = 0, peak_pss = 0, peak_child_rss = 0, peak_child_pss = 0;
    bool seen_child = false;
    for (size_t i = 0; i < n; i++) {
        seen_child |= s[i].child;
        if (!seen_child) {
            rss_b[nb] = s[i].rss;
            pss_b[nb++] = s[i].pss;
        } else if (s[i].child) {
            nd++;
            if (s[i].rss + s[i].child_rss > peak_rss) peak_rss = s[i].rss + s[i].child_rss;
            if (s[i].pss + s[i].child_pss > peak_pss) peak_pss = s[i].pss + s[i].child_pss;
            if (s[i].child_rss > peak_child_rss) peak_child_rss = s[i].child_rss;
            if (s[i].child_pss > peak_child_pss) peak_child_pss = s[i].child_pss;
        }
    }
    double rb = dur_median(rss_b, nb), pb = dur_median(pss_b, nb);
    const double mib = 1 << 20;
    printf("watched pid %d for %.1f s, %zu samples every %u ms; %zu before a child appeared, "
           "%zu with a child (%.0f ms from first to last)\n",
           pid, (double)(dur_now_ns() - t_start) / 1e9, n, interval_ms, nb, nd,
           (double)(last_child_ns - first_child_ns) / 1e6);
    printf("before: median RSS %.1f MiB, PSS %.1f MiB\n", rb / mib, pb / mib);
    printf("during: peak parent+child RSS %.1f MiB (child alone %.1f), ratio %.3f; peak "
           "parent+child PSS %.1f MiB (child alone %.1f), ratio %.3f\n",
           peak_rss / mib, peak_child_rss / mib, rb > 0 ? peak_rss / rb : 0, peak_pss / mib,
           peak_child_pss / mib, pb > 0 ? peak_pss / pb : 0);
    printf("RESULT before_rss_mib %.1f peak_rss_mib %.1f rss_ratio %.3f before_pss_mib %.1f "
           "peak_pss_mib %.1f pss_ratio %.3f child_samples %zu\n",
           rb / mib, peak_rss / mib, rb > 0 ? peak_rss / rb : 0, pb / mib, peak_pss / mib,
           pb > 0 ? peak_pss / pb : 0, nd);
    free(s);
    free(rss_b);
    free(pss_b);
    return nd ? 0 : 1;
}
