// Device discovery and the safe-open checks on real Device-DAX devices, run
// inside the QEMU guest of tests/vm/run-guest-tests.sh (two NVDIMMs made
// devdax: /dev/dax0.0 with 4 KiB alignment, where the unit suite also runs
// with its small arenas, and /dev/dax1.0 with 2 MiB alignment).
//
// Written against the internal C++ API (lib/platform) until the public
// daxkv_list_devices()/daxkv_probe() exist.
//
//   guest_devdax_test [gtest options]        the test cases
//   guest_devdax_test --persist-write MARK   fill a 2 MiB unit of dax0.0 with a
//                                            pattern derived from MARK and print
//                                            "PERSIST-WRITTEN MARK" (the guest
//                                            is powered off later)
//   guest_devdax_test --persist-check MARK   verify that pattern (next boot)
#include <gtest/gtest.h>

#include <atomic>
#include <thread>

#include <cerrno>
#include <cinttypes>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <fstream>
#include <map>
#include <sstream>
#include <string>
#include <vector>

#include <dirent.h>
#include <fcntl.h>
#include <grp.h>
#include <signal.h>
#include <sys/mman.h>
#include <sys/prctl.h>
#include <sys/stat.h>
#include <sys/sysmacros.h>
#include <sys/wait.h>
#include <unistd.h>

#include "daxkv.h"
#include "internal/error.hpp"
#include "platform/devdax_open.hpp"
#include "platform/device.hpp"
#include "platform/discovery_testing.hpp"

#ifndef MAP_SHARED_VALIDATE
#define MAP_SHARED_VALIDATE 0x03
#endif
#ifndef MAP_SYNC
#define MAP_SYNC 0x80000
#endif

using namespace daxkv;
using namespace daxkv::platform;

namespace {

constexpr uint64_t MiB = 1ull << 20;
constexpr uint64_t kDax0Align = 4096;    // made with ndctl create-namespace -a 4K
constexpr uint64_t kDax1Align = 2 * MiB; // -a 2M

int open_fd_count() {
    int n = 0;
    if (DIR *d = ::opendir("/proc/self/fd")) {
        while (::readdir(d))
            ++n;
        ::closedir(d);
    }
    return n;
}

template <typename F>
std::string expect_error(int code, F &&f) {
    try {
        f();
    } catch (const Error &e) {
        EXPECT_EQ(e.code(), code) << e.what();
        return e.what();
    }
    ADD_FAILURE() << "no error thrown, expected code " << code;
    return std::string();
}

std::string run(const std::string &cmd, int *status = nullptr) {
    std::string out;
    FILE *p = ::popen((cmd + " 2>&1").c_str(), "r");
    if (!p)
        return out;
    char buf[4096];
    size_t n;
    while ((n = std::fread(buf, 1, sizeof buf, p)) > 0)
        out.append(buf, n);
    int st = ::pclose(p);
    if (status)
        *status = st;
    return out;
}

// `daxctl list` prints a JSON array (or a single object) of flat objects
// with string and integer values; that is all this reader handles.
std::vector<std::map<std::string, std::string>> parse_daxctl_json(const std::string &js) {
    std::vector<std::map<std::string, std::string>> out;
    size_t i = 0;
    while ((i = js.find('{', i)) != std::string::npos) {
        size_t end = js.find('}', i);
        if (end == std::string::npos)
            break;
        std::map<std::string, std::string> obj;
        size_t k = i;
        while ((k = js.find('"', k)) != std::string::npos && k < end) {
            size_t ke = js.find('"', k + 1);
            std::string key = js.substr(k + 1, ke - k - 1);
            size_t colon = js.find(':', ke);
            size_t v = js.find_first_not_of(" \t\n", colon + 1);
            std::string val;
            if (js[v] == '"') {
                size_t ve = js.find('"', v + 1);
                val = js.substr(v + 1, ve - v - 1);
                k = ve + 1;
            } else {
                size_t ve = js.find_first_of(",}\n", v);
                val = js.substr(v, ve - v);
                while (!val.empty() && val.back() == ' ')
                    val.pop_back();
                k = ve;
            }
            obj[key] = val;
        }
        out.push_back(obj);
        i = end + 1;
    }
    return out;
}

const DeviceInfo *find(const std::vector<DeviceInfo> &v, const std::string &name) {
    for (const DeviceInfo &d : v)
        if (d.name == name)
            return &d;
    return nullptr;
}

int read_int_file(const std::string &path, int dflt) {
    std::ifstream f(path);
    int v;
    if (f >> v)
        return v;
    return dflt;
}

// Run body in a child process; returns its exit status (0 = all good).
template <typename F>
int in_child(F &&body) {
    std::fflush(nullptr);
    pid_t pid = ::fork();
    if (pid < 0)
        return -1;
    if (pid == 0) {
        int rc = 99;
        try {
            rc = body();
        } catch (const std::exception &e) {
            std::fprintf(stderr, "child: %s\n", e.what());
            rc = 98;
        }
        std::fflush(nullptr);
        _exit(rc);
    }
    int status = 0;
    if (::waitpid(pid, &status, 0) != pid)
        return -1;
    return WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
}

} // namespace

// ------------------------------------------------------------- discovery

TEST(Discovery, ListsBothDevicesWithTheirAlignment) {
    std::vector<DeviceInfo> v = list_dax_devices();
    for (const DeviceInfo &d : v)
        std::printf("  %s path=%s kind=%s mode=%s size=%" PRIu64 " align=%" PRIu64
                    " numa=%d target=%d dev=%u:%u\n",
                    d.name.c_str(), d.path.c_str(), kind_name(d.kind), mode_name(d.mode), d.size,
                    d.align, d.numa_node, d.target_node, d.major, d.minor);
    for (const char *name : {"dax0.0", "dax1.0"}) {
        const DeviceInfo *d = find(v, name);
        ASSERT_NE(d, nullptr) << name;
        EXPECT_EQ(d->path, std::string("/dev/") + name);
        EXPECT_EQ(d->kind, DeviceKind::devdax);
        EXPECT_EQ(d->mode, DaxMode::devdax);
        EXPECT_EQ(d->align, std::string(name) == "dax0.0" ? kDax0Align : kDax1Align);
        // A 512 MiB NVDIMM gives about 502 MiB: the struct pages live on it.
        EXPECT_GT(d->size, 400 * MiB);
        EXPECT_LE(d->size, 512 * MiB);
        EXPECT_EQ(d->size % d->align, 0u);
        struct stat st;
        ASSERT_EQ(::stat(d->path.c_str(), &st), 0);
        EXPECT_EQ(major(st.st_rdev), d->major);
        EXPECT_EQ(minor(st.st_rdev), d->minor);
        // fstat's size is 0 on devdax: discovery must not have used it.
        EXPECT_EQ(st.st_size, 0);
    }
}

TEST(Discovery, MatchesDaxctlList) {
    int status = 0;
    std::string js = run("daxctl list", &status);
    ASSERT_EQ(status, 0) << js;
    auto objs = parse_daxctl_json(js);
    std::vector<DeviceInfo> v = list_dax_devices();
    ASSERT_EQ(objs.size(), v.size()) << js;
    for (auto &o : objs) {
        const DeviceInfo *d = find(v, o["chardev"]);
        ASSERT_NE(d, nullptr) << o["chardev"];
        EXPECT_EQ(std::to_string(d->size), o["size"]);
        EXPECT_EQ(std::to_string(d->align), o["align"]);
        EXPECT_EQ(mode_name(d->mode), o["mode"]);
        if (o.count("target_node")) {
            EXPECT_EQ(std::to_string(d->target_node), o["target_node"]);
        }
    }
}

TEST(Discovery, SysfsFallbackAgreesWithLibdaxctl) {
    std::vector<DeviceInfo> with = list_dax_devices();
    set_daxctl_enabled_for_testing(false);
    std::vector<DeviceInfo> without = list_dax_devices();
    set_daxctl_enabled_for_testing(true);
    ASSERT_EQ(with.size(), without.size());
    ASSERT_GE(with.size(), 2u);
    for (size_t i = 0; i < with.size(); ++i) {
        EXPECT_EQ(with[i].name, without[i].name);
        EXPECT_EQ(with[i].path, without[i].path);
        EXPECT_EQ(with[i].size, without[i].size);
        EXPECT_EQ(with[i].align, without[i].align);
        EXPECT_EQ(with[i].mode, without[i].mode);
        EXPECT_EQ(with[i].numa_node, without[i].numa_node);
        EXPECT_EQ(with[i].target_node, without[i].target_node);
        EXPECT_EQ(with[i].major, without[i].major);
        EXPECT_EQ(with[i].minor, without[i].minor);
    }
}

TEST(Discovery, NumaNodeComesFromSysfs) {
    std::vector<DeviceInfo> v = list_dax_devices();
    for (const DeviceInfo &d : v) {
        int want = read_int_file("/sys/bus/dax/devices/" + d.name + "/numa_node", -1);
        EXPECT_EQ(d.numa_node, want < 0 ? -1 : want) << d.name;
    }
}

TEST(Discovery, DescribeFdMatchesByDeviceNumberThroughASymlink) {
    ASSERT_EQ(::symlink("/dev/dax0.0", "/tmp/kvcache0"), 0) << std::strerror(errno);
    int fd = ::open("/tmp/kvcache0", O_RDWR | O_CLOEXEC);
    ASSERT_GE(fd, 0) << std::strerror(errno);
    DeviceInfo d = describe_dax_fd(fd, "/tmp/kvcache0");
    ::close(fd);
    ::unlink("/tmp/kvcache0");
    EXPECT_EQ(d.name, "dax0.0");
    EXPECT_EQ(d.path, "/tmp/kvcache0");
    EXPECT_EQ(d.align, kDax0Align);
    EXPECT_EQ(d.mode, DaxMode::devdax);
}

TEST(Discovery, IsDaxCharDevice) {
    EXPECT_TRUE(is_dax_char_device("/dev/dax0.0"));
    EXPECT_TRUE(is_dax_char_device("/dev/dax1.0"));
    EXPECT_FALSE(is_dax_char_device("/dev/null"));
    EXPECT_FALSE(is_dax_char_device("/dev/console"));
    EXPECT_FALSE(is_dax_char_device("/init"));
    EXPECT_FALSE(is_dax_char_device("/dev/dax7.7"));
}

// ------------------------------------------------------------------ open

TEST(Open, WholeDeviceMapsAndKeepsData) {
    DaxOpenResult r = open_devdax("/dev/dax0.0", 0);
    ASSERT_GE(r.fd, 0);
    EXPECT_EQ(r.map_bytes, r.info.size - r.info.size % r.info.align);
    EXPECT_EQ(r.map_bytes % kDax0Align, 0u);
    // The length open_devdax chose is one the kernel accepts.
    void *p = ::mmap(nullptr, r.map_bytes, PROT_READ | PROT_WRITE,
                     MAP_SHARED_VALIDATE | MAP_SYNC, r.fd, 0);
    ASSERT_NE(p, MAP_FAILED) << std::strerror(errno);
    auto *b = static_cast<volatile unsigned char *>(p);
    b[0] = 0x5a;
    b[r.map_bytes - 1] = 0xa5;
    ASSERT_EQ(::munmap(p, r.map_bytes), 0);
    p = ::mmap(nullptr, r.map_bytes, PROT_READ, MAP_SHARED, r.fd, 0);
    ASSERT_NE(p, MAP_FAILED) << std::strerror(errno);
    b = static_cast<volatile unsigned char *>(p);
    EXPECT_EQ(b[0], 0x5a);
    EXPECT_EQ(b[r.map_bytes - 1], 0xa5);
    ::munmap(p, r.map_bytes);
    ::close(r.fd);
}

TEST(Open, MisalignedSizesRoundDown) {
    DaxOpenResult r = open_devdax("/dev/dax1.0", 3 * MiB + 5);
    EXPECT_EQ(r.map_bytes, 2 * MiB);
    // And the kernel agrees that this length is mappable, while the
    // unrounded one is not.
    void *p = ::mmap(nullptr, 3 * MiB + 5, PROT_READ, MAP_SHARED, r.fd, 0);
    EXPECT_EQ(p, MAP_FAILED);
    EXPECT_EQ(errno, EINVAL);
    p = ::mmap(nullptr, r.map_bytes, PROT_READ, MAP_SHARED, r.fd, 0);
    EXPECT_NE(p, MAP_FAILED) << std::strerror(errno);
    if (p != MAP_FAILED)
        ::munmap(p, r.map_bytes);
    ::close(r.fd);

    int before = open_fd_count();
    std::string msg = expect_error(-EINVAL, [] { open_devdax("/dev/dax1.0", 1 * MiB); });
    EXPECT_NE(msg.find("2097152"), std::string::npos) << msg;
    EXPECT_EQ(open_fd_count(), before);

    // The 4 KiB-aligned device rounds to pages.
    DaxOpenResult small = open_devdax("/dev/dax0.0", 12 * 1024 + 5);
    EXPECT_EQ(small.map_bytes, 12 * 1024u);
    ::close(small.fd);
    msg = expect_error(-EINVAL, [] { open_devdax("/dev/dax0.0", 4095); });
    EXPECT_NE(msg.find("4096"), std::string::npos) << msg;
    EXPECT_EQ(open_fd_count(), before);
}


TEST(Open, AboveCapacityIsENOSPC) {
    std::vector<DeviceInfo> v = list_dax_devices();
    const DeviceInfo *d = find(v, "dax0.0");
    ASSERT_NE(d, nullptr);
    int before = open_fd_count();
    uint64_t want = d->size + 2 * MiB;
    std::string msg = expect_error(-ENOSPC, [&] { open_devdax("/dev/dax0.0", want); });
    EXPECT_NE(msg.find(std::to_string(want)), std::string::npos) << msg;
    EXPECT_NE(msg.find(std::to_string(d->size)), std::string::npos) << msg;
    EXPECT_EQ(open_fd_count(), before);
    // Exactly the capacity is fine.
    DaxOpenResult r = open_devdax("/dev/dax0.0", d->size);
    EXPECT_EQ(r.map_bytes, d->size);
    ::close(r.fd);
}

TEST(Open, ExclusiveLockBetweenProcesses) {
    DaxOpenResult mine = open_devdax("/dev/dax0.0", 0);
    pid_t me = ::getpid();
    int rc = in_child([me] {
        int before = open_fd_count();
        try {
            DaxOpenResult r = open_devdax("/dev/dax0.0", 0);
            ::close(r.fd);
            return 1; // should be busy
        } catch (const Error &e) {
            std::printf("  child sees: %s\n", e.what());
            if (e.code() != -EBUSY)
                return 2;
            if (!std::strstr(e.what(), ("pid " + std::to_string(me)).c_str()))
                return 3;
        }
        if (open_fd_count() != before)
            return 4;
        // The other device is not locked.
        DaxOpenResult other = open_devdax("/dev/dax1.0", 0);
        ::close(other.fd);
        return 0;
    });
    EXPECT_EQ(rc, 0);
    ::close(mine.fd);
    // Released with the fd: now the child gets it.
    rc = in_child([] {
        DaxOpenResult r = open_devdax("/dev/dax0.0", 0);
        ::close(r.fd);
        return 0;
    });
    EXPECT_EQ(rc, 0);
}

TEST(Open, LockDiesWithTheHolder) {
    int pipefd[2];
    ASSERT_EQ(::pipe(pipefd), 0);
    pid_t pid = ::fork();
    ASSERT_GE(pid, 0);
    if (pid == 0) {
        ::close(pipefd[0]);
        try {
            DaxOpenResult r = open_devdax("/dev/dax0.0", 0);
            (void)r;
        } catch (...) {
            _exit(1);
        }
        char c = 'x';
        if (::write(pipefd[1], &c, 1) != 1)
            _exit(2);
        ::pause(); // killed below
        _exit(0);
    }
    ::close(pipefd[1]);
    char c;
    ASSERT_EQ(::read(pipefd[0], &c, 1), 1);
    ::close(pipefd[0]);
    expect_error(-EBUSY, [] { open_devdax("/dev/dax0.0", 0); });
    ::kill(pid, SIGKILL);
    int status;
    ::waitpid(pid, &status, 0);
    DaxOpenResult r = open_devdax("/dev/dax0.0", 0);
    ::close(r.fd);
}

TEST(Open, NonRootGetsEACCESNamingTheGroup) {
    struct group *gr = ::getgrnam("daxkv");
    ASSERT_NE(gr, nullptr) << "the guest's /etc/group has no daxkv group";
    gid_t gid = gr->gr_gid;
    ASSERT_EQ(::chown("/dev/dax0.0", 0, gid), 0);
    ASSERT_EQ(::chmod("/dev/dax0.0", 0660), 0);
    int rc = in_child([] {
        gid_t none[1] = {65534};
        if (::setgroups(1, none) != 0 || ::setgid(65534) != 0 || ::setuid(65534) != 0)
            return 10;
        int before = open_fd_count();
        try {
            DaxOpenResult r = open_devdax("/dev/dax0.0", 0);
            ::close(r.fd);
            return 1;
        } catch (const Error &e) {
            std::printf("  unprivileged child sees: %s\n", e.what());
            if (e.code() != -EACCES)
                return 2;
            if (!std::strstr(e.what(), "group daxkv"))
                return 3;
        }
        // Discovery itself works without privileges.
        std::vector<DeviceInfo> v = list_dax_devices();
        if (v.size() < 2 || v[0].align != kDax0Align || v[0].size == 0)
            return 4;
        return open_fd_count() == before ? 0 : 5;
    });
    // A member of the group gets in.
    int rc2 = in_child([gid] {
        gid_t g[1] = {gid};
        if (::setgroups(1, g) != 0 || ::setgid(65534) != 0 || ::setuid(65534) != 0)
            return 10;
        DaxOpenResult r = open_devdax("/dev/dax0.0", 0);
        ::close(r.fd);
        return 0;
    });
    ::chown("/dev/dax0.0", 0, 0);
    ::chmod("/dev/dax0.0", 0600);
    EXPECT_EQ(rc, 0);
    EXPECT_EQ(rc2, 0);
}

TEST(Open, ThpDisabledIsRefusedInsteadOfSigbus) {
    int rc = in_child([] {
        if (::prctl(PR_SET_THP_DISABLE, 1, 0, 0, 0) != 0)
            return 10;
        try {
            DaxOpenResult r = open_devdax("/dev/dax1.0", 0);
            ::close(r.fd);
            return 1;
        } catch (const Error &e) {
            std::printf("  child sees: %s\n", e.what());
            return e.code() == -EINVAL ? 0 : 2;
        }
    });
    EXPECT_EQ(rc, 0);
    // A 4 KiB-aligned device takes page faults, so it is allowed and works.
    rc = in_child([] {
        if (::prctl(PR_SET_THP_DISABLE, 1, 0, 0, 0) != 0)
            return 10;
        try {
            DaxOpenResult r = open_devdax("/dev/dax0.0", 64 * 1024);
            void *p = ::mmap(nullptr, r.map_bytes, PROT_READ | PROT_WRITE, MAP_SHARED, r.fd, 0);
            if (p == MAP_FAILED)
                return 11;
            static_cast<volatile char *>(p)[4096] = 1;
            return 0;
        } catch (const Error &e) {
            std::printf("  child sees: %s\n", e.what());
            return 2;
        }
    });
    EXPECT_EQ(rc, 0);
    // What the check prevents: with THP disabled, touching the mapping of
    // a 2 MiB-aligned device raises SIGBUS.
    rc = in_child([] {
        if (::prctl(PR_SET_THP_DISABLE, 1, 0, 0, 0) != 0)
            return 10;
        int fd = ::open("/dev/dax1.0", O_RDWR | O_CLOEXEC);
        if (fd < 0)
            return 11;
        void *p = ::mmap(nullptr, 2 * MiB, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
        if (p == MAP_FAILED)
            return 12;
        static_cast<volatile char *>(p)[0] = 1;
        return 0;
    });
    EXPECT_EQ(rc, 128 + SIGBUS);
}

TEST(Open, NonDaxPaths) {
    int before = open_fd_count();
    expect_error(-ENODEV, [] { open_devdax("/dev/null", 0); });
    expect_error(-ENODEV, [] { open_devdax("/dev/console", 0); });
    expect_error(-ENODEV, [] { open_devdax("/init", 0); });
    expect_error(-ENOENT, [] { open_devdax("/dev/dax7.7", 0); });
    EXPECT_EQ(open_fd_count(), before);
}

// ----------------------------------------------------------- system-ram
// Changes dax1.0's mode; run it after the others (--gtest_filter=SystemRam.*).

TEST(SystemRam, ReconfiguredDeviceIsReportedAndRefused) {
    int status = 0;
    std::string out = run("daxctl reconfigure-device --mode=system-ram --force dax1.0", &status);
    std::printf("  daxctl reconfigure-device --mode=system-ram: status %d\n%s\n", status,
                out.c_str());
    if (status != 0)
        GTEST_SKIP() << "this kernel refused system-ram mode for dax1.0: " << out;

    std::vector<DeviceInfo> v = list_dax_devices();
    const DeviceInfo *d = find(v, "dax1.0");
    ASSERT_NE(d, nullptr) << "a system-ram device must still be listed";
    EXPECT_EQ(d->mode, DaxMode::system_ram);
    EXPECT_GT(d->size, 0u);
    set_daxctl_enabled_for_testing(false);
    std::vector<DeviceInfo> fs = list_dax_devices();
    set_daxctl_enabled_for_testing(true);
    const DeviceInfo *f = find(fs, "dax1.0");
    ASSERT_NE(f, nullptr);
    EXPECT_EQ(f->mode, DaxMode::system_ram);

    // The node is there but unusable: open() gives ENXIO.
    int raw = ::open("/dev/dax1.0", O_RDWR | O_CLOEXEC);
    EXPECT_LT(raw, 0);
    if (raw >= 0)
        ::close(raw);
    else
        EXPECT_EQ(errno, ENXIO);

    int before = open_fd_count();
    std::string msg = expect_error(-ENODEV, [] { open_devdax("/dev/dax1.0", 0); });
    EXPECT_NE(msg.find("system-ram"), std::string::npos) << msg;
    EXPECT_NE(msg.find("daxctl reconfigure-device --mode=devdax dax1.0"), std::string::npos)
        << msg;
    EXPECT_EQ(open_fd_count(), before);
    // The other device is unaffected.
    DaxOpenResult r0 = open_devdax("/dev/dax0.0", 0);
    ::close(r0.fd);

    // Back to devdax, if the kernel can offline the memory again.
    out = run("daxctl offline-memory dax1.0 && "
              "daxctl reconfigure-device --mode=devdax --force dax1.0",
              &status);
    std::printf("  back to devdax: status %d\n%s\n", status, out.c_str());
    if (status == 0) {
        v = list_dax_devices();
        d = find(v, "dax1.0");
        ASSERT_NE(d, nullptr);
        EXPECT_EQ(d->mode, DaxMode::devdax);
        DaxOpenResult r1 = open_devdax("/dev/dax1.0", 0);
        EXPECT_EQ(r1.map_bytes % (2 * MiB), 0u);
        ::close(r1.fd);
    }
}

// ------------------------------------------------------------ pool hotplug

// A pool over both devices; dax0.0 is removed with DAXKV_MIGRATE while two
// threads put and get; every entry then reads back, with its bytes, from
// dax1.0 alone, and again after reopening a pool of dax1.0 alone (its
// entries are recovered from the device). Reformats both devices: run it
// before the persistence and system-ram cases.
namespace {

std::vector<unsigned char> pool_value(uint64_t k, size_t len) {
    std::vector<unsigned char> v(len);
    uint64_t x = (k + 1) * 0x9e3779b97f4a7c15ull;
    for (size_t i = 0; i < len; ++i) {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        v[i] = static_cast<unsigned char>(x);
    }
    return v;
}

size_t pool_len(uint64_t k) { return (256 << 10) + (k * 4099) % (700 << 10); }

daxkv_store *open_pool(const std::vector<std::string> &devs) {
    daxkv_config *cfg = nullptr;
    EXPECT_EQ(daxkv_config_new(&cfg), 0);
    EXPECT_EQ(daxkv_config_set(cfg, "slot_bytes", "1MiB"), 0);
    EXPECT_EQ(daxkv_config_set(cfg, "hotplug", "1"), 0);
    EXPECT_EQ(daxkv_config_set(cfg, "on_mismatch", "reformat"), 0);
    EXPECT_EQ(daxkv_config_set(cfg, "workers", "2"), 0);
    for (const auto &d : devs)
        EXPECT_EQ(daxkv_config_add_device(cfg, d.c_str(), 0), 0);
    daxkv_store *s = nullptr;
    int rc = daxkv_open(&s, cfg);
    EXPECT_EQ(rc, 0) << daxkv_errmsg();
    daxkv_config_free(cfg);
    return s;
}

std::string pool_check(daxkv_store *s, uint64_t k) {
    std::string key = "pool/" + std::to_string(k);
    std::vector<unsigned char> buf(1 << 20);
    size_t len = 0;
    int rc = daxkv_get(s, key.data(), key.size(), buf.data(), buf.size(), &len);
    if (rc)
        return key + ": get " + std::to_string(rc);
    std::vector<unsigned char> want = pool_value(k, pool_len(k));
    if (len != want.size() || std::memcmp(buf.data(), want.data(), len) != 0)
        return key + ": wrong bytes";
    return std::string();
}

} // namespace

TEST(Pool, RemoveDax0WithMigrateUnderLoadEveryEntryReadsBackFromDax1) {
    // DAXKV_GUEST_POOL="A B" runs the same case on two other paths (files,
    // on a host without DAX devices).
    std::string dev0 = "/dev/dax0.0", dev1 = "/dev/dax1.0";
    if (const char *env = std::getenv("DAXKV_GUEST_POOL")) {
        std::istringstream in(env);
        in >> dev0 >> dev1;
    }
    daxkv_store *s = open_pool({dev0, dev1});
    ASSERT_NE(s, nullptr);
    const uint64_t n = 96;
    for (uint64_t k = 0; k < n; ++k) {
        std::string key = "pool/" + std::to_string(k);
        std::vector<unsigned char> v = pool_value(k, pool_len(k));
        ASSERT_EQ(daxkv_put(s, key.data(), key.size(), v.data(), v.size(), DAXKV_REPLACE), 0)
            << daxkv_errmsg();
    }
    std::atomic<bool> stop{false};
    std::atomic<uint64_t> bad{0}, extra{0};
    std::vector<std::thread> load;
    load.emplace_back([&] { // gets of every entry, bytes checked
        for (uint64_t i = 0; !stop.load(); ++i)
            if (!pool_check(s, i % n).empty())
                bad++;
    });
    load.emplace_back([&] { // new entries (they go to dax1.0 once dax0.0 is migrating)
        for (uint64_t k = n; !stop.load() && k < n + 64; ++k) {
            std::string key = "pool/" + std::to_string(k);
            std::vector<unsigned char> v = pool_value(k, pool_len(k));
            if (daxkv_put(s, key.data(), key.size(), v.data(), v.size(), DAXKV_REPLACE) == 0)
                extra = k + 1 - n;
        }
    });
    daxkv_hotplug_result r;
    std::memset(&r, 0, sizeof r);
    r.struct_size = sizeof r;
    int rc = daxkv_device_remove(s, dev0.c_str(), DAXKV_MIGRATE, 0, &r);
    stop = true;
    for (auto &t : load)
        t.join();
    ASSERT_EQ(rc, 0) << daxkv_errmsg();
    EXPECT_EQ(r.state, uint32_t(DAXKV_DEV_REMOVED));
    EXPECT_GT(r.moved_keys, 0u);
    EXPECT_EQ(bad.load(), 0u);
    std::printf("pool: moved %" PRIu64 " entries (%" PRIu64 " bytes) from dax0.0 under load; "
                "%" PRIu64 " puts during the migration\n",
                r.moved_keys, r.moved_bytes, extra.load());
    const uint64_t total = n + extra.load();
    for (uint64_t k = 0; k < total; ++k)
        EXPECT_EQ(pool_check(s, k), "") << k;
    size_t need = 0;
    daxkv_pool_status_json(s, nullptr, 0, &need);
    std::string js(need, '\0');
    ASSERT_EQ(daxkv_pool_status_json(s, &js[0], need, &need), 0);
    EXPECT_NE(js.find("\"state\":\"removed\""), std::string::npos) << js;
    EXPECT_NE(js.find("\"entry_count\":" + std::to_string(total)), std::string::npos) << js;
    daxkv_close(s);
    // dax0.0 is free again (unmapped, unlocked and empty), and dax1.0 alone
    // holds every entry across a reopen.
    s = open_pool({dev0});
    ASSERT_NE(s, nullptr);
    struct daxkv_stats st;
    std::memset(&st, 0, sizeof st);
    st.struct_size = sizeof st;
    ASSERT_EQ(daxkv_stats(s, &st), 0);
    EXPECT_EQ(st.entries, 0u);
    daxkv_close(s);
    s = open_pool({dev1});
    ASSERT_NE(s, nullptr);
    for (uint64_t k = 0; k < total; ++k)
        EXPECT_EQ(pool_check(s, k), "") << k;
    daxkv_close(s);
}

// A device opened with part of its capacity and grow_limit grows past the
// opened size while gets run: no entry moves, every one reads back with its
// bytes, and a reopen keeps the grown size and the entries. Reformats dax1.0.
TEST(Pool, GrowDax1PastItsOpenedSizeWhileServing) {
    std::string dev = "/dev/dax1.0";
    if (const char *env = std::getenv("DAXKV_GUEST_GROW"))
        dev = env;
    const uint64_t opened = 128 * MiB, grown = 384 * MiB;
    auto open_grow = [&](int reformat) {
        daxkv_config *cfg = nullptr;
        EXPECT_EQ(daxkv_config_new(&cfg), 0);
        EXPECT_EQ(daxkv_config_set(cfg, "slot_bytes", "1MiB"), 0);
        EXPECT_EQ(daxkv_config_set(cfg, "hotplug", "1"), 0);
        EXPECT_EQ(daxkv_config_set(cfg, "eviction", "none"), 0);
        EXPECT_EQ(daxkv_config_set(cfg, "grow_limit", "512MiB"), 0); // capped at the device
        EXPECT_EQ(daxkv_config_set(cfg, "on_mismatch", reformat ? "reformat" : "fail"), 0);
        EXPECT_EQ(daxkv_config_add_device(cfg, dev.c_str(), opened), 0);
        daxkv_store *s = nullptr;
        int rc = daxkv_open(&s, cfg);
        EXPECT_EQ(rc, 0) << daxkv_errmsg();
        daxkv_config_free(cfg);
        return s;
    };
    auto put = [](daxkv_store *s, uint64_t k) {
        std::string key = "pool/" + std::to_string(k);
        std::vector<unsigned char> v = pool_value(k, pool_len(k));
        return daxkv_put(s, key.data(), key.size(), v.data(), v.size(), 0);
    };
    auto slots_total = [](daxkv_store *s) {
        struct daxkv_stats st;
        std::memset(&st, 0, sizeof st);
        st.struct_size = sizeof st;
        EXPECT_EQ(daxkv_stats(s, &st), 0);
        return st.slots_total;
    };
    // Start from a fresh arena (a reformat only happens on a mismatch):
    // zero both superblock copies.
    if (dev.rfind("/dev/dax", 0) == 0) {
        DaxOpenResult w = open_devdax(dev, 2 * MiB);
        void *p = ::mmap(nullptr, w.map_bytes, PROT_READ | PROT_WRITE, MAP_SHARED, w.fd, 0);
        ASSERT_NE(p, MAP_FAILED) << std::strerror(errno);
        std::memset(p, 0, 8192);
        ::munmap(p, w.map_bytes);
        ::close(w.fd);
    } else {
        ::unlink(dev.c_str());
    }
    daxkv_store *s = open_grow(1);
    ASSERT_NE(s, nullptr);
    const uint64_t before = slots_total(s);
    ASSERT_GT(before, 100u);
    ASSERT_LE(before, opened / MiB);
    uint64_t n = 0;
    while (put(s, n) == 0)
        ++n;
    ASSERT_EQ(n, before);
    std::atomic<bool> stop{false};
    std::atomic<uint64_t> bad{0};
    std::thread reader([&] {
        for (uint64_t i = 0; !stop.load(); ++i)
            if (!pool_check(s, i % n).empty())
                bad++;
    });
    daxkv_hotplug_result r;
    std::memset(&r, 0, sizeof r);
    r.struct_size = sizeof r;
    int rc = daxkv_device_resize(s, dev.c_str(), grown, DAXKV_MIGRATE, 0, &r);
    stop = true;
    reader.join();
    ASSERT_EQ(rc, 0) << daxkv_errmsg();
    EXPECT_EQ(r.moved_keys, 0u);
    EXPECT_EQ(r.new_size_bytes, grown);
    EXPECT_EQ(bad.load(), 0u);
    EXPECT_EQ(slots_total(s), grown / MiB);
    uint64_t total = n;
    while (put(s, total) == 0)
        ++total;
    EXPECT_EQ(total, grown / MiB);
    std::printf("grow: %s from %" PRIu64 " to %" PRIu64 " slots of 1 MiB while serving; "
                "%" PRIu64 " entries\n",
                dev.c_str(), before, grown / MiB, total);
    daxkv_close(s);
    s = open_grow(0);
    ASSERT_NE(s, nullptr);
    EXPECT_EQ(slots_total(s), grown / MiB);
    for (uint64_t k = 0; k < total; ++k)
        EXPECT_EQ(pool_check(s, k), "") << k;
    daxkv_close(s);
}

// ------------------------------------------------------------ persistence

namespace {

// The unit used by --persist-write/--persist-check: 2 MiB at 256 MiB into
// dax0.0, clear of the unit suite's arenas and of guest_store_crash's arena
// (the first 64 MiB) and progress record (at 128 MiB).
constexpr uint64_t persist_off = 256 * MiB;
constexpr uint64_t persist_len = 2 * MiB;

unsigned char pattern_byte(const std::string &mark, uint64_t i) {
    uint64_t h = 1469598103934665603ull;
    for (char c : mark)
        h = (h ^ static_cast<unsigned char>(c)) * 1099511628211ull;
    h ^= i * 0x9e3779b97f4a7c15ull;
    return static_cast<unsigned char>(h >> 29);
}

int persist(bool write, const std::string &mark) {
    try {
        DaxOpenResult r = open_devdax("/dev/dax0.0", persist_off + persist_len);
        void *p = ::mmap(nullptr, r.map_bytes, PROT_READ | PROT_WRITE,
                         MAP_SHARED_VALIDATE | MAP_SYNC, r.fd, 0);
        if (p == MAP_FAILED) {
            std::printf("mmap: %s\n", std::strerror(errno));
            return 1;
        }
        auto *b = static_cast<volatile unsigned char *>(p) + persist_off;
        if (write) {
            for (uint64_t i = 0; i < persist_len; ++i)
                b[i] = pattern_byte(mark, i);
            // Persistence needs the CPU caches written back; the emulated
            // NVDIMM's memory is the host file mapping, so a store is enough
            // here. The guest is powered off later, without a sync.
            std::printf("PERSIST-WRITTEN %s\n", mark.c_str());
            std::fflush(stdout);
            return 0;
        }
        uint64_t bad = 0;
        for (uint64_t i = 0; i < persist_len; ++i)
            if (b[i] != pattern_byte(mark, i))
                ++bad;
        std::printf("persist-check %s: %" PRIu64 " of %" PRIu64 " bytes differ\n", mark.c_str(),
                    bad, persist_len);
        ::munmap(p, r.map_bytes);
        ::close(r.fd);
        return bad == 0 ? 0 : 1;
    } catch (const Error &e) {
        std::printf("%s\n", e.what());
        return 1;
    }
}

} // namespace

int main(int argc, char **argv) {
    // Output goes to the serial console: keep lines whole and in order.
    std::setvbuf(stdout, nullptr, _IOLBF, 0);
    if (argc == 3 && std::strcmp(argv[1], "--persist-write") == 0)
        return persist(true, argv[2]);
    if (argc == 3 && std::strcmp(argv[1], "--persist-check") == 0)
        return persist(false, argv[2]);
    ::testing::InitGoogleTest(&argc, argv);
    return RUN_ALL_TESTS();
}
