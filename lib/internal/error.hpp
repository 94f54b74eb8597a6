// The one home of error handling: the exception type the core throws, the
// thread-local message behind daxkv_errmsg(), and the barrier that turns
// exceptions into return codes at the C ABI.
#pragma once

#include <cerrno>
#include <cstdarg>
#include <new>
#include <stdexcept>
#include <string>
#include <system_error>

#include "daxkv.h"

namespace daxkv {

// An error with a daxkv return code (a negative errno or a DAXKV_E_* code).
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

// Run body (returning int) and turn any exception into a code. This is the
// barrier every extern "C" function goes through.
template <typename F>
int guarded(F &&body) noexcept {
    try {
        return body();
    } catch (...) {
        return error_from_exception();
    }
}

// Logging through the caller's callback (never to stdout/stderr by itself).
bool log_enabled(int level) noexcept;
void log(int level, const char *fmt, ...) noexcept __attribute__((format(printf, 2, 3)));
void set_log_fn(daxkv_log_fn fn, int max_level, void *arg) noexcept;

} // namespace daxkv
