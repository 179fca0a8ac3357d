/*
 * test_linearizable.c - the fault tests' linearizability checker
 * (linearizable.c) on hand-made histories: linearizable ones are
 * accepted, the classic non-linearizable ones (a stale read after a
 * completed write, a read of a value never written, two readers seeing
 * two writes in opposite orders, a value back after it was overwritten)
 * rejected; a write with an unknown outcome may apply or not; a large
 * history with heavy overlap made from a real sequential run is accepted.
 */
#include <criterion/criterion.h>
#include <stdlib.h>
#include <string.h>

#include "linearizable.h"

#define W(v, s, e) {.kind = LIN_WRITE, .in = (v), .start = (s), .end = (e)}
#define WU(v, s) {.kind = LIN_WRITE, .outcome = LIN_UNKNOWN, .in = (v), .start = (s)}
#define R(v, s, e) {.kind = LIN_READ, .out = (v), .start = (s), .end = (e)}
#define D(existed, s, e) {.kind = LIN_DELETE, .out = (existed), .start = (s), .end = (e)}
#define CAS(v, exp, ok, s, e)                                                                  \
    {.kind = LIN_CAS, .in = (v), .expect = (exp), .out = (ok), .start = (s), .end = (e)}

static int check(const lin_op *ops, size_t n)
{
    char report[2048];
    int r = lin_check(ops, n, 0, report, sizeof report);
    cr_assert(r == LIN_LINEARIZABLE || r == LIN_VIOLATION, "checker result %d", r);
    if (r == LIN_VIOLATION)
        cr_assert_neq(report[0], 0, "a violation is described");
    return r;
}

#define N(a) (sizeof(a) / sizeof(a)[0])

Test(linearizable, sequential_histories)
{
    lin_op ok[] = {R(0, 0, 1), W(1, 2, 3), R(1, 4, 5), D(1, 6, 7), R(0, 8, 9), D(0, 10, 11),
                   W(2, 12, 13), CAS(3, 2, 1, 14, 15), CAS(4, 2, 0, 16, 17), R(3, 18, 19)};
    cr_assert_eq(check(ok, N(ok)), LIN_LINEARIZABLE);
    cr_assert_eq(check(ok, 0), LIN_LINEARIZABLE, "the empty history");
    lin_op bad_del[] = {D(1, 0, 1)};
    cr_assert_eq(check(bad_del, N(bad_del)), LIN_VIOLATION, "deleted a key never written");
    lin_op bad_cas[] = {W(1, 0, 1), CAS(2, 5, 1, 2, 3)};
    cr_assert_eq(check(bad_cas, N(bad_cas)), LIN_VIOLATION, "a CAS whose expectation failed");
}

Test(linearizable, a_read_concurrent_with_a_write_sees_either_value)
{
    lin_op old[] = {W(1, 0, 10), W(2, 20, 40), R(1, 25, 30)};
    lin_op new[] = {W(1, 0, 10), W(2, 20, 40), R(2, 25, 30)};
    cr_assert_eq(check(old, N(old)), LIN_LINEARIZABLE);
    cr_assert_eq(check(new, N(new)), LIN_LINEARIZABLE);
    /* both reads inside the write, but the first saw the new value: the
     * second must not go back */
    lin_op back[] = {W(1, 0, 10), W(2, 20, 100), R(2, 30, 40), R(1, 50, 60)};
    cr_assert_eq(check(back, N(back)), LIN_VIOLATION);
    /* ops given in any order */
    lin_op shuffled[] = {R(2, 25, 30), W(2, 20, 40), W(1, 0, 10)};
    cr_assert_eq(check(shuffled, N(shuffled)), LIN_LINEARIZABLE);
}

Test(linearizable, a_stale_read_after_a_completed_write_is_rejected)
{
    lin_op h[] = {W(1, 0, 10), W(2, 20, 30), R(1, 40, 50)};
    char report[2048];
    cr_assert_eq(lin_check(h, N(h), 0, report, sizeof report), LIN_VIOLATION);
    cr_assert_not_null(strstr(report, "read -> 1"), "%s", report);
}

Test(linearizable, a_read_of_a_value_never_written_is_rejected)
{
    lin_op h[] = {W(1, 0, 10), R(7, 5, 15)};
    cr_assert_eq(check(h, N(h)), LIN_VIOLATION);
    lin_op early[] = {R(1, 0, 5), W(1, 10, 20)};
    cr_assert_eq(check(early, N(early)), LIN_VIOLATION, "read before the write was called");
}

Test(linearizable, two_readers_seeing_writes_in_opposite_orders_are_rejected)
{
    lin_op h[] = {W(1, 0, 100), W(2, 0, 100), R(1, 10, 20), R(2, 30, 40), /* reader A */
                  R(2, 10, 20), R(1, 30, 40)};                            /* reader B */
    cr_assert_eq(check(h, N(h)), LIN_VIOLATION);
    /* the same readers agreeing on an order are fine */
    lin_op agree[] = {W(1, 0, 100), W(2, 0, 100), R(1, 10, 20), R(2, 30, 40),
                      R(1, 10, 20), R(2, 30, 40)};
    cr_assert_eq(check(agree, N(agree)), LIN_LINEARIZABLE);
}

Test(linearizable, a_write_with_an_unknown_outcome_may_or_may_not_apply)
{
    lin_op applied[] = {W(1, 0, 10), WU(2, 20), R(1, 30, 40), R(2, 50, 60)};
    cr_assert_eq(check(applied, N(applied)), LIN_LINEARIZABLE);
    lin_op never[] = {W(1, 0, 10), WU(2, 20), R(1, 30, 40), R(1, 500, 600)};
    cr_assert_eq(check(never, N(never)), LIN_LINEARIZABLE);
    lin_op late[] = {W(1, 0, 10), WU(2, 20), W(3, 30, 40), R(2, 500, 600)};
    cr_assert_eq(check(late, N(late)), LIN_LINEARIZABLE, "applied long after it was sent");
    /* but at most once, and not before it was sent */
    lin_op twice[] = {W(1, 0, 10), WU(2, 20), R(2, 30, 40), R(1, 50, 60), R(2, 70, 80)};
    cr_assert_eq(check(twice, N(twice)), LIN_VIOLATION);
    lin_op before[] = {W(1, 0, 10), R(2, 11, 15), WU(2, 20)};
    cr_assert_eq(check(before, N(before)), LIN_VIOLATION);
    /* an unknown read tells nothing */
    lin_op uread[] = {W(1, 0, 10), {.kind = LIN_READ, .outcome = LIN_UNKNOWN, .out = 9,
                                    .start = 20}};
    cr_assert_eq(check(uread, N(uread)), LIN_LINEARIZABLE);
}

/* A real sequential run of 300 random operations, each stretched around
 * its moment into an interval overlapping many others: linearizable by
 * construction, and checked fast enough thanks to the cache. */
Test(linearizable, a_large_concurrent_history_is_accepted)
{
    enum { NOPS = 300 };
    static lin_op h[NOPS];
    srand(7);
    uint64_t reg = 0, next = 1;
    for (int i = 0; i < NOPS; i++) {
        int64_t at = (int64_t)i * 10;
        lin_op *o = &h[i];
        memset(o, 0, sizeof *o);
        o->client = i % 8;
        int k = rand() % 10;
        if (k < 4) {
            o->kind = LIN_WRITE;
            o->in = next++;
            reg = o->in;
            if (o->in > 1 && rand() % 8 == 0)
                o->outcome = LIN_UNKNOWN;
        } else if (k < 9) {
            o->kind = LIN_READ;
            o->out = reg;
        } else {
            o->kind = LIN_DELETE;
            o->out = reg != 0;
            reg = 0;
        }
        o->start = at - rand() % 40;
        o->end = at + rand() % 40;
    }
    cr_assert_eq(lin_check(h, NOPS, 0, NULL, 0), LIN_LINEARIZABLE);
    /* one read changed to a value overwritten long before: rejected */
    for (int i = NOPS - 1; i > 0; i--)
        if (h[i].kind == LIN_READ && h[i].out != 1) {
            h[i].out = 1; /* the first write, long overwritten */
            break;
        }
    cr_assert_eq(lin_check(h, NOPS, 0, NULL, 0), LIN_VIOLATION);
}
