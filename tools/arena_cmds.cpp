// daxkv info / check / format: an arena's on-device metadata, read (and with
// check --repair or format, written) directly through the arena layer, with
// no store open. Each takes the device's exclusive lock, so none of them runs
// against an arena a process has open (that is -EBUSY, naming the holder).
#include <algorithm>
#include <cerrno>
#include <cinttypes>
#include <cstdio>
#include <atomic>
#include <cstring>
#include <ctime>
#include <memory>
#include <string>
#include <thread>
#include <sched.h>
#include <unistd.h>

#include <nlohmann/json.hpp>

#include "arena/arena.hpp"
#include "arena/inspect.hpp"
#include "engine/fault.hpp"
#include "cli.hpp"
#include "daxkv.h"
#include "internal/error.hpp"
#include "internal/util.hpp"
#include "internal/json_text.hpp"
#include "platform/mapping.hpp"
#include "store/config.hpp"

namespace daxkv_cli {
namespace {

namespace ar = daxkv::arena;
namespace pf = daxkv::platform;

// Exit statuses of check (docs/man/daxkv-check.1).
constexpr int kCheckClean = 0, kCheckRepaired = 1, kCheckDamaged = 3, kCheckNoArena = 4;

// The message on standard error; with --json also the error as the one
// JSON document on standard output, which would otherwise stay empty.
int report_error(const Args &a, const char *cmd, const daxkv::Error &e) {
    errorf("daxkv %s: %s (%d): %s\n", cmd, daxkv_strerror(e.code()), e.code(), e.what());
    if (a.has("json"))
        print_error_json(&a.positional[0], e.code(), e.what());
    return kExitFailed;
}

// An arena as it is, to look at: a sparse file stays sparse (no blocks
// reserved, no pages populated beyond what is read). Unless it is to be
// written (check --repair), a file is opened read-only: one its reader may
// read but not write can be looked at.
std::unique_ptr<pf::Mapping> open_existing(const std::string &path, bool writable) {
    pf::MapRequest req;
    req.path = path;
    req.bytes = 0; // the whole device or file
    req.create = false;
    req.inspect = true;
    req.read_only = !writable;
    return pf::Mapping::open(req);
}

std::string time_string(uint64_t unix_ns) {
    time_t t = static_cast<time_t>(unix_ns / 1000000000ull);
    struct tm tm;
    char s[64];
    if (!gmtime_r(&t, &tm) || !std::strftime(s, sizeof s, "%Y-%m-%d %H:%M:%S UTC", &tm))
        return "?";
    return s;
}

// The report as JSON (info --json and check --json share it).
// The size reported for what is at the path: a file's own size (a file
// that ends inside a page is mapped to the end of that page), a device's
// mapped size.
uint64_t bytes_there(const pf::Mapping &m) {
    return m.info().kind == pf::DeviceKind::file ? m.found_bytes() : m.size();
}

nlohmann::json to_json(const std::string &path, const pf::Mapping &m, const ar::ImageReport &r) {
    nlohmann::json j;
    j["path"] = daxkv::json_bytes(path);
    j["device"] = {{"kind", pf::kind_name(m.info().kind)}, {"bytes", bytes_there(m)}};
    j["state"] = ar::image_state_name(r.state);
    if (r.state == ar::ImageState::other_version)
        j["format_version"] = r.sb.format_version;
    if (r.state == ar::ImageState::truncated)
        j["slots_end_bytes"] = ar::usable_end_of(r.sb);
    if (r.state != ar::ImageState::arena)
        return j;
    const ar::Superblock &sb = r.sb;
    j["superblock"] = {{"copy_a", r.copy_a_valid ? "valid" : "damaged"},
                       {"copy_b", r.copy_b_valid ? "valid" : "damaged"},
                       {"format_version", sb.format_version},
                       {"uuid", daxkv::uuid_text(sb.uuid)},
                       {"generation", sb.sb_generation},
                       {"created_unix_ns", sb.created_unix_ns},
                       {"recoverable", r.recoverable}};
    j["layout"] = {{"arena_bytes", sb.arena_bytes},     {"slot_bytes", sb.slot_bytes},
                   {"slot_count", sb.slot_count},       {"usable_slots", ar::usable_slots_of(sb)},
                   {"header_offset", sb.header_offset}, {"header_bytes", sb.header_bytes},
                   {"data_offset", sb.data_offset},     {"key_max", sb.key_max},
                   {"meta_bytes", sb.meta_bytes}};
    j["entries"] = {{"committed_headers", r.committed},
                    {"live", r.live},
                    {"free_slots", ar::usable_slots_of(sb) - r.live - r.unreadable},
                    {"value_bytes", r.value_bytes},
                    {"max_seq", r.max_seq}};
    j["recovery"] = {{"would_recover", r.live},
                     {"dropped_torn", r.torn},
                     {"dropped_corrupt", r.bad_header + r.bad_value + r.unreadable},
                     {"dropped_stale", r.stale},
                     {"bad_header", r.bad_header},
                     {"bad_value", r.bad_value},
                     {"unreadable", r.unreadable},
                     {"bad_removal_words", r.bad_removals},
                     {"bad_seq_floor", r.bad_floor},
                     {"usec", r.usec},
                     {"threads", r.threads}};
    nlohmann::json f = nlohmann::json::array();
    for (const auto &x : r.findings) {
        nlohmann::json e = {{"slot", x.slot}, {"reason", x.reason}, {"seq", x.seq},
                            {"value_len", x.value_len}};
        if (!x.key.empty())
            e["key"] = x.key;
        f.push_back(e);
    }
    j["findings"] = f;
    j["damaged"] = r.damaged();
    return j;
}

void print_state_line(const std::string &path, const ar::ImageReport &r) {
    switch (r.state) {
    case ar::ImageState::arena:
        break;
    case ar::ImageState::empty:
        std::printf("%s: no arena (the first 8 KiB are zero: an open formats it)\n", path.c_str());
        break;
    case ar::ImageState::damaged_arena:
        std::printf("%s: a daxkv arena whose two superblock copies are both damaged\n"
                    "  (nothing can be recovered; 'daxkv format --force' starts over)\n",
                    path.c_str());
        break;
    case ar::ImageState::other_version:
        std::printf("%s: a daxkv arena of format version %u, which this daxkv does not read\n"
                    "  (a daxkv that reads it can; 'daxkv format --force' starts over)\n",
                    path.c_str(), r.sb.format_version);
        break;
    case ar::ImageState::truncated:
        if (!(r.sb.flags & ar::kSbRecoverable)) {
            // Nothing an open would recover (arena.cpp replaces it).
            std::printf("%s: a daxkv arena cut short: its slots in use end at %" PRIu64
                        " bytes, but\n  only %" PRIu64 " are there (a truncated file?). It "
                        "holds no entries (its last\n  store used durability=none): an open "
                        "replaces it\n",
                        path.c_str(), ar::usable_end_of(r.sb), r.image_bytes);
            break;
        }
        // Cut inside its superblock blocks, only the first copy is whole.
        std::printf("%s: a daxkv arena cut short: its slots in use end at %" PRIu64 " bytes, but\n"
                    "  only %" PRIu64 " are there (a truncated file?). %s\n"
                    "  and an open refuses it; given back its missing end (the file restored),\n"
                    "  it opens; 'daxkv format --force' starts over\n",
                    path.c_str(), ar::usable_end_of(r.sb), r.image_bytes,
                    r.image_bytes >= ar::kHeaderOffset ? "Its superblocks are intact"
                                                       : "Its first superblock copy is intact");
        break;
    case ar::ImageState::foreign:
        std::printf("%s: data that is not a daxkv arena ('daxkv format --force' claims it)\n",
                    path.c_str());
        break;
    case ar::ImageState::unreadable:
        std::printf("%s: its first 8 KiB (the superblock copies and the removal table) cannot\n"
                    "  be read: reading them faulted (bad media); an open refuses it, a\n"
                    "  format too, and nothing of it can be judged (clear its media errors,\n"
                    "  e.g. 'ndctl clear-errors', then 'daxkv format --force' starts over)\n",
                    path.c_str());
        break;
    }
}

void print_findings(const ar::ImageReport &r, size_t limit) {
    size_t shown = 0;
    for (const auto &f : r.findings) {
        if (shown++ == limit) {
            std::printf("    ... %zu more (--json lists them all)\n", r.findings.size() - limit);
            break;
        }
        std::printf("    slot %-10" PRIu32 " %-10s seq %-12" PRIu64 " %s%s\n", f.slot, f.reason,
                    f.seq, f.key.empty() ? "(key not trusted)" : "key ", f.key.c_str());
    }
}

void print_info(const std::string &path, const pf::Mapping &m, const ar::ImageReport &r) {
    std::printf("%s: %s, %" PRIu64 " bytes\n", path.c_str(), pf::kind_name(m.info().kind),
                bytes_there(m));
    const ar::Superblock &sb = r.sb;
    std::printf("  format version %u, uuid %s, created %s\n", sb.format_version,
                daxkv::uuid_text(sb.uuid).c_str(), time_string(sb.created_unix_ns).c_str());
    std::printf("  superblock: copy A %s, copy B %s, generation %" PRIu64 "%s\n",
                r.copy_a_valid ? "valid" : "DAMAGED", r.copy_b_valid ? "valid" : "DAMAGED",
                sb.sb_generation, r.recoverable ? "" : ", not recoverable (durability=none)");
    std::printf("  layout: %" PRIu64 " slots of %" PRIu64 " bytes, meta_bytes %u, "
                "headers %" PRIu64 " bytes each at %" PRIu64 ", data at %" PRIu64
                ", arena %" PRIu64 " bytes\n",
                sb.slot_count, sb.slot_bytes, sb.meta_bytes, sb.header_bytes, sb.header_offset,
                sb.data_offset, sb.arena_bytes);
    if (ar::usable_slots_of(sb) < sb.slot_count)
        std::printf("  usable: %" PRIu64 " of the %" PRIu64 " slots (the rest is room to grow "
                    "into, or was given up by a shrink)\n",
                    ar::usable_slots_of(sb), sb.slot_count);
    if (!r.recoverable) {
        std::printf("  entries: none (the last store used durability=none; an open clears "
                    "every header)\n");
        return;
    }
    std::printf("  entries: %" PRIu64 " live, %" PRIu64 " free slots, %" PRIu64
                " value bytes, newest seq %" PRIu64 "\n",
                r.live, ar::usable_slots_of(sb) - r.live - r.unreadable, r.value_bytes,
                r.max_seq);
    std::printf("  an open would recover %" PRIu64 " and drop %" PRIu64 " torn, %" PRIu64
                " corrupt (%" PRIu64 " header, %" PRIu64 " value, %" PRIu64
                " unreadable), %" PRIu64 " stale\n",
                r.live, r.torn, r.bad_header + r.bad_value + r.unreadable, r.bad_header,
                r.bad_value, r.unreadable, r.stale);
}

// write_back_error gets the errno of the first repair write the file system
// could not write back (msync), if any.
ar::CheckOptions options_for(const pf::Mapping &m, bool repair, bool values, Progress *progress,
                             std::atomic<int> *write_back_error = nullptr) {
    ar::CheckOptions o;
    o.repair = repair;
    o.check_values = values;
    // A page of bad media ends a slot's check, not the command: the slot is
    // reported unreadable (the command's own process, so the handler is
    // its to install).
    daxkv::engine::install_sigbus_handler();
    o.read_guard = &daxkv::engine::guarded_call;
    // A thread per CPU it may run on (taskset, a container's cpuset), at
    // most 16 (as many as a scan may use).
    cpu_set_t cpus;
    const unsigned cpu_count = ::sched_getaffinity(0, sizeof cpus, &cpus) == 0
                                   ? static_cast<unsigned>(CPU_COUNT(&cpus))
                                   : std::thread::hardware_concurrency();
    o.threads = std::max(1u, std::min(cpu_count, 16u));
    const pf::Mapping *mp = &m;
    o.persist = [mp, write_back_error](const void *p, size_t n) {
        int none = 0;
        if (!mp->persist(p, n) && write_back_error)
            write_back_error->compare_exchange_strong(none, errno ? errno : EIO);
    };
    if (progress && progress->on())
        o.progress = [progress](uint64_t done, uint64_t total) { progress->update(done, total); };
    return o;
}

// A file is mapped in whole pages: one cut short is named with the bytes
// it holds, not the pages judged (5000 bytes, not 4096).
// A file shorter than a page is looked at through its one page: unless it
// holds an arena cut short, it is not an arena (no open maps it).
void name_what_is_there(ar::ImageReport &r, const pf::Mapping &m, const std::string &path) {
    const uint64_t page = static_cast<uint64_t>(sysconf(_SC_PAGESIZE));
    if (r.state != ar::ImageState::truncated && m.found_bytes() < page)
        daxkv::fail(-EINVAL, "%s holds %llu bytes, less than one page (%llu): no arena fits in it",
                    path.c_str(), static_cast<unsigned long long>(m.found_bytes()),
                    static_cast<unsigned long long>(page));
    if (r.state == ar::ImageState::truncated)
        r.image_bytes = m.found_bytes();
}

int cmd_info(const Args &a) {
    const std::string &path = a.positional[0];
    try {
        auto m = open_existing(path, false);
        Progress progress(a, a.has("no-values") ? "reading slot headers" : "checking slots");
        ar::ImageReport r = ar::check_image(m->base(), m->size(),
                                            options_for(*m, false, !a.has("no-values"), &progress));
        progress.finish();
        name_what_is_there(r, *m, path);
        if (a.has("json"))
            std::printf("%s\n", to_json(path, *m, r).dump(2).c_str());
        else if (r.state != ar::ImageState::arena)
            print_state_line(path, r);
        else {
            print_info(path, *m, r);
            if (!r.findings.empty()) {
                std::printf("  findings:\n");
                print_findings(r, 20);
            }
        }
        return r.state == ar::ImageState::arena ? kExitOk : kExitFailed;
    } catch (const daxkv::Error &e) {
        return report_error(a, "info", e);
    }
}

int cmd_check(const Args &a) {
    const std::string &path = a.positional[0];
    const bool repair = a.has("repair"), json = a.has("json");
    try {
        auto m = open_existing(path, repair);
        Progress progress(a, repair ? "checking and repairing slots" : "checking slots");
        std::atomic<int> write_back_error{0};
        ar::ImageReport r =
            ar::check_image(m->base(), m->size(),
                            options_for(*m, repair, !a.has("no-values"), &progress, &write_back_error));
        progress.finish();
        if (const int err = write_back_error.load())
            daxkv::fail_errno(err, path + ": the repair could not be written back to the file "
                                          "(msync); the arena may hold it in part");
        name_what_is_there(r, *m, path);
        int rc = r.state != ar::ImageState::arena ? kCheckNoArena
                 : !r.damaged()                   ? kCheckClean
                 : repair                         ? kCheckRepaired
                                                  : kCheckDamaged;
        if (json) {
            nlohmann::json j = to_json(path, *m, r);
            j["repair"] = repair;
            j["withdrawn"] = r.withdrawn;
            j["superblock_rewritten"] = r.superblock_rewritten;
            j["exit_status"] = rc;
            std::printf("%s\n", j.dump(2).c_str());
            return rc;
        }
        if (r.state != ar::ImageState::arena) {
            print_state_line(path, r);
            return rc;
        }
        std::printf("%s: %" PRIu64 " slots checked in %.3f s on %u thread(s)%s\n", path.c_str(),
                    r.sb.slot_count, r.usec / 1e6, r.threads,
                    a.has("no-values") ? " (headers only)" : "");
        if (!r.copy_a_valid || !r.copy_b_valid)
            std::printf("  superblock copy %s is damaged%s\n", r.copy_a_valid ? "B" : "A",
                        r.superblock_rewritten ? ": rewritten from the other copy" : "");
        if (!r.recoverable)
            std::printf("  not recoverable (the last store used durability=none): no entries "
                        "to check\n");
        else
            std::printf("  %" PRIu64 " entries whole; %" PRIu64 " torn, %" PRIu64
                        " with a bad header, %" PRIu64 " with a bad value, %" PRIu64
                        " stale (older duplicates, or removed later as the removal table "
                        "says)\n",
                        r.live, r.torn, r.bad_header, r.bad_value, r.stale);
        if (r.unreadable)
            std::printf("  %" PRIu64 " slots unreadable: reading them faulted (bad media); "
                        "left as they are, and an open with sigbus=handle quarantines them\n",
                        r.unreadable);
        if (r.bad_floor)
            std::printf("  the superblock's seq_floor is out of range%s\n",
                        repair ? ": cleared" : " (an open clears it)");
        if (r.bad_removals)
            std::printf("  %" PRIu64 " words of the removal table out of range%s\n",
                        r.bad_removals,
                        repair ? ": set to the arena's floor" : " (an open sets them to the "
                                                                "arena's floor)");
        if (!r.findings.empty())
            print_findings(r, 50);
        if (repair && r.withdrawn)
            std::printf("  repaired: %" PRIu64 " entries dropped\n", r.withdrawn);
        std::printf("  %s\n", rc == kCheckClean      ? "clean"
                               : rc == kCheckRepaired ? "damage found and repaired"
                                                      : "DAMAGED (run with --repair to drop the "
                                                        "damaged entries)");
        return rc;
    } catch (const daxkv::Error &e) {
        report_error(a, "check", e);
        return kCheckNoArena;
    }
}

// Whether format may write over what check_image found at path: an
// empty target, or --force. Otherwise says what is there and why not.
bool allowed_to_format(const Args &a, const std::string &path, const ar::ImageReport &before) {
    if (before.state == ar::ImageState::empty || a.has("force"))
        return true;
    char text[512];
    if (before.state == ar::ImageState::arena)
        std::snprintf(text, sizeof text,
                      "holds a daxkv arena (%" PRIu64 " live entries, slot_bytes %" PRIu64
                      "); add --force to replace it",
                      before.live, before.sb.slot_bytes);
    else
        std::snprintf(text, sizeof text, "holds %s; add --force to overwrite it",
                      before.state == ar::ImageState::foreign ? "data that is not a daxkv arena"
                      : before.state == ar::ImageState::other_version
                          ? "a daxkv arena of another format version"
                      : before.state == ar::ImageState::unreadable
                          ? "a first 8 KiB that cannot be read (bad media)"
                      : before.state == ar::ImageState::truncated
                          ? "a daxkv arena cut short (a truncated file) whose superblock is intact"
                          : "a daxkv arena with both superblock copies damaged");
    errorf("daxkv format: %s %s\n", path.c_str(), text);
    // Refused, not failed: -EEXIST, what is there being kept.
    if (a.has("json"))
        print_error_json(&path, -EEXIST, path + " " + text);
    return false;
}

int cmd_format(const Args &a) {
    if (!a.has("slot-bytes"))
        throw UsageError{"missing --slot-bytes (the payload bytes of one slot)"};
    const uint64_t slot_bytes = a.size("slot-bytes", 0, 1);
    const uint64_t meta_bytes = a.size("meta-bytes", 256, 0, daxkv::kMetaBytesMax);
    // Below one page nothing is mapped: a usage error, as the man page says
    // of a size out of range (it was the library's refusal, exit 1).
    const uint64_t size = a.size("size", 0, static_cast<uint64_t>(::sysconf(_SC_PAGESIZE)));
    const std::string &path = a.positional[0];
    try {
        pf::MapRequest req;
        req.path = path;
        req.bytes = size;
        req.create = size != 0; // a missing file needs a size
        // A format that fails leaves the target as it was: the mapping
        // removes a file it created, or empties one it sized, unless the
        // arena is kept (platform::Mapping::keep).
        auto m = pf::Mapping::open(req);
        Progress progress(a, "reading what is there");
        if (!m->created()) {
            // What is there is judged on the whole file: a --size below
            // what it holds maps a prefix, in which an arena's superblocks
            // fail their bounds (an arena would be taken for foreign data
            // or a damaged arena). The whole file is mapped on its own, as
            // the device lock allows one mapping of it at a time.
            std::unique_ptr<pf::Mapping> whole;
            if (m->device_bytes() > m->size()) {
                m.reset();
                whole = open_existing(path, false);
            }
            const pf::Mapping &judged = whole ? *whole : *m;
            ar::ImageReport before = ar::check_image(
                judged.base(), judged.size(), options_for(judged, false, false, &progress));
            progress.finish();
            if (!allowed_to_format(a, path, before))
                return kExitFailed;
            if (whole) {
                whole.reset();
                m = pf::Mapping::open(req);
            }
        }
        progress.phase("clearing slot headers");
        ar::Arena::Options opt;
        opt.slot_bytes = slot_bytes;
        opt.meta_bytes = static_cast<uint32_t>(meta_bytes);
        opt.durability = ar::Durability::process;
        opt.format = true;
        // Bad media under what the format writes fails it with -EIO.
        daxkv::engine::install_sigbus_handler();
        opt.fault_guard = &daxkv::engine::guarded_call;
        if (progress.on())
            opt.format_progress = [&progress](uint64_t done, uint64_t total) {
                progress.update(done, total);
            };
        ar::Arena arena(std::move(m), opt);
        progress.finish();
        arena.keep();
        const ar::Layout &l = arena.layout();
        if (a.has("json")) {
            nlohmann::json j = {{"path", daxkv::json_bytes(path)},
                                {"uuid", daxkv::uuid_text(arena.superblock().uuid)},
                                {"arena_bytes", l.arena_bytes},
                                {"slot_bytes", l.slot_bytes},
                                {"slot_count", l.slot_count},
                                {"meta_bytes", l.meta_bytes},
                                {"header_bytes", l.header_bytes},
                                {"data_offset", l.data_offset}};
            std::printf("%s\n", j.dump(2).c_str());
        } else {
            std::printf("%s: formatted: %" PRIu64 " slots of %" PRIu64 " bytes, meta_bytes %u, "
                        "%" PRIu64 " bytes, uuid %s\n",
                        path.c_str(), l.slot_count, l.slot_bytes, l.meta_bytes, l.arena_bytes,
                        daxkv::uuid_text(arena.superblock().uuid).c_str());
        }
        return kExitOk;
    } catch (const daxkv::Error &e) {
        return report_error(a, "format", e);
    }
}

} // namespace

const CommandSpec &info_command() {
    static const CommandSpec c = {
        "info",
        "PATH [options]",
        "an arena's layout, entries and what an open would recover",
        "Describe the arena at PATH: superblocks, layout, entry counts and what an\n"
        "open would recover or drop. Changes nothing.",
        {
            {"json", 'j', nullptr, "machine-readable output"},
            {"no-values", 'n', nullptr, "skip the payload checksums (faster on large devices)"},
            {"no-progress", 0, nullptr, "no progress display (none is drawn off a terminal)"},
        },
        "exit status: 0 an arena was described, 1 no arena at PATH (empty, foreign,\n"
        "both superblocks damaged) or PATH could not be opened, 2 usage error.",
        "PATH",
        1,
        1,
        cmd_info,
    };
    return c;
}

const CommandSpec &check_command() {
    static const CommandSpec c = {
        "check",
        "PATH [options]",
        "verify every entry of an arena (--repair drops damaged ones)",
        "Verify every entry of the arena at PATH: superblock copies, header bounds\n"
        "and checksums, payload checksums, duplicate keys.",
        {
            {"repair", 'r', nullptr,
             "drop damaged and stale entries, rewrite a damaged superblock"},
            {"json", 'j', nullptr, "machine-readable output"},
            {"no-values", 'n', nullptr, "skip the payload checksums"},
            {"no-progress", 0, nullptr, "no progress display (none is drawn off a terminal)"},
        },
        "exit status: 0 clean, 1 damage found and repaired, 2 usage error, 3 damage\n"
        "found, 4 no arena to check (empty, foreign, both superblocks damaged), an\n"
        "error, or a report that could not be written.",
        "PATH",
        1,
        1,
        cmd_check,
        kCheckNoArena,
    };
    return c;
}

const CommandSpec &format_command() {
    static const CommandSpec c = {
        "format",
        "PATH --slot-bytes BYTES [options]",
        "write a new, empty arena (claims foreign data with --force)",
        "Write a new, empty arena to PATH (a Device-DAX device or a file, created when\n"
        "missing with --size). Every entry is lost. Without --force it only formats a\n"
        "target whose first 8 KiB are zero; a daxkv arena (valid or damaged) or other\n"
        "data needs --force. Sizes take the units of daxkv_config_set: 4096, 64KiB,\n"
        "2MiB, 1GiB, 1TiB.",
        {
            {"slot-bytes", 'b', "BYTES", "payload bytes per slot (required)"},
            {"meta-bytes", 'm', "BYTES", "metadata bytes per entry, up to 64 KiB (default 256)"},
            {"size", 's', "BYTES", "bytes to use (default: the whole device or file)"},
            {"force", 'f', nullptr, "overwrite an arena or foreign data"},
            {"json", 'j', nullptr, "machine-readable output"},
            {"no-progress", 0, nullptr, "no progress display (none is drawn off a terminal)"},
        },
        "exit status: 0 formatted, 1 not formatted (refused without --force, or the\n"
        "device or file could not be used), 2 usage error.",
        "PATH",
        1,
        1,
        cmd_format,
    };
    return c;
}

int failed_status_named(const char *command) noexcept {
    return command && std::strcmp(command, "check") == 0 ? kCheckNoArena : kExitFailed;
}

} // namespace daxkv_cli
