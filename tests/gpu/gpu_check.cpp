// GPU checks for a machine with an NVIDIA GPU (run by tests/gpu/run-gpu-tests.sh;
// not part of make check). They use the public C API against the real CUDA
// runtime, which this program loads with the library's own loader
// (lib/cuda/runtime.cpp) for the device buffers, streams and host functions
// it needs itself. Ends with "N passed, M failed".
//
// Covered: the runtime and a GPU are found; registration of file and memory
// arenas in several chunks with both flag sets, and unregistration; a
// registration that meets a range somebody else registered fails with
// -EBUSY, unregisters its earlier chunks and leaves no sticky CUDA error;
// byte-exact round trips on the staged and the registered path (values that
// span staging buffers and registration chunks); an entry removed and its
// slot overwritten while a DMA reading it waits behind a blocked stream
// arrives intact; a failed write leaves no trace.
#include <atomic>
#include <cerrno>
#include <chrono>
#include <condition_variable>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <mutex>
#include <string>
#include <thread>
#include <unistd.h>
#include <vector>

#include "cuda/runtime.hpp"
#include "daxkv.h"

namespace cu = daxkv::cuda;

namespace {

int passed = 0, failed = 0;

#define CHECK(cond, ...)                                                                      \
    do {                                                                                      \
        if (cond) {                                                                           \
            ++passed;                                                                         \
        } else {                                                                              \
            ++failed;                                                                         \
            std::printf("FAIL %s:%d: %s: ", __FILE__, __LINE__, #cond);                       \
            std::printf(__VA_ARGS__);                                                         \
            std::printf(" (errmsg: %s)\n", daxkv_errmsg());                                   \
        }                                                                                     \
    } while (0)

const cu::Runtime *rt;

std::vector<char> pattern(uint64_t seed, size_t n) {
    std::vector<char> v(n);
    uint64_t x = seed * 0x9E3779B97F4A7C15ull + 7;
    for (size_t i = 0; i < n; i += 8) {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        std::memcpy(&v[i], &x, std::min<size_t>(8, n - i));
    }
    return v;
}

struct Dev {
    void *p = nullptr;
    size_t n;
    explicit Dev(size_t bytes) : n(bytes) {
        if (rt->Malloc(&p, bytes) != cu::kSuccess)
            p = nullptr;
    }
    ~Dev() { rt->Free(p); }
    void upload(const std::vector<char> &v) { rt->Memcpy(p, v.data(), v.size(), 1); }
    std::vector<char> download(size_t len) {
        std::vector<char> v(len);
        rt->Memcpy(v.data(), p, len, 2);
        return v;
    }
};

daxkv_store *open_store(const std::string &path, uint64_t bytes, const char *slot,
                        const char *chunk, const char *staging) {
    daxkv_config *c = nullptr;
    daxkv_store *s = nullptr;
    if (daxkv_config_new(&c))
        return nullptr;
    int rc = daxkv_config_set(c, "slot_bytes", slot);
    if (!rc)
        rc = daxkv_config_set(c, "on_mismatch", "reformat");
    if (!rc)
        rc = daxkv_config_set(c, "cuda_register_chunk", chunk);
    if (!rc)
        rc = daxkv_config_set(c, "cuda_staging_bytes", staging);
    if (!rc)
        rc = daxkv_config_add_device(c, path.c_str(), bytes);
    if (!rc)
        rc = daxkv_open(&s, c);
    daxkv_config_free(c);
    if (rc)
        std::printf("open %s: %d %s\n", path.c_str(), rc, daxkv_errmsg());
    return rc ? nullptr : s;
}

// Put values of the given sizes from the GPU, get them back into other GPU
// buffers, compare on the host.
void round_trip(daxkv_store *s, const char *label, cu::Stream st) {
    const size_t sizes[] = {(5u << 20) + 123, 1, 4096, (2u << 20), 777777, (8u << 20) - 1};
    const size_t n = sizeof sizes / sizeof sizes[0];
    std::vector<std::string> keys;
    std::vector<std::vector<char>> vals;
    std::vector<Dev *> src, dst;
    std::vector<daxkv_item> items(n);
    keys.reserve(n); // items point into the strings
    for (size_t i = 0; i < n; ++i) {
        keys.push_back(std::string(label) + "/" + std::to_string(i));
        vals.push_back(pattern(i + 11, sizes[i]));
        src.push_back(new Dev(sizes[i]));
        dst.push_back(new Dev(sizes[i]));
        src[i]->upload(vals[i]);
        items[i] = daxkv_item{keys[i].data(), keys[i].size(), src[i]->p, sizes[i], nullptr, 0, 0};
    }
    int rc = daxkv_put_batch_cuda(s, items.data(), n, st, 0);
    CHECK(rc == static_cast<int>(n), "%s: put_batch_cuda stored %d of %zu", label, rc, n);
    for (size_t i = 0; i < n; ++i) {
        std::vector<char> host(sizes[i]);
        size_t len = 0;
        rc = daxkv_get(s, keys[i].data(), keys[i].size(), host.data(), host.size(), &len);
        CHECK(rc == 0 && len == sizes[i] && host == vals[i], "%s: host get of item %zu", label, i);
        items[i] = daxkv_item{keys[i].data(), keys[i].size(), dst[i]->p, sizes[i], nullptr, 0, 0};
    }
    rc = daxkv_get_batch_cuda(s, items.data(), n, st, 0);
    CHECK(rc == static_cast<int>(n), "%s: get_batch_cuda got %d of %zu", label, rc, n);
    CHECK(rt->StreamSynchronize(st) == cu::kSuccess, "%s: stream", label);
    for (size_t i = 0; i < n; ++i)
        CHECK(dst[i]->download(sizes[i]) == vals[i], "%s: bytes of item %zu", label, i);
    for (size_t i = 0; i < n; ++i) {
        delete src[i];
        delete dst[i];
    }
}

// A host function that holds the stream until released.
struct Gate {
    std::mutex m;
    std::condition_variable cv;
    bool open = false;
    static void wait_fn(void *p) {
        Gate *g = static_cast<Gate *>(p);
        std::unique_lock<std::mutex> l(g->m);
        g->cv.wait(l, [g] { return g->open; });
    }
    void release() {
        std::lock_guard<std::mutex> l(m);
        open = true;
        cv.notify_all();
    }
};

} // namespace

int main() {
    std::string dir = access("/dev/shm", W_OK) == 0 ? "/dev/shm" : "/tmp";
    if (daxkv_cuda_available() != 1) {
        std::printf("FAIL: no usable GPU: %s\n0 passed, 1 failed\n", daxkv_errmsg());
        return 1;
    }
    rt = cu::runtime();
    CHECK(rt && rt->devices > 0, "runtime");
    std::printf("runtime %s version %d, %d device(s)\n", rt->path.c_str(), rt->version,
                rt->devices);
    cu::Stream st = nullptr;
    CHECK(rt->StreamCreate(&st) == cu::kSuccess, "cudaStreamCreate");

    // A file arena of 256 MiB in 64 MiB registration chunks, and a mem: arena.
    std::string path = dir + "/daxkv-gpu-check.arena";
    unlink(path.c_str());
    daxkv_store *s = open_store(path, 256ull << 20, "8MiB", "64MiB", "4MiB");
    CHECK(s != nullptr, "open file arena");
    if (!s)
        return 1;
    round_trip(s, "staged", st);
    int rc = daxkv_cuda_register(s, 0);
    CHECK(rc == 0, "register file arena: %d", rc);
    round_trip(s, "registered", st);
    CHECK(daxkv_cuda_unregister(s) == 0, "unregister");
    rc = daxkv_cuda_register(s, DAXKV_CUDA_MAPPED);
    CHECK(rc == 0, "register portable|mapped: %d", rc);
    round_trip(s, "mapped", st);

    // Lease lifetime under a real DMA: the stream is held by a host function
    // queued before the read; the entry is removed and its slot rewritten.
    {
        std::vector<char> v = pattern(99, 6u << 20);
        const char *k = "lease/key";
        CHECK(daxkv_put(s, k, strlen(k), v.data(), v.size(), 0) == 0, "put");
        Dev out(v.size());
        Gate gate;
        CHECK(rt->LaunchHostFunc(st, Gate::wait_fn, &gate) == cu::kSuccess, "hold the stream");
        daxkv_item it{k, strlen(k), out.p, v.size(), nullptr, 0, 0};
        rc = daxkv_get_batch_cuda(s, &it, 1, st, 0);
        CHECK(rc == 1, "get_batch_cuda behind a held stream: %d", rc);
        CHECK(daxkv_remove(s, k, strlen(k), DAXKV_FORCE) == 0, "remove under DMA");
        std::vector<char> other = pattern(5, 6u << 20);
        int stored = 0;
        for (int i = 0; i < 64; ++i) {
            std::string ok = "lease/other" + std::to_string(i);
            stored += daxkv_put(s, ok.data(), ok.size(), other.data(), other.size(), 0) == 0;
        }
        CHECK(stored == 64, "rewrote the arena (%d puts)", stored);
        gate.release();
        CHECK(rt->StreamSynchronize(st) == cu::kSuccess, "stream");
        CHECK(out.download(v.size()) == v, "the DMA read the removed entry's bytes intact");
    }
    daxkv_close(s);

    // Somebody else registered a page of the arena: registration fails with
    // -EBUSY, undoes its earlier chunks and leaves no sticky error.
    unlink(path.c_str());
    s = open_store(path, 256ull << 20, "8MiB", "32MiB", "4MiB");
    CHECK(s != nullptr, "reopen");
    if (s) {
        // Fill every slot, then keep a lease on the entry stored highest in
        // the arena: its page lies in the last registration chunk.
        std::vector<char> v(4096, 1);
        for (int i = 0; i < 40; ++i) {
            std::string k = "fill" + std::to_string(i);
            daxkv_put(s, k.data(), k.size(), v.data(), v.size(), 0);
        }
        daxkv_lease *l = nullptr;
        for (int i = 0; i < 40; ++i) {
            std::string k = "fill" + std::to_string(i);
            daxkv_lease *x = nullptr;
            if (daxkv_lease_acquire(s, k.data(), k.size(), &x) != 0)
                continue;
            if (!l || daxkv_lease_data(x) > daxkv_lease_data(l))
                std::swap(l, x);
            daxkv_lease_release(x);
        }
        CHECK(l != nullptr, "lease");
        if (!l)
            return 1;
        auto page = reinterpret_cast<uintptr_t>(daxkv_lease_data(l)) & ~uintptr_t(4095);
        cu::Error e = rt->HostRegister(reinterpret_cast<void *>(page), 4096, 0);
        CHECK(e == cu::kSuccess, "register one page ourselves: %d", e);
        rc = daxkv_cuda_register(s, 0);
        CHECK(rc == -EBUSY, "register over a foreign registration: %d", rc);
        CHECK(rt->GetLastError() == cu::kSuccess, "no sticky error after the rollback");
        CHECK(rt->HostUnregister(reinterpret_cast<void *>(page)) == cu::kSuccess,
              "our page is still ours");
        rc = daxkv_cuda_register(s, 0);
        CHECK(rc == 0, "register once the page is free: %d (earlier chunks were undone)", rc);
        daxkv_lease_release(l);
        round_trip(s, "after-rollback", st);
        daxkv_close(s);
    }
    unlink(path.c_str());

    // A memory arena.
    daxkv_config *c = nullptr;
    daxkv_config_new(&c);
    daxkv_config_set(c, "slot_bytes", "8MiB");
    daxkv_config_add_device(c, "mem:", 128ull << 20);
    s = nullptr;
    CHECK(daxkv_open(&s, c) == 0, "open mem:");
    daxkv_config_free(c);
    if (s) {
        CHECK(daxkv_cuda_register(s, 0) == 0, "register mem: arena");
        round_trip(s, "mem", st);
        daxkv_close(s);
    }
    rt->StreamDestroy(st);
    std::printf("%d passed, %d failed\n", passed, failed);
    return failed ? 1 : 0;
}
