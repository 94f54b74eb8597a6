// daxkv stats / daxkv status: look at a running store from outside it.
//
// A store publishes its statistics and status every stats_interval
// milliseconds into a page other processes read
// (daxkv_stats_peek(3)); these commands read that page, found by the path of
// any device the store has open. Nothing is opened, locked or changed on the
// device, so they work while the store runs (info and check refuse an arena
// in use). --watch repeats the report; for stats it then shows the rates
// since the previous report.
#include <cctype>
#include <cerrno>
#include <cinttypes>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <ctime>
#include <chrono>
#include <functional>
#include <string>
#include <thread>
#include <vector>

#include <nlohmann/json.hpp>

#include "cli.hpp"
#include "daxkv.h"

namespace daxkv_cli {
namespace {

using ordered_json = nlohmann::ordered_json;
// The struct shares its name with the function daxkv_stats(), as stat(2).
using Stats = struct daxkv_stats;

// A peek that failed: the library's message (it names the path and why: no
// store has it open, the store died, its stats_interval is 0).
struct PeekError {
    int rc;
    std::string what;
};

[[noreturn]] void peek_failed(int rc) { throw PeekError{rc, daxkv_errmsg()}; }

Stats peek_stats(const std::string &path) {
    Stats s{};
    s.struct_size = sizeof s;
    if (int rc = daxkv_stats_peek(path.c_str(), &s))
        peek_failed(rc);
    return s;
}

// A two-call text of the library (daxkv_status_peek, ..._prometheus_peek);
// the text may grow between the calls, so the size is asked again.
std::string peek_text(int (*fn)(const char *, char *, size_t, size_t *), const std::string &path) {
    std::string buf(4096, '\0');
    for (;;) {
        size_t needed = 0;
        int rc = fn(path.c_str(), &buf[0], buf.size(), &needed);
        if (rc == -ENOBUFS && needed > buf.size()) {
            buf.resize(needed);
            continue;
        }
        if (rc < 0)
            peek_failed(rc);
        buf.resize(needed ? needed - 1 : 0);
        return buf;
    }
}

// --- Reading the watch options ----------------------------------------------

struct Watch {
    bool on = false;
    double interval_s = 1.0;
    uint64_t count = 0; // 0: until interrupted
};

Watch watch_options(const Args &a) {
    Watch w;
    w.on = a.has("watch") || a.has("interval") || a.has("count");
    if (a.has("interval")) {
        const std::string v = a.get("interval", "");
        char *end = nullptr;
        errno = 0;
        double s = std::strtod(v.c_str(), &end);
        // A decimal number: strtod also takes leading blanks, a sign and
        // hexadecimal, which no other number of the tool does.
        const bool decimal = !v.empty() && (std::isdigit(static_cast<unsigned char>(v[0])) ||
                                            v[0] == '.') &&
                             v.find_first_of("xX") == std::string::npos;
        if (!decimal || *end || errno || !std::isfinite(s) || s < 0.1 || s > 3600)
            refuse("interval", v, "is not a number of seconds in 0.1..3600");
        w.interval_s = s;
    }
    w.count = a.count("count", 0, 1, 1000000000);
    return w;
}

// Run report() once, or every interval until count reports were made. A
// store that goes away during a watch ends it (exit 1, with the reason).
int repeat(const Args &a, const Watch &w, const char *cmd,
           const std::function<void(bool first)> &report) {
    try {
        for (uint64_t n = 0;; ++n) {
            report(n == 0);
            // Output that cannot be written ends the watch: it would
            // otherwise run until interrupted, showing nothing (main()
            // reports the write error).
            if (std::fflush(stdout) != 0 || std::ferror(stdout))
                return kExitFailed;
            if (!w.on || (w.count && n + 1 >= w.count))
                return kExitOk;
            std::this_thread::sleep_for(std::chrono::duration<double>(w.interval_s));
        }
    } catch (const PeekError &e) {
        errorf("daxkv %s: %s\n", cmd, e.what.c_str());
        if (a.has("json"))
            print_error_json(&a.positional[0], e.rc, e.what, w.on);
        return kExitFailed;
    }
}

// --- daxkv stats --------------------------------------------------------------

const struct {
    const char *name;
    daxkv_histogram Stats::*member;
    uint64_t unit;
} kHistograms[] = {
    {"put_latency", &Stats::put_latency, DAXKV_HIST_NS_UNIT},
    {"get_latency", &Stats::get_latency, DAXKV_HIST_NS_UNIT},
    {"batch_latency", &Stats::batch_latency, DAXKV_HIST_NS_UNIT},
    {"item_bytes", &Stats::item_bytes, DAXKV_HIST_BYTES_UNIT},
};

// Every counter and gauge of daxkv_stats, in the order of the header.
#define DAXKV_STATS_FIELDS(X)                                                                      \
    X(devices) X(slot_bytes) X(meta_bytes) X(capacity_bytes) X(slots_total) X(slots_used)          \
        X(slots_free) X(entries) X(entries_pinned) X(slots_inflight) X(slots_pending_free)         \
            X(leases_active) X(slots_leased) X(hits) X(misses) X(puts) X(puts_existed)             \
                X(puts_failed) X(removes) X(evictions) X(bytes_written) X(bytes_read)              \
                    X(verify_failures) X(copy_faults) X(batches) X(async_submitted)                \
                        X(async_completed) X(async_cancelled) X(recovered_entries)                 \
                            X(recovery_dropped_torn) X(recovery_dropped_corrupt)                   \
                                X(recovery_dropped_stale) X(recovery_usec)

ordered_json stats_json(const Stats &s) {
    ordered_json j;
#define DAXKV_FIELD(f) j[#f] = s.f;
    DAXKV_STATS_FIELDS(DAXKV_FIELD)
#undef DAXKV_FIELD
    for (const auto &h : kHistograms) {
        const daxkv_histogram &v = s.*(h.member);
        ordered_json buckets = ordered_json::array();
        for (uint64_t b : v.bucket)
            buckets.push_back(b);
        j[h.name] = {{"count", v.count}, {"sum", v.sum}, {"unit", h.unit}, {"buckets", buckets}};
    }
    return j;
}

// The upper bound of the bucket holding the q-quantile (the histogram keeps
// no finer detail); 0 for an empty histogram, UINT64_MAX for the open last
// bucket.
uint64_t quantile_bound(const daxkv_histogram &h, uint64_t unit, double q) {
    if (!h.count)
        return 0;
    const uint64_t want = static_cast<uint64_t>(std::ceil(q * static_cast<double>(h.count)));
    uint64_t seen = 0;
    for (int i = 0; i < DAXKV_HIST_BUCKETS - 1; ++i) {
        seen += h.bucket[i];
        if (seen >= want)
            return unit << i;
    }
    return UINT64_MAX;
}

std::string human_ns(double ns) {
    char b[32];
    if (ns < 1e3)
        std::snprintf(b, sizeof b, "%.0f ns", ns);
    else if (ns < 1e6)
        std::snprintf(b, sizeof b, "%.1f us", ns / 1e3);
    else if (ns < 1e9)
        std::snprintf(b, sizeof b, "%.1f ms", ns / 1e6);
    else
        std::snprintf(b, sizeof b, "%.2f s", ns / 1e9);
    return b;
}

std::string human_bytes(double n) {
    const char *units[] = {"B", "KiB", "MiB", "GiB", "TiB", "PiB"};
    int u = 0;
    while (n >= 1024 && u < 5) {
        n /= 1024;
        ++u;
    }
    char b[32];
    std::snprintf(b, sizeof b, u ? "%.1f %s" : "%.0f %s", n, units[u]);
    return b;
}

std::string bound_text(uint64_t bound, uint64_t unit) {
    if (bound == UINT64_MAX)
        return "> " + (unit == DAXKV_HIST_NS_UNIT
                           ? human_ns(static_cast<double>(unit << (DAXKV_HIST_BUCKETS - 2)))
                           : human_bytes(static_cast<double>(unit << (DAXKV_HIST_BUCKETS - 2))));
    return "<= " + (unit == DAXKV_HIST_NS_UNIT ? human_ns(static_cast<double>(bound))
                                               : human_bytes(static_cast<double>(bound)));
}

// Text from a statistics page, for a terminal. The page is anyone's to
// write (its directory is shared): control characters in it (C0, DEL, and
// C1 as UTF-8 encodes them) would be terminal commands, so they are shown
// as \xNN. Other bytes, UTF-8 text included, go out as they are.
std::string terminal_text(const std::string &s) {
    std::string out;
    out.reserve(s.size());
    char hex[8];
    for (size_t i = 0; i < s.size(); ++i) {
        const auto c = static_cast<unsigned char>(s[i]);
        const bool c1 = c == 0xc2 && i + 1 < s.size() &&
                        static_cast<unsigned char>(s[i + 1]) >= 0x80 &&
                        static_cast<unsigned char>(s[i + 1]) <= 0x9f;
        if (c < 0x20 || c == 0x7f || c1) {
            std::snprintf(hex, sizeof hex, "\\x%02x", c);
            out += hex;
            if (c1) {
                std::snprintf(hex, sizeof hex, "\\x%02x", static_cast<unsigned char>(s[++i]));
                out += hex;
            }
            continue;
        }
        out += s[i];
    }
    return out;
}

std::string publisher_line(const std::string &path) {
    const auto status = nlohmann::json::parse(peek_text(daxkv_status_peek, path), nullptr, false);
    if (!status.is_object() || !status.contains("publisher"))
        return "store at " + path;
    const auto &p = status["publisher"];
    const double age_s =
        (static_cast<double>(std::time(nullptr)) * 1e9 -
         static_cast<double>(p.value("published_unix_ns", uint64_t(0)))) / 1e9;
    char b[256];
    std::snprintf(b, sizeof b, "store %s, pid %" PRIu64 ", published %.1f s ago",
                  terminal_text(p.value("store_id", std::string("?"))).c_str(),
                  p.value("pid", uint64_t(0)),
                  age_s < 0 ? 0.0 : age_s);
    return b;
}

void print_stats(const std::string &path, const Stats &s, const Stats *prev,
                 double seconds) {
    std::printf("%s\n", publisher_line(path).c_str());
    std::printf("  slots      %" PRIu64 " total (%s each), %" PRIu64 " used, %" PRIu64
                " free, %" PRIu64 " in flight, %" PRIu64 " waiting for leases, %" PRIu64
                " leased\n",
                s.slots_total, human_bytes(static_cast<double>(s.slot_bytes)).c_str(),
                s.slots_used, s.slots_free, s.slots_inflight, s.slots_pending_free,
                s.slots_leased);
    std::printf("  entries    %" PRIu64 " (%" PRIu64 " pinned), %" PRIu64
                " leases, %u device%s\n",
                s.entries, s.entries_pinned, s.leases_active, s.devices,
                s.devices == 1 ? "" : "s");
    const uint64_t lookups = s.hits + s.misses;
    std::printf("  gets       %" PRIu64 " hits, %" PRIu64 " misses", s.hits, s.misses);
    if (lookups)
        std::printf(" (%.1f%% hits)", 100.0 * static_cast<double>(s.hits) / lookups);
    std::printf("\n  puts       %" PRIu64 " stored, %" PRIu64 " existed, %" PRIu64
                " failed; %" PRIu64 " removed, %" PRIu64 " evicted\n",
                s.puts, s.puts_existed, s.puts_failed, s.removes, s.evictions);
    std::printf("  bytes      %s written, %s read\n",
                human_bytes(static_cast<double>(s.bytes_written)).c_str(),
                human_bytes(static_cast<double>(s.bytes_read)).c_str());
    if (prev && seconds > 0) {
        auto rate = [&](uint64_t now, uint64_t before) {
            return now >= before ? static_cast<double>(now - before) / seconds : 0.0;
        };
        std::printf("  per second %.0f gets, %.0f puts, %s/s written, %s/s read\n",
                    rate(s.hits + s.misses, prev->hits + prev->misses), rate(s.puts, prev->puts),
                    human_bytes(rate(s.bytes_written, prev->bytes_written)).c_str(),
                    human_bytes(rate(s.bytes_read, prev->bytes_read)).c_str());
    }
    std::printf("  problems   %" PRIu64 " checksum failures, %" PRIu64 " copy faults\n",
                s.verify_failures, s.copy_faults);
    std::printf("  recovery   %" PRIu64 " entries recovered, dropped %" PRIu64 " torn, %" PRIu64
                " corrupt, %" PRIu64 " stale, in %s\n",
                s.recovered_entries, s.recovery_dropped_torn, s.recovery_dropped_corrupt,
                s.recovery_dropped_stale,
                human_ns(static_cast<double>(s.recovery_usec) * 1e3).c_str());
    std::printf("  async      %" PRIu64 " submitted, %" PRIu64 " completed, %" PRIu64
                " cancelled; %" PRIu64 " batches\n",
                s.async_submitted, s.async_completed, s.async_cancelled, s.batches);
    for (const auto &h : kHistograms) {
        const daxkv_histogram &v = s.*(h.member);
        if (!v.count) {
            std::printf("  %-13s none\n", h.name);
            continue;
        }
        const double mean = static_cast<double>(v.sum) / static_cast<double>(v.count);
        std::printf("  %-13s %" PRIu64 ", mean %s, p50 %s, p99 %s\n", h.name, v.count,
                    h.unit == DAXKV_HIST_NS_UNIT ? human_ns(mean).c_str()
                                                 : human_bytes(mean).c_str(),
                    bound_text(quantile_bound(v, h.unit, 0.5), h.unit).c_str(),
                    bound_text(quantile_bound(v, h.unit, 0.99), h.unit).c_str());
    }
}

int cmd_stats(const Args &a) {
    const std::string &path = a.positional[0];
    if (a.has("json") && a.has("prometheus"))
        throw UsageError{"--json and --prometheus: give one output format"};
    const Watch w = watch_options(a);
    Stats prev{};
    auto prev_at = std::chrono::steady_clock::now();
    return repeat(a, w, "stats", [&](bool first) {
        if (a.has("prometheus")) {
            if (!first)
                std::printf("\n");
            std::printf("%s", peek_text(daxkv_stats_prometheus_peek, path).c_str());
            return;
        }
        const Stats s = peek_stats(path);
        const auto now = std::chrono::steady_clock::now();
        if (a.has("json")) {
            // One object a line under --watch (JSON Lines), indented once.
            std::printf("%s\n", stats_json(s).dump(w.on ? -1 : 2).c_str());
        } else {
            if (!first)
                std::printf("\n");
            print_stats(path, s, first ? nullptr : &prev,
                        std::chrono::duration<double>(now - prev_at).count());
        }
        prev = s;
        prev_at = now;
    });
}

// --- daxkv status -------------------------------------------------------------

// A field of the status JSON as text: a string as it is, anything else in
// JSON, "?" when absent or when j is not an object (a publisher of
// another version may write a field otherwise).
std::string field_text(const nlohmann::json &j, const char *name) {
    if (!j.is_object())
        return "?";
    const auto it = j.find(name);
    if (it == j.end())
        return "?";
    return terminal_text(it->is_string() ? it->get<std::string>() : it->dump());
}

void print_status(const nlohmann::json &j) {
    const auto publisher = j.find("publisher");
    const nlohmann::json &p = publisher != j.end() ? *publisher : nlohmann::json::object();
    std::printf("store %s: %s, pid %s, libdaxkv %s\n", field_text(p, "store_id").c_str(),
                field_text(j, "state").c_str(), field_text(p, "pid").c_str(),
                field_text(j, "version").c_str());
    std::printf("  slot_bytes %s, meta_bytes %s, eviction %s, durability %s, verify %s, "
                "workers %s\n",
                field_text(j, "slot_bytes").c_str(), field_text(j, "meta_bytes").c_str(),
                field_text(j, "eviction").c_str(), field_text(j, "durability").c_str(),
                field_text(j, "verify").c_str(), field_text(j, "workers").c_str());
    if (j.contains("devices") && j["devices"].is_array()) {
        for (const auto &d : j["devices"]) {
            std::printf("  %s: %s, %s slots, %s bytes, uuid %s\n", field_text(d, "path").c_str(),
                        field_text(d, "kind").c_str(), field_text(d, "slots").c_str(),
                        field_text(d, "arena_bytes").c_str(), field_text(d, "uuid").c_str());
        }
    }
}

int cmd_status(const Args &a) {
    const std::string &path = a.positional[0];
    const Watch w = watch_options(a);
    return repeat(a, w, "status", [&](bool first) {
        const std::string text = peek_text(daxkv_status_peek, path);
        if (a.has("json")) {
            const auto j = nlohmann::json::parse(text, nullptr, false);
            std::printf("%s\n", j.is_discarded() ? text.c_str() : j.dump(w.on ? -1 : 2).c_str());
            return;
        }
        if (!first)
            std::printf("\n");
        const auto j = nlohmann::json::parse(text, nullptr, false);
        if (j.is_discarded())
            throw PeekError{-EPROTO, "the published status is not JSON"};
        print_status(j);
    });
}

const std::vector<OptionSpec> &watch_option_specs() {
    static const std::vector<OptionSpec> o = {
        {"watch", 'w', nullptr, "report again every --interval until interrupted"},
        {"interval", 'i', "SECONDS", "seconds between reports, 0.1..3600 (default 1)"},
        {"count", 'c', "N", "stop after N reports (implies --watch)"},
    };
    return o;
}

std::vector<OptionSpec> with_watch(std::vector<OptionSpec> own) {
    for (const OptionSpec &o : watch_option_specs())
        own.push_back(o);
    return own;
}

} // namespace

const CommandSpec &stats_command() {
    static const CommandSpec c = {
        "stats",
        "PATH [options]",
        "a running store's counters and histograms, read without stopping it",
        "Show the counters, gauges and histograms that the running store holding\n"
        "PATH (any of its devices) last published. Nothing on the device is opened or\n"
        "changed; the store publishes every stats_interval milliseconds (default\n"
        "1000). With --watch the report repeats and shows the rates since the last.",
        with_watch({
            {"json", 'j', nullptr, "every field as JSON (one object a line with --watch)"},
            {"prometheus", 'p', nullptr, "the Prometheus text exposition format"},
        }),
        "exit status: 0 reported, 1 no running store publishes statistics for PATH\n"
        "(none has it open, it died, or its stats_interval is 0), 2 usage error.",
        "PATH",
        1,
        1,
        cmd_stats,
    };
    return c;
}

const CommandSpec &status_command() {
    static const CommandSpec c = {
        "status",
        "PATH [options]",
        "a running store's configuration and devices, read without stopping it",
        "Show the status that the running store holding PATH (any of its devices) last\n"
        "published: its configuration, its devices and the process that runs it.\n"
        "Nothing on the device is opened or changed.",
        with_watch({
            {"json", 'j', nullptr, "the status JSON (one object a line with --watch)"},
        }),
        "exit status: 0 reported, 1 no running store publishes statistics for PATH\n"
        "(none has it open, it died, or its stats_interval is 0), 2 usage error.",
        "PATH",
        1,
        1,
        cmd_status,
    };
    return c;
}

} // namespace daxkv_cli
