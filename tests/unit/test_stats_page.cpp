// The statistics page: a running store's numbers read without opening it
// (daxkv_stats_peek, daxkv_status_peek, daxkv_stats_prometheus_peek), from
// this process and from another, and the page's lifetime (published at
// open, renewed every stats_interval, gone at shutdown, a dead store's page
// reported absent and swept away).
//
// Bad inputs tried here: NULL, empty and over-long paths; a path no store
// publishes for; a "mem:" path; NULL out, struct_size 0 and 4; NULL buf
// with cap > 0; a buffer one byte short; a page file of another format; a
// page whose status JSON has a device's slots as a string, slots_free
// negative, arena_bytes 1e300, and devices that are not objects; a page
// whose store was killed, also while another reader holds its test of the
// page's lock; a page cut to nothing and restored over and over while it
// is read; a page whose device path is 5000 bytes long; a symlink to
// another store's live page, a directory and a FIFO under a page name; a
// status of 12000 nested arrays; a device whose file is deleted before it
// is removed from the pool; stats_interval above one hour and not a
// number; daxkv_shutdown while another thread adds and removes a device of
// the pool; a live store naming its page over a name a sweep has just found
// stale.
#include <atomic>
#include <chrono>
#include <thread>
#include <vector>

#include <signal.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <sys/wait.h>

#include <nlohmann/json.hpp>

#include "helpers.hpp"
#include "store/stats_page.hpp"

using namespace daxkv_test;

namespace {

// Stores in these tests publish into a private directory.
class StatsPage : public StoreFixture {
protected:
    StatsPage() { ::setenv("DAXKV_STATS_DIR", pages_.path().c_str(), 1); }
    ~StatsPage() override { ::unsetenv("DAXKV_STATS_DIR"); }

    struct daxkv_stats peek(const std::string &path, int *rc_out = nullptr) {
        struct daxkv_stats st;
        std::memset(&st, 0, sizeof st);
        st.struct_size = sizeof st;
        int rc = daxkv_stats_peek(path.c_str(), &st);
        if (rc_out)
            *rc_out = rc;
        else
            EXPECT_EQ(rc, 0) << daxkv_errmsg();
        return st;
    }
    std::string status(const std::string &path) {
        size_t needed = 0;
        EXPECT_EQ(daxkv_status_peek(path.c_str(), nullptr, 0, &needed), -ENOBUFS);
        std::string buf(needed, '\0');
        EXPECT_EQ(daxkv_status_peek(path.c_str(), &buf[0], buf.size(), nullptr), 0)
            << daxkv_errmsg();
        buf.resize(needed - 1);
        return buf;
    }
    size_t pages() {
        size_t n = 0;
        if (DIR *d = ::opendir(pages_.path().c_str())) {
            while (struct dirent *de = ::readdir(d))
                n += std::strncmp(de->d_name, "daxkv-stats.", 12) == 0;
            ::closedir(d);
        }
        return n;
    }

    // A store on path_ opened in a child that is killed while it runs: its
    // page stays behind with no process publishing it, as a crashed store
    // leaves it (a shutdown would have removed the page).
    void kill_a_store_holding_its_page() {
        const pid_t child = ::fork();
        ASSERT_GE(child, 0);
        if (child == 0) {
            StorePtr s;
            if (open_store(&s, path_, StoreSpec(4096, 8)) != 0)
                ::_exit(1);
            ::raise(SIGKILL); // dies holding the page
            ::_exit(2);
        }
        int status = 0;
        ::waitpid(child, &status, 0);
        ASSERT_TRUE(WIFSIGNALED(status)) << "the child failed to open its store";
    }

    // The bytes of a page in the publisher's format (store id "store",
    // no stats), with the caller's seq and status JSON.
    static std::string page_bytes(uint64_t seq, const std::string &status,
                                  const std::string &store_id = "store") {
        std::string page(32 * 1024, '\0');
        auto put_word = [&](size_t off, uint64_t v) { std::memcpy(&page[off], &v, 8); };
        std::memcpy(&page[0], "DAXKVSTP", 8);
        put_word(8, 1);   // version
        put_word(16, seq);
        put_word(24, static_cast<uint64_t>(::getpid()));
        put_word(32, 1);  // published_unix_ns
        put_word(40, 0);  // stats_len
        put_word(48, status.size());
        std::memcpy(&page[56], store_id.data(), std::min<size_t>(store_id.size(), 63));
        std::memcpy(&page[8192], status.data(), status.size());
        return page;
    }

    // A hotplug store on path_ with a second device (*second: its path) of
    // 4 slots added to its pool, each device published under a page name of
    // its own.
    void open_a_pool_of_two(std::string *second) {
        open(StoreSpec(4096, 8).set("hotplug", "1"));
        *second = dir_.file("second");
        ASSERT_EQ(daxkv_device_add(s(), second->c_str(), arena_bytes_for(4096, 4, 256)), 0)
            << daxkv_errmsg();
        EXPECT_EQ(pages(), 2u);
    }

    // Writes bytes as the page of device `device` and holds it locked on
    // *fd, as a running store holds its page, so that readers take it for
    // a live store's page until *fd is closed.
    std::string prometheus_peek(const std::string &path) {
        size_t needed = 0;
        EXPECT_EQ(daxkv_stats_prometheus_peek(path.c_str(), nullptr, 0, &needed), -ENOBUFS)
            << daxkv_errmsg();
        std::string text(needed, '\0');
        EXPECT_EQ(daxkv_stats_prometheus_peek(path.c_str(), &text[0], text.size(), nullptr), 0)
            << daxkv_errmsg();
        text.resize(needed ? needed - 1 : 0);
        return text;
    }
    void hold_live_page(const std::string &device, const std::string &bytes, int *fd) {
        const std::string name = pages_.path() + "/" + daxkv::stats_page_name(device);
        write_file(name, bytes);
        *fd = ::open(name.c_str(), O_RDONLY);
        ASSERT_GE(*fd, 0);
        ASSERT_EQ(::flock(*fd, LOCK_SH), 0);
    }

    TempDir pages_;
};

TEST_F(StatsPage, ARunningStoreIsSeenFromOutsideAndGoneAfterShutdown) {
    FILE_ARENA_ONLY();
    open(StoreSpec(4096, 8).set("stats_interval", "10"));
    EXPECT_EQ(pages(), 1u);
    ASSERT_EQ(put(key_of(1), pattern(1, 100)), 0);
    ASSERT_EQ(put(key_of(2), pattern(2, 100)), 0);
    // The next publication shows both puts (within a few intervals).
    struct daxkv_stats st{};
    for (int i = 0; i < 500 && st.puts != 2; ++i) {
        st = peek(path_);
        std::this_thread::sleep_for(std::chrono::milliseconds(5));
    }
    EXPECT_EQ(st.puts, 2u);
    EXPECT_EQ(st.entries, 2u);
    EXPECT_EQ(st.slots_total, 8u);
    const auto j = nlohmann::json::parse(status(path_));
    EXPECT_EQ(j["publisher"]["pid"].get<int64_t>(), static_cast<int64_t>(::getpid()));
    EXPECT_EQ(j["entries"].get<int>(), 2);
    EXPECT_EQ(j["devices"][0]["path"].get<std::string>(), path_);
    // The Prometheus text carries the same store label as the store's own.
    size_t needed = 0;
    ASSERT_EQ(daxkv_stats_prometheus_peek(path_.c_str(), nullptr, 0, &needed), -ENOBUFS);
    std::string text(needed, '\0');
    ASSERT_EQ(daxkv_stats_prometheus_peek(path_.c_str(), &text[0], text.size(), nullptr), 0);
    EXPECT_TRUE(contains_text(text.c_str(), "daxkv_puts_total{store=\"" +
                                                j["publisher"]["store_id"].get<std::string>() +
                                                "\"} 2"))
        << text.substr(0, 2000);
    EXPECT_TRUE(contains_text(text.c_str(), "daxkv_device_slots{store="));
    // Shut down: the page goes with the store.
    ASSERT_EQ(daxkv_shutdown(s()), 0);
    int rc = 0;
    peek(path_, &rc);
    EXPECT_EQ(rc, -ENOENT);
    EXPECT_TRUE(contains_text(daxkv_errmsg(), "no running store")) << daxkv_errmsg();
    EXPECT_EQ(pages(), 0u);
}

TEST_F(StatsPage, AnotherProcessReadsThePage) {
    FILE_ARENA_ONLY();
    open(StoreSpec(4096, 8));
    ASSERT_EQ(put(key_of(1), pattern(1, 10)), 0);
    int fds[2];
    ASSERT_EQ(::pipe(fds), 0);
    const pid_t child = ::fork();
    ASSERT_GE(child, 0);
    if (child == 0) {
        // The child only reads (no store of its own).
        struct daxkv_stats st;
        std::memset(&st, 0, sizeof st);
        st.struct_size = sizeof st;
        const int rc = daxkv_stats_peek(path_.c_str(), &st);
        const uint64_t out[2] = {static_cast<uint64_t>(rc), st.slots_total};
        (void)!::write(fds[1], out, sizeof out);
        ::_exit(0);
    }
    uint64_t got[2] = {1, 0};
    ASSERT_EQ(::read(fds[0], got, sizeof got), static_cast<ssize_t>(sizeof got));
    ::waitpid(child, nullptr, 0);
    ::close(fds[0]);
    ::close(fds[1]);
    EXPECT_EQ(got[0], 0u);
    EXPECT_EQ(got[1], 8u);
}

TEST_F(StatsPage, AKilledStoresPageIsAbsentAndSweptByTheNextStore) {
    FILE_ARENA_ONLY();
    ASSERT_NO_FATAL_FAILURE(kill_a_store_holding_its_page());
    EXPECT_EQ(pages(), 1u) << "a killed store leaves its page";
    int rc = 0;
    peek(path_, &rc);
    EXPECT_EQ(rc, -ENOENT);
    EXPECT_TRUE(contains_text(daxkv_errmsg(), "no longer running")) << daxkv_errmsg();
    // Another store (on another device) sweeps the stale page away.
    TempDir other;
    StorePtr s2;
    ASSERT_EQ(open_store(&s2, other.file("arena"), StoreSpec(4096, 4)), 0) << daxkv_errmsg();
    EXPECT_EQ(pages(), 1u) << "only the new store's page is left";
}

// Files in the statistics directory whose names start as pages' do but
// that are not pages (a user's notes, a FIFO, a directory, a dead store's
// temporary page name with another size): an open swept every one nobody
// held locked. Only pages, and the library's own temporary names of a
// page's size or empty, are stale pages.
TEST_F(StatsPage, ASweepRemovesOnlyPages) {
    const std::string dir = pages_.path() + "/";
    const std::vector<std::string> kept = {"daxkv-stats.my-notes.txt", "daxkv-stats.fifo",
                                           "daxkv-stats.dir", "daxkv-stats.new.abcdef",
                                           "daxkv-stats.new.toolongname"};
    write_file(dir + kept[0], "notes");
    ASSERT_EQ(::mkfifo((dir + kept[1]).c_str(), 0600), 0);
    ASSERT_EQ(::mkdir((dir + kept[2]).c_str(), 0700), 0);
    write_file(dir + kept[3], "x");            // not a page's size
    write_file(dir + kept[4], "");             // not the library's name
    write_file(dir + "daxkv-stats.f1.2", page_bytes(2, "{}"));  // a dead store's page
    write_file(dir + "daxkv-stats.new.ABCDEF", "");              // a dead store's temporary name
    daxkv::remove_stale_pages();
    struct stat st;
    for (const auto &name : kept)
        EXPECT_EQ(::lstat((dir + name).c_str(), &st), 0) << name << " was removed";
    EXPECT_NE(::lstat((dir + "daxkv-stats.f1.2").c_str(), &st), 0) << "a dead store's page stayed";
    EXPECT_NE(::lstat((dir + "daxkv-stats.new.ABCDEF").c_str(), &st), 0)
        << "a dead store's temporary name stayed";
    ASSERT_EQ(::rmdir((dir + kept[2]).c_str()), 0);
}

// A dead store's page while another reader (or a store sweeping stale
// pages) tests it: readers tested the page's flock by taking it
// exclusively, so the one that came second found it taken, took that for
// the store's lock, and reported the dead store's last numbers as valid.
TEST_F(StatsPage, ADeadStoresPageIsAbsentWhileAnotherReaderTestsIt) {
    FILE_ARENA_ONLY();
    ASSERT_NO_FATAL_FAILURE(kill_a_store_holding_its_page());
    const std::string name = pages_.path() + "/" + daxkv::stats_page_name(path_);
    const int fd = ::open(name.c_str(), O_RDONLY);
    ASSERT_GE(fd, 0);
    ASSERT_EQ(::flock(fd, LOCK_EX | LOCK_NB), 0); // the other reader's test, held
    int rc = 0;
    const struct daxkv_stats st = peek(path_, &rc);
    EXPECT_EQ(rc, -ENOENT) << "read as a running store with " << st.slots_total << " slots";
    EXPECT_TRUE(contains_text(daxkv_errmsg(), "no longer running")) << daxkv_errmsg();
    ::close(fd);
}

// A store killed while a child it forked (without exec) lives: the locks
// of its arena and its page belong to their open file descriptions, which
// the child shares (through its copies of the descriptors and of the
// mappings). The page stayed held, and the dead store was reported running
// until the child exited; the publisher's pid is looked up too. The arena
// stays locked while the child lives (libdaxkv(3)), and the refusal says
// that the pid it names has exited.
TEST_F(StatsPage, AKilledStoreWhoseForkedChildLivesIsNotRunning) {
    FILE_ARENA_ONLY();
    int gone[2], ready[2];
    ASSERT_EQ(::pipe(gone), 0);
    ASSERT_EQ(::pipe(ready), 0);
    const pid_t publisher = ::fork();
    ASSERT_GE(publisher, 0);
    if (publisher == 0) {
        StorePtr s;
        if (open_store(&s, path_, StoreSpec(4096, 8)) != 0)
            ::_exit(1);
        if (::fork() == 0) { // the child: lives until the test closes the pipe
            ::close(gone[1]);
            char c = 'r';
            (void)::write(ready[1], &c, 1); // its fork has returned
            (void)::read(gone[0], &c, 1);
            ::_exit(0);
        }
        char c;
        (void)::read(ready[0], &c, 1);
        ::raise(SIGKILL);
        ::_exit(2);
    }
    ::close(ready[0]);
    ::close(ready[1]);
    ::close(gone[0]);
    int status = 0;
    ::waitpid(publisher, &status, 0);
    ASSERT_TRUE(WIFSIGNALED(status)) << "the publisher failed to open its store";
    int rc = 0;
    peek(path_, &rc);
    EXPECT_EQ(rc, -ENOENT);
    EXPECT_TRUE(contains_text(daxkv_errmsg(), "no longer running")) << daxkv_errmsg();
    StorePtr again;
    EXPECT_EQ(open_store(&again, path_, StoreSpec(4096, 8)), -EBUSY);
    EXPECT_TRUE(contains_text(daxkv_errmsg(), "which has exited")) << daxkv_errmsg();
    ::close(gone[1]); // the child exits
}

TEST_F(StatsPage, NoPageWithAZeroIntervalAndBadArguments) {
    FILE_ARENA_ONLY();
    open(StoreSpec(4096, 8).set("stats_interval", "0"));
    EXPECT_EQ(pages(), 0u);
    int rc = 0;
    peek(path_, &rc);
    EXPECT_EQ(rc, -ENOENT);

    struct daxkv_stats st;
    st.struct_size = sizeof st;
    EXPECT_EQ(daxkv_stats_peek(nullptr, &st), -EINVAL);
    EXPECT_EQ(daxkv_stats_peek("", &st), -EINVAL);
    EXPECT_EQ(daxkv_stats_peek(std::string(5000, 'a').c_str(), &st), -EINVAL);
    EXPECT_EQ(daxkv_stats_peek("mem:", &st), -EINVAL);
    EXPECT_EQ(daxkv_stats_peek("/no/such/device", &st), -ENOENT);
    // Paths that do not exist because a file stands where a directory
    // should: -ENOENT as documented (they were -ENOTDIR), from all three.
    char text[8];
    size_t len = 0;
    for (const std::string &gone : {path_ + "/x", path_ + "/", std::string(300, 'n')}) {
        EXPECT_EQ(daxkv_stats_peek(gone.c_str(), &st), -ENOENT) << gone;
        EXPECT_EQ(daxkv_status_peek(gone.c_str(), text, sizeof text, &len), -ENOENT) << gone;
        EXPECT_EQ(daxkv_stats_prometheus_peek(gone.c_str(), text, sizeof text, &len), -ENOENT)
            << gone;
    }
    // DAXKV_STATS_DIR naming a file: no store can publish there.
    ::setenv("DAXKV_STATS_DIR", path_.c_str(), 1);
    EXPECT_EQ(daxkv_stats_peek(path_.c_str(), &st), -ENOENT);
    EXPECT_TRUE(contains_text(daxkv_errmsg(), "not a directory")) << daxkv_errmsg();
    ::setenv("DAXKV_STATS_DIR", pages_.path().c_str(), 1);
    EXPECT_EQ(daxkv_stats_peek(path_.c_str(), nullptr), -EINVAL);
    st.struct_size = 4;
    EXPECT_EQ(daxkv_stats_peek(path_.c_str(), &st), -EINVAL);
    char buf[8];
    EXPECT_EQ(daxkv_status_peek(path_.c_str(), nullptr, 8, nullptr), -EINVAL);
    EXPECT_EQ(daxkv_stats_prometheus_peek(nullptr, buf, sizeof buf, nullptr), -EINVAL);

    daxkv_config *raw = nullptr;
    ASSERT_EQ(daxkv_config_new(&raw), 0);
    ConfigPtr cfg(raw);
    EXPECT_EQ(daxkv_config_set(raw, "stats_interval", "3600001"), -EINVAL);
    EXPECT_EQ(daxkv_config_set(raw, "stats_interval", "1s"), -EINVAL);
    EXPECT_EQ(daxkv_config_set(raw, "stats_interval", "-1"), -EINVAL);
    EXPECT_EQ(daxkv_config_set(raw, "stats_interval", "3600000"), 0);
}

TEST_F(StatsPage, APageOfAnotherFormatAndAShortBuffer) {
    FILE_ARENA_ONLY();
    open(StoreSpec(4096, 8));
    // A buffer one byte short of the status.
    size_t needed = 0;
    ASSERT_EQ(daxkv_status_peek(path_.c_str(), nullptr, 0, &needed), -ENOBUFS);
    std::string buf(needed - 1, '\0');
    EXPECT_EQ(daxkv_status_peek(path_.c_str(), &buf[0], buf.size(), nullptr), -ENOBUFS);
    // A foreign file under the page name of another device, held locked as
    // a live page would be.
    const std::string other = dir_.file("other");
    write_file(other, "x");
    int fd = -1;
    ASSERT_NO_FATAL_FAILURE(hold_live_page(other, std::string(40000, 'J'), &fd));
    struct daxkv_stats st;
    st.struct_size = sizeof st;
    EXPECT_EQ(daxkv_stats_peek(other.c_str(), &st), -EPROTO);
    ::close(fd);
}

// A page whose status length is past any page's room for it (2^64 - 1),
// in a sparse file of 1 TiB (a page is 1 MiB): every reader sized its
// status by the file, and failed "out of memory" (-ENOMEM; a sparse 1 GiB
// cost each reader 1 GiB). It reads no more than a page holds.
TEST_F(StatsPage, AStatusIsReadNoFurtherThanAPageHoldsItWhateverTheFileSize) {
    const std::string other = dir_.file("other");
    write_file(other, "x");
    std::string page = page_bytes(2, "{}");
    const uint64_t huge = UINT64_MAX;
    std::memcpy(&page[48], &huge, 8); // status_len
    int fd = -1;
    ASSERT_NO_FATAL_FAILURE(hold_live_page(other, page, &fd));
    const std::string name = pages_.path() + "/" + daxkv::stats_page_name(other);
    ASSERT_EQ(::truncate(name.c_str(), off_t(1) << 40), 0) << std::strerror(errno);
    size_t needed = 0;
    const int rc = daxkv_status_peek(other.c_str(), nullptr, 0, &needed);
    EXPECT_TRUE(rc == -ENOBUFS || rc == -EPROTO) << rc << " " << daxkv_errmsg();
    if (rc == -ENOBUFS) {
        EXPECT_LE(needed, size_t(1) << 20);
    }
    ::close(fd);
}

// A page in this format whose status JSON has fields of other types (a
// publisher of another version may write them so): the Prometheus text
// leaves out what it cannot read, it is not an internal error.
TEST_F(StatsPage, AStatusWithFieldsOfOtherTypesIsReadAroundThem) {
    const std::string other = dir_.file("other");
    write_file(other, "x");
    const std::string status =
        R"({"devices":[{"path":"a","slots":"many","slots_free":-1},)"
        R"({"path":"b","slots":8,"slots_free":1e300},7,{"path":3}],"state":5})";
    int fd = -1;
    ASSERT_NO_FATAL_FAILURE(hold_live_page(other, page_bytes(2, status), &fd));
    const std::string text = prometheus_peek(other);
    EXPECT_NE(text.find("daxkv_device_slots{store=\"store\",device=\"b\"} 8"), std::string::npos)
        << text;
    ::close(fd);
}

// A page's store id and device paths are whatever its publisher wrote, and
// went into the Prometheus text's labels with their control characters
// raw: escape sequences reached the terminal or dashboard that shows the
// text. They are written as \xNN now (the newline as \n).
//
// Tried: a store id of ESC ] 0 ; x BEL (a terminal title), CR and DEL; a
// device path of ESC [ 2 J (clear screen), the C1 CSI and a newline.
TEST_F(StatsPage, ControlCharactersOfAPageNeverReachThePrometheusText) {
    const std::string other = dir_.file("other");
    write_file(other, "x");
    const std::string status =
        "{\"devices\":[{\"path\":\"p\\u001b[2J\\u009b1m\\n\",\"slots\":4,\"slots_free\":1}]}";
    int fd = -1;
    ASSERT_NO_FATAL_FAILURE(
        hold_live_page(other, page_bytes(2, status, "s\x1b]0;x\x07\r\x7f"), &fd));
    const std::string text = prometheus_peek(other);
    for (unsigned char c : text)
        ASSERT_FALSE((c < 0x20 && c != '\n') || c == 0x7f) << unsigned(c) << " in " << text;
    EXPECT_NE(text.find("daxkv_device_slots{store=\"s\\\\x1b]0;x\\\\x07\\\\x0d\\\\x7f\","
                        "device=\"p\\\\x1b[2J\\\\xc2\\\\x9b" "1m\\n\"} 4"),
              std::string::npos)
        << text;
    ::close(fd);
}

// A page that whoever planted it cuts short and restores over and over,
// held locked as a live page, while another process reads it: readers
// mapped the page, and a read through the mapping while the file was
// empty raised SIGBUS. Its seq stays odd, so a reader keeps reading the
// page for its whole retry loop instead of finishing at once. Read in a
// child, so that a crash shows as a failure here.
TEST_F(StatsPage, APageCutShortWhileItIsReadIsAnErrorNotACrash) {
    const std::string other = dir_.file("other");
    write_file(other, "x");
    const std::string page = page_bytes(3, "{}"); // seq odd: being written, for good
    const std::string name = pages_.path() + "/" + daxkv::stats_page_name(other);
    write_file(name, page);
    const pid_t child = ::fork();
    ASSERT_GE(child, 0);
    if (child == 0) {
        const int fd = ::open(name.c_str(), O_RDWR);
        if (fd < 0 || ::flock(fd, LOCK_SH) != 0)
            ::_exit(2);
        std::atomic<bool> done{false};
        std::thread cutter([&] {
            while (!done.load(std::memory_order_relaxed)) {
                (void)!::ftruncate(fd, 0);
                (void)!::pwrite(fd, page.data(), page.size(), 0);
            }
        });
        int bad = 0;
        for (int i = 0; i < 50; ++i) {
            struct daxkv_stats st;
            std::memset(&st, 0, sizeof st);
            st.struct_size = sizeof st;
            const int rc = daxkv_stats_peek(other.c_str(), &st);
            bad += rc != -EPROTO && rc != -EAGAIN;
        }
        done.store(true);
        cutter.join();
        ::_exit(bad ? 1 : 0);
    }
    int status = 0;
    ASSERT_EQ(::waitpid(child, &status, 0), child);
    EXPECT_FALSE(WIFSIGNALED(status)) << "the reader died of signal " << WTERMSIG(status);
    EXPECT_TRUE(WIFEXITED(status) && WEXITSTATUS(status) == 0)
        << "a peek returned something other than -EPROTO or -EAGAIN";
}

// A device path longer than the buffer a Prometheus sample was printed
// into (4608 bytes): the sample was cut, its value and newline lost, and
// the next sample ran into it.
TEST_F(StatsPage, APrometheusSampleWithALongDevicePathIsWhole) {
    const std::string other = dir_.file("other");
    write_file(other, "x");
    const std::string path(5000, 'p');
    const std::string status = R"({"devices":[{"path":")" + path +
                               R"(","slots":8,"slots_free":1},{"path":"b","slots":2}]})";
    int fd = -1;
    ASSERT_NO_FATAL_FAILURE(hold_live_page(other, page_bytes(2, status), &fd));
    const std::string text = prometheus_peek(other);
    EXPECT_NE(text.find("daxkv_device_slots{store=\"store\",device=\"" + path + "\"} 8\n" +
                        "daxkv_device_slots{store=\"store\",device=\"b\"} 2\n"),
              std::string::npos)
        << text.substr(text.find("# TYPE daxkv_device_slots"), 200);
    ::close(fd);
}

// A symlink under one device's page name to the live page of another
// store: readers followed it and reported that store's numbers as this
// device's. A publisher never names its page with a symlink, nor with
// anything but a regular file.
TEST_F(StatsPage, ASymlinkOrAnotherFileTypeUnderAPageNameIsNotAPage) {
    FILE_ARENA_ONLY();
    open(StoreSpec(4096, 8));
    const std::string other = dir_.file("other");
    write_file(other, "x");
    const std::string name = pages_.path() + "/" + daxkv::stats_page_name(other);
    ASSERT_EQ(::symlink((pages_.path() + "/" + daxkv::stats_page_name(path_)).c_str(),
                        name.c_str()),
              0);
    int rc = 0;
    const struct daxkv_stats st = peek(other, &rc);
    EXPECT_EQ(rc, -EPROTO) << "read as a page with " << st.slots_total << " slots";
    EXPECT_TRUE(contains_text(daxkv_errmsg(), "symbolic link")) << daxkv_errmsg();
    ASSERT_EQ(::unlink(name.c_str()), 0);
    // A directory and a FIFO (which a blocking open would wait on).
    ASSERT_EQ(::mkdir(name.c_str(), 0700), 0);
    peek(other, &rc);
    EXPECT_EQ(rc, -EPROTO) << daxkv_errmsg();
    ASSERT_EQ(::rmdir(name.c_str()), 0);
    ASSERT_EQ(::mkfifo(name.c_str(), 0600), 0);
    peek(other, &rc);
    EXPECT_EQ(rc, -EPROTO) << daxkv_errmsg();
    // The store's own page is read as ever.
    EXPECT_EQ(peek(path_).slots_total, 8u);
}

// A status of 12000 nested arrays: daxkv_status_peek passed it on, and
// the Python binding's status_peek (json.loads) raised RecursionError.
// It is read as no status, as one that is not a JSON object is.
TEST_F(StatsPage, AStatusNestedDeeperThanAPublisherWritesIsNotPassedOn) {
    const std::string other = dir_.file("other");
    write_file(other, "x");
    const std::string deep =
        R"({"devices":)" + std::string(12000, '[') + std::string(12000, ']') + "}";
    int fd = -1;
    ASSERT_NO_FATAL_FAILURE(hold_live_page(other, page_bytes(2, deep), &fd));
    const std::string text = status(other);
    int deepest = 0;
    const auto j = nlohmann::json::parse(
        text,
        [&](int depth, nlohmann::json::parse_event_t, nlohmann::json &) {
            deepest = std::max(deepest, depth);
            return true;
        },
        false);
    ASSERT_TRUE(j.is_object()) << text.substr(0, 200);
    EXPECT_LE(deepest, 3) << text.substr(0, 200);
    EXPECT_FALSE(j.contains("devices"));
    EXPECT_EQ(j["publisher"]["store_id"].get<std::string>(), "store");
    ::close(fd);
}

TEST_F(StatsPage, PoolDevicesAddedLaterAreNamedAndRemovedOnesUnnamed) {
    FILE_ARENA_ONLY();
    std::string second;
    ASSERT_NO_FATAL_FAILURE(open_a_pool_of_two(&second));
    EXPECT_EQ(peek(second).devices, 2u);
    daxkv_hotplug_result r;
    r.struct_size = sizeof r;
    ASSERT_EQ(daxkv_device_remove(s(), second.c_str(), DAXKV_EVICT, 0, &r), 0) << daxkv_errmsg();
    EXPECT_EQ(pages(), 1u);
    int rc = 0;
    peek(second, &rc);
    EXPECT_EQ(rc, -ENOENT);
    EXPECT_EQ(peek(path_).devices, 1u);
}

// A pool whose status JSON is larger than the 24 KiB a page used to hold
// (devices with long paths): it was published as a note of its length, and
// a peek had no state, no counters and no device rows. Read whole now.
TEST_F(StatsPage, AStatusLargerThanAnEarlierPageHeldIsPeekedWhole) {
    FILE_ARENA_ONLY();
    open(StoreSpec(4096, 8).set("hotplug", "1"));
    std::string deep = dir_.path();
    for (int i = 0; i < 12; ++i) {
        deep += "/" + std::string(200, static_cast<char>('a' + i));
        ASSERT_EQ(::mkdir(deep.c_str(), 0755), 0);
    }
    for (int i = 0; i < 15; ++i) {
        const std::string dev = deep + "/device" + std::to_string(i);
        ASSERT_EQ(daxkv_device_add(s(), dev.c_str(), arena_bytes_for(4096, 4, 256)), 0)
            << daxkv_errmsg();
    }
    std::string own(8192, '\0');
    size_t needed = 0;
    ASSERT_EQ(daxkv_status_json(s(), &own[0], own.size(), &needed), -ENOBUFS);
    ASSERT_GT(needed, 32u * 1024) << "the status is small enough for an earlier page";
    const std::string peeked = status(path_);
    EXPECT_EQ(peeked.find("\"truncated\""), std::string::npos);
    EXPECT_NE(peeked.find("\"counters\""), std::string::npos);
    EXPECT_EQ(peek(path_).devices, 16u);
    const std::string text = prometheus_peek(path_);
    size_t rows = 0;
    for (size_t at = 0; (at = text.find("daxkv_device_slots{", at)) != std::string::npos; ++at)
        ++rows;
    EXPECT_EQ(rows, 16u);
}

// A device whose file was deleted before it was removed from the pool:
// the page's name for it was looked up again from the path at removal,
// which no longer leads anywhere, so the name stayed until the store
// closed. Once the removed file's inode number is reused, that name is the
// page name of another file, and a reader of that file got this store's
// page.
TEST_F(StatsPage, ADeviceDeletedBeforeItsRemovalLosesItsName) {
    FILE_ARENA_ONLY();
    std::string second;
    ASSERT_NO_FATAL_FAILURE(open_a_pool_of_two(&second));
    ASSERT_EQ(::unlink(second.c_str()), 0);
    daxkv_hotplug_result r;
    r.struct_size = sizeof r;
    ASSERT_EQ(daxkv_device_remove(s(), second.c_str(), DAXKV_EVICT, 0, &r), 0) << daxkv_errmsg();
    EXPECT_EQ(pages(), 1u) << "the removed device's name is left";
    EXPECT_EQ(peek(path_).devices, 1u);
}

// Shutdown stopped publishing before it waited for the calls inside the
// store: a device add or removal on another thread named or unnamed its page
// through the publisher being destroyed (a use after free; ThreadSanitizer
// reports the race between the reset and the hotplug call's read even when
// the two do not overlap in time, as nothing but a relaxed counter orders
// them here).
TEST_F(StatsPage, AShutdownStopsPublishingOnlyOnceNoHotplugCallUsesThePage) {
    FILE_ARENA_ONLY();
    open(StoreSpec(4096, 8).set("hotplug", "1").set("stats_interval", "3600000"));
    const std::string second = dir_.file("second");
    const uint64_t bytes = arena_bytes_for(4096, 4, 256);
    std::atomic<int> rounds{0}, last{0};
    std::thread hotplug([&] {
        daxkv_hotplug_result r;
        r.struct_size = sizeof r;
        for (;;) {
            int rc = daxkv_device_add(s(), second.c_str(), bytes);
            if (rc == 0)
                rc = daxkv_device_remove(s(), second.c_str(), DAXKV_EVICT, 0, &r);
            if (rc != 0) {
                last.store(rc, std::memory_order_relaxed);
                return;
            }
            rounds.fetch_add(1, std::memory_order_relaxed);
        }
    });
    while (rounds.load(std::memory_order_relaxed) < 3 && last.load(std::memory_order_relaxed) == 0)
        std::this_thread::yield();
    EXPECT_EQ(daxkv_shutdown(s()), 0);
    hotplug.join();
    EXPECT_EQ(last.load(), -ESHUTDOWN);
    EXPECT_EQ(pages(), 0u);
}

} // namespace

// A sweep removes a name it found stale with the statistics directory's
// naming lock held: a live store that renames its fresh page over that name
// meanwhile waits for the lock, and its name is not the one removed. The
// sweep is held between its check and its unlink (the sweep hook) until
// the live store's naming is seen waiting for the lock (or 2 s went by).
TEST_F(StatsPage, ASweepNeverRemovesTheNameALiveStoreJustGaveItsPage) {
    const std::string device = dir_.file("device");
    { std::ofstream(device) << "x"; }
    const std::string name = pages_.path() + "/" + daxkv::stats_page_name(device);
    // A dead store's page under the device's page name: nobody holds it.
    { std::ofstream(name, std::ios::binary) << page_bytes(2, "{}"); }
    daxkv::StatsPage live("live"); // holds its page's locks
    live.publish(nullptr, 0, "{}");
    std::atomic<int> waited{0};
    std::thread namer;
    daxkv::testing::set_naming_lock_busy_hook([&] { ++waited; });
    daxkv::testing::set_sweep_hook([&](const std::string &swept) {
        if (swept != name || namer.joinable())
            return;
        namer = std::thread([&] { live.name_device(device); });
        const auto until = std::chrono::steady_clock::now() + std::chrono::seconds(2);
        while (waited == 0 && std::chrono::steady_clock::now() < until)
            std::this_thread::sleep_for(std::chrono::milliseconds(1));
    });
    daxkv::remove_stale_pages();
    ASSERT_TRUE(namer.joinable()) << "the sweep did not find the dead store's page stale";
    namer.join();
    daxkv::testing::set_sweep_hook(nullptr);
    daxkv::testing::set_naming_lock_busy_hook(nullptr);
    EXPECT_GT(waited.load(), 0) << "the live store named its page while the sweep held the name";
    // The name is the live page's.
    const daxkv::PageSnapshot got = daxkv::read_stats_page(device);
    EXPECT_EQ(got.store_id, "live");
}
