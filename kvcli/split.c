/*
 * split.c - splits a command line into words, shell style, for the prompt
 * and for txn ops ('set k "two words"').
 *
 * Rules (a subset of POSIX sh, no expansions): blanks separate words;
 * '...' keeps everything literally; "..." keeps everything but \" and \\;
 * outside quotes a backslash escapes the next character. '' or "" is an
 * empty word. An unterminated quote is an error, so a half-typed line is
 * never run.
 */
#include <stdlib.h>
#include <string.h>

#include "kvcli.h"

void kvcli_split_free(int argc, char **argv)
{
    for (int i = 0; i < argc; i++)
        free(argv[i]);
    free(argv);
}

int kvcli_split(const char *line, int *argc_out, char ***argv_out)
{
    size_t cap = 8;
    int argc = 0;
    char **argv = malloc(cap * sizeof *argv);
    /* No word is longer than the line. */
    char *word = malloc(strlen(line) + 1);
    if (argv == NULL || word == NULL)
        goto fail;
    const char *p = line;
    for (;;) {
        while (*p == ' ' || *p == '\t' || *p == '\n' || *p == '\r')
            p++;
        if (*p == '\0')
            break;
        size_t n = 0;
        while (*p && *p != ' ' && *p != '\t' && *p != '\n' && *p != '\r') {
            if (*p == '\'') {
                const char *end = strchr(p + 1, '\'');
                if (end == NULL)
                    goto fail;
                memcpy(word + n, p + 1, (size_t)(end - p - 1));
                n += (size_t)(end - p - 1);
                p = end + 1;
            } else if (*p == '"') {
                p++;
                while (*p && *p != '"') {
                    if (*p == '\\' && (p[1] == '"' || p[1] == '\\'))
                        p++;
                    word[n++] = *p++;
                }
                if (*p != '"')
                    goto fail;
                p++;
            } else if (*p == '\\' && p[1] != '\0') {
                word[n++] = p[1];
                p += 2;
            } else {
                word[n++] = *p++;
            }
        }
        if ((size_t)argc + 1 >= cap) {
            char **na = realloc(argv, 2 * cap * sizeof *argv);
            if (na == NULL)
                goto fail;
            argv = na;
            cap *= 2;
        }
        argv[argc] = malloc(n + 1);
        if (argv[argc] == NULL)
            goto fail;
        memcpy(argv[argc], word, n);
        argv[argc][n] = '\0';
        argc++;
    }
    argv[argc] = NULL;
    free(word);
    *argc_out = argc;
    *argv_out = argv;
    return 0;
fail:
    free(word);
    if (argv)
        kvcli_split_free(argc, argv);
    return -1;
}
