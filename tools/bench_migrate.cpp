// daxkv bench --migrate: how fast daxkv_device_remove(DAXKV_MIGRATE) moves a
// device's entries to another device, against memcpy of the same bytes in
// the same run, and what a migration does to the latency of gets and puts
// that run beside it (against the same probe with no migration).
#include <algorithm>
#include <atomic>
#include <chrono>
#include <cstdio>
#include <cstring>
#include <cerrno>
#include <string>
#include <sys/mman.h>
#include <sys/stat.h>
#include <thread>
#include <unistd.h>
#include <vector>

#include <nlohmann/json.hpp>

#include "bench_arena.hpp"
#include "bench_util.hpp"
#include "cli.hpp"
#include "daxkv.h"

namespace daxkv_cli {
namespace {

using Clock = std::chrono::steady_clock;

double secs(Clock::time_point a, Clock::time_point b) {
    return std::chrono::duration<double>(b - a).count();
}

struct Region {
    char *p = nullptr;
    size_t n = 0;
    explicit Region(size_t bytes) : n(bytes) {
        void *m = mmap(nullptr, n, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
        if (m == MAP_FAILED)
            throw std::bad_alloc();
        p = static_cast<char *>(m);
        for (size_t i = 0; i < n; i += 4096)
            p[i] = static_cast<char>(i >> 12); // fault in, and not all zero
    }
    ~Region() { munmap(p, n); }
    Region(const Region &) = delete;
    Region &operator=(const Region &) = delete;
};

int fail(const char *what, int rc) {
    errorf("daxkv bench --migrate: %s failed: %s (%d): %s\n", what, daxkv_strerror(rc), rc,
           daxkv_errmsg());
    return 1;
}

struct Lat {
    std::vector<double> us;
    double pct(double p) {
        if (us.empty())
            return 0;
        std::sort(us.begin(), us.end());
        return us[std::min(us.size() - 1, static_cast<size_t>(p * (us.size() - 1)))];
    }
};

// Gets of the benchmark's chunks and puts (then removes) of probe keys,
// one after the other, until stop.
void probe(daxkv_store *s, const std::vector<std::string> &keys, size_t value_size,
           const char *src, std::atomic<bool> &stop, Lat &get_lat, Lat &put_lat, int *errors) {
    std::vector<char> buf(value_size);
    size_t i = 0;
    while (!stop.load()) {
        const std::string &k = keys[(i * 7919) % keys.size()];
        size_t len = 0;
        auto t0 = Clock::now();
        int rc = daxkv_get(s, k.data(), k.size(), buf.data(), buf.size(), &len);
        auto t1 = Clock::now();
        if (rc == 0)
            get_lat.us.push_back(secs(t0, t1) * 1e6);
        else
            ++*errors;
        std::string pk = "bench/probe/" + std::to_string(i);
        t0 = Clock::now();
        rc = daxkv_put(s, pk.data(), pk.size(), src, value_size, 0);
        t1 = Clock::now();
        if (rc == 0)
            put_lat.us.push_back(secs(t0, t1) * 1e6);
        else
            ++*errors;
        daxkv_remove(s, pk.data(), pk.size(), DAXKV_FORCE);
        ++i;
    }
}

} // namespace

int cmd_bench_migrate(const Args &a) {
    const uint64_t count = a.count("count", 256, 1, 100000);
    const uint64_t value_size = a.size("value-size", 1ull << 20, 1, 16ull << 30);
    const uint64_t rounds = a.count("rounds", 3, 1, 1000);
    const std::string verify = a.choice("verify", "recover", {"off", "recover", "read"});
    const std::string durability = a.choice("durability", "process", {"none", "process", "power"});
    const std::string workers =
        a.has("workers") ? std::to_string(a.count("workers", 0, 1, 256)) : "";
    if (count * value_size > (16ull << 30))
        throw UsageError{"--count " + std::to_string(count) + " chunks of --value-size " +
                         a.get("value-size", "1MiB") +
                         " are more than the 16 GiB this benchmark handles"};
    const std::string dir = a.get("arena", access("/dev/shm", W_OK) == 0 ? "/dev/shm" : "/tmp");
    // With hotplug=1 the store opens without its devices, so a directory
    // that is not there showed only as puts finding no device.
    struct stat st;
    errno = 0;
    if (stat(dir.c_str(), &st) != 0 || !S_ISDIR(st.st_mode)) {
        errorf("daxkv bench --migrate: --arena %s: %s (it names the directory for the two "
               "arena files)\n",
               dir.c_str(), errno ? std::strerror(errno) : "not a directory");
        return 1;
    }
    const std::string dev[2] = {dir + "/daxkv-bench-mig0.arena", dir + "/daxkv-bench-mig1.arena"};
    const uint64_t total = count * value_size;
    // Room for every chunk, the probe's key, headers and alignment.
    uint64_t dev_bytes = (count + 8) * (value_size + 4096) + (8ull << 20);
    dev_bytes = (dev_bytes + (2ull << 20) - 1) / (2ull << 20) * (2ull << 20);
    const bool json = a.has("json");
    Progress progress(a, "");
    const uint64_t steps = 4 + 2 * rounds;
    uint64_t step = 0;
    auto advance = [&](const std::string &what) { progress.step(what, step++, steps); };
    advance("memcpy reference");

    Region src(total), dst(total);
    for (uint64_t i = 0; i < total; i += 8) {
        uint64_t x = (i + 1) * 0x9E3779B97F4A7C15ull;
        std::memcpy(src.p + i, &x, 8);
    }
    // Reference: single-thread memcpy of the same bytes.
    double memcpy_s = 1e30;
    for (uint64_t r = 0; r < rounds; ++r) {
        auto t0 = Clock::now();
        std::memcpy(dst.p, src.p, total);
        memcpy_s = std::min(memcpy_s, secs(t0, Clock::now()));
    }

    daxkv_config *cfg = nullptr;
    int rc = daxkv_config_new(&cfg);
    if (rc)
        return fail("config", rc);
    try {
        rc = set_config(cfg, {
                                 {"slot_bytes", nullptr, std::to_string(value_size)},
                                 {"on_mismatch", nullptr, "reformat"},
                                 {"hotplug", nullptr, "1"},
                                 {"eviction", nullptr, "none"},
                                 {"verify", "verify", verify},
                                 {"workers", "workers", workers},
                                 {"durability", "durability", durability},
                             });
    } catch (...) {
        daxkv_config_free(cfg);
        throw;
    }
    if (rc) {
        daxkv_config_free(cfg);
        return fail("configuration", rc);
    }
    for (const std::string &d : dev)
        if (const std::string why = make_way_for_bench_arena(d); !why.empty()) {
            daxkv_config_free(cfg);
            errorf("daxkv bench --migrate: %s\n", why.c_str());
            return kExitFailed;
        }
    ArenaFiles files(a.has("keep"));
    for (const std::string &d : dev)
        files.add(d);
    rc = daxkv_config_add_device(cfg, dev[0].c_str(), dev_bytes);
    daxkv_store *s = nullptr;
    if (!rc)
        rc = daxkv_open(&s, cfg);
    daxkv_config_free(cfg);
    if (rc)
        return fail("open", rc);
    StoreHandle owned(s);

    std::vector<std::string> keys(count);
    std::vector<daxkv_item> items(count);
    for (uint64_t i = 0; i < count; ++i) {
        keys[i] = "bench/mig/" + std::to_string(i);
        items[i] = daxkv_item{};
        items[i].key = keys[i].data();
        items[i].key_len = keys[i].size();
        items[i].data = src.p + i * value_size;
        items[i].len = value_size;
    }
    advance("storing the chunks");
    rc = daxkv_put_batch(s, items.data(), count, 0);
    if (rc != static_cast<int>(count))
        return fail("put_batch", rc < 0 ? rc : -ENOSPC);
    if ((rc = daxkv_device_add(s, dev[1].c_str(), dev_bytes)))
        return fail("device_add", rc);

    advance("latency with no migration");
    // Latency with no migration.
    Lat get_idle, put_idle, get_mig, put_mig;
    int errors = 0;
    {
        std::atomic<bool> stop{false};
        std::thread t(probe, s, std::cref(keys), value_size, src.p, std::ref(stop),
                      std::ref(get_idle), std::ref(put_idle), &errors);
        std::this_thread::sleep_for(std::chrono::milliseconds(300));
        stop = true;
        t.join();
    }
    // Migrations back and forth; the probe runs during each.
    double mig_s = 1e30, mig_loaded_s = 1e30;
    uint64_t moved = 0;
    int from = 0;
    for (uint64_t r = 0; r < 2 * rounds; ++r) {
        const bool loaded = r % 2 == 1;
        advance(std::string("migration ") + std::to_string(r + 1) + " of " +
                std::to_string(2 * rounds) + (loaded ? ", probe running" : ""));
        std::atomic<bool> stop{false};
        std::thread t;
        if (loaded)
            t = std::thread(probe, s, std::cref(keys), value_size, src.p, std::ref(stop),
                            std::ref(get_mig), std::ref(put_mig), &errors);
        daxkv_hotplug_result res;
        std::memset(&res, 0, sizeof res);
        res.struct_size = sizeof res;
        auto t0 = Clock::now();
        rc = daxkv_device_remove(s, dev[from].c_str(), DAXKV_MIGRATE, 0, &res);
        double took = secs(t0, Clock::now());
        stop = true;
        if (t.joinable())
            t.join();
        if (rc)
            return fail("device_remove", rc);
        moved = res.moved_bytes;
        if (res.moved_keys != count) {
            errorf("daxkv bench --migrate: moved %llu of %llu keys\n",
                   (unsigned long long)res.moved_keys, (unsigned long long)count);
        }
        (loaded ? mig_loaded_s : mig_s) = std::min(loaded ? mig_loaded_s : mig_s, took);
        if ((rc = daxkv_device_add(s, dev[from].c_str(), dev_bytes)))
            return fail("device_add", rc);
        from = 1 - from;
    }
    advance("verifying every chunk");
    // Every chunk reads back with its bytes.
    for (uint64_t i = 0; i < count; ++i) {
        items[i].data = dst.p + i * value_size;
        items[i].len = value_size;
    }
    std::memset(dst.p, 0, total);
    rc = daxkv_get_batch(s, items.data(), count, 0);
    bool ok = rc == static_cast<int>(count) && std::memcmp(src.p, dst.p, total) == 0;
    owned.reset();
    progress.finish();
    const double gbs_memcpy = total / memcpy_s / 1e9;
    const double gbs_mig = moved / mig_s / 1e9, gbs_mig_loaded = moved / mig_loaded_s / 1e9;
    double g50i = get_idle.pct(0.5), g99i = get_idle.pct(0.99), p50i = put_idle.pct(0.5),
           p99i = put_idle.pct(0.99), g50m = get_mig.pct(0.5), g99m = get_mig.pct(0.99),
           p50m = put_mig.pct(0.5), p99m = put_mig.pct(0.99);
    if (json) {
        nlohmann::json j = {
            {"count", count},
            {"value_size", value_size},
            {"bytes", total},
            {"memcpy_gbps", gbs_memcpy},
            {"migrate_gbps", gbs_mig},
            {"migrate_under_load_gbps", gbs_mig_loaded},
            {"migrate_vs_memcpy", gbs_mig / gbs_memcpy},
            {"get_us", {{"idle_p50", g50i}, {"idle_p99", g99i}, {"migrating_p50", g50m},
                        {"migrating_p99", g99m}}},
            {"put_us", {{"idle_p50", p50i}, {"idle_p99", p99i}, {"migrating_p50", p50m},
                        {"migrating_p99", p99m}}},
            {"probe_ops_during_migration", get_mig.us.size() + put_mig.us.size()},
            {"probe_errors", errors},
            {"verified", ok},
        };
        std::printf("%s\n", j.dump(2).c_str());
    } else {
        std::printf("daxkv bench --migrate: %llu chunks x %.2f MiB (%.2f GiB) per migration\n",
                    (unsigned long long)count, value_size / 1048576.0, total / 1073741824.0);
        std::printf("  memcpy (1 thread)        %7.2f GB/s\n", gbs_memcpy);
        std::printf("  migrate                  %7.2f GB/s  (%.2fx memcpy)\n", gbs_mig,
                    gbs_mig / gbs_memcpy);
        std::printf("  migrate, probe running   %7.2f GB/s  (%.2fx memcpy)\n", gbs_mig_loaded,
                    gbs_mig_loaded / gbs_memcpy);
        std::printf("  get latency  idle p50 %8.1f us  p99 %8.1f us | migrating p50 %8.1f us  "
                    "p99 %8.1f us (%zu gets)\n",
                    g50i, g99i, g50m, g99m, get_mig.us.size());
        std::printf("  put latency  idle p50 %8.1f us  p99 %8.1f us | migrating p50 %8.1f us  "
                    "p99 %8.1f us (%zu puts)\n",
                    p50i, p99i, p50m, p99m, put_mig.us.size());
        std::printf("  probe errors %d; every chunk verified after the migrations: %s\n", errors,
                    ok ? "yes" : "NO");
    }
    return ok && errors == 0 ? 0 : 1;
}

} // namespace daxkv_cli
