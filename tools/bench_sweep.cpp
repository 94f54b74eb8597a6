// daxkv bench --sweep and --workload lmcache: store and restore throughput
// over value sizes and worker counts, and an LMCache-shaped long-document
// workload; every figure next to a single-thread memcpy of the same bytes
// measured in the same run. --plot draws the sweep with gnuplot.
#include <algorithm>
#include <cerrno>
#include <chrono>
#include <cstdio>
#include <cstring>
#include <poll.h>
#include <random>
#include <string>
#include <unistd.h>
#include <vector>

#include <nlohmann/json.hpp>

#include "bench_sweep.hpp"
#include "bench_arena.hpp"
#include "bench_util.hpp"
#include "daxkv.h"

namespace daxkv_cli {
namespace {

using Clock = std::chrono::steady_clock;

double since(Clock::time_point t0) {
    return std::chrono::duration<double>(Clock::now() - t0).count();
}

struct BenchError {
    std::string what;
};

[[noreturn]] void fail(const std::string &what, int rc) {
    throw BenchError{what + ": " + daxkv_strerror(rc) + " (" + std::to_string(rc) +
                     "): " + daxkv_errmsg()};
}

std::string default_arena() {
    return access("/dev/shm", W_OK) == 0 ? "/dev/shm/daxkv-bench.arena" : "/tmp/daxkv-bench.arena";
}

// A store on a fresh file arena holding count values of slot bytes.
daxkv_store *open_store(const std::string &path, uint64_t slot, uint64_t count, unsigned workers,
                        const std::string &verify) {
    daxkv_config *cfg = nullptr;
    int rc = daxkv_config_new(&cfg);
    if (rc)
        fail("config", rc);
    uint64_t bytes = count * (slot + 4096) + (8ull << 20);
    bytes = (bytes + (2ull << 20) - 1) / (2ull << 20) * (2ull << 20);
    const std::pair<const char *, std::string> settings[] = {
        {"slot_bytes", std::to_string(slot)},
        {"on_mismatch", "reformat"},
        {"verify", verify},
        {"workers", std::to_string(workers)},
        {"meta_bytes", "0"},
    };
    for (const auto &s : settings)
        if ((rc = daxkv_config_set(cfg, s.first, s.second.c_str()))) {
            daxkv_config_free(cfg);
            fail(std::string("config ") + s.first, rc);
        }
    unlink(path.c_str());
    rc = daxkv_config_add_device(cfg, path.c_str(), bytes);
    daxkv_store *s = nullptr;
    if (!rc)
        rc = daxkv_open(&s, cfg);
    daxkv_config_free(cfg);
    if (rc)
        fail("open", rc);
    return s;
}

// Run op over items as `parts` submitted batches and wait for them all.
int run_async(daxkv_store *s, int op, std::vector<daxkv_item> &items, size_t parts) {
    size_t n = items.size(), per = std::max<size_t>(1, (n + parts - 1) / parts), sent = 0;
    for (size_t off = 0; off < n; off += per, ++sent) {
        int rc = daxkv_submit(s, op, items.data() + off, std::min(per, n - off), 0, off);
        if (rc)
            fail("submit", rc);
    }
    int fd = daxkv_event_fd(s), total = 0;
    daxkv_completion c[16];
    for (size_t got = 0; got < sent;) {
        int k = daxkv_poll(s, c, 16);
        if (k < 0)
            fail("poll", k);
        if (k == 0) {
            struct pollfd p = {fd, POLLIN, 0};
            ::poll(&p, 1, 10000);
        }
        for (int i = 0; i < k; ++i) {
            if (c[i].result < 0)
                fail("async batch", c[i].result);
            total += c[i].result;
        }
        got += static_cast<size_t>(k);
    }
    return total;
}

struct Point {
    uint64_t size, count;
    unsigned workers;
    double memcpy_gbs, store_gbs, restore_gbs, astore_gbs, arestore_gbs;
};

// One value size and worker count: memcpy, store, restore, async store and
// restore of the same count x size bytes, best of rounds.
Point measure(const std::string &arena, uint64_t size, uint64_t count, unsigned workers,
              unsigned rounds, const std::string &verify) {
    Point pt{size, count, workers, 0, 0, 0, 0, 0};
    const uint64_t total = size * count;
    Buffer src(total), dst(total);
    for (uint64_t i = 0; i < count; ++i)
        fill_pattern(src.p + i * size, size, i + 1);
    daxkv_store *s = open_store(arena, size, count, workers, verify);
    std::vector<std::string> keys(count);
    for (uint64_t i = 0; i < count; ++i)
        keys[i] = "sweep/" + std::to_string(i);
    std::vector<daxkv_item> items(count);
    auto set_items = [&](char *base) {
        for (uint64_t i = 0; i < count; ++i) {
            items[i] = daxkv_item{};
            items[i].key = keys[i].data();
            items[i].key_len = keys[i].size();
            items[i].data = base + i * size;
            items[i].len = size;
        }
    };
    auto check = [&] {
        for (uint64_t i = 0; i < count; ++i)
            if (items[i].status != 0 || items[i].len != size ||
                std::memcmp(dst.p + i * size, src.p + i * size, size) != 0)
                throw BenchError{"restored bytes differ at item " + std::to_string(i)};
        std::memset(dst.p, 0, total);
    };
    try {
        double best[5] = {1e30, 1e30, 1e30, 1e30, 1e30};
        set_items(src.p);
        const int warm = daxkv_put_batch(s, items.data(), count, 0);
        if (warm != static_cast<int>(count))
            fail("warm-up put_batch", batch_failure(warm, items));
        for (unsigned r = 0; r < rounds; ++r) {
            auto t0 = Clock::now();
            for (uint64_t i = 0; i < count; ++i)
                std::memcpy(dst.p + i * size, src.p + i * size, size);
            best[0] = std::min(best[0], since(t0));
            std::memset(dst.p, 0, total);
            for (int async = 0; async < 2; ++async) {
                set_items(src.p);
                daxkv_remove_batch(s, items.data(), count, DAXKV_FORCE);
                t0 = Clock::now();
                int rc = async ? run_async(s, DAXKV_OP_PUT, items, 8)
                               : daxkv_put_batch(s, items.data(), count, 0);
                best[1 + 2 * async] = std::min(best[1 + 2 * async], since(t0));
                if (rc != static_cast<int>(count))
                    fail("store", batch_failure(rc, items));
                set_items(dst.p);
                t0 = Clock::now();
                rc = async ? run_async(s, DAXKV_OP_GET, items, 8)
                           : daxkv_get_batch(s, items.data(), count, 0);
                best[2 + 2 * async] = std::min(best[2 + 2 * async], since(t0));
                if (rc != static_cast<int>(count))
                    fail("restore", rc < 0 ? rc : -ENOENT);
                check();
            }
        }
        double gb = static_cast<double>(total) / 1e9;
        pt.memcpy_gbs = gb / best[0];
        pt.store_gbs = gb / best[1];
        pt.restore_gbs = gb / best[2];
        pt.astore_gbs = gb / best[3];
        pt.arestore_gbs = gb / best[4];
    } catch (...) {
        daxkv_close(s);
        unlink(arena.c_str());
        throw;
    }
    daxkv_close(s);
    unlink(arena.c_str());
    return pt;
}

nlohmann::json point_json(const Point &p) {
    return {{"value_bytes", p.size},
            {"count", p.count},
            {"workers", p.workers},
            {"memcpy_gb_per_s", p.memcpy_gbs},
            {"store_gb_per_s", p.store_gbs},
            {"restore_gb_per_s", p.restore_gbs},
            {"async_store_gb_per_s", p.astore_gbs},
            {"async_restore_gb_per_s", p.arestore_gbs},
            {"store_vs_memcpy", p.store_gbs / p.memcpy_gbs},
            {"restore_vs_memcpy", p.restore_gbs / p.memcpy_gbs}};
}

std::string human(uint64_t b) {
    char buf[32];
    if (b >= (1ull << 20))
        std::snprintf(buf, sizeof buf, "%llu MiB", (unsigned long long)(b >> 20));
    else
        std::snprintf(buf, sizeof buf, "%llu KiB", (unsigned long long)(b >> 10));
    return buf;
}

int plot(const std::string &png, const std::vector<Point> &pts, unsigned workers) {
    std::string data = png + ".dat";
    FILE *f = std::fopen(data.c_str(), "w");
    if (!f) {
        errorf("daxkv bench: cannot write %s: %s\n", data.c_str(), strerror(errno));
        return 1;
    }
    std::fprintf(f, "# value_bytes memcpy store restore async_store async_restore (GB/s)\n");
    for (const Point &p : pts)
        if (p.workers == workers)
            std::fprintf(f, "%llu %.3f %.3f %.3f %.3f %.3f\n", (unsigned long long)p.size,
                         p.memcpy_gbs, p.store_gbs, p.restore_gbs, p.astore_gbs, p.arestore_gbs);
    std::fclose(f);
    char host[256] = "this machine";
    gethostname(host, sizeof host - 1);
    long cpus = sysconf(_SC_NPROCESSORS_ONLN);
    std::string script =
        "set terminal pngcairo size 900,560 font ',10'\n"
        "set output '" + png + "'\n"
        "set logscale x 2\n"
        "set format x '%.0b%B'\n"
        "set xlabel 'value size (bytes)'\n"
        "set ylabel 'GB/s'\n"
        "set key top left\n"
        "set grid\n"
        "set title 'libdaxkv store/restore vs memcpy (file arena on tmpfs, " +
        std::to_string(workers) + " workers, " + std::to_string(cpus) + " CPUs)'\n"
        "plot '" + data + "' using 1:2 with linespoints title 'memcpy (1 thread)', "
        "'' using 1:3 with linespoints title 'store (put\\_batch)', "
        "'' using 1:4 with linespoints title 'restore (get\\_batch)', "
        "'' using 1:6 with linespoints title 'restore (async submit)'\n";
    FILE *g = popen("gnuplot", "w");
    if (!g) {
        errorf("daxkv bench: cannot run gnuplot (Debian: gnuplot-nox)\n");
        return 1;
    }
    std::fputs(script.c_str(), g);
    int rc = pclose(g);
    unlink(data.c_str());
    if (rc != 0) {
        errorf("daxkv bench: gnuplot failed (is gnuplot-nox installed?)\n");
        return 1;
    }
    return 0;
}

} // namespace

int cmd_bench_sweep(const Args &a) {
    const uint64_t min_size = a.size("min-size", 4096, 1, 16ull << 30);
    const uint64_t max_size = a.size("max-size", 64ull << 20, 1, 16ull << 30);
    const uint64_t per_point = a.size("bytes", 256ull << 20, 1, 64ull << 30);
    const uint64_t rounds = a.count("rounds", 2, 1, 1000);
    if (max_size < min_size)
        refuse("max-size", a.get("max-size", ""),
               "is below --min-size " + a.get("min-size", "4KiB"));
    if (per_point < min_size)
        refuse("bytes", a.get("bytes", ""), "is below --min-size " + a.get("min-size", "4KiB"));
    std::vector<unsigned> workers;
    if (a.has("workers")) {
        workers.push_back(static_cast<unsigned>(a.count("workers", 0, 1, 256)));
    } else {
        long cpus = std::max(1L, std::min(8L, sysconf(_SC_NPROCESSORS_ONLN)));
        for (unsigned w = 1; w <= static_cast<unsigned>(cpus); w *= 2)
            workers.push_back(w);
        if (workers.back() != static_cast<unsigned>(cpus))
            workers.push_back(static_cast<unsigned>(cpus));
    }
    const std::string arena = a.get("arena", default_arena());
    // Once, before the points: each point then replaces the arena the last left.
    if (const std::string why = make_way_for_bench_arena(arena); !why.empty()) {
        errorf("daxkv bench --sweep: %s\n", why.c_str());
        return kExitFailed;
    }
    const RemovedIfInterrupted interrupted(arena);
    const std::string verify = a.choice("verify", "recover", {"off", "recover", "read"});
    std::vector<Point> pts;
    const bool json = a.has("json");
    if (!json)
        std::printf("daxkv bench --sweep: %s per point, best of %llu, arena %s, verify=%s\n"
                    "  %-9s %3s %7s %9s %9s %6s %9s %6s %9s %9s\n",
                    human(per_point).c_str(), (unsigned long long)rounds, arena.c_str(),
                    verify.c_str(), "value", "wk", "count", "memcpy", "store", "x", "restore",
                    "x", "a-store", "a-restore");
    try {
        for (unsigned w : workers)
            for (uint64_t size = min_size; size <= max_size; size *= 4) {
                uint64_t count = std::max<uint64_t>(4, per_point / size);
                count = std::min<uint64_t>(count, 65536);
                Point p = measure(arena, size, count, w, static_cast<unsigned>(rounds), verify);
                pts.push_back(p);
                if (!json) {
                    std::printf("  %-9s %3u %7llu %9.2f %9.2f %6.2f %9.2f %6.2f %9.2f %9.2f\n",
                                human(size).c_str(), w, (unsigned long long)count, p.memcpy_gbs,
                                p.store_gbs, p.store_gbs / p.memcpy_gbs, p.restore_gbs,
                                p.restore_gbs / p.memcpy_gbs, p.astore_gbs, p.arestore_gbs);
                    std::fflush(stdout);
                }
            }
    } catch (const BenchError &e) {
        errorf("daxkv bench --sweep: %s\n", e.what.c_str());
        return 1;
    }
    if (json) {
        nlohmann::json j = nlohmann::json::array();
        for (const Point &p : pts)
            j.push_back(point_json(p));
        std::printf("%s\n", j.dump(2).c_str());
    } else {
        std::printf("  (GB/s; x: ratio to memcpy of the same bytes in the same run; a-: "
                    "daxkv_submit in 8 batches)\n");
    }
    if (a.has("plot"))
        return plot(a.get("plot", ""), pts, workers.back());
    return 0;
}

namespace {

struct Model {
    const char *name;
    uint64_t kv_bytes_per_token; // K and V, all layers, bf16
};

// layers x KV heads x head dim x 2 (K, V) x 2 bytes (bf16).
const Model kModels[] = {
    {"Llama-3.1-8B", 32ull * 8 * 128 * 2 * 2},  // 128 KiB
    {"Llama-3.1-70B", 80ull * 8 * 128 * 2 * 2}, // 320 KiB
    {"Qwen3-14B", 40ull * 8 * 128 * 2 * 2},     // 160 KiB
    {"Qwen3-8B", 36ull * 8 * 128 * 2 * 2},      // 144 KiB
};

} // namespace

int cmd_bench_lmcache(const Args &a) {
    const uint64_t tokens = a.count("tokens", 4096, 1, 10000000);
    const uint64_t docs = a.count("docs", 2, 1, 100000);
    const uint64_t queries = a.count("queries", 64, 1, 100000000);
    const uint64_t chunk_tokens = a.count("chunk-tokens", 256, 1, 1000000);
    // A document holds whole chunks (a prefix is cached chunk by chunk).
    if (chunk_tokens > tokens)
        refuse("chunk-tokens", std::to_string(chunk_tokens),
               "is more than --tokens (" + std::to_string(tokens) + "): no document holds a chunk");
    uint64_t workers = a.count("workers", 0, 1, 256);
    const std::string verify = a.choice("verify", "recover", {"off", "recover", "read"});
    const std::string model_name = a.get("model", "Llama-3.1-8B");
    const Model *model = nullptr;
    std::string known;
    for (const Model &m : kModels) {
        if (model_name == m.name)
            model = &m;
        known += (known.empty() ? "" : ", ") + std::string(m.name);
    }
    if (!model)
        refuse("model", model_name, "is not one of " + known);
    const uint64_t chunk_bytes = chunk_tokens * model->kv_bytes_per_token;
    const uint64_t chunks_per_doc = (tokens + chunk_tokens - 1) / chunk_tokens;
    const uint64_t chunks = chunks_per_doc * docs;
    if (chunks * chunk_bytes > (32ull << 30))
        throw UsageError{"--docs " + std::to_string(docs) + " of --tokens " +
                         std::to_string(tokens) + " make " + std::to_string(chunks) +
                         " chunks of " + human(chunk_bytes) +
                         ": more than the 32 GiB this benchmark handles"};
    if (!workers)
        workers = static_cast<uint64_t>(std::max(1L, std::min(8L, sysconf(_SC_NPROCESSORS_ONLN))));
    const std::string arena = a.get("arena", default_arena());
    if (const std::string why = make_way_for_bench_arena(arena); !why.empty()) {
        errorf("daxkv bench --workload lmcache: %s\n", why.c_str());
        return kExitFailed;
    }
    const RemovedIfInterrupted interrupted(arena);
    try {
        Buffer src(chunks * chunk_bytes), dst(chunks_per_doc * chunk_bytes);
        for (uint64_t i = 0; i < chunks; ++i)
            fill_pattern(src.p + i * chunk_bytes, chunk_bytes, i + 1);
        daxkv_store *s = open_store(arena, chunk_bytes, chunks, static_cast<unsigned>(workers),
                                    verify);
        std::vector<std::string> keys(chunks);
        for (uint64_t d = 0; d < docs; ++d)
            for (uint64_t c = 0; c < chunks_per_doc; ++c)
                keys[d * chunks_per_doc + c] =
                    model->name + std::string("/doc") + std::to_string(d) + "/chunk" +
                    std::to_string(c);
        // Store every document once.
        std::vector<daxkv_item> items(chunks);
        for (uint64_t i = 0; i < chunks; ++i)
            items[i] = daxkv_item{keys[i].data(), keys[i].size(), src.p + i * chunk_bytes,
                                  chunk_bytes, nullptr, 0, 0};
        auto t0 = Clock::now();
        int rc = daxkv_put_batch(s, items.data(), chunks, 0);
        double t_store = since(t0);
        if (rc != static_cast<int>(chunks))
            fail("store", batch_failure(rc, items));
        // Queries: a document and a prompt length; the cached prefix is
        // looked up (contains_batch, DAXKV_PREFIX) and restored.
        std::mt19937_64 rng(42);
        double t_sync = 0, t_async = 0, t_memcpy = 0, t_lookup = 0;
        uint64_t bytes = 0;
        for (uint64_t q = 0; q < queries; ++q) {
            uint64_t d = rng() % docs, prompt = 1 + rng() % tokens;
            uint64_t want = std::min(chunks_per_doc, prompt / chunk_tokens); // whole chunks only
            if (!want)
                want = 1;
            std::vector<daxkv_item> look(want);
            for (uint64_t c = 0; c < want; ++c)
                look[c] = daxkv_item{keys[d * chunks_per_doc + c].data(),
                                     keys[d * chunks_per_doc + c].size(),
                                     dst.p + c * chunk_bytes, chunk_bytes, nullptr, 0, 0};
            t0 = Clock::now();
            int hits = daxkv_contains_batch(s, look.data(), want, DAXKV_PREFIX);
            t_lookup += since(t0);
            if (hits != static_cast<int>(want))
                fail("prefix lookup", hits < 0 ? hits : -ENOENT);
            for (int mode = 0; mode < 3; ++mode) {
                for (uint64_t c = 0; c < want; ++c)
                    look[c].len = chunk_bytes;
                t0 = Clock::now();
                if (mode == 0) {
                    rc = daxkv_get_batch(s, look.data(), want, DAXKV_PREFIX);
                } else if (mode == 1) {
                    rc = run_async(s, DAXKV_OP_GET, look, 1);
                } else {
                    for (uint64_t c = 0; c < want; ++c)
                        std::memcpy(dst.p + c * chunk_bytes,
                                    src.p + (d * chunks_per_doc + c) * chunk_bytes, chunk_bytes);
                    rc = static_cast<int>(want);
                }
                double t = since(t0);
                (mode == 0 ? t_sync : mode == 1 ? t_async : t_memcpy) += t;
                if (rc != static_cast<int>(want))
                    fail("restore", rc < 0 ? rc : -ENOENT);
                if (mode < 2 && std::memcmp(dst.p, src.p + d * chunks_per_doc * chunk_bytes,
                                            want * chunk_bytes) != 0)
                    throw BenchError{"restored bytes differ"};
            }
            bytes += want * chunk_bytes;
        }
        daxkv_close(s);
        unlink(arena.c_str());
        const double gb = static_cast<double>(bytes) / 1e9;
        const double store_gbs = static_cast<double>(chunks * chunk_bytes) / 1e9 / t_store;
        nlohmann::json j = {{"model", model->name},
                            {"kv_bytes_per_token", model->kv_bytes_per_token},
                            {"chunk_tokens", chunk_tokens},
                            {"chunk_bytes", chunk_bytes},
                            {"documents", docs},
                            {"tokens_per_document", tokens},
                            {"queries", queries},
                            {"workers", workers},
                            {"store_gb_per_s", store_gbs},
                            {"restored_bytes", bytes},
                            {"memcpy_gb_per_s", gb / t_memcpy},
                            {"restore_gb_per_s", gb / t_sync},
                            {"async_restore_gb_per_s", gb / t_async},
                            {"restore_vs_memcpy", t_memcpy / t_sync},
                            {"async_restore_vs_memcpy", t_memcpy / t_async},
                            {"lookup_us_per_query", t_lookup / queries * 1e6}};
        if (a.has("json")) {
            std::printf("%s\n", j.dump(2).c_str());
            return 0;
        }
        std::printf("daxkv bench --workload lmcache: %s (%s of KV per token), %llu documents "
                    "x %llu tokens in %llu-token chunks of %s, %llu workers\n",
                    model->name, human(model->kv_bytes_per_token).c_str(),
                    (unsigned long long)docs, (unsigned long long)tokens,
                    (unsigned long long)chunk_tokens, human(chunk_bytes).c_str(),
                    (unsigned long long)workers);
        std::printf("  store once (put_batch of %llu chunks)        %8.2f GB/s\n",
                    (unsigned long long)chunks, store_gbs);
        std::printf("  %llu queries, prefix lookup + restore of %.2f GB:\n",
                    (unsigned long long)queries, gb);
        std::printf("    %-40s %8.2f GB/s  1.00\n", "memcpy of the same chunks (1 thread)",
                    gb / t_memcpy);
        std::printf("    %-40s %8.2f GB/s  %.2f x memcpy\n", "restore (get_batch, PREFIX)",
                    gb / t_sync, t_memcpy / t_sync);
        std::printf("    %-40s %8.2f GB/s  %.2f x memcpy\n", "restore (daxkv_submit + event fd)",
                    gb / t_async, t_memcpy / t_async);
        std::printf("    %-40s %8.1f us per query\n", "prefix lookup (contains_batch)",
                    t_lookup / queries * 1e6);
    } catch (const BenchError &e) {
        errorf("daxkv bench --workload lmcache: %s\n", e.what.c_str());
        unlink(arena.c_str());
        return 1;
    } catch (const std::bad_alloc &) {
        errorf("daxkv bench --workload lmcache: out of memory for the buffers\n");
        return 1;
    }
    return 0;
}

} // namespace daxkv_cli
