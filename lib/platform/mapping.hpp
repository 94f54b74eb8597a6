// A device mapped into the process: a regular file (the embedded default),
// anonymous memory ("mem:"), or a Device-DAX character device. The mapping
// follows the Device-DAX rules everywhere: MAP_SHARED, lengths that are
// multiples of the device alignment, bounds checked before mapping (a DAX
// mapping past the device end SIGBUSes on touch).
#pragma once

#include <atomic>
#include <cerrno>
#include <cstdint>
#include <memory>
#include <string>
#include <utility>
#include <vector>

#include <sys/types.h>

#include "internal/error.hpp"
#include "platform/device.hpp"

namespace daxkv {
namespace platform {

struct MapRequest {
    std::string path;    // file path, "mem:" or /dev/daxX.Y
    uint64_t bytes = 0;  // 0: whole device or existing file
    // Address space to map, when more than bytes: room for the arena to grow
    // into without moving (grow_limit). A Device-DAX device is mapped up to
    // this size (at most the whole device), a file arena's mapping reaches
    // past the end of the file until extend() gives it the blocks.
    uint64_t reserve_bytes = 0;
    bool create = true;  // create a missing file arena
    bool sync = false;   // durability=power: MAP_SYNC where the device allows it
    // An existing file shorter than bytes is an error, unless it holds at
    // least this many: then it is extended to bytes (capacity=payload: the
    // file holds the payloads asked for, the metadata goes on top).
    uint64_t min_existing = 0;
    // bytes is what the arena would like: a Device-DAX device maps it
    // rounded up to the device alignment, or the whole device when it is
    // smaller (the arena then lays out the slots that fit).
    bool fit = false;
    // An existing file mapped to be read (and repaired in place) as it is:
    // its blocks are not reserved and its pages not populated, so that
    // looking at a sparse arena (daxkv info, check) does not fill it.
    bool inspect = false;
    // With inspect: a file mapped only to be read (opened O_RDONLY, mapped
    // PROT_READ), so that one its reader may not write can be looked at.
    bool read_only = false;
};

class Mapping {
public:
    // Open, lock (exclusively, one process per device) and map. Throws
    // daxkv::Error; nothing stays open or mapped on failure.
    static std::unique_ptr<Mapping> open(const MapRequest &req);
    ~Mapping();
    Mapping(const Mapping &) = delete;
    Mapping &operator=(const Mapping &) = delete;

    char *base() const noexcept { return base_; }
    // Bytes mapped (reserve included) and, of those, the bytes that exist
    // and may be touched (a file's size; all of a device or of memory).
    uint64_t size() const noexcept { return size_; }
    uint64_t backed() const noexcept { return backed_.load(std::memory_order_acquire); }
    // Make the first bytes (at most size()) exist: a file is given the
    // blocks (fallocate, so a full file system fails here and not with a
    // SIGBUS later); devices and memory already have them. Throws Error.
    void extend(uint64_t bytes);
    // Give back what the last extend() added to a file (the blocks it
    // allocated, and the file's size as it was), when what it was made for
    // failed afterwards; backed() goes back with it. Nothing may touch the
    // bytes past the old end any more. Under the same lock as extend().
    void take_back_extend() noexcept;
    // Bytes the device or file had at open (a file's size), whatever part
    // of it is mapped.
    uint64_t device_bytes() const noexcept { return device_bytes_; }
    // The bytes the device held as this open found it: an existing file
    // that the open extended (capacity=payload's MapRequest::min_existing)
    // held only grown_from_, and an arena in it is judged against that; the
    // bytes the extension added are zeros, not the arena's.
    uint64_t found_bytes() const noexcept { return grown_from_ ? grown_from_ : device_bytes_; }
    const DeviceInfo &info() const noexcept { return info_; }
    // The file was created (or was empty) by this open.
    bool created() const noexcept { return created_; }
    // A file arena this open created has no name until here (or a hidden
    // temporary one, on a file system without O_TMPFILE): once the arena
    // in it is whole, it gets its path, never replacing what is there, so
    // that a process killed while creating it leaves nothing at the path.
    // With durability=power (sync) the file and then its directory are
    // made durable. Nothing to do for any other mapping. Throws NameTaken
    // when another open named its own new arena at the path first (the
    // file made here is then dropped with the mapping), Error otherwise.
    void name_new_file();
    // The open this mapping belongs to succeeded: keep what it did. A
    // mapping destroyed without keep() removes the file its open created
    // (or empties again one it sized, or gives one it extended its old size
    // back), so that a failed open or format leaves nothing behind.
    void keep() noexcept;
    bool volatile_memory() const noexcept { return info_.kind == DeviceKind::memory; }

    // Make [p, p+n) durable against power loss: write_back() then drain().
    // False (errno set) when the write-back failed.
    [[nodiscard]] bool persist(const void *p, size_t n) const noexcept {
        if (!n)
            return true;
        const bool ok = write_back(p, n);
        const int err = errno;
        drain();
        errno = err;
        return ok;
    }
    // The two halves of persist(), so that many ranges share one fence:
    // write_back() sends [p, p+n) toward the media (cache-line write-backs
    // without a fence on DAX mappings; msync, which waits, on file mappings;
    // nothing for memory); drain() waits until every write-back this thread
    // made on a DAX mapping is done (a store fence; nothing otherwise).
    // write_back() is false (errno set) when msync failed: the file system
    // could not write the pages (an I/O error, a full thin-provisioned
    // device), and nothing says they will ever reach the media.
    [[nodiscard]] bool write_back(const void *p, size_t n) const noexcept;
    void drain() const noexcept;

private:
    Mapping() = default;
    void populate(uint64_t from, uint64_t to) noexcept;
    int fd_ = -1;
    char *base_ = nullptr;
    uint64_t size_ = 0;
    std::atomic<uint64_t> backed_{0}; // grows under the store's hotplug lock
    bool created_ = false;
    uint64_t grown_from_ = 0; // an existing file's size before this open extended it
    // What the last extend() of a file changed, for take_back_extend().
    struct Extension {
        bool valid = false;
        uint64_t backed = 0; // backed() before it
        uint64_t size = 0;   // the file's size before it
        std::vector<std::pair<uint64_t, uint64_t>> holes; // it filled them
    } last_extend_;
    // The holes of an existing file this open gave blocks: given back with
    // the rest when the open fails (~Mapping), as the file was found.
    std::vector<std::pair<uint64_t, uint64_t>> filled_holes_;
    bool map_sync_ = false;
    uint64_t device_bytes_ = 0;
    // File arenas: what this open did to the file system, undone by the
    // destructor unless keep() was called.
    bool created_file_ = false; // the file did not exist
    bool unnamed_ = false;      // created, and not yet at its path (name_new_file)
    std::string temp_path_;     // the hidden name it has until then, without O_TMPFILE
    bool remap_named_ = false;  // O_TMPFILE: mapped again through its name once it has one
    bool sync_ = false;         // durability=power: the new name is made durable
    bool sized_empty_ = false;  // it existed, empty, and was sized
    bool keep_ = false;
    std::string file_path_;     // resolved
    dev_t file_dev_ = 0;
    ino_t file_ino_ = 0;
    DeviceInfo info_;
};

// Thrown by name_new_file(): another open gave the path its own new arena
// first. The open that gets it opens that arena instead, as any open of a
// file that exists (store/pool.cpp).
class NameTaken : public Error {
public:
    explicit NameTaken(std::string msg) : Error(-EEXIST, std::move(msg)) {}
};

// The absolute path, with no symlink, "." or "..", of the file that path
// leads to, whether or not that file exists yet (a dangling symlink is
// followed: creating through it would create its target). Throws Error
// (-ENOENT for a missing directory, -ELOOP, -EACCES, -ENOTDIR, -EINVAL).
std::string resolve_file(const std::string &path);
// A regular-file arena may not live under /dev (a missing DAX node made a
// file by mistake), except in /dev/shm. Given a resolve_file() result.
bool file_arena_refused(const std::string &resolved);

namespace testing {
// Sees every write_back() and drain() of every mapping, whatever its kind
// (the unit tests count the fences of a batch with it). Installed by tests
// only: without one, each call costs one relaxed load.
class PersistProbe {
public:
    virtual ~PersistProbe() = default;
    virtual void wrote_back(const void *p, size_t n) noexcept = 0;
    virtual void drained() noexcept = 0;
};
// Install (or, with nullptr, remove) the probe; the caller keeps it alive
// until it is removed.
void set_persist_probe(PersistProbe *probe) noexcept;
// Create new file arenas under a hidden temporary name, as on a file system
// without O_TMPFILE (true), or unnamed where the file system allows it
// (false, the default).
void force_temporary_names(bool on) noexcept;
// Called with each hidden temporary name made, before the open locks it
// (nullptr: none); the tests remove it there, as an open removing stale
// temporaries may.
void set_temporary_created_hook(void (*hook)(const char *temp)) noexcept;
} // namespace testing

} // namespace platform
} // namespace daxkv
