// Shared pieces of the daxkv command: the command table, option parsing
// (getopt_long), typed option values, help text and the progress display.
#pragma once

#include <cstdint>
#include <cstdio>
#include <initializer_list>
#include <map>
#include <string>
#include <vector>

#include "daxkv.h"

namespace daxkv_cli {

// Exit statuses shared by every command (daxkv(1), EXIT STATUS). check has
// more of its own (daxkv-check(1)).
constexpr int kExitOk = 0, kExitFailed = 1, kExitUsage = 2;

// One option of a command. A null metavar makes it a flag.
struct OptionSpec {
    const char *name;    // long name, without "--"
    char short_name;     // 0: long only
    const char *metavar; // "BYTES", "N", "PATH"; nullptr for a flag
    const char *help;    // one line for --help
};

class Args;

struct CommandSpec {
    const char *name;
    const char *synopsis;            // after "daxkv NAME", e.g. "PATH [options]"
    const char *summary;             // one line for `daxkv --help`
    const char *description;         // the paragraph of `daxkv NAME --help`
    std::vector<OptionSpec> options; // --help is added to every command
    const char *epilog;              // printed after the options (may be nullptr)
    const char *positional;          // name of the positional argument ("PATH"), or nullptr
    size_t min_positional, max_positional;
    int (*run)(const Args &);
    // The exit status of a run whose output could not be written (standard
    // output closed, or a full disk behind it).
    int failed_status = kExitFailed;
};

// The exit status of a run of the command named that failed before its
// CommandSpec could be built (out of memory): the command's failed_status,
// known without building it (check's "could not be checked"; 1 would say
// damage was repaired).
int failed_status_named(const char *command) noexcept;

// A command line a command cannot run. what names the option (or argument)
// and the value refused, and why; main() prints it with a pointer to --help
// and exits with kExitUsage.
struct UsageError {
    std::string what;
};

// The options and arguments of one command, parsed.
class Args {
public:
    const CommandSpec *cmd = nullptr;
    std::vector<std::string> positional;

    bool has(const std::string &name) const { return opts_.count(name) != 0; }
    std::string get(const std::string &name, const std::string &dflt) const;

    // Typed values; each throws UsageError naming the option and the value.
    // A size takes the library's units (4096, 4KiB, 2GiB, 1TiB) and must lie
    // in [lo, hi].
    uint64_t size(const std::string &name, uint64_t dflt, uint64_t lo = 0,
                  uint64_t hi = UINT64_MAX) const;
    // A plain non-negative integer in [lo, hi].
    uint64_t count(const std::string &name, uint64_t dflt, uint64_t lo = 1,
                   uint64_t hi = UINT64_MAX) const;
    // One of the listed words.
    std::string choice(const std::string &name, const std::string &dflt,
                       std::initializer_list<const char *> allowed) const;

    void set(const std::string &name, const std::string &value) { opts_[name] = value; }
    const std::map<std::string, std::string> &options() const { return opts_; }

private:
    std::map<std::string, std::string> opts_;
};

// "--name: 'value' why" (the form of every usage error about an option).
[[noreturn]] void refuse(const std::string &option, const std::string &value,
                         const std::string &why);

// Parse argv (argv[0] is the command's name) against cmd's options with
// getopt_long: short and long options, --name=value, options after the
// positional arguments, "--" ends the options. Throws UsageError.
Args parse_command_line(const CommandSpec &cmd, int argc, char **argv);

// The help of one command (daxkv NAME --help).
void print_command_help(const CommandSpec &cmd, FILE *f);
// Every option of cmd, one per line, followed by its metavar when it takes a
// value (for shell completion).
void print_option_names(const CommandSpec &cmd, FILE *f);

// A library call made with a configuration key that came from an option:
// a refused value is the option's fault (a usage error).
struct ConfigOption {
    const char *key;    // daxkv_config_set key
    const char *option; // the option it came from, or nullptr (set by the tool)
    std::string value;  // empty: not set
};
// Set every key with a value. A value the library refuses throws UsageError
// naming its option; for a key the tool set itself the library's code is
// returned (0 when all were taken).
int set_config(daxkv_config *cfg, const std::vector<ConfigOption> &settings);

// Progress of long work on standard error: drawn only when standard error
// is a terminal and the output is not JSON (or --no-progress), at most ten
// times a second, and erased by finish().
class Progress {
public:
    Progress(const Args &a, const char *what);
    ~Progress();
    Progress(const Progress &) = delete;
    Progress &operator=(const Progress &) = delete;
    bool on() const { return on_; }
    // Work done out of total, for the current phase.
    void update(uint64_t done, uint64_t total);
    // Name the current phase (redrawn at once).
    void phase(const std::string &what);
    // Name the current phase and say how far the whole work is (redrawn
    // at once): for work done in a few steps of their own.
    void step(const std::string &what, uint64_t done, uint64_t total);
    void finish();

private:
    void draw(bool force);
    bool on_;
    std::string what_;
    uint64_t done_ = 0, total_ = 0;
    uint64_t last_draw_ns_ = 0;
    bool drawn_ = false;
};

// Erase the progress line being drawn, if any, so that a message written to
// standard error starts on a clean line.
void progress_clear();
// fprintf to standard error after progress_clear().
void errorf(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
// The one JSON document of a command run with --json that failed before it
// had a result: {"path": path (left out when null), "error": {"code",
// "text" (daxkv_strerror), "message"}}, on standard output; one line when
// one_line (a --watch's JSON Lines).
void print_error_json(const std::string *path, int code, const std::string &message,
                      bool one_line = false);

// The commands.
const CommandSpec &bench_command();
const CommandSpec &list_command();
const CommandSpec &probe_command();
const CommandSpec &info_command();
const CommandSpec &check_command();
const CommandSpec &format_command();
const CommandSpec &stats_command();
const CommandSpec &status_command();

// The bench modes (tools/bench*.cpp).
int cmd_bench(const Args &a);
int cmd_bench_gpu(const Args &a);
int cmd_bench_reopen(const Args &a);
int cmd_bench_verify_cost(const Args &a);
int cmd_bench_migrate(const Args &a);

} // namespace daxkv_cli
