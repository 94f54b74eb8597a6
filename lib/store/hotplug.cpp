// Runtime changes of the pool: add, remove (migrate, evict, drain) and
// resize. hotplug.hpp's turn only keeps two runtime changes apart; the
// data path never takes it. A device's state decides what the data path
// does with it (pool.hpp); a change that fails leaves the device as it was
// (Undo), never migrating, resizing or gating leases. Moving entries away
// is migrate.cpp's.
#include <algorithm>
#include <cerrno>
#include <chrono>
#include <shared_mutex>

#include "internal/undo.hpp"
#include "internal/util.hpp"
#include "store/hotplug.hpp"
#include "store/recovery.hpp"

namespace daxkv {

namespace {
// The unit an arena's size is laid out in (the pool rounds sizes to it).
constexpr uint64_t kArenaPageBytes = 4096;

// What a failure to map or grow a device was, in a message that does not
// name the path (the log has the cause with it): -ENOSPC's description is
// a put's ("no free slot ..."), not the file system's.
const char *mapping_failure_text(int code) noexcept {
    if (code == -ENOSPC)
        return "no room: the file system cannot hold its blocks, or the device is too small";
    if (code == -EIO)
        return "an I/O error: a write-back or sync the file system refused, bad media, or a "
               "file cut short";
    if (code == -EBUSY) // not a pin, lease or write of one of its keys (error_text's words)
        return "it is in use: its lock is held, by another store or process, or by this store "
               "(the same device under another path, or one of its devices still mapped for an "
               "open reservation)";
    return error_text(code);
}
} // namespace

class Hotplug::Turn {
public:
    Turn(Hotplug &h, const char *what) : h_(h) { h_.take_turn(what); }
    ~Turn() { h_.give_turn(); }
    Turn(const Turn &) = delete;
    Turn &operator=(const Turn &) = delete;

private:
    Hotplug &h_;
};

void Hotplug::take_turn(const char *what) {
    auto g = c_.pool.signals();
    for (;;) {
        // A call that entered before the shutdown, but got here after it,
        // changes nothing: shutdown wakes the calls that wait, and a change
        // begun now would run on after them.
        if (c_.gate.closed())
            fail(-ESHUTDOWN, "the store is shut down");
        if (!busy_)
            break;
        // The change under way may be a forced one waiting for leases
        // (wait_until_empty), which wakes this wait when it begins to.
        c_.pool.fail_if_caller_holds_awaited_lease(what);
        c_.pool.wait_signal(g);
    }
    busy_ = true;
}

void Hotplug::give_turn() noexcept {
    {
        auto g = c_.pool.signals();
        busy_ = false;
    }
    c_.pool.wake_all();
}

void Hotplug::check_enabled(const char *what) const {
    if (!c_.cfg.hotplug)
        fail(-EPERM, "%s: DAX hotplug is disabled (open the store with hotplug=1)", what);
}

int Hotplug::add(const std::string &path, uint64_t bytes) {
    check_enabled("add");
    CallGate::Call call(c_.gate);
    Turn turn(*this, "the add waits for the forced removal or shrink under way, which");
    // A path that left the pool (removed, or missing at open) comes back in
    // its old row: a path added and removed again and again does not use up
    // the table. Not a row that detached reservations still free slots of.
    int old_row = -1;
    for (uint32_t a = 0; a < c_.pool.size(); ++a) {
        const DeviceRow &d = c_.pool[a];
        DevState st = d.state.load();
        if (d.path != path || path == "mem:")
            continue;
        if (st == DevState::removed || st == DevState::missing) {
            // The row a missing device was configured in comes first.
            if (d.detached.load() == 0 &&
                (old_row < 0 || c_.pool[old_row].state.load() != DevState::missing))
                old_row = static_cast<int>(a);
            continue;
        }
        if (d.bytes == bytes)
            return 0; // already there, same size: nothing to do (LMCache: 200 ok)
        return set_error(-EBUSY, "the device is already in the pool with a different size");
    }
    DeviceRow *row = old_row >= 0 ? &c_.pool[old_row] : c_.pool.rows().next_row();
    if (!row)
        fail(-ENOSPC, "the pool already holds its maximum of %u devices (removed ones included)",
             kMaxDevices);
    const uint32_t a = old_row >= 0 ? static_cast<uint32_t>(old_row) : c_.pool.size();
    // Mapped into a row of its own first: a failure leaves the table (and an
    // old row, still a tombstone) as it was.
    DeviceRow fresh;
    try {
        c_.pool.map_device(fresh, DeviceSpec{path, bytes});
    } catch (const Error &e) {
        // The cause names the path: log it, fail with a message without it.
        log(kLogErr, "device add of %s failed: %s", path.c_str(), e.what());
        fail(e.code(), "failed to map the device (%s; the cause is logged)",
             mapping_failure_text(e.code()));
    }
    const uint32_t limit = fresh.alloc->slots();
    // Read and copied before the row takes the arena: a failure from there
    // on would leave the device mapped (and locked) in a row that is not in
    // use. The scan runs threads and allocates for every entry.
    arena::RecoveryCounts counts;
    std::vector<uint32_t> unreadable;
    const std::vector<arena::RecoveredEntry> found =
        scan_device(*fresh.arena, path, counts, unreadable);
    const bool history = c_.history.kept() && !fresh.arena->mapping().volatile_memory();
    const std::vector<uint64_t> table =
        history ? History::own_table(*fresh.arena) : std::vector<uint64_t>();
    std::string new_path = old_row < 0 ? path : std::string();
    {
        // Readers of every row (status, stats) are kept out while it changes.
        std::unique_lock<std::shared_mutex> g(c_.pool.mapping_lock());
        c_.slots.size_device(a, static_cast<uint32_t>(fresh.arena->layout().slot_count));
        row->arena = std::move(fresh.arena);
        // An old row keeps its allocator: a writer that chose the row before
        // its device left may still call it (and gets no slot, limit 0,
        // until the device is active again below). A new row is not
        // published yet.
        if (old_row >= 0)
            row->alloc->reset(fresh.alloc->formatted());
        else
            row->alloc = std::move(fresh.alloc);
        row->numa_node = fresh.numa_node;
        row->missing_reason.clear();
        if (old_row < 0)
            row->path = std::move(new_path); // an old row has it already (read without a lock)
        row->bytes = bytes;
        row->id = c_.pool.next_device_id();
    }
    row->drained.store(false);
    row->lease_gate.store(false);
    row->pin_gate.store(false);
    row->quarantined.store(0);
    quarantine_unreadable(c_, a, unreadable);
    // Pool history: the device's floor as it was (what it saw of the pool),
    // and its removal table taken into the pool's.
    // An arena that names the running open as its last is an image of a
    // device taken during it (a device removed during it holds nothing):
    // its own table says what it saw, not its floor. So does one judged so
    // at an open (recovery.hpp): an image of an earlier open that a device
    // found in this one saw closed cleanly, or one that shares its uuid
    // with a device in the pool and was not closed.
    uint64_t floor = 0;
    std::vector<uint64_t> own;
    if (history) {
        floor = row->arena->seq_floor();
        const uint64_t last = row->arena->last_open();
        bool image = last != 0 && last == c_.history.open_id();
        if (!image) {
            std::shared_lock<std::shared_mutex> pool(c_.pool.mapping_lock());
            image = judged_by_own_table(c_, a);
        }
        if (image)
            own = table;
        // Before join marks this open on it: a clean close it records
        // tells about images added after it.
        c_.history.note_found(*row->arena);
        c_.history.raise_floor(c_.history.take_device(*row->arena, table));
    }
    adopt_device(c_, a, floor, own, found, counts);
    row->arena->keep();
    // Only now does it take new entries (an old row is visible already).
    // Its slot states were sized above: the allocator's lock orders them
    // before any slot a writer gets from it. If the arenas are registered
    // with CUDA, the registration is redone around this, to cover the new
    // device too, before any GPU transfer picks its path: one that found
    // the old registration copied the device's entries from pageable memory.
    // (The change is handed over by reference: a std::function that
    // allocated could fail here, with the device mapped and not in use.)
    const auto activate = [&] {
        if (old_row >= 0)
            row->alloc->set_limit(limit);
        row->state.store(DevState::active);
        if (old_row < 0)
            c_.pool.rows().publish();
    };
    gpu_.around_mapping_change([&activate] { activate(); });
    if (hook_)
        hook_(4);
    reports_.device_added(path);
    if (history) {
        // From here every floor raise reaches the device too; this one
        // covers those made before it was in the table.
        c_.history.join(a);
        std::shared_lock<std::shared_mutex> pool(c_.pool.mapping_lock());
        for (uint32_t i = 0; i < c_.pool.size(); ++i)
            c_.history.share(i);
    }
    log(kLogInfo, "device %u (%s) added: %u slots", row->id, path.c_str(), row->alloc->slots());
    return 0;
}

int Hotplug::remove(const std::string &path, MoveMode mode, unsigned flags, HotplugResult &out) {
    check_enabled("remove");
    CallGate::Call call(c_.gate);
    Turn turn(*this, "the removal waits for the forced removal or shrink under way, which");
    const uint32_t a = c_.pool.find(path);
    DeviceRow &d = c_.pool[a];
    const bool force = flags & kForce;
    const DevState old_state = d.state.load();
    const uint64_t old_bytes = c_.pool.usable_bytes(a);
    MoveStats ms;

    if (old_state == DevState::missing) {
        d.state.store(DevState::removed); // nothing mapped: only the tombstone stays
        out = HotplugResult{DevState::removed, a, 0, 0, ms};
        return 0;
    }
    if (mode == MoveMode::drain) {
        d.state.store(DevState::draining);
        c_.pool.slot_freed(a); // already empty: drained at once
        out = HotplugResult{DevState::draining, a, old_bytes, old_bytes, ms};
        return 0;
    }

    // With force the call waits for the leases of the device's entries:
    // never for one of this thread, which would wait for the call.
    if (force)
        c_.pool.fail_if_caller_leases(a, 0, "a forced removal of the device");
    // Without force, no lease (and, for an eviction, no pin) of the device's
    // entries may arrive after the check below: such a lease would be
    // waited for, and such a pin would be deleted or stop the eviction half
    // done. New ones wait until the call ends; the ones taken before are
    // all seen by the check (Reads::lease, Entries::pin).
    const bool migrate = mode == MoveMode::migrate;
    DeviceGates gates(c_.pool, a);
    if (!force) {
        gates.leases();
        if (!migrate)
            gates.pins(); // a migration moves pins with their entries
    }
    bool blocked = false;
    std::vector<std::string> keys = keys_on(a, 0, force ? nullptr : &blocked);
    if (blocked)
        return set_error(-EBUSY, "the device has pinned or leased entries; use DAXKV_FORCE "
                                 "(it then waits for the leases)");
    if (size_t open = force ? 0 : reservations_.on_device(a, 0, false))
        return set_error(-EBUSY, "%zu reservation(s) of the device are open: commit or abort "
                                 "them, or use DAXKV_FORCE (their commits then fail with "
                                 "-ECANCELED)", open);
    if (migrate) {
        bool dest = false;
        for (uint32_t t = 0; t < c_.pool.size(); ++t)
            dest = dest || (t != a && dev_writable(c_.pool[t].state.load()));
        if (!dest && !keys.empty())
            fail(-ENOSPC, "no other writable device to migrate %zu entries to", keys.size());
    }
    // No new slot from here on. The state alone does not stop a writer
    // that chose the device before it changed: one that got a slot after
    // the wait below found the device empty wrote into the unmapped arena.
    const uint32_t old_limit = d.alloc->slots();
    d.changing_from.store(old_state);
    d.state.store(migrate ? DevState::migrating : DevState::removing);
    d.alloc->set_limit(0);
    Undo restore([&] {
        d.alloc->set_limit(old_limit);
        d.state.store(old_state);
        c_.pool.slot_freed(a); // drained meanwhile? (a draining device's waiters)
    });
    if (int rc = recheck_reservations(a, 0, force))
        return rc;
    int rc = migrate ? migrate_or_report(a, keys, false, ms) : evict_keys(a, keys, force, ms);
    if (rc == 0)
        rc = wait_until_empty(a, 0, migrate, force, false, ms);
    if (rc != 0)
        return failed_after(rc, old_state, a, old_bytes, ms, out);
    restore.dismiss();
    d.state.store(DevState::removing);
    gpu_.around_mapping_change([&] {
        // Nothing refers to the device any more (no entries, no borrows):
        // readers of every device's arena (status) are kept out while it goes.
        std::unique_lock<std::shared_mutex> g(c_.pool.mapping_lock());
        d.state.store(DevState::removed);
        d.arena.reset();
    });
    reports_.device_removed(d.path);
    log(kLogInfo, "device %u (%s) removed: %llu entries moved, %llu deleted", d.id,
        d.path.c_str(), static_cast<unsigned long long>(ms.moved_keys),
        static_cast<unsigned long long>(ms.deleted_keys));
    out = HotplugResult{DevState::removed, a, old_bytes, 0, ms};
    return 0;
}

int Hotplug::failed_after(int rc, DevState old_state, uint32_t a, uint64_t old_bytes,
                          const MoveStats &ms, HotplugResult &out) noexcept {
    // The caller's undo gives the device its state and size back; the
    // entries moved, deleted or evicted stay so, and the result says how
    // many.
    if (ms.moved_keys || ms.deleted_keys || ms.evicted_keys) {
        out = HotplugResult{old_state, a, old_bytes, old_bytes, ms};
        out.partial = true;
    }
    return rc;
}

int Hotplug::recheck_reservations(uint32_t a, uint32_t from_slot, bool force) {
    if (force)
        return 0; // the wait detaches them
    // A reservation that took its slot before the limit changed may not be
    // listed yet: the check before missed it, and the wait afterwards would
    // find it only once entries were deleted or moved.
    reservations_.settle();
    if (size_t open = reservations_.on_device(a, from_slot, false))
        return set_error(-EBUSY, "%zu reservation(s) of the device were opened during the "
                                 "call; commit or abort them, or use DAXKV_FORCE", open);
    return 0;
}

int Hotplug::resize(const std::string &path, uint64_t bytes, MoveMode mode, unsigned flags,
                    HotplugResult &out) {
    const uint64_t want = bytes / c_.cfg.slot_bytes;
    check_enabled("resize");
    CallGate::Call call(c_.gate);
    Turn turn(*this, "the resize waits for the forced removal or shrink under way, which");
    const uint32_t a = c_.pool.find(path);
    DeviceRow &d = c_.pool[a];
    const DevState old_state = d.state.load();
    if (old_state != DevState::active && old_state != DevState::draining)
        return set_error(-EBUSY, "the device is %s; only an active or draining device can be "
                                 "resized", dev_state_name(old_state));
    const bool force = flags & kForce;
    const uint32_t formatted = d.alloc->formatted();
    const uint64_t arena_bytes = d.arena->layout().arena_bytes;
    // The size counts slots as LMCache does (bytes / slot_bytes). With
    // capacity=arena the slot headers make the arena hold a little less, so
    // up to the arena's own size means "all of it"; with capacity=payload
    // the headers are on top and every slot asked for must be laid out.
    // An arena is whole pages: a size past its last one (as it was opened
    // with, not a multiple of a page) asks for no more than all of it.
    if (c_.cfg.capacity == Capacity::payload ? want > formatted
                                             : round_down(bytes, kArenaPageBytes) > arena_bytes)
        fail(-ENOSPC, "the arena is laid out for %llu bytes (%u slots) and cannot grow past "
                      "them; a larger grow_limit when it is formatted leaves more room",
             static_cast<unsigned long long>(arena_bytes), formatted);
    const uint32_t new_limit = static_cast<uint32_t>(std::min<uint64_t>(want, formatted));
    const uint32_t old_limit = d.alloc->slots();
    const uint64_t old_bytes = c_.pool.usable_bytes(a);
    MoveStats ms;
    if (new_limit == old_limit) {
        d.bytes = bytes; // the same slots, asked for as this size from now on
        out = HotplugResult{old_state, a, old_bytes, old_bytes, ms};
        return 0;
    }
    if (new_limit > old_limit) {
        // Grow: every entry stays where it is. The arena records the new
        // size (a file arena gets the blocks first) before the allocator
        // hands out the new slots, so a crash never leaves entries beyond
        // the recorded end.
        const uint64_t backed = d.arena->mapping().backed();
        try {
            d.arena->set_usable_slots(new_limit);
        } catch (const Error &e) {
            log(kLogErr, "device %u (%s): growing to %u slots failed: %s", d.id, d.path.c_str(),
                new_limit, e.what());
            fail(e.code(), "the device could not grow to %u slots (%s; the cause is logged); it "
                           "keeps its %u slots",
                 new_limit, mapping_failure_text(e.code()), old_limit);
        }
        // A file arena that got new blocks: a CUDA registration (of what
        // existed) is redone to cover them. Nothing was unmapped, so the old
        // registration stayed valid meanwhile.
        if (d.arena->mapping().backed() != backed)
            gpu_.around_mapping_change([] {});
        d.alloc->set_limit(new_limit);
        d.bytes = bytes; // what an add of the path compares with (under the turn)
        out = HotplugResult{old_state, a, old_bytes, c_.pool.usable_bytes(a), ms};
        return 0;
    }
    // With force the call waits for the leases above the new end (see
    // remove).
    if (force)
        c_.pool.fail_if_caller_leases(a, new_limit, "a forced shrink of the device");
    // Without force, new leases of the device's entries above the new end
    // wait from before the check below to the end of the call (see
    // remove), so that it never waits for one; those below it are never
    // waited for, and never wait. No pin gate: a migration moves pins with the entries,
    // and an eviction without force deletes nothing.
    DeviceGates gates(c_.pool, a);
    if (!force)
        gates.leases(new_limit);
    bool blocked = false;
    std::vector<std::string> keys = keys_on(a, new_limit, force ? nullptr : &blocked);
    if (blocked)
        return set_error(-EBUSY, "entries above the new end are pinned or leased; use "
                                 "DAXKV_FORCE (it then waits for the leases)");
    if (size_t open = force ? 0 : reservations_.on_device(a, new_limit, false))
        return set_error(-EBUSY, "%zu reservation(s) above the new end are open: commit or "
                                 "abort them, or use DAXKV_FORCE (their commits then fail with "
                                 "-ECANCELED)", open);
    if (mode == MoveMode::evict && !force && !keys.empty())
        return set_error(-EBUSY, "the shrink would drop %zu live entries; use DAXKV_MIGRATE, "
                                 "or DAXKV_EVICT with DAXKV_FORCE", keys.size());
    const bool migrate = mode == MoveMode::migrate;
    d.changing_from.store(old_state);
    d.state.store(DevState::resizing);
    d.alloc->set_limit(new_limit); // no new slot above the end from here on
    Undo restore([&] {
        d.alloc->set_limit(old_limit);
        d.state.store(old_state);
        c_.pool.slot_freed(a); // drained meanwhile? (a draining device's waiters)
    });
    if (int rc = recheck_reservations(a, new_limit, force))
        return rc;
    int rc = migrate ? migrate_or_report(a, keys, true, ms) : evict_keys(a, keys, force, ms);
    if (rc == 0) {
        // New leases of the device wait while the old ones above the end
        // are waited for (force), so that a stream of new leases cannot
        // starve the resize.
        gates.leases(new_limit);
        rc = wait_until_empty(a, new_limit, migrate, force, true, ms);
    }
    if (rc != 0)
        return failed_after(rc, old_state, a, old_bytes, ms, out);
    // Nothing lives above the new end any more: record the size, so that a
    // reopen keeps it.
    try {
        d.arena->set_usable_slots(new_limit);
    } catch (const Error &e) {
        // What moved to the slots below the new end stays there: the result
        // says so, as for any failure after entries moved.
        const int failed = ms.moved_keys || ms.deleted_keys || ms.evicted_keys
                           ? set_error(e.code(), "recording the new size failed: %s; the device "
                                                 "keeps its size, and the entries this call "
                                                 "moved or deleted before that stay so",
                                       e.what())
                           : set_error(e.code(), "recording the new size failed: %s", e.what());
        return failed_after(failed, old_state, a, old_bytes, ms, out);
    }
    restore.dismiss();
    d.bytes = bytes; // what an add of the path compares with (under the turn)
    d.state.store(old_state);
    if (old_state == DevState::draining)
        c_.pool.slot_freed(a);
    out = HotplugResult{old_state, a, old_bytes, c_.pool.usable_bytes(a), ms};
    return 0;
}

int Hotplug::wait_drained(const std::string &path, int timeout_ms) {
    check_enabled("wait_drained");
    // A call in flight like any other: shutdown wakes it (-ESHUTDOWN) and
    // waits for it, so that the store is never freed under it.
    CallGate::Call call(c_.gate);
    // No turn: a removal can hold it for long, and a published row's path
    // never changes.
    const uint32_t a = c_.pool.find(path);
    DeviceRow &d = c_.pool[a];
    auto deadline = std::chrono::steady_clock::now() + std::chrono::milliseconds(timeout_ms);
    auto g = c_.pool.signals();
    for (bool waited = false;; waited = true) {
        const DevState st = d.state.load();
        if (st != DevState::draining) {
            // A removal or a resize under way may fail and leave it
            // draining: wait on, whether it began before this wait or
            // during it (then only if it found the device draining).
            const bool changing = st == DevState::removing || st == DevState::migrating ||
                                  st == DevState::resizing;
            if (!waited && !(changing && d.changing_from.load() == DevState::draining))
                fail(-EINVAL, "the device is %s, not draining", dev_state_name(st));
            // Any other state comes after a removal (draining ends no other
            // way), which left nothing of the device in the pool, even if
            // the path has been added again since: it drained.
            if (!changing)
                return 0;
        } else if (d.drained.load()) {
            return 0;
        }
        if (c_.gate.closed())
            fail(-ESHUTDOWN, "the store is shut down");
        auto slice = std::chrono::steady_clock::now() + std::chrono::milliseconds(50);
        if (timeout_ms >= 0) {
            if (std::chrono::steady_clock::now() >= deadline)
                return set_error(-ETIMEDOUT, "the device still holds %u slots", d.alloc->used());
            slice = std::min(slice, deadline);
        }
        // A slot this thread leases or reserves stays taken, and the device
        // can neither drain nor (for a lease) be removed, until the lease
        // is released or the reservation ended.
        c_.pool.fail_if_caller_holds_slots(a, "the drain of the device");
        c_.pool.wait_signal(g, slice);
    }
}

} // namespace daxkv
