// The one home of error handling: the exception type the core throws, the
// thread-local message behind daxkv_errmsg(), the barrier that turns
// exceptions into return codes at the C ABI, the library's own return codes
// and log levels, and logging.
//
// The error rule (docs/hacking.md): an expected outcome (a miss, a key that
// exists, busy, a buffer too small, a wait that timed out) is returned;
// everything else throws Error and is caught once, by guarded() at the C
// boundary or by the asynchronous executor.
//
// This layer does not include the public header: the codes, levels and the
// callback type below are the library's own, with the values of daxkv.h's,
// which lib/capi/constants.cpp checks with static_asserts.
#pragma once

#include <cerrno>
#include <cstdarg>
#include <new>
#include <stdexcept>
#include <string>
#include <system_error>

namespace daxkv {

// Return codes of the library besides negative errno values
// (DAXKV_EXISTED, DAXKV_E_BASE, DAXKV_E_CORRUPT, DAXKV_E_FOREIGN).
constexpr int kExisted = 1;
constexpr int kErrBase = -10000;
constexpr int kErrCorrupt = -10001;
constexpr int kErrForeign = -10002;

// Log levels, as syslog's (DAXKV_LOG_*), and the log callback's type
// (daxkv_log_fn).
enum LogLevel : int { kLogErr = 3, kLogWarning = 4, kLogInfo = 6, kLogDebug = 7 };
using LogFn = void (*)(int level, const char *msg, void *arg);

// A static description of a return code (daxkv_strerror; never null).
const char *error_text(int code) noexcept;

// An error with a daxkv return code (a negative errno or one of the codes above).
class Error : public std::runtime_error {
public:
    Error(int code, std::string msg) : std::runtime_error(std::move(msg)), code_(code) {}
    int code() const noexcept { return code_; }

private:
    int code_;
};

// printf-style message formatting.
std::string format(const char *fmt, ...) __attribute__((format(printf, 1, 2)));

// Throw Error(code, formatted message).
[[noreturn]] void fail(int code, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

// Throw Error(-errno_value, "<what>: <strerror>").
[[noreturn]] void fail_errno(int errno_value, const std::string &what);

// Record a failure for daxkv_errmsg() and return code (for direct returns).
int set_error(int code, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
// Clear nothing: a successful call leaves the previous message, like errno.

// Record the message of a caught exception and return its code. Never throws.
int error_from_exception() noexcept;

const char *last_error_message() noexcept;

// Logging through the caller's callback (never to stdout/stderr by itself).
bool log_enabled(int level) noexcept;
void log(int level, const char *fmt, ...) noexcept __attribute__((format(printf, 2, 3)));
void set_log_fn(LogFn fn, int max_level, void *arg) noexcept;

// Where a thread's log events go while a LogDefer lives on it: the
// caller's callback (null), or a sink of the library's own (a thread of the
// library hands its events to the thread that reports them).
using LogSink = void (*)(int level, std::string msg, void *arg) noexcept;

// The log callback is the caller's code: it may call back into the library,
// so it must never run while a library lock is held (a callback that takes
// the lock again would never return). While a LogDefer lives on a thread,
// log() only queues the event; the outermost LogDefer's destructor, which
// runs when every lock of the call has been released, hands the events out.
// Every extern "C" function has one (guarded() and the void functions).
class LogDefer {
public:
    explicit LogDefer(LogSink sink = nullptr, void *arg = nullptr) noexcept;
    ~LogDefer();
    LogDefer(const LogDefer &) = delete;
    LogDefer &operator=(const LogDefer &) = delete;

private:
    LogSink sink_;
    void *arg_;
};

// Run body (returning int) and turn any exception into a code. This is the
// barrier every extern "C" function goes through; log events of the call go
// out when it is done (LogDefer).
template <typename F>
int guarded(F &&body) noexcept {
    LogDefer defer;
    try {
        return body();
    } catch (...) {
        return error_from_exception();
    }
}

} // namespace daxkv
