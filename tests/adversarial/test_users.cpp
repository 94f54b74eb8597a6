// Other users: a process of another user (nobody) against arenas and
// directories that are not its own, and against a store another user holds
// open. The calls fail with -EACCES or -EBUSY naming the cause, create
// nothing, and change nothing. Runs as root (it switches a child to nobody);
// skipped otherwise.
//
// Bad inputs tried here: opening and adding another user's 0600 arena, an
// arena in a directory the user may not write, an arena another user holds
// open (both ways round).
#include <grp.h>
#include <pwd.h>

#include "common.hpp"

using namespace adv;

namespace {

class Users : public ::testing::Test {
protected:
    void SetUp() override {
        if (::geteuid() != 0)
            GTEST_SKIP() << "needs root to act as another user";
        if (!kForks)
            GTEST_SKIP() << "needs a process of its own to become another user";
        struct passwd *pw = ::getpwnam("nobody");
        if (!pw)
            GTEST_SKIP() << "no user nobody";
        uid_ = pw->pw_uid;
        gid_ = pw->pw_gid;
        // The test directory (mkdtemp: 0700) must be reachable by nobody.
        std::string real = dir_.real_file("");
        real.pop_back();
        ASSERT_EQ(::chmod(real.c_str(), 0755), 0);
        mine_ = dir_.file("nobody");
        ASSERT_EQ(::mkdir(mine_.c_str(), 0755), 0);
        ASSERT_EQ(::chown(mine_.c_str(), uid_, gid_), 0);
    }
    // Runs fn as nobody in a child.
    std::string as_nobody(const std::function<std::string()> &fn) {
        return child_check([&]() -> std::string {
            if (::setgroups(0, nullptr) != 0 || ::setgid(gid_) != 0 || ::setuid(uid_) != 0)
                return std::string("cannot become nobody: ") + std::strerror(errno);
            return fn();
        });
    }
    int open_rc(const std::string &path, uint64_t bytes, daxkv_store **keep = nullptr) {
        ConfigPtr cfg = config({{"hotplug", "1"}}, {{path, bytes}});
        daxkv_store *s = nullptr;
        int rc = daxkv_open(&s, cfg.get());
        if (keep)
            *keep = s;
        else
            daxkv_close(s);
        return rc;
    }
    TempDir dir_;
    std::string mine_;
    uid_t uid_ = 0;
    gid_t gid_ = 0;
};

TEST_F(Users, AnotherUsersArenaIsEaccesAndUntouched) {
    std::string a = dir_.file("root.arena");
    ASSERT_EQ(open_rc(a, dev_bytes_for(8)), 0) << daxkv_errmsg();
    const uint64_t h = file_hash(a);
    std::string msg = as_nobody([&]() -> std::string {
        std::string out;
        int rc = open_rc(a, dev_bytes_for(8));
        if (rc != -EACCES)
            out += "open returned " + std::to_string(rc) + "; ";
        else if (!contains_text(daxkv_errmsg(), a))
            out += std::string("the message does not name the arena: ") + daxkv_errmsg() + "; ";
        // The same through device_add, into a store of its own.
        daxkv_store *s = nullptr;
        std::string own = mine_ + "/own.arena";
        if (open_rc(own, dev_bytes_for(8), &s) != 0)
            return out + std::string("own store: ") + daxkv_errmsg();
        rc = daxkv_device_add(s, a.c_str(), dev_bytes_for(8));
        if (rc != -EACCES)
            out += "device_add returned " + std::to_string(rc) + "; ";
        if (contains_text(daxkv_errmsg(), a))
            out += "device_add's message names the path; ";
        daxkv_close(s);
        return out;
    });
    EXPECT_EQ(msg, "");
    EXPECT_EQ(file_hash(a), h);
}

TEST_F(Users, ADirectoryTheUserMayNotWriteGetsNothingCreated) {
    std::string msg = as_nobody([&]() -> std::string {
        std::string b = dir_.file("not-mine.arena");
        int rc = open_rc(b, dev_bytes_for(8));
        if (rc != -EACCES)
            return "open returned " + std::to_string(rc) + ": " + daxkv_errmsg();
        return "";
    });
    EXPECT_EQ(msg, "");
    EXPECT_FALSE(file_exists(dir_.file("not-mine.arena")));
}

TEST_F(Users, AnArenaAnotherUserHoldsOpenIsEbusyNamingThePid) {
    std::string c = mine_ + "/shared.arena";
    // Made by nobody, in its directory.
    ASSERT_EQ(as_nobody([&]() -> std::string {
                  return open_rc(c, dev_bytes_for(8)) == 0 ? "" : daxkv_errmsg();
              }),
              "");
    daxkv_store *held = nullptr;
    ASSERT_EQ(open_rc(c, dev_bytes_for(8), &held), 0) << daxkv_errmsg();
    StorePtr keep(held);
    const std::string pid = "pid " + std::to_string(::getpid());
    std::string msg = as_nobody([&]() -> std::string {
        int rc = open_rc(c, dev_bytes_for(8));
        if (rc != -EBUSY)
            return "open returned " + std::to_string(rc) + ": " + daxkv_errmsg();
        if (!contains_text(daxkv_errmsg(), pid))
            return std::string("the message does not name the holder: ") + daxkv_errmsg();
        return "";
    });
    EXPECT_EQ(msg, "");
    EXPECT_EQ(put_key(held, 1, 1), 0);
    EXPECT_EQ(check_key(held, 1, 1), "");
}

} // namespace
