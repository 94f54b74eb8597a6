// Option parsing, typed option values, help text and progress for the
// daxkv command.
#include "cli.hpp"

#include <algorithm>
#include <cerrno>
#include <chrono>
#include <cstdarg>
#include <cstring>
#include <getopt.h>
#include <unistd.h>

#include <nlohmann/json.hpp>

#include "daxkv.h"
#include "internal/error.hpp"
#include "internal/json_text.hpp"
#include "internal/util.hpp"

namespace daxkv_cli {

std::string Args::get(const std::string &name, const std::string &dflt) const {
    auto it = opts_.find(name);
    return it == opts_.end() ? dflt : it->second;
}

void refuse(const std::string &option, const std::string &value, const std::string &why) {
    throw UsageError{"--" + option + ": '" + value + "' " + why};
}

namespace {

std::string range_text(uint64_t lo, uint64_t hi, bool sizes) {
    auto show = [&](uint64_t v) {
        return sizes && v >= 1024 ? daxkv::human_bytes(v) : std::to_string(v);
    };
    if (hi == UINT64_MAX)
        return "at least " + show(lo);
    return show(lo) + " to " + show(hi);
}

} // namespace

uint64_t Args::size(const std::string &name, uint64_t dflt, uint64_t lo, uint64_t hi) const {
    if (!has(name))
        return dflt;
    const std::string text = get(name, "");
    uint64_t v = 0;
    try {
        // The library's own parser: the units daxkv_config_set takes.
        v = daxkv::parse_size(text, ("--" + name).c_str());
    } catch (const daxkv::Error &e) {
        throw UsageError{e.what()};
    }
    if (v < lo || v > hi)
        refuse(name, text, "is out of range (" + range_text(lo, hi, true) + ")");
    return v;
}

uint64_t Args::count(const std::string &name, uint64_t dflt, uint64_t lo, uint64_t hi) const {
    if (!has(name))
        return dflt;
    const std::string text = get(name, "");
    uint64_t v = 0;
    try {
        v = daxkv::parse_uint(text, ("--" + name).c_str());
    } catch (const daxkv::Error &e) {
        throw UsageError{e.what()};
    }
    if (v < lo || v > hi)
        refuse(name, text, "is out of range (" + range_text(lo, hi, false) + ")");
    return v;
}

std::string Args::choice(const std::string &name, const std::string &dflt,
                         std::initializer_list<const char *> allowed) const {
    if (!has(name))
        return dflt;
    const std::string v = get(name, "");
    std::string list;
    for (const char *a : allowed) {
        if (v == a)
            return v;
        list += list.empty() ? a : std::string(", ") + a;
    }
    refuse(name, v, "is not one of " + list);
}

namespace {

// getopt_long's `val` for an option without a short name: above every char.
constexpr int kLongOnly = 256;

const OptionSpec kHelpOption = {"help", 'h', nullptr, "show this help and exit"};
const OptionSpec kListOptsOption = {"list-opts", 0, nullptr, nullptr};

std::vector<const OptionSpec *> all_options(const CommandSpec &cmd) {
    std::vector<const OptionSpec *> v;
    for (const auto &o : cmd.options)
        v.push_back(&o);
    v.push_back(&kHelpOption);
    v.push_back(&kListOptsOption); // undocumented in --help: for completion scripts
    return v;
}

std::string option_label(const OptionSpec &o) {
    std::string s = o.short_name ? std::string("-") + o.short_name + ", " : "    ";
    s += "--";
    s += o.name;
    if (o.metavar) {
        s += ' ';
        s += o.metavar;
    }
    return s;
}

} // namespace

Args parse_command_line(const CommandSpec &cmd, int argc, char **argv) {
    const std::vector<const OptionSpec *> opts = all_options(cmd);
    std::vector<struct option> longopts;
    // ':' first: a missing value is reported as ':' (not '?'), so the two
    // errors get their own messages.
    std::string shortopts = ":";
    for (size_t i = 0; i < opts.size(); ++i) {
        const OptionSpec &o = *opts[i];
        int val = o.short_name ? static_cast<unsigned char>(o.short_name)
                               : kLongOnly + static_cast<int>(i);
        longopts.push_back({o.name, o.metavar ? required_argument : no_argument, nullptr, val});
        if (o.short_name) {
            shortopts += o.short_name;
            if (o.metavar)
                shortopts += ':';
        }
    }
    longopts.push_back({nullptr, 0, nullptr, 0});
    auto by_val = [&](int val) -> const OptionSpec * {
        for (size_t i = 0; i < opts.size(); ++i) {
            int v = opts[i]->short_name ? static_cast<unsigned char>(opts[i]->short_name)
                                        : kLongOnly + static_cast<int>(i);
            if (v == val)
                return opts[i];
        }
        return nullptr;
    };

    Args a;
    a.cmd = &cmd;
    opterr = 0;
    optind = 0; // 0: GNU getopt starts over (and reads its "+"/"-" modes afresh)
    for (;;) {
        int c = getopt_long(argc, argv, shortopts.c_str(), longopts.data(), nullptr);
        if (c == -1)
            break;
        // The element that caused an error (a long option, or the word
        // holding a short one).
        const char *word = optind > 0 && optind <= argc ? argv[optind - 1] : "";
        if (c == ':') {
            const OptionSpec *o = by_val(optopt);
            throw UsageError{std::string(o ? "--" + std::string(o->name) : word) +
                             " needs a value (" + (o && o->metavar ? o->metavar : "VALUE") + ")"};
        }
        if (c == '?') {
            const OptionSpec *o = optopt ? by_val(optopt) : nullptr;
            if (o && !o->metavar)
                throw UsageError{"--" + std::string(o->name) + " takes no value (got '" + word +
                                 "')"};
            if (optopt && optopt < kLongOnly)
                throw UsageError{std::string("unknown option '-") + static_cast<char>(optopt) +
                                 "'"};
            std::string w = word, name = w.substr(0, w.find('='));
            if (name.size() > 2 && name.compare(0, 2, "--") == 0) {
                // getopt_long takes unique abbreviations; say which ones a
                // prefix it refused could mean.
                std::string matches;
                for (const OptionSpec *x : opts)
                    if (x->help && std::strncmp(x->name, name.c_str() + 2, name.size() - 2) == 0)
                        matches += (matches.empty() ? "--" : ", --") + std::string(x->name);
                if (matches.find(',') != std::string::npos)
                    throw UsageError{"ambiguous option '" + w + "' (" + matches + ")"};
            }
            throw UsageError{"unknown option '" + w + "'"};
        }
        const OptionSpec *o = by_val(c);
        if (!o)
            throw UsageError{std::string("unknown option '") + word + "'"};
        a.set(o->name, o->metavar ? std::string(optarg ? optarg : "") : std::string());
    }
    for (int i = optind; i < argc; ++i)
        a.positional.push_back(argv[i]);
    // --help and --list-opts need none of the arguments: asking for help
    // must not fail for want of the PATH the help would explain.
    if (a.has("help") || a.has("list-opts"))
        return a;
    if (a.positional.size() < cmd.min_positional)
        throw UsageError{std::string("missing ") + (cmd.positional ? cmd.positional : "argument")};
    if (a.positional.size() > cmd.max_positional)
        throw UsageError{"unexpected argument '" + a.positional[cmd.max_positional] + "'"};
    return a;
}

void print_command_help(const CommandSpec &cmd, FILE *f) {
    std::fprintf(f, "usage: daxkv %s %s\n\n%s\n", cmd.name, cmd.synopsis, cmd.description);
    std::vector<const OptionSpec *> opts = all_options(cmd);
    size_t width = 0;
    for (const OptionSpec *o : opts)
        if (o->help)
            width = std::max(width, option_label(*o).size());
    width = std::min<size_t>(width, 30);
    std::fprintf(f, "\noptions:\n");
    for (const OptionSpec *o : opts) {
        if (!o->help)
            continue;
        std::string label = option_label(*o);
        if (label.size() > width)
            std::fprintf(f, "  %s\n  %*s  %s\n", label.c_str(), static_cast<int>(width), "",
                         o->help);
        else
            std::fprintf(f, "  %-*s  %s\n", static_cast<int>(width), label.c_str(), o->help);
    }
    if (cmd.epilog)
        std::fprintf(f, "\n%s\n", cmd.epilog);
    std::fprintf(f, "\nSee daxkv-%s(1).\n", cmd.name);
}

void print_option_names(const CommandSpec &cmd, FILE *f) {
    for (const OptionSpec *o : all_options(cmd))
        if (o->help) {
            const char *sep = o->metavar ? " " : "", *arg = o->metavar ? o->metavar : "";
            if (o->short_name)
                std::fprintf(f, "-%c%s%s\n", o->short_name, sep, arg);
            std::fprintf(f, "--%s%s%s\n", o->name, sep, arg);
        }
}

int set_config(daxkv_config *cfg, const std::vector<ConfigOption> &settings) {
    for (const auto &s : settings) {
        if (s.value.empty())
            continue;
        int rc = daxkv_config_set(cfg, s.key, s.value.c_str());
        if (rc == 0)
            continue;
        if (s.option)
            refuse(s.option, s.value, std::string("is refused by the library: ") + daxkv_errmsg());
        return rc;
    }
    return 0;
}

namespace {

uint64_t now_ns() {
    return static_cast<uint64_t>(std::chrono::duration_cast<std::chrono::nanoseconds>(
                                     std::chrono::steady_clock::now().time_since_epoch())
                                     .count());
}

} // namespace

namespace {
// The display being drawn (the tool draws one at a time, from one thread).
Progress *active_progress = nullptr;
} // namespace

void progress_clear() {
    if (active_progress)
        active_progress->finish();
}

void errorf(const char *fmt, ...) {
    progress_clear();
    va_list ap;
    va_start(ap, fmt);
    std::vfprintf(stderr, fmt, ap);
    va_end(ap);
}

void print_error_json(const std::string *path, int code, const std::string &message,
                      bool one_line) {
    nlohmann::json j = nlohmann::json::object();
    if (path)
        j["path"] = daxkv::json_bytes(*path);
    j["error"] = {{"code", code}, {"text", daxkv_strerror(code)}, {"message", daxkv::json_bytes(message)}};
    std::printf("%s\n", j.dump(one_line ? -1 : 2).c_str());
}

Progress::Progress(const Args &a, const char *what)
    : on_(isatty(STDERR_FILENO) == 1 && !a.has("json") && !a.has("no-progress")), what_(what) {
    if (on_)
        active_progress = this;
}

Progress::~Progress() {
    finish();
    if (active_progress == this)
        active_progress = nullptr;
}

void Progress::update(uint64_t done, uint64_t total) {
    done_ = done;
    total_ = total;
    draw(false);
}

void Progress::phase(const std::string &what) {
    what_ = what;
    done_ = total_ = 0;
    draw(true);
}

void Progress::step(const std::string &what, uint64_t done, uint64_t total) {
    what_ = what;
    done_ = done;
    total_ = total;
    draw(true);
}

void Progress::draw(bool force) {
    if (!on_)
        return;
    const uint64_t t = now_ns();
    // Ten redraws a second are enough to see it move and cost nothing.
    if (!force && drawn_ && t - last_draw_ns_ < 100000000ull && done_ != total_)
        return;
    last_draw_ns_ = t;
    constexpr int kWidth = 30;
    char bar[kWidth + 1];
    int fill = total_ ? static_cast<int>(std::min<uint64_t>(done_, total_) * kWidth / total_) : 0;
    for (int i = 0; i < kWidth; ++i)
        bar[i] = i < fill ? '#' : ' ';
    bar[kWidth] = '\0';
    std::string label = what_.substr(0, 44);
    if (total_)
        std::fprintf(stderr, "\r\033[K  [%s] %3d%% %s", bar,
                     static_cast<int>(std::min<uint64_t>(done_, total_) * 100 / total_),
                     label.c_str());
    else
        std::fprintf(stderr, "\r\033[K  %s ...", label.c_str());
    std::fflush(stderr);
    drawn_ = true;
}

void Progress::finish() {
    if (on_ && drawn_) {
        std::fprintf(stderr, "\r\033[K");
        std::fflush(stderr);
    }
    drawn_ = false;
}

} // namespace daxkv_cli
