// daxkv list / daxkv probe: the DAX devices as the library sees them, in
// the JSON of `daxctl list`: the same field names in the same order
// (chardev, size, target_node, align, mode, state), daxkv's own facts after
// them (numa_node, kind, path), one bare object for one device, and -u for
// sizes a person reads.
#include <cerrno>
#include <cinttypes>
#include <cstdio>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "cli.hpp"
#include "daxkv.h"
#include "internal/json_text.hpp"

namespace daxkv_cli {
namespace {

using ordered_json = nlohmann::ordered_json;

const char *kind_name(uint32_t k) {
    return k == DAXKV_KIND_DEVDAX ? "devdax" : k == DAXKV_KIND_MEMORY ? "memory" : "file";
}

// daxctl's human sizes: bytes below 5000 KiB as a number, else binary and
// decimal units side by side, "7.88 GiB (8.46 GB)".
ordered_json size_value(uint64_t bytes, bool human) {
    if (!human || bytes < 5000ull * 1024)
        return bytes;
    const uint64_t GiB = 1ull << 30, TiB = 1ull << 40;
    char buf[64];
    int c;
    if (bytes < 2 * GiB)
        c = std::snprintf(buf, sizeof buf, "%.2f MiB", bytes / 1048576.0);
    else if (bytes < 2 * TiB)
        c = std::snprintf(buf, sizeof buf, "%.2f GiB", bytes / static_cast<double>(GiB));
    else
        c = std::snprintf(buf, sizeof buf, "%.2f TiB", bytes / static_cast<double>(TiB));
    if (bytes < 2 * GiB)
        std::snprintf(buf + c, sizeof buf - c, " (%.2f MB)", bytes / 1e6);
    else if (bytes < 2 * TiB)
        std::snprintf(buf + c, sizeof buf - c, " (%.2f GB)", bytes / 1e9);
    else
        std::snprintf(buf + c, sizeof buf - c, " (%.2f TB)", bytes / 1e12);
    return std::string(buf);
}

ordered_json to_json(const daxkv_device_info &d, bool human) {
    ordered_json j;
    if (d.kind == DAXKV_KIND_DEVDAX) {
        j["chardev"] = d.name;
        j["size"] = size_value(d.size, human);
        if (d.target_node >= 0)
            j["target_node"] = d.target_node;
        if (d.align > 0)
            j["align"] = size_value(d.align, human);
        // As daxctl: a device without a driver is a devdax device that is
        // disabled (kmem, system-ram mode, is a driver too).
        j["mode"] = d.mode == DAXKV_MODE_SYSTEM_RAM ? "system-ram" : "devdax";
        if (d.mode == DAXKV_MODE_NONE)
            j["state"] = "disabled";
    } else {
        j["size"] = size_value(d.size, human);
        if (d.align > 0)
            j["align"] = size_value(d.align, human);
    }
    if (d.numa_node >= 0)
        j["numa_node"] = d.numa_node;
    j["kind"] = kind_name(d.kind);
    j["path"] = daxkv::json_bytes(d.path);
    return j;
}

// list and probe print JSON always: a failure is the error document too.
int report(int rc, const char *what, const std::string *path = nullptr) {
    const std::string message = daxkv_errmsg();
    std::fprintf(stderr, "daxkv %s: %s (%d): %s\n", what, daxkv_strerror(rc), rc, message.c_str());
    print_error_json(path, rc, message);
    return kExitFailed;
}

// The name a --dev value means ("dax1.0" for dax1.0, 1.0 and /dev/dax1.0),
// "" for all; a UsageError for anything else.
std::string device_filter(const Args &a) {
    if (!a.has("dev"))
        return "";
    std::string v = a.get("dev", ""), s = v;
    if (s == "all")
        return "";
    if (s.rfind("/dev/", 0) == 0)
        s = s.substr(5);
    if (s.rfind("dax", 0) != 0)
        s = "dax" + s;
    // Digits only, each number within 32 bits (sscanf's %u took "-1" and
    // numbers past 2^32, wrapped, for device numbers).
    size_t at = 3;
    auto number = [&](uint32_t &out) {
        const size_t first = at;
        uint64_t n = 0;
        while (at < s.size() && s[at] >= '0' && s[at] <= '9') {
            n = n * 10 + static_cast<uint64_t>(s[at++] - '0');
            if (n > UINT32_MAX)
                return false;
        }
        out = static_cast<uint32_t>(n);
        return at > first;
    };
    uint32_t region = 0, id = 0;
    const bool ok =
        number(region) && at < s.size() && s[at++] == '.' && number(id) && at == s.size();
    if (!ok)
        refuse("dev", v, "is not a device (daxX.Y, X.Y, /dev/daxX.Y or all)");
    return "dax" + std::to_string(region) + "." + std::to_string(id);
}

// One device as a bare object, several as an array (as daxctl list).
void print_devices(const std::vector<daxkv_device_info> &v, bool human) {
    if (v.size() == 1) {
        std::printf("%s\n", to_json(v[0], human).dump(2).c_str());
        return;
    }
    ordered_json arr = ordered_json::array();
    for (const auto &d : v)
        arr.push_back(to_json(d, human));
    std::printf("%s\n", arr.dump(2).c_str());
}

int cmd_list(const Args &a) {
    const std::string want = device_filter(a);
    size_t count = 0;
    int rc = daxkv_list_devices(nullptr, 0, &count);
    if (rc != 0 && rc != -ENOBUFS)
        return report(rc, "list");
    std::vector<daxkv_device_info> v(count);
    for (auto &d : v)
        d.struct_size = sizeof d;
    if (count && (rc = daxkv_list_devices(v.data(), v.size(), &count)) != 0)
        return report(rc, "list");
    v.resize(count);
    if (!want.empty()) {
        std::vector<daxkv_device_info> match;
        for (const auto &d : v)
            if (want == d.name)
                match.push_back(d);
        if (match.empty()) {
            const std::string message =
                "no DAX device " + want + " (--dev " + a.get("dev", "") + ")";
            std::fprintf(stderr, "daxkv list: %s\n", message.c_str());
            print_error_json(nullptr, -ENOENT, message);
            return kExitFailed;
        }
        v = match;
    }
    print_devices(v, a.has("human"));
    return kExitOk;
}

int cmd_probe(const Args &a) {
    daxkv_device_info d{};
    d.struct_size = sizeof d;
    int rc = daxkv_probe(a.positional[0].c_str(), &d);
    if (rc != 0)
        return report(rc, "probe", &a.positional[0]);
    print_devices({d}, a.has("human"));
    return kExitOk;
}

} // namespace

const CommandSpec &list_command() {
    static const CommandSpec c = {
        "list",
        "[options]",
        "the DAX devices of this host, in daxctl list's JSON",
        "List the Device-DAX devices of this host as libdaxkv sees them (through\n"
        "libdaxctl, or sysfs), in the JSON of 'daxctl list': chardev, size,\n"
        "target_node, align, mode and state (\"disabled\" for a device without a\n"
        "driver), then numa_node, kind and path. Disabled (idle) devices are listed\n"
        "too. One device prints as a bare object, several as an array, none as [].",
        {
            {"dev", 'd', "DEV", "only this device: daxX.Y, X.Y, /dev/daxX.Y or all"},
            {"human", 'u', nullptr, "sizes with units, as daxctl list -u (\"7.88 GiB (8.46 GB)\")"},
            {"idle", 'i', nullptr,
             "accepted for daxctl's command lines: idle devices are always listed"},
            {"json", 'j', nullptr,
             "accepted for symmetry with the other commands: JSON is the output"},
        },
        "exit status: 0 listed, 1 no device matches --dev (or discovery failed),\n"
        "2 usage error.",
        nullptr,
        0,
        0,
        cmd_list,
    };
    return c;
}

const CommandSpec &probe_command() {
    static const CommandSpec c = {
        "probe",
        "PATH [options]",
        "what a store would see at PATH (device, file or mem:)",
        "Describe what daxkv_open would see at PATH: a Device-DAX device (the fields\n"
        "of 'daxkv list'), a regular file or mem:, as one JSON object. Changes\n"
        "nothing.",
        {
            {"human", 'u', nullptr, "sizes with units, as daxctl list -u"},
            {"json", 'j', nullptr,
             "accepted for symmetry with the other commands: JSON is the output"},
        },
        "exit status: 0 described, 1 PATH cannot be used (missing, not a DAX device,\n"
        "file or mem:), 2 usage error.",
        "PATH",
        1,
        1,
        cmd_probe,
    };
    return c;
}

} // namespace daxkv_cli
