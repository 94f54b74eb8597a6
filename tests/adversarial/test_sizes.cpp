// Sizes from the caller at their boundaries: every size key of the
// configuration, the device size of daxkv_config_add_device, device_add and
// device_resize, value, metadata and buffer lengths, and the ranges of
// daxkv_memcpy_batch. Each call returns its documented code, creates
// nothing on disk, and the process survives (the calls that once divided by
// a wrapped sum run in a child, so that a crash fails one test).
//
// Bad inputs tried here: slot_bytes 2^64-1, 2^64-832 (slot plus header
// wraps to 0), 2^64-4096, 2^63, 2^62 and 1 TiB on a 1 MiB arena; the same
// through the LMCache JSON; meta_bytes 64 KiB + 1 with the largest slot;
// device sizes 1, 4095, 2^63, 2^64-4096 and 2^64-1 for a file and for
// "mem:"; grow_limit 64 TiB + 1 and 2^64-1; device_add with 2^64-1 and
// device_resize to 2^64-1, 2^63 and one byte below a slot; put, reserve and
// get lengths of SIZE_MAX; a memcpy range that wraps the address space.
#include "common.hpp"

using namespace adv;

namespace {

class Sizes : public ::testing::Test {
protected:
    // Opens a store with the given keys on one device; returns the code.
    // The open runs in a child process so that a crash is a failed test;
    // the child's result code comes back through its exit status.
    int open_in_child(const std::vector<std::pair<std::string, std::string>> &opts,
                      const std::string &path, uint64_t bytes) {
        int st = in_child([&] {
            ConfigPtr cfg = config(opts, {{path, bytes}});
            daxkv_store *s = nullptr;
            int rc = daxkv_open(&s, cfg.get());
            if (rc == 0)
                daxkv_close(s);
            // Codes as small numbers: 0 ok, 1 EINVAL, 2 ENOSPC, 3 ENOMEM, 4 other.
            return rc == 0 ? 0 : rc == -EINVAL ? 1 : rc == -ENOSPC ? 2 : rc == -ENOMEM ? 3 : 4;
        });
        switch (st) {
        case 0: return 0;
        case 1: return -EINVAL;
        case 2: return -ENOSPC;
        case 3: return -ENOMEM;
        case 4: return -EIO;
        default: return 1000 + st; // crashed: 128 + signal
        }
    }
    TempDir dir_;
};

TEST_F(Sizes, SlotBytesNearTwoToTheSixtyFourIsEinvalNotACrash) {
    const uint64_t big[] = {UINT64_MAX,         UINT64_MAX - 831, UINT64_MAX - 4095,
                            uint64_t(1) << 63, uint64_t(1) << 62, uint64_t(1) << 40};
    for (uint64_t slot : big) {
        std::string path = dir_.file("arena");
        int rc = open_in_child({{"slot_bytes", std::to_string(slot)}}, path, 1 << 20);
        EXPECT_EQ(rc, -EINVAL) << "slot_bytes " << slot << " (1000 + 128 + signal: crashed)";
        EXPECT_FALSE(file_exists(path)) << "a failed open left " << path << " behind";
        // With the largest metadata as well.
        rc = open_in_child({{"slot_bytes", std::to_string(slot)}, {"meta_bytes", "65536"}}, path,
                           1 << 20);
        EXPECT_EQ(rc, -EINVAL) << "slot_bytes " << slot << " meta_bytes 65536";
        EXPECT_FALSE(file_exists(path));
        // Anonymous memory takes the same layout path.
        rc = open_in_child({{"slot_bytes", std::to_string(slot)}}, "mem:", 1 << 20);
        EXPECT_EQ(rc, -EINVAL) << "mem: with slot_bytes " << slot;
    }
}

TEST_F(Sizes, SlotBytesNearTwoToTheSixtyFourFromJsonIsEinval) {
    std::string path = dir_.file("arena");
    for (const char *slot : {"18446744073709551615", "18446744073709550784", "9223372036854775807",
                             "4611686018427387904"}) {
        int st = in_child([&] {
            std::string j = std::string("{\"device_path\": \"") + path +
                            "\", \"max_dax_size_gb\": 0.001, \"slot_bytes\": " + slot + "}";
            daxkv_config *cfg = nullptr;
            int rc = daxkv_config_from_json(&cfg, j.c_str());
            if (rc == 0) {
                daxkv_store *s = nullptr;
                rc = daxkv_open(&s, cfg);
                daxkv_close(s);
                daxkv_config_free(cfg);
            }
            return rc == -EINVAL ? 0 : 1;
        });
        EXPECT_EQ(st, 0) << "slot_bytes " << slot << " (128 + signal: crashed)";
        EXPECT_FALSE(file_exists(path));
    }
}

TEST_F(Sizes, MetaBytesAndGrowLimitBoundsAreEinvalAtSet) {
    ConfigPtr cfg = config({}, {});
    EXPECT_EQ(daxkv_config_set(cfg.get(), "meta_bytes", "65537"), -EINVAL);
    EXPECT_TRUE(contains_text(daxkv_errmsg(), "meta_bytes"));
    EXPECT_EQ(daxkv_config_set(cfg.get(), "meta_bytes", "65536"), 0);
    EXPECT_EQ(daxkv_config_set(cfg.get(), "grow_limit", "70368744177665"), -EINVAL);
    EXPECT_EQ(daxkv_config_set(cfg.get(), "grow_limit", "18446744073709551615"), -EINVAL);
    EXPECT_EQ(daxkv_config_set(cfg.get(), "slot_bytes", "18446744073709551616"), -EINVAL);
    EXPECT_TRUE(contains_text(daxkv_errmsg(), "overflows"));
    EXPECT_EQ(daxkv_config_set(cfg.get(), "slot_bytes", "16777216TiB"), -EINVAL);
    EXPECT_EQ(daxkv_config_set(cfg.get(), "cuda_staging_bytes", "18446744073709551615"), -EINVAL);
    EXPECT_EQ(daxkv_config_set(cfg.get(), "cuda_register_chunk", "18446744073709551615"),
              -EINVAL);
}

TEST_F(Sizes, DeviceSizesAtTheBoundsAreClearErrorsAndCreateNothing) {
    struct Case {
        const char *path; // "" = a file in dir_
        uint64_t bytes;
        int want;
    };
    const Case cases[] = {
        {"", 1, -EINVAL},                  // below one page
        {"", 4095, -EINVAL},               // below one page
        {"", uint64_t(1) << 63, -EINVAL},  // no file can be that large
        {"", UINT64_MAX - 4095, -EINVAL},
        {"", UINT64_MAX, -EINVAL},
        {"mem:", 1, -EINVAL},
        {"mem:", 4095, -EINVAL},
        {"mem:", UINT64_MAX, -EINVAL},
        {"mem:", UINT64_MAX - 4095, -EINVAL},
    };
    for (const Case &c : cases) {
        std::string path = *c.path ? c.path : dir_.file("arena");
        int rc = open_in_child({}, path, c.bytes);
        EXPECT_EQ(rc, c.want) << path << " with " << c.bytes << " bytes";
        EXPECT_TRUE(list_dir(dir_.path()).empty()) << "a failed open left a file behind";
    }
}

TEST_F(Sizes, HotplugSizesAtTheBounds) {
    std::string d0 = dir_.file("d0");
    ConfigPtr cfg = config({{"hotplug", "1"}}, {{d0, dev_bytes_for(8)}});
    daxkv_store *raw = nullptr;
    ASSERT_EQ(daxkv_open(&raw, cfg.get()), 0) << daxkv_errmsg();
    StorePtr s(raw);
    ASSERT_EQ(put_key(s.get(), 1, 1), 0);
    std::string extra = dir_.file("extra");
    EXPECT_EQ(daxkv_device_add(s.get(), extra.c_str(), UINT64_MAX), -EINVAL);
    EXPECT_EQ(daxkv_device_add(s.get(), extra.c_str(), uint64_t(1) << 63), -EINVAL);
    EXPECT_FALSE(file_exists(extra));
    EXPECT_EQ(daxkv_device_add(s.get(), "mem:", UINT64_MAX), -EINVAL);
    daxkv_hotplug_result r = result();
    EXPECT_EQ(daxkv_device_resize(s.get(), d0.c_str(), UINT64_MAX, DAXKV_MIGRATE, 0, &r),
              -ENOSPC);
    EXPECT_EQ(daxkv_device_resize(s.get(), d0.c_str(), uint64_t(1) << 63, DAXKV_MIGRATE, 0, &r),
              -ENOSPC);
    EXPECT_EQ(daxkv_device_resize(s.get(), d0.c_str(), kSlot - 1, DAXKV_MIGRATE, 0, &r), -EINVAL);
    EXPECT_EQ(check_key(s.get(), 1, 1), "");
    EXPECT_EQ(pool_status(s.get())["devices"].size(), 1u);
}

TEST_F(Sizes, LengthsOfSizeMaxAreRefused) {
    std::string path = dir_.file("arena");
    ConfigPtr cfg = config({}, {{path, dev_bytes_for(4)}});
    daxkv_store *raw = nullptr;
    ASSERT_EQ(daxkv_open(&raw, cfg.get()), 0) << daxkv_errmsg();
    StorePtr s(raw);
    char b[16] = {};
    EXPECT_EQ(daxkv_put(s.get(), "k", 1, b, SIZE_MAX, 0), -E2BIG);
    daxkv_reservation *res = nullptr;
    EXPECT_EQ(daxkv_reserve(s.get(), "k", 1, SIZE_MAX, &res), -E2BIG);
    EXPECT_EQ(res, nullptr);
    ASSERT_EQ(daxkv_put(s.get(), "k", 1, b, sizeof b, 0), 0);
    size_t len = 0;
    EXPECT_EQ(daxkv_get(s.get(), "k", 1, b, sizeof b, &len), 0);
    daxkv_item it{"k", SIZE_MAX, b, sizeof b, nullptr, 0, 0};
    EXPECT_EQ(daxkv_put_batch(s.get(), &it, 1, 0), 0);
    EXPECT_EQ(it.status, -EINVAL);
    daxkv_item big{"k", 1, b, SIZE_MAX, b, SIZE_MAX, 0};
    EXPECT_EQ(daxkv_put_batch(s.get(), &big, 1, DAXKV_REPLACE), 0);
    EXPECT_NE(big.status, 0);
    EXPECT_EQ(get_stats(s.get()).entries, 1u);
}

TEST_F(Sizes, MemcpyRangesThatWrapAreEinval) {
    char a[64] = {}, b[64] = {};
    void *dst[] = {a};
    const void *src[] = {b};
    size_t len[] = {SIZE_MAX - 8};
    EXPECT_EQ(daxkv_memcpy_batch(dst, src, len, 1, 0), -EINVAL);
    EXPECT_TRUE(contains_text(daxkv_errmsg(), "wraps"));
    len[0] = sizeof a;
    EXPECT_EQ(daxkv_memcpy_batch(dst, src, len, 1, 0), 0);
}

} // namespace
