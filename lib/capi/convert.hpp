// The store's results in the public structs. Every public struct that
// lib/store reports into is made here, from the store's own type, and
// copied to the caller with copy_versioned (handles.hpp).
#pragma once

#include <string>

#include "daxkv.h"
#include "store/async.hpp"
#include "store/hotplug.hpp"
#include "store/keys.hpp"
#include "store/reports.hpp"

namespace daxkv {
namespace capi {

struct daxkv_stats public_stats(const StatsSnapshot &s);
// The bytes a statistics page carries (a full daxkv_stats of this
// version): the store's StatsEncoder.
std::string stats_page_bytes(const StatsSnapshot &s);
daxkv_hotplug_result public_result(const HotplugResult &r);
daxkv_completion public_completion(const Completion &c);
daxkv_slot_info public_slot(const SlotLocation &loc);
daxkv_device_layout public_layout(const DeviceLayout &d);
daxkv_key_info public_key(const KeyRecord &r);

} // namespace capi
} // namespace daxkv
