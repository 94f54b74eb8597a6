// Copies outside the plain get and put paths: a migration and the GPU
// transfers' staged paths read and write the arena too, and must treat a
// copy that fails as get and put do: a source that faults (SIGBUS on a
// truncated file, sigbus=handle) drops that entry and quarantines its slot,
// any other failed copy fails its item (or, for a migration, the whole
// all-or-nothing move), and no byte that was not copied is ever committed.
//
// Bad inputs tried here: an arena file cut below its payloads under a
// running store, then migrated away and read by get_batch_cuda; copies
// failed by the engine's fault injector during a migration and during the
// staged GPU get and put. And, whatever the path, every copy that reads an
// arena, and every copy that writes one, runs under the SIGBUS guard with
// sigbus=handle (and none without): the copies are built in one place
// (lib/store/copies.hpp), so no path can drift from the others.
#include <dlfcn.h>

#include <atomic>

#include "capi/handles.hpp"
#include "engine/copy_engine.hpp"
#include "engine/fault.hpp"
#include "fakecuda.h"
#include "common.hpp"

using namespace adv;

namespace {

// Fails every chunk of the ops that read from or write to [lo, hi).
class FailRange : public daxkv::engine::FaultHook {
public:
    FailRange(const char *lo, const char *hi) : lo_(lo), hi_(hi) {}
    int before_chunk(const daxkv::engine::CopyOp &op, size_t, size_t) noexcept override {
        auto in = [&](const void *p) {
            auto c = static_cast<const char *>(p);
            return c >= lo_ && c < hi_;
        };
        return in(op.src) || in(op.dst) ? -EIO : 0;
    }

private:
    const char *lo_, *hi_;
};

// Records, of the ops that read from [lo, hi), how many ran and how many
// were guarded against SIGBUS there; and the same of those that write into
// it.
class SeeArena : public daxkv::engine::FaultHook {
public:
    SeeArena(const char *lo, const char *hi) : lo_(lo), hi_(hi) {}
    int before_chunk(const daxkv::engine::CopyOp &op, size_t offset, size_t) noexcept override {
        auto in = [&](const void *p) {
            auto c = static_cast<const char *>(p);
            return c >= lo_ && c < hi_;
        };
        if (offset == 0 && in(op.src)) {
            reads++;
            guarded += op.guard_source;
        }
        if (offset == 0 && in(op.dst)) {
            writes++;
            guarded_writes += op.guard_dest;
        }
        return 0;
    }
    // What the copies on one side (writing: into the range, else out of
    // it) showed since the last call, against at least min of them for
    // path, all guarded when want and none otherwise: "" when so. The
    // counts start again.
    std::string take(const char *path, bool writing, int min, bool want) {
        std::atomic<int> &seen = writing ? writes : reads;
        std::atomic<int> &safe = writing ? guarded_writes : guarded;
        const std::string what = writing ? " writes" : " reads";
        std::string out;
        if (seen < min)
            out += std::string(path) + ": " + std::to_string(seen) + what + " seen; ";
        if (safe != (want ? seen.load() : 0))
            out += std::string(path) + ": " + std::to_string(safe) + " of " +
                   std::to_string(seen) + what + " guarded; ";
        seen = 0;
        safe = 0;
        return out;
    }
    std::atomic<int> reads{0}, guarded{0};
    std::atomic<int> writes{0}, guarded_writes{0};

private:
    const char *lo_, *hi_;
};

struct HookScope {
    explicit HookScope(daxkv::engine::FaultHook *h) { daxkv::engine::testing::set_fault_hook(h); }
    ~HookScope() { daxkv::engine::testing::set_fault_hook(nullptr); }
};

class Copies : public ::testing::Test {
protected:
    StorePtr open_pool(uint32_t n, uint32_t slots,
                       std::vector<std::pair<std::string, std::string>> opts = {}) {
        paths_.clear();
        for (uint32_t i = 0; i < n; ++i)
            paths_.push_back(dir_.file("dev" + std::to_string(i)));
        return open_hotplug_pool(paths_, slots, std::move(opts));
    }
    TempDir dir_;
    std::vector<std::string> paths_;
};

TEST_F(Copies, MigratingFromATruncatedArenaDropsWhatFaultsAndMovesTheRest) {
    SKIP_SIGBUS_UNDER_TSAN();
    std::string msg = child_check([&]() -> std::string {
        // One device first (every key on it), then a second to move to.
        StorePtr s = open_pool(1, 8, {{"sigbus", "handle"}});
        for (uint32_t i = 0; i < 6; ++i)
            if (put_key(s.get(), i, 1))
                return "put failed";
        std::string d1 = dir_.file("dest");
        if (daxkv_device_add(s.get(), d1.c_str(), dev_bytes_for(8)))
            return std::string("add: ") + daxkv_errmsg();
        // Cut dev0 after slot 2's payload: slots 3..5 fault when read.
        daxkv::arena::Layout lay = daxkv::arena::compute_layout(dev_bytes_for(8), kSlot, 256);
        if (::truncate(paths_[0].c_str(), static_cast<off_t>(lay.data_offset + 3 * kSlot)))
            return "truncate";
        daxkv_hotplug_result r = result();
        int rc = daxkv_device_remove(s.get(), paths_[0].c_str(), DAXKV_MIGRATE, 0, &r);
        std::string out;
        if (rc != 0)
            out += "remove returned " + std::to_string(rc) + ": " + daxkv_errmsg() + "; ";
        if (r.moved_keys != 3)
            out += std::to_string(r.moved_keys) + " keys moved, expected 3; ";
        for (uint32_t i = 0; i < 6; ++i) {
            std::string bad = check_key(s.get(), i, i < 3 ? 1 : 0);
            if (!bad.empty())
                out += bad + "; ";
        }
        if (get_stats(s.get()).copy_faults != 3)
            out += "copy_faults is " + std::to_string(get_stats(s.get()).copy_faults) + "; ";
        return out;
    });
    EXPECT_EQ(msg, "");
}

TEST_F(Copies, AMigrationCopyThatFailsMovesNothing) {
    StorePtr s = open_pool(1, 8);
    for (uint32_t i = 0; i < 6; ++i)
        ASSERT_EQ(put_key(s.get(), i, 1), 0);
    std::string d1 = dir_.file("dest");
    ASSERT_EQ(daxkv_device_add(s.get(), d1.c_str(), dev_bytes_for(8)), 0) << daxkv_errmsg();
    // Fail the copies into dest (device row 1).
    const daxkv::arena::Arena &dest = s->store->core().pool.arena(1);
    FailRange hook(dest.mapping().base(), dest.mapping().base() + dest.mapping().size());
    daxkv_hotplug_result r = result();
    {
        HookScope scope(&hook);
        EXPECT_EQ(daxkv_device_remove(s.get(), paths_[0].c_str(), DAXKV_MIGRATE, 0, &r), -EIO);
        EXPECT_TRUE(contains_text(daxkv_errmsg(), "nothing was moved")) << daxkv_errmsg();
    }
    json st = pool_status(s.get());
    EXPECT_EQ(st["devices"][0]["state"], "active");
    EXPECT_EQ(st["devices"][0]["entry_count"], 6);
    EXPECT_EQ(st["devices"][1]["live_slot_count"], 0);
    for (uint32_t i = 0; i < 6; ++i)
        EXPECT_EQ(check_key(s.get(), i, 1), "");
    // The retry, without the failures, moves everything.
    ASSERT_EQ(daxkv_device_remove(s.get(), paths_[0].c_str(), DAXKV_MIGRATE, 0, &r), 0)
        << daxkv_errmsg();
    for (uint32_t i = 0; i < 6; ++i)
        EXPECT_EQ(check_key(s.get(), i, 1), "");
}

// The fake CUDA runtime, for the staged paths (no registration).
struct Fake {
    void *h = nullptr;
    int (*malloc)(void **, size_t) = nullptr;
    int (*free)(void *) = nullptr;
    bool open() {
        setenv("DAXKV_TEST_CUDART", FAKECUDART_PATH, 1);
        h = dlopen(FAKECUDART_PATH, RTLD_NOW | RTLD_LOCAL);
        if (!h)
            return false;
        malloc = reinterpret_cast<int (*)(void **, size_t)>(dlsym(h, "cudaMalloc"));
        free = reinterpret_cast<int (*)(void *)>(dlsym(h, "cudaFree"));
        return malloc && free;
    }
};

// Items for keys 0..n-1 of kSlot bytes of device memory each (freed with
// this), for a GPU get.
struct DeviceItems {
    DeviceItems(Fake &f, uint32_t n) : f_(f), dev(n), keys(n), items(n) {
        for (uint32_t i = 0; i < n; ++i) {
            f_.malloc(&dev[i], kSlot);
            keys[i] = key_of(i);
            items[i] = daxkv_item{keys[i].data(), keys[i].size(), dev[i], kSlot, nullptr, 0, 0};
        }
    }
    ~DeviceItems() {
        for (void *p : dev)
            f_.free(p);
    }
    Fake &f_;
    std::vector<void *> dev;
    std::vector<std::string> keys;
    std::vector<daxkv_item> items;
};

TEST_F(Copies, StagedGpuReadOfATruncatedArenaIsEioNotSigbus) {
    SKIP_SIGBUS_UNDER_TSAN();
    std::string msg = child_check([&]() -> std::string {
        Fake f;
        if (!f.open())
            return std::string("fake runtime: ") + dlerror();
        StorePtr s = open_pool(1, 8, {{"sigbus", "handle"}});
        for (uint32_t i = 0; i < 4; ++i)
            if (put_key(s.get(), i, 1))
                return "put failed";
        daxkv::arena::Layout lay = daxkv::arena::compute_layout(dev_bytes_for(8), kSlot, 256);
        if (::truncate(paths_[0].c_str(), static_cast<off_t>(lay.data_offset + 2 * kSlot)))
            return "truncate";
        std::vector<void *> dev(4);
        std::vector<std::string> keys(4);
        std::vector<daxkv_item> items(4);
        for (uint32_t i = 0; i < 4; ++i) {
            f.malloc(&dev[i], kSlot);
            keys[i] = key_of(i);
            items[i] = daxkv_item{keys[i].data(), keys[i].size(), dev[i], kSlot, nullptr, 0, 0};
        }
        int rc = daxkv_get_batch_cuda(s.get(), items.data(), 4, nullptr, 0);
        std::string out;
        if (rc != 2)
            out += "get_batch_cuda returned " + std::to_string(rc) + ", expected 2; ";
        for (uint32_t i = 0; i < 4; ++i) {
            int want = i < 2 ? 0 : -EIO;
            if (items[i].status != want)
                out += "item " + std::to_string(i) + ": " + std::to_string(items[i].status) + "; ";
        }
        if (get_stats(s.get()).copy_faults != 2)
            out += "copy_faults is " + std::to_string(get_stats(s.get()).copy_faults) + "; ";
        if (daxkv_contains(s.get(), keys[3].data(), keys[3].size()) != 0)
            out += "a faulted entry is still there; ";
        s.reset();
        for (void *p : dev)
            f.free(p);
        return out;
    });
    EXPECT_EQ(msg, "");
}

TEST_F(Copies, StagedGpuPutWhoseCopyFailsCommitsNothing) {
    std::string msg = child_check([&]() -> std::string {
        Fake f;
        if (!f.open())
            return std::string("fake runtime: ") + dlerror();
        StorePtr s = open_pool(1, 8);
        if (put_key(s.get(), 0, 1))
            return "put failed";
        void *src = nullptr;
        f.malloc(&src, kSlot);
        std::memset(src, 'g', kSlot);
        const daxkv::arena::Arena &a = s->store->core().pool.arena(0);
        // Fail every copy into the arena's payloads.
        FailRange hook(a.slot_data(0), a.mapping().base() + a.mapping().size());
        std::string k0 = key_of(0), k9 = key_of(9);
        daxkv_item items[2] = {{k0.data(), k0.size(), src, kSlot, nullptr, 0, 0},
                               {k9.data(), k9.size(), src, kSlot, nullptr, 0, 0}};
        int rc;
        {
            HookScope scope(&hook);
            rc = daxkv_put_batch_cuda(s.get(), items, 2, nullptr, DAXKV_REPLACE);
        }
        std::string out;
        if (rc != 0)
            out += "put_batch_cuda stored " + std::to_string(rc) + "; ";
        for (auto &it : items)
            if (it.status != -EIO)
                out += "item status " + std::to_string(it.status) + ", expected -EIO; ";
        std::string bad = check_key(s.get(), 0, 1); // the old value stays
        if (!bad.empty())
            out += bad + "; ";
        if (daxkv_contains(s.get(), k9.data(), k9.size()) != 0)
            out += "a value whose copy failed was committed; ";
        s.reset();
        f.free(src);
        return out;
    });
    EXPECT_EQ(msg, "");
}

TEST_F(Copies, StagedGpuReadWhoseCopyFailsIsEioAndKeepsTheEntry) {
    std::string msg = child_check([&]() -> std::string {
        Fake f;
        if (!f.open())
            return std::string("fake runtime: ") + dlerror();
        StorePtr s = open_pool(1, 8);
        for (uint32_t i = 0; i < 2; ++i)
            if (put_key(s.get(), i, 1))
                return "put failed";
        const daxkv::arena::Arena &a = s->store->core().pool.arena(0);
        FailRange hook(a.slot_data(0), a.mapping().base() + a.mapping().size());
        DeviceItems d(f, 2);
        int rc;
        {
            HookScope scope(&hook);
            rc = daxkv_get_batch_cuda(s.get(), d.items.data(), 2, nullptr, 0);
        }
        std::string out;
        if (rc != 0)
            out += "get_batch_cuda returned " + std::to_string(rc) + ", expected 0; ";
        for (auto &it : d.items)
            if (it.status != -EIO)
                out += "item status " + std::to_string(it.status) + ", expected -EIO; ";
        // Not a media fault: the entries stay, and read back whole.
        out += check_keys(s.get(), 0, 2, 1);
        s.reset();
        return out;
    });
    EXPECT_EQ(msg, "");
}

// Every path that reads an arena: get, get_batch, a lease-free migration,
// the staged GPU get. With sigbus=handle each of their copies is guarded;
// without it none is.
TEST_F(Copies, EveryCopyOutOfAnArenaIsGuardedExactlyWhenAsked) {
    for (const char *mode : {"handle", "default"}) {
        std::string msg = child_check([&]() -> std::string {
            Fake f;
            if (!f.open())
                return std::string("fake runtime: ") + dlerror();
            StorePtr s = open_pool(1, 8, {{"sigbus", mode}});
            for (uint32_t i = 0; i < 4; ++i)
                if (put_key(s.get(), i, 1))
                    return "put failed";
            const daxkv::arena::Arena &a = s->store->core().pool.arena(0);
            SeeArena see(a.mapping().base(), a.mapping().base() + a.mapping().size());
            const bool want = std::string(mode) == "handle";
            std::string out;
            auto expect = [&](const char *path, int min_reads) {
                out += see.take(path, false, min_reads, want);
            };
            HookScope scope(&see);
            if (check_key(s.get(), 0, 1) != "")
                return "get failed";
            expect("get", 1);
            std::vector<std::vector<uint8_t>> bufs(4, std::vector<uint8_t>(kSlot));
            std::vector<std::string> keys(4);
            std::vector<daxkv_item> items(4);
            for (uint32_t i = 0; i < 4; ++i) {
                keys[i] = key_of(i);
                items[i] = daxkv_item{keys[i].data(), keys[i].size(), bufs[i].data(), kSlot,
                                      nullptr, 0, 0};
            }
            if (daxkv_get_batch(s.get(), items.data(), 4, 0) != 4)
                return std::string("get_batch: ") + daxkv_errmsg();
            expect("get_batch", 4);
            DeviceItems d(f, 4);
            if (daxkv_get_batch_cuda(s.get(), d.items.data(), 4, nullptr, 0) != 4)
                return std::string("get_batch_cuda: ") + daxkv_errmsg();
            expect("staged GPU get", 1);
            std::string d1 = dir_.file("dest");
            if (daxkv_device_add(s.get(), d1.c_str(), dev_bytes_for(8)))
                return std::string("add: ") + daxkv_errmsg();
            daxkv_hotplug_result r = result();
            if (daxkv_device_remove(s.get(), paths_[0].c_str(), DAXKV_MIGRATE, 0, &r))
                return std::string("remove: ") + daxkv_errmsg();
            expect("migration", 4);
            s.reset();
            return out;
        });
        EXPECT_EQ(msg, "") << "sigbus=" << mode;
    }
}

// Every path that writes an arena: put, put_batch, the staged GPU put, a
// migration's copies into their new device. With sigbus=handle each of
// their copies is guarded on its arena side; without it none is.
TEST_F(Copies, EveryCopyIntoAnArenaIsGuardedExactlyWhenAsked) {
    for (const char *mode : {"handle", "default"}) {
        std::string msg = child_check([&]() -> std::string {
            Fake f;
            if (!f.open())
                return std::string("fake runtime: ") + dlerror();
            StorePtr s = open_pool(1, 8, {{"sigbus", mode}});
            const bool want = std::string(mode) == "handle";
            std::string out;
            auto expect = [&](SeeArena &see, const char *path, int min_writes) {
                out += see.take(path, true, min_writes, want);
            };
            {
                const daxkv::arena::Arena &a = s->store->core().pool.arena(0);
                SeeArena see(a.mapping().base(), a.mapping().base() + a.mapping().size());
                HookScope scope(&see);
                if (put_key(s.get(), 0, 1))
                    return std::string("put: ") + daxkv_errmsg();
                expect(see, "put", 1);
                std::vector<std::string> keys(3);
                std::vector<std::vector<uint8_t>> vals(3);
                std::vector<daxkv_item> items(3);
                for (uint32_t i = 0; i < 3; ++i) {
                    keys[i] = key_of(1 + i);
                    vals[i] = val(1 + i, 1);
                    items[i] = daxkv_item{keys[i].data(), keys[i].size(), vals[i].data(),
                                          vals[i].size(), nullptr, 0, 0};
                }
                if (daxkv_put_batch(s.get(), items.data(), 3, 0) != 3)
                    return std::string("put_batch: ") + daxkv_errmsg();
                expect(see, "put_batch", 3);
                void *src = nullptr;
                f.malloc(&src, kSlot);
                std::memset(src, 'g', kSlot);
                std::string k = key_of(7);
                daxkv_item gpu{k.data(), k.size(), src, kSlot, nullptr, 0, 0};
                const int rc = daxkv_put_batch_cuda(s.get(), &gpu, 1, nullptr, 0);
                f.free(src);
                if (rc != 1)
                    return std::string("put_batch_cuda: ") + daxkv_errmsg();
                expect(see, "staged GPU put", 1);
            }
            std::string d1 = dir_.file("dest");
            if (daxkv_device_add(s.get(), d1.c_str(), dev_bytes_for(8)))
                return std::string("add: ") + daxkv_errmsg();
            const daxkv::arena::Arena &dest = s->store->core().pool.arena(1);
            SeeArena see(dest.mapping().base(), dest.mapping().base() + dest.mapping().size());
            HookScope scope(&see);
            daxkv_hotplug_result r = result();
            if (daxkv_device_remove(s.get(), paths_[0].c_str(), DAXKV_MIGRATE, 0, &r))
                return std::string("remove: ") + daxkv_errmsg();
            expect(see, "migration", 5);
            s.reset();
            return out;
        });
        EXPECT_EQ(msg, "") << "sigbus=" << mode;
    }
}

} // namespace
