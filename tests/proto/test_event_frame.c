/*
 * test_event_frame.c - the codec's watch parts (kvd/proto/event_frame.c
 * and the WATCH / CANCEL requests and responses): round trips, the exact
 * sizes kvd plans frames with, telling event frames from responses, and
 * malformed frames refused.
 */
#include <criterion/criterion.h>
#include <string.h>

#include "kv_proto.h"

static const uint8_t *body(const kv_proto_buf *b, size_t *len)
{
    cr_assert_geq(b->len, KV_PROTO_HEADER_SIZE);
    *len = kv_proto_read_u32(b->data);
    cr_assert_eq(*len + KV_PROTO_HEADER_SIZE, b->len, "one whole frame");
    return b->data + KV_PROTO_HEADER_SIZE;
}

Test(event_frame, watch_and_cancel_requests_round_trip)
{
    kv_proto_request q = {.op = KV_PROTO_WATCH, .id = 9, .key = {"user:", 5}, .has_prefix = 1,
                          .revision = 300, .limit = 50};
    kv_proto_buf b = {0};
    cr_assert_eq(kv_proto_request_encode(&b, &q), KV_OK);
    size_t len;
    const uint8_t *p = body(&b, &len);
    kv_proto_request d;
    cr_assert_eq(kv_proto_request_decode(p, len, NULL, NULL, &d), KV_OK, "%s", d.error);
    cr_expect(d.op == KV_PROTO_WATCH && d.id == 9 && d.has_prefix && d.revision == 300 &&
              d.limit == 50 && d.key.len == 5 && memcmp(d.key.data, "user:", 5) == 0);
    kv_proto_request_free(&d);

    /* an empty key is the whole store with the prefix flag, else refused */
    kv_proto_buf_reset(&b);
    q.key.len = 0;
    cr_assert_eq(kv_proto_request_encode(&b, &q), KV_OK);
    p = body(&b, &len);
    cr_expect_eq(kv_proto_request_decode(p, len, NULL, NULL, &d), KV_OK);
    kv_proto_request_free(&d);
    kv_proto_buf_reset(&b);
    q.has_prefix = 0;
    cr_assert_eq(kv_proto_request_encode(&b, &q), KV_OK);
    p = body(&b, &len);
    cr_expect_eq(kv_proto_request_decode(p, len, NULL, NULL, &d), KV_KEY_EMPTY);
    cr_expect(d.has_id && d.id == 9);
    kv_proto_request_free(&d);

    kv_proto_buf_reset(&b);
    kv_proto_request x = {.op = KV_PROTO_CANCEL, .id = 10, .watch_id = 9};
    cr_assert_eq(kv_proto_request_encode(&b, &x), KV_OK);
    p = body(&b, &len);
    cr_assert_eq(kv_proto_request_decode(p, len, NULL, NULL, &d), KV_OK);
    cr_expect(d.op == KV_PROTO_CANCEL && d.id == 10 && d.watch_id == 9);
    kv_proto_request_free(&d);
    cr_expect_str_eq(kv_proto_op_name(KV_PROTO_WATCH), "WATCH");
    cr_expect_str_eq(kv_proto_op_name(KV_PROTO_CANCEL), "CANCEL");
    kv_proto_buf_free(&b);
}

Test(event_frame, malformed_watch_requests)
{
    /* [23, 1, "k", true, 0] (max_events missing), [23, 1, "k", 1, 0, 0]
     * (prefix not a bool), [24, 1] (no watch id) */
    static const uint8_t short_watch[] = {0x95, 23, 1, 0xa1, 'k', 0xc3, 0};
    static const uint8_t int_prefix[] = {0x96, 23, 1, 0xa1, 'k', 1, 0, 0};
    static const uint8_t bare_cancel[] = {0x92, 24, 1};
    const struct {
        const uint8_t *p;
        size_t n;
    } bad[] = {{short_watch, sizeof short_watch},
               {int_prefix, sizeof int_prefix},
               {bare_cancel, sizeof bare_cancel}};
    for (size_t i = 0; i < 3; i++) {
        kv_proto_request d;
        cr_expect_eq(kv_proto_request_decode(bad[i].p, bad[i].n, NULL, NULL, &d), KV_PROTOCOL,
                     "case %zu", i);
        cr_expect(d.has_id && d.id == 1, "case %zu: answerable", i);
        kv_proto_request_free(&d);
    }
}

Test(event_frame, events_round_trip_with_exact_sizes)
{
    static char big[70000];
    memset(big, 'v', sizeof big);
    kv_event ev[3] = {
        {.revision = 7, .create_revision = 5, .version = 2, .expire_at_ms = 0,
         .value = "one", .vlen = 3, .key = "a", .klen = 1},
        {.revision = 300, .deleted = 1, .key = "bb", .klen = 2},
        {.revision = (uint64_t)1 << 40, .create_revision = 70000, .version = 1,
         .expire_at_ms = 1700000000000ull, .value = big, .vlen = sizeof big, .key = big,
         .klen = 300},
    };
    kv_proto_buf b = {0};
    cr_assert_eq(kv_proto_event_frame(&b, 42, ev, 3, ((uint64_t)1 << 40) + 1), KV_OK);
    size_t len;
    const uint8_t *p = body(&b, &len);
    size_t planned = KV_PROTO_EVENT_FRAME_OVERHEAD;
    for (int i = 0; i < 3; i++)
        planned += kv_proto_event_size(&ev[i]);
    cr_expect_leq(b.len, planned, "the frame is within its planned size");
    /* the smallest envelope is 9 bytes (header, array, three fixints,
     * an array header): only the envelope is an estimate */
    cr_expect_leq(planned - b.len, KV_PROTO_EVENT_FRAME_OVERHEAD - 9);
    cr_expect(kv_proto_is_event_frame(p, len));
    kv_proto_event_frame_t f;
    cr_assert_eq(kv_proto_event_frame_decode(p, len, NULL, &f), KV_OK, "%s", f.error);
    cr_expect(f.id == 42 && f.status == KV_OK && !f.end && f.nevents == 3 &&
              f.next_revision == ((uint64_t)1 << 40) + 1);
    cr_expect(f.events[0].revision == 7 && f.events[0].create_revision == 5 &&
              f.events[0].version == 2 && f.events[0].vlen == 3 &&
              memcmp(f.events[0].value, "one", 3) == 0 && f.events[0].key.len == 1);
    cr_expect(f.events[1].deleted && f.events[1].revision == 300 && f.events[1].value == NULL &&
              f.events[1].key.len == 2 && memcmp(f.events[1].key.data, "bb", 2) == 0);
    cr_expect(f.events[2].vlen == sizeof big && f.events[2].key.len == 300 &&
              f.events[2].expire_at_ms == 1700000000000ull && f.events[2].create_revision == 70000);
    kv_proto_event_frame_free(&f);

    /* one event's size is exactly what it adds */
    for (int i = 0; i < 3; i++) {
        kv_proto_buf one = {0}, none = {0};
        cr_assert_eq(kv_proto_event_frame(&one, 1, &ev[i], 1, 1), KV_OK);
        cr_assert_eq(kv_proto_event_frame(&none, 1, NULL, 0, 1), KV_OK);
        cr_expect_eq(one.len - none.len, kv_proto_event_size(&ev[i]), "event %d", i);
        kv_proto_buf_free(&one);
        kv_proto_buf_free(&none);
    }
    kv_proto_buf_free(&b);
}

Test(event_frame, end_frames_and_responses_told_apart)
{
    kv_proto_buf b = {0};
    cr_assert_eq(kv_proto_event_end(&b, 42, KV_COMPACTED, 1234), KV_OK);
    size_t len;
    const uint8_t *p = body(&b, &len);
    kv_proto_event_frame_t f;
    cr_assert(kv_proto_is_event_frame(p, len));
    cr_assert_eq(kv_proto_event_frame_decode(p, len, NULL, &f), KV_OK);
    cr_expect(f.end && f.status == KV_COMPACTED && f.next_revision == 1234 && f.nevents == 0);
    kv_proto_event_frame_free(&f);

    /* WATCH's own response: 3 elements, the start revision */
    kv_proto_buf_reset(&b);
    cr_assert_eq(kv_proto_resp_version(&b, 42, 17), KV_OK);
    p = body(&b, &len);
    cr_expect(!kv_proto_is_event_frame(p, len));
    kv_proto_response r;
    cr_assert_eq(kv_proto_response_decode(p, len, KV_PROTO_WATCH, NULL, &r), KV_OK);
    cr_expect(r.id == 42 && r.version == 17);
    kv_proto_response_free(&r);
    kv_proto_buf_reset(&b);
    cr_assert_eq(kv_proto_resp_status(&b, 43, KV_OK, NULL), KV_OK);
    p = body(&b, &len);
    cr_assert_eq(kv_proto_response_decode(p, len, KV_PROTO_CANCEL, NULL, &r), KV_OK);
    kv_proto_response_free(&r);
    kv_proto_buf_free(&b);
}

Test(event_frame, malformed_event_frames)
{
    /* wrong count, status out of range, event of 5, value of a wrong
     * type, next_revision missing, trailing bytes */
    static const uint8_t three[] = {0x93, 1, 0, 0xc0};
    static const uint8_t status[] = {0x94, 1, 0xcd, 0x01, 0x00, 0xc0, 1};
    static const uint8_t five[] = {0x94, 1, 0, 0x91, 0x95, 1, 0xa1, 'k', 0xc0, 0, 0, 1};
    static const uint8_t valint[] = {0x94, 1, 0, 0x91, 0x96, 1, 0xa1, 'k', 7, 0, 0, 0, 1};
    static const uint8_t norev[] = {0x94, 1, 0, 0xc0, 0xc0};
    static const uint8_t trailing[] = {0x94, 1, 0, 0xc0, 1, 0};
    const struct {
        const uint8_t *p;
        size_t n;
    } bad[] = {{three, sizeof three},   {status, sizeof status}, {five, sizeof five},
               {valint, sizeof valint}, {norev, sizeof norev},   {trailing, sizeof trailing}};
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        kv_proto_event_frame_t f;
        cr_expect_eq(kv_proto_event_frame_decode(bad[i].p, bad[i].n, NULL, &f), KV_PROTOCOL,
                     "case %zu", i);
        cr_expect_not_null(f.error, "case %zu says why", i);
        kv_proto_event_frame_free(&f);
    }
    cr_expect(!kv_proto_is_event_frame(three, sizeof three));
}
