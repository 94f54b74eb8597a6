// NUMA placement of the copy workers, on simulated topologies (the build
// machines have one node) and on this host.
//
// Bad inputs tried here: an unknown node (-1), a node past the last one, a
// memory-only node without a distance table, a host with one node, a
// numa value other than auto/off (-EINVAL; also in test_config.cpp).
#include <gtest/gtest.h>

#include <atomic>
#include <chrono>
#include <cstring>
#include <mutex>
#include <pthread.h>
#include <sched.h>
#include <set>
#include <thread>
#include <vector>

#include <nlohmann/json.hpp>

#include "engine/copy_engine.hpp"
#include "engine/fault.hpp"
#include "helpers.hpp"
#include "platform/numa.hpp"

using namespace daxkv_test;
using daxkv::platform::placement_cpus;
using daxkv::platform::Topology;

namespace {

// Two sockets with four CPUs each, plus a CPU-less node 2 (a CXL expander)
// closer to socket 1, and a CPU-less node 3 equally far from both.
Topology two_sockets_and_cxl() {
    Topology t;
    t.cpus = {{0, 1, 2, 3}, {4, 5, 6, 7}, {}, {}};
    t.distance = {{10, 21, 24, 30}, {21, 10, 14, 30}, {24, 14, 10, 40}, {30, 30, 40, 10}};
    return t;
}

TEST(NumaPlacement, WorkersGoToTheDevicesNode) {
    Topology t = two_sockets_and_cxl();
    EXPECT_EQ(placement_cpus(t, 0), (std::vector<int>{0, 1, 2, 3}));
    EXPECT_EQ(placement_cpus(t, 1), (std::vector<int>{4, 5, 6, 7}));
}

TEST(NumaPlacement, AMemoryOnlyNodeUsesTheNearestNodeWithCpus) {
    Topology t = two_sockets_and_cxl();
    EXPECT_EQ(placement_cpus(t, 2), (std::vector<int>{4, 5, 6, 7}));
    // Equally near to both sockets: all their CPUs.
    EXPECT_EQ(placement_cpus(t, 3), (std::vector<int>{0, 1, 2, 3, 4, 5, 6, 7}));
    // No distance table: every node with CPUs is as near as any other.
    t.distance.clear();
    EXPECT_EQ(placement_cpus(t, 2), (std::vector<int>{0, 1, 2, 3, 4, 5, 6, 7}));
}

TEST(NumaPlacement, NoPinningWhenItCannotHelpOrTheNodeIsUnknown) {
    Topology t = two_sockets_and_cxl();
    EXPECT_TRUE(placement_cpus(t, -1).empty()); // a file arena: node unknown
    EXPECT_TRUE(placement_cpus(t, 4).empty());  // past the last node
    EXPECT_TRUE(placement_cpus(t, 1000).empty());
    Topology one;
    one.cpus = {{0, 1}};
    EXPECT_TRUE(placement_cpus(one, 0).empty()); // one node: nothing to choose
    Topology one_plus_cxl;
    one_plus_cxl.cpus = {{0, 1}, {}};
    EXPECT_TRUE(placement_cpus(one_plus_cxl, 1).empty());
    EXPECT_TRUE(placement_cpus(Topology(), 0).empty());
}

TEST(NumaPlacement, ThisHostHasAtLeastOneNodeWithCpus) {
    Topology t = daxkv::platform::host_topology();
    ASSERT_GE(t.nodes(), 1);
    size_t cpus = 0;
    for (const auto &c : t.cpus)
        cpus += c.size();
    EXPECT_GE(cpus, 1u);
    if (!t.distance.empty()) {
        ASSERT_EQ(t.distance.size(), t.cpus.size());
        EXPECT_EQ(t.distance[0][0], 10);
    }
}

// Records the CPU affinity of every thread other than the test's that runs
// a chunk.
class AffinityProbe : public daxkv::engine::FaultHook {
public:
    explicit AffinityProbe(pthread_t caller) : caller_(caller) {}
    int before_chunk(const daxkv::engine::CopyOp &, size_t, size_t) noexcept override {
        if (!pthread_equal(pthread_self(), caller_)) {
            cpu_set_t set;
            CPU_ZERO(&set);
            pthread_getaffinity_np(pthread_self(), sizeof set, &set);
            std::lock_guard<std::mutex> g(m_);
            std::set<int> cpus;
            for (int c = 0; c < CPU_SETSIZE; ++c)
                if (CPU_ISSET(c, &set))
                    cpus.insert(c);
            seen_.push_back(cpus);
        }
        // Slow every chunk down so that the pool's threads surely take some.
        std::this_thread::sleep_for(std::chrono::milliseconds(2));
        return 0;
    }
    std::vector<std::set<int>> seen() {
        std::lock_guard<std::mutex> g(m_);
        return seen_;
    }

private:
    pthread_t caller_;
    std::mutex m_;
    std::vector<std::set<int>> seen_;
};

TEST(NumaPlacement, TheEnginePinsItsWorkersToTheGivenCpus) {
    cpu_set_t mine;
    CPU_ZERO(&mine);
    ASSERT_EQ(pthread_getaffinity_np(pthread_self(), sizeof mine, &mine), 0);
    int cpu = -1;
    for (int c = 0; c < CPU_SETSIZE && cpu < 0; ++c)
        if (CPU_ISSET(c, &mine))
            cpu = c;
    ASSERT_GE(cpu, 0);
    daxkv::engine::CopyEngine engine(3, {cpu});
    EXPECT_EQ(engine.cpus(), std::vector<int>{cpu});
    const size_t kLen = 8 << 20;
    std::vector<char> src(kLen, 'x'), dst(kLen, 0);
    daxkv::engine::CopyOp op;
    op.dst = dst.data();
    op.src = src.data();
    op.len = kLen;
    AffinityProbe probe(pthread_self());
    daxkv::engine::testing::set_fault_hook(&probe);
    engine.run(&op, 1);
    daxkv::engine::testing::set_fault_hook(nullptr);
    EXPECT_EQ(dst, src);
    std::vector<std::set<int>> seen = probe.seen();
    ASSERT_FALSE(seen.empty()) << "no chunk ran on a pool thread";
    for (const auto &s : seen)
        EXPECT_EQ(s, std::set<int>{cpu});
}

class NumaStore : public StoreFixture {};

// A file arena has no node; on a device (DAXKV_TEST_DEVICE) the store
// reports the node discovery gives. Either way a host of one node (these
// machines, the QEMU guest) leaves the workers unpinned.
TEST_F(NumaStore, AFileArenaHasNoNodeAndItsWorkersAreNotPinned) {
    open(StoreSpec(4096, 4).set("numa", "auto"));
    std::string j(1 << 16, '\0');
    size_t needed = 0;
    ASSERT_EQ(daxkv_status_json(s(), &j[0], j.size(), &needed), 0);
    j.resize(needed - 1);
    nlohmann::json doc = nlohmann::json::parse(j);
    int node = -1;
    if (test_device()) {
        daxkv_device_info info;
        std::memset(&info, 0, sizeof info);
        info.struct_size = sizeof info;
        ASSERT_EQ(daxkv_probe(test_device(), &info), 0) << daxkv_errmsg();
        node = info.numa_node;
    }
    EXPECT_EQ(doc["devices"][0]["numa_node"], node);
    size_t nodes_with_cpus = 0;
    for (const auto &c : daxkv::platform::host_topology().cpus)
        nodes_with_cpus += !c.empty();
    if (test_device() && nodes_with_cpus > 1)
        GTEST_SKIP() << "on a host of several NUMA nodes a device's workers are pinned";
    EXPECT_TRUE(doc["worker_cpus"].is_array());
    EXPECT_TRUE(doc["worker_cpus"].empty());
}

} // namespace
