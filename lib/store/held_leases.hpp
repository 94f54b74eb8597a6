// The leases each thread took and has not released yet. A forced removal or
// shrink waits for the leases of the device's entries (above the new end),
// and the pool calls, the leases behind its lease gate and a wait for a
// drain wait for it: a thread holding one of those leases would wait for
// itself, for good. Such a call looks here first and fails with -EDEADLK.
//
// A lease belongs to the thread that took it until it is released, on
// whatever thread that is (daxkv.h allows any): a release elsewhere
// unlinks it from its taker's list, under that list's lock. So a thread
// that handed a lease over to another one to release still counts as
// holding it until then; a thread that never took it never does.
//
// Each lease is linked into its taker's list (no allocation, so that
// taking and releasing a lease costs a lock nobody else contends for,
// short of a release on another thread).
#pragma once

#include <cstdint>
#include <memory>
#include <mutex>

#include "platform/fork.hpp"

namespace daxkv {

class HeldLeases;

// What a lease records of itself for its taker's list (part of LeaseState).
// Unlinked at the latest when it is destroyed.
struct HeldLease {
    HeldLease() = default;
    ~HeldLease();
    HeldLease(const HeldLease &) = delete;
    HeldLease &operator=(const HeldLease &) = delete;

    const void *pool = nullptr; // the store's Pool: leases of other stores are not counted
    uint32_t arena = 0, slot = 0;
    std::shared_ptr<HeldLeases> taker; // null until linked, and once unlinked
    HeldLease *prev = nullptr, *next = nullptr;
};

class HeldLeases {
public:
    // The calling thread's list (made on its first lease; throws bad_alloc).
    // A child made by fork(2) starts a list of its own: the parent's may
    // have been locked by another thread of the parent at the fork.
    static std::shared_ptr<HeldLeases> mine() {
        std::shared_ptr<HeldLeases> &h = current();
        if (!h || h->generation_ != platform::fork_generation())
            h = std::make_shared<HeldLeases>();
        return h;
    }
    // Link h (filled in but for taker) into this list.
    void add(HeldLease &h, std::shared_ptr<HeldLeases> self) noexcept {
        std::lock_guard<std::mutex> g(m_);
        h.prev = nullptr;
        h.next = head_;
        if (head_)
            head_->prev = &h;
        head_ = &h;
        h.taker = std::move(self);
    }
    // Unlink h from its taker's list, from any thread; nothing if not linked.
    static void remove(HeldLease &h) noexcept {
        std::shared_ptr<HeldLeases> t = std::move(h.taker);
        // A lease a forked child inherited is in a list of the parent's,
        // which no thread of the child looks at (mine()).
        if (!t || t->generation_ != platform::fork_generation())
            return;
        std::lock_guard<std::mutex> g(t->m_);
        if (h.prev)
            h.prev->next = h.next;
        else
            t->head_ = h.next;
        if (h.next)
            h.next->prev = h.prev;
        h.prev = h.next = nullptr;
    }
    // Whether the calling thread took a lease, not released yet, of an
    // entry of pool's device row `arena` at from_slot or above; *slot gets
    // its slot.
    static bool calling_thread_holds(const void *pool, uint32_t arena, uint32_t from_slot,
                                     uint32_t *slot) noexcept {
        const std::shared_ptr<HeldLeases> &t = current();
        if (!t || t->generation_ != platform::fork_generation())
            return false;
        std::lock_guard<std::mutex> g(t->m_);
        for (const HeldLease *h = t->head_; h; h = h->next) {
            if (h->pool == pool && h->arena == arena && h->slot >= from_slot) {
                *slot = h->slot;
                return true;
            }
        }
        return false;
    }

private:
    static std::shared_ptr<HeldLeases> &current() noexcept {
        thread_local std::shared_ptr<HeldLeases> h;
        return h;
    }

    const uint64_t generation_ = platform::fork_generation();
    std::mutex m_;
    HeldLease *head_ = nullptr; // guarded by m_
};

inline HeldLease::~HeldLease() { HeldLeases::remove(*this); }

} // namespace daxkv
