// GPU transfers of a store (the CUDA runtime is loaded on first use):
// registration of the arenas with CUDA, and the batch calls between device
// memory and the arenas, which borrow, claim and commit through the read
// and write paths like the host batches.
//
// Two paths. When the arenas are registered, the DMA engine reads and
// writes the mapped arena directly with cudaMemcpyAsync. Otherwise the
// staged path goes through pinned staging buffers: the copy workers fill
// (or drain) one buffer while the DMA of the other runs.
#pragma once

#include <cstddef>
#include <functional>
#include <memory>
#include <mutex>
#include <vector>

#include "store/core.hpp"
#include "store/item.hpp"
#include "store/reads.hpp"
#include "store/writes.hpp"

namespace daxkv {
namespace cuda {
// The GPU side of a store: registration, staging buffers, transfers in
// flight (gpu.cpp).
struct StoreState;
class HostRegistration;
struct StoreStateDeleter {
    void operator()(StoreState *s) const noexcept;
};
} // namespace cuda

class Gpu {
public:
    Gpu(Core &core, Reads &reads, Writes &writes) : c_(core), reads_(reads), writes_(writes) {}
    // Waits for the GPU copies still reading the arenas, then unregisters
    // them: before the arenas are unmapped.
    ~Gpu();
    Gpu(const Gpu &) = delete;
    Gpu &operator=(const Gpu &) = delete;

    // 0, or the expected outcome -EBUSY (registered with other flags);
    // throws Error (-ENOTSUP, -ENODEV: no usable CUDA).
    int register_arenas(unsigned flags);
    // 0, or -ENOENT (not registered).
    int unregister_arenas();
    // As get_batch and put_batch, between device memory and the arenas,
    // ordered on stream (gpu_transfer.cpp).
    int get_batch(daxkv_item *items, size_t n, void *stream, unsigned flags);
    int put_batch(daxkv_item *items, size_t n, void *stream, unsigned flags);
    // Run a change of the pool's mappings (a device unmapped or added) with
    // the CUDA registration, if any, dropped around it and made again for
    // the devices mapped afterwards.
    void around_mapping_change(const std::function<void()> &change);

    // Test hook: runs between gathering the mapped ranges and registering
    // them.
    void set_register_hook(std::function<void()> fn) { register_hook_ = std::move(fn); }

private:
    cuda::StoreState &state();
    // A registration of every mapped arena; the caller holds the state's
    // registration lock exclusively. Throws as HostRegistration does.
    std::unique_ptr<cuda::HostRegistration> register_mapped(const cuda::StoreState &cs,
                                                            unsigned flags, size_t *arenas) const;

    Core &c_;
    Reads &reads_;
    Writes &writes_;
    // Created by the first CUDA call.
    std::mutex m_;
    std::unique_ptr<cuda::StoreState, cuda::StoreStateDeleter> state_;
    std::function<void()> register_hook_;
};

} // namespace daxkv
