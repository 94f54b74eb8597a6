// JSON text in and out of the library.
//
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

// The bytes json_bytes() made j from: a string's, or an array's of 0..255;
// false for anything else.
inline bool bytes_of_json(const nlohmann::json &j, std::string *out) {
    if (j.is_string()) {
        *out = j.get<std::string>();
        return true;
    }
    if (!j.is_array())
        return false;
    std::string s;
    for (const auto &b : j) {
        if (!b.is_number_unsigned() || b.get<uint64_t>() > 255)
            return false;
        s.push_back(static_cast<char>(b.get<uint64_t>()));
    }
    *out = std::move(s);
    return true;
}

// Documents built without running out of memory fatally.
//
// nlohmann::json destroys a non-empty array or object by moving its
// elements onto a heap stack of its own (a std::vector), so destroying one
// can throw std::bad_alloc, and that ends the process: a destructor is
// noexcept, and a second exception while a std::bad_alloc unwinds is fatal
// anyway. take_apart() empties a value leaf first, so that every container
// is destroyed empty, which allocates nothing. It recurses as deep as the
// value goes: it is meant for the documents the library builds itself (a
// few levels) and for parsed input whose depth parse_json() bounded.
inline void take_apart(nlohmann::json &v) noexcept {
    if (!v.is_structured())
        return;
    for (auto &child : v)
        take_apart(child);
    v.clear(); // containers of empty containers and scalars: no allocation
}

// A document under construction, taken apart (above) however its scope
// ends: a call that runs out of memory while building its JSON throws
// std::bad_alloc (-ENOMEM at the C ABI) instead of ending the process.
// What goes into it follows three rules, for the same reason:
//   - no initializer lists of pairs ({{"key", value}, ...}): each pair is
//     a temporary array, destroyed with an allocation if a later one fails;
//   - a structured value is built in place (object_at, set_bytes) or in a
//     JsonTree of its own and moved in (move_into, append_to), never
//     assigned from a temporary: the temporary outlives a failed insertion
//     of its key;
//   - scalars and strings may be assigned: destroying them allocates
//     nothing.
class JsonTree {
public:
    explicit JsonTree(nlohmann::json::value_t kind) : v_(kind) {}
    ~JsonTree() { take_apart(v_); }
    JsonTree(const JsonTree &) = delete;
    JsonTree &operator=(const JsonTree &) = delete;

    nlohmann::json &operator[](const char *key) { return v_[key]; }
    nlohmann::json &value() noexcept { return v_; }
    // Moves the document to slot (already in its parent), leaving null.
    void move_into(nlohmann::json &slot) noexcept { slot = std::move(v_); }
    // Appends the document to the array `to`; on a failure it is still
    // here, and taken apart with this tree.
    void append_to(nlohmann::json &to) { to.push_back(std::move(v_)); }
    std::string dump() const { return v_.dump(); }
    // Takes the document apart and starts again with an empty one of kind.
    void reset(nlohmann::json::value_t kind) {
        take_apart(v_);
        v_ = kind; // destroys an empty container or a scalar: no allocation
    }

private:
    nlohmann::json v_;
};

// Parsing into a JsonTree, for text from outside (a configuration, a
// statistics page another process wrote). nlohmann::json::parse builds its
// document where a failure destroys it, so running out of memory mid-parse
// ended the process; this parser places every value in the tree as it
// starts, so what a failure leaves is taken apart with the tree. It also
// stops at the first container nested deeper than max_depth, before
// building it: take_apart() then never recurses deeper than that.
struct JsonLimits {
    int max_depth;               // containers open at once, the outermost counted
    bool refuse_duplicate_keys;  // a key given twice in one object
};

// Parses text into tree (which must hold null). Returns an empty string,
// or why the text was refused, worded to follow the name of what was
// parsed ("is malformed: ...", "nests deeper than N levels", "gives the
// key \"k\" twice in one object"), the tree then holding part of the
// document. Throws std::bad_alloc.
std::string parse_json(JsonTree &tree, const std::string &text, const JsonLimits &limits);

// parent[key], made an empty object to be filled in place (what it held
// taken apart first: a parsed document may already have the key).
inline nlohmann::json &object_at(nlohmann::json &parent, const char *key) {
    nlohmann::json &v = parent[key];
    take_apart(v);
    v = nlohmann::json::object();
    return v;
}

// at = json_bytes(s), built in place (at lies in a JsonTree).
inline void set_bytes(nlohmann::json &at, const std::string &s) {
    if (valid_utf8(s.data(), s.size())) {
        at = s;
        return;
    }
    at = nlohmann::json::array();
    for (unsigned char c : s)
        at.push_back(static_cast<unsigned>(c));
}

} // namespace daxkv
