// daxkv list / daxkv probe: the DAX devices as the library sees them.
#include <cerrno>
#include <cstdio>
#include <vector>

#include <nlohmann/json.hpp>

#include "cli.hpp"
#include "daxkv.h"
#include "internal/json_text.hpp"

namespace daxkv_cli {
namespace {

const char *kind_name(uint32_t k) {
    return k == DAXKV_KIND_DEVDAX ? "devdax" : k == DAXKV_KIND_MEMORY ? "memory" : "file";
}
const char *mode_name(uint32_t m) {
    return m == DAXKV_MODE_DEVDAX ? "devdax" : m == DAXKV_MODE_SYSTEM_RAM ? "system-ram" : "none";
}

// The field names `daxctl list` uses for the same facts.
nlohmann::json to_json(const daxkv_device_info &d) {
    nlohmann::json j;
    if (d.name[0])
        j["chardev"] = d.name;
    j["path"] = daxkv::json_bytes(d.path);
    j["kind"] = kind_name(d.kind);
    j["size"] = d.size;
    if (d.target_node >= 0)
        j["target_node"] = d.target_node;
    if (d.numa_node >= 0)
        j["numa_node"] = d.numa_node;
    j["align"] = d.align;
    if (d.kind == DAXKV_KIND_DEVDAX)
        j["mode"] = mode_name(d.mode);
    return j;
}

void print_table(const std::vector<daxkv_device_info> &v) {
    std::printf("%-10s %-14s %-10s %14s %10s %5s %6s\n", "DEVICE", "PATH", "MODE", "SIZE",
                "ALIGN", "NUMA", "TARGET");
    for (const auto &d : v)
        std::printf("%-10s %-14s %-10s %14llu %10llu %5d %6d\n", d.name[0] ? d.name : "-",
                    d.path, d.kind == DAXKV_KIND_DEVDAX ? mode_name(d.mode) : kind_name(d.kind),
                    (unsigned long long)d.size, (unsigned long long)d.align, d.numa_node,
                    d.target_node);
}

int report(int rc, const char *what) {
    std::fprintf(stderr, "daxkv %s: %s (%d): %s\n", what, daxkv_strerror(rc), rc, daxkv_errmsg());
    return 1;
}

} // namespace

int cmd_list(const Args &a) {
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
    if (a.has("json")) {
        nlohmann::json arr = nlohmann::json::array();
        for (const auto &d : v)
            arr.push_back(to_json(d));
        std::printf("%s\n", arr.dump(2).c_str());
    } else if (v.empty()) {
        std::printf("no DAX devices found\n");
    } else {
        print_table(v);
    }
    return 0;
}

int cmd_probe(const Args &a) {
    if (a.positional.size() != 1) {
        std::fprintf(stderr, "usage: daxkv probe PATH [--json]\n");
        return 2;
    }
    daxkv_device_info d{};
    d.struct_size = sizeof d;
    int rc = daxkv_probe(a.positional[0].c_str(), &d);
    if (rc != 0)
        return report(rc, "probe");
    if (a.has("json"))
        std::printf("%s\n", to_json(d).dump(2).c_str());
    else
        print_table({d});
    return 0;
}

} // namespace daxkv_cli
