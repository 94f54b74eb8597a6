// daxkv_list_devices and daxkv_probe: device discovery for callers.
#include <algorithm>
#include <cerrno>
#include <cstring>
#include <sys/stat.h>
#include <sys/sysmacros.h>
#include <vector>

#include "capi/handles.hpp"
#include "platform/device.hpp"
#include "platform/mapping.hpp"
#include "platform/discovery_testing.hpp"

using namespace daxkv;
using daxkv::platform::DeviceInfo;

namespace {

constexpr uint32_t kMinInfoSize = offsetof(daxkv_device_info, path);

void to_c(const DeviceInfo &d, daxkv_device_info *out, uint32_t size) {
    daxkv_device_info c;
    std::memset(&c, 0, sizeof c);
    c.kind = d.kind == platform::DeviceKind::devdax   ? DAXKV_KIND_DEVDAX
             : d.kind == platform::DeviceKind::memory ? DAXKV_KIND_MEMORY
                                                      : DAXKV_KIND_FILE;
    c.mode = d.mode == platform::DaxMode::devdax       ? DAXKV_MODE_DEVDAX
             : d.mode == platform::DaxMode::system_ram ? DAXKV_MODE_SYSTEM_RAM
                                                       : DAXKV_MODE_NONE;
    c.numa_node = d.numa_node;
    c.target_node = d.target_node;
    c.size = d.size;
    c.align = d.align;
    std::snprintf(c.path, sizeof c.path, "%s", d.path.c_str());
    std::snprintf(c.name, sizeof c.name, "%s", d.name.c_str());
    capi::copy_prefix(out, c, size);
}

} // namespace

extern "C" {

DAXKV_API int daxkv_list_devices(daxkv_device_info *out, size_t cap, size_t *count) {
    return guarded([&] {
        if (!count)
            return set_error(-EINVAL, "count is NULL");
        if (!out && cap)
            return set_error(-EINVAL, "out is NULL but cap is %zu", cap);
        uint32_t stride = cap ? out->struct_size : 0;
        if (cap && stride < kMinInfoSize)
            return set_error(-EINVAL, "struct_size %u is too small (set it to sizeof)", stride);
        std::vector<DeviceInfo> devs = platform::list_dax_devices();
        *count = devs.size();
        for (size_t i = 0; i < devs.size() && i < cap; ++i)
            to_c(devs[i],
                 reinterpret_cast<daxkv_device_info *>(reinterpret_cast<char *>(out) + i * stride),
                 stride);
        if (cap < devs.size())
            return set_error(-ENOBUFS, "%zu devices, room for %zu", devs.size(), cap);
        return 0;
    });
}

DAXKV_API int daxkv_probe(const char *path, daxkv_device_info *out) {
    return guarded([&] {
        if (!path || !out)
            return set_error(-EINVAL, "%s is NULL", path ? "out" : "path");
        uint32_t size = out->struct_size;
        if (size < kMinInfoSize)
            return set_error(-EINVAL, "struct_size %u is too small (set it to sizeof)", size);
        // The path is reported back whole or not at all.
        if (std::strlen(path) >= sizeof(daxkv_device_info::path))
            return set_error(-EINVAL, "path is %zu bytes, longer than daxkv_device_info.path "
                                      "holds (%zu)", std::strlen(path),
                             sizeof(daxkv_device_info::path) - 1);
        DeviceInfo d;
        d.path = path;
        if (std::strcmp(path, "mem:") == 0) {
            d.kind = platform::DeviceKind::memory;
            d.align = 4096;
        } else {
            struct stat st;
            if (::stat(path, &st) != 0)
                fail_errno(errno, std::string("cannot access ") + path);
            if (S_ISCHR(st.st_mode)) {
                d = platform::describe_dax_devnum(major(st.st_rdev), minor(st.st_rdev), path);
            } else if (S_ISREG(st.st_mode)) {
                // As daxkv_open decides: by where the path leads.
                if (platform::file_arena_refused(platform::resolve_file(path)))
                    return set_error(-ENODEV, "%s is not a Device-DAX device (a file arena may "
                                              "not live under /dev)", path);
                d.kind = platform::DeviceKind::file;
                d.size = static_cast<uint64_t>(st.st_size);
                d.align = 4096;
            } else if (S_ISDIR(st.st_mode)) {
                return set_error(-EISDIR, "%s is a directory", path);
            } else {
                return set_error(-ENODEV, "%s is neither a DAX device nor a regular file", path);
            }
        }
        to_c(d, out, size);
        return 0;
    });
}

} // extern "C"
