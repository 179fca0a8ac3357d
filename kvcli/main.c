/*
 * main.c - kvcli's entry point: defaults, environment, global flags and
 * dispatch to a command or to the interactive prompt.
 *
 * Precedence: built-in defaults < KV_* environment < command-line flags.
 * Global flags may come before or after the command, so the command is
 * the first word that is neither an option nor an option's value.
 */
#include <stdlib.h>
#include <string.h>

#include "kvcli.h"

/* True if --json is among the options of argv (before any "--"), for
 * errors found before a command has parsed its line. */
static int asks_json(int argc, char **argv)
{
    for (int i = 0; i < argc; i++) {
        if (strcmp(argv[i], "--") == 0)
            return 0;
        if (strcmp(argv[i], "--json") == 0)
            return 1;
    }
    return 0;
}

int kvcli_dispatch(kvcli_session *s, int argc, char **argv)
{
    kvcli_error_reset();
    const kvcli_command *c = kvcli_find_command(argv[0]);
    if (c == NULL) {
        int rc = kvcli_unknown_command(argv[0]);
        if (s->cfg.json || asks_json(argc, argv))
            kvcli_error_json(rc);
        return rc;
    }
    /* Flags on one line apply to that command only (matters at the
     * prompt, where the session outlives the line). */
    kvcli_config saved = s->cfg;
    int rc = c->fn(s, argc - 1, argv + 1);
    /* --json promises one document per command, errors included. */
    if (s->cfg.json || asks_json(argc, argv))
        kvcli_error_json(rc);
    s->cfg = saved;
    fflush(stdout);
    return rc;
}

static int run(int argc, char **argv)
{
    kvcli_session s;
    memset(&s, 0, sizeof s);
    s.cfg.host = KVCLI_DEFAULT_HOST;
    s.cfg.port = KV_CLIENT_DEFAULT_PORT;
    int rc = kvcli_config_from_env(&s.cfg);
    if (rc != 0)
        return rc;

    int ci = -1;
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        int takes_arg = 0;
        if (strcmp(a, "--") == 0)
            break;
        /* "kvcli --version" is the version command, as in most tools. */
        if (strcmp(a, "--version") == 0) {
            static char version_cmd[] = "version";
            ci = i;
            argv[i] = version_cmd;
            break;
        }
        if (a[0] == '-' && a[1] != '\0') {
            /* Only -h is short; say so now, or "-p 7379 ping" would be
             * reported as the unknown command "7379". */
            if (a[1] != '-' && strcmp(a, "-h") != 0)
                return kvcli_usage_err("unknown option '%s' (try --help)", a);
            if (a[1] == '-' && kvcli_is_global_opt(a + 2, &takes_arg) &&
                takes_arg)
                i++;
            continue;
        }
        ci = i;
        break;
    }

    if (ci < 0) {
        kvcli_args a;
        rc = kvcli_args_parse(argc - 1, argv + 1, NULL, 0, &s.cfg, &a);
        if (rc != 0)
            return rc;
        int npos = a.npos;
        kvcli_args_free(&a);
        if (s.cfg.help) {
            kvcli_print_usage(stdout);
            return 0;
        }
        if (npos != 0)
            return kvcli_usage_err("expected a command before '--' (try"
                                   " 'kvcli --help')");
        rc = kvcli_repl(&s);
    } else {
        /* The command first, then every other argument in order. */
        char **args = malloc((size_t)argc * sizeof *args);
        if (args == NULL) {
            kvcli_err("out of memory");
            return KVCLI_EXIT_SERVER;
        }
        /* "kvcli --limit 5 scan": a command's option before the command
         * makes its value look like the command; say what went wrong. */
        const char *prev = ci > 1 ? argv[ci - 1] : "";
        int dummy;
        if (kvcli_find_command(argv[ci]) == NULL && prev[0] == '-' && prev[1] == '-' &&
            !strchr(prev, '=') && !kvcli_is_global_opt(prev + 2, &dummy)) {
            free(args);
            return kvcli_usage_err("unknown command '%s': is it the value of %s? a"
                                   " command's options go after the command, as in"
                                   " 'kvcli scan --limit 5'", argv[ci], prev);
        }
        int n = 0;
        args[n++] = argv[ci];
        for (int i = 1; i < argc; i++)
            if (i != ci)
                args[n++] = argv[i];
        rc = kvcli_dispatch(&s, n, args);
        free(args);
    }
    kvcli_disconnect(&s);
    /* A command that failed has said why already (export says so when
     * its output cannot be written). */
    if ((fflush(stdout) != 0 || ferror(stdout)) && rc == 0) {
        kvcli_err("cannot write the output");
        rc = KVCLI_EXIT_USAGE;
    }
    return rc;
}

int main(int argc, char **argv)
{
    int rc = run(argc, argv);
    /* Errors before any command ran (a bad option, KV_PORT); a no-op when
     * the command already printed its document. */
    if (asks_json(argc - 1, argv + 1))
        kvcli_error_json(rc);
    return rc;
}
