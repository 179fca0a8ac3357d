/*
 * bytes.c - growable byte buffers and whole-file reads for kvcli.
 *
 * Values may be any bytes (NUL included) up to the server's limit, so they
 * are read with fread into a buffer that doubles, never as C strings.
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "kvcli.h"

int kvcli_buf_append(kvcli_buf *b, const void *p, size_t n)
{
    if (n > SIZE_MAX - b->len) {
        errno = ENOMEM;
        return -1;
    }
    if (b->len + n > b->cap) {
        size_t cap = b->cap ? b->cap : 4096;
        while (cap < b->len + n)
            cap = cap > SIZE_MAX / 2 ? b->len + n : cap * 2;
        unsigned char *d = realloc(b->data, cap);
        if (d == NULL)
            return -1;
        b->data = d;
        b->cap = cap;
    }
    if (n)
        memcpy(b->data + b->len, p, n);
    b->len += n;
    return 0;
}

void kvcli_buf_free(kvcli_buf *b)
{
    free(b->data);
    memset(b, 0, sizeof *b);
}

int kvcli_read_file(const char *path, kvcli_buf *b)
{
    int is_stdin = strcmp(path, "-") == 0;
    FILE *f = is_stdin ? stdin : fopen(path, "rb");
    if (f == NULL)
        return -1;
    unsigned char chunk[65536];
    size_t n;
    int rc = 0;
    while ((n = fread(chunk, 1, sizeof chunk, f)) > 0) {
        if (kvcli_buf_append(b, chunk, n) != 0) {
            rc = -1;
            break;
        }
    }
    if (rc == 0 && ferror(f)) {
        errno = EIO;
        rc = -1;
    }
    /* An empty value is valid; give it a non-NULL pointer all the same. */
    if (rc == 0 && b->data == NULL) {
        b->data = malloc(1);
        if (b->data == NULL)
            rc = -1;
        else
            b->cap = 1;
    }
    if (!is_stdin)
        fclose(f);
    else
        clearerr(stdin);
    return rc;
}
