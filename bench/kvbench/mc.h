/*
 * mc.h - the part of memcached's text protocol kvbench speaks with
 * --protocol memcache (memcached's doc/protocol.txt): encoding GET and SET
 * as `get <key>` and `set <key> 0 0 <bytes>` + data, and parsing the
 * replies those commands get.
 *
 * As resp.h, the parser works on a byte stream that may have been split
 * anywhere and keeps no state between calls: it returns one whole reply
 * (and how many bytes it took) or asks for more. Replies it understands:
 * a hit (VALUE <key> <flags> <bytes> [<cas>]\r\n<data>\r\nEND\r\n: kvbench
 * asks for one key per get, so one VALUE and its END are one reply), a
 * miss (END\r\n), STORED\r\n, and the lines that say a command did not
 * work (ERROR, CLIENT_ERROR <text>, SERVER_ERROR <text>, NOT_STORED,
 * EXISTS, NOT_FOUND). Anything else (a second VALUE, a bad length, a
 * missing \r\n) is a protocol error: the stream cannot be followed.
 *
 * The text protocol has no authentication (memcached authenticates only
 * over SASL in the binary protocol): AUTH is not encodable.
 *
 * Threads: no shared state; call from any thread.
 */
#ifndef KVBENCH_MC_H
#define KVBENCH_MC_H

#include <stddef.h>
#include <stdint.h>

#include "kv_proto.h"

/* Longest reply line accepted, \r\n included (a VALUE line with a
 * 250-byte key and its numbers, or an error's text). */
#define KVB_MC_MAX_LINE 1024
/* Longest value accepted (memcached's own -I limit is 1 GiB). */
#define KVB_MC_MAX_VALUE (1024LL * 1024 * 1024)
/* memcached's key limit: 250 bytes, no spaces or control characters. */
#define KVB_MC_MAX_KEY 250

typedef enum kvb_mc_type {
    KVB_MC_VALUE = 0,  /* a hit: str/len is the value               */
    KVB_MC_MISS = 1,   /* END alone: get of a missing key           */
    KVB_MC_STORED = 2, /* the set was done                          */
    KVB_MC_ERROR = 3   /* the command failed: str/len is the line   */
} kvb_mc_type;

/* One parsed reply. str points into the caller's buffer: it is valid
 * as long as those bytes are (not NUL-terminated). */
typedef struct kvb_mc_reply {
    kvb_mc_type type;
    const char *str;
    size_t len;
} kvb_mc_reply;

typedef enum kvb_mc_result {
    KVB_MC_NEED_MORE = 0, /* no whole reply yet: read more and retry  */
    KVB_MC_REPLY = 1,     /* *out is a reply of *used bytes           */
    KVB_MC_BAD = 2        /* not a reply kvbench expects: *why says   */
} kvb_mc_result;

/* Parses the reply at the start of buf[0..len). On KVB_MC_REPLY, *out
 * is the reply and *used its length in bytes; on KVB_MC_BAD, *why is a
 * static description of the problem; otherwise the outputs are
 * untouched. Never reads past len. */
kvb_mc_result kvb_mc_parse(const uint8_t *buf, size_t len, kvb_mc_reply *out, size_t *used,
                           const char **why);

/* Appends req as a text-protocol command: `get key` or `set key 0 0 n`
 * and the value (the fields of kv_proto_request that op names; no id is
 * sent: replies come in request order). Errors: KV_UNSUPPORTED (another
 * op, AUTH included), KV_INVALID_ARGUMENT (a key memcached refuses: empty,
 * longer than KVB_MC_MAX_KEY, or with a space or control character),
 * KV_NO_MEMORY. */
int kvb_mc_request_encode(kv_proto_buf *b, const kv_proto_request *req);

#endif /* KVBENCH_MC_H */
