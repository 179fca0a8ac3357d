/*
 * test_ebr.c - the reclaimer's batching, white-box (ebr.h): a writer
 * attempts a collection (up to three membarriers, each an interrupt on
 * every other CPU that runs one of the process's threads) every
 * KV__EBR_BATCH retires while it runs alone, every KV__EBR_BATCH_SHARED
 * once its last scan found another thread in a read section, and goes back
 * to KV__EBR_BATCH when that thread has left it.
 */
#include <pthread.h>

#include "ebr.h"
#include "kvtest.h"
#include "store.h"

struct hold {
    kv_store *s;
    kvt_flags f;
    int pinned, release;
};

static void hold_cb(void *ctx, const void *val, size_t vlen, uint64_t version)
{
    (void)val, (void)vlen, (void)version;
    struct hold *h = ctx;
    kvt_flag_raise(&h->f, &h->pinned);
    kvt_flag_wait(&h->f, &h->release); /* the read section stays open until then */
}

static void *reader(void *arg)
{
    struct hold *h = arg;
    kv_get_with(h->s, "held", 4, hold_cb, h);
    return NULL;
}

/* n sets of one key: n - 1 retired items at least (the first may create it). */
static void overwrite(kv_store *s, size_t n)
{
    for (size_t i = 0; i < n; i++)
        KVT_CHECK(kv_set(s, "k", 1, &i, sizeof i, NULL) == KV_OK, "set %zu", i);
}

Test(ebr, a_writer_collects_less_often_while_another_thread_reads)
{
    struct hold h = {.s = kvt_open(NULL)};
    kvt_flags_init(&h.f);
    cr_assert_eq(kv_set(h.s, "held", 4, "v", 1, NULL), KV_OK);
    kv__slot *me = kv__slot_get(&h.s->slots); /* the slot this thread's writes use */
    cr_assert_not_null(me);

    /* Alone: a scan finds nobody else, the batch is the small one. */
    overwrite(h.s, KV__EBR_BATCH + 16);
    cr_assert_eq(me->collect_every, (size_t)KV__EBR_BATCH, "alone: every %zu retires",
                 me->collect_every);

    /* Another thread in a read section at the next scan. */
    pthread_t r;
    cr_assert_eq(pthread_create(&r, NULL, reader, &h), 0);
    kvt_flag_wait(&h.f, &h.pinned);
    overwrite(h.s, KV__EBR_BATCH);
    cr_assert_eq(me->collect_every, (size_t)KV__EBR_BATCH_SHARED,
                 "with a reader pinned: every %zu retires", me->collect_every);

    /* It leaves: the next scan (a batch later) finds nobody again. */
    kvt_flag_raise(&h.f, &h.release);
    pthread_join(r, NULL);
    overwrite(h.s, KV__EBR_BATCH_SHARED);
    cr_assert_eq(me->collect_every, (size_t)KV__EBR_BATCH, "alone again: every %zu retires",
                 me->collect_every);

    /* What the reader held back is freed now. */
    uint64_t left = 1;
    cr_assert_eq(kv_reclaim(h.s, &left), KV_OK);
    cr_assert_eq(left, 0, "%llu bytes still retired", (unsigned long long)left);
    kvt_flags_destroy(&h.f);
    kv_close(h.s);
}
