// Reservations: a slot handed to the caller to fill in place, committed or
// aborted later (the write path's claim and commit, with the copy left to
// the caller). The registry of open reservations lets hotplug find those on
// a device it empties: it never waits for one (its caller holds it as long
// as it likes) but refuses (-EBUSY) or, with DAXKV_FORCE, detaches it.
#pragma once

#include <condition_variable>
#include <cstddef>
#include <cstdint>
#include <functional>
#include <memory>
#include <mutex>
#include <set>
#include <string>
#include <string_view>
#include <unordered_set>

#include "store/core.hpp"
#include "store/held_slots.hpp"
#include "store/writes.hpp"

namespace daxkv {

class Store;

struct ReservationState {
    std::shared_ptr<Store> store; // kept alive by the handle (set by lib/capi)
    std::string key;
    uint64_t hash = 0;
    InflightPtr inflight;
    char *data = nullptr;
    size_t len = 0;
    std::string meta;
    // The device of the slot: mapped for as long as the caller may write.
    std::shared_ptr<arena::Arena> device;
    // In the list of the thread that made it until it ends or is detached.
    HeldSlot held;
};

class Reservations {
public:
    Reservations(Core &core, Writes &writes) : c_(core), writes_(writes) {}
    Reservations(const Reservations &) = delete;
    Reservations &operator=(const Reservations &) = delete;

    // 0 with *out set, or kExisted (*out stays null); throws Error.
    int reserve(std::string_view key, size_t len, std::unique_ptr<ReservationState> *out);
    // 0; throws Error (-ECANCELED when a forced removal or shrink of its
    // device detached it, or a forced remove of the key cancelled it).
    int commit(ReservationState &r);
    void abort(ReservationState &r) noexcept;

    // Open reservations with a slot of device a at from_slot or above; with
    // detach, each of them is detached (its commit fails with -ECANCELED).
    // resv_m_ may be followed by a shard lock.
    size_t on_device(uint32_t a, uint32_t from_slot, bool detach);
    // Of those, the ones detached and not yet ended: their slots stay
    // taken for as long as their callers hold them, and hold nothing.
    size_t detached_on(uint32_t a, uint32_t from_slot);
    // Waits until every reservation that began before this call is listed
    // (or has failed). A reservation holds its slot before it is listed:
    // hotplug, having stopped new slots on a device, settles before its
    // last look, so that none of the device's slots is held by a
    // reservation it cannot see. Returns at once when none is under way.
    void settle();

    // Tests only: called in reserve() between taking the slot and listing
    // it, with the row of the slot's device.
    void set_hook(std::function<void(uint32_t device)> fn) { hook_ = std::move(fn); }

private:
    class UnderWay;

    // r ends (commit or abort): out of the registry. Returns the phase it
    // had, having claimed it for its commit when it was held.
    uint8_t end(ReservationState &r, bool committing) noexcept;
    static Pending pending_of(ReservationState &r) noexcept;

    Core &c_;
    Writes &writes_;
    std::mutex m_;
    std::unordered_set<ReservationState *> open_;
    // Reservations under way (claiming their slot, not listed yet), by the
    // number each took when it began; settle() waits for those it saw.
    uint64_t next_ticket_ = 0;
    std::set<uint64_t> unlisted_;
    std::condition_variable listed_;
    std::function<void(uint32_t)> hook_;
};

} // namespace daxkv
