/*
 * expire.h - expiry: the store's coarse clock and the active expiry.
 *
 * Items may carry an absolute expiry time (item.h). Readers compare it with
 * the store's coarse clock (kv__clock_now, store.h), one relaxed load, and
 * only when the item has an expiry time: a get of a key without one reads
 * no clock. The clock is raised to the wall clock once a millisecond by the
 * expiry thread while keys are due (it sleeps until the next expiry time
 * it knows of, at most 100 ms at a time, when none is near), which the
 * store starts the first time an item with an expiry time is published (a
 * store that never uses expiry starts no thread). The same thread runs the active expiry: a sweep of the index in
 * bounded steps that deletes expired keys through kv__apply (one record,
 * one revision per batch of keys, like any change). Writers also remove an
 * expired key they meet (apply.c): the lazy half.
 *
 * The functions below are for tests and the expiry thread.
 */
#ifndef KV_EXPIRE_H
#define KV_EXPIRE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "kv.h"

/* Freezes the store's clock at ms (tests): the expiry thread stops moving
 * it until kv__clock_unfreeze. Any thread. */
void kv__clock_set(kv_store *s, uint64_t ms);
void kv__clock_unfreeze(kv_store *s);

/* Pauses (true) or resumes the expiry thread's sweeps (tests: to see the
 * lazy expiry alone). The clock keeps ticking unless frozen. */
void kv__expiry_pause(kv_store *s, bool paused);

/* One step of the active expiry, in the calling thread: looks at up to
 * max_slots index slots from where the last step stopped and deletes the
 * expired keys among them (in batches of KV__EXPIRE_BATCH keys, each one
 * kv__apply), stopping early once deadline_ns (CLOCK_MONOTONIC, 0: none)
 * has passed. Returns the keys it deleted (0 in a store opened with
 * manual_expiry: it has no sweep). Not concurrently with another step on
 * the same store (the expiry thread's own, unless paused). */
size_t kv__expire_step(kv_store *s, size_t max_slots, uint64_t deadline_ns);

/* When the active expiry next has work (tests): no key expires before the
 * returned time (ms), by the last whole pass of the index and the notes
 * writers left since; 0: not known yet (no whole pass since the thread
 * started); UINT64_MAX: no key has an expiry time. Starts the thread. */
uint64_t kv__expiry_due(kv_store *s);
/* Whether the expiry thread sleeps past its 1 ms tick now (tests). */
bool kv__expiry_sleeping(kv_store *s);

#define KV__EXPIRE_BATCH 16 /* keys per delete batch: stripe locks held at once */

#endif
