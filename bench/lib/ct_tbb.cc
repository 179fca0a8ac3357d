/*
 * ct_tbb.cc - reference (d): oneTBB's concurrent_hash_map (Debian
 * libtbb-dev, oneTBB 2021.8), keys and values as std::string (ct_cxx.hh).
 *
 * A chained table: one node per key (from TBB's default tbb_allocator,
 * which is tbbmalloc when libtbbmalloc is installed, as it is with the
 * Debian package), each with its own reader-writer spin lock that an
 * accessor holds; buckets have their own locks too.
 *
 *   get   find with a const_accessor (the node's read lock), copies out.
 *   set   insert with an accessor (the node's write lock; a new key gets
 *         an empty value first), then assigns the value in place.
 *   mget  16 separate finds: no snapshot (as lfht).
 *   mset  n/a: the table has no atomic multi-key change, so the
 *         contender sits mset4 out.
 *   rmw   find with an accessor, increment under its write lock: an
 *         atomic single-key read-modify-write that never retries.
 * The hash is XXH3_64bits of the key, as everywhere in kvbench_lib;
 * lookups pass a std::string_view (the hash-compare is transparent).
 */
#include <oneapi/tbb/concurrent_hash_map.h>
#include <oneapi/tbb/version.h>

#include "ct_cxx.hh"

namespace {

struct hash_compare {
    using is_transparent = void;
    std::size_t hash(std::string_view k) const { return kvb::key_hash(k); }
    bool equal(std::string_view a, std::string_view b) const { return a == b; }
};

using table = tbb::concurrent_hash_map<std::string, std::string, hash_compare>;

table *as_table(void *h)
{
    return static_cast<table *>(h);
}

void *tbb_open(size_t nkeys)
{
    try {
        /* Sized for the key count before loading, as every contender. */
        return new table(nkeys);
    } catch (...) {
        return nullptr;
    }
}

void tbb_close(void *h)
{
    delete as_table(h);
}

void tbb_thread(void *)
{
}

int tbb_get(void *h, const kvb_key *k, void *buf, size_t cap, size_t *vlen)
{
    return kvb::guard([&] {
        table::const_accessor a;
        if (!as_table(h)->find(a, kvb::key_view(k)))
            return -1;
        return kvb::value_copy(a->second, buf, cap, vlen);
    });
}

int tbb_set(void *h, const kvb_key *k, const void *val, size_t vlen)
{
    return kvb::guard([&] {
        table::accessor a;
        as_table(h)->insert(a, kvb::key_view(k));
        a->second.assign(static_cast<const char *>(val), vlen);
        return 0;
    });
}

int tbb_mget(void *h, const kvb_key *keys, size_t n, unsigned char *bufs, size_t cap,
             uint64_t *sum)
{
    return kvb::guard([&] {
        int rc = 0;
        uint64_t s = 0;
        table::const_accessor a;
        for (size_t i = 0; i < n; i++) {
            unsigned char *slot = bufs + i * cap;
            size_t vlen = 0;
            if (!as_table(h)->find(a, kvb::key_view(&keys[i])) ||
                kvb::value_copy(a->second, slot, cap, &vlen) != 0) {
                rc = -1;
                continue;
            }
            a.release();
            s += vlen + slot[0];
        }
        *sum += s;
        return rc;
    });
}

int tbb_rmw(void *h, const kvb_key *k, uint64_t *)
{
    return kvb::guard([&] {
        table::accessor a;
        if (!as_table(h)->find(a, kvb::key_view(k)))
            return -1;
        kvb::value_increment(a->second);
        return 0;
    });
}

uint64_t tbb_memory(void *)
{
    return 0;
}

} // namespace

extern "C" const kvb_contender kvb_tbb = {
    .name = "tbb",
    .about = "oneTBB " TBB_VERSION_STRING " concurrent_hash_map<std::string, std::string>; "
             "mget = 16 finds (no snapshot), mset n/a (no atomic multi-key), "
             "rmw under an accessor",
    .open = tbb_open,
    .close = tbb_close,
    .thread_enter = tbb_thread,
    .thread_leave = tbb_thread,
    .get = tbb_get,
    .set = tbb_set,
    .mget = tbb_mget,
    .mset = nullptr,
    .rmw = tbb_rmw,
    .memory_bytes = tbb_memory,
};
