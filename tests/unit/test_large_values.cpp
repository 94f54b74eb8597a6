// Values past 2 GiB and past 4 GiB: every length, offset and count on the
// way (the C calls, the copy engine's chunks, the block hashes, the slot
// header, recovery) must be 64-bit, and a value that large must come back
// byte for byte from every call that moves it.
//
// The source is a pattern of 257 pages mapped again and again, so that a
// value of gigabytes costs a megabyte: 257 is odd, so an offset that went
// wrong by any power of two (a length cut to 31 or 32 bits, a chunk placed
// from a truncated offset) lands on another phase of the pattern, and the
// comparison finds it. The arena and the buffer a get copies into are real
// memory, about twice the value. The value past 4 GiB catches a length cut
// to 32 bits as well as one cut to 31; it runs where there is memory for
// it, and the one past 2 GiB where there is only memory for that. Each
// says so when it skips. Neither runs under the sanitizers (their shadow
// memory for gigabytes; what these tests look for is a wrong length, which
// the plain build shows) nor on a device under test (too small).
//
// On a virtual machine whose page faults go through the hypervisor, the
// first touch of gigabytes dominates: the 4 GiB test took about 30 s on
// the 2-vCPU development guest, the 2 GiB one about 16 s.
#include "helpers.hpp"

#include <sys/statvfs.h>

#include <fstream>

using namespace daxkv_test;

namespace {

constexpr uint64_t kGiB = 1ull << 30;
constexpr size_t kPage = 4096;
constexpr size_t kPeriod = 257 * kPage;

// MemAvailable from /proc/meminfo, in bytes (0 when it cannot be read).
uint64_t mem_available() {
    std::ifstream in("/proc/meminfo");
    std::string name;
    uint64_t kib = 0;
    std::string unit;
    while (in >> name >> kib >> unit)
        if (name == "MemAvailable:")
            return kib * 1024;
    return 0;
}

uint64_t free_bytes_under(const std::string &dir) {
    struct statvfs st;
    if (::statvfs(dir.c_str(), &st) != 0)
        return 0;
    return static_cast<uint64_t>(st.f_bavail) * st.f_frsize;
}

// len bytes (read-only) of a 257-page pattern repeated from its start.
class RepeatedPattern {
public:
    explicit RepeatedPattern(size_t len) : len_(len) {
        fd_ = ::memfd_create("daxkv-pattern", MFD_CLOEXEC);
        if (fd_ < 0 || ::ftruncate(fd_, kPeriod) != 0)
            throw std::runtime_error(std::string("memfd: ") + std::strerror(errno));
        void *w = ::mmap(nullptr, kPeriod, PROT_READ | PROT_WRITE, MAP_SHARED, fd_, 0);
        if (w == MAP_FAILED)
            throw std::runtime_error(std::string("mmap: ") + std::strerror(errno));
        const std::vector<uint8_t> bytes = pattern(0x1a5e, kPeriod);
        std::memcpy(w, bytes.data(), kPeriod);
        ::munmap(w, kPeriod);
        // One reservation, then the period mapped over it piece by piece.
        span_ = (len + kPeriod - 1) / kPeriod * kPeriod;
        void *base = ::mmap(nullptr, span_, PROT_NONE, MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE,
                            -1, 0);
        if (base == MAP_FAILED)
            throw std::runtime_error(std::string("mmap: ") + std::strerror(errno));
        base_ = static_cast<uint8_t *>(base);
        for (size_t off = 0; off < span_; off += kPeriod)
            if (::mmap(base_ + off, kPeriod, PROT_READ, MAP_SHARED | MAP_FIXED, fd_, 0) == MAP_FAILED)
                throw std::runtime_error(std::string("mmap: ") + std::strerror(errno));
    }
    ~RepeatedPattern() {
        ::munmap(base_, span_);
        ::close(fd_);
    }
    RepeatedPattern(const RepeatedPattern &) = delete;
    RepeatedPattern &operator=(const RepeatedPattern &) = delete;

    const uint8_t *data() const { return base_; }
    size_t size() const { return len_; }

private:
    int fd_ = -1;
    uint8_t *base_ = nullptr;
    size_t len_, span_ = 0;
};

// Private anonymous memory for a get to copy into, returned on destruction.
// In huge pages where the kernel has them: a first touch of gigabytes in
// 4 KiB pages took seconds on a virtual machine, where each fault is dear.
class Buffer {
public:
    explicit Buffer(size_t len) : len_(len) {
        void *p = ::mmap(nullptr, len, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
        if (p == MAP_FAILED)
            throw std::runtime_error(std::string("mmap: ") + std::strerror(errno));
        (void)::madvise(p, len, MADV_HUGEPAGE); // a hint: EINVAL without THP
        p_ = static_cast<uint8_t *>(p);
    }
    ~Buffer() { ::munmap(p_, len_); }
    Buffer(const Buffer &) = delete;
    Buffer &operator=(const Buffer &) = delete;

    uint8_t *data() { return p_; }
    // Every byte set again, so that a call that leaves some out is seen.
    void scribble() { std::memset(p_, 0xEE, len_); }

private:
    uint8_t *p_;
    size_t len_;
};

// "" when the n bytes at got are the pattern's, else where they first differ.
std::string first_difference(const uint8_t *got, const RepeatedPattern &want, size_t n) {
    if (std::memcmp(got, want.data(), n) == 0)
        return "";
    for (size_t off = 0; off < n; off += kPage) {
        const size_t len = std::min(kPage, n - off);
        if (std::memcmp(got + off, want.data() + off, len) != 0)
            for (size_t i = off; i < off + len; ++i)
                if (got[i] != want.data()[i])
                    return "first differing byte at offset " + std::to_string(i) + " of " +
                           std::to_string(n);
    }
    return "differs (memcmp), but no byte does on a second look";
}

// The checks of one value of len bytes: put, get, get_batch, a lease,
// put_batch of it after a remove (a replace would need a second slot), a
// reopen that hashes it again (verify=read), and a get into a buffer one
// byte short.
void round_trip(size_t len) {
    TempDir dir;
    if (free_bytes_under(dir.path()) < len + kGiB / 4)
        GTEST_SKIP() << "needs " << len << " bytes free under " << dir.path();

    const RepeatedPattern src(len);
    Buffer dst(len);
    const std::string path = dir.file("large.arena");
    StoreSpec spec(len, 1);
    spec.set("capacity", "payload");
    spec.arena_bytes = len;
    StorePtr store;
    ASSERT_EQ(open_store(&store, path, spec), 0) << daxkv_errmsg();
    const std::string key = "large";

    ASSERT_EQ(daxkv_put(store.get(), key.data(), key.size(), src.data(), len, 0), 0)
        << daxkv_errmsg();
    dst.scribble();
    size_t got = 0;
    ASSERT_EQ(daxkv_get(store.get(), key.data(), key.size(), dst.data(), len, &got), 0)
        << daxkv_errmsg();
    EXPECT_EQ(got, len);
    EXPECT_EQ(first_difference(dst.data(), src, len), "") << "daxkv_get";

    // One byte short: nothing copied that the caller did not ask for, and
    // the size needed reported in full.
    got = 0;
    EXPECT_EQ(daxkv_get(store.get(), key.data(), key.size(), dst.data(), len - 1, &got), -ENOBUFS);
    EXPECT_EQ(got, len);

    dst.scribble();
    daxkv_item item{};
    item.key = key.data();
    item.key_len = key.size();
    item.data = dst.data();
    item.len = len;
    EXPECT_EQ(daxkv_get_batch(store.get(), &item, 1, 0), 1) << daxkv_errmsg();
    EXPECT_EQ(item.status, 0);
    EXPECT_EQ(item.len, len);
    EXPECT_EQ(first_difference(dst.data(), src, len), "") << "daxkv_get_batch";

    {
        daxkv_lease *raw = nullptr;
        ASSERT_EQ(daxkv_lease_acquire(store.get(), key.data(), key.size(), &raw), 0)
            << daxkv_errmsg();
        LeasePtr lease(raw);
        ASSERT_EQ(daxkv_lease_size(raw), len);
        EXPECT_EQ(first_difference(static_cast<const uint8_t *>(daxkv_lease_data(raw)), src, len),
                  "")
            << "a lease's bytes";
    }

    // The same value again through the batch write.
    ASSERT_EQ(daxkv_remove(store.get(), key.data(), key.size(), 0), 0) << daxkv_errmsg();
    item = daxkv_item{};
    item.key = key.data();
    item.key_len = key.size();
    item.data = const_cast<uint8_t *>(src.data());
    item.len = len;
    EXPECT_EQ(daxkv_put_batch(store.get(), &item, 1, 0), 1) << daxkv_errmsg();
    EXPECT_EQ(item.status, 0);
    store.reset();

    // Recovery reads the header's 64-bit length and checks every block
    // hash of the value.
    spec.set("verify", "read");
    ASSERT_EQ(open_store(&store, path, spec), 0) << daxkv_errmsg();
    const struct daxkv_stats st = get_stats(store.get());
    EXPECT_EQ(st.recovered_entries, 1u);
    EXPECT_EQ(st.recovery_dropped_corrupt, 0u);
    EXPECT_EQ(st.recovery_dropped_torn, 0u);
    dst.scribble();
    got = 0;
    ASSERT_EQ(daxkv_get(store.get(), key.data(), key.size(), dst.data(), len, &got), 0)
        << daxkv_errmsg();
    EXPECT_EQ(got, len);
    EXPECT_EQ(first_difference(dst.data(), src, len), "") << "daxkv_get after a reopen";
}

// Above what an int holds, and not a multiple of a page, a hash block or
// a copy chunk.
constexpr size_t kPastTwo = (2ull << 30) + kPage + 123;
// Above what 32 bits hold.
constexpr size_t kPastFour = (4ull << 30) + 3 * kPage + 5;

// The memory a round trip of len bytes needs: the arena, the buffer, and
// room for the rest of the machine.
uint64_t memory_for(size_t len) { return 2 * static_cast<uint64_t>(len) + kGiB; }

std::string gib(uint64_t bytes) {
    char buf[32];
    std::snprintf(buf, sizeof buf, "%.1f GiB", static_cast<double>(bytes) / kGiB);
    return buf;
}

// Why a value of len bytes cannot be tried here ("" when it can).
std::string cannot_try(size_t len) {
#if defined(__SANITIZE_ADDRESS__) || defined(__SANITIZE_THREAD__)
    return "the plain build tries values of gigabytes (the sanitizers' shadow memory for them)";
#endif
    if (test_device())
        return "needs a file arena of " + gib(len) + "; DAXKV_TEST_DEVICE is set";
    if (mem_available() < memory_for(len))
        return "needs " + gib(memory_for(len)) + " of free memory, " + gib(mem_available()) +
               " available";
    return "";
}

} // namespace

TEST(LargeValues, PastFourGiBEveryCallMovesEveryByte) {
    const std::string why = cannot_try(kPastFour);
    if (!why.empty())
        GTEST_SKIP() << why;
    round_trip(kPastFour);
}

TEST(LargeValues, PastTwoGiBEveryCallMovesEveryByte) {
    if (cannot_try(kPastFour).empty())
        GTEST_SKIP() << "the value past 4 GiB is tried here, which covers this one";
    const std::string why = cannot_try(kPastTwo);
    if (!why.empty())
        GTEST_SKIP() << why;
    round_trip(kPastTwo);
}
