// Device-DAX discovery: which DAX devices exist, and what a given character
// device is. Two sources:
//   - libdaxctl (when built with HAVE_DAXCTL): what `daxctl list` sees;
//   - sysfs (/sys/bus/dax/devices, /sys/dev/char/M:m): always available, and
//     the only source for devices libdaxctl skips (it drops a device whose
//     /dev node it cannot stat, e.g. in a container that got a renamed node).
// Size and alignment never come from fstat(): st_size is 0 for /dev/daxX.Y.
// libdaxctl has no NUMA-node getter, so numa_node always comes from sysfs.
#include "config.h"

#include "platform/device.hpp"
#include "platform/discovery_testing.hpp"

#include <algorithm>
#include <cerrno>
#include <climits>
#include <cstdarg>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <memory>
#include <mutex>

#include <dirent.h>
#include <fcntl.h>
#include <sys/stat.h>
#include <sys/sysmacros.h>
#include <syslog.h>
#include <unistd.h>

#ifdef HAVE_DAXCTL
#include <daxctl/libdaxctl.h>
#endif

#include "internal/error.hpp"
#include "internal/process_mutex.hpp"
#include "internal/util.hpp"

namespace daxkv {
namespace platform {
namespace {

// ----------------------------------------------------------------- settings

ProcessMutex settings_mutex;
std::string sysfs_root_path = "/sys";
bool daxctl_enabled = true;

struct Settings {
    std::string root;
    bool use_daxctl;
};

Settings current_settings() {
    std::lock_guard<ProcessMutex> g(settings_mutex);
    // libdaxctl always reads the real /sys; mixing it with a fake tree would
    // describe devices that the fake tree does not have.
    return Settings{sysfs_root_path, daxctl_enabled && sysfs_root_path == "/sys"};
}

// ------------------------------------------------------------ sysfs helpers

bool ends_with(const std::string &s, const char *suffix) {
    size_t n = std::strlen(suffix);
    return s.size() >= n && s.compare(s.size() - n, n, suffix) == 0;
}

std::string base_name(const std::string &p) {
    size_t slash = p.find_last_of('/');
    return slash == std::string::npos ? p : p.substr(slash + 1);
}

// Read a small sysfs attribute, without the trailing newline. Returns false
// (errno set) if it is missing or unreadable; sysfs attributes that are
// root-only (0400) fail here with EACCES for other users, which callers treat
// as "unknown".
bool read_attr(const std::string &path, std::string &out) {
    int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
    if (fd < 0)
        return false;
    char buf[256];
    ssize_t n;
    do {
        n = ::read(fd, buf, sizeof buf - 1);
    } while (n < 0 && errno == EINTR);
    int saved = errno;
    ::close(fd);
    if (n < 0) {
        errno = saved;
        return false;
    }
    out.assign(buf, static_cast<size_t>(n));
    while (!out.empty() && (out.back() == '\n' || out.back() == ' '))
        out.pop_back();
    return true;
}

// Whole-string unsigned parse accepting decimal and 0x-prefixed hex (sysfs
// prints size/align in decimal, resource in hex).
bool parse_u64(const std::string &s, uint64_t &v) {
    if (s.empty() || s[0] == '-')
        return false;
    errno = 0;
    char *end = nullptr;
    unsigned long long r = std::strtoull(s.c_str(), &end, 0);
    if (errno != 0 || end == s.c_str() || *end != '\0')
        return false;
    v = r;
    return true;
}

bool parse_int(const std::string &s, int &v) {
    errno = 0;
    char *end = nullptr;
    long r = std::strtol(s.c_str(), &end, 10);
    if (errno != 0 || end == s.c_str() || *end != '\0' || r < INT_MIN || r > INT_MAX)
        return false;
    v = static_cast<int>(r);
    return true;
}

// A node attribute: a missing one means "not known" (-1). The kernel hides
// target_node when it is negative and numa_node without CONFIG_NUMA.
int read_node_attr(const std::string &path) {
    std::string s;
    int v;
    if (read_attr(path, s) && parse_int(s, v) && v >= 0)
        return v;
    return -1;
}

std::string char_dir(const std::string &root, unsigned major, unsigned minor) {
    return root + "/dev/char/" + std::to_string(major) + ":" + std::to_string(minor);
}

// The check PMDK uses: a character device is Device-DAX when its sysfs
// subsystem resolves to .../dax (bus/dax, or class/dax on the old model).
bool devnum_is_dax(const std::string &root, unsigned major, unsigned minor) {
    std::string sub = real_path(char_dir(root, major, minor) + "/subsystem");
    return !sub.empty() && ends_with(sub, "/dax");
}

// Alignment of a device without the per-device "align" attribute (kernels
// before 5.10): the region's, found in dax_region/ next to the device
// (NVDIMM: .../regionN/daxX.Y/{daxX.Y,dax_region}) or above it. Since 5.10
// the region align is root-only; unreadable means unknown (0).
uint64_t region_align(const std::string &dev_dir) {
    std::string dir = dev_dir;
    for (int up = 0; up < 3; ++up) {
        size_t slash = dir.find_last_of('/');
        if (slash == std::string::npos || slash == 0)
            break;
        dir.erase(slash);
        std::string s;
        uint64_t v;
        if (read_attr(dir + "/dax_region/align", s) && parse_u64(s, v) && v != 0 &&
            v != static_cast<uint64_t>(ULONG_MAX))
            return v;
    }
    return 0;
}

DaxMode mode_from_driver(const std::string &dev_dir) {
    std::string drv = real_path(dev_dir + "/driver");
    if (drv.empty())
        return DaxMode::none; // no driver bound: the device is disabled
    // kmem onlines the device as System RAM: the /dev node exists but open()
    // fails with ENXIO. Every other dax driver (device_dax, the old
    // dax_pmem_compat model) serves the character device.
    return base_name(drv) == "kmem" ? DaxMode::system_ram : DaxMode::devdax;
}

// Fill info from the sysfs directory of a dax device. Returns false with
// why set when the device cannot be described (no readable size).
bool fill_from_sysfs(const std::string &dev_dir, DeviceInfo &info, std::string &why) {
    std::string s;
    uint64_t v;
    if (!read_attr(dev_dir + "/size", s)) {
        why = format("cannot read %s/size: %s", dev_dir.c_str(), std::strerror(errno));
        return false;
    }
    if (!parse_u64(s, v)) {
        why = format("%s/size holds '%s', not a byte count", dev_dir.c_str(), s.c_str());
        return false;
    }
    info.size = v;
    if (read_attr(dev_dir + "/align", s) && parse_u64(s, v))
        info.align = v;
    else
        info.align = region_align(dev_dir);
    info.numa_node = read_node_attr(dev_dir + "/numa_node");
    info.target_node = read_node_attr(dev_dir + "/target_node");
    info.mode = mode_from_driver(dev_dir);
    unsigned ma = 0, mi = 0;
    if (read_attr(dev_dir + "/dev", s) && std::sscanf(s.c_str(), "%u:%u", &ma, &mi) == 2) {
        info.major = ma;
        info.minor = mi;
    }
    info.kind = DeviceKind::devdax;
    return true;
}

// "daxX.Y" with numbers: the names of dax character devices (the bus also
// lists nothing else today, but a future "dax_regionN" must not be taken
// for a device).
bool parse_dax_name(const std::string &name, unsigned &region, unsigned &id) {
    char tail;
    return std::sscanf(name.c_str(), "dax%u.%u%c", &region, &id, &tail) == 2;
}

bool name_less(const DeviceInfo &a, const DeviceInfo &b) {
    unsigned ar = 0, ai = 0, br = 0, bi = 0;
    bool an = parse_dax_name(a.name, ar, ai), bn = parse_dax_name(b.name, br, bi);
    if (an && bn)
        return ar != br ? ar < br : ai < bi;
    if (an != bn)
        return an;
    return a.name < b.name;
}

struct DirCloser {
    void operator()(DIR *d) const noexcept { ::closedir(d); }
};

// Every dax device under <root>/bus/dax/devices (or class/dax, the old
// model). No dax directory at all means no dax driver is loaded: no devices.
std::vector<DeviceInfo> list_from_sysfs(const std::string &root) {
    std::vector<DeviceInfo> out;
    std::string dir = root + "/bus/dax/devices";
    std::unique_ptr<DIR, DirCloser> d(::opendir(dir.c_str()));
    if (!d && errno == ENOENT) {
        dir = root + "/class/dax";
        d.reset(::opendir(dir.c_str()));
    }
    if (!d) {
        if (errno == ENOENT)
            return out;
        fail_errno(errno, "cannot list Device-DAX devices in " + dir);
    }
    while (struct dirent *e = ::readdir(d.get())) {
        std::string name = e->d_name;
        unsigned region, id;
        if (!parse_dax_name(name, region, id))
            continue;
        std::string dev_dir = real_path(dir + "/" + name);
        if (dev_dir.empty())
            continue; // removed while we listed
        DeviceInfo info;
        std::string why;
        if (!fill_from_sysfs(dev_dir, info, why)) {
            log(kLogWarning, "skipping Device-DAX device %s: %s", name.c_str(), why.c_str());
            continue;
        }
        info.name = name;
        info.path = "/dev/" + name;
        out.push_back(std::move(info));
    }
    return out;
}

#ifdef HAVE_DAXCTL
// ---------------------------------------------------------------- libdaxctl

// libdaxctl logs to stderr unless given a log function; the library must not
// print, so everything goes through daxkv::log() (dropped unless the caller
// installed a callback).
void daxctl_log_forward(struct daxctl_ctx *, int priority, const char *, int, const char *fn,
                        const char *fmt, va_list args) {
    int level = priority <= LOG_ERR ? kLogErr
                : priority <= LOG_WARNING ? kLogWarning
                : priority <= LOG_INFO ? kLogInfo
                                       : kLogDebug;
    if (!log_enabled(level))
        return;
    char msg[512];
    int n = std::vsnprintf(msg, sizeof msg, fmt, args);
    if (n < 0)
        return;
    size_t len = std::strlen(msg);
    while (len > 0 && msg[len - 1] == '\n')
        msg[--len] = '\0';
    log(level, "libdaxctl: %s: %s", fn ? fn : "?", msg);
}

struct CtxUnref {
    void operator()(struct daxctl_ctx *c) const noexcept { daxctl_unref(c); }
};
using CtxPtr = std::unique_ptr<struct daxctl_ctx, CtxUnref>;

// A fresh context per call: contexts cache what they read (a reconfigured
// device would look unchanged) and are not thread-safe, so none is shared.
CtxPtr new_daxctl_ctx() {
    struct daxctl_ctx *raw = nullptr;
    int rc = daxctl_new(&raw);
    if (rc < 0 || !raw) {
        log(kLogInfo, "libdaxctl unavailable (%s); reading sysfs", std::strerror(-rc));
        return CtxPtr();
    }
    CtxPtr ctx(raw);
    daxctl_set_log_fn(raw, daxctl_log_forward);
    // Let libdaxctl format only what would be delivered.
    int prio = log_enabled(kLogDebug)   ? LOG_DEBUG
               : log_enabled(kLogInfo)  ? LOG_INFO
               : log_enabled(kLogWarning) ? LOG_WARNING
                                                : LOG_ERR;
    daxctl_set_log_priority(raw, prio);
    return ctx;
}

DeviceInfo info_from_daxctl(struct daxctl_dev *dev, const std::string &root) {
    DeviceInfo info;
    const char *devname = daxctl_dev_get_devname(dev);
    info.name = devname ? devname : "";
    info.path = "/dev/" + info.name; // libdaxctl has no devnode getter
    info.kind = DeviceKind::devdax;
    info.size = daxctl_dev_get_size(dev);
    info.align = daxctl_dev_get_align(dev); // 0 before kernel 5.10
    std::string dev_dir = real_path(root + "/bus/dax/devices/" + info.name);
    if (info.align == 0) {
        unsigned long ra = daxctl_region_get_align(daxctl_dev_get_region(dev));
        if (ra != 0 && ra != ULONG_MAX) // ULONG_MAX: unreadable (root-only since 5.10)
            info.align = ra;
        else if (!dev_dir.empty())
            info.align = region_align(dev_dir);
    }
    info.numa_node = dev_dir.empty() ? -1 : read_node_attr(dev_dir + "/numa_node");
    info.target_node = daxctl_dev_get_target_node(dev);
    if (info.target_node < 0)
        info.target_node = -1;
    // daxctl_dev_is_system_ram_capable() appeared in ndctl v79; 76.1 (Debian
    // 12) lacks it. A device bound to kmem is the one with a memory object,
    // which is also how `daxctl list` decides "mode":"system-ram".
    if (!daxctl_dev_is_enabled(dev))
        info.mode = DaxMode::none;
    else if (daxctl_dev_get_memory(dev))
        info.mode = DaxMode::system_ram;
    else
        info.mode = DaxMode::devdax;
    info.major = static_cast<unsigned>(daxctl_dev_get_major(dev));
    info.minor = static_cast<unsigned>(daxctl_dev_get_minor(dev));
    return info;
}

// Devices libdaxctl sees. Returns false if libdaxctl could not be used.
bool list_from_daxctl(const std::string &root, std::vector<DeviceInfo> &out) {
    CtxPtr ctx = new_daxctl_ctx();
    if (!ctx)
        return false;
    struct daxctl_region *region;
    daxctl_region_foreach(ctx.get(), region) {
        struct daxctl_dev *dev;
        daxctl_dev_foreach(region, dev) {
            // A disabled device with size 0 is a "seed" for dynamic regions,
            // not a device anyone can use.
            if (daxctl_dev_get_size(dev) == 0)
                continue;
            out.push_back(info_from_daxctl(dev, root));
        }
    }
    return true;
}
#endif // HAVE_DAXCTL

// Drop the zero-size seed devices of dynamic regions from sysfs results as
// libdaxctl does, so both sources list the same set.
void drop_seeds(std::vector<DeviceInfo> &v) {
    v.erase(std::remove_if(v.begin(), v.end(),
                           [](const DeviceInfo &i) { return i.size == 0 && i.mode == DaxMode::none; }),
            v.end());
}

} // namespace

// ---------------------------------------------------------------- interface

void set_sysfs_root_for_testing(const std::string &root) {
    std::lock_guard<ProcessMutex> g(settings_mutex);
    sysfs_root_path = root.empty() ? std::string("/sys") : root;
    while (sysfs_root_path.size() > 1 && sysfs_root_path.back() == '/')
        sysfs_root_path.pop_back();
}

void set_daxctl_enabled_for_testing(bool enabled) {
    std::lock_guard<ProcessMutex> g(settings_mutex);
    daxctl_enabled = enabled;
}

std::string sysfs_root() { return current_settings().root; }

const char *kind_name(DeviceKind k) noexcept {
    switch (k) {
    case DeviceKind::devdax:
        return "devdax";
    case DeviceKind::file:
        return "file";
    case DeviceKind::memory:
        return "memory";
    }
    return "unknown";
}

const char *mode_name(DaxMode m) noexcept {
    switch (m) {
    case DaxMode::none:
        return "none";
    case DaxMode::devdax:
        return "devdax";
    case DaxMode::system_ram:
        return "system-ram";
    }
    return "unknown";
}

std::vector<DeviceInfo> list_dax_devices() {
    Settings st = current_settings();
    std::vector<DeviceInfo> out;
#ifdef HAVE_DAXCTL
    if (st.use_daxctl)
        list_from_daxctl(st.root, out);
#endif
    // sysfs fills in what libdaxctl skipped (devices whose /dev node it could
    // not stat) and is the whole answer without libdaxctl.
    std::vector<DeviceInfo> fs = list_from_sysfs(st.root);
    drop_seeds(fs);
    for (DeviceInfo &d : fs) {
        bool known = std::any_of(out.begin(), out.end(),
                                 [&](const DeviceInfo &o) { return o.name == d.name; });
        if (!known)
            out.push_back(std::move(d));
    }
    std::sort(out.begin(), out.end(), name_less);
    return out;
}

bool is_dax_char_device(const std::string &path) {
    struct stat st;
    if (::stat(path.c_str(), &st) != 0 || !S_ISCHR(st.st_mode))
        return false;
    return devnum_is_dax(current_settings().root, major(st.st_rdev), minor(st.st_rdev));
}

DeviceInfo describe_dax_devnum(unsigned maj, unsigned min, const std::string &path) {
    Settings st = current_settings();
    if (!devnum_is_dax(st.root, maj, min))
        fail(-ENODEV, "%s (character device %u:%u) is not a Device-DAX device", path.c_str(), maj,
             min);
#ifdef HAVE_DAXCTL
    if (st.use_daxctl) {
        std::vector<DeviceInfo> all;
        if (list_from_daxctl(st.root, all)) {
            // Match by device number, not by name: udev symlinks, renamed
            // nodes and bind mounts keep st_rdev.
            for (DeviceInfo &d : all) {
                if (d.major == maj && d.minor == min) {
                    d.path = path;
                    return d;
                }
            }
        }
    }
#endif
    std::string dev_dir = real_path(char_dir(st.root, maj, min));
    if (dev_dir.empty())
        fail(-ENODEV, "%s (character device %u:%u): no sysfs entry", path.c_str(), maj, min);
    DeviceInfo info;
    std::string why;
    if (!fill_from_sysfs(dev_dir, info, why))
        fail(-ENODEV, "%s: %s", path.c_str(), why.c_str());
    info.name = base_name(dev_dir);
    info.path = path;
    // Trust the number we were asked about over a "dev" attribute that
    // might be missing.
    info.major = maj;
    info.minor = min;
    return info;
}

DeviceInfo describe_dax_fd(int fd, const std::string &path) {
    struct stat st;
    if (::fstat(fd, &st) != 0)
        fail_errno(errno, "fstat " + path);
    if (!S_ISCHR(st.st_mode))
        fail(-ENODEV, "%s is not a Device-DAX device (not a character device)", path.c_str());
    return describe_dax_devnum(major(st.st_rdev), minor(st.st_rdev), path);
}

} // namespace platform
} // namespace daxkv
