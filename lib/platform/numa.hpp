// NUMA placement of the copy workers: they run on the CPUs of the node that
// holds the device's memory, so that the loads from (and stores to) the
// arena stay node-local. The decision is a pure function of a topology
// description, so that tests can simulate hosts with several nodes (these
// machines have one).
#pragma once

#include <vector>

namespace daxkv {
namespace platform {

struct Topology {
    // cpus[n]: the CPUs of node n (empty: no such node, or a memory-only
    // node, as CXL expanders and PMEM in system-ram mode usually are).
    std::vector<std::vector<int>> cpus;
    // distance[a][b]: the SLIT distance (10 local); may be empty.
    std::vector<std::vector<int>> distance;

    int nodes() const noexcept { return static_cast<int>(cpus.size()); }
};

// This host's topology from libnuma (one node holding every CPU when
// libnuma is not built in or the kernel has no NUMA support).
Topology host_topology();

// The CPUs the workers copying from memory on `node` should run on: the
// node's own CPUs; for a memory-only node, those of the nearest node(s)
// with CPUs (by distance). Empty means "do not pin": the node is unknown
// (-1) or out of range, or the host has a single node with CPUs, where
// pinning buys nothing.
std::vector<int> placement_cpus(const Topology &t, int node);

// Restrict the calling thread to cpus (empty: leave it alone). Returns 0
// or a negative errno.
int pin_current_thread(const std::vector<int> &cpus) noexcept;

} // namespace platform
} // namespace daxkv
