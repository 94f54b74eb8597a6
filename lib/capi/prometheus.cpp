// daxkv_stats in the Prometheus text exposition format (version 0.0.4).
#include "capi/prometheus.hpp"

#include <cinttypes>
#include <cstdarg>
#include <cstdio>
#include <map>
#include <string>

#include "internal/json_text.hpp"
#include "store/counters.hpp"

namespace daxkv {
namespace capi {

namespace {

// A label value in the exposition format's escaping. The format is UTF-8,
// but a device path is bytes (and a store id read from a statistics page
// is whatever the page holds): a byte that is not part of a well-formed
// UTF-8 sequence is written as the text \xNN, as the library writes such
// bytes in its error messages. Raw, such a byte makes the whole text
// invalid: Prometheus refuses the scrape, and the Python binding cannot
// decode it. So is a control character (NUL would end the sample's text
// early; ESC, BEL, CR or a C1 control such as CSI, from a hostile page or
// a file name, would act on the terminal that shows the text), but for the
// newline, which the format escapes as \n. A backslash of the path is
// doubled in the value, so that the value is the path's bytes one to one.
std::string label_value(const std::string &v) {
    std::string out;
    const auto *s = reinterpret_cast<const unsigned char *>(v.data());
    for (size_t i = 0; i < v.size();) {
        const unsigned c = s[i];
        if (c >= 0x80) {
            const size_t len = c >= 0xf0 ? 4 : c >= 0xe0 ? 3 : 2;
            // U+0080..U+009F (C1 controls, CSI among them) are escaped too.
            const bool c1 = c == 0xc2 && i + 1 < v.size() && s[i + 1] < 0xa0;
            if (!c1 && i + len <= v.size() && valid_utf8(v.data() + i, len)) {
                out.append(v, i, len);
                i += len;
                continue;
            }
        }
        if (c == '\\') {
            // Doubled in the value (four in the text): a path holding the
            // four characters \xff and one holding the byte 0xff then get
            // two labels, not one series between them.
            out += "\\\\\\\\";
        } else if (c == '"') {
            out += "\\\"";
        } else if (c == '\n') {
            out += "\\n";
        } else if (c >= 0x80 || c < 0x20 || c == 0x7f) {
            char esc[8];
            std::snprintf(esc, sizeof esc, "\\\\x%02x", c);
            out += esc;
        } else {
            out += static_cast<char>(c);
        }
        ++i;
    }
    return out;
}

class Writer {
public:
    // labels: `store="..."`, put into every sample so that two stores (in
    // one process or several) never share a series.
    explicit Writer(std::string labels) : labels_(std::move(labels)) {}
    void family(const char *name, const char *type, const char *help) {
        line("# HELP daxkv_%s %s\n", name, help);
        line("# TYPE daxkv_%s %s\n", name, type);
    }
    void counter(const char *name, const char *help, uint64_t v) {
        family(name, "counter", help);
        line("daxkv_%s{%s} %" PRIu64 "\n", name, labels_.c_str(), v);
    }
    void gauge(const char *name, const char *help, uint64_t v) {
        family(name, "gauge", help);
        line("daxkv_%s{%s} %" PRIu64 "\n", name, labels_.c_str(), v);
    }
    // One gauge family with a sample per device (the device's path as a
    // second label). Only mem: can name two devices of a pool: those of a
    // path shared get a third label, their place among the devices of that
    // path (device_index="1", "2", in the pool's order), so that no two
    // samples share their labels (a duplicate series, which a scrape
    // refuses), whatever the other devices' paths.
    void device_gauge(const char *name, const char *help, const std::vector<DeviceGauges> &devs,
                      uint64_t DeviceGauges::*field) {
        if (devs.empty())
            return;
        family(name, "gauge", help);
        std::map<std::string, unsigned> named, seen;
        for (const auto &d : devs)
            named[d.path]++;
        for (const auto &d : devs) {
            std::string index;
            if (named[d.path] > 1)
                index = ",device_index=\"" + std::to_string(++seen[d.path]) + "\"";
            line("daxkv_%s{%s,device=\"%s\"%s} %" PRIu64 "\n", name, labels_.c_str(),
                 label_value(d.path).c_str(), index.c_str(), d.*field);
        }
    }
    // scale: unit of the exposed value (1e-9 turns nanoseconds into seconds).
    void histogram(const char *name, const char *help, const daxkv_histogram &h, uint64_t unit,
                   double scale) {
        family(name, "histogram", help);
        uint64_t cumulative = 0;
        for (int i = 0; i < DAXKV_HIST_BUCKETS - 1; ++i) {
            cumulative += h.bucket[i];
            if (scale == 1.0)
                line("daxkv_%s_bucket{%s,le=\"%" PRIu64 "\"} %" PRIu64 "\n", name,
                     labels_.c_str(), unit << i, cumulative);
            else
                line("daxkv_%s_bucket{%s,le=\"%.9g\"} %" PRIu64 "\n", name, labels_.c_str(),
                     static_cast<double>(unit << i) * scale, cumulative);
        }
        cumulative += h.bucket[DAXKV_HIST_BUCKETS - 1];
        line("daxkv_%s_bucket{%s,le=\"+Inf\"} %" PRIu64 "\n", name, labels_.c_str(),
             cumulative);
        line("daxkv_%s_sum{%s} %.9g\n", name, labels_.c_str(), static_cast<double>(h.sum) * scale);
        line("daxkv_%s_count{%s} %" PRIu64 "\n", name, labels_.c_str(), cumulative);
    }
    std::string take() { return std::move(out_); }

private:
    // A sample of any length: a device path can be longer than any fixed
    // buffer once escaped (4096 quotes are 8192 bytes), and one read from a
    // statistics page can be of any length. A cut sample would lose its
    // value and newline and run into the next one.
    void line(const char *fmt, ...) __attribute__((format(printf, 2, 3))) {
        char buf[512];
        va_list ap;
        va_start(ap, fmt);
        struct End {
            va_list &ap;
            ~End() { va_end(ap); }
        } end{ap};
        va_list again;
        va_copy(again, ap);
        End end_again{again};
        const int n = std::vsnprintf(buf, sizeof buf, fmt, ap);
        if (n <= 0)
            return;
        if (static_cast<size_t>(n) < sizeof buf) {
            out_.append(buf, static_cast<size_t>(n));
            return;
        }
        const size_t at = out_.size();
        out_.resize(at + static_cast<size_t>(n) + 1);
        std::vsnprintf(&out_[at], static_cast<size_t>(n) + 1, fmt, again);
        out_.resize(at + static_cast<size_t>(n));
    }
    std::string labels_;
    std::string out_;
};

} // namespace

std::string prometheus_text(const struct daxkv_stats &s, const std::string &store_id,
                            const std::vector<DeviceGauges> &devices) {
    Writer w("store=\"" + label_value(store_id) + "\"");
    w.gauge("devices", "Devices in the store's pool.", s.devices);
    w.gauge("slot_bytes", "Capacity of one slot in bytes.", s.slot_bytes);
    w.gauge("capacity_bytes", "Value capacity of all slots in bytes.", s.capacity_bytes);
    w.gauge("slots", "Slots in all arenas.", s.slots_total);
    w.gauge("slots_used", "Slots committed, in flight, waiting for leases or quarantined.", s.slots_used);
    w.gauge("slots_free", "Free slots.", s.slots_free);
    w.gauge("slots_inflight", "Slots being written.", s.slots_inflight);
    w.gauge("slots_pending_free", "Slots freed once their last lease is released.",
            s.slots_pending_free);
    w.gauge("entries", "Committed keys.", s.entries);
    w.gauge("entries_pinned", "Committed keys with at least one pin.", s.entries_pinned);
    w.gauge("leases_active", "Leases held.", s.leases_active);
    w.gauge("slots_leased", "Slots with at least one lease.", s.slots_leased);
    // The counters' table (store/counters.hpp), in its order.
#define DAXKV_COUNTER_PROMETHEUS(name, prometheus, help) w.counter(prometheus, help, s.name);
    DAXKV_STORE_COUNTERS(DAXKV_COUNTER_PROMETHEUS)
#undef DAXKV_COUNTER_PROMETHEUS
    w.gauge("recovered_entries", "Entries recovered when the store was opened.",
            s.recovered_entries);
    w.counter("batches_total", "Put and get batch calls, synchronous and submitted.", s.batches);
    w.counter("async_submitted_total", "Batches queued by daxkv_submit.", s.async_submitted);
    w.counter("async_completed_total", "Submitted batches that ran.", s.async_completed);
    w.counter("async_cancelled_total", "Submitted batches cancelled by shutdown.",
              s.async_cancelled);
    w.histogram("put_latency_seconds", "Latency of daxkv_put.", s.put_latency,
                DAXKV_HIST_NS_UNIT, 1e-9);
    w.histogram("get_latency_seconds", "Latency of daxkv_get.", s.get_latency,
                DAXKV_HIST_NS_UNIT, 1e-9);
    w.histogram("batch_latency_seconds", "Latency of put and get batches.", s.batch_latency,
                DAXKV_HIST_NS_UNIT, 1e-9);
    w.histogram("item_bytes", "Size of each value stored or copied out.", s.item_bytes,
                DAXKV_HIST_BYTES_UNIT, 1.0);
    w.device_gauge("device_slots", "Usable slots of the device.", devices, &DeviceGauges::slots);
    w.device_gauge("device_slots_free", "Free slots of the device.", devices,
                   &DeviceGauges::slots_free);
    return w.take();
}

} // namespace capi
} // namespace daxkv
