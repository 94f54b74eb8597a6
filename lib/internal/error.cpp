#include "internal/error.hpp"
#include "daxkv.h" // daxkv_log_fn, the caller's callback type: LogFn

#include <atomic>
#include <cstdio>
#include <cstring>
#include <mutex>
#include <vector>

namespace daxkv {
namespace {

thread_local std::string tls_message;

std::string vformat(const char *fmt, va_list ap) {
    va_list copy;
    va_copy(copy, ap);
    char small[256];
    int n = std::vsnprintf(small, sizeof small, fmt, copy);
    va_end(copy);
    if (n < 0)
        return fmt;
    if (static_cast<size_t>(n) < sizeof small)
        return std::string(small, static_cast<size_t>(n));
    std::vector<char> big(static_cast<size_t>(n) + 1);
    std::vsnprintf(big.data(), big.size(), fmt, ap);
    return std::string(big.data(), static_cast<size_t>(n));
}

void store_message(std::string msg) noexcept {
    try {
        tls_message = std::move(msg);
    } catch (...) {
        tls_message.clear(); // out of memory while reporting: keep it empty
    }
}

// Logging state. The callback and its argument are read together under a
// lock, but the callback itself runs without it.
std::mutex log_mutex;
daxkv_log_fn log_fn = nullptr;
void *log_arg = nullptr;
std::atomic<int> log_max_level{-1};

// Events held back by the LogDefer scopes of this thread.
struct Deferred {
    int level;
    std::string msg;
};
thread_local int defer_depth = 0;
thread_local std::vector<Deferred> deferred;

void deliver(int level, const std::string &msg) noexcept {
    daxkv_log_fn fn;
    void *arg;
    {
        std::lock_guard<std::mutex> g(log_mutex);
        fn = log_fn;
        arg = log_arg;
    }
    if (fn)
        fn(level, msg.c_str(), arg);
}

} // namespace

std::string format(const char *fmt, ...) {
    va_list ap;
    va_start(ap, fmt);
    std::string s = vformat(fmt, ap);
    va_end(ap);
    return s;
}

void fail(int code, const char *fmt, ...) {
    va_list ap;
    va_start(ap, fmt);
    std::string s = vformat(fmt, ap);
    va_end(ap);
    throw Error(code, std::move(s));
}

void fail_errno(int errno_value, const std::string &what) {
    throw Error(-errno_value, what + ": " + std::strerror(errno_value));
}

int set_error(int code, const char *fmt, ...) {
    va_list ap;
    va_start(ap, fmt);
    try {
        store_message(vformat(fmt, ap));
    } catch (...) {
        store_message(std::string());
    }
    va_end(ap);
    return code;
}

int error_from_exception() noexcept {
    try {
        throw;
    } catch (const Error &e) {
        store_message(e.what());
        return e.code();
    } catch (const std::bad_alloc &) {
        store_message("out of memory");
        return -ENOMEM;
    } catch (const std::system_error &e) {
        store_message(e.what());
        int v = e.code().value();
        return v > 0 ? -v : -EIO;
    } catch (const std::exception &e) {
        store_message(std::string("internal error: ") + e.what());
        return -EIO;
    } catch (...) {
        store_message("internal error: unknown exception");
        return -EIO;
    }
}

const char *last_error_message() noexcept { return tls_message.c_str(); }

bool log_enabled(int level) noexcept {
    return level <= log_max_level.load(std::memory_order_relaxed);
}

void log(int level, const char *fmt, ...) noexcept {
    if (!log_enabled(level))
        return;
    try {
        va_list ap;
        va_start(ap, fmt);
        std::string s = vformat(fmt, ap);
        va_end(ap);
        if (defer_depth > 0) {
            deferred.push_back(Deferred{level, std::move(s)});
            return;
        }
        deliver(level, s);
    } catch (...) {
        // a message that cannot be formatted (or queued) is dropped
    }
}

LogDefer::LogDefer(LogSink sink, void *arg) noexcept : sink_(sink), arg_(arg) { ++defer_depth; }

LogDefer::~LogDefer() {
    if (--defer_depth > 0 || deferred.empty())
        return;
    // Taken out first: a callback that calls into the library queues (and
    // hands out) its own events. The caller's daxkv_errmsg() stays that of
    // its call, whatever the callback's calls leave.
    std::vector<Deferred> out;
    out.swap(deferred);
    std::string saved;
    try {
        saved = tls_message;
    } catch (...) {
    }
    for (Deferred &d : out) {
        if (sink_)
            sink_(d.level, std::move(d.msg), arg_);
        else
            deliver(d.level, d.msg);
    }
    store_message(std::move(saved));
}

void set_log_fn(daxkv_log_fn fn, int max_level, void *arg) noexcept {
    std::lock_guard<std::mutex> g(log_mutex);
    log_fn = fn;
    log_arg = arg;
    log_max_level.store(fn ? max_level : -1, std::memory_order_relaxed);
}

} // namespace daxkv
