/*
 * repl.c - kvcli without a command: the interactive prompt, or commands
 * read line by line from a non-terminal standard input.
 *
 * At a terminal, libedit gives line editing and history, kept in
 * ~/.kvcli_history (lines holding --password are not recorded). Otherwise
 * lines are read with getline and no prompt or banner is printed, so
 * scripts and tests see only the commands' own output. Each line is split
 * like a shell line (split.c) and runs as "kvcli LINE" would, on the one
 * connection of the session; errors are printed and the loop goes on.
 * 'help' alone prints the prompt's own short help, and error hints name
 * commands as typed here ("try 'help'"). Before each command the idle
 * connection is checked; a reconnect is announced (conn.c).
 */
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <unistd.h>

#include <editline/readline.h>

#include "kvcli.h"

#define HISTORY_MAX 1000

/* Runs one line; *quit is set by quit/exit. Returns the exit code. */
static int run_line(kvcli_session *s, const char *line, int *quit,
                    int last_rc)
{
    int argc;
    char **argv;
    if (kvcli_split(line, &argc, &argv) != 0)
        return kvcli_usage_err("unterminated quote in: %s", line);
    int rc = last_rc;
    if (argc == 0 || argv[0][0] == '#') {
        /* blank or comment: keeps the previous exit code */
    } else if (strcmp(argv[0], "quit") == 0 || strcmp(argv[0], "exit") == 0) {
        *quit = 1;
    } else {
        rc = kvcli_dispatch(s, argc, argv);
    }
    kvcli_split_free(argc, argv);
    return rc;
}

/* Tab completion: command names for the first word (and after "help");
 * file names only where a file is expected (after --file or --unix, the
 * FILE of import and backup); nothing elsewhere: keys and values are the
 * server's, and the current directory's names would only mislead. */
static char *command_generator(const char *text, int state)
{
    static size_t i;
    static const char *const extra[] = {"quit", "exit", NULL};
    if (state == 0)
        i = 0;
    size_t len = strlen(text);
    for (;;) {
        size_t ncmd = 0;
        while (kvcli_commands[ncmd].name)
            ncmd++;
        const char *name = i < ncmd ? kvcli_commands[i].name
                                    : extra[i - ncmd];
        if (name == NULL)
            return NULL;
        i++;
        if (strncmp(name, text, len) == 0)
            return strdup(name);
    }
}

static char *no_completion(const char *text, int state)
{
    (void)text;
    (void)state;
    return NULL;
}

/* Copies word number `which` (0 = first, -1 = last) of the first n bytes
 * of line into out (cut to cap); returns the number of words. */
static int word_of(const char *line, size_t n, int which, char *out,
                   size_t cap)
{
    int count = 0;
    out[0] = '\0';
    for (size_t i = 0; i < n;) {
        while (i < n && (line[i] == ' ' || line[i] == '\t'))
            i++;
        if (i == n)
            break;
        size_t b = i;
        while (i < n && line[i] != ' ' && line[i] != '\t')
            i++;
        if (which < 0 || which == count) {
            size_t len = i - b < cap - 1 ? i - b : cap - 1;
            memcpy(out, line + b, len);
            out[len] = '\0';
        }
        count++;
    }
    return count;
}

/* True if word is an option whose value comes next ("--format"). */
static int takes_value(const char *word)
{
    int takes = 0;
    if (strncmp(word, "--", 2) != 0 || strchr(word, '=') != NULL)
        return 0;
    if (kvcli_is_global_opt(word + 2, &takes))
        return takes;
    return strcmp(word, "--format") == 0 || strcmp(word, "--batch") == 0 ||
           strcmp(word, "--prefix") == 0 || strcmp(word, "--limit") == 0 ||
           strcmp(word, "--if-version") == 0;
}

static char **complete(const char *text, int start, int end)
{
    (void)end;
    /* Whatever is returned, never fall back to libedit's file names. */
    rl_attempted_completion_over = 1;
    char cmd[32], prev[32];
    size_t n = start > 0 ? (size_t)start : 0;
    int words = word_of(rl_line_buffer, n, 0, cmd, sizeof cmd);
    word_of(rl_line_buffer, n, -1, prev, sizeof prev);
    if (words == 0 || (words == 1 && strcasecmp(cmd, "help") == 0))
        return rl_completion_matches(text, command_generator);
    int file_cmd = strcasecmp(cmd, "import") == 0 ||
                   strcasecmp(cmd, "backup") == 0;
    if (strcmp(prev, "--file") == 0 || strcmp(prev, "--unix") == 0 ||
        (file_cmd && text[0] != '-' && !takes_value(prev)))
        return rl_completion_matches(text, rl_filename_completion_function);
    return NULL;
}

static char *history_path(void)
{
    const char *home = getenv("HOME");
    if (home == NULL || *home == '\0')
        return NULL;
    size_t n = strlen(home) + sizeof "/.kvcli_history";
    char *p = malloc(n);
    if (p)
        snprintf(p, n, "%s/.kvcli_history", home);
    return p;
}

static int repl_tty(kvcli_session *s)
{
    char *hist = history_path();
    char prompt[300];
    if (s->cfg.unix_path)
        snprintf(prompt, sizeof prompt, "kvcli %.250s> ", s->cfg.unix_path);
    else
        snprintf(prompt, sizeof prompt, "kvcli %.200s:%u> ", s->cfg.host,
                 s->cfg.port);
    using_history();
    rl_attempted_completion_function = complete;
    rl_completion_entry_function = no_completion;
    stifle_history(HISTORY_MAX);
    if (hist)
        read_history(hist);

    char why[256];
    kv_client *c = kvcli_try_connect(s, why, sizeof why);
    if (c)
        printf("kvcli %s, connected to %s %s. Type 'help' for the commands,"
               " 'quit' to leave.\n", KV_CLIENT_VERSION_STRING,
               kv_client_server_name(c), kv_client_server_version(c));
    else
        printf("kvcli %s, not connected: %s (commands retry). Type 'help'"
               " for the commands, 'quit' to leave.\n",
               KV_CLIENT_VERSION_STRING, why);

    int rc = 0, quit = 0;
    char *line;
    while (!quit && (line = readline(prompt)) != NULL) {
        if (line[strspn(line, " \t")] != '\0' &&
            strstr(line, "--password") == NULL)
            add_history(line);
        rc = run_line(s, line, &quit, rc);
        free(line);
    }
    if (!quit)
        fputc('\n', stdout); /* after ^D, leave the shell on a new line */
    if (hist) {
        write_history(hist);
        free(hist);
    }
    return rc;
}

static int repl_stream(kvcli_session *s)
{
    char *line = NULL;
    size_t cap = 0;
    int rc = 0, quit = 0;
    while (!quit && getline(&line, &cap, stdin) >= 0)
        rc = run_line(s, line, &quit, rc);
    free(line);
    return rc;
}

int kvcli_repl(kvcli_session *s)
{
    s->interactive = 1;
    kvcli_err_in_prompt(1);
    return isatty(STDIN_FILENO) ? repl_tty(s) : repl_stream(s);
}
