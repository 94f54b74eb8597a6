// The arena file of the daxkv bench commands: what may be replaced by it.
#pragma once

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <fcntl.h>
#include <string>
#include <sys/file.h>
#include <sys/stat.h>
#include <unistd.h>
#include <vector>

#include "arena/arena.hpp"

namespace daxkv_cli {

// Whether every byte of the file open at fd (size bytes) is zero: its holes
// are skipped (SEEK_DATA), its data read. False where it cannot be read.
inline bool file_all_zero(int fd, off_t size) {
    std::vector<char> buf(1 << 20);
    off_t at = 0;
    while (at < size) {
        const off_t data = ::lseek(fd, at, SEEK_DATA);
        if (data < 0)
            return errno == ENXIO; // nothing but a hole to the end
        const off_t hole = ::lseek(fd, data, SEEK_HOLE);
        const off_t end = hole < 0 ? size : std::min(hole, size);
        for (off_t p = data; p < end;) {
            const ssize_t got =
                ::pread(fd, buf.data(), static_cast<size_t>(std::min<off_t>(end - p, buf.size())), p);
            if (got <= 0)
                return false;
            for (ssize_t i = 0; i < got; ++i)
                if (buf[i])
                    return false;
            p += got;
        }
        at = end;
    }
    return true;
}

// Make way for the benchmark's arena file at path: the benchmark formats
// (and unless --keep removes) it, so what is there is removed only if it is
// a daxkv arena no store has open (one a run left with --keep, or of
// another size), an empty file or zeros. Anything else (other data, an
// arena a running store holds, a device, a directory) is left as it is and
// refused: returns why, or "" once nothing is at path.
inline std::string make_way_for_bench_arena(const std::string &path) {
    struct stat st;
    if (::lstat(path.c_str(), &st) != 0)
        return errno == ENOENT ? "" : path + ": " + std::strerror(errno);
    if (!S_ISREG(st.st_mode))
        return path + " is not a regular file; the benchmark's arena is a file it may replace";
    const int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC | O_NONBLOCK | O_NOCTTY);
    if (fd < 0)
        return "cannot open " + path + ": " + std::strerror(errno);
    std::string why;
    // The store's own lock (platform::lock_exclusive): held, a store has
    // the arena open. Held here until the file is removed.
    if (::flock(fd, LOCK_EX | LOCK_NB) != 0) {
        why = errno == EWOULDBLOCK
                  ? path + " is in use: it is locked (by another daxkv store, or any program "
                           "that locks it)"
                  : "cannot lock " + path + ": " + std::strerror(errno);
    } else if (st.st_size != 0) {
        const daxkv::arena::SuperblockReport r = daxkv::arena::Arena::inspect_file(path);
        // Not only foreign data: an arena of another format version, one
        // cut short, or one whose superblocks are both damaged is refused
        // too, and 'daxkv info' names which.
        // Zeros means the whole file: its first 8 KiB (all that inspect_file
        // reads) may be zero in front of anything (a disk image's), and a
        // file shorter than a superblock is all zeros too.
        if (!r.valid_a && !r.valid_b && !file_all_zero(fd, st.st_size))
            why = path + " holds data that is not a daxkv arena this daxkv can open ('daxkv "
                         "info " + path + "' says what it is); the benchmark replaces only such "
                         "an arena or zeros (give --arena a new file, or remove it)";
    }
    if (why.empty() && ::unlink(path.c_str()) != 0 && errno != ENOENT)
        why = "cannot remove " + path + ": " + std::strerror(errno);
    ::close(fd);
    return why;
}

} // namespace daxkv_cli
