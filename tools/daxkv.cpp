// daxkv: the command-line tool of libdaxkv.
//
//   daxkv COMMAND [options] [arguments]
//
// Each command has a CommandSpec (its options, help and the function that
// runs it); this file dispatches to them. Exit statuses: 0 done, 1 the
// operation failed, 2 the command line was refused (check adds its own).
#include <cerrno>
#include <cstdio>
#include <cstring>
#include <exception>
#include <fcntl.h>
#include <new>
#include <string>
#include <vector>

#include "cli.hpp"
#include "daxkv.h"

namespace daxkv_cli {
namespace {

int cmd_version(const Args &) {
    std::printf("daxkv %s (library %s)\n", DAXKV_VERSION_STRING, daxkv_version_string());
    return kExitOk;
}

const CommandSpec &version_command() {
    static const CommandSpec c = {
        "version",
        "",
        "print the version of the tool and of the library it runs",
        "Print the version of the daxkv command and of the libdaxkv library it runs\n"
        "(libdaxkv.so.0, which every store operation of the tool goes through).",
        {},
        nullptr,
        nullptr,
        0,
        0,
        cmd_version,
    };
    return c;
}

// Every command, in the order `daxkv --help` lists them.
std::vector<const CommandSpec *> commands() {
    return {&bench_command(),  &list_command(),  &probe_command(),   &info_command(),
            &check_command(),  &format_command(), &stats_command(),  &status_command(),
            &version_command()};
}

const CommandSpec *find_command(const std::string &name) {
    for (const CommandSpec *c : commands())
        if (name == c->name)
            return c;
    return nullptr;
}

void usage(FILE *f) {
    std::fprintf(f, "usage: daxkv COMMAND [options] [arguments]\n"
                    "       daxkv --help | --version | help [COMMAND]\n"
                    "\n"
                    "commands:\n");
    for (const CommandSpec *c : commands())
        std::fprintf(f, "  %-9s %s\n", c->name, c->summary);
    std::fprintf(f, "\n"
                    "'daxkv COMMAND --help' shows a command's options.\n"
                    "Exit status: 0 done, 1 the operation failed, 2 the command line was\n"
                    "refused (check has more). See daxkv(1).\n");
}

int usage_error(const char *cmd, const std::string &what) {
    if (cmd) {
        std::fprintf(stderr, "daxkv %s: %s\n", cmd, what.c_str());
        std::fprintf(stderr, "Try 'daxkv %s --help'.\n", cmd);
    } else {
        std::fprintf(stderr, "daxkv: %s\n", what.c_str());
        std::fprintf(stderr, "Try 'daxkv --help'.\n");
    }
    return kExitUsage;
}

int run_command(const CommandSpec &cmd, int argc, char **argv) {
    try {
        Args a = parse_command_line(cmd, argc, argv);
        if (a.has("help")) {
            print_command_help(cmd, stdout);
            return kExitOk;
        }
        if (a.has("list-opts")) {
            print_option_names(cmd, stdout);
            return kExitOk;
        }
        return cmd.run(a);
    } catch (const UsageError &e) {
        return usage_error(cmd.name, e.what);
    } catch (const std::bad_alloc &) {
        // The command's own status for a run that did not get to its end
        // (check: 4, "could not be checked"; 1 is "damage repaired").
        std::fprintf(stderr, "daxkv %s: out of memory\n", cmd.name);
        return cmd.failed_status;
    } catch (const std::exception &e) {
        std::fprintf(stderr, "daxkv %s: %s\n", cmd.name, e.what());
        return cmd.failed_status;
    }
}

// Descriptors 0, 1 and 2 the tool was started without are taken by
// /dev/null, read-only: a file the tool or the library opens (an arena)
// would otherwise get one of those numbers, and what is printed to
// standard output or error would be written into it. Read-only, so that
// printing to a stream that was closed still fails, as it would have.
void occupy_closed_standard_descriptors() {
    for (int fd = 0; fd <= 2; ++fd) {
        if (::fcntl(fd, F_GETFD) != -1 || errno != EBADF)
            continue;
        // The lowest free number: fd, as the lower ones are open by now.
        (void)::open("/dev/null", O_RDONLY);
    }
}

// Output that could not be written (standard output closed, a full disk,
// a broken file system) makes the run fail, with the reason: a script
// must not take a report it never got for a success.
int finish_output(const CommandSpec *cmd, int rc) {
    errno = 0;
    if (std::fflush(stdout) == 0 && !std::ferror(stdout))
        return rc;
    const int err = errno;
    progress_clear();
    std::fprintf(stderr, "daxkv%s%s: write error on standard output%s%s\n", cmd ? " " : "",
                 cmd ? cmd->name : "", err ? ": " : "", err ? std::strerror(err) : "");
    return cmd ? cmd->failed_status : kExitFailed;
}

int run_main(int argc, char **argv, const CommandSpec *&ran) {
    if (argc < 2) {
        usage(stderr);
        return kExitUsage;
    }
    const std::string first = argv[1];
    if (first == "--help" || first == "-h") {
        usage(stdout);
        return kExitOk;
    }
    if (first == "--version") {
        ran = find_command("version");
        return run_command(*ran, argc - 1, argv + 1);
    }
    if (first == "--list-cmds") { // for shell completion
        for (const CommandSpec *c : commands())
            std::printf("%s\n", c->name);
        return kExitOk;
    }
    if (first == "help") {
        if (argc == 2) {
            usage(stdout);
            return kExitOk;
        }
        const CommandSpec *c = find_command(argv[2]);
        ran = c;
        if (!c || argc > 3)
            return usage_error(nullptr,
                               c ? std::string("unexpected argument '") + argv[3] + "'"
                                 : std::string("'") + argv[2] + "' is not a daxkv command");
        print_command_help(*c, stdout);
        return kExitOk;
    }
    if (!first.empty() && first[0] == '-')
        return usage_error(nullptr, "unknown option '" + first + "' (give a command first)");
    const CommandSpec *c = find_command(first);
    if (!c)
        return usage_error(nullptr, "'" + first + "' is not a daxkv command");
    ran = c;
    return run_command(*c, argc - 1, argv + 1);
}

} // namespace
} // namespace daxkv_cli

int main(int argc, char **argv) {
    using namespace daxkv_cli;
    occupy_closed_standard_descriptors();
    const CommandSpec *ran = nullptr;
    int rc;
    try {
        rc = run_main(argc, argv, ran);
    } catch (const std::bad_alloc &) {
        // Before a command ran (its table, the top-level help): an
        // uncaught exception would abort.
        std::fprintf(stderr, "daxkv: out of memory\n");
        rc = ran ? ran->failed_status : failed_status_named(argc > 1 ? argv[1] : nullptr);
    } catch (const std::exception &e) {
        std::fprintf(stderr, "daxkv: %s\n", e.what());
        rc = ran ? ran->failed_status : failed_status_named(argc > 1 ? argv[1] : nullptr);
    }
    return finish_output(ran, rc);
}
