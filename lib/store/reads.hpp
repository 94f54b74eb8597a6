// The read path: get, get_batch, contains, leases, and the steps the GPU
// get shares. A read is
//   borrow (under the key's shard lock: the slot's borrow count goes up,
//           the access is recorded in the LRU)
//   -> copy (no lock held)
//   -> end the borrow (a slot whose entry was replaced or removed meanwhile
//      is freed by its last borrower),
// or, when the bytes cannot be trusted (a failed checksum, a fault), the
// entry is dropped and the slot quarantined.
#pragma once

#include <cstddef>
#include <cstdint>
#include <functional>
#include <memory>
#include <string_view>
#include <vector>

#include "store/core.hpp"
#include "store/entries.hpp"
#include "store/held_slots.hpp"
#include "store/item.hpp"

namespace daxkv {

class Store;

// A read between its borrow and its end.
struct Borrow {
    uint16_t shard = 0;
    SlotRef ref;
    const char *src = nullptr;
    uint64_t len = 0;
    uint32_t meta_len = 0;
    // The key's hash, taken while the caller's key bytes were intact: a
    // borrow dropped for a fault finds its entry by it and by its slot, not
    // by the key (the copy may have overwritten a key held in its own
    // destination) nor by the header's copy (which may be what faulted).
    uint64_t hash = 0;
};

// A lease: the bytes of an entry, borrowed in place until released.
struct LeaseState {
    std::shared_ptr<Store> store; // kept alive by the handle (set by lib/capi)
    uint16_t shard = 0;
    SlotRef ref;
    const char *data = nullptr;
    size_t size = 0;
    const char *meta = nullptr;
    size_t meta_len = 0;
    uint64_t hash = 0; // as Borrow::hash: a fault found by read_leases drops the entry by it
    HeldSlot held; // in the list of the thread that took it until released

    // The read the lease is (Reads::lease made it of one), for a copy out
    // of it under a borrow of its own (Reads::read_leases).
    Borrow as_borrow() const noexcept {
        return Borrow{shard, ref, data, size, static_cast<uint32_t>(meta_len), hash};
    }
};

class Reads {
public:
    Reads(Core &core, Entries &entries) : c_(core), entries_(entries) {}
    Reads(const Reads &) = delete;
    Reads &operator=(const Reads &) = delete;

    // 0, or the expected outcomes -ENOENT (a miss) and -ENOBUFS (cap too
    // small; *len_out still gets the value's length); throws Error (-EIO:
    // the bytes faulted or failed their checksum).
    int get(std::string_view key, void *dst, size_t cap, size_t *len_out);
    // Positional: the hits (with kPrefix the length of the leading run of
    // hits, later items -ENOENT); each item's status as get's.
    int get_batch(daxkv_item *items, size_t n, unsigned flags);
    // 1 committed, 0 not.
    int contains(std::string_view key);
    int contains_batch(daxkv_item *items, size_t n, unsigned flags);
    // 0 with *out set, or -ENOENT; throws Error. An entry on a device whose
    // lease gate is up (a removal or shrink under way) is waited for; with
    // gated set it is not: -EAGAIN, with *gated its device, and nothing
    // leased (for a caller that holds leases of its own, which that removal
    // or shrink may be waiting for: it gives them back before it waits).
    // -EDEADLK (thrown) instead of a wait that would wait for a lease the
    // calling thread took earlier (held_slots.hpp).
    int lease(std::string_view key, std::unique_ptr<LeaseState> *out,
              uint32_t *gated = nullptr);
    // Wait while device a's lease gate is up; throws -ESHUTDOWN at shutdown,
    // -EDEADLK as lease does.
    void wait_lease_gate(uint32_t a);
    void release(LeaseState &l) noexcept;
    // Copy leased entries out as get_batch copies them (the SIGBUS guard,
    // verify=read's checks, streaming by the batch's bytes): item i gets
    // leases[i]'s value into data (capacity len; not copied where data is
    // null, its length still reported) and its metadata into meta when
    // set. Each status as get's: 0, -ENOBUFS, or -EIO where the bytes
    // faulted or failed their checksum (the entry is dropped and its slot
    // quarantined; the lease stays the caller's to release). Returns the
    // items copied.
    int read_leases(LeaseState *const *leases, daxkv_item *items, size_t n);

    // The steps.
    // Borrow key's committed entry if it fits cap (and meta_cap, unless
    // SIZE_MAX): 0, -ENOENT or -ENOBUFS, with the sizes reported.
    // hash: Index::hash(key), computed ahead by a batch.
    int borrow(std::string_view key, uint64_t hash, size_t cap, size_t *len_out, size_t meta_cap,
               Borrow &out, size_t *meta_len_out = nullptr);
    int borrow(std::string_view key, size_t cap, size_t *len_out, size_t meta_cap, Borrow &out) {
        return borrow(key, Index::hash(key), cap, len_out, meta_cap, out);
    }
    void end(const Borrow &b) noexcept;
    // The borrowing pass of a read batch (host or GPU): check each item,
    // borrow it and report the sizes needed; with prefix, stop at the first
    // failure and mark the rest -ENOENT. Returns where a prefix stopped, n
    // if it did not. borrowed, when set, is called after each item borrowed;
    // what it throws leaves borrow_batch (the caller ends the borrows made).
    size_t borrow_batch(daxkv_item *items, size_t n, bool prefix, std::vector<Borrow> &borrows,
                        std::vector<size_t> &item_of,
                        const std::function<void()> &borrowed = nullptr);
    // What a read batch returns: the hits, or with prefix the length of the
    // leading run of items found (before stop).
    static int batch_result(const daxkv_item *items, size_t stop, bool prefix, int hits) noexcept;
    // verify=read: whether b's entry still is what was committed: its
    // header matches its own checksum and the index's lengths (with its
    // metadata read from meta_copy, b.meta_len bytes the caller copied out,
    // when not null), and its value's bytes, from the block hashes its copy
    // computed (null for an empty value), match the value checksum. 0 when
    // they do, kMismatch when they do not, and engine::kMediaFault when
    // reading the slot's header faulted (SIGBUS, sigbus=handle).
    static constexpr int kMismatch = 1;
    int verify(const Borrow &b, const uint64_t *block_hashes,
               const void *meta_copy = nullptr) const noexcept;
    // The same for bytes read where they are (a lease, a GPU read before
    // its DMA); kMediaFault also when reading them faulted.
    int verify_in_place(const Borrow &b, const void *meta_copy = nullptr) const noexcept;
    // The header half of both (hc: what it holds).
    int check_header(const Borrow &b, const void *meta_copy,
                     arena::Arena::HeaderCheck &hc) const noexcept;
    // What verify() or verify_in_place() found wrong (rc): the entry is
    // dropped, its slot quarantined; throws -EIO (the message starts with
    // what).
    [[noreturn]] void failed_verify(const Borrow &b, int rc, const char *what);
    // b's metadata (b.meta_len bytes) into dst: false where reading it from
    // the slot's header faulted (sigbus=handle; the caller hands that to
    // failed_verify as engine::kMediaFault).
    bool copy_meta(const Borrow &b, void *dst) const noexcept {
        return c_.pool.arena(b.ref.arena).read_meta(b.ref.slot, dst, b.meta_len);
    }
    // The bytes of b failed their checksum: the entry is dropped, its slot
    // quarantined; throws -EIO (the message starts with what).
    [[noreturn]] void failed_checksum(const Borrow &b, const char *what);
    // The copy out of b failed with rc (engine/fault.hpp): end_copy() drops
    // the entry and quarantines its slot for a media fault (and for
    // kMismatch, what verify found), and ends the borrow (the entry kept)
    // for any other failure; copy_failed() does the same and throws -EIO.
    [[noreturn]] void copy_failed(const Borrow &b, int rc, const char *what);
    void end_copy(const Borrow &b, int rc) noexcept;
    // A value of len bytes copied out: a hit. A batch tallies its hits
    // first (ItemTally) and counts them once.
    void count_hit(uint64_t len) noexcept {
        ItemTally hit(c_.metrics.item_bytes);
        hit.count(len);
        count_hits(hit);
    }
    void count_hits(ItemTally &hits) noexcept {
        hits.add_to(c_.counters.hits, c_.counters.bytes_read, c_.metrics.item_bytes);
    }

private:
    // Borrow the committed entry l holds (its lock held), found by the
    // caller's key: the slot's read count, the LRU touch, and where its
    // bytes are.
    void start_borrow(Index::Locked &l, Borrow &out);
    void quarantine(const Borrow &b, bool media) noexcept;
    // Reading b's bytes faulted: quarantine(b, true), and throw -EIO.
    [[noreturn]] void faulted(const Borrow &b, const char *what);

    Core &c_;
    Entries &entries_;
};

} // namespace daxkv
