// GPU transfers without a GPU: daxkv_cuda_available / register / unregister
// and daxkv_get_batch_cuda / daxkv_put_batch_cuda against the fake CUDA
// runtime of tests/fakecuda (loaded through DAXKV_TEST_CUDART, the same
// loading code as a real libcudart), and with no runtime at all.
//
// Bad inputs tried here, each with its expected code:
//   no CUDA runtime (DAXKV_TEST_CUDART names a missing file): available 0,
//     register / unregister / get / put                          -> -ENOTSUP
//   a runtime without GPU (cudaGetDeviceCount fails)             -> available 0, -ENODEV
//   a real libcudart without a usable GPU (skipped where there is
//     none, or where it sees a GPU): every GPU call              -> -ENODEV
//   a GPU that cannot register host memory                       -> register -ENOTSUP
//   NULL store                                                   -> -EINVAL (every call)
//   unknown flags: register 0x1, get DAXKV_REPLACE, put DAXKV_PREFIX -> -EINVAL
//   NULL items with n > 0                                        -> -EINVAL
//   per item: NULL key, key length 0 and 513, NULL data with a
//     length, NULL meta with a length                            -> status -EINVAL
//   per item: value larger than slot_bytes, meta > meta_bytes    -> status -E2BIG
//   per item: destination or metadata buffer too small           -> status -ENOBUFS, needed size reported
//   register again with other flags                              -> -EBUSY
//   register with part of the arena registered by the application -> -EBUSY,
//     only this call's chunks unregistered
//   a first register racing the unmap of a device removal        -> only the
//     devices that stay are registered
//   a GPU put as soon as a device added to a registered pool takes
//     entries                                                    -> copied into
//     registered memory
//   a stream never created, a destroyed stream, a host pointer as the
//     device side, a device range past its allocation            -> item -EIO
//   staging buffers refused with cudaErrorDevicesUnavailable     -> -EIO (not -ENOMEM)
//   unregister when not registered                               -> -ENOENT
//   unregister after a device add whose re-registration failed   -> -ENOENT, with the cause
//   a GPU batch refused for want of a runtime                    -> not in daxkv_stats.batches
//   any call after daxkv_shutdown                                -> -ESHUTDOWN
//   config cuda_register_chunk 0, 4095, 4097, 65GiB, "abc";
//     cuda_staging_bytes 0, 1000, 1536KiB, 2GiB                  -> -EINVAL
//   a put batch that claims nothing (all keys exist, all items bad, n = 0)
//     with cudaEventSynchronize failing -> 0, no CUDA call, no sticky error
// Injected failures: the 3rd registration chunk, the Nth async copy (put and
// get, both paths), cudaLaunchHostFunc, cudaHostAlloc, cudaEventSynchronize,
// cudaStreamSynchronize; and each CUDA call of a register and of a put and
// a get batch in turn (fail_call_at), values of 0, 1, unaligned, staging
// size +-1 and over two staging buffers.
#include <gtest/gtest.h>

#include <atomic>
#include <cerrno>
#include <chrono>
#include <cstdlib>
#include <cstring>
#include <dirent.h>
#include <dlfcn.h>
#include <future>
#include <string>
#include <thread>
#include <vector>

#include "capi/handles.hpp"
#include "cuda/runtime.hpp"
#include "alloc_failure.hpp"
#include "fakecuda.h"
#include "helpers.hpp"

using namespace daxkv_test;

namespace {

// Under ThreadSanitizer a batch over megabytes of values costs two hundred
// times what it costs elsewhere (the test's own byte-by-byte patterns and
// comparisons are instrumented too), and each sweep over every CUDA call
// of a batch took a minute on two cores. That build is there to find
// races, which a sample of the failure points shows as well as every one:
// there the sweep fails one call in kCallSweepStride (a prime, so the
// sample does not fall in step with the per-value calls). The plain and
// AddressSanitizer builds fail every one.
#if defined(__SANITIZE_THREAD__)
constexpr long kCallSweepStride = 5;
#else
constexpr long kCallSweepStride = 1;
#endif

// The fake runtime: built by the suite at FAKECUDART_PATH, or where
// DAXKV_TEST_FAKECUDART says (the QEMU rig copies it into its guest).
const char *fake_path() {
    const char *p = std::getenv("DAXKV_TEST_FAKECUDART");
    return p && *p ? p : FAKECUDART_PATH;
}

// The fake runtime's control functions and the few CUDA calls a test makes
// itself (device buffers, streams), from the library libdaxkv loaded.
struct FakeCuda {
    void *h = nullptr;
    fakecuda_reset_fn reset = nullptr;
    fakecuda_set_fn set = nullptr;
    fakecuda_get_fn get = nullptr;
    fakecuda_log_fn log = nullptr;
    fakecuda_violation_fn violation = nullptr;
    int (*malloc)(void **, size_t) = nullptr;
    int (*free)(void *) = nullptr;
    int (*stream_create)(void **) = nullptr;
    int (*stream_destroy)(void *) = nullptr;
    int (*stream_sync)(void *) = nullptr;

    bool open() {
        h = dlopen(fake_path(), RTLD_NOW | RTLD_LOCAL);
        if (!h)
            return false;
        reset = reinterpret_cast<fakecuda_reset_fn>(dlsym(h, "fakecuda_reset"));
        set = reinterpret_cast<fakecuda_set_fn>(dlsym(h, "fakecuda_set"));
        get = reinterpret_cast<fakecuda_get_fn>(dlsym(h, "fakecuda_get"));
        log = reinterpret_cast<fakecuda_log_fn>(dlsym(h, "fakecuda_log"));
        violation = reinterpret_cast<fakecuda_violation_fn>(dlsym(h, "fakecuda_violation"));
        malloc = reinterpret_cast<int (*)(void **, size_t)>(dlsym(h, "cudaMalloc"));
        free = reinterpret_cast<int (*)(void *)>(dlsym(h, "cudaFree"));
        stream_create = reinterpret_cast<int (*)(void **)>(dlsym(h, "cudaStreamCreate"));
        stream_destroy = reinterpret_cast<int (*)(void *)>(dlsym(h, "cudaStreamDestroy"));
        stream_sync = reinterpret_cast<int (*)(void *)>(dlsym(h, "cudaStreamSynchronize"));
        return reset && set && get && log && violation && malloc && free && stream_create &&
               stream_destroy && stream_sync;
    }
    std::vector<fakecuda_call> calls() const {
        std::vector<fakecuda_call> v(log(nullptr, 0));
        v.resize(log(v.data(), v.size()));
        return v;
    }
};

FakeCuda &fake() {
    static FakeCuda f;
    return f;
}

// Select the runtime for the next daxkv CUDA call.
void use_runtime(const char *path) {
    setenv(daxkv::cuda::kTestLibraryEnv, path, 1);
    daxkv::cuda::reload_for_testing();
}

// A buffer in the fake's "device" memory.
class DevBuf {
public:
    explicit DevBuf(size_t n) : n_(n) {
        void *p = nullptr;
        EXPECT_EQ(fake().malloc(&p, n), 0);
        p_ = static_cast<uint8_t *>(p);
    }
    ~DevBuf() { fake().free(p_); }
    DevBuf(const DevBuf &) = delete;
    DevBuf &operator=(const DevBuf &) = delete;
    uint8_t *data() const { return p_; }
    size_t size() const { return n_; }

private:
    uint8_t *p_;
    size_t n_;
};

class Cuda : public StoreFixture {
protected:
    void SetUp() override {
        ASSERT_TRUE(fake().open() || fake().h) << dlerror();
        ASSERT_TRUE(fake().reset) << "fake runtime lacks its control functions";
        use_runtime(fake_path());
        fake().reset();
        ASSERT_EQ(fake().stream_create(&stream_), 0);
    }
    void TearDown() override {
        store_.reset(); // waits for every transfer, unregisters
        if (!fake().reset || !stream_)
            return; // SetUp failed: the fake runtime is not there to check
        fake().stream_sync(stream_);
        fake().stream_destroy(stream_);
        EXPECT_EQ(fake().get("violations"), 0) << fake().violation();
        EXPECT_EQ(fake().get("registered_ranges"), 0);
        EXPECT_EQ(fake().get("host_allocs"), 0) << "staging buffers outlived the store";
        fake().reset();
        unsetenv(daxkv::cuda::kTestLibraryEnv);
        daxkv::cuda::reload_for_testing();
    }

    // n values of the given lengths on the device, keys "g<i>".
    void make_values(const std::vector<size_t> &lens) {
        keys_.clear();
        src_.clear();
        dev_.clear();
        for (size_t i = 0; i < lens.size(); ++i) {
            keys_.push_back("g" + std::to_string(i));
            src_.push_back(pattern(1000 + i, lens[i]));
            dev_.emplace_back(new DevBuf(std::max<size_t>(lens[i], 1)));
            if (lens[i])
                std::memcpy(dev_.back()->data(), src_.back().data(), lens[i]);
        }
    }
    std::vector<daxkv_item> put_items() {
        std::vector<daxkv_item> items(keys_.size());
        for (size_t i = 0; i < keys_.size(); ++i)
            items[i] = daxkv_item{keys_[i].data(), keys_[i].size(), dev_[i]->data(),
                                  src_[i].size(), nullptr, 0, 12345};
        return items;
    }
    // Fresh device destinations of cap bytes each.
    std::vector<daxkv_item> get_items(size_t cap) {
        out_.clear();
        std::vector<daxkv_item> items(keys_.size());
        for (size_t i = 0; i < keys_.size(); ++i) {
            out_.emplace_back(new DevBuf(std::max<size_t>(cap, 1)));
            std::memset(out_.back()->data(), 0xEE, out_.back()->size());
            items[i] = daxkv_item{keys_[i].data(), keys_[i].size(), out_[i]->data(), cap,
                                  nullptr, 0, 12345};
        }
        return items;
    }
    bool out_matches(size_t i) const {
        return src_[i].empty() ||
               std::memcmp(out_[i]->data(), src_[i].data(), src_[i].size()) == 0;
    }
    void sync() { ASSERT_EQ(fake().stream_sync(stream_), 0); }
    long calls(const std::string &fn) { return fake().get(("calls:" + fn).c_str()); }

    // A store of `slots` slots of `slot` bytes with small staging buffers and
    // registration chunks, so that little data crosses many of both.
    void open_cuda(uint64_t slot, uint32_t slots, const char *chunk = "64KiB",
                   const char *verify = "recover") {
        StoreSpec spec(slot, slots);
        spec.set("cuda_staging_bytes", "1MiB")
            .set("cuda_register_chunk", chunk)
            .set("verify", verify);
        open(spec);
    }

    // A store of 4 KiB slots over path_ and `second` (arena bytes each),
    // with hotplug.
    void open_pool_of_two(const std::string &second, uint64_t arena) {
        ConfigPtr cfg;
        ASSERT_EQ(make_config(&cfg, path_,
                              StoreSpec{4096, 8}.set("hotplug", "1").set("cuda_staging_bytes",
                                                                         "1MiB")),
                  0);
        ASSERT_EQ(daxkv_config_add_device(cfg.get(), second.c_str(), arena), 0);
        daxkv_store *raw = nullptr;
        ASSERT_EQ(daxkv_open(&raw, cfg.get()), 0) << daxkv_errmsg();
        store_.reset(raw);
        spec_ = StoreSpec{4096, 8};
    }

    void *stream_ = nullptr;
    std::vector<std::string> keys_;
    std::vector<std::vector<uint8_t>> src_;
    std::vector<std::unique_ptr<DevBuf>> dev_, out_;
};

// ---------------------------------------------------------------------------
// Without a runtime, without a GPU

TEST_F(Cuda, WithoutRuntimeEverythingElseWorksAndCudaCallsSayENOTSUP) {
    use_runtime("/nonexistent/libcudart.so.12");
    EXPECT_EQ(daxkv_cuda_available(), 0);
    EXPECT_TRUE(contains_text(daxkv_errmsg(), "no CUDA runtime could be loaded"))
        << daxkv_errmsg();
    open(StoreSpec(4096, 8));
    std::vector<uint8_t> v = pattern(1, 4096);
    EXPECT_EQ(put("k", v), 0);
    EXPECT_EQ(value("k"), v);
    EXPECT_EQ(daxkv_cuda_register(s(), 0), -ENOTSUP);
    EXPECT_TRUE(contains_text(daxkv_errmsg(), "CUDA is not available")) << daxkv_errmsg();
    EXPECT_EQ(daxkv_cuda_unregister(s()), -ENOTSUP);
    std::string k = "k";
    char buf[16];
    daxkv_item it{k.data(), k.size(), buf, sizeof buf, nullptr, 0, 0};
    EXPECT_EQ(daxkv_get_batch_cuda(s(), &it, 1, nullptr, 0), -ENOTSUP);
    EXPECT_EQ(daxkv_put_batch_cuda(s(), &it, 1, nullptr, 0), -ENOTSUP);
    EXPECT_EQ(daxkv_get_batch_cuda(s(), nullptr, 0, nullptr, 0), -ENOTSUP);
    EXPECT_EQ(value("k"), v); // the store is untouched
    EXPECT_EQ(fake().get("calls:cudaGetDeviceCount"), 0); // the fake was never asked
}

TEST_F(Cuda, RuntimeWithoutGpuSaysENODEVAndClearsTheStickyError) {
    fake().set("devices", 0);
    use_runtime(fake_path());
    EXPECT_EQ(daxkv_cuda_available(), 0);
    EXPECT_TRUE(contains_text(daxkv_errmsg(), "no GPU is usable")) << daxkv_errmsg();
    EXPECT_TRUE(contains_text(daxkv_errmsg(), "no CUDA-capable device")) << daxkv_errmsg();
    EXPECT_EQ(fake().get("sticky_error"), 0);
    open(StoreSpec(4096, 4));
    EXPECT_EQ(daxkv_cuda_register(s(), 0), -ENODEV);
    EXPECT_EQ(daxkv_get_batch_cuda(s(), nullptr, 0, stream_, 0), -ENODEV);
}

// A real libcudart on a host without a usable GPU (no driver, or no
// device): where one can be loaded (DAXKV_TEST_REAL_CUDART, else the usual
// sonames on the loader's path or in /usr/local/cuda), every GPU call says
// -ENODEV with the runtime's own reason, repeated calls open nothing more
// (file descriptors), and the rest of the API keeps working.
// Bad inputs: register with and without DAXKV_CUDA_MAPPED, unregister, get
// and put of one item with a NULL stream and of none, each twice.
TEST_F(Cuda, RealRuntimeWithoutGpuSaysENODEVAndTheStoreKeepsWorking) {
    std::vector<std::string> names;
    if (const char *e = std::getenv("DAXKV_TEST_REAL_CUDART"); e && *e)
        names.push_back(e);
    for (const char *n : {"libcudart.so.13", "libcudart.so.12", "/usr/local/cuda/lib64/libcudart.so.13",
                          "/usr/local/cuda/lib64/libcudart.so.12"})
        names.push_back(n);
    std::string found;
    for (const auto &n : names)
        if (void *h = dlopen(n.c_str(), RTLD_NOW | RTLD_LOCAL)) {
            int (*count)(int *) = reinterpret_cast<int (*)(int *)>(dlsym(h, "cudaGetDeviceCount"));
            int devices = 0;
            if (count && count(&devices) == 0 && devices > 0)
                GTEST_SKIP() << n << " sees a GPU: tests/gpu covers this host";
            found = n;
            break;
        }
    if (found.empty())
        GTEST_SKIP() << "no real libcudart here (set DAXKV_TEST_REAL_CUDART to name one)";
    use_runtime(found.c_str());
    EXPECT_EQ(daxkv_cuda_available(), 0);
    const std::string why = daxkv_errmsg();
    EXPECT_TRUE(contains_text(why.c_str(), "no GPU is usable")) << why;
    EXPECT_TRUE(contains_text(why.c_str(), "cudaGetDeviceCount")) << why;
    open(StoreSpec(4096, 8));
    std::vector<uint8_t> v = pattern(1, 4096);
    ASSERT_EQ(put("k", v), 0);
    std::string k = "k", k2 = "k2";
    char buf[4096];
    auto fds = [] {
        size_t n = 0;
        if (DIR *d = opendir("/proc/self/fd")) {
            while (readdir(d))
                ++n;
            closedir(d);
        }
        return n;
    };
    size_t before = 0;
    for (int round = 0; round < 2; ++round) {
        EXPECT_EQ(daxkv_cuda_register(s(), 0), -ENODEV);
        EXPECT_TRUE(contains_text(daxkv_errmsg(), "CUDA is not usable")) << daxkv_errmsg();
        EXPECT_TRUE(contains_text(daxkv_errmsg(), "no GPU is usable")) << daxkv_errmsg();
        EXPECT_EQ(daxkv_cuda_register(s(), DAXKV_CUDA_MAPPED), -ENODEV);
        EXPECT_EQ(daxkv_cuda_unregister(s()), -ENODEV);
        daxkv_item g{k.data(), k.size(), buf, sizeof buf, nullptr, 0, 7};
        daxkv_item p{k2.data(), k2.size(), buf, sizeof buf, nullptr, 0, 7};
        EXPECT_EQ(daxkv_get_batch_cuda(s(), &g, 1, nullptr, 0), -ENODEV);
        EXPECT_EQ(daxkv_put_batch_cuda(s(), &p, 1, nullptr, 0), -ENODEV);
        EXPECT_EQ(daxkv_get_batch_cuda(s(), nullptr, 0, nullptr, 0), -ENODEV);
        EXPECT_EQ(daxkv_put_batch_cuda(s(), nullptr, 0, nullptr, 0), -ENODEV);
        EXPECT_EQ(g.status, -ENODEV) << "a call that fails whole says so for every item";
        EXPECT_EQ(p.status, -ENODEV) << "a call that fails whole says so for every item";
        EXPECT_EQ(daxkv_cuda_available(), 0);
        if (round == 0)
            before = fds();
        else
            EXPECT_EQ(fds(), before) << "a call without a GPU left a file descriptor open";
    }
    EXPECT_EQ(value("k"), v);
    EXPECT_EQ(contains("k2"), 0);
    EXPECT_EQ(put("k2", v), 0);
    EXPECT_EQ(value("k2"), v);
}

TEST_F(Cuda, AvailableWithTheFakeRuntime) {
    EXPECT_EQ(daxkv_cuda_available(), 1) << daxkv_errmsg();
    const daxkv::cuda::Runtime *rt = daxkv::cuda::runtime();
    ASSERT_NE(rt, nullptr);
    EXPECT_EQ(rt->path, fake_path());
    EXPECT_EQ(rt->version, 12080);
    EXPECT_EQ(rt->devices, 1);
}

// ---------------------------------------------------------------------------
// Bad inputs

TEST_F(Cuda, BadArgumentsAndConfiguration) {
    open_cuda(64 * 1024, 8);
    EXPECT_EQ(daxkv_cuda_register(nullptr, 0), -EINVAL);
    EXPECT_EQ(daxkv_cuda_unregister(nullptr), -EINVAL);
    EXPECT_EQ(daxkv_get_batch_cuda(nullptr, nullptr, 0, stream_, 0), -EINVAL);
    EXPECT_EQ(daxkv_put_batch_cuda(nullptr, nullptr, 0, stream_, 0), -EINVAL);
    EXPECT_EQ(daxkv_cuda_register(s(), 0x1), -EINVAL);
    EXPECT_TRUE(contains_text(daxkv_errmsg(), "unknown flags")) << daxkv_errmsg();
    EXPECT_EQ(daxkv_get_batch_cuda(s(), nullptr, 0, stream_, DAXKV_REPLACE), -EINVAL);
    EXPECT_EQ(daxkv_put_batch_cuda(s(), nullptr, 0, stream_, DAXKV_PREFIX), -EINVAL);
    EXPECT_EQ(daxkv_get_batch_cuda(s(), nullptr, 3, stream_, 0), -EINVAL);
    EXPECT_EQ(daxkv_put_batch_cuda(s(), nullptr, 3, stream_, 0), -EINVAL);
    EXPECT_EQ(daxkv_cuda_unregister(s()), -ENOENT);

    DevBuf d(128 * 1024);
    std::string big(513, 'k'), ok = "ok";
    std::vector<uint8_t> meta(300);
    std::vector<daxkv_item> items = {
        {nullptr, 3, d.data(), 16, nullptr, 0, 0},                 // NULL key
        {ok.data(), 0, d.data(), 16, nullptr, 0, 0},               // key length 0
        {big.data(), big.size(), d.data(), 16, nullptr, 0, 0},     // key length 513
        {ok.data(), ok.size(), nullptr, 16, nullptr, 0, 0},        // NULL data
        {ok.data(), ok.size(), d.data(), 16, nullptr, 8, 0},       // NULL meta
        {ok.data(), ok.size(), d.data(), 65 * 1024, nullptr, 0, 0}, // > slot_bytes
        {ok.data(), ok.size(), d.data(), 16, meta.data(), 300, 0}, // meta > meta_bytes
    };
    const int want[] = {-EINVAL, -EINVAL, -EINVAL, -EINVAL, -EINVAL, -E2BIG, -E2BIG};
    EXPECT_EQ(daxkv_put_batch_cuda(s(), items.data(), items.size(), stream_, 0), 0);
    for (size_t i = 0; i < items.size(); ++i)
        EXPECT_EQ(items[i].status, want[i]) << "item " << i;
    EXPECT_EQ(stats().slots_inflight, 0u);
    EXPECT_EQ(stats().entries, 0u);

    // Destination and metadata buffers too small: the sizes needed come back.
    std::vector<uint8_t> v = pattern(2, 5000), m8(8, 7);
    daxkv_item p{ok.data(), ok.size(), v.data(), v.size(), m8.data(), m8.size(), 0};
    ASSERT_EQ(daxkv_put_batch(s(), &p, 1, 0), 1);
    uint8_t small_meta[4];
    daxkv_item g[2] = {{ok.data(), ok.size(), d.data(), 4999, nullptr, 0, 0},
                       {ok.data(), ok.size(), d.data(), 5000, small_meta, 4, 0}};
    EXPECT_EQ(daxkv_get_batch_cuda(s(), g, 2, stream_, 0), 0);
    EXPECT_EQ(g[0].status, -ENOBUFS);
    EXPECT_EQ(g[0].len, 5000u);
    EXPECT_EQ(g[1].status, -ENOBUFS);
    EXPECT_EQ(g[1].meta_len, 8u);
    EXPECT_EQ(stats().leases_active, 0u);

    // Configuration keys.
    daxkv_config *c = nullptr;
    ASSERT_EQ(daxkv_config_new(&c), 0);
    ConfigPtr cfg(c);
    for (const char *bad : {"0", "4095", "4097", "65GiB", "abc"})
        EXPECT_EQ(daxkv_config_set(c, "cuda_register_chunk", bad), -EINVAL) << bad;
    for (const char *bad : {"0", "1000", "1536KiB", "2GiB"})
        EXPECT_EQ(daxkv_config_set(c, "cuda_staging_bytes", bad), -EINVAL) << bad;
    EXPECT_TRUE(contains_text(daxkv_errmsg(), "cuda_staging_bytes")) << daxkv_errmsg();
    EXPECT_EQ(daxkv_config_set(c, "cuda_register_chunk", "64GiB"), 0);
    EXPECT_EQ(daxkv_config_set(c, "cuda_staging_bytes", "32MiB"), 0);
}

TEST_F(Cuda, CallsAfterShutdownSayESHUTDOWN) {
    open_cuda(64 * 1024, 4);
    ASSERT_EQ(daxkv_shutdown(s()), 0);
    EXPECT_EQ(daxkv_cuda_register(s(), 0), -ESHUTDOWN);
    EXPECT_EQ(daxkv_cuda_unregister(s()), -ESHUTDOWN);
    EXPECT_EQ(daxkv_get_batch_cuda(s(), nullptr, 0, stream_, 0), -ESHUTDOWN);
    EXPECT_EQ(daxkv_put_batch_cuda(s(), nullptr, 0, stream_, 0), -ESHUTDOWN);
}

// ---------------------------------------------------------------------------
// Registration

TEST_F(Cuda, RegistersTheArenaInChunksAndUnregistersAtClose) {
    open_cuda(64 * 1024, 16, "256KiB");
    ASSERT_EQ(daxkv_cuda_register(s(), 0), 0) << daxkv_errmsg();
    uint64_t total = 0;
    size_t n = 0;
    for (const auto &c : fake().calls())
        if (std::string(c.fn) == "cudaHostRegister") {
            EXPECT_EQ(c.result, 0);
            EXPECT_LE(c.len, 256u * 1024);
            EXPECT_EQ(c.kind, 0) << "cudaHostRegisterDefault expected";
            total += c.len;
            ++n;
        }
    EXPECT_EQ(total, spec_arena_bytes(spec_));
    EXPECT_EQ(n, (total + 256 * 1024 - 1) / (256 * 1024));
    EXPECT_GE(n, 5u);
    EXPECT_EQ(fake().get("registered_ranges"), static_cast<long>(n));
    EXPECT_EQ(fake().get("max_register_bytes"), 256 * 1024);

    // Again with the same flags: nothing to do; other flags: -EBUSY.
    EXPECT_EQ(daxkv_cuda_register(s(), 0), 0);
    EXPECT_EQ(calls("cudaHostRegister"), static_cast<long>(n));
    EXPECT_EQ(daxkv_cuda_register(s(), DAXKV_CUDA_MAPPED), -EBUSY);
    EXPECT_TRUE(contains_text(daxkv_errmsg(), "already registered")) << daxkv_errmsg();

    // Unregister, then register portable|mapped.
    EXPECT_EQ(daxkv_cuda_unregister(s()), 0);
    EXPECT_EQ(fake().get("registered_ranges"), 0);
    EXPECT_EQ(daxkv_cuda_unregister(s()), -ENOENT);
    EXPECT_EQ(daxkv_cuda_register(s(), DAXKV_CUDA_MAPPED), 0);
    auto log = fake().calls();
    EXPECT_EQ(log.back().kind, 0x1 | 0x2) << "Portable|Mapped expected";
    EXPECT_EQ(fake().get("registered_ranges"), static_cast<long>(n));

    // Closing the store unregisters every chunk.
    store_.reset();
    EXPECT_EQ(fake().get("registered_ranges"), 0);
    EXPECT_EQ(calls("cudaHostUnregister"), static_cast<long>(2 * n));
}

// Hotplug and registration: a device leaving the pool is unregistered
// before it is unmapped (the others are registered again), and a device
// added to a registered pool is registered too, so every direct copy reads
// registered memory.
TEST_F(Cuda, DeviceRemoveAndAddKeepTheRegistrationExact) {
    const uint64_t arena = arena_bytes_for(4096, 8, 256);
    const std::string second = dir_.file("second"), third = dir_.file("third");
    open_pool_of_two(second, arena);
    std::vector<std::vector<uint8_t>> vals;
    for (int i = 0; i < 6; ++i) {
        vals.push_back(pattern(900 + i, 1000 + i));
        ASSERT_EQ(put(key_of(i), vals.back()), 0);
    }
    ASSERT_EQ(daxkv_cuda_register(s(), 0), 0) << daxkv_errmsg();
    EXPECT_EQ(fake().get("registered_ranges"), 2);
    EXPECT_EQ(fake().get("registered_bytes"), static_cast<long>(2 * arena));

    auto read_all_on_gpu = [&] {
        DevBuf out(6 * 4096);
        std::vector<std::string> ks;
        for (int i = 0; i < 6; ++i)
            ks.push_back(key_of(i)); // all first: a reallocation moves short strings
        std::vector<daxkv_item> items(6);
        for (int i = 0; i < 6; ++i) {
            items[i] = daxkv_item{ks[i].data(), ks[i].size(), out.data() + i * 4096, 4096,
                                  nullptr, 0, 0};
        }
        ASSERT_EQ(daxkv_get_batch_cuda(s(), items.data(), items.size(), stream_, 0), 6)
            << daxkv_errmsg();
        ASSERT_EQ(fake().stream_sync(stream_), 0);
        for (int i = 0; i < 6; ++i) {
            ASSERT_EQ(items[i].len, vals[i].size());
            EXPECT_EQ(0, std::memcmp(out.data() + i * 4096, vals[i].data(), vals[i].size()))
                << "key " << i;
        }
    };

    daxkv_hotplug_result r;
    std::memset(&r, 0, sizeof r);
    r.struct_size = sizeof r;
    ASSERT_EQ(daxkv_device_remove(s(), path_.c_str(), DAXKV_MIGRATE, 0, &r), 0) << daxkv_errmsg();
    EXPECT_EQ(fake().get("registered_ranges"), 1);
    EXPECT_EQ(fake().get("registered_bytes"), static_cast<long>(arena));
    read_all_on_gpu();
    EXPECT_EQ(fake().get("pageable_copies"), 0) << "a direct copy read unregistered memory";

    ASSERT_EQ(daxkv_device_add(s(), third.c_str(), arena), 0) << daxkv_errmsg();
    EXPECT_EQ(fake().get("registered_ranges"), 2);
    EXPECT_EQ(fake().get("registered_bytes"), static_cast<long>(2 * arena));
    // New entries may land on the new device: they are read directly too.
    for (int i = 6; i < 10; ++i)
        ASSERT_EQ(put(key_of(i), pattern(900 + i, 500)), 0);
    read_all_on_gpu();
    EXPECT_EQ(fake().get("pageable_copies"), 0);
    // Unregistered at close as before (TearDown checks violations and ranges).
}

// A GPU transfer made as soon as a device added to a registered pool takes
// new entries (the hotplug hook's phase 4, on the adding thread): the new,
// empty device is the least used, so the put's value goes there, and the
// direct copy must find it registered. It found the registration of the
// devices before the add, and copied from pageable memory, when the device
// took entries before its registration was redone.
TEST_F(Cuda, ADeviceAddedTakesEntriesOnlyOnceItIsRegistered) {
    const uint64_t arena = arena_bytes_for(4096, 8, 256);
    const std::string second = dir_.file("second"), third = dir_.file("third");
    open_pool_of_two(second, arena);
    for (int i = 0; i < 6; ++i)
        ASSERT_EQ(put(key_of(i), pattern(800 + i, 1000)), 0);
    ASSERT_EQ(daxkv_cuda_register(s(), 0), 0) << daxkv_errmsg();
    make_values({3000});
    std::vector<daxkv_item> items = put_items();
    int stored = -100;
    long pageable = -1;
    store_->store->hotplug().set_hook([&](int phase) {
        if (phase != 4)
            return;
        stored = daxkv_put_batch_cuda(s(), items.data(), items.size(), stream_, 0);
        pageable = fake().get("pageable_copies");
    });
    ASSERT_EQ(daxkv_device_add(s(), third.c_str(), arena), 0) << daxkv_errmsg();
    store_->store->hotplug().set_hook(nullptr);
    EXPECT_EQ(stored, 1);
    EXPECT_EQ(pageable, 0) << "a direct copy wrote into unregistered memory";
    EXPECT_EQ(value(keys_[0]), src_[0]);
    EXPECT_EQ(fake().get("registered_ranges"), 3);
}

// Out of memory at any allocation of a device add, then of a removal, in a
// registered pool: each call either fails with the pool and the
// registration as they were, or changes the pool with the registration
// redone (or dropped, which unregister explains); nothing the fake sees is
// unsafe.
TEST_F(Cuda, OutOfMemoryWhileAddingADeviceToARegisteredPool) {
    const uint64_t arena = arena_bytes_for(4096, 8, 256);
    const std::string second = dir_.file("second"), third = dir_.file("third");
    ConfigPtr cfg;
    ASSERT_EQ(make_config(&cfg, path_,
                          StoreSpec{4096, 8}.set("hotplug", "1").set("cuda_staging_bytes", "1MiB")),
              0);
    ASSERT_EQ(daxkv_config_add_device(cfg.get(), second.c_str(), arena), 0);
    daxkv_store *raw = nullptr;
    ASSERT_EQ(daxkv_open(&raw, cfg.get()), 0) << daxkv_errmsg();
    store_.reset(raw);
    spec_ = StoreSpec{4096, 8};
    for (int i = 0; i < 4; ++i)
        ASSERT_EQ(put(key_of(i), pattern(820 + i, 1000)), 0);
    auto devices = [&] { return static_cast<long>(stats().devices); };
    // After a run: nothing unsafe, every value whole, and the pool and the
    // registration as they were (before devices, each registered) when
    // the call failed, else the pool of after devices with the
    // registration redone or dropped (which unregister explains).
    auto expect_outcome = [&](int rc, const std::string &when, long before, long after) {
        EXPECT_EQ(fake().get("violations"), 0) << when << ": " << fake().violation();
        for (int i = 0; i < 4; ++i)
            EXPECT_EQ(value(key_of(i)), pattern(820 + i, 1000)) << when;
        const long ranges = fake().get("registered_ranges");
        if (rc != 0) {
            EXPECT_EQ(devices(), before) << when;
            EXPECT_EQ(ranges, before) << when;
            return;
        }
        EXPECT_EQ(devices(), after) << when;
        EXPECT_TRUE(ranges == after || ranges == 0) << when << ": " << ranges;
        if (ranges == 0) {
            EXPECT_EQ(daxkv_cuda_unregister(s()), -ENOENT) << when;
            EXPECT_TRUE(contains_text(daxkv_errmsg(), "device change")) << daxkv_errmsg();
        }
    };
    const long runs = sweep_allocations(
        "daxkv_device_add",
        [&] {
            if (fake().get("registered_ranges") == 0) {
                ASSERT_EQ(daxkv_cuda_register(s(), 0), 0) << daxkv_errmsg();
            }
        },
        [&] { return daxkv_device_add(s(), third.c_str(), arena); },
        [&](int rc, const std::string &when) {
            expect_outcome(rc, when, 2, 3);
            if (rc != 0)
                return;
            daxkv_hotplug_result r;
            std::memset(&r, 0, sizeof r);
            r.struct_size = sizeof r;
            ASSERT_EQ(daxkv_device_remove(s(), third.c_str(), DAXKV_MIGRATE, 0, &r), 0)
                << when << ": " << daxkv_errmsg();
        });
    EXPECT_GT(runs, 5) << "the add allocates nothing on the calling thread?";

    // And of its removal: the device removed (the registration redone for
    // the rest, or dropped and explained), or the pool and the
    // registration as they were.
    const long removals = sweep_allocations(
        "daxkv_device_remove",
        [&] {
            if (devices() == 2) {
                ASSERT_EQ(daxkv_device_add(s(), third.c_str(), arena), 0) << daxkv_errmsg();
            }
            if (fake().get("registered_ranges") == 0) {
                ASSERT_EQ(daxkv_cuda_register(s(), 0), 0) << daxkv_errmsg();
            }
        },
        [&] {
            daxkv_hotplug_result r;
            std::memset(&r, 0, sizeof r);
            r.struct_size = sizeof r;
            return daxkv_device_remove(s(), third.c_str(), DAXKV_MIGRATE, 0, &r);
        },
        [&](int rc, const std::string &when) { expect_outcome(rc, when, 3, 2); });
    EXPECT_GT(removals, 5) << "the removal allocates nothing on the calling thread?";
}

// A device removed while daxkv_cuda_register runs: the registration either
// sees the device (and the removal then drops it and registers the rest
// again) or does not, but never registers a range gathered before the
// device was unmapped. The hook starts the removal after the ranges are
// gathered and gives it time to finish before they are registered; the
// fake runtime refuses, and counts as a violation, a registration of
// memory that is not mapped.
TEST_F(Cuda, RegisterRacingADeviceRemovalRegistersOnlyMappedArenas) {
    const uint64_t arena = arena_bytes_for(4096, 8, 256);
    const std::string second = dir_.file("second");
    open_pool_of_two(second, arena);
    for (int i = 0; i < 4; ++i)
        ASSERT_EQ(put(key_of(i), pattern(700 + i, 1000)), 0);

    daxkv::Gpu &gpu = store_->store->gpu();
    std::future<int> removal;
    std::atomic<bool> started{false};
    gpu.set_register_hook([&] {
        // Once: the removal registers the arenas left again, which runs the
        // hook on its own thread.
        if (started.exchange(true))
            return;
        removal = std::async(std::launch::async, [&] {
            daxkv_hotplug_result r;
            std::memset(&r, 0, sizeof r);
            r.struct_size = sizeof r;
            int rc = daxkv_device_remove(s(), path_.c_str(), DAXKV_MIGRATE, 0, &r);
            return rc;
        });
        // Long enough for an unhindered removal; one kept out returns later.
        removal.wait_for(std::chrono::milliseconds(300));
    });
    const int rc = daxkv_cuda_register(s(), 0);
    const std::string register_msg = daxkv_errmsg();
    // The removal may still be registering again (and looking at the hook).
    ASSERT_TRUE(removal.valid());
    const int removed = removal.get();
    gpu.set_register_hook(nullptr);
    EXPECT_EQ(removed, 0);
    EXPECT_EQ(rc, 0) << register_msg;
    EXPECT_EQ(fake().get("violations"), 0) << fake().violation();
    // What is registered is exactly the device left.
    EXPECT_EQ(fake().get("registered_ranges"), 1);
    EXPECT_EQ(fake().get("registered_bytes"), static_cast<long>(arena));
    DevBuf out(4 * 1000);
    for (int i = 0; i < 4; ++i) {
        std::string k = key_of(i);
        daxkv_item it{k.data(), k.size(), out.data() + i * 1000, 1000, nullptr, 0, 0};
        ASSERT_EQ(daxkv_get_batch_cuda(s(), &it, 1, stream_, 0), 1) << daxkv_errmsg();
    }
    sync();
    for (int i = 0; i < 4; ++i)
        EXPECT_EQ(0, std::memcmp(out.data() + i * 1000, pattern(700 + i, 1000).data(), 1000));
    EXPECT_EQ(fake().get("pageable_copies"), 0) << "a direct copy read unregistered memory";
}

// The same race the other way round: the store's first CUDA call is a
// register that starts while a removal, which found no CUDA state yet, is
// about to unmap its device. The test holds the mapping lock (shared, as a
// status reader does) so that the removal waits at the unmap; a register
// that went ahead then registered the device about to go, and the removal
// unmapped a registered range (the fake counts its unregistration later as
// a violation, and the registration is one range too many).
TEST_F(Cuda, FirstRegisterRacingTheUnmapOfARemovalRegistersOnlyWhatStays) {
    const uint64_t arena = arena_bytes_for(4096, 8, 256);
    const std::string second = dir_.file("second");
    open_pool_of_two(second, arena);
    for (int i = 0; i < 4; ++i)
        ASSERT_EQ(put(key_of(i), pattern(710 + i, 1000)), 0);

    daxkv::Store &st = *store_->store;
    const uint32_t row = st.core().pool.find(path_);
    std::future<int> removal, reg;
    {
        std::shared_lock<std::shared_mutex> reader(st.core().pool.mapping_lock());
        removal = std::async(std::launch::async, [&] {
            daxkv_hotplug_result r;
            std::memset(&r, 0, sizeof r);
            r.struct_size = sizeof r;
            return daxkv_device_remove(s(), path_.c_str(), DAXKV_MIGRATE, 0, &r);
        });
        // Until the removal is at the unmap, which waits for the reader.
        const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(10);
        while (st.core().pool[row].state.load() != daxkv::DevState::removing &&
               std::chrono::steady_clock::now() < deadline)
            std::this_thread::sleep_for(std::chrono::milliseconds(1));
        ASSERT_EQ(st.core().pool[row].state.load(), daxkv::DevState::removing);
        std::this_thread::sleep_for(std::chrono::milliseconds(50));
        reg = std::async(std::launch::async, [&] { return daxkv_cuda_register(s(), 0); });
        // A register that does not wait for the unmap is done by now.
        reg.wait_for(std::chrono::milliseconds(300));
    }
    EXPECT_EQ(removal.get(), 0) << daxkv_errmsg();
    EXPECT_EQ(reg.get(), 0);
    EXPECT_EQ(fake().get("registered_ranges"), 1);
    EXPECT_EQ(fake().get("registered_bytes"), static_cast<long>(arena));
    EXPECT_EQ(daxkv_cuda_unregister(s()), 0) << daxkv_errmsg();
    EXPECT_EQ(fake().get("violations"), 0) << fake().violation();
    EXPECT_EQ(fake().get("registered_ranges"), 0);
}

// Bad input: a device added while the arenas are registered, with the 3rd
// cudaHostRegister of the re-registration failing. The registration is
// dropped whole (nothing stays registered, no sticky error), transfers go
// on staged, and an unregister that finds none says why rather than only
// "not registered"; registering again works and clears that.
TEST_F(Cuda, RegistrationDroppedByADeviceChangeIsExplainedByUnregister) {
    const uint64_t arena = arena_bytes_for(4096, 8, 256);
    const std::string second = dir_.file("second");
    ConfigPtr cfg;
    ASSERT_EQ(make_config(&cfg, path_,
                          StoreSpec{4096, 8}.set("hotplug", "1").set("cuda_staging_bytes", "1MiB")),
              0);
    daxkv_store *raw = nullptr;
    ASSERT_EQ(daxkv_open(&raw, cfg.get()), 0) << daxkv_errmsg();
    store_.reset(raw);
    spec_ = StoreSpec{4096, 8};
    std::vector<uint8_t> v = pattern(77, 3000);
    ASSERT_EQ(put("k", v), 0);
    ASSERT_EQ(daxkv_cuda_register(s(), 0), 0) << daxkv_errmsg();
    fake().set("fail_register_at", 2); // the second arena's chunk of the re-registration
    ASSERT_EQ(daxkv_device_add(s(), second.c_str(), arena), 0) << daxkv_errmsg();
    EXPECT_EQ(fake().get("registered_ranges"), 0);
    EXPECT_EQ(fake().get("sticky_error"), 0);
    EXPECT_EQ(daxkv_cuda_unregister(s()), -ENOENT);
    EXPECT_TRUE(contains_text(daxkv_errmsg(), "a device change dropped")) << daxkv_errmsg();
    EXPECT_TRUE(contains_text(daxkv_errmsg(), "cudaHostRegister: out of memory")) << daxkv_errmsg();

    DevBuf out(4096);
    std::string k = "k";
    daxkv_item it{k.data(), k.size(), out.data(), 4096, nullptr, 0, 0};
    ASSERT_EQ(daxkv_get_batch_cuda(s(), &it, 1, stream_, 0), 1) << daxkv_errmsg();
    sync();
    EXPECT_EQ(0, std::memcmp(out.data(), v.data(), v.size()));

    ASSERT_EQ(daxkv_cuda_register(s(), 0), 0) << daxkv_errmsg();
    EXPECT_EQ(fake().get("registered_ranges"), 2);
    ASSERT_EQ(daxkv_cuda_unregister(s()), 0);
    EXPECT_EQ(daxkv_cuda_unregister(s()), -ENOENT);
    EXPECT_FALSE(contains_text(daxkv_errmsg(), "device change")) << daxkv_errmsg();
}

TEST_F(Cuda, GrowingAFileArenaExtendsTheRegistration) {
    // grow_limit: the file arena's mapping reaches past the file; only the
    // file's blocks are registered, and a grow registers the new ones.
    const uint64_t limit = arena_bytes_for(4096, 64, 256);
    const uint64_t opened = arena_bytes_for(4096, 16, 256);
    const uint64_t data_offset = daxkv::arena::compute_layout(limit, 4096, 256).data_offset;
    const std::string grow = dir_.file("grow");
    ConfigPtr cfg;
    ASSERT_EQ(make_config(&cfg, grow,
                          StoreSpec{4096, 16}
                              .set("hotplug", "1")
                              .set("eviction", "none")
                              .set("grow_limit", std::to_string(limit))),
              0);
    daxkv_store *raw = nullptr;
    ASSERT_EQ(daxkv_open(&raw, cfg.get()), 0) << daxkv_errmsg();
    store_.reset(raw);
    ASSERT_EQ(daxkv_cuda_register(s(), 0), 0) << daxkv_errmsg();
    EXPECT_EQ(fake().get("registered_ranges"), 1);
    EXPECT_EQ(fake().get("registered_bytes"), static_cast<long>(opened));

    daxkv_hotplug_result r;
    std::memset(&r, 0, sizeof r);
    r.struct_size = sizeof r;
    ASSERT_EQ(daxkv_device_resize(s(), grow.c_str(), 40 * 4096, DAXKV_MIGRATE, 0, &r), 0)
        << daxkv_errmsg();
    EXPECT_EQ(fake().get("registered_ranges"), 1);
    EXPECT_EQ(fake().get("registered_bytes"), static_cast<long>(data_offset + 40 * 4096));
    // Fill every slot, the new ones included: all are read directly.
    std::vector<std::string> ks;
    std::vector<std::vector<uint8_t>> vals;
    for (int i = 0; i < 40; ++i) {
        ks.push_back(key_of(i));
        vals.push_back(pattern(700 + i, 3000));
        ASSERT_EQ(put(ks.back(), vals.back()), 0) << i;
    }
    DevBuf out(40 * 4096);
    std::vector<daxkv_item> items(40);
    for (int i = 0; i < 40; ++i)
        items[i] = daxkv_item{ks[i].data(), ks[i].size(), out.data() + i * 4096, 4096, nullptr,
                              0, 0};
    ASSERT_EQ(daxkv_get_batch_cuda(s(), items.data(), items.size(), stream_, 0), 40)
        << daxkv_errmsg();
    ASSERT_EQ(fake().stream_sync(stream_), 0);
    for (int i = 0; i < 40; ++i)
        EXPECT_EQ(0, std::memcmp(out.data() + i * 4096, vals[i].data(), vals[i].size())) << i;
    EXPECT_EQ(fake().get("pageable_copies"), 0) << "a direct copy read unregistered memory";
}

TEST_F(Cuda, ThirdChunkFailsRollsBackClearsTheErrorAndStagedPathWorks) {
    open_cuda(64 * 1024, 16, "128KiB");
    fake().set("fail_register_at", 3);
    EXPECT_EQ(daxkv_cuda_register(s(), 0), -ENOMEM);
    EXPECT_TRUE(contains_text(daxkv_errmsg(), "for chunk 3 of")) << daxkv_errmsg();
    EXPECT_TRUE(contains_text(daxkv_errmsg(), "the 2 chunk(s) registered before were unregistered"))
        << daxkv_errmsg();
    EXPECT_EQ(calls("cudaHostRegister"), 3);
    EXPECT_EQ(calls("cudaHostUnregister"), 2);
    EXPECT_EQ(fake().get("registered_ranges"), 0);
    EXPECT_EQ(fake().get("sticky_error"), 0) << "cudaGetLastError was not called";

    // The store keeps working, on the staged path (pinned staging buffers).
    make_values({50000, 5, 65536});
    auto items = put_items();
    EXPECT_EQ(daxkv_put_batch_cuda(s(), items.data(), items.size(), stream_, 0), 3);
    for (size_t i = 0; i < keys_.size(); ++i)
        EXPECT_EQ(value(keys_[i]), src_[i]);
    auto got = get_items(65536);
    EXPECT_EQ(daxkv_get_batch_cuda(s(), got.data(), got.size(), stream_, 0), 3);
    sync();
    for (size_t i = 0; i < keys_.size(); ++i)
        EXPECT_TRUE(out_matches(i)) << i;
    EXPECT_EQ(fake().get("pageable_copies"), 0);
    EXPECT_GT(calls("cudaHostAlloc"), 0);

    // Registration works once the fault is gone.
    EXPECT_EQ(daxkv_cuda_register(s(), 0), 0) << daxkv_errmsg();
}

// Bad input: part of the arena already registered by the application
// itself (cudaHostRegister of a leased value's page). The man page's
// -EBUSY; only the chunks this call registered are unregistered again, the
// application's registration stays, no sticky error is left, and once the
// application lets go the store registers.
TEST_F(Cuda, ArenaPartlyRegisteredBySomeoneElseIsEBUSY) {
    open_cuda(4096, 64, "64KiB");
    std::vector<uint8_t> v = pattern(9, 3000);
    // Keys until one lies past the first chunk, so that the call registers
    // something before it fails.
    auto reg = reinterpret_cast<int (*)(void *, size_t, unsigned)>(
        dlsym(fake().h, "cudaHostRegister"));
    auto unreg = reinterpret_cast<int (*)(void *)>(dlsym(fake().h, "cudaHostUnregister"));
    ASSERT_TRUE(reg && unreg);
    void *page = nullptr;
    for (int i = 0; i < 40 && !page; ++i) {
        ASSERT_EQ(put(key_of(i), v), 0);
        LeasePtr l = lease(key_of(i));
        auto p = reinterpret_cast<uintptr_t>(daxkv_lease_data(l.get()));
        const auto base = reinterpret_cast<uintptr_t>(
            store_->store->core().pool.arena(0).mapping().base());
        if (p - base >= 3 * 64 * 1024)
            page = reinterpret_cast<void *>(p & ~uintptr_t{4095});
    }
    ASSERT_NE(page, nullptr);
    ASSERT_EQ(reg(page, 4096, 0), 0);
    EXPECT_EQ(daxkv_cuda_register(s(), 0), -EBUSY);
    EXPECT_TRUE(contains_text(daxkv_errmsg(), "already")) << daxkv_errmsg();
    EXPECT_GT(calls("cudaHostRegister"), 1) << "the call failed before registering anything";
    EXPECT_EQ(fake().get("registered_ranges"), 1) << "only the application's range stays";
    EXPECT_EQ(fake().get("sticky_error"), 0);
    EXPECT_EQ(daxkv_cuda_unregister(s()), -ENOENT);
    ASSERT_EQ(unreg(page), 0);
    EXPECT_EQ(daxkv_cuda_register(s(), 0), 0) << daxkv_errmsg();
}

TEST_F(Cuda, GpuThatCannotRegisterHostMemory) {
    open_cuda(64 * 1024, 4);
    fake().set("host_register_supported", 0);
    EXPECT_EQ(daxkv_cuda_register(s(), 0), -ENOTSUP);
    EXPECT_TRUE(contains_text(daxkv_errmsg(), "cannot register host memory")) << daxkv_errmsg();
    EXPECT_EQ(calls("cudaHostRegister"), 0);
}

// cudaGetDevice failing: the message named cudaDeviceGetAttribute, which
// never ran.
TEST_F(Cuda, ARegistrationWhoseDeviceQueryFailsNamesTheCallThatFailed) {
    open_cuda(64 * 1024, 4);
    fake().reset();
    fake().set("fail_call_at", 1);
    EXPECT_EQ(daxkv_cuda_register(s(), 0), -EIO);
    fake().set("fail_call_at", 0);
    EXPECT_TRUE(contains_text(daxkv_errmsg(), "cudaGetDevice:")) << daxkv_errmsg();
    EXPECT_EQ(calls("cudaDeviceGetAttribute"), 0);
    EXPECT_EQ(fake().get("sticky_error"), 0);
}

// ---------------------------------------------------------------------------
// Transfers: both paths, byte-exact round trips

class CudaPaths : public Cuda, public ::testing::WithParamInterface<bool> {
protected:
    bool direct() const { return GetParam(); }
    void maybe_register() {
        if (direct()) {
            ASSERT_EQ(daxkv_cuda_register(s(), 0), 0) << daxkv_errmsg();
        }
    }
};

TEST_P(CudaPaths, RoundTripOfManySizesWithMetadata) {
    // Values that cross 1 MiB staging buffers, pack several per buffer, and
    // are empty; copies are slowed so that reading a buffer before its DMA
    // completed would show.
    open_cuda(4 << 20, 16, "1MiB", "read");
    maybe_register();
    fake().set("copy_delay_us", 300);
    make_values({(3 << 20) + 512, 1, 0, 700 * 1024, (2 << 20) + 17, 4096, 1 << 20});
    auto items = put_items();
    std::vector<std::vector<uint8_t>> metas;
    for (size_t i = 0; i < items.size(); ++i) {
        metas.push_back(pattern(77 + i, i * 10));
        items[i].meta = metas[i].data();
        items[i].meta_len = metas[i].size();
    }
    ASSERT_EQ(daxkv_put_batch_cuda(s(), items.data(), items.size(), stream_, 0),
              static_cast<int>(items.size()))
        << daxkv_errmsg();
    for (size_t i = 0; i < keys_.size(); ++i) {
        EXPECT_EQ(items[i].status, 0);
        EXPECT_EQ(value(keys_[i]), src_[i]) << keys_[i];
    }
    // Reading with verify=read checks every value's checksum first.
    auto got = get_items(4 << 20);
    std::vector<std::vector<uint8_t>> mout(got.size(), std::vector<uint8_t>(100, 0xEE));
    for (size_t i = 0; i < got.size(); ++i) {
        got[i].meta = mout[i].data();
        got[i].meta_len = mout[i].size();
    }
    ASSERT_EQ(daxkv_get_batch_cuda(s(), got.data(), got.size(), stream_, 0),
              static_cast<int>(got.size()))
        << daxkv_errmsg();
    for (size_t i = 0; i < got.size(); ++i) {
        EXPECT_EQ(got[i].status, 0);
        EXPECT_EQ(got[i].len, src_[i].size());
        EXPECT_EQ(got[i].meta_len, metas[i].size());
        EXPECT_TRUE(metas[i].empty() ||
                    std::memcmp(mout[i].data(), metas[i].data(), metas[i].size()) == 0);
    }
    sync();
    for (size_t i = 0; i < got.size(); ++i)
        EXPECT_TRUE(out_matches(i)) << keys_[i];
    struct daxkv_stats st = stats();
    EXPECT_EQ(st.verify_failures, 0u);
    EXPECT_EQ(st.slots_inflight, 0u);
    // Direct: copies go straight to and from the registered arena, no
    // staging; staged: only pinned staging buffers. Never pageable memory.
    EXPECT_EQ(fake().get("pageable_copies"), 0);
    if (direct()) {
        EXPECT_EQ(calls("cudaHostAlloc"), 0);
        EXPECT_EQ(calls("cudaLaunchHostFunc"), 1);
    } else {
        EXPECT_EQ(calls("cudaHostAlloc"), 2) << "one set of two buffers, reused";
    }
}

TEST_P(CudaPaths, ASigbusCheckingValuesBeforeTheirDmaIsEioPerItem) {
    // verify=read checks a GPU read's values where they lie, before any
    // DMA; with sigbus=handle a fault there (a truncated arena file, bad
    // media) drops the entry and quarantines its slot, as a copy out does,
    // instead of killing the process.
    if (test_device())
        GTEST_SKIP() << "the SIGBUS comes from truncating the arena file";
#if defined(__SANITIZE_THREAD__)
    GTEST_SKIP() << "SIGBUS recovery is not testable under TSan (test_faults.cpp)";
#endif
    const StoreSpec spec = StoreSpec(64 * 1024, 4)
                               .set("cuda_staging_bytes", "1MiB")
                               .set("cuda_register_chunk", "64MiB")
                               .set("verify", "read")
                               .set("sigbus", "handle");
    open(spec);
    maybe_register();
    make_values({60000, 50000, 40000});
    auto items = put_items();
    ASSERT_EQ(daxkv_put_batch_cuda(s(), items.data(), items.size(), stream_, 0), 3)
        << daxkv_errmsg();
    sync();
    const uint64_t payloads = arena_bytes_for(spec.slot_bytes, spec.slots, spec.meta_bytes) -
                              uint64_t(spec.slots) * spec.slot_bytes;
    ASSERT_EQ(::truncate(path_.c_str(), static_cast<off_t>(payloads)), 0);
    const long copies_before = calls("cudaMemcpyAsync");
    auto got = get_items(64 * 1024);
    EXPECT_EQ(daxkv_get_batch_cuda(s(), got.data(), got.size(), stream_, 0), 0);
    for (size_t i = 0; i < got.size(); ++i)
        EXPECT_EQ(got[i].status, -EIO) << i;
    EXPECT_TRUE(contains_text(daxkv_errmsg(), "faulted")) << daxkv_errmsg();
    sync();
    struct daxkv_stats st = stats();
    EXPECT_EQ(st.copy_faults, 3u);
    EXPECT_EQ(st.entries, 0u);
    EXPECT_EQ(st.slots_inflight, 0u);
    EXPECT_EQ(st.slots_pending_free, 0u) << "a borrow was not ended";
    EXPECT_EQ(calls("cudaMemcpyAsync"), copies_before) << "a value that faulted was copied";
}

TEST_P(CudaPaths, VerifyReadRefusesAGpuReadWhoseMetadataWasWrittenOver) {
    // verify=read checks each entry's slot header with its value: a
    // metadata byte written over in the arena is -EIO for that item, which
    // is dropped before any DMA; the others come back whole.
    const StoreSpec spec = StoreSpec(4096, 4)
                               .set("cuda_staging_bytes", "1MiB")
                               .set("cuda_register_chunk", "64MiB")
                               .set("verify", "read");
    open(spec);
    maybe_register();
    make_values({3000, 2000, 1000});
    std::vector<daxkv_item> items = put_items();
    char meta[] = "metadata";
    for (auto &it : items) {
        it.meta = meta;
        it.meta_len = sizeof meta;
    }
    ASSERT_EQ(daxkv_put_batch(s(), items.data(), items.size(), 0), 3) << daxkv_errmsg();
    {
        const auto lay = daxkv::arena::compute_layout(spec_arena_bytes(spec), spec.slot_bytes,
                                                      spec.meta_bytes);
        FileMap fm(path_);
        ASSERT_TRUE(fm.ok());
        char *key = fm.base() + lay.header_offset + 1 * lay.header_bytes +
                    sizeof(daxkv::arena::SlotHeader);
        ASSERT_EQ(std::string(key, 2), "g1");
        key[daxkv::arena::kKeyMax] ^= 0x01;
    }
    auto got = get_items(4096);
    std::vector<std::vector<char>> metas(got.size(), std::vector<char>(64, 'x'));
    for (size_t i = 0; i < got.size(); ++i) {
        got[i].meta = metas[i].data();
        got[i].meta_len = metas[i].size();
    }
    EXPECT_EQ(daxkv_get_batch_cuda(s(), got.data(), got.size(), stream_, 0), 2);
    sync();
    EXPECT_EQ(got[1].status, -EIO);
    for (size_t i : {size_t(0), size_t(2)}) {
        EXPECT_EQ(got[i].status, 0) << i;
        EXPECT_TRUE(out_matches(i)) << i;
        EXPECT_STREQ(metas[i].data(), meta) << i;
    }
    struct daxkv_stats st = stats();
    EXPECT_EQ(st.verify_failures, 1u);
    EXPECT_EQ(st.entries, 2u);
    EXPECT_EQ(st.slots_pending_free, 0u) << "a borrow was not ended";
}

TEST_P(CudaPaths, ASigbusReadingTheMetadataOfAGpuReadIsEioPerItem) {
    // A GPU read returns each entry's metadata from its slot header: with
    // sigbus=handle a header that faults drops that entry and quarantines
    // its slot, as a host read does, instead of killing the process.
    if (test_device())
        GTEST_SKIP() << "the SIGBUS comes from truncating the arena file";
#if defined(__SANITIZE_THREAD__)
    GTEST_SKIP() << "SIGBUS recovery is not testable under TSan (test_faults.cpp)";
#endif
    // Headers of 1 KiB, four to a page; the values are empty, so that only
    // a header can fault (the cut below takes every payload).
    const StoreSpec spec = StoreSpec(4096, 8, 1024 - 64 - daxkv::arena::kKeyMax)
                               .set("cuda_staging_bytes", "1MiB")
                               .set("cuda_register_chunk", "64MiB")
                               .set("sigbus", "handle");
    open(spec);
    maybe_register();
    make_values({0, 0, 0, 0, 0, 0});
    std::vector<daxkv_item> items = put_items();
    const char meta[] = "metadata";
    for (auto &it : items) {
        it.meta = const_cast<char *>(meta);
        it.meta_len = sizeof meta;
    }
    ASSERT_EQ(daxkv_put_batch(s(), items.data(), items.size(), 0), 6) << daxkv_errmsg();
    // The first page of headers kept: the entries in slots 0..3.
    ASSERT_EQ(::truncate(path_.c_str(), static_cast<off_t>(daxkv::arena::kHeaderOffset + 4096)),
              0);
    auto got = get_items(16);
    std::vector<std::vector<char>> metas(got.size(), std::vector<char>(64, 'x'));
    for (size_t i = 0; i < got.size(); ++i) {
        got[i].meta = metas[i].data();
        got[i].meta_len = metas[i].size();
    }
    EXPECT_EQ(daxkv_get_batch_cuda(s(), got.data(), got.size(), stream_, 0), 4);
    sync();
    for (size_t i = 0; i < got.size(); ++i) {
        if (i < 4) {
            EXPECT_EQ(got[i].status, 0) << i;
            EXPECT_EQ(got[i].meta_len, sizeof meta) << i;
            EXPECT_STREQ(metas[i].data(), meta) << i;
        } else {
            EXPECT_EQ(got[i].status, -EIO) << i;
        }
    }
    struct daxkv_stats st = stats();
    EXPECT_EQ(st.copy_faults, 2u);
    EXPECT_EQ(st.entries, 4u);
    EXPECT_EQ(st.slots_inflight, 0u);
    EXPECT_EQ(st.slots_pending_free, 0u) << "a borrow was not ended";
}

TEST_F(Cuda, ASigbusWritingStagedValuesIntoTheArenaIsEioPerItem) {
    // The staged put copies each value from its staging buffer into the
    // slot on the CPU: with sigbus=handle a fault there (a truncated arena
    // file, bad media) fails that item and quarantines the slot, as a host
    // put does, instead of killing the process. (A direct put's DMA writes
    // the arena itself: a fault there is the driver's to report.)
    if (test_device())
        GTEST_SKIP() << "the SIGBUS comes from truncating the arena file";
#if defined(__SANITIZE_THREAD__)
    GTEST_SKIP() << "SIGBUS recovery is not testable under TSan (test_faults.cpp)";
#endif
    const StoreSpec spec =
        StoreSpec(64 * 1024, 4).set("cuda_staging_bytes", "1MiB").set("sigbus", "handle");
    open(spec);
    make_values({60000, 50000, 40000});
    const uint64_t payloads = arena_bytes_for(spec.slot_bytes, spec.slots, spec.meta_bytes) -
                              uint64_t(spec.slots) * spec.slot_bytes;
    ASSERT_EQ(::truncate(path_.c_str(), static_cast<off_t>(payloads)), 0);
    auto items = put_items();
    EXPECT_EQ(daxkv_put_batch_cuda(s(), items.data(), items.size(), stream_, 0), 0);
    for (size_t i = 0; i < items.size(); ++i)
        EXPECT_EQ(items[i].status, -EIO) << i;
    EXPECT_TRUE(contains_text(daxkv_errmsg(), "writing the slot faulted")) << daxkv_errmsg();
    sync();
    struct daxkv_stats st = stats();
    EXPECT_EQ(st.copy_faults, 3u);
    EXPECT_EQ(st.entries, 0u);
    EXPECT_EQ(st.slots_free, 1u); // three slots quarantined
    EXPECT_EQ(st.slots_inflight, 0u);
}

TEST_P(CudaPaths, PrefixAndPositionalResultsMatchTheHostBatch) {
    open_cuda(64 * 1024, 8);
    maybe_register();
    make_values({1000, 2000, 3000, 4000});
    auto items = put_items();
    ASSERT_EQ(daxkv_put_batch_cuda(s(), items.data(), items.size(), stream_, 0), 4);
    ASSERT_EQ(remove(keys_[2]), 0); // a hole at position 2

    auto pos = get_items(64 * 1024);
    EXPECT_EQ(daxkv_get_batch_cuda(s(), pos.data(), pos.size(), stream_, 0), 3);
    std::vector<uint8_t> host(4 * 64 * 1024);
    std::vector<daxkv_item> ref(4);
    for (size_t i = 0; i < 4; ++i)
        ref[i] = daxkv_item{keys_[i].data(), keys_[i].size(), host.data() + i * 65536, 65536,
                            nullptr, 0, 0};
    EXPECT_EQ(daxkv_get_batch(s(), ref.data(), ref.size(), 0), 3);
    for (size_t i = 0; i < 4; ++i) {
        EXPECT_EQ(pos[i].status, ref[i].status) << i;
        EXPECT_EQ(pos[i].len, ref[i].len) << i;
    }
    EXPECT_EQ(pos[2].status, -ENOENT);
    sync();
    for (size_t i : {0, 1, 3})
        EXPECT_TRUE(out_matches(i));

    auto pre = get_items(64 * 1024);
    EXPECT_EQ(daxkv_get_batch_cuda(s(), pre.data(), pre.size(), stream_, DAXKV_PREFIX), 2);
    for (size_t i = 0; i < 4; ++i)
        ref[i].len = 65536;
    EXPECT_EQ(daxkv_get_batch(s(), ref.data(), ref.size(), DAXKV_PREFIX), 2);
    for (size_t i = 0; i < 4; ++i)
        EXPECT_EQ(pre[i].status, ref[i].status) << i;
    EXPECT_EQ(pre[3].status, -ENOENT) << "nothing after the first miss is read";
    sync();
    EXPECT_TRUE(out_matches(0));
    EXPECT_TRUE(out_matches(1));
    EXPECT_EQ(out_[3]->data()[0], 0xEE);

    // Put positional results: an existing key says DAXKV_EXISTED, REPLACE writes.
    auto again = put_items();
    EXPECT_EQ(daxkv_put_batch_cuda(s(), again.data(), again.size(), stream_, 0), 1);
    EXPECT_EQ(again[0].status, DAXKV_EXISTED);
    EXPECT_EQ(again[2].status, 0);
    EXPECT_EQ(daxkv_put_batch_cuda(s(), again.data(), again.size(), stream_, DAXKV_REPLACE), 4);
    EXPECT_EQ(stats().leases_active, 0u);
}

TEST_P(CudaPaths, FailedCopyMidBatchFailsOnlyItsItem) {
    open_cuda(64 * 1024, 16, "64MiB"); // one chunk: one copy per item
    maybe_register();
    // An older version of g2 that must survive the failed replace.
    std::string k2 = "g2";
    std::vector<uint8_t> old = pattern(5, 3000);
    ASSERT_EQ(put(k2, old), 0);
    make_values({1000, 2000, 3000, 4000, 5000});
    auto items = put_items();
    fake().set("fail_memcpy_at", 3);
    EXPECT_EQ(daxkv_put_batch_cuda(s(), items.data(), items.size(), stream_, DAXKV_REPLACE), 4);
    EXPECT_EQ(items[2].status, -EIO);
    EXPECT_TRUE(contains_text(daxkv_errmsg(), "cudaMemcpyAsync")) << daxkv_errmsg();
    EXPECT_EQ(fake().get("sticky_error"), 0);
    for (size_t i : {0, 1, 3, 4}) {
        EXPECT_EQ(items[i].status, 0) << i;
        EXPECT_EQ(value(keys_[i]), src_[i]) << i;
    }
    EXPECT_EQ(value(k2), old) << "the failed write left the old version";
    EXPECT_EQ(stats().slots_inflight, 0u);

    // A read whose 2nd copy fails: the others arrive, nothing stays leased.
    src_[2] = old;
    auto got = get_items(64 * 1024);
    fake().set("fail_memcpy_at", 2);
    EXPECT_EQ(daxkv_get_batch_cuda(s(), got.data(), got.size(), stream_, 0), 4);
    EXPECT_EQ(got[1].status, -EIO);
    EXPECT_EQ(daxkv_get_batch_cuda(s(), got.data(), got.size(), stream_, DAXKV_PREFIX), 5)
        << "the fault is gone: the whole prefix";
    sync();
    for (size_t i = 0; i < 5; ++i)
        EXPECT_TRUE(out_matches(i)) << i;
    EXPECT_EQ(value(keys_[1]), src_[1]) << "the entry is intact";
    for (const auto &k : keys_)
        EXPECT_EQ(remove(k), 0);
    struct daxkv_stats st = stats();
    EXPECT_EQ(st.slots_pending_free, 0u) << "a borrow was not released";
    EXPECT_EQ(st.slots_used, 0u);
}

// With DAXKV_PREFIX, an item that fails after it was borrowed ends the
// prefix as a miss does, as on the host: its transfer failing (the 2nd
// cudaMemcpyAsync) or its checksum (verify=read, the bytes damaged in
// place). Every later item is -ENOENT, not counted as a hit, and no
// transfer of theirs is started: their device buffers are untouched.
// Later items kept status 0, and were copied, though the call returned the
// prefix before them.
TEST_P(CudaPaths, AnItemThatFailsEndsAPrefixAndNothingAfterItIsSent) {
    open_cuda(64 * 1024, 16, "64MiB", "read"); // one chunk: one copy per item
    maybe_register();
    make_values({1000, 2000, 3000, 4000, 5000});
    auto items = put_items();
    ASSERT_EQ(daxkv_put_batch_cuda(s(), items.data(), items.size(), stream_, 0), 5);
    sync();

    auto check = [&](std::vector<daxkv_item> &got, long copies, const char *what) {
        EXPECT_EQ(got[0].status, 0) << what;
        EXPECT_EQ(got[0].len, 1000u) << what;
        EXPECT_EQ(got[1].status, -EIO) << what;
        for (size_t i = 2; i < got.size(); ++i) {
            EXPECT_EQ(got[i].status, -ENOENT) << i << ", " << what;
            EXPECT_EQ(got[i].len, size_t(64 * 1024)) << i << ", " << what;
        }
        EXPECT_EQ(copies, 2) << what << ": only the first two items were sent";
        sync();
        EXPECT_TRUE(out_matches(0)) << what;
        for (size_t i = 2; i < got.size(); ++i)
            EXPECT_EQ(out_[i]->data()[0], 0xEE) << i << ", " << what;
    };

    auto got = get_items(64 * 1024);
    uint64_t hits = stats().hits;
    long before = calls("cudaMemcpyAsync");
    fake().set("fail_memcpy_at", 2);
    EXPECT_EQ(daxkv_get_batch_cuda(s(), got.data(), got.size(), stream_, DAXKV_PREFIX), 1);
    check(got, calls("cudaMemcpyAsync") - before, "a failed transfer");
    EXPECT_EQ(stats().hits - hits, 1u);

    {
        const auto lay = daxkv::arena::compute_layout(spec_arena_bytes(spec_), spec_.slot_bytes,
                                                      spec_.meta_bytes);
        FileMap fm(path_);
        ASSERT_TRUE(fm.ok());
        char *g2 = fm.base() + lay.data_offset + 2 * spec_.slot_bytes;
        ASSERT_EQ(0, std::memcmp(g2, src_[2].data(), src_[2].size())) << "g2 is not in slot 2";
        g2[10] ^= 0x01;
    }
    // g0 g2 g3 g4: g2 fails its checksum before any transfer.
    keys_.erase(keys_.begin() + 1);
    src_.erase(src_.begin() + 1);
    got = get_items(64 * 1024);
    hits = stats().hits;
    before = calls("cudaMemcpyAsync");
    EXPECT_EQ(daxkv_get_batch_cuda(s(), got.data(), got.size(), stream_, DAXKV_PREFIX), 1);
    check(got, calls("cudaMemcpyAsync") - before + 1, "a failed checksum"); // g2 sent nothing
    EXPECT_EQ(stats().hits - hits, 1u);
    EXPECT_EQ(stats().verify_failures, 1u);
    EXPECT_EQ(contains("g2"), 0);
    EXPECT_EQ(contains("g3"), 1);
    EXPECT_EQ(stats().slots_pending_free, 0u) << "a borrow was not ended";
    EXPECT_EQ(stats().leases_active, 0u);
}

// Out of memory at any allocation the calling thread makes during a GPU
// batch: the call succeeds, or fails whole with -ENOMEM having stored
// nothing; either way no slot stays borrowed or claimed and no copy is left
// reading or writing the arena. A sweep fails each allocation in turn
// (alloc_failure.hpp).
TEST_P(CudaPaths, OutOfMemoryAnywhereInABatchLeavesNothingHeld) {
    open_cuda(64 * 1024, 16, "64MiB");
    maybe_register();
    make_values({1000, 0, 3000, 64 * 1024, 5000});

    std::vector<daxkv_item> items;
    long runs = sweep_allocations(
        "put", [&] { items = put_items(); },
        [&] { return daxkv_put_batch_cuda(s(), items.data(), items.size(), stream_, 0); },
        [&](int rc, const std::string &when) {
            sync();
            for (size_t i = 0; rc < 0 && i < items.size(); ++i)
                EXPECT_EQ(items[i].status, rc) << when << ": a failed call says so for item " << i;
            for (size_t i = 0; i < keys_.size(); ++i) {
                if (rc == -ENOMEM) {
                    EXPECT_EQ(contains(keys_[i]), 0) << when << ": stored by a failed call";
                } else {
                    EXPECT_EQ(value(keys_[i]), src_[i]) << when << ": " << keys_[i];
                }
            }
            if (rc != -ENOMEM) {
                EXPECT_EQ(rc, static_cast<int>(keys_.size())) << when << ": " << daxkv_errmsg();
            }
            expect_nothing_held(keys_, when);
        });
    EXPECT_GT(runs, 1) << "the put allocates nothing on the calling thread?";

    runs = sweep_allocations(
        "get",
        [&] {
            for (size_t i = 0; i < keys_.size(); ++i)
                ASSERT_EQ(put(keys_[i], src_[i]), 0);
            items = get_items(64 * 1024);
        },
        [&] { return daxkv_get_batch_cuda(s(), items.data(), items.size(), stream_, 0); },
        [&](int rc, const std::string &when) {
            sync();
            for (size_t i = 0; rc < 0 && i < items.size(); ++i)
                EXPECT_EQ(items[i].status, rc) << when << ": a failed call says so for item " << i;
            if (rc != -ENOMEM) {
                EXPECT_EQ(rc, static_cast<int>(keys_.size())) << when << ": " << daxkv_errmsg();
                for (size_t i = 0; i < keys_.size(); ++i)
                    EXPECT_TRUE(out_matches(i)) << when << ": " << keys_[i];
            }
            for (size_t i = 0; i < keys_.size(); ++i)
                EXPECT_EQ(value(keys_[i]), src_[i]) << when << ": the entry is intact";
            expect_nothing_held(keys_, when);
        });
    EXPECT_GT(runs, 1) << "the get allocates nothing on the calling thread?";
}

// Every CUDA call of a batch failing in turn (the fake's fail_call_at: the
// Nth call of cudaMemcpyAsync, cudaEventCreateWithFlags, cudaEventRecord,
// cudaEventSynchronize, cudaStreamSynchronize, cudaLaunchHostFunc,
// cudaHostAlloc, each with the error a real runtime gives). Values that
// are empty, 1 byte, unaligned, the staging buffer size plus and minus one
// and larger than two staging buffers, over registration chunks of 256 KiB
// (a value crosses several); one key new, the others replaced. Whatever
// call fails: each item is 0 with the new bytes or -EIO with the key as it
// was, the return value counts the 0s, no sticky error is left, no write
// stays claimed and no entry borrowed, and the fake saw nothing unsafe.
TEST_P(CudaPaths, EveryCudaCallOfABatchFailingInTurn) {
    open_cuda(4 << 20, 24, "256KiB");
    maybe_register();
    make_values({0, 1, 4097, (1 << 20) - 1, (1 << 20) + 1, (2 << 20) + 300, 65});
    std::vector<std::vector<uint8_t>> old(keys_.size());
    for (size_t i = 0; i < keys_.size(); ++i)
        if (i != 3)
            old[i] = pattern(3000 + i, src_[i].size() / 2 + 1);
    auto put_old = [&] {
        for (size_t i = 0; i < keys_.size(); ++i) {
            if (i != 3) {
                ASSERT_EQ(put(keys_[i], old[i], DAXKV_REPLACE), 0);
            }
        }
    };
    auto check_held = [&](const std::string &when) {
        EXPECT_EQ(fake().get("sticky_error"), 0) << when;
        EXPECT_EQ(fake().get("violations"), 0) << when << ": " << fake().violation();
        EXPECT_EQ(stats().leases_active, 0u) << when;
        expect_nothing_held(keys_, when);
    };
    for (int what = 0; what < 2; ++what) {
        const bool putting = what == 0;
        long n = 1;
        for (;; n += kCallSweepStride) {
            const std::string when = std::string(putting ? "put" : "get") + ", call " +
                                     std::to_string(n) + " failing";
            put_old();
            std::vector<std::vector<uint8_t>> now = old;
            if (!putting) {
                auto items = put_items();
                ASSERT_EQ(daxkv_put_batch_cuda(s(), items.data(), items.size(), stream_,
                                               DAXKV_REPLACE),
                          static_cast<int>(items.size()))
                    << daxkv_errmsg();
                now = src_;
            }
            fake().reset();
            fake().set("fail_call_at", n);
            int rc;
            std::vector<daxkv_item> items = putting ? put_items() : get_items(4 << 20);
            if (putting) {
                rc = daxkv_put_batch_cuda(s(), items.data(), items.size(), stream_,
                                          DAXKV_REPLACE);
            } else {
                rc = daxkv_get_batch_cuda(s(), items.data(), items.size(), stream_, 0);
            }
            const bool hit = fake().get("api_calls") >= n;
            fake().set("fail_call_at", 0);
            EXPECT_EQ(fake().get("sticky_error"), 0) << when;
            sync();
            int ok = 0;
            // A call that fails whole (staging buffers or their events not
            // allocated): -ENOMEM, every key as it was.
            if (rc < 0) {
                EXPECT_EQ(rc, -ENOMEM) << when << ": " << daxkv_errmsg();
                for (size_t i = 0; putting && i < items.size(); ++i) {
                    if (i == 3) {
                        EXPECT_EQ(contains(keys_[i]), 0) << when;
                    } else {
                        EXPECT_EQ(value(keys_[i]), old[i]) << when << ": item " << i;
                    }
                }
            }
            for (size_t i = 0; rc >= 0 && i < items.size(); ++i) {
                const int st = items[i].status;
                EXPECT_TRUE(st == 0 || st == -EIO) << when << ": item " << i << " " << st;
                ok += st == 0;
                if (putting) {
                    if (st == 0) {
                        EXPECT_EQ(value(keys_[i]), src_[i]) << when << ": item " << i;
                    } else if (i == 3) {
                        EXPECT_EQ(contains(keys_[i]), 0) << when;
                    } else {
                        EXPECT_EQ(value(keys_[i]), old[i]) << when << ": item " << i;
                    }
                } else if (st == 0) {
                    EXPECT_EQ(items[i].len, now[i].size()) << when;
                    EXPECT_TRUE(now[i].empty() ||
                                std::memcmp(out_[i]->data(), now[i].data(), now[i].size()) == 0)
                        << when << ": item " << i << " has wrong bytes";
                }
            }
            if (rc >= 0) {
                EXPECT_EQ(rc, ok) << when;
            }
            if (!hit) {
                EXPECT_EQ(ok, static_cast<int>(items.size())) << when;
            }
            check_held(when);
            if (::testing::Test::HasFailure() || !hit)
                break;
        }
        EXPECT_GT(n, 8) << (putting ? "put" : "get") << ": too few CUDA calls to sweep";
    }
}

// Bad streams and bad device pointers, on both paths: a stream handle never
// created, one already destroyed; a host pointer where a device one
// belongs, a device range that runs past its allocation. Each non-empty
// item fails -EIO (an empty one needs no copy and succeeds), a put leaves
// the key as it was, no sticky error is left behind, nothing stays claimed
// or borrowed, and a good stream works at once afterwards.
TEST_P(CudaPaths, BadStreamsAndDevicePointersFailTheirItemsAndHoldNothing) {
    open_cuda(4 << 20, 16, "256KiB");
    maybe_register();
    make_values({3000, 0, (1 << 20) + 5});
    void *gone = nullptr;
    ASSERT_EQ(fake().stream_create(&gone), 0);
    ASSERT_EQ(fake().stream_destroy(gone), 0);
    void *const never = reinterpret_cast<void *>(uintptr_t{0x7f00dead0000});
    for (void *bad : {never, gone}) {
        const std::string when = bad == never ? "a stream never created" : "a destroyed stream";
        auto items = put_items();
        EXPECT_EQ(daxkv_put_batch_cuda(s(), items.data(), items.size(), bad, 0), 1) << when;
        EXPECT_EQ(items[0].status, -EIO) << when;
        EXPECT_EQ(items[1].status, 0) << when << ": an empty value needs no copy";
        EXPECT_EQ(items[2].status, -EIO) << when;
        EXPECT_TRUE(contains_text(daxkv_errmsg(), "invalid resource handle")) << daxkv_errmsg();
        EXPECT_EQ(fake().get("sticky_error"), 0) << when;
        EXPECT_EQ(contains(keys_[0]), 0) << when;
        EXPECT_EQ(contains(keys_[2]), 0) << when;
        EXPECT_EQ(stats().slots_inflight, 0u) << when;
        ASSERT_EQ(remove(keys_[1]), 0);

        items = put_items();
        ASSERT_EQ(daxkv_put_batch_cuda(s(), items.data(), items.size(), stream_, 0), 3);
        auto got = get_items(4 << 20);
        EXPECT_EQ(daxkv_get_batch_cuda(s(), got.data(), got.size(), bad, 0), 1) << when;
        EXPECT_EQ(got[0].status, -EIO) << when;
        EXPECT_EQ(got[1].status, 0) << when;
        EXPECT_EQ(got[2].status, -EIO) << when;
        EXPECT_EQ(fake().get("sticky_error"), 0) << when;
        EXPECT_EQ(fake().get("violations"), 0) << when << ": " << fake().violation();
        expect_nothing_held(keys_, when);
    }

    // Pointers: host memory as the device side, a range past the allocation.
    std::vector<uint8_t> host(8192, 0x5A);
    auto items = put_items();
    items[0].data = host.data();
    items[2].data = dev_[2]->data() + 4096; // 4096 bytes past its end
    EXPECT_EQ(daxkv_put_batch_cuda(s(), items.data(), items.size(), stream_, 0), 1);
    EXPECT_EQ(items[0].status, -EIO);
    EXPECT_EQ(items[2].status, -EIO);
    EXPECT_EQ(fake().get("sticky_error"), 0);
    EXPECT_EQ(contains(keys_[0]), 0);
    EXPECT_EQ(contains(keys_[2]), 0);
    ASSERT_EQ(remove(keys_[1]), 0);
    items = put_items();
    ASSERT_EQ(daxkv_put_batch_cuda(s(), items.data(), items.size(), stream_, 0), 3);
    auto got = get_items(4 << 20);
    got[0].data = host.data();
    got[2].data = out_[2]->data() + out_[2]->size() - 100; // the value runs past its end
    EXPECT_EQ(daxkv_get_batch_cuda(s(), got.data(), got.size(), stream_, 0), 1);
    EXPECT_EQ(got[0].status, -EIO);
    EXPECT_EQ(got[2].status, -EIO);
    sync();
    EXPECT_EQ(host[0], 0x5A) << "a refused copy wrote into host memory";
    EXPECT_EQ(fake().get("sticky_error"), 0);
    expect_nothing_held(keys_, "bad pointers");
}

// Out of memory at any allocation of daxkv_cuda_register: a failed call
// leaves nothing registered and no sticky error; the next one registers.
TEST_F(Cuda, OutOfMemoryWhileRegisteringLeavesNothingRegistered) {
    open_cuda(4096, 64, "64KiB"); // several chunks
    const long runs = sweep_allocations(
        "daxkv_cuda_register", [] {}, [&] { return daxkv_cuda_register(s(), 0); },
        [&](int rc, const std::string &when) {
            if (rc == 0) {
                EXPECT_GT(fake().get("registered_ranges"), 1) << when;
                EXPECT_EQ(daxkv_cuda_unregister(s()), 0) << when << ": " << daxkv_errmsg();
            } else {
                EXPECT_EQ(daxkv_cuda_unregister(s()), -ENOENT) << when;
            }
            EXPECT_EQ(fake().get("registered_ranges"), 0) << when;
            EXPECT_EQ(fake().get("sticky_error"), 0) << when;
        });
    EXPECT_GT(runs, 1) << "registering allocates nothing?";
}

// Every CUDA call of daxkv_cuda_register failing in turn (cudaGetDevice,
// cudaDeviceGetAttribute, each chunk's cudaHostRegister): -EIO for the
// queries, -ENOMEM for a chunk the driver has no memory for; nothing stays
// registered, no sticky error is left, and the next call registers.
TEST_F(Cuda, EveryCudaCallOfARegistrationFailingInTurn) {
    open_cuda(4096, 64, "64KiB"); // several chunks
    long n = 1;
    for (;; ++n) {
        const std::string when = "call " + std::to_string(n) + " failing";
        fake().reset();
        fake().set("fail_call_at", n);
        const int rc = daxkv_cuda_register(s(), 0);
        const bool hit = fake().get("api_calls") >= n;
        fake().set("fail_call_at", 0);
        EXPECT_EQ(fake().get("sticky_error"), 0) << when;
        if (!hit) {
            EXPECT_EQ(rc, 0) << when << ": " << daxkv_errmsg();
            break;
        }
        EXPECT_TRUE(rc == (n <= 2 ? -EIO : -ENOMEM)) << when << ": " << rc;
        EXPECT_EQ(fake().get("registered_ranges"), 0) << when;
        ASSERT_EQ(daxkv_cuda_register(s(), 0), 0) << when << ": " << daxkv_errmsg();
        ASSERT_EQ(daxkv_cuda_unregister(s()), 0) << when;
    }
    EXPECT_GT(n, 4);
    EXPECT_EQ(fake().get("violations"), 0) << fake().violation();
}

// Bad inputs: a put batch in which no item is claimed (every key already
// stored without DAXKV_REPLACE; NULL key, value over slot_bytes, NULL data;
// n = 0), with every cudaEventSynchronize failing. Nothing is copied, so
// nothing may be waited for: the call neither waits for earlier work on the
// caller's stream nor leaves a sticky error behind.
TEST_P(CudaPaths, PutWithNothingClaimedNeitherWaitsNorLeavesAStickyError) {
    open_cuda(64 * 1024, 8);
    maybe_register();
    make_values({1000, 2000});
    auto items = put_items();
    ASSERT_EQ(daxkv_put_batch_cuda(s(), items.data(), items.size(), stream_, 0), 2);
    sync();
    fake().reset(); // counters from here; the registration stays
    const long events = fake().get("events"); // a staging set's stay with the store
    fake().set("fail_event_sync", 1);
    auto again = put_items();
    EXPECT_EQ(daxkv_put_batch_cuda(s(), again.data(), again.size(), stream_, 0), 0);
    EXPECT_EQ(again[0].status, DAXKV_EXISTED);
    EXPECT_EQ(again[1].status, DAXKV_EXISTED);
    std::string k = "new";
    daxkv_item bad[3] = {{nullptr, 3, dev_[0]->data(), 10, nullptr, 0, 0},
                         {k.data(), k.size(), dev_[0]->data(), 65 * 1024, nullptr, 0, 0},
                         {k.data(), k.size(), nullptr, 10, nullptr, 0, 0}};
    EXPECT_EQ(daxkv_put_batch_cuda(s(), bad, 3, stream_, 0), 0);
    EXPECT_EQ(bad[0].status, -EINVAL);
    EXPECT_EQ(bad[1].status, -E2BIG);
    EXPECT_EQ(bad[2].status, -EINVAL);
    EXPECT_EQ(daxkv_put_batch_cuda(s(), bad, 0, stream_, 0), 0);
    for (const char *fn : {"cudaEventCreateWithFlags", "cudaEventRecord", "cudaEventSynchronize",
                           "cudaStreamSynchronize", "cudaMemcpyAsync"})
        EXPECT_EQ(calls(fn), 0) << fn;
    EXPECT_EQ(fake().get("sticky_error"), 0);
    EXPECT_EQ(fake().get("events"), events);
    EXPECT_EQ(stats().slots_inflight, 0u);
    EXPECT_EQ(value(keys_[1]), src_[1]);
}

// A staged get whose staging-buffer waits fail (cudaEventSynchronize): a
// value of 1.5 MiB fills both 1 MiB buffers; the second fill holds only a
// piece of the item the first wait failed, and its own failed wait
// reported nothing, leaving CUDA's error for this thread set for the
// caller's next CUDA call.
TEST_F(Cuda, AStagedGetWhoseWaitsFailLeavesNoStickyError) {
    open_cuda(2 * 1024 * 1024, 4);
    make_values({1536 * 1024});
    auto items = put_items();
    ASSERT_EQ(daxkv_put_batch_cuda(s(), items.data(), 1, stream_, 0), 1);
    auto got = get_items(2 * 1024 * 1024);
    ASSERT_EQ(daxkv_get_batch_cuda(s(), got.data(), 1, stream_, 0), 1); // both buffers used
    sync();
    fake().reset();
    fake().set("fail_event_sync", 1);
    got = get_items(2 * 1024 * 1024);
    EXPECT_EQ(daxkv_get_batch_cuda(s(), got.data(), 1, stream_, 0), 0);
    fake().set("fail_event_sync", 0);
    EXPECT_EQ(got[0].status, -EIO);
    EXPECT_EQ(fake().get("sticky_error"), 0);
    EXPECT_EQ(value(keys_[0]), src_[0]); // the entry is kept
}

// A registered get with DAXKV_PREFIX whose completion cannot be awaited
// (cudaLaunchHostFunc and cudaStreamSynchronize failing): every item sent
// was -EIO, where the prefix ends at the first and those after it are
// -ENOENT, as after any item whose copy failed.
TEST_F(Cuda, ARegisteredPrefixGetWhoseWaitFailsEndsAtItsFirstItem) {
    open_cuda(64 * 1024, 8);
    ASSERT_EQ(daxkv_cuda_register(s(), 0), 0) << daxkv_errmsg();
    make_values({1000, 2000, 3000, 4000});
    auto items = put_items();
    ASSERT_EQ(daxkv_put_batch_cuda(s(), items.data(), 4, stream_, 0), 4);
    sync();
    fake().set("fail_launch_host_func", 1);
    fake().set("fail_stream_sync", 1);
    auto got = get_items(64 * 1024);
    EXPECT_EQ(daxkv_get_batch_cuda(s(), got.data(), 4, stream_, DAXKV_PREFIX), 0);
    fake().set("fail_launch_host_func", 0);
    fake().set("fail_stream_sync", 0);
    EXPECT_EQ(got[0].status, -EIO);
    for (size_t i = 1; i < 4; ++i)
        EXPECT_EQ(got[i].status, -ENOENT) << i;
    EXPECT_TRUE(contains_text(daxkv_errmsg(), "item 0:")) << daxkv_errmsg();
    EXPECT_EQ(fake().get("sticky_error"), 0);
}

// The statistics count a GPU batch as the host batches are counted: one
// call in batches and batch_latency, its values in item_bytes. Inputs: a
// put and a get of two values, an empty put (n = 0), and, without a
// runtime, a refused call (not a batch: not counted).
TEST_P(CudaPaths, GpuBatchesCountInTheBatchStatistics) {
    open_cuda(64 * 1024, 8);
    maybe_register();
    make_values({6000, 100});
    const struct daxkv_stats st0 = stats();
    auto items = put_items();
    ASSERT_EQ(daxkv_put_batch_cuda(s(), items.data(), 2, stream_, 0), 2);
    auto got = get_items(64 * 1024);
    ASSERT_EQ(daxkv_get_batch_cuda(s(), got.data(), 2, stream_, 0), 2);
    ASSERT_EQ(daxkv_put_batch_cuda(s(), items.data(), 0, stream_, 0), 0);
    sync();
    const struct daxkv_stats st1 = stats();
    EXPECT_EQ(st1.batches - st0.batches, 3u);
    EXPECT_EQ(st1.batch_latency.count - st0.batch_latency.count, 3u);
    EXPECT_EQ(st1.item_bytes.count - st0.item_bytes.count, 4u);
    if (!direct()) {
        use_runtime("/nonexistent/libcudart.so.12");
        store_.reset(); // a fresh store: the runtime is chosen at its first GPU call
        open_cuda(64 * 1024, 8);
        const uint64_t before = stats().batches;
        EXPECT_EQ(daxkv_get_batch_cuda(s(), got.data(), 2, stream_, 0), -ENOTSUP);
        EXPECT_EQ(stats().batches, before);
    }
}

// Empty values in a put batch need no copy: they are stored whatever
// happens to the copies of the others, on both paths alike. Inputs: values
// of 0, 3000 and 0 bytes with every cudaEventRecord and
// cudaStreamSynchronize failing (the copies' completion cannot be known),
// then a batch of only empty values, which makes no CUDA call at all.
TEST_P(CudaPaths, EmptyValuesAreStoredWhateverTheWaitForOtherCopiesSays) {
    open_cuda(64 * 1024, 8);
    maybe_register();
    make_values({0, 3000, 0});
    auto items = put_items();
    fake().set("fail_event_record", 1);
    fake().set("fail_stream_sync", 1);
    EXPECT_EQ(daxkv_put_batch_cuda(s(), items.data(), 3, stream_, 0), 2);
    EXPECT_EQ(items[0].status, 0);
    EXPECT_EQ(items[1].status, -EIO);
    EXPECT_TRUE(contains_text(daxkv_errmsg(), "cudaStreamSynchronize")) << daxkv_errmsg();
    EXPECT_EQ(items[2].status, 0);
    EXPECT_EQ(fake().get("sticky_error"), 0);
    fake().set("fail_event_record", 0);
    fake().set("fail_stream_sync", 0);
    EXPECT_EQ(value(keys_[0]).size(), 0u);
    EXPECT_EQ(contains(keys_[1]), 0);
    EXPECT_EQ(value(keys_[2]).size(), 0u);
    EXPECT_EQ(stats().slots_inflight, 0u);

    fake().reset();
    std::vector<daxkv_item> empties = {items[0], items[2]};
    EXPECT_EQ(daxkv_put_batch_cuda(s(), empties.data(), 2, stream_, DAXKV_REPLACE), 2);
    for (const char *fn : {"cudaEventCreateWithFlags", "cudaEventRecord", "cudaEventSynchronize",
                           "cudaStreamSynchronize", "cudaMemcpyAsync"})
        EXPECT_EQ(calls(fn), 0) << fn;
}

TEST_P(CudaPaths, WriteIsInvisibleUntilItsCopyCompleted) {
    open_cuda(64 * 1024, 8);
    maybe_register();
    make_values({50000});
    auto items = put_items();
    fake().set("hold", 1);
    std::atomic<int> rc{-1};
    std::thread t([&] { rc = daxkv_put_batch_cuda(s(), items.data(), 1, stream_, 0); });
    while (fake().get("queued") == 0)
        std::this_thread::sleep_for(std::chrono::milliseconds(1));
    EXPECT_EQ(contains(keys_[0]), 0) << "visible before its copy ran";
    std::vector<uint8_t> other = pattern(9, 10);
    EXPECT_EQ(put(keys_[0], other), DAXKV_EXISTED) << "the key is in flight";
    EXPECT_EQ(stats().slots_inflight, 1u);
    fake().set("hold", 0);
    t.join();
    EXPECT_EQ(rc.load(), 1);
    EXPECT_EQ(value(keys_[0]), src_[0]);
}

INSTANTIATE_TEST_SUITE_P(DirectAndStaged, CudaPaths, ::testing::Values(true, false),
                         [](const ::testing::TestParamInfo<bool> &i) {
                             return std::string(i.param ? "Direct" : "Staged");
                         });

// ---------------------------------------------------------------------------
// Lifetimes of entries under a DMA

TEST_F(Cuda, RemovedEntryStaysUntilTheDmaReadingItCompleted) {
    open_cuda(64 * 1024, 4);
    ASSERT_EQ(daxkv_cuda_register(s(), 0), 0);
    make_values({60000});
    auto items = put_items();
    ASSERT_EQ(daxkv_put_batch_cuda(s(), items.data(), 1, stream_, 0), 1);
    fake().set("hold", 1);
    auto got = get_items(64 * 1024);
    ASSERT_EQ(daxkv_get_batch_cuda(s(), got.data(), 1, stream_, 0), 1);
    // The copy is enqueued, not done. Remove the key and overwrite the
    // whole arena with other keys: the borrowed slot must not be reused.
    ASSERT_EQ(remove(keys_[0], DAXKV_FORCE), 0);
    EXPECT_EQ(contains(keys_[0]), 0);
    EXPECT_EQ(stats().slots_pending_free, 1u);
    int stored = 0;
    for (int i = 0; i < 12; ++i)
        stored += put("other" + std::to_string(i), pattern(50 + i, 60000)) == 0;
    EXPECT_EQ(stored, 12) << "eviction makes room among the free slots";
    EXPECT_EQ(stats().slots_pending_free, 1u) << "the borrowed slot was reused";
    fake().set("hold", 0);
    sync();
    EXPECT_TRUE(out_matches(0)) << "the DMA read bytes that were overwritten";
    EXPECT_EQ(stats().slots_pending_free, 0u) << "released when the stream passed the copy";
}

TEST_F(Cuda, EvictionSkipsEntriesUnderDma) {
    open_cuda(64 * 1024, 4);
    ASSERT_EQ(daxkv_cuda_register(s(), 0), 0);
    make_values({60000, 60000, 60000, 60000});
    auto items = put_items();
    ASSERT_EQ(daxkv_put_batch_cuda(s(), items.data(), 4, stream_, 0), 4);
    fake().set("hold", 1);
    auto got = get_items(64 * 1024);
    ASSERT_EQ(daxkv_get_batch_cuda(s(), got.data(), 4, stream_, 0), 4);
    // Every entry is under DMA: nothing is evictable.
    EXPECT_EQ(put("new", pattern(3, 100)), -ENOSPC);
    fake().set("hold", 0);
    sync();
    for (size_t i = 0; i < 4; ++i)
        EXPECT_TRUE(out_matches(i));
    EXPECT_EQ(put("new", pattern(3, 100)), 0) << "evictable again after the DMA";
}

TEST_F(Cuda, CloseWaitsForInFlightDmaBeforeUnregisteringAndUnmapping) {
    open_cuda(64 * 1024, 4);
    ASSERT_EQ(daxkv_cuda_register(s(), 0), 0);
    make_values({60000});
    auto items = put_items();
    ASSERT_EQ(daxkv_put_batch_cuda(s(), items.data(), 1, stream_, 0), 1);
    fake().set("hold", 1);
    auto got = get_items(64 * 1024);
    ASSERT_EQ(daxkv_get_batch_cuda(s(), got.data(), 1, stream_, 0), 1);
    std::atomic<bool> closed{false};
    daxkv_store *raw = store_.release();
    std::thread t([&] {
        daxkv_close(raw);
        closed = true;
    });
    std::this_thread::sleep_for(std::chrono::milliseconds(50));
    EXPECT_FALSE(closed.load()) << "the store went away under a DMA";
    EXPECT_GT(fake().get("registered_ranges"), 0);
    fake().set("hold", 0);
    t.join();
    EXPECT_EQ(fake().get("registered_ranges"), 0);
    EXPECT_TRUE(out_matches(0));
    // The fake counts an unregister of a range a queued copy still reads
    // as a violation (checked in TearDown).
}

TEST_F(Cuda, UnregisterWaitsForReadsStillCopying) {
    open_cuda(64 * 1024, 4);
    ASSERT_EQ(daxkv_cuda_register(s(), 0), 0);
    make_values({60000});
    auto items = put_items();
    ASSERT_EQ(daxkv_put_batch_cuda(s(), items.data(), 1, stream_, 0), 1);
    fake().set("copy_delay_us", 20000);
    auto got = get_items(64 * 1024);
    ASSERT_EQ(daxkv_get_batch_cuda(s(), got.data(), 1, stream_, 0), 1);
    EXPECT_EQ(daxkv_cuda_unregister(s()), 0);
    EXPECT_EQ(fake().get("queued_copies"), 0) << "unregistered before the copy ran";
    EXPECT_TRUE(out_matches(0));
}

TEST_F(Cuda, WithoutHostFunctionsTheReadWaitsForItsCopies) {
    open_cuda(64 * 1024, 4);
    ASSERT_EQ(daxkv_cuda_register(s(), 0), 0);
    make_values({60000});
    auto items = put_items();
    ASSERT_EQ(daxkv_put_batch_cuda(s(), items.data(), 1, stream_, 0), 1);
    fake().set("fail_launch_host_func", 1);
    fake().set("copy_delay_us", 5000);
    auto got = get_items(64 * 1024);
    ASSERT_EQ(daxkv_get_batch_cuda(s(), got.data(), 1, stream_, 0), 1);
    EXPECT_EQ(fake().get("queued"), 0);
    EXPECT_TRUE(out_matches(0));
    EXPECT_EQ(stats().leases_active, 0u);
    ASSERT_EQ(remove(keys_[0]), 0);
    EXPECT_EQ(stats().slots_pending_free, 0u) << "the borrow was kept after the wait";
    EXPECT_EQ(fake().get("sticky_error"), 0);
}

// Injected: cudaLaunchHostFunc fails, and so does the cudaStreamSynchronize
// the read falls back to. Whether the copies completed is unknown: the item
// says -EIO (not a hit), nothing stays borrowed, no sticky error is left,
// and the next read works.
TEST_F(Cuda, ReadWhoseFallbackWaitFailsReportsItsItemsFailed) {
    open_cuda(64 * 1024, 4);
    ASSERT_EQ(daxkv_cuda_register(s(), 0), 0);
    make_values({60000, 0});
    auto items = put_items();
    ASSERT_EQ(daxkv_put_batch_cuda(s(), items.data(), 2, stream_, 0), 2);
    fake().set("fail_launch_host_func", 1);
    fake().set("fail_stream_sync", 1);
    auto got = get_items(64 * 1024);
    EXPECT_EQ(daxkv_get_batch_cuda(s(), got.data(), 2, stream_, 0), 1);
    EXPECT_EQ(got[0].status, -EIO);
    EXPECT_TRUE(contains_text(daxkv_errmsg(), "cudaStreamSynchronize")) << daxkv_errmsg();
    EXPECT_EQ(got[1].status, 0) << "an empty value needs no copy";
    EXPECT_EQ(stats().leases_active, 0u);
    EXPECT_EQ(fake().get("sticky_error"), 0);
    fake().set("fail_stream_sync", 0);
    got = get_items(64 * 1024);
    EXPECT_EQ(daxkv_get_batch_cuda(s(), got.data(), 2, stream_, 0), 2);
    EXPECT_TRUE(out_matches(0));
}

TEST_F(Cuda, StagingBuffersThatCannotBeAllocatedFailTheCall) {
    open_cuda(64 * 1024, 4);
    make_values({60000});
    auto items = put_items();
    fake().set("fail_host_alloc", 1);
    EXPECT_EQ(daxkv_put_batch_cuda(s(), items.data(), 1, stream_, 0), -ENOMEM);
    EXPECT_TRUE(contains_text(daxkv_errmsg(), "pinned staging buffer")) << daxkv_errmsg();
    EXPECT_EQ(contains(keys_[0]), 0);
    EXPECT_EQ(stats().slots_inflight, 0u);
    EXPECT_EQ(stats().slots_used, 0u);
    fake().set("fail_host_alloc", 0);
    EXPECT_EQ(daxkv_put_batch_cuda(s(), items.data(), 1, stream_, 0), 1);
}

// Bad input: staging buffers refused for another reason than memory (the
// GPU is in exclusive-process mode and taken: cudaHostAlloc says
// cudaErrorDevicesUnavailable). That is "another CUDA error" of the man
// page, -EIO naming the call, not -ENOMEM; nothing is stored or held, and
// no sticky error is left.
TEST_F(Cuda, StagingBuffersRefusedForAnotherReasonThanMemoryAreEIO) {
    open_cuda(64 * 1024, 4);
    make_values({60000});
    auto items = put_items();
    fake().set("fail_host_alloc", 46);
    EXPECT_EQ(daxkv_put_batch_cuda(s(), items.data(), 1, stream_, 0), -EIO);
    EXPECT_TRUE(contains_text(daxkv_errmsg(), "cudaHostAlloc")) << daxkv_errmsg();
    EXPECT_TRUE(contains_text(daxkv_errmsg(), "busy or unavailable")) << daxkv_errmsg();
    EXPECT_EQ(fake().get("sticky_error"), 0);
    EXPECT_EQ(contains(keys_[0]), 0);
    fake().set("fail_host_alloc", 0);
    ASSERT_EQ(put(keys_[0], src_[0]), 0);
    auto got = get_items(64 * 1024);
    fake().set("fail_host_alloc", 46);
    EXPECT_EQ(daxkv_get_batch_cuda(s(), got.data(), 1, stream_, 0), -EIO);
    EXPECT_EQ(fake().get("sticky_error"), 0);
    expect_nothing_held(keys_, "after the refused staging buffers");
    EXPECT_EQ(fake().get("host_allocs"), 0);
}

// ---------------------------------------------------------------------------
// The staged pipeline: one buffer is filled while the other one's DMA runs

TEST_F(Cuda, StagedReadFillsOneBufferWhileTheOtherIsCopied) {
    open_cuda(4 << 20, 4);
    make_values({4 << 20}); // 4 fills of the 1 MiB staging buffers
    std::vector<uint8_t> &v = src_[0];
    ASSERT_EQ(put(keys_[0], v), 0);
    fake().set("hold", 1); // DMAs wait
    auto got = get_items(4 << 20);
    std::atomic<int> rc{-100};
    std::thread t([&] { rc = daxkv_get_batch_cuda(s(), got.data(), 1, stream_, 0); });
    // Two fills are queued (copy + event each) while the DMA engine is held;
    // the third waits for the first buffer's event, not for the stream.
    while (calls("cudaEventSynchronize") == 0)
        std::this_thread::sleep_for(std::chrono::milliseconds(1));
    std::this_thread::sleep_for(std::chrono::milliseconds(20));
    EXPECT_EQ(calls("cudaMemcpyAsync"), 2);
    EXPECT_EQ(fake().get("queued"), 4);
    EXPECT_EQ(rc.load(), -100) << "returned before its buffers were free";
    fake().set("hold", 0);
    t.join();
    EXPECT_EQ(rc.load(), 1);
    sync();
    EXPECT_TRUE(out_matches(0));
    // Sources alternate between the two buffers; a buffer is reused only
    // after a wait for the event recorded behind its previous DMA.
    std::vector<const void *> srcs, events;
    std::vector<std::string> order;
    for (const auto &c : fake().calls()) {
        std::string fn = c.fn;
        if (fn == "cudaMemcpyAsync")
            srcs.push_back(c.b);
        if (fn == "cudaEventRecord" || fn == "cudaEventSynchronize" || fn == "cudaMemcpyAsync")
            order.push_back(fn);
    }
    ASSERT_EQ(srcs.size(), 4u);
    EXPECT_NE(srcs[0], srcs[1]);
    EXPECT_EQ(srcs[0], srcs[2]);
    EXPECT_EQ(srcs[1], srcs[3]);
    std::vector<std::string> want = {
        "cudaMemcpyAsync", "cudaEventRecord", "cudaMemcpyAsync", "cudaEventRecord",
        "cudaEventSynchronize", "cudaMemcpyAsync", "cudaEventRecord",
        "cudaEventSynchronize", "cudaMemcpyAsync", "cudaEventRecord"};
    EXPECT_EQ(order, want);
}

TEST_F(Cuda, StagedWriteDrainsOneBufferWhileTheNextIsCopied) {
    open_cuda(4 << 20, 4);
    make_values({(3 << 20) + 100});
    auto items = put_items();
    fake().set("copy_delay_us", 2000);
    ASSERT_EQ(daxkv_put_batch_cuda(s(), items.data(), 1, stream_, 0), 1);
    EXPECT_EQ(value(keys_[0]), src_[0]);
    // DMA of fill k+1 is enqueued before the workers drain fill k.
    std::vector<std::string> order;
    for (const auto &c : fake().calls()) {
        std::string fn = c.fn;
        if (fn == "cudaMemcpyAsync" || fn == "cudaEventRecord" || fn == "cudaEventSynchronize")
            order.push_back(fn);
    }
    std::vector<std::string> want = {
        "cudaMemcpyAsync", "cudaEventRecord",                          // fill 0
        "cudaMemcpyAsync", "cudaEventRecord", "cudaEventSynchronize",  // fill 1, drain 0
        "cudaMemcpyAsync", "cudaEventRecord", "cudaEventSynchronize",  // fill 2, drain 1
        "cudaMemcpyAsync", "cudaEventRecord", "cudaEventSynchronize",  // fill 3, drain 2
        "cudaEventSynchronize"};                                       // drain 3
    EXPECT_EQ(order, want);
}

// ---------------------------------------------------------------------------
// Concurrency (run under TSan by the sanitizer suite)

TEST_F(Cuda, ConcurrentTransfersWhileRegistrationChanges) {
    open_cuda(256 * 1024, 64, "1MiB");
    std::atomic<bool> stop{false};
    std::atomic<int> bad{0};
    std::thread toggler([&] {
        while (!stop) {
            int rc = daxkv_cuda_register(s(), 0);
            if (rc != 0)
                bad++;
            rc = daxkv_cuda_unregister(s());
            if (rc != 0)
                bad++;
        }
    });
    std::vector<std::thread> workers;
    for (int w = 0; w < 3; ++w)
        workers.emplace_back([&, w] {
            void *st = nullptr;
            fake().stream_create(&st);
            for (int round = 0; round < 10; ++round) {
                std::string k = "w" + std::to_string(w) + "/" + std::to_string(round);
                std::vector<uint8_t> v = pattern(w * 100 + round, 100000 + round * 1000);
                DevBuf in(v.size()), out(v.size());
                std::memcpy(in.data(), v.data(), v.size());
                daxkv_item it{k.data(), k.size(), in.data(), v.size(), nullptr, 0, 0};
                if (daxkv_put_batch_cuda(s(), &it, 1, st, 0) != 1)
                    bad++;
                daxkv_item g{k.data(), k.size(), out.data(), v.size(), nullptr, 0, 0};
                if (daxkv_get_batch_cuda(s(), &g, 1, st, 0) != 1)
                    bad++;
                fake().stream_sync(st);
                if (std::memcmp(out.data(), v.data(), v.size()) != 0)
                    bad++;
            }
            fake().stream_destroy(st);
        });
    for (auto &t : workers)
        t.join();
    stop = true;
    toggler.join();
    EXPECT_EQ(bad.load(), 0);
}

// Everything at once, over a pool of three devices: GPU puts (with
// DAXKV_REPLACE) and gets of values of 24 bytes, unaligned, one byte under
// and over the 1 MiB staging buffer and split over two buffers; the
// registration toggled; one device removed and added back (migrating, with
// and without DAXKV_FORCE); another shrunk and grown; keys force-removed
// and replaced from the host. Every value a GPU get says it read is one
// version of its key, byte for byte; every status is one the batch calls
// document for what happened; nothing stays claimed or borrowed; the fake
// saw nothing unsafe (a registered range unmapped, a buffer freed under a
// copy); and closing the store while a read's DMA is held waits for it.
TEST_F(Cuda, GpuTransfersWhileTheRegistrationThePoolAndTheKeysChange) {
    const uint64_t slot = 2 << 20;
    const uint64_t arena = arena_bytes_for(slot, 12, 256);
    const std::string second = dir_.file("second"), third = dir_.file("third");
    ConfigPtr cfg;
    ASSERT_EQ(make_config(&cfg, path_,
                          StoreSpec{slot, 12}
                              .set("hotplug", "1")
                              .set("cuda_staging_bytes", "1MiB")
                              .set("cuda_register_chunk", "256KiB")),
              0);
    ASSERT_EQ(daxkv_config_add_device(cfg.get(), second.c_str(), arena), 0);
    ASSERT_EQ(daxkv_config_add_device(cfg.get(), third.c_str(), arena), 0);
    daxkv_store *raw = nullptr;
    ASSERT_EQ(daxkv_open(&raw, cfg.get()), 0) << daxkv_errmsg();
    store_.reset(raw);
    spec_ = StoreSpec{slot, 12};

    constexpr uint32_t kKeys = 16;
    const size_t sizes[] = {24, 4097, (1 << 20) - 1, (1 << 20) + 1, (3 << 19) + 3};
    std::vector<std::string> keys;
    for (uint32_t i = 0; i < kKeys; ++i)
        keys.push_back(key_of(i));
    std::atomic<bool> stop{false};
    std::atomic<uint64_t> version{0};
    std::mutex bad_m;
    std::vector<std::string> bad;
    auto report = [&](const std::string &what) {
        std::lock_guard<std::mutex> g(bad_m);
        if (bad.size() < 20)
            bad.push_back(what);
    };
    auto hotplug_result = [] {
        daxkv_hotplug_result r;
        std::memset(&r, 0, sizeof r);
        r.struct_size = sizeof r;
        return r;
    };

    std::vector<std::thread> threads;
    std::atomic<int> gets_checked{0}, readds{0}, resizes{0}, registrations{0};
    for (int w = 0; w < 2; ++w)
        threads.emplace_back([&, w] {
            void *st = nullptr;
            fake().stream_create(&st);
            uint64_t rng = 88172645463325252ull + w;
            auto next = [&] {
                rng ^= rng << 13;
                rng ^= rng >> 7;
                rng ^= rng << 17;
                return rng;
            };
            DevBuf in(slot);
            std::vector<std::unique_ptr<DevBuf>> outs;
            for (int k = 0; k < 3; ++k)
                outs.emplace_back(new DevBuf(slot));
            while (!stop) {
                const uint32_t i = next() % kKeys;
                const size_t len = sizes[next() % 5];
                const std::vector<uint8_t> v = versioned_value(i, ++version, len);
                std::memcpy(in.data(), v.data(), len);
                daxkv_item it{keys[i].data(), keys[i].size(), in.data(), len, nullptr, 0, 0};
                const int rc = daxkv_put_batch_cuda(s(), &it, 1, st, DAXKV_REPLACE);
                // Stored; being written by the other worker; no room while
                // the pool shrinks; cancelled by a forced remove.
                if (rc < 0 || (it.status != 0 && it.status != DAXKV_EXISTED &&
                               it.status != -ENOSPC && it.status != -ECANCELED))
                    report("put " + keys[i] + ": rc " + std::to_string(rc) + " status " +
                           std::to_string(it.status) + ": " + daxkv_errmsg());
                fake().stream_sync(st); // the device buffer is rewritten next round
                daxkv_item g[3];
                uint32_t gk[3];
                for (int k = 0; k < 3; ++k) {
                    gk[k] = next() % kKeys;
                    g[k] = daxkv_item{keys[gk[k]].data(), keys[gk[k]].size(), outs[k]->data(),
                                      slot, nullptr, 0, 0};
                }
                const int got = daxkv_get_batch_cuda(s(), g, 3, st, 0);
                fake().stream_sync(st);
                int hits = 0;
                for (int k = 0; k < 3; ++k) {
                    if (g[k].status == 0) {
                        ++hits;
                        std::string why = check_versioned(gk[k], outs[k]->data(), g[k].len);
                        if (!why.empty())
                            report("get " + keys[gk[k]] + ": " + why);
                        gets_checked++;
                    } else if (g[k].status != -ENOENT) {
                        report("get " + keys[gk[k]] + ": status " + std::to_string(g[k].status));
                    }
                }
                if (got != hits)
                    report("get returned " + std::to_string(got) + " for " +
                           std::to_string(hits) + " hits: " + daxkv_errmsg());
            }
            fake().stream_sync(st);
            fake().stream_destroy(st);
        });
    threads.emplace_back([&] { // the registration
        while (!stop) {
            if (int rc = daxkv_cuda_register(s(), 0))
                report("register: " + std::to_string(rc) + " " + daxkv_errmsg());
            registrations++;
            std::this_thread::sleep_for(std::chrono::milliseconds(3));
            if (int rc = daxkv_cuda_unregister(s()))
                report("unregister: " + std::to_string(rc) + " " + daxkv_errmsg());
        }
    });
    threads.emplace_back([&] { // one device out and back in
        for (unsigned round = 0; !stop; ++round) {
            daxkv_hotplug_result r = hotplug_result();
            const unsigned flags = round % 2 ? DAXKV_FORCE : 0;
            int rc = daxkv_device_remove(s(), third.c_str(), DAXKV_MIGRATE, flags, &r);
            if (rc == -ENOSPC || rc == -EBUSY)
                continue; // no room for its entries elsewhere; a write in flight
            if (rc != 0) {
                report("remove: " + std::to_string(rc) + " " + daxkv_errmsg());
                return;
            }
            if ((rc = daxkv_device_add(s(), third.c_str(), arena)) != 0) {
                report("add: " + std::to_string(rc) + " " + daxkv_errmsg());
                return;
            }
            readds++;
        }
    });
    threads.emplace_back([&] { // another one shrunk and grown
        for (unsigned round = 0; !stop; ++round) {
            daxkv_hotplug_result r = hotplug_result();
            const uint64_t bytes = (round % 2 ? 12 : 5) * slot;
            int rc = daxkv_device_resize(s(), second.c_str(), bytes, DAXKV_MIGRATE,
                                         round % 4 == 1 ? DAXKV_FORCE : 0, &r);
            if (rc != 0 && rc != -ENOSPC && rc != -EBUSY)
                report("resize: " + std::to_string(rc) + " " + daxkv_errmsg());
            resizes += rc == 0;
            std::this_thread::sleep_for(std::chrono::milliseconds(1));
        }
    });
    threads.emplace_back([&] { // the host removes and replaces keys
        for (uint32_t round = 0; !stop; ++round) {
            const uint32_t i = round * 7 % kKeys;
            if (round % 3 == 0) {
                int rc = remove(keys[i], DAXKV_FORCE);
                if (rc != 0 && rc != -ENOENT)
                    report("remove " + keys[i] + ": " + std::to_string(rc));
            } else {
                int rc = put(keys[i], versioned_value(i, ++version, 3000), DAXKV_REPLACE);
                if (rc != 0 && rc != DAXKV_EXISTED && rc != -ENOSPC && rc != -ECANCELED)
                    report("host put " + keys[i] + ": " + std::to_string(rc) + " " +
                           daxkv_errmsg());
            }
            std::this_thread::sleep_for(std::chrono::milliseconds(1));
        }
    });
    std::this_thread::sleep_for(std::chrono::milliseconds(1500));
    stop = true;
    for (auto &t : threads)
        t.join();
    for (const auto &b : bad)
        ADD_FAILURE() << b;
    EXPECT_GT(gets_checked.load(), 20);
    EXPECT_GT(readds.load(), 2);
    EXPECT_GT(resizes.load(), 2);
    EXPECT_GT(registrations.load(), 2);
    EXPECT_EQ(fake().get("violations"), 0) << fake().violation();
    EXPECT_EQ(stats().leases_active, 0u);
    expect_nothing_held(keys, "after the storm");

    // Close while a direct read's DMA is held.
    ASSERT_EQ(daxkv_cuda_register(s(), 0), 0) << daxkv_errmsg();
    const std::vector<uint8_t> v = versioned_value(1, 1, (1 << 20) + 1);
    ASSERT_EQ(put(keys[1], v), 0);
    DevBuf out(slot);
    daxkv_item it{keys[1].data(), keys[1].size(), out.data(), slot, nullptr, 0, 0};
    fake().set("hold", 1);
    ASSERT_EQ(daxkv_get_batch_cuda(s(), &it, 1, stream_, 0), 1);
    std::atomic<bool> closed{false};
    std::thread closer([&, raw = store_.release()] {
        daxkv_close(raw);
        closed = true;
    });
    std::this_thread::sleep_for(std::chrono::milliseconds(30));
    EXPECT_FALSE(closed.load()) << "the store went away under a DMA";
    fake().set("hold", 0);
    closer.join();
    EXPECT_EQ(check_versioned(1, out.data(), v.size()), "");
}

} // namespace
