// The pool: opening a store's devices, placement of new entries, where the
// copy workers run, and the signals that drains, removals and resizes wait
// on.
#include "store/pool.hpp"

#include <sched.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <shared_mutex>
#include <utility>

#include "engine/fault.hpp"
#include "internal/error.hpp"
#include "internal/util.hpp"
#include "platform/cpu.hpp"
#include "platform/numa.hpp"
#include "store/held_slots.hpp"

namespace daxkv {
namespace {

// The NUMA node of the CPU the caller runs on, or -1.
int current_numa_node() noexcept {
    unsigned cpu = 0, node = 0;
    if (syscall(SYS_getcpu, &cpu, &node, nullptr) != 0)
        return -1;
    return static_cast<int>(node);
}

uint64_t unix_ns() noexcept {
    return static_cast<uint64_t>(std::chrono::duration_cast<std::chrono::nanoseconds>(
                                     std::chrono::system_clock::now().time_since_epoch())
                                     .count());
}

} // namespace

const char *dev_state_name(DevState s) noexcept {
    switch (s) {
    case DevState::active: return "active";
    case DevState::draining: return "draining";
    case DevState::migrating: return "migrating";
    case DevState::resizing: return "resizing";
    case DevState::removing: return "removing";
    case DevState::removed: return "removed";
    case DevState::missing: return "missing";
    }
    return "?";
}

// Two opens that create one new file arena at once each make their own
// file, and the first to give it the path wins (Mapping::name_new_file). The
// other's file is dropped, and it opens the path again, as any open that
// finds the file there: the winner holds it (-EBUSY), or it has closed it
// and the arena opens, or its open failed and removed it, and this one
// creates it. Three times at most: then other opens keep creating and
// removing it.
void Pool::map_device(DeviceRow &row, const DeviceSpec &d) const {
    for (int attempt = 1;; ++attempt) {
        try {
            map_device_once(row, d);
            return;
        } catch (const platform::NameTaken &e) {
            if (attempt == 3)
                fail(-EBUSY, "%s; it was removed and created again by other opens meanwhile, "
                             "open it again",
                     e.what());
        }
    }
}

namespace testing {
std::function<void(const std::string &path)> device_mapped;
} // namespace testing

// Map the device and validate (or format) its arena into row.
void Pool::map_device_once(DeviceRow &row, const DeviceSpec &d) const {
    platform::MapRequest req;
    req.path = d.path;
    req.bytes = d.bytes;
    bool holds_entries = false;
    req.reserve_bytes = cfg_.grow_auto ? auto_grow_limit(d.path, &holds_entries) : cfg_.grow_limit;
    req.create = cfg_.create;
    req.sync = cfg_.durability == arena::Durability::power;
    arena::Arena::Options ao;
    ao.slot_bytes = cfg_.slot_bytes;
    ao.meta_bytes = cfg_.meta_bytes;
    ao.durability = cfg_.durability;
    ao.verify = cfg_.verify;
    ao.reformat = cfg_.reformat;
    ao.threads = cfg_.effective_workers();
    // With sigbus=handle the recovery scan reads each slot (header and
    // value) under the guard: a page of bad media leaves its slots out
    // instead of failing every open.
    ao.fault_guard = cfg_.sigbus_handle ? &engine::guarded_call : nullptr;
    ao.usable_bytes = d.bytes;
    const bool payload = cfg_.capacity == Capacity::payload && d.bytes;
    uint64_t bytes = d.bytes;
    if (payload && cfg_.grow_auto) {
        // grow_limit=auto keeps an existing arena's layout: more payload
        // bytes than it was laid out for (a file extended since, and its
        // configured size raised) open one that holds entries with all of
        // its slots, rather than fail as another layout, which no LMCache
        // setting could get past but a format that loses its entries. (One
        // without entries is laid out anew, as before.)
        const uint64_t laid_out = req.reserve_bytes / cfg_.slot_bytes;
        if (laid_out && holds_entries && bytes / cfg_.slot_bytes > laid_out) {
            log(kLogWarning,
                "%s: its arena was laid out for %llu slots, fewer than the %llu asked for: it "
                "opens with those (grow_limit=auto keeps an existing arena's layout; "
                "'daxkv format' lays out a larger one, without its entries)",
                d.path.c_str(), static_cast<unsigned long long>(laid_out),
                static_cast<unsigned long long>(bytes / cfg_.slot_bytes));
            bytes = laid_out * cfg_.slot_bytes;
            ao.usable_bytes = bytes;
        }
    }
    if (payload)
        size_for_payloads(bytes, req, ao);
    std::unique_ptr<platform::Mapping> map;
    try {
        map = platform::Mapping::open(req);
    } catch (const Error &e) {
        // A file shorter than the size asked for, or than a page (-EINVAL,
        // refused before its superblocks are read), may be an arena cut
        // short: say so, as an open of it at its own size does (not "no
        // space", nor "no arena fits in it").
        const arena::SuperblockReport rep = e.code() == -ENOSPC || e.code() == -EINVAL
                                                ? arena::Arena::inspect_file(d.path)
                                                : arena::SuperblockReport{};
        if (rep.cut_short_end)
            arena::fail_cut_short(d.path, rep.cut_short_end, rep.file_bytes);
        throw;
    }
    if (testing::device_mapped)
        testing::device_mapped(d.path);
    if (payload && cfg_.grow_auto && map->info().kind == platform::DeviceKind::devdax) {
        // Room to grow over the whole device: the slots it holds with their
        // headers (auto_grow_limit mapped all of it).
        const uint64_t whole =
            arena::compute_layout(map->size(), ao.slot_bytes, ao.meta_bytes).slot_count;
        ao.slot_count = std::max(ao.slot_count, whole);
    }
    auto fits = [&](uint64_t slots) {
        return arena::layout_for_slots(slots, ao.slot_bytes, ao.meta_bytes).arena_bytes <=
               map->size();
    };
    if (ao.slot_count && !fits(ao.slot_count)) {
        // A Device-DAX device without room for all of it on top of the
        // payloads: first the room to grow goes, then slots, so that the
        // slot headers fit inside the device.
        const uint64_t asked = d.bytes / cfg_.slot_bytes;
        const bool without_room = ao.slot_count > asked && fits(asked);
        log(kLogWarning,
            "%s: the device's %llu bytes have no room for the slot headers on top of %s; %s",
            d.path.c_str(), static_cast<unsigned long long>(map->size()),
            without_room ? "the room to grow (grow_limit)" : "the payloads asked for",
            without_room ? "the arena cannot grow past its opened size"
                         : "the arena holds the slots that fit (fewer than asked for)");
        ao.slot_count = without_room ? asked : 0;
        ao.usable_bytes = map->size();
    }
    if (payload && ao.slot_count) {
        // The slots asked for are in use, after however many headers the
        // final layout has.
        const arena::Layout lay =
            arena::layout_for_slots(ao.slot_count, ao.slot_bytes, ao.meta_bytes);
        ao.usable_bytes = lay.data_offset + std::min(bytes / cfg_.slot_bytes, ao.slot_count) *
                                                cfg_.slot_bytes;
    }
    row.numa_node = map->info().numa_node;
    row.arena.reset(new arena::Arena(std::move(map), ao));
    // An allocator for the whole layout, limited to the slots in use: growing
    // into the rest of it moves nothing (the slots' states are sized the
    // same way, by SlotStates::size_device).
    row.alloc.reset(new SlotAllocator(static_cast<uint32_t>(row.arena->layout().slot_count)));
    row.alloc->set_limit(row.arena->usable_slots());
}

// capacity=payload: bytes (and grow_limit) count the slots' payloads, as
// LMCache sizes its arenas (N x slot_bytes); the superblocks and slot headers
// go on top of them, so the device is asked for that much more. A file is
// created or extended that much larger; a file shorter than the payloads is
// refused.
void Pool::size_for_payloads(uint64_t bytes, platform::MapRequest &req,
                              arena::Arena::Options &ao) const {
    const uint64_t slots = bytes / cfg_.slot_bytes;
    if (slots == 0)
        fail(-EINVAL, "%s: %llu bytes do not hold one slot of %llu bytes", req.path.c_str(),
             static_cast<unsigned long long>(bytes),
             static_cast<unsigned long long>(cfg_.slot_bytes));
    // req.reserve_bytes is grow_limit in payload bytes here (auto: a
    // Device-DAX device's room is counted after it is mapped).
    const uint64_t grow = req.reserve_bytes == UINT64_MAX ? 0 : req.reserve_bytes;
    const uint64_t laid_out = std::max(slots, grow / cfg_.slot_bytes);
    const arena::Layout room = arena::layout_for_slots(laid_out, cfg_.slot_bytes, cfg_.meta_bytes);
    if (room.slot_count == 0)
        fail(-EINVAL, "%s: %llu slots of %llu bytes are more than one arena can address",
             req.path.c_str(), static_cast<unsigned long long>(laid_out),
             static_cast<unsigned long long>(cfg_.slot_bytes));
    const uint64_t page = 4096;
    req.bytes = round_up(room.data_offset + slots * cfg_.slot_bytes, page);
    if (req.reserve_bytes != UINT64_MAX)
        req.reserve_bytes = laid_out > slots ? round_up(room.arena_bytes, page) : 0;
    req.min_existing = slots * cfg_.slot_bytes;
    req.fit = true;
    ao.slot_count = laid_out;
    ao.usable_bytes = req.bytes;
}

// grow_limit=auto for one device: an arena already in a file keeps the room
// it was laid out with (so that a reopen finds the same layout); a file that
// holds no arena of this slot and metadata size can grow to its own size; a
// Device-DAX device to all of it (UINT64_MAX: "map the whole device"). In
// payload bytes with capacity=payload. *holds_entries: the file holds such
// an arena whose last user kept an index (entries an open recovers).
uint64_t Pool::auto_grow_limit(const std::string &path, bool *holds_entries) const {
    *holds_entries = false;
    if (path == "mem:")
        return 0;
    if (platform::is_dax_char_device(path))
        return UINT64_MAX;
    const arena::SuperblockReport rep = arena::Arena::inspect_file(path);
    const bool payload = cfg_.capacity == Capacity::payload;
    if ((rep.valid_a || rep.valid_b) && rep.sb.slot_bytes == cfg_.slot_bytes &&
        rep.sb.meta_bytes == cfg_.meta_bytes) {
        *holds_entries = (rep.sb.flags & arena::kSbRecoverable) != 0;
        return payload ? rep.sb.slot_count * rep.sb.slot_bytes : rep.sb.arena_bytes;
    }
    struct stat st;
    if (::stat(path.c_str(), &st) != 0 || !S_ISREG(st.st_mode))
        return 0;
    return static_cast<uint64_t>(st.st_size);
}

DeviceRow &Pool::open_device(const DeviceSpec &d, bool tolerate_missing) {
    DeviceRow *row = rows_.next_row();
    if (!row)
        fail(-ENOSPC, "a store holds at most %u devices", kMaxDevices);
    row->path = d.path;
    row->bytes = d.bytes;
    row->id = next_device_id();
    try {
        map_device(*row, d);
        row->state.store(DevState::active);
    } catch (const Error &e) {
        // Absent (-ENOENT), no longer a usable DAX device (-ENODEV, e.g.
        // onlined as system RAM), or with superblocks that fault when read
        // (-EIO, sigbus=handle: bad media): the rest of the pool can still
        // serve. Not any -EIO: a format or a repair whose write-back the
        // file system refused fails the open, as without hotplug.
        const bool unreadable = dynamic_cast<const arena::BlocksUnreadable *>(&e) != nullptr;
        if (!tolerate_missing || (e.code() != -ENOENT && e.code() != -ENODEV && !unreadable))
            throw;
        row->arena.reset();
        row->alloc.reset(new SlotAllocator(0));
        row->missing_reason = e.what();
        row->state.store(DevState::missing);
        log(kLogWarning, "device %u (%s) is missing: %s; opening without it", row->id,
            d.path.c_str(), e.what());
    }
    rows_.publish();
    return *row;
}

uint32_t Pool::find(const std::string &path) const {
    int found = -1, matches = 0;
    for (uint32_t a = 0; a < rows_.size(); ++a) {
        if (rows_[a].state.load() == DevState::removed || rows_[a].path != path)
            continue;
        found = static_cast<int>(a);
        ++matches;
    }
    if (matches > 1)
        fail(-EBUSY, "%d devices of the pool have this path (\"mem:\" devices cannot be "
                     "told apart)", matches);
    if (found < 0)
        fail(-ENOENT, "no such device in the pool");
    return static_cast<uint32_t>(found);
}

uint64_t Pool::usable_bytes(uint32_t a) const noexcept {
    return uint64_t(rows_[a].alloc->slots()) * cfg_.slot_bytes;
}

std::vector<int> Pool::worker_cpus() const {
    if (!cfg_.numa)
        return {};
    // One engine serves every arena of the store: it goes where most of the
    // capacity is (the first device on a tie). A pool spread over nodes
    // would want one engine per node.
    std::vector<std::pair<int, uint64_t>> bytes_by_node;
    for (const auto &a : rows_) {
        if (!a.arena)
            continue; // missing at open
        int node = a.arena->mapping().info().numa_node;
        uint64_t bytes = a.arena->layout().arena_bytes;
        auto it = std::find_if(bytes_by_node.begin(), bytes_by_node.end(),
                               [&](const std::pair<int, uint64_t> &p) { return p.first == node; });
        if (it == bytes_by_node.end())
            bytes_by_node.emplace_back(node, bytes);
        else
            it->second += bytes;
    }
    if (bytes_by_node.empty())
        return {}; // no device mapped yet (a hotplug pool may start empty)
    auto best = std::max_element(
        bytes_by_node.begin(), bytes_by_node.end(),
        [](const std::pair<int, uint64_t> &x, const std::pair<int, uint64_t> &y) {
            return x.second < y.second;
        });
    return platform::placement_cpus(platform::host_topology(), best->first);
}

uint32_t Pool::pick_device() const noexcept {
    const int node = cfg_.placement == Placement::numa ? current_numa_node() : -1;
    uint32_t best = UINT32_MAX;
    bool best_local = false;
    double best_use = 2.0;
    const uint32_t n = rows_.size();
    for (uint32_t a = 0; a < n; ++a) {
        const DeviceRow &d = rows_[a];
        if (!dev_writable(d.state.load(std::memory_order_acquire)))
            continue;
        const SlotAllocator::Occupancy o = d.alloc->occupancy();
        if (o.free == 0 || o.slots == 0)
            continue;
        bool local = node >= 0 && d.numa_node == node;
        double use = 1.0 - double(o.free) / double(o.slots);
        if ((local && !best_local) || (local == best_local && use < best_use)) {
            best = a;
            best_local = local;
            best_use = use;
        }
    }
    return best;
}

bool Pool::any_writable() const noexcept {
    for (uint32_t a = 0; a < rows_.size(); ++a)
        if (dev_writable(rows_[a].state.load(std::memory_order_acquire)))
            return true;
    return false;
}

void Pool::fence_all() const noexcept {
    if (cfg_.durability != arena::Durability::power)
        return;
    // The rows this write staged on stay mapped (a removal waits for every
    // slot of its device to be free), but another row may be leaving or
    // joining: a removal resets its arena, an add sets it, both under the
    // mapping lock.
    try {
        std::shared_lock<std::shared_mutex> g(mapping_m_);
        for (uint32_t a = 0; a < rows_.size(); ++a)
            if (const auto &ar = rows_[a].arena)
                ar->fence();
    } catch (...) {
        // The lock failed: a device's fence is the CPU's store fence, which
        // orders every device's write-backs at once.
        platform::store_fence();
    }
}

void Pool::slot_freed(uint32_t a) noexcept {
    DeviceRow &d = rows_[a];
    if (d.state.load(std::memory_order_acquire) == DevState::draining &&
        d.alloc->used() <= d.quarantined.load() + d.detached.load() && !d.drained.exchange(true)) {
        d.drained_unix_ns.store(unix_ns());
        try {
            events_.post(kLogInfo, format("device %u (%s) is drained: it holds no entries", d.id,
                                          d.path.c_str()));
        } catch (...) {
            // Out of memory: the event is not logged; status and waiters still see it.
        }
    }
    std::lock_guard<std::mutex> g(ev_m_);
    ev_cv_.notify_all();
}

// A device's gates are raised and lowered under ev_m_ and waited for on
// ev_cv_, with shutdown (gate_) waking every waiter.
void Pool::set_gate(std::atomic<bool> &gate, bool on) noexcept {
    std::lock_guard<std::mutex> g(ev_m_);
    gate.store(on, std::memory_order_release);
    ev_cv_.notify_all();
}

void Pool::wait_gate(const std::atomic<bool> &gate) {
    std::unique_lock<std::mutex> g(ev_m_);
    ev_cv_.wait(g, [&] { return !gate.load(std::memory_order_acquire) || gate_.closed(); });
    if (gate_.closed())
        fail(-ESHUTDOWN, "the store is shut down");
}

void Pool::wait_lease_gate(uint32_t a) {
    const DeviceRow &d = rows_[a];
    std::unique_lock<std::mutex> g(ev_m_);
    while (d.lease_gate.load(std::memory_order_acquire) && !gate_.closed()) {
        // The gate stays up until the change behind it ends, and a forced
        // one ends only once the leases it waits for are released.
        if (d.leases_awaited.load())
            fail_if_caller_leases(a, d.leases_awaited_from.load(),
                                  "this lease waits for the forced shrink of its device, which");
        ev_cv_.wait(g);
    }
    if (gate_.closed())
        fail(-ESHUTDOWN, "the store is shut down");
}

void Pool::set_leases_awaited(uint32_t a, bool on, uint32_t from_slot) noexcept {
    std::lock_guard<std::mutex> g(ev_m_);
    if (on)
        rows_[a].leases_awaited_from.store(from_slot);
    rows_[a].leases_awaited.store(on);
    ev_cv_.notify_all(); // the calls waiting behind the change look again
}

void Pool::fail_if_caller_holds(uint32_t a, uint32_t from_slot, bool reservations,
                                const char *what) const {
    uint32_t slot = 0;
    bool lease = true;
    if (!HeldSlots::calling_thread_holds(this, a, from_slot, reservations, &slot, &lease))
        return;
    if (lease)
        fail(-EDEADLK, "%s would wait for a lease that this thread holds (slot %u of device "
                       "%u); release that lease first", what, slot, rows_[a].id);
    fail(-EDEADLK, "%s would wait for a reservation that this thread holds (slot %u of device "
                   "%u); commit or abort it first", what, slot, rows_[a].id);
}

void Pool::fail_if_caller_holds_awaited_lease(const char *what) const {
    for (uint32_t a = 0; a < size(); ++a)
        if (rows_[a].leases_awaited.load())
            fail_if_caller_leases(a, rows_[a].leases_awaited_from.load(), what);
}

void Pool::wake_all() noexcept {
    // Calls that block (waiting for a drain, for leases, behind a lease or
    // pin gate) look at the gate under ev_m_: after this they see it closed.
    std::lock_guard<std::mutex> g(ev_m_);
    ev_cv_.notify_all();
}

} // namespace daxkv
