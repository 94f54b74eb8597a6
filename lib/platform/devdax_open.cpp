// Safe open of a Device-DAX device: every check that can be made before the
// arena maps it, each turned into an error that says what to do, because the
// alternative is an EINVAL from mmap or a SIGBUS on first touch.
#include "platform/devdax_open.hpp"

#include <cerrno>
#include <cinttypes>
#include <csignal>
#include <cstdio>
#include <cstring>
#include <fstream>
#include <sstream>
#include <vector>

#include <fcntl.h>
#include <grp.h>
#include <pwd.h>
#include <sys/file.h>
#include <sys/prctl.h>
#include <sys/stat.h>
#include <sys/sysmacros.h>
#include <unistd.h>

#include "internal/error.hpp"
#include "internal/util.hpp"
#include "platform/discovery_testing.hpp"

namespace daxkv {
namespace platform {
namespace {

// Closes the fd unless released: every failure path after open() throws.
class FdGuard {
public:
    explicit FdGuard(int fd) noexcept : fd_(fd) {}
    FdGuard(const FdGuard &) = delete;
    FdGuard &operator=(const FdGuard &) = delete;
    ~FdGuard() {
        if (fd_ >= 0)
            ::close(fd_);
    }
    int get() const noexcept { return fd_; }
    int release() noexcept {
        int fd = fd_;
        fd_ = -1;
        return fd;
    }

private:
    int fd_;
};

const char *file_type_name(mode_t m) {
    if (S_ISREG(m))
        return "a regular file";
    if (S_ISDIR(m))
        return "a directory";
    if (S_ISBLK(m))
        return "a block device";
    if (S_ISFIFO(m))
        return "a FIFO";
    if (S_ISSOCK(m))
        return "a socket";
    return "not a character device";
}

std::string group_name(gid_t gid) {
    std::vector<char> buf(4096);
    struct group gr, *res = nullptr;
    if (::getgrgid_r(gid, &gr, buf.data(), buf.size(), &res) == 0 && res && res->gr_name)
        return res->gr_name;
    return std::to_string(gid);
}

std::string user_name(uid_t uid) {
    std::vector<char> buf(4096);
    struct passwd pw, *res = nullptr;
    if (::getpwuid_r(uid, &pw, buf.data(), buf.size(), &res) == 0 && res && res->pw_name)
        return res->pw_name;
    return std::to_string(uid);
}

[[noreturn]] void fail_access(const std::string &path, const struct stat &st, int err) {
    std::string grp = group_name(st.st_gid);
    fail(-EACCES,
         "permission denied opening %s (%s; mode %04o, owner %s, group %s): run as a member of "
         "group '%s' with group read/write on the node (a udev rule or chmod g+rw), or as root",
         path.c_str(), std::strerror(err), static_cast<unsigned>(st.st_mode & 07777),
         user_name(st.st_uid).c_str(), grp.c_str(), grp.c_str());
}

// Everything that can be decided from the device description alone. Returns
// the length to map.
uint64_t check_device(const DeviceInfo &info, uint64_t requested) {
    const char *path = info.path.c_str();
    const char *name = info.name.c_str();
    if (info.mode == DaxMode::system_ram)
        fail(-ENODEV,
             "%s (%s) is in system-ram mode: the kmem driver has onlined it as System RAM and "
             "its /dev node cannot be opened; give it back to Device-DAX with "
             "`daxctl reconfigure-device --mode=devdax %s` (its memory must be offlined first)",
             path, name, name);
    if (info.mode == DaxMode::none)
        fail(-ENODEV, "%s (%s) is disabled (no driver bound); enable it with "
                      "`daxctl enable-device %s`",
             path, name, name);
    if (info.align == 0)
        fail(-ENODEV,
             "%s (%s): the mapping alignment is unknown (no readable align attribute in sysfs)",
             path, name);
    if ((info.align & (info.align - 1)) != 0)
        fail(-ENODEV, "%s (%s): alignment %" PRIu64 " is not a power of two", path, name,
             info.align);

    // PR_SET_THP_DISABLE (inherited from a parent such as a launcher or a
    // container runtime) stops the kernel from trying PMD/PUD faults, and
    // devdax refuses PTE faults when its alignment is above the page size:
    // every access would SIGBUS.
    long page = ::sysconf(_SC_PAGESIZE);
    if (page <= 0)
        page = 4096;
    int thp_off = ::prctl(PR_GET_THP_DISABLE, 0, 0, 0, 0);
    if (thp_off > 0 && info.align > static_cast<uint64_t>(page))
        fail(-EINVAL,
             "%s (%s): this process has transparent huge pages disabled "
             "(prctl PR_SET_THP_DISABLE, often inherited from the parent process), and with "
             "alignment %" PRIu64 " every access to the mapping would SIGBUS; clear it with "
             "prctl(PR_SET_THP_DISABLE, 0, 0, 0, 0) before opening, or use a device with "
             "4 KiB alignment",
             path, name, info.align);

    uint64_t capacity = info.size - info.size % info.align;
    if (capacity == 0)
        fail(-ENOSPC, "%s (%s): device size %" PRIu64 " is smaller than its alignment %" PRIu64,
             path, name, info.size, info.align);
    if (requested == 0)
        return capacity;
    uint64_t rounded = requested - requested % info.align;
    if (rounded == 0)
        fail(-EINVAL,
             "%s (%s): requested %" PRIu64 " bytes, less than the device alignment %" PRIu64,
             path, name, requested, info.align);
    if (rounded > capacity)
        fail(-ENOSPC,
             "%s (%s): requested %" PRIu64 " bytes (%" PRIu64 " after rounding down to the "
             "alignment %" PRIu64 "), but the device has %" PRIu64 " bytes",
             path, name, requested, rounded, info.align, info.size);
    if (rounded != requested)
        log(kLogInfo,
            "%s: size %" PRIu64 " rounded down to %" PRIu64 " (alignment %" PRIu64 ")", path,
            requested, rounded, info.align);
    return rounded;
}

} // namespace

long lock_holder_pid(uint64_t st_dev, uint64_t st_ino) {
    // Lines look like
    //   "1: FLOCK  ADVISORY  WRITE 1234 00:05:417 0 EOF"
    //   "1: -> FLOCK  ADVISORY  WRITE 1235 00:05:417 0 EOF"   (a waiter)
    // with the device of the inode's filesystem as hex major:minor.
    std::ifstream in("/proc/locks");
    if (!in)
        return -1;
    unsigned want_major = major(static_cast<dev_t>(st_dev));
    unsigned want_minor = minor(static_cast<dev_t>(st_dev));
    std::string line;
    while (std::getline(in, line)) {
        std::istringstream ls(line);
        std::string id, type, advisory, access, dev_ino;
        long pid = -1;
        if (!(ls >> id >> type))
            continue;
        if (type == "->")
            continue; // waiting, not holding
        if (!(ls >> advisory >> access >> pid >> dev_ino))
            continue;
        unsigned ma, mi;
        unsigned long long ino;
        if (std::sscanf(dev_ino.c_str(), "%x:%x:%llu", &ma, &mi, &ino) != 3)
            continue;
        if (ma == want_major && mi == want_minor && ino == st_ino && pid > 0)
            return pid;
    }
    return -1;
}

void lock_exclusive(int fd, const std::string &what) {
    int rc;
    do {
        rc = ::flock(fd, LOCK_EX | LOCK_NB);
    } while (rc != 0 && errno == EINTR);
    if (rc == 0)
        return;
    const int e = errno;
    if (e != EWOULDBLOCK)
        fail_errno(e, "cannot lock " + what);
    struct stat st;
    long holder = -1;
    if (::fstat(fd, &st) == 0)
        holder = lock_holder_pid(st.st_dev, st.st_ino);
    if (holder > 0 && holder == static_cast<long>(::getpid()))
        fail(-EBUSY, "%s is already open in this process (pid %ld): in another store, or "
                     "listed twice in this pool (through another name, a link or /proc/self/fd)",
             what.c_str(), holder);
    // The lock says that it is held and by whom, not that the holder is a
    // daxkv store: any program may lock the file.
    // /proc/locks names the process that took the lock; a child it forked
    // without exec shares the lock (and keeps it through its copy of the
    // mapping) after that process is gone.
    if (holder > 0 && ::kill(static_cast<pid_t>(holder), 0) != 0 && errno == ESRCH)
        fail(-EBUSY, "%s is in use: locked by pid %ld, which has exited; a process it forked "
                     "without exec still holds the lock (and maps the arena) until it exits",
             what.c_str(), holder);
    if (holder > 0)
        fail(-EBUSY, "%s is in use: pid %ld holds a lock on it (another daxkv store, or any "
                     "program that locks it)",
             what.c_str(), holder);
    fail(-EBUSY, "%s is in use: a lock on it is held (by another daxkv store, or any program "
                 "that locks it; the holder is not visible in /proc/locks)",
         what.c_str());
}


DaxOpenResult open_devdax(const std::string &path, uint64_t requested_bytes) {
    // Identify the device before opening it: a device in system-ram mode
    // fails open() with a bare ENXIO, and a non-DAX node (a tty, a disk)
    // should not be opened read-write at all.
    struct stat st;
    if (::stat(path.c_str(), &st) != 0)
        fail_errno(errno, "cannot open Device-DAX device " + path);
    if (!S_ISCHR(st.st_mode))
        fail(-ENODEV, "%s is not a Device-DAX device (%s)", path.c_str(),
             file_type_name(st.st_mode));
    DeviceInfo info = describe_dax_devnum(major(st.st_rdev), minor(st.st_rdev), path);
    uint64_t map_bytes = check_device(info, requested_bytes);

    int raw = ::open(path.c_str(), O_RDWR | O_CLOEXEC);
    if (raw < 0) {
        int err = errno;
        if (err == EACCES || err == EPERM)
            fail_access(path, st, err);
        if (err == ENXIO) // switched to system-ram since we looked
            fail(-ENODEV, "%s: no such device or address (ENXIO); is it in system-ram mode? "
                          "`daxctl reconfigure-device --mode=devdax %s` gives it back",
                 path.c_str(), info.name.c_str());
        fail_errno(err, "cannot open Device-DAX device " + path);
    }
    FdGuard fd(fd_above_standard_streams(raw));

    // The path may have been replaced between stat() and open(): describe
    // what was actually opened.
    struct stat fst;
    if (::fstat(fd.get(), &fst) != 0)
        fail_errno(errno, "fstat " + path);
    if (!S_ISCHR(fst.st_mode) || fst.st_rdev != st.st_rdev) {
        info = describe_dax_fd(fd.get(), path);
        map_bytes = check_device(info, requested_bytes);
    }

    // One process owns an arena at a time. flock (not fcntl) locks belong to
    // the open file description, so they are not dropped when some other
    // part of the process closes another fd of the same node.
    lock_exclusive(fd.get(), path);

    DaxOpenResult r;
    r.info = std::move(info);
    r.map_bytes = map_bytes;
    r.fd = fd.release();
    return r;
}

} // namespace platform
} // namespace daxkv
