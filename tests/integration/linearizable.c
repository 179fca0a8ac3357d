/*
 * linearizable.c - Wing & Gong's linearizability search with Lowe's
 * memoisation (see linearizable.h), for one register.
 *
 * The history is a doubly linked list of call and return entries in time
 * order (calls first on equal times: such operations count as concurrent).
 * The search walks it from the head: a call entry whose operation the
 * model accepts in the current state is "lifted" (its call and return
 * leave the list; the pair (linearized set, new state) goes into the
 * cache; the search restarts at the head); reaching a return entry means
 * that operation had to be placed already: backtrack by popping the last
 * lifted operation, putting its entries back (dancing links: in the
 * reverse order of removal) and going on after its call. An empty list
 * is a linearization; backtracking past the first operation means there
 * is none.
 */
#include "linearizable.h"

#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

typedef struct entry {
    int64_t time;
    int is_call;
    size_t op;     /* index into the filtered ops */
    size_t match;  /* a call's return entry */
    size_t prev, next;
} entry;

typedef struct frame {
    size_t call;    /* the lifted call entry */
    uint64_t state; /* the state before it   */
} frame;

/* The cache: a set of (bitset of linearized ops, state), open addressing
 * over records of `words` bitset words followed by the state. */
typedef struct cache {
    size_t words;
    uint64_t *recs;
    size_t nrecs, caprecs;
    size_t *slots; /* record index + 1; 0 = empty */
    size_t nslots;
} cache;

static uint64_t hash_rec(const uint64_t *w, size_t n)
{
    uint64_t h = 1469598103934665603ull;
    for (size_t i = 0; i < n; i++) {
        h ^= w[i];
        h *= 1099511628211ull;
        h ^= h >> 29;
    }
    return h;
}

/* Adds (bits, state); 1 if it was new, 0 if seen, -1 out of memory. */
static int cache_add(cache *c, const uint64_t *bits, uint64_t state)
{
    size_t rw = c->words + 1;
    if ((c->nrecs + 1) * 2 > c->nslots) {
        size_t ns = c->nslots ? c->nslots * 2 : 1024;
        size_t *slots = calloc(ns, sizeof *slots);
        if (!slots)
            return -1;
        for (size_t r = 0; r < c->nrecs; r++) {
            size_t h = (size_t)hash_rec(c->recs + r * rw, rw) & (ns - 1);
            while (slots[h])
                h = (h + 1) & (ns - 1);
            slots[h] = r + 1;
        }
        free(c->slots);
        c->slots = slots;
        c->nslots = ns;
    }
    if (c->nrecs == c->caprecs) {
        size_t nc = c->caprecs ? c->caprecs * 2 : 256;
        uint64_t *recs = realloc(c->recs, nc * rw * sizeof *recs);
        if (!recs)
            return -1;
        c->recs = recs;
        c->caprecs = nc;
    }
    uint64_t *rec = c->recs + c->nrecs * rw;
    memcpy(rec, bits, c->words * sizeof *rec);
    rec[c->words] = state;
    size_t h = (size_t)hash_rec(rec, rw) & (c->nslots - 1);
    while (c->slots[h]) {
        if (memcmp(c->recs + (c->slots[h] - 1) * rw, rec, rw * sizeof *rec) == 0)
            return 0;
        h = (h + 1) & (c->nslots - 1);
    }
    c->slots[h] = ++c->nrecs;
    return 1;
}

/* The register: may op happen in state s? *ns = the state after it. */
static int step(const lin_op *op, uint64_t s, uint64_t *ns)
{
    int known = op->outcome == LIN_OK;
    switch (op->kind) {
    case LIN_WRITE:
        *ns = op->in;
        return 1;
    case LIN_READ:
        *ns = s;
        return !known || op->out == s;
    case LIN_DELETE:
        *ns = 0;
        return !known || op->out == (s != 0);
    case LIN_CAS:
        *ns = s == op->expect ? op->in : s;
        return !known || op->out == (s == op->expect);
    }
    return 0;
}

static int cmp_entry(const void *a, const void *b)
{
    const entry *x = a, *y = b;
    if (x->time != y->time)
        return x->time < y->time ? -1 : 1;
    if (x->is_call != y->is_call)
        return x->is_call ? -1 : 1;
    return x->op < y->op ? -1 : x->op > y->op;
}

void lin_describe(const lin_op *op, char *buf, size_t cap)
{
    static const char *names[] = {"write", "read", "delete", "cas"};
    char res[64];
    if (op->outcome == LIN_UNKNOWN)
        snprintf(res, sizeof res, "unknown outcome");
    else if (op->kind == LIN_READ)
        snprintf(res, sizeof res, op->out ? "-> %" PRIu64 : "-> absent", op->out);
    else if (op->kind == LIN_DELETE)
        snprintf(res, sizeof res, "-> %s", op->out ? "deleted" : "was absent");
    else if (op->kind == LIN_CAS)
        snprintf(res, sizeof res, "-> %s", op->out ? "set" : "not set");
    else
        snprintf(res, sizeof res, "ok");
    char arg[64] = "";
    if (op->kind == LIN_WRITE)
        snprintf(arg, sizeof arg, "(%" PRIu64 ")", op->in);
    else if (op->kind == LIN_CAS)
        snprintf(arg, sizeof arg, "(%" PRIu64 " if %" PRIu64 ")", op->in, op->expect);
    char end[32];
    if (op->outcome == LIN_UNKNOWN)
        snprintf(end, sizeof end, "inf");
    else
        snprintf(end, sizeof end, "%" PRId64, op->end);
    snprintf(buf, cap, "client %d %s%s %s [%" PRId64 ", %s]", op->client,
             names[op->kind], arg, res, op->start, end);
}

/* Appends to report (bounded). */
static void add(char *report, size_t cap, size_t *len, const char *fmt, const char *s)
{
    if (!report || *len + 1 >= cap)
        return;
    int n = snprintf(report + *len, cap - *len, fmt, s);
    if (n > 0)
        *len = *len + (size_t)n >= cap ? cap - 1 : *len + (size_t)n;
}

int lin_check(const lin_op *all, size_t nall, uint64_t max_steps, char *report, size_t cap)
{
    if (report && cap)
        report[0] = 0;
    if (!max_steps)
        max_steps = 50u * 1000 * 1000;
    /* reads with an unknown outcome constrain nothing */
    const lin_op **ops = malloc((nall + 1) * sizeof *ops);
    if (!ops)
        return -1;
    size_t n = 0;
    for (size_t i = 0; i < nall; i++)
        if (!(all[i].kind == LIN_READ && all[i].outcome == LIN_UNKNOWN))
            ops[n++] = &all[i];
    if (n == 0) {
        free(ops);
        return LIN_LINEARIZABLE;
    }
    /* entries 1..2n, 0 is the list's head (sentinel) */
    entry *e = calloc(2 * n + 1, sizeof *e);
    frame *stack = malloc(n * sizeof *stack);
    size_t *best_stack = malloc(n * sizeof *best_stack);
    cache c = {.words = (n + 63) / 64};
    uint64_t *bits = calloc(c.words, sizeof *bits);
    int result = -1;
    if (!e || !stack || !best_stack || !bits)
        goto out;
    for (size_t i = 0; i < n; i++) {
        e[1 + 2 * i] = (entry){.time = ops[i]->start, .is_call = 1, .op = i};
        e[2 + 2 * i] = (entry){.time = ops[i]->outcome == LIN_UNKNOWN ? INT64_MAX : ops[i]->end,
                               .is_call = 0, .op = i};
    }
    qsort(e + 1, 2 * n, sizeof *e, cmp_entry);
    size_t *ret_of = malloc(n * sizeof *ret_of);
    if (!ret_of)
        goto out;
    for (size_t k = 1; k <= 2 * n; k++) {
        e[k].prev = k - 1;
        e[k].next = k == 2 * n ? 0 : k + 1;
        if (!e[k].is_call)
            ret_of[e[k].op] = k;
    }
    for (size_t k = 1; k <= 2 * n; k++)
        if (e[k].is_call)
            e[k].match = ret_of[e[k].op];
    free(ret_of);
    e[0].next = 1;
    e[0].prev = 2 * n;

    uint64_t state = 0, steps = 0, best_state = 0;
    size_t depth = 0, best = 0, blocker = (size_t)-1;
    size_t cur = e[0].next;
    result = LIN_LINEARIZABLE;
    while (e[0].next != 0) {
        if (++steps > max_steps) {
            result = LIN_GAVE_UP;
            break;
        }
        entry *x = &e[cur];
        if (x->is_call) {
            uint64_t ns;
            const lin_op *op = ops[x->op];
            if (step(op, state, &ns)) {
                bits[x->op / 64] |= 1ull << (x->op % 64);
                int fresh = cache_add(&c, bits, ns);
                if (fresh < 0) {
                    result = -1;
                    break;
                }
                if (fresh) {
                    stack[depth++] = (frame){cur, state};
                    state = ns;
                    /* lift: the call, then its return */
                    entry *r = &e[x->match];
                    e[x->prev].next = x->next;
                    e[x->next].prev = x->prev;
                    e[r->prev].next = r->next;
                    e[r->next].prev = r->prev;
                    if (depth > best) {
                        best = depth;
                        best_state = state;
                        blocker = (size_t)-1;
                        for (size_t i = 0; i < depth; i++)
                            best_stack[i] = e[stack[i].call].op;
                    }
                    cur = e[0].next;
                    continue;
                }
                bits[x->op / 64] &= ~(1ull << (x->op % 64));
            }
            cur = x->next;
            continue;
        }
        /* a return entry: its operation should have been placed */
        if (depth == best && blocker == (size_t)-1)
            blocker = x->op;
        if (depth == 0) {
            result = LIN_VIOLATION;
            break;
        }
        frame f = stack[--depth];
        state = f.state;
        entry *cl = &e[f.call], *r = &e[cl->match];
        bits[cl->op / 64] &= ~(1ull << (cl->op % 64));
        /* unlift: the return, then the call */
        e[r->prev].next = cl->match;
        e[r->next].prev = cl->match;
        e[cl->prev].next = f.call;
        e[cl->next].prev = f.call;
        cur = cl->next;
    }
    if (result == LIN_VIOLATION && report) {
        size_t len = 0;
        char line[256], num[80];
        snprintf(num, sizeof num, "%zu of %zu", best, n);
        add(report, cap, &len, "no linearization: at most %s operations placed", num);
        if (best) {
            add(report, cap, &len, "%s", ", the last ones:\n");
            for (size_t i = best > 4 ? best - 4 : 0; i < best; i++) {
                lin_describe(ops[best_stack[i]], line, sizeof line);
                add(report, cap, &len, "  %s\n", line);
            }
        } else {
            add(report, cap, &len, "%s", "\n");
        }
        snprintf(num, sizeof num, best_state ? "%" PRIu64 : "absent", best_state);
        add(report, cap, &len, "then the value is %s and this operation cannot be placed", num);
        if (blocker != (size_t)-1) {
            lin_describe(ops[blocker], line, sizeof line);
            add(report, cap, &len, ":\n  %s\n", line);
            /* the operations still open when it returned: the candidates */
            int shown = 0;
            for (size_t i = 0; i < n && shown < 6; i++) {
                int placed = 0;
                for (size_t k = 0; k < best && !placed; k++)
                    placed = best_stack[k] == i;
                if (placed || i == blocker || ops[i]->start > ops[blocker]->end)
                    continue;
                if (!shown++)
                    add(report, cap, &len, "%s", "concurrent with it:\n");
                lin_describe(ops[i], line, sizeof line);
                add(report, cap, &len, "  %s\n", line);
            }
        } else {
            add(report, cap, &len, "%s", "\n");
        }
    }
out:
    free(ops);
    free(e);
    free(stack);
    free(best_stack);
    free(bits);
    free(c.recs);
    free(c.slots);
    return result;
}
