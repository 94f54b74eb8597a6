// Store configuration: what daxkv_config_* builds and daxkv_open reads.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "arena/arena.hpp"

namespace daxkv {

enum class Eviction { lru, none };
enum class NtStores { auto_, on, off };
// Where new entries go: the least-used writable device, or one on the
// caller's NUMA node first.
enum class Placement { least_used, numa };
// What a device's size counts: everything the arena uses (superblocks and
// slot headers included), or only the slots' payloads (LMCache's
// N x slot_bytes), with the metadata on top of them.
enum class Capacity { arena, payload };

// Most devices one store holds over its lifetime (tombstones included), and
// so one configuration.
constexpr uint32_t kMaxDevices = 64;

struct DeviceSpec {
    std::string path;
    uint64_t bytes = 0; // 0: whole device or existing file
};

struct Config {
    uint64_t slot_bytes = 0; // required
    uint32_t meta_bytes = 256;
    Eviction eviction = Eviction::lru;
    arena::Durability durability = arena::Durability::process;
    arena::Verify verify = arena::Verify::recover;
    bool reformat = false;  // on_mismatch
    unsigned workers = 0;   // 0: CPU count capped at 8
    bool hotplug = false;
    bool create = true;
    NtStores nt_stores = NtStores::auto_;
    // GPU transfers: largest single cudaHostRegister, and the size of each
    // pinned staging buffer of the staged path.
    uint64_t cuda_register_chunk = 64ull << 30;
    uint64_t cuda_staging_bytes = 16ull << 20;
    Placement placement = Placement::least_used;
    bool sigbus_handle = false; // sigbus=handle: a SIGBUS reading the arena is -EIO
    bool numa = true;           // numa=auto: workers on the device's node
    // Bytes each device's arena is laid out to grow to (resize past the size
    // it was opened with); 0: no room to grow. Fixed when an arena is
    // formatted: a reopen must give the same value.
    uint64_t grow_limit = 0;
    // grow_limit=auto: an existing arena keeps the room it was laid out
    // with; a new one is laid out to grow to the device's size (a file's
    // size when it is larger than asked for).
    bool grow_auto = false;
    // With payload, device sizes and grow_limit count payload bytes.
    Capacity capacity = Capacity::arena;
    // How often the store publishes its statistics for other processes
    // (store/stats_page.hpp); 0: no statistics page.
    unsigned stats_interval_ms = 1000;
    std::vector<DeviceSpec> devices;

    // Set one key from its text form. Throws Error(-EINVAL) naming the key.
    void set(const std::string &key, const std::string &value);
    void add_device(const std::string &path, uint64_t bytes);
    // Check what open needs (slot_bytes, at least one device).
    void validate() const;
    unsigned effective_workers() const;

    // LMCache's dax --l2-adapter JSON plus daxkv's own keys.
    static Config from_json(const std::string &text);
};

// The keys daxkv_config_set takes, in the order of the one table that
// parses them (config.cpp).
std::vector<std::string> config_keys();
// The words a key takes when its value is one of several (empty for a key
// that takes a number, a size or a boolean).
std::vector<std::string> config_choices(const std::string &key);
// The word daxkv_config_set takes for a value, as status reports show it.
const char *config_word(Eviction v) noexcept;
const char *config_word(arena::Durability v) noexcept;
const char *config_word(arena::Verify v) noexcept;
const char *config_word(NtStores v) noexcept;
const char *config_word(Placement v) noexcept;
const char *config_word(Capacity v) noexcept;

// Largest meta_bytes accepted (per-entry metadata lives in the slot header).
constexpr uint32_t kMetaBytesMax = 64 * 1024;
// Largest JSON document accepted, and deepest nesting.
constexpr size_t kJsonMaxBytes = 1 << 20;
constexpr int kJsonMaxDepth = 16;

} // namespace daxkv
