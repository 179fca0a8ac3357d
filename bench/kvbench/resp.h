/*
 * resp.h - the part of RESP2 (the Redis protocol) kvbench speaks with
 * --protocol resp: encoding GET, SET and AUTH as arrays of bulk strings,
 * and parsing the replies those commands get.
 *
 * The parser works on a byte stream that may have been split anywhere:
 * it looks at the bytes received so far and either returns one whole
 * reply (and how many bytes it took) or asks for more; it keeps no state
 * between calls, so the caller just calls again from the same place once
 * more bytes have arrived. Replies it understands: simple string
 * (+OK\r\n), error (-ERR ...\r\n), bulk string ($<n>\r\n<n bytes>\r\n),
 * null bulk ($-1\r\n) and integer (:<n>\r\n). Anything else (arrays,
 * RESP3 types, a bad length, a missing \r\n) is a protocol error: the
 * stream cannot be followed any further.
 *
 * Threads: no shared state; call from any thread.
 */
#ifndef KVBENCH_RESP_H
#define KVBENCH_RESP_H

#include <stddef.h>
#include <stdint.h>

#include "kv_proto.h"

/* Longest simple string or error line accepted, \r\n included: a
 * server that sends more without a line end is not speaking RESP. */
#define KVB_RESP_MAX_LINE (64 * 1024)
/* Longest bulk string accepted (Redis's own proto-max-bulk-len). */
#define KVB_RESP_MAX_BULK (512LL * 1024 * 1024)

typedef enum kvb_resp_type {
    KVB_RESP_SIMPLE = 0,  /* +...: str/len is the text                  */
    KVB_RESP_ERROR = 1,   /* -...: str/len is the text (no '-')         */
    KVB_RESP_BULK = 2,    /* $n: str/len is the n bytes                 */
    KVB_RESP_NULL = 3,    /* $-1: no value (GET of a missing key)       */
    KVB_RESP_INTEGER = 4  /* :n: in `integer`                           */
} kvb_resp_type;

/* One parsed reply. str points into the caller's buffer: it is valid
 * as long as those bytes are (not NUL-terminated). */
typedef struct kvb_resp_reply {
    kvb_resp_type type;
    const char *str;
    size_t len;
    int64_t integer;
} kvb_resp_reply;

typedef enum kvb_resp_result {
    KVB_RESP_NEED_MORE = 0, /* no whole reply yet: read more and retry  */
    KVB_RESP_REPLY = 1,     /* *out is a reply of *used bytes           */
    KVB_RESP_BAD = 2        /* not RESP2 (or not a reply kvbench
                               expects): *why says what is wrong        */
} kvb_resp_result;

/* Parses the reply at the start of buf[0..len). On KVB_RESP_REPLY, *out
 * is the reply and *used its length in bytes; on KVB_RESP_BAD, *why is a
 * static description of the problem; otherwise the outputs are
 * untouched. Never reads past len. */
kvb_resp_result kvb_resp_parse(const uint8_t *buf, size_t len, kvb_resp_reply *out,
                               size_t *used, const char **why);

/* Appends req as a RESP2 command: GET key, SET key value, AUTH secret
 * (the fields of kv_proto_request that op names; the id is not sent:
 * RESP replies come in request order). Errors: KV_UNSUPPORTED (another
 * op), KV_NO_MEMORY. */
int kvb_resp_request_encode(kv_proto_buf *b, const kv_proto_request *req);

#endif /* KVBENCH_RESP_H */
