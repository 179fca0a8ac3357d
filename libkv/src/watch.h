/*
 * watch.h - the change feed that watchers follow (kv.h, "Watch").
 *
 * A store with history has a feed: a ring of the keys of its last
 * KV__FEED_SLOTS changes, indexed by revision (a store with history
 * numbers its changes 1, 2, 3, ..., so revision r lives in slot r mod the
 * ring's size). While at least one watcher is open, every change, once
 * published and with its stripes still locked, puts a record of its keys
 * in its slot; with no watcher the feed costs one relaxed load per change.
 * Values are not copied: a watcher reads what the change wrote from
 * history (history.h) when it delivers the event.
 *
 * Why a watcher sees every change from the revision it starts at: it
 * first counts itself in (an atomic read-modify-write, a full barrier),
 * then reads the latest revision L. A change takes its revision, publishes
 * (whose fence orders that before what follows), then loads the watcher
 * count: so a change numbered above L sees the watcher and records itself,
 * and the changes up to L are read from history (whose reads wait for any
 * of them still being published, history.h).
 */
#ifndef KV_WATCH_H
#define KV_WATCH_H

#include <stdatomic.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "kv.h"
#include "thread_slot.h"

#define KV__FEED_SLOTS 16384u

typedef struct kv__feed kv__feed;

/* One key of a change, for its record. */
typedef struct kv__feed_key {
    const void *key;
    size_t klen;
    bool deleted;
} kv__feed_key;

/* With history: sets up the store's feed. KV_OK or KV_NO_MEMORY. */
int kv__feed_open(kv_store *s);
/* Frees the feed (kv_close; no watcher may be open). */
void kv__feed_close(kv_store *s);

/* Whether any watcher is open (a relaxed load: see above for why the
 * caller's publishing fence makes it enough). */
bool kv__feed_watched(kv_store *s);

/* After the change of revision rev is published, with its stripes still
 * locked: records its n keys (keys NULL: they could not be listed, and
 * watchers read the revision from history). Uses one retire of the
 * slot's reservation (the record it replaces). */
void kv__feed_record(kv_store *s, kv__slot *slot, uint64_t rev, const kv__feed_key *keys,
                     size_t n);

#endif
