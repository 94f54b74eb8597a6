// Metrics: the histograms and counters appended to struct daxkv_stats, and
// daxkv_stats_prometheus, whose output is parsed here as a Prometheus
// scraper would (text exposition format 0.0.4).
//
// Bad inputs tried here, each with its expected code:
//   daxkv_stats_prometheus: NULL store, NULL buf with cap > 0    -> -EINVAL
//   a buffer one byte too small, cap 0 with NULL buf             -> -ENOBUFS, *needed set
//   daxkv_stats with the struct_size of the first layout         -> appended members untouched
#include <gtest/gtest-spi.h>
#include <gtest/gtest.h>

#include <cctype>
#include <cerrno>
#include <cstdlib>
#include <cmath>
#include <cstddef>
#include <cstring>
#include <map>
#include <poll.h>
#include <set>
#include <sstream>
#include <string>
#include <vector>

#include "helpers.hpp"
#include "store/metrics.hpp"

using namespace daxkv_test;

namespace {

// One parsed exposition: families with their type, and samples.
struct Exposition {
    std::map<std::string, std::string> type, help;
    struct Sample {
        std::string name, le; // le: the label of a histogram bucket
        double value;
        std::map<std::string, std::string> labels; // every label, le included
    };
    std::vector<Sample> samples;
    std::map<std::string, double> value; // name (+ "{le}" for buckets) -> value
};

bool valid_name(const std::string &n) {
    if (n.empty() || std::isdigit(static_cast<unsigned char>(n[0])))
        return false;
    for (char c : n)
        if (!std::isalnum(static_cast<unsigned char>(c)) && c != '_' && c != ':')
            return false;
    return true;
}

// Parse text, failing the test on anything a scraper would reject.
Exposition parse(const std::string &text) {
    Exposition e;
    EXPECT_FALSE(text.empty());
    EXPECT_EQ(text.back(), '\n') << "the last line must end with a newline";
    std::istringstream in(text);
    std::string line, current; // current: the family whose samples may follow
    while (std::getline(in, line)) {
        if (line.rfind("# ", 0) == 0) {
            // "# HELP name text" or "# TYPE name type"
            std::istringstream ls(line.substr(2));
            std::string kind, name, rest;
            ls >> kind >> name;
            std::getline(ls, rest);
            EXPECT_TRUE(valid_name(name)) << line;
            EXPECT_TRUE(rest.size() > 1 && rest[0] == ' ') << line;
            rest = rest.substr(1);
            if (kind == "TYPE") {
                EXPECT_EQ(e.type.count(name), 0u) << "TYPE twice for " << name;
                EXPECT_TRUE(rest == "counter" || rest == "gauge" || rest == "histogram") << line;
                e.type[name] = rest;
                current = name;
            } else {
                EXPECT_EQ(kind, "HELP") << line;
                EXPECT_EQ(e.help.count(name), 0u) << "HELP twice for " << name;
                e.help[name] = rest;
            }
            continue;
        }
        // name[{le="..."}] value
        size_t sp = line.rfind(' ');
        if (sp == std::string::npos) {
            ADD_FAILURE() << "not a valid line: '" << line << "'";
            continue;
        }
        std::string head = line.substr(0, sp), v = line.substr(sp + 1);
        Exposition::Sample s{head, "", 0, {}};
        size_t brace = head.find('{');
        if (brace != std::string::npos) {
            s.name = head.substr(0, brace);
            // {name="value",...}: values with \\, \" and \n escapes.
            bool ok = head.back() == '}';
            size_t i = brace + 1;
            while (ok && i < head.size() - 1) {
                const size_t eq = head.find("=\"", i);
                ok = eq != std::string::npos && valid_name(head.substr(i, eq - i));
                if (!ok)
                    break;
                std::string key = head.substr(i, eq - i), val;
                size_t j = eq + 2;
                for (; j < head.size() && head[j] != '"'; ++j) {
                    if (head[j] == '\\' && j + 1 < head.size())
                        ++j;
                    val += head[j];
                }
                ok = j < head.size() && s.labels.emplace(key, val).second;
                i = j + 1;
                if (ok && head[i] == ',')
                    ++i;
            }
            EXPECT_TRUE(ok) << "bad labels in '" << line << "'";
            if (s.labels.count("le"))
                s.le = s.labels["le"];
        }
        EXPECT_EQ(s.labels.count("store"), 1u) << "every sample names its store: " << line;
        EXPECT_TRUE(valid_name(s.name)) << line;
        char *end = nullptr;
        s.value = v == "+Inf" ? INFINITY : std::strtod(v.c_str(), &end);
        EXPECT_TRUE(v == "+Inf" || (end && *end == '\0' && !v.empty())) << "bad value: " << line;
        // The sample must belong to the family just declared.
        const std::string &t = e.type[current];
        bool ok = s.name == current && s.le.empty() && t != "histogram";
        if (t == "histogram")
            ok = (s.name == current + "_bucket" && !s.le.empty()) ||
                 ((s.name == current + "_sum" || s.name == current + "_count") && s.le.empty());
        EXPECT_TRUE(ok) << "sample '" << line << "' outside its family " << current;
        const std::string dev = s.labels.count("device") ? s.labels["device"] : "";
        EXPECT_EQ(!dev.empty(), s.name.rfind("daxkv_device_", 0) == 0)
            << "the device label belongs to the per-device families: " << line;
        e.value[s.name + (s.le.empty() ? "" : "{" + s.le + "}") + (dev.empty() ? "" : "@" + dev)] =
            s.value;
        e.samples.push_back(s);
    }
    // Histograms: le increasing, cumulative counts non-decreasing, +Inf last
    // and equal to _count.
    for (const auto &ft : e.type) {
        if (ft.second != "histogram")
            continue;
        double last_le = -INFINITY, last_count = 0;
        bool inf = false;
        for (const auto &s : e.samples) {
            if (s.name != ft.first + "_bucket")
                continue;
            double le = s.le == "+Inf" ? INFINITY : std::strtod(s.le.c_str(), nullptr);
            EXPECT_GT(le, last_le) << ft.first;
            EXPECT_GE(s.value, last_count) << ft.first << " le=" << s.le;
            last_le = le;
            last_count = s.value;
            inf = s.le == "+Inf";
        }
        EXPECT_TRUE(inf) << ft.first << ": the last bucket must be +Inf";
        EXPECT_EQ(last_count, e.value[ft.first + "_count"]) << ft.first;
        EXPECT_EQ(e.value.count(ft.first + "_sum"), 1u) << ft.first;
    }
    for (const auto &ft : e.type)
        EXPECT_EQ(e.help.count(ft.first), 1u) << "no HELP for " << ft.first;
    return e;
}

std::string prometheus(daxkv_store *s) {
    size_t needed = 0;
    int rc = daxkv_stats_prometheus(s, nullptr, 0, &needed);
    EXPECT_EQ(rc, -ENOBUFS);
    std::string buf(needed, '\0');
    rc = daxkv_stats_prometheus(s, &buf[0], buf.size(), &needed);
    EXPECT_EQ(rc, 0) << daxkv_errmsg();
    EXPECT_EQ(needed, buf.size());
    buf.resize(needed - 1);
    return buf;
}

class Metrics : public StoreFixture {};

// Failures parse() reports for text whose message contains needle (and
// all failures in *total).
int complaints(const std::string &text, const std::string &needle, int *total = nullptr) {
    ::testing::TestPartResultArray results;
    {
        ::testing::ScopedFakeTestPartResultReporter intercept(
            ::testing::ScopedFakeTestPartResultReporter::INTERCEPT_ONLY_CURRENT_THREAD, &results);
        parse(text);
    }
    int n = 0;
    for (int i = 0; i < results.size(); ++i)
        n += std::string(results.GetTestPartResult(i).message()).find(needle) !=
             std::string::npos;
    if (total)
        *total = results.size();
    return n;
}

// The checker itself: it must reject what a scraper would.
TEST(PrometheusChecker, RejectsMalformedExpositions) {
    EXPECT_GE(complaints("# TYPE x counter\nx\n", "not a valid line"), 1);
    EXPECT_GE(complaints("# HELP x h\n# TYPE x counter\nx{store=\"s\"} abc\n", "bad value"), 1);
    EXPECT_GE(complaints("# HELP x h\n# TYPE x counter\ny{store=\"s\"} 1\n", "outside its family"),
              1);
    EXPECT_GE(complaints("# HELP 1x h\n# TYPE 1x counter\n1x{store=\"s\"} 1\n", "1x"), 1);
    EXPECT_GE(complaints("# HELP h h\n# TYPE h histogram\nh_bucket{store=\"s\",le=\"1\"} 2\n"
                         "h_bucket{store=\"s\",le=\"+Inf\"} 1\nh_sum{store=\"s\"} 1\n"
                         "h_count{store=\"s\"} 1\n",
                         "le=+Inf"),
              1);
    EXPECT_GE(complaints("# HELP h h\n# TYPE h histogram\nh_bucket{store=\"s\",le=\"1\"} 1\n"
                         "h_sum{store=\"s\"} 1\nh_count{store=\"s\"} 1\n",
                         "+Inf"),
              1);
    EXPECT_GE(complaints("# HELP h h\n# TYPE h histogram\nh_bucket{x=\"1\",x=\"2\"} 1\n",
                         "bad labels"),
              1);
    EXPECT_GE(complaints("# HELP x h\n# TYPE x counter\nx 1\n", "names its store"), 1);
    EXPECT_GE(complaints("# HELP x h\n# TYPE x counter\nx{store=\"s\",device=\"d\"} 1\n",
                         "per-device"),
              1);
    EXPECT_GE(complaints("# TYPE x counter\nx{store=\"s\"} 1\n", "no HELP"), 1);
    int total = -1;
    complaints("# HELP x h\n# TYPE x counter\nx{store=\"s\"} 1\n", "", &total);
    EXPECT_EQ(total, 0); // and a good one passes
    complaints("# HELP daxkv_device_a h\n# TYPE daxkv_device_a gauge\n"
               "daxkv_device_a{store=\"s\",device=\"/d\\\"q\"} 1\n",
               "", &total);
    EXPECT_EQ(total, 0);
}

TEST(HistogramBuckets, ValuesLandInTheSmallestBucketThatHoldsThem) {
    using daxkv::Histogram;
    const uint64_t u = 1000;
    EXPECT_EQ(Histogram::index(0, u), 0);
    EXPECT_EQ(Histogram::index(1000, u), 0);
    EXPECT_EQ(Histogram::index(1001, u), 1);
    EXPECT_EQ(Histogram::index(2000, u), 1);
    EXPECT_EQ(Histogram::index(2001, u), 2);
    EXPECT_EQ(Histogram::index(1000ull << 22, u), 22);
    EXPECT_EQ(Histogram::index((1000ull << 22) + 1, u), 23); // above the last bound
    EXPECT_EQ(Histogram::index(UINT64_MAX, u), 23);
    daxkv::Histogram h(4096);
    h.record(1);
    h.record(4096);
    h.record(4097);
    h.record(1ull << 40);
    const daxkv::HistogramValues out = h.read();
    EXPECT_EQ(out.count, 4u);
    EXPECT_EQ(out.bucket[0], 2u);
    EXPECT_EQ(out.bucket[1], 1u);
    EXPECT_EQ(out.bucket[DAXKV_HIST_BUCKETS - 1], 1u);
    EXPECT_EQ(out.sum, 1 + 4096 + 4097 + (1ull << 40));
}

TEST_F(Metrics, CountersAndHistogramsFollowTheCalls) {
    open(StoreSpec(64 * 1024, 16));
    ASSERT_EQ(put("a", pattern(1, 100)), 0);
    ASSERT_EQ(put("b", pattern(2, 4096)), 0);
    ASSERT_EQ(put("c", pattern(3, 10000)), 0);
    EXPECT_EQ(value("a").size(), 100u);
    EXPECT_EQ(value("c").size(), 10000u);
    std::vector<uint8_t> v1 = pattern(4, 50000), v2 = pattern(5, 64 * 1024);
    daxkv_item items[2] = {{"d", 1, v1.data(), v1.size(), nullptr, 0, 0},
                           {"e", 1, v2.data(), v2.size(), nullptr, 0, 0}};
    ASSERT_EQ(daxkv_put_batch(s(), items, 2, 0), 2);
    std::vector<uint8_t> out(64 * 1024);
    daxkv_item g = {"e", 1, out.data(), out.size(), nullptr, 0, 0};
    ASSERT_EQ(daxkv_get_batch(s(), &g, 1, 0), 1);

    struct daxkv_stats st = stats();
    EXPECT_EQ(st.put_latency.count, 3u);
    EXPECT_EQ(st.get_latency.count, 2u);
    EXPECT_EQ(st.batch_latency.count, 2u);
    EXPECT_EQ(st.batches, 2u);
    EXPECT_GT(st.put_latency.sum, 0u);
    EXPECT_EQ(st.item_bytes.count, 5u + 3u); // five stored, three copied out
    EXPECT_EQ(st.item_bytes.sum, 100u + 4096 + 10000 + 50000 + 65536 + 100 + 10000 + 65536);
    EXPECT_EQ(st.item_bytes.bucket[0], 3u); // 100, 4096, 100
    EXPECT_EQ(st.item_bytes.bucket[2], 2u); // 10000 (<= 16 KiB) twice

    Exposition e = parse(prometheus(s()));
    EXPECT_EQ(e.type["puts_total"], "");   // every name carries the prefix
    EXPECT_EQ(e.type["daxkv_puts_total"], "counter");
    EXPECT_EQ(e.value["daxkv_puts_total"], 5);
    EXPECT_EQ(e.value["daxkv_hits_total"], 3);
    EXPECT_EQ(e.type["daxkv_entries"], "gauge");
    EXPECT_EQ(e.value["daxkv_entries"], 5);
    EXPECT_EQ(e.value["daxkv_slots_free"], 11);
    EXPECT_EQ(e.type["daxkv_put_latency_seconds"], "histogram");
    EXPECT_EQ(e.value["daxkv_put_latency_seconds_count"], 3);
    EXPECT_NEAR(e.value["daxkv_put_latency_seconds_sum"], st.put_latency.sum * 1e-9, 1e-9);
    EXPECT_EQ(e.value["daxkv_get_latency_seconds_count"], 2);
    EXPECT_EQ(e.value["daxkv_batch_latency_seconds_count"], 2);
    EXPECT_EQ(e.value.count("daxkv_put_latency_seconds_bucket{1e-06}"), 1u);
    EXPECT_EQ(e.value["daxkv_item_bytes_bucket{4096}"], 3);
    EXPECT_EQ(e.value["daxkv_item_bytes_bucket{16384}"], 5);
    EXPECT_EQ(e.value["daxkv_item_bytes_bucket{65536}"], 8);
    EXPECT_EQ(e.value["daxkv_item_bytes_bucket{+Inf}"], 8);
    EXPECT_EQ(e.value["daxkv_item_bytes_sum"], double(st.item_bytes.sum));
}

// A batch adds its commits (and its hits) to the counters and the size
// histogram once per segment or once per call, not once per value: the
// totals must still be exact, across segments (300 values make several),
// with the items that were not stored (or not copied out) left out. Refused items tried: a key already stored, a key given twice
// in the batch, a value over slot_bytes, a NULL key, NULL data.
TEST_F(Metrics, ABatchCountsEachStoredValueOnceAcrossItsSegments) {
    open(StoreSpec(64 * 1024, 512));
    ASSERT_EQ(put("there", pattern(1, 10)), 0);
    const struct daxkv_stats before = stats();
    std::vector<std::string> keys;
    std::vector<std::vector<uint8_t>> vals;
    for (int i = 0; i < 300; ++i) {
        keys.push_back("k" + std::to_string(i));
        vals.push_back(pattern(i, i % 3 == 0 ? 100 : i % 3 == 1 ? 10000 : 65536));
    }
    std::vector<daxkv_item> items;
    uint64_t bytes = 0, small = 0, mid = 0, large = 0;
    for (int i = 0; i < 300; ++i) {
        items.push_back({keys[i].data(), keys[i].size(), vals[i].data(), vals[i].size(), nullptr,
                         0, 0});
        bytes += vals[i].size();
        (vals[i].size() == 100 ? small : vals[i].size() == 10000 ? mid : large)++;
    }
    std::vector<uint8_t> huge(64 * 1024 + 1);
    items.push_back({"there", 5, vals[0].data(), 1, nullptr, 0, 0});       // stored before
    items.push_back({keys[7].data(), keys[7].size(), vals[7].data(), 1, nullptr, 0, 0}); // twice
    items.push_back({"huge", 4, huge.data(), huge.size(), nullptr, 0, 0}); // over slot_bytes
    items.push_back({nullptr, 3, vals[0].data(), 1, nullptr, 0, 0});       // NULL key
    items.push_back({"nodata", 6, nullptr, 5, nullptr, 0, 0});             // NULL data
    ASSERT_EQ(daxkv_put_batch(s(), items.data(), items.size(), 0), 300);
    EXPECT_EQ(items[300].status, DAXKV_EXISTED);
    EXPECT_EQ(items[301].status, DAXKV_EXISTED); // the key's first item is in flight
    EXPECT_EQ(items[302].status, -E2BIG);
    EXPECT_EQ(items[303].status, -EINVAL);
    EXPECT_EQ(items[304].status, -EINVAL);

    // The 300 values' sizes, added to the histogram between from and to.
    auto expect_sizes_counted = [&](const daxkv_histogram &from, const daxkv_histogram &to) {
        EXPECT_EQ(to.count - from.count, 300u);
        EXPECT_EQ(to.sum - from.sum, bytes);
        EXPECT_EQ(to.bucket[0] - from.bucket[0], small); // <= 4 KiB
        EXPECT_EQ(to.bucket[2] - from.bucket[2], mid);   // <= 16 KiB
        EXPECT_EQ(to.bucket[4] - from.bucket[4], large); // <= 64 KiB
        uint64_t counted = 0;
        for (int b = 0; b < DAXKV_HIST_BUCKETS; ++b)
            counted += to.bucket[b] - from.bucket[b];
        EXPECT_EQ(counted, 300u);
    };
    const struct daxkv_stats st = stats();
    EXPECT_EQ(st.puts - before.puts, 300u);
    EXPECT_EQ(st.puts_existed - before.puts_existed, 2u);
    EXPECT_EQ(st.bytes_written - before.bytes_written, bytes);
    expect_sizes_counted(before.item_bytes, st.item_bytes);

    // The same values copied out by one batch, with a miss and a buffer too
    // small: hits and bytes read counted once each, the sizes again.
    std::vector<std::vector<uint8_t>> out(300, std::vector<uint8_t>(64 * 1024));
    std::vector<daxkv_item> gets;
    for (int i = 0; i < 300; ++i)
        gets.push_back({keys[i].data(), keys[i].size(), out[i].data(), out[i].size(), nullptr, 0,
                        0});
    uint8_t tiny[8];
    gets.push_back({"missing", 7, out[0].data(), out[0].size(), nullptr, 0, 0});
    gets.push_back({keys[2].data(), keys[2].size(), tiny, sizeof tiny, nullptr, 0, 0});
    ASSERT_EQ(daxkv_get_batch(s(), gets.data(), gets.size(), 0), 300);
    EXPECT_EQ(gets[301].status, -ENOBUFS);
    for (int i = 0; i < 300; ++i)
        ASSERT_EQ(std::vector<uint8_t>(out[i].begin(), out[i].begin() + gets[i].len), vals[i]) << i;
    const struct daxkv_stats rd = stats();
    EXPECT_EQ(rd.hits - st.hits, 300u);
    EXPECT_EQ(rd.misses - st.misses, 1u);
    EXPECT_EQ(rd.bytes_read - st.bytes_read, bytes);
    expect_sizes_counted(st.item_bytes, rd.item_bytes);
}

TEST_F(Metrics, AsyncCountersSplitCompletedAndCancelled) {
    open(StoreSpec(4096, 8));
    daxkv_item it = {"k", 1, nullptr, 0, nullptr, 0, 0};
    ASSERT_EQ(daxkv_submit(s(), DAXKV_OP_CONTAINS, &it, 1, 0, 1), 0);
    struct pollfd p = {daxkv_event_fd(s()), POLLIN, 0};
    ASSERT_EQ(::poll(&p, 1, 10000), 1);
    daxkv_completion c[4];
    ASSERT_EQ(daxkv_poll(s(), c, 4), 1);
    struct daxkv_stats st = stats();
    EXPECT_EQ(st.async_submitted, 1u);
    EXPECT_EQ(st.async_completed, 1u);
    EXPECT_EQ(st.async_cancelled, 0u);
    Exposition e = parse(prometheus(s()));
    EXPECT_EQ(e.value["daxkv_async_submitted_total"], 1);
    EXPECT_EQ(e.value["daxkv_async_completed_total"], 1);
}

TEST_F(Metrics, AnOldStructSizeGetsOnlyTheOldMembers) {
    open(StoreSpec(4096, 8));
    ASSERT_EQ(put("a", pattern(1, 10)), 0);
    std::vector<unsigned char> raw(sizeof(struct daxkv_stats), 0xAB);
    auto *st = reinterpret_cast<struct daxkv_stats *>(raw.data());
    const size_t old_size = offsetof(struct daxkv_stats, copy_faults);
    st->struct_size = static_cast<uint32_t>(old_size);
    ASSERT_EQ(daxkv_stats(s(), st), 0);
    EXPECT_EQ(st->puts, 1u);
    for (size_t i = old_size; i < raw.size(); ++i)
        ASSERT_EQ(raw[i], 0xAB) << "byte " << i << " past the caller's struct_size";
}

TEST_F(Metrics, PrometheusLabelsTellStoresAndDevicesApart) {
    open(StoreSpec(4096, 8));
    const Exposition a = parse(prometheus(s()));
    TempDir other;
    StorePtr s2;
    ASSERT_EQ(open_store(&s2, other.file("arena"), StoreSpec(4096, 8)), 0) << daxkv_errmsg();
    const Exposition b = parse(prometheus(s2.get()));
    std::set<std::string> stores;
    for (const auto *e : {&a, &b})
        for (const auto &smp : e->samples)
            stores.insert(smp.labels.at("store"));
    EXPECT_EQ(stores.size(), 2u) << "each store has its own label value";
    // The store label is the first device's arena uuid (stable across restarts).
    char status[8192];
    ASSERT_EQ(daxkv_status_json(s(), status, sizeof status, nullptr), 0);
    EXPECT_TRUE(contains_text(status, a.samples.front().labels.at("store")));
    bool device_seen = false;
    for (const auto &smp : a.samples)
        if (smp.name == "daxkv_device_slots") {
            device_seen = true;
            EXPECT_EQ(smp.labels.at("device"), path_);
            EXPECT_EQ(smp.value, 8);
        }
    EXPECT_TRUE(device_seen);
}

// Two mem: devices of one pool were two samples with the same labels
// (device="mem:"), which a scrape refuses as a duplicate series: each now
// gets its place among the devices of that path, in a label of its own
// (a suffix on the path could be another device's path).
TEST_F(Metrics, PrometheusDevicesOfOnePathGetLabelsOfTheirOwn) {
    daxkv_config *raw = nullptr;
    ASSERT_EQ(daxkv_config_new(&raw), 0);
    ConfigPtr cfg(raw);
    ASSERT_EQ(daxkv_config_set(raw, "slot_bytes", "4096"), 0);
    ASSERT_EQ(daxkv_config_add_device(raw, "mem:", 1 << 20), 0);
    ASSERT_EQ(daxkv_config_add_device(raw, "mem:", 2 << 20), 0);
    daxkv_store *st = nullptr;
    ASSERT_EQ(daxkv_open(&st, raw), 0) << daxkv_errmsg();
    StorePtr two(st);
    const Exposition e = parse(prometheus(two.get()));
    std::map<std::string, double> slots;
    for (const auto &smp : e.samples)
        if (smp.name == "daxkv_device_slots") {
            EXPECT_EQ(smp.labels.at("device"), "mem:");
            EXPECT_TRUE(slots.emplace(smp.labels.at("device_index"), smp.value).second)
                << "two samples of device_index " << smp.labels.at("device_index");
        }
    ASSERT_EQ(slots.size(), 2u);
    EXPECT_LT(slots["1"], slots["2"]); // in the pool's order: 1 MiB, then 2 MiB
}

TEST_F(Metrics, PrometheusBadArguments) {
    open(StoreSpec(4096, 8));
    char small[16];
    size_t needed = 0;
    EXPECT_EQ(daxkv_stats_prometheus(nullptr, small, sizeof small, &needed), -EINVAL);
    EXPECT_EQ(daxkv_stats_prometheus(s(), nullptr, 10, &needed), -EINVAL);
    EXPECT_EQ(daxkv_stats_prometheus(s(), small, sizeof small, &needed), -ENOBUFS);
    EXPECT_TRUE(contains_text(daxkv_errmsg(), "bytes")) << daxkv_errmsg();
    ASSERT_GT(needed, sizeof small);
    std::string buf(needed - 1, '\0');
    EXPECT_EQ(daxkv_stats_prometheus(s(), &buf[0], buf.size(), nullptr), -ENOBUFS);
    buf.resize(needed);
    EXPECT_EQ(daxkv_stats_prometheus(s(), &buf[0], buf.size(), nullptr), 0);
    EXPECT_EQ(std::strlen(buf.c_str()) + 1, needed);
    // After shutdown the metrics can still be scraped.
    ASSERT_EQ(daxkv_shutdown(s()), 0);
    parse(prometheus(s()));
}

} // namespace
