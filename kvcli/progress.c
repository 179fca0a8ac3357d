/*
 * progress.c - the progress line of kvcli's long transfers (export,
 * import) on standard error.
 *
 * Drawn only when stderr is a terminal, so logs and pipes never see it;
 * redrawn in place ("\r", padded with spaces over the previous text, so
 * it needs no terminal escape codes) at most every REDRAW_S seconds, the
 * first time only once the transfer has run that long (a quick one shows
 * nothing), and erased at the end, so the summary that follows stands
 * alone. It says what was done, how fast, and how long is left when the
 * total is known (the input file's size, or the number of keys).
 */
#include <inttypes.h>
#include <stdio.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "kvcli.h"

#define REDRAW_S 0.25

double kvcli_now(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

void kvcli_progress_start(kvcli_progress *p, const char *what)
{
    memset(p, 0, sizeof *p);
    p->what = what;
    p->on = isatty(STDERR_FILENO);
    p->start = p->last = kvcli_now();
}

/* "1.5 MiB" */
static void size_text(uint64_t b, char *out, size_t n)
{
    static const char *const unit[] = {"B", "KiB", "MiB", "GiB", "TiB"};
    double v = (double)b;
    int i = 0;
    while (v >= 1024 && i < 4)
        v /= 1024, i++;
    if (i == 0)
        snprintf(out, n, "%" PRIu64 " B", b);
    else
        snprintf(out, n, "%.1f %s", v, unit[i]);
}

/* "0:07", "12:34", "1:02:03" */
static void time_text(double s, char *out, size_t n)
{
    unsigned long t = s < 0 ? 0 : (unsigned long)(s + 0.5);
    if (t >= 3600)
        snprintf(out, n, "%lu:%02lu:%02lu", t / 3600, t / 60 % 60, t % 60);
    else
        snprintf(out, n, "%lu:%02lu", t / 60, t % 60);
}

static void draw(kvcli_progress *p, double now)
{
    char line[256], a[32], b[32], eta[32];
    double el = now - p->start;
    size_t n = (size_t)snprintf(line, sizeof line, "%s: %" PRIu64 " entries, ",
                                p->what, p->entries);
    size_text(p->bytes, a, sizeof a);
    if (p->total_bytes) {
        size_text(p->total_bytes, b, sizeof b);
        n += (size_t)snprintf(line + n, sizeof line - n, "%s of %s (%d%%)", a,
                              b, (int)(100.0 * (double)p->bytes /
                                       (double)p->total_bytes));
    } else {
        n += (size_t)snprintf(line + n, sizeof line - n, "%s", a);
    }
    if (el > 0)
        n += (size_t)snprintf(line + n, sizeof line - n, ", %.0f entries/s",
                              (double)p->entries / el);
    /* The time left, from whichever total is known, at the rate so far. */
    double left = -1;
    if (p->total_bytes && p->bytes)
        left = el * (double)(p->total_bytes - (p->bytes < p->total_bytes
                                                   ? p->bytes
                                                   : p->total_bytes)) /
               (double)p->bytes;
    else if (p->total_entries && p->entries)
        left = el * (double)(p->total_entries - (p->entries < p->total_entries
                                                     ? p->entries
                                                     : p->total_entries)) /
               (double)p->entries;
    if (left >= 0) {
        time_text(left, eta, sizeof eta);
        n += (size_t)snprintf(line + n, sizeof line - n, ", ETA %s", eta);
    }
    if (n >= sizeof line)
        n = sizeof line - 1;
    fprintf(stderr, "\r%s%*s", line,
            p->shown > n ? (int)(p->shown - n) : 0, "");
    fflush(stderr);
    p->shown = n;
    p->last = now;
}

void kvcli_progress_update(kvcli_progress *p, uint64_t entries, uint64_t bytes)
{
    p->entries = entries;
    p->bytes = bytes;
    if (!p->on)
        return;
    double now = kvcli_now();
    if (now - p->last >= REDRAW_S)
        draw(p, now);
}

void kvcli_progress_end(kvcli_progress *p)
{
    if (p->shown) {
        fprintf(stderr, "\r%*s\r", (int)p->shown, "");
        fflush(stderr);
        p->shown = 0;
    }
}

double kvcli_progress_seconds(const kvcli_progress *p)
{
    return kvcli_now() - p->start;
}
