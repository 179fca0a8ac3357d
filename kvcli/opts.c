/*
 * opts.c - option parsing shared by every kvcli command, and the
 * environment defaults.
 *
 * Global options (--host, --json, ...) are accepted anywhere on the line,
 * before or after the command, so "kvcli get k --json" and
 * "kvcli --json get k" mean the same. Each command adds its own table.
 * "--" ends the options; a lone "-" is a positional (stdin). Both
 * "--name value" and "--name=value" work.
 */
#include <errno.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>

#include "kvcli.h"

enum { G_HOST, G_PORT, G_UNIX, G_PASSWORD, G_TIMEOUT, G_MAX_FRAME, G_JSON,
       G_HELP, G_STALE, G_RETRIES, G_ENDPOINTS, G_NO_SYNC };

static const kvcli_optdef global_opts[] = {
    [G_HOST] = {"host", KVCLI_OPT_ARG},
    [G_PORT] = {"port", KVCLI_OPT_ARG},
    [G_UNIX] = {"unix", KVCLI_OPT_ARG},
    [G_PASSWORD] = {"password", KVCLI_OPT_ARG},
    [G_TIMEOUT] = {"timeout", KVCLI_OPT_ARG},
    [G_MAX_FRAME] = {"max-frame-size", KVCLI_OPT_ARG},
    [G_JSON] = {"json", KVCLI_OPT_FLAG},
    [G_HELP] = {"help", KVCLI_OPT_FLAG},
    [G_STALE] = {"stale", KVCLI_OPT_FLAG},
    [G_RETRIES] = {"retries", KVCLI_OPT_ARG},
    [G_ENDPOINTS] = {"endpoints", KVCLI_OPT_ARG},
    [G_NO_SYNC] = {"no-sync", KVCLI_OPT_FLAG},
};
#define NGLOBAL ((int)(sizeof global_opts / sizeof global_opts[0]))

int kvcli_parse_u64(const char *s, uint64_t *out)
{
    if (s == NULL || *s < '0' || *s > '9')
        return -1;
    errno = 0;
    char *end;
    unsigned long long v = strtoull(s, &end, 10);
    if (errno != 0 || *end != '\0')
        return -1;
    *out = v;
    return 0;
}

static int set_port(kvcli_config *cfg, const char *v, const char *from)
{
    uint64_t p;
    if (kvcli_parse_u64(v, &p) != 0 || p == 0 || p > 65535)
        return kvcli_usage_err("invalid port '%s' in %s (expected 1-65535)",
                               v, from);
    cfg->port = (unsigned)p;
    return 0;
}

static int set_timeout(kvcli_config *cfg, const char *v, const char *from)
{
    char *end;
    errno = 0;
    double t = strtod(v, &end);
    /* Upper bound keeps the milliseconds within an int. */
    if (*v == '\0' || *end != '\0' || errno != 0 || !(t >= 0) || t > 2e6)
        return kvcli_usage_err("invalid timeout '%s' in %s (expected seconds,"
                               " e.g. 2.5; 0 = no limit)", v, from);
    cfg->timeout_s = t;
    return 0;
}

int kvcli_config_from_env(kvcli_config *cfg)
{
    const char *v;
    int rc;
    if ((v = getenv("KV_HOST")) != NULL && *v)
        cfg->host = v;
    if ((v = getenv("KV_PORT")) != NULL && *v &&
        (rc = set_port(cfg, v, "KV_PORT")) != 0)
        return rc;
    if ((v = getenv("KV_UNIX")) != NULL && *v)
        cfg->unix_path = v;
    if ((v = getenv("KV_ENDPOINTS")) != NULL && *v)
        cfg->endpoints = v;
    if ((v = getenv("KV_PASSWORD")) != NULL && *v)
        cfg->password = v;
    if ((v = getenv("KV_TIMEOUT")) != NULL && *v &&
        (rc = set_timeout(cfg, v, "KV_TIMEOUT")) != 0)
        return rc;
    return 0;
}

static int find_opt(const kvcli_optdef *t, int n, const char *name,
                    size_t len)
{
    for (int i = 0; i < n; i++)
        if (strlen(t[i].name) == len && memcmp(t[i].name, name, len) == 0)
            return i;
    return -1;
}

int kvcli_is_global_opt(const char *name, int *takes_arg)
{
    const char *eq = strchr(name, '=');
    size_t len = eq ? (size_t)(eq - name) : strlen(name);
    int i = find_opt(global_opts, NGLOBAL, name, len);
    if (i < 0)
        return 0;
    /* "--host=x" carries its value: nothing more to skip. */
    *takes_arg = global_opts[i].kind == KVCLI_OPT_ARG && eq == NULL;
    return 1;
}

static int apply_global(kvcli_config *cfg, int which, const char *val)
{
    switch (which) {
    case G_HOST:
        cfg->host = val;
        cfg->unix_path = NULL; /* the last of --host / --unix wins */
        return 0;
    case G_PORT:
        return set_port(cfg, val, "--port");
    case G_UNIX:
        cfg->unix_path = val;
        return 0;
    case G_PASSWORD:
        cfg->password = val;
        return 0;
    case G_TIMEOUT:
        return set_timeout(cfg, val, "--timeout");
    case G_MAX_FRAME:
        /* As kvd's --max-frame-size: 16 bytes up to 4 GiB - 1. */
        if (kvcli_parse_u64(val, &cfg->max_frame) != 0 ||
            cfg->max_frame < 16 || cfg->max_frame > UINT32_MAX)
            return kvcli_usage_err("invalid --max-frame-size '%s' (expected"
                                   " bytes, 16-4294967295)", val);
        return 0;
    case G_JSON:
        cfg->json = 1;
        return 0;
    case G_STALE:
        cfg->stale = 1;
        return 0;
    case G_RETRIES: {
        uint64_t n;
        if (kvcli_parse_u64(val, &n) != 0 || n > KV_CLIENT_MAX_RETRIES)
            return kvcli_usage_err("invalid --retries '%s' (expected 0-%d)", val,
                                   KV_CLIENT_MAX_RETRIES);
        cfg->retries = (int)n;
        return 0;
    }
    case G_ENDPOINTS:
        cfg->endpoints = val;
        return 0;
    case G_NO_SYNC:
        cfg->no_sync = 1;
        return 0;
    default:
        cfg->help = 1;
        return 0;
    }
}

int kvcli_args_parse(int argc, char **argv, const kvcli_optdef *cmd,
                     int ncmd, kvcli_config *cfg, kvcli_args *out)
{
    memset(out, 0, sizeof *out);
    out->pos = calloc((size_t)argc + 1, sizeof *out->pos);
    if (out->pos == NULL) {
        kvcli_err("out of memory");
        return KVCLI_EXIT_SERVER;
    }
    int only_pos = 0;
    for (int i = 0; i < argc; i++) {
        char *a = argv[i];
        if (only_pos || a[0] != '-' || a[1] == '\0') {
            out->pos[out->npos++] = a;
            continue;
        }
        if (strcmp(a, "--") == 0) {
            only_pos = 1;
            continue;
        }
        if (strcmp(a, "-h") == 0) {
            cfg->help = 1;
            continue;
        }
        if (a[1] != '-') {
            kvcli_args_free(out);
            return kvcli_usage_err("unknown option '%s' (try --help)", a);
        }
        const char *name = a + 2;
        const char *eq = strchr(name, '=');
        size_t len = eq ? (size_t)(eq - name) : strlen(name);
        const kvcli_optdef *def;
        int gi = -1;
        int ci = find_opt(cmd, ncmd, name, len);
        if (ci >= 0) {
            def = &cmd[ci];
        } else if ((gi = find_opt(global_opts, NGLOBAL, name, len)) >= 0) {
            def = &global_opts[gi];
        } else {
            kvcli_args_free(out);
            return kvcli_usage_err("unknown option '--%.*s' (try --help)",
                                   (int)len, name);
        }
        const char *val = "";
        if (def->kind == KVCLI_OPT_ARG) {
            if (eq != NULL) {
                val = eq + 1;
            } else if (i + 1 < argc) {
                val = argv[++i];
            } else {
                kvcli_args_free(out);
                return kvcli_usage_err("option '--%s' needs a value",
                                       def->name);
            }
        } else if (eq != NULL) {
            kvcli_args_free(out);
            return kvcli_usage_err("option '--%s' takes no value", def->name);
        }
        if (def->kind == KVCLI_OPT_MARKER) {
            out->pos[out->npos++] = a;
        } else if (ci >= 0) {
            out->cmd_val[ci] = val;
        } else {
            int rc = apply_global(cfg, gi, val);
            if (rc != 0) {
                kvcli_args_free(out);
                return rc;
            }
        }
    }
    return 0;
}

void kvcli_args_free(kvcli_args *a)
{
    free(a->pos);
    a->pos = NULL;
    a->npos = 0;
}
