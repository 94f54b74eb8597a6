#include "store/slot_states.hpp"

namespace daxkv {

SlotStates::SlotStates(Pool &pool) : pool_(pool), rows_(new std::vector<SlotState>[kMaxDevices]) {}

void SlotStates::size_device(uint32_t a, uint32_t slots) { rows_[a].assign(slots, SlotState{}); }

SlotRef SlotStates::start_write(uint32_t a, uint32_t slot) noexcept {
    SlotState &st = rows_[a][slot];
    st.generation_++;
    st.status_ = SlotStatus::inflight;
    st.borrows_ = 0;
    return SlotRef{a, slot, st.generation_};
}

void SlotStates::commit(const SlotRef &r) noexcept {
    rows_[r.arena][r.slot].status_ = SlotStatus::committed;
}

void SlotStates::release(const SlotRef &r) noexcept { free(r); }

void SlotStates::free(const SlotRef &r) noexcept {
    rows_[r.arena][r.slot].status_ = SlotStatus::free;
    DeviceRow &d = pool_[r.arena];
    d.alloc->release(r.slot);
    if (d.state.load(std::memory_order_relaxed) != DevState::active)
        pool_.slot_freed(r.arena); // a drain, remove or resize may be waiting for it
}

void SlotStates::retire(const SlotRef &r) noexcept {
    SlotState &st = rows_[r.arena][r.slot];
    // A quarantined slot is never reused, whatever entry still names it
    // when that entry goes.
    if (st.status_ == SlotStatus::quarantined)
        return;
    if (st.borrows_ > 0) {
        st.status_ = SlotStatus::pending_free;
        pending_free_++;
    } else {
        free(r);
    }
}

void SlotStates::give_back(uint32_t a, uint32_t slot) noexcept {
    DeviceRow &d = pool_[a];
    d.alloc->release(slot);
    // As free(): a drain (or a removal) may have looked while the slot was
    // taken, and finds the device empty only when told.
    if (d.state.load(std::memory_order_relaxed) != DevState::active)
        pool_.slot_freed(a);
}

void SlotStates::end_borrow(const SlotRef &r) noexcept {
    SlotState &st = rows_[r.arena][r.slot];
    st.borrows_--;
    if (st.borrows_ == 0 && st.status_ == SlotStatus::pending_free) {
        pending_free_--;
        free(r);
    }
}

void SlotStates::mark_quarantined(SlotState &st, uint32_t a) noexcept {
    if (st.status_ != SlotStatus::quarantined)
        pool_[a].quarantined++; // never freed: a removal must not wait for it
    st.status_ = SlotStatus::quarantined;
    st.quarantined_.store(true, std::memory_order_relaxed);
}

void SlotStates::quarantine(const SlotRef &r) noexcept {
    SlotState &st = rows_[r.arena][r.slot];
    st.borrows_--;
    if (st.status_ == SlotStatus::pending_free)
        pending_free_--;
    mark_quarantined(st, r.arena);
    // As free() and quarantine_faulted(): a drain waiting for the entry
    // this slot held counts it among those it need not wait for (a device
    // whose last entry a failed read dropped never reported drained).
    if (pool_[r.arena].state.load(std::memory_order_relaxed) != DevState::active)
        pool_.slot_freed(r.arena);
}

void SlotStates::quarantine_faulted(const SlotRef &r) noexcept {
    mark_quarantined(rows_[r.arena][r.slot], r.arena);
    // As free(): a drain or removal waiting for this write counts the slot
    // among those it need not wait for from now on.
    if (pool_[r.arena].state.load(std::memory_order_relaxed) != DevState::active)
        pool_.slot_freed(r.arena);
}

void SlotStates::lease(const SlotRef &r) noexcept {
    // hotplug tells leases from reads in progress
    if (rows_[r.arena][r.slot].leases_.fetch_add(1, std::memory_order_relaxed) == 0)
        leased_slots_++;
    leases_++;
}

void SlotStates::end_lease(const SlotRef &r) noexcept {
    if (rows_[r.arena][r.slot].leases_.fetch_sub(1, std::memory_order_relaxed) == 1)
        leased_slots_--;
    leases_--;
}

uint32_t SlotStates::leased_from(uint32_t a, uint32_t from_slot) const noexcept {
    const std::vector<SlotState> &row = rows_[a];
    uint32_t n = 0;
    for (size_t i = from_slot; i < row.size(); ++i)
        n += row[i].leases() > 0;
    return n;
}

uint32_t SlotStates::idle_quarantined_from(uint32_t a, uint32_t from_slot) const noexcept {
    const std::vector<SlotState> &row = rows_[a];
    uint32_t n = 0;
    for (size_t i = from_slot; i < row.size(); ++i)
        n += row[i].quarantined() && row[i].leases() == 0;
    return n;
}

void SlotStates::quarantine_recovered(uint32_t a, uint32_t slot) {
    pool_[a].alloc->take(slot);
    mark_quarantined(rows_[a][slot], a);
}

void SlotStates::take_recovered(uint32_t a, uint32_t slot, uint32_t generation) {
    pool_[a].alloc->take(slot);
    SlotState &st = rows_[a][slot];
    st.generation_ = generation;
    st.status_ = SlotStatus::committed;
}

} // namespace daxkv
