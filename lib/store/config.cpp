#include "store/config.hpp"

#include <algorithm>
#include <cerrno>
#include <cmath>
#include <cstring>
#include <string_view>
#include <thread>

#include <nlohmann/json.hpp>

#include "internal/error.hpp"
#include "internal/json_text.hpp"
#include "internal/util.hpp"

namespace daxkv {
namespace {

// ---------------------------------------------------------------------------
// The configuration keys. One table: daxkv_config_set parses through it, the
// unknown-key message lists it, status reports name enum values through it,
// and a unit test checks the README, the man page and the header against it.

template <typename E>
struct Choice {
    const char *word;
    E value;
};

constexpr Choice<Eviction> kEvictionWords[] = {{"lru", Eviction::lru}, {"none", Eviction::none}};
constexpr Choice<arena::Durability> kDurabilityWords[] = {{"none", arena::Durability::none},
                                                          {"process", arena::Durability::process},
                                                          {"power", arena::Durability::power}};
constexpr Choice<arena::Verify> kVerifyWords[] = {{"off", arena::Verify::off},
                                                  {"recover", arena::Verify::recover},
                                                  {"read", arena::Verify::read}};
constexpr Choice<bool> kOnMismatchWords[] = {{"fail", false}, {"reformat", true}};
constexpr Choice<NtStores> kNtStoresWords[] = {
    {"auto", NtStores::auto_}, {"on", NtStores::on}, {"off", NtStores::off}};
constexpr Choice<Placement> kPlacementWords[] = {{"least_used", Placement::least_used},
                                                 {"numa", Placement::numa}};
constexpr Choice<bool> kNumaWords[] = {{"auto", true}, {"off", false}};
constexpr Choice<Capacity> kCapacityWords[] = {{"arena", Capacity::arena},
                                               {"payload", Capacity::payload}};
constexpr Choice<bool> kSigbusWords[] = {{"default", false}, {"handle", true}};

template <typename E, size_t N>
std::vector<std::string> words_of(const Choice<E> (&words)[N]) {
    std::vector<std::string> out;
    for (const auto &w : words)
        out.emplace_back(w.word);
    return out;
}

template <typename E, size_t N>
E choose(const char *key, const Choice<E> (&words)[N], const std::string &value) {
    for (const auto &w : words)
        if (value == w.word)
            return w.value;
    std::string list;
    for (const auto &w : words)
        list += (list.empty() ? "" : ", ") + std::string(w.word);
    fail(-EINVAL, "%s: '%s' is not one of %s", key, printable(value).c_str(), list.c_str());
}

template <typename E, size_t N>
const char *word_for(const Choice<E> (&words)[N], E value) noexcept {
    for (const auto &w : words)
        if (w.value == value)
            return w.word;
    return "?";
}

struct KeyRule {
    const char *name;
    void (*set)(Config &cfg, const std::string &value);
    std::vector<std::string> (*choices)(); // null: not a choice among words
};

#define DAXKV_CHOICE_KEY(key, words, field)                                                    \
    KeyRule {                                                                                  \
        key, [](Config &c, const std::string &v) { c.field = choose(key, words, v); },         \
            [] { return words_of(words); }                                                     \
    }

const KeyRule kKeyRules[] = {
    {"slot_bytes",
     [](Config &c, const std::string &value) {
         uint64_t v = parse_size(value, "slot_bytes");
         if (v == 0)
             fail(-EINVAL, "slot_bytes: must be greater than 0");
         c.slot_bytes = v;
     },
     nullptr},
    {"meta_bytes",
     [](Config &c, const std::string &value) {
         uint64_t v = parse_size(value, "meta_bytes");
         if (v > kMetaBytesMax)
             fail(-EINVAL, "meta_bytes: %llu is above the limit of %u",
                  static_cast<unsigned long long>(v), kMetaBytesMax);
         c.meta_bytes = static_cast<uint32_t>(v);
     },
     nullptr},
    DAXKV_CHOICE_KEY("eviction", kEvictionWords, eviction),
    DAXKV_CHOICE_KEY("durability", kDurabilityWords, durability),
    DAXKV_CHOICE_KEY("verify", kVerifyWords, verify),
    DAXKV_CHOICE_KEY("on_mismatch", kOnMismatchWords, reformat),
    {"workers",
     [](Config &c, const std::string &value) {
         uint64_t v = parse_uint(value, "workers");
         if (v == 0 || v > 256)
             fail(-EINVAL, "workers: %llu is not in 1..256", static_cast<unsigned long long>(v));
         c.workers = static_cast<unsigned>(v);
     },
     nullptr},
    {"hotplug", [](Config &c, const std::string &v) { c.hotplug = parse_bool(v, "hotplug"); },
     nullptr},
    {"create", [](Config &c, const std::string &v) { c.create = parse_bool(v, "create"); },
     nullptr},
    DAXKV_CHOICE_KEY("nt_stores", kNtStoresWords, nt_stores),
    {"cuda_register_chunk",
     [](Config &c, const std::string &value) {
         // At most 64 GiB: one cudaHostRegister of 512 GiB or more fails on
         // current drivers; whole pages, as the driver pins pages.
         uint64_t v = parse_size(value, "cuda_register_chunk");
         if (v < 4096 || v > (64ull << 30) || v % 4096)
             fail(-EINVAL,
                  "cuda_register_chunk: %llu is not a multiple of 4 KiB in 4 KiB..64 GiB",
                  static_cast<unsigned long long>(v));
         c.cuda_register_chunk = v;
     },
     nullptr},
    {"cuda_staging_bytes",
     [](Config &c, const std::string &value) {
         // Whole 1 MiB checksum blocks, so that a value split over buffers
         // is hashed while it is copied.
         uint64_t v = parse_size(value, "cuda_staging_bytes");
         if (v < (1ull << 20) || v > (1ull << 30) || v % (1ull << 20))
             fail(-EINVAL,
                  "cuda_staging_bytes: %llu is not a multiple of 1 MiB in 1 MiB..1 GiB",
                  static_cast<unsigned long long>(v));
         c.cuda_staging_bytes = v;
     },
     nullptr},
    DAXKV_CHOICE_KEY("placement", kPlacementWords, placement),
    DAXKV_CHOICE_KEY("sigbus", kSigbusWords, sigbus_handle),
    DAXKV_CHOICE_KEY("numa", kNumaWords, numa),
    {"grow_limit",
     [](Config &c, const std::string &value) {
         if (value == "auto") {
             c.grow_auto = true;
             c.grow_limit = 0;
             return;
         }
         // At most 64 TiB: the address space reserved per device.
         uint64_t v = parse_size(value, "grow_limit");
         if (v > (64ull << 40))
             fail(-EINVAL, "grow_limit: %llu is above the limit of 64 TiB",
                  static_cast<unsigned long long>(v));
         c.grow_limit = v;
         c.grow_auto = false;
     },
     nullptr},
    DAXKV_CHOICE_KEY("capacity", kCapacityWords, capacity),
    {"stats_interval",
     [](Config &c, const std::string &value) {
         uint64_t v = parse_uint(value, "stats_interval");
         if (v > 3600 * 1000)
             fail(-EINVAL, "stats_interval: %llu ms is above the limit of one hour (3600000)",
                  static_cast<unsigned long long>(v));
         c.stats_interval_ms = static_cast<unsigned>(v);
     },
     nullptr},
};

#undef DAXKV_CHOICE_KEY

} // namespace

void Config::set(const std::string &key, const std::string &value) {
    for (const KeyRule &rule : kKeyRules) {
        if (key == rule.name) {
            rule.set(*this, value);
            return;
        }
    }
    std::string known;
    for (const KeyRule &rule : kKeyRules)
        known += (known.empty() ? "" : ", ") + std::string(rule.name);
    fail(-EINVAL, "unknown configuration key '%s' (known: %s)", printable(key).c_str(),
         known.c_str());
}

std::vector<std::string> config_keys() {
    std::vector<std::string> out;
    for (const KeyRule &rule : kKeyRules)
        out.emplace_back(rule.name);
    return out;
}

std::vector<std::string> config_choices(const std::string &key) {
    for (const KeyRule &rule : kKeyRules)
        if (key == rule.name)
            return rule.choices ? rule.choices() : std::vector<std::string>{};
    return {};
}

const char *config_word(Eviction v) noexcept { return word_for(kEvictionWords, v); }
const char *config_word(arena::Durability v) noexcept { return word_for(kDurabilityWords, v); }
const char *config_word(arena::Verify v) noexcept { return word_for(kVerifyWords, v); }
const char *config_word(NtStores v) noexcept { return word_for(kNtStoresWords, v); }
const char *config_word(Placement v) noexcept { return word_for(kPlacementWords, v); }
const char *config_word(Capacity v) noexcept { return word_for(kCapacityWords, v); }

void Config::add_device(const std::string &path, uint64_t bytes) {
    if (path.empty())
        fail(-EINVAL, "device path is empty");
    if (path.find('\0') != std::string::npos)
        fail(-EINVAL, "device path contains a NUL character");
    if (path.size() > 4096)
        fail(-EINVAL, "device path is longer than 4096 bytes");
    // Refused here, not only at open: each device is compared with those
    // before it, and a document of 20,000 took seconds to read.
    if (devices.size() >= kMaxDevices)
        fail(-ENOSPC, "a store holds at most %u devices", kMaxDevices);
    for (const auto &d : devices)
        if (d.path == path && path != "mem:")
            fail(-EINVAL, "device %s is already in the configuration", path.c_str());
    devices.push_back(DeviceSpec{path, bytes});
}

void Config::validate() const {
    if (slot_bytes == 0)
        fail(-EINVAL, "slot_bytes is required");
    if (devices.empty() && !hotplug)
        fail(-EINVAL, "no device configured (daxkv_config_add_device; with hotplug=1 a "
                      "store may start empty and get devices by daxkv_device_add)");
}

unsigned Config::effective_workers() const {
    if (workers)
        return workers;
    unsigned n = std::thread::hardware_concurrency();
    return std::max(1u, std::min(n ? n : 1u, 8u));
}

namespace {

using json = nlohmann::json;

// A size given in GiB as a JSON number (LMCache's max_dax_size_gb).
uint64_t gib_field(const json &v, const std::string &what) {
    if (!v.is_number() || v.is_boolean())
        fail(-EINVAL, "%s must be a positive number", what.c_str());
    double gb = v.get<double>();
    if (!(gb > 0) || !std::isfinite(gb) || gb > 1048576.0)
        fail(-EINVAL, "%s must be a positive number of GiB (at most 1 PiB)", what.c_str());
    return static_cast<uint64_t>(gb * static_cast<double>(GiB));
}

uint64_t positive_int_field(const json &v, const std::string &what) {
    if (!v.is_number_integer() || v.get<int64_t>() <= 0)
        fail(-EINVAL, "%s must be a positive integer", what.c_str());
    return v.get<uint64_t>();
}

// The white space Python's str.strip() removes beyond ASCII's (U+0085,
// U+00A0, U+1680, U+2000..U+200A, U+2028, U+2029, U+202F, U+205F,
// U+3000), in UTF-8.
constexpr const char *kUnicodeSpace[] = {
    "\xc2\x85", "\xc2\xa0", "\xe1\x9a\x80", "\xe2\x80\x80", "\xe2\x80\x81", "\xe2\x80\x82",
    "\xe2\x80\x83", "\xe2\x80\x84", "\xe2\x80\x85", "\xe2\x80\x86", "\xe2\x80\x87",
    "\xe2\x80\x88", "\xe2\x80\x89", "\xe2\x80\x8a", "\xe2\x80\xa8", "\xe2\x80\xa9",
    "\xe2\x80\xaf", "\xe2\x81\x9f", "\xe3\x80\x80"};

// path without the white space str.strip() removes around it.
std::string_view strip_like_python(std::string_view path) {
    static constexpr char kAsciiSpace[] = " \t\n\r\v\f\x1c\x1d\x1e\x1f";
    for (bool more = true; more && !path.empty();) {
        more = false;
        if (std::strchr(kAsciiSpace, path.front()) && path.front() != '\0') {
            path.remove_prefix(1);
            more = true;
        } else if (std::strchr(kAsciiSpace, path.back()) && path.back() != '\0') {
            path.remove_suffix(1);
            more = true;
        } else {
            for (std::string_view u : kUnicodeSpace) {
                if (path.size() >= u.size() && path.substr(0, u.size()) == u) {
                    path.remove_prefix(u.size());
                    more = true;
                } else if (path.size() >= u.size() && path.substr(path.size() - u.size()) == u) {
                    path.remove_suffix(u.size());
                    more = true;
                }
            }
        }
    }
    return path;
}

// A device path as LMCache's adapter reads it: the string with white space
// around it stripped (as Python's str.strip() strips it), and refused when
// nothing is left. " /dev/dax0.0" names the device, not a file of that name
// in the working directory.
std::string path_field(const json &v, const std::string &what) {
    const std::string path = v.is_string() ? v.get<std::string>() : std::string();
    const std::string_view stripped = strip_like_python(path);
    if (stripped.empty())
        fail(-EINVAL, "%s must be a non-empty string", what.c_str());
    return std::string(stripped);
}

// A JSON string may hold "\u0000": as a C string (a path handed to the
// kernel, a key in a message) it would end there and name something else.
void no_nul(const std::string &s, const std::string &what) {
    if (s.find('\0') != std::string::npos)
        fail(-EINVAL, "%s contains a NUL character (\\u0000)", what.c_str());
}

// Where a value lies in the document, as the members and list positions
// above it: its text is made only for a value refused (made for every
// value, a document of long names over many list elements took time
// quadratic in its size: 23 s for one of 1 MiB).
struct JsonPlace {
    const JsonPlace *up;
    const std::string *member; // nullptr: list position `index` of up
    size_t index;
};

std::string place_text(const std::string &root, const JsonPlace *at) {
    if (!at)
        return root;
    return place_text(root, at->up) +
           (at->member ? "." + printable(*at->member) : "[" + std::to_string(at->index) + "]");
}

bool has_nul(const std::string &s) { return s.find('\0') != std::string::npos; }

void no_nul_below(const json &v, const std::string &root, const JsonPlace *at) {
    if (v.is_string()) {
        if (has_nul(v.get_ref<const std::string &>()))
            no_nul(v.get_ref<const std::string &>(), place_text(root, at));
    } else if (v.is_object()) {
        for (auto it = v.begin(); it != v.end(); ++it) {
            if (has_nul(it.key()))
                no_nul(it.key(), "a key in " + place_text(root, at));
            const JsonPlace here{at, &it.key(), 0};
            no_nul_below(it.value(), root, &here);
        }
    } else if (v.is_array()) {
        size_t i = 0;
        for (const auto &e : v) {
            const JsonPlace here{at, nullptr, i++};
            no_nul_below(e, root, &here);
        }
    }
}

// The same for every key and string anywhere in v, nested objects and
// lists included (LMCache options the core passes over are no exception:
// the document is refused whole, as the contract says).
void no_nul_anywhere(const json &v, const std::string &where) { no_nul_below(v, where, nullptr); }

// A JSON value of a daxkv key, as the text daxkv_config_set takes.
std::string as_text(const json &v, const std::string &key) {
    if (v.is_string())
        return v.get<std::string>();
    // As the words daxkv_config_set takes for a boolean, which no key that
    // takes a number or another word accepts: true is not 1 byte of
    // metadata, nor false a stats_interval of 0.
    if (v.is_boolean())
        return v.get<bool>() ? "true" : "false";
    if (v.is_number_unsigned())
        return std::to_string(v.get<uint64_t>());
    if (v.is_number_integer())
        return std::to_string(v.get<int64_t>()); // negative: set() rejects it
    // Every number a key takes is whole: 2.5 workers is not rounded, and
    // 4096.0 is refused too rather than taken as what it happens to equal.
    if (v.is_number_float())
        fail(-EINVAL, "%s: %s is not an integer", printable(key).c_str(), v.dump().c_str());
    fail(-EINVAL, "%s: expected a string, number or boolean", printable(key).c_str());
}

} // namespace

Config Config::from_json(const std::string &text) {
    if (text.size() > kJsonMaxBytes)
        fail(-EINVAL, "configuration JSON is %zu bytes, above the limit of %zu", text.size(),
             kJsonMaxBytes);
    // Depth is limited while parsing: a hostile document must be refused
    // before it costs more than its own bytes, and taking a document apart
    // recurses as deep as it nests. A key given twice in one object is
    // refused: which of the two values counts would be the parser's choice,
    // not the writer's. The document lives in a JsonTree, so running out of
    // memory anywhere below fails the call (-ENOMEM) instead of ending the
    // process.
    JsonTree tree(json::value_t::null);
    const std::string refusal =
        parse_json(tree, text, JsonLimits{kJsonMaxDepth, /*refuse_duplicate_keys=*/true});
    if (!refusal.empty())
        fail(-EINVAL, "configuration JSON %s", refusal.c_str());
    const json &doc = tree.value();
    if (!doc.is_object())
        fail(-EINVAL, "configuration JSON must be an object");

    Config cfg;
    cfg.eviction = Eviction::none; // LMCache's controllers decide what to evict
    bool have_devices = false;
    for (auto it = doc.begin(); it != doc.end(); ++it) {
        const std::string &k = it.key();
        const json &v = it.value();
        no_nul(k, "a configuration key");
        no_nul_anywhere(v, "the value of " + printable(k));
        if (k == "type") {
            if (!v.is_string() || v.get<std::string>() != "dax")
                fail(-EINVAL, "type must be \"dax\"");
        } else if (k == "slot_bytes") {
            cfg.slot_bytes = positive_int_field(v, "slot_bytes");
        } else if (k == "device_path" || k == "max_dax_size_gb") {
            // handled together below
        } else if (k == "devices") {
            if (!v.is_array())
                fail(-EINVAL, "devices must be a list");
            size_t i = 0;
            for (const auto &d : v) {
                std::string where = "devices[" + std::to_string(i) + "]";
                if (!d.is_object())
                    fail(-EINVAL, "%s must be a dict", where.c_str());
                if (!d.contains("device_path"))
                    fail(-EINVAL, "%s.device_path must be a non-empty string", where.c_str());
                std::string path = path_field(d["device_path"], where + ".device_path");
                no_nul(path, where + ".device_path");
                if (!d.contains("max_dax_size_gb"))
                    fail(-EINVAL, "%s.max_dax_size_gb must be a positive number", where.c_str());
                uint64_t bytes = gib_field(d["max_dax_size_gb"], where + ".max_dax_size_gb");
                cfg.add_device(path, bytes);
                ++i;
            }
            have_devices = true;
        } else if (k == "hotplug_enabled") {
            // As LMCache's adapter reads it (bool() of the value) for a
            // boolean, an integer and null (off); anything else is refused.
            if (!v.is_boolean() && !v.is_number_integer() && !v.is_null())
                fail(-EINVAL, "hotplug_enabled must be a boolean");
            cfg.hotplug = v.is_boolean() ? v.get<bool>() : v.is_null() ? false : v.get<int64_t>() != 0;
        } else if (k == "num_store_workers" || k == "num_lookup_workers" ||
                   k == "num_load_workers") {
            uint64_t n = positive_int_field(v, k);
            if (k == "num_load_workers")
                cfg.workers = static_cast<unsigned>(std::min<uint64_t>(n, 256));
        } else if (k == "eviction" && v.is_string()) {
            // daxkv's own "eviction" key ("lru" | "none"). LMCache's common
            // L2 option of the same name is an object and is handled below.
            cfg.set(k, v.get<std::string>());
        } else if (k == "eviction" && !v.is_object() && !v.is_null()) {
            // Neither daxkv's word nor LMCache's object: a number or a list
            // was taken and ignored.
            fail(-EINVAL, "eviction must be \"lru\", \"none\" or an object of LMCache's "
                          "eviction settings");
        } else if (k == "eviction" || k == "persist_enabled" || k == "serde" ||
                   k == "watch_directory" || k == "watch_interval_seconds") {
            // LMCache options handled above the core (its L2 eviction
            // controller, serde wrapper, directory watcher): accepted.
        } else {
            cfg.set(k, as_text(v, k));
        }
    }
    if (cfg.slot_bytes == 0) // first, as LMCache's adapter checks it
        fail(-EINVAL, "slot_bytes must be a positive integer");
    // As LMCache's adapter reads its configuration: devices wins, and the
    // one-device members beside it are not looked at; without devices,
    // device_path is required (only an explicit empty devices list starts
    // a pool without a device).
    if (have_devices) {
        if (doc.contains("device_path") || doc.contains("max_dax_size_gb"))
            log(kLogWarning, "configuration JSON: devices is given, so device_path and "
                             "max_dax_size_gb are ignored");
    } else {
        if (!doc.contains("device_path"))
            fail(-EINVAL, "device_path must be a non-empty string");
        std::string path = path_field(doc["device_path"], "device_path");
        no_nul(path, "device_path");
        if (!doc.contains("max_dax_size_gb"))
            fail(-EINVAL, "max_dax_size_gb must be a positive number");
        cfg.add_device(path, gib_field(doc["max_dax_size_gb"], "max_dax_size_gb"));
    }
    for (const auto &d : cfg.devices)
        if (d.bytes / cfg.slot_bytes == 0)
            fail(-EINVAL, "%s: configured DAX arena does not fit even one slot",
                 d.path.c_str());
    if (cfg.devices.empty() && !cfg.hotplug)
        fail(-EINVAL, "devices may be empty only when hotplug_enabled is true");
    return cfg;
}

} // namespace daxkv
