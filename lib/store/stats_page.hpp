// A running store's statistics, published for other processes to read
// without opening (or disturbing) the store: `daxkv stats PATH` and
// daxkv_stats_peek() look at a store that serves.
//
// The store writes a small page file into the statistics directory
// ($DAXKV_STATS_DIR, default /dev/shm) at open and then every
// stats_interval milliseconds: its daxkv_stats, its status JSON and its
// identity. The page has one name per device of the store, derived from the
// device's identity (st_dev/st_ino of a file, st_rdev of a Device-DAX node),
// so a reader finds it from any path of any device of the pool. The store
// holds a shared flock and an OFD read lock on the page for as long as it
// is open: a page whose locks are free is stale (its store died) and is
// reported as absent. Readers test the OFD lock, which takes no lock of
// their own; the flock (all that publishers of earlier versions hold, and
// what stale pages are swept by) can only be tested by taking it. Names are
// given, removed and swept under an exclusive flock of the directory (the
// naming lock), so that a sweep never removes a name a live store has just
// renamed its page over.
//
// Readers and the writer meet through a sequence counter in the page
// (odd while a publication is being written). The writer stores every field
// with 8-byte atomic stores into its mapping; a reader copies the page with
// pread (a copy the writer may tear) and retries until the counter was even
// and unchanged around its copy: one whole publication. Readers never map
// the page, as its file may be cut short under them.
#pragma once

#include <condition_variable>
#include <cstddef>
#include <cstdint>
#include <functional>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

namespace daxkv {

// Where pages live: $DAXKV_STATS_DIR, else /dev/shm.
std::string stats_dir();
// The page name of a device path (throws Error: the errno of stat, -EINVAL
// for "mem:", which no other process can name).
std::string stats_page_name(const std::string &device_path);

class StatsPage {
public:
    // A page owned by this process, with no name yet. Throws Error.
    explicit StatsPage(const std::string &store_id);
    ~StatsPage();
    StatsPage(const StatsPage &) = delete;
    StatsPage &operator=(const StatsPage &) = delete;

    // Give the page the name of device_path (replacing a stale page of that
    // name); remove it again (the name it was given, wherever the path
    // leads by then). Both no-ops for paths no other process can name
    // ("mem:"). name_device throws Error. The destructor removes the names
    // still given.
    void name_device(const std::string &device_path);
    void unname_device(const std::string &device_path) noexcept;

    // Publish one snapshot: stats (the bytes of a struct daxkv_stats) and
    // the status JSON (cut to fit the page, see kStatusCap).
    void publish(const void *stats, size_t stats_len, const std::string &status) noexcept;

private:
    bool is_ours(const std::string &name) const noexcept;
    // Whether name is given for more than one device path (two spellings
    // of one file): removed only with the last.
    bool named_twice(const std::string &name) const noexcept;
    // Whether the page's first `end` bytes have blocks: the page is a
    // sparse file written through a shared mapping, and a store through
    // it to a page the file system has no room for is a SIGBUS (a full
    // /dev/shm). Blocks are reserved as publications first need them.
    bool backed(size_t end) noexcept;
    struct Name {
        std::string device_path; // as given to name_device
        std::string name;        // the page's name it got then
    };
    int fd_ = -1;
    char *map_ = nullptr;
    size_t backed_ = 0; // the page's first backed_ bytes have blocks
    std::string tmp_name_;
    std::vector<Name> names_; // given by name_device, removed at destruction
};

// Publishes a page at a fixed interval from a thread of its own, until it
// is destroyed (which publishes once more, then removes the page's names).
class StatsPublisher {
public:
    // publish fills the page; it runs on the publisher's thread (and once in
    // the constructor, before the page gets any name).
    StatsPublisher(const std::string &store_id, unsigned interval_ms,
                   std::function<void(StatsPage &)> publish);
    ~StatsPublisher();
    StatsPublisher(const StatsPublisher &) = delete;
    StatsPublisher &operator=(const StatsPublisher &) = delete;

    // Names for the devices of the store (see StatsPage). name_device
    // returns the reason a name could not be made (empty: named), rather
    // than throwing: statistics are never a reason for a store to fail.
    std::string name_device(const std::string &device_path) noexcept;
    void unname_device(const std::string &device_path) noexcept;
    // Publish at once (after a change readers should see before the next
    // interval: a device added, removed or resized).
    void publish_now() noexcept;

private:
    void run();
    StatsPage page_;
    std::mutex publish_m_; // one writer of the page at a time
    unsigned interval_ms_;
    std::function<void(StatsPage &)> publish_;
    std::mutex m_;
    std::condition_variable cv_;
    bool stop_ = false;
    std::thread thread_;
};

// Remove the pages in the statistics directory whose store is gone (a
// process that died leaves its page behind; each new publisher sweeps).
void remove_stale_pages() noexcept;

namespace testing {
// Tests only: run by remove_stale_pages between finding a page's name
// stale and removing it (the directory's naming lock held, when it was had).
void set_sweep_hook(std::function<void(const std::string &name)> fn);
// Tests only: run each time the directory's naming lock is found held by
// someone else.
void set_naming_lock_busy_hook(std::function<void()> fn);
} // namespace testing

// One publication as a reader got it.
struct PageSnapshot {
    std::string store_id;
    std::string stats;  // bytes of the writer's struct daxkv_stats
    std::string status; // status JSON
    uint64_t pid = 0;
    uint64_t published_unix_ns = 0;
};

// Read the page of the running store that has device_path. Throws Error:
// -ENOENT no running store publishes for it (none ever did, it closed, or
// it died), -EACCES the page may not be read, -EPROTO a page of another
// format, -EAGAIN no whole publication after many tries (a writer
// publishing continuously).
PageSnapshot read_stats_page(const std::string &device_path);

} // namespace daxkv
