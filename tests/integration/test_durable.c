/*
 * test_durable.c - kvd with --data-dir: what was acknowledged survives a
 * restart and a SIGKILL, replies to writes keep request order while they
 * wait for the disk, SNAPSHOT works (and is refused in memory), and a
 * second kvd cannot take a directory in use.
 */
#include <criterion/criterion.h>
#include <dirent.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "harness.h"

TestSuite(durable, .init = harness_setup, .fini = harness_teardown, .timeout = 120);

static char data_dir[64];

static void new_data_dir(void)
{
    snprintf(data_dir, sizeof data_dir, "/tmp/kvd-data-XXXXXX");
    cr_assert_not_null(mkdtemp(data_dir));
}

static void rm_data_dir(void)
{
    char cmd[128];
    snprintf(cmd, sizeof cmd, "rm -rf %s", data_dir);
    cr_assert_eq(system(cmd), 0);
}

static int log_has(const char *needle)
{
    return file_has(g_kvd.log, needle);
}

static void kill9(void)
{
    kill(g_kvd.pid, SIGKILL);
    waitpid(g_kvd.pid, NULL, 0);
    g_kvd.pid = 0;
}

static void expect_value(kv_client *c, const char *k, const char *v, uint64_t version)
{
    kv_value got;
    cr_assert_eq(kv_client_get(c, k, strlen(k), &got), KV_OK, "%s is there", k);
    cr_assert_eq(got.len, strlen(v));
    cr_assert_eq(memcmp(got.data, v, got.len), 0);
    if (version)
        cr_assert_eq(got.version, version, "%s keeps version %llu", k,
                     (unsigned long long)version);
    kv_client_value_free(&got);
}

Test(durable, a_restart_keeps_every_write_and_its_version)
{
    new_data_dir();
    kvd_start("--data-dir", data_dir, "--fsync", "always", NULL);
    cr_assert(log_has("recovered"), "kvd logs its recovery");
    kv_client *c = test_client(NULL);
    uint64_t va, vm, vc;
    cr_assert_eq(kv_client_set(c, "a", 1, "alpha", 5, &va), KV_OK);
    kv_pair p[2] = {{"m1", 2, "one", 3}, {"m2", 2, "two", 3}};
    cr_assert_eq(kv_client_mset(c, p, 2, &vm), KV_OK);
    cr_assert_eq(kv_client_set(c, "gone", 4, "x", 1, NULL), KV_OK);
    cr_assert_eq(kv_client_del(c, "gone", 4, NULL), KV_OK);
    cr_assert_eq(kv_client_set(c, "cas", 3, "1", 1, &vc), KV_OK);
    cr_assert_eq(kv_client_set_if(c, "cas", 3, "2", 1, vc, &vc), KV_OK);
    uint64_t rev = metric_u(NULL, "revision");
    cr_assert_eq(metric_u(NULL, "durable_revision"), rev);
    kv_client_close(c);
    kvd_stop();

    kvd_start("--data-dir", data_dir, NULL);
    char want[64];
    snprintf(want, sizeof want, "revision %llu", (unsigned long long)rev);
    cr_assert(log_has(want), "the recovery log line names the revision");
    c = test_client(NULL);
    expect_value(c, "a", "alpha", va);
    expect_value(c, "m1", "one", vm);
    expect_value(c, "m2", "two", vm);
    expect_value(c, "cas", "2", vc);
    kv_value got;
    cr_assert_eq(kv_client_get(c, "gone", 4, &got), KV_NOT_FOUND);
    cr_assert_eq(metric_u(NULL, "revision"), rev);
    uint64_t v;
    cr_assert_eq(kv_client_set(c, "next", 4, "n", 1, &v), KV_OK);
    cr_assert_eq(v, rev + 1, "revisions continue where they were");
    kv_client_close(c);
    kvd_stop();
    rm_data_dir();
}

/* A write's reply leaves kvd only once its record is written (everysec,
 * no) or synced (always), so a SIGKILL right after the replies loses
 * none of them. */
static void sigkill_keeps_acknowledged(const char *policy)
{
    new_data_dir();
    enum { N = 3000 };
    kvd_start("--data-dir", data_dir, "--fsync", policy, NULL);
    kv_client *c = test_client(NULL);
    kv_client_pipeline *p;
    cr_assert_eq(kv_client_pipeline_new(c, &p), KV_OK);
    char k[32], val[32];
    for (int i = 0; i < N; i++) {
        int kl = snprintf(k, sizeof k, "k%d", i);
        int vl = snprintf(val, sizeof val, "v%d", i);
        cr_assert_eq(kv_client_pipeline_set(p, k, (size_t)kl, val, (size_t)vl), KV_OK);
    }
    cr_assert_eq(kv_client_pipeline_exec(p), KV_OK);
    cr_assert_eq(kv_client_pipeline_replies(p), N);
    for (int i = 0; i < N; i++)
        cr_assert_eq(kv_client_pipeline_reply(p, i)->status, KV_OK);
    kv_client_pipeline_free(p);
    kv_client_close(c);
    kill9();

    kvd_start("--data-dir", data_dir, NULL);
    c = test_client(NULL);
    for (int i = 0; i < N; i += 97) {
        snprintf(k, sizeof k, "k%d", i);
        snprintf(val, sizeof val, "v%d", i);
        expect_value(c, k, val, (uint64_t)i + 1);
    }
    cr_assert_eq(metric_u(NULL, "keys"), N);
    kv_client_close(c);
    kvd_stop();
    rm_data_dir();
}

Test(durable, sigkill_loses_no_acknowledged_write_fsync_always) { sigkill_keeps_acknowledged("always"); }
Test(durable, sigkill_loses_no_acknowledged_write_fsync_everysec) { sigkill_keeps_acknowledged("everysec"); }
Test(durable, sigkill_loses_no_acknowledged_write_fsync_no) { sigkill_keeps_acknowledged("no"); }

Test(durable, replies_keep_request_order_while_writes_wait_for_the_disk)
{
    new_data_dir();
    kvd_start("--data-dir", data_dir, "--fsync", "always", NULL);
    kv_client *c = test_client(NULL);
    kv_client_pipeline *p;
    cr_assert_eq(kv_client_pipeline_new(c, &p), KV_OK);
    enum { N = 2000 };
    char val[32];
    for (int i = 0; i < N; i++) {
        if (i % 3 == 2) {
            cr_assert_eq(kv_client_pipeline_get(p, "k", 1), KV_OK);
        } else {
            int vl = snprintf(val, sizeof val, "%d", i);
            cr_assert_eq(kv_client_pipeline_set(p, "k", 1, val, (size_t)vl), KV_OK);
        }
    }
    cr_assert_eq(kv_client_pipeline_exec(p), KV_OK);
    uint64_t last = 0;
    for (int i = 0; i < N; i++) {
        const kv_client_reply *r = kv_client_pipeline_reply(p, i);
        cr_assert_eq(r->status, KV_OK);
        if (i % 3 == 2) {
            /* the GET sees the SET just before it */
            char want[32];
            int wl = snprintf(want, sizeof want, "%d", i - 1);
            cr_assert_eq(r->op, KV_CLIENT_OP_GET);
            cr_assert_eq(r->value.len, (size_t)wl);
            cr_assert_eq(memcmp(r->value.data, want, (size_t)wl), 0, "reply %d out of order", i);
            cr_assert_eq(r->value.version, last);
        } else {
            cr_assert_eq(r->op, KV_CLIENT_OP_SET);
            cr_assert_gt(r->version, last);
            last = r->version;
        }
    }
    cr_assert_gt(metric_u(NULL, "log_syncs"), 0);
    cr_assert_lt(metric_u(NULL, "log_batches"), metric_u(NULL, "log_records"),
                 "pipelined writes share writes of the log (group commit)");
    kv_client_pipeline_free(p);
    kv_client_close(c);
    kvd_stop();
    rm_data_dir();
}

Test(durable, snapshot_on_request_then_recovery_from_it)
{
    new_data_dir();
    kvd_start("--data-dir", data_dir, NULL);
    kv_client *c = test_client(NULL);
    char k[32];
    for (int i = 0; i < 500; i++) {
        int kl = snprintf(k, sizeof k, "s%d", i);
        cr_assert_eq(kv_client_set(c, k, (size_t)kl, k, (size_t)kl, NULL), KV_OK);
    }
    uint64_t rev = 0;
    cr_assert_eq(kv_client_snapshot(c, &rev), KV_OK);
    cr_assert_eq(rev, 500);
    char path[128];
    snprintf(path, sizeof path, "%s/snap-%016llx.kvs", data_dir, (unsigned long long)rev);
    struct stat st;
    cr_assert_eq(stat(path, &st), 0, "%s exists", path);
    cr_assert_eq(metric_u(NULL, "snapshots"), 1);
    cr_assert_eq(metric_u(NULL, "snapshot_revision"), rev);
    /* requests behind a SNAPSHOT on the same connection wait their turn */
    kv_client_pipeline *p;
    cr_assert_eq(kv_client_pipeline_new(c, &p), KV_OK);
    cr_assert_eq(kv_client_pipeline_set(p, "after", 5, "1", 1), KV_OK);
    cr_assert_eq(kv_client_pipeline_exec(p), KV_OK);
    cr_assert_eq(kv_client_pipeline_reply(p, 0)->version, 501);
    kv_client_pipeline_free(p);
    kv_client_close(c);
    kvd_stop();

    kvd_start("--data-dir", data_dir, NULL);
    cr_assert(log_has("snapshot at 500, 1 log records"), "recovered from the snapshot");
    c = test_client(NULL);
    expect_value(c, "s499", "s499", 500);
    expect_value(c, "after", "1", 501);
    kv_client_close(c);
    kvd_stop();
    rm_data_dir();
}

Test(durable, snapshot_in_memory_is_refused_with_a_hint)
{
    kvd_start(NULL);
    kv_client *c = test_client(NULL);
    cr_assert_eq(kv_client_snapshot(c, NULL), KV_UNSUPPORTED);
    cr_assert(strstr(kv_client_last_error(c), "--data-dir"), "%s", kv_client_last_error(c));
    kv_client_close(c);
    kvd_stop();
}

Test(durable, a_second_kvd_on_the_same_directory_is_refused)
{
    new_data_dir();
    kvd_start("--data-dir", data_dir, NULL);
    char errfile[128];
    snprintf(errfile, sizeof errfile, "%s.err", data_dir);
    pid_t pid = fork();
    if (pid == 0) {
        FILE *e = freopen(errfile, "w", stderr);
        (void)e;
        execl(KVD_PATH, KVD_PATH, "--port", "0", "--data-dir", data_dir, (char *)NULL);
        _exit(127);
    }
    int st;
    cr_assert_eq(waitpid(pid, &st, 0), pid);
    cr_assert(WIFEXITED(st) && WEXITSTATUS(st) == 1, "exit status %d", st);
    FILE *f = fopen(errfile, "r");
    char line[1024] = "";
    cr_assert_not_null(f);
    cr_assert_not_null(fgets(line, sizeof line, f));
    fclose(f);
    unlink(errfile);
    char pidtxt[64];
    snprintf(pidtxt, sizeof pidtxt, "in use by another process (pid %d)", (int)g_kvd.pid);
    cr_assert(strstr(line, pidtxt), "%s", line);
    /* the first one is unharmed */
    kv_client *c = test_client(NULL);
    cr_assert_eq(kv_client_set(c, "still", 5, "here", 4, NULL), KV_OK);
    kv_client_close(c);
    kvd_stop();
    rm_data_dir();
}

Test(durable, snapshot_read_returns_the_snapshot_file_byte_for_byte)
{
    new_data_dir();
    kvd_start("--data-dir", data_dir, NULL);
    kv_client *c = test_client(NULL);
    for (int i = 0; i < 300; i++) {
        char k[16];
        int kl = snprintf(k, sizeof k, "r%d", i);
        cr_assert_eq(kv_client_set(c, k, (size_t)kl, k, (size_t)kl, NULL), KV_OK);
    }
    uint64_t rev;
    cr_assert_eq(kv_client_snapshot(c, &rev), KV_OK);
    char path[128];
    snprintf(path, sizeof path, "%s/snap-%016llx.kvs", data_dir, (unsigned long long)rev);
    FILE *f = fopen(path, "rb");
    cr_assert_not_null(f);
    static unsigned char file[1 << 20];
    size_t flen = fread(file, 1, sizeof file, f);
    fclose(f);
    cr_assert_gt(flen, 1000);
    /* in chunks of 1000 bytes */
    size_t off = 0;
    while (off < flen) {
        kv_value v;
        cr_assert_eq(kv_client_snapshot_read(c, rev, off, 1000, &v), KV_OK);
        cr_assert_eq(v.version, flen, "the file's size comes with every chunk");
        cr_assert_leq(v.len, 1000);
        cr_assert_gt(v.len, 0);
        cr_assert_eq(memcmp(v.data, file + off, v.len), 0, "bytes at %zu", off);
        off += v.len;
        kv_client_value_free(&v);
    }
    kv_value v;
    cr_assert_eq(kv_client_snapshot_read(c, rev, flen, 0, &v), KV_OK, "at the end: 0 bytes");
    cr_assert_eq(v.len, 0);
    kv_client_value_free(&v);
    cr_assert_eq(kv_client_snapshot_read(c, rev, flen + 1, 0, &v), KV_INVALID_ARGUMENT);
    cr_assert_eq(kv_client_snapshot_read(c, rev + 1000, 0, 0, &v), KV_NOT_FOUND);
    cr_assert(strstr(kv_client_last_error(c), "take a new SNAPSHOT"), "%s",
              kv_client_last_error(c));
    kv_client_close(c);
    kvd_stop();
    rm_data_dir();
}

/* Does one of the running kvd's threads carry this name (/proc, as top -H
 * and ps -L show it)? */
static int has_thread(const char *name)
{
    char path[64];
    snprintf(path, sizeof path, "/proc/%d/task", (int)g_kvd.pid);
    DIR *d = opendir(path);
    if (!d)
        return 0;
    int found = 0;
    struct dirent *e;
    while (!found && (e = readdir(d)) != NULL) {
        if (e->d_name[0] == '.')
            continue;
        char comm[400], got[32] = "";
        snprintf(comm, sizeof comm, "%s/%s/comm", path, e->d_name);
        FILE *f = fopen(comm, "r");
        if (f) {
            if (fgets(got, sizeof got, f))
                got[strcspn(got, "\n")] = '\0';
            fclose(f);
        }
        found = strcmp(got, name) == 0;
    }
    closedir(d);
    return found;
}

/* kvd(8) THREADS: an operator looking at top -H sees what each thread is. */
Test(durable, every_thread_says_what_it_is)
{
    const char *wrap = getenv("KVD_WRAPPER");
    if (wrap && *wrap)
        cr_skip_test("kvd runs under %s, whose threads are its own", wrap);
    new_data_dir();
    kvd_start("--data-dir", data_dir, "--threads", "2", NULL);
    const char *names[] = {"kvd-loop-0", "kvd-loop-1", "kv-log", "kv-snapshot", "kv-history"};
    /* A thread names itself when it starts running, which under a
     * sanitizer may be a while after kvd listens: wait (bounded). */
    for (size_t i = 0; i < sizeof names / sizeof *names; i++) {
        for (int tries = 0; tries < 1000 && !has_thread(names[i]); tries++)
            usleep(10000);
        cr_assert(has_thread(names[i]), "a thread named %s", names[i]);
    }
    kvd_stop();
}
