/*
 * ct_cuckoo.cc - reference (c): libcuckoo's concurrent cuckoo hash map
 * (cuckoohash_map, Debian libcuckoo-dev 0.3.1; Li, Andersen, Kaminsky,
 * Freedman, "Algorithmic improvements for fast concurrent cuckoo hashing",
 * EuroSys 2014), keys and values as std::string (ct_cxx.hh).
 *
 * The table keeps keys and values in its buckets (4 slots each; a 64-byte
 * value's bytes are in a heap block its std::string owns). Every operation
 * locks the key's two candidate buckets (striped spinlocks, readers too).
 *
 *   get   find_fn: copies the value out under the bucket locks.
 *   set   upsert: a new key is inserted, an existing one assigned in place.
 *   mget  16 separate find_fn: no snapshot (as lfht).
 *   mset  n/a: the table has no atomic multi-key change (only locking the
 *         whole table), so the contender sits mset4 out.
 *   rmw   update_fn: the increment runs under the bucket locks, an atomic
 *         single-key read-modify-write that never retries.
 * The hash is XXH3_64bits of the key, as everywhere in kvbench_lib;
 * lookups pass a std::string_view (find_fn and friends take any key type
 * the hash and equality accept).
 */
#include <libcuckoo/cuckoohash_map.hh>

#include "ct_cxx.hh"

namespace {

struct hash {
    std::size_t operator()(std::string_view k) const { return kvb::key_hash(k); }
};

struct equal {
    bool operator()(std::string_view a, std::string_view b) const { return a == b; }
};

using table = libcuckoo::cuckoohash_map<std::string, std::string, hash, equal>;

table *as_table(void *h)
{
    return static_cast<table *>(h);
}

void *cuckoo_open(size_t nkeys)
{
    try {
        /* Sized for the key count before loading, as every contender. */
        return new table(nkeys);
    } catch (...) {
        return nullptr;
    }
}

void cuckoo_close(void *h)
{
    delete as_table(h);
}

void cuckoo_thread(void *)
{
}

int cuckoo_get(void *h, const kvb_key *k, void *buf, size_t cap, size_t *vlen)
{
    return kvb::guard([&] {
        int rc = -1;
        as_table(h)->find_fn(kvb::key_view(k), [&](const std::string &v) {
            rc = kvb::value_copy(v, buf, cap, vlen);
        });
        return rc;
    });
}

int cuckoo_set(void *h, const kvb_key *k, const void *val, size_t vlen)
{
    return kvb::guard([&] {
        const char *p = static_cast<const char *>(val);
        as_table(h)->upsert(
            kvb::key_view(k), [&](std::string &v) { v.assign(p, vlen); }, p, vlen);
        return 0;
    });
}

int cuckoo_mget(void *h, const kvb_key *keys, size_t n, unsigned char *bufs, size_t cap,
                uint64_t *sum)
{
    return kvb::guard([&] {
        int rc = 0;
        uint64_t s = 0;
        for (size_t i = 0; i < n; i++) {
            unsigned char *slot = bufs + i * cap;
            size_t vlen = 0;
            bool found = as_table(h)->find_fn(kvb::key_view(&keys[i]), [&](const std::string &v) {
                if (kvb::value_copy(v, slot, cap, &vlen) != 0)
                    rc = -1;
            });
            if (!found)
                rc = -1;
            s += vlen + slot[0];
        }
        *sum += s;
        return rc;
    });
}

int cuckoo_rmw(void *h, const kvb_key *k, uint64_t *)
{
    return kvb::guard([&] {
        return as_table(h)->update_fn(kvb::key_view(k), kvb::value_increment) ? 0 : -1;
    });
}

uint64_t cuckoo_memory(void *)
{
    return 0;
}

} // namespace

extern "C" const kvb_contender kvb_cuckoo = {
    .name = "cuckoo",
    .about = "libcuckoo " KVB_CUCKOO_VERSION " cuckoohash_map<std::string, std::string>; "
             "mget = 16 find_fn (no snapshot), mset n/a (no atomic multi-key), "
             "rmw = update_fn",
    .open = cuckoo_open,
    .close = cuckoo_close,
    .thread_enter = cuckoo_thread,
    .thread_leave = cuckoo_thread,
    .get = cuckoo_get,
    .set = cuckoo_set,
    .mget = cuckoo_mget,
    .mset = nullptr,
    .rmw = cuckoo_rmw,
    .memory_bytes = cuckoo_memory,
};
