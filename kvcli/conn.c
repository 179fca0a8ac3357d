/*
 * conn.c - kvcli's connection to kvd, its error messages and exit codes.
 *
 * The connection is opened when the first command needs it (so "kvcli
 * help" or a usage error never touches the network) and kept for the
 * session, which matters at the interactive prompt. A transport failure
 * closes it inside libkvclient; the next command reconnects. At the
 * prompt a command first checks that the server has not closed the idle
 * connection (kv_client_check), and a reconnect is announced on stderr.
 * Every error is ONE line on stderr with a hint at what to do about it.
 */
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>

#include "kvcli.h"

/* The first error of the current command, for --json's error object;
 * json_done once the command has written its JSON document. */
static struct {
    char msg[1024];
    const char *status; /* kv status name, or NULL: named by exit code */
    int have, json_done;
} last_err;

void kvcli_error_reset(void)
{
    memset(&last_err, 0, sizeof last_err);
}

void kvcli_error_json_done(void)
{
    last_err.json_done = 1;
}

/* Set inside the prompt, where commands are typed without "kvcli". */
static int in_prompt;

void kvcli_err_in_prompt(int on)
{
    in_prompt = on;
}

/* Inside the prompt, the hints "try 'kvcli help'" and "use 'kvcli
 * flush'" name what to type there: "try 'help'", "use 'flush'". */
static void prompt_hints(char *msg)
{
    static const char *const hints[] = {"try 'kvcli ", "use 'kvcli "};
    for (size_t i = 0; i < sizeof hints / sizeof hints[0]; i++) {
        char *p = msg;
        while ((p = strstr(p, hints[i])) != NULL) {
            p += 5; /* after "try '" */
            memmove(p, p + 6, strlen(p + 6) + 1);
        }
    }
}

static void verr(const char *status, const char *fmt, va_list ap)
{
    va_list copy;
    va_copy(copy, ap);
    int n = vsnprintf(NULL, 0, fmt, copy);
    va_end(copy);
    char *msg = n >= 0 ? malloc((size_t)n + 1) : NULL;
    if (msg == NULL) {
        fputs("kvcli: out of memory\n", stderr);
        return;
    }
    vsnprintf(msg, (size_t)n + 1, fmt, ap);
    if (in_prompt)
        prompt_hints(msg);
    if (!last_err.have) {
        snprintf(last_err.msg, sizeof last_err.msg, "%s", msg);
        last_err.status = status;
        last_err.have = 1;
    }
    fflush(stdout); /* keep stdout and stderr in order on a terminal */
    fprintf(stderr, "kvcli: %s\n", msg);
    free(msg);
}

void kvcli_err(const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    verr(NULL, fmt, ap);
    va_end(ap);
}

int kvcli_usage_err(const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    verr("USAGE", fmt, ap);
    va_end(ap);
    return KVCLI_EXIT_USAGE;
}

void kvcli_error_json(int rc)
{
    if (rc == 0 || last_err.json_done || !last_err.have)
        return;
    const char *status = last_err.status;
    if (status == NULL)
        status = rc == KVCLI_EXIT_USAGE     ? "USAGE"
                 : rc == KVCLI_EXIT_CONNECT ? "CONNECT"
                 : rc == KVCLI_EXIT_SERVER  ? "SERVER"
                                            : "NEGATIVE";
    kvcli_json_print(json_pack("{s:{s:s,s:s},s:i}", "error", "status", status,
                               "message", last_err.msg, "exit", rc));
}

int kvcli_exit_code(int status)
{
    switch (status) {
    case KV_OK:
        return KVCLI_EXIT_OK;
    case KV_NOT_FOUND:
    case KV_VERSION_MISMATCH:
        return KVCLI_EXIT_NEGATIVE;
    case KV_CONNECT:
    case KV_TIMEOUT:
    case KV_CLOSED:
    case KV_IO:
    case KV_AUTH_REQUIRED:
    case KV_AUTH_FAILED:
    case KV_BUSY:
        return KVCLI_EXIT_CONNECT;
    case KV_COMPACTED:
    case KV_FUTURE_REVISION:
        return KVCLI_EXIT_REVISION;
    default:
        return KVCLI_EXIT_SERVER;
    }
}

static const char *hint(int status, const char *msg)
{
    switch (status) {
    case KV_CONNECT:
        /* Nobody listening vs. a bad address (name, route). */
        if (strstr(msg, "refused") || strstr(msg, "no such file") ||
            strstr(msg, "No such file"))
            return "is kvd running?";
        return "check --host, --port or --unix";
    case KV_TIMEOUT:
        return "the server did not answer in time; raise --timeout";
    case KV_CLOSED:
    case KV_IO:
        return "the connection was lost; is kvd still running?";
    case KV_AUTH_REQUIRED:
        return "the server needs a password: use --password or KV_PASSWORD";
    case KV_AUTH_FAILED:
        return "check --password or KV_PASSWORD";
    case KV_BUSY:
        return "the server has too many connections; retry later";
    case KV_KEY_TOO_LARGE:
    case KV_VALUE_TOO_LARGE:
        return "see the server's size limits";
    case KV_UNSUPPORTED:
        if (strstr(msg, "history is off"))
            return NULL; /* the server's message says what to do */
        if (strstr(msg, "cluster node"))
            return NULL;
        return "kvcli and kvd versions do not match";
    case KV_COMPACTED:
        return "that history is gone: ask for the oldest revision named, or a later one";
    case KV_FUTURE_REVISION:
        return "that revision has not happened yet: ask for the latest named, or an earlier one";
    default:
        return NULL;
    }
}

/* Prints the one error line: what failed, the client's message, a hint. */
static void print_failure(kvcli_session *s, int status, const char *what, const char *h)
{
    const char *msg = s->client ? kv_client_last_error(s->client) : "";
    if (msg == NULL || *msg == '\0')
        msg = kv_client_strerror(status);
    if (h == NULL)
        h = hint(status, msg);
    if (!last_err.have) {
        last_err.have = 1;
        last_err.status = kv_client_status_name(status);
        snprintf(last_err.msg, sizeof last_err.msg, "%s%s%s%s%s%s",
                 what ? what : "", what ? ": " : "", msg, h ? " (" : "",
                 h ? h : "", h ? ")" : "");
    }
    kvcli_err("%s%s%s%s%s%s", what ? what : "", what ? ": " : "", msg,
              h ? " (" : "", h ? h : "", h ? ")" : "");
}

int kvcli_fail(kvcli_session *s, int status, const char *what)
{
    /* The client refused before sending (request over its frame limit):
     * kvcli's own refusal, as a usage error, not the server's. */
    if (s->client && kv_client_last_error_local(s->client) && status == KV_UNSUPPORTED) {
        /* not sent: the server speaks an older protocol */
        print_failure(s, status, what, "upgrade kvd to use this");
        return KVCLI_EXIT_SERVER;
    }
    if (s->client && kv_client_last_error_local(s->client)) {
        print_failure(s, status, what,
                      "raise it with kvcli --max-frame-size BYTES; kvd has"
                      " its own --max-frame-size");
        return KVCLI_EXIT_USAGE;
    }
    print_failure(s, status, what, NULL);
    return kvcli_exit_code(status);
}

/* The settings the open connection was made with, to notice a command at
 * the prompt that asks for another server. */
static int same_str(const char *a, const char *b)
{
    return (a == NULL && b == NULL) ||
           (a != NULL && b != NULL && strcmp(a, b) == 0);
}

static struct {
    char *host, *unix_path, *password, *endpoints;
    unsigned port;
    double timeout_s;
    uint64_t max_frame;
    int stale, retries, no_sync;
    int connected; /* this client has been connected before */
} used;

static void forget_used(void)
{
    free(used.host);
    free(used.unix_path);
    free(used.password);
    free(used.endpoints);
    memset(&used, 0, sizeof used);
}

static char *dup_or_null(const char *s)
{
    return s ? strdup(s) : NULL;
}

/* A session's connection came back (kvd restarted, or the last command
 * lost it): say so, on stderr, so the output of commands stays theirs. */
static void announce_reconnect(const kvcli_session *s)
{
    const kvcli_config *c = &s->cfg;
    fflush(stdout);
    if (c->unix_path)
        fprintf(stderr, "kvcli: reconnected to %s", c->unix_path);
    else if (strchr(c->host, ':'))
        fprintf(stderr, "kvcli: reconnected to [%s]:%u", c->host, c->port);
    else
        fprintf(stderr, "kvcli: reconnected to %s:%u", c->host, c->port);
    fprintf(stderr, " (%s %s)\n", kv_client_server_name(s->client),
            kv_client_server_version(s->client));
}

/* open_conn's answer for an --endpoints list libkvclient refused (not a
 * kv status). */
#define KVCLI__BAD_ENDPOINTS (-1000)

/* Connects without printing; returns the kv status (KV_INVALID_ARGUMENT
 * and KV_NO_MEMORY come from creating the client). */
static int open_conn(kvcli_session *s)
{
    const kvcli_config *c = &s->cfg;
    if (s->client != NULL &&
        (!same_str(used.host, c->host) || used.port != c->port ||
         !same_str(used.unix_path, c->unix_path) ||
         !same_str(used.password, c->password) ||
         !same_str(used.endpoints, c->endpoints) ||
         used.timeout_s != c->timeout_s || used.max_frame != c->max_frame ||
         used.stale != c->stale || used.retries != c->retries ||
         used.no_sync != c->no_sync))
        kvcli_disconnect(s);
    /* At the prompt the connection may have sat idle while kvd stopped or
     * restarted: look before using it, so the command goes to the new
     * server instead of failing on the old connection. */
    if (s->client != NULL && kv_client_is_connected(s->client) &&
        (!s->interactive || kv_client_check(s->client) == KV_OK))
        return KV_OK;

    if (s->client == NULL) {
        kv_client_options o;
        kv_client_options_init(&o);
        o.host = c->host;
        o.port = (uint16_t)c->port;
        o.unix_path = c->unix_path;
        o.password = c->password;
        o.client_name = "kvcli";
        o.max_frame = (size_t)c->max_frame;
        if (c->timeout_s > 0) {
            int ms = (int)(c->timeout_s * 1000.0);
            o.connect_timeout_ms = ms > 0 ? ms : 1;
            o.io_timeout_ms = o.connect_timeout_ms;
        }
        int st = kv_client_new(&o, &s->client);
        if (st != KV_OK) {
            s->client = NULL;
            return st;
        }
        if (c->endpoints && kv_client_set_endpoints(s->client, c->endpoints) != KV_OK) {
            kv_client_close(s->client);
            s->client = NULL;
            return KVCLI__BAD_ENDPOINTS;
        }
        /* not connected yet: these take effect as it connects; with
         * endpoints it learns the cluster's members at each connect
         * (kv_client_sync_endpoints) unless --no-sync */
        kv_client_set_retries(s->client, c->retries);
        if (c->no_sync)
            kv_client_set_auto_sync(s->client, 0);
        if (c->stale)
            kv_client_set_consistency(s->client, KV_CLIENT_SERIALIZABLE);
        forget_used();
        used.host = dup_or_null(c->host);
        used.unix_path = dup_or_null(c->unix_path);
        used.password = dup_or_null(c->password);
        used.endpoints = dup_or_null(c->endpoints);
        used.port = c->port;
        used.timeout_s = c->timeout_s;
        used.max_frame = c->max_frame;
        used.stale = c->stale;
        used.retries = c->retries;
        used.no_sync = c->no_sync;
    }
    int st = kv_client_connect(s->client);
    if (st == KV_OK && s->interactive && used.connected)
        announce_reconnect(s);
    if (st == KV_OK)
        used.connected = 1;
    return st;
}

kv_client *kvcli_connect(kvcli_session *s, int *rc)
{
    int st = open_conn(s);
    if (st == KV_OK)
        return s->client;
    if (st == KVCLI__BAD_ENDPOINTS) {
        kvcli_err("invalid --endpoints '%s' (expected HOST:PORT,HOST:PORT,..., an IPv6"
                  " address in brackets, at most %d)", s->cfg.endpoints,
                  KV_CLIENT_MAX_ENDPOINTS);
        *rc = KVCLI_EXIT_USAGE;
        return NULL;
    }
    if (s->client == NULL) {
        kvcli_err("cannot create the client: %s",
                  st == KV_INVALID_ARGUMENT
                      ? "invalid option (is the --unix path too long?)"
                      : kv_client_strerror(st));
        *rc = st == KV_INVALID_ARGUMENT ? KVCLI_EXIT_USAGE : KVCLI_EXIT_SERVER;
        return NULL;
    }
    /* The message names the address. A reply kvcli cannot decode while
     * connecting means the server does not speak kvd's protocol at all: a
     * connection problem, not a server error. */
    if (st == KV_PROTOCOL) {
        print_failure(s, st, NULL,
                      "that is not kvd's protocol: is kvd listening there? check --host,"
                      " --port or --unix");
        *rc = KVCLI_EXIT_CONNECT;
    } else {
        *rc = kvcli_fail(s, st, NULL);
    }
    return NULL;
}

kv_client *kvcli_try_connect(kvcli_session *s, char *why, size_t n)
{
    int st = open_conn(s);
    if (st == KV_OK)
        return s->client;
    const char *msg = s->client ? kv_client_last_error(s->client) : "";
    if (st == KVCLI__BAD_ENDPOINTS)
        msg = "invalid --endpoints (expected HOST:PORT,HOST:PORT,...)";
    snprintf(why, n, "%s", *msg ? msg : kv_client_strerror(st));
    return NULL;
}

void kvcli_disconnect(kvcli_session *s)
{
    kv_client_close(s->client);
    s->client = NULL;
    forget_used();
}
