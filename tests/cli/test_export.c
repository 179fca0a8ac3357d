/*
 * test_export.c - kvcli export and import against real kvds: round trips
 * between two servers in both formats (binary values; keys with spaces,
 * newlines, a leading '-', bytes that are not UTF-8), --prefix, pages and
 * batches, the summary, bad input named by line or record with the
 * entries before it kept, a batch the server refuses, --dry-run, and the
 * progress line: on a terminal (pseudo-terminal) only.
 */
#include <criterion/criterion.h>
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <pty.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "harness.h"

static cli_server srv, srv2;

static void setup(void)
{
    cli_server_start(&srv, NULL);
    cli_server_start(&srv2, NULL);
}

static void teardown(void)
{
    cli_server_stop(&srv2);
    cli_server_stop(&srv);
}

TestSuite(export, .init = setup, .fini = teardown, .timeout = 90);

/* The entries of the round trips; "bin" is every byte 0..255. */
static const struct {
    const char *key, *val, *key_b64, *val_b64;
} entries[] = {
    {"plain", "value", "cGxhaW4=", "dmFsdWU="},
    {"with space", "two words", "d2l0aCBzcGFjZQ==", "dHdvIHdvcmRz"},
    {"new\nline", "a\nb", "bmV3CmxpbmU=", "YQpi"},
    {"-lead", "dash", "LWxlYWQ=", "ZGFzaA=="},
    {"empty", "", "ZW1wdHk=", ""},
    {"k\xff\x01", "x", "a/8B", "eA=="},
};
#define NENTRIES (sizeof entries / sizeof entries[0])

/* A file name in srv's private directory (removed with it). */
static const char *tmp_path(const char *name)
{
    static char path[4][160];
    static int next;
    char *p = path[next++ % 4];
    snprintf(p, sizeof path[0], "%s/%s", srv.dir, name);
    return p;
}

static void expect_ok(cli_result *r)
{
    cr_assert_eq(r->rc, 0, "rc %d, err: %s", r->rc, r->err);
    cli_result_free(r);
}

/* Stores the entries (and "bin") on srv. */
static void load_entries(void)
{
    for (size_t i = 0; i < NENTRIES; i++) {
        cli_result r = CLI(&srv, "set", "--", entries[i].key, entries[i].val);
        expect_ok(&r);
    }
    unsigned char all[256];
    for (int i = 0; i < 256; i++)
        all[i] = (unsigned char)i;
    const char *f = tmp_path("all.bin");
    cli_write_file(f, all, sizeof all);
    cli_result r = CLI(&srv, "set", "bin", "--file", f);
    expect_ok(&r);
}

/* Asserts that srv2 holds exactly the entries and "bin". */
static void check_entries_on(const cli_server *s)
{
    for (size_t i = 0; i < NENTRIES; i++) {
        cli_result r = CLI(s, "get", "--raw", "--", entries[i].key);
        cr_assert_eq(r.rc, 0, "%s: %s", entries[i].key, r.err);
        cr_assert_eq(r.outlen, strlen(entries[i].val), "%s", entries[i].key);
        cr_assert_eq(memcmp(r.out, entries[i].val, r.outlen), 0);
        cli_result_free(&r);
    }
    cli_result r = CLI(s, "get", "--raw", "bin");
    cr_assert_eq(r.outlen, 256);
    for (int i = 0; i < 256; i++)
        cr_assert_eq((unsigned char)r.out[i], i);
    cli_result_free(&r);
    r = CLI(s, "--json", "metrics");
    json_t *j = cli_json(&r);
    cr_assert_eq(json_integer_value(json_object_get(j, "keys")), NENTRIES + 1);
    json_decref(j);
    cli_result_free(&r);
}

static size_t count_lines(const char *s)
{
    size_t n = 0;
    for (; *s; s++)
        n += *s == '\n';
    return n;
}

/* "exported N entries (B bytes of keys and values; 0 with an expiry
 * time) in S s\n", alone. */
static void expect_export_summary(const cli_result *r, unsigned long long n)
{
    unsigned long long got = 0, bytes = 0;
    double secs = -1;
    char tail[8] = "";
    unsigned long long expiring = 1;
    cr_assert_eq(sscanf(r->err, "exported %llu entr%*[iesy] (%llu bytes of keys and"
                        " values; %llu with an expiry time) in %lf s%1[\n]", &got, &bytes,
                        &expiring, &secs, tail), 5,
                 "stderr: %s", r->err);
    cr_assert_eq(expiring, 0, "stderr: %s", r->err);
    cr_assert_eq(got, n, "stderr: %s", r->err);
    cr_assert_eq(count_lines(r->err), 1, "one line, no progress: %s", r->err);
    cr_assert_null(strchr(r->err, '\r'), "a progress line without a terminal");
}

Test(export, json_lines_round_trip_to_another_server)
{
    load_entries();
    cli_result r = CLI(&srv, "export");
    cr_assert_eq(r.rc, 0, "err: %s", r.err);
    expect_export_summary(&r, NENTRIES + 1);
    cr_assert_eq(count_lines(r.out), NENTRIES + 1, "out: %s", r.out);
    /* One object per line, key and value always base64, in this order. */
    for (size_t i = 0; i < NENTRIES; i++) {
        char want[128];
        snprintf(want, sizeof want, "{\"key\":\"%s\",\"value\":\"%s\",\"version\":",
                 entries[i].key_b64, entries[i].val_b64);
        cr_assert_not_null(strstr(r.out, want), "no %s in:\n%s", want, r.out);
    }
    for (char *l = r.out; *l; l = strchr(l, '\n') + 1) {
        json_error_t e;
        json_t *j = json_loadb(l, (size_t)(strchr(l, '\n') - l), 0, &e);
        cr_assert(json_is_object(j), "line: %.80s", l);
        cr_assert_eq(json_object_size(j), 3);
        cr_assert(json_integer_value(json_object_get(j, "version")) > 0);
        json_decref(j);
    }
    const char *file = tmp_path("all.jsonl");
    cli_write_file(file, r.out, r.outlen);
    cli_result_free(&r);

    r = CLI(&srv2, "import", file);
    cr_assert_eq(r.rc, 0, "err: %s", r.err);
    unsigned long long n = 0, bytes = 0;
    double secs = -1;
    cr_assert_eq(sscanf(r.out, "imported %llu entries (%llu bytes of keys and values)"
                        " in %lf s\n", &n, &bytes, &secs), 3, "out: %s", r.out);
    cr_assert_eq(n, NENTRIES + 1);
    size_t want_bytes = 3 + 256;
    for (size_t i = 0; i < NENTRIES; i++)
        want_bytes += strlen(entries[i].key) + strlen(entries[i].val);
    cr_assert_eq(bytes, want_bytes);
    cr_assert_geq(secs, 0);
    cr_assert_str_eq(r.err, "", "no progress line without a terminal");
    cli_result_free(&r);
    check_entries_on(&srv2);

    /* Standard input works too, and importing again changes nothing. */
    r = CLI(&srv, "export");
    cli_result r2 = cli_run_srv(&srv2, r.out, r.outlen,
                                (const char *const[]){"import", "-", NULL});
    cr_assert_eq(r2.rc, 0, "err: %s", r2.err);
    cli_result_free(&r2);
    cli_result_free(&r);
    check_entries_on(&srv2);
}

Test(export, binary_format_round_trip)
{
    load_entries();
    cli_result r = CLI(&srv, "export", "--format", "bin");
    cr_assert_eq(r.rc, 0, "err: %s", r.err);
    expect_export_summary(&r, NENTRIES + 1);
    cr_assert_geq(r.outlen, 12 + 9);
    cr_assert_eq(memcmp(r.out, "KVEXPORT\0\0\0\2", 12), 0, "the magic and version 2");
    /* The end record: 'Z' and the count, big-endian. */
    const unsigned char *end = (const unsigned char *)r.out + r.outlen - 9;
    cr_assert_eq(end[0], 'Z');
    cr_assert_eq(end[8], NENTRIES + 1);
    const char *file = tmp_path("all.kvx");
    cli_write_file(file, r.out, r.outlen);
    cli_result_free(&r);

    /* The format is recognised; --format only checks it. */
    r = CLI(&srv2, "import", "--format", "json", file);
    cr_assert_eq(r.rc, 2);
    cli_assert_one_error_line(&r);
    cli_result_free(&r);
    r = CLI(&srv2, "import", "--format", "bin", file, "--json");
    cr_assert_eq(r.rc, 0, "err: %s", r.err);
    json_t *j = cli_json(&r);
    cr_assert_eq(json_integer_value(json_object_get(j, "entries")), NENTRIES + 1);
    cr_assert_eq(json_integer_value(json_object_get(j, "batches")), 1);
    cr_assert(json_is_number(json_object_get(j, "seconds")));
    json_decref(j);
    cli_result_free(&r);
    check_entries_on(&srv2);

    /* Truncated: the entries before the cut are imported, the error says
     * which record. */
    r = CLI(&srv, "export", "--format", "bin", "--prefix", "plain");
    size_t cut = r.outlen - 9 - 2; /* inside the only entry's value */
    cli_write_file(file, r.out, cut);
    cli_result_free(&r);
    r = CLI(&srv2, "import", file);
    cr_assert_eq(r.rc, 2);
    cli_assert_one_error_line(&r);
    cr_assert_not_null(strstr(r.err, "record 1 "), "err: %s", r.err);
    cr_assert_not_null(strstr(r.err, "truncated"), "err: %s", r.err);
    cli_result_free(&r);
}

Test(export, prefix_pages_and_batches)
{
    /* 700 entries: several SCAN pages out, 14 batches of 50 in. */
    const char *seed = tmp_path("seed.jsonl");
    FILE *f = fopen(seed, "w");
    cr_assert_not_null(f);
    for (int i = 0; i < 700; i++) {
        /* "a:NNN" and "b:NNN" with the value "v", in base64 by hand: 5
         * bytes are one group of 3 and a tail of 2 */
        char key[8];
        snprintf(key, sizeof key, "%c:%03d", i % 2 ? 'b' : 'a', i % 1000);
        static const char b64[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
        char enc[16];
        const unsigned char *p = (const unsigned char *)key;
        /* 5 bytes: one full group and a 2-byte tail */
        unsigned v = (unsigned)p[0] << 16 | (unsigned)p[1] << 8 | p[2];
        unsigned t = (unsigned)p[3] << 16 | (unsigned)p[4] << 8;
        snprintf(enc, sizeof enc, "%c%c%c%c%c%c%c=", b64[v >> 18], b64[v >> 12 & 63],
                 b64[v >> 6 & 63], b64[v & 63], b64[t >> 18], b64[t >> 12 & 63],
                 b64[t >> 6 & 63]);
        fprintf(f, "{\"key\":\"%s\",\"value\":\"dg==\"}\n", enc);
    }
    cr_assert_eq(fclose(f), 0);
    cli_result r = CLI(&srv, "import", seed, "--json");
    cr_assert_eq(r.rc, 0, "err: %s", r.err);
    json_t *j = cli_json(&r);
    cr_assert_eq(json_integer_value(json_object_get(j, "entries")), 700);
    cr_assert_eq(json_integer_value(json_object_get(j, "batches")), 14);
    json_decref(j);
    cli_result_free(&r);
    r = CLI(&srv, "get", "a:000", "b:699");
    cr_assert_str_eq(r.out, "a:000: v\nb:699: v\n");
    cli_result_free(&r);

    r = CLI(&srv, "export", "--prefix", "b:");
    cr_assert_eq(r.rc, 0, "err: %s", r.err);
    expect_export_summary(&r, 350);
    cr_assert_eq(count_lines(r.out), 350);
    cr_assert_null(strstr(r.out, "\"key\":\"YT"), "an a: key ('a' is Y...)");
    cli_result r2 = cli_run_srv(&srv2, r.out, r.outlen,
                                (const char *const[]){"import", "-", "--batch", "7", "--json", NULL});
    cr_assert_eq(r2.rc, 0, "err: %s", r2.err);
    j = cli_json(&r2);
    cr_assert_eq(json_integer_value(json_object_get(j, "batches")), 50);
    json_decref(j);
    cli_result_free(&r2);
    cli_result_free(&r);
    r = CLI(&srv2, "scan");
    cr_assert_eq(count_lines(r.out), 350);
    cli_result_free(&r);

    /* A prefix nothing has: an empty export, which imports as nothing. */
    r = CLI(&srv, "export", "--prefix", "zzz");
    cr_assert_eq(r.rc, 0);
    cr_assert_str_eq(r.out, "");
    expect_export_summary(&r, 0);
    cli_result_free(&r);
}

/* A bad line stops the import: named, exit 2, the entries before it in,
 * nothing after it. */
Test(export, malformed_input_names_the_line)
{
    const char *file = tmp_path("bad.jsonl");
    static const char text[] =
        "{\"key\":\"YQ==\",\"value\":\"MQ==\"}\n"   /* 1: a=1 */
        "\n"                                        /* 2: blank */
        "{\"key\":\"Yg==\",\"value\":\"Mg==\",\"version\":9,\"x\":1}\n" /* 3: b=2 */
        "{\"key\":\"Yw==\",\"value\":\"Mw==\"}\n"   /* 4: c=3 */
        "{\"key\":\"ZA==\",\"value\":\"NA==\"\n"    /* 5: broken */
        "{\"key\":\"ZQ==\",\"value\":\"NQ==\"}\n";  /* 6: e=5 */
    cli_write_file(file, text, sizeof text - 1);
    /* Dry run first: nothing imported, the same error. */
    cli_result r = CLI(&srv, "import", "--dry-run", file);
    cr_assert_eq(r.rc, 2);
    cli_assert_one_error_line(&r);
    cr_assert_not_null(strstr(r.err, "line 5: invalid JSON"), "err: %s", r.err);
    cli_result_free(&r);
    r = CLI(&srv, "get", "a");
    cr_assert_eq(r.rc, 1, "--dry-run imported");
    cli_result_free(&r);

    r = CLI(&srv, "import", "--batch", "2", file);
    cr_assert_eq(r.rc, 2);
    cli_assert_one_error_line(&r);
    cr_assert(strncmp(r.err, "kvcli: import: line 5: invalid JSON", 35) == 0,
              "err: %s", r.err);
    cr_assert_not_null(strstr(r.err, "the 3 entries before it were imported,"
                                     " nothing from there on"), "err: %s", r.err);
    cr_assert_str_eq(r.out, "");
    cli_result_free(&r);
    r = CLI(&srv, "get", "a", "b", "c", "e");
    cr_assert_str_eq(r.out, "a: 1\nb: 2\nc: 3\ne: (not found)\n");
    cli_result_free(&r);

    /* Each kind of bad entry, with its line. */
#define BAD(in, want) {in, sizeof in - 1, want}
    const struct {
        const char *in;
        size_t len;
        const char *want;
    } bad[] = {
        BAD("not json\n", "line 1: invalid JSON"),
        BAD("\n[1,2]\n", "line 2: not a JSON object"),
        BAD("{\"value\":\"\"}\n", "line 1: no \"key\""),
        BAD("{\"key\":\"YQ==\"}\n", "line 1: no \"value\""),
        BAD("{\"key\":\"a\",\"value\":\"\"}\n", "line 1: \"key\" is not base64"),
        BAD("{\"key\":\"YQ==\",\"value\":7}\n", "line 1: \"value\" is not a string"),
        BAD("{\"key\":\"\",\"value\":\"\"}\n", "line 1: the key is empty"),
        BAD("KVEXPORX", "neither JSON lines nor kvcli's binary format"),
        BAD("KVEXPORT\0\0\0\3", "binary format version 3"),
        BAD("KVEXPORT\0\0\0\0", "binary format version 0"),
        BAD("KVEXPORT\0\0\0\2", "record 1 at byte 12: the input ends"),
        BAD("KVEXPORT\0\0\0\1", "record 1 at byte 12: the input ends"),
        BAD("KVEXPORT\0\0\0\1Z\0\0\0\0\0\0\0\1", "counts 1 entries, the file holds 0"),
        BAD("KVEXPORT\0\0\0\1Q", "record 1 at byte 12: unknown record type 0x51"),
        BAD("KVEXPORT\0\0\0\1Z\0\0\0\0\0\0\0\0x", "data after the end record"),
    };
#undef BAD
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        r = cli_run_srv(&srv, bad[i].in, bad[i].len, (const char *const[]){"import", "-", NULL});
        cr_expect_eq(r.rc, 2, "case %zu: rc %d", i, r.rc);
        cr_expect_not_null(strstr(r.err, bad[i].want), "case %zu: %s", i, r.err);
        cli_assert_one_error_line(&r);
        cli_result_free(&r);
    }
    r = CLI(&srv, "import", tmp_path("missing.jsonl"));
    cr_assert_eq(r.rc, 2);
    cr_assert_not_null(strstr(r.err, "cannot open"), "err: %s", r.err);
    cli_result_free(&r);
    r = CLI(&srv, "import");
    cr_assert_eq(r.rc, 2);
    cli_result_free(&r);
    r = CLI(&srv, "export", "--format", "xml");
    cr_assert_eq(r.rc, 2);
    cli_result_free(&r);
}

/* A batch the server refuses is not applied; the earlier ones stay. */
Test(export, refused_batch_keeps_the_earlier_ones)
{
    const char *file = tmp_path("big.jsonl");
    FILE *f = fopen(file, "w");
    cr_assert_not_null(f);
    fputs("{\"key\":\"YQ==\",\"value\":\"MQ==\"}\n", f);
    fputs("{\"key\":\"Yg==\",\"value\":\"Mg==\"}\n", f);
    /* A key of 70 000 bytes ('k' * 70000 is "a2tr" repeated): over kvd's
     * 64 KiB key limit. */
    fputs("{\"key\":\"", f);
    for (int i = 0; i < 70000 / 3; i++)
        fputs("a2tr", f);
    fputs("aw==\",\"value\":\"\"}\n", f);
    fputs("{\"key\":\"Yw==\",\"value\":\"Mw==\"}\n", f);
    cr_assert_eq(fclose(f), 0);
    cli_result r = CLI(&srv, "import", "--batch", "2", file);
    cr_assert_eq(r.rc, 4, "rc %d err %s", r.rc, r.err);
    cli_assert_one_error_line(&r);
    static const char want[] = "kvcli: import: lines 3-4 not imported; the 2 entries"
                               " before them were imported: ";
    cr_assert(strncmp(r.err, want, sizeof want - 1) == 0, "err: %s", r.err);
    cr_assert_not_null(strstr(r.err, "too large"), "err: %s", r.err);
    cli_result_free(&r);
    r = CLI(&srv, "get", "a", "b", "c");
    cr_assert_str_eq(r.out, "a: 1\nb: 2\nc: (not found)\n");
    cli_result_free(&r);

    /* At the prompt, standard input is the prompt's. */
    static const char line[] = "import -\n";
    r = cli_run_srv(&srv, line, sizeof line - 1, (const char *const[]){NULL});
    cr_assert_eq(r.rc, 2);
    cr_assert_not_null(strstr(r.err, "standard input is the prompt's"), "err: %s", r.err);
    cli_result_free(&r);
}

/* ---- on a terminal ----------------------------------------------------- */

static long long now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (long long)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/* Runs kvcli --port PORT args on a pseudo-terminal (stdout to out_file
 * if not NULL) while kvd is stopped (SIGSTOP) for its first 600 ms, so
 * the transfer is slow enough for a progress line; returns everything
 * the terminal showed and the exit code. */
static int run_on_terminal(const char *const *args, const char *out_file, char *buf,
                           size_t cap)
{
    char port[16];
    snprintf(port, sizeof port, "%d", srv.port);
    const char *argv[16] = {"kvcli", "--port", port};
    size_t n = 3;
    for (size_t i = 0; args[i] && n < 15; i++)
        argv[n++] = args[i];
    argv[n] = NULL;
    cr_assert_eq(kill(srv.pid, SIGSTOP), 0);
    int master;
    pid_t pid = forkpty(&master, NULL, NULL, NULL);
    /* No passing assertion around fork: with --full-stats the child
     * would report it too and confuse the runner. */
    if (pid == -1)
        cr_assert_fail("fork: %s", strerror(errno));
    if (pid == 0) {
        prctl(PR_SET_PDEATHSIG, SIGKILL);
        setenv("TERM", "dumb", 1);
        if (out_file) {
            int fd = open(out_file, O_WRONLY | O_CREAT | O_TRUNC, 0600);
            if (fd < 0 || dup2(fd, STDOUT_FILENO) < 0)
                _exit(126);
        }
        execv(KVCLI_BIN, (char *const *)argv);
        _exit(127);
    }
    long long resume = now_ms() + 600, deadline = now_ms() + 20000;
    int stopped = 1;
    size_t len = 0;
    buf[0] = '\0';
    for (;;) {
        if (stopped && now_ms() >= resume) {
            kill(srv.pid, SIGCONT);
            stopped = 0;
        }
        cr_assert_lt(now_ms(), deadline, "kvcli did not finish: %s", buf);
        struct pollfd p = {master, POLLIN, 0};
        if (poll(&p, 1, 50) <= 0)
            continue;
        ssize_t k = read(master, buf + len, cap - 1 - len);
        if (k <= 0)
            break; /* EIO: kvcli has gone, the terminal closed */
        len += (size_t)k;
        buf[len] = '\0';
    }
    if (stopped)
        kill(srv.pid, SIGCONT);
    close(master);
    int st;
    waitpid(pid, &st, 0);
    return WIFEXITED(st) ? WEXITSTATUS(st) : 128;
}

Test(export, progress_line_only_on_a_terminal)
{
    /* 2000 entries of 100 bytes, in 40 batches. */
    const char *file = tmp_path("many.jsonl");
    FILE *f = fopen(file, "w");
    cr_assert_not_null(f);
    for (int i = 0; i < 2000; i++) {
        char key[16];
        snprintf(key, sizeof key, "k%05d", i); /* 6 bytes: 8 base64 chars */
        static const char b64[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
        const unsigned char *p = (const unsigned char *)key;
        unsigned v = (unsigned)p[0] << 16 | (unsigned)p[1] << 8 | p[2];
        unsigned w = (unsigned)p[3] << 16 | (unsigned)p[4] << 8 | p[5];
        fprintf(f, "{\"key\":\"%c%c%c%c%c%c%c%c\",\"value\":\"", b64[v >> 18],
                b64[v >> 12 & 63], b64[v >> 6 & 63], b64[v & 63], b64[w >> 18],
                b64[w >> 12 & 63], b64[w >> 6 & 63], b64[w & 63]);
        for (int k = 0; k < 33; k++)
            fputs("dnZ2", f); /* "vvv" */
        fputs("dg==\"}\n", f);
    }
    cr_assert_eq(fclose(f), 0);

    static char buf[65536];
    int rc = run_on_terminal((const char *const[]){"import", file, NULL}, NULL, buf,
                             sizeof buf);
    cr_assert_eq(rc, 0, "output: %s", buf);
    /* "\rimport: N entries, X of Y (P%), R entries/s, ETA m:ss" */
    const char *p = strstr(buf, "\rimport: ");
    cr_assert_not_null(p, "no progress line: %s", buf);
    cr_assert_not_null(strstr(p, " entries, "), "%s", p);
    cr_assert_not_null(strstr(p, " KiB of "), "%s", p);
    cr_assert_not_null(strstr(p, "%), "), "%s", p);
    cr_assert_not_null(strstr(p, " entries/s, ETA "), "%s", p);
    /* Erased before the summary, which stands alone on its line. */
    const char *sum = strstr(buf, "\rimported 2000 entries (");
    cr_assert_not_null(sum, "%s", buf);
    cr_assert_gt(sum, p);

    /* export to a file: the progress goes to the terminal, with the
     * store's key count as the total for the ETA, then the summary. */
    const char *out = tmp_path("out.jsonl");
    rc = run_on_terminal((const char *const[]){"export", NULL}, out, buf, sizeof buf);
    cr_assert_eq(rc, 0, "output: %s", buf);
    p = strstr(buf, "\rexport: ");
    cr_assert_not_null(p, "no progress line: %s", buf);
    cr_assert_not_null(strstr(p, " entries/s, ETA "), "%s", p);
    cr_assert_not_null(strstr(buf, "\rexported 2000 entries ("), "%s", buf);
    cr_assert_null(strstr(buf, "{\"key\""), "entries on the terminal: %s", buf);

    /* The binary format is refused on a terminal. */
    rc = run_on_terminal((const char *const[]){"export", "--format", "bin", NULL}, NULL, buf,
                         sizeof buf);
    cr_assert_eq(rc, 2, "output: %s", buf);
    cr_assert_not_null(strstr(buf, "refusing to write the binary format to a terminal"), "%s",
                       buf);
}

/* An output that cannot be written (a full disk): exit 2, said so, and
 * no summary. */
Test(export, unwritable_output_fails)
{
    load_entries();
    static char buf[65536];
    int rc = run_on_terminal((const char *const[]){"export", NULL}, "/dev/full", buf,
                             sizeof buf);
    cr_assert_eq(rc, 2, "output: %s", buf);
    cr_assert_not_null(strstr(buf, "kvcli: export: cannot write the output: No space left"),
                       "%s", buf);
    cr_assert_null(strstr(buf, "exported "), "%s", buf);
}
