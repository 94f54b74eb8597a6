// Byte strings (paths, keys) in JSON output. JSON text is Unicode: a path
// that is not valid UTF-8 cannot be a JSON string as it is, and nlohmann's
// dump() throws on one. So a byte string goes out as a string when it is
// valid UTF-8 and otherwise as an array of its byte values (0-255), the
// convention of journalctl's JSON output: lossless, and never mistaken for
// a string that happens to contain escape-like text.
#pragma once

#include <cstddef>
#include <cstdint>
#include <string>

#include <nlohmann/json.hpp>

namespace daxkv {

// Well-formed UTF-8 (no overlong forms, no surrogates, at most U+10FFFF):
// the strings nlohmann::json::dump() accepts.
inline bool valid_utf8(const char *p, size_t n) noexcept {
    const auto *s = reinterpret_cast<const unsigned char *>(p);
    size_t i = 0;
    while (i < n) {
        const unsigned c = s[i];
        size_t len;
        uint32_t cp;
        if (c < 0x80) {
            ++i;
            continue;
        } else if (c >= 0xc2 && c <= 0xdf) {
            len = 2;
            cp = c & 0x1f;
        } else if (c >= 0xe0 && c <= 0xef) {
            len = 3;
            cp = c & 0x0f;
        } else if (c >= 0xf0 && c <= 0xf4) {
            len = 4;
            cp = c & 0x07;
        } else {
            return false;
        }
        if (n - i < len)
            return false;
        for (size_t k = 1; k < len; ++k) {
            if ((s[i + k] & 0xc0) != 0x80)
                return false;
            cp = (cp << 6) | (s[i + k] & 0x3f);
        }
        if ((len == 3 && cp < 0x800) || (len == 4 && (cp < 0x10000 || cp > 0x10ffff)) ||
            (cp >= 0xd800 && cp <= 0xdfff))
            return false;
        i += len;
    }
    return true;
}

// s as a JSON value: a string when it is valid UTF-8, else its bytes.
inline nlohmann::json json_bytes(const std::string &s) {
    if (valid_utf8(s.data(), s.size()))
        return s;
    nlohmann::json a = nlohmann::json::array();
    for (unsigned char c : s)
        a.push_back(static_cast<unsigned>(c));
    return a;
}

} // namespace daxkv
