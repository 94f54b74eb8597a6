#include "arena/arena.hpp"

#include <algorithm>
#include <cerrno>
#include <chrono>
#include <cstring>
#include <thread>

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>
#include <uuid/uuid.h>

#define XXH_INLINE_ALL
#include <xxhash.h>

#include "arena/checksum.hpp"
#include "internal/error.hpp"
#include "internal/util.hpp"

namespace daxkv {
namespace arena {
namespace {

uint64_t sb_checksum(const Superblock &sb) {
    return XXH3_64bits(&sb, offsetof(Superblock, checksum));
}

bool all_zero(const char *p, size_t n) {
    for (size_t i = 0; i < n; ++i)
        if (p[i])
            return false;
    return true;
}

bool has_magic(const char *p) { return std::memcmp(p, kMagic, sizeof kMagic) == 0; }

} // namespace

uint64_t header_checksum(const SlotHeader *h, uint64_t key_len, uint64_t meta_len) noexcept {
    // Usually short: one-shot hashing of a gathered copy is several times
    // faster than the streaming state (the reopen scan checks a million).
    const uint64_t n = 48 + key_len + meta_len;
    if (n <= 1024) {
        char buf[1024];
        std::memcpy(buf, reinterpret_cast<const char *>(h) + 8, 48);
        std::memcpy(buf + 48, h + 1, key_len);
        std::memcpy(buf + 48 + key_len, reinterpret_cast<const char *>(h + 1) + kKeyMax, meta_len);
        return XXH3_64bits(buf, n);
    }
    XXH3_state_t st;
    XXH3_64bits_reset(&st);
    XXH3_64bits_update(&st, reinterpret_cast<const char *>(h) + 8, 48);
    XXH3_64bits_update(&st, h + 1, key_len);
    XXH3_64bits_update(&st, reinterpret_cast<const char *>(h + 1) + kKeyMax, meta_len);
    return XXH3_64bits_digest(&st);
}

bool superblock_valid(const Superblock &sb, uint64_t backed_bytes) noexcept {
    if (std::memcmp(sb.magic, kMagic, sizeof kMagic) != 0)
        return false;
    if (sb.format_version != kFormatVersion || sb.sb_bytes != sizeof(Superblock) ||
        sb.checksum_kind != kChecksumXXH3 || sb.checksum != sb_checksum(sb))
        return false;
    if (sb.key_max != kKeyMax || sb.header_offset != kHeaderOffset || sb.slot_count == 0 ||
        sb.slot_count > UINT32_MAX || sb.slot_bytes == 0 ||
        sb.header_bytes != header_bytes_for(sb.meta_bytes) || sb.usable_slots > sb.slot_count)
        return false;
    // Bounds, with overflow checks: headers then data inside the arena, and
    // the usable slots' payloads inside what the device has.
    uint64_t hdr_end;
    if (__builtin_mul_overflow(sb.slot_count, sb.header_bytes, &hdr_end) ||
        __builtin_add_overflow(hdr_end, sb.header_offset, &hdr_end) || sb.data_offset < hdr_end)
        return false;
    uint64_t data_end;
    if (__builtin_mul_overflow(sb.slot_count, sb.slot_bytes, &data_end) ||
        __builtin_add_overflow(data_end, sb.data_offset, &data_end) || data_end > sb.arena_bytes)
        return false;
    // No overflow left: usable <= slot_count.
    return sb.data_offset + usable_slots_of(sb) * sb.slot_bytes <= backed_bytes;
}

bool superblock_intact(const Superblock &sb) noexcept {
    return std::memcmp(sb.magic, kMagic, sizeof kMagic) == 0 &&
           sb.sb_bytes == sizeof(Superblock) && sb.checksum_kind == kChecksumXXH3 &&
           sb.checksum == sb_checksum(sb);
}

uint64_t usable_slots_of(const Superblock &sb) noexcept {
    return sb.usable_slots ? sb.usable_slots : sb.slot_count;
}

Layout layout_of(const Superblock &sb) noexcept {
    Layout l;
    l.arena_bytes = sb.arena_bytes;
    l.slot_bytes = sb.slot_bytes;
    l.slot_count = sb.slot_count;
    l.header_offset = sb.header_offset;
    l.header_bytes = sb.header_bytes;
    l.data_offset = sb.data_offset;
    l.meta_bytes = sb.meta_bytes;
    return l;
}

const char *verdict_name(SlotVerdict v) noexcept {
    switch (v) {
    case SlotVerdict::empty: return "empty";
    case SlotVerdict::ok: return "ok";
    case SlotVerdict::torn: return "torn";
    case SlotVerdict::bad_header: return "bad-header";
    case SlotVerdict::bad_value: return "bad-value";
    }
    return "?";
}

SlotVerdict classify_slot(const SlotHeader *h, uint64_t commit, const Layout &l,
                          const char *data, bool check_value) noexcept {
    if (commit == 0)
        return SlotVerdict::empty;
    if (commit != h->seq)
        return SlotVerdict::torn;
    // Bounds before the checksum: it reads key_len and meta_len bytes.
    if (h->key_len < 1 || h->key_len > kKeyMax || h->meta_len > l.meta_bytes ||
        h->value_len > l.slot_bytes)
        return SlotVerdict::bad_header;
    if (header_checksum(h, h->key_len, h->meta_len) != h->body_hash)
        return SlotVerdict::bad_header;
    if (check_value && (h->flags & kHdrValueHashed) &&
        value_checksum(data, h->value_len) != h->value_hash)
        return SlotVerdict::bad_value;
    return SlotVerdict::ok;
}

namespace {

// Large arenas start the payloads on a 2 MiB boundary (huge pages, and DAX
// alignment); small ones on a page.
uint64_t data_alignment(uint64_t arena_bytes) { return arena_bytes >= 64 * MiB ? 2 * MiB : 4 * KiB; }

} // namespace

Layout layout_for_slots(uint64_t slots, uint64_t slot_bytes, uint32_t meta_bytes) {
    Layout l;
    l.slot_bytes = slot_bytes;
    l.meta_bytes = meta_bytes;
    l.header_offset = kHeaderOffset;
    l.header_bytes = header_bytes_for(meta_bytes);
    if (slots == 0 || slots > UINT32_MAX || slot_bytes == 0)
        return l;
    uint64_t headers, payloads, end;
    if (__builtin_mul_overflow(slots, l.header_bytes, &headers) ||
        __builtin_add_overflow(headers, kHeaderOffset + 2 * MiB, &end) ||
        __builtin_mul_overflow(slots, slot_bytes, &payloads) ||
        __builtin_add_overflow(end, payloads, &end))
        return l; // the sum with the widest alignment padding overflows
    // The alignment depends on the total; the 2 MiB one only makes it larger.
    for (uint64_t align : {4 * KiB, 2 * MiB}) {
        l.data_offset = round_up(kHeaderOffset + headers, align);
        l.arena_bytes = l.data_offset + payloads;
        if (data_alignment(l.arena_bytes) == align)
            break;
    }
    l.slot_count = slots;
    return l;
}

Layout compute_layout(uint64_t arena_bytes, uint64_t slot_bytes, uint32_t meta_bytes) {
    Layout l;
    l.arena_bytes = arena_bytes;
    l.slot_bytes = slot_bytes;
    l.meta_bytes = meta_bytes;
    l.header_offset = kHeaderOffset;
    l.header_bytes = header_bytes_for(meta_bytes);
    uint64_t align = data_alignment(arena_bytes);
    // Every sum and product below is checked: slot_bytes comes from the
    // caller and may be anything up to 2^64 - 1 (a slot plus its header
    // that wraps to 0 would be a division by zero, a wrapped end a layout
    // past the device).
    uint64_t per_slot;
    if (slot_bytes == 0 || arena_bytes <= kHeaderOffset ||
        __builtin_add_overflow(l.header_bytes, slot_bytes, &per_slot))
        return l;
    uint64_t n = (arena_bytes - kHeaderOffset) / per_slot;
    n = std::min<uint64_t>(n, UINT32_MAX);
    // The payloads' offset for n slots, or false when it does not fit.
    auto data_offset_for = [&](uint64_t slots, uint64_t *off) {
        uint64_t hdr, end;
        if (__builtin_mul_overflow(slots, l.header_bytes, &hdr) ||
            __builtin_add_overflow(hdr, kHeaderOffset, &hdr) ||
            __builtin_add_overflow(hdr, align - 1, &end))
            return false;
        *off = end / align * align;
        return true;
    };
    auto fits = [&](uint64_t slots) {
        uint64_t off, data, end;
        return data_offset_for(slots, &off) &&
               !__builtin_mul_overflow(slots, slot_bytes, &data) &&
               !__builtin_add_overflow(off, data, &end) && end <= arena_bytes;
    };
    while (n > 0 && !fits(n))
        --n;
    l.slot_count = n;
    if (n == 0 || !data_offset_for(n, &l.data_offset))
        l.data_offset = 0;
    return l;
}

SuperblockReport Arena::inspect(const platform::Mapping &map) {
    SuperblockReport r;
    if (map.backed() < kHeaderOffset)
        return r;
    Superblock a, b;
    std::memcpy(&a, map.base(), sizeof a);
    std::memcpy(&b, map.base() + kSuperblockBytes, sizeof b);
    r.valid_a = superblock_valid(a, map.backed());
    r.valid_b = superblock_valid(b, map.backed());
    r.zeroed = all_zero(map.base(), kHeaderOffset);
    if (r.valid_a && (!r.valid_b || a.sb_generation >= b.sb_generation))
        r.sb = a;
    else if (r.valid_b)
        r.sb = b;
    return r;
}

SuperblockReport Arena::inspect_file(const std::string &path) {
    SuperblockReport r;
    const int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC | O_NOFOLLOW);
    if (fd < 0)
        return r;
    struct stat st;
    char buf[kHeaderOffset];
    const bool ok = ::fstat(fd, &st) == 0 && S_ISREG(st.st_mode) &&
                    ::pread(fd, buf, sizeof buf, 0) == static_cast<ssize_t>(sizeof buf);
    ::close(fd);
    if (!ok)
        return r;
    const uint64_t size = static_cast<uint64_t>(st.st_size);
    Superblock a, b;
    std::memcpy(&a, buf, sizeof a);
    std::memcpy(&b, buf + kSuperblockBytes, sizeof b);
    r.valid_a = superblock_valid(a, size);
    r.valid_b = superblock_valid(b, size);
    r.zeroed = all_zero(buf, sizeof buf);
    if (r.valid_a && (!r.valid_b || a.sb_generation >= b.sb_generation))
        r.sb = a;
    else if (r.valid_b)
        r.sb = b;
    return r;
}

Arena::Arena(std::unique_ptr<platform::Mapping> map, const Options &opt)
    : map_(std::move(map)), opt_(opt) {
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

    SuperblockReport rep = inspect(*map_);
    if (map_->created() || rep.zeroed || opt_.format) {
        // A new file, anonymous memory, or a zeroed device: ours to format
        // (and anything at all when the caller asks for a format).
        undo_format_ = rep.zeroed && !map_->created() && !opt_.format;
        format();
    } else if (!rep.valid_a && !rep.valid_b) {
        if (!opt_.reformat) {
            bool ours = has_magic(map_->base()) || has_magic(map_->base() + kSuperblockBytes);
            if (ours)
                explain_unusable_superblocks(false);
            if (ours)
                fail(DAXKV_E_CORRUPT,
                     "%s: both superblock copies of the daxkv arena are damaged "
                     "(use on_mismatch=reformat or 'daxkv format' to start over)",
                     path.c_str());
            fail(DAXKV_E_FOREIGN,
                 "%s holds data that is not a daxkv arena; it is left untouched "
                 "(use on_mismatch=reformat or 'daxkv format' to claim it)",
                 path.c_str());
        }
        format();
    } else {
        const Superblock &sb = rep.sb;
        bool same = sb.slot_bytes == layout_.slot_bytes && sb.meta_bytes == layout_.meta_bytes &&
                    sb.arena_bytes == layout_.arena_bytes &&
                    sb.slot_count == layout_.slot_count && sb.data_offset == layout_.data_offset;
        // An arena whose last user kept no index (durability=none) holds
        // nothing any open would recover: another layout simply replaces it.
        const bool holds_entries = (sb.flags & kSbRecoverable) != 0;
        if (!same && !opt_.reformat && holds_entries)
            fail(DAXKV_E_FOREIGN,
                 "%s holds a daxkv arena of another layout (slot_bytes %llu, meta_bytes %u, "
                 "%llu bytes; asked for slot_bytes %llu, meta_bytes %u, %llu bytes); it is left "
                 "untouched (use on_mismatch=reformat to replace it)",
                 path.c_str(), static_cast<unsigned long long>(sb.slot_bytes), sb.meta_bytes,
                 static_cast<unsigned long long>(sb.arena_bytes),
                 static_cast<unsigned long long>(layout_.slot_bytes), layout_.meta_bytes,
                 static_cast<unsigned long long>(layout_.arena_bytes));
        if (!same) {
            format();
        } else {
            sb_ = sb;
            usable_.store(usable_slots_of(sb));
            // Repair a damaged or older second copy.
            if (!rep.valid_a || !rep.valid_b)
                write_superblock();
        }
    }

    bool want_recovery = opt_.durability != Durability::none && !map_->volatile_memory();
    bool was_recoverable = (sb_.flags & kSbRecoverable) != 0;
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
}

// Neither copy is valid, but a copy whose checksum holds is not damaged: an
// arena of another format version, or one larger than what is mapped (a
// smaller size asked for, or a truncated file). Fails with what it is;
// with only_truncation, only for a truncated file (the configuration is at
// fault otherwise).
void Arena::explain_unusable_superblocks(bool only_truncation) const {
    const std::string &path = map_->info().path;
    for (uint64_t off : {uint64_t(0), kSuperblockBytes}) {
        if (off + sizeof(Superblock) > map_->backed())
            continue;
        Superblock sb;
        std::memcpy(&sb, map_->base() + off, sizeof sb);
        if (!superblock_intact(sb))
            continue;
        if (sb.format_version != kFormatVersion && !only_truncation)
            fail(DAXKV_E_FOREIGN,
                 "%s holds a daxkv arena of format version %u; this library reads version %u. "
                 "It is left untouched",
                 path.c_str(), sb.format_version, kFormatVersion);
        if (sb.format_version != kFormatVersion || !superblock_valid(sb, UINT64_MAX))
            continue;
        const uint64_t end = sb.data_offset + usable_slots_of(sb) * sb.slot_bytes;
        if (map_->device_bytes() >= end && only_truncation)
            return;
        if (map_->device_bytes() >= end)
            fail(DAXKV_E_FOREIGN,
                 "%s holds a daxkv arena of %llu bytes (%llu in use); %llu were asked for. It is "
                 "left untouched (open it with its size, or 0 for the whole file)",
                 path.c_str(), static_cast<unsigned long long>(sb.arena_bytes),
                 static_cast<unsigned long long>(end),
                 static_cast<unsigned long long>(map_->backed()));
        fail(DAXKV_E_CORRUPT,
             "%s holds a daxkv arena whose slots in use end at %llu bytes, but the device has "
             "only %llu (a truncated file?). It is left untouched",
             path.c_str(), static_cast<unsigned long long>(end),
             static_cast<unsigned long long>(map_->device_bytes()));
    }
}

void Arena::keep() noexcept {
    map_->keep();
    undo_format_ = false;
}

Arena::~Arena() {
    if (undo_format_) {
        std::memset(map_->base(), 0, kHeaderOffset);
        map_->persist(map_->base(), kHeaderOffset);
    }
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
    std::memset(map_->base(), 0, kHeaderOffset);
    map_->persist(map_->base(), kHeaderOffset);
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
    sb_.seq_floor = v;
    write_superblock();
}

uint64_t Arena::removal(uint32_t b) const noexcept {
    return __atomic_load_n(removal_word(b), __ATOMIC_ACQUIRE);
}

void Arena::note_removal(uint32_t b, uint64_t seq) noexcept {
    uint64_t *w = removal_word(b);
    uint64_t cur = __atomic_load_n(w, __ATOMIC_RELAXED);
    while (cur < seq &&
           !__atomic_compare_exchange_n(w, &cur, seq, true, __ATOMIC_RELEASE, __ATOMIC_RELAXED)) {
    }
    // Durable before the caller clears the removed entry's commit word.
    if (opt_.durability == Durability::power)
        map_->persist(w, sizeof *w);
}

void Arena::merge_removals(const uint64_t *table) {
    for (uint32_t b = 0; b < kRemovalBuckets; ++b) {
        uint64_t *w = removal_word(b);
        uint64_t cur = __atomic_load_n(w, __ATOMIC_RELAXED);
        while (cur < table[b] && !__atomic_compare_exchange_n(w, &cur, table[b], true,
                                                              __ATOMIC_RELEASE, __ATOMIC_RELAXED)) {
        }
    }
    for (uint64_t block = 0; block < 2; ++block)
        map_->persist(map_->base() + block * kSuperblockBytes + kRemovalTableOffset,
                      kSuperblockBytes - kRemovalTableOffset);
}

void Arena::set_usable_slots(uint64_t n) {
    std::lock_guard<std::mutex> g(sb_m_);
    if (n == 0 || n > layout_.slot_count)
        fail(-EINVAL, "%llu usable slots asked for; the arena has 1..%llu",
             static_cast<unsigned long long>(n),
             static_cast<unsigned long long>(layout_.slot_count));
    const uint64_t old = usable_.load();
    if (n > old) {
        map_->extend(layout_.data_offset + n * layout_.slot_bytes);
        // The new slots' headers were cleared at format or by a shrink's
        // withdrawals; clear them again so that nothing older than this
        // arena's use of them can be recovered from them.
        clear_commit_words(old, n);
    }
    sb_.usable_slots = n;
    write_superblock();
    usable_.store(n, std::memory_order_release);
}

void Arena::write_superblock() {
    sb_.sb_generation++;
    sb_.checksum = sb_checksum(sb_);
    // Copy A, durable, then copy B: one copy is always whole.
    char *a = map_->base();
    char *b = map_->base() + kSuperblockBytes;
    std::memcpy(a, &sb_, sizeof sb_);
    map_->persist(a, sizeof sb_);
    std::memcpy(b, &sb_, sizeof sb_);
    map_->persist(b, sizeof sb_);
}

void Arena::clear_commit_words(uint64_t from, uint64_t to) {
    for (uint64_t s = from; s < to; ++s) {
        SlotHeader *h = header(static_cast<uint32_t>(s));
        if (h->commit)
            __atomic_store_n(&h->commit, uint64_t(0), __ATOMIC_RELAXED);
    }
    if (to > from)
        map_->persist(header(static_cast<uint32_t>(from)), (to - from) * layout_.header_bytes);
}

void Arena::write_body(uint32_t slot, uint64_t seq, uint32_t generation, const void *key,
                       uint16_t key_len, const void *meta, uint32_t meta_len, uint64_t value_len,
                       uint64_t value_hash, bool hashed) noexcept {
    SlotHeader *h = header(slot);
    h->seq = seq;
    h->value_len = value_len;
    h->value_hash = hashed ? value_hash : 0;
    h->generation = generation;
    h->key_len = key_len;
    h->flags = hashed ? kHdrValueHashed : 0;
    h->meta_len = meta_len;
    h->reserved0 = 0;
    h->reserved1 = 0;
    char *k = reinterpret_cast<char *>(h + 1);
    std::memcpy(k, key, key_len);
    if (meta_len)
        std::memcpy(k + kKeyMax, meta, meta_len);
    h->body_hash = header_checksum(h, key_len, meta_len);
}

void Arena::publish(uint32_t slot, uint64_t seq, uint64_t value_len) noexcept {
    if (opt_.durability == Durability::none)
        return;
    SlotHeader *h = header(slot);
    if (opt_.durability == Durability::power) {
        map_->persist(slot_data(slot), value_len);
        map_->persist(h, sizeof(SlotHeader) + kKeyMax + h->meta_len);
    }
    // The commit word is stored last: a reader after a crash sees either the
    // whole entry or none of it.
    __atomic_store_n(&h->commit, seq, __ATOMIC_RELEASE);
    if (opt_.durability == Durability::power)
        map_->persist(&h->commit, sizeof h->commit);
}

void Arena::persist_entry(uint32_t slot, uint64_t value_len) const noexcept {
    if (opt_.durability != Durability::power)
        return;
    const SlotHeader *h = header(slot);
    map_->persist(slot_data(slot), value_len);
    map_->persist(h, sizeof(SlotHeader) + kKeyMax + h->meta_len);
}

void Arena::commit(uint32_t slot, uint64_t seq) noexcept {
    if (opt_.durability == Durability::none)
        return;
    SlotHeader *h = header(slot);
    __atomic_store_n(&h->commit, seq, __ATOMIC_RELEASE);
    if (opt_.durability == Durability::power)
        map_->persist(&h->commit, sizeof h->commit);
}

void Arena::withdraw(uint32_t slot) noexcept {
    SlotHeader *h = header(slot);
    if (__atomic_load_n(&h->commit, __ATOMIC_RELAXED) == 0)
        return;
    __atomic_store_n(&h->commit, uint64_t(0), __ATOMIC_RELEASE);
    if (opt_.durability == Durability::power)
        map_->persist(&h->commit, sizeof h->commit);
}

std::vector<RecoveredEntry> Arena::scan(RecoveryCounts &counts) {
    auto t0 = std::chrono::steady_clock::now();
    std::vector<RecoveredEntry> out;
    if (!recoverable_) {
        counts.usec = 0;
        return out;
    }
    const uint64_t n = usable_.load();
    unsigned threads = std::max(1u, std::min<unsigned>(opt_.threads, 16));
    if (n < 4096)
        threads = 1;
    struct Part {
        std::vector<RecoveredEntry> entries;
        RecoveryCounts counts;
    };
    std::vector<Part> parts(threads);
    auto work = [&](unsigned t) {
        Part &p = parts[t];
        uint64_t begin = n * t / threads, end = n * (t + 1) / threads;
        for (uint64_t s = begin; s < end; ++s) {
            auto slot = static_cast<uint32_t>(s);
            SlotHeader *h = header(slot);
            uint64_t commit = __atomic_load_n(&h->commit, __ATOMIC_ACQUIRE);
            SlotVerdict v = classify_slot(h, commit, layout_, slot_data(slot),
                                          opt_.verify != Verify::off);
            if (v == SlotVerdict::empty)
                continue;
            if (v != SlotVerdict::ok) {
                (v == SlotVerdict::torn ? p.counts.torn : p.counts.corrupt)++;
                withdraw(slot);
                continue;
            }
            p.entries.push_back(RecoveredEntry{slot, h->generation, h->seq, h->value_len,
                                               h->meta_len, h->key_len,
                                               reinterpret_cast<const char *>(h + 1)});
        }
    };
    if (threads == 1) {
        work(0);
    } else {
        std::vector<std::thread> pool;
        for (unsigned t = 1; t < threads; ++t)
            pool.emplace_back(work, t);
        work(0);
        for (auto &th : pool)
            th.join();
    }
    size_t total = 0;
    for (auto &p : parts)
        total += p.entries.size();
    out.reserve(total);
    for (auto &p : parts) {
        out.insert(out.end(), p.entries.begin(), p.entries.end());
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
