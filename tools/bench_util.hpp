// Pieces shared by the daxkv bench commands.
#pragma once

#include <cerrno>
#include <cstdint>
#include <cstring>
#include <memory>
#include <new>
#include <string>
#include <sys/mman.h>
#include <unistd.h>
#include <vector>

#include <daxkv.h>

#include "interrupt.hpp"

namespace daxkv_cli {

// Page-aligned, pre-faulted anonymous memory (so that timings do not
// include first-touch page faults).
struct Buffer {
    char *p = nullptr;
    size_t n = 0;
    explicit Buffer(size_t bytes) : n(bytes) {
        void *m = mmap(nullptr, n, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
        if (m == MAP_FAILED)
            throw std::bad_alloc();
        p = static_cast<char *>(m);
        std::memset(p, 0, n);
    }
    ~Buffer() {
        if (p)
            munmap(p, n);
    }
    Buffer(const Buffer &) = delete;
    Buffer &operator=(const Buffer &) = delete;
};

// The arena files of a benchmark run, removed as the run ends, however it
// ends (unless --keep): one that failed half way used to leave them
// behind, holding their size in RAM under /dev/shm. Declared before the
// stores in them (StoreHandle), so that those are closed first.
class ArenaFiles {
public:
    explicit ArenaFiles(bool keep) : keep_(keep) {}
    ArenaFiles(const ArenaFiles &) = delete;
    ArenaFiles &operator=(const ArenaFiles &) = delete;
    ~ArenaFiles() {
        if (!keep_)
            for (const std::string &p : paths_)
                ::unlink(p.c_str());
    }
    void add(const std::string &path) {
        paths_.push_back(path);
        if (!keep_)
            interrupted_.push_back(std::make_unique<RemovedIfInterrupted>(path));
    }

private:
    bool keep_;
    std::vector<std::string> paths_;
    std::vector<std::unique_ptr<RemovedIfInterrupted>> interrupted_; // and on Ctrl-C
};

// A store a benchmark opened, closed as the run ends, however it ends.
struct StoreCloser {
    void operator()(daxkv_store *s) const noexcept { daxkv_close(s); }
};
using StoreHandle = std::unique_ptr<daxkv_store, StoreCloser>;

// Chunk i gets its own pseudo-random bytes, so a misplaced chunk is caught.
inline void fill_pattern(char *p, size_t n, uint64_t seed) {
    uint64_t x = seed * 0x9E3779B97F4A7C15ull + 1;
    size_t i = 0;
    for (; i + 8 <= n; i += 8) {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        std::memcpy(p + i, &x, 8);
    }
    for (; i < n; ++i)
        p[i] = static_cast<char>(x >> (8 * (i % 8)));
}

// Why a batch call did fewer than all of its items: the call's own error,
// else the first item's that failed (an item that did not fail says 0,
// "Success", which explains nothing), else -EIO.
inline int batch_failure(int rc, const std::vector<daxkv_item> &items) {
    if (rc < 0)
        return rc;
    for (const daxkv_item &it : items)
        if (it.status < 0)
            return it.status;
    return -EIO;
}

} // namespace daxkv_cli
