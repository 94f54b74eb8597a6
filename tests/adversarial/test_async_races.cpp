// Races between the asynchronous batches, zero-copy leases, reservations,
// cursors and the calls that take entries or devices away: each scenario runs
// two or more threads through the C API against each other and then checks
// what every call returned and what the store holds.
//
// Races tried here: daxkv_submit from several threads (small batches that
// run inline, large ones for the dispatcher) while another thread calls
// daxkv_shutdown, then daxkv_poll until every accepted batch has its one
// completion and the event fd is quiet; asynchronous DAXKV_REPLACE puts and
// forced removes of keys leased by the caller (the leased bytes must not
// change, and every slot comes back at release); asynchronous replace puts
// against a thread of forced removes (batch results match item statuses,
// no slot leaks); asynchronous forced removes of keys with open
// reservations (commit is 0 or -ECANCELED, and the key then holds the
// committed bytes or nothing); a forced removal of a device (DAXKV_MIGRATE
// and DAXKV_EVICT) while asynchronous gets and puts of its keys run and a
// lease of one of them is held (released only after the removal blocked on
// it); a device removed and added back eight times while asynchronous gets
// and replaces run; a shrink (with and without DAXKV_FORCE) beside
// asynchronous replace puts (nothing left above the new end); pins taken by
// an asynchronous contains (DAXKV_PIN) across a forced removal, and racing
// a removal by eviction without force; lease batches against forced
// removes and replaces of their keys (every leased value stays whole until
// released); reservations (daxkv_reserve_meta) written into and committed
// while a forced removal of their device cancels them; a cursor walk beside
// puts, removes and the removal of a device (every key that stays committed
// is reported exactly once, never a torn key), of a device removed during
// the walk, and across shutdown.
//
// Bad inputs tried here: daxkv_lease_batch with a NULL store, NULL items,
// n above INT32_MAX, unknown flags, NULL, empty and oversized keys, and a
// bad first item with DAXKV_PREFIX; daxkv_reserve_meta with out NULL, NULL
// metadata of non-zero length, metadata over meta_bytes, a value over
// slot_bytes, a NULL key, a key present and a key in flight (*out and
// *data NULL after each, nothing reserved); daxkv_cursor_open with a NULL
// store, an empty or unknown path and out NULL; daxkv_cursor_next with a
// NULL cursor, out NULL, struct_size 4 and 16, and past the end; an event
// fd read by the caller before each daxkv_poll of one completion; a walk
// called again and again after shutdown.
//
// Found: a cursor walk counted the index shard it was copying as walked
// even when the copy failed, so that a caller calling again after -ENOMEM
// never saw that shard's keys, and one calling on after shutdown got 0 (the
// end of the walk) after 64 calls; and a caller that read the event fd
// (as eventfd users do) and then polled fewer completions than were waiting
// was left with a quiet fd and completions waiting.
#include <poll.h>
#include <unistd.h>

#include <atomic>
#include <chrono>
#include <map>
#include <set>
#include <thread>

#include "capi/handles.hpp"
#include "common.hpp"

using namespace adv;

namespace {

constexpr unsigned kAlarm = 30;

// Poll until `want` completions were taken (or about 20 s went by).
std::vector<daxkv_completion> collect(daxkv_store *s, size_t want) {
    std::vector<daxkv_completion> got;
    for (int spins = 0; got.size() < want && spins < 200000; ++spins) {
        daxkv_completion c[16];
        int n = daxkv_poll(s, c, 16);
        if (n < 0)
            break;
        got.insert(got.end(), c, c + n);
        if (n == 0)
            std::this_thread::sleep_for(std::chrono::microseconds(100));
    }
    return got;
}

bool fd_readable(int fd) {
    struct pollfd p = {fd, POLLIN, 0};
    return ::poll(&p, 1, 0) == 1 && (p.revents & POLLIN);
}

// Puts keys 0..n-1 at version 1; false at the first that fails.
bool put_keys(daxkv_store *s, uint32_t n) {
    for (uint32_t i = 0; i < n; ++i)
        if (put_key(s, i, 1))
            return false;
    return true;
}

// Reads keys 0..n-1 back: "" when every one found is whole and every other
// get missed (-ENOENT) where misses_allowed; else what is wrong, `when`
// following the key in the message. present, where given, counts the keys
// found.
std::string read_back_whole(daxkv_store *s, uint32_t n, bool misses_allowed,
                            const std::string &when, uint64_t *present = nullptr) {
    std::string out;
    for (uint32_t i = 0; i < n; ++i) {
        std::string k = key_of(i);
        std::vector<uint8_t> buf(kSlot);
        size_t len = 0;
        int g = daxkv_get(s, k.data(), k.size(), buf.data(), buf.size(), &len);
        if (g == 0) {
            if (present)
                ++*present;
            std::string bad = check_versioned(i, buf.data(), len);
            if (!bad.empty())
                out += "key " + std::to_string(i) + when + ": " + bad + "; ";
        } else if (g != -ENOENT || !misses_allowed) {
            out += "get" + when + " returned " + std::to_string(g) + "; ";
        }
    }
    return out;
}

// The slots taken by live entries, over every device of a pool status.
uint64_t live_slots(const json &st) {
    uint64_t live = 0;
    for (auto &d : st["devices"])
        live += d["live_slot_count"].get<uint64_t>();
    return live;
}

// A key_info ready for daxkv_cursor_next: zeroed, struct_size set.
daxkv_key_info key_info() {
    daxkv_key_info ki;
    std::memset(&ki, 0, sizeof ki);
    ki.struct_size = sizeof ki;
    return ki;
}

// The cursor's next step, into ki made ready again: what daxkv_cursor_next
// returned.
int next_key(daxkv_cursor *c, daxkv_key_info &ki) {
    ki = key_info();
    return daxkv_cursor_next(c, &ki);
}

class AsyncRaces : public PoolFixture {
protected:
    AsyncRaces() : PoolFixture("ar") {}

    // open_pool(n, slots) with keys 0..keys-1 put (version 1); null if the
    // open or a put failed.
    StorePtr open_filled_pool(uint32_t n, uint32_t slots, uint32_t keys) {
        StorePtr s = open_pool(n, slots);
        if (!s || !put_keys(s.get(), keys))
            return StorePtr();
        return s;
    }
    // Runs scenario in a child with an alarm, so that a crash or a hang
    // fails this test alone; the scenario returns what went wrong, or "".
    static void expect_clean(const std::function<std::string()> &scenario) {
        std::string msg = child_check([&] {
            ::alarm(kAlarm);
            return scenario();
        });
        EXPECT_EQ(msg, "");
    }
    // The same for each variant of a scenario (0, 1, ...), a failure naming
    // the variant.
    static void expect_clean_each(const std::vector<std::string> &variants,
                                  const std::function<std::string(int)> &scenario) {
        for (size_t v = 0; v < variants.size(); ++v) {
            std::string msg = child_check([&] {
                ::alarm(kAlarm);
                return scenario(static_cast<int>(v));
            });
            EXPECT_EQ(msg, "") << variants[v];
        }
    }
};

// Items of one batch with their own keys and buffers.
struct Batch {
    std::vector<std::string> keys;
    std::vector<std::vector<uint8_t>> bufs;
    std::vector<daxkv_item> items;
    Batch(uint32_t first, uint32_t n, uint64_t version, bool put) {
        for (uint32_t i = 0; i < n; ++i) {
            keys.push_back(key_of(first + i));
            bufs.push_back(put ? val(first + i, version) : std::vector<uint8_t>(kSlot));
        }
        for (uint32_t i = 0; i < n; ++i) {
            daxkv_item it{};
            it.key = keys[i].data();
            it.key_len = keys[i].size();
            it.data = bufs[i].data();
            it.len = bufs[i].size();
            it.status = 12345;
            items.push_back(it);
        }
    }
};

} // namespace

// ---------------------------------------------------------------------------
// Submission against shutdown

TEST_F(AsyncRaces, SubmittersRacingShutdownEachAcceptedBatchCompletesOnce) {
    expect_clean([&]() -> std::string {
        StorePtr s = open_pool(1, 256);
        daxkv_store *raw = s.get();
        const int fd = daxkv_event_fd(raw);
        if (fd < 0)
            return "event_fd failed";
        constexpr int kThreads = 3, kPerThread = 40;
        // Every batch of every thread, kept alive until the end.
        std::vector<std::vector<std::unique_ptr<Batch>>> batches(kThreads);
        std::vector<std::vector<uint64_t>> accepted(kThreads);
        std::vector<std::string> errs(kThreads);
        std::atomic<int> started{0};
        std::vector<std::thread> ts;
        for (int t = 0; t < kThreads; ++t) {
            ts.emplace_back([&, t] {
                ++started;
                for (int b = 0; b < kPerThread; ++b) {
                    // Small batches (inline), and batches of 80 items that
                    // go to the dispatcher.
                    const uint32_t n = (b % 3 == 0) ? 80 : 4;
                    const uint32_t first = static_cast<uint32_t>(t * 80);
                    const bool put = b % 2 == 0;
                    batches[t].emplace_back(new Batch(first, n, 1, put));
                    Batch &bt = *batches[t].back();
                    const uint64_t tag = (uint64_t(t) << 32) | uint64_t(b);
                    int rc = daxkv_submit(raw, put ? DAXKV_OP_PUT : DAXKV_OP_GET,
                                          bt.items.data(), bt.items.size(),
                                          put ? DAXKV_REPLACE : 0, tag);
                    if (rc == 0) {
                        accepted[t].push_back(tag);
                    } else if (rc != -ESHUTDOWN) {
                        errs[t] = "submit returned " + std::to_string(rc);
                        return;
                    } else {
                        // Refused: the items are the caller's, untouched.
                        for (auto &it : bt.items)
                            if (it.status != 12345) {
                                errs[t] = "a refused batch had its items written";
                                return;
                            }
                    }
                }
            });
        }
        while (started.load() < kThreads)
            std::this_thread::yield();
        std::this_thread::sleep_for(std::chrono::milliseconds(5));
        int src = daxkv_shutdown(raw);
        for (auto &t : ts)
            t.join();
        std::string out;
        for (auto &e : errs)
            if (!e.empty())
                out += e + "; ";
        if (src != 0)
            out += "shutdown returned " + std::to_string(src) + "; ";
        size_t total = 0;
        std::set<uint64_t> want;
        for (auto &a : accepted) {
            total += a.size();
            want.insert(a.begin(), a.end());
        }
        // Every accepted batch has its completion once shutdown returned
        // (or, for a submission that raced it, once that submit returned).
        std::vector<daxkv_completion> got = collect(raw, total);
        std::set<uint64_t> seen;
        for (auto &c : got) {
            if (!want.count(c.tag))
                out += "completion of a tag never accepted; ";
            if (!seen.insert(c.tag).second)
                out += "a completion returned twice; ";
            if (c.result < 0 && c.result != -ECANCELED)
                out += "a batch failed with " + std::to_string(c.result) + "; ";
        }
        if (seen.size() != want.size())
            out += std::to_string(want.size() - seen.size()) + " accepted batches never completed; ";
        daxkv_completion extra;
        if (daxkv_poll(raw, &extra, 1) != 0)
            out += "a completion beyond the accepted ones; ";
        if (fd_readable(fd))
            out += "the event fd is readable with nothing to poll; ";
        if (daxkv_event_fd(raw) != fd)
            out += "the event fd changed after shutdown; ";
        // Every item of every accepted batch has a final status.
        for (int t = 0; t < kThreads; ++t)
            for (size_t b = 0; b < batches[t].size(); ++b) {
                const uint64_t tag = (uint64_t(t) << 32) | uint64_t(b);
                if (!want.count(tag))
                    continue;
                for (auto &it : batches[t][b]->items)
                    if (it.status == 12345) {
                        out += "an item of a completed batch has no status; ";
                        break;
                    }
            }
        return out;
    });
}

// ---------------------------------------------------------------------------
// Leases against replaces and removes

TEST_F(AsyncRaces, AsyncReplacePutsNeverChangeLeasedBytes) {
    expect_clean([&]() -> std::string {
        constexpr uint32_t kKeys = 8;
        StorePtr s = open_filled_pool(2, 64, kKeys);
        if (!s)
            return "put failed";
        daxkv_store *raw = s.get();
        std::vector<daxkv_lease_item> li(kKeys);
        std::vector<std::string> keys;
        for (uint32_t i = 0; i < kKeys; ++i)
            keys.push_back(key_of(i));
        for (uint32_t i = 0; i < kKeys; ++i) {
            li[i] = daxkv_lease_item{};
            li[i].key = keys[i].data();
            li[i].key_len = keys[i].size();
        }
        if (daxkv_lease_batch(raw, li.data(), kKeys, 0) != int(kKeys))
            return std::string("lease_batch: ") + daxkv_errmsg();
        std::string out;
        // Replace every key many times (inline and on the dispatcher), and
        // remove some with force, while the leases are held.
        std::vector<std::unique_ptr<Batch>> batches;
        size_t submitted = 0;
        for (uint64_t v = 2; v < 30; ++v) {
            batches.emplace_back(new Batch(0, kKeys, v, true));
            Batch &b = *batches.back();
            if (daxkv_submit(raw, DAXKV_OP_PUT, b.items.data(), b.items.size(), DAXKV_REPLACE,
                             v) != 0)
                return "submit failed";
            ++submitted;
            if (v % 7 == 0) {
                batches.emplace_back(new Batch(0, kKeys / 2, v, false));
                Batch &r = *batches.back();
                if (daxkv_submit(raw, DAXKV_OP_REMOVE, r.items.data(), r.items.size(),
                                 DAXKV_FORCE, 1000 + v) != 0)
                    return "submit remove failed";
                ++submitted;
            }
            for (uint32_t i = 0; i < kKeys; ++i) {
                std::string bad = check_versioned(i, li[i].data, li[i].size);
                if (!bad.empty())
                    return "leased bytes of key " + std::to_string(i) + " changed: " + bad;
                ValueHeader h;
                std::memcpy(&h, li[i].data, sizeof h);
                if (h.version != 1)
                    return "leased value now reads version " + std::to_string(h.version);
            }
        }
        std::vector<daxkv_completion> got = collect(raw, submitted);
        if (got.size() != submitted)
            out += "missing completions; ";
        for (auto &c : got)
            if (c.op == DAXKV_OP_PUT && c.result != int(kKeys))
                out += "a replace batch stored " + std::to_string(c.result) + "; ";
        for (uint32_t i = 0; i < kKeys; ++i) {
            std::string bad = check_versioned(i, li[i].data, li[i].size);
            if (!bad.empty())
                out += "leased bytes changed at the end: " + bad + "; ";
            if (daxkv_lease_data(li[i].lease) != li[i].data)
                out += "lease data address differs from the batch's; ";
        }
        for (auto &l : li)
            daxkv_lease_release(l.lease);
        out += check_keys(raw, 0, kKeys, 29);
        // Every slot the leases held came back: only the live keys use slots.
        json st = pool_status(raw);
        uint64_t live = 0, borrowed = 0;
        for (auto &d : st["devices"]) {
            live += d["live_slot_count"].get<uint64_t>();
            borrowed += d["borrowed_slot_count"].get<uint64_t>();
        }
        if (live != kKeys)
            out += "live slots " + std::to_string(live) + ", expected " + std::to_string(kKeys) +
                   "; ";
        if (borrowed != 0)
            out += "slots still borrowed after release; ";
        return out;
    });
}

TEST_F(AsyncRaces, LeaseBatchesRacingForcedRemovesAndReplacesSeeWholeValues) {
    expect_clean([&]() -> std::string {
        constexpr uint32_t kKeys = 12;
        StorePtr s = open_filled_pool(2, 64, kKeys);
        if (!s)
            return "put failed";
        daxkv_store *raw = s.get();
        std::atomic<bool> stop{false};
        std::string werr;
        std::thread writer([&] {
            uint64_t v = 2;
            while (!stop.load()) {
                for (uint32_t i = 0; i < kKeys && !stop.load(); ++i) {
                    std::string k = key_of(i);
                    int rc = (v + i) % 3 == 0 ? daxkv_remove(raw, k.data(), k.size(), DAXKV_FORCE)
                                              : put_key(raw, i, v, DAXKV_REPLACE);
                    if (rc < 0 && rc != -ENOENT && rc != -ECANCELED && rc != -ENOSPC) {
                        werr = "writer got " + std::to_string(rc) + " " + daxkv_errmsg();
                        return;
                    }
                }
                ++v;
            }
        });
        std::vector<std::string> keys;
        for (uint32_t i = 0; i < kKeys; ++i)
            keys.push_back(key_of(i));
        std::string out;
        for (int round = 0; round < 300 && out.empty(); ++round) {
            std::vector<daxkv_lease_item> li(kKeys);
            for (uint32_t i = 0; i < kKeys; ++i) {
                li[i] = daxkv_lease_item{};
                li[i].key = keys[i].data();
                li[i].key_len = keys[i].size();
                li[i].status = 777;
            }
            const unsigned flags = round % 2 ? DAXKV_PREFIX : 0;
            int n = daxkv_lease_batch(raw, li.data(), kKeys, flags);
            if (n < 0) {
                out += "lease_batch returned " + std::to_string(n) + "; ";
                break;
            }
            int leased = 0;
            bool prefix_ended = false;
            for (uint32_t i = 0; i < kKeys; ++i) {
                if (li[i].status == 0) {
                    ++leased;
                    if (prefix_ended && (flags & DAXKV_PREFIX))
                        out += "a leased item after the prefix ended; ";
                    if (!li[i].lease) {
                        out += "status 0 without a lease; ";
                        continue;
                    }
                    // Held a little while the writer replaces and removes.
                    std::string bad = check_versioned(i, li[i].data, li[i].size);
                    if (!bad.empty())
                        out += "leased value of key " + std::to_string(i) + ": " + bad + "; ";
                } else {
                    prefix_ended = true;
                    if (li[i].lease)
                        out += "a failed item has a lease; ";
                    if (li[i].status != -ENOENT)
                        out += "item status " + std::to_string(li[i].status) + "; ";
                }
            }
            if (n != leased && !(flags & DAXKV_PREFIX))
                out += "returned " + std::to_string(n) + " but " + std::to_string(leased) +
                       " items leased; ";
            std::this_thread::yield();
            for (uint32_t i = 0; i < kKeys; ++i) {
                if (li[i].status == 0) {
                    std::string bad = check_versioned(i, li[i].data, li[i].size);
                    if (!bad.empty())
                        out += "leased value changed while held: " + bad + "; ";
                }
                daxkv_lease_release(li[i].lease);
            }
        }
        stop = true;
        writer.join();
        if (!werr.empty())
            out += werr + "; ";
        json st = pool_status(raw);
        for (auto &d : st["devices"])
            if (d["borrowed_slot_count"].get<uint64_t>() != 0)
                out += "slots still borrowed after every release; ";
        return out;
    });
}

TEST_F(AsyncRaces, AsyncReplacePutsRacingForcedRemovesLeakNoSlot) {
    expect_clean([&]() -> std::string {
        StorePtr s = open_pool(2, 128);
        daxkv_store *raw = s.get();
        constexpr uint32_t kKeys = 100; // over the inline limit: the dispatcher runs them
        std::atomic<bool> stop{false};
        std::atomic<uint64_t> removed{0};
        std::string rerr;
        std::thread remover([&] {
            uint32_t i = 0;
            while (!stop.load()) {
                std::string k = key_of(i++ % kKeys);
                int rc = daxkv_remove(raw, k.data(), k.size(), DAXKV_FORCE);
                if (rc == 0)
                    ++removed;
                else if (rc != -ENOENT) {
                    rerr = "forced remove returned " + std::to_string(rc);
                    return;
                }
            }
        });
        std::vector<std::unique_ptr<Batch>> batches;
        for (uint64_t v = 1; v <= 20; ++v) {
            batches.emplace_back(new Batch(0, kKeys, v, true));
            Batch &b = *batches.back();
            if (daxkv_submit(raw, DAXKV_OP_PUT, b.items.data(), b.items.size(), DAXKV_REPLACE,
                             v) != 0)
                return "submit failed";
        }
        std::vector<daxkv_completion> got = collect(raw, batches.size());
        stop = true;
        remover.join();
        std::string out = rerr.empty() ? "" : rerr + "; ";
        if (got.size() != batches.size())
            return out + "missing completions";
        for (auto &c : got) {
            Batch &b = *batches[c.tag - 1];
            int stored = 0;
            for (auto &it : b.items) {
                if (it.status == 0)
                    ++stored;
                else if (it.status != -ECANCELED && it.status != DAXKV_EXISTED)
                    out += "put item status " + std::to_string(it.status) + "; ";
            }
            if (stored != c.result)
                out += "batch result " + std::to_string(c.result) + " but " +
                       std::to_string(stored) + " items stored; ";
        }
        // What is left reads whole, and only what is left takes slots.
        uint64_t present = 0;
        out += read_back_whole(raw, kKeys, true, "", &present);
        const uint64_t live = live_slots(pool_status(raw));
        if (live != present)
            out += std::to_string(live) + " slots live for " + std::to_string(present) +
                   " keys present; ";
        return out;
    });
}

// ---------------------------------------------------------------------------
// Reservations against forced removes of their keys and devices

TEST_F(AsyncRaces, AsyncForcedRemovesRacingReservationsLeaveWholeValuesOrNothing) {
    expect_clean([&]() -> std::string {
        StorePtr s = open_pool(1, 64);
        daxkv_store *raw = s.get();
        constexpr uint32_t kKeys = 16;
        std::string out;
        std::vector<std::unique_ptr<Batch>> batches;
        size_t submitted = 0;
        for (int round = 0; round < 40 && out.empty(); ++round) {
            // Reserve every key, fill half, then remove them all with force
            // (asynchronously) while the rest is filled.
            std::vector<daxkv_reservation *> rs(kKeys, nullptr);
            const uint64_t v = uint64_t(round) + 1;
            for (uint32_t i = 0; i < kKeys; ++i) {
                std::string k = key_of(i);
                auto want = val(i, v);
                const char meta[] = "m";
                void *data = nullptr;
                int rc = daxkv_reserve_meta(raw, k.data(), k.size(), want.size(), meta, 1, &data,
                                            &rs[i]);
                if (rc != 0)
                    return "reserve_meta returned " + std::to_string(rc) + " " + daxkv_errmsg();
                if (data != daxkv_reservation_data(rs[i]))
                    return "reserve_meta data differs from reservation_data";
                if (i % 2 == 0)
                    std::memcpy(data, want.data(), want.size());
            }
            batches.emplace_back(new Batch(0, kKeys, 0, false));
            Batch &b = *batches.back();
            if (daxkv_submit(raw, DAXKV_OP_REMOVE, b.items.data(), b.items.size(), DAXKV_FORCE,
                             uint64_t(round)) != 0)
                return "submit failed";
            ++submitted;
            std::vector<int> commit(kKeys);
            for (uint32_t i = 0; i < kKeys; ++i) {
                auto want = val(i, v);
                if (i % 2 == 1)
                    std::memcpy(daxkv_reservation_data(rs[i]), want.data(), want.size());
                if (i % 5 == 4) {
                    daxkv_abort(rs[i]);
                    commit[i] = 1;
                } else {
                    commit[i] = daxkv_commit(rs[i]);
                }
            }
            std::vector<daxkv_completion> got = collect(raw, 1);
            if (got.size() != 1 || got[0].result < 0)
                return "the remove batch did not complete";
            for (uint32_t i = 0; i < kKeys; ++i) {
                const int st = b.items[i].status;
                if (commit[i] != 0 && commit[i] != -ECANCELED && commit[i] != 1)
                    out += "commit returned " + std::to_string(commit[i]) + "; ";
                std::string bad = check_key(raw, i, v);
                std::string gone = check_key(raw, i, 0);
                // The remove ran before or after the commit: either the key
                // was removed (0, or cancelled in flight: 0 too) or it is
                // not there for the remove (-ENOENT, -EBUSY never with force).
                if (st != 0 && st != -ENOENT)
                    out += "forced remove item status " + std::to_string(st) + "; ";
                if (commit[i] == 0) {
                    if (!bad.empty() && !gone.empty())
                        out += "committed key " + std::to_string(i) + ": " + bad + "; ";
                } else if (!gone.empty()) {
                    out += "key " + std::to_string(i) + " present after a cancelled commit or "
                                                        "abort; ";
                }
                // Clean up for the next round.
                std::string k = key_of(i);
                daxkv_remove(raw, k.data(), k.size(), DAXKV_FORCE);
            }
        }
        json st = pool_status(raw);
        if (st["devices"][0]["live_slot_count"].get<uint64_t>() != 0)
            out += "slots left taken after every key was removed: " +
                   st["devices"][0]["live_slot_count"].dump() + "; ";
        (void)submitted;
        return out;
    });
}

TEST_F(AsyncRaces, ReservationsWrittenWhileAForcedDeviceRemovalCancelsThem) {
    expect_clean_each({"migrate", "evict"}, [&](int evict) -> std::string {
        StorePtr s = open_pool(2, 32);
        daxkv_store *raw = s.get();
        std::string out;
        // Reservations on both devices (placement takes the least used).
        constexpr uint32_t kKeys = 8;
        std::vector<daxkv_reservation *> rs(kKeys, nullptr);
        std::vector<void *> data(kKeys, nullptr);
        for (uint32_t i = 0; i < kKeys; ++i) {
            std::string k = key_of(i);
            auto want = val(i, 1);
            if (daxkv_reserve_meta(raw, k.data(), k.size(), want.size(), "x", 1, &data[i],
                                   &rs[i]) != 0)
                return std::string("reserve: ") + daxkv_errmsg();
        }
        daxkv_hotplug_result r = result();
        int rc = daxkv_device_remove(raw, paths_[0].c_str(),
                                     evict ? DAXKV_EVICT : DAXKV_MIGRATE, DAXKV_FORCE, &r);
        if (rc != 0)
            return "forced removal with open reservations returned " + std::to_string(rc) +
                   " " + daxkv_errmsg();
        // The caller may still write into every reservation (the device
        // stays mapped for them), then commit: cancelled ones fail with
        // -ECANCELED and leave nothing.
        int cancelled = 0;
        for (uint32_t i = 0; i < kKeys; ++i) {
            auto want = val(i, 1);
            std::memcpy(data[i], want.data(), want.size());
            int c = daxkv_commit(rs[i]);
            if (c == -ECANCELED) {
                ++cancelled;
                std::string gone = check_key(raw, i, 0);
                if (!gone.empty())
                    out += "cancelled key " + std::to_string(i) + ": " + gone + "; ";
            } else if (c == 0) {
                std::string bad = check_key(raw, i, 1);
                if (!bad.empty())
                    out += "committed key " + std::to_string(i) + ": " + bad + "; ";
            } else {
                out += "commit returned " + std::to_string(c) + "; ";
            }
        }
        if (cancelled == 0)
            out += "no reservation lay on the removed device; ";
        json st = pool_status(raw);
        if (st["devices"][0]["state"] != "removed")
            out += "device 0 is " + st["devices"][0]["state"].dump() + "; ";
        // The key of a cancelled reservation can be stored again.
        for (uint32_t i = 0; i < kKeys; ++i) {
            int p = put_key(raw, i, 2, DAXKV_REPLACE);
            if (p != 0)
                out += "put after the removal returned " + std::to_string(p) + "; ";
            std::string bad = check_key(raw, i, 2);
            if (!bad.empty())
                out += bad + "; ";
        }
        return out;
    });
}

// ---------------------------------------------------------------------------
// Device removal against asynchronous batches and leases

TEST_F(AsyncRaces, ForcedDeviceRemovalDuringAsyncBatchesAndAHeldLease) {
    expect_clean_each({"migrate", "evict"}, [&](int evict) -> std::string {
        constexpr uint32_t kKeys = 40;
        StorePtr s = open_filled_pool(3, 64, kKeys);
        if (!s)
            return "put failed";
        daxkv_store *raw = s.get();
        std::vector<uint32_t> on0 = keys_on(raw, kKeys, 0);
        if (on0.empty())
            return "no key on dev0";
        std::string lk = key_of(on0[0]);
        daxkv_lease *l = nullptr;
        if (daxkv_lease_acquire(raw, lk.data(), lk.size(), &l))
            return "lease failed";
        std::atomic<int> rrc{1};
        daxkv_hotplug_result r = result();
        std::thread remover([&] {
            rrc = daxkv_device_remove(raw, paths_[0].c_str(),
                                      evict ? DAXKV_EVICT : DAXKV_MIGRATE, DAXKV_FORCE, &r);
        });
        // Gets and replaces of every key, asynchronously, meanwhile.
        std::vector<std::unique_ptr<Batch>> batches;
        size_t submitted = 0;
        std::string out;
        for (int b = 0; b < 12; ++b) {
            const bool put = b % 3 == 2;
            batches.emplace_back(new Batch(0, kKeys, 1, put));
            Batch &bt = *batches.back();
            if (daxkv_submit(raw, put ? DAXKV_OP_PUT : DAXKV_OP_GET, bt.items.data(),
                             bt.items.size(), put ? DAXKV_REPLACE : 0, uint64_t(b)) != 0)
                return "submit failed";
            ++submitted;
        }
        std::vector<daxkv_completion> got = collect(raw, submitted);
        if (got.size() != submitted)
            out += "missing completions (a batch waits on the removal?); ";
        // Every get returned whole values or misses (evicted keys).
        for (size_t b = 0; b < batches.size(); ++b) {
            if (b % 3 == 2)
                continue;
            Batch &bt = *batches[b];
            for (uint32_t i = 0; i < kKeys; ++i) {
                const daxkv_item &it = bt.items[i];
                if (it.status == 0) {
                    std::string bad = check_versioned(i, it.data, it.len);
                    if (!bad.empty())
                        out += "async get of key " + std::to_string(i) + ": " + bad + "; ";
                } else if (it.status != -ENOENT) {
                    out += "async get status " + std::to_string(it.status) + "; ";
                }
            }
        }
        // The leased bytes are intact while the removal waits.
        if (check_versioned(on0[0], daxkv_lease_data(l), daxkv_lease_size(l)) != "")
            out += "leased bytes changed during the removal; ";
        if (rrc.load() != 1)
            out += "the forced removal returned " + std::to_string(rrc.load()) +
                   " while a lease of its device was held; ";
        daxkv_lease_release(l);
        remover.join();
        if (rrc.load() != 0)
            out += "forced removal returned " + std::to_string(rrc.load()) + "; ";
        json st = pool_status(raw);
        if (st["devices"][0]["state"] != "removed")
            out += "dev0 is " + st["devices"][0]["state"].dump() + "; ";
        out += read_back_whole(raw, kKeys, evict, " after removal");
        return out;
    });
}

TEST_F(AsyncRaces, AShrinkDuringAsyncReplacePutsLeavesNothingAboveTheEnd) {
    expect_clean_each({"no force", "force"}, [&](int force) -> std::string {
        StorePtr s = open_pool(1, 64);
        daxkv_store *raw = s.get();
        constexpr uint32_t kKeys = 12;
        // Fill the device up high first, so that the live keys lie above
        // the new end, then free the low slots.
        for (uint32_t i = 0; i < 48; ++i)
            if (put_key(raw, 100 + i, 1))
                return "fill failed";
        if (!put_keys(raw, kKeys))
            return "put failed";
        for (uint32_t i = 0; i < 48; ++i) {
            std::string k = key_of(100 + i);
            daxkv_remove(raw, k.data(), k.size(), 0);
        }
        // Small batches (they run inline in the submitting thread, as
        // the resize runs in this one), each key replaced 24 times.
        std::vector<std::unique_ptr<Batch>> batches;
        for (uint64_t v = 2; v <= 25; ++v)
            batches.emplace_back(new Batch(0, kKeys, v, true));
        std::atomic<bool> go{false};
        std::string serr;
        std::thread submitter([&] {
            while (!go.load())
                std::this_thread::yield();
            for (auto &b : batches) {
                if (daxkv_submit(raw, DAXKV_OP_PUT, b->items.data(), b->items.size(),
                                 DAXKV_REPLACE, 0) != 0)
                    serr = "submit failed";
                std::this_thread::yield();
            }
        });
        go = true;
        daxkv_hotplug_result r = result();
        int rc = daxkv_device_resize(raw, paths_[0].c_str(), 32 * kSlot, DAXKV_MIGRATE,
                                     force ? DAXKV_FORCE : 0, &r);
        submitter.join();
        std::vector<daxkv_completion> got = collect(raw, batches.size());
        std::string out = serr;
        if (got.size() != batches.size())
            out += "missing completions; ";
        // Writes above the end may make a shrink without force give up
        // (-EBUSY): then the device keeps its size.
        if (rc != 0 && !(rc == -EBUSY && !force))
            out += "shrink returned " + std::to_string(rc) + " " + daxkv_errmsg() + "; ";
        daxkv_device_layout lay;
        std::memset(&lay, 0, sizeof lay);
        lay.struct_size = sizeof lay;
        if (daxkv_device_describe(raw, paths_[0].c_str(), &lay) != 0)
            return out + "describe failed";
        const uint64_t end = rc == 0 ? 32 : 64;
        if (lay.usable_slots != end)
            out += "usable slots " + std::to_string(lay.usable_slots) + "; ";
        daxkv_cursor *c = nullptr;
        if (daxkv_cursor_open(raw, nullptr, &c) != 0)
            return out + "cursor_open failed";
        daxkv_key_info ki;
        int n = 0;
        for (;;) {
            if (next_key(c, ki) != 1)
                break;
            ++n;
            if (ki.slot >= end)
                out += "an entry at slot " + std::to_string(ki.slot) + " past the end; ";
        }
        daxkv_cursor_close(c);
        if (n != int(kKeys))
            out += std::to_string(n) + " keys walked; ";
        out += check_keys(raw, 0, kKeys, 25);
        json st = pool_status(raw);
        if (st["devices"][0]["live_slot_count"].get<uint64_t>() != kKeys)
            out += "live slots " + st["devices"][0]["live_slot_count"].dump() + "; ";
        return out;
    });
}

TEST_F(AsyncRaces, PinsTakenAsynchronouslyAcrossAForcedDeviceRemoval) {
    expect_clean_each({"migrate", "evict"}, [&](int evict) -> std::string {
        constexpr uint32_t kKeys = 16;
        StorePtr s = open_filled_pool(2, 64, kKeys);
        if (!s)
            return "put failed";
        daxkv_store *raw = s.get();
        std::vector<uint32_t> on0 = keys_on(raw, kKeys, 0);
        if (on0.empty())
            return "no key on dev0";
        // Pin every key twice, asynchronously (look up and lock).
        Batch pin(0, kKeys, 0, false);
        for (int k = 0; k < 2; ++k) {
            if (daxkv_submit(raw, DAXKV_OP_CONTAINS, pin.items.data(), pin.items.size(),
                             DAXKV_PIN, 7) != 0)
                return "submit failed";
            std::vector<daxkv_completion> got = collect(raw, 1);
            if (got.size() != 1 || got[0].result != int(kKeys))
                return "the pinning batch did not hit every key";
        }
        std::string out;
        // Without force the pins stop the removal, which changes nothing.
        daxkv_hotplug_result r = result();
        int rc = daxkv_device_remove(raw, paths_[0].c_str(),
                                     evict ? DAXKV_EVICT : DAXKV_MIGRATE, 0, &r);
        if (rc != -EBUSY)
            out += "removal of pinned entries without force returned " +
                   std::to_string(rc) + "; ";
        if (pool_status(raw)["devices"][0]["state"] != "active")
            out += "the refused removal left the device changed; ";
        r = result();
        rc = daxkv_device_remove(raw, paths_[0].c_str(), evict ? DAXKV_EVICT : DAXKV_MIGRATE,
                                 DAXKV_FORCE, &r);
        if (rc != 0)
            return out + "forced removal returned " + std::to_string(rc);
        std::set<uint32_t> gone(on0.begin(), on0.end());
        for (uint32_t i = 0; i < kKeys; ++i) {
            std::string k = key_of(i);
            const bool deleted = evict && gone.count(i);
            // A moved entry keeps its pins; a deleted one has none left.
            int u1 = daxkv_unpin(raw, k.data(), k.size());
            int u2 = daxkv_unpin(raw, k.data(), k.size());
            int u3 = daxkv_unpin(raw, k.data(), k.size());
            if (deleted ? (u1 != -ENOENT || u2 != -ENOENT)
                        : (u1 != 0 || u2 != 0 || u3 != -ENOENT))
                out += "key " + std::to_string(i) + (deleted ? " (deleted)" : " (kept)") +
                       ": unpins " + std::to_string(u1) + "," + std::to_string(u2) + "," +
                       std::to_string(u3) + "; ";
            if (deleted) {
                // Stored again: a new entry, not pinned by anyone.
                if (put_key(raw, i, 2))
                    out += "put again failed; ";
                int rm = daxkv_remove(raw, k.data(), k.size(), 0);
                if (rm != 0)
                    out += "remove of the new entry returned " + std::to_string(rm) + "; ";
            } else {
                std::string bad = check_key(raw, i, 1);
                if (!bad.empty())
                    out += bad + "; ";
            }
        }
        struct daxkv_stats st = get_stats(raw);
        (void)st;
        return out;
    });
}

TEST_F(AsyncRaces, DeviceRemovedAndAddedBackWhileAsyncBatchesRun) {
    expect_clean_each({"migrate", "evict"}, [&](int evict) -> std::string {
        constexpr uint32_t kKeys = 70; // over the inline limit: the dispatcher runs them
        StorePtr s = open_filled_pool(2, 256, kKeys);
        if (!s)
            return "put failed";
        daxkv_store *raw = s.get();
        std::atomic<bool> stop{false};
        std::vector<std::unique_ptr<Batch>> batches;
        std::string serr;
        std::thread submitter([&] {
            for (uint64_t v = 2; !stop.load() && v < 400; ++v) {
                const bool put = v % 2 == 0;
                batches.emplace_back(new Batch(0, kKeys, v, put));
                Batch &b = *batches.back();
                if (daxkv_submit(raw, put ? DAXKV_OP_PUT : DAXKV_OP_GET, b.items.data(),
                                 b.items.size(), put ? DAXKV_REPLACE : 0, v) != 0) {
                    serr = "submit failed";
                    return;
                }
                // Keep a few batches in flight, not hundreds.
                while (!stop.load() &&
                       get_stats(raw).async_submitted > get_stats(raw).async_completed + 4)
                    std::this_thread::yield();
            }
        });
        std::string out;
        for (int cycle = 0; cycle < 8 && out.empty(); ++cycle) {
            daxkv_hotplug_result r = result();
            int rc = daxkv_device_remove(raw, paths_[0].c_str(),
                                         evict ? DAXKV_EVICT : DAXKV_MIGRATE, DAXKV_FORCE, &r);
            if (rc != 0)
                out += "removal returned " + std::to_string(rc) + " " + daxkv_errmsg() + "; ";
            rc = daxkv_device_add(raw, paths_[0].c_str(), dev_bytes_for(256));
            if (rc != 0)
                out += "add returned " + std::to_string(rc) + " " + daxkv_errmsg() + "; ";
        }
        stop = true;
        submitter.join();
        out += serr;
        std::vector<daxkv_completion> got = collect(raw, batches.size());
        if (got.size() != batches.size())
            out += "missing completions; ";
        for (auto &c : got)
            if (c.result < 0)
                out += "batch " + std::to_string(c.tag) + " failed " +
                       std::to_string(c.result) + "; ";
        for (auto &b : batches)
            for (uint32_t i = 0; i < kKeys; ++i) {
                const daxkv_item &it = b->items[i];
                if (it.status == 0 && b->bufs[i].size() == kSlot) {
                    std::string bad = check_versioned(i, it.data, it.len);
                    if (!bad.empty())
                        out += "async get of key " + std::to_string(i) + ": " + bad + "; ";
                } else if (it.status < 0 && it.status != -ENOENT && it.status != -ENOSPC) {
                    out += "item status " + std::to_string(it.status) + "; ";
                }
            }
        uint64_t present = 0;
        out += read_back_whole(raw, kKeys, evict, "", &present);
        const uint64_t live = live_slots(pool_status(raw));
        if (live != present)
            out += std::to_string(live) + " slots live for " + std::to_string(present) +
                   " keys; ";
        return out;
    });
}

TEST_F(AsyncRaces, AsyncPinsRacingARemovalByEvictionWithoutForce) {
    for (int round = 0; round < 6; ++round) {
        std::string msg = child_check([&]() -> std::string {
            ::alarm(kAlarm);
            constexpr uint32_t kKeys = 100; // over the inline limit: the dispatcher runs it
            StorePtr s = open_filled_pool(2, 128, kKeys);
            if (!s)
                return "put failed";
            daxkv_store *raw = s.get();
            Batch pin(0, kKeys, 0, false);
            std::atomic<bool> go{false};
            int rrc = 1;
            daxkv_hotplug_result r = result();
            std::thread remover([&] {
                while (!go.load())
                    std::this_thread::yield();
                if (round % 2)
                    std::this_thread::sleep_for(std::chrono::microseconds(200));
                rrc = daxkv_device_remove(raw, paths_[0].c_str(), DAXKV_EVICT, 0, &r);
            });
            go = true;
            if (daxkv_submit(raw, DAXKV_OP_CONTAINS, pin.items.data(), pin.items.size(),
                             DAXKV_PIN, 1) != 0)
                return "submit failed";
            remover.join();
            std::vector<daxkv_completion> got = collect(raw, 1);
            if (got.size() != 1)
                return "the pinning batch never completed";
            std::string out;
            if (rrc != 0 && rrc != -EBUSY)
                out += "removal returned " + std::to_string(rrc) + "; ";
            const std::string state = pool_status(raw)["devices"][0]["state"];
            if ((rrc == 0) != (state == "removed"))
                out += "removal returned " + std::to_string(rrc) + " but the device is " + state +
                       "; ";
            int hits = 0;
            for (uint32_t i = 0; i < kKeys; ++i) {
                const int st = pin.items[i].status;
                std::string k = key_of(i);
                int u1 = daxkv_unpin(raw, k.data(), k.size());
                int u2 = daxkv_unpin(raw, k.data(), k.size());
                if (st == 1) {
                    ++hits;
                    if (u1 != 0 || u2 != -ENOENT)
                        out += "pinned key " + std::to_string(i) + ": unpins " +
                               std::to_string(u1) + "," + std::to_string(u2) + "; ";
                } else if (st == 0) {
                    if (u1 != -ENOENT)
                        out += "key " + std::to_string(i) + " missed by the batch but pinned; ";
                    if (rrc != 0)
                        out += "a miss although the removal failed; ";
                } else {
                    out += "item status " + std::to_string(st) + "; ";
                }
            }
            if (hits != got[0].result)
                out += "result " + std::to_string(got[0].result) + " for " +
                       std::to_string(hits) + " hits; ";
            return out;
        });
        EXPECT_EQ(msg, "") << "round " << round;
    }
}

// ---------------------------------------------------------------------------
// Cursors against puts, removes and a device removal

TEST_F(AsyncRaces, CursorWalkBesideWritesAndADeviceRemovalReportsStableKeysOnce) {
    expect_clean([&]() -> std::string {
        StorePtr s = open_pool(2, 128);
        daxkv_store *raw = s.get();
        constexpr uint32_t kStable = 60, kChurn = 40;
        if (!put_keys(raw, kStable + kChurn))
            return "put failed";
        std::string out;
        for (int round = 0; round < 4 && out.empty(); ++round) {
            std::atomic<bool> stop{false};
            std::thread churn([&] {
                uint64_t v = 2;
                while (!stop.load()) {
                    for (uint32_t i = kStable; i < kStable + kChurn; ++i) {
                        std::string k = key_of(i);
                        if ((i + v) % 2)
                            daxkv_remove(raw, k.data(), k.size(), DAXKV_FORCE);
                        else
                            put_key(raw, i, v, DAXKV_REPLACE);
                    }
                    ++v;
                }
            });
            daxkv_cursor *c = nullptr;
            if (daxkv_cursor_open(raw, nullptr, &c) != 0)
                return std::string("cursor_open: ") + daxkv_errmsg();
            std::map<std::string, int> seen;
            daxkv_key_info ki;
            int n = 0, rc;
            bool removed = false;
            std::thread remover;
            std::atomic<int> rrc{1};
            for (;;) {
                rc = next_key(c, ki);
                if (rc != 1)
                    break;
                std::string k(static_cast<const char *>(ki.key), ki.key_len);
                if (k.compare(0, 4, "key-") != 0)
                    out += "a torn key reported; ";
                ++seen[k];
                if (++n == 20 && round % 2 == 1 && !removed) {
                    // Take a device away in the middle of the walk: its
                    // stable keys move to the other device.
                    removed = true;
                    remover = std::thread([&] {
                        daxkv_hotplug_result r = result();
                        rrc = daxkv_device_remove(raw, paths_[round / 2 % 2 == 0 ? 0 : 1].c_str(),
                                                  DAXKV_MIGRATE, DAXKV_FORCE, &r);
                    });
                }
            }
            daxkv_cursor_close(c);
            if (remover.joinable())
                remover.join();
            stop = true;
            churn.join();
            if (rc != 0)
                out += "cursor_next ended with " + std::to_string(rc) + "; ";
            for (uint32_t i = 0; i < kStable; ++i) {
                auto it = seen.find(key_of(i));
                // A migrated key moves to another device during the walk
                // but stays committed throughout: still exactly once.
                if (it == seen.end())
                    out += "stable " + key_of(i) + " never reported; ";
                else if (it->second != 1)
                    out += "stable " + key_of(i) + " reported " + std::to_string(it->second) +
                           " times" + (removed ? " (with a migration)" : "") + "; ";
            }
            if (removed && rrc.load() != 0)
                out += "removal returned " + std::to_string(rrc.load()) + "; ";
            if (removed) {
                // Add the device back for the next rounds.
                const std::string &p = paths_[round / 2 % 2 == 0 ? 0 : 1];
                if (daxkv_device_add(raw, p.c_str(), dev_bytes_for(128)) != 0)
                    out += std::string("add back: ") + daxkv_errmsg() + "; ";
            }
        }
        return out;
    });
}

TEST_F(AsyncRaces, CursorOfARemovedDeviceAndAfterShutdown) {
    expect_clean([&]() -> std::string {
        StorePtr s = open_pool(2, 32);
        daxkv_store *raw = s.get();
        if (!put_keys(raw, 20))
            return "put failed";
        std::string out;
        daxkv_cursor *c = nullptr;
        if (daxkv_cursor_open(raw, paths_[0].c_str(), &c) != 0)
            return std::string("cursor_open: ") + daxkv_errmsg();
        daxkv_key_info ki;
        int rc = next_key(c, ki);
        if (rc != 1)
            out += "first next returned " + std::to_string(rc) + "; ";
        daxkv_hotplug_result r = result();
        if (daxkv_device_remove(raw, paths_[0].c_str(), DAXKV_EVICT, DAXKV_FORCE, &r) != 0)
            out += std::string("removal: ") + daxkv_errmsg() + "; ";
        // The walk of a device that is gone: no entry of it is left, and
        // nothing it reports may be of the other device.
        int more = 0;
        for (;;) {
            rc = next_key(c, ki);
            if (rc != 1)
                break;
            ++more;
        }
        if (rc != 0)
            out += "walk of the removed device ended with " + std::to_string(rc) + "; ";
        daxkv_cursor_close(c);
        // A cursor over everything, then shutdown in its middle.
        if (daxkv_cursor_open(raw, nullptr, &c) != 0)
            return out + "cursor_open 2: " + daxkv_errmsg();
        rc = next_key(c, ki);
        if (rc != 1)
            out += "next before shutdown returned " + std::to_string(rc) + "; ";
        if (daxkv_shutdown(raw) != 0)
            out += "shutdown failed; ";
        // Records copied before the shutdown may still be handed out; the
        // walk then ends with -ESHUTDOWN, not with a normal end or a crash.
        for (int k = 0; k < 1000; ++k) {
            rc = next_key(c, ki);
            if (rc != 1)
                break;
        }
        if (rc != -ESHUTDOWN)
            out += "the walk after shutdown ended with " + std::to_string(rc) + "; ";
        daxkv_cursor_close(c);
        daxkv_cursor *c2 = reinterpret_cast<daxkv_cursor *>(0x1);
        rc = daxkv_cursor_open(raw, nullptr, &c2);
        if (rc != -ESHUTDOWN)
            out += "open after shutdown returned " + std::to_string(rc) + "; ";
        (void)more;
        return out;
    });
}

// ---------------------------------------------------------------------------
// Bad arguments to the calls of this file that test_input.cpp does not reach

TEST_F(AsyncRaces, BadArgumentsToLeaseBatchReserveMetaAndCursorsLeaveNothingBehind) {
    expect_clean([&]() -> std::string {
        StorePtr s = open_pool(1, 16);
        daxkv_store *raw = s.get();
        std::string out;
        auto expect = [&](int got, int want, const char *what) {
            if (got != want)
                out += std::string(what) + " returned " + std::to_string(got) + ", expected " +
                       std::to_string(want) + "; ";
        };
        if (put_key(raw, 0, 1))
            return "put failed";
        const std::string k0 = key_of(0);
        // lease_batch: the call's own arguments.
        daxkv_lease_item li[3];
        std::memset(li, 0, sizeof li);
        li[0].key = k0.data();
        li[0].key_len = k0.size();
        expect(daxkv_lease_batch(nullptr, li, 1, 0), -EINVAL, "lease_batch(NULL store)");
        expect(daxkv_lease_batch(raw, nullptr, 1, 0), -EINVAL, "lease_batch(NULL items)");
        expect(daxkv_lease_batch(raw, nullptr, 0, 0), 0, "lease_batch(NULL, 0)");
        expect(daxkv_lease_batch(raw, li, size_t(INT32_MAX) + 1, 0), -EINVAL,
               "lease_batch(n > INT32_MAX)");
        expect(daxkv_lease_batch(raw, li, 1, DAXKV_FORCE), -EINVAL, "lease_batch(FORCE)");
        if (li[0].lease)
            out += "a refused lease_batch left a lease; ";
        // Per item: a NULL key, an empty and an oversized key.
        std::string big(DAXKV_KEY_MAX + 1, 'k');
        li[0].key = nullptr;
        li[0].key_len = 3;
        li[1].key = k0.data();
        li[1].key_len = 0;
        li[2].key = big.data();
        li[2].key_len = big.size();
        expect(daxkv_lease_batch(raw, li, 3, 0), 0, "lease_batch(bad keys)");
        for (auto &it : li) {
            expect(it.status, -EINVAL, "bad key item status");
            if (it.lease)
                out += "a bad key item has a lease; ";
        }
        // With PREFIX the first bad item stops the batch.
        daxkv_lease_item two[2];
        std::memset(two, 0, sizeof two);
        two[0].key = nullptr;
        two[0].key_len = 1;
        two[1].key = k0.data();
        two[1].key_len = k0.size();
        expect(daxkv_lease_batch(raw, two, 2, DAXKV_PREFIX), 0, "lease_batch(PREFIX, bad first)");
        expect(two[1].status, -ENOENT, "item after the prefix");
        if (two[1].lease)
            out += "an item after the prefix was leased; ";
        json st = pool_status(raw);
        if (st["devices"][0]["borrowed_slot_count"].get<uint64_t>() != 0)
            out += "a slot stays borrowed after refused lease batches; ";

        // reserve_meta: *out and *data are NULL after every failure, and
        // nothing is reserved (the key can be reserved right after).
        const std::string k1 = key_of(1);
        daxkv_reservation *r = reinterpret_cast<daxkv_reservation *>(0x1);
        void *data = reinterpret_cast<void *>(0x1);
        auto reset = [&] {
            r = reinterpret_cast<daxkv_reservation *>(0x1);
            data = reinterpret_cast<void *>(0x1);
        };
        auto cleared = [&](const char *what) {
            if (r != nullptr || data != nullptr)
                out += std::string(what) + " left *out or *data set; ";
        };
        expect(daxkv_reserve_meta(raw, k1.data(), k1.size(), 10, "m", 1, &data, nullptr), -EINVAL,
               "reserve_meta(out NULL)");
        if (data != nullptr)
            out += "reserve_meta(out NULL) left *data set; ";
        reset();
        expect(daxkv_reserve_meta(raw, k1.data(), k1.size(), 10, nullptr, 5, &data, &r), -EINVAL,
               "reserve_meta(meta NULL, len 5)");
        cleared("reserve_meta(meta NULL)");
        reset();
        std::string fat(100000, 'm');
        expect(daxkv_reserve_meta(raw, k1.data(), k1.size(), 10, fat.data(), fat.size(), &data,
                                  &r),
               -E2BIG, "reserve_meta(meta over meta_bytes)");
        cleared("reserve_meta(big meta)");
        reset();
        expect(daxkv_reserve_meta(raw, k1.data(), k1.size(), kSlot + 1, "m", 1, &data, &r),
               -E2BIG, "reserve_meta(len over slot_bytes)");
        cleared("reserve_meta(big value)");
        reset();
        expect(daxkv_reserve_meta(raw, nullptr, 4, 10, "m", 1, &data, &r), -EINVAL,
               "reserve_meta(NULL key)");
        cleared("reserve_meta(NULL key)");
        reset();
        expect(daxkv_reserve_meta(raw, k0.data(), k0.size(), 10, "m", 1, &data, &r),
               DAXKV_EXISTED, "reserve_meta(present key)");
        cleared("reserve_meta(present key)");
        reset();
        expect(daxkv_reserve_meta(raw, k1.data(), k1.size(), 10, "m", 1, &data, &r), 0,
               "reserve_meta after the failures");
        if (r && r != reinterpret_cast<daxkv_reservation *>(0x1)) {
            daxkv_reservation *r2 = reinterpret_cast<daxkv_reservation *>(0x1);
            void *d2 = reinterpret_cast<void *>(0x1);
            expect(daxkv_reserve_meta(raw, k1.data(), k1.size(), 10, "m", 1, &d2, &r2),
                   DAXKV_EXISTED, "reserve_meta(key in flight)");
            if (r2 || d2)
                out += "reserve_meta(in flight) left *out or *data set; ";
            daxkv_abort(r);
        }
        st = pool_status(raw);
        if (st["devices"][0]["live_slot_count"].get<uint64_t>() != 1)
            out += "slots taken after the failed reservations: " +
                   st["devices"][0]["live_slot_count"].dump() + "; ";

        // Cursors.
        daxkv_cursor *c = reinterpret_cast<daxkv_cursor *>(0x1);
        expect(daxkv_cursor_open(nullptr, nullptr, &c), -EINVAL, "cursor_open(NULL store)");
        c = reinterpret_cast<daxkv_cursor *>(0x1);
        expect(daxkv_cursor_open(raw, "", &c), -EINVAL, "cursor_open(\"\")");
        if (c)
            out += "cursor_open(\"\") left *out set; ";
        c = reinterpret_cast<daxkv_cursor *>(0x1);
        expect(daxkv_cursor_open(raw, "/no/such/device", &c), -ENOENT, "cursor_open(unknown)");
        if (c)
            out += "cursor_open(unknown) left *out set; ";
        expect(daxkv_cursor_open(raw, nullptr, nullptr), -EINVAL, "cursor_open(out NULL)");
        daxkv_key_info ki = key_info();
        expect(daxkv_cursor_next(nullptr, &ki), -EINVAL, "cursor_next(NULL)");
        c = nullptr;
        if (daxkv_cursor_open(raw, nullptr, &c) != 0)
            return out + "cursor_open failed";
        expect(daxkv_cursor_next(c, nullptr), -EINVAL, "cursor_next(out NULL)");
        ki.struct_size = 4;
        expect(daxkv_cursor_next(c, &ki), -EINVAL, "cursor_next(struct_size 4)");
        // The refused calls did not use up the one key: a short struct
        // (an older caller's) gets only its prefix written.
        std::vector<uint8_t> shortbuf(16, 0xEE);
        uint32_t sz = 16;
        std::memcpy(shortbuf.data(), &sz, sizeof sz);
        auto *short_ki = reinterpret_cast<daxkv_key_info *>(shortbuf.data());
        int rc = daxkv_cursor_next(c, short_ki);
        expect(rc, 1, "cursor_next(struct_size 16)");
        expect(next_key(c, ki), 0, "cursor_next at the end");
        expect(daxkv_cursor_next(c, &ki), 0, "cursor_next past the end");
        daxkv_cursor_close(c);
        daxkv_cursor_close(nullptr);
        return out;
    });
}

// ---------------------------------------------------------------------------
// The event fd of a caller that reads it, as eventfd users do

TEST_F(AsyncRaces, AnEventFdReadByTheCallerIsReadableAgainWhileCompletionsWait) {
    expect_clean([&]() -> std::string {
        StorePtr s = open_pool(1, 16);
        daxkv_store *raw = s.get();
        const int fd = daxkv_event_fd(raw);
        if (fd < 0)
            return "event_fd failed";
        Batch b(0, 2, 0, false);
        // Three small batches: each runs inline, its completion waits.
        for (uint64_t t = 1; t <= 3; ++t)
            if (daxkv_submit(raw, DAXKV_OP_CONTAINS, b.items.data(), b.items.size(), 0, t) != 0)
                return "submit failed";
        std::string out;
        if (!fd_readable(fd))
            return "the fd is not readable with three completions waiting";
        // An event loop woken by the fd reads (clears) it, then takes what
        // its buffer holds: one completion at a time here.
        for (int left = 3; left > 0; --left) {
            uint64_t v = 0;
            ssize_t rd = ::read(fd, &v, sizeof v);
            if (rd != sizeof v)
                out += "read of a readable fd failed; ";
            daxkv_completion c;
            if (daxkv_poll(raw, &c, 1) != 1) {
                out += "poll found nothing; ";
                break;
            }
            // Completions still wait: the next turn of the loop must be woken.
            if (left > 1 && !fd_readable(fd))
                out += std::to_string(left - 1) +
                       " completion(s) wait but the fd is not readable (an event loop "
                       "sleeps forever); ";
        }
        if (fd_readable(fd))
            out += "the fd is readable with nothing waiting; ";
        daxkv_completion c;
        if (daxkv_poll(raw, &c, 1) != 0)
            out += "a completion left over; ";
        return out;
    });
}

// ---------------------------------------------------------------------------
// A walk that failed goes on where it failed

TEST_F(AsyncRaces, AWalkStoppedByShutdownKeepsSayingSoAndNeverEndsNormally) {
    expect_clean([&]() -> std::string {
        StorePtr s = open_pool(1, 16);
        daxkv_store *raw = s.get();
        if (!put_keys(raw, 4))
            return "put failed";
        daxkv_cursor *c = nullptr;
        if (daxkv_cursor_open(raw, nullptr, &c) != 0)
            return "cursor_open failed";
        if (daxkv_shutdown(raw) != 0)
            return "shutdown failed";
        std::string out;
        // Every call of a walk the shutdown interrupted fails the same way:
        // one that failed must not count its part of the walk as done, or
        // enough retries would end the walk as if every key had been seen.
        daxkv_key_info ki;
        for (int k = 0; k < 200; ++k) {
            int rc = next_key(c, ki);
            if (rc != -ESHUTDOWN) {
                out += "call " + std::to_string(k + 1) + " after shutdown returned " +
                       std::to_string(rc) + ", expected -ESHUTDOWN";
                break;
            }
        }
        daxkv_cursor_close(c);
        return out;
    });
}
