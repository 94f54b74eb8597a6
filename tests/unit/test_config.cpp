// Configuration: daxkv_config_* through the C API, Config::from_json (the
// LMCache dax --l2-adapter JSON) and the size/integer/boolean parsers.
//
// Bad inputs tried here, each with its expected code:
//   NULL out / config / key / value / path / json pointers       -> -EINVAL
//   unknown configuration keys (set and JSON)                    -> -EINVAL, key named
//   slot_bytes "0", "0MiB"                                       -> -EINVAL
//   malformed sizes: "12XB", "-5", "", "18446744073709551616",
//     "99999999999999999999GiB", "16777216TiB", " 4096", "4096 ",
//     "4 KiB", "0x1000", "4.5MiB", "MiB", "+4096", "4KiBB"       -> -EINVAL, config unchanged
//   bad enum values (eviction, durability, verify, on_mismatch,
//     nt_stores, sigbus, numa), bad booleans, workers 0/257/"abc"/"-1",
//     meta_bytes above 64 KiB, grow_limit above 64 TiB             -> -EINVAL
//   add_device: empty path, 5000-byte path, duplicate path       -> -EINVAL
//   add_device: a 65th device (also from JSON)                   -> -ENOSPC
//   JSON: truncated documents, non-objects, 100000 nested '[' and
//     '{', a 2 MiB string, a 900 KiB device path, wrong types for
//     slot_bytes / max_dax_size_gb / devices / worker counts,
//     devices empty without hotplug, neither devices nor device_path
//     (with hotplug too), hotplug_enabled 1.0 / "false" / [], an
//     arena smaller than one slot, type other than "dax", duplicate
//     device paths, daxkv keys with bad values                   -> -EINVAL, *out NULL
#include <gtest/gtest.h>

#include <cerrno>
#include <cstdlib>
#include <string>
#include <utility>
#include <vector>

#include <unistd.h>

#include "capi/handles.hpp"
#include "helpers.hpp"
#include "internal/error.hpp"
#include "internal/util.hpp"
#include "store/config.hpp"

using namespace daxkv_test;

namespace {

constexpr uint64_t KiB = 1024, MiB = 1024 * KiB, GiB = 1024 * MiB;

ConfigPtr new_config() {
    daxkv_config *c = nullptr;
    EXPECT_EQ(daxkv_config_new(&c), 0);
    return ConfigPtr(c);
}

// daxkv_config_from_json, with *out checked to be NULL on failure.
int from_json(const std::string &text, ConfigPtr *out = nullptr) {
    daxkv_config *c = reinterpret_cast<daxkv_config *>(0x1); // must be overwritten
    int rc = daxkv_config_from_json(&c, text.c_str());
    if (rc != 0) {
        EXPECT_EQ(c, nullptr) << "failed from_json left *out set";
        return rc;
    }
    EXPECT_NE(c, nullptr);
    if (out)
        out->reset(c);
    else
        daxkv_config_free(c);
    return rc;
}

const std::string kDev = R"("device_path":"/tmp/daxkv-x","max_dax_size_gb":1)";

} // namespace

// ---------------------------------------------------------------------------
// daxkv_config_new / set / add_device

TEST(ConfigApi, NewRejectsNullOutAndFreeAcceptsNull) {
    EXPECT_EQ(daxkv_config_new(nullptr), -EINVAL);
    EXPECT_TRUE(contains_text(daxkv_errmsg(), "NULL"));
    daxkv_config_free(nullptr);
    daxkv_config *c = nullptr;
    ASSERT_EQ(daxkv_config_new(&c), 0);
    EXPECT_NE(c, nullptr);
    daxkv_config_free(c);
}

TEST(ConfigApi, SetRejectsNullArguments) {
    ConfigPtr c = new_config();
    EXPECT_EQ(daxkv_config_set(nullptr, "slot_bytes", "4096"), -EINVAL);
    EXPECT_TRUE(contains_text(daxkv_errmsg(), "config is NULL"));
    EXPECT_EQ(daxkv_config_set(c.get(), nullptr, "4096"), -EINVAL);
    EXPECT_TRUE(contains_text(daxkv_errmsg(), "key is NULL"));
    EXPECT_EQ(daxkv_config_set(c.get(), "slot_bytes", nullptr), -EINVAL);
    EXPECT_TRUE(contains_text(daxkv_errmsg(), "value is NULL"));
    EXPECT_EQ(c->cfg.slot_bytes, 0u);
}

TEST(ConfigApi, UnknownKeyIsRejectedAndNamed) {
    ConfigPtr c = new_config();
    for (const char *k : {"slot_byte", "SLOT_BYTES", "", "device", "slot_bytes "}) {
        EXPECT_EQ(daxkv_config_set(c.get(), k, "4096"), -EINVAL) << "key '" << k << "'";
        EXPECT_TRUE(contains_text(daxkv_errmsg(), std::string("'") + k + "'")) << daxkv_errmsg();
    }
}

TEST(ConfigApi, BadValueIsRejectedAndNamed) {
    ConfigPtr c = new_config();
    EXPECT_EQ(daxkv_config_set(c.get(), "eviction", "fifo"), -EINVAL);
    EXPECT_TRUE(contains_text(daxkv_errmsg(), "eviction")) << daxkv_errmsg();
    EXPECT_TRUE(contains_text(daxkv_errmsg(), "fifo")) << daxkv_errmsg();
    EXPECT_EQ(daxkv_config_set(c.get(), "slot_bytes", "12XB"), -EINVAL);
    EXPECT_TRUE(contains_text(daxkv_errmsg(), "slot_bytes")) << daxkv_errmsg();
    EXPECT_TRUE(contains_text(daxkv_errmsg(), "12XB")) << daxkv_errmsg();
}

TEST(ConfigApi, SlotBytesZeroIsRejected) {
    ConfigPtr c = new_config();
    EXPECT_EQ(daxkv_config_set(c.get(), "slot_bytes", "0"), -EINVAL);
    EXPECT_EQ(daxkv_config_set(c.get(), "slot_bytes", "0MiB"), -EINVAL);
    EXPECT_EQ(c->cfg.slot_bytes, 0u);
}

TEST(ConfigApi, MalformedSizesAreRejectedAndLeaveTheConfigUnchanged) {
    ConfigPtr c = new_config();
    ASSERT_EQ(daxkv_config_set(c.get(), "slot_bytes", "8192"), 0);
    const std::vector<std::string> bad = {
        "12XB", "-5", "", "18446744073709551616", "99999999999999999999GiB", "16777216TiB",
        " 4096", "4096 ", "4 KiB", "0x1000", "4.5MiB", "MiB", "+4096", "4KiBB", "4kib", "4m"};
    for (const auto &v : bad) {
        EXPECT_EQ(daxkv_config_set(c.get(), "slot_bytes", v.c_str()), -EINVAL) << "'" << v << "'";
        EXPECT_EQ(c->cfg.slot_bytes, 8192u) << "'" << v << "' changed the config";
        EXPECT_EQ(daxkv_config_set(c.get(), "meta_bytes", v.c_str()), -EINVAL) << "'" << v << "'";
        EXPECT_EQ(c->cfg.meta_bytes, 256u);
    }
}

TEST(ConfigApi, SizesAcceptPlainBytesAndBinarySuffixes) {
    const std::vector<std::pair<std::string, uint64_t>> good = {
        {"1", 1},          {"4096", 4096},        {"512B", 512},        {"4K", 4 * KiB},
        {"4k", 4 * KiB},   {"4KB", 4 * KiB},      {"4KiB", 4 * KiB},    {"256MiB", 256 * MiB},
        {"2G", 2 * GiB},   {"2GiB", 2 * GiB},     {"1TiB", 1024 * GiB}, {"3MB", 3 * MiB},
        {"007KiB", 7 * KiB}};
    for (const auto &g : good) {
        ConfigPtr c = new_config();
        ASSERT_EQ(daxkv_config_set(c.get(), "slot_bytes", g.first.c_str()), 0)
            << g.first << ": " << daxkv_errmsg();
        EXPECT_EQ(c->cfg.slot_bytes, g.second) << g.first;
    }
}

TEST(ConfigApi, GrowLimitTakesSizesUpTo64TiB) {
    ConfigPtr c = new_config();
    for (const char *v : {"0", "4096", "64G", "1T", "64T"})
        EXPECT_EQ(daxkv_config_set(c.get(), "grow_limit", v), 0) << v;
    EXPECT_EQ(c->cfg.grow_limit, 64ull << 40);
    for (const char *v : {"65T", "1P", "-1", "", "lots", "18446744073709551616"}) {
        EXPECT_EQ(daxkv_config_set(c.get(), "grow_limit", v), -EINVAL) << v;
        EXPECT_TRUE(contains_text(daxkv_errmsg(), "grow_limit")) << daxkv_errmsg();
    }
    EXPECT_EQ(c->cfg.grow_limit, 64ull << 40); // unchanged by the refused values
}

TEST(ConfigApi, EnumeratedKeysAcceptTheirValuesOnly) {
    ConfigPtr c = new_config();
    struct Case {
        const char *key;
        std::vector<const char *> good, bad;
    };
    const std::vector<Case> cases = {
        {"eviction", {"lru", "none"}, {"LRU", "fifo", "", "lru "}},
        {"durability", {"none", "process", "power"}, {"fast", "Power", ""}},
        {"verify", {"off", "recover", "read"}, {"on", "1", "", "READ"}},
        {"on_mismatch", {"fail", "reformat"}, {"format", "overwrite", ""}},
        {"nt_stores", {"auto", "on", "off"}, {"1", "yes", ""}},
        {"sigbus", {"handle", "default"}, {"1", "ignore", "HANDLE", ""}},
        {"numa", {"auto", "off"}, {"on", "0", "node0", ""}},
        {"hotplug", {"1", "0", "true", "false", "yes", "no", "on", "off"}, {"maybe", "2", ""}},
        {"create", {"1", "0"}, {"TRUE", "-1"}},
    };
    for (const auto &cs : cases) {
        for (const char *v : cs.good)
            EXPECT_EQ(daxkv_config_set(c.get(), cs.key, v), 0) << cs.key << "=" << v;
        for (const char *v : cs.bad) {
            EXPECT_EQ(daxkv_config_set(c.get(), cs.key, v), -EINVAL) << cs.key << "=" << v;
            EXPECT_TRUE(contains_text(daxkv_errmsg(), cs.key)) << daxkv_errmsg();
        }
    }
    ASSERT_EQ(daxkv_config_set(c.get(), "eviction", "none"), 0);
    EXPECT_EQ(c->cfg.eviction, daxkv::Eviction::none);
    ASSERT_EQ(daxkv_config_set(c.get(), "verify", "read"), 0);
    EXPECT_EQ(c->cfg.verify, daxkv::arena::Verify::read);
    ASSERT_EQ(daxkv_config_set(c.get(), "on_mismatch", "reformat"), 0);
    EXPECT_TRUE(c->cfg.reformat);
    ASSERT_EQ(daxkv_config_set(c.get(), "sigbus", "handle"), 0);
    EXPECT_TRUE(c->cfg.sigbus_handle);
}

TEST(ConfigApi, WorkersMustBeInRange) {
    ConfigPtr c = new_config();
    for (const char *v : {"0", "257", "abc", "-1", "4KiB", "", "1.5"})
        EXPECT_EQ(daxkv_config_set(c.get(), "workers", v), -EINVAL) << v;
    EXPECT_EQ(daxkv_config_set(c.get(), "workers", "1"), 0);
    EXPECT_EQ(daxkv_config_set(c.get(), "workers", "256"), 0);
    EXPECT_EQ(c->cfg.workers, 256u);
    EXPECT_EQ(c->cfg.effective_workers(), 256u);
}

TEST(ConfigApi, MetaBytesIsLimited) {
    ConfigPtr c = new_config();
    EXPECT_EQ(daxkv_config_set(c.get(), "meta_bytes", "64KiB"), 0);
    EXPECT_EQ(c->cfg.meta_bytes, 64 * 1024u);
    EXPECT_EQ(daxkv_config_set(c.get(), "meta_bytes", "65537"), -EINVAL);
    EXPECT_EQ(daxkv_config_set(c.get(), "meta_bytes", "1MiB"), -EINVAL);
    EXPECT_EQ(daxkv_config_set(c.get(), "meta_bytes", "4294967552"), -EINVAL); // 2^32+256
    EXPECT_EQ(c->cfg.meta_bytes, 64 * 1024u);
    EXPECT_EQ(daxkv_config_set(c.get(), "meta_bytes", "0"), 0);
    EXPECT_EQ(c->cfg.meta_bytes, 0u);
}

TEST(ConfigApi, AddDeviceValidatesItsArguments) {
    ConfigPtr c = new_config();
    EXPECT_EQ(daxkv_config_add_device(nullptr, "/tmp/x", 0), -EINVAL);
    EXPECT_EQ(daxkv_config_add_device(c.get(), nullptr, 0), -EINVAL);
    EXPECT_EQ(daxkv_config_add_device(c.get(), "", 0), -EINVAL);
    EXPECT_EQ(daxkv_config_add_device(c.get(), std::string(5000, 'a').c_str(), 0), -EINVAL);
    EXPECT_EQ(daxkv_config_add_device(c.get(), "/tmp/a", 1 << 20), 0);
    EXPECT_EQ(daxkv_config_add_device(c.get(), "/tmp/a", 1 << 20), -EINVAL);
    EXPECT_TRUE(contains_text(daxkv_errmsg(), "/tmp/a")) << daxkv_errmsg();
    EXPECT_EQ(daxkv_config_add_device(c.get(), "mem:", 1 << 20), 0);
    EXPECT_EQ(daxkv_config_add_device(c.get(), "mem:", 1 << 20), 0); // anonymous: no identity
    ASSERT_EQ(c->cfg.devices.size(), 3u);
    EXPECT_EQ(c->cfg.devices[0].path, "/tmp/a");
    EXPECT_EQ(c->cfg.devices[0].bytes, 1u << 20);
}

// ---------------------------------------------------------------------------
// Parsers

TEST(ParseSize, ExactValuesAndLimits) {
    using daxkv::parse_size;
    EXPECT_EQ(parse_size("0", "x"), 0u);
    EXPECT_EQ(parse_size("18446744073709551615", "x"), UINT64_MAX);
    EXPECT_EQ(parse_size("16777215TiB", "x"), 16777215ull << 40);
    EXPECT_EQ(parse_size("17179869183GiB", "x"), 17179869183ull << 30);
    EXPECT_THROW(parse_size("17179869184GiB", "x"), daxkv::Error); // 2^64
    EXPECT_THROW(parse_size("18446744073709551616", "x"), daxkv::Error);
    EXPECT_THROW(parse_size("99999999999999999999GiB", "x"), daxkv::Error);
}

TEST(ParseSize, ErrorsCarryEinvalAndNameTheField) {
    for (const char *bad : {"12XB", "-5", "", "abc", "1e6", "4 G"}) {
        try {
            daxkv::parse_size(bad, "my_field");
            ADD_FAILURE() << "'" << bad << "' parsed";
        } catch (const daxkv::Error &e) {
            EXPECT_EQ(e.code(), -EINVAL) << bad;
            EXPECT_TRUE(contains_text(e.what(), "my_field")) << e.what();
            EXPECT_TRUE(contains_text(e.what(), std::string("'") + bad + "'")) << e.what();
        }
    }
}

TEST(ParseUint, RejectsSuffixesSignsAndOverflow) {
    using daxkv::parse_uint;
    EXPECT_EQ(parse_uint("0", "n"), 0u);
    EXPECT_EQ(parse_uint("42", "n"), 42u);
    EXPECT_EQ(parse_uint("18446744073709551615", "n"), UINT64_MAX);
    for (const char *bad : {"4K", "-1", "+1", "", " 1", "1 ", "18446744073709551616", "1.0"})
        EXPECT_THROW(parse_uint(bad, "n"), daxkv::Error) << bad;
}

TEST(ParseBool, AcceptsTheDocumentedSpellingsOnly) {
    using daxkv::parse_bool;
    for (const char *t : {"1", "true", "yes", "on"})
        EXPECT_TRUE(parse_bool(t, "b")) << t;
    for (const char *f : {"0", "false", "no", "off"})
        EXPECT_FALSE(parse_bool(f, "b")) << f;
    for (const char *bad : {"", "2", "TRUE", "y", "enable"})
        EXPECT_THROW(parse_bool(bad, "b"), daxkv::Error) << bad;
}

// ---------------------------------------------------------------------------
// daxkv_config_from_json

TEST(ConfigJson, RejectsNullArguments) {
    EXPECT_EQ(daxkv_config_from_json(nullptr, "{}"), -EINVAL);
    daxkv_config *c = reinterpret_cast<daxkv_config *>(0x1);
    EXPECT_EQ(daxkv_config_from_json(&c, nullptr), -EINVAL);
    EXPECT_EQ(c, nullptr);
}

TEST(ConfigJson, AcceptsLMCacheSingleDeviceForm) {
    ConfigPtr c;
    ASSERT_EQ(from_json(R"({"type":"dax","device_path":"/tmp/daxkv-dev","max_dax_size_gb":0.5,
        "slot_bytes":1048576,"num_store_workers":1,"num_lookup_workers":1,
        "num_load_workers":4,"persist_enabled":true,
        "eviction":{"eviction_policy":"LRU","trigger_watermark":0.8,"eviction_ratio":0.2}})",
                        &c),
              0)
        << daxkv_errmsg();
    EXPECT_EQ(c->cfg.slot_bytes, 1048576u);
    ASSERT_EQ(c->cfg.devices.size(), 1u);
    EXPECT_EQ(c->cfg.devices[0].path, "/tmp/daxkv-dev");
    EXPECT_EQ(c->cfg.devices[0].bytes, 512 * MiB);
    EXPECT_EQ(c->cfg.workers, 4u);
    // LMCache's controllers evict: the library does not unless asked.
    EXPECT_EQ(c->cfg.eviction, daxkv::Eviction::none);
}

TEST(ConfigJson, AcceptsLMCacheDevicesListForm) {
    ConfigPtr c;
    ASSERT_EQ(from_json(R"({"type":"dax","slot_bytes":4096,"hotplug_enabled":true,
        "devices":[{"device_path":"/tmp/a","max_dax_size_gb":1},
                   {"device_path":"/tmp/b","max_dax_size_gb":2}]})",
                        &c),
              0)
        << daxkv_errmsg();
    ASSERT_EQ(c->cfg.devices.size(), 2u);
    EXPECT_EQ(c->cfg.devices[0].path, "/tmp/a");
    EXPECT_EQ(c->cfg.devices[0].bytes, 1 * GiB);
    EXPECT_EQ(c->cfg.devices[1].path, "/tmp/b");
    EXPECT_EQ(c->cfg.devices[1].bytes, 2 * GiB);
    EXPECT_TRUE(c->cfg.hotplug);
}

// As LMCache's adapter reads it: devices wins over device_path and
// max_dax_size_gb given beside it, which are ignored (logged). It was
// refused ("give either ... not both").
TEST(ConfigJson, DevicesWinsOverTheOneDeviceMembersBesideIt) {
    ConfigPtr c;
    ASSERT_EQ(from_json(R"({"slot_bytes":4096,"device_path":"/tmp/ignored","max_dax_size_gb":9,
        "devices":[{"device_path":"/tmp/a","max_dax_size_gb":1}]})",
                        &c),
              0)
        << daxkv_errmsg();
    ASSERT_EQ(c->cfg.devices.size(), 1u);
    EXPECT_EQ(c->cfg.devices[0].path, "/tmp/a");
    EXPECT_EQ(c->cfg.devices[0].bytes, 1 * GiB);
    // Ignored, so not checked either, as LMCache does not look at them.
    ASSERT_EQ(from_json(R"({"slot_bytes":4096,"device_path":7,
        "devices":[{"device_path":"/tmp/a","max_dax_size_gb":1}]})"),
              0)
        << daxkv_errmsg();
}

TEST(ConfigJson, DaxkvOwnKeysPassThrough) {
    ConfigPtr c;
    ASSERT_EQ(from_json(R"({"slot_bytes":4096,)" + kDev +
                            R"(,"eviction":"lru","verify":"read","meta_bytes":"1KiB",
                              "durability":"power","on_mismatch":"reformat","workers":3})",
                        &c),
              0)
        << daxkv_errmsg();
    EXPECT_EQ(c->cfg.eviction, daxkv::Eviction::lru);
    EXPECT_EQ(c->cfg.verify, daxkv::arena::Verify::read);
    EXPECT_EQ(c->cfg.meta_bytes, 1024u);
    EXPECT_EQ(c->cfg.durability, daxkv::arena::Durability::power);
    EXPECT_TRUE(c->cfg.reformat);
    EXPECT_EQ(c->cfg.workers, 3u);
}

TEST(ConfigJson, DaxkvKeysWithBadValuesAreRejected) {
    // eviction 5 and ["lru"] were taken and ignored (neither daxkv's word
    // nor LMCache's object).
    for (const char *extra : {R"("eviction":"fifo")", R"("eviction":5)", R"("eviction":["lru"])",
                              R"("eviction":true)", R"("workers":-3)", R"("verify":1.5)",
                              R"("meta_bytes":"1MiB")", R"("durability":[])",
                              R"("on_mismatch":null)"}) {
        EXPECT_EQ(from_json(std::string(R"({"slot_bytes":4096,)") + kDev + "," + extra + "}"),
                  -EINVAL)
            << extra;
    }
}

TEST(ConfigJson, UnknownKeyIsRejectedAndNamed) {
    EXPECT_EQ(from_json(R"({"slot_bytes":4096,)" + kDev + R"(,"bogus_knob":1})"), -EINVAL);
    EXPECT_TRUE(contains_text(daxkv_errmsg(), "bogus_knob")) << daxkv_errmsg();
}

TEST(ConfigJson, TruncatedDocumentsAreRejected) {
    const std::string full = R"({"slot_bytes":4096,)" + kDev + "}";
    for (size_t cut : {size_t(0), size_t(1), size_t(5), size_t(14), full.size() / 2,
                       full.size() - 1}) {
        EXPECT_EQ(from_json(full.substr(0, cut)), -EINVAL) << "cut at " << cut;
        if (cut > 0) {
            EXPECT_TRUE(contains_text(daxkv_errmsg(), "malformed")) << daxkv_errmsg();
        }
    }
    EXPECT_EQ(from_json(full), 0) << daxkv_errmsg();
}

TEST(ConfigJson, NonObjectsAreRejected) {
    for (const char *doc : {"[]", "42", "\"dax\"", "null", "true", "[{\"slot_bytes\":4096}]"}) {
        EXPECT_EQ(from_json(doc), -EINVAL) << doc;
        EXPECT_TRUE(contains_text(daxkv_errmsg(), "object")) << doc << ": " << daxkv_errmsg();
    }
}

TEST(ConfigJson, HostileNestingIsRejectedWithoutCrashing) {
    std::string arrays(100000, '[');
    EXPECT_EQ(from_json(arrays), -EINVAL);
    EXPECT_EQ(from_json(arrays + std::string(100000, ']')), -EINVAL);
    std::string objects;
    for (int i = 0; i < 100000; ++i)
        objects += "{\"a\":";
    EXPECT_EQ(from_json(objects), -EINVAL);
    // Nested inside an accepted key, below the size limit.
    EXPECT_EQ(from_json(R"({"slot_bytes":4096,)" + kDev + R"(,"serde":)" + arrays), -EINVAL);
    EXPECT_TRUE(contains_text(daxkv_errmsg(), "nest")) << daxkv_errmsg();
}

// "16 levels of nesting" (daxkv_config_new(3)): the document's object and
// 15 more containers inside it, full or empty, are accepted; one more is
// refused, named, before it is built.
TEST(ConfigJson, NestingUpToTheLimitIsAcceptedAndOneMoreRefused) {
    const auto nested = [](int containers, const char *innermost) {
        std::string open, close;
        for (int i = 0; i < containers; ++i) {
            open += i % 2 ? "[" : "{\"a\":";
            close = (i % 2 ? "]" : "}") + close;
        }
        return R"({"slot_bytes":4096,)" + kDev + R"(,"serde":)" + open + innermost + close + "}";
    };
    // The document's object, n containers, and the innermost value.
    const std::pair<int, const char *> at_the_limit[] = {{15, "1"}, {14, "{}"}, {14, "[]"}};
    for (const auto &[n, innermost] : at_the_limit) {
        EXPECT_EQ(from_json(nested(n, innermost)), 0) << n << innermost << ": " << daxkv_errmsg();
        EXPECT_EQ(from_json(nested(n + 1, innermost)), -EINVAL) << n + 1 << innermost;
        EXPECT_TRUE(contains_text(daxkv_errmsg(), "deeper than 16")) << daxkv_errmsg();
    }
}

TEST(ConfigJson, HugeStringsAreRejected) {
    std::string two_mib(2 * MiB, 'x');
    EXPECT_EQ(from_json(R"({"slot_bytes":4096,"device_path":")" + two_mib +
                        R"(","max_dax_size_gb":1})"),
              -EINVAL);
    EXPECT_EQ(from_json("{\"" + two_mib + "\":1}"), -EINVAL);
    // Under the document limit, but a path no device can have.
    std::string long_path = "/tmp/" + std::string(900 * KiB, 'p');
    EXPECT_EQ(from_json(R"({"slot_bytes":4096,"device_path":")" + long_path +
                        R"(","max_dax_size_gb":1})"),
              -EINVAL);
}

TEST(ConfigJson, WrongTypesForSlotBytesAreRejected) {
    for (const char *v : {"\"4096\"", "-1", "0", "1.5", "true", "null", "[]", "{}",
                          "18446744073709551616"}) {
        EXPECT_EQ(from_json(std::string(R"({"slot_bytes":)") + v + "," + kDev + "}"), -EINVAL)
            << v;
        EXPECT_TRUE(contains_text(daxkv_errmsg(), "slot_bytes")) << v << ": " << daxkv_errmsg();
    }
    EXPECT_EQ(from_json("{" + kDev + "}"), -EINVAL); // missing
}

TEST(ConfigJson, WrongTypesForMaxDaxSizeAreRejected) {
    for (const char *v : {"\"1\"", "0", "-1", "true", "null", "[]", "1e300", "-0.0"}) {
        EXPECT_EQ(from_json(std::string(R"({"slot_bytes":4096,"device_path":"/tmp/x",)"
                                        R"("max_dax_size_gb":)") +
                            v + "}"),
                  -EINVAL)
            << v;
        EXPECT_TRUE(contains_text(daxkv_errmsg(), "max_dax_size_gb")) << daxkv_errmsg();
    }
    EXPECT_EQ(from_json(R"({"slot_bytes":4096,"device_path":"/tmp/x"})"), -EINVAL);
    EXPECT_EQ(from_json(R"({"slot_bytes":4096,"max_dax_size_gb":1})"), -EINVAL);
    EXPECT_EQ(from_json(R"({"slot_bytes":4096,"device_path":"","max_dax_size_gb":1})"), -EINVAL);
    EXPECT_EQ(from_json(R"({"slot_bytes":4096,"device_path":7,"max_dax_size_gb":1})"), -EINVAL);
}

TEST(ConfigJson, WrongTypesForDevicesAreRejected) {
    for (const char *v :
         {"\"x\"", "{}", "[1]", "[[]]", R"([{"device_path":"","max_dax_size_gb":1}])",
          R"([{"device_path":5,"max_dax_size_gb":1}])", R"([{"max_dax_size_gb":1}])",
          R"([{"device_path":"/tmp/a"}])", R"([{"device_path":"/tmp/a","max_dax_size_gb":"1"}])",
          R"([{"device_path":"/tmp/a","max_dax_size_gb":1},{"device_path":"/tmp/a","max_dax_size_gb":1}])"}) {
        EXPECT_EQ(from_json(std::string(R"({"slot_bytes":4096,"devices":)") + v + "}"), -EINVAL)
            << v;
    }
}

// As LMCache's adapter reads a device path: stripped of the white space
// around it, and refused when that is all it holds ("   " opened a file of
// that name in the working directory, "arena " a new arena beside "arena").
TEST(ConfigJson, DevicePathsAreStrippedAndBlankOnesRefused) {
    for (const char *blank : {"   ", "\\t\\n", "\\u000b\\u001f "}) {
        EXPECT_EQ(from_json(std::string(R"({"slot_bytes":4096,"max_dax_size_gb":1,"device_path":")") +
                            blank + "\"}"),
                  -EINVAL)
            << blank;
        EXPECT_STREQ(daxkv_errmsg(), "device_path must be a non-empty string");
        EXPECT_EQ(from_json(std::string(R"({"slot_bytes":4096,"devices":[{"max_dax_size_gb":1,"device_path":")") +
                            blank + "\"}]}"),
                  -EINVAL)
            << blank;
        EXPECT_STREQ(daxkv_errmsg(), "devices[0].device_path must be a non-empty string");
    }
    // White space beyond ASCII's, as Python's str.strip() strips it: an
    // ideographic space (U+3000) alone, a no-break space (U+00A0) after,
    // a next-line (U+0085) before; inside a path it stays.
    EXPECT_EQ(from_json(R"({"slot_bytes":4096,"max_dax_size_gb":1,"device_path":"\u3000"})"), -EINVAL);
    ConfigPtr c;
    ASSERT_EQ(from_json(R"({"slot_bytes":4096,"max_dax_size_gb":1,"device_path":"\u0085arena\u00a0"})", &c), 0);
    EXPECT_EQ(c->cfg.devices[0].path, "arena");
    ASSERT_EQ(from_json(R"({"slot_bytes":4096,"max_dax_size_gb":1,"device_path":"a\u00a0b"})", &c), 0);
    EXPECT_EQ(c->cfg.devices[0].path, "a\xc2\xa0" "b");
    ASSERT_EQ(from_json(R"({"slot_bytes":4096,"max_dax_size_gb":1,"device_path":" /tmp/a b\t"})", &c), 0)
        << daxkv_errmsg();
    EXPECT_EQ(c->cfg.devices[0].path, "/tmp/a b");
    ASSERT_EQ(from_json(R"({"slot_bytes":4096,"devices":[{"max_dax_size_gb":1,"device_path":"arena "}]})", &c), 0)
        << daxkv_errmsg();
    EXPECT_EQ(c->cfg.devices[0].path, "arena");
}

TEST(ConfigJson, EmptyDevicesNeedHotplug) {
    EXPECT_EQ(from_json(R"({"slot_bytes":4096,"devices":[]})"), -EINVAL);
    EXPECT_TRUE(contains_text(daxkv_errmsg(), "hotplug")) << daxkv_errmsg();
    EXPECT_EQ(from_json(R"({"slot_bytes":4096})"), -EINVAL);
    // As LMCache's adapter: only an explicit devices list starts without a
    // device, hotplug or not (this one started an empty pool).
    EXPECT_EQ(from_json(R"({"type":"dax","slot_bytes":4096,"hotplug_enabled":true})"), -EINVAL);
    EXPECT_STREQ(daxkv_errmsg(), "device_path must be a non-empty string");
    EXPECT_EQ(from_json(R"({"slot_bytes":4096,"devices":[],"hotplug_enabled":false})"), -EINVAL);
    EXPECT_EQ(from_json(R"({"slot_bytes":4096,"devices":[],"hotplug_enabled":"yes"})"), -EINVAL);
    ConfigPtr c;
    ASSERT_EQ(from_json(R"({"slot_bytes":4096,"devices":[],"hotplug_enabled":true})", &c), 0);
    EXPECT_TRUE(c->cfg.hotplug);
    EXPECT_TRUE(c->cfg.devices.empty());
}

namespace {
// A one-device JSON configuration with member key set to the JSON text v.
std::string one_device_with(const char *key, const char *v) {
    return std::string(R"({"slot_bytes":4096,)") + kDev + ",\"" + key + "\":" + v + "}";
}
} // namespace

TEST(ConfigJson, HotplugEnabledAsAnIntegerIsReadAsLMCacheReadsIt) {
    // LMCache's dax adapter takes bool() of the member: 0 is off, any other
    // integer on, null off (as the Python adapter reads it too; null was
    // refused). A fraction, a string or a list is refused.
    for (const auto &[v, on] : std::vector<std::pair<const char *, bool>>{
             {"1", true}, {"2", true}, {"-1", true}, {"0", false}, {"true", true}, {"false", false},
             {"null", false}}) {
        ConfigPtr c;
        ASSERT_EQ(from_json(one_device_with("hotplug_enabled", v), &c), 0)
            << v << ": " << daxkv_errmsg();
        EXPECT_EQ(c->cfg.hotplug, on) << v;
    }
    for (const char *v : {"1.0", "\"false\"", "[]"}) {
        EXPECT_EQ(from_json(one_device_with("hotplug_enabled", v)), -EINVAL) << v;
        EXPECT_TRUE(contains_text(daxkv_errmsg(), "hotplug_enabled")) << daxkv_errmsg();
    }
}

TEST(ConfigJson, NumLoadWorkersAboveTheMostRunsTheMost) {
    // LMCache takes any positive count of load threads; libdaxkv's copy
    // engine runs at most 256 workers (the limit of the workers key).
    for (const auto &[v, workers] : std::vector<std::pair<const char *, unsigned>>{
             {"3", 3}, {"256", 256}, {"257", 256}, {"100000", 256}}) {
        ConfigPtr c;
        ASSERT_EQ(from_json(one_device_with("num_load_workers", v), &c), 0)
            << v << ": " << daxkv_errmsg();
        EXPECT_EQ(c->cfg.workers, workers) << v;
    }
}

TEST(ConfigJson, ArenaSmallerThanOneSlotIsRejected) {
    EXPECT_EQ(from_json(R"({"slot_bytes":4096,"device_path":"/tmp/x","max_dax_size_gb":0.000001})"),
              -EINVAL);
    EXPECT_TRUE(contains_text(daxkv_errmsg(), "does not fit")) << daxkv_errmsg();
}

TEST(ConfigJson, TypeMustBeDaxAndWorkerCountsPositiveIntegers) {
    EXPECT_EQ(from_json(R"({"type":"disk","slot_bytes":4096,)" + kDev + "}"), -EINVAL);
    EXPECT_EQ(from_json(R"({"type":1,"slot_bytes":4096,)" + kDev + "}"), -EINVAL);
    for (const char *k : {"num_store_workers", "num_lookup_workers", "num_load_workers"})
        for (const char *v : {"0", "-1", "1.5", "\"4\"", "true", "null"}) {
            EXPECT_EQ(from_json(std::string(R"({"slot_bytes":4096,)") + kDev + ",\"" + k +
                                "\":" + v + "}"),
                      -EINVAL)
                << k << "=" << v;
            EXPECT_TRUE(contains_text(daxkv_errmsg(), k)) << daxkv_errmsg();
        }
}

TEST(ConfigJson, ANulAnywhereIsRefusedNamingWhereItLies) {
    // Strings and member names nested in members daxkv does not read
    // (LMCache's options) are checked too, and the message says where.
    EXPECT_EQ(from_json("{" + kDev + R"(,"extra":{"a":[1,"x\u0000y"]}})"), -EINVAL);
    EXPECT_TRUE(contains_text(daxkv_errmsg(), "the value of extra.a[1] contains a NUL"))
        << daxkv_errmsg();
    EXPECT_EQ(from_json("{" + kDev + R"(,"extra":[{"b":{"k\u0000":2}}]})"), -EINVAL);
    EXPECT_TRUE(contains_text(daxkv_errmsg(), "a key in the value of extra[0].b contains a NUL"))
        << daxkv_errmsg();
}

TEST(ConfigJson, ADocumentOfALongNameOverALongListIsReadInLinearTime) {
    // The place of every value was written out for each value checked: a
    // member name of half a megabyte over a list of 260,000 elements (a
    // document within the 1 MiB limit) took 23 s. A hang guard, not a
    // timing: the check now takes milliseconds, and 30 s ends the binary.
    struct Alarm {
        Alarm() { ::alarm(30); }
        ~Alarm() { ::alarm(0); }
    } alarm_guard;
    std::string doc = "{" + kDev + R"(,"slot_bytes":4096,"serde":{")";
    for (int i = 0; i < 260000; ++i)
        doc += "\xc3\xa9"; // 'é', written as \xNN in the place's text
    doc += R"(":[)";
    for (int i = 0; i < 260000; ++i)
        doc += i ? ",0" : "0";
    doc += "]}}";
    ASSERT_LE(doc.size(), size_t(1) << 20);
    EXPECT_EQ(from_json(doc), 0) << daxkv_errmsg();
}

TEST(ConfigJson, ASixtyFifthDeviceIsRefusedAsItIsAdded) {
    // A store holds at most 64 devices: the configuration refuses the 65th
    // (each added device is compared with those before it, and a document
    // of 20,000 devices took seconds to read before open refused it).
    ConfigPtr c = new_config();
    for (int i = 0; i < 64; ++i)
        ASSERT_EQ(daxkv_config_add_device(c.get(), ("/tmp/daxkv-d" + std::to_string(i)).c_str(), MiB), 0);
    EXPECT_EQ(daxkv_config_add_device(c.get(), "/tmp/daxkv-d64", MiB), -ENOSPC);
    EXPECT_TRUE(contains_text(daxkv_errmsg(), "at most 64 devices")) << daxkv_errmsg();
    std::string doc = R"({"slot_bytes":4096,"devices":[)";
    for (int i = 0; i < 20000; ++i)
        doc += std::string(i ? "," : "") + R"({"device_path":"mem:","max_dax_size_gb":1})";
    doc += "]}";
    EXPECT_EQ(from_json(doc), -ENOSPC);
    EXPECT_TRUE(contains_text(daxkv_errmsg(), "at most 64 devices")) << daxkv_errmsg();
}

TEST(ConfigJson, OpensAStoreOnAFileArena) {
    TempDir dir;
    std::string path = dir.file("json-arena");
    ConfigPtr c;
    // 1/256 GiB = 4 MiB, slots of 64 KiB.
    ASSERT_EQ(from_json(R"({"type":"dax","device_path":")" + path +
                            R"(","max_dax_size_gb":0.00390625,"slot_bytes":65536,
                              "num_load_workers":2})",
                        &c),
              0)
        << daxkv_errmsg();
    daxkv_store *raw = nullptr;
    ASSERT_EQ(daxkv_open(&raw, c.get()), 0) << daxkv_errmsg();
    StorePtr s(raw);
    struct daxkv_stats st = get_stats(s.get());
    EXPECT_EQ(st.slot_bytes, 65536u);
    EXPECT_EQ(st.slots_total, daxkv::arena::compute_layout(4 * MiB, 65536, 256).slot_count);
    EXPECT_GT(st.slots_total, 50u);
    // eviction=none from the JSON form: a full arena refuses.
    std::vector<uint8_t> v = pattern(1, 65536);
    for (uint64_t i = 0; i < st.slots_total; ++i)
        ASSERT_EQ(daxkv_put(s.get(), key_of(i).data(), key_of(i).size(), v.data(), v.size(), 0), 0);
    std::string extra = "one-more";
    EXPECT_EQ(daxkv_put(s.get(), extra.data(), extra.size(), v.data(), v.size(), 0), -ENOSPC);
}

// The key table is the one source: every key it holds is documented where
// users look for it (the README's table, daxkv_config_new(3), the header's
// comment on daxkv_config_set), with every word a choice key takes; and the
// words set() accepts are the words status reports print.
namespace {

// The source tree: $top_srcdir under make check, else the one this test was
// built from.
std::string source_file(const std::string &rel) {
    const char *top = std::getenv("top_srcdir");
    return std::string(top && *top ? top : DAXKV_SOURCE_DIR) + "/" + rel;
}

// The header's comment block just above daxkv_config_set.
std::string config_set_comment(const std::string &header) {
    size_t fn = header.find("daxkv_config_set(daxkv_config *");
    size_t start = header.rfind("/**", fn);
    return fn == std::string::npos || start == std::string::npos ? ""
                                                                   : header.substr(start, fn - start);
}

bool has(const std::string &text, const std::string &part) {
    return text.find(part) != std::string::npos;
}

} // namespace

TEST(ConfigKeys, EveryKeyIsDocumentedInTheReadmeTheManPageAndTheHeader) {
    const std::string readme = read_file(source_file("README.md"));
    const std::string man = read_file(source_file("docs/man/daxkv_config_new.3"));
    const std::string comment = config_set_comment(read_file(source_file("include/daxkv.h")));
    // Where the binary runs without its sources (the guest rig), there is
    // nothing to check against.
    if (readme.empty() && man.empty())
        GTEST_SKIP() << "the source tree is not here (" << source_file("") << ")";
    ASSERT_FALSE(readme.empty()) << "README.md not found (top_srcdir)";
    ASSERT_FALSE(man.empty());
    ASSERT_FALSE(comment.empty());
    const std::vector<std::string> keys = daxkv::config_keys();
    ASSERT_GE(keys.size(), 18u);
    for (const std::string &key : keys) {
        const std::string row = "| `" + key + "` |";
        size_t at = readme.find(row);
        EXPECT_NE(at, std::string::npos) << key << ": no row in the README's configuration table";
        EXPECT_TRUE(has(man, ".TP\n.B " + key + "\n") ||
                    has(man, ".TP 14\n.B " + key + "\n"))
            << key << ": no entry in daxkv_config_new(3)";
        EXPECT_TRUE(has(comment, key + " ") || has(comment, key + ",") ||
                    has(comment, key + "\n"))
            << key << ": not named in the comment on daxkv_config_set in daxkv.h";
        if (at == std::string::npos) {
            continue;
        }
        const std::string line = readme.substr(at, readme.find('\n', at) - at);
        for (const std::string &word : daxkv::config_choices(key))
            EXPECT_TRUE(has(line, "`" + word + "`"))
                << key << ": the README's row does not list `" << word << "`";
    }
}

TEST(ConfigKeys, UnknownKeyMessageListsEveryKey) {
    ConfigPtr c = new_config();
    ASSERT_EQ(daxkv_config_set(c.get(), "no_such_key", "1"), -EINVAL);
    const std::string msg = daxkv_errmsg();
    for (const std::string &key : daxkv::config_keys())
        EXPECT_TRUE(has(msg, key)) << key << " missing from: " << msg;
}

TEST(ConfigKeys, EveryChoiceWordIsAcceptedAndReportedBack) {
    for (const std::string &key : daxkv::config_keys()) {
        for (const std::string &word : daxkv::config_choices(key)) {
            ConfigPtr c = new_config();
            ASSERT_EQ(daxkv_config_set(c.get(), key.c_str(), word.c_str()), 0)
                << key << "=" << word << ": " << daxkv_errmsg();
            const daxkv::Config &cfg = c->cfg;
            const char *back = key == "eviction"      ? daxkv::config_word(cfg.eviction)
                               : key == "durability"  ? daxkv::config_word(cfg.durability)
                               : key == "verify"      ? daxkv::config_word(cfg.verify)
                               : key == "nt_stores"   ? daxkv::config_word(cfg.nt_stores)
                               : key == "placement"   ? daxkv::config_word(cfg.placement)
                               : key == "capacity"    ? daxkv::config_word(cfg.capacity)
                                                      : nullptr;
            if (back) {
                EXPECT_EQ(std::string(back), word) << key;
            }
        }
    }
}
