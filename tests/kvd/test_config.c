/*
 * test_config.c - kvd's configuration (kvd/src/config.c): defaults, flags,
 * the INI file, KVD_PASSWORD, precedence, and rejection of bad values.
 */
#include <criterion/criterion.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "config.h"
#include "kv_proto.h"

/* Loads a configuration from a NULL-terminated flag list. */
static kvd_config_result load(kvd_config *cfg, const char *const *flags)
{
    char *argv[32] = {"kvd"};
    int argc = 1;
    for (size_t i = 0; flags[i] && argc < 31; i++)
        argv[argc++] = (char *)flags[i];
    argv[argc] = NULL;
    memset(cfg, 0, sizeof *cfg);
    return kvd_config_load(cfg, argc, argv);
}

/* Writes text to a fresh temporary file; returns its path (static). */
static const char *conf_file(const char *text)
{
    static char path[64];
    strcpy(path, "/tmp/kvdconf.XXXXXX");
    int fd = mkstemp(path);
    cr_assert_geq(fd, 0);
    cr_assert_eq(write(fd, text, strlen(text)), (ssize_t)strlen(text));
    close(fd);
    return path;
}

static void init(void)
{
    unsetenv("KVD_PASSWORD");
}

TestSuite(config, .init = init);

Test(config, defaults_are_safe)
{
    kvd_config c;
    cr_assert_eq(load(&c, (const char *[]){NULL}), KVD_CONFIG_RUN);
    cr_assert_eq(c.nbinds, 1);
    cr_assert_str_eq(c.binds[0], "127.0.0.1", "loopback only unless asked");
    cr_assert_eq(c.tcp_off, 0);
    cr_assert_eq(c.port, 7379);
    cr_assert_null(c.unix_path);
    cr_assert_null(c.password);
    cr_assert_eq(c.threads, 0);
    cr_assert_eq(c.max_frame_size, KV_PROTO_DEFAULT_MAX_FRAME);
    cr_assert_eq(c.daemonize, 0);
    cr_assert_eq(c.frame_timeout, 30, "a begun frame must finish in time by default");
    kvd_config_free(&c);
}

Test(config, flags_with_units)
{
    kvd_config c;
    cr_assert_eq(load(&c, (const char *[]){"--port", "0", "--max-value-size", "1m",
                                            "--max-output-buffer", "64k", "--threads", "3",
                                            "--bind", "::1,127.0.0.1", "--bind", "10.0.0.1",
                                            "--idle-timeout", "30", "--protected-mode", "no",
                                            NULL}),
                 KVD_CONFIG_RUN);
    cr_assert_eq(c.port, 0);
    cr_assert_eq(c.max_value_size, 1u << 20);
    cr_assert_eq(c.max_output_buffer, 64u << 10);
    cr_assert_eq(c.threads, 3);
    cr_assert_eq(c.nbinds, 3, "repeatable and comma separated");
    cr_assert_str_eq(c.binds[0], "::1");
    cr_assert_str_eq(c.binds[2], "10.0.0.1");
    cr_assert_eq(c.idle_timeout, 30);
    kvd_config_free(&c);
}

Test(config, bad_values_are_refused)
{
    const char *const bad[][3] = {
        {"--port", "70000", NULL},        {"--port", "-1", NULL},
        {"--max-value-size", "12q", NULL}, {"--max-key-size", "1m", NULL},
        {"--log-level", "loud", NULL},    {"--threads", "many", NULL},
        {"--bind", "example.com", NULL},  {"--bind", "1.2.3", NULL},
        {"--bind", "", NULL},             {"--max-frame-size", "8", NULL},
        {"--no-such-flag", NULL, NULL},   {"--port", NULL, NULL},
        {"--bind", "none", NULL},         {"--threads", "1000", NULL},
        {"--threads", "257", NULL},       {"--max-frame-size", "100", NULL},
        {"--max-frame-size", "1023", NULL}, {"--max-frame-size", "4294967296", NULL},
        {"--max-frame-size", "672m", NULL},
        {"--max-output-buffer", "4095", NULL}, {"--max-key-size", "0", NULL},
        {"--max-value-size", "2g", NULL}, {"--idle-timeout", "31536001", NULL},
        {"--initial-capacity", "2000g", NULL},
    };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        kvd_config c;
        cr_assert_eq(load(&c, bad[i]), KVD_CONFIG_ERROR, "accepted %s %s", bad[i][0],
                     bad[i][1] ? bad[i][1] : "");
        kvd_config_free(&c);
    }
}

/* The ends of each range are accepted: the limits are where --help says. */
Test(config, range_limits_are_accepted)
{
    const char *const good[][3] = {
        {"--threads", "256", NULL},           {"--threads", "0", NULL},
        {"--max-frame-size", "1k", NULL},     {"--max-frame-size", "704643071", NULL},
        {"--max-output-buffer", "4k", NULL},  {"--max-key-size", "64k", NULL},
        {"--max-value-size", "1g", NULL},     {"--idle-timeout", "31536000", NULL},
        {"--port", "65535", NULL},            {"--initial-capacity", "1024g", NULL},
    };
    for (size_t i = 0; i < sizeof good / sizeof good[0]; i++) {
        kvd_config c;
        const char *args[6] = {good[i][0], good[i][1], "--max-client-memory", "0", NULL};
        cr_assert_eq(load(&c, args), KVD_CONFIG_RUN, "refused %s %s", good[i][0], good[i][1]);
        kvd_config_free(&c);
    }
    kvd_config c;
    cr_assert_eq(load(&c, (const char *[]){"--max-frame-size", "600m", "--max-client-memory", "100m",
                                            NULL}),
                 KVD_CONFIG_ERROR, "max-client-memory must hold one frame");
    kvd_config_free(&c);
}

Test(config, file_then_flags)
{
    const char *path = conf_file("# comment\n"
                                 "log_level = warn\n"
                                 "bind = 127.0.0.1, ::1\n"
                                 "[kvd]\n"
                                 "max-value-size = 100\n"
                                 "max_key_size = 16\n"
                                 "port = 7400\n");
    kvd_config c;
    cr_assert_eq(load(&c, (const char *[]){"--config", path, "--max-value-size", "200", NULL}),
                 KVD_CONFIG_RUN);
    cr_assert_eq(c.max_value_size, 200, "a flag overrides the file");
    cr_assert_eq(c.max_key_size, 16, "dashes or underscores, top level or [kvd]");
    cr_assert_eq(c.port, 7400);
    cr_assert_eq(c.nbinds, 2);
    kvd_config_free(&c);

    cr_assert_eq(load(&c, (const char *[]){"--config", path, "--bind", "::1", NULL}),
                 KVD_CONFIG_RUN);
    cr_assert_eq(c.nbinds, 1, "--bind replaces the file's addresses");
    cr_assert_str_eq(c.binds[0], "::1");
    kvd_config_free(&c);
    unlink(path);
}

Test(config, bad_files_are_refused)
{
    kvd_config c;
    const char *path = conf_file("[kvd]\nno_such_key = 1\n");
    cr_assert_eq(load(&c, (const char *[]){"--config", path, NULL}), KVD_CONFIG_ERROR);
    kvd_config_free(&c);
    unlink(path);
    path = conf_file("[kvd]\nport = seventy\n");
    cr_assert_eq(load(&c, (const char *[]){"--config", path, NULL}), KVD_CONFIG_ERROR);
    kvd_config_free(&c);
    unlink(path);
    const char *const bad[] = {
        "[kvd]\nthreads = 1000\n",       /* out of range, as the flag          */
        "max-frame-size = 100\n",
        "port = 7379 # inline comment\n", /* comments take a line of their own */
        "[redis]\nport = 1\n",           /* only the top level and [kvd]       */
        "port = 1\nnot a setting\n",     /* syntax                             */
        "bind = 1.2.3\n",
    };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        path = conf_file(bad[i]);
        cr_assert_eq(load(&c, (const char *[]){"--config", path, NULL}), KVD_CONFIG_ERROR,
                     "accepted: %s", bad[i]);
        kvd_config_free(&c);
        unlink(path);
    }
    /* inih's line buffer is 200 bytes: a longer line would be split */
    char longline[400];
    snprintf(longline, sizeof longline, "password = %0300d\n", 7);
    path = conf_file(longline);
    cr_assert_eq(load(&c, (const char *[]){"--config", path, NULL}), KVD_CONFIG_ERROR);
    kvd_config_free(&c);
    unlink(path);
    cr_assert_eq(load(&c, (const char *[]){"--config", "/nonexistent/kvd.conf", NULL}),
                 KVD_CONFIG_ERROR);
    kvd_config_free(&c);
}

Test(config, password_from_environment)
{
    kvd_config c;
    setenv("KVD_PASSWORD", "s3cret", 1);
    cr_assert_eq(load(&c, (const char *[]){NULL}), KVD_CONFIG_RUN);
    cr_assert_str_eq(c.password, "s3cret");
    kvd_config_free(&c);
    cr_assert_eq(load(&c, (const char *[]){"--password", "flag", NULL}), KVD_CONFIG_RUN);
    cr_assert_str_eq(c.password, "flag", "the flag wins");
    kvd_config_free(&c);
    unsetenv("KVD_PASSWORD");
    cr_assert_eq(load(&c, (const char *[]){"--password", "", NULL}), KVD_CONFIG_ERROR,
                 "an empty password must not silently turn auth off");
    kvd_config_free(&c);
    const char *path = conf_file("password =\n");
    cr_assert_eq(load(&c, (const char *[]){"--config", path, NULL}), KVD_CONFIG_ERROR,
                 "nor an empty password in the file");
    unlink(path);
    kvd_config_free(&c);
    setenv("KVD_PASSWORD", "", 1);
    cr_assert_eq(load(&c, (const char *[]){NULL}), KVD_CONFIG_ERROR, "nor an empty KVD_PASSWORD");
    kvd_config_free(&c);
    unsetenv("KVD_PASSWORD");
}

Test(config, unix_socket_only)
{
    kvd_config c;
    cr_assert_eq(load(&c, (const char *[]){"--bind", "none", "--unix", "/tmp/k.sock", NULL}),
                 KVD_CONFIG_RUN);
    cr_assert_eq(c.tcp_off, 1);
    cr_assert_eq(c.nbinds, 0);
    cr_assert_str_eq(c.unix_path, "/tmp/k.sock");
    kvd_config_free(&c);
    cr_assert_eq(load(&c, (const char *[]){"--bind", "none", "--bind", "::1", "--unix", "/tmp/k",
                                            NULL}),
                 KVD_CONFIG_ERROR);
    kvd_config_free(&c);

    const char *path = conf_file("bind = none\nunix = /tmp/k.sock\n");
    cr_assert_eq(load(&c, (const char *[]){"--config", path, NULL}), KVD_CONFIG_RUN);
    cr_assert_eq(c.tcp_off, 1, "from the file too");
    cr_assert_eq(c.nbinds, 0);
    kvd_config_free(&c);
    cr_assert_eq(load(&c, (const char *[]){"--config", path, "--bind", "::1", NULL}),
                 KVD_CONFIG_RUN);
    cr_assert_eq(c.tcp_off, 0, "a --bind flag replaces the file's 'none'");
    cr_assert_eq(c.nbinds, 1);
    kvd_config_free(&c);
    unlink(path);
}

Test(config, addresses)
{
    struct sockaddr_storage ss;
    cr_assert(kvd_config_parse_addr("127.0.0.1", 80, &ss));
    cr_assert_eq(ss.ss_family, AF_INET);
    cr_assert(kvd_config_parse_addr("::1", 80, &ss));
    cr_assert_eq(ss.ss_family, AF_INET6);
    cr_assert(kvd_config_parse_addr("[::1]", 80, &ss));
    cr_assert(kvd_config_parse_addr("0.0.0.0", 0, NULL));
    cr_assert(!kvd_config_parse_addr("localhost", 80, NULL));
    cr_assert(!kvd_config_parse_addr("", 80, NULL));
    cr_assert(!kvd_config_parse_addr("[::1", 80, NULL));
    cr_assert(!kvd_config_parse_addr("1.2.3.4.5", 80, NULL));
}

Test(config, protected_mode)
{
    cr_assert(kvd_config_addr_is_loopback("127.0.0.1"));
    cr_assert(kvd_config_addr_is_loopback("127.1.2.3"));
    cr_assert(kvd_config_addr_is_loopback("::1"));
    cr_assert(kvd_config_addr_is_loopback("[::1]"));
    cr_assert(kvd_config_addr_is_loopback("::ffff:127.0.0.1"));
    cr_assert(!kvd_config_addr_is_loopback("0.0.0.0"));
    cr_assert(!kvd_config_addr_is_loopback("::"));
    cr_assert(!kvd_config_addr_is_loopback("10.0.0.1"));
    cr_assert(!kvd_config_addr_is_loopback("::ffff:10.0.0.1"));

    kvd_config c;
    const char *const refused[][5] = {
        {"--bind", "0.0.0.0", NULL},
        {"--bind", "::", NULL},
        {"--bind", "127.0.0.1,192.168.1.5", NULL},
        {"--bind", "0.0.0.0", "--protected-mode", "yes", NULL},
    };
    for (size_t i = 0; i < sizeof refused / sizeof refused[0]; i++) {
        cr_assert_eq(load(&c, refused[i]), KVD_CONFIG_ERROR, "no password: %s", refused[i][1]);
        kvd_config_free(&c);
    }
    cr_assert_eq(load(&c, (const char *[]){"--bind", "0.0.0.0", "--protected-mode", "no", NULL}),
                 KVD_CONFIG_RUN);
    cr_assert_eq(c.protected_mode, 0);
    kvd_config_free(&c);
    cr_assert_eq(load(&c, (const char *[]){"--bind", "::", "--password", "pw", NULL}),
                 KVD_CONFIG_RUN, "a password lifts it");
    kvd_config_free(&c);
    const char *path = conf_file("bind = 0.0.0.0\nprotected-mode = no\n");
    cr_assert_eq(load(&c, (const char *[]){"--config", path, NULL}), KVD_CONFIG_RUN,
                 "config key protected-mode");
    kvd_config_free(&c);
    unlink(path);
    cr_assert_eq(load(&c, (const char *[]){"--protected-mode", "maybe", NULL}), KVD_CONFIG_ERROR);
    kvd_config_free(&c);

    cr_assert_eq(load(&c, (const char *[]){"--bind", "localhost,::1", NULL}), KVD_CONFIG_RUN);
    cr_assert_eq(c.nbinds, 2);
    cr_assert_str_eq(c.binds[0], "127.0.0.1", "localhost means 127.0.0.1");
    kvd_config_free(&c);
}

Test(config, memory_limit_and_eviction_policy)
{
    kvd_config c;
    cr_assert_eq(load(&c, (const char *[]){NULL}), KVD_CONFIG_RUN);
    cr_assert_eq(c.max_memory, 0, "no limit by default");
    cr_assert_eq(c.eviction_policy, KV_EVICT_NOEVICTION);
    kvd_config_free(&c);
    cr_assert_eq(load(&c, (const char *[]){"--max-memory", "2gb", "--eviction-policy",
                                            "allkeys-lfu", NULL}),
                 KVD_CONFIG_RUN);
    cr_assert_eq(c.max_memory, (uint64_t)2 << 30);
    cr_assert_eq(c.eviction_policy, KV_EVICT_ALLKEYS_LFU);
    kvd_config_free(&c);
    cr_assert_eq(load(&c, (const char *[]){"--config", conf_file("max-memory = 64m\n"
                                                                 "eviction-policy = volatile-ttl\n"),
                                            NULL}),
                 KVD_CONFIG_RUN);
    cr_assert_eq(c.max_memory, (uint64_t)64 << 20);
    cr_assert_eq(c.eviction_policy, KV_EVICT_VOLATILE_TTL);
    kvd_config_free(&c);
    const char *const bad[][3] = {
        {"--max-memory", "100", NULL},     {"--max-memory", "1023k", NULL},
        {"--max-memory", "lots", NULL},    {"--eviction-policy", "lru", NULL},
        {"--eviction-policy", "", NULL},   {"--eviction-policy", NULL, NULL},
    };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        cr_assert_eq(load(&c, bad[i]), KVD_CONFIG_ERROR, "accepted %s %s", bad[i][0],
                     bad[i][1] ? bad[i][1] : "");
        kvd_config_free(&c);
    }
    /* each node of a cluster would evict different keys */
    cr_assert_eq(load(&c, (const char *[]){"--max-memory", "1g", "--node-id", "1",
                                            "--raft-addr", "127.0.0.1:7400", "--cluster",
                                            "1@127.0.0.1:7400", "--data-dir", "/tmp/x", NULL}),
                 KVD_CONFIG_ERROR);
    kvd_config_free(&c);
}
