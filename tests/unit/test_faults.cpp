// Failure handling on the fast data path: copies that fail part-way through
// a batch (a test-only fault injector in the copy engine: a slow worker plus
// a failing worker), and SIGBUS while reading a file arena that was
// truncated under its mapping (config sigbus=handle).
//
// What must hold: a batch with a failed copy returns only after every copy
// of the batch has finished (the slow one included), nothing is released
// before that, per-item statuses name the failed items (-EIO), and entries
// stay intact; a read that faults drops that entry and quarantines its slot.
//
// Bad inputs tried here: sigbus values other than handle/default are in
// test_config.cpp; a fault address outside daxkv's copies (chained to the
// previous handler, a caller's own buffer among them), a SIGBUS with
// sigbus=default (the process dies), an arena file cut below its payloads
// (-EIO per item, for copies out and for leases that hash the entry in
// place with verify=read, for recovery, which reads every slot header and
// checks every value at an open, and for writes: put, put_batch, a
// reservation's commit and a migration's copies, whose slots are
// quarantined), and an arena file cut inside its slot headers under a
// running store (a get's checksum, a batch's metadata host and GPU, a
// lease, a key walk, a put's commit, a removal, a migration's headers).
#include <gtest/gtest.h>

#include <algorithm>
#include <atomic>
#include <cerrno>
#include <chrono>
#include <csignal>
#include <poll.h>
#include <cstring>
#include <string>
#include <thread>
#include <vector>

#include "arena/arena.hpp"
#include "arena/format.hpp"
#include "arena/inspect.hpp"
#include "capi/handles.hpp"
#include "engine/copy_engine.hpp"
#include "engine/fault.hpp"
#include "helpers.hpp"
#include "platform/mapping.hpp"
#include "store/index.hpp"
#include "store/recovery.hpp"

using namespace daxkv_test;
using daxkv::engine::CopyOp;
using daxkv::engine::FaultHook;

namespace {

// Fails every chunk of the op touching fail_at (source or destination), and
// delays every chunk of the op touching slow_at, then records that it ran.
class Injector : public FaultHook {
public:
    const void *fail_at = nullptr;
    int fail_code = -EIO;
    const void *slow_at = nullptr;
    int slow_ms = 0;
    std::atomic<int> failed{0};
    std::atomic<int> slow_started{0};
    std::atomic<int> slow_finished{0};

    int before_chunk(const CopyOp &op, size_t, size_t) noexcept override {
        if (fail_at && (op.dst == fail_at || op.src == fail_at)) {
            failed++;
            return fail_code;
        }
        if (slow_at && (op.dst == slow_at || op.src == slow_at)) {
            slow_started++;
            std::this_thread::sleep_for(std::chrono::milliseconds(slow_ms));
            slow_finished++;
        }
        return 0;
    }
};

struct HookScope {
    explicit HookScope(FaultHook *h) { daxkv::engine::testing::set_fault_hook(h); }
    ~HookScope() { daxkv::engine::testing::set_fault_hook(nullptr); }
};

constexpr size_t kMiB = 1 << 20;

// n pages of a mapping from `page` on fault from now on, as pages of bad
// media would: an empty file mapped over them (the file stays whole).
void fault_pages(char *page, size_t n = 1) {
    const int empty = ::memfd_create("cut", 0);
    ASSERT_GE(empty, 0);
    ASSERT_NE(::mmap(page, n * 4096, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_FIXED, empty, 0),
              MAP_FAILED);
    ::close(empty);
}

class Faults : public StoreFixture {
protected:
    std::vector<std::string> keys_;
    std::vector<std::vector<uint8_t>> vals_;

    void put_all(size_t n, size_t len, uint64_t seed) {
        keys_.clear();
        vals_.clear();
        for (size_t i = 0; i < n; ++i) {
            keys_.push_back(key_of(i));
            vals_.push_back(pattern(seed + i, len));
            ASSERT_EQ(put(keys_[i], vals_[i], DAXKV_REPLACE), 0) << daxkv_errmsg();
        }
    }
    // A second arena file for spec, beside the store's, holding n entries
    // "added-<i>" (values of 50,000 bytes from seeds 1200 + i): its path.
    std::string second_arena(const StoreSpec &spec, int n) {
        const std::string path = dir_.file("second.arena");
        StorePtr other;
        EXPECT_EQ(open_store(&other, path, spec), 0) << daxkv_errmsg();
        for (int i = 0; other && i < n; ++i) {
            const std::vector<uint8_t> v = pattern(1200 + i, 50000);
            const std::string k = "added-" + std::to_string(i);
            EXPECT_EQ(daxkv_put(other.get(), k.data(), k.size(), v.data(), v.size(), 0), 0);
        }
        return path;
    }
    // A store of four 64 KiB slots with hotplug and sigbus=handle, holding
    // n entries of len bytes (put_all), and a second arena file for it
    // holding `second` entries (second_arena): its path.
    std::string open_beside_second(int second, size_t n, size_t len, uint64_t seed) {
        const StoreSpec spec = StoreSpec(64 * 1024, 4).set("sigbus", "handle").set("hotplug", "1");
        const std::string path = second_arena(spec, second);
        open(spec);
        put_all(n, len, seed);
        return path;
    }
    std::vector<daxkv_item> items_for(std::vector<std::vector<uint8_t>> &bufs) {
        std::vector<daxkv_item> items(keys_.size());
        for (size_t i = 0; i < keys_.size(); ++i)
            items[i] = daxkv_item{keys_[i].data(), keys_[i].size(), bufs[i].data(),
                                  bufs[i].size(), nullptr, 0, 12345};
        return items;
    }
};

TEST_F(Faults, GetBatchWithAFailedCopyWaitsForTheSlowWorkerAndKeepsEntries) {
    // workers=3: two pool threads plus the caller share the 6 MiB batch.
    open(StoreSpec(kMiB, 8).set("workers", "3"));
    put_all(6, kMiB, 100);
    std::vector<std::vector<uint8_t>> out(6, std::vector<uint8_t>(kMiB, 0xEE));
    std::vector<daxkv_item> items = items_for(out);
    Injector inj;
    inj.fail_at = out[1].data();
    inj.slow_at = out[4].data();
    inj.slow_ms = 60;
    int rc;
    {
        HookScope hs(&inj);
        rc = daxkv_get_batch(s(), items.data(), items.size(), 0);
        // Returned: the slow copy must have finished, and its bytes landed.
        EXPECT_EQ(inj.slow_finished.load(), 1);
    }
    EXPECT_EQ(rc, 5);
    EXPECT_EQ(inj.failed.load(), 1);
    for (size_t i = 0; i < 6; ++i) {
        if (i == 1) {
            EXPECT_EQ(items[i].status, -EIO);
            continue;
        }
        EXPECT_EQ(items[i].status, 0) << i;
        EXPECT_TRUE(out[i] == vals_[i]) << i;
    }
    // The caller may free its buffers now: nothing of the batch runs on
    // (the sanitizer build would catch a late write).
    out.clear();
    // The failed item's entry is intact, nothing stays borrowed.
    EXPECT_TRUE(value(keys_[1]) == vals_[1]);
    struct daxkv_stats st = stats();
    EXPECT_EQ(st.entries, 6u);
    EXPECT_EQ(st.slots_pending_free, 0u);
    EXPECT_EQ(st.copy_faults, 0u); // an injected failure is not a media fault
    // A forced remove of the failed item's key frees its slot at once: no
    // borrow of the failed read was left behind.
    EXPECT_EQ(remove(keys_[1]), 0);
    EXPECT_EQ(stats().slots_free, 3u);
}

TEST_F(Faults, PutBatchWithAFailedCopyKeepsTheOldVersionAndFreesTheSlot) {
    // Room for the old and the new version of every key: nothing is evicted.
    open(StoreSpec(kMiB, 12).set("workers", "3"));
    put_all(6, kMiB, 200);
    const std::vector<std::vector<uint8_t>> old = vals_;
    std::vector<std::vector<uint8_t>> fresh;
    for (size_t i = 0; i < 6; ++i)
        fresh.push_back(pattern(300 + i, kMiB - 4096));
    std::vector<daxkv_item> items = items_for(fresh);
    Injector inj;
    inj.fail_at = fresh[2].data();
    inj.slow_at = fresh[5].data();
    inj.slow_ms = 60;
    uint64_t failed_before = stats().puts_failed;
    int rc;
    {
        HookScope hs(&inj);
        rc = daxkv_put_batch(s(), items.data(), items.size(), DAXKV_REPLACE);
        EXPECT_EQ(inj.slow_finished.load(), 1);
    }
    EXPECT_EQ(rc, 5);
    EXPECT_EQ(items[2].status, -EIO);
    EXPECT_TRUE(contains_text(daxkv_errmsg(), "item 2")) << daxkv_errmsg();
    for (size_t i = 0; i < 6; ++i)
        EXPECT_TRUE(value(keys_[i]) == (i == 2 ? old[i] : fresh[i])) << i;
    struct daxkv_stats st = stats();
    EXPECT_EQ(st.entries, 6u);
    EXPECT_EQ(st.slots_free, 6u); // the failed write's slot came back
    EXPECT_EQ(st.slots_inflight, 0u);
    EXPECT_EQ(st.puts_failed, failed_before + 1);
}

// A forced remove of a key while the batch that writes it is still copying
// cancels that write: the item fails with -ECANCELED, its slot comes back,
// and the batch's commit never touches the key's entry, which the remove
// may have erased (the sanitizer builds would catch a touch). For a new key
// and for a key whose older version the batch replaces.
class FaultsCancel : public Faults {
protected:
    void run(bool replacing) {
        open(StoreSpec(kMiB, 12).set("workers", "2"));
        keys_ = {key_of(0), key_of(1), key_of(2), key_of(3), key_of(4), key_of(5)};
        if (replacing) {
            ASSERT_EQ(put(keys_[3], pattern(9, 1000)), 0);
        }
        std::vector<std::vector<uint8_t>> vals;
        for (size_t i = 0; i < keys_.size(); ++i)
            vals.push_back(pattern(800 + i, kMiB));
        std::vector<daxkv_item> items = items_for(vals);
        Injector inj;
        inj.slow_at = vals[3].data();
        inj.slow_ms = 100;
        int rc = 0, removed = 1;
        {
            HookScope hs(&inj);
            std::thread remover([&] {
                while (inj.slow_started.load() == 0)
                    std::this_thread::yield();
                removed = remove(keys_[3], DAXKV_FORCE);
            });
            rc = daxkv_put_batch(s(), items.data(), items.size(), DAXKV_REPLACE);
            remover.join();
        }
        EXPECT_EQ(removed, 0) << daxkv_errmsg();
        EXPECT_EQ(rc, 5);
        for (size_t i = 0; i < keys_.size(); ++i) {
            if (i == 3) {
                EXPECT_EQ(items[i].status, -ECANCELED);
                EXPECT_EQ(contains(keys_[i]), 0);
                continue;
            }
            EXPECT_EQ(items[i].status, 0) << i;
            EXPECT_TRUE(value(keys_[i]) == vals[i]) << i;
        }
        const struct daxkv_stats st = stats();
        EXPECT_EQ(st.entries, 5u);
        EXPECT_EQ(st.slots_inflight, 0u);
        EXPECT_EQ(st.slots_free, 7u);
        // The key can be written again.
        EXPECT_EQ(put(keys_[3], vals[3]), 0);
        EXPECT_TRUE(value(keys_[3]) == vals[3]);
    }
};

TEST_F(FaultsCancel, PutBatchOfANewKeyCancelledByAForcedRemoveWhileItCopies) { run(false); }
TEST_F(FaultsCancel, PutBatchReplacingAKeyCancelledByAForcedRemoveWhileItCopies) { run(true); }

// In a batch of many megabytes of small values (grouped several to a
// worker's turn), one failed copy fails that item alone: every other item
// is stored, no slot is left in flight, and the failed item's slot is free
// again.
TEST_F(Faults, PutBatchOfManySmallValuesWithOneFailedCopy) {
    const size_t kVal = 64 * 1024, kN = 64;
    open(StoreSpec(kVal, kN).set("workers", "2"));
    std::vector<std::vector<uint8_t>> vals;
    for (size_t i = 0; i < kN; ++i)
        vals.push_back(pattern(700 + i, kVal));
    keys_.clear();
    for (size_t i = 0; i < kN; ++i)
        keys_.push_back(key_of(i));
    std::vector<daxkv_item> items = items_for(vals);
    Injector inj;
    inj.fail_at = vals[50].data();
    int rc;
    {
        HookScope hs(&inj);
        rc = daxkv_put_batch(s(), items.data(), items.size(), 0);
    }
    EXPECT_EQ(rc, static_cast<int>(kN - 1));
    EXPECT_EQ(items[50].status, -EIO);
    EXPECT_TRUE(contains_text(daxkv_errmsg(), "item 50")) << daxkv_errmsg();
    for (size_t i = 0; i < kN; ++i) {
        if (i != 50) {
            EXPECT_TRUE(value(keys_[i]) == vals[i]) << i;
        }
    }
    struct daxkv_stats st = stats();
    EXPECT_EQ(st.entries, kN - 1);
    EXPECT_EQ(st.slots_free, 1u);
    EXPECT_EQ(st.slots_inflight, 0u);
}

TEST_F(Faults, SingleKeyPutAndGetReportTheFailureAndKeepState) {
    open(StoreSpec(64 * 1024, 4));
    put_all(1, 1000, 400);
    Injector inj;
    std::vector<uint8_t> v = pattern(9, 5000), out(64 * 1024);
    inj.fail_at = v.data();
    {
        HookScope hs(&inj);
        EXPECT_EQ(daxkv_put(s(), "new", 3, v.data(), v.size(), 0), -EIO);
        inj.fail_at = out.data();
        size_t len = 0;
        EXPECT_EQ(daxkv_get(s(), keys_[0].data(), keys_[0].size(), out.data(), out.size(), &len),
                  -EIO);
        EXPECT_TRUE(contains_text(daxkv_errmsg(), "entry is kept")) << daxkv_errmsg();
    }
    EXPECT_EQ(contains("new"), 0);
    EXPECT_TRUE(value(keys_[0]) == vals_[0]);
    EXPECT_EQ(stats().slots_free, 3u);
    EXPECT_EQ(put("new", v), 0); // the key is free to be written again
}

TEST_F(Faults, AMediaFaultDropsTheEntryAndQuarantinesTheSlot) {
    open(StoreSpec(4096, 4));
    put_all(3, 3000, 500);
    std::vector<std::vector<uint8_t>> out(3, std::vector<uint8_t>(4096));
    std::vector<daxkv_item> items = items_for(out);
    Injector inj;
    inj.fail_at = out[0].data();
    inj.fail_code = daxkv::engine::kMediaFault;
    {
        HookScope hs(&inj);
        EXPECT_EQ(daxkv_get_batch(s(), items.data(), 3, 0), 2);
    }
    EXPECT_EQ(items[0].status, -EIO);
    EXPECT_TRUE(contains_text(daxkv_errmsg(), "quarantined")) << daxkv_errmsg();
    EXPECT_EQ(contains(keys_[0]), 0);
    EXPECT_TRUE(value(keys_[1]) == vals_[1]);
    struct daxkv_stats st = stats();
    EXPECT_EQ(st.copy_faults, 1u);
    EXPECT_EQ(st.entries, 2u);
    // Removing everything gives back every slot but the quarantined one.
    EXPECT_EQ(remove(keys_[1]), 0);
    EXPECT_EQ(remove(keys_[2]), 0);
    EXPECT_EQ(stats().slots_free, 3u);
    // And it is never handed out again: three new puts fill the store.
    for (int i = 0; i < 3; ++i)
        EXPECT_EQ(put("n" + std::to_string(i), pattern(i, 10)), 0);
    EXPECT_EQ(stats().slots_free, 0u);
}

TEST_F(Faults, AMediaFaultWritingAbandonsTheWriteAndQuarantinesTheSlot) {
    // A write into the arena that faulted leaves the slot with bytes that
    // are not the value on media that cannot be trusted: the item fails,
    // the key keeps its old version, and the slot is never handed out
    // again (a failed copy of any other kind gives it back).
    open(StoreSpec(64 * 1024, 4));
    put_all(2, 1000, 1800);
    const std::vector<uint8_t> v0 = pattern(1801, 3000), v1 = pattern(1802, 3000);
    Injector inj;
    inj.fail_at = v0.data();
    inj.fail_code = daxkv::engine::kMediaFaultWriting;
    std::vector<daxkv_item> items = {
        daxkv_item{keys_[0].data(), keys_[0].size(), const_cast<uint8_t *>(v0.data()), v0.size(),
                   nullptr, 0, 12345},
        daxkv_item{keys_[1].data(), keys_[1].size(), const_cast<uint8_t *>(v1.data()), v1.size(),
                   nullptr, 0, 12345}};
    {
        HookScope hs(&inj);
        EXPECT_EQ(daxkv_put_batch(s(), items.data(), items.size(), DAXKV_REPLACE), 1);
    }
    EXPECT_EQ(items[0].status, -EIO);
    EXPECT_TRUE(contains_text(daxkv_errmsg(), "writing the slot faulted")) << daxkv_errmsg();
    EXPECT_EQ(items[1].status, 0);
    EXPECT_EQ(value(keys_[0]), vals_[0]);
    EXPECT_EQ(value(keys_[1]), v1);
    struct daxkv_stats st = stats();
    EXPECT_EQ(st.copy_faults, 1u);
    EXPECT_EQ(st.entries, 2u);
    EXPECT_EQ(st.slots_free, 1u); // two entries, one slot quarantined
    EXPECT_EQ(st.slots_inflight, 0u);
    // The same for a single put.
    inj.fail_at = v1.data();
    {
        HookScope hs(&inj);
        EXPECT_EQ(put(keys_[0], v1, DAXKV_REPLACE), -EIO);
    }
    EXPECT_EQ(value(keys_[0]), vals_[0]);
    st = stats();
    EXPECT_EQ(st.copy_faults, 2u);
    EXPECT_EQ(st.slots_free, 0u);
}

TEST_F(Faults, AsyncBatchReportsTheFailedItem) {
    open(StoreSpec(4096, 4));
    put_all(3, 2000, 600);
    std::vector<std::vector<uint8_t>> out(3, std::vector<uint8_t>(4096));
    std::vector<daxkv_item> items = items_for(out);
    Injector inj;
    inj.fail_at = out[2].data();
    HookScope hs(&inj);
    ASSERT_EQ(daxkv_submit(s(), DAXKV_OP_GET, items.data(), 3, 0, 5), 0);
    struct pollfd pfd = {daxkv_event_fd(s()), POLLIN, 0};
    ASSERT_EQ(::poll(&pfd, 1, 10000), 1);
    daxkv_completion c;
    ASSERT_EQ(daxkv_poll(s(), &c, 1), 1);
    EXPECT_EQ(c.tag, 5u);
    EXPECT_EQ(c.result, 2);
    EXPECT_EQ(items[2].status, -EIO);
    for (size_t i = 0; i < 2; ++i) {
        EXPECT_EQ(items[i].status, 0);
        EXPECT_EQ(std::memcmp(out[i].data(), vals_[i].data(), 2000), 0);
    }
    EXPECT_EQ(stats().entries, 3u);
}

// ---------------------------------------------------------------------------
// SIGBUS

// ThreadSanitizer intercepts sigaction and memcpy: a SIGBUS raised inside
// its memcpy interceptor kills the process before the handler runs, so the
// recovery cannot be exercised in that build (the ASan/UBSan build and the
// plain one run these tests).
#if defined(__SANITIZE_THREAD__)
#define SKIP_UNDER_TSAN() GTEST_SKIP() << "SIGBUS recovery is not testable under TSan"
#else
#define SKIP_UNDER_TSAN() (void)0
#endif

// The offset of the first slot payload of a spec's arena: cutting the file
// there leaves every header readable and every payload past the end.
uint64_t payload_offset(const StoreSpec &spec) {
    return arena_bytes_for(spec.slot_bytes, spec.slots, spec.meta_bytes) -
           uint64_t(spec.slots) * spec.slot_bytes;
}

// The guard itself: a page that faults, read from and written to by
// guarded copies, tells which side of which stream faulted.
TEST(SigbusGuard, ALoadThatFaultedIsTheSourcesAndAStoreThatFaultedTheDestinations) {
    SKIP_UNDER_TSAN();
    daxkv::engine::install_sigbus_handler();
    const size_t page = static_cast<size_t>(::sysconf(_SC_PAGESIZE));
    const int fd = ::memfd_create("guard", 0);
    ASSERT_GE(fd, 0);
    ASSERT_EQ(::ftruncate(fd, static_cast<off_t>(2 * page)), 0);
    void *m = ::mmap(nullptr, 2 * page, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
    ASSERT_NE(m, MAP_FAILED);
    ASSERT_EQ(::ftruncate(fd, static_cast<off_t>(page)), 0); // the second page faults
    char *good = static_cast<char *>(m), *gone = good + page;
    std::vector<char> mine(page, 'x');
    using daxkv::engine::kGuardDest;
    using daxkv::engine::kGuardSource;
    auto copy = [](void *dst, const void *src, size_t len, uint8_t guard) {
        daxkv::platform::CopyStream st{dst, src, len, nullptr, false};
        int code = 1;
        daxkv::engine::guarded_copy_streams(&st, &guard, 1, &code);
        return code;
    };
    // Whole pages: nothing faults.
    EXPECT_EQ(copy(good, mine.data(), page, kGuardSource | kGuardDest), 0);
    EXPECT_EQ(good[page - 1], 'x');
    // A load from the guarded source faults.
    EXPECT_EQ(copy(mine.data(), gone, page, kGuardSource), daxkv::engine::kMediaFault);
    // A store into the guarded destination faults (both sides guarded, as a
    // move between slots is).
    EXPECT_EQ(copy(gone, good, page, kGuardSource | kGuardDest),
              daxkv::engine::kMediaFaultWriting);
    EXPECT_EQ(copy(gone, mine.data(), 64, kGuardDest), daxkv::engine::kMediaFaultWriting);
    // The thread's next fault is caught as well: the jumps left SIGBUS
    // unblocked.
    EXPECT_EQ(copy(mine.data(), gone + 64, 64, kGuardSource), daxkv::engine::kMediaFault);

    // Several streams at once, interleaved in the lanes: the ones that
    // fault fail alone, every other is copied whole.
    std::vector<std::vector<char>> in(6), out(6);
    std::vector<daxkv::platform::CopyStream> streams;
    std::vector<uint8_t> guard;
    for (size_t i = 0; i < 6; ++i) {
        in[i].assign(3000 + 512 * i, static_cast<char>('a' + i));
        out[i].assign(in[i].size(), 0);
        streams.push_back({out[i].data(), in[i].data(), in[i].size(), nullptr, false});
        guard.push_back(kGuardSource);
    }
    streams[1] = {gone, in[1].data(), in[1].size(), nullptr, false}; // a store faults
    guard[1] = kGuardDest;
    streams[4] = {out[4].data(), gone + 8, 1000, nullptr, false}; // a load faults
    std::vector<int> codes(streams.size(), 1);
    EXPECT_EQ(daxkv::engine::guarded_copy_streams(streams.data(), guard.data(), streams.size(),
                                                  codes.data()),
              2u);
    for (size_t i = 0; i < streams.size(); ++i) {
        SCOPED_TRACE(i);
        if (i == 1) {
            EXPECT_EQ(codes[i], daxkv::engine::kMediaFaultWriting);
        } else if (i == 4) {
            EXPECT_EQ(codes[i], daxkv::engine::kMediaFault);
        } else {
            EXPECT_EQ(codes[i], 0);
            EXPECT_EQ(out[i], in[i]);
        }
    }
    ::munmap(m, 2 * page);
    ::close(fd);
}

TEST_F(Faults, SigbusReadingATruncatedFileArenaIsEioAndQuarantines) {
    FILE_ARENA_ONLY(); // the SIGBUS comes from truncating the arena file
    SKIP_UNDER_TSAN();
    open(StoreSpec(64 * 1024, 4).set("sigbus", "handle"));
    put_all(3, 60000, 700);
    ASSERT_EQ(::truncate(path_.c_str(), static_cast<off_t>(payload_offset(spec_))), 0);
    std::vector<uint8_t> buf(64 * 1024);
    size_t len = 0;
    EXPECT_EQ(daxkv_get(s(), keys_[0].data(), keys_[0].size(), buf.data(), buf.size(), &len),
              -EIO);
    EXPECT_TRUE(contains_text(daxkv_errmsg(), "quarantined")) << daxkv_errmsg();
    EXPECT_EQ(contains(keys_[0]), 0);
    // In a batch: per item.
    std::vector<std::vector<uint8_t>> out(3, std::vector<uint8_t>(64 * 1024));
    std::vector<daxkv_item> items = items_for(out);
    EXPECT_EQ(daxkv_get_batch(s(), items.data(), 3, 0), 0);
    EXPECT_EQ(items[0].status, -ENOENT); // dropped by the first fault
    EXPECT_EQ(items[1].status, -EIO);
    EXPECT_EQ(items[2].status, -EIO);
    struct daxkv_stats st = stats();
    EXPECT_EQ(st.copy_faults, 3u);
    EXPECT_EQ(st.entries, 0u);
    EXPECT_EQ(st.slots_free, 1u); // three slots quarantined
    // The batch ran on this thread (below the engine's inline size): its
    // faults were caught after the first one, so the jump out of the
    // handler did not leave SIGBUS blocked.
}

TEST_F(Faults, SigbusOnEveryWorkerOfAParallelBatch) {
    FILE_ARENA_ONLY(); // the SIGBUS comes from truncating the arena file
    SKIP_UNDER_TSAN();
    open(StoreSpec(kMiB, 4).set("workers", "3").set("sigbus", "handle"));
    put_all(4, kMiB, 800);
    ASSERT_EQ(::truncate(path_.c_str(), static_cast<off_t>(payload_offset(spec_))), 0);
    std::vector<std::vector<uint8_t>> out(4, std::vector<uint8_t>(kMiB));
    std::vector<daxkv_item> items = items_for(out);
    EXPECT_EQ(daxkv_get_batch(s(), items.data(), 4, 0), 0);
    for (auto &it : items)
        EXPECT_EQ(it.status, -EIO);
    EXPECT_EQ(stats().copy_faults, 4u);
}

// Writes into the arena are guarded as reads out of it are: a put whose
// slot faults (a page of bad media; here an arena file cut below its
// payloads) fails that item with -EIO and quarantines the slot, where it
// killed the process whatever sigbus said. The old version of a key being
// replaced is kept.
TEST_F(Faults, SigbusWritingATruncatedFileArenaIsEioAndQuarantines) {
    FILE_ARENA_ONLY(); // the SIGBUS comes from truncating the arena file
    SKIP_UNDER_TSAN();
    open(StoreSpec(64 * 1024, 5).set("sigbus", "handle"));
    put_all(1, 60000, 1500); // slot 0, which the cut keeps
    ASSERT_EQ(::truncate(path_.c_str(),
                         static_cast<off_t>(payload_offset(spec_) + spec_.slot_bytes)),
              0);
    EXPECT_EQ(put(keys_[0], pattern(1501, 60000), DAXKV_REPLACE), -EIO);
    EXPECT_TRUE(contains_text(daxkv_errmsg(), "writing the slot faulted")) << daxkv_errmsg();
    EXPECT_TRUE(contains_text(daxkv_errmsg(), "quarantined")) << daxkv_errmsg();
    EXPECT_EQ(value(keys_[0]), vals_[0]);
    // In a batch: per item.
    const std::vector<uint8_t> a = pattern(1502, 50000), b = pattern(1503, 0);
    std::vector<daxkv_item> items = {
        daxkv_item{"new-a", 5, const_cast<uint8_t *>(a.data()), a.size(), nullptr, 0, 12345},
        daxkv_item{"new-b", 5, const_cast<uint8_t *>(a.data()), 40000, nullptr, 0, 12345},
        daxkv_item{"empty", 5, const_cast<uint8_t *>(b.data()), 0, nullptr, 0, 12345}};
    EXPECT_EQ(daxkv_put_batch(s(), items.data(), items.size(), 0), 1);
    EXPECT_EQ(items[0].status, -EIO);
    EXPECT_EQ(items[1].status, -EIO);
    EXPECT_EQ(items[2].status, 0); // an empty value writes no payload byte
    EXPECT_EQ(contains("new-a"), 0);
    EXPECT_EQ(contains("new-b"), 0);
    struct daxkv_stats st = stats();
    EXPECT_EQ(st.copy_faults, 3u);
    EXPECT_EQ(st.entries, 2u);
    EXPECT_EQ(st.slots_free, 0u); // three slots quarantined, two entries
    EXPECT_EQ(st.slots_inflight, 0u);
    // The quarantined slots are never handed out: the next put evicts the
    // least recently used entry, and lands in its slot, which can be
    // written.
    const std::vector<uint8_t> after = pattern(1504, 30000);
    ASSERT_EQ(put("after", after), 0) << daxkv_errmsg();
    EXPECT_EQ(value("after"), after);
    EXPECT_EQ(stats().copy_faults, 3u);
}

TEST_F(Faults, SigbusWritingOnEveryWorkerOfAParallelBatch) {
    FILE_ARENA_ONLY(); // the SIGBUS comes from truncating the arena file
    SKIP_UNDER_TSAN();
    open(StoreSpec(kMiB, 4).set("workers", "3").set("sigbus", "handle"));
    ASSERT_EQ(::truncate(path_.c_str(), static_cast<off_t>(payload_offset(spec_))), 0);
    keys_ = {key_of(0), key_of(1), key_of(2), key_of(3)};
    std::vector<std::vector<uint8_t>> in(4, pattern(1600, kMiB));
    std::vector<daxkv_item> items = items_for(in);
    EXPECT_EQ(daxkv_put_batch(s(), items.data(), items.size(), 0), 0);
    for (auto &it : items)
        EXPECT_EQ(it.status, -EIO);
    struct daxkv_stats st = stats();
    EXPECT_EQ(st.copy_faults, 4u);
    EXPECT_EQ(st.entries, 0u);
    EXPECT_EQ(st.slots_free, 0u);
    EXPECT_EQ(st.slots_inflight, 0u);
    // Nothing left to write into: every slot is quarantined.
    EXPECT_EQ(put("more", pattern(1601, 1000)), -ENOSPC) << daxkv_errmsg();
}

TEST_F(Faults, SigbusInSomeItemsOfABatchOfSmallValuesFailsThemAlone) {
    // Small values are copied several at a time, interleaved (a group of
    // streams under one guard): a fault fails the items whose slots it
    // hit, and every other item of the batch is copied whole, both ways.
    FILE_ARENA_ONLY(); // the SIGBUS comes from truncating the arena file
    SKIP_UNDER_TSAN();
    open(StoreSpec(4096, 16).set("sigbus", "handle").set("verify", "read"));
    put_all(8, 4000, 2100); // slots 0..7
    // Slots 0..3 and 8..11 kept, 4..7 and 12..15 cut: the file ends after
    // slot 11, and slots 4..7 are cut out of its middle by a second
    // mapping, as pages of bad media would be.
    ASSERT_EQ(::truncate(path_.c_str(), static_cast<off_t>(payload_offset(spec_) + 12 * 4096)),
              0);
    fault_pages(s()->store->core().pool.arena(0).slot_data(4), 4);
    std::vector<std::vector<uint8_t>> out(8, std::vector<uint8_t>(4096));
    std::vector<daxkv_item> items = items_for(out);
    EXPECT_EQ(daxkv_get_batch(s(), items.data(), items.size(), 0), 4);
    for (size_t i = 0; i < 8; ++i) {
        SCOPED_TRACE(i);
        if (i < 4) {
            ASSERT_EQ(items[i].status, 0);
            out[i].resize(items[i].len);
            EXPECT_EQ(out[i], vals_[i]);
        } else {
            EXPECT_EQ(items[i].status, -EIO);
        }
    }
    EXPECT_EQ(stats().copy_faults, 4u);
    // Writes: eight new keys into slots 8..15, of which 12..15 are cut.
    std::vector<std::string> keys;
    std::vector<std::vector<uint8_t>> vals;
    for (size_t i = 0; i < 8; ++i) {
        keys.push_back("new-" + std::to_string(i));
        vals.push_back(pattern(2200 + i, 3000 + 100 * i));
    }
    std::vector<daxkv_item> in(8);
    for (size_t i = 0; i < 8; ++i)
        in[i] = daxkv_item{keys[i].data(), keys[i].size(), vals[i].data(), vals[i].size(),
                           nullptr, 0, 12345};
    EXPECT_EQ(daxkv_put_batch(s(), in.data(), in.size(), 0), 4);
    for (size_t i = 0; i < 8; ++i) {
        SCOPED_TRACE(i);
        EXPECT_EQ(in[i].status, i < 4 ? 0 : -EIO);
        if (i < 4)
            EXPECT_EQ(value(keys[i]), vals[i]);
        else
            EXPECT_EQ(contains(keys[i]), 0);
    }
    struct daxkv_stats st = stats();
    EXPECT_EQ(st.copy_faults, 8u);
    EXPECT_EQ(st.entries, 8u);
    EXPECT_EQ(st.slots_free, 0u); // eight entries, eight slots quarantined
}

TEST_F(Faults, SigbusHashingAReservedValueAtItsCommitIsEioAndQuarantines) {
    // The caller writes a reservation's bytes in place; its commit reads
    // them for the first time to hash them (verify=recover), unguarded
    // before.
    FILE_ARENA_ONLY(); // the SIGBUS comes from truncating the arena file
    SKIP_UNDER_TSAN();
    open(StoreSpec(64 * 1024, 4).set("sigbus", "handle"));
    daxkv_reservation *r = nullptr;
    ASSERT_EQ(daxkv_reserve(s(), "reserved", 8, 50000, &r), 0) << daxkv_errmsg();
    std::memset(daxkv_reservation_data(r), 0x5A, 50000);
    ASSERT_EQ(::truncate(path_.c_str(), static_cast<off_t>(payload_offset(spec_))), 0);
    EXPECT_EQ(daxkv_commit(r), -EIO);
    EXPECT_TRUE(contains_text(daxkv_errmsg(), "reading the slot faulted")) << daxkv_errmsg();
    EXPECT_EQ(contains("reserved"), 0);
    struct daxkv_stats st = stats();
    EXPECT_EQ(st.copy_faults, 1u);
    EXPECT_EQ(st.entries, 0u);
    EXPECT_EQ(st.slots_free, 3u); // the reserved slot quarantined
    EXPECT_EQ(st.slots_inflight, 0u);
}

TEST_F(Faults, SigbusWritingIntoTheDestinationOfAMigrationFailsItAndQuarantines) {
    // A migration's copies write into the destination device: a fault
    // there fails the migration as any failed copy does (nothing moved,
    // the entries where they were) and quarantines the slots that faulted.
    FILE_ARENA_ONLY(); // the SIGBUS comes from truncating the arena file
    SKIP_UNDER_TSAN();
    const std::string second = open_beside_second(0, 2, 60000, 1700);
    ASSERT_FALSE(HasFailure());
    const StoreSpec &spec = spec_;
    ASSERT_EQ(daxkv_device_add(s(), second.c_str(), spec_arena_bytes(spec)), 0) << daxkv_errmsg();
    ASSERT_EQ(::truncate(second.c_str(), static_cast<off_t>(payload_offset(spec))), 0);
    daxkv_hotplug_result r{};
    r.struct_size = sizeof r;
    EXPECT_EQ(daxkv_device_remove(s(), path_.c_str(), DAXKV_MIGRATE, 0, &r), -EIO);
    EXPECT_TRUE(contains_text(daxkv_errmsg(), "faulted")) << daxkv_errmsg();
    EXPECT_TRUE(contains_text(daxkv_errmsg(), "nothing was moved")) << daxkv_errmsg();
    for (size_t i = 0; i < keys_.size(); ++i)
        EXPECT_EQ(value(keys_[i]), vals_[i]) << i;
    struct daxkv_stats st = stats();
    EXPECT_EQ(st.copy_faults, 2u);
    EXPECT_EQ(st.entries, 2u);
    EXPECT_EQ(st.slots_free, 2u + 2u); // the first device's two, the second's two
    EXPECT_EQ(st.slots_inflight, 0u);
}

TEST_F(Faults, SigbusHashingALeasedEntryInPlaceIsEioAndQuarantines) {
    // With verify=read a lease hashes the entry where it lies (it copies
    // nothing); those loads were not guarded, and a fault there killed the
    // process whatever sigbus said.
    FILE_ARENA_ONLY(); // the SIGBUS comes from truncating the arena file
    SKIP_UNDER_TSAN();
    open(StoreSpec(64 * 1024, 4).set("sigbus", "handle").set("verify", "read"));
    put_all(3, 60000, 900);
    ASSERT_EQ(::truncate(path_.c_str(), static_cast<off_t>(payload_offset(spec_))), 0);
    daxkv_lease *l = nullptr;
    EXPECT_EQ(daxkv_lease_acquire(s(), keys_[0].data(), keys_[0].size(), &l), -EIO);
    EXPECT_EQ(l, nullptr);
    EXPECT_TRUE(contains_text(daxkv_errmsg(), "faulted")) << daxkv_errmsg();
    EXPECT_TRUE(contains_text(daxkv_errmsg(), "quarantined")) << daxkv_errmsg();
    EXPECT_EQ(contains(keys_[0]), 0);
    // In a batch: per item.
    std::vector<daxkv_lease_item> items(3);
    for (size_t i = 0; i < items.size(); ++i) {
        items[i] = daxkv_lease_item{};
        items[i].key = keys_[i].data();
        items[i].key_len = keys_[i].size();
    }
    EXPECT_EQ(daxkv_lease_batch(s(), items.data(), items.size(), 0), 0);
    EXPECT_EQ(items[0].status, -ENOENT); // dropped by the first fault
    for (size_t i = 1; i < items.size(); ++i) {
        EXPECT_EQ(items[i].status, -EIO) << i;
        EXPECT_EQ(items[i].lease, nullptr) << i;
        EXPECT_EQ(items[i].data, nullptr) << i;
    }
    struct daxkv_stats st = stats();
    EXPECT_EQ(st.copy_faults, 3u);
    EXPECT_EQ(st.verify_failures, 0u); // faults, not checksum mismatches
    EXPECT_EQ(st.entries, 0u);
    EXPECT_EQ(st.slots_free, 1u); // three slots quarantined
}

TEST_F(Faults, SigbusCopyingLeasedEntriesOutIsEioPerItemAndQuarantines) {
    // A caller's reads of a lease are its own; daxkv_lease_read_batch copies
    // leased entries out under the guard instead, for a caller (LMCache's
    // restores) that must survive bad media.
    FILE_ARENA_ONLY(); // the SIGBUS comes from truncating the arena file
    SKIP_UNDER_TSAN();
    open(StoreSpec(64 * 1024, 4).set("sigbus", "handle"));
    put_all(3, 60000, 950);
    std::vector<LeasePtr> held;
    std::vector<daxkv_lease *> leases;
    for (const std::string &k : keys_) {
        held.push_back(lease(k));
        leases.push_back(held.back().get());
    }
    // The file cut after the first slot's payload: the other two fault.
    ASSERT_EQ(::truncate(path_.c_str(),
                         static_cast<off_t>(payload_offset(spec_) + spec_.slot_bytes)),
              0);
    std::vector<std::vector<uint8_t>> out(3, std::vector<uint8_t>(64 * 1024));
    std::vector<daxkv_item> items = items_for(out);
    ASSERT_EQ(daxkv_lease_read_batch(s(), leases.data(), items.data(), 3, 0), 1)
        << daxkv_errmsg();
    int read = 0;
    for (size_t i = 0; i < 3; ++i) {
        SCOPED_TRACE(i);
        if (items[i].status == 0) {
            ++read;
            EXPECT_EQ(0, std::memcmp(out[i].data(), vals_[i].data(), vals_[i].size()));
            EXPECT_EQ(contains(keys_[i]), 1);
        } else {
            EXPECT_EQ(items[i].status, -EIO);
            EXPECT_EQ(contains(keys_[i]), 0);
        }
    }
    EXPECT_EQ(read, 1);
    struct daxkv_stats st = stats();
    EXPECT_EQ(st.copy_faults, 2u);
    EXPECT_EQ(st.entries, 1u);
    held.clear();
    st = stats();
    EXPECT_EQ(st.leases_active, 0u);
    EXPECT_EQ(st.slots_free, 1u); // two quarantined, one in use
}

// A running store reads and writes slot headers outside its copies: the
// checksum a read verifies, the metadata it returns, a commit's body and
// commit word, a removal's commit word, a key walk's metadata. Each of them
// killed the process on a header page that faulted, whatever sigbus said.
// The headers lie before every payload: a file cut inside their table cuts
// every value too, so these entries have empty values (no payload byte is
// read or written) and only the header can fault.
class HeaderFaults : public Faults {
protected:
    // 12 entries "key-<i>" in slots 0..11 (of 16), empty values, metadata
    // "meta-<i>"; then, with cut, the file is cut after the first page of
    // headers (slots 0..3 kept: headers of 1 KiB, four to a page).
    void open_and_cut(StoreSpec spec, bool cut = true) {
        open(spec.set("sigbus", "handle"));
        ASSERT_EQ(daxkv::arena::header_bytes_for(spec_.meta_bytes), 1024u);
        for (int i = 0; i < 12; ++i) {
            const std::string k = "key-" + std::to_string(i), m = "meta-" + std::to_string(i);
            daxkv_item it{k.data(), k.size(), const_cast<char *>(""), 0,
                          const_cast<char *>(m.data()), m.size(), 12345};
            ASSERT_EQ(daxkv_put_batch(s(), &it, 1, 0), 1) << daxkv_errmsg();
        }
        if (cut) {
            const auto kept = static_cast<off_t>(daxkv::arena::kHeaderOffset + 4096);
            ASSERT_EQ(::truncate(path_.c_str(), kept), 0);
        }
    }
    static StoreSpec spec() { return StoreSpec(4096, 16, 1024 - 64 - daxkv::arena::kKeyMax); }
    // The metadata of k, read with get_batch: 0 and *meta, or the status.
    int meta_of(const std::string &k, std::string *meta) {
        char m[512];
        daxkv_item it{k.data(), k.size(), m, 0, m, sizeof m, 12345};
        const int rc = daxkv_get_batch(s(), &it, 1, 0);
        if (rc < 0)
            return rc;
        if (it.status == 0)
            meta->assign(m, it.meta_len);
        return it.status;
    }
};

TEST_F(HeaderFaults, ReadingTheHeadersOfEntriesIsEioAndQuarantines) {
    FILE_ARENA_ONLY(); // the SIGBUS comes from truncating the arena file
    SKIP_UNDER_TSAN();
    open_and_cut(spec().set("verify", "read"));
    // get: the checksum verify=read checks is in the header.
    std::vector<uint8_t> buf(16);
    size_t len = 99;
    EXPECT_EQ(daxkv_get(s(), "key-4", 5, buf.data(), buf.size(), &len), -EIO);
    EXPECT_TRUE(contains_text(daxkv_errmsg(), "faulted")) << daxkv_errmsg();
    EXPECT_TRUE(contains_text(daxkv_errmsg(), "quarantined")) << daxkv_errmsg();
    EXPECT_EQ(contains("key-4"), 0);
    // get_batch with metadata, per item: the kept header's entry whole.
    std::string meta;
    EXPECT_EQ(meta_of("key-5", &meta), -EIO);
    EXPECT_EQ(meta_of("key-1", &meta), 0);
    EXPECT_EQ(meta, "meta-1");
    // A lease checks the entry in place, header included.
    daxkv_lease *l = nullptr;
    EXPECT_EQ(daxkv_lease_acquire(s(), "key-6", 5, &l), -EIO);
    EXPECT_EQ(l, nullptr);
    // A walk of the keys reports each entry's metadata: the ones whose
    // header faults are left out (and stay until a read drops them).
    daxkv_cursor *c = nullptr;
    ASSERT_EQ(daxkv_cursor_open(s(), nullptr, &c), 0) << daxkv_errmsg();
    std::vector<std::string> walked;
    daxkv_key_info k{};
    k.struct_size = sizeof k;
    while (daxkv_cursor_next(c, &k) == 1) {
        walked.emplace_back(static_cast<const char *>(k.key), k.key_len);
        EXPECT_EQ(std::string(static_cast<const char *>(k.meta), k.meta_len),
                  "meta-" + walked.back().substr(4));
    }
    daxkv_cursor_close(c);
    std::sort(walked.begin(), walked.end());
    EXPECT_EQ(walked, (std::vector<std::string>{"key-0", "key-1", "key-2", "key-3"}));
    struct daxkv_stats st = stats();
    EXPECT_EQ(st.copy_faults, 3u + 5u); // three reads, five entries left out of the walk
    EXPECT_EQ(st.verify_failures, 0u);  // faults, not checksum mismatches
    EXPECT_EQ(st.entries, 12u - 3u);
    EXPECT_EQ(st.slots_free, 4u); // the three dropped quarantined
}

TEST_F(HeaderFaults, CopyingTheMetadataOfLeasedEntriesIsEioAndQuarantines) {
    FILE_ARENA_ONLY(); // the SIGBUS comes from truncating the arena file
    SKIP_UNDER_TSAN();
    open_and_cut(spec(), false);
    LeasePtr kept = lease("key-1"), cut = lease("key-5");
    ASSERT_EQ(::truncate(path_.c_str(), static_cast<off_t>(daxkv::arena::kHeaderOffset + 4096)),
              0);
    char m1[64], m5[64];
    daxkv_lease *leases[] = {kept.get(), cut.get()};
    daxkv_item items[2] = {{nullptr, 0, nullptr, 0, m1, sizeof m1, 0},
                           {nullptr, 0, nullptr, 0, m5, sizeof m5, 0}};
    ASSERT_EQ(daxkv_lease_read_batch(s(), leases, items, 2, 0), 1) << daxkv_errmsg();
    EXPECT_EQ(items[0].status, 0);
    EXPECT_EQ(std::string(m1, items[0].meta_len), "meta-1");
    EXPECT_EQ(items[1].status, -EIO);
    EXPECT_EQ(contains("key-5"), 0);
    EXPECT_EQ(stats().copy_faults, 1u);
}

TEST_F(HeaderFaults, WritingTheHeadersOfEntriesIsEioAndQuarantines) {
    FILE_ARENA_ONLY(); // the SIGBUS comes from truncating the arena file
    SKIP_UNDER_TSAN();
    open_and_cut(spec());
    // A removal clears the commit word: the entry goes, its slot is
    // quarantined (its commit word may still be there).
    EXPECT_EQ(daxkv_remove(s(), "key-6", 5, 0), 0) << daxkv_errmsg();
    EXPECT_EQ(contains("key-6"), 0);
    // A put writes the header of a free slot (12..15, all cut).
    EXPECT_EQ(daxkv_put(s(), "new", 3, "", 0, 0), -EIO);
    EXPECT_TRUE(contains_text(daxkv_errmsg(), "writing the entry failed"))
        << daxkv_errmsg();
    EXPECT_TRUE(contains_text(daxkv_errmsg(), "quarantined")) << daxkv_errmsg();
    EXPECT_EQ(contains("new"), 0);
    // In a batch, per item; a key being replaced keeps its old version.
    const char m[] = "other";
    std::vector<daxkv_item> items = {
        daxkv_item{"key-7", 5, const_cast<char *>(""), 0, const_cast<char *>(m), 5, 12345},
        daxkv_item{"new-b", 5, const_cast<char *>(""), 0, nullptr, 0, 12345}};
    EXPECT_EQ(daxkv_put_batch(s(), items.data(), items.size(), DAXKV_REPLACE), 0);
    EXPECT_EQ(items[0].status, -EIO);
    EXPECT_EQ(items[1].status, -EIO);
    EXPECT_EQ(contains("new-b"), 0);
    std::string meta;
    EXPECT_EQ(meta_of("key-1", &meta), 0); // a kept header's entry is whole
    EXPECT_EQ(meta, "meta-1");
    struct daxkv_stats st = stats();
    EXPECT_EQ(st.copy_faults, 4u);
    EXPECT_EQ(st.entries, 11u); // key-7 among them
    EXPECT_EQ(st.slots_free, 1u); // four quarantined: key-6's and three writes'
    EXPECT_EQ(st.slots_inflight, 0u);
    // The store closes (the superblocks lie before the cut).
    store_.reset();
}

TEST_F(HeaderFaults, WritingTheHeadersOfAMigrationFailsItAndQuarantines) {
    FILE_ARENA_ONLY(); // the SIGBUS comes from truncating the arena file
    SKIP_UNDER_TSAN();
    const StoreSpec first = spec().set("sigbus", "handle").set("hotplug", "1");
    const std::string second = second_arena(first, 0);
    ASSERT_FALSE(HasFailure());
    open_and_cut(first, false);
    ASSERT_EQ(daxkv_device_add(s(), second.c_str(), spec_arena_bytes(first)), 0)
        << daxkv_errmsg();
    // The second device's headers go: moving an entry writes one there.
    ASSERT_EQ(::truncate(second.c_str(), static_cast<off_t>(daxkv::arena::kHeaderOffset)), 0);
    daxkv_hotplug_result r{};
    r.struct_size = sizeof r;
    EXPECT_EQ(daxkv_device_remove(s(), path_.c_str(), DAXKV_MIGRATE, 0, &r), -EIO);
    EXPECT_TRUE(contains_text(daxkv_errmsg(), "writing the header of slot")) << daxkv_errmsg();
    EXPECT_TRUE(contains_text(daxkv_errmsg(), "nothing was moved")) << daxkv_errmsg();
    struct daxkv_stats st = stats();
    EXPECT_EQ(st.copy_faults, 1u);
    EXPECT_EQ(st.entries, 12u);
    EXPECT_EQ(st.slots_inflight, 0u);
    EXPECT_EQ(st.slots_free, 4u + 15u); // the first device's four, the second's but one
    std::string meta;
    EXPECT_EQ(meta_of("key-2", &meta), 0);
    EXPECT_EQ(meta, "meta-2");
}

// While it lives, each arena file recovery scans (at an open or a device
// add) is cut to `bytes` just before the scan: its values fault as pages of
// bad media would.
class CutBeforeScan {
public:
    explicit CutBeforeScan(uint64_t bytes) {
        daxkv::testing::before_recovery_scan = [bytes](const std::string &path) {
            ASSERT_EQ(::truncate(path.c_str(), static_cast<off_t>(bytes)), 0);
        };
    }
    ~CutBeforeScan() { daxkv::testing::before_recovery_scan = nullptr; }
    CutBeforeScan(const CutBeforeScan &) = delete;
    CutBeforeScan &operator=(const CutBeforeScan &) = delete;
};

TEST_F(Faults, SigbusCheckingValuesAtReopenLeavesThemOutAndQuarantines) {
    // Recovery reads every value to check it. A page that faults there (bad
    // media; here the file cut under the new mapping just before the scan)
    // killed every open, so a store could not come back at all; with
    // sigbus=handle the entry is left out and its slot quarantined.
    FILE_ARENA_ONLY(); // the SIGBUS comes from truncating the arena file
    SKIP_UNDER_TSAN();
    open(StoreSpec(64 * 1024, 4).set("sigbus", "handle"));
    put_all(3, 60000, 1100);
    store_.reset();
    const CutBeforeScan cut(payload_offset(spec_));
    open(spec_);
    struct daxkv_stats st = stats();
    EXPECT_EQ(st.recovered_entries, 0u);
    EXPECT_EQ(st.recovery_dropped_corrupt, 3u);
    EXPECT_EQ(st.copy_faults, 3u);
    EXPECT_EQ(st.entries, 0u);
    EXPECT_EQ(st.slots_free, 1u); // three slots quarantined: never handed out
    for (const auto &k : keys_)
        EXPECT_EQ(contains(k), 0) << k;
}

TEST_F(Faults, SigbusReadingSlotHeadersAtReopenLeavesThoseSlotsOutAndQuarantines) {
    // The scan reads every slot header before anything else of a slot; a
    // page of them that faulted killed every open as a value's page did.
    // Such a slot cannot be judged, nor its header written: it is left out
    // and quarantined, whatever it held.
    FILE_ARENA_ONLY(); // the SIGBUS comes from truncating the arena file
    SKIP_UNDER_TSAN();
    // verify=off: the scan reads headers alone, so the entries whose
    // headers lie in the page kept come back (their values are cut too).
    // Headers of 1 KiB: four to a page, none across two.
    open(StoreSpec(4096, 16, 1024 - 64 - daxkv::arena::kKeyMax)
             .set("sigbus", "handle")
             .set("verify", "off"));
    ASSERT_EQ(daxkv::arena::header_bytes_for(spec_.meta_bytes), 1024u);
    put_all(16, 1000, 1900); // key i in slot i
    store_.reset();
    const uint64_t whole = 4;
    const CutBeforeScan cut(daxkv::arena::kHeaderOffset + 4096); // the first page of headers kept
    open(spec_);
    struct daxkv_stats st = stats();
    EXPECT_EQ(st.recovered_entries, whole);
    EXPECT_EQ(st.recovery_dropped_corrupt, 16 - whole);
    EXPECT_EQ(st.copy_faults, 16 - whole);
    EXPECT_EQ(st.entries, whole);
    EXPECT_EQ(st.slots_free, 0u); // the others quarantined: never handed out
    for (size_t i = 0; i < keys_.size(); ++i)
        EXPECT_EQ(contains(keys_[i]), i < whole ? 1 : 0) << i;
}

TEST_F(Faults, CheckingAnArenaWhosePageOfHeadersFaultsReportsThoseSlotsUnreadable) {
    // daxkv check judges slots as the recovery scan does, under the guard:
    // a page of bad media ends those slots' check, not the command, and
    // even a repair leaves them as they are.
    FILE_ARENA_ONLY(); // the SIGBUS comes from truncating the arena file
    SKIP_UNDER_TSAN();
    daxkv::engine::install_sigbus_handler();
    open(StoreSpec(4096, 16, 1024 - 64 - daxkv::arena::kKeyMax)); // four headers to a page
    put_all(16, 1000, 2000);                                       // key i in slot i
    store_.reset();
    const uint64_t bytes = spec_arena_bytes(spec_);
    const int fd = ::open(path_.c_str(), O_RDWR);
    ASSERT_GE(fd, 0);
    void *m = ::mmap(nullptr, bytes, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
    ASSERT_NE(m, MAP_FAILED);
    ASSERT_EQ(::ftruncate(fd, static_cast<off_t>(daxkv::arena::kHeaderOffset + 4096)), 0);
    daxkv::arena::CheckOptions opt;
    opt.check_values = false; // the values are cut too
    opt.read_guard = &daxkv::engine::guarded_call;
    for (bool repair : {false, true}) {
        SCOPED_TRACE(repair);
        opt.repair = repair;
        const daxkv::arena::ImageReport r = daxkv::arena::check_image(static_cast<char *>(m),
                                                                      bytes, opt);
        EXPECT_EQ(r.state, daxkv::arena::ImageState::arena);
        EXPECT_EQ(r.live, 4u);
        EXPECT_EQ(r.unreadable, 12u);
        EXPECT_TRUE(r.damaged());
        EXPECT_EQ(r.withdrawn, 0u);
        ASSERT_EQ(r.findings.size(), 12u);
        for (size_t i = 0; i < r.findings.size(); ++i) {
            EXPECT_EQ(r.findings[i].slot, 4 + i);
            EXPECT_STREQ(r.findings[i].reason, "unreadable");
            EXPECT_EQ(r.findings[i].key, "");
        }
    }
    ::munmap(m, bytes);
    ::close(fd);
}

TEST_F(Faults, SigbusCheckingValuesOfAnAddedDeviceLeavesThemOutAndQuarantines) {
    // The same for a device added at run time: its arena is scanned as at
    // an open, and the pool goes on with what it could read.
    FILE_ARENA_ONLY(); // the SIGBUS comes from truncating the arena file
    SKIP_UNDER_TSAN();
    const std::string second = open_beside_second(2, 1, 60000, 1300);
    ASSERT_FALSE(HasFailure());
    const StoreSpec &spec = spec_;
    const CutBeforeScan cut(payload_offset(spec));
    ASSERT_EQ(daxkv_device_add(s(), second.c_str(), spec_arena_bytes(spec)), 0) << daxkv_errmsg();
    struct daxkv_stats st = stats();
    EXPECT_EQ(st.copy_faults, 2u);
    EXPECT_EQ(st.entries, 1u);
    EXPECT_EQ(st.slots_free, 3u + 2u); // the first device's three, the second's two
    EXPECT_EQ(contains("added-0"), 0);
    EXPECT_EQ(contains("added-1"), 0);
    EXPECT_EQ(value(keys_[0]), vals_[0]);
}

// The arena's first two pages hold its superblock copies and the removal
// table of the pool history (copy A and buckets 0..479, copy B and buckets
// 480..959). A running store writes them on every commit and removal (the
// history), at floor raises and at close; an open reads them first. A page
// of them that faulted ended the process, whatever sigbus said.
class SuperblockFaults : public Faults {
protected:
    // Superblock block `block` (0: A, 1: B) of a mapping.
    static char *block(char *base, int block) {
        return base + block * daxkv::arena::kSuperblockBytes;
    }
    // The block of the removal table that records changes of key k.
    static int block_of(const std::string &k) {
        return daxkv::arena::removal_bucket(daxkv::Index::hash(k)) <
                       daxkv::arena::kRemovalBucketsPerBlock
                   ? 0
                   : 1;
    }
    // The first key "<prefix><i>" whose changes block `block` records.
    static std::string key_in(int block, const std::string &prefix) {
        for (int i = 0;; ++i)
            if (block_of(prefix + std::to_string(i)) == block)
                return prefix + std::to_string(i);
    }
    static daxkv::arena::Arena::Options options_for(const StoreSpec &spec) {
        daxkv::arena::Arena::Options opt;
        opt.slot_bytes = spec.slot_bytes;
        opt.meta_bytes = spec.meta_bytes;
        opt.fault_guard = &daxkv::engine::guarded_call;
        return opt;
    }
    std::unique_ptr<daxkv::platform::Mapping> map_existing() {
        daxkv::platform::MapRequest req;
        req.path = path_;
        req.create = false;
        return daxkv::platform::Mapping::open(req);
    }
};

TEST_F(SuperblockFaults, ABlockThatFaultsUnderARunningStoreLeavesItsRecordOutAndNothingElse) {
    // Every commit and removal raises its key's word of the removal table
    // before the commit word changes; the close marks both superblock
    // copies. Where block B faults, the changes it should record are left
    // out of it (counted, logged once) and the store goes on: an open
    // reads the blocks first and refuses a device whose blocks fault, so
    // the record it misses cannot bring back a stale entry.
    FILE_ARENA_ONLY(); // the store's own file mapping is cut
    SKIP_UNDER_TSAN();
    open(StoreSpec(4096, 16).set("sigbus", "handle"));
    put_all(8, 3000, 2300);
    fault_pages(block(s()->store->core().pool.arena(0).mapping().base(), 1));
    size_t in_b = 0, gone = 0;
    for (size_t i = 0; i < 4; ++i) { // removals: a word of each block
        EXPECT_EQ(remove(keys_[i]), 0) << keys_[i] << ": " << daxkv_errmsg();
        EXPECT_EQ(contains(keys_[i]), 0);
        in_b += block_of(keys_[i]);
        ++gone;
    }
    // A new key and a replacement recorded in block B, one in block A; a
    // batch of both.
    const std::string b_new = key_in(1, "new-"), a_new = key_in(0, "new-");
    const std::vector<uint8_t> v1 = pattern(2400, 2000), v2 = pattern(2401, 2100);
    EXPECT_EQ(put(b_new, v1), 0) << daxkv_errmsg();
    EXPECT_EQ(put(a_new, v2), 0) << daxkv_errmsg();
    in_b += 1;
    size_t replaced = 4;
    while (block_of(keys_[replaced]) != 1)
        ++replaced;
    vals_[replaced] = pattern(2402, 2500);
    EXPECT_EQ(put(keys_[replaced], vals_[replaced], DAXKV_REPLACE), 0) << daxkv_errmsg();
    in_b += 1;
    const std::string b_batch = key_in(1, "batch-"), a_batch = key_in(0, "batch-");
    const std::vector<uint8_t> v3 = pattern(2403, 1000), v4 = pattern(2404, 1100);
    std::vector<daxkv_item> items = {
        daxkv_item{b_batch.data(), b_batch.size(), const_cast<uint8_t *>(v3.data()), v3.size(),
                   nullptr, 0, 12345},
        daxkv_item{a_batch.data(), a_batch.size(), const_cast<uint8_t *>(v4.data()), v4.size(),
                   nullptr, 0, 12345}};
    EXPECT_EQ(daxkv_put_batch(s(), items.data(), items.size(), 0), 2) << daxkv_errmsg();
    in_b += 1;
    EXPECT_EQ(value(b_new), v1);
    EXPECT_EQ(value(a_new), v2);
    EXPECT_EQ(value(keys_[replaced]), vals_[replaced]);
    EXPECT_EQ(value(b_batch), v3);
    EXPECT_EQ(value(a_batch), v4);
    struct daxkv_stats st = stats();
    EXPECT_EQ(st.copy_faults, in_b); // one per change recorded in block B
    EXPECT_EQ(st.entries, 8u - gone + 4u);
    EXPECT_EQ(st.slots_free + st.entries, 16u); // nothing quarantined: no slot faulted
    // The close marks copy A, then faults on copy B: the process lives.
    store_.reset();
    // The file itself is whole (only the store's mapping was cut): it
    // opens with what the store held.
    open(spec_);
    EXPECT_EQ(stats().entries, 8u - gone + 4u);
    EXPECT_EQ(value(b_new), v1);
    EXPECT_EQ(value(keys_[replaced]), vals_[replaced]);
    EXPECT_EQ(value(a_batch), v4);
    for (size_t i = 0; i < 4; ++i)
        EXPECT_EQ(contains(keys_[i]), 0) << keys_[i];
}

TEST_F(SuperblockFaults, AnArenaWhoseSuperblockBlocksFaultIsRefusedAndLeftAsItIs) {
    // The open reads both blocks first, under the guard: a device whose
    // blocks fault cannot say what it holds, nor which changes of the pool
    // it saw. -EIO, the arena left as it is, also when a format or a
    // reformat is asked for: a format clears the blocks in turn, and one
    // that faulted on block B had cleared block A.
    FILE_ARENA_ONLY(); // the blocks are cut out of a mapping of the file
    SKIP_UNDER_TSAN();
    open(StoreSpec(4096, 16).set("sigbus", "handle"));
    put_all(4, 3000, 2500);
    store_.reset();
    daxkv::engine::install_sigbus_handler();
    for (int b = 0; b < 2; ++b) {
        SCOPED_TRACE(b);
        for (const int asked : {0, 1, 2}) { // nothing, a format, a reformat
            SCOPED_TRACE(asked);
            const std::string before = read_file(path_);
            std::unique_ptr<daxkv::platform::Mapping> map = map_existing();
            fault_pages(block(map->base(), b));
            daxkv::arena::Arena::Options opt = options_for(spec_);
            opt.format = asked == 1;
            opt.reformat = asked == 2;
            try {
                daxkv::arena::Arena arena(std::move(map), opt);
                ADD_FAILURE() << "opened an arena whose superblock block faults";
            } catch (const daxkv::Error &e) {
                EXPECT_EQ(e.code(), -EIO);
                EXPECT_TRUE(contains_text(e.what(), "reading its superblock blocks")) << e.what();
                EXPECT_TRUE(contains_text(e.what(), "nothing was written")) << e.what();
            }
            EXPECT_TRUE(read_file(path_) == before) << "the file changed";
        }
    }
    // Both copies whole: the store opens with its entries.
    open(spec_);
    const struct daxkv_stats st = stats();
    EXPECT_EQ(st.entries, keys_.size());
    for (size_t i = 0; i < keys_.size(); ++i)
        EXPECT_EQ(value(keys_[i]), vals_[i]) << keys_[i];
}

TEST_F(SuperblockFaults, CheckingAnArenaWhoseSuperblockBlocksFaultReportsItUnreadable) {
    // daxkv check and info read the blocks as an open does, under the
    // guard: where either faults the image is unreadable (damaged, nothing
    // judged, nothing repaired) instead of the command dying.
    FILE_ARENA_ONLY();
    SKIP_UNDER_TSAN();
    daxkv::engine::install_sigbus_handler();
    open(StoreSpec(4096, 16));
    put_all(4, 1000, 2700);
    store_.reset();
    for (int b = 0; b < 2; ++b) {
        SCOPED_TRACE(b);
        std::unique_ptr<daxkv::platform::Mapping> map = map_existing();
        fault_pages(block(map->base(), b));
        daxkv::arena::CheckOptions opt;
        opt.read_guard = &daxkv::engine::guarded_call;
        for (bool repair : {false, true}) {
            opt.repair = repair;
            const daxkv::arena::ImageReport r = daxkv::arena::check_image(map->base(),
                                                                          map->size(), opt);
            EXPECT_EQ(r.state, daxkv::arena::ImageState::unreadable);
            EXPECT_STREQ(daxkv::arena::image_state_name(r.state), "unreadable");
            EXPECT_TRUE(r.damaged());
            EXPECT_EQ(r.live, 0u);
            EXPECT_EQ(r.withdrawn, 0u);
            EXPECT_FALSE(r.superblock_rewritten);
        }
    }
    open(spec_); // the file itself is whole
    for (size_t i = 0; i < keys_.size(); ++i)
        EXPECT_EQ(value(keys_[i]), vals_[i]) << keys_[i];
}

TEST_F(SuperblockFaults, AGrowWhoseNewSlotHeadersFaultIsEioAndChangesNothing) {
    // A grow clears the new slots' commit words before it records the new
    // slot count: a header page that faults there failed nothing and ended
    // the process.
    FILE_ARENA_ONLY();
    SKIP_UNDER_TSAN();
    open(StoreSpec(4096, 16, 1024 - 64 - daxkv::arena::kKeyMax).set("sigbus", "handle"));
    store_.reset();
    daxkv::engine::install_sigbus_handler();
    std::unique_ptr<daxkv::platform::Mapping> map = map_existing();
    char *base = map->base();
    daxkv::arena::Arena::Options opt = options_for(spec_);
    daxkv::arena::Arena arena(std::move(map), opt);
    ASSERT_EQ(arena.layout().header_bytes, 1024u);
    ASSERT_EQ(arena.usable_slots(), 16u);
    arena.set_usable_slots(8); // nothing lives above slot 8
    fault_pages(base + daxkv::arena::kHeaderOffset + 8 * 1024); // the headers of slots 8..11
    try {
        arena.set_usable_slots(16);
        ADD_FAILURE() << "grew over headers that fault";
    } catch (const daxkv::Error &e) {
        EXPECT_EQ(e.code(), -EIO);
        EXPECT_TRUE(contains_text(e.what(), "clearing its slot headers faulted")) << e.what();
    }
    EXPECT_EQ(arena.usable_slots(), 8u);
    EXPECT_EQ(daxkv::arena::usable_slots_of(arena.superblock()), 8u);
}

TEST_F(SuperblockFaults, AnOpenOrAddWhoseBlocksFaultAfterTheScanFailsWithEio) {
    // After its scan an open writes every device's floor and last open and
    // shares the pool's removal table; an add reads the new device's
    // table. Where the second block faults there (cut just before the
    // scan), the open or the add fails with -EIO and nothing is added.
    FILE_ARENA_ONLY(); // the SIGBUS comes from truncating the arena file
    SKIP_UNDER_TSAN();
    const std::string second = open_beside_second(2, 3, 3000, 2600);
    ASSERT_FALSE(HasFailure());
    const StoreSpec &spec = spec_;
    {
        const CutBeforeScan cut(daxkv::arena::kSuperblockBytes);
        EXPECT_EQ(daxkv_device_add(s(), second.c_str(), spec_arena_bytes(spec)), -EIO);
        EXPECT_TRUE(contains_text(daxkv_errmsg(), "removal table faulted")) << daxkv_errmsg();
    }
    struct daxkv_stats st = stats();
    EXPECT_EQ(st.devices, 1u);
    EXPECT_EQ(st.entries, 3u);
    EXPECT_EQ(contains("added-0"), 0);
    EXPECT_EQ(value(keys_[2]), vals_[2]);
    store_.reset();
    const CutBeforeScan cut(daxkv::arena::kSuperblockBytes);
    StorePtr again;
    EXPECT_EQ(open_store(&again, path_, spec), -EIO);
    EXPECT_TRUE(contains_text(daxkv_errmsg(), "superblock faulted")) << daxkv_errmsg();
}

TEST_F(SuperblockFaults, AnAddedDeviceWhoseBlocksFaultOnceInUseStaysWithoutItsRecord) {
    // Once an added device takes entries, the add records the pool's floor
    // and open on it and shares the removal table: a fault there cannot
    // undo the add, so the device stays without that record, as under a
    // running store.
    FILE_ARENA_ONLY(); // the SIGBUS comes from truncating the arena file
    SKIP_UNDER_TSAN();
    const std::string second = open_beside_second(2, 1, 60000, 2800);
    ASSERT_FALSE(HasFailure());
    const StoreSpec &spec = spec_;
    s()->store->hotplug().set_hook([&](int phase) {
        if (phase == 4) { // the device is in use, its record not yet written
            ASSERT_EQ(::truncate(second.c_str(), daxkv::arena::kSuperblockBytes), 0);
        }
    });
    EXPECT_EQ(daxkv_device_add(s(), second.c_str(), spec_arena_bytes(spec)), 0) << daxkv_errmsg();
    s()->store->hotplug().set_hook(nullptr);
    struct daxkv_stats st = stats();
    EXPECT_EQ(st.devices, 2u);
    EXPECT_EQ(st.copy_faults, 2u); // the floor and open; the shared table
    EXPECT_EQ(st.entries, 3u);
    EXPECT_EQ(value(keys_[0]), vals_[0]);
    // The cut took the device's values too: a read of one fails alone.
    std::vector<uint8_t> out;
    EXPECT_EQ(get("added-1", &out), -EIO);
    EXPECT_EQ(contains("added-1"), 0);
    EXPECT_EQ(stats().entries, 2u);
}

class FaultsDeath : public Faults {
protected:
    void SetUp() override {
        // A fresh process per death test: the handler is process-wide.
        ::testing::FLAGS_gtest_death_test_style = "threadsafe";
    }
};

TEST_F(FaultsDeath, WithoutSigbusHandleTheProcessDies) {
    FILE_ARENA_ONLY(); // the SIGBUS comes from truncating the arena file
    SKIP_UNDER_TSAN();
    EXPECT_DEATH(
        {
            open(StoreSpec(64 * 1024, 2));
            put_all(1, 1000, 900);
            if (::truncate(path_.c_str(), static_cast<off_t>(payload_offset(spec_))) != 0)
                std::_Exit(3);
            std::vector<uint8_t> buf(64 * 1024);
            size_t len = 0;
            daxkv_get(s(), keys_[0].data(), keys_[0].size(), buf.data(), buf.size(), &len);
            std::_Exit(0); // not reached: the read faults
        },
        "");
}

TEST_F(FaultsDeath, FaultsOutsideOurCopiesGoToThePreviousHandler) {
    FILE_ARENA_ONLY(); // the SIGBUS comes from truncating the arena file
    SKIP_UNDER_TSAN();
    EXPECT_EXIT(
        {
            struct sigaction sa;
            std::memset(&sa, 0, sizeof sa);
            sa.sa_handler = +[](int) { std::_Exit(42); };
            sigaction(SIGBUS, &sa, nullptr);
            open(StoreSpec(64 * 1024, 2).set("sigbus", "handle"));
            put_all(1, 1000, 1000);
            uint64_t full = spec_arena_bytes(spec_);
            if (::truncate(path_.c_str(), static_cast<off_t>(payload_offset(spec_))) != 0)
                std::_Exit(3);
            std::vector<uint8_t> buf(64 * 1024);
            size_t len = 0;
            // Ours: -EIO, the process goes on.
            if (daxkv_get(s(), keys_[0].data(), keys_[0].size(), buf.data(), buf.size(),
                          &len) != -EIO)
                std::_Exit(4);
            // Not ours: a fault on a mapping of the caller's own.
            int fd = ::open(path_.c_str(), O_RDONLY);
            void *m = ::mmap(nullptr, full, PROT_READ, MAP_SHARED, fd, 0);
            if (m == MAP_FAILED)
                std::_Exit(5);
            volatile const char *p = static_cast<const char *>(m) + full - 1;
            (void)*p; // SIGBUS -> daxkv's handler -> the one installed before -> exit 42
            std::_Exit(6);
        },
        ::testing::ExitedWithCode(42), "");
}


TEST_F(FaultsDeath, AFaultReadingTheCallersBufferOfAPutIsTheCallers) {
    // A put guards the arena side of its copy, not the caller's: a SIGBUS
    // on a load from the caller's buffer goes to the handler installed
    // before, and is not taken for bad media in the slot.
    FILE_ARENA_ONLY(); // the caller's buffer is a cut mapping of a file
    SKIP_UNDER_TSAN();
    EXPECT_EXIT(
        {
            struct sigaction sa;
            std::memset(&sa, 0, sizeof sa);
            sa.sa_handler = +[](int) { std::_Exit(42); };
            sigaction(SIGBUS, &sa, nullptr);
            open(StoreSpec(64 * 1024, 2).set("sigbus", "handle"));
            const std::string mine = dir_.file("callers.bin");
            int fd = ::open(mine.c_str(), O_RDWR | O_CREAT, 0600);
            if (fd < 0 || ::ftruncate(fd, 64 * 1024) != 0)
                std::_Exit(3);
            void *m = ::mmap(nullptr, 64 * 1024, PROT_READ, MAP_SHARED, fd, 0);
            if (m == MAP_FAILED || ::ftruncate(fd, 0) != 0)
                std::_Exit(5);
            daxkv_put(s(), "k", 1, m, 60000, 0); // SIGBUS -> the handler before -> exit 42
            std::_Exit(6);
        },
        ::testing::ExitedWithCode(42), "");
}

} // namespace
