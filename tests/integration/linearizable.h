/*
 * linearizable.h - a linearizability checker for the history of one
 * register (one key of a key-value store), for the fault tests.
 *
 * A test records every client operation on a key with the time it was
 * called and the time it returned (CLOCK_MONOTONIC) and its outcome, and
 * asks whether some total order of the operations (1) respects real time:
 * an operation that returned before another was called comes first, and
 * (2) is a legal sequential history of a register: a read returns the
 * value of the last write before it, or "absent" if there was none or a
 * delete came after it.
 *
 * The search is Wing & Gong's (1993): take any operation that is minimal
 * in the remaining history (called before every remaining operation
 * returned), apply it to the model, recurse, backtrack when stuck; with
 * Lowe's memoisation (2017), as in Porcupine: a (set of operations already
 * placed, register state) pair seen once is never explored again. It is
 * exponential in the worst case, so keep one key's history to a few
 * hundred operations; lin_check gives up after a bound on its steps.
 *
 * Outcomes: an operation that definitely did not take effect (the server
 * refused it before running it: NOT_LEADER, a failed connect) must not be
 * recorded at all. An operation whose outcome is unknown (a timeout,
 * UNKNOWN_OUTCOME, a connection lost after the request went out) is
 * recorded with LIN_UNKNOWN: it may take effect at any point after its
 * call, or never (placed after everything else, which is the same as
 * never), so its return time is treated as +infinity and its output as
 * unknown. A read with an unknown outcome tells nothing and may be left
 * out.
 *
 * Values are 64-bit numbers (a test writes each as its decimal string);
 * 0 means "absent" and must not be written.
 */
#ifndef KVD_TEST_LINEARIZABLE_H
#define KVD_TEST_LINEARIZABLE_H

#include <stddef.h>
#include <stdint.h>

typedef enum lin_kind {
    LIN_WRITE,  /* SET key value: in = the value written              */
    LIN_READ,   /* GET key: out = the value read, 0 = absent          */
    LIN_DELETE, /* DEL key: out = 1 if the key existed, 0 if not      */
    LIN_CAS,    /* set to in only if the value is expect: out = 1 if
                   it was set, 0 if the value differed                 */
} lin_kind;

#define LIN_OK 0
#define LIN_UNKNOWN 1 /* outcome unknown: out is ignored, end is +inf */

typedef struct lin_op {
    lin_kind kind;
    int outcome;     /* LIN_OK or LIN_UNKNOWN                          */
    uint64_t in;     /* LIN_WRITE / LIN_CAS: the value written          */
    uint64_t expect; /* LIN_CAS: the value required (0: absent)         */
    uint64_t out;    /* see lin_kind                                    */
    int64_t start;   /* call time, any monotonic unit (e.g. ns)         */
    int64_t end;     /* return time; ignored for LIN_UNKNOWN            */
    int client;      /* who issued it (for reports only)                */
} lin_op;

typedef enum lin_result {
    LIN_LINEARIZABLE = 0,
    LIN_VIOLATION = 1, /* no legal order exists                          */
    LIN_GAVE_UP = 2,   /* more than max_steps steps: no answer           */
} lin_result;

/* Checks ops[0..n) (in any order; not modified) of one key. max_steps
 * bounds the search (0: 50 million). On LIN_VIOLATION a description of
 * the operations involved is written into report (NUL-terminated,
 * truncated to cap; may be NULL): the longest legal prefix found, the
 * register's value after it, and the operation no extension could place
 * before it returned. Returns LIN_LINEARIZABLE, LIN_VIOLATION, or
 * LIN_GAVE_UP; -1 if out of memory. Thread-safe (no shared state). */
int lin_check(const lin_op *ops, size_t n, uint64_t max_steps, char *report, size_t cap);

/* One line describing op into buf (for reports). */
void lin_describe(const lin_op *op, char *buf, size_t cap);

#endif /* KVD_TEST_LINEARIZABLE_H */
