// Power-off test of the store on a real Device-DAX device, run inside the
// QEMU guest of tests/vm/run-guest-tests.sh.
//
//   guest_store_crash --write DEVICE SEED   run a seeded put/replace/remove
//       workload with durability=power until the guest is powered off; prints
//       STORE-MIDWAY after kMidway acknowledged operations (the host kills QEMU
//       when it sees that line, so the power goes while operations run)
//   guest_store_crash --check DEVICE SEED   on the next boot: reopen the store
//       and check it against the workload replayed up to the last
//       acknowledged operation
//
// The arena is the first kArenaBytes of DEVICE. After each operation returns,
// its number is written to a progress record kProgressOffset bytes into the
// same device (outside the arena) and flushed from the CPU cache, so the
// checker knows which operations were acknowledged: operations 0..N-1 were,
// operation N may or may not have reached the device, and N+1 never started.
// Hence every key must read back exactly as after operation N-1, except the
// key of operation N, which may also read as after N. Nothing may have wrong
// bytes, and the store must open without DAXKV_E_CORRUPT.
#include <cerrno>
#include <cinttypes>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <string>
#include <vector>

#include <fcntl.h>
#include <immintrin.h>
#include <sys/mman.h>
#include <unistd.h>

#include "daxkv.h"

#ifndef MAP_SHARED_VALIDATE
#define MAP_SHARED_VALIDATE 0x03
#endif
#ifndef MAP_SYNC
#define MAP_SYNC 0x80000
#endif

namespace {

constexpr uint64_t MiB = 1ull << 20;
constexpr uint64_t kArenaBytes = 64 * MiB;
constexpr uint64_t kSlotBytes = 64 * 1024;
constexpr uint64_t kProgressOffset = 128 * MiB;
constexpr uint32_t kKeys = 200;
constexpr uint64_t kMidway = 300;
constexpr uint64_t kProgressMagic = 0x53534f5250584b44ull; // "DKXPROSS"

struct Progress {
    uint64_t magic;
    uint64_t seed;
    uint64_t acked; // operations 0..acked-1 returned
};

uint64_t splitmix64(uint64_t x) {
    uint64_t z = x + 0x9e3779b97f4a7c15ull;
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
    return z ^ (z >> 31);
}

enum class OpKind { replace, put, remove };

struct Op {
    uint32_t key;
    OpKind kind;
    uint64_t len;
};

Op op_at(uint64_t seed, uint64_t i) {
    uint64_t r = splitmix64(seed * 0x100000001b3ull ^ i);
    Op op;
    op.key = static_cast<uint32_t>(r % kKeys);
    unsigned k = static_cast<unsigned>((r >> 16) % 10);
    op.kind = k < 6 ? OpKind::replace : k < 8 ? OpKind::put : OpKind::remove;
    op.len = 16 + (r >> 32) % (kSlotBytes - 15);
    return op;
}

std::string key_name(uint32_t k) {
    char b[16];
    std::snprintf(b, sizeof b, "k%03u", k);
    return b;
}

// The value operation `version` writes to key k: a header naming both, then
// bytes derived from them, so a reader can tell exactly which put it sees.
std::vector<uint8_t> value_of(uint32_t k, uint64_t version, uint64_t len) {
    std::vector<uint8_t> v(len);
    uint64_t x = splitmix64((uint64_t(k) << 40) ^ version);
    for (uint64_t i = 0; i < len; i += 8) {
        x = splitmix64(x);
        std::memcpy(&v[i], &x, std::min<uint64_t>(8, len - i));
    }
    std::memcpy(&v[0], &version, 8);
    std::memcpy(&v[8], &k, 4);
    return v;
}

// What each key holds: the operation number of its value, or -1 if absent.
struct Model {
    std::vector<int64_t> version = std::vector<int64_t>(kKeys, -1);
    std::vector<uint64_t> len = std::vector<uint64_t>(kKeys, 0);

    void apply(uint64_t i, const Op &op) {
        if (op.kind == OpKind::remove) {
            version[op.key] = -1;
        } else if (op.kind == OpKind::replace || version[op.key] < 0) {
            version[op.key] = static_cast<int64_t>(i);
            len[op.key] = op.len;
        } // a plain put of a present key is DAXKV_EXISTED: no change
    }
};

// The writer claims the device whatever earlier tests left on it
// (on_mismatch=reformat); the checker must find exactly the writer's arena.
daxkv_store *open_store(const char *device, bool claim) {
    daxkv_config *cfg = nullptr;
    daxkv_store *s = nullptr;
    int rc = daxkv_config_new(&cfg);
    const char *settings[][2] = {{"slot_bytes", "64KiB"}, {"meta_bytes", "64"},
                                 {"durability", "power"}, {"verify", "recover"},
                                 {"eviction", "none"},
                                 {"on_mismatch", claim ? "reformat" : "fail"}};
    for (auto &kv : settings)
        if (!rc)
            rc = daxkv_config_set(cfg, kv[0], kv[1]);
    if (!rc)
        rc = daxkv_config_add_device(cfg, device, kArenaBytes);
    if (!rc)
        rc = daxkv_open(&s, cfg);
    if (rc)
        std::printf("open %s: %s (%d)\n", device, daxkv_errmsg(), rc);
    daxkv_config_free(cfg);
    return s;
}

// The progress record, mapped with MAP_SYNC so that flushed stores are
// durable; nullptr on failure.
Progress *map_progress(const char *device, int *fd_out) {
    int fd = ::open(device, O_RDWR | O_CLOEXEC);
    if (fd < 0) {
        std::printf("open %s: %s\n", device, std::strerror(errno));
        return nullptr;
    }
    void *p = ::mmap(nullptr, 4096, PROT_READ | PROT_WRITE, MAP_SHARED_VALIDATE | MAP_SYNC, fd,
                     static_cast<off_t>(kProgressOffset));
    if (p == MAP_FAILED) {
        std::printf("mmap progress record: %s\n", std::strerror(errno));
        ::close(fd);
        return nullptr;
    }
    *fd_out = fd;
    return static_cast<Progress *>(p);
}

void persist_word(volatile uint64_t *w, uint64_t v) {
    *w = v;
    _mm_clflush(const_cast<uint64_t *>(w));
    _mm_sfence();
}

int write_workload(const char *device, uint64_t seed) {
    int fd = -1;
    Progress *pr = map_progress(device, &fd);
    if (!pr)
        return 1;
    persist_word(&pr->acked, 0);
    persist_word(&pr->seed, seed);
    persist_word(&pr->magic, kProgressMagic);
    daxkv_store *s = open_store(device, true);
    if (!s)
        return 1;
    for (uint64_t i = 0;; ++i) {
        Op op = op_at(seed, i);
        std::string k = key_name(op.key);
        int rc;
        if (op.kind == OpKind::remove) {
            rc = daxkv_remove(s, k.data(), k.size(), 0);
            if (rc == -ENOENT)
                rc = 0;
        } else {
            std::vector<uint8_t> v = value_of(op.key, i, op.len);
            rc = daxkv_put(s, k.data(), k.size(), v.data(), v.size(),
                           op.kind == OpKind::replace ? DAXKV_REPLACE : 0);
            if (rc == DAXKV_EXISTED && op.kind == OpKind::put)
                rc = 0;
        }
        if (rc != 0) {
            std::printf("operation %" PRIu64 " on %s failed: %s (%d)\n", i, k.c_str(),
                        daxkv_errmsg(), rc);
            return 1;
        }
        persist_word(&pr->acked, i + 1);
        if (i + 1 == kMidway) {
            std::printf("STORE-MIDWAY seed %" PRIu64 "\n", seed);
            std::fflush(stdout);
        }
    }
}

int check_workload(const char *device, uint64_t seed) {
    int fd = -1;
    Progress *pr = map_progress(device, &fd);
    if (!pr)
        return 1;
    if (pr->magic != kProgressMagic || pr->seed != seed) {
        std::printf("no progress record of seed %" PRIu64 " on %s\n", seed, device);
        return 1;
    }
    const uint64_t acked = pr->acked;
    ::munmap(pr, 4096);
    ::close(fd);

    Model before; // after operations 0..acked-1
    for (uint64_t i = 0; i < acked; ++i)
        before.apply(i, op_at(seed, i));
    Model after = before; // the unacknowledged operation `acked` done as well
    const Op pending = op_at(seed, acked);
    after.apply(acked, pending);

    daxkv_store *s = open_store(device, false);
    if (!s)
        return 1;
    int bad = 0, present = 0, pending_done = -1;
    std::vector<uint8_t> buf(kSlotBytes);
    for (uint32_t k = 0; k < kKeys; ++k) {
        std::string name = key_name(k);
        size_t len = 0;
        int rc = daxkv_get(s, name.data(), name.size(), buf.data(), buf.size(), &len);
        bool may_be_after = k == pending.key;
        if (rc == -ENOENT) {
            bool ok = before.version[k] < 0 || (may_be_after && after.version[k] < 0);
            if (!ok) {
                std::printf("%s: missing, expected version %" PRId64 "\n", name.c_str(),
                            before.version[k]);
                ++bad;
            }
            if (may_be_after && before.version[k] != after.version[k])
                pending_done = before.version[k] < 0 ? 1 : 0;
            continue;
        }
        if (rc != 0) {
            std::printf("%s: get failed: %s (%d)\n", name.c_str(), daxkv_errmsg(), rc);
            ++bad;
            continue;
        }
        ++present;
        auto matches = [&](const Model &m) {
            if (m.version[k] < 0 || m.len[k] != len)
                return false;
            std::vector<uint8_t> want = value_of(k, static_cast<uint64_t>(m.version[k]), len);
            return std::memcmp(want.data(), buf.data(), len) == 0;
        };
        if (matches(before)) {
            if (may_be_after && before.version[k] != after.version[k])
                pending_done = 0;
        } else if (may_be_after && matches(after)) {
            pending_done = 1;
        } else {
            uint64_t seen_version = 0;
            std::memcpy(&seen_version, buf.data(), 8);
            std::printf("%s: wrong bytes (%zu bytes, header version %" PRIu64
                        "), expected version %" PRId64 "\n",
                        name.c_str(), len, seen_version, before.version[k]);
            ++bad;
        }
    }
    struct daxkv_stats st;
    std::memset(&st, 0, sizeof st);
    st.struct_size = sizeof st;
    if (daxkv_stats(s, &st) != 0) {
        std::printf("daxkv_stats: %s\n", daxkv_errmsg());
        ++bad;
    }
    if (st.recovery_dropped_corrupt != 0) {
        // Power loss tears at most the operation in flight; corrupt entries
        // mean a committed entry lost bytes.
        std::printf("recovery found %" PRIu64 " corrupt entries\n", st.recovery_dropped_corrupt);
        ++bad;
    }
    if (st.entries != static_cast<uint64_t>(present)) {
        std::printf("stats report %" PRIu64 " entries, %d keys read back\n", st.entries, present);
        ++bad;
    }
    std::printf("store-check seed %" PRIu64 ": %" PRIu64 " acknowledged operations, %d keys "
                "present, operation %" PRIu64 " (in flight at power-off) %s; recovery kept %"
                PRIu64 " entries, dropped %" PRIu64 " torn, %" PRIu64 " corrupt, %" PRIu64
                " stale; %d problems\n",
                seed, acked, present, acked,
                pending_done < 0 ? "changed nothing visible"
                                 : pending_done ? "had completed" : "had not reached the device",
                st.recovered_entries, st.recovery_dropped_torn, st.recovery_dropped_corrupt,
                st.recovery_dropped_stale, bad);
    daxkv_close(s);
    return bad == 0 && acked >= kMidway ? 0 : 1;
}

} // namespace

int main(int argc, char **argv) {
    std::setvbuf(stdout, nullptr, _IOLBF, 0);
    if (argc == 4 && std::strcmp(argv[1], "--write") == 0)
        return write_workload(argv[2], std::strtoull(argv[3], nullptr, 10));
    if (argc == 4 && std::strcmp(argv[1], "--check") == 0)
        return check_workload(argv[2], std::strtoull(argv[3], nullptr, 10));
    std::fprintf(stderr, "usage: %s --write|--check DEVICE SEED\n", argv[0]);
    return 2;
}
