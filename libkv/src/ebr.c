/*
 * ebr.c - epoch advance and the retired lists (see ebr.h for the scheme).
 */
#include "ebr.h"

#include <linux/membarrier.h>
#include <pthread.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>
#include <sys/syscall.h>
#include <unistd.h>

#include "kv.h"

bool kv__ebr_asymmetric;

static void global_init_once(void)
{
    /* Registration is per process and must precede the first use. */
    kv__ebr_asymmetric =
        syscall(SYS_membarrier, MEMBARRIER_CMD_REGISTER_PRIVATE_EXPEDITED, 0, 0) == 0;
}

void kv__ebr_global_init(void)
{
    static pthread_once_t once = PTHREAD_ONCE_INIT;
    pthread_once(&once, global_init_once);
}

int kv__ebr_reserve(kv__slot *s, size_t n)
{
    if (s->limbo_cap - s->nlimbo >= n)
        return KV_OK;
    size_t cap = s->limbo_cap ? s->limbo_cap : 64;
    while (cap - s->nlimbo < n)
        cap *= 2;
    kv__retired *l = realloc(s->limbo, cap * sizeof *l);
    if (!l)
        return KV_NO_MEMORY;
    s->limbo = l;
    s->limbo_cap = cap;
    return KV_OK;
}

void kv__ebr_free_plain(kv__slot *s, void *ptr)
{
    (void)s;
    free(ptr);
}

void kv__ebr_retire(kv__ebr *ebr, kv__slot *s, void *ptr, void (*free_fn)(kv__slot *, void *),
                    size_t bytes)
{
    /* The object is already unlinked; reading E after that (seq_cst) is
     * what makes "freed at E >= r + 2" safe. */
    uint64_t e = atomic_load(&ebr->epoch);
    s->limbo[s->nlimbo++] = (kv__retired){ptr, free_fn, e, bytes};
    s->limbo_bytes += bytes;
    s->since_collect++;
}

struct scan_state {
    uint64_t epoch;
    bool blocked;
};

static void check_slot(kv__slot *s, void *ctx)
{
    struct scan_state *st = ctx;
    uint64_t v = atomic_load(&s->epoch);
    if ((v & 1) && (v >> 1) != st->epoch)
        st->blocked = true;
}

/* Advances E by one if every pinned thread has seen the current E. */
static uint64_t try_advance(kv__ebr *ebr)
{
    /* Make every reader's pin store visible before the scan (ebr.h). If
     * the call fails, treat the scan as blocked rather than guess. */
    if (kv__ebr_asymmetric &&
        syscall(SYS_membarrier, MEMBARRIER_CMD_PRIVATE_EXPEDITED, 0, 0) != 0)
        return atomic_load(&ebr->epoch);
    struct scan_state st = {atomic_load(&ebr->epoch), false};
    kv__slot_each(ebr->slots, check_slot, &st);
    if (st.blocked)
        return st.epoch;
    uint64_t e = st.epoch;
    if (atomic_compare_exchange_strong(&ebr->epoch, &e, st.epoch + 1))
        return st.epoch + 1;
    return e; /* someone else advanced it */
}

void kv__ebr_collect(kv__ebr *ebr, kv__slot *s)
{
    /* An attempt costs a membarrier (an interrupt on every CPU running the
     * process), so make one per KV__EBR_BATCH retires, not one per write
     * while the list waits; only a lot of retired memory justifies more. */
    if (s->since_collect < KV__EBR_BATCH && s->limbo_bytes < KV__EBR_BATCH_BYTES)
        return;
    s->since_collect = 0;
    uint64_t e = atomic_load(&ebr->epoch);
    if (s->nlimbo && s->limbo[0].epoch + 2 > e)
        e = try_advance(ebr);
    size_t done = 0;
    /* The list is in retire order, so epochs never decrease along it. */
    while (done < s->nlimbo && s->limbo[done].epoch + 2 <= e) {
        s->limbo[done].free_fn(s, s->limbo[done].ptr);
        s->limbo_bytes -= s->limbo[done].bytes;
        done++;
    }
    if (done) {
        memmove(s->limbo, s->limbo + done, (s->nlimbo - done) * sizeof *s->limbo);
        s->nlimbo -= done;
    }
}

static void drain_slot(kv__slot *s, void *ctx)
{
    (void)ctx;
    for (size_t i = 0; i < s->nlimbo; i++)
        s->limbo[i].free_fn(s, s->limbo[i].ptr);
    s->nlimbo = 0;
    s->limbo_bytes = 0;
}

void kv__ebr_drain_all(kv__ebr *ebr)
{
    kv__slot_each(ebr->slots, drain_slot, NULL);
}
