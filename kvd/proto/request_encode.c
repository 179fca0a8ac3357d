/*
 * request_encode.c - client side: a kv_proto_request into a request frame
 * [op, id, args...] (docs/protocol.md section 4), with msgpack-c's packer.
 *
 * Arguments are checked before anything is written (kinds, NULL arrays),
 * so an encode fails either up front or only for lack of memory; in both
 * cases the buffer is left as it was.
 */
#include "proto_internal.h"

/* Rough body size, to reserve once. Overestimates are fine. */
static size_t size_hint(const kv_proto_request *q)
{
    size_t s = 32 + q->key.len + q->value.len + q->payload.len +
               q->secret.len + q->client_name.len;
    for (size_t i = 0; i < q->nkeys; i++)
        s += q->keys[i].len + 5;
    for (size_t i = 0; i < q->npairs; i++)
        s += q->pairs[i].klen + q->pairs[i].vlen + 10;
    for (size_t i = 0; i < q->ncmps; i++)
        s += q->cmps[i].klen + q->cmps[i].vlen + 20;
    for (size_t i = 0; i < q->nthen; i++)
        s += q->then_ops[i].klen + q->then_ops[i].vlen + 12;
    for (size_t i = 0; i < q->nelse; i++)
        s += q->else_ops[i].klen + q->else_ops[i].vlen + 12;
    return s;
}

static int valid_ops(const kv_op *ops, size_t n)
{
    if (n != 0 && ops == NULL)
        return 0;
    for (size_t i = 0; i < n; i++)
        if ((unsigned)ops[i].kind > KV_OP_DELETE)
            return 0;
    return 1;
}

static int check(const kv_proto_request *q)
{
    switch (q->op) {
    case KV_PROTO_MGET:
    case KV_PROTO_DEL:
    case KV_PROTO_MGET_AT:
        return q->nkeys == 0 || q->keys != NULL ? KV_OK : KV_INVALID_ARGUMENT;
    case KV_PROTO_ROLLBACK:
        return q->has_prefix || (q->nkeys != 0 && q->keys != NULL) ? KV_OK
                                                                  : KV_INVALID_ARGUMENT;
    case KV_PROTO_MSET:
        if (q->has_expiry && ((unsigned)q->expiry_mode > KV_PROTO_EXPIRY_AT ||
                              q->expiry_ms == 0 || q->expiry_ms > KV_PROTO_EXPIRY_MAX))
            return KV_INVALID_ARGUMENT;
        return q->npairs == 0 || q->pairs != NULL ? KV_OK : KV_INVALID_ARGUMENT;
    case KV_PROTO_TXN:
        if (q->ncmps != 0 && q->cmps == NULL)
            return KV_INVALID_ARGUMENT;
        for (size_t i = 0; i < q->ncmps; i++)
            if ((unsigned)q->cmps[i].kind > KV_CMP_VALUE_EQ)
                return KV_INVALID_ARGUMENT;
        if (!valid_ops(q->then_ops, q->nthen) ||
            !valid_ops(q->else_ops, q->nelse))
            return KV_INVALID_ARGUMENT;
        return KV_OK;
    case KV_PROTO_SET:
    case KV_PROTO_EXPIRE:
        if ((q->has_expiry || q->op == KV_PROTO_EXPIRE) &&
            ((unsigned)q->expiry_mode > KV_PROTO_EXPIRY_AT || q->expiry_ms == 0 ||
             q->expiry_ms > KV_PROTO_EXPIRY_MAX))
            return KV_INVALID_ARGUMENT;
        if (q->expire_flags & ~KV_PROTO_EXPIRE_ALL)
            return KV_INVALID_ARGUMENT;
        return KV_OK;
    default:
        return q->op >= 0 && q->op < KV_PROTO_OP_COUNT ? KV_OK
                                                        : KV_UNSUPPORTED;
    }
}

/* An expiry [mode, ms] (version 4). */
static int pack_expiry(msgpack_packer *pk, int mode, uint64_t ms)
{
    int e = msgpack_pack_array(pk, 2);
    e |= msgpack_pack_unsigned_int(pk, (unsigned)mode);
    e |= msgpack_pack_uint64(pk, ms);
    return e;
}

static int pack_ops(msgpack_packer *pk, const kv_op *ops, size_t n, const unsigned char *in)
{
    int e = msgpack_pack_array(pk, n);
    for (size_t i = 0; i < n && e == 0; i++) {
        const kv_op *o = &ops[i];
        int exp = o->kind == KV_OP_SET && o->expire_at_ms != 0;
        e |= msgpack_pack_array(pk, o->kind == KV_OP_SET ? 3 + exp : 2);
        e |= msgpack_pack_unsigned_int(pk, (unsigned)o->kind);
        e |= kv__pack_bin(pk, o->key, o->klen);
        if (o->kind == KV_OP_SET)
            e |= kv__pack_bin(pk, o->value, o->vlen);
        if (exp)
            e |= pack_expiry(pk, in && in[i] ? KV_PROTO_EXPIRY_IN : KV_PROTO_EXPIRY_AT,
                             o->expire_at_ms);
    }
    return e;
}

static int pack_args(msgpack_packer *pk, const kv_proto_request *q)
{
    int e = 0;
    switch (q->op) {
    case KV_PROTO_HELLO:
        e |= msgpack_pack_uint64(pk, q->min_version);
        e |= msgpack_pack_uint64(pk, q->max_version);
        if (q->client_name.len)
            e |= kv__pack_bin(pk, q->client_name.data, q->client_name.len);
        break;
    case KV_PROTO_PING:
        if (q->has_payload)
            e |= kv__pack_bin(pk, q->payload.data, q->payload.len);
        break;
    case KV_PROTO_AUTH:
        e |= kv__pack_bin(pk, q->secret.data, q->secret.len);
        break;
    case KV_PROTO_GET:
        e |= kv__pack_bin(pk, q->key.data, q->key.len);
        break;
    case KV_PROTO_MGET:
    case KV_PROTO_DEL:
        e |= msgpack_pack_array(pk, q->nkeys);
        for (size_t i = 0; i < q->nkeys && e == 0; i++)
            e |= kv__pack_bin(pk, q->keys[i].data, q->keys[i].len);
        break;
    case KV_PROTO_SET:
        e |= kv__pack_bin(pk, q->key.data, q->key.len);
        e |= kv__pack_bin(pk, q->value.data, q->value.len);
        if (q->has_expected)
            e |= msgpack_pack_uint64(pk, q->expected);
        else if (q->has_expiry)
            e |= msgpack_pack_nil(pk);
        if (q->has_expiry)
            e |= pack_expiry(pk, q->expiry_mode, q->expiry_ms);
        break;
    case KV_PROTO_TTL:
    case KV_PROTO_PERSIST:
        e |= kv__pack_bin(pk, q->key.data, q->key.len);
        break;
    case KV_PROTO_EXPIRE:
        e |= kv__pack_bin(pk, q->key.data, q->key.len);
        e |= pack_expiry(pk, q->expiry_mode, q->expiry_ms);
        if (q->expire_flags)
            e |= msgpack_pack_unsigned_int(pk, q->expire_flags);
        break;
    case KV_PROTO_MSET:
        if (q->npairs > SIZE_MAX / 2 || 2 * q->npairs > UINT32_MAX)
            return -1;
        e |= msgpack_pack_array(pk, 2 * q->npairs);
        for (size_t i = 0; i < q->npairs && e == 0; i++) {
            e |= kv__pack_bin(pk, q->pairs[i].key, q->pairs[i].klen);
            e |= kv__pack_bin(pk, q->pairs[i].val, q->pairs[i].vlen);
        }
        if (q->has_expiry)
            e |= pack_expiry(pk, q->expiry_mode, q->expiry_ms);
        break;
    case KV_PROTO_TXN:
        e |= msgpack_pack_array(pk, q->ncmps);
        for (size_t i = 0; i < q->ncmps && e == 0; i++) {
            const kv_compare *c = &q->cmps[i];
            int three = c->kind == KV_CMP_VERSION_EQ ||
                        c->kind == KV_CMP_VALUE_EQ;
            e |= msgpack_pack_array(pk, three ? 3 : 2);
            e |= msgpack_pack_unsigned_int(pk, (unsigned)c->kind);
            e |= kv__pack_bin(pk, c->key, c->klen);
            if (c->kind == KV_CMP_VERSION_EQ)
                e |= msgpack_pack_uint64(pk, c->version);
            else if (c->kind == KV_CMP_VALUE_EQ)
                e |= kv__pack_bin(pk, c->value, c->vlen);
        }
        e |= pack_ops(pk, q->then_ops, q->nthen, q->then_in);
        e |= pack_ops(pk, q->else_ops, q->nelse, q->else_in);
        break;
    case KV_PROTO_SCAN:
        e |= kv__pack_bin(pk, q->key.data, q->key.len);
        e |= msgpack_pack_uint64(pk, q->cursor);
        e |= msgpack_pack_uint64(pk, q->limit);
        if (q->keys_only) /* version 2 only */
            e |= msgpack_pack_true(pk);
        break;
    case KV_PROTO_SNAPSHOT_READ:
        e |= msgpack_pack_uint64(pk, q->revision);
        e |= msgpack_pack_uint64(pk, q->offset);
        e |= msgpack_pack_uint64(pk, q->limit);
        break;
    case KV_PROTO_CLUSTER:
        e |= kv__pack_bin(pk, q->key.data, q->key.len);
        if (q->revision || q->value.data)
            e |= msgpack_pack_uint64(pk, q->revision);
        if (q->value.data)
            e |= kv__pack_bin(pk, q->value.data, q->value.len);
        break;
    case KV_PROTO_GET_AT:
        e |= kv__pack_bin(pk, q->key.data, q->key.len);
        e |= msgpack_pack_uint64(pk, q->revision);
        break;
    case KV_PROTO_MGET_AT:
        e |= msgpack_pack_array(pk, q->nkeys);
        for (size_t i = 0; i < q->nkeys && e == 0; i++)
            e |= kv__pack_bin(pk, q->keys[i].data, q->keys[i].len);
        e |= msgpack_pack_uint64(pk, q->revision);
        break;
    case KV_PROTO_SCAN_AT:
        e |= kv__pack_bin(pk, q->key.data, q->key.len);
        e |= msgpack_pack_uint64(pk, q->revision);
        e |= msgpack_pack_uint64(pk, q->cursor);
        e |= msgpack_pack_uint64(pk, q->limit);
        if (q->keys_only)
            e |= msgpack_pack_true(pk);
        break;
    case KV_PROTO_HISTORY:
        e |= kv__pack_bin(pk, q->key.data, q->key.len);
        e |= msgpack_pack_uint64(pk, q->min_revision);
        e |= msgpack_pack_uint64(pk, q->revision);
        e |= msgpack_pack_uint64(pk, q->limit);
        break;
    case KV_PROTO_ROLLBACK:
        if (q->has_prefix) {
            e |= kv__pack_bin(pk, q->key.data, q->key.len);
        } else {
            e |= msgpack_pack_array(pk, q->nkeys);
            for (size_t i = 0; i < q->nkeys && e == 0; i++)
                e |= kv__pack_bin(pk, q->keys[i].data, q->keys[i].len);
        }
        e |= msgpack_pack_uint64(pk, q->revision);
        e |= msgpack_pack_uint64(pk, q->unchanged_since);
        break;
    case KV_PROTO_COMPACT:
        e |= msgpack_pack_uint64(pk, q->revision);
        break;
    case KV_PROTO_WATCH:
        e |= kv__pack_bin(pk, q->key.data, q->key.len);
        e |= q->has_prefix ? msgpack_pack_true(pk) : msgpack_pack_false(pk);
        e |= msgpack_pack_uint64(pk, q->revision);
        e |= msgpack_pack_uint64(pk, q->limit);
        break;
    case KV_PROTO_CANCEL:
        e |= msgpack_pack_uint64(pk, q->watch_id);
        break;
    case KV_PROTO_SESSION:
        e |= msgpack_pack_uint64(pk, q->client_id);
        break;
    case KV_PROTO_CONSISTENCY:
        e |= msgpack_pack_uint64(pk, q->consistency);
        break;
    default: /* METRICS, SNAPSHOT */
        break;
    }
    return e;
}

static size_t nargs(const kv_proto_request *q)
{
    switch (q->op) {
    case KV_PROTO_HELLO:
        return q->client_name.len ? 3 : 2;
    case KV_PROTO_PING:
        return q->has_payload ? 1 : 0;
    case KV_PROTO_SET:
        return q->has_expiry ? 4 : q->has_expected ? 3 : 2;
    case KV_PROTO_MSET:
        return q->has_expiry ? 2 : 1;
    case KV_PROTO_EXPIRE:
        return q->expire_flags ? 3 : 2;
    case KV_PROTO_TXN:
        return 3;
    case KV_PROTO_SCAN:
        return q->keys_only ? 4 : 3;
    case KV_PROTO_SNAPSHOT_READ:
        return 3;
    case KV_PROTO_CLUSTER:
        return q->value.data ? 3 : q->revision ? 2 : 1;
    case KV_PROTO_GET_AT:
    case KV_PROTO_MGET_AT:
        return 2;
    case KV_PROTO_SCAN_AT:
        return q->keys_only ? 5 : 4;
    case KV_PROTO_HISTORY:
    case KV_PROTO_WATCH:
        return 4;
    case KV_PROTO_ROLLBACK:
        return 3;
    case KV_PROTO_METRICS:
    case KV_PROTO_SNAPSHOT:
        return 0;
    default:
        return 1;
    }
}

int kv_proto_request_encode(kv_proto_buf *b, const kv_proto_request *q)
{
    int rc = check(q);
    if (rc != KV_OK)
        return rc;
    size_t start;
    if ((rc = kv__frame_begin(b, size_hint(q), &start)) != KV_OK)
        return rc;
    msgpack_packer pk;
    kv__packer_init(&pk, b);
    int e = msgpack_pack_array(&pk, 2 + nargs(q));
    e |= msgpack_pack_unsigned_int(&pk, (unsigned)q->op);
    e |= msgpack_pack_uint64(&pk, q->id);
    if (e == 0)
        e = pack_args(&pk, q);
    return kv__frame_end(b, start, e ? KV_NO_MEMORY : KV_OK);
}
