// Where a store's copy workers run: on the NUMA node of its devices.
#include <algorithm>
#include <utility>

#include "platform/numa.hpp"
#include "store/store.hpp"

namespace daxkv {

std::vector<int> Store::worker_cpus() const {
    if (!cfg_.numa)
        return {};
    // One engine serves every arena of the store: it goes where most of the
    // capacity is (the first device on a tie). A pool spread over nodes
    // would want one engine per node.
    std::vector<std::pair<int, uint64_t>> bytes_by_node;
    for (const auto &a : arenas_) {
        if (!a.arena)
            continue; // missing at open
        int node = a.arena->mapping().info().numa_node;
        uint64_t bytes = a.arena->layout().arena_bytes;
        auto it = std::find_if(bytes_by_node.begin(), bytes_by_node.end(),
                               [&](const std::pair<int, uint64_t> &p) { return p.first == node; });
        if (it == bytes_by_node.end())
            bytes_by_node.emplace_back(node, bytes);
        else
            it->second += bytes;
    }
    if (bytes_by_node.empty())
        return {}; // no device mapped yet (a hotplug pool may start empty)
    auto best = std::max_element(
        bytes_by_node.begin(), bytes_by_node.end(),
        [](const std::pair<int, uint64_t> &x, const std::pair<int, uint64_t> &y) {
            return x.second < y.second;
        });
    return platform::placement_cpus(platform::host_topology(), best->first);
}

} // namespace daxkv
