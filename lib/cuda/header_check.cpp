// Built only when configure found the CUDA headers (--with-cuda): checks at
// compile time that the library's own declarations (cuda_decls.hpp) match
// the real ones. It defines nothing; a mismatch fails the build.
#include <cuda_runtime_api.h>

#include <cstddef>
#include <type_traits>

#include "cuda/cuda_decls.hpp"

namespace daxkv {
namespace cuda {
namespace {

// Enums travel as their underlying type through the dlsym'd pointers; the
// compiler may make that unsigned (no negative enumerator), which passes
// exactly as the signed type of the same size.
template <typename T, bool = std::is_enum<T>::value>
struct plain {
    using type = T;
};
template <typename T>
struct plain<T, true> {
    using type = std::make_signed_t<std::underlying_type_t<T>>;
};
template <typename F>
struct plain_fn;
template <typename R, typename... A>
struct plain_fn<R (*)(A...)> {
    using type = typename plain<R>::type (*)(typename plain<A>::type...);
};
template <typename Real, typename Ours>
constexpr bool same_fn = std::is_same<typename plain_fn<Real>::type, Ours>::value;

static_assert(sizeof(cudaError_t) == sizeof(Error), "cudaError_t is not int-sized");
static_assert(std::is_same<cudaStream_t, Stream>::value, "cudaStream_t");
static_assert(std::is_same<cudaEvent_t, Event>::value, "cudaEvent_t");
static_assert(std::is_same<cudaHostFn_t, HostFn>::value, "cudaHostFn_t");

static_assert(cudaSuccess == kSuccess && cudaErrorInvalidValue == kErrorInvalidValue &&
                  cudaErrorMemoryAllocation == kErrorMemoryAllocation &&
                  cudaErrorCudartUnloading == kErrorCudartUnloading &&
                  cudaErrorInsufficientDriver == kErrorInsufficientDriver &&
                  cudaErrorNoDevice == kErrorNoDevice && cudaErrorNotReady == kErrorNotReady &&
                  cudaErrorHostMemoryAlreadyRegistered == kErrorHostMemoryAlreadyRegistered &&
                  cudaErrorHostMemoryNotRegistered == kErrorHostMemoryNotRegistered &&
                  cudaErrorNotSupported == kErrorNotSupported,
              "cudaError_t values");
static_assert(cudaHostRegisterDefault == kHostRegisterDefault &&
                  cudaHostRegisterPortable == kHostRegisterPortable &&
                  cudaHostRegisterMapped == kHostRegisterMapped &&
                  cudaHostAllocDefault == kHostAllocDefault &&
                  cudaEventDisableTiming == kEventDisableTiming,
              "flag values");
static_assert(cudaMemcpyHostToHost == kMemcpyHostToHost &&
                  cudaMemcpyHostToDevice == kMemcpyHostToDevice &&
                  cudaMemcpyDeviceToHost == kMemcpyDeviceToHost,
              "cudaMemcpyKind values");
static_assert(cudaDevAttrHostRegisterSupported == kDevAttrHostRegisterSupported,
              "cudaDeviceAttr value");

static_assert(same_fn<decltype(&::cudaGetDeviceCount), GetDeviceCountFn>, "cudaGetDeviceCount");
static_assert(same_fn<decltype(&::cudaGetDevice), GetDeviceFn>, "cudaGetDevice");
static_assert(same_fn<decltype(&::cudaDeviceGetAttribute), DeviceGetAttributeFn>,
              "cudaDeviceGetAttribute");
static_assert(same_fn<decltype(&::cudaRuntimeGetVersion), RuntimeGetVersionFn>,
              "cudaRuntimeGetVersion");
static_assert(same_fn<decltype(&::cudaGetErrorString), GetErrorStringFn>, "cudaGetErrorString");
static_assert(same_fn<decltype(&::cudaGetLastError), GetLastErrorFn>, "cudaGetLastError");
static_assert(same_fn<decltype(&::cudaHostRegister), HostRegisterFn>, "cudaHostRegister");
static_assert(same_fn<decltype(&::cudaHostUnregister), HostUnregisterFn>, "cudaHostUnregister");
static_assert(same_fn<decltype(&::cudaHostAlloc), HostAllocFn>, "cudaHostAlloc");
static_assert(same_fn<decltype(&::cudaFreeHost), FreeHostFn>, "cudaFreeHost");
static_assert(same_fn<cudaError_t (*)(void **, size_t), MallocFn>, "cudaMalloc");
static_assert(same_fn<decltype(&::cudaFree), FreeFn>, "cudaFree");
static_assert(same_fn<decltype(&::cudaMemcpy), MemcpyFn>, "cudaMemcpy");
static_assert(same_fn<decltype(&::cudaMemcpyAsync), MemcpyAsyncFn>, "cudaMemcpyAsync");
static_assert(same_fn<decltype(&::cudaStreamCreate), StreamCreateFn>, "cudaStreamCreate");
static_assert(same_fn<decltype(&::cudaStreamDestroy), StreamDestroyFn>, "cudaStreamDestroy");
static_assert(same_fn<decltype(&::cudaStreamSynchronize), StreamSynchronizeFn>,
              "cudaStreamSynchronize");
static_assert(same_fn<decltype(&::cudaLaunchHostFunc), LaunchHostFuncFn>, "cudaLaunchHostFunc");
static_assert(same_fn<decltype(&::cudaEventCreateWithFlags), EventCreateWithFlagsFn>,
              "cudaEventCreateWithFlags");
static_assert(same_fn<decltype(&::cudaEventDestroy), EventDestroyFn>, "cudaEventDestroy");
static_assert(same_fn<decltype(&::cudaEventRecord), EventRecordFn>, "cudaEventRecord");
static_assert(same_fn<decltype(&::cudaEventSynchronize), EventSynchronizeFn>,
              "cudaEventSynchronize");
static_assert(same_fn<decltype(&::cudaEventQuery), EventQueryFn>, "cudaEventQuery");

// The name is cudaDeviceProp's first member (GetDevicePropertiesFn reads
// only that).
static_assert(offsetof(cudaDeviceProp, name) == 0 && sizeof(cudaDeviceProp::name) == 256,
              "cudaDeviceProp::name");

} // namespace
} // namespace cuda
} // namespace daxkv
