/*
 * harness.c - start/stop a real kvd, raw socket helpers (see harness.h).
 */
#include "harness.h"

#include <criterion/criterion.h>
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <arpa/inet.h>
#include <poll.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/time.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

kvd_proc g_kvd;
static size_t g_rlimit_as;

void kvd_limit_address_space(size_t bytes)
{
    g_rlimit_as = bytes;
}

int kvd_under_a_tool(void)
{
    const char *wrap = getenv("KVD_WRAPPER");
    return (wrap && *wrap) || KVD_SANITIZE[0] != '\0';
}

static long now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return ts.tv_sec * 1000L + ts.tv_nsec / 1000000L;
}

static void sleep_ms(int ms)
{
    struct timespec ts = {ms / 1000, (long)(ms % 1000) * 1000000L};
    nanosleep(&ts, NULL);
}

static void rm_tree(const char *dir)
{
    DIR *d = opendir(dir);
    if (!d)
        return;
    struct dirent *e;
    while ((e = readdir(d)) != NULL) {
        if (strcmp(e->d_name, ".") == 0 || strcmp(e->d_name, "..") == 0)
            continue;
        char p[600];
        snprintf(p, sizeof p, "%s/%s", dir, e->d_name);
        unlink(p);
    }
    closedir(d);
    rmdir(dir);
}

void harness_setup(void)
{
    signal(SIGPIPE, SIG_IGN);
    memset(&g_kvd, 0, sizeof g_kvd);
    g_rlimit_as = 0;
}

void harness_teardown(void)
{
    if (g_kvd.pid > 0) {
        kill(g_kvd.pid, SIGKILL);
        waitpid(g_kvd.pid, NULL, 0);
        g_kvd.pid = 0;
    }
    if (g_kvd.dir[0])
        rm_tree(g_kvd.dir);
    g_kvd.dir[0] = '\0';
}

static int read_port(const char *path)
{
    FILE *f = fopen(path, "r");
    if (!f)
        return -1;
    int port = -1;
    if (fscanf(f, "%d", &port) != 1)
        port = -1;
    fclose(f);
    return port;
}

/* The running kvd's log, on stderr, each line marked: for a failure's report. */
void kvd_dump_log(void)
{
    FILE *f = fopen(g_kvd.log, "r");
    if (!f)
        return;
    char line[512];
    while (fgets(line, sizeof line, f))
        fprintf(stderr, "  kvd| %s", line);
    fclose(f);
}

void kvd_test_dir(void)
{
    if (!g_kvd.dir[0]) {
        strcpy(g_kvd.dir, "/tmp/kvdtest.XXXXXX");
        cr_assert_not_null(mkdtemp(g_kvd.dir));
    }
}

int kvd_run_to_end(const char *const *args, char *out, size_t outlen)
{
    kvd_test_dir();
    char path[300];
    snprintf(path, sizeof path, "%s/out", g_kvd.dir);
    const char *argv[32];
    int n = 0;
    argv[n++] = KVD_PATH;
    for (size_t i = 0; args[i] && n < 31; i++)
        argv[n++] = args[i];
    argv[n] = NULL;
    pid_t pid = fork();
    if (pid == 0) { /* no cr_assert in the child */
        int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC, 0644);
        dup2(fd, 1);
        dup2(fd, 2);
        execv(KVD_PATH, (char *const *)argv);
        _exit(127);
    }
    cr_assert(pid > 0);
    int st = -1;
    for (int i = 0; i < 4000; i++) {
        if (waitpid(pid, &st, WNOHANG) == pid)
            break;
        sleep_ms(5);
        if (i == 3999) {
            kill(pid, SIGKILL);
            waitpid(pid, &st, 0);
            cr_assert_fail("kvd did not finish");
        }
    }
    FILE *f = fopen(path, "r");
    size_t got = f ? fread(out, 1, outlen - 1, f) : 0;
    out[got] = '\0';
    if (f)
        fclose(f);
    return WIFEXITED(st) ? WEXITSTATUS(st) : 128;
}

int file_has(const char *path, const char *needle)
{
    FILE *f = fopen(path, "r");
    if (!f)
        return 0;
    char line[1024];
    int found = 0;
    while (!found && fgets(line, sizeof line, f))
        found = strstr(line, needle) != NULL;
    fclose(f);
    return found;
}

int wait_file_has(const char *path, const char *needle)
{
    for (int i = 0; i < 2000; i++) {
        if (file_has(path, needle))
            return 1;
        sleep_ms(10);
    }
    return 0;
}

void kvd_startv(const char *const *args)
{
    kvd_test_dir();
    snprintf(g_kvd.log, sizeof g_kvd.log, "%s/kvd.log", g_kvd.dir);
    snprintf(g_kvd.portfile, sizeof g_kvd.portfile, "%s/port", g_kvd.dir);
    unlink(g_kvd.portfile);

    /* KVD_WRAPPER="valgrind -q ...": run kvd under that command (the
     * valgrind_* tests); its words come first, split at spaces. */
    static char wrapper[512];
    const char *argv[96];
    int n = 0;
    const char *wrap = getenv("KVD_WRAPPER");
    if (wrap && *wrap) {
        snprintf(wrapper, sizeof wrapper, "%s", wrap);
        for (char *save = NULL, *w = strtok_r(wrapper, " ", &save); w && n < 32;
             w = strtok_r(NULL, " ", &save))
            argv[n++] = w;
    }
    argv[n++] = KVD_PATH;
    argv[n++] = "--port";
    argv[n++] = "0";
    argv[n++] = "--port-file";
    argv[n++] = g_kvd.portfile;
    argv[n++] = "--threads";
    argv[n++] = "2";
    for (size_t i = 0; args && args[i] && n < 94; i++)
        argv[n++] = args[i];
    argv[n] = NULL;

    /* No cr_assert in the child: with --full-stats even a passing assert
     * messages the runner, which must not hear from a non-test process. */
    pid_t pid = fork();
    if (pid == 0) {
        int fd = open(g_kvd.log, O_WRONLY | O_CREAT | O_TRUNC, 0644);
        if (fd >= 0) {
            dup2(fd, STDERR_FILENO);
            dup2(fd, STDOUT_FILENO);
            close(fd);
        }
        if (g_rlimit_as) {
            struct rlimit rl = {g_rlimit_as, g_rlimit_as};
            if (setrlimit(RLIMIT_AS, &rl) != 0)
                _exit(126);
        }
        execvp(argv[0], (char *const *)argv);
        _exit(127);
    }
    cr_assert(pid > 0, "fork failed");
    g_kvd.pid = pid;
    long deadline = now_ms() + 20000;
    while (now_ms() < deadline) {
        int port = read_port(g_kvd.portfile); /* 0: serving, no TCP */
        if (port >= 0) {
            g_kvd.port = port;
            return;
        }
        int st;
        if (waitpid(pid, &st, WNOHANG) == pid) {
            g_kvd.pid = 0;
            kvd_dump_log();
            cr_assert_fail("kvd exited during startup (status %d)", st);
        }
        sleep_ms(10);
    }
    kvd_dump_log();
    cr_assert_fail("kvd did not write its port file in time");
}

void kvd_start(const char *arg, ...)
{
    const char *args[48];
    size_t n = 0;
    va_list ap;
    va_start(ap, arg);
    for (const char *a = arg; a && n < 47; a = va_arg(ap, const char *))
        args[n++] = a;
    va_end(ap);
    args[n] = NULL;
    kvd_startv(args);
}

int kvd_alive(void)
{
    if (g_kvd.pid <= 0)
        return 0;
    int st;
    return waitpid(g_kvd.pid, &st, WNOHANG) == 0;
}

int kvd_stop_status(void)
{
    if (g_kvd.pid <= 0)
        return -1;
    kill(g_kvd.pid, SIGTERM);
    return kvd_wait_status();
}

int kvd_wait_status(void)
{
    if (g_kvd.pid <= 0)
        return -1;
    long deadline = now_ms() + 20000;
    int st;
    while (now_ms() < deadline) {
        pid_t r = waitpid(g_kvd.pid, &st, WNOHANG);
        if (r == g_kvd.pid) {
            g_kvd.pid = 0;
            if (WIFEXITED(st))
                return WEXITSTATUS(st);
            return 128 + WTERMSIG(st);
        }
        sleep_ms(5);
    }
    kill(g_kvd.pid, SIGKILL);
    waitpid(g_kvd.pid, NULL, 0);
    g_kvd.pid = 0;
    return -1;
}

void kvd_assert_clean_log(void)
{
    FILE *f = fopen(g_kvd.log, "r");
    if (!f)
        return;
    static const char *const bad[] = {"Sanitizer", "runtime error:", "stack-buffer",
                                      "heap-use-after-free", "definitely lost",
                                      "Invalid read", "Invalid write"};
    char line[1024];
    int dirty = 0;
    while (fgets(line, sizeof line, f))
        for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++)
            if (strstr(line, bad[i]))
                dirty = 1;
    fclose(f);
    if (dirty)
        kvd_dump_log();
    cr_assert(!dirty, "kvd's stderr has a sanitizer report");
}

void kvd_wait_clean(void)
{
    int st = kvd_wait_status();
    if (st != 0)
        kvd_dump_log();
    cr_assert_eq(st, 0, "kvd exit status %d", st);
    kvd_assert_clean_log();
}

void kvd_wait_clean_after(int sig)
{
    kill(g_kvd.pid, sig);
    kvd_wait_clean();
}

void kvd_stop(void)
{
    int st = kvd_stop_status();
    if (st != 0)
        kvd_dump_log();
    cr_assert_eq(st, 0, "kvd exit status %d", st);
    kvd_assert_clean_log();
}

kv_client *test_client(const char *password)
{
    kv_client_options o;
    kv_client_options_init(&o);
    o.host = "127.0.0.1";
    o.port = (uint16_t)g_kvd.port;
    o.password = password;
    o.io_timeout_ms = TEST_IO_TIMEOUT_MS;
    kv_client *c = NULL;
    int rc = kv_client_open(&o, &c);
    cr_assert_eq(rc, KV_OK, "connect: %s (%s)", kv_client_strerror(rc),
                 c ? kv_client_last_error(c) : "");
    return c;
}

kv_client *test_unix_client(const char *path)
{
    kv_client_options o;
    kv_client_options_init(&o);
    o.unix_path = path;
    o.io_timeout_ms = TEST_IO_TIMEOUT_MS;
    kv_client *c = NULL;
    int rc = kv_client_open(&o, &c);
    cr_assert_eq(rc, KV_OK, "connect to %s: %s (%s)", path, kv_client_strerror(rc),
                 c ? kv_client_last_error(c) : "");
    return c;
}

/* ---- raw sockets ----------------------------------------------------------- */

static int raw_connect_addr(struct sockaddr *sa, socklen_t len, int timeout_ms)
{
    int fd = socket(sa->sa_family, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (fd < 0)
        return -1;
    struct timeval tv = {timeout_ms / 1000, (timeout_ms % 1000) * 1000};
    setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
    setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof tv);
    if (connect(fd, sa, len) != 0) {
        close(fd);
        return -1;
    }
    int one = 1;
    setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
    return fd;
}

int raw_connect(int port, int timeout_ms)
{
    struct sockaddr_in sin = {0};
    sin.sin_family = AF_INET;
    sin.sin_port = htons((uint16_t)port);
    sin.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    return raw_connect_addr((struct sockaddr *)&sin, sizeof sin, timeout_ms);
}

int raw_connect6(int port, int timeout_ms)
{
    struct sockaddr_in6 sin6 = {0};
    sin6.sin6_family = AF_INET6;
    sin6.sin6_port = htons((uint16_t)port);
    sin6.sin6_addr = in6addr_loopback;
    return raw_connect_addr((struct sockaddr *)&sin6, sizeof sin6, timeout_ms);
}

int raw_send(int fd, const void *p, size_t n)
{
    const uint8_t *b = p;
    while (n > 0) {
        ssize_t w = send(fd, b, n, MSG_NOSIGNAL);
        if (w < 0 && errno == EINTR)
            continue;
        if (w <= 0)
            return -1;
        b += w;
        n -= (size_t)w;
    }
    return 0;
}

static int read_full(int fd, uint8_t *p, size_t n)
{
    size_t got = 0;
    while (got < n) {
        ssize_t r = recv(fd, p + got, n - got, 0);
        if (r < 0 && errno == EINTR)
            continue;
        if (r == 0)
            return got == 0 ? 0 : -1;
        if (r < 0)
            return -1;
        got += (size_t)r;
    }
    return 1;
}

long raw_recv_frame(int fd, uint8_t **buf)
{
    uint8_t hdr[4];
    int r = read_full(fd, hdr, 4);
    if (r <= 0)
        return r == 0 ? 0 : -1;
    size_t len = kv_proto_read_u32(hdr);
    if (len == 0 || len > KV_PROTO_DEFAULT_MAX_FRAME)
        return -1;
    uint8_t *b = malloc(len);
    if (!b)
        return -1;
    if (read_full(fd, b, len) != 1) {
        free(b);
        return -1;
    }
    *buf = b;
    return (long)len;
}

int raw_recv_status(int fd, int op, uint64_t *id)
{
    uint8_t *b = NULL;
    long n = raw_recv_frame(fd, &b);
    if (n <= 0)
        return -1;
    kv_proto_response resp;
    int rc = kv_proto_response_decode(b, (size_t)n, op, NULL, &resp);
    int status = rc == KV_OK ? resp.status : -2;
    if (id)
        *id = resp.id;
    kv_proto_response_free(&resp);
    free(b);
    return status;
}

int raw_wait_closed(int fd, int timeout_ms)
{
    long deadline = now_ms() + timeout_ms;
    uint8_t buf[65536];
    while (now_ms() < deadline) {
        struct pollfd p = {fd, POLLIN, 0};
        int n = poll(&p, 1, 100);
        if (n <= 0)
            continue;
        ssize_t r = recv(fd, buf, sizeof buf, MSG_DONTWAIT);
        if (r == 0 || (r < 0 && errno != EAGAIN && errno != EINTR))
            return 1;
    }
    return 0;
}

void enc(kv_proto_buf *b, const kv_proto_request *r)
{
    int rc = kv_proto_request_encode(b, r);
    cr_assert_eq(rc, KV_OK, "encode: %s", kv_client_strerror(rc));
}

uint64_t metric_u(const char *parent, const char *name)
{
    kv_client *c = test_client(NULL);
    kv_client_metrics m;
    cr_assert_eq(kv_client_metrics_get(c, &m), KV_OK);
    const kv_client_metric *x = kv_client_metrics_find(&m, parent, name);
    cr_assert_not_null(x, "metric %s not found", name);
    uint64_t v = x->kind == KV_CLIENT_METRIC_UINT ? x->u : (uint64_t)x->d;
    kv_client_metrics_free(&m);
    kv_client_close(c);
    return v;
}

long kvd_rss_kib(void)
{
    char path[64], line[256];
    snprintf(path, sizeof path, "/proc/%d/status", (int)g_kvd.pid);
    FILE *f = fopen(path, "r");
    if (!f)
        return -1;
    long kib = -1;
    while (fgets(line, sizeof line, f))
        if (sscanf(line, "VmRSS: %ld", &kib) == 1)
            break;
    fclose(f);
    return kib;
}

/* ---- raw HTTP ------------------------------------------------------------- */

int http_recv(int fd, http_resp *r, int no_body)
{
    memset(r, 0, sizeof *r);
    r->code = -1;
    size_t n = 0;
    /* the head, a byte at a time: the next response must stay unread */
    while (n + 1 < sizeof r->head) {
        char c;
        ssize_t got = recv(fd, &c, 1, 0);
        if (got <= 0)
            return -1;
        r->head[n++] = c;
        if (n >= 4 && memcmp(r->head + n - 4, "\r\n\r\n", 4) == 0)
            break;
    }
    r->head[n] = '\0';
    if (sscanf(r->head, "HTTP/1.%*d %d", &r->code) != 1)
        return r->code = -1;
    char cl[32];
    size_t len = http_header(r, "Content-Length", cl, sizeof cl) ? strtoul(cl, NULL, 10) : 0;
    if (no_body)
        len = 0;
    r->body = malloc(len + 1);
    if (!r->body)
        return r->code = -1;
    while (r->len < len) {
        ssize_t got = recv(fd, r->body + r->len, len - r->len, 0);
        if (got <= 0)
            return r->code = -1;
        r->len += (size_t)got;
    }
    r->body[r->len] = 0;
    return r->code;
}

void http_resp_free(http_resp *r)
{
    free(r->body);
    r->body = NULL;
}

int http_header(const http_resp *r, const char *name, char *out, size_t cap)
{
    size_t nl = strlen(name);
    for (const char *line = strstr(r->head, "\r\n"); line && line[2] != '\r';
         line = strstr(line + 2, "\r\n")) {
        const char *h = line + 2;
        if (strncasecmp(h, name, nl) == 0 && h[nl] == ':') {
            h += nl + 1;
            while (*h == ' ')
                h++;
            size_t i = 0;
            while (h[i] && h[i] != '\r' && i + 1 < cap) {
                out[i] = h[i];
                i++;
            }
            out[i] = '\0';
            return 1;
        }
    }
    return 0;
}

size_t raw_read_all(int fd, char *buf, size_t cap)
{
    size_t n = 0;
    while (n + 1 < cap) {
        ssize_t r = recv(fd, buf + n, cap - 1 - n, 0);
        if (r <= 0)
            break;
        n += (size_t)r;
    }
    buf[n] = '\0';
    return n;
}

void raw_text_exchange(int port, const char *text, char *out, size_t cap)
{
    int fd = raw_connect(port, TEST_IO_TIMEOUT_MS);
    cr_assert_geq(fd, 0);
    cr_assert_eq(raw_send(fd, text, strlen(text)), 0);
    cr_assert_eq(raw_send(fd, "QUIT\r\n", 6), 0);
    raw_read_all(fd, out, cap);
    close(fd);
}

int kvd_log_port(const char *marker)
{
    FILE *f = fopen(g_kvd.log, "r");
    if (!f)
        return -1;
    char line[512];
    int port = -1;
    while (fgets(line, sizeof line, f)) {
        const char *p = strstr(line, " port ");
        if (p && strstr(line, marker))
            port = atoi(p + 6);
    }
    fclose(f);
    return port;
}
