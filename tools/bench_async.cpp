// daxkv bench: the cost of the asynchronous path for a 1-item batch —
// daxkv_submit until its completion comes back from daxkv_poll — measured
// against the synchronous daxkv_get_batch of the same item in the same run.
#include <algorithm>
#include <cerrno>
#include <chrono>
#include <poll.h>
#include <sched.h>
#include <string>
#include <vector>

#include "bench_async.hpp"

namespace daxkv_cli {
namespace {

using Clock = std::chrono::steady_clock;

double micros(Clock::time_point a, Clock::time_point b) {
    return std::chrono::duration<double, std::micro>(b - a).count();
}

struct Dist {
    double median = 0, p99 = 0;
};

Dist dist(std::vector<double> &v) {
    Dist d;
    if (v.empty())
        return d;
    std::sort(v.begin(), v.end());
    d.median = v[v.size() / 2];
    d.p99 = v[std::min(v.size() - 1, v.size() * 99 / 100)];
    return d;
}

// One completion, by spinning on daxkv_poll or by sleeping in poll(2) on
// the event fd. Returns the completion's result, or a negative error.
int wait_one(daxkv_store *s, int fd, bool spin) {
    daxkv_completion c;
    for (;;) {
        int n = daxkv_poll(s, &c, 1);
        if (n < 0)
            return n;
        if (n == 1)
            return c.result;
        if (!spin) {
            struct pollfd p = {fd, POLLIN, 0};
            if (::poll(&p, 1, 10000) <= 0)
                return -ETIMEDOUT;
        } else {
            sched_yield(); // the dispatcher may need this CPU
        }
    }
}

} // namespace

nlohmann::json bench_async_overhead(daxkv_store *s, const std::string &key, void *buf,
                                    size_t value_len, size_t cap, size_t rounds,
                                    std::string *error) {
    daxkv_item it{};
    auto reset = [&](size_t capacity) {
        it = daxkv_item{};
        it.key = key.data();
        it.key_len = key.size();
        it.data = buf;
        it.len = capacity;
    };
    int fd = daxkv_event_fd(s);
    if (fd < 0) {
        *error = "daxkv_event_fd failed";
        return nullptr;
    }
    std::vector<double> sync_us, spin_us, fd_us, handoff_us;
    sync_us.reserve(rounds);
    spin_us.reserve(rounds);
    fd_us.reserve(rounds);
    handoff_us.reserve(rounds);
    for (size_t r = 0; r < rounds; ++r) {
        reset(value_len);
        auto t0 = Clock::now();
        int rc = daxkv_get_batch(s, &it, 1, 0);
        auto t1 = Clock::now();
        if (rc != 1) {
            *error = "daxkv_get_batch of one item failed";
            return nullptr;
        }
        sync_us.push_back(micros(t0, t1));
        // Modes 0 and 1: a batch small enough to run on this thread;
        // mode 2: a destination capacity above the inline limit sends the
        // same 1-item batch to the dispatcher thread (the hand-off cost).
        for (int mode = 0; mode < 3; ++mode) {
            reset(mode == 2 ? cap : value_len);
            t0 = Clock::now();
            rc = daxkv_submit(s, DAXKV_OP_GET, &it, 1, 0, r);
            if (rc == 0)
                rc = wait_one(s, fd, mode == 0);
            t1 = Clock::now();
            if (rc != 1 || it.status != 0) {
                *error = "asynchronous get of one item failed";
                return nullptr;
            }
            (mode == 0 ? spin_us : mode == 1 ? fd_us : handoff_us).push_back(micros(t0, t1));
        }
    }
    Dist sy = dist(sync_us), sp = dist(spin_us), ev = dist(fd_us), ho = dist(handoff_us);
    return {{"rounds", rounds},
            {"value_bytes", value_len},
            {"handoff_capacity_bytes", cap},
            {"async_dispatcher_eventfd_us", {{"median", ho.median}, {"p99", ho.p99}}},
            {"overhead_dispatcher_eventfd_us", ho.median - sy.median},
            {"sync_get_batch_us", {{"median", sy.median}, {"p99", sy.p99}}},
            {"async_spin_poll_us", {{"median", sp.median}, {"p99", sp.p99}}},
            {"async_eventfd_us", {{"median", ev.median}, {"p99", ev.p99}}},
            {"overhead_spin_poll_us", sp.median - sy.median},
            {"overhead_eventfd_us", ev.median - sy.median}};
}

} // namespace daxkv_cli
