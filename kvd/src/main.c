/*
 * main.c - kvd's entry point: configuration, logging, daemon mode, pid
 * file, then the server until SIGINT/SIGTERM (SIGHUP reopens the log:
 * signals.h; a fatal signal leaves a crash report in it, crash.h);
 * a service manager is told how it goes (notify.h).
 *
 * Exit codes: 0 after a clean stop (or --help/--version), 2 for bad flags
 * or configuration, 1 when the server could not start.
 */
#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <uv.h>

#include "config.h"
#include "crash.h"
#include "daemon.h"
#include "log.h"
#include "notify.h"
#include "server.h"
#include "signals.h"

/* Daemons chdir("/"): resolve relative paths against the start directory. */
static int make_absolute(char **path)
{
    if (!*path || (*path)[0] == '/')
        return 0;
    char cwd[4096];
    if (!getcwd(cwd, sizeof cwd))
        return -1;
    size_t n = strlen(cwd) + strlen(*path) + 2;
    char *abs = malloc(n);
    if (!abs)
        return -1;
    snprintf(abs, n, "%s/%s", cwd, *path);
    free(*path);
    *path = abs;
    return 0;
}

int main(int argc, char **argv)
{
    /* A peer closing its socket must not kill the server on write. */
    signal(SIGPIPE, SIG_IGN);
    /* SIGHUP reopens the log once the server runs; before it, it must not
     * stop kvd either (from then on signals.c hears it). */
    signal(SIGHUP, SIG_IGN);
    kvd_crash_install();

    kvd_config cfg;
    kvd_config_result r = kvd_config_load(&cfg, argc, argv);
    if (r != KVD_CONFIG_RUN) {
        kvd_config_free(&cfg);
        return r == KVD_CONFIG_EXIT_OK ? 0 : 2;
    }
    kvd_log_set_level((kvd_log_level)cfg.log_level);
    if (make_absolute(&cfg.pidfile) || make_absolute(&cfg.port_file) ||
        make_absolute(&cfg.unix_path) || make_absolute(&cfg.log_file)) {
        fprintf(stderr, "kvd: error: cannot resolve relative paths: %s\n", strerror(errno));
        kvd_config_free(&cfg);
        return 2;
    }
    if (cfg.log_file) {
        int err = kvd_log_open(cfg.log_file);
        if (err) {
            fprintf(stderr, "kvd: error: cannot open log file %s: %s\n", cfg.log_file, strerror(err));
            kvd_config_free(&cfg);
            return 2;
        }
    }

    kvd_notify_init(); /* $NOTIFY_SOCKET: started by systemd as Type=notify */

    /* Locked before daemonizing, so "already running" reaches the terminal. */
    int pidfd = -1;
    if (cfg.pidfile) {
        int holder = 0;
        int err = kvd_pidfile_lock(cfg.pidfile, &pidfd, &holder);
        if (err) {
            if (err == EWOULDBLOCK) {
                fprintf(stderr, "kvd: already running (pid %d), pid file %s is locked\n", holder,
                        cfg.pidfile);
                if (cfg.log_file)
                    kvd_error("already running (pid %d), pid file %s is locked", holder, cfg.pidfile);
            } else {
                fprintf(stderr, "kvd: error: cannot open pid file %s: %s\n", cfg.pidfile, strerror(err));
                if (cfg.log_file)
                    kvd_error("cannot open pid file %s: %s", cfg.pidfile, strerror(err));
            }
            kvd_config_free(&cfg);
            kvd_log_close();
            return 1;
        }
    }

    kvd_log_set_syslog(cfg.syslog);
    if (cfg.daemonize && !cfg.log_file && !cfg.syslog)
        fprintf(stderr, "kvd: warning: --daemonize without --log-file: once started, log lines are "
                        "discarded (stderr is /dev/null); start-up errors are still shown here\n");
    int notify = -1;
    if (cfg.daemonize && kvd_daemon_start(&notify) != 0) {
        fprintf(stderr, "kvd: error: cannot daemonize: %s\n", strerror(errno));
        if (pidfd >= 0)
            kvd_pidfile_remove(cfg.pidfile, pidfd);
        kvd_config_free(&cfg);
        kvd_log_close();
        return 1;
    }
    kvd_log_set_mirror(notify);
    if (pidfd >= 0) {
        int err = kvd_pidfile_write(pidfd);
        if (err) {
            kvd_error("cannot write pid file %s: %s", cfg.pidfile, strerror(err));
            kvd_log_set_mirror(-1);
            kvd_daemon_ready(notify, 0);
            kvd_pidfile_remove(cfg.pidfile, pidfd);
            kvd_config_free(&cfg);
            kvd_log_close();
            return 1;
        }
    }

    /* Before the first thread (after the daemon's fork): signals.h. */
    int err = kvd_signals_init();
    if (err) {
        kvd_error("cannot set up signal handling: %s", strerror(err));
        kvd_log_set_mirror(-1);
        kvd_daemon_ready(notify, 0);
        if (pidfd >= 0)
            kvd_pidfile_remove(cfg.pidfile, pidfd);
        kvd_config_free(&cfg);
        kvd_log_close();
        return 1;
    }

    uv_loop_t loop;
    int rc = uv_loop_init(&loop);
    kvd_server server;
    memset(&server, 0, sizeof server);
    int status = 1;
    if (rc != 0) {
        kvd_error("cannot create event loop: %s", uv_strerror(rc));
    } else if (kvd_server_start(&server, &cfg, &loop) != 0) {
        kvd_log_set_mirror(-1);
        kvd_daemon_ready(notify, 0);
        notify = -1;
    } else {
        kvd_log_set_mirror(-1);
        kvd_daemon_ready(notify, 1);
        notify = -1;
        status = kvd_server_run(&server);
    }
    kvd_log_set_mirror(-1);
    kvd_daemon_ready(notify, 0);
    kvd_server_cleanup(&server);
    if (rc == 0 && uv_loop_close(&loop) != 0)
        kvd_warn("main loop still busy at exit");
    kvd_signals_end();
    if (pidfd >= 0)
        kvd_pidfile_remove(cfg.pidfile, pidfd);
    kvd_config_free(&cfg);
    kvd_log_close();
    return status;
}
