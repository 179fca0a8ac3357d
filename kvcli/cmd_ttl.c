/*
 * cmd_ttl.c - kvcli's key expiry: ttl, expire, persist, and the duration
 * that set --ttl and expire take.
 *
 *   ttl KEY                   the time left; "no expiry"; exit 1 if absent
 *   expire KEY DURATION [--nx|--xx|--gt|--lt]
 *   persist KEY
 *
 * A duration is a whole number with a unit ms, s, m or h ("30s",
 * "1500ms", "5m", "2h"); a bare number is seconds, as Redis's EXPIRE and
 * SET EX count. The server turns it into an absolute expiry time by its
 * own clock, so kvcli's clock never matters.
 */
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "kvcli.h"

#define MAX_TTL_MS ((uint64_t)1 << 52) /* what the protocol carries */

int kvcli_parse_duration(const char *s, uint64_t *ms)
{
    static const struct {
        const char *unit;
        uint64_t ms;
    } units[] = {{"", 1000}, {"ms", 1}, {"s", 1000}, {"m", 60000}, {"h", 3600000}};
    size_t digits = strspn(s, "0123456789");
    if (digits == 0 || digits > 19)
        return -1;
    char num[20];
    memcpy(num, s, digits);
    num[digits] = '\0';
    uint64_t v;
    if (kvcli_parse_u64(num, &v) != 0)
        return -1;
    for (size_t i = 0; i < sizeof units / sizeof units[0]; i++)
        if (strcmp(s + digits, units[i].unit) == 0) {
            if (v == 0 || v > MAX_TTL_MS / units[i].ms)
                return -1;
            *ms = v * units[i].ms;
            return 0;
        }
    return -1;
}

int kvcli_duration_err(const char *what, const char *value)
{
    return kvcli_usage_err("invalid %s '%s': expected a duration of at least 1ms with a"
                           " unit ms, s, m or h, such as 30s, 1500ms, 5m or 2h (a bare"
                           " number is seconds)", what, value);
}

/* "1h 2m 3.456s" style: the largest units that are not zero. */
static void format_ms(char *buf, size_t n, uint64_t ms)
{
    uint64_t h = ms / 3600000, m = ms / 60000 % 60, s = ms / 1000 % 60, r = ms % 1000;
    size_t k = 0;
    if (h)
        k += (size_t)snprintf(buf + k, n - k, "%lluh ", (unsigned long long)h);
    if (h || m)
        k += (size_t)snprintf(buf + k, n - k, "%llum ", (unsigned long long)m);
    snprintf(buf + k, n - k, "%llu.%03llus", (unsigned long long)s, (unsigned long long)r);
}

/* The key as a message shows it (escaped, one line). */
static void key_err(const char *fmt_before, const char *key)
{
    char *k = kvcli_escape(key, strlen(key));
    kvcli_err("%s '%s' not found", fmt_before, k ? k : "?");
    free(k);
}

/* ------------------------------------------------------------------ ttl */

int kvcli_cmd_ttl(kvcli_session *s, int argc, char **argv)
{
    kvcli_args a;
    int rc = kvcli_args_parse(argc, argv, NULL, 0, &s->cfg, &a);
    if (rc != 0)
        return rc;
    if (kvcli_maybe_help(s, "ttl"))
        goto out;
    if (a.npos != 1 || a.pos[0][0] == '\0') {
        rc = kvcli_usage_err("ttl needs one KEY, not empty (try 'kvcli ttl --help')");
        goto out;
    }
    const char *key = a.pos[0];
    kv_client *c = kvcli_connect(s, &rc);
    if (c == NULL)
        goto out;
    uint64_t at = 0, left = 0;
    int st = kv_client_ttl(c, key, strlen(key), &at, &left);
    if (st == KV_NOT_FOUND) {
        if (s->cfg.json)
            kvcli_json_print(json_pack("{s:o,s:b}", "key", kvcli_json_bytes(key, strlen(key)),
                                       "found", 0));
        key_err("key", key);
        rc = KVCLI_EXIT_NEGATIVE;
        goto out;
    }
    if (st != KV_OK) {
        rc = kvcli_fail(s, st, "ttl");
        goto out;
    }
    if (s->cfg.json) {
        json_t *o = json_pack("{s:o,s:b,s:b}", "key", kvcli_json_bytes(key, strlen(key)),
                              "found", 1, "expires", at != 0);
        if (o && at) {
            json_object_set_new(o, "ttl_ms", json_integer((json_int_t)left));
            json_object_set_new(o, "expire_at_ms", json_integer((json_int_t)at));
        }
        kvcli_json_print(o);
    } else if (at == 0) {
        printf("no expiry\n");
    } else {
        char d[64], when[64];
        time_t t = (time_t)(at / 1000);
        struct tm tm;
        gmtime_r(&t, &tm);
        size_t k = strftime(when, sizeof when, "%Y-%m-%dT%H:%M:%S", &tm);
        snprintf(when + k, sizeof when - k, ".%03lluZ", (unsigned long long)(at % 1000));
        format_ms(d, sizeof d, left);
        printf("%s (%llu ms; expires at %s)\n", d, (unsigned long long)left, when);
    }
out:
    kvcli_args_free(&a);
    return rc;
}

/* --------------------------------------------------------- expire, persist */

enum { EXP_NX, EXP_XX, EXP_GT, EXP_LT };
static const kvcli_optdef expire_opts[] = {
    [EXP_NX] = {"nx", KVCLI_OPT_FLAG},
    [EXP_XX] = {"xx", KVCLI_OPT_FLAG},
    [EXP_GT] = {"gt", KVCLI_OPT_FLAG},
    [EXP_LT] = {"lt", KVCLI_OPT_FLAG},
};

/* The answer to expire and persist: "OK (version V)", or exit 1. */
static int changed(kvcli_session *s, const char *cmd, const char *key, int st,
                   uint64_t version)
{
    if (st == KV_NOT_FOUND) {
        if (s->cfg.json)
            kvcli_json_print(json_pack("{s:b,s:o,s:s}", "ok", 0, "key",
                                       kvcli_json_bytes(key, strlen(key)), "error", "not_found"));
        char what[32];
        snprintf(what, sizeof what, "%s: key", cmd);
        key_err(what, key);
        return KVCLI_EXIT_NEGATIVE;
    }
    if (st == KV_VERSION_MISMATCH) {
        if (s->cfg.json)
            kvcli_json_print(json_pack("{s:b,s:o,s:s}", "ok", 0, "key",
                                       kvcli_json_bytes(key, strlen(key)), "error",
                                       "condition_failed"));
        char *k = kvcli_escape(key, strlen(key));
        kvcli_err("%s '%s': not changed: the condition does not hold for the key's"
                  " current expiry", cmd, k ? k : "?");
        free(k);
        return KVCLI_EXIT_NEGATIVE;
    }
    if (st != KV_OK)
        return kvcli_fail(s, st, cmd);
    if (s->cfg.json)
        kvcli_json_print(json_pack("{s:b,s:I}", "ok", 1, "version", (json_int_t)version));
    else
        printf("OK (version %llu)\n", (unsigned long long)version);
    return 0;
}

int kvcli_cmd_expire(kvcli_session *s, int argc, char **argv)
{
    kvcli_args a;
    int rc = kvcli_args_parse(argc, argv, expire_opts, 4, &s->cfg, &a);
    if (rc != 0)
        return rc;
    if (kvcli_maybe_help(s, "expire"))
        goto out;
    unsigned flags = (a.cmd_val[EXP_NX] ? KV_CLIENT_EXPIRE_NX : 0) |
                     (a.cmd_val[EXP_XX] ? KV_CLIENT_EXPIRE_XX : 0) |
                     (a.cmd_val[EXP_GT] ? KV_CLIENT_EXPIRE_GT : 0) |
                     (a.cmd_val[EXP_LT] ? KV_CLIENT_EXPIRE_LT : 0);
    uint64_t ms = 0;
    if (a.npos != 2 || a.pos[0][0] == '\0') {
        rc = kvcli_usage_err("expire needs KEY DURATION (try 'kvcli expire --help')");
        goto out;
    }
    if (kvcli_parse_duration(a.pos[1], &ms) != 0) {
        rc = kvcli_duration_err("duration", a.pos[1]);
        goto out;
    }
    if (((flags & KV_CLIENT_EXPIRE_NX) && (flags & ~KV_CLIENT_EXPIRE_NX)) ||
        ((flags & KV_CLIENT_EXPIRE_GT) && (flags & KV_CLIENT_EXPIRE_LT))) {
        rc = kvcli_usage_err("expire: --nx goes with no other condition, --gt not with --lt");
        goto out;
    }
    kv_client *c = kvcli_connect(s, &rc);
    if (c == NULL)
        goto out;
    uint64_t version = 0;
    const char *key = a.pos[0];
    int st = kv_client_expire_if(c, key, strlen(key), ms, flags, &version);
    rc = changed(s, "expire", key, st, version);
out:
    kvcli_args_free(&a);
    return rc;
}

int kvcli_cmd_persist(kvcli_session *s, int argc, char **argv)
{
    kvcli_args a;
    int rc = kvcli_args_parse(argc, argv, NULL, 0, &s->cfg, &a);
    if (rc != 0)
        return rc;
    if (kvcli_maybe_help(s, "persist"))
        goto out;
    if (a.npos != 1 || a.pos[0][0] == '\0') {
        rc = kvcli_usage_err("persist needs one KEY, not empty (try 'kvcli persist --help')");
        goto out;
    }
    kv_client *c = kvcli_connect(s, &rc);
    if (c == NULL)
        goto out;
    uint64_t version = 0;
    const char *key = a.pos[0];
    int st = kv_client_persist(c, key, strlen(key), &version);
    rc = changed(s, "persist", key, st, version);
out:
    kvcli_args_free(&a);
    return rc;
}
