// A fake CUDA runtime for the test suite (see fakecuda.h): the functions
// libdaxkv loads from libcudart, with host memory as "device" memory, one
// simulated stream thread, call recording, safety checks and failure
// injection. Error codes and flag values are CUDA's.
#include "fakecuda.h"

#include <algorithm>
#include <chrono>
#include <condition_variable>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <deque>
#include <map>
#include <set>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

#include <dlfcn.h>
#include <sys/mman.h>
#include <unistd.h>

namespace {

// cudaError_t values used here.
constexpr int kSuccess = 0, kInvalidValue = 1, kMemoryAllocation = 2, kDevicesUnavailable = 46,
              kNoDevice = 100,
              kNotReady = 600, kAlreadyRegistered = 712, kNotRegistered = 713,
              kInvalidResourceHandle = 400, kNotSupported = 801;
constexpr int kH2H = 0, kH2D = 1, kD2H = 2;
constexpr unsigned kRegisterIoMemory = 0x04;

using HostFn = void (*)(void *);

struct Op {
    enum Type { copy, hostfn, marker } type;
    void *dst = nullptr;
    const void *src = nullptr;
    size_t n = 0;
    HostFn fn = nullptr;
    void *user = nullptr;
    uint64_t seq = 0;
};

struct Event {
    uint64_t seq = 0; // the marker to wait for (0: never recorded)
};
struct Stream {
    int id;
};

// Initial-exec TLS: the library is dlopened, and LeakSanitizer crashes while
// scanning the dynamic TLS blocks of dlopened libraries on current glibc.
__attribute__((tls_model("initial-exec"))) thread_local int last_error = kSuccess;
__attribute__((tls_model("initial-exec"))) thread_local bool in_host_fn = false;

struct Fake {
    std::mutex m;
    std::condition_variable cv;
    std::deque<Op> queue;
    uint64_t enqueued = 0, done = 0;
    bool hold = false;
    // Settings.
    long devices = 1, host_register_supported = 1, fail_register_at = 0, fail_memcpy_at = 0,
         fail_launch_host_func = 0, fail_host_alloc = 0, copy_delay_us = 0,
         fail_event_create = 0, fail_event_record = 0, fail_event_sync = 0, fail_stream_sync = 0,
         fail_call_at = 0;
    // State.
    std::map<uintptr_t, size_t> registered, host_allocs, device_allocs;
    std::set<const void *> streams; // created and not destroyed
    std::map<std::string, long> calls;
    long register_calls = 0, memcpy_calls = 0, pageable = 0, violations = 0, events = 0,
         api_calls = 0;
    size_t max_register = 0;
    std::string violation;
    std::vector<fakecuda_call> log;

    Fake() {
        load_settings();
        std::thread([this] { run(); }).detach(); // lives as long as the process
    }

    static long env(const char *name, long dflt) {
        const char *v = std::getenv(name);
        return v && *v ? std::strtol(v, nullptr, 10) : dflt;
    }
    void load_settings() {
        devices = env("FAKECUDA_DEVICES", 1);
        host_register_supported = env("FAKECUDA_HOST_REGISTER_SUPPORTED", 1);
        fail_register_at = env("FAKECUDA_FAIL_REGISTER_AT", 0);
        fail_memcpy_at = env("FAKECUDA_FAIL_MEMCPY_AT", 0);
        fail_launch_host_func = env("FAKECUDA_FAIL_LAUNCH_HOST_FUNC", 0);
        fail_host_alloc = env("FAKECUDA_FAIL_HOST_ALLOC", 0);
        copy_delay_us = env("FAKECUDA_COPY_DELAY_US", 0);
        fail_event_create = fail_event_record = fail_event_sync = fail_stream_sync = 0;
        fail_call_at = 0;
        hold = false;
    }

    // Lock held.
    void record(const char *fn, const void *a, const void *b, size_t len, int kind, int result) {
        fakecuda_call c{};
        std::snprintf(c.fn, sizeof c.fn, "%s", fn);
        c.a = a;
        c.b = b;
        c.len = len;
        c.kind = kind;
        c.result = result;
        if (log.size() < 1000000)
            log.push_back(c);
        if (std::strncmp(fn, "exec:", 5) != 0)
            calls[fn]++;
    }
    void violate(const std::string &why) {
        violations++;
        violation = why;
    }
    // Every API entry: no CUDA call is allowed inside a host function.
    void enter(const char *fn) {
        if (in_host_fn)
            violate(std::string(fn) + " called from a host function");
    }
    // The entries that can fail (fail_call_at): counts the call; true when
    // it is the one to fail.
    bool injected() {
        ++api_calls;
        return fail_call_at && api_calls == fail_call_at;
    }

    static bool inside(const std::map<uintptr_t, size_t> &m, const void *p, size_t n) {
        auto a = reinterpret_cast<uintptr_t>(p);
        auto it = m.upper_bound(a);
        if (it == m.begin())
            return false;
        --it;
        return a >= it->first && a + n <= it->first + it->second;
    }
    static bool overlaps(const std::map<uintptr_t, size_t> &m, uintptr_t a, size_t n) {
        for (const auto &r : m)
            if (a < r.first + r.second && r.first < a + n)
                return true;
        return false;
    }
    // The legacy default stream (0 or cudaStreamLegacy), the per-thread one
    // (cudaStreamPerThread), or one created and not destroyed.
    bool stream_ok(const void *s) const {
        auto v = reinterpret_cast<uintptr_t>(s);
        return v <= 2 || streams.count(s) != 0;
    }
    bool queued_touches(uintptr_t a, size_t n) const {
        for (const Op &op : queue) {
            if (op.type != Op::copy)
                continue;
            auto d = reinterpret_cast<uintptr_t>(op.dst), s = reinterpret_cast<uintptr_t>(op.src);
            if ((d < a + n && a < d + op.n) || (s < a + n && a < s + op.n))
                return true;
        }
        return false;
    }

    uint64_t push(Op op) {
        op.seq = ++enqueued;
        queue.push_back(op);
        cv.notify_all();
        return op.seq;
    }
    void wait_done(std::unique_lock<std::mutex> &g, uint64_t seq) {
        cv.wait(g, [&] { return done >= seq; });
    }

    void run() {
        std::unique_lock<std::mutex> g(m);
        for (;;) {
            cv.wait(g, [this] { return !hold && !queue.empty(); });
            Op op = queue.front();
            long delay = copy_delay_us;
            g.unlock();
            if (op.type == Op::copy) {
                if (delay > 0)
                    std::this_thread::sleep_for(std::chrono::microseconds(delay));
                std::memcpy(op.dst, op.src, op.n);
            } else if (op.type == Op::hostfn) {
                in_host_fn = true;
                op.fn(op.user);
                in_host_fn = false;
            }
            g.lock();
            queue.pop_front();
            if (op.type == Op::copy)
                record("exec:memcpy", op.dst, op.src, op.n, 0, kSuccess);
            else if (op.type == Op::hostfn)
                record("exec:hostfn", reinterpret_cast<const void *>(op.fn), op.user, 0, 0,
                       kSuccess);
            done = op.seq;
            cv.notify_all();
        }
    }
};

Fake &fake() {
    static Fake *f = new Fake; // never destroyed: its thread outlives static destructors
    return *f;
}

// The test suite's out-of-memory injection fails the n-th allocation of a
// thread with operator new; a real runtime allocates with malloc, outside
// it. The fake's own allocations on a caller's thread are therefore kept out
// of the count, where the program has one.
class AllocationPause {
public:
    AllocationPause() noexcept { adjust(+1); }
    ~AllocationPause() { adjust(-1); }
    AllocationPause(const AllocationPause &) = delete;
    AllocationPause &operator=(const AllocationPause &) = delete;

private:
    static void adjust(int delta) noexcept {
        using Fn = void (*)(int);
        static const Fn pause =
            reinterpret_cast<Fn>(dlsym(RTLD_DEFAULT, "daxkv_test_pause_allocation_failures"));
        if (pause)
            pause(delta);
    }
};

int fail_with(int e) {
    last_error = e;
    return e;
}

// Whether every page of [p, p + n) is mapped: a real runtime cannot pin
// pages that do not exist (msync checks the mappings and fails with ENOMEM
// on a hole; MS_ASYNC writes nothing back).
bool mapped(const void *p, size_t n) {
    const uintptr_t page = static_cast<uintptr_t>(sysconf(_SC_PAGESIZE));
    const uintptr_t a = reinterpret_cast<uintptr_t>(p);
    const uintptr_t start = a & ~(page - 1);
    return msync(reinterpret_cast<void *>(start), a + n - start, MS_ASYNC) == 0;
}

} // namespace

extern "C" {

// ---------------------------------------------------------------------------
// Control interface

void fakecuda_reset(void) {
    const AllocationPause pause;
    Fake &f = fake();
    std::unique_lock<std::mutex> g(f.m);
    f.hold = false;
    f.cv.notify_all();
    f.wait_done(g, f.enqueued);
    f.load_settings();
    f.calls.clear();
    f.log.clear();
    f.register_calls = f.memcpy_calls = f.pageable = f.violations = f.api_calls = 0;
    f.max_register = 0;
    f.violation.clear();
    last_error = kSuccess;
}

void fakecuda_set(const char *key, long value) {
    const AllocationPause pause;
    Fake &f = fake();
    std::lock_guard<std::mutex> g(f.m);
    std::string k = key;
    if (k == "devices")
        f.devices = value;
    else if (k == "host_register_supported")
        f.host_register_supported = value;
    else if (k == "fail_register_at")
        f.fail_register_at = value ? f.register_calls + value : 0;
    else if (k == "fail_memcpy_at")
        f.fail_memcpy_at = value ? f.memcpy_calls + value : 0;
    else if (k == "fail_launch_host_func")
        f.fail_launch_host_func = value;
    else if (k == "fail_host_alloc")
        f.fail_host_alloc = value;
    else if (k == "copy_delay_us")
        f.copy_delay_us = value;
    else if (k == "fail_event_create")
        f.fail_event_create = value;
    else if (k == "fail_event_record")
        f.fail_event_record = value;
    else if (k == "fail_event_sync")
        f.fail_event_sync = value;
    else if (k == "fail_stream_sync")
        f.fail_stream_sync = value;
    else if (k == "fail_call_at")
        f.fail_call_at = value ? f.api_calls + value : 0;
    else if (k == "hold")
        f.hold = value != 0;
    else
        std::abort(); // a typo in a test
    f.cv.notify_all();
}

long fakecuda_get(const char *key) {
    const AllocationPause pause;
    Fake &f = fake();
    std::lock_guard<std::mutex> g(f.m);
    std::string k = key;
    if (k == "registered_ranges")
        return static_cast<long>(f.registered.size());
    if (k == "registered_bytes") {
        long sum = 0;
        for (const auto &r : f.registered)
            sum += static_cast<long>(r.second);
        return sum;
    }
    if (k == "max_register_bytes")
        return static_cast<long>(f.max_register);
    if (k == "host_allocs")
        return static_cast<long>(f.host_allocs.size());
    if (k == "device_allocs")
        return static_cast<long>(f.device_allocs.size());
    if (k == "events")
        return f.events;
    if (k == "sticky_error")
        return last_error;
    if (k == "queued")
        return static_cast<long>(f.queue.size());
    // Copies only: a host function's op stays queued until it has returned.
    if (k == "queued_copies")
        return static_cast<long>(std::count_if(f.queue.begin(), f.queue.end(),
                                               [](const Op &op) { return op.type == Op::copy; }));
    if (k == "pageable_copies")
        return f.pageable;
    if (k == "violations")
        return f.violations;
    if (k == "api_calls")
        return f.api_calls;
    if (k.rfind("calls:", 0) == 0) {
        auto it = f.calls.find(k.substr(6));
        return it == f.calls.end() ? 0 : it->second;
    }
    std::abort();
}

size_t fakecuda_log(struct fakecuda_call *out, size_t cap) {
    const AllocationPause pause;
    Fake &f = fake();
    std::lock_guard<std::mutex> g(f.m);
    for (size_t i = 0; i < cap && i < f.log.size(); ++i)
        out[i] = f.log[i];
    return f.log.size();
}

const char *fakecuda_violation(void) {
    static char copy[256]; // tests read it from one thread
    const AllocationPause pause;
    Fake &f = fake();
    std::lock_guard<std::mutex> g(f.m);
    std::snprintf(copy, sizeof copy, "%s", f.violation.c_str());
    return copy;
}

// ---------------------------------------------------------------------------
// The runtime API

int cudaGetDeviceCount(int *count) {
    const AllocationPause pause;
    Fake &f = fake();
    std::lock_guard<std::mutex> g(f.m);
    f.enter(__func__);
    *count = static_cast<int>(f.devices);
    int r = f.devices > 0 ? kSuccess : fail_with(kNoDevice);
    f.record(__func__, nullptr, nullptr, 0, 0, r);
    return r;
}

int cudaGetDevice(int *device) {
    const AllocationPause pause;
    Fake &f = fake();
    std::lock_guard<std::mutex> g(f.m);
    f.enter(__func__);
    if (f.injected())
        return fail_with(kInvalidValue);
    *device = 0;
    return kSuccess;
}

int cudaDeviceGetAttribute(int *value, int attr, int device) {
    const AllocationPause pause;
    Fake &f = fake();
    std::lock_guard<std::mutex> g(f.m);
    f.enter(__func__);
    if (f.injected() || device != 0 || !value)
        return fail_with(kInvalidValue);
    *value = attr == 99 ? static_cast<int>(f.host_register_supported) : 0;
    return kSuccess;
}

int cudaRuntimeGetVersion(int *version) {
    *version = 12080;
    return kSuccess;
}

const char *cudaGetErrorString(int err) {
    switch (err) {
    case kSuccess:
        return "no error";
    case kInvalidValue:
        return "invalid argument";
    case kMemoryAllocation:
        return "out of memory";
    case kNoDevice:
        return "no CUDA-capable device is detected";
    case kNotReady:
        return "device not ready";
    case kAlreadyRegistered:
        return "part or all of the requested memory range is already mapped";
    case kNotRegistered:
        return "pointer does not correspond to a registered memory region";
    case kInvalidResourceHandle:
        return "invalid resource handle";
    case kDevicesUnavailable:
        return "CUDA-capable device(s) is/are busy or unavailable";
    case kNotSupported:
        return "operation not supported";
    default:
        return "unrecognized error code";
    }
}

int cudaGetLastError(void) {
    const AllocationPause pause;
    Fake &f = fake();
    std::lock_guard<std::mutex> g(f.m);
    f.enter(__func__);
    int e = last_error;
    last_error = kSuccess;
    f.record(__func__, nullptr, nullptr, 0, 0, e);
    return e;
}

int cudaHostRegister(void *ptr, size_t size, unsigned flags) {
    const AllocationPause pause;
    Fake &f = fake();
    std::lock_guard<std::mutex> g(f.m);
    f.enter(__func__);
    f.register_calls++;
    f.max_register = std::max(f.max_register, size);
    const bool inject = f.injected();
    int r = kSuccess;
    if (flags & kRegisterIoMemory)
        f.violate("cudaHostRegister with cudaHostRegisterIoMemory");
    if (size > (64ull << 30))
        f.violate("cudaHostRegister of more than 64 GiB in one call");
    if (!ptr || !size)
        r = fail_with(kInvalidValue);
    else if (inject || (f.fail_register_at && f.register_calls == f.fail_register_at))
        r = fail_with(kMemoryAllocation);
    else if (Fake::overlaps(f.registered, reinterpret_cast<uintptr_t>(ptr), size))
        r = fail_with(kAlreadyRegistered);
    else if (!mapped(ptr, size))
        r = fail_with(kInvalidValue), f.violate("cudaHostRegister of memory that is not mapped");
    else
        f.registered[reinterpret_cast<uintptr_t>(ptr)] = size;
    f.record(__func__, ptr, nullptr, size, static_cast<int>(flags), r);
    return r;
}

int cudaHostUnregister(void *ptr) {
    const AllocationPause pause;
    Fake &f = fake();
    std::lock_guard<std::mutex> g(f.m);
    f.enter(__func__);
    auto it = f.registered.find(reinterpret_cast<uintptr_t>(ptr));
    int r = kSuccess;
    if (it == f.registered.end()) {
        r = fail_with(kNotRegistered);
    } else {
        if (f.queued_touches(it->first, it->second))
            f.violate("cudaHostUnregister of a range a queued copy still uses");
        if (!mapped(ptr, it->second))
            f.violate("a registered range was unmapped before cudaHostUnregister");
        f.record(__func__, ptr, nullptr, it->second, 0, r);
        f.registered.erase(it);
        return r;
    }
    f.record(__func__, ptr, nullptr, 0, 0, r);
    return r;
}

int cudaHostAlloc(void **ptr, size_t size, unsigned flags) {
    const AllocationPause pause;
    Fake &f = fake();
    std::lock_guard<std::mutex> g(f.m);
    f.enter(__func__);
    int r = kSuccess;
    *ptr = nullptr;
    const bool inject = f.injected();
    if (inject || f.fail_host_alloc || !size)
        r = fail_with(inject || f.fail_host_alloc == 1 ? kMemoryAllocation
                      : f.fail_host_alloc                  ? static_cast<int>(f.fail_host_alloc)
                                                           : kInvalidValue);
    else if (!(*ptr = std::aligned_alloc(4096, (size + 4095) / 4096 * 4096)))
        r = fail_with(kMemoryAllocation);
    else
        f.host_allocs[reinterpret_cast<uintptr_t>(*ptr)] = size;
    f.record(__func__, *ptr, nullptr, size, static_cast<int>(flags), r);
    return r;
}

int cudaFreeHost(void *ptr) {
    const AllocationPause pause;
    Fake &f = fake();
    std::lock_guard<std::mutex> g(f.m);
    f.enter(__func__);
    auto it = f.host_allocs.find(reinterpret_cast<uintptr_t>(ptr));
    if (it == f.host_allocs.end())
        return fail_with(kInvalidValue);
    if (f.queued_touches(it->first, it->second))
        f.violate("cudaFreeHost of a buffer a queued copy still uses");
    f.host_allocs.erase(it);
    f.record(__func__, ptr, nullptr, 0, 0, kSuccess);
    std::free(ptr);
    return kSuccess;
}

int cudaMalloc(void **ptr, size_t size) {
    const AllocationPause pause;
    Fake &f = fake();
    std::lock_guard<std::mutex> g(f.m);
    f.enter(__func__);
    *ptr = std::aligned_alloc(256, (std::max<size_t>(size, 1) + 255) / 256 * 256);
    if (!*ptr)
        return fail_with(kMemoryAllocation);
    f.device_allocs[reinterpret_cast<uintptr_t>(*ptr)] = size;
    return kSuccess;
}

int cudaFree(void *ptr) {
    const AllocationPause pause;
    Fake &f = fake();
    std::lock_guard<std::mutex> g(f.m);
    f.enter(__func__);
    if (!ptr)
        return kSuccess;
    auto it = f.device_allocs.find(reinterpret_cast<uintptr_t>(ptr));
    if (it == f.device_allocs.end())
        return fail_with(kInvalidValue);
    f.device_allocs.erase(it);
    std::free(ptr);
    return kSuccess;
}

int cudaMemcpyAsync(void *dst, const void *src, size_t n, int kind, void *stream) {
    const AllocationPause pause;
    Fake &f = fake();
    std::lock_guard<std::mutex> g(f.m);
    f.enter(__func__);
    f.memcpy_calls++;
    int r = kSuccess;
    const void *host = kind == kH2D ? src : dst, *dev = kind == kH2D ? dst : src;
    const bool inject = f.injected();
    if (inject || (f.fail_memcpy_at && f.memcpy_calls == f.fail_memcpy_at))
        r = fail_with(kInvalidValue);
    else if (!f.stream_ok(stream))
        r = fail_with(kInvalidResourceHandle);
    else if ((kind != kH2D && kind != kD2H) || !dst || !src)
        r = fail_with(kInvalidValue);
    else if (!Fake::inside(f.device_allocs, dev, n) || Fake::inside(f.device_allocs, host, n))
        r = fail_with(kInvalidValue); // a host pointer where a device one belongs, or the reverse
    if (r == kSuccess) {
        if (!Fake::inside(f.registered, host, n) && !Fake::inside(f.host_allocs, host, n))
            f.pageable++;
        if (n) {
            Op op{Op::copy};
            op.dst = dst;
            op.src = src;
            op.n = n;
            f.push(op);
        }
    }
    f.record(__func__, dst, src, n, kind, r);
    return r;
}

int cudaMemcpy(void *dst, const void *src, size_t n, int kind) {
    const AllocationPause pause;
    Fake &f = fake();
    std::unique_lock<std::mutex> g(f.m);
    f.enter(__func__);
    if (kind != kH2D && kind != kD2H && kind != kH2H)
        return fail_with(kInvalidValue);
    // The legacy default stream: after everything queued.
    Op op{Op::copy};
    op.dst = dst;
    op.src = src;
    op.n = n;
    uint64_t seq = f.push(op);
    f.record(__func__, dst, src, n, kind, kSuccess);
    f.wait_done(g, seq);
    return kSuccess;
}

int cudaStreamCreate(void **stream) {
    const AllocationPause pause;
    Fake &f = fake();
    std::lock_guard<std::mutex> g(f.m);
    f.enter(__func__);
    static int next = 1;
    *stream = new Stream{next++};
    f.streams.insert(*stream);
    return kSuccess;
}

int cudaStreamDestroy(void *stream) {
    const AllocationPause pause;
    Fake &f = fake();
    std::unique_lock<std::mutex> g(f.m);
    f.enter(__func__);
    if (!f.streams.erase(stream))
        return fail_with(kInvalidResourceHandle);
    f.wait_done(g, f.enqueued); // CUDA defers the release until the stream is idle
    delete static_cast<Stream *>(stream);
    return kSuccess;
}

int cudaStreamSynchronize(void *stream) {
    const AllocationPause pause;
    Fake &f = fake();
    std::unique_lock<std::mutex> g(f.m);
    f.enter(__func__);
    if (!f.stream_ok(stream)) {
        f.record(__func__, nullptr, stream, 0, 0, kInvalidResourceHandle);
        return fail_with(kInvalidResourceHandle);
    }
    // Recorded before the wait: tests see a call that is waiting.
    const bool fail = f.injected() || f.fail_stream_sync != 0;
    f.record(__func__, nullptr, stream, 0, 0, fail ? kInvalidValue : kSuccess);
    f.wait_done(g, f.enqueued);
    return fail ? fail_with(kInvalidValue) : kSuccess;
}

int cudaLaunchHostFunc(void *stream, HostFn fn, void *user) {
    const AllocationPause pause;
    Fake &f = fake();
    std::lock_guard<std::mutex> g(f.m);
    f.enter(__func__);
    int r = kSuccess;
    const bool inject = f.injected();
    if (!f.stream_ok(stream)) {
        r = fail_with(kInvalidResourceHandle);
    } else if (inject || f.fail_launch_host_func || !fn) {
        r = fail_with(inject || f.fail_launch_host_func ? kNotSupported : kInvalidValue);
    } else {
        Op op{Op::hostfn};
        op.fn = fn;
        op.user = user;
        f.push(op);
    }
    f.record(__func__, reinterpret_cast<const void *>(fn), stream, 0, 0, r);
    return r;
}

int cudaEventCreateWithFlags(void **event, unsigned flags) {
    const AllocationPause pause;
    Fake &f = fake();
    std::lock_guard<std::mutex> g(f.m);
    f.enter(__func__);
    (void)flags;
    if (f.injected() || f.fail_event_create) {
        *event = nullptr;
        return fail_with(kMemoryAllocation);
    }
    *event = new Event;
    f.events++;
    return kSuccess;
}

int cudaEventDestroy(void *event) {
    const AllocationPause pause;
    Fake &f = fake();
    std::lock_guard<std::mutex> g(f.m);
    f.enter(__func__);
    if (!event)
        return fail_with(kInvalidValue);
    delete static_cast<Event *>(event);
    f.events--;
    return kSuccess;
}

int cudaEventRecord(void *event, void *stream) {
    const AllocationPause pause;
    Fake &f = fake();
    std::lock_guard<std::mutex> g(f.m);
    f.enter(__func__);
    if (!f.stream_ok(stream)) {
        f.record(__func__, event, stream, 0, 0, kInvalidResourceHandle);
        return fail_with(kInvalidResourceHandle);
    }
    if (f.injected() || f.fail_event_record) {
        f.record(__func__, event, stream, 0, 0, kInvalidValue);
        return fail_with(kInvalidValue);
    }
    Op op{Op::marker};
    static_cast<Event *>(event)->seq = f.push(op);
    f.record(__func__, event, stream, 0, 0, kSuccess);
    return kSuccess;
}

int cudaEventSynchronize(void *event) {
    const AllocationPause pause;
    Fake &f = fake();
    std::unique_lock<std::mutex> g(f.m);
    f.enter(__func__);
    // Recorded before the wait: tests see a call that is waiting.
    const bool fail = f.injected() || f.fail_event_sync != 0;
    f.record(__func__, event, nullptr, 0, 0, fail ? kInvalidValue : kSuccess);
    f.wait_done(g, static_cast<Event *>(event)->seq);
    return fail ? fail_with(kInvalidValue) : kSuccess;
}

int cudaEventQuery(void *event) {
    const AllocationPause pause;
    Fake &f = fake();
    std::lock_guard<std::mutex> g(f.m);
    f.enter(__func__);
    return f.done >= static_cast<Event *>(event)->seq ? kSuccess : kNotReady;
}

int cudaGetDeviceProperties_v2(void *prop, int device) {
    if (device != 0 || !prop)
        return fail_with(kInvalidValue);
    std::memset(prop, 0, 256);
    std::snprintf(static_cast<char *>(prop), 256, "daxkv fake CUDA device");
    return kSuccess;
}

} // extern "C"
