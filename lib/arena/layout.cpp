// The parser of on-device metadata (superblocks, slot headers) and the
// layout arithmetic: pure functions of bytes and sizes, shared by the
// arena, the recovery scan, daxkv check and the fuzz target.
#include <chrono>
#include <cstring>

#define XXH_INLINE_ALL
#include <xxhash.h>

#include "arena/arena.hpp"
#include "arena/checksum.hpp"
#include "internal/util.hpp"

namespace daxkv {
namespace arena {

uint64_t superblock_checksum(const Superblock &sb) noexcept {
    return XXH3_64bits(&sb, offsetof(Superblock, checksum));
}

uint64_t body_checksum(const void *fields, const void *key, uint64_t key_len, const void *meta,
                       uint64_t meta_len) noexcept {
    // Usually short: one-shot hashing of a gathered copy is several times
    // faster than the streaming state (the reopen scan checks a million).
    const uint64_t n = kBodyFieldBytes + key_len + meta_len;
    if (n <= 1024) {
        char buf[1024];
        std::memcpy(buf, fields, kBodyFieldBytes);
        std::memcpy(buf + kBodyFieldBytes, key, key_len);
        if (meta_len)
            std::memcpy(buf + kBodyFieldBytes + key_len, meta, meta_len);
        return XXH3_64bits(buf, n);
    }
    XXH3_state_t st;
    XXH3_64bits_reset(&st);
    XXH3_64bits_update(&st, fields, kBodyFieldBytes);
    XXH3_64bits_update(&st, key, key_len);
    XXH3_64bits_update(&st, meta, meta_len);
    return XXH3_64bits_digest(&st);
}

uint64_t header_checksum(const SlotHeader *h, uint64_t key_len, uint64_t meta_len) noexcept {
    const char *fields = reinterpret_cast<const char *>(h) + offsetof(SlotHeader, seq);
    const char *body = reinterpret_cast<const char *>(h + 1);
    return body_checksum(fields, body, key_len, body + kKeyMax, meta_len);
}

bool superblock_valid(const Superblock &sb, uint64_t backed_bytes) noexcept {
    if (std::memcmp(sb.magic, kMagic, sizeof kMagic) != 0)
        return false;
    if (sb.format_version != kFormatVersion || sb.sb_bytes != sizeof(Superblock) ||
        sb.checksum_kind != kChecksumXXH3 || sb.checksum != superblock_checksum(sb))
        return false;
    if (sb.key_max != kKeyMax || sb.header_offset != kHeaderOffset || sb.slot_count == 0 ||
        sb.slot_count > UINT32_MAX || sb.slot_bytes == 0 ||
        sb.header_bytes != header_bytes_for(sb.meta_bytes) || sb.usable_slots > sb.slot_count ||
        sb.seq_floor >= kSeqMax)
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
    // The layout is the one its size gives (every arena is laid out by
    // compute_layout, or layout_for_slots, which agrees with it): a copy
    // whose arena_bytes says otherwise, however its checksum came to hold,
    // would be taken for another layout by every open, whatever it asked.
    const Layout l = compute_layout(sb.arena_bytes, sb.slot_bytes, sb.meta_bytes);
    if (l.slot_count != sb.slot_count || l.data_offset != sb.data_offset)
        return false;
    // No overflow left: usable <= slot_count.
    return usable_end_of(sb) <= backed_bytes;
}

bool superblock_intact(const Superblock &sb) noexcept {
    return std::memcmp(sb.magic, kMagic, sizeof kMagic) == 0 &&
           sb.sb_bytes == sizeof(Superblock) && sb.checksum_kind == kChecksumXXH3 &&
           sb.checksum == superblock_checksum(sb);
}

uint64_t usable_slots_of(const Superblock &sb) noexcept {
    return sb.usable_slots ? sb.usable_slots : sb.slot_count;
}

uint64_t usable_end_of(const Superblock &sb) noexcept {
    return sb.data_offset + usable_slots_of(sb) * sb.slot_bytes;
}

bool superblock_cut_short(const Superblock &sb, uint64_t bytes) noexcept {
    return superblock_valid(sb, UINT64_MAX) && usable_end_of(sb) > bytes;
}

void fail_cut_short(const std::string &path, uint64_t end, uint64_t have) {
    fail(kErrCorrupt,
         "%s holds a daxkv arena whose slots in use end at %llu bytes, but the device has only "
         "%llu (a truncated file?). It is left untouched",
         path.c_str(), static_cast<unsigned long long>(end), static_cast<unsigned long long>(have));
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
    case SlotVerdict::unreadable: return "unreadable";
    }
    return "?";
}

uint64_t seq_limit() noexcept {
    const auto now = std::chrono::duration_cast<std::chrono::nanoseconds>(
                         std::chrono::system_clock::now().time_since_epoch())
                         .count();
    const uint64_t wall = now > 0 ? static_cast<uint64_t>(now) : 0;
    return wall < kSeqMax - kSeqAhead ? wall + kSeqAhead : kSeqMax;
}

SlotVerdict classify_slot(const SlotHeader *h, uint64_t commit, const Layout &l,
                          const char *data, bool check_value, uint64_t limit) noexcept {
    if (commit == 0)
        return SlotVerdict::empty;
    if (commit != h->seq)
        return SlotVerdict::torn;
    if (h->seq >= kSeqMax || h->seq >= limit)
        return SlotVerdict::bad_header; // a number no commit is given (format.hpp)
    // Bounds before the checksum: it reads key_len and meta_len bytes.
    if (h->key_len < 1 || h->key_len > kKeyMax || h->meta_len > l.meta_bytes ||
        h->value_len > l.slot_bytes)
        return SlotVerdict::bad_header;
    if (header_checksum(h, h->key_len, h->meta_len) != h->body_hash)
        return SlotVerdict::bad_header;
    if (!check_value || !(h->flags & kHdrValueHashed))
        return SlotVerdict::ok;
    return value_checksum(data, h->value_len) == h->value_hash ? SlotVerdict::ok
                                                                : SlotVerdict::bad_value;
}

SlotVerdict judge_slot(const SlotHeader *h, const Layout &l, const char *data, bool check_value,
                       uint64_t limit, FaultGuard guard, const void *lo, size_t n) noexcept {
    struct Judging {
        const SlotHeader *h;
        const Layout *l;
        const char *data;
        bool check_value;
        uint64_t limit;
        SlotVerdict verdict;
    } j{h, &l, data, check_value, limit, SlotVerdict::unreadable};
    auto read = [](void *arg) noexcept {
        auto &in = *static_cast<Judging *>(arg);
        in.verdict = classify_slot(in.h, __atomic_load_n(&in.h->commit, __ATOMIC_ACQUIRE), *in.l,
                                   in.data, in.check_value, in.limit);
    };
    if (!guard)
        read(&j);
    else if (guard(lo, n, read, &j) != 0)
        return SlotVerdict::unreadable;
    return j.verdict;
}

void load_lines(const char *p, uint64_t n) noexcept {
    for (uint64_t i = 0; i < n; i += 64)
        static_cast<void>(*static_cast<const volatile char *>(p + i));
}

bool all_zero(const char *p, size_t n) noexcept {
    for (size_t i = 0; i < n; ++i)
        if (p[i])
            return false;
    return true;
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

} // namespace arena
} // namespace daxkv
