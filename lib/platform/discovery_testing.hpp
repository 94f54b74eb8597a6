// Internal hooks of device discovery for tests, and the lookup by device
// number that describe_dax_fd() and open_devdax() share. Not part of the
// public API.
#pragma once

#include <string>

#include "platform/device.hpp"

namespace daxkv {
namespace platform {

// Read sysfs under root instead of "/sys" (e.g. a fake tree in a temp dir).
// While the root is not "/sys", libdaxctl is not consulted: it always reads
// the real /sys. Pass "/sys" to restore. Not for concurrent use with
// discovery calls in other threads.
void set_sysfs_root_for_testing(const std::string &root);

// Turn the libdaxctl path off (false) or back on (true), to compare the two
// sources on a host that has devices. No effect without HAVE_DAXCTL.
void set_daxctl_enabled_for_testing(bool enabled);

// The sysfs root in use ("/sys" unless overridden).
std::string sysfs_root();

// Describe the Device-DAX device with character device number major:minor.
// path is reported as given. Throws Error(-ENODEV) if major:minor is not a
// DAX device (its sysfs subsystem is not "dax") or is unknown.
DeviceInfo describe_dax_devnum(unsigned major, unsigned minor, const std::string &path);

} // namespace platform
} // namespace daxkv
