// Which process an object belongs to. A child made by fork(2) inherits a
// copy of every store, lease and copy engine of its parent, but none of
// their threads, and shares their mappings and file locks with the parent:
// it must not run them (a close would wait for threads that do not exist
// there; a write would change the parent's arena behind its index).
// Objects note the generation they were made in and compare it on use.
#pragma once

#include <cstdint>

namespace daxkv {
namespace platform {

// 0 in the process that loaded the library; one more in each child forked
// since (a child of a child: 2). Counted by a pthread_atfork handler
// registered when the library is loaded.
uint64_t fork_generation() noexcept;

} // namespace platform
} // namespace daxkv
