// Lifetimes and locks: shutdown and close racing every call that blocks,
// hotplug against reservations and leases held by the caller (from the same
// thread, too), a lease batch against a shrink that waits for the batch's own
// leases, leases and pins taken while a removal or shrink without force runs,
// every call that would wait for a lease of its own thread (-EDEADLK), and a
// log callback that calls back into the library on every path that logs.
//
// The scenarios that used to hang or crash run in a child process with an
// alarm, so that a hang fails one test instead of the suite.
//
// Bad inputs tried here: daxkv_close and daxkv_shutdown while another
// thread waits in daxkv_device_wait_drained(-1), in a forced removal or
// shrink waiting for a lease, behind a resize's lease gate, in a lease
// batch that gave its leases back to wait at that gate, and in a lease
// batch stopped (by a fault on its item's page) after it leased; a lease
// batch that starts over after the gate with its first item's key removed
// meanwhile; a removal
// (migrate, evict) and a shrink of a device with an open reservation, from
// the thread that holds it, with and without DAXKV_FORCE; writing into, and
// committing, a reservation whose device was removed; daxkv_device_add,
// _remove and _resize from a thread holding a lease that a forced removal
// or shrink waits for; a forced removal or shrink (migrate, evict) of a
// device the caller leases from, above and below the new end; a lease, by
// the holder of an awaited lease, of an entry committed above the end of a
// forced shrink; daxkv_device_wait_drained(-1) holding a lease of a slot of
// the draining device; a lease taken on a thread that has ended, released
// on another while a third calls the pool; a log callback that
// calls daxkv_device_add, the status calls, contains and wait_drained from
// inside every event the library logs (open, missing device, add, failed
// add, adopt, remove, failed grow, drain completion on the event thread,
// checksum failures on the caller's and on the dispatcher's thread, CUDA
// registration), and one that closes the store from the event thread.
#include <algorithm>
#include <atomic>
#include <chrono>
#include <cstddef>
#include <cstdio>
#include <string>
#include <thread>

#include <signal.h>
#include <sys/mman.h>
#include <sys/syscall.h>
#include <unistd.h>

#include "capi/handles.hpp"
#include "common.hpp"

using namespace adv;

namespace {

// Seconds a scenario may take before its child is killed (a hang).
constexpr unsigned kAlarm = 30;

// Wait (without a deadline that matters) until n calls are in the store.
bool wait_in_flight(daxkv_store *s, int64_t n) {
    for (int i = 0; i < 200000; ++i) {
        if (s->store->core().gate.in_flight() >= n)
            return true;
        std::this_thread::sleep_for(std::chrono::microseconds(50));
    }
    return false;
}

// Until the thread tid of this process has slept (state S in its /proc
// stat) in 20 looks in a row, 100 us apart: a call that entered the store
// may not have reached the wait it is to be woken from yet, and a call
// that is past that point before the test acts does not wait at all.
bool wait_thread_asleep(pid_t tid) {
    const std::string stat = "/proc/self/task/" + std::to_string(tid) + "/stat";
    int asleep = 0;
    for (int i = 0; i < 200000 && asleep < 20; ++i) {
        std::string text;
        if (FILE *f = std::fopen(stat.c_str(), "r")) {
            char buf[512];
            const size_t n = std::fread(buf, 1, sizeof buf - 1, f);
            std::fclose(f);
            text.assign(buf, n);
        }
        // "tid (comm) S ...": the state follows the last ')'.
        const size_t paren = text.rfind(')');
        const bool sleeping = paren != std::string::npos && paren + 2 < text.size() &&
                              text[paren + 2] == 'S';
        asleep = sleeping ? asleep + 1 : 0;
        std::this_thread::sleep_for(std::chrono::microseconds(100));
    }
    return asleep >= 20;
}

// The state of device row d as the pool status says it.
std::string state_of(daxkv_store *s, size_t d) { return pool_status(s)["devices"][d]["state"]; }

// Until device row d leaves `from` (a change of the pool has begun); false
// if it never did.
bool wait_state_leaves(daxkv_store *s, size_t d, const std::string &from) {
    for (int i = 0; i < 200000; ++i) {
        if (state_of(s, d) != from)
            return true;
        std::this_thread::sleep_for(std::chrono::microseconds(50));
    }
    return false;
}

class Lifetimes : public PoolFixture {
protected:
    Lifetimes() : PoolFixture("pool") {}

    // Two devices of 8 slots holding keys 0..n-1 (version 1); null if a put
    // failed.
    StorePtr two_devices_holding(uint32_t n) {
        StorePtr s = open_pool(2, 8);
        for (uint32_t i = 0; i < n; ++i)
            if (put_key(s.get(), i, 1))
                return nullptr;
        return s;
    }

    // two_devices_holding(8), whose keys on dev0 (four) go to on0, and a
    // lease l of the one in dev0's highest slot, above the end of a shrink
    // to fewer than 4 slots: "" when all that is so, else what failed.
    std::string lease_of_dev0s_last_key(StorePtr &s, std::vector<uint32_t> &on0,
                                        daxkv_lease *&l) {
        s = two_devices_holding(8);
        if (!s)
            return "put failed";
        on0 = keys_on(s.get(), 8, 0);
        if (on0.size() != 4)
            return "the keys are not spread over both devices";
        const std::string k = key_of(on0.back());
        if (daxkv_lease_acquire(s.get(), k.data(), k.size(), &l))
            return std::string("lease: ") + daxkv_errmsg();
        return "";
    }

    // A shrink of dev0 to 4 slots without force (by migration), started on
    // the thread `resize` (rc gets its result) and stopped in its hook
    // between its copies and its switch, with dev0's lease gate up: a lease
    // of an entry of dev0 above the new end waits for it from then on (one
    // below the end never waits for a shrink). It goes on once the caller
    // calls let_the_shrink_go() or the store is shut down. False if it never
    // got there; the thread is started either way.
    bool shrink_until_it_gates_leases(daxkv_store *raw, std::thread &resize, int &rc) {
        daxkv::Store &st = *raw->store;
        go_on_ = false;
        stopped_ = false;
        st.hotplug().set_hook([this, &st](int phase) {
            if (phase != 1)
                return;
            stopped_ = true;
            while (!go_on_.load() && !st.core().gate.closed())
                std::this_thread::sleep_for(std::chrono::microseconds(50));
        });
        resize = std::thread([raw, &rc, path = paths_[0], r = result()]() mutable {
            rc = daxkv_device_resize(raw, path.c_str(), 4 * kSlot, DAXKV_MIGRATE, 0, &r);
        });
        for (int i = 0; i < 200000 && !stopped_.load(); ++i)
            std::this_thread::sleep_for(std::chrono::microseconds(50));
        return stopped_.load() && pool_status(raw)["devices"][0]["lease_gate"] == true;
    }
    void let_the_shrink_go() { go_on_ = true; }
    std::atomic<bool> go_on_{false}, stopped_{false};

    // A lease batch waiting at dev0's lease gate, with what it waits on.
    struct GatedLeaseBatch {
        StorePtr store;
        std::thread resize, batch;
        int rc_resize = 1, rc_batch = 1;
        std::vector<std::string> keys; // on dev1, then on dev0 above the new end
        std::vector<daxkv_lease_item> items;
    };
    // A pool of two holding keys 0..9 (room on dev1 for dev0's entries above
    // slot 4); a shrink of dev0 stopped with its lease gate up; then a lease
    // batch of a key on dev1 and one on dev0 above the new end, run on
    // g.batch until it has leased the first item and given it back to wait
    // at the gate for the second. "" or what went wrong.
    std::string start_a_lease_batch_at_the_gate(GatedLeaseBatch &g) {
        constexpr uint32_t kN = 10;
        g.store = two_devices_holding(kN);
        if (!g.store)
            return "put failed";
        daxkv_store *raw = g.store.get();
        std::vector<uint32_t> on0 = keys_on(raw, kN, 0), on1 = keys_on(raw, kN, 1);
        if (on0.size() < 5 || on1.empty())
            return "the keys are not spread over both devices";
        // The entry of dev0 in its highest slot (lowest free slot first).
        const std::string high = key_of(on0.back());
        if (!shrink_until_it_gates_leases(raw, g.resize, g.rc_resize))
            return "the resize never gated leases";
        g.keys = {key_of(on1.front()), high};
        g.items.resize(g.keys.size());
        for (size_t i = 0; i < g.keys.size(); ++i) {
            std::memset(&g.items[i], 0, sizeof g.items[i]);
            g.items[i].key = g.keys[i].data();
            g.items[i].key_len = g.keys[i].size();
            g.items[i].status = 12345;
        }
        const uint64_t hits = get_stats(raw).hits;
        g.batch = std::thread(
            [&g, raw] { g.rc_batch = daxkv_lease_batch(raw, g.items.data(), g.items.size(), 0); });
        auto gave_back = [&] {
            struct daxkv_stats st = get_stats(raw);
            return st.hits > hits && st.leases_active == 0;
        };
        for (int i = 0; i < 200000 && !gave_back(); ++i)
            std::this_thread::sleep_for(std::chrono::microseconds(50));
        return gave_back() ? "" : "the batch never leased its first item";
    }
    // In a child with the alarm: the stage above, then what the test does
    // with the batch waiting at the gate. What went wrong, "" if nothing.
    std::string with_a_lease_batch_at_the_gate(
        const std::function<std::string(GatedLeaseBatch &)> &then) {
        return child_check([&]() -> std::string {
            ::alarm(kAlarm);
            GatedLeaseBatch g;
            std::string staged = start_a_lease_batch_at_the_gate(g);
            return staged.empty() ? then(g) : staged;
        });
    }
};

// ---------------------------------------------------------------------------
// Shutdown and close against calls that block

TEST_F(Lifetimes, CloseWakesAWaitForADrainAndWaitsForIt) {
    std::string msg = child_check([&]() -> std::string {
        ::alarm(kAlarm);
        StorePtr s = two_devices_holding(8);
        if (!s)
            return "put failed";
        daxkv_hotplug_result r = result();
        if (daxkv_device_remove(s.get(), paths_[0].c_str(), DAXKV_DRAIN, 0, &r))
            return std::string("drain: ") + daxkv_errmsg();
        // A lease keeps the store itself alive past the close, so that the
        // waiter's return can be checked; a second round without one is the
        // use-after-free the sanitizers look for.
        for (int round = 0; round < 2; ++round) {
            StorePtr st = round == 0 ? std::move(s) : open_pool(2, 8);
            if (round == 1) {
                for (uint32_t i = 0; i < 8; ++i)
                    put_key(st.get(), i, 1);
                daxkv_device_remove(st.get(), paths_[0].c_str(), DAXKV_DRAIN, 0, &r);
            }
            daxkv_lease *l = nullptr;
            std::string k = key_of(0);
            if (round == 0 && daxkv_lease_acquire(st.get(), k.data(), k.size(), &l))
                return "lease failed";
            int rc = 1;
            daxkv_store *raw = st.get();
            std::thread t([&] { rc = daxkv_device_wait_drained(raw, paths_[0].c_str(), -1); });
            // A call that blocks is a call in flight, which shutdown waits for.
            if (!wait_in_flight(raw, 1))
                return "the wait is not counted as a call in flight";
            daxkv_close(st.release());
            t.join();
            daxkv_lease_release(l);
            if (rc != -ESHUTDOWN)
                return "the wait returned " + std::to_string(rc) + ", expected -ESHUTDOWN";
        }
        return "";
    });
    EXPECT_EQ(msg, "");
}

TEST_F(Lifetimes, ShutdownWakesAForcedRemovalOrShrinkWaitingForALease) {
    for (int shrink = 0; shrink < 2; ++shrink) {
        std::string msg = child_check([&]() -> std::string {
            ::alarm(kAlarm);
            StorePtr s = two_devices_holding(12);
            if (!s)
                return "put failed";
            std::vector<uint32_t> on0 = keys_on(s.get(), 12, 0);
            if (on0.empty())
                return "no key on dev0";
            // Lease the entry in dev0's highest slot: above any shrink's end.
            std::string k = key_of(on0.back());
            daxkv_lease *l = nullptr;
            if (daxkv_lease_acquire(s.get(), k.data(), k.size(), &l))
                return "lease failed";
            daxkv_hotplug_result r = result();
            int rc = 1;
            daxkv_store *raw = s.get();
            std::thread t([&] {
                rc = shrink ? daxkv_device_resize(raw, paths_[0].c_str(), kSlot, DAXKV_MIGRATE,
                                                  DAXKV_FORCE, &r)
                            : daxkv_device_remove(raw, paths_[0].c_str(), DAXKV_MIGRATE,
                                                  DAXKV_FORCE, &r);
            });
            if (!wait_in_flight(raw, 1))
                return "the call never entered the store";
            // Before: shutdown waited for the call, which waited for the
            // lease, held by this thread: a hang (the alarm).
            int src = daxkv_shutdown(raw);
            t.join();
            std::string out;
            if (src != 0)
                out += "shutdown returned " + std::to_string(src) + "; ";
            if (rc != -ESHUTDOWN)
                out += "the call returned " + std::to_string(rc) + ", expected -ESHUTDOWN; ";
            json st = pool_status(raw);
            if (st["devices"][0]["state"] != "active")
                out += "dev0 is " + st["devices"][0]["state"].dump() + " after the call; ";
            if (std::memcmp(daxkv_lease_data(l), val(on0.back()).data(), 64) != 0)
                out += "the leased bytes changed; ";
            daxkv_lease_release(l);
            return out;
        });
        EXPECT_EQ(msg, "") << (shrink ? "shrink" : "removal");
    }
}

TEST_F(Lifetimes, ShutdownWakesAPoolCallWaitingForAnotherOne) {
    // A pool call waiting for a forced removal that waits for a lease: the
    // shutdown wakes both with -ESHUTDOWN. The waiting one used to go on
    // once the removal had returned, and add its device to a store that was
    // shut down.
    std::string msg = child_check([&]() -> std::string {
        ::alarm(kAlarm);
        StorePtr s;
        std::vector<uint32_t> on0;
        daxkv_lease *l = nullptr; // in dev0's highest slot, slot 3
        const std::string setup = lease_of_dev0s_last_key(s, on0, l);
        if (!setup.empty())
            return setup;
        daxkv_store *raw = s.get();
        int rc_forced = 1, rc_add = 1;
        std::thread forced([&, r = result()]() mutable {
            rc_forced = daxkv_device_remove(raw, paths_[0].c_str(), DAXKV_MIGRATE, DAXKV_FORCE,
                                            &r);
        });
        std::string out;
        if (!wait_state_leaves(raw, 0, "active"))
            out += "the forced removal never began; ";
        const std::string added = dir_.file("added-" + std::to_string(::getpid()));
        std::thread add([&] { rc_add = daxkv_device_add(raw, added.c_str(), dev_bytes_for(8)); });
        if (!wait_in_flight(raw, 2))
            out += "the add never entered the store; ";
        const int rc = daxkv_shutdown(raw);
        forced.join();
        add.join();
        if (rc != 0)
            out += "shutdown returned " + std::to_string(rc) + "; ";
        if (rc_forced != -ESHUTDOWN)
            out += "the forced removal returned " + std::to_string(rc_forced) + "; ";
        if (rc_add != -ESHUTDOWN)
            out += "the waiting add returned " + std::to_string(rc_add) + "; ";
        if (pool_status(raw)["devices"].size() != 2)
            out += "the pool changed after the shutdown; ";
        daxkv_lease_release(l);
        return out;
    });
    EXPECT_EQ(msg, "");
}

TEST_F(Lifetimes, ShutdownWakesALeaseWaitingBehindALeaseGate) {
    std::string msg = child_check([&]() -> std::string {
        ::alarm(kAlarm);
        StorePtr s = open_pool(1, 8);
        for (uint32_t i = 0; i < 8; ++i)
            if (put_key(s.get(), i, 1))
                return "put failed";
        // Keys 4..7 in slots 4..7 (lowest free slot first), above a shrink
        // to 4; slots 0..3 freed for them to move to.
        for (uint32_t i = 0; i < 4; ++i) {
            std::string k = key_of(i);
            if (daxkv_remove(s.get(), k.data(), k.size(), 0))
                return "remove failed";
        }
        std::string high = key_of(7);
        daxkv_store *raw = s.get();
        int rc_resize = 1, rc_lease = 1;
        std::thread resize;
        if (!shrink_until_it_gates_leases(raw, resize, rc_resize))
            return "the resize never gated leases";
        daxkv_lease *l2 = nullptr;
        std::atomic<pid_t> lease_tid{0};
        std::thread lease([&] {
            lease_tid = static_cast<pid_t>(::syscall(SYS_gettid));
            rc_lease = daxkv_lease_acquire(raw, high.data(), high.size(), &l2);
        });
        if (!wait_in_flight(raw, 2))
            return "the lease never entered the store";
        // In the store is not yet at the gate: shut down before the lease
        // waits there, the shrink ends, its gate falls, and the lease
        // (admitted before the shutdown) rightly succeeds.
        if (!wait_thread_asleep(lease_tid.load()))
            return "the lease never waited at the gate";
        daxkv_shutdown(raw); // wakes the lease, and the shrink in its hook
        resize.join();
        lease.join();
        daxkv_lease_release(l2);
        std::string out;
        if (rc_resize != -ESHUTDOWN)
            out += "resize returned " + std::to_string(rc_resize) + "; ";
        if (rc_lease != -ESHUTDOWN)
            out += "the gated lease returned " + std::to_string(rc_lease) + "; ";
        return out;
    });
    EXPECT_EQ(msg, "");
}

TEST_F(Lifetimes, ALeaseBatchWokenByShutdownLeavesNoItemLookingLeased) {
    // The first item (dev1) is leased, the second (dev0, above the new end)
    // meets the gate: the batch gives the first lease back and waits, until
    // shutdown wakes it.
    std::string msg = with_a_lease_batch_at_the_gate([](GatedLeaseBatch &g) -> std::string {
        daxkv_shutdown(g.store.get());
        g.resize.join();
        g.batch.join();
        std::string out;
        if (g.rc_batch != -ESHUTDOWN)
            out += "the batch returned " + std::to_string(g.rc_batch) + "; ";
        // Nothing stays leased: no item may say it is (status 0) or point
        // at the bytes of a lease given back.
        for (size_t i = 0; i < g.items.size(); ++i) {
            const daxkv_lease_item &it = g.items[i];
            if (it.status != -ESHUTDOWN)
                out += "item " + std::to_string(i) + " has status " + std::to_string(it.status) +
                       "; ";
            if (it.lease || it.data || it.size || it.meta || it.meta_len)
                out += "item " + std::to_string(i) + " still points at a lease; ";
            daxkv_lease_release(it.lease);
        }
        if (g.rc_resize != -ESHUTDOWN)
            out += "resize returned " + std::to_string(g.rc_resize) + "; ";
        return out;
    });
    EXPECT_EQ(msg, "");
}

// A lease batch that meets a lease gate gives back what it leased, waits,
// and starts over: an item leased in the first pass that fails in the next
// (its key removed meanwhile) keeps nothing of the lease it gave back. It
// used to keep the first lease's data, size and metadata pointers, to
// bytes freed and written again, beside its status -ENOENT.
TEST_F(Lifetimes, ALeaseBatchThatStartsOverKeepsNothingOfALeaseItGaveBack) {
    std::string msg = with_a_lease_batch_at_the_gate([this](GatedLeaseBatch &g) -> std::string {
        // While the batch waits: its first key goes, then the shrink ends.
        std::string out;
        if (daxkv_remove(g.store.get(), g.keys[0].data(), g.keys[0].size(), DAXKV_FORCE) != 0)
            out += "the remove of the first key failed; ";
        let_the_shrink_go();
        g.resize.join();
        g.batch.join();
        if (g.rc_resize != 0)
            out += "resize returned " + std::to_string(g.rc_resize) + "; ";
        if (g.rc_batch != 1)
            out += "the batch returned " + std::to_string(g.rc_batch) + "; ";
        const daxkv_lease_item &gone = g.items[0], &kept = g.items[1];
        if (gone.status != -ENOENT)
            out += "the removed key's item has status " + std::to_string(gone.status) + "; ";
        if (gone.lease || gone.data || gone.size || gone.meta || gone.meta_len || gone.slot ||
            gone.generation || gone.offset || gone.device_id)
            out += "the removed key's item still points at the lease it gave back; ";
        if (kept.status != 0 || !kept.lease || !kept.data)
            out += "the second item was not leased; ";
        daxkv_lease_release(kept.lease);
        return out;
    });
    EXPECT_EQ(msg, "");
}

// A lease batch stopped where it writes an item's output, after the item's
// lease was taken: the item's data field lies on a page that is read-only
// until shutdown has begun (the fault handler waits for that, then opens the
// page and the write goes on).
struct StopAtItemWrite {
    static char *page;
    static const daxkv::CallGate *gate;
    static std::atomic<bool> stopped, shutdown_returned, returned_while_stopped;
    static void on_fault(int, siginfo_t *si, void *) {
        char *at = static_cast<char *>(si->si_addr);
        if (at < page || at >= page + 4096) {
            ::signal(SIGSEGV, SIG_DFL); // not ours: fault again, and die of it
            return;
        }
        stopped = true;
        // Shutdown has closed the gate and either waits for this call or
        // (the bug) has returned without it.
        while (!gate->closed() || (gate->in_flight() == 0 && !shutdown_returned.load()))
            sched_yield();
        returned_while_stopped = shutdown_returned.load();
        ::mprotect(page, 4096, PROT_READ | PROT_WRITE);
    }
};
char *StopAtItemWrite::page = nullptr;
const daxkv::CallGate *StopAtItemWrite::gate = nullptr;
std::atomic<bool> StopAtItemWrite::stopped{false}, StopAtItemWrite::shutdown_returned{false},
    StopAtItemWrite::returned_while_stopped{false};

TEST_F(Lifetimes, ShutdownWaitsForALeaseBatchUntilItReturns) {
    std::string msg = child_check([&]() -> std::string {
        ::alarm(kAlarm);
        StorePtr s = open_pool(1, 8);
        if (put_key(s.get(), 0, 1))
            return "put failed";
        daxkv_store *raw = s.get();
        // The item ends where its data field begins: key, key_len and lease
        // on a writable page, data and the rest on the next one.
        char *two = static_cast<char *>(
            ::mmap(nullptr, 8192, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0));
        if (two == MAP_FAILED)
            return "mmap failed";
        auto *item = reinterpret_cast<daxkv_lease_item *>(two + 4096 -
                                                          offsetof(daxkv_lease_item, data));
        std::string k = key_of(0);
        item->key = k.data();
        item->key_len = k.size();
        StopAtItemWrite::page = two + 4096;
        StopAtItemWrite::gate = &raw->store->core().gate;
        // Fresh flags for every run (--gtest_repeat, and runs without fork).
        StopAtItemWrite::stopped = false;
        StopAtItemWrite::shutdown_returned = false;
        StopAtItemWrite::returned_while_stopped = false;
        struct sigaction sa = {};
        sa.sa_sigaction = &StopAtItemWrite::on_fault;
        sa.sa_flags = SA_SIGINFO;
        ::sigaction(SIGSEGV, &sa, nullptr);
        ::mprotect(two + 4096, 4096, PROT_READ);
        int rc_batch = INT32_MIN;
        std::thread batch([&] { rc_batch = daxkv_lease_batch(raw, item, 1, 0); });
        while (!StopAtItemWrite::stopped.load())
            sched_yield();
        // The batch has its item's lease and is still inside the call.
        std::thread shut([&] {
            daxkv_shutdown(raw);
            StopAtItemWrite::shutdown_returned = true;
        });
        batch.join();
        shut.join();
        ::signal(SIGSEGV, SIG_DFL);
        std::string out;
        if (StopAtItemWrite::returned_while_stopped)
            out += "daxkv_shutdown returned while the lease batch was still inside the call "
                   "(a daxkv_close then frees the handle and the store under it); ";
        if (rc_batch != 1)
            out += "the batch returned " + std::to_string(rc_batch) + "; ";
        if (item->status != 0 || !item->lease ||
            std::memcmp(item->data, val(0).data(), val(0).size()) != 0)
            out += "the item is not leased with its bytes; ";
        daxkv_lease_release(item->lease);
        ::munmap(two, 8192);
        return out;
    });
    EXPECT_EQ(msg, "");
}

TEST_F(Lifetimes, ALeaseBatchNeverWaitsBehindAShrinkWhileHoldingLeases) {
    std::string msg = child_check([&]() -> std::string {
        ::alarm(kAlarm);
        StorePtr s = open_pool(1, 8);
        for (uint32_t i = 0; i < 8; ++i)
            if (put_key(s.get(), i, 1))
                return "put failed";
        // Keys 4..7 in slots 4..7 (lowest free slot first); slots 0..3 freed
        // for them to move to when the device shrinks to 4 slots.
        for (uint32_t i = 0; i < 4; ++i) {
            std::string k = key_of(i);
            if (daxkv_remove(s.get(), k.data(), k.size(), 0))
                return "remove failed";
        }
        daxkv_store *raw = s.get();
        daxkv::Store &st = *raw->store;
        // Key 7 (above the new end) first, then key 4 over and over: enough
        // items for the batch to still be running when the shrink raises its
        // lease gate.
        constexpr size_t kItems = 20000;
        std::vector<std::string> keys(kItems, key_of(4));
        keys[0] = key_of(7);
        std::vector<daxkv_lease_item> items(kItems);
        for (size_t i = 0; i < kItems; ++i) {
            std::memset(&items[i], 0, sizeof items[i]);
            items[i].key = keys[i].data();
            items[i].key_len = keys[i].size();
        }
        int rc_batch = INT32_MIN;
        size_t bad = 0;
        std::thread batch;
        // Between the copies and the switch of the shrink's migration: the
        // batch starts and leases key 7 in its old slot, then goes on while
        // the shrink switches the entries, raises the lease gate (above the
        // new end) and waits for the leases of the old slots (the batch's
        // own). Before, the batch then waited at the gate for its next item
        // while holding them: neither call ever returned. Key 4 is below the
        // end once switched: its leases never wait. The batch's thread checks
        // its items and gives them back, which ends the shrink.
        st.hotplug().set_hook([&](int phase) {
            if (phase != 1)
                return;
            batch = std::thread([&] {
                rc_batch = daxkv_lease_batch(raw, items.data(), items.size(), 0);
                for (size_t i = 0; i < kItems; ++i) {
                    const uint32_t k = i == 0 ? 7 : 4;
                    const std::vector<uint8_t> want = val(k);
                    if (items[i].status != 0 || items[i].size != want.size() ||
                        std::memcmp(items[i].data, want.data(), want.size()) != 0)
                        ++bad;
                    daxkv_lease_release(items[i].lease);
                }
            });
            for (int i = 0; i < 200000 && st.core().slots.leases() == 0; ++i)
                std::this_thread::sleep_for(std::chrono::microseconds(50));
        });
        daxkv_hotplug_result r = result();
        int rc = daxkv_device_resize(raw, paths_[0].c_str(), 4 * kSlot, DAXKV_MIGRATE,
                                     DAXKV_FORCE, &r);
        st.hotplug().set_hook(nullptr);
        if (batch.joinable())
            batch.join();
        std::string out;
        if (rc != 0)
            out += "forced shrink: " + std::to_string(rc) + " " + daxkv_errmsg() + "; ";
        if (rc_batch != static_cast<int>(kItems))
            out += "the batch leased " + std::to_string(rc_batch) + " of " +
                   std::to_string(kItems) + "; ";
        if (bad)
            out += std::to_string(bad) + " items not leased with their bytes; ";
        if (pool_status(raw)["devices"][0]["max_slots"] != 4)
            out += "the shrink did not happen; ";
        out += check_keys(raw, 4, 8, 1);
        return out;
    });
    EXPECT_EQ(msg, "");
}

// A call that enters the store from another thread while a hotplug call is
// stopped in its hook: up to `ms` for it to be done, for a call that returns
// at once; one that waits behind the hotplug call is left waiting.
bool done_within(const std::atomic<bool> &done, int ms) {
    for (int i = 0; i < ms * 20 && !done.load(); ++i)
        std::this_thread::sleep_for(std::chrono::microseconds(50));
    return done.load();
}

TEST_F(Lifetimes, ARemovalOrShrinkWithoutForceNeverWaitsForALeaseTakenDuringIt) {
    for (int shrink = 0; shrink < 2; ++shrink) {
        std::string msg = child_check([&]() -> std::string {
            ::alarm(kAlarm);
            // Room on dev1 for all of dev0's entries (nothing evicted).
            StorePtr s = open_pool(shrink ? 1 : 2, shrink ? 8 : 16);
            const uint32_t n = shrink ? 8 : 12;
            for (uint32_t i = 0; i < n; ++i)
                if (put_key(s.get(), i, 1))
                    return "put failed";
            daxkv_store *raw = s.get();
            daxkv::Store &st = *raw->store;
            uint32_t key = 0;
            if (shrink) {
                // Keys 4..7 in slots 4..7 move down to the slots freed here.
                for (uint32_t i = 0; i < 4; ++i) {
                    std::string k = key_of(i);
                    if (daxkv_remove(raw, k.data(), k.size(), 0))
                        return "remove failed";
                }
                key = 7;
            } else {
                std::vector<uint32_t> on0 = keys_on(raw, n, 0);
                if (on0.empty())
                    return "no key on dev0";
                key = on0.back();
            }
            // Between the copies and the switch, after the call has found no
            // lease: another thread leases an entry that is being moved and
            // holds it until the call has returned. Before, the call then
            // waited for that lease (forever, here) as if forced.
            std::atomic<bool> leased{false}, returned{false};
            int rc_lease = 1;
            daxkv_lease *l = nullptr;
            std::thread leaser;
            st.hotplug().set_hook([&](int phase) {
                if (phase != 1 || leaser.joinable())
                    return;
                leaser = std::thread([&] {
                    std::string k = key_of(key);
                    rc_lease = daxkv_lease_acquire(raw, k.data(), k.size(), &l);
                    leased = true;
                    while (!returned.load())
                        std::this_thread::sleep_for(std::chrono::microseconds(100));
                });
                done_within(leased, 200);
            });
            daxkv_hotplug_result r = result();
            int rc = shrink ? daxkv_device_resize(raw, paths_[0].c_str(), 4 * kSlot,
                                                  DAXKV_MIGRATE, 0, &r)
                            : daxkv_device_remove(raw, paths_[0].c_str(), DAXKV_MIGRATE, 0, &r);
            returned = true;
            st.hotplug().set_hook(nullptr);
            if (leaser.joinable())
                leaser.join();
            std::string out;
            // The lease came after the call's check: it waited for the call
            // and leased the entry where the call moved it.
            if (rc != 0)
                out += "the call returned " + std::to_string(rc) + " " + daxkv_errmsg() + "; ";
            if (rc_lease != 0) {
                out += "the lease returned " + std::to_string(rc_lease) + "; ";
            } else {
                const std::vector<uint8_t> want = val(key);
                daxkv_slot_info si;
                std::memset(&si, 0, sizeof si);
                si.struct_size = sizeof si;
                if (daxkv_lease_size(l) != want.size() ||
                    std::memcmp(daxkv_lease_data(l), want.data(), want.size()) != 0)
                    out += "the lease has the wrong bytes; ";
                else if (daxkv_lease_slot(l, &si) != 0 ||
                         (shrink ? si.slot >= 4 : si.device_id == 0))
                    out += "the lease is not of the entry's new place; ";
            }
            daxkv_lease_release(l);
            const json d = pool_status(raw)["devices"][0];
            if (shrink ? d["max_slots"] != 4 : d["state"] != "removed")
                out += "the call did not happen: " + d.dump() + "; ";
            out += check_keys(raw, shrink ? 4 : 0, n, 1);
            return out;
        });
        EXPECT_EQ(msg, "") << (shrink ? "shrink" : "removal");
    }
}

TEST_F(Lifetimes, ARemovalByEvictionWithoutForceDeletesNothingOrEverything) {
    // How the keys are locked: daxkv_pin, daxkv_lease_acquire, or one
    // daxkv_contains_batch with DAXKV_PIN.
    for (int how = 0; how < 3; ++how) {
        std::string msg = child_check([&]() -> std::string {
            ::alarm(kAlarm);
            constexpr uint32_t n = 12;
            StorePtr s = two_devices_holding(n);
            if (!s)
                return "put failed";
            daxkv_store *raw = s.get();
            daxkv::Store &st = *raw->store;
            std::vector<uint32_t> on0 = keys_on(raw, n, 0);
            if (on0.size() < 2)
                return "fewer than two keys on dev0";
            // After the eviction has found nothing pinned or leased and has
            // deleted its first entry: another thread pins (or leases) every
            // key of the device. Before, the eviction then stopped at the
            // first of them with -EBUSY, the entries before it deleted.
            // rcs: 0 locked, -ENOENT not there.
            std::atomic<bool> done{false};
            std::vector<int> rcs(on0.size(), 1);
            std::vector<daxkv_lease *> leases(on0.size(), nullptr);
            std::thread locker;
            st.hotplug().set_hook([&](int phase) {
                if (phase != 3 || locker.joinable())
                    return;
                locker = std::thread([&] {
                    std::vector<std::string> keys;
                    for (uint32_t k : on0)
                        keys.push_back(key_of(k));
                    if (how == 2) {
                        std::vector<daxkv_item> items(keys.size());
                        for (size_t i = 0; i < keys.size(); ++i) {
                            std::memset(&items[i], 0, sizeof items[i]);
                            items[i].key = keys[i].data();
                            items[i].key_len = keys[i].size();
                        }
                        daxkv_contains_batch(raw, items.data(), items.size(), DAXKV_PIN);
                        for (size_t i = 0; i < keys.size(); ++i)
                            rcs[i] = items[i].status == 1 ? 0 : -ENOENT;
                    }
                    for (size_t i = 0; i < keys.size() && how < 2; ++i)
                        rcs[i] = how ? daxkv_lease_acquire(raw, keys[i].data(), keys[i].size(),
                                                           &leases[i])
                                     : daxkv_pin(raw, keys[i].data(), keys[i].size());
                    done = true;
                });
                done_within(done, 200);
            });
            daxkv_hotplug_result r = result();
            int rc = daxkv_device_remove(raw, paths_[0].c_str(), DAXKV_EVICT, 0, &r);
            st.hotplug().set_hook(nullptr);
            if (locker.joinable())
                locker.join();
            std::string out;
            size_t present = 0;
            for (uint32_t k : on0)
                present += daxkv_contains(raw, key_of(k).data(), key_of(k).size()) == 1;
            if (rc == 0) {
                // The pins (leases) came after the call's check: they waited
                // for it and found the keys gone.
                if (present)
                    out += std::to_string(present) + " keys of dev0 left; ";
                for (size_t i = 0; i < on0.size(); ++i)
                    if (rcs[i] != -ENOENT)
                        out += "key " + std::to_string(on0[i]) + " locked after its eviction (" +
                               std::to_string(rcs[i]) + "); ";
                if (r.deleted_keys != on0.size())
                    out += "deleted_keys " + std::to_string(r.deleted_keys) + "; ";
            } else {
                out += "the removal returned " + std::to_string(rc) + " " + daxkv_errmsg() + "; ";
                if (present != on0.size())
                    out += "and deleted " + std::to_string(on0.size() - present) +
                           " keys of dev0 first; ";
            }
            for (size_t i = 0; i < on0.size(); ++i)
                daxkv_lease_release(leases[i]);
            for (uint32_t i = 0; i < n; ++i) {
                if (std::find(on0.begin(), on0.end(), i) != on0.end())
                    continue;
                std::string b = check_key(raw, i, 1);
                if (!b.empty())
                    out += b + "; ";
            }
            return out;
        });
        EXPECT_EQ(msg, "") << (how == 0 ? "pins" : how == 1 ? "leases" : "contains_batch");
    }
}

TEST_F(Lifetimes, APinningContainsBatchStoppedByShutdownAtAPinGateKeepsNoPin) {
    // A daxkv_contains_batch with DAXKV_PIN pins its hits one by one and
    // waits at the pin gate of a device being emptied by eviction. Shut
    // down while it waited, it returned -ESHUTDOWN with the hits before the
    // gate still pinned: the caller, told the whole call failed, had no pin
    // to drop, and the entries stayed pinned for the store's life. It now
    // drops them, and every item's status is -ESHUTDOWN, as for every batch
    // call that fails whole.
    //
    // Tried: the batch's keys of dev1 first (pinned before the gate), then
    // one of dev0 (gated); shutdown from a third thread once the dev1 keys
    // are pinned, while the eviction is stopped after its first deletion.
    std::string msg = child_check([&]() -> std::string {
        ::alarm(kAlarm);
        constexpr uint32_t n = 12;
        StorePtr s = two_devices_holding(n);
        if (!s)
            return "put failed";
        daxkv_store *raw = s.get();
        daxkv::Store &st = *raw->store;
        const std::vector<uint32_t> on0 = keys_on(raw, n, 0), on1 = keys_on(raw, n, 1);
        if (on0.size() < 2 || on1.empty())
            return "the keys are not on both devices";
        // The eviction deletes on0[0] first and stops in the hook; on0[1] is
        // still there, behind the pin gate.
        std::vector<std::string> keys;
        for (uint32_t k : on1)
            keys.push_back(key_of(k));
        keys.push_back(key_of(on0.back()));
        std::vector<daxkv_item> items(keys.size());
        for (size_t i = 0; i < keys.size(); ++i) {
            std::memset(&items[i], 0, sizeof items[i]);
            items[i].key = keys[i].data();
            items[i].key_len = keys[i].size();
        }
        int batch_rc = 1, shutdown_rc = 1;
        std::atomic<bool> batch_done{false};
        std::thread batch, stopper;
        st.hotplug().set_hook([&](int phase) {
            if (phase != 3 || batch.joinable())
                return;
            batch = std::thread([&] {
                batch_rc = daxkv_contains_batch(raw, items.data(), items.size(), DAXKV_PIN);
                batch_done = true;
            });
            // Every dev1 key pinned: the batch is at (or on its way to)
            // the gate, which stays up until this hook returns.
            for (int i = 0; i < 100000 && get_stats(raw).entries_pinned < on1.size(); ++i)
                std::this_thread::sleep_for(std::chrono::microseconds(50));
            stopper = std::thread([&] { shutdown_rc = daxkv_shutdown(raw); });
            done_within(batch_done, 5000);
        });
        daxkv_hotplug_result r = result();
        const int rc = daxkv_device_remove(raw, paths_[0].c_str(), DAXKV_EVICT, 0, &r);
        st.hotplug().set_hook(nullptr);
        if (batch.joinable())
            batch.join();
        if (stopper.joinable())
            stopper.join();
        std::string out;
        if (rc != 0 && rc != -ESHUTDOWN) // it may stop at the shutdown
            out += "the removal returned " + std::to_string(rc) + "; ";
        if (shutdown_rc != 0)
            out += "shutdown returned " + std::to_string(shutdown_rc) + "; ";
        if (batch_rc != -ESHUTDOWN)
            out += "the batch returned " + std::to_string(batch_rc) + ", not -ESHUTDOWN; ";
        const uint64_t pinned = get_stats(raw).entries_pinned;
        if (pinned)
            out += std::to_string(pinned) + " entries left pinned by the failed batch; ";
        for (size_t i = 0; i < items.size(); ++i)
            if (items[i].status != -ESHUTDOWN)
                out += "item " + std::to_string(i) + " status " +
                       std::to_string(items[i].status) + "; ";
        return out;
    });
    EXPECT_EQ(msg, "");
}

// ---------------------------------------------------------------------------
// Hotplug against reservations held by the caller

TEST_F(Lifetimes, ARemovalNeverWaitsForAReservationOfTheSameThread) {
    for (int mode : {DAXKV_MIGRATE, DAXKV_EVICT}) {
        std::string msg = child_check([&]() -> std::string {
            ::alarm(kAlarm);
            // The reservation goes to dev0 (the only device), then dev1 comes.
            StorePtr s = open_pool(1, 8);
            for (uint32_t i = 0; i < 3; ++i)
                if (put_key(s.get(), i, 1))
                    return "put failed";
            daxkv_reservation *res = nullptr;
            if (daxkv_reserve(s.get(), "r", 1, 100, &res))
                return std::string("reserve: ") + daxkv_errmsg();
            std::memset(daxkv_reservation_data(res), 'a', 100);
            std::string d1 = dir_.file("added-" + std::to_string(::getpid()) + "-" +
                                        std::to_string(pools_++));
            if (daxkv_device_add(s.get(), d1.c_str(), dev_bytes_for(8)))
                return std::string("add: ") + daxkv_errmsg();
            std::string out;
            daxkv_hotplug_result r = result();
            int rc = daxkv_device_remove(s.get(), paths_[0].c_str(), mode, 0, &r);
            if (rc != -EBUSY || !contains_text(daxkv_errmsg(), "reservation"))
                out += "without force: " + std::to_string(rc) + " " + daxkv_errmsg() + "; ";
            if (pool_status(s.get())["devices"][0]["state"] != "active")
                out += "a refused removal changed the device; ";
            if (daxkv_put(s.get(), "r", 1, "x", 1, 0) != DAXKV_EXISTED)
                out += "the reserved key is not in flight; ";
            // Forced, from the thread that holds the reservation: completes.
            rc = daxkv_device_remove(s.get(), paths_[0].c_str(), mode, DAXKV_FORCE, &r);
            if (rc != 0)
                out += std::string("forced: ") + std::to_string(rc) + " " + daxkv_errmsg() + "; ";
            if (r.state != DAXKV_DEV_REMOVED)
                out += "forced removal left state " + std::to_string(r.state) + "; ";
            // The caller may still write where it was given; the commit fails.
            std::memset(daxkv_reservation_data(res), 'b', 100);
            rc = daxkv_commit(res);
            if (rc != -ECANCELED)
                out += "commit returned " + std::to_string(rc) + ", expected -ECANCELED; ";
            if (daxkv_contains(s.get(), "r", 1) != 0)
                out += "the cancelled key is present; ";
            if (daxkv_put(s.get(), "r", 1, "x", 1, 0) != 0)
                out += std::string("the key cannot be written again: ") + daxkv_errmsg() + "; ";
            for (uint32_t i = 0; i < 3; ++i) {
                std::string bad = check_key(s.get(), i, mode == DAXKV_MIGRATE ? 1 : 0);
                if (!bad.empty())
                    out += bad + "; ";
            }
            return out;
        });
        EXPECT_EQ(msg, "") << (mode == DAXKV_MIGRATE ? "migrate" : "evict");
    }
}

TEST_F(Lifetimes, AShrinkNeverWaitsForAReservationAboveTheEnd) {
    std::string msg = child_check([&]() -> std::string {
        ::alarm(kAlarm);
        StorePtr s = open_pool(1, 8);
        for (uint32_t i = 0; i < 7; ++i)
            if (put_key(s.get(), i, 1))
                return "put failed";
        daxkv_reservation *res = nullptr; // slot 7
        if (daxkv_reserve(s.get(), "r", 1, 100, &res))
            return std::string("reserve: ") + daxkv_errmsg();
        std::string out;
        daxkv_hotplug_result r = result();
        int rc = daxkv_device_resize(s.get(), paths_[0].c_str(), 4 * kSlot, DAXKV_EVICT,
                                     DAXKV_FORCE | 0, &r);
        if (rc != 0)
            out += "forced shrink: " + std::to_string(rc) + " " + daxkv_errmsg() + "; ";
        std::memset(daxkv_reservation_data(res), 'b', 100);
        rc = daxkv_commit(res);
        if (rc != -ECANCELED)
            out += "commit returned " + std::to_string(rc) + "; ";
        if (pool_status(s.get())["devices"][0]["max_slots"] != 4)
            out += "the shrink did not happen; ";
        return out;
    });
    EXPECT_EQ(msg, "");
    msg = child_check([&]() -> std::string {
        ::alarm(kAlarm);
        StorePtr s = open_pool(1, 8);
        daxkv_reservation *res = nullptr;
        for (uint32_t i = 0; i < 7; ++i)
            put_key(s.get(), i, 1);
        daxkv_reserve(s.get(), "r", 1, 100, &res);
        daxkv_hotplug_result r = result();
        int rc = daxkv_device_resize(s.get(), paths_[0].c_str(), 4 * kSlot, DAXKV_MIGRATE, 0, &r);
        std::string out;
        if (rc != -EBUSY)
            out = "unforced shrink over a reservation returned " + std::to_string(rc);
        if (daxkv_commit(res) != 0)
            out += std::string("; the reservation could not commit: ") + daxkv_errmsg();
        return out;
    });
    EXPECT_EQ(msg, "");
}

// ---------------------------------------------------------------------------
// A thread that holds a lease a forced removal or shrink waits for

TEST_F(Lifetimes, APoolCallOfALeaseHolderBehindAForcedChangeWaitingForItsLeaseIsEdeadlk) {
    // A forced removal or shrink waits for the leases of the device's
    // entries (above the new end), and the pool calls run one at a time:
    // a thread holding one of those leases that then called
    // daxkv_device_add, _remove or _resize waited for a call that waited
    // for its lease, and neither ever returned (the alarm). Now such a call
    // fails at once with -EDEADLK, naming the lease, and changes nothing;
    // a thread that holds no such lease still waits behind the forced call,
    // and both go on once the lease is released.
    for (int shrink = 0; shrink < 2; ++shrink) {
        std::string msg = child_check([&]() -> std::string {
            ::alarm(kAlarm);
            StorePtr s;
            std::vector<uint32_t> on0;
            daxkv_lease *l = nullptr; // in dev0's highest slot, slot 3
            const std::string setup = lease_of_dev0s_last_key(s, on0, l);
            if (!setup.empty())
                return setup;
            daxkv_store *raw = s.get();
            int rc_forced = 1;
            std::thread forced([&, r = result()]() mutable {
                rc_forced = shrink ? daxkv_device_resize(raw, paths_[0].c_str(), 2 * kSlot,
                                                         DAXKV_MIGRATE, DAXKV_FORCE, &r)
                                   : daxkv_device_remove(raw, paths_[0].c_str(), DAXKV_MIGRATE,
                                                         DAXKV_FORCE, &r);
            });
            std::string out;
            if (!wait_state_leaves(raw, 0, "active"))
                out += "the forced call never began; ";
            const std::string added = dir_.file("added-" + std::to_string(::getpid()) + "-" +
                                                std::to_string(shrink));
            daxkv_hotplug_result r = result();
            const int calls[3] = {
                daxkv_device_add(raw, added.c_str(), dev_bytes_for(8)),
                daxkv_device_remove(raw, paths_[1].c_str(), DAXKV_MIGRATE, 0, &r),
                daxkv_device_resize(raw, paths_[1].c_str(), 4 * kSlot, DAXKV_MIGRATE, 0, &r),
            };
            const std::string last_msg = daxkv_errmsg();
            for (int i = 0; i < 3; ++i)
                if (calls[i] != -EDEADLK)
                    out += "pool call " + std::to_string(i) + " returned " +
                           std::to_string(calls[i]) + "; ";
            if (!contains_text(last_msg.c_str(), "lease"))
                out += "the message does not name the lease: " + last_msg + "; ";
            json st = pool_status(raw);
            if (st["devices"].size() != 2 || st["devices"][1]["state"] != "active" ||
                st["devices"][1]["max_slots"] != 8)
                out += "a refused pool call changed the pool: " + st["devices"].dump() + "; ";
            if (std::memcmp(daxkv_lease_data(l), val(on0.back()).data(), 64) != 0)
                out += "the leased bytes changed; ";
            // A thread that holds no lease waits behind the forced call.
            int rc_other = 1;
            std::thread other([&] {
                rc_other = daxkv_device_add(raw, added.c_str(), dev_bytes_for(8));
            });
            if (!wait_in_flight(raw, 2))
                out += "the other pool call never entered the store; ";
            daxkv_lease_release(l);
            forced.join();
            other.join();
            if (rc_forced != 0)
                out += "the forced call returned " + std::to_string(rc_forced) + "; ";
            if (rc_other != 0)
                out += "the pool call of a thread without leases returned " +
                       std::to_string(rc_other) + "; ";
            out += check_keys(raw, 0, 8, 1);
            return out;
        });
        EXPECT_EQ(msg, "") << (shrink ? "shrink" : "removal");
    }
}

TEST_F(Lifetimes, AForcedChangeOfADeviceWhoseLeaseTheCallerHoldsIsEdeadlk) {
    // A thread that holds a lease of an entry of a device, then removes the
    // device (or shrinks it below the entry) with DAXKV_FORCE, waited for
    // its own lease for good. Now -EDEADLK before anything changes; a lease
    // below a shrink's end is never waited for, so that shrink goes on.
    std::string msg = child_check([&]() -> std::string {
        ::alarm(kAlarm);
        StorePtr s;
        std::vector<uint32_t> on0;
        daxkv_lease *l = nullptr; // in dev0's highest slot, slot 3
        const std::string setup = lease_of_dev0s_last_key(s, on0, l);
        if (!setup.empty())
            return setup;
        daxkv_store *raw = s.get();
        std::string out;
        daxkv_hotplug_result r = result();
        struct Try {
            const char *what;
            int rc;
            std::string msg;
        };
        std::vector<Try> tries;
        for (int mode : {DAXKV_MIGRATE, DAXKV_EVICT}) {
            int rc = daxkv_device_remove(raw, paths_[0].c_str(), mode, DAXKV_FORCE, &r);
            tries.push_back({"remove", rc, daxkv_errmsg()});
            rc = daxkv_device_resize(raw, paths_[0].c_str(), 2 * kSlot, mode, DAXKV_FORCE, &r);
            tries.push_back({"shrink", rc, daxkv_errmsg()});
        }
        for (auto &t : tries) {
            if (t.rc != -EDEADLK)
                out += std::string(t.what) + " returned " + std::to_string(t.rc) + "; ";
            else if (!contains_text(t.msg.c_str(), "lease"))
                out += std::string(t.what) + ": the message does not name the lease: " + t.msg +
                       "; ";
        }
        json st = pool_status(raw);
        if (st["devices"][0]["state"] != "active" || st["devices"][0]["max_slots"] != 8 ||
            st["devices"][0]["entry_count"] != 4)
            out += "a refused call changed dev0: " + st["devices"][0].dump() + "; ";
        // The lease is in slot 3: a shrink to 4 slots never waits for it.
        int rc = daxkv_device_resize(raw, paths_[0].c_str(), 4 * kSlot, DAXKV_MIGRATE,
                                     DAXKV_FORCE, &r);
        if (rc != 0)
            out += "a forced shrink above the lease returned " + std::to_string(rc) + " " +
                   daxkv_errmsg() + "; ";
        if (std::memcmp(daxkv_lease_data(l), val(on0.back()).data(), 64) != 0)
            out += "the leased bytes changed; ";
        daxkv_lease_release(l);
        rc = daxkv_device_remove(raw, paths_[0].c_str(), DAXKV_MIGRATE, DAXKV_FORCE, &r);
        if (rc != 0)
            out += "the forced removal after the release returned " + std::to_string(rc) + " " +
                   daxkv_errmsg() + "; ";
        out += check_keys(raw, 0, 8, 1);
        return out;
    });
    EXPECT_EQ(msg, "");
}

TEST_F(Lifetimes, ALeaseAtTheGateOfAForcedShrinkWaitingForTheCallersLeaseIsEdeadlk) {
    // While a forced shrink waits for the leases above its new end, new
    // leases there wait at its lease gate until it ends. A thread holding
    // one of the old leases that leased an entry committed above the end
    // meanwhile (a reservation that took its slot before the shrink)
    // waited for the shrink, which waited for that thread: both hung. Now
    // the new lease fails with -EDEADLK; the shrink moves the entry and
    // ends once the old lease is released.
    std::string msg = child_check([&]() -> std::string {
        ::alarm(kAlarm);
        StorePtr s = open_pool(1, 8);
        daxkv_store *raw = s.get();
        daxkv::Store &st = *raw->store;
        for (uint32_t i = 0; i < 7; ++i) // slots 0..6
            if (put_key(raw, i, 1))
                return "put failed";
        daxkv_reservation *res = nullptr; // slot 7
        if (daxkv_reserve(raw, "r", 1, 100, &res))
            return std::string("reserve: ") + daxkv_errmsg();
        std::memset(daxkv_reservation_data(res), 'r', 100);
        for (uint32_t i = 0; i < 4; ++i) { // room below the new end
            std::string k = key_of(i);
            if (daxkv_remove(raw, k.data(), k.size(), 0))
                return "remove failed";
        }
        const std::string k6 = key_of(6);
        daxkv_lease *l = nullptr; // slot 6
        if (daxkv_lease_acquire(raw, k6.data(), k6.size(), &l))
            return std::string("lease: ") + daxkv_errmsg();
        // The shrink's migration of the committed reservation stops between
        // its copy and its switch (the entry still above the end, the gate
        // up) until this thread has tried to lease it.
        std::atomic<bool> committed{false}, at_switch{false}, tried{false};
        st.hotplug().set_hook([&](int phase) {
            if (phase != 1 || !committed.load())
                return;
            at_switch = true;
            while (!tried.load())
                std::this_thread::sleep_for(std::chrono::microseconds(50));
        });
        int rc_shrink = 1;
        std::thread shrink([&, r = result()]() mutable {
            rc_shrink = daxkv_device_resize(raw, paths_[0].c_str(), 4 * kSlot, DAXKV_MIGRATE,
                                            DAXKV_FORCE, &r);
        });
        std::string out;
        for (int i = 0; i < 200000 && pool_status(raw)["devices"][0]["lease_gate"] != true; ++i)
            std::this_thread::sleep_for(std::chrono::microseconds(50));
        if (pool_status(raw)["devices"][0]["lease_gate"] != true)
            out += "the shrink never gated leases; ";
        // Not cancelled: the shrink waits for the lease as well.
        committed = true;
        int rc = daxkv_commit(res);
        if (rc != 0)
            out += "commit returned " + std::to_string(rc) + " " + daxkv_errmsg() + "; ";
        for (int i = 0; i < 200000 && !at_switch.load(); ++i)
            std::this_thread::sleep_for(std::chrono::microseconds(50));
        if (!at_switch.load())
            out += "the shrink never moved the committed entry; ";
        daxkv_lease *l2 = nullptr;
        rc = daxkv_lease_acquire(raw, "r", 1, &l2);
        const std::string lease_msg = daxkv_errmsg();
        // A batch waits there as well (the first item, or after it gave
        // back its own leases of earlier items, key 4 below the end).
        const std::string k4 = key_of(4);
        daxkv_lease_item items[3];
        std::memset(items, 0, sizeof items);
        items[0].key = items[2].key = "r";
        items[0].key_len = items[2].key_len = 1;
        items[1].key = k4.data();
        items[1].key_len = k4.size();
        const int rc_first = daxkv_lease_batch(raw, items, 1, 0);
        const int rc_later = daxkv_lease_batch(raw, items + 1, 2, 0);
        tried = true;
        if (rc != -EDEADLK)
            out += "the lease at the gate returned " + std::to_string(rc) + "; ";
        else if (!contains_text(lease_msg.c_str(), "lease"))
            out += "the message does not name the lease: " + lease_msg + "; ";
        if (rc_first != -EDEADLK || rc_later != -EDEADLK)
            out += "the batches at the gate returned " + std::to_string(rc_first) + " and " +
                   std::to_string(rc_later) + "; ";
        for (const auto &it : items)
            if (it.status != -EDEADLK || it.lease || it.data)
                out += "an item of a refused batch has status " + std::to_string(it.status) +
                       (it.lease ? " and a lease" : "") + "; ";
        daxkv_lease_release(l2);
        daxkv_lease_release(l);
        shrink.join();
        st.hotplug().set_hook(nullptr);
        if (rc_shrink != 0)
            out += "the forced shrink returned " + std::to_string(rc_shrink) + "; ";
        if (pool_status(raw)["devices"][0]["max_slots"] != 4)
            out += "the shrink did not happen; ";
        std::vector<uint8_t> buf(kSlot);
        size_t len = 0;
        if (daxkv_get(raw, "r", 1, buf.data(), buf.size(), &len) != 0 || len != 100 ||
            buf[0] != 'r' || buf[99] != 'r')
            out += "the reserved key does not read back; ";
        out += check_keys(raw, 4, 7, 1);
        return out;
    });
    EXPECT_EQ(msg, "");
}

TEST_F(Lifetimes, AWaitForADrainOfADeviceWhoseSlotTheCallerLeasesIsEdeadlk) {
    // A leased slot stays taken until its lease is released, even once its
    // entry is removed, and a draining device is drained only once every
    // slot is free (and cannot be removed without waiting for the lease
    // either): daxkv_device_wait_drained with no time limit, from the
    // thread holding the lease, never returned. Now -EDEADLK; once the
    // lease is released the drain completes.
    std::string msg = child_check([&]() -> std::string {
        ::alarm(kAlarm);
        StorePtr s = two_devices_holding(8);
        if (!s)
            return "put failed";
        daxkv_store *raw = s.get();
        std::vector<uint32_t> on0 = keys_on(raw, 8, 0);
        if (on0.empty())
            return "no key on dev0";
        const std::string k = key_of(on0.front());
        daxkv_lease *l = nullptr;
        if (daxkv_lease_acquire(raw, k.data(), k.size(), &l))
            return std::string("lease: ") + daxkv_errmsg();
        daxkv_hotplug_result r = result();
        if (daxkv_device_remove(raw, paths_[0].c_str(), DAXKV_DRAIN, 0, &r))
            return std::string("drain: ") + daxkv_errmsg();
        for (uint32_t i : on0) { // every entry of dev0 goes, the leased one too
            std::string key = key_of(i);
            if (daxkv_remove(raw, key.data(), key.size(), 0))
                return "remove failed";
        }
        std::string out;
        int rc = daxkv_device_wait_drained(raw, paths_[0].c_str(), -1);
        if (rc != -EDEADLK)
            out += "the wait returned " + std::to_string(rc) + "; ";
        else if (!contains_text(daxkv_errmsg(), "lease"))
            out += std::string("the message does not name the lease: ") + daxkv_errmsg() + "; ";
        daxkv_lease_release(l);
        rc = daxkv_device_wait_drained(raw, paths_[0].c_str(), -1);
        if (rc != 0)
            out += "the wait after the release returned " + std::to_string(rc) + " " +
                   daxkv_errmsg() + "; ";
        return out;
    });
    EXPECT_EQ(msg, "");
}

TEST_F(Lifetimes, AWaitForADrainOfADeviceWhereTheCallerHoldsAReservationIsEdeadlk) {
    // An open reservation keeps its slot taken until it is committed or
    // aborted (its commit would put an entry on the device), so the device
    // it was made on does not drain meanwhile: a wait without time limit
    // for the drain, from the thread holding it, never returned. Now
    // -EDEADLK. A thread that does not hold it waits, even when it was
    // handed over to another thread (which commits it here); once its entry
    // is removed the drain completes.
    std::string msg = child_check([&]() -> std::string {
        ::alarm(kAlarm);
        StorePtr s = open_pool(1, 8);
        daxkv_store *raw = s.get();
        daxkv_reservation *res = nullptr; // on dev0, the only device
        if (daxkv_reserve(raw, "r", 1, 100, &res))
            return std::string("reserve: ") + daxkv_errmsg();
        std::memset(daxkv_reservation_data(res), 'r', 100);
        const std::string d1 = dir_.file("added-" + std::to_string(::getpid()));
        if (daxkv_device_add(raw, d1.c_str(), dev_bytes_for(8)))
            return std::string("add: ") + daxkv_errmsg();
        daxkv_hotplug_result r = result();
        if (daxkv_device_remove(raw, paths_[0].c_str(), DAXKV_DRAIN, 0, &r))
            return std::string("drain: ") + daxkv_errmsg();
        std::string out;
        int rc = daxkv_device_wait_drained(raw, paths_[0].c_str(), -1);
        if (rc != -EDEADLK)
            out += "the wait returned " + std::to_string(rc) + "; ";
        else if (!contains_text(daxkv_errmsg(), "reservation"))
            out += std::string("the message does not name the reservation: ") +
                   daxkv_errmsg() + "; ";
        // Handed to another thread, which commits it: this one holds none.
        int rc_wait = 1;
        std::thread waiter;
        std::thread([&] {
            waiter = std::thread(
                [&] { rc_wait = daxkv_device_wait_drained(raw, paths_[0].c_str(), -1); });
            if (!wait_in_flight(raw, 1))
                out += "the wait never entered the store; ";
            if (daxkv_commit(res) != 0)
                out += std::string("commit: ") + daxkv_errmsg() + "; ";
            if (daxkv_remove(raw, "r", 1, 0) != 0)
                out += std::string("remove: ") + daxkv_errmsg() + "; ";
        }).join();
        waiter.join();
        if (rc_wait != 0)
            out += "the wait of a thread holding nothing returned " + std::to_string(rc_wait) +
                   "; ";
        return out;
    });
    EXPECT_EQ(msg, "");
}

TEST_F(Lifetimes, ALeaseBelongsToTheThreadThatTookItUntilItIsReleasedAnywhere) {
    // Leases may be released on another thread than the one that took them.
    // One taken by a thread that has ended, released by a third thread,
    // ends a forced removal's wait; a thread that never took it waits behind
    // the removal rather than failing (-EDEADLK is for the taker), and a
    // thread whose lease another thread released holds it no more.
    std::string msg = child_check([&]() -> std::string {
        ::alarm(kAlarm);
        StorePtr s = two_devices_holding(8);
        if (!s)
            return "put failed";
        daxkv_store *raw = s.get();
        std::vector<uint32_t> on0 = keys_on(raw, 8, 0), on1 = keys_on(raw, 8, 1);
        if (on0.size() != 4 || on1.size() != 4)
            return "the keys are not spread over both devices";
        daxkv_lease *l = nullptr;
        std::thread taker([&] {
            const std::string k = key_of(on0.back());
            daxkv_lease_acquire(raw, k.data(), k.size(), &l);
        });
        taker.join();
        if (!l)
            return "lease failed";
        int rc_forced = 1;
        std::thread forced([&, r = result()]() mutable {
            rc_forced = daxkv_device_remove(raw, paths_[0].c_str(), DAXKV_MIGRATE, DAXKV_FORCE,
                                            &r);
        });
        std::string out;
        if (!wait_state_leaves(raw, 0, "active"))
            out += "the forced removal never began; ";
        // This thread calls the pool while another releases the lease.
        std::thread releaser([&] {
            if (wait_in_flight(raw, 2))
                daxkv_lease_release(l);
            else
                out += "the pool call never entered the store; ";
        });
        const std::string added = dir_.file("added-" + std::to_string(::getpid()));
        int rc = daxkv_device_add(raw, added.c_str(), dev_bytes_for(8));
        if (rc != 0)
            out += "a pool call of a thread without leases returned " + std::to_string(rc) +
                   " " + daxkv_errmsg() + "; ";
        releaser.join();
        forced.join();
        if (rc_forced != 0)
            out += "the forced removal returned " + std::to_string(rc_forced) + "; ";
        // A lease of this thread, released by another: no longer this thread's.
        const std::string k1 = key_of(on1.back());
        daxkv_lease *l1 = nullptr;
        if (daxkv_lease_acquire(raw, k1.data(), k1.size(), &l1))
            return out + "lease of dev1 failed";
        std::thread([&] { daxkv_lease_release(l1); }).join();
        daxkv_hotplug_result r = result();
        rc = daxkv_device_remove(raw, paths_[1].c_str(), DAXKV_MIGRATE, DAXKV_FORCE, &r);
        if (rc != 0)
            out += "a forced removal after another thread released the caller's lease "
                   "returned " + std::to_string(rc) + " " + daxkv_errmsg() + "; ";
        out += check_keys(raw, 0, 8, 1);
        return out;
    });
    EXPECT_EQ(msg, "");
}

// ---------------------------------------------------------------------------
// A log callback that calls back into the library, on every path that logs

// What the callback calls back with. path and bytes are set before store
// (release), and the callback reads store first (acquire).
struct Reentry {
    std::atomic<daxkv_store *> store{nullptr};
    std::string path;
    uint64_t bytes = 0;
    std::atomic<int> events{0};
    std::atomic<int> bad{0};
    std::mutex m;
    std::vector<std::string> msgs;
    std::atomic<bool> close_on_drain{false};
    void arm(daxkv_store *s, const std::string &p, uint64_t b) {
        path = p;
        bytes = b;
        store.store(s, std::memory_order_release);
    }
};
Reentry *g_re = nullptr;

void reentrant_log(int, const char *msg, void *) {
    Reentry &re = *g_re;
    {
        std::lock_guard<std::mutex> g(re.m);
        re.msgs.push_back(msg);
    }
    re.events++;
    daxkv_store *s = re.store.load(std::memory_order_acquire);
    if (!s)
        return;
    if (re.close_on_drain && std::strstr(msg, "is drained")) {
        re.store = nullptr;
        daxkv_close(s);
        return;
    }
    // Each of these takes a lock some logging site holds (hotplug, shards,
    // the pool's mapping lock).
    size_t need = 0;
    if (daxkv_pool_status_json(s, nullptr, 0, &need) != -ENOBUFS)
        re.bad++;
    if (daxkv_status_json(s, nullptr, 0, &need) != -ENOBUFS)
        re.bad++;
    daxkv_contains(s, "reentry", 7);
    if (!re.path.empty()) {
        int rc = daxkv_device_add(s, re.path.c_str(), re.bytes);
        if (rc != 0 && rc != -ESHUTDOWN)
            re.bad++;
        daxkv_device_wait_drained(s, re.path.c_str(), 0);
    }
}

class Reentrant : public Lifetimes {
protected:
    // Runs body in a child with the re-entrant callback installed; "" or
    // what went wrong (a deadlock is the alarm).
    std::string run(const std::function<std::string(Reentry &)> &body) {
        return child_check([&]() -> std::string {
            ::alarm(kAlarm);
            Reentry re;
            g_re = &re;
            daxkv_set_log_fn(reentrant_log, DAXKV_LOG_DEBUG, nullptr);
            std::string out = body(re);
            daxkv_set_log_fn(nullptr, 0, nullptr);
            if (re.bad)
                out += std::to_string(re.bad.load()) + " re-entrant calls failed; ";
            return out;
        });
    }
    static bool saw(Reentry &re, const char *needle) {
        std::lock_guard<std::mutex> g(re.m);
        for (auto &m : re.msgs)
            if (m.find(needle) != std::string::npos)
                return true;
        return false;
    }
};

TEST_F(Reentrant, OpenAddAdoptRemoveAndFailedAdd) {
    std::string msg = run([&](Reentry &re) -> std::string {
        std::string out;
        // A device with entries, to be adopted later.
        std::string old = dir_.file("old");
        {
            ConfigPtr cfg = config({}, {{old, dev_bytes_for(8)}});
            daxkv_store *s = nullptr;
            if (daxkv_open(&s, cfg.get()))
                return "open old";
            put_key(s, 1, 1);
            daxkv_close(s);
        }
        StorePtr s = open_pool(1, 8);
        if (!s)
            return "open";
        if (!saw(re, "opened store"))
            out += "no open event; ";
        re.arm(s.get(), paths_[0], dev_bytes_for(8));
        if (daxkv_device_add(s.get(), old.c_str(), dev_bytes_for(8)))
            out += std::string("add: ") + daxkv_errmsg() + "; ";
        if (!saw(re, "added") || !saw(re, "entries recovered"))
            out += "no add or adopt event; ";
        std::string foreign = dir_.file("foreign");
        write_file(foreign, std::string(dev_bytes_for(8), 'Z'));
        if (daxkv_device_add(s.get(), foreign.c_str(), dev_bytes_for(8)) != DAXKV_E_FOREIGN)
            out += "foreign add did not fail; ";
        // The caller's message is its own call's, not the callback's calls'.
        if (!contains_text(daxkv_errmsg(), "failed to map the device"))
            out += std::string("errmsg after the callback: ") + daxkv_errmsg() + "; ";
        daxkv_hotplug_result r = result();
        if (daxkv_device_remove(s.get(), old.c_str(), DAXKV_MIGRATE, 0, &r))
            out += std::string("remove: ") + daxkv_errmsg() + "; ";
        if (!saw(re, "removed"))
            out += "no remove event; ";
        re.store = nullptr;
        return out;
    });
    EXPECT_EQ(msg, "");
}

TEST_F(Reentrant, MissingDeviceAtOpen) {
    std::string msg = run([&](Reentry &re) -> std::string {
        ConfigPtr cfg = config({{"hotplug", "1"}, {"create", "0"}},
                               {{dir_.file("absent"), dev_bytes_for(8)}});
        daxkv_store *s = nullptr;
        int rc = daxkv_open(&s, cfg.get());
        daxkv_close(s);
        if (rc)
            return "open: " + std::to_string(rc);
        return saw(re, "is missing") ? "" : "no missing event";
    });
    EXPECT_EQ(msg, "");
}

TEST_F(Reentrant, DrainCompletionOnTheEventThreadAndCloseFromThere) {
    for (bool close_from_callback : {false, true}) {
        std::string msg = run([&](Reentry &re) -> std::string {
            StorePtr s = open_pool(2, 8);
            if (!s)
                return "open";
            put_key(s.get(), 0, 1);
            put_key(s.get(), 1, 1);
            re.close_on_drain = close_from_callback;
            re.arm(s.get(), paths_[1], dev_bytes_for(8));
            daxkv_hotplug_result r = result();
            std::string out;
            if (daxkv_device_remove(s.get(), paths_[0].c_str(), DAXKV_DRAIN, 0, &r))
                return std::string("drain: ") + daxkv_errmsg();
            // Both keys go in one call: the drain completes inside it, and
            // a callback that closes the store may do so as soon as that
            // call returns (no call may follow daxkv_close, and which of
            // two removals empties the device depends on placement).
            std::string k0 = key_of(0), k1 = key_of(1);
            daxkv_item items[2] = {};
            items[0].key = k0.data();
            items[0].key_len = k0.size();
            items[1].key = k1.data();
            items[1].key_len = k1.size();
            daxkv_remove_batch(s.get(), items, 2, 0);
            if (close_from_callback) {
                // The callback closes the store from the event thread.
                daxkv_store *raw = s.release();
                (void)raw;
            } else if (daxkv_device_wait_drained(s.get(), paths_[0].c_str(), -1)) {
                out += std::string("wait: ") + daxkv_errmsg() + "; ";
            }
            for (int i = 0; i < 200000 && !saw(re, "is drained"); ++i)
                std::this_thread::sleep_for(std::chrono::microseconds(50));
            if (!saw(re, "is drained"))
                out += "no drain event; ";
            if (!close_from_callback)
                re.store = nullptr;
            for (int i = 0; i < 200000 && re.store; ++i)
                std::this_thread::sleep_for(std::chrono::microseconds(50));
            return out;
        });
        EXPECT_EQ(msg, "") << (close_from_callback ? "close from the callback" : "");
    }
}

TEST_F(Reentrant, ChecksumFailuresOnTheCallersAndTheDispatchersThread) {
    std::string msg = run([&](Reentry &re) -> std::string {
        StorePtr s = open_pool(1, 8, {{"verify", "read"}});
        if (!s)
            return "open";
        for (uint32_t i = 0; i < 2; ++i)
            put_key(s.get(), i, 1);
        re.arm(s.get(), paths_[0], dev_bytes_for(8));
        // Damage both payloads (slots 0 and 1) through a second mapping.
        daxkv::arena::Layout lay = daxkv::arena::compute_layout(dev_bytes_for(8), kSlot, 256);
        {
            FileMap m(paths_[0]);
            if (!m.ok())
                return "map";
            m.base()[lay.data_offset + 100] ^= 0x5a;
            m.base()[lay.data_offset + kSlot + 100] ^= 0x5a;
        }
        std::string out;
        std::vector<uint8_t> buf(kSlot);
        size_t len = 0;
        std::string k0 = key_of(0), k1 = key_of(1);
        if (daxkv_get(s.get(), k0.data(), k0.size(), buf.data(), buf.size(), &len) != -EIO)
            out += "get of a damaged entry did not fail; ";
        daxkv_item it{k1.data(), k1.size(), buf.data(), buf.size(), nullptr, 0, 0};
        // Queued behind a large batch, so that it runs on the dispatcher.
        std::vector<std::vector<uint8_t>> big(64, std::vector<uint8_t>(kSlot));
        std::vector<daxkv_item> gets(64);
        for (size_t i = 0; i < gets.size(); ++i)
            gets[i] = daxkv_item{k0.data(), k0.size(), big[i].data(), kSlot, nullptr, 0, 0};
        daxkv_submit(s.get(), DAXKV_OP_GET, gets.data(), gets.size(), 0, 1);
        daxkv_submit(s.get(), DAXKV_OP_GET, &it, 1, 0, 2);
        daxkv_completion c[2];
        int got = 0;
        for (int i = 0; i < 200000 && got < 2; ++i) {
            int n = daxkv_poll(s.get(), c + got, 2 - got);
            got += n > 0 ? n : 0;
            if (got < 2)
                std::this_thread::sleep_for(std::chrono::microseconds(50));
        }
        if (got != 2 || it.status != -EIO)
            out += "the submitted get of a damaged entry did not fail; ";
        auto checksum_events = [&] {
            std::lock_guard<std::mutex> g(re.m);
            return std::count_if(re.msgs.begin(), re.msgs.end(), [](const std::string &m) {
                return m.find("failed its checksum") != std::string::npos;
            });
        };
        for (int i = 0; i < 200000 && checksum_events() < 2; ++i)
            std::this_thread::sleep_for(std::chrono::microseconds(50));
        if (checksum_events() != 2)
            out += std::to_string(checksum_events()) + " checksum events, expected 2; ";
        re.store = nullptr;
        return out;
    });
    EXPECT_EQ(msg, "");
}

TEST_F(Reentrant, FailedGrowOnAFullFileSystem) {
    if (!can_mount_tmpfs())
        GTEST_SKIP() << "cannot mount a private tmpfs here";
    std::string msg = run([&](Reentry &re) -> std::string {
        std::string m = private_tmpfs(dir_.path(), 1 << 20);
        if (!m.empty())
            return m;
        // 64 KiB slots: 256 KiB opened, laid out to grow to 4 MiB, on 1 MiB.
        std::string dev = dir_.file("grow");
        ConfigPtr cfg = config({{"slot_bytes", "65536"}, {"grow_limit", "4MiB"}, {"hotplug", "1"}},
                               {{dev, 256 << 10}});
        daxkv_store *raw = nullptr;
        if (daxkv_open(&raw, cfg.get()))
            return std::string("open: ") + daxkv_errmsg();
        StorePtr s(raw);
        re.arm(s.get(), dev, 256 << 10);
        daxkv_hotplug_result r = result();
        int rc = daxkv_device_resize(s.get(), dev.c_str(), 4 << 20, DAXKV_MIGRATE, 0, &r);
        std::string out;
        if (rc != -ENOSPC)
            out += "grow past the file system returned " + std::to_string(rc) + "; ";
        if (!saw(re, "growing to"))
            out += "no grow failure event; ";
        re.store = nullptr;
        return out;
    });
    EXPECT_EQ(msg, "");
}

TEST_F(Reentrant, CudaRegistrationAroundADeviceChange) {
    std::string msg = run([&](Reentry &re) -> std::string {
        setenv("DAXKV_TEST_CUDART", FAKECUDART_PATH, 1);
        StorePtr s = open_pool(1, 8);
        if (!s)
            return "open";
        re.arm(s.get(), paths_[0], dev_bytes_for(8));
        if (daxkv_cuda_register(s.get(), 0))
            return std::string("register: ") + daxkv_errmsg();
        std::string extra = dir_.file("extra");
        if (daxkv_device_add(s.get(), extra.c_str(), dev_bytes_for(8)))
            return std::string("add: ") + daxkv_errmsg();
        daxkv_hotplug_result r = result();
        if (daxkv_device_remove(s.get(), extra.c_str(), DAXKV_MIGRATE, 0, &r))
            return std::string("remove: ") + daxkv_errmsg();
        re.store = nullptr;
        return saw(re, "registered") ? "" : "no registration event";
    });
    EXPECT_EQ(msg, "");
}

} // namespace
