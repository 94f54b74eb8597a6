// Pinned staging buffers for the GPU transfers of an unregistered arena.
//
// A transfer takes one set of two buffers (allocated with cudaHostAlloc) and
// alternates between them: the CPU fills or drains one while the DMA engine
// copies the other. Each buffer carries an event recorded after the last
// DMA that touches it; nothing reuses a buffer before that event completed,
// even when the DMA outlives the call that enqueued it.
#pragma once

#include <cstddef>
#include <memory>
#include <mutex>
#include <vector>

#include "cuda/runtime.hpp"

namespace daxkv {
namespace cuda {

struct StagingBuffer {
    char *p = nullptr;
    size_t len = 0;
    Event done = nullptr; // recorded after the last DMA using p
    bool pending = false; // done was recorded and not waited for yet
};

struct StagingSet {
    StagingBuffer buf[2];
};

class StagingPool {
public:
    StagingPool(const Runtime &rt, size_t buffer_bytes) : rt_(rt), bytes_(buffer_bytes) {}
    // Waits for every pending DMA of the free sets, then frees them.
    ~StagingPool();
    StagingPool(const StagingPool &) = delete;
    StagingPool &operator=(const StagingPool &) = delete;

    // A set for one transfer: a free one, or a new one (throws Error
    // -ENOMEM when cudaHostAlloc or cudaEventCreateWithFlags runs out of
    // memory, -EIO when either fails otherwise).
    std::unique_ptr<StagingSet> take();
    // Return a set (its DMAs may still be running).
    void give(std::unique_ptr<StagingSet> set) noexcept;

    // Wait until b's last DMA finished. Returns the CUDA error of the wait.
    Error wait(StagingBuffer &b) const noexcept;
    // Record b.done on stream s after the DMAs just enqueued for b. When the
    // event cannot be recorded, waits for the stream instead.
    Error mark(StagingBuffer &b, Stream s) const noexcept;

    size_t buffer_bytes() const noexcept { return bytes_; }

private:
    void destroy(StagingSet &set) noexcept;

    const Runtime &rt_;
    size_t bytes_;
    std::mutex m_;
    std::vector<std::unique_ptr<StagingSet>> free_;
};

} // namespace cuda
} // namespace daxkv
