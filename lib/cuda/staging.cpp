#include "cuda/staging.hpp"

#include <cerrno>

#include "internal/error.hpp"
#include "internal/util.hpp"

namespace daxkv {
namespace cuda {

StagingPool::~StagingPool() {
    for (auto &s : free_)
        destroy(*s);
}

void StagingPool::destroy(StagingSet &set) noexcept {
    for (auto &b : set.buf) {
        wait(b);
        if (b.done)
            rt_.EventDestroy(b.done);
        if (b.p)
            rt_.FreeHost(b.p);
        b = StagingBuffer{};
    }
}

std::unique_ptr<StagingSet> StagingPool::take() {
    {
        std::lock_guard<std::mutex> g(m_);
        if (!free_.empty()) {
            auto s = std::move(free_.back());
            free_.pop_back();
            return s;
        }
    }
    auto set = std::make_unique<StagingSet>();
    for (auto &b : set->buf) {
        void *p = nullptr;
        Error e = rt_.HostAlloc(&p, bytes_, kHostAllocDefault);
        if (e == kSuccess) {
            b.p = static_cast<char *>(p);
            b.len = bytes_;
            e = rt_.EventCreateWithFlags(&b.done, kEventDisableTiming);
        }
        if (e != kSuccess) {
            std::string what = rt_.describe(b.p ? "cudaEventCreateWithFlags" : "cudaHostAlloc", e);
            rt_.GetLastError();
            destroy(*set);
            // Out of memory is -ENOMEM; any other refusal (a GPU taken in
            // exclusive-process mode, a broken context) is another CUDA
            // error: -EIO.
            fail(e == kErrorMemoryAllocation ? -ENOMEM : -EIO, "no pinned staging buffer of %s: %s",
                 human_bytes(bytes_).c_str(), what.c_str());
        }
    }
    return set;
}

void StagingPool::give(std::unique_ptr<StagingSet> set) noexcept {
    if (!set)
        return;
    try {
        std::lock_guard<std::mutex> g(m_);
        free_.push_back(std::move(set));
    } catch (...) {
        destroy(*set); // out of memory for the list: free the set instead
    }
}

Error StagingPool::wait(StagingBuffer &b) const noexcept {
    if (!b.pending)
        return kSuccess;
    b.pending = false;
    return rt_.EventSynchronize(b.done);
}

Error StagingPool::mark(StagingBuffer &b, Stream s) const noexcept {
    Error e = rt_.EventRecord(b.done, s);
    if (e == kSuccess) {
        b.pending = true;
        return kSuccess;
    }
    // Without the event, the only safe point to reuse the buffer is the
    // end of everything on the stream.
    rt_.GetLastError();
    return rt_.StreamSynchronize(s);
}

} // namespace cuda
} // namespace daxkv
