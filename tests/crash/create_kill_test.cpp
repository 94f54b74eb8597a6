// Creation kill test: a child process opens a store on a file arena that
// does not exist yet, puts a few keys, and reports its progress to the
// parent through a pipe (once before the open, once when the open has
// returned, once per acknowledged put). The parent SIGKILLs the child at a
// random moment, most of them while the open is still creating the file,
// and then looks at the arena's directory:
//   - the arena's path is either absent, or holds a whole arena: the
//     superblock's magic at its start and the whole size, and it opens
//     (create=0, on_mismatch=fail) with every acknowledged put present
//     with exactly its bytes (the put in flight may be there or not);
//   - an open that returned (reported) left its arena at the path;
//   - nothing else is in the directory (a file system without O_TMPFILE
//     may leave a hidden temporary, ".NAME.daxkv-new.XXXXXX", which the
//     next open of the path would remove, as daxkv_open(3) says; here it
//     is counted, removed and allowed).
// Rounds alternate durability=process and durability=power. The moment of
// the kill is drawn from 0 to one and a half times the longest open seen
// so far (the child reports how long its open took), most of them early in
// it, so that the kills spread over the creation of the file whatever the
// machine's speed.
//
//   create_kill_test [--rounds N] [--seed S] [--dir DIR] [--verbose]
// Prints "N passed, M failed"; on a failure the seed and round to replay it.
#include <algorithm>
#include <cerrno>
#include <chrono>
#include <cinttypes>
#include <csignal>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <string>
#include <vector>

#include <dirent.h>
#include <fcntl.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "daxkv.h"
#include "kill_common.hpp"

namespace {

constexpr uint64_t kSlotBytes = 64u << 10;
constexpr uint64_t kArenaBytes = 4u << 20;
constexpr uint32_t kKeys = 8;
constexpr char kMagic[8] = {'D', 'A', 'X', 'K', 'V', 'A', 'R', 'N'};

enum Msg : uint32_t { kOpening = 1, kOpened, kPutAck };
struct Rec {
    uint32_t kind;
    uint32_t key;
    uint64_t open_us; // kOpened: how long the open took
};

uint64_t splitmix(uint64_t &x) {
    uint64_t z = (x += 0x9E3779B97F4A7C15ull);
    z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
    z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
    return z ^ (z >> 31);
}

std::vector<char> value_of(uint32_t key, uint64_t round) {
    std::vector<char> v(1000 + key * 97);
    uint64_t x = round * 131 + key;
    for (char &c : v)
        c = static_cast<char>(splitmix(x));
    return v;
}

std::string key_name(uint32_t k) { return "create/key/" + std::to_string(k); }

const char *durability_of(uint64_t round) { return round % 2 ? "power" : "process"; }

int open_store(daxkv_store **s, const std::string &path, const char *durability, bool create) {
    // The reopen takes the file as it is (0: its own size).
    return kill_test::open_one_arena(s, path, create ? kArenaBytes : 0,
                                     {{"slot_bytes", "65536"},
                                      {"durability", durability},
                                      {"on_mismatch", "fail"},
                                      {"create", create ? "1" : "0"},
                                      {"workers", "1"}});
}

[[noreturn]] void child(int fd, const std::string &path, uint64_t round) {
    kill_test::send_rec(fd, Rec{kOpening, 0, 0});
    const auto t0 = std::chrono::steady_clock::now();
    daxkv_store *s = nullptr;
    if (open_store(&s, path, durability_of(round), true) != 0) {
        std::fprintf(stderr, "child: open failed: %s\n", daxkv_errmsg());
        _exit(2);
    }
    const auto us = std::chrono::duration_cast<std::chrono::microseconds>(
        std::chrono::steady_clock::now() - t0);
    kill_test::send_rec(fd, Rec{kOpened, 0, static_cast<uint64_t>(us.count())});
    for (uint32_t k = 0; k < kKeys; ++k) {
        const std::string key = key_name(k);
        const std::vector<char> v = value_of(k, round);
        if (daxkv_put(s, key.data(), key.size(), v.data(), v.size(), 0) != 0)
            _exit(4);
        kill_test::send_rec(fd, Rec{kPutAck, k, 0});
    }
    for (;;)
        ::pause(); // killed here at the latest
}

void spin_us(uint64_t us) {
    const auto t0 = std::chrono::steady_clock::now();
    while (std::chrono::steady_clock::now() - t0 < std::chrono::microseconds(us)) {
    }
}

bool read_rec(int fd, Rec &r) {
    for (;;) {
        const ssize_t n = ::read(fd, &r, sizeof r);
        if (n < 0 && errno == EINTR)
            continue;
        return n == static_cast<ssize_t>(sizeof r); // records are atomic: all or EOF
    }
}

struct Outcome {
    bool ok = true;
    void fail(uint64_t seed, uint64_t round, const std::string &what) {
        if (ok)
            std::fprintf(stderr, "FAIL round %" PRIu64 " (replay: --seed %" PRIu64
                                 " --rounds %" PRIu64 "):\n",
                         round, seed, round + 1);
        ok = false;
        std::fprintf(stderr, "  %s\n", what.c_str());
    }
};

// Names in dir other than the arena's; hidden temporaries of the arena
// (a file system without O_TMPFILE) are removed and counted apart.
std::vector<std::string> strangers(const std::string &dir, const std::string &name,
                                   uint64_t &temporaries) {
    std::vector<std::string> out;
    const std::string temp_prefix = "." + name + ".daxkv-new.";
    if (DIR *d = ::opendir(dir.c_str())) {
        while (struct dirent *de = ::readdir(d)) {
            const std::string n = de->d_name;
            if (n == "." || n == ".." || n == name)
                continue;
            if (n.rfind(temp_prefix, 0) == 0) {
                ::unlink((dir + "/" + n).c_str());
                ++temporaries;
                continue;
            }
            out.push_back(n);
        }
        ::closedir(d);
    }
    return out;
}

bool run_round(const std::string &dir, uint64_t seed, uint64_t round, uint64_t &longest_open_us,
               uint64_t &temporaries, bool verbose) {
    const std::string name = "create.arena";
    const std::string path = dir + "/" + name;
    ::unlink(path.c_str());
    uint64_t x = seed * 1000003ull + round;
    // One round in eight kills after the open, among the puts.
    const uint64_t window = std::max<uint64_t>(longest_open_us * 3 / 2, 200);
    const bool late = splitmix(x) % 8 == 0;
    // Cubed: most kills come early in the open, where the file is made.
    const double u = static_cast<double>(splitmix(x) % 1000000) / 1e6;
    const auto delay_us = static_cast<uint64_t>(static_cast<double>(window) * u * u * u);
    const uint32_t late_acks = static_cast<uint32_t>(splitmix(x) % (kKeys + 1));

    int pfd[2];
    if (::pipe2(pfd, O_CLOEXEC) != 0) {
        std::perror("pipe");
        return false;
    }
    const pid_t pid = ::fork();
    if (pid < 0) {
        std::perror("fork");
        return false;
    }
    if (pid == 0) {
        ::close(pfd[0]);
        child(pfd[1], path, round);
    }
    ::close(pfd[1]);
    Outcome out;
    bool opened = false, killed = false;
    std::vector<bool> acked(kKeys, false);
    uint32_t acks = 0;
    Rec r;
    while (read_rec(pfd[0], r)) {
        if (r.kind == kOpening && !late) {
            spin_us(delay_us);
            ::kill(pid, SIGKILL);
            killed = true;
        } else if (r.kind == kOpened) {
            opened = true;
            longest_open_us = std::max(longest_open_us, r.open_us);
        } else if (r.kind == kPutAck) {
            acked[r.key] = true;
            ++acks;
        }
        const bool all_in = late && opened && (acks >= late_acks || acks == kKeys);
        if (all_in && !killed) {
            ::kill(pid, SIGKILL);
            killed = true;
        }
    }
    ::close(pfd[0]);
    int wst = 0;
    ::waitpid(pid, &wst, 0);
    if (!(WIFSIGNALED(wst) && WTERMSIG(wst) == SIGKILL))
        out.fail(seed, round, "the child ended on its own (status " + std::to_string(wst) + ")");

    for (const std::string &n : strangers(dir, name, temporaries))
        out.fail(seed, round, "a file other than the arena is left in its directory: " + n);
    struct stat st;
    const bool exists = ::lstat(path.c_str(), &st) == 0;
    if (!exists && opened)
        out.fail(seed, round, "the open returned, but its arena is not at the path");
    if (exists) {
        // Whole: its full size, and the superblock (written last) in place.
        char head[sizeof kMagic] = {};
        const int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
        const bool read_ok = fd >= 0 && ::pread(fd, head, sizeof head, 0) == sizeof head;
        if (fd >= 0)
            ::close(fd);
        if (!S_ISREG(st.st_mode) || static_cast<uint64_t>(st.st_size) < kArenaBytes || !read_ok ||
            std::memcmp(head, kMagic, sizeof kMagic) != 0)
            out.fail(seed, round,
                     "a partial file is left at the arena's path (" + std::to_string(st.st_size) +
                         " bytes, " + (read_ok && !std::memcmp(head, kMagic, sizeof kMagic)
                                           ? "with"
                                           : "without") +
                         " a superblock)");
        daxkv_store *s = nullptr;
        const int rc = out.ok ? open_store(&s, path, durability_of(round + 1), false) : -1;
        if (out.ok && rc != 0)
            out.fail(seed, round, std::string("the arena left does not open: ") + daxkv_errmsg());
        if (s) {
            std::vector<char> buf(kSlotBytes);
            uint32_t present = 0;
            for (uint32_t k = 0; k < kKeys; ++k) {
                const std::string key = key_name(k);
                size_t len = 0;
                const int g = daxkv_get(s, key.data(), key.size(), buf.data(), buf.size(), &len);
                const std::vector<char> want = value_of(k, round);
                if (g == 0) {
                    ++present;
                    if (len != want.size() || std::memcmp(buf.data(), want.data(), len) != 0)
                        out.fail(seed, round, "key " + std::to_string(k) + " holds other bytes");
                } else if (g != -ENOENT || acked[k]) {
                    out.fail(seed, round, "acknowledged key " + std::to_string(k) +
                                              " is missing (" + std::to_string(g) + ")");
                }
            }
            // At most the one put in flight beyond the acknowledged ones.
            if (present > acks + 1)
                out.fail(seed, round, std::to_string(present) + " keys present, " +
                                          std::to_string(acks) + " acknowledged");
            daxkv_close(s);
        }
    }
    if (verbose)
        std::printf("round %" PRIu64 ": %s, killed %s (%" PRIu64 " us), %s, %u acks: %s\n",
                    round, durability_of(round), late ? "after the open" : "from the open",
                    delay_us, exists ? "arena left" : "nothing left", acks,
                    out.ok ? "ok" : "FAILED");
    ::unlink(path.c_str());
    return out.ok;
}

} // namespace

int main(int argc, char **argv) {
    kill_test::Options opt;
    if (!kill_test::parse(argc, argv, opt))
        return 2;
    kill_test::WorkDir work;
    if (!work.make(opt, "daxkv-create-kill"))
        return 1;
    std::printf("create kill test: %" PRIu64 " rounds, seed %" PRIu64 ", directory %s\n",
                opt.rounds, opt.seed, work.path().c_str());
    std::fflush(stdout);
    uint64_t passed = 0, failed = 0, temporaries = 0;
    // The rounds that kill after the open learn how long an open takes;
    // until the first of them the kills come within 200 us.
    uint64_t longest_open_us = 0;
    const auto t0 = std::chrono::steady_clock::now();
    for (uint64_t r = 0; r < opt.rounds; ++r)
        (run_round(work.path(), opt.seed, r, longest_open_us, temporaries, opt.verbose)
             ? passed
             : failed)++;
    const double secs =
        std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
    work.remove();
    if (temporaries)
        std::printf("%" PRIu64 " hidden temporaries left by kills were removed (a file system "
                    "without O_TMPFILE)\n",
                    temporaries);
    if (failed)
        std::printf("create kill test FAILED with seed %" PRIu64
                    " (replay: tests/crash/create_kill_test --seed %" PRIu64 " --rounds %" PRIu64
                    ")\n",
                    opt.seed, opt.seed, opt.rounds);
    std::printf("%" PRIu64 " passed, %" PRIu64 " failed (%.1f s)\n", passed, failed, secs);
    return failed ? 1 : 0;
}
