// Batches: daxkv_put_batch / get_batch / contains_batch / remove_batch /
// unpin_batch, per-item results, prefix mode, pinning lookups, metadata.
//
// Bad inputs tried here, each with its expected code:
//   NULL items with n > 0                                        -> -EINVAL (call)
//   unknown flags for every batch call                           -> -EINVAL (call)
//   per item: NULL key, key length 0 and 513, NULL data with a
//     length, NULL meta with a length, a key in the item array
//     (which the call writes), in every batch call               -> status -EINVAL
//   per item: value larger than slot_bytes, meta larger than
//     meta_bytes                                                 -> status -E2BIG
//   the same, spread through a batch of many megabytes          -> each item's own status
//   per item: destination or meta buffer too small               -> status -ENOBUFS, needed length in len
//   per item: full arena with eviction=none                      -> status -ENOSPC
//   per item: remove of a pinned key without DAXKV_FORCE         -> status -EBUSY
#include <gtest/gtest.h>

#include <cerrno>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <deque>
#include <mutex>
#include <string>
#include <vector>

#include "alloc_failure.hpp"
#include "capi/handles.hpp"
#include "engine/fault.hpp"
#include "helpers.hpp"
#include "store/copies.hpp"

using namespace daxkv_test;

namespace {

class Batch : public StoreFixture {
protected:
    // Keys and buffers that outlive the items pointing at them.
    std::vector<std::string> keys_;
    std::vector<std::vector<uint8_t>> bufs_, metas_;

    std::vector<daxkv_item> put_items(const std::vector<std::string> &keys,
                                      const std::vector<size_t> &lens, size_t meta_len = 0) {
        keys_ = keys;
        bufs_.clear();
        metas_.clear();
        std::vector<daxkv_item> items(keys.size());
        for (size_t i = 0; i < keys.size(); ++i) {
            bufs_.push_back(pattern(std::hash<std::string>()(keys[i]), lens[i]));
            metas_.push_back(pattern(~std::hash<std::string>()(keys[i]), meta_len));
        }
        for (size_t i = 0; i < keys.size(); ++i) {
            items[i] = daxkv_item{keys_[i].data(), keys_[i].size(), bufs_[i].data(),
                                  bufs_[i].size(), meta_len ? metas_[i].data() : nullptr,
                                  meta_len, 12345};
        }
        return items;
    }
    // n keys (key_of(0..n)), item i of len - (i % period) * step bytes.
    static void numbered(size_t n, size_t len, size_t period, size_t step,
                         std::vector<std::string> &keys, std::vector<size_t> &lens) {
        for (size_t i = 0; i < n; ++i) {
            keys.push_back(key_of(i));
            lens.push_back(len - (i % period) * step);
        }
    }
    std::vector<daxkv_item> get_items(const std::vector<std::string> &keys, size_t cap,
                                      size_t meta_cap = 0) {
        keys_ = keys;
        bufs_.assign(keys.size(), std::vector<uint8_t>(cap, 0xEE));
        metas_.assign(keys.size(), std::vector<uint8_t>(meta_cap, 0xEE));
        std::vector<daxkv_item> items(keys.size());
        for (size_t i = 0; i < keys.size(); ++i)
            items[i] = daxkv_item{keys_[i].data(), keys_[i].size(), bufs_[i].data(), cap,
                                  meta_cap ? metas_[i].data() : nullptr, meta_cap, 12345};
        return items;
    }
    // Items naming keys only; the key bytes live as long as the test.
    std::vector<daxkv_item> key_items(const std::vector<std::string> &keys) {
        std::vector<daxkv_item> items(keys.size());
        for (size_t i = 0; i < keys.size(); ++i) {
            key_pool_.push_back(keys[i]);
            const std::string &k = key_pool_.back();
            items[i] = daxkv_item{k.data(), k.size(), nullptr, 0, nullptr, 0, 12345};
        }
        return items;
    }
    std::deque<std::string> key_pool_; // push_back keeps earlier elements in place
    static std::vector<uint8_t> expected(const std::string &k, size_t len) {
        return pattern(std::hash<std::string>()(k), len);
    }
    static std::vector<uint8_t> expected_meta(const std::string &k, size_t len) {
        return pattern(~std::hash<std::string>()(k), len);
    }
};

} // namespace

TEST_F(Batch, PutBatchThenGetBatchWithHeterogeneousSizes) {
    open({64 * 1024, 8});
    const std::vector<std::string> keys = {"a", "bb", "ccc", "d", "e"};
    const std::vector<size_t> lens = {1, 4096, 65536, 777, 0};
    auto items = put_items(keys, lens);
    ASSERT_EQ(daxkv_put_batch(s(), items.data(), items.size(), 0), 5) << daxkv_errmsg();
    for (const auto &it : items)
        EXPECT_EQ(it.status, 0);
    auto gets = get_items(keys, 65536);
    ASSERT_EQ(daxkv_get_batch(s(), gets.data(), gets.size(), 0), 5);
    for (size_t i = 0; i < keys.size(); ++i) {
        EXPECT_EQ(gets[i].status, 0) << keys[i];
        ASSERT_EQ(gets[i].len, lens[i]) << keys[i];
        std::vector<uint8_t> got(bufs_[i].begin(), bufs_[i].begin() + long(lens[i]));
        EXPECT_EQ(got, expected(keys[i], lens[i])) << keys[i];
        if (lens[i] < 65536) {
            EXPECT_EQ(bufs_[i][lens[i]], 0xEE) << keys[i]; // nothing past the value
        }
    }
    struct daxkv_stats st = stats();
    EXPECT_EQ(st.puts, 5u);
    EXPECT_EQ(st.hits, 5u);
    EXPECT_EQ(st.bytes_written, 1u + 4096 + 65536 + 777);
}

TEST_F(Batch, LargeBatchRunsOnTheWorkerPoolByteExact) {
    // 6 values of 1 MiB: large enough to be split over the copy workers.
    open(StoreSpec{1 << 20, 6}.set("workers", "4"));
    std::vector<std::string> keys;
    std::vector<size_t> lens;
    for (int i = 0; i < 6; ++i) {
        keys.push_back(key_of(i));
        lens.push_back((1 << 20) - size_t(i) * 4099);
    }
    auto items = put_items(keys, lens);
    ASSERT_EQ(daxkv_put_batch(s(), items.data(), items.size(), 0), 6);
    auto gets = get_items(keys, 1 << 20);
    ASSERT_EQ(daxkv_get_batch(s(), gets.data(), gets.size(), 0), 6);
    for (size_t i = 0; i < keys.size(); ++i) {
        ASSERT_EQ(gets[i].len, lens[i]);
        EXPECT_EQ(0, std::memcmp(bufs_[i].data(), expected(keys[i], lens[i]).data(), lens[i]))
            << keys[i];
    }
}

// A batch of many megabytes on the workers, failures spread through it:
// each is that item's alone, a key given twice far apart is stored once,
// and every value is byte-exact.
TEST_F(Batch, PutBatchOfManyMegabytesGivesEachItemItsOwnResult) {
    const size_t kVal = 64 * 1024, kN = 96;
    open(StoreSpec{kVal, kN + 8}.set("workers", "2"));
    std::vector<std::string> keys;
    std::vector<size_t> lens;
    numbered(kN, kVal, 7, 4099, keys, lens);
    keys[60] = keys[10]; // a duplicate, far from the first
    lens[5] = kVal + 1;  // larger than a slot: -E2BIG
    auto items = put_items(keys, lens);
    items[30].key_len = 0;     // -EINVAL
    items[75].data = nullptr;  // -EINVAL (a length without data)
    ASSERT_EQ(daxkv_put_batch(s(), items.data(), items.size(), 0), static_cast<int>(kN - 4));
    for (size_t i = 0; i < kN; ++i) {
        const int want = i == 5 ? -E2BIG : i == 30 || i == 75 ? -EINVAL : i == 60 ? DAXKV_EXISTED : 0;
        EXPECT_EQ(items[i].status, want) << "item " << i;
    }
    EXPECT_EQ(stats().entries, kN - 4);
    EXPECT_EQ(stats().slots_inflight, 0u);
    for (size_t i = 0; i < kN; ++i) {
        if (items[i].status != 0)
            continue;
        EXPECT_TRUE(value(keys[i]) == expected(keys[i], lens[i])) << "item " << i;
    }
}

// A batch of many segments (its copies go to the workers a few megabytes,
// or a hundred-odd small values, at a time while the next items are
// claimed, and each segment commits as soon as its copies are done):
// every claim still comes before the first commit. The items cannot evict
// each other even when the batch is larger than the arena, and a key
// given twice, segments apart, is stored once (the second is
// DAXKV_EXISTED, with DAXKV_REPLACE too: the first is in flight when it is
// claimed). With checksums on and off; values of 64 KiB (segments cut by
// their bytes) and of 4 KiB (cut by their count).
class SegmentedBatch : public Batch {
protected:
    void run(const char *verify, size_t kVal = 64 * 1024) {
        const size_t kSlots = 200, kN = 320; // 20 MiB of values at 64 KiB
        open(StoreSpec{kVal, kSlots}.set("eviction", "lru").set("verify", verify));
        ASSERT_EQ(put("old", pattern(1, 100)), 0);
        std::vector<std::string> keys;
        std::vector<size_t> lens;
        numbered(kN, kVal, 5, 1000, keys, lens);
        keys[150] = keys[3];  // a duplicate, segments after the first
        lens[100] = kVal + 1; // -E2BIG in the middle of a segment
        auto items = put_items(keys, lens);
        items[120].data = nullptr; // -EINVAL
        // 200 slots, "old" evictable: the first 200 items that can be
        // stored are, "old" goes, and then nothing else can.
        const int stored = daxkv_put_batch(s(), items.data(), items.size(), DAXKV_REPLACE);
        ASSERT_EQ(stored, static_cast<int>(kSlots)) << daxkv_errmsg();
        size_t ok = 0;
        for (size_t i = 0; i < kN; ++i) {
            const int want = i == 100   ? -E2BIG
                             : i == 120 ? -EINVAL
                             : i == 150 ? DAXKV_EXISTED
                             : ok < kSlots ? 0
                                           : -ENOSPC;
            EXPECT_EQ(items[i].status, want) << "item " << i;
            if (items[i].status == 0) {
                ++ok;
                EXPECT_TRUE(value(keys[i]) == expected(keys[i], lens[i])) << "item " << i;
            }
        }
        EXPECT_EQ(ok, kSlots);
        EXPECT_EQ(contains("old"), 0);
        EXPECT_TRUE(value(keys[3]) == expected(keys[3], lens[3]));
        const struct daxkv_stats st = stats();
        EXPECT_EQ(st.entries, kSlots);
        EXPECT_EQ(st.evictions, 1u);
        EXPECT_EQ(st.slots_inflight, 0u);
    }
};

// A read batch of many segments (borrowed a segment at a time while the
// workers copy the ones before, each segment's borrows ended when its
// copies have finished): a miss, a buffer too small and a value that fails
// its checksum (verify=read), all in later segments, fail those items
// alone; every other value is byte-exact, no borrow is left behind; with
// DAXKV_PREFIX the batch stops at a miss in a later segment.
class SegmentedGet : public SegmentedBatch, public ::testing::WithParamInterface<size_t> {};

TEST_P(SegmentedGet, GetBatchOfManySegmentsGivesEachItemItsOwnResult) {
    const size_t kVal = GetParam(), kN = 320; // 20 MiB of values at 64 KiB
    open(StoreSpec{kVal, kN + 8}.set("verify", "read"));
    std::vector<std::string> keys;
    std::vector<size_t> lens;
    numbered(kN, kVal, 5, 1000, keys, lens);
    auto puts = put_items(keys, lens);
    ASSERT_EQ(daxkv_put_batch(s(), puts.data(), puts.size(), 0), static_cast<int>(kN));
    {
        // Damage one value in place, through a lease of its bytes.
        LeasePtr l = lease(keys[250]);
        ASSERT_TRUE(l);
        const_cast<char *>(static_cast<const char *>(daxkv_lease_data(l.get())))[777] ^= 0x40;
    }
    std::vector<std::string> wanted = keys;
    wanted[140] = "missing";
    auto gets = get_items(wanted, kVal);
    gets[90].len = lens[90] - 1; // -ENOBUFS, the length needed reported
    EXPECT_EQ(daxkv_get_batch(s(), gets.data(), gets.size(), 0), static_cast<int>(kN - 3));
    for (size_t i = 0; i < kN; ++i) {
        const int want = i == 140 ? -ENOENT : i == 90 ? -ENOBUFS : i == 250 ? -EIO : 0;
        EXPECT_EQ(gets[i].status, want) << "item " << i;
        if (want == 0 || want == -ENOBUFS) {
            EXPECT_EQ(gets[i].len, lens[i]) << "item " << i;
        }
        if (want == 0) {
            EXPECT_EQ(0, std::memcmp(bufs_[i].data(), expected(keys[i], lens[i]).data(), lens[i]))
                << "item " << i;
        }
    }
    struct daxkv_stats st = stats();
    EXPECT_EQ(st.verify_failures, 1u);
    EXPECT_EQ(st.entries, kN - 1);
    EXPECT_EQ(st.slots_pending_free, 0u);

    wanted = keys;
    wanted[200] = "missing";
    gets = get_items(wanted, kVal);
    EXPECT_EQ(daxkv_get_batch(s(), gets.data(), gets.size(), DAXKV_PREFIX), 200);
    for (size_t i = 0; i < kN; ++i) {
        EXPECT_EQ(gets[i].status, i < 200 ? 0 : -ENOENT) << "item " << i;
        if (i < 200) {
            EXPECT_EQ(0, std::memcmp(bufs_[i].data(), expected(keys[i], lens[i]).data(), lens[i]))
                << "item " << i;
        }
    }
    EXPECT_EQ(stats().slots_pending_free, 0u);
}

INSTANTIATE_TEST_SUITE_P(ValueSizes, SegmentedGet, ::testing::Values(64 * 1024, 4096),
                         [](const ::testing::TestParamInfo<size_t> &i) {
                             return std::to_string(i.param / 1024) + "KiB";
                         });

namespace {

// The process's resident set: now, and its peak since the last reset (0 if
// /proc cannot tell).
uint64_t status_kib(const char *field) {
    std::FILE *f = std::fopen("/proc/self/status", "r");
    if (!f)
        return 0;
    char line[256];
    uint64_t kib = 0;
    const size_t n = std::strlen(field);
    while (std::fgets(line, sizeof line, f))
        if (std::strncmp(line, field, n) == 0)
            kib = std::strtoull(line + n, nullptr, 10);
    std::fclose(f);
    return kib;
}

bool reset_peak_rss() {
    std::FILE *f = std::fopen("/proc/self/clear_refs", "w");
    if (!f)
        return false;
    const bool ok = std::fputs("5", f) >= 0;
    return std::fclose(f) == 0 && ok;
}

} // namespace

TEST_F(SegmentedBatch, GetBatchSizesItsHashPlacesByTheValuesNotByTheBuffersRoom) {
    // verify=read hashes each value as it is copied, into places made
    // before the copy starts. Bad input tried: 300,000 items that all miss,
    // each claiming SIZE_MAX bytes of room; made for the room (up to a
    // slot of 64 MiB: 512 bytes of places an item), the places would take
    // 150 MB. Made for the values borrowed, they take nothing.
    const uint64_t kSlot = 64 << 20;
    const size_t kN = 300000;
    StoreSpec spec{kSlot, 1};
    spec.arena_bytes = 2 * kSlot; // a slot this large is aligned past its headers
    open(spec.set("verify", "read"));
    char buf[16];
    const std::string key = "missing";
    std::vector<daxkv_item> gets(kN);
    for (auto &it : gets) {
        it = daxkv_item{};
        it.key = key.data();
        it.key_len = key.size();
        it.data = buf;
        it.len = SIZE_MAX;
    }
    if (!reset_peak_rss() || status_kib("VmHWM:") == 0) {
        GTEST_SKIP() << "/proc/self/clear_refs or VmHWM unavailable: peak memory cannot be measured";
    }
    const uint64_t before = status_kib("VmHWM:");
    EXPECT_EQ(daxkv_get_batch(s(), gets.data(), kN, 0), 0) << daxkv_errmsg();
    const uint64_t grown = status_kib("VmHWM:") - before;
    EXPECT_LT(grown, 32u * 1024) << "peak resident memory grew by " << grown << " KiB";
    for (size_t i = 0; i < kN; i += 997)
        EXPECT_EQ(gets[i].status, -ENOENT) << "item " << i;
}

// Whether a batch's copies stream (nt_stores=auto) is decided by the bytes
// the whole batch moves, for all of its segments alike: 1,000 values of
// 1 KiB (1000 KiB, over kNonTemporalMin, cut into several segments) all
// stream, stored and read back; 200 of them (200 KiB) none, even read into
// buffers of 64 KiB each (bad input tried: buffers far larger than the
// values, whose room must not decide).
TEST_F(Batch, EverySegmentOfABatchStreamsAsTheWholeBatchDecides) {
    class Recorder : public daxkv::engine::FaultHook {
    public:
        std::mutex m;
        size_t streamed = 0, cached = 0;
        int before_chunk(const daxkv::engine::CopyOp &op, size_t, size_t) noexcept override {
            std::lock_guard<std::mutex> g(m);
            ++(op.nontemporal ? streamed : cached);
            return 0;
        }
        void reset() {
            std::lock_guard<std::mutex> g(m);
            streamed = cached = 0;
        }
    };
    const size_t kVal = 1024, kN = 1000, kFew = 200;
    static_assert(kN * kVal >= daxkv::kNonTemporalMin && kFew * kVal < daxkv::kNonTemporalMin,
                  "one batch over the threshold, one under it");
    open(StoreSpec{kVal, kN}.set("workers", "2").set("nt_stores", "auto"));
    std::vector<std::string> keys;
    std::vector<size_t> lens;
    numbered(kN, kVal, 1, 0, keys, lens);
    Recorder rec;
    daxkv::engine::testing::set_fault_hook(&rec);
    auto puts = put_items(keys, lens);
    const int stored = daxkv_put_batch(s(), puts.data(), kN, 0);
    const size_t put_streamed = rec.streamed, put_cached = rec.cached;
    rec.reset();
    auto gets = get_items(keys, kVal);
    const int read = daxkv_get_batch(s(), gets.data(), kN, 0);
    const size_t get_streamed = rec.streamed, get_cached = rec.cached;
    rec.reset();
    std::vector<std::string> few(keys.begin(), keys.begin() + kFew);
    auto small = get_items(few, 64 * 1024);
    const int read_few = daxkv_get_batch(s(), small.data(), kFew, 0);
    daxkv::engine::testing::set_fault_hook(nullptr);
    ASSERT_EQ(stored, static_cast<int>(kN)) << daxkv_errmsg();
    ASSERT_EQ(read, static_cast<int>(kN)) << daxkv_errmsg();
    ASSERT_EQ(read_few, static_cast<int>(kFew)) << daxkv_errmsg();
    EXPECT_EQ(put_streamed, kN);
    EXPECT_EQ(put_cached, 0u);
    EXPECT_EQ(get_streamed, kN);
    EXPECT_EQ(get_cached, 0u) << "a segment started before the batch had moved enough bytes";
    EXPECT_EQ(rec.streamed, 0u);
    EXPECT_EQ(rec.cached, kFew);
}

TEST_F(SegmentedBatch, ClaimsEveryItemBeforeItCommitsAnyWithChecksums) { run("recover"); }
TEST_F(SegmentedBatch, ClaimsEveryItemBeforeItCommitsAnyWithoutChecksums) { run("off"); }
TEST_F(SegmentedBatch, ClaimsEveryItemBeforeItCommitsAnyOfSmallValues) { run("recover", 4096); }

TEST_F(Batch, GetBatchLeavesPositionalHoles) {
    open();
    auto items = put_items({"a", "c"}, {100, 300});
    ASSERT_EQ(daxkv_put_batch(s(), items.data(), 2, 0), 2);
    auto gets = get_items({"a", "b", "c", "d"}, 4096);
    EXPECT_EQ(daxkv_get_batch(s(), gets.data(), gets.size(), 0), 2);
    EXPECT_EQ(gets[0].status, 0);
    EXPECT_EQ(gets[1].status, -ENOENT);
    EXPECT_EQ(gets[2].status, 0);
    EXPECT_EQ(gets[3].status, -ENOENT);
    EXPECT_EQ(gets[0].len, 100u);
    EXPECT_EQ(gets[2].len, 300u);
    EXPECT_EQ(0, std::memcmp(bufs_[0].data(), expected("a", 100).data(), 100));
    EXPECT_EQ(0, std::memcmp(bufs_[2].data(), expected("c", 300).data(), 300));
    EXPECT_EQ(bufs_[1], std::vector<uint8_t>(4096, 0xEE));
    EXPECT_EQ(bufs_[3], std::vector<uint8_t>(4096, 0xEE));
    struct daxkv_stats st = stats();
    EXPECT_EQ(st.hits, 2u);
    EXPECT_EQ(st.misses, 2u);
}

TEST_F(Batch, GetBatchPrefixStopsAtTheFirstMiss) {
    open();
    auto items = put_items({"a", "b", "d"}, {10, 20, 40});
    ASSERT_EQ(daxkv_put_batch(s(), items.data(), 3, 0), 3);
    auto gets = get_items({"a", "b", "c", "d"}, 4096);
    EXPECT_EQ(daxkv_get_batch(s(), gets.data(), gets.size(), DAXKV_PREFIX), 2);
    EXPECT_EQ(gets[0].status, 0);
    EXPECT_EQ(gets[1].status, 0);
    EXPECT_EQ(gets[2].status, -ENOENT);
    EXPECT_EQ(gets[3].status, -ENOENT); // present, but after the first miss
    EXPECT_EQ(0, std::memcmp(bufs_[0].data(), expected("a", 10).data(), 10));
    EXPECT_EQ(0, std::memcmp(bufs_[1].data(), expected("b", 20).data(), 20));
    EXPECT_EQ(bufs_[3], std::vector<uint8_t>(4096, 0xEE)); // d was not copied
    EXPECT_EQ(stats().hits, 2u);
    // A first-item miss gives an empty prefix; a full hit gives n.
    auto g2 = get_items({"zz", "a"}, 4096);
    EXPECT_EQ(daxkv_get_batch(s(), g2.data(), 2, DAXKV_PREFIX), 0);
    EXPECT_EQ(g2[1].status, -ENOENT);
    auto g3 = get_items({"a", "b", "d"}, 4096);
    EXPECT_EQ(daxkv_get_batch(s(), g3.data(), 3, DAXKV_PREFIX), 3);
}

TEST_F(Batch, GetBatchPrefixStopsAtASmallBuffer) {
    open();
    auto items = put_items({"a", "b", "c"}, {10, 2000, 10});
    ASSERT_EQ(daxkv_put_batch(s(), items.data(), 3, 0), 3);
    auto gets = get_items({"a", "b", "c"}, 100);
    EXPECT_EQ(daxkv_get_batch(s(), gets.data(), 3, DAXKV_PREFIX), 1);
    EXPECT_EQ(gets[1].status, -ENOBUFS);
    EXPECT_EQ(gets[1].len, 2000u);
    EXPECT_EQ(gets[2].status, -ENOENT);
}

TEST_F(Batch, GetBatchReportsNeededLengthPerItem) {
    open();
    auto items = put_items({"small", "large", "mid"}, {50, 3000, 500});
    ASSERT_EQ(daxkv_put_batch(s(), items.data(), 3, 0), 3);
    auto gets = get_items({"small", "large", "mid"}, 1000);
    EXPECT_EQ(daxkv_get_batch(s(), gets.data(), 3, 0), 2);
    EXPECT_EQ(gets[0].status, 0);
    EXPECT_EQ(gets[0].len, 50u);
    EXPECT_EQ(gets[1].status, -ENOBUFS);
    EXPECT_EQ(gets[1].len, 3000u);
    EXPECT_EQ(bufs_[1], std::vector<uint8_t>(1000, 0xEE));
    EXPECT_EQ(gets[2].status, 0);
    EXPECT_EQ(0, std::memcmp(bufs_[2].data(), expected("mid", 500).data(), 500));
    // Retry with the reported size.
    std::vector<uint8_t> big(gets[1].len);
    daxkv_item retry{"large", 5, big.data(), big.size(), nullptr, 0, 0};
    EXPECT_EQ(daxkv_get_batch(s(), &retry, 1, 0), 1);
    EXPECT_EQ(big, expected("large", 3000));
}

TEST_F(Batch, MetadataRoundTrip) {
    open(StoreSpec{4096, 4, 128});
    auto items = put_items({"a", "b"}, {100, 200}, 128);
    items[1].meta_len = 5;
    ASSERT_EQ(daxkv_put_batch(s(), items.data(), 2, 0), 2);
    auto gets = get_items({"a", "b"}, 4096, 128);
    ASSERT_EQ(daxkv_get_batch(s(), gets.data(), 2, 0), 2);
    EXPECT_EQ(gets[0].meta_len, 128u);
    EXPECT_EQ(gets[1].meta_len, 5u);
    EXPECT_EQ(0, std::memcmp(metas_[0].data(), expected_meta("a", 128).data(), 128));
    EXPECT_EQ(0, std::memcmp(metas_[1].data(), expected_meta("b", 5).data(), 5));
    EXPECT_EQ(metas_[1][5], 0xEE);
    // The lease sees the same blob.
    LeasePtr l = lease("a");
    size_t ml = 0;
    const void *m = daxkv_lease_meta(l.get(), &ml);
    ASSERT_EQ(ml, 128u);
    EXPECT_EQ(0, std::memcmp(m, expected_meta("a", 128).data(), 128));
    // A meta buffer too small: -ENOBUFS for that item, value not copied.
    auto small = get_items({"a"}, 4096, 16);
    EXPECT_EQ(daxkv_get_batch(s(), small.data(), 1, 0), 0);
    EXPECT_EQ(small[0].status, -ENOBUFS);
    EXPECT_EQ(small[0].meta_len, 128u); // the metadata size needed
    EXPECT_EQ(small[0].len, 100u);
    EXPECT_EQ(bufs_[0], std::vector<uint8_t>(4096, 0xEE));
    EXPECT_EQ(metas_[0], std::vector<uint8_t>(16, 0xEE));
    // No meta buffer: the value alone.
    auto nometa = get_items({"a"}, 4096, 0);
    EXPECT_EQ(daxkv_get_batch(s(), nometa.data(), 1, 0), 1);
    EXPECT_EQ(nometa[0].meta_len, 0u);
    EXPECT_EQ(0, std::memcmp(bufs_[0].data(), expected("a", 100).data(), 100));
}

TEST_F(Batch, MetadataLargerThanMetaBytesIsE2big) {
    open(StoreSpec{4096, 4, 64});
    auto items = put_items({"ok", "fat"}, {100, 100}, 65);
    items[0].meta_len = 64;
    EXPECT_EQ(daxkv_put_batch(s(), items.data(), 2, 0), 1);
    EXPECT_EQ(items[0].status, 0);
    EXPECT_EQ(items[1].status, -E2BIG);
    EXPECT_TRUE(contains_text(daxkv_errmsg(), "meta_bytes")) << daxkv_errmsg();
    EXPECT_EQ(contains("fat"), 0);
    EXPECT_EQ(contains("ok"), 1);
    struct daxkv_stats st = stats();
    EXPECT_EQ(st.slots_used, 1u);
    EXPECT_EQ(st.slots_inflight, 0u);
}

TEST_F(Batch, PerItemArgumentErrorsDoNotStopTheBatch) {
    open(StoreSpec{4096, 8, 32});
    std::string k513(513, 'x'), good1 = "g1", good2 = "g2";
    std::vector<uint8_t> v = pattern(5, 100), big = pattern(6, 4097), meta(8, 1);
    std::vector<daxkv_item> items = {
        {nullptr, 3, v.data(), v.size(), nullptr, 0, 0},          // NULL key
        {good1.data(), 0, v.data(), v.size(), nullptr, 0, 0},     // empty key
        {k513.data(), 513, v.data(), v.size(), nullptr, 0, 0},    // key too long
        {good1.data(), good1.size(), nullptr, 10, nullptr, 0, 0}, // NULL data
        {good1.data(), good1.size(), v.data(), v.size(), nullptr, 4, 0}, // NULL meta
        {good1.data(), good1.size(), big.data(), big.size(), nullptr, 0, 0}, // too big
        {good1.data(), good1.size(), v.data(), v.size(), meta.data(), meta.size(), 0},
        {good2.data(), good2.size(), v.data(), v.size(), nullptr, 0, 0},
    };
    EXPECT_EQ(daxkv_put_batch(s(), items.data(), items.size(), 0), 2);
    const int want[] = {-EINVAL, -EINVAL, -EINVAL, -EINVAL, -EINVAL, -E2BIG, 0, 0};
    for (size_t i = 0; i < items.size(); ++i)
        EXPECT_EQ(items[i].status, want[i]) << "item " << i;
    EXPECT_EQ(value("g1"), v);
    EXPECT_EQ(value("g2"), v);
    EXPECT_EQ(stats().entries, 2u);
    // The same bad keys in the other batch calls.
    std::vector<daxkv_item> bad = {{nullptr, 3, nullptr, 0, nullptr, 0, 0},
                                   {k513.data(), 513, nullptr, 0, nullptr, 0, 0}};
    EXPECT_EQ(daxkv_contains_batch(s(), bad.data(), 2, 0), 0);
    EXPECT_EQ(bad[0].status, -EINVAL);
    EXPECT_EQ(bad[1].status, -EINVAL);
    EXPECT_EQ(daxkv_get_batch(s(), bad.data(), 2, 0), 0);
    EXPECT_EQ(bad[0].status, -EINVAL);
    EXPECT_EQ(daxkv_remove_batch(s(), bad.data(), 2, 0), 0);
    EXPECT_EQ(bad[1].status, -EINVAL);
    EXPECT_EQ(daxkv_unpin_batch(s(), bad.data(), 2, 0), 0);
    EXPECT_EQ(bad[0].status, -EINVAL);
    std::vector<daxkv_item> nodata = {{good1.data(), good1.size(), nullptr, 10, nullptr, 0, 0}};
    EXPECT_EQ(daxkv_get_batch(s(), nodata.data(), 1, 0), 0);
    EXPECT_EQ(nodata[0].status, -EINVAL);
}

// A key lying in the item array, which the call writes (here item 1's key
// is item 0's status): the batch hashed every key first and read the key
// again at its claim, after item 0's status had changed it, and filed the
// entry under the old bytes' hash: found by no lookup, listed twice by the
// cursor, stored again by the next put of the same key.
TEST_F(Batch, AKeyInTheItemArrayIsRefused) {
    open(StoreSpec{4096, 8});
    std::vector<uint8_t> v = pattern(7, 100);
    std::vector<daxkv_item> items(2);
    items[0] = {"first", 5, v.data(), v.size(), nullptr, 0, -1};
    items[1] = {&items[0].status, sizeof items[0].status, v.data(), v.size(), nullptr, 0, 0};
    EXPECT_EQ(daxkv_put_batch(s(), items.data(), items.size(), 0), 1);
    EXPECT_EQ(items[0].status, 0);
    EXPECT_EQ(items[1].status, -EINVAL);
    EXPECT_TRUE(contains_text(daxkv_errmsg(), "item 1: the key lies in the item array"))
        << daxkv_errmsg();
    EXPECT_EQ(value("first"), v);
    EXPECT_EQ(stats().entries, 1u);
    EXPECT_EQ(stats().puts_failed, 1u);
    // The other batch calls write their items too (a get reported a miss of
    // a stored key, a remove removed nothing): the same refusal.
    ASSERT_EQ(put("DCBA", v), 0);
    std::vector<uint8_t> out(200);
    using BatchCall = int (*)(daxkv_store *, daxkv_item *, size_t, unsigned);
    const std::vector<std::pair<const char *, BatchCall>> calls = {
        {"get_batch", daxkv_get_batch}, {"contains_batch", daxkv_contains_batch},
        {"remove_batch", daxkv_remove_batch}, {"unpin_batch", daxkv_unpin_batch}};
    for (const auto &[name, call] : calls) {
        std::vector<daxkv_item> two(2);
        const int32_t dcba = 0x41424344; // "DCBA" in memory, little-endian
        two[0] = {"first", 5, out.data(), out.size(), nullptr, 0, dcba};
        two[1] = {&two[0].status, sizeof two[0].status, out.data(), out.size(), nullptr, 0, 0};
        call(s(), two.data(), two.size(), 0);
        EXPECT_EQ(two[1].status, -EINVAL) << name;
    }
    daxkv_lease_item leases[2] = {};
    leases[0].key = "DCBA";
    leases[0].key_len = 4;
    leases[1].key = &leases[0].status;
    leases[1].key_len = sizeof leases[0].status;
    EXPECT_EQ(daxkv_lease_batch(s(), leases, 2, 0), 1);
    EXPECT_EQ(leases[1].status, -EINVAL);
    daxkv_lease_release(leases[0].lease);
    EXPECT_EQ(contains("DCBA"), 1);
    EXPECT_EQ(stats().entries_pinned, 0u);
}

TEST_F(Batch, NullItemsAndUnknownFlagsAreEinval) {
    open();
    EXPECT_EQ(daxkv_put_batch(s(), nullptr, 1, 0), -EINVAL);
    EXPECT_EQ(daxkv_get_batch(s(), nullptr, 2, 0), -EINVAL);
    EXPECT_EQ(daxkv_contains_batch(s(), nullptr, 3, 0), -EINVAL);
    EXPECT_EQ(daxkv_remove_batch(s(), nullptr, 4, 0), -EINVAL);
    EXPECT_EQ(daxkv_unpin_batch(s(), nullptr, 5, 0), -EINVAL);
    EXPECT_EQ(daxkv_put_batch(nullptr, nullptr, 0, 0), -EINVAL);
    // n = 0 with NULL items is an empty batch.
    EXPECT_EQ(daxkv_put_batch(s(), nullptr, 0, 0), 0);
    EXPECT_EQ(daxkv_get_batch(s(), nullptr, 0, DAXKV_PREFIX), 0);
    EXPECT_EQ(daxkv_contains_batch(s(), nullptr, 0, 0), 0);
    auto items = put_items({"a"}, {10});
    EXPECT_EQ(daxkv_put_batch(s(), items.data(), 1, DAXKV_PREFIX), -EINVAL);
    EXPECT_EQ(daxkv_put_batch(s(), items.data(), 1, DAXKV_FORCE), -EINVAL);
    EXPECT_EQ(contains("a"), 0);
    ASSERT_EQ(daxkv_put_batch(s(), items.data(), 1, 0), 1);
    auto gets = get_items({"a"}, 100);
    EXPECT_EQ(daxkv_get_batch(s(), gets.data(), 1, DAXKV_PIN), -EINVAL);
    EXPECT_EQ(daxkv_get_batch(s(), gets.data(), 1, DAXKV_REPLACE), -EINVAL);
    auto ks = key_items({"a"});
    EXPECT_EQ(daxkv_contains_batch(s(), ks.data(), 1, DAXKV_FORCE), -EINVAL);
    EXPECT_EQ(daxkv_remove_batch(s(), ks.data(), 1, DAXKV_PIN), -EINVAL);
    EXPECT_EQ(daxkv_unpin_batch(s(), ks.data(), 1, DAXKV_FORCE), -EINVAL);
    EXPECT_TRUE(contains_text(daxkv_errmsg(), "flags")) << daxkv_errmsg();
    EXPECT_EQ(stats().entries_pinned, 0u);
    EXPECT_EQ(contains("a"), 1);
}

TEST_F(Batch, PutBatchReportsExistedAndHonoursReplace) {
    open();
    ASSERT_EQ(put("a", pattern(1, 10)), 0);
    auto items = put_items({"a", "b"}, {20, 30});
    EXPECT_EQ(daxkv_put_batch(s(), items.data(), 2, 0), 1);
    EXPECT_EQ(items[0].status, DAXKV_EXISTED);
    EXPECT_EQ(items[1].status, 0);
    EXPECT_EQ(value("a"), pattern(1, 10));
    EXPECT_EQ(daxkv_put_batch(s(), items.data(), 2, DAXKV_REPLACE), 2);
    EXPECT_EQ(value("a"), expected("a", 20));
    EXPECT_EQ(value("b"), expected("b", 30));
    EXPECT_EQ(stats().entries, 2u);
}

TEST_F(Batch, DuplicateKeyInOneBatchIsStoredOnce) {
    open();
    auto items = put_items({"dup", "dup", "other"}, {10, 20, 30});
    EXPECT_EQ(daxkv_put_batch(s(), items.data(), 3, 0), 2);
    EXPECT_EQ(items[0].status, 0);
    EXPECT_EQ(items[1].status, DAXKV_EXISTED); // the first is in flight
    EXPECT_EQ(value("dup"), expected("dup", 10));
    EXPECT_EQ(stats().entries, 2u);
    auto gets = get_items({"dup", "dup"}, 100);
    EXPECT_EQ(daxkv_get_batch(s(), gets.data(), 2, 0), 2);
    EXPECT_EQ(bufs_[0], bufs_[1]);
}

TEST_F(Batch, PutBatchIntoAFullArenaWithoutEviction) {
    open(StoreSpec{4096, 2}.set("eviction", "none"));
    auto items = put_items({"a", "b", "c", "d"}, {10, 20, 30, 40});
    EXPECT_EQ(daxkv_put_batch(s(), items.data(), 4, 0), 2);
    EXPECT_EQ(items[0].status, 0);
    EXPECT_EQ(items[1].status, 0);
    EXPECT_EQ(items[2].status, -ENOSPC);
    EXPECT_EQ(items[3].status, -ENOSPC);
    EXPECT_EQ(value("a"), expected("a", 10));
    EXPECT_EQ(value("b"), expected("b", 20));
    EXPECT_EQ(contains("c"), 0);
    struct daxkv_stats st = stats();
    EXPECT_EQ(st.slots_inflight, 0u);
    EXPECT_EQ(st.evictions, 0u);
    EXPECT_EQ(st.puts_failed, 2u);
}

TEST_F(Batch, PutBatchLargerThanTheArenaWithLruKeepsItsOwnItems) {
    // Items of one batch are in flight together and cannot evict each other:
    // with 2 slots, the third item of a batch finds nothing to evict.
    open(StoreSpec{4096, 2}.set("eviction", "lru"));
    ASSERT_EQ(put("old", pattern(1, 10)), 0);
    auto items = put_items({"a", "b", "c"}, {10, 20, 30});
    EXPECT_EQ(daxkv_put_batch(s(), items.data(), 3, 0), 2);
    EXPECT_EQ(items[0].status, 0);
    EXPECT_EQ(items[1].status, 0);
    EXPECT_EQ(items[2].status, -ENOSPC);
    EXPECT_EQ(contains("old"), 0);
    EXPECT_EQ(value("a"), expected("a", 10));
    EXPECT_EQ(value("b"), expected("b", 20));
    EXPECT_EQ(stats().evictions, 1u);
}

TEST_F(Batch, ContainsBatchIsPositional) {
    open();
    auto items = put_items({"a", "c"}, {1, 1});
    ASSERT_EQ(daxkv_put_batch(s(), items.data(), 2, 0), 2);
    std::vector<std::string> ks = {"a", "b", "c", "d"};
    auto q = key_items(ks);
    EXPECT_EQ(daxkv_contains_batch(s(), q.data(), q.size(), 0), 2);
    const int want[] = {1, 0, 1, 0};
    for (size_t i = 0; i < q.size(); ++i)
        EXPECT_EQ(q[i].status, want[i]) << ks[i];
    EXPECT_EQ(stats().entries_pinned, 0u);
}

TEST_F(Batch, ContainsBatchPrefixCountsLeadingHits) {
    open();
    auto items = put_items({"a", "b", "d"}, {1, 1, 1});
    ASSERT_EQ(daxkv_put_batch(s(), items.data(), 3, 0), 3);
    std::vector<std::string> ks = {"a", "b", "c", "d"};
    auto q = key_items(ks);
    EXPECT_EQ(daxkv_contains_batch(s(), q.data(), q.size(), DAXKV_PREFIX), 2);
    EXPECT_EQ(q[0].status, 1);
    EXPECT_EQ(q[1].status, 1);
    EXPECT_EQ(q[2].status, 0);
    EXPECT_EQ(q[3].status, 0); // present but after the first miss
    std::vector<std::string> first_miss = {"x", "a"};
    auto q2 = key_items(first_miss);
    EXPECT_EQ(daxkv_contains_batch(s(), q2.data(), 2, DAXKV_PREFIX), 0);
    EXPECT_EQ(q2[1].status, 0);
}

TEST_F(Batch, ContainsBatchPinPinsEveryHit) {
    open({4096, 3});
    auto items = put_items({"a", "b", "c"}, {1, 2, 3});
    ASSERT_EQ(daxkv_put_batch(s(), items.data(), 3, 0), 3);
    std::vector<std::string> ks = {"a", "nope", "b"};
    auto q = key_items(ks);
    EXPECT_EQ(daxkv_contains_batch(s(), q.data(), q.size(), DAXKV_PIN), 2);
    EXPECT_EQ(stats().entries_pinned, 2u);
    EXPECT_EQ(remove("a"), -EBUSY);
    EXPECT_EQ(remove("b"), -EBUSY);
    // Pinned entries survive eviction pressure: only c can go.
    ASSERT_EQ(put("d", pattern(4, 4)), 0);
    EXPECT_EQ(contains("c"), 0);
    EXPECT_EQ(put("e", pattern(5, 5)), 0); // evicts d
    EXPECT_EQ(put("f", pattern(6, 6)), 0); // evicts e
    EXPECT_EQ(contains("a"), 1);
    EXPECT_EQ(contains("b"), 1);
    // unpin_batch drops one pin per hit and counts them.
    auto u = key_items({"a", "nope", "b"});
    EXPECT_EQ(daxkv_unpin_batch(s(), u.data(), u.size(), 0), 2);
    EXPECT_EQ(u[0].status, 0);
    EXPECT_EQ(u[1].status, -ENOENT);
    EXPECT_EQ(u[2].status, 0);
    EXPECT_EQ(daxkv_unpin_batch(s(), u.data(), u.size(), 0), 0);
    EXPECT_EQ(u[0].status, -ENOENT);
    EXPECT_EQ(stats().entries_pinned, 0u);
    EXPECT_EQ(remove("a"), 0);
}

TEST_F(Batch, ContainsBatchPinWithPrefixPinsOnlyThePrefix) {
    open({4096, 4});
    auto items = put_items({"a", "b", "d"}, {1, 2, 3});
    ASSERT_EQ(daxkv_put_batch(s(), items.data(), 3, 0), 3);
    auto q = key_items({"a", "b", "c", "d"});
    EXPECT_EQ(daxkv_contains_batch(s(), q.data(), 4, DAXKV_PIN | DAXKV_PREFIX), 2);
    EXPECT_EQ(stats().entries_pinned, 2u);
    EXPECT_EQ(remove("d"), 0); // not pinned
    EXPECT_EQ(remove("a"), -EBUSY);
    EXPECT_EQ(remove("b", DAXKV_FORCE), 0);
}

// A key's pins stop at UINT32_MAX: daxkv_pin says -EOVERFLOW there, and so
// does a pinning daxkv_contains_batch for that item. It used to count the
// item a hit, pinned or not, so the caller's later unpin dropped a pin
// someone else held. (The count is set near the limit through the index:
// four billion pins are not taken one by one.)
TEST_F(Batch, ContainsBatchPinAtThePinLimitIsEOVERFLOWForThatItem) {
    open({4096, 4});
    auto items = put_items({"a", "b", "c"}, {1, 2, 3});
    ASSERT_EQ(daxkv_put_batch(s(), items.data(), 3, 0), 3);
    {
        daxkv::Core &core = store_->store->core();
        daxkv::Index::Locked l = core.index.lookup("b");
        ASSERT_TRUE(l && l->committed());
        const daxkv::Version v = core.index.uncommit(l);
        core.index.commit(l, v, UINT32_MAX - 1);
    }
    EXPECT_EQ(pin("b"), 0); // the last pin there is room for
    EXPECT_EQ(pin("b"), -EOVERFLOW);
    auto q = key_items({"a", "b", "c"});
    EXPECT_EQ(daxkv_contains_batch(s(), q.data(), q.size(), DAXKV_PIN), 2);
    EXPECT_EQ(q[0].status, 1);
    EXPECT_EQ(q[1].status, -EOVERFLOW);
    EXPECT_EQ(q[2].status, 1);
    // A prefix ends at the item that could not be pinned.
    auto p = key_items({"a", "b", "c"});
    EXPECT_EQ(daxkv_contains_batch(s(), p.data(), p.size(), DAXKV_PIN | DAXKV_PREFIX), 1);
    EXPECT_EQ(p[1].status, -EOVERFLOW);
    EXPECT_EQ(p[2].status, 0);
    // a holds the two pins taken, c one; b exactly the pins it had.
    EXPECT_EQ(stats().entries_pinned, 3u);
    for (const char *k : {"a", "a", "c"})
        EXPECT_EQ(unpin(k), 0) << k;
    EXPECT_EQ(unpin("a"), -ENOENT);
    EXPECT_EQ(unpin("c"), -ENOENT);
    EXPECT_EQ(unpin("b"), 0);
    EXPECT_EQ(pin("b"), 0);
    EXPECT_EQ(pin("b"), -EOVERFLOW);
}

TEST_F(Batch, RemoveBatchCountsAndReportsPerItem) {
    open({4096, 4});
    auto items = put_items({"a", "b", "c"}, {1, 2, 3});
    ASSERT_EQ(daxkv_put_batch(s(), items.data(), 3, 0), 3);
    ASSERT_EQ(pin("b"), 0);
    auto r = key_items({"a", "b", "zz", "c"});
    EXPECT_EQ(daxkv_remove_batch(s(), r.data(), r.size(), 0), 2);
    EXPECT_EQ(r[0].status, 0);
    EXPECT_EQ(r[1].status, -EBUSY);
    EXPECT_EQ(r[2].status, -ENOENT);
    EXPECT_EQ(r[3].status, 0);
    EXPECT_EQ(contains("b"), 1);
    auto f = key_items({"b"});
    EXPECT_EQ(daxkv_remove_batch(s(), f.data(), 1, DAXKV_FORCE), 1);
    struct daxkv_stats st = stats();
    EXPECT_EQ(st.entries, 0u);
    EXPECT_EQ(st.slots_free, 4u);
    EXPECT_EQ(st.removes, 3u);
}

// Out of memory at any allocation the calling thread makes during a batch
// call: it succeeds, or fails whole with -ENOMEM; it never returns wrong
// bytes and leaves no write claimed, no entry borrowed and no key pinned.
// A sweep fails each allocation of the call in turn (alloc_failure.hpp),
// for put_batch (new keys, and DAXKV_REPLACE of stored ones), get_batch,
// contains_batch with DAXKV_PIN and remove_batch, with and without
// checksums; the values are large enough to go to the copy workers.
class BatchOutOfMemory : public Batch, public ::testing::WithParamInterface<const char *> {
protected:
    void SetUp() override { numbered(10, 60000, 3, 7000, names_, lens_); }
    // Every key stored with the value of `seed` (the batch's own: 0).
    void store_all(uint64_t seed) {
        for (size_t i = 0; i < names_.size(); ++i) {
            remove(names_[i], DAXKV_FORCE);
            ASSERT_EQ(put(names_[i], value_of(i, seed)), 0);
        }
    }
    std::vector<uint8_t> value_of(size_t i, uint64_t seed) const {
        return seed ? pattern(seed + i, lens_[i]) : expected(names_[i], lens_[i]);
    }
    // The sweep (alloc_failure.hpp), nothing held after every run.
    // allocates: whether the call allocates on the calling thread at all.
    template <typename Setup, typename Call, typename Check>
    void sweep(const std::string &what, Setup setup, Call call, Check check,
               bool allocates = true) {
        const long n = sweep_allocations(what, setup, call, [&](int rc, const std::string &when) {
            check(rc, when);
            expect_nothing_held(names_, when);
        });
        if (allocates) {
            EXPECT_GT(n, 1) << what << " allocates nothing on the calling thread?";
        } else {
            EXPECT_EQ(n, 1) << what << " allocates now: make the sweep expect it";
        }
    }

    std::vector<std::string> names_;
    std::vector<size_t> lens_;
};

TEST_P(BatchOutOfMemory, AnyAllocationFailingLeavesNothingHeld) {
    open(StoreSpec{64 * 1024, 32}.set("verify", GetParam()));
    const size_t n = names_.size();
    std::vector<daxkv_item> items;
    // A call that fails whole says so in every item's status: a get's
    // items borrowed before the failure said 0 though nothing was copied.
    auto every_status_is = [&](int rc, const std::string &when) {
        for (size_t i = 0; rc < 0 && i < n; ++i) {
            EXPECT_EQ(items[i].status, rc) << when << ": item " << i;
        }
    };
    sweep(
        "put_batch", [&] { items = put_items(names_, lens_); },
        [&] { return daxkv_put_batch(s(), items.data(), n, 0); },
        [&](int rc, const std::string &when) {
            every_status_is(rc, when);
            for (size_t i = 0; i < n; ++i) {
                if (rc == -ENOMEM) {
                    EXPECT_EQ(contains(names_[i]), 0) << when << ": stored by a failed call";
                } else {
                    EXPECT_EQ(value(names_[i]), value_of(i, 0)) << when;
                }
            }
            if (rc != -ENOMEM) {
                EXPECT_EQ(rc, static_cast<int>(n)) << when << ": " << daxkv_errmsg();
            }
        });
    sweep(
        "put_batch DAXKV_REPLACE",
        [&] {
            store_all(77);
            items = put_items(names_, lens_);
        },
        [&] { return daxkv_put_batch(s(), items.data(), n, DAXKV_REPLACE); },
        [&](int rc, const std::string &when) {
            every_status_is(rc, when);
            // A failed call may have committed a segment before it ran out:
            // each key holds its old value or its new one, whole.
            for (size_t i = 0; i < n; ++i) {
                std::vector<uint8_t> got = value(names_[i]);
                if (rc == -ENOMEM) {
                    EXPECT_TRUE(got == value_of(i, 77) || got == value_of(i, 0)) << when;
                } else {
                    EXPECT_EQ(got, value_of(i, 0)) << when;
                }
            }
            if (rc != -ENOMEM) {
                EXPECT_EQ(rc, static_cast<int>(n)) << when << ": " << daxkv_errmsg();
            }
        });
    sweep(
        "get_batch",
        [&] {
            store_all(0);
            items = get_items(names_, 64 * 1024);
        },
        [&] { return daxkv_get_batch(s(), items.data(), n, 0); },
        [&](int rc, const std::string &when) {
            every_status_is(rc, when);
            if (rc != -ENOMEM) {
                EXPECT_EQ(rc, static_cast<int>(n)) << when << ": " << daxkv_errmsg();
                for (size_t i = 0; i < n; ++i) {
                    EXPECT_EQ(items[i].len, lens_[i]) << when;
                    EXPECT_EQ(0, std::memcmp(bufs_[i].data(), value_of(i, 0).data(), lens_[i]))
                        << when << ": " << names_[i];
                }
            }
            for (size_t i = 0; i < n; ++i)
                EXPECT_EQ(value(names_[i]), value_of(i, 0)) << when << ": the entry is intact";
        });
    sweep(
        "contains_batch DAXKV_PIN",
        [&] {
            store_all(0);
            items = key_items(names_);
        },
        [&] { return daxkv_contains_batch(s(), items.data(), n, DAXKV_PIN); },
        [&](int rc, const std::string &when) {
            every_status_is(rc, when);
            if (rc != -ENOMEM) {
                EXPECT_EQ(rc, static_cast<int>(n)) << when << ": " << daxkv_errmsg();
                for (const auto &k : names_)
                    EXPECT_EQ(unpin(k), 0) << when;
            }
        });
    sweep(
        "remove_batch",
        [&] {
            store_all(0);
            items = key_items(names_);
        },
        [&] { return daxkv_remove_batch(s(), items.data(), n, 0); },
        [&](int rc, const std::string &when) {
            every_status_is(rc, when);
            for (size_t i = 0; i < n; ++i) {
                if (rc != -ENOMEM) {
                    EXPECT_EQ(contains(names_[i]), 0) << when;
                } else if (contains(names_[i]) == 1) {
                    EXPECT_EQ(value(names_[i]), value_of(i, 0)) << when;
                }
            }
            if (rc != -ENOMEM) {
                EXPECT_EQ(rc, static_cast<int>(n)) << when << ": " << daxkv_errmsg();
            }
        },
        false);
}

// The same for daxkv_put and daxkv_get of one value of 3 MiB (more block
// hashes than a single put keeps without allocating).
TEST_P(BatchOutOfMemory, SinglePutAndGetOfALargeValue) {
    open(StoreSpec{4 << 20, 4}.set("verify", GetParam()));
    names_ = {"large"};
    lens_ = {3 << 20};
    const std::vector<uint8_t> v = value_of(0, 0);
    sweep(
        "daxkv_put", [] {}, [&] { return put(names_[0], v); },
        [&](int rc, const std::string &when) {
            if (rc == -ENOMEM) {
                EXPECT_EQ(contains(names_[0]), 0) << when << ": stored by a failed call";
            } else {
                EXPECT_EQ(rc, 0) << when << ": " << daxkv_errmsg();
                EXPECT_EQ(value(names_[0]), v) << when;
            }
        });
    std::vector<uint8_t> out;
    sweep(
        "daxkv_get",
        [&] {
            store_all(0);
            out.assign(4 << 20, 0xEE);
        },
        [&] {
            size_t len = 0;
            int rc = daxkv_get(s(), names_[0].data(), names_[0].size(), out.data(), out.size(),
                               &len);
            return rc == 0 && len != v.size() ? -EPROTO : rc;
        },
        [&](int rc, const std::string &when) {
            if (rc != -ENOMEM) {
                EXPECT_EQ(rc, 0) << when << ": " << daxkv_errmsg();
                EXPECT_EQ(0, std::memcmp(out.data(), v.data(), v.size())) << when;
            }
            EXPECT_EQ(value(names_[0]), v) << when << ": the entry is intact";
        });
}

INSTANTIATE_TEST_SUITE_P(Checksums, BatchOutOfMemory, ::testing::Values("recover", "read", "off"),
                         [](const ::testing::TestParamInfo<const char *> &p) {
                             return std::string(p.param);
                         });

// How a batch is cut into segments (store/copies.hpp): by bytes for large
// values, by count once a segment holds enough bytes for small ones, and
// never into more segments than max_segments() says (the vectors a batch
// reserves for them must not grow while copies point into them). Sizes
// tried: empty values, 1 byte, 100 bytes, 4 KiB, 64 KiB, 4 MiB, 64 MiB, and
// mixes of them.
TEST(SegmentRule, SegmentsEndByBytesOrByCountAndNeverExceedTheirBound) {
    using daxkv::kSegmentBytes;
    using daxkv::kSegmentItems;
    using daxkv::kSegmentMinBytes;
    EXPECT_TRUE(daxkv::segment_full(1, kSegmentBytes));
    EXPECT_FALSE(daxkv::segment_full(kSegmentItems - 1, kSegmentBytes - 1));
    EXPECT_TRUE(daxkv::segment_full(kSegmentItems, kSegmentMinBytes));
    EXPECT_FALSE(daxkv::segment_full(kSegmentItems, kSegmentMinBytes - 1))
        << "a segment would start before its batch had moved bytes enough to decide streaming";
    EXPECT_FALSE(daxkv::segment_full(100000, 0));

    const std::vector<std::vector<uint64_t>> patterns = {
        {0}, {1}, {100}, {4096}, {64 << 10}, {4 << 20}, {64ull << 20},
        {4096, 100, 0, 64 << 10}, {1, 4 << 20, 4096, 4096, 4096}};
    for (const auto &pat : patterns) {
        for (size_t n : {size_t(1), size_t(127), size_t(128), size_t(1000), size_t(5000)}) {
            size_t segments = 0, items = 0;
            uint64_t bytes = 0, total = 0;
            for (size_t i = 0; i < n; ++i) {
                const uint64_t len = pat[i % pat.size()];
                total += len;
                bytes += len;
                if (daxkv::segment_full(++items, bytes)) {
                    ++segments;
                    items = 0;
                    bytes = 0;
                }
            }
            segments += items > 0;
            EXPECT_LE(segments, daxkv::max_segments(n, total))
                << n << " values, pattern starting " << pat[0];
            EXPECT_LE(daxkv::max_segments(n, total), n);
        }
    }
}
