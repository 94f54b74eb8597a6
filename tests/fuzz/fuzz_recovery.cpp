// libFuzzer target over the recovery parser. The input is an arena image
// (superblocks, slot headers, payloads); seeds come from make_seeds.cpp.
// For each input:
//   1. check_image reads it: no crash, no read outside it (ASan), no write
//      (the bytes are compared), and its counts add up.
//   2. check_image --repair on a copy, then again read-only: clean, and the
//      same live entries as step 1 found.
//   3. The open path: the image as a file, Mapping::open, the Arena
//      constructor and the recovery scan. A non-arena image must be refused
//      with its bytes untouched; an arena must recover exactly the entries
//      check_image judged whole, drop the ones it judged torn or corrupt,
//      and leave no damage behind.
// A violated expectation aborts, which libFuzzer reports as a crash.
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <set>
#include <string>
#include <vector>

#include <fcntl.h>
#include <unistd.h>

#include "arena/arena.hpp"
#include "arena/inspect.hpp"
#include "internal/error.hpp"
#include "platform/mapping.hpp"

namespace ar = daxkv::arena;

namespace {

constexpr size_t kMaxImage = 256 * 1024;

[[noreturn]] void broken(const char *what) {
    std::fprintf(stderr, "fuzz_recovery: expectation violated: %s\n", what);
    std::abort();
}
#define EXPECT(cond)                                                                               \
    do {                                                                                           \
        if (!(cond))                                                                               \
            broken(#cond);                                                                         \
    } while (0)

std::string image_path() {
    static std::string path;
    if (path.empty()) {
        const char *dir = access("/dev/shm", W_OK) == 0 ? "/dev/shm" : "/tmp";
        path = std::string(dir) + "/daxkv-fuzz-" + std::to_string(getpid()) + ".img";
        std::atexit([] { ::unlink(path.c_str()); });
    }
    return path;
}

void write_file(const std::string &path, const char *p, size_t n) {
    int fd = ::open(path.c_str(), O_RDWR | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
    EXPECT(fd >= 0);
    size_t done = 0;
    while (done < n) {
        ssize_t w = ::pwrite(fd, p + done, n - done, static_cast<off_t>(done));
        EXPECT(w > 0);
        done += static_cast<size_t>(w);
    }
    ::close(fd);
}

std::vector<char> read_file(const std::string &path, size_t n) {
    std::vector<char> v(n);
    int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
    EXPECT(fd >= 0);
    EXPECT(::pread(fd, v.data(), n, 0) == static_cast<ssize_t>(n));
    ::close(fd);
    return v;
}

// Whether check_image found the slot damaged: any finding but a stale
// duplicate and an entry its removal table says was removed later, both
// whole entries (the arena's scan returns them; the store withdraws them).
bool damaged_slot(const ar::ImageReport &r, uint32_t slot) {
    for (const auto &f : r.findings)
        if (f.slot == slot && std::strcmp(f.reason, "stale") != 0 &&
            std::strcmp(f.reason, "removed") != 0)
            return true;
    return false;
}

bool removed_slot(const ar::ImageReport &r, uint32_t slot) {
    for (const auto &f : r.findings)
        if (f.slot == slot && std::strcmp(f.reason, "removed") == 0)
            return true;
    return false;
}

void check_counts(const ar::ImageReport &r) {
    EXPECT(r.committed == r.live + r.torn + r.bad_header + r.bad_value + r.stale);
    EXPECT(r.findings.size() == r.torn + r.bad_header + r.bad_value + r.stale);
    if (r.state != ar::ImageState::arena)
        EXPECT(r.committed == 0 && r.live == 0);
}

void open_path(const char *img, size_t size) {
    // The mapping uses whole pages; judge the same bytes it will see.
    const size_t n = size / 4096 * 4096;
    if (n < ar::kHeaderOffset)
        return;
    std::vector<char> copy(img, img + n);
    ar::ImageReport r = ar::check_image(copy.data(), n, ar::CheckOptions{});
    const std::string path = image_path();
    write_file(path, img, n);

    ar::Arena::Options opt;
    opt.durability = ar::Durability::process;
    opt.verify = ar::Verify::recover;
    opt.threads = 1;
    opt.slot_bytes = r.state == ar::ImageState::arena ? r.sb.slot_bytes : 64;
    opt.meta_bytes = r.state == ar::ImageState::arena ? r.sb.meta_bytes : 0;
    bool layout_matches = false;
    if (r.state == ar::ImageState::arena) {
        ar::Layout want = ar::compute_layout(n, opt.slot_bytes, opt.meta_bytes);
        layout_matches = want.slot_count == r.sb.slot_count &&
                         want.data_offset == r.sb.data_offset && r.sb.arena_bytes == n;
    }
    try {
        daxkv::platform::MapRequest req;
        req.path = path;
        req.create = false;
        auto map = daxkv::platform::Mapping::open(req);
        ar::Arena arena(std::move(map), opt);
        // Only an arena of this layout, an all-zero start, or an arena of
        // another layout whose last user kept no index (nothing to lose:
        // the open lays it out anew) opens.
        EXPECT(layout_matches || r.state == ar::ImageState::empty ||
               (r.state == ar::ImageState::arena && !r.recoverable));
        ar::RecoveryCounts counts;
        std::vector<ar::RecoveredEntry> got = arena.scan(counts);
        if (r.state == ar::ImageState::arena && r.recoverable) {
            EXPECT(counts.torn == r.torn);
            EXPECT(counts.corrupt == r.bad_header + r.bad_value);
            EXPECT(got.size() == r.live + r.stale);
            std::set<std::string> keys;
            for (const auto &e : got) {
                EXPECT(!damaged_slot(r, e.slot));
                EXPECT(e.key_len >= 1 && e.key_len <= ar::kKeyMax);
                EXPECT(e.value_len <= r.sb.slot_bytes);
                if (!removed_slot(r, e.slot))
                    keys.insert(std::string(e.key, e.key_len));
            }
            EXPECT(keys.size() == r.live);
        } else {
            EXPECT(got.empty());
        }
        // What recovery leaves behind checks clean.
        const auto &m = arena.mapping();
        ar::ImageReport after = ar::check_image(m.base(), m.size(), ar::CheckOptions{});
        check_counts(after);
        EXPECT(after.state == ar::ImageState::arena && after.copy_a_valid && after.copy_b_valid);
        EXPECT(after.recoverable);
        EXPECT(after.torn == 0 && after.bad_header == 0 && after.bad_value == 0);
        EXPECT(after.live == (r.state == ar::ImageState::arena && r.recoverable ? r.live : 0));
    } catch (const daxkv::Error &e) {
        // Refused: never an arena this layout opens, and not a byte changed.
        EXPECT(!layout_matches);
        EXPECT(r.state != ar::ImageState::empty || e.code() == -EINVAL);
        if (r.state == ar::ImageState::damaged_arena)
            EXPECT(e.code() == daxkv::kErrCorrupt || e.code() == -EINVAL);
        std::vector<char> now = read_file(path, n);
        EXPECT(std::memcmp(now.data(), img, n) == 0);
    }
}

} // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    if (size > kMaxImage)
        return 0;
    const char *img = reinterpret_cast<const char *>(data);
    // 1. Read-only check.
    std::vector<char> copy(img, img + size);
    ar::ImageReport r = ar::check_image(copy.data(), size, ar::CheckOptions{});
    check_counts(r);
    EXPECT(size == 0 || std::memcmp(copy.data(), img, size) == 0);
    // 2. Repair, then check again.
    ar::CheckOptions fix;
    fix.repair = true;
    ar::ImageReport rr = ar::check_image(copy.data(), size, fix);
    EXPECT(rr.live == r.live && rr.withdrawn == r.torn + r.bad_header + r.bad_value + r.stale);
    ar::ImageReport again = ar::check_image(copy.data(), size, ar::CheckOptions{});
    check_counts(again);
    EXPECT(again.state == r.state && again.live == r.live);
    EXPECT(again.torn == 0 && again.bad_header == 0 && again.bad_value == 0 && again.stale == 0);
    EXPECT(r.state != ar::ImageState::arena || (again.copy_a_valid && again.copy_b_valid));
    // 3. The open path.
    open_path(img, size);
    return 0;
}
