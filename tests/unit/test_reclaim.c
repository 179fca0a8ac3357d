/*
 * test_reclaim.c - retired memory (deleted values that readers might still
 * see) is freed promptly: by the deleting thread's own write when no reader
 * holds it, and by kv_reclaim() on another thread when the deleting thread
 * stopped writing. It is never freed while a reader may still see it.
 *
 * The retired total is read with kv_reclaim() from inside a read callback,
 * where it reports without freeing (kv.h).
 */
#include <pthread.h>

#include "kvtest.h"

#define NBIG 32
#define BIG ((size_t)1 << 20)

static void fill(kv_store *s)
{
    char *v = malloc(BIG);
    cr_assert_not_null(v);
    memset(v, 'x', BIG);
    for (int i = 0; i < NBIG; i++) {
        char k[16];
        int n = snprintf(k, sizeof k, "big%d", i);
        KVT_CHECK(kv_set(s, k, (size_t)n, v, BIG, NULL) == KV_OK, "set %s", k);
    }
    free(v);
    cr_assert_eq(kv_set(s, "small", 5, "v", 1, NULL), KV_OK);
}

static void delete_all(kv_store *s)
{
    for (int i = 0; i < NBIG; i++) {
        char k[16];
        int n = snprintf(k, sizeof k, "big%d", i);
        KVT_CHECK(kv_delete(s, k, (size_t)n, NULL) == KV_OK, "delete %s", k);
    }
}

struct peek {
    kv_store *s;
    uint64_t retired;
    int rc;
};

static void peek_cb(void *ctx, const void *val, size_t vlen, uint64_t version)
{
    (void)val, (void)vlen, (void)version;
    struct peek *p = ctx;
    p->rc = kv_reclaim(p->s, &p->retired); /* in a read section: only counts */
}

/* Bytes retired and not yet freed, without freeing any. */
static uint64_t retired_now(kv_store *s)
{
    struct peek p = {s, 0, -1};
    cr_assert_eq(kv_get_with(s, "small", 5, peek_cb, &p), KV_OK);
    cr_assert_eq(p.rc, KV_OK);
    return p.retired;
}

Test(reclaim, mass_delete_is_freed_by_the_deleting_thread)
{
    kv_store *s = kvt_open(NULL);
    fill(s);
    delete_all(s);
    /* No reader was pinned: every value was freed by the writes themselves
     * (the last one too, without waiting for another write). */
    cr_assert_eq(retired_now(s), 0, "%llu bytes still retired",
                 (unsigned long long)retired_now(s));
    kv_close(s);
}

/* ---- a writer that stops, while a reader held the memory --------------- */

struct scene {
    kv_store *s;
    kvt_flags f;
    int pinned, release, deleted, quit;
};

static void hold_cb(void *ctx, const void *val, size_t vlen, uint64_t version)
{
    (void)val, (void)vlen, (void)version;
    struct scene *sc = ctx;
    kvt_flag_raise(&sc->f, &sc->pinned);
    kvt_flag_wait(&sc->f, &sc->release); /* the read section stays open until then */
}

static void *reader(void *arg)
{
    struct scene *sc = arg;
    kv_get_with(sc->s, "small", 5, hold_cb, sc);
    return NULL;
}

static void *writer(void *arg)
{
    struct scene *sc = arg;
    kvt_flag_wait(&sc->f, &sc->pinned);
    delete_all(sc->s);
    kvt_flag_raise(&sc->f, &sc->deleted);
    kvt_flag_wait(&sc->f, &sc->quit); /* alive, but never writes again */
    return NULL;
}

Test(reclaim, idle_writers_memory_is_freed_by_another_thread)
{
    struct scene sc = {.s = kvt_open(NULL)};
    kvt_flags_init(&sc.f);
    fill(sc.s);
    pthread_t r, w;
    cr_assert_eq(pthread_create(&r, NULL, reader, &sc), 0);
    cr_assert_eq(pthread_create(&w, NULL, writer, &sc), 0);
    kvt_flag_wait(&sc.f, &sc.deleted);

    /* The reader may still see the values: nothing may be freed. */
    uint64_t left = 0;
    cr_assert_eq(kv_reclaim(sc.s, &left), KV_OK);
    cr_assert_geq(left, (uint64_t)NBIG * BIG, "only %llu bytes retired while a reader is pinned",
                  (unsigned long long)left);

    kvt_flag_raise(&sc.f, &sc.release);
    pthread_join(r, NULL);
    /* The writer is idle; this thread frees its list. */
    cr_assert_geq(retired_now(sc.s), (uint64_t)NBIG * BIG);
    cr_assert_eq(kv_reclaim(sc.s, &left), KV_OK);
    cr_assert_eq(left, 0, "%llu bytes still retired", (unsigned long long)left);
    cr_assert_eq(retired_now(sc.s), 0);

    kvt_flag_raise(&sc.f, &sc.quit);
    pthread_join(w, NULL);
    kvt_flags_destroy(&sc.f);
    kv_close(sc.s);
}

Test(reclaim, arguments)
{
    cr_assert_eq(kv_reclaim(NULL, NULL), KV_INVALID_ARGUMENT);
    kv_store *s = kvt_open(NULL);
    cr_assert_eq(kv_reclaim(s, NULL), KV_OK, "nothing retired: a no-op");
    kv_close(s);
}
