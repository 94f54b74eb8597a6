// Statistics in the Prometheus text exposition format, and the statistics
// a running store publishes, read from another process (store/stats_page).
#include <cstring>

#include <nlohmann/json.hpp>

#include "capi/convert.hpp"
#include "capi/handles.hpp"
#include "capi/prometheus.hpp"
#include "internal/json_text.hpp"
#include "store/stats_page.hpp"

using namespace daxkv;
using daxkv::capi::check_buffer;
using daxkv::capi::copy_text;
using daxkv::capi::prometheus_text;
using daxkv::capi::store_of;

namespace {

int check_peek_path(const char *path) {
    if (!path || !*path)
        return set_error(-EINVAL, "device path is NULL or empty");
    return capi::check_path(path);
}

// The publisher's daxkv_stats, in a full struct of this version (a
// publisher of an older version leaves the members it lacks zero).
struct daxkv_stats peeked_stats(const PageSnapshot &snap) {
    struct daxkv_stats x;
    std::memset(&x, 0, sizeof x);
    std::memcpy(&x, snap.stats.data(), std::min(snap.stats.size(), sizeof x));
    x.struct_size = sizeof x;
    return x;
}

// A count of a published status JSON: 0 unless it is a number a count can
// be (a publisher of another version may write the field otherwise).
uint64_t peeked_count(const nlohmann::json &device, const char *name) {
    const auto it = device.find(name);
    return it != device.end() && it->is_number_unsigned() ? it->get<uint64_t>() : 0;
}

// Nesting deeper than any publisher writes (a device's fields, in the
// devices array of the status object) is read as no status, as text that
// is not a JSON object is: passed on, a page's thousands of nested arrays
// made a text that readers with a nesting limit (Python's json module)
// fail on, and a recursive reader may overflow its stack on.
constexpr JsonLimits kPublishedStatus{64, /*refuse_duplicate_keys=*/false};

// The published status JSON as an object in tree: empty when the page's
// text is not one (or nests too deep).
void read_published_status(JsonTree &tree, const PageSnapshot &snap) {
    if (!parse_json(tree, snap.status, kPublishedStatus).empty() || !tree.value().is_object())
        tree.reset(nlohmann::json::value_t::object);
}

// The per-device gauges of a published status JSON.
std::vector<DeviceGauges> peeked_devices(const PageSnapshot &snap) {
    std::vector<DeviceGauges> out;
    JsonTree tree(nlohmann::json::value_t::null);
    read_published_status(tree, snap);
    const nlohmann::json &j = tree.value();
    const auto devices = j.find("devices");
    if (devices == j.end() || !devices->is_array())
        return out;
    for (const auto &d : *devices) {
        if (!d.is_object())
            continue;
        // A path that is not UTF-8 is published as its bytes (json_bytes).
        const auto path = d.find("path");
        DeviceGauges g;
        if (path == d.end() || !bytes_of_json(*path, &g.path))
            continue;
        g.slots = peeked_count(d, "slots");
        g.slots_free = peeked_count(d, "slots_free");
        out.push_back(std::move(g));
    }
    return out;
}

} // namespace

extern "C" {

DAXKV_API int daxkv_stats_prometheus(daxkv_store *s, char *buf, size_t cap, size_t *needed) {
    return guarded([&] {
        Store &st = store_of(s);
        CallGate::Observer seen(st.core().gate); // waited for by a shutdown begun meanwhile
        if (int rc = check_buffer(buf, cap))
            return rc;
        return copy_text(prometheus_text(capi::public_stats(st.reports().stats()),
                                         st.reports().store_id(), st.reports().device_gauges()),
                         buf, cap, needed, "the metrics");
    });
}

DAXKV_API int daxkv_stats_peek(const char *path, struct daxkv_stats *out) {
    return guarded([&] {
        if (int rc = check_peek_path(path))
            return rc;
        if (int rc = capi::check_versioned(out, "out"))
            return rc;
        capi::copy_versioned(out, peeked_stats(read_stats_page(path)));
        return 0;
    });
}

DAXKV_API int daxkv_status_peek(const char *path, char *buf, size_t cap, size_t *needed) {
    return guarded([&] {
        if (int rc = check_peek_path(path))
            return rc;
        if (int rc = check_buffer(buf, cap))
            return rc;
        const PageSnapshot snap = read_stats_page(path);
        JsonTree tree(nlohmann::json::value_t::null);
        read_published_status(tree, snap);
        nlohmann::json &publisher = object_at(tree.value(), "publisher");
        publisher["pid"] = snap.pid;
        publisher["store_id"] = snap.store_id;
        publisher["published_unix_ns"] = snap.published_unix_ns;
        const nlohmann::json &j = tree.value();
        return copy_text(j.dump(-1, ' ', false, nlohmann::json::error_handler_t::replace), buf,
                         cap, needed, "status");
    });
}

DAXKV_API int daxkv_stats_prometheus_peek(const char *path, char *buf, size_t cap,
                                          size_t *needed) {
    return guarded([&] {
        if (int rc = check_peek_path(path))
            return rc;
        if (int rc = check_buffer(buf, cap))
            return rc;
        const PageSnapshot snap = read_stats_page(path);
        return copy_text(prometheus_text(peeked_stats(snap), snap.store_id, peeked_devices(snap)),
                         buf, cap, needed, "the metrics");
    });
}

} // extern "C"
