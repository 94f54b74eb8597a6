// Damaged, truncated and unexpected arenas: the open names the real cause
// (a healthy arena is never called corrupt), leaves what it refuses
// untouched, never crashes, and whatever it opens reads back only values
// that were written.
//
// Bad inputs tried here: a healthy arena opened with a smaller size; an
// arena file truncated inside its payloads and inside its slot headers; a
// capacity=payload arena file cut to its payload bytes, inside the payloads
// above them and one page short of its end; an
// arena of format version 2 (checksums intact); one superblock copy of
// version 2 (generation above and below the other's) beside a valid
// version-1 copy; random bytes written over
// the superblocks, the removal table, the slot headers and the payloads, 200
// seeds; sequence numbers far ahead of the clock with their checksums
// intact: a slot's seq (and commit word), the superblock's seq_floor and a
// removal-table word of 2^63 - 1, 2^63 - 2^19 (less than one floor raise
// below 2^63) and 2^62; two whole commits of one key with one seq; slot
// headers rewritten with their body checksum recomputed: a value length
// past the slot (slot_bytes + 1, 2^64 - 1), metadata longer than its area
// (meta_bytes + 1, 2^32 - 1), a key length of 0, 513 and 65535, a value
// length shortened inside the slot; a whole header copied over another
// entry's, and over a free slot.
#include "arena/inspect.hpp"
#include "common.hpp"
#include "internal/util.hpp"

using namespace adv;

namespace {

class Damage : public ::testing::Test {
protected:
    // An arena of `slots` slots holding keys 0..n-1 (version 1).
    void make(const std::string &path, uint32_t slots, uint32_t n) {
        ConfigPtr cfg = config({}, {{path, dev_bytes_for(slots)}});
        daxkv_store *s = nullptr;
        ASSERT_EQ(daxkv_open(&s, cfg.get()), 0) << daxkv_errmsg();
        for (uint32_t i = 0; i < n; ++i)
            ASSERT_EQ(put_key(s, i, 1), 0);
        daxkv_close(s);
    }
    int open_rc(const std::string &path, uint64_t bytes) {
        ConfigPtr cfg = config({}, {{path, bytes}});
        daxkv_store *s = nullptr;
        int rc = daxkv_open(&s, cfg.get());
        daxkv_close(s);
        return rc;
    }
    TempDir dir_;
};

TEST_F(Damage, AHealthyArenaOpenedWithASmallerSizeIsForeignNotCorrupt) {
    std::string a = dir_.file("a");
    make(a, 16, 12);
    const uint64_t h = file_hash(a);
    EXPECT_EQ(open_rc(a, dev_bytes_for(8)), DAXKV_E_FOREIGN);
    EXPECT_TRUE(contains_text(daxkv_errmsg(), "were asked for")) << daxkv_errmsg();
    EXPECT_FALSE(contains_text(daxkv_errmsg(), "damaged")) << daxkv_errmsg();
    EXPECT_EQ(file_hash(a), h);
    EXPECT_EQ(open_rc(a, 0), 0) << daxkv_errmsg(); // its own size still opens it
}

TEST_F(Damage, ATruncatedArenaFileIsCorruptNamingTheSizesAndNeverFaults) {
    daxkv::arena::Layout lay = daxkv::arena::compute_layout(dev_bytes_for(16), kSlot, 256);
    // Cut inside the payloads, and inside the slot headers.
    for (uint64_t cut : {lay.data_offset + 5 * kSlot + 100, lay.header_offset + 3 * 832 + 7}) {
        std::string a = dir_.file("t" + std::to_string(cut));
        make(a, 16, 12);
        ASSERT_EQ(::truncate(a.c_str(), static_cast<off_t>(cut)), 0);
        const uint64_t h = file_hash(a);
        // Opened at its own size (0), and at the size it was made with: a
        // file shorter than the size asked for was "no space" (-ENOSPC).
        std::string msg = child_check([&]() -> std::string {
            for (uint64_t asked : {uint64_t(0), dev_bytes_for(16)}) {
                int rc = open_rc(a, asked);
                if (rc != DAXKV_E_CORRUPT)
                    return "open at " + std::to_string(asked) + " returned " + std::to_string(rc) +
                           ": " + daxkv_errmsg();
                if (!contains_text(daxkv_errmsg(), "truncated"))
                    return std::string("the message does not name the cause: ") + daxkv_errmsg();
            }
            return "";
        });
        EXPECT_EQ(msg, "") << "cut at " << cut;
        EXPECT_EQ(file_hash(a), h);
        // daxkv info and check judge it the same way: cut short, not
        // damaged (they called both superblock copies damaged, and advised
        // a format).
        std::string img = read_file(a);
        daxkv::arena::ImageReport r =
            daxkv::arena::check_image(&img[0], img.size(), daxkv::arena::CheckOptions{});
        EXPECT_EQ(r.state, daxkv::arena::ImageState::truncated) << "cut at " << cut;
        EXPECT_EQ(daxkv::arena::usable_end_of(r.sb), lay.data_offset + 16 * kSlot);
    }
}

TEST_F(Damage, ATruncatedPayloadSizedArenaIsCorruptNotExtendedWithZeros) {
    // capacity=payload lets an existing file of the payload bytes asked for
    // be extended for the slot headers. A file that already held an arena
    // and was cut after close was extended with zeros too, and judged
    // against the extended size: its superblocks looked whole, the zeros
    // were scanned as payloads, and with verify=off the cut entries read
    // back as zeros with status 0. It is an arena cut short, refused as the
    // same file under capacity=arena is, and left as it was found.
    const uint64_t slots = 16;
    const uint64_t payload = slots * kSlot;
    const std::vector<std::pair<std::string, std::string>> opts = {{"capacity", "payload"},
                                                                   {"verify", "off"}};
    // Cut to the payload bytes (the least capacity=payload takes of a
    // file), inside the payloads above that, and one page short.
    for (uint64_t cut_from_end : {uint64_t(0), uint64_t(1), uint64_t(2)}) {
        std::string a = dir_.file("p" + std::to_string(cut_from_end));
        {
            ConfigPtr cfg = config(opts, {{a, payload}});
            daxkv_store *s = nullptr;
            ASSERT_EQ(daxkv_open(&s, cfg.get()), 0) << daxkv_errmsg();
            for (uint32_t i = 0; i < slots; ++i)
                ASSERT_EQ(put_key(s, i, 1), 0);
            daxkv_close(s);
        }
        struct stat st;
        ASSERT_EQ(::stat(a.c_str(), &st), 0);
        const uint64_t whole = static_cast<uint64_t>(st.st_size);
        ASSERT_GT(whole, payload + 2 * kSlot);
        const uint64_t cut = cut_from_end == 0   ? payload
                             : cut_from_end == 1 ? payload + kSlot + 100
                                                 : whole - 4096;
        ASSERT_EQ(::truncate(a.c_str(), static_cast<off_t>(cut)), 0);
        const uint64_t h = file_hash(a);
        std::string msg = child_check([&]() -> std::string {
            ConfigPtr cfg = config(opts, {{a, payload}});
            daxkv_store *s = nullptr;
            int rc = daxkv_open(&s, cfg.get());
            if (rc == 0) {
                std::string wrong = check_keys(s, 0, slots, 1);
                daxkv_close(s);
                return "the open succeeded; " + wrong;
            }
            if (rc != DAXKV_E_CORRUPT)
                return "open returned " + std::to_string(rc) + ": " + daxkv_errmsg();
            if (!contains_text(daxkv_errmsg(), "truncated"))
                return std::string("the message does not name the cause: ") + daxkv_errmsg();
            return "";
        });
        EXPECT_EQ(msg, "") << "cut at " << cut;
        EXPECT_EQ(file_hash(a), h) << "cut at " << cut;
        ASSERT_EQ(::stat(a.c_str(), &st), 0);
        EXPECT_EQ(static_cast<uint64_t>(st.st_size), cut) << "the refused open resized the file";
    }
}

TEST_F(Damage, AnArenaOfAnotherFormatVersionIsForeignNamingTheVersion) {
    std::string a = dir_.file("a");
    make(a, 8, 4);
    {
        FileMap m(a);
        ASSERT_TRUE(m.ok());
        for (uint64_t off : {uint64_t(0), daxkv::arena::kSuperblockBytes}) {
            auto *sb = reinterpret_cast<daxkv::arena::Superblock *>(m.base() + off);
            sb->format_version = 2;
            sb->checksum = daxkv::hash_bytes(sb, offsetof(daxkv::arena::Superblock, checksum));
        }
    }
    const uint64_t h = file_hash(a);
    EXPECT_EQ(open_rc(a, 0), DAXKV_E_FOREIGN);
    EXPECT_TRUE(contains_text(daxkv_errmsg(), "format version 2")) << daxkv_errmsg();
    EXPECT_EQ(file_hash(a), h);
    // daxkv info and check judge it the same way.
    std::string img = read_file(a);
    daxkv::arena::ImageReport r =
        daxkv::arena::check_image(&img[0], img.size(), daxkv::arena::CheckOptions{});
    EXPECT_EQ(r.state, daxkv::arena::ImageState::other_version);
    EXPECT_EQ(r.sb.format_version, 2u);
}

TEST_F(Damage, ACopyOfAnotherFormatVersionBesideAValidOneIsForeignAndLeftAsItIs) {
    // What a daxkv of version 2 leaves when it stops between rewriting its
    // two copies: one copy version 2 (newer, or older), the other a valid
    // version 1. The open took the version-2 copy for damage and rewrote it
    // from the other, taking its generation back down; daxkv check called
    // it damaged and --repair did the same.
    namespace ar = daxkv::arena;
    for (uint64_t off : {uint64_t(0), ar::kSuperblockBytes}) {
        for (int gen_delta : {5, -1}) {
            std::string a = dir_.file("v" + std::to_string(off) + std::to_string(gen_delta));
            make(a, 8, 4);
            {
                FileMap m(a);
                ASSERT_TRUE(m.ok());
                auto *sb = reinterpret_cast<ar::Superblock *>(m.base() + off);
                sb->format_version = 2;
                sb->sb_generation += gen_delta;
                sb->checksum = daxkv::hash_bytes(sb, offsetof(ar::Superblock, checksum));
            }
            const std::string what = "copy at " + std::to_string(off) + ", generation " +
                                     std::to_string(gen_delta);
            const uint64_t h = file_hash(a);
            EXPECT_EQ(open_rc(a, 0), DAXKV_E_FOREIGN) << what;
            EXPECT_TRUE(contains_text(daxkv_errmsg(), "format version 2")) << daxkv_errmsg();
            EXPECT_EQ(file_hash(a), h) << what;
            std::string img = read_file(a);
            ar::CheckOptions repair;
            repair.repair = true;
            ar::ImageReport r = ar::check_image(&img[0], img.size(), repair);
            EXPECT_EQ(r.state, ar::ImageState::other_version) << what;
            EXPECT_EQ(r.sb.format_version, 2u) << what;
            EXPECT_EQ(img, read_file(a)) << what << ": the check repaired it";
            // on_mismatch=reformat may replace it, as for a whole arena of
            // another version.
            ConfigPtr cfg = config({{"on_mismatch", "reformat"}}, {{a, 0}});
            daxkv_store *s = nullptr;
            EXPECT_EQ(daxkv_open(&s, cfg.get()), 0) << daxkv_errmsg();
            daxkv_close(s);
        }
    }
}

TEST_F(Damage, SequenceNumbersFarAheadOfTheClockLeaveTheArenaOpenable) {
    // Numbers below 2^63 were taken as numbers: the pool went on above
    // them and recorded a seq_floor at or above 2^63, so that the next open
    // found both superblock copies invalid ("damaged") and every entry was
    // lost. Numbers more than kSeqAhead ahead of the clock are damage now:
    // such an entry is dropped, such a floor cleared, such a word set to the
    // floor, and what the store writes after passes the next open.
    namespace ar = daxkv::arena;
    const uint64_t top = uint64_t(1) << 63;
    std::string failures;
    for (const std::string where : {"seq", "floor", "word"}) {
        for (uint64_t v : {top - 1, top - (uint64_t(1) << 19), uint64_t(1) << 62}) {
            const std::string what = where + "=" + std::to_string(v);
            std::string a = dir_.file("s");
            ::unlink(a.c_str());
            make(a, 32, 8);
            {
                FileMap m(a);
                ASSERT_TRUE(m.ok());
                auto *sb = reinterpret_cast<ar::Superblock *>(m.base());
                if (where == "seq") {
                    auto *h = reinterpret_cast<ar::SlotHeader *>(m.base() + sb->header_offset);
                    ASSERT_NE(h->commit, 0u);
                    h->seq = h->commit = v;
                    h->body_hash = ar::header_checksum(h, h->key_len, h->meta_len);
                } else if (where == "floor") {
                    for (uint64_t off : {uint64_t(0), ar::kSuperblockBytes}) {
                        auto *c = reinterpret_cast<ar::Superblock *>(m.base() + off);
                        c->seq_floor = v;
                        c->checksum = ar::superblock_checksum(*c);
                    }
                } else {
                    reinterpret_cast<uint64_t *>(m.base() + ar::kRemovalTableOffset)[5] = v;
                }
            }
            std::string img = read_file(a);
            ar::ImageReport before = ar::check_image(&img[0], img.size(), ar::CheckOptions{});
            if (!before.damaged())
                failures += what + ": daxkv check calls it clean\n";
            std::string msg = child_check([&]() -> std::string {
                std::string out;
                for (uint32_t round = 0; round < 3; ++round) {
                    ConfigPtr cfg = config({}, {{a, 0}});
                    daxkv_store *s = nullptr;
                    int rc = daxkv_open(&s, cfg.get());
                    if (rc != 0)
                        return "open " + std::to_string(round) + " returned " +
                               std::to_string(rc) + ": " + daxkv_errmsg();
                    // The first keys read back whole or not at all (dropped
                    // with the damage); the keys put since, whole.
                    for (uint32_t i = 0; i < 8 + 4 * round; ++i) {
                        std::string bad = check_key(s, i, 1);
                        const bool dropped = i < 8 && bad.find(": -2 ") != std::string::npos;
                        if (!bad.empty() && !dropped)
                            out += "open " + std::to_string(round) + ": " + bad + "; ";
                    }
                    for (uint32_t i = 8 + 4 * round; i < 12 + 4 * round; ++i)
                        if (put_key(s, i, 1) != 0)
                            out += std::string("put: ") + daxkv_errmsg() + "; ";
                    daxkv_close(s);
                }
                return out;
            });
            if (!msg.empty())
                failures += what + ": " + msg + "\n";
            img = read_file(a);
            ar::ImageReport after = ar::check_image(&img[0], img.size(), ar::CheckOptions{});
            if (after.state != ar::ImageState::arena || after.damaged())
                failures += what + ": the image the store left is not clean\n";
        }
    }
    EXPECT_EQ(failures, "");
}

TEST_F(Damage, TwoCommitsOfAKeyWithOneSeqGoAsDaxkvCheckSays) {
    // Two whole entries of one key with one seq: daxkv check kept the one
    // in the later slot and --repair withdrew the earlier, while the open
    // kept the one it was offered first (the earlier slot, by the order an
    // unstable sort left): check reported, and --repair made, another
    // answer than the open's. Both now keep the earlier slot.
    namespace ar = daxkv::arena;
    std::string a = dir_.file("a");
    make(a, 16, 8);
    uint32_t first = 0, second = 0;
    {
        FileMap m(a);
        ASSERT_TRUE(m.ok());
        auto *sb = reinterpret_cast<ar::Superblock *>(m.base());
        auto hdr = [&](uint32_t s) {
            return reinterpret_cast<ar::SlotHeader *>(m.base() + sb->header_offset +
                                                      s * sb->header_bytes);
        };
        auto key = [&](uint32_t s) {
            return std::string(reinterpret_cast<char *>(hdr(s) + 1), hdr(s)->key_len);
        };
        for (uint32_t s = 0; s < 8; ++s) {
            if (key(s) == key_of(0))
                first = s;
            if (key(s) == key_of(1))
                second = s;
        }
        ASSERT_LT(first, second);
        // Slot `second` becomes a commit of key 0 (value of key 1) with
        // key 0's seq.
        ar::SlotHeader *h = hdr(second);
        const std::string k0 = key_of(0);
        std::memcpy(h + 1, k0.data(), k0.size());
        h->key_len = static_cast<uint16_t>(k0.size());
        h->seq = h->commit = hdr(first)->seq;
        h->body_hash = ar::header_checksum(h, h->key_len, h->meta_len);
    }
    std::string img = read_file(a);
    ar::ImageReport r = ar::check_image(&img[0], img.size(), ar::CheckOptions{});
    ASSERT_EQ(r.stale, 1u);
    ASSERT_EQ(r.findings.size(), 1u);
    EXPECT_EQ(r.findings[0].slot, second) << "daxkv check drops the earlier slot";
    for (bool repair_first : {false, true}) {
        if (repair_first) {
            ar::CheckOptions fix;
            fix.repair = true;
            ar::check_image(&img[0], img.size(), fix);
        }
        write_file(a, img);
        ConfigPtr cfg = config({}, {{a, 0}});
        daxkv_store *s = nullptr;
        ASSERT_EQ(daxkv_open(&s, cfg.get()), 0) << daxkv_errmsg();
        EXPECT_EQ(check_key(s, 0, 1), "") << (repair_first ? "after --repair" : "open alone");
        daxkv_close(s);
    }
}

TEST_F(Damage, RandomDamageNeverCrashesAndNeverReadsBackWhatWasNotWritten) {
    std::string pristine = dir_.file("pristine");
    make(pristine, 16, 12);
    const std::string image = read_file(pristine);
    daxkv::arena::Layout lay = daxkv::arena::compute_layout(dev_bytes_for(16), kSlot, 256);
    std::string failures;
    for (uint64_t seed = 1; seed <= 200; ++seed) {
        std::string bytes = image;
        uint64_t x = seed;
        // Regions: superblocks and table, slot headers, payloads.
        const uint64_t regions[3][2] = {{0, daxkv::arena::kHeaderOffset},
                                        {lay.header_offset, lay.data_offset},
                                        {lay.data_offset, bytes.size()}};
        const int hits = 1 + static_cast<int>(splitmix64(x) % 8);
        for (int i = 0; i < hits; ++i) {
            const auto &r = regions[splitmix64(x) % 3];
            const uint64_t off = r[0] + splitmix64(x) % (r[1] - r[0]);
            bytes[off] = static_cast<char>(splitmix64(x));
        }
        std::string a = dir_.file("d");
        write_file(a, bytes);
        std::string msg = child_check([&]() -> std::string {
            ConfigPtr cfg = config({{"verify", seed % 2 ? "read" : "recover"}}, {{a, 0}});
            daxkv_store *s = nullptr;
            int rc = daxkv_open(&s, cfg.get());
            if (rc == DAXKV_E_CORRUPT || rc == DAXKV_E_FOREIGN)
                return "";
            if (rc != 0)
                return "open returned " + std::to_string(rc) + ": " + daxkv_errmsg();
            std::string out;
            for (uint32_t i = 0; i < 12; ++i) {
                std::string k = key_of(i);
                std::vector<uint8_t> buf(kSlot);
                size_t len = 0;
                int g = daxkv_get(s, k.data(), k.size(), buf.data(), buf.size(), &len);
                if (g == 0) {
                    std::string bad = check_versioned(i, buf.data(), len);
                    // Payload damage is caught by the value checksum at
                    // recovery (verify=recover) or at the read.
                    if (!bad.empty())
                        out += "key " + std::to_string(i) + ": " + bad + "; ";
                } else if (g != -ENOENT && g != -EIO) {
                    out += "get returned " + std::to_string(g) + "; ";
                }
            }
            daxkv_close(s);
            return out;
        });
        if (!msg.empty())
            failures += "seed " + std::to_string(seed) + ": " + msg + "\n";
    }
    EXPECT_EQ(failures, "");
}

TEST_F(Damage, HeadersWhoseChecksumHoldsButWhoseFieldsLieAreDropped) {
    // A checksum recomputed over lying fields (what a buggy writer or a
    // crafted image leaves): bounds are judged before the checksum, and
    // the value checksum catches a header that names other bytes. Every
    // key reads its own bytes or nothing; the open, daxkv check and
    // --repair never read outside the image.
    namespace ar = daxkv::arena;
    const std::string pristine = dir_.file("pristine");
    make(pristine, 16, 10);
    const std::string image = read_file(pristine);
    ar::Superblock sb;
    std::memcpy(&sb, image.data(), sizeof sb);
    ASSERT_EQ(sb.meta_bytes, 256u); // the lies below are told against it
    auto hdr = [&](std::string &img, uint64_t slot) {
        return reinterpret_cast<ar::SlotHeader *>(&img[sb.header_offset + slot * sb.header_bytes]);
    };
    // A lying header in slot 2 (a live entry), its body checksum made to hold.
    const std::vector<std::pair<const char *, void (*)(ar::SlotHeader *)>> lies = {
        {"value_len slot_bytes + 1", [](ar::SlotHeader *h) { h->value_len = kSlot + 1; }},
        {"value_len 2^64 - 1", [](ar::SlotHeader *h) { h->value_len = ~uint64_t(0); }},
        {"value_len shortened", [](ar::SlotHeader *h) { h->value_len /= 2; }},
        {"meta_len meta_bytes + 1", [](ar::SlotHeader *h) { h->meta_len = 257; }},
        {"meta_len 2^32 - 1", [](ar::SlotHeader *h) { h->meta_len = ~uint32_t(0); }},
        {"key_len 0", [](ar::SlotHeader *h) { h->key_len = 0; }},
        {"key_len 513", [](ar::SlotHeader *h) { h->key_len = 513; }},
        {"key_len 65535", [](ar::SlotHeader *h) { h->key_len = 0xffff; }},
    };
    std::vector<std::pair<std::string, std::string>> cases;
    for (const auto &lie : lies) {
        std::string img = image;
        ar::SlotHeader *h = hdr(img, 2);
        ASSERT_NE(h->commit, 0u);
        lie.second(h);
        // Summed over what fits the header, as a writer that trusted the
        // fields would have summed it.
        h->body_hash = ar::header_checksum(h, std::min<uint64_t>(h->key_len, ar::kKeyMax),
                                           std::min<uint64_t>(h->meta_len, sb.meta_bytes));
        cases.emplace_back(lie.first, img);
    }
    {
        std::string img = image;
        std::memcpy(hdr(img, 5), hdr(img, 3), sb.header_bytes);
        cases.emplace_back("header 3 copied over entry 5", img);
        img = image;
        ASSERT_EQ(hdr(img, 12)->commit, 0u);
        std::memcpy(hdr(img, 12), hdr(img, 4), sb.header_bytes);
        cases.emplace_back("header 4 copied over free slot 12", img);
    }
    const std::string a = dir_.file("a");
    for (const auto &c : cases) {
        for (bool repair_first : {false, true}) {
            std::string img = c.second;
            ar::CheckOptions opt;
            opt.repair = repair_first;
            ar::ImageReport r = ar::check_image(&img[0], img.size(), opt);
            EXPECT_EQ(r.state, ar::ImageState::arena) << c.first;
            EXPECT_GE(r.torn + r.bad_header + r.bad_value + r.stale, 1u)
                << c.first << ": daxkv check finds nothing";
            for (const char *verify : {"recover", "read"}) {
                write_file(a, img);
                ConfigPtr cfg = config({{"verify", verify}}, {{a, 0}});
                daxkv_store *s = nullptr;
                ASSERT_EQ(daxkv_open(&s, cfg.get()), 0) << c.first << ": " << daxkv_errmsg();
                for (uint32_t i = 0; i < 10; ++i) {
                    std::string bad = check_key(s, i, 1);
                    if (!bad.empty() && check_key(s, i, 0).empty())
                        bad.clear(); // dropped with the lying header: a miss
                    EXPECT_EQ(bad, "") << c.first << (repair_first ? " (repaired)" : "") << ", "
                                       << verify << ", key " << i;
                }
                daxkv_close(s);
            }
        }
    }
}

} // namespace
