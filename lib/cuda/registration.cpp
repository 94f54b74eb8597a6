#include "cuda/registration.hpp"

#include <cerrno>

#include "internal/error.hpp"
#include "internal/util.hpp"

namespace daxkv {
namespace cuda {
namespace {

int code_of(Error e) {
    switch (e) {
    case kErrorMemoryAllocation:
        return -ENOMEM;
    case kErrorNotSupported:
        return -ENOTSUP;
    case kErrorHostMemoryAlreadyRegistered:
        return -EBUSY;
    default:
        return -EIO;
    }
}

} // namespace

HostRegistration::HostRegistration(const Runtime &rt, const std::vector<HostRange> &ranges,
                                   uint64_t chunk, unsigned flags)
    : rt_(rt), flags_(flags) {
    if (chunk == 0 || chunk > kRegisterChunkMax)
        fail(-EINVAL, "registration chunk of %llu bytes is not in 1..64 GiB",
             static_cast<unsigned long long>(chunk));
    int dev = 0, supported = 0;
    const char *call = "cudaGetDevice";
    Error e = rt_.GetDevice(&dev);
    if (e == kSuccess) {
        call = "cudaDeviceGetAttribute(HostRegisterSupported)";
        e = rt_.DeviceGetAttribute(&supported, kDevAttrHostRegisterSupported, dev);
    }
    if (e != kSuccess) {
        std::string what = rt_.describe(call, e); // the call that failed
        rt_.GetLastError();
        fail(-EIO, "%s", what.c_str());
    }
    if (!supported)
        fail(-ENOTSUP, "GPU %d cannot register host memory (cudaDevAttrHostRegisterSupported "
                       "is 0); transfers use the staged path",
             dev);
    size_t total = 0;
    for (const auto &r : ranges)
        total += (r.len + chunk - 1) / chunk;
    done_.reserve(total);
    size_t index = 0;
    for (const auto &r : ranges) {
        for (uint64_t off = 0; off < r.len; off += chunk) {
            ++index;
            uint64_t len = std::min(chunk, r.len - off);
            e = rt_.HostRegister(r.base + off, len, flags_);
            if (e != kSuccess) {
                std::string what = rt_.describe("cudaHostRegister", e);
                size_t undone = done_.size();
                size_t stuck = release();
                // A failed registration leaves a sticky per-thread error that
                // a later, unrelated CUDA call of the caller would report.
                rt_.GetLastError();
                fail(code_of(e),
                     "%s for chunk %zu of %zu (%s at offset %llu, %s); the %zu chunk(s) "
                     "registered before were unregistered%s, transfers use the staged path",
                     what.c_str(), index, total, r.name.c_str(),
                     static_cast<unsigned long long>(off), human_bytes(len).c_str(), undone,
                     stuck ? format(" (%zu of them failed to unregister)", stuck).c_str() : "");
            }
            done_.push_back(Chunk{r.base + off, len});
        }
    }
}

HostRegistration::~HostRegistration() {
    if (size_t stuck = release())
        log(kLogWarning, "%zu cudaHostUnregister call(s) failed", stuck);
}

size_t HostRegistration::release() noexcept {
    size_t failed = 0;
    while (!done_.empty()) {
        Error e = rt_.HostUnregister(done_.back().p);
        // At process exit the runtime may be unloading already; the
        // registrations die with it.
        if (e != kSuccess && e != kErrorCudartUnloading)
            ++failed;
        done_.pop_back();
    }
    if (failed)
        rt_.GetLastError();
    return failed;
}

} // namespace cuda
} // namespace daxkv
