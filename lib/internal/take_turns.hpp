// Work cut into numbered items that threads take in turn (the recovery
// scan's slot parts, the index rebuild's shards, daxkv check).
#pragma once

#include <cstdint>
#include <functional>

namespace daxkv {

// fn(i) for every item i in [0, count), on up to `threads` threads, the
// calling thread among them, each taking the next item when it is done
// with one. Threads that cannot be started (no memory, the limit on
// threads) leave their items to the others. The first exception fn throws
// stops the handing out of items and is rethrown once every thread has
// ended: one that left a thread's function, or this one while threads
// still ran, would end the process. Returns the threads that ran.
unsigned take_turns(uint64_t count, unsigned threads, const std::function<void(uint64_t)> &fn);

} // namespace daxkv
