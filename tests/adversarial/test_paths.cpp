// Paths and file types: where a path leads (symlinks, "..", /dev), what a
// failed open or add leaves on disk, sparse files larger than their file
// system, and paths that are not valid UTF-8 in the JSON the library writes.
//
// Bad inputs tried here: a symlink to a missing /dev node, a relative
// symlink chain climbing into /dev, "/dev/shm/../NAME", a regular file under
// /dev given to daxkv_probe, a probe path longer than daxkv_device_info
// holds; a directory, a FIFO, a socket, /dev/null, a symlink loop, a file
// inside a regular file, a missing directory, a path ending in "/" (each
// with grow_limit 0 and auto); an arena reopened with grow_limit=auto
// through a symlink; an arena closed while a forked child holds its file
// description; an open
// that fails after creating its file (a slot larger than the arena, a second
// device that is foreign), of an existing zeroed file and of an existing
// empty one, and of existing arenas whose superblock it changes (one
// holding entries opened with durability=none, one last used with
// durability=none opened with durability=process and with another
// slot_bytes) when a later device is a directory; a device_add whose arena holds no slot; a file system too small
// for the arena asked for; a sparse file (and a sparse copy of an arena)
// larger than its file system; device paths with bytes 0xff 0xfe, a
// lone continuation byte and a cut three-byte sequence (in the status JSON
// and the Prometheus text), and with ESC, BEL, CR, DEL, the C1 CSI, a
// newline and a tab (in the Prometheus text); a store opened (and a device added, a file arena
// created, the eventfd asked for) by a process with descriptors 0, 1 and 2
// closed. A member of a running pool given to daxkv_device_add again through
// a hard link, a symlink, "sub/../NAME" and /proc/self/fd/N, and opened by a
// second store of the same process (by its name and both aliases).
#include <sys/socket.h>
#include <sys/un.h>

#include "common.hpp"
#include "internal/json_text.hpp"

using namespace adv;

namespace {

class Paths : public ::testing::Test {
protected:
    // Open a store on the given devices (one file each); returns the code.
    int open_devices(const std::vector<std::pair<std::string, uint64_t>> &devs,
                     const std::vector<std::pair<std::string, std::string>> &opts = {}) {
        store_.reset();
        ConfigPtr cfg = config(opts, devs);
        daxkv_store *s = nullptr;
        int rc = daxkv_open(&s, cfg.get());
        if (rc == 0)
            store_.reset(s);
        return rc;
    }
    // A name under /dev that does not exist (and must never be created).
    std::string dev_name(const char *tag) {
        std::string n = std::string("/dev/daxkv-adv-") + tag + "-" + std::to_string(::getpid());
        ::unlink(n.c_str());
        made_in_dev_.push_back(n);
        return n;
    }
    ~Paths() override {
        store_.reset();
        // The bugs these tests guard against create files in /dev: never
        // leave one behind, whatever the outcome.
        for (auto &n : made_in_dev_)
            ::unlink(n.c_str());
    }
    TempDir dir_;
    StorePtr store_;
    std::vector<std::string> made_in_dev_;
};

// ---------------------------------------------------------------------------
// The /dev rule is decided on where the path leads

TEST_F(Paths, SymlinkToAMissingDevNodeCreatesNothingInDev) {
    std::string target = dev_name("missing");
    std::string link = dir_.file("link");
    ASSERT_EQ(::symlink(target.c_str(), link.c_str()), 0);
    EXPECT_EQ(open_devices({{link, 1 << 20}}), -ENODEV);
    EXPECT_TRUE(contains_text(daxkv_errmsg(), "may not live under /dev")) << daxkv_errmsg();
    EXPECT_FALSE(file_exists(target)) << "a regular file was created in /dev";
}

TEST_F(Paths, DotDotOutOfDevShmCreatesNothingInDev) {
    std::string target = dev_name("dotdot");
    std::string path = "/dev/shm/.." + target.substr(4); // /dev/shm/../daxkv-adv-...
    EXPECT_EQ(open_devices({{path, 1 << 20}}), -ENODEV);
    EXPECT_FALSE(file_exists(target)) << "a regular file was created in /dev";
}

TEST_F(Paths, RelativeSymlinkChainIntoDevCreatesNothing) {
    std::string target = dev_name("chain");
    // dir/a -> b, dir/b -> ../../../../../../../../dev/NAME (enough ".." for any depth).
    std::string up;
    for (int i = 0; i < 32; ++i)
        up += "../";
    ASSERT_EQ(::symlink("b", dir_.file("a").c_str()), 0);
    ASSERT_EQ(::symlink((up + target.substr(1)).c_str(), dir_.file("b").c_str()), 0);
    EXPECT_EQ(open_devices({{dir_.file("a"), 1 << 20}}), -ENODEV);
    EXPECT_FALSE(file_exists(target));
}

TEST_F(Paths, DeviceAddFollowsTheSameRule) {
    std::string d0 = dir_.file("d0");
    ASSERT_EQ(open_devices({{d0, dev_bytes_for(8)}}, {{"hotplug", "1"}}), 0) << daxkv_errmsg();
    std::string target = dev_name("add");
    std::string link = dir_.file("link");
    ASSERT_EQ(::symlink(target.c_str(), link.c_str()), 0);
    EXPECT_EQ(daxkv_device_add(store_.get(), link.c_str(), dev_bytes_for(8)), -ENODEV);
    std::string dotdot = "/dev/shm/.." + dev_name("add2").substr(4);
    EXPECT_EQ(daxkv_device_add(store_.get(), dotdot.c_str(), dev_bytes_for(8)), -ENODEV);
    for (auto &n : made_in_dev_)
        EXPECT_FALSE(file_exists(n)) << n;
    EXPECT_EQ(pool_status(store_.get())["devices"].size(), 1u);
}

TEST_F(Paths, SymlinksIntoDevShmAndElsewhereStillWork) {
    // dir_ itself is reached through a symlink into /dev/shm (helpers.hpp):
    // a relative link beside it and an absolute one both lead to a file there.
    // A symlink to a file that does not exist yet is not followed to create
    // it (the kernel's symlink protections would not be asked).
    ASSERT_EQ(::symlink("real.arena", dir_.file("rel").c_str()), 0);
    EXPECT_EQ(open_devices({{dir_.file("rel"), dev_bytes_for(4)}}), -ENOENT);
    EXPECT_FALSE(file_exists(dir_.file("real.arena")));
    ASSERT_EQ(open_devices({{dir_.file("real.arena"), dev_bytes_for(4)}}), 0) << daxkv_errmsg();
    store_.reset();
    ASSERT_EQ(open_devices({{dir_.file("rel"), dev_bytes_for(4)}}), 0) << daxkv_errmsg();
    ASSERT_EQ(put_key(store_.get(), 1, 1), 0);
    store_.reset();
    ASSERT_EQ(::symlink(dir_.real_file("real.arena").c_str(), dir_.file("abs").c_str()), 0);
    ASSERT_EQ(open_devices({{dir_.file("abs"), dev_bytes_for(4)}}), 0) << daxkv_errmsg();
    EXPECT_EQ(check_key(store_.get(), 1, 1), "");
}

TEST_F(Paths, ProbeDecidesAsOpenDoes) {
    // A regular file in /dev: open refuses it, so probe does too.
    std::string reg = dev_name("probe");
    int fd = ::open(reg.c_str(), O_CREAT | O_WRONLY | O_EXCL, 0600);
    if (fd < 0)
        GTEST_SKIP() << "cannot make a file in /dev to probe: " << std::strerror(errno);
    ::close(fd);
    daxkv_device_info info;
    std::memset(&info, 0, sizeof info);
    info.struct_size = sizeof info;
    EXPECT_EQ(daxkv_probe(reg.c_str(), &info), -ENODEV);
    std::string via = "/dev/shm/.." + reg.substr(4);
    EXPECT_EQ(daxkv_probe(via.c_str(), &info), -ENODEV);
    EXPECT_EQ(open_devices({{reg, 1 << 20}}), -ENODEV);
    // A path the struct cannot hold whole is refused, not cut.
    std::string longp = dir_.path() + "/" + std::string(300, 'p');
    write_file(longp, "x");
    EXPECT_EQ(daxkv_probe(longp.c_str(), &info), -EINVAL);
    EXPECT_TRUE(contains_text(daxkv_errmsg(), "longer than"));
}

TEST_F(Paths, FileTypesAndBrokenPathsAreRefusedAndCreateNothing) {
    ASSERT_EQ(::mkdir(dir_.file("adir").c_str(), 0700), 0);
    ASSERT_EQ(::mkfifo(dir_.file("fifo").c_str(), 0600), 0);
    int sock = ::socket(AF_UNIX, SOCK_STREAM, 0);
    ASSERT_GE(sock, 0);
    sockaddr_un sa{};
    sa.sun_family = AF_UNIX;
    std::string sp = dir_.real_file("sock");
    ASSERT_LT(sp.size(), sizeof sa.sun_path);
    std::strcpy(sa.sun_path, sp.c_str());
    ASSERT_EQ(::bind(sock, reinterpret_cast<sockaddr *>(&sa), sizeof sa), 0);
    ASSERT_EQ(::symlink("loop2", dir_.file("loop1").c_str()), 0);
    ASSERT_EQ(::symlink("loop1", dir_.file("loop2").c_str()), 0);
    write_file(dir_.file("plain"), "not a directory");
    const std::vector<std::string> before = list_dir(dir_.path());
    struct Case {
        std::string path;
        int want;
    };
    const Case cases[] = {
        {dir_.file("adir"), -EISDIR},
        {dir_.file("fifo"), -ENODEV},
        {dir_.file("sock"), -ENODEV},
        {"/dev/null", -ENODEV},
        {dir_.file("loop1"), -ELOOP},
        {dir_.file("plain/x"), -ENOTDIR},
        {dir_.file("no-such-dir/x"), -ENOENT},
        {dir_.file("missing/"), -EINVAL},
    };
    // grow_limit=auto reads an existing arena's layout before the open: the
    // same answers, and a FIFO does not hold it (an alarm ends the test
    // rather than let it hang).
    for (const char *grow : {"0", "auto"}) {
        for (const Case &c : cases) {
            ::alarm(30);
            EXPECT_EQ(open_devices({{c.path, 1 << 20}}, {{"grow_limit", grow}}), c.want)
                << c.path << " grow_limit=" << grow << ": " << daxkv_errmsg();
            ::alarm(0);
            EXPECT_EQ(list_dir(dir_.path()), before) << c.path << " created something";
        }
    }
    ::close(sock);
}

TEST_F(Paths, AnArenaClosedWhileAForkedChildLivesCanBeOpenedAgain) {
    // A server that forks workers: the child shares the open file
    // description that holds the arena's lock. Once the parent closed its
    // store, the arena is free again, whatever the child does.
    const std::string path = dir_.file("forked.arena");
    ASSERT_EQ(open_devices({{path, dev_bytes_for(4)}}), 0) << daxkv_errmsg();
    ASSERT_EQ(put_key(store_.get(), 1, 1), 0);
    int ready[2];
    ASSERT_EQ(::pipe(ready), 0);
    const pid_t child = ::fork();
    ASSERT_GE(child, 0);
    if (child == 0) {
        char c;
        ::close(ready[1]);
        (void)::read(ready[0], &c, 1); // until the parent is done
        ::_exit(0);
    }
    ::close(ready[0]);
    store_.reset();
    const int rc = open_devices({{path, dev_bytes_for(4)}});
    const std::string msg = daxkv_errmsg();
    ::close(ready[1]);
    int status = 0;
    ASSERT_EQ(::waitpid(child, &status, 0), child);
    ASSERT_EQ(rc, 0) << msg;
    EXPECT_EQ(check_key(store_.get(), 1, 1), "");
}

TEST_F(Paths, GrowLimitAutoReadsAnArenaThroughASymlink) {
    // An arena laid out to grow to 4 MiB, opened at 1 MiB: reopened with
    // grow_limit=auto it keeps its room, by its own name and through a
    // symlink alike (the layout is read where the path leads).
    const uint64_t bytes = 1 << 20;
    ASSERT_EQ(open_devices({{dir_.file("grow.arena"), bytes}}, {{"grow_limit", "4MiB"}}), 0)
        << daxkv_errmsg();
    ASSERT_EQ(put_key(store_.get(), 1, 1), 0);
    store_.reset();
    ASSERT_EQ(::symlink("grow.arena", dir_.file("grow.link").c_str()), 0);
    for (const char *name : {"grow.arena", "grow.link"}) {
        ASSERT_EQ(open_devices({{dir_.file(name), bytes}}, {{"grow_limit", "auto"}}), 0)
            << name << ": " << daxkv_errmsg();
        EXPECT_EQ(check_key(store_.get(), 1, 1), "") << name;
        store_.reset();
    }
}

// ---------------------------------------------------------------------------
// A failed open leaves the target as it was

TEST_F(Paths, FailedOpenRemovesTheFileItCreated) {
    std::string a = dir_.file("a");
    // A slot larger than the arena: the file is created and sized first.
    EXPECT_EQ(open_devices({{a, 1 << 20}}, {{"slot_bytes", "2MiB"}}), -EINVAL);
    EXPECT_FALSE(file_exists(a));
    // The next correct open, of another size, works.
    ASSERT_EQ(open_devices({{a, 2 << 20}}), 0) << daxkv_errmsg();
}

TEST_F(Paths, FailedPoolOpenRemovesEveryFileItCreatedAndTouchesNoOther) {
    std::string fresh = dir_.file("fresh"), foreign = dir_.file("foreign");
    write_file(foreign, std::string(dev_bytes_for(8), 'Z'));
    const uint64_t h = file_hash(foreign);
    EXPECT_EQ(open_devices({{fresh, dev_bytes_for(8)}, {foreign, dev_bytes_for(8)}}),
              DAXKV_E_FOREIGN);
    EXPECT_FALSE(file_exists(fresh));
    EXPECT_EQ(file_hash(foreign), h);
}

TEST_F(Paths, FailedOpenLeavesAZeroedFileZeroedAndAnEmptyFileEmpty) {
    std::string zeroed = dir_.file("zeroed"), empty = dir_.file("empty"),
                foreign = dir_.file("foreign");
    write_file(zeroed, std::string(dev_bytes_for(8), '\0'));
    write_file(empty, "");
    write_file(foreign, std::string(dev_bytes_for(8), 'Z'));
    EXPECT_EQ(open_devices({{zeroed, dev_bytes_for(8)}, {foreign, dev_bytes_for(8)}}),
              DAXKV_E_FOREIGN);
    EXPECT_EQ(read_file(zeroed), std::string(dev_bytes_for(8), '\0'))
        << "the failed open left a superblock on the zeroed file";
    EXPECT_EQ(open_devices({{empty, dev_bytes_for(8)}, {foreign, dev_bytes_for(8)}}),
              DAXKV_E_FOREIGN);
    EXPECT_EQ(file_size(empty), 0u);
    // So the next correct open, with another slot size, takes both.
    EXPECT_EQ(open_devices({{zeroed, dev_bytes_for(8)}, {empty, dev_bytes_for(8)}},
                           {{"slot_bytes", "8192"}}),
              0)
        << daxkv_errmsg();
}

TEST_F(Paths, FailedPoolOpenLeavesExistingArenasAsTheyWere) {
    // The open sets or clears an arena's recoverable flag for the
    // durability asked for, and replaces the layout of one whose last user
    // kept no index. A later device that failed the open left those changes
    // behind: an arena holding entries, opened with durability=none in a
    // pool whose second path was wrong, lost its flag, and the next correct
    // open cleared every entry; an arena last used with durability=none was
    // left in the new layout and marked recoverable, so that the open with
    // its old configuration became DAXKV_E_FOREIGN.
    std::string held = dir_.file("held"), loose = dir_.file("loose"), bad = dir_.file("dir");
    ASSERT_EQ(::mkdir(bad.c_str(), 0700), 0);
    ASSERT_EQ(open_devices({{held, dev_bytes_for(8)}}), 0) << daxkv_errmsg();
    for (uint32_t i = 0; i < 6; ++i)
        ASSERT_EQ(put_key(store_.get(), i, 1), 0);
    ASSERT_EQ(open_devices({{loose, dev_bytes_for(8)}}, {{"durability", "none"}}), 0)
        << daxkv_errmsg();
    store_.reset();
    const uint64_t held_hash = file_hash(held), loose_hash = file_hash(loose);
    struct Attempt {
        std::string path;
        std::vector<std::pair<std::string, std::string>> opts;
    };
    for (const Attempt &t : {Attempt{held, {{"durability", "none"}}},
                             Attempt{loose, {}},
                             Attempt{loose, {{"slot_bytes", "8192"}}}}) {
        EXPECT_EQ(open_devices({{t.path, 0}, {bad, dev_bytes_for(8)}}, t.opts), -EISDIR);
        EXPECT_EQ(file_hash(t.path), t.path == held ? held_hash : loose_hash)
            << t.path << " changed by a failed open with " << t.opts.size() << " options";
    }
    ASSERT_EQ(open_devices({{held, 0}}), 0) << daxkv_errmsg();
    for (uint32_t i = 0; i < 6; ++i)
        EXPECT_EQ(check_key(store_.get(), i, 1), "");
    store_.reset();
    // Its last user kept no index: any layout replaces it, the old one too.
    EXPECT_EQ(open_devices({{loose, 0}}), 0) << daxkv_errmsg();
    store_.reset();
    ::rmdir(bad.c_str());
}

TEST_F(Paths, OneFileListedTwiceInAPoolIsEbusyNamingThisProcess) {
    // The same arena under a second name (a hard link, a symlink; the same
    // name twice is refused by daxkv_config_add_device already): the
    // second open of it in the pool meets the first one's lock. It was
    // refused, but as "in use by another daxkv store" naming this very
    // process; the message now says the file is open here already. The
    // failed open leaves the arena as it was.
    std::string a = dir_.file("a"), hard = dir_.file("hard"), soft = dir_.file("soft");
    ASSERT_EQ(open_devices({{a, dev_bytes_for(8)}}), 0) << daxkv_errmsg();
    ASSERT_EQ(put_key(store_.get(), 1, 1), 0);
    store_.reset();
    ASSERT_EQ(::link(a.c_str(), hard.c_str()), 0);
    ASSERT_EQ(::symlink(a.c_str(), soft.c_str()), 0);
    const uint64_t before = file_hash(a);
    for (const std::string &alias : {hard, soft}) {
        EXPECT_EQ(open_devices({{a, 0}, {alias, 0}}), -EBUSY) << alias;
        EXPECT_TRUE(contains_text(daxkv_errmsg(), "already open in this process"))
            << alias << ": " << daxkv_errmsg();
        EXPECT_EQ(file_hash(a), before) << alias;
    }
    ASSERT_EQ(open_devices({{hard, 0}}), 0) << daxkv_errmsg();
    EXPECT_EQ(check_key(store_.get(), 1, 1), "");
}

TEST_F(Paths, FailedDeviceAddRemovesTheFileItCreated) {
    std::string d0 = dir_.file("d0");
    ASSERT_EQ(open_devices({{d0, dev_bytes_for(8)}}, {{"hotplug", "1"}}), 0) << daxkv_errmsg();
    // One slot's worth of bytes passes the size check, but no slot fits
    // beside the superblocks and the header: the arena fails after the file
    // was made.
    std::string extra = dir_.file("extra");
    EXPECT_EQ(daxkv_device_add(store_.get(), extra.c_str(), kSlot), -EINVAL);
    EXPECT_FALSE(file_exists(extra));
    EXPECT_EQ(daxkv_device_add(store_.get(), extra.c_str(), dev_bytes_for(8)), 0)
        << daxkv_errmsg();
}

// ---------------------------------------------------------------------------
// File systems too small for the arena

TEST_F(Paths, AnArenaLargerThanItsFileSystemIsEnospcAndLeavesNothing) {
    if (!can_mount_tmpfs())
        GTEST_SKIP() << "cannot mount a private tmpfs here";
    std::string msg = child_check([&]() -> std::string {
        std::string m = private_tmpfs(dir_.path(), 1 << 20);
        if (!m.empty())
            return m;
        std::string a = dir_.file("a");
        ConfigPtr cfg = config({}, {{a, 8 << 20}});
        daxkv_store *s = nullptr;
        int rc = daxkv_open(&s, cfg.get());
        daxkv_close(s);
        if (rc != -ENOSPC)
            return "open returned " + std::to_string(rc) + ", expected -ENOSPC";
        if (file_exists(a))
            return "the failed open left " + a + " behind";
        return "";
    });
    EXPECT_EQ(msg, "");
}

TEST_F(Paths, ASparseFileLargerThanItsFileSystemIsEnospcAtOpenNotSigbusAtPut) {
    if (!can_mount_tmpfs())
        GTEST_SKIP() << "cannot mount a private tmpfs here";
    // An arena formatted where there is room, copied sparse (its empty
    // payloads as holes) onto a 1 MiB file system: its superblocks and
    // headers fit, its payloads do not.
    std::string src = dir_.file("src");
    ASSERT_EQ(open_devices({{src, 8 << 20}}), 0) << daxkv_errmsg();
    store_.reset();
    const std::string image = read_file(src);
    ASSERT_EQ(image.size(), 8u << 20);
    TempDir small;
    std::string msg = child_check([&]() -> std::string {
        std::string m = private_tmpfs(small.path(), 1 << 20);
        if (!m.empty())
            return m;
        for (const char *name : {"copy", "sparse"}) {
            std::string a = small.file(name);
            int fd = ::open(a.c_str(), O_CREAT | O_RDWR, 0600);
            if (fd < 0 || ::ftruncate(fd, static_cast<off_t>(image.size())) != 0)
                return "cannot make " + a;
            if (std::string(name) == "copy")
                for (size_t off = 0; off < image.size(); off += 4096)
                    if (image.compare(off, 4096, std::string(4096, '\0')) != 0 &&
                        ::pwrite(fd, image.data() + off, 4096, static_cast<off_t>(off)) != 4096)
                        return "cannot copy the arena";
            ::close(fd);
            ConfigPtr cfg = config({}, {{a, 0}});
            daxkv_store *s = nullptr;
            int rc = daxkv_open(&s, cfg.get());
            if (rc == 0) {
                // Before the fix: the puts below die with SIGBUS.
                std::vector<char> v(kSlot, 'v');
                for (int i = 0; i < 2048 && rc == 0; ++i) {
                    std::string k = "k" + std::to_string(i);
                    rc = daxkv_put(s, k.data(), k.size(), v.data(), v.size(), 0);
                }
                daxkv_close(s);
                return std::string(name) + ": the open succeeded (puts then returned " +
                       std::to_string(rc) + ")";
            }
            if (rc != -ENOSPC)
                return std::string(name) + ": open returned " + std::to_string(rc) + ": " +
                       daxkv_errmsg();
            if (file_size(a) != image.size())
                return std::string(name) + ": the failed open changed the file's size";
        }
        return "";
    });
    EXPECT_EQ(msg, "");
}

// The statistics page is a sparse file written through a shared mapping:
// on a full file system (a /dev/shm an arena filled), its first write at
// open, or a later status grown onto pages it had not written yet, was a
// SIGBUS that killed the process, sigbus=handle or not.
TEST_F(Paths, AStatisticsPageOnAFullFileSystemIsLeftOutNotASigbus) {
    if (!can_mount_tmpfs())
        GTEST_SKIP() << "cannot mount a private tmpfs here";
    TempDir stats;
    std::string msg = child_check([&]() -> std::string {
        std::string m = private_tmpfs(stats.path(), 64 << 10);
        if (!m.empty())
            return m;
        ::setenv("DAXKV_STATS_DIR", stats.path().c_str(), 1);
        // Fills the file system but for `left` pages of 4 KiB.
        const std::string filler = stats.file("filler");
        auto fill = [&](int left) -> std::string {
            ::unlink(filler.c_str());
            int fd = ::open(filler.c_str(), O_CREAT | O_WRONLY, 0600);
            if (fd < 0)
                return "cannot create " + filler;
            std::vector<char> page(4096, 'f');
            while (::write(fd, page.data(), page.size()) == ssize_t(page.size())) {
            }
            off_t size = ::lseek(fd, 0, SEEK_END);
            int rc = ::ftruncate(fd, std::max<off_t>(0, size - left * 4096));
            ::close(fd);
            return rc == 0 ? "" : "cannot shrink " + filler;
        };
        // No room at all: the store opens, without a page.
        if (std::string f = fill(0); !f.empty())
            return f;
        std::string a = dir_.file("a");
        ConfigPtr cfg = config({{"hotplug", "1"}, {"stats_interval", "50"}}, {{a, dev_bytes_for(4)}});
        daxkv_store *s = nullptr;
        if (int rc = daxkv_open(&s, cfg.get()); rc != 0)
            return "open on a full file system: " + std::to_string(rc) + ": " + daxkv_errmsg();
        daxkv_close(s);
        // Room for the page's header and a short status (three pages):
        // the status of a pool of long paths needs more, and is published
        // as a note of its length until there is room again.
        if (std::string f = fill(3); !f.empty())
            return f;
        s = nullptr;
        if (int rc = daxkv_open(&s, cfg.get()); rc != 0)
            return "open with three pages free: " + std::to_string(rc) + ": " + daxkv_errmsg();
        const std::string long_name(200, 'd');
        for (int i = 0; i < 16; ++i) {
            std::string d = dir_.file(long_name + std::to_string(i));
            if (int rc = daxkv_device_add(s, d.c_str(), dev_bytes_for(4)); rc != 0) {
                daxkv_close(s);
                return "device_add: " + std::to_string(rc) + ": " + daxkv_errmsg();
            }
        }
        usleep(200 * 1000); // a few publications
        char buf[1 << 16];
        size_t needed = 0;
        int rc = daxkv_status_peek(a.c_str(), buf, sizeof buf, &needed);
        std::string seen = rc == 0 ? std::string(buf) : "";
        std::string result;
        if (rc != 0 || seen.find("\"truncated\":true") == std::string::npos)
            result = "status of a pool whose page has no room: rc " + std::to_string(rc) + " " +
                     seen.substr(0, 200);
        // Room again: the next publication is whole.
        ::unlink(filler.c_str());
        usleep(200 * 1000);
        rc = daxkv_status_peek(a.c_str(), buf, sizeof buf, &needed);
        if (result.empty() && (rc != 0 || std::string(buf).find(long_name + "15") == std::string::npos))
            result = "status once there is room: rc " + std::to_string(rc) + " " +
                     std::string(buf).substr(0, 200);
        daxkv_close(s);
        return result;
    });
    EXPECT_EQ(msg, "");
}

// ---------------------------------------------------------------------------
// Paths that are not UTF-8 in the status JSON

TEST_F(Paths, StatusJsonCarriesPathsThatAreNotUtf8ByteForByte) {
    const std::string names[] = {std::string("arena-\xff\xfe"), std::string("arena-\x80"),
                                 std::string("arena-\xc3\xa9")}; // the last is UTF-8 (é)
    for (const std::string &n : names) {
        std::string path = dir_.file(n);
        ASSERT_EQ(open_devices({{path, dev_bytes_for(4)}}, {{"hotplug", "1"}}), 0)
            << daxkv_errmsg();
        json st = store_status(store_.get());
        ASSERT_TRUE(st.is_object()) << "daxkv_status_json failed for a path with bytes of " << n;
        json p = st["devices"][0]["path"];
        json ps = pool_status(store_.get())["devices"][0]["device_path"];
        for (const json &got : {p, ps}) {
            std::string back;
            if (got.is_string()) {
                back = got.get<std::string>();
            } else {
                ASSERT_TRUE(got.is_array()) << got.dump();
                for (const json &b : got)
                    back.push_back(static_cast<char>(b.get<int>()));
            }
            EXPECT_EQ(back, path);
        }
        EXPECT_EQ(p.is_string(), n == names[2]);
        store_.reset();
    }
}

// The device label of the Prometheus text: the exposition format is UTF-8,
// and a path's bytes that are not went into it raw (Prometheus refuses
// such a scrape; the Python binding failed to decode it). They are written
// as the text \xNN; a path that is UTF-8 is written as it is. So are
// control characters, which went in raw and acted on the terminal showing
// the text (ESC sequences, BEL, CR, the C1 CSI), but for the newline (\n).
TEST_F(Paths, PrometheusTextOfPathsThatAreNotUtf8IsUtf8) {
    const std::string names[] = {std::string("arena-\xff\xfe"), std::string("arena-\x80"),
                                 std::string("arena-\xc3\xa9"), std::string("arena-\xe2\x82"),
                                 std::string("arena-\x1b[2J\x07\r\x7f"),
                                 std::string("arena-\xc2\x9b" "31m\xc2\xa0"),
                                 std::string("arena-\n\t")};
    const std::string labels[] = {"arena-\\\\xff\\\\xfe", "arena-\\\\x80", "arena-\xc3\xa9",
                                  "arena-\\\\xe2\\\\x82",
                                  "arena-\\\\x1b[2J\\\\x07\\\\x0d\\\\x7f",
                                  "arena-\\\\xc2\\\\x9b" "31m\xc2\xa0", "arena-\\n\\\\x09"};
    for (size_t i = 0; i < sizeof names / sizeof names[0]; ++i) {
        const std::string path = dir_.file(names[i]);
        ASSERT_EQ(open_devices({{path, dev_bytes_for(4)}}), 0) << daxkv_errmsg();
        size_t needed = 0;
        ASSERT_EQ(daxkv_stats_prometheus(store_.get(), nullptr, 0, &needed), -ENOBUFS);
        std::string text(needed, '\0');
        ASSERT_EQ(daxkv_stats_prometheus(store_.get(), &text[0], text.size(), nullptr), 0)
            << daxkv_errmsg();
        text.resize(needed - 1);
        EXPECT_TRUE(daxkv::valid_utf8(text.data(), text.size()))
            << "the text for a path with bytes of " << names[i] << " is not UTF-8";
        for (unsigned char c : text)
            if ((c < 0x20 && c != '\n') || c == 0x7f) {
                ADD_FAILURE() << "control character " << unsigned(c) << " in the text of path "
                              << i;
                break;
            }
        EXPECT_NE(text.find("device=\"" + dir_.path() + "/" + labels[i] + "\"}"),
                  std::string::npos)
            << text.substr(text.find("daxkv_device_slots{"), 300);
        store_.reset();
    }
}

// ---------------------------------------------------------------------------
// Standard descriptors

// A process started with standard error (or input, or output) closed: the
// descriptors the store keeps (its arena files, its statistics page) must
// not take those numbers (the completion eventfd neither). The library's own log lines go to descriptor 2,
// and so does whatever the program prints: written into an arena file,
// they land on its superblock.
TEST_F(Paths, StoreKeepsNoDescriptorOfTheStandardStreams) {
    const std::string existing = dir_.file("existing"), created = dir_.file("created"),
                      added = dir_.file("added"), stats = dir_.file("stats");
    ASSERT_EQ(::mkdir(stats.c_str(), 0700), 0);
    ASSERT_EQ(open_devices({{existing, dev_bytes_for(8)}}), 0) << daxkv_errmsg();
    store_.reset();
    std::string msg = child_check([&]() -> std::string {
        // Under TSan this runs in the test program itself (no forks): its
        // standard streams and environment are put back when the check ends.
        struct Surroundings {
            int saved[3];
            const char *old_dir = ::getenv("DAXKV_STATS_DIR");
            std::string stats_dir = old_dir ? old_dir : "";
            explicit Surroundings(const std::string &dir) {
                ::setenv("DAXKV_STATS_DIR", dir.c_str(), 1);
                for (int fd = 0; fd <= 2; ++fd) {
                    saved[fd] = ::fcntl(fd, F_DUPFD_CLOEXEC, 3);
                    ::close(fd);
                }
            }
            ~Surroundings() {
                for (int fd = 0; fd <= 2; ++fd)
                    if (saved[fd] >= 0) {
                        ::dup2(saved[fd], fd);
                        ::close(saved[fd]);
                    }
                if (old_dir)
                    ::setenv("DAXKV_STATS_DIR", stats_dir.c_str(), 1);
                else
                    ::unsetenv("DAXKV_STATS_DIR");
            }
        } surroundings(stats);
        ConfigPtr cfg = config({{"hotplug", "1"}, {"stats_interval", "1000"}},
                               {{existing, 0}, {created, dev_bytes_for(8)}});
        daxkv_store *s = nullptr;
        if (int rc = daxkv_open(&s, cfg.get()))
            return "daxkv_open: " + std::to_string(rc) + ": " + daxkv_errmsg();
        std::string held;
        if (int rc = daxkv_device_add(s, added.c_str(), dev_bytes_for(8)))
            held = "daxkv_device_add: " + std::to_string(rc) + ": " + daxkv_errmsg();
        if (daxkv_event_fd(s) < 0)
            held += std::string("daxkv_event_fd: ") + daxkv_errmsg() + "; ";
        for (int fd = 0; fd <= 2; ++fd) {
            char target[4096] = {};
            const std::string link = "/proc/self/fd/" + std::to_string(fd);
            if (::readlink(link.c_str(), target, sizeof target - 1) > 0)
                held += "descriptor " + std::to_string(fd) + " is " + target + "; ";
        }
        daxkv_close(s);
        return held;
    });
    EXPECT_EQ(msg, "");
}

TEST_F(Paths, AMemberAddedAgainUnderAnotherNameIsRefusedAndChangesNothing) {
    std::string a = dir_.file("a"), b = dir_.file("b");
    ::mkdir(dir_.file("sub").c_str(), 0700);
    std::string hard = dir_.file("hard"), soft = dir_.file("soft");
    std::string dotdot = dir_.file("sub") + "/../a";
    ASSERT_EQ(open_devices({{a, dev_bytes_for(8)}, {b, dev_bytes_for(8)}}, {{"hotplug", "1"}}), 0)
        << daxkv_errmsg();
    for (uint32_t i = 0; i < 10; ++i)
        ASSERT_EQ(put_key(store_.get(), i, 1), 0);
    ASSERT_EQ(::link(a.c_str(), hard.c_str()), 0);
    ASSERT_EQ(::symlink(a.c_str(), soft.c_str()), 0);
    const int fd = ::open(a.c_str(), O_RDONLY);
    ASSERT_GE(fd, 0);
    const std::string viafd = "/proc/self/fd/" + std::to_string(fd);
    for (const std::string &alias : {hard, soft, dotdot, viafd}) {
        const int rc = daxkv_device_add(store_.get(), alias.c_str(), dev_bytes_for(8));
        EXPECT_EQ(rc, -EBUSY) << alias << ": " << daxkv_errmsg();
        EXPECT_EQ(pool_status(store_.get())["devices"].size(), 2u) << alias;
        for (uint32_t i = 0; i < 10; ++i)
            EXPECT_EQ(check_key(store_.get(), i, 1), "") << alias << " key " << i;
    }
    ::close(fd);
    // A second store of this process on a member (through an alias).
    for (const std::string &alias : {a, hard, soft}) {
        ConfigPtr cfg = config({}, {{alias, 0}});
        daxkv_store *s2 = nullptr;
        EXPECT_EQ(daxkv_open(&s2, cfg.get()), -EBUSY) << alias;
        if (s2)
            daxkv_close(s2);
    }
    for (uint32_t i = 0; i < 10; ++i)
        EXPECT_EQ(check_key(store_.get(), i, 1), "") << i;
    store_.reset();
    ASSERT_EQ(open_devices({{a, 0}, {b, 0}}), 0) << daxkv_errmsg();
    for (uint32_t i = 0; i < 10; ++i)
        EXPECT_EQ(check_key(store_.get(), i, 1), "") << i;
}

} // namespace
