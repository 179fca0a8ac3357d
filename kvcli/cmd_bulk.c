/*
 * cmd_bulk.c - kvcli's deletes of many keys: del --prefix P and flush.
 *
 * Both are built from the ordinary protocol, page by page: a keys-only
 * SCAN of up to BULK_PAGE keys, then one DEL (kv_client_mdel) of that
 * page's keys. Each page is deleted atomically; the whole is NOT: a key
 * written while the pages go by may survive (SCAN is weakly consistent),
 * and a failure halfway leaves the pages already deleted deleted.
 *
 * flush asks "Delete all N keys? [y/N]" when standard input is a terminal;
 * otherwise it needs --yes, so a script never empties a store by accident.
 */
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "kvcli.h"

/* Each DEL locks one stripe of kvd's store per key for the instant of the
 * delete: small pages keep other writers' waits short. */
#define BULK_PAGE 50

/* One page's keys, copied out of the scan callback. */
typedef struct bulk_page {
    kv_key keys[BULK_PAGE];
    size_t n;
    kvcli_buf bytes; /* the keys' bytes, back to back */
    size_t off[BULK_PAGE];
} bulk_page;

static int collect_key(void *ctx, const void *key, size_t klen,
                       const void *val, size_t vlen, uint64_t version)
{
    (void)val;
    (void)vlen;
    (void)version;
    bulk_page *p = ctx;
    if (p->n == BULK_PAGE)
        return 1;
    p->off[p->n] = p->bytes.len;
    p->keys[p->n].len = klen;
    if (kvcli_buf_append(&p->bytes, key, klen) != 0)
        return 1; /* p->n not advanced: the caller sees the shortfall */
    p->n++;
    return 0;
}

/* The next page of keys starting with prefix, from *cursor (a keys-only
 * SCAN), into p, its keys pointing into p->bytes; *cursor moves on. */
static int next_page(kv_client *c, const char *prefix, bulk_page *p, uint64_t *cursor)
{
    uint64_t next = 0;
    p->n = 0;
    p->bytes.len = 0;
    int st = kv_client_scan_ex(c, prefix, strlen(prefix), *cursor, BULK_PAGE,
                               KV_CLIENT_SCAN_KEYS_ONLY, collect_key, p, &next);
    if (st != KV_OK)
        return st;
    /* The buffer may have moved while it grew: point at it now. */
    for (size_t i = 0; i < p->n; i++)
        p->keys[i].data = p->bytes.data + p->off[i];
    *cursor = next;
    return KV_OK;
}

static bulk_page *page_new(void)
{
    bulk_page *p = calloc(1, sizeof *p);
    if (p == NULL)
        kvcli_err("out of memory");
    return p;
}

static void page_free(bulk_page *p)
{
    kvcli_buf_free(&p->bytes);
    free(p);
}

/* Counts the keys starting with prefix (weakly consistent, as SCAN). */
static int count_keys(kvcli_session *s, kv_client *c, const char *prefix,
                      size_t *count)
{
    bulk_page *p = page_new();
    if (p == NULL)
        return KVCLI_EXIT_SERVER;
    uint64_t cursor = 0;
    int rc = 0;
    *count = 0;
    do {
        int st = next_page(c, prefix, p, &cursor);
        if (st != KV_OK) {
            rc = kvcli_fail(s, st, "flush: counting the keys");
            break;
        }
        *count += p->n;
    } while (cursor != 0);
    page_free(p);
    return rc;
}

/* Deletes every key starting with prefix, page by page; *deleted says how
 * many existed when their page was deleted. 0 or an exit code (printed). */
static int delete_pages(kvcli_session *s, kv_client *c, const char *prefix,
                        const char *what, size_t *deleted)
{
    bulk_page *p = page_new();
    if (p == NULL)
        return KVCLI_EXIT_SERVER;
    uint64_t cursor = 0;
    int rc = 0;
    *deleted = 0;
    do {
        int st = next_page(c, prefix, p, &cursor);
        if (st == KV_OK && p->n > 0) {
            size_t d = 0;
            st = kv_client_mdel(c, p->keys, p->n, &d, NULL);
            *deleted += d;
        }
        if (st != KV_OK) {
            kvcli_err("%s: stopped after deleting %zu key%s", what, *deleted,
                      *deleted == 1 ? "" : "s");
            rc = kvcli_fail(s, st, what);
            break;
        }
    } while (cursor != 0);
    page_free(p);
    return rc;
}

static void print_deleted(const kvcli_session *s, size_t deleted,
                          const char *prefix)
{
    if (s->cfg.json) {
        json_t *o = json_pack("{s:I}", "deleted", (json_int_t)deleted);
        if (o && prefix)
            json_object_set_new(o, "prefix",
                                kvcli_json_bytes(prefix, strlen(prefix)));
        kvcli_json_print(o);
    } else {
        printf("deleted %zu key%s\n", deleted, deleted == 1 ? "" : "s");
    }
}

int kvcli_del_prefix(kvcli_session *s, const char *prefix)
{
    if (*prefix == '\0')
        return kvcli_usage_err("del --prefix: the prefix cannot be empty"
                               " (to delete every key, use 'kvcli flush')");
    int rc;
    kv_client *c = kvcli_connect(s, &rc);
    if (c == NULL)
        return rc;
    size_t deleted = 0;
    rc = delete_pages(s, c, prefix, "del --prefix", &deleted);
    if (rc == 0)
        print_deleted(s, deleted, prefix);
    return rc;
}

/* ---------------------------------------------------------------- flush */

enum { FLUSH_YES };
static const kvcli_optdef flush_opts[] = {
    [FLUSH_YES] = {"yes", KVCLI_OPT_FLAG},
};

/* Asks on the terminal; 1 for an answer starting with y or Y. */
static int confirm(size_t n)
{
    fprintf(stderr, "Delete all %zu key%s? [y/N] ", n, n == 1 ? "" : "s");
    fflush(stderr);
    char line[64];
    if (fgets(line, sizeof line, stdin) == NULL) {
        fputc('\n', stderr);
        return 0;
    }
    return line[0] == 'y' || line[0] == 'Y';
}

int kvcli_cmd_flush(kvcli_session *s, int argc, char **argv)
{
    kvcli_args a;
    int rc = kvcli_args_parse(argc, argv, flush_opts, 1, &s->cfg, &a);
    if (rc != 0)
        return rc;
    if (kvcli_maybe_help(s, "flush"))
        goto out;
    int yes = a.cmd_val[FLUSH_YES] != NULL;
    if (a.npos != 0) {
        rc = kvcli_usage_err("flush takes no arguments (to delete keys by"
                             " prefix, use 'kvcli del --prefix P')");
        goto out;
    }
    if (!yes && !isatty(STDIN_FILENO)) {
        rc = kvcli_usage_err("flush: refusing to delete every key without a"
                             " terminal to ask on: pass --yes");
        goto out;
    }
    kv_client *c = kvcli_connect(s, &rc);
    if (c == NULL)
        goto out;
    if (!yes) {
        size_t n = 0;
        if ((rc = count_keys(s, c, "", &n)) != 0)
            goto out;
        if (!confirm(n)) {
            kvcli_err("flush: nothing deleted");
            rc = KVCLI_EXIT_NEGATIVE;
            goto out;
        }
    }
    size_t deleted = 0;
    rc = delete_pages(s, c, "", "flush", &deleted);
    if (rc == 0)
        print_deleted(s, deleted, NULL);
out:
    kvcli_args_free(&a);
    return rc;
}
