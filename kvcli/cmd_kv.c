/*
 * cmd_kv.c - kvcli's key commands: set, get, del.
 *
 *   set KEY VALUE | set K1=V1 [K2=V2 ...] | set KEY --file PATH
 *       [--if-version N] [--ttl DURATION]
 *                            several pairs go in one MSET: all or none,
 *                            with --ttl one expiry time for all
 *
 * Which form: KEY=VALUE pairs only when EVERY argument has a '=';
 * otherwise exactly two arguments are KEY VALUE, taken as they are (so a
 * key with '=' is "set 'a=b' VALUE"); more than two with only some '='
 * is a usage error rather than a guess.
 *   get K1 [K2 ...] [--raw] [--rev N]
 *                            one key: the bare value; several: "key: value";
 *                            --rev: as they were at revision N"
 *   del K1 [K2 ...]          one atomic delete; says how many existed
 *   del --prefix P           page by page, not atomic (cmd_bulk.c)
 *
 * A value "-" is read from standard input, so any bytes can be stored.
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "kvcli.h"

/* ------------------------------------------------------------------ set */

enum { SET_IF_VERSION, SET_FILE, SET_TTL };
static const kvcli_optdef set_opts[] = {
    [SET_IF_VERSION] = {"if-version", KVCLI_OPT_ARG},
    [SET_FILE] = {"file", KVCLI_OPT_ARG},
    [SET_TTL] = {"ttl", KVCLI_OPT_ARG},
};

/* An empty key is kvcli's own refusal (usage), not the server's. */
static int any_empty_key(int n, char **keys, const char *cmd)
{
    for (int i = 0; i < n; i++)
        if (keys[i][0] == '\0')
            return kvcli_usage_err("%s: a key cannot be empty", cmd);
    return 0;
}

/* Reads a value source into buf; 0 or an exit code. */
static int load_value(const kvcli_session *s, const char *path,
                      kvcli_buf *buf)
{
    if (s->interactive && strcmp(path, "-") == 0)
        return kvcli_usage_err("standard input is the prompt's own here: use"
                               " --file PATH for the value");
    if (kvcli_read_file(path, buf) != 0) {
        int e = errno;
        kvcli_buf_free(buf);
        if (strcmp(path, "-") == 0)
            kvcli_err("cannot read the value from standard input: %s",
                      strerror(e));
        else
            kvcli_err("cannot read '%s': %s", path, strerror(e));
        return KVCLI_EXIT_USAGE;
    }
    return 0;
}

static int set_single(kvcli_session *s, const char *key, const void *val,
                      size_t vlen, const char *if_version, uint64_t ttl_ms)
{
    uint64_t expected = 0;
    if (if_version && kvcli_parse_u64(if_version, &expected) != 0)
        return kvcli_usage_err("invalid --if-version '%s' (expected a version"
                               " number; 0 = the key must not exist)",
                               if_version);
    int rc;
    if (*key == '\0')
        return kvcli_usage_err("set: a key cannot be empty");
    kv_client *c = kvcli_connect(s, &rc);
    if (c == NULL)
        return rc;
    uint64_t version = 0;
    size_t klen = strlen(key);
    int st = if_version && ttl_ms
                 ? kv_client_set_if_ttl(c, key, klen, val, vlen, expected, ttl_ms, &version)
             : if_version ? kv_client_set_if(c, key, klen, val, vlen, expected, &version)
             : ttl_ms     ? kv_client_set_ttl(c, key, klen, val, vlen, ttl_ms, &version)
                          : kv_client_set(c, key, klen, val, vlen, &version);
    if (st == KV_VERSION_MISMATCH) {
        if (s->cfg.json)
            kvcli_json_print(json_pack("{s:b,s:o,s:s}", "ok", 0, "key",
                                       kvcli_json_bytes(key, klen), "error",
                                       "version_mismatch"));
        char *k = kvcli_escape(key, klen); /* one line, whatever the key */
        kvcli_err("set '%s': version mismatch: the key is not at version %s"
                  " (it changed%s)", k ? k : "?", if_version,
                  expected == 0 ? ", or exists already" : " or does not exist");
        free(k);
        return KVCLI_EXIT_NEGATIVE;
    }
    if (st != KV_OK)
        return kvcli_fail(s, st, "set");
    if (s->cfg.json)
        kvcli_json_print(json_pack("{s:b,s:I}", "ok", 1, "version",
                                   (json_int_t)version));
    else
        printf("OK (version %llu)\n", (unsigned long long)version);
    return 0;
}

static int set_pairs(kvcli_session *s, int npos, char **pos, uint64_t ttl_ms)
{
    kv_pair *pairs = calloc((size_t)npos, sizeof *pairs);
    kvcli_buf in = {0};
    int rc = 0, used_stdin = 0;
    if (pairs == NULL) {
        kvcli_err("out of memory");
        return KVCLI_EXIT_SERVER;
    }
    for (int i = 0; i < npos; i++) {
        char *eq = strchr(pos[i], '=');
        if (eq == pos[i]) {
            rc = kvcli_usage_err("set: empty key in '%s'", pos[i]);
            goto out;
        }
        pairs[i].key = pos[i];
        pairs[i].klen = (size_t)(eq - pos[i]);
        if (strcmp(eq + 1, "-") == 0) {
            if (used_stdin++) {
                rc = kvcli_usage_err("set: only one value can come from"
                                     " standard input ('-')");
                goto out;
            }
            if ((rc = load_value(s, "-", &in)) != 0)
                goto out;
            pairs[i].val = in.data;
            pairs[i].vlen = in.len;
        } else {
            pairs[i].val = eq + 1;
            pairs[i].vlen = strlen(eq + 1);
        }
    }
    kv_client *c = kvcli_connect(s, &rc);
    if (c == NULL)
        goto out;
    uint64_t version = 0;
    int st = ttl_ms ? kv_client_mset_ttl(c, pairs, (size_t)npos, ttl_ms, &version)
                    : kv_client_mset(c, pairs, (size_t)npos, &version);
    if (st != KV_OK) {
        rc = kvcli_fail(s, st, "set (nothing was changed)");
        goto out;
    }
    if (s->cfg.json)
        kvcli_json_print(json_pack("{s:b,s:i,s:I}", "ok", 1, "keys", npos,
                                   "version", (json_int_t)version));
    else
        printf("OK, %d key%s set (version %llu)\n", npos, npos == 1 ? "" : "s",
               (unsigned long long)version);
out:
    kvcli_buf_free(&in);
    free(pairs);
    return rc;
}

int kvcli_cmd_set(kvcli_session *s, int argc, char **argv)
{
    kvcli_args a;
    int rc = kvcli_args_parse(argc, argv, set_opts, 3, &s->cfg, &a);
    if (rc != 0)
        return rc;
    if (kvcli_maybe_help(s, "set"))
        goto out;
    const char *if_version = a.cmd_val[SET_IF_VERSION];
    const char *file = a.cmd_val[SET_FILE];
    uint64_t ttl = 0; /* 0: no expiry */
    if (a.cmd_val[SET_TTL] && kvcli_parse_duration(a.cmd_val[SET_TTL], &ttl) != 0) {
        rc = kvcli_duration_err("--ttl", a.cmd_val[SET_TTL]);
        goto out;
    }
    int all_pairs = a.npos > 0;
    for (int i = 0; i < a.npos; i++)
        all_pairs &= strchr(a.pos[i], '=') != NULL;

    if (file) {
        if (a.npos != 1) {
            rc = kvcli_usage_err("set --file PATH takes exactly one KEY"
                                 " (try 'kvcli set --help')");
            goto out;
        }
        kvcli_buf v = {0};
        if ((rc = load_value(s, file, &v)) == 0)
            rc = set_single(s, a.pos[0], v.data, v.len, if_version, ttl);
        kvcli_buf_free(&v);
    } else if (a.npos == 2 && !all_pairs) {
        if (strcmp(a.pos[1], "-") == 0) {
            kvcli_buf v = {0};
            if ((rc = load_value(s, "-", &v)) == 0)
                rc = set_single(s, a.pos[0], v.data, v.len, if_version, ttl);
            kvcli_buf_free(&v);
        } else {
            rc = set_single(s, a.pos[0], a.pos[1], strlen(a.pos[1]),
                            if_version, ttl);
        }
    } else if (all_pairs) {
        if (if_version) {
            rc = kvcli_usage_err("set: --if-version works with one KEY VALUE"
                                 " (use 'kvcli txn' for conditions on"
                                 " several keys)");
        } else if (a.npos == 1) {
            /* One pair: a plain SET, so --if-version-free output matches. */
            char *eq = strchr(a.pos[0], '=');
            *eq = '\0';
            if (eq == a.pos[0])
                rc = kvcli_usage_err("set: empty key in '=%s'", eq + 1);
            else if (strcmp(eq + 1, "-") == 0) {
                kvcli_buf v = {0};
                if ((rc = load_value(s, "-", &v)) == 0)
                    rc = set_single(s, a.pos[0], v.data, v.len, NULL, ttl);
                kvcli_buf_free(&v);
            } else {
                rc = set_single(s, a.pos[0], eq + 1, strlen(eq + 1), NULL, ttl);
            }
            *eq = '=';
        } else {
            rc = set_pairs(s, a.npos, a.pos, ttl);
        }
    } else if (a.npos > 2) {
        /* Some words have '=', some not: guessing which is a key and which
         * a value would set keys nobody asked for. */
        int i = 0;
        while (strchr(a.pos[i], '=') != NULL)
            i++;
        char *w = kvcli_escape(a.pos[i], strlen(a.pos[i]));
        rc = kvcli_usage_err("set: '%s' is not KEY=VALUE: with more than two"
                             " arguments every one must be KEY=VALUE (try"
                             " 'kvcli set --help')", w ? w : "?");
        free(w);
    } else {
        rc = kvcli_usage_err("set needs KEY VALUE, KEY=VALUE..., or KEY"
                             " --file PATH (try 'kvcli set --help')");
    }
out:
    kvcli_args_free(&a);
    return rc;
}

/* ------------------------------------------------------------------ get */

enum { GET_RAW, GET_REV };
static const kvcli_optdef get_opts[] = {
    [GET_RAW] = {"raw", KVCLI_OPT_FLAG},
    [GET_REV] = {"rev", KVCLI_OPT_ARG},
};

static json_t *json_entry(const char *key, const kv_value *v)
{
    json_t *o = json_pack("{s:o,s:b}", "key",
                          kvcli_json_bytes(key, strlen(key)), "found",
                          v->data != NULL);
    if (o && v->data) {
        json_object_set_new(o, "value", kvcli_json_bytes(v->data, v->len));
        json_object_set_new(o, "version", json_integer((json_int_t)v->version));
    }
    return o;
}

static int get_one(kvcli_session *s, kv_client *c, const char *key, int raw, uint64_t rev)
{
    kv_value v = {0};
    int st = rev ? kv_client_get_at(c, key, strlen(key), rev, &v)
                 : kv_client_get(c, key, strlen(key), &v);
    if (st == KV_NOT_FOUND) {
        if (s->cfg.json)
            kvcli_json_print(json_entry(key, &v));
        char *k = kvcli_escape(key, strlen(key));
        if (rev)
            kvcli_err("key '%s' did not exist at revision %llu", k ? k : "?",
                      (unsigned long long)rev);
        else
            kvcli_err("key '%s' not found", k ? k : "?");
        free(k);
        return KVCLI_EXIT_NEGATIVE;
    }
    if (st != KV_OK)
        return kvcli_fail(s, st, "get");
    if (raw) {
        fwrite(v.data, 1, v.len, stdout);
    } else if (s->cfg.json) {
        kvcli_json_print(json_entry(key, &v));
    } else {
        kvcli_put_escaped(stdout, v.data, v.len);
        fputc('\n', stdout);
    }
    kv_client_value_free(&v);
    return 0;
}

int kvcli_cmd_get(kvcli_session *s, int argc, char **argv)
{
    kvcli_args a;
    int rc = kvcli_args_parse(argc, argv, get_opts, 2, &s->cfg, &a);
    if (rc != 0)
        return rc;
    if (kvcli_maybe_help(s, "get"))
        goto out;
    int raw = a.cmd_val[GET_RAW] != NULL;
    uint64_t rev = 0; /* 0: the latest values */
    if (a.cmd_val[GET_REV] && (kvcli_parse_u64(a.cmd_val[GET_REV], &rev) != 0 || rev == 0)) {
        rc = kvcli_usage_err("invalid --rev '%s' (expected a revision >= 1)", a.cmd_val[GET_REV]);
        goto out;
    }
    if (a.npos == 0) {
        rc = kvcli_usage_err("get needs at least one KEY (try 'kvcli get"
                             " --help')");
        goto out;
    }
    if (raw && (a.npos != 1 || s->cfg.json)) {
        rc = kvcli_usage_err("get --raw takes exactly one KEY and no --json");
        goto out;
    }
    if ((rc = any_empty_key(a.npos, a.pos, "get")) != 0)
        goto out;
    kv_client *c = kvcli_connect(s, &rc);
    if (c == NULL)
        goto out;
    if (a.npos == 1) {
        rc = get_one(s, c, a.pos[0], raw, rev);
        goto out;
    }
    size_t n = (size_t)a.npos;
    kv_key *keys = calloc(n, sizeof *keys);
    kv_value *vals = calloc(n, sizeof *vals);
    if (keys == NULL || vals == NULL) {
        free(keys);
        free(vals);
        kvcli_err("out of memory");
        rc = KVCLI_EXIT_SERVER;
        goto out;
    }
    for (size_t i = 0; i < n; i++) {
        keys[i].data = a.pos[i];
        keys[i].len = strlen(a.pos[i]);
    }
    int st = rev ? kv_client_mget_at(c, keys, n, rev, vals) : kv_client_mget(c, keys, n, vals);
    if (st != KV_OK) {
        rc = kvcli_fail(s, st, "get");
    } else {
        json_t *arr = s->cfg.json ? json_array() : NULL;
        for (size_t i = 0; i < n; i++) {
            if (vals[i].data == NULL)
                rc = KVCLI_EXIT_NEGATIVE;
            if (arr) {
                json_array_append_new(arr, json_entry(a.pos[i], &vals[i]));
                continue;
            }
            kvcli_put_escaped(stdout, keys[i].data, keys[i].len);
            fputs(": ", stdout);
            if (vals[i].data == NULL)
                fputs("(not found)", stdout);
            else
                kvcli_put_escaped(stdout, vals[i].data, vals[i].len);
            fputc('\n', stdout);
        }
        if (arr)
            kvcli_json_print(arr);
        kv_client_values_free(vals, n);
    }
    free(keys);
    free(vals);
out:
    kvcli_args_free(&a);
    return rc;
}

/* ------------------------------------------------------------------ del */

enum { DEL_PREFIX };
static const kvcli_optdef del_opts[] = {
    [DEL_PREFIX] = {"prefix", KVCLI_OPT_ARG},
};

int kvcli_cmd_del(kvcli_session *s, int argc, char **argv)
{
    kvcli_args a;
    int rc = kvcli_args_parse(argc, argv, del_opts, 1, &s->cfg, &a);
    if (rc != 0)
        return rc;
    if (kvcli_maybe_help(s, "del"))
        goto out;
    if (a.cmd_val[DEL_PREFIX] != NULL) {
        if (a.npos != 0)
            rc = kvcli_usage_err("del: give KEYs or --prefix P, not both");
        else
            rc = kvcli_del_prefix(s, a.cmd_val[DEL_PREFIX]);
        goto out;
    }
    if (a.npos == 0) {
        rc = kvcli_usage_err("del needs at least one KEY (try 'kvcli del"
                             " --help')");
        goto out;
    }

    size_t n = (size_t)a.npos;
    kv_key *keys = calloc(n, sizeof *keys);
    if (keys == NULL) {
        kvcli_err("out of memory");
        rc = KVCLI_EXIT_SERVER;
        goto out;
    }
    for (size_t i = 0; i < n; i++) {
        keys[i].data = a.pos[i];
        keys[i].len = strlen(a.pos[i]);
    }
    kv_client *c = NULL;
    if ((rc = any_empty_key(a.npos, a.pos, "del")) == 0)
        c = kvcli_connect(s, &rc);
    if (c != NULL) {
        size_t deleted = 0;
        uint64_t version = 0;
        int st = kv_client_mdel(c, keys, n, &deleted, &version);
        if (st != KV_OK) {
            rc = kvcli_fail(s, st, "del");
        } else {
            if (s->cfg.json)
                kvcli_json_print(json_pack("{s:I,s:I,s:I}", "deleted",
                                           (json_int_t)deleted, "requested",
                                           (json_int_t)n, "version",
                                           (json_int_t)version));
            else if (n == 1)
                printf("%s\n", deleted ? "deleted 1 key" : "(not found)");
            else
                printf("deleted %zu of %zu keys\n", deleted, n);
            /* 1 when a named key was missing, as for get ("del a a"
             * names one key). */
            size_t distinct = 0;
            for (size_t i = 0; i < n; i++) {
                size_t k = 0;
                while (k < i && strcmp(a.pos[k], a.pos[i]) != 0)
                    k++;
                distinct += k == i;
            }
            rc = deleted < distinct ? KVCLI_EXIT_NEGATIVE : 0;
        }
    }
    free(keys);
out:
    kvcli_args_free(&a);
    return rc;
}
