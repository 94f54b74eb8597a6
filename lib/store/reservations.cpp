#include "store/reservations.hpp"

#include <cerrno>
#include <shared_mutex>


namespace daxkv {

// A reservation from its start to its listing (or its failure), as
// settle() sees it.
class Reservations::UnderWay {
public:
    explicit UnderWay(Reservations &r) : r_(r) {
        std::lock_guard<std::mutex> g(r_.m_);
        ticket_ = r_.next_ticket_++;
        r_.unlisted_.insert(ticket_);
    }
    ~UnderWay() {
        std::lock_guard<std::mutex> g(r_.m_);
        r_.unlisted_.erase(ticket_);
        r_.listed_.notify_all();
    }
    UnderWay(const UnderWay &) = delete;
    UnderWay &operator=(const UnderWay &) = delete;

private:
    Reservations &r_;
    uint64_t ticket_;
};

int Reservations::reserve(std::string_view key, size_t len,
                          std::unique_ptr<ReservationState> *out) {
    CallGate::Call call(c_.gate);
    std::shared_ptr<HeldSlots> taker = HeldSlots::mine(); // before the slot is taken
    UnderWay under_way(*this);
    Pending p;
    if (int rc = writes_.claim(key, len, 0, p))
        return rc;
    std::unique_ptr<ReservationState> r;
    try {
        r = std::make_unique<ReservationState>();
        r->key.assign(key);
        r->hash = p.hash;
        r->data = p.dst;
        r->len = len;
        {
            std::shared_lock<std::shared_mutex> pool(c_.pool.mapping_lock());
            r->device = c_.pool[p.inflight->ref.arena].arena;
        }
        p.inflight->reservation = true;
        // Holding its slot before it is listed: on_device() reads the slot
        // of every listed reservation as soon as it can take m_.
        r->inflight = std::move(p.inflight);
        if (hook_)
            hook_(r->inflight->ref.arena);
        std::lock_guard<std::mutex> g(m_);
        open_.insert(r.get());
        r->held.pool = &c_.pool;
        r->held.arena = r->inflight->ref.arena;
        r->held.slot = r->inflight->ref.slot;
        r->held.lease = false;
        taker->add(r->held, std::move(taker));
    } catch (...) {
        if (r && r->inflight)
            p.inflight = std::move(r->inflight);
        writes_.abandon(p);
        throw;
    }
    *out = std::move(r);
    return 0;
}

uint8_t Reservations::end(ReservationState &r, bool committing) noexcept {
    std::lock_guard<std::mutex> g(m_);
    open_.erase(&r);
    HeldSlots::remove(r.held);
    Inflight &inf = *r.inflight;
    uint8_t was = Inflight::kHeld;
    if (committing && inf.phase.compare_exchange_strong(was, Inflight::kCommitting))
        return Inflight::kHeld;
    return inf.phase.load();
}

Pending Reservations::pending_of(ReservationState &r) noexcept {
    Pending p;
    p.key = r.key;
    p.hash = r.hash;
    p.inflight = std::move(r.inflight);
    p.dst = r.data;
    return p;
}

int Reservations::commit(ReservationState &r) {
    const uint8_t was = end(r, true);
    Pending p = pending_of(r);
    if (was == Inflight::kDetached) {
        // Its device was removed (or shrunk) with DAXKV_FORCE: nothing of it
        // may be written there any more.
        writes_.abandon(p);
        c_.counters.puts_failed++;
        fail(-ECANCELED, "a forced removal or shrink of its device cancelled the reservation");
    }
    // Its device stays in the pool while the write is in flight; the
    // reservation's own reference to the mapping is let go now, so that a
    // removal that waited for this write does not leave the file mapped
    // (and locked) behind it.
    r.device.reset();
    try {
        CallGate::Call call(c_.gate);
        const bool hashed = c_.copier.hashes_writes();
        uint64_t value_hash = 0;
        if (hashed) {
            // The caller wrote the bytes in place: they are read for the
            // first time here, under the SIGBUS guard as a get reads them.
            if (const int rc = c_.copier.checksum(r.data, r.len, &value_hash)) {
                c_.counters.puts_failed++;
                throw writes_.copy_error(p, rc, "hashing the reserved value");
            }
        }
        int status = 0;
        Finished w{&p, r.meta.data(), static_cast<uint32_t>(r.meta.size()), value_hash,
                   &status};
        writes_.commit_on_devices(&w, 1, hashed);
        return writes_.commit_in_index(w);
    } catch (...) {
        // After shutdown, out of memory, or a fault reading the value: the
        // slot goes back (quarantined where it faulted).
        writes_.abandon(p);
        throw;
    }
}

void Reservations::abort(ReservationState &r) noexcept {
    const uint8_t phase = end(r, false);
    Pending p = pending_of(r);
    // Held until the slot is given back only where a forced removal
    // detached it (the pool may have let go of the device then). Otherwise
    // the pool holds the device until the slot is back, and a removal that
    // waits for it must find the file unmapped (and unlocked) once it ends.
    std::shared_ptr<arena::Arena> device = std::move(r.device);
    if (phase != Inflight::kDetached)
        device.reset();
    writes_.abandon(p);
}

void Reservations::settle() {
    std::unique_lock<std::mutex> g(m_);
    if (unlisted_.empty())
        return;
    // Only those that began before: later ones cannot take a slot the
    // caller has stopped handing out, and waiting for them could last for
    // as long as reservations keep coming.
    const uint64_t last = next_ticket_ - 1;
    listed_.wait(g, [&] { return unlisted_.empty() || *unlisted_.begin() > last; });
}

size_t Reservations::on_device(uint32_t a, uint32_t from_slot, bool detach) {
    std::lock_guard<std::mutex> g(m_);
    size_t n = 0;
    for (ReservationState *r : open_) {
        Inflight &inf = *r->inflight;
        if (inf.ref.arena != a || inf.ref.slot < from_slot)
            continue;
        uint8_t held = Inflight::kHeld;
        if (!detach) {
            n += inf.phase.load() == held;
            continue;
        }
        if (!inf.phase.compare_exchange_strong(held, Inflight::kDetached))
            continue; // its commit has begun: waited for like any write
        ++n;
        Index::Locked l = c_.index.lookup(r->key, r->hash);
        if (!inf.canceled) {
            // The key is no longer in flight: contains, put and remove see
            // what is committed, as after an abort.
            if (l && l->inflight == &inf) {
                l->inflight = nullptr;
                c_.index.erase_if_empty(l);
            }
            inf.canceled = true;
        }
        c_.pool[a].detached++;
        // Its slot holds up no drain any more (hotplug.cpp, wait_drained).
        HeldSlots::remove(r->held);
    }
    return n;
}

size_t Reservations::detached_on(uint32_t a, uint32_t from_slot) {
    std::lock_guard<std::mutex> g(m_);
    size_t n = 0;
    for (ReservationState *r : open_) {
        const Inflight &inf = *r->inflight;
        n += inf.ref.arena == a && inf.ref.slot >= from_slot &&
             inf.phase.load() == Inflight::kDetached;
    }
    return n;
}

} // namespace daxkv
