// The copy routines of platform/copy.hpp on every ISA this CPU supports:
// the bytes copied, nothing written outside the destination, and the fused
// hash equal to xxhash's XXH3_64bits(), for every length from 0 to past
// 4 KiB, odd lengths up to several MiB, and every alignment of source and
// destination within a cache line.
//
// Bad inputs tried here: zero lengths, lengths one either side of the
// stripe (64), block (1 KiB), stream threshold (4 KiB) and hash block
// (1 MiB) boundaries, unaligned and mutually misaligned buffers.
#include <random>

#include <xxhash.h>

#include "arena/checksum.hpp"
#include "helpers.hpp"
#include "platform/copy.hpp"

using namespace daxkv::platform;

namespace {

std::vector<CopyIsa> supported_isas() {
    std::vector<CopyIsa> out;
    for (CopyIsa isa : {CopyIsa::sse2, CopyIsa::avx2, CopyIsa::avx512})
        if (copy_isa_supported(isa))
            out.push_back(isa);
    return out;
}

struct IsaGuard {
    explicit IsaGuard(CopyIsa isa) { daxkv::platform::testing::force_copy_isa(isa); }
    ~IsaGuard() { daxkv::platform::testing::reset_copy_isa(); }
};

// Source and destination buffers for lengths up to max, 64-byte aligned
// bases, filled once; each check copies between offsets so/dof of them and
// looks at the guard bytes around the destination.
class Buffers {
public:
    explicit Buffers(size_t max) : src_(max + 192), dst_(max + 256) {
        std::mt19937_64 rng(max);
        for (auto &b : src_)
            b = static_cast<uint8_t>(rng());
    }
    void check(size_t len, size_t so, size_t dof, bool nt, bool hash) {
        uint8_t *s = align(src_.data()) + so;
        uint8_t *dbase = align(dst_.data());
        uint8_t *d = dbase + dof;
        ASSERT_LE(d + len + 32, dst_.data() + dst_.size());
        std::memset(dbase, 0xA5, dof + len + 32);
        if (hash) {
            const uint64_t want = XXH3_64bits(s, len);
            ASSERT_EQ(copy_and_hash(d, s, len, nt), want)
                << "len " << len << " src+" << so << " dst+" << dof << " nt " << nt;
            ASSERT_EQ(hash_bytes_xxh3(s, len), want) << "len " << len;
        } else {
            copy_bytes(d, s, len, nt);
        }
        ASSERT_EQ(std::memcmp(d, s, len), 0) << "len " << len << " src+" << so << " dst+" << dof;
        for (uint8_t *p = dbase; p < d; ++p)
            ASSERT_EQ(*p, 0xA5) << "wrote before the destination, len " << len;
        for (uint8_t *p = d + len; p < d + len + 32; ++p)
            ASSERT_EQ(*p, 0xA5) << "wrote past the destination, len " << len;
    }

private:
    static uint8_t *align(uint8_t *p) {
        return reinterpret_cast<uint8_t *>((reinterpret_cast<uintptr_t>(p) + 63) & ~uintptr_t(63));
    }
    std::vector<uint8_t> src_, dst_;
};

class CopyRoutines : public ::testing::TestWithParam<CopyIsa> {};

TEST_P(CopyRoutines, EveryLengthToPastTheStreamThresholdAndEveryAlignment) {
    IsaGuard g(GetParam());
    Buffers b(kStreamMin + 300);
    for (size_t len = 0; len <= kStreamMin + 300; ++len) {
        const size_t so = len % 64, dof = (len * 7) % 64;
        for (bool nt : {false, true}) {
            b.check(len, so, dof, nt, true);
            b.check(len, so, dof, nt, false);
        }
    }
}

// A hashed copy that streams to a destination off the line copies the
// destination's lines apart from the stripes it hashes: one line fewer than
// stripes when the bytes after the last stripe are fewer than the bytes
// before the destination's first line, as many otherwise.
TEST_P(CopyRoutines, HashedStreamsToEveryDestinationOffset) {
    IsaGuard g(GetParam());
    Buffers b(65536 + 256);
    for (size_t dof = 0; dof < 64; ++dof)
        for (size_t len : {kStreamMin, kStreamMin + 1, kStreamMin + dof, kStreamMin + dof + 1,
                           kStreamMin + 63, kStreamMin + 64, size_t(65536) + dof,
                           size_t(65536) + 64 - dof})
            for (size_t so : {size_t(0), size_t(5)})
                b.check(len, so, dof, true, true);
}

TEST_P(CopyRoutines, InterleavedHashedStreamsAtEveryShift) {
    IsaGuard isa(GetParam());
    // Eight lanes of different lengths and destination offsets, refilled as
    // they end: every shift from 0 to 63 with both line counts.
    constexpr size_t kSlot = 20000;
    std::vector<uint8_t> src(64 * kSlot), dst(64 * kSlot + 64, 0xA5);
    std::mt19937_64 rng(5);
    for (auto &v : src)
        v = static_cast<uint8_t>(rng());
    std::vector<CopyStream> streams;
    std::vector<uint64_t> hashes(64, 0);
    std::vector<size_t> lens;
    for (size_t i = 0; i < 64; ++i) {
        const size_t len = kStreamMin + (i * 977) % (kSlot - kStreamMin - 64);
        lens.push_back(len);
        streams.push_back(CopyStream{dst.data() + i * kSlot + i, src.data() + i * kSlot, len,
                                     &hashes[i], true});
    }
    copy_streams(streams.data(), streams.size());
    for (size_t i = 0; i < 64; ++i) {
        const uint8_t *d = dst.data() + i * kSlot + i, *s = src.data() + i * kSlot;
        ASSERT_EQ(std::memcmp(d, s, lens[i]), 0) << "stream " << i;
        EXPECT_EQ(hashes[i], XXH3_64bits(s, lens[i])) << "stream " << i;
        for (const uint8_t *p = dst.data() + i * kSlot; p < d; ++p)
            ASSERT_EQ(*p, 0xA5) << "wrote before stream " << i;
        for (const uint8_t *p = d + lens[i]; p < dst.data() + (i + 1) * kSlot + (i + 1); ++p)
            ASSERT_EQ(*p, 0xA5) << "wrote past stream " << i;
    }
}

TEST_P(CopyRoutines, BoundariesAndLargeOddLengths) {
    IsaGuard g(GetParam());
    std::mt19937_64 rng(7);
    std::vector<size_t> lens;
    for (size_t base : {size_t(64), size_t(1024), kStreamMin, size_t(16384), size_t(1) << 20,
                        size_t(3) << 20})
        for (size_t delta : {size_t(0), size_t(1), size_t(63), size_t(64), size_t(65)}) {
            lens.push_back(base + delta);
            if (base > delta)
                lens.push_back(base - delta);
        }
    for (int i = 0; i < 8; ++i)
        lens.push_back(241 + rng() % (5 << 20));
    Buffers b(6 << 20);
    for (size_t len : lens)
        for (size_t so : {size_t(0), size_t(1), size_t(63)})
            for (size_t dof : {size_t(0), size_t(31)})
                for (bool nt : {false, true})
                    b.check(len, so, dof, nt, true);
}

TEST_P(CopyRoutines, AllIsasGiveTheSameHash) {
    std::mt19937_64 rng(3);
    std::vector<uint8_t> buf(2 << 20);
    for (auto &b : buf)
        b = static_cast<uint8_t>(rng());
    IsaGuard g(GetParam());
    for (size_t len : {size_t(241), size_t(4096), size_t(4097), size_t(1 << 20), buf.size()})
        EXPECT_EQ(hash_bytes_xxh3(buf.data(), len), XXH3_64bits(buf.data(), len)) << len;
}

// The value checksum hashes its blocks with the routines above; what it
// gives must stay docs/on-device-format.md's definition, computed here with
// xxhash itself: XXH3-64 of each 1 MiB block, then XXH3-64 of those hashes
// in order (an empty value: one empty block). Arenas written before and
// after, and by other builds, check the same way.
TEST_P(CopyRoutines, TheValueChecksumIsTheFormatsDefinition) {
    std::mt19937_64 rng(5);
    std::vector<uint8_t> buf((3 << 20) + 17);
    for (auto &b : buf)
        b = static_cast<uint8_t>(rng());
    IsaGuard g(GetParam());
    constexpr size_t kBlock = 1 << 20;
    for (size_t len : {size_t(0), size_t(1), size_t(240), size_t(241), size_t(4095), size_t(4096),
                       kBlock - 1, kBlock, kBlock + 1, 2 * kBlock + 64, buf.size()}) {
        std::vector<uint64_t> blocks;
        for (size_t off = 0; off < len || blocks.empty(); off += kBlock)
            blocks.push_back(XXH3_64bits(buf.data() + off, std::min(kBlock, len - off)));
        const uint64_t want = XXH3_64bits(blocks.data(), blocks.size() * sizeof(uint64_t));
        EXPECT_EQ(daxkv::arena::value_checksum(buf.data(), len), want) << "len " << len;
        EXPECT_EQ(daxkv::arena::combine_block_hashes(blocks.data(), blocks.size()), want)
            << "len " << len;
    }
}

INSTANTIATE_TEST_SUITE_P(Isa, CopyRoutines, ::testing::ValuesIn(supported_isas()),
                         [](const ::testing::TestParamInfo<CopyIsa> &i) {
                             return std::string(copy_isa_name(i.param));
                         });

TEST(CopyIsaDetection, TheDetectedIsaIsSupportedAndNamed) {
    EXPECT_TRUE(copy_isa_supported(copy_isa()));
    EXPECT_TRUE(copy_isa_supported(CopyIsa::sse2));
    EXPECT_STRNE(copy_isa_name(copy_isa()), "?");
}

} // namespace

// copy_streams: many copies at once, plain and hashed, streaming or not,
// short (done at once), long (lanes of their own) and in between, with
// destinations on and off the line; each must come out as if copied alone,
// and nothing around any destination may change.
TEST_P(CopyRoutines, ManyStreamsInterleavedAreEachByteExact) {
    IsaGuard isa(GetParam());
    struct Want {
        size_t len, dst_off;
        bool hash, nt;
    };
    const std::vector<Want> wants = {
        {0, 0, true, true},          {1, 3, false, true},         {4095, 0, true, true},
        {4096, 64, true, true},      {5000, 7, true, true},       {5000, 0, false, false},
        {65536 + 13, 0, false, true}, {65536 + 13, 5, false, true}, {(1u << 20), 0, true, true},
        {(1u << 20) + 64, 0, true, false}, {300000, 32, true, true}, {70000, 1, false, true},
        {(3u << 20) + 4097, 0, false, true}, {1024, 0, true, true},  {16 * 1024, 0, true, true},
    };
    size_t total = 0;
    for (const Want &w : wants)
        total += w.len + 4096;
    std::vector<uint8_t> src(total), dst(total + 4096, 0xA5);
    std::mt19937_64 rng(99);
    for (auto &b : src)
        b = static_cast<uint8_t>(rng());
    std::vector<CopyStream> streams;
    std::vector<uint64_t> hashes(wants.size(), 0);
    std::vector<size_t> at;
    size_t pos = 0;
    for (size_t i = 0; i < wants.size(); ++i) {
        const Want &w = wants[i];
        at.push_back(pos);
        streams.push_back(CopyStream{dst.data() + pos + w.dst_off, src.data() + pos, w.len,
                                     w.hash ? &hashes[i] : nullptr, w.nt});
        pos += w.len + 4096;
    }
    copy_streams(streams.data(), streams.size());
    for (size_t i = 0; i < wants.size(); ++i) {
        const Want &w = wants[i];
        const uint8_t *d = dst.data() + at[i] + w.dst_off, *s = src.data() + at[i];
        ASSERT_EQ(std::memcmp(d, s, w.len), 0) << "stream " << i << " len " << w.len;
        if (w.hash) {
            EXPECT_EQ(hashes[i], XXH3_64bits(s, w.len)) << "stream " << i << " len " << w.len;
        }
        for (const uint8_t *p = dst.data() + at[i]; p < d; ++p)
            ASSERT_EQ(*p, 0xA5) << "wrote before stream " << i;
        for (const uint8_t *p = d + w.len; p < dst.data() + at[i] + w.len + 4096; ++p)
            ASSERT_EQ(*p, 0xA5) << "wrote past stream " << i;
    }
}
