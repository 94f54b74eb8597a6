// The memory system's copy limit, measured in the same run as the figures
// it is the reference of: threads each copying one contiguous range of its
// own, the way a copy that only the memory system limits runs. Written here,
// independently of the library's copy routines, so that the library is
// measured against the machine and not against itself.
#pragma once

#include <cstddef>

namespace daxkv_cli {

// GB/s of `threads` threads copying bytes from src to dst in total (bytes /
// threads each, one contiguous range a thread), best of `rounds`, taking the
// fastest of glibc's memcpy and streaming-store loops of every vector width
// the CPU has (16, 32 and 64 bytes), each over the whole range, over four
// parts of it at a time (1 KiB of each in turn), and over eight (256 bytes
// of each in turn, with software prefetch 1 KiB ahead).
double copy_limit_gbs(char *dst, const char *src, size_t bytes, unsigned threads, int rounds);

} // namespace daxkv_cli
