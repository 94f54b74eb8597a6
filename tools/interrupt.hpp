// Files a benchmark removes when it is interrupted (SIGINT, SIGTERM or
// SIGHUP) before it can remove them itself: an arena under /dev/shm holds
// its size in memory until it is removed, and a Ctrl-C'd run left it there.
#pragma once

#include <string>

namespace daxkv_cli {

// While a RemovedIfInterrupted lives, a signal that ends the process
// removes its path first (the process then dies of the signal as before).
// The handlers are installed with the first one, for the signals whose
// disposition is the default (one the caller ignores stays ignored). At
// most 16 paths at once and paths shorter than 4096 bytes; others are not
// removed on a signal (the run removes them as usual when it ends).
class RemovedIfInterrupted {
public:
    explicit RemovedIfInterrupted(const std::string &path);
    ~RemovedIfInterrupted();
    RemovedIfInterrupted(const RemovedIfInterrupted &) = delete;
    RemovedIfInterrupted &operator=(const RemovedIfInterrupted &) = delete;

private:
    int slot_; // -1: not registered
};

} // namespace daxkv_cli
