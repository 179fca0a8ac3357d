/*
 * ct_cxx.hh - what kvbench_lib's C++ contenders (ct_cuckoo.cc, ct_tbb.cc)
 * share: keys and values as std::string, lookups by std::string_view (no
 * std::string built per operation), the same inlined XXH3 hash as every
 * other contender, and a guard that keeps C++ exceptions out of the C
 * caller.
 *
 * Keys and values are std::string because a store must hold any length:
 * a 12-byte key stays inside the std::string (small-string buffer, so in
 * the table's slot or node), a 64-byte value is one heap block owned by
 * it. A set of an existing key assigns into that std::string, which reuses
 * its block when the new value fits (so same-size overwrites allocate
 * nothing, as rwlock's in-place overwrite).
 */
#ifndef KVB_CT_CXX_HH
#define KVB_CT_CXX_HH

#include <cstddef>
#include <cstdint>
#include <cstring>
#include <string>
#include <string_view>

/* Inlined, exactly as libkv includes it (libkv/src/hash.h). */
#define XXH_INLINE_ALL
#include <xxhash.h>

#include "bench.h"

namespace kvb {

inline std::string_view key_view(const kvb_key *k)
{
    return std::string_view(k->data, k->len);
}

inline std::size_t key_hash(std::string_view k)
{
    return static_cast<std::size_t>(XXH3_64bits(k.data(), k.size()));
}

/* Copies a stored value into the caller's buffer as kv_get_into does;
 * -1 if it does not fit. */
inline int value_copy(const std::string &v, void *buf, std::size_t cap, std::size_t *vlen)
{
    if (v.size() > cap)
        return -1;
    std::memcpy(buf, v.data(), v.size());
    *vlen = v.size();
    return 0;
}

/* The 64-bit counter at the start of a value, incremented in place. */
inline void value_increment(std::string &v)
{
    kvb_counter_put(v.data(), v.size(), kvb_counter_get(v.data(), v.size()) + 1);
}

/* Runs f, which returns 0 or non-zero; an exception (bad_alloc, or a
 * table that cannot grow) is a failed operation. */
template <typename F> int guard(F f) noexcept
{
    try {
        return f();
    } catch (...) {
        return -1;
    }
}

} // namespace kvb

#endif
