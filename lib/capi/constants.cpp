// Every public constant (daxkv.h) that has an internal counterpart, tied to
// it at compile time: lib/capi passes codes, flags, modes and states through
// unchanged, and lib/store and the on-device format use their own names for
// them, so each pair must agree. Nothing here runs.
#include <type_traits>

#include "arena/format.hpp"
#include "daxkv.h"
#include "internal/error.hpp"
#include "store/async.hpp"
#include "store/hotplug.hpp"
#include "store/item.hpp"
#include "store/metrics.hpp"
#include "store/pool.hpp"

namespace daxkv {
namespace {

// Limits: a key is what a slot header holds.
static_assert(DAXKV_KEY_MAX == arena::kKeyMax, "key limit");
// A histogram has its buckets and units.
static_assert(DAXKV_HIST_BUCKETS == kHistBuckets, "histogram buckets");
static_assert(DAXKV_HIST_NS_UNIT == kHistNsUnit, "latency histogram unit");
static_assert(DAXKV_HIST_BYTES_UNIT == kHistBytesUnit, "size histogram unit");

// Return codes.
static_assert(DAXKV_EXISTED == kExisted, "DAXKV_EXISTED");
static_assert(DAXKV_E_BASE == kErrBase, "DAXKV_E_BASE");
static_assert(DAXKV_E_CORRUPT == kErrCorrupt, "DAXKV_E_CORRUPT");
static_assert(DAXKV_E_FOREIGN == kErrForeign, "DAXKV_E_FOREIGN");

// Logging.
static_assert(DAXKV_LOG_ERR == kLogErr && DAXKV_LOG_WARNING == kLogWarning &&
                  DAXKV_LOG_INFO == kLogInfo && DAXKV_LOG_DEBUG == kLogDebug,
              "log levels");
static_assert(std::is_same<daxkv_log_fn, LogFn>::value, "log callback type");

// Flags.
static_assert(DAXKV_REPLACE == kReplace && DAXKV_FORCE == kForce && DAXKV_PREFIX == kPrefix &&
                  DAXKV_PIN == kPin && DAXKV_CUDA_MAPPED == kCudaMapped,
              "call flags");

// Asynchronous operations.
static_assert(DAXKV_OP_PUT == static_cast<int>(AsyncOp::put) &&
                  DAXKV_OP_GET == static_cast<int>(AsyncOp::get) &&
                  DAXKV_OP_CONTAINS == static_cast<int>(AsyncOp::contains) &&
                  DAXKV_OP_REMOVE == static_cast<int>(AsyncOp::remove),
              "async ops");

// Device states and hotplug modes.
static_assert(DAXKV_DEV_ACTIVE == static_cast<int>(DevState::active) &&
                  DAXKV_DEV_DRAINING == static_cast<int>(DevState::draining) &&
                  DAXKV_DEV_MIGRATING == static_cast<int>(DevState::migrating) &&
                  DAXKV_DEV_RESIZING == static_cast<int>(DevState::resizing) &&
                  DAXKV_DEV_REMOVING == static_cast<int>(DevState::removing) &&
                  DAXKV_DEV_REMOVED == static_cast<int>(DevState::removed) &&
                  DAXKV_DEV_MISSING == static_cast<int>(DevState::missing),
              "device states");
static_assert(DAXKV_MIGRATE == static_cast<int>(MoveMode::migrate) &&
                  DAXKV_EVICT == static_cast<int>(MoveMode::evict) &&
                  DAXKV_DRAIN == static_cast<int>(MoveMode::drain),
              "hotplug modes");

} // namespace
} // namespace daxkv
