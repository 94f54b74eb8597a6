// The commit protocol under durability=power, counted through the mappings'
// persist probe (platform/mapping.hpp): a batch writes back every value and
// header and its pool-history words, fences once, stores and writes back the
// commit words, and fences once more, however many items it holds. What a
// crash leaves is the crash suites' (tests/crash): these tests count.
#include <atomic>
#include <string>
#include <vector>

#include "helpers.hpp"
#include "platform/mapping.hpp"

namespace {

using namespace daxkv_test;
namespace persist = daxkv::platform::testing;

class Counter : public persist::PersistProbe {
public:
    void wrote_back(const void *, size_t) noexcept override { write_backs++; }
    void drained() noexcept override { fences++; }
    std::atomic<uint64_t> write_backs{0}, fences{0};
};

// The probe, installed for one scope.
class Probe {
public:
    Probe() { persist::set_persist_probe(&c_); }
    ~Probe() { persist::set_persist_probe(nullptr); }
    uint64_t fences() const { return c_.fences.load(); }
    uint64_t write_backs() const { return c_.write_backs.load(); }

private:
    Counter c_;
};

class Commit : public StoreFixture {
protected:
    // n items of 1000 bytes, keys "<tag>-<i>".
    std::vector<daxkv_item> items(const std::string &tag, size_t n) {
        keys_.clear();
        values_.clear();
        for (size_t i = 0; i < n; ++i) {
            keys_.push_back(tag + "-" + std::to_string(i));
            values_.push_back(pattern(i + 1, 1000));
        }
        std::vector<daxkv_item> out(n);
        for (size_t i = 0; i < n; ++i)
            out[i] = daxkv_item{keys_[i].data(), keys_[i].size(), values_[i].data(),
                                values_[i].size(), nullptr, 0, 0};
        return out;
    }
    std::vector<std::string> keys_;
    std::vector<std::vector<uint8_t>> values_;
};

TEST_F(Commit, APutBatchFencesTwiceWhateverItsSize) {
    open(StoreSpec(4096, 64).set("durability", "power").set("stats_interval", "0"));
    for (size_t n : {1, 8, 40}) {
        std::vector<daxkv_item> batch = items("n" + std::to_string(n), n);
        Probe probe;
        ASSERT_EQ(daxkv_put_batch(s(), batch.data(), n, 0), static_cast<int>(n))
            << daxkv_errmsg();
        EXPECT_EQ(probe.fences(), 2u) << n << " items";
        // Per item: its value, its header, its key's pool-history word (one
        // device), its commit word.
        EXPECT_EQ(probe.write_backs(), 4 * n) << n << " items";
    }
}

TEST_F(Commit, APutFencesTwice) {
    open(StoreSpec(4096, 8).set("durability", "power").set("stats_interval", "0"));
    const std::vector<uint8_t> v = pattern(7, 3000);
    Probe probe;
    ASSERT_EQ(put("one", v), 0) << daxkv_errmsg();
    EXPECT_EQ(probe.fences(), 2u);
    EXPECT_EQ(probe.write_backs(), 4u);
}

TEST_F(Commit, AReplaceBatchFencesTwiceAndWithdrawsEachOldVersion) {
    open(StoreSpec(4096, 64).set("durability", "power").set("stats_interval", "0"));
    std::vector<daxkv_item> first = items("r", 16);
    ASSERT_EQ(daxkv_put_batch(s(), first.data(), first.size(), 0), 16);
    std::vector<daxkv_item> again = items("r", 16);
    Probe probe;
    ASSERT_EQ(daxkv_put_batch(s(), again.data(), again.size(), DAXKV_REPLACE), 16);
    // Two fences for the batch, then each old version's withdrawal is made
    // durable on its own (after the new commit, under the key's lock).
    EXPECT_EQ(probe.fences(), 2u + 16u);
}

TEST_F(Commit, ProcessDurabilityWritesNothingBack) {
    open(StoreSpec(4096, 16).set("durability", "process").set("stats_interval", "0"));
    std::vector<daxkv_item> batch = items("p", 8);
    Probe probe;
    ASSERT_EQ(daxkv_put_batch(s(), batch.data(), batch.size(), 0), 8);
    EXPECT_EQ(probe.fences(), 0u);
    EXPECT_EQ(probe.write_backs(), 0u);
}

TEST_F(Commit, ABatchCommittedOncePerStepIsWholeAfterAReopen) {
    const StoreSpec spec =
        StoreSpec(4096, 64).set("durability", "power").set("stats_interval", "0");
    open(spec);
    std::vector<daxkv_item> batch = items("w", 40);
    ASSERT_EQ(daxkv_put_batch(s(), batch.data(), batch.size(), 0), 40);
    reopen(spec);
    for (size_t i = 0; i < keys_.size(); ++i)
        EXPECT_EQ(value(keys_[i]), values_[i]) << keys_[i];
    EXPECT_EQ(stats().recovered_entries, 40u);
}

} // namespace
