// daxkv bench --reopen and --verify-cost: what durability costs.
//
// --reopen fills a file arena with many small entries, closes it and times
// daxkv_open, which scans every slot header, checks the checksums and
// rebuilds the index; the reference is a memcpy of the header region
// measured in the same run. --verify-cost runs the chunk store/restore and
// small-value gets with verify=off and verify=read in the same run.
#include <algorithm>
#include <cerrno>
#include <chrono>
#include <cinttypes>
#include <cstdio>
#include <cstring>
#include <random>
#include <string>
#include <sys/mman.h>
#include <unistd.h>
#include <vector>

#include <nlohmann/json.hpp>

#include "arena/arena.hpp"
#include "bench_arena.hpp"
#include "bench_util.hpp"
#include "cli.hpp"
#include "daxkv.h"

namespace daxkv_cli {
namespace {

using Clock = std::chrono::steady_clock;

double seconds_since(Clock::time_point t0) {
    return std::chrono::duration<double>(Clock::now() - t0).count();
}

int fail_call(const char *what, int rc) {
    errorf("daxkv bench: %s failed: %s (%d): %s\n", what, daxkv_strerror(rc), rc, daxkv_errmsg());
    return 1;
}

void fill_bytes(char *p, size_t n, uint64_t seed) {
    uint64_t x = seed * 0x9E3779B97F4A7C15ull + 1;
    for (size_t i = 0; i < n; ++i) {
        if (i % 8 == 0) {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
        }
        p[i] = static_cast<char>(x >> (8 * (i % 8)));
    }
}

std::string default_arena(const char *name) {
    return std::string(access("/dev/shm", W_OK) == 0 ? "/dev/shm/" : "/tmp/") + name;
}

// Open a store on one file arena; settings are (key, value) pairs.
int open_store(daxkv_store **out, const std::string &path, uint64_t bytes,
               const std::vector<std::pair<std::string, std::string>> &settings) {
    daxkv_config *cfg = nullptr;
    int rc = daxkv_config_new(&cfg);
    if (rc)
        return rc;
    for (const auto &s : settings)
        if (!s.second.empty() && (rc = daxkv_config_set(cfg, s.first.c_str(), s.second.c_str()))) {
            daxkv_config_free(cfg);
            return rc;
        }
    if ((rc = daxkv_config_add_device(cfg, path.c_str(), bytes))) {
        daxkv_config_free(cfg);
        return rc;
    }
    rc = daxkv_open(out, cfg);
    daxkv_config_free(cfg);
    return rc;
}

} // namespace

int cmd_bench_reopen(const Args &a) {
    const uint64_t count = a.count("count", 1000000, 1, UINT32_MAX);
    const uint64_t slot_bytes = a.size("slot-bytes", 4096, 1, 64ull << 30);
    const uint64_t value_size = a.size("value-size", 64, 1, 64ull << 30);
    const uint64_t rounds = a.count("rounds", 3, 1, 1000);
    if (value_size > slot_bytes)
        refuse("value-size", a.get("value-size", ""),
               "does not fit the slots of --slot-bytes " + a.get("slot-bytes", "4096"));
    if (count > (64ull << 40) / (slot_bytes + daxkv::arena::header_bytes_for(256)))
        throw UsageError{"--count " + std::to_string(count) + " slots of --slot-bytes " +
                         a.get("slot-bytes", "4096") +
                         " are more than the 64 TiB this benchmark handles"};
    const std::string arena = a.get("arena", default_arena("daxkv-reopen.arena"));
    const std::string verify = a.choice("verify", "recover", {"off", "recover", "read"});
    const std::string workers =
        a.has("workers") ? std::to_string(a.count("workers", 0, 1, 256)) : "";
    const bool json = a.has("json");
    // Just enough bytes for count slots (with 256 bytes of metadata space).
    const uint64_t hdr = daxkv::arena::header_bytes_for(256);
    uint64_t bytes = daxkv::arena::kHeaderOffset + count * (hdr + slot_bytes) + (4ull << 20);
    bytes = (bytes + (2ull << 20) - 1) / (2ull << 20) * (2ull << 20);
    const std::vector<std::pair<std::string, std::string>> settings = {
        {"slot_bytes", std::to_string(slot_bytes)},
        {"on_mismatch", "reformat"},
        {"verify", verify},
        {"workers", workers}};

    if (const std::string why = make_way_for_bench_arena(arena); !why.empty()) {
        errorf("daxkv bench --reopen: %s\n", why.c_str());
        return kExitFailed;
    }
    ArenaFiles files(a.has("keep"));
    files.add(arena);
    Progress progress(a, "filling the arena");
    daxkv_store *s = nullptr;
    int rc = open_store(&s, arena, bytes, settings);
    if (rc)
        return fail_call("open", rc);
    // Fill, in batches of 1,000.
    auto t0 = Clock::now();
    const size_t B = 1000;
    std::vector<std::string> keys(B);
    std::vector<char> vals(B * value_size);
    std::vector<daxkv_item> items(B);
    for (uint64_t base = 0; base < count; base += B) {
        progress.update(base, count);
        size_t n = static_cast<size_t>(std::min<uint64_t>(B, count - base));
        for (size_t j = 0; j < n; ++j) {
            keys[j] = "reopen/" + std::to_string(base + j);
            fill_bytes(vals.data() + j * value_size, value_size, base + j + 1);
            items[j] = daxkv_item{keys[j].data(), keys[j].size(), vals.data() + j * value_size,
                                  value_size, nullptr, 0, 0};
        }
        if ((rc = daxkv_put_batch(s, items.data(), n, 0)) != static_cast<int>(n)) {
            for (size_t j = 0; j < n; ++j)
                if (items[j].status)
                    rc = items[j].status;
            daxkv_close(s);
            return fail_call("fill (put_batch)", rc < 0 ? rc : -ENOSPC);
        }
    }
    const double fill_s = seconds_since(t0);
    daxkv_close(s);

    // Reopen rounds: best wall time of daxkv_open, with the library's own
    // figure for the slot-header scan (recovery_usec) within it.
    double best_open = 1e30;
    uint64_t best_scan_usec = 0, recovered = 0, dropped = 0;
    uint64_t slots = 0;
    std::vector<double> opens;
    for (uint64_t r = 0; r < rounds; ++r) {
        progress.step("reopen " + std::to_string(r + 1) + " of " + std::to_string(rounds) +
                          " (recovery scan)",
                      r, rounds);
        t0 = Clock::now();
        rc = open_store(&s, arena, 0, settings);
        double t = seconds_since(t0);
        if (rc)
            return fail_call("reopen", rc);
        struct daxkv_stats st{};
        st.struct_size = sizeof st;
        daxkv_stats(s, &st);
        opens.push_back(t);
        if (t < best_open) {
            best_open = t;
            best_scan_usec = st.recovery_usec;
        }
        recovered = st.recovered_entries;
        dropped = st.recovery_dropped_torn + st.recovery_dropped_corrupt +
                  st.recovery_dropped_stale;
        slots = st.slots_total;
        // Spot-check 1,000 entries byte for byte.
        std::mt19937_64 rng(r + 1);
        std::vector<char> got(value_size), want(value_size);
        for (int k = 0; k < 1000; ++k) {
            uint64_t i = rng() % count;
            std::string key = "reopen/" + std::to_string(i);
            size_t len = 0;
            fill_bytes(want.data(), value_size, i + 1);
            rc = daxkv_get(s, key.data(), key.size(), got.data(), got.size(), &len);
            if (rc != 0 || len != value_size ||
                std::memcmp(got.data(), want.data(), value_size) != 0) {
                errorf("daxkv bench --reopen: entry %s lost or wrong after reopen "
                       "(get: %d, %zu bytes): %s\n",
                       key.c_str(), rc, len, rc ? daxkv_errmsg() : "bytes differ");
                daxkv_close(s);
                return 1;
            }
        }
        daxkv_close(s);
    }
    progress.finish();
    if (recovered != count || dropped != 0) {
        errorf("daxkv bench --reopen: recovered %" PRIu64 " of %" PRIu64
               " entries, dropped %" PRIu64 "\n",
               recovered, count, dropped);
        return 1;
    }
    // Reference: one memcpy of the header region (what the scan reads at
    // least once), from the same file, after the opens warmed it.
    const uint64_t header_region = slots * hdr;
    double memcpy_s = 1e30;
    {
        FILE *f = std::fopen(arena.c_str(), "r");
        void *m = f ? mmap(nullptr, daxkv::arena::kHeaderOffset + header_region, PROT_READ,
                           MAP_SHARED | MAP_POPULATE, fileno(f), 0)
                    : MAP_FAILED;
        if (m != MAP_FAILED) {
            std::vector<char> dst(header_region);
            for (int r = 0; r < 3; ++r) {
                t0 = Clock::now();
                std::memcpy(dst.data(),
                            static_cast<char *>(m) + daxkv::arena::kHeaderOffset,
                            header_region);
                memcpy_s = std::min(memcpy_s, seconds_since(t0));
            }
            munmap(m, daxkv::arena::kHeaderOffset + header_region);
        }
        if (f)
            std::fclose(f);
    }
    if (json) {
        nlohmann::json j = {{"arena", arena},
                            {"arena_bytes", bytes},
                            {"slots", slots},
                            {"entries", count},
                            {"slot_bytes", slot_bytes},
                            {"value_bytes", value_size},
                            {"verify", verify},
                            {"fill_s", fill_s},
                            {"reopen_s", opens},
                            {"best_reopen_s", best_open},
                            {"best_scan_s", best_scan_usec / 1e6},
                            {"header_bytes", header_region},
                            {"memcpy_headers_s", memcpy_s},
                            {"reopen_vs_memcpy_headers", best_open / memcpy_s}};
        std::printf("%s\n", j.dump(2).c_str());
    } else {
        std::printf("daxkv bench --reopen: %" PRIu64 " entries of %" PRIu64 " bytes in %" PRIu64
                    " slots of %" PRIu64 " bytes (%.2f GiB arena) on %s, verify=%s\n",
                    count, value_size, slots, slot_bytes, bytes / 1073741824.0, arena.c_str(),
                    verify.c_str());
        std::printf("  fill: %.2f s (%.0f puts/s)\n", fill_s, count / fill_s);
        std::printf("  reopen (daxkv_open, best of %" PRIu64 "): %.3f s, of which the "
                    "slot-header scan %.3f s; all %" PRIu64 " entries recovered\n",
                    rounds, best_open, best_scan_usec / 1e6, recovered);
        std::printf("  reference: memcpy of the %.0f MiB of slot headers %.3f s; "
                    "reopen = %.1f x that\n",
                    header_region / 1048576.0, memcpy_s, best_open / memcpy_s);
    }
    return 0;
}

int cmd_bench_verify_cost(const Args &a) {
    const uint64_t count = a.count("count", 256, 1, 1000000);
    const uint64_t value_size = a.size("value-size", 4ull << 20, 1, 64ull << 30);
    const uint64_t rounds = a.count("rounds", 3, 1, 1000);
    const uint64_t small_count =
        a.has("no-small") ? 0 : a.count("small-count", 50000, 0, 100000000);
    if (count * value_size > (64ull << 30))
        throw UsageError{"--count " + std::to_string(count) + " chunks of --value-size " +
                         a.get("value-size", "4MiB") +
                         " are more than the 64 GiB this benchmark handles"};
    const std::string arena = a.get("arena", default_arena("daxkv-bench.arena"));
    const std::string workers =
        a.has("workers") ? std::to_string(a.count("workers", 0, 1, 256)) : "";
    // Once, before the runs: each run then replaces the arena the last left.
    if (const std::string why = make_way_for_bench_arena(arena); !why.empty()) {
        errorf("daxkv bench --verify-cost: %s\n", why.c_str());
        return kExitFailed;
    }
    const RemovedIfInterrupted interrupted(arena);
    const uint64_t total = count * value_size;
    uint64_t bytes = count * (value_size + 4096) + (8ull << 20);
    bytes = (bytes + (2ull << 20) - 1) / (2ull << 20) * (2ull << 20);
    std::vector<char> src(total), dst(total);
    for (uint64_t i = 0; i < count; ++i)
        fill_bytes(src.data() + i * value_size, value_size, i + 1);
    std::memset(dst.data(), 0, total);
    double best_memcpy = 1e30;
    for (uint64_t r = 0; r < rounds; ++r) {
        auto t0 = Clock::now();
        std::memcpy(dst.data(), src.data(), total);
        best_memcpy = std::min(best_memcpy, seconds_since(t0));
    }
    std::vector<std::string> keys(count);
    for (uint64_t i = 0; i < count; ++i)
        keys[i] = "bench/chunk/" + std::to_string(i);

    struct Result {
        double store_gbs = 0, restore_gbs = 0, small_get_ops = 0;
    };
    auto run = [&](const char *verify, Result &res) -> int {
        unlink(arena.c_str());
        daxkv_store *s = nullptr;
        int rc = open_store(&s, arena, bytes,
                            {{"slot_bytes", std::to_string(value_size)},
                             {"on_mismatch", "reformat"},
                             {"verify", verify},
                             {"workers", workers}});
        if (rc)
            return fail_call("open", rc);
        std::vector<daxkv_item> items(count);
        auto set_items = [&](char *base) {
            for (uint64_t i = 0; i < count; ++i)
                items[i] = daxkv_item{keys[i].data(), keys[i].size(), base + i * value_size,
                                      value_size, nullptr, 0, 0};
        };
        set_items(src.data());
        if ((rc = daxkv_put_batch(s, items.data(), count, 0)) != static_cast<int>(count)) {
            daxkv_close(s);
            return fail_call("warm-up put_batch", batch_failure(rc, items));
        }
        double best_store = 1e30, best_restore = 1e30;
        for (uint64_t r = 0; r < rounds; ++r) {
            set_items(src.data());
            daxkv_remove_batch(s, items.data(), count, DAXKV_FORCE);
            auto t0 = Clock::now();
            rc = daxkv_put_batch(s, items.data(), count, 0);
            best_store = std::min(best_store, seconds_since(t0));
            if (rc != static_cast<int>(count)) {
                daxkv_close(s);
                return fail_call("put_batch", batch_failure(rc, items));
            }
            set_items(dst.data());
            t0 = Clock::now();
            rc = daxkv_get_batch(s, items.data(), count, 0);
            best_restore = std::min(best_restore, seconds_since(t0));
            if (rc != static_cast<int>(count) || std::memcmp(src.data(), dst.data(), total) != 0) {
                daxkv_close(s);
                errorf("daxkv bench --verify-cost: restore with verify=%s "
                       "returned wrong bytes\n",
                       verify);
                return 1;
            }
            std::memset(dst.data(), 0, total);
        }
        daxkv_close(s);
        res.store_gbs = total / 1e9 / best_store;
        res.restore_gbs = total / 1e9 / best_restore;
        if (!small_count)
            return 0;
        // Small values: 4 KiB gets from one thread.
        unlink(arena.c_str());
        rc = open_store(&s, arena, small_count * (4096 + 1024) + (8ull << 20),
                        {{"slot_bytes", "4096"},
                         {"meta_bytes", "0"},
                         {"on_mismatch", "reformat"},
                         {"verify", verify},
                         {"workers", workers}});
        if (rc)
            return fail_call("open (small values)", rc);
        std::vector<char> val(4096), out(4096);
        fill_bytes(val.data(), val.size(), 7);
        std::vector<std::string> sk(small_count);
        for (uint64_t i = 0; i < small_count; ++i) {
            sk[i] = "small/" + std::to_string(i);
            if ((rc = daxkv_put(s, sk[i].data(), sk[i].size(), val.data(), val.size(), 0))) {
                daxkv_close(s);
                return fail_call("put (small values)", rc);
            }
        }
        double best_get = 1e30;
        for (uint64_t r = 0; r < rounds; ++r) {
            auto t0 = Clock::now();
            uint64_t got = 0;
            size_t n = 0;
            for (uint64_t i = 0; i < small_count; ++i)
                got += daxkv_get(s, sk[i].data(), sk[i].size(), out.data(), out.size(), &n) == 0;
            best_get = std::min(best_get, seconds_since(t0));
            if (got != small_count || std::memcmp(out.data(), val.data(), 4096) != 0) {
                daxkv_close(s);
                errorf("daxkv bench --verify-cost: small-value get failed\n");
                return 1;
            }
        }
        daxkv_close(s);
        res.small_get_ops = small_count / best_get;
        return 0;
    };
    Result off, read;
    int rc = run("off", off);
    if (!rc)
        rc = run("read", read);
    unlink(arena.c_str());
    if (rc)
        return rc;
    const double memcpy_gbs = total / 1e9 / best_memcpy;
    if (a.has("json")) {
        nlohmann::json j = {
            {"chunks", count},
            {"value_bytes", value_size},
            {"rounds", rounds},
            {"memcpy_gb_per_s", memcpy_gbs},
            {"verify_off", {{"store_gb_per_s", off.store_gbs},
                            {"restore_gb_per_s", off.restore_gbs},
                            {"small_get_ops_per_s", off.small_get_ops}}},
            {"verify_read", {{"store_gb_per_s", read.store_gbs},
                             {"restore_gb_per_s", read.restore_gbs},
                             {"small_get_ops_per_s", read.small_get_ops}}},
            {"restore_read_vs_off", read.restore_gbs / off.restore_gbs},
            {"store_read_vs_off", read.store_gbs / off.store_gbs},
            {"small_get_read_vs_off",
             off.small_get_ops > 0 ? read.small_get_ops / off.small_get_ops : 0.0}};
        std::printf("%s\n", j.dump(2).c_str());
        return 0;
    }
    std::printf("daxkv bench --verify-cost: %" PRIu64 " chunks x %.2f MiB on %s, best of %" PRIu64
                " rounds\n",
                count, value_size / 1048576.0, arena.c_str(), rounds);
    std::printf("  %-34s %12s %12s %10s\n", "operation", "verify=off", "verify=read",
                "read/off");
    std::printf("  %-34s %9.2f GB/s %9.2f GB/s %10.2f\n", "store   (daxkv_put_batch)",
                off.store_gbs, read.store_gbs, read.store_gbs / off.store_gbs);
    std::printf("  %-34s %9.2f GB/s %9.2f GB/s %10.2f\n", "restore (daxkv_get_batch)",
                off.restore_gbs, read.restore_gbs, read.restore_gbs / off.restore_gbs);
    if (small_count)
        std::printf("  %-34s %7.2f Mops/s %7.2f Mops/s %10.2f\n", "get (4 KiB, one thread)",
                    off.small_get_ops / 1e6, read.small_get_ops / 1e6,
                    read.small_get_ops / off.small_get_ops);
    std::printf("  reference: memcpy (1 thread, same bytes) %.2f GB/s; restore verify=off %.2f x, "
                "verify=read %.2f x memcpy\n",
                memcpy_gbs, off.restore_gbs / memcpy_gbs, read.restore_gbs / memcpy_gbs);
    return 0;
}

} // namespace daxkv_cli
