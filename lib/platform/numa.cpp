#include "platform/numa.hpp"

#include <algorithm>
#include <cerrno>
#include <climits>
#include <memory>
#include <pthread.h>
#include <sched.h>
#include <thread>

#include "config.h"

#ifdef HAVE_LIBNUMA
#include <numa.h>
#endif

namespace daxkv {
namespace platform {

Topology host_topology() {
    Topology t;
#ifdef HAVE_LIBNUMA
    if (numa_available() >= 0) {
        int max = numa_max_node();
        int ncpus = numa_num_configured_cpus();
        t.cpus.resize(static_cast<size_t>(max) + 1);
        t.distance.assign(t.cpus.size(), std::vector<int>(t.cpus.size(), 0));
        // Freed however the loop ends (push_back may run out of memory).
        struct FreeMask {
            void operator()(struct bitmask *m) const noexcept { numa_free_cpumask(m); }
        };
        const std::unique_ptr<struct bitmask, FreeMask> owned(numa_allocate_cpumask());
        struct bitmask *mask = owned.get();
        for (int n = 0; n <= max; ++n) {
            if (mask && numa_node_to_cpus(n, mask) == 0)
                for (int c = 0; c < ncpus; ++c)
                    if (numa_bitmask_isbitset(mask, static_cast<unsigned>(c)))
                        t.cpus[n].push_back(c);
            for (int m = 0; m <= max; ++m)
                t.distance[n][m] = numa_distance(n, m);
        }
        return t;
    }
#endif
    unsigned n = std::thread::hardware_concurrency();
    t.cpus.resize(1);
    for (unsigned c = 0; c < std::max(1u, n); ++c)
        t.cpus[0].push_back(static_cast<int>(c));
    return t;
}

std::vector<int> placement_cpus(const Topology &t, int node) {
    if (node < 0 || node >= t.nodes())
        return {};
    int with_cpus = 0;
    for (const auto &c : t.cpus)
        with_cpus += !c.empty();
    if (with_cpus <= 1)
        return {};
    if (!t.cpus[node].empty())
        return t.cpus[node];
    // A memory-only node: the nearest nodes that have CPUs (all of them on
    // a tie). Without a distance table every node counts as equally near.
    int best = INT_MAX;
    std::vector<int> out;
    for (int n = 0; n < t.nodes(); ++n) {
        if (t.cpus[n].empty())
            continue;
        int d = node < static_cast<int>(t.distance.size()) &&
                        n < static_cast<int>(t.distance[node].size())
                    ? t.distance[node][n]
                    : 0;
        if (d < best) {
            best = d;
            out.clear();
        }
        if (d == best)
            out.insert(out.end(), t.cpus[n].begin(), t.cpus[n].end());
    }
    std::sort(out.begin(), out.end());
    return out;
}

int pin_current_thread(const std::vector<int> &cpus) noexcept {
    if (cpus.empty())
        return 0;
    cpu_set_t set;
    CPU_ZERO(&set);
    for (int c : cpus)
        if (c >= 0 && c < CPU_SETSIZE)
            CPU_SET(c, &set);
    int rc = pthread_setaffinity_np(pthread_self(), sizeof set, &set);
    return -rc;
}

} // namespace platform
} // namespace daxkv
