// The write path: put, put_batch, and the steps the reservations and the
// GPU put share. A write is
//   claim (the key and a slot, under the key's shard lock)
//   -> copy (no lock held)
//   -> commit: on the devices (header, pool history, commit word; with
//      durability=power every value and header of a batch written back,
//      one fence, every commit word, one fence), then in the index (under
//      the shard lock, the old version retired)
// or, when anything fails after the claim, abandon (the slot goes back;
// one that faulted under the write, with sigbus=handle, is quarantined).
#pragma once

#include <cstddef>
#include <cstdint>
#include <functional>
#include <memory>
#include <string_view>
#include <vector>

#include "store/core.hpp"
#include "store/entries.hpp"
#include "store/item.hpp"

namespace daxkv {

// A write between its claim and its commit or abandon.
// A write's in-flight record is its own allocation (a single put, a
// reservation, which moves it around), or a place in its batch's block
// (PendingBatch), which outlives it.
struct InflightRelease {
    bool owned = true;
    void operator()(Inflight *inf) const noexcept {
        if (owned)
            delete inf;
    }
};
using InflightPtr = std::unique_ptr<Inflight, InflightRelease>;

struct Pending {
    std::string_view key; // the caller's bytes (or the reservation's), kept until then
    uint64_t hash = 0;
    InflightPtr inflight;
    // Set by a batch: where the claim puts the record (else it allocates one).
    Inflight *room = nullptr;
    char *dst = nullptr; // the slot's payload
    // Writing (or reading back) the slot faulted (SIGBUS, sigbus=handle):
    // abandon quarantines it instead of giving it back.
    bool slot_faulted = false;
    // The key's entry, as the claim left it (Index::lookup_inflight); null
    // where the write was not claimed here (a reservation's): looked up.
    Entry *entry = nullptr;
};

// The pending writes of a batch, their in-flight records in one block: a
// record allocated and freed per item cost two heap operations each, and
// the thousands freed made glibc walk them all at the batch's next large
// allocation (malloc_consolidate), a tenth of a 64 KiB store's work on the
// calling thread. The block goes after every Pending, which each batch
// commits or abandons before it returns.
class PendingBatch {
public:
    explicit PendingBatch(size_t n) : rooms_(new Inflight[n]), pend_(n) {
        for (size_t i = 0; i < n; ++i)
            pend_[i].room = &rooms_[i];
    }
    Pending &operator[](size_t i) noexcept { return pend_[i]; }
    std::vector<Pending>::iterator begin() noexcept { return pend_.begin(); }
    std::vector<Pending>::iterator end() noexcept { return pend_.end(); }

private:
    std::unique_ptr<Inflight[]> rooms_;
    std::vector<Pending> pend_;
};

// A write whose bytes are in its slot, ready to commit.
struct Finished {
    Pending *p = nullptr;
    const void *meta = nullptr;
    uint32_t meta_len = 0;
    uint64_t value_hash = 0;
    int *status = nullptr; // where the commit's result goes
    uint64_t seq = 0;      // given by commit_on_devices
};

class Writes {
public:
    Writes(Core &core, Entries &entries) : c_(core), entries_(entries) {}
    Writes(const Writes &) = delete;
    Writes &operator=(const Writes &) = delete;

    // 0, or kExisted (the key is committed, without kReplace, or being
    // written); throws Error otherwise.
    int put(std::string_view key, const void *val, size_t len, unsigned flags);
    // The count of items stored; each item's status as put's.
    int put_batch(daxkv_item *items, size_t n, unsigned flags);

    // The steps.
    // Claim key for a value of len bytes: 0 with out holding the key and a
    // slot, or kExisted; throws Error (-E2BIG, -ENOSPC, -ECANCELED).
    int claim(std::string_view key, uint64_t len, unsigned flags, Pending &out) {
        return claim(key, Index::hash(key), len, flags, out);
    }
    // hash: Index::hash(key), computed ahead by a batch.
    int claim(std::string_view key, uint64_t hash, uint64_t len, unsigned flags, Pending &out);
    // The checks and the claim of item i of a batch; its status.
    int claim_item(const daxkv_item *items, size_t n, size_t i, uint64_t hash, unsigned flags,
                   Pending &p);
    // The copy into p's slot failed with rc: abandons p and throws -EIO
    // (copy_error's).
    [[noreturn]] void copy_failed(Pending &p, int rc, const std::string &what);
    // The -EIO for a copy into p's slot (or a read of it) that failed with
    // rc, "<what>: ..."; a media fault (engine/fault.hpp) is counted and
    // logged, and marks p so that abandon quarantines its slot. The caller
    // abandons p.
    Error copy_error(Pending &p, int rc, const std::string &what);
    // Writing p's slot header faulted (sigbus=handle): counted, logged, and
    // p marked as copy_error marks it.
    void header_faulted(Pending &p) noexcept;
    // Commit n finished writes whose copies all succeeded: on the devices,
    // then each in the index, with its status.
    void commit_batch(Finished *w, size_t n, bool hashed);
    // The two halves, for a single write: commit_in_index throws what
    // commit_batch records as a status, and counts its commit in commits
    // (count_commits adds them to the store's counters).
    void commit_on_devices(Finished *w, size_t n, bool hashed) noexcept;
    int commit_in_index(Finished &w, ItemTally &commits);
    int commit_in_index(Finished &w) {
        ItemTally commits(c_.metrics.item_bytes);
        const int rc = commit_in_index(w, commits);
        count_commits(commits);
        return rc;
    }
    void count_commits(ItemTally &commits) noexcept {
        commits.add_to(c_.counters.puts, c_.counters.bytes_written, c_.metrics.item_bytes);
    }
    // Give p's slot back (its write failed, or was aborted), or quarantine
    // it where p.slot_faulted. No-op when p holds nothing.
    void abandon(Pending &p) noexcept;

    // Tests only: called when a write has picked the device for its slot,
    // before it takes one there, with the device's row.
    void set_pick_hook(std::function<void(uint32_t device)> fn) { pick_hook_ = std::move(fn); }
    // Tests only: called once a batch's commit words are stored and fenced,
    // before the batch is committed in the index.
    void set_commit_hook(std::function<void()> fn) { commit_hook_ = std::move(fn); }

private:
    // p's key, its shard locked: its entry, or null once a forced remove
    // has cancelled the write.
    Index::Locked locate(const Pending &p);
    // A free slot of the least-used writable device, without evicting:
    // false when there is none.
    bool take_free_slot(SlotRef &out) noexcept;
    // A slot, evicting to make room (per eviction); throws -ENOSPC.
    SlotRef acquire_slot();
    std::string describe_full() const;

    Core &c_;
    Entries &entries_;
    std::function<void(uint32_t)> pick_hook_;
    std::function<void()> commit_hook_;
};

} // namespace daxkv
