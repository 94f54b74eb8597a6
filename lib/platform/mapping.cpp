#include "platform/mapping.hpp"

#include <algorithm>
#include <cerrno>
#include <cstring>
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

// A regular file under /dev is almost always a mistake (a missing DAX node
// recreated as a file by a careless write), so it is refused. /dev/shm is
// the exception: it is the standard tmpfs mount for shared memory.
bool under_dev(const std::string &path) {
    return path.rfind("/dev/", 0) == 0 && path.rfind("/dev/shm/", 0) != 0;
}

// Give a file the blocks of [from, to) and make it at least `to` long; 0 or
// an errno. Reserving the blocks (rather than leaving the file sparse) makes
// a full file system fail here instead of with a SIGBUS at first touch.
// File systems without fallocate get a plain (sparse) size change.
int allocate_blocks(int fd, uint64_t from, uint64_t to) {
    int rc = ::posix_fallocate(fd, static_cast<off_t>(from), static_cast<off_t>(to - from));
    if (rc == EOPNOTSUPP || rc == EINVAL)
        rc = ::ftruncate(fd, static_cast<off_t>(to)) == 0 ? 0 : errno;
    return rc;
}

} // namespace

void lock_exclusive(int fd, const std::string &what) {
    if (::flock(fd, LOCK_EX | LOCK_NB) == 0)
        return;
    int e = errno;
    if (e != EWOULDBLOCK)
        fail_errno(e, "cannot lock " + what);
    struct stat st;
    long holder = -1;
    if (::fstat(fd, &st) == 0)
        holder = lock_holder_pid(st.st_dev, st.st_ino);
    if (holder > 0)
        fail(-EBUSY, "%s is in use by another daxkv store (pid %ld holds its lock)", what.c_str(),
             holder);
    fail(-EBUSY, "%s is in use by another daxkv store (its lock is held)", what.c_str());
}

std::unique_ptr<Mapping> Mapping::open(const MapRequest &req) {
    std::unique_ptr<Mapping> m(new Mapping());
    int mmap_flags = MAP_SHARED;
    FdGuard fd{-1};

    if (req.path == "mem:") {
        // Anonymous shared memory: volatile, page-aligned, nothing to lock.
        if (req.bytes == 0)
            fail(-EINVAL, "mem: needs a size");
        m->size_ = round_down(std::max(req.bytes, req.reserve_bytes), kPage);
        if (m->size_ == 0)
            fail(-EINVAL, "mem: size %llu is below one page",
                 static_cast<unsigned long long>(req.bytes));
        m->backed_ = m->size_;
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
        if (req.sync)
            mmap_flags = MAP_SHARED_VALIDATE | MAP_SYNC;
    } else {
        if (exists && S_ISDIR(st.st_mode))
            fail(-EISDIR, "%s is a directory, not a device or arena file", req.path.c_str());
        if (exists && !S_ISREG(st.st_mode))
            fail(-ENODEV, "%s is neither a Device-DAX device nor a regular file",
                 req.path.c_str());
        if (under_dev(req.path))
            fail(-ENODEV, "%s is not a Device-DAX device (a file arena may not live under /dev)",
                 req.path.c_str());
        if (!exists && !req.create)
            fail(-ENOENT, "%s does not exist", req.path.c_str());
        int flags = O_RDWR | O_CLOEXEC | (req.create ? O_CREAT : 0);
        fd.fd = ::open(req.path.c_str(), flags, 0600);
        if (fd.fd < 0)
            fail_errno(errno, "cannot open " + req.path);
        if (::fstat(fd.fd, &st) != 0)
            fail_errno(errno, "cannot stat " + req.path);
        if (!S_ISREG(st.st_mode))
            fail(-ENODEV, "%s is not a regular file", req.path.c_str());
        lock_exclusive(fd.fd, req.path);

        uint64_t have = static_cast<uint64_t>(st.st_size);
        uint64_t want = req.bytes ? req.bytes : have;
        if (want == 0)
            fail(-EINVAL, "%s is empty: give the arena size to create it", req.path.c_str());
        want = round_down(want, kPage);
        if (want == 0)
            fail(-EINVAL, "arena size %llu for %s is below one page",
                 static_cast<unsigned long long>(req.bytes), req.path.c_str());
        if (have == 0) {
            int rc = allocate_blocks(fd.fd, 0, want);
            if (rc != 0) {
                if (::ftruncate(fd.fd, 0) != 0) {
                    // leave it empty if we can; the error below says why
                }
                fail_errno(rc, format("cannot size %s to %llu bytes", req.path.c_str(),
                                      static_cast<unsigned long long>(want)));
            }
            m->created_ = true;
        } else if (have < want && req.min_existing && have >= req.min_existing) {
            int rc = allocate_blocks(fd.fd, have, want);
            if (rc != 0) {
                if (::ftruncate(fd.fd, static_cast<off_t>(have)) != 0) {
                    // the error below says why; the size is what it was if we can
                }
                fail_errno(rc, format("cannot extend %s from %llu to %llu bytes (its slot "
                                      "headers go on top of the payloads)",
                                      req.path.c_str(), static_cast<unsigned long long>(have),
                                      static_cast<unsigned long long>(want)));
            }
            m->grown_from_ = have;
        } else if (have < want) {
            const uint64_t need = req.min_existing ? req.min_existing : want;
            fail(-ENOSPC, "%s holds %llu bytes, less than the %llu bytes asked for",
                 req.path.c_str(), static_cast<unsigned long long>(have),
                 static_cast<unsigned long long>(need));
        }
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
    const bool populate_part = is_file && m->backed() < m->size_;
    if (is_file && !populate_part)
        mmap_flags |= MAP_POPULATE;
    // From here the mapping owns the fd: a failure below undoes an extension.
    m->fd_ = fd.release();
    void *p = ::mmap(nullptr, m->size_, PROT_READ | PROT_WRITE, mmap_flags, m->fd_, 0);
    if (p == MAP_FAILED && (mmap_flags & MAP_SYNC) && (errno == EOPNOTSUPP || errno == EINVAL)) {
        // MAP_SYNC is refused by devices that need no synchronous faults;
        // cache-line flushes still give durability on the DAX mapping.
        mmap_flags = MAP_SHARED | (mmap_flags & MAP_POPULATE);
        p = ::mmap(nullptr, m->size_, PROT_READ | PROT_WRITE, mmap_flags, m->fd_, 0);
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
    if (bytes > size_)
        fail(-ENOSPC, "%s: %llu bytes asked for, but only %llu are mapped", info_.path.c_str(),
             static_cast<unsigned long long>(bytes), static_cast<unsigned long long>(size_));
    bytes = round_up(bytes, kPage);
    const uint64_t have = backed();
    if (bytes <= have || info_.kind != DeviceKind::file)
        return; // devices and memory are backed over the whole mapping
    const int rc = allocate_blocks(fd_, have, bytes);
    if (rc != 0) {
        // The file keeps its size (it is set last). A file size limit or a
        // quota is "no space" to the caller, as a full file system is.
        if (rc == EFBIG || rc == EDQUOT)
            fail(-ENOSPC, "cannot grow %s to %llu bytes: %s", info_.path.c_str(),
                 static_cast<unsigned long long>(bytes), std::strerror(rc));
        fail_errno(rc, format("cannot grow %s to %llu bytes", info_.path.c_str(),
                              static_cast<unsigned long long>(bytes)));
    }
    populate(have, bytes);
    backed_.store(bytes, std::memory_order_release);
}

Mapping::~Mapping() {
    if (base_)
        ::munmap(base_, size_);
    if (grown_from_ && fd_ >= 0 && ::ftruncate(fd_, static_cast<off_t>(grown_from_)) != 0) {
        // Best effort: a failed open leaves the file as long as it found it.
    }
    if (fd_ >= 0)
        ::close(fd_); // releases the flock
}

void Mapping::persist(const void *p, size_t n) const noexcept {
    if (!n)
        return;
    switch (info_.kind) {
    case DeviceKind::memory:
        return;
    case DeviceKind::devdax:
        flush_range(p, n);
        store_fence();
        return;
    case DeviceKind::file: {
        auto start = round_down(reinterpret_cast<uintptr_t>(p), kPage);
        auto end = reinterpret_cast<uintptr_t>(p) + n;
        ::msync(reinterpret_cast<void *>(start), end - start, MS_SYNC);
        return;
    }
    }
}

} // namespace platform
} // namespace daxkv
