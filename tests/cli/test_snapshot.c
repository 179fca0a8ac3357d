/*
 * test_snapshot.c - `kvcli snapshot` against kvd with and without a data
 * directory, and the backup round trip an operator runs: snapshot, copy
 * the file, `kv-check --restore` into a new directory, start kvd there.
 * Also kv-check's report and exit codes on a valid, a torn and a damaged
 * directory.
 */
#include <criterion/criterion.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "harness.h"

#define CHECK(...) cli_run_bin(KVCHECK_BIN, (const char *const[]){__VA_ARGS__, NULL})

static cli_server srv;

static void teardown(void)
{
    cli_server_stop(&srv);
}

TestSuite(snapshot, .fini = teardown, .timeout = 120);

/* Runs another binary of the tree (kv-check) the way cli_run runs kvcli. */
static cli_result cli_run_bin(const char *bin, const char *const *args)
{
    char cmd[4096];
    int n = snprintf(cmd, sizeof cmd, "%s", bin);
    for (int i = 0; args[i]; i++)
        n += snprintf(cmd + n, sizeof cmd - (size_t)n, " '%s'", args[i]);
    char out[64], err[64];
    snprintf(out, sizeof out, "/tmp/kvcheck-out-%d", (int)getpid());
    snprintf(err, sizeof err, "/tmp/kvcheck-err-%d", (int)getpid());
    snprintf(cmd + n, sizeof cmd - (size_t)n, " >%s 2>%s", out, err);
    int st = system(cmd);
    cli_result r = {0};
    r.rc = WIFEXITED(st) ? WEXITSTATUS(st) : 128;
    FILE *f = fopen(out, "r");
    r.out = calloc(1, 65536);
    if (f) {
        r.outlen = fread(r.out, 1, 65535, f);
        fclose(f);
    }
    f = fopen(err, "r");
    r.err = calloc(1, 65536);
    if (f) {
        r.errlen = fread(r.err, 1, 65535, f);
        fclose(f);
    }
    unlink(out);
    unlink(err);
    return r;
}

Test(snapshot, refused_by_an_in_memory_kvd_with_a_hint)
{
    cli_server_start(&srv, NULL);
    cli_result r = CLI(&srv, "snapshot");
    cr_assert_eq(r.rc, 4, "exit code 4 (the server refused): %d", r.rc);
    cli_assert_one_error_line(&r);
    cr_assert(strstr(r.err, "--data-dir"), "err: %s", r.err);
    cli_result_free(&r);
}

Test(snapshot, backup_and_restore_round_trip)
{
    cli_server_start_durable(&srv, NULL);
    cli_result r = CLI(&srv, "set", "a", "1");
    cr_assert_eq(r.rc, 0, "%s", r.err);
    cli_result_free(&r);
    r = CLI(&srv, "set", "b", "2");
    cli_result_free(&r);
    r = CLI(&srv, "snapshot");
    cr_assert_eq(r.rc, 0, "%s", r.err);
    cr_assert(strstr(r.out, "OK snapshot at revision 2 (snap-0000000000000002.kvs"), "%s", r.out);
    cli_result_free(&r);
    r = CLI(&srv, "snapshot", "--json");
    json_t *j = cli_json(&r);
    cr_assert_eq(json_integer_value(json_object_get(j, "revision")), 2);
    cr_assert_str_eq(json_string_value(json_object_get(j, "file")), "snap-0000000000000002.kvs");
    json_decref(j);
    cli_result_free(&r);
    r = CLI(&srv, "set", "c", "after the backup");
    cli_result_free(&r);

    /* the backup: copy the snapshot file while kvd runs */
    char snap[400], backup[300], dir[300], data[200];
    snprintf(data, sizeof data, "%s/data", srv.dir);
    snprintf(snap, sizeof snap, "%s/snap-0000000000000002.kvs", data);
    snprintf(backup, sizeof backup, "%s/backup.kvs", srv.dir);
    snprintf(dir, sizeof dir, "%s/restored", srv.dir);
    char cmd[1000];
    snprintf(cmd, sizeof cmd, "cp '%s' '%s'", snap, backup);
    cr_assert_eq(system(cmd), 0);

    /* kv-check on the live directory */
    r = CHECK(data);
    cr_assert_eq(r.rc, 0, "out %s err %s", r.out, r.err);
    cr_assert(strstr(r.out, "store: 3 keys, revision 3"), "%s", r.out);
    cli_result_free(&r);

    r = CHECK("--restore", backup, dir);
    cr_assert_eq(r.rc, 0, "out %s err %s", r.out, r.err);
    cr_assert(strstr(r.out, "store: 2 keys, revision 2"), "%s", r.out);
    cli_result_free(&r);
    r = CHECK("--restore", backup, dir);
    cr_assert_eq(r.rc, 2, "not into a used directory");
    cr_assert(strstr(r.err, "empty directory"), "%s", r.err);
    cli_result_free(&r);

    /* kvd on the restored directory has the state of the backup */
    char keep[] = "/tmp/kvcli-restore-XXXXXX";
    cr_assert_not_null(mkdtemp(keep));
    char restored[300];
    snprintf(restored, sizeof restored, "%s/data", keep);
    snprintf(cmd, sizeof cmd, "cp -r '%s' '%s'", dir, restored);
    cr_assert_eq(system(cmd), 0);
    cli_server_stop(&srv);
    cli_server_start_dir(&srv, restored);
    r = CLI(&srv, "get", "a");
    cr_assert_eq(r.rc, 0, "%s", r.err);
    cr_assert_str_eq(r.out, "1\n");
    cli_result_free(&r);
    r = CLI(&srv, "get", "b");
    cr_assert_str_eq(r.out, "2\n");
    cli_result_free(&r);
    r = CLI(&srv, "get", "c");
    cr_assert_eq(r.rc, 1, "c came after the backup");
    cli_result_free(&r);
    r = CLI(&srv, "set", "d", "new");
    cr_assert_eq(r.rc, 0);
    cr_assert(strstr(r.out, "version 3"), "revisions continue: %s", r.out);
    cli_result_free(&r);
    cli_server_stop(&srv);
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", keep);
    cr_assert_eq(system(cmd), 0);
}

Test(snapshot, kv_check_reports_torn_tails_and_refuses_damage)
{
    char keep[] = "/tmp/kvcli-check-XXXXXX";
    cr_assert_not_null(mkdtemp(keep));
    char data[200], seg[300];
    snprintf(data, sizeof data, "%s/data", keep);
    cli_server_start_dir(&srv, data);
    for (int i = 0; i < 20; i++) {
        char k[16];
        snprintf(k, sizeof k, "k%d", i);
        cli_result r = CLI(&srv, "set", k, "some value");
        cr_assert_eq(r.rc, 0);
        cli_result_free(&r);
    }
    snprintf(seg, sizeof seg, "%s/log-0000000000000001.kvl", data);
    /* in use: --repair refuses */
    cli_result r = CHECK("--repair", data);
    cr_assert_eq(r.rc, 4, "%s", r.err);
    cr_assert(strstr(r.err, "in use by another process"), "%s", r.err);
    cli_result_free(&r);
    cli_server_stop(&srv);

    /* a torn tail: reported, exit 0; --repair cuts it */
    /* The log wrote zeros ahead of its records: the records end at its
     * last non-zero byte (a record's bytes are masked, never long zeros). */
    FILE *sf = fopen(seg, "rb");
    cr_assert_not_null(sf);
    long end = 0, at = 0;
    for (int ch; (ch = fgetc(sf)) != EOF; at++)
        if (ch)
            end = at + 1;
    fclose(sf);
    cr_assert_gt(end, 100);
    cr_assert_eq(truncate(seg, end - 20), 0);
    r = CHECK(data);
    cr_assert_eq(r.rc, 0, "%s", r.out);
    cr_assert(strstr(r.out, "torn tail"), "%s", r.out);
    cr_assert(strstr(r.out, "store: 19 keys, revision 19"), "%s", r.out);
    cli_result_free(&r);
    r = CHECK("--repair", data);
    cr_assert_eq(r.rc, 0, "%s", r.err);
    cr_assert(strstr(r.out, "cut off"), "%s", r.out);
    cli_result_free(&r);
    r = CHECK(data);
    cr_assert(!strstr(r.out, "torn"), "%s", r.out);
    cli_result_free(&r);

    /* damage in the middle: exit 1, names the file and offset */
    FILE *f = fopen(seg, "r+b");
    cr_assert_not_null(f);
    fseek(f, 200, SEEK_SET);
    fputc(0x5a, f);
    fclose(f);
    r = CHECK(data);
    cr_assert_eq(r.rc, 1, "%s", r.out);
    cr_assert(strstr(r.err, "log-0000000000000001.kvl: corrupt record at offset"), "%s", r.err);
    cli_result_free(&r);

    r = CHECK("/nonexistent/dir");
    cr_assert_eq(r.rc, 3);
    cli_result_free(&r);
    r = CHECK("--frobnicate");
    cr_assert_eq(r.rc, 2);
    cli_result_free(&r);
    char cmd[300];
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", keep);
    cr_assert_eq(system(cmd), 0);
}

Test(snapshot, backup_over_the_connection_restores_the_exact_state)
{
    cli_server_start_durable(&srv, NULL);
    char big[300];
    snprintf(big, sizeof big, "%s/big.bin", srv.dir);
    FILE *f = fopen(big, "wb");
    cr_assert_not_null(f);
    for (int i = 0; i < 5 * 1024 * 1024; i++) /* over one 4 MiB chunk */
        fputc((i * 131) & 0xff, f);
    fclose(f);
    cli_result r = CLI(&srv, "set", "big", "--file", big);
    cr_assert_eq(r.rc, 0, "%s", r.err);
    cli_result_free(&r);
    r = CLI(&srv, "set", "small", "v");
    cli_result_free(&r);

    char file[300];
    snprintf(file, sizeof file, "%s/remote-backup.kvs", srv.dir);
    r = CLI(&srv, "backup", file);
    cr_assert_eq(r.rc, 0, "%s", r.err);
    cr_assert(strstr(r.out, "OK backup of revision 2 in "), "%s", r.out);
    cli_result_free(&r);
    r = CLI(&srv, "set", "later", "x");
    cli_result_free(&r);

    char keep[] = "/tmp/kvcli-backup-XXXXXX";
    cr_assert_not_null(mkdtemp(keep));
    char dir[300];
    snprintf(dir, sizeof dir, "%s/data", keep);
    r = CHECK("--restore", file, dir);
    cr_assert_eq(r.rc, 0, "out %s err %s", r.out, r.err);
    cr_assert(strstr(r.out, "store: 2 keys, revision 2"), "%s", r.out);
    cli_result_free(&r);
    cli_server_stop(&srv);
    cli_server_start_dir(&srv, dir);
    char got[300];
    snprintf(got, sizeof got, "%s/got.bin", keep);
    r = CLI(&srv, "get", "big", "--raw");
    cr_assert_eq(r.rc, 0, "%s", r.err);
    cr_assert_eq(r.outlen, (size_t)5 * 1024 * 1024);
    for (size_t i = 0; i < r.outlen; i++)
        if ((unsigned char)r.out[i] != ((i * 131) & 0xff))
            cr_assert_fail("byte %zu of the restored value differs", i);
    cli_result_free(&r);
    r = CLI(&srv, "get", "later");
    cr_assert_eq(r.rc, 1, "written after the backup");
    cli_result_free(&r);
    cli_server_stop(&srv);
    char cmd[400];
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", keep);
    cr_assert_eq(system(cmd), 0);
}

Test(snapshot, backup_errors_are_one_line_with_their_exit_codes)
{
    cli_server_start(&srv, NULL);
    cli_result r = CLI(&srv, "backup", "/tmp/never-written.kvs");
    cr_assert_eq(r.rc, 4);
    cli_assert_one_error_line(&r);
    cr_assert(strstr(r.err, "--data-dir"), "%s", r.err);
    cli_result_free(&r);
    r = CLI(&srv, "backup");
    cr_assert_eq(r.rc, 2);
    cli_assert_one_error_line(&r);
    cli_result_free(&r);
    cli_server_stop(&srv);
    cli_server_start_durable(&srv, NULL);
    r = CLI(&srv, "backup", "/nonexistent-dir/x.kvs");
    cr_assert_eq(r.rc, 2);
    cli_assert_one_error_line(&r);
    cr_assert(strstr(r.err, "cannot create"), "%s", r.err);
    cli_result_free(&r);
}
