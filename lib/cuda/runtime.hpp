// The CUDA runtime, loaded at run time. libdaxkv never links libcudart: the
// first call that needs CUDA dlopens it (the CUDA 13 and 12 sonames, then the
// unversioned name), so one build and one package run on hosts with and
// without CUDA. A runtime already loaded in the process (by PyTorch, say) is
// used in preference to loading a second one.
//
// This file depends on nothing else of libdaxkv (only libc and libdl), so the
// daxkv command can use the same loader for its GPU benchmark.
#pragma once

#include <string>

#include "cuda/cuda_decls.hpp"

namespace daxkv {
namespace cuda {

// The function table of a loaded runtime.
struct Runtime {
    std::string path; // the name or path that was loaded
    int version = 0;  // cudaRuntimeGetVersion (e.g. 12040)
    int devices = 0;  // cudaGetDeviceCount when loaded (0 when it failed)

    GetDeviceCountFn GetDeviceCount = nullptr;
    GetDeviceFn GetDevice = nullptr;
    DeviceGetAttributeFn DeviceGetAttribute = nullptr;
    RuntimeGetVersionFn RuntimeGetVersion = nullptr;
    GetErrorStringFn GetErrorString = nullptr;
    GetLastErrorFn GetLastError = nullptr;
    HostRegisterFn HostRegister = nullptr;
    HostUnregisterFn HostUnregister = nullptr;
    HostAllocFn HostAlloc = nullptr;
    FreeHostFn FreeHost = nullptr;
    MallocFn Malloc = nullptr;
    FreeFn Free = nullptr;
    MemcpyFn Memcpy = nullptr;
    MemcpyAsyncFn MemcpyAsync = nullptr;
    StreamCreateFn StreamCreate = nullptr;
    StreamDestroyFn StreamDestroy = nullptr;
    StreamSynchronizeFn StreamSynchronize = nullptr;
    LaunchHostFuncFn LaunchHostFunc = nullptr;
    EventCreateWithFlagsFn EventCreateWithFlags = nullptr;
    EventDestroyFn EventDestroy = nullptr;
    EventRecordFn EventRecord = nullptr;
    EventSynchronizeFn EventSynchronize = nullptr;
    EventQueryFn EventQuery = nullptr;
    GetDevicePropertiesFn GetDeviceProperties = nullptr; // optional (may stay null)

    // "cudaHostRegister: out of memory (cuda error 2)".
    std::string describe(const char *what, Error err) const;
};

// The runtime, loaded on first use; nullptr when no usable library could be
// loaded (unavailable_reason() says why). A runtime with devices == 0 is
// loaded but has no usable GPU (no driver, no device).
const Runtime *runtime() noexcept;
// As runtime(), but running out of memory while loading throws
// std::bad_alloc (nothing is decided: the next call loads again) rather
// than looking like no runtime.
const Runtime *load_runtime();

// Why there is no runtime or no device; empty when a device is usable.
std::string unavailable_reason();

// The environment variable that, when set, names the only library to load.
// For the test suite (a fake runtime); not a supported way to pick a CUDA
// installation: use the dynamic loader's own search path for that.
constexpr const char *kTestLibraryEnv = "DAXKV_TEST_CUDART";

// Tests only: forget the loaded runtime, so the next runtime() loads again
// (reading kTestLibraryEnv anew). Must not race with any use of the old one;
// the old library stays loaded and its table stays valid.
void reload_for_testing() noexcept;

} // namespace cuda
} // namespace daxkv
