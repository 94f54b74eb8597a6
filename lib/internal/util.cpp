#include "internal/util.hpp"

#include <cctype>
#include <cerrno>
#include <cstdio>
#include <cstdlib>
#include <limits>
#include <memory>
#include <fcntl.h>
#include <unistd.h>

#define XXH_INLINE_ALL
#include <uuid/uuid.h>
#include <xxhash.h>

#include "internal/error.hpp"

namespace daxkv {
namespace {

// Parse the leading digits; reject empty, signs, overflow.
uint64_t parse_digits(const std::string &text, size_t &pos, const char *what) {
    if (pos >= text.size() || !std::isdigit(static_cast<unsigned char>(text[pos])))
        fail(-EINVAL, "%s: '%s' is not a non-negative integer", what, printable(text).c_str());
    uint64_t v = 0;
    while (pos < text.size() && std::isdigit(static_cast<unsigned char>(text[pos]))) {
        unsigned d = static_cast<unsigned>(text[pos] - '0');
        if (v > (std::numeric_limits<uint64_t>::max() - d) / 10)
            fail(-EINVAL, "%s: '%s' overflows 64 bits", what, printable(text).c_str());
        v = v * 10 + d;
        ++pos;
    }
    return v;
}

} // namespace

uint64_t parse_uint(const std::string &text, const char *what) {
    size_t pos = 0;
    uint64_t v = parse_digits(text, pos, what);
    if (pos != text.size())
        fail(-EINVAL, "%s: '%s' is not a non-negative integer", what, printable(text).c_str());
    return v;
}

uint64_t parse_size(const std::string &text, const char *what) {
    size_t pos = 0;
    uint64_t v = parse_digits(text, pos, what);
    std::string suffix = text.substr(pos);
    uint64_t mult = 1;
    if (suffix.empty() || suffix == "B") {
        mult = 1;
    } else {
        static const struct {
            const char *names[4];
            uint64_t mult;
        } units[] = {
            {{"K", "KB", "KiB", "k"}, KiB},
            {{"M", "MB", "MiB", nullptr}, MiB},
            {{"G", "GB", "GiB", nullptr}, GiB},
            {{"T", "TB", "TiB", nullptr}, 1024 * GiB},
        };
        bool found = false;
        for (const auto &u : units)
            for (const char *n : u.names)
                if (n && suffix == n) {
                    mult = u.mult;
                    found = true;
                }
        if (!found)
            fail(-EINVAL, "%s: '%s' has an unknown unit '%s' (use B, KiB, MiB, GiB or TiB)", what,
                 printable(text).c_str(), printable(suffix).c_str());
    }
    if (v > std::numeric_limits<uint64_t>::max() / mult)
        fail(-EINVAL, "%s: '%s' overflows 64 bits", what, printable(text).c_str());
    return v * mult;
}

bool parse_bool(const std::string &text, const char *what) {
    if (text == "1" || text == "true" || text == "yes" || text == "on")
        return true;
    if (text == "0" || text == "false" || text == "no" || text == "off")
        return false;
    fail(-EINVAL, "%s: '%s' is not a boolean (use 1/0, true/false, yes/no, on/off)", what,
         printable(text).c_str());
}

std::string printable(std::string_view bytes) {
    const char *p = bytes.data();
    const size_t n = bytes.size();
    static const char hex[] = "0123456789abcdef";
    std::string out;
    out.reserve(n);
    for (size_t i = 0; i < n; ++i) {
        auto c = static_cast<unsigned char>(p[i]);
        if (c >= 0x20 && c < 0x7f && c != '\\') {
            out += static_cast<char>(c);
        } else {
            out += "\\x";
            out += hex[c >> 4];
            out += hex[c & 15];
        }
    }
    return out;
}

uint64_t hash_bytes(const void *p, size_t n) noexcept { return XXH3_64bits(p, n); }

std::string human_bytes(uint64_t n) {
    const char *units[] = {"B", "KiB", "MiB", "GiB", "TiB"};
    double v = static_cast<double>(n);
    int i = 0;
    while (v >= 1024 && i < 4) {
        v /= 1024;
        ++i;
    }
    char buf[32];
    std::snprintf(buf, sizeof buf, i ? "%.2f %s" : "%.0f %s", v, units[i]);
    return buf;
}

std::string uuid_text(const uint8_t (&u)[16]) {
    char out[37];
    uuid_unparse_lower(u, out);
    return out;
}

int fd_above_standard_streams(int fd) noexcept {
    if (fd < 0 || fd > STDERR_FILENO)
        return fd;
    const int moved = ::fcntl(fd, F_DUPFD_CLOEXEC, STDERR_FILENO + 1);
    if (moved < 0)
        return fd;
    ::close(fd);
    return moved;
}

std::string real_path(const std::string &p) {
    struct Free {
        void operator()(char *r) const noexcept { std::free(r); }
    };
    const std::unique_ptr<char, Free> r(::realpath(p.c_str(), nullptr));
    return r ? std::string(r.get()) : std::string();
}

} // namespace daxkv
