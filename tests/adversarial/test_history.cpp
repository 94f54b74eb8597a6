// Histories of a pool: devices missing at an open, left out of the
// configuration, added back at run time, with keys replaced, removed and
// evicted while they were away. What a reader sees is the acknowledged
// state: a device that comes back never brings back a value that was
// replaced or removed while it was away, and open and device_add resolve a
// key held twice by one rule (the newest commit wins).
//
// Bad inputs tried here: a device file moved away between opens (and
// create=0, so that it is reported missing); replacements, removals of keys
// only the missing device holds (the remove says -ENOENT), removals after a
// replacement, evictions; two opens that each lacked one device; the device
// added back by daxkv_device_add instead of an open; an arena holding two
// committed versions of one key (what a crash mid-replace leaves) given to
// daxkv_device_add, and one whose key the pool holds older or newer.
// Damaged history: removal-table words of erased media (all ones), of
// 2^64 - 4096 and of exactly 2^64 - 1 on one device of the pool.
// Device identity: a device replaced by an older byte copy of itself, taken
// after a clean close and taken while the store ran (with keys replaced and
// removed after the copy), the latter put back for the next open and given
// to daxkv_device_add in the open it was copied in; a copy of a member (the
// same uuid) added beside it, then the member removed by migration and by
// eviction and added back, and the pool reopened with both; the two
// devices' files exchanged between opens; an arena of another pool holding
// the same keys added; a close cut between the devices (one marked
// closed, the other not); a copy taken while the store ran, before it
// crashed, opened beside its device at the next open or added to it; a
// copy taken while the store ran, missing at a later open and added to it.
#include <chrono>
#include <cstdio>
#include <thread>

#include <fcntl.h>
#include <unistd.h>

#include "arena/arena.hpp"
#include "arena/format.hpp"
#include "common.hpp"

using namespace adv;

namespace {

// Opens of two histories that each lacked a device are ordered by when
// they happened, to about a millisecond (history.cpp): the scenarios that
// compare such histories leave this much time between them.
void next_moment() { std::this_thread::sleep_for(std::chrono::milliseconds(5)); }

class History : public ::testing::Test {
protected:
    void SetUp() override {
        a_ = dir_.file("a");
        b_ = dir_.file("b");
    }
    // Opens the pool on A and B (those present), hotplug on, create=0 once
    // the devices exist. Returns the code.
    int open(bool create = false, std::vector<std::pair<std::string, std::string>> opts = {}) {
        store_.reset();
        opts.emplace_back("hotplug", "1");
        opts.emplace_back("create", create ? "1" : "0");
        opts.emplace_back("eviction", evict_ ? "lru" : "none");
        ConfigPtr cfg = config(opts, {{a_, dev_bytes_for(slots_)}, {b_, dev_bytes_for(slots_)}});
        daxkv_store *s = nullptr;
        int rc = daxkv_open(&s, cfg.get());
        if (rc == 0)
            store_.reset(s);
        return rc;
    }
    // Opens the pool's two devices and a third, a copy of one of them, as
    // they are (none created, their sizes their own).
    void open_with_copy(const std::string &copy) {
        store_.reset();
        ConfigPtr cfg = config({{"hotplug", "1"}, {"create", "0"}}, {{a_, 0}, {b_, 0}, {copy, 0}});
        daxkv_store *st = nullptr;
        ASSERT_EQ(daxkv_open(&st, cfg.get()), 0) << daxkv_errmsg();
        store_.reset(st);
    }
    // Moves a device's file away (missing at the next open) or back.
    void hide(const std::string &p) { ASSERT_EQ(std::rename(p.c_str(), (p + ".away").c_str()), 0); }
    void unhide(const std::string &p) {
        ASSERT_EQ(std::rename((p + ".away").c_str(), p.c_str()), 0);
    }
    std::string state(size_t d) { return pool_status(s())["devices"][d]["state"]; }
    // Keys of [0, n) whose entries lie on device row d.
    // A new pool holding keys 0..n-1 (version 1).
    void open_holding(uint32_t n) {
        ASSERT_EQ(open(true), 0) << daxkv_errmsg();
        for (uint32_t i = 0; i < n; ++i)
            ASSERT_EQ(put_key(s(), i, 1), 0);
    }
    std::vector<uint32_t> keys_on(uint32_t n, size_t d) {
        std::vector<uint32_t> out;
        for (uint32_t i = 0; i < n; ++i) {
            std::string k = key_of(i);
            daxkv_lease *l = nullptr;
            if (daxkv_lease_acquire(s(), k.data(), k.size(), &l) != 0)
                continue;
            uint64_t b = pool_status(s())["devices"][d]["borrowed_slot_count"];
            daxkv_lease_release(l);
            if (b == 1)
                out.push_back(i);
        }
        return out;
    }
    int pin_key(uint32_t i) {
        std::string k = key_of(i);
        return daxkv_pin(s(), k.data(), k.size());
    }
    int remove(uint32_t i) {
        std::string k = key_of(i);
        return daxkv_remove(s(), k.data(), k.size(), 0);
    }
    daxkv_store *s() const { return store_.get(); }

    TempDir dir_;
    std::string a_, b_;
    uint32_t slots_ = 16;
    bool evict_ = false;
    StorePtr store_;
};

TEST_F(History, ADeviceMissingAtOneOpenBringsBackNoReplacedOrRemovedValue) {
    ASSERT_NO_FATAL_FAILURE(open_holding(12));
    const std::vector<uint32_t> on_b = keys_on(12, 1), on_a = keys_on(12, 0);
    ASSERT_GE(on_b.size(), 4u);
    ASSERT_GE(on_a.size(), 2u);
    store_.reset();

    // B is missing at this open: its keys are replaced (landing on A), one
    // is removed (-ENOENT: nothing holds it now), one is replaced and then
    // removed; a key of A is removed too.
    hide(b_);
    ASSERT_EQ(open(), 0) << daxkv_errmsg();
    ASSERT_EQ(state(1), "missing");
    for (size_t j = 0; j < on_b.size(); ++j) {
        if (j == 0) {
            EXPECT_EQ(remove(on_b[j]), -ENOENT);
        } else {
            ASSERT_EQ(put_key(s(), on_b[j], 2, DAXKV_REPLACE), 0) << daxkv_errmsg();
            if (j == 1) {
                ASSERT_EQ(remove(on_b[j]), 0);
            }
        }
    }
    ASSERT_EQ(remove(on_a[0]), 0);
    store_.reset();

    // B is back: every key reads what the last acknowledged call left.
    unhide(b_);
    ASSERT_EQ(open(), 0) << daxkv_errmsg();
    for (uint32_t i = 0; i < 12; ++i) {
        uint64_t want = 1;
        for (size_t j = 0; j < on_b.size(); ++j)
            if (on_b[j] == i)
                want = j <= 1 ? 0 : 2;
        if (i == on_a[0])
            want = 0;
        EXPECT_EQ(check_key(s(), i, want), "") << "key " << i;
    }
    // And a later open of the whole pool agrees.
    store_.reset();
    ASSERT_EQ(open(), 0);
    for (size_t j = 0; j < on_b.size(); ++j)
        EXPECT_EQ(check_key(s(), on_b[j], j <= 1 ? 0 : 2), "");
}

TEST_F(History, EvictionsWhileAwayStayEvicted) {
    evict_ = true;
    slots_ = 8;
    ASSERT_EQ(open(true), 0) << daxkv_errmsg();
    for (uint32_t i = 0; i < 8; ++i)
        ASSERT_EQ(put_key(s(), i, 1), 0);
    const std::vector<uint32_t> on_b = keys_on(8, 1);
    ASSERT_FALSE(on_b.empty());
    store_.reset();
    hide(b_);
    ASSERT_EQ(open(), 0);
    // B's keys replaced on A, then pushed out of A by new keys (LRU).
    for (uint32_t i : on_b)
        ASSERT_EQ(put_key(s(), i, 2, DAXKV_REPLACE), 0);
    for (uint32_t i = 100; i < 140; ++i)
        ASSERT_EQ(put_key(s(), i, 1), 0);
    for (uint32_t i : on_b)
        ASSERT_EQ(check_key(s(), i, 0), "") << "key " << i << " should have been evicted";
    store_.reset();
    unhide(b_);
    ASSERT_EQ(open(), 0);
    for (uint32_t i : on_b)
        EXPECT_EQ(check_key(s(), i, 0), "") << "key " << i << " came back from B";
}

TEST_F(History, TwoOpensThatEachLackedADeviceAreOrderedByWhenTheyHappened) {
    ASSERT_NO_FATAL_FAILURE(open_holding(12));
    const std::vector<uint32_t> on_b = keys_on(12, 1);
    ASSERT_FALSE(on_b.empty());
    const uint32_t k = on_b[0];
    store_.reset();
    // Without A: K replaced on B (version 2).
    hide(a_);
    ASSERT_EQ(open(), 0);
    ASSERT_EQ(put_key(s(), k, 2, DAXKV_REPLACE), 0);
    store_.reset();
    unhide(a_);
    // Then without B: K replaced on A (version 3), later in time.
    next_moment();
    hide(b_);
    ASSERT_EQ(open(), 0);
    ASSERT_EQ(check_key(s(), k, 0), "");
    ASSERT_EQ(put_key(s(), k, 3), 0);
    store_.reset();
    unhide(b_);
    ASSERT_EQ(open(), 0);
    EXPECT_EQ(check_key(s(), k, 3), "");
}

TEST_F(History, ARemovalOnlyAnotherDeviceSawStaysAfterTheDeviceRanAlone) {
    // Keys on A removed by an open without A (recorded on B only), then an
    // open of A alone, then both: the open of A alone raised A's floor past
    // the removal, so A's floor claimed to have seen it, and the removed
    // keys came back for good although B, which saw the removal, was there.
    ASSERT_NO_FATAL_FAILURE(open_holding(12));
    const std::vector<uint32_t> on_a = keys_on(12, 0);
    ASSERT_GE(on_a.size(), 2u);
    store_.reset();
    next_moment();
    hide(a_);
    ASSERT_EQ(open(), 0);
    EXPECT_EQ(remove(on_a[0]), -ENOENT); // recorded: a key no device present holds
    store_.reset();
    unhide(a_);
    next_moment();
    hide(b_);
    ASSERT_EQ(open(), 0);
    EXPECT_EQ(check_key(s(), on_a[0], 1), ""); // only B saw the removal: back until B is
    store_.reset();
    unhide(b_);
    ASSERT_EQ(open(), 0);
    EXPECT_EQ(check_key(s(), on_a[0], 0), "");
    for (size_t j = 1; j < on_a.size(); ++j)
        EXPECT_EQ(check_key(s(), on_a[j], 1), "") << on_a[j]; // or dropped with its bucket
    store_.reset();
    ASSERT_EQ(open(), 0); // and stays removed
    EXPECT_EQ(check_key(s(), on_a[0], 0), "");
}

TEST_F(History, ADeviceAddedBackAtRunTimeBringsBackNothingStale) {
    ASSERT_NO_FATAL_FAILURE(open_holding(12));
    const std::vector<uint32_t> on_b = keys_on(12, 1);
    ASSERT_GE(on_b.size(), 3u);
    store_.reset();
    hide(b_);
    ASSERT_EQ(open(), 0);
    ASSERT_EQ(put_key(s(), on_b[0], 2, DAXKV_REPLACE), 0);
    EXPECT_EQ(remove(on_b[1]), -ENOENT);
    unhide(b_);
    ASSERT_EQ(daxkv_device_add(s(), b_.c_str(), dev_bytes_for(slots_)), 0) << daxkv_errmsg();
    EXPECT_EQ(check_key(s(), on_b[0], 2), "");
    EXPECT_EQ(check_key(s(), on_b[1], 0), "");
    for (size_t j = 2; j < on_b.size(); ++j)
        EXPECT_EQ(check_key(s(), on_b[j], 1), ""); // untouched while away: back
}

// An arena holding two committed versions of key 0: version 1 in slot 0,
// version 2 (newer) in slot 1, as a crash between a replace's commit and
// the withdrawal of the old version leaves it.
void make_two_commits(const std::string &path) {
    ConfigPtr cfg = config({}, {{path, dev_bytes_for(8)}});
    daxkv_store *raw = nullptr;
    ASSERT_EQ(daxkv_open(&raw, cfg.get()), 0) << daxkv_errmsg();
    ASSERT_EQ(put_key(raw, 0, 1), 0);
    ASSERT_EQ(put_key(raw, 0, 2, DAXKV_REPLACE), 0);
    daxkv_close(raw);
    daxkv::arena::Layout lay = daxkv::arena::compute_layout(dev_bytes_for(8), kSlot, 256);
    FileMap m(path);
    ASSERT_TRUE(m.ok());
    auto *h0 = reinterpret_cast<daxkv::arena::SlotHeader *>(m.base() + lay.header_offset);
    ASSERT_EQ(h0->commit, 0u);
    h0->commit = h0->seq; // the old version's commit word, as before its withdrawal
}

TEST_F(History, AddKeepsTheNewestOfTwoCommitsAsOpenDoes) {
    std::string x = dir_.file("x");
    make_two_commits(x);
    ASSERT_EQ(open(true), 0) << daxkv_errmsg();
    ASSERT_EQ(daxkv_device_add(s(), x.c_str(), dev_bytes_for(8)), 0) << daxkv_errmsg();
    EXPECT_EQ(check_key(s(), 0, 2), "");
    store_.reset();
    // A plain open of such an arena agrees.
    std::string x2 = dir_.file("x2");
    make_two_commits(x2);
    {
        ConfigPtr cfg = config({}, {{x2, dev_bytes_for(8)}});
        daxkv_store *raw = nullptr;
        ASSERT_EQ(daxkv_open(&raw, cfg.get()), 0);
        StorePtr only(raw);
        EXPECT_EQ(check_key(only.get(), 0, 2), "");
    }
}

TEST_F(History, AddResolvesAKeyThePoolHoldsByTheNewestCommit) {
    // X holds key 0 (version 1) and key 1 (version 1), written before the
    // pool below puts key 0 version 5: the pool's key 0 is newer, X's key 1
    // is the only one.
    std::string x = dir_.file("x");
    {
        ConfigPtr cfg = config({}, {{x, dev_bytes_for(8)}});
        daxkv_store *raw = nullptr;
        ASSERT_EQ(daxkv_open(&raw, cfg.get()), 0);
        ASSERT_EQ(put_key(raw, 0, 1), 0);
        ASSERT_EQ(put_key(raw, 1, 1), 0);
        daxkv_close(raw);
    }
    next_moment();
    ASSERT_EQ(open(true), 0);
    ASSERT_EQ(put_key(s(), 0, 5), 0);
    ASSERT_EQ(daxkv_device_add(s(), x.c_str(), dev_bytes_for(8)), 0) << daxkv_errmsg();
    EXPECT_EQ(check_key(s(), 0, 5), "");
    EXPECT_EQ(check_key(s(), 1, 1), "");
    // The other way round: X written after the pool's version (X is newer).
    store_.reset();
    std::string y = dir_.file("y");
    ASSERT_EQ(open(), 0);
    ASSERT_EQ(put_key(s(), 7, 1), 0);
    store_.reset();
    next_moment();
    {
        ConfigPtr cfg = config({}, {{y, dev_bytes_for(8)}});
        daxkv_store *raw = nullptr;
        ASSERT_EQ(daxkv_open(&raw, cfg.get()), 0);
        ASSERT_EQ(put_key(raw, 7, 9), 0);
        daxkv_close(raw);
    }
    ASSERT_EQ(open(), 0);
    ASSERT_EQ(pin_key(7), 0);
    ASSERT_EQ(daxkv_device_add(s(), y.c_str(), dev_bytes_for(8)), 0) << daxkv_errmsg();
    EXPECT_EQ(check_key(s(), 7, 9), "");
    // Pins belong to the key: still pinned.
    std::string k = key_of(7);
    EXPECT_EQ(daxkv_remove(s(), k.data(), k.size(), 0), -EBUSY);
}

TEST_F(History, OutOfRangeRemovalWordsLoseNoLaterWrite) {
    // The removal table is outside the superblock's checksum. Words at or
    // above 2^63 (erased media, a stray write) once carried the pool's
    // sequence numbers past 2^64: every later commit then lost to them at
    // the next open, on this device and, once the word was shared, on the
    // healthy one too. They are now damage, set to the device's floor.
    slots_ = 64;
    ASSERT_NO_FATAL_FAILURE(open_holding(12));
    store_.reset();
    {
        const int fd = ::open(a_.c_str(), O_RDWR);
        ASSERT_GE(fd, 0);
        const uint32_t n = daxkv::arena::kRemovalBucketsPerBlock;
        std::vector<uint64_t> ones(n, ~uint64_t(0));
        const off_t table_a = daxkv::arena::kRemovalTableOffset;
        const off_t table_b = daxkv::arena::kSuperblockBytes + daxkv::arena::kRemovalTableOffset;
        ASSERT_EQ(::pwrite(fd, ones.data(), n * 8, table_a), ssize_t(n * 8));
        const uint64_t near_top[2] = {~uint64_t(0) - 4095, ~uint64_t(0)};
        ASSERT_EQ(::pwrite(fd, near_top, sizeof near_top, table_b), ssize_t(sizeof near_top));
        ::close(fd);
    }
    // Each open takes new keys and replaces old ones; every one of them
    // must be there at the next open, round after round.
    uint32_t next = 12;
    for (int round = 0; round < 3; ++round) {
        ASSERT_EQ(open(), 0) << daxkv_errmsg();
        for (uint32_t i = next; i < next + 20; ++i)
            ASSERT_EQ(put_key(s(), i, 1), 0) << daxkv_errmsg();
        next += 20;
        store_.reset();
        ASSERT_EQ(open(), 0) << daxkv_errmsg();
        for (uint32_t i = 12; i < next; ++i)
            EXPECT_EQ(check_key(s(), i, 1), "") << "round " << round << " key " << i;
        store_.reset();
    }
    // The healthy device alone keeps what it holds: nothing damaged was
    // shared with it.
    ASSERT_EQ(open(), 0) << daxkv_errmsg();
    const std::vector<uint32_t> on_b = keys_on(next, 1);
    store_.reset();
    ASSERT_GE(on_b.size(), 10u);
    hide(a_);
    ASSERT_EQ(open(), 0) << daxkv_errmsg();
    for (uint32_t i : on_b)
        EXPECT_EQ(check_key(s(), i, 1), "") << "key " << i;
    store_.reset();
    unhide(a_);
}

// Copies a file byte for byte (what cp does).
void copy_file(const std::string &from, const std::string &to) {
    std::FILE *in = std::fopen(from.c_str(), "rb");
    std::FILE *out = std::fopen(to.c_str(), "wb");
    ASSERT_TRUE(in && out);
    char buf[65536];
    size_t n;
    while ((n = std::fread(buf, 1, sizeof buf, in)) > 0)
        ASSERT_EQ(std::fwrite(buf, 1, n, out), n);
    std::fclose(in);
    std::fclose(out);
}

TEST_F(History, AnOlderCopyOfADeviceBringsBackNoReplacedOrRemovedValue) {
    ASSERT_NO_FATAL_FAILURE(open_holding(12));
    const std::vector<uint32_t> on_a = keys_on(12, 0);
    ASSERT_GE(on_a.size(), 3u);
    store_.reset();
    copy_file(a_, a_ + ".old");
    ASSERT_EQ(open(), 0) << daxkv_errmsg();
    for (size_t j = 1; j < on_a.size(); ++j)
        ASSERT_EQ(put_key(s(), on_a[j], 2, DAXKV_REPLACE), 0) << daxkv_errmsg();
    ASSERT_EQ(remove(on_a[0]), 0);
    store_.reset();
    ASSERT_EQ(std::rename((a_ + ".old").c_str(), a_.c_str()), 0);
    ASSERT_EQ(open(), 0) << daxkv_errmsg();
    for (size_t j = 0; j < on_a.size(); ++j) {
        const uint32_t i = on_a[j];
        EXPECT_NE(check_key(s(), i, 1), "") << "key " << i << " reads its replaced value";
        if (j == 0) {
            EXPECT_EQ(check_key(s(), i, 0), "");
        }
    }
}

TEST_F(History, ACopyTakenWhileOpenBringsBackNoReplacedOrRemovedValue) {
    // Put back at the next open, and after one more open of the pool
    // (closed cleanly).
    for (int later = 0; later < 2; ++later) {
        ::unlink(a_.c_str());
        ::unlink(b_.c_str());
        ASSERT_EQ(open(true), 0) << daxkv_errmsg();
        for (uint32_t i = 0; i < 12; ++i)
            ASSERT_EQ(put_key(s(), i, 1), 0);
        const std::vector<uint32_t> on_a = keys_on(12, 0);
        ASSERT_GE(on_a.size(), 3u);
        copy_file(a_, a_ + ".old");
        for (size_t j = 1; j < on_a.size(); ++j)
            ASSERT_EQ(put_key(s(), on_a[j], 2, DAXKV_REPLACE), 0) << daxkv_errmsg();
        ASSERT_EQ(remove(on_a[0]), 0);
        store_.reset();
        if (later) {
            ASSERT_EQ(open(), 0) << daxkv_errmsg();
            store_.reset();
        }
        ASSERT_EQ(std::rename((a_ + ".old").c_str(), a_.c_str()), 0);
        ASSERT_EQ(open(), 0) << daxkv_errmsg();
        for (size_t j = 0; j < on_a.size(); ++j) {
            const uint32_t i = on_a[j];
            EXPECT_NE(check_key(s(), i, 1), "")
                << later << ": key " << i << " reads its replaced value";
            if (j == 0) {
                EXPECT_EQ(check_key(s(), i, 0), "") << later;
            }
        }
        store_.reset();
    }
}

TEST_F(History, ACopyTakenWhileOpenAddedInALaterOpenBringsBackNoReplacedOrRemovedValue) {
    // As above, but the copy comes back through daxkv_device_add of the
    // next open (and of one after it), missing until then. By the add that
    // open had marked itself on B, hiding B's clean close of the open the
    // copy was taken in: the add brought back the removed key and the
    // replaced values, which an open given the same copy withdrew.
    for (int later = 0; later < 2; ++later) {
        ::unlink(a_.c_str());
        ::unlink(b_.c_str());
        ASSERT_EQ(open(true), 0) << daxkv_errmsg();
        for (uint32_t i = 0; i < 12; ++i)
            ASSERT_EQ(put_key(s(), i, 1), 0);
        const std::vector<uint32_t> on_a = keys_on(12, 0);
        ASSERT_GE(on_a.size(), 3u);
        copy_file(a_, a_ + ".old");
        for (size_t j = 1; j < on_a.size(); ++j)
            ASSERT_EQ(put_key(s(), on_a[j], 2, DAXKV_REPLACE), 0) << daxkv_errmsg();
        ASSERT_EQ(remove(on_a[0]), 0);
        store_.reset();
        if (later) {
            ASSERT_EQ(open(), 0) << daxkv_errmsg();
            store_.reset();
        }
        ASSERT_EQ(::unlink(a_.c_str()), 0);
        ASSERT_EQ(std::rename((a_ + ".old").c_str(), (a_ + ".away").c_str()), 0);
        ASSERT_EQ(open(), 0) << daxkv_errmsg();
        ASSERT_EQ(state(0), "missing");
        unhide(a_);
        ASSERT_EQ(daxkv_device_add(s(), a_.c_str(), 0), 0) << daxkv_errmsg();
        for (size_t j = 0; j < on_a.size(); ++j) {
            const uint32_t i = on_a[j];
            EXPECT_NE(check_key(s(), i, 1), "")
                << later << ": key " << i << " reads its replaced value";
            if (j == 0) {
                EXPECT_EQ(check_key(s(), i, 0), "") << later;
            }
        }
        store_.reset();
    }
}

TEST_F(History, ACopyOfAMemberAddedBesideItThenTheMemberRemoved) {
    ASSERT_NO_FATAL_FAILURE(open_holding(12));
    const std::vector<uint32_t> on_a = keys_on(12, 0);
    ASSERT_GE(on_a.size(), 3u);
    store_.reset();
    const std::string c = dir_.file("c");
    copy_file(a_, c);
    ASSERT_EQ(open(), 0) << daxkv_errmsg();
    // Replace a key of A, remove another, before the copy joins.
    ASSERT_EQ(put_key(s(), on_a[1], 2, DAXKV_REPLACE), 0);
    ASSERT_EQ(remove(on_a[0]), 0);
    ASSERT_EQ(daxkv_device_add(s(), c.c_str(), dev_bytes_for(slots_)), 0) << daxkv_errmsg();
    auto want = [&](uint32_t i) -> uint64_t { return i == on_a[0] ? 0 : i == on_a[1] ? 2 : 1; };
    for (uint32_t i = 0; i < 12; ++i)
        EXPECT_EQ(check_key(s(), i, want(i)), "") << "after add, key " << i;
    for (int mode : {DAXKV_MIGRATE, DAXKV_EVICT}) {
        daxkv_hotplug_result r = result();
        ASSERT_EQ(daxkv_device_remove(s(), a_.c_str(), mode, 0, &r), 0) << daxkv_errmsg();
        for (uint32_t i = 0; i < 12; ++i) {
            std::string bad = check_key(s(), i, want(i));
            if (!bad.empty() && mode == DAXKV_EVICT)
                bad = check_key(s(), i, 0); // evicted with A
            EXPECT_EQ(bad, "") << "mode " << mode << " key " << i;
        }
        ASSERT_EQ(daxkv_device_add(s(), a_.c_str(), dev_bytes_for(slots_)), 0) << daxkv_errmsg();
    }
    // Reopen with the copy in the configuration as well.
    ASSERT_NO_FATAL_FAILURE(open_with_copy(c));
    for (uint32_t i = 0; i < 12; ++i) {
        std::string bad = check_key(s(), i, want(i));
        if (!bad.empty())
            bad = check_key(s(), i, 0);
        EXPECT_EQ(bad, "") << "reopened, key " << i;
    }
}

TEST_F(History, DevicesSwappedBetweenOpensAndOneFromAnotherPool) {
    ASSERT_NO_FATAL_FAILURE(open_holding(12));
    store_.reset();
    ASSERT_EQ(std::rename(a_.c_str(), (a_ + ".t").c_str()), 0);
    ASSERT_EQ(std::rename(b_.c_str(), a_.c_str()), 0);
    ASSERT_EQ(std::rename((a_ + ".t").c_str(), b_.c_str()), 0);
    ASSERT_EQ(open(), 0) << daxkv_errmsg();
    for (uint32_t i = 0; i < 12; ++i)
        EXPECT_EQ(check_key(s(), i, 1), "") << "swapped, key " << i;
    for (uint32_t i = 0; i < 6; ++i)
        ASSERT_EQ(put_key(s(), i, 2, DAXKV_REPLACE), 0);
    store_.reset();
    // Another pool with its own versions of the same keys.
    const std::string x = dir_.file("x");
    {
        StorePtr other = open_hotplug_pool({x}, slots_);
        ASSERT_TRUE(other);
        for (uint32_t i = 0; i < 12; ++i)
            ASSERT_EQ(put_key(other.get(), i, 7), 0);
    }
    ASSERT_EQ(open(), 0) << daxkv_errmsg();
    const int rc = daxkv_device_add(s(), x.c_str(), dev_bytes_for(slots_));
    for (uint32_t i = 0; i < 12; ++i) {
        std::string bad = check_key(s(), i, i < 6 ? 2 : 1);
        if (!bad.empty() && rc == 0)
            bad = check_key(s(), i, 7);
        EXPECT_EQ(bad, "") << "add rc " << rc << ", key " << i;
    }
}

TEST_F(History, ACopyTakenWhileOpenAndAddedInThatOpenBringsBackNothingStale) {
    ASSERT_NO_FATAL_FAILURE(open_holding(12));
    const std::vector<uint32_t> on_a = keys_on(12, 0);
    ASSERT_GE(on_a.size(), 3u);
    const std::string c = dir_.file("c");
    copy_file(a_, c);
    for (size_t j = 1; j < on_a.size(); ++j)
        ASSERT_EQ(put_key(s(), on_a[j], 2, DAXKV_REPLACE), 0) << daxkv_errmsg();
    ASSERT_EQ(remove(on_a[0]), 0);
    // A goes with what it holds; the copy comes in its place.
    daxkv_hotplug_result r = result();
    ASSERT_EQ(daxkv_device_remove(s(), a_.c_str(), DAXKV_EVICT, 0, &r), 0) << daxkv_errmsg();
    ASSERT_EQ(daxkv_device_add(s(), c.c_str(), dev_bytes_for(slots_)), 0) << daxkv_errmsg();
    for (uint32_t i : on_a)
        EXPECT_NE(check_key(s(), i, 1), "") << "key " << i << " reads its replaced value";
    EXPECT_EQ(check_key(s(), on_a[0], 0), "");
}

TEST_F(History, ACloseCutBeforeItMarkedEveryDeviceLosesNoValue) {
    // A kill during a close can leave one device marked closed and the
    // other not: the one not marked is judged by its own removal table,
    // which holds every change of the open, so nothing is lost.
    ASSERT_NO_FATAL_FAILURE(open_holding(12));
    const std::vector<uint32_t> on_a = keys_on(12, 0);
    ASSERT_GE(on_a.size(), 3u);
    for (uint32_t i = 0; i < 12; i += 3)
        ASSERT_EQ(put_key(s(), i, 2, DAXKV_REPLACE), 0);
    ASSERT_EQ(remove(on_a[1]), 0);
    store_.reset();
    {
        const int fd = ::open(a_.c_str(), O_RDWR);
        ASSERT_GE(fd, 0);
        for (off_t off : {off_t(0), off_t(daxkv::arena::kSuperblockBytes)}) {
            daxkv::arena::Superblock sb;
            ASSERT_EQ(::pread(fd, &sb, sizeof sb, off), ssize_t(sizeof sb));
            ASSERT_NE(sb.last_open, 0u);
            ASSERT_EQ(sb.closed_cleanly, 1u);
            sb.closed_cleanly = 0;
            sb.checksum = daxkv::arena::superblock_checksum(sb);
            ASSERT_EQ(::pwrite(fd, &sb, sizeof sb, off), ssize_t(sizeof sb));
        }
        ::close(fd);
    }
    ASSERT_EQ(open(), 0) << daxkv_errmsg();
    for (uint32_t i = 0; i < 12; ++i)
        EXPECT_EQ(check_key(s(), i, i == on_a[1] ? 0 : i % 3 == 0 ? 2 : 1), "") << "key " << i;
    EXPECT_EQ(store_status(s())["recovery"]["dropped_stale"], 0) << store_status(s())["recovery"];
}

TEST_F(History, ACopyTakenBeforeACrashBesideItsDeviceBringsBackNothingStale) {
    // After a crash no device is marked closed, so the copy's record looks
    // like its device's; the shared uuid tells that one copies the other.
    for (int added = 0; added < 2; ++added) {
        ::unlink(a_.c_str());
        ::unlink(b_.c_str());
        ASSERT_NO_FATAL_FAILURE(open_holding(12));
        const std::vector<uint32_t> on_a = keys_on(12, 0);
        ASSERT_GE(on_a.size(), 3u);
        const std::string c = dir_.file("c" + std::to_string(added));
        copy_file(a_, c);
        for (size_t j = 1; j < on_a.size(); ++j)
            ASSERT_EQ(put_key(s(), on_a[j], 2, DAXKV_REPLACE), 0) << daxkv_errmsg();
        ASSERT_EQ(remove(on_a[0]), 0);
        store_.reset();
        // What a crash leaves instead of the close: no device marked closed.
        for (const std::string &dev : {a_, b_}) {
            const int fd = ::open(dev.c_str(), O_RDWR);
            ASSERT_GE(fd, 0);
            for (off_t off : {off_t(0), off_t(daxkv::arena::kSuperblockBytes)}) {
                daxkv::arena::Superblock sb;
                ASSERT_EQ(::pread(fd, &sb, sizeof sb, off), ssize_t(sizeof sb));
                sb.closed_cleanly = 0;
                sb.checksum = daxkv::arena::superblock_checksum(sb);
                ASSERT_EQ(::pwrite(fd, &sb, sizeof sb, off), ssize_t(sizeof sb));
            }
            ::close(fd);
        }
        if (added) {
            ASSERT_EQ(open(), 0) << daxkv_errmsg();
            ASSERT_EQ(daxkv_device_add(s(), c.c_str(), dev_bytes_for(slots_)), 0)
                << daxkv_errmsg();
        } else {
            ASSERT_NO_FATAL_FAILURE(open_with_copy(c));
        }
        for (uint32_t i = 0; i < 12; ++i) {
            const uint64_t want = i == on_a[0] ? 0 : std::find(on_a.begin(), on_a.end(), i) !=
                                                             on_a.end()
                                                         ? 2
                                                         : 1;
            EXPECT_EQ(check_key(s(), i, want), "") << (added ? "added" : "opened") << ", key " << i;
        }
        store_.reset();
    }
}

} // namespace
