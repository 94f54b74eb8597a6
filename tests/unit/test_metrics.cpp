// Metrics: the histograms and counters appended to struct daxkv_stats, and
// daxkv_stats_prometheus, whose output is parsed here as a Prometheus
// scraper would (text exposition format 0.0.4).
//
// Bad inputs tried here, each with its expected code:
//   daxkv_stats_prometheus: NULL store, NULL buf with cap > 0    -> -EINVAL
//   a buffer one byte too small, cap 0 with NULL buf             -> -ENOBUFS, *needed set
//   daxkv_stats with the struct_size of the first layout         -> appended members untouched
#include <gtest/gtest.h>

#include <cerrno>
#include <cmath>
#include <cstddef>
#include <cstring>
#include <map>
#include <poll.h>
#include <regex>
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
    };
    std::vector<Sample> samples;
    std::map<std::string, double> value; // name (+ "{le}" for buckets) -> value
};

// Parse text, failing the test on anything a scraper would reject.
Exposition parse(const std::string &text) {
    Exposition e;
    EXPECT_FALSE(text.empty());
    EXPECT_EQ(text.back(), '\n') << "the last line must end with a newline";
    static const std::regex comment(R"(^# (HELP|TYPE) ([a-zA-Z_:][a-zA-Z0-9_:]*) (.+)$)");
    static const std::regex sample(
        R"re(^([a-zA-Z_:][a-zA-Z0-9_:]*)(\{le="([^"]+)"\})? ([-+]?[0-9.eE+-]+|[-+]Inf|NaN)$)re");
    std::istringstream in(text);
    std::string line, current; // current: the family whose samples may follow
    while (std::getline(in, line)) {
        std::smatch m;
        if (std::regex_match(line, m, comment)) {
            std::string name = m[2];
            if (m[1] == "TYPE") {
                EXPECT_EQ(e.type.count(name), 0u) << "TYPE twice for " << name;
                EXPECT_TRUE(m[3] == "counter" || m[3] == "gauge" || m[3] == "histogram")
                    << line;
                e.type[name] = m[3];
                current = name;
            } else {
                EXPECT_EQ(e.help.count(name), 0u) << "HELP twice for " << name;
                e.help[name] = m[3];
            }
            continue;
        }
        if (!std::regex_match(line, m, sample)) {
            ADD_FAILURE() << "not a valid line: '" << line << "'";
            continue;
        }
        Exposition::Sample s{m[1], m[3], 0};
        char *end = nullptr;
        std::string v = m[4];
        s.value = v == "+Inf" ? INFINITY : std::strtod(v.c_str(), &end);
        // The sample must belong to the family just declared.
        const std::string &t = e.type[current];
        bool ok = s.name == current && s.le.empty() && t != "histogram";
        if (t == "histogram")
            ok = (s.name == current + "_bucket" && !s.le.empty()) ||
                 ((s.name == current + "_sum" || s.name == current + "_count") && s.le.empty());
        EXPECT_TRUE(ok) << "sample '" << line << "' outside its family " << current;
        e.value[s.name + (s.le.empty() ? "" : "{" + s.le + "}")] = s.value;
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
    daxkv_histogram out;
    h.read(out);
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
