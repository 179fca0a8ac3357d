/*
 * test_crash.c - a real process killed with SIGKILL at random moments
 * while two of its threads write with fsync=always (crash_writer.c). After
 * each kill the directory must open, hold every write the process
 * acknowledged on stdout, and hold no multi-key change in part. The same
 * directory goes through every round, so recovery is tested on the
 * results of earlier recoveries (and of snapshots taken between kills).
 * A longer run: bench/durability/crash_soak.sh.
 */
#include <signal.h>
#include <sys/wait.h>

#include "durtest.h"

#ifndef CRASH_ROUNDS
#define CRASH_ROUNDS 30
#endif

static int check_group(kv_store *s, int t, int g, long *val)
{
    char k[3][48];
    kv_value v[3];
    kv_key keys[3];
    for (int i = 0; i < 3; i++) {
        snprintf(k[i], sizeof k[i], "g%d:%d:%c", t, g, (char)('a' + i));
        keys[i] = (kv_key){k[i], strlen(k[i])};
    }
    cr_assert_eq(kv_mget(s, keys, 3, v), KV_OK);
    int whole = v[0].len == v[1].len && v[1].len == v[2].len &&
                (!v[0].data || (memcmp(v[0].data, v[1].data, v[0].len) == 0 &&
                                memcmp(v[1].data, v[2].data, v[1].len) == 0));
    char buf[32] = {0};
    if (v[0].data)
        memcpy(buf, v[0].data, v[0].len < 31 ? v[0].len : 31);
    *val = v[0].data ? atol(buf) : 0;
    kv_values_free(v, 3);
    return whole;
}

Test(crash, sigkill_at_random_moments_loses_no_acknowledged_write, .timeout = 600)
{
    char *dir = dt_tmpdir("crash");
    unsigned seed = 12345;
    long acked[2] = {0, 0};
    for (int round = 0; round < CRASH_ROUNDS; round++) {
        int out[2];
        cr_assert_eq(pipe(out), 0);
        pid_t pid = fork();
        if (pid == 0) {
            dup2(out[1], 1);
            close(out[0]);
            close(out[1]);
            execl(CRASH_WRITER, CRASH_WRITER, dir, (char *)NULL);
            _exit(127);
        }
        close(out[1]);
        FILE *f = fdopen(out[0], "r");
        char line[128];
        cr_assert_not_null(fgets(line, sizeof line, f), "round %d: the writer did not start", round);
        cr_assert_str_eq(line, "ready\n");
        int want = 20 + rand_r(&seed) % 400, got = 0;
        while (got < want && fgets(line, sizeof line, f)) {
            int t;
            long n;
            if (sscanf(line, "ack %d %ld", &t, &n) == 2 && t >= 0 && t < 2) {
                if (n > acked[t])
                    acked[t] = n;
                got++;
            }
        }
        cr_assert_eq(got, want, "round %d: the writer stopped early", round);
        kill(pid, SIGKILL);
        /* Acks already in the pipe were acknowledged before the kill. */
        while (fgets(line, sizeof line, f)) {
            int t;
            long n;
            if (sscanf(line, "ack %d %ld", &t, &n) == 2 && t >= 0 && t < 2 && n > acked[t])
                acked[t] = n;
        }
        fclose(f);
        int status;
        waitpid(pid, &status, 0);
        cr_assert(WIFSIGNALED(status), "round %d: the writer was killed", round);

        kv_store *s = dt_open(dir, KV_FSYNC_ALWAYS);
        for (int t = 0; t < 2; t++) {
            char k[16], buf[32] = {0};
            snprintf(k, sizeof k, "last%d", t);
            size_t len;
            cr_assert_eq(kv_get_into(s, k, strlen(k), buf, 31, &len, NULL), KV_OK);
            long last = atol(buf);
            cr_assert_geq(last, acked[t], "round %d: thread %d acked %ld, store has %ld", round,
                          t, acked[t], last);
            for (int g = 0; g < 10; g++) {
                long v;
                cr_assert(check_group(s, t, g, &v), "round %d: group %d:%d is torn", round, t, g);
                cr_assert_leq(v, last);
            }
            long v;
            check_group(s, t, (int)(last % 10), &v);
            cr_assert_eq(v, last, "the last write's group holds it");
        }
        kv_close(s);
    }
    cr_assert_gt(acked[0] + acked[1], 1000);
    dt_rmdir(dir);
    free(dir);
}
