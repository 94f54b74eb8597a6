// daxkv bench --gpu: GPU <-> DAX transfers through daxkv_put_batch_cuda and
// daxkv_get_batch_cuda, on the staged path and with the arena registered,
// against cudaMemcpy between pinned host memory and the GPU of the same size
// measured in the same run. Every round's bytes are checked on the way back.
//
// The command loads the CUDA runtime with the library's own loader
// (lib/cuda/runtime.cpp, compiled in), which finds the same libcudart the
// library uses; it needs cudaMalloc and cudaMemcpy for the reference.
#include <algorithm>
#include <cerrno>
#include <chrono>
#include <cstdlib>
#include <cstdio>
#include <cstring>
#include <optional>
#include <string>
#include <unistd.h>
#include <vector>

#include <nlohmann/json.hpp>

#include "bench_arena.hpp"
#include "bench_util.hpp"
#include "cli.hpp"
#include "cuda/runtime.hpp"
#include "daxkv.h"

namespace daxkv_cli {
namespace {

using Clock = std::chrono::steady_clock;
namespace cu = daxkv::cuda;

double seconds_since(Clock::time_point t0) {
    return std::chrono::duration<double>(Clock::now() - t0).count();
}

// Owns what the bench allocates from CUDA and the store.
struct GpuBench {
    const cu::Runtime *rt = nullptr;
    void *dev_src = nullptr, *dev_dst = nullptr, *pinned = nullptr, *stream = nullptr;
    daxkv_store *store = nullptr;
    std::string arena;
    bool keep = false;
    std::optional<RemovedIfInterrupted> interrupted; // unless keep
    ~GpuBench() {
        daxkv_close(store);
        if (!arena.empty() && !keep)
            unlink(arena.c_str());
        if (rt) {
            if (stream)
                rt->StreamDestroy(static_cast<cu::Stream>(stream));
            rt->Free(dev_src);
            rt->Free(dev_dst);
            if (pinned)
                rt->FreeHost(pinned);
        }
    }
};

int cuda_fail(const cu::Runtime &rt, const char *what, cu::Error e) {
    errorf("daxkv bench --gpu: %s\n", rt.describe(what, e).c_str());
    return 1;
}

int daxkv_fail(const char *what, int rc) {
    errorf("daxkv bench --gpu: %s failed: %s (%d): %s\n", what, daxkv_strerror(rc), rc,
           daxkv_errmsg());
    return 1;
}

} // namespace

int cmd_bench_gpu(const Args &a) {
    const uint64_t count = a.count("count", 64, 1, 100000);
    const uint64_t value_size = a.size("value-size", 4ull << 20, 1, 64ull << 30);
    const uint64_t rounds = a.count("rounds", 5, 1, 1000);
    uint64_t arena_size = a.size("size", 0, 1);
    const std::string verify = a.choice("verify", "recover", {"off", "recover", "read"});
    const std::string workers =
        a.has("workers") ? std::to_string(a.count("workers", 0, 1, 256)) : "";
    // Checked here for the form (and the units); the library checks the range.
    const std::string staging =
        a.has("staging-bytes") ? std::to_string(a.size("staging-bytes", 0, 1)) : "";
    const std::string reg_chunk =
        a.has("register-chunk") ? std::to_string(a.size("register-chunk", 0, 1)) : "";
    if (count * value_size > (64ull << 30))
        throw UsageError{"--count " + std::to_string(count) + " chunks of --value-size " +
                         a.get("value-size", "4MiB") +
                         " are more than the 64 GiB this benchmark handles"};
    if (!daxkv_cuda_available()) {
        errorf("daxkv bench --gpu: no GPU to measure: %s\n", daxkv_errmsg());
        return 1;
    }
    GpuBench b;
    b.rt = cu::runtime();
    if (!b.rt || b.rt->devices <= 0) {
        errorf("daxkv bench --gpu: %s\n", cu::unavailable_reason().c_str());
        return 1;
    }
    const cu::Runtime &rt = *b.rt;
    const bool json = a.has("json");
    const bool test_runtime = std::getenv(cu::kTestLibraryEnv) != nullptr;
    const uint64_t total = count * value_size;

    // The GPU's name: the first member of cudaDeviceProp (see cuda_decls.hpp);
    // the buffer is far larger than the struct of any release.
    std::string gpu = "unknown GPU";
    if (rt.GetDeviceProperties) {
        std::vector<char> prop(64 * 1024, 0);
        int dev = 0;
        if (rt.GetDevice(&dev) == cu::kSuccess &&
            rt.GetDeviceProperties(prop.data(), dev) == cu::kSuccess)
            gpu.assign(prop.data(), strnlen(prop.data(), 256));
        else
            rt.GetLastError();
    }

    cu::Error e;
    if ((e = rt.Malloc(&b.dev_src, total)) || (e = rt.Malloc(&b.dev_dst, total)))
        return cuda_fail(rt, "cudaMalloc", e);
    if ((e = rt.HostAlloc(&b.pinned, total, cu::kHostAllocDefault)))
        return cuda_fail(rt, "cudaHostAlloc", e);
    cu::Stream s = nullptr;
    if ((e = rt.StreamCreate(&s)))
        return cuda_fail(rt, "cudaStreamCreate", e);
    b.stream = s;
    char *pinned = static_cast<char *>(b.pinned);

    // Reference: cudaMemcpy between pinned host memory and the GPU.
    for (uint64_t i = 0; i < count; ++i)
        fill_pattern(pinned + i * value_size, value_size, i + 1);
    double ref_h2d = 1e30, ref_d2h = 1e30;
    for (uint64_t r = 0; r < rounds; ++r) {
        auto t0 = Clock::now();
        if ((e = rt.Memcpy(b.dev_src, pinned, total, cu::kMemcpyHostToDevice)))
            return cuda_fail(rt, "cudaMemcpy", e);
        ref_h2d = std::min(ref_h2d, seconds_since(t0));
        t0 = Clock::now();
        if ((e = rt.Memcpy(pinned, b.dev_src, total, cu::kMemcpyDeviceToHost)))
            return cuda_fail(rt, "cudaMemcpy", e);
        ref_d2h = std::min(ref_d2h, seconds_since(t0));
    }

    // The store: one arena file sized for the values.
    // b.arena (which b removes) is set only once the path is the benchmark's.
    const std::string arena = a.get("arena", access("/dev/shm", W_OK) == 0
                                                 ? "/dev/shm/daxkv-bench-gpu.arena"
                                                 : "/tmp/daxkv-bench-gpu.arena");
    b.keep = a.has("keep");
    if (!arena_size)
        arena_size = (count * (value_size + 4096) + (8ull << 20) + (2ull << 20) - 1) /
                     (2ull << 20) * (2ull << 20);
    daxkv_config *cfg = nullptr;
    int rc = daxkv_config_new(&cfg);
    if (rc)
        return daxkv_fail("config", rc);
    try {
        rc = set_config(cfg, {
                                 {"slot_bytes", nullptr, std::to_string(value_size)},
                                 {"on_mismatch", nullptr, "reformat"},
                                 {"verify", "verify", verify},
                                 {"workers", "workers", workers},
                                 {"cuda_staging_bytes", "staging-bytes", staging},
                                 {"cuda_register_chunk", "register-chunk", reg_chunk},
                             });
    } catch (...) {
        daxkv_config_free(cfg);
        throw;
    }
    if (rc) {
        daxkv_config_free(cfg);
        return daxkv_fail("configuration", rc);
    }
    if (const std::string why = make_way_for_bench_arena(arena); !why.empty()) {
        daxkv_config_free(cfg);
        errorf("daxkv bench --gpu: %s\n", why.c_str());
        return kExitFailed;
    }
    b.arena = arena;
    if (!b.keep)
        b.interrupted.emplace(arena);
    rc = daxkv_config_add_device(cfg, b.arena.c_str(), arena_size);
    if (!rc)
        rc = daxkv_open(&b.store, cfg);
    daxkv_config_free(cfg);
    if (rc)
        return daxkv_fail("open", rc);

    std::vector<std::string> keys(count);
    std::vector<daxkv_item> items(count);
    for (uint64_t i = 0; i < count; ++i)
        keys[i] = "bench/gpu/" + std::to_string(i);
    auto set_items = [&](void *base) {
        for (uint64_t i = 0; i < count; ++i) {
            items[i] = daxkv_item{};
            items[i].key = keys[i].data();
            items[i].key_len = keys[i].size();
            items[i].data = static_cast<char *>(base) + i * value_size;
            items[i].len = value_size;
        }
    };
    // Fill the source values on the GPU; warm the arena (first-touch faults).
    for (uint64_t i = 0; i < count; ++i)
        fill_pattern(pinned + i * value_size, value_size, i + 1);
    if ((e = rt.Memcpy(b.dev_src, pinned, total, cu::kMemcpyHostToDevice)))
        return cuda_fail(rt, "cudaMemcpy", e);
    set_items(b.dev_src);
    if ((rc = daxkv_put_batch_cuda(b.store, items.data(), count, s, 0)) !=
        static_cast<int>(count))
        return daxkv_fail("warm-up put_batch_cuda", batch_failure(rc, items));

    struct Result {
        double put = 1e30, get = 1e30;
        uint64_t verified = 0, mismatched = 0;
        bool ran = false;
        std::string skipped;
    } staged, direct;
    auto measure = [&](Result &res) -> int {
        for (uint64_t r = 0; r < rounds; ++r) {
            set_items(b.dev_src);
            daxkv_remove_batch(b.store, items.data(), count, DAXKV_FORCE);
            auto t0 = Clock::now();
            rc = daxkv_put_batch_cuda(b.store, items.data(), count, s, 0);
            double t = seconds_since(t0);
            if (rc != static_cast<int>(count))
                return daxkv_fail("put_batch_cuda", batch_failure(rc, items));
            res.put = std::min(res.put, t);

            set_items(b.dev_dst);
            t0 = Clock::now();
            rc = daxkv_get_batch_cuda(b.store, items.data(), count, s, 0);
            cu::Error se = rt.StreamSynchronize(s);
            t = seconds_since(t0);
            if (rc != static_cast<int>(count))
                return daxkv_fail("get_batch_cuda", batch_failure(rc, items));
            if (se)
                return cuda_fail(rt, "cudaStreamSynchronize", se);
            res.get = std::min(res.get, t);

            // Check: the bytes that came back from the arena are the source's.
            if ((e = rt.Memcpy(pinned, b.dev_dst, total, cu::kMemcpyDeviceToHost)))
                return cuda_fail(rt, "cudaMemcpy", e);
            std::vector<char> want(value_size);
            res.verified = res.mismatched = 0;
            for (uint64_t i = 0; i < count; ++i) {
                fill_pattern(want.data(), value_size, i + 1);
                bool ok = std::memcmp(pinned + i * value_size, want.data(), value_size) == 0;
                ok ? ++res.verified : ++res.mismatched;
            }
            // Clear the destination, so the next round cannot pass on stale bytes.
            std::memset(pinned, 0, total);
            if ((e = rt.Memcpy(b.dev_dst, pinned, total, cu::kMemcpyHostToDevice)))
                return cuda_fail(rt, "cudaMemcpy", e);
        }
        res.ran = true;
        return 0;
    };
    if ((rc = measure(staged)))
        return rc;
    rc = daxkv_cuda_register(b.store, 0);
    if (rc) {
        direct.skipped = daxkv_errmsg();
    } else if ((rc = measure(direct))) {
        return rc;
    }

    const double gb = static_cast<double>(total) / 1e9;
    const double h2d = gb / ref_h2d, d2h = gb / ref_d2h;
    auto gbs = [&](double t) { return gb / t; };
    if (json) {
        auto row = [&](const Result &r) {
            if (!r.ran)
                return nlohmann::json{{"skipped", r.skipped}};
            return nlohmann::json{{"dax_to_gpu_gb_per_s", gbs(r.get)},
                                  {"gpu_to_dax_gb_per_s", gbs(r.put)},
                                  {"dax_to_gpu_vs_pinned", gbs(r.get) / h2d},
                                  {"gpu_to_dax_vs_pinned", gbs(r.put) / d2h},
                                  {"verified_chunks", r.verified},
                                  {"mismatched_chunks", r.mismatched}};
        };
        nlohmann::json j = {{"gpu", gpu},
                            {"cuda_runtime", rt.path},
                            {"cuda_runtime_version", rt.version},
                            {"test_runtime", test_runtime},
                            {"chunks", count},
                            {"value_bytes", value_size},
                            {"total_bytes", total},
                            {"rounds", rounds},
                            {"pinned_h2d_gb_per_s", h2d},
                            {"pinned_d2h_gb_per_s", d2h},
                            {"staged", row(staged)},
                            {"registered", row(direct)}};
        std::printf("%s\n", j.dump(2).c_str());
    } else {
        std::printf("daxkv bench --gpu: %s, %s (version %d), %llu chunks x %.2f MiB "
                    "(%.2f GiB), arena %s, best of %llu rounds\n",
                    gpu.c_str(), rt.path.c_str(), rt.version, (unsigned long long)count,
                    value_size / 1048576.0, total / 1073741824.0, b.arena.c_str(),
                    (unsigned long long)rounds);
        if (test_runtime)
            std::printf("  (%s names a test runtime: these are not GPU figures)\n",
                        cu::kTestLibraryEnv);
        std::printf("  %-44s %9s %12s\n", "operation", "GB/s", "x reference");
        std::printf("  %-44s %9.2f %12.2f\n", "cudaMemcpy pinned host -> GPU (reference)", h2d,
                    1.0);
        std::printf("  %-44s %9.2f %12.2f\n", "cudaMemcpy GPU -> pinned host (reference)", d2h,
                    1.0);
        auto rows = [&](const char *name, const Result &r) {
            if (!r.ran) {
                std::printf("  %s: not measured: %s\n", name, r.skipped.c_str());
                return;
            }
            std::printf("  %-44s %9.2f %12.2f\n",
                        (std::string("DAX -> GPU, ") + name + " (get_batch_cuda)").c_str(),
                        gbs(r.get), gbs(r.get) / h2d);
            std::printf("  %-44s %9.2f %12.2f\n",
                        (std::string("GPU -> DAX, ") + name + " (put_batch_cuda)").c_str(),
                        gbs(r.put), gbs(r.put) / d2h);
            std::printf("  %s: verified %llu/%llu chunks byte-exact\n", name,
                        (unsigned long long)r.verified, (unsigned long long)count);
        };
        rows("staged", staged);
        rows("registered", direct);
    }
    return staged.mismatched || direct.mismatched ? 1 : 0;
}

} // namespace daxkv_cli
