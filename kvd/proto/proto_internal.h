/*
 * proto_internal.h - private helpers of the kvproto codec (not installed).
 *
 * Reading: kv__rd, a bounds-checked MessagePack pull reader. We do not use
 * msgpack-c's unpacker on untrusted frames: it builds a whole object tree
 * and allocates `count * sizeof(msgpack_object)` for an array or map header
 * before checking that the input holds that many elements, so a 5-byte
 * frame (dd ff ff ff ff) asks for ~100 GB. kv__rd instead checks every
 * count against the bytes left, reads straight into the typed structs, and
 * points byte strings into the frame (zero-copy).
 *
 * Writing: msgpack-c's packer, with a write callback that appends to a
 * kv_proto_buf; kv__frame_begin/_end add and patch the length prefix.
 */
#ifndef KV_PROTO_INTERNAL_H
#define KV_PROTO_INTERNAL_H

#include <msgpack.h>

#include "kv_proto.h"

/* ---- reader ---------------------------------------------------------- */

typedef struct kv__rd {
    const uint8_t *p;   /* next byte */
    const uint8_t *end; /* one past the last byte */
} kv__rd;

/* Every reader returns 0 and advances on success; on a type mismatch or a
 * truncated value it returns -1 and does not move. */
int kv__rd_array(kv__rd *r, size_t *n); /* checks n <= bytes left     */
int kv__rd_map(kv__rd *r, size_t *n);   /* checks 2n <= bytes left    */
int kv__rd_uint(kv__rd *r, uint64_t *v);
int kv__rd_bool(kv__rd *r, int *v);
/* Any int or float as a double (metrics). */
int kv__rd_number(kv__rd *r, int *is_uint, uint64_t *u, double *d);
/* str or bin, pointing into the input. */
int kv__rd_bytes(kv__rd *r, kv_key *out);
/* 1 (and consumed) if the next value is nil, 0 if it is something else,
 * -1 at the end of input. */
int kv__rd_nil(kv__rd *r);
/* 1 if the next value is a str (not consumed), else 0. */
int kv__rd_is_str(const kv__rd *r);
/* Skips one value of any type, nesting at most max_depth levels. */
int kv__rd_skip(kv__rd *r, int max_depth);
/* Skips one value of any type and any nesting depth, without recursion
 * (to find what follows a value that has the wrong shape anyway). */
int kv__rd_skip_any(kv__rd *r);

/* ---- decoder memory --------------------------------------------------- */

/* Arrays of a decoded struct: from the caller's arena, or from a private
 * arena created on first use and stored in *owned. */
typedef struct kv__alloc {
    kv_proto_arena *arena;
    void **owned;
} kv__alloc;

/* n * size bytes (n may be 0: returns a valid pointer), NULL on overflow
 * or out of memory. */
void *kv__alloc_array(kv__alloc *a, size_t n, size_t size);
/* Frees a private arena stored by kv__alloc_array. */
void kv__alloc_release(void **owned);

/* ---- writer ----------------------------------------------------------- */

/* A packer appending to b. */
void kv__packer_init(msgpack_packer *pk, kv_proto_buf *b);

/* Starts a frame: reserves room for the header plus `hint` body bytes
 * (a guess; the buffer grows as needed) and returns the frame's offset. */
int kv__frame_begin(kv_proto_buf *b, size_t hint, size_t *start);
/* Patches the length prefix of the frame at start. On rc != KV_OK, or a
 * body over 4 GiB, drops the frame (b->len = start) and returns the error. */
int kv__frame_end(kv_proto_buf *b, size_t start, int rc);

/* Packs bytes as bin (values and keys). 0 or -1 like msgpack_pack_*. */
int kv__pack_bin(msgpack_packer *pk, const void *p, size_t n);
/* Packs a C string as str (NULL as ""). */
int kv__pack_cstr(msgpack_packer *pk, const char *s);

#endif /* KV_PROTO_INTERNAL_H */
