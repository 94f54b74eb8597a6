// Single-key operations, LRU eviction, pins, statistics, status JSON,
// versions, error strings and daxkv_memcpy_batch, through the C API.
//
// Bad inputs tried here, each with its expected code:
//   NULL store for every function                                -> -EINVAL
//   NULL key; NULL value with a length; NULL dst with a capacity  -> -EINVAL
//   key length 0 and 513 (512 is fine)                           -> -EINVAL
//   value larger than slot_bytes                                 -> -E2BIG, nothing stored
//   (every refused put, reservation and batch item counts in puts_failed)
//   destination smaller than the value                           -> -ENOBUFS, length reported
//   unknown flags to put / remove                                -> -EINVAL
//   put into a full arena with eviction=none, or all pinned      -> -ENOSPC
//   remove of a pinned key without DAXKV_FORCE                   -> -EBUSY
//   unpin of an unpinned key / of a missing key                  -> -ENOENT
//   stats with struct_size too small; NULL stats out             -> -EINVAL
//   status_json: buffer too small / NULL buffer with capacity    -> -ENOBUFS / -EINVAL
//   memcpy_batch: NULL arrays, NULL range with a length, flags   -> -EINVAL
//   a payload corrupted in place under verify=read               -> -EIO, entry dropped
//   a metadata byte written over under verify=read (get_batch, lease,
//   lease_batch, cursor)                                          -> -EIO / left out
#include <gtest/gtest.h>

#include <algorithm>
#include <atomic>
#include <cerrno>
#include <condition_variable>
#include <cstring>
#include <mutex>
#include <set>
#include <string>
#include <thread>
#include <vector>

#include <nlohmann/json.hpp>

#include "helpers.hpp"
#include "store/events.hpp"

using namespace daxkv_test;

namespace {

class Store : public StoreFixture {};

std::vector<uint8_t> v1(size_t n = 1000) { return pattern(1, n); }
std::vector<uint8_t> v2(size_t n = 1000) { return pattern(2, n); }

} // namespace

// ---------------------------------------------------------------------------
// Round trips and put variants

TEST_F(Store, PutGetRoundTripIsByteExact) {
    open();
    for (size_t len : {size_t(1), size_t(7), size_t(64), size_t(1000), size_t(4095)}) {
        std::string k = "rt-" + std::to_string(len);
        std::vector<uint8_t> v = pattern(len, len);
        ASSERT_EQ(put(k, v), 0) << daxkv_errmsg();
        std::vector<uint8_t> buf(8192, 0xAA);
        size_t out = 0;
        ASSERT_EQ(daxkv_get(s(), k.data(), k.size(), buf.data(), buf.size(), &out), 0);
        EXPECT_EQ(out, len);
        EXPECT_EQ(0, std::memcmp(buf.data(), v.data(), len));
        // Nothing written past the value.
        EXPECT_TRUE(std::all_of(buf.begin() + long(len), buf.end(),
                                [](uint8_t b) { return b == 0xAA; }));
        EXPECT_EQ(remove(k), 0);
    }
}

TEST_F(Store, ValueOfExactlySlotBytesAndEmptyValue) {
    open({4096, 2});
    std::vector<uint8_t> full = pattern(9, 4096);
    ASSERT_EQ(put("full", full), 0);
    EXPECT_EQ(value("full"), full);
    ASSERT_EQ(daxkv_put(s(), "empty", 5, nullptr, 0, 0), 0) << daxkv_errmsg();
    size_t len = 99;
    char dst[1];
    EXPECT_EQ(daxkv_get(s(), "empty", 5, dst, 0, &len), 0);
    EXPECT_EQ(len, 0u);
    EXPECT_EQ(contains("empty"), 1);
}

TEST_F(Store, ExistingKeyReturnsExistedAndWritesNothing) {
    open();
    ASSERT_EQ(put("k", v1()), 0);
    EXPECT_EQ(put("k", v2(500)), DAXKV_EXISTED);
    EXPECT_EQ(value("k"), v1());
    struct daxkv_stats st = stats();
    EXPECT_EQ(st.puts, 1u);
    EXPECT_EQ(st.puts_existed, 1u);
    EXPECT_EQ(st.entries, 1u);
    EXPECT_EQ(st.slots_used, 1u);
    EXPECT_EQ(st.bytes_written, 1000u);
}

TEST_F(Store, ReplaceOverwritesAndFreesTheOldSlot) {
    open({4096, 2});
    ASSERT_EQ(put("k", v1()), 0);
    ASSERT_EQ(put("k", v2(3000), DAXKV_REPLACE), 0) << daxkv_errmsg();
    EXPECT_EQ(value("k"), v2(3000));
    // Replace again and again in a 2-slot arena: the old version's slot
    // always comes back.
    for (int i = 0; i < 5; ++i)
        ASSERT_EQ(put("k", pattern(100 + i, 2000), DAXKV_REPLACE), 0) << i;
    EXPECT_EQ(value("k"), pattern(104, 2000));
    struct daxkv_stats st = stats();
    EXPECT_EQ(st.entries, 1u);
    EXPECT_EQ(st.slots_used, 1u);
    EXPECT_EQ(st.evictions, 0u);
    // REPLACE of a missing key is a plain put.
    EXPECT_EQ(put("new", v1(), DAXKV_REPLACE), 0);
    EXPECT_EQ(value("new"), v1());
}

TEST_F(Store, PinsBelongToTheKeyAndSurviveReplace) {
    open({4096, 3});
    ASSERT_EQ(put("k", v1()), 0);
    ASSERT_EQ(pin("k"), 0);
    ASSERT_EQ(put("k", v2(), DAXKV_REPLACE), 0);
    EXPECT_EQ(stats().entries_pinned, 1u);
    EXPECT_EQ(remove("k"), -EBUSY);
    EXPECT_EQ(unpin("k"), 0);
    EXPECT_EQ(stats().entries_pinned, 0u);
    EXPECT_EQ(remove("k"), 0);
}

TEST_F(Store, OversizedValueIsE2bigAndNothingIsStored) {
    open({4096, 2});
    std::vector<uint8_t> big = pattern(3, 4097);
    EXPECT_EQ(put("big", big), -E2BIG);
    EXPECT_TRUE(contains_text(daxkv_errmsg(), "4097")) << daxkv_errmsg();
    EXPECT_TRUE(contains_text(daxkv_errmsg(), "slot_bytes")) << daxkv_errmsg();
    EXPECT_EQ(contains("big"), 0);
    EXPECT_EQ(put("big", big, DAXKV_REPLACE), -E2BIG);
    struct daxkv_stats st = stats();
    EXPECT_EQ(st.entries, 0u);
    EXPECT_EQ(st.slots_free, 2u);
    EXPECT_EQ(st.slots_inflight, 0u);
}

TEST_F(Store, EveryRefusedPutCountsAsFailed) {
    // A put refused for its arguments is a failed put in the counters, as
    // one that finds no room is: a value larger than slot_bytes counted in
    // none of puts, puts_existed and puts_failed. Each single put,
    // reservation and batch item below is refused once.
    open(StoreSpec{4096, 4}.set("meta_bytes", "16"));
    std::vector<uint8_t> big = pattern(3, 4097), small = pattern(4, 8);
    const std::string k513(513, 'k');
    char meta[17] = {};
    EXPECT_EQ(put("big", big), -E2BIG);
    EXPECT_EQ(put(k513, small), -EINVAL);
    EXPECT_EQ(daxkv_put(s(), "k", 1, nullptr, 8, 0), -EINVAL);
    EXPECT_EQ(daxkv_put(s(), "k", 1, small.data(), small.size(), 0x80), -EINVAL);
    daxkv_reservation *r = nullptr;
    EXPECT_EQ(daxkv_reserve(s(), "r", 1, 4097, &r), -E2BIG);
    EXPECT_EQ(daxkv_reserve_meta(s(), "r", 1, 8, meta, sizeof meta, nullptr, &r), -E2BIG);
    EXPECT_EQ(daxkv_reserve(s(), nullptr, 1, 8, &r), -EINVAL);
    EXPECT_EQ(r, nullptr);
    daxkv_item items[5] = {};
    const char *keys[5] = {"b0", "b1", "b2", "b3", "b4"};
    for (int i = 0; i < 5; ++i) {
        items[i].key = keys[i];
        items[i].key_len = 2;
        items[i].data = small.data();
        items[i].len = small.size();
    }
    items[0].data = big.data();
    items[0].len = big.size(); // too large
    items[1].data = nullptr;   // NULL data with a length
    items[2].meta = meta;
    items[2].meta_len = sizeof meta; // metadata too large
    items[3].key_len = 0;            // bad key
    EXPECT_EQ(daxkv_put_batch(s(), items, 5, 0), 1);
    EXPECT_EQ(items[0].status, -E2BIG);
    EXPECT_EQ(items[1].status, -EINVAL);
    EXPECT_EQ(items[2].status, -E2BIG);
    EXPECT_EQ(items[3].status, -EINVAL);
    EXPECT_EQ(items[4].status, 0);
    struct daxkv_stats st = stats();
    EXPECT_EQ(st.puts_failed, 11u);
    EXPECT_EQ(st.puts, 1u);
    EXPECT_EQ(st.puts_existed, 0u);
    EXPECT_EQ(st.entries, 1u);
    EXPECT_EQ(st.slots_inflight, 0u);
}

TEST_F(Store, KeysAreOpaqueBytesOfOneTo512) {
    open({4096, 8});
    std::string k512(512, 'k'), k513(513, 'k');
    EXPECT_EQ(daxkv_put(s(), k513.data(), k513.size(), "v", 1, 0), -EINVAL);
    EXPECT_TRUE(contains_text(daxkv_errmsg(), "513")) << daxkv_errmsg();
    EXPECT_EQ(daxkv_put(s(), "", 0, "v", 1, 0), -EINVAL);
    EXPECT_TRUE(contains_text(daxkv_errmsg(), "key length 0")) << daxkv_errmsg();
    ASSERT_EQ(daxkv_put(s(), k512.data(), k512.size(), "v512", 4, 0), 0);
    ASSERT_EQ(daxkv_put(s(), "x", 1, "v1", 2, 0), 0);
    // Embedded NULs and prefixes are distinct keys.
    const char a[] = {'a', '\0', 'b'}, b[] = {'a', '\0', 'c'};
    ASSERT_EQ(daxkv_put(s(), a, 3, "A", 1, 0), 0);
    ASSERT_EQ(daxkv_put(s(), b, 3, "B", 1, 0), 0);
    ASSERT_EQ(daxkv_put(s(), a, 1, "P", 1, 0), 0);
    char buf[8];
    size_t len = 0;
    ASSERT_EQ(daxkv_get(s(), a, 3, buf, sizeof buf, &len), 0);
    EXPECT_EQ(std::string(buf, len), "A");
    ASSERT_EQ(daxkv_get(s(), b, 3, buf, sizeof buf, &len), 0);
    EXPECT_EQ(std::string(buf, len), "B");
    ASSERT_EQ(daxkv_get(s(), a, 1, buf, sizeof buf, &len), 0);
    EXPECT_EQ(std::string(buf, len), "P");
    ASSERT_EQ(daxkv_get(s(), k512.data(), k512.size(), buf, sizeof buf, &len), 0);
    EXPECT_EQ(std::string(buf, len), "v512");
    for (auto fn : {0, 1, 2, 3, 4}) {
        int rc = 0;
        switch (fn) {
        case 0: rc = daxkv_get(s(), k513.data(), 513, buf, sizeof buf, &len); break;
        case 1: rc = daxkv_contains(s(), k513.data(), 513); break;
        case 2: rc = daxkv_remove(s(), k513.data(), 513, 0); break;
        case 3: rc = daxkv_pin(s(), "", 0); break;
        case 4: rc = daxkv_unpin(s(), k513.data(), 513); break;
        }
        EXPECT_EQ(rc, -EINVAL) << "call " << fn;
    }
}

TEST_F(Store, NullPointersAreEinval) {
    open();
    char buf[16];
    size_t len;
    EXPECT_EQ(daxkv_put(nullptr, "k", 1, "v", 1, 0), -EINVAL);
    EXPECT_TRUE(contains_text(daxkv_errmsg(), "store")) << daxkv_errmsg();
    EXPECT_EQ(daxkv_get(nullptr, "k", 1, buf, sizeof buf, &len), -EINVAL);
    EXPECT_EQ(daxkv_contains(nullptr, "k", 1), -EINVAL);
    EXPECT_EQ(daxkv_remove(nullptr, "k", 1, 0), -EINVAL);
    EXPECT_EQ(daxkv_pin(nullptr, "k", 1), -EINVAL);
    EXPECT_EQ(daxkv_unpin(nullptr, "k", 1), -EINVAL);
    EXPECT_EQ(daxkv_shutdown(nullptr), -EINVAL);
    struct daxkv_stats st;
    st.struct_size = sizeof st;
    EXPECT_EQ(daxkv_stats(nullptr, &st), -EINVAL);
    EXPECT_EQ(daxkv_stats(s(), nullptr), -EINVAL);
    EXPECT_EQ(daxkv_status_json(nullptr, buf, sizeof buf, &len), -EINVAL);
    daxkv_lease *l = reinterpret_cast<daxkv_lease *>(0x1);
    EXPECT_EQ(daxkv_lease_acquire(nullptr, "k", 1, &l), -EINVAL);
    EXPECT_EQ(l, nullptr);
    EXPECT_EQ(daxkv_lease_acquire(s(), "k", 1, nullptr), -EINVAL);
    daxkv_reservation *r = reinterpret_cast<daxkv_reservation *>(0x1);
    EXPECT_EQ(daxkv_reserve(nullptr, "k", 1, 8, &r), -EINVAL);
    EXPECT_EQ(r, nullptr);
    EXPECT_EQ(daxkv_reserve(s(), "k", 1, 8, nullptr), -EINVAL);

    EXPECT_EQ(daxkv_put(s(), nullptr, 1, "v", 1, 0), -EINVAL);
    EXPECT_TRUE(contains_text(daxkv_errmsg(), "key is NULL")) << daxkv_errmsg();
    EXPECT_EQ(daxkv_put(s(), "k", 1, nullptr, 1, 0), -EINVAL);
    EXPECT_TRUE(contains_text(daxkv_errmsg(), "value is NULL")) << daxkv_errmsg();
    EXPECT_EQ(daxkv_get(s(), nullptr, 1, buf, sizeof buf, &len), -EINVAL);
    EXPECT_EQ(daxkv_contains(s(), nullptr, 1), -EINVAL);
    EXPECT_EQ(daxkv_remove(s(), nullptr, 1, 0), -EINVAL);
    EXPECT_EQ(daxkv_pin(s(), nullptr, 1), -EINVAL);
    EXPECT_EQ(daxkv_unpin(s(), nullptr, 1), -EINVAL);
    ASSERT_EQ(daxkv_put(s(), "k", 1, "v", 1, 0), 0);
    EXPECT_EQ(daxkv_get(s(), "k", 1, nullptr, 16, &len), -EINVAL);
    // NULL len_out is allowed.
    EXPECT_EQ(daxkv_get(s(), "k", 1, buf, sizeof buf, nullptr), 0);
    EXPECT_EQ(buf[0], 'v');
    // Lease and reservation accessors accept NULL.
    EXPECT_EQ(daxkv_lease_data(nullptr), nullptr);
    EXPECT_EQ(daxkv_lease_size(nullptr), 0u);
    size_t ml = 7;
    EXPECT_EQ(daxkv_lease_meta(nullptr, &ml), nullptr);
    EXPECT_EQ(ml, 0u);
    EXPECT_EQ(daxkv_reservation_data(nullptr), nullptr);
    EXPECT_EQ(daxkv_reservation_size(nullptr), 0u);
    daxkv_lease_release(nullptr);
    daxkv_abort(nullptr);
    daxkv_close(nullptr);
    EXPECT_EQ(daxkv_commit(nullptr), -EINVAL);
}

TEST_F(Store, UnknownFlagsAreEinval) {
    open();
    ASSERT_EQ(put("k", v1()), 0);
    EXPECT_EQ(put("k2", v1(), 1u << 20), -EINVAL);
    EXPECT_TRUE(contains_text(daxkv_errmsg(), "flags")) << daxkv_errmsg();
    EXPECT_EQ(put("k2", v1(), DAXKV_FORCE), -EINVAL);
    EXPECT_EQ(contains("k2"), 0);
    EXPECT_EQ(remove("k", DAXKV_REPLACE), -EINVAL);
    EXPECT_EQ(remove("k", 0x80000000u), -EINVAL);
    EXPECT_EQ(contains("k"), 1);
}

TEST_F(Store, GetMissAndSmallBuffer) {
    open();
    size_t len = 12345;
    char small[10];
    EXPECT_EQ(daxkv_get(s(), "nope", 4, small, sizeof small, &len), -ENOENT);
    ASSERT_EQ(put("k", v1()), 0);
    std::memset(small, 0x5A, sizeof small);
    EXPECT_EQ(daxkv_get(s(), "k", 1, small, sizeof small, &len), -ENOBUFS);
    EXPECT_EQ(len, 1000u);
    EXPECT_TRUE(contains_text(daxkv_errmsg(), "1000")) << daxkv_errmsg();
    for (char c : small)
        EXPECT_EQ(c, 0x5A); // nothing copied
    len = 0;
    EXPECT_EQ(daxkv_get(s(), "k", 1, nullptr, 0, &len), -ENOBUFS);
    EXPECT_EQ(len, 1000u);
    struct daxkv_stats st = stats();
    EXPECT_EQ(st.misses, 1u);
    EXPECT_EQ(st.hits, 0u);
}

// ---------------------------------------------------------------------------
// Eviction

TEST_F(Store, FullArenaWithLruEvictsTheOldest) {
    open(StoreSpec{4096, 2}.set("eviction", "lru"));
    ASSERT_EQ(stats().slots_total, 2u);
    ASSERT_EQ(put("a", pattern(1, 100)), 0);
    ASSERT_EQ(put("b", pattern(2, 200)), 0);
    ASSERT_EQ(put("c", pattern(3, 300)), 0);
    EXPECT_EQ(contains("a"), 0);
    std::vector<uint8_t> out;
    EXPECT_EQ(get("a", &out), -ENOENT);
    EXPECT_EQ(value("b"), pattern(2, 200));
    EXPECT_EQ(value("c"), pattern(3, 300));
    struct daxkv_stats st = stats();
    EXPECT_EQ(st.evictions, 1u);
    EXPECT_EQ(st.entries, 2u);
    EXPECT_EQ(st.slots_free, 0u);
}

TEST_F(Store, FullArenaWithEvictionNoneIsEnospcAndEvictsNothing) {
    open(StoreSpec{4096, 2}.set("eviction", "none"));
    ASSERT_EQ(put("a", pattern(1, 100)), 0);
    ASSERT_EQ(put("b", pattern(2, 200)), 0);
    EXPECT_EQ(put("c", pattern(3, 300)), -ENOSPC);
    EXPECT_TRUE(contains_text(daxkv_errmsg(), "eviction=none")) << daxkv_errmsg();
    EXPECT_EQ(contains("c"), 0);
    EXPECT_EQ(value("a"), pattern(1, 100));
    EXPECT_EQ(value("b"), pattern(2, 200));
    struct daxkv_stats st = stats();
    EXPECT_EQ(st.evictions, 0u);
    EXPECT_EQ(st.puts_failed, 1u);
    EXPECT_EQ(st.slots_inflight, 0u);
    // The key that failed is not left in flight: once there is room it goes in.
    ASSERT_EQ(remove("a"), 0);
    EXPECT_EQ(put("c", pattern(3, 300)), 0);
    EXPECT_EQ(value("c"), pattern(3, 300));
}

TEST_F(Store, GetMovesToMostRecentlyUsed) {
    open({4096, 2});
    ASSERT_EQ(put("a", v1()), 0);
    ASSERT_EQ(put("b", v2()), 0);
    value("a");
    ASSERT_EQ(put("c", v1()), 0);
    EXPECT_EQ(contains("a"), 1);
    EXPECT_EQ(contains("b"), 0);
}

// Eviction follows the order of use exactly, across the index's shards:
// a model list kept beside random gets, replaces, removes, batch gets and
// new keys names the one key every eviction must take. A shard's oldest
// tick, which eviction reads without the shard's lock, must follow every
// change of that shard's list, and an access waiting in its shard's touch
// queue must count as it would have moved.
class EvictionOrder : public StoreFixture {
protected:
    // slots: the store's size (keys per shard: slots / 64); max_batch: the
    // most keys one get_batch reads (a key may come twice in one batch);
    // max_pinned: the most keys pinned at once (a pin is no use of a key,
    // and a pinned key is no victim: the oldest unpinned one is).
    void follow_the_model(uint32_t slots, int steps, size_t max_batch, size_t max_pinned = 0) {
        open(StoreSpec{4096, slots}.set("eviction", "lru"));
        std::vector<std::string> order; // least recently used first
        std::vector<std::string> pinned;
        auto is_pinned = [&](const std::string &k) {
            return std::find(pinned.begin(), pinned.end(), k) != pinned.end();
        };
        auto use = [&](const std::string &k) {
            order.erase(std::remove(order.begin(), order.end(), k), order.end());
            order.push_back(k);
        };
        uint64_t seed = 12345 + slots;
        auto next = [&](uint64_t n) {
            seed = seed * 6364136223846793005ULL + 1442695040888963407ULL;
            return (seed >> 33) % n;
        };
        int fresh = 0;
        for (int step = 0; step < steps; ++step) {
            if (max_pinned && !order.empty() && next(8) == 0) {
                if (pinned.size() < max_pinned) {
                    const std::string k = order[next(order.size())];
                    ASSERT_EQ(daxkv_pin(s(), k.data(), k.size()), 0) << step;
                    pinned.push_back(k); // pinned twice: unpinned twice
                } else {
                    const size_t i = next(pinned.size());
                    ASSERT_EQ(daxkv_unpin(s(), pinned[i].data(), pinned[i].size()), 0) << step;
                    pinned.erase(pinned.begin() + static_cast<long>(i));
                }
                continue;
            }
            const uint64_t op = next(10);
            if (order.empty() || op < 3) { // a new key: evicts once the store is full
                const std::string k = "k" + std::to_string(fresh++);
                const bool full = order.size() == slots;
                const auto oldest = std::find_if(order.begin(), order.end(),
                                                 [&](const std::string &o) { return !is_pinned(o); });
                const std::string victim = full ? *oldest : "";
                const uint64_t evictions = stats().evictions;
                ASSERT_EQ(put(k, pattern(fresh, 64)), 0) << step;
                if (full) {
                    ASSERT_EQ(stats().evictions, evictions + 1) << step;
                    ASSERT_EQ(contains(victim), 0) << "step " << step << ": " << victim
                                                   << " should have been evicted";
                    order.erase(oldest);
                }
                use(k);
                continue;
            }
            const std::string k = order[next(order.size())];
            if (op < 6 || (op >= 7 && is_pinned(k))) {
                ASSERT_EQ(value(k).size(), 64u) << step;
            } else if (op < 7) {
                // A batch, in its order: the oldest keys first (as a reader
                // of chunks in the order they were stored would), or keys
                // at random, a key possibly twice.
                const size_t n = 1 + next(std::min(max_batch, order.size()));
                std::vector<std::string> keys;
                const bool oldest_first = next(2) == 0;
                for (size_t j = 0; j < n; ++j)
                    keys.push_back(oldest_first ? order[j] : order[next(order.size())]);
                std::vector<uint8_t> out(n * 64);
                std::vector<daxkv_item> items(n);
                for (size_t j = 0; j < n; ++j)
                    items[j] = daxkv_item{keys[j].data(), keys[j].size(), out.data() + j * 64,
                                          64, nullptr, 0, 0};
                ASSERT_EQ(daxkv_get_batch(s(), items.data(), n, 0), static_cast<int>(n)) << step;
                for (const std::string &key : keys)
                    use(key);
                continue;
            } else if (op < 9 && order.size() < slots) {
                // (In a full store a replace evicts too: its new version
                // takes a slot before the old one goes.)
                ASSERT_EQ(put(k, pattern(step, 64), DAXKV_REPLACE), 0) << step;
            } else if (op == 9) {
                ASSERT_EQ(remove(k), 0) << step;
                order.erase(std::find(order.begin(), order.end(), k));
                continue;
            } else {
                ASSERT_EQ(value(k).size(), 64u) << step;
            }
            use(k);
        }
        EXPECT_GT(stats().evictions, 100u);
        for (const std::string &k : order)
            EXPECT_EQ(contains(k), 1) << k;
    }
};

TEST_F(EvictionOrder, ASmallStoreEvictsExactlyTheLeastRecentlyUsedKey) {
    follow_the_model(48, 1500, 1);
}

// Pinned keys sit at the head of their shard's list (a pin is no use):
// the shard looked oldest at every eviction, and its unpinned entries went
// first, the most recently used among them.
TEST_F(EvictionOrder, APinnedKeyLeavesTheOrderOfTheOthersAsItIs) {
    follow_the_model(48, 3000, 1, 1);
}

TEST_F(EvictionOrder, ManyPinnedKeysLeaveTheOrderOfTheOthersAsItIs) {
    follow_the_model(256, 6000, 40, 24);
}

// More keys per shard than its touch queue holds, and batches long enough
// to fill the queues many times over.
TEST_F(EvictionOrder, ALargerStoreWithLongBatchesEvictsExactlyTheLeastRecentlyUsedKey) {
    follow_the_model(1024, 6000, 400);
}

TEST_F(Store, LeaseMovesToMostRecentlyUsed) {
    open({4096, 2});
    ASSERT_EQ(put("a", v1()), 0);
    ASSERT_EQ(put("b", v2()), 0);
    lease("a").reset();
    ASSERT_EQ(put("c", v1()), 0);
    EXPECT_EQ(contains("a"), 1);
    EXPECT_EQ(contains("b"), 0);
}

TEST_F(Store, ContainsDoesNotChangeLruOrder) {
    open({4096, 2});
    ASSERT_EQ(put("a", v1()), 0);
    ASSERT_EQ(put("b", v2()), 0);
    EXPECT_EQ(contains("a"), 1);
    daxkv_item it{"a", 1, nullptr, 0, nullptr, 0, 0};
    EXPECT_EQ(daxkv_contains_batch(s(), &it, 1, 0), 1);
    ASSERT_EQ(put("c", v1()), 0);
    EXPECT_EQ(contains("a"), 0);
    EXPECT_EQ(contains("b"), 1);
}

TEST_F(Store, PinAndUnpinDoNotChangeLruOrder) {
    open({4096, 2});
    ASSERT_EQ(put("a", v1()), 0);
    ASSERT_EQ(put("b", v2()), 0);
    ASSERT_EQ(pin("a"), 0);
    ASSERT_EQ(unpin("a"), 0);
    ASSERT_EQ(put("c", v1()), 0);
    EXPECT_EQ(contains("a"), 0);
    EXPECT_EQ(contains("b"), 1);
}

TEST_F(Store, PinnedKeyIsNotEvicted) {
    open({4096, 2});
    ASSERT_EQ(put("a", v1()), 0);
    ASSERT_EQ(put("b", v2()), 0);
    ASSERT_EQ(pin("a"), 0);
    ASSERT_EQ(put("c", v1()), 0);
    EXPECT_EQ(value("a"), v1());
    EXPECT_EQ(contains("b"), 0);
    // Everything pinned: nothing to evict.
    ASSERT_EQ(pin("c"), 0);
    EXPECT_EQ(put("d", v1()), -ENOSPC);
    EXPECT_TRUE(contains_text(daxkv_errmsg(), "2 pinned")) << daxkv_errmsg();
    EXPECT_EQ(contains("a"), 1);
    EXPECT_EQ(contains("c"), 1);
    EXPECT_EQ(stats().entries_pinned, 2u);
}

TEST_F(Store, OverlappingPinsAreCounted) {
    open({4096, 2});
    ASSERT_EQ(put("a", pattern(1, 64)), 0);
    ASSERT_EQ(put("b", pattern(2, 64)), 0);
    ASSERT_EQ(pin("a"), 0);
    ASSERT_EQ(pin("a"), 0);
    ASSERT_EQ(unpin("a"), 0);
    ASSERT_EQ(put("c", pattern(3, 64)), 0); // a still pinned once: b goes
    EXPECT_EQ(contains("a"), 1);
    EXPECT_EQ(contains("b"), 0);
    EXPECT_EQ(contains("c"), 1);
    ASSERT_EQ(unpin("a"), 0);
    ASSERT_EQ(put("d", pattern(4, 64)), 0); // a is the oldest now
    EXPECT_EQ(contains("a"), 0);
    EXPECT_EQ(value("c"), pattern(3, 64));
    EXPECT_EQ(value("d"), pattern(4, 64));
}

TEST_F(Store, UnpinNeverGoesBelowZero) {
    open();
    ASSERT_EQ(put("a", v1()), 0);
    EXPECT_EQ(unpin("a"), -ENOENT);
    EXPECT_TRUE(contains_text(daxkv_errmsg(), "not pinned")) << daxkv_errmsg();
    ASSERT_EQ(pin("a"), 0);
    EXPECT_EQ(unpin("a"), 0);
    EXPECT_EQ(unpin("a"), -ENOENT);
    EXPECT_EQ(unpin("a"), -ENOENT);
    EXPECT_EQ(unpin("missing"), -ENOENT);
    EXPECT_EQ(pin("missing"), -ENOENT);
    // Unpinned: an unforced remove succeeds, so the count is 0 and not negative.
    EXPECT_EQ(stats().entries_pinned, 0u);
    ASSERT_EQ(pin("a"), 0);
    EXPECT_EQ(remove("a"), -EBUSY); // one pin is one pin, not wrapped around
    EXPECT_EQ(unpin("a"), 0);
    EXPECT_EQ(remove("a"), 0);
}

// ---------------------------------------------------------------------------
// Remove

TEST_F(Store, RemovePinnedNeedsForce) {
    open({4096, 2});
    ASSERT_EQ(put("a", v1()), 0);
    ASSERT_EQ(pin("a"), 0);
    EXPECT_EQ(remove("a"), -EBUSY);
    EXPECT_TRUE(contains_text(daxkv_errmsg(), "DAXKV_FORCE")) << daxkv_errmsg();
    EXPECT_EQ(value("a"), v1());
    EXPECT_EQ(remove("a", DAXKV_FORCE), 0);
    EXPECT_EQ(contains("a"), 0);
    EXPECT_EQ(remove("a", DAXKV_FORCE), -ENOENT);
    EXPECT_EQ(remove("a"), -ENOENT);
    struct daxkv_stats st = stats();
    EXPECT_EQ(st.entries, 0u);
    EXPECT_EQ(st.entries_pinned, 0u);
    EXPECT_EQ(st.slots_free, 2u);
    EXPECT_EQ(st.removes, 1u);
    // The key is fully gone: a new put is a fresh, unpinned entry.
    ASSERT_EQ(put("a", v2()), 0);
    EXPECT_EQ(value("a"), v2());
    EXPECT_EQ(remove("a"), 0);
}

TEST_F(Store, AForcedRemoveThatOnlyCancelsAWriteRemovesNoEntry) {
    // A forced remove of a key only in flight (a reservation) cancels the
    // write: the commit fails, and puts_failed counts it. It counted as a
    // removed entry too, where none was (puts - evictions - removes fell
    // below the entries). A forced remove of an entry is one remove.
    open({4096, 4});
    daxkv_reservation *r = nullptr;
    ASSERT_EQ(daxkv_reserve(s(), "k", 1, 100, &r), 0) << daxkv_errmsg();
    EXPECT_EQ(remove("k", DAXKV_FORCE), 0);
    EXPECT_EQ(stats().removes, 0u);
    EXPECT_EQ(daxkv_commit(r), -ECANCELED);
    struct daxkv_stats st = stats();
    EXPECT_EQ(st.removes, 0u);
    EXPECT_EQ(st.puts_failed, 1u);
    EXPECT_EQ(st.entries, 0u);
    ASSERT_EQ(put("k", v1()), 0);
    EXPECT_EQ(remove("k", DAXKV_FORCE), 0);
    st = stats();
    EXPECT_EQ(st.removes, 1u);
    EXPECT_EQ(st.puts - st.evictions - st.removes, st.entries);
}

TEST_F(Store, RemoveFreesTheSlotForReuse) {
    open(StoreSpec{4096, 1}.set("eviction", "none"));
    for (int i = 0; i < 20; ++i) {
        std::string k = key_of(i);
        ASSERT_EQ(put(k, pattern(i, 100 + i)), 0) << i;
        EXPECT_EQ(value(k), pattern(i, 100 + i));
        ASSERT_EQ(remove(k), 0);
    }
    EXPECT_EQ(stats().removes, 20u);
}

// ---------------------------------------------------------------------------
// Statistics and status

TEST_F(Store, StatsCountersAreExactAfterAScriptedSequence) {
    open({4096, 4});
    ASSERT_EQ(put("A", pattern(1, 100)), 0);
    ASSERT_EQ(put("B", pattern(2, 200)), 0);
    ASSERT_EQ(put("C", pattern(3, 300)), 0);
    ASSERT_EQ(put("A", pattern(9, 999)), DAXKV_EXISTED);
    value("A");                                              // hit (order: B C A)
    std::vector<uint8_t> tmp;
    ASSERT_EQ(get("X", &tmp), -ENOENT);                      // miss
    EXPECT_EQ(contains("A"), 1);                             // no counter
    std::vector<uint8_t> buf(4096);
    daxkv_item items[2] = {{"A", 1, buf.data(), buf.size(), nullptr, 0, 0},
                           {"X", 1, buf.data(), buf.size(), nullptr, 0, 0}};
    ASSERT_EQ(daxkv_get_batch(s(), items, 2, 0), 1);         // hit + miss
    {
        LeasePtr l = lease("B");                             // hit (order: C A B)
        EXPECT_EQ(stats().leases_active, 1u);
    }
    ASSERT_EQ(put("D", pattern(4, 400)), 0);                 // fills the 4th slot
    ASSERT_EQ(put("E", pattern(5, 500)), 0);                 // evicts C
    EXPECT_EQ(contains("C"), 0);
    ASSERT_EQ(remove("D"), 0);
    ASSERT_EQ(pin("E"), 0);
    EXPECT_EQ(put("Z", pattern(6, 5000)), -E2BIG);

    struct daxkv_stats st = stats();
    EXPECT_EQ(st.struct_size, sizeof st);
    EXPECT_EQ(st.devices, 1u);
    EXPECT_EQ(st.slot_bytes, 4096u);
    EXPECT_EQ(st.meta_bytes, 256u);
    EXPECT_EQ(st.slots_total, 4u);
    EXPECT_EQ(st.capacity_bytes, 4u * 4096u);
    EXPECT_EQ(st.hits, 3u);
    EXPECT_EQ(st.misses, 2u);
    EXPECT_EQ(st.puts, 5u);
    EXPECT_EQ(st.puts_existed, 1u);
    EXPECT_EQ(st.evictions, 1u);
    EXPECT_EQ(st.removes, 1u);
    EXPECT_EQ(st.entries, 3u); // A B E
    EXPECT_EQ(st.entries_pinned, 1u);
    EXPECT_EQ(st.slots_used, 3u);
    EXPECT_EQ(st.slots_free, 1u);
    EXPECT_EQ(st.slots_inflight, 0u);
    EXPECT_EQ(st.slots_pending_free, 0u);
    EXPECT_EQ(st.leases_active, 0u);
    EXPECT_EQ(st.bytes_written, 100u + 200 + 300 + 400 + 500);
    EXPECT_EQ(st.bytes_read, 200u); // two copies of A; leases copy nothing
    EXPECT_EQ(st.verify_failures, 0u);
    EXPECT_EQ(st.recovered_entries, 0u);
}

TEST_F(Store, StatsHonoursStructSize) {
    open();
    ASSERT_EQ(put("k", v1()), 0);
    struct daxkv_stats st;
    std::memset(&st, 0xCD, sizeof st);
    st.struct_size = 4;
    EXPECT_EQ(daxkv_stats(s(), &st), -EINVAL);
    EXPECT_TRUE(contains_text(daxkv_errmsg(), "struct_size")) << daxkv_errmsg();
    // An older, shorter struct: only its prefix is written.
    std::memset(&st, 0xCD, sizeof st);
    st.struct_size = offsetof(struct daxkv_stats, slots_total);
    ASSERT_EQ(daxkv_stats(s(), &st), 0);
    EXPECT_EQ(st.struct_size, offsetof(struct daxkv_stats, slots_total));
    EXPECT_EQ(st.slot_bytes, 4096u);
    EXPECT_EQ(st.capacity_bytes, 4u * 4096u);
    uint64_t untouched;
    std::memset(&untouched, 0xCD, sizeof untouched);
    EXPECT_EQ(st.slots_total, untouched);
    EXPECT_EQ(st.recovery_usec, untouched);
    // A newer, longer struct: the known part is filled.
    struct {
        struct daxkv_stats s;
        uint64_t future[4];
    } big;
    std::memset(&big, 0xCD, sizeof big);
    big.s.struct_size = sizeof big;
    ASSERT_EQ(daxkv_stats(s(), &big.s), 0);
    EXPECT_EQ(big.s.struct_size, sizeof big);
    EXPECT_EQ(big.s.entries, 1u);
    EXPECT_EQ(big.future[0], untouched);
}

TEST_F(Store, StatusJsonParsesAndHasTheExpectedFields) {
    open(StoreSpec{4096, 4}.set("eviction", "none").set("verify", "read"));
    ASSERT_EQ(put("a", v1()), 0);
    value("a");
    size_t needed = 0;
    EXPECT_EQ(daxkv_status_json(s(), nullptr, 0, &needed), -ENOBUFS);
    ASSERT_GT(needed, 2u);
    std::string buf(needed, '\x7f');
    EXPECT_EQ(daxkv_status_json(s(), &buf[0], needed - 1, nullptr), -ENOBUFS);
    EXPECT_TRUE(contains_text(daxkv_errmsg(), std::to_string(needed))) << daxkv_errmsg();
    EXPECT_EQ(buf[0], '\x7f'); // untouched on -ENOBUFS
    size_t needed2 = 0;
    ASSERT_EQ(daxkv_status_json(s(), &buf[0], needed, &needed2), 0);
    EXPECT_EQ(needed2, needed);
    EXPECT_EQ(buf[needed - 1], '\0');
    EXPECT_EQ(std::strlen(buf.c_str()), needed - 1);
    nlohmann::json j = nlohmann::json::parse(buf.c_str());
    EXPECT_EQ(j["version"], DAXKV_VERSION_STRING);
    EXPECT_EQ(j["state"], "open");
    EXPECT_EQ(j["slot_bytes"], 4096);
    EXPECT_EQ(j["meta_bytes"], 256);
    EXPECT_EQ(j["eviction"], "none");
    EXPECT_EQ(j["durability"], "process");
    EXPECT_EQ(j["verify"], "read");
    EXPECT_EQ(j["workers"], 2);
    EXPECT_EQ(j["entries"], 1);
    EXPECT_EQ(j["capacity_bytes"], 4 * 4096);
    EXPECT_EQ(j["used_bytes"], 4096);
    EXPECT_EQ(j["slots"]["total"], 4);
    EXPECT_EQ(j["slots"]["free"], 3);
    EXPECT_EQ(j["counters"]["hits"], 1);
    EXPECT_EQ(j["counters"]["puts"], 1);
    EXPECT_EQ(j["counters"]["bytes_read"], 1000);
    ASSERT_TRUE(j["devices"].is_array());
    ASSERT_EQ(j["devices"].size(), 1u);
    EXPECT_EQ(j["devices"][0]["path"], path_);
    EXPECT_EQ(j["devices"][0]["kind"], test_device() ? "devdax" : "file");
    EXPECT_EQ(j["devices"][0]["slots"], 4);
    EXPECT_EQ(j["devices"][0]["uuid"].get<std::string>().size(), 36u);
    ASSERT_TRUE(j["recovery"].is_object());
    EXPECT_EQ(j["recovery"]["recovered"], 0);
    // A NULL buffer with a capacity is a caller bug.
    EXPECT_EQ(daxkv_status_json(s(), nullptr, 16, &needed), -EINVAL);
}

// ---------------------------------------------------------------------------
// Versions, error strings, error messages, logging

TEST(Versions, FunctionsAgreeWithTheHeaderMacros) {
    EXPECT_EQ(daxkv_version_number(),
              unsigned(DAXKV_VERSION_MAJOR * 10000 + DAXKV_VERSION_MINOR * 100 +
                       DAXKV_VERSION_PATCH));
    EXPECT_EQ(daxkv_version_number(), unsigned(DAXKV_VERSION_NUMBER));
    std::string want = std::to_string(DAXKV_VERSION_MAJOR) + "." +
                       std::to_string(DAXKV_VERSION_MINOR) + "." +
                       std::to_string(DAXKV_VERSION_PATCH);
    ASSERT_NE(daxkv_version_string(), nullptr);
    EXPECT_EQ(std::string(daxkv_version_string()), want);
    EXPECT_EQ(std::string(DAXKV_VERSION_STRING), want);
}

TEST(Errors, StrerrorIsNonNullAndDistinctForEveryDocumentedCode) {
    const int codes[] = {0,        DAXKV_EXISTED, -EINVAL,     -ENOENT,          -ENOSPC,
                         -E2BIG,   -EBUSY,        -ENOBUFS,    -ESHUTDOWN,       -ENODEV,
                         -EACCES,  -EPERM,        -ENOMEM,     -EIO,             -ENOTSUP,
                         -ECANCELED, -EISDIR,     -ELOOP,      DAXKV_E_CORRUPT,  DAXKV_E_FOREIGN,
                         -EDEADLK};
    std::set<std::string> seen;
    for (int c : codes) {
        const char *m = daxkv_strerror(c);
        ASSERT_NE(m, nullptr) << c;
        EXPECT_GT(std::strlen(m), 3u) << c;
        EXPECT_TRUE(seen.insert(m).second) << "duplicate text for " << c << ": " << m;
    }
    EXPECT_STREQ(daxkv_strerror(-12345678), "unknown error");
    EXPECT_STREQ(daxkv_strerror(DAXKV_E_BASE - 99), "unknown error");
    EXPECT_STREQ(daxkv_strerror(42), "unknown error");
    EXPECT_NE(daxkv_strerror(-ETIMEDOUT), nullptr);
    // A negative code the C library does not know (above DAXKV_E_BASE): it
    // was strerror()'s "Unknown error 9999", in a buffer the next such
    // call wrote over ("Unknown error 9998"), the caller's own included.
    const char *first = daxkv_strerror(-9999);
    EXPECT_STREQ(first, "unknown error");
    daxkv_strerror(-9998);
    (void)std::strerror(4242);
    EXPECT_STREQ(first, "unknown error");
    EXPECT_STREQ(daxkv_strerror(-ETIMEDOUT), std::strerror(ETIMEDOUT)); // a known code's text
}

TEST(Errors, ErrmsgIsThreadLocalAndNeverNull) {
    std::string other;
    std::thread t([&] {
        const char *m = daxkv_errmsg();
        other = m ? m : "(null)";
    });
    t.join();
    EXPECT_EQ(other, ""); // a fresh thread has no message
    daxkv_config *c = nullptr;
    ASSERT_EQ(daxkv_config_new(&c), 0);
    ConfigPtr cfg(c);
    ASSERT_EQ(daxkv_config_set(c, "no_such_key", "1"), -EINVAL);
    std::string mine = daxkv_errmsg();
    EXPECT_TRUE(contains_text(mine.c_str(), "no_such_key"));
    std::thread t2([&] { EXPECT_EQ(daxkv_config_set(c, "verify", "sometimes"), -EINVAL); });
    t2.join();
    EXPECT_EQ(std::string(daxkv_errmsg()), mine);
    // A later success leaves the message (errno-like).
    ASSERT_EQ(daxkv_config_set(c, "slot_bytes", "4096"), 0);
    EXPECT_EQ(std::string(daxkv_errmsg()), mine);
}

namespace {
struct LogSink {
    std::mutex m;
    std::vector<std::pair<int, std::string>> lines;
};
void log_to_sink(int level, const char *msg, void *arg) {
    auto *sink = static_cast<LogSink *>(arg);
    std::lock_guard<std::mutex> g(sink->m);
    sink->lines.emplace_back(level, msg);
}
} // namespace

TEST_F(Store, LogCallbackReceivesMessagesUpToItsLevel) {
    LogSink sink;
    daxkv_set_log_fn(log_to_sink, DAXKV_LOG_INFO, &sink);
    open();
    daxkv_set_log_fn(nullptr, 0, nullptr);
    store_.reset();
    std::lock_guard<std::mutex> g(sink.m);
    ASSERT_FALSE(sink.lines.empty());
    bool opened = false;
    for (const auto &l : sink.lines) {
        EXPECT_LE(l.first, DAXKV_LOG_INFO);
        opened |= l.second.find("opened store") != std::string::npos;
    }
    EXPECT_TRUE(opened);
    size_t before = sink.lines.size();
    // Off again: nothing more arrives.
    StorePtr again;
    ASSERT_EQ(open_store(&again, path_, StoreSpec()), 0);
    EXPECT_EQ(sink.lines.size(), before);
}

TEST(EventThread, EventsPostedBeforeTheStopGoOutBeforeItReturns) {
    // The events of a batch the dispatcher ran go out from the store's
    // event thread. A stop (daxkv_close) while the thread was handing out
    // one event dropped those queued behind it: a caller that polled a
    // batch's completion and closed the store at once lost its error
    // ("failed its checksum: dropped") in about one run of twenty.
    struct Held {
        std::mutex m;
        std::condition_variable cv;
        bool in_callback = false, let_go = false;
        std::vector<std::string> lines;
    } held;
    daxkv_set_log_fn(
        [](int, const char *msg, void *arg) {
            auto *h = static_cast<Held *>(arg);
            std::unique_lock<std::mutex> g(h->m);
            h->lines.emplace_back(msg);
            h->in_callback = true;
            h->cv.notify_all();
            h->cv.wait(g, [&] { return h->let_go; });
        },
        DAXKV_LOG_ERR, &held);
    {
        daxkv::EventThread events;
        events.post(DAXKV_LOG_ERR, "first");
        {
            std::unique_lock<std::mutex> g(held.m);
            held.cv.wait(g, [&] { return held.in_callback; });
        }
        events.post(DAXKV_LOG_ERR, "second"); // queued while "first" is handed out
        std::thread stopper([&] { events.stop(); });
        std::this_thread::sleep_for(std::chrono::milliseconds(50)); // the stop is asked for
        {
            std::lock_guard<std::mutex> g(held.m);
            held.let_go = true;
            held.cv.notify_all();
        }
        stopper.join();
        events.post(DAXKV_LOG_ERR, "after the stop");
    }
    daxkv_set_log_fn(nullptr, 0, nullptr);
    ASSERT_EQ(held.lines.size(), 2u);
    EXPECT_TRUE(contains_text(held.lines[0].c_str(), "first")) << held.lines[0];
    EXPECT_TRUE(contains_text(held.lines[1].c_str(), "second")) << held.lines[1];
}

// ---------------------------------------------------------------------------
// verify=read

TEST_F(Store, VerifyReadCatchesAPayloadCorruptedInPlace) {
    open(StoreSpec{4096, 4}.set("verify", "read"));
    std::vector<uint8_t> a = pattern(11, 3000), b = pattern(12, 2000);
    ASSERT_EQ(put("a", a), 0); // slot 0: the lowest free slot comes first
    ASSERT_EQ(put("b", b), 0);
    auto lay = daxkv::arena::compute_layout(spec_arena_bytes(spec_), 4096, 256);
    FileMap fm(path_);
    ASSERT_TRUE(fm.ok());
    char *payload = fm.base() + lay.data_offset;
    ASSERT_EQ(0, std::memcmp(payload, a.data(), a.size())) << "a is not in slot 0";
    payload[1234] ^= 0x10;

    std::vector<uint8_t> out;
    EXPECT_EQ(get("a", &out), -EIO);
    EXPECT_TRUE(contains_text(daxkv_errmsg(), "checksum")) << daxkv_errmsg();
    EXPECT_EQ(contains("a"), 0);
    EXPECT_EQ(get("a", &out), -ENOENT);
    EXPECT_EQ(value("b"), b);
    struct daxkv_stats st = stats();
    EXPECT_EQ(st.verify_failures, 1u);
    EXPECT_EQ(st.entries, 1u);
    // The damaged slot is quarantined, not handed out again.
    EXPECT_EQ(st.slots_free, 2u);
    ASSERT_EQ(put("c", pattern(13, 100)), 0);
    ASSERT_EQ(put("d", pattern(14, 100)), 0);
    EXPECT_EQ(0, std::memcmp(payload + 1, a.data() + 1, 1000)); // slot 0 left alone
}

TEST_F(Store, VerifyReadCatchesCorruptionOnLeaseAndBatchGet) {
    open(StoreSpec{4096, 4}.set("verify", "read"));
    std::vector<uint8_t> a = pattern(21, 4096), b = pattern(22, 4096);
    ASSERT_EQ(put("a", a), 0);
    ASSERT_EQ(put("b", b), 0);
    auto lay = daxkv::arena::compute_layout(spec_arena_bytes(spec_), 4096, 256);
    FileMap fm(path_);
    ASSERT_TRUE(fm.ok());
    fm.base()[lay.data_offset + 4095] ^= 1;            // last byte of a
    fm.base()[lay.data_offset + 4096 + 0] ^= (char)0x80; // first byte of b
    int rc = 0;
    LeasePtr l = lease("a", &rc);
    EXPECT_EQ(rc, -EIO);
    EXPECT_EQ(l, nullptr);
    std::vector<uint8_t> buf(4096);
    daxkv_item it{"b", 1, buf.data(), buf.size(), nullptr, 0, 0};
    EXPECT_EQ(daxkv_get_batch(s(), &it, 1, 0), 0);
    EXPECT_EQ(it.status, -EIO);
    EXPECT_EQ(contains("a"), 0);
    EXPECT_EQ(contains("b"), 0);
    struct daxkv_stats st = stats();
    EXPECT_EQ(st.verify_failures, 2u);
    EXPECT_EQ(st.hits, 0u);
    EXPECT_EQ(st.leases_active, 0u);
}

// A get whose key lies in its own destination buffer, of an entry that
// fails its checksum: the copy overwrote the key before the entry was
// dropped, which looked the entry up again by those bytes, missed it, and
// quarantined its slot with the entry still in the index. The key stayed
// readable, and once removed its quarantined slot was handed out again.
// Through daxkv_get and daxkv_get_batch.
TEST_F(Store, AnEntryFailingItsChecksumIsDroppedWhenTheKeyIsInTheDestination) {
    open(StoreSpec{4096, 4}.set("verify", "read").set("eviction", "none"));
    ASSERT_EQ(put("K", pattern(31, 4096)), 0); // slot 0, read with daxkv_get
    ASSERT_EQ(put("L", pattern(32, 4096)), 0); // slot 1, read with daxkv_get_batch
    auto lay = daxkv::arena::compute_layout(spec_arena_bytes(spec_), 4096, 256);
    {
        FileMap fm(path_);
        ASSERT_TRUE(fm.ok());
        fm.base()[lay.data_offset + 100] ^= 0x40;
        fm.base()[lay.data_offset + 4096 + 100] ^= 0x40;
    }
    std::vector<uint8_t> buf(4096);
    buf[0] = 'K';
    size_t got = 0;
    EXPECT_EQ(daxkv_get(s(), buf.data(), 1, buf.data(), buf.size(), &got), -EIO);
    buf[0] = 'L';
    daxkv_item it{buf.data(), 1, buf.data(), buf.size(), nullptr, 0, 0};
    EXPECT_EQ(daxkv_get_batch(s(), &it, 1, 0), 0);
    EXPECT_EQ(it.status, -EIO);
    for (const char *k : {"K", "L"}) {
        EXPECT_EQ(contains(k), 0) << k;
        EXPECT_EQ(daxkv_remove(s(), k, 1, 0), -ENOENT) << k;
    }
    struct daxkv_stats st = stats();
    EXPECT_EQ(st.entries, 0u);
    EXPECT_EQ(st.verify_failures, 2u);
    EXPECT_EQ(st.slots_free, 2u); // slots 0 and 1 quarantined
    ASSERT_EQ(put("a", pattern(1, 100)), 0);
    ASSERT_EQ(put("b", pattern(2, 100)), 0);
    EXPECT_EQ(put("c", pattern(3, 100)), -ENOSPC) << "a quarantined slot was handed out";
}

// With DAXKV_PREFIX, an item whose copy fails (here its checksum, with
// verify=read) ends the prefix as a miss does: every later item is
// -ENOENT and not counted as a hit, and is not checked (as a GPU batch
// does not check it). Later items kept status 0 (and were counted as
// hits) though the call returned the prefix before them, and one that
// failed its own check said -EIO and was dropped. Bad input: one payload
// byte flipped in place in the second item read and in the last, read
// with and without a metadata buffer.
TEST_F(Store, AnItemWhoseCopyFailsEndsAPrefix) {
    open(StoreSpec{4096, 8}.set("verify", "read"));
    const std::vector<std::string> keys = {"p0", "p1", "p2", "p3", "p4"};
    for (size_t i = 0; i < keys.size(); ++i)
        ASSERT_EQ(put(keys[i], pattern(60 + i, 3000)), 0); // slots 0..4 in order
    auto lay = daxkv::arena::compute_layout(spec_arena_bytes(spec_), 4096, 256);
    FileMap fm(path_);
    ASSERT_TRUE(fm.ok());
    ASSERT_EQ(0, std::memcmp(fm.base() + lay.data_offset + 4096, pattern(61, 3000).data(), 3000));
    fm.base()[lay.data_offset + 1 * 4096 + 7] ^= 0x01; // p1's value
    fm.base()[lay.data_offset + 2 * 4096 + 7] ^= 0x01; // p2's value
    fm.base()[lay.data_offset + 4 * 4096 + 7] ^= 0x01; // p4's: past each prefix's end

    // Without a metadata buffer p0 p1 p3 p4 (p1 fails), with one p0 p2 p4.
    for (bool with_meta : {false, true}) {
        const std::vector<std::string> read =
            with_meta ? std::vector<std::string>{"p0", "p2", "p4"}
                      : std::vector<std::string>{"p0", "p1", "p3", "p4"};
        std::vector<std::vector<uint8_t>> bufs(read.size(), std::vector<uint8_t>(4096, 0xEE));
        std::vector<std::vector<char>> metas(read.size(), std::vector<char>(64));
        std::vector<daxkv_item> items(read.size());
        for (size_t i = 0; i < read.size(); ++i)
            items[i] = daxkv_item{read[i].data(), read[i].size(), bufs[i].data(), bufs[i].size(),
                                  with_meta ? metas[i].data() : nullptr,
                                  with_meta ? metas[i].size() : 0, 0};
        const uint64_t hits_before = stats().hits;
        EXPECT_EQ(daxkv_get_batch(s(), items.data(), items.size(), DAXKV_PREFIX), 1);
        EXPECT_EQ(items[0].status, 0);
        EXPECT_EQ(items[0].len, 3000u);
        EXPECT_EQ(items[1].status, -EIO) << "with meta " << with_meta;
        for (size_t i = 2; i < items.size(); ++i) {
            EXPECT_EQ(items[i].status, -ENOENT) << i << ", with meta " << with_meta;
            EXPECT_EQ(items[i].len, 4096u) << "a later item's length is left as given";
        }
        EXPECT_EQ(stats().hits - hits_before, 1u) << "with meta " << with_meta;
    }
    EXPECT_EQ(contains("p0"), 1);
    EXPECT_EQ(contains("p1"), 0);
    EXPECT_EQ(contains("p2"), 0);
    EXPECT_EQ(value("p3"), pattern(63, 3000));
    EXPECT_EQ(stats().verify_failures, 2u);
    EXPECT_EQ(contains("p4"), 1) << "past the prefix's end, p4 was not checked";
    std::vector<uint8_t> out;
    EXPECT_EQ(get("p4", &out), -EIO);
    EXPECT_EQ(stats().verify_failures, 3u);
    EXPECT_EQ(stats().slots_pending_free, 0u) << "a borrow was not ended";
}

// A metadata byte written over in the header of a committed entry: every
// read with verify=read refuses it, and drops the entry, as it does a value
// written over. Bad input: one byte of each entry's metadata flipped in
// place; met by get_batch with a metadata buffer and without one, a lease,
// a lease batch and the key cursor.
TEST_F(Store, VerifyReadCatchesMetadataWrittenOverAtEveryRead) {
    open(StoreSpec{4096, 8}.set("verify", "read"));
    const std::vector<std::string> keys = {"k0", "k1", "k2", "k3", "k4", "k5"};
    std::vector<std::string> metas;
    for (size_t i = 0; i < keys.size(); ++i) {
        metas.push_back("metadata of " + keys[i]);
        std::vector<uint8_t> v = pattern(40 + i, 1000);
        daxkv_item it{keys[i].data(), keys[i].size(), v.data(), v.size(),
                      metas[i].data(), metas[i].size(), 0};
        ASSERT_EQ(daxkv_put_batch(s(), &it, 1, 0), 1) << daxkv_errmsg();
    }
    auto lay = daxkv::arena::compute_layout(spec_arena_bytes(spec_), 4096, 256);
    FileMap fm(path_);
    ASSERT_TRUE(fm.ok());
    for (size_t slot = 0; slot + 1 < keys.size(); ++slot) { // k5 is left alone
        char *h = fm.base() + lay.header_offset + slot * lay.header_bytes;
        char *key = h + sizeof(daxkv::arena::SlotHeader);
        ASSERT_EQ(std::string(key, 2), keys[slot]) << "slot " << slot;
        key[daxkv::arena::kKeyMax + 3] ^= 0x20; // "metadata" -> "metAdata"
    }

    std::vector<uint8_t> buf(4096);
    std::vector<char> meta(256);
    daxkv_item with_meta{"k0", 2, buf.data(), buf.size(), meta.data(), meta.size(), 0};
    EXPECT_EQ(daxkv_get_batch(s(), &with_meta, 1, 0), 0);
    EXPECT_EQ(with_meta.status, -EIO);
    daxkv_item no_meta{"k1", 2, buf.data(), buf.size(), nullptr, 0, 0};
    EXPECT_EQ(daxkv_get_batch(s(), &no_meta, 1, 0), 0);
    EXPECT_EQ(no_meta.status, -EIO);
    int rc = 0;
    LeasePtr l = lease("k2", &rc);
    EXPECT_EQ(rc, -EIO);
    EXPECT_EQ(l, nullptr);
    daxkv_lease_item li{};
    li.key = "k3";
    li.key_len = 2;
    EXPECT_EQ(daxkv_lease_batch(s(), &li, 1, 0), 0);
    EXPECT_EQ(li.status, -EIO);
    EXPECT_EQ(li.lease, nullptr);

    // The cursor leaves k4's metadata out, and the read that follows drops it.
    daxkv_cursor *c = nullptr;
    ASSERT_EQ(daxkv_cursor_open(s(), nullptr, &c), 0) << daxkv_errmsg();
    std::set<std::string> listed;
    daxkv_key_info ki{};
    ki.struct_size = sizeof ki;
    while ((rc = daxkv_cursor_next(c, &ki)) == 1) {
        listed.insert(std::string(static_cast<const char *>(ki.key), ki.key_len));
        if (ki.key_len == 2 && std::memcmp(ki.key, "k5", 2) == 0) {
            EXPECT_EQ(std::string(static_cast<const char *>(ki.meta), ki.meta_len), metas[5]);
        }
    }
    daxkv_cursor_close(c);
    EXPECT_EQ(rc, 0);
    EXPECT_EQ(listed, std::set<std::string>{"k5"});
    std::vector<uint8_t> out;
    EXPECT_EQ(get("k4", &out), -EIO);

    for (size_t i = 0; i + 1 < keys.size(); ++i)
        EXPECT_EQ(contains(keys[i]), 0) << keys[i];
    daxkv_item intact{"k5", 2, buf.data(), buf.size(), meta.data(), meta.size(), 0};
    EXPECT_EQ(daxkv_get_batch(s(), &intact, 1, 0), 1);
    EXPECT_EQ(std::string(meta.data(), intact.meta_len), metas[5]);
    struct daxkv_stats st = stats();
    EXPECT_EQ(st.verify_failures, 5u);
    EXPECT_EQ(st.entries, 1u);
    EXPECT_EQ(st.leases_active, 0u);
}

// ---------------------------------------------------------------------------
// daxkv_memcpy_batch

TEST(MemcpyBatch, CopiesEveryRangeByteExact) {
    // Sizes from bytes to several MiB, so both the inline path and the
    // worker pool run.
    const std::vector<size_t> sizes = {1, 3, 64, 4096, 100000, 3 << 20, 5 << 20, 17};
    std::vector<std::vector<uint8_t>> src, dst;
    std::vector<void *> d;
    std::vector<const void *> sp;
    std::vector<size_t> len;
    for (size_t i = 0; i < sizes.size(); ++i) {
        src.push_back(pattern(i + 100, sizes[i]));
        dst.emplace_back(sizes[i] + 16, 0xEE);
    }
    for (size_t i = 0; i < sizes.size(); ++i) {
        d.push_back(dst[i].data() + 8);
        sp.push_back(src[i].data());
        len.push_back(sizes[i]);
    }
    ASSERT_EQ(daxkv_memcpy_batch(d.data(), sp.data(), len.data(), d.size(), 0), 0);
    for (size_t i = 0; i < sizes.size(); ++i) {
        EXPECT_EQ(0, std::memcmp(dst[i].data() + 8, src[i].data(), sizes[i])) << i;
        for (size_t k = 0; k < 8; ++k) {
            EXPECT_EQ(dst[i][k], 0xEE);
            EXPECT_EQ(dst[i][sizes[i] + 8 + k], 0xEE);
        }
    }
}

TEST(MemcpyBatch, ZeroLengthsAreSkippedEvenWithNullPointers) {
    std::vector<uint8_t> a = pattern(1, 100), b(100, 0);
    void *d[] = {nullptr, b.data(), nullptr};
    const void *s[] = {nullptr, a.data(), a.data()};
    size_t len[] = {0, 100, 0};
    ASSERT_EQ(daxkv_memcpy_batch(d, s, len, 3, 0), 0);
    EXPECT_EQ(a, b);
    EXPECT_EQ(daxkv_memcpy_batch(nullptr, nullptr, nullptr, 0, 0), 0);
}

TEST(MemcpyBatch, OverlappingRangesKeepMemmoveSemantics) {
    for (size_t n : {size_t(1000), size_t(3 << 20)}) {
        std::vector<uint8_t> base = pattern(7, n + 4096);
        // Forward overlap (dst after src) and backward overlap (dst before src).
        std::vector<uint8_t> fwd = base, bwd = base, want_f = base, want_b = base;
        std::memmove(want_f.data() + 100, want_f.data(), n);
        std::memmove(want_b.data(), want_b.data() + 100, n);
        void *d[] = {fwd.data() + 100, bwd.data()};
        const void *s[] = {fwd.data(), bwd.data() + 100};
        size_t len[] = {n, n};
        ASSERT_EQ(daxkv_memcpy_batch(d, s, len, 2, 0), 0);
        EXPECT_TRUE(fwd == want_f) << n;
        EXPECT_TRUE(bwd == want_b) << n;
        // dst == src is a no-op.
        void *same[] = {fwd.data()};
        const void *same_s[] = {fwd.data()};
        ASSERT_EQ(daxkv_memcpy_batch(same, same_s, len, 1, 0), 0);
        EXPECT_TRUE(fwd == want_f);
    }
}

TEST(MemcpyBatch, BadArgumentsAreEinval) {
    std::vector<uint8_t> a(64, 1), b(64, 0);
    void *d[] = {b.data(), nullptr};
    const void *s[] = {a.data(), a.data()};
    size_t len[] = {64, 8};
    EXPECT_EQ(daxkv_memcpy_batch(d, s, len, 2, 0), -EINVAL);
    EXPECT_TRUE(contains_text(daxkv_errmsg(), "range 1")) << daxkv_errmsg();
    const void *s2[] = {a.data(), nullptr};
    void *d2[] = {b.data(), b.data()};
    EXPECT_EQ(daxkv_memcpy_batch(d2, s2, len, 2, 0), -EINVAL);
    EXPECT_EQ(daxkv_memcpy_batch(nullptr, s, len, 1, 0), -EINVAL);
    EXPECT_EQ(daxkv_memcpy_batch(d, nullptr, len, 1, 0), -EINVAL);
    EXPECT_EQ(daxkv_memcpy_batch(d, s, nullptr, 1, 0), -EINVAL);
    EXPECT_EQ(daxkv_memcpy_batch(d, s, len, 1, 1), -EINVAL);
    EXPECT_TRUE(contains_text(daxkv_errmsg(), "flags")) << daxkv_errmsg();
    // Nothing was copied by any refused call.
    EXPECT_TRUE(std::all_of(b.begin(), b.end(), [](uint8_t x) { return x == 0; }));
}
