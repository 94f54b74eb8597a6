// Device discovery through sysfs, against a fake /sys tree built in a temp
// dir, and the safe-open checks. The host running these has no DAX device:
// the fake tree describes /dev/null's device number (1:3) as a Device-DAX
// device, so open_devdax() runs its real code on a node every host has.
#include <gtest/gtest.h>

#include <cerrno>
#include <cstdlib>
#include <cstring>
#include <fstream>
#include <string>
#include <vector>

#include <dirent.h>
#include <fcntl.h>
#include <sys/file.h>
#include <sys/prctl.h>
#include <sys/stat.h>
#include <sys/sysmacros.h>
#include <sys/wait.h>
#include <unistd.h>

#include "helpers.hpp"
#include "internal/error.hpp"
#include "platform/devdax_open.hpp"
#include "platform/device.hpp"
#include "platform/discovery_testing.hpp"

using namespace daxkv;
using namespace daxkv::platform;

namespace {

constexpr uint64_t MiB = 1ull << 20;
constexpr uint64_t GiB = 1ull << 30;

void mkdirs(const std::string &path) {
    std::string cur;
    size_t pos = 0;
    while (pos != std::string::npos) {
        pos = path.find('/', pos + 1);
        cur = path.substr(0, pos);
        if (!cur.empty() && ::mkdir(cur.c_str(), 0755) != 0 && errno != EEXIST)
            FAIL() << "mkdir " << cur << ": " << std::strerror(errno);
    }
}

void put(const std::string &path, const std::string &content) {
    mkdirs(path.substr(0, path.find_last_of('/')));
    std::ofstream f(path);
    ASSERT_TRUE(f.good()) << path;
    f << content << "\n";
}

void link_to(const std::string &target, const std::string &link) {
    mkdirs(link.substr(0, link.find_last_of('/')));
    ASSERT_EQ(::symlink(target.c_str(), link.c_str()), 0) << link << ": " << std::strerror(errno);
}

using daxkv_test::count_fds;
using daxkv_test::remove_tree;

// Run f, expect a daxkv::Error with code; return its message.
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

struct FakeDev {
    std::string name;       // daxX.Y
    std::string parent;     // directory under devices/ holding it
    unsigned major, minor;
    const char *size;       // nullptr: no attribute
    const char *align;      // nullptr: no attribute (kernel < 5.10)
    const char *numa;       // nullptr: hidden
    const char *target;     // nullptr: hidden
    const char *driver;     // nullptr: unbound
    const char *region_align = nullptr;
};

// A fake sysfs tree shaped like the kernel's:
//   devices/<parent>/<name>/{size,align,...,subsystem->bus/dax,driver->...}
//   bus/dax/devices/<name> -> the device dir
//   dev/char/M:m -> the device dir
class FakeSysfs : public ::testing::Test {
protected:
    void SetUp() override {
        char tmpl[] = "/tmp/daxkv-sysfs.XXXXXX";
        ASSERT_NE(::mkdtemp(tmpl), nullptr);
        root_ = tmpl;
        mkdirs(root_ + "/bus/dax/drivers/device_dax");
        mkdirs(root_ + "/bus/dax/drivers/kmem");
        mkdirs(root_ + "/class/mem");
        set_sysfs_root_for_testing(root_);
    }
    void TearDown() override {
        set_sysfs_root_for_testing("/sys");
        remove_tree(root_);
    }

    void add(const FakeDev &d, bool on_bus = true) {
        std::string dir = root_ + "/devices/" + d.parent + "/" + d.name;
        mkdirs(dir);
        if (d.size)
            put(dir + "/size", d.size);
        if (d.align)
            put(dir + "/align", d.align);
        if (d.numa)
            put(dir + "/numa_node", d.numa);
        if (d.target)
            put(dir + "/target_node", d.target);
        put(dir + "/dev", std::to_string(d.major) + ":" + std::to_string(d.minor));
        put(dir + "/modalias", "dax:t0");
        link_to(root_ + "/bus/dax", dir + "/subsystem");
        if (d.driver)
            link_to(root_ + "/bus/dax/drivers/" + d.driver, dir + "/driver");
        if (d.region_align)
            put(root_ + "/devices/" + d.parent + "/dax_region/align", d.region_align);
        if (on_bus)
            link_to(dir, root_ + "/bus/dax/devices/" + d.name);
        link_to(dir, root_ + "/dev/char/" + std::to_string(d.major) + ":" +
                         std::to_string(d.minor));
    }

    // The standard pair: an NVDIMM-backed devdax device (2 MiB) and a
    // CXL-like one in system-ram mode (1 GiB) on another node.
    void add_two() {
        add({"dax0.0", "ndbus0/region0/dax0.0", 252, 0, "526385152", "2097152", "0", "0",
             "device_dax"});
        add({"dax1.0", "cxl/region1/dax_region1", 252, 1, "4294967296", "1073741824", "1", "2",
             "kmem"});
    }

    // Make /dev/null's number (1:3) a DAX device in the fake tree.
    void add_null_as_dax(const char *size, const char *align, const char *driver = "device_dax") {
        struct stat st;
        ASSERT_EQ(::stat("/dev/null", &st), 0);
        ASSERT_TRUE(S_ISCHR(st.st_mode));
        add({"dax9.0", "fake/region9/dax9.0", major(st.st_rdev), minor(st.st_rdev), size, align,
             "0", nullptr, driver});
    }

    const DeviceInfo *find(const std::vector<DeviceInfo> &v, const std::string &name) {
        for (const DeviceInfo &d : v)
            if (d.name == name)
                return &d;
        return nullptr;
    }

    std::string root_;
};

} // namespace

TEST(Names, Kinds) {
    EXPECT_STREQ(kind_name(DeviceKind::devdax), "devdax");
    EXPECT_STREQ(kind_name(DeviceKind::file), "file");
    EXPECT_STREQ(kind_name(DeviceKind::memory), "memory");
    EXPECT_STREQ(kind_name(static_cast<DeviceKind>(77)), "unknown");
}

TEST(Names, Modes) {
    EXPECT_STREQ(mode_name(DaxMode::none), "none");
    EXPECT_STREQ(mode_name(DaxMode::devdax), "devdax");
    // The spelling daxctl prints ("mode":"system-ram").
    EXPECT_STREQ(mode_name(DaxMode::system_ram), "system-ram");
    EXPECT_STREQ(mode_name(static_cast<DaxMode>(77)), "unknown");
}

TEST_F(FakeSysfs, ListsBothDevicesWithModesAlignAndNodes) {
    add_two();
    std::vector<DeviceInfo> v = list_dax_devices();
    ASSERT_EQ(v.size(), 2u);

    const DeviceInfo &a = v[0];
    EXPECT_EQ(a.name, "dax0.0");
    EXPECT_EQ(a.path, "/dev/dax0.0");
    EXPECT_EQ(a.kind, DeviceKind::devdax);
    EXPECT_EQ(a.mode, DaxMode::devdax);
    EXPECT_EQ(a.size, 526385152u);
    EXPECT_EQ(a.align, 2 * MiB);
    EXPECT_EQ(a.numa_node, 0);
    EXPECT_EQ(a.target_node, 0);
    EXPECT_EQ(a.major, 252u);
    EXPECT_EQ(a.minor, 0u);

    const DeviceInfo &b = v[1];
    EXPECT_EQ(b.name, "dax1.0");
    EXPECT_EQ(b.path, "/dev/dax1.0");
    EXPECT_EQ(b.mode, DaxMode::system_ram);
    EXPECT_EQ(b.size, 4 * GiB);
    EXPECT_EQ(b.align, 1 * GiB);
    EXPECT_EQ(b.numa_node, 1);
    EXPECT_EQ(b.target_node, 2);
    EXPECT_EQ(b.major, 252u);
    EXPECT_EQ(b.minor, 1u);
}

TEST_F(FakeSysfs, NoDaxBusMeansNoDevices) {
    remove_tree(root_ + "/bus/dax");
    EXPECT_TRUE(list_dax_devices().empty());
}

TEST_F(FakeSysfs, SortsByRegionAndIdNumerically) {
    add({"dax10.0", "r10/dax10.0", 250, 10, "4194304", "2097152", "0", nullptr, "device_dax"});
    add({"dax2.1", "r2/dax2.1", 250, 3, "4194304", "2097152", "0", nullptr, "device_dax"});
    add({"dax2.0", "r2/dax2.0", 250, 2, "4194304", "2097152", "0", nullptr, "device_dax"});
    std::vector<DeviceInfo> v = list_dax_devices();
    ASSERT_EQ(v.size(), 3u);
    EXPECT_EQ(v[0].name, "dax2.0");
    EXPECT_EQ(v[1].name, "dax2.1");
    EXPECT_EQ(v[2].name, "dax10.0");
}

TEST_F(FakeSysfs, AlignFallsBackToRegionOnOldKernels) {
    // Before 5.10 only dax_region/align exists, next to the device.
    add({"dax3.0", "ndbus0/region3/dax3.0", 251, 0, "1073741824", nullptr, "0", nullptr,
         "device_dax", "1073741824"});
    std::vector<DeviceInfo> v = list_dax_devices();
    ASSERT_EQ(v.size(), 1u);
    EXPECT_EQ(v[0].align, 1 * GiB);
}

TEST_F(FakeSysfs, UnknownAlignIsZero) {
    add({"dax3.0", "ndbus0/region3/dax3.0", 251, 0, "1073741824", nullptr, "0", nullptr,
         "device_dax"});
    std::vector<DeviceInfo> v = list_dax_devices();
    ASSERT_EQ(v.size(), 1u);
    EXPECT_EQ(v[0].align, 0u);
}

TEST_F(FakeSysfs, HiddenNodeAttributesAreMinusOne) {
    add({"dax4.0", "r4/dax4.0", 251, 4, "2097152", "2097152", nullptr, nullptr, "device_dax"});
    std::vector<DeviceInfo> v = list_dax_devices();
    ASSERT_EQ(v.size(), 1u);
    EXPECT_EQ(v[0].numa_node, -1);
    EXPECT_EQ(v[0].target_node, -1);
}

TEST_F(FakeSysfs, UnboundDeviceIsListedAsDisabledAndSeedsAreDropped) {
    add({"dax5.0", "r5/dax5.0", 251, 5, "2097152", "2097152", "0", nullptr, nullptr});
    // The size-0 unbound "seed" of a dynamic region is not a device.
    add({"dax5.1", "r5/dax5.1", 251, 6, "0", "2097152", "0", nullptr, nullptr});
    std::vector<DeviceInfo> v = list_dax_devices();
    ASSERT_EQ(v.size(), 1u);
    EXPECT_EQ(v[0].name, "dax5.0");
    EXPECT_EQ(v[0].mode, DaxMode::none);
}

TEST_F(FakeSysfs, DeviceWithoutReadableSizeIsSkipped) {
    add_two();
    add({"dax6.0", "r6/dax6.0", 251, 7, nullptr, "2097152", "0", nullptr, "device_dax"});
    add({"dax7.0", "r7/dax7.0", 251, 8, "lots", "2097152", "0", nullptr, "device_dax"});
    std::vector<DeviceInfo> v = list_dax_devices();
    EXPECT_EQ(v.size(), 2u);
    EXPECT_EQ(find(v, "dax6.0"), nullptr);
    EXPECT_EQ(find(v, "dax7.0"), nullptr);
}

TEST_F(FakeSysfs, OldClassModelIsListed) {
    // /sys/class/dax/daxX.Y, the pre-4.20 "dax class" layout: no
    // bus/dax/devices directory at all.
    add({"dax8.0", "r8", 249, 0, "2097152", "2097152", "0", nullptr, "device_dax"}, false);
    link_to(root_ + "/devices/r8/dax8.0", root_ + "/class/dax/dax8.0");
    std::vector<DeviceInfo> v = list_dax_devices();
    ASSERT_EQ(v.size(), 1u);
    EXPECT_EQ(v[0].name, "dax8.0");
}

TEST_F(FakeSysfs, DescribesByDeviceNumberKeepingTheGivenPath) {
    add_two();
    DeviceInfo d = describe_dax_devnum(252, 1, "/run/links/cxl-mem");
    EXPECT_EQ(d.name, "dax1.0");
    EXPECT_EQ(d.path, "/run/links/cxl-mem");
    EXPECT_EQ(d.mode, DaxMode::system_ram);
    EXPECT_EQ(d.align, 1 * GiB);
    EXPECT_EQ(d.numa_node, 1);
}

TEST_F(FakeSysfs, NonDaxDeviceNumberIsENODEV) {
    // 1:3 in the fake tree belongs to class "mem", as /dev/null does.
    std::string dir = root_ + "/devices/virtual/mem/null";
    mkdirs(dir);
    link_to(root_ + "/class/mem", dir + "/subsystem");
    link_to(dir, root_ + "/dev/char/1:3");
    std::string msg = expect_error(-ENODEV, [] { describe_dax_devnum(1, 3, "/dev/null"); });
    EXPECT_NE(msg.find("/dev/null"), std::string::npos) << msg;
    EXPECT_NE(msg.find("not a Device-DAX device"), std::string::npos) << msg;
    // A number with no sysfs entry at all.
    expect_error(-ENODEV, [] { describe_dax_devnum(240, 99, "/dev/x"); });
}

TEST_F(FakeSysfs, DescribeFailsWhenSizeIsUnreadable) {
    add({"dax6.0", "r6/dax6.0", 251, 7, nullptr, "2097152", "0", nullptr, "device_dax"});
    std::string msg = expect_error(-ENODEV, [] { describe_dax_devnum(251, 7, "/dev/dax6.0"); });
    EXPECT_NE(msg.find("size"), std::string::npos) << msg;
}

TEST_F(FakeSysfs, IsDaxCharDeviceFollowsTheFakeTree) {
    EXPECT_FALSE(is_dax_char_device("/dev/null"));
    add_null_as_dax("8388608", "2097152");
    EXPECT_TRUE(is_dax_char_device("/dev/null"));
}

TEST_F(FakeSysfs, OpenWholeDeviceRoundsDownToAlignment) {
    add_null_as_dax("9437184", "2097152"); // 9 MiB: 4 whole 2 MiB units
    DaxOpenResult r = open_devdax("/dev/null", 0);
    EXPECT_GE(r.fd, 0);
    EXPECT_EQ(r.map_bytes, 8 * MiB);
    EXPECT_EQ(r.info.name, "dax9.0");
    EXPECT_EQ(r.info.path, "/dev/null");
    EXPECT_EQ(r.info.kind, DeviceKind::devdax);
    EXPECT_EQ(r.info.size, 9 * MiB);
    int fl = ::fcntl(r.fd, F_GETFD);
    EXPECT_TRUE(fl >= 0 && (fl & FD_CLOEXEC));
    EXPECT_EQ(::fcntl(r.fd, F_GETFL) & O_ACCMODE, O_RDWR);
    ::close(r.fd);
}

TEST_F(FakeSysfs, OpenRequestIsRoundedDownAndChecked) {
    add_null_as_dax("9437184", "2097152");
    DaxOpenResult r = open_devdax("/dev/null", 5 * MiB + 123);
    EXPECT_EQ(r.map_bytes, 4 * MiB);
    ::close(r.fd);

    r = open_devdax("/dev/null", 8 * MiB);
    EXPECT_EQ(r.map_bytes, 8 * MiB);
    ::close(r.fd);

    int before = count_fds();
    std::string msg = expect_error(-ENOSPC, [] { open_devdax("/dev/null", 10 * MiB); });
    EXPECT_NE(msg.find("10485760"), std::string::npos) << msg;
    EXPECT_NE(msg.find("9437184"), std::string::npos) << msg;
    msg = expect_error(-EINVAL, [] { open_devdax("/dev/null", 1 * MiB); });
    EXPECT_NE(msg.find("alignment"), std::string::npos) << msg;
    EXPECT_EQ(count_fds(), before);
}

TEST_F(FakeSysfs, DeviceSmallerThanAlignmentIsENOSPC) {
    add_null_as_dax("1048576", "2097152");
    expect_error(-ENOSPC, [] { open_devdax("/dev/null", 0); });
}

TEST_F(FakeSysfs, SystemRamModeIsRefusedWithTheCommandToFixIt) {
    add_null_as_dax("8388608", "2097152", "kmem");
    int before = count_fds();
    std::string msg = expect_error(-ENODEV, [] { open_devdax("/dev/null", 0); });
    EXPECT_NE(msg.find("system-ram"), std::string::npos) << msg;
    EXPECT_NE(msg.find("daxctl reconfigure-device --mode=devdax dax9.0"), std::string::npos)
        << msg;
    EXPECT_EQ(count_fds(), before);
}

TEST_F(FakeSysfs, DisabledDeviceIsRefused) {
    add_null_as_dax("8388608", "2097152", nullptr);
    std::string msg = expect_error(-ENODEV, [] { open_devdax("/dev/null", 0); });
    EXPECT_NE(msg.find("daxctl enable-device dax9.0"), std::string::npos) << msg;
}

TEST_F(FakeSysfs, UnknownAlignmentIsRefused) {
    add_null_as_dax("8388608", nullptr);
    std::string msg = expect_error(-ENODEV, [] { open_devdax("/dev/null", 0); });
    EXPECT_NE(msg.find("alignment"), std::string::npos) << msg;
}

TEST_F(FakeSysfs, SecondOpenIsBusyAndNamesTheHolder) {
    add_null_as_dax("8388608", "2097152");
    DaxOpenResult first = open_devdax("/dev/null", 0);
    int before = count_fds();
    // flock conflicts between open file descriptions, even in one process.
    std::string msg = expect_error(-EBUSY, [] { open_devdax("/dev/null", 0); });
    EXPECT_NE(msg.find("pid " + std::to_string(::getpid())), std::string::npos) << msg;
    // The holder is this process: said so, as for a file arena (a device
    // listed twice in a pool, or open in another store here).
    EXPECT_NE(msg.find("already open in this process"), std::string::npos) << msg;
    EXPECT_EQ(count_fds(), before);
    ::close(first.fd);
    DaxOpenResult again = open_devdax("/dev/null", 0);
    ::close(again.fd);
}

TEST_F(FakeSysfs, BusyAcrossProcessesNamesTheChildPid) {
    add_null_as_dax("8388608", "2097152");
    int ready[2], done[2];
    ASSERT_EQ(::pipe(ready), 0);
    ASSERT_EQ(::pipe(done), 0);
    pid_t child = ::fork();
    ASSERT_GE(child, 0);
    if (child == 0) {
        int code = 0;
        try {
            DaxOpenResult r = open_devdax("/dev/null", 0);
            (void)r;
        } catch (...) {
            code = 1;
        }
        char c = 'x';
        if (::write(ready[1], &c, 1) != 1)
            _exit(2);
        if (::read(done[0], &c, 1) != 1) // hold the lock until the parent looked
            _exit(3);
        _exit(code);
    }
    char c;
    ASSERT_EQ(::read(ready[0], &c, 1), 1);
    std::string msg = expect_error(-EBUSY, [] { open_devdax("/dev/null", 0); });
    EXPECT_NE(msg.find("pid " + std::to_string(child)), std::string::npos) << msg;
    EXPECT_NE(msg.find("another daxkv store"), std::string::npos) << msg;
    ASSERT_EQ(::write(done[1], &c, 1), 1);
    int status = 0;
    ASSERT_EQ(::waitpid(child, &status, 0), child);
    EXPECT_TRUE(WIFEXITED(status) && WEXITSTATUS(status) == 0) << status;
    for (int fd : {ready[0], ready[1], done[0], done[1]})
        ::close(fd);
}

TEST_F(FakeSysfs, ThpDisabledProcessIsRefusedAbovePageAlignment) {
    add_null_as_dax("8388608", "2097152");
    // PR_SET_THP_DISABLE is inherited and cannot be scoped: set it in a child.
    pid_t child = ::fork();
    ASSERT_GE(child, 0);
    if (child == 0) {
        if (::prctl(PR_SET_THP_DISABLE, 1, 0, 0, 0) != 0)
            _exit(10);
        try {
            DaxOpenResult r = open_devdax("/dev/null", 0);
            ::close(r.fd);
            _exit(11); // should have been refused
        } catch (const Error &e) {
            bool ok = e.code() == -EINVAL && std::strstr(e.what(), "PR_SET_THP_DISABLE");
            _exit(ok ? 0 : 12);
        } catch (...) {
            _exit(13);
        }
    }
    int status = 0;
    ASSERT_EQ(::waitpid(child, &status, 0), child);
    ASSERT_TRUE(WIFEXITED(status));
    EXPECT_EQ(WEXITSTATUS(status), 0);
}

TEST_F(FakeSysfs, ThpDisabledProcessMayUsePageAlignedDevice) {
    add_null_as_dax("8388608", "4096");
    pid_t child = ::fork();
    ASSERT_GE(child, 0);
    if (child == 0) {
        if (::prctl(PR_SET_THP_DISABLE, 1, 0, 0, 0) != 0)
            _exit(10);
        try {
            DaxOpenResult r = open_devdax("/dev/null", 0);
            ::close(r.fd);
            _exit(r.map_bytes == 8 * MiB ? 0 : 11);
        } catch (...) {
            _exit(12);
        }
    }
    int status = 0;
    ASSERT_EQ(::waitpid(child, &status, 0), child);
    ASSERT_TRUE(WIFEXITED(status));
    EXPECT_EQ(WEXITSTATUS(status), 0);
}

// ------------------------------------------------ real /sys: non-DAX paths

class NonDax : public ::testing::Test {
protected:
    void SetUp() override {
        set_sysfs_root_for_testing("/sys");
        char tmpl[] = "/tmp/daxkv-file.XXXXXX";
        int fd = ::mkstemp(tmpl);
        ASSERT_GE(fd, 0);
        ::close(fd);
        file_ = tmpl;
    }
    void TearDown() override { ::unlink(file_.c_str()); }
    std::string file_;
};

TEST_F(NonDax, DevNullIsENODEV) {
    EXPECT_FALSE(is_dax_char_device("/dev/null"));
    int before = count_fds();
    std::string msg = expect_error(-ENODEV, [] { open_devdax("/dev/null", 0); });
    EXPECT_NE(msg.find("/dev/null"), std::string::npos) << msg;
    EXPECT_EQ(count_fds(), before);

    int fd = ::open("/dev/null", O_RDONLY | O_CLOEXEC);
    ASSERT_GE(fd, 0);
    expect_error(-ENODEV, [fd] { describe_dax_fd(fd, "/dev/null"); });
    ::close(fd);
}

TEST_F(NonDax, RegularFileIsENODEV) {
    EXPECT_FALSE(is_dax_char_device(file_));
    std::string msg = expect_error(-ENODEV, [this] { open_devdax(file_, 0); });
    EXPECT_NE(msg.find("regular file"), std::string::npos) << msg;

    int fd = ::open(file_.c_str(), O_RDONLY | O_CLOEXEC);
    ASSERT_GE(fd, 0);
    expect_error(-ENODEV, [&] { describe_dax_fd(fd, file_); });
    ::close(fd);
}

TEST_F(NonDax, DirectoryIsENODEV) {
    EXPECT_FALSE(is_dax_char_device("/tmp"));
    std::string msg = expect_error(-ENODEV, [] { open_devdax("/tmp", 0); });
    EXPECT_NE(msg.find("directory"), std::string::npos) << msg;
}

TEST_F(NonDax, MissingPathIsENOENT) {
    std::string missing = file_ + ".missing";
    EXPECT_FALSE(is_dax_char_device(missing));
    std::string msg = expect_error(-ENOENT, [&] { open_devdax(missing, 0); });
    EXPECT_NE(msg.find(missing), std::string::npos) << msg;
}

TEST(LockHolder, FindsTheProcessHoldingAFlock) {
    char tmpl[] = "/tmp/daxkv-lock.XXXXXX";
    int fd = ::mkstemp(tmpl);
    ASSERT_GE(fd, 0);
    struct stat st;
    ASSERT_EQ(::fstat(fd, &st), 0);
    EXPECT_EQ(lock_holder_pid(st.st_dev, st.st_ino), -1);
    ASSERT_EQ(::flock(fd, LOCK_EX | LOCK_NB), 0);
    EXPECT_EQ(lock_holder_pid(st.st_dev, st.st_ino), static_cast<long>(::getpid()));
    // Another inode on the same filesystem is not confused with it.
    EXPECT_EQ(lock_holder_pid(st.st_dev, st.st_ino + 1000003), -1);
    ::close(fd);
    EXPECT_EQ(lock_holder_pid(st.st_dev, st.st_ino), -1);
    ::unlink(tmpl);
}

TEST(Daxctl, HostListAgreesWithSysfsOnly) {
    // On a host without DAX devices both are empty; with devices, libdaxctl
    // and the sysfs reader must describe the same set.
    set_sysfs_root_for_testing("/sys");
    std::vector<DeviceInfo> with = list_dax_devices();
    set_daxctl_enabled_for_testing(false);
    std::vector<DeviceInfo> without = list_dax_devices();
    set_daxctl_enabled_for_testing(true);
    ASSERT_EQ(with.size(), without.size());
    for (size_t i = 0; i < with.size(); ++i) {
        EXPECT_EQ(with[i].name, without[i].name);
        EXPECT_EQ(with[i].size, without[i].size);
        EXPECT_EQ(with[i].align, without[i].align);
        EXPECT_EQ(with[i].mode, without[i].mode);
        EXPECT_EQ(with[i].numa_node, without[i].numa_node);
        EXPECT_EQ(with[i].target_node, without[i].target_node);
    }
}
