#include "platform/fork.hpp"

#include <atomic>
#include <pthread.h>

namespace daxkv {
namespace platform {
namespace {

std::atomic<uint64_t> generation{0};

void forked_child() noexcept { generation.fetch_add(1, std::memory_order_relaxed); }

// Registered at load, before any fork that could hand the child an object.
const int registered = pthread_atfork(nullptr, nullptr, forked_child);

} // namespace

uint64_t fork_generation() noexcept {
    (void)registered;
    return generation.load(std::memory_order_relaxed);
}

} // namespace platform
} // namespace daxkv
