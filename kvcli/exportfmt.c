/*
 * exportfmt.c - the two file formats of kvcli export and import: writing
 * entries one at a time, and reading them back one at a time, so neither
 * side ever holds more than one entry (streaming).
 *
 * JSON lines (the default, "json"): one object per line, members in this
 * order,
 *     {"key":"<base64>","value":"<base64>","version":N}
 *     {"key":"<base64>","value":"<base64>","version":N,"expire_at_ms":T}
 * key and value in RFC 4648 standard base64 with padding, always (keys
 * and values are byte strings: one rule, no guessing, as etcdctl's JSON),
 * version the key's version when it was exported, expire_at_ms the key's
 * expiry time (a Unix time in ms, as the protocol's TTL gives it) only
 * when it has one. Reading: blank lines are skipped; each other line must
 * be an object with the strings "key" (1 byte or more once decoded) and
 * "value", and, if present, "expire_at_ms" an integer 1..2^52; other
 * members (version included) are ignored, so files from before expiry
 * (no "expire_at_ms") read as keys without one. `jq -r '.key | @base64d'`
 * reads a key.
 *
 * Binary ("bin"), for speed and size; integers big-endian:
 *     "KVEXPORT"                      8 bytes, the magic
 *     u32 format version              2 (1 is still read)
 *     then per entry:   'E', u32 key length (>= 1), u32 value length,
 *                       u64 version, u64 expiry time (Unix ms, 0: none;
 *                       version 2 only), the key's bytes, the value's bytes
 *     and at the end:   'Z', u64 number of entries
 * Nothing may follow the end record; a file without it is truncated.
 * Version 1 is version 2 without the expiry time: its keys have none.
 *
 * A reader tells the two apart by the first byte: 'K' begins the binary
 * magic and cannot begin a JSON line.
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "kvcli.h"

static const char magic[8] = {'K', 'V', 'E', 'X', 'P', 'O', 'R', 'T'};
#define BIN_VERSION 2u     /* written */
#define BIN_VERSION_MIN 1u /* oldest read: no expiry times */
/* The largest expiry time the protocol carries (kv_client.h: 2^52). */
#define EXPIRY_MAX ((uint64_t)1 << 52)
#define TAG_ENTRY 'E'
#define TAG_END 'Z'

int kvcli_format_parse(const char *name)
{
    if (strcmp(name, "json") == 0)
        return KVCLI_FMT_JSON;
    if (strcmp(name, "bin") == 0)
        return KVCLI_FMT_BIN;
    return -1;
}

static void put_u32(unsigned char *p, uint32_t v)
{
    for (int i = 3; i >= 0; i--, v >>= 8)
        p[i] = (unsigned char)v;
}

static void put_u64(unsigned char *p, uint64_t v)
{
    for (int i = 7; i >= 0; i--, v >>= 8)
        p[i] = (unsigned char)v;
}

static uint64_t get_be(const unsigned char *p, int n)
{
    uint64_t v = 0;
    for (int i = 0; i < n; i++)
        v = v << 8 | p[i];
    return v;
}

/* ---------------------------------------------------------------- write */

int kvcli_export_begin(FILE *f, int fmt, uint64_t *written)
{
    if (fmt != KVCLI_FMT_BIN)
        return 0;
    unsigned char h[12];
    memcpy(h, magic, 8);
    put_u32(h + 8, BIN_VERSION);
    *written += sizeof h;
    return fwrite(h, 1, sizeof h, f) == sizeof h ? 0 : -1;
}

int kvcli_export_entry(FILE *f, int fmt, const void *key, size_t klen,
                       const void *val, size_t vlen, uint64_t version,
                       uint64_t expire_at_ms, uint64_t *written)
{
    if (fmt == KVCLI_FMT_BIN) {
        if (klen > UINT32_MAX || vlen > UINT32_MAX) {
            errno = EFBIG;
            return -1;
        }
        unsigned char h[25];
        h[0] = TAG_ENTRY;
        put_u32(h + 1, (uint32_t)klen);
        put_u32(h + 5, (uint32_t)vlen);
        put_u64(h + 9, version);
        put_u64(h + 17, expire_at_ms);
        if (fwrite(h, 1, sizeof h, f) != sizeof h ||
            fwrite(key, 1, klen, f) != klen ||
            (vlen && fwrite(val, 1, vlen, f) != vlen))
            return -1;
        *written += sizeof h + klen + vlen;
        return 0;
    }
    size_t kl, vl;
    char *k = kvcli_base64_encode(key, klen, &kl);
    char *v = kvcli_base64_encode(val, vlen, &vl);
    int n = -1;
    if (k && v && expire_at_ms)
        n = fprintf(f, "{\"key\":\"%s\",\"value\":\"%s\",\"version\":%llu,"
                    "\"expire_at_ms\":%llu}\n", k, v, (unsigned long long)version,
                    (unsigned long long)expire_at_ms);
    else if (k && v)
        n = fprintf(f, "{\"key\":\"%s\",\"value\":\"%s\",\"version\":%llu}\n", k,
                    v, (unsigned long long)version);
    free(k);
    free(v);
    if (n < 0) {
        if (!(k && v))
            errno = ENOMEM;
        return -1;
    }
    *written += (uint64_t)n;
    return 0;
}

int kvcli_export_end(FILE *f, int fmt, uint64_t count, uint64_t *written)
{
    if (fmt != KVCLI_FMT_BIN)
        return 0;
    unsigned char t[9];
    t[0] = TAG_END;
    put_u64(t + 1, count);
    *written += sizeof t;
    return fwrite(t, 1, sizeof t, f) == sizeof t ? 0 : -1;
}

/* ----------------------------------------------------------------- read */

/* Reads exactly n bytes into p; 0, or -1 at the end of the input or on a
 * read error (ferror tells them apart). */
static int read_exact(kvcli_import_reader *r, void *p, size_t n)
{
    if (n && fread(p, 1, n, r->f) != n)
        return -1;
    r->pos += n;
    return 0;
}

/* Reads n bytes into b in pieces, so a corrupt length in a short file
 * fails at its end instead of allocating gigabytes first. */
static int read_into(kvcli_import_reader *r, kvcli_buf *b, uint64_t n)
{
    b->len = 0;
    unsigned char chunk[65536];
    while (n > 0) {
        size_t k = n < sizeof chunk ? (size_t)n : sizeof chunk;
        if (read_exact(r, chunk, k) != 0)
            return -1;
        if (kvcli_buf_append(b, chunk, k) != 0)
            return -2;
        n -= k;
    }
    return 0;
}

/* The message of a failed read: the input's end or an error. */
static int read_failed(kvcli_import_reader *r, const char *what, char *err,
                       size_t n)
{
    if (ferror(r->f))
        snprintf(err, n, "cannot read the input: %s", strerror(errno));
    else
        snprintf(err, n, "record %llu at byte %llu: the input ends inside %s"
                 " (truncated?)", (unsigned long long)r->unit,
                 (unsigned long long)r->pos, what);
    return -1;
}

int kvcli_import_open(kvcli_import_reader *r, FILE *f, char *err, size_t n)
{
    memset(r, 0, sizeof *r);
    r->f = f;
    int c = getc(f);
    if (c == EOF) {
        if (ferror(f)) {
            snprintf(err, n, "cannot read the input: %s", strerror(errno));
            return -1;
        }
        r->fmt = KVCLI_FMT_JSON; /* empty: no entries */
        return 0;
    }
    if (c != magic[0]) {
        ungetc(c, f);
        r->fmt = KVCLI_FMT_JSON;
        return 0;
    }
    unsigned char h[12];
    h[0] = (unsigned char)c;
    r->pos = 1;
    if (read_exact(r, h + 1, sizeof h - 1) != 0 || memcmp(h, magic, 8) != 0) {
        snprintf(err, n, "the input is neither JSON lines nor kvcli's binary"
                 " format (it starts with 'K' but not with KVEXPORT)");
        return -1;
    }
    uint32_t v = (uint32_t)get_be(h + 8, 4);
    if (v < BIN_VERSION_MIN || v > BIN_VERSION) {
        snprintf(err, n, "binary format version %u: this kvcli reads"
                 " versions %u to %u", v, BIN_VERSION_MIN, BIN_VERSION);
        return -1;
    }
    r->fmt = KVCLI_FMT_BIN;
    r->bin_version = v;
    return 0;
}

static int next_bin(kvcli_import_reader *r, char *err, size_t n)
{
    if (r->done) {
        /* The end record was the last thing: anything more is an error. */
        if (getc(r->f) != EOF) {
            snprintf(err, n, "byte %llu: data after the end record",
                     (unsigned long long)r->pos);
            return -1;
        }
        if (ferror(r->f))
            return read_failed(r, "", err, n);
        return 0;
    }
    unsigned char tag;
    r->unit++;
    if (read_exact(r, &tag, 1) != 0)
        return read_failed(r, "a record: no end record", err, n);
    if (tag == TAG_END) {
        unsigned char c[8];
        if (read_exact(r, c, 8) != 0)
            return read_failed(r, "the end record", err, n);
        uint64_t count = get_be(c, 8);
        if (count != r->count) {
            snprintf(err, n, "the end record counts %llu entries, the file"
                     " holds %llu", (unsigned long long)count,
                     (unsigned long long)r->count);
            return -1;
        }
        r->done = 1;
        return next_bin(r, err, n);
    }
    if (tag != TAG_ENTRY) {
        snprintf(err, n, "record %llu at byte %llu: unknown record type"
                 " 0x%02x", (unsigned long long)r->unit,
                 (unsigned long long)r->pos - 1, tag);
        return -1;
    }
    unsigned char h[24];
    size_t hlen = r->bin_version >= 2 ? 24 : 16; /* version 1: no expiry */
    if (read_exact(r, h, hlen) != 0)
        return read_failed(r, "a record's header", err, n);
    uint64_t klen = get_be(h, 4), vlen = get_be(h + 4, 4);
    r->version = get_be(h + 8, 8);
    r->expire_at_ms = hlen == 24 ? get_be(h + 16, 8) : 0;
    if (r->expire_at_ms > EXPIRY_MAX) {
        snprintf(err, n, "record %llu: expiry time %llu is beyond 2^52 ms",
                 (unsigned long long)r->unit, (unsigned long long)r->expire_at_ms);
        return -1;
    }
    if (klen == 0) {
        snprintf(err, n, "record %llu: the key is empty",
                 (unsigned long long)r->unit);
        return -1;
    }
    int rc = read_into(r, &r->key, klen);
    if (rc == 0)
        rc = read_into(r, &r->val, vlen);
    if (rc == -2) {
        snprintf(err, n, "record %llu: out of memory", (unsigned long long)r->unit);
        return -1;
    }
    if (rc != 0)
        return read_failed(r, "a key or value", err, n);
    r->count++;
    return 1;
}

/* A member of a JSON line, decoded from base64 into b. */
static int json_member(kvcli_import_reader *r, json_t *o, const char *name,
                       kvcli_buf *b, char *err, size_t n)
{
    json_t *m = json_object_get(o, name);
    if (!json_is_string(m)) {
        snprintf(err, n, "line %llu: %s\"%s\"%s (expected"
                 " {\"key\":BASE64,\"value\":BASE64})",
                 (unsigned long long)r->unit, m ? "" : "no ", name,
                 m ? " is not a string" : "");
        return -1;
    }
    unsigned char *d;
    size_t len;
    if (kvcli_base64_decode(json_string_value(m), json_string_length(m), &d,
                            &len) != 0) {
        snprintf(err, n, "line %llu: \"%s\" is not base64 (RFC 4648,"
                 " padded)", (unsigned long long)r->unit, name);
        return -1;
    }
    b->len = 0;
    int rc = kvcli_buf_append(b, d, len);
    free(d);
    if (rc != 0) {
        snprintf(err, n, "line %llu: out of memory", (unsigned long long)r->unit);
        return -1;
    }
    return 0;
}

static int next_json(kvcli_import_reader *r, char *err, size_t n)
{
    for (;;) {
        errno = 0;
        ssize_t len = getline(&r->text, &r->cap, r->f);
        if (len < 0) {
            if (ferror(r->f)) {
                snprintf(err, n, "cannot read the input: %s",
                         strerror(errno ? errno : EIO));
                return -1;
            }
            return 0;
        }
        r->unit++;
        r->pos += (uint64_t)len;
        if (r->text[strspn(r->text, " \t\r\n")] == '\0' &&
            strlen(r->text) == (size_t)len)
            continue; /* blank */
        json_error_t je;
        json_t *o = json_loadb(r->text, (size_t)len, 0, &je);
        if (!json_is_object(o)) {
            if (o)
                snprintf(err, n, "line %llu: not a JSON object (expected"
                         " {\"key\":BASE64,\"value\":BASE64})",
                         (unsigned long long)r->unit);
            else
                snprintf(err, n, "line %llu: invalid JSON: %s",
                         (unsigned long long)r->unit, je.text);
            json_decref(o);
            return -1;
        }
        int rc = json_member(r, o, "key", &r->key, err, n);
        if (rc == 0)
            rc = json_member(r, o, "value", &r->val, err, n);
        json_t *v = json_object_get(o, "version");
        r->version = json_is_integer(v) ? (uint64_t)json_integer_value(v) : 0;
        json_t *x = json_object_get(o, "expire_at_ms");
        r->expire_at_ms = 0;
        if (rc == 0 && x != NULL) {
            if (!json_is_integer(x) || json_integer_value(x) < 1 ||
                (uint64_t)json_integer_value(x) > EXPIRY_MAX) {
                snprintf(err, n, "line %llu: \"expire_at_ms\" must be an expiry"
                         " time, a Unix time in ms (1..2^52)",
                         (unsigned long long)r->unit);
                rc = -1;
            } else {
                r->expire_at_ms = (uint64_t)json_integer_value(x);
            }
        }
        json_decref(o);
        if (rc != 0)
            return -1;
        if (r->key.len == 0) {
            snprintf(err, n, "line %llu: the key is empty",
                     (unsigned long long)r->unit);
            return -1;
        }
        r->count++;
        return 1;
    }
}

int kvcli_import_next(kvcli_import_reader *r, char *err, size_t n)
{
    return r->fmt == KVCLI_FMT_BIN ? next_bin(r, err, n) : next_json(r, err, n);
}

void kvcli_import_close(kvcli_import_reader *r)
{
    free(r->text);
    kvcli_buf_free(&r->key);
    kvcli_buf_free(&r->val);
    r->text = NULL;
}
