/*
 * pacer.c - wake-ups at a given uv_hrtime for --rate (see pacer.h).
 */
#include "pacer.h"

#ifdef KVB_PACER_TIMERFD
#include <errno.h>
#include <sys/timerfd.h>
#include <unistd.h>
#endif

static void pacer_set(kvb_pacer *p, uint64_t due_ns);
static void pacer_clear(kvb_pacer *p);
void kvb_pacer_close(kvb_pacer *p);

static void pacer_fire(kvb_pacer *p)
{
    p->armed_ns = 0;
    p->want_ns = UINT64_MAX;
    p->in_cb = 1;
    p->cb(p);
    p->in_cb = 0;
    if (p->want_ns != UINT64_MAX)
        kvb_pacer_arm(p, p->want_ns);
}

void kvb_pacer_arm(kvb_pacer *p, uint64_t due_ns)
{
    if (p->closed)
        return;
    if (due_ns == 0)
        due_ns = 1; /* 0 means "not armed" */
    if (p->in_cb) {
        if (due_ns < p->want_ns)
            p->want_ns = due_ns;
        return;
    }
    if (p->armed_ns != 0 && p->armed_ns <= due_ns)
        return;
    p->armed_ns = due_ns;
    pacer_set(p, due_ns);
}

void kvb_pacer_stop(kvb_pacer *p)
{
    p->want_ns = UINT64_MAX;
    if (p->closed || p->armed_ns == 0)
        return;
    p->armed_ns = 0;
    pacer_clear(p);
}

#ifdef KVB_PACER_TIMERFD

static void on_poll(uv_poll_t *h, int status, int events)
{
    (void)events;
    kvb_pacer *p = h->data;
    if (status < 0)
        return;
    uint64_t expirations;
    /* Drains the timerfd so that the poll is not readable again; EAGAIN
     * when it was re-armed after expiring (nothing is due yet). */
    if (read(p->fd, &expirations, sizeof expirations) != sizeof expirations)
        return;
    pacer_fire(p);
}

int kvb_pacer_init(kvb_pacer *p, uv_loop_t *loop, kvb_pacer_cb cb, void *data)
{
    *p = (kvb_pacer){.cb = cb, .data = data, .want_ns = UINT64_MAX};
    p->fd = timerfd_create(CLOCK_MONOTONIC, TFD_NONBLOCK | TFD_CLOEXEC);
    if (p->fd < 0)
        return uv_translate_sys_error(errno);
    int rc = uv_poll_init(loop, &p->poll, p->fd);
    if (rc < 0) {
        close(p->fd);
        return rc;
    }
    p->poll.data = p;
    rc = uv_poll_start(&p->poll, UV_READABLE, on_poll);
    if (rc < 0)
        kvb_pacer_close(p);
    return rc;
}

static void pacer_settime(kvb_pacer *p, uint64_t due_ns)
{
    struct itimerspec its = {
        .it_value = {(time_t)(due_ns / 1000000000u), (long)(due_ns % 1000000000u)}};
    timerfd_settime(p->fd, TFD_TIMER_ABSTIME, &its, NULL);
}

static void pacer_set(kvb_pacer *p, uint64_t due_ns)
{
    pacer_settime(p, due_ns);
}

static void pacer_clear(kvb_pacer *p)
{
    pacer_settime(p, 0); /* an all-zero it_value disarms */
}

static void on_close(uv_handle_t *h)
{
    kvb_pacer *p = h->data;
    close(p->fd);
}

void kvb_pacer_close(kvb_pacer *p)
{
    if (p->closed)
        return;
    p->closed = 1;
    uv_close((uv_handle_t *)&p->poll, on_close);
}

#else /* a uv_timer: millisecond resolution */

static void on_timer(uv_timer_t *t)
{
    pacer_fire(t->data);
}

int kvb_pacer_init(kvb_pacer *p, uv_loop_t *loop, kvb_pacer_cb cb, void *data)
{
    *p = (kvb_pacer){.cb = cb, .data = data, .want_ns = UINT64_MAX};
    int rc = uv_timer_init(loop, &p->timer);
    p->timer.data = p;
    return rc;
}

static void pacer_set(kvb_pacer *p, uint64_t due_ns)
{
    uint64_t now = uv_hrtime();
    uint64_t ms = due_ns > now ? (due_ns - now + 999999) / 1000000 : 0;
    uv_timer_start(&p->timer, on_timer, ms, 0);
}

static void pacer_clear(kvb_pacer *p)
{
    uv_timer_stop(&p->timer);
}

void kvb_pacer_close(kvb_pacer *p)
{
    if (p->closed)
        return;
    p->closed = 1;
    uv_close((uv_handle_t *)&p->timer, NULL);
}

#endif
