// Kill test across the histories of a pool. A child process opens a pool of
// three file devices (hotplug on) and runs a seeded mix of puts, replaces,
// removes and replacing batches with hotplug calls among them: removal by
// migration, by eviction and by drain, adds, grows and shrinks (migrating or
// evicting). It reports each operation through a pipe before it starts and
// when it has returned. The parent SIGKILLs it at a random moment, then
// hides or brings back device files at random, so that a device is missing
// at some opens and comes back at later ones, reopens the pool and checks
// every key against the acknowledged operations:
//   - a key whose last acknowledged operation wrote a value reads exactly
//     that value (or the in-flight operation's), or nothing when a device is
//     missing or has just come back (its entry may be on the missing device,
//     or dropped by the pool history's removal table for another key's
//     change: a cache entry lost, which the history allows);
//   - a key whose last acknowledged operation removed it (or an acknowledged
//     eviction deleted) reads nothing, whatever devices come and go: never
//     an older value (the in-flight operation's new value is accepted);
//   - both hold while one device that was in the pool at the key's last
//     change is present (its removal table and floor are what tell; a
//     change only absent devices saw cannot be known): otherwise the key may
//     read any value it ever had, or nothing, never bytes never written;
//   - no torn or corrupt entry is dropped by recovery.
// The devices carry over from round to round, listed in another order at
// each reopen; rounds cycle through durability=process/power and
// verify=recover/read.
//
//   pool_kill_test [--rounds N] [--seed S] [--dir DIR] [--verbose]
// Prints "N passed, M failed"; on a failure the seed and round to replay it.
#include <algorithm>
#include <cerrno>
#include <chrono>
#include <cinttypes>
#include <csignal>
#include <cstdarg>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <string>
#include <vector>

#include <fcntl.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "daxkv.h"
#include "kill_common.hpp"

namespace {

constexpr uint32_t kKeys = 48;
constexpr uint32_t kDevices = 3;
constexpr uint64_t kSlotBytes = 8192;
constexpr uint32_t kMetaBytes = 64;
constexpr uint64_t kDevBytes = 1u << 20;  // ~115 slots each
constexpr uint64_t kGrowLimit = 2u << 20; // room for grows
constexpr uint32_t kBatchMax = 4;
constexpr uint32_t kMaxAcks = 150;

enum Op : uint32_t { kPut = 1, kReplace, kRemove, kBatch, kHotplug };
enum Hop : uint32_t {
    kRemoveMigrate = 1,
    kRemoveEvict,
    kDrain,
    kAdd,
    kGrow,
    kShrinkMigrate,
    kShrinkEvict
};
enum RecKind : uint32_t { kBegin = 1, kAck };

struct Item {
    uint32_t key;
    uint32_t len;
    uint32_t meta_len;
    int32_t status;
    uint64_t vseed;
};
// One pipe message; smaller than PIPE_BUF, so each write is atomic.
struct Rec {
    uint32_t kind;
    uint32_t op;
    uint32_t n;
    int32_t rc;
    uint32_t hop, dev;
    // kRemoveEvict / kShrinkEvict: contains() of each key before and after
    // the call. Only a key visible before can be deleted by it (and so have
    // its removal recorded); a key whose entry lies on a device away now is
    // not changed by it.
    uint64_t present_before, present;
    Item it[kBatchMax];
};
static_assert(sizeof(Rec) <= 512, "pipe record must stay atomic");

uint64_t splitmix(uint64_t &x) {
    uint64_t z = (x += 0x9E3779B97F4A7C15ull);
    z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
    z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
    return z ^ (z >> 31);
}

void fill(std::vector<char> &v, size_t n, uint64_t seed) {
    v.resize(n);
    uint64_t x = seed;
    for (size_t i = 0; i < n; i += 8) {
        uint64_t r = splitmix(x);
        std::memcpy(v.data() + i, &r, std::min<size_t>(8, n - i));
    }
}

std::string key_name(uint32_t k) { return "pool/key/" + std::to_string(k); }

struct Mode {
    const char *durability;
    const char *verify;
};
Mode mode_of(uint64_t round) {
    static const Mode modes[] = {
        {"process", "recover"}, {"power", "recover"}, {"process", "read"}, {"process", "recover"}};
    return modes[round % 4];
}

std::string g_dir;
std::string dev_path(uint32_t d) { return g_dir + "/dev" + std::to_string(d); }
// The order the devices are listed in at the next open: the pool finds its
// devices by what they hold, not by where they are listed, so every open
// lists them rotated by another amount.
uint32_t g_rotation = 0;

int open_pool(daxkv_store **s, Mode m, bool create) {
    daxkv_config *cfg = nullptr;
    int rc = daxkv_config_new(&cfg);
    if (rc)
        return rc;
    const std::pair<const char *, std::string> settings[] = {
        {"slot_bytes", std::to_string(kSlotBytes)},
        {"meta_bytes", std::to_string(kMetaBytes)},
        {"durability", m.durability},
        {"verify", m.verify},
        {"eviction", "none"}, // a full pool must fail, not silently evict
        {"hotplug", "1"},
        {"create", create ? "1" : "0"},
        {"grow_limit", std::to_string(kGrowLimit)},
        {"workers", "2"}};
    for (const auto &kv : settings)
        if ((rc = daxkv_config_set(cfg, kv.first, kv.second.c_str()))) {
            daxkv_config_free(cfg);
            return rc;
        }
    for (uint32_t d = 0; d < kDevices && !rc; ++d)
        rc = daxkv_config_add_device(cfg, dev_path((d + g_rotation) % kDevices).c_str(),
                                     kDevBytes);
    if (!rc)
        rc = daxkv_open(s, cfg);
    daxkv_config_free(cfg);
    return rc;
}

uint64_t presence(daxkv_store *s) {
    uint64_t bits = 0;
    for (uint32_t k = 0; k < kKeys; ++k) {
        std::string key = key_name(k);
        if (daxkv_contains(s, key.data(), key.size()) == 1)
            bits |= uint64_t(1) << k;
    }
    return bits;
}

// The child: runs until killed (or, unexpectedly, out of operations).
[[noreturn]] void child(int fd, uint64_t seed, Mode mode, bool create) {
    daxkv_store *s = nullptr;
    if (open_pool(&s, mode, create) != 0) {
        std::fprintf(stderr, "child: open failed: %s\n", daxkv_errmsg());
        _exit(2);
    }
    uint64_t x = seed;
    std::vector<char> val[kBatchMax], meta[kBatchMax];
    for (uint32_t i = 0; i < 1000000; ++i) {
        Rec r{};
        r.kind = kBegin;
        uint64_t pick = splitmix(x) % 100;
        r.op = pick < 25 ? kPut : pick < 50 ? kReplace : pick < 72 ? kRemove : pick < 85 ? kBatch
                                                                                 : kHotplug;
        r.n = r.op == kBatch ? 2 + static_cast<uint32_t>(splitmix(x) % (kBatchMax - 1))
              : r.op == kHotplug ? 0
                                 : 1;
        if (r.op == kHotplug) {
            r.hop = 1 + static_cast<uint32_t>(splitmix(x) % 7);
            r.dev = static_cast<uint32_t>(splitmix(x) % kDevices);
            if (r.hop == kRemoveEvict || r.hop == kShrinkEvict)
                r.present_before = presence(s);
        }
        for (uint32_t j = 0; j < r.n; ++j) {
            Item &it = r.it[j];
            bool fresh;
            do { // distinct keys within a batch
                it.key = static_cast<uint32_t>(splitmix(x) % kKeys);
                fresh = true;
                for (uint32_t q = 0; q < j; ++q)
                    fresh = fresh && r.it[q].key != it.key;
            } while (!fresh);
            uint64_t sz = splitmix(x) % 100;
            it.len = sz < 2 ? 0 : sz < 50 ? 1 + splitmix(x) % 256 : 1 + splitmix(x) % kSlotBytes;
            it.meta_len = static_cast<uint32_t>(splitmix(x) % (kMetaBytes + 1));
            it.vseed = splitmix(x);
        }
        kill_test::send_rec(fd, r);
        for (uint32_t j = 0; j < r.n; ++j) {
            fill(val[j], r.it[j].len, r.it[j].vseed);
            fill(meta[j], r.it[j].meta_len, ~r.it[j].vseed);
        }
        std::string k0 = r.n ? key_name(r.it[0].key) : std::string();
        switch (r.op) {
        case kPut:
        case kReplace: {
            daxkv_item it{k0.data(), k0.size(), val[0].data(), r.it[0].len,
                          meta[0].data(), r.it[0].meta_len, 0};
            daxkv_put_batch(s, &it, 1, r.op == kReplace ? DAXKV_REPLACE : 0);
            r.rc = it.status;
            break;
        }
        case kRemove:
            r.rc = daxkv_remove(s, k0.data(), k0.size(), 0);
            break;
        case kBatch: {
            std::string keys[kBatchMax];
            daxkv_item items[kBatchMax];
            for (uint32_t j = 0; j < r.n; ++j) {
                keys[j] = key_name(r.it[j].key);
                items[j] = daxkv_item{keys[j].data(), keys[j].size(), val[j].data(), r.it[j].len,
                                      meta[j].data(), r.it[j].meta_len, 0};
            }
            r.rc = daxkv_put_batch(s, items, r.n, DAXKV_REPLACE);
            for (uint32_t j = 0; j < r.n; ++j)
                r.it[j].status = items[j].status;
            break;
        }
        case kHotplug: {
            const std::string p = dev_path(r.dev);
            daxkv_hotplug_result res{};
            res.struct_size = sizeof res;
            switch (r.hop) {
            case kRemoveMigrate:
                r.rc = daxkv_device_remove(s, p.c_str(), DAXKV_MIGRATE, DAXKV_FORCE, &res);
                break;
            case kRemoveEvict:
                r.rc = daxkv_device_remove(s, p.c_str(), DAXKV_EVICT, DAXKV_FORCE, &res);
                break;
            case kDrain:
                r.rc = daxkv_device_remove(s, p.c_str(), DAXKV_DRAIN, 0, &res);
                break;
            case kAdd:
                r.rc = daxkv_device_add(s, p.c_str(), kDevBytes);
                break;
            case kGrow:
                r.rc = daxkv_device_resize(s, p.c_str(), kGrowLimit, DAXKV_MIGRATE, 0, &res);
                break;
            case kShrinkMigrate:
                r.rc = daxkv_device_resize(s, p.c_str(), kDevBytes / 2, DAXKV_MIGRATE,
                                           DAXKV_FORCE, &res);
                break;
            case kShrinkEvict:
                r.rc = daxkv_device_resize(s, p.c_str(), kDevBytes / 2, DAXKV_EVICT,
                                           DAXKV_FORCE, &res);
                break;
            }
            if (r.hop == kRemoveEvict || r.hop == kShrinkEvict)
                r.present = presence(s);
            break;
        }
        }
        if (r.op != kBatch && r.op != kHotplug)
            r.it[0].status = r.rc;
        r.kind = kAck;
        kill_test::send_rec(fd, r);
    }
    daxkv_close(s);
    _exit(0);
}

struct Value {
    uint32_t len = 0, meta_len = 0;
    uint64_t vseed = 0;
    bool operator==(const Value &o) const {
        return len == o.len && meta_len == o.meta_len && vseed == o.vseed;
    }
};
// What the acknowledged operations say of a key.
struct State {
    bool present = false;   // the last acknowledged operation wrote v
    bool maybe_gone = false; // present, but its entry may be gone (see the top)
    Value v;
    // Values an operation in flight at a kill may have written, while a
    // device was missing at every check since (it may hold them).
    std::vector<Value> maybe;
    // An older value was accepted (its last change unwitnessed): until the
    // next change, or a check with every device present, any of its values
    // (or none) may show.
    bool unknown = false;
};
// Per key: the devices that were in the pool at its last change (they
// record it), and every value it was ever given.
struct KeyHistory {
    uint32_t witnesses = 0;
    std::vector<Value> values;
};

std::string describe(const State &s) {
    if (!s.present)
        return "absent";
    char b[120];
    std::snprintf(b, sizeof b, "value of %u bytes + %u meta (seed %016" PRIx64 ")%s%s", s.v.len,
                  s.v.meta_len, s.v.vseed, s.maybe_gone ? " or absent" : "",
                  s.unknown ? " or any earlier" : "");
    return b;
}

class Round {
public:
    Round(uint64_t seed, uint64_t round, std::vector<State> &model,
          std::vector<KeyHistory> &hist, bool degraded, uint32_t witnesses)
        : seed_(seed), round_(round), model_(model), hist_(hist), degraded_(degraded),
          witnesses_(witnesses) {}
    bool failed() const { return failed_; }

    void fail(const char *fmt, ...) __attribute__((format(printf, 2, 3))) {
        if (!failed_)
            std::fprintf(stderr, "FAIL round %" PRIu64 " (replay: --seed %" PRIu64
                                 " --rounds %" PRIu64 "):\n",
                         round_, seed_, round_ + 1);
        failed_ = true;
        va_list ap;
        va_start(ap, fmt);
        std::fprintf(stderr, "  ");
        std::vfprintf(stderr, fmt, ap);
        std::fprintf(stderr, "\n");
        va_end(ap);
    }

    // Apply one acknowledged operation to the model, checking its result.
    // degraded: a device of the open was missing (or came back), so a
    // present key may be invisible.
    void apply(const Rec &r) {
        touch(r, false);
        if (r.op == kHotplug) {
            // Deleted by the eviction (whatever it returned: one that failed
            // part way may have deleted some): visible before, gone after.
            // A key that was not visible (its device away) is not touched.
            if (r.hop == kRemoveEvict || r.hop == kShrinkEvict)
                for (uint32_t k = 0; k < kKeys; ++k)
                    if ((r.present_before >> k & 1) && !(r.present >> k & 1))
                        model_[k] = State{};
            return;
        }
        for (uint32_t j = 0; j < r.n; ++j) {
            const Item &it = r.it[j];
            State &st = model_[it.key];
            State fresh{true, false, Value{it.len, it.meta_len, it.vseed}, {}, false};
            switch (r.op) {
            case kPut:
                if (it.status == 0 && (!st.present || st.maybe_gone || st.unknown || degraded_))
                    st = fresh;
                else if (it.status == DAXKV_EXISTED && (st.present || st.unknown))
                    ;
                else if (it.status == -ENOSPC)
                    ;
                else
                    fail("put of key %u returned %d while the model holds it %s", it.key,
                         it.status, describe(st).c_str());
                break;
            case kReplace:
            case kBatch:
                if (it.status == 0)
                    st = fresh;
                else if (it.status != -ENOSPC)
                    fail("replace of key %u returned %d", it.key, it.status);
                break;
            case kRemove:
                if (it.status == 0 ? st.present || st.unknown
                                   : (it.status == -ENOENT && (!st.present || st.maybe_gone ||
                                                               st.unknown || degraded_)))
                    st = State{};
                else
                    fail("remove of key %u returned %d while the model holds it %s", it.key,
                         it.status, describe(st).c_str());
                break;
            }
        }
    }

    // What the operation in flight may have left: per key, another state.
    void allow_inflight(const Rec &r, std::vector<std::vector<State>> &alt) {
        touch(r, true);
        if (r.op == kHotplug) {
            if (r.hop == kRemoveEvict || r.hop == kShrinkEvict)
                for (uint32_t k = 0; k < kKeys; ++k)
                    if (r.present_before >> k & 1)
                        alt[k].push_back(State{});
            return;
        }
        for (uint32_t j = 0; j < r.n; ++j) {
            const Item &it = r.it[j];
            State fresh{true, false, Value{it.len, it.meta_len, it.vseed}, {}, false};
            alt[it.key].push_back(r.op == kRemove ? State{} : fresh);
        }
    }

private:
    // The keys an operation changed: their last change was seen by the
    // open's witnesses. One in flight may or may not have changed them:
    // then only the devices that saw both the change before and this one
    // count.
    void touch(const Rec &r, bool in_flight) {
        auto seen = [&](KeyHistory &h) {
            h.witnesses = in_flight ? h.witnesses & witnesses_ : witnesses_;
        };
        if (r.op == kHotplug) {
            // An eviction changes the keys it deletes: visible before, and
            // gone after (or maybe gone, while it is in flight).
            if (r.hop == kRemoveEvict || r.hop == kShrinkEvict)
                for (uint32_t k = 0; k < kKeys; ++k)
                    if ((r.present_before >> k & 1) && (in_flight || !(r.present >> k & 1)))
                        seen(hist_[k]);
            return;
        }
        for (uint32_t j = 0; j < r.n; ++j) {
            const Item &it = r.it[j];
            const bool changed = in_flight || it.status == 0 ||
                                 (r.op == kRemove && it.status == -ENOENT);
            if (!changed)
                continue;
            KeyHistory &h = hist_[it.key];
            seen(h);
            if (r.op != kRemove)
                h.values.push_back(Value{it.len, it.meta_len, it.vseed});
        }
    }
    uint64_t seed_, round_;
    std::vector<State> &model_;
    std::vector<KeyHistory> &hist_;
    bool degraded_;
    uint32_t witnesses_;
    bool failed_ = false;
};

bool read_rec(int fd, Rec &r) {
    char *p = reinterpret_cast<char *>(&r);
    size_t got = 0;
    while (got < sizeof r) {
        ssize_t n = ::read(fd, p + got, sizeof r - got);
        if (n < 0 && errno == EINTR)
            continue;
        if (n <= 0)
            return false;
        got += static_cast<size_t>(n);
    }
    return true;
}

void spin_us(uint64_t us) {
    auto t0 = std::chrono::steady_clock::now();
    while (std::chrono::steady_clock::now() - t0 < std::chrono::microseconds(us)) {
    }
}

bool file_exists(const std::string &p) {
    struct stat st;
    return ::stat(p.c_str(), &st) == 0;
}

// Which device files are in place (the others are moved aside: missing).
uint32_t present_mask() {
    uint32_t m = 0;
    for (uint32_t d = 0; d < kDevices; ++d)
        m |= file_exists(dev_path(d)) ? 1u << d : 0;
    return m;
}

void set_present(uint32_t mask) {
    for (uint32_t d = 0; d < kDevices; ++d) {
        const std::string p = dev_path(d), away = p + ".away";
        if ((mask >> d & 1) && !file_exists(p) && file_exists(away))
            ::rename(away.c_str(), p.c_str());
        if (!(mask >> d & 1) && file_exists(p))
            ::rename(p.c_str(), away.c_str());
    }
}

constexpr uint32_t kAll = (1u << kDevices) - 1;

bool run_round(uint64_t seed, uint64_t round, std::vector<State> &model,
               std::vector<KeyHistory> &hist, bool verbose) {
    uint64_t x = seed * 1000003ull + round;
    const Mode mode = mode_of(round);
    const uint32_t ran_with = present_mask();
    const bool early = splitmix(x) % 10 == 0;
    const uint64_t target_acks = early ? 0 : splitmix(x) % (kMaxAcks + 1);
    const uint64_t extra_us = early ? splitmix(x) % 3000 : splitmix(x) % 200;

    int pfd[2];
    if (::pipe2(pfd, O_CLOEXEC) != 0) {
        std::perror("pipe");
        return false;
    }
    pid_t pid = ::fork();
    if (pid < 0) {
        std::perror("fork");
        return false;
    }
    if (pid == 0) {
        ::close(pfd[0]);
        child(pfd[1], splitmix(x), mode, false);
    }
    ::close(pfd[1]);

    std::vector<Rec> recs;
    uint64_t acks = 0;
    bool killed = false;
    Rec r;
    if (target_acks == 0) {
        spin_us(extra_us);
        ::kill(pid, SIGKILL);
        killed = true;
    }
    while (read_rec(pfd[0], r)) {
        recs.push_back(r);
        if (r.kind == kAck && ++acks == target_acks && !killed) {
            spin_us(extra_us);
            ::kill(pid, SIGKILL);
            killed = true;
        }
    }
    ::close(pfd[0]);
    int wst = 0;
    ::waitpid(pid, &wst, 0);

    // The open's witnesses: the devices it ran with, less those a removal
    // (by migration or eviction) took out of the pool; they stop recording.
    uint32_t witnesses = ran_with;
    for (size_t i = 0; i < recs.size(); ++i) {
        const Rec &q = recs[i];
        const bool last = i + 1 == recs.size();
        if (q.op == kHotplug && (q.hop == kRemoveMigrate || q.hop == kRemoveEvict) &&
            (q.kind == kBegin ? last : q.rc == 0))
            witnesses &= ~(1u << q.dev);
    }
    // A device missing from the open makes a present key possibly
    // invisible.
    Round R(seed, round, model, hist, ran_with != kAll, witnesses);
    if (!(WIFSIGNALED(wst) && WTERMSIG(wst) == SIGKILL))
        R.fail("the child ended on its own (status %d) before the kill", wst);
    const Rec *inflight = nullptr;
    for (const Rec &q : recs) {
        if (q.kind == kBegin)
            inflight = &q;
        else {
            R.apply(q);
            inflight = nullptr;
        }
    }
    std::vector<std::vector<State>> alt(kKeys);
    if (inflight)
        R.allow_inflight(*inflight, alt);

    // The next history step: one device in three rounds is missing at the
    // reopen (and at the next round's open); the others come back.
    uint32_t next = kAll;
    if (splitmix(x) % 3 == 0)
        next &= ~(1u << (splitmix(x) % kDevices));
    set_present(next);
    const bool returning = (next & ~ran_with) != 0;
    const bool missing = next != kAll;

    g_rotation = static_cast<uint32_t>(splitmix(x) % kDevices);
    daxkv_store *s = nullptr;
    int rc = open_pool(&s, mode, false);
    if (rc) {
        R.fail("reopen failed: %s (%d): %s", daxkv_strerror(rc), rc, daxkv_errmsg());
        return false;
    }
    struct daxkv_stats st {};
    st.struct_size = sizeof st;
    daxkv_stats(s, &st);
    if (st.recovery_dropped_torn || st.recovery_dropped_corrupt)
        R.fail("recovery dropped %" PRIu64 " torn and %" PRIu64 " corrupt entries",
               st.recovery_dropped_torn, st.recovery_dropped_corrupt);
    std::vector<char> buf(kSlotBytes), mbuf(kMetaBytes), want, wmeta;
    uint64_t present = 0;
    for (uint32_t k = 0; k < kKeys; ++k) {
        std::string key = key_name(k);
        daxkv_item it{key.data(), key.size(), buf.data(), buf.size(), mbuf.data(), mbuf.size(), 0};
        daxkv_get_batch(s, &it, 1, 0);
        std::vector<State> ok = alt[k];
        ok.push_back(model[k]);
        for (const Value &v : model[k].maybe)
            ok.push_back(State{true, false, v, {}, false});
        // Unwitnessed (no device present saw the key's last change), or
        // unknown since: any value the key ever had may come back.
        const bool lenient = model[k].unknown || !(hist[k].witnesses & next);
        auto same = [&](const Value &v) {
            if (v.len != it.len || v.meta_len != it.meta_len)
                return false;
            fill(want, v.len, v.vseed);
            fill(wmeta, v.meta_len, ~v.vseed);
            return (v.len == 0 || std::memcmp(buf.data(), want.data(), v.len) == 0) &&
                   (v.meta_len == 0 || std::memcmp(mbuf.data(), wmeta.data(), v.meta_len) == 0);
        };
        if (it.status == 0) {
            present++;
            const State *match = nullptr;
            for (const State &a : ok)
                if (a.present && same(a.v)) {
                    match = &a;
                    break;
                }
            long which = -1; // the key's earlier value it is, if any
            for (size_t i = 0; i < hist[k].values.size() && which < 0; ++i)
                if (same(hist[k].values[i]))
                    which = static_cast<long>(i);
            if (!match && !(lenient && which >= 0)) {
                R.fail("key %u: %zu bytes + %zu meta that are not the last acknowledged write "
                       "(expected %s%s); %s #%ld of %zu; last change seen by devices %x, "
                       "devices %x -> %x",
                       k, it.len, it.meta_len, describe(model[k]).c_str(),
                       alt[k].empty() ? "" : ", or the in-flight operation's",
                       which < 0 ? "never written" : "its value", which, hist[k].values.size(),
                       hist[k].witnesses, ran_with, next);
                model[k] = State{};
            } else {
                const Value v = match ? match->v : hist[k].values[static_cast<size_t>(which)];
                // With every device present the pool knows all it can: what
                // it says is the state from now on. Otherwise an older value
                // accepted leniently keeps the key unknown.
                const bool unknown = next != kAll && (model[k].unknown || !match);
                // A device missing now may hold what the operation in flight
                // wrote: a commit durable on it, whose older version here
                // was not yet withdrawn. It may show when that device comes
                // back, as for a key that read absent.
                std::vector<Value> maybe;
                if (missing) {
                    maybe = model[k].maybe;
                    for (const State &a : alt[k])
                        if (a.present && !(a.v == v))
                            maybe.push_back(a.v);
                }
                model[k] = State{true, false, v, std::move(maybe), unknown};
            }
            if (next == kAll)
                hist[k].witnesses = next;
        } else if (it.status != -ENOENT) {
            R.fail("key %u: get returned %d: %s", k, it.status, daxkv_errmsg());
        } else {
            bool absent_ok = lenient || missing || returning;
            for (const State &a : ok)
                absent_ok = absent_ok || !a.present || a.maybe_gone;
            if (!absent_ok)
                R.fail("key %u: absent, expected %s", k, describe(model[k]).c_str());
            if (missing) {
                // It may come back with its device: as it is, or as the
                // operation in flight left it.
                model[k].maybe_gone = model[k].present;
                for (const State &a : alt[k])
                    if (a.present)
                        model[k].maybe.push_back(a.v);
            } else {
                model[k] = State{};
                hist[k].witnesses = next;
            }
        }
    }
    daxkv_close(s);
    if (verbose)
        std::printf("round %" PRIu64 ": %s/%s, devices %x -> %x, killed after %" PRIu64
                    " acks%s, %" PRIu64 " keys present, %s\n",
                    round, mode.durability, mode.verify, ran_with, next, acks,
                    inflight ? " (one op in flight)" : "", present, R.failed() ? "FAILED" : "ok");
    return !R.failed();
}

} // namespace

int main(int argc, char **argv) {
    kill_test::Options opt;
    if (!kill_test::parse(argc, argv, opt))
        return 2;
    const uint64_t rounds = opt.rounds, seed = opt.seed;
    const bool verbose = opt.verbose;
    kill_test::WorkDir work;
    if (!work.make(opt, "daxkv-poolkill"))
        return 1;
    g_dir = work.path();
    std::printf("pool kill test: %" PRIu64 " rounds, seed %" PRIu64 ", devices in %s\n", rounds,
                seed, g_dir.c_str());
    std::fflush(stdout);

    // The devices exist from the start: a device file that is not there at
    // an open is a missing device, never a new one.
    {
        daxkv_store *s = nullptr;
        if (open_pool(&s, mode_of(0), true) != 0) {
            std::fprintf(stderr, "cannot create the devices: %s\n", daxkv_errmsg());
            return 1;
        }
        daxkv_close(s);
    }
    std::vector<State> model(kKeys);
    std::vector<KeyHistory> hist(kKeys);
    for (auto &h : hist)
        h.witnesses = kAll;
    uint64_t passed = 0, failed = 0;
    auto t0 = std::chrono::steady_clock::now();
    for (uint64_t r = 0; r < rounds; ++r)
        (run_round(seed, r, model, hist, verbose) ? passed : failed)++;
    double secs = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();

    for (uint32_t d = 0; d < kDevices; ++d) {
        ::unlink(dev_path(d).c_str());
        ::unlink((dev_path(d) + ".away").c_str());
    }
    work.remove();
    if (failed)
        std::printf("pool kill test FAILED with seed %" PRIu64
                    " (replay: tests/crash/pool_kill_test --seed %" PRIu64 " --rounds %" PRIu64
                    ")\n",
                    seed, seed, rounds);
    std::printf("%" PRIu64 " passed, %" PRIu64 " failed (%.1f s)\n", passed, failed, secs);
    return failed ? 1 : 0;
}
