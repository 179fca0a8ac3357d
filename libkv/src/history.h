/*
 * history.h - earlier values of keys, for reads in the past, a key's
 * history, rollback and compaction (kv.h, "History").
 *
 * In a store opened with kv_config.history, a change does not retire the
 * item it replaces or deletes: it moves it into the key's history. The
 * latest value stays where it always is (the index), so gets of the latest
 * value read nothing new and stay lock-free; history lives beside the
 * index, reached only by the calls that ask for it.
 *
 * Layout. Each of the 1024 lock stripes (stripes.h) has a small hash map
 * of the keys of that stripe that have history (kv__hkey), and each such
 * key a list of its earlier versions (kv__hent), newest first. The map and
 * the lists are touched only with the stripe locked: writers add to them
 * inside their change (the stripe is locked anyway), and the calls that
 * read history lock the stripes of the keys they read. Readers of history
 * therefore see exactly the changes published before they took the lock,
 * and a change in flight (revision taken, not yet published) holds the
 * lock, so they wait for it: this is what makes "the store as of revision
 * N" stable once N has been handed out.
 *
 * A version v of a key is visible at revision N when v.rev <= N < v.until,
 * where `until` is the revision of the change that replaced or removed it
 * (the current version's until is infinite). A deletion is not an entry of
 * its own: it is the gap between one version's until and the next
 * version's rev. So "absent at N" needs no marker, and compaction is one
 * rule: an entry with until <= C is needed by no read at a revision >= C.
 *
 * Revisions: a store with history numbers its changes 1, 2, 3, ... (the
 * log's counter when there is a log, otherwise one atomic counter taken
 * under the change's stripe locks), so every revision up to the latest
 * names a change that has been, or is being, published.
 *
 * Bounds: a count per key (applied by the writer, which drops the key's
 * oldest entry: the key's own floor then rises, below which reads of it
 * are compacted), and total bytes and age (applied by the compactor
 * thread, which raises the store-wide compaction revision and sweeps the
 * stripes one at a time, so a reader or writer waits at most for one
 * stripe's sweep).
 */
#ifndef KV_HISTORY_H
#define KV_HISTORY_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "item.h"
#include "kv.h"
#include "thread_slot.h"

typedef struct kv__hent kv__hent;
typedef struct kv__hkey kv__hkey;
typedef struct kv__hist kv__hist;

/* What a change needs for one key's history, allocated before it takes
 * its revision (so that the change can still fail cleanly), with the
 * key's stripe locked. */
typedef struct kv__hist_prep {
    kv__hkey *rec;  /* the key's record, existing or new (rec_new) */
    kv__hent *ent;  /* the entry for the item the change replaces */
    bool rec_new;
} kv__hist_prep;

/* Sets up history for a store as cfg says (nothing if cfg->history is 0).
 * Before any item exists. KV_OK, KV_NO_MEMORY or KV_INVALID_ARGUMENT. */
int kv__hist_open(kv_store *s, const kv_config *cfg);
/* Starts the compactor thread if the byte or age bound asks for one: once
 * the store is fully open (recovered, its log running). KV_OK or
 * KV_NO_MEMORY. */
int kv__hist_start(kv_store *s);
/* Frees all history (kv_close: no other thread uses the store). */
void kv__hist_close(kv_store *s);

/* Under the key's stripe lock, once the key is looked up (old: the item in
 * its slot, or NULL): starts the cache misses of the key's newest and
 * oldest versions, from the record old links (item.h), so that they
 * overlap the allocations and the publication before kv__hist_commit needs
 * them. A hint: it changes nothing. */
void kv__hist_prefetch(const kv_store *s, const kv__item *old);
/* Without the lock, once the key's item it (in its slot) has had time to
 * arrive: starts the misses of the record its link names (item.h; pinned:
 * the item is retired through the epochs, its link read atomically; the
 * record may have been freed since, which a prefetch does not mind). */
void kv__hist_prefetch_linked(const kv_store *s, const kv__item *it);
/* Without the lock, pinned, once that record has had time to arrive:
 * starts the misses of its newest and oldest versions, which the write's
 * kv__hist_commit links to and drops (the oldest version's line was the
 * biggest wait of pipelined SETs with history). */
void kv__hist_prefetch_ahead(const kv_store *s, const kv__item *it);

/* Under the key's stripe lock: finds or allocates what the change of one
 * key needs (old: the item in the key's slot, which becomes an entry, or
 * NULL). The new item's link must then name p->rec (item.h). KV_OK or
 * KV_NO_MEMORY (nothing allocated then). */
int kv__hist_prepare(kv_store *s, kv__slot *slot, uint64_t hash, const void *key, size_t klen,
                     const kv__item *old, kv__hist_prep *p);
/* Frees what kv__hist_prepare allocated, for a change that failed. */
void kv__hist_unprepare(kv__slot *slot, kv__hist_prep *p);
/* Versions a change drops of each key it writes at most (the per-key
 * bound's, and what is below the compaction revision: kv__hist_commit). */
#define KV__HIST_DROPS 4u
/* Extra retires a change of n keys may need (the entries it drops, and
 * each key's record, which goes when it holds nothing more): reserve them
 * with the change's own. */
static inline size_t kv__hist_retires(size_t n)
{
    return (KV__HIST_DROPS + 1) * n;
}
/* Under the key's stripe lock, once the change of revision rev is
 * published: old (the item the key's slot held, NULL if none; `visible`:
 * it had not expired) goes into the key's history, next (NULL: the key
 * is now absent) becomes its current version. Drops (and retires: they
 * are reserved, kv__hist_retires) up to KV__HIST_DROPS of the key's
 * oldest versions that the per-key bound or the compaction revision let
 * go: the writer, with the key's record in its cache, does most of the
 * compactor's work (history_compact.c). replay: a change replayed by
 * recovery, whose replaced version a snapshot may already have put in
 * history. */
void kv__hist_commit(kv_store *s, kv__slot *slot, kv__hist_prep *p, uint64_t hash,
                     kv__item *old, bool visible, kv__item *next, uint64_t rev, bool replay);

/* Under the memory limit (evict.c, no lock held): compacts history to
 * halfway between the compaction revision and the latest, oldest first,
 * sweeping until deadline_ns (CLOCK_MONOTONIC; 0: to the end); the next
 * call goes on where this one stopped before it starts another half. So
 * a write pays for a slice, not for a whole history. False when there
 * was nothing to drop. */
bool kv__hist_shed(kv_store *s, kv__slot *slot, uint64_t deadline_ns);

/* Recovery or kv_load installed state whose history is not known: reads
 * below rev are compacted. */
void kv__hist_floor(kv_store *s, uint64_t rev);

/* For watchers (watch.c). Each locks the stripes it reads.
 * kv__hist_key_events: kv_history without its argument checks (max_rev
 *   at most the latest), with each event's key copied if with_key;
 *   *floor receives the oldest revision the key's history is complete
 *   from (the resume point when KV_COMPACTED is returned).
 * kv__hist_prefix_keys: every key with the prefix that is live or has
 *   history, into *keys (pointing into *mem; free both).
 * kv__hist_value_at: fills ev's value and metadata with what the change
 *   of revision rev wrote to key (pinned by the caller); KV_COMPACTED if
 *   history no longer has it. */
int kv__hist_key_events(kv_store *s, const void *key, size_t klen, uint64_t min_rev,
                        uint64_t max_rev, size_t limit, bool with_key, kv_event **out,
                        size_t *n, uint64_t *floor);
int kv__hist_prefix_keys(kv_store *s, const void *prefix, size_t plen, kv_key **keys,
                         size_t *n, void **mem);
int kv__hist_value_at(kv_store *s, const void *key, size_t klen, uint64_t rev, kv_event *ev);

/* Snapshots and recovery (snapshot.c, durable.c).
 * kv__hist_entry_meta: the create revision and version count of key's
 *   version rev; true when they are not the defaults (rev, 1).
 * kv__hist_snapshot: calls fn for every key with earlier versions or a
 *   raised floor (with_meta: also every key whose current version's
 *   metadata is not the default), stripe by stripe, with the stripe
 *   locked (fn copies, it must not block), and after_stripe (may be NULL)
 *   once each stripe is unlocked. h->revision is 0 unless with_meta.
 * kv__hist_set_meta: at load, key's current version rev has this create
 *   revision and version count.
 * kv__hist_load_key: at load, key's earlier versions (newest first) and
 *   floor; versions already there are skipped. */
typedef int (*kv__hist_key_fn)(void *ctx, const kv_key_history *h);
bool kv__hist_entry_meta(kv_store *s, const void *key, size_t klen, uint64_t rev,
                         uint64_t *create, uint64_t *version);
int kv__hist_snapshot(kv_store *s, bool with_meta, kv__hist_key_fn fn,
                      int (*after_stripe)(void *ctx), void *ctx);
int kv__hist_set_meta(kv_store *s, const void *key, size_t klen, uint64_t rev,
                      uint64_t create, uint64_t version);
int kv__hist_load_key(kv_store *s, const void *key, size_t klen, uint64_t floor,
                      const kv_hist_version *ents, size_t n);

#endif
