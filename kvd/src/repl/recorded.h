/*
 * recorded.h - a reply written down to be given later: the Raft apply
 * callback runs a command on the node's raft thread with a recording
 * reply, and the connection that proposed the command replays it into
 * its own front-end's reply once the entry is applied. Protocol-neutral:
 * it records the reply interface's calls, not bytes.
 */
#ifndef KVD_REPL_RECORDED_H
#define KVD_REPL_RECORDED_H

#include "../cmd.h"

/* Starts a recording reply into buf (empty, owned by the caller). */
void kvd_recorded_init(kvd_reply *r, kv_proto_buf *buf);

/* Replays the calls recorded in buf[0..len) into dst. Returns KV_OK or
 * KV_CORRUPT (a malformed recording). */
int kvd_recorded_replay(const void *buf, size_t len, kvd_reply *dst);

#endif /* KVD_REPL_RECORDED_H */
