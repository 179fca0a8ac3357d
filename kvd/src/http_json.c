/*
 * http_json.c - JSON for the HTTP front-end: the bodies of POST /v1/txn,
 * /v1/mset and /v1/mget turned into a kvd_cmd (parsed with jansson), and
 * the small writers the replies use (escaped strings, base64 strings).
 *
 * Request shapes (docs/http.md); keys and values are base64, versions a
 * number or a decimal string:
 *   txn  {"compares":[{"key","target":"version|value|exists|absent",
 *          "version"|"value"}...], "then":[op...], "else":[op...]}
 *        op = {"op":"get|set|put|delete","key","value",
 *              "ttl":"30s" | "expires_at":UNIX_MS}   (a set's expiry)
 *   mset {"pairs":[{"key","value"}...]}
 *   mget {"keys":["..."...]}
 * Unknown fields are refused (a misspelt "compare" would otherwise turn a
 * conditional transaction into an unconditional one).
 *
 * Bounds: a JSON tree takes more memory than its text (about 64 bytes a
 * value), so the body is scanned first and refused (FRAME_TOO_LARGE) when
 * its estimated tree would exceed four times the request limit. The
 * decoded bytes and the command's arrays go to the connection's arena.
 */
#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include <strings.h>

#include "base64.h"
#include "http.h"
#include "http_url.h"

#define TOKEN_COST 64 /* bytes of jansson tree per JSON value, about */

/* ---- writers ------------------------------------------------------------------ */

int kvd_http_json_string(kv_proto_buf *b, const char *s, size_t n)
{
    static const char hex[] = "0123456789abcdef";
    if (kv_proto_buf_reserve(b, n * 6 + 2) != KV_OK)
        return KV_NO_MEMORY;
    uint8_t *o = b->data + b->len;
    *o++ = '"';
    for (size_t i = 0; i < n; i++) {
        unsigned char c = (unsigned char)s[i];
        if (c == '"' || c == '\\') {
            *o++ = '\\';
            *o++ = c;
        } else if (c < 0x20 || c == 0x7f) {
            *o++ = '\\';
            *o++ = 'u';
            *o++ = '0';
            *o++ = '0';
            *o++ = (uint8_t)hex[c >> 4];
            *o++ = (uint8_t)hex[c & 15];
        } else {
            *o++ = c; /* kvd's own texts: UTF-8 or ASCII */
        }
    }
    *o++ = '"';
    b->len = (size_t)(o - b->data);
    return KV_OK;
}

int kvd_http_json_base64(kv_proto_buf *b, const void *p, size_t n)
{
    size_t e = kvd_base64_encoded_len(n);
    if (kv_proto_buf_reserve(b, e + 2) != KV_OK)
        return KV_NO_MEMORY;
    b->data[b->len] = '"';
    kvd_base64_encode(p, n, (char *)b->data + b->len + 1);
    b->data[b->len + 1 + e] = '"';
    b->len += e + 2;
    return KV_OK;
}

/* ---- reading -------------------------------------------------------------------- */

typedef struct jctx {
    kv_proto_arena *arena;
    char *err;
    size_t errlen;
    int status;
} jctx;

static int bad(jctx *j, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static int bad(jctx *j, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(j->err, j->errlen, fmt, ap);
    va_end(ap);
    if (!j->status)
        j->status = KV_INVALID_ARGUMENT;
    return -1;
}

/* What parsing s[0..n) may take: its bytes plus TOKEN_COST per value. */
static size_t estimate(const char *s, size_t n)
{
    size_t tokens = 1;
    int in_str = 0;
    for (size_t i = 0; i < n; i++) {
        char c = s[i];
        if (in_str) {
            if (c == '\\')
                i++;
            else if (c == '"')
                in_str = 0;
        } else if (c == '"') {
            in_str = 1;
            tokens++;
        } else if (c == '[' || c == '{' || c == ',' || c == ':') {
            tokens++;
        }
    }
    return n + tokens * TOKEN_COST;
}

/* The base64 string v, decoded into the arena. */
static int get_bytes(jctx *j, json_t *v, const char *what, const void **p, size_t *n)
{
    if (!json_is_string(v))
        return bad(j, "%s must be a base64 string", what);
    size_t len = json_string_length(v);
    void *out = kv_proto_arena_alloc(j->arena, kvd_base64_decoded_max(len));
    if (!out) {
        j->status = KV_NO_MEMORY;
        return bad(j, "server out of memory");
    }
    if (kvd_base64_decode(json_string_value(v), len, out, n) != 0)
        return bad(j, "%s is not valid base64", what);
    *p = out;
    return 0;
}

/* A version: a number >= 0 or a decimal string (64-bit numbers travel as
 * strings in JSON, as etcd writes them). */
static int get_version(jctx *j, json_t *v, const char *what, uint64_t *out)
{
    if (json_is_integer(v) && json_integer_value(v) >= 0) {
        *out = (uint64_t)json_integer_value(v);
        return 0;
    }
    if (json_is_string(v) &&
        kvd_http_parse_u64(json_string_value(v), json_string_length(v), out) == 0)
        return 0;
    return bad(j, "%s must be a number >= 0 or a decimal string", what);
}

/* Refuses fields of o other than the NULL-terminated names. */
static int only_fields(jctx *j, json_t *o, const char *where, const char *const *names)
{
    const char *k;
    json_t *v;
    json_object_foreach(o, k, v) {
        int known = 0;
        for (size_t i = 0; names[i]; i++)
            known |= strcmp(k, names[i]) == 0;
        if (!known)
            return bad(j, "unknown field \"%.40s\" in %s", k, where);
    }
    return 0;
}

/* The array field name of root (absent: empty). */
static int get_array(jctx *j, json_t *root, const char *name, json_t **out, size_t *n)
{
    json_t *a = json_object_get(root, name);
    if (a && !json_is_array(a))
        return bad(j, "\"%s\" must be an array", name);
    *out = a;
    *n = a ? json_array_size(a) : 0;
    return 0;
}

static void *arena_array(jctx *j, size_t n, size_t size)
{
    void *p = kv_proto_arena_alloc(j->arena, (n ? n : 1) * size);
    if (!p) {
        j->status = KV_NO_MEMORY;
        bad(j, "server out of memory");
    }
    return p;
}

static int parse_compare(jctx *j, json_t *c, size_t i, kv_compare *out)
{
    static const char *const fields[] = {"key", "target", "version", "value", "result", NULL};
    char where[48];
    snprintf(where, sizeof where, "compares[%zu]", i);
    if (!json_is_object(c))
        return bad(j, "%s must be an object", where);
    if (only_fields(j, c, where, fields) != 0 ||
        get_bytes(j, json_object_get(c, "key"), "a compare's key", &out->key, &out->klen) != 0)
        return -1;
    json_t *res = json_object_get(c, "result");
    if (res && !(json_is_string(res) && strcasecmp(json_string_value(res), "equal") == 0))
        return bad(j, "%s: only \"result\": \"EQUAL\" is supported", where);
    json_t *t = json_object_get(c, "target");
    const char *target = json_is_string(t) ? json_string_value(t)
                         : json_object_get(c, "version") ? "version"
                         : json_object_get(c, "value") ? "value" : NULL;
    if (!target || (t && !json_is_string(t)))
        return bad(j, "%s needs a \"target\": version, value, exists or absent", where);
    if (strcasecmp(target, "version") == 0) {
        out->kind = KV_CMP_VERSION_EQ;
        return get_version(j, json_object_get(c, "version"), "a compare's version",
                           &out->version);
    }
    if (strcasecmp(target, "value") == 0) {
        out->kind = KV_CMP_VALUE_EQ;
        return get_bytes(j, json_object_get(c, "value"), "a compare's value", &out->value,
                         &out->vlen);
    }
    if (strcasecmp(target, "exists") == 0) {
        out->kind = KV_CMP_EXISTS;
        return 0;
    }
    if (strcasecmp(target, "absent") == 0) {
        out->kind = KV_CMP_ABSENT;
        return 0;
    }
    return bad(j, "%s: unknown target \"%.20s\" (version, value, exists, absent)", where, target);
}

/* A set op's expiry: "ttl" (a duration, as PUT's ?ttl=: ms from when kvd
 * runs it, *in set to 1) or "expires_at" (a Unix time in ms). */
static int parse_op_expiry(jctx *j, json_t *o, const char *where, kv_op *out,
                           unsigned char *in)
{
    json_t *ttl = json_object_get(o, "ttl"), *at = json_object_get(o, "expires_at");
    if (!ttl && !at)
        return 0;
    if (out->kind != KV_OP_SET)
        return bad(j, "%s: only a set has an expiry", where);
    if (ttl && at)
        return bad(j, "%s: give \"ttl\" or \"expires_at\", not both", where);
    if (ttl) {
        const char *d = json_is_string(ttl) ? json_string_value(ttl) : "";
        if (kvd_http_parse_duration(d, strlen(d), KVD_EXP_MAX, &out->expire_at_ms) != 0)
            return bad(j, "%s: \"ttl\" must be a duration >= 1 ms such as \"30s\", "
                          "\"1500ms\", \"5m\", \"2h\"", where);
        *in = 1;
        return 0;
    }
    if (get_version(j, at, "an op's expires_at", &out->expire_at_ms) != 0)
        return -1;
    if (out->expire_at_ms == 0 || out->expire_at_ms > KVD_EXP_MAX)
        return bad(j, "%s: \"expires_at\" must be a Unix time in ms (1..2^52)", where);
    return 0;
}

static int parse_op(jctx *j, json_t *o, const char *list, size_t i, kv_op *out,
                    unsigned char *in)
{
    static const char *const fields[] = {"op", "key", "value", "ttl", "expires_at", NULL};
    char where[48];
    snprintf(where, sizeof where, "%s[%zu]", list, i);
    if (!json_is_object(o))
        return bad(j, "%s must be an object", where);
    if (only_fields(j, o, where, fields) != 0)
        return -1;
    json_t *op = json_object_get(o, "op");
    const char *name = json_is_string(op) ? json_string_value(op) : "";
    if (strcasecmp(name, "get") == 0)
        out->kind = KV_OP_GET;
    else if (strcasecmp(name, "set") == 0 || strcasecmp(name, "put") == 0)
        out->kind = KV_OP_SET;
    else if (strcasecmp(name, "delete") == 0 || strcasecmp(name, "del") == 0)
        out->kind = KV_OP_DELETE;
    else
        return bad(j, "%s needs an \"op\": get, set or delete", where);
    if (get_bytes(j, json_object_get(o, "key"), "an op's key", &out->key, &out->klen) != 0)
        return -1;
    json_t *v = json_object_get(o, "value");
    if (out->kind == KV_OP_SET && get_bytes(j, v, "a set's value", &out->value, &out->vlen) != 0)
        return -1;
    if (out->kind != KV_OP_SET && v)
        return bad(j, "%s: only a set has a value", where);
    return parse_op_expiry(j, o, where, out, in);
}

/* The ops of list name; *in_out: which ones have a time from now (NULL:
 * none has). */
static int parse_ops(jctx *j, json_t *root, const char *name, const kv_op **out, size_t *n,
                     const unsigned char **in_out)
{
    json_t *a = NULL;
    if (get_array(j, root, name, &a, n) != 0)
        return -1;
    kv_op *ops = arena_array(j, *n, sizeof *ops);
    unsigned char *in = arena_array(j, *n, 1);
    if (!ops || !in)
        return -1;
    memset(ops, 0, (*n ? *n : 1) * sizeof *ops);
    memset(in, 0, *n ? *n : 1);
    int any = 0;
    for (size_t i = 0; i < *n; i++) {
        if (parse_op(j, json_array_get(a, i), name, i, &ops[i], &in[i]) != 0)
            return -1;
        any |= in[i];
    }
    *out = ops;
    *in_out = any ? in : NULL;
    return 0;
}

static int parse_txn(jctx *j, json_t *root, kvd_cmd *cmd)
{
    static const char *const fields[] = {"compares", "then", "else", NULL};
    json_t *a = NULL;
    size_t n = 0;
    if (only_fields(j, root, "a txn", fields) != 0 || get_array(j, root, "compares", &a, &n) != 0)
        return -1;
    kv_compare *cmps = arena_array(j, n, sizeof *cmps);
    if (!cmps)
        return -1;
    memset(cmps, 0, (n ? n : 1) * sizeof *cmps);
    for (size_t i = 0; i < n; i++)
        if (parse_compare(j, json_array_get(a, i), i, &cmps[i]) != 0)
            return -1;
    cmd->kind = KVD_CMD_TXN;
    cmd->cmps = cmps;
    cmd->ncmps = n;
    if (parse_ops(j, root, "then", &cmd->then_ops, &cmd->nthen, &cmd->then_in) != 0 ||
        parse_ops(j, root, "else", &cmd->else_ops, &cmd->nelse, &cmd->else_in) != 0)
        return -1;
    return 0;
}

static int parse_mset(jctx *j, json_t *root, kvd_cmd *cmd)
{
    static const char *const fields[] = {"pairs", NULL};
    static const char *const pair_fields[] = {"key", "value", NULL};
    json_t *a = NULL;
    size_t n = 0;
    if (only_fields(j, root, "an mset", fields) != 0 || get_array(j, root, "pairs", &a, &n) != 0)
        return -1;
    if (n == 0)
        return bad(j, "\"pairs\" needs at least one {\"key\", \"value\"}");
    kv_pair *pairs = arena_array(j, n, sizeof *pairs);
    if (!pairs)
        return -1;
    for (size_t i = 0; i < n; i++) {
        json_t *p = json_array_get(a, i);
        char where[32];
        snprintf(where, sizeof where, "pairs[%zu]", i);
        if (!json_is_object(p))
            return bad(j, "%s must be an object", where);
        if (only_fields(j, p, where, pair_fields) != 0 ||
            get_bytes(j, json_object_get(p, "key"), "a pair's key", &pairs[i].key,
                      &pairs[i].klen) != 0 ||
            get_bytes(j, json_object_get(p, "value"), "a pair's value", &pairs[i].val,
                      &pairs[i].vlen) != 0)
            return -1;
    }
    cmd->kind = KVD_CMD_MSET;
    cmd->pairs = pairs;
    cmd->npairs = n;
    return 0;
}

static int parse_mget(jctx *j, json_t *root, kvd_cmd *cmd)
{
    static const char *const fields[] = {"keys", "revision", NULL};
    json_t *a = NULL;
    size_t n = 0;
    if (only_fields(j, root, "an mget", fields) != 0 || get_array(j, root, "keys", &a, &n) != 0)
        return -1;
    if (n == 0)
        return bad(j, "\"keys\" needs at least one key");
    kv_key *keys = arena_array(j, n, sizeof *keys);
    if (!keys)
        return -1;
    for (size_t i = 0; i < n; i++)
        if (get_bytes(j, json_array_get(a, i), "a key", &keys[i].data, &keys[i].len) != 0)
            return -1;
    cmd->kind = KVD_CMD_MGET;
    cmd->keys = keys;
    cmd->nkeys = n;
    json_t *rev = json_object_get(root, "revision");
    if (rev) { /* the keys as they were at a revision */
        if (get_version(j, rev, "\"revision\"", &cmd->rev) != 0)
            return -1;
        if (cmd->rev == 0)
            return bad(j, "\"revision\" must be 1 or more");
        cmd->kind = KVD_CMD_MGET_AT;
    }
    return 0;
}

/* {"keys": [k...]} or {"prefix": p}, "to_revision": N, "unchanged_since": M? */
static int parse_rollback(jctx *j, json_t *root, kvd_cmd *cmd)
{
    static const char *const fields[] = {"keys", "prefix", "to_revision", "unchanged_since",
                                         NULL};
    json_t *a = NULL, *prefix = json_object_get(root, "prefix"), *v;
    size_t n = 0;
    if (only_fields(j, root, "a rollback", fields) != 0 || get_array(j, root, "keys", &a, &n) != 0)
        return -1;
    if ((a != NULL) == (prefix != NULL))
        return bad(j, "give \"keys\" or \"prefix\" (one of them)");
    if (a && n == 0)
        return bad(j, "\"keys\" needs at least one key");
    if (!(v = json_object_get(root, "to_revision")))
        return bad(j, "\"to_revision\" is required");
    if (get_version(j, v, "\"to_revision\"", &cmd->rev) != 0)
        return -1;
    if (cmd->rev == 0)
        return bad(j, "\"to_revision\" must be 1 or more");
    if ((v = json_object_get(root, "unchanged_since")) &&
        get_version(j, v, "\"unchanged_since\"", &cmd->expected) != 0)
        return -1;
    if (prefix) {
        if (get_bytes(j, prefix, "\"prefix\"", &cmd->key.data, &cmd->key.len) != 0)
            return -1;
        cmd->flags = KVD_ROLLBACK_PREFIX;
    } else {
        kv_key *keys = arena_array(j, n, sizeof *keys);
        if (!keys)
            return -1;
        for (size_t i = 0; i < n; i++)
            if (get_bytes(j, json_array_get(a, i), "a key", &keys[i].data, &keys[i].len) != 0)
                return -1;
        cmd->keys = keys;
        cmd->nkeys = n;
    }
    cmd->kind = KVD_CMD_ROLLBACK;
    return 0;
}

/* {"revision": N} */
static int parse_compact(jctx *j, json_t *root, kvd_cmd *cmd)
{
    static const char *const fields[] = {"revision", NULL};
    json_t *v = json_object_get(root, "revision");
    if (only_fields(j, root, "a compact", fields) != 0)
        return -1;
    if (!v)
        return bad(j, "\"revision\" is required");
    if (get_version(j, v, "\"revision\"", &cmd->rev) != 0)
        return -1;
    if (cmd->rev == 0)
        return bad(j, "\"revision\" must be 1 or more");
    cmd->kind = KVD_CMD_COMPACT;
    return 0;
}

int kvd_http_json_request(int route, const void *body, size_t len, size_t limit,
                          kv_proto_arena *arena, kvd_cmd *cmd, char *err, size_t errlen)
{
    jctx j = {arena, err, errlen, 0};
    err[0] = 0;
    if (len == 0) {
        bad(&j, "the request needs a JSON body");
        return j.status;
    }
    size_t need = estimate(body, len);
    if (need / 4 > limit) {
        snprintf(err, errlen,
                 "JSON body would take about %zu bytes to parse, more than 4 x the request "
                 "limit of %zu bytes: send fewer items per request",
                 need, limit);
        return KV_FRAME_TOO_LARGE;
    }
    json_error_t jerr;
    json_t *root = json_loadb(body, len, JSON_REJECT_DUPLICATES, &jerr);
    if (!root) {
        bad(&j, "invalid JSON at line %d, column %d: %s", jerr.line, jerr.column, jerr.text);
        return j.status;
    }
    int rc = 0;
    if (!json_is_object(root))
        rc = bad(&j, "the body must be a JSON object");
    else if (route == KVD_HTTP_TXN)
        rc = parse_txn(&j, root, cmd);
    else if (route == KVD_HTTP_MSET)
        rc = parse_mset(&j, root, cmd);
    else if (route == KVD_HTTP_ROLLBACK)
        rc = parse_rollback(&j, root, cmd);
    else if (route == KVD_HTTP_COMPACT)
        rc = parse_compact(&j, root, cmd);
    else
        rc = parse_mget(&j, root, cmd);
    json_decref(root);
    return rc == 0 ? KV_OK : j.status;
}
