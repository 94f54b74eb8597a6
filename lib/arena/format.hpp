// The on-device format of an arena (format version 1). Every multi-byte
// field is little-endian (x86-64 native). docs/on-device-format.md describes
// it byte by byte; keep the two in step.
//
//   offset 0          superblock copy A (4 KiB)
//   offset 4096       superblock copy B (4 KiB)
//   header_offset     slot_count slot headers of header_bytes each
//   data_offset       slot_count payloads of slot_bytes each
//
// The first usable_slots slots are in use; the ones above are room to grow
// into (an arena laid out for grow_limit) or were given up by a shrink. Only
// the usable slots' payloads need to exist: a file arena's file ends at the
// last usable payload.
//
// Nothing read from a device is trusted before it is validated: magic,
// version, checksum, bounds.
#pragma once

#include <cstddef>
#include <cstdint>

namespace daxkv {
namespace arena {

constexpr char kMagic[8] = {'D', 'A', 'X', 'K', 'V', 'A', 'R', 'N'};
constexpr uint32_t kFormatVersion = 1;
constexpr uint64_t kSuperblockBytes = 4096;
constexpr uint64_t kHeaderOffset = 2 * kSuperblockBytes;
constexpr uint32_t kKeyMax = 512;
constexpr uint32_t kChecksumXXH3 = 1;
// Values are hashed in blocks so that copies can be split across workers
// and hashed where they run: value_hash = XXH3-64 over the XXH3-64 of each
// 1 MiB block, in order.
constexpr uint64_t kHashBlock = 1 << 20;

// Superblock flags.
constexpr uint32_t kSbRecoverable = 1u << 0; // slot headers describe live entries

struct Superblock {
    char magic[8];
    uint32_t format_version;
    uint32_t sb_bytes;        // sizeof(Superblock)
    uint8_t uuid[16];
    uint64_t arena_bytes;     // bytes of the device this arena uses
    uint64_t slot_bytes;
    uint64_t slot_count;
    uint64_t header_offset;
    uint64_t header_bytes;    // per slot: SlotHeader + key_max + meta_bytes, 64-byte multiple
    uint64_t data_offset;
    uint32_t key_max;
    uint32_t meta_bytes;
    uint32_t flags;
    uint32_t checksum_kind;   // kChecksumXXH3
    uint64_t sb_generation;   // bumped on every rewrite; the newest valid copy wins
    uint64_t created_unix_ns;
    uint64_t usable_slots;    // slots in use, 1..slot_count (0 in older images: all)
    // Pool history: every sequence number the pool issued while this arena
    // was one of its devices is below this (0 in older images).
    uint64_t seq_floor;
    // The open of the pool this arena last took part in (its first sequence
    // number; 0: not recorded), and whether that open's store was closed
    // cleanly while it was a device (1) or not (0).
    uint64_t last_open;
    uint64_t closed_cleanly;
    uint64_t reserved[13];    // zero; room for later fields
    uint64_t checksum;        // XXH3-64 of every byte before this field
};
static_assert(sizeof(Superblock) == 256, "superblock layout");

// Sequence numbers (slot headers' seq and commit, seq_floor, the removal
// table's words) stay below kSeqMax: they start near the wall clock in
// nanoseconds (about 2^60.6 in 2026) and grow by one per commit or removal,
// so a value at or above it (2^63, the year 2262 in nanoseconds) is damage.
// Taken as a number it would carry the pool's numbers past 2^64, where
// they wrap, and every later commit would lose to it at the next open.
constexpr uint64_t kSeqMax = uint64_t(1) << 63;

// A number read from a device is also damage when it is more than
// kSeqAhead (2^61 ns, about 73 years) ahead of the wall clock of the
// reader (seq_limit). A pool goes on above every number it reads and
// records its own limit (seq_floor) 2^20 above that: a number that passed
// a fixed bound just below it would make the pool write one at or above
// kSeqMax (an invalid superblock, commits dropped at the next open), and
// every open after would go on from it again. A bound that moves with the
// clock leaves the pool room, and what it writes passes the next open's.
constexpr uint64_t kSeqAhead = uint64_t(1) << 61;

// The removal table (pool history): kRemovalBuckets 64-bit words, the
// largest sequence number at which a key of each bucket was removed,
// evicted or dropped (0: none). It fills the rest of the two superblock
// blocks, after the superblock: buckets [0, kRemovalBucketsPerBlock) in
// block A, the others in block B. Updated in place (a word only grows), so
// it is outside the superblock checksum; formatting zeroes it.
constexpr uint64_t kRemovalTableOffset = 256; // in each superblock block
constexpr uint32_t kRemovalBucketsPerBlock =
    static_cast<uint32_t>((kSuperblockBytes - kRemovalTableOffset) / 8);
constexpr uint32_t kRemovalBuckets = 2 * kRemovalBucketsPerBlock;
// The bucket of a key, from its 64-bit hash (the store's XXH3 of the key).
constexpr uint32_t removal_bucket(uint64_t key_hash) {
    return static_cast<uint32_t>((key_hash >> 32) % kRemovalBuckets);
}

// Whether a removal-table word (the newest removal recorded in a key's
// bucket) says that an entry of that key committed at seq was removed while
// its device was away from the pool: a removal after it, at or above the
// floor the device's last open left (below it, every device knew of it).
// An open withdraws such an entry (History::removed_while_away), and
// daxkv check counts it stale as the open does.
constexpr bool removed_after(uint64_t removal, uint64_t seq, uint64_t floor) {
    return removal != 0 && removal > seq && removal >= floor;
}

// Slot header flags.
constexpr uint16_t kHdrValueHashed = 1u << 0; // value_hash is set

// The fixed part of a slot header; key_max key bytes and meta_bytes
// metadata bytes follow it.
struct SlotHeader {
    uint64_t commit;      // 0: slot holds nothing; else equal to seq, stored last
    uint64_t seq;         // store-wide, increasing; the newest commit of a key wins
    uint64_t value_len;
    uint64_t value_hash;  // see kHashBlock; valid with kHdrValueHashed
    uint32_t generation;  // slot reuse counter
    uint16_t key_len;
    uint16_t flags;
    uint32_t meta_len;
    uint32_t reserved0;
    uint64_t reserved1;
    uint64_t body_hash;   // XXH3-64 of bytes [8, 56) of this header + key + metadata
};
static_assert(sizeof(SlotHeader) == 64, "slot header layout");
static_assert(offsetof(SlotHeader, body_hash) == 56, "slot header layout");

constexpr uint64_t header_bytes_for(uint32_t meta_bytes) {
    return (sizeof(SlotHeader) + kKeyMax + meta_bytes + 63) / 64 * 64;
}

} // namespace arena
} // namespace daxkv
