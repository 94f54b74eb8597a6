// libFuzzer target over the JSON and page readers that take input from
// outside the process:
//   - the readers of statistics pages (daxkv_stats_peek, daxkv_status_peek,
//     daxkv_stats_prometheus_peek), which read files from a directory
//     anyone may write (/dev/shm by default): a page planted there, or the
//     page of a store run by someone else, is hostile input;
//   - daxkv_config_from_json, which takes LMCache's adapter JSON.
//
// The first byte of an input picks the reader (even: a page, odd: a
// configuration). A page input is laid out as
//   [2 bytes: stats length] [64 bytes: store id] [1 byte: length flags]
//   [stats bytes] [status text]
// and written over the page of a live store of this process (its lock
// held, its sequence counter even), as a hostile publisher would; flag bit
// 0 writes a stats length of 2^64-1, bit 1 a status length of 2^64-1.
//
// Expected of every input: no crash, no read outside a buffer (ASan), no
// undefined behaviour (UBSan), and
//   - each call returns 0 or one of its documented errors;
//   - the status text given is NUL-terminated where needed says, valid
//     UTF-8, a JSON object, and holds a "publisher" object;
//   - the Prometheus text is valid UTF-8, ends with a newline and holds no
//     control character but newlines (it goes to terminals and scrapers);
//   - a configuration is made or refused with -EINVAL or -E2BIG.
// A violated expectation aborts, which libFuzzer reports as a crash.
//
// DAXKV_FUZZ_SEEDS=DIR makes the target write seed inputs (the live page
// as a store publishes it, and configurations in each of LMCache's forms)
// into DIR at start, then exit.
#include <cerrno>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <string>
#include <vector>

#include <fcntl.h>
#include <unistd.h>

#include <nlohmann/json.hpp>

#include "daxkv.h"
#include "internal/json_text.hpp"
#include "store/stats_page.hpp"

namespace {

[[noreturn]] void broken(const char *what, const std::string &detail = std::string()) {
    std::fprintf(stderr, "fuzz_peek: expectation violated: %s %s\n", what, detail.c_str());
    std::abort();
}
#define EXPECT(cond, detail)                                                                       \
    do {                                                                                           \
        if (!(cond))                                                                               \
            broken(#cond, detail);                                                                 \
    } while (0)

// The page layout (stats_page.cpp; a version change there is a change of
// kVersion, which this target's seeds then fail to match).
constexpr off_t kSeqOffset = 16, kStatsLenOffset = 40, kStatusLenOffset = 48, kIdOffset = 56;
constexpr size_t kIdCap = 64;
constexpr off_t kStatsOffset = 4096, kStatusOffset = 8192;
constexpr size_t kStatsCap = 4096, kStatusCap = 32 * 1024 - 8192;
constexpr size_t kPrefix = 1 + 2 + kIdCap + 1;

struct Fixture {
    std::string dir, device, page;
    daxkv_store *store = nullptr;
    int fd = -1;
};

Fixture &fixture() {
    static Fixture f = [] {
        Fixture x;
        char tmpl[] = "/tmp/daxkv-fuzz-peek-XXXXXX";
        if (!::mkdtemp(tmpl))
            broken("mkdtemp");
        x.dir = tmpl;
        ::setenv("DAXKV_STATS_DIR", x.dir.c_str(), 1);
        x.device = x.dir + "/arena";
        daxkv_config *cfg = nullptr;
        // One publication at open, then none for an hour: the pages written
        // here are never overwritten by the store's own.
        if (daxkv_config_new(&cfg) || daxkv_config_set(cfg, "slot_bytes", "65536") ||
            daxkv_config_set(cfg, "stats_interval", "3600000") ||
            daxkv_config_set(cfg, "workers", "1") ||
            daxkv_config_add_device(cfg, x.device.c_str(), 4 << 20) ||
            daxkv_open(&x.store, cfg))
            broken("open", daxkv_errmsg());
        daxkv_config_free(cfg);
        x.page = x.dir + "/" + daxkv::stats_page_name(x.device);
        x.fd = ::open(x.page.c_str(), O_RDWR | O_CLOEXEC);
        if (x.fd < 0)
            broken("open the page", x.page);
        char magic[8];
        uint64_t version = 0;
        if (::pread(x.fd, magic, 8, 0) != 8 || std::memcmp(magic, "DAXKVSTP", 8) != 0 ||
            ::pread(x.fd, &version, 8, 8) != 8 || version != 1)
            broken("the page layout", "changed: update the offsets in fuzz_peek.cpp");
        return x;
    }();
    return f;
}

// At exit: the store closed, its page, arena and directory removed.
void remove_fixture() {
    Fixture &f = fixture();
    ::close(f.fd);
    daxkv_close(f.store);
    ::unlink(f.device.c_str());
    ::rmdir(f.dir.c_str());
}

void pwrite_all(int fd, const void *p, size_t n, off_t off) {
    if (::pwrite(fd, p, n, off) != static_cast<ssize_t>(n))
        broken("pwrite");
}

bool no_control_but_newlines(const std::string &s) {
    for (unsigned char c : s)
        if ((c < 0x20 && c != '\n') || c == 0x7f)
            return false;
    return true;
}

// A peek that fills a text buffer: sized with a first call, then filled.
// Returns the call's result; text gets the text on success.
int peek_text(int (*call)(const char *, char *, size_t, size_t *), const char *path,
              std::string &text) {
    size_t needed = 0;
    int rc = call(path, nullptr, 0, &needed);
    if (rc != -ENOBUFS)
        return rc;
    EXPECT(needed > 0, "");
    std::vector<char> buf(needed + 16, 'x');
    size_t again = 0;
    rc = call(path, buf.data(), needed, &again);
    if (rc != 0)
        return rc;
    EXPECT(again == needed, std::to_string(again) + " " + std::to_string(needed));
    EXPECT(buf[needed - 1] == '\0', "");
    EXPECT(std::strlen(buf.data()) == needed - 1, "");
    EXPECT(buf[needed] == 'x', "written past the size it said");
    text.assign(buf.data(), needed - 1);
    return 0;
}

bool peek_error(int rc) {
    return rc == -ENOENT || rc == -EACCES || rc == -EPROTO || rc == -EAGAIN || rc == -ENOMEM;
}

void fuzz_page(const uint8_t *data, size_t size) {
    Fixture &f = fixture();
    if (size < kPrefix)
        return;
    size_t stats_len = (size_t(data[1]) | size_t(data[2]) << 8) % (kStatsCap + 1);
    const uint8_t *id = data + 3;
    const uint8_t flags = data[3 + kIdCap];
    const uint8_t *rest = data + kPrefix;
    size_t left = size - kPrefix;
    stats_len = std::min(stats_len, left);
    const size_t status_len = std::min(left - stats_len, kStatusCap);

    // Lengths first, then the bytes, as a publisher would; the counter
    // stays even (a whole publication).
    const uint64_t sl = flags & 1 ? UINT64_MAX : stats_len;
    const uint64_t tl = flags & 2 ? UINT64_MAX : status_len;
    std::vector<uint8_t> zeros(kStatsCap, 0);
    pwrite_all(f.fd, zeros.data(), kStatsCap, kStatsOffset);
    pwrite_all(f.fd, rest, stats_len, kStatsOffset);
    pwrite_all(f.fd, rest + stats_len, status_len, kStatusOffset);
    pwrite_all(f.fd, id, kIdCap, kIdOffset);
    pwrite_all(f.fd, &sl, 8, kStatsLenOffset);
    pwrite_all(f.fd, &tl, 8, kStatusLenOffset);
    uint64_t seq = 0;
    if (::pread(f.fd, &seq, 8, kSeqOffset) != 8 || seq == 0 || (seq & 1))
        broken("the live page's counter", std::to_string(seq));

    struct daxkv_stats st;
    std::memset(&st, 0, sizeof st);
    st.struct_size = sizeof st;
    int rc = daxkv_stats_peek(f.device.c_str(), &st);
    EXPECT(rc == 0 || peek_error(rc), std::to_string(rc));
    if (rc == 0)
        EXPECT(st.struct_size == sizeof st, std::to_string(st.struct_size));

    std::string text;
    rc = peek_text(daxkv_status_peek, f.device.c_str(), text);
    EXPECT(rc == 0 || peek_error(rc), std::to_string(rc));
    if (rc == 0) {
        EXPECT(daxkv::valid_utf8(text.data(), text.size()), text);
        const auto j = nlohmann::json::parse(text, nullptr, false);
        EXPECT(!j.is_discarded() && j.is_object(), text);
        EXPECT(j.contains("publisher") && j["publisher"].is_object(), text);
    }

    rc = peek_text(daxkv_stats_prometheus_peek, f.device.c_str(), text);
    EXPECT(rc == 0 || peek_error(rc), std::to_string(rc));
    if (rc == 0) {
        EXPECT(daxkv::valid_utf8(text.data(), text.size()), text);
        EXPECT(!text.empty() && text.back() == '\n', text);
        EXPECT(no_control_but_newlines(text), text);
    }
}

void fuzz_config(const uint8_t *data, size_t size) {
    const std::string text(reinterpret_cast<const char *>(data + 1), size - 1);
    daxkv_config *cfg = nullptr;
    const int rc = daxkv_config_from_json(&cfg, text.c_str());
    EXPECT(rc == 0 || rc == -EINVAL || rc == -E2BIG, std::to_string(rc) + " " + daxkv_errmsg());
    EXPECT((rc == 0) == (cfg != nullptr), "");
    daxkv_config_free(cfg);
}

void write_seed(const std::string &dir, const std::string &name, const std::string &bytes) {
    FILE *out = std::fopen((dir + "/" + name).c_str(), "wb");
    if (!out || std::fwrite(bytes.data(), 1, bytes.size(), out) != bytes.size() ||
        std::fclose(out) != 0)
        broken("write a seed", name);
}

// The live page as one input, and configurations of each form.
void write_seeds(const std::string &dir) {
    Fixture &f = fixture();
    uint64_t sl = 0, tl = 0;
    char id[kIdCap] = {};
    if (::pread(f.fd, &sl, 8, kStatsLenOffset) != 8 || ::pread(f.fd, &tl, 8, kStatusLenOffset) != 8 ||
        ::pread(f.fd, id, kIdCap, kIdOffset) != static_cast<ssize_t>(kIdCap) || sl > kStatsCap ||
        tl > kStatusCap)
        broken("read the live page");
    std::string page(kPrefix, '\0');
    page[1] = static_cast<char>(sl & 0xff);
    page[2] = static_cast<char>(sl >> 8);
    std::memcpy(&page[3], id, kIdCap);
    std::string body(sl + tl, '\0');
    if (::pread(f.fd, &body[0], sl, kStatsOffset) != static_cast<ssize_t>(sl) ||
        ::pread(f.fd, &body[sl], tl, kStatusOffset) != static_cast<ssize_t>(tl))
        broken("read the live page");
    write_seed(dir, "page", page + body);
    const char *configs[] = {
        R"({"device_path": "/dev/dax0.0", "max_dax_size_gb": 1, "slot_bytes": 65536})",
        R"({"devices": [{"device_path": "/dev/dax0.0", "max_dax_size_gb": 0.5},)"
        R"( {"device_path": "/dev/dax1.0", "max_dax_size_gb": 2}], "slot_bytes": "1MiB",)"
        R"( "workers": 2, "verify": "read", "durability": "power"})",
        R"({"device_path": "mem:", "max_dax_size_gb": 0.01, "slot_bytes": 4096,)"
        R"( "meta_bytes": 256, "eviction": "lru", "hotplug": true, "stats_interval": 0})",
    };
    for (size_t i = 0; i < sizeof configs / sizeof configs[0]; ++i)
        write_seed(dir, "config" + std::to_string(i), std::string(1, '\1') + configs[i]);
}

} // namespace

extern "C" int LLVMFuzzerInitialize(int *, char ***) {
    fixture();
    std::atexit(remove_fixture);
    if (const char *seeds = std::getenv("DAXKV_FUZZ_SEEDS")) {
        write_seeds(seeds);
        std::exit(0);
    }
    return 0;
}

extern "C" int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    if (size == 0)
        return 0;
    if (data[0] & 1)
        fuzz_config(data, size);
    else
        fuzz_page(data, size);
    return 0;
}
