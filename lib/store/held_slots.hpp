// The slots each thread holds: the leases it took and has not released,
// and the reservations it made and has not ended. A forced removal or
// shrink waits for the leases of the device's entries (above the new end),
// and the pool calls, the leases behind its lease gate and a wait for a
// drain wait for it; a drain waits for the device's open reservations as
// well. A thread holding one of those slots would wait for itself, for
// good: such a call looks here first and fails with -EDEADLK.
//
// A slot belongs to the thread that took it until it is released, on
// whatever thread that is (daxkv.h lets a lease be released, and a
// reservation be ended, on another thread): that unlinks it from its
// taker's list, under that list's lock. So a thread that handed a lease
// over to another one to release still counts as holding it until then; a
// thread that never took it never does. A reservation a forced removal or
// shrink detached is unlinked then: it holds up no drain any more.
//
// Each slot is linked into its taker's list (no allocation, so that
// taking and releasing one costs a lock nobody else contends for, short of
// a release on another thread).
#pragma once

#include <cstdint>
#include <memory>
#include <mutex>

#include "platform/fork.hpp"

namespace daxkv {

class HeldSlots;

// What a lease or reservation records of itself for its taker's list (part
// of LeaseState and ReservationState). Unlinked at the latest when it is
// destroyed.
struct HeldSlot {
    HeldSlot() = default;
    ~HeldSlot();
    HeldSlot(const HeldSlot &) = delete;
    HeldSlot &operator=(const HeldSlot &) = delete;

    const void *pool = nullptr; // the store's Pool: slots of other stores are not counted
    uint32_t arena = 0, slot = 0;
    bool lease = true; // else a reservation
    std::shared_ptr<HeldSlots> taker; // null until linked, and once unlinked
    HeldSlot *prev = nullptr, *next = nullptr;
};

class HeldSlots {
public:
    // The calling thread's list (made on its first slot; throws bad_alloc).
    // A child made by fork(2) starts a list of its own: the parent's may
    // have been locked by another thread of the parent at the fork.
    static std::shared_ptr<HeldSlots> mine() {
        std::shared_ptr<HeldSlots> &h = current();
        if (!h || h->generation_ != platform::fork_generation())
            h = std::make_shared<HeldSlots>();
        return h;
    }
    // Link h (filled in but for taker) into this list.
    void add(HeldSlot &h, std::shared_ptr<HeldSlots> self) noexcept {
        std::lock_guard<std::mutex> g(m_);
        h.prev = nullptr;
        h.next = head_;
        if (head_)
            head_->prev = &h;
        head_ = &h;
        h.taker = std::move(self);
    }
    // Unlink h from its taker's list, from any thread; nothing if not linked.
    static void remove(HeldSlot &h) noexcept {
        std::shared_ptr<HeldSlots> t = std::move(h.taker);
        // A slot a forked child inherited is in a list of the parent's,
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
    // Whether the calling thread holds a lease (with reservations, or a
    // reservation) of a slot of pool's device row `arena` at from_slot or
    // above; *slot and *lease say which.
    static bool calling_thread_holds(const void *pool, uint32_t arena, uint32_t from_slot,
                                     bool reservations, uint32_t *slot, bool *lease) noexcept {
        const std::shared_ptr<HeldSlots> &t = current();
        if (!t || t->generation_ != platform::fork_generation())
            return false;
        std::lock_guard<std::mutex> g(t->m_);
        for (const HeldSlot *h = t->head_; h; h = h->next) {
            if (h->pool == pool && h->arena == arena && h->slot >= from_slot &&
                (h->lease || reservations)) {
                *slot = h->slot;
                *lease = h->lease;
                return true;
            }
        }
        return false;
    }

private:
    static std::shared_ptr<HeldSlots> &current() noexcept {
        thread_local std::shared_ptr<HeldSlots> h;
        return h;
    }

    const uint64_t generation_ = platform::fork_generation();
    std::mutex m_;
    HeldSlot *head_ = nullptr; // guarded by m_
};

inline HeldSlot::~HeldSlot() { HeldSlots::remove(*this); }

} // namespace daxkv
