#include "store/stats_page.hpp"

#include <algorithm>
#include <cerrno>
#include <chrono>
#include <cinttypes>
#include <csignal>
#include <cstddef>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <memory>
#include <optional>
#include <thread>

#include <dirent.h>
#include <fcntl.h>
#include <sys/file.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include "internal/error.hpp"
#include "internal/threads.hpp"
#include "internal/util.hpp"

namespace daxkv {
namespace {

constexpr char kMagic[8] = {'D', 'A', 'X', 'K', 'V', 'S', 'T', 'P'};
constexpr uint32_t kVersion = 1;
// A page is a sparse file: only the bytes written take memory. At 32 KiB
// (earlier versions' size, the least a reader takes) a status of 64
// devices with long paths did not fit and was published as a note of its
// length; 1 MiB holds the largest a pool makes.
constexpr size_t kPageBytes = 1024 * 1024, kMinPageBytes = 32 * 1024;
constexpr size_t kStatsOffset = 4096, kStatsCap = 4096;
constexpr size_t kStatusOffset = kStatsOffset + kStatsCap;
constexpr size_t kStatusCap = kPageBytes - kStatusOffset;
// The status's room reserved with the page (a note of its length fits),
// and the steps in which more is reserved.
constexpr size_t kMinStatusBytes = 4096, kBlockBytes = 4096;
constexpr size_t kIdCap = 64;
// Header::held: the store holds an OFD read lock on the page (beside the
// shared flock that every publisher holds).
constexpr uint64_t kHeldOfd = 1;

// The first bytes of the page. Every field is 8-byte aligned and accessed
// with atomic loads and stores (the page is shared between processes).
struct Header {
    char magic[8];
    uint64_t version;
    uint64_t seq; // odd while a publication is being written
    uint64_t pid;
    uint64_t published_unix_ns;
    uint64_t stats_len;
    uint64_t status_len;
    char store_id[kIdCap];
    // kHeld* bits: the locks a reader may test without taking them. 0 in
    // the page of a publisher that holds only the flock (the page's bytes
    // past the fields a version writes are zero).
    uint64_t held;
    // The inode of the publisher's pid namespace (/proc/self/ns/pid); 0
    // where it could not be read, and in pages of earlier versions.
    uint64_t pid_ns;
};
static_assert(sizeof(Header) <= kStatsOffset, "the header fits before the stats");

uint64_t unix_ns() {
    return static_cast<uint64_t>(std::chrono::duration_cast<std::chrono::nanoseconds>(
                                     std::chrono::system_clock::now().time_since_epoch())
                                     .count());
}

// Word-wise atomic copies: a reader racing a writer through a mapping (as
// readers of earlier versions do) sees each word whole.
void store_words(char *dst, const char *src, size_t n) noexcept {
    size_t i = 0;
    for (; i + 8 <= n; i += 8) {
        uint64_t w;
        std::memcpy(&w, src + i, 8);
        __atomic_store_n(reinterpret_cast<uint64_t *>(dst + i), w, __ATOMIC_RELAXED);
    }
    if (i < n) {
        uint64_t w = 0;
        std::memcpy(&w, src + i, n - i);
        __atomic_store_n(reinterpret_cast<uint64_t *>(dst + i), w, __ATOMIC_RELAXED);
    }
}

// n bytes of fd at off. false when the file ends first: anyone who may
// write the page may also cut it short while it is being read.
bool read_at(int fd, void *dst, size_t n, off_t off) noexcept {
    char *p = static_cast<char *>(dst);
    while (n) {
        const ssize_t r = ::pread(fd, p, n, off);
        if (r < 0 && errno == EINTR)
            continue;
        if (r <= 0)
            return false;
        p += r;
        n -= static_cast<size_t>(r);
        off += r;
    }
    return true;
}

[[noreturn]] void cut_short(const std::string &name) {
    fail(-EPROTO, "%s is not a daxkv statistics page (it was cut short while being read)",
         name.c_str());
}

std::function<void(const std::string &)> sweep_hook;
std::function<void()> naming_lock_busy_hook;

// The statistics directory's naming lock, held (an exclusive flock of the
// directory itself: nothing is created for it) while a store gives or
// removes a page name, creates a page under a temporary name, or sweeps
// stale pages. Without it a sweep that had found a name stale could unlink
// it just after a live store had renamed its fresh page over it, and could
// unlink a page made under a temporary name before its store had locked
// it. The directory is shared by every user, so anyone may hold the lock:
// one not had within kNamingWait is gone without (the races above are back
// then; statistics are never a reason to hold a store up longer).
constexpr auto kNamingWait = std::chrono::milliseconds(250);

class NamingLock {
public:
    NamingLock() noexcept {
        try {
            fd_ = take(stats_dir());
        } catch (...) {
            // No memory for the path: gone without, as when it is held.
        }
    }
    ~NamingLock() {
        if (fd_ >= 0) {
            // Unlocked first: a child forked meanwhile shares the lock, and
            // would hold it for as long as it keeps the descriptor.
            (void)::flock(fd_, LOCK_UN);
            ::close(fd_);
        }
    }
    NamingLock(const NamingLock &) = delete;
    NamingLock &operator=(const NamingLock &) = delete;

private:
    // The directory's fd with the lock held, or -1.
    static int take(const std::string &dir) noexcept {
        const int fd = ::open(dir.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
        if (fd < 0)
            return -1;
        const auto until = std::chrono::steady_clock::now() + kNamingWait;
        while (::flock(fd, LOCK_EX | LOCK_NB) != 0) {
            if ((errno != EWOULDBLOCK && errno != EINTR) ||
                std::chrono::steady_clock::now() >= until) {
                ::close(fd);
                return -1;
            }
            if (naming_lock_busy_hook)
                naming_lock_busy_hook();
            std::this_thread::sleep_for(std::chrono::milliseconds(1));
        }
        return fd;
    }

    int fd_ = -1;
};

// The inode of this process's pid namespace, 0 where it cannot be read.
uint64_t pid_namespace() noexcept {
    struct stat st;
    return ::stat("/proc/self/ns/pid", &st) == 0 ? static_cast<uint64_t>(st.st_ino) : 0;
}

// A lock over the whole file, for fcntl.
struct flock whole_file(short type) noexcept {
    struct flock l;
    std::memset(&l, 0, sizeof l);
    l.l_type = type;
    l.l_whence = SEEK_SET;
    return l;
}

// Whether a store holds the page: it holds the page's locks until it
// closes. Where the page says its store holds an OFD lock, F_OFD_GETLK
// tests for it without taking anything. A flock can be tested only by
// taking it (an exclusive one is free only when no store holds its shared
// one), and a reader holding it for that test made every other reader
// testing the same dead store's page at that moment (or a store sweeping
// stale pages) take the reader's lock for the store's, and report the
// dead store's last numbers as a running store's.
//
// The locks belong to the page's open file description, which a child the
// store forked without exec shares (its copy of the descriptor, and its
// copy of the page's mapping, refer to it): after the store died they
// stayed held for as long as the child lived, and the dead store was
// reported running. So the publisher's pid is looked up too, where the
// reader shares its pid namespace (a pid means nothing in another).
bool page_held(int fd, const Header &h) noexcept {
    bool held;
    struct flock l = whole_file(F_WRLCK);
    if ((h.held & kHeldOfd) && ::fcntl(fd, F_OFD_GETLK, &l) == 0)
        held = l.l_type != F_UNLCK;
    else
        held = ::flock(fd, LOCK_EX | LOCK_NB) != 0;
    if (held && h.pid_ns != 0 && h.pid_ns == pid_namespace() && h.pid > 0 &&
        h.pid <= static_cast<uint64_t>(INT32_MAX) &&
        ::kill(static_cast<pid_t>(h.pid), 0) != 0 && errno == ESRCH)
        return false;
    return held;
}

std::string in_dir(const std::string &name) { return stats_dir() + "/" + name; }

} // namespace

std::string stats_dir() {
    const char *d = secure_getenv("DAXKV_STATS_DIR");
    return d && *d ? d : "/dev/shm";
}

std::string stats_page_name(const std::string &device_path) {
    if (device_path == "mem:")
        fail(-EINVAL, "\"mem:\" devices have no name another process could look up");
    struct stat st;
    if (::stat(device_path.c_str(), &st) != 0) {
        // A path that cannot name anything (a file where a directory
        // should be, a loop of links, a name too long) does not exist:
        // -ENOENT, as daxkv_stats_peek(3) says, with the cause.
        const int err = errno;
        if (err == ENOENT || err == ENOTDIR || err == ELOOP || err == ENAMETOOLONG)
            fail(-ENOENT, "cannot look up the statistics of %s: it does not exist (%s)",
                 device_path.c_str(), std::strerror(err));
        fail_errno(err, "cannot look up the statistics of " + device_path);
    }
    if (S_ISCHR(st.st_mode))
        return format("daxkv-stats.c%" PRIx64, static_cast<uint64_t>(st.st_rdev));
    return format("daxkv-stats.f%" PRIx64 ".%" PRIx64, static_cast<uint64_t>(st.st_dev),
                  static_cast<uint64_t>(st.st_ino));
}

StatsPage::StatsPage(const std::string &store_id) {
    // An unnamed file: it gets names only for the devices (name_device), so
    // nothing is left behind under another name if the process dies.
    // File systems without O_TMPFILE get a temporary name instead.
    fd_ = ::open(stats_dir().c_str(), O_TMPFILE | O_RDWR | O_CLOEXEC, 0644);
    // A temporary name is swept as stale until its flock is taken below.
    std::optional<NamingLock> naming;
    if (fd_ < 0) {
        naming.emplace();
        std::string tmpl = in_dir("daxkv-stats.new.XXXXXX");
        fd_ = ::mkostemp(&tmpl[0], O_CLOEXEC);
        if (fd_ < 0)
            fail_errno(errno, "cannot create a statistics page in " + stats_dir());
        tmp_name_ = tmpl;
    }
    fd_ = fd_above_standard_streams(fd_);
    // fchmod: readable by everyone who may look at the store's numbers;
    // the page holds counters, device paths and ids, never keys or values.
    // backed: the header, the counters and the status's first page are
    // given blocks before anything is written; a later status that finds no
    // room for its pages is published as a note of its length (publish).
    int e = 0;
    if (::fchmod(fd_, 0644) != 0 || ::ftruncate(fd_, kPageBytes) != 0 ||
        ::flock(fd_, LOCK_SH) != 0)
        e = errno;
    else if (!backed(kStatusOffset + kMinStatusBytes))
        e = errno;
    if (e != 0) {
        if (!tmp_name_.empty())
            ::unlink(tmp_name_.c_str());
        ::close(fd_);
        fail_errno(e, "cannot set up a statistics page in " + stats_dir());
    }
    void *p = ::mmap(nullptr, kPageBytes, PROT_READ | PROT_WRITE, MAP_SHARED, fd_, 0);
    if (p == MAP_FAILED) {
        e = errno;
        if (!tmp_name_.empty())
            ::unlink(tmp_name_.c_str());
        ::close(fd_);
        fail_errno(e, "cannot map a statistics page");
    }
    map_ = static_cast<char *>(p);
    auto *h = reinterpret_cast<Header *>(map_);
    std::memcpy(h->magic, kMagic, sizeof kMagic);
    h->version = kVersion;
    h->pid = static_cast<uint64_t>(::getpid());
    h->pid_ns = pid_namespace();
    std::strncpy(h->store_id, store_id.c_str(), kIdCap - 1);
    // Taken after the flock: a reader that finds the OFD lock flagged but
    // not held knows the store is gone. Without OFD locks (a kernel before
    // 3.15), readers test the flock alone.
    struct flock l = whole_file(F_RDLCK);
    if (::fcntl(fd_, F_OFD_SETLK, &l) == 0)
        h->held = kHeldOfd;
}

StatsPage::~StatsPage() {
    // Only a page with names to remove waits for the naming lock.
    std::optional<NamingLock> naming;
    if (!names_.empty() || !tmp_name_.empty())
        naming.emplace();
    for (const auto &n : names_)
        if (is_ours(n.name))
            ::unlink(n.name.c_str());
    if (map_)
        ::munmap(map_, kPageBytes);
    if (!tmp_name_.empty())
        ::unlink(tmp_name_.c_str());
    if (fd_ >= 0) {
        // Drops the locks: a name still left is stale from here on.
        // Unlocked first, as a child forked meanwhile shares them (Mapping
        // does the same).
        struct flock l = whole_file(F_UNLCK);
        (void)::fcntl(fd_, F_OFD_SETLK, &l);
        (void)::flock(fd_, LOCK_UN);
        ::close(fd_);
    }
}

void StatsPage::name_device(const std::string &device_path) {
    if (device_path == "mem:")
        return;
    const std::string name = in_dir(stats_page_name(device_path));
    // Made before the page gets the name, so that keeping it cannot fail.
    Name given{device_path, name};
    names_.reserve(names_.size() + 1);
    // Linked under the temporary name's directory first, then renamed over
    // the name: a stale page of a store that died is replaced atomically.
    const std::string staging = name + ".new";
    NamingLock naming;
    ::unlink(staging.c_str());
    const std::string self = tmp_name_.empty() ? "/proc/self/fd/" + std::to_string(fd_) : tmp_name_;
    if (::linkat(AT_FDCWD, self.c_str(), AT_FDCWD, staging.c_str(),
                 tmp_name_.empty() ? AT_SYMLINK_FOLLOW : 0) != 0)
        fail_errno(errno, "cannot name the statistics page " + name);
    if (::rename(staging.c_str(), name.c_str()) != 0) {
        const int e = errno;
        ::unlink(staging.c_str());
        fail_errno(e, "cannot name the statistics page " + name);
    }
    const auto it = std::find_if(names_.begin(), names_.end(),
                                 [&](const Name &n) { return n.device_path == device_path; });
    if (it == names_.end()) {
        names_.push_back(std::move(given));
        return;
    }
    // The path leads to another file than when it was named.
    if (it->name != name && is_ours(it->name) && !named_twice(it->name))
        ::unlink(it->name.c_str());
    it->name = std::move(given.name);
}

bool StatsPage::named_twice(const std::string &name) const noexcept {
    return std::count_if(names_.begin(), names_.end(),
                         [&](const Name &n) { return n.name == name; }) > 1;
}

// Whether name still refers to this page: it may meanwhile belong to
// another store (the device was removed here and opened there).
bool StatsPage::is_ours(const std::string &name) const noexcept {
    struct stat ours, theirs;
    return ::fstat(fd_, &ours) == 0 && ::stat(name.c_str(), &theirs) == 0 &&
           ours.st_dev == theirs.st_dev && ours.st_ino == theirs.st_ino;
}

// The name given for device_path is removed, not the one the path leads to
// now: the device's file may have been deleted (the path leads nowhere) or
// replaced since, and the name left behind would be the page name of
// whichever file next gets the removed file's inode number.
void StatsPage::unname_device(const std::string &device_path) noexcept {
    const auto it = std::find_if(names_.begin(), names_.end(),
                                 [&](const Name &n) { return n.device_path == device_path; });
    if (it == names_.end())
        return;
    NamingLock naming;
    if (is_ours(it->name) && !named_twice(it->name))
        ::unlink(it->name.c_str());
    names_.erase(it);
}

bool StatsPage::backed(size_t end) noexcept {
    if (end <= backed_)
        return true;
    end = std::min(round_up(end, kBlockBytes), kPageBytes);
    // posix_fallocate: where the file system has no fallocate, the C
    // library writes each block instead, which fails as cleanly.
    const int e = ::posix_fallocate(fd_, static_cast<off_t>(backed_),
                                    static_cast<off_t>(end - backed_));
    if (e != 0) {
        errno = e;
        return false;
    }
    backed_ = end;
    return true;
}

void StatsPage::publish(const void *stats, size_t stats_len, const std::string &status) noexcept {
    auto *h = reinterpret_cast<Header *>(map_);
    stats_len = std::min(stats_len, kStatsCap);
    // A status too long for the page, or for the room its file system has
    // left, is replaced by a note of its length, written without
    // allocating (this runs when memory may have run out).
    char cut[64];
    const char *text = status.data();
    size_t text_len = status.size();
    if (status.size() > kStatusCap || !backed(kStatusOffset + status.size())) {
        text_len = static_cast<size_t>(std::snprintf(cut, sizeof cut,
                                                     "{\"truncated\":true,\"bytes\":%zu}",
                                                     status.size()));
        text = cut;
    }
    const uint64_t seq = __atomic_load_n(&h->seq, __ATOMIC_RELAXED);
    __atomic_store_n(&h->seq, seq + 1, __ATOMIC_RELAXED); // odd: being written
    __atomic_thread_fence(__ATOMIC_RELEASE);
    store_words(map_ + kStatsOffset, static_cast<const char *>(stats), stats_len);
    store_words(map_ + kStatusOffset, text, text_len);
    __atomic_store_n(&h->stats_len, uint64_t(stats_len), __ATOMIC_RELAXED);
    __atomic_store_n(&h->status_len, uint64_t(text_len), __ATOMIC_RELAXED);
    __atomic_store_n(&h->published_unix_ns, unix_ns(), __ATOMIC_RELAXED);
    __atomic_store_n(&h->seq, seq + 2, __ATOMIC_RELEASE); // even: whole
}

namespace {

// Whether the file open at fd (regular, of the name given) is a statistics
// page: it starts with the page magic (of any version), or it is one of
// the library's temporary names whose store died before it wrote the
// magic. Anything else under the prefix is someone else's file.
bool is_page_file(int fd, const struct stat &st, const char *name) {
    if (!S_ISREG(st.st_mode))
        return false;
    char magic[sizeof kMagic];
    if (::pread(fd, magic, sizeof magic, 0) == ssize_t(sizeof magic) &&
        std::memcmp(magic, kMagic, sizeof magic) == 0)
        return true;
    static constexpr char kTmpPrefix[] = "daxkv-stats.new.";
    return std::strncmp(name, kTmpPrefix, sizeof kTmpPrefix - 1) == 0 &&
           std::strlen(name) == sizeof kTmpPrefix - 1 + 6 &&
           (st.st_size == 0 || st.st_size == off_t(kPageBytes));
}

void sweep_stale_pages() {
    const std::string dir = stats_dir();
    std::unique_ptr<DIR, int (*)(DIR *)> d(::opendir(dir.c_str()), ::closedir);
    if (!d)
        return;
    NamingLock naming;
    while (struct dirent *de = ::readdir(d.get())) {
        if (std::strncmp(de->d_name, "daxkv-stats.", 12) != 0)
            continue;
        const std::string name = dir + "/" + de->d_name;
        // Not blocking: anyone may put a FIFO of that name in the directory.
        const int fd = ::open(name.c_str(), O_RDONLY | O_CLOEXEC | O_NOFOLLOW | O_NONBLOCK);
        if (fd < 0)
            continue;
        struct stat held, now;
        // A free lock: no store holds the page. Unlinked only if the name
        // still refers to the file whose lock we hold, and that file is a
        // page (a user's file that happens to share the prefix stays).
        if (::flock(fd, LOCK_EX | LOCK_NB) == 0 && ::fstat(fd, &held) == 0 &&
            ::lstat(name.c_str(), &now) == 0 && held.st_dev == now.st_dev &&
            held.st_ino == now.st_ino && is_page_file(fd, held, de->d_name)) {
            if (sweep_hook)
                sweep_hook(name);
            ::unlink(name.c_str());
        }
        ::close(fd);
    }
}

} // namespace

void remove_stale_pages() noexcept {
    try {
        sweep_stale_pages();
    } catch (...) {
        // No memory for a path: the stale pages stay for a later sweep.
    }
}

StatsPublisher::StatsPublisher(const std::string &store_id, unsigned interval_ms,
                               std::function<void(StatsPage &)> publish)
    : page_((remove_stale_pages(), store_id)), interval_ms_(interval_ms),
      publish_(std::move(publish)) {
    publish_now(); // a reader never finds a page without a publication
    thread_ = start_thread("the statistics publisher thread", [this] { run(); });
}

void StatsPublisher::publish_now() noexcept {
    std::lock_guard<std::mutex> g(publish_m_);
    try {
        publish_(page_);
    } catch (...) {
        // Out of memory building the status: the page keeps its last publication.
    }
}

StatsPublisher::~StatsPublisher() {
    {
        std::lock_guard<std::mutex> g(m_);
        stop_ = true;
    }
    cv_.notify_all();
    if (thread_.joinable())
        thread_.join();
}

void StatsPublisher::run() {
    std::unique_lock<std::mutex> g(m_);
    while (!cv_.wait_for(g, std::chrono::milliseconds(interval_ms_), [this] { return stop_; })) {
        g.unlock();
        publish_now();
        g.lock();
    }
}

std::string StatsPublisher::name_device(const std::string &device_path) noexcept {
    try {
        std::lock_guard<std::mutex> g(m_); // the page's names, against unname_device
        page_.name_device(device_path);
        return std::string();
    } catch (const std::exception &e) {
        // The reason is copied here, where no memory for the copy can still
        // be caught: a return from the catch handler alone would end the
        // process.
        try {
            return e.what();
        } catch (...) {
            return "out of memory";
        }
    } catch (...) {
        return "out of memory";
    }
}

void StatsPublisher::unname_device(const std::string &device_path) noexcept {
    std::lock_guard<std::mutex> g(m_);
    page_.unname_device(device_path);
}

PageSnapshot read_stats_page(const std::string &device_path) {
    const std::string name = in_dir(stats_page_name(device_path));
    // Not blocking: anyone may put a FIFO of that name in the directory.
    // Not following a symlink: a publisher names its page with a link of
    // the file itself, and anyone may put a symlink there to another
    // store's page (whose numbers would pass for this device's) or to a
    // device node, which opening alone may act on.
    const int fd =
        ::open(name.c_str(), O_RDONLY | O_CLOEXEC | O_NONBLOCK | O_NOCTTY | O_NOFOLLOW);
    if (fd < 0) {
        if (errno == ENOENT)
            fail(-ENOENT, "no running store publishes statistics for %s (none has it open, or "
                          "its stats_interval is 0)", device_path.c_str());
        if (errno == ELOOP)
            fail(-EPROTO, "%s is a symbolic link, not a daxkv statistics page", name.c_str());
        if (errno == ENOTDIR || errno == ENAMETOOLONG)
            fail(-ENOENT, "no running store publishes statistics for %s: the statistics "
                          "directory %s is not a directory or its name is too long "
                          "(DAXKV_STATS_DIR)", device_path.c_str(), stats_dir().c_str());
        fail_errno(errno, "cannot read the statistics page " + name);
    }
    struct FdCloser {
        int fd;
        ~FdCloser() { ::close(fd); }
    } closer{fd};
    struct stat st;
    if (::fstat(fd, &st) != 0 || !S_ISREG(st.st_mode))
        fail(-EPROTO, "%s is not a daxkv statistics page (not a regular file)", name.c_str());
    if (static_cast<size_t>(st.st_size) < kMinPageBytes)
        fail(-EPROTO, "%s is not a daxkv statistics page", name.c_str());
    // The status is read up to the end of the page's file, whichever size
    // its publisher made it, and never past a page's own room for it: a
    // planted file of any size (sparse: no blocks) would otherwise have
    // every reader allocate and read as much.
    const size_t status_room =
        std::min(static_cast<size_t>(st.st_size) - kStatusOffset, kStatusCap);
    // Read with pread, not through a mapping: the page's file may be cut
    // short at any moment (by whoever planted it, as the directory is
    // anyone's), and a mapping read past the end of the file raises SIGBUS
    // in the reader. A cut shows here as a short read instead.
    Header h;
    if (!read_at(fd, &h, sizeof h, 0))
        cut_short(name);
    if (std::memcmp(h.magic, kMagic, sizeof kMagic) != 0 || h.version != kVersion)
        fail(-EPROTO, "%s is a statistics page of another format", name.c_str());
    if (!page_held(fd, h))
        fail(-ENOENT, "the store that published statistics for %s is no longer running",
             device_path.c_str());
    // Each read is a copy the writer may overlap (words torn included): a
    // snapshot counts only when seq was even and the same before and after.
    for (int attempt = 0; attempt < 1000; ++attempt) {
        uint64_t s1 = 0, s2 = 0;
        if (!read_at(fd, &s1, sizeof s1, offsetof(Header, seq)))
            cut_short(name);
        if (s1 & 1 || s1 == 0) {
            std::this_thread::sleep_for(std::chrono::microseconds(100));
            continue;
        }
        __atomic_thread_fence(__ATOMIC_ACQUIRE);
        if (!read_at(fd, &h, sizeof h, 0))
            cut_short(name);
        PageSnapshot snap;
        const size_t sl = std::min<uint64_t>(h.stats_len, kStatsCap);
        const size_t tl = std::min<uint64_t>(h.status_len, status_room);
        snap.stats.resize(sl);
        snap.status.resize(tl);
        if (!read_at(fd, &snap.stats[0], sl, kStatsOffset) ||
            !read_at(fd, &snap.status[0], tl, kStatusOffset))
            cut_short(name);
        snap.pid = h.pid;
        snap.published_unix_ns = h.published_unix_ns;
        h.store_id[kIdCap - 1] = '\0';
        snap.store_id = h.store_id;
        __atomic_thread_fence(__ATOMIC_ACQUIRE);
        if (!read_at(fd, &s2, sizeof s2, offsetof(Header, seq)))
            cut_short(name);
        if (s2 == s1)
            return snap;
    }
    fail(-EAGAIN, "no whole publication of %s's statistics after 1000 tries", device_path.c_str());
}

namespace testing {

void set_sweep_hook(std::function<void(const std::string &)> fn) { sweep_hook = std::move(fn); }
void set_naming_lock_busy_hook(std::function<void()> fn) { naming_lock_busy_hook = std::move(fn); }

} // namespace testing

} // namespace daxkv
