/*
 * record.h - the bytes of a log record and of a checksummed frame.
 *
 * A frame is what the log and the snapshot files are made of (the format
 * is documented for outside readers in docs/storage.md):
 *
 *   u64 len        payload length in bytes
 *   u32 crc        checksum of the payload
 *   u32 hcrc       checksum of the 12 bytes before it (len and crc)
 *   payload[len]
 *   zero padding to a multiple of 8 bytes
 *
 * The payload is stored masked: XORed with a keystream that depends only on
 * its length (kv__frame_mask), so that no written frame holds a long run of
 * zeros even when a value does; zeros in the log then mean "never
 * written" (files.c tells a torn write from damage by them). The crc is
 * of the masked bytes. Checksums are the low 32 bits of XXH3-64 with a
 * fixed seed. All integers are little-endian. An all-zero header marks the
 * end of written data.
 *
 * A change record's payload (one atomic change, one revision):
 *
 *   u8  type = 1, u8 flags = 0, u16 ext_len, u32 nchanges, u64 revision,
 *   ext[ext_len]    (for future fields; readers skip what they do not know)
 *   nchanges times: u8 op (1 = set, 2 = delete), u8 flags = 0,
 *                   u16 ext_len, u32 klen, u32 vlen,
 *                   ext[ext_len], key[klen], value[vlen]
 *
 * A change's (and a snapshot entry's) ext is a list of fields, each
 *   u8 type, u8 len, data[len]
 * Readers skip fields of types they do not know, and stop at bytes that
 * do not form a whole field (older writers put opaque bytes here). Type 1 (KV__EXT_EXPIRE,
 * len 8): a set's expiry time, u64 ms since the Unix epoch. A set without
 * an expiry time has no ext (ext_len 0), as before.
 */
#ifndef KV_RECORD_H
#define KV_RECORD_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "apply.h"

#define KV__FRAME_HDR 16u
#define KV__REC_CHANGE 1u
#define KV__OP_SET 1u
#define KV__OP_DELETE 2u
#define KV__REC_HDR 16u
#define KV__CHANGE_HDR 12u
#define KV__EXT_EXPIRE 1u
#define KV__EXT_EXPIRE_LEN 10u /* type, len, u64 */
#define KV__EXT_META 2u        /* snapshot entries of a store with history */
#define KV__EXT_META_LEN 18u   /* type, len, u64 create revision, u64 version */

static inline size_t kv__align8(size_t n)
{
    return (n + 7) & ~(size_t)7;
}

static inline void kv__put16(unsigned char *p, uint16_t v)
{
    p[0] = (unsigned char)v;
    p[1] = (unsigned char)(v >> 8);
}
static inline void kv__put32(unsigned char *p, uint32_t v)
{
    for (int i = 0; i < 4; i++)
        p[i] = (unsigned char)(v >> (8 * i));
}
static inline void kv__put64(unsigned char *p, uint64_t v)
{
    for (int i = 0; i < 8; i++)
        p[i] = (unsigned char)(v >> (8 * i));
}
static inline uint16_t kv__get16(const unsigned char *p)
{
    return (uint16_t)(p[0] | p[1] << 8);
}
static inline uint32_t kv__get32(const unsigned char *p)
{
    uint32_t v = 0;
    for (int i = 3; i >= 0; i--)
        v = v << 8 | p[i];
    return v;
}
static inline uint64_t kv__get64(const unsigned char *p)
{
    uint64_t v = 0;
    for (int i = 7; i >= 0; i--)
        v = v << 8 | p[i];
    return v;
}

/* Bytes of ext a change or entry with this expiry time needs. */
static inline size_t kv__ext_size(uint64_t expire_at)
{
    return expire_at ? KV__EXT_EXPIRE_LEN : 0;
}

/* Writes the ext of kv__ext_size(expire_at) bytes at p. */
static inline void kv__ext_put(unsigned char *p, uint64_t expire_at)
{
    if (!expire_at)
        return;
    p[0] = KV__EXT_EXPIRE;
    p[1] = 8;
    kv__put64(p + 2, expire_at);
}

/* Reads the fields of an ext of n bytes: *expire_at gets the expiry time
 * (0 if none). Lenient, as format version 1 promised readers would be:
 * unknown types are skipped, and bytes that do not form a whole field end
 * the list (the frame's checksum already vouches for the bytes). */
static inline void kv__ext_parse(const unsigned char *p, size_t n, uint64_t *expire_at)
{
    *expire_at = 0;
    for (size_t o = 0; n - o >= 2 && p[o + 1] <= n - o - 2; o += 2 + (size_t)p[o + 1])
        if (p[o] == KV__EXT_EXPIRE && p[o + 1] == 8)
            *expire_at = kv__get64(p + o + 2);
}

/* A snapshot entry's create revision and version count (history.h), if
 * its ext has them: true and the two values. */
static inline bool kv__ext_parse_meta(const unsigned char *p, size_t n, uint64_t *create,
                                      uint64_t *version)
{
    for (size_t o = 0; n - o >= 2 && p[o + 1] <= n - o - 2; o += 2 + (size_t)p[o + 1])
        if (p[o] == KV__EXT_META && p[o + 1] == 16) {
            *create = kv__get64(p + o + 2);
            *version = kv__get64(p + o + 10);
            return true;
        }
    return false;
}

/* The checksum of frames and file headers. */
uint32_t kv__crc(const void *p, size_t n);

/* Bytes a frame with a payload of n bytes takes. */
static inline size_t kv__frame_size(size_t n)
{
    return KV__FRAME_HDR + kv__align8(n);
}

/* Masks the payload (n bytes) at dst + KV__FRAME_HDR in place, then fills
 * the header and padding of the frame. */
void kv__frame_seal(unsigned char *dst, size_t n);

/* XORs n bytes with the keystream of a payload of n bytes: masks and
 * unmasks. */
void kv__frame_mask(unsigned char *p, size_t n);

/* What kv__frame_check found at a position. */
enum {
    KV__FRAME_OK = 0,  /* a whole, valid frame: *len is its payload length */
    KV__FRAME_END,     /* an all-zero header, or no bytes left: no more data */
    KV__FRAME_SHORT,   /* a valid header whose payload runs past the data */
    KV__FRAME_BAD      /* a checksum does not match */
};
int kv__frame_check(const unsigned char *p, size_t avail, uint64_t *len);

/* Payload bytes of a change record. */
size_t kv__record_size(const kv__record *r);
/* Writes the change record's payload at dst (kv__record_size bytes). */
void kv__record_encode(const kv__record *r, unsigned char *dst);

/* Decodes a change record's payload. changes is malloc'ed into *changes
 * (pointers into p); free it. false if the payload is malformed (or
 * *changes cannot be allocated: *nomem is then set). */
bool kv__record_decode(const unsigned char *p, size_t n, kv__record *out,
                       kv__change **changes, bool *nomem);

#endif
