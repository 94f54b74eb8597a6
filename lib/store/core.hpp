// What every path of a store shares: its configuration, the calls in
// flight, the event thread, the devices (pool), the state of their slots,
// the key index, the pool history, the counters and the copy rules. Each is
// a type with invariants of its own; Core only holds them, in the order
// they are built (and destroyed in reverse). The paths (entries.hpp,
// writes.hpp, reads.hpp, hotplug.hpp, gpu.hpp, reports.hpp) take a Core.
#pragma once

#include "arena/arena.hpp"
#include "store/config.hpp"
#include "store/copies.hpp"
#include "store/counters.hpp"
#include "store/events.hpp"
#include "store/gate.hpp"
#include "store/history.hpp"
#include "store/index.hpp"
#include "store/metrics.hpp"
#include "store/pool.hpp"
#include "store/slot_states.hpp"

namespace daxkv {

struct Core {
    explicit Core(const Config &c)
        : cfg(c), pool(cfg, gate, events), slots(pool), index(cfg), history(cfg, pool, counters),
          copier(cfg) {}
    Core(const Core &) = delete;
    Core &operator=(const Core &) = delete;

    const Config cfg;
    CallGate gate;
    EventThread events;
    Pool pool;
    SlotStates slots;
    Index index;
    Counters counters;
    History history;
    Metrics metrics;
    Copier copier;
    // What recovery found when the store was opened.
    arena::RecoveryCounts recovered;
};

} // namespace daxkv
