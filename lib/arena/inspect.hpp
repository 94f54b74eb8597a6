// Offline inspection of an arena's bytes: what an open would recover and
// drop, without changing anything, or with --repair the same withdrawals
// recovery would make. Used by `daxkv info` / `daxkv check` and by the fuzz
// target over the recovery parser; judges every slot with classify_slot, the
// function the recovery scan uses.
#pragma once

#include <cstdint>
#include <functional>
#include <string>
#include <vector>

#include "arena/arena.hpp"

namespace daxkv {
namespace arena {

// What the first 8 KiB of a device hold.
enum class ImageState {
    arena,            // at least one valid superblock copy
    empty,            // all zero (or shorter than two superblocks): an open formats it
    damaged_arena,    // the magic is there but no copy validates
    other_version,    // an intact superblock of another format version (sb holds it)
    truncated,        // an intact superblock whose slots end past the image (sb holds it)
    foreign,          // something else
    unreadable,       // reading them faulted (CheckOptions' read_guard caught it: bad media)
};
const char *image_state_name(ImageState s) noexcept;

struct SlotFinding {
    uint32_t slot = 0;
    const char *reason = ""; // verdict_name(), or "stale"
    uint64_t seq = 0;
    uint64_t value_len = 0;
    std::string key;         // empty when the header is too damaged to trust key_len
};

struct ImageReport {
    ImageState state = ImageState::empty;
    bool copy_a_valid = false, copy_b_valid = false;
    uint64_t image_bytes = 0; // the size judged
    Superblock sb{};          // the copy in use (state == arena; other_version, truncated: that copy)
    Layout layout;            // from sb
    bool recoverable = false; // RECOVERABLE flag: entries survive an open
    // Slot counts (recoverable arenas only).
    uint64_t committed = 0;   // headers with a commit word
    uint64_t live = 0;        // entries an open recovers (after duplicates)
    uint64_t value_bytes = 0; // sum of the live entries' value_len
    uint64_t max_seq = 0;
    uint64_t torn = 0, bad_header = 0, bad_value = 0, stale = 0;
    // Slots whose header or value faulted when read (CheckOptions'
    // read_guard caught it: bad media): an open counts them corrupt and
    // quarantines them, leaving them as they are; so does a repair.
    uint64_t unreadable = 0;
    // Removal-table words out of range (seq_limit() and above): an open sets
    // them to the floor (Arena::repair_removal_table), as a repair does.
    uint64_t bad_removals = 0;
    // The superblock's seq_floor out of range (seq_limit() and above): an
    // open clears it (Arena::repair_seq_floor), as a repair does.
    bool bad_floor = false;
    std::vector<SlotFinding> findings; // damaged and stale slots, by slot
    // Repair.
    uint64_t withdrawn = 0;   // commit words cleared
    bool superblock_rewritten = false;
    uint64_t usec = 0;
    unsigned threads = 0; // threads that judged the slots

    // Damage: a bad superblock copy or a torn or corrupt entry (stale
    // duplicates are what a crash mid-replace leaves; recovery resolves them).
    bool damaged() const noexcept {
        return (state == ImageState::arena && (!copy_a_valid || !copy_b_valid)) ||
               state == ImageState::damaged_arena || state == ImageState::unreadable || torn ||
               bad_header || bad_value ||
               unreadable || bad_removals || bad_floor;
    }
};

struct CheckOptions {
    bool check_values = true; // hash every payload (recovery does unless verify=off)
    bool repair = false;      // withdraw damaged and stale entries, rewrite a bad superblock copy
    // Make [p, p+n) durable after a repair write (Mapping::persist); may be empty.
    std::function<void(const void *, size_t)> persist;
    // Called now and then with the slots judged so far and the slots to
    // judge (a whole device takes a while), from the judging threads, one
    // call at a time; may be empty.
    std::function<void(uint64_t done, uint64_t total)> progress;
    // How the superblock blocks and each slot are read (as an open and the
    // recovery scan read them with sigbus=handle): blocks whose reading
    // faults make the image unreadable, a slot whose reading faults is
    // unreadable, instead of the process dying. Null: read directly.
    FaultGuard read_guard = nullptr;
    // Threads that judge the slots (1..16), as the recovery scan shares
    // them: in parts of about 16 MiB of values, or 1,024 headers.
    unsigned threads = 1;
};

// Inspect the size bytes at base. Reads nothing outside them; writes only
// with opt.repair, and then only commit words, removal-table words and the
// superblock copies (a damaged copy, or both for a damaged floor).
ImageReport check_image(char *base, uint64_t size, const CheckOptions &opt);


} // namespace arena
} // namespace daxkv
