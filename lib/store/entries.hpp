// The operations on committed entries as a whole: retiring a committed
// version (a replace, a removal, an eviction, a migration's source),
// dropping an entry for good, the eviction of the least recently used one,
// and the calls that remove, pin and unpin keys. A committed version is
// retired here and nowhere else: withdrawn on its device, its slot freed
// (or left to its last borrower), and taken out of the index.
#pragma once

#include <cstddef>
#include <functional>
#include <string_view>

#include "store/core.hpp"
#include "store/item.hpp"

namespace daxkv {

class Entries {
public:
    explicit Entries(Core &core) : c_(core) {}
    Entries(const Entries &) = delete;
    Entries &operator=(const Entries &) = delete;

    // Take l's committed version out (l's shard locked): withdrawn on its
    // device, its slot retired, out of the index; its pins go with it.
    void retire(Index::Locked &l) noexcept;
    // Remove l's entry for good: the removal recorded in the pool history
    // first, then retired, and the entry erased unless a write of the key
    // is in flight.
    void drop(Index::Locked &l) noexcept;
    // Remove l's entry whose bytes cannot be read or trusted: recorded
    // removed, withdrawn, out of the index. Its slot stays taken: the
    // caller quarantines it (SlotStates::quarantine).
    void discard(Index::Locked &l) noexcept;
    // Evict the least recently used entry whose going makes room for a new
    // one (may_evict). False when there is none. *freed_room, where given:
    // whether the entry's slot is one a write can take (false for an entry
    // of a draining device, which only drains it).
    bool evict_one(const std::function<bool(uint32_t device)> &to = nullptr,
                   bool *freed_room = nullptr);
    // Whether e may be evicted to make room: it is neither pinned, leased
    // nor being written, and its slot is one a write can take next, below
    // the limit of a device `to` accepts (by default a writable one), or,
    // by default, it lies on a draining device (which drains that way).
    // Evicting an entry of a device being emptied or changed, or one above
    // the new end of a device being shrunk, frees no slot a write could
    // use. Its shard's lock held.
    bool may_evict(const Entry &e, const std::function<bool(uint32_t device)> &to = nullptr) const
        noexcept;

    // The calls. 0, or the expected outcomes -ENOENT (a miss, or no pin to
    // drop) and -EBUSY (remove: pinned or being written, without kForce);
    // everything else throws Error.
    int remove(std::string_view key, unsigned flags);
    int pin(std::string_view key);
    int unpin(std::string_view key);
    // Per item as the single-key calls; the count of items done.
    int remove_batch(daxkv_item *items, size_t n, unsigned flags);
    int unpin_batch(daxkv_item *items, size_t n);

private:
    int remove_key(std::string_view key, unsigned flags);
    int unpin_key(std::string_view key);
    // call(key) for each item whose key is valid, its status; the count of
    // items done (status 0).
    template <typename F>
    int each_item(daxkv_item *items, size_t n, F &&call);

    Core &c_;
};

} // namespace daxkv
