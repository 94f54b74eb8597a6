// The few CUDA runtime types, constants and function types libdaxkv uses,
// declared here so that the library builds without the CUDA toolkit: the
// runtime is loaded with dlopen (runtime.hpp), never linked. Values and
// signatures are those of cuda_runtime_api.h / driver_types.h of CUDA 12
// and 13 (the ABI of both is the same for these); header_check.cpp compares
// them with the real headers when configure finds them (--with-cuda).
#pragma once

#include <cstddef>

// The runtime's opaque handles, with the real headers' tags so that both
// name the same types.
struct CUstream_st;
struct CUevent_st;

namespace daxkv {
namespace cuda {

using Error = int; // cudaError_t (an enum of int size)
using Stream = CUstream_st *;
using Event = CUevent_st *;
using HostFn = void (*)(void *user);

// cudaError_t values the library tells apart.
constexpr Error kSuccess = 0;
constexpr Error kErrorInvalidValue = 1;
constexpr Error kErrorMemoryAllocation = 2;
constexpr Error kErrorCudartUnloading = 4;
constexpr Error kErrorInsufficientDriver = 35;
constexpr Error kErrorNoDevice = 100;
constexpr Error kErrorNotReady = 600;
constexpr Error kErrorHostMemoryAlreadyRegistered = 712;
constexpr Error kErrorHostMemoryNotRegistered = 713;
constexpr Error kErrorNotSupported = 801;

// cudaHostRegister flags. IoMemory is deliberately absent: the driver takes
// it only for VM_IO|VM_PFNMAP mappings, which a Device-DAX mapping is not
// (the call fails), and it would make the memory non-coherent for the GPU.
constexpr unsigned kHostRegisterDefault = 0x00;
constexpr unsigned kHostRegisterPortable = 0x01;
constexpr unsigned kHostRegisterMapped = 0x02;

constexpr unsigned kHostAllocDefault = 0x00;
constexpr unsigned kEventDisableTiming = 0x02;

// enum cudaMemcpyKind
constexpr int kMemcpyHostToHost = 0;
constexpr int kMemcpyHostToDevice = 1;
constexpr int kMemcpyDeviceToHost = 2;

// enum cudaDeviceAttr
constexpr int kDevAttrHostRegisterSupported = 99;

// Function types, in the order of runtime.hpp's table.
using GetDeviceCountFn = Error (*)(int *count);
using GetDeviceFn = Error (*)(int *device);
using DeviceGetAttributeFn = Error (*)(int *value, int attr, int device);
using RuntimeGetVersionFn = Error (*)(int *version);
using GetErrorStringFn = const char *(*)(Error err);
using GetLastErrorFn = Error (*)();
using HostRegisterFn = Error (*)(void *ptr, size_t size, unsigned flags);
using HostUnregisterFn = Error (*)(void *ptr);
using HostAllocFn = Error (*)(void **ptr, size_t size, unsigned flags);
using FreeHostFn = Error (*)(void *ptr);
using MallocFn = Error (*)(void **dev_ptr, size_t size);
using FreeFn = Error (*)(void *dev_ptr);
using MemcpyFn = Error (*)(void *dst, const void *src, size_t n, int kind);
using MemcpyAsyncFn = Error (*)(void *dst, const void *src, size_t n, int kind, Stream s);
using StreamCreateFn = Error (*)(Stream *s);
using StreamDestroyFn = Error (*)(Stream s);
using StreamSynchronizeFn = Error (*)(Stream s);
using LaunchHostFuncFn = Error (*)(Stream s, HostFn fn, void *user);
using EventCreateWithFlagsFn = Error (*)(Event *e, unsigned flags);
using EventDestroyFn = Error (*)(Event e);
using EventRecordFn = Error (*)(Event e, Stream s);
using EventSynchronizeFn = Error (*)(Event e);
using EventQueryFn = Error (*)(Event e);
// cudaGetDeviceProperties writes a struct cudaDeviceProp whose size changes
// between releases; only its first member, char name[256], is read.
using GetDevicePropertiesFn = Error (*)(void *prop, int device);

} // namespace cuda
} // namespace daxkv
