#include "arena/arena.hpp"

#include <algorithm>
#include <atomic>
#include <cerrno>
#include <chrono>
#include <cstring>
#include <mutex>

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>
#include <uuid/uuid.h>

#include "arena/checksum.hpp"
#include "arena/slot_parts.hpp"
#include "internal/error.hpp"
#include "internal/undo.hpp"
#include "internal/util.hpp"

namespace daxkv {
namespace arena {
namespace {

bool has_magic(const char *p) { return std::memcmp(p, kMagic, sizeof kMagic) == 0; }

// The first of a group of write-backs that failed (Mapping::write_back:
// msync), by its errno: a group's other writes go on (a fault guard must
// not be left by a throw), and the caller fails with it or returns false.
struct WriteBacks {
    int err = 0;
    bool operator()(bool ok) noexcept {
        if (!ok && !err)
            err = errno ? errno : EIO;
        return ok;
    }
    bool ok() const noexcept { return err == 0; }
    // For the callers that return false: errno says why.
    bool report() const noexcept {
        if (err)
            errno = err;
        return err == 0;
    }
};

} // namespace

SuperblockReport Arena::inspect(const platform::Mapping &map) {
    SuperblockReport r;
    if (map.backed() < kHeaderOffset)
        return r;
    Superblock a, b;
    std::memcpy(&a, map.base(), sizeof a);
    std::memcpy(&b, map.base() + kSuperblockBytes, sizeof b);
    // Against what was there: an arena in a file that this open extended
    // (capacity=payload) and whose slots end past the file's old end was
    // cut short, and is not whole just because zeros now follow it.
    const uint64_t found = std::min(map.backed(), map.found_bytes());
    r.valid_a = superblock_valid(a, found);
    r.valid_b = superblock_valid(b, found);
    r.zeroed = all_zero(map.base(), kHeaderOffset);
    if (r.valid_a && (!r.valid_b || a.sb_generation >= b.sb_generation))
        r.sb = a;
    else if (r.valid_b)
        r.sb = b;
    return r;
}

SuperblockReport Arena::inspect_file(const std::string &path) {
    SuperblockReport r;
    // Judged by where the path leads, as the open that follows judges it
    // (a symlink is followed). Only a regular file is opened, and without
    // blocking: a FIFO put at the path would otherwise hold the open until
    // a writer came; the file type is checked again on what was opened.
    struct stat st;
    if (::stat(path.c_str(), &st) != 0 || !S_ISREG(st.st_mode))
        return r;
    const int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC | O_NONBLOCK | O_NOCTTY);
    if (fd < 0)
        return r;
    // A file cut inside the second superblock copy (or before it) still
    // holds the first whole: read what there is, the rest as zeros (an
    // invalid second copy), so that it is found cut short like any other.
    char buf[kHeaderOffset] = {};
    const ssize_t got = ::fstat(fd, &st) == 0 && S_ISREG(st.st_mode)
                            ? ::pread(fd, buf, sizeof buf, 0)
                            : -1;
    ::close(fd);
    if (got < static_cast<ssize_t>(sizeof(Superblock)))
        return r;
    const uint64_t size = static_cast<uint64_t>(st.st_size);
    r.file_bytes = size;
    Superblock a, b;
    std::memcpy(&a, buf, sizeof a);
    std::memcpy(&b, buf + kSuperblockBytes, sizeof b);
    r.valid_a = superblock_valid(a, size);
    r.valid_b = superblock_valid(b, size);
    r.zeroed = all_zero(buf, sizeof buf);
    if (!r.valid_a && !r.valid_b)
        for (const Superblock *c : {&a, &b})
            if (superblock_cut_short(*c, size))
                r.cut_short_end = usable_end_of(*c);
    if (r.valid_a && (!r.valid_b || a.sb_generation >= b.sb_generation))
        r.sb = a;
    else if (r.valid_b)
        r.sb = b;
    return r;
}

Arena::Arena(std::unique_ptr<platform::Mapping> map, const Options &opt)
    : map_(std::move(map)), opt_(opt), seq_limit_(seq_limit()) {
    const uint64_t size = map_->size();
    const std::string &path = map_->info().path;
    if (opt_.slot_bytes == 0)
        fail(-EINVAL, "slot_bytes must be set and greater than 0");
    if (opt_.slot_count) {
        layout_ = layout_for_slots(opt_.slot_count, opt_.slot_bytes, opt_.meta_bytes);
        if (layout_.slot_count && layout_.arena_bytes > size)
            fail(-ENOSPC,
                 "%s: %llu slots of %llu bytes with their slot headers take %llu bytes, but "
                 "only %llu are mapped",
                 path.c_str(), static_cast<unsigned long long>(opt_.slot_count),
                 static_cast<unsigned long long>(opt_.slot_bytes),
                 static_cast<unsigned long long>(layout_.arena_bytes),
                 static_cast<unsigned long long>(size));
    } else {
        layout_ = compute_layout(size, opt_.slot_bytes, opt_.meta_bytes);
    }
    // Too small for one slot: unless it is an arena cut short (say so then).
    if (layout_.slot_count == 0 && !map_->created() && !opt_.format)
        explain_unusable_superblocks(true);
    if (layout_.slot_count == 0)
        fail(-EINVAL,
             "%s: an arena of %llu bytes does not fit even one slot of %llu bytes "
             "(with %llu bytes of slot header)",
             path.c_str(), static_cast<unsigned long long>(size),
             static_cast<unsigned long long>(opt_.slot_bytes),
             static_cast<unsigned long long>(layout_.header_bytes));

    // Bad media under the superblock blocks (or a file cut inside them)
    // must not end the process: every line of them is read once under the
    // fault_guard before the open looks at them, and every write of them
    // (and the store's reads of the removal table) goes through it too.
    // Such a device cannot say what it held, nor which changes of the pool
    // it saw (its removal table lies there too): it is refused. So it is
    // when a format is asked for: a format clears both blocks in turn, and
    // a fault in the second would leave the first cleared, the arena
    // changed by an open that failed.
    const bool blocks_readable =
        guarded([&] { load_lines(map_->base(), std::min(kHeaderOffset, map_->backed())); });
    // A constructor that throws runs no destructor: what this open changed
    // in the blocks is put back here (~Arena does so later).
    Undo put_back([this]() noexcept { put_back_blocks(); });
    if (!blocks_readable) {
        if (!map_->created())
            throw BlocksUnreadable(daxkv::format(
                "%s: reading its superblock blocks (the first %llu bytes) faulted (SIGBUS: bad "
                "media, or a file cut short); nothing was written to it, not even a format "
                "asked for (clear its media errors first, e.g. 'ndctl clear-errors')",
                path.c_str(), static_cast<unsigned long long>(kHeaderOffset)));
    }
    SuperblockReport rep = blocks_readable ? inspect(*map_) : SuperblockReport{};
    if (map_->created() || rep.zeroed || opt_.format) {
        // A new file, anonymous memory, or a zeroed device: ours to format
        // (and anything at all when the caller asks for a format).
        undo_format_ = rep.zeroed && !map_->created() && !opt_.format;
        format();
    } else if (!rep.valid_a && !rep.valid_b) {
        // An arena whose last user kept no index (durability=none) holds
        // nothing any open would recover, also when it no longer fits what
        // is mapped (its file cut short since): it is replaced, as one of
        // another layout is below.
        if (!opt_.reformat) {
            refuse_copy_of_another_version(); // whatever the other copy holds
            if (!whole_copies_hold_nothing()) {
                bool ours = has_magic(map_->base()) || has_magic(map_->base() + kSuperblockBytes);
                if (ours)
                    explain_unusable_superblocks(false);
                if (ours)
                    fail(kErrCorrupt,
                         "%s: both superblock copies of the daxkv arena are damaged "
                         "(use on_mismatch=reformat or 'daxkv format' to start over)",
                         path.c_str());
                fail(kErrForeign,
                     "%s holds data that is not a daxkv arena; it is left untouched "
                     "(use on_mismatch=reformat or 'daxkv format' to claim it)",
                     path.c_str());
            }
            save_for_undo(); // an open that fails after this puts it back
        }
        format();
    } else {
        // The copy that is not valid may be whole but of another format
        // version: a daxkv that reads it wrote it, say stopped between its
        // two copies. It is not damage to repair from this copy.
        if (!opt_.reformat && !(rep.valid_a && rep.valid_b))
            refuse_copy_of_another_version();
        const Superblock &sb = rep.sb;
        bool same = sb.slot_bytes == layout_.slot_bytes && sb.meta_bytes == layout_.meta_bytes &&
                    sb.arena_bytes == layout_.arena_bytes &&
                    sb.slot_count == layout_.slot_count && sb.data_offset == layout_.data_offset;
        // An arena whose last user kept no index (durability=none) holds
        // nothing any open would recover: another layout simply replaces it.
        const bool holds_entries = (sb.flags & kSbRecoverable) != 0;
        if (!same && !opt_.reformat && holds_entries) {
            // Only the size laid out differs. Either the arena has room to
            // grow beyond what is opened (made with a grow_limit this open
            // does not give: grow_limit=auto keeps an existing arena's
            // layout), or the file or device is now larger than the arena
            // (extended since, or a size asked for above the one it was
            // made with): its own size opens it.
            const auto laid_out = static_cast<unsigned long long>(sb.arena_bytes);
            const auto asked = static_cast<unsigned long long>(layout_.arena_bytes);
            if (sb.slot_bytes == layout_.slot_bytes && sb.meta_bytes == layout_.meta_bytes) {
                if (sb.arena_bytes > map_->backed())
                    fail(kErrForeign,
                         "%s holds a daxkv arena of another layout: laid out to grow to %llu "
                         "bytes, where this open lays out %llu; it is left untouched (open it "
                         "with grow_limit=auto, which keeps an existing arena's layout, or "
                         "grow_limit=%llu)",
                         path.c_str(), laid_out, asked, laid_out);
                if (sb.arena_bytes < map_->found_bytes())
                    fail(kErrForeign,
                         "%s holds a daxkv arena of another layout: %llu bytes, where this open "
                         "lays out %llu (the file or device is larger than the arena); it is "
                         "left untouched (open it with its size, %llu bytes)",
                         path.c_str(), laid_out, asked, laid_out);
                // The file was the arena's size when this open found it (one
                // that capacity=payload extended is judged by its size as
                // found): the layout asked for differs by the room to grow
                // (grow_limit) or by where the slot headers go (capacity).
                fail(kErrForeign,
                     "%s holds a daxkv arena of another layout: %llu bytes, where this open lays "
                     "out %llu for its grow_limit and capacity settings; it is left untouched "
                     "(open it with the settings it was made with, or with grow_limit=auto, "
                     "which keeps an existing arena's layout)",
                     path.c_str(), laid_out, asked);
            }
            fail(kErrForeign,
                 "%s holds a daxkv arena of another layout (slot_bytes %llu, meta_bytes %u, "
                 "%llu bytes; asked for slot_bytes %llu, meta_bytes %u, %llu bytes); it is left "
                 "untouched (use on_mismatch=reformat to replace it)",
                 path.c_str(), static_cast<unsigned long long>(sb.slot_bytes), sb.meta_bytes,
                 laid_out, static_cast<unsigned long long>(layout_.slot_bytes),
                 layout_.meta_bytes, asked);
        }
        if (!same) {
            if (!opt_.reformat) // a reformat asked for stays (daxkv_open(3))
                save_for_undo();
            format();
        } else {
            sb_ = sb;
            usable_.store(usable_slots_of(sb));
            // The repairs below are this open's: one that fails (on another
            // device of the pool, say) puts the blocks back as they were.
            save_for_undo();
            const bool floor_repaired = repair_seq_floor();
            repair_removal_table();
            // Repair a damaged or older second copy (and a damaged floor).
            if (!rep.valid_a || !rep.valid_b || floor_repaired)
                write_superblock();
        }
    }

    bool want_recovery = opt_.durability != Durability::none && !map_->volatile_memory();
    bool was_recoverable = (sb_.flags & kSbRecoverable) != 0;
    // The flag follows the durability asked for; a failed open gives the
    // arena its old superblocks back (a store that kept an index must not
    // lose its entries to an open that never ran).
    if (!formatted_ && want_recovery != was_recoverable)
        save_for_undo();
    if (want_recovery) {
        if (!was_recoverable && !formatted_) {
            // The last user kept no index (durability=none): headers may
            // name entries that were never made durable. Forget them.
            clear_commit_words(0, layout_.slot_count);
        }
        if (!was_recoverable) {
            sb_.flags |= kSbRecoverable;
            write_superblock();
        }
        recoverable_ = !formatted_;
    } else if (was_recoverable) {
        sb_.flags &= ~kSbRecoverable;
        write_superblock();
    }
    // The arena is whole: a file this open created gets its path only now.
    map_->name_new_file();
    put_back.dismiss();
}

// Neither copy is valid, but a copy whose checksum holds is not damaged: an
// arena of another format version, or one larger than what is mapped (a
// smaller size asked for, or a truncated file). Fails with what it is;
// with only_truncation, only for a truncated file (the configuration is at
// fault otherwise).
void Arena::explain_unusable_superblocks(bool only_truncation) const {
    const std::string &path = map_->info().path;
    if (!only_truncation)
        refuse_copy_of_another_version();
    for (uint64_t off : {uint64_t(0), kSuperblockBytes}) {
        if (off + sizeof(Superblock) > map_->backed())
            continue;
        Superblock sb;
        std::memcpy(&sb, map_->base() + off, sizeof sb);
        if (!superblock_valid(sb, UINT64_MAX)) // whole, and of this version
            continue;
        const uint64_t end = usable_end_of(sb);
        if (map_->found_bytes() >= end && only_truncation)
            return;
        if (map_->found_bytes() >= end)
            fail(kErrForeign,
                 "%s holds a daxkv arena of %llu bytes (%llu in use); %llu were asked for. It is "
                 "left untouched (open it with its size, or 0 for the whole file)",
                 path.c_str(), static_cast<unsigned long long>(sb.arena_bytes),
                 static_cast<unsigned long long>(end),
                 static_cast<unsigned long long>(map_->backed()));
        fail_cut_short(path, end, map_->found_bytes());
    }
}

// Whether the superblock copies that are whole (of this version, whatever
// their bounds) are all of an arena that holds no entries to recover, and
// there is one.
bool Arena::whole_copies_hold_nothing() const noexcept {
    bool found = false;
    for (uint64_t off : {uint64_t(0), kSuperblockBytes}) {
        if (off + sizeof(Superblock) > map_->backed())
            continue;
        Superblock sb;
        std::memcpy(&sb, map_->base() + off, sizeof sb);
        if (!superblock_valid(sb, UINT64_MAX))
            continue;
        if (sb.flags & kSbRecoverable)
            return false;
        found = true;
    }
    return found;
}

// A superblock copy whose checksum holds but whose version is another is
// that version's arena (or one a daxkv of it was converting): refused, and
// left untouched, whatever the other copy holds.
void Arena::refuse_copy_of_another_version() const {
    for (uint64_t off : {uint64_t(0), kSuperblockBytes}) {
        if (off + sizeof(Superblock) > map_->backed())
            continue;
        Superblock sb;
        std::memcpy(&sb, map_->base() + off, sizeof sb);
        if (superblock_intact(sb) && sb.format_version != kFormatVersion)
            fail(kErrForeign,
                 "%s holds a daxkv arena of format version %u (superblock copy %c); this library "
                 "reads version %u. It is left untouched (use on_mismatch=reformat to replace it)",
                 map_->info().path.c_str(), sb.format_version, off ? 'B' : 'A', kFormatVersion);
    }
}

void Arena::keep() noexcept {
    map_->keep();
    undo_format_ = false;
    undo_blocks_.reset();
}

Arena::~Arena() { put_back_blocks(); }

void Arena::put_back_blocks() noexcept {
    // Where the blocks fault, there is nothing to put back.
    if (undo_format_) {
        // (Nor, where the write-back fails, anyone to tell.)
        static_cast<void>(guarded([&] {
            std::memset(map_->base(), 0, kHeaderOffset);
            static_cast<void>(map_->persist(map_->base(), kHeaderOffset));
        }));
    } else if (undo_blocks_) {
        static_cast<void>(guarded([&] {
            std::memcpy(map_->base(), undo_blocks_.get(), kHeaderOffset);
            static_cast<void>(map_->persist(map_->base(), kHeaderOffset));
        }));
    }
    undo_format_ = false;
    undo_blocks_.reset();
}

// Before this open changes what an arena that was there says of itself
// (its recoverable flag, its layout when its last user kept no index, or a
// repair of its superblocks, floor or removal table): the superblock
// blocks as they are, put back by a destruction without keep(). The removal tables go back too: what the open merged into them
// came from the other devices, which keep it.
void Arena::save_for_undo() {
    if (undo_blocks_ || undo_format_ || map_->created())
        return;
    undo_blocks_.reset(new char[kHeaderOffset]);
    std::memcpy(undo_blocks_.get(), map_->base(), kHeaderOffset);
}

void Arena::format() {
    std::memset(&sb_, 0, sizeof sb_);
    std::memcpy(sb_.magic, kMagic, sizeof kMagic);
    sb_.format_version = kFormatVersion;
    sb_.sb_bytes = sizeof(Superblock);
    static_assert(sizeof(uuid_t) == sizeof sb_.uuid, "the superblock holds a 16-byte UUID");
    uuid_generate(sb_.uuid);
    sb_.arena_bytes = layout_.arena_bytes;
    sb_.slot_bytes = layout_.slot_bytes;
    sb_.slot_count = layout_.slot_count;
    sb_.header_offset = layout_.header_offset;
    sb_.header_bytes = layout_.header_bytes;
    sb_.data_offset = layout_.data_offset;
    sb_.key_max = kKeyMax;
    sb_.meta_bytes = layout_.meta_bytes;
    sb_.flags = 0;
    sb_.checksum_kind = kChecksumXXH3;
    sb_.usable_slots = usable_at_format();
    usable_.store(sb_.usable_slots);
    sb_.created_unix_ns = static_cast<uint64_t>(
        std::chrono::duration_cast<std::chrono::nanoseconds>(
            std::chrono::system_clock::now().time_since_epoch())
            .count());
    // Invalidate the old superblocks first so a crash mid-format leaves a
    // zeroed (formattable) arena rather than an old layout over new headers.
    WriteBacks wb;
    guarded_or_fail("clearing its superblock blocks", [&] {
        std::memset(map_->base(), 0, kHeaderOffset);
        wb(map_->persist(map_->base(), kHeaderOffset));
    });
    fail_if_not_written_back(wb.err, "clearing its superblock blocks");
    if (!map_->created()) {
        // In steps, so that a caller can show a large device's progress.
        const uint64_t n = layout_.slot_count, step = uint64_t(1) << 16;
        for (uint64_t s = 0; s < n; s += step) {
            clear_commit_words(s, std::min(n, s + step));
            if (opt_.format_progress)
                opt_.format_progress(std::min(n, s + step), n);
        }
    }
    write_superblock();
    formatted_ = true;
}

uint64_t Arena::usable_at_format() const {
    const uint64_t backed = map_->backed();
    const uint64_t bytes = opt_.usable_bytes ? std::min(opt_.usable_bytes, backed) : backed;
    const uint64_t n = bytes > layout_.data_offset
                           ? std::min(layout_.slot_count,
                                      (bytes - layout_.data_offset) / layout_.slot_bytes)
                           : 0;
    if (n == 0)
        fail(-EINVAL,
             "%s: %llu bytes do not hold one slot of %llu bytes after the slot headers "
             "(%llu bytes, laid out for %llu slots to grow into; lower grow_limit)",
             map_->info().path.c_str(), static_cast<unsigned long long>(bytes),
             static_cast<unsigned long long>(layout_.slot_bytes),
             static_cast<unsigned long long>(layout_.data_offset),
             static_cast<unsigned long long>(layout_.slot_count));
    return n;
}

uint64_t Arena::seq_floor() const {
    std::lock_guard<std::mutex> g(sb_m_);
    return sb_.seq_floor;
}

void Arena::set_seq_floor(uint64_t v) {
    std::lock_guard<std::mutex> g(sb_m_);
    if (sb_.seq_floor == v)
        return;
    // Kept where its write fails: the pool hands out numbers up to the new
    // floor all the same, and a device whose floor went back would take
    // every removal recorded since for one made while it was away.
    rewrite(&Superblock::seq_floor, v, OnFailure::keep);
}

uint64_t Arena::last_open() const {
    std::lock_guard<std::mutex> g(sb_m_);
    return sb_.last_open;
}

bool Arena::closed_cleanly() const {
    std::lock_guard<std::mutex> g(sb_m_);
    return sb_.closed_cleanly != 0;
}

void Arena::set_last_open(uint64_t s) {
    std::lock_guard<std::mutex> g(sb_m_);
    if (sb_.last_open == s && sb_.closed_cleanly == 0)
        return;
    // Kept where its write fails, as the floor is: put back, a device
    // marked closed cleanly would be trusted as such after a crash of this
    // open.
    sb_.closed_cleanly = 0;
    rewrite(&Superblock::last_open, s, OnFailure::keep);
}

void Arena::mark_closed() {
    std::lock_guard<std::mutex> g(sb_m_);
    if (sb_.closed_cleanly == 1)
        return;
    rewrite(&Superblock::closed_cleanly, uint64_t(1));
}

// A floor at or above the limit (format.hpp, kSeqAhead) is damage: the pool
// would go on above it and record a floor at or above kSeqMax, a superblock
// no open accepts. It becomes 0, as in an image written before the field
// existed: this device's entries of buckets that saw a change are dropped at
// this open (lost from the cache, never brought back stale). Returns whether
// it was damaged (sb_ changed, to be written).
bool Arena::repair_seq_floor() {
    if (sb_.seq_floor < seq_limit_)
        return false;
    log(kLogWarning,
        "%s: the superblock's seq_floor %llu is out of range (damaged) and is cleared; "
        "entries of keys the pool changed are dropped from this device",
        map_->info().path.c_str(), static_cast<unsigned long long>(sb_.seq_floor));
    sb_.seq_floor = 0;
    return true;
}

// The removal table is outside the superblock's checksum: a word at or
// above the limit (kSeqMax, or kSeqAhead past the clock) is damage
// (format.hpp), which would otherwise carry the pool's sequence numbers
// past 2^63 and 2^64. Each such word becomes the arena's floor, a change
// as recent as any this device may have seen: the entries
// of its bucket here are judged removed at this open (lost from the cache,
// never brought back stale), and later commits, numbered above the floor,
// are not.
void Arena::repair_removal_table() {
    uint32_t damaged = 0;
    WriteBacks wb;
    guarded_or_fail("repairing its removal table", [&] {
        for (uint32_t b = 0; b < kRemovalBuckets; ++b) {
            uint64_t *w = removal_word(b);
            if (*w >= seq_limit_) {
                *w = sb_.seq_floor;
                ++damaged;
            }
        }
        if (damaged)
            for (uint64_t block = 0; block < 2; ++block)
                wb(map_->persist(map_->base() + block * kSuperblockBytes + kRemovalTableOffset,
                                 kSuperblockBytes - kRemovalTableOffset));
    });
    fail_if_not_written_back(wb.err, "repairing its removal table");
    if (!damaged)
        return;
    log(kLogWarning,
        "%s: %u words of the removal table were out of range (damaged) and are set to the "
        "arena's floor; entries of their buckets on this device are dropped",
        map_->info().path.c_str(), damaged);
}

bool Arena::read_removals(uint64_t *table) const noexcept {
    return history_access([&] {
        for (uint32_t b = 0; b < kRemovalBuckets; ++b)
            table[b] = __atomic_load_n(removal_word(b), __ATOMIC_ACQUIRE);
    });
}

bool Arena::stage_removal(uint32_t b, uint64_t seq) noexcept {
    uint64_t *w = removal_word(b);
    WriteBacks wb;
    return history_access([&] {
        uint64_t cur = __atomic_load_n(w, __ATOMIC_RELAXED);
        while (cur < seq && !__atomic_compare_exchange_n(w, &cur, seq, true, __ATOMIC_RELEASE,
                                                         __ATOMIC_RELAXED)) {
        }
        if (opt_.durability == Durability::power)
            wb(map_->write_back(w, sizeof *w));
    }) && wb.report();
}

bool Arena::note_removal(uint32_t b, uint64_t seq) noexcept {
    const bool ok = stage_removal(b, seq);
    fence(); // durable before the caller clears the removed entry's commit word
    return ok;
}

bool Arena::merge_removals(const uint64_t *table) noexcept {
    WriteBacks wb;
    return history_access([&] {
        for (uint32_t b = 0; b < kRemovalBuckets; ++b) {
            uint64_t *w = removal_word(b);
            uint64_t cur = __atomic_load_n(w, __ATOMIC_RELAXED);
            while (cur < table[b] &&
                   !__atomic_compare_exchange_n(w, &cur, table[b], true, __ATOMIC_RELEASE,
                                                __ATOMIC_RELAXED)) {
            }
        }
        for (uint64_t block = 0; block < 2; ++block)
            wb(map_->persist(map_->base() + block * kSuperblockBytes + kRemovalTableOffset,
                             kSuperblockBytes - kRemovalTableOffset));
    }) && wb.report();
}

void Arena::set_usable_slots(uint64_t n) {
    std::lock_guard<std::mutex> g(sb_m_);
    if (n == 0 || n > layout_.slot_count)
        fail(-EINVAL, "%llu usable slots asked for; the arena has 1..%llu",
             static_cast<unsigned long long>(n),
             static_cast<unsigned long long>(layout_.slot_count));
    const uint64_t old = usable_.load();
    const bool grow = n > old;
    if (grow)
        map_->extend(layout_.data_offset + n * layout_.slot_bytes);
    // A grow that fails after the file got its blocks gives them back: the
    // device keeps its old size, file and all.
    Undo take_back([&]() noexcept {
        if (grow)
            map_->take_back_extend();
    });
    if (grow) {
        // The new slots' headers were cleared at format or by a shrink's
        // withdrawals; clear them again so that nothing older than this
        // arena's use of them can be recovered from them.
        clear_commit_words(old, n);
    }
    rewrite(&Superblock::usable_slots, n);
    take_back.dismiss();
    usable_.store(n, std::memory_order_release);
}

void Arena::write_superblock(OnFailure on_failure) {
    const uint64_t generation = sb_.sb_generation, checksum = sb_.checksum;
    sb_.sb_generation++;
    sb_.checksum = superblock_checksum(sb_);
    // Copy A, durable, then copy B: one copy is always whole.
    char *a = map_->base();
    char *b = map_->base() + kSuperblockBytes;
    const bool restore = on_failure == OnFailure::restore;
    WriteBacks wb;
    const bool faulted = !history_access([&] {
        // Each copy as it was, for restore: a copy being repaired (damaged)
        // gets its own bytes back, never the other copy's.
        Superblock old_a, old_b;
        std::memcpy(&old_a, a, sizeof old_a);
        std::memcpy(&old_b, b, sizeof old_b);
        std::memcpy(a, &sb_, sizeof sb_);
        if (!wb(map_->persist(a, sizeof sb_))) {
            if (restore) {
                std::memcpy(a, &old_a, sizeof old_a);
                static_cast<void>(map_->persist(a, sizeof old_a));
            }
            return; // copy B keeps what it said: one copy stays whole
        }
        std::memcpy(b, &sb_, sizeof sb_);
        if (!wb(map_->persist(b, sizeof sb_)) && restore) {
            std::memcpy(b, &old_b, sizeof old_b);
            std::memcpy(a, &old_a, sizeof old_a);
            static_cast<void>(map_->persist(b, sizeof old_b));
            static_cast<void>(map_->persist(a, sizeof old_a));
        }
    });
    if (faulted || !wb.ok()) {
        if (restore) {
            sb_.sb_generation = generation;
            sb_.checksum = checksum;
        }
        if (faulted)
            throw BlocksFaulted(daxkv::format("%s: writing its superblock faulted (SIGBUS: bad "
                                              "media, or a file cut short)",
                                              map_->info().path.c_str()));
        fail_if_not_written_back(wb.err, "writing its superblock");
    }
}

void Arena::fail_if_not_written_back(int err, const char *what) const {
    if (err)
        fail_errno(err, map_->info().path + ": " + what +
                            ": writing the pages back to the file failed (msync)");
}

template <typename T>
void Arena::rewrite(T Superblock::*field, T v, OnFailure on_failure) {
    const T old = sb_.*field;
    sb_.*field = v;
    Undo undo([&]() noexcept { sb_.*field = old; });
    if (on_failure == OnFailure::keep)
        undo.dismiss();
    write_superblock(on_failure);
    undo.dismiss();
}

void Arena::clear_commit_words(uint64_t from, uint64_t to) {
    WriteBacks wb;
    guarded_or_fail("clearing its slot headers", [&] {
        for (uint64_t s = from; s < to; ++s) {
            SlotHeader *h = header(static_cast<uint32_t>(s));
            if (h->commit)
                __atomic_store_n(&h->commit, uint64_t(0), __ATOMIC_RELAXED);
        }
        if (to > from)
            wb(map_->persist(header(static_cast<uint32_t>(from)),
                             (to - from) * layout_.header_bytes));
    });
    fail_if_not_written_back(wb.err, "clearing its slot headers");
}

template <typename Fn>
bool Arena::guarded(Fn &&fn) const noexcept {
    if (!opt_.fault_guard) {
        fn();
        return true;
    }
    // The whole mapping: a slot's header and its value lie far apart, and
    // a fault anywhere in it is the arena's.
    return opt_.fault_guard(
               map_->base(), map_->size(), [](void *f) { (*static_cast<Fn *>(f))(); }, &fn) == 0;
}

template <typename Fn>
bool Arena::history_access(Fn &&fn) const noexcept {
    return guarded(std::forward<Fn>(fn));
}

template <typename Fn>
void Arena::guarded_or_fail(const char *what, Fn &&fn) {
    if (!guarded(std::forward<Fn>(fn)))
        fail(-EIO, "%s: %s faulted (SIGBUS: bad media, or a file cut short)",
             map_->info().path.c_str(), what);
}

bool Arena::write_body(uint32_t slot, uint64_t seq, uint32_t generation, const void *key,
                       uint16_t key_len, const void *meta, uint32_t meta_len, uint64_t value_len,
                       uint64_t value_hash, bool hashed) noexcept {
    // The fields are laid out and summed here, then stored: the header's
    // lines are cold, and a sum read back from them would wait for every
    // line to arrive before the next write could begin.
    SlotHeader fields{};
    fields.seq = seq;
    fields.value_len = value_len;
    fields.value_hash = hashed ? value_hash : 0;
    fields.generation = generation;
    fields.key_len = key_len;
    fields.flags = hashed ? kHdrValueHashed : 0;
    fields.meta_len = meta_len;
    const char *body = reinterpret_cast<const char *>(&fields) + offsetof(SlotHeader, seq);
    const uint64_t sum = body_checksum(body, key, key_len, meta, meta_len);
    SlotHeader *h = header(slot);
    return guarded([&] {
        std::memcpy(reinterpret_cast<char *>(h) + offsetof(SlotHeader, seq), body,
                    kBodyFieldBytes);
        char *k = reinterpret_cast<char *>(h + 1);
        std::memcpy(k, key, key_len);
        if (meta_len)
            std::memcpy(k + kKeyMax, meta, meta_len);
        h->body_hash = sum;
    });
}

bool Arena::stage_entry(uint32_t slot, uint64_t value_len) const noexcept {
    if (opt_.durability != Durability::power)
        return true;
    const SlotHeader *h = header(slot);
    WriteBacks wb;
    return guarded([&] {
        wb(map_->write_back(slot_data(slot), value_len));
        wb(map_->write_back(h, sizeof(SlotHeader) + kKeyMax + h->meta_len));
    }) && wb.report();
}

bool Arena::stage_commit(uint32_t slot, uint64_t seq) noexcept {
    if (opt_.durability == Durability::none)
        return true;
    SlotHeader *h = header(slot);
    WriteBacks wb;
    return guarded([&] {
        __atomic_store_n(&h->commit, seq, __ATOMIC_RELEASE);
        // A commit word whose write-back failed is taken back: the write
        // fails, and must not be found committed by a later open (the
        // clearing reaches the file when the pages are written at all).
        if (opt_.durability == Durability::power &&
            !wb(map_->write_back(&h->commit, sizeof h->commit)))
            __atomic_store_n(&h->commit, uint64_t(0), __ATOMIC_RELEASE);
    }) && wb.report();
}

void Arena::fence() const noexcept {
    if (opt_.durability == Durability::power)
        map_->drain();
}

bool Arena::publish(uint32_t slot, uint64_t seq, uint64_t value_len) noexcept {
    // The commit word is stored last, after the fence that makes value and
    // body durable: a reader after a crash sees either the whole entry or
    // none of it.
    return persist_entry(slot, value_len) && commit(slot, seq);
}

bool Arena::persist_entry(uint32_t slot, uint64_t value_len) const noexcept {
    const bool ok = stage_entry(slot, value_len);
    fence();
    return ok;
}

bool Arena::commit(uint32_t slot, uint64_t seq) noexcept {
    const bool ok = stage_commit(slot, seq);
    fence();
    return ok;
}

bool Arena::clear_commit(uint32_t slot, uint64_t *was, int *write_back_err) noexcept {
    SlotHeader *h = header(slot);
    WriteBacks wb;
    const bool read = guarded([&] {
        *was = __atomic_load_n(&h->commit, __ATOMIC_RELAXED);
        if (*was == 0)
            return;
        __atomic_store_n(&h->commit, uint64_t(0), __ATOMIC_RELEASE);
        if (opt_.durability == Durability::power)
            wb(map_->persist(&h->commit, sizeof h->commit));
    });
    *write_back_err = wb.err;
    return read;
}

bool Arena::withdraw(uint32_t slot) noexcept {
    uint64_t was = 0;
    int err = 0;
    if (!clear_commit(slot, &was, &err))
        return false;
    if (err)
        errno = err;
    return err == 0;
}

Arena::Withdrawal Arena::withdraw_or_keep(uint32_t slot) noexcept {
    uint64_t was = 0;
    int err = 0;
    if (!clear_commit(slot, &was, &err))
        return Withdrawal::faulted;
    if (err == 0)
        return Withdrawal::done;
    // A power loss now finds the word set or cleared: set, the entry is
    // whole, as the caller is told; cleared, it is gone, as a removal that
    // failed may leave it. Its write-back is tried again, and may fail
    // again, as the one before.
    SlotHeader *h = header(slot);
    static_cast<void>(guarded([&] {
        __atomic_store_n(&h->commit, was, __ATOMIC_RELEASE);
        static_cast<void>(map_->persist(&h->commit, sizeof h->commit));
    }));
    errno = err;
    return Withdrawal::not_written_back;
}

bool Arena::check_header(uint32_t slot, const void *meta, uint32_t meta_len,
                         HeaderCheck *out) const noexcept {
    const SlotHeader *h = header(slot);
    return guarded([&] {
        // The fixed fields are read once: those reported are those checked.
        SlotHeader fixed;
        std::memcpy(&fixed, h, sizeof fixed);
        out->hashed = (fixed.flags & kHdrValueHashed) != 0;
        out->value_hash = fixed.value_hash;
        out->value_len = fixed.value_len;
        out->meta_len = fixed.meta_len;
        // Bounds before the checksum, which reads key_len and meta_len bytes.
        out->intact = fixed.key_len >= 1 && fixed.key_len <= kKeyMax &&
                      fixed.meta_len <= layout_.meta_bytes &&
                      (!meta || fixed.meta_len == meta_len) &&
                      body_checksum(reinterpret_cast<const char *>(&fixed) +
                                        offsetof(SlotHeader, seq),
                                    header_key(slot), fixed.key_len,
                                    meta ? meta : header_meta(slot), fixed.meta_len) ==
                          fixed.body_hash;
    });
}

bool Arena::read_meta(uint32_t slot, void *dst, uint32_t len) const noexcept {
    if (len == 0)
        return true; // nothing of the header to read
    const char *meta = header_meta(slot);
    return guarded([&] { std::memcpy(dst, meta, len); });
}

SlotVerdict Arena::judge(uint32_t slot, bool check_value, RecoveredEntry &out) const noexcept {
    const SlotHeader *h = header(slot);
    const SlotVerdict v = judge_slot(h, layout_, slot_data(slot), check_value, seq_limit_,
                                     opt_.fault_guard, map_->base(), map_->size());
    // An entry's header was just read whole: its fields are there to copy.
    if (v == SlotVerdict::ok)
        out = RecoveredEntry{slot,         h->generation, h->seq,
                             h->value_len, h->meta_len,   h->key_len,
                             reinterpret_cast<const char *>(h + 1)};
    return v;
}

std::vector<RecoveredEntry> Arena::scan(RecoveryCounts &counts,
                                        std::vector<uint32_t> *unreadable) {
    auto t0 = std::chrono::steady_clock::now();
    std::vector<RecoveredEntry> out;
    if (!recoverable_) {
        counts.usec = 0;
        return out;
    }
    const uint64_t n = usable_.load();
    const bool check_values = opt_.verify != Verify::off;
    // The parts are joined in slot order (the caller's rule for duplicates
    // of one seq keeps the lower slot).
    const SlotParts cut(n, check_values ? layout_.slot_bytes : 0);
    struct Part {
        std::vector<RecoveredEntry> entries;
        std::vector<uint32_t> unreadable;
        RecoveryCounts counts;
    };
    std::vector<Part> parts(static_cast<size_t>(cut.count()));
    counts.threads = cut.run(opt_.threads, [&](uint64_t i, uint64_t begin, uint64_t end) {
        Part &p = parts[static_cast<size_t>(i)];
        for (uint64_t s = begin; s < end; ++s) {
            auto slot = static_cast<uint32_t>(s);
            RecoveredEntry e{};
            const SlotVerdict v = judge(slot, check_values, e);
            if (v == SlotVerdict::empty)
                continue;
            if (v == SlotVerdict::unreadable) {
                p.counts.corrupt++;
                p.unreadable.push_back(slot);
                continue;
            }
            if (v != SlotVerdict::ok) {
                (v == SlotVerdict::torn ? p.counts.torn : p.counts.corrupt)++;
                // Its header was just read whole; one that faults now is
                // unreadable like any other.
                if (!withdraw(slot))
                    p.unreadable.push_back(slot);
                continue;
            }
            p.entries.push_back(e);
        }
    });
    size_t total = 0;
    for (auto &p : parts)
        total += p.entries.size();
    out.reserve(total);
    for (auto &p : parts) {
        out.insert(out.end(), p.entries.begin(), p.entries.end());
        if (unreadable)
            unreadable->insert(unreadable->end(), p.unreadable.begin(), p.unreadable.end());
        counts.torn += p.counts.torn;
        counts.corrupt += p.counts.corrupt;
    }
    counts.usec = static_cast<uint64_t>(std::chrono::duration_cast<std::chrono::microseconds>(
                                            std::chrono::steady_clock::now() - t0)
                                            .count());
    return out;
}

} // namespace arena
} // namespace daxkv
