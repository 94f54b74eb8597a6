// The memory system's copy limit, measured in the same run as the figures
// it is the reference of: threads each copying one contiguous range of its
// own, the way a copy that only the memory system limits runs. Written here,
// independently of the library's copy routines, so that the library is
// measured against the machine and not against itself.
#pragma once

#include <cstddef>

namespace daxkv_cli {

// The copy limit of `threads` threads copying bytes from src to dst (bytes /
// threads each, one contiguous range a thread) with the fastest of glibc's
// memcpy and streaming-store loops of every vector width the CPU has (16,
// 32 and 64 bytes), each over the whole range, over four parts of it at a
// time (1 KiB of each in turn), and over eight (256 bytes of each in turn,
// with software prefetch 1 KiB ahead).
//
// Construction times every loop once and keeps the fastest; sample() times
// it once more. A benchmark samples the limit once in each of its rounds,
// next to the figures compared with it, so that both are the best of as
// many runs made under the same conditions: the best of every loop's every
// run would be the luckiest of ten times as many, and its ratios would
// move with the noise instead of the code.
class CopyLimit {
public:
    CopyLimit(char *dst, const char *src, size_t bytes, unsigned threads);

    void sample();
    // GB/s of the fastest sample; 0 before the first.
    double gb_per_s() const;
    unsigned threads() const { return threads_; }
    // The loop kept: "memcpy", or its ISA, "4 parts" or "8 parts prefetch".
    const char *loop() const { return loop_; }

private:
    char *dst_;
    const char *src_;
    size_t bytes_;
    unsigned threads_;
    void (*copy_)(char *d, const char *s, size_t n) = nullptr;
    const char *loop_ = "";
    double best_ = 1e30;
};

} // namespace daxkv_cli
