// The memory system's copy limit, measured in the same run as the figures
// it is the reference of: threads each copying one contiguous range of its
// own with streaming (non-temporal) stores, the way a copy that the memory
// system alone limits runs. Written here, independently of the library's
// copy routines, so that the library is measured against the machine.
#pragma once

#include <cstddef>

namespace daxkv_cli {

// GB/s of `threads` threads copying `bytes` in total (bytes / threads each),
// best of `rounds`; the faster of glibc's memcpy (which streams ranges this
// large) and a plain streaming-store loop.
double copy_limit_gbs(size_t bytes, unsigned threads, int rounds);

} // namespace daxkv_cli
