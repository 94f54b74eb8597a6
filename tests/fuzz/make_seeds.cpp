// Writes the seed corpus of fuzz_recovery: small arena images made through
// the arena layer itself, whole and with the kinds of damage recovery must
// handle (a duplicate key, a torn commit word, a flipped payload byte, a bad
// superblock copy, an arena left by durability=none, foreign bytes).
//
//   make_seeds DIR
#include <cstdio>
#include <cstring>
#include <fstream>
#include <functional>
#include <iterator>
#include <memory>
#include <string>
#include <vector>

#include <unistd.h>

#include "arena/arena.hpp"
#include "arena/checksum.hpp"
#include "internal/error.hpp"
#include "platform/mapping.hpp"

namespace ar = daxkv::arena;

namespace {

struct Spec {
    uint64_t bytes, slot_bytes;
    uint32_t meta_bytes;
};

// Put one entry the way the store does: payload, header body, commit word.
void put(ar::Arena &a, uint32_t slot, uint64_t seq, const std::string &key, size_t len,
         const std::string &meta) {
    char *d = a.slot_data(slot);
    for (size_t i = 0; i < len; ++i)
        d[i] = static_cast<char>(seq * 31 + i);
    // Without a fault guard these cannot fail: a fault ends the process.
    static_cast<void>(a.write_body(slot, seq, 1, key.data(), static_cast<uint16_t>(key.size()),
                                   meta.data(), static_cast<uint32_t>(meta.size()), len,
                                   ar::value_checksum(d, len), true));
    static_cast<void>(a.publish(slot, seq, len));
}

// Make an arena image in a scratch file, let edit change it, save it as out.
void make(const std::string &scratch, const std::string &out, Spec s, ar::Durability dur,
          const std::function<void(ar::Arena &)> &edit) {
    ::unlink(scratch.c_str());
    {
        daxkv::platform::MapRequest req;
        req.path = scratch;
        req.bytes = s.bytes;
        ar::Arena::Options opt;
        opt.slot_bytes = s.slot_bytes;
        opt.meta_bytes = s.meta_bytes;
        opt.durability = dur;
        ar::Arena a(daxkv::platform::Mapping::open(req), opt);
        a.keep();
        if (edit)
            edit(a);
    }
    std::ifstream in(scratch, std::ios::binary);
    std::ofstream o(out, std::ios::binary);
    o << in.rdbuf();
    ::unlink(scratch.c_str());
}

} // namespace

int main(int argc, char **argv) {
    if (argc != 2) {
        std::fprintf(stderr, "usage: %s DIR\n", argv[0]);
        return 2;
    }
    const std::string dir = argv[1], scratch = dir + "/.scratch";
    const Spec small{16384, 64, 0}, meta{32768, 256, 32};
    const auto proc = ar::Durability::process;
    try {
        make(scratch, dir + "/fresh", small, proc, nullptr);
        make(scratch, dir + "/three", meta, proc, [](ar::Arena &a) {
            put(a, 0, 1, "a", 10, "m1");
            put(a, 1, 2, "bb", 256, "");
            put(a, 2, 3, std::string(40, 'k'), 0, std::string(32, 'M'));
        });
        make(scratch, dir + "/duplicate", small, proc, [](ar::Arena &a) {
            put(a, 0, 5, "key", 20, "");
            put(a, 3, 9, "key", 30, ""); // a crash between a replace's commit and withdrawal
            put(a, 4, 7, "other", 64, "");
        });
        make(scratch, dir + "/torn", small, proc, [](ar::Arena &a) {
            put(a, 0, 1, "t", 16, "");
            __atomic_store_n(&a.header(0)->commit, uint64_t(2), __ATOMIC_RELAXED);
            put(a, 1, 3, "u", 16, "");
        });
        make(scratch, dir + "/bad-value", meta, proc, [](ar::Arena &a) {
            put(a, 0, 1, "v", 100, "x");
            a.slot_data(0)[50] ^= 1;
            put(a, 1, 2, "w", 100, "y");
        });
        make(scratch, dir + "/bad-superblock", small, proc, [](ar::Arena &a) {
            put(a, 0, 1, "s", 8, "");
            a.mapping().base()[100] ^= 0x40;
        });
        make(scratch, dir + "/not-recoverable", small, ar::Durability::none,
             [](ar::Arena &a) { put(a, 0, 1, "n", 8, ""); });
        // Foreign bytes and an all-zero image.
        std::vector<char> junk(16384);
        for (size_t i = 0; i < junk.size(); ++i)
            junk[i] = static_cast<char>(i * 2654435761u >> 13);
        std::ofstream(dir + "/foreign", std::ios::binary).write(junk.data(), junk.size());
        std::vector<char> zero(16384, 0);
        std::ofstream(dir + "/zero", std::ios::binary).write(zero.data(), zero.size());
    } catch (const daxkv::Error &e) {
        std::fprintf(stderr, "make_seeds: %s\n", e.what());
        return 1;
    }
    return 0;
}
