// daxkv bench: the project's main job in one command. Stores N chunks into a
// file-backed arena with daxkv_put_batch, restores them with
// daxkv_get_batch, verifies every byte, and compares both with plain memcpy
// of the same bytes measured in the same run.
#include <algorithm>
#include <cerrno>
#include <chrono>
#include <cstdio>
#include <cstring>
#include <string>
#include <sys/mman.h>
#include <unistd.h>
#include <vector>

#include <nlohmann/json.hpp>

#include "bench_async.hpp"
#include "bench_limit.hpp"
#include "bench_sweep.hpp"
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

std::string key_of(const char *prefix, size_t i) { return std::string(prefix) + std::to_string(i); }

// The store's status JSON (null when it cannot be read).
unsigned small_workers_json(const nlohmann::json &small) { return small["workers"].get<unsigned>(); }

nlohmann::json status_of(daxkv_store *s) {
    std::string buf(8192, '\0');
    size_t needed = 0;
    if (daxkv_status_json(s, &buf[0], buf.size(), &needed) == -ENOBUFS) {
        buf.resize(needed);
        if (daxkv_status_json(s, &buf[0], buf.size(), &needed) != 0)
            return nullptr;
    }
    return nlohmann::json::parse(buf.c_str(), nullptr, false);
}

unsigned workers_of(daxkv_store *s) {
    const nlohmann::json st = status_of(s);
    return st.is_object() && st["workers"].is_number_unsigned() ? st["workers"].get<unsigned>()
                                                                 : 1u;
}

} // namespace

int cmd_bench(const Args &a) {
    const uint64_t count = a.count("count", 256, 1, 1000000);
    const uint64_t value_size = a.size("value-size", 4ull << 20, 1, 64ull << 30);
    uint64_t arena_size = a.size("size", 0, 1);
    const uint64_t rounds = a.count("rounds", 3, 1, 1000);
    const uint64_t small_count = a.count("small-count", 50000, 0, 100000000);
    const uint64_t small_size = a.size("small-size", 4096, 1, 1u << 20);
    const uint64_t async_rounds = a.count("async-rounds", 20000, 1, 100000000);
    const std::string verify = a.choice("verify", "recover", {"off", "recover", "read"});
    const std::string durability = a.choice("durability", "process", {"none", "process", "power"});
    const std::string nt_stores = a.choice("nt-stores", "auto", {"auto", "on", "off"});
    const std::string workers =
        a.has("workers") ? std::to_string(a.count("workers", 0, 1, 256)) : "";
    if (count * value_size > (64ull << 30))
        throw UsageError{"--count " + std::to_string(count) + " chunks of --value-size " +
                         a.get("value-size", "4MiB") +
                         " are more than the 64 GiB this benchmark handles"};
    std::string arena = a.get("arena", access("/dev/shm", W_OK) == 0
                                           ? "/dev/shm/daxkv-bench.arena"
                                           : "/tmp/daxkv-bench.arena");
    const uint64_t total = count * value_size;
    if (!arena_size) {
        // Room for every chunk plus slot headers and alignment.
        arena_size = count * (value_size + 4096) + (8ull << 20);
        arena_size = (arena_size + (2ull << 20) - 1) / (2ull << 20) * (2ull << 20);
    }
    const bool json = a.has("json");
    Progress progress(a, "");
    const uint64_t steps = 3 + 3 * rounds + (a.has("no-small") ? 0 : 5);
    uint64_t step = 0;
    auto advance = [&](const char *what) { progress.step(what, ++step, steps); };

    daxkv_config *cfg = nullptr;
    int rc = daxkv_config_new(&cfg);
    if (rc)
        return fail_call("config", rc);
    try {
        rc = set_config(cfg,
                        {
                            {"slot_bytes", nullptr, std::to_string(value_size)},
                            {"on_mismatch", nullptr, "reformat"}, // the bench owns its arena file
                            {"verify", "verify", verify},
                            {"durability", "durability", durability},
                            {"nt_stores", "nt-stores", nt_stores},
                            {"workers", "workers", workers},
                        });
    } catch (...) {
        daxkv_config_free(cfg);
        throw;
    }
    if (rc) {
        daxkv_config_free(cfg);
        return fail_call("configuration", rc);
    }
    if (const std::string why = make_way_for_bench_arena(arena); !why.empty()) {
        daxkv_config_free(cfg);
        errorf("daxkv bench: %s\n", why.c_str());
        return kExitFailed;
    }
    if ((rc = daxkv_config_add_device(cfg, arena.c_str(), arena_size))) {
        daxkv_config_free(cfg);
        return fail_call("add_device", rc);
    }
    ArenaFiles files(a.has("keep"));
    files.add(arena);
    daxkv_store *store = nullptr;
    rc = daxkv_open(&store, cfg);
    daxkv_config_free(cfg);
    if (rc)
        return fail_call("open", rc);
    const StoreHandle owned(store);

    Buffer src(total), dst(total);
    for (uint64_t i = 0; i < count; ++i)
        fill_pattern(src.p + i * value_size, value_size, i + 1);
    advance("preparing chunks");

    std::vector<std::string> keys(count);
    std::vector<daxkv_item> items(count);
    for (uint64_t i = 0; i < count; ++i)
        keys[i] = key_of("bench/chunk/", i);
    auto set_items = [&](char *base) {
        for (uint64_t i = 0; i < count; ++i) {
            items[i] = daxkv_item{};
            items[i].key = keys[i].data();
            items[i].key_len = keys[i].size();
            items[i].data = base + i * value_size;
            items[i].len = value_size;
        }
    };

    // Reference: single-thread memcpy of the same bytes between two
    // pre-faulted buffers.
    double best_memcpy = 1e30;
    for (uint64_t r = 0; r < rounds; ++r) {
        auto t0 = Clock::now();
        for (uint64_t i = 0; i < count; ++i)
            std::memcpy(dst.p + i * value_size, src.p + i * value_size, value_size);
        best_memcpy = std::min(best_memcpy, seconds_since(t0));
        advance("memcpy reference");
    }
    // The machine's limit (bench_limit.hpp): streaming copies of the same
    // bytes by one thread, two threads and as many threads as the store has
    // workers, its fastest loop chosen here and timed once in every round
    // below. Store and restore are compared with the limit at the store's
    // worker count.
    const unsigned workers_n = workers_of(store);
    std::vector<CopyLimit> limits;
    for (unsigned t : {1u, 2u, workers_n})
        if (std::none_of(limits.begin(), limits.end(),
                         [t](const CopyLimit &l) { return l.threads() == t; }))
            limits.emplace_back(dst.p, src.p, total, t);
    const CopyLimit &limit = *std::find_if(limits.begin(), limits.end(), [&](const CopyLimit &l) {
        return l.threads() == workers_n;
    });
    advance("the machine's copy limit");

    // Warm the arena once (first-touch faults of the file pages), then time
    // stores into the warm arena.
    set_items(src.p);
    if ((rc = daxkv_put_batch(store, items.data(), count, 0)) != static_cast<int>(count))
        return fail_call("warm-up put_batch", batch_failure(rc, items));
    advance("warming the arena");
    double best_store = 1e30, best_restore = 1e30;
    uint64_t verified = 0, mismatched = 0;
    for (uint64_t r = 0; r < rounds; ++r) {
        for (CopyLimit &l : limits)
            l.sample();
        // The limit copied the chunks into dst: clear it, so that the
        // restore below is checked on bytes it wrote itself.
        std::memset(dst.p, 0, total);
        set_items(src.p);
        daxkv_remove_batch(store, items.data(), count, DAXKV_FORCE);
        auto t0 = Clock::now();
        rc = daxkv_put_batch(store, items.data(), count, 0);
        double t = seconds_since(t0);
        if (rc != static_cast<int>(count)) {
            return fail_call("put_batch", batch_failure(rc, items));
        }
        best_store = std::min(best_store, t);
        advance("store (put_batch)");

        set_items(dst.p);
        t0 = Clock::now();
        rc = daxkv_get_batch(store, items.data(), count, 0);
        t = seconds_since(t0);
        if (rc != static_cast<int>(count))
            return fail_call("get_batch", rc < 0 ? rc : -ENOENT);
        best_restore = std::min(best_restore, t);
        advance("restore (get_batch)");

        verified = mismatched = 0;
        for (uint64_t i = 0; i < count; ++i) {
            bool ok = items[i].len == value_size &&
                      std::memcmp(dst.p + i * value_size, src.p + i * value_size, value_size) == 0;
            ok ? ++verified : ++mismatched;
        }
        advance("verifying bytes");
    }

    // Small values: per-call cost from one thread.
    nlohmann::json small = nullptr, async = nullptr;
    if (!a.has("no-small") && small_count) {
        daxkv_config *sc = nullptr;
        daxkv_config_new(&sc);
        daxkv_config_set(sc, "slot_bytes", std::to_string(small_size).c_str());
        daxkv_config_set(sc, "meta_bytes", "0");
        if (!workers.empty())
            daxkv_config_set(sc, "workers", workers.c_str());
        daxkv_config_add_device(sc, "mem:", small_count * (small_size + 4096 + 640) + (4ull << 20));
        daxkv_store *ss = nullptr;
        rc = daxkv_open(&ss, sc);
        daxkv_config_free(sc);
        if (rc)
            return fail_call("open (small values)", rc);
        const StoreHandle owned_small(ss);
        std::vector<std::string> sk(small_count);
        std::vector<char> val(small_size), out(small_size);
        fill_pattern(val.data(), val.size(), 7);
        for (uint64_t i = 0; i < small_count; ++i) {
            sk[i] = key_of("small/", i);
            if ((rc = daxkv_put(ss, sk[i].data(), sk[i].size(), val.data(), val.size(), 0)))
                return fail_call("put (small values)", rc);
        }
        advance("small values: put");
        auto t0 = Clock::now();
        uint64_t found = 0;
        for (uint64_t i = 0; i < small_count; ++i)
            found += daxkv_contains(ss, sk[i].data(), sk[i].size()) == 1;
        double t_contains = seconds_since(t0);
        advance("small values: contains");
        t0 = Clock::now();
        size_t n = 0;
        uint64_t got = 0;
        for (uint64_t i = 0; i < small_count; ++i)
            got += daxkv_get(ss, sk[i].data(), sk[i].size(), out.data(), out.size(), &n) == 0;
        double t_get = seconds_since(t0);
        bool small_ok = found == small_count && got == small_count &&
                        std::memcmp(out.data(), val.data(), val.size()) == 0;
        advance("small values: get");
        // Batches of 1,000.
        const size_t B = 1000;
        std::vector<daxkv_item> bi(B);
        std::vector<char> bout(B * small_size);
        double t_cb = 0, t_gb = 0, t_pb = 0;
        uint64_t batched = 0;
        for (uint64_t base = 0; base + B <= small_count; base += B) {
            for (size_t j = 0; j < B; ++j) {
                bi[j] = daxkv_item{};
                bi[j].key = sk[base + j].data();
                bi[j].key_len = sk[base + j].size();
                bi[j].data = bout.data() + j * small_size;
                bi[j].len = small_size;
            }
            auto t1 = Clock::now();
            int hits = daxkv_contains_batch(ss, bi.data(), B, 0);
            t_cb += seconds_since(t1);
            t1 = Clock::now();
            int copied = daxkv_get_batch(ss, bi.data(), B, 0);
            t_gb += seconds_since(t1);
            small_ok = small_ok && hits == static_cast<int>(B) && copied == static_cast<int>(B) &&
                       std::memcmp(bout.data() + (B - 1) * small_size, val.data(), small_size) == 0;
            // Stores of the same keys, in batches of B (removed first, untimed,
            // so that the store holds as much as before).
            daxkv_remove_batch(ss, bi.data(), B, 0);
            for (size_t j = 0; j < B; ++j)
                bi[j].data = val.data();
            t1 = Clock::now();
            int stored = daxkv_put_batch(ss, bi.data(), B, 0);
            t_pb += seconds_since(t1);
            small_ok = small_ok && stored == static_cast<int>(B);
            batched += B;
        }
        // The reference: plain memcpy, one thread, of the same values out of
        // the same slots (found through leases, untimed) into the same
        // buffer, batch by batch as get_batch copies them.
        double t_ref = 0;
        std::vector<daxkv_lease *> leases(B, nullptr);
        for (uint64_t base = 0; base + B <= small_count; base += B) {
            for (size_t j = 0; j < B; ++j)
                if (int lrc = daxkv_lease_acquire(ss, sk[base + j].data(), sk[base + j].size(),
                                                 &leases[j])) {
                    for (daxkv_lease *l : leases)
                        daxkv_lease_release(l);
                    return fail_call("lease (small values)", lrc);
                }
            auto t1 = Clock::now();
            for (size_t j = 0; j < B; ++j)
                std::memcpy(bout.data() + j * small_size, daxkv_lease_data(leases[j]),
                            daxkv_lease_size(leases[j]));
            t_ref += seconds_since(t1);
            small_ok = small_ok &&
                       std::memcmp(bout.data() + (B - 1) * small_size, val.data(), small_size) == 0;
            for (daxkv_lease *&l : leases) {
                daxkv_lease_release(l);
                l = nullptr;
            }
        }
        advance("small values: batches");
        const unsigned small_workers = workers_of(ss);
        // The calling thread works beside the workers (it looks keys up,
        // claims and commits, and copies while it waits), so a batch keeps
        // up to workers + 1 CPUs busy: "per CPU" divides by those.
        const long online = sysconf(_SC_NPROCESSORS_ONLN);
        const unsigned small_cpus = static_cast<unsigned>(
            std::min<long>(small_workers + 1, online > 0 ? online : 1));
        std::string async_error;
        async = bench_async_overhead(ss, sk[0], bout.data(), small_size, 256 * 1024, async_rounds,
                                     &async_error);
        advance("async: submit + completion");
        if (async.is_null()) {
            errorf("daxkv bench: %s: %s\n", async_error.c_str(), daxkv_errmsg());
            return 1;
        }
        if (!small_ok) {
            errorf("daxkv bench: small-value check failed\n");
            return 1;
        }
        small = {{"value_bytes", small_size},
                 {"keys", small_count},
                 {"contains_ops_per_s", small_count / t_contains},
                 {"get_ops_per_s", small_count / t_get},
                 {"contains_batch_keys_per_s", batched ? batched / t_cb : 0.0},
                 {"get_batch_items_per_s", batched ? batched / t_gb : 0.0},
                 {"put_batch_items_per_s", batched ? batched / t_pb : 0.0},
                 {"workers", small_workers},
                 {"get_batch_items_per_s_per_worker",
                  batched ? batched / t_gb / small_workers : 0.0},
                 {"put_batch_items_per_s_per_worker",
                  batched ? batched / t_pb / small_workers : 0.0},
                 {"cpus", small_cpus},
                 {"get_batch_items_per_s_per_cpu", batched ? batched / t_gb / small_cpus : 0.0},
                 {"put_batch_items_per_s_per_cpu", batched ? batched / t_pb / small_cpus : 0.0},
                 {"memcpy_items_per_s", batched ? batched / t_ref : 0.0},
                 {"batch_size", B},
                 {"async_1_item", async}};
    }
    progress.finish();

    const double gb = static_cast<double>(total) / 1e9;
    const double memcpy_gbs = gb / best_memcpy, store_gbs = gb / best_store,
                 restore_gbs = gb / best_restore;
    const double limit_gbs = limit.gb_per_s();
    nlohmann::json limit_json = nlohmann::json::object(), loop_json = nlohmann::json::object();
    for (const CopyLimit &l : limits) {
        const std::string name =
            std::to_string(l.threads()) + (l.threads() == 1 ? "_thread" : "_threads");
        limit_json[name] = l.gb_per_s();
        loop_json[name] = l.loop();
    }
    if (json) {
        nlohmann::json j = {
            {"arena", arena},
            {"chunks", count},
            {"value_bytes", value_size},
            {"total_bytes", total},
            {"workers", workers_n},
            {"verify", verify},
            {"durability", durability},
            {"rounds", rounds},
            {"memcpy_gb_per_s", memcpy_gbs},
            {"store_gb_per_s", store_gbs},
            {"restore_gb_per_s", restore_gbs},
            {"store_vs_memcpy", store_gbs / memcpy_gbs},
            {"restore_vs_memcpy", restore_gbs / memcpy_gbs},
            {"limit_gb_per_s", limit_json},
            {"limit_loop", loop_json},
            {"store_vs_limit", store_gbs / limit_gbs},
            {"restore_vs_limit", restore_gbs / limit_gbs},
            {"verified_chunks", verified},
            {"mismatched_chunks", mismatched},
            {"small_values", small},
        };
        std::printf("%s\n", j.dump(2).c_str());
    } else {
        std::printf("daxkv bench: %llu chunks x %.2f MiB (%.2f GiB) on %s, %s workers, "
                    "verify=%s, durability=%s, best of %llu rounds\n",
                    (unsigned long long)count, value_size / 1048576.0, total / 1073741824.0,
                    arena.c_str(),
                    std::to_string(workers_n).c_str(),
                    verify.c_str(), durability.c_str(),
                    (unsigned long long)rounds);
        std::printf("  %-38s %9s %10s %9s\n", "operation", "GB/s", "x memcpy", "x limit");
        std::printf("  %-38s %9.2f %10.2f\n", "memcpy (1 thread, one call a value)", memcpy_gbs,
                    1.0);
        for (const CopyLimit &l : limits) {
            const std::string what = "limit: streaming copy, " + std::to_string(l.threads()) +
                                     (l.threads() == 1 ? " thread" : " threads");
            std::printf("  %-38s %9.2f %10.2f%s  (%s)\n", what.c_str(), l.gb_per_s(),
                        l.gb_per_s() / memcpy_gbs, l.threads() == workers_n ? "      1.00" : "",
                        l.loop());
        }
        std::printf("  %-38s %9.2f %10.2f %9.2f\n", "store   (daxkv_put_batch)", store_gbs,
                    store_gbs / memcpy_gbs, store_gbs / limit_gbs);
        std::printf("  %-38s %9.2f %10.2f %9.2f\n", "restore (daxkv_get_batch)", restore_gbs,
                    restore_gbs / memcpy_gbs, restore_gbs / limit_gbs);
        std::printf("  verified: %llu/%llu chunks byte-exact\n", (unsigned long long)verified,
                    (unsigned long long)count);
        if (!small.is_null()) {
            std::printf("  small values (%llu bytes, %llu keys, one thread):\n",
                        (unsigned long long)small_size, (unsigned long long)small_count);
            std::printf("    %-32s %8.2f M ops/s\n", "contains",
                        small["contains_ops_per_s"].get<double>() / 1e6);
            std::printf("    %-32s %8.2f M ops/s\n", "get",
                        small["get_ops_per_s"].get<double>() / 1e6);
            std::printf("    %-32s %8.2f M keys/s\n", "contains_batch (1000 per call)",
                        small["contains_batch_keys_per_s"].get<double>() / 1e6);
            const double ref = small["memcpy_items_per_s"].get<double>();
            std::printf("    %-32s %8.2f M items/s\n", "memcpy of the same values",
                        ref / 1e6);
            const unsigned cpus = small["cpus"].get<unsigned>();
            std::printf("    %-32s %8.2f M items/s (%.2f M per worker, %u workers; %.2f M per "
                        "CPU, %u CPUs; %.2f x memcpy)\n",
                        "get_batch (1000 per call)",
                        small["get_batch_items_per_s"].get<double>() / 1e6,
                        small["get_batch_items_per_s_per_worker"].get<double>() / 1e6,
                        small_workers_json(small),
                        small["get_batch_items_per_s_per_cpu"].get<double>() / 1e6, cpus,
                        small["get_batch_items_per_s"].get<double>() / ref);
            std::printf("    %-32s %8.2f M items/s (%.2f M per worker; %.2f M per CPU)\n",
                        "put_batch (1000 per call)",
                        small["put_batch_items_per_s"].get<double>() / 1e6,
                        small["put_batch_items_per_s_per_worker"].get<double>() / 1e6,
                        small["put_batch_items_per_s_per_cpu"].get<double>() / 1e6);
            const auto &as = small["async_1_item"];
            std::printf("  async 1-item get batch, submit to completion (median / p99 of %llu):\n",
                        (unsigned long long)as["rounds"].get<uint64_t>());
            std::printf("    %-32s %8.2f / %.2f us\n", "sync daxkv_get_batch",
                        as["sync_get_batch_us"]["median"].get<double>(),
                        as["sync_get_batch_us"]["p99"].get<double>());
            std::printf("    %-32s %8.2f / %.2f us  (overhead %.2f us)\n",
                        "submit, daxkv_poll + sched_yield",
                        as["async_spin_poll_us"]["median"].get<double>(),
                        as["async_spin_poll_us"]["p99"].get<double>(),
                        as["overhead_spin_poll_us"].get<double>());
            std::printf("    %-32s %8.2f / %.2f us  (overhead %.2f us)\n",
                        "submit, poll(2) on event fd",
                        as["async_eventfd_us"]["median"].get<double>(),
                        as["async_eventfd_us"]["p99"].get<double>(),
                        as["overhead_eventfd_us"].get<double>());
            std::printf("    %-32s %8.2f / %.2f us  (overhead %.2f us)\n",
                        "via dispatcher, poll(2) on fd",
                        as["async_dispatcher_eventfd_us"]["median"].get<double>(),
                        as["async_dispatcher_eventfd_us"]["p99"].get<double>(),
                        as["overhead_dispatcher_eventfd_us"].get<double>());
        }
    }
    return mismatched ? 1 : 0;
}

namespace {

// The benchmarks of `daxkv bench`: the chunk benchmark, or the one a mode
// option selects. Each lists the options it reads; any other option is
// refused rather than silently ignored.
struct BenchMode {
    const char *option;      // the option that selects it; nullptr: the chunk benchmark
    const char *what;        // for help and errors
    std::vector<const char *> takes;
    int (*run)(const Args &);
};

int run_workload(const Args &a) {
    a.choice("workload", "", {"lmcache"});
    return cmd_bench_lmcache(a);
}

const std::vector<BenchMode> &bench_modes() {
    static const std::vector<BenchMode> m = {
        {nullptr, "store and restore chunks (the default)",
         {"arena", "size", "count", "value-size", "workers", "verify", "durability", "nt-stores",
          "rounds", "small-count", "small-size", "async-rounds", "no-small", "keep"},
         cmd_bench},
        {"gpu", "GPU <-> DAX transfers",
         {"arena", "size", "count", "value-size", "workers", "verify", "rounds", "keep",
          "staging-bytes", "register-chunk"},
         cmd_bench_gpu},
        {"migrate", "migration between two devices, and latency beside it",
         {"arena", "count", "value-size", "workers", "verify", "durability", "rounds", "keep"},
         cmd_bench_migrate},
        {"reopen", "the recovery scan of daxkv_open",
         {"arena", "count", "slot-bytes", "value-size", "workers", "verify", "rounds", "keep"},
         cmd_bench_reopen},
        {"verify-cost", "verify=off against verify=read",
         {"arena", "count", "value-size", "workers", "rounds", "small-count", "no-small"},
         cmd_bench_verify_cost},
        {"sweep", "value sizes x worker counts",
         {"arena", "min-size", "max-size", "bytes", "workers", "verify", "rounds", "plot"},
         cmd_bench_sweep},
        {"workload", "an LMCache-shaped long-document workload (--workload lmcache)",
         {"arena", "model", "tokens", "docs", "chunk-tokens", "queries", "workers", "verify"},
         run_workload},
    };
    return m;
}

// Options every benchmark takes.
bool taken_by_all(const std::string &o) { return o == "json" || o == "no-progress"; }

int run_bench(const Args &a) {
    const BenchMode *mode = &bench_modes()[0];
    for (const BenchMode &m : bench_modes()) {
        if (!m.option || !a.has(m.option))
            continue;
        if (mode->option)
            throw UsageError{std::string("--") + mode->option + " and --" + m.option +
                             " select different benchmarks; give one"};
        mode = &m;
    }
    for (const auto &kv : a.options()) {
        const std::string &o = kv.first;
        if (taken_by_all(o) || (mode->option && o == mode->option))
            continue;
        bool taken = false;
        for (const char *t : mode->takes)
            taken = taken || o == t;
        if (taken)
            continue;
        std::string others;
        for (const BenchMode &m : bench_modes())
            for (const char *t : m.takes)
                if (o == t)
                    others += (others.empty() ? "" : ", ") +
                              (m.option ? "--" + std::string(m.option)
                                        : std::string("the chunk benchmark"));
        throw UsageError{"--" + o + (kv.second.empty() ? std::string() : ": '" + kv.second + "'") +
                         " does not apply to " +
                         (mode->option ? "--" + std::string(mode->option)
                                       : std::string("the chunk benchmark")) +
                         (others.empty() ? std::string() : " (it goes with " + others + ")")};
    }
    return mode->run(a);
}

std::string bench_epilog() {
    std::string e = "benchmarks (one at a time; each takes --json, --no-progress and):\n";
    for (const BenchMode &m : bench_modes()) {
        e += "  ";
        e += m.option ? std::string("--") + m.option : std::string("(none)");
        e += ": ";
        e += m.what;
        e += "\n     ";
        size_t col = 5;
        for (const char *t : m.takes) {
            std::string w = std::string(" --") + t;
            if (col + w.size() > 78) {
                e += "\n     ";
                col = 5;
            }
            e += w;
            col += w.size();
        }
        e += "\n";
    }
    e += "\nSizes take the units of daxkv_config_set (4096, 64KiB, 4MiB, 2GiB, 1TiB).\n"
         "exit status: 0 done and every byte verified, 1 failed (or a mismatch),\n"
         "2 usage error.";
    return e;
}

} // namespace

const CommandSpec &bench_command() {
    static const std::string epilog = bench_epilog();
    static const CommandSpec c = {
        "bench",
        "[options]",
        "store and restore KV chunks, verify them, compare with memcpy",
        "Store N chunks into a file-backed arena, restore them, verify every byte,\n"
        "and compare with plain memcpy of the same bytes in the same run; or, with\n"
        "one of the mode options below, another benchmark.",
        {
            {"arena", 'a', "PATH",
             "arena file (default in /dev/shm or /tmp); --migrate: a directory"},
            {"size", 's', "BYTES", "arena size (default: fits the chunks with headroom)"},
            {"count", 'n', "N", "chunks (default 256; --reopen 1000000 entries)"},
            {"value-size", 0, "BYTES", "chunk size (default 4MiB; --migrate 1MiB, --reopen 64)"},
            {"workers", 'w', "N", "copy workers, 1..256 (default: CPUs, at most 8)"},
            {"verify", 0, "MODE", "off | recover | read (default recover)"},
            {"durability", 0, "MODE", "none | process | power (default process)"},
            {"nt-stores", 0, "MODE", "auto | on | off (default auto)"},
            {"rounds", 'r', "N", "timed rounds, best kept (default 3; --gpu 5, --sweep 2)"},
            {"small-count", 0, "N", "keys for the small-value test (default 50000; 0 skips it)"},
            {"small-size", 0, "BYTES", "their value size, 1 B..1 MiB (default 4KiB)"},
            {"async-rounds", 0, "N", "1-item async batches timed (default 20000)"},
            {"no-small", 0, nullptr, "skip the small-value and async tests"},
            {"json", 'j', nullptr, "machine-readable output (and no progress display)"},
            {"no-progress", 0, nullptr, "no progress display (none is drawn off a terminal)"},
            {"keep", 'k', nullptr, "keep the arena file"},
            {"gpu", 0, nullptr, "mode: GPU <-> DAX through daxkv_put/get_batch_cuda"},
            {"staging-bytes", 0, "BYTES", "--gpu: the cuda_staging_bytes key"},
            {"register-chunk", 0, "BYTES", "--gpu: the cuda_register_chunk key"},
            {"migrate", 0, nullptr,
             "mode: daxkv_device_remove with DAXKV_MIGRATE, GB/s and latency"},
            {"reopen", 0, nullptr, "mode: fill an arena with small entries, time daxkv_open"},
            {"slot-bytes", 0, "BYTES", "--reopen: slot size (default 4096)"},
            {"verify-cost", 0, nullptr, "mode: the same work with verify=off and verify=read"},
            {"sweep", 0, nullptr, "mode: value sizes x4 apart and worker counts 1, 2, 4 .."},
            {"min-size", 0, "BYTES", "--sweep: smallest value size (default 4KiB)"},
            {"max-size", 0, "BYTES", "--sweep: largest value size (default 64MiB)"},
            {"bytes", 0, "BYTES", "--sweep: bytes per point (default 256MiB)"},
            {"plot", 0, "FILE.png", "--sweep: draw GB/s against value size (gnuplot-nox)"},
            {"workload", 0, "NAME", "mode: a workload; lmcache (long-document QA)"},
            {"model", 0, "NAME",
             "--workload: the model whose KV bytes a token has (default Llama-3.1-8B)"},
            {"tokens", 0, "N", "--workload: tokens per document (default 4096)"},
            {"docs", 0, "N", "--workload: documents (default 2)"},
            {"chunk-tokens", 0, "N", "--workload: tokens per chunk (default 256)"},
            {"queries", 0, "N", "--workload: queries (default 64)"},
        },
        epilog.c_str(),
        nullptr,
        0,
        0,
        run_bench,
    };
    return c;
}

} // namespace daxkv_cli
