/*
 * auth_throttle.c - per-address backoff for AUTH failures (see
 * auth_throttle.h). A linear scan of KVD_AUTH_SLOTS entries under the
 * mutex: AUTH is rare next to other requests, and a scan of 1024 small
 * entries costs about a microsecond.
 */
#include "auth_throttle.h"

#include <netinet/in.h>
#include <string.h>

kvd_peer_key kvd_peer_key_of(const struct sockaddr_storage *ss)
{
    kvd_peer_key k;
    memset(&k, 0, sizeof k);
    if (ss && ss->ss_family == AF_INET) {
        k.family = AF_INET;
        memcpy(k.addr, &((const struct sockaddr_in *)ss)->sin_addr, 4);
    } else if (ss && ss->ss_family == AF_INET6) {
        const uint8_t *a = ((const struct sockaddr_in6 *)ss)->sin6_addr.s6_addr;
        static const uint8_t mapped[12] = {0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff};
        if (memcmp(a, mapped, 12) == 0) { /* an IPv4 peer on a v6 socket */
            k.family = AF_INET;
            memcpy(k.addr, a + 12, 4);
        } else {
            k.family = AF_INET6;
            memcpy(k.addr, a, 8);
        }
    } else {
        k.family = AF_UNIX;
    }
    return k;
}

void kvd_auth_throttle_init(kvd_auth_throttle *t)
{
    memset(t, 0, sizeof *t);
    pthread_mutex_init(&t->lock, NULL);
}

void kvd_auth_throttle_destroy(kvd_auth_throttle *t)
{
    pthread_mutex_destroy(&t->lock);
}

static int expired(const kvd_auth_entry *e, uint64_t now)
{
    return now >= e->next_ms && now - e->last_fail_ms >= KVD_AUTH_FORGET_MS;
}

static kvd_auth_entry *find(kvd_auth_throttle *t, const kvd_peer_key *k, uint64_t now)
{
    for (size_t i = 0; i < KVD_AUTH_SLOTS; i++) {
        kvd_auth_entry *e = &t->e[i];
        if (!e->used || memcmp(&e->key, k, sizeof *k) != 0)
            continue;
        if (expired(e, now)) {
            e->used = 0;
            return NULL;
        }
        return e;
    }
    return NULL;
}

static uint64_t backoff(uint32_t failures)
{
    if (failures == 0)
        return 0;
    uint32_t shift = failures - 1 > 16 ? 16 : failures - 1;
    uint64_t d = (uint64_t)KVD_AUTH_BASE_MS << shift;
    return d > KVD_AUTH_MAX_MS ? KVD_AUTH_MAX_MS : d;
}

uint64_t kvd_auth_throttle_admit(kvd_auth_throttle *t, const kvd_peer_key *k, uint64_t now_ms)
{
    pthread_mutex_lock(&t->lock);
    uint64_t delay = 0;
    kvd_auth_entry *e = find(t, k, now_ms);
    if (e) {
        uint64_t turn = e->next_ms > now_ms ? e->next_ms : now_ms;
        delay = turn - now_ms;
        e->next_ms = turn + backoff(e->failures); /* the attempt after this one */
    }
    pthread_mutex_unlock(&t->lock);
    return delay;
}

int kvd_auth_throttle_result(kvd_auth_throttle *t, const kvd_peer_key *k, uint64_t now_ms, int ok,
                             uint32_t *failures, uint64_t *unwarned)
{
    int warn = 0;
    pthread_mutex_lock(&t->lock);
    kvd_auth_entry *e = find(t, k, now_ms);
    if (ok) {
        if (e)
            e->used = 0;
        pthread_mutex_unlock(&t->lock);
        return 0;
    }
    if (!e) {
        /* a free or expired slot, else the least recently failed */
        kvd_auth_entry *victim = &t->e[0];
        for (size_t i = 0; i < KVD_AUTH_SLOTS; i++) {
            kvd_auth_entry *x = &t->e[i];
            if (!x->used || expired(x, now_ms)) {
                victim = x;
                break;
            }
            if (x->last_fail_ms < victim->last_fail_ms)
                victim = x;
        }
        e = victim;
        memset(e, 0, sizeof *e);
        e->used = 1;
        e->key = *k;
        e->next_ms = now_ms;
    }
    if (e->failures < UINT32_MAX)
        e->failures++;
    e->last_fail_ms = now_ms;
    uint64_t next = now_ms + backoff(e->failures);
    if (next > e->next_ms)
        e->next_ms = next;
    t->unwarned++;
    if (t->last_warn_ms == 0 || now_ms - t->last_warn_ms >= KVD_AUTH_WARN_EVERY_MS) {
        warn = 1;
        t->last_warn_ms = now_ms ? now_ms : 1;
        *failures = e->failures;
        *unwarned = t->unwarned;
        t->unwarned = 0;
    }
    pthread_mutex_unlock(&t->lock);
    return warn;
}
