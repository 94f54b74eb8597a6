#include "arena/inspect.hpp"

#include <algorithm>
#include <chrono>
#include <cstring>
#include <mutex>
#include <string_view>
#include <unordered_map>
#include <vector>

#include "arena/slot_parts.hpp"
#include "internal/util.hpp"

namespace daxkv {
namespace arena {
const char *image_state_name(ImageState s) noexcept {
    switch (s) {
    case ImageState::arena: return "arena";
    case ImageState::empty: return "empty";
    case ImageState::damaged_arena: return "damaged-arena";
    case ImageState::other_version: return "other-version";
    case ImageState::truncated: return "truncated";
    case ImageState::foreign: return "foreign";
    case ImageState::unreadable: return "unreadable";
    }
    return "?";
}

namespace {

// What a copy decides on its own, as the open judges it, whatever the
// other copy holds: an intact copy of another format version is not
// damage and is never repaired from the other (Arena::
// refuse_copy_of_another_version); and, where no copy is valid, one whose
// slots end past the image is an arena cut short (its missing end, given
// back, makes it whole). True when a copy set r.state.
bool judged_by_one_copy(const Superblock *const *copies, size_t n, bool any_valid,
                        uint64_t size, ImageReport &r) {
    for (size_t i = 0; i < n; ++i)
        if (superblock_intact(*copies[i]) && copies[i]->format_version != kFormatVersion) {
            r.state = ImageState::other_version;
            r.sb = *copies[i];
            return true;
        }
    for (size_t i = 0; i < n && !any_valid; ++i)
        if (superblock_cut_short(*copies[i], size)) {
            r.state = ImageState::truncated;
            r.sb = *copies[i];
            return true;
        }
    return false;
}

} // namespace

ImageReport check_image(char *base, uint64_t size, const CheckOptions &opt) {
    auto t0 = std::chrono::steady_clock::now();
    ImageReport r;
    r.image_bytes = size;
    auto persist = [&](const void *p, size_t n) {
        if (opt.persist)
            opt.persist(p, n);
    };
    if (size < kHeaderOffset) {
        // Too short for both blocks (no copy can be valid). An arena cut
        // this short still shows the copies that fit, judged as the open
        // judges any arena cut short.
        Superblock fit[2];
        const Superblock *copies[2] = {&fit[0], &fit[1]};
        size_t n = 0;
        for (uint64_t at : {uint64_t(0), uint64_t(kSuperblockBytes)})
            if (size >= at + sizeof(Superblock))
                std::memcpy(&fit[n++], base + at, sizeof(Superblock));
        if (judged_by_one_copy(copies, n, false, size, r))
            return r;
        if (size >= sizeof kMagic && std::memcmp(base, kMagic, sizeof kMagic) == 0)
            r.state = ImageState::damaged_arena;
        else
            r.state = all_zero(base, size) ? ImageState::empty : ImageState::foreign;
        return r;
    }
    // Both blocks, superblock copies and removal table, read once under the
    // guard (as an open reads them): where that faults nothing of the
    // image can be judged, nor repaired.
    if (opt.read_guard &&
        opt.read_guard(
            base, kHeaderOffset,
            [](void *p) { load_lines(static_cast<const char *>(p), kHeaderOffset); },
            base) != 0) {
        r.state = ImageState::unreadable;
        return r;
    }
    Superblock a, b;
    std::memcpy(&a, base, sizeof a);
    std::memcpy(&b, base + kSuperblockBytes, sizeof b);
    r.copy_a_valid = superblock_valid(a, size);
    r.copy_b_valid = superblock_valid(b, size);
    const Superblock *copies[2] = {&a, &b};
    if (judged_by_one_copy(copies, 2, r.copy_a_valid || r.copy_b_valid, size, r))
        return r;
    if (!r.copy_a_valid && !r.copy_b_valid) {
        if (all_zero(base, kHeaderOffset))
            r.state = ImageState::empty;
        else if (std::memcmp(a.magic, kMagic, sizeof kMagic) == 0 ||
                 std::memcmp(b.magic, kMagic, sizeof kMagic) == 0)
            r.state = ImageState::damaged_arena;
        else
            r.state = ImageState::foreign;
        return r;
    }
    r.state = ImageState::arena;
    // The same choice as Arena::inspect: the newest valid copy.
    r.sb = r.copy_a_valid && (!r.copy_b_valid || a.sb_generation >= b.sb_generation) ? a : b;
    r.layout = layout_of(r.sb);
    r.recoverable = (r.sb.flags & kSbRecoverable) != 0;
    // Sequence numbers too far ahead of the clock are damage, as an open
    // judges them (Arena::repair_seq_floor, repair_removal_table).
    const uint64_t limit = seq_limit();
    r.bad_floor = r.sb.seq_floor >= limit;
    if (opt.repair && r.bad_floor) {
        // Both copies, as Arena::write_superblock writes them.
        r.sb.seq_floor = 0;
        r.sb.sb_generation++;
        r.sb.checksum = superblock_checksum(r.sb);
        for (char *copy : {base, base + kSuperblockBytes}) {
            std::memcpy(copy, &r.sb, sizeof r.sb);
            persist(copy, sizeof r.sb);
        }
        r.superblock_rewritten = true;
    } else if (opt.repair && (!r.copy_a_valid || !r.copy_b_valid)) {
        char *bad = r.copy_a_valid ? base + kSuperblockBytes : base;
        std::memcpy(bad, &r.sb, sizeof r.sb);
        persist(bad, sizeof r.sb);
        r.superblock_rewritten = true;
    }
    // The removal table, judged as an open judges it, and as an open then
    // reads it: a word out of range is set to the floor (repaired here, or
    // read so), and the floor is the one the open keeps.
    const uint64_t floor = r.bad_floor ? 0 : r.sb.seq_floor;
    std::vector<uint64_t> removals(kRemovalBuckets);
    for (uint64_t block = 0; block < 2; ++block) {
        auto *words = reinterpret_cast<uint64_t *>(base + block * kSuperblockBytes +
                                                   kRemovalTableOffset);
        for (uint32_t i = 0; i < kRemovalBucketsPerBlock; ++i) {
            removals[block * kRemovalBucketsPerBlock + i] = words[i] < limit ? words[i] : floor;
            if (words[i] < limit)
                continue;
            r.bad_removals++;
            if (opt.repair) {
                words[i] = r.sb.seq_floor;
                persist(&words[i], sizeof words[i]);
            }
        }
    }
    // An arena last used with durability=none: its headers are not trusted
    // and an open clears them; there are no entries to judge.
    if (!r.recoverable)
        return r;

    const Layout &l = r.layout;
    auto header = [&](uint64_t s) {
        return reinterpret_cast<SlotHeader *>(base + l.header_offset + s * l.header_bytes);
    };
    auto withdraw = [&](SlotHeader *h) {
        if (!opt.repair)
            return;
        __atomic_store_n(&h->commit, uint64_t(0), __ATOMIC_RELEASE);
        persist(&h->commit, sizeof h->commit);
        r.withdrawn++;
    };
    auto finding = [&](uint64_t s, const SlotHeader *h, const char *reason, bool trust_key) {
        SlotFinding f;
        f.slot = static_cast<uint32_t>(s);
        f.reason = reason;
        f.seq = h->seq;
        f.value_len = h->value_len;
        if (trust_key)
            f.key = printable(std::string_view(reinterpret_cast<const char *>(h + 1), h->key_len));
        r.findings.push_back(std::move(f));
    };
    // Newest commit of each key so far. Of two with one seq the earlier
    // slot stays, as in recover_pool.
    struct Newest {
        uint64_t slot, seq;
        bool value_checked;
    };
    std::unordered_map<std::string_view, Newest> newest;
    auto data_of = [&](uint64_t s) { return base + l.data_offset + s * l.slot_bytes; };
    auto judge = [&](uint64_t s, bool check_value) {
        return judge_slot(header(s), l, data_of(s), check_value, limit, opt.read_guard, base,
                          size);
    };
    // A slot that could not be read: nothing of its header is trusted, and
    // it is left as it is.
    auto unreadable = [&](uint64_t s) {
        r.unreadable++;
        SlotFinding f;
        f.slot = static_cast<uint32_t>(s);
        f.reason = verdict_name(SlotVerdict::unreadable);
        r.findings.push_back(std::move(f));
    };
    // Only the usable slots: the payloads above them need not exist (room
    // to grow into, at the end of a file arena). Each is judged first, on
    // opt.threads threads (reading the values is what takes the time),
    // before anything is written; then, in slot order, what the verdicts
    // mean (duplicates, withdrawals) is worked out on this thread.
    const uint64_t usable = usable_slots_of(r.sb);
    std::vector<uint8_t> verdicts(usable);
    std::mutex progress_m;
    uint64_t judged = 0;
    r.threads = SlotParts(usable, opt.check_values ? l.slot_bytes : 0)
                    .run(opt.threads, [&](uint64_t, uint64_t begin, uint64_t end) {
                        for (uint64_t s = begin; s < end; ++s)
                            verdicts[s] = static_cast<uint8_t>(judge(s, opt.check_values));
                        if (opt.progress) {
                            std::lock_guard<std::mutex> g(progress_m);
                            judged += end - begin;
                            opt.progress(judged, usable);
                        }
                    });
    for (uint64_t s = 0; s < usable; ++s) {
        SlotHeader *h = header(s);
        const auto v = static_cast<SlotVerdict>(verdicts[s]);
        if (v == SlotVerdict::empty)
            continue;
        if (v == SlotVerdict::unreadable) {
            unreadable(s);
            continue;
        }
        r.committed++;
        if (v != SlotVerdict::ok) {
            (v == SlotVerdict::torn ? r.torn : v == SlotVerdict::bad_header ? r.bad_header
                                                                            : r.bad_value)++;
            // A bad header's key_len may be anything; a torn or bad-value
            // header passed its bounds check only if it validates.
            bool trust = v == SlotVerdict::bad_value;
            finding(s, h, verdict_name(v), trust);
            withdraw(h);
            continue;
        }
        std::string_view key(reinterpret_cast<const char *>(h + 1), h->key_len);
        // An open of this device withdraws an entry its removal table says
        // was removed later (recover_pool), before duplicates are judged; it
        // counts it stale.
        if (removed_after(removals[removal_bucket(hash_bytes(key.data(), key.size()))], h->seq,
                          floor)) {
            r.stale++;
            finding(s, h, "removed", true);
            withdraw(h);
            continue;
        }
        const Newest here{s, h->seq, opt.check_values};
        auto it = newest.find(key);
        if (it == newest.end()) {
            newest.emplace(key, here);
            continue;
        }
        Newest &known = it->second;
        const bool here_wins = known.seq < h->seq;
        Newest winner = here_wins ? here : known;
        const uint64_t loser = here_wins ? known.slot : s;
        // Without value checks, an older version goes only once the newer
        // one's value is checked: an open that checks values drops a newer
        // version whose value is damaged and keeps the older one, and a
        // repair that withdrew the older one would lose the key.
        const SlotVerdict checked =
            winner.value_checked ? SlotVerdict::ok : judge(winner.slot, true);
        if (checked != SlotVerdict::ok) {
            if (checked == SlotVerdict::unreadable) {
                unreadable(winner.slot);
            } else {
                r.bad_value++;
                finding(winner.slot, header(winner.slot), verdict_name(SlotVerdict::bad_value),
                        true);
                withdraw(header(winner.slot));
            }
            known = here_wins ? known : here;
            continue;
        }
        winner.value_checked = true;
        known = winner;
        r.stale++;
        finding(loser, header(loser), "stale", true);
        withdraw(header(loser));
    }
    if (opt.progress)
        opt.progress(usable, usable);
    for (const auto &kv : newest) {
        const SlotHeader *h = header(kv.second.slot);
        r.live++;
        r.value_bytes += h->value_len;
        r.max_seq = std::max(r.max_seq, h->seq);
    }
    std::sort(r.findings.begin(), r.findings.end(),
              [](const SlotFinding &x, const SlotFinding &y) { return x.slot < y.slot; });
    r.usec = static_cast<uint64_t>(std::chrono::duration_cast<std::chrono::microseconds>(
                                       std::chrono::steady_clock::now() - t0)
                                       .count());
    return r;
}

} // namespace arena
} // namespace daxkv
