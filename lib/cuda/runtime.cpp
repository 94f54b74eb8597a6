#include "cuda/runtime.hpp"

#include <atomic>
#include <cstdio>
#include <cstdlib>
#include <dlfcn.h>
#include <memory>
#include <mutex>
#include <vector>

#include "internal/process_mutex.hpp"

namespace daxkv {
namespace cuda {
namespace {

struct LoaderState {
    ProcessMutex m; // a child forked during a load loads again
    std::atomic<const Runtime *> current{nullptr};
    bool attempted = false;
    std::string reason;
    // Every table ever loaded stays alive: reload_for_testing() must never
    // leave a caller with a dangling table.
    std::vector<std::unique_ptr<Runtime>> tables;
};

LoaderState &state() {
    static LoaderState *s = new LoaderState; // never destroyed: used by static destructors
    return *s;
}

template <typename F>
bool bind(void *h, const char *name, F &out, std::string &missing) {
    out = reinterpret_cast<F>(dlsym(h, name));
    if (!out && missing.empty())
        missing = name;
    return out != nullptr;
}

// Open the library: one already in the process first, then a fresh load.
void *open_library(std::string &path, std::string &why) {
    const char *test = secure_getenv(kTestLibraryEnv);
    std::vector<std::string> names;
    if (test && *test)
        names.push_back(test);
    else
        names = {"libcudart.so.13", "libcudart.so.12", "libcudart.so"};
    for (const auto &n : names)
        if (void *h = dlopen(n.c_str(), RTLD_NOW | RTLD_LOCAL | RTLD_NOLOAD)) {
            path = n;
            return h;
        }
    for (const auto &n : names) {
        if (void *h = dlopen(n.c_str(), RTLD_NOW | RTLD_LOCAL)) {
            path = n;
            return h;
        }
        const char *e = dlerror();
        if (!why.empty())
            why += "; ";
        why += e ? e : n + ": not found";
    }
    return nullptr;
}

// Sets st.current or st.reason. Throws only std::bad_alloc, having
// published nothing.
void load(LoaderState &st) {
    std::string path, why;
    void *h = open_library(path, why);
    if (!h) {
        st.reason = "no CUDA runtime could be loaded (" + why + ")";
        return;
    }
    auto rt = std::make_unique<Runtime>();
    rt->path = path;
    std::string missing;
    bind(h, "cudaGetDeviceCount", rt->GetDeviceCount, missing);
    bind(h, "cudaGetDevice", rt->GetDevice, missing);
    bind(h, "cudaDeviceGetAttribute", rt->DeviceGetAttribute, missing);
    bind(h, "cudaRuntimeGetVersion", rt->RuntimeGetVersion, missing);
    bind(h, "cudaGetErrorString", rt->GetErrorString, missing);
    bind(h, "cudaGetLastError", rt->GetLastError, missing);
    bind(h, "cudaHostRegister", rt->HostRegister, missing);
    bind(h, "cudaHostUnregister", rt->HostUnregister, missing);
    bind(h, "cudaHostAlloc", rt->HostAlloc, missing);
    bind(h, "cudaFreeHost", rt->FreeHost, missing);
    bind(h, "cudaMalloc", rt->Malloc, missing);
    bind(h, "cudaFree", rt->Free, missing);
    bind(h, "cudaMemcpy", rt->Memcpy, missing);
    bind(h, "cudaMemcpyAsync", rt->MemcpyAsync, missing);
    bind(h, "cudaStreamCreate", rt->StreamCreate, missing);
    bind(h, "cudaStreamDestroy", rt->StreamDestroy, missing);
    bind(h, "cudaStreamSynchronize", rt->StreamSynchronize, missing);
    bind(h, "cudaLaunchHostFunc", rt->LaunchHostFunc, missing);
    bind(h, "cudaEventCreateWithFlags", rt->EventCreateWithFlags, missing);
    bind(h, "cudaEventDestroy", rt->EventDestroy, missing);
    bind(h, "cudaEventRecord", rt->EventRecord, missing);
    bind(h, "cudaEventSynchronize", rt->EventSynchronize, missing);
    bind(h, "cudaEventQuery", rt->EventQuery, missing);
    if (!missing.empty()) {
        // A library without these is no CUDA runtime of version 10 or later.
        st.reason = path + " lacks " + missing + ": not a usable CUDA runtime";
        return; // the handle stays open: dlclose of a runtime is unsafe
    }
    std::string optional;
    // CUDA 12 headers call the _v2 entry point; older runtimes only have
    // the plain one. Both fill the name first.
    if (!bind(h, "cudaGetDeviceProperties_v2", rt->GetDeviceProperties, optional))
        bind(h, "cudaGetDeviceProperties", rt->GetDeviceProperties, optional);
    if (rt->RuntimeGetVersion(&rt->version) != kSuccess)
        rt->version = 0;
    int n = 0;
    Error e = rt->GetDeviceCount(&n);
    if (e != kSuccess || n <= 0) {
        st.reason = rt->path + " is loaded but no GPU is usable (" +
                    (e != kSuccess ? rt->describe("cudaGetDeviceCount", e)
                                   : std::string("cudaGetDeviceCount: 0 devices")) +
                    ")";
        rt->GetLastError(); // clear the sticky error for whoever calls CUDA next
        n = 0;
    }
    rt->devices = n;
    // Kept before it is published: a failed push_back leaves nothing
    // pointing at a table about to be freed.
    st.tables.push_back(std::move(rt));
    st.current.store(st.tables.back().get(), std::memory_order_release);
}

} // namespace

std::string Runtime::describe(const char *what, Error err) const {
    const char *s = GetErrorString ? GetErrorString(err) : nullptr;
    char buf[64];
    std::snprintf(buf, sizeof buf, " (cuda error %d)", err);
    return std::string(what) + ": " + (s ? s : "unknown error") + buf;
}

const Runtime *load_runtime() {
    LoaderState &st = state();
    if (const Runtime *r = st.current.load(std::memory_order_acquire))
        return r;
    std::lock_guard<ProcessMutex> g(st.m);
    if (!st.attempted) {
        load(st);
        st.attempted = true; // only once load() decided, not when it threw
    }
    return st.current.load(std::memory_order_acquire);
}

const Runtime *runtime() noexcept {
    try {
        return load_runtime();
    } catch (...) {
        return nullptr; // out of memory while loading: none this time
    }
}

std::string unavailable_reason() {
    const Runtime *r = runtime();
    if (r && r->devices > 0)
        return std::string();
    LoaderState &st = state();
    std::lock_guard<ProcessMutex> g(st.m);
    return st.reason;
}

void reload_for_testing() noexcept {
    LoaderState &st = state();
    std::lock_guard<ProcessMutex> g(st.m);
    st.current.store(nullptr, std::memory_order_release);
    st.attempted = false;
    st.reason.clear();
}

} // namespace cuda
} // namespace daxkv
