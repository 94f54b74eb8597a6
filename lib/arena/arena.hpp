// One mapped device with its on-device layout: validation and formatting,
// the commit protocol, and the recovery scan. The arena knows nothing of
// keys' lifetimes; the store above decides what goes where.
#pragma once

#include <atomic>
#include <cstddef>
#include <cstdint>
#include <functional>
#include <memory>
#include <mutex>
#include <string>
#include <vector>

#include "arena/format.hpp"
#include "platform/mapping.hpp"

namespace daxkv {
namespace arena {

enum class Durability { none, process, power };
enum class Verify { off, recover, read };

struct Layout {
    uint64_t arena_bytes = 0;
    uint64_t slot_bytes = 0;
    uint64_t slot_count = 0;
    uint64_t header_offset = 0;
    uint64_t header_bytes = 0;
    uint64_t data_offset = 0;
    uint32_t meta_bytes = 0;
};

// The layout that fits slot_bytes-sized slots with meta_bytes of metadata
// into arena_bytes. slot_count is 0 when not even one slot fits.
Layout compute_layout(uint64_t arena_bytes, uint64_t slot_bytes, uint32_t meta_bytes);
// The layout of exactly `slots` slots, with the superblocks and slot headers
// in front of their payloads: arena_bytes is what that takes. compute_layout
// of that many bytes gives the same layout. slot_count is 0 when the sizes
// overflow.
Layout layout_for_slots(uint64_t slots, uint64_t slot_bytes, uint32_t meta_bytes);

struct RecoveredEntry {
    uint32_t slot;
    uint32_t generation;
    uint64_t seq;
    uint64_t value_len;
    uint32_t meta_len;
    uint16_t key_len;
    const char *key; // points into the slot header
};

// How an arena touches a slot's header and value outside the copy engine
// (a scan's reads, a running store's header reads and writes): fn(arg) run
// so that a fault on a load from or a store into [lo, lo+n) (a SIGBUS
// caught under sigbus=handle: bad media, a truncated file) returns nonzero
// instead of killing the process; 0 once fn returned. fn holds nothing
// that needs destroying: a fault leaves it by a jump. engine::guarded_call
// is one.
using FaultGuard = int (*)(const void *lo, size_t n, void (*fn)(void *arg), void *arg) noexcept;

struct RecoveryCounts {
    uint64_t recovered = 0;
    uint64_t torn = 0;    // commit word present but not matching the body
    uint64_t corrupt = 0; // checksum or bounds failure
    uint64_t stale = 0;   // an older commit of a key that has a newer one
    uint64_t usec = 0;
    unsigned threads = 0; // the scan's threads (the most of any device's)
};

// The scan's judgement of one slot (classify_slot, Arena::scan).
enum class SlotVerdict {
    empty,      // commit word 0
    ok,         // a whole entry
    torn,       // commit word present but not equal to seq
    bad_header, // key_len / meta_len / value_len out of bounds, or body_hash mismatch
    bad_value,  // the value checksum does not match (only when checked)
    unreadable, // reading the header or the value faulted (a SIGBUS caught by a FaultGuard)
};
const char *verdict_name(SlotVerdict v) noexcept;

// Result of reading the superblocks without opening for use (daxkv info).
struct SuperblockReport {
    bool valid_a = false, valid_b = false;
    bool zeroed = false;
    Superblock sb{};
    // inspect_file: neither copy valid for the file, but a whole one whose
    // slots in use end here, past the file's file_bytes (a truncated file).
    uint64_t cut_short_end = 0;
    uint64_t file_bytes = 0;
};

// Thrown by an open whose device's superblock blocks fault when read (bad
// media, sigbus=handle): the device cannot say what it holds or which
// changes of the pool it saw. A pool with hotplug opens without it, as
// missing (store/pool.cpp); any other failure of an open fails the store.
class BlocksUnreadable : public Error {
public:
    explicit BlocksUnreadable(std::string msg) : Error(-EIO, std::move(msg)) {}
};

// Thrown by a superblock write that faulted (SIGBUS: bad media under the
// blocks, or a file cut short), as opposed to one whose write-back the
// file system refused: an open fails on it (store/history.cpp).
class BlocksFaulted : public Error {
public:
    explicit BlocksFaulted(std::string msg) : Error(-EIO, std::move(msg)) {}
};

class Arena {
public:
    struct Options {
        uint64_t slot_bytes = 0;
        uint32_t meta_bytes = 0;
        Durability durability = Durability::process;
        Verify verify = Verify::recover;
        bool reformat = false;  // on_mismatch=reformat
        bool format = false;    // format even a valid arena of this layout (daxkv format)
        // When formatting: the slots in use are those whose payload ends
        // within this many bytes (0: the mapping's backed bytes); the rest
        // of the layout is room to grow into. A reopen uses the usable
        // slot count recorded in the superblock instead.
        uint64_t usable_bytes = 0;
        // Lay the arena out for exactly this many slots (layout_for_slots)
        // rather than for as many as the mapping holds; 0: as many as fit.
        uint64_t slot_count = 0;
        unsigned threads = 1;   // recovery scan parallelism
        // Under which guard the slot headers are read and written, and a
        // scan reads values (null: directly, a fault ends the process).
        FaultGuard fault_guard = nullptr;
        // When formatting an existing device: called as its slot headers
        // are cleared, with the slots done and the slots to clear (a whole
        // device takes a while); may be empty.
        std::function<void(uint64_t done, uint64_t total)> format_progress;
    };

    // Validate (or format) the arena on an open mapping. Throws Error:
    // kErrForeign, kErrCorrupt, -EINVAL, -ENOSPC; -EIO where its superblock
    // blocks or slot headers faulted under options' fault_guard (a device
    // whose superblock blocks cannot be read is refused unless asked to
    // format it).
    Arena(std::unique_ptr<platform::Mapping> map, const Options &opt);
    ~Arena();

    // The open this arena belongs to succeeded: keep what it created (a new
    // file, a format of a zeroed device) and changed (the recoverable flag;
    // a layout replaced where the last user kept no index). An arena
    // destroyed without keep() removes the file its mapping created, zeroes
    // again the superblocks it wrote on a device that was all zero, and
    // puts back the superblock blocks it changed, so that a failed open
    // leaves the target as it was.
    void keep() noexcept;

    const Layout &layout() const noexcept { return layout_; }
    const platform::Mapping &mapping() const noexcept { return *map_; }
    bool formatted() const noexcept { return formatted_; }
    const Superblock &superblock() const noexcept { return sb_; }
    // Slots in use (the rest of the layout is room to grow into).
    uint32_t usable_slots() const noexcept {
        return static_cast<uint32_t>(usable_.load(std::memory_order_acquire));
    }
    // Change the slots in use and record it in the superblock, so that a
    // reopen uses it. Growing gives a file arena the blocks of the new
    // payloads and clears the new slots' commit words first; shrinking
    // expects the slots above the new end to hold nothing. Throws Error
    // (-EINVAL out of range, -ENOSPC and errno codes from the file system,
    // -EIO where the headers or superblocks faulted under the fault_guard);
    // nothing changes on failure. One caller at a time.
    void set_usable_slots(uint64_t n);

    char *slot_data(uint32_t slot) const noexcept {
        return map_->base() + layout_.data_offset + uint64_t(slot) * layout_.slot_bytes;
    }
    SlotHeader *header(uint32_t slot) const noexcept {
        return reinterpret_cast<SlotHeader *>(map_->base() + layout_.header_offset +
                                              uint64_t(slot) * layout_.header_bytes);
    }
    const char *header_key(uint32_t slot) const noexcept {
        return reinterpret_cast<const char *>(header(slot) + 1);
    }
    const char *header_meta(uint32_t slot) const noexcept { return header_key(slot) + kKeyMax; }

    // The entry methods below touch a slot's header (and write back its
    // value): each returns true, or false where that faulted under the
    // arena's fault_guard (bad media under the header, or a truncated file:
    // the slot can be neither trusted nor reused, and the caller quarantines
    // it; what the method did before the fault is undefined). Without a
    // guard such a fault ends the process and they return true.

    // Write a new entry's header body (the commit word stays 0).
    [[nodiscard]] bool write_body(uint32_t slot, uint64_t seq, uint32_t generation,
                                  const void *key, uint16_t key_len, const void *meta,
                                  uint32_t meta_len, uint64_t value_len, uint64_t value_hash,
                                  bool hashed) noexcept;
    // Make value and body durable as the durability mode asks, then store
    // the commit word. After this returns true the entry survives what the
    // mode promises.
    [[nodiscard]] bool publish(uint32_t slot, uint64_t seq, uint64_t value_len) noexcept;
    // publish() in two steps, for a commit that must happen under a lock
    // while the (long) write-back of the value must not: persist_entry()
    // first, with no lock held, then commit().
    [[nodiscard]] bool persist_entry(uint32_t slot, uint64_t value_len) const noexcept;
    [[nodiscard]] bool commit(uint32_t slot, uint64_t seq) noexcept;
    // The same protocol for a batch, fenced once per step rather than once
    // per entry (durability=power; with process only the commit word is
    // stored, with none nothing): stage_entry() writes back each entry's
    // value and body, fence(), stage_commit() stores and writes back each
    // commit word, fence(). An entry is durable, and its commit word only
    // then, after the fence that follows each step.
    [[nodiscard]] bool stage_entry(uint32_t slot, uint64_t value_len) const noexcept;
    [[nodiscard]] bool stage_commit(uint32_t slot, uint64_t seq) noexcept;
    void fence() const noexcept;
    // Withdraw an entry: clear its commit word (durably, per mode).
    [[nodiscard]] bool withdraw(uint32_t slot) noexcept;
    // withdraw() for a caller that can still refuse (a remove the caller
    // asked for): where the cleared word cannot be written back
    // (durability=power), it is set again as it was, errno says why, and
    // the entry stays whole (not_written_back). faulted: as withdraw()'s
    // false for a SIGBUS (sigbus=handle).
    enum class Withdrawal { done, faulted, not_written_back };
    Withdrawal withdraw_or_keep(uint32_t slot) noexcept;
    // What a committed entry's header holds beyond what the index keeps,
    // read once and checked against its own checksum (body_hash): a read
    // with verify=read, and a move to another slot, trust nothing of a
    // header that no longer matches it. meta: a copy of the entry's
    // metadata the caller made (meta_len bytes), checked in place of the
    // header's own so that the bytes checked are the bytes handed on; null
    // for the header's. A committed header does not change while the entry
    // is borrowed: one that did was written over from outside.
    struct HeaderCheck {
        bool intact = false;     // fields, key and metadata match body_hash
        bool hashed = false;     // value_hash is set (false: written with verify=off)
        uint64_t value_hash = 0;
        uint64_t value_len = 0;
        uint32_t meta_len = 0;
        // Intact and holding the lengths the index recorded at commit: a
        // header that says otherwise was written over since.
        [[nodiscard]] bool matches(uint64_t indexed_value_len,
                                   uint32_t indexed_meta_len) const noexcept {
            return intact && value_len == indexed_value_len && meta_len == indexed_meta_len;
        }
    };
    [[nodiscard]] bool check_header(uint32_t slot, const void *meta, uint32_t meta_len,
                                    HeaderCheck *out) const noexcept;
    // The entry's metadata, len bytes into dst, as they are (unchecked).
    [[nodiscard]] bool read_meta(uint32_t slot, void *dst, uint32_t len) const noexcept;

    // Pool history (docs/on-device-format.md, "Pool history").
    uint64_t seq_floor() const;
    // Record a new floor in the superblock (durably). Thread-safe.
    void set_seq_floor(uint64_t v);
    // The open of the pool the arena last took part in and whether it ended
    // with a clean close (the superblock's last-open fields). set_last_open
    // records a new open (not closed), mark_closed its clean end; both
    // durably. Thread-safe.
    uint64_t last_open() const;
    bool closed_cleanly() const;
    void set_last_open(uint64_t s);
    void mark_closed();
    // The superblock rewrites above throw Error(-EIO) where storing the
    // superblock faulted under the arena's fault_guard (bad media under the
    // superblock blocks, or a file cut inside them); the arena then holds
    // the superblock it held before.

    // The removal table (kRemovalBuckets words). Thread-safe. Under the
    // fault_guard, each returns false where the table's block faulted (what
    // it did before the fault is undefined); the block is then as broken
    // for a later open, which reads it first and refuses the arena.
    // Read the whole table into table.
    [[nodiscard]] bool read_removals(uint64_t *table) const noexcept;
    // Raise bucket b's word to at least seq (made durable as the durability
    // mode asks) before a removal's commit word is cleared.
    [[nodiscard]] bool note_removal(uint32_t b, uint64_t seq) noexcept;
    // The same, written back but not fenced: durable at the caller's next
    // fence() (a batch's commits are recorded so).
    [[nodiscard]] bool stage_removal(uint32_t b, uint64_t seq) noexcept;
    // Raise every word to at least the given table's, durably.
    [[nodiscard]] bool merge_removals(const uint64_t *table) noexcept;

    // Scan every slot header: return the committed entries that validate,
    // clear the ones that do not, count both. Stale duplicates are resolved
    // by the caller, which knows keys. Runs on up to 16 threads (options'
    // threads); throws std::bad_alloc when one of them runs out of memory,
    // after all have ended (slots cleared so far stay cleared).
    // Slots whose header or value could not be read (options' fault_guard
    // caught a fault: SlotVerdict::unreadable) are counted corrupt and left
    // as they are, their commit word kept (a later open finds them
    // unreadable again, so their bytes are never reused); their numbers go
    // to unreadable when it is given.
    std::vector<RecoveredEntry> scan(RecoveryCounts &counts,
                                     std::vector<uint32_t> *unreadable = nullptr);
    bool recoverable() const noexcept { return recoverable_; }

    // Read and classify the superblocks of a mapping (no changes).
    static SuperblockReport inspect(const platform::Mapping &map);
    // The same for a regular file, read without mapping or locking it (what
    // an existing file arena was laid out as). All false for a file that
    // cannot be read.
    static SuperblockReport inspect_file(const std::string &path);

private:
    void format();
    void save_for_undo();
    void explain_unusable_superblocks(bool only_truncation) const;
    void refuse_copy_of_another_version() const;
    bool whole_copies_hold_nothing() const noexcept;
    uint64_t usable_at_format() const;
    // What a superblock write that fails (a fault, or a write-back the file
    // system refused) leaves. restore: each copy its bytes before the
    // write, and sb_ as it was; the caller fails, and a later open must
    // not read the change it was told failed. keep: sb_ and whatever the
    // copies got stay; the caller goes on as if it had been written (the
    // pool history's records, see History::write_floor), and only a power
    // loss before the pages reach the device takes the change back.
    enum class OnFailure { restore, keep };
    // Store sb_ as both copies (a new generation); throws Error(-EIO) where
    // that faulted, or the write-back's error. sb_m_ held, or before the
    // arena is shared.
    void write_superblock(OnFailure on_failure = OnFailure::restore);
    // Set one field of sb_ and write it (sb_m_ held); where the write
    // fails, the field is put back unless on_failure says keep. Only the
    // fields a rewrite changes are ever stored into sb_: the others (the
    // uuid) are read without the lock.
    template <typename T>
    void rewrite(T Superblock::*field, T v, OnFailure on_failure = OnFailure::restore);
    // The superblock blocks as this open found them, where it changed them
    // and was not kept (undo_format_, undo_blocks_).
    void put_back_blocks() noexcept;
    // Clear a slot's commit word (written back with durability=power), for
    // withdraw() and withdraw_or_keep(): what it held in *was, the failed
    // write-back's errno (or 0) in *write_back_err. False: it faulted.
    bool clear_commit(uint32_t slot, uint64_t *was, int *write_back_err) noexcept;
    // fn() under guarded(); throws Error(-EIO) naming what, where it faulted.
    template <typename Fn>
    void guarded_or_fail(const char *what, Fn &&fn);
    // Throws Error(-err) naming what, when err (a write-back's errno) is set.
    void fail_if_not_written_back(int err, const char *what) const;
    bool repair_seq_floor();     // at open, before the arena is shared
    void repair_removal_table(); // at open, before the arena is shared
    uint64_t *removal_word(uint32_t b) const noexcept {
        return reinterpret_cast<uint64_t *>(map_->base() + (b / kRemovalBucketsPerBlock) *
                                                               kSuperblockBytes +
                                            kRemovalTableOffset) +
               b % kRemovalBucketsPerBlock;
    }
    void clear_commit_words(uint64_t from, uint64_t to); // slots [from, to), durably
    // The scan's verdict on one slot, read under options' fault_guard; out
    // gets the entry when it is ok.
    SlotVerdict judge(uint32_t slot, bool check_value, RecoveredEntry &out) const noexcept;

    // fn() under opt_.fault_guard over the whole mapping: false where it
    // faulted (see the entry methods).
    template <typename Fn>
    bool guarded(Fn &&fn) const noexcept;
    // guarded() for the superblock blocks (the pool history's record).
    template <typename Fn>
    bool history_access(Fn &&fn) const noexcept;

    std::unique_ptr<platform::Mapping> map_;
    Options opt_;
    Layout layout_;
    Superblock sb_{};
    mutable std::mutex sb_m_; // sb_ and its rewrites, once the arena is shared
    bool formatted_ = false;
    bool recoverable_ = false;
    bool undo_format_ = false; // formatted a zeroed device this open; undone unless kept
    // The superblock blocks before this open changed them; put back unless kept.
    std::unique_ptr<char[]> undo_blocks_;
    uint64_t seq_limit_ = kSeqMax; // seq_limit() at open: numbers read stay below it
    std::atomic<uint64_t> usable_{0};
};

// The parser of on-device metadata, shared by the recovery scan, daxkv
// check and the fuzz target so that all three judge bytes the same way.

// XXH3-64 of every byte of a superblock before its checksum field.
uint64_t superblock_checksum(const Superblock &sb) noexcept;
// A superblock copy that is internally consistent and whose usable slots
// lie within backed_bytes of the device (docs/on-device-format.md, "A copy
// is valid when").
bool superblock_valid(const Superblock &sb, uint64_t backed_bytes) noexcept;
// A copy whose magic, size, checksum kind and checksum hold: written whole
// by some daxkv (valid or not for this library and this device).
bool superblock_intact(const Superblock &sb) noexcept;
// The layout a valid superblock describes.
Layout layout_of(const Superblock &sb) noexcept;
// The slots in use that a valid superblock records.
uint64_t usable_slots_of(const Superblock &sb) noexcept;
// Where the payloads of those slots end: the bytes the device must hold.
uint64_t usable_end_of(const Superblock &sb) noexcept;
// A whole superblock of this version whose slots in use end past `bytes`:
// an arena cut short (a truncated file), not a damaged one.
bool superblock_cut_short(const Superblock &sb, uint64_t bytes) noexcept;
// Fails with DAXKV_E_CORRUPT saying so (the arena at path is left untouched).
[[noreturn]] void fail_cut_short(const std::string &path, uint64_t end, uint64_t have);
// XXH3-64 of header bytes 8..55, the key and the metadata.
uint64_t header_checksum(const SlotHeader *h, uint64_t key_len, uint64_t meta_len) noexcept;
// The same sum of those pieces wherever they are: fields, the header's
// kBodyFieldBytes from seq on; a header's writer sums them before it stores
// them, not read back from the device.
constexpr size_t kBodyFieldBytes = offsetof(SlotHeader, body_hash) - offsetof(SlotHeader, seq);
uint64_t body_checksum(const void *fields, const void *key, uint64_t key_len, const void *meta,
                       uint64_t meta_len) noexcept;

// The bound a sequence number read from a device now stays below
// (format.hpp, kSeqAhead): the wall clock in nanoseconds plus kSeqAhead, at
// most kSeqMax.
uint64_t seq_limit() noexcept;

// Judge one slot header (commit: its commit word, loaded by the caller)
// against a validated layout. data is the slot's payload; its checksum is
// compared only when check_value is set and the header says it was hashed.
// A seq at or above limit (seq_limit()) is a bad header. Reads nothing
// outside the header and the payload of that slot (a scan's FaultGuard
// relies on it). Never unreadable: a fault here is the caller's.
SlotVerdict classify_slot(const SlotHeader *h, uint64_t commit, const Layout &l,
                          const char *data, bool check_value, uint64_t limit) noexcept;
// classify_slot() of the slot whose header is h, its commit word loaded
// here, read under guard over [lo, lo+n), the mapping that holds the slot
// (a null guard: read directly): unreadable where reading it faulted. The
// recovery scan and `daxkv check` judge slots so.
SlotVerdict judge_slot(const SlotHeader *h, const Layout &l, const char *data, bool check_value,
                       uint64_t limit, FaultGuard guard, const void *lo, size_t n) noexcept;
// Load every cache line of [p, p+n): run under a FaultGuard, it says
// whether the range can be read (the superblock blocks, before an open or a
// check judges them).
void load_lines(const char *p, uint64_t n) noexcept;
// Whether every byte of [p, p+n) is zero.
bool all_zero(const char *p, size_t n) noexcept;

} // namespace arena
} // namespace daxkv
