// The GPU side of a store, shared by gpu.cpp (registration) and
// gpu_transfer.cpp (the batches); nothing else includes it.
//
// Lifetimes. A read on the direct path returns as soon as its copies are
// enqueued; the entries stay borrowed (as leases are) until the stream has
// passed them, which a host function launched behind the copies reports, so
// neither eviction nor removal frees bytes a DMA still reads. The host
// function holds no reference to the store: ~Gpu waits for every one of
// them before it unregisters the arenas (and the store unmaps them), so the
// store can never be destroyed on a CUDA thread (where no CUDA call is
// allowed). A write is claimed first, copied, and committed only after the
// copies completed.
#pragma once

#include <condition_variable>
#include <cstdint>
#include <functional>
#include <memory>
#include <mutex>
#include <shared_mutex>
#include <string>
#include <vector>

#include "cuda/registration.hpp"
#include "cuda/runtime.hpp"
#include "cuda/staging.hpp"
#include "internal/error.hpp"

namespace daxkv {
namespace cuda {

struct StoreState {
    StoreState(const Runtime &r, size_t staging_bytes) : rt(r), pool(r, staging_bytes) {}
    ~StoreState() {
        wait_idle();
        reg.reset(); // unregister before the arenas are unmapped
    }

    void begin_pending() {
        std::lock_guard<std::mutex> g(m);
        ++pending;
    }
    void end_pending() noexcept {
        // Notify under the lock: a waiter may destroy this object as soon as
        // it sees pending reach 0.
        std::lock_guard<std::mutex> g(m);
        if (--pending == 0)
            cv.notify_all();
    }
    void wait_idle() {
        std::unique_lock<std::mutex> g(m);
        cv.wait(g, [this] { return pending == 0; });
    }

    const Runtime &rt;
    StagingPool pool;
    // Shared by a transfer while it picks its path and enqueues its copies;
    // exclusive for registering and unregistering.
    std::shared_mutex reg_m;
    std::unique_ptr<HostRegistration> reg;
    unsigned reg_flags = 0;
    // Why a device change dropped the registration (registering the arenas
    // again failed); empty otherwise. Said by an unregister that finds none.
    std::string reg_lost;
    // Direct reads whose DMA has not completed yet.
    std::mutex m;
    std::condition_variable cv;
    size_t pending = 0;
};

// The entries a direct read borrowed, released by a host function once the
// stream has passed the copies.
struct ReadBatch {
    StoreState *state = nullptr;
    std::function<void()> release; // ends every borrow (no CUDA call)
};
void read_batch_done(void *p) noexcept;

// A piece of a value that fits one staging buffer.
struct Piece {
    size_t value;  // index into the caller's list of values
    uint64_t off;  // offset in the value
    uint64_t len;
    size_t staged; // offset in the staging buffer
};
using Fill = std::vector<Piece>;

// Cut values into fills of one staging buffer each. Small values are packed
// together; a value is split only at multiples of the checksum block, so that
// each piece's block hashes land at their place in the value's hash array.
std::vector<Fill> plan_fills(const std::vector<uint64_t> &lens, size_t cap);

// The runtime, or Error(-ENOTSUP / -ENODEV) saying why there is none.
const Runtime &require_runtime();

// The failure of item i whose copy failed with e, with the stream's sticky
// error cleared so the next item (and the caller) start clean (for
// fail_item()).
daxkv::Error copy_error(const Runtime &rt, size_t i, const char *what, Error e);

// One copy between device memory and the registered arena, cut at the
// registration chunk boundaries: the driver looks a host pointer up in one
// registered allocation, and a copy straddling two may not be treated as
// page-locked. Returns the first error; the pieces before it stay enqueued.
Error copy_registered(const Runtime &rt, char *dev, char *host, uint64_t n, const char *base,
                      uint64_t chunk, int kind, Stream s);

// Returns a staging set to its pool whatever happens.
struct SetHold {
    StagingPool &pool;
    std::unique_ptr<StagingSet> set;
    ~SetHold() { pool.give(std::move(set)); }
};

} // namespace cuda
} // namespace daxkv
