/*
 * cmd_export.c - kvcli export and import: every entry (or those under a
 * prefix) out to a file, and back in, streaming (formats: exportfmt.c).
 *
 * export walks the store with paged SCANs (values included), reads each
 * page's expiry times (export_page.c: pipelined, and checked to belong to
 * the values read) and writes the page. Like SCAN it is weakly
 * consistent, not a point-in-time copy (that is kvcli backup): an entry
 * present for the whole export is written at least once, with its expiry
 * time; one written, deleted or expired meanwhile may or may not be, and
 * an entry may be written twice (import keeps the last).
 *
 * import reads entries one at a time and sends them in batches, each one
 * atomic MSET, or a TXN of set ops when an entry of the batch has an
 * expiry time (MSET gives all its keys one): up to --batch entries
 * (default 50, as del --prefix pages, since a batch locks its keys'
 * stripes of kvd's store at once) and about
 * BATCH_BYTES, always within the frame limit. Existing keys are
 * overwritten, others left alone; versions are the importing store's.
 * Expiry times are restored as they are (absolute: a key exported with 5
 * minutes left and imported an hour later is not given them again); an
 * entry whose expiry time has passed by this machine's clock is skipped,
 * counted and reported, and changes nothing (as Redis' RESTORE drops a
 * key with a past ABSTTL).
 * A bad entry stops it: the entries before it are imported (the pending
 * ones in one last batch), nothing from it on, and the error names its
 * line (JSON) or record (binary). A batch the server refuses is not
 * applied; the batches before it stay.
 *
 * Both draw a progress line on stderr when it is a terminal (progress.c)
 * and end with a summary: import's on stdout (its result), export's on
 * stderr (stdout is the data).
 */
#include <errno.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "kvcli.h"

/* Entries per SCAN page of export: the server also caps a page by bytes. */
#define EXPORT_PAGE 256
/* Default and largest entries per import batch. */
#define BATCH_ENTRIES 50
#define BATCH_MAX 10000
/* Bytes of keys and values per import batch, when the frame allows. */
#define BATCH_BYTES ((size_t)1 << 20)
/* MessagePack's envelope of an MSET or TXN, and its cost per entry beyond
 * the key and value, at most: an MSET pair has two bin headers (10), a
 * TXN set op also its array, kind and expiry [mode, ms] (13 more). */
#define MSET_BASE 32
#define MSET_PER_PAIR 32

/* --------------------------------------------------------------- export */

enum { EXP_PREFIX, EXP_FORMAT };
static const kvcli_optdef export_opts[] = {
    [EXP_PREFIX] = {"prefix", KVCLI_OPT_ARG},
    [EXP_FORMAT] = {"format", KVCLI_OPT_ARG},
};

typedef struct export_ctx {
    int fmt;
    uint64_t entries;
    uint64_t bytes;   /* of keys and values */
    uint64_t written; /* to the output */
    uint64_t expiring; /* entries written with an expiry time */
    int write_errno;  /* non-zero: writing failed */
    int no_memory;    /* a page could not be copied */
    kvcli_page page;  /* the current SCAN page */
    kvcli_progress prog;
} export_ctx;

static int page_entry(void *ctx, const void *key, size_t klen,
                      const void *val, size_t vlen, uint64_t version)
{
    export_ctx *x = ctx;
    if (kvcli_page_add(&x->page, key, klen, val, vlen, version) != 0) {
        x->no_memory = 1;
        return 1;
    }
    return 0;
}

/* Writes the page's entries that are to be written. */
static void write_page(export_ctx *x, int with_expiry)
{
    const kvcli_page *pg = &x->page;
    for (size_t i = 0; i < pg->n && !x->write_errno; i++) {
        const kvcli_page_entry *e = &pg->e[i];
        if (with_expiry && e->state != KVCLI_PAGE_READY)
            continue;
        errno = 0;
        if (kvcli_export_entry(stdout, x->fmt, pg->bytes.data + e->koff, e->klen,
                               pg->bytes.data + e->voff, e->vlen, e->version,
                               e->expire_at_ms, &x->written) != 0) {
            x->write_errno = errno ? errno : EIO;
            return;
        }
        x->entries++;
        x->expiring += e->expire_at_ms != 0;
        x->bytes += e->klen + e->vlen;
    }
}

static int write_failed(export_ctx *x)
{
    kvcli_progress_end(&x->prog);
    kvcli_err("export: cannot write the output: %s", strerror(x->write_errno));
    return KVCLI_EXIT_USAGE;
}

/* The number of keys in the store, for the progress line's ETA; 0 if
 * unknown. */
static uint64_t store_keys(kv_client *c)
{
    kv_client_metrics m;
    if (kv_client_metrics_get(c, &m) != KV_OK)
        return 0;
    const kv_client_metric *k = kv_client_metrics_find(&m, NULL, "keys");
    uint64_t n = k && k->kind == KV_CLIENT_METRIC_UINT ? k->u : 0;
    kv_client_metrics_free(&m);
    return n;
}

static int export_all(kvcli_session *s, kv_client *c, const char *prefix,
                      export_ctx *x)
{
    if (kvcli_export_begin(stdout, x->fmt, &x->written) != 0) {
        x->write_errno = errno ? errno : EIO;
        return write_failed(x);
    }
    /* A server without expiry (protocol < 4) has keys without one. */
    int with_expiry = kv_client_protocol_version(c) >= 4;
    uint64_t cursor = 0;
    do {
        uint64_t next = 0;
        kvcli_page_clear(&x->page);
        int st = kv_client_scan_ex(c, prefix, strlen(prefix), cursor,
                                   EXPORT_PAGE, 0, page_entry, x, &next);
        if (st == KV_OK && x->no_memory) {
            kvcli_progress_end(&x->prog);
            kvcli_err("export: out of memory");
            return KVCLI_EXIT_SERVER;
        }
        if (st == KV_OK && with_expiry)
            st = kvcli_page_expiry(&x->page, c);
        if (st == KV_OK)
            write_page(x, with_expiry);
        if (st != KV_OK) {
            kvcli_progress_end(&x->prog);
            char what[128] = "export";
            if (x->entries)
                snprintf(what, sizeof what, "export (the output is incomplete:"
                         " it holds the first %llu entries)",
                         (unsigned long long)x->entries);
            fflush(stdout);
            return kvcli_fail(s, st, what);
        }
        if (x->write_errno || ferror(stdout)) {
            if (!x->write_errno)
                x->write_errno = EIO;
            return write_failed(x);
        }
        cursor = next;
        kvcli_progress_update(&x->prog, x->entries, x->written);
    } while (cursor != 0);
    errno = 0;
    if (kvcli_export_end(stdout, x->fmt, x->entries, &x->written) != 0 ||
        fflush(stdout) != 0 || ferror(stdout)) {
        x->write_errno = errno ? errno : EIO;
        return write_failed(x);
    }
    return 0;
}

int kvcli_cmd_export(kvcli_session *s, int argc, char **argv)
{
    kvcli_args a;
    int rc = kvcli_args_parse(argc, argv, export_opts, 2, &s->cfg, &a);
    if (rc != 0)
        return rc;
    if (kvcli_maybe_help(s, "export"))
        goto out;
    export_ctx x;
    memset(&x, 0, sizeof x);
    const char *fmt = a.cmd_val[EXP_FORMAT] ? a.cmd_val[EXP_FORMAT] : "json";
    const char *prefix = a.cmd_val[EXP_PREFIX] ? a.cmd_val[EXP_PREFIX] : "";
    if ((x.fmt = kvcli_format_parse(fmt)) < 0) {
        rc = kvcli_usage_err("export: unknown --format '%s' (json or bin)", fmt);
        goto out;
    }
    if (a.npos != 0) {
        rc = kvcli_usage_err("export takes no arguments: the entries go to"
                             " standard output, a prefix is --prefix P (try"
                             " 'kvcli export --help')");
        goto out;
    }
    if (x.fmt == KVCLI_FMT_BIN && isatty(STDOUT_FILENO)) {
        rc = kvcli_usage_err("export: refusing to write the binary format to"
                             " a terminal: redirect it to a file");
        goto out;
    }
    kvcli_progress_start(&x.prog, "export");
    /* Entries written to the terminal show the progress themselves. */
    if (isatty(STDOUT_FILENO))
        x.prog.on = 0;
    kv_client *c = kvcli_connect(s, &rc);
    if (c == NULL)
        goto out;
    if (x.prog.on && *prefix == '\0')
        x.prog.total_entries = store_keys(c);
    rc = export_all(s, c, prefix, &x);
    kvcli_progress_end(&x.prog);
    if (rc == 0) {
        fprintf(stderr, "exported %llu entr%s (%llu bytes of keys and values;"
                " %llu with an expiry time) in %.2f s\n",
                (unsigned long long)x.entries, x.entries == 1 ? "y" : "ies",
                (unsigned long long)x.bytes, (unsigned long long)x.expiring,
                kvcli_progress_seconds(&x.prog));
        if (x.page.gone)
            fprintf(stderr, "left out %llu entr%s deleted or expired during the"
                    " export\n", (unsigned long long)x.page.gone,
                    x.page.gone == 1 ? "y" : "ies");
        if (x.page.unsettled)
            fprintf(stderr, "warning: %llu key%s changed during every read: %s"
                    " expiry time may be that of a neighbouring version\n",
                    (unsigned long long)x.page.unsettled,
                    x.page.unsettled == 1 ? "" : "s",
                    x.page.unsettled == 1 ? "its" : "their");
    }
    kvcli_page_free(&x.page);
out:
    kvcli_args_free(&a);
    return rc;
}

/* --------------------------------------------------------------- import */

enum { IMP_FORMAT, IMP_BATCH, IMP_DRY_RUN };
static const kvcli_optdef import_opts[] = {
    [IMP_FORMAT] = {"format", KVCLI_OPT_ARG},
    [IMP_BATCH] = {"batch", KVCLI_OPT_ARG},
    [IMP_DRY_RUN] = {"dry-run", KVCLI_OPT_FLAG},
};

/* The entries of one MSET, copied out of the reader. */
typedef struct batch {
    kv_pair *pairs;
    kv_op *ops;          /* the same as TXN set ops, when any_expiry */
    uint64_t *expiry;    /* each entry's expiry time, 0: none */
    int any_expiry;
    size_t *koff, *voff; /* offsets into bytes */
    size_t n, max;
    size_t size;         /* estimated request size */
    kvcli_buf bytes;
    uint64_t first, last; /* lines / records of its entries */
    uint64_t end_pos;     /* input bytes up to its last entry */
} batch;

typedef struct import_state {
    kvcli_session *s;
    kv_client *c; /* NULL: --dry-run */
    int fmt;
    size_t budget; /* largest batch request */
    batch b;
    uint64_t entries, bytes, batches;
    uint64_t expired; /* skipped: their expiry time had passed */
    kvcli_progress prog;
} import_state;

/* This machine's clock, Unix ms. */
static uint64_t unix_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    return (uint64_t)ts.tv_sec * 1000 + (uint64_t)ts.tv_nsec / 1000000;
}

/* Sends the batch: one MSET, or one TXN of set ops when an entry has an
 * expiry time. A kv status. */
static int write_batch(import_state *st)
{
    batch *b = &st->b;
    if (st->c == NULL)
        return KV_OK; /* --dry-run */
    if (!b->any_expiry)
        return kv_client_mset(st->c, b->pairs, b->n, NULL);
    for (size_t i = 0; i < b->n; i++)
        b->ops[i] = (kv_op){.kind = KV_OP_SET,
                            .key = b->pairs[i].key,
                            .klen = b->pairs[i].klen,
                            .value = b->pairs[i].val,
                            .vlen = b->pairs[i].vlen,
                            .expire_at_ms = b->expiry[i]};
    kv_txn_result res;
    int status = kv_client_txn(st->c, NULL, 0, b->ops, b->n, NULL, 0, &res);
    if (status == KV_OK)
        kv_client_txn_result_free(&res);
    return status;
}

/* "line 7", "lines 3-7", "record 2" */
static void units(const import_state *st, uint64_t first, uint64_t last,
                  char *out, size_t n)
{
    const char *u = st->fmt == KVCLI_FMT_BIN ? "record" : "line";
    if (first == last)
        snprintf(out, n, "%s %llu", u, (unsigned long long)first);
    else
        snprintf(out, n, "%ss %llu-%llu", u, (unsigned long long)first,
                 (unsigned long long)last);
}

/* Sends the batch as one MSET; 0 or an exit code (printed). */
static int send_batch(import_state *st)
{
    batch *b = &st->b;
    if (b->n == 0)
        return 0;
    for (size_t i = 0; i < b->n; i++) {
        b->pairs[i].key = b->bytes.data + b->koff[i];
        b->pairs[i].val = b->bytes.data + b->voff[i];
    }
    int status = write_batch(st);
    if (status != KV_OK) {
        char where[64], what[256];
        units(st, b->first, b->last, where, sizeof where);
        int lost = status == KV_CLOSED || status == KV_IO ||
                   status == KV_TIMEOUT;
        kvcli_progress_end(&st->prog);
        char before[64] = "nothing";
        if (st->entries)
            snprintf(before, sizeof before, "the %llu entr%s before %s",
                     (unsigned long long)st->entries,
                     st->entries == 1 ? "y" : "ies",
                     b->first == b->last ? "it" : "them");
        snprintf(what, sizeof what, "import: %s %s; %s %s imported", where,
                 lost ? "may or may not have been imported (the connection"
                        " failed)"
                      : "not imported",
                 before, st->entries > 1 ? "were" : "was");
        return kvcli_fail(st->s, status, what);
    }
    for (size_t i = 0; i < b->n; i++)
        st->bytes += b->pairs[i].klen + b->pairs[i].vlen;
    st->entries += b->n;
    st->batches++;
    kvcli_progress_update(&st->prog, st->entries, b->end_pos);
    b->n = 0;
    b->size = MSET_BASE;
    b->bytes.len = 0;
    b->any_expiry = 0;
    return 0;
}

/* Adds the reader's entry, sending the batch first if it is full. */
static int add_entry(import_state *st, const kvcli_import_reader *r)
{
    batch *b = &st->b;
    if (r->expire_at_ms != 0 && r->expire_at_ms <= unix_ms()) {
        st->expired++; /* already gone: nothing to write */
        return 0;
    }
    size_t cost = r->key.len + r->val.len + MSET_PER_PAIR;
    if (b->n > 0 && (b->n == b->max || b->size + cost > st->budget)) {
        int rc = send_batch(st);
        if (rc != 0)
            return rc;
    }
    if (b->n == 0)
        b->first = r->unit;
    b->last = r->unit;
    b->end_pos = r->pos;
    b->koff[b->n] = b->bytes.len;
    b->voff[b->n] = b->bytes.len + r->key.len;
    b->pairs[b->n].klen = r->key.len;
    b->pairs[b->n].vlen = r->val.len;
    b->expiry[b->n] = r->expire_at_ms;
    b->any_expiry |= r->expire_at_ms != 0;
    if (kvcli_buf_append(&b->bytes, r->key.data, r->key.len) != 0 ||
        kvcli_buf_append(&b->bytes, r->val.data, r->val.len) != 0) {
        kvcli_err("import: out of memory");
        return KVCLI_EXIT_SERVER;
    }
    b->n++;
    b->size += cost;
    return 0;
}

static int import_all(import_state *st, kvcli_import_reader *r)
{
    char err[512];
    for (;;) {
        int got = kvcli_import_next(r, err, sizeof err);
        if (got < 0) {
            /* Everything before the bad entry goes in; nothing after. */
            int rc = send_batch(st);
            if (rc != 0)
                return rc;
            kvcli_progress_end(&st->prog);
            if (st->c == NULL || st->entries == 0)
                kvcli_err("import: %s; nothing %s", err,
                          st->c ? "imported" : "imported (--dry-run)");
            else
                kvcli_err("import: %s; the %llu entr%s before it %s imported,"
                          " nothing from there on", err,
                          (unsigned long long)st->entries,
                          st->entries == 1 ? "y" : "ies",
                          st->entries == 1 ? "was" : "were");
            return KVCLI_EXIT_USAGE;
        }
        if (got == 0)
            return send_batch(st);
        int rc = add_entry(st, r);
        if (rc != 0)
            return rc;
    }
}

static void print_import_summary(const import_state *st, int dry_run)
{
    double secs = kvcli_progress_seconds(&st->prog);
    if (st->s->cfg.json) {
        json_t *o = json_pack("{s:I,s:I,s:I,s:I,s:f}", "entries",
                              (json_int_t)st->entries, "bytes",
                              (json_int_t)st->bytes, "batches",
                              (json_int_t)st->batches, "expired",
                              (json_int_t)st->expired, "seconds",
                              round(secs * 1000.0) / 1000.0);
        if (o && dry_run)
            json_object_set_new(o, "dry_run", json_true());
        kvcli_json_print(o);
        return;
    }
    if (dry_run)
        printf("checked %llu entr%s (%llu bytes of keys and values) in %.2f"
               " s: the input is valid; nothing imported (--dry-run)\n",
               (unsigned long long)st->entries, st->entries == 1 ? "y" : "ies",
               (unsigned long long)st->bytes, secs);
    else
        printf("imported %llu entr%s (%llu bytes of keys and values) in %.2f"
               " s\n", (unsigned long long)st->entries,
               st->entries == 1 ? "y" : "ies", (unsigned long long)st->bytes,
               secs);
    if (st->expired)
        printf("skipped %llu entr%s whose expiry time had passed\n",
               (unsigned long long)st->expired, st->expired == 1 ? "y" : "ies");
}

static int batch_init(batch *b, size_t max)
{
    memset(b, 0, sizeof *b);
    b->max = max;
    b->size = MSET_BASE;
    b->pairs = calloc(max, sizeof *b->pairs);
    b->ops = calloc(max, sizeof *b->ops);
    b->expiry = calloc(max, sizeof *b->expiry);
    b->koff = calloc(max, sizeof *b->koff);
    b->voff = calloc(max, sizeof *b->voff);
    return b->pairs && b->ops && b->expiry && b->koff && b->voff ? 0 : -1;
}

static void batch_free(batch *b)
{
    free(b->pairs);
    free(b->ops);
    free(b->expiry);
    free(b->koff);
    free(b->voff);
    kvcli_buf_free(&b->bytes);
}

/* Parses the options into st; 0 or an exit code (printed). */
static int import_options(const kvcli_args *a, import_state *st, int *want_fmt)
{
    uint64_t n = BATCH_ENTRIES;
    const char *v = a->cmd_val[IMP_BATCH];
    if (v && (kvcli_parse_u64(v, &n) != 0 || n < 1 || n > BATCH_MAX))
        return kvcli_usage_err("import: invalid --batch '%s' (expected 1-%d"
                               " entries)", v, BATCH_MAX);
    *want_fmt = -1;
    v = a->cmd_val[IMP_FORMAT];
    if (v && (*want_fmt = kvcli_format_parse(v)) < 0)
        return kvcli_usage_err("import: unknown --format '%s' (json or bin)", v);
    if (a->npos != 1)
        return kvcli_usage_err("import takes one FILE ('-' for standard input;"
                               " try 'kvcli import --help')");
    if (batch_init(&st->b, (size_t)n) != 0) {
        kvcli_err("out of memory");
        return KVCLI_EXIT_SERVER;
    }
    /* Within the frame limit whatever it is set to. */
    size_t frame = st->s->cfg.max_frame ? (size_t)st->s->cfg.max_frame
                                        : KV_CLIENT_DEFAULT_MAX_FRAME;
    st->budget = frame < BATCH_BYTES + MSET_BASE ? frame : BATCH_BYTES;
    return 0;
}

int kvcli_cmd_import(kvcli_session *s, int argc, char **argv)
{
    kvcli_args a;
    int rc = kvcli_args_parse(argc, argv, import_opts, 3, &s->cfg, &a);
    if (rc != 0)
        return rc;
    import_state st;
    memset(&st, 0, sizeof st);
    st.s = s;
    kvcli_import_reader r;
    memset(&r, 0, sizeof r);
    FILE *f = NULL;
    int want_fmt = -1;
    if (kvcli_maybe_help(s, "import"))
        goto out;
    if ((rc = import_options(&a, &st, &want_fmt)) != 0)
        goto out;
    const char *path = a.pos[0];
    int is_stdin = strcmp(path, "-") == 0;
    if (is_stdin && s->interactive) {
        rc = kvcli_usage_err("import: standard input is the prompt's own here:"
                             " give a FILE");
        goto out;
    }
    f = is_stdin ? stdin : fopen(path, "rb");
    if (f == NULL) {
        rc = kvcli_usage_err("import: cannot open '%s': %s", path,
                             strerror(errno));
        goto out;
    }
    char err[512];
    if (kvcli_import_open(&r, f, err, sizeof err) != 0) {
        rc = kvcli_usage_err("import: %s", err);
        goto out;
    }
    st.fmt = r.fmt;
    if (want_fmt >= 0 && want_fmt != r.fmt) {
        rc = kvcli_usage_err("import: --format %s, but the input is %s",
                             want_fmt == KVCLI_FMT_BIN ? "bin" : "json",
                             r.fmt == KVCLI_FMT_BIN ? "kvcli's binary format"
                                                    : "not binary (JSON lines?)");
        goto out;
    }
    int dry_run = a.cmd_val[IMP_DRY_RUN] != NULL;
    kvcli_progress_start(&st.prog, "import");
    if (!dry_run && (st.c = kvcli_connect(s, &rc)) == NULL)
        goto out;
    struct stat sb;
    if (fstat(fileno(f), &sb) == 0 && S_ISREG(sb.st_mode))
        st.prog.total_bytes = (uint64_t)sb.st_size;
    rc = import_all(&st, &r);
    kvcli_progress_end(&st.prog);
    if (rc == 0)
        print_import_summary(&st, dry_run);
out:
    kvcli_import_close(&r);
    if (f && f != stdin)
        fclose(f);
    else if (f)
        clearerr(stdin);
    batch_free(&st.b);
    kvcli_args_free(&a);
    return rc;
}
