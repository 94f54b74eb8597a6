// Long random sequences of hotplug calls (add, remove by migration,
// eviction and drain, grow, shrink, wait for a drain) on a few paths, the
// same path many times over, mixed with puts, replaces and removes, checked
// after every step against a model: each call returns one of the codes its
// documentation allows for the state the model is in, each path is in the
// state the model says (one row per path that is not removed), capacity
// adds up, and every key reads its last acknowledged value or, when an
// eviction deleted it, nothing.
//
// Bad inputs tried here: adding an active path again (same and other size),
// removing, resizing and waiting on a path not in the pool, removing a
// draining device, resizing a draining device, shrinking below the entries
// without force, growing past the layout, a path added and removed 200 times
// in each mode, 3,000 random steps (seed printed; ADV_HOTPLUG_SEED replays).
#include <cinttypes>
#include <map>
#include <set>

#include "common.hpp"

using namespace adv;

namespace {

constexpr uint32_t kPaths = 4;
constexpr uint32_t kKeys = 40;
constexpr uint32_t kSlots = 16; // per device, as opened
constexpr uint64_t kGrowLimit = 32 * kSlot + (64 << 10);

class HotplugModel : public ::testing::Test {
protected:
    void SetUp() override {
        for (uint32_t i = 0; i < kPaths; ++i)
            paths_.push_back(dir_.file("p" + std::to_string(i)));
        ConfigPtr cfg = config({{"hotplug", "1"}, {"eviction", "none"},
                                {"grow_limit", std::to_string(kGrowLimit)}},
                               {{paths_[0], dev_bytes_for(kSlots)}});
        daxkv_store *s = nullptr;
        ASSERT_EQ(daxkv_open(&s, cfg.get()), 0) << daxkv_errmsg();
        store_.reset(s);
        state_[0] = "active";
        size_[0] = dev_bytes_for(kSlots);
    }
    daxkv_store *s() const { return store_.get(); }

    // Keys whose entries lie on the device of path p (lease and look).
    std::set<uint32_t> keys_on(uint32_t p) {
        std::set<uint32_t> out;
        json st = pool_status(s());
        int row = -1;
        for (size_t i = 0; i < st["devices"].size(); ++i)
            if (st["devices"][i]["device_path"] == paths_[p] &&
                st["devices"][i]["state"] != "removed")
                row = static_cast<int>(i);
        if (row < 0)
            return out;
        for (auto &kv : model_) {
            std::string k = key_of(kv.first);
            daxkv_lease *l = nullptr;
            if (daxkv_lease_acquire(s(), k.data(), k.size(), &l) != 0)
                continue;
            const json d = pool_status(s())["devices"][static_cast<size_t>(row)];
            uint64_t b = d["borrowed_slot_count"];
            daxkv_lease_release(l);
            if (b == 1)
                out.insert(kv.first);
        }
        return out;
    }

    // Everything the model says, checked; "" or what differs.
    std::string check() {
        std::string out;
        json st = pool_status(s());
        uint64_t cap = 0;
        uint32_t counted = 0;
        std::map<std::string, int> live_rows;
        for (const json &d : st["devices"]) {
            const std::string state = d["state"];
            if (state == "removed")
                continue;
            live_rows[d["device_path"]]++;
            if (state != "missing") {
                cap += uint64_t(d["max_dax_size_bytes"]);
                ++counted;
            }
        }
        for (uint32_t p = 0; p < kPaths; ++p) {
            const std::string want = state_.count(p) ? state_[p] : "absent";
            int rows = live_rows.count(paths_[p]) ? live_rows[paths_[p]] : 0;
            if (rows > 1)
                out += "path " + std::to_string(p) + " has " + std::to_string(rows) + " rows; ";
            std::string got = "absent";
            for (const json &d : st["devices"])
                if (d["device_path"] == paths_[p] && d["state"] != "removed")
                    got = d["state"];
            if (got != want)
                out += "path " + std::to_string(p) + " is " + got + ", expected " + want + "; ";
        }
        if (uint64_t(st["total_capacity_bytes"]) != cap || st["num_devices"] != counted)
            out += "capacity " + st["total_capacity_bytes"].dump() + " over " +
                   st["num_devices"].dump() + " devices, rows say " + std::to_string(cap) +
                   " over " + std::to_string(counted) + "; ";
        for (uint32_t k = 0; k < kKeys; ++k) {
            auto it = model_.find(k);
            std::string bad = check_key(s(), k, it == model_.end() ? 0 : it->second);
            if (!bad.empty())
                out += bad + "; ";
        }
        if (get_stats(s()).entries != model_.size())
            out += "stats say " + std::to_string(get_stats(s()).entries) + " entries, the model " +
                   std::to_string(model_.size()) + "; ";
        return out;
    }

    // One step; returns "" or what went wrong.
    std::string step(uint64_t &x) {
        const uint64_t pick = splitmix64(x) % 100;
        const uint32_t p = static_cast<uint32_t>(splitmix64(x) % kPaths);
        const std::string &path = paths_[p];
        const bool in_pool = state_.count(p) != 0;
        const std::string st = in_pool ? state_[p] : "";
        daxkv_hotplug_result r = result();
        char what[96];
        int rc;
        auto allowed = [&](std::initializer_list<int> codes) -> std::string {
            for (int c : codes)
                if (rc == c)
                    return "";
            return std::string(what) + " returned " + std::to_string(rc) + " (" + daxkv_errmsg() +
                   ") in state " + (in_pool ? st : "absent");
        };
        if (pick < 40) {
            const uint32_t k = static_cast<uint32_t>(splitmix64(x) % kKeys);
            const uint64_t v = ++version_;
            std::snprintf(what, sizeof what, "replace of key %u", k);
            rc = put_key(s(), k, v, DAXKV_REPLACE);
            if (rc == 0)
                model_[k] = v;
            return allowed({0, -ENOSPC});
        }
        if (pick < 55) {
            const uint32_t k = static_cast<uint32_t>(splitmix64(x) % kKeys);
            std::snprintf(what, sizeof what, "remove of key %u", k);
            std::string key = key_of(k);
            rc = daxkv_remove(s(), key.data(), key.size(), 0);
            const bool had = model_.erase(k) != 0;
            return allowed({had ? 0 : -ENOENT});
        }
        if (pick < 67) {
            std::snprintf(what, sizeof what, "add of path %u", p);
            rc = daxkv_device_add(s(), path.c_str(), dev_bytes_for(kSlots));
            if (rc == 0 && !in_pool) {
                state_[p] = "active";
                size_[p] = dev_bytes_for(kSlots);
            }
            // An active or draining path added again with the size it was
            // added or last resized with: 0; with another: -EBUSY.
            if (in_pool && size_[p] != dev_bytes_for(kSlots))
                return allowed({-EBUSY});
            return allowed({0});
        }
        if (pick < 79) {
            const int mode = 1 + static_cast<int>(splitmix64(x) % 3);
            std::snprintf(what, sizeof what, "remove of path %u (mode %d)", p, mode);
            const std::set<uint32_t> on = mode == DAXKV_EVICT ? keys_on(p) : std::set<uint32_t>();
            rc = daxkv_device_remove(s(), path.c_str(), mode, 0, &r);
            if (!in_pool)
                return allowed({-ENOENT});
            if (rc == 0) {
                if (mode == DAXKV_DRAIN) {
                    state_[p] = "draining";
                } else {
                    state_.erase(p);
                    for (uint32_t k : on)
                        model_.erase(k);
                }
            }
            return mode == DAXKV_DRAIN ? allowed({0}) : allowed({0, -ENOSPC});
        }
        if (pick < 92) {
            const bool grow = splitmix64(x) % 2;
            const int mode = splitmix64(x) % 2 ? DAXKV_MIGRATE : DAXKV_EVICT;
            const uint64_t bytes = grow ? (splitmix64(x) % 3 ? 24 * kSlot : 1ull << 30)
                                        : (4 + splitmix64(x) % 8) * kSlot;
            std::snprintf(what, sizeof what, "resize of path %u to %" PRIu64 " (mode %d)", p,
                          bytes, mode);
            rc = daxkv_device_resize(s(), path.c_str(), bytes, mode, 0, &r);
            if (!in_pool)
                return allowed({-ENOENT});
            if (rc == 0)
                size_[p] = bytes;
            if (bytes > kGrowLimit)
                return allowed({-ENOSPC});
            // A shrink by eviction without force drops no key: -EBUSY when
            // it would; by migration -ENOSPC when there is no room.
            return allowed({0, -ENOSPC, -EBUSY});
        }
        std::snprintf(what, sizeof what, "wait for the drain of path %u", p);
        rc = daxkv_device_wait_drained(s(), path.c_str(), 0);
        if (!in_pool)
            return allowed({-ENOENT});
        if (st != "draining")
            return allowed({-EINVAL});
        return allowed({0, -ETIMEDOUT});
    }

    TempDir dir_;
    std::vector<std::string> paths_;
    StorePtr store_;
    std::map<uint32_t, std::string> state_; // paths in the pool
    std::map<uint32_t, uint64_t> size_;     // their sizes, as added or last resized to
    std::map<uint32_t, uint64_t> model_;    // key -> version
    uint64_t version_ = 0;
};

TEST_F(HotplugModel, OnePathAddedAndRemovedTwoHundredTimesInEachMode) {
    ASSERT_EQ(put_key(s(), 1, 1), 0);
    model_[1] = 1;
    for (int mode : {DAXKV_MIGRATE, DAXKV_EVICT, DAXKV_DRAIN}) {
        for (int i = 0; i < 200; ++i) {
            ASSERT_EQ(daxkv_device_add(s(), paths_[1].c_str(), dev_bytes_for(kSlots)), 0)
                << "cycle " << i << " of mode " << mode << ": " << daxkv_errmsg();
            daxkv_hotplug_result r = result();
            ASSERT_EQ(daxkv_device_remove(s(), paths_[1].c_str(), mode, 0, &r), 0)
                << daxkv_errmsg();
            if (mode == DAXKV_DRAIN) {
                ASSERT_EQ(daxkv_device_wait_drained(s(), paths_[1].c_str(), 0), 0);
                ASSERT_EQ(daxkv_device_remove(s(), paths_[1].c_str(), DAXKV_MIGRATE, 0, &r), 0);
            }
        }
    }
    EXPECT_EQ(check(), "");
    // The pool did not grow a row per cycle.
    EXPECT_LE(pool_status(s())["devices"].size(), 2u);
}

TEST_F(HotplugModel, RandomSequencesAgreeWithTheModel) {
    const uint64_t seed = model_seed("ADV_HOTPLUG_SEED", "hotplug model");
    uint64_t x = seed;
    for (int i = 0; i < 3000; ++i) {
        std::string bad = step(x);
        if (bad.empty())
            bad = check();
        ASSERT_EQ(bad, "") << "step " << i << ", seed " << seed;
    }
}

} // namespace
