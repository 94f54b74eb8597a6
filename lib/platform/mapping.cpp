#include "platform/mapping.hpp"

#include <algorithm>
#include <atomic>
#include <cerrno>
#include <climits>
#include <cstdlib>
#include <cstring>
#include <memory>
#include <string>
#include <string_view>
#include <vector>
#include <dirent.h>
#include <fcntl.h>
#include <sys/file.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <sys/sysmacros.h>
#include <unistd.h>

#include "internal/error.hpp"
#include "internal/util.hpp"
#include "platform/cpu.hpp"
#include "platform/devdax_open.hpp"

#ifndef MAP_SYNC
#define MAP_SYNC 0x80000
#endif
#ifndef MAP_SHARED_VALIDATE
#define MAP_SHARED_VALIDATE 0x03
#endif

namespace daxkv {
namespace platform {
namespace {

constexpr uint64_t kPage = 4096;

// Closes an fd unless released; keeps failure paths leak-free.
struct FdGuard {
    int fd;
    ~FdGuard() {
        if (fd >= 0)
            ::close(fd);
    }
    int release() {
        int f = fd;
        fd = -1;
        return f;
    }
};

// The path an open descriptor refers to, as the kernel resolved it.
std::string fd_path(int fd) {
    char buf[PATH_MAX + 1];
    const std::string link = "/proc/self/fd/" + std::to_string(fd);
    const ssize_t n = ::readlink(link.c_str(), buf, sizeof buf - 1);
    return n > 0 ? std::string(buf, static_cast<size_t>(n)) : std::string();
}

// Give a file the blocks of [from, to) and make it at least `to` long; 0 or
// an errno. Reserving the blocks (rather than leaving the file sparse) makes
// a full file system fail here instead of with a SIGBUS at first touch.
// File systems without fallocate get a plain (sparse) size change, which
// only ever extends: the file may hold an arena past `to`.
int allocate_blocks(int fd, uint64_t from, uint64_t to) {
    if (to <= from)
        return 0;
    int rc = ::posix_fallocate(fd, static_cast<off_t>(from), static_cast<off_t>(to - from));
    if (rc == EOPNOTSUPP || rc == EINVAL) {
        struct stat st;
        if (::fstat(fd, &st) != 0)
            return errno;
        const bool enough = static_cast<uint64_t>(st.st_size) >= to;
        rc = enough || ::ftruncate(fd, static_cast<off_t>(to)) == 0 ? 0 : errno;
    }
    // A file size limit or a quota is "no space" to the caller, as a full
    // file system is.
    if (rc == EFBIG || rc == EDQUOT)
        rc = ENOSPC;
    return rc;
}

// The holes of [from, to) of a file (SEEK_HOLE): what a failed allocation
// of that range gives back (punch_holes). A file system without SEEK_HOLE
// reports none, as it reports the whole file as data.
std::vector<std::pair<uint64_t, uint64_t>> holes_of(int fd, uint64_t from, uint64_t to) {
    std::vector<std::pair<uint64_t, uint64_t>> holes;
    off_t at = static_cast<off_t>(from);
    while (static_cast<uint64_t>(at) < to) {
        const off_t hole = ::lseek(fd, at, SEEK_HOLE);
        if (hole < 0 || static_cast<uint64_t>(hole) >= to)
            break;
        off_t data = ::lseek(fd, hole, SEEK_DATA);
        if (data < 0 || static_cast<uint64_t>(data) > to)
            data = static_cast<off_t>(to); // ENXIO: a hole to the end
        holes.emplace_back(static_cast<uint64_t>(hole), static_cast<uint64_t>(data));
        at = data;
    }
    return holes;
}

// Gives back the blocks of holes a failed allocation filled (an allocation
// that runs out of room part-way keeps what it got, on ext4 and XFS).
void punch_holes(int fd, const std::vector<std::pair<uint64_t, uint64_t>> &holes) noexcept {
    for (const auto &h : holes)
        (void)::fallocate(fd, FALLOC_FL_PUNCH_HOLE | FALLOC_FL_KEEP_SIZE,
                          static_cast<off_t>(h.first), static_cast<off_t>(h.second - h.first));
}

std::atomic<bool> temporary_names{false};
std::atomic<void (*)(const char *)> temporary_created_hook{nullptr};

std::string dir_of(const std::string &path) {
    const size_t slash = path.find_last_of('/');
    return slash == std::string::npos ? "." : slash == 0 ? "/" : path.substr(0, slash);
}

std::string name_of(const std::string &path) {
    const size_t slash = path.find_last_of('/');
    return slash == std::string::npos ? path : path.substr(slash + 1);
}

// The hidden temporary names of the arena at path start so, followed by
// mkostemp's six characters. The arena's name is cut short so that the
// temporary one stays within NAME_MAX.
std::string temporary_prefix(const std::string &path) {
    return "." + name_of(path).substr(0, 200) + ".daxkv-new.";
}
constexpr size_t kTemporarySuffix = 6;

// flock(fd, LOCK_EX) of a file nobody else should hold for long: tried
// without blocking for about a second (an open removing stale temporaries
// holds one for a few system calls). 0 or an errno.
int lock_briefly_held(int fd) {
    for (int tries = 0;; ++tries) {
        if (::flock(fd, LOCK_EX | LOCK_NB) == 0)
            return 0;
        if (errno == EINTR)
            continue;
        if (errno != EWOULDBLOCK || tries == 1000)
            return errno;
        const struct timespec ms{0, 1000000};
        ::nanosleep(&ms, nullptr);
    }
}

// A new file for the arena at path, in path's directory but not at path: an
// unnamed one (O_TMPFILE), or, where the file system has no O_TMPFILE, one
// under a hidden temporary name, returned in temp. An fd, or -1 and errno.
// The mode is the one an open(O_CREAT, 0600) would give, the umask applied.
int create_unnamed(const std::string &path, std::string &temp) {
    const std::string dir = dir_of(path);
    if (!temporary_names.load(std::memory_order_relaxed)) {
        const int fd = ::open(dir.c_str(), O_TMPFILE | O_RDWR | O_CLOEXEC, 0600);
        // A kernel without O_TMPFILE sees O_DIRECTORY | O_RDWR: EISDIR.
        if (fd >= 0 || (errno != EOPNOTSUPP && errno != EISDIR && errno != EINVAL))
            return fd;
    }
    // A kill leaves this name behind; it is never taken for the arena, and
    // the next open of the path removes it (remove_stale_temporaries), as
    // one that no open holds locked. So the file is locked at once, and
    // made again should it have lost its name before the lock: an open
    // removing stale temporaries took it in between.
    const std::string pattern = (dir == "/" ? "" : dir) + "/" + temporary_prefix(path) + "XXXXXX";
    for (int attempt = 0; attempt < 16; ++attempt) {
        std::string tmpl = pattern; // mkostemp fills in the Xs
        const int fd = ::mkostemp(&tmpl[0], O_CLOEXEC);
        if (fd < 0)
            return fd;
        if (auto hook = temporary_created_hook.load(std::memory_order_relaxed))
            hook(tmpl.c_str());
        struct stat st;
        const int e = lock_briefly_held(fd);
        if (e != 0 || ::fstat(fd, &st) != 0) {
            const int err = e ? e : errno;
            (void)::unlink(tmpl.c_str());
            ::close(fd);
            errno = err;
            return -1;
        }
        if (st.st_nlink > 0) {
            temp = std::move(tmpl); // noexcept: the fd cannot leak
            return fd;
        }
        ::close(fd);
    }
    errno = EAGAIN;
    return -1;
}

// Remove the hidden temporaries of the arena at path that opens killed
// before their rename left behind (create_unnamed), once that arena is
// locked by this open (its file is dev and ino; own_temp, the temporary
// name of the one this open is creating, is left alone). A temporary
// whose lock can be taken has no open behind it: an open locks its own at
// once, and makes it again if it was removed before. One that is the
// arena's own file (a second name, left by a kill between the link and
// the unlink of a rename without RENAME_NOREPLACE) is removed under the
// arena's lock. Only regular files of this user are looked at, never
// followed through a link. Returns how many were removed; errors leave a
// temporary where it is.
int remove_stale_temporaries(const std::string &path, const std::string &own_temp, dev_t dev,
                             ino_t ino) {
    const std::string dir = dir_of(path);
    const std::string prefix = temporary_prefix(path);
    const std::string own = own_temp.empty() ? std::string() : name_of(own_temp);
    const int dfd = ::open(dir.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (dfd < 0)
        return 0;
    const std::unique_ptr<DIR, int (*)(DIR *)> d(::fdopendir(dfd), ::closedir);
    if (!d) {
        ::close(dfd);
        return 0;
    }
    int removed = 0;
    while (const struct dirent *de = ::readdir(d.get())) {
        const std::string_view name(de->d_name);
        if (name.size() != prefix.size() + kTemporarySuffix ||
            name.compare(0, prefix.size(), prefix) != 0 || name == own)
            continue;
        const int fd = ::openat(dfd, de->d_name,
                                O_RDONLY | O_NOFOLLOW | O_NONBLOCK | O_NOCTTY | O_CLOEXEC);
        if (fd < 0)
            continue;
        struct stat st, now;
        if (::fstat(fd, &st) == 0 && S_ISREG(st.st_mode) && st.st_uid == ::geteuid()) {
            const bool arenas_own = st.st_dev == dev && st.st_ino == ino;
            if ((arenas_own || ::flock(fd, LOCK_EX | LOCK_NB) == 0) &&
                ::fstatat(dfd, de->d_name, &now, AT_SYMLINK_NOFOLLOW) == 0 &&
                now.st_dev == st.st_dev && now.st_ino == st.st_ino &&
                ::unlinkat(dfd, de->d_name, 0) == 0)
                ++removed;
        }
        ::close(fd); // its lock goes with it
    }
    return removed;
}

// Give the unnamed file fd the name path, never replacing what is there: 0,
// or an errno (EEXIST: something is at path). AT_EMPTY_PATH needs
// CAP_DAC_READ_SEARCH on most kernels (ENOENT without it); /proc/self/fd
// does the same for anyone.
int link_unnamed(int fd, const std::string &path) {
    if (::linkat(fd, "", AT_FDCWD, path.c_str(), AT_EMPTY_PATH) == 0)
        return 0;
    if (errno != ENOENT && errno != EPERM)
        return errno;
    const std::string self = "/proc/self/fd/" + std::to_string(fd);
    return ::linkat(AT_FDCWD, self.c_str(), AT_FDCWD, path.c_str(), AT_SYMLINK_FOLLOW) == 0
               ? 0
               : errno;
}

// Move the temporary name to path, never replacing what is there: 0 or an
// errno (EEXIST: something is at path). File systems without
// RENAME_NOREPLACE get a link and an unlink: between the two the file has
// both names, and a kill there leaves the temporary one as well.
int rename_noreplace(const std::string &temp, const std::string &path) {
    if (::renameat2(AT_FDCWD, temp.c_str(), AT_FDCWD, path.c_str(), RENAME_NOREPLACE) == 0)
        return 0;
    if (errno != EINVAL && errno != ENOSYS)
        return errno;
    if (::link(temp.c_str(), path.c_str()) != 0)
        return errno;
    (void)::unlink(temp.c_str());
    return 0;
}

// Make the name of the file at path durable: fsync its directory. 0 or an
// errno.
int sync_directory_of(const std::string &path) {
    const int dfd = ::open(dir_of(path).c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (dfd < 0)
        return errno;
    const int rc = ::fsync(dfd) == 0 ? 0 : errno;
    ::close(dfd);
    return rc;
}

} // namespace

// A regular file under /dev is almost always a mistake (a missing DAX node
// recreated as a file by a careless write), so it is refused. /dev/shm is
// the exception: it is the standard tmpfs mount for shared memory. Given a
// resolved path (resolve_file): "/dev/shm/../x" and a symlink elsewhere
// that points into /dev are judged by where they lead.
bool file_arena_refused(const std::string &resolved) {
    return resolved.rfind("/dev/", 0) == 0 && resolved.rfind("/dev/shm/", 0) != 0;
}

namespace {
std::string join_path(const std::string &dir, const std::string &name) {
    return dir == "/" ? "/" + name : dir + "/" + name;
}
} // namespace

// The absolute path, without symlinks, "." or "..", of the file that path
// leads to, whether or not that file exists yet: an existing file is
// resolved by realpath; for a missing one its directory is, and a dangling
// symlink is followed by hand, so that it is judged by where it points (the
// open then creates nothing through it). Throws Error: -ENOENT (a directory
// on the way is missing), -ELOOP, -EACCES, -ENOTDIR, -EINVAL (no file name).
std::string resolve_file(const std::string &path) {
    std::string p = path;
    for (int hops = 0; hops < 40; ++hops) {
        std::string out = real_path(p);
        if (!out.empty())
            return out;
        if (errno != ENOENT)
            fail_errno(errno, "cannot resolve " + path);
        const size_t slash = p.find_last_of('/');
        const std::string dir = slash == std::string::npos ? "."
                                : slash == 0                ? "/"
                                                            : p.substr(0, slash);
        const std::string name = slash == std::string::npos ? p : p.substr(slash + 1);
        if (name.empty() || name == "." || name == "..")
            fail(-EINVAL, "%s does not name a file", path.c_str());
        const std::string rdir = real_path(dir);
        if (rdir.empty()) {
            const int e = errno;
            fail_errno(e, "cannot access the directory of " + path);
        }
        const std::string full = join_path(rdir, name);
        struct stat lst;
        if (::lstat(full.c_str(), &lst) != 0 || !S_ISLNK(lst.st_mode))
            return full; // missing: this is where it would be created
        std::vector<char> link(static_cast<size_t>(lst.st_size > 0 ? lst.st_size : 255) + 2);
        const ssize_t n = ::readlink(full.c_str(), link.data(), link.size() - 1);
        if (n < 0)
            fail_errno(errno, "cannot read the symlink " + full);
        const std::string target(link.data(), static_cast<size_t>(n));
        p = !target.empty() && target[0] == '/' ? target : join_path(rdir, target);
    }
    fail(-ELOOP, "%s: too many levels of symbolic links", path.c_str());
}

std::unique_ptr<Mapping> Mapping::open(const MapRequest &req) {
    std::unique_ptr<Mapping> m(new Mapping());
    int mmap_flags = MAP_SHARED;
    // Only a look at an existing file can do without write access.
    const bool read_only = req.read_only && req.inspect && !req.create;
    FdGuard fd{-1};
    // Sizes become off_t and mmap lengths: above INT64_MAX they would turn
    // negative (and no device, file or address space is that large).
    if (req.bytes > uint64_t(INT64_MAX) || req.reserve_bytes > uint64_t(INT64_MAX))
        fail(-EINVAL, "%s: a size of %llu bytes is larger than any device or file can be",
             req.path.c_str(),
             static_cast<unsigned long long>(std::max(req.bytes, req.reserve_bytes)));

    if (req.path == "mem:") {
        // Anonymous shared memory: volatile, page-aligned, nothing to lock.
        if (req.bytes == 0)
            fail(-EINVAL, "mem: needs a size");
        m->size_ = round_down(std::max(req.bytes, req.reserve_bytes), kPage);
        if (m->size_ == 0)
            fail(-EINVAL, "mem: size %llu is below one page",
                 static_cast<unsigned long long>(req.bytes));
        m->backed_ = m->size_;
        m->device_bytes_ = m->size_;
        m->info_.path = req.path;
        m->info_.kind = DeviceKind::memory;
        m->info_.size = m->size_;
        m->info_.align = kPage;
        m->created_ = true;
        // Populated up front: the memory is the cache, and first-touch
        // faults would otherwise land on the put path. Room reserved to
        // grow into is left to fault in when it is used.
        const bool populate = m->size_ == round_down(req.bytes, kPage);
        void *p = ::mmap(nullptr, m->size_, PROT_READ | PROT_WRITE,
                         MAP_SHARED | MAP_ANONYMOUS | (populate ? MAP_POPULATE : MAP_NORESERVE),
                         -1, 0);
        if (p == MAP_FAILED)
            fail_errno(errno, format("cannot map %llu bytes of memory",
                                     static_cast<unsigned long long>(m->size_)));
        m->base_ = static_cast<char *>(p);
        return m;
    }

    if (req.path.empty())
        fail(-EINVAL, "empty device path");

    struct stat st;
    bool exists = ::stat(req.path.c_str(), &st) == 0;
    if (!exists && errno != ENOENT)
        fail_errno(errno, "cannot access " + req.path);

    if (exists && S_ISCHR(st.st_mode)) {
        // Device-DAX: capacity, alignment, mode, permissions and the lock
        // are checked by open_devdax; the mapping is made here.
        DaxOpenResult r = open_devdax(req.path, req.fit ? 0 : req.bytes);
        fd.fd = r.fd;
        m->info_ = r.info;
        m->size_ = r.map_bytes;
        if (req.fit && req.bytes) {
            const uint64_t align = r.info.align ? r.info.align : kPage;
            m->size_ = std::min(m->size_, round_up(req.bytes, align));
        }
        if (req.reserve_bytes > m->size_) {
            // Room to grow: as much of the device as asked for, at most all
            // of it, in whole alignment units (the mmap length rule).
            const uint64_t align = r.info.align ? r.info.align : kPage;
            m->size_ = std::max(m->size_, round_down(std::min(req.reserve_bytes, r.info.size),
                                                     align));
        }
        m->backed_ = m->size_;
        m->device_bytes_ = r.info.size;
        if (req.sync)
            mmap_flags = MAP_SHARED_VALIDATE | MAP_SYNC;
    } else {
        if (exists && S_ISDIR(st.st_mode))
            fail(-EISDIR, "%s is a directory, not a device or arena file", req.path.c_str());
        if (exists && !S_ISREG(st.st_mode))
            fail(-ENODEV, "%s is neither a Device-DAX device nor a regular file",
                 req.path.c_str());
        // Decided on where the path leads, never on its text.
        const std::string target = resolve_file(req.path);
        if (file_arena_refused(target))
            fail(-ENODEV, "%s is not a Device-DAX device (a file arena may not live under /dev)",
                 req.path.c_str());
        if (!exists && !req.create)
            fail(-ENOENT, "%s does not exist", req.path.c_str());
        // Created at no size, it would be refused as empty: it is not there.
        if (!exists && req.bytes == 0)
            fail(-ENOENT, "%s does not exist (give the arena size to create it)",
                 req.path.c_str());
        // Opened by the name given, so that the kernel follows the symlinks
        // on the way with its own protections (fs.protected_symlinks); only
        // where it leads was decided above. The name a failed open removes
        // what it created by is set before (a copy that cannot fail later,
        // when the file exists). A missing file is made in the directory
        // without a name, and gets the path only once its arena is whole
        // (name_new_file): a process killed meanwhile leaves nothing at the
        // path. Nothing is created through a symlink: one to a file that
        // does not exist is opened as it is, -ENOENT.
        m->file_path_ = target;
        struct stat lst;
        const bool created = !exists && ::lstat(req.path.c_str(), &lst) != 0 && errno == ENOENT;
        if (created)
            fd.fd = create_unnamed(req.path, m->temp_path_);
        else // not blocking: a FIFO put at the path since it was judged fails below
            fd.fd = ::open(req.path.c_str(),
                           (read_only ? O_RDONLY : O_RDWR) | O_CLOEXEC | O_NONBLOCK | O_NOCTTY);
        if (fd.fd < 0)
            fail_errno(errno, (created ? "cannot create " : "cannot open ") + req.path);
        fd.fd = fd_above_standard_streams(fd.fd);
        m->fd_ = fd.release(); // closed (and a created file removed) by ~Mapping from here
        m->unnamed_ = created;
        if (created && !m->temp_path_.empty()) {
            // The temporary name is this open's own (mkostemp): ~Mapping
            // removes it by its identity whatever fails from here on, the
            // lock below included.
            if (::fstat(m->fd_, &st) != 0) {
                const int e = errno;
                (void)::unlink(m->temp_path_.c_str());
                m->temp_path_.clear();
                fail_errno(e, "cannot stat the new arena " + req.path);
            }
            m->file_dev_ = st.st_dev;
            m->file_ino_ = st.st_ino;
        }
        m->remap_named_ = created && m->temp_path_.empty();
        m->sync_ = req.sync;
        // Locked before anything else can fail (it allocates nothing when it
        // succeeds): only the holder of the lock undoes what it created. An
        // open that created the file but lost the lock to another opener of
        // the path removed the file that opener holds; one that created it
        // and failed before it tried (out of memory) left it behind. And
        // the file is judged as it is once locked: before, a creator that
        // failed may have removed it, or one that closed since may have
        // sized and formatted it. (A new file is nobody else's: it has no
        // name yet, and it is locked before it gets one.)
        lock_exclusive(m->fd_, req.path);
        m->created_file_ = created;
        if (::fstat(m->fd_, &st) != 0)
            fail_errno(errno, "cannot stat " + req.path);
        m->file_dev_ = st.st_dev;
        m->file_ino_ = st.st_ino;
        if (!read_only && !req.inspect) {
            if (const int n = remove_stale_temporaries(req.path, m->temp_path_, st.st_dev,
                                                       st.st_ino))
                log(kLogInfo, "%s: removed %d hidden temporar%s (.NAME.daxkv-new.*) that opens "
                              "killed while creating the arena left behind",
                    req.path.c_str(), n, n == 1 ? "y" : "ies");
        }
        // An unnamed file is "DIR/#INODE (deleted)" to the kernel: judged
        // when it has its name.
        const std::string opened = m->remap_named_ ? std::string() : fd_path(m->fd_);
        if (!opened.empty() && !created)
            m->file_path_ = opened;
        if (!S_ISREG(st.st_mode))
            fail(-ENODEV, "%s is not a regular file", req.path.c_str());
        // A directory on the way swapped for a symlink after the check
        // above would have taken the open elsewhere: judge what was opened.
        // (Without /proc there is nothing to read: the check above stands.)
        if (!opened.empty() && file_arena_refused(opened))
            fail(-ENODEV, "%s is not a Device-DAX device (a file arena may not live under /dev)",
                 req.path.c_str());
        if (st.st_nlink == 0 && !created)
            fail(-EBUSY, "%s was removed by another open of it that failed; open it again",
                 req.path.c_str());

        uint64_t have = static_cast<uint64_t>(st.st_size);
        uint64_t want = req.bytes ? req.bytes : have;
        if (want == 0 && req.inspect) // a look at what is there, which has no size to give
            fail(-EINVAL, "%s is empty (0 bytes): no arena", req.path.c_str());
        if (want == 0)
            fail(-EINVAL, "%s is empty: give the arena size to create it", req.path.c_str());
        // The file's own size, too short to map; a look at it maps its one
        // page (the bytes past its end read as zeros), so that an arena cut
        // inside its first page is judged as one cut anywhere else.
        if (want < kPage && !req.bytes && !req.inspect)
            fail(-EINVAL, "%s holds %llu bytes, less than one page (%llu): no arena fits in it",
                 req.path.c_str(), static_cast<unsigned long long>(have),
                 static_cast<unsigned long long>(kPage));
        if (want < kPage && req.bytes)
            fail(-EINVAL, "arena size %llu for %s is below one page (%llu)",
                 static_cast<unsigned long long>(want), req.path.c_str(),
                 static_cast<unsigned long long>(kPage));
        // A file is mapped in whole pages. One whose whole size is asked for
        // (0, or exactly its size) but ends inside a page (copied or cut
        // short by something else: the library sizes its files in pages)
        // is mapped up to the end of that page, and its last page filled out
        // below as a shorter file is extended: rounded down, its slots in
        // use would end past the mapping though they end within the file.
        const bool fill_last_page = want == have && have % kPage != 0;
        want = fill_last_page ? round_up(want, kPage) : round_down(want, kPage);
        // An existing file shorter than asked for is refused, unless the
        // caller allows it down to min_existing (capacity=payload: the slot
        // headers go on top of payloads sized by someone else); it is then
        // extended below and, if the open fails, given its old size back.
        if (have != 0 && have < want && !fill_last_page &&
            !(req.min_existing && have >= req.min_existing)) {
            const uint64_t need = req.min_existing ? req.min_existing : want;
            fail(-ENOSPC, "%s holds %llu bytes, less than the %llu bytes asked for",
                 req.path.c_str(), static_cast<unsigned long long>(have),
                 static_cast<unsigned long long>(need));
        }
        if (have != 0 && have < want)
            m->grown_from_ = have;
        m->size_ = want;
        m->backed_ = want;
        const uint64_t reserve = round_down(req.reserve_bytes, kPage);
        if (reserve > want) {
            // Room to grow: the mapping reaches past the file's end (never
            // touched there until extend() has given the file the blocks),
            // and a file grown before is used up to its size.
            m->size_ = reserve;
            m->backed_ = std::max(want, std::min(round_down(have, kPage), reserve));
        }
        // Every byte that will be touched gets its block now, for a file
        // this open sizes and for one that was there: a sparse file larger
        // than its file system can hold would otherwise SIGBUS at the first
        // write into a hole.
        if (have == 0)
            m->sized_empty_ = !m->created_file_;
        // The holes of a file that was there, given back (~Mapping) if the
        // open fails, in the allocation (part-way) or after it: a failed
        // open leaves the file as it found it.
        if (!req.inspect && have != 0)
            m->filled_holes_ = holes_of(m->fd_, 0, std::min(have, m->backed()));
        const int rc = req.inspect ? 0 : allocate_blocks(m->fd_, 0, m->backed());
        if (rc != 0) {
            if (have == 0 && ::ftruncate(m->fd_, 0) != 0) {
                // leave it empty if we can; the error below says why
            }
            if (rc == ENOSPC)
                fail(-ENOSPC, "%s: the file system has no room for the %llu bytes of the arena "
                              "(its blocks could not be reserved)",
                     req.path.c_str(), static_cast<unsigned long long>(m->backed()));
            // A "regular file" of a pseudo file system (/proc, /sys) has no
            // blocks to reserve: it is not a file that can hold an arena.
            if (rc == ESPIPE || rc == ENODEV)
                fail(-ENODEV, "%s is not a file that can hold an arena (its blocks cannot be "
                              "reserved: %s)",
                     req.path.c_str(), std::strerror(rc));
            fail_errno(rc, format("cannot size %s to %llu bytes", req.path.c_str(),
                                  static_cast<unsigned long long>(m->backed())));
        }
        m->created_ = have == 0;
        m->device_bytes_ = std::max(have, m->backed());
        m->info_.path = req.path;
        m->info_.kind = DeviceKind::file;
        m->info_.size = m->backed();
        m->info_.align = kPage;
    }

    // File arenas are populated at open (page tables and, on tmpfs, the
    // pages): first-touch faults would otherwise cost the put path about a
    // third of a memcpy. Device-DAX faults are per 2 MiB or 1 GiB and cheap.
    // A file with room to grow past its end is populated up to the end only.
    const bool is_file = m->info_.kind == DeviceKind::file;
    // An unnamed file is populated when it is mapped again through its
    // name (name_new_file); until then only its superblocks are written.
    const bool populate_now = is_file && !req.inspect && !m->remap_named_;
    const bool populate_part = populate_now && m->backed() < m->size_;
    if (populate_now && !populate_part)
        mmap_flags |= MAP_POPULATE;
    if (fd.fd >= 0)
        m->fd_ = fd.release();
    const int prot = read_only && is_file ? PROT_READ : PROT_READ | PROT_WRITE;
    void *p = ::mmap(nullptr, m->size_, prot, mmap_flags, m->fd_, 0);
    if (p == MAP_FAILED && (mmap_flags & MAP_SYNC) && (errno == EOPNOTSUPP || errno == EINVAL)) {
        // MAP_SYNC is refused by devices that need no synchronous faults;
        // cache-line flushes still give durability on the DAX mapping.
        mmap_flags = MAP_SHARED | (mmap_flags & MAP_POPULATE);
        p = ::mmap(nullptr, m->size_, prot, mmap_flags, m->fd_, 0);
    }
    if (p == MAP_FAILED)
        fail_errno(errno, format("cannot map %llu bytes of %s",
                                 static_cast<unsigned long long>(m->size_), req.path.c_str()));
    m->base_ = static_cast<char *>(p);
    m->map_sync_ = (mmap_flags & MAP_SYNC) != 0;
    if (populate_part)
        m->populate(0, m->backed());
    return m;
}

void Mapping::populate(uint64_t from, uint64_t to) noexcept {
    // Best effort (the pages fault in on first touch otherwise); the
    // reserve past the file's end must not be touched, so no MAP_POPULATE.
#ifdef MADV_POPULATE_WRITE
    if (to > from)
        (void)::madvise(base_ + from, to - from, MADV_POPULATE_WRITE);
#else
    (void)from;
    (void)to;
#endif
}

void Mapping::extend(uint64_t bytes) {
    // A record of an earlier extend must not be taken back for this one: a
    // grow that needed no blocks (backed since, a shrink between) would
    // cut the file below slots in use.
    last_extend_.valid = false;
    if (bytes > size_)
        fail(-ENOSPC, "%s: %llu bytes asked for, but only %llu are mapped", info_.path.c_str(),
             static_cast<unsigned long long>(bytes), static_cast<unsigned long long>(size_));
    bytes = round_up(bytes, kPage);
    const uint64_t have = backed();
    if (bytes <= have || info_.kind != DeviceKind::file)
        return; // devices and memory are backed over the whole mapping
    // What the file is now, given back if the allocation fails part-way
    // (ext4 and XFS keep the blocks, and the size, they got): the device
    // keeps its old size, file and all.
    struct stat st;
    const bool known = ::fstat(fd_, &st) == 0;
    const uint64_t old_size = known ? static_cast<uint64_t>(st.st_size) : 0;
    const auto holes = known ? holes_of(fd_, have, std::min(old_size, bytes))
                             : std::vector<std::pair<uint64_t, uint64_t>>();
    const int rc = allocate_blocks(fd_, have, bytes);
    if (rc != 0) {
        if (known) {
            punch_holes(fd_, holes);
            if (::fstat(fd_, &st) == 0 && static_cast<uint64_t>(st.st_size) > old_size)
                (void)::ftruncate(fd_, static_cast<off_t>(old_size));
        }
        // A file size limit or a quota is "no space" to the caller, as a
        // full file system is.
        if (rc == EFBIG || rc == EDQUOT)
            fail(-ENOSPC, "cannot grow %s to %llu bytes: %s", info_.path.c_str(),
                 static_cast<unsigned long long>(bytes), std::strerror(rc));
        fail_errno(rc, format("cannot grow %s to %llu bytes", info_.path.c_str(),
                              static_cast<unsigned long long>(bytes)));
    }
    populate(have, bytes);
    backed_.store(bytes, std::memory_order_release);
    if (known) {
        last_extend_.valid = true;
        last_extend_.backed = have;
        last_extend_.size = old_size;
        last_extend_.holes = std::move(holes);
    }
}

void Mapping::take_back_extend() noexcept {
    if (!last_extend_.valid)
        return;
    last_extend_.valid = false;
    backed_.store(last_extend_.backed, std::memory_order_release);
    punch_holes(fd_, last_extend_.holes);
    struct stat st;
    if (::fstat(fd_, &st) == 0 && static_cast<uint64_t>(st.st_size) > last_extend_.size)
        (void)::ftruncate(fd_, static_cast<off_t>(last_extend_.size));
}

void Mapping::name_new_file() {
    if (!unnamed_)
        return;
    const std::string &path = info_.path;
    // With durability=power the file's blocks and size are durable before
    // the name that makes it an arena is.
    if (sync_ && ::fdatasync(fd_) != 0)
        fail_errno(errno, "cannot write the new arena " + path + " back");
    const int rc = temp_path_.empty() ? link_unnamed(fd_, path) : rename_noreplace(temp_path_, path);
    if (rc == EEXIST)
        throw NameTaken(format("%s was created by another open at the same time",
                               path.c_str()));
    if (rc != 0)
        fail_errno(rc, "cannot give the new arena its name " + path);
    // From here a failed open removes it by its name (~Mapping), if the
    // path still names it.
    unnamed_ = false;
    temp_path_.clear();
    struct stat st;
    const std::string resolved = real_path(path);
    if (!resolved.empty() && ::stat(resolved.c_str(), &st) == 0 && st.st_dev == file_dev_ &&
        st.st_ino == file_ino_)
        file_path_ = resolved;
    // A directory on the way swapped for a symlink since the path was
    // judged would have taken the file elsewhere.
    if (file_arena_refused(file_path_))
        fail(-ENODEV, "%s is not a Device-DAX device (a file arena may not live under /dev)",
             path.c_str());
    if (remap_named_) {
        // An O_TMPFILE file keeps the name it was made with ("DIR/#INODE
        // (deleted)") in /proc/PID/fd and /proc/PID/maps even once linked,
        // as if the arena had been removed. Opened, locked and mapped again
        // through its name (the same pages, at the same address), it shows
        // as the file it is. Should the name lead elsewhere already, all
        // stays as it is.
        FdGuard named{::open(path.c_str(),
                             O_RDWR | O_CLOEXEC | O_NOFOLLOW | O_NONBLOCK | O_NOCTTY)};
        named.fd = named.fd >= 0 ? fd_above_standard_streams(named.fd) : -1;
        if (named.fd >= 0 && ::fstat(named.fd, &st) == 0 && st.st_dev == file_dev_ &&
            st.st_ino == file_ino_) {
            // The lock moves to the new descriptor. Between the two, another
            // open of the path may take it: that open has a whole arena,
            // which this one then leaves to it (-EBUSY), file and all.
            created_file_ = false;
            (void)::flock(fd_, LOCK_UN);
            try {
                lock_exclusive(named.fd, path);
            } catch (const Error &e) {
                // Only an open that took the lock (-EBUSY) owns the file
                // now; any other failure to lock it leaves the file this
                // open made, which it removes.
                if (e.code() != -EBUSY)
                    created_file_ = true;
                throw;
            }
            created_file_ = true;
            ::close(fd_);
            fd_ = named.release();
            // A mapping that reaches past the file's end (room to grow) is
            // populated up to the end only, as at open.
            const bool whole = backed() == size_;
            if (::mmap(base_, size_, PROT_READ | PROT_WRITE,
                       MAP_SHARED | MAP_FIXED | (whole ? MAP_POPULATE : 0), fd_,
                       0) == MAP_FAILED)
                // A failed MAP_FIXED may have unmapped the range: nothing of
                // it is usable, and the open fails.
                fail_errno(errno, "cannot map the new arena " + path + " again");
            if (!whole)
                populate(0, backed());
        } else {
            populate(0, backed());
        }
        remap_named_ = false;
    }
    if (sync_) {
        const int e = sync_directory_of(path);
        if (e != 0)
            fail_errno(e, "cannot make the name of the new arena " + path + " durable");
    }
}

void Mapping::keep() noexcept { keep_ = true; }

Mapping::~Mapping() {
    if (base_)
        ::munmap(base_, size_);
    if (!keep_ && fd_ >= 0) {
        // The open this mapping belongs to failed: what it created goes,
        // while the lock still keeps other openers out. The file is removed
        // only if the path (or its temporary name) still names it; an
        // unnamed one goes with its fd.
        struct stat st;
        const std::string &name = temp_path_.empty() ? file_path_ : temp_path_;
        if (unnamed_ && temp_path_.empty()) {
            // nothing at any path
        } else if ((created_file_ || !temp_path_.empty()) && ::lstat(name.c_str(), &st) == 0 &&
                   st.st_dev == file_dev_ && st.st_ino == file_ino_)
            (void)::unlink(name.c_str());
        else {
            punch_holes(fd_, filled_holes_);
            if (sized_empty_)
                (void)::ftruncate(fd_, 0);
            else if (grown_from_)
                (void)::ftruncate(fd_, static_cast<off_t>(grown_from_)); // its size as found
        }
    }
    if (fd_ >= 0) {
        // Unlocked before the close: a flock belongs to the open file
        // description, which a child forked meanwhile shares (the fd is only
        // closed at its exec), and closing our fd alone would leave the
        // arena locked until the child exits.
        (void)::flock(fd_, LOCK_UN);
        ::close(fd_);
    }
}

namespace {
std::atomic<testing::PersistProbe *> persist_probe{nullptr};
} // namespace

void testing::set_persist_probe(PersistProbe *probe) noexcept {
    persist_probe.store(probe, std::memory_order_release);
}

void testing::set_temporary_created_hook(void (*hook)(const char *temp)) noexcept {
    temporary_created_hook.store(hook, std::memory_order_relaxed);
}

void testing::force_temporary_names(bool on) noexcept {
    temporary_names.store(on, std::memory_order_relaxed);
}

bool Mapping::write_back(const void *p, size_t n) const noexcept {
    if (!n)
        return true;
    if (testing::PersistProbe *probe = persist_probe.load(std::memory_order_relaxed))
        probe->wrote_back(p, n);
    switch (info_.kind) {
    case DeviceKind::memory:
        return true;
    case DeviceKind::devdax:
        flush_range(p, n);
        return true;
    case DeviceKind::file: {
        auto start = round_down(reinterpret_cast<uintptr_t>(p), kPage);
        auto end = reinterpret_cast<uintptr_t>(p) + n;
        return ::msync(reinterpret_cast<void *>(start), end - start, MS_SYNC) == 0;
    }
    }
    return true;
}

void Mapping::drain() const noexcept {
    if (testing::PersistProbe *probe = persist_probe.load(std::memory_order_relaxed))
        probe->drained();
    if (info_.kind == DeviceKind::devdax)
        store_fence();
}

} // namespace platform
} // namespace daxkv
