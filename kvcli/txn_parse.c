/*
 * txn_parse.c - the three ways to write a kvcli transaction.
 *
 * 1. Arguments:   'version(k)=5' 'exists(a)' --then 'set k v' 'del a'
 *                 --else 'get k'
 * 2. Lines (stdin, as etcdctl txn): compares, a blank line, then-ops, a
 *    blank line, else-ops. Lines starting with '#' are comments.
 * 3. JSON (--file): {"compare": [...], "then": [...], "else": [...]}.
 *
 * Compares: version(KEY)=N (0 = absent), exists(KEY), absent(KEY) (also
 * !exists(KEY)), value(KEY)=VALUE (the rest of the text, verbatim).
 * Ops: "set KEY VALUE", "del KEY", "get KEY", split into words like a shell
 * line (quotes for spaces). A set may end with "--ttl DURATION" (or
 * --ttl=DURATION; JSON: "ttl": "DURATION"), the units of set --ttl: the
 * key then expires that long after the server runs the transaction, so
 * the op's expire_at_ms holds a TTL (for kv_client_txn_ttl), 0 for none.
 * The spec owns copies of every key and value.
 */
#include <errno.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>

#include "txn_parse.h"

static void *own(kvcli_txn_spec *t, const void *p, size_t n)
{
    if (t->nowned == t->capowned) {
        size_t cap = t->capowned ? 2 * t->capowned : 16;
        void **o = realloc(t->owned, cap * sizeof *o);
        if (o == NULL)
            return NULL;
        t->owned = o;
        t->capowned = cap;
    }
    char *c = malloc(n + 1);
    if (c == NULL)
        return NULL;
    if (n)
        memcpy(c, p, n);
    c[n] = '\0';
    t->owned[t->nowned++] = c;
    return c;
}

/* Takes ownership of an already malloc'ed block. */
static int adopt(kvcli_txn_spec *t, void *p)
{
    if (own(t, "", 0) == NULL) {
        free(p);
        return -1;
    }
    free(t->owned[t->nowned - 1]);
    t->owned[t->nowned - 1] = p;
    return 0;
}

void kvcli_txn_spec_free(kvcli_txn_spec *t)
{
    for (size_t i = 0; i < t->nowned; i++)
        free(t->owned[i]);
    free(t->owned);
    free(t->cmps);
    free(t->ops[0]);
    free(t->ops[1]);
    memset(t, 0, sizeof *t);
}

static int errf(char *err, size_t n, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
static int errf(char *err, size_t n, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(err, n, fmt, ap);
    va_end(ap);
    return -1;
}

static kv_compare *new_cmp(kvcli_txn_spec *t)
{
    kv_compare *c = realloc(t->cmps, (t->ncmps + 1) * sizeof *c);
    if (c == NULL)
        return NULL;
    t->cmps = c;
    memset(&c[t->ncmps], 0, sizeof *c);
    return &c[t->ncmps++];
}

static kv_op *new_op(kvcli_txn_spec *t, int branch)
{
    kv_op *o = realloc(t->ops[branch], (t->nops[branch] + 1) * sizeof *o);
    if (o == NULL)
        return NULL;
    t->ops[branch] = o;
    memset(&o[t->nops[branch]], 0, sizeof *o);
    return &o[t->nops[branch]++];
}

int kvcli_txn_parse_compare(kvcli_txn_spec *t, const char *text, char *err,
                            size_t errn)
{
    static const struct {
        const char *name;
        kv_compare_kind kind;
    } forms[] = {
        {"version(", KV_CMP_VERSION_EQ}, {"exists(", KV_CMP_EXISTS},
        {"absent(", KV_CMP_ABSENT},      {"!exists(", KV_CMP_ABSENT},
        {"value(", KV_CMP_VALUE_EQ},
    };
    for (size_t i = 0; i < sizeof forms / sizeof forms[0]; i++) {
        size_t pl = strlen(forms[i].name);
        if (strncmp(text, forms[i].name, pl) != 0)
            continue;
        const char *key = text + pl, *close, *rest = NULL;
        kv_compare_kind kind = forms[i].kind;
        if (kind == KV_CMP_EXISTS || kind == KV_CMP_ABSENT) {
            close = key + strlen(key) - 1;
            if (close < key || *close != ')')
                break;
        } else {
            close = strstr(key, ")=");
            if (close == NULL)
                break;
            rest = close + 2;
        }
        if (close == key)
            return errf(err, errn, "empty key in compare '%s'", text);
        kv_compare *c = new_cmp(t);
        if (c == NULL || (c->key = own(t, key, (size_t)(close - key))) == NULL)
            return errf(err, errn, "out of memory");
        c->kind = kind;
        c->klen = (size_t)(close - key);
        if (kind == KV_CMP_VERSION_EQ &&
            kvcli_parse_u64(rest, &c->version) != 0)
            return errf(err, errn, "bad version in compare '%s' (expected"
                        " version(KEY)=N, N a number, 0 = absent)", text);
        if (kind == KV_CMP_VALUE_EQ) {
            c->vlen = strlen(rest);
            if ((c->value = own(t, rest, c->vlen)) == NULL)
                return errf(err, errn, "out of memory");
        }
        return 0;
    }
    return errf(err, errn, "bad compare '%s' (expected version(KEY)=N,"
                " exists(KEY), absent(KEY) or value(KEY)=VALUE)", text);
}

/* A set op's TTL from DURATION; 0, or -1 with the message in err. */
static int parse_ttl(const char *d, const char *text, uint64_t *ms, char *err, size_t errn)
{
    if (kvcli_parse_duration(d, ms) == 0)
        return 0;
    return errf(err, errn, "invalid --ttl '%s' in op '%s': expected a duration of at least"
                " 1ms with a unit ms, s, m or h, such as 30s, 1500ms, 5m or 2h (a bare"
                " number is seconds)", d, text);
}

/* Adds an op from words. */
static int add_op(kvcli_txn_spec *t, int branch, int argc, char **argv,
                  const char *text, char *err, size_t errn)
{
    kv_op_kind kind;
    int want;
    uint64_t ttl = 0;
    if (argc == 0)
        return errf(err, errn, "empty op");
    if (strcmp(argv[0], "set") == 0 && argc >= 4 && strncmp(argv[3], "--ttl", 5) == 0) {
        /* set KEY VALUE --ttl D, or --ttl=D */
        int eq = argv[3][5] == '=';
        const char *d = eq ? argv[3] + 6 : argv[3][5] == '\0' && argc == 5 ? argv[4] : NULL;
        if (d == NULL || argc != (eq ? 4 : 5))
            return errf(err, errn, "op '%s': expected 'set KEY VALUE --ttl DURATION'", text);
        if (parse_ttl(d, text, &ttl, err, errn) != 0)
            return -1;
        argc = 3;
    }
    if (strcmp(argv[0], "get") == 0)
        kind = KV_OP_GET, want = 2;
    else if (strcmp(argv[0], "set") == 0)
        kind = KV_OP_SET, want = 3;
    else if (strcmp(argv[0], "del") == 0 || strcmp(argv[0], "delete") == 0)
        kind = KV_OP_DELETE, want = 2;
    else
        return errf(err, errn, "bad op '%s' (expected 'get KEY', 'set KEY"
                    " VALUE [--ttl DURATION]' or 'del KEY')", text);
    if (argc != want)
        return errf(err, errn, "op '%s' needs %s", text,
                    kind == KV_OP_SET ? "a KEY and a VALUE (quote a value"
                                        " with spaces)"
                                      : "exactly one KEY");
    if (argv[1][0] == '\0')
        return errf(err, errn, "empty key in op '%s'", text);
    kv_op *o = new_op(t, branch);
    if (o == NULL || (o->key = own(t, argv[1], strlen(argv[1]))) == NULL)
        return errf(err, errn, "out of memory");
    o->kind = kind;
    o->klen = strlen(argv[1]);
    o->expire_at_ms = ttl;
    if (kind == KV_OP_SET) {
        o->vlen = strlen(argv[2]);
        if ((o->value = own(t, argv[2], o->vlen)) == NULL)
            return errf(err, errn, "out of memory");
    }
    return 0;
}

int kvcli_txn_parse_op(kvcli_txn_spec *t, int branch, const char *text,
                       char *err, size_t errn)
{
    int argc;
    char **argv;
    if (kvcli_split(text, &argc, &argv) != 0)
        return errf(err, errn, "unterminated quote in op '%s'", text);
    int rc = add_op(t, branch, argc, argv, text, err, errn);
    kvcli_split_free(argc, argv);
    return rc;
}

int kvcli_txn_parse_lines(kvcli_txn_spec *t, FILE *f, char *err,
                          size_t errn)
{
    char *line = NULL;
    size_t cap = 0;
    ssize_t len;
    int section = 0, lineno = 0, rc = 0;
    while ((len = getline(&line, &cap, f)) >= 0) {
        lineno++;
        while (len > 0 && (line[len - 1] == '\n' || line[len - 1] == '\r'))
            line[--len] = '\0';
        if (line[0] == '#')
            continue;
        if (len == 0) {
            if (++section > 2) {
                rc = errf(err, errn, "line %d: more than three sections"
                          " (compares, then, else)", lineno);
                break;
            }
            continue;
        }
        char sub[200];
        rc = section == 0 ? kvcli_txn_parse_compare(t, line, sub, sizeof sub)
                          : kvcli_txn_parse_op(t, section - 1, line, sub,
                                               sizeof sub);
        if (rc != 0) {
            errf(err, errn, "line %d: %s", lineno, sub);
            break;
        }
    }
    free(line);
    return rc;
}

/* JSON: a key or value is a string or {"base64": "..."}. */
static int json_bytes(kvcli_txn_spec *t, const json_t *j, const void **p,
                      size_t *n)
{
    unsigned char *b;
    if (j == NULL || kvcli_json_to_bytes(j, &b, n) != 0)
        return -1;
    if (adopt(t, b) != 0)
        return -1;
    *p = b;
    return 0;
}

static int json_compare(kvcli_txn_spec *t, const json_t *j, size_t i,
                        char *err, size_t errn)
{
    const json_t *key = json_object_get(j, "key");
    const json_t *ver = json_object_get(j, "version");
    const json_t *ex = json_object_get(j, "exists");
    const json_t *val = json_object_get(j, "value");
    kv_compare *c = new_cmp(t);
    if (c == NULL)
        return errf(err, errn, "out of memory");
    if (!json_is_object(j) || json_bytes(t, key, &c->key, &c->klen) != 0 ||
        c->klen == 0)
        return errf(err, errn, "compare[%zu]: needs a non-empty \"key\"", i);
    if ((ver != NULL) + (ex != NULL) + (val != NULL) != 1 ||
        json_object_size(j) != 2)
        return errf(err, errn, "compare[%zu]: needs exactly one of"
                    " \"version\", \"exists\" or \"value\" besides \"key\"", i);
    if (ver) {
        if (!json_is_integer(ver) || json_integer_value(ver) < 0)
            return errf(err, errn, "compare[%zu]: \"version\" must be a"
                        " number >= 0", i);
        c->kind = KV_CMP_VERSION_EQ;
        c->version = (uint64_t)json_integer_value(ver);
    } else if (ex) {
        if (!json_is_boolean(ex))
            return errf(err, errn, "compare[%zu]: \"exists\" must be true or"
                        " false", i);
        c->kind = json_is_true(ex) ? KV_CMP_EXISTS : KV_CMP_ABSENT;
    } else {
        c->kind = KV_CMP_VALUE_EQ;
        if (json_bytes(t, val, &c->value, &c->vlen) != 0)
            return errf(err, errn, "compare[%zu]: \"value\" must be a string"
                        " or {\"base64\": ...}", i);
    }
    return 0;
}

static int json_op(kvcli_txn_spec *t, int branch, const json_t *j, size_t i,
                   char *err, size_t errn)
{
    const char *bname = branch ? "else" : "then";
    const char *name = json_string_value(json_object_get(j, "op"));
    const json_t *val = json_object_get(j, "value");
    const json_t *ttl = json_object_get(j, "ttl");
    kv_op *o = new_op(t, branch);
    if (o == NULL)
        return errf(err, errn, "out of memory");
    if (name == NULL)
        return errf(err, errn, "%s[%zu]: needs \"op\": \"get\", \"set\" or"
                    " \"del\"", bname, i);
    if (strcmp(name, "get") == 0)
        o->kind = KV_OP_GET;
    else if (strcmp(name, "set") == 0)
        o->kind = KV_OP_SET;
    else if (strcmp(name, "del") == 0 || strcmp(name, "delete") == 0)
        o->kind = KV_OP_DELETE;
    else
        return errf(err, errn, "%s[%zu]: unknown op \"%s\"", bname, i, name);
    if (json_bytes(t, json_object_get(j, "key"), &o->key, &o->klen) != 0 ||
        o->klen == 0)
        return errf(err, errn, "%s[%zu]: needs a non-empty \"key\"", bname, i);
    if (o->kind == KV_OP_SET &&
        json_bytes(t, val, &o->value, &o->vlen) != 0)
        return errf(err, errn, "%s[%zu]: set needs a \"value\" (string or"
                    " {\"base64\": ...})", bname, i);
    if (o->kind != KV_OP_SET && val != NULL)
        return errf(err, errn, "%s[%zu]: only set takes a \"value\"", bname,
                    i);
    if (ttl != NULL && o->kind != KV_OP_SET)
        return errf(err, errn, "%s[%zu]: only set takes a \"ttl\"", bname, i);
    if (ttl != NULL && (!json_is_string(ttl) ||
                        kvcli_parse_duration(json_string_value(ttl), &o->expire_at_ms) != 0))
        return errf(err, errn, "%s[%zu]: invalid \"ttl\": expected a duration string of at"
                    " least 1ms with a unit ms, s, m or h, such as \"30s\" or \"2h\"",
                    bname, i);
    return 0;
}

int kvcli_txn_parse_json(kvcli_txn_spec *t, const char *path, char *err,
                         size_t errn)
{
    json_error_t je;
    json_t *root = strcmp(path, "-") == 0
                       ? json_loadf(stdin, JSON_ALLOW_NUL, &je)
                       : json_load_file(path, JSON_ALLOW_NUL, &je);
    if (root == NULL)
        return errf(err, errn, "%s:%d:%d: %s", path, je.line, je.column,
                    je.text);
    int rc = 0;
    const char *k;
    json_t *v;
    if (!json_is_object(root)) {
        rc = errf(err, errn, "%s: expected an object with \"compare\","
                  " \"then\", \"else\"", path);
        goto out;
    }
    json_object_foreach(root, k, v) {
        if (strcmp(k, "compare") && strcmp(k, "then") && strcmp(k, "else")) {
            rc = errf(err, errn, "%s: unknown member \"%s\" (expected"
                      " \"compare\", \"then\", \"else\")", path, k);
            goto out;
        }
        if (!json_is_array(v)) {
            rc = errf(err, errn, "%s: \"%s\" must be an array", path, k);
            goto out;
        }
    }
    size_t i;
    json_array_foreach(json_object_get(root, "compare"), i, v)
        if ((rc = json_compare(t, v, i, err, errn)) != 0)
            goto out;
    json_array_foreach(json_object_get(root, "then"), i, v)
        if ((rc = json_op(t, 0, v, i, err, errn)) != 0)
            goto out;
    json_array_foreach(json_object_get(root, "else"), i, v)
        if ((rc = json_op(t, 1, v, i, err, errn)) != 0)
            goto out;
out:
    json_decref(root);
    return rc;
}
