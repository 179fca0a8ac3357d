/*
 * cmd_txn.c - "kvcli txn": one conditional transaction (kv_client_txn).
 *
 * Input from arguments, from lines on stdin or from a JSON file (syntax in
 * txn_parse.c); a set op's --ttl is a time from when the server runs the
 * transaction (kv_client_txn_ttl). Output: which branch ran, the commit's version and one line
 * per op of that branch. Exit code 0 when the then-branch ran, 1 when the
 * compares failed and the else-branch ran, so scripts can branch on it.
 */
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "txn_parse.h"

enum { TXN_FILE, TXN_THEN, TXN_ELSE };
static const kvcli_optdef txn_opts[] = {
    [TXN_FILE] = {"file", KVCLI_OPT_ARG},
    [TXN_THEN] = {"then", KVCLI_OPT_MARKER},
    [TXN_ELSE] = {"else", KVCLI_OPT_MARKER},
};

static const char *op_name(kv_op_kind k)
{
    return k == KV_OP_GET ? "get" : k == KV_OP_SET ? "set" : "del";
}

static void print_result(const kvcli_session *s, const kv_txn_result *r,
                         const kv_op *ops, size_t nops)
{
    /* Never trust a count from the wire beyond the ops we sent. */
    size_t n = r->nresults < nops ? r->nresults : nops;
    if (s->cfg.json) {
        json_t *arr = json_array();
        for (size_t i = 0; i < n; i++) {
            const kv_op_result *x = &r->results[i];
            json_t *o = json_pack(
                "{s:s,s:o,s:s}", "op", op_name(ops[i].kind), "key",
                kvcli_json_bytes(ops[i].key, ops[i].klen), "status",
                x->status == KV_OK ? "ok"
                : x->status == KV_NOT_FOUND
                    ? "not_found"
                    : kv_client_status_name(x->status));
            if (o && ops[i].kind == KV_OP_GET && x->value.data) {
                json_object_set_new(o, "value",
                                    kvcli_json_bytes(x->value.data,
                                                     x->value.len));
                json_object_set_new(o, "version",
                                    json_integer((json_int_t)x->value.version));
            }
            json_array_append_new(arr, o);
        }
        kvcli_json_print(json_pack("{s:b,s:s,s:I,s:o}", "succeeded",
                                   r->succeeded, "branch",
                                   r->succeeded ? "then" : "else", "version",
                                   (json_int_t)r->version, "results", arr));
        return;
    }
    printf("%s", r->succeeded ? "THEN: compares held" : "ELSE: compares failed");
    if (r->version)
        printf(" (version %llu)", (unsigned long long)r->version);
    fputc('\n', stdout);
    for (size_t i = 0; i < n; i++) {
        const kv_op_result *x = &r->results[i];
        printf("%s ", op_name(ops[i].kind));
        kvcli_put_escaped(stdout, ops[i].key, ops[i].klen);
        fputs(": ", stdout);
        if (x->status == KV_NOT_FOUND)
            fputs("(not found)", stdout);
        else if (x->status != KV_OK)
            fputs(kv_client_strerror(x->status), stdout);
        else if (ops[i].kind == KV_OP_GET && x->value.data)
            kvcli_put_escaped(stdout, x->value.data, x->value.len);
        else
            fputs("OK", stdout);
        fputc('\n', stdout);
    }
}

int kvcli_cmd_txn(kvcli_session *s, int argc, char **argv)
{
    kvcli_args a;
    kvcli_txn_spec t = {0};
    char err[512];
    int rc = kvcli_args_parse(argc, argv, txn_opts, 3, &s->cfg, &a);
    if (rc != 0)
        return rc;
    if (kvcli_maybe_help(s, "txn"))
        goto out;
    const char *file = a.cmd_val[TXN_FILE];
    if (file) {
        if (a.npos) {
            rc = kvcli_usage_err("txn --file takes no other arguments");
            goto out;
        }
        if (kvcli_txn_parse_json(&t, file, err, sizeof err) != 0) {
            rc = kvcli_usage_err("txn: %s", err);
            goto out;
        }
    } else if (a.npos == 0 || (a.npos == 1 && strcmp(a.pos[0], "-") == 0)) {
        /* Standard input; at the prompt it is the prompt's own input. */
        if (s->interactive || (a.npos == 0 && isatty(STDIN_FILENO))) {
            rc = kvcli_usage_err("txn needs compares and ops (try 'kvcli txn"
                                 " --help')");
            goto out;
        }
        if (kvcli_txn_parse_lines(&t, stdin, err, sizeof err) != 0) {
            rc = kvcli_usage_err("txn (stdin): %s", err);
            goto out;
        }
    } else {
        int section = 0; /* 0 compares, 1 then, 2 else */
        for (int i = 0; i < a.npos; i++) {
            const char *p = a.pos[i];
            if (strcmp(p, "--then") == 0 || strcmp(p, "--else") == 0) {
                int next = p[2] == 't' ? 1 : 2;
                if (next <= section) {
                    rc = kvcli_usage_err("txn: %s must come once, after the"
                                         " compares%s", p,
                                         next == 2 ? " and --then ops" : "");
                    goto out;
                }
                section = next;
                continue;
            }
            int bad = section == 0
                          ? kvcli_txn_parse_compare(&t, p, err, sizeof err)
                          : kvcli_txn_parse_op(&t, section - 1, p, err,
                                               sizeof err);
            if (bad) {
                rc = kvcli_usage_err("txn: %s", err);
                goto out;
            }
        }
    }
    if (t.ncmps + t.nops[0] + t.nops[1] == 0) {
        /* Most likely an empty stdin or file, not a wish to do nothing. */
        rc = kvcli_usage_err("txn: empty transaction (no compares and no"
                             " ops; try 'kvcli txn --help')");
        goto out;
    }
    kv_client *c = kvcli_connect(s, &rc);
    if (c == NULL)
        goto out;
    kv_txn_result r;
    int st = kv_client_txn_ttl(c, t.cmps, t.ncmps, t.ops[0], t.nops[0], t.ops[1],
                               t.nops[1], &r);
    if (st != KV_OK) {
        rc = kvcli_fail(s, st, "txn (nothing was changed)");
        goto out;
    }
    print_result(s, &r, t.ops[r.succeeded ? 0 : 1], t.nops[r.succeeded ? 0 : 1]);
    rc = r.succeeded ? 0 : KVCLI_EXIT_NEGATIVE;
    kv_client_txn_result_free(&r);
out:
    kvcli_txn_spec_free(&t);
    kvcli_args_free(&a);
    return rc;
}
