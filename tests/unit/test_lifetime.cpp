// Lifetimes: leases (deferred reclaim, generations), reservations (in-flight
// keys, commit, abort, cancellation), shutdown while calls are blocked in
// copies, calls after shutdown, and concurrent use from many threads.
//
// Copies are held mid-way with userfaultfd: a caller's buffer whose pages
// are missing blocks the copying thread in the kernel until the test fills
// them, so "a call in flight" is a fact, not a timing guess.
//
// Bad inputs tried here, each with its expected code:
//   every call after daxkv_shutdown                              -> -ESHUTDOWN
//   commit after shutdown                                        -> -ESHUTDOWN (slot returned)
//   commit of a reservation cancelled by a forced remove         -> -ECANCELED
//   unforced remove of a key in flight                           -> -EBUSY
//   second reserve / put of a key in flight                      -> DAXKV_EXISTED, nothing written
//   reserve larger than slot_bytes; bad keys; NULL out           -> -E2BIG / -EINVAL
//   set_meta larger than meta_bytes; NULL meta with a length;
//     NULL reservation                                           -> -E2BIG / -EINVAL
//   put into a 1-slot arena whose only slot is held by a lease
//     or an in-flight read of a removed entry                    -> -ENOSPC
//   lease released after daxkv_close                             -> safe (ASan)
//   lease_batch: NULL items with n > 0, n above INT32_MAX,
//     unknown flags, NULL store                                  -> -EINVAL (call)
//   lease_batch items: NULL key, key length 0 and 513            -> status -EINVAL
//   lease_batch items: missing key                               -> status -ENOENT
//   lease_batch after shutdown                                   -> -ESHUTDOWN, nothing leased
//   in a child forked after the open: every call on the store,
//     daxkv_commit, daxkv_lease_slot, daxkv_cursor_next,
//     daxkv_reservation_set_meta, daxkv_reservation_slot,
//     daxkv_cursor_open, daxkv_lease_batch, daxkv_event_fd,
//     daxkv_poll                                                 -> -EPERM, nothing written;
//     daxkv_close, daxkv_abort, lease release, cursor close     -> return at once
#include <gtest/gtest.h>

#include <atomic>
#include <cerrno>
#include <chrono>
#include <condition_variable>
#include <csignal>
#include <cstring>
#include <functional>
#include <mutex>
#include <random>
#include <string>
#include <thread>
#include <vector>

#include <linux/userfaultfd.h>
#include <poll.h>
#include <sys/ioctl.h>
#include <sys/mman.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

#include "helpers.hpp"
#include "capi/handles.hpp"
#include "store/gate.hpp"

using namespace daxkv_test;
using namespace std::chrono_literals;

namespace {

class Lifetime : public StoreFixture {};

// Anonymous memory whose pages are missing until open(): the first thread
// to touch it blocks in the kernel.
class FaultGate {
public:
    FaultGate(size_t len, std::vector<uint8_t> content) : len_(len), content_(std::move(content)) {
        content_.resize(round_len(), 0);
#ifdef UFFD_USER_MODE_ONLY
        uffd_ = static_cast<int>(
            ::syscall(SYS_userfaultfd, O_CLOEXEC | O_NONBLOCK | UFFD_USER_MODE_ONLY));
#endif
        if (uffd_ < 0)
            uffd_ = static_cast<int>(::syscall(SYS_userfaultfd, O_CLOEXEC | O_NONBLOCK));
        if (uffd_ < 0) {
            why_ = std::string("userfaultfd: ") + std::strerror(errno);
            return;
        }
        struct uffdio_api api;
        std::memset(&api, 0, sizeof api);
        api.api = UFFD_API;
        if (::ioctl(uffd_, UFFDIO_API, &api) != 0) {
            why_ = std::string("UFFDIO_API: ") + std::strerror(errno);
            return;
        }
        void *p = ::mmap(nullptr, round_len(), PROT_READ | PROT_WRITE,
                         MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
        if (p == MAP_FAILED) {
            why_ = std::string("mmap: ") + std::strerror(errno);
            return;
        }
        base_ = static_cast<char *>(p);
        struct uffdio_register reg;
        std::memset(&reg, 0, sizeof reg);
        reg.range.start = reinterpret_cast<uintptr_t>(base_);
        reg.range.len = round_len();
        reg.mode = UFFDIO_REGISTER_MODE_MISSING;
        if (::ioctl(uffd_, UFFDIO_REGISTER, &reg) != 0) {
            why_ = std::string("UFFDIO_REGISTER: ") + std::strerror(errno);
            return;
        }
        ok_ = true;
    }
    ~FaultGate() {
        if (ok_ && !opened_)
            open(); // never leave a thread blocked
        if (base_)
            ::munmap(base_, round_len());
        if (uffd_ >= 0)
            ::close(uffd_);
    }
    FaultGate(const FaultGate &) = delete;
    FaultGate &operator=(const FaultGate &) = delete;

    bool ok() const { return ok_; }
    const std::string &why() const { return why_; }
    char *data() const { return base_; }

    // True once a thread has faulted on the region (and is now blocked).
    bool wait_for_fault(std::chrono::milliseconds limit) {
        struct pollfd pfd = {uffd_, POLLIN, 0};
        if (::poll(&pfd, 1, static_cast<int>(limit.count())) != 1)
            return false;
        struct uffd_msg msg;
        ssize_t n = ::read(uffd_, &msg, sizeof msg);
        return n == sizeof msg && msg.event == UFFD_EVENT_PAGEFAULT;
    }
    // Fill every page with its content and wake every blocked thread.
    void open() {
        opened_ = true;
        const size_t page = 4096;
        for (size_t off = 0; off < round_len(); off += page) {
            struct uffdio_copy c;
            std::memset(&c, 0, sizeof c);
            c.dst = reinterpret_cast<uintptr_t>(base_) + off;
            c.src = reinterpret_cast<uintptr_t>(content_.data()) + off;
            c.len = page;
            c.mode = 0;
            if (::ioctl(uffd_, UFFDIO_COPY, &c) != 0 && errno != EEXIST)
                ADD_FAILURE() << "UFFDIO_COPY: " << std::strerror(errno);
        }
    }

private:
    size_t round_len() const { return (len_ + 4095) / 4096 * 4096; }
    size_t len_;
    std::vector<uint8_t> content_;
    int uffd_ = -1;
    char *base_ = nullptr;
    bool ok_ = false, opened_ = false;
    std::string why_;
};

#define REQUIRE_GATE(g)                                                                   \
    if (!(g).ok())                                                                       \
    GTEST_SKIP() << "userfaultfd is not available here (" << (g).why()                 \
                 << "); the blocked-copy cases need it"

// Poll until pred() or the limit; returns pred().
template <typename P>
bool eventually(P pred, std::chrono::milliseconds limit = 5000ms) {
    auto end = std::chrono::steady_clock::now() + limit;
    while (!pred()) {
        if (std::chrono::steady_clock::now() > end)
            return false;
        std::this_thread::sleep_for(1ms);
    }
    return true;
}

} // namespace

// ---------------------------------------------------------------------------
// Leases and deferred reclaim

TEST_F(Lifetime, LeaseSeesItsBytesAfterRemoveAndHoldsTheSlot) {
    open(StoreSpec{4096, 1}.set("eviction", "lru"));
    std::vector<uint8_t> a = pattern(1, 3000);
    ASSERT_EQ(put("a", a), 0);
    LeasePtr l = lease("a");
    ASSERT_NE(l, nullptr);
    ASSERT_EQ(daxkv_lease_size(l.get()), 3000u);
    EXPECT_EQ(0, std::memcmp(daxkv_lease_data(l.get()), a.data(), a.size()));

    EXPECT_EQ(remove("a"), 0); // not pinned: removal is allowed
    EXPECT_EQ(contains("a"), 0);
    struct daxkv_stats st = stats();
    EXPECT_EQ(st.entries, 0u);
    EXPECT_EQ(st.slots_pending_free, 1u);
    EXPECT_EQ(st.leases_active, 1u);
    EXPECT_EQ(st.slots_free, 0u);
    // The only slot waits for the lease: a new put has nowhere to go.
    EXPECT_EQ(put("b", pattern(2, 100)), -ENOSPC);
    EXPECT_EQ(0, std::memcmp(daxkv_lease_data(l.get()), a.data(), a.size()));

    l.reset();
    st = stats();
    EXPECT_EQ(st.slots_pending_free, 0u);
    EXPECT_EQ(st.leases_active, 0u);
    EXPECT_EQ(st.slots_free, 1u);
    ASSERT_EQ(put("b", pattern(2, 100)), 0);
    EXPECT_EQ(value("b"), pattern(2, 100));
}

TEST_F(Lifetime, LeasedEntryIsNotEvicted) {
    open({4096, 2});
    ASSERT_EQ(put("a", pattern(1, 10)), 0);
    ASSERT_EQ(put("b", pattern(2, 10)), 0);
    LeasePtr la = lease("a");
    LeasePtr lb = lease("b");
    EXPECT_EQ(put("c", pattern(3, 10)), -ENOSPC);
    lb.reset();
    ASSERT_EQ(put("c", pattern(3, 10)), 0); // b is evictable again, a still leased
    EXPECT_EQ(contains("a"), 1);
    EXPECT_EQ(contains("b"), 0);
    EXPECT_EQ(0, std::memcmp(daxkv_lease_data(la.get()), pattern(1, 10).data(), 10));
}

TEST_F(Lifetime, ReplaceWhileLeasedKeepsTheLeaseOnTheOldBytes) {
    open(StoreSpec{4096, 2}.set("eviction", "none"));
    std::vector<uint8_t> old_v = pattern(1, 2000), new_v = pattern(2, 1000);
    ASSERT_EQ(put("k", old_v), 0);
    LeasePtr l = lease("k");
    ASSERT_EQ(put("k", new_v, DAXKV_REPLACE), 0);
    EXPECT_EQ(value("k"), new_v);
    ASSERT_EQ(daxkv_lease_size(l.get()), 2000u);
    EXPECT_EQ(0, std::memcmp(daxkv_lease_data(l.get()), old_v.data(), old_v.size()));
    EXPECT_EQ(stats().slots_pending_free, 1u);
    EXPECT_EQ(put("x", pattern(3, 10)), -ENOSPC);
    l.reset();
    ASSERT_EQ(put("x", pattern(3, 10)), 0); // the old version's slot
    EXPECT_EQ(value("k"), new_v);
    EXPECT_EQ(value("x"), pattern(3, 10));
}

TEST_F(Lifetime, StaleGenerationReleaseDoesNotDisturbTheNewEntry) {
    open(StoreSpec{4096, 2}.set("eviction", "none"));
    auto lay = daxkv::arena::compute_layout(spec_arena_bytes(spec_), 4096, 256);
    FileMap fm(path_);
    ASSERT_TRUE(fm.ok());
    auto header = [&](uint32_t slot) {
        return reinterpret_cast<const daxkv::arena::SlotHeader *>(
            fm.base() + lay.header_offset + slot * lay.header_bytes);
    };
    std::vector<uint8_t> a = pattern(1, 300), b = pattern(2, 400), c = pattern(3, 500);
    ASSERT_EQ(put("a", a), 0); // slot 0, generation 1
    ASSERT_EQ(header(0)->generation, 1u);
    LeasePtr l1 = lease("a");
    LeasePtr l2 = lease("a");
    ASSERT_EQ(remove("a", DAXKV_FORCE), 0);
    ASSERT_EQ(put("b", b), 0); // slot 1
    EXPECT_EQ(put("c", c), -ENOSPC);
    l1.reset(); // one borrower left: still not reusable
    EXPECT_EQ(put("c", c), -ENOSPC);
    l2.reset();
    ASSERT_EQ(put("c", c), 0); // slot 0 again, a new generation
    EXPECT_EQ(header(0)->generation, 2u);
    EXPECT_EQ(0, std::memcmp(fm.base() + lay.data_offset, c.data(), c.size()));
    EXPECT_EQ(value("c"), c);
    EXPECT_EQ(value("b"), b);
    // Leases on the new incarnation work and release cleanly.
    LeasePtr l3 = lease("c");
    EXPECT_EQ(0, std::memcmp(daxkv_lease_data(l3.get()), c.data(), c.size()));
    l3.reset();
    struct daxkv_stats st = stats();
    EXPECT_EQ(st.leases_active, 0u);
    EXPECT_EQ(st.slots_pending_free, 0u);
    EXPECT_EQ(st.entries, 2u);
    EXPECT_EQ(st.slots_free, 0u);
    ASSERT_EQ(remove("c"), 0);
    EXPECT_EQ(stats().slots_free, 1u);
}

TEST_F(Lifetime, LeaseMetaAndMissAndBadArguments) {
    open(StoreSpec{4096, 2, 16});
    int rc = 0;
    LeasePtr l = lease("missing", &rc);
    EXPECT_EQ(rc, -ENOENT);
    EXPECT_EQ(l, nullptr);
    std::string k513(513, 'q');
    daxkv_lease *raw = reinterpret_cast<daxkv_lease *>(0x1);
    EXPECT_EQ(daxkv_lease_acquire(s(), k513.data(), k513.size(), &raw), -EINVAL);
    EXPECT_EQ(raw, nullptr);
    EXPECT_EQ(daxkv_lease_acquire(s(), nullptr, 1, &raw), -EINVAL);
    ASSERT_EQ(put("k", pattern(1, 10)), 0);
    LeasePtr ok = lease("k");
    size_t ml = 99;
    daxkv_lease_meta(ok.get(), &ml);
    EXPECT_EQ(ml, 0u);
    EXPECT_EQ(daxkv_lease_meta(ok.get(), nullptr), daxkv_lease_meta(ok.get(), &ml));
}

// daxkv_lease_batch: every item as daxkv_lease_acquire and its accessors
// would give it (data, size, metadata, slot), misses and bad keys as item
// statuses, DAXKV_PREFIX stopping at the first item not leased; the leases
// hold their slots like single ones.
TEST_F(Lifetime, LeaseBatchGivesWhatSingleLeasesGive) {
    open(StoreSpec{4096, 8, 16});
    std::string meta = "shape:2x3";
    ASSERT_EQ(put("a", pattern(1, 100)), 0);
    ASSERT_EQ(daxkv_put_batch(s(), nullptr, 0, 0), 0);
    {
        std::vector<uint8_t> v = pattern(2, 4096);
        daxkv_item it{"b", 1, v.data(), v.size(), &meta[0], meta.size(), 0};
        ASSERT_EQ(daxkv_put_batch(s(), &it, 1, 0), 1);
    }
    const std::string k513(513, 'q');
    std::vector<daxkv_lease_item> items(6);
    auto set_key = [&](size_t i, const void *k, size_t len) {
        items[i] = daxkv_lease_item{};
        items[i].key = k;
        items[i].key_len = len;
        items[i].lease = reinterpret_cast<daxkv_lease *>(0x1); // must be overwritten
    };
    set_key(0, "a", 1);
    set_key(1, "b", 1);
    set_key(2, "missing", 7);
    set_key(3, nullptr, 1);
    set_key(4, "", 0);
    set_key(5, k513.data(), k513.size());
    ASSERT_EQ(daxkv_lease_batch(s(), items.data(), items.size(), 0), 2) << daxkv_errmsg();
    EXPECT_EQ(items[2].status, -ENOENT);
    for (size_t i : {3, 4, 5})
        EXPECT_EQ(items[i].status, -EINVAL) << i;
    for (size_t i = 2; i < items.size(); ++i)
        EXPECT_EQ(items[i].lease, nullptr) << i;
    for (size_t i : {0, 1}) {
        const daxkv_lease_item &it = items[i];
        ASSERT_EQ(it.status, 0);
        LeasePtr one = lease(i == 0 ? "a" : "b");
        EXPECT_EQ(it.data, daxkv_lease_data(one.get()));
        EXPECT_EQ(it.size, daxkv_lease_size(one.get()));
        size_t ml = 0;
        EXPECT_EQ(it.meta, daxkv_lease_meta(one.get(), &ml));
        EXPECT_EQ(it.meta_len, ml);
        daxkv_slot_info si{};
        si.struct_size = sizeof si;
        ASSERT_EQ(daxkv_lease_slot(one.get(), &si), 0);
        EXPECT_EQ(it.slot, si.slot);
        EXPECT_EQ(it.generation, si.generation);
        EXPECT_EQ(it.offset, si.offset);
        EXPECT_EQ(it.device_id, si.device_id);
        EXPECT_EQ(static_cast<const char *>(si.payload_base) + si.offset, it.data);
    }
    EXPECT_EQ(items[1].meta_len, meta.size());
    EXPECT_EQ(std::string(static_cast<const char *>(items[1].meta), items[1].meta_len), meta);
    EXPECT_EQ(0, std::memcmp(items[1].data, pattern(2, 4096).data(), 4096));
    // The leases hold their slots: the bytes survive a remove.
    ASSERT_EQ(daxkv_remove(s(), "a", 1, 0), 0);
    EXPECT_EQ(0, std::memcmp(items[0].data, pattern(1, 100).data(), 100));
    EXPECT_EQ(stats().leases_active, 2u);
    for (auto &it : items)
        daxkv_lease_release(it.lease);
    EXPECT_EQ(stats().leases_active, 0u);

    // DAXKV_PREFIX: "b" then a miss; the rest are not looked at.
    set_key(0, "b", 1);
    set_key(1, "missing", 7);
    set_key(2, "b", 1);
    EXPECT_EQ(daxkv_lease_batch(s(), items.data(), 3, DAXKV_PREFIX), 1);
    EXPECT_EQ(items[1].status, -ENOENT);
    EXPECT_EQ(items[2].status, -ENOENT);
    EXPECT_EQ(items[2].lease, nullptr);
    daxkv_lease_release(items[0].lease);

    // Bad calls: nothing is looked at, nothing leased.
    EXPECT_EQ(daxkv_lease_batch(s(), nullptr, 1, 0), -EINVAL);
    EXPECT_EQ(daxkv_lease_batch(s(), items.data(), size_t(INT32_MAX) + 1, 0), -EINVAL);
    EXPECT_EQ(daxkv_lease_batch(s(), items.data(), 1, 0x80), -EINVAL);
    EXPECT_EQ(daxkv_lease_batch(nullptr, items.data(), 1, 0), -EINVAL);
    EXPECT_EQ(daxkv_lease_batch(s(), nullptr, 0, 0), 0);
    EXPECT_EQ(stats().leases_active, 0u);

    // After shutdown: the call fails as a whole.
    set_key(0, "b", 1);
    ASSERT_EQ(daxkv_shutdown(s()), 0);
    EXPECT_EQ(daxkv_lease_batch(s(), items.data(), 1, 0), -ESHUTDOWN);
    EXPECT_EQ(items[0].lease, nullptr);
}

// daxkv_lease_read_batch: each lease's value and metadata copied out,
// the metadata alone where data is NULL, -ENOBUFS with the sizes needed
// (nothing copied), the bytes of a lease whose entry was removed or
// replaced meanwhile; the bytes counted, not hits.
TEST_F(Lifetime, LeaseReadBatchCopiesLeasedEntriesOut) {
    open(StoreSpec{4096, 8, 16});
    const std::string meta = "shape:2x3";
    const std::vector<uint8_t> a = pattern(1, 100), b = pattern(2, 4096);
    ASSERT_EQ(put("a", a), 0);
    {
        daxkv_item it{"b", 1, const_cast<uint8_t *>(b.data()), b.size(),
                      const_cast<char *>(meta.data()), meta.size(), 0};
        ASSERT_EQ(daxkv_put_batch(s(), &it, 1, 0), 1);
    }
    ASSERT_EQ(put("empty", std::vector<uint8_t>{}), 0);
    LeasePtr la = lease("a"), lb = lease("b"), le = lease("empty");
    // Replaced and removed under the leases: they keep the old bytes.
    ASSERT_EQ(put("a", pattern(3, 50), DAXKV_REPLACE), 0);
    ASSERT_EQ(remove("b"), 0);
    const struct daxkv_stats before = stats();

    std::vector<uint8_t> out_a(200, 0xee), out_b(4096, 0xee);
    char meta_out[16];
    daxkv_lease *leases[] = {la.get(), lb.get(), le.get()};
    daxkv_item items[3] = {
        {nullptr, 0, out_a.data(), out_a.size(), nullptr, 0, 12345},
        {"ignored", 7, out_b.data(), out_b.size(), meta_out, sizeof meta_out, 12345},
        {nullptr, 0, nullptr, 0, nullptr, 0, 12345},
    };
    ASSERT_EQ(daxkv_lease_read_batch(s(), leases, items, 3, 0), 3) << daxkv_errmsg();
    for (const daxkv_item &it : items)
        EXPECT_EQ(it.status, 0);
    EXPECT_EQ(items[0].len, 100u);
    EXPECT_EQ(0, std::memcmp(out_a.data(), a.data(), a.size()));
    EXPECT_EQ(out_a[100], 0xee); // nothing past the value
    EXPECT_EQ(items[1].len, 4096u);
    EXPECT_EQ(out_b, b);
    EXPECT_EQ(std::string(meta_out, items[1].meta_len), meta);
    EXPECT_EQ(items[2].len, 0u);
    struct daxkv_stats after = stats();
    EXPECT_EQ(after.bytes_read - before.bytes_read, 100u + 4096u);
    EXPECT_EQ(after.hits, before.hits); // each lease counted its hit

    // The metadata alone: data NULL, the value's length still reported.
    daxkv_item meta_only{nullptr, 0, nullptr, 0, meta_out, sizeof meta_out, 12345};
    std::memset(meta_out, 0, sizeof meta_out);
    ASSERT_EQ(daxkv_lease_read_batch(s(), &leases[1], &meta_only, 1, 0), 1);
    EXPECT_EQ(meta_only.status, 0);
    EXPECT_EQ(meta_only.len, 4096u);
    EXPECT_EQ(std::string(meta_out, meta_only.meta_len), meta);
    EXPECT_EQ(stats().bytes_read, after.bytes_read);

    // Buffers too small: -ENOBUFS, the sizes needed, nothing copied.
    std::vector<uint8_t> small(4095, 0xee);
    char tiny[4] = {'x', 'x', 'x', 'x'};
    daxkv_item short_value{nullptr, 0, small.data(), small.size(), nullptr, 0, 0};
    daxkv_item short_meta{nullptr, 0, out_b.data(), out_b.size(), tiny, sizeof tiny, 0};
    daxkv_item both[2] = {short_value, short_meta};
    daxkv_lease *twice[] = {lb.get(), lb.get()};
    ASSERT_EQ(daxkv_lease_read_batch(s(), twice, both, 2, 0), 0);
    for (const daxkv_item &it : both) {
        EXPECT_EQ(it.status, -ENOBUFS);
        EXPECT_EQ(it.len, 4096u);
    }
    EXPECT_EQ(both[1].meta_len, meta.size());
    EXPECT_EQ(small, std::vector<uint8_t>(4095, 0xee));
    EXPECT_EQ(std::string(tiny, 4), "xxxx");

    // No lease was ended by the reads: the slots are held until released.
    EXPECT_EQ(stats().leases_active, 3u);
    la.reset();
    lb.reset();
    le.reset();
    expect_nothing_held({"a", "b", "empty"}, "after the releases");
}

// Bad inputs to daxkv_lease_read_batch: a NULL store, NULL items or leases
// with n > 0, n above INT32_MAX, flags, a NULL lease, a lease of another
// store, a NULL buffer with a capacity; each -EINVAL with no item written.
// After shutdown: -ESHUTDOWN for every item.
TEST_F(Lifetime, LeaseReadBatchRefusesBadArguments) {
    open(StoreSpec{4096, 4, 16});
    ASSERT_EQ(put("a", pattern(1, 100)), 0);
    LeasePtr la = lease("a");
    StorePtr other;
    ASSERT_EQ(open_store(&other, dir_.file("other.arena"), StoreSpec{4096, 4, 16}), 0);
    ASSERT_EQ(daxkv_put(other.get(), "a", 1, "x", 1, 0), 0);
    daxkv_lease *foreign = nullptr;
    ASSERT_EQ(daxkv_lease_acquire(other.get(), "a", 1, &foreign), 0);
    LeasePtr foreign_lease(foreign);

    std::vector<uint8_t> out(4096);
    char meta[16];
    daxkv_lease *leases[] = {la.get()};
    daxkv_item item{nullptr, 0, out.data(), out.size(), nullptr, 0, 777};
    auto refused = [&](int rc, const char *says) {
        EXPECT_EQ(rc, -EINVAL);
        EXPECT_TRUE(contains_text(daxkv_errmsg(), says)) << daxkv_errmsg();
        EXPECT_EQ(item.status, 777); // no item written
    };
    EXPECT_EQ(daxkv_lease_read_batch(nullptr, leases, &item, 1, 0), -EINVAL);
    refused(daxkv_lease_read_batch(s(), leases, nullptr, 1, 0), "items is NULL");
    refused(daxkv_lease_read_batch(s(), nullptr, &item, 1, 0), "leases is NULL");
    refused(daxkv_lease_read_batch(s(), leases, &item, size_t{INT32_MAX} + 1, 0), "too large");
    refused(daxkv_lease_read_batch(s(), leases, &item, 1, DAXKV_PREFIX), "unknown flags");
    daxkv_lease *null_lease[] = {nullptr};
    refused(daxkv_lease_read_batch(s(), null_lease, &item, 1, 0), "lease 0 is NULL");
    daxkv_lease *foreign_leases[] = {foreign_lease.get()};
    refused(daxkv_lease_read_batch(s(), foreign_leases, &item, 1, 0), "another store");
    item.data = nullptr;
    refused(daxkv_lease_read_batch(s(), leases, &item, 1, 0), "data is NULL");
    item.data = out.data();
    item.meta = nullptr;
    item.meta_len = sizeof meta;
    refused(daxkv_lease_read_batch(s(), leases, &item, 1, 0), "meta is NULL");
    item.meta_len = 0;
    // n = 0 with NULL arrays is an empty batch.
    EXPECT_EQ(daxkv_lease_read_batch(s(), nullptr, nullptr, 0, 0), 0);

    ASSERT_EQ(daxkv_shutdown(s()), 0);
    EXPECT_EQ(daxkv_lease_read_batch(s(), leases, &item, 1, 0), -ESHUTDOWN);
    EXPECT_EQ(item.status, -ESHUTDOWN);
}

// verify=read: a leased entry whose bytes no longer match their checksum
// (changed after the lease checked them) is -EIO, dropped and quarantined;
// the lease is still released as any other.
TEST_F(Lifetime, LeaseReadBatchChecksTheCopyWithVerifyRead) {
    open(StoreSpec{4096, 4, 16}.set("verify", "read"));
    ASSERT_EQ(put("a", pattern(1, 4096)), 0);
    ASSERT_EQ(put("b", pattern(2, 4096)), 0);
    LeasePtr la = lease("a"), lb = lease("b");
    const_cast<uint8_t *>(static_cast<const uint8_t *>(daxkv_lease_data(la.get())))[17] ^= 1;
    // a twice in one batch, and once more after: one value dropped once,
    // counted once (it was counted at every read).
    std::vector<uint8_t> out_a(4096), out_a2(4096), out_b(4096);
    daxkv_lease *leases[] = {la.get(), la.get(), lb.get()};
    daxkv_item items[3] = {{nullptr, 0, out_a.data(), out_a.size(), nullptr, 0, 0},
                           {nullptr, 0, out_a2.data(), out_a2.size(), nullptr, 0, 0},
                           {nullptr, 0, out_b.data(), out_b.size(), nullptr, 0, 0}};
    ASSERT_EQ(daxkv_lease_read_batch(s(), leases, items, 3, 0), 1);
    EXPECT_EQ(items[0].status, -EIO);
    EXPECT_EQ(items[1].status, -EIO);
    EXPECT_EQ(items[2].status, 0);
    EXPECT_EQ(out_b, pattern(2, 4096));
    ASSERT_EQ(daxkv_lease_read_batch(s(), leases, items, 1, 0), 0);
    EXPECT_EQ(items[0].status, -EIO);
    EXPECT_EQ(contains("a"), 0);
    EXPECT_EQ(contains("b"), 1);
    struct daxkv_stats st = stats();
    EXPECT_EQ(st.verify_failures, 1u);
    EXPECT_EQ(st.entries, 1u);
    la.reset();
    lb.reset();
    st = stats();
    EXPECT_EQ(st.leases_active, 0u);
    EXPECT_EQ(st.slots_free, 2u); // a's slot quarantined, b's in use
}

// A read copying out of an entry while it is removed: the slot is not
// reused until the copy is done, and the reader gets the whole old value.
TEST_F(Lifetime, RemoveDuringAnInFlightReadDefersReclaim) {
    open(StoreSpec{1 << 20, 1}.set("eviction", "lru"));
    std::vector<uint8_t> a = pattern(5, 1 << 20);
    ASSERT_EQ(put("a", a), 0);
    FaultGate dst(1 << 20, {});
    REQUIRE_GATE(dst);
    int rc_get = 1;
    size_t got = 0;
    std::thread reader([&] { rc_get = daxkv_get(s(), "a", 1, dst.data(), 1 << 20, &got); });
    ASSERT_TRUE(dst.wait_for_fault(5000ms));
    EXPECT_EQ(remove("a"), 0);
    EXPECT_EQ(contains("a"), 0);
    EXPECT_EQ(stats().slots_pending_free, 1u);
    EXPECT_EQ(put("b", pattern(6, 100)), -ENOSPC);
    dst.open();
    reader.join();
    EXPECT_EQ(rc_get, 0);
    EXPECT_EQ(got, size_t(1) << 20);
    EXPECT_EQ(0, std::memcmp(dst.data(), a.data(), a.size()));
    EXPECT_EQ(stats().slots_pending_free, 0u);
    ASSERT_EQ(put("b", pattern(6, 100)), 0);
}

// ---------------------------------------------------------------------------
// Reservations

TEST_F(Lifetime, ReservationIsInFlightUntilCommit) {
    open({4096, 4});
    daxkv_reservation *r = nullptr;
    ASSERT_EQ(daxkv_reserve(s(), "k", 1, 3000, &r), 0) << daxkv_errmsg();
    ASSERT_NE(r, nullptr);
    ASSERT_NE(daxkv_reservation_data(r), nullptr);
    EXPECT_EQ(daxkv_reservation_size(r), 3000u);
    EXPECT_EQ(contains("k"), 0);
    std::vector<uint8_t> out;
    EXPECT_EQ(get("k", &out), -ENOENT);
    EXPECT_EQ(put("k", pattern(9, 100)), DAXKV_EXISTED);
    EXPECT_EQ(put("k", pattern(9, 100), DAXKV_REPLACE), DAXKV_EXISTED);
    daxkv_reservation *r2 = reinterpret_cast<daxkv_reservation *>(0x1);
    EXPECT_EQ(daxkv_reserve(s(), "k", 1, 10, &r2), DAXKV_EXISTED);
    EXPECT_EQ(r2, nullptr);
    EXPECT_EQ(remove("k"), -EBUSY);
    EXPECT_EQ(pin("k"), -ENOENT);
    struct daxkv_stats st = stats();
    EXPECT_EQ(st.slots_inflight, 1u);
    EXPECT_EQ(st.entries, 0u);

    std::vector<uint8_t> v = pattern(7, 3000);
    std::memcpy(daxkv_reservation_data(r), v.data(), v.size());
    ASSERT_EQ(daxkv_commit(r), 0) << daxkv_errmsg();
    EXPECT_EQ(contains("k"), 1);
    EXPECT_EQ(value("k"), v); // nothing of the refused put got in
    st = stats();
    EXPECT_EQ(st.slots_inflight, 0u);
    EXPECT_EQ(st.entries, 1u);
    EXPECT_EQ(st.puts, 1u);
    EXPECT_EQ(st.puts_existed, 3u);
}

TEST_F(Lifetime, AbortReturnsTheSlot) {
    open(StoreSpec{4096, 1}.set("eviction", "lru"));
    ReservationPtr r;
    {
        daxkv_reservation *raw = nullptr;
        ASSERT_EQ(daxkv_reserve(s(), "a", 1, 100, &raw), 0);
        r.reset(raw);
    }
    EXPECT_EQ(put("b", pattern(1, 100)), -ENOSPC); // in flight is not evictable
    EXPECT_EQ(stats().slots_free, 0u);
    r.reset(); // daxkv_abort
    struct daxkv_stats st = stats();
    EXPECT_EQ(st.slots_free, 1u);
    EXPECT_EQ(st.slots_inflight, 0u);
    EXPECT_EQ(contains("a"), 0);
    ASSERT_EQ(put("b", pattern(1, 100)), 0);
    // The aborted key is free to be written again.
    ASSERT_EQ(remove("b"), 0);
    ASSERT_EQ(put("a", pattern(2, 50)), 0);
    EXPECT_EQ(value("a"), pattern(2, 50));
}

TEST_F(Lifetime, ForcedRemoveCancelsAReservation) {
    open({4096, 2});
    daxkv_reservation *r = nullptr;
    ASSERT_EQ(daxkv_reserve(s(), "k", 1, 100, &r), 0);
    std::memset(daxkv_reservation_data(r), 'R', 100);
    EXPECT_EQ(remove("k"), -EBUSY);
    EXPECT_EQ(remove("k", DAXKV_FORCE), 0);
    EXPECT_EQ(contains("k"), 0);
    EXPECT_EQ(daxkv_commit(r), -ECANCELED);
    EXPECT_TRUE(contains_text(daxkv_errmsg(), "cancel")) << daxkv_errmsg();
    EXPECT_EQ(contains("k"), 0);
    std::vector<uint8_t> out;
    EXPECT_EQ(get("k", &out), -ENOENT);
    struct daxkv_stats st = stats();
    EXPECT_EQ(st.slots_free, 2u);
    EXPECT_EQ(st.slots_inflight, 0u);
    EXPECT_EQ(st.entries, 0u);
    EXPECT_EQ(st.puts_failed, 1u);
}

TEST_F(Lifetime, CancelledCommitDoesNotClobberANewerPut) {
    open({4096, 3});
    daxkv_reservation *r = nullptr;
    ASSERT_EQ(daxkv_reserve(s(), "k", 1, 100, &r), 0);
    std::memset(daxkv_reservation_data(r), 'R', 100);
    ASSERT_EQ(remove("k", DAXKV_FORCE), 0);
    std::vector<uint8_t> v = pattern(3, 200);
    ASSERT_EQ(put("k", v), 0); // a fresh write of the key
    EXPECT_EQ(daxkv_commit(r), -ECANCELED);
    EXPECT_EQ(value("k"), v);
    struct daxkv_stats st = stats();
    EXPECT_EQ(st.entries, 1u);
    EXPECT_EQ(st.slots_used, 1u);
    // An abort of a cancelled reservation is as harmless.
    ASSERT_EQ(daxkv_reserve(s(), "j", 1, 10, &r), 0);
    ASSERT_EQ(remove("j", DAXKV_FORCE), 0);
    daxkv_abort(r);
    EXPECT_EQ(stats().slots_used, 1u);
    EXPECT_EQ(value("k"), v);
}

TEST_F(Lifetime, ReservationMetaComesBackThroughGetBatch) {
    open(StoreSpec{4096, 2, 64});
    daxkv_reservation *r = nullptr;
    ASSERT_EQ(daxkv_reserve(s(), "k", 1, 500, &r), 0);
    std::vector<uint8_t> v = pattern(1, 500), meta = pattern(2, 64), fat(65, 1);
    std::memcpy(daxkv_reservation_data(r), v.data(), v.size());
    EXPECT_EQ(daxkv_reservation_set_meta(r, fat.data(), fat.size()), -E2BIG);
    EXPECT_TRUE(contains_text(daxkv_errmsg(), "meta_bytes")) << daxkv_errmsg();
    EXPECT_EQ(daxkv_reservation_set_meta(r, nullptr, 3), -EINVAL);
    EXPECT_EQ(daxkv_reservation_set_meta(nullptr, meta.data(), 3), -EINVAL);
    ASSERT_EQ(daxkv_reservation_set_meta(r, pattern(9, 10).data(), 10), 0);
    ASSERT_EQ(daxkv_reservation_set_meta(r, meta.data(), meta.size()), 0); // last one wins
    ASSERT_EQ(daxkv_commit(r), 0);
    std::vector<uint8_t> buf(4096, 0), mbuf(64, 0);
    daxkv_item it{"k", 1, buf.data(), buf.size(), mbuf.data(), mbuf.size(), 0};
    ASSERT_EQ(daxkv_get_batch(s(), &it, 1, 0), 1);
    EXPECT_EQ(it.len, 500u);
    EXPECT_EQ(it.meta_len, 64u);
    EXPECT_EQ(0, std::memcmp(buf.data(), v.data(), 500));
    EXPECT_EQ(mbuf, meta);
}

TEST_F(Lifetime, ReserveRejectsBadArguments) {
    open({4096, 2});
    daxkv_reservation *r = reinterpret_cast<daxkv_reservation *>(0x1);
    EXPECT_EQ(daxkv_reserve(s(), "k", 1, 4097, &r), -E2BIG);
    EXPECT_EQ(r, nullptr);
    EXPECT_EQ(daxkv_reserve(s(), "", 0, 10, &r), -EINVAL);
    EXPECT_EQ(daxkv_reserve(s(), nullptr, 1, 10, &r), -EINVAL);
    std::string k513(513, 'z');
    EXPECT_EQ(daxkv_reserve(s(), k513.data(), k513.size(), 10, &r), -EINVAL);
    EXPECT_EQ(r, nullptr);
    struct daxkv_stats st = stats();
    EXPECT_EQ(st.slots_free, 2u);
    EXPECT_EQ(st.slots_inflight, 0u);
    // A zero-length reservation commits an empty value.
    ASSERT_EQ(daxkv_reserve(s(), "empty", 5, 0, &r), 0);
    ASSERT_EQ(daxkv_commit(r), 0);
    size_t len = 7;
    EXPECT_EQ(daxkv_get(s(), "empty", 5, nullptr, 0, &len), 0);
    EXPECT_EQ(len, 0u);
}

// daxkv_reserve_meta is daxkv_reserve + daxkv_reservation_set_meta +
// daxkv_reservation_data. Bad inputs tried: NULL out, NULL store, empty and
// 513-byte keys, NULL key, a value larger than slot_bytes, metadata larger
// than meta_bytes, NULL metadata with a length, a key present or in flight;
// each leaves nothing reserved and *out and *data NULL.
TEST_F(Lifetime, ReserveMetaIsReserveAndSetMetaInOneCall) {
    open(StoreSpec{4096, 2, 64});
    std::vector<uint8_t> v = pattern(3, 700), meta = pattern(4, 64), fat(65, 1);
    daxkv_reservation *r = nullptr;
    void *data = nullptr;
    ASSERT_EQ(daxkv_reserve_meta(s(), "k", 1, v.size(), meta.data(), meta.size(), &data, &r), 0)
        << daxkv_errmsg();
    ASSERT_NE(r, nullptr);
    EXPECT_EQ(data, daxkv_reservation_data(r));
    EXPECT_EQ(daxkv_reservation_size(r), v.size());
    std::memcpy(data, v.data(), v.size());
    // In flight: a second reservation of the key is DAXKV_EXISTED.
    daxkv_reservation *r2 = reinterpret_cast<daxkv_reservation *>(0x1);
    void *d2 = reinterpret_cast<void *>(0x1);
    EXPECT_EQ(daxkv_reserve_meta(s(), "k", 1, 10, nullptr, 0, &d2, &r2), DAXKV_EXISTED);
    EXPECT_EQ(r2, nullptr);
    EXPECT_EQ(d2, nullptr);
    ASSERT_EQ(daxkv_commit(r), 0);
    std::vector<uint8_t> buf(4096, 0), mbuf(64, 0);
    daxkv_item it{"k", 1, buf.data(), buf.size(), mbuf.data(), mbuf.size(), 0};
    ASSERT_EQ(daxkv_get_batch(s(), &it, 1, 0), 1);
    EXPECT_EQ(it.len, v.size());
    EXPECT_EQ(0, std::memcmp(buf.data(), v.data(), v.size()));
    EXPECT_EQ(it.meta_len, meta.size());
    EXPECT_EQ(mbuf, meta);
    // Committed: DAXKV_EXISTED too.
    EXPECT_EQ(daxkv_reserve_meta(s(), "k", 1, 10, nullptr, 0, &d2, &r2), DAXKV_EXISTED);
    EXPECT_EQ(r2, nullptr);

    // Bad inputs: nothing reserved, a message that says what.
    const struct daxkv_stats before = stats();
    auto refused = [&](int rc, int want, const char *what) {
        EXPECT_EQ(rc, want) << what;
        EXPECT_EQ(r2, nullptr) << what;
        EXPECT_EQ(d2, nullptr) << what;
        r2 = reinterpret_cast<daxkv_reservation *>(0x1);
        d2 = reinterpret_cast<void *>(0x1);
    };
    r2 = reinterpret_cast<daxkv_reservation *>(0x1);
    d2 = reinterpret_cast<void *>(0x1);
    refused(daxkv_reserve_meta(s(), "n", 1, 10, fat.data(), fat.size(), &d2, &r2), -E2BIG,
            "metadata over meta_bytes");
    EXPECT_TRUE(contains_text(daxkv_errmsg(), "meta_bytes")) << daxkv_errmsg();
    refused(daxkv_reserve_meta(s(), "n", 1, 10, nullptr, 3, &d2, &r2), -EINVAL,
            "NULL metadata with a length");
    EXPECT_TRUE(contains_text(daxkv_errmsg(), "meta is NULL")) << daxkv_errmsg();
    refused(daxkv_reserve_meta(s(), "n", 1, 4097, nullptr, 0, &d2, &r2), -E2BIG,
            "value over slot_bytes");
    refused(daxkv_reserve_meta(s(), "", 0, 10, nullptr, 0, &d2, &r2), -EINVAL, "empty key");
    refused(daxkv_reserve_meta(s(), nullptr, 1, 10, nullptr, 0, &d2, &r2), -EINVAL, "NULL key");
    std::string k513(513, 'z');
    refused(daxkv_reserve_meta(s(), k513.data(), k513.size(), 10, nullptr, 0, &d2, &r2),
            -EINVAL, "513-byte key");
    refused(daxkv_reserve_meta(nullptr, "n", 1, 10, nullptr, 0, &d2, &r2), -EINVAL,
            "NULL store");
    EXPECT_EQ(daxkv_reserve_meta(s(), "n", 1, 10, nullptr, 0, &d2, nullptr), -EINVAL);
    EXPECT_TRUE(contains_text(daxkv_errmsg(), "out is NULL")) << daxkv_errmsg();
    EXPECT_EQ(d2, nullptr);
    const struct daxkv_stats after = stats();
    EXPECT_EQ(after.slots_free, before.slots_free);
    EXPECT_EQ(after.slots_inflight, 0u);
    EXPECT_EQ(daxkv_contains(s(), "n", 1), 0);

    // data may be NULL; no metadata commits an entry without any.
    ASSERT_EQ(daxkv_reserve_meta(s(), "n", 1, 0, nullptr, 0, nullptr, &r), 0);
    ASSERT_EQ(daxkv_commit(r), 0);
    daxkv_item it2{"n", 1, buf.data(), buf.size(), mbuf.data(), mbuf.size(), 0};
    ASSERT_EQ(daxkv_get_batch(s(), &it2, 1, 0), 1);
    EXPECT_EQ(it2.len, 0u);
    EXPECT_EQ(it2.meta_len, 0u);
}

// ---------------------------------------------------------------------------
// Shutdown

TEST_F(Lifetime, EveryCallAfterShutdownIsEshutdown) {
    open({4096, 4});
    ASSERT_EQ(put("k", pattern(1, 10)), 0);
    ASSERT_EQ(daxkv_shutdown(s()), 0);
    ASSERT_EQ(daxkv_shutdown(s()), 0); // idempotent
    char buf[64];
    size_t len = 0;
    EXPECT_EQ(daxkv_put(s(), "n", 1, "v", 1, 0), -ESHUTDOWN);
    EXPECT_TRUE(contains_text(daxkv_errmsg(), "shut down")) << daxkv_errmsg();
    EXPECT_EQ(daxkv_get(s(), "k", 1, buf, sizeof buf, &len), -ESHUTDOWN);
    EXPECT_EQ(daxkv_contains(s(), "k", 1), -ESHUTDOWN);
    EXPECT_EQ(daxkv_remove(s(), "k", 1, 0), -ESHUTDOWN);
    EXPECT_EQ(daxkv_remove(s(), "k", 1, DAXKV_FORCE), -ESHUTDOWN);
    EXPECT_EQ(daxkv_pin(s(), "k", 1), -ESHUTDOWN);
    EXPECT_EQ(daxkv_unpin(s(), "k", 1), -ESHUTDOWN);
    daxkv_item it{"k", 1, buf, sizeof buf, nullptr, 0, 0};
    EXPECT_EQ(daxkv_put_batch(s(), &it, 1, 0), -ESHUTDOWN);
    EXPECT_EQ(daxkv_get_batch(s(), &it, 1, 0), -ESHUTDOWN);
    EXPECT_EQ(daxkv_get_batch(s(), &it, 1, DAXKV_PREFIX), -ESHUTDOWN);
    EXPECT_EQ(daxkv_contains_batch(s(), &it, 1, DAXKV_PIN), -ESHUTDOWN);
    EXPECT_EQ(daxkv_remove_batch(s(), &it, 1, 0), -ESHUTDOWN);
    EXPECT_EQ(daxkv_unpin_batch(s(), &it, 1, 0), -ESHUTDOWN);
    EXPECT_EQ(daxkv_put_batch(s(), nullptr, 0, 0), -ESHUTDOWN);
    daxkv_lease *l = reinterpret_cast<daxkv_lease *>(0x1);
    EXPECT_EQ(daxkv_lease_acquire(s(), "k", 1, &l), -ESHUTDOWN);
    EXPECT_EQ(l, nullptr);
    daxkv_reservation *r = reinterpret_cast<daxkv_reservation *>(0x1);
    EXPECT_EQ(daxkv_reserve(s(), "r", 1, 10, &r), -ESHUTDOWN);
    EXPECT_EQ(r, nullptr);
    r = reinterpret_cast<daxkv_reservation *>(0x1);
    void *data = reinterpret_cast<void *>(0x1);
    EXPECT_EQ(daxkv_reserve_meta(s(), "r", 1, 10, "m", 1, &data, &r), -ESHUTDOWN);
    EXPECT_EQ(r, nullptr);
    EXPECT_EQ(data, nullptr);
    // Observing the store stays possible, and says it is shut down.
    struct daxkv_stats st = stats();
    EXPECT_EQ(st.entries, 1u);
    std::string j(4096, '\0');
    ASSERT_EQ(daxkv_status_json(s(), &j[0], j.size(), nullptr), 0);
    EXPECT_TRUE(contains_text(j.c_str(), "\"state\":\"shutdown\"")) << j.c_str();
    // The entry was committed before the shutdown: it is on the device.
    store_.reset();
    open({4096, 4});
    EXPECT_EQ(value("k"), pattern(1, 10));
}

TEST_F(Lifetime, AForkedChildCannotUseAnInheritedStoreAndLettingGoOfItDoesNotHang) {
    // A child forked after the open has none of the store's threads and
    // shares its devices with the parent. daxkv_close there waited for the
    // submit dispatcher, which is not in the child, and hung; calls wrote to
    // the parent's arena behind its index. Now every call on what the child
    // inherited is -EPERM, and letting go of it (close, release, abort,
    // cursor close) returns at once, touching nothing of the parent's.
    open({4096, 8});
    const std::vector<uint8_t> v = pattern(3, 1000);
    ASSERT_EQ(put("k", v), 0);
    daxkv_lease *l = nullptr;
    ASSERT_EQ(daxkv_lease_acquire(s(), "k", 1, &l), 0);
    daxkv_reservation *r1 = nullptr, *r2 = nullptr;
    ASSERT_EQ(daxkv_reserve(s(), "r1", 2, 64, &r1), 0);
    ASSERT_EQ(daxkv_reserve(s(), "r2", 2, 64, &r2), 0);
    daxkv_cursor *c = nullptr;
    ASSERT_EQ(daxkv_cursor_open(s(), nullptr, &c), 0);
    // The dispatcher runs: a submitted batch started it.
    daxkv_item it{"k", 1, nullptr, 0, nullptr, 0, 0};
    ASSERT_EQ(daxkv_submit(s(), DAXKV_OP_CONTAINS, &it, 1, 0, 7), 0);
    daxkv_completion done{};
    for (int i = 0; i < 2000 && daxkv_poll(s(), &done, 1) == 0; ++i)
        std::this_thread::sleep_for(std::chrono::milliseconds(1));
    ASSERT_EQ(done.tag, 7u);
    const uint64_t before = file_hash(path_);
    daxkv_store *raw = store_.release();

    const std::string child = in_forked_child([&]() -> std::string {
        char buf[4096];
        size_t len = 0;
        auto expect_eperm = [](const char *what, int rc) -> std::string {
            if (rc != -EPERM)
                return std::string(what) + ": " + std::to_string(rc);
            if (!std::strstr(daxkv_errmsg(), "forked"))
                return std::string(what) + " message: " + daxkv_errmsg();
            return "";
        };
        std::string f;
        char one = 'v';
        daxkv_item put_it{"n", 1, &one, 1, nullptr, 0, 0};
        daxkv_item get_it{"k", 1, buf, sizeof buf, nullptr, 0, 0};
        daxkv_lease *l2 = nullptr;
        daxkv_reservation *r3 = nullptr;
        daxkv_slot_info si;
        si.struct_size = sizeof si;
        daxkv_key_info ki;
        ki.struct_size = sizeof ki;
        daxkv_cursor *c2 = nullptr;
        daxkv_completion cc;
        daxkv_lease_item li{};
        li.key = "k";
        li.key_len = 1;
        const std::pair<const char *, int> calls[] = {
            {"put", daxkv_put(raw, "n", 1, "v", 1, 0)},
            {"get", daxkv_get(raw, "k", 1, buf, sizeof buf, &len)},
            {"contains", daxkv_contains(raw, "k", 1)},
            {"remove", daxkv_remove(raw, "k", 1, DAXKV_FORCE)},
            {"pin", daxkv_pin(raw, "k", 1)},
            {"put_batch", daxkv_put_batch(raw, &put_it, 1, 0)},
            {"get_batch", daxkv_get_batch(raw, &get_it, 1, 0)},
            {"submit", daxkv_submit(raw, DAXKV_OP_GET, &get_it, 1, 0, 8)},
            {"lease_acquire", daxkv_lease_acquire(raw, "k", 1, &l2)},
            {"reserve", daxkv_reserve(raw, "r3", 2, 64, &r3)},
            {"shutdown", daxkv_shutdown(raw)},
            {"lease_slot", daxkv_lease_slot(l, &si)},
            {"cursor_next", daxkv_cursor_next(c, &ki)},
            {"commit", daxkv_commit(r1)},
            {"reservation_set_meta", daxkv_reservation_set_meta(r2, "m", 1)},
            {"reservation_slot", daxkv_reservation_slot(r2, &si)},
            {"cursor_open", daxkv_cursor_open(raw, nullptr, &c2)},
            {"unpin", daxkv_unpin(raw, "k", 1)},
            {"lease_batch", daxkv_lease_batch(raw, &li, 1, 0)},
            {"event_fd", daxkv_event_fd(raw)},
            {"poll", daxkv_poll(raw, &cc, 1)},
        };
        for (const auto &call : calls)
            if (!(f = expect_eperm(call.first, call.second)).empty())
                return f;
        if (l2 || r3 || c2 || li.lease)
            return "a lease, reservation or cursor was handed out";
        // The lease's bytes are the parent's mapping: still readable.
        if (std::memcmp(daxkv_lease_data(l), v.data(), v.size()) != 0)
            return "lease bytes";
        daxkv_abort(r2);
        daxkv_lease_release(l);
        daxkv_cursor_close(c);
        daxkv_close(raw);
        // The child's own copies run on a copy engine of its own.
        std::vector<char> a(8 << 20, 'a'), b(8 << 20, 'b');
        void *dst = b.data();
        const void *src = a.data();
        const size_t n = a.size();
        if (int rc = daxkv_memcpy_batch(&dst, &src, &n, 1, 0))
            return "memcpy_batch: " + std::to_string(rc);
        if (a != b)
            return "memcpy_batch copied wrong bytes";
        return "";
    });
    EXPECT_EQ(child, "");
    store_.reset(raw);
    // Nothing the child did reached the parent's store or its arena.
    EXPECT_EQ(file_hash(path_), before);
    EXPECT_EQ(value("k"), v);
    EXPECT_EQ(contains("n"), 0);
    EXPECT_EQ(std::memcmp(daxkv_lease_data(l), v.data(), v.size()), 0);
    EXPECT_EQ(daxkv_commit(r1), 0) << daxkv_errmsg();
    daxkv_abort(r2);
    daxkv_lease_release(l);
    daxkv_key_info ki;
    ki.struct_size = sizeof ki;
    EXPECT_EQ(daxkv_cursor_next(c, &ki), 1) << daxkv_errmsg();
    daxkv_cursor_close(c);
    // The parent still holds its arena's lock.
    StorePtr second;
    EXPECT_EQ(open_store(&second, path_, {4096, 8}), -EBUSY);
}

TEST_F(Lifetime, LeaseOutlivesShutdownAndClose) {
    open({4096, 2});
    std::vector<uint8_t> v = pattern(4, 4096);
    ASSERT_EQ(put("k", v), 0);
    daxkv_lease *l = nullptr;
    ASSERT_EQ(daxkv_lease_acquire(s(), "k", 1, &l), 0);
    ASSERT_EQ(daxkv_shutdown(s()), 0);
    EXPECT_EQ(0, std::memcmp(daxkv_lease_data(l), v.data(), v.size()));
    store_.reset(); // daxkv_close
    // The mapping is still there for the lease, and the bytes with it.
    EXPECT_GE(count_maps(real_path_), 1);
    EXPECT_EQ(daxkv_lease_size(l), 4096u);
    EXPECT_EQ(0, std::memcmp(daxkv_lease_data(l), v.data(), v.size()));
    daxkv_lease_release(l); // the last reference: the store goes now
    EXPECT_EQ(count_maps(real_path_), 0);
    EXPECT_EQ(count_fds_to(real_path_), 0);
    // And the arena is free for the next opener.
    open({4096, 2});
    EXPECT_EQ(value("k"), v);
}

// A forced remove of a key whose write has begun to store its commit word
// waits for that write and removes what it committed: it never returns 0
// while a commit word it did not cancel stands on the device. Before, it
// returned at once and the writer withdrew the word only later, so a
// process killed in between brought the removed key back at the next open
// (with the value of a write that said it was cancelled). Bad input: a
// forced remove racing a put (DAXKV_REPLACE) and a reservation's commit of
// the same key, the process then killed (a child's _exit, nothing closed).
TEST_F(Lifetime, AForcedRemoveWaitsForAWriteThatBeganItsCommitWord) {
    for (const bool reservation : {false, true}) {
        SCOPED_TRACE(reservation ? "reservation" : "put");
        const std::vector<uint8_t> v1 = pattern(1, 100), v2 = pattern(2, 100);
        open({4096, 4});
        ASSERT_EQ(put("K", v1), 0);
        store_.reset();
        const pid_t child = ::fork();
        if (child == 0) {
            open({4096, 4});
            std::mutex m;
            std::condition_variable cv;
            bool parked = false, go = false;
            s()->store->writes().set_commit_hook([&] {
                std::unique_lock<std::mutex> g(m);
                if (go)
                    return; // the remove's own writes, if any
                parked = true;
                cv.notify_all();
                cv.wait(g, [&] { return go; });
            });
            std::thread writer([&] {
                if (!reservation) {
                    daxkv_put(s(), "K", 1, v2.data(), v2.size(), DAXKV_REPLACE);
                    return;
                }
                daxkv_reservation *r = nullptr;
                if (daxkv_remove(s(), "K", 1, 0) != 0 || daxkv_reserve(s(), "K", 1, 100, &r) != 0)
                    ::_exit(4);
                std::memcpy(daxkv_reservation_data(r), v2.data(), v2.size());
                daxkv_commit(r);
            });
            {
                std::unique_lock<std::mutex> g(m);
                cv.wait(g, [&] { return parked; }); // its commit word is stored
            }
            std::atomic<bool> removed{false};
            std::thread remover([&] {
                if (daxkv_remove(s(), "K", 1, DAXKV_FORCE) == 0)
                    removed = true;
            });
            std::this_thread::sleep_for(std::chrono::milliseconds(100));
            if (removed)
                ::_exit(3); // acknowledged while the word stands: killed here
            {
                std::lock_guard<std::mutex> g(m);
                go = true;
                cv.notify_all();
            }
            writer.join();
            remover.join();
            ::_exit(removed ? 0 : 5); // killed after the remove, nothing closed
        }
        ASSERT_GT(child, 0);
        int status = 0;
        ASSERT_EQ(::waitpid(child, &status, 0), child);
        ASSERT_TRUE(WIFEXITED(status));
        EXPECT_EQ(WEXITSTATUS(status), 0) << "3: the remove returned while the write's commit "
                                             "word stood; 4, 5: the test's own steps failed";
        open({4096, 4});
        std::vector<uint8_t> out;
        EXPECT_EQ(get("K", &out), -ENOENT) << "the removed key came back";
        store_.reset(); // the next round reopens the same arena (a device in the guest rig)
    }
}

TEST_F(Lifetime, ReservationCommittedAfterShutdownIsRefusedAndFreed) {
    open({4096, 2});
    daxkv_reservation *r1 = nullptr, *r2 = nullptr;
    ASSERT_EQ(daxkv_reserve(s(), "r1", 2, 100, &r1), 0);
    ASSERT_EQ(daxkv_reserve(s(), "r2", 2, 100, &r2), 0);
    std::memset(daxkv_reservation_data(r1), 1, 100);
    ASSERT_EQ(daxkv_shutdown(s()), 0);
    EXPECT_EQ(daxkv_commit(r1), -ESHUTDOWN);
    struct daxkv_stats st = stats();
    EXPECT_EQ(st.slots_inflight, 1u);
    EXPECT_EQ(st.slots_free, 1u);
    EXPECT_EQ(st.entries, 0u);
    store_.reset();    // close with a reservation still out
    daxkv_abort(r2);   // after close: keeps the store alive until here
    EXPECT_EQ(count_maps(real_path_), 0);
    open({4096, 2});
    EXPECT_EQ(contains("r1"), 0);
    EXPECT_EQ(contains("r2"), 0);
    EXPECT_EQ(stats().slots_free, 2u);
}

// A put and a get blocked in their copies while another thread shuts the
// store down: new calls are refused at once, shutdown waits for the two,
// and both complete with their bytes.
TEST_F(Lifetime, ShutdownWaitsForCallsBlockedInCopies) {
    const size_t n = 1 << 20;
    open(StoreSpec{n, 4}.set("workers", "2"));
    std::vector<uint8_t> existing = pattern(10, n), fresh = pattern(11, n);
    ASSERT_EQ(put("existing", existing), 0);
    FaultGate src(n, fresh), dst(n, {});
    REQUIRE_GATE(src);
    REQUIRE_GATE(dst);

    int rc_put = 1, rc_get = 1, rc_shut = 1;
    size_t got = 0;
    std::atomic<bool> shut_returned{false};
    std::thread writer([&] { rc_put = daxkv_put(s(), "fresh", 5, src.data(), n, 0); });
    ASSERT_TRUE(src.wait_for_fault(5000ms));
    std::thread reader([&] { rc_get = daxkv_get(s(), "existing", 8, dst.data(), n, &got); });
    ASSERT_TRUE(dst.wait_for_fault(5000ms));
    std::thread closer([&] {
        rc_shut = daxkv_shutdown(s());
        shut_returned = true;
    });
    // Shutdown has begun once new calls are refused.
    ASSERT_TRUE(eventually([&] { return contains("existing") == -ESHUTDOWN; }));
    EXPECT_EQ(put("later", pattern(12, 10)), -ESHUTDOWN);
    std::vector<uint8_t> out;
    EXPECT_EQ(get("existing", &out), -ESHUTDOWN);
    std::this_thread::sleep_for(50ms);
    EXPECT_FALSE(shut_returned.load()) << "shutdown returned under two calls in flight";

    src.open();
    dst.open();
    writer.join();
    reader.join();
    closer.join();
    EXPECT_EQ(rc_put, 0) << daxkv_errmsg();
    EXPECT_EQ(rc_get, 0);
    EXPECT_EQ(rc_shut, 0);
    EXPECT_EQ(got, n);
    EXPECT_EQ(0, std::memcmp(dst.data(), existing.data(), n));
    EXPECT_EQ(stats().entries, 2u);
    // The put that was in flight completed for real: it is on the device.
    store_.reset();
    open(StoreSpec{n, 4});
    EXPECT_EQ(value("fresh"), fresh);
    EXPECT_EQ(value("existing"), existing);
}

// The calls that still work after shutdown (statistics, status, the
// completions) are calls in flight like any other: a shutdown begun while
// one is inside waits for it, so that a daxkv_close after the shutdown
// cannot free the store under it. Each is held inside (the gate's observer
// hook) while another thread shuts the store down.
TEST_F(Lifetime, ShutdownWaitsForObservingCallsInside) {
    const std::vector<std::pair<const char *, std::function<int(daxkv_store *)>>> calls = {
        {"daxkv_stats",
         [](daxkv_store *st) {
             struct daxkv_stats out{};
             out.struct_size = sizeof out;
             return daxkv_stats(st, &out);
         }},
        {"daxkv_status_json",
         [](daxkv_store *st) {
             char buf[16];
             size_t needed = 0;
             return daxkv_status_json(st, buf, sizeof buf, &needed); // -ENOBUFS is fine
         }},
        {"daxkv_stats_prometheus",
         [](daxkv_store *st) {
             char buf[16];
             size_t needed = 0;
             return daxkv_stats_prometheus(st, buf, sizeof buf, &needed);
         }},
        {"daxkv_pool_status_json",
         [](daxkv_store *st) {
             char buf[16];
             size_t needed = 0;
             return daxkv_pool_status_json(st, buf, sizeof buf, &needed);
         }},
        {"daxkv_event_fd", [](daxkv_store *st) { return daxkv_event_fd(st); }},
        {"daxkv_poll",
         [](daxkv_store *st) {
             daxkv_completion out[4];
             return daxkv_poll(st, out, 4);
         }},
    };
    for (const auto &[name, call] : calls) {
        SCOPED_TRACE(name);
        open({4096, 4});
        daxkv::CallGate &gate = s()->store->core().gate;
        std::atomic<bool> inside{false}, release{false}, shut_returned{false};
        gate.set_observer_hook([&] {
            inside = true;
            while (!release)
                std::this_thread::sleep_for(1ms);
        });
        int rc = INT32_MIN, rc_shut = 1;
        std::thread observer([&, call = call] { rc = call(s()); });
        ASSERT_TRUE(eventually([&] { return inside.load(); })) << name << " never entered the gate";
        std::thread closer([&] {
            rc_shut = daxkv_shutdown(s());
            shut_returned = true;
        });
        // Shutdown has begun once new calls are refused.
        EXPECT_TRUE(eventually([&] { return contains("k") == -ESHUTDOWN; }));
        std::this_thread::sleep_for(50ms);
        EXPECT_FALSE(shut_returned.load()) << "shutdown returned with " << name << " inside";
        release = true;
        observer.join();
        closer.join();
        gate.set_observer_hook(nullptr);
        EXPECT_TRUE(shut_returned.load());
        EXPECT_EQ(rc_shut, 0);
        EXPECT_TRUE(rc >= 0 || rc == -ENOBUFS) << rc << " " << daxkv_errmsg();
        // After the shutdown the same call runs, uncounted, and returns.
        const int after = call(s());
        EXPECT_TRUE(after >= 0 || after == -ENOBUFS) << after;
        store_.reset();
    }
}

// Threads hammering large puts and gets while the store is shut down: every
// call either completes normally or gets -ESHUTDOWN, refusals never go back
// to successes, and whatever was read is exact.
TEST_F(Lifetime, ShutdownUnderLoad) {
    const size_t n = 256 * 1024;
    open(StoreSpec{n, 8}.set("workers", "2"));
    for (uint32_t k = 0; k < 4; ++k)
        ASSERT_EQ(put(key_of(k), versioned_value(k, 0, n)), 0);
    std::atomic<bool> failed{false};
    std::atomic<int> calls{0};
    std::vector<std::thread> ts;
    std::mutex m;
    std::vector<std::string> errors;
    for (uint32_t t = 0; t < 4; ++t) {
        ts.emplace_back([&, t] {
            std::vector<uint8_t> buf(n);
            for (uint64_t i = 1;; ++i) {
                uint32_t k = static_cast<uint32_t>((t + i) % 4);
                std::string key = key_of(k);
                int rc;
                if (i % 2) {
                    auto v = versioned_value(k, (uint64_t(t) << 32) | i, n - (i % 7) * 64);
                    rc = daxkv_put(s(), key.data(), key.size(), v.data(), v.size(),
                                   DAXKV_REPLACE);
                } else {
                    size_t len = 0;
                    rc = daxkv_get(s(), key.data(), key.size(), buf.data(), buf.size(), &len);
                    if (rc == 0) {
                        std::string why = check_versioned(k, buf.data(), len);
                        if (!why.empty()) {
                            std::lock_guard<std::mutex> g(m);
                            errors.push_back(why);
                        }
                    }
                }
                calls++;
                if (rc == -ESHUTDOWN) {
                    break;
                } else if (rc != 0 && rc != -ENOENT && rc != -ENOSPC &&
                           rc != DAXKV_EXISTED) { // EXISTED: another put of it in flight
                    std::lock_guard<std::mutex> g(m);
                    errors.push_back("unexpected rc " + std::to_string(rc));
                    failed = true;
                    break;
                }
            }
            // Once refused, always refused.
            size_t len;
            if (daxkv_get(s(), "key-0", 5, buf.data(), buf.size(), &len) != -ESHUTDOWN)
                failed = true;
        });
    }
    EXPECT_TRUE(eventually([&] { return calls.load() > 40; }));
    EXPECT_EQ(daxkv_shutdown(s()), 0); // also ends the threads if the above failed
    EXPECT_EQ(daxkv_contains(s(), "key-0", 5), -ESHUTDOWN);
    for (auto &th : ts)
        th.join();
    EXPECT_FALSE(failed.load());
    for (const auto &e : errors)
        ADD_FAILURE() << e;
    struct daxkv_stats st = stats();
    EXPECT_EQ(st.slots_inflight, 0u);
    EXPECT_EQ(st.leases_active, 0u);
    EXPECT_EQ(st.entries, 4u);
}

// ---------------------------------------------------------------------------
// Concurrency

namespace {

struct Hammer {
    daxkv_store *s;
    uint32_t keys;
    size_t max_len;
    std::mutex m;
    std::vector<std::string> errors;
    std::atomic<uint64_t> gets_ok{0}, puts_ok{0}, leases_ok{0}, removes_ok{0};

    void error(const std::string &e) {
        std::lock_guard<std::mutex> g(m);
        if (errors.size() < 20)
            errors.push_back(e);
    }

    void run(uint32_t tid, int ops) {
        std::mt19937_64 rng(tid * 7919 + 1);
        std::vector<uint8_t> buf(max_len);
        uint64_t version = 0;
        for (int i = 0; i < ops; ++i) {
            uint32_t k = static_cast<uint32_t>(rng() % keys);
            std::string key = key_of(k);
            int op = static_cast<int>(rng() % 100);
            int rc;
            if (op < 30) {
                size_t len = sizeof(ValueHeader) + rng() % (max_len - sizeof(ValueHeader) + 1);
                auto v = versioned_value(k, (uint64_t(tid) << 40) | ++version, len);
                unsigned flags = (rng() % 3 == 0) ? DAXKV_REPLACE : 0;
                rc = daxkv_put(s, key.data(), key.size(), v.data(), v.size(), flags);
                // -ECANCELED: a forced remove of the key withdrew this write.
                if (rc == 0)
                    puts_ok++;
                else if (rc != DAXKV_EXISTED && rc != -ENOSPC && rc != -ECANCELED)
                    error("put rc " + std::to_string(rc) + ": " + daxkv_errmsg());
            } else if (op < 60) {
                size_t len = 0;
                rc = daxkv_get(s, key.data(), key.size(), buf.data(), buf.size(), &len);
                if (rc == 0) {
                    gets_ok++;
                    std::string why = check_versioned(k, buf.data(), len);
                    if (!why.empty())
                        error("get " + key + ": " + why);
                } else if (rc != -ENOENT) {
                    error("get rc " + std::to_string(rc) + ": " + daxkv_errmsg());
                }
            } else if (op < 72) {
                daxkv_lease *l = nullptr;
                rc = daxkv_lease_acquire(s, key.data(), key.size(), &l);
                if (rc == 0) {
                    leases_ok++;
                    std::string why = check_versioned(k, daxkv_lease_data(l), daxkv_lease_size(l));
                    std::this_thread::yield();
                    if (why.empty()) // still intact after others had a go
                        why = check_versioned(k, daxkv_lease_data(l), daxkv_lease_size(l));
                    if (!why.empty())
                        error("lease " + key + ": " + why);
                    daxkv_lease_release(l);
                } else if (rc != -ENOENT) {
                    error("lease rc " + std::to_string(rc));
                }
            } else if (op < 84) {
                unsigned flags = (rng() % 4 == 0) ? DAXKV_FORCE : 0;
                rc = daxkv_remove(s, key.data(), key.size(), flags);
                if (rc == 0)
                    removes_ok++;
                else if (rc != -ENOENT && rc != -EBUSY)
                    error("remove rc " + std::to_string(rc));
            } else if (op < 90) {
                rc = daxkv_contains(s, key.data(), key.size());
                if (rc != 0 && rc != 1)
                    error("contains rc " + std::to_string(rc));
            } else if (op < 95) {
                rc = daxkv_pin(s, key.data(), key.size());
                if (rc == 0) {
                    std::this_thread::yield();
                    rc = daxkv_unpin(s, key.data(), key.size());
                    // A forced remove by another thread may have dropped it.
                    if (rc != 0 && rc != -ENOENT)
                        error("unpin rc " + std::to_string(rc));
                } else if (rc != -ENOENT) {
                    error("pin rc " + std::to_string(rc));
                }
            } else {
                // A small get_batch over neighbouring keys.
                std::vector<std::string> ks;
                std::vector<std::vector<uint8_t>> bufs(3, std::vector<uint8_t>(max_len));
                std::vector<daxkv_item> items(3);
                for (uint32_t j = 0; j < 3; ++j)
                    ks.push_back(key_of((k + j) % keys));
                for (uint32_t j = 0; j < 3; ++j)
                    items[j] = daxkv_item{ks[j].data(), ks[j].size(), bufs[j].data(), max_len,
                                          nullptr, 0, 0};
                rc = daxkv_get_batch(s, items.data(), 3, 0);
                if (rc < 0 || rc > 3)
                    error("get_batch rc " + std::to_string(rc));
                for (uint32_t j = 0; j < 3; ++j) {
                    if (items[j].status == 0) {
                        std::string why =
                            check_versioned((k + j) % keys, bufs[j].data(), items[j].len);
                        if (!why.empty())
                            error("get_batch " + ks[j] + ": " + why);
                    } else if (items[j].status != -ENOENT) {
                        error("get_batch status " + std::to_string(items[j].status));
                    }
                }
            }
        }
    }
};

} // namespace

TEST_F(Lifetime, EightThreadsOnOverlappingKeysSeeOnlyWholeValues) {
    const uint32_t keys = 24;
    open(StoreSpec{16 * 1024, 16}.set("eviction", "lru").set("verify", "read"));
    Hammer h{s(), keys, 16 * 1024, {}, {}, {}, {}, {}, {}};
    std::vector<std::thread> ts;
    for (uint32_t t = 0; t < 8; ++t)
        ts.emplace_back([&h, t] { h.run(t, 2500); });
    for (auto &th : ts)
        th.join();
    for (const auto &e : h.errors)
        ADD_FAILURE() << e;
    EXPECT_GT(h.gets_ok.load(), 100u);
    EXPECT_GT(h.puts_ok.load(), 100u);
    EXPECT_GT(h.leases_ok.load(), 50u);
    EXPECT_GT(h.removes_ok.load(), 50u);

    // Quiescent: the books balance and every stored value is whole.
    struct daxkv_stats st = stats();
    EXPECT_EQ(st.verify_failures, 0u);
    EXPECT_EQ(st.slots_inflight, 0u);
    EXPECT_EQ(st.slots_pending_free, 0u);
    EXPECT_EQ(st.leases_active, 0u);
    EXPECT_EQ(st.entries_pinned, 0u);
    EXPECT_EQ(st.slots_used, st.entries);
    EXPECT_EQ(st.slots_used + st.slots_free, st.slots_total);
    uint64_t present = 0;
    std::vector<uint8_t> buf(16 * 1024);
    std::vector<std::vector<uint8_t>> snapshot(keys);
    for (uint32_t k = 0; k < keys; ++k) {
        std::string key = key_of(k);
        int c = contains(key);
        ASSERT_GE(c, 0);
        if (c == 1) {
            ++present;
            size_t len = 0;
            ASSERT_EQ(daxkv_get(s(), key.data(), key.size(), buf.data(), buf.size(), &len), 0);
            EXPECT_EQ(check_versioned(k, buf.data(), len), "");
            snapshot[k].assign(buf.begin(), buf.begin() + long(len));
        }
    }
    EXPECT_EQ(present, st.entries);
    // And the same entries come back after a restart.
    store_.reset();
    open(StoreSpec{16 * 1024, 16}.set("verify", "read"));
    st = stats();
    EXPECT_EQ(st.recovered_entries, present);
    EXPECT_EQ(st.recovery_dropped_corrupt + st.recovery_dropped_torn, 0u);
    for (uint32_t k = 0; k < keys; ++k) {
        std::vector<uint8_t> out;
        int rc = get(key_of(k), &out);
        if (snapshot[k].empty())
            EXPECT_EQ(rc, -ENOENT) << k;
        else
            EXPECT_EQ(out, snapshot[k]) << k;
    }
}

TEST_F(Lifetime, ConcurrentReservationsAndForcedRemoves) {
    open(StoreSpec{4096, 8}.set("eviction", "lru"));
    std::atomic<int> committed{0}, failed_puts{0};
    std::atomic<bool> bad{false};
    std::vector<std::thread> ts;
    for (uint32_t t = 0; t < 4; ++t) {
        ts.emplace_back([&, t] {
            std::mt19937 rng(t + 11);
            for (int i = 0; i < 400; ++i) {
                uint32_t k = rng() % 6;
                std::string key = key_of(k);
                if (t % 2 == 0) {
                    daxkv_reservation *r = nullptr;
                    int rc = daxkv_reserve(s(), key.data(), key.size(), 1000, &r);
                    if (rc == DAXKV_EXISTED)
                        continue;
                    if (rc == -ENOSPC || rc == -ECANCELED) { // cancelled while reserving
                        failed_puts++;
                        continue;
                    }
                    if (rc != 0) {
                        bad = true;
                        continue;
                    }
                    auto v = versioned_value(k, (uint64_t(t) << 32) | uint64_t(i), 1000);
                    std::memcpy(daxkv_reservation_data(r), v.data(), v.size());
                    rc = daxkv_commit(r);
                    if (rc == 0)
                        committed++;
                    else if (rc == -ECANCELED)
                        failed_puts++;
                    else
                        bad = true;
                } else {
                    int rc = daxkv_remove(s(), key.data(), key.size(), DAXKV_FORCE);
                    if (rc != 0 && rc != -ENOENT)
                        bad = true;
                    std::vector<uint8_t> buf(4096);
                    size_t len = 0;
                    rc = daxkv_get(s(), key.data(), key.size(), buf.data(), buf.size(), &len);
                    if (rc == 0 && !check_versioned(k, buf.data(), len).empty())
                        bad = true;
                    else if (rc != 0 && rc != -ENOENT)
                        bad = true;
                }
            }
        });
    }
    for (auto &th : ts)
        th.join();
    EXPECT_FALSE(bad.load());
    EXPECT_GT(committed.load(), 0);
    struct daxkv_stats st = stats();
    EXPECT_EQ(st.slots_inflight, 0u);
    EXPECT_EQ(st.slots_used, st.entries);
    EXPECT_EQ(st.puts_failed, uint64_t(failed_puts.load()));
    EXPECT_EQ(st.puts, uint64_t(committed.load()));
}

// The gate that shutdown closes is destroyed with the store as soon as
// wait_idle() returns. The last call to leave must not touch the gate after
// the waiter can see it gone: here every round destroys the gate the moment
// wait_idle() returns while that call's Call is being destroyed on another
// thread (ASan and TSan report the use after free this once was: leave()
// read the closed flag and locked the mutex after its decrement).
TEST(CallGate, DestroyedByItsWaiterAsTheLastCallLeaves) {
    for (int round = 0; round < 2000; ++round) {
        auto gate = std::make_unique<daxkv::CallGate>();
        std::atomic<bool> inside{false}, go{false};
        std::thread caller([&] {
            daxkv::CallGate::Call call(*gate);
            inside = true;
            while (!go.load())
                std::this_thread::yield();
        }); // ~Call: the last one out of a closed gate
        while (!inside.load())
            std::this_thread::yield();
        gate->close();
        EXPECT_EQ(gate->in_flight(), 1);
        go = true;
        gate->wait_idle();
        gate.reset();
        caller.join();
    }
}

TEST(CallGate, CallsAfterCloseAreRefusedAndAnEmptyGateIsIdleAtOnce) {
    daxkv::CallGate gate;
    gate.close();
    gate.wait_idle(); // nothing inside: returns at once
    try {
        daxkv::CallGate::Call call(gate);
        ADD_FAILURE() << "a call entered a closed gate";
    } catch (const daxkv::Error &e) {
        EXPECT_EQ(e.code(), -ESHUTDOWN);
    }
    EXPECT_EQ(gate.in_flight(), 0);
    EXPECT_TRUE(gate.closed());
    gate.close(); // twice: still closed, still idle
    gate.wait_idle();
}
