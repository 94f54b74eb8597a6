// What the platform knows about a device: discovery of Device-DAX devices
// (libdaxctl, with sysfs as fallback) and the identity of a path.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

namespace daxkv {
namespace platform {

enum class DeviceKind { devdax, file, memory };
enum class DaxMode { none, devdax, system_ram };

struct DeviceInfo {
    std::string path;          // /dev/daxX.Y, a file path, or "mem:"
    std::string name;          // daxX.Y for DAX devices, else empty
    DeviceKind kind = DeviceKind::file;
    DaxMode mode = DaxMode::none;
    uint64_t size = 0;         // bytes usable for mapping
    uint64_t align = 0;        // mapping alignment (DAX: 4 KiB, 2 MiB or 1 GiB)
    int numa_node = -1;        // node of the memory's home, -1 unknown
    int target_node = -1;      // node the memory would online as (DAX), -1 unknown
    unsigned major = 0, minor = 0;
};

const char *kind_name(DeviceKind k) noexcept;
const char *mode_name(DaxMode m) noexcept;

// Every Device-DAX device on the host, including devices in system-ram mode
// (those have no usable /dev node). libdaxctl first; sysfs when libdaxctl is
// not built in or reports nothing. Throws daxkv::Error.
std::vector<DeviceInfo> list_dax_devices();

// True if path names a character device whose sysfs subsystem is "dax".
bool is_dax_char_device(const std::string &path);

// Describe the Device-DAX device behind an open fd of a character device
// (matched by st_rdev). Throws Error(-ENODEV) if it is not a DAX device.
DeviceInfo describe_dax_fd(int fd, const std::string &path);

} // namespace platform
} // namespace daxkv
