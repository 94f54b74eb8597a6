#include "internal/error.hpp"
#include "daxkv.h" // daxkv_log_fn, the caller's callback type: LogFn
#include "internal/process_mutex.hpp"
#include "internal/util.hpp"

#include <algorithm>
#include <atomic>
#include <cerrno>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <ctime>
#include <fcntl.h>
#include <mutex>
#include <stdexcept>
#include <strings.h>
#include <sys/time.h>
#include <unistd.h>
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

// Messages name what the caller gave (device paths, keys of a JSON
// document), and are printed and logged line by line: a control byte in
// one (a newline, an escape sequence) would forge a line or drive a
// terminal. Each is shown as \xNN, as printable() shows bytes; the rest
// of the text, UTF-8 included, stays as it is.
void escape_control_bytes(std::string &msg) {
    auto is_control = [](char ch) {
        const auto c = static_cast<unsigned char>(ch);
        return c < 0x20 || c == 0x7f;
    };
    if (std::none_of(msg.begin(), msg.end(), is_control))
        return;
    static const char hex[] = "0123456789abcdef";
    std::string out;
    out.reserve(msg.size() + 16);
    for (char ch : msg) {
        if (!is_control(ch)) {
            out += ch;
            continue;
        }
        const auto c = static_cast<unsigned char>(ch);
        out += "\\x";
        out += hex[c >> 4];
        out += hex[c & 15];
    }
    msg.swap(out);
}

void store_message(std::string msg) noexcept {
    try {
        escape_control_bytes(msg);
        tls_message = std::move(msg);
    } catch (...) {
        tls_message.clear(); // out of memory while reporting: keep it empty
    }
}

// The message of an exception caught: copied here, where running out of
// memory for the copy can still be caught (a std::string argument would be
// built by the caller, in its catch handler, and end the process from there).
void store_message(const char *head, const char *tail = "") noexcept {
    try {
        tls_message.assign(head);
        tls_message.append(tail);
        escape_control_bytes(tls_message);
    } catch (...) {
        tls_message.clear();
    }
}

// Logging without code: DAXKV_LOG_LEVEL (err, warning, info, debug, or the
// DAXKV_LOG_* number) and DAXKV_LOG_FILE (a path, appended to; a path that
// ends in '-' gets the process id added; unset or unusable: standard error),
// read once when the library is loaded. A callback set by daxkv_set_log_fn
// takes precedence while it is set.
struct EnvLog {
    int level = -1; // -1: DAXKV_LOG_LEVEL unset or not understood
    int fd = -1;

    EnvLog() noexcept {
        const char *lv = std::getenv("DAXKV_LOG_LEVEL");
        if (!lv || !*lv)
            return;
        level = parse_level(lv);
        if (level < 0)
            return;
        fd = STDERR_FILENO;
        const char *path = secure_getenv("DAXKV_LOG_FILE");
        if (!path || !*path)
            return;
        try {
            std::string name = path;
            if (name.back() == '-')
                name += std::to_string(::getpid());
            // Not blocking in open: a FIFO nobody reads would stop the
            // process in the library's load (it fails with ENXIO instead).
            // Writes then block as they do on standard error.
            const int f =
                ::open(name.c_str(), O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC | O_NONBLOCK, 0640);
            if (f >= 0) {
                ::fcntl(f, F_SETFL, ::fcntl(f, F_GETFL) & ~O_NONBLOCK);
                fd = fd_above_standard_streams(f);
            } else
                write_line(DAXKV_LOG_WARNING, "cannot open DAXKV_LOG_FILE " + name + " (" +
                                                  std::strerror(errno) + "): logging to stderr");
        } catch (...) {
            // No memory for the file's name: the log goes to stderr.
        }
    }

    static int parse_level(const char *v) noexcept {
        static const struct {
            const char *name;
            int level;
        } names[] = {{"err", DAXKV_LOG_ERR},         {"error", DAXKV_LOG_ERR},
                     {"warning", DAXKV_LOG_WARNING}, {"warn", DAXKV_LOG_WARNING},
                     {"info", DAXKV_LOG_INFO},       {"debug", DAXKV_LOG_DEBUG}};
        for (const auto &n : names)
            if (::strcasecmp(v, n.name) == 0)
                return n.level;
        char *end = nullptr;
        const long n = std::strtol(v, &end, 10);
        if (*end == '\0' && n >= DAXKV_LOG_ERR && n <= DAXKV_LOG_DEBUG)
            return static_cast<int>(n);
        return -1;
    }

    static const char *level_name(int level) noexcept {
        return level <= DAXKV_LOG_ERR       ? "err"
               : level <= DAXKV_LOG_WARNING ? "warning"
               : level <= DAXKV_LOG_INFO    ? "info"
                                            : "debug";
    }

    // "2026-12-02T05:46:00.123456Z daxkv[1234] warning: message", one write
    // a line, so that lines of several threads and processes never mix.
    void write_line(int lvl, const std::string &msg) const noexcept {
        const int out = fd >= 0 ? fd : STDERR_FILENO;
        struct timeval tv;
        ::gettimeofday(&tv, nullptr);
        struct tm tm;
        ::gmtime_r(&tv.tv_sec, &tm);
        char head[96];
        const int n = std::snprintf(head, sizeof head,
                                    "%04d-%02d-%02dT%02d:%02d:%02d.%06ldZ daxkv[%d] %s: ",
                                    tm.tm_year + 1900, tm.tm_mon + 1, tm.tm_mday, tm.tm_hour,
                                    tm.tm_min, tm.tm_sec, static_cast<long>(tv.tv_usec),
                                    static_cast<int>(::getpid()), level_name(lvl));
        try {
            std::string line(head, n > 0 ? static_cast<size_t>(n) : 0);
            line += msg;
            line += '\n';
            const char *p = line.data();
            size_t left = line.size();
            while (left) {
                const ssize_t w = ::write(out, p, left);
                if (w < 0 && errno == EINTR)
                    continue;
                if (w <= 0)
                    return; // nowhere to log to: dropped
                p += w;
                left -= static_cast<size_t>(w);
            }
        } catch (...) {
            // out of memory while logging: dropped
        }
    }
};

const EnvLog &env_log() noexcept {
    static const EnvLog env; // read at the first log call, or at load (below)
    return env;
}

// Logging state. The callback and its argument are read together under a
// lock, but the callback itself runs without it. With no callback,
// log_max_level is the environment's level.
ProcessMutex log_mutex;
daxkv_log_fn log_fn = nullptr;
void *log_arg = nullptr;
std::atomic<int> log_max_level{env_log().level};

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
        std::lock_guard<ProcessMutex> g(log_mutex);
        fn = log_fn;
        arg = log_arg;
    }
    if (fn)
        fn(level, msg.c_str(), arg);
    else if (level <= env_log().level)
        env_log().write_line(level, msg);
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
    } catch (const std::length_error &e) {
        // A container asked for more than it can ever hold (a count the
        // caller gave, grown past what memory could be): out of memory as
        // surely as when the allocation is refused, not a library fault.
        store_message("out of memory: ", e.what()); // nothing built here: noexcept
        return -ENOMEM;
    } catch (const std::system_error &e) {
        store_message(e.what());
        int v = e.code().value();
        return v > 0 ? -v : -EIO;
    } catch (const std::exception &e) {
        store_message("internal error: ", e.what());
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
        escape_control_bytes(s);
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
    std::lock_guard<ProcessMutex> g(log_mutex);
    log_fn = fn;
    log_arg = arg;
    // Without a callback, the environment's logging (if any) comes back.
    log_max_level.store(fn ? max_level : env_log().level, std::memory_order_relaxed);
}

} // namespace daxkv
