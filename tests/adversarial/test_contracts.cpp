// Each call's contract, as its man page states it, held against inputs a
// careless or hostile caller gives: every item's status, every output of an
// item that failed, the call failing whole (nothing leased, nothing
// reserved, nothing copied) where the page says so, and a message that names
// what was wrong without carrying a raw control byte.
//
// Bad inputs tried here, per area:
//  - daxkv_lease_batch: present, absent and duplicate keys mixed with NULL
//    keys and keys of length 0 and DAXKV_KEY_MAX + 1, items whose outputs
//    hold garbage before the call, DAXKV_PREFIX with the miss or the bad
//    key first and in the middle, n above INT32_MAX, NULL items with n 0
//    and with n 1, unknown flags, 20000 leases of one key in one call,
//    keys of a draining device and of a device removed by eviction, a call
//    after shutdown, a call in a forked child, and the leases released
//    partly and in another order than taken.
//  - daxkv_memcpy_batch: ranges of one batch that write the same bytes, or
//    write what another range reads (refused), a range that overlaps
//    itself (memmove), ranges of length 0 with NULL pointers, counts of
//    SIZE_MAX, SIZE_MAX / 8 + 1, SIZE_MAX / 8, 2^58 and 2^50 with arrays
//    of one range, and the arena's own bytes (a lease's and a
//    reservation's) as source and destination.
//  - configuration: sizes with suffixes at and past 2^64 ("16EiB",
//    "17179869184GiB", "1e30", "-1MiB", "0x10", "1.5MiB", "NaN"), every key
//    with an empty string, numbers where words go, JSON members with the
//    wrong type (floats, negatives, 2^64, objects, lists, null) for every
//    key of daxkv_config_set, true and false for every key that is not a
//    boolean, a member name with a newline, and device paths holding a
//    newline and an escape sequence, given twice, too large for one slot,
//    missing at open and at daxkv_device_add (the message and the log).
//  - reservations: commit after a forced remove of the key, after shutdown
//    and after close, from another thread than the one that reserved,
//    metadata one byte above meta_bytes (set_meta and reserve_meta), a
//    set_meta that failed keeping the metadata set before, and an abort
//    after shutdown.
//  - status and statistics: daxkv_status_json, daxkv_stats_prometheus and
//    daxkv_pool_status_json with cap 0, 1 and needed - 1 (the buffer left
//    as it was), NULL needed, a size query followed by a call with room;
//    daxkv_stats with struct_size 8, 13 (ending inside a member), its own
//    size and one above it (the bytes past the struct untouched); all of
//    them while another thread
//    adds and removes devices; the peek calls likewise, with NULL, empty
//    and missing paths, and after the store closed.
//  - a lease batch item whose value fails its checksum (verify=read), first
//    in a DAXKV_PREFIX batch.
#include <algorithm>
#include <atomic>
#include <climits>
#include <thread>

#include "common.hpp"

using namespace adv;

namespace {

// The sanitizers' allocators end the process where an allocation larger
// than they support is asked for, instead of letting it fail.
#if defined(__SANITIZE_ADDRESS__) || defined(__SANITIZE_THREAD__)
constexpr bool kSanitizerAllocator = true;
#elif defined(__has_feature)
#if __has_feature(address_sanitizer) || __has_feature(thread_sanitizer)
constexpr bool kSanitizerAllocator = true;
#else
constexpr bool kSanitizerAllocator = false;
#endif
#else
constexpr bool kSanitizerAllocator = false;
#endif

class Contracts : public PoolFixture {
protected:
    Contracts() : PoolFixture("contracts") {}

    // Two devices of 8 slots holding keys 0..n-1 (version 1).
    StorePtr open_filled(uint32_t n, std::vector<std::pair<std::string, std::string>> opts = {}) {
        StorePtr s = open_pool(2, 8, std::move(opts));
        if (!s)
            return s;
        for (uint32_t i = 0; i < n; ++i)
            if (put_key(s.get(), i, 1) != 0) {
                ADD_FAILURE() << "put " << i << ": " << daxkv_errmsg();
                return StorePtr();
            }
        return s;
    }

    // An item whose outputs hold garbage, as a caller's uninitialised array.
    static daxkv_lease_item garbage_item(const void *key, size_t key_len) {
        daxkv_lease_item it;
        std::memset(&it, 0xA5, sizeof it);
        it.key = key;
        it.key_len = key_len;
        return it;
    }

    // "" when every output of an item that holds no lease is NULL or 0.
    static std::string cleared(const daxkv_lease_item &it, size_t i) {
        if (it.lease || it.data || it.size || it.meta || it.meta_len || it.slot ||
            it.generation || it.offset || it.device_id)
            return "item " + std::to_string(i) + " (status " + std::to_string(it.status) +
                   ") holds no lease but has outputs set";
        return "";
    }

    static void release_items(std::vector<daxkv_lease_item> &items) {
        for (auto &it : items) {
            daxkv_lease_release(it.lease);
            it.lease = nullptr;
        }
    }
};

// ---------------------------------------------------------------------------
// daxkv_lease_batch

TEST_F(Contracts, LeaseBatchGivesEachItemWhatASingleLeaseWould) {
    StorePtr s = open_filled(4);
    ASSERT_TRUE(s);
    const std::string k0 = key_of(0), k1 = key_of(1), absent = "absent";
    const std::string too_long(DAXKV_KEY_MAX + 1, 'k');
    std::vector<daxkv_lease_item> items = {
        garbage_item(k0.data(), k0.size()),         // present
        garbage_item(absent.data(), absent.size()), // absent
        garbage_item(k0.data(), k0.size()),         // the same key again
        garbage_item(nullptr, 4),                   // NULL key
        garbage_item(k1.data(), 0),                 // empty key
        garbage_item(too_long.data(), too_long.size()),
        garbage_item(k1.data(), k1.size()),
    };
    const int want[] = {0, -ENOENT, 0, -EINVAL, -EINVAL, -EINVAL, 0};
    ASSERT_EQ(daxkv_lease_batch(s.get(), items.data(), items.size(), 0), 3) << daxkv_errmsg();
    for (size_t i = 0; i < items.size(); ++i) {
        EXPECT_EQ(items[i].status, want[i]) << "item " << i;
        if (items[i].status != 0) {
            EXPECT_EQ(cleared(items[i], i), "");
            continue;
        }
        // What the single-key calls say about the same lease.
        ASSERT_NE(items[i].lease, nullptr);
        EXPECT_EQ(items[i].data, daxkv_lease_data(items[i].lease));
        EXPECT_EQ(items[i].size, daxkv_lease_size(items[i].lease));
        size_t ml = 0;
        EXPECT_EQ(items[i].meta, daxkv_lease_meta(items[i].lease, &ml));
        EXPECT_EQ(items[i].meta_len, ml);
        daxkv_slot_info si;
        si.struct_size = sizeof si;
        ASSERT_EQ(daxkv_lease_slot(items[i].lease, &si), 0);
        EXPECT_EQ(items[i].slot, si.slot);
        EXPECT_EQ(items[i].generation, si.generation);
        EXPECT_EQ(items[i].offset, si.offset);
        EXPECT_EQ(items[i].device_id, si.device_id);
        const uint32_t id = i == 6 ? 1 : 0;
        EXPECT_EQ(check_versioned(id, items[i].data, items[i].size), "") << "item " << i;
    }
    EXPECT_NE(items[0].lease, items[2].lease) << "two items share one lease";
    EXPECT_EQ(items[0].data, items[2].data);
    EXPECT_EQ(get_stats(s.get()).leases_active, 3u);
    // Released in another order than taken, one at a time.
    daxkv_lease_release(items[2].lease);
    EXPECT_EQ(get_stats(s.get()).leases_active, 2u);
    EXPECT_EQ(check_versioned(0, items[0].data, items[0].size), "");
    daxkv_lease_release(items[6].lease);
    daxkv_lease_release(items[0].lease);
    EXPECT_EQ(get_stats(s.get()).leases_active, 0u);
    EXPECT_EQ(get_stats(s.get()).slots_leased, 0u);
}

TEST_F(Contracts, LeaseBatchPrefixStopsAtTheFirstItemNotLeased) {
    StorePtr s = open_filled(4);
    ASSERT_TRUE(s);
    const std::string k0 = key_of(0), k1 = key_of(1), absent = "absent";
    // The miss first: nothing leased, every item -ENOENT and cleared.
    std::vector<daxkv_lease_item> items = {garbage_item(absent.data(), absent.size()),
                                           garbage_item(k0.data(), k0.size()),
                                           garbage_item(k1.data(), k1.size())};
    EXPECT_EQ(daxkv_lease_batch(s.get(), items.data(), items.size(), DAXKV_PREFIX), 0);
    for (size_t i = 0; i < items.size(); ++i) {
        EXPECT_EQ(items[i].status, -ENOENT) << i;
        EXPECT_EQ(cleared(items[i], i), "");
    }
    // A bad key in the middle keeps its own status; the rest are -ENOENT.
    items = {garbage_item(k0.data(), k0.size()), garbage_item(nullptr, 3),
             garbage_item(k1.data(), k1.size())};
    EXPECT_EQ(daxkv_lease_batch(s.get(), items.data(), items.size(), DAXKV_PREFIX), 1);
    EXPECT_EQ(items[0].status, 0);
    EXPECT_EQ(items[1].status, -EINVAL);
    EXPECT_EQ(items[2].status, -ENOENT);
    EXPECT_EQ(cleared(items[1], 1), "");
    EXPECT_EQ(cleared(items[2], 2), "");
    EXPECT_EQ(get_stats(s.get()).leases_active, 1u);
    release_items(items);
    EXPECT_EQ(get_stats(s.get()).leases_active, 0u);
}

TEST_F(Contracts, LeaseBatchRefusedWholeLeavesTheItemsAndTheStoreAsTheyWere) {
    StorePtr s = open_filled(2);
    ASSERT_TRUE(s);
    const std::string k0 = key_of(0);
    daxkv_lease_item it = garbage_item(k0.data(), k0.size());
    const daxkv_lease_item before = it;
    EXPECT_EQ(daxkv_lease_batch(s.get(), &it, size_t(INT32_MAX) + 1, 0), -EINVAL);
    EXPECT_TRUE(contains_text(daxkv_errmsg(), "too large")) << daxkv_errmsg();
    EXPECT_EQ(std::memcmp(&it, &before, sizeof it), 0);
    EXPECT_EQ(daxkv_lease_batch(s.get(), &it, 1, DAXKV_PIN), -EINVAL);
    EXPECT_TRUE(contains_text(daxkv_errmsg(), "flags")) << daxkv_errmsg();
    EXPECT_EQ(std::memcmp(&it, &before, sizeof it), 0);
    EXPECT_EQ(daxkv_lease_batch(s.get(), nullptr, 1, 0), -EINVAL);
    EXPECT_TRUE(contains_text(daxkv_errmsg(), "items")) << daxkv_errmsg();
    EXPECT_EQ(daxkv_lease_batch(s.get(), nullptr, 0, 0), 0);
    EXPECT_EQ(daxkv_lease_batch(s.get(), &it, 0, DAXKV_PREFIX), 0);
    EXPECT_EQ(std::memcmp(&it, &before, sizeof it), 0);
    EXPECT_EQ(get_stats(s.get()).leases_active, 0u);
}

TEST_F(Contracts, LeaseBatchOfManyLeasesOfOneKey) {
    StorePtr s = open_filled(1);
    ASSERT_TRUE(s);
    const std::string k0 = key_of(0);
    std::vector<daxkv_lease_item> items(20000, garbage_item(k0.data(), k0.size()));
    ASSERT_EQ(daxkv_lease_batch(s.get(), items.data(), items.size(), DAXKV_PREFIX),
              static_cast<int>(items.size()))
        << daxkv_errmsg();
    EXPECT_EQ(get_stats(s.get()).leases_active, items.size());
    EXPECT_EQ(get_stats(s.get()).slots_leased, 1u);
    // Removed while leased: the key goes, its slot waits for the last lease
    // and its bytes stay as they were until then.
    EXPECT_EQ(daxkv_remove(s.get(), k0.data(), k0.size(), 0), 0) << daxkv_errmsg();
    EXPECT_EQ(get_stats(s.get()).slots_pending_free, 1u);
    const size_t half = items.size() / 2;
    for (size_t i = 0; i < half; ++i) {
        daxkv_lease_release(items[i].lease);
        items[i].lease = nullptr;
    }
    EXPECT_EQ(check_versioned(0, items[half].data, items[half].size), "");
    EXPECT_EQ(get_stats(s.get()).slots_pending_free, 1u);
    release_items(items);
    const struct daxkv_stats st = get_stats(s.get());
    EXPECT_EQ(st.leases_active, 0u);
    EXPECT_EQ(st.slots_pending_free, 0u);
    EXPECT_EQ(st.slots_used, 0u);
}

TEST_F(Contracts, LeaseBatchOfDrainingAndRemovedDevices) {
    StorePtr s = open_filled(8);
    ASSERT_TRUE(s);
    const std::vector<uint32_t> on0 = keys_on(s.get(), 8, 0), on1 = keys_on(s.get(), 8, 1);
    ASSERT_FALSE(on0.empty());
    ASSERT_FALSE(on1.empty());
    std::vector<std::string> keys;
    for (uint32_t i = 0; i < 8; ++i)
        keys.push_back(key_of(i));
    auto batch = [&] {
        std::vector<daxkv_lease_item> items;
        for (auto &k : keys)
            items.push_back(garbage_item(k.data(), k.size()));
        return items;
    };
    // Draining: still readable, so every key is leased.
    ASSERT_EQ(daxkv_device_remove(s.get(), paths_[0].c_str(), DAXKV_DRAIN, 0, nullptr), 0)
        << daxkv_errmsg();
    auto items = batch();
    EXPECT_EQ(daxkv_lease_batch(s.get(), items.data(), items.size(), 0), 8) << daxkv_errmsg();
    release_items(items);
    // Removed with its entries: those are -ENOENT, the rest leased.
    ASSERT_EQ(daxkv_device_remove(s.get(), paths_[0].c_str(), DAXKV_EVICT, 0, nullptr), 0)
        << daxkv_errmsg();
    items = batch();
    EXPECT_EQ(daxkv_lease_batch(s.get(), items.data(), items.size(), 0),
              static_cast<int>(on1.size()));
    for (uint32_t i : on0) {
        EXPECT_EQ(items[i].status, -ENOENT) << i;
        EXPECT_EQ(cleared(items[i], i), "");
    }
    for (uint32_t i : on1) {
        EXPECT_EQ(items[i].status, 0) << i;
        EXPECT_EQ(check_versioned(i, items[i].data, items[i].size), "");
    }
    release_items(items);
    EXPECT_EQ(get_stats(s.get()).leases_active, 0u);
}

TEST_F(Contracts, LeaseBatchAfterShutdownFailsWholeAndEveryItemSaysSo) {
    StorePtr s = open_filled(2);
    ASSERT_TRUE(s);
    const std::string k0 = key_of(0), k1 = key_of(1);
    std::vector<daxkv_lease_item> items = {garbage_item(k0.data(), k0.size()),
                                           garbage_item(k1.data(), k1.size())};
    ASSERT_EQ(daxkv_shutdown(s.get()), 0);
    EXPECT_EQ(daxkv_lease_batch(s.get(), items.data(), items.size(), 0), -ESHUTDOWN);
    EXPECT_TRUE(contains_text(daxkv_errmsg(), "shut down")) << daxkv_errmsg();
    for (size_t i = 0; i < items.size(); ++i) {
        EXPECT_EQ(items[i].status, -ESHUTDOWN);
        EXPECT_EQ(cleared(items[i], i), "");
    }
}

TEST_F(Contracts, LeaseBatchInAForkedChildIsEpermAndLeasesNothing) {
    if (!kForks)
        GTEST_SKIP() << "needs a forked child";
    StorePtr s = open_filled(2);
    ASSERT_TRUE(s);
    const std::string k0 = key_of(0), k1 = key_of(1);
    // A lease of the parent's, taken before the fork, let go of in the child.
    std::vector<daxkv_lease_item> held = {garbage_item(k1.data(), k1.size())};
    ASSERT_EQ(daxkv_lease_batch(s.get(), held.data(), 1, 0), 1);
    const std::string msg = child_check([&]() -> std::string {
        daxkv_lease_item it = garbage_item(k0.data(), k0.size());
        int rc = daxkv_lease_batch(s.get(), &it, 1, 0);
        if (rc != -EPERM)
            return "lease_batch in the child returned " + std::to_string(rc);
        if (!contains_text(daxkv_errmsg(), "forked"))
            return std::string("message: ") + daxkv_errmsg();
        daxkv_lease_release(held[0].lease);
        return "";
    });
    EXPECT_EQ(msg, "");
    // The parent's lease is the parent's still.
    EXPECT_EQ(get_stats(s.get()).leases_active, 1u);
    EXPECT_EQ(check_versioned(1, held[0].data, held[0].size), "");
    release_items(held);
    EXPECT_EQ(get_stats(s.get()).leases_active, 0u);
}

// ---------------------------------------------------------------------------
// daxkv_memcpy_batch

// Two ranges of one batch that write the same bytes, or one that writes what
// another reads, are copied on different threads in no set order: the bytes
// that land depend on the schedule. The call refuses such a batch whole.
TEST_F(Contracts, MemcpyRangesThatWriteWhatAnotherRangeTouchesAreRefused) {
    // Large enough that the ranges go to the worker pool, not one thread.
    const size_t n = 3 << 20;
    std::vector<uint8_t> a = pattern(11, 2 * n), b = pattern(12, 2 * n), c(2 * n, 0xEE);
    const std::vector<uint8_t> a0 = a, b0 = b, c0 = c;
    struct Case {
        const char *what;
        void *dst[2];
        const void *src[2];
        size_t len[2];
    };
    const Case cases[] = {
        // Both write the same destination.
        {"same destination", {c.data(), c.data()}, {a.data(), b.data()}, {n, n}},
        // Destinations that share their last and first byte.
        {"destinations overlap by one byte", {c.data(), c.data() + n - 1}, {a.data(), b.data()},
         {n, n}},
        // Range 1 writes what range 0 reads.
        {"destination overlaps another's source", {c.data(), a.data() + 7}, {a.data(), b.data()},
         {n, n}},
        // Range 0 writes what range 1 reads.
        {"source overlaps another's destination", {a.data() + n, c.data()}, {b.data(), a.data() + n + 5},
         {n, n}},
    };
    for (const Case &cs : cases) {
        EXPECT_EQ(daxkv_memcpy_batch(cs.dst, cs.src, cs.len, 2, 0), -EINVAL) << cs.what;
        EXPECT_TRUE(contains_text(daxkv_errmsg(), "overlap")) << cs.what << ": " << daxkv_errmsg();
        EXPECT_TRUE(a == a0 && b == b0 && c == c0) << cs.what << ": a refused batch copied";
    }
    // What is not a conflict: one source read by two ranges, a range that
    // overlaps itself (memmove), and ranges that touch without sharing a byte.
    void *d[3] = {c.data(), c.data() + n, a.data() + 1};
    const void *s[3] = {b.data(), b.data(), a.data()};
    size_t len[3] = {n, n, n};
    ASSERT_EQ(daxkv_memcpy_batch(d, s, len, 3, 0), 0) << daxkv_errmsg();
    EXPECT_EQ(std::memcmp(c.data(), b0.data(), n), 0);
    EXPECT_EQ(std::memcmp(c.data() + n, b0.data(), n), 0);
    EXPECT_EQ(std::memcmp(a.data() + 1, a0.data(), n), 0);
    // Zero lengths conflict with nothing, whatever their pointers.
    void *dz[3] = {c.data(), c.data(), nullptr};
    const void *sz[3] = {b.data(), c.data(), nullptr};
    size_t lz[3] = {16, 0, 0};
    EXPECT_EQ(daxkv_memcpy_batch(dz, sz, lz, 3, 0), 0) << daxkv_errmsg();
}

TEST_F(Contracts, MemcpyIntoAndOutOfTheArenaItself) {
    StorePtr s = open_filled(2);
    ASSERT_TRUE(s);
    const std::string k0 = key_of(0);
    daxkv_lease *l = nullptr;
    ASSERT_EQ(daxkv_lease_acquire(s.get(), k0.data(), k0.size(), &l), 0);
    const size_t len = daxkv_lease_size(l);
    daxkv_reservation *r = nullptr;
    ASSERT_EQ(daxkv_reserve(s.get(), "copy", 4, len, &r), 0) << daxkv_errmsg();
    // Arena to arena, and the same arena bytes back onto themselves.
    void *d[2] = {daxkv_reservation_data(r), const_cast<void *>(daxkv_lease_data(l))};
    const void *src[2] = {daxkv_lease_data(l), daxkv_lease_data(l)};
    size_t ln[2] = {len, 0};
    ASSERT_EQ(daxkv_memcpy_batch(d, src, ln, 2, 0), 0) << daxkv_errmsg();
    // The lease's bytes as the destination of one range and the source of
    // another: refused, the entry unchanged.
    std::vector<uint8_t> other(len, 0x5A);
    void *d2[2] = {const_cast<void *>(daxkv_lease_data(l)), other.data()};
    const void *s2[2] = {other.data(), daxkv_lease_data(l)};
    size_t l2[2] = {len, len};
    EXPECT_EQ(daxkv_memcpy_batch(d2, s2, l2, 2, 0), -EINVAL);
    EXPECT_EQ(check_versioned(0, daxkv_lease_data(l), len), "");
    daxkv_lease_release(l);
    ASSERT_EQ(daxkv_commit(r), 0) << daxkv_errmsg();
    std::vector<uint8_t> back(kSlot);
    size_t got = 0;
    ASSERT_EQ(daxkv_get(s.get(), "copy", 4, back.data(), back.size(), &got), 0);
    EXPECT_EQ(check_versioned(0, back.data(), got), "");
    EXPECT_EQ(check_key(s.get(), 0, 1), "");
}

// A count no array could have (its pointers would outrun the address
// space) is a bad argument, and one the library cannot hold its work for is
// out of memory: never an "internal error" -EIO, and nothing read past the
// arrays' first entries or copied.
TEST_F(Contracts, MemcpyCountsNoArrayCouldHave) {
    char a[8] = {1, 2, 3, 4, 5, 6, 7, 8}, b[8] = {};
    void *d[1] = {b};
    const void *s[1] = {a};
    size_t len[1] = {0};
    for (size_t n : {SIZE_MAX, SIZE_MAX / sizeof(void *) + 1}) {
        EXPECT_EQ(daxkv_memcpy_batch(d, s, len, n, 0), -EINVAL) << n;
        EXPECT_TRUE(contains_text(daxkv_errmsg(), "n ")) << daxkv_errmsg();
    }
    std::vector<size_t> too_many = {SIZE_MAX / sizeof(void *), size_t(1) << 58};
    // One the allocator is asked for and refuses: AddressSanitizer and
    // ThreadSanitizer end the process there instead of letting it fail.
    if (!kSanitizerAllocator)
        too_many.push_back(size_t(1) << 50);
    for (size_t n : too_many) {
        EXPECT_EQ(daxkv_memcpy_batch(d, s, len, n, 0), -ENOMEM) << n << ": " << daxkv_errmsg();
        EXPECT_TRUE(contains_text(daxkv_errmsg(), "out of memory")) << daxkv_errmsg();
    }
    EXPECT_EQ(b[0], 0);
}

// ---------------------------------------------------------------------------
// Configuration

// A message that may be logged or shown: no raw control byte in it.
std::string raw_control_byte(const char *msg) {
    for (const char *p = msg; *p; ++p) {
        const auto ch = static_cast<unsigned char>(*p);
        if (ch < 0x20 || ch == 0x7f)
            return std::string("raw byte ") + std::to_string(ch) + " in '" + msg + "'";
    }
    return "";
}

TEST_F(Contracts, SizesPastSixtyFourBitsAndNumbersThatAreNotSizes) {
    ConfigPtr cfg = config({}, {});
    const char *sizes[] = {"16EiB", "16E", "17179869184GiB", "16777216TiB", "18446744073709551616",
                           "18446744073709551615K", "1e30", "-1MiB", "0x10", "1.5MiB", "NaN",
                           "inf", "+4096", "4096\n", "４０９６", "MiB", "1 MiB"};
    for (const char *key : {"slot_bytes", "meta_bytes", "grow_limit", "cuda_register_chunk",
                            "cuda_staging_bytes"}) {
        for (const char *v : sizes) {
            EXPECT_EQ(daxkv_config_set(cfg.get(), key, v), -EINVAL) << key << "=" << v;
            EXPECT_TRUE(contains_text(daxkv_errmsg(), key)) << daxkv_errmsg();
            EXPECT_EQ(raw_control_byte(daxkv_errmsg()), "");
        }
    }
    for (const char *key : {"workers", "stats_interval"})
        for (const char *v : {"18446744073709551616", "-1", "1.0", "1e3", "0x10", "", "1K"})
            EXPECT_EQ(daxkv_config_set(cfg.get(), key, v), -EINVAL) << key << "=" << v;
    // Every key refuses the empty string, naming itself.
    for (const char *key : {"slot_bytes", "eviction", "durability", "on_mismatch", "workers",
                            "meta_bytes", "verify", "hotplug", "create", "nt_stores",
                            "cuda_register_chunk", "cuda_staging_bytes", "placement", "numa",
                            "sigbus", "grow_limit", "capacity", "stats_interval"}) {
        EXPECT_EQ(daxkv_config_set(cfg.get(), key, ""), -EINVAL) << key;
        EXPECT_TRUE(contains_text(daxkv_errmsg(), key)) << daxkv_errmsg();
    }
    // The largest size that fits is taken where the key allows it.
    EXPECT_EQ(daxkv_config_set(cfg.get(), "grow_limit", "64TiB"), 0) << daxkv_errmsg();
    EXPECT_EQ(daxkv_config_set(cfg.get(), "grow_limit", "65537GiB"), -EINVAL);
}

// JSON members of every daxkv_config_set key with values of the wrong JSON
// type: each is -EINVAL, with a message that names the member and says what
// it wanted (a number that is not an integer is not "not a number").
TEST_F(Contracts, JsonMembersOfTheWrongTypeNameTheMemberAndTheProblem) {
    const std::string p = dir_.file("json-dev");
    const std::string head = "{\"slot_bytes\": 4096, \"device_path\": \"" + p +
                             "\", \"max_dax_size_gb\": 0.01, ";
    struct Case {
        std::string member;
        std::string value;
        const char *what; // also in the message
    };
    const Case cases[] = {
        {"workers", "2.5", "integer"},
        {"workers", "1e2", "integer"},
        {"meta_bytes", "256.0", "integer"},
        {"stats_interval", "-1", "stats_interval"},
        {"stats_interval", "18446744073709551616", "stats_interval"},
        {"grow_limit", "1.5", "integer"},
        {"cuda_staging_bytes", "[1048576]", "cuda_staging_bytes"},
        {"cuda_register_chunk", "{\"v\": 4096}", "cuda_register_chunk"},
        {"hotplug", "null", "hotplug"},
        {"durability", "true", "durability"},
        {"slot_bytes", "4096.5", "slot_bytes"},
        {"num_load_workers", "0.5", "num_load_workers"},
        {"num_load_workers", "-3", "num_load_workers"},
        {"hotplug_enabled", "\"yes\"", "hotplug_enabled"},
        {"type", "\"\"", "type"},
    };
    for (const Case &c : cases) {
        std::string json = head + "\"" + c.member + "\": " + c.value + "}";
        if (c.member == "slot_bytes") // not twice: that is refused for being twice
            json = "{\"slot_bytes\": " + c.value + ", \"device_path\": \"" + p +
                   "\", \"max_dax_size_gb\": 0.01}";
        daxkv_config *cfg = reinterpret_cast<daxkv_config *>(this);
        EXPECT_EQ(daxkv_config_from_json(&cfg, json.c_str()), -EINVAL) << json;
        EXPECT_EQ(cfg, nullptr);
        daxkv_config_free(cfg == reinterpret_cast<daxkv_config *>(this) ? nullptr : cfg);
        EXPECT_TRUE(contains_text(daxkv_errmsg(), c.member)) << json << ": " << daxkv_errmsg();
        EXPECT_TRUE(contains_text(daxkv_errmsg(), c.what)) << json << ": " << daxkv_errmsg();
    }
    // An unknown member with a newline in its name and a value no key
    // takes: the message shows the name escaped.
    for (const char *value : {"[1]", "0.5", "null"}) {
        const std::string json = head + "\"bad\\nkey\": " + value + "}";
        daxkv_config *cfg = nullptr;
        EXPECT_EQ(daxkv_config_from_json(&cfg, json.c_str()), -EINVAL) << json;
        EXPECT_TRUE(contains_text(daxkv_errmsg(), "bad\\x0akey")) << daxkv_errmsg();
        EXPECT_EQ(raw_control_byte(daxkv_errmsg()), "");
        daxkv_config_free(cfg);
    }
    EXPECT_TRUE(list_dir(dir_.path()).empty()) << "a refused configuration created a file";
}

// A JSON boolean is a boolean: for hotplug and create it is the switch,
// for a key that takes a number or a word it is refused (eviction that is
// not a string is LMCache's option, accepted and ignored) (true was taken
// as 1: "meta_bytes": true asked for one byte of metadata, and
// "stats_interval": false turned the publication off).
TEST_F(Contracts, JsonBooleansGoOnlyWhereABooleanGoes) {
    const std::string p = dir_.file("json-dev");
    const std::string head = "{\"slot_bytes\": 4096, \"device_path\": \"" + p +
                             "\", \"max_dax_size_gb\": 0.01, ";
    for (const char *key : {"meta_bytes", "stats_interval", "workers", "grow_limit",
                            "cuda_register_chunk", "cuda_staging_bytes", "durability", "verify", "on_mismatch", "nt_stores", "placement",
                            "numa", "sigbus", "capacity"}) {
        for (const char *value : {"true", "false"}) {
            const std::string json = head + "\"" + key + "\": " + value + "}";
            daxkv_config *cfg = nullptr;
            EXPECT_EQ(daxkv_config_from_json(&cfg, json.c_str()), -EINVAL) << json;
            EXPECT_TRUE(contains_text(daxkv_errmsg(), key)) << json << ": " << daxkv_errmsg();
            daxkv_config_free(cfg);
        }
    }
    for (const char *key : {"hotplug", "create", "hotplug_enabled"}) {
        for (const char *value : {"true", "false"}) {
            const std::string json = head + "\"" + key + "\": " + value + "}";
            daxkv_config *cfg = nullptr;
            EXPECT_EQ(daxkv_config_from_json(&cfg, json.c_str()), 0) << json << daxkv_errmsg();
            daxkv_config_free(cfg);
        }
    }
}

// A device path is the caller's bytes: a message that names it (a path
// given twice, an arena that holds no slot) shows them as the key and
// value messages do, never a raw newline or escape sequence.
TEST_F(Contracts, MessagesNamingADevicePathCarryNoRawControlBytes) {
    const std::string p = dir_.file("evil\nline\x1b[31m");
    ConfigPtr cfg = config({}, {});
    ASSERT_EQ(daxkv_config_add_device(cfg.get(), p.c_str(), 1 << 20), 0);
    EXPECT_EQ(daxkv_config_add_device(cfg.get(), p.c_str(), 1 << 20), -EINVAL);
    EXPECT_TRUE(contains_text(daxkv_errmsg(), "already")) << daxkv_errmsg();
    EXPECT_EQ(raw_control_byte(daxkv_errmsg()), "");
    std::string esc = "evil\\nline\\u001b[31m";
    const std::string json = "{\"slot_bytes\": 1073741824, \"device_path\": \"" + dir_.path() +
                             "/" + esc + "\", \"max_dax_size_gb\": 0.5}";
    daxkv_config *out = nullptr;
    EXPECT_EQ(daxkv_config_from_json(&out, json.c_str()), -EINVAL);
    EXPECT_TRUE(contains_text(daxkv_errmsg(), "one slot")) << daxkv_errmsg();
    EXPECT_EQ(raw_control_byte(daxkv_errmsg()), "");
    const std::string json2 = "{\"slot_bytes\": 4096, \"devices\": [{\"device_path\": \"" +
                              dir_.path() + "/" + esc + "\", \"max_dax_size_gb\": 0.01}, " +
                              "{\"device_path\": \"" + dir_.path() + "/" + esc +
                              "\", \"max_dax_size_gb\": 0.01}]}";
    EXPECT_EQ(daxkv_config_from_json(&out, json2.c_str()), -EINVAL);
    EXPECT_TRUE(contains_text(daxkv_errmsg(), "already")) << daxkv_errmsg();
    EXPECT_EQ(raw_control_byte(daxkv_errmsg()), "");
    // Opening it: the file cannot be created under a name that is not
    // there, and the message says so without the raw bytes.
    ConfigPtr open_cfg = config({{"create", "0"}}, {{p, 1 << 20}});
    daxkv_store *st = nullptr;
    EXPECT_EQ(daxkv_open(&st, open_cfg.get()), -ENOENT);
    EXPECT_EQ(raw_control_byte(daxkv_errmsg()), "");
    EXPECT_EQ(st, nullptr);
    // A failed add logs its cause with the path: escaped there too.
    StorePtr pool = open_pool(1, 8, {{"create", "0"}});
    ASSERT_TRUE(pool);
    LogCapture log;
    EXPECT_EQ(daxkv_device_add(pool.get(), p.c_str(), dev_bytes_for(8)), -ENOENT);
    EXPECT_EQ(raw_control_byte(daxkv_errmsg()), "");
    EXPECT_TRUE(LogCapture::logged("evil\\x0aline\\x1b[31m")) << "the cause was not logged";
    EXPECT_FALSE(LogCapture::logged("\n")) << "a raw newline was logged";
    EXPECT_FALSE(LogCapture::logged("\x1b")) << "a raw escape was logged";
}

// ---------------------------------------------------------------------------
// Reservations

TEST_F(Contracts, ReservationsEndedByAForcedRemoveShutdownOrCloseCommitNothing) {
    StorePtr s = open_filled(0);
    ASSERT_TRUE(s);
    auto v = val(7);
    auto reserve = [&](const char *k) {
        daxkv_reservation *r = nullptr;
        EXPECT_EQ(daxkv_reserve(s.get(), k, std::strlen(k), v.size(), &r), 0) << daxkv_errmsg();
        if (r)
            std::memcpy(daxkv_reservation_data(r), v.data(), v.size());
        return r;
    };
    // The key removed with force while reserved: -ECANCELED, nothing there.
    daxkv_reservation *r = reserve("forced");
    ASSERT_NE(r, nullptr);
    EXPECT_EQ(daxkv_remove(s.get(), "forced", 6, 0), -EBUSY);
    EXPECT_EQ(daxkv_remove(s.get(), "forced", 6, DAXKV_FORCE), 0) << daxkv_errmsg();
    EXPECT_EQ(daxkv_commit(r), -ECANCELED);
    EXPECT_EQ(daxkv_contains(s.get(), "forced", 6), 0);
    EXPECT_EQ(get_stats(s.get()).slots_inflight, 0u);
    // Committed on another thread than the one that reserved it.
    r = reserve("thread");
    ASSERT_NE(r, nullptr);
    int rc = 1;
    std::thread([&] { rc = daxkv_commit(r); }).join();
    EXPECT_EQ(rc, 0) << daxkv_errmsg();
    EXPECT_EQ(daxkv_contains(s.get(), "thread", 6), 1);
    // Metadata one byte above meta_bytes: -E2BIG, the metadata set before
    // is what commits.
    r = reserve("meta");
    ASSERT_NE(r, nullptr);
    std::vector<uint8_t> meta(257, 0x33);
    EXPECT_EQ(daxkv_reservation_set_meta(r, meta.data(), 16), 0);
    EXPECT_EQ(daxkv_reservation_set_meta(r, meta.data(), meta.size()), -E2BIG);
    EXPECT_TRUE(contains_text(daxkv_errmsg(), "meta_bytes")) << daxkv_errmsg();
    EXPECT_EQ(daxkv_reservation_set_meta(r, nullptr, 1), -EINVAL);
    ASSERT_EQ(daxkv_commit(r), 0) << daxkv_errmsg();
    daxkv_lease *l = nullptr;
    ASSERT_EQ(daxkv_lease_acquire(s.get(), "meta", 4, &l), 0);
    size_t ml = 0;
    const void *m = daxkv_lease_meta(l, &ml);
    EXPECT_EQ(ml, 16u);
    EXPECT_TRUE(m && std::memcmp(m, meta.data(), 16) == 0);
    daxkv_lease_release(l);
    // reserve_meta with too much metadata reserves nothing.
    void *data = this;
    r = reinterpret_cast<daxkv_reservation *>(this);
    EXPECT_EQ(daxkv_reserve_meta(s.get(), "big", 3, 8, meta.data(), meta.size(), &data, &r),
              -E2BIG);
    EXPECT_EQ(r, nullptr);
    EXPECT_EQ(data, nullptr);
    EXPECT_EQ(get_stats(s.get()).slots_inflight, 0u);
    // Shutdown between reserve and commit: -ESHUTDOWN, the slot back, and a
    // reservation aborted after shutdown likewise.
    daxkv_reservation *late = reserve("late");
    daxkv_reservation *dropped = reserve("dropped");
    ASSERT_TRUE(late && dropped);
    const uint64_t used = get_stats(s.get()).slots_used;
    ASSERT_EQ(daxkv_shutdown(s.get()), 0);
    EXPECT_EQ(daxkv_commit(late), -ESHUTDOWN);
    EXPECT_TRUE(contains_text(daxkv_errmsg(), "shut down")) << daxkv_errmsg();
    daxkv_abort(dropped);
    struct daxkv_stats st;
    st.struct_size = sizeof st;
    if (daxkv_stats(s.get(), &st) == 0) {
        EXPECT_EQ(st.slots_inflight, 0u);
        EXPECT_EQ(st.slots_used, used - 2);
    }
    // Closed with a reservation open: it keeps the mapping alive until it
    // ends, and it commits nothing.
    StorePtr s2 = open_pool(1, 8);
    ASSERT_TRUE(s2);
    daxkv_reservation *orphan = nullptr;
    ASSERT_EQ(daxkv_reserve(s2.get(), "orphan", 6, v.size(), &orphan), 0);
    s2.reset();
    std::memcpy(daxkv_reservation_data(orphan), v.data(), v.size());
    EXPECT_EQ(daxkv_commit(orphan), -ESHUTDOWN);
}

// ---------------------------------------------------------------------------
// Status and statistics

// The peek calls read what a store publishes, with the two-call sizing of
// the store's own text calls; tried with NULL and one-byte buffers, a
// buffer one byte short, NULL needed, struct sizes 8, 13 and above the
// struct, a path with a newline, and the path of no store.
TEST_F(Contracts, PeekCallsAtEveryBufferSize) {
    StorePtr s = open_filled(3);
    ASSERT_TRUE(s);
    const char *path = paths_[0].c_str();
    using PeekText = int (*)(const char *, char *, size_t, size_t *);
    for (PeekText call : {daxkv_status_peek, daxkv_stats_prometheus_peek}) {
        size_t need = 0;
        ASSERT_EQ(call(path, nullptr, 0, &need), -ENOBUFS) << daxkv_errmsg();
        ASSERT_GT(need, 1u);
        EXPECT_EQ(call(path, nullptr, 0, nullptr), -ENOBUFS);
        EXPECT_EQ(call(path, nullptr, 5, &need), -EINVAL);
        char one = '#';
        EXPECT_EQ(call(path, &one, 1, nullptr), -ENOBUFS);
        EXPECT_EQ(one, '#');
        // The page may be published again between the calls: a size that
        // was enough may have grown, never by much.
        std::string buf(need + 4096, '#');
        size_t got = 0;
        ASSERT_EQ(call(path, &buf[0], buf.size(), &got), 0) << daxkv_errmsg();
        EXPECT_EQ(std::strlen(buf.c_str()) + 1, got);
        if (call == daxkv_status_peek) {
            EXPECT_TRUE(json::accept(buf.c_str()));
        }
        std::string short_buf(got - 1, '#');
        const int rc = call(path, &short_buf[0], short_buf.size(), &need);
        if (rc == -ENOBUFS) {
            EXPECT_EQ(short_buf, std::string(got - 1, '#')) << "written on -ENOBUFS";
        }
        EXPECT_EQ(call("/nonexistent/contracts", &buf[0], buf.size(), &got), -ENOENT);
        EXPECT_EQ(call("", &buf[0], buf.size(), &got), -EINVAL);
        EXPECT_EQ(call(nullptr, &buf[0], buf.size(), &got), -EINVAL);
        const std::string odd = dir_.file("no\nstore");
        EXPECT_EQ(call(odd.c_str(), &buf[0], buf.size(), &got), -ENOENT);
        EXPECT_EQ(raw_control_byte(daxkv_errmsg()), "");
    }
    struct Padded {
        struct daxkv_stats st;
        uint8_t tail[64];
    } p;
    for (uint32_t size : {8u, 13u, static_cast<uint32_t>(sizeof p.st),
                          static_cast<uint32_t>(sizeof p)}) {
        std::memset(&p, 0xCD, sizeof p);
        p.st.struct_size = size;
        ASSERT_EQ(daxkv_stats_peek(path, &p.st), 0) << size << ": " << daxkv_errmsg();
        EXPECT_EQ(p.st.struct_size, size);
        const auto *bytes = reinterpret_cast<const uint8_t *>(&p);
        for (size_t i = std::min<size_t>(size, sizeof p.st); i < sizeof p; ++i)
            ASSERT_EQ(bytes[i], 0xCD) << "struct_size " << size << ": byte " << i << " written";
    }
    EXPECT_EQ(p.st.devices, 2u);
    p.st.struct_size = 4;
    EXPECT_EQ(daxkv_stats_peek(path, &p.st), -EINVAL);
    EXPECT_EQ(daxkv_stats_peek(path, nullptr), -EINVAL);
    EXPECT_EQ(daxkv_stats_peek(nullptr, &p.st), -EINVAL);
    // Gone with the store.
    p.st.struct_size = sizeof p.st;
    s.reset();
    EXPECT_EQ(daxkv_stats_peek(path, &p.st), -ENOENT);
}

// A value that fails its checksum (verify=read) fails its own item with
// -EIO, its outputs cleared and its entry dropped; the batch leases the
// others, and with DAXKV_PREFIX stops there.
TEST_F(Contracts, LeaseBatchItemThatFailsItsChecksum) {
    StorePtr s = open_filled(4, {{"verify", "read"}});
    ASSERT_TRUE(s);
    const std::vector<uint32_t> on0 = keys_on(s.get(), 4, 0);
    ASSERT_FALSE(on0.empty());
    const uint32_t bad = on0[0];
    {
        // Flip a byte of the value in the file, behind the store's back.
        const std::string k = key_of(bad);
        daxkv_lease *l = nullptr;
        ASSERT_EQ(daxkv_lease_acquire(s.get(), k.data(), k.size(), &l), 0);
        daxkv_slot_info si;
        si.struct_size = sizeof si;
        ASSERT_EQ(daxkv_lease_slot(l, &si), 0);
        daxkv_device_layout lay;
        lay.struct_size = sizeof lay;
        ASSERT_EQ(daxkv_device_describe(s.get(), paths_[0].c_str(), &lay), 0) << daxkv_errmsg();
        daxkv_lease_release(l);
        FileMap fm(paths_[0]);
        ASSERT_TRUE(fm.ok());
        fm.base()[lay.data_offset + si.offset + 100] ^= 0xFF;
    }
    std::vector<std::string> keys;
    for (uint32_t i = 0; i < 4; ++i)
        keys.push_back(key_of(i));
    std::vector<daxkv_lease_item> items;
    for (auto &k : keys)
        items.push_back(garbage_item(k.data(), k.size()));
    std::swap(items[0], items[bad]); // the bad one first
    std::swap(keys[0], keys[bad]);
    EXPECT_EQ(daxkv_lease_batch(s.get(), items.data(), items.size(), DAXKV_PREFIX), 0);
    EXPECT_EQ(items[0].status, -EIO);
    for (size_t i = 0; i < items.size(); ++i) {
        if (i > 0) {
            EXPECT_EQ(items[i].status, -ENOENT) << i;
        }
        EXPECT_EQ(cleared(items[i], i), "");
    }
    // Dropped: a miss now, and the others lease.
    EXPECT_EQ(daxkv_lease_batch(s.get(), items.data(), items.size(), 0), 3);
    EXPECT_EQ(items[0].status, -ENOENT);
    EXPECT_EQ(get_stats(s.get()).verify_failures, 1u);
    release_items(items);
    EXPECT_EQ(get_stats(s.get()).leases_active, 0u);
}

TEST_F(Contracts, TextOutputsOfEverySizeWhileThePoolChanges) {
    StorePtr s = open_filled(4);
    ASSERT_TRUE(s);
    using TextCall = int (*)(daxkv_store *, char *, size_t, size_t *);
    const struct {
        const char *name;
        TextCall call;
    } calls[] = {{"status_json", daxkv_status_json},
                 {"stats_prometheus", daxkv_stats_prometheus},
                 {"pool_status_json", daxkv_pool_status_json}};
    std::atomic<bool> stop{false};
    const std::string extra = dir_.file("contracts-extra");
    std::atomic<int> changes{0};
    std::thread changer([&] {
        while (!stop.load()) {
            if (daxkv_device_add(s.get(), extra.c_str(), dev_bytes_for(4)) == 0 &&
                daxkv_device_remove(s.get(), extra.c_str(), DAXKV_MIGRATE, DAXKV_FORCE,
                                    nullptr) == 0)
                changes++;
        }
    });
    for (int round = 0; round < 200; ++round) {
        for (const auto &c : calls) {
            // The size query: NULL with cap 0, with and without needed.
            size_t need = 0;
            ASSERT_EQ(c.call(s.get(), nullptr, 0, &need), -ENOBUFS) << c.name;
            ASSERT_GT(need, 1u) << c.name;
            EXPECT_EQ(c.call(s.get(), nullptr, 0, nullptr), -ENOBUFS) << c.name;
            // A buffer one byte short, and of one byte: untouched.
            std::string small(need - 1, '#');
            size_t need2 = 0;
            const int rc = c.call(s.get(), &small[0], small.size(), &need2);
            if (rc == -ENOBUFS) {
                EXPECT_EQ(small, std::string(need - 1, '#')) << c.name << ": written on -ENOBUFS";
            } else {
                // The text shrank meanwhile (the extra device went): it fits.
                EXPECT_EQ(rc, 0) << c.name;
                EXPECT_EQ(std::strlen(small.c_str()) + 1, need2) << c.name;
            }
            char one = '#';
            EXPECT_EQ(c.call(s.get(), &one, 1, nullptr), -ENOBUFS) << c.name;
            EXPECT_EQ(one, '#') << c.name;
            // Enough room: the text, its NUL, and *needed its size.
            std::string big(need + 4096, '#');
            ASSERT_EQ(c.call(s.get(), &big[0], big.size(), &need2), 0) << c.name << daxkv_errmsg();
            EXPECT_EQ(std::strlen(big.c_str()) + 1, need2) << c.name;
            if (c.call != daxkv_stats_prometheus) {
                EXPECT_TRUE(json::accept(big.c_str())) << c.name;
            }
        }
        // daxkv_stats with the smallest size, one that ends inside a member,
        // and one larger than the struct: the bytes past it untouched.
        struct Padded {
            struct daxkv_stats st;
            uint8_t tail[64];
        } p;
        for (uint32_t size : {8u, 13u, static_cast<uint32_t>(sizeof p.st),
                              static_cast<uint32_t>(sizeof p)}) {
            std::memset(&p, 0xCD, sizeof p);
            p.st.struct_size = size;
            ASSERT_EQ(daxkv_stats(s.get(), &p.st), 0) << size;
            EXPECT_EQ(p.st.struct_size, size);
            const auto *bytes = reinterpret_cast<const uint8_t *>(&p);
            const size_t written = std::min<size_t>(size, sizeof p.st);
            for (size_t i = written; i < sizeof p; ++i)
                ASSERT_EQ(bytes[i], 0xCD) << "struct_size " << size << ": byte " << i << " written";
        }
    }
    stop = true;
    changer.join();
    EXPECT_GT(changes.load(), 0) << "the pool never changed: " << daxkv_errmsg();
    for (uint32_t i = 0; i < 4; ++i)
        EXPECT_EQ(check_key(s.get(), i, 1), "");
}

} // namespace
