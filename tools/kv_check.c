/*
 * kv_check.c - kv-check, the check tool for libkv data directories.
 *
 *   kv-check DIR              verify every checksum of DIR's snapshots and
 *                             log segments and print what they hold
 *   kv-check --repair DIR     also cut a torn tail off the newest segment
 *                             (what a crash leaves; opening the store does
 *                             the same) - only while no process has DIR
 *   kv-check --restore FILE DIR
 *                             make DIR (new or empty) a data directory
 *                             holding the backup FILE (a snapshot file,
 *                             e.g. one `kvcli snapshot` made)
 *
 * Exit codes: 0 valid (a torn tail is reported, it is not damage), 1 damage
 * found (the message names the file and offset), 2 usage, 3 cannot read
 * or write (missing directory, I/O error), 4 DIR is in use (--repair).
 *
 * The files are read with the library's own readers (files.h) and the
 * store is rebuilt in memory with its own recovery (durable.h), so what
 * kv-check accepts is exactly what kv_open_config accepts.
 */
#include <inttypes.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "durable.h"
#include "files.h"
#include "io.h"
#include "kv.h"
#include "log.h"

enum { EXIT_VALID = 0, EXIT_DAMAGED = 1, EXIT_USAGE = 2, EXIT_IO = 3, EXIT_BUSY = 4 };

static void usage(FILE *f)
{
    fprintf(f, "Usage: kv-check [--repair] DIR\n"
               "       kv-check --restore BACKUP DIR\n"
               "\n"
               "Verifies every checksum of a libkv/kvd data directory and prints\n"
               "its snapshots, log segments, keys and revisions.\n"
               "  --repair    also cut a torn tail (left by a crash) off the log\n"
               "              (DIR must not be open in kvd or another program)\n"
               "  --restore   make DIR, new or empty, hold the backup file BACKUP\n"
               "              (a snapshot file, e.g. from 'kvcli snapshot')\n"
               "Exit codes: 0 valid, 1 damaged, 2 usage, 3 I/O error, 4 DIR in use.\n");
}

static int status_exit(int rc)
{
    switch (rc) {
    case KV_OK: return EXIT_VALID;
    case KV_CORRUPT: return EXIT_DAMAGED;
    case KV_LOCKED: return EXIT_BUSY;
    default: return EXIT_IO;
    }
}

static uint64_t file_size(const char *path)
{
    struct stat st;
    return stat(path, &st) == 0 ? (uint64_t)st.st_size : 0;
}

/* One line per file; returns the worst status seen. */
static int list_files(const char *dir)
{
    kv__dir_list dl;
    int rc = kv__dir_list_read(dir, NULL, &dl);
    if (rc != KV_OK) {
        fprintf(stderr, "kv-check: cannot read %s: %s\n", dir, kv_strerror(rc));
        return rc;
    }
    int worst = KV_OK;
    char path[4096], err[512];
    for (size_t i = 0; i < dl.nsnaps; i++) {
        snprintf(path, sizeof path, "%s/snap-%016" PRIx64 ".kvs", dir, dl.snaps[i]);
        kv__snap_info si;
        err[0] = '\0';
        int s = kv__snap_read(path, NULL, NULL, &si, err, sizeof err);
        if (s == KV_OK)
            printf("snapshot %s: revision %" PRIu64 " (pass from %" PRIu64 "), %" PRIu64
                   " entries, %" PRIu64 " log records, %" PRIu64 " bytes: ok\n",
                   path, si.end_rev, si.start_rev, si.entries, si.records, file_size(path));
        else
            printf("snapshot %s: DAMAGED: %s\n", path, err[0] ? err : kv_strerror(s));
        if (s != KV_OK && worst == KV_OK)
            worst = s;
    }
    for (size_t i = 0; i < dl.nsegs; i++) {
        snprintf(path, sizeof path, "%s/log-%016" PRIx64 ".kvl", dir, dl.segs[i]);
        kv__seg_info gi;
        err[0] = '\0';
        bool last = i + 1 == dl.nsegs;
        int s = kv__seg_read(path, last, NULL, NULL, &gi, err, sizeof err);
        if (s != KV_OK) {
            printf("log %s: DAMAGED: %s\n", path, err[0] ? err : kv_strerror(s));
            if (worst == KV_OK)
                worst = s;
            continue;
        }
        if (gi.header_torn) {
            printf("log %s: a segment whose header never reached the disk (%" PRIu64
                   " bytes): torn, removed at the next open\n",
                   path, gi.file_size);
            continue;
        }
        printf("log %s: ", path);
        if (gi.records)
            printf("revisions %" PRIu64 "..%" PRIu64 ", ", gi.first_rev, gi.last_rev);
        else
            printf("no records (starts at revision %" PRIu64 "), ", gi.first_rev);
        printf("%" PRIu64 " records, %" PRIu64 " bytes", gi.records, gi.valid_end);
        if (!gi.torn && gi.file_size > gi.valid_end)
            printf(" (then %" PRIu64 " bytes of zeros written ahead)", gi.file_size - gi.valid_end);
        if (gi.torn)
            printf(": torn tail of %" PRIu64 " bytes at offset %" PRIu64
                   " (a crash during a write; cut off at the next open)\n",
                   gi.file_size - gi.valid_end, gi.valid_end);
        else
            printf(": ok\n");
    }
    if (dl.nsnaps == 0 && dl.nsegs == 0)
        printf("no snapshot and no log: an empty store\n");
    kv__dir_list_free(&dl);
    return worst;
}

static int check(const char *dir, bool repair)
{
    struct stat st;
    if (stat(dir, &st) != 0 || !S_ISDIR(st.st_mode)) {
        fprintf(stderr, "kv-check: %s is not a directory\n", dir);
        return EXIT_IO;
    }
    int lock_fd = -1;
    if (repair) {
        int rc = kv__lock_dir(&kv__io_posix, dir, &lock_fd);
        if (rc != KV_OK) {
            fprintf(stderr, "kv-check: %s; stop it before --repair\n", kv_last_error());
            return status_exit(rc);
        }
    }
    printf("directory %s\n", dir);
    int files = list_files(dir);

    /* Rebuild the store in memory, exactly as an open would. */
    kv_store *s;
    kv_options o;
    kv_options_init(&o);
    o.initial_capacity = kv__capacity_for(dir, o.initial_capacity);
    int rc = kv_open(&o, &s);
    if (rc != KV_OK) {
        fprintf(stderr, "kv-check: %s\n", kv_strerror(rc));
        return EXIT_IO;
    }
    kv_recovery r;
    char *tail = NULL;
    uint64_t tail_size, tail_first;
    rc = kv__recover(s, dir, &kv__io_posix, repair, &r, &tail, &tail_size, &tail_first);
    free(tail);
    kv_close(s);
    if (lock_fd >= 0)
        close(lock_fd);
    if (rc != KV_OK) {
        printf("store: cannot be opened: %s\n", kv_last_error());
        fprintf(stderr, "kv-check: %s is damaged: %s\n", dir, kv_last_error());
        return status_exit(rc);
    }
    printf("store: %" PRIu64 " keys, revision %" PRIu64, r.keys, r.revision);
    if (r.snapshot_revision)
        printf(" (snapshot at %" PRIu64 ", then %" PRIu64 " log records)", r.snapshot_revision,
               r.records);
    else
        printf(" (%" PRIu64 " log records, no snapshot)", r.records);
    printf("\n");
    if (r.torn_bytes)
        printf("%s %" PRIu64 " bytes of a torn write at the end of the log\n",
               repair ? "cut off" : "an open will cut off", r.torn_bytes);
    if (files != KV_OK) {
        /* Damage the store does not read (e.g. an older snapshot). */
        printf("damaged files found\n");
        return EXIT_DAMAGED;
    }
    printf("ok\n");
    return EXIT_VALID;
}

int main(int argc, char **argv)
{
    if (argc == 2 && (strcmp(argv[1], "--help") == 0 || strcmp(argv[1], "-h") == 0)) {
        usage(stdout);
        return EXIT_VALID;
    }
    if (argc == 2 && argv[1][0] != '-')
        return check(argv[1], false);
    if (argc == 3 && strcmp(argv[1], "--repair") == 0)
        return check(argv[2], true);
    if (argc == 4 && strcmp(argv[1], "--restore") == 0) {
        int rc = kv_restore(argv[2], argv[3]);
        if (rc != KV_OK) {
            fprintf(stderr, "kv-check: %s\n", kv_last_error()[0] ? kv_last_error() : kv_strerror(rc));
            return rc == KV_INVALID_ARGUMENT ? EXIT_USAGE : status_exit(rc);
        }
        printf("restored %s into %s\n", argv[2], argv[3]);
        return check(argv[3], false);
    }
    fprintf(stderr, "kv-check: bad arguments (see kv-check --help)\n");
    usage(stderr);
    return EXIT_USAGE;
}
