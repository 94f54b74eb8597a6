// Shared pieces of the adversarial suite: the unit suite's fixtures (file
// arenas on tmpfs reached through a symlinked directory, RAII handles,
// self-describing values) plus a pool of file devices with hotplug on, a
// log capture, and helpers that run a piece of code in a child process (for
// calls that used to crash the process, and for other users).
#pragma once

#include <sched.h>
#include <sys/mount.h>
#include <sys/wait.h>

#include <algorithm>
#include <ctime>
#include <functional>
#include <initializer_list>
#include <mutex>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "../unit/helpers.hpp"

// ThreadSanitizer cannot follow a fork of a process that has threads: the
// child's new threads clash with the parent's dead ones ("dup thread").
// Under TSan the scenarios run in this process instead, and those that need
// a process of their own (a private mount, another user) are skipped.
#if defined(__SANITIZE_THREAD__)
#define ADV_IN_PROCESS 1
#elif defined(__has_feature)
#if __has_feature(thread_sanitizer)
#define ADV_IN_PROCESS 1
#endif
#endif

namespace adv {

using namespace daxkv_test;

#ifdef ADV_IN_PROCESS
constexpr bool kForks = false;
#else
constexpr bool kForks = true;
#endif

// TSan intercepts sigaction and memcpy: a SIGBUS inside a guarded copy
// cannot be recovered under it (as in the unit suite's Faults tests).
#define SKIP_SIGBUS_UNDER_TSAN()                                                           \
    do {                                                                                   \
        if (!::adv::kForks)                                                                \
            GTEST_SKIP() << "SIGBUS recovery is not testable under TSan";                 \
    } while (0)
using json = nlohmann::json;

constexpr uint64_t kSlot = 4096;

// Run fn in a forked child; returns its exit status, or 128 + the signal
// that killed it. A crash of the child is a test failure, not the suite's.
inline int in_child(const std::function<int()> &fn) {
    if (!kForks) {
        int rc = fn() & 0x7f;
        ::alarm(0);
        return rc;
    }
    pid_t pid = ::fork();
    if (pid < 0)
        return -1;
    if (pid == 0) {
        int rc = 0;
        try {
            rc = fn();
        } catch (...) {
            rc = 99;
        }
        ::_exit(rc & 0x7f);
    }
    int st = 0;
    ::waitpid(pid, &st, 0);
    if (WIFSIGNALED(st))
        return 128 + WTERMSIG(st);
    return WEXITSTATUS(st);
}

// Run fn in a forked child and return what it returns ("" for success),
// or what killed it. For scenarios that may crash the process (the bugs
// they guard against did) or that change the child's namespaces or user.
inline std::string child_check(const std::function<std::string()> &fn) {
    if (!kForks) {
        std::string msg;
        try {
            msg = fn();
        } catch (const std::exception &e) {
            msg = std::string("exception: ") + e.what();
        }
        ::alarm(0); // a scenario's guard against a hang
        return msg;
    }
    int p[2];
    if (::pipe(p) != 0)
        return "pipe failed";
    pid_t pid = ::fork();
    if (pid < 0)
        return "fork failed";
    if (pid == 0) {
        ::close(p[0]);
        std::string msg;
        try {
            msg = fn();
        } catch (const std::exception &e) {
            msg = std::string("exception: ") + e.what();
        }
        size_t off = 0;
        while (off < msg.size()) {
            ssize_t w = ::write(p[1], msg.data() + off, msg.size() - off);
            if (w <= 0)
                break;
            off += static_cast<size_t>(w);
        }
        ::_exit(msg.empty() ? 0 : 1);
    }
    ::close(p[1]);
    std::string out;
    char buf[512];
    ssize_t n;
    while ((n = ::read(p[0], buf, sizeof buf)) > 0)
        out.append(buf, static_cast<size_t>(n));
    ::close(p[0]);
    int st = 0;
    ::waitpid(pid, &st, 0);
    if (WIFSIGNALED(st))
        return out + "[child killed by signal " + std::to_string(WTERMSIG(st)) + " (" +
               strsignal(WTERMSIG(st)) + ")]";
    if (WEXITSTATUS(st) != 0 && out.empty())
        return "child exited with status " + std::to_string(WEXITSTATUS(st));
    return out;
}

// A private tmpfs of `bytes` mounted on dir, in a mount namespace of this
// process alone (call it in a child: the mount goes with the process).
// Returns "" or why it could not be made.
inline std::string private_tmpfs(const std::string &dir, uint64_t bytes) {
    if (::unshare(CLONE_NEWNS) != 0)
        return std::string("unshare: ") + std::strerror(errno);
    if (::mount(nullptr, "/", nullptr, MS_REC | MS_PRIVATE, nullptr) != 0)
        return std::string("mount --make-rprivate /: ") + std::strerror(errno);
    std::string opts = "size=" + std::to_string(bytes);
    if (::mount("tmpfs", dir.c_str(), "tmpfs", 0, opts.c_str()) != 0)
        return std::string("mount tmpfs: ") + std::strerror(errno);
    return "";
}

// Whether this process may make private mounts (root in the initial user
// namespace, usually); tests that need a small file system skip otherwise.
inline bool can_mount_tmpfs() {
    if (!kForks)
        return false; // the mount would be this process's
    static int known = -1;
    if (known < 0) {
        TempDir d;
        known = child_check([&] { return private_tmpfs(d.path(), 1 << 20); }).empty() ? 1 : 0;
    }
    return known == 1;
}

// A configuration with slot_bytes kSlot (unless opts sets it), two workers,
// the given keys and devices.
inline ConfigPtr config(const std::vector<std::pair<std::string, std::string>> &opts,
                        const std::vector<std::pair<std::string, uint64_t>> &devices) {
    daxkv_config *raw = nullptr;
    EXPECT_EQ(daxkv_config_new(&raw), 0);
    ConfigPtr cfg(raw);
    bool slot_set = false;
    for (auto &kv : opts)
        slot_set = slot_set || kv.first == "slot_bytes";
    if (!slot_set) {
        EXPECT_EQ(daxkv_config_set(raw, "slot_bytes", std::to_string(kSlot).c_str()), 0);
    }
    EXPECT_EQ(daxkv_config_set(raw, "workers", "2"), 0);
    for (auto &kv : opts)
        EXPECT_EQ(daxkv_config_set(raw, kv.first.c_str(), kv.second.c_str()), 0)
            << kv.first << "=" << kv.second << ": " << daxkv_errmsg();
    for (auto &d : devices)
        EXPECT_EQ(daxkv_config_add_device(raw, d.first.c_str(), d.second), 0) << daxkv_errmsg();
    return cfg;
}

inline uint64_t dev_bytes_for(uint32_t slots) { return arena_bytes_for(kSlot, slots, 256); }

// Key i's value, version v: self-describing, so a wrong or torn value is caught.
inline std::vector<uint8_t> val(uint32_t i, uint64_t version = 1) {
    return versioned_value(i, version, 512 + (i * 97) % 3000);
}

// "" when key i of s reads back as `version` (0: absent), else what is wrong.
inline std::string check_key(daxkv_store *s, uint32_t i, uint64_t version) {
    std::string k = key_of(i);
    std::vector<uint8_t> buf(kSlot);
    size_t len = 0;
    int rc = daxkv_get(s, k.data(), k.size(), buf.data(), buf.size(), &len);
    if (version == 0)
        return rc == -ENOENT ? "" : "key " + std::to_string(i) + " present (get " +
                                        std::to_string(rc) + "), expected absent";
    if (rc)
        return "get " + k + ": " + std::to_string(rc) + " " + daxkv_errmsg();
    std::string bad = check_versioned(i, buf.data(), len);
    if (!bad.empty())
        return bad;
    ValueHeader h;
    std::memcpy(&h, buf.data(), sizeof h);
    return h.version == version ? ""
                                : "key " + std::to_string(i) + " reads version " +
                                      std::to_string(h.version) + ", expected " +
                                      std::to_string(version);
}

// "" when keys [from, to) of s all read back as `version`, else what is wrong
// with each, every one followed by "; ".
inline std::string check_keys(daxkv_store *s, uint32_t from, uint32_t to, uint64_t version) {
    std::string out;
    for (uint32_t i = from; i < to; ++i) {
        std::string bad = check_key(s, i, version);
        if (!bad.empty())
            out += bad + "; ";
    }
    return out;
}

inline int put_key(daxkv_store *s, uint32_t i, uint64_t version, unsigned flags = 0) {
    std::string k = key_of(i);
    auto v = val(i, version);
    return daxkv_put(s, k.data(), k.size(), v.data(), v.size(), flags);
}

inline json pool_status(daxkv_store *s) {
    size_t need = 0;
    int rc = daxkv_pool_status_json(s, nullptr, 0, &need);
    EXPECT_EQ(rc, -ENOBUFS) << daxkv_errmsg();
    std::string buf;
    do {
        buf.assign(need, '\0');
        rc = daxkv_pool_status_json(s, &buf[0], buf.size(), &need);
    } while (rc == -ENOBUFS);
    EXPECT_EQ(rc, 0) << daxkv_errmsg();
    return rc == 0 ? json::parse(buf.c_str()) : json();
}

inline json store_status(daxkv_store *s) {
    size_t need = 0;
    int rc = daxkv_status_json(s, nullptr, 0, &need);
    EXPECT_EQ(rc, -ENOBUFS) << daxkv_errmsg();
    std::string buf;
    do {
        buf.assign(need, '\0');
        rc = daxkv_status_json(s, &buf[0], buf.size(), &need);
    } while (rc == -ENOBUFS);
    EXPECT_EQ(rc, 0) << daxkv_errmsg();
    return rc == 0 ? json::parse(buf.c_str()) : json();
}

// The seed of a random model test: $env_name when set (a failure's seed
// replays it), else one of this run, printed either way.
inline uint64_t model_seed(const char *env_name, const char *what) {
    uint64_t seed;
    if (const char *e = std::getenv(env_name))
        seed = std::strtoull(e, nullptr, 10);
    else
        seed = static_cast<uint64_t>(::getpid()) * 2654435761u +
               static_cast<uint64_t>(::time(nullptr));
    std::printf("%s seed %llu (%s=%llu replays)\n", what, static_cast<unsigned long long>(seed),
                env_name, static_cast<unsigned long long>(seed));
    return seed;
}

// An unexpected return code of a model step ("" when rc is one of codes):
// what was done, rc and the library's message.
inline std::string unexpected_code(const char *what, int rc, std::initializer_list<int> codes) {
    for (int c : codes)
        if (rc == c)
            return "";
    return std::string(what) + " returned " + std::to_string(rc) + " (" + daxkv_errmsg() + ")";
}

inline daxkv_hotplug_result result() {
    daxkv_hotplug_result r;
    std::memset(&r, 0xAB, sizeof r);
    r.struct_size = sizeof r;
    return r;
}

// A store, hotplug on, over one file device of `slots` slots at each of
// paths (created or reused as they are).
inline StorePtr open_hotplug_pool(const std::vector<std::string> &paths, uint32_t slots,
                                  std::vector<std::pair<std::string, std::string>> opts = {}) {
    std::vector<std::pair<std::string, uint64_t>> devs;
    for (auto &p : paths)
        devs.emplace_back(p, dev_bytes_for(slots));
    opts.emplace_back("hotplug", "1");
    ConfigPtr cfg = config(opts, devs);
    daxkv_store *s = nullptr;
    int rc = daxkv_open(&s, cfg.get());
    EXPECT_EQ(rc, 0) << daxkv_errmsg();
    return StorePtr(rc == 0 ? s : nullptr);
}

// The keys (of 0..n-1) whose entries lie on device row d: a lease of such a
// key borrows one slot of that device.
inline std::vector<uint32_t> keys_on(daxkv_store *s, uint32_t n, size_t d) {
    std::vector<uint32_t> out;
    for (uint32_t i = 0; i < n; ++i) {
        std::string k = key_of(i);
        daxkv_lease *l = nullptr;
        if (daxkv_lease_acquire(s, k.data(), k.size(), &l) != 0)
            continue;
        uint64_t b = pool_status(s)["devices"][d]["borrowed_slot_count"];
        daxkv_lease_release(l);
        if (b == 1)
            out.push_back(i);
    }
    return out;
}

// A fixture that opens pools of fresh file devices in a directory of its own.
class PoolFixture : public ::testing::Test {
protected:
    explicit PoolFixture(std::string name_prefix) : name_prefix_(std::move(name_prefix)) {}

    // A pool of n file devices of `slots` slots each, hotplug on; paths_
    // names them. Each call opens devices of its own (a scenario may follow
    // another one that left its devices changed). The names carry the pid
    // as well as the count: a scenario in a forked child counts its pools in
    // its own copy of pools_, and its devices stay in dir_ after it exits,
    // so the parent's next pool must not take the same names.
    StorePtr open_pool(uint32_t n, uint32_t slots,
                       std::vector<std::pair<std::string, std::string>> opts = {}) {
        paths_.clear();
        const std::string prefix =
            name_prefix_ + std::to_string(::getpid()) + "-" + std::to_string(pools_++) + "-";
        for (uint32_t i = 0; i < n; ++i)
            paths_.push_back(dir_.file(prefix + "dev" + std::to_string(i)));
        return open_hotplug_pool(paths_, slots, std::move(opts));
    }

    TempDir dir_;
    std::vector<std::string> paths_;
    int pools_ = 0;

private:
    std::string name_prefix_;
};

} // namespace adv
