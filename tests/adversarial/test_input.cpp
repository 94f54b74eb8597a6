// Bad input at every public function: each call gets its documented code
// and a message that names the argument, changes nothing, and a store that
// took the bad calls still serves its entries byte for byte. The JSON
// configuration is attacked with strings that are not what they seem.
//
// Bad inputs tried here, per function (NULL handle, NULL out pointers,
// NULL or empty or overlong keys, NULL buffers with nonzero lengths, unknown
// flags, struct_size 0 and 4, counts above INT32_MAX, unknown ops and modes,
// an unpin of a stored key with no pin, and of one whose pin was dropped):
// every daxkv_* function of lib/libdaxkv.map; configuration values with
// trailing bytes, signs, spaces, hex, units in the wrong case, and a key
// with a newline; values of every kind of key (numbers, sizes, booleans,
// choices) with a newline, an escape sequence and bytes 0x01 and 0xff, which
// the message must show as \xNN; LMCache JSON with "\u0000" in a device
// path, a key and a value, also nested in objects and lists the core passes
// over, a key given twice, a non-object, nesting 20 deep, 1 MiB + 1 bytes,
// numbers where strings go and back, max_dax_size_gb of 0, -1, 1e-300, NaN
// text and 2 PiB.
#include <climits>

#include "common.hpp"

using namespace adv;

namespace {

class Input : public ::testing::Test {
protected:
    void SetUp() override {
        path_ = dir_.file("arena");
        ConfigPtr cfg = config({{"hotplug", "1"}}, {{path_, dev_bytes_for(8)}});
        daxkv_store *s = nullptr;
        ASSERT_EQ(daxkv_open(&s, cfg.get()), 0) << daxkv_errmsg();
        store_.reset(s);
        for (uint32_t i = 0; i < 4; ++i)
            ASSERT_EQ(put_key(s, i, 1), 0);
    }
    // The entries are as they were: nothing a bad call did changed them.
    void TearDown() override {
        if (!store_)
            return;
        for (uint32_t i = 0; i < 4; ++i)
            EXPECT_EQ(check_key(store_.get(), i, 1), "");
        EXPECT_EQ(get_stats(store_.get()).entries, 4u);
    }
    // code, and the message names `what`.
    void expect(int got, int want, const char *what, const char *call) {
        EXPECT_EQ(got, want) << call;
        if (got == want && want < 0 && what) {
            EXPECT_TRUE(contains_text(daxkv_errmsg(), what))
                << call << ": message '" << daxkv_errmsg() << "' does not name " << what;
        }
    }
    daxkv_store *s() const { return store_.get(); }
    TempDir dir_;
    std::string path_;
    StorePtr store_;
};

#define EXPECT_CODE(call, want, what) expect((call), (want), (what), #call)

TEST_F(Input, NullHandlesEverywhere) {
    char b[8] = {};
    size_t n = 0;
    daxkv_item it{"k", 1, b, sizeof b, nullptr, 0, 0};
    daxkv_lease *l = nullptr;
    daxkv_reservation *r = nullptr;
    struct daxkv_stats st;
    st.struct_size = sizeof st;
    daxkv_hotplug_result hr = result();
    daxkv_completion c;
    EXPECT_CODE(daxkv_put(nullptr, "k", 1, b, 1, 0), -EINVAL, "store");
    EXPECT_CODE(daxkv_get(nullptr, "k", 1, b, 1, &n), -EINVAL, "store");
    EXPECT_CODE(daxkv_contains(nullptr, "k", 1), -EINVAL, "store");
    EXPECT_CODE(daxkv_remove(nullptr, "k", 1, 0), -EINVAL, "store");
    EXPECT_CODE(daxkv_pin(nullptr, "k", 1), -EINVAL, "store");
    EXPECT_CODE(daxkv_unpin(nullptr, "k", 1), -EINVAL, "store");
    EXPECT_CODE(daxkv_put_batch(nullptr, &it, 1, 0), -EINVAL, "store");
    EXPECT_CODE(daxkv_get_batch(nullptr, &it, 1, 0), -EINVAL, "store");
    EXPECT_CODE(daxkv_contains_batch(nullptr, &it, 1, 0), -EINVAL, "store");
    EXPECT_CODE(daxkv_remove_batch(nullptr, &it, 1, 0), -EINVAL, "store");
    EXPECT_CODE(daxkv_unpin_batch(nullptr, &it, 1, 0), -EINVAL, "store");
    EXPECT_CODE(daxkv_lease_acquire(nullptr, "k", 1, &l), -EINVAL, "store");
    EXPECT_EQ(l, nullptr);
    EXPECT_CODE(daxkv_reserve(nullptr, "k", 1, 1, &r), -EINVAL, "store");
    EXPECT_EQ(r, nullptr);
    EXPECT_CODE(daxkv_stats(nullptr, &st), -EINVAL, "store");
    EXPECT_CODE(daxkv_status_json(nullptr, b, sizeof b, &n), -EINVAL, "store");
    EXPECT_CODE(daxkv_stats_prometheus(nullptr, b, sizeof b, &n), -EINVAL, "store");
    EXPECT_CODE(daxkv_submit(nullptr, DAXKV_OP_GET, &it, 1, 0, 0), -EINVAL, "store");
    EXPECT_CODE(daxkv_event_fd(nullptr), -EINVAL, "store");
    EXPECT_CODE(daxkv_poll(nullptr, &c, 1), -EINVAL, "store");
    EXPECT_CODE(daxkv_shutdown(nullptr), -EINVAL, "store");
    EXPECT_CODE(daxkv_device_add(nullptr, path_.c_str(), 0), -EINVAL, "store");
    EXPECT_CODE(daxkv_device_remove(nullptr, path_.c_str(), DAXKV_MIGRATE, 0, &hr), -EINVAL,
                "store");
    EXPECT_CODE(daxkv_device_resize(nullptr, path_.c_str(), 1 << 20, DAXKV_MIGRATE, 0, &hr),
                -EINVAL, "store");
    EXPECT_CODE(daxkv_device_wait_drained(nullptr, path_.c_str(), 0), -EINVAL, "store");
    EXPECT_CODE(daxkv_pool_status_json(nullptr, b, sizeof b, &n), -EINVAL, "store");
    EXPECT_CODE(daxkv_cuda_register(nullptr, 0), -EINVAL, "store");
    EXPECT_CODE(daxkv_cuda_unregister(nullptr), -EINVAL, "store");
    EXPECT_CODE(daxkv_get_batch_cuda(nullptr, &it, 1, nullptr, 0), -EINVAL, "store");
    EXPECT_CODE(daxkv_put_batch_cuda(nullptr, &it, 1, nullptr, 0), -EINVAL, "store");
    // Functions that accept NULL, or answer it without a code.
    daxkv_close(nullptr);
    daxkv_config_free(nullptr);
    daxkv_lease_release(nullptr);
    daxkv_abort(nullptr);
    EXPECT_EQ(daxkv_lease_data(nullptr), nullptr);
    EXPECT_EQ(daxkv_lease_size(nullptr), 0u);
    size_t ml = 99;
    EXPECT_EQ(daxkv_lease_meta(nullptr, &ml), nullptr);
    EXPECT_EQ(ml, 0u);
    EXPECT_EQ(daxkv_lease_meta(nullptr, nullptr), nullptr);
    EXPECT_EQ(daxkv_reservation_data(nullptr), nullptr);
    EXPECT_EQ(daxkv_reservation_size(nullptr), 0u);
    EXPECT_CODE(daxkv_reservation_set_meta(nullptr, b, 1), -EINVAL, "reservation");
    EXPECT_CODE(daxkv_commit(nullptr), -EINVAL, "reservation");
    EXPECT_NE(daxkv_errmsg(), nullptr);
    EXPECT_NE(daxkv_strerror(INT_MIN), nullptr);
    EXPECT_NE(daxkv_strerror(12345), nullptr);
    EXPECT_NE(daxkv_version_string(), nullptr);
    daxkv_set_log_fn(nullptr, INT_MAX, nullptr);
}

TEST_F(Input, KeysBuffersFlagsAndCounts) {
    char b[8] = {};
    size_t n = 0;
    std::string big(DAXKV_KEY_MAX + 1, 'k');
    EXPECT_CODE(daxkv_put(s(), nullptr, 1, b, 1, 0), -EINVAL, "key");
    EXPECT_CODE(daxkv_put(s(), "k", 0, b, 1, 0), -EINVAL, "key length");
    EXPECT_CODE(daxkv_put(s(), big.data(), big.size(), b, 1, 0), -EINVAL, "key length");
    EXPECT_CODE(daxkv_put(s(), "k", 1, nullptr, 1, 0), -EINVAL, "NULL");
    EXPECT_CODE(daxkv_put(s(), "k", 1, b, 1, 0x80), -EINVAL, "flags");
    EXPECT_CODE(daxkv_get(s(), "k", 1, nullptr, 8, &n), -EINVAL, "NULL");
    EXPECT_CODE(daxkv_get(s(), nullptr, 1, b, 8, &n), -EINVAL, "key");
    EXPECT_CODE(daxkv_contains(s(), "k", 0), -EINVAL, "key length");
    EXPECT_CODE(daxkv_remove(s(), "k", 1, 0x80), -EINVAL, "flags");
    EXPECT_CODE(daxkv_pin(s(), big.data(), big.size()), -EINVAL, "key length");
    EXPECT_CODE(daxkv_unpin(s(), nullptr, 0), -EINVAL, "key");
    daxkv_item it{"k", 1, b, sizeof b, nullptr, 0, 0};
    EXPECT_CODE(daxkv_put_batch(s(), nullptr, 1, 0), -EINVAL, "items");
    EXPECT_CODE(daxkv_put_batch(s(), &it, size_t(INT32_MAX) + 1, 0), -EINVAL, "too large");
    EXPECT_CODE(daxkv_put_batch(s(), &it, 1, DAXKV_PIN), -EINVAL, "flags");
    EXPECT_CODE(daxkv_get_batch(s(), &it, 1, DAXKV_REPLACE), -EINVAL, "flags");
    EXPECT_CODE(daxkv_contains_batch(s(), &it, 1, DAXKV_REPLACE), -EINVAL, "flags");
    EXPECT_CODE(daxkv_remove_batch(s(), &it, 1, DAXKV_PREFIX), -EINVAL, "flags");
    EXPECT_CODE(daxkv_unpin_batch(s(), &it, 1, DAXKV_FORCE), -EINVAL, "flags");
    EXPECT_EQ(daxkv_put_batch(s(), nullptr, 0, 0), 0); // empty is fine
    daxkv_item bad[3] = {{nullptr, 1, b, 1, nullptr, 0, 0},
                         {"k", 1, nullptr, 4, nullptr, 0, 0},
                         {"k", 1, b, 1, nullptr, 5, 0}};
    EXPECT_EQ(daxkv_put_batch(s(), bad, 3, 0), 0);
    EXPECT_EQ(bad[0].status, -EINVAL);
    EXPECT_EQ(bad[1].status, -EINVAL);
    EXPECT_EQ(bad[2].status, -EINVAL);
    daxkv_lease *l = reinterpret_cast<daxkv_lease *>(&it);
    EXPECT_CODE(daxkv_lease_acquire(s(), "k", 1, nullptr), -EINVAL, "out");
    EXPECT_CODE(daxkv_lease_acquire(s(), nullptr, 1, &l), -EINVAL, "key");
    EXPECT_EQ(l, nullptr);
    daxkv_reservation *r = nullptr;
    EXPECT_CODE(daxkv_reserve(s(), "k", 1, 1, nullptr), -EINVAL, "out");
    EXPECT_CODE(daxkv_reserve(s(), "k", 0, 1, &r), -EINVAL, "key length");
    ASSERT_EQ(daxkv_reserve(s(), "r", 1, 8, &r), 0);
    EXPECT_CODE(daxkv_reservation_set_meta(r, nullptr, 3), -EINVAL, "NULL");
    EXPECT_CODE(daxkv_reservation_set_meta(r, b, 1 << 20), -E2BIG, "meta_bytes");
    daxkv_abort(r);
    struct daxkv_stats st;
    st.struct_size = 4;
    EXPECT_CODE(daxkv_stats(s(), &st), -EINVAL, "struct_size");
    EXPECT_CODE(daxkv_stats(s(), nullptr), -EINVAL, "out");
    EXPECT_CODE(daxkv_status_json(s(), nullptr, 5, &n), -EINVAL, "buf");
    EXPECT_CODE(daxkv_stats_prometheus(s(), nullptr, 5, &n), -EINVAL, "buf");
    EXPECT_CODE(daxkv_pool_status_json(s(), nullptr, 5, &n), -EINVAL, "buf");
    EXPECT_CODE(daxkv_submit(s(), 0, &it, 1, 0, 0), -EINVAL, "op");
    EXPECT_CODE(daxkv_submit(s(), 99, &it, 1, 0, 0), -EINVAL, "op");
    EXPECT_CODE(daxkv_submit(s(), DAXKV_OP_GET, nullptr, 1, 0, 0), -EINVAL, "items");
    EXPECT_CODE(daxkv_submit(s(), DAXKV_OP_GET, &it, 1, DAXKV_FORCE, 0), -EINVAL, "flags");
    EXPECT_CODE(daxkv_poll(s(), nullptr, 1), -EINVAL, "out");
    daxkv_completion c;
    EXPECT_CODE(daxkv_poll(s(), &c, 0), -EINVAL, "cap");
    daxkv_device_info info;
    info.struct_size = 4;
    EXPECT_CODE(daxkv_probe(path_.c_str(), &info), -EINVAL, "struct_size");
    EXPECT_CODE(daxkv_probe(nullptr, &info), -EINVAL, "path");
    EXPECT_CODE(daxkv_probe(path_.c_str(), nullptr), -EINVAL, "out");
    EXPECT_CODE(daxkv_list_devices(nullptr, 0, nullptr), -EINVAL, "count");
    EXPECT_CODE(daxkv_list_devices(nullptr, 3, &n), -EINVAL, "out");
    EXPECT_CODE(daxkv_list_devices(&info, 1, &n), -EINVAL, "struct_size");
    void *d[1] = {b};
    const void *sp[1] = {b};
    size_t ln[1] = {4};
    EXPECT_CODE(daxkv_memcpy_batch(d, sp, ln, 1, 1), -EINVAL, "flags");
    EXPECT_CODE(daxkv_memcpy_batch(nullptr, sp, ln, 1, 0), -EINVAL, "dst");
    EXPECT_CODE(daxkv_cuda_register(s(), 0x80), -EINVAL, "flags");
    daxkv_hotplug_result hr = result();
    hr.struct_size = 0;
    EXPECT_CODE(daxkv_device_remove(s(), path_.c_str(), DAXKV_MIGRATE, 0, &hr), -EINVAL,
                "struct_size");
    EXPECT_CODE(daxkv_device_remove(s(), path_.c_str(), 0, 0, nullptr), -EINVAL, "mode");
    EXPECT_CODE(daxkv_device_remove(s(), path_.c_str(), DAXKV_MIGRATE, 0x80, nullptr), -EINVAL,
                "flags");
    EXPECT_CODE(daxkv_device_resize(s(), path_.c_str(), 1 << 20, DAXKV_DRAIN, 0, nullptr),
                -EINVAL, "mode");
    EXPECT_CODE(daxkv_device_add(s(), "", 0), -EINVAL, "empty");
    EXPECT_CODE(daxkv_device_add(s(), nullptr, 0), -EINVAL, "NULL");
    EXPECT_CODE(daxkv_device_wait_drained(s(), path_.c_str(), 0), -EINVAL, "not draining");
    EXPECT_EQ(pool_status(s())["devices"].size(), 1u);
}

// Keys in the wrong state rather than bad arguments: the code each page's
// ERRORS names for that state (daxkv_put(3): -ENOENT for an unpin of a key
// that is stored but not pinned, not -EINVAL), also for the pin dropped one
// too many times.
TEST_F(Input, UnpinOfAKeyWithoutAPinIsENOENT) {
    const std::string k = key_of(0);
    EXPECT_CODE(daxkv_unpin(s(), k.data(), k.size()), -ENOENT, "not pinned");
    ASSERT_EQ(daxkv_pin(s(), k.data(), k.size()), 0) << daxkv_errmsg();
    EXPECT_EQ(daxkv_unpin(s(), k.data(), k.size()), 0) << daxkv_errmsg();
    EXPECT_CODE(daxkv_unpin(s(), k.data(), k.size()), -ENOENT, "not pinned");
    EXPECT_CODE(daxkv_unpin(s(), "absent", 6), -ENOENT, "not found");
    EXPECT_EQ(get_stats(s()).entries_pinned, 0u);
}

TEST_F(Input, ConfigurationValues) {
    ConfigPtr cfg = config({}, {});
    struct Case {
        const char *key, *value, *what;
    };
    const Case cases[] = {
        {"slot_bytes", "4096x", "unknown unit"},  {"slot_bytes", "-4096", "not a non-negative"},
        {"slot_bytes", " 4096", "not a non-negative"}, {"slot_bytes", "4096 ", "unknown unit"},
        {"slot_bytes", "0x1000", "unknown unit"}, {"slot_bytes", "4kib", "unknown unit"},
        {"slot_bytes", "", "not a non-negative"}, {"slot_bytes", "0", "greater than 0"},
        {"workers", "0", "workers"},              {"workers", "257", "workers"},
        {"eviction", "LRU", "eviction"},          {"hotplug", "2", "hotplug"},
        {"durability", "power ", "durability"},   {"meta_bytes", "65537", "meta_bytes"},
    };
    for (const Case &c : cases)
        EXPECT_CODE(daxkv_config_set(cfg.get(), c.key, c.value), -EINVAL, c.what);
    // A key with a newline is shown escaped, not as two lines.
    EXPECT_CODE(daxkv_config_set(cfg.get(), "slot\nbytes", "1"), -EINVAL, "slot\\x0abytes");
    // So is a value, whatever kind of key takes it: the message never
    // carries a raw control byte (a forged log line, a terminal escape).
    for (const char *key : {"slot_bytes", "workers", "meta_bytes", "grow_limit", "stats_interval",
                            "hotplug", "create", "cuda_staging_bytes", "eviction"}) {
        for (const char *value : {"5\n", "4096\x1b[31m", "\x01", "1\xff"}) {
            EXPECT_EQ(daxkv_config_set(cfg.get(), key, value), -EINVAL) << key;
            const std::string msg = daxkv_errmsg();
            for (unsigned char ch : msg)
                EXPECT_TRUE(ch >= 0x20 && ch < 0x7f) << key << ": " << msg;
        }
    }
    EXPECT_CODE(daxkv_config_set(cfg.get(), nullptr, "1"), -EINVAL, "key");
    EXPECT_CODE(daxkv_config_set(nullptr, "slot_bytes", "1"), -EINVAL, "config");
    EXPECT_CODE(daxkv_config_add_device(cfg.get(), nullptr, 0), -EINVAL, "path");
    EXPECT_CODE(daxkv_config_add_device(cfg.get(), "", 0), -EINVAL, "empty");
    EXPECT_CODE(daxkv_config_new(nullptr), -EINVAL, "out");
    daxkv_store *st = reinterpret_cast<daxkv_store *>(this);
    EXPECT_CODE(daxkv_open(&st, nullptr), -EINVAL, "config");
    EXPECT_EQ(st, nullptr);
    EXPECT_CODE(daxkv_open(nullptr, cfg.get()), -EINVAL, "out");
}

TEST_F(Input, JsonStringsThatAreNotWhatTheySeem) {
    const std::string p = dir_.file("json");
    struct Case {
        std::string json;
        const char *what;
    };
    const std::string base = "\"slot_bytes\": 4096, \"max_dax_size_gb\": 0.01, ";
    const Case cases[] = {
        // A path that a C string would cut at the NUL: /tmp/... instead of
        // what follows it.
        {"{" + base + "\"device_path\": \"" + p + "\\u0000/../../dev/evil\"}", "NUL"},
        {"{\"slot_bytes\": 4096, \"devices\": [{\"device_path\": \"" + p +
             "\\u0000x\", \"max_dax_size_gb\": 0.01}]}",
         "NUL"},
        {"{" + base + "\"device_path\": \"" + p + "\", \"eviction\": \"lru\\u0000none\"}", "NUL"},
        {"{" + base + "\"device_path\": \"" + p + "\", \"slot_bytes\\u0000x\": 1}", "NUL"},
        // Inside objects and lists the core passes over (LMCache's options):
        // refused all the same.
        {"{" + base + "\"device_path\": \"" + p + "\", \"eviction\": {\"policy\\u0000\": \"lru\"}}",
         "NUL"},
        {"{" + base + "\"device_path\": \"" + p + "\", \"eviction\": {\"policy\": \"l\\u0000ru\"}}",
         "NUL"},
        {"{\"slot_bytes\": 4096, \"devices\": [{\"device_path\": \"" + p +
             "\", \"max_dax_size_gb\": 0.01, \"note\\u0000\": \"x\"}]}",
         "NUL"},
        {"{" + base + "\"device_path\": \"" + p + "\", \"serde\": [\"a\", [\"b\\u0000\"]]}", "NUL"},
        // One key, two values: which counts is not for the parser to decide.
        {"{" + base + "\"device_path\": \"" + p + "\", \"slot_bytes\": 8192}", "twice"},
        {"{\"slot_bytes\": 4096, \"devices\": [{\"device_path\": \"" + p +
             "\", \"device_path\": \"/tmp/other\", \"max_dax_size_gb\": 0.01}]}",
         "twice"},
        {"[1, 2]", "object"},
        {"{" + base + "\"device_path\": 42}", "device_path"},
        {"{\"slot_bytes\": \"4096\", \"device_path\": \"" + p + "\", \"max_dax_size_gb\": 1}",
         "slot_bytes"},
        {"{\"slot_bytes\": 4096, \"device_path\": \"" + p + "\", \"max_dax_size_gb\": 0}",
         "max_dax_size_gb"},
        {"{\"slot_bytes\": 4096, \"device_path\": \"" + p + "\", \"max_dax_size_gb\": -1}",
         "max_dax_size_gb"},
        {"{\"slot_bytes\": 4096, \"device_path\": \"" + p + "\", \"max_dax_size_gb\": 1e-300}",
         "one slot"},
        {"{\"slot_bytes\": 4096, \"device_path\": \"" + p + "\", \"max_dax_size_gb\": \"NaN\"}",
         "max_dax_size_gb"},
        {"{\"slot_bytes\": 4096, \"device_path\": \"" + p + "\", \"max_dax_size_gb\": 2097152}",
         "max_dax_size_gb"},
        {std::string(20, '[') + std::string(20, ']'), "deeper"},
        {"{\"x\": \"" + std::string(1 << 20, 'a') + "\"}", "limit"},
        {"{\"slot_bytes\": 4096, \"device_path\": \"\xff\xfe\", \"max_dax_size_gb\": 1}",
         "malformed"},
    };
    for (const Case &c : cases) {
        daxkv_config *cfg = reinterpret_cast<daxkv_config *>(this);
        EXPECT_CODE(daxkv_config_from_json(&cfg, c.json.c_str()), -EINVAL, c.what);
        EXPECT_EQ(cfg, nullptr) << c.json.substr(0, 200);
    }
    daxkv_config *cfg = nullptr;
    EXPECT_CODE(daxkv_config_from_json(&cfg, nullptr), -EINVAL, "json");
    EXPECT_CODE(daxkv_config_from_json(nullptr, "{}"), -EINVAL, "out");
    EXPECT_TRUE(list_dir(dir_.path()) == std::vector<std::string>{"arena"})
        << "a refused configuration created a file";
}

} // namespace
