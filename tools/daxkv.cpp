// daxkv: the command-line tool of libdaxkv.
#include <cctype>
#include <cstdio>
#include <cstring>
#include <string>

#include "cli.hpp"
#include "daxkv.h"

namespace daxkv_cli {

bool parse_args(int argc, char **argv, int first, const std::vector<std::string> &flags,
                const std::vector<std::string> &valued, Args &out) {
    auto known = [](const std::vector<std::string> &v, const std::string &n) {
        for (const auto &x : v)
            if (x == n)
                return true;
        return false;
    };
    for (int i = first; i < argc; ++i) {
        std::string a = argv[i];
        if (a.rfind("--", 0) != 0) {
            out.positional.push_back(a);
            continue;
        }
        std::string name = a.substr(2), value;
        bool inline_value = false;
        size_t eq = name.find('=');
        if (eq != std::string::npos) {
            value = name.substr(eq + 1);
            name = name.substr(0, eq);
            inline_value = true;
        }
        if (known(flags, name)) {
            if (inline_value) {
                std::fprintf(stderr, "daxkv: --%s takes no value\n", name.c_str());
                return false;
            }
            out.opts[name] = "1";
        } else if (known(valued, name)) {
            if (!inline_value) {
                if (i + 1 >= argc) {
                    std::fprintf(stderr, "daxkv: --%s needs a value\n", name.c_str());
                    return false;
                }
                value = argv[++i];
            }
            out.opts[name] = value;
        } else {
            std::fprintf(stderr, "daxkv: unknown option --%s\n", name.c_str());
            return false;
        }
    }
    return true;
}

bool parse_size(const std::string &s, uint64_t &out) {
    size_t i = 0;
    uint64_t v = 0;
    if (s.empty() || !std::isdigit(static_cast<unsigned char>(s[0])))
        return false;
    while (i < s.size() && std::isdigit(static_cast<unsigned char>(s[i]))) {
        uint64_t d = static_cast<uint64_t>(s[i] - '0');
        if (v > (UINT64_MAX - d) / 10)
            return false;
        v = v * 10 + d;
        ++i;
    }
    std::string u = s.substr(i);
    uint64_t m = 1;
    if (u.empty() || u == "B")
        m = 1;
    else if (u == "K" || u == "KiB" || u == "k")
        m = 1ull << 10;
    else if (u == "M" || u == "MiB")
        m = 1ull << 20;
    else if (u == "G" || u == "GiB")
        m = 1ull << 30;
    else
        return false;
    if (v > UINT64_MAX / m)
        return false;
    out = v * m;
    return true;
}

} // namespace daxkv_cli

static void usage(FILE *f) {
    std::fprintf(f,
                 "usage: daxkv <command> [options]\n"
                 "\n"
                 "commands:\n"
                 "  bench      store and restore KV chunks, verify them, compare with memcpy\n"
                 "  list       the DAX devices of this host (--json: daxctl list's fields)\n"
                 "  probe PATH what daxkv_open would see at PATH (--json)\n"
                 "  info PATH  an arena's layout, entries and what an open would recover\n"
                 "  check PATH verify every entry of an arena (--repair drops damaged ones)\n"
                 "  format PATH --slot-bytes N   write a new, empty arena (claims foreign data\n"
                 "             with --force)\n"
                 "  version    print the library version\n"
                 "\n"
                 "daxkv <command> --help shows a command's options.\n");
}

int main(int argc, char **argv) {
    if (argc < 2) {
        usage(stderr);
        return 2;
    }
    std::string cmd = argv[1];
    if (cmd == "--help" || cmd == "-h" || cmd == "help") {
        usage(stdout);
        return 0;
    }
    if (cmd == "--version" || cmd == "version") {
        std::printf("daxkv %s (library %s)\n", DAXKV_VERSION_STRING, daxkv_version_string());
        return 0;
    }
    if (cmd == "list" || cmd == "probe") {
        daxkv_cli::Args a;
        if (!daxkv_cli::parse_args(argc, argv, 2, {"json"}, {}, a))
            return 2;
        if (cmd == "list" && !a.positional.empty()) {
            std::fprintf(stderr, "usage: daxkv list [--json]\n");
            return 2;
        }
        return cmd == "list" ? daxkv_cli::cmd_list(a) : daxkv_cli::cmd_probe(a);
    }
    if (cmd == "info" || cmd == "check" || cmd == "format") {
        // Exit status 2 on a malformed command line, as for the others.
        daxkv_cli::Args a;
        void (*usage_fn)(FILE *) = cmd == "info"    ? daxkv_cli::info_usage
                                   : cmd == "check" ? daxkv_cli::check_usage
                                                    : daxkv_cli::format_usage;
        bool ok = cmd == "info"
                      ? daxkv_cli::parse_args(argc, argv, 2, {"json", "no-values", "help"}, {}, a)
                  : cmd == "check"
                      ? daxkv_cli::parse_args(argc, argv, 2,
                                              {"json", "no-values", "repair", "help"}, {}, a)
                      : daxkv_cli::parse_args(argc, argv, 2, {"json", "force", "help"},
                                              {"slot-bytes", "meta-bytes", "size"}, a);
        if (!ok) {
            usage_fn(stderr);
            return 2;
        }
        if (a.has("help")) {
            usage_fn(stdout);
            return 0;
        }
        return cmd == "info"    ? daxkv_cli::cmd_info(a)
               : cmd == "check" ? daxkv_cli::cmd_check(a)
                                : daxkv_cli::cmd_format(a);
    }
    if (cmd == "bench") {
        daxkv_cli::Args a;
        if (!daxkv_cli::parse_args(argc, argv, 2,
                                   {"json", "no-progress", "keep", "help", "no-small", "gpu",
                                    "reopen", "verify-cost", "migrate", "sweep"},
                                   {"arena", "size", "count", "value-size", "workers", "verify",
                                    "durability", "rounds", "small-count", "small-size",
                                    "nt-stores", "staging-bytes", "register-chunk", "slot-bytes",
                                    "async-rounds", "min-size", "max-size", "bytes", "plot",
                                    "workload", "model", "tokens", "docs", "queries",
                                    "chunk-tokens"},
                                   a)) {
            daxkv_cli::bench_usage(stderr);
            return 2;
        }
        if (a.has("help")) {
            daxkv_cli::bench_usage(stdout);
            return 0;
        }
        if (a.has("gpu"))
            return daxkv_cli::cmd_bench_gpu(a);
        if (a.has("migrate"))
            return daxkv_cli::cmd_bench_migrate(a);
        return daxkv_cli::cmd_bench(a);
    }
    std::fprintf(stderr, "daxkv: unknown command '%s'\n", cmd.c_str());
    usage(stderr);
    return 2;
}
