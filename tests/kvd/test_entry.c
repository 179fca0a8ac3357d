/*
 * test_entry.c - the Raft entry format of a write command
 * (kvd/src/repl/entry.c): a command and the leader's clock reading make
 * the round trip, the revision of the history commands (ROLLBACK,
 * COMPACT) and a write's request id (client, seq) too; entries of the
 * older formats (4: no request id, 3: no revision either, 2: no clock
 * either, 1: no expiry either), which a node's log may still hold, decode
 * as they did; malformed entries are refused. A batch (several writes in
 * one entry) gives back each write as it was, in order; malformed ones
 * are refused.
 */
#include <criterion/criterion.h>
#include <raft.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "repl/entry.h"

#define CLOCK 1700000000123ull

static const kv_key keys[] = {{"a", 1}, {"bb", 2}};

static kvd_cmd sample(void)
{
    return (kvd_cmd){.kind = KVD_CMD_SET, .has_key = 1, .a = 7, .exp_mode = KVD_EXP_AT,
                     .exp = CLOCK + 5000, .key = {"key", 3}, .value = {"value", 5},
                     .keys = keys, .nkeys = 2};
}

static void expect_sample(const kvd_cmd *c, int with_expiry)
{
    cr_assert_eq(c->kind, KVD_CMD_SET);
    cr_assert_eq(c->has_key, 1);
    cr_assert_eq(c->a, 7);
    cr_assert_eq(c->exp_mode, with_expiry ? KVD_EXP_AT : 0);
    cr_assert_eq(c->exp, with_expiry ? CLOCK + 5000 : 0);
    cr_assert_eq(c->key.len, 3);
    cr_assert(memcmp(c->key.data, "key", 3) == 0);
    cr_assert_eq(c->value.len, 5);
    cr_assert(memcmp(c->value.data, "value", 5) == 0);
    cr_assert_eq(c->nkeys, 2);
    cr_assert_eq(c->keys[1].len, 2);
    cr_assert(memcmp(c->keys[1].data, "bb", 2) == 0);
}

Test(entry, a_command_and_the_clock_make_the_round_trip)
{
    kvd_cmd cmd = sample();
    size_t len;
    unsigned char *p = kvd_entry_encode(&cmd, 0, 0, &len);
    cr_assert_not_null(p);
    cr_assert_eq(len % 8, 0, "Raft's storage wants multiples of 8 bytes");
    kvd_entry e;
    cr_assert_eq(kvd_entry_decode(p, len, &e), KV_OK);
    cr_assert_eq(e.clock_ms, 0, "not stamped yet");
    cr_assert(e.client == 0 && e.seq == 0, "no request id");
    expect_sample(&e.cmd, 1);
    kvd_entry_free(&e);
    kvd_entry_stamp(p, CLOCK);
    cr_assert_eq(kvd_entry_decode(p, len, &e), KV_OK);
    cr_assert_eq(e.clock_ms, CLOCK);
    expect_sample(&e.cmd, 1);
    kvd_entry_free(&e);
    raft_free(p);
}

Test(entry, a_history_command_carries_its_revision)
{
    kvd_cmd cmd = {.kind = KVD_CMD_ROLLBACK, .flags = KVD_ROLLBACK_PREFIX, .rev = 41,
                   .has_expected = 1, .expected = 40, .key = {"user:", 5}};
    size_t len;
    unsigned char *p = kvd_entry_encode(&cmd, 0, 0, &len);
    cr_assert_not_null(p);
    kvd_entry e;
    cr_assert_eq(kvd_entry_decode(p, len, &e), KV_OK);
    cr_assert_eq(e.cmd.kind, KVD_CMD_ROLLBACK);
    cr_assert_eq(e.cmd.flags, KVD_ROLLBACK_PREFIX);
    cr_assert_eq(e.cmd.rev, 41);
    cr_assert_eq(e.cmd.expected, 40);
    cr_assert_eq(e.cmd.key.len, 5);
    kvd_entry_free(&e);
    raft_free(p);
    cmd = (kvd_cmd){.kind = KVD_CMD_COMPACT, .rev = 1234567890123ull};
    p = kvd_entry_encode(&cmd, 0, 0, &len);
    cr_assert_not_null(p);
    cr_assert_eq(kvd_entry_decode(p, len, &e), KV_OK);
    cr_assert_eq(e.cmd.kind, KVD_CMD_COMPACT);
    cr_assert_eq(e.cmd.rev, 1234567890123ull);
    kvd_entry_free(&e);
    raft_free(p);
}

Test(entry, a_write_carries_its_request_id)
{
    kvd_cmd cmd = sample();
    size_t len;
    unsigned char *p = kvd_entry_encode(&cmd, 0xfeedfacecafebeefull, 42, &len);
    cr_assert_not_null(p);
    kvd_entry_stamp(p, CLOCK);
    kvd_entry e;
    cr_assert_eq(kvd_entry_decode(p, len, &e), KV_OK);
    cr_assert_eq(e.client, 0xfeedfacecafebeefull);
    cr_assert_eq(e.seq, 42);
    cr_assert_eq(e.clock_ms, CLOCK);
    expect_sample(&e.cmd, 1);
    kvd_entry_free(&e);
    raft_free(p);
}

/* An entry of format 5 rewritten as format 4 (without the request id
 * after the revision), 3 (without the revision either), 2 (without the
 * clock after the length either) or 1 (without exp_mode and exp either),
 * padded as Raft stores it. */
static size_t older_format(const unsigned char *p, int format, unsigned char *out)
{
    size_t total = (size_t)p[1] | (size_t)p[2] << 8 | (size_t)p[3] << 16 | (size_t)p[4] << 24;
    size_t n = 0;
    out[n++] = (unsigned char)format;
    n += 4; /* the length, below */
    if (format >= 3) { /* the clock */
        memcpy(out + n, p + 5, 8);
        n += 8;
    }
    size_t fixed_end = 13 + 59; /* the clock, then kind .. f */
    memcpy(out + n, p + 13, fixed_end - 13);
    n += fixed_end - 13;
    if (format >= 2) { /* exp_mode, exp */
        memcpy(out + n, p + fixed_end, 9);
        n += 9;
    }
    if (format == 4) { /* the revision */
        memcpy(out + n, p + fixed_end + 9, 8);
        n += 8;
    }
    size_t rest = fixed_end + 9 + 8 + 16; /* after the request id */
    memcpy(out + n, p + rest, total - rest);
    n += total - rest;
    for (int i = 0; i < 4; i++)
        out[1 + i] = (unsigned char)(n >> (8 * i));
    size_t padded = (n + 7) & ~(size_t)7;
    memset(out + n, 0, padded - n);
    return padded;
}

Test(entry, entries_of_formats_4_3_2_and_1_still_decode)
{
    kvd_cmd cmd = sample();
    size_t len;
    unsigned char *p = kvd_entry_encode(&cmd, 77, 78, &len);
    cr_assert_not_null(p);
    kvd_entry_stamp(p, CLOCK);
    unsigned char old[512];
    cr_assert_lt(len, sizeof old);
    kvd_entry e;
    size_t n = older_format(p, 4, old);
    cr_assert_eq(n, len - 16, "format 4 is the request id shorter");
    cr_assert_eq(kvd_entry_decode(old, n, &e), KV_OK);
    cr_assert_eq(e.clock_ms, CLOCK);
    cr_assert(e.client == 0 && e.seq == 0);
    expect_sample(&e.cmd, 1);
    kvd_entry_free(&e);
    cmd = (kvd_cmd){.kind = KVD_CMD_COMPACT, .rev = 9};
    size_t qlen;
    unsigned char *q = kvd_entry_encode(&cmd, 0, 0, &qlen);
    n = older_format(q, 4, old);
    cr_assert_eq(kvd_entry_decode(old, n, &e), KV_OK, "format 4 carries the revision");
    cr_assert_eq(e.cmd.rev, 9);
    kvd_entry_free(&e);
    raft_free(q);
    cmd = sample();
    n = older_format(p, 3, old);
    cr_assert_eq(n, len - 24, "format 3 is the revision shorter still");
    cr_assert_eq(kvd_entry_decode(old, n, &e), KV_OK);
    cr_assert_eq(e.clock_ms, CLOCK);
    cr_assert_eq(e.cmd.rev, 0);
    expect_sample(&e.cmd, 1);
    kvd_entry_free(&e);
    n = older_format(p, 2, old);
    cr_assert_eq(kvd_entry_decode(old, n, &e), KV_OK);
    cr_assert_eq(e.clock_ms, 0);
    expect_sample(&e.cmd, 1);
    kvd_entry_free(&e);
    n = older_format(p, 1, old);
    cr_assert_eq(kvd_entry_decode(old, n, &e), KV_OK);
    cr_assert_eq(e.clock_ms, 0);
    expect_sample(&e.cmd, 0);
    kvd_entry_free(&e);
    raft_free(p);
    /* no format before 4 carries a history command */
    cmd = (kvd_cmd){.kind = KVD_CMD_COMPACT, .rev = 9};
    p = kvd_entry_encode(&cmd, 0, 0, &len);
    cr_assert_not_null(p);
    n = older_format(p, 3, old);
    cr_assert_eq(kvd_entry_decode(old, n, &e), KV_CORRUPT);
    raft_free(p);
}

Test(entry, malformed_entries_are_refused)
{
    kvd_cmd cmd = sample();
    size_t len;
    unsigned char *p = kvd_entry_encode(&cmd, 0, 0, &len);
    cr_assert_not_null(p);
    kvd_entry e;
    unsigned char bad[512];
    memcpy(bad, p, len);
    bad[0] = 6; /* a format this node does not know */
    cr_assert_eq(kvd_entry_decode(bad, len, &e), KV_CORRUPT);
    memcpy(bad, p, len);
    cr_assert_eq(kvd_entry_decode(bad, 12, &e), KV_CORRUPT); /* cut short */
    bad[13] = 0xff; /* no such command kind */
    cr_assert_eq(kvd_entry_decode(bad, len, &e), KV_CORRUPT);
    raft_free(p);
}

Test(entry, an_exec_carries_its_queue_and_watched_keys)
{
    kvd_cmd set = sample();
    kvd_cmd incr = {.kind = KVD_CMD_INCRBY, .key = {"n", 1}, .i = -5};
    const kvd_cmd *queue[] = {&set, &incr};
    kvd_watched w[] = {{"a", 1, 12}, {"bb", 2, 0}};
    size_t len;
    unsigned char *p = kvd_entry_encode_exec(queue, 2, w, 2, 99, 7, &len);
    cr_assert_not_null(p);
    cr_assert_eq(len % 8, 0);
    kvd_entry e;
    cr_assert_eq(kvd_entry_decode(p, len, &e), KV_OK);
    cr_assert_eq(e.cmd.kind, KVD_CMD_EXEC);
    cr_assert(e.client == 99 && e.seq == 7, "the EXEC's request id");
    kvd_exec_batch b;
    cr_assert_eq(kvd_entry_decode_exec(&e, &b), KV_OK);
    cr_assert_eq(b.n, 2);
    expect_sample(b.queue[0], 1);
    cr_assert_eq(b.queue[1]->kind, KVD_CMD_INCRBY);
    cr_assert_eq(b.queue[1]->i, -5);
    cr_assert_eq(b.nwatched, 2);
    cr_assert_eq(b.watched[0].version, 12);
    cr_assert(b.watched[1].len == 2 && memcmp(b.watched[1].key, "bb", 2) == 0);
    kvd_entry_free_exec(&b);
    /* an empty queue, no watches */
    unsigned char *q = kvd_entry_encode_exec(NULL, 0, NULL, 0, 0, 0, &len);
    kvd_entry e2;
    cr_assert_eq(kvd_entry_decode(q, len, &e2), KV_OK);
    cr_assert_eq(kvd_entry_decode_exec(&e2, &b), KV_OK);
    cr_assert(b.n == 0 && b.nwatched == 0);
    kvd_entry_free_exec(&b);
    kvd_entry_free(&e2);
    raft_free(q);
    /* a queue cut short is refused */
    kvd_entry cut = e;
    cut.cmd.value.len -= 3;
    cr_assert_eq(kvd_entry_decode_exec(&cut, &b), KV_CORRUPT);
    kvd_entry_free(&e);
    raft_free(p);
}

Test(entry, a_batch_carries_its_writes_in_order)
{
    kvd_cmd cmd = sample();
    void *entries[3];
    size_t lens[3];
    for (int i = 0; i < 3; i++) {
        entries[i] = kvd_entry_encode(&cmd, 9, 100 + (uint64_t)i, &lens[i]);
        cr_assert_not_null(entries[i]);
        kvd_entry_stamp(entries[i], CLOCK + (uint64_t)i);
        cr_assert(!kvd_entry_is_batch(entries[i], lens[i]), "a write is not a batch");
    }
    size_t len;
    unsigned char *b = kvd_entry_batch(entries, lens, 3, &len);
    cr_assert_not_null(b);
    cr_assert_eq(len % 8, 0, "Raft's storage wants multiples of 8 bytes");
    cr_assert(kvd_entry_is_batch(b, len));
    kvd_batch_iter it;
    size_t n = 0;
    cr_assert_eq(kvd_entry_batch_open(b, len, &it, &n), KV_OK);
    cr_assert_eq(n, 3);
    for (int i = 0; i < 3; i++) {
        const void *sub;
        size_t sublen;
        cr_assert_eq(kvd_entry_batch_next(&it, &sub, &sublen), KV_OK);
        cr_assert_eq(sublen, lens[i]);
        kvd_entry e;
        cr_assert_eq(kvd_entry_decode(sub, sublen, &e), KV_OK);
        cr_assert_eq(e.clock_ms, CLOCK + (uint64_t)i, "each write keeps its own clock");
        cr_assert(e.client == 9 && e.seq == 100 + (uint64_t)i, "and its own request id");
        expect_sample(&e.cmd, 1);
        kvd_entry_free(&e);
    }
    const void *sub;
    size_t sublen;
    cr_assert_eq(kvd_entry_batch_next(&it, &sub, &sublen), KV_NOT_FOUND, "three, no more");
    raft_free(b);
    for (int i = 0; i < 3; i++)
        raft_free(entries[i]);
}

Test(entry, malformed_batches_are_refused)
{
    kvd_cmd cmd = sample();
    size_t l1;
    void *one = kvd_entry_encode(&cmd, 0, 0, &l1);
    void *entries[2] = {one, one};
    size_t lens[2] = {l1, l1};
    size_t len;
    unsigned char *b = kvd_entry_batch(entries, lens, 2, &len);
    cr_assert_not_null(b);
    unsigned char *bad = malloc(len);
    kvd_batch_iter it;
    size_t n;
    const void *sub;
    size_t sublen;
    /* cut short: the length says more than there is */
    cr_assert_eq(kvd_entry_batch_open(b, len - 8, &it, &n), KV_CORRUPT);
    cr_assert_eq(kvd_entry_batch_open(b, 10, &it, &n), KV_CORRUPT);
    /* a count the bytes cannot hold */
    memcpy(bad, b, len);
    bad[13] = 0xff;
    cr_assert_eq(kvd_entry_batch_open(bad, len, &it, &n), KV_CORRUPT);
    /* a write's length past the batch's end */
    memcpy(bad, b, len);
    bad[17 + 4 + l1 + 2] = 0x7f; /* the second write's length */
    cr_assert_eq(kvd_entry_batch_open(bad, len, &it, &n), KV_OK);
    cr_assert_eq(kvd_entry_batch_next(&it, &sub, &sublen), KV_OK);
    cr_assert_eq(kvd_entry_batch_next(&it, &sub, &sublen), KV_CORRUPT);
    /* not a batch at all */
    cr_assert_eq(kvd_entry_batch_open(one, l1, &it, &n), KV_CORRUPT);
    /* a batch is no write entry */
    kvd_entry e;
    cr_assert_eq(kvd_entry_decode(b, len, &e), KV_CORRUPT);
    free(bad);
    raft_free(b);
    raft_free(one);
}
