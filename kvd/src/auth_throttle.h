/*
 * auth_throttle.h - slows down password guessing: a small table of peer
 * addresses with recent AUTH failures, shared by all worker loops.
 *
 * Each failure from an address doubles the delay before that address's
 * next AUTH is checked (AUTH_BASE_MS, 2x, 4x ... capped at KVD_AUTH_MAX_MS),
 * and every AUTH from it - right or wrong, on any connection - waits its
 * turn: an attempt reserves the next slot, so parallel connections from
 * one address are checked one at a time, one backoff apart. A success
 * forgets the address; an entry also expires KVD_AUTH_FORGET_MS after its
 * last failure. IPv6 peers are keyed by their /64 (one host's usual
 * allocation), Unix-socket peers share one key. The table holds
 * KVD_AUTH_SLOTS addresses; when full, the least recently failed is
 * dropped. The delay itself is the caller's job (a libuv timer, never a
 * sleep on the loop).
 *
 * Threads: any; one mutex, taken per AUTH of a server with a password
 * (never per other request).
 */
#ifndef KVD_AUTH_THROTTLE_H
#define KVD_AUTH_THROTTLE_H

#include <pthread.h>
#include <stdint.h>
#include <sys/socket.h>

#define KVD_AUTH_SLOTS 1024
#define KVD_AUTH_BASE_MS 50
#define KVD_AUTH_MAX_MS 3000
#define KVD_AUTH_FORGET_MS 60000
#define KVD_AUTH_WARN_EVERY_MS 10000 /* at most one WARN per this */

typedef struct kvd_peer_key {
    uint8_t family; /* AF_INET, AF_INET6 or AF_UNIX */
    uint8_t addr[8]; /* IPv4 address, or IPv6 /64 prefix */
} kvd_peer_key;

typedef struct kvd_auth_entry {
    kvd_peer_key key;
    uint8_t used;
    uint32_t failures; /* consecutive, since the last success */
    uint64_t last_fail_ms;
    uint64_t next_ms; /* the next AUTH from here is checked no earlier */
} kvd_auth_entry;

typedef struct kvd_auth_throttle {
    pthread_mutex_t lock;
    uint64_t last_warn_ms;
    uint64_t unwarned; /* failures since the last WARN */
    kvd_auth_entry e[KVD_AUTH_SLOTS];
} kvd_auth_throttle;

/* The key of a peer address (ss may be NULL for a Unix socket). */
kvd_peer_key kvd_peer_key_of(const struct sockaddr_storage *ss);

void kvd_auth_throttle_init(kvd_auth_throttle *t);
void kvd_auth_throttle_destroy(kvd_auth_throttle *t);

/* An AUTH from k arrives at now_ms: returns how many ms to wait before
 * checking it (0: check now) and reserves that turn. */
uint64_t kvd_auth_throttle_admit(kvd_auth_throttle *t, const kvd_peer_key *k, uint64_t now_ms);

/* The AUTH was checked: ok forgets k, a failure lengthens its backoff.
 * Returns 1 if the caller should log a WARN now (rate-limited), and then
 * *failures receives k's consecutive failures and *unwarned the failures
 * (all addresses) since the last WARN, this one included. */
int kvd_auth_throttle_result(kvd_auth_throttle *t, const kvd_peer_key *k, uint64_t now_ms, int ok,
                             uint32_t *failures, uint64_t *unwarned);

#endif /* KVD_AUTH_THROTTLE_H */
