// Shared pieces of the daxkv command: option parsing and output helpers.
#pragma once

#include <cstdint>
#include <cstdio>
#include <map>
#include <string>
#include <vector>

namespace daxkv_cli {

// "--name value" / "--name=value" / "--flag" options after the subcommand.
struct Args {
    std::map<std::string, std::string> opts;
    std::vector<std::string> positional;
    bool has(const std::string &k) const { return opts.count(k) != 0; }
    std::string get(const std::string &k, const std::string &dflt) const {
        auto it = opts.find(k);
        return it == opts.end() ? dflt : it->second;
    }
};

// Parse argv[first..]; flags lists the options that take no value. Returns
// false (after printing why) on a malformed command line.
bool parse_args(int argc, char **argv, int first, const std::vector<std::string> &flags,
                const std::vector<std::string> &valued, Args &out);

// "4MiB" -> bytes; false on bad input.
bool parse_size(const std::string &s, uint64_t &out);

int cmd_bench(const Args &a);
int cmd_bench_gpu(const Args &a); // daxkv bench --gpu
int cmd_bench_reopen(const Args &a);
int cmd_bench_verify_cost(const Args &a);
int cmd_bench_migrate(const Args &a);
int cmd_list(const Args &a);
int cmd_probe(const Args &a);
int cmd_info(const Args &a);
int cmd_check(const Args &a);
int cmd_format(const Args &a);
void bench_usage(FILE *f);
void info_usage(FILE *f);
void check_usage(FILE *f);
void format_usage(FILE *f);

} // namespace daxkv_cli
