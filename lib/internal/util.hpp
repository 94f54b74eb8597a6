// Small helpers shared by every layer: sizes, alignment, hashing, clocks.
#pragma once

#include <chrono>
#include <cstdint>
#include <string>
#include <string_view>

namespace daxkv {

constexpr uint64_t KiB = 1024, MiB = 1024 * KiB, GiB = 1024 * MiB;

constexpr uint64_t round_up(uint64_t v, uint64_t a) { return (v + a - 1) / a * a; }
constexpr uint64_t round_down(uint64_t v, uint64_t a) { return v / a * a; }
constexpr bool is_pow2(uint64_t v) { return v && !(v & (v - 1)); }

// A descriptor the library keeps, moved above 0, 1 and 2 (close-on-exec).
// A process may run with standard input, output or error closed; a file
// kept under one of those numbers would receive what the process (or the
// library's log, on descriptor 2) writes to that stream. Returns the new
// descriptor, with fd closed; fd itself (still open) if it is already
// above 2, negative, or cannot be moved (no descriptor left).
int fd_above_standard_streams(int fd) noexcept;

// Parse "4096", "4KiB", "256MiB", "2GiB", "1TiB" (also K/M/G/T and KB/MB..,
// all binary). Throws Error(-EINVAL) naming `what` on malformed, negative or
// overflowing input.
uint64_t parse_size(const std::string &text, const char *what);
// Parse a non-negative integer (no suffix). Same errors.
uint64_t parse_uint(const std::string &text, const char *what);
// "on/off, 1/0, true/false, yes/no".
bool parse_bool(const std::string &text, const char *what);
// Bytes as printable text for a message: printable ASCII as it is, every
// other byte (and the backslash) as \xNN. Valid UTF-8 and JSON-safe.
std::string printable(std::string_view bytes);

// realpath(3) as a string; empty on failure (errno set). What realpath
// allocated is freed even when the copy into the string runs out of memory.
std::string real_path(const std::string &p);

// 64-bit hash of a byte string (XXH3).
uint64_t hash_bytes(const void *p, size_t n) noexcept;

inline uint64_t now_ns() noexcept {
    return static_cast<uint64_t>(std::chrono::duration_cast<std::chrono::nanoseconds>(
                                     std::chrono::steady_clock::now().time_since_epoch())
                                     .count());
}

// A human size: "4.00 MiB".
std::string human_bytes(uint64_t n);

// The canonical text of a 16-byte UUID: "8-4-4-4-12" lower-case hex digits.
std::string uuid_text(const uint8_t (&u)[16]);

} // namespace daxkv
