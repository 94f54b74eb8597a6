// Where entries live: the cursor over committed keys, the slot of a lease
// or reservation, a device's layout, and capacity=payload (device sizes that
// count payloads, LMCache's N x slot_bytes, with the metadata on top).
//
// Bad inputs tried here: NULL store, cursor, out and path; an empty path; a
// path not in the pool; struct_size 0 and 4; a released lease and a finished
// reservation (by their handles being gone: NULL); a cursor used after the
// store was closed; capacity values other than arena/payload; a payload size
// below one slot; an existing file shorter than the payloads asked for; a
// payload-sized open that fails after it extended the file (foreign data).
#include <atomic>
#include <map>
#include <set>
#include <thread>

#include "helpers.hpp"

using namespace daxkv_test;

namespace {

struct CursorClose {
    void operator()(daxkv_cursor *c) const { daxkv_cursor_close(c); }
};
using CursorPtr = std::unique_ptr<daxkv_cursor, CursorClose>;

struct Listed {
    std::string meta;
    uint64_t value_len, slot, seq;
    uint32_t device_id, pins, leases;
};

// Every key a full walk reports (device_path NULL: all devices); fails the
// test on a duplicate.
std::map<std::string, Listed> walk(daxkv_store *s, const char *device_path = nullptr) {
    std::map<std::string, Listed> out;
    daxkv_cursor *raw = nullptr;
    int rc = daxkv_cursor_open(s, device_path, &raw);
    EXPECT_EQ(rc, 0) << daxkv_errmsg();
    CursorPtr c(raw);
    daxkv_key_info k;
    k.struct_size = sizeof k;
    while ((rc = daxkv_cursor_next(c.get(), &k)) == 1) {
        std::string key(static_cast<const char *>(k.key), k.key_len);
        Listed l{k.meta ? std::string(static_cast<const char *>(k.meta), k.meta_len)
                        : std::string(),
                 k.value_len, k.slot, k.seq, k.device_id, k.pins, k.leases};
        EXPECT_TRUE(out.emplace(key, l).second) << "key listed twice: " << key;
    }
    EXPECT_EQ(rc, 0) << daxkv_errmsg();
    return out;
}

int put_meta(daxkv_store *s, const std::string &k, const std::vector<uint8_t> &v,
             const std::string &meta, unsigned flags = 0) {
    daxkv_item it{};
    it.key = k.data();
    it.key_len = k.size();
    it.data = const_cast<uint8_t *>(v.data());
    it.len = v.size();
    it.meta = const_cast<char *>(meta.data());
    it.meta_len = meta.size();
    int n = daxkv_put_batch(s, &it, 1, flags);
    return n == 1 ? 0 : it.status;
}

class Keys : public StoreFixture {};

TEST_F(Keys, CursorListsEveryCommittedKeyOnceWithItsMetadata) {
    open(StoreSpec(4096, 16));
    EXPECT_TRUE(walk(s()).empty());
    for (int i = 0; i < 10; ++i)
        ASSERT_EQ(put_meta(s(), key_of(i), pattern(i, 100 + i), "meta-" + std::to_string(i)), 0);
    ASSERT_EQ(remove(key_of(3)), 0);
    ASSERT_EQ(pin(key_of(5)), 0);
    ASSERT_EQ(pin(key_of(5)), 0);
    LeasePtr l = lease(key_of(6));
    // A reservation is in flight, not committed: not listed.
    daxkv_reservation *r = nullptr;
    ASSERT_EQ(daxkv_reserve(s(), "inflight", 8, 64, &r), 0);
    ReservationPtr rp(r);

    auto keys = walk(s());
    ASSERT_EQ(keys.size(), 9u);
    EXPECT_EQ(keys.count(key_of(3)), 0u);
    EXPECT_EQ(keys.count("inflight"), 0u);
    std::set<uint64_t> slots, seqs;
    for (int i = 0; i < 10; ++i) {
        if (i == 3)
            continue;
        const Listed &k = keys.at(key_of(i));
        EXPECT_EQ(k.meta, "meta-" + std::to_string(i));
        EXPECT_EQ(k.value_len, 100u + i);
        EXPECT_EQ(k.pins, i == 5 ? 2u : 0u);
        EXPECT_EQ(k.leases, i == 6 ? 1u : 0u);
        EXPECT_LT(k.slot, 16u);
        slots.insert(k.slot);
        seqs.insert(k.seq);
    }
    EXPECT_EQ(slots.size(), 9u) << "two keys reported in one slot";
    EXPECT_EQ(seqs.size(), 9u);
    // A replace gets a newer sequence number.
    uint64_t before = keys.at(key_of(7)).seq;
    ASSERT_EQ(put(key_of(7), pattern(70, 10), DAXKV_REPLACE), 0);
    EXPECT_GT(walk(s()).at(key_of(7)).seq, before);
}

TEST_F(Keys, CursorListsRecoveredKeysAfterAReopen) {
    FILE_ARENA_ONLY();
    open(StoreSpec(4096, 8));
    for (int i = 0; i < 5; ++i)
        ASSERT_EQ(put_meta(s(), key_of(i), pattern(i, 300), "m" + std::to_string(i)), 0);
    reopen(spec_);
    auto keys = walk(s());
    ASSERT_EQ(keys.size(), 5u);
    for (int i = 0; i < 5; ++i) {
        EXPECT_EQ(keys.at(key_of(i)).meta, "m" + std::to_string(i));
        EXPECT_EQ(keys.at(key_of(i)).value_len, 300u);
    }
}

TEST_F(Keys, CursorBadArgumentsAndShutdown) {
    open(StoreSpec(4096, 4));
    ASSERT_EQ(put(key_of(1), pattern(1, 10)), 0);
    daxkv_cursor *c = reinterpret_cast<daxkv_cursor *>(0x1);
    EXPECT_EQ(daxkv_cursor_open(nullptr, nullptr, &c), -EINVAL);
    EXPECT_EQ(c, nullptr) << "*out is cleared on failure";
    EXPECT_EQ(daxkv_cursor_open(s(), nullptr, nullptr), -EINVAL);
    EXPECT_EQ(daxkv_cursor_open(s(), "", &c), -EINVAL);
    EXPECT_EQ(daxkv_cursor_open(s(), "/no/such/device", &c), -ENOENT);
    EXPECT_EQ(c, nullptr);
    daxkv_key_info k;
    k.struct_size = sizeof k;
    EXPECT_EQ(daxkv_cursor_next(nullptr, &k), -EINVAL);
    daxkv_cursor_close(nullptr);

    ASSERT_EQ(daxkv_cursor_open(s(), nullptr, &c), 0);
    CursorPtr cp(c);
    EXPECT_EQ(daxkv_cursor_next(c, nullptr), -EINVAL);
    k.struct_size = 4;
    EXPECT_EQ(daxkv_cursor_next(c, &k), -EINVAL);
    // An older, shorter struct: only its prefix is written.
    struct {
        daxkv_key_info k;
        uint64_t guard;
    } small;
    std::memset(&small, 0xAB, sizeof small);
    small.k.struct_size = offsetof(daxkv_key_info, value_len);
    ASSERT_EQ(daxkv_cursor_next(c, &small.k), 1);
    EXPECT_EQ(small.k.key_len, key_of(1).size());
    EXPECT_EQ(small.k.value_len, 0xABABABABABABABABull) << "wrote past struct_size";
    EXPECT_EQ(small.k.struct_size, offsetof(daxkv_key_info, value_len));

    // The cursor keeps the store's memory alive past daxkv_close; the walk
    // then ends with -ESHUTDOWN, never a crash.
    daxkv_cursor *c2 = nullptr;
    ASSERT_EQ(daxkv_cursor_open(s(), nullptr, &c2), 0);
    CursorPtr cp2(c2);
    store_.reset();
    k.struct_size = sizeof k;
    EXPECT_EQ(daxkv_cursor_next(c2, &k), -ESHUTDOWN);
}

TEST_F(Keys, CursorOpenAfterShutdownIsEshutdown) {
    open(StoreSpec(4096, 4));
    ASSERT_EQ(daxkv_shutdown(s()), 0);
    daxkv_cursor *c = reinterpret_cast<daxkv_cursor *>(0x1);
    EXPECT_EQ(daxkv_cursor_open(s(), nullptr, &c), -ESHUTDOWN);
    EXPECT_EQ(c, nullptr);
}

TEST_F(Keys, CursorWalkBesideWritersReportsStableKeysExactlyOnce) {
    open(StoreSpec(512, 2048).set("eviction", "none"));
    // Keys 0..499 stay; 500.. are replaced, added and removed while walking.
    for (int i = 0; i < 500; ++i)
        ASSERT_EQ(put(key_of(i), pattern(i, 64)), 0);
    std::atomic<bool> stop{false};
    std::thread writer([&] {
        for (uint64_t n = 0; !stop.load(); ++n) {
            const std::string k = key_of(500 + n % 700);
            if (n % 3 == 2)
                remove(k);
            else
                put(k, pattern(n, 64), DAXKV_REPLACE);
            if (n % 5 == 0) // replacing a stable key keeps it listed once
                put(key_of(n % 500), pattern(n % 500, 64), DAXKV_REPLACE);
        }
    });
    for (int round = 0; round < 20; ++round) {
        auto keys = walk(s()); // a duplicate fails the test inside walk()
        for (int i = 0; i < 500; ++i)
            ASSERT_EQ(keys.count(key_of(i)), 1u) << "stable key missing: " << key_of(i);
    }
    stop = true;
    writer.join();
}

TEST_F(Keys, SlotOfALeaseAndAReservationAddressTheirBytes) {
    open(StoreSpec(4096, 4));
    ASSERT_EQ(put(key_of(1), pattern(1, 1000)), 0);
    LeasePtr l = lease(key_of(1));
    daxkv_slot_info si;
    si.struct_size = sizeof si;
    ASSERT_EQ(daxkv_lease_slot(l.get(), &si), 0) << daxkv_errmsg();
    EXPECT_EQ(static_cast<const char *>(si.payload_base) + si.offset,
              daxkv_lease_data(l.get()));
    EXPECT_EQ(si.offset, si.slot * 4096);

    daxkv_reservation *r = nullptr;
    ASSERT_EQ(daxkv_reserve(s(), "r", 1, 100, &r), 0);
    ReservationPtr rp(r);
    daxkv_slot_info ri;
    ri.struct_size = sizeof ri;
    ASSERT_EQ(daxkv_reservation_slot(r, &ri), 0) << daxkv_errmsg();
    EXPECT_EQ(static_cast<char *>(ri.payload_base) + ri.offset, daxkv_reservation_data(r));
    EXPECT_EQ(ri.payload_base, si.payload_base);
    EXPECT_NE(ri.slot, si.slot);

    // The generation tells a reused slot from its earlier use.
    const uint64_t slot = ri.slot, gen = ri.generation;
    daxkv_abort(rp.release());
    ASSERT_EQ(daxkv_reserve(s(), "r", 1, 100, &r), 0);
    rp.reset(r);
    ASSERT_EQ(daxkv_reservation_slot(r, &ri), 0);
    ASSERT_EQ(ri.slot, slot) << "the lowest free slot is handed out again";
    EXPECT_NE(ri.generation, gen);

    EXPECT_EQ(daxkv_lease_slot(nullptr, &si), -EINVAL);
    EXPECT_EQ(daxkv_lease_slot(l.get(), nullptr), -EINVAL);
    si.struct_size = 0;
    EXPECT_EQ(daxkv_lease_slot(l.get(), &si), -EINVAL);
    EXPECT_EQ(daxkv_reservation_slot(nullptr, &ri), -EINVAL);
    ri.struct_size = 4;
    EXPECT_EQ(daxkv_reservation_slot(r, &ri), -EINVAL);
}

TEST_F(Keys, DeviceDescribeReportsTheLayoutAndTheUsedEnd) {
    open(StoreSpec(4096, 8));
    daxkv_device_layout d;
    d.struct_size = sizeof d;
    ASSERT_EQ(daxkv_device_describe(s(), path_.c_str(), &d), 0) << daxkv_errmsg();
    EXPECT_EQ(d.slot_bytes, 4096u);
    EXPECT_EQ(d.usable_slots, 8u);
    EXPECT_EQ(d.layout_slots, 8u);
    EXPECT_EQ(d.used_end, 0u);
    EXPECT_EQ(d.state, uint32_t(DAXKV_DEV_ACTIVE));
    EXPECT_EQ(d.device_index, 0);
    EXPECT_GE(d.arena_bytes, d.data_offset + 8 * 4096);
    for (int i = 0; i < 3; ++i)
        ASSERT_EQ(put(key_of(i), pattern(i, 10)), 0);
    ASSERT_EQ(daxkv_device_describe(s(), path_.c_str(), &d), 0);
    EXPECT_EQ(d.used_end, 3u);
    ASSERT_EQ(remove(key_of(2)), 0);
    ASSERT_EQ(daxkv_device_describe(s(), path_.c_str(), &d), 0);
    EXPECT_EQ(d.used_end, 2u);
    LeasePtr l = lease(key_of(1));
    daxkv_slot_info si;
    si.struct_size = sizeof si;
    ASSERT_EQ(daxkv_lease_slot(l.get(), &si), 0);
    EXPECT_EQ(si.payload_base, d.payload_base);
    EXPECT_EQ(si.device_id, d.device_id);

    EXPECT_EQ(daxkv_device_describe(nullptr, path_.c_str(), &d), -EINVAL);
    EXPECT_EQ(daxkv_device_describe(s(), nullptr, &d), -EINVAL);
    EXPECT_EQ(daxkv_device_describe(s(), "", &d), -EINVAL);
    EXPECT_EQ(daxkv_device_describe(s(), path_.c_str(), nullptr), -EINVAL);
    EXPECT_EQ(daxkv_device_describe(s(), "/not/in/the/pool", &d), -ENOENT);
    d.struct_size = 4;
    EXPECT_EQ(daxkv_device_describe(s(), path_.c_str(), &d), -EINVAL);
}

// --- capacity=payload ------------------------------------------------------

class PayloadCapacity : public ::testing::Test {
protected:
    // Open path with capacity=payload and `bytes` of payloads.
    int try_open(uint64_t bytes, std::vector<std::pair<std::string, std::string>> opts = {}) {
        store_.reset();
        daxkv_config *raw = nullptr;
        EXPECT_EQ(daxkv_config_new(&raw), 0);
        ConfigPtr cfg(raw);
        EXPECT_EQ(daxkv_config_set(raw, "slot_bytes", "2048"), 0);
        EXPECT_EQ(daxkv_config_set(raw, "capacity", "payload"), 0);
        EXPECT_EQ(daxkv_config_set(raw, "workers", "1"), 0);
        for (auto &kv : opts)
            EXPECT_EQ(daxkv_config_set(raw, kv.first.c_str(), kv.second.c_str()), 0);
        EXPECT_EQ(daxkv_config_add_device(raw, path_.c_str(), bytes), 0);
        daxkv_store *s = nullptr;
        int rc = daxkv_open(&s, raw);
        store_.reset(s);
        return rc;
    }
    uint64_t slots_total() { return get_stats(store_.get()).slots_total; }

    TempDir dir_;
    std::string path_ = dir_.file("arena");
    StorePtr store_;
};

TEST_F(PayloadCapacity, AFileOfExactlyNSlotsHoldsNSlotsWithTheHeadersOnTop) {
    FILE_ARENA_ONLY();
    write_file(path_, std::string(2 * 2048, '\0'));
    ASSERT_EQ(try_open(2 * 2048, {{"eviction", "none"}}), 0) << daxkv_errmsg();
    EXPECT_EQ(slots_total(), 2u);
    const uint64_t grown = file_size(path_);
    EXPECT_GT(grown, 2u * 2048) << "the slot headers went on top";
    daxkv_device_layout d;
    d.struct_size = sizeof d;
    ASSERT_EQ(daxkv_device_describe(store_.get(), path_.c_str(), &d), 0);
    EXPECT_EQ(d.usable_slots, 2u);
    EXPECT_EQ(d.arena_bytes, d.data_offset + 2 * 2048);
    for (int i = 0; i < 2; ++i)
        ASSERT_EQ(daxkv_put(store_.get(), key_of(i).data(), key_of(i).size(),
                            pattern(i, 2048).data(), 2048, 0),
                  0);
    ASSERT_EQ(daxkv_put(store_.get(), "x", 1, "y", 1, 0), -ENOSPC);
    // A reopen with the same size finds the same layout and its entries.
    ASSERT_EQ(try_open(2 * 2048, {{"eviction", "none"}}), 0) << daxkv_errmsg();
    EXPECT_EQ(slots_total(), 2u);
    EXPECT_EQ(file_size(path_), grown);
    EXPECT_EQ(daxkv_contains(store_.get(), key_of(1).data(), key_of(1).size()), 1);
}

TEST_F(PayloadCapacity, ANewFileIsCreatedWithRoomForTheHeaders) {
    FILE_ARENA_ONLY();
    ASSERT_EQ(try_open(5 * 2048), 0) << daxkv_errmsg();
    EXPECT_EQ(slots_total(), 5u);
    EXPECT_GT(file_size(path_), 5u * 2048);
}

TEST_F(PayloadCapacity, AFileShorterThanThePayloadsIsRefusedAndLeftAlone) {
    FILE_ARENA_ONLY();
    write_file(path_, std::string(4096, '\0'));
    EXPECT_EQ(try_open(3 * 2048), -ENOSPC);
    EXPECT_TRUE(contains_text(daxkv_errmsg(), "6144")) << daxkv_errmsg();
    EXPECT_EQ(file_size(path_), 4096u);
}

TEST_F(PayloadCapacity, AFailedOpenGivesTheFileItsSizeBack) {
    FILE_ARENA_ONLY();
    // Foreign data: the open extends the file, then refuses the arena.
    std::string junk(2 * 2048, 'J');
    write_file(path_, junk);
    EXPECT_EQ(try_open(2 * 2048), DAXKV_E_FOREIGN);
    EXPECT_EQ(file_size(path_), junk.size());
    EXPECT_EQ(read_file(path_), junk);
}

TEST_F(PayloadCapacity, GrowLimitCountsPayloadsAndResizeCountsSlots) {
    FILE_ARENA_ONLY();
    ASSERT_EQ(try_open(2 * 2048, {{"grow_limit", "8192"}, {"hotplug", "1"}}), 0)
        << daxkv_errmsg();
    EXPECT_EQ(slots_total(), 2u);
    daxkv_hotplug_result r;
    r.struct_size = sizeof r;
    ASSERT_EQ(daxkv_device_resize(store_.get(), path_.c_str(), 4 * 2048, DAXKV_MIGRATE, 0, &r),
              0)
        << daxkv_errmsg();
    EXPECT_EQ(slots_total(), 4u);
    EXPECT_EQ(daxkv_device_resize(store_.get(), path_.c_str(), 5 * 2048, DAXKV_MIGRATE, 0, &r),
              -ENOSPC);
    ASSERT_EQ(daxkv_device_resize(store_.get(), path_.c_str(), 2 * 2048, DAXKV_MIGRATE, 0, &r),
              0);
    EXPECT_EQ(slots_total(), 2u);
}

TEST_F(PayloadCapacity, GrowLimitAutoGrowsToTheFileAndAReopenKeepsTheLayout) {
    FILE_ARENA_ONLY();
    // A file of 4 slots opened for 2: it can grow to the 4 its size holds.
    write_file(path_, std::string(4 * 2048, '\0'));
    const std::vector<std::pair<std::string, std::string>> opts = {{"grow_limit", "auto"},
                                                                     {"hotplug", "1"}};
    ASSERT_EQ(try_open(2 * 2048, opts), 0) << daxkv_errmsg();
    EXPECT_EQ(slots_total(), 2u);
    daxkv_hotplug_result r;
    r.struct_size = sizeof r;
    ASSERT_EQ(daxkv_device_resize(store_.get(), path_.c_str(), 4 * 2048, DAXKV_MIGRATE, 0, &r),
              0)
        << daxkv_errmsg();
    EXPECT_EQ(slots_total(), 4u);
    EXPECT_EQ(daxkv_device_resize(store_.get(), path_.c_str(), 5 * 2048, DAXKV_MIGRATE, 0, &r),
              -ENOSPC);
    ASSERT_EQ(daxkv_put(store_.get(), "k", 1, "v", 1, 0), 0);
    // The file has grown past its old size; a reopen with the same request
    // finds the arena's recorded layout (not one sized from the new file).
    ASSERT_EQ(try_open(2 * 2048, opts), 0) << daxkv_errmsg();
    EXPECT_EQ(slots_total(), 4u) << "the recorded usable size is kept";
    EXPECT_EQ(daxkv_contains(store_.get(), "k", 1), 1);
    // An explicit grow_limit replaces auto, and the other way round.
    daxkv_config *raw = nullptr;
    ASSERT_EQ(daxkv_config_new(&raw), 0);
    ConfigPtr cfg(raw);
    EXPECT_EQ(daxkv_config_set(raw, "grow_limit", "auto"), 0);
    EXPECT_EQ(daxkv_config_set(raw, "grow_limit", "1MiB"), 0);
    EXPECT_EQ(daxkv_config_set(raw, "grow_limit", "Auto"), -EINVAL);
}

TEST_F(PayloadCapacity, GrowLimitAutoOpensAnArenaLaidOutForFewerSlotsThanAskedWithAllOfIt) {
    FILE_ARENA_ONLY();
    // An arena of 4 slots holding entries; its file is then extended and
    // the size asked for raised to 64 slots (an LMCache max_dax_size_gb
    // raised to use the larger file). With grow_limit=auto the open failed
    // as "another layout ... open it with its size", which a configuration
    // of payload sizes cannot say. It keeps the arena's layout (4 slots) and
    // its entries, and logs why.
    const std::vector<std::pair<std::string, std::string>> opts = {{"grow_limit", "auto"},
                                                                     {"eviction", "none"}};
    ASSERT_EQ(try_open(4 * 2048, opts), 0) << daxkv_errmsg();
    for (int i = 0; i < 4; ++i)
        ASSERT_EQ(daxkv_put(store_.get(), key_of(i).data(), key_of(i).size(),
                            pattern(i, 2048).data(), 2048, 0),
                  0);
    store_.reset();
    ASSERT_EQ(::truncate(path_.c_str(), static_cast<off_t>(file_size(path_) + 64 * 2048)), 0);
    LogCapture logs;
    ASSERT_EQ(try_open(64 * 2048, opts), 0) << daxkv_errmsg();
    EXPECT_EQ(slots_total(), 4u);
    EXPECT_TRUE(LogCapture::logged("laid out for 4 slots, fewer than the 64 asked for"));
    for (int i = 0; i < 4; ++i) {
        std::vector<uint8_t> out(2048);
        size_t len = 0;
        ASSERT_EQ(daxkv_get(store_.get(), key_of(i).data(), key_of(i).size(), out.data(),
                            out.size(), &len),
                  0);
        EXPECT_EQ(out, pattern(i, 2048));
    }
    // Without grow_limit=auto, an explicit layout still has to match.
    EXPECT_EQ(try_open(64 * 2048, {{"eviction", "none"}}), DAXKV_E_FOREIGN);
    // An arena without entries (durability=none) is laid out anew for the
    // slots asked for, as before.
    store_.reset();
    const std::vector<std::pair<std::string, std::string>> volatile_opts = {
        {"grow_limit", "auto"}, {"eviction", "none"}, {"durability", "none"}};
    ASSERT_EQ(try_open(4 * 2048, volatile_opts), 0) << daxkv_errmsg(); // keeps no index now
    store_.reset();
    ASSERT_EQ(::truncate(path_.c_str(), static_cast<off_t>(file_size(path_) + 64 * 2048)), 0);
    ASSERT_EQ(try_open(64 * 2048, volatile_opts), 0) << daxkv_errmsg();
    EXPECT_EQ(slots_total(), 64u);
}

TEST_F(PayloadCapacity, MemoryDevicesAndBadValues) {
    path_ = "mem:";
    ASSERT_EQ(try_open(3 * 2048), 0) << daxkv_errmsg();
    EXPECT_EQ(slots_total(), 3u);
    EXPECT_EQ(try_open(1000), -EINVAL) << "below one slot";
    daxkv_config *raw = nullptr;
    ASSERT_EQ(daxkv_config_new(&raw), 0);
    ConfigPtr cfg(raw);
    for (const char *bad : {"", "Payload", "payloads", "device", "1"}) {
        EXPECT_EQ(daxkv_config_set(raw, "capacity", bad), -EINVAL) << bad;
        EXPECT_TRUE(contains_text(daxkv_errmsg(), "capacity")) << daxkv_errmsg();
    }
    EXPECT_EQ(daxkv_config_set(raw, "capacity", "arena"), 0);
}

} // namespace
