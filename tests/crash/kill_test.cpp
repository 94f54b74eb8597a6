// Kill test: a child process runs a seeded mixed workload (put, put with
// DAXKV_REPLACE, remove, replacing batches, batch removals, reservations
// filled in place and committed with metadata or aborted) on a file arena
// and reports each
// operation to the parent through a pipe, once before it starts and once
// when it has returned (with its result). The parent SIGKILLs the child at a
// random moment, reopens the arena and checks every key against what the
// acknowledged operations say:
//   - an acknowledged put or replace is present with exactly its bytes and
//     metadata (unless a later acknowledged operation changed the key);
//   - an acknowledged remove stays removed (unless a later put);
//   - the one operation in flight when the child died (begun, not
//     acknowledged) may have taken effect or not, per key: for that key the
//     old state and the new one are both accepted, nothing else;
//   - no other key exists, and recovery dropped no torn or corrupt entry (a
//     killed process cannot tear a write: the kernel keeps every store).
// The arena carries over from round to round, so later rounds recover
// arenas that earlier recoveries wrote. Rounds alternate durability=process,
// durability=power and durability=none (whose entries no later open may
// bring back), and verify=recover and verify=read; the reopen after a kill
// uses the other durability and verify mode than the killed writer did.
// Some rounds use a second, smaller arena with eviction=lru, so that puts,
// batches and reservations evict: there an acknowledged value may be gone,
// but a key that is present holds exactly its last acknowledged value (or
// the in-flight one).
//
// Each result the child reports is checked against the model too (a put
// without DAXKV_REPLACE that says EXISTED for a key the model holds absent
// means a removed key came back, and so on).
//
//   kill_test [--rounds N] [--seed S] [--dir DIR] [--verbose]
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
#include <random>
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

constexpr uint32_t kKeys = 64;          // key space
constexpr uint64_t kSlotBytes = 8192;   // values are 0..kSlotBytes bytes
constexpr uint32_t kMetaBytes = 64;
constexpr uint64_t kArenaBytes = 4u << 20; // ~450 slots: 2 x kKeys + a batch never fill it
constexpr uint64_t kEvictArenaBytes = 320u << 10; // ~36 slots: fewer than kKeys, so puts evict
constexpr uint32_t kBatchMax = 4;
constexpr uint32_t kMaxAcks = 400;      // the kill comes after 0..kMaxAcks acknowledgements

enum Op : uint32_t { kPut = 1, kReplace, kRemove, kBatch, kRemoveBatch, kReserve, kReserveAbort };
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

std::string key_name(uint32_t k) { return "kill/key/" + std::to_string(k); }

struct Mode {
    const char *durability;
    const char *verify;
    bool evict; // the small arena, eviction=lru
};
Mode mode_of(uint64_t round) {
    static const Mode modes[] = {{"process", "recover", false}, {"process", "read", false},
                                 {"power", "recover", false},   {"process", "recover", true},
                                 {"none", "recover", false},    {"process", "recover", false},
                                 {"power", "read", true},       {"none", "read", true}};
    return modes[round % 8];
}

// How the arena is opened again after the kill: another durability and
// verify mode than the writer's.
Mode reopen_mode_of(Mode m) {
    Mode r = m;
    r.durability = std::strcmp(m.durability, "process") == 0 ? "power" : "process";
    r.verify = std::strcmp(m.verify, "read") == 0 ? "recover" : "read";
    return r;
}

int open_store(daxkv_store **s, const std::string &path, Mode m) {
    return kill_test::open_one_arena(s, path, m.evict ? kEvictArenaBytes : kArenaBytes,
                                     {{"slot_bytes", std::to_string(kSlotBytes)},
                                      {"meta_bytes", std::to_string(kMetaBytes)},
                                      {"durability", m.durability},
                                      {"verify", m.verify},
                                      // The large arena must never be full: there a
                                      // full arena fails rather than silently evicting.
                                      {"eviction", m.evict ? "lru" : "none"},
                                      {"on_mismatch", "fail"},
                                      {"workers", "2"}});
}

// The child: runs until killed (or, unexpectedly, out of operations).
[[noreturn]] void child(int fd, const std::string &path, uint64_t seed, Mode mode) {
    daxkv_store *s = nullptr;
    if (open_store(&s, path, mode) != 0) {
        std::fprintf(stderr, "child: open failed: %s\n", daxkv_errmsg());
        _exit(2);
    }
    uint64_t x = seed;
    std::vector<char> val[kBatchMax], meta[kBatchMax];
    for (uint32_t i = 0; i < 1000000; ++i) {
        Rec r{};
        r.kind = kBegin;
        uint64_t pick = splitmix(x) % 100;
        r.op = pick < 25   ? kPut
               : pick < 50 ? kReplace
               : pick < 65 ? kRemove
               : pick < 78 ? kBatch
               : pick < 85 ? kRemoveBatch
               : pick < 96 ? kReserve
                           : kReserveAbort;
        r.n = r.op == kBatch || r.op == kRemoveBatch
                  ? 2 + static_cast<uint32_t>(splitmix(x) % (kBatchMax - 1))
                  : 1;
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
        std::string k0 = key_name(r.it[0].key);
        switch (r.op) {
        case kPut:
        case kReplace:
            if (r.it[0].meta_len == 0) {
                r.rc = daxkv_put(s, k0.data(), k0.size(), val[0].data(), r.it[0].len,
                                 r.op == kReplace ? DAXKV_REPLACE : 0);
            } else {
                daxkv_item it{k0.data(), k0.size(), val[0].data(), r.it[0].len,
                              meta[0].data(), r.it[0].meta_len, 0};
                daxkv_put_batch(s, &it, 1, r.op == kReplace ? DAXKV_REPLACE : 0);
                r.rc = it.status;
            }
            break;
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
        case kRemoveBatch: {
            std::string keys[kBatchMax];
            daxkv_item items[kBatchMax];
            for (uint32_t j = 0; j < r.n; ++j) {
                keys[j] = key_name(r.it[j].key);
                items[j] = daxkv_item{keys[j].data(), keys[j].size(), nullptr, 0, nullptr, 0, 0};
            }
            r.rc = daxkv_remove_batch(s, items, r.n, 0);
            for (uint32_t j = 0; j < r.n; ++j)
                r.it[j].status = items[j].status;
            break;
        }
        case kReserve:
        case kReserveAbort: {
            // The metadata goes with the reservation, with set_meta after it,
            // or first a stand-in that set_meta replaces.
            const uint64_t how = r.it[0].vseed % 3;
            daxkv_reservation *res = nullptr;
            void *data = nullptr;
            std::vector<char> stand_in(meta[0].rbegin(), meta[0].rend());
            if (how == 1) {
                r.rc = daxkv_reserve(s, k0.data(), k0.size(), r.it[0].len, &res);
                data = res ? daxkv_reservation_data(res) : nullptr;
            } else {
                const std::vector<char> &m = how == 0 ? meta[0] : stand_in;
                r.rc = daxkv_reserve_meta(s, k0.data(), k0.size(), r.it[0].len, m.data(),
                                          m.size(), &data, &res);
            }
            if (r.rc == 0) {
                if (r.it[0].len)
                    std::memcpy(data, val[0].data(), r.it[0].len);
                if (how != 0 && daxkv_reservation_set_meta(res, meta[0].data(), meta[0].size()))
                    _exit(4);
                if (r.op == kReserve) {
                    r.rc = daxkv_commit(res);
                } else {
                    daxkv_abort(res);
                }
            }
            break;
        }
        }
        if (r.op != kBatch && r.op != kRemoveBatch)
            r.it[0].status = r.rc;
        r.kind = kAck;
        kill_test::send_rec(fd, r);
    }
    daxkv_close(s);
    _exit(0);
}

struct State {
    bool present = false;
    uint32_t len = 0, meta_len = 0;
    uint64_t vseed = 0;
    bool operator==(const State &o) const {
        return present == o.present &&
               (!present || (len == o.len && meta_len == o.meta_len && vseed == o.vseed));
    }
};

std::string describe(const State &s) {
    if (!s.present)
        return "absent";
    char b[96];
    std::snprintf(b, sizeof b, "value of %u bytes + %u meta (seed %016" PRIx64 ")", s.len,
                  s.meta_len, s.vseed);
    return b;
}

const char *op_name(uint32_t op) {
    switch (op) {
    case kPut: return "put";
    case kReplace: return "replace";
    case kRemove: return "remove";
    case kBatch: return "batch";
    case kRemoveBatch: return "remove batch";
    case kReserve: return "reservation";
    case kReserveAbort: return "aborted reservation";
    }
    return "?";
}

class Round {
public:
    Round(uint64_t seed, uint64_t round, std::vector<State> &model, bool evicts, bool verbose)
        : seed_(seed), round_(round), model_(model), evicts_(evicts), verbose_(verbose) {}

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
    void apply(const Rec &r) {
        for (uint32_t j = 0; j < r.n; ++j) {
            const Item &it = r.it[j];
            State &st = model_[it.key];
            State fresh{true, it.len, it.meta_len, it.vseed};
            // Where puts evict, a key the model holds may be gone.
            const bool maybe_absent = !st.present || evicts_;
            switch (r.op) {
            case kPut:
            case kReserve:
            case kReserveAbort:
                if (it.status == 0 && maybe_absent)
                    st = r.op == kReserveAbort ? st : fresh;
                else if (it.status == DAXKV_EXISTED && st.present)
                    ;
                else
                    fail("%s of key %u returned %d while the model holds it %s", op_name(r.op),
                         it.key, it.status, describe(st).c_str());
                break;
            case kReplace:
            case kBatch:
                if (it.status == 0)
                    st = fresh;
                else
                    fail("%s of key %u returned %d", op_name(r.op), it.key, it.status);
                break;
            case kRemove:
            case kRemoveBatch:
                if ((it.status == 0 && st.present) || (it.status == -ENOENT && maybe_absent))
                    st = State{};
                else
                    fail("remove of key %u returned %d while the model holds it %s", it.key,
                         it.status, describe(st).c_str());
                break;
            }
        }
    }

    // What the operation in flight may have left for each of its keys.
    void allow_inflight(const Rec &r, std::vector<std::vector<State>> &alt) {
        for (uint32_t j = 0; j < r.n; ++j) {
            const Item &it = r.it[j];
            const State &st = model_[it.key];
            State fresh{true, it.len, it.meta_len, it.vseed};
            if ((r.op == kPut || r.op == kReserve) && (!st.present || evicts_))
                alt[it.key].push_back(fresh);
            else if (r.op == kReplace || r.op == kBatch)
                alt[it.key].push_back(fresh);
            else if (r.op == kRemove || r.op == kRemoveBatch)
                alt[it.key].push_back(State{});
        }
    }

private:
    uint64_t seed_, round_;
    std::vector<State> &model_;
    bool evicts_;
    bool verbose_;
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
            return false; // EOF: the child is gone (a partial record cannot happen)
        got += static_cast<size_t>(n);
    }
    return true;
}

void spin_us(uint64_t us) {
    auto t0 = std::chrono::steady_clock::now();
    while (std::chrono::steady_clock::now() - t0 < std::chrono::microseconds(us)) {
    }
}

// One round; returns true when it passed.
bool run_round(const std::string &path, uint64_t seed, uint64_t round, std::vector<State> &model,
               bool verbose) {
    uint64_t rs = seed * 1000003ull + round;
    uint64_t x = rs;
    const Mode mode = mode_of(round);
    // When to kill: after 0..kMaxAcks acknowledgements, then 0..200 us more;
    // one round in ten kills within the first 3 ms (during the open and
    // recovery of the arena).
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
        child(pfd[1], path, splitmix(x), mode);
    }
    ::close(pfd[1]);

    Round R(seed, round, model, mode.evict, verbose);
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
    if (!(WIFSIGNALED(wst) && WTERMSIG(wst) == SIGKILL))
        R.fail("the child ended on its own (status %d) before the kill", wst);

    // A writer with durability=none recovers nothing and leaves nothing
    // that a later open may recover: once it has opened (it reports only
    // after its open) every key is absent to it and after it. Killed during
    // its open, the arena holds what it held before, or nothing.
    const bool keeps_nothing = std::strcmp(mode.durability, "none") == 0;
    const std::vector<State> before = model;
    if (keeps_nothing && !recs.empty())
        model.assign(kKeys, State{});
    // Replay the records: acknowledged operations move the model; a begin
    // with no acknowledgement after it is the one in flight.
    const Rec *inflight = nullptr;
    for (const Rec &q : recs) {
        if (q.kind == kBegin) {
            inflight = &q;
        } else {
            R.apply(q);
            inflight = nullptr;
        }
    }
    std::vector<std::vector<State>> accept(kKeys);
    for (uint32_t k = 0; k < kKeys; ++k) {
        if (keeps_nothing) {
            accept[k].push_back(State{});
            if (recs.empty())
                accept[k].push_back(before[k]);
            continue;
        }
        accept[k].push_back(model[k]);
        if (mode.evict)
            accept[k].push_back(State{}); // evicted
    }
    if (inflight && !keeps_nothing)
        R.allow_inflight(*inflight, accept);

    // Reopen and check every key.
    daxkv_store *s = nullptr;
    int rc = open_store(&s, path, reopen_mode_of(mode));
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
        State seen;
        bool bytes_ok = true;
        if (it.status == 0) {
            present++;
            // Which accepted state do the bytes match?
            bytes_ok = false;
            for (const State &a : accept[k]) {
                if (!a.present || a.len != it.len || a.meta_len != it.meta_len)
                    continue;
                fill(want, a.len, a.vseed);
                fill(wmeta, a.meta_len, ~a.vseed);
                // (Empty vectors may have no data pointer: compare only bytes.)
                if ((a.len == 0 || std::memcmp(buf.data(), want.data(), a.len) == 0) &&
                    (a.meta_len == 0 ||
                     std::memcmp(mbuf.data(), wmeta.data(), a.meta_len) == 0)) {
                    seen = a;
                    bytes_ok = true;
                    break;
                }
            }
            if (!bytes_ok)
                R.fail("key %u: %zu bytes + %zu meta that match no acknowledged or in-flight "
                       "write (expected %s)",
                       k, it.len, it.meta_len, describe(accept[k][0]).c_str());
        } else if (it.status != -ENOENT) {
            R.fail("key %u: get returned %d: %s", k, it.status, daxkv_errmsg());
        }
        if (bytes_ok && std::find(accept[k].begin(), accept[k].end(), seen) == accept[k].end())
            R.fail("key %u: found %s, expected %s%s", k, describe(seen).c_str(),
                   describe(accept[k][0]).c_str(),
                   accept[k].size() > 1 ? " (or the in-flight write)" : "");
        model[k] = seen; // the next round starts from what is there
    }
    daxkv_stats(s, &st);
    if (st.entries != present)
        R.fail("the store holds %" PRIu64 " entries, %" PRIu64 " of them known keys",
               st.entries, present);
    daxkv_close(s);
    if (verbose)
        std::printf("round %" PRIu64 ": %s/%s%s, killed after %" PRIu64 " acks%s, %" PRIu64
                    " keys present, %s\n",
                    round, mode.durability, mode.verify, mode.evict ? " (evicting)" : "", acks,
                    inflight ? " (one op in flight)" : "", present,
                    R.failed() ? "FAILED" : "ok");
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
    if (!work.make(opt, "daxkv-kill"))
        return 1;
    const std::string path = work.path() + "/kill.arena";
    const std::string evict_path = work.path() + "/evict.arena";
    std::printf("kill test: %" PRIu64 " rounds, seed %" PRIu64 ", arena %s\n", rounds, seed,
                path.c_str());
    std::fflush(stdout);

    std::vector<State> model(kKeys), evict_model(kKeys);
    uint64_t passed = 0, failed = 0;
    auto t0 = std::chrono::steady_clock::now();
    for (uint64_t r = 0; r < rounds; ++r) {
        const bool evict = mode_of(r).evict;
        (run_round(evict ? evict_path : path, seed, r, evict ? evict_model : model, verbose)
             ? passed
             : failed)++;
    }
    double secs = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();

    ::unlink(path.c_str());
    ::unlink(evict_path.c_str());
    work.remove();
    if (failed)
        std::printf("kill test FAILED with seed %" PRIu64 " (replay: tests/crash/kill_test --seed %" PRIu64
                    " --rounds %" PRIu64 ")\n",
                    seed, seed, rounds);
    std::printf("%" PRIu64 " passed, %" PRIu64 " failed (%.1f s)\n", passed, failed, secs);
    return failed ? 1 : 0;
}
