// What the kill tests (kill_test and create_kill_test: one arena;
// pool_kill_test: a pool) share: their command line, the directory their
// arenas live in, how a child reports to its parent, and how a store of one
// arena is opened.
#pragma once

#include <cerrno>
#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <ctime>
#include <initializer_list>
#include <string>
#include <utility>
#include <vector>

#include <sys/stat.h>
#include <unistd.h>

#include "daxkv.h"

namespace kill_test {

struct Options {
    uint64_t rounds = 200;
    uint64_t seed = 0; // from the clock and pid unless --seed
    bool verbose = false;
    std::string dir; // where the arenas go: /dev/shm if writable, else $TMPDIR or /tmp
};

// Parse argv; false (usage printed) for anything it does not know.
inline bool parse(int argc, char **argv, Options &o) {
    bool have_seed = false;
    for (int i = 1; i < argc; ++i) {
        std::string a = argv[i];
        if (a == "--rounds" && i + 1 < argc) {
            o.rounds = std::strtoull(argv[++i], nullptr, 10);
        } else if (a == "--seed" && i + 1 < argc) {
            o.seed = std::strtoull(argv[++i], nullptr, 10);
            have_seed = true;
        } else if (a == "--dir" && i + 1 < argc) {
            o.dir = argv[++i];
        } else if (a == "--verbose") {
            o.verbose = true;
        } else {
            std::fprintf(stderr, "usage: %s [--rounds N] [--seed S] [--dir DIR] [--verbose]\n",
                         argv[0]);
            return false;
        }
    }
    if (!have_seed) {
        struct timespec ts;
        clock_gettime(CLOCK_REALTIME, &ts);
        o.seed = static_cast<uint64_t>(ts.tv_nsec) ^ (static_cast<uint64_t>(getpid()) << 20);
        o.seed %= 1000000000ull;
    }
    if (o.dir.empty()) {
        const char *t = std::getenv("TMPDIR");
        o.dir = access("/dev/shm", W_OK) == 0 ? "/dev/shm" : t ? t : "/tmp";
    }
    return true;
}

// A private directory for the arenas, under o.dir. A regular-file arena may
// not live under /dev: there the arenas are reached through a symlinked
// directory in a temporary one, as the unit tests do.
class WorkDir {
public:
    // name: a prefix for what it creates ("daxkv-kill").
    bool make(const Options &o, const std::string &name) {
        std::string tmpl = (std::getenv("TMPDIR") ? std::getenv("TMPDIR") : "/tmp") +
                           std::string("/") + name + ".XXXXXX";
        std::vector<char> t(tmpl.begin(), tmpl.end());
        t.push_back('\0');
        if (!mkdtemp(t.data())) {
            std::perror("mkdtemp");
            return false;
        }
        work_ = path_ = t.data();
        if (o.dir.rfind("/dev/", 0) == 0) {
            real_ = o.dir + "/" + name + "-" + std::to_string(getpid());
            ::mkdir(real_.c_str(), 0700);
            path_ = work_ + "/shm";
            if (::symlink(real_.c_str(), path_.c_str()) != 0) {
                std::perror("symlink");
                return false;
            }
        }
        return true;
    }
    // Where the arenas go.
    const std::string &path() const { return path_; }
    // Remove the directories (the arenas in them are the caller's to remove).
    void remove() {
        if (!real_.empty()) {
            ::unlink(path_.c_str());
            ::rmdir(real_.c_str());
        }
        ::rmdir(work_.c_str());
    }

private:
    std::string work_, path_, real_;
};

// Writes record r whole to fd, through interruptions; a child that cannot
// report ends with status 3.
template <class Rec> void send_rec(int fd, const Rec &r) {
    const char *p = reinterpret_cast<const char *>(&r);
    size_t left = sizeof r;
    while (left) {
        ssize_t w = ::write(fd, p, left);
        if (w < 0 && errno == EINTR)
            continue;
        if (w <= 0)
            _exit(3);
        p += w;
        left -= static_cast<size_t>(w);
    }
}

// Opens *s on the one arena `path` of `bytes` (0: the file's own size) with
// `settings` (name, value); the configuration is freed whatever happens.
inline int open_one_arena(daxkv_store **s, const std::string &path, uint64_t bytes,
                          std::initializer_list<std::pair<const char *, std::string>> settings) {
    daxkv_config *cfg = nullptr;
    int rc = daxkv_config_new(&cfg);
    if (rc)
        return rc;
    for (const auto &kv : settings)
        if ((rc = daxkv_config_set(cfg, kv.first, kv.second.c_str()))) {
            daxkv_config_free(cfg);
            return rc;
        }
    if ((rc = daxkv_config_add_device(cfg, path.c_str(), bytes))) {
        daxkv_config_free(cfg);
        return rc;
    }
    rc = daxkv_open(s, cfg);
    daxkv_config_free(cfg);
    return rc;
}

} // namespace kill_test
