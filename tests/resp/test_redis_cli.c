/*
 * test_redis_cli.c - kvd driven by the real redis-cli (Debian's
 * redis-tools): every supported command in three output modes (formatted,
 * --raw, RESP3 with -3) compared with outputs checked against
 * redis-server 7.0.15 (cli/commands*.expected), binary-safe values through
 * redis-cli -x, and passwords (NOAUTH, WRONGPASS, --pass, REDISCLI_AUTH,
 * --user, HELLO 3 after AUTH) with kvd's password from KVD_PASSWORD.
 */
#include <criterion/criterion.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "harness.h"
#include "resp_util.h"

TestSuite(redis_cli, .init = harness_setup, .fini = harness_teardown, .timeout = 120);

#define CLI_DIR RESP_TEST_DIR "/cli"

static void need_redis_cli(void)
{
    if (!tool_found("redis-cli"))
        cr_skip_test("redis-cli is not installed (Debian redis-tools; bash scripts/dev.sh deps)");
}

/* redis-cli's output for args (a shell fragment), stdin from in_path. */
static int cli(char **out, const char *in_path, const char *args)
{
    char cmd[1024];
    snprintf(cmd, sizeof cmd, "redis-cli -h 127.0.0.1 -p %d %s", g_kvd.port, args);
    return run_sh(cmd, in_path, out, NULL, 60);
}

static void cli_expect(const char *args, const char *expected)
{
    char *out = NULL;
    cli(&out, NULL, args);
    cr_assert_str_eq(out, expected, "redis-cli %s:\n%s", args, out);
    free(out);
}

static void script_matches(const char *mode, const char *expected_file)
{
    char *out = NULL;
    size_t len = 0;
    cli(&out, NULL, "flushall");
    free(out);
    char cmd[1024];
    snprintf(cmd, sizeof cmd, "grep -v '^#' %s/commands.txt | redis-cli -h 127.0.0.1 -p %d %s",
             CLI_DIR, g_kvd.port, mode);
    int rc = run_sh(cmd, NULL, &out, &len, 60);
    cr_assert_eq(rc, 0, "redis-cli %s exited %d:\n%s", mode, rc, out);
    char path[512];
    snprintf(path, sizeof path, "%s/%s", CLI_DIR, expected_file);
    assert_matches_file(mode, out, len, path);
    free(out);
}

Test(redis_cli, every_command_formatted)
{
    need_redis_cli();
    kvd_start(NULL);
    script_matches("--no-raw", "commands.expected");
    kvd_stop();
}

Test(redis_cli, every_command_raw)
{
    need_redis_cli();
    kvd_start(NULL);
    script_matches("--raw", "commands.raw.expected");
    kvd_stop();
}

Test(redis_cli, every_command_resp3)
{
    need_redis_cli();
    kvd_start(NULL);
    script_matches("-3 --no-raw", "commands.resp3.expected");
    /* HELLO's map (its id varies: only the fields around it) */
    char *out = NULL;
    cli(&out, NULL, "-3 --no-raw hello 3");
    static const char head[] = "1# \"server\" => \"redis\"\n2# \"version\" => \"7.0.0\"\n"
                               "3# \"proto\" => (integer) 3\n4# \"id\" => (integer) ";
    cr_assert(strncmp(out, head, sizeof head - 1) == 0, "%s", out);
    cr_assert_not_null(strstr(out, "5# \"mode\" => \"standalone\"\n6# \"role\" => \"master\"\n"
                                   "7# \"modules\" => (empty array)\n"), "%s", out);
    free(out);
    kvd_stop();
}

/* What redis-cli prints for a bulk string outside --raw (sdscatrepr). */
static size_t repr(const unsigned char *p, size_t n, char *out)
{
    size_t o = 0;
    out[o++] = '"';
    for (size_t i = 0; i < n; i++) {
        unsigned char ch = p[i];
        const char *esc = ch == '\\' ? "\\\\" : ch == '"' ? "\\\"" : ch == '\n' ? "\\n"
                          : ch == '\r' ? "\\r" : ch == '\t' ? "\\t" : ch == '\a' ? "\\a"
                          : ch == '\b' ? "\\b" : NULL;
        if (esc)
            o += (size_t)sprintf(out + o, "%s", esc);
        else if (ch >= 0x20 && ch < 0x7f)
            out[o++] = (char)ch;
        else
            o += (size_t)sprintf(out + o, "\\x%02x", ch);
    }
    out[o++] = '"';
    out[o++] = '\n';
    out[o] = '\0';
    return o;
}

Test(redis_cli, binary_values_through_stdin)
{
    need_redis_cli();
    kvd_start(NULL);
    kvd_test_dir();
    /* every byte, NULs and CRLFs inside and at the end */
    unsigned char bin[256 * 4 + 5];
    for (size_t i = 0; i < 256 * 4; i++)
        bin[i] = (unsigned char)i;
    memcpy(bin + 256 * 4, "\0\0\r\n\0", 5);
    char path[400];
    snprintf(path, sizeof path, "%s/bin", g_kvd.dir);
    spit(path, bin, sizeof bin);

    char *out = NULL;
    size_t len = 0;
    cli(&out, path, "-x set bin");
    cr_assert_str_eq(out, "OK\n");
    free(out);
    cli_expect("strlen bin", "1029\n");
    /* --raw: the bytes as they are, then a newline */
    char cmd[512];
    snprintf(cmd, sizeof cmd, "redis-cli -h 127.0.0.1 -p %d --raw get bin", g_kvd.port);
    run_sh(cmd, NULL, &out, &len, 60);
    cr_assert_eq(len, sizeof bin + 1, "--raw get: %zu bytes", len);
    cr_assert(memcmp(out, bin, sizeof bin) == 0 && out[sizeof bin] == '\n', "--raw get differs");
    free(out);
    /* formatted: quoted and escaped */
    char want[sizeof bin * 4 + 8];
    size_t wlen = repr(bin, sizeof bin, want);
    cli(&out, NULL, "--no-raw get bin");
    cr_assert_eq(strlen(out), wlen);
    cr_assert_str_eq(out, want);
    free(out);
    /* APPEND of a lone NUL */
    spit(path, "\0", 1);
    cli(&out, path, "-x append bin");
    cr_assert_str_eq(out, "1030\n");
    free(out);

    /* a 1 MiB value (arrives in many reads, answered in many writes) */
    size_t big = 1 << 20;
    unsigned char *b = malloc(big);
    cr_assert_not_null(b);
    uint32_t x = 2463534242u;
    for (size_t i = 0; i < big; i++) {
        x ^= x << 13, x ^= x >> 17, x ^= x << 5;
        b[i] = (unsigned char)x;
    }
    spit(path, b, big);
    cli(&out, path, "-x set big");
    cr_assert_str_eq(out, "OK\n");
    free(out);
    snprintf(cmd, sizeof cmd, "redis-cli -h 127.0.0.1 -p %d --raw get big", g_kvd.port);
    run_sh(cmd, NULL, &out, &len, 60);
    cr_assert_eq(len, big + 1);
    cr_assert(memcmp(out, b, big) == 0, "1 MiB value differs");
    free(out);
    free(b);
    cli_expect("strlen big", "1048576\n");
    kvd_stop();
}

Test(redis_cli, exit_codes_and_errors)
{
    need_redis_cli();
    kvd_start(NULL);
    char *out = NULL;
    /* one command on the command line: the error reply is printed (redis-cli
     * 7.0 exits 0 after it all the same) */
    cli_expect("--no-raw get", "(error) ERR wrong number of arguments for 'get' command\n");
    cli_expect("--no-raw frob a b",
               "(error) ERR unknown command 'frob', with args beginning with: 'a' 'b' \n");
    cli_expect("--no-raw set k v px 0", "(error) ERR invalid expire time in 'set' command\n");
    cli_expect("--no-raw expire k 10 nx gt",
               "(error) ERR NX and XX, GT or LT options at the same time are not compatible\n");
    cli_expect("--no-raw exists k", "(integer) 0\n");
    int rc = cli(&out, NULL, "ping");
    cr_assert_eq(rc, 0);
    cr_assert_str_eq(out, "PONG\n");
    free(out);
    kvd_stop();
}

/* A key at its expiry's boundary, seen by redis-cli: there while its TTL
 * runs, then (polled, no time limit but the test's) gone for GET, EXISTS,
 * TTL, SCAN and counted in INFO's expired_keys and expires. */
Test(redis_cli, a_key_expires)
{
    need_redis_cli();
    kvd_start(NULL);
    char *out = NULL;
    cli_expect("set long v ex 3600", "OK\n");
    cli_expect("psetex short 300 v", "OK\n");
    cli_expect("exists long", "1\n");
    cli(&out, NULL, "info keyspace");
    cr_assert_not_null(strstr(out, "expires=2,"), "%s", out);
    free(out);
    for (;;) {
        cli(&out, NULL, "exists short");
        int gone = strcmp(out, "0\n") == 0;
        cr_assert(gone || strcmp(out, "1\n") == 0, "%s", out);
        free(out);
        if (gone)
            break;
        usleep(20 * 1000);
    }
    cli_expect("get short", "\n");
    cli_expect("ttl short", "-2\n");
    cli_expect("pttl short", "-2\n");
    cli_expect("scan 0 match short", "0\n\n");
    cli_expect("exists long", "1\n");
    /* the store removes it (its expiry thread, or a write that meets it) */
    cli_expect("set short again", "OK\n");
    for (;;) {
        cli(&out, NULL, "info stats");
        const char *e = strstr(out, "expired_keys:");
        cr_assert_not_null(e, "%s", out);
        long n = atol(e + 13);
        free(out);
        if (n >= 1)
            break;
        usleep(20 * 1000);
    }
    kvd_stop();
}

/* kvd's own history commands (docs/resp.md, "History"): reads at a
 * revision, a key's changes, rollback, compaction, and their errors as
 * redis-cli shows them. A fresh kvd numbers its changes 1, 2, 3... */
Test(redis_cli, history_commands)
{
    need_redis_cli();
    kvd_start(NULL);
    cli_expect("set a 1", "OK\n");             /* 1 */
    cli_expect("set a 2", "OK\n");             /* 2 */
    cli_expect("set b x", "OK\n");             /* 3 */
    cli_expect("del a", "1\n");                /* 4 */
    cli_expect("kvd.getat a 1", "1\n");
    cli_expect("kvd.getat a 4", "\n");
    cli_expect("--no-raw kvd.getat a 4", "(nil)\n");
    cli_expect("--no-raw kvd.mgetat 3 a b c", "1) \"2\"\n2) \"x\"\n3) (nil)\n");
    cli_expect("--no-raw kvd.history a",
               "1) (integer) 0\n"
               "2) 1) 1) (integer) 4\n"
               "      2) (nil)\n"
               "      3) (integer) 0\n"
               "      4) (integer) 0\n"
               "      5) (integer) 0\n"
               "   2) 1) (integer) 2\n"
               "      2) \"2\"\n"
               "      3) (integer) 1\n"
               "      4) (integer) 2\n"
               "      5) (integer) 0\n"
               "   3) 1) (integer) 1\n"
               "      2) \"1\"\n"
               "      3) (integer) 1\n"
               "      4) (integer) 1\n"
               "      5) (integer) 0\n");
    cli_expect("kvd.history a limit 1 maxrev 3", "0\n2\n2\n1\n2\n0\n");
    cli_expect("kvd.scanat 2 0 count 10", "0\na\n");
    cli_expect("kvd.rollback 2 keys a", "1\n5\n");
    cli_expect("get a", "2\n");
    cli_expect("--no-raw kvd.rollback 1 ifunchangedsince 1 prefix \"\"", "(nil)\n");
    cli_expect("kvd.rollback 5 prefix \"\"", "0\n0\n"); /* nothing changed since */
    cli_expect("kvd.compact 3", "OK\n");
    cli_expect("--no-raw kvd.getat a 1",
               "(error) COMPACTED required revision 1 has been compacted; oldest is 3\n");
    cli_expect("--no-raw kvd.getat a 99",
               "(error) FUTURE_REVISION required revision 99 is a future revision; latest is "
               "5\n");
    cli_expect("--no-raw kvd.getat a 0", "(error) ERR revision is not a positive integer\n");
    cli_expect("--no-raw kvd.rollback 2 a b",
               "(error) ERR syntax error (KVD.ROLLBACK torev [IFUNCHANGEDSINCE rev] KEYS key "
               "[key ...] | PREFIX prefix)\n");
    char *out = NULL;
    cli(&out, NULL, "info");
    cr_assert_not_null(strstr(out, "compact_revision:3"), "%s", out);
    free(out);
    cli(&out, NULL, "command info kvd.getat");
    cr_assert_not_null(strstr(out, "kvd.getat"), "%s", out);
    free(out);
    kvd_stop();
    kvd_start("--history", "off", NULL);
    cli_expect("set a 1", "OK\n");
    cli_expect("--no-raw kvd.getat a 1",
               "(error) ERR history is off on this server (start kvd with --history on)\n");
    kvd_stop();
}

/* KVD.WATCH with redis-cli -3 (docs/resp.md, "Watch"): its reply, the
 * RESP3 push that ends a watch at KVD.UNWATCH (printed with
 * --show-pushes), other commands answered on the watching connection;
 * and in RESP2 the SUBSCRIBE-like refusal of other commands. */
Test(redis_cli, kvd_watch)
{
    need_redis_cli();
    kvd_start(NULL);
    cli_expect("set k v1", "OK\n");
    char *out = NULL;
    char cmd[1024];
    snprintf(cmd, sizeof cmd,
             "printf 'KVD.WATCH k\\nGET k\\nKVD.UNWATCH\\nKVD.UNWATCH\\n' | "
             "redis-cli -3 --show-pushes yes -h 127.0.0.1 -p %d",
             g_kvd.port);
    cr_assert_eq(run_sh(cmd, NULL, &out, NULL, 60), 0, "%s", out);
    cr_expect_str_eq(out, "kvd.watch\nk\n2\nv1\nkvd.unwatch\nk\n2\n1\n0\n");
    free(out);
    snprintf(cmd, sizeof cmd,
             "printf 'KVD.WATCH k PREFIX\\nGET k\\n' | redis-cli -h 127.0.0.1 -p %d",
             g_kvd.port);
    run_sh(cmd, NULL, &out, NULL, 60); /* exits 1: the last reply is an error */
    cr_expect(strncmp(out, "kvd.watch\nk\n2\n", 14) == 0, "%s", out);
    cr_expect_not_null(strstr(out, "only KVD.WATCH / KVD.UNWATCH / PING / QUIT"), "%s", out);
    free(out);
    cli(&out, NULL, "command info kvd.watch");
    cr_assert_not_null(strstr(out, "kvd.watch"), "%s", out);
    free(out);
    kvd_stop();
}

/* The commands whose answers vary (ids, addresses, counts, the port):
 * checked by their shape. */
Test(redis_cli, server_commands)
{
    need_redis_cli();
    kvd_start(NULL);
    char *out = NULL, want[64];
    cli_expect("set k v", "OK\n");
    cli(&out, NULL, "client id");
    cr_assert_gt(atol(out), 0, "%s", out);
    free(out);
    cli(&out, NULL, "client info");
    cr_assert(strncmp(out, "id=", 3) == 0 && strstr(out, " addr=127.0.0.1:") &&
              strstr(out, " name= db=0 resp=2\n"), "%s", out);
    free(out);
    snprintf(want, sizeof want, "port\n%d\n", g_kvd.port);
    cli_expect("config get port", want);
    cli(&out, NULL, "info");
    cr_assert(strncmp(out, "# Server\r\nredis_version:", 24) == 0, "%s", out);
    cr_assert_not_null(strstr(out, "\r\n# Keyspace\r\ndb0:keys=1,expires=0,avg_ttl=0\r\n"),
                       "%s", out);
    free(out);
    cli_expect("dbsize", "1\n");
    /* COMMAND: COUNT entries, LIST their names, INFO of named ones */
    cli(&out, NULL, "command count");
    long count = atol(out);
    free(out);
    cr_assert_gt(count, 30);
    size_t len = 0;
    char cmd[256];
    snprintf(cmd, sizeof cmd, "redis-cli -h 127.0.0.1 -p %d command list | sort", g_kvd.port);
    run_sh(cmd, NULL, &out, &len, 60);
    long lines = 0;
    for (size_t i = 0; i < len; i++)
        lines += out[i] == '\n';
    cr_assert_eq(lines, count, "COMMAND LIST has COUNT names:\n%s", out);
    static const char *const names[] = {"append", "auth", "client", "command", "config",
                                        "dbsize", "decr", "decrby", "del", "discard", "echo",
                                        "exec", "exists", "flushall", "flushdb", "get", "getdel",
                                        "getset", "hello", "incr", "incrby", "incrbyfloat",
                                        "info", "keys", "mget", "mset", "msetnx", "multi",
                                        "ping", "quit", "rename", "scan", "select", "set",
                                        "setnx", "strlen", "type", "unlink", "unwatch", "watch",
                                        "ttl", "pttl", "expire", "pexpire", "expireat",
                                        "pexpireat", "expiretime", "pexpiretime", "persist",
                                        "setex", "psetex", "getex"};
    for (size_t i = 0; i < sizeof names / sizeof names[0]; i++) {
        snprintf(want, sizeof want, "\n%s\n", names[i]);
        cr_assert(strstr(out, want) || strncmp(out, want + 1, strlen(want + 1)) == 0,
                  "COMMAND LIST lacks %s", names[i]);
    }
    free(out);
    /* first key, last key, step as Redis: MSET 1 -1 2, RENAME 1 2 1 */
    cli_expect("--no-raw command info get nosuch mset rename",
               "1) 1) \"get\"\n   2) (integer) -1\n   3) 1) readonly\n   4) (integer) 1\n"
               "   5) (integer) 1\n   6) (integer) 1\n"
               "2) (nil)\n"
               "3) 1) \"mset\"\n   2) (integer) -1\n   3) 1) write\n   4) (integer) 1\n"
               "   5) (integer) -1\n   6) (integer) 2\n"
               "4) 1) \"rename\"\n   2) (integer) -1\n   3) 1) write\n   4) (integer) 1\n"
               "   5) (integer) 2\n   6) (integer) 1\n");
    cli_expect("quit", "OK\n");
    kvd_stop();
}

/* INCRBYFLOAT adds in long double and prints 17 decimals without trailing
 * zeros, as Redis: 10.5 + 0.1 is "10.6". Valgrind computes long double
 * at double precision, so there the digits are not Redis's. */
Test(redis_cli, incrbyfloat_digits_as_redis)
{
    need_redis_cli();
    kvd_start(NULL);
    cli_expect("set f 10.50", "OK\n");
    const char *wrap = getenv("KVD_WRAPPER");
    if (wrap && strstr(wrap, "valgrind")) {
        cli_expect("incrbyfloat f 0.25", "10.75\n");
    } else {
        cli_expect("incrbyfloat f 0.1", "10.6\n");
        cli_expect("incrbyfloat f 5.0e3", "5010.60000000000000009\n"); /* Redis's digits too */
        cli_expect("incrbyfloat f -5010.6", "0\n");
        cli_expect("set f 3.0", "OK\n");
        cli_expect("incrbyfloat f 1e-5", "3.00001\n");
    }
    cli_expect("--no-raw incrbyfloat f 1e400",
               "(error) ERR value is not a valid float\n"); /* over a double */
    kvd_stop();
}

Test(redis_cli, passwords)
{
    need_redis_cli();
    setenv("KVD_PASSWORD", "s3cret pass", 1);
    kvd_start(NULL);
    unsetenv("KVD_PASSWORD");
    char *out = NULL;

    cli_expect("--no-raw get k", "(error) NOAUTH Authentication required.\n");
    cli_expect("--no-raw frob", "(error) NOAUTH Authentication required.\n");
    cli_expect("--no-raw --no-auth-warning --pass 's3cret pass' set k v", "OK\n");
    cli_expect("--no-raw -a 's3cret pass' --no-auth-warning get k", "\"v\"\n");
    cli_expect("--no-raw --user default --no-auth-warning --pass 's3cret pass' get k", "\"v\"\n");
    /* REDISCLI_AUTH instead of an argument */
    char cmd[512];
    snprintf(cmd, sizeof cmd,
             "REDISCLI_AUTH='s3cret pass' redis-cli -h 127.0.0.1 -p %d --no-raw get k", g_kvd.port);
    run_sh(cmd, NULL, &out, NULL, 60);
    cr_assert_str_eq(out, "\"v\"\n");
    free(out);
    /* RESP3: AUTH first, then HELLO 3 */
    cli(&out, NULL, "-3 --no-raw --no-auth-warning --pass 's3cret pass' get k");
    cr_assert_str_eq(out, "\"v\"\n");
    free(out);
    cli(&out, NULL, "-3 --no-raw --no-auth-warning --pass 's3cret pass' mget k nope");
    cr_assert_str_eq(out, "1) \"v\"\n2) (nil)\n");
    free(out);
    /* HELLO 3 AUTH in one command */
    cli(&out, NULL, "--no-raw hello 3 auth default 's3cret pass'");
    cr_assert(strncmp(out, "1# \"server\" => \"redis\"", 22) == 0, "%s", out);
    free(out);
    /* without the password, RESP3 cannot even start */
    cli(&out, NULL, "-3 --no-raw get k");
    cr_assert_not_null(strstr(out, "NOAUTH"), "%s", out);
    free(out);

    /* wrong ones last: each failure slows this address's next AUTHs */
    cli(&out, NULL, "--no-raw -a wrong --no-auth-warning get k");
    cr_assert_not_null(strstr(out, "AUTH failed: WRONGPASS invalid username-password pair or "
                                   "user is disabled."), "%s", out);
    cr_assert_not_null(strstr(out, "(error) NOAUTH Authentication required."), "%s", out);
    free(out);
    cli(&out, NULL, "--no-raw --user bob --no-auth-warning --pass 's3cret pass' get k");
    cr_assert_not_null(strstr(out, "WRONGPASS"), "%s", out);
    free(out);
    /* AUTH after failures waits its turn, then succeeds */
    cli_expect("--no-raw --no-auth-warning --pass 's3cret pass' get k", "\"v\"\n");
    kvd_stop();
}
