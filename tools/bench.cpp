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
#include "bench_sweep.hpp"
#include "bench_util.hpp"
#include "cli.hpp"
#include "daxkv.h"

namespace daxkv_cli {
namespace {

using Clock = std::chrono::steady_clock;

double seconds_since(Clock::time_point t0) {
    return std::chrono::duration<double>(Clock::now() - t0).count();
}

struct Progress {
    bool on;
    int total, done = 0;
    Progress(bool enabled, int steps) : on(enabled), total(steps) {}
    void step(const char *what) {
        if (!on)
            return;
        ++done;
        int width = 30, fill = done * width / total;
        std::fprintf(stderr, "\r  [%.*s%*s] %-28s", fill, "##############################",
                     width - fill, "", what);
        std::fflush(stderr);
    }
    void finish() {
        if (on)
            std::fprintf(stderr, "\r%80s\r", "");
    }
};

int fail_call(const char *what, int rc) {
    std::fprintf(stderr, "daxkv bench: %s failed: %s (%d): %s\n", what, daxkv_strerror(rc), rc,
                 daxkv_errmsg());
    return 1;
}

std::string key_of(const char *prefix, size_t i) { return std::string(prefix) + std::to_string(i); }

} // namespace

void bench_usage(FILE *f) {
    std::fprintf(f,
                 "usage: daxkv bench [options]\n"
                 "\n"
                 "Store N chunks into a file-backed arena, restore them, verify every byte,\n"
                 "and compare with plain memcpy of the same bytes in the same run.\n"
                 "\n"
                 "  --arena PATH        arena file (default /dev/shm/daxkv-bench.arena, or /tmp)\n"
                 "  --size BYTES        arena size (default: fits the chunks with headroom)\n"
                 "  --count N           chunks (default 256)\n"
                 "  --value-size BYTES  chunk size (default 4MiB)\n"
                 "  --workers N         copy workers (default: CPUs, at most 8)\n"
                 "  --verify MODE       off | recover | read (default recover)\n"
                 "  --durability MODE   none | process | power (default process)\n"
                 "  --nt-stores MODE    auto | on | off (default auto)\n"
                 "  --rounds N          timed rounds, best kept (default 3)\n"
                 "  --small-count N     keys for the small-value test (default 50000)\n"
                 "  --small-size BYTES  their value size, 1 B..1 MiB (default 4KiB)\n"
                 "  --async-rounds N    1-item async batches timed (default 20000)\n"
                 "  --no-small          skip the small-value and async tests\n"
                 "  --json              machine-readable output\n"
                 "  --no-progress       no progress bar\n"
                 "  --keep              keep the arena file\n"
                 "  --verify-cost       store/restore and 4 KiB gets with verify=off and\n"
                 "                      verify=read in the same run, and their ratio\n"
                 "  --reopen            fill a file arena with --count small entries (default\n"
                 "                      1000000 of 64 bytes in --slot-bytes 4096 slots), close\n"
                 "                      it and time daxkv_open (the recovery scan)\n"
                 "  --slot-bytes BYTES  slot size for --reopen (default 4096)\n"
                 "\n"
                 "daxkv bench --gpu [--arena --size --count --value-size --workers --verify\n"
                 "                   --rounds --json --keep] [--staging-bytes B] [--register-chunk B]\n"
                 "\n"
                 "GPU <-> DAX: daxkv_put_batch_cuda and daxkv_get_batch_cuda on the staged\n"
                 "path, then with the arena registered, against cudaMemcpy between pinned host\n"
                 "memory and the GPU of the same size in the same run (defaults: 64 x 4 MiB,\n"
                 "best of 5). Without a CUDA runtime or GPU it says so and exits with 1.\n"
                 "\n"
                 "daxkv bench --migrate [--count N] [--value-size BYTES] [--rounds N]\n"
                 "      [--arena DIR] [--workers N] [--json] [--keep]\n"
                 "  Migrate a device's chunks to another device (daxkv_device_remove with\n"
                 "  DAXKV_MIGRATE): GB/s against memcpy, and get/put latency while a\n"
                 "  migration runs against the same probe with none (defaults: 256 x 1MiB;\n"
                 "  --arena names the directory of the two arena files).\n"
                 "\n"
                 "daxkv bench --sweep [--min-size 4KiB] [--max-size 64MiB] [--bytes 256MiB]\n"
                 "                    [--workers N] [--rounds 2] [--plot FILE.png] [--json]\n"
                 "  store, restore (sync and daxkv_submit) and memcpy over value sizes x4 apart\n"
                 "  and worker counts 1, 2, 4.. CPUs (at most 8); --plot draws GB/s against\n"
                 "  value size with gnuplot (Debian: gnuplot-nox)\n"
                 "\n"
                 "daxkv bench --workload lmcache [--model Llama-3.1-8B] [--tokens 4096]\n"
                 "                    [--docs 2] [--chunk-tokens 256] [--queries 64] [--json]\n"
                 "  long-document QA: documents stored once in chunks of the model's KV bytes,\n"
                 "  restored repeatedly by prefix lookups; models: Llama-3.1-8B (128 KiB/token),\n"
                 "  Llama-3.1-70B, Qwen3-14B, Qwen3-8B\n");
}

int cmd_bench(const Args &a) {
    if (a.has("reopen"))
        return cmd_bench_reopen(a);
    if (a.has("verify-cost"))
        return cmd_bench_verify_cost(a);
    if (a.has("sweep"))
        return cmd_bench_sweep(a);
    if (a.has("workload")) {
        if (a.get("workload", "") == "lmcache")
            return cmd_bench_lmcache(a);
        std::fprintf(stderr, "daxkv bench: unknown workload '%s' (known: lmcache)\n",
                     a.get("workload", "").c_str());
        return 2;
    }
    if (a.has("plot")) {
        std::fprintf(stderr, "daxkv bench: --plot goes with --sweep\n");
        return 2;
    }
    uint64_t count = 256, value_size = 4ull << 20, arena_size = 0, rounds = 3, small_count = 50000,
             small_size = 4096, async_rounds = 20000;
    if ((a.has("count") && (!parse_size(a.get("count", ""), count) || count == 0)) ||
        (a.has("value-size") &&
         (!parse_size(a.get("value-size", ""), value_size) || value_size == 0)) ||
        (a.has("size") && !parse_size(a.get("size", ""), arena_size)) ||
        (a.has("rounds") && (!parse_size(a.get("rounds", ""), rounds) || rounds == 0)) ||
        (a.has("small-count") && !parse_size(a.get("small-count", ""), small_count)) ||
        (a.has("small-size") && (!parse_size(a.get("small-size", ""), small_size) ||
                                 small_size == 0 || small_size > (1u << 20))) ||
        (a.has("async-rounds") &&
         (!parse_size(a.get("async-rounds", ""), async_rounds) || async_rounds == 0))) {
        std::fprintf(stderr, "daxkv bench: bad number in options\n");
        bench_usage(stderr);
        return 2;
    }
    if (count > 1000000 || count * value_size > (64ull << 30)) {
        std::fprintf(stderr, "daxkv bench: %llu x %llu bytes is more than this bench handles\n",
                     (unsigned long long)count, (unsigned long long)value_size);
        return 2;
    }
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
    Progress progress(!json && !a.has("no-progress") && isatty(2),
                      static_cast<int>(2 + 3 * rounds + (a.has("no-small") ? 0 : 5)));

    daxkv_config *cfg = nullptr;
    int rc = daxkv_config_new(&cfg);
    if (rc)
        return fail_call("config", rc);
    std::string slot = std::to_string(value_size);
    const std::pair<const char *, std::string> settings[] = {
        {"slot_bytes", slot},
        {"on_mismatch", "reformat"}, // the bench owns its arena file
        {"verify", a.get("verify", "recover")},
        {"durability", a.get("durability", "process")},
        {"nt_stores", a.get("nt-stores", "auto")},
        {"workers", a.get("workers", "")},
    };
    for (const auto &s : settings) {
        if (s.second.empty())
            continue;
        if ((rc = daxkv_config_set(cfg, s.first, s.second.c_str()))) {
            daxkv_config_free(cfg);
            return fail_call("configuration", rc);
        }
    }
    unlink(arena.c_str());
    if ((rc = daxkv_config_add_device(cfg, arena.c_str(), arena_size))) {
        daxkv_config_free(cfg);
        return fail_call("add_device", rc);
    }
    daxkv_store *store = nullptr;
    rc = daxkv_open(&store, cfg);
    daxkv_config_free(cfg);
    if (rc)
        return fail_call("open", rc);

    Buffer src(total), dst(total);
    for (uint64_t i = 0; i < count; ++i)
        fill_pattern(src.p + i * value_size, value_size, i + 1);
    progress.step("preparing chunks");

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
        progress.step("memcpy reference");
    }
    std::memset(dst.p, 0, total);

    // Warm the arena once (first-touch faults of the file pages), then time
    // stores into the warm arena.
    set_items(src.p);
    if ((rc = daxkv_put_batch(store, items.data(), count, 0)) != static_cast<int>(count))
        return fail_call("warm-up put_batch", rc < 0 ? rc : items[0].status);
    progress.step("warming the arena");
    double best_store = 1e30, best_restore = 1e30;
    uint64_t verified = 0, mismatched = 0;
    for (uint64_t r = 0; r < rounds; ++r) {
        set_items(src.p);
        daxkv_remove_batch(store, items.data(), count, DAXKV_FORCE);
        auto t0 = Clock::now();
        rc = daxkv_put_batch(store, items.data(), count, 0);
        double t = seconds_since(t0);
        if (rc != static_cast<int>(count)) {
            for (auto &it : items)
                if (it.status)
                    return fail_call("put_batch", it.status);
            return fail_call("put_batch", rc);
        }
        best_store = std::min(best_store, t);
        progress.step("store (put_batch)");

        set_items(dst.p);
        t0 = Clock::now();
        rc = daxkv_get_batch(store, items.data(), count, 0);
        t = seconds_since(t0);
        if (rc != static_cast<int>(count))
            return fail_call("get_batch", rc < 0 ? rc : -ENOENT);
        best_restore = std::min(best_restore, t);
        progress.step("restore (get_batch)");

        verified = mismatched = 0;
        for (uint64_t i = 0; i < count; ++i) {
            bool ok = items[i].len == value_size &&
                      std::memcmp(dst.p + i * value_size, src.p + i * value_size, value_size) == 0;
            ok ? ++verified : ++mismatched;
        }
        std::memset(dst.p, 0, total);
        progress.step("verifying bytes");
    }

    // Small values: per-call cost from one thread.
    nlohmann::json small = nullptr, async = nullptr;
    if (!a.has("no-small") && small_count) {
        daxkv_config *sc = nullptr;
        daxkv_config_new(&sc);
        daxkv_config_set(sc, "slot_bytes", std::to_string(small_size).c_str());
        daxkv_config_set(sc, "meta_bytes", "0");
        daxkv_config_add_device(sc, "mem:", small_count * (small_size + 4096 + 640) + (4ull << 20));
        daxkv_store *ss = nullptr;
        rc = daxkv_open(&ss, sc);
        daxkv_config_free(sc);
        if (rc)
            return fail_call("open (small values)", rc);
        std::vector<std::string> sk(small_count);
        std::vector<char> val(small_size), out(small_size);
        fill_pattern(val.data(), val.size(), 7);
        for (uint64_t i = 0; i < small_count; ++i) {
            sk[i] = key_of("small/", i);
            if ((rc = daxkv_put(ss, sk[i].data(), sk[i].size(), val.data(), val.size(), 0)))
                return fail_call("put (small values)", rc);
        }
        progress.step("small values: put");
        auto t0 = Clock::now();
        uint64_t found = 0;
        for (uint64_t i = 0; i < small_count; ++i)
            found += daxkv_contains(ss, sk[i].data(), sk[i].size()) == 1;
        double t_contains = seconds_since(t0);
        progress.step("small values: contains");
        t0 = Clock::now();
        size_t n = 0;
        uint64_t got = 0;
        for (uint64_t i = 0; i < small_count; ++i)
            got += daxkv_get(ss, sk[i].data(), sk[i].size(), out.data(), out.size(), &n) == 0;
        double t_get = seconds_since(t0);
        bool small_ok = found == small_count && got == small_count &&
                        std::memcmp(out.data(), val.data(), val.size()) == 0;
        progress.step("small values: get");
        // Batches of 1,000.
        const size_t B = 1000;
        std::vector<daxkv_item> bi(B);
        std::vector<char> bout(B * small_size);
        double t_cb = 0, t_gb = 0;
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
            batched += B;
        }
        progress.step("small values: batches");
        std::string async_error;
        async = bench_async_overhead(ss, sk[0], bout.data(), small_size, 256 * 1024, async_rounds,
                                     &async_error);
        progress.step("async: submit + completion");
        daxkv_close(ss);
        if (async.is_null()) {
            std::fprintf(stderr, "daxkv bench: %s: %s\n", async_error.c_str(), daxkv_errmsg());
            return 1;
        }
        if (!small_ok) {
            std::fprintf(stderr, "daxkv bench: small-value check failed\n");
            return 1;
        }
        small = {{"value_bytes", small_size},
                 {"keys", small_count},
                 {"contains_ops_per_s", small_count / t_contains},
                 {"get_ops_per_s", small_count / t_get},
                 {"contains_batch_keys_per_s", batched ? batched / t_cb : 0.0},
                 {"get_batch_items_per_s", batched ? batched / t_gb : 0.0},
                 {"batch_size", B},
                 {"async_1_item", async}};
    }
    progress.finish();

    char status[8192];
    size_t needed = 0;
    daxkv_status_json(store, status, sizeof status, &needed);
    nlohmann::json st = nlohmann::json::parse(status, nullptr, false);
    daxkv_close(store);
    if (!a.has("keep"))
        unlink(arena.c_str());

    const double gb = static_cast<double>(total) / 1e9;
    const double memcpy_gbs = gb / best_memcpy, store_gbs = gb / best_store,
                 restore_gbs = gb / best_restore;
    if (json) {
        nlohmann::json j = {
            {"arena", arena},
            {"chunks", count},
            {"value_bytes", value_size},
            {"total_bytes", total},
            {"workers", st.is_object() ? st["workers"] : nlohmann::json(nullptr)},
            {"verify", a.get("verify", "recover")},
            {"durability", a.get("durability", "process")},
            {"rounds", rounds},
            {"memcpy_gb_per_s", memcpy_gbs},
            {"store_gb_per_s", store_gbs},
            {"restore_gb_per_s", restore_gbs},
            {"store_vs_memcpy", store_gbs / memcpy_gbs},
            {"restore_vs_memcpy", restore_gbs / memcpy_gbs},
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
                    st.is_object() ? std::to_string(st["workers"].get<int>()).c_str() : "?",
                    a.get("verify", "recover").c_str(), a.get("durability", "process").c_str(),
                    (unsigned long long)rounds);
        std::printf("  %-34s %9s %10s\n", "operation", "GB/s", "x memcpy");
        std::printf("  %-34s %9.2f %10.2f\n", "memcpy (1 thread, same bytes)", memcpy_gbs, 1.0);
        std::printf("  %-34s %9.2f %10.2f\n", "store   (daxkv_put_batch)", store_gbs,
                    store_gbs / memcpy_gbs);
        std::printf("  %-34s %9.2f %10.2f\n", "restore (daxkv_get_batch)", restore_gbs,
                    restore_gbs / memcpy_gbs);
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
            std::printf("    %-32s %8.2f M items/s\n", "get_batch (1000 per call)",
                        small["get_batch_items_per_s"].get<double>() / 1e6);
            const auto &as = small["async_1_item"];
            std::printf("  async 1-item get batch, submit to completion (median / p99 of %llu):\n",
                        (unsigned long long)as["rounds"].get<uint64_t>());
            std::printf("    %-32s %8.2f / %.2f us\n", "sync daxkv_get_batch",
                        as["sync_get_batch_us"]["median"].get<double>(),
                        as["sync_get_batch_us"]["p99"].get<double>());
            std::printf("    %-32s %8.2f / %.2f us  (overhead %.2f us)\n",
                        "submit, daxkv_poll + sched_yield", as["async_spin_poll_us"]["median"].get<double>(),
                        as["async_spin_poll_us"]["p99"].get<double>(),
                        as["overhead_spin_poll_us"].get<double>());
            std::printf("    %-32s %8.2f / %.2f us  (overhead %.2f us)\n",
                        "submit, poll(2) on event fd", as["async_eventfd_us"]["median"].get<double>(),
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

} // namespace daxkv_cli
