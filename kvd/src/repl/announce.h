/*
 * announce.h - a cluster follower tells its leader where clients reach it
 * (announce.c): the leader then proposes that as a log entry, as it does
 * for its own address, so every node's CLUSTER status names it.
 */
#ifndef KVD_REPL_ANNOUNCE_H
#define KVD_REPL_ANNOUNCE_H

#include <stddef.h>
#include <stdint.h>

/* Connects to the leader's client address `leader` ("HOST:PORT",
 * "[V6]:PORT"), says HELLO, AUTH with password (if not NULL), and asks
 * CLUSTER announce node_id self. Blocking; every step bounded by
 * timeout_ms. 0 once the leader has committed it, else -1 with err (cap
 * bytes) saying why. Any thread. */
int kvd_announce_to(const char *leader, const char *password, uint64_t node_id,
                    const char *self, int timeout_ms, char *err, size_t cap);

#endif /* KVD_REPL_ANNOUNCE_H */
