// Page-locking host ranges for the GPU (cudaHostRegister), in chunks.
//
// A DAX mapping can be hundreds of GiB; one cudaHostRegister of 512 GiB or
// more fails on current drivers, so a range is registered in chunks of at
// most 64 GiB (configurable smaller), and every return code is checked. A
// failure unregisters the chunks already done and clears CUDA's sticky
// per-thread error, so the caller is left exactly as before.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "cuda/runtime.hpp"

namespace daxkv {
namespace cuda {

struct HostRange {
    char *base = nullptr;
    uint64_t len = 0;
    std::string name; // for messages (the device path)
};

// The largest chunk ever passed to one cudaHostRegister call.
constexpr uint64_t kRegisterChunkMax = 64ull << 30;

class HostRegistration {
public:
    // Register every range with cudaHostRegister(flags) in chunks of at most
    // chunk bytes. Throws daxkv::Error after rolling back: -ENOTSUP when the
    // device cannot register host memory, -ENOMEM when the driver runs out,
    // -EBUSY when a range is already registered, -EIO otherwise.
    HostRegistration(const Runtime &rt, const std::vector<HostRange> &ranges, uint64_t chunk,
                     unsigned flags);
    // Unregisters every chunk (the caller guarantees no copy still uses
    // them) and logs failures.
    ~HostRegistration();
    // Unregister every chunk now; returns how many cudaHostUnregister calls
    // failed (nothing is logged: the caller may hold a lock).
    size_t release() noexcept;
    HostRegistration(const HostRegistration &) = delete;
    HostRegistration &operator=(const HostRegistration &) = delete;

    size_t chunks() const noexcept { return done_.size(); }
    unsigned flags() const noexcept { return flags_; }

private:
    struct Chunk {
        char *p;
        uint64_t len;
    };

    const Runtime &rt_;
    unsigned flags_;
    std::vector<Chunk> done_;
};

} // namespace cuda
} // namespace daxkv
