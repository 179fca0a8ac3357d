/*
 * txn_parse.h - a kvcli transaction being built from arguments, lines or
 * JSON (see txn_parse.c for the syntax).
 */
#ifndef KVCLI_TXN_PARSE_H
#define KVCLI_TXN_PARSE_H

#include "kvcli.h"

/* Compares and the two op lists, ready for kv_client_txn(). Every key and
 * value points into `owned`, which the spec frees. */
typedef struct kvcli_txn_spec {
    kv_compare *cmps;
    size_t ncmps;
    kv_op *ops[2]; /* [0] then, [1] else */
    size_t nops[2];
    void **owned;
    size_t nowned, capowned;
} kvcli_txn_spec;

/* Each returns 0, or -1 with a one-line message in err. */
int kvcli_txn_parse_compare(kvcli_txn_spec *t, const char *text, char *err,
                            size_t errn);
/* branch: 0 then, 1 else. */
int kvcli_txn_parse_op(kvcli_txn_spec *t, int branch, const char *text,
                       char *err, size_t errn);
int kvcli_txn_parse_lines(kvcli_txn_spec *t, FILE *f, char *err, size_t errn);
/* path "-" reads standard input. */
int kvcli_txn_parse_json(kvcli_txn_spec *t, const char *path, char *err,
                         size_t errn);
void kvcli_txn_spec_free(kvcli_txn_spec *t);

#endif /* KVCLI_TXN_PARSE_H */
