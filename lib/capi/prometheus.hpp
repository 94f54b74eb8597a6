// The Prometheus text of a store's statistics: daxkv_stats_prometheus (the
// store's own) and daxkv_stats_prometheus_peek (a published page's).
#pragma once

#include <string>
#include <vector>

#include "daxkv.h"
#include "store/reports.hpp"

namespace daxkv {
namespace capi {

// Every sample labelled store="store_id", and per-device gauges labelled
// with the device's path too.
std::string prometheus_text(const struct daxkv_stats &s, const std::string &store_id,
                            const std::vector<DeviceGauges> &devices);

} // namespace capi
} // namespace daxkv
