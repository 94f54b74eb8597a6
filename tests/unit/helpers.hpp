// Shared fixtures of the unit suite: temporary directories, stores opened on
// small file arenas through the C API, RAII wrappers for the C handles,
// patterned and self-describing byte buffers, file inspection and damage
// helpers, and counters of open file descriptors and mappings.
//
// Arena files live on tmpfs (/dev/shm) for speed, but are reached through a
// symlinked directory under $TMPDIR (or /tmp): the library refuses to create
// or open a regular-file arena whose path is under /dev, by design.
//
// DAXKV_TEST_DEVICE=/dev/daxX.Y runs every fixture's store on that Device-DAX
// device instead of a file (the QEMU rig does this with a 4 KiB-aligned
// /dev/dax0.0). Each test starts from a wiped superblock area, so the device
// is formatted afresh; the few tests about regular files as such (creating,
// truncating, rewriting them) skip with FILE_ARENA_ONLY().
#pragma once

#include <gtest/gtest.h>

#include <algorithm>
#include <cerrno>
#include <chrono>
#include <climits>
#include <csignal>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <fstream>
#include <functional>
#include <memory>
#include <mutex>
#include <sstream>
#include <stdexcept>
#include <string>
#include <thread>
#include <utility>
#include <vector>

#include <dirent.h>
#include <fcntl.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "arena/arena.hpp"
#include "arena/format.hpp"
#include "daxkv.h"

namespace daxkv_test {

// ---------------------------------------------------------------------------
// Files and directories

// The entries of a directory (names), for "nothing created".
inline std::vector<std::string> list_dir(const std::string &dir) {
    std::vector<std::string> out;
    if (DIR *d = ::opendir(dir.c_str())) {
        while (struct dirent *de = ::readdir(d)) {
            std::string n = de->d_name;
            if (n != "." && n != "..")
                out.push_back(n);
        }
        ::closedir(d);
    }
    std::sort(out.begin(), out.end());
    return out;
}

// Runs body in a child forked now and returns what the child reported:
// "" when every check held, else the first failure; "hung" when it did not
// exit within the given seconds (it is killed then).
inline std::string in_forked_child(const std::function<std::string()> &body, int seconds = 20) {
    int pipe_fd[2];
    if (::pipe(pipe_fd) != 0)
        return "pipe failed";
    const pid_t child = ::fork();
    if (child == 0) {
        ::close(pipe_fd[0]);
        std::string failure = body();
        if (failure.empty())
            failure = "ok";
        ssize_t w = ::write(pipe_fd[1], failure.data(), failure.size());
        ::_exit(w == static_cast<ssize_t>(failure.size()) ? 0 : 1);
    }
    ::close(pipe_fd[1]);
    std::string report;
    const auto until = std::chrono::steady_clock::now() + std::chrono::seconds(seconds);
    int status = 0;
    bool exited = false;
    while (std::chrono::steady_clock::now() < until) {
        if (::waitpid(child, &status, WNOHANG) == child) {
            exited = true;
            break;
        }
        std::this_thread::sleep_for(std::chrono::milliseconds(10));
    }
    if (!exited) {
        ::kill(child, SIGKILL);
        ::waitpid(child, &status, 0);
        ::close(pipe_fd[0]);
        return "hung";
    }
    char buf[512];
    ssize_t n;
    while ((n = ::read(pipe_fd[0], buf, sizeof buf)) > 0)
        report.append(buf, static_cast<size_t>(n));
    ::close(pipe_fd[0]);
    return report == "ok" ? "" : report.empty() ? "no report" : report;
}

inline void remove_tree(const std::string &path) {
    struct stat st;
    if (::lstat(path.c_str(), &st) != 0)
        return;
    if (S_ISDIR(st.st_mode)) {
        if (DIR *d = ::opendir(path.c_str())) {
            while (struct dirent *de = ::readdir(d)) {
                std::string n = de->d_name;
                if (n != "." && n != "..")
                    remove_tree(path + "/" + n);
            }
            ::closedir(d);
        }
        ::rmdir(path.c_str());
    } else {
        ::unlink(path.c_str());
    }
}

// A private directory, removed with everything in it at destruction.
class TempDir {
public:
    TempDir() {
        const char *tmp = std::getenv("TMPDIR");
        std::string base = tmp && *tmp ? tmp : "/tmp";
        std::string tmpl = base + "/daxkv-unit-XXXXXX";
        std::vector<char> buf(tmpl.begin(), tmpl.end());
        buf.push_back('\0');
        // Prefer tmpfs for the bytes; keep a path outside /dev for the API.
        std::string shm_tmpl = "/dev/shm/daxkv-unit-XXXXXX";
        std::vector<char> sbuf(shm_tmpl.begin(), shm_tmpl.end());
        sbuf.push_back('\0');
        if (::mkdtemp(sbuf.data())) {
            real_ = sbuf.data();
            // mkdtemp for a unique name, then swap the directory for a link.
            if (::mkdtemp(buf.data()) && ::rmdir(buf.data()) == 0 &&
                ::symlink(real_.c_str(), buf.data()) == 0) {
                path_ = buf.data();
                link_ = path_;
                return;
            }
            remove_tree(real_);
            real_.clear();
        }
        std::vector<char> again(tmpl.begin(), tmpl.end());
        again.push_back('\0');
        if (!::mkdtemp(again.data()))
            throw std::runtime_error(std::string("mkdtemp: ") + std::strerror(errno));
        path_ = again.data();
        real_ = path_;
    }
    ~TempDir() {
        remove_tree(real_);
        if (!link_.empty())
            ::unlink(link_.c_str());
    }
    TempDir(const TempDir &) = delete;
    TempDir &operator=(const TempDir &) = delete;

    // The path the library is given (never under /dev).
    const std::string &path() const { return path_; }
    std::string file(const std::string &name) const { return path_ + "/" + name; }
    // The same file as /proc/self/{fd,maps} name it (symlinks resolved).
    std::string real_file(const std::string &name) const { return real_ + "/" + name; }

private:
    std::string path_, real_, link_;
};

// The Device-DAX device the suite runs on, or null for file arenas.
inline const char *test_device() {
    const char *d = std::getenv("DAXKV_TEST_DEVICE");
    return d && *d ? d : nullptr;
}

#define FILE_ARENA_ONLY()                                                                  \
    do {                                                                                   \
        if (::daxkv_test::test_device())                                                   \
            GTEST_SKIP() << "about regular files as such; DAXKV_TEST_DEVICE is set";       \
    } while (0)

inline bool is_char_device(const std::string &path) {
    struct stat st;
    return ::stat(path.c_str(), &st) == 0 && S_ISCHR(st.st_mode);
}

inline bool file_exists(const std::string &path) {
    struct stat st;
    return ::lstat(path.c_str(), &st) == 0;
}

inline std::string read_file(const std::string &path) {
    std::ifstream in(path, std::ios::binary);
    std::ostringstream ss;
    ss << in.rdbuf();
    return ss.str();
}

// A file's size, or UINT64_MAX when it cannot be read.
inline uint64_t file_size(const std::string &path) {
    struct stat st;
    return ::stat(path.c_str(), &st) == 0 ? static_cast<uint64_t>(st.st_size) : UINT64_MAX;
}

inline void write_file(const std::string &path, const std::string &bytes) {
    std::ofstream out(path, std::ios::binary | std::ios::trunc);
    out.write(bytes.data(), static_cast<std::streamsize>(bytes.size()));
}

// A second, independent MAP_SHARED mapping of an arena file (all of it) or
// of the first device_bytes of a Device-DAX device (whose fstat size is 0):
// writes through it land in the same memory the store's mapping reads.
class FileMap {
public:
    explicit FileMap(const std::string &path, size_t device_bytes = 2 << 20) {
        fd_ = ::open(path.c_str(), O_RDWR | O_CLOEXEC);
        if (fd_ < 0)
            return;
        struct stat st;
        if (::fstat(fd_, &st) != 0)
            return;
        if (S_ISCHR(st.st_mode))
            size_ = (device_bytes + 4095) / 4096 * 4096;
        else
            size_ = static_cast<size_t>(st.st_size);
        if (size_ == 0)
            return;
        void *p = ::mmap(nullptr, size_, PROT_READ | PROT_WRITE, MAP_SHARED, fd_, 0);
        if (p != MAP_FAILED)
            base_ = static_cast<char *>(p);
    }
    ~FileMap() {
        if (base_)
            ::munmap(base_, size_);
        if (fd_ >= 0)
            ::close(fd_);
    }
    FileMap(const FileMap &) = delete;
    FileMap &operator=(const FileMap &) = delete;
    bool ok() const { return base_ != nullptr; }
    char *base() const { return base_; }
    size_t size() const { return size_; }

private:
    int fd_ = -1;
    char *base_ = nullptr;
    size_t size_ = 0;
};

// FNV-1a over a whole file, or over the first device_bytes of a device: a
// cheap fingerprint for "left untouched".
inline uint64_t file_hash(const std::string &path, size_t device_bytes = 2 << 20) {
    std::string s;
    if (is_char_device(path)) {
        FileMap fm(path, device_bytes);
        if (fm.ok())
            s.assign(fm.base(), fm.size());
    } else {
        s = read_file(path);
    }
    uint64_t h = 1469598103934665603ull;
    for (unsigned char c : s) {
        h ^= c;
        h *= 1099511628211ull;
    }
    return h ^ s.size();
}

// Zero the superblock area of a device so that the next open formats it, as
// a new file would be (arena::Arena::format also clears the old slot
// headers' commit words).
inline void wipe_device_superblocks(const std::string &path) {
    FileMap fm(path, daxkv::arena::kHeaderOffset);
    if (!fm.ok())
        throw std::runtime_error("cannot map " + path + " to wipe it: " + std::strerror(errno));
    std::memset(fm.base(), 0, daxkv::arena::kHeaderOffset);
}

// ---------------------------------------------------------------------------
// Process resources

// Open file descriptors of this process.
inline int count_fds() {
    int n = 0;
    if (DIR *d = ::opendir("/proc/self/fd")) {
        while (struct dirent *de = ::readdir(d))
            if (de->d_name[0] != '.')
                ++n;
        ::closedir(d);
        --n; // the directory stream's own fd
    }
    return n;
}

// Open file descriptors that refer to path (as the kernel names it).
inline int count_fds_to(const std::string &real_path) {
    int n = 0;
    if (DIR *d = ::opendir("/proc/self/fd")) {
        while (struct dirent *de = ::readdir(d)) {
            if (de->d_name[0] == '.')
                continue;
            char target[PATH_MAX];
            std::string link = std::string("/proc/self/fd/") + de->d_name;
            ssize_t len = ::readlink(link.c_str(), target, sizeof target - 1);
            if (len > 0) {
                target[len] = '\0';
                if (real_path == target)
                    ++n;
            }
        }
        ::closedir(d);
    }
    return n;
}

// Lines of /proc/self/maps, optionally only those mapping a given file.
inline int count_maps(const std::string &real_path = std::string()) {
    std::ifstream in("/proc/self/maps");
    std::string line;
    int n = 0;
    while (std::getline(in, line)) {
        if (real_path.empty()) {
            ++n;
            continue;
        }
        size_t pos = line.find('/');
        if (pos != std::string::npos && line.compare(pos, std::string::npos, real_path) == 0)
            ++n;
    }
    return n;
}

// ---------------------------------------------------------------------------
// RAII for the C handles

struct ConfigFree {
    void operator()(daxkv_config *c) const { daxkv_config_free(c); }
};
struct StoreClose {
    void operator()(daxkv_store *s) const { daxkv_close(s); }
};
struct LeaseRelease {
    void operator()(daxkv_lease *l) const { daxkv_lease_release(l); }
};
struct ReservationAbort {
    void operator()(daxkv_reservation *r) const { daxkv_abort(r); }
};
using ConfigPtr = std::unique_ptr<daxkv_config, ConfigFree>;
using StorePtr = std::unique_ptr<daxkv_store, StoreClose>;
using LeasePtr = std::unique_ptr<daxkv_lease, LeaseRelease>;
using ReservationPtr = std::unique_ptr<daxkv_reservation, ReservationAbort>;

// ---------------------------------------------------------------------------
// Stores on file arenas

struct StoreSpec {
    StoreSpec() = default;
    StoreSpec(uint64_t slot, uint32_t n, uint32_t meta = 256)
        : slot_bytes(slot), slots(n), meta_bytes(meta) {}

    uint64_t slot_bytes = 4096;
    uint32_t slots = 4;
    uint32_t meta_bytes = 256;
    uint64_t arena_bytes = 0; // 0: exactly `slots` slots
    // Further daxkv_config_set keys, applied in order (workers defaults to 2
    // so that the copy engine's pool is exercised but stays small).
    std::vector<std::pair<std::string, std::string>> opts;

    StoreSpec &set(const std::string &k, const std::string &v) {
        opts.emplace_back(k, v);
        return *this;
    }
};

// The arena size that holds exactly `slots` slots (small arenas align the
// payloads to a page; see arena::compute_layout).
inline uint64_t arena_bytes_for(uint64_t slot_bytes, uint32_t slots, uint32_t meta_bytes) {
    uint64_t hdr = daxkv::arena::header_bytes_for(meta_bytes);
    uint64_t data_off = (daxkv::arena::kHeaderOffset + slots * hdr + 4095) / 4096 * 4096;
    return data_off + slots * slot_bytes;
}

inline uint64_t spec_arena_bytes(const StoreSpec &spec) {
    return spec.arena_bytes ? spec.arena_bytes
                            : arena_bytes_for(spec.slot_bytes, spec.slots, spec.meta_bytes);
}

// Build a configuration for spec on path; returns the first failing code.
inline int make_config(ConfigPtr *out, const std::string &path, const StoreSpec &spec) {
    daxkv_config *raw = nullptr;
    int rc = daxkv_config_new(&raw);
    if (rc)
        return rc;
    ConfigPtr cfg(raw);
    rc = daxkv_config_set(cfg.get(), "slot_bytes", std::to_string(spec.slot_bytes).c_str());
    if (!rc)
        rc = daxkv_config_set(cfg.get(), "meta_bytes", std::to_string(spec.meta_bytes).c_str());
    if (!rc)
        rc = daxkv_config_set(cfg.get(), "workers", "2");
    for (const auto &kv : spec.opts)
        if (!rc)
            rc = daxkv_config_set(cfg.get(), kv.first.c_str(), kv.second.c_str());
    if (!rc)
        rc = daxkv_config_add_device(cfg.get(), path.c_str(), spec_arena_bytes(spec));
    if (!rc)
        *out = std::move(cfg);
    return rc;
}

inline int open_store(StorePtr *out, const std::string &path, const StoreSpec &spec) {
    ConfigPtr cfg;
    int rc = make_config(&cfg, path, spec);
    if (rc)
        return rc;
    daxkv_store *s = nullptr;
    rc = daxkv_open(&s, cfg.get());
    if (rc == 0)
        out->reset(s);
    else if (s)
        ADD_FAILURE() << "daxkv_open failed with " << rc << " but set *out";
    return rc;
}

inline struct daxkv_stats get_stats(daxkv_store *s) {
    struct daxkv_stats st;
    std::memset(&st, 0, sizeof st);
    st.struct_size = sizeof st;
    int rc = daxkv_stats(s, &st);
    EXPECT_EQ(rc, 0) << daxkv_errmsg();
    return st;
}

// ---------------------------------------------------------------------------
// Bytes

inline uint64_t splitmix64(uint64_t &x) {
    uint64_t z = (x += 0x9e3779b97f4a7c15ull);
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
    return z ^ (z >> 31);
}

// len bytes of a pattern determined by seed.
inline std::vector<uint8_t> pattern(uint64_t seed, size_t len) {
    std::vector<uint8_t> v(len);
    uint64_t x = seed * 0x2545f4914f6cdd1dull + 1;
    size_t i = 0;
    for (; i + 8 <= len; i += 8) {
        uint64_t r = splitmix64(x);
        std::memcpy(&v[i], &r, 8);
    }
    if (i < len) {
        uint64_t r = splitmix64(x);
        std::memcpy(&v[i], &r, len - i);
    }
    return v;
}

inline std::string key_of(uint64_t i) { return "key-" + std::to_string(i); }

// Self-describing values: a header naming the key and the version, then a
// pattern derived from both. A reader can tell whether a buffer is exactly
// some put of a given key.
struct ValueHeader {
    uint32_t magic;
    uint32_t key_id;
    uint64_t version;
    uint64_t len;
};
constexpr uint32_t kValueMagic = 0x5641554c; // "VALU"

inline std::vector<uint8_t> versioned_value(uint32_t key_id, uint64_t version, size_t len) {
    if (len < sizeof(ValueHeader))
        len = sizeof(ValueHeader);
    std::vector<uint8_t> v = pattern((uint64_t(key_id) << 32) ^ version ^ 0xabcdef, len);
    ValueHeader h{kValueMagic, key_id, version, len};
    std::memcpy(v.data(), &h, sizeof h);
    return v;
}

// Empty string if buf is exactly some versioned_value(key_id, *, len),
// otherwise what is wrong with it.
inline std::string check_versioned(uint32_t key_id, const void *buf, size_t len) {
    if (len < sizeof(ValueHeader))
        return "value of " + std::to_string(len) + " bytes is shorter than its header";
    ValueHeader h;
    std::memcpy(&h, buf, sizeof h);
    if (h.magic != kValueMagic)
        return "bad magic";
    if (h.key_id != key_id)
        return "value of key " + std::to_string(h.key_id) + " returned for key " +
               std::to_string(key_id);
    if (h.len != len)
        return "length " + std::to_string(len) + " but header says " + std::to_string(h.len);
    std::vector<uint8_t> want = versioned_value(key_id, h.version, len);
    if (std::memcmp(want.data(), buf, len) != 0)
        return "torn or mixed bytes in version " + std::to_string(h.version);
    return std::string();
}

inline bool contains_text(const char *haystack, const std::string &needle) {
    return haystack && std::string(haystack).find(needle) != std::string::npos;
}

// The library's log messages, captured while an instance lives (one at a
// time: the callback is process-wide); logged() looks for one.
class LogCapture {
public:
    LogCapture() {
        std::lock_guard<std::mutex> g(m());
        lines().clear();
        daxkv_set_log_fn(&LogCapture::fn, DAXKV_LOG_DEBUG, nullptr);
    }
    ~LogCapture() { daxkv_set_log_fn(nullptr, 0, nullptr); }
    static bool logged(const std::string &needle) {
        std::lock_guard<std::mutex> g(m());
        for (auto &l : lines())
            if (l.find(needle) != std::string::npos)
                return true;
        return false;
    }

private:
    static std::mutex &m() {
        static std::mutex mu;
        return mu;
    }
    static std::vector<std::string> &lines() {
        static std::vector<std::string> v;
        return v;
    }
    static void fn(int, const char *msg, void *) {
        std::lock_guard<std::mutex> g(m());
        lines().push_back(msg);
    }
};

// ---------------------------------------------------------------------------
// A test with a temporary directory and (once open() is called) a store on a
// file arena in it.
class StoreFixture : public ::testing::Test {
protected:
    void open(const StoreSpec &spec = StoreSpec()) {
        spec_ = spec;
        store_.reset();
        int rc = open_store(&store_, path_, spec);
        ASSERT_EQ(rc, 0) << daxkv_errmsg();
    }
    void reopen(const StoreSpec &spec) {
        store_.reset();
        open(spec);
    }
    daxkv_store *s() const { return store_.get(); }

    int put(const std::string &k, const std::vector<uint8_t> &v, unsigned flags = 0) {
        return daxkv_put(s(), k.data(), k.size(), v.data(), v.size(), flags);
    }
    // Get into a buffer of the slot's size; out holds exactly the value.
    int get(const std::string &k, std::vector<uint8_t> *out) {
        std::vector<uint8_t> buf(spec_.slot_bytes + 1, 0xEE);
        size_t len = SIZE_MAX;
        int rc = daxkv_get(s(), k.data(), k.size(), buf.data(), buf.size(), &len);
        if (rc == 0) {
            EXPECT_LE(len, spec_.slot_bytes);
            buf.resize(len);
            *out = std::move(buf);
        }
        return rc;
    }
    // The value of k, expected present.
    std::vector<uint8_t> value(const std::string &k) {
        std::vector<uint8_t> v;
        int rc = get(k, &v);
        EXPECT_EQ(rc, 0) << "key " << k << ": " << daxkv_errmsg();
        return v;
    }
    int contains(const std::string &k) { return daxkv_contains(s(), k.data(), k.size()); }
    int remove(const std::string &k, unsigned flags = 0) {
        return daxkv_remove(s(), k.data(), k.size(), flags);
    }
    int pin(const std::string &k) { return daxkv_pin(s(), k.data(), k.size()); }
    int unpin(const std::string &k) { return daxkv_unpin(s(), k.data(), k.size()); }
    LeasePtr lease(const std::string &k, int *rc_out = nullptr) {
        daxkv_lease *l = nullptr;
        int rc = daxkv_lease_acquire(s(), k.data(), k.size(), &l);
        if (rc_out)
            *rc_out = rc;
        else
            EXPECT_EQ(rc, 0) << "lease " << k << ": " << daxkv_errmsg();
        return LeasePtr(l);
    }
    struct daxkv_stats stats() { return get_stats(s()); }
    // Nothing of a call that has returned is held: no write claimed, no
    // entry borrowed or leased, no key pinned. Removes the keys to see it.
    void expect_nothing_held(const std::vector<std::string> &keys, const std::string &when) {
        EXPECT_EQ(stats().slots_inflight, 0u) << when << ": a write stayed claimed";
        for (const auto &k : keys) {
            int rc = remove(k);
            EXPECT_TRUE(rc == 0 || rc == -ENOENT) << when << ": " << k << ": " << daxkv_errmsg();
        }
        struct daxkv_stats st = stats();
        EXPECT_EQ(st.slots_pending_free, 0u) << when << ": a borrow or lease was not ended";
        EXPECT_EQ(st.slots_used, 0u) << when;
    }

    StoreFixture() {
        if (test_device())
            wipe_device_superblocks(path_);
    }

    TempDir dir_;
    // The arena under test: a file in dir_, or the device of DAXKV_TEST_DEVICE.
    std::string path_ = test_device() ? test_device() : dir_.file("arena");
    std::string real_path_ = test_device() ? test_device() : dir_.real_file("arena");
    StoreSpec spec_;
    StorePtr store_;
};

} // namespace daxkv_test
